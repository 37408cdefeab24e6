"""Trackers (``log.jsonl``, an optional ``log.csv``, those accelerate knows) and the ``Accelerator`` using them."""

import json
import os
import time
from pathlib import Path

from accelerate import Accelerator
from accelerate.tracking import GeneralTracker
from accelerate.utils import DataLoaderConfiguration

from training.config import Config, ConfigError, LoggingConfig

__all__ = ["CsvTracker", "JsonlTracker", "build_accelerator", "build_trackers"]


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


def build_accelerator(cfg: Config) -> Accelerator:
    """The run's ``Accelerator``, logging to ``build_trackers``; refuses launched processes it could not join.

    Raises:
        ConfigError: torchrun started several processes but accelerate joined fewer (no device to join on).
    """
    run_dir = Path(cfg.run.output_dir)
    accelerator = Accelerator(
        mixed_precision=cfg.run.mixed_precision,
        gradient_accumulation_steps=cfg.run.gradient_accumulation_steps,
        log_with=build_trackers(cfg.logging, run_dir),
        project_dir=str(run_dir),
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True, data_seed=cfg.run.seed),
    )
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if launched != accelerator.num_processes:
        # torchrun started several processes, but accelerate found no device to join them on: each would train
        # alone on all the data. On CPU the processes join over gloo with ACCELERATE_USE_CPU=1.
        raise ConfigError(
            f"{launched} processes were launched but accelerate joined {accelerator.num_processes}; on CPU use "
            "ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes N train.py"
        )
    return accelerator
