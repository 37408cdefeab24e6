"""The run config of ``train.py`` and ``ablate.py``: typed dataclasses, read from YAML with ``base:`` chains.

``Config()`` is the default run (``configs/default.yaml``). ``load_config`` merges a file with its ``base:``
chain and ``--set`` overrides and builds the dataclasses with ``vremd_models.schema`` (the type rules of
``VREMDConfig``); each dataclass checks its own ranges in ``__post_init__``, and ``ModelConfig`` resolves its
``VREMDConfig`` there, once. A mistake is one ``ConfigError`` naming the file (or ``--set``) and the dotted key.

Every file and ``--set`` value goes through one strict YAML reader before anything is merged: a regular file of
UTF-8 text, no aliases (nested ones expand exponentially), no key twice in a mapping (YAML would keep the last
silently), and no key that is not a section or a field of one.
"""

import dataclasses
import hashlib
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import yaml

from posetrack_data import Version
from posetrack_data.outputs import input_file
from vremd_models import PRESETS, VREMDConfig
from vremd_models.decoding import Refine
from vremd_models.schema import FieldError, build, check_types, require

__all__ = [
    "DEFAULT_CONFIG",
    "Config",
    "ConfigError",
    "DataConfig",
    "EvalConfig",
    "LoggingConfig",
    "ModelConfig",
    "OptimizerConfig",
    "PretrainConfig",
    "RunConfig",
    "ScheduleConfig",
    "config_hash",
    "config_to_dict",
    "flat_config",
    "load_config",
    "run_key",
]

REPO_DIR = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = REPO_DIR / "configs" / "default.yaml"
# Run configs are a few kB; a larger file is not one.
_MAX_CONFIG_BYTES = 2**20


def _positive(value: float) -> bool:
    return math.isfinite(value) and value > 0


def _non_negative(value: float) -> bool:
    return math.isfinite(value) and value >= 0


def _counts(section: Any, minimum: int, *names: str) -> None:
    for name in names:
        require(getattr(section, name) >= minimum, name, getattr(section, name), f"at least {minimum}")


def _optional_counts(section: Any, *names: str) -> None:
    for name in names:
        value = getattr(section, name)
        require(value is None or value >= 1, name, value, "null or at least 1")


def _seeds(section: Any, *names: str) -> None:
    for name in names:
        value = getattr(section, name)
        require(0 <= value < 2**32, name, value, "in [0, 2**32) (the seeds numpy takes)")


def _milestones(section: Any, name: str) -> None:
    require(all(m >= 1 for m in getattr(section, name)), name, getattr(section, name), "epochs of at least 1")


@dataclasses.dataclass(frozen=True, kw_only=True)
class DataConfig:
    """Where the clips come from and how they become model inputs.

    Args:
        root: PoseTrack root (2017, 2018 or 2021 layout); ``None`` generates the synthetic dataset once into
            ``cache_dir`` and trains on that.
        version: PoseTrack version; ``None`` detects it from the layout.
        train_split: Split to train on.
        val_split: Split validated on during training: the dev split every choice is made on.
        test_split: Split scored once, after training, for the reported tables (never for choosing); ``None``:
            none. Its person boxes are ``<root>/person_detections/<test_split>.json``.
        val_detections: Person boxes for validation (COCO results list); ``None`` uses
            ``<root>/person_detections/<val_split>.json`` (where the synthetic generator writes them).
        min_detection_score: Detector boxes below this score are dropped (DCPose's 0.2).
        batch_size: Training examples per process and step.
        val_batch_size: Validation examples per process and step.
        num_workers: DataLoader worker processes.
        decode_device: Torch device that decodes the JPEG frames and crops them (``"cuda"``: nvJPEG, the
            crops warped on the GPU; ``TopDownTransform(torch_decode_device=...)``); ``None`` decodes on the CPU
            (libjpeg-turbo, at reduced resolution where the crop allows). Needs ``num_workers: 0``.
        order: Training row order per epoch: ``shuffle`` (every row in a random order) or ``frame_grouped``
            (``posetrack_data.FrameGroupedOrder``: key frames in a random order, the persons of each adjacent,
            so a batch decodes a frame once for all of its persons: docs/benchmarks.md has its speed, docs/results.md
            its accuracy).
        sigma: Gaussian sigma of the target heatmaps, in heatmap pixels.
        rotation: Random rotation limit in degrees (the paper's +-45).
        scale: Random scale range (the paper's 0.65-1.35).
        half_body_prob: Probability of the half-body crop.
        flip_prob: Probability of a horizontal flip in training.
        synthetic_videos: Synthetic videos, train and val together.
        synthetic_val_videos: Of those, the val (dev) videos; ``None``: a fifth.
        synthetic_test_videos: Synthetic test videos, besides ``synthetic_videos``.
        synthetic_eval_frames: Frames per val and test video, cut from a ``synthetic_frames`` clip (every labelled
            frame has both neighbours); ``None``: whole clips.
        synthetic_pretrain_frames: Single crowded frames of the ``pretrain`` split (stage 1 trains on them).
        synthetic_frames: Frames per synthetic video.
        synthetic_image_size: Synthetic frame size (W, H).
        synthetic_seed: Seed of the synthetic generator.
        synthetic_crossing: People overlap and cross (another person inside the target's enlarged box).
        synthetic_background_motion: The background and clutter move on their own.
        synthetic_occlusion_prob: Per figure and frame, probability of an occluder over its joints.
        synthetic_blur_prob: Per frame, probability of motion blur (never on two neighbouring frames).
        synthetic_defocus_prob: Per frame, probability of defocus (never on two neighbouring frames).
        cache_dir: Folder that holds generated synthetic datasets, one subfolder per setting.
    """

    root: str | None = None
    version: Version | None = None
    train_split: str = "train"
    val_split: str = "val"
    test_split: str | None = "test"
    val_detections: str | None = None
    min_detection_score: float = 0.2
    batch_size: int = 16
    val_batch_size: int = 32
    num_workers: int = 0
    decode_device: str | None = None
    order: Literal["shuffle", "frame_grouped"] = "shuffle"
    sigma: float = 2.0
    rotation: float = 15.0
    scale: tuple[float, float] = (0.8, 1.2)
    half_body_prob: float = 0.0
    flip_prob: float = 0.5
    synthetic_videos: int = 64
    synthetic_val_videos: int | None = 40
    synthetic_test_videos: int = 40
    synthetic_eval_frames: int | None = 11
    synthetic_pretrain_frames: int = 2000
    synthetic_frames: int = 40
    synthetic_image_size: tuple[int, int] = (320, 240)
    synthetic_seed: int = 0
    synthetic_crossing: bool = True
    synthetic_background_motion: bool = True
    synthetic_occlusion_prob: float = 0.15
    synthetic_blur_prob: float = 0.1
    synthetic_defocus_prob: float = 0.1
    cache_dir: str = "data"

    def __post_init__(self) -> None:
        check_types(self)
        _counts(self, 1, "batch_size", "val_batch_size")
        _counts(self, 0, "num_workers")
        # the transform decodes on the device in the process that calls it; forked workers cannot share CUDA
        require(
            self.decode_device is None or self.num_workers == 0,
            "decode_device",
            self.decode_device,
            f"null when num_workers > 0 (num_workers={self.num_workers})",
        )
        for name in ("min_detection_score", "half_body_prob", "flip_prob"):
            require(0 <= getattr(self, name) <= 1, name, getattr(self, name), "in [0, 1]")
        require(_positive(self.sigma), "sigma", self.sigma, "a finite number > 0")
        require(_non_negative(self.rotation), "rotation", self.rotation, "a finite number >= 0")
        low, high = self.scale
        require(
            _positive(low) and _positive(high) and low <= high, "scale", self.scale, "(low, high) with 0 < low <= high"
        )
        require(
            self.synthetic_videos >= 2, "synthetic_videos", self.synthetic_videos, "at least 2 (one train, one val)"
        )
        require(self.synthetic_frames >= 3, "synthetic_frames", self.synthetic_frames, "at least 3")
        val_videos = self.synthetic_val_videos
        require(
            val_videos is None or 1 <= val_videos < self.synthetic_videos,
            "synthetic_val_videos",
            val_videos,
            f"null or 1 to synthetic_videos - 1 = {self.synthetic_videos - 1}",
        )
        _counts(self, 0, "synthetic_test_videos", "synthetic_pretrain_frames")
        eval_frames = self.synthetic_eval_frames
        require(
            eval_frames is None or 3 <= eval_frames <= self.synthetic_frames,
            "synthetic_eval_frames",
            eval_frames,
            f"null or 3 to synthetic_frames = {self.synthetic_frames}",
        )
        _seeds(self, "synthetic_seed")


@dataclasses.dataclass(frozen=True, kw_only=True)
class ModelConfig:
    """Which VREMD to build; ``resolved`` is its ``VREMDConfig``, resolved and validated once, on construction.

    ``dataclasses.replace`` builds a new ``ModelConfig``, so ``resolved`` always matches ``preset`` and
    ``overrides``; everything downstream reads ``resolved`` and never resolves the preset again.

    Args:
        preset: A ``VREMDConfig`` preset name (``vremd-tiny``, ``vremd-vitb``, ``vremd-vitl``, ``vremd-vith``).
        overrides: ``VREMDConfig`` fields replaced on top of the preset (ablation flags, sizes); kept as plain
            JSON values (lists, not tuples), as a YAML file spells them.
        init_backbone: Where the backbone starts: a ``vremd-convert-vitpose`` folder, a ``save_pretrained``
            folder or its ``model.safetensors`` (only ``backbone.*`` is read); ``None`` keeps the random
            initialisation.
        init_head: Where H_m's decoder starts (a single-frame model, same kinds of source); ``None``: random.
    """

    preset: str = "vremd-tiny"
    # The paper's 256x192 input at patch 16 (a 16x12 token grid, what DCA's reach is relative to), narrower
    # HKME/BMD; the heads as the paper has them (configs/default.yaml gives the measurements).
    overrides: dict[str, Any] = dataclasses.field(
        default_factory=lambda: {
            "image_size": [256, 192],
            "heatmap_size": [64, 48],
            "hidden_dim": 64,
            "keypoint_head_hidden_dim": 64,
        }
    )
    init_backbone: str | None = None
    init_head: str | None = None
    resolved: VREMDConfig = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        require(self.preset in PRESETS, "preset", self.preset, f"one of {', '.join(PRESETS)}")
        # Plain JSON values, so that a config equals what its own config.yaml loads back to.
        object.__setattr__(self, "overrides", json.loads(json.dumps(self.overrides)))
        try:
            resolved = VREMDConfig.from_preset(self.preset, **self.overrides)
        except FieldError as error:
            raise error.under("overrides.") from None
        object.__setattr__(self, "resolved", resolved)
        check_types(self)


@dataclasses.dataclass(frozen=True, kw_only=True)
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

    def __post_init__(self) -> None:
        check_types(self)
        require(_positive(self.lr), "lr", self.lr, "a finite number > 0")
        require(_non_negative(self.weight_decay), "weight_decay", self.weight_decay, "a finite number >= 0")
        require(all(0 <= beta < 1 for beta in self.betas), "betas", self.betas, "two numbers in [0, 1)")
        grad_clip = self.grad_clip
        require(grad_clip is None or _positive(grad_clip), "grad_clip", grad_clip, "null or a finite number > 0")


@dataclasses.dataclass(frozen=True, kw_only=True)
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

    epochs: int = 1
    lr_milestones: list[int] = dataclasses.field(default_factory=list)
    lr_gamma: float = 0.1
    warmup_steps: int = 50
    max_steps: int | None = None

    def __post_init__(self) -> None:
        check_types(self)
        _counts(self, 1, "epochs")
        _milestones(self, "lr_milestones")
        require(_positive(self.lr_gamma), "lr_gamma", self.lr_gamma, "a finite number > 0")
        _counts(self, 0, "warmup_steps")
        _optional_counts(self, "max_steps")


@dataclasses.dataclass(frozen=True, kw_only=True)
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
        threads: Torch intra-op threads of each process (``torch.set_num_threads``), set before any work, so the
            figures do not depend on how the run is launched (``accelerate launch`` sets ``OMP_NUM_THREADS=1``,
            ``python`` leaves one thread per core: on a CPU the sums split differently); ``None`` keeps torch's
            own choice.
    """

    output_dir: str = "runs/default"
    seed: int = 0
    gradient_accumulation_steps: int = 1
    mixed_precision: Literal["no", "fp16", "bf16"] | None = None
    checkpoint_every_steps: int | None = None
    keep_checkpoints: int = 2
    log_every_steps: int = 10
    threads: int | None = 1

    def __post_init__(self) -> None:
        check_types(self)
        _counts(self, 1, "gradient_accumulation_steps", "keep_checkpoints", "log_every_steps")
        _optional_counts(self, "checkpoint_every_steps", "threads")
        _seeds(self, "seed")


@dataclasses.dataclass(frozen=True, kw_only=True)
class EvalConfig:
    """Validation: decode, map to image pixels, write poseval files, score with ``posetrack_eval``.

    Args:
        every_epochs: Evaluate after every this many epochs (and always at the end).
        boxes: ``"detector"`` (the paper's protocol) or ``"gt"`` person boxes.
        flip_test: Average the heatmaps of the image and its mirror image.
        refine: Sub-pixel refinement of the heatmap argmax: ``"dark"``, ``"quarter"`` or ``"none"``.
        protocol: Scoring protocol: ``"poseval"`` (PoseTrack17/18) or ``"pt21"``.
        tracking: Also score tracking: poseval's MOTA, or PoseTrack21's keypoint HOTA with ``protocol: pt21``.
            Track ids then come from ``vremd-predict``'s OKS tracker run over each video's labelled frames
            (``training.evaluation.write_predictions``); without it a person's track id is its index in its
            frame (as DCPose and mmpose write), which tracking scores would count as identity switches.
        gt: Ground-truth annotation folder; ``None`` uses the validation split's annotation folder in the data
            root (``posetrack_data.annotation_folder``).
        baselines: Before training, also score the untrained model and the "mean pose in the box" baseline.
        conditions: Also score the AP of H over the persons of each key-frame condition (occluded, motion blur,
            ...), from the ``<root>/subsets/<split>.json`` files the synthetic generator writes (PoseTrack has
            none).
    """

    every_epochs: int = 1
    boxes: Literal["detector", "gt"] = "detector"
    flip_test: bool = True
    refine: Refine = "dark"
    protocol: Literal["poseval", "pt21"] = "poseval"
    tracking: bool = False
    gt: str | None = None
    baselines: bool = True
    conditions: bool = True

    def __post_init__(self) -> None:
        check_types(self)
        _counts(self, 1, "every_epochs")


@dataclasses.dataclass(frozen=True, kw_only=True)
class LoggingConfig:
    """Trackers besides the always-on ``log.jsonl``.

    Args:
        trackers: Any of ``"csv"`` (``log.csv`` in the run directory), ``"tensorboard"``, ``"wandb"`` or
            another tracker name ``accelerate`` knows; the package must be installed.
        project: Project name handed to the trackers.
    """

    trackers: list[str] = dataclasses.field(default_factory=list)
    project: str = "vremd"

    def __post_init__(self) -> None:
        check_types(self)


@dataclasses.dataclass(frozen=True, kw_only=True)
class PretrainConfig:
    """Stage 1 of the miniature protocol (``training/pretrain.py``), the stand-in for COCO pretraining.

    With ``enabled`` and no ``model.init_backbone``, the run first trains the single-frame baseline (backbone
    trainable) on ``stage1_split`` of the same data root, caches it under ``data.cache_dir``, then trains this
    config on top of it with the backbone frozen and H_m's decoder starting from the baseline's head (stage 2).
    A cached stage 1 is reused by every run with the same data, backbone, optimizer and pretrain settings.

    Args:
        enabled: Run (or reuse) stage 1; the paper configs start from a converted COCO ViTPose instead.
        stage1_split: The split stage 1 trains on: the synthetic ``pretrain`` split of single crowded frames, the
            COCO stand-in, apart from the clips stage 2 trains and is tested on.
        stage1_epochs: Stage-1 epochs.
        stage1_lr_milestones: Stage-1 epochs after which the learning rate is multiplied by ``schedule.lr_gamma``.
        stage1_max_steps: Stop stage 1 after this many optimizer steps (tests).
        stage1_seed: Stage-1 seed; not ``run.seed``, so all seeds of stage 2 share one backbone.
    """

    enabled: bool = True
    stage1_split: str = "pretrain"
    stage1_epochs: int = 1
    stage1_lr_milestones: list[int] = dataclasses.field(default_factory=list)
    stage1_max_steps: int | None = None
    stage1_seed: int = 0

    def __post_init__(self) -> None:
        # stage 1 runs with these as schedule.epochs, lr_milestones and max_steps: the same ranges
        check_types(self)
        _counts(self, 1, "stage1_epochs")
        _milestones(self, "stage1_lr_milestones")
        _optional_counts(self, "stage1_max_steps")
        _seeds(self, "stage1_seed")


@dataclasses.dataclass(frozen=True, kw_only=True)
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
    pretrain: PretrainConfig = dataclasses.field(default_factory=PretrainConfig)

    def __post_init__(self) -> None:
        check_types(self)


class ConfigError(ValueError):
    """A run config that does not fit the schema; the message names the source file (or ``--set``) and the key."""


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
        ConfigError: unreadable file, unknown key, wrong type or impossible value (a bad ``model.overrides``
            value included); the message names the file the key came from (or ``--set``) and the key.
    """
    top = Path(path) if path is not None else DEFAULT_CONFIG
    merged: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for file in _config_chain(top, base):
        _merge(merged, _read_yaml(file), sources, str(file))
    for item in overrides:
        _apply_override(merged, sources, item)
    try:
        return build(Config, merged)
    except FieldError as error:
        raise ConfigError(f"{_source(sources, error.key, top)}: {error}") from None


def _source(sources: dict[str, str], key: str, top: Path) -> str:
    """Where ``key`` (or, for a value it did not set itself, its nearest set parent) came from."""
    parts = key.split(".")
    for end in range(len(parts), 0, -1):
        if (source := sources.get(".".join(parts[:end]))) is not None:
            return source
    return str(top)


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
    """One config file through the strict reader, its keys checked against the schema (types come later)."""
    try:
        size = input_file(path).stat().st_size
        if size > _MAX_CONFIG_BYTES:
            raise ConfigError(f"{path}: {size} bytes is too large for a run config (at most {_MAX_CONFIG_BYTES})")
        text = path.read_bytes().decode("utf-8")
    except OSError as error:
        raise ConfigError(f"{path}: cannot read the config: {error.strerror or error}") from None
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path}: not UTF-8 text (byte {error.start} is {error.object[error.start]:#04x})") from None
    data = _parse_yaml(text, str(path))
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    _check_keys(data, str(path))
    return data


class _StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` refusing aliases and repeated keys."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None, None, f"found the alias *{event.anchor}; aliases are not allowed in run configs", event.start_mark
            )
        return super().compose_node(parent, index)

    def construct_mapping(self, node: Any, deep: bool = False) -> dict[Any, Any]:
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, str | int | float | bool) or key is None:  # SafeLoader refuses unhashable keys itself
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"found the key {key!r} twice in one mapping", key_node.start_mark
                    )
                seen.add(key)
        return super().construct_mapping(node, deep)


def _parse_yaml(text: str, source: str) -> Any:
    try:
        return yaml.load(text, Loader=_StrictLoader)  # a SafeLoader, stricter still
    except yaml.YAMLError as error:
        raise ConfigError(f"{source}: not valid YAML: {' '.join(str(error).split())}") from None
    except RecursionError:
        raise ConfigError(f"{source}: not valid YAML: nested too deeply") from None


def _check_keys(data: dict[str, Any], source: str) -> None:
    """Every top-level key a section (or ``base``), every key of a section one of its fields."""
    sections = {section.name: section.type for section in dataclasses.fields(Config)}
    for key, value in data.items():
        if key == "base":
            continue
        if key not in sections:
            raise ConfigError(f"{source}: {key}: unknown key (valid: base, {', '.join(sections)})")
        if isinstance(value, dict):
            names = [field.name for field in dataclasses.fields(sections[key]) if field.init]
            unknown = next((name for name in value if name not in names), None)
            if unknown is not None:
                raise ConfigError(f"{source}: {key}.{unknown}: unknown key (valid: {', '.join(names)})")


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
        owners = [section.name for section in dataclasses.fields(Config) if key in _init_names(section.type)]
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
    node[leaf] = _parse_yaml(text, f"--set {item}") if text else None
    sources[key] = "--set"


def _init_names(cls: type) -> set[str]:
    return {field.name for field in dataclasses.fields(cls) if field.init}


def config_to_dict(cfg: Config) -> dict[str, Any]:
    """The config as plain YAML/JSON data, as a config file spells it (``load_config`` reads it back equal).

    Tuples become lists; ``ModelConfig.resolved`` is left out (it follows from the preset and the overrides).
    """
    return json.loads(json.dumps(_init_fields(cfg)))


def _init_fields(instance: Any) -> dict[str, Any]:
    values = {field.name: getattr(instance, field.name) for field in dataclasses.fields(instance) if field.init}
    return {name: _init_fields(v) if dataclasses.is_dataclass(v) else v for name, v in values.items()}


def config_hash(data: Any) -> str:
    """The one hash of configuration data (JSON with sorted keys): the first 12 hex digits of its SHA-256.

    Names the cache folders (synthetic data, stage 1) and keys ``ablate.py``'s runs.
    """
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:12]


def run_key(cfg: Config, **extra: Any) -> str:
    """``config_hash`` of what a run's weights and scores depend on, plus ``extra``.

    Leaves out where the run writes (``run.output_dir``) and what it logs to (``logging``), and takes the model
    as resolved, so two spellings of one model (a preset default repeated in the overrides) share a key.
    """
    keyed = config_to_dict(cfg)
    del keyed["run"]["output_dir"], keyed["logging"]
    keyed["model"]["overrides"] = json.loads(cfg.model.resolved.to_json_string())
    return config_hash(keyed | extra)


def flat_config(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested config as ``section.key`` scalars (trackers store hyper-parameters flat)."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict) and value:
            flat.update(flat_config(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = (
                value if isinstance(value, bool | int | float | str) or value is None else str(value)
            )
    return flat
