"""Trackers: the always-on ``log.jsonl``, an optional long-form ``log.csv``, and those accelerate knows."""

import json
import time
from pathlib import Path

from accelerate.tracking import GeneralTracker

from training.config import ConfigError, LoggingConfig

__all__ = ["CsvTracker", "JsonlTracker", "build_trackers"]


class _FileTracker(GeneralTracker):
    """A tracker that appends to one file of the run directory (its ``tracker`` object is the path)."""

    requires_logging_directory = False

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path

    @property
    def tracker(self) -> Path:
        return self.path


class JsonlTracker(_FileTracker):
    """Appends each logged dict as one JSON line (with its step and time) to ``<run_dir>/log.jsonl``."""

    name = "jsonl"

    def store_init_configuration(self, values: dict) -> None:
        self._append({"config": values})

    def log(self, values: dict, step: int | None = None, **kwargs) -> None:
        self._append({"step": step, **values})

    def _append(self, record: dict) -> None:
        with self.path.open("a") as file:
            file.write(json.dumps({"time": round(time.time(), 3), **record}) + "\n")


class CsvTracker(_FileTracker):
    """Logs in long form (``step,name,value``) to ``<run_dir>/log.csv``, so new metric names need no header."""

    name = "csv"

    def log(self, values: dict, step: int | None = None, **kwargs) -> None:
        new = not self.path.exists()
        with self.path.open("a") as file:
            if new:
                file.write("step,name,value\n")
            file.writelines(f"{step},{name},{value}\n" for name, value in values.items())


def build_trackers(cfg: LoggingConfig, run_dir: Path) -> list:
    """The JSONL tracker plus those the config names; a missing package is a ConfigError naming it."""
    # accelerate's availability checks, by tracker name: a clear message beats a deep ImportError at init.
    from accelerate.utils import imports

    trackers: list = [JsonlTracker(run_dir / "log.jsonl")]
    for name in cfg.trackers:
        if name == "csv":
            trackers.append(CsvTracker(run_dir / "log.csv"))
            continue
        available = getattr(imports, f"is_{name}_available", None)
        if available is None:
            raise ConfigError(f"logging.trackers: unknown tracker {name!r} (csv, tensorboard, wandb, ...)")
        if not available():
            raise ConfigError(f"logging.trackers: {name!r} needs its package: pip install {name}")
        trackers.append(name)
    return trackers
