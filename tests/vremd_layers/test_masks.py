import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.strategies import batch_sizes, heads_and_widths
from vremd_layers import HumanMask, KeypointMask


def features_of(B, T, N, D, dtype=torch.float64, seed=0):
    return torch.randn(B, T, N, D, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def layer_norm(x, norm):
    return F.layer_norm(x, norm.normalized_shape, norm.weight, norm.bias, norm.eps)


# ---- HumanMask (eq. 1) ----------------------------------------------------------------------------------------


@settings(max_examples=10, deadline=None)
@given(
    B=batch_sizes(2),
    T=st.integers(1, 3),
    N=st.integers(1, 12),
    heads_dim=heads_and_widths(),
    blocks=st.integers(0, 2),
    dtype=st.sampled_from([torch.float32, torch.float64, torch.bfloat16]),
    activation=st.sampled_from(["none", "sigmoid"]),
)
def test_human_mask_shapes_dtype_and_range(B, T, N, heads_dim, blocks, dtype, activation):
    heads, D = heads_dim
    torch.manual_seed(0)
    layer = HumanMask(D, num_blocks=blocks, num_heads=heads, mask_activation=activation).to(dtype)
    refined, mask = layer(features_of(B, T, N, D, dtype))
    assert refined.shape == (B, T, N, D)
    assert mask.shape == (B, T, N)
    assert refined.dtype == mask.dtype == dtype
    assert torch.isfinite(refined).all()
    if activation == "sigmoid":
        assert ((mask >= 0) & (mask <= 1)).all()


def test_human_mask_defaults_to_equation_1_without_activation():
    torch.manual_seed(0)
    plain = HumanMask(8, num_blocks=1, num_heads=2).double()
    assert plain.mask_activation == "none"
    squashed = HumanMask(8, num_blocks=1, num_heads=2, mask_activation="sigmoid").double()
    squashed.load_state_dict(plain.state_dict())
    features = features_of(2, 3, 6, 8)
    _, raw = plain(features)
    _, bounded = squashed(features)
    torch.testing.assert_close(bounded, raw.sigmoid())
    assert (raw < 0).any()  # eq. 1's product is signed: no squashing hides it


@pytest.mark.parametrize("activation", ["sigmoid", "none"])
def test_human_mask_without_blocks_is_equation_1(activation):
    torch.manual_seed(0)
    D = 8
    layer = HumanMask(D, num_blocks=0, num_heads=2, mask_activation=activation).double()
    features = features_of(2, 3, 5, D)
    refined, mask = layer(features)
    # Eq. 1 with zero blocks: F_bar = norm(F), T_h = norm(token); Mask_h = F_bar T_h^T (scaled, activated).
    f_bar = layer_norm(features, layer.norm)
    token = layer_norm(layer.human_token[0, 0], layer.norm)
    expected_mask = torch.einsum("btnd,d->btn", f_bar, token) / D**0.5
    if activation == "sigmoid":
        expected_mask = expected_mask.sigmoid()
    torch.testing.assert_close(mask, expected_mask)
    torch.testing.assert_close(refined, f_bar * expected_mask[..., None])


def test_human_mask_works_within_each_frame():
    torch.manual_seed(0)
    layer = HumanMask(8, num_blocks=2, num_heads=2).double()
    features = features_of(1, 3, 6, 8)
    changed = features.clone()
    changed[:, 0] += torch.randn_like(changed[:, 0])  # not a constant: LayerNorm removes shifts
    refined, mask = layer(features)
    refined_changed, mask_changed = layer(changed)
    torch.testing.assert_close(refined_changed[:, 1:], refined[:, 1:])  # other frames untouched
    torch.testing.assert_close(mask_changed[:, 1:], mask[:, 1:])
    assert not torch.allclose(refined_changed[:, 0], refined[:, 0])


def test_human_mask_per_frame_tokens():
    torch.manual_seed(0)
    layer = HumanMask(8, num_blocks=1, num_heads=2, num_frames=3).double()
    assert layer.human_token.shape == (3, 1, 8)
    features = features_of(1, 1, 4, 8).expand(1, 3, 4, 8)  # the same frame three times
    _, mask = layer(features)
    assert not torch.allclose(mask[:, 0], mask[:, 1])  # each frame position has its own token
    with pytest.raises(ValueError, match="T=3 frames"):
        layer(features_of(1, 2, 4, 8))


def test_human_mask_rejects_bad_input_and_activation():
    layer = HumanMask(8, num_blocks=1, num_heads=2)
    with pytest.raises(ValueError, match=r"features must be \(B, T, N, 8\)"):
        layer(torch.zeros(2, 4, 8))
    with pytest.raises(ValueError, match="mask_activation"):
        HumanMask(8, num_blocks=1, num_heads=2, mask_activation="relu")


# ---- KeypointMask (eq. 2) -------------------------------------------------------------------------------------


@settings(max_examples=10, deadline=None)
@given(
    B=batch_sizes(2),
    T=st.integers(1, 3),
    N=st.integers(1, 12),
    J=st.integers(1, 5),
    heads_dim=heads_and_widths(),
    blocks=st.integers(0, 2),
    dtype=st.sampled_from([torch.float32, torch.float64, torch.bfloat16]),
)
def test_keypoint_mask_shapes_and_mask_total(B, T, N, J, heads_dim, blocks, dtype):
    heads, D = heads_dim
    torch.manual_seed(0)
    layer = KeypointMask(D, num_keypoints=J, num_frames=T, num_blocks=blocks, num_heads=heads).to(dtype)
    refined, keypoint_tokens, mask = layer(features_of(B, T, N, D, dtype))
    assert refined.shape == (B, T, N, D)
    assert keypoint_tokens.shape == (B, T, J, D)
    assert mask.shape == (B, T, N)
    assert refined.dtype == keypoint_tokens.dtype == mask.dtype == dtype
    assert torch.isfinite(refined).all()
    # Softmax over the T*N tokens, summed over the T*J keypoints: the mask sums to T*J per sample.
    total = mask.double().sum(dim=(1, 2))
    torch.testing.assert_close(total, torch.full((B,), float(T * J), dtype=torch.float64), atol=0.1, rtol=0.01)


def test_keypoint_mask_without_blocks_is_equation_2():
    torch.manual_seed(0)
    B, T, N, J, D = 2, 3, 4, 5, 8
    layer = KeypointMask(D, num_keypoints=J, num_frames=T, num_blocks=0, num_heads=2).double()
    features = features_of(B, T, N, D)
    refined, keypoint_tokens, mask = layer(features)
    f_hat = layer_norm(features + layer.frame_embed, layer.norm).reshape(B, T * N, D)
    t_hat = layer_norm(layer.keypoint_tokens, layer.norm).reshape(T * J, D)
    expected_mask = torch.zeros(B, T * N, dtype=torch.float64)
    for j in range(T * J):  # Map row j, softmax over the T*N tokens, summed over keypoints
        expected_mask += torch.softmax(f_hat @ t_hat[j] / D**0.5, dim=-1)
    torch.testing.assert_close(mask, expected_mask.reshape(B, T, N))
    torch.testing.assert_close(refined, (f_hat * expected_mask[..., None]).reshape(B, T, N, D))
    torch.testing.assert_close(keypoint_tokens, t_hat.reshape(1, T, J, D).expand(B, T, J, D))


def test_keypoint_mask_mixes_frames_and_knows_their_order():
    torch.manual_seed(0)
    layer = KeypointMask(8, num_keypoints=2, num_frames=3, num_blocks=1, num_heads=2).double()
    features = features_of(1, 3, 4, 8)
    changed = features.clone()
    changed[:, 0] += torch.randn_like(changed[:, 0])  # not a constant: LayerNorm removes shifts
    refined, _, _ = layer(features)
    assert not torch.allclose(layer(changed)[0][:, 1], refined[:, 1])  # blocks run over all frames jointly
    swapped, _, _ = layer(features[:, [2, 1, 0]])
    assert not torch.allclose(swapped[:, [2, 1, 0]], refined)  # frame embeddings: order matters


def test_keypoint_tokens_without_the_mask_leave_the_features_unmasked():
    # The same weights with and without Mask_k: the tokens are identical and the features differ exactly by the mask.
    torch.manual_seed(0)
    masked = KeypointMask(8, num_keypoints=3, num_frames=3, num_blocks=2, num_heads=2).double()
    unmasked = KeypointMask(8, num_keypoints=3, num_frames=3, num_blocks=2, num_heads=2, apply_mask=False).double()
    assert masked.state_dict().keys() == unmasked.state_dict().keys()  # Map and Mask_k hold no weights
    unmasked.load_state_dict(masked.state_dict())
    features = features_of(2, 3, 6, 8)
    refined, tokens, mask = masked(features)
    f_hat, tokens_unmasked, no_mask = unmasked(features)
    assert no_mask is None
    torch.testing.assert_close(tokens_unmasked, tokens)
    torch.testing.assert_close(refined, f_hat * mask[..., None])
    assert not torch.allclose(refined, f_hat)


def test_keypoint_tokens_without_the_mask_still_learn_from_every_frame():
    torch.manual_seed(0)
    layer = KeypointMask(8, num_keypoints=2, num_frames=3, num_blocks=1, num_heads=2, apply_mask=False).double()
    features = features_of(2, 3, 4, 8)
    f_hat, tokens, _ = layer(features)
    (f_hat * torch.randn_like(f_hat)).sum().add((tokens * torch.randn_like(tokens)).sum()).backward()
    assert [n for n, p in layer.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0] == []


def test_keypoint_mask_rejects_wrong_frame_count():
    layer = KeypointMask(8, num_keypoints=2, num_frames=3, num_blocks=1, num_heads=2)
    with pytest.raises(ValueError, match="T=3 frames"):
        layer(torch.zeros(1, 2, 4, 8))


# ---- shared properties ----------------------------------------------------------------------------------------


def make_layers():
    return [
        HumanMask(8, num_blocks=2, num_heads=2),
        KeypointMask(8, num_keypoints=3, num_frames=3, num_blocks=2, num_heads=2),
    ]


@pytest.mark.parametrize("index", [0, 1])
def test_gradients_reach_every_parameter(index):
    torch.manual_seed(0)
    layer = make_layers()[index].double()
    outputs = layer(features_of(2, 3, 6, 8))
    sum((out * torch.randn_like(out)).sum() for out in outputs).backward()
    assert [n for n, p in layer.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0] == []


@pytest.mark.parametrize("index", [0, 1])
@pytest.mark.parametrize("fill", ["zeros", "huge", "constant"])
def test_no_nan_on_degenerate_inputs(index, fill):
    torch.manual_seed(0)
    layer = make_layers()[index]
    features = features_of(2, 3, 6, 8, torch.float32)
    features = {"zeros": features * 0, "huge": features * 1e4, "constant": features * 0 + 5}[fill]
    for out in layer(features):
        assert torch.isfinite(out).all()


@pytest.mark.parametrize("index", [0, 1])
def test_batch_independence_and_float32_agreement(index):
    torch.manual_seed(0)
    layer = make_layers()[index].double()
    features = features_of(3, 3, 6, 8)
    batched = layer(features)
    for i in range(3):
        for whole, single in zip(batched, layer(features[i : i + 1]), strict=True):
            torch.testing.assert_close(whole[i : i + 1], single)
    for as64, as32 in zip(batched, layer.float()(features.float()), strict=True):
        torch.testing.assert_close(as32.double(), as64, atol=1e-4, rtol=1e-4)
