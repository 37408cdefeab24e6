"""Fixtures of the demo tests: a tiny random VREMD at a small image size and detector, the demo's synthetic clip."""

import pytest


@pytest.fixture(scope="session")
def small_model_dir(tmp_path_factory):
    import torch

    from vremd_models import VREMD, VREMDConfig

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("models") / "vremd-tiny-128x96"
    config = VREMDConfig.from_preset("vremd-tiny", image_size=(128, 96), heatmap_size=(32, 24))
    VREMD(config).save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def demo_data_dir(tmp_path_factory):
    """A data folder in which the synthetic clip has been generated once."""
    from vremd_models.demo.clip import open_synthetic_clip

    data_dir = tmp_path_factory.mktemp("demo-data")
    generations = []
    open_synthetic_clip(data_dir, on_generate=lambda: generations.append(1))
    assert generations == [1]
    return data_dir


@pytest.fixture(scope="session")
def tiny_detector_dir(tmp_path_factory):
    from tests.vremd_models.predict.tiny_detector import save_tiny_detector

    return save_tiny_detector(tmp_path_factory.mktemp("detectors") / "rtdetr-tiny")
