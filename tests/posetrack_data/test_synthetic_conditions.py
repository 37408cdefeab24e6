import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from posetrack_data import TopDownTransform, load_posetrack, subsets_file
from posetrack_data.synthetic import generate_dataset
from posetrack_data.synthetic_conditions import CONDITIONS, condition_names, crop_box, crossing

_KWARGS = {
    "num_videos": 5,
    "num_frames": 12,
    "image_size": (192, 144),
    "seed": 2,
    "num_val_videos": 2,
    "num_test_videos": 2,
    "eval_frames": 7,
    "occlusion_prob": 0.3,
    "blur_prob": 0.2,
    "defocus_prob": 0.2,
    "jpeg_quality": 95,
    "progress": False,
}
_SPLITS = ("train", "val", "test", "pretrain")


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return generate_dataset(tmp_path_factory.mktemp("conditions"), **_KWARGS, num_pretrain_frames=4)


def _annotations(root, split):
    """{video: its annotation file's content} of one split."""
    files = sorted((root / "annotations" / split).glob("*.json"))
    return {file.stem: json.loads(file.read_text()) for file in files}


def _subsets(root, split):
    return json.loads((root / "subsets" / f"{split}.json").read_text())


def _others_inside(ann, people):
    """More than half of another person's annotated joints inside the GT box of ``ann``."""
    x, y, w, h = ann["bbox"]
    for other in people:
        if other is not ann:
            joints = np.asarray(other["keypoints"]).reshape(17, 3)
            xy = joints[joints[:, 2] > 0, :2]
            inside = (xy[:, 0] >= x) & (xy[:, 0] <= x + w) & (xy[:, 1] >= y) & (xy[:, 1] <= y + h)
            if inside.sum() > len(xy) / 2:
                return True
    return False


def test_subset_files_map_every_condition_to_sorted_existing_ids(root):
    for split in _SPLITS:
        subsets = _subsets(root, split)
        assert json.loads(subsets_file(root, split).read_text()) == subsets  # where readers find them
        assert list(subsets) == list(CONDITIONS)
        ids = {ann["id"] for video in _annotations(root, split).values() for ann in video["annotations"]}
        for name, members in subsets.items():
            assert members == sorted(set(members)), (split, name)
            assert set(members) <= ids, (split, name)


def test_each_person_is_in_exactly_the_subsets_its_key_frame_shows(root):
    corrupted = json.loads((root / "synthetic.json").read_text())["corrupted_frames"]
    sizes = dict.fromkeys(CONDITIONS, 0)
    for split in _SPLITS:
        subsets = {name: set(members) for name, members in _subsets(root, split).items()}
        for video, content in _annotations(root, split).items():
            frames = {}
            for ann in content["annotations"]:
                frames.setdefault(ann["image_id"], []).append(ann)
            listed = corrupted[video]
            for people in frames.values():
                for ann in people:
                    t = ann["image_id"] % 10**4
                    expected = {
                        "occluded": t in listed["occluded"][str(ann["track_id"])],
                        "motion_blur": t in listed["blur"],
                        "defocus": t in listed["defocus"],
                        "crossing": _others_inside(ann, people),
                    }
                    expected["clean"] = not any(expected.values())
                    for name, held in expected.items():
                        assert (ann["id"] in subsets[name]) == held, (video, ann["id"], name)
                        sizes[name] += held
    assert all(sizes[name] >= 3 for name in ("occluded", "motion_blur", "defocus", "crossing", "clean")), sizes


def test_background_motion_is_a_moving_shape_inside_the_crop(root, tmp_path):
    # The distractors draw from their own stream: without them the people and annotations stay the same, and
    # the frames differ exactly where a shape is drawn (JPEG spreads a difference by a few grey levels).
    still = generate_dataset(tmp_path, **{**_KWARGS, "blur_prob": 0.0, "defocus_prob": 0.0, "background_motion": False})
    moving = generate_dataset(tmp_path / "moving", **{**_KWARGS, "blur_prob": 0.0, "defocus_prob": 0.0})
    members = set(_subsets(moving, "train")["background_motion"])
    inside = []
    for video, content in _annotations(moving, "train").items():
        for ann in content["annotations"]:
            t = ann["image_id"] % 10**4
            (x0, y0), (x1, y1) = crop_box(ann["bbox"])
            rows = slice(max(int(np.ceil(y0)), 0), int(np.floor(y1)) + 1)
            cols = slice(max(int(np.ceil(x0)), 0), int(np.floor(x1)) + 1)
            change = 0
            for u in {max(t - 1, 0), t, min(t + 1, 11)}:
                path = f"images/train/{video}/{u:06d}.jpg"
                a, b = (np.asarray(Image.open(r / path), np.int16) for r in (moving, still))
                change = max(change, int(np.abs(a - b)[rows, cols].max()))
            inside.append((ann["id"] in members, change))
    assert 3 <= len(members) < len(inside)
    assert all((change > 30) == member for member, change in inside), inside


def test_pretraining_frames_stand_still_and_are_crowded(root):
    subsets = _subsets(root, "pretrain")
    assert subsets["background_motion"] == []
    people = sum(len(video["annotations"]) for video in _annotations(root, "pretrain").values())
    assert len(subsets["crossing"]) > people / 2


def test_crop_box_is_the_region_the_top_down_transform_crops(root, tmp_path):
    rows = load_posetrack(root, split="val", cache_dir=tmp_path)
    batch = rows.with_transform(TopDownTransform(train=False, root=root, image_size=(256, 192)))[:6]
    for bbox, image_from_crop in zip(batch["bbox"], batch["image_from_crop"], strict=True):
        corners = image_from_crop @ np.array([[0, 0, 1], [192, 256, 1]]).T  # input corners, pixel centres at .0
        np.testing.assert_allclose(crop_box(bbox), corners.T, atol=1e-6)


def _person(x, y, size=20.0):
    """A PT18 annotation of 15 joints on a vertical line of `size` px from (x, y), with its GT box."""
    joints = np.zeros((17, 3))
    joints[[0, 1, 2, *range(5, 17)]] = [[x, y + size * k / 14, 1] for k in range(15)]
    return {"keypoints": joints.ravel().tolist(), "bbox": [x - size * 0.15, y - size * 0.15, size * 0.3, size * 1.3]}


def test_crossing_needs_most_of_another_persons_joints_inside_the_box():
    target = _person(100, 100)
    x, y, w, h = target["bbox"]
    # a vertical line of 15 joints from y: 8 of them inside the box from above, then only 7
    most = _person(100, y + h - 20 * 7 / 14 - 0.01)
    half = _person(100, y + h - 20 * 6 / 14 - 0.01)
    beside = _person(x + w + 0.5, 100)  # every joint just outside, though inside the enlarged crop box
    assert crossing([target, most])[0]
    assert not crossing([target, half])[0]
    assert crossing([target, beside]) == [False, False]
    assert crossing([target]) == [False]
    (x0, _), (x1, _) = crop_box(target["bbox"])
    assert x0 < x + w + 0.5 < x1


@given(
    occluded=st.booleans(),
    corruption=st.sampled_from([None, "blur", "defocus"]),
    crossed=st.booleans(),
    background=st.booleans(),
)
def test_clean_is_none_of_the_key_frame_conditions(occluded, corruption, crossed, background):
    names = condition_names(occluded=occluded, corruption=corruption, crossing=crossed, background_motion=background)
    assert names == [name for name in CONDITIONS if name in names]
    assert ("occluded" in names) == occluded
    assert ("motion_blur" in names) == (corruption == "blur")
    assert ("defocus" in names) == (corruption == "defocus")
    assert ("crossing" in names) == crossed
    assert ("background_motion" in names) == background
    assert ("clean" in names) == (not occluded and corruption is None and not crossed)
