"""The ViTPose backbones as timm models: ``timm.create_model("vitpose_base")`` and friends.

Registered with timm's own ``register_model`` when ``vremd_models`` is imported. The names build
:func:`vremd_models.backbone.vitpose_vit` (padded patch embedding, no class token, 256x192 input) at the four
published ViTPose sizes. timm hosts no ViTPose weights; load converted ones with ``pretrained=True`` and
``pretrained_cfg_overlay={"file": ...}``, pointing at a VREMD ``model.safetensors`` (its ``backbone.vit.*``
tensors are taken) or at a ViTPose checkpoint in any layout :mod:`vremd_models.weights.layouts` reads.

Why not a stock timm ViT: ``vit_base_patch16_224`` with ``class_token=False`` accepts these weights strictly,
but its ``PatchEmbed`` has no padding, so every patch sees a shifted window and the features are wrong
(off by 7.6 on a converted ViTPose-B, max abs difference).
"""

from collections.abc import Mapping

import torch
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from timm.models.vision_transformer import VisionTransformer

from vremd_models.backbone import VITPOSE_VARIANTS, vitpose_vit
from vremd_models.weights import BACKBONE_PREFIX, convert_vitpose_state_dict

__all__ = ["TIMM_NAMES", "vitpose_base", "vitpose_huge", "vitpose_large", "vitpose_small"]

TIMM_NAMES = tuple(f"vitpose_{size}" for size in VITPOSE_VARIANTS)

_CFG = {
    "input_size": (3, 256, 192),
    "mean": (0.485, 0.456, 0.406),
    "std": (0.229, 0.224, 0.225),
    "num_classes": 0,
    "license": "apache-2.0",
    "paper_ids": "arXiv:2204.12484",
    "origin_url": "https://github.com/ViTAE-Transformer/ViTPose",
}
default_cfgs = generate_default_cfgs({name: dict(_CFG) for name in TIMM_NAMES})


def _filter_state_dict(state_dict: Mapping[str, torch.Tensor], model: VisionTransformer) -> dict[str, torch.Tensor]:
    """Backbone tensors for timm's pretrained loader: from a VREMD state dict or a raw ViTPose checkpoint."""
    if any(key.startswith(BACKBONE_PREFIX) for key in state_dict):
        return {k.removeprefix(BACKBONE_PREFIX): v for k, v in state_dict.items() if k.startswith(BACKBONE_PREFIX)}
    converted = convert_vitpose_state_dict(state_dict, grid_size=tuple(model.patch_embed.grid_size))
    return {k.removeprefix(BACKBONE_PREFIX): v for k, v in converted.state_dict.items()}


def _build(*, img_size: tuple[int, int] | int = (256, 192), **kwargs) -> VisionTransformer:
    size = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)  # timm's spelling and types
    return vitpose_vit(image_size=size, **kwargs)


def _create(variant: str, size: str, pretrained: bool, **kwargs) -> VisionTransformer:
    shape = VITPOSE_VARIANTS[size]
    model_args = {"embed_dim": shape.embed_dim, "depth": shape.depth, "num_heads": shape.num_heads}
    return build_model_with_cfg(
        _build,
        variant,
        pretrained,
        pretrained_filter_fn=_filter_state_dict,
        **(model_args | kwargs),
    )


@register_model
def vitpose_small(pretrained: bool = False, **kwargs) -> VisionTransformer:
    """ViTPose-S backbone: width 384, 12 blocks, 12 heads."""
    return _create("vitpose_small", "small", pretrained, **kwargs)


@register_model
def vitpose_base(pretrained: bool = False, **kwargs) -> VisionTransformer:
    """ViTPose-B backbone: width 768, 12 blocks, 12 heads."""
    return _create("vitpose_base", "base", pretrained, **kwargs)


@register_model
def vitpose_large(pretrained: bool = False, **kwargs) -> VisionTransformer:
    """ViTPose-L backbone: width 1024, 24 blocks, 16 heads."""
    return _create("vitpose_large", "large", pretrained, **kwargs)


@register_model
def vitpose_huge(pretrained: bool = False, **kwargs) -> VisionTransformer:
    """ViTPose-H backbone: width 1280, 32 blocks, 16 heads."""
    return _create("vitpose_huge", "huge", pretrained, **kwargs)
