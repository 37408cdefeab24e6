"""Data wiring: the synthetic dataset cache, ``load_posetrack`` rows through ``TopDownTransform``, loaders."""

import os
import shutil
from pathlib import Path
from typing import Any, Final

import datasets
import numpy as np
import torch
from accelerate import Accelerator

from posetrack_data import FrameGroupedOrder, TopDownTransform, generate_dataset, load_posetrack
from posetrack_data.torch_decode import check_device
from training.config import Config, ConfigError, DataConfig, config_hash

__all__ = [
    "SYNTHETIC_VERSION",
    "Examples",
    "build_datasets",
    "build_eval_examples",
    "build_loaders",
    "eval_loader",
    "prepare_data_root",
    "synthetic_options",
    "synthetic_root",
]

# Bumped when the generator writes different files for the same options (a new condition rule, say), so that
# a stale cached dataset is not reused.
SYNTHETIC_VERSION: Final = 1


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
            generate_dataset(partial, **synthetic_options(cfg))
            os.replace(partial, root)
    return root


def synthetic_options(cfg: DataConfig) -> dict[str, Any]:
    """The ``generate_dataset`` keywords (``posetrack-data synth`` options) that ``cfg`` sets.

    Every one that changes the files, so that they all name the cache folder.
    """
    return {
        "num_videos": cfg.synthetic_videos,
        "num_val_videos": cfg.synthetic_val_videos,
        "num_test_videos": cfg.synthetic_test_videos,
        "num_frames": cfg.synthetic_frames,
        "eval_frames": cfg.synthetic_eval_frames,
        "num_pretrain_frames": cfg.synthetic_pretrain_frames,
        "image_size": tuple(cfg.synthetic_image_size),
        "seed": cfg.synthetic_seed,
        "crossing": cfg.synthetic_crossing,
        "background_motion": cfg.synthetic_background_motion,
        "occlusion_prob": cfg.synthetic_occlusion_prob,
        "blur_prob": cfg.synthetic_blur_prob,
        "defocus_prob": cfg.synthetic_defocus_prob,
    }


def synthetic_root(cfg: DataConfig) -> Path:
    """The cache folder of the synthetic dataset that ``cfg`` describes.

    Named by the hash of every option and ``SYNTHETIC_VERSION``, behind a readable prefix.
    """
    width, height = cfg.synthetic_image_size
    name = f"synthetic-{cfg.synthetic_videos}v{cfg.synthetic_frames}f-{width}x{height}-seed{cfg.synthetic_seed}"
    return Path(cfg.cache_dir) / f"{name}-{config_hash([SYNTHETIC_VERSION, synthetic_options(cfg)])}"


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
        examples = {key: _as_tensor(batch[key]) for key in self.KEYS}
        return examples | {"index": torch.tensor(indices)}

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {key: value[0] for key, value in self.__getitems__([index]).items()}


def _as_tensor(value: np.ndarray | torch.Tensor) -> torch.Tensor:
    # with data.decode_device the transform returns tensors (pixel_values already on that device)
    return value if isinstance(value, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(value))


def build_datasets(cfg: Config, root: Path, accelerator: Accelerator) -> tuple[Examples, Examples]:
    """Train and validation ``Examples`` (``build_eval_examples`` of ``data.val_split``).

    Crops and targets have the sizes of ``cfg.model.resolved``; frames are decoded on ``data.decode_device``.
    """
    data = cfg.data
    if data.decode_device is not None:
        try:
            check_device(data.decode_device)
        except ValueError as error:
            raise ConfigError(f"data.decode_device: {error}") from None
    with accelerator.local_main_process_first():
        train_rows = load_posetrack(root, data.version, split=data.train_split)
    augment = {
        "max_rotation": data.rotation,
        "scale_range": data.scale,
        "half_body_prob": data.half_body_prob,
        "flip_prob": data.flip_prob,
    }
    train = Examples(train_rows, {"train": True, **_transform_sizes(cfg, root), **augment}, seed=cfg.run.seed)
    return train, build_eval_examples(cfg, root, data.val_split, accelerator)


def build_eval_examples(cfg: Config, root: Path, split: str, accelerator: Accelerator) -> Examples:
    """``Examples`` of a split to score.

    Rows are detector boxes (``data.val_detections`` for the validation split, else
    ``<root>/person_detections/<split>.json``) or, with ``eval.boxes: gt``, the ground-truth persons.
    """
    data = cfg.data
    detections = None
    if cfg.eval.boxes == "detector":
        given = data.val_detections if split == data.val_split else None
        detections = Path(given) if given else root / "person_detections" / f"{split}.json"
    with accelerator.local_main_process_first():
        rows = load_posetrack(
            root, data.version, split=split, detections=detections, min_detection_score=data.min_detection_score
        )
    return Examples(rows, {"train": False, **_transform_sizes(cfg, root)}, seed=cfg.run.seed)


def _transform_sizes(cfg: Config, root: Path) -> dict[str, Any]:
    """The ``TopDownTransform`` arguments shared by training and scoring."""
    model_config = cfg.model.resolved
    return {
        "root": str(root),  # the rows' frame_paths are relative to it
        "image_size": model_config.image_size,
        "heatmap_size": model_config.heatmap_size,
        "sigma": cfg.data.sigma,
        "flip_pairs": model_config.flip_pairs,
        "torch_decode_device": cfg.data.decode_device,
        "return_tensors": "np" if cfg.data.decode_device is None else "pt",  # the device path returns tensors
    }


def _batch(examples: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # Examples.__getitems__ already returns the collated batch.
    return examples


def build_loaders(cfg: Config, train: Examples, val: Examples):
    """DataLoaders with private generators, so loading never draws from the global torch RNG.

    ``data.order: frame_grouped`` replaces the shuffle with a ``FrameGroupedOrder`` sampler seeded by the run's
    seed; accelerate's ``set_epoch`` reaches it (and shards its batches across processes) as it does a shuffle.
    """
    common = {"num_workers": cfg.data.num_workers, "collate_fn": _batch}
    if cfg.data.order == "frame_grouped":
        order = {"sampler": FrameGroupedOrder(train.rows["image_id"], seed=cfg.run.seed)}
    else:
        order = {"shuffle": True, "generator": torch.Generator().manual_seed(cfg.run.seed)}
    train_loader = torch.utils.data.DataLoader(train, batch_size=cfg.data.batch_size, drop_last=True, **order, **common)
    return train_loader, eval_loader(cfg, val)


def eval_loader(cfg: Config, examples: Examples):
    """The loader of a split to score: ``data.val_batch_size`` rows at a time, in order."""
    return torch.utils.data.DataLoader(
        examples,
        batch_size=cfg.data.val_batch_size,
        shuffle=False,
        generator=torch.Generator(),
        num_workers=cfg.data.num_workers,
        collate_fn=_batch,
    )
