"""vremd_layers: VREMD building blocks as standalone torch layers.

Every layer takes plain constructor arguments, documents its shapes, and knows nothing about poses.
"""

from vremd_layers.aggregation import SpatioTemporalAggregation
from vremd_layers.attention import (
    Attention,
    AttentionBackend,
    DropPath,
    TransformerBlock,
    drop_path_rates,
    resolve_backend,
    transformer_blocks,
)
from vremd_layers.deformable import DeformableAttention, DeformableConvBlock, DeformableCrossAttention
from vremd_layers.masks import HumanMask, KeypointMask
from vremd_layers.motion import AdaptiveDeformableCrossBlock, DeformableConvMotionBlock, MotionFusion

__all__ = [
    "AdaptiveDeformableCrossBlock",
    "Attention",
    "AttentionBackend",
    "DeformableAttention",
    "DeformableConvBlock",
    "DeformableConvMotionBlock",
    "DeformableCrossAttention",
    "DropPath",
    "HumanMask",
    "KeypointMask",
    "MotionFusion",
    "SpatioTemporalAggregation",
    "TransformerBlock",
    "drop_path_rates",
    "resolve_backend",
    "transformer_blocks",
]
