"""Fixtures for the posetrack_data tests: one small synthetic dataset per session."""

import pytest

from posetrack_data.synthetic import generate_dataset


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory):
    """4 videos (3 train, 1 val) of 9 frames at 160x128, seed 0; read-only by convention."""
    root = tmp_path_factory.mktemp("synthetic")
    return generate_dataset(root, num_videos=4, num_frames=9, image_size=(160, 128), seed=0, progress=False)


@pytest.fixture
def pt17_frame():
    """One labeled PT17 annolist frame (mat2json style: scalars as one-element lists) with one person."""
    return {
        "image": [{"name": "images/bonn_5sec/000342_mpii/00000002.jpg"}],
        "imgnum": [2],
        "is_labeled": [1],
        "annorect": [
            {
                "x1": [10],
                "y1": [20],
                "x2": [40],
                "y2": [60],
                "track_id": [3],
                "annopoints": [
                    {
                        "point": [
                            {"id": [13], "x": [25.5], "y": [30], "is_visible": [1]},
                            {"id": [12], "x": [25], "y": [55]},
                            {"id": [9], "x": [40], "y": [70], "is_visible": [0]},
                            {"id": [0], "x": [30], "y": [150]},
                        ]
                    }
                ],
            }
        ],
    }
