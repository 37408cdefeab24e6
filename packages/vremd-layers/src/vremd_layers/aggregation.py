"""Decoupled spatio-temporal aggregation ("Spatio-temporal aggregation" in Sec. "Human-Keypoint Mask ...")."""

import torch
from einops import rearrange
from torch import nn

from vremd_layers.attention import AttentionBackend, Mlp, transformer_blocks

__all__ = ["SpatioTemporalAggregation"]


class SpatioTemporalAggregation(nn.Module):
    """Spatial blocks per frame, temporal blocks per token across frames, then an MLP folding T*N -> N tokens.

    The fold concatenates the T copies of each token along the channel axis and maps T*D -> D with an MLP, so
    the layer works for any token grid (see docs/paper-map.md, "spatio-temporal aggregation"). A learnable
    frame embedding is added before the temporal blocks so they know the order of the frames.

    Args:
        dim: Token width D.
        num_frames: Number of frames T.
        num_spatial_blocks: Transformer blocks over the N tokens of each frame (0 allowed).
        num_temporal_blocks: Transformer blocks over the T copies of each token (0 allowed).
        num_heads: Attention heads per block.
        mlp_ratio: MLP hidden width as a multiple of ``dim`` (blocks and fold).
        drop_path: Largest stochastic-depth rate of each stack (linearly increasing over its blocks).
        backend: Attention backend, see :func:`vremd_layers.resolve_backend`.

    Shapes:
        features: Float[B, T, N, D]
        returns: Float[B, N, D]
    """

    def __init__(
        self,
        dim: int,
        *,
        num_frames: int,
        num_spatial_blocks: int,
        num_temporal_blocks: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        drop_path: float = 0.0,
        backend: AttentionBackend = "auto",
    ) -> None:
        super().__init__()
        self.dim = dim
        self.num_frames = num_frames

        blocks = {"num_heads": num_heads, "mlp_ratio": mlp_ratio, "drop_path": drop_path, "backend": backend}
        self.spatial_blocks = transformer_blocks(dim, num_spatial_blocks, **blocks)
        self.temporal_blocks = transformer_blocks(dim, num_temporal_blocks, **blocks)
        self.frame_embed = nn.Parameter(torch.zeros(num_frames, dim))
        self.norm = nn.LayerNorm(num_frames * dim)
        self.fold = Mlp(num_frames * dim, int(dim * mlp_ratio), dim)
        nn.init.trunc_normal_(self.frame_embed, std=0.02)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Aggregate the frames' tokens into one set of N tokens.

        Shapes:
            features: Float[B, T, N, D]
            returns: Float[B, N, D]
        """
        if features.ndim != 4 or features.shape[1] != self.num_frames or features.shape[-1] != self.dim:
            raise ValueError(f"features must be (B, {self.num_frames}, N, {self.dim}), got {tuple(features.shape)}")
        B = features.shape[0]
        tokens = self.spatial_blocks(rearrange(features, "b t n d -> (b t) n d"))
        tokens = rearrange(tokens, "(b t) n d -> (b n) t d", b=B) + self.frame_embed
        tokens = self.temporal_blocks(tokens)
        return self.fold(self.norm(rearrange(tokens, "(b n) t d -> b n (t d)", b=B)))
