"""Fixtures shared by every test folder."""

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
# The workspace keeps shared/ beside the checkout (CI too); VREMD_SHARED overrides that.
SHARED_DIR = Path(os.environ.get("VREMD_SHARED", REPO_ROOT.parent / "shared"))
POSETRACK18_SAMPLE = SHARED_DIR / "data" / "posetrack18-sample"


@pytest.fixture(scope="session")
def posetrack18_sample() -> Path:
    """The real PoseTrack18 excerpt (annotations, frames, detections); read-only."""
    if not (POSETRACK18_SAMPLE / "annotations").is_dir():
        pytest.fail(f"PoseTrack18 sample not found at {POSETRACK18_SAMPLE}; set VREMD_SHARED to the shared/ folder")
    return POSETRACK18_SAMPLE


@pytest.fixture(autouse=True)
def _offline_hub(monkeypatch):
    # No test may reach the network: the hub clients honour these.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")


def pytest_collection_modifyitems(config, items):
    cuda = False
    try:
        import torch

        cuda = torch.cuda.is_available()
    except ImportError:
        pass
    if not cuda:
        skip_gpu = pytest.mark.skip(reason="needs CUDA")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip_gpu)
