"""Deformable cross attention (eqs. 3-4) and the two ablation operators it is compared with (Table 6).

All three share one call signature, ``layer(x, z, grid_size, *, return_sampling_locations=False)``, so a model
can swap them from a config field:

- :class:`DeformableCrossAttention` ("DCA"): offsets from a convolution over the token grid of the query and the
  guidance ``z``; keys and values sampled from ``x``; softmax of ``q . k / sqrt(d)`` over the sampled points.
- :class:`DeformableAttention` ("DA"): Deformable-DETR single-scale attention; offsets and weights from the query.
- :class:`DeformableConvBlock` ("DC"): a deformable convolution (``torchvision.ops.deform_conv2d``); it is also the
  operator of :class:`~vremd_layers.DeformableConvMotionBlock`, the block that replaces ADC in Table 6 (a).

Coordinate convention, shared by all three: a sampling location is ``(x, y)`` in token-grid units, where token
``n = i * W + j`` sits at ``(j, i)``, so the grid spans ``0..W-1`` by ``0..H-1``. Values between tokens are
bilinear; the grid is padded with zeros, so a location ``(x, y)`` reads
``sum over integer (u, v) of max(0, 1-|x-u|) * max(0, 1-|y-v|) * x[v, u]`` with ``x[v, u] = 0`` off the grid (a
location more than one token outside reads exactly zero). The ``grid_sample`` call uses ``align_corners=False``
with ``(2 * x + 1) / W - 1`` as normalised coordinate, which is exactly this convention and also works for W=1.
"""

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn
from torchvision.ops import deform_conv2d

__all__ = ["DeformableAttention", "DeformableConvBlock", "DeformableCrossAttention"]


def _check_inputs(x: torch.Tensor, z: torch.Tensor, grid_size: tuple[int, int], dim: int) -> tuple[int, int]:
    if len(grid_size) != 2 or min(grid_size) < 1:
        raise ValueError(f"grid_size must be (H, W) with H, W >= 1, got {grid_size!r}")
    H, W = (int(s) for s in grid_size)
    if x.ndim != 3 or x.shape[1] != H * W or x.shape[2] != dim:
        raise ValueError(f"x must be (B, H*W={H * W}, {dim}) for grid_size={grid_size!r}, got {tuple(x.shape)}")
    if z.shape != x.shape:
        raise ValueError(f"z must have the shape of x {tuple(x.shape)}, got {tuple(z.shape)}")
    return H, W


def _reference_points(H: int, W: int, like: torch.Tensor) -> torch.Tensor:
    """Token centres as (x, y) in token-grid units, shape (N, 2), row-major like the tokens."""
    ys, xs = torch.meshgrid(
        torch.arange(H, device=like.device, dtype=like.dtype),
        torch.arange(W, device=like.device, dtype=like.dtype),
        indexing="ij",
    )
    return torch.stack([xs.flatten(), ys.flatten()], dim=-1)


def _spread_offsets(num_heads: int, num_points: int) -> torch.Tensor:
    """Initial offsets (h, P, 2): head h looks along angle 2 pi h / heads, point p at distance p + 1.

    Deformable DETR's initialisation (directions scaled onto the unit square), in token units, so training
    starts from a ring of samples around every query instead of P copies of its own location.
    """
    angles = torch.arange(num_heads, dtype=torch.float64) * (2.0 * math.pi / num_heads)
    directions = torch.stack([angles.cos(), angles.sin()], dim=-1)
    directions = directions / directions.abs().max(dim=-1, keepdim=True).values
    radii = torch.arange(1, num_points + 1, dtype=torch.float64)
    return (directions[:, None, :] * radii[None, :, None]).float()


def _sample(values: torch.Tensor, locations: torch.Tensor, H: int, W: int) -> torch.Tensor:
    """Bilinearly sample every head's values at its locations with one ``grid_sample`` call.

    Shapes:
        values: Float[B * h, C, H, W]
        locations: Float[B, N, h, P, 2] (x, y) in token-grid units
        returns: Float[B * h, C, N, P]
    """
    scale = locations.new_tensor([2.0 / W, 2.0 / H])
    grid = rearrange((locations + 0.5) * scale - 1.0, "b n h p xy -> (b h) n p xy")
    return F.grid_sample(values, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


class _SamplesAroundQuery(nn.Module):
    """What DCA and DA share: each head samples P points around its query, starting from a ring of offsets."""

    num_heads: int
    num_points: int

    @property
    def initial_offsets(self) -> torch.Tensor:
        """Offsets Float[h, P, 2], (x, y) in tokens, at which every query samples at initialisation.

        Head h looks along angle 2 pi h / heads, its point p lies p + 1 tokens out (Chebyshev distance). The offset
        network's weights start at (or near) zero, so every query starts from this ring (docs/paper-map.md).
        """
        return _spread_offsets(self.num_heads, self.num_points)

    @property
    def initial_reach(self) -> float:
        """Chebyshev distance in tokens from a query to its farthest initial sample (``num_points``)."""
        return float(self.initial_offsets.abs().amax())

    def initial_off_grid_fraction(self, grid_size: tuple[int, int]) -> float:
        """Fraction of the initial samples of all queries of an (H, W) token grid that fall off the grid.

        Off the grid means outside the rectangle of token centres (0..W-1 by 0..H-1), where a bilinear read takes
        zero padding; the ring's offsets are whole tokens, so such a sample reads nothing but padding. Offsets
        within 1e-6 tokens of the border count as on it (``cos(pi / 2)`` is 6e-17, not 0, in floating point).
        """
        if len(grid_size) != 2 or min(grid_size) < 1:
            raise ValueError(f"grid_size must be (H, W) with H, W >= 1, got {grid_size!r}")
        H, W = (int(s) for s in grid_size)
        offsets = self.initial_offsets.double()
        x, y = (_reference_points(H, W, offsets)[:, None, None, :] + offsets).unbind(dim=-1)
        tolerance = 1e-6
        off = (x < -tolerance) | (x > W - 1 + tolerance) | (y < -tolerance) | (y > H - 1 + tolerance)
        return off.double().mean().item()


class DeformableCrossAttention(_SamplesAroundQuery):
    """Deformable cross attention, DCA (eqs. 3-4, Sec. "Bidirectional Motion Disentanglement Module").

    ``q = W_q x``, ``z' = W_z z``; offsets ``dp = theta(psi(q (+) z'))`` with psi a depthwise convolution over the
    (H, W) token grid followed by GELU, and theta a linear map to h * P * 2 offsets; each head samples ``x`` at
    P points ``p + dp`` around the query's own location p; keys ``W_k x_bar`` and values ``W_v x_bar`` of the
    samples; softmax of ``q . k / sqrt(d)`` over the P samples weights the values; heads merged by ``W_o``.

    Sampling is linear, so ``W_k`` and ``W_v`` are applied to the N tokens before sampling (d channels per head
    instead of D per point); they carry no bias (a key bias cancels in the softmax, a value bias is absorbed
    by ``W_o``'s bias), which keeps the reorder exact even at zero-padded grid borders.

    Training starts from a ring of samples ``initial_reach`` = P tokens wide around every query
    (``initial_offsets``); ``initial_off_grid_fraction(grid_size)`` says how much of it a grid cuts off.

    Args:
        dim: Token width D.
        num_heads: Heads h; must divide ``dim``.
        num_points: Sampling points P per head and query.
        offset_kernel_size: Odd kernel size of the offset convolution psi.
        qkv_bias: Bias on the query and guidance projections.
        proj_drop: Dropout after the output projection.

    Shapes:
        x: Float[B, N, D] features to sample (the motion features), N = H * W.
        z: Float[B, N, D] guidance features (the enhanced features F).
        grid_size: (H, W).
        returns: Float[B, N, D], and with ``return_sampling_locations`` also Float[B, N, h, P, 2] (x, y) in
        token-grid units (see the module docstring for the convention).
    """

    def __init__(
        self,
        dim: int,
        *,
        num_heads: int = 8,
        num_points: int = 4,
        offset_kernel_size: int = 3,
        qkv_bias: bool = True,
        proj_drop: float = 0.0,
    ) -> None:
        super().__init__()
        if dim % num_heads != 0:
            raise ValueError(f"num_heads must divide dim, got dim={dim}, num_heads={num_heads}")
        if num_points < 1:
            raise ValueError(f"num_points must be >= 1, got {num_points}")
        if offset_kernel_size < 1 or offset_kernel_size % 2 == 0:
            raise ValueError(f"offset_kernel_size must be odd and >= 1, got {offset_kernel_size}")
        self.dim = dim
        self.num_heads = num_heads
        self.num_points = num_points
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.z = nn.Linear(dim, dim, bias=qkv_bias)
        self.kv = nn.Linear(dim, 2 * dim, bias=False)
        self.offset_conv = nn.Conv2d(
            2 * dim, 2 * dim, offset_kernel_size, padding=offset_kernel_size // 2, groups=2 * dim
        )
        self.offset_act = nn.GELU()
        self.offset_proj = nn.Linear(2 * dim, num_heads * num_points * 2)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        self._init_weights()

    def _init_weights(self) -> None:
        # Small but non-zero: a zero theta would stop every gradient to psi, W_z (and part of W_q) at step 0.
        nn.init.normal_(self.offset_proj.weight, std=1e-3)
        with torch.no_grad():
            self.offset_proj.bias.copy_(_spread_offsets(self.num_heads, self.num_points).flatten())

    def forward(
        self,
        x: torch.Tensor,
        z: torch.Tensor,
        grid_size: tuple[int, int],
        *,
        return_sampling_locations: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Attend from every token of ``x`` to P deformably sampled points of ``x`` per head, guided by ``z``.

        Shapes:
            x: Float[B, N, D]
            z: Float[B, N, D]
            grid_size: (H, W) with H * W = N
            returns: Float[B, N, D] (and locations Float[B, N, h, P, 2])
        """
        H, W = _check_inputs(x, z, grid_size, self.dim)
        h, P = self.num_heads, self.num_points
        query = self.q(x)
        # (B, N, C) -> (B, C, H, W) is a view in channels-last memory format; the convolution runs on it as is.
        guide = rearrange(torch.cat([query, self.z(z)], dim=-1), "b (hh ww) c -> b c hh ww", hh=H)
        guide = rearrange(self.offset_act(self.offset_conv(guide)), "b c hh ww -> b (hh ww) c")
        offsets = rearrange(self.offset_proj(guide), "b n (h p xy) -> b n h p xy", h=h, p=P)
        locations = _reference_points(H, W, offsets)[:, None, None, :] + offsets
        keys_values = rearrange(self.kv(x), "b (hh ww) (two h d) -> (b h) (two d) hh ww", hh=H, two=2, h=h)
        # One grid_sample for the keys and values of all heads and points: ((B h), 2d, N, P).
        sampled = _sample(keys_values, locations, H, W)
        keys, values = rearrange(sampled, "bh (two d) n p -> two bh n p d", two=2)
        query = rearrange(query, "b n (h d) -> (b h) n 1 d", h=h)
        weights = ((query * query.shape[-1] ** -0.5) @ keys.transpose(-2, -1)).softmax(dim=-1)  # (B h), N, 1, P
        out = rearrange(weights @ values, "(b h) n 1 d -> b n (h d)", h=h)
        out = self.proj_drop(self.proj(out))
        return (out, locations) if return_sampling_locations else out


class DeformableAttention(_SamplesAroundQuery):
    """Single-scale deformable attention, the paper's "DA" ablation (Table 6 (b); Deformable DETR [50]).

    Offsets and attention weights are predicted from the query token by linear maps; each head takes a weighted
    sum of its values sampled at P points around the query's own location. ``z`` is accepted for signature
    compatibility with :class:`DeformableCrossAttention` and not used: that is what makes it the plain variant.

    Args:
        dim: Token width D.
        num_heads: Heads h; must divide ``dim``.
        num_points: Sampling points P per head and query.
        proj_drop: Dropout after the output projection.

    Shapes:
        x: Float[B, N, D]; z: Float[B, N, D] (ignored); grid_size: (H, W).
        returns: Float[B, N, D] (and locations Float[B, N, h, P, 2]).
    """

    def __init__(self, dim: int, *, num_heads: int = 8, num_points: int = 4, proj_drop: float = 0.0) -> None:
        super().__init__()
        if dim % num_heads != 0:
            raise ValueError(f"num_heads must divide dim, got dim={dim}, num_heads={num_heads}")
        if num_points < 1:
            raise ValueError(f"num_points must be >= 1, got {num_points}")
        self.dim = dim
        self.num_heads = num_heads
        self.num_points = num_points
        self.offsets = nn.Linear(dim, num_heads * num_points * 2)
        self.weights = nn.Linear(dim, num_heads * num_points)
        self.value = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        self._init_weights()

    def _init_weights(self) -> None:
        # Deformable DETR: zero weights, a ring of offsets and uniform attention at the start.
        nn.init.zeros_(self.offsets.weight)
        nn.init.zeros_(self.weights.weight)
        nn.init.zeros_(self.weights.bias)
        with torch.no_grad():
            self.offsets.bias.copy_(_spread_offsets(self.num_heads, self.num_points).flatten())

    def forward(
        self,
        x: torch.Tensor,
        z: torch.Tensor,
        grid_size: tuple[int, int],
        *,
        return_sampling_locations: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Shapes: x, z Float[B, N, D]; returns Float[B, N, D] (and locations Float[B, N, h, P, 2])."""
        H, W = _check_inputs(x, z, grid_size, self.dim)
        h, P = self.num_heads, self.num_points
        offsets = rearrange(self.offsets(x), "b n (h p xy) -> b n h p xy", h=h, p=P)
        locations = _reference_points(H, W, offsets)[:, None, None, :] + offsets
        weights = rearrange(self.weights(x), "b n (h p) -> (b h) n p 1", h=h).softmax(dim=-2)
        values = rearrange(self.value(x), "b (hh ww) (h d) -> (b h) d hh ww", hh=H, h=h)
        sampled = rearrange(_sample(values, locations, H, W), "bh d n p -> bh n p d")
        out = rearrange((weights * sampled).sum(dim=-2), "(b h) n d -> b n (h d)", h=h)
        out = self.proj_drop(self.proj(out))
        return (out, locations) if return_sampling_locations else out


class DeformableConvBlock(nn.Module):
    """Deformable convolution over the token grid, the operator of the "DC" ablation (Table 6 (a); Dai et al. [49]).

    :class:`~vremd_layers.DeformableConvMotionBlock` puts it in place of the ADC block (the paper's row); inside
    the ADC block, in DCA's place, it is a labelled variant of that row.

    A k x k deformable convolution of ``x`` (``torchvision.ops.deform_conv2d``) whose offsets come from a
    convolution over ``x (+) z``, with one offset set per channel group (``num_heads`` groups). The kernel has
    ``num_points = k * k`` taps, so the block takes the same keywords as DCA; an even k (num_points=4 -> 2 x 2)
    pads one more token after than before. Offsets start at zero: a plain convolution at initialisation.

    Args:
        dim: Token width D (in and out).
        num_heads: Offset groups; must divide ``dim``.
        num_points: Kernel taps; must be a square k * k.
        offset_kernel_size: Odd kernel size of the offset-predicting convolution.

    Shapes:
        x: Float[B, N, D]; z: Float[B, N, D]; grid_size: (H, W).
        returns: Float[B, N, D] (and locations Float[B, N, h, P, 2], the tap positions plus offsets).
    """

    def __init__(self, dim: int, *, num_heads: int = 8, num_points: int = 9, offset_kernel_size: int = 3) -> None:
        super().__init__()
        kernel_size = math.isqrt(num_points)
        if num_points < 1 or kernel_size * kernel_size != num_points:
            raise ValueError(f"num_points must be a square (1, 4, 9, ...) for a k x k kernel, got {num_points}")
        if dim % num_heads != 0:
            raise ValueError(f"num_heads must divide dim, got dim={dim}, num_heads={num_heads}")
        if offset_kernel_size < 1 or offset_kernel_size % 2 == 0:
            raise ValueError(f"offset_kernel_size must be odd and >= 1, got {offset_kernel_size}")
        self.dim = dim
        self.num_heads = num_heads
        self.num_points = num_points
        self.kernel_size = kernel_size
        self.offset_conv = nn.Conv2d(
            2 * dim, 2 * num_heads * num_points, offset_kernel_size, padding=offset_kernel_size // 2
        )
        self.weight = nn.Parameter(torch.empty(dim, dim, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(dim))
        self._init_weights()

    def _init_weights(self) -> None:
        nn.init.zeros_(self.offset_conv.weight)
        nn.init.zeros_(self.offset_conv.bias)
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))  # nn.Conv2d's default

    def forward(
        self,
        x: torch.Tensor,
        z: torch.Tensor,
        grid_size: tuple[int, int],
        *,
        return_sampling_locations: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Shapes: x, z Float[B, N, D]; returns Float[B, N, D] (and locations Float[B, N, h, P, 2])."""
        H, W = _check_inputs(x, z, grid_size, self.dim)
        k = self.kernel_size
        grid_x = rearrange(x, "b (hh ww) d -> b d hh ww", hh=H)
        grid_z = rearrange(z, "b (hh ww) d -> b d hh ww", hh=H)
        offsets = self.offset_conv(torch.cat([grid_x, grid_z], dim=1))  # (B, h * P * (dy, dx), H, W)
        before = (k - 1) // 2
        padded = F.pad(grid_x, (before, k - 1 - before, before, k - 1 - before))
        # torchvision's kernels have no bfloat16 (CPU: no half either): run those in float32, return x's dtype.
        compute = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
        out = deform_conv2d(padded.to(compute), offsets.to(compute), self.weight.to(compute), self.bias.to(compute))
        out = rearrange(out.to(x.dtype), "b d hh ww -> b (hh ww) d")
        if not return_sampling_locations:
            return out
        taps_y, taps_x = torch.meshgrid(torch.arange(k), torch.arange(k), indexing="ij")
        taps = torch.stack([taps_x.flatten(), taps_y.flatten()], dim=-1).to(offsets) - before  # (P, 2) as (x, y)
        dyx = rearrange(offsets, "b (h p yx) hh ww -> b (hh ww) h p yx", h=self.num_heads, yx=2)
        locations = _reference_points(H, W, offsets)[:, None, None, :] + taps + dyx.flip(-1)
        return out, locations
