"""Multi-head attention with a backend switch, a pre-norm transformer block and drop path.

The backend is chosen once per layer (timm's ``fused_attn`` pattern) from a constructor argument, never from
global state: ``"math"`` is the readable reference, ``"sdpa"`` is
:func:`torch.nn.functional.scaled_dot_product_attention`, ``"xformers"`` is xformers' memory-efficient kernel
(optional extra ``vremd-layers[xformers]``), and ``"auto"`` picks xformers for CUDA tensors when it is installed,
else sdpa. All backends apply dropout to the attention probabilities, only in training mode.
"""

import functools
import importlib.util
from typing import Final, Literal

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

__all__ = [
    "Attention",
    "AttentionBackend",
    "DropPath",
    "TransformerBlock",
    "drop_path_rates",
    "resolve_backend",
    "transformer_blocks",
]

AttentionBackend = Literal["auto", "sdpa", "xformers", "math"]
_BACKENDS: Final = ("auto", "sdpa", "xformers", "math")


@functools.cache
def _xformers_installed() -> bool:
    return importlib.util.find_spec("xformers") is not None


def resolve_backend(backend: AttentionBackend, device: torch.device | str | None = None) -> str:
    """Turn a requested attention backend into the one that will run.

    Args:
        backend: ``"auto"``, ``"sdpa"``, ``"xformers"`` or ``"math"``.
        device: Device of the tensors. ``"auto"`` resolves to ``"xformers"`` only for a CUDA device with
            xformers installed; with ``None`` (device not known yet) it resolves to ``"sdpa"``.

    Returns:
        ``"sdpa"``, ``"xformers"`` or ``"math"``.

    Raises:
        ValueError: ``backend`` is not one of the four names.
        ImportError: ``backend="xformers"`` but xformers is not installed.
    """
    if backend not in _BACKENDS:
        raise ValueError(f"backend must be one of {_BACKENDS}, got {backend!r}")
    if backend == "xformers" and not _xformers_installed():
        raise ImportError('backend="xformers" needs xformers: pip install "vremd-layers[xformers]"')
    if backend == "auto":
        on_cuda = device is not None and torch.device(device).type == "cuda"
        return "xformers" if on_cuda and _xformers_installed() else "sdpa"
    return backend


def _math_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, dropout_p: float, training: bool
) -> torch.Tensor:
    # q, k, v: (B, h, N or M, d). Reference path: every backend is tested against this one.
    attn = (q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1)
    attn = F.dropout(attn.softmax(dim=-1), p=dropout_p, training=training)
    return attn @ v


def _xformers_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, dropout_p: float) -> torch.Tensor:
    import xformers.ops  # optional extra: imported only when this backend runs

    # xformers wants (B, N, h, d).
    q, k, v = (rearrange(t, "b h n d -> b n h d") for t in (q, k, v))
    out = xformers.ops.memory_efficient_attention(q, k, v, p=dropout_p)
    return rearrange(out, "b n h d -> b h n d")


class Attention(nn.Module):
    """Multi-head scaled dot-product attention, self or cross, with a selectable backend.

    Args:
        dim: Token width D (queries, keys and values).
        num_heads: Number of heads h; must divide ``dim``.
        qkv_bias: Add a bias to the query, key and value projections.
        attn_drop: Dropout on the attention probabilities (training only, every backend).
        proj_drop: Dropout after the output projection.
        backend: ``"auto"``, ``"sdpa"``, ``"xformers"`` or ``"math"``; see :func:`resolve_backend`.

    Shapes:
        x: Float[B, N, D] queries (and keys/values when ``context`` is None).
        context: Float[B, M, D] keys/values for cross attention, or None.
        returns: Float[B, N, D].
    """

    backend: Final[str]

    def __init__(
        self,
        dim: int,
        *,
        num_heads: int = 8,
        qkv_bias: bool = True,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
        backend: AttentionBackend = "auto",
    ) -> None:
        super().__init__()
        if dim % num_heads != 0:
            raise ValueError(f"num_heads must divide dim, got dim={dim}, num_heads={num_heads}")
        resolve_backend(backend)  # validates the name and the xformers install now, not at the first call
        self.backend = backend
        self.xformers_installed: Final[bool] = _xformers_installed()
        self.num_heads = num_heads
        self.attn_drop = attn_drop
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.kv = nn.Linear(dim, 2 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """Attend from ``x`` to itself, or to ``context`` when given.

        Shapes:
            x: Float[B, N, D]
            context: Float[B, M, D] | None
            returns: Float[B, N, D]
        """
        source = x if context is None else context
        q = rearrange(self.q(x), "b n (h d) -> b h n d", h=self.num_heads)
        k, v = rearrange(self.kv(source), "b m (two h d) -> two b h m d", two=2, h=self.num_heads)
        dropout_p = self.attn_drop if self.training else 0.0
        backend = self.backend
        if backend == "auto":  # resolved per call: the module may have moved to CUDA after __init__
            backend = "xformers" if x.is_cuda and self.xformers_installed else "sdpa"
        if backend == "sdpa":
            out = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p)
        elif backend == "xformers":
            out = _xformers_attention(q, k, v, dropout_p)
        else:
            out = _math_attention(q, k, v, dropout_p, self.training)
        return self.proj_drop(self.proj(rearrange(out, "b h n d -> b n (h d)")))


class DropPath(nn.Module):
    """Stochastic depth: drop the whole residual branch per sample, scaling kept samples by 1 / keep.

    Args:
        drop_prob: Probability of dropping a sample's branch (training only).

    Shapes:
        x: Float[B, ...]; returns the same shape.
    """

    def __init__(self, drop_prob: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= drop_prob < 1.0:
            raise ValueError(f"drop_prob must be in [0, 1), got {drop_prob}")
        self.drop_prob = drop_prob

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.drop_prob == 0.0 or not self.training:
            return x
        keep = 1.0 - self.drop_prob
        shape = (x.shape[0],) + (1,) * (x.ndim - 1)
        return x * x.new_empty(shape).bernoulli_(keep).div_(keep)

    def extra_repr(self) -> str:
        return f"drop_prob={self.drop_prob}"


class Mlp(nn.Module):
    """Two-layer perceptron ``fc2(drop(act(fc1(x))))`` used inside the transformer blocks.

    Args:
        in_features: Input width.
        hidden_features: Hidden width.
        out_features: Output width.
        act_layer: Activation constructor.
        drop: Dropout after the activation and after ``fc2``.
    """

    def __init__(
        self,
        in_features: int,
        hidden_features: int,
        out_features: int,
        *,
        act_layer: type[nn.Module] = nn.GELU,
        drop: float = 0.0,
    ) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = act_layer()
        self.fc2 = nn.Linear(hidden_features, out_features)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class TransformerBlock(nn.Module):
    """Pre-norm transformer block: ``x + attn(norm(x))`` then ``x + mlp(norm(x))``, each with drop path.

    With ``context`` it is a cross-attention block: queries from ``x``, keys and values from ``context``,
    normalised by the same first norm (both streams live in the same width and feature space).

    Args:
        dim: Token width D.
        num_heads: Number of attention heads.
        mlp_ratio: MLP hidden width as a multiple of ``dim``.
        qkv_bias: Bias on the query/key/value projections.
        drop: Dropout after the attention projection and inside the MLP.
        attn_drop: Dropout on the attention probabilities.
        drop_path: Stochastic-depth probability of both residual branches.
        norm_layer: Norm constructor, called with ``dim``.
        act_layer: MLP activation constructor.
        backend: Attention backend, see :func:`resolve_backend`.

    Shapes:
        x: Float[B, N, D]
        context: Float[B, M, D] | None
        returns: Float[B, N, D]
    """

    def __init__(
        self,
        dim: int,
        *,
        num_heads: int = 8,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop: float = 0.0,
        attn_drop: float = 0.0,
        drop_path: float = 0.0,
        norm_layer: type[nn.Module] = nn.LayerNorm,
        act_layer: type[nn.Module] = nn.GELU,
        backend: AttentionBackend = "auto",
    ) -> None:
        super().__init__()
        self.norm1 = norm_layer(dim)
        self.attn = Attention(
            dim, num_heads=num_heads, qkv_bias=qkv_bias, attn_drop=attn_drop, proj_drop=drop, backend=backend
        )
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.norm2 = norm_layer(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), dim, act_layer=act_layer, drop=drop)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """Shapes: x Float[B, N, D], context Float[B, M, D] | None -> Float[B, N, D]."""
        context = None if context is None else self.norm1(context)
        x = x + self.drop_path(self.attn(self.norm1(x), context))
        return x + self.drop_path(self.mlp(self.norm2(x)))


def drop_path_rates(drop_path: float, num_blocks: int) -> list[float]:
    """The project's one stochastic-depth rule, for every stack of residual blocks.

    The rate grows linearly from 0 at the first block to ``drop_path`` at the last, as in timm's
    VisionTransformer; a single block gets ``drop_path`` itself.
    """
    return torch.linspace(0, drop_path, num_blocks).tolist() if num_blocks > 1 else [drop_path] * num_blocks


def transformer_blocks(
    dim: int,
    num_blocks: int,
    *,
    num_heads: int,
    mlp_ratio: float = 4.0,
    drop_path: float = 0.0,
    backend: AttentionBackend = "auto",
) -> nn.Sequential:
    """A stack of ``TransformerBlock``s, stochastic depth by :func:`drop_path_rates`."""
    rates = drop_path_rates(drop_path, num_blocks)
    return nn.Sequential(
        *(
            TransformerBlock(dim, num_heads=num_heads, mlp_ratio=mlp_ratio, drop_path=rate, backend=backend)
            for rate in rates
        )
    )
