"""Fixtures for the posetrack_data tests: one small synthetic dataset per session."""

import pytest

from posetrack_data.synthetic import generate_dataset


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory):
    """4 videos (3 train, 1 val) of 9 frames at 160x128, seed 0; read-only by convention."""
    root = tmp_path_factory.mktemp("synthetic")
    return generate_dataset(root, num_videos=4, num_frames=9, image_size=(160, 128), seed=0, progress=False)
