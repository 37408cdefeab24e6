"""Start a VREMD's backbone or H_m decoder from another model's weights (a pretrained single-frame model).

The sources are what the project writes: a ``vremd-convert-vitpose`` output folder, a ``save_pretrained``
folder (e.g. a trained single-frame baseline), or the ``model.safetensors`` inside either. Only the keys a
function names are read (``backbone.vit.*`` or ``motion_head.conv.*``); every other key of the file is
ignored, so a full VREMD or a baseline can seed any ablation. A position embedding trained on another token
grid is resized (bicubic, as timm does); any other missing key or shape difference raises one
:class:`InitialisationError` line naming the file and the mismatch, and nothing is copied then.
"""

import json
import logging
import os
from pathlib import Path
from typing import Final

import safetensors
import torch
from timm.layers import resample_abs_pos_embed
from torch import nn

__all__ = ["InitialisationError", "init_backbone", "init_head", "resolve_weights_file"]

logger = logging.getLogger(__name__)

WEIGHTS_FILE: Final = "model.safetensors"
BACKBONE_PREFIX: Final = "backbone.vit."
HEAD_PREFIX: Final = "motion_head.conv."
POS_EMBED: Final = BACKBONE_PREFIX + "pos_embed"


class InitialisationError(ValueError):
    """A source checkpoint cannot initialise the requested part of the model (message: file and mismatch)."""


def resolve_weights_file(source: str | os.PathLike) -> Path:
    """The safetensors file of ``source``: the file itself, or ``model.safetensors`` in a model folder.

    Raises:
        InitialisationError: no such file or folder, or a folder without ``model.safetensors``.
    """
    path = Path(source)
    if path.is_dir():
        path = path / WEIGHTS_FILE
    if not path.is_file():
        hint = "convert one with vremd-convert-vitpose or save a model with save_pretrained"
        raise InitialisationError(f"{path}: no such weights file ({hint})")
    if path.suffix != ".safetensors":
        raise InitialisationError(f"{path}: not a .safetensors file (pickle checkpoints are never read)")
    return path


def init_backbone(model: nn.Module, source: str | os.PathLike) -> Path:
    """Copy the ViT backbone (``backbone.vit.*``) of ``source`` into ``model``; returns the file read.

    The position embedding is resized when the source was trained on another token grid (read from the
    ``config.json`` beside the weights, or a square grid).

    Shapes:
        pos_embed in the file: Float[1, N_src, D] -> Float[1, N, D] of the model
    """
    return _load_prefixed(model, source, BACKBONE_PREFIX)


def init_head(model: nn.Module, source: str | os.PathLike) -> Path:
    """Copy H_m's decoder (``motion_head.conv.*``, the heatmap convolution) of ``source`` into ``model``.

    The projection of the motion features into H_m is not part of a single-frame model and keeps its zero
    initialisation, so at step 0 H_m is the source's single-frame head. Returns the file read.
    """
    return _load_prefixed(model, source, HEAD_PREFIX)


def _load_prefixed(model: nn.Module, source: str | os.PathLike, prefix: str) -> Path:
    path = resolve_weights_file(source)
    target = {k: v for k, v in model.state_dict().items() if k.startswith(prefix)}
    try:
        with safetensors.safe_open(path, framework="pt") as handle:
            available = set(handle.keys())
            missing = sorted(set(target) - available)
            if missing:
                more = f" (+{len(missing) - 3} more)" if len(missing) > 3 else ""
                raise InitialisationError(
                    f"{path}: missing {len(missing)} key(s) the model needs under {prefix}*: "
                    f"{', '.join(missing[:3])}{more}"
                )
            tensors = {key: handle.get_tensor(key) for key in target}
    except safetensors.SafetensorError as err:
        raise InitialisationError(f"{path}: not a readable safetensors file: {err}") from err
    extra = sorted(k for k in available if k.startswith(prefix) and k not in target)
    if extra:
        raise InitialisationError(
            f"{path}: {len(extra)} key(s) under {prefix}* that the model lacks (deeper model?): {', '.join(extra[:3])}"
        )
    if POS_EMBED in tensors and tensors[POS_EMBED].shape != target[POS_EMBED].shape:
        tensors[POS_EMBED] = _resize_pos_embed(path, tensors[POS_EMBED], target[POS_EMBED], model)
    for key, tensor in tensors.items():
        if tensor.shape != target[key].shape:
            raise InitialisationError(
                f"{path}: {key} has shape {list(tensor.shape)}, the model needs {list(target[key].shape)}"
            )
    with torch.no_grad():
        for key, tensor in tensors.items():
            target[key].copy_(tensor)
    return path


def _resize_pos_embed(path: Path, source: torch.Tensor, target: torch.Tensor, model: nn.Module) -> torch.Tensor:
    """Resample a patch position embedding from the source's token grid to the model's."""
    if source.ndim != 3 or source.shape[0] != 1 or source.shape[2] != target.shape[2]:
        raise InitialisationError(f"{path}: {POS_EMBED} has shape {list(source.shape)}, the model needs "
                                  f"{list(target.shape)}")  # fmt: skip
    grid = tuple(model.config.grid_size)
    source_grid = _source_grid(path, source.shape[1])
    if source_grid is None:
        raise InitialisationError(
            f"{path}: {POS_EMBED} holds {source.shape[1]} positions, neither the model's grid {grid} nor square, "
            f"and no config.json beside it gives the source grid"
        )
    logger.info("%s: resizing the position embedding from grid %s to %s", path, source_grid, grid)
    return resample_abs_pos_embed(source, new_size=list(grid), old_size=list(source_grid), num_prefix_tokens=0)


def _source_grid(path: Path, num_positions: int) -> tuple[int, int] | None:
    """The token grid of the source: from its config.json (image_size / patch_size), else a square grid."""
    config_path = path.with_name("config.json")
    if config_path.is_file():
        try:
            config = json.loads(config_path.read_text(encoding="utf-8"))
            grid = (config["image_size"][0] // config["patch_size"], config["image_size"][1] // config["patch_size"])
        except (ValueError, KeyError, TypeError, IndexError) as err:
            raise InitialisationError(f"{config_path}: cannot read image_size and patch_size: {err}") from err
        if grid[0] * grid[1] == num_positions:
            return grid
    side = round(num_positions**0.5)
    return (side, side) if side * side == num_positions else None
