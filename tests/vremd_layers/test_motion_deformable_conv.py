"""DeformableConvMotionBlock: the deformable-convolution block that replaces the ADC block in Table 6 (a)."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torchvision.ops import deform_conv2d

from tests.strategies import batch_sizes, token_grids
from tests.vremd_layers.naive import bilinear, grid_image
from vremd_layers import AdaptiveDeformableCrossBlock, DeformableConvMotionBlock


def inputs(B, S, H, W, D, dtype=torch.float64, seed=0):
    generator = torch.Generator().manual_seed(seed)
    motion = torch.randn(B, S, H * W, D, generator=generator, dtype=dtype)
    features = torch.randn(B, H * W, D, generator=generator, dtype=dtype)
    return motion, features


def randomise_offsets(block, std=0.3, bias_std=1.0):
    # Zero-initialised offsets make a plain convolution; these make every tap move off its grid point.
    with torch.no_grad():
        for stream in block.streams:
            stream.deformable.offset_conv.weight.normal_(std=std)
            stream.deformable.offset_conv.bias.normal_(std=bias_std)


def naive_deformable_conv(image, offsets, weight, bias, groups):
    """DCNv1 read literally, k x k taps around every output token, one bilinear read per tap and group.

    image (B, C, H, W); offsets (B, groups * k * k * (dy, dx), H, W); returns (B, H * W, C_out) and the
    sampling locations (B, H * W, groups, k * k, 2) as (x, y).
    """
    B, C, H, W = image.shape
    k = weight.shape[-1]
    before = (k - 1) // 2
    offsets = offsets.reshape(B, groups, k * k, 2, H * W)
    ys, xs = torch.meshgrid(torch.arange(H, dtype=image.dtype), torch.arange(W, dtype=image.dtype), indexing="ij")
    out = bias.expand(B, H * W, -1).clone()
    locations = torch.zeros(B, H * W, groups, k * k, 2, dtype=image.dtype)
    c = C // groups
    for group in range(groups):
        for tap in range(k * k):
            ty, tx = divmod(tap, k)
            x = xs.flatten() + tx - before + offsets[:, group, tap, 1]
            y = ys.flatten() + ty - before + offsets[:, group, tap, 0]
            locations[:, :, group, tap] = torch.stack([x, y], dim=-1)
            sample = bilinear(image[:, group * c : (group + 1) * c], locations[:, :, group, tap])
            out = out + sample @ weight[:, group * c : (group + 1) * c, ty, tx].T
    return out, locations


def test_torchvision_deform_conv2d_is_the_naive_deformable_convolution():
    # Pins the offset layout (per group, per tap, (dy, dx)) the layer relies on, on a hand-built offset field.
    torch.manual_seed(0)
    B, C, H, W, groups = 2, 4, 5, 4, 2
    image = torch.randn(B, C, H, W, dtype=torch.float64)
    offsets = torch.zeros(B, groups * 9 * 2, H, W, dtype=torch.float64)
    offsets[:, 0::2] = 0.75  # every dy: three quarters of a token down
    offsets[:, 1::2] = torch.linspace(-1.5, 1.5, W, dtype=torch.float64)  # dx varies across the columns
    offsets[1, :18] *= -1  # and the first group of the second sample the other way
    weight = torch.randn(C, C, 3, 3, dtype=torch.float64)
    bias = torch.randn(C, dtype=torch.float64)
    expected, _ = naive_deformable_conv(image, offsets, weight, bias, groups)
    actual = deform_conv2d(image, offsets, weight, bias, padding=(1, 1))
    torch.testing.assert_close(actual.flatten(2).transpose(1, 2), expected)


def test_block_is_residual_deformable_conv_then_mlp_read_independently():
    torch.manual_seed(0)
    H, W, D, groups = 4, 5, 8, 2
    block = DeformableConvMotionBlock(D, offset_groups=groups, bidirectional=False).double()
    randomise_offsets(block)
    motion, features = inputs(2, 1, H, W, D)
    out, locations = block(motion, features, (H, W), return_sampling_locations=True)

    layer = block.streams[0]
    m = motion[:, 0]
    normed = F.layer_norm(m, (D,), layer.norm_motion.weight, layer.norm_motion.bias)
    guide = F.layer_norm(features, (D,), layer.norm_features.weight, layer.norm_features.bias)
    conv = layer.deformable
    # Offsets from the motion and F together (DCPose: motion features joined with the key frame's).
    offsets = F.conv2d(grid_image(torch.cat([normed, guide], dim=-1), H, W), conv.offset_conv.weight,
                       conv.offset_conv.bias, padding=1)  # fmt: skip
    deformed, expected_locations = naive_deformable_conv(grid_image(normed, H, W), offsets, conv.weight, conv.bias, 2)
    m = m + deformed
    hidden = F.gelu(F.linear(F.layer_norm(m, (D,), layer.norm_mlp.weight, layer.norm_mlp.bias),
                             layer.mlp.fc1.weight, layer.mlp.fc1.bias))  # fmt: skip
    m = m + F.linear(hidden, layer.mlp.fc2.weight, layer.mlp.fc2.bias)
    torch.testing.assert_close(out[:, 0], m)
    torch.testing.assert_close(locations[:, 0], expected_locations)
    assert locations.shape == (2, 1, H * W, groups, 9, 2)


def test_fresh_block_is_a_plain_3x3_convolution_that_ignores_the_features():
    torch.manual_seed(0)
    H, W, D = 4, 3, 8
    block = DeformableConvMotionBlock(D, offset_groups=2, bidirectional=False).double()
    motion, features = inputs(2, 1, H, W, D)
    layer = block.streams[0]
    normed = layer.norm_motion(motion[:, 0])
    conv = F.conv2d(grid_image(normed, H, W), layer.deformable.weight, layer.deformable.bias, padding=1)
    expected = motion[:, 0] + conv.flatten(2).transpose(1, 2)
    expected = expected + layer.mlp(layer.norm_mlp(expected))
    out = block(motion, features, (H, W))
    torch.testing.assert_close(out[:, 0], expected)
    # Zero offsets: F, which only steers the offsets, changes nothing yet; once they move, it does.
    other = torch.randn_like(features)
    torch.testing.assert_close(block(motion, other, (H, W)), out)
    randomise_offsets(block)
    assert not torch.allclose(block(motion, other, (H, W)), block(motion, features, (H, W)))


@settings(max_examples=8, deadline=None)
@given(
    B=batch_sizes(2),
    grid=token_grids(8, 6),
    bidirectional=st.booleans(),
    shared=st.booleans(),
    dtype=st.sampled_from([torch.float32, torch.float64]),
)
def test_shapes_and_locations(B, grid, bidirectional, shared, dtype):
    torch.manual_seed(0)
    H, W = grid
    S = 2 if bidirectional else 1
    block = DeformableConvMotionBlock(
        16, offset_groups=4, bidirectional=bidirectional, share_direction_weights=shared
    ).to(dtype)
    motion, features = inputs(B, S, H, W, 16, dtype)
    out, locations = block(motion, features, (H, W), return_sampling_locations=True)
    assert out.shape == (B, S, H * W, 16)
    assert out.dtype == dtype
    assert torch.isfinite(out).all()
    assert locations.shape == (B, S, H * W, 4, 9, 2)
    torch.testing.assert_close(block(motion, features, (H, W)), out)


def test_separate_and_shared_direction_weights():
    torch.manual_seed(0)
    separate = DeformableConvMotionBlock(8, offset_groups=2).double()
    shared = DeformableConvMotionBlock(8, offset_groups=2, share_direction_weights=True).double()
    assert (len(separate.streams), len(shared.streams)) == (2, 1)
    assert sum(p.numel() for p in separate.parameters()) == 2 * sum(p.numel() for p in shared.parameters())
    randomise_offsets(separate)
    randomise_offsets(shared)
    motion, features = inputs(2, 2, 3, 4, 8)
    out = separate(motion, features, (3, 4))
    changed = motion.clone()
    changed[:, 1] += torch.randn_like(changed[:, 1])
    torch.testing.assert_close(separate(changed, features, (3, 4))[:, 0], out[:, 0])  # directions stay apart
    assert not torch.allclose(separate(motion.flip(1), features, (3, 4)).flip(1), out)
    shared_out = shared(motion, features, (3, 4))
    torch.testing.assert_close(shared(motion.flip(1), features, (3, 4)).flip(1), shared_out)


def test_it_replaces_both_adc_branches():
    dc = DeformableConvMotionBlock(16, offset_groups=2)
    adc = AdaptiveDeformableCrossBlock(16, num_heads=2)
    dc_names = {name.split(".", 2)[2].split(".")[0] for name, _ in dc.named_parameters()}
    adc_names = {name.split(".", 2)[2].split(".")[0] for name, _ in adc.named_parameters()}
    assert adc_names - dc_names == {"cross", "merge"}
    assert dc_names == {"norm_motion", "norm_features", "deformable", "norm_mlp", "mlp"}


@pytest.mark.parametrize("bidirectional", [False, True])
def test_gradients_reach_every_parameter(bidirectional):
    torch.manual_seed(0)
    block = DeformableConvMotionBlock(8, offset_groups=2, bidirectional=bidirectional).double()
    motion, features = inputs(2, 2 if bidirectional else 1, 3, 4, 8)

    def without_gradient():
        block.zero_grad(set_to_none=True)
        (block(motion, features, (3, 4)) * torch.randn(motion.shape, dtype=torch.float64)).sum().backward()
        return {n.split(".", 2)[2] for n, p in block.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0}

    # At zero offset weights the offset convolution itself learns, but F, which only enters through those
    # weights, gets its first gradient after the first step moves them.
    assert without_gradient() == {"norm_features.weight", "norm_features.bias"}
    randomise_offsets(block, std=1e-3, bias_std=0.0)
    assert without_gradient() == set()


def test_rejects_bad_arguments_and_inputs():
    with pytest.raises(ValueError, match="kernel_size must be >= 1"):
        DeformableConvMotionBlock(8, offset_groups=2, kernel_size=0)
    with pytest.raises(ValueError, match="num_heads must divide dim"):
        DeformableConvMotionBlock(8, offset_groups=3)
    block = DeformableConvMotionBlock(8, offset_groups=2)
    motion, features = inputs(1, 1, 2, 2, 8, torch.float32)
    with pytest.raises(ValueError, match=r"motion must be \(B, 2, N, 8\)"):
        block(motion, features, (2, 2))
