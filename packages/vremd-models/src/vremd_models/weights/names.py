"""The names weight files go by: the files of a model folder, pickle suffixes, and VREMD's key prefixes."""

from typing import Final

__all__ = [
    "BACKBONE_PREFIX",
    "CONFIG_FILE",
    "HEAD_PREFIX",
    "PICKLE_SUFFIXES",
    "POS_EMBED",
    "SHARD_INDEX",
    "WEIGHTS_FILE",
]

# A model folder, as save_pretrained writes it and the hub serves it.
CONFIG_FILE: Final = "config.json"
WEIGHTS_FILE: Final = "model.safetensors"
SHARD_INDEX: Final = "model.safetensors.index.json"  # a sharded safetensors checkpoint (transformers)

# Checkpoints that only unpickling reads: never loaded from a model folder, and by the ViTPose converter only
# through torch.load(weights_only=True).
PICKLE_SUFFIXES: Final = (".bin", ".pt", ".pth", ".pkl", ".ckpt")

# VREMD's state-dict keys of the parts a single-frame checkpoint can fill.
BACKBONE_PREFIX: Final = "backbone.vit."  # the timm ViT
HEAD_PREFIX: Final = "motion_head.conv."  # H_m's heatmap convolution (ViTPose's simple decoder)
POS_EMBED: Final = BACKBONE_PREFIX + "pos_embed"
