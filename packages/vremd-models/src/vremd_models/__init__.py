"""vremd_models: the VREMD model, its config, presets, inference helpers and weight files (``weights``)."""

from vremd_models import timm_models  # registers the vitpose_* names with timm
from vremd_models.backbone import VITPOSE_VARIANTS, ViTPoseBackbone
from vremd_models.config import POSETRACK_FLIP_PAIRS, PRESETS, VREMDConfig
from vremd_models.decoding import decode_heatmaps
from vremd_models.heads import KeypointTokenHead, MotionHeatmapHead
from vremd_models.inference import flip_heatmaps, heatmap_to_image, predict_heatmaps
from vremd_models.modeling import VREMD, heatmap_loss
from vremd_models.output import VREMDOutput
from vremd_models.weights import (
    CheckpointMismatchError,
    ConvertedCheckpoint,
    InitialisationError,
    KeyReport,
    convert_vitpose_state_dict,
    init_backbone,
    init_head,
    load_vitpose_checkpoint,
    load_vitpose_into,
)

__all__ = [
    "POSETRACK_FLIP_PAIRS",
    "PRESETS",
    "VITPOSE_VARIANTS",
    "VREMD",
    "CheckpointMismatchError",
    "ConvertedCheckpoint",
    "InitialisationError",
    "KeyReport",
    "KeypointTokenHead",
    "MotionHeatmapHead",
    "VREMDConfig",
    "VREMDOutput",
    "ViTPoseBackbone",
    "convert_vitpose_state_dict",
    "decode_heatmaps",
    "flip_heatmaps",
    "heatmap_loss",
    "heatmap_to_image",
    "init_backbone",
    "init_head",
    "load_vitpose_checkpoint",
    "load_vitpose_into",
    "predict_heatmaps",
    "timm_models",
]
