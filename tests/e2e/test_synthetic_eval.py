"""Synthetic PoseTrack data round-trips through posetrack_data and posetrack_eval: GT scores 100 AP."""

import numpy as np
import pytest

from posetrack_data import TopDownTransform, generate_dataset, load_posetrack
from posetrack_eval import evaluate


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    generate_dataset(root, num_videos=4, num_frames=13, image_size=(192, 144), val_fraction=0.5, progress=False)
    val = load_posetrack(root, split="val", cache_dir=tmp_path_factory.mktemp("cache"))
    return root, val


def _predictions(val, keypoints):
    return [
        {
            "image_id": int(image_id),
            "keypoints": kpts.reshape(-1).tolist(),
            "scores": [1.0] * 17,
            "track_id": int(track),
        }
        for image_id, kpts, track in zip(val["image_id"], keypoints, val["track_id"], strict=True)
    ]


@pytest.mark.parametrize("protocol", ["poseval", "pt21"])
def test_ground_truth_scored_against_itself_is_100_ap(synthetic, protocol):
    root, val = synthetic
    keypoints = np.asarray(val.with_format("numpy")["keypoints"])
    result = evaluate(root / "annotations" / "val", _predictions(val, keypoints), protocol=protocol)
    assert result.ap["Total"] == pytest.approx(100.0)
    assert all(v == pytest.approx(100.0) for v in result.ap_per_joint.values())


def test_ground_truth_tracks_scored_against_themselves_are_100_mota(synthetic):
    root, val = synthetic
    keypoints = np.asarray(val.with_format("numpy")["keypoints"])
    result = evaluate(root / "annotations" / "val", _predictions(val, keypoints), tracking=True)
    assert result.mota["Total"] == pytest.approx(100.0)


def test_heatmap_targets_mapped_back_to_the_image_score_100_ap(synthetic):
    # The transform's targets, decoded as a model's heatmaps would be (argmax, stride 4) and mapped back
    # through image_from_crop, land within poseval's PCKh threshold of the GT.
    root, val = synthetic
    batch = val.with_transform(TopDownTransform(train=False, root=root))[:]
    heatmaps = batch["target_heatmaps"]
    B, J, h, w = heatmaps.shape
    rows, cols = np.unravel_index(heatmaps.reshape(B, J, -1).argmax(axis=2), (h, w))
    crop = np.stack([cols, rows], axis=2) * 4.0
    image = (
        np.einsum("bij,bkj->bki", batch["image_from_crop"][:, :, :2], crop) + batch["image_from_crop"][:, None, :, 2]
    )
    keypoints = np.concatenate([image, batch["target_weight"][..., None]], axis=2)
    keypoints[batch["target_weight"] == 0] = 0
    result = evaluate(root / "annotations" / "val", _predictions(val, keypoints))
    assert result.ap["Total"] == pytest.approx(100.0)
