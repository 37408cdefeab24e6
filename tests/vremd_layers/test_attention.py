import importlib.util

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.strategies import attention_shapes, batch_sizes, heads_and_widths
from tests.vremd_layers import naive
from vremd_layers import Attention, DropPath, TransformerBlock, resolve_backend

HAS_XFORMERS = importlib.util.find_spec("xformers") is not None
TOLERANCE = {torch.float64: 1e-10, torch.float32: 1e-5, torch.bfloat16: 2e-2}


def copy_of(module, **overrides):
    """A module of the same class and weights with other constructor arguments (the backend)."""
    twin = type(module)(module.q.in_features, num_heads=module.num_heads, **overrides)
    twin.load_state_dict(module.state_dict())
    return twin.to(module.proj.weight.dtype)


# ---- resolve_backend ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("backend", "expected"), [("sdpa", "sdpa"), ("math", "math"), ("auto", "sdpa")])
def test_resolve_backend_on_cpu(backend, expected):
    assert resolve_backend(backend, torch.device("cpu")) == expected
    assert resolve_backend(backend) == expected


@pytest.mark.skipif(HAS_XFORMERS, reason="xformers is installed")
def test_auto_on_cuda_without_xformers_is_sdpa_and_xformers_needs_the_extra():
    assert resolve_backend("auto", "cuda") == "sdpa"
    with pytest.raises(ImportError, match=r"vremd-layers\[xformers\]"):
        resolve_backend("xformers")
    with pytest.raises(ImportError, match="xformers"):
        Attention(8, num_heads=2, backend="xformers")


@pytest.mark.skipif(not HAS_XFORMERS, reason="needs xformers")
def test_auto_on_cuda_with_xformers_is_xformers():
    assert resolve_backend("auto", "cuda") == "xformers"
    assert resolve_backend("auto", "cpu") == "sdpa"


@pytest.mark.parametrize("backend", ["flash", "", "SDPA"])
def test_resolve_backend_rejects_unknown_names(backend):
    with pytest.raises(ValueError, match="backend must be one of"):
        resolve_backend(backend)
    with pytest.raises(ValueError, match="backend must be one of"):
        Attention(8, num_heads=2, backend=backend)


# ---- Attention ------------------------------------------------------------------------------------------------


@settings(max_examples=20, deadline=None)
@given(shape=attention_shapes(), dtype=st.sampled_from(list(TOLERANCE)), cross=st.booleans())
def test_sdpa_matches_math(shape, dtype, cross):
    B, N, M, heads, D = shape
    torch.manual_seed(0)
    reference = Attention(D, num_heads=heads, backend="math").to(dtype)
    fused = copy_of(reference, backend="sdpa")
    x = torch.randn(B, N, D, dtype=dtype)
    context = torch.randn(B, M, D, dtype=dtype) if cross else None
    expected = reference(x, context)
    actual = fused(x, context)
    assert actual.shape == (B, N, D)
    assert actual.dtype == dtype
    tol = TOLERANCE[dtype]
    torch.testing.assert_close(actual, expected, atol=tol, rtol=tol)


def test_auto_matches_math_on_cpu():
    torch.manual_seed(0)
    reference = Attention(16, num_heads=4, backend="math")
    x = torch.randn(2, 7, 16)
    torch.testing.assert_close(copy_of(reference, backend="auto")(x), reference(x))


@pytest.mark.parametrize("backend", ["math", "sdpa"])
def test_attention_dropout_is_inverted_and_training_only(backend):
    torch.manual_seed(0)
    layer = Attention(8, num_heads=2, attn_drop=0.5, backend=backend).double()
    x = torch.randn(1, 5, 8, dtype=torch.float64).expand(4000, 5, 8)
    layer.eval()
    clean = layer(x[:1])
    torch.testing.assert_close(layer(x[:3]), clean.expand(3, 5, 8))  # eval: deterministic, no dropout
    layer.train()
    noisy = layer(x)
    assert not torch.allclose(noisy[0], clean[0])
    # Inverted dropout keeps the expectation: the mean over many draws approaches the clean output.
    torch.testing.assert_close(noisy.mean(dim=0, keepdim=True), clean, atol=0.05, rtol=0)


def test_cross_attention_ignores_context_order_and_length():
    torch.manual_seed(0)
    layer = Attention(8, num_heads=2).double()
    x, context = torch.randn(2, 3, 8, dtype=torch.float64), torch.randn(2, 6, 8, dtype=torch.float64)
    out = layer(x, context)
    assert out.shape == (2, 3, 8)
    torch.testing.assert_close(layer(x, context[:, torch.randperm(6)]), out)
    assert not torch.allclose(layer(x), out)  # self attention differs from cross attention


@settings(max_examples=10, deadline=None)
@given(B=batch_sizes(), heads_dim=heads_and_widths(), N=st.integers(1, 9))
def test_attention_batch_independence(B, heads_dim, N):
    heads, D = heads_dim
    torch.manual_seed(0)
    layer = Attention(D, num_heads=heads).double()
    x = torch.randn(B, N, D, dtype=torch.float64)
    out = layer(x)
    for i in range(B):
        torch.testing.assert_close(out[i : i + 1], layer(x[i : i + 1]))


def test_attention_rejects_heads_that_do_not_divide_width():
    with pytest.raises(ValueError, match="num_heads must divide dim, got dim=10, num_heads=4"):
        Attention(10, num_heads=4)


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_XFORMERS, reason="needs xformers")
@pytest.mark.parametrize(("dtype", "tol"), [(torch.float32, 1e-4), (torch.float16, 2e-3), (torch.bfloat16, 2e-2)])
@pytest.mark.parametrize("cross", [False, True])
def test_xformers_matches_math_on_gpu(dtype, tol, cross):
    torch.manual_seed(0)
    reference = Attention(64, num_heads=4, backend="math").to("cuda", dtype)
    fast = copy_of(reference, backend="xformers").to("cuda")
    auto = copy_of(reference, backend="auto").to("cuda")
    x = torch.randn(3, 50, 64, device="cuda", dtype=dtype)
    context = torch.randn(3, 17, 64, device="cuda", dtype=dtype) if cross else None
    expected = reference(x, context)
    torch.testing.assert_close(fast(x, context), expected, atol=tol, rtol=tol)
    torch.testing.assert_close(auto(x, context), expected, atol=tol, rtol=tol)


@pytest.mark.gpu
def test_sdpa_matches_math_on_gpu():
    torch.manual_seed(0)
    reference = Attention(64, num_heads=4, backend="math").to("cuda", torch.float16)
    x = torch.randn(3, 50, 64, device="cuda", dtype=torch.float16)
    torch.testing.assert_close(copy_of(reference, backend="sdpa")(x), reference(x), atol=2e-3, rtol=2e-3)


# ---- DropPath and TransformerBlock ----------------------------------------------------------------------------


def test_drop_path_drops_whole_samples_and_rescales_the_rest():
    torch.manual_seed(0)
    layer = DropPath(0.25).train()
    x = torch.ones(2000, 3, 4, dtype=torch.float64)
    out = layer(x)
    per_sample = out.flatten(1)
    assert set(per_sample.unique().tolist()) <= {0.0, 1.0 / 0.75}
    assert torch.all(per_sample.amin(dim=1) == per_sample.amax(dim=1))  # whole samples, never single entries
    assert 0.2 < (per_sample[:, 0] == 0).float().mean() < 0.3
    assert torch.equal(layer.eval()(x), x)


def test_drop_path_rejects_probability_one():
    with pytest.raises(ValueError, match="drop_prob must be in"):
        DropPath(1.0)


@pytest.mark.parametrize("cross", [False, True])
def test_transformer_block_matches_naive_reference(cross):
    torch.manual_seed(0)
    block = naive.randomize(TransformerBlock(8, num_heads=2, mlp_ratio=2.0, drop_path=0.5).double()).eval()
    assert block.mlp.fc1.out_features == 16
    x, context = torch.randn(2, 5, 8, dtype=torch.float64), torch.randn(2, 3, 8, dtype=torch.float64)
    context = context if cross else None
    torch.testing.assert_close(block(x, context), naive.transformer_block(block, x, context))


@settings(max_examples=10, deadline=None)
@given(shape=attention_shapes(), cross=st.booleans(), seed=st.integers(0, 99))
def test_attention_matches_naive_reference(shape, cross, seed):
    B, N, M, heads, D = shape
    layer = naive.randomize(Attention(D, num_heads=heads, backend="math").double(), seed)
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(B, N, D, generator=generator, dtype=torch.float64)
    context = torch.randn(B, M, D, generator=generator, dtype=torch.float64) if cross else None
    expected = naive.attention(layer, x, x if context is None else context)
    torch.testing.assert_close(layer(x, context), expected)


def test_transformer_block_gradients_reach_every_parameter():
    torch.manual_seed(0)
    block = TransformerBlock(8, num_heads=2)
    (block(torch.randn(2, 5, 8)) * torch.randn(2, 5, 8)).sum().backward()
    assert [n for n, p in block.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0] == []


@pytest.mark.parametrize("fill", [0.0, 1e4, 3.0])
def test_transformer_block_no_nan_on_degenerate_inputs(fill):
    block = TransformerBlock(8, num_heads=2)
    x = torch.full((2, 5, 8), fill) if fill != 1e4 else torch.randn(2, 5, 8) * fill
    assert torch.isfinite(block(x)).all()
