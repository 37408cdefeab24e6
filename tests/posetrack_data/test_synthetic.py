import json

import numpy as np
import pytest
from PIL import Image

from posetrack_data.dataset import load_posetrack
from posetrack_data.joints import SLOT17_NAMES
from posetrack_data.synthetic import generate_dataset


def _files(root):
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_layout_matches_posetrack18(synthetic_root):
    train = sorted(p.name for p in (synthetic_root / "annotations" / "train").glob("*.json"))
    val = sorted(p.name for p in (synthetic_root / "annotations" / "val").glob("*.json"))
    assert train == ["000001_mpii_train.json", "000002_mpii_train.json", "000003_mpii_train.json"]
    assert val == ["000004_mpii_test.json"]
    frames = sorted(p.name for p in (synthetic_root / "images" / "val" / "000004_mpii_test").iterdir())
    assert frames == [f"{t:06d}.jpg" for t in range(9)]
    with Image.open(synthetic_root / "images" / "val" / "000004_mpii_test" / "000000.jpg") as image:
        assert (image.format, image.size) == ("JPEG", (160, 128))
    assert (synthetic_root / "person_detections" / "val.json").is_file()


def test_annotations_list_every_frame_and_label_val_every_fourth(synthetic_root):
    content = json.loads((synthetic_root / "annotations" / "val" / "000004_mpii_test.json").read_text())
    images = content["images"]
    assert [im["nframes"] for im in images] == [9] * 9
    assert [im["is_labeled"] for im in images] == [t % 4 == 0 for t in range(9)]
    assert images[3]["id"] == 10000040003  # poseval's frame id: mpii source 1, sequence 4, frame 3
    assert content["categories"][0]["keypoints"] == list(SLOT17_NAMES)
    labeled_ids = {im["id"] for im in images if im["is_labeled"]}
    assert {ann["image_id"] for ann in content["annotations"]} == labeled_ids


def test_joints_inside_image_with_head_boxes_and_no_ears(synthetic_root):
    for file in (synthetic_root / "annotations").rglob("*.json"):
        for ann in json.loads(file.read_text())["annotations"]:
            kpts = np.asarray(ann["keypoints"]).reshape(17, 3)
            assert (kpts[[3, 4]] == 0).all()
            present = kpts[kpts[:, 2] > 0]
            assert len(present) == 15 == ann["num_keypoints"]
            assert (present[:, 0] > 0).all()
            assert (present[:, 0] < 160).all()
            assert (present[:, 1] > 0).all()
            assert (present[:, 1] < 128).all()
            head = ann["bbox_head"]
            assert head[2] >= 3
            assert head[3] >= 3
            assert ann["bbox"][2] > 0
            assert ann["bbox"][3] > 0


def test_detections_reference_val_frames_with_scores(synthetic_root):
    detections = json.loads((synthetic_root / "person_detections" / "val.json").read_text())
    images = json.loads((synthetic_root / "annotations" / "val" / "000004_mpii_test.json").read_text())["images"]
    assert {d["image_id"] for d in detections} <= {im["id"] for im in images}
    scores = [d["score"] for d in detections]
    assert min(scores) > 0
    assert max(scores) < 1
    assert all(d["category_id"] == 1 and d["bbox"][2] > 0 and d["bbox"][3] > 0 for d in detections)


def test_same_seed_gives_identical_files_other_seed_differs(tmp_path):
    kwargs = {"num_videos": 2, "num_frames": 3, "image_size": (96, 80), "progress": False}
    a = _files(generate_dataset(tmp_path / "a", seed=3, **kwargs))
    b = _files(generate_dataset(tmp_path / "b", seed=3, **kwargs))
    c = _files(generate_dataset(tmp_path / "c", seed=4, **kwargs))
    assert a == b
    assert a.keys() == c.keys()
    assert a != c


def test_occluded_frames_are_never_adjacent(synthetic_root):
    # Occluders change pixels near a limb end for one frame only: the per-figure occlusion schedule.
    from posetrack_data.synthetic import _occlusion_frames

    frames = _occlusion_frames(np.random.default_rng(0), 500, 0.5)
    assert len(frames) > 100
    assert not any(t + 1 in frames for t in frames)


def test_round_trips_through_load_posetrack(synthetic_root, tmp_path):
    train = load_posetrack(synthetic_root, split="train", cache_dir=tmp_path)
    people = sum(
        len(json.loads(f.read_text())["annotations"]) for f in (synthetic_root / "annotations" / "train").glob("*.json")
    )
    assert len(train) == people
    row = train[0]
    assert row["video"] == "000001_mpii_train"
    assert row["frame_index"] == 0
    assert row["num_frames"] == 9
    assert row["frame_paths"][0] == row["frame_paths"][1]  # clamped at the start
    assert row["frame_paths"][2].endswith("000001_mpii_train/000001.jpg")
    val = load_posetrack(
        synthetic_root, split="val", detections=synthetic_root / "person_detections" / "val.json", cache_dir=tmp_path
    )
    assert len(val) > 0
    assert all(val["from_detector"])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"num_videos": 1, "num_frames": 5}, "num_videos"),
        ({"num_videos": 2, "num_frames": 2}, "num_frames"),
        ({"num_videos": 2, "num_frames": 5, "image_size": (32, 32)}, "image_size"),
    ],
)
def test_rejects_bad_arguments(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        generate_dataset(tmp_path, progress=False, **kwargs)
