"""Adaptive Deformable Cross (ADC) block and the fusion layer that joins motion streams (Sec. "Bidirectional ...").

An ADC block refines motion streams (forward ``M_f`` and backward ``M_b`` feature differences) guided by the
enhanced features F: per stream, a deformable branch (DCA by default) and a cross-attention branch to F run
side by side, their outputs are concatenated and merged, then an MLP follows, each step with a residual.
"""

from collections.abc import Callable

import torch
from einops import rearrange, repeat
from torch import nn

from vremd_layers.attention import Attention, AttentionBackend, DropPath, Mlp
from vremd_layers.deformable import DeformableCrossAttention

__all__ = ["AdaptiveDeformableCrossBlock", "MotionFusion"]


class _DualBranch(nn.Module):
    """One stream's weights: ``m + merge(deformable(m, F) (+) cross_attn(m, F))`` then ``m + mlp(norm(m))``."""

    def __init__(
        self,
        dim: int,
        *,
        num_heads: int,
        num_points: int,
        mlp_ratio: float,
        motion_layer: Callable[..., nn.Module],
        drop_path: float,
        backend: AttentionBackend,
    ) -> None:
        super().__init__()
        self.norm_motion = nn.LayerNorm(dim)
        self.norm_features = nn.LayerNorm(dim)
        self.deformable = motion_layer(dim, num_heads=num_heads, num_points=num_points)
        self.cross = Attention(dim, num_heads=num_heads, backend=backend)
        self.merge = nn.Linear(2 * dim, dim)
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.norm_mlp = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), dim)

    def forward(
        self, motion: torch.Tensor, features: torch.Tensor, grid_size: tuple[int, int], with_locations: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        normed, guide = self.norm_motion(motion), self.norm_features(features)
        deformed = self.deformable(normed, guide, grid_size, return_sampling_locations=with_locations)
        deformed, locations = deformed if with_locations else (deformed, None)
        branches = torch.cat([deformed, self.cross(normed, guide)], dim=-1)
        motion = motion + self.drop_path(self.merge(branches))
        return motion + self.drop_path(self.mlp(self.norm_mlp(motion))), locations


class AdaptiveDeformableCrossBlock(nn.Module):
    """Adaptive Deformable Cross block, ADC (Sec. "Bidirectional Motion Disentanglement Module", Table 6).

    With ``bidirectional=True`` the block takes S=2 streams (forward, backward) and processes them separately
    (bidirectional separation), with separate weights per direction or, with ``share_direction_weights``, one
    set applied to both in a single batched call. With ``bidirectional=False`` it takes S=1 stream (the two
    directions already joined, e.g. by :class:`MotionFusion`) and processes it jointly (Table 6 "without BS").

    Args:
        dim: Token width D.
        num_heads: Heads of the deformable and the cross-attention branch.
        num_points: Sampling points per head of the deformable branch.
        mlp_ratio: MLP hidden width as a multiple of ``dim``.
        bidirectional: Two separately processed streams (True) or one joint stream (False).
        share_direction_weights: With ``bidirectional``, use one set of weights for both directions.
        motion_layer: Deformable operator constructor, called as ``motion_layer(dim, num_heads=..., num_points=...)``:
            :class:`~vremd_layers.DeformableCrossAttention` (DCA), :class:`~vremd_layers.DeformableAttention`
            (DA) or :class:`~vremd_layers.DeformableConvBlock` (DC), or a ``functools.partial`` of one that
            fixes further keywords such as ``offset_kernel_size``.
        drop_path: Stochastic-depth rate of both residual branches.
        backend: Attention backend of the cross-attention branch.

    Shapes:
        motion: Float[B, S, N, D] with S = 2 if ``bidirectional`` else 1.
        features: Float[B, N, D], the guidance F.
        grid_size: (H, W) with H * W = N.
        returns: Float[B, S, N, D] (and sampling locations Float[B, S, N, h, P, 2]).
    """

    def __init__(
        self,
        dim: int,
        *,
        num_heads: int = 8,
        num_points: int = 4,
        mlp_ratio: float = 4.0,
        bidirectional: bool = True,
        share_direction_weights: bool = False,
        motion_layer: Callable[..., nn.Module] = DeformableCrossAttention,
        drop_path: float = 0.0,
        backend: AttentionBackend = "auto",
    ) -> None:
        super().__init__()
        self.dim = dim
        self.num_streams = 2 if bidirectional else 1
        num_weight_sets = 2 if bidirectional and not share_direction_weights else 1
        self.streams = nn.ModuleList(
            _DualBranch(
                dim,
                num_heads=num_heads,
                num_points=num_points,
                mlp_ratio=mlp_ratio,
                motion_layer=motion_layer,
                drop_path=drop_path,
                backend=backend,
            )
            for _ in range(num_weight_sets)
        )

    def forward(
        self,
        motion: torch.Tensor,
        features: torch.Tensor,
        grid_size: tuple[int, int],
        *,
        return_sampling_locations: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Refine every motion stream with its deformable and cross-attention branches.

        Shapes:
            motion: Float[B, S, N, D]
            features: Float[B, N, D]
            returns: Float[B, S, N, D] (and locations Float[B, S, N, h, P, 2])
        """
        S = self.num_streams
        if motion.ndim != 4 or motion.shape[1] != S or motion.shape[-1] != self.dim:
            raise ValueError(f"motion must be (B, {S}, N, {self.dim}), got {tuple(motion.shape)}")
        if features.shape != (motion.shape[0], *motion.shape[2:]):
            raise ValueError(
                f"features must be (B, N, D) = {(motion.shape[0], *motion.shape[2:])}, got {tuple(features.shape)}"
            )
        if len(self.streams) == 1:  # one weight set: all streams in one batched call
            out, locations = self.streams[0](
                rearrange(motion, "b s n d -> (b s) n d"),
                repeat(features, "b n d -> (b s) n d", s=S),
                grid_size,
                return_sampling_locations,
            )
            out = rearrange(out, "(b s) n d -> b s n d", s=S)
            locations = None if locations is None else rearrange(locations, "(b s) ... -> b s ...", s=S)
        else:
            results = [
                branch(motion[:, s], features, grid_size, return_sampling_locations)
                for s, branch in enumerate(self.streams)
            ]
            out = torch.stack([result[0] for result in results], dim=1)
            locations = torch.stack([result[1] for result in results], dim=1) if return_sampling_locations else None
        return (out, locations) if return_sampling_locations else out


class MotionFusion(nn.Module):
    """Joins S motion streams into one: channels concatenated, normalised, then an MLP (S*D -> D -> D).

    The model applies it after the last ADC block (fusion layer of the paper) and, with ``bidirectional=False``,
    before the first one to merge ``M_f`` and ``M_b`` into the joint stream.

    Args:
        dim: Token width D.
        num_streams: Number of streams S.

    Shapes:
        motion: Float[B, S, N, D]
        returns: Float[B, N, D]
    """

    def __init__(self, dim: int, *, num_streams: int = 2) -> None:
        super().__init__()
        self.dim = dim
        self.num_streams = num_streams
        self.norm = nn.LayerNorm(num_streams * dim)
        self.mlp = Mlp(num_streams * dim, dim, dim)

    def forward(self, motion: torch.Tensor) -> torch.Tensor:
        """Shapes: motion Float[B, S, N, D] -> Float[B, N, D]."""
        if motion.ndim != 4 or motion.shape[1] != self.num_streams or motion.shape[-1] != self.dim:
            raise ValueError(f"motion must be (B, {self.num_streams}, N, {self.dim}), got {tuple(motion.shape)}")
        return self.mlp(self.norm(rearrange(motion, "b s n d -> b n (s d)")))
