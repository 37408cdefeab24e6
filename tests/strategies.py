"""Shared hypothesis strategies for tensor shapes; sizes stay tiny so torch properties run fast on 2 cores."""

import torch
from hypothesis import strategies as st

__all__ = ["attention_shapes", "batch_sizes", "float_dtypes", "heads_and_widths", "token_grids"]


def batch_sizes(max_value: int = 3) -> st.SearchStrategy[int]:
    """Batch sizes B from 1 to ``max_value``."""
    return st.integers(min_value=1, max_value=max_value)


def token_grids(max_height: int = 24, max_width: int = 18) -> st.SearchStrategy[tuple[int, int]]:
    """Token grids (H, W) from 1 x 1 up to ``max_height`` x ``max_width`` (the paper's grid is 16 x 12)."""
    return st.tuples(st.integers(1, max_height), st.integers(1, max_width))


def heads_and_widths(max_heads: int = 4, max_head_dim: int = 8) -> st.SearchStrategy[tuple[int, int]]:
    """(num_heads, dim) pairs with dim = num_heads * head_dim."""
    heads = st.sampled_from([h for h in (1, 2, 4, 8) if h <= max_heads])
    head_dims = st.sampled_from([d for d in (1, 2, 4, 8, 16) if d <= max_head_dim])
    return st.tuples(heads, head_dims).map(lambda hd: (hd[0], hd[0] * hd[1]))


def attention_shapes(max_tokens: int = 12) -> st.SearchStrategy[tuple[int, int, int, int, int]]:
    """(B, N, M, num_heads, dim): queries N, keys/values M."""
    tokens = st.integers(1, max_tokens)
    return st.tuples(batch_sizes(), tokens, tokens, heads_and_widths()).map(lambda s: (s[0], s[1], s[2], *s[3]))


def float_dtypes() -> st.SearchStrategy[torch.dtype]:
    """The floating dtypes every layer must preserve on CPU."""
    return st.sampled_from([torch.float32, torch.float64, torch.bfloat16])
