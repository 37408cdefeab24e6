import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from vremd_models.config import POSETRACK_FLIP_PAIRS, VREMDConfig
from vremd_models.decoding import decode_heatmaps
from vremd_models.inference import flip_heatmaps, heatmap_to_image, predict_heatmaps
from vremd_models.modeling import VREMD

H, W = 64, 48


def _gaussian(cx: float, cy: float, sigma: float = 2.0, size: tuple[int, int] = (H, W)) -> torch.Tensor:
    ys, xs = torch.meshgrid(torch.arange(size[0]).double(), torch.arange(size[1]).double(), indexing="ij")
    return torch.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * sigma**2)).float()


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**16), batch=st.integers(1, 3))
def test_flip_heatmaps_is_an_involution(seed, batch):
    heatmaps = torch.randn(batch, 17, 8, 6, generator=torch.Generator().manual_seed(seed))
    once = flip_heatmaps(heatmaps, POSETRACK_FLIP_PAIRS)
    assert not torch.equal(once, heatmaps)
    torch.testing.assert_close(flip_heatmaps(once, POSETRACK_FLIP_PAIRS), heatmaps, rtol=0, atol=0)


def test_flip_heatmaps_mirrors_and_swaps_left_and_right():
    heatmaps = torch.zeros(1, 17, 8, 6)
    heatmaps[0, 9, 2, 1] = 1.0  # left wrist at x=1, y=2
    heatmaps[0, 0, 5, 0] = 2.0  # nose (unpaired) at x=0, y=5
    flipped = flip_heatmaps(heatmaps, POSETRACK_FLIP_PAIRS)
    assert flipped[0, 10, 2, 6 - 1 - 1] == 1.0  # right wrist, mirrored column
    assert flipped[0, 0, 5, 5] == 2.0
    assert flipped.sum() == 3.0


def test_flip_heatmaps_rejects_bad_input():
    with pytest.raises(ValueError, match=r"heatmaps must be \(B, J, H, W\)"):
        flip_heatmaps(torch.zeros(17, 8, 6), POSETRACK_FLIP_PAIRS)
    with pytest.raises(ValueError, match="out of range for 5 joints"):
        flip_heatmaps(torch.zeros(1, 5, 8, 6), POSETRACK_FLIP_PAIRS)


@settings(max_examples=25, deadline=None)
@given(u=st.floats(0.0, 1.0), v=st.floats(0.0, 1.0), sigma=st.sampled_from([1.5, 2.0, 3.0]))
def test_dark_recovers_a_gaussian_centre_to_a_tenth_of_a_pixel(u, v, sigma):
    # DARK's zero-padded blur pulls peaks closer than ~1.5 sigma to the border inwards; stay clear of it.
    margin = max(3.0, 1.5 * sigma)
    cx, cy = margin + u * (W - 1 - 2 * margin), margin + v * (H - 1 - 2 * margin)
    coords, scores = decode_heatmaps(_gaussian(cx, cy, sigma)[None, None], refine="dark")
    assert abs(coords[0, 0, 0].item() - cx) < 0.1
    assert abs(coords[0, 0, 1].item() - cy) < 0.1
    assert 0.8 < scores[0, 0].item() <= 1.0


@settings(max_examples=25, deadline=None)
@given(cx=st.floats(2.0, W - 3.0), cy=st.floats(2.0, H - 3.0))
def test_quarter_offset_is_within_a_quarter_pixel_and_no_refinement_within_half(cx, cy):
    heatmap = _gaussian(cx, cy)[None, None]
    quarter, _ = decode_heatmaps(heatmap, refine="quarter")
    plain, _ = decode_heatmaps(heatmap, refine="none")
    truth = torch.tensor([cx, cy])
    assert (quarter[0, 0] - truth).abs().max() <= 0.25 + 1e-4
    assert (plain[0, 0] - truth).abs().max() <= 0.5 + 1e-4
    assert torch.equal(plain[0, 0], plain[0, 0].round())


def test_decode_returns_argmax_and_peak_value_per_joint():
    heatmaps = torch.zeros(2, 3, H, W)
    heatmaps[0, 0, 10, 20] = 0.7
    heatmaps[1, 2, 63, 0] = 0.3  # corner: refinement must leave it alone
    coords, scores = decode_heatmaps(heatmaps, refine="dark")
    assert coords.shape == (2, 3, 2)
    assert scores.shape == (2, 3)
    assert coords[0, 0].tolist() == [20.0, 10.0]
    assert coords[1, 2].tolist() == [0.0, 63.0]
    torch.testing.assert_close(scores[0, 0], torch.tensor(0.7))
    assert scores[0, 1] == 0
    assert torch.isfinite(coords).all()


def test_decode_validates_arguments():
    with pytest.raises(ValueError, match="refine must be"):
        decode_heatmaps(torch.zeros(1, 1, 8, 8), refine="udp")
    with pytest.raises(ValueError, match="blur_kernel_size must be a positive odd"):
        decode_heatmaps(torch.zeros(1, 1, 8, 8), blur_kernel_size=4)
    with pytest.raises(ValueError, match=r"heatmaps must be \(B, J, H, W\)"):
        decode_heatmaps(torch.zeros(8, 8))


def test_heatmap_to_image_scales_by_the_stride_then_applies_the_affine():
    coords = torch.tensor([[[10.0, 20.0], [0.5, 1.25]]])
    # Crop pixels -> image: scale 2, rotate 90 degrees, translate (100, 50).
    affine = np.array([[[0.0, -2.0, 100.0], [2.0, 0.0, 50.0]]])
    image_xy = heatmap_to_image(coords, affine, heatmap_size=(64, 48), image_size=(256, 192))
    crop = coords.double() * 4
    expected = torch.stack([100 - 2 * crop[..., 1], 50 + 2 * crop[..., 0]], dim=-1)
    assert image_xy.dtype == torch.float64
    torch.testing.assert_close(image_xy, expected)


def test_heatmap_to_image_identity_round_trip_per_axis_stride():
    coords = torch.rand(3, 17, 2) * 10
    identity = torch.eye(2, 3).expand(3, 2, 3)
    image_xy = heatmap_to_image(coords, identity, heatmap_size=(32, 24), image_size=(256, 96))
    torch.testing.assert_close(image_xy, coords * torch.tensor([4.0, 8.0]))


def test_heatmap_to_image_validates_shapes():
    with pytest.raises(ValueError, match=r"image_from_crop must be \(2, 2, 3\)"):
        heatmap_to_image(torch.zeros(2, 17, 2), torch.zeros(1, 2, 3), heatmap_size=(64, 48), image_size=(256, 192))
    with pytest.raises(ValueError, match=r"coords must be \(B, J, 2\)"):
        heatmap_to_image(torch.zeros(17, 2), torch.zeros(1, 2, 3), heatmap_size=(64, 48), image_size=(256, 192))


def _tiny_model() -> VREMD:
    torch.manual_seed(0)
    cfg = VREMDConfig.from_preset(
        "vremd-tiny", image_size=(64, 48), heatmap_size=(16, 12), backbone_dim=32, backbone_depth=1,
        backbone_num_heads=2, hidden_dim=16, num_heads=2, keypoint_head_hidden_dim=16,
    )  # fmt: skip
    model = VREMD(cfg).eval()
    with torch.no_grad():  # a non-zero motion path so that the whole model shapes the heatmaps
        model.motion_head.motion_proj.weight.normal_(std=0.1)
    return model


def test_flip_test_on_a_mirror_symmetric_clip_is_mirror_symmetric():
    model = _tiny_model()
    pixels = torch.randn(2, 3, 3, 64, 48)
    symmetric = (pixels + pixels.flip(-1)) / 2
    heatmaps = predict_heatmaps(model, symmetric, shift_flipped=False)
    # The clip equals its mirror image, so the flip-tested heatmaps must equal their own flip-back.
    torch.testing.assert_close(flip_heatmaps(heatmaps, model.config.flip_pairs), heatmaps)
    single = model(symmetric).heatmaps
    torch.testing.assert_close(heatmaps, (single + flip_heatmaps(single, model.config.flip_pairs)) / 2)
    assert not torch.allclose(single, flip_heatmaps(single, model.config.flip_pairs))  # the model is not


def test_predict_without_flip_is_the_plain_forward_and_shift_moves_one_column():
    model = _tiny_model()
    pixels = torch.randn(1, 3, 3, 64, 48)
    plain = model(pixels).heatmaps
    torch.testing.assert_close(predict_heatmaps(model, pixels, flip_test=False), plain)
    flipped = flip_heatmaps(model(pixels.flip(-1)).heatmaps, model.config.flip_pairs)
    shifted = torch.cat([flipped[..., :1], flipped[..., :-1]], dim=-1)
    torch.testing.assert_close(predict_heatmaps(model, pixels), (plain + shifted) / 2)


class _Wrapper(torch.nn.Module):
    """Forwards calls to the wrapped module and has no ``.config``, like DistributedDataParallel."""

    def __init__(self, module: torch.nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, *args, **kwargs):
        return self.module(*args, **kwargs)


def test_predict_takes_flip_pairs_for_a_wrapped_model():
    model = _tiny_model()
    pixels = torch.randn(1, 3, 3, 64, 48)
    wrapped = _Wrapper(model)
    expected = predict_heatmaps(model, pixels)
    torch.testing.assert_close(predict_heatmaps(wrapped, pixels, flip_pairs=model.config.flip_pairs), expected)
    no_pairs = predict_heatmaps(model, pixels, flip_pairs=())  # nothing swapped: only the mirror
    assert not torch.allclose(no_pairs, expected)


def test_predict_rejects_frames_without_a_time_axis():
    with pytest.raises(ValueError, match=r"pixel_values must be \(B, T, 3, H, W\)"):
        predict_heatmaps(_tiny_model(), torch.zeros(1, 3, 64, 48))
