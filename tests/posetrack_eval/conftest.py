"""Fixtures of the posetrack_eval tests: the input generator and the recorded reference numbers."""

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest

HERE = Path(__file__).parent
FIXTURES = HERE / "fixtures"


def _load_synth() -> ModuleType:
    # tests run with --import-mode=importlib, so the helper is loaded by path
    spec = importlib.util.spec_from_file_location("posetrack_eval_synth", HERE / "synth.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


synth_module = _load_synth()


def load_fixture(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


def write_case(root: Path, params: dict) -> tuple[Path, Path]:
    """Regenerate the inputs of a recorded case from its seed and parameters."""
    params = {**params, "frames": tuple(params["frames"])} if "frames" in params else params
    return synth_module.write_case(root, **params)


@pytest.fixture(scope="session")
def synth() -> ModuleType:
    return synth_module


@pytest.fixture(scope="session")
def sample_predictions(posetrack18_sample, tmp_path_factory) -> Path:
    """The seeded predictions for the real sample that the recorded reference numbers were computed on."""
    seed = load_fixture("sample.json")["seed"]
    return synth_module.perturb_sample(
        posetrack18_sample / "annotations" / "val", tmp_path_factory.mktemp("sample_pred"), seed=seed
    )
