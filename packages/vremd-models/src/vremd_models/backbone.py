"""The ViT backbone in ViTPose's layout, built with timm: no class token, padded patch embedding.

ViTPose differs from a classification ViT in two places that matter for loading its weights: the patch
convolution has ``padding=2`` (the grid stays 16x12 for 256x192 input, but every patch sees a 2-pixel border of
its neighbours), and there is no class token (ViTPose keeps a class slot in ``pos_embed`` and adds it to every
token; :mod:`vremd_models.weights.layouts` folds it in).
"""

from dataclasses import dataclass
from typing import Any, Final

import torch
from einops import rearrange
from timm.layers import PatchEmbed
from timm.models.vision_transformer import VisionTransformer
from torch import nn

__all__ = ["VITPOSE_VARIANTS", "ViTPoseBackbone", "ViTPosePatchEmbed", "ViTPoseVariant", "vitpose_vit"]


@dataclass(frozen=True)
class ViTPoseVariant:
    """The published size of a ViTPose backbone (ViTPose repository configs ``ViTPose_{small,...}_coco``)."""

    embed_dim: int
    depth: int
    num_heads: int
    drop_path: float


# The head count is not stored in a checkpoint's tensors; these four shapes let the converter infer it.
VITPOSE_VARIANTS: Final[dict[str, ViTPoseVariant]] = {
    "small": ViTPoseVariant(embed_dim=384, depth=12, num_heads=12, drop_path=0.1),
    "base": ViTPoseVariant(embed_dim=768, depth=12, num_heads=12, drop_path=0.3),
    "large": ViTPoseVariant(embed_dim=1024, depth=24, num_heads=16, drop_path=0.5),
    "huge": ViTPoseVariant(embed_dim=1280, depth=32, num_heads=16, drop_path=0.55),
}


class ViTPosePatchEmbed(PatchEmbed):
    """timm's patch embedding with ViTPose's zero padding of 2 pixels around the image.

    ViTPose's formula is ``padding = 4 + 2 * (ratio // 2 - 1)`` with ``ratio = 1``, i.e. 2; with stride 16 the
    token grid is unchanged (``(256 + 4 - 16) // 16 + 1 == 16``).
    """

    def __init__(self, *args, padding: int = 2, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        old = self.proj
        self.proj = nn.Conv2d(
            old.in_channels,
            old.out_channels,
            kernel_size=old.kernel_size,
            stride=old.stride,
            padding=padding,
            bias=old.bias is not None,
        )


def vitpose_vit(*, image_size: tuple[int, int] = (256, 192), patch_size: int = 16, **kwargs: Any) -> VisionTransformer:
    """A timm ``VisionTransformer`` in ViTPose's layout: padded patch embedding, no class token, no pooling.

    Extra keyword arguments (``embed_dim``, ``depth``, ``num_heads``, ``drop_path_rate``, ...) go to timm.
    Stock timm ViTs (``vit_base_patch16_224``) load these weights strictly but compute different features:
    their ``PatchEmbed`` has no padding.

    Shapes:
        forward_features: Float[B, 3, H, W] -> Float[B, N, D]
    """
    defaults = {"num_classes": 0, "global_pool": "", "qkv_bias": True, "class_token": False}
    return VisionTransformer(
        img_size=tuple(image_size), patch_size=patch_size, embed_layer=ViTPosePatchEmbed, **(defaults | kwargs)
    )


class ViTPoseBackbone(nn.Module):
    """Plain ViT (ViTPose style) run once on all frames of a clip as one batch.

    Sec. 3 and Implementation details: ViT-L, 256x192, patch 16, frozen. A frozen backbone gets no gradients,
    stays in eval mode under ``model.train()`` (no stochastic depth on weights that do not learn) and runs under
    ``torch.no_grad()``, so its activations are not kept for backward.

    Args:
        image_size: Input size (H, W).
        patch_size: Patch size.
        embed_dim: Width D_b.
        depth: Number of blocks.
        num_heads: Attention heads.
        mlp_ratio: MLP hidden width over ``embed_dim``.
        drop_path: Stochastic depth of the last block.
        frozen: Freeze every parameter.

    Shapes:
        pixel_values: Float[B, T, 3, H, W] -> features: Float[B, T, N, D_b]
    """

    frozen: Final[bool]

    def __init__(
        self,
        *,
        image_size: tuple[int, int],
        patch_size: int,
        embed_dim: int,
        depth: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        drop_path: float = 0.0,
        frozen: bool = True,
    ) -> None:
        super().__init__()
        self.image_size = tuple(image_size)
        self.grid_size = (image_size[0] // patch_size, image_size[1] // patch_size)
        self.embed_dim = embed_dim
        # Built directly (not timm.create_model by name): never a weight download; pretrained weights arrive
        # through vremd_models.weights. The same builder backs the timm names (vremd_models.timm_models).
        self.vit = vitpose_vit(
            image_size=self.image_size,
            patch_size=patch_size,
            embed_dim=embed_dim,
            depth=depth,
            num_heads=num_heads,
            mlp_ratio=mlp_ratio,
            drop_path_rate=drop_path,
        )
        self.frozen = frozen
        if frozen:
            self.requires_grad_(False)
            self.eval()

    def train(self, mode: bool = True) -> "ViTPoseBackbone":
        # A frozen backbone never leaves eval mode: drop path would otherwise perturb fixed features.
        return super().train(mode and not self.frozen)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Encode every frame.

        Shapes:
            pixel_values: Float[B, T, 3, H, W] -> Float[B, T, N, D_b]
        """
        if pixel_values.ndim != 5 or tuple(pixel_values.shape[2:]) != (3, *self.image_size):
            H, W = self.image_size
            raise ValueError(f"pixel_values must be (B, T, 3, {H}, {W}), got {tuple(pixel_values.shape)}")
        B, T = pixel_values.shape[:2]
        frames = rearrange(pixel_values, "b t c h w -> (b t) c h w")
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            tokens = self.vit.forward_features(frames)
        return rearrange(tokens, "(b t) n d -> b t n d", b=B, t=T)
