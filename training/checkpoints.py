"""Where the loop stands (``TrainState``) and atomic checkpoints of the whole run."""

import dataclasses
import json
import os
import shutil
from pathlib import Path
from typing import Any

from accelerate import Accelerator

from posetrack_data.outputs import atomic_write_text
from training.config import Config, ConfigError, load_config, resolve_model_config

__all__ = ["TrainState", "find_checkpoint", "load_run_config", "resolve_run_dir", "save_checkpoint"]


@dataclasses.dataclass(kw_only=True)
class TrainState:
    """Where the loop stands: saved in every checkpoint as ``trainer_state.json``.

    ``batch_in_epoch`` counts batches of the current epoch already trained (per process): the data position
    that ``--resume`` skips to. ``evaluated_step`` is the step of the last validation (every process keeps it,
    so all of them agree on whether to validate); ``history`` holds every evaluation's AP (main process).
    """

    epoch: int = 0
    batch_in_epoch: int = 0
    step: int = 0
    evaluated_step: int | None = None
    history: list[dict[str, Any]] = dataclasses.field(default_factory=list)


def save_checkpoint(accelerator: Accelerator, run_dir: Path, state: TrainState, keep: int) -> Path:
    """``save_state`` into a temporary folder, renamed into place once complete; keeps the newest ``keep``."""
    checkpoints = run_dir / "checkpoints"
    final = checkpoints / f"step_{state.step:08d}"
    partial = checkpoints / f".partial-step_{state.step:08d}"
    if accelerator.is_main_process:
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(partial))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        atomic_write_text(partial / "trainer_state.json", json.dumps(dataclasses.asdict(state), indent=1))
        if final.exists():
            shutil.rmtree(final)
        os.replace(partial, final)
        for old in sorted(checkpoints.glob("step_*"))[:-keep]:
            shutil.rmtree(old)
    accelerator.wait_for_everyone()
    return final


def find_checkpoint(path: Path) -> Path:
    """The checkpoint folder ``path`` names: a checkpoint itself, or the newest one of a run directory."""
    if (path / "trainer_state.json").is_file():
        return path
    found = sorted((path / "checkpoints").glob("step_*"))
    if not found:
        raise ConfigError(f"--resume: no checkpoint in {path / 'checkpoints'}")
    return found[-1]


def resolve_run_dir(cfg: Config, resume: Path | None) -> tuple[Path, Path | None]:
    """The run directory, and the checkpoint to resume from (if any)."""
    if resume is not None:
        checkpoint = find_checkpoint(resume)
        return checkpoint.parent.parent, checkpoint
    run_dir, n = Path(cfg.run.output_dir), 1
    while (run_dir / "config.yaml").exists():
        n += 1
        run_dir = Path(f"{cfg.run.output_dir}-{n}")
    return run_dir, None


def load_run_config(
    path: Path | None, overrides: list[str], *, base: Path | None, resume: Path | None
) -> tuple[Config, Path | None]:
    """The run config (``--config``, ``--set``, ``--base``) with its final run directory, and the checkpoint.

    The checkpoint is ``--resume``'s (whose run's ``config.yaml`` is read when no config is given), or None.
    """
    if path is None and resume is not None:
        path = find_checkpoint(resume).parent.parent / "config.yaml"
    cfg = load_config(path, overrides, base=base)
    resolve_model_config(cfg.model)  # a bad model config fails before any work
    run_dir, checkpoint = resolve_run_dir(cfg, resume)
    return dataclasses.replace(cfg, run=dataclasses.replace(cfg.run, output_dir=str(run_dir))), checkpoint
