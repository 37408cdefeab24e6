"""The two heatmap heads: H_k from the key frame's keypoint tokens, H_m from motion and key-frame features.

Heatmap generation (Sec. 3): "transform [T_t] into H_k through an MLP and reshaping. By aggregating M and F_t and
up-sampling, we obtain H_m. The final pose heatmaps are derived by adding H_k and H_m with equal weights."
"""

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

__all__ = ["KeypointTokenHead", "MotionHeatmapHead"]


class KeypointTokenHead(nn.Module):
    """H_k: an MLP from each keypoint token to one flattened heatmap (TokenPose-style head).

    Args:
        dim: Token width D.
        hidden_dim: MLP hidden width.
        heatmap_size: Output heatmap size (H, W).

    Shapes:
        keypoint_tokens: Float[B, J, D] -> heatmaps: Float[B, J, H, W]
    """

    def __init__(self, dim: int, *, hidden_dim: int, heatmap_size: tuple[int, int]) -> None:
        super().__init__()
        self.heatmap_size = tuple(heatmap_size)
        self.mlp = nn.Sequential(
            nn.LayerNorm(dim),
            nn.Linear(dim, hidden_dim),
            nn.GELU(),
            nn.Linear(hidden_dim, self.heatmap_size[0] * self.heatmap_size[1]),
        )
        self._init_weights()

    def _init_weights(self) -> None:
        for module in self.mlp.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)

    def forward(self, keypoint_tokens: torch.Tensor) -> torch.Tensor:
        """Map tokens to heatmaps.

        Shapes:
            keypoint_tokens: Float[B, J, D] -> Float[B, J, H, W]
        """
        flat = self.mlp(keypoint_tokens)
        return rearrange(flat, "b j (h w) -> b j h w", h=self.heatmap_size[0], w=self.heatmap_size[1])


class MotionHeatmapHead(nn.Module):
    """H_m: key-frame features plus projected motion, then ViTPose's simple decoder (ReLU, upsample, 3x3 conv).

    The motion M (width D) is added to the key-frame features F_t (backbone width D_b) through a linear layer
    initialised to zero, so at initialisation H_m is exactly ViTPose's simple head on F_t and a converted ViTPose
    head (``conv``) starts from the single-frame model (docs/paper-map.md, "aggregating M and F_t").

    Args:
        feature_dim: Backbone width D_b.
        num_joints: Output channels J.
        grid_size: Token grid (H, W).
        upsample_factor: Heatmap size over grid size (4 for 16x12 -> 64x48).
        motion_dim: Width D of the motion features, or ``None`` for a head without motion (no BMD).

    Shapes:
        key_features: Float[B, N, D_b], motion: Float[B, N, D] | None -> heatmaps: Float[B, J, H*f, W*f]
    """

    def __init__(
        self,
        feature_dim: int,
        *,
        num_joints: int,
        grid_size: tuple[int, int],
        upsample_factor: int,
        motion_dim: int | None = None,
    ) -> None:
        super().__init__()
        self.grid_size = tuple(grid_size)
        self.upsample_factor = upsample_factor
        self.motion_proj = nn.Linear(motion_dim, feature_dim) if motion_dim is not None else None
        self.conv = nn.Conv2d(feature_dim, num_joints, kernel_size=3, padding=1)
        self._init_weights()

    def _init_weights(self) -> None:
        nn.init.normal_(self.conv.weight, std=0.001)  # mmpose's init for heatmap output convolutions
        nn.init.zeros_(self.conv.bias)
        if self.motion_proj is not None:
            nn.init.zeros_(self.motion_proj.weight)
            nn.init.zeros_(self.motion_proj.bias)

    def forward(self, key_features: torch.Tensor, motion: torch.Tensor | None = None) -> torch.Tensor:
        """Decode heatmaps.

        Shapes:
            key_features: Float[B, N, D_b], motion: Float[B, N, D] | None -> Float[B, J, H*f, W*f]
        """
        if (motion is None) != (self.motion_proj is None):
            raise ValueError(
                f"motion must be given exactly when the head was built with motion_dim; got motion "
                f"{'None' if motion is None else tuple(motion.shape)} and motion_dim "
                f"{None if self.motion_proj is None else self.motion_proj.in_features}"
            )
        tokens = key_features if motion is None else key_features + self.motion_proj(motion)
        grid = rearrange(tokens, "b (h w) d -> b d h w", h=self.grid_size[0], w=self.grid_size[1])
        grid = F.interpolate(F.relu(grid), scale_factor=self.upsample_factor, mode="bilinear", align_corners=False)
        return self.conv(grid)
