import functools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.strategies import batch_sizes, token_grids
from tests.vremd_layers import naive
from vremd_layers import (
    AdaptiveDeformableCrossBlock,
    DeformableAttention,
    DeformableConvBlock,
    DeformableCrossAttention,
    MotionFusion,
)

MOTION_LAYERS = [DeformableCrossAttention, DeformableAttention, DeformableConvBlock]


def inputs(B, S, H, W, D, dtype=torch.float64, seed=0):
    generator = torch.Generator().manual_seed(seed)
    motion = torch.randn(B, S, H * W, D, generator=generator, dtype=dtype)
    features = torch.randn(B, H * W, D, generator=generator, dtype=dtype)
    return motion, features


@settings(max_examples=8, deadline=None)
@given(
    B=batch_sizes(2),
    grid=token_grids(8, 6),
    bidirectional=st.booleans(),
    shared=st.booleans(),
    layer_index=st.integers(0, 2),
    dtype=st.sampled_from([torch.float32, torch.float64]),
)
def test_adc_shapes_and_locations(B, grid, bidirectional, shared, layer_index, dtype):
    torch.manual_seed(0)
    H, W = grid
    S = 2 if bidirectional else 1
    block = AdaptiveDeformableCrossBlock(
        16,
        num_heads=2,
        num_points=4,
        bidirectional=bidirectional,
        share_direction_weights=shared,
        motion_layer=MOTION_LAYERS[layer_index],
    ).to(dtype)
    motion, features = inputs(B, S, H, W, 16, dtype)
    out, locations = block(motion, features, (H, W), return_sampling_locations=True)
    assert out.shape == (B, S, H * W, 16)
    assert out.dtype == dtype
    assert torch.isfinite(out).all()
    assert locations.shape == (B, S, H * W, 2, 4, 2)
    torch.testing.assert_close(block(motion, features, (H, W)), out)


def test_separate_directions_do_not_see_each_other():
    torch.manual_seed(0)
    block = AdaptiveDeformableCrossBlock(8, num_heads=2, num_points=2).double()
    motion, features = inputs(2, 2, 3, 4, 8)
    changed = motion.clone()
    changed[:, 1] += torch.randn_like(changed[:, 1])  # not a constant: LayerNorm removes shifts
    out, out_changed = block(motion, features, (3, 4)), block(changed, features, (3, 4))
    torch.testing.assert_close(out_changed[:, 0], out[:, 0])
    assert not torch.allclose(out_changed[:, 1], out[:, 1])
    # Separate weights: swapping the streams does not swap the outputs.
    assert not torch.allclose(block(motion.flip(1), features, (3, 4)).flip(1), out)


def test_shared_direction_weights_treat_both_streams_alike():
    torch.manual_seed(0)
    block = AdaptiveDeformableCrossBlock(8, num_heads=2, num_points=2, share_direction_weights=True).double()
    assert len(block.streams) == 1
    motion, features = inputs(2, 2, 3, 4, 8)
    out = block(motion, features, (3, 4))
    torch.testing.assert_close(block(motion.flip(1), features, (3, 4)).flip(1), out)
    separate = AdaptiveDeformableCrossBlock(8, num_heads=2, num_points=2).double()
    shared_params = sum(p.numel() for p in block.parameters())
    assert sum(p.numel() for p in separate.parameters()) == 2 * shared_params


@settings(max_examples=6, deadline=None)
@given(
    B=batch_sizes(2),
    grid=token_grids(4, 4),
    directions=st.sampled_from([(True, False), (True, True), (False, False)]),
    seed=st.integers(0, 99),
)
def test_adc_matches_naive_reference(B, grid, directions, seed):
    bidirectional, shared = directions
    H, W = grid
    block = AdaptiveDeformableCrossBlock(
        8, num_heads=2, num_points=3, mlp_ratio=2.0, bidirectional=bidirectional, share_direction_weights=shared
    ).double()
    naive.randomize(block, seed)
    motion, features = inputs(B, block.num_streams, H, W, 8, seed=seed)
    out = block(motion, features, (H, W))
    for s in range(block.num_streams):
        stream = block.streams[0 if shared else s]
        expected = naive.adc_stream(stream, motion[:, s], features, (H, W))
        torch.testing.assert_close(out[:, s], expected, msg=lambda m, s=s: f"stream {s}: {m}")


@pytest.mark.parametrize("shared", [False, True])
def test_each_direction_equals_a_one_stream_block_with_its_weights(shared):
    block = AdaptiveDeformableCrossBlock(8, num_heads=2, num_points=2, share_direction_weights=shared).double()
    naive.randomize(block)
    motion, features = inputs(3, 2, 3, 4, 8)
    out, locations = block(motion, features, (3, 4), return_sampling_locations=True)
    for s in range(2):
        weights = f"streams.{0 if shared else s}."
        one_stream = AdaptiveDeformableCrossBlock(8, num_heads=2, num_points=2, bidirectional=False).double()
        one_stream.load_state_dict(
            {"streams.0." + k.removeprefix(weights): v for k, v in block.state_dict().items() if k.startswith(weights)}
        )
        expected, expected_locations = one_stream(
            motion[:, s : s + 1], features, (3, 4), return_sampling_locations=True
        )
        torch.testing.assert_close(out[:, s], expected[:, 0])
        torch.testing.assert_close(locations[:, s], expected_locations[:, 0])


@pytest.mark.parametrize("bidirectional", [True, False])
def test_adc_with_zeroed_output_projections_passes_motion_through(bidirectional):
    block = AdaptiveDeformableCrossBlock(8, num_heads=2, num_points=2, bidirectional=bidirectional).double()
    naive.randomize(block)
    with torch.no_grad():  # both residual branches end in these projections: only the skip paths remain
        for stream in block.streams:
            for projection in (stream.merge, stream.mlp.fc2):
                projection.weight.zero_()
                projection.bias.zero_()
    motion, features = inputs(2, block.num_streams, 3, 4, 8)
    torch.testing.assert_close(block(motion, features, (3, 4)), motion, atol=0, rtol=0)


@pytest.mark.parametrize("layer_cls", [DeformableCrossAttention, DeformableConvBlock])
def test_motion_layer_may_be_a_partial_that_fixes_more_keywords(layer_cls):
    motion_layer = functools.partial(layer_cls, offset_kernel_size=5)
    block = AdaptiveDeformableCrossBlock(8, num_heads=2, num_points=4, motion_layer=motion_layer)
    assert [stream.deformable.offset_conv.kernel_size for stream in block.streams] == [(5, 5)] * 2
    motion, features = inputs(1, 2, 3, 4, 8, torch.float32)
    assert block(motion, features, (3, 4)).shape == (1, 2, 12, 8)


@pytest.mark.parametrize(("bidirectional", "streams"), [(True, 1), (True, 3), (False, 2)])
def test_adc_rejects_wrong_stream_count(bidirectional, streams):
    block = AdaptiveDeformableCrossBlock(8, num_heads=2, num_points=1, bidirectional=bidirectional)
    motion, features = inputs(1, streams, 2, 2, 8, torch.float32)
    with pytest.raises(ValueError, match="motion must be"):
        block(motion, features, (2, 2))


def test_adc_rejects_features_of_another_shape():
    block = AdaptiveDeformableCrossBlock(8, num_heads=2, num_points=1)
    motion, _ = inputs(1, 2, 2, 2, 8, torch.float32)
    with pytest.raises(ValueError, match="features must be"):
        block(motion, torch.zeros(1, 5, 8), (2, 2))


@pytest.mark.parametrize("layer_cls", MOTION_LAYERS)
@pytest.mark.parametrize("bidirectional", [True, False])
def test_adc_gradients_reach_every_parameter(layer_cls, bidirectional):
    torch.manual_seed(0)
    block = AdaptiveDeformableCrossBlock(
        8, num_heads=2, num_points=4, bidirectional=bidirectional, motion_layer=layer_cls
    ).double()
    motion, features = inputs(2, 2 if bidirectional else 1, 3, 4, 8)
    out = block(motion, features, (3, 4))
    (out * torch.randn_like(out)).sum().backward()
    assert [n for n, p in block.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0] == []


@pytest.mark.parametrize("fill", ["zeros", "huge", "constant"])
def test_adc_no_nan_on_degenerate_inputs(fill):
    block = AdaptiveDeformableCrossBlock(8, num_heads=2, num_points=4)
    motion, features = inputs(2, 2, 3, 4, 8, torch.float32)
    scale = {"zeros": 0.0, "huge": 1e4, "constant": 0.0}[fill]
    offset = 2.0 if fill == "constant" else 0.0
    assert torch.isfinite(block(motion * scale + offset, features * scale + offset, (3, 4))).all()


def test_adc_batch_independence_and_float32_agreement():
    torch.manual_seed(0)
    block = AdaptiveDeformableCrossBlock(8, num_heads=2, num_points=4).double()
    motion, features = inputs(3, 2, 3, 4, 8)
    out = block(motion, features, (3, 4))
    for i in range(3):
        torch.testing.assert_close(out[i : i + 1], block(motion[i : i + 1], features[i : i + 1], (3, 4)))
    torch.testing.assert_close(
        block.float()(motion.float(), features.float(), (3, 4)).double(), out, atol=1e-4, rtol=1e-4
    )


@pytest.mark.slow
def test_adc_torch_compile_matches_eager():
    torch.manual_seed(0)
    # Shared direction weights: one branch graph to compile instead of two (compilation dominates the time).
    block = AdaptiveDeformableCrossBlock(16, num_heads=2, num_points=4, share_direction_weights=True, backend="sdpa")
    motion, features = inputs(2, 2, 4, 3, 16, torch.float32)
    expected = block(motion, features, (4, 3))
    actual = torch.compile(block, backend="inductor", fullgraph=True)(motion, features, (4, 3))
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=1e-5)


# ---- MotionFusion -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("streams", [1, 2, 3])
def test_motion_fusion_matches_naive_reference(streams):
    fusion = naive.randomize(MotionFusion(8, num_streams=streams).double())
    motion, _ = inputs(2, streams, 3, 4, 8)
    out = fusion(motion)
    assert out.shape == (2, 12, 8)
    torch.testing.assert_close(out, naive.motion_fusion(fusion, motion))


def test_motion_fusion_uses_every_stream_and_parameter():
    torch.manual_seed(0)
    fusion = MotionFusion(8).double()
    motion, _ = inputs(2, 2, 3, 4, 8)
    changed = motion.clone()
    changed[:, 1] += torch.randn_like(changed[:, 1])  # not a constant: LayerNorm removes shifts
    assert not torch.allclose(fusion(changed), fusion(motion))
    out = fusion(motion)
    (out * torch.randn_like(out)).sum().backward()
    assert [n for n, p in fusion.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0] == []


def test_motion_fusion_rejects_wrong_stream_count():
    with pytest.raises(ValueError, match=r"motion must be \(B, 2, N, 8\)"):
        MotionFusion(8)(torch.zeros(1, 3, 4, 8))
