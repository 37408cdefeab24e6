"""The blocks that refine motion streams in BMD, and the fusion layer that joins them (Sec. "Bidirectional ...").

An Adaptive Deformable Cross (ADC) block refines motion streams (forward ``M_f`` and backward ``M_b`` feature
differences) guided by the enhanced features F: per stream, a deformable branch (DCA by default) and a
cross-attention branch to F run side by side, their outputs are concatenated and merged, then an MLP follows,
each step with a residual. The deformable-convolution block that replaces it in Table 6 (a) keeps the two residual
steps and puts one deformable convolution of the motion in place of both branches.
"""

from collections.abc import Callable

import torch
from einops import rearrange, repeat
from torch import nn

from vremd_layers.attention import Attention, AttentionBackend, DropPath, Mlp
from vremd_layers.deformable import DeformableConvBlock, DeformableCrossAttention

__all__ = ["AdaptiveDeformableCrossBlock", "DeformableConvMotionBlock", "MotionFusion"]


class _StreamLayer(nn.Module):
    """One stream's weights: ``m + merge(deformable(m, F) (+) cross(m, F))`` then ``m + mlp(norm(m))``.

    Without a cross-attention branch (``cross=None``) the first step is ``m + deformable(m, F)``, with no merge.
    """

    def __init__(
        self, dim: int, *, deformable: nn.Module, cross: nn.Module | None, mlp_ratio: float, drop_path: float
    ) -> None:
        super().__init__()
        self.norm_motion = nn.LayerNorm(dim)
        self.norm_features = nn.LayerNorm(dim)
        self.deformable = deformable
        self.cross = cross
        self.merge = nn.Linear(2 * dim, dim) if cross is not None else None
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.norm_mlp = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), dim)

    def forward(
        self, motion: torch.Tensor, features: torch.Tensor, grid_size: tuple[int, int], with_locations: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        normed, guide = self.norm_motion(motion), self.norm_features(features)
        deformed = self.deformable(normed, guide, grid_size, return_sampling_locations=with_locations)
        deformed, locations = deformed if with_locations else (deformed, None)
        if self.cross is not None:
            deformed = self.merge(torch.cat([deformed, self.cross(normed, guide)], dim=-1))
        motion = motion + self.drop_path(deformed)
        return motion + self.drop_path(self.mlp(self.norm_mlp(motion))), locations


class _MotionStreams(nn.Module):
    """S = 2 separately processed streams (one weight set each, or one shared) or S = 1 joint stream.

    Shapes:
        motion: Float[B, S, N, D]; features: Float[B, N, D]; grid_size: (H, W) with H * W = N.
        returns: Float[B, S, N, D] (and sampling locations Float[B, S, N, h, P, 2]).
    """

    def __init__(
        self,
        dim: int,
        *,
        bidirectional: bool,
        share_direction_weights: bool,
        make_layer: Callable[[], _StreamLayer],
    ) -> None:
        super().__init__()
        self.dim = dim
        self.num_streams = 2 if bidirectional else 1
        num_weight_sets = 2 if bidirectional and not share_direction_weights else 1
        self.streams = nn.ModuleList(make_layer() for _ in range(num_weight_sets))

    def forward(
        self,
        motion: torch.Tensor,
        features: torch.Tensor,
        grid_size: tuple[int, int],
        *,
        return_sampling_locations: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Refine every motion stream, guided by the features.

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


class AdaptiveDeformableCrossBlock(_MotionStreams):
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
            (DA) or :class:`~vremd_layers.DeformableConvBlock` (DC inside the ADC block, a labelled variant of
            Table 6 (a); the paper's row is :class:`DeformableConvMotionBlock`), or a ``functools.partial`` of one
            that fixes further keywords such as ``offset_kernel_size``.
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
        def make_layer() -> _StreamLayer:
            deformable = motion_layer(dim, num_heads=num_heads, num_points=num_points)
            cross = Attention(dim, num_heads=num_heads, backend=backend)
            return _StreamLayer(dim, deformable=deformable, cross=cross, mlp_ratio=mlp_ratio, drop_path=drop_path)

        super().__init__(
            dim, bidirectional=bidirectional, share_direction_weights=share_direction_weights, make_layer=make_layer
        )


class DeformableConvMotionBlock(_MotionStreams):
    """Deformable-convolution block, the paper's Table 6 (a) "DC" in place of the ADC block (Dai et al. [49]).

    Per stream ``m = m + DC(LN m)``, then ``m = m + MLP(LN m)``: the ADC block's two residual steps, with its two
    branches (DCA and cross attention to F) and their merge replaced by one k x k deformable convolution of the
    motion (:class:`~vremd_layers.DeformableConvBlock`, DCNv1: k * k sampling points per output token, offsets
    starting at zero, so a plain convolution at initialisation). As in DCPose [14], which predicts the offsets from
    its motion (pose residual) features joined with the key frame's features, the offsets come from a convolution
    over ``LN m (+) LN F``: F enters there and nowhere else. Streams, separation and shared weights work as in
    :class:`AdaptiveDeformableCrossBlock`, whose call signature this block shares.

    Args:
        dim: Token width D.
        offset_groups: Channel groups G with their own offsets (DCA's heads); must divide ``dim``.
        kernel_size: Deformable kernel k (3: 9 sampling points, as DCPose).
        offset_kernel_size: Odd kernel of the convolution that predicts the offsets.
        mlp_ratio: MLP hidden width as a multiple of ``dim``.
        bidirectional: Two separately processed streams (True) or one joint stream (False).
        share_direction_weights: With ``bidirectional``, use one set of weights for both directions.
        drop_path: Stochastic-depth rate of both residual branches.

    Shapes:
        motion: Float[B, S, N, D] with S = 2 if ``bidirectional`` else 1.
        features: Float[B, N, D], the guidance F.
        grid_size: (H, W) with H * W = N.
        returns: Float[B, S, N, D] (and sampling locations Float[B, S, N, G, k * k, 2], the kernel taps plus
        their offsets, as (x, y) in token units).
    """

    def __init__(
        self,
        dim: int,
        *,
        offset_groups: int = 8,
        kernel_size: int = 3,
        offset_kernel_size: int = 3,
        mlp_ratio: float = 4.0,
        bidirectional: bool = True,
        share_direction_weights: bool = False,
        drop_path: float = 0.0,
    ) -> None:
        if kernel_size < 1:
            raise ValueError(f"kernel_size must be >= 1, got {kernel_size}")

        def make_layer() -> _StreamLayer:
            deformable = DeformableConvBlock(
                dim, num_heads=offset_groups, num_points=kernel_size**2, offset_kernel_size=offset_kernel_size
            )
            return _StreamLayer(dim, deformable=deformable, cross=None, mlp_ratio=mlp_ratio, drop_path=drop_path)

        super().__init__(
            dim, bidirectional=bidirectional, share_direction_weights=share_direction_weights, make_layer=make_layer
        )


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
