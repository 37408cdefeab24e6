import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.strategies import batch_sizes, heads_and_widths, token_grids
from tests.vremd_layers.naive import bilinear, dca, grid_image, reference_points
from vremd_layers import DeformableAttention, DeformableConvBlock, DeformableCrossAttention

MOTION_LAYERS = [DeformableCrossAttention, DeformableAttention, DeformableConvBlock]


def set_offsets(layer, offsets):
    """Fix the predicted offsets of a DCA or DA layer to constants (h, P, 2) as (dx, dy)."""
    linear = layer.offset_proj if isinstance(layer, DeformableCrossAttention) else layer.offsets
    with torch.no_grad():
        linear.weight.zero_()
        linear.bias.copy_(torch.as_tensor(offsets, dtype=linear.bias.dtype).flatten())


def make_inputs(B, H, W, D, dtype=torch.float64, seed=0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(B, H * W, D, generator=generator, dtype=dtype)
    z = torch.randn(B, H * W, D, generator=generator, dtype=dtype)
    return x, z


# ---- shapes, dtypes and robustness, for all three interchangeable operators --------------------------------


@pytest.mark.parametrize("layer_cls", MOTION_LAYERS)
@settings(max_examples=8, deadline=None)
@given(
    B=batch_sizes(2),
    grid=token_grids(),
    heads_dim=heads_and_widths(),
    points=st.sampled_from([1, 4, 9]),
    dtype=st.sampled_from([torch.float32, torch.float64, torch.bfloat16]),
)
def test_shape_dtype_and_locations(layer_cls, B, grid, heads_dim, points, dtype):
    torch.manual_seed(0)
    (H, W), (heads, D) = grid, heads_dim
    layer = layer_cls(D, num_heads=heads, num_points=points).to(dtype)
    x, z = make_inputs(B, H, W, D, dtype)
    out, locations = layer(x, z, (H, W), return_sampling_locations=True)
    assert out.shape == (B, H * W, D)
    assert out.dtype == dtype
    assert torch.isfinite(out).all()
    assert locations.shape == (B, H * W, heads, points, 2)
    assert torch.equal(layer(x, z, (H, W)), out)


@pytest.mark.parametrize("layer_cls", MOTION_LAYERS)
@pytest.mark.parametrize("fill", ["zeros", "huge", "constant"])
def test_no_nan_on_degenerate_inputs(layer_cls, fill):
    torch.manual_seed(0)
    layer = layer_cls(16, num_heads=4, num_points=4)
    x, z = make_inputs(2, 5, 4, 16, torch.float32)
    x, z = {"zeros": (x * 0, z * 0), "huge": (x * 1e4, z * 1e4), "constant": (x * 0 + 3, z * 0 - 2)}[fill]
    x.requires_grad_(True)
    out = layer(x, z, (5, 4))
    out.square().mean().backward()
    assert torch.isfinite(out).all()
    assert torch.isfinite(x.grad).all()


@pytest.mark.parametrize("layer_cls", MOTION_LAYERS)
def test_gradients_reach_every_parameter(layer_cls):
    torch.manual_seed(0)
    layer = layer_cls(16, num_heads=2, num_points=4).double()
    x, z = make_inputs(2, 4, 3, 16)
    (layer(x, z, (4, 3)) * torch.randn(2, 12, 16, dtype=torch.float64)).sum().backward()
    no_grad = [name for name, p in layer.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert no_grad == []


@pytest.mark.parametrize("layer_cls", MOTION_LAYERS)
def test_batch_independence(layer_cls):
    torch.manual_seed(0)
    layer = layer_cls(8, num_heads=2, num_points=4).double()
    x, z = make_inputs(3, 3, 5, 8)
    batched = layer(x, z, (3, 5))
    for i in range(3):
        torch.testing.assert_close(batched[i : i + 1], layer(x[i : i + 1], z[i : i + 1], (3, 5)))


@pytest.mark.parametrize("layer_cls", MOTION_LAYERS)
def test_float32_matches_float64(layer_cls):
    torch.manual_seed(0)
    layer = layer_cls(16, num_heads=4, num_points=4).double()
    x, z = make_inputs(2, 6, 4, 16)
    expected = layer(x, z, (6, 4))
    actual = layer.float()(x.float(), z.float(), (6, 4))
    torch.testing.assert_close(actual.double(), expected, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("layer_cls", MOTION_LAYERS)
@pytest.mark.parametrize(
    ("grid_size", "shape", "match"),
    [((4, 4), (2, 12, 8), "x must be"), ((3, 4), (2, 12, 6), "x must be"), ((0, 4), (2, 0, 8), "grid_size")],
)
def test_rejects_mismatched_inputs(layer_cls, grid_size, shape, match):
    layer = layer_cls(8, num_heads=2, num_points=4)
    with pytest.raises(ValueError, match=match):
        layer(torch.zeros(shape), torch.zeros(shape), grid_size)


@pytest.mark.parametrize("layer_cls", MOTION_LAYERS)
def test_rejects_guidance_of_another_shape(layer_cls):
    layer = layer_cls(8, num_heads=2, num_points=4)
    with pytest.raises(ValueError, match="z must have the shape of x"):
        layer(torch.zeros(1, 6, 8), torch.zeros(1, 5, 8), (2, 3))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"num_heads": 3}, "num_heads must divide dim"), ({"num_points": 0}, "num_points")],
)
@pytest.mark.parametrize("layer_cls", MOTION_LAYERS)
def test_rejects_bad_constructor_arguments(layer_cls, kwargs, match):
    with pytest.raises(ValueError, match=match):
        layer_cls(8, **kwargs)


# ---- DCA semantics ---------------------------------------------------------------------------------------------


@settings(max_examples=6, deadline=None)
@given(grid=token_grids(6, 5), heads_dim=heads_and_widths(4, 4), points=st.integers(1, 4), seed=st.integers(0, 99))
def test_dca_matches_naive_reference_forward_and_backward(grid, heads_dim, points, seed):
    torch.manual_seed(seed)
    (H, W), (heads, D) = grid, heads_dim
    layer = DeformableCrossAttention(D, num_heads=heads, num_points=points).double()
    with torch.no_grad():  # larger offsets than the init, so samples fall between tokens and off the grid
        layer.offset_proj.weight.normal_(std=0.3)
    x, z = make_inputs(2, H, W, D, seed=seed)
    x.requires_grad_(True)
    z.requires_grad_(True)
    upstream = torch.randn(2, H * W, D, dtype=torch.float64)

    fast = layer(x, z, (H, W))
    fast_grads = torch.autograd.grad((fast * upstream).sum(), [x, z, *layer.parameters()])
    slow = dca(layer, x, z, (H, W))
    slow_grads = torch.autograd.grad((slow * upstream).sum(), [x, z, *layer.parameters()])

    torch.testing.assert_close(fast, slow, atol=1e-5, rtol=1e-5)
    for name, fast_grad, slow_grad in zip(
        ["x", "z", *dict(layer.named_parameters())], fast_grads, slow_grads, strict=True
    ):
        torch.testing.assert_close(fast_grad, slow_grad, atol=1e-5, rtol=1e-5, msg=lambda m, n=name: f"{n}: {m}")


def values_of(layer, x):
    """The per-token values W_v x of a DCA layer (before sampling), (B, N, D)."""
    return F.linear(x, layer.kv.weight[layer.dim :])


def test_dca_zero_offset_single_point_reads_own_location():
    torch.manual_seed(0)
    layer = DeformableCrossAttention(12, num_heads=3, num_points=1).double()
    set_offsets(layer, torch.zeros(3, 1, 2))
    x, z = make_inputs(2, 4, 5, 12)
    out, locations = layer(x, z, (4, 5), return_sampling_locations=True)
    torch.testing.assert_close(out, layer.proj(values_of(layer, x)))
    torch.testing.assert_close(locations[0, :, 0, 0], reference_points(4, 5, torch.float64))


def test_dca_integer_offsets_equal_gather_per_head():
    torch.manual_seed(0)
    H, W, heads, D = 4, 5, 3, 12
    layer = DeformableCrossAttention(D, num_heads=heads, num_points=1).double()
    shifts = [(1, 0), (-2, 1), (0, -3)]  # (dx, dy) per head; some tokens land off the grid
    set_offsets(layer, torch.tensor(shifts, dtype=torch.float64)[:, None, :])
    x, z = make_inputs(2, H, W, D)
    values = values_of(layer, x)
    expected = torch.zeros_like(values)
    d = D // heads
    for head, (dx, dy) in enumerate(shifts):
        for i in range(H):
            for j in range(W):
                if 0 <= i + dy < H and 0 <= j + dx < W:
                    source = (i + dy) * W + (j + dx)
                    expected[:, i * W + j, head * d : (head + 1) * d] = values[:, source, head * d : (head + 1) * d]
    torch.testing.assert_close(layer(x, z, (H, W)), layer.proj(expected))


def test_dca_outside_grid_reads_zero_padding():
    torch.manual_seed(0)
    layer = DeformableCrossAttention(8, num_heads=2, num_points=2).double()
    x, z = make_inputs(1, 3, 3, 8)
    set_offsets(layer, torch.full((2, 2, 2), 50.0))  # every sample far off the grid
    torch.testing.assert_close(layer(x, z, (3, 3)), layer.proj.bias.expand(1, 9, 8))
    # Half a token left of column 0 reads half of column 0 (bilinear with a zero neighbour).
    layer = DeformableCrossAttention(8, num_heads=2, num_points=1).double()
    set_offsets(layer, torch.tensor([[[-0.5, 0.0]], [[-0.5, 0.0]]]))
    out = layer(x, z, (3, 3)) - layer.proj.bias
    expected = F.linear(0.5 * values_of(layer, x), layer.proj.weight)
    column0 = [0, 3, 6]
    torch.testing.assert_close(out[:, column0], expected[:, column0])


def test_dca_hand_computed_2x2_example():
    layer = DeformableCrossAttention(1, num_heads=1, num_points=1).double()
    with torch.no_grad():
        layer.kv.weight.fill_(1.0)
        layer.proj.weight.fill_(1.0)
        layer.proj.bias.zero_()
    set_offsets(layer, [[[0.5, 0.25]]])
    x = torch.tensor([[[1.0], [2.0], [3.0], [4.0]]], dtype=torch.float64)  # [[1, 2], [3, 4]] row-major
    # token (0,0) samples (0.5, 0.25): 0.75 * (0.5*1 + 0.5*2) + 0.25 * (0.5*3 + 0.5*4) = 2.0
    # token (1,0) samples (1.5, 0.25): 0.5 * (0.75*2 + 0.25*4) = 1.25 (right neighbours are padding)
    # token (0,1) samples (0.5, 1.25): 0.75 * (0.5*3 + 0.5*4) = 2.625 (lower neighbours are padding)
    # token (1,1) samples (1.5, 1.25): 0.5 * 0.75 * 4 = 1.5
    out, locations = layer(x, torch.zeros_like(x), (2, 2), return_sampling_locations=True)
    torch.testing.assert_close(out.flatten(), torch.tensor([2.0, 1.25, 2.625, 1.5], dtype=torch.float64))
    expected_locations = torch.tensor([[0.5, 0.25], [1.5, 0.25], [0.5, 1.25], [1.5, 1.25]], dtype=torch.float64)
    torch.testing.assert_close(locations[0, :, 0, 0], expected_locations)


def test_dca_initial_offsets_spread_around_each_query():
    layer = DeformableCrossAttention(16, num_heads=4, num_points=3)
    x, z = make_inputs(1, 7, 7, 16, torch.float32)
    _, locations = layer(x, z, (7, 7), return_sampling_locations=True)
    offsets = locations[0, 24] - torch.tensor([3.0, 3.0])  # the centre token
    distances = offsets.abs().amax(dim=-1)  # Chebyshev distance: points p at p + 1 tokens
    torch.testing.assert_close(distances, torch.tensor([1.0, 2.0, 3.0]).expand(4, 3), atol=0.2, rtol=0)
    directions = offsets[:, 0] / distances[:, :1]
    assert torch.unique(directions.round(decimals=1), dim=0).shape[0] == 4  # one direction per head


def test_dca_rejects_even_offset_kernel():
    with pytest.raises(ValueError, match="offset_kernel_size"):
        DeformableCrossAttention(8, num_heads=2, offset_kernel_size=2)


# ---- DA and DC semantics --------------------------------------------------------------------------------------


def test_deformable_attention_matches_weighted_bilinear_reference():
    torch.manual_seed(0)
    H, W, heads, points, D = 4, 3, 2, 3, 8
    layer = DeformableAttention(D, num_heads=heads, num_points=points).double()
    with torch.no_grad():
        layer.offsets.weight.normal_(std=0.3)
        layer.weights.weight.normal_(std=0.3)
    x, z = make_inputs(2, H, W, D)
    out, locations = layer(x, z, (H, W), return_sampling_locations=True)
    values = grid_image(layer.value(x), H, W)
    weights = layer.weights(x).reshape(2, H * W, heads, points).softmax(dim=-1)
    d = D // heads
    heads_out = []
    for head in range(heads):
        channels = values[:, head * d : (head + 1) * d]
        heads_out.append(
            sum(weights[:, :, head, p, None] * bilinear(channels, locations[:, :, head, p]) for p in range(points))
        )
    torch.testing.assert_close(out, layer.proj(torch.cat(heads_out, dim=-1)))
    torch.testing.assert_close(layer(x, torch.randn_like(z), (H, W)), out)  # the plain variant ignores z


@pytest.mark.parametrize("points", [1, 4, 9])
def test_deformable_conv_at_zero_offsets_is_a_convolution(points):
    torch.manual_seed(0)
    H, W, D = 5, 4, 6
    layer = DeformableConvBlock(D, num_heads=2, num_points=points).double()
    x, z = make_inputs(2, H, W, D)
    k = math.isqrt(points)
    before = (k - 1) // 2
    padded = F.pad(grid_image(x, H, W), (before, k - 1 - before, before, k - 1 - before))
    expected = F.conv2d(padded, layer.weight, layer.bias).flatten(2).transpose(1, 2)
    torch.testing.assert_close(layer(x, z, (H, W)), expected)


def test_deformable_conv_locations_match_a_naive_deformable_convolution():
    torch.manual_seed(0)
    H, W, D, groups = 4, 5, 4, 2
    layer = DeformableConvBlock(D, num_heads=groups, num_points=9).double()
    with torch.no_grad():
        layer.offset_conv.weight.normal_(std=0.2)
        layer.offset_conv.bias.normal_(std=1.0)
    x, z = make_inputs(2, H, W, D)
    out, locations = layer(x, z, (H, W), return_sampling_locations=True)
    image = grid_image(x, H, W)
    expected = layer.bias.expand(2, H * W, D).clone()
    c = D // groups
    for group in range(groups):
        channels = slice(group * c, (group + 1) * c)
        for tap in range(9):
            sample = bilinear(image[:, channels], locations[:, :, group, tap])
            expected = expected + sample @ layer.weight[:, channels, tap // 3, tap % 3].T
    torch.testing.assert_close(out, expected)


def test_deformable_conv_rejects_non_square_points():
    with pytest.raises(ValueError, match="num_points must be a square"):
        DeformableConvBlock(8, num_heads=2, num_points=5)


# ---- compile -------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_dca_torch_compile_matches_eager():
    torch.manual_seed(0)
    layer = DeformableCrossAttention(16, num_heads=4, num_points=4)
    x, z = make_inputs(2, 4, 3, 16, torch.float32)
    compiled = torch.compile(layer, backend="inductor", fullgraph=True)
    expected, expected_locations = layer(x, z, (4, 3), return_sampling_locations=True)
    actual, actual_locations = compiled(x, z, (4, 3), return_sampling_locations=True)
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(actual_locations, expected_locations)


# ---- the initial sampling ring and its reach on a token grid -------------------------------------------------


@pytest.mark.parametrize("layer_cls", [DeformableCrossAttention, DeformableAttention])
@pytest.mark.parametrize(("heads", "points"), [(1, 1), (4, 4), (8, 4), (8, 2)])
def test_initial_ring_is_where_a_fresh_layer_samples(layer_cls, heads, points):
    torch.manual_seed(0)
    layer = layer_cls(2 * heads, num_heads=heads, num_points=points).double()
    ring = layer.initial_offsets
    assert ring.shape == (heads, points, 2)
    # Point p of every head lies p + 1 tokens out (Chebyshev distance), so the reach is P tokens.
    torch.testing.assert_close(ring.abs().amax(dim=-1), torch.arange(1.0, points + 1).expand(heads, points))
    assert layer.initial_reach == points
    x, z = make_inputs(2, 5, 4, layer.dim)
    _, locations = layer(x, z, (5, 4), return_sampling_locations=True)
    offsets = locations - reference_points(5, 4, torch.float64)[:, None, None, :]
    # DA's offset weights start at zero; DCA's at N(0, 1e-3), so its samples sit within a hair of the ring.
    torch.testing.assert_close(offsets, ring.double().expand_as(offsets), atol=0.05, rtol=0)


def test_off_grid_fraction_of_hand_counted_grids():
    one_point = DeformableCrossAttention(8, num_heads=4, num_points=1)  # right, down, left, up, one token out
    # 3x3 grid: the centre keeps all 4 samples, an edge token loses 1, a corner 2: (4 * 1 + 4 * 2) / 36.
    assert one_point.initial_off_grid_fraction((3, 3)) == pytest.approx(12 / 36)
    assert one_point.initial_off_grid_fraction((1, 1)) == 1.0
    # 1 x 5: the up and down samples always fall off; left and right only at the two ends.
    assert one_point.initial_off_grid_fraction((1, 5)) == pytest.approx((5 * 2 + 2) / 20)
    with pytest.raises(ValueError, match="grid_size must be"):
        one_point.initial_off_grid_fraction((0, 3))


@pytest.mark.parametrize(
    ("heads", "grid", "fraction"),
    # The figures docs/paper-map.md reports (default P = 4): vremd-tiny's 4 heads, the paper's 8.
    [(4, (8, 6), 35 / 96), (4, (16, 12), 0.1823), (8, (8, 6), 0.4688), (8, (16, 12), 0.2539)],
)
def test_documented_off_grid_fractions(heads, grid, fraction):
    layer = DeformableCrossAttention(8 * heads, num_heads=heads, num_points=4)
    assert layer.initial_off_grid_fraction(grid) == pytest.approx(fraction, abs=5e-5)
