import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from posetrack_data import TopDownTransform, check_root
from posetrack_data.dataset import load_posetrack
from posetrack_data.geometry import PIXEL_STD, box_to_center_scale
from posetrack_data.joints import SLOT17_NAMES
from posetrack_data.synthetic import generate_dataset
from posetrack_data.synthetic_scene import _occlusion_frames, clip_scene

# The figures in separate lanes over a panning background with static clutter, occluders only.
LANES = {"crossing": False, "background_motion": False, "blur_prob": 0.0, "defocus_prob": 0.0}


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
        ({"num_videos": 2, "num_frames": 5, "occlusion_prob": 1.5}, "occlusion_prob must be in"),
        ({"num_videos": 2, "num_frames": 5, "defocus_prob": -0.1}, "defocus_prob must be in"),
        ({"num_videos": 2, "num_frames": 5, "blur_prob": 0.6, "defocus_prob": 0.5}, "blur_prob \\+ defocus_prob"),
        ({"num_videos": 2, "num_frames": 10_001}, "num_frames must be in \\[3, 10000\\]"),
        (
            {"num_videos": 3, "num_frames": 5, "num_val_videos": 3},
            "num_val_videos must be in \\[1, num_videos - 1 = 2\\]",
        ),
        ({"num_videos": 2, "num_frames": 5, "num_test_videos": -1}, "num_test_videos must be >= 0"),
        ({"num_videos": 2, "num_frames": 5, "eval_frames": 6}, "eval_frames must be in \\[3, num_frames = 5\\]"),
        ({"num_videos": 2, "num_frames": 5, "eval_frames": 2}, "eval_frames"),
        ({"num_videos": 2, "num_frames": 5, "num_pretrain_frames": 999_998}, "must be <= 999999"),
        ({"num_videos": 2, "num_frames": 5, "pretrain_people": (5, 4)}, "pretrain_people"),
        ({"num_videos": 2, "num_frames": 5, "pretrain_person_height": (0.05, 0.5)}, "pretrain_person_height"),
        ({"num_videos": 2, "num_frames": 5, "max_people": 101}, "max_people"),
        ({"num_videos": 2, "num_frames": 5, "val_label_every": 0}, "val_label_every"),
    ],
)
def test_rejects_bad_arguments(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        generate_dataset(tmp_path / "out", progress=False, **kwargs)
    assert not (tmp_path / "out").exists()


def _people_per_frame(root):
    """{(video, image_id): [(bbox, annotated joints (n, 2))]} from the generated ground truth."""
    frames = {}
    for file in sorted((root / "annotations").rglob("*.json")):
        for ann in json.loads(file.read_text())["annotations"]:
            kpts = np.asarray(ann["keypoints"], dtype=float).reshape(17, 3)
            frames.setdefault((file.stem, ann["image_id"]), []).append((ann["bbox"], kpts[kpts[:, 2] > 0, :2]))
    return frames


def _crowded_fraction(root, min_joints):
    """Fraction of labeled people with at least `min_joints` of another person's joints inside their crop
    box: the GT box widened to the 192x256 aspect and enlarged 1.25x, as TopDownTransform crops."""
    crowded = total = 0
    for people in _people_per_frame(root).values():
        for i, (bbox, _) in enumerate(people):
            centre, scale = box_to_center_scale(
                bbox, aspect_ratio=192 / 256, enlarge=TopDownTransform(train=False).bbox_enlarge
            )
            half = scale * PIXEL_STD / 2
            inside = [
                int((np.abs(joints - centre) <= half).all(axis=1).sum())
                for j, (_, joints) in enumerate(people)
                if j != i
            ]
            crowded += max(inside, default=0) >= min_joints
            total += 1
    return crowded / total


def _order_swaps(root):
    """(pairs of people whose left-right order changes during the video, pairs in all)."""
    order = {}
    for (video, _), people in sorted(_people_per_frame(root).items()):
        xs = [joints[:, 0].mean() for _, joints in people]
        for i in range(len(xs)):
            for j in range(i + 1, len(xs)):
                order.setdefault((video, i, j), set()).add(bool(xs[i] < xs[j]))
    return sum(len(sides) == 2 for sides in order.values()), len(order)


def test_crossing_puts_other_people_inside_the_crop_box_and_lanes_do_not(synthetic_root, tmp_path):
    lanes = generate_dataset(
        tmp_path, num_videos=4, num_frames=9, image_size=(160, 128), seed=0, progress=False, **LANES
    )
    # Most of another body (8 of its 15 joints) inside the target's crop: common with crossing, rare in lanes.
    assert _crowded_fraction(synthetic_root, 8) > 0.3
    assert _crowded_fraction(lanes, 8) < 0.1
    swapped, pairs = _order_swaps(synthetic_root)
    assert swapped >= 1
    assert swapped / pairs > 0.5
    assert _order_swaps(lanes)[0] == 0


def _frames(root):
    return {
        (p.parent.name, int(p.stem)): np.asarray(Image.open(p), dtype=np.int16)
        for p in sorted((root / "images").rglob("*.jpg"))
    }


def test_blur_and_defocus_change_only_the_listed_single_frames(tmp_path):
    kwargs = {"num_videos": 2, "num_frames": 12, "image_size": (96, 80), "seed": 5, "occlusion_prob": 0.0}
    clean = _frames(generate_dataset(tmp_path / "a", blur_prob=0.0, defocus_prob=0.0, progress=False, **kwargs))
    root = generate_dataset(tmp_path / "b", blur_prob=0.4, defocus_prob=0.4, progress=False, **kwargs)
    blurred = _frames(root)
    listed = json.loads((root / "synthetic.json").read_text())["corrupted_frames"]
    changed = {key for key in clean if np.abs(clean[key] - blurred[key]).mean() > 1}
    expected = {(video, t) for video, c in listed.items() for t in c["blur"] + c["defocus"]}
    assert {kind for c in listed.values() for kind in ("blur", "defocus") if c[kind]} == {"blur", "defocus"}
    assert changed == expected
    assert not any((video, t + 1) in expected for video, t in expected)
    # Blur removes detail: less high-frequency energy than the clean frame.
    for key in expected:
        assert np.abs(np.diff(blurred[key], axis=1)).mean() < np.abs(np.diff(clean[key], axis=1)).mean()


def test_occluders_change_only_single_frames_near_the_hidden_joints():
    def scene(rng_seed):
        return clip_scene(
            np.random.default_rng(rng_seed), 30, (128, 96), 2, (0.45, 0.85), 0.3,
            crossing=None, background=None, corruptions={},
        )  # fmt: skip

    occluded, clean = scene(2), scene(2)
    for figure in clean.figures:
        figure.occluded = frozenset()
    schedule = {t for figure in occluded.figures for t in figure.occluded}
    assert len(schedule) >= 5
    for t in range(30):
        people, clean_people = occluded.pose_at(t), clean.pose_at(t)
        with_occluder, without = occluded.draw(t, people), clean.draw(t, clean_people)
        assert (not np.array_equal(with_occluder, without)) == (t in schedule)
        # Every changed pixel lies within an occluder's reach (12% of the height, + antialiasing) of a
        # limb end (elbow, wrist, knee, ankle) of a figure occluded in this frame.
        ys, xs = np.nonzero((with_occluder != without).any(axis=2))
        reach = np.full(len(xs), np.inf)
        for figure, joints in zip(occluded.figures, people, strict=True):
            if t in figure.occluded:
                ends = joints[[7, 8, 9, 10, 13, 14, 15, 16]]
                distance = np.abs(np.stack([xs, ys], axis=1)[:, None] - ends[None]).max(axis=2).min(axis=1)
                reach = np.minimum(reach, distance - 0.12 * figure.size)
        assert (reach <= 2).all()
    for figure in occluded.figures:
        assert not any(t + 1 in figure.occluded for t in figure.occluded)


def test_every_corrupted_frame_has_clean_neighbours_and_keeps_its_joints(synthetic_root):
    listed = json.loads((synthetic_root / "synthetic.json").read_text())
    assert listed["settings"]["crossing"] is True
    for video, c in listed["corrupted_frames"].items():
        for track, occluded in c["occluded"].items():
            corrupted = set(occluded) | set(c["blur"]) | set(c["defocus"])
            assert not any(t + 1 in corrupted for t in corrupted), (video, track)
    # Occluded joints stay annotated at their true position with v = 1, as PoseTrack18 labels them.
    checked = 0
    for file in (synthetic_root / "annotations" / "train").glob("*.json"):
        occluded = listed["corrupted_frames"][file.stem]["occluded"]
        for ann in json.loads(file.read_text())["annotations"]:
            if ann["image_id"] % 10**4 in occluded[str(ann["track_id"])]:
                flags = np.asarray(ann["keypoints"]).reshape(17, 3)[:, 2]
                assert (flags == 1).sum() == 15 == ann["num_keypoints"]
                checked += 1
    assert checked >= 2


def test_lanes_setting_is_deterministic_and_options_are_independent(tmp_path):
    kwargs = {"num_videos": 2, "num_frames": 4, "image_size": (96, 80), "seed": 1, "progress": False}
    lanes = _files(generate_dataset(tmp_path / "a", **kwargs, **LANES))
    assert lanes == _files(generate_dataset(tmp_path / "b", **kwargs, **LANES))
    # Distractors come from their own random stream: the people and their annotations stay the same.
    moving = _files(generate_dataset(tmp_path / "c", **kwargs, **{**LANES, "background_motion": True}))
    annotations = [name for name in lanes if name.parts[0] == "annotations"]
    assert all(lanes[name] == moving[name] for name in annotations)
    assert any(lanes[name] != moving[name] for name in lanes if name.suffix == ".jpg")


@settings(max_examples=8, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    crossing=st.booleans(),
    background_motion=st.booleans(),
    probs=st.tuples(st.floats(0, 1), st.floats(0, 0.5), st.floats(0, 0.5)),
    max_people=st.integers(1, 4),
    eval_frames=st.none() | st.integers(3, 5),
    extra=st.tuples(st.integers(0, 1), st.integers(0, 2)),
)
def test_any_setting_gives_a_valid_dataset(
    tmp_path_factory, seed, crossing, background_motion, probs, max_people, eval_frames, extra
):
    root = generate_dataset(
        tmp_path_factory.mktemp("any"),
        num_videos=2,
        num_frames=5,
        image_size=(80, 64),
        seed=seed,
        eval_frames=eval_frames,
        num_test_videos=extra[0],
        num_pretrain_frames=extra[1],
        pretrain_people=(1, 3),
        max_people=max_people,
        crossing=crossing,
        background_motion=background_motion,
        occlusion_prob=probs[0],
        blur_prob=probs[1],
        defocus_prob=probs[2],
        progress=False,
    )
    assert check_root(root, progress=False) == []
    people = _people_per_frame(root)
    clips = {key: p for key, p in people.items() if not key[0].endswith("_pretrain")}
    assert all(1 <= len(p) <= max_people for p in clips.values())
    assert all(1 <= len(p) <= 3 for key, p in people.items() if key not in clips)
    assert len(people) - len(clips) == extra[1]
    if crossing and max_people >= 2:
        assert all(len(p) >= 2 for p in clips.values())
    listed = json.loads((root / "synthetic.json").read_text())["corrupted_frames"]
    for c in listed.values():
        frame_level = c["blur"] + c["defocus"]
        assert len(set(frame_level)) == len(frame_level)
        assert not any(t + 1 in frame_level for t in frame_level)
    ids = {
        ann["id"] for f in (root / "annotations").rglob("*.json") for ann in json.loads(f.read_text())["annotations"]
    }
    subsets = [json.loads(f.read_text()) for f in (root / "subsets").glob("*.json")]
    key_frame = ("clean", "occluded", "motion_blur", "defocus", "crossing")  # clean or one of the others
    assert {i for s in subsets for name in key_frame for i in s[name]} == ids


# sha256 over the paths and bytes of every file the generator wrote before the subset files and the test and
# pretrain splits (commit 6721195), synthetic.json with only the settings it recorded then: today's data sets
# stay reproducible.
_GOLDEN = "a1c6fa9200ecd53a2ed5e014ea80010c55b435afe0358b1e72ebaccafa265d53"
_OLD_SETTINGS = (
    "num_videos", "num_frames", "image_size", "seed", "val_fraction", "max_people", "person_height", "crossing",
    "background_motion", "occlusion_prob", "blur_prob", "defocus_prob", "val_label_every", "jpeg_quality",
)  # fmt: skip


def test_files_of_the_earlier_generator_are_byte_identical(tmp_path):
    root = generate_dataset(
        tmp_path, num_videos=3, num_frames=6, image_size=(96, 80), seed=11, occlusion_prob=0.4, blur_prob=0.25,
        defocus_prob=0.25, progress=False,
    )  # fmt: skip
    digest = hashlib.sha256()
    for path, data in _files(root).items():
        if path.parts[0] == "subsets":
            continue
        if path.name == "synthetic.json":
            content = json.loads(data)
            content["settings"] = {key: content["settings"][key] for key in _OLD_SETTINGS}
            data = json.dumps(content).encode()
        digest.update(str(path).encode())
        digest.update(data)
    assert digest.hexdigest() == _GOLDEN


_SPLITS = {"num_videos": 4, "num_frames": 12, "image_size": (96, 80), "num_val_videos": 2, "progress": False}


@pytest.fixture(scope="module")
def all_splits(tmp_path_factory):
    """Train, val (dev), test and pretrain: 2 + 2 + 2 clips, val and test 7-frame windows of 12-frame clips."""
    return generate_dataset(
        tmp_path_factory.mktemp("splits"), **_SPLITS, seed=5, num_test_videos=2, eval_frames=7, num_pretrain_frames=6
    )


def test_new_splits_leave_train_and_val_byte_identical(all_splits, tmp_path):
    plain = _files(generate_dataset(tmp_path, **{**_SPLITS, "seed": 5, "eval_frames": 7}))
    full = _files(all_splits)
    assert all(full[path] == data for path, data in plain.items() if path.name != "synthetic.json")
    assert {path.parts[1] for path in full if path.parts[0] == "annotations"} == {"train", "val", "test", "pretrain"}


def test_same_seed_gives_identical_files_with_every_split(all_splits, tmp_path):
    again = generate_dataset(
        tmp_path, **_SPLITS, seed=5, num_test_videos=2, eval_frames=7, num_pretrain_frames=6, overwrite=True
    )
    assert _files(again) == _files(all_splits)


def test_test_split_is_disjoint_from_train_and_val_and_labelled_like_val(all_splits, tmp_path):
    names, image_ids = {}, {}
    for split in ("train", "val", "test"):
        videos = [json.loads(f.read_text()) for f in sorted((all_splits / "annotations" / split).glob("*.json"))]
        names[split] = {Path(im["file_name"]).parent.name for video in videos for im in video["images"]}
        image_ids[split] = {im["id"] for video in videos for im in video["images"]}
        assert all((all_splits / im["file_name"]).is_file() for video in videos for im in video["images"])
    assert names["test"] == {"000005_mpii_test", "000006_mpii_test"}
    for other in ("train", "val"):
        assert not names["test"] & names[other]
        assert not image_ids["test"] & image_ids[other]
    detections = json.loads((all_splits / "person_detections" / "test.json").read_text())
    assert {d["image_id"] for d in detections} == image_ids["test"]  # a box or a false positive on every frame
    test = load_posetrack(
        all_splits, split="test", detections=all_splits / "person_detections" / "test.json", cache_dir=tmp_path
    )
    assert len(test) > 0
    assert (all_splits / "subsets" / "test.json").is_file()


def test_eval_clips_are_windows_labelled_where_both_neighbours_exist(all_splits, tmp_path):
    for split in ("val", "test"):
        for file in (all_splits / "annotations" / split).glob("*.json"):
            images = json.loads(file.read_text())["images"]
            assert [im["nframes"] for im in images] == [7] * 7
            assert [t for t, im in enumerate(images) if im["is_labeled"]] == [1, 5]
    rows = load_posetrack(all_splits, split="val", cache_dir=tmp_path)
    assert all(len(set(paths)) == 3 for paths in rows["frame_paths"])
    # Without occluders (drawn from the main stream only in frames written), a window shows exactly the
    # frames of the full clip: the figures move as in 12-frame clips.
    kwargs = {**_SPLITS, "seed": 5, "occlusion_prob": 0.0}
    full = _frames(generate_dataset(tmp_path / "full", **kwargs))
    window = _frames(generate_dataset(tmp_path / "window", **kwargs, eval_frames=7))
    for video in ("000003_mpii_test", "000004_mpii_test"):
        clip = [full[video, t] for t in range(12)]
        starts = [s for s in range(6) if all(np.array_equal(window[video, t], clip[s + t]) for t in range(7))]
        assert len(starts) == 1


def test_pretrain_split_is_single_crowded_frames_that_load(all_splits, tmp_path):
    files = sorted((all_splits / "annotations" / "pretrain").glob("*.json"))
    assert [f.stem for f in files] == [f"{seq:06d}_mpii_pretrain" for seq in range(7, 13)]
    for file in files:
        content = json.loads(file.read_text())
        assert [(im["nframes"], im["is_labeled"]) for im in content["images"]] == [(1, True)]
        assert 4 <= len(content["annotations"]) <= 10
    rows = load_posetrack(all_splits, split="pretrain", cache_dir=tmp_path)
    assert len(rows) == sum(len(json.loads(f.read_text())["annotations"]) for f in files)
    assert all(paths == [name] * 3 for paths, name in zip(rows["frame_paths"], rows["file_name"], strict=True))
    batch = rows.with_transform(TopDownTransform(train=True, root=all_splits, seed=0))[:4]
    assert batch["pixel_values"].shape == (4, 3, 3, 256, 192)
    assert np.array_equal(batch["pixel_values"][:, 0], batch["pixel_values"][:, 1])
    assert check_root(all_splits, progress=False) == []


def test_pretrain_frames_come_from_their_own_stream(all_splits, tmp_path):
    # More clips shift the pretraining videos' names, not their pixels.
    other = generate_dataset(tmp_path, **{**_SPLITS, "num_videos": 8}, seed=5, num_pretrain_frames=2)
    for k in range(2):
        ours = all_splits / "images" / "pretrain" / f"{7 + k:06d}_mpii_pretrain" / "000000.jpg"
        theirs = other / "images" / "pretrain" / f"{9 + k:06d}_mpii_pretrain" / "000000.jpg"
        assert ours.read_bytes() == theirs.read_bytes()
    clip_frames = {p.read_bytes() for p in (all_splits / "images").rglob("*.jpg") if "pretrain" not in p.parts}
    assert not any(p.read_bytes() in clip_frames for p in (all_splits / "images" / "pretrain").rglob("*.jpg"))
