import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.strategies import batch_sizes, heads_and_widths, token_grids
from tests.vremd_layers import naive
from vremd_layers import SpatioTemporalAggregation


def make(D=8, T=3, spatial=1, temporal=1, heads=2):
    return SpatioTemporalAggregation(
        D, num_frames=T, num_spatial_blocks=spatial, num_temporal_blocks=temporal, num_heads=heads
    )


def features_of(B, T, N, D, dtype=torch.float64):
    return torch.randn(B, T, N, D, generator=torch.Generator().manual_seed(0), dtype=dtype)


@settings(max_examples=10, deadline=None)
@given(
    B=batch_sizes(2),
    T=st.integers(1, 3),
    grid=token_grids(6, 5),
    heads_dim=heads_and_widths(),
    dtype=st.sampled_from([torch.float32, torch.float64, torch.bfloat16]),
)
def test_shape_and_dtype(B, T, grid, heads_dim, dtype):
    heads, D = heads_dim
    torch.manual_seed(0)
    layer = make(D, T, heads=heads).to(dtype)
    out = layer(features_of(B, T, grid[0] * grid[1], D, dtype))
    assert out.shape == (B, grid[0] * grid[1], D)
    assert out.dtype == dtype
    assert torch.isfinite(out).all()


@settings(max_examples=8, deadline=None)
@given(
    B=batch_sizes(2),
    T=st.integers(1, 3),
    N=st.integers(1, 5),
    spatial=st.integers(0, 2),
    temporal=st.integers(0, 2),
    seed=st.integers(0, 99),
)
def test_matches_naive_reference(B, T, N, spatial, temporal, seed):
    layer = naive.randomize(make(T=T, spatial=spatial, temporal=temporal).double(), seed)
    features = torch.randn(B, T, N, 8, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    torch.testing.assert_close(layer(features), naive.spatio_temporal_aggregation(layer, features))


@settings(max_examples=8, deadline=None)
@given(permutation=st.permutations(range(6)))
def test_permuting_the_tokens_of_every_frame_alike_permutes_the_output(permutation):
    # No token position enters the layer: spatial attention, per-token temporal blocks and fold are all
    # indifferent to where a token sits in the sequence.
    torch.manual_seed(0)
    layer = make(spatial=2, temporal=1).double()
    features = features_of(2, 3, 6, 8)
    torch.testing.assert_close(layer(features[:, :, permutation]), layer(features)[:, permutation])


@pytest.mark.parametrize("blocks", [0, 1])
def test_every_frame_reaches_every_output_token(blocks):
    torch.manual_seed(0)
    layer = make(spatial=blocks, temporal=blocks).double()
    features = features_of(2, 3, 6, 8)
    out = layer(features)
    for t in range(3):
        changed = features.clone()
        changed[:, t] += torch.randn_like(changed[:, t])  # not a constant: LayerNorm removes shifts
        assert ((layer(changed) - out).abs().amax(dim=-1) > 1e-6).all(), f"frame {t} does not reach every token"


def test_temporal_blocks_do_not_mix_tokens_but_spatial_blocks_do():
    torch.manual_seed(0)
    features = features_of(1, 3, 6, 8)
    changed = features.clone()
    changed[:, :, 0] += torch.randn_like(changed[:, :, 0])  # not a constant: LayerNorm removes shifts
    temporal_only = make(spatial=0, temporal=2).double()
    torch.testing.assert_close(temporal_only(changed)[:, 1:], temporal_only(features)[:, 1:])
    spatial = make(spatial=1, temporal=1).double()
    assert not torch.allclose(spatial(changed)[:, 1:], spatial(features)[:, 1:])


def test_frame_order_matters():
    torch.manual_seed(0)
    layer = make().double()
    features = features_of(1, 3, 6, 8)
    assert not torch.allclose(layer(features[:, [2, 1, 0]]), layer(features))


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    layer = make()
    (layer(features_of(2, 3, 6, 8, torch.float32)) * torch.randn(2, 6, 8)).sum().backward()
    assert [n for n, p in layer.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0] == []


@pytest.mark.parametrize("fill", ["zeros", "huge", "constant"])
def test_no_nan_on_degenerate_inputs(fill):
    layer = make()
    features = features_of(2, 3, 6, 8, torch.float32)
    features = {"zeros": features * 0, "huge": features * 1e4, "constant": features * 0 - 7}[fill]
    assert torch.isfinite(layer(features)).all()


def test_batch_independence_and_float32_agreement():
    torch.manual_seed(0)
    layer = make().double()
    features = features_of(3, 3, 6, 8)
    out = layer(features)
    for i in range(3):
        torch.testing.assert_close(out[i : i + 1], layer(features[i : i + 1]))
    torch.testing.assert_close(layer.float()(features.float()).double(), out, atol=1e-4, rtol=1e-4)


def test_rejects_wrong_frame_count():
    with pytest.raises(ValueError, match=r"features must be \(B, 3, N, 8\)"):
        make()(torch.zeros(1, 2, 4, 8))
