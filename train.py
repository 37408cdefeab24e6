"""Train VREMD with accelerate: the built-in synthetic default, or the paper's recipe on PoseTrack.

    accelerate launch train.py                                    # vremd-tiny on synthetic clips; CPU is enough
    accelerate launch train.py --config configs/vremd_vitl_pt17.yaml
    accelerate launch train.py --config configs/ablations/table4_hkme.yaml
    accelerate launch train.py --config configs/ablations/table4_hkme.yaml --base configs/default.yaml
    accelerate launch --num_processes 8 --mixed_precision bf16 train.py --config configs/vremd_vitl_pt17.yaml
    ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes 2 train.py   # 2 CPU processes (gloo)
    accelerate launch train.py --resume runs/default              # exact continuation of a stopped run
    python train.py --config configs/vremd_vitl_pt17.yaml --set optimizer.lr=1e-3 schedule.epochs=30

Without ``--config`` the run reads ``configs/default.yaml`` (equal to ``Config()``). ``--base`` replaces the
``base:`` of the config file, e.g. to run a paper ablation's flags on the synthetic default. Every run
directory holds the resolved ``config.yaml``, ``log.jsonl``, atomic checkpoints (``checkpoints/step_*``, the last
``run.keep_checkpoints`` kept), per-sequence prediction files, and the final model (``model/``, written with
``save_pretrained``). The file reads top to bottom: config schema and loading, data, model, optimizer,
checkpoints, logging, evaluation, the loop, ``main``.
"""

import argparse
import dataclasses
import json
import logging
import math
import os
import shutil
import sys
import time
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import datasets
import numpy as np
import torch
import yaml
from accelerate import Accelerator
from accelerate.tracking import GeneralTracker
from accelerate.utils import DataLoaderConfiguration, set_seed
from safetensors.torch import load_file
from tqdm.auto import tqdm

from posetrack_data import JOINT_NAMES, PoseTrackFormatError, TopDownTransform, generate_dataset, load_posetrack
from posetrack_eval import EvalResult, evaluate, format_table
from posetrack_eval import PoseTrackFormatError as EvalFormatError
from vremd_models import VREMD, VREMDConfig
from vremd_models.inference import decode_heatmaps, heatmap_to_image, predict_heatmaps

logger = logging.getLogger("train")

REPO_DIR = Path(__file__).resolve().parent
DEFAULT_CONFIG = REPO_DIR / "configs" / "default.yaml"
AP_COLUMNS = ("Head", "Shou", "Elb", "Wri", "Hip", "Knee", "Ankl", "Total")


# ---------------------------------------------------------------------------------------------- config schema


@dataclasses.dataclass(kw_only=True)
class DataConfig:
    """Where the clips come from and how they become model inputs.

    Args:
        root: PoseTrack root (2017, 2018 or 2021 layout); ``None`` generates the synthetic dataset once into
            ``cache_dir`` and trains on that.
        version: PoseTrack version; ``None`` detects it from the layout.
        train_split: Split to train on.
        val_split: Split to validate on.
        val_detections: Person boxes for validation (COCO results list); ``None`` uses
            ``<root>/person_detections/<val_split>.json`` (where the synthetic generator writes them).
        min_detection_score: Detector boxes below this score are dropped (DCPose's 0.2).
        batch_size: Training examples per process and step.
        val_batch_size: Validation examples per process and step.
        num_workers: DataLoader worker processes.
        sigma: Gaussian sigma of the target heatmaps, in heatmap pixels.
        rotation: Random rotation limit in degrees (the paper's +-45).
        scale: Random scale range (the paper's 0.65-1.35).
        half_body_prob: Probability of the half-body crop.
        flip_prob: Probability of a horizontal flip in training.
        synthetic_videos: Synthetic videos per split.
        synthetic_frames: Frames per synthetic video.
        synthetic_image_size: Synthetic frame size (W, H).
        synthetic_seed: Seed of the synthetic generator.
        cache_dir: Folder that holds generated synthetic datasets, one subfolder per setting.
    """

    root: str | None = None
    version: Literal["2017", "2018", "2021"] | None = None
    train_split: str = "train"
    val_split: str = "val"
    val_detections: str | None = None
    min_detection_score: float = 0.2
    batch_size: int = 16
    val_batch_size: int = 32
    num_workers: int = 0
    sigma: float = 2.0
    rotation: float = 15.0
    scale: tuple[float, float] = (0.8, 1.2)
    half_body_prob: float = 0.0
    flip_prob: float = 0.5
    synthetic_videos: int = 30
    synthetic_frames: int = 40
    synthetic_image_size: tuple[int, int] = (320, 240)
    synthetic_seed: int = 0
    cache_dir: str = "data"


@dataclasses.dataclass(kw_only=True)
class ModelConfig:
    """Which VREMD to build.

    Args:
        preset: A ``VREMDConfig`` preset name (``vremd-tiny``, ``vremd-vitb``, ``vremd-vitl``, ``vremd-vith``).
        overrides: ``VREMDConfig`` fields replaced on top of the preset (ablation flags, sizes).
        init_backbone: A converted ViTPose checkpoint (safetensors, see ``vremd-convert-vitpose``) loaded into
            the backbone before training; ``None`` keeps the random initialisation.
    """

    preset: str = "vremd-tiny"
    # The CPU default trains at 128x96 (8x6 tokens): a quarter of the paper's pixels, ~4x faster per step.
    overrides: dict[str, Any] = dataclasses.field(
        default_factory=lambda: {"image_size": [128, 96], "heatmap_size": [32, 24]}
    )
    init_backbone: str | None = None


@dataclasses.dataclass(kw_only=True)
class OptimizerConfig:
    """AdamW over the trainable parameters; norms, biases and other 1-d parameters get no weight decay.

    Args:
        lr: Peak learning rate (the paper's 2e-3).
        weight_decay: Decoupled weight decay of matrices and tokens.
        betas: Adam betas.
        grad_clip: Clip the global gradient norm to this value; ``None`` does not clip.
    """

    lr: float = 1e-3
    weight_decay: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    grad_clip: float | None = 1.0


@dataclasses.dataclass(kw_only=True)
class ScheduleConfig:
    """How long to train and how the learning rate moves: linear warm-up, then step decay at epochs.

    Args:
        epochs: Epochs to train (the paper's 20).
        lr_milestones: Epochs after which the learning rate is multiplied by ``lr_gamma`` (the paper's [16]).
        lr_gamma: Step-decay factor.
        warmup_steps: Optimizer steps of linear warm-up from 0.
        max_steps: Stop after this many optimizer steps even mid-epoch (short runs, tests); the learning rate
            schedule still follows ``epochs``.
    """

    epochs: int = 8
    lr_milestones: list[int] = dataclasses.field(default_factory=lambda: [6])
    lr_gamma: float = 0.1
    warmup_steps: int = 50
    max_steps: int | None = None


@dataclasses.dataclass(kw_only=True)
class RunConfig:
    """Where the run writes, and how it checkpoints.

    Args:
        output_dir: Run directory; when it already holds a run (and this is not ``--resume``), ``-2``, ``-3``,
            ... is appended.
        seed: Seed of model initialisation, shuffling and augmentation.
        gradient_accumulation_steps: Batches per optimizer step.
        mixed_precision: ``"no"``, ``"fp16"`` or ``"bf16"``; ``None`` takes ``accelerate launch``'s setting.
        checkpoint_every_steps: Also checkpoint every this many optimizer steps (``None``: at epoch ends only).
        keep_checkpoints: Newest checkpoints kept; older ones are deleted.
        log_every_steps: Log the training loss every this many optimizer steps.
    """

    output_dir: str = "runs/default"
    seed: int = 0
    gradient_accumulation_steps: int = 1
    mixed_precision: Literal["no", "fp16", "bf16"] | None = None
    checkpoint_every_steps: int | None = None
    keep_checkpoints: int = 2
    log_every_steps: int = 10


@dataclasses.dataclass(kw_only=True)
class EvalConfig:
    """Validation: decode, map to image pixels, write poseval files, score with ``posetrack_eval``.

    Args:
        every_epochs: Evaluate after every this many epochs (and always at the end).
        boxes: ``"detector"`` (the paper's protocol) or ``"gt"`` person boxes.
        flip_test: Average the heatmaps of the image and its mirror image.
        refine: Sub-pixel refinement of the heatmap argmax: ``"dark"``, ``"quarter"`` or ``None``.
        protocol: Scoring protocol: ``"poseval"`` (PoseTrack17/18) or ``"pt21"``.
        gt: Ground-truth annotation folder; ``None`` uses ``<root>/annotations/<val_split>``
            (``<root>/posetrack_data/<val_split>`` for PoseTrack21).
        baselines: Before training, also score the untrained model and the "mean pose in the box" baseline.
    """

    every_epochs: int = 1
    boxes: Literal["detector", "gt"] = "detector"
    flip_test: bool = True
    refine: Literal["dark", "quarter"] | None = "dark"
    protocol: Literal["poseval", "pt21"] = "poseval"
    gt: str | None = None
    baselines: bool = True


@dataclasses.dataclass(kw_only=True)
class LoggingConfig:
    """Trackers besides the always-on ``log.jsonl``.

    Args:
        trackers: Any of ``"csv"`` (``log.csv`` in the run directory), ``"tensorboard"``, ``"wandb"`` or
            another tracker name ``accelerate`` knows; the package must be installed.
        project: Project name handed to the trackers.
    """

    trackers: list[str] = dataclasses.field(default_factory=list)
    project: str = "vremd"


@dataclasses.dataclass(kw_only=True)
class Config:
    """One training run; ``Config()`` is the default run of ``configs/default.yaml`` (CPU, synthetic clips).

    The paper's values live in ``configs/paper_recipe.yaml``; field docstrings name them where they differ.
    """

    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    optimizer: OptimizerConfig = dataclasses.field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = dataclasses.field(default_factory=ScheduleConfig)
    run: RunConfig = dataclasses.field(default_factory=RunConfig)
    eval: EvalConfig = dataclasses.field(default_factory=EvalConfig)
    logging: LoggingConfig = dataclasses.field(default_factory=LoggingConfig)


# ---------------------------------------------------------------------------------------------- config loading


class ConfigError(ValueError):
    """A run config that does not fit the schema; the message names the source file and the key."""


def load_config(
    path: str | Path | None = None, overrides: Sequence[str] = (), *, base: str | Path | None = None
) -> Config:
    """Read a YAML run config (following its ``base:`` chain), apply ``--set`` overrides, and validate it.

    Args:
        path: YAML file; ``None`` reads ``configs/default.yaml``.
        overrides: ``"section.key=value"`` strings (values parsed as YAML); a bare ``key=value`` is accepted
            when exactly one section has that key.
        base: Replaces the ``base:`` named in ``path`` itself (the rest of the chain then follows ``base``).

    Raises:
        ConfigError: unreadable file, unknown key, or wrong type; the message names the file and the key.
    """
    merged: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for file in _config_chain(Path(path) if path is not None else DEFAULT_CONFIG, base):
        _merge(merged, _read_yaml(file), sources, str(file))
    for item in overrides:
        _apply_override(merged, sources, item)
    return _build(Config, merged, "", sources)


def _config_chain(path: Path, base: str | Path | None) -> list[Path]:
    """The files to merge, most basic first: ``path``, its ``base:``, that file's ``base:``, ..."""
    chain = [path]
    parent = Path(base) if base is not None else _base_of(path)
    while parent is not None:
        if parent in chain:
            raise ConfigError(f"{chain[-1]}: base: {parent} makes a cycle")
        chain.append(parent)
        parent = _base_of(parent)
    return chain[::-1]


def _base_of(path: Path) -> Path | None:
    base = _read_yaml(path).get("base")
    if base is None:
        return None
    if not isinstance(base, str):
        raise ConfigError(f"{path}: base: expected a path, got {base!r}")
    return (path.parent / base).resolve()


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as error:
        raise ConfigError(f"{path}: cannot read the config: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def _merge(
    merged: dict[str, Any], data: dict[str, Any], sources: dict[str, str], source: str, prefix: str = ""
) -> None:
    """Deep-merge ``data`` into ``merged`` (dicts merge, everything else replaces), remembering each key's file."""
    for key, value in data.items():
        if not prefix and key == "base":
            continue
        dotted = f"{prefix}{key}"
        if isinstance(value, dict):
            if not isinstance(merged.get(key), dict):
                merged[key] = {}
            _merge(merged[key], value, sources, source, f"{dotted}.")
        else:
            merged[key] = value
        sources[dotted] = source


def _apply_override(merged: dict[str, Any], sources: dict[str, str], item: str) -> None:
    key, sep, text = item.partition("=")
    if not sep or not key:
        raise ConfigError(f"--set {item}: expected KEY=VALUE, e.g. optimizer.lr=1e-3")
    if "." not in key:
        owners = [f.name for f in dataclasses.fields(Config) if key in {g.name for g in dataclasses.fields(f.type)}]
        if len(owners) != 1:
            where = f"is in several sections: {owners}" if owners else "is not a key of any section"
            raise ConfigError(f"--set {item}: {key!r} {where}; write section.{key}")
        key = f"{owners[0]}.{key}"
    *parents, leaf = key.split(".")
    node = merged
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"--set {item}: {part!r} is not a section")
    node[leaf] = yaml.safe_load(text) if text else None
    sources[key] = "--set"


def _build(cls: type, data: Any, prefix: str, sources: dict[str, str]) -> Any:
    """Instantiate dataclass ``cls`` from ``data``, checking every key and type."""
    where = prefix.rstrip(".") or "config"
    if not isinstance(data, dict):
        raise ConfigError(f"{sources.get(where, 'config')}: {where}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    for key in data:
        if key not in names:
            raise ConfigError(
                f"{sources.get(f'{prefix}{key}', 'config')}: unknown key {prefix}{key!s} (valid: {', '.join(names)})"
            )
    values = {key: _convert(value, hints[key], f"{prefix}{key}", sources) for key, value in data.items()}
    return cls(**values)


def _convert(value: Any, expected: Any, key: str, sources: dict[str, str]) -> Any:
    """``value`` as type ``expected`` (lists become tuples where the schema says tuple), or a ConfigError."""
    origin, args = get_origin(expected), get_args(expected)
    if dataclasses.is_dataclass(expected):
        return _build(expected, value, f"{key}.", sources)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for arg in (a for a in args if a is not type(None)):
            try:
                return _convert(value, arg, key, sources)
            except ConfigError:
                continue
    elif origin is Literal:
        if value in args:
            return value
    elif origin in (list, tuple) and isinstance(value, list | tuple):
        item_types = [args[0]] * len(value) if origin is list or args[-1] is Ellipsis else list(args)
        if len(item_types) == len(value):
            items = [_convert(v, t, key, sources) for v, t in zip(value, item_types, strict=True)]
            return items if origin is list else tuple(items)
    elif origin is dict and isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return dict(value)
    elif _is_exactly(value, expected):
        return value
    elif expected is float and not isinstance(value, bool):
        # PyYAML reads "2e-3" (no dot) as a string, so numeric strings are accepted for float fields.
        try:
            return float(value)
        except (TypeError, ValueError):
            pass
    raise ConfigError(f"{sources.get(key, 'config')}: {key}: expected {_describe(expected)}, got {value!r}")


def _is_exactly(value: Any, expected: Any) -> bool:
    if expected is int:  # bool is an int subclass, but `epochs: true` is a mistake
        return isinstance(value, int) and not isinstance(value, bool)
    return expected is Any or (expected in (str, bool) and isinstance(value, expected))


def _describe(expected: Any) -> str:
    if get_origin(expected) is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(expected))
    return getattr(expected, "__name__", None) if get_origin(expected) is None else str(expected).replace("typing.", "")


def config_to_dict(cfg: Config) -> dict[str, Any]:
    """The config as plain YAML/JSON-safe data (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def resolve_model_config(cfg: ModelConfig) -> VREMDConfig:
    """The ``VREMDConfig`` of ``cfg``: its preset with the overrides applied; errors name ``model.overrides``."""
    try:
        return VREMDConfig.from_preset(cfg.preset, **cfg.overrides)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"model: {error}") from None


# ---------------------------------------------------------------------------------------------- data


def prepare_data_root(cfg: DataConfig, accelerator: Accelerator) -> Path:
    """The PoseTrack root to train on; the synthetic dataset is generated once (per node) and then reused."""
    if cfg.root is not None:
        root = Path(cfg.root)
        if not root.is_dir():
            raise ConfigError(f"data.root: {root} is not a directory")
        return root
    root = synthetic_root(cfg)
    with accelerator.local_main_process_first():
        if accelerator.is_local_main_process and not (root / "annotations").is_dir():
            accelerator.print(f"Generating the synthetic dataset into {root} (once; later runs reuse it)")
            # Generated beside the final folder and renamed, so an interrupted generation is never reused.
            partial = root.with_name(f"{root.name}.partial")
            shutil.rmtree(partial, ignore_errors=True)
            generate_dataset(
                partial,
                num_videos=cfg.synthetic_videos,
                num_frames=cfg.synthetic_frames,
                image_size=cfg.synthetic_image_size,
                seed=cfg.synthetic_seed,
            )
            os.replace(partial, root)
    return root


def synthetic_root(cfg: DataConfig) -> Path:
    """The cache folder of the synthetic dataset that ``cfg`` describes (one folder per setting)."""
    width, height = cfg.synthetic_image_size
    name = f"synthetic-{cfg.synthetic_videos}v{cfg.synthetic_frames}f-{width}x{height}-seed{cfg.synthetic_seed}"
    return Path(cfg.cache_dir) / name


class Examples(torch.utils.data.Dataset):
    """Rows of a ``load_posetrack`` dataset through ``TopDownTransform``, a batch at a time, keyed by row index.

    ``__getitems__`` transforms a whole batch in one call (the transform decodes each frame once per batch).
    In the main process (``num_workers=0``) the augmentation of a batch is seeded by (seed, epoch, its row
    indices): a batch is the same whenever it is loaded, so ``--resume`` is exact even though accelerate's
    loader reads one batch ahead of the step that is checkpointed. Worker processes keep one transform each,
    seeded by torch's per-worker seed (the transform's own rule).
    """

    KEYS = ("pixel_values", "target_heatmaps", "target_weight", "image_from_crop")

    def __init__(self, rows: datasets.Dataset, transform_kwargs: dict[str, Any], *, seed: int) -> None:
        self.rows = rows
        self.transform_kwargs = transform_kwargs
        self.seed = seed
        self.epoch = 0
        self.transform = TopDownTransform(**transform_kwargs, seed=seed)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.rows)

    def __getitems__(self, indices: list[int]) -> dict[str, torch.Tensor]:
        transform = self.transform
        if self.transform_kwargs["train"] and torch.utils.data.get_worker_info() is None:
            seed = np.random.SeedSequence([self.seed, self.epoch, *indices]).generate_state(1)[0]
            transform = TopDownTransform(**self.transform_kwargs, seed=int(seed))
        batch = transform(self.rows[indices])
        examples = {key: torch.from_numpy(np.ascontiguousarray(batch[key])) for key in self.KEYS}
        return examples | {"index": torch.tensor(indices)}

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {key: value[0] for key, value in self.__getitems__([index]).items()}


def build_datasets(cfg: Config, root: Path, model_config: VREMDConfig, accelerator: Accelerator):
    """Train and validation ``Examples``; validation rows are detector boxes or ground-truth persons."""
    data = cfg.data
    detections = None
    if cfg.eval.boxes == "detector":
        detections = (
            Path(data.val_detections) if data.val_detections else root / "person_detections" / f"{data.val_split}.json"
        )
    with accelerator.local_main_process_first():
        train_rows = load_posetrack(root, data.version, split=data.train_split)
        val_rows = load_posetrack(
            root,
            data.version,
            split=data.val_split,
            detections=detections,
            min_detection_score=data.min_detection_score,
        )
    sizes = {
        "image_size": model_config.image_size,
        "heatmap_size": model_config.heatmap_size,
        "sigma": data.sigma,
        "flip_pairs": model_config.flip_pairs,
    }
    augment = {
        "max_rotation": data.rotation,
        "scale_range": data.scale,
        "half_body_prob": data.half_body_prob,
        "flip_prob": data.flip_prob,
    }
    train = Examples(train_rows, {"train": True, **sizes, **augment}, seed=cfg.run.seed)
    val = Examples(val_rows, {"train": False, **sizes}, seed=cfg.run.seed)
    return train, val


def _batch(examples: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # Examples.__getitems__ already returns the collated batch.
    return examples


def build_loaders(cfg: Config, train: Examples, val: Examples):
    """DataLoaders with private generators, so loading never draws from the global torch RNG."""
    common = {"num_workers": cfg.data.num_workers, "collate_fn": _batch}
    train_loader = torch.utils.data.DataLoader(
        train,
        batch_size=cfg.data.batch_size,
        shuffle=True,
        drop_last=True,
        generator=torch.Generator().manual_seed(cfg.run.seed),
        **common,
    )
    val_loader = torch.utils.data.DataLoader(
        val, batch_size=cfg.data.val_batch_size, shuffle=False, generator=torch.Generator(), **common
    )
    return train_loader, val_loader


# ---------------------------------------------------------------------------------------------- model


def build_model(cfg: ModelConfig, model_config: VREMDConfig) -> VREMD:
    """VREMD from its config, with the backbone initialised from a converted ViTPose checkpoint if given."""
    model = VREMD(model_config)
    if cfg.init_backbone is not None:
        path = Path(cfg.init_backbone)
        if not path.is_file():
            raise ConfigError(f"model.init_backbone: {path} does not exist (convert one with vremd-convert-vitpose)")
        state = load_file(path)
        state = {key.removeprefix("backbone."): value for key, value in state.items()}
        missing, unexpected = model.backbone.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise ConfigError(f"model.init_backbone: {path}: missing keys {missing}, unexpected keys {unexpected}")
    return model


# ---------------------------------------------------------------------------------------------- optimizer


def build_optimizer(model: torch.nn.Module, cfg: OptimizerConfig) -> torch.optim.AdamW:
    """AdamW over trainable parameters; 1-d ones (norms, biases) are not decayed."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in trainable if p.ndim > 1], "weight_decay": cfg.weight_decay},
        {"params": [p for p in trainable if p.ndim <= 1], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas)


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: ScheduleConfig, steps_per_epoch: int):
    """Per-optimizer-step LambdaLR: linear warm-up, then x``lr_gamma`` after each milestone epoch."""
    milestones = [m * steps_per_epoch for m in cfg.lr_milestones]

    def factor(step: int) -> float:
        warmup = min(1.0, (step + 1) / cfg.warmup_steps) if cfg.warmup_steps else 1.0
        return warmup * cfg.lr_gamma ** sum(step >= m for m in milestones)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


# ---------------------------------------------------------------------------------------------- checkpoints


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
        _write_json(partial / "trainer_state.json", dataclasses.asdict(state))
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


def _write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (temporary file + rename)."""
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(data, indent=1))
    os.replace(partial, path)


def _write_text(path: Path, text: str) -> None:
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text)
    os.replace(partial, path)


# ---------------------------------------------------------------------------------------------- logging


class JsonlTracker(GeneralTracker):
    """Appends each logged dict as one JSON line (with its step and time) to ``<run_dir>/log.jsonl``."""

    name = "jsonl"
    requires_logging_directory = False

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path

    @property
    def tracker(self) -> Path:
        return self.path

    def store_init_configuration(self, values: dict) -> None:
        self._append({"config": values})

    def log(self, values: dict, step: int | None = None, **kwargs) -> None:
        self._append({"step": step, **values})

    def _append(self, record: dict) -> None:
        with self.path.open("a") as file:
            file.write(json.dumps({"time": round(time.time(), 3), **record}) + "\n")


class CsvTracker(GeneralTracker):
    """Logs in long form (``step,name,value``) to ``<run_dir>/log.csv``, so new metric names need no header."""

    name = "csv"
    requires_logging_directory = False

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path

    @property
    def tracker(self) -> Path:
        return self.path

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


def _flat(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested config as ``section.key`` scalars (trackers store hyper-parameters flat)."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict) and value:
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = (
                value if isinstance(value, bool | int | float | str) or value is None else str(value)
            )
    return flat


# ---------------------------------------------------------------------------------------------- evaluation


@torch.no_grad()
def predict_keypoints(model: VREMD, loader, accelerator: Accelerator, cfg: EvalConfig, desc: str):
    """Keypoints in image pixels and per-joint confidences for every validation row, each exactly once.

    Returns (on every process) ``index`` [R] row indices, ``coords`` [R, J, 2] and ``scores`` [R, J] as numpy,
    gathered across processes with ``gather_for_metrics`` (which drops the padding of the last batch).
    """
    mc = model.config
    model.eval()
    indices, coords_all, scores_all = [], [], []
    for batch in tqdm(loader, desc=desc, leave=False, disable=not accelerator.is_main_process):
        with accelerator.autocast():
            heatmaps = predict_heatmaps(model, batch["pixel_values"], flip_test=cfg.flip_test)
        coords, scores = decode_heatmaps(heatmaps.float(), refine=cfg.refine)
        coords = heatmap_to_image(
            coords, batch["image_from_crop"], heatmap_size=mc.heatmap_size, image_size=mc.image_size
        )
        index, coords, scores = accelerator.gather_for_metrics((batch["index"], coords, scores))
        indices.append(index.cpu())
        coords_all.append(coords.cpu())
        scores_all.append(scores.float().cpu())
    return torch.cat(indices).numpy(), torch.cat(coords_all).double().numpy(), torch.cat(scores_all).double().numpy()


def mean_pose_baseline(train_rows, val_rows) -> tuple[np.ndarray, np.ndarray]:
    """The "mean pose in the box" baseline: each joint at its mean box-relative training position.

    Positions are relative to the box (0..1 across width and height); the confidence of a joint is the
    fraction of training persons where it is labelled. Returns ``coords`` [R, J, 2] and ``scores`` [R, J].
    """
    keypoints = np.asarray(train_rows["keypoints"], dtype=np.float64)  # [M, J, 3]
    boxes = np.asarray(train_rows["bbox"], dtype=np.float64)  # [M, 4]
    relative = (keypoints[..., :2] - boxes[:, None, :2]) / np.maximum(boxes[:, None, 2:], 1.0)
    visible = keypoints[..., 2] > 0
    counts = visible.sum(0)
    mean = (relative * visible[..., None]).sum(0) / np.maximum(counts, 1)[:, None]  # [J, 2]
    val_boxes = np.asarray(val_rows["bbox"], dtype=np.float64)
    coords = val_boxes[:, None, :2] + mean[None] * val_boxes[:, None, 2:]
    scores = np.broadcast_to(counts / max(len(keypoints), 1), coords.shape[:2])
    return coords, np.ascontiguousarray(scores)


def write_predictions(out_dir: Path, val_rows: dict[str, list], index, coords, scores, gt_dir: Path) -> int:
    """Per-sequence PoseTrack18-style prediction files, one per ground-truth file, as poseval reads them.

    Each file is named like its ground-truth file and lists the ground truth's frames in ground-truth order
    (poseval pairs frames by position); a joint's score is its heatmap confidence times the box score
    (DCPose's rule). Returns the number of person predictions written.
    """
    people: dict[str, list[dict[str, Any]]] = {}
    image_ids: dict[str, int] = {}
    for row, xy, joint_scores in zip(index.tolist(), coords, scores, strict=True):
        image_id = int(val_rows["image_id"][row])
        image_ids[val_rows["file_name"][row]] = image_id
        final = joint_scores * float(val_rows["box_score"][row])
        in_frame = people.setdefault(val_rows["video"][row], [])
        in_frame.append(
            {
                "image_id": image_id,
                "category_id": 1,
                "keypoints": np.concatenate([xy, final[:, None]], axis=1).round(2).reshape(-1).tolist(),
                "scores": final.round(4).tolist(),
                "track_id": sum(p["image_id"] == image_id for p in in_frame),
            }
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    category = {"id": 1, "name": "person", "keypoints": list(JOINT_NAMES)}
    for gt_file in sorted(gt_dir.glob("*.json")):
        images = [
            {"id": image_ids.get(name, image_id if image_id is not None else -1 - k), "file_name": name}
            for k, (image_id, name) in enumerate(_gt_frames(gt_file))
        ]
        predictions = {"images": images, "annotations": people.get(gt_file.stem, []), "categories": [category]}
        _write_json(out_dir / gt_file.name, predictions)
    return len(index)


def _gt_frames(path: Path) -> list[tuple[int | None, str]]:
    """(image id, file name) of every frame of a ground-truth file: PoseTrack18/21 JSON or PoseTrack17 annolist."""
    data = json.loads(path.read_text())
    if "images" in data:
        return [(image["id"], image["file_name"]) for image in data["images"]]
    return [(None, frame["image"][0]["name"]) for frame in data.get("annolist", [])]


def gt_folder(cfg: Config, root: Path) -> Path:
    """Ground-truth annotation folder of the validation split."""
    if cfg.eval.gt is not None:
        return Path(cfg.eval.gt)
    pt21 = cfg.data.version == "2021" or (cfg.data.version is None and (root / "posetrack_data").is_dir())
    return root / ("posetrack_data" if pt21 else "annotations") / cfg.data.val_split


def summary_table(history: list[dict[str, Any]]) -> str:
    """The AP rows of every evaluation so far, one line each (name, then the poseval columns)."""
    width = max(len(entry["name"]) for entry in history)
    lines = [f"{'':<{width}}  " + " ".join(f"{c:>6}" for c in AP_COLUMNS)]
    for entry in history:
        lines.append(f"{entry['name']:<{width}}  " + " ".join(f"{entry['ap'][c]:6.1f}" for c in AP_COLUMNS))
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- the loop


@dataclasses.dataclass(kw_only=True)
class Run:
    """Everything the loop touches, built once by ``main``."""

    cfg: Config
    accelerator: Accelerator
    run_dir: Path
    root: Path
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    train_loader: Any
    val_loader: Any
    val_rows: dict[str, list]
    train_rows: dict[str, list]


def validate(run: Run, state: TrainState, name: str) -> dict[str, Any]:
    """Predict every validation row, write the files, score them, print and log the AP table."""
    accelerator = run.accelerator
    model = accelerator.unwrap_model(run.model)
    index, coords, scores = predict_keypoints(model, run.val_loader, accelerator, run.cfg.eval, desc=f"eval {name}")
    entry: dict[str, Any] = {"name": name, "step": state.step, "epoch": state.epoch}
    state.evaluated_step = state.step
    if accelerator.is_main_process:
        total = len(run.val_rows["video"])
        if len(np.unique(index)) != len(index) or len(index) != total:
            raise RuntimeError(f"validation predicted {len(index)} rows, {len(np.unique(index))} distinct, of {total}")
        entry |= _score_predictions(run, "latest", index, coords, scores)
        accelerator.print(f"\n{name} (step {state.step}): {entry['table']}")
        accelerator.log(
            {f"val/{k}": v for k, v in entry["ap"].items()} | {"val/num_samples": len(index)}, step=state.step
        )
        state.history.append({k: v for k, v in entry.items() if k != "table"})
    accelerator.wait_for_everyone()
    model.train()
    return entry


def _score_predictions(run: Run, tag: str, index, coords, scores) -> dict[str, Any]:
    gt_dir = gt_folder(run.cfg, run.root)
    out_dir = run.run_dir / "predictions" / tag
    shutil.rmtree(out_dir, ignore_errors=True)
    count = write_predictions(out_dir, run.val_rows, index, coords, scores, gt_dir)
    result: EvalResult = evaluate(gt_dir, out_dir, protocol=run.cfg.eval.protocol)
    _write_json(out_dir.with_name(f"{tag}.ap.json"), result.to_dict())
    return {"ap": {k: float(result.ap[k]) for k in AP_COLUMNS}, "num_samples": count, "table": format_table(result)}


def run_baselines(run: Run, state: TrainState) -> None:
    """Score the "mean pose in the box" baseline (main process) and the untrained model (all processes)."""
    accelerator = run.accelerator
    if accelerator.is_main_process:
        coords, scores = mean_pose_baseline(run.train_rows, run.val_rows)
        entry = {"name": "mean pose in the box", "step": 0, "epoch": 0}
        entry |= _score_predictions(run, "mean_pose", np.arange(len(coords)), coords, scores)
        accelerator.print(f"\nmean pose in the box: {entry['table']}")
        accelerator.log({f"baseline_mean_pose/{k}": v for k, v in entry["ap"].items()}, step=0)
        state.history.append({k: v for k, v in entry.items() if k != "table"})
    validate(run, state, "untrained")


def train(run: Run, state: TrainState) -> None:
    """Epochs of accumulate / autocast / backward / step, evaluating and checkpointing on schedule."""
    cfg, accelerator = run.cfg, run.accelerator
    max_steps = cfg.schedule.max_steps
    run.model.train()
    while state.epoch < cfg.schedule.epochs and not (max_steps is not None and state.step >= max_steps):
        run.train_loader.set_epoch(state.epoch)
        run.train_loader.dataset.set_epoch(state.epoch)
        loader = run.train_loader
        if state.batch_in_epoch:
            loader = accelerator.skip_first_batches(run.train_loader, state.batch_in_epoch)
        bar = tqdm(
            loader,
            desc=f"epoch {state.epoch + 1}/{cfg.schedule.epochs}",
            initial=state.batch_in_epoch,
            total=len(run.train_loader),
            disable=not accelerator.is_main_process,
        )
        for batch in bar:
            loss = train_step(run, batch)
            state.batch_in_epoch += 1
            if loss is None:
                continue
            state.step += 1
            if state.step % cfg.run.log_every_steps == 0:
                mean_loss = accelerator.reduce(loss, "mean").item()
                accelerator.log(
                    {"train/loss": mean_loss, "train/lr": run.scheduler.get_last_lr()[0], "train/epoch": state.epoch},
                    step=state.step,
                )
                bar.set_postfix(loss=f"{mean_loss:.3g}")
            if max_steps is not None and state.step >= max_steps:
                break
            if cfg.run.checkpoint_every_steps and state.step % cfg.run.checkpoint_every_steps == 0:
                save_checkpoint(accelerator, run.run_dir, state, cfg.run.keep_checkpoints)
        bar.close()
        if state.batch_in_epoch >= len(run.train_loader):
            state.epoch, state.batch_in_epoch = state.epoch + 1, 0
            if state.epoch % cfg.eval.every_epochs == 0 or state.epoch == cfg.schedule.epochs:
                validate(run, state, f"epoch {state.epoch}")
        save_checkpoint(accelerator, run.run_dir, state, cfg.run.keep_checkpoints)
    if state.evaluated_step != state.step:
        validate(run, state, f"step {state.step}")


def train_step(run: Run, batch: dict[str, torch.Tensor]) -> torch.Tensor | None:
    """One batch; returns the detached loss when the optimizer stepped (end of an accumulation), else None."""
    accelerator = run.accelerator
    with accelerator.accumulate(run.model):
        with accelerator.autocast():
            output = run.model(batch["pixel_values"], batch["target_heatmaps"], batch["target_weight"])
        accelerator.backward(output.loss)
        if accelerator.sync_gradients and run.cfg.optimizer.grad_clip is not None:
            accelerator.clip_grad_norm_(run.model.parameters(), run.cfg.optimizer.grad_clip)
        run.optimizer.step()
        if accelerator.sync_gradients:
            run.scheduler.step()
        run.optimizer.zero_grad(set_to_none=True)
    return output.loss.detach() if accelerator.sync_gradients else None


# ---------------------------------------------------------------------------------------------- save


def save_model(run: Run, state: TrainState) -> Path:
    """``save_pretrained`` into ``<run_dir>/model`` with a model card that reports the measured AP."""
    out = run.run_dir / "model"
    partial = run.run_dir / ".partial-model"
    shutil.rmtree(partial, ignore_errors=True)
    final_ap = state.history[-1]["ap"]
    metrics = {f"{column} AP": f"{final_ap[column]:.1f}" for column in AP_COLUMNS}
    # The model's own card (config, ablation flags, metrics) first, then how this run trained and scored.
    run.accelerator.unwrap_model(run.model).save_pretrained(partial, model_card_kwargs={"metrics": metrics})
    _write_text(partial / "train_config.yaml", yaml.safe_dump(config_to_dict(run.cfg), sort_keys=False))
    card = partial / "README.md"
    _write_text(card, card.read_text() + "\n" + training_section(run.cfg, state))
    shutil.rmtree(out, ignore_errors=True)
    os.replace(partial, out)
    return out


def training_section(cfg: Config, state: TrainState) -> str:
    """The model card's training part: the AP table of every evaluation and the command that reproduces it."""
    dataset = f"PoseTrack{cfg.data.version or ''} {cfg.data.val_split}" if cfg.data.root else "VREMD synthetic val"
    final = state.history[-1]
    boxes = "detector boxes" if cfg.eval.boxes == "detector" else "ground-truth boxes"
    return (
        f"## Training ({cfg.model.preset})\n\n"
        f"Trained with `train.py` for {state.step} steps ({state.epoch} epochs). Measured on {dataset} "
        f"({boxes}, flip test {'on' if cfg.eval.flip_test else 'off'}, posetrack-eval `{cfg.eval.protocol}`): "
        f"**mAP {final['ap']['Total']:.1f}**.\n\n"
        f"```\n{summary_table(state.history)}\n```\n\n"
        "Reproduce: `accelerate launch train.py --config train_config.yaml` (the resolved run config, in this "
        "folder).\n"
    )


# ---------------------------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """``--config``, ``--base``, ``--set`` and ``--resume``."""
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", type=Path, help="YAML run config (default: configs/default.yaml)")
    parser.add_argument("--base", type=Path, help="use this file instead of the config's own base:")
    parser.add_argument("--set", dest="overrides", nargs="+", action="extend", default=[], metavar="KEY=VALUE")
    parser.add_argument("--resume", type=Path, help="run directory (or checkpoint folder) to continue exactly")
    return parser.parse_args(argv)


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


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``train.py``; a config or data mistake prints one line to stderr and returns 2."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    try:
        return _main(args)
    except (ConfigError, PoseTrackFormatError, EvalFormatError) as error:
        sys.stderr.write(f"train.py: error: {error}\n")
        return 2


def _main(args: argparse.Namespace) -> int:
    """Config, data, model, optimizer, loop, evaluation, save: the whole run."""
    # config
    config_path = args.config
    if config_path is None and args.resume is not None:
        config_path = find_checkpoint(args.resume).parent.parent / "config.yaml"
    cfg = load_config(config_path, args.overrides, base=args.base)
    model_config = resolve_model_config(cfg.model)
    run_dir, checkpoint = resolve_run_dir(cfg, args.resume)
    cfg = dataclasses.replace(cfg, run=dataclasses.replace(cfg.run, output_dir=str(run_dir)))

    trackers = build_trackers(cfg.logging, run_dir)
    accelerator = Accelerator(
        mixed_precision=cfg.run.mixed_precision,
        gradient_accumulation_steps=cfg.run.gradient_accumulation_steps,
        log_with=trackers,
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
    accelerator.wait_for_everyone()  # every process has picked the same run_dir before it is created
    if accelerator.is_main_process:
        run_dir.mkdir(parents=True, exist_ok=True)
        _write_text(run_dir / "config.yaml", yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
    accelerator.init_trackers(cfg.logging.project, config=_flat(config_to_dict(cfg)))
    accelerator.print(f"run directory: {run_dir} ({accelerator.num_processes} process(es), {accelerator.device})")
    set_seed(cfg.run.seed)

    # data
    root = prepare_data_root(cfg.data, accelerator)
    train_set, val_set = build_datasets(cfg, root, model_config, accelerator)
    train_loader, val_loader = build_loaders(cfg, train_set, val_set)

    # model and optimizer
    model = build_model(cfg.model, model_config)
    optimizer = build_optimizer(model, cfg.optimizer)
    model, optimizer, train_loader, val_loader = accelerator.prepare(model, optimizer, train_loader, val_loader)
    steps_per_epoch = math.ceil(len(train_loader) / cfg.run.gradient_accumulation_steps)
    # Stepped by the loop once per optimizer step, on every process alike; accelerate's scheduler wrapper
    # would step it num_processes times per call, so it is only registered for checkpointing.
    scheduler = build_scheduler(optimizer, cfg.schedule, steps_per_epoch)
    accelerator.register_for_checkpointing(scheduler)

    run = Run(
        cfg=cfg,
        accelerator=accelerator,
        run_dir=run_dir,
        root=root,
        model=model,
        optimizer=optimizer,
        scheduler=scheduler,
        train_loader=train_loader,
        val_loader=val_loader,
        val_rows=val_set.rows.select_columns(["video", "image_id", "file_name", "box_score", "bbox"]).to_dict(),
        train_rows=train_set.rows.select_columns(["keypoints", "bbox"]).to_dict(),
    )

    state = TrainState()
    if checkpoint is not None:
        accelerator.load_state(str(checkpoint))
        state = TrainState(**json.loads((checkpoint / "trainer_state.json").read_text()))
        accelerator.print(
            f"resumed from {checkpoint} (epoch {state.epoch}, batch {state.batch_in_epoch}, step {state.step})"
        )
    elif cfg.eval.baselines:
        run_baselines(run, state)

    # loop, evaluation, save
    train(run, state)
    if accelerator.is_main_process:
        out = save_model(run, state)
        accelerator.print(f"\n{summary_table(state.history)}\n\nsaved {out}")
    accelerator.end_training()
    return 0


if __name__ == "__main__":
    sys.exit(main())
