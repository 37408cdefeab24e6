"""Fill a VREMD's backbone or H_m decoder from another model's weights, after a strict key and shape check.

The sources of :func:`init_backbone` and :func:`init_head` are what the project writes: a
``vremd-convert-vitpose`` output folder, a ``save_pretrained`` folder (e.g. a trained single-frame baseline), or
the ``model.safetensors`` inside either. Only the keys a function names are read (``backbone.vit.*`` or
``motion_head.conv.*``); every other key of the file is ignored, so a full VREMD or a baseline can seed any
ablation. A position embedding trained on another token grid is resized; any other missing, extra or differently
shaped key raises one :class:`InitialisationError` line naming the file, and nothing is copied then.
:func:`load_vitpose_into` does the same for a ViTPose state dict converted in memory.
"""

import os
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from vremd_models.weights.layouts import ConvertedCheckpoint
from vremd_models.weights.names import BACKBONE_PREFIX, CONFIG_FILE, HEAD_PREFIX, POS_EMBED, WEIGHTS_FILE
from vremd_models.weights.pos_embed import resize_pos_embed
from vremd_models.weights.reading import read_safetensors, read_vremd_config
from vremd_models.weights.report import CheckpointMismatchError, KeyReport, compare_keys

__all__ = ["InitialisationError", "init_backbone", "init_head", "load_vitpose_into"]


class InitialisationError(ValueError):
    """A source checkpoint cannot initialise the requested part of the model (message: file and mismatch)."""


def init_backbone(model: nn.Module, source: str | os.PathLike) -> Path:
    """Copy the ViT backbone (``backbone.vit.*``) of ``source`` into ``model``; returns the file read.

    The position embedding is resized when the source was trained on another token grid (read from the
    ``config.json`` beside the weights, or a square grid).

    Shapes:
        pos_embed in the file: Float[1, N_src, D] -> Float[1, N, D] of the model
    """
    return _init_part(model, source, BACKBONE_PREFIX)


def init_head(model: nn.Module, source: str | os.PathLike) -> Path:
    """Copy H_m's decoder (``motion_head.conv.*``, the heatmap convolution) of ``source`` into ``model``.

    The projection of the motion features into H_m is not part of a single-frame model and keeps its zero
    initialisation, so at step 0 H_m is the source's single-frame head. Returns the file read.
    """
    return _init_part(model, source, HEAD_PREFIX)


def load_vitpose_into(model: nn.Module, converted: ConvertedCheckpoint, *, include_head: bool = False) -> KeyReport:
    """Copy converted ViTPose weights into a ``VREMD`` after a strict key and shape check.

    Every ``backbone.vit.*`` parameter (and ``motion_head.conv.*`` with ``include_head``) must be provided
    with the model's shape, and every converted or leftover checkpoint key must land somewhere.

    Raises:
        CheckpointMismatchError: anything missing, unexpected or mismatched (nothing is copied then).
    """
    target = _under(model, (BACKBONE_PREFIX, HEAD_PREFIX) if include_head else (BACKBONE_PREFIX,))
    report = compare_keys(target, converted.state_dict)
    report.unexpected = sorted([*converted.report.unexpected, *report.unexpected])
    report.skipped = list(converted.report.skipped)
    if not report.ok:
        raise CheckpointMismatchError(report)
    _copy(target, converted.state_dict)
    return report


def _init_part(model: nn.Module, source: str | os.PathLike, prefix: str) -> Path:
    path = _weights_file(source)
    try:
        tensors = read_safetensors(path, prefix=prefix)
    except ValueError as err:
        raise InitialisationError(str(err)) from None
    target = _under(model, (prefix,))
    if POS_EMBED in tensors and POS_EMBED in target:
        tensors[POS_EMBED] = _resized_pos_embed(path, tensors[POS_EMBED], target[POS_EMBED], model.config.grid_size)
    report = compare_keys(target, tensors)
    if not report.ok:
        raise InitialisationError(f"{path}: {report.summary()}")
    _copy(target, tensors)
    return path


def _weights_file(source: str | os.PathLike) -> Path:
    """The safetensors file of ``source``: the file itself, or ``model.safetensors`` in a model folder."""
    path = Path(source)
    if path.is_dir():
        path = path / WEIGHTS_FILE
    if not path.is_file():
        hint = "convert one with vremd-convert-vitpose or save a model with save_pretrained"
        raise InitialisationError(f"{path}: no such weights file ({hint})")
    if path.suffix != ".safetensors":
        raise InitialisationError(f"{path}: not a .safetensors file (pickle checkpoints are never read)")
    return path


def _resized_pos_embed(
    path: Path, source: torch.Tensor, target: torch.Tensor, grid_size: tuple[int, int]
) -> torch.Tensor:
    """The source's position embedding on the model's token grid (another width is left to the key report)."""
    if source.shape == target.shape or source.ndim != 3 or source.shape[-1] != target.shape[-1]:
        return source
    config_path = path.with_name(CONFIG_FILE)
    source_grid = None
    if config_path.is_file():
        try:
            saved_grid = read_vremd_config(config_path).grid_size
        except ValueError as err:
            raise InitialisationError(str(err)) from None
        source_grid = saved_grid if saved_grid[0] * saved_grid[1] == source.shape[1] else None
    try:
        return resize_pos_embed(source, grid_size, source_grid)
    except ValueError as err:
        why = "" if config_path.is_file() else ", and no config.json beside it gives the source grid"
        raise InitialisationError(f"{path}: {err}{why}") from None


def _under(model: nn.Module, prefixes: tuple[str, ...]) -> dict[str, torch.Tensor]:
    return {key: value for key, value in model.state_dict().items() if key.startswith(prefixes)}


def _copy(target: Mapping[str, torch.Tensor], tensors: Mapping[str, torch.Tensor]) -> None:
    with torch.no_grad():
        for key, tensor in tensors.items():
            target[key].copy_(tensor)
