"""Where the loop stands (``TrainState``) and atomic checkpoints of the whole run, as safetensors and JSON only.

Also the run directory itself: chosen, claimed while the run writes it, and never one holding files that
train.py did not write.
"""

import contextlib
import dataclasses
import json
import os
import random
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import safetensors.torch
import torch
from accelerate import Accelerator
from safetensors import SafetensorError

from posetrack_data.outputs import OutputError, atomic_write_text, claim, file_sha256, input_file
from training.config import Config, ConfigError, load_config
from training.evaluation import Validation
from vremd_models.schema import build

__all__ = [
    "MANIFEST",
    "TrainState",
    "claim_run_dir",
    "find_checkpoint",
    "load_checkpoint",
    "load_run_config",
    "resolve_run_dir",
    "save_checkpoint",
]

MANIFEST = "manifest.json"


@dataclasses.dataclass(kw_only=True)
class TrainState:
    """Where the loop stands: saved in every checkpoint as ``trainer_state.json``.

    ``batch_in_epoch`` counts batches of the current epoch already trained (per process): the data position
    that ``--resume`` skips to. ``evaluated_step`` is the step of the last validation (every process keeps it,
    so all of them agree on whether to validate); ``history`` holds every evaluation's score (main process).
    """

    epoch: int = 0
    batch_in_epoch: int = 0
    step: int = 0
    evaluated_step: int | None = None
    history: list[Validation] = dataclasses.field(default_factory=list)


# Everything a checkpoint holds; a folder with any other file is refused (it may be a planted pickle).
_FIXED_FILES = frozenset(
    {"model.safetensors", "optimizer.safetensors", "optimizer.json", "scheduler.json", "trainer_state.json",
     MANIFEST}
)  # fmt: skip
_RNG_FILE = re.compile(r"^rng_\d+\.(json|safetensors)$")
_CHECKPOINT = re.compile(r"^step_\d{8}$")


def save_checkpoint(
    accelerator: Accelerator, run_dir: Path, state: TrainState, keep: int, *, model: Any, optimizer: Any, scheduler: Any
) -> Path:
    """Write the run's state as safetensors and JSON (nothing pickled); keeps the newest ``keep``.

    Written into a temporary folder, renamed into place once complete with a manifest of every file's SHA-256;
    a write that fails (a full disk) removes the temporary folder and raises an ``OSError`` naming it.

    Files: ``model.safetensors``; ``optimizer.safetensors`` + ``optimizer.json`` (tensors, and the rest of
    ``optimizer.state_dict()``); ``scheduler.json``; ``rng_<process>.{safetensors,json}`` (torch, CUDA, numpy
    and Python generators of each process); ``trainer_state.json``; ``manifest.json``.
    """
    checkpoints = run_dir / "checkpoints"
    final = checkpoints / f"step_{state.step:08d}"
    partial = checkpoints / f".partial-step_{state.step:08d}"
    if accelerator.is_main_process:
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
    accelerator.wait_for_everyone()
    try:
        _write_checkpoint(accelerator, partial, state, model=model, optimizer=optimizer, scheduler=scheduler)
    except BaseException as error:
        if accelerator.is_main_process:
            shutil.rmtree(partial, ignore_errors=True)
        if isinstance(error, SafetensorError):
            raise OSError(f"{partial}: cannot write the checkpoint ({' '.join(str(error).split())})") from None
        raise
    if accelerator.is_main_process:
        if final.exists():
            shutil.rmtree(final)
        os.replace(partial, final)
        for old in _checkpoint_folders(checkpoints)[:-keep]:
            shutil.rmtree(old)
    accelerator.wait_for_everyone()
    return final


def _write_checkpoint(
    accelerator: Accelerator, partial: Path, state: TrainState, *, model: Any, optimizer: Any, scheduler: Any
) -> None:
    rank = accelerator.process_index
    rng_tensors, rng_json = _rng_state()
    safetensors.torch.save_file(rng_tensors, partial / f"rng_{rank}.safetensors")
    atomic_write_text(partial / f"rng_{rank}.json", json.dumps(rng_json))
    if accelerator.is_main_process:
        safetensors.torch.save_model(accelerator.unwrap_model(model), str(partial / "model.safetensors"))
        tensors: dict[str, torch.Tensor] = {}
        structure = _split(optimizer.state_dict(), "", tensors)
        safetensors.torch.save_file(tensors, partial / "optimizer.safetensors")
        atomic_write_text(partial / "optimizer.json", json.dumps(structure))
        atomic_write_text(partial / "scheduler.json", json.dumps(scheduler.state_dict()))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        atomic_write_text(partial / "trainer_state.json", json.dumps(dataclasses.asdict(state), indent=1))
        files = {f.name: file_sha256(f) for f in sorted(partial.iterdir())}
        atomic_write_text(partial / MANIFEST, json.dumps({"written_by": "train.py", "files": files}, indent=1))


def _checkpoint_folders(checkpoints: Path) -> list[Path]:
    """The ``step_########`` folders train.py wrote, oldest first; anything else there is not a checkpoint."""
    if not checkpoints.is_dir():
        return []
    return sorted(p for p in checkpoints.iterdir() if _CHECKPOINT.match(p.name) and p.is_dir() and not p.is_symlink())


def load_checkpoint(
    accelerator: Accelerator, checkpoint: Path, *, model: Any, optimizer: Any, scheduler: Any
) -> TrainState:
    """Restore what `save_checkpoint` wrote, reading only JSON and safetensors (no loader that runs code).

    Raises:
        ConfigError: a file is missing or does not parse (names it).
    """
    try:
        state = build(TrainState, json.loads((checkpoint / "trainer_state.json").read_text()))
        missing = safetensors.torch.load_model(accelerator.unwrap_model(model), str(checkpoint / "model.safetensors"))
        del missing  # strict=True already raised on a mismatch
        tensors = safetensors.torch.load_file(checkpoint / "optimizer.safetensors")
        optimizer.load_state_dict(_join(json.loads((checkpoint / "optimizer.json").read_text()), tensors))
        scheduler.load_state_dict(json.loads((checkpoint / "scheduler.json").read_text()))
        rank = accelerator.process_index
        _set_rng_state(
            safetensors.torch.load_file(checkpoint / f"rng_{rank}.safetensors"),
            json.loads((checkpoint / f"rng_{rank}.json").read_text()),
        )
    except (OSError, ValueError, TypeError, KeyError, RuntimeError, SafetensorError) as error:
        raise ConfigError(f"--resume {checkpoint}: cannot restore ({' '.join(str(error).split())[:200]})") from None
    return state


def find_checkpoint(path: Path, *, say: Callable[[str], None] = print) -> Path:
    """The checkpoint to resume: ``path`` itself, or the newest complete one of a run directory.

    Every candidate is checked against its manifest; the newest damaged one is skipped (saying so) for the
    one before it. A folder holding a file that train.py did not write is refused outright.

    Raises:
        ConfigError: a foreign file in a checkpoint, or no complete checkpoint.
    """
    candidates = [path] if (path / "trainer_state.json").is_file() or (path / MANIFEST).is_file() else None
    if candidates is None:
        candidates = _checkpoint_folders(path / "checkpoints")[::-1]
        if not candidates:
            raise ConfigError(f"--resume: no checkpoint in {path / 'checkpoints'}")
    problems = []
    for checkpoint in candidates:
        foreign = sorted(
            f.name for f in checkpoint.iterdir() if f.name not in _FIXED_FILES and not _RNG_FILE.match(f.name)
        )
        if foreign:
            raise ConfigError(f"--resume {checkpoint}: holds {foreign[0]}, which train.py did not write; refusing it")
        problem = _damage(checkpoint)
        if problem is None:
            if problems:
                say(f"train.py: {problems[-1]}; resuming from the previous checkpoint {checkpoint}")
            return checkpoint
        problems.append(f"checkpoint {checkpoint} is damaged ({problem})")
    raise ConfigError(f"--resume: {problems[0]}" + (f" (and {len(problems) - 1} older)" if len(problems) > 1 else ""))


def _damage(checkpoint: Path) -> str | None:
    try:
        manifest = json.loads(input_file(checkpoint / MANIFEST).read_text())
        files = manifest["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return f"no readable {MANIFEST}"
    if not isinstance(files, dict) or "trainer_state.json" not in files:
        return f"{MANIFEST} lists no trainer state"
    for name, digest in files.items():
        if not (checkpoint / str(name)).is_file():
            return f"{name} is missing"
        if file_sha256(checkpoint / str(name)) != digest:
            return f"{name} differs from what was written"
    return None


def _split(obj: Any, key: str, tensors: dict[str, torch.Tensor]) -> Any:
    """A JSON-able copy of ``obj`` with every tensor moved into ``tensors`` (and a reference left)."""
    if isinstance(obj, torch.Tensor):
        name = key or "_"
        tensors[name] = obj.detach().cpu().contiguous()
        return {"__tensor__": name}
    if isinstance(obj, dict):
        return {"__dict__": [[k, _split(v, f"{key}/{k}", tensors)] for k, v in obj.items()]}
    if isinstance(obj, tuple):
        return {"__tuple__": [_split(v, f"{key}/{i}", tensors) for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [_split(v, f"{key}/{i}", tensors) for i, v in enumerate(obj)]
    return obj


def _join(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, dict) and "__tensor__" in obj:
        return tensors[obj["__tensor__"]]
    if isinstance(obj, dict) and "__dict__" in obj:
        return {k: _join(v, tensors) for k, v in obj["__dict__"]}
    if isinstance(obj, dict) and "__tuple__" in obj:
        return tuple(_join(v, tensors) for v in obj["__tuple__"])
    if isinstance(obj, list):
        return [_join(v, tensors) for v in obj]
    return obj


def _rng_state() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        tensors |= {f"cuda_{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())}
    kind, keys, pos, has_gauss, gauss = np.random.get_state()  # noqa: NPY002 -- the global generator is what we restore
    version, internal, gauss_next = random.getstate()
    return tensors, {
        "numpy": [kind, keys.tolist(), pos, has_gauss, gauss],
        "python": [version, list(internal), gauss_next],
    }


def _set_rng_state(tensors: dict[str, torch.Tensor], values: dict[str, Any]) -> None:
    torch.set_rng_state(tensors["torch"])
    cuda = [tensors[f"cuda_{i}"] for i in range(len(tensors) - 1) if f"cuda_{i}" in tensors]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)
    kind, keys, pos, has_gauss, gauss = values["numpy"]
    state = (kind, np.array(keys, dtype=np.uint32), pos, has_gauss, gauss)
    np.random.set_state(state)  # noqa: NPY002
    version, internal, gauss_next = values["python"]
    random.setstate((version, tuple(internal), gauss_next))


def resolve_run_dir(cfg: Config, resume: Path | None) -> tuple[Path, Path | None]:
    """The run directory, and the checkpoint to resume from (if any)."""
    if resume is not None:
        checkpoint = find_checkpoint(resume)
        return checkpoint.parent.parent, checkpoint
    run_dir, n = Path(cfg.run.output_dir), 1
    while (run_dir / "config.yaml").exists():
        n += 1
        run_dir = Path(f"{cfg.run.output_dir}-{n}")
    _check_new(run_dir)
    return run_dir, None


@contextlib.contextmanager
def claim_run_dir(run_dir: Path, *, new: bool, main_process: bool) -> Iterator[Path]:
    """Hold `run_dir` while a run writes it (main process): a second train.py writing there meanwhile is refused.

    Args:
        run_dir: The run directory (or stage 1's partial folder).
        new: The run starts afresh there, so the folder must still be new or empty once held (another run may
            have started in it since it was chosen); False for ``--resume`` and stage 1, which clears its own.
        main_process: Only the main process claims; the others write where it says.

    Raises:
        OutputError: another train.py holds the folder, or a new run finds it no longer new or empty.
    """
    if not main_process:
        yield run_dir
        return
    with claim(run_dir, "train.py"):
        if new:
            _check_new(run_dir)
        yield run_dir


def _check_new(run_dir: Path) -> None:
    """A fresh run writes only into a new or empty folder: never among files train.py did not write."""
    if os.path.lexists(run_dir) and (not run_dir.is_dir() or any(run_dir.iterdir())):
        raise OutputError(
            f"{run_dir}: run.output_dir exists and is not a run of train.py (or is in use); choose a new or "
            "empty folder"
        )


def load_run_config(
    path: Path | None, overrides: list[str], *, base: Path | None, resume: Path | None
) -> tuple[Config, Path | None]:
    """The run config (``--config``, ``--set``, ``--base``) with its final run directory, and the checkpoint.

    The checkpoint is ``--resume``'s (whose run's ``config.yaml`` is read when no config is given), or None.
    """
    if path is None and resume is not None:
        path = find_checkpoint(resume, say=lambda _: None).parent.parent / "config.yaml"
    cfg = load_config(path, overrides, base=base)
    run_dir, checkpoint = resolve_run_dir(cfg, resume)
    return dataclasses.replace(cfg, run=dataclasses.replace(cfg.run, output_dir=str(run_dir))), checkpoint
