import json
import os
import shutil
from pathlib import Path

import datasets
import numpy as np
import pytest
from PIL import Image

from posetrack_data.dataset import dataset_features, load_posetrack, resolve_frame_paths
from posetrack_data.errors import PoseTrackFormatError
from posetrack_data.transforms import TopDownTransform

DETECTIONS = "annotations/test_posetrack18_human_detections.json"


def _count_people(annotation_dir):
    """Persons with at least one joint of v > 0 on frames marked is_labeled, counted straight from the JSON."""
    count = 0
    for file in sorted(Path(annotation_dir).glob("*.json")):
        content = json.loads(file.read_text())
        labeled = {im["id"] for im in content["images"] if im["is_labeled"]}
        for ann in content["annotations"]:
            if ann["image_id"] in labeled and any(v > 0 for v in ann["keypoints"][2::3]):
                count += 1
    return count


def test_sample_rows_are_annotated_people_on_labeled_frames(posetrack18_sample, tmp_path):
    ds = load_posetrack(posetrack18_sample, version="2018", split="val", cache_dir=tmp_path)
    assert len(ds) == _count_people(posetrack18_sample / "annotations" / "val") == 14
    assert ds.features == dataset_features(3)
    assert sorted(set(ds["video"])) == ["003418_mpii_test", "009473_mpii_test", "012834_mpii_test"]
    row = ds.with_format("numpy")[1]
    assert row["keypoints"].shape == (17, 3)
    assert row["keypoints"].dtype == np.float32
    np.testing.assert_allclose(row["keypoints"][0], [750, 297.5, 1])
    assert row["image_id"] == 10094730000
    assert row["num_frames"] == 101
    assert not row["from_detector"]
    assert row["box_score"] == 1.0
    assert (row["image_width"], row["image_height"]) == (1920, 1080)


def test_sample_neighbours_exist_or_are_clamped_to_the_key_frame(posetrack18_sample, tmp_path):
    # The sample keeps only frame 000000 of each video: t-1 is before the start, t+1 is not on disk.
    ds = load_posetrack(posetrack18_sample, split="val", cache_dir=tmp_path)
    for row in ds:
        assert row["frame_paths"] == [row["file_name"]] * 3  # relative to the root, the key frame's name
        for path in resolve_frame_paths(row["frame_paths"], posetrack18_sample):
            assert Path(path).is_file()


def test_neighbours_step_one_frame_and_clamp_at_both_ends(synthetic_root, tmp_path):
    ds = load_posetrack(synthetic_root, split="train", frame_offsets=(-2, 0, 1), cache_dir=tmp_path)
    video = ds.filter(lambda r: r["video"] == "000002_mpii_train" and r["track_id"] == 0)
    names = [[Path(p).name for p in paths] for paths in video["frame_paths"]]
    assert names[0] == ["000000.jpg", "000000.jpg", "000001.jpg"]
    assert names[1] == ["000000.jpg", "000001.jpg", "000002.jpg"]
    assert names[4] == ["000002.jpg", "000004.jpg", "000005.jpg"]
    assert names[8] == ["000006.jpg", "000008.jpg", "000008.jpg"]


def test_detections_give_one_row_per_box_above_threshold(posetrack18_sample, tmp_path):
    boxes = json.loads((posetrack18_sample / DETECTIONS).read_text())
    ds = load_posetrack(posetrack18_sample, split="val", detections=posetrack18_sample / DETECTIONS, cache_dir=tmp_path)
    assert len(ds) == sum(b["score"] >= 0.2 for b in boxes) == 186
    assert all(ds["from_detector"])
    assert min(ds["box_score"]) >= 0.2
    assert set(ds["track_id"]) == {-1}
    assert np.asarray(ds.with_format("numpy")["keypoints"]).sum() == 0
    strict = load_posetrack(
        posetrack18_sample, split="val", detections=posetrack18_sample / DETECTIONS, min_detection_score=0.9,
        cache_dir=tmp_path,
    )  # fmt: skip
    assert len(strict) == sum(b["score"] >= 0.9 for b in boxes)


def test_dcpose_detection_list_matches_frames_by_name(posetrack18_sample, tmp_path):
    boxes = [
        {"image_name": "images/val/009473_mpii_test/000000.jpg", "bbox": [10, 20, 100, 200], "score": 0.8},
        {"image_name": "images/val/009473_mpii_test/000050.jpg", "bbox": [10, 20, 100, 200], "score": 0.8},
    ]
    path = tmp_path / "val_boxes.json"
    path.write_text(json.dumps(boxes))
    ds = load_posetrack(posetrack18_sample, split="val", detections=path, cache_dir=tmp_path)
    assert len(ds) == 1
    assert ds[0]["image_id"] == 10094730000
    assert ds[0]["bbox"] == [10, 20, 100, 200]


def test_second_call_reuses_the_cache_and_edits_invalidate_it(synthetic_root, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(synthetic_root, root)
    first = load_posetrack(root, split="train", cache_dir=tmp_path / "cache")
    second = load_posetrack(root, split="train", cache_dir=tmp_path / "cache")
    assert second._fingerprint == first._fingerprint
    assert [f["filename"] for f in second.cache_files] == [f["filename"] for f in first.cache_files]
    file = root / "annotations" / "train" / "000001_mpii_train.json"
    content = json.loads(file.read_text())
    content["annotations"] = content["annotations"][1:]
    file.write_text(json.dumps(content))
    os.utime(file, ns=(1, 1))  # a different mtime even on coarse-grained filesystems
    third = load_posetrack(root, split="train", cache_dir=tmp_path / "cache")
    assert third._fingerprint != first._fingerprint
    assert len(third) == len(first) - 1


def test_pt17_root_loads_with_converted_joints(tmp_path, pt17_frame):
    folder = tmp_path / "images" / "bonn_5sec" / "000342_mpii"
    folder.mkdir(parents=True)
    for t in (1, 2, 3):
        Image.new("RGB", (64, 48)).save(folder / f"{t:08d}.jpg")
    unlabeled = {"image": [{"name": "images/bonn_5sec/000342_mpii/00000001.jpg"}]}
    last = {"image": [{"name": "images/bonn_5sec/000342_mpii/00000003.jpg"}]}
    ann = tmp_path / "annotations" / "val" / "000342_mpii.json"
    ann.parent.mkdir(parents=True)
    ann.write_text(json.dumps({"annolist": [unlabeled, pt17_frame, last]}))
    ds = load_posetrack(tmp_path, split="val", cache_dir=tmp_path / "cache")
    assert len(ds) == 1
    row = ds[0]
    assert row["frame_index"] == 2
    assert row["num_frames"] == 3
    assert row["image_id"] == 10003420002
    assert [Path(p).name for p in row["frame_paths"]] == ["00000001.jpg", "00000002.jpg", "00000003.jpg"]
    assert (row["image_width"], row["image_height"]) == (64, 48)  # read from the frame: annolist has no size
    assert row["keypoints"][16] == [30, 150, 1]


def test_pt21_root_keeps_person_id_and_skips_box_only_persons(tmp_path):
    kpts = [0.0] * 51
    kpts[15:18] = [5, 6, 1]
    occluded = [0.0] * 51
    occluded[27:30] = [9, 8, 0]  # x, y > 0 with v = 0: annotated for PT21's scorer
    content = {
        "images": [
            {"id": 7, "file_name": "images/val/000001_bonn_test/000000.jpg", "nframes": 2, "is_labeled": True,
             "has_labeled_person": True, "width": 64, "height": 48},
            {"id": 8, "file_name": "images/val/000001_bonn_test/000001.jpg", "nframes": 2, "is_labeled": False,
             "has_labeled_person": False, "width": 64, "height": 48},
        ],
        "annotations": [
            {"image_id": 7, "keypoints": kpts, "bbox": [1, 2, 30, 40], "track_id": 0, "person_id": 1234},
            {"image_id": 7, "keypoints": occluded, "bbox": [20, 2, 30, 40], "track_id": 2, "person_id": 7},
            {"image_id": 7, "bbox": [40, 2, 20, 40], "track_id": 1, "person_id": 99},
        ],
    }  # fmt: skip
    ann = tmp_path / "posetrack_data" / "val" / "000001_bonn_test.json"
    ann.parent.mkdir(parents=True)
    ann.write_text(json.dumps(content))
    ds = load_posetrack(tmp_path, split="val", cache_dir=tmp_path / "cache")
    assert "person_id" in ds.features
    assert len(ds) == 2
    assert ds["person_id"] == [1234, 7]
    assert ds[0]["keypoints"][5] == [5, 6, 1]
    assert ds[1]["keypoints"][9] == [9, 8, 1]
    assert ds[1]["keypoint_visibility"][9] == 0


def test_zero_area_gt_boxes_are_dropped(tmp_path):
    kpts = [0.0] * 51
    kpts[0:3] = [5, 6, 1]
    content = {
        "images": [{"id": 1, "file_name": "images/val/000001_mpii_test/000000.jpg", "width": 64, "height": 48,
                    "is_labeled": True}],
        "annotations": [{"image_id": 1, "keypoints": kpts, "bbox": [1, 2, 0, 40]},
                        {"image_id": 1, "keypoints": kpts, "bbox": [1, 2, 10, 40]}],
    }  # fmt: skip
    ann = tmp_path / "annotations" / "val" / "000001_mpii_test.json"
    ann.parent.mkdir(parents=True)
    ann.write_text(json.dumps(content))
    assert load_posetrack(tmp_path, split="val", cache_dir=tmp_path / "cache")["bbox"] == [[1, 2, 10, 40]]


def test_malformed_annotation_raises_format_error_naming_file_and_field(tmp_path):
    ann = tmp_path / "annotations" / "val" / "000001_mpii_test.json"
    ann.parent.mkdir(parents=True)
    ann.write_text(json.dumps({"images": [{"id": 1, "file_name": "images/val/000001_mpii_test/000000.jpg"}],
                               "annotations": [{"image_id": 1, "keypoints": [1, 2, 3]}]}))  # fmt: skip
    with pytest.raises(PoseTrackFormatError, match=r"000001_mpii_test\.json: annotations\[0\]\.keypoints"):
        load_posetrack(tmp_path, version="2018", split="val", cache_dir=tmp_path / "cache")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"version": "2019"}, "version"),
        ({"frame_offsets": (-1, 1)}, "frame_offsets"),
        ({"min_detection_score": 1.5}, "min_detection_score"),
        ({"split": "nope"}, "split"),
    ],
)
def test_rejects_bad_arguments(posetrack18_sample, tmp_path, kwargs, match):
    with pytest.raises((ValueError, PoseTrackFormatError), match=match):
        load_posetrack(posetrack18_sample, cache_dir=tmp_path, **({"split": "val"} | kwargs))


def test_split_and_info_travel_with_the_dataset(posetrack18_sample, tmp_path):
    ds = load_posetrack(posetrack18_sample, split="val", cache_dir=tmp_path)
    assert str(ds.split) == "val"
    assert all("generator-val" in f["filename"] for f in ds.cache_files)
    assert ds.info.description.startswith("PoseTrack18 val: one row per annotated person")
    assert "Andriluka" in ds.info.citation
    assert ds.info.homepage == "https://posetrack.net/"
    assert "PoseTrack terms of use" in ds.info.license
    again = load_posetrack(posetrack18_sample, split="val", cache_dir=tmp_path)  # from the cache
    assert (str(again.split), again.info.citation) == ("val", ds.info.citation)


def test_a_moved_root_and_a_save_to_disk_copy_transform_the_same(posetrack18_sample, tmp_path):
    root = tmp_path / "machine-a" / "posetrack18"
    shutil.copytree(posetrack18_sample, root)
    ds = load_posetrack(root, split="val", cache_dir=tmp_path / "cache")
    expected = ds.with_transform(TopDownTransform(train=False, root=root))[:3]["pixel_values"]
    ds.save_to_disk(tmp_path / "saved")
    moved = tmp_path / "machine-b" / "data"
    moved.parent.mkdir()
    root.rename(moved)  # the original root is gone: nothing may still point into it
    copy = datasets.load_from_disk(str(tmp_path / "saved"))
    assert (str(copy.split), copy.info.homepage) == ("val", "https://posetrack.net/")
    np.testing.assert_array_equal(
        copy.with_transform(TopDownTransform(train=False, root=moved))[:3]["pixel_values"], expected
    )
    with pytest.raises(
        ValueError, match=r"frame path 'images/val/.*' is relative to the PoseTrack root; pass the root"
    ):
        copy.with_transform(TopDownTransform(train=False))[:1]
    reloaded = load_posetrack(moved, split="val", cache_dir=tmp_path / "cache")  # rebuilt for the new root
    assert reloaded["frame_paths"] == ds["frame_paths"]


def test_any_error_while_generating_rows_surfaces_as_itself(synthetic_root, tmp_path, monkeypatch):
    # `datasets` wraps whatever the row generator raises in DatasetGenerationError; the caller sees the cause
    import posetrack_data.dataset

    def unreadable(path):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(posetrack_data.dataset, "read_video", unreadable)
    with pytest.raises(PermissionError, match="Permission denied"):
        load_posetrack(synthetic_root, split="val", cache_dir=tmp_path)
