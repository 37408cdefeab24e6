"""Budgets before allocation: a model's tensors compared with a weights file's header before the model exists.

A ``config.json`` whose every field is in range may still ask for far more than its weights hold (65536 ViT
blocks: ~29 GB). The model is therefore first built on the ``meta`` device, which allocates nothing, and its
tensors are compared with the safetensors header, whose every entry is checked against the file's size; only a
model that fits the file is then built for real. Building even a meta model costs time per block, so a config
asking for more blocks than the file holds tensors (each block owns at least one) is refused before that.
"""

from collections.abc import Callable
from pathlib import Path
from typing import Final

import torch
from torch import nn

from vremd_models.config import VREMDConfig
from vremd_models.weights.reading import safetensors_skeleton
from vremd_models.weights.report import KeyReport, compare_keys

__all__ = ["skeleton_report"]

# The VREMDConfig fields that count transformer blocks: the model holds that many modules of each.
_BLOCK_FIELDS: Final = (
    "backbone_depth", "hkme_human_blocks", "hkme_keypoint_blocks", "hkme_spatial_blocks", "hkme_temporal_blocks",
    "bmd_num_blocks",
)  # fmt: skip


def skeleton_report(build: Callable[[VREMDConfig], nn.Module], config: VREMDConfig, weights: str | Path) -> KeyReport:
    """How the model ``build(config)`` would fit the safetensors file `weights`, found without allocating it.

    Args:
        build: Makes the model from `config` (the model class).
        config: The model's config.
        weights: The safetensors file that is to fill it.

    Raises:
        ValueError: the file's header is malformed or disagrees with the file, or `config` asks for more blocks
            than the file holds tensors (names the file).
    """
    provided = safetensors_skeleton(weights)
    blocks = sum(getattr(config, name) for name in _BLOCK_FIELDS)
    if blocks > len(provided):
        raise ValueError(
            f"{weights}: config.json asks for {blocks} transformer blocks, but the file holds only {len(provided)} "
            "tensors (each block has at least one); config.json and the weights do not belong together"
        )
    with torch.device("meta"):
        model = build(config)
    return compare_keys(model.state_dict(), provided)
