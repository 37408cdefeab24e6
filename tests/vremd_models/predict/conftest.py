"""Fixtures of the predict tests: a tiny random VREMD and detector on disk, a small synthetic PoseTrack18 dataset."""

import json

import pytest


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    import torch

    from vremd_models import VREMD, VREMDConfig

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("models") / "vremd-tiny"
    VREMD(VREMDConfig.from_preset("vremd-tiny")).save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory):
    from posetrack_data.synthetic import generate_dataset

    root = tmp_path_factory.mktemp("synthetic")
    generate_dataset(root, num_videos=4, num_frames=5, image_size=(192, 144), seed=3, val_fraction=0.5, progress=False)
    return root


@pytest.fixture(scope="session")
def synthetic_val(synthetic_root):
    """(frames folder, detections file, annotations folder) of the synthetic val split."""
    annotations = synthetic_root / "annotations" / "val"
    assert len(list(annotations.glob("*.json"))) == 2
    detections = synthetic_root / "person_detections" / "val.json"
    assert json.loads(detections.read_text())
    return synthetic_root / "images" / "val", detections, annotations


@pytest.fixture(scope="session")
def tiny_detector_dir(tmp_path_factory):
    from tests.vremd_models.predict.tiny_detector import save_tiny_detector

    return save_tiny_detector(tmp_path_factory.mktemp("detectors") / "rtdetr-tiny")


@pytest.fixture(scope="session")
def sample_clip(posetrack18_sample):
    """The sample's one clip as a folder of five 1280x720 frames and as the same clip in an .mp4."""
    folder = posetrack18_sample / "videos" / "000001_mpiinew_test"
    return folder, folder / "000001_mpiinew_test.mp4"
