"""``train.py`` imported once as a module for the e2e tests: it is a script at the repo root, not a package."""

import importlib.util
import sys
from pathlib import Path

TRAIN_PY = Path(__file__).resolve().parents[2] / "train.py"


def _load_train():
    spec = importlib.util.spec_from_file_location("vremd_train", TRAIN_PY)
    module = importlib.util.module_from_spec(spec)
    sys.modules["vremd_train"] = module
    spec.loader.exec_module(module)
    return module


train = _load_train()
