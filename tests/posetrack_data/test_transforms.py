import subprocess
import sys

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from posetrack_data.dataset import load_posetrack
from posetrack_data.errors import PoseTrackFormatError
from posetrack_data.geometry import affine_points
from posetrack_data.joints import FLIP_PAIRS
from posetrack_data.transforms import IMAGENET_MEAN, IMAGENET_STD, TopDownTransform, decode_frame

PARTNER = np.arange(17)
for _left, _right in FLIP_PAIRS:
    PARTNER[_left], PARTNER[_right] = _right, _left


@pytest.fixture(scope="module")
def sample_rows(posetrack18_sample, tmp_path_factory):
    return load_posetrack(posetrack18_sample, split="val", cache_dir=tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module")
def train_rows(synthetic_root, tmp_path_factory):
    return load_posetrack(synthetic_root, split="train", cache_dir=tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module")
def frame_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("frame") / "000000.jpg"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)).save(path, quality=90)
    return str(path)


def _unnormalise(pixel_values):
    mean, std = np.array(IMAGENET_MEAN)[:, None, None], np.array(IMAGENET_STD)[:, None, None]
    return np.moveaxis((pixel_values * std + mean) * 255, -3, -1)


def _heatmap_peaks(heatmaps):
    J, h, w = heatmaps.shape
    rows, cols = np.unravel_index(heatmaps.reshape(J, -1).argmax(axis=1), (h, w))
    return np.stack([cols, rows], axis=1).astype(np.float64)


def test_outputs_match_the_contract(sample_rows, posetrack18_sample):
    batch = sample_rows.with_transform(TopDownTransform(train=False, root=posetrack18_sample))[:4]
    assert batch["pixel_values"].shape == (4, 3, 3, 256, 192)
    assert batch["pixel_values"].dtype == np.float32
    assert batch["target_heatmaps"].shape == (4, 17, 64, 48)
    assert batch["target_weight"].shape == (4, 17)
    assert batch["image_from_crop"].shape == (4, 2, 3)
    assert batch["image_from_crop"].dtype == np.float64
    assert batch["image_id"].dtype == np.int64
    assert batch["track_id"].dtype == np.int32
    assert batch["bbox"].shape == (4, 4)
    assert batch["video"] == sample_rows["video"][:4]
    assert batch["file_name"] == sample_rows["file_name"][:4]
    # Ears are never annotated in PoseTrack18: weight 0, empty target.
    assert (batch["target_weight"][:, [3, 4]] == 0).all()
    assert batch["target_heatmaps"][:, [3, 4]].max() == 0
    single = sample_rows.with_transform(TopDownTransform(train=False, root=posetrack18_sample))[0]
    assert single["pixel_values"].shape == (3, 3, 256, 192)


def test_eval_crop_equals_a_direct_full_resolution_warp(sample_rows, posetrack18_sample):
    row = sample_rows[5]
    out = sample_rows.with_transform(TopDownTransform(train=False, root=posetrack18_sample, reduced_decode=False))[5]
    crop_from_image = np.linalg.inv(np.vstack([out["image_from_crop"], [0, 0, 1]]))[:2]
    frame = np.asarray(Image.open(posetrack18_sample / row["frame_paths"][1]).convert("RGB"))
    expected = cv2.warpAffine(frame, crop_from_image, (192, 256), flags=cv2.INTER_LINEAR)
    np.testing.assert_allclose(_unnormalise(out["pixel_values"][1]), expected, atol=0.01)


def test_reduced_decode_stays_close_to_full_decode(sample_rows, posetrack18_sample):
    full = sample_rows.with_transform(TopDownTransform(train=False, root=posetrack18_sample, reduced_decode=False))[:]
    reduced = sample_rows.with_transform(TopDownTransform(train=False, root=posetrack18_sample))[:]
    diff = np.abs(_unnormalise(full["pixel_values"][:, 1]) - _unnormalise(reduced["pixel_values"][:, 1]))
    assert diff.mean() < 6.0  # of 255; DCT scaling low-passes where bilinear subsampling aliases


def test_decode_frame_reduces_jpeg_and_maps_pixel_centres(posetrack18_sample):
    path = str(posetrack18_sample / "images" / "val" / "009473_mpii_test" / "000000.jpg")
    frame, image_from_decoded = decode_frame(path, max_reduction=4)
    assert frame.shape == (270, 480, 4)
    np.testing.assert_allclose(image_from_decoded, [[4, 0, 1.5], [0, 4, 1.5]])
    full, identity = decode_frame(path)
    assert full.shape == (1080, 1920, 4)
    np.testing.assert_allclose(identity, [[1, 0, 0], [0, 1, 0]])


@pytest.mark.parametrize(("mode", "reduction"), [("RGB", 1), ("RGB", 2), ("RGB", 8), ("L", 4), ("CMYK", 1)])
def test_decode_frame_gives_pils_pixels(posetrack18_sample, tmp_path, reduction, mode):
    # simplejpeg decodes JPEG frames; the pixels must be exactly what PIL's (DCT-scaled) decoding gives
    real = str(posetrack18_sample / "images" / "val" / "009473_mpii_test" / "000000.jpg")
    path = tmp_path / f"{mode}.jpg"
    Image.open(real).convert(mode).save(path, quality=85)
    with Image.open(path) as image:
        image.draft("RGB", (image.size[0] // reduction, image.size[1] // reduction))
        expected = np.asarray(image.convert("RGB"))
    frame, image_from_decoded = decode_frame(str(path), max_reduction=reduction)
    np.testing.assert_array_equal(frame[..., :3], expected)
    np.testing.assert_allclose(image_from_decoded[0], [reduction, 0, (reduction - 1) / 2])


def test_eval_heatmaps_project_back_onto_the_keypoints(sample_rows, posetrack18_sample):
    batch = sample_rows.with_transform(TopDownTransform(train=False, root=posetrack18_sample))[:]
    keypoints = np.asarray(sample_rows.with_format("numpy")["keypoints"])
    for b in range(len(keypoints)):
        peaks = _heatmap_peaks(batch["target_heatmaps"][b]) * 4  # heatmap -> crop pixels (stride 4)
        image = affine_points(batch["image_from_crop"][b], peaks)
        zoom = np.sqrt(abs(np.linalg.det(batch["image_from_crop"][b][:, :2])))
        on = batch["target_weight"][b] > 0
        assert on.sum() >= 10
        assert np.abs(image[on] - keypoints[b, on, :2]).max() <= 0.5 * 4 * zoom + 1e-6


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**31), index=st.integers(0, 50))
def test_augmented_targets_follow_the_augmented_crop(train_rows, synthetic_root, seed, index):
    transform = TopDownTransform(train=True, root=synthetic_root, seed=seed, half_body_prob=0.5)
    row = train_rows[index % len(train_rows)]
    out = transform({k: [v] for k, v in row.items()})
    keypoints = np.asarray(row["keypoints"])
    image_from_crop = out["image_from_crop"][0]
    flipped = np.linalg.det(image_from_crop[:, :2]) < 0
    source = keypoints[PARTNER] if flipped else keypoints  # a flip swaps left/right targets
    crop_from_image = np.linalg.inv(np.vstack([image_from_crop, [0, 0, 1]]))[:2]
    expected = affine_points(crop_from_image, source[:, :2]) / 4  # image -> heatmap pixels
    on = out["target_weight"][0] > 0
    peaks = _heatmap_peaks(out["target_heatmaps"][0])
    assert np.abs(peaks[on] - expected[on]).max(initial=0) <= 1.0
    assert np.isfinite(out["pixel_values"]).all()


def test_training_augmentation_covers_flip_rotation_and_scale(train_rows, synthetic_root):
    transform = TopDownTransform(train=True, root=synthetic_root, seed=0)
    batch = train_rows.with_transform(transform)[:64]
    linear = batch["image_from_crop"][:, :, :2]
    dets = np.linalg.det(linear)
    assert 10 < (dets < 0).sum() < 54  # flips at probability 0.5
    angles = np.degrees(np.arctan2(linear[:, 1, 0], linear[:, 0, 0] * np.sign(dets)))
    assert np.abs(angles).max() <= 45 + 1e-6
    assert (np.abs(angles) > 1).sum() > 15  # rotation at probability 0.6
    assert len(np.unique(np.round(np.sqrt(np.abs(dets)), 3))) > 32  # scale jitter


def test_same_seed_same_augmentation(train_rows, synthetic_root):
    first = train_rows.with_transform(TopDownTransform(train=True, root=synthetic_root, seed=5))[:8]
    second = train_rows.with_transform(TopDownTransform(train=True, root=synthetic_root, seed=5))[:8]
    np.testing.assert_array_equal(first["pixel_values"], second["pixel_values"])
    np.testing.assert_array_equal(first["image_from_crop"], second["image_from_crop"])


@settings(max_examples=25, deadline=None)
@given(
    x=st.floats(-400, 400),
    y=st.floats(-400, 400),
    w=st.floats(-5, 400),
    h=st.floats(-5, 400),
    train=st.booleans(),
    seed=st.integers(0, 1000),
)
def test_boxes_at_borders_and_tiny_boxes_never_crash(frame_file, x, y, w, h, train, seed):
    keypoints = np.zeros((17, 3), np.float32)
    keypoints[5:11] = [[x + 1, y + 1, 1]] * 6
    batch = {"frame_paths": [[frame_file] * 3], "keypoints": [keypoints.tolist()], "bbox": [[x, y, w, h]]}
    out = TopDownTransform(train=train, seed=seed)(batch)
    assert out["pixel_values"].shape == (1, 3, 3, 256, 192)
    assert np.isfinite(out["pixel_values"]).all()
    assert np.isfinite(out["target_heatmaps"]).all()
    assert np.isfinite(out["image_from_crop"]).all()


def test_corrupt_and_missing_frames_name_the_file(tmp_path, frame_file):
    corrupt = tmp_path / "000001.jpg"
    with open(frame_file, "rb") as f:
        corrupt.write_bytes(f.read()[:300])
    keypoints = np.zeros((17, 3)).tolist()
    for bad in (str(corrupt), str(tmp_path / "absent.jpg")):
        batch = {"frame_paths": [[frame_file, frame_file, bad]], "keypoints": [keypoints], "bbox": [[0, 0, 50, 50]]}
        with pytest.raises(PoseTrackFormatError) as info:
            TopDownTransform(train=False)(batch)
        assert info.value.file == bad
        assert bad in str(info.value)


def test_torch_output_and_dataloader_workers_draw_different_augmentations(train_rows, synthetic_root):
    torch = pytest.importorskip("torch")
    one = train_rows.select([0, 0, 0, 0])  # four copies of the same person
    ds = one.with_transform(TopDownTransform(train=True, root=synthetic_root, seed=0, return_tensors="pt"))
    batch = ds[:2]
    assert isinstance(batch["pixel_values"], torch.Tensor)
    assert batch["pixel_values"].shape == (2, 3, 3, 256, 192)
    torch.manual_seed(0)
    loader = torch.utils.data.DataLoader(ds, batch_size=1, num_workers=2, multiprocessing_context="fork")
    crops = [b["image_from_crop"][0] for b in loader]
    assert not torch.equal(crops[0], crops[1])  # workers 0 and 1 each took one of the first two


def test_rejects_bad_arguments():
    with pytest.raises(ValueError, match="return_tensors"):
        TopDownTransform(train=False, return_tensors="tf")
    with pytest.raises(ValueError, match="flip_prob"):
        TopDownTransform(train=True, flip_prob=2)
    with pytest.raises(ValueError, match="'keypoints'"):
        TopDownTransform(train=False)({"frame_paths": [], "bbox": []})


@pytest.mark.slow  # a fresh interpreter importing datasets, PIL and cv2
def test_package_imports_and_transforms_without_torch(synthetic_root, tmp_path):
    script = f"""
import sys
sys.modules["torch"] = None  # any torch import now fails
from posetrack_data import TopDownTransform, load_posetrack
rows = load_posetrack({str(synthetic_root)!r}, split="train", cache_dir={str(tmp_path)!r})
out = rows.with_transform(TopDownTransform(train=True, root={str(synthetic_root)!r}, seed=0))[:2]
print(out["pixel_values"].shape)
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "(2, 3, 3, 256, 192)"


def test_torch_decode_device_is_validated():
    pytest.importorskip("torchvision")
    with pytest.raises(ValueError, match="return_tensors='pt'"):
        TopDownTransform(train=False, torch_decode_device="cpu")
    with pytest.raises(ValueError, match="torch device"):
        TopDownTransform(train=False, torch_decode_device="gpu0", return_tensors="pt")
    with pytest.raises(ValueError, match="device name or None"):
        TopDownTransform(train=False, torch_decode_device=0, return_tensors="pt")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="'cuda' or 'cpu'"):
        TopDownTransform(train=False, torch_decode_device="meta", return_tensors="pt")
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA device"):
            TopDownTransform(train=False, torch_decode_device="cuda", return_tensors="pt")


def _torch_decode_matches_the_cpu_path(rows, root, device):
    torch = pytest.importorskip("torch")
    pytest.importorskip("torchvision")
    # full-resolution CPU decoding is the reference the device path (which decodes at full resolution) meets
    cpu = rows.with_transform(TopDownTransform(train=False, root=root, reduced_decode=False, return_tensors="pt"))
    dev = rows.with_transform(TopDownTransform(train=False, root=root, torch_decode_device=device, return_tensors="pt"))
    ours, theirs = dev[:6], cpu[:6]
    assert ours["pixel_values"].device.type == torch.device(device).type
    assert ours["pixel_values"].shape == theirs["pixel_values"].shape
    for key in ("target_heatmaps", "target_weight", "image_from_crop"):
        assert torch.equal(ours[key], theirs[key])
    diff = np.abs(_unnormalise(ours["pixel_values"].cpu().numpy()) - _unnormalise(theirs["pixel_values"].numpy()))
    assert diff.mean() < 1.0  # of 255: nvJPEG/libjpeg IDCTs and grid_sample's float weights vs cv2's fixed point
    assert np.percentile(diff, 99) < 6.0


def test_torchvision_cpu_decode_gives_the_same_crops(sample_rows, posetrack18_sample):
    _torch_decode_matches_the_cpu_path(sample_rows, posetrack18_sample, "cpu")


@pytest.mark.gpu
def test_cuda_decode_gives_the_same_crops(sample_rows, posetrack18_sample):
    _torch_decode_matches_the_cpu_path(sample_rows, posetrack18_sample, "cuda")
