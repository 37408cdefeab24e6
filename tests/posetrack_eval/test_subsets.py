"""AP over subsets of GT persons: the rule's properties on generated and real data, and the subset file."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from posetrack_eval import EvalInputError, evaluate
from posetrack_eval.io import iter_ground_truth, sequence_predictions
from posetrack_eval.matching import match_sequence
from posetrack_eval.subsets import load_subsets

AP_KEYS = ("ap", "ap_per_joint", "ap_precision", "ap_recall")
SETTINGS = settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _case(synth, root: Path, seed: int, protocol: str) -> tuple[Path, Path, list[int]]:
    gt, pred = synth.write_case(root, seed=seed, num_sequences=3, frames=(4, 8), protocol=protocol)
    ids = [a["id"] for path in sorted(gt.glob("*.json")) for a in json.loads(path.read_text())["annotations"]]
    return gt, pred, ids


def _ap_figures(result) -> dict:
    return {key: value for key, value in result.to_dict().items() if key in AP_KEYS}


def _assignments(gt: Path, pred: Path, protocol: str) -> list[dict[int, int]]:
    """Per sequence: prediction (its index in the file) -> the GT annotation id it is assigned to, or -1."""
    out = []
    for seq in iter_ground_truth(gt):
        path = pred / f"{seq.name}.json"
        match = match_sequence(seq, sequence_predictions(json.loads(path.read_text()), str(path), seq), protocol)
        ids = seq.annotation_ids[match.gt.person]
        assigned = np.where(match.assigned >= 0, ids[np.maximum(match.assigned, 0)], -1)
        # the generator writes predictions frame by frame, so a person's row is its index in the file
        out.append(dict(zip(match.pred.person.tolist(), assigned.tolist(), strict=True)))
    return out


@SETTINGS
@given(seed=st.integers(0, 2**31 - 1), protocol=st.sampled_from(["poseval", "pt21"]))
def test_the_whole_set_as_a_subset_is_the_plain_ap(seed, protocol, synth, tmp_path_factory):
    gt, pred, ids = _case(synth, tmp_path_factory.mktemp("whole"), seed, protocol)
    result = evaluate(gt, pred, protocol=protocol, subset={"all": ids, "reversed": ids[::-1]})
    assert _ap_figures(result.subsets["all"]) == _ap_figures(result)
    assert _ap_figures(result.subsets["reversed"]) == _ap_figures(result)


def _without_regions(gt: Path) -> None:
    for path in gt.glob("*.json"):
        data = json.loads(path.read_text())
        for image in data["images"]:
            image["ignore_regions_x"], image["ignore_regions_y"] = [], []
        path.write_text(json.dumps(data))


@SETTINGS
@given(seed=st.integers(0, 2**31 - 1), protocol=st.sampled_from(["poseval", "pt21"]), data=st.data())
def test_perfect_predictions_score_100_on_any_subset(seed, protocol, data, synth, tmp_path_factory):
    gt, _, ids = _case(synth, tmp_path_factory.mktemp("perfect"), seed, protocol)
    _without_regions(gt)  # so that the joints each subset holds can be read off the files
    anns = [a for path in sorted(gt.glob("*.json")) for a in json.loads(path.read_text())["annotations"]]
    perfect = [{"image_id": a["image_id"], "keypoints": a["keypoints"], "scores": [1.0] * 17} for a in anns]
    chosen = data.draw(st.lists(st.sampled_from(ids), unique=True, max_size=len(ids)))
    subset = evaluate(gt, perfect, protocol=protocol, subset=chosen).subsets["subset"]
    slots = [s for s in range(17) if s not in (3, 4)]
    held = np.zeros(17, dtype=bool)
    for ann in anns:
        if ann["id"] in chosen:
            xyv = np.reshape(ann["keypoints"], (17, 3))
            held |= (xyv[:, 0] > 0) & (xyv[:, 1] > 0) if protocol == "pt21" else xyv.any(axis=1)
    for name, slot in zip(subset.ap_per_joint, slots, strict=True):
        ap = subset.ap_per_joint[name]
        assert ap == 100.0 if held[slot] else math.isnan(ap), (name, ap)
    assert subset.ap["Total"] == 100.0 if held.any() else math.isnan(subset.ap["Total"])


@SETTINGS
@given(seed=st.integers(0, 2**31 - 1), data=st.data())
def test_person_order_does_not_matter(seed, data, posetrack18_sample, sample_predictions):
    # the real sample: its perturbed predictions hold no duplicate detections, whose PCKh ties poseval's
    # assignment breaks by position, and distinct scores, whose ties the ranking breaks by position
    gt = posetrack18_sample / "annotations" / "val"
    ids = [a["id"] for path in sorted(gt.glob("*.json")) for a in json.loads(path.read_text())["annotations"]]
    rng = np.random.default_rng(seed)
    anns = [
        a for path in sorted(sample_predictions.glob("*.json")) for a in json.loads(path.read_text())["annotations"]
    ]
    for ann in anns:
        ann["scores"] = rng.random(17).tolist()
    chosen = data.draw(st.lists(st.sampled_from(ids), unique=True, min_size=1))
    shuffled = [anns[i] for i in rng.permutation(len(anns))]
    ours = evaluate(gt, anns, subset=chosen).subsets["subset"]
    assert _ap_figures(evaluate(gt, shuffled, subset=chosen[::-1]).subsets["subset"]) == _ap_figures(ours)


@SETTINGS
@given(seed=st.integers(0, 2**31 - 1), data=st.data())
def test_predictions_for_persons_outside_do_not_move_the_subset(seed, data, synth, tmp_path_factory):
    gt, pred, ids = _case(synth, tmp_path_factory.mktemp("outside"), seed, "poseval")
    chosen = set(data.draw(st.lists(st.sampled_from(ids), unique=True, min_size=1)))
    before = _assignments(gt, pred, "poseval")
    rng = np.random.default_rng(seed)
    moved = tmp_path_factory.mktemp("moved")
    for path, assigned in zip(sorted(pred.glob("*.json")), before, strict=True):
        content = json.loads(path.read_text())
        for i, ann in enumerate(content["annotations"]):
            if assigned.get(i, -1) not in (-1, *chosen):
                xyv = np.reshape(ann["keypoints"], (17, 3))
                written = xyv.any(axis=1)
                xyv[written, :2] += rng.uniform(-0.01, 0.01, size=(int(written.sum()), 2))
                ann["keypoints"] = xyv.ravel().tolist()
                ann["scores"] = rng.random(17).tolist()
        (moved / path.name).write_text(json.dumps(content))
    assume(_assignments(gt, moved, "poseval") == before)
    original = evaluate(gt, pred, subset=sorted(chosen)).subsets["subset"]
    assert _ap_figures(evaluate(gt, moved, subset=sorted(chosen)).subsets["subset"]) == _ap_figures(original)


def test_predictions_assigned_outside_are_ignored_and_unassigned_are_false(posetrack18_sample, sample_predictions):
    gt = posetrack18_sample / "annotations" / "val"
    data = json.loads((gt / "009473_mpii_test.json").read_text())
    first, second = (a["id"] for a in data["annotations"])
    result = evaluate(gt, sample_predictions, subset={"first": [first], "second": [second]})
    # both subsets lie in one frame, which also holds the perturbation's random false positive
    for name in ("first", "second"):
        assert 0 < result.subsets[name].ap_precision["Total"] < 100
        assert result.subsets[name].ap_recall["Total"] <= 100
    assert _ap_figures(result.subsets["first"]) != _ap_figures(result.subsets["second"])


def test_a_joint_the_subset_lacks_is_nan_and_skipped_by_total(synth, tmp_path):
    gt, pred, _ = _case(synth, tmp_path, 4, "poseval")
    _without_regions(gt)
    anns = [a for path in sorted(gt.glob("*.json")) for a in json.loads(path.read_text())["annotations"]]
    ann = next(a for a in anns if 0 < np.count_nonzero(np.reshape(a["keypoints"], (17, 3))[:, 2]) < 15)
    xyv = np.reshape(ann["keypoints"], (17, 3))
    result = evaluate(gt, pred, subset=[ann["id"]]).subsets["subset"]
    for name, slot in zip(result.ap_per_joint, [s for s in range(17) if s not in (3, 4)], strict=True):
        assert math.isnan(result.ap_per_joint[name]) == (not xyv[slot].any())
        assert math.isnan(result.ap_recall.get(name, 0.0)) or name not in result.ap_recall
    assert not math.isnan(result.ap["Total"])


def test_subset_file_forms(tmp_path):
    path = tmp_path / "subsets.json"
    path.write_text(json.dumps({"easy": [1, 2], "hard": [3]}))
    subsets = load_subsets(path)
    assert {name: ids.tolist() for name, ids in subsets.ids.items()} == {"easy": [1, 2], "hard": [3]}
    assert load_subsets([5, 6]).ids["subset"].tolist() == [5, 6]
    for bad, field in (({"easy": [1, "x"]}, "easy[1]"), ([1, 2.5], "[1]"), ({"easy": 3}, "easy"), ({}, "subset"),
                       ("nope.json", "file")):  # fmt: skip
        with pytest.raises(EvalInputError) as err:
            load_subsets(tmp_path / bad if isinstance(bad, str) else bad)
        assert err.value.field == field


def test_unknown_and_ambiguous_ids_are_refused(synth, tmp_path):
    gt, pred, ids = _case(synth, tmp_path, 1, "poseval")
    with pytest.raises(EvalInputError, match=r"<subset>: b\[1\]: annotation id 7 is not in the ground truth"):
        evaluate(gt, pred, subset={"a": ids[:1], "b": [ids[0], 7]})
    # the same id in two per-sequence files: a subset naming it would be ambiguous
    second = sorted(gt.glob("*.json"))[1]
    data = json.loads(second.read_text())
    data["annotations"][0]["id"] = ids[0]
    second.write_text(json.dumps(data))
    with pytest.raises(EvalInputError, match=rf"\[0\]: annotation id {ids[0]} names several GT annotations"):
        evaluate(gt, pred, subset=[ids[0]])
    assert evaluate(gt, pred).num_frames > 0  # without subsets the ids are not read


def test_ground_truth_without_ids_is_refused(synth, tmp_path):
    gt, pred = synth.write_case(tmp_path / "pt17", seed=2, gt_format="pt17")
    with pytest.raises(EvalInputError, match=r"annolist: PoseTrack17 GT has no annotation ids"):
        evaluate(gt, pred, subset=[1])
    gt, pred, _ = _case(synth, tmp_path / "pt18", 2, "poseval")
    path = sorted(gt.glob("*.json"))[1]
    data = json.loads(path.read_text())
    del data["annotations"][1]["id"]
    path.write_text(json.dumps(data))
    with pytest.raises(EvalInputError) as err:
        evaluate(gt, pred, subset=[1])
    assert (err.value.source, err.value.field) == (str(path), "annotations[1].id")


def test_frames_without_gt_persons_keep_their_predictions_as_false_positives(tmp_path):
    names = ["nose", "head_bottom", "head_top", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
             "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
             "right_knee", "left_ankle", "right_ankle"]  # fmt: skip
    image = {"id": 1, "file_name": "images/val/000001_mpii_test/000000.jpg", "is_labeled": True}
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps({"images": [image], "annotations": [], "categories": [{"keypoints": names}]}))
    preds = [{"image_id": 1, "keypoints": [10.0, 10.0, 1.0] * 17, "scores": [0.5] * 17}]
    result = evaluate(gt, preds, protocol="pt21", subset=[])
    assert result.subsets["subset"].ap_precision["Total"] == 0.0  # all of them false positives
    assert math.isnan(result.subsets["subset"].ap["Total"])
