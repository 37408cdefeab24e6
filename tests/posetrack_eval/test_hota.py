"""Keypoint HOTA: parity with the numbers PoseTrack21's scorer printed on the same inputs, its quirks, invariants."""

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from posetrack_eval import EvalInputError, evaluate
from posetrack_eval.hota import ALPHAS, HOTA_FIELDS, HOTA_JOINT_NAMES, sequence_hota, similarity
from posetrack_eval.io import GroundTruthSequence, Persons
from posetrack_eval.matching import match_sequence

FIXTURES = json.loads((Path(__file__).parent / "fixtures" / "pt21_hota_cases.json").read_text())
TOL = 1e-6


def _close(ours: dict, reference: dict) -> None:
    assert list(ours) == list(reference)
    for field, values in reference.items():
        if isinstance(values, dict):
            assert list(ours[field]) == list(values)
            np.testing.assert_allclose(list(ours[field].values()), list(values.values()), atol=TOL, rtol=0)
        else:
            assert ours[field] == pytest.approx(values, abs=TOL, rel=0)


@pytest.mark.parametrize("case", FIXTURES["cases"], ids=lambda c: f"seed{c['params']['seed']}")
def test_matches_posetrack21_hota_on_generated_inputs(case, synth, tmp_path):
    params = {**case["params"], "frames": tuple(case["params"]["frames"])}
    gt, pred = synth.write_case(tmp_path, **params)
    result = evaluate(gt, pred, protocol="pt21", tracking=True, per_sequence=True)
    _close(result.hota, case["expected"]["hota"])
    for name, totals in case["expected"]["per_sequence"].items():
        _close({field: values["Total"] for field, values in result.per_sequence[name].hota.items()}, totals)


def test_matches_posetrack21_hota_on_the_real_sample(posetrack18_sample, tmp_path, synth):
    gt = posetrack18_sample / "annotations" / "val"
    pred = synth.perturb_sample(gt, tmp_path, seed=FIXTURES["sample"]["seed"])
    _close(evaluate(gt, pred, protocol="pt21", tracking=True).hota, FIXTURES["sample"]["hota"])


def test_the_result_holds_the_summary_fields_and_keeps_the_ap(posetrack18_sample, sample_predictions):
    gt = posetrack18_sample / "annotations" / "val"
    result = evaluate(gt, sample_predictions, protocol="pt21", tracking=True)
    assert tuple(result.hota) == HOTA_FIELDS
    assert all(tuple(values) == (*HOTA_JOINT_NAMES, "Total") for values in result.hota.values())
    assert result.ap == evaluate(gt, sample_predictions, protocol="pt21").ap
    assert result.mota is None
    assert evaluate(gt, sample_predictions, tracking=True).hota is None  # poseval's tracking is MOTA


def _persons(frames: list[list[tuple[int, dict[int, tuple[float, float]]]]]) -> Persons:
    """Persons from frames of (track id, {slot without ears: (x, y)}), head size 10 for GT and predictions."""
    rows = [(track, joints) for frame in frames for track, joints in frame]
    xy = np.zeros((len(rows), 15, 2))
    for i, (_, joints) in enumerate(rows):
        for joint, point in joints.items():
            xy[i, joint] = point
    return Persons(
        frame_ptr=np.concatenate([[0], np.cumsum([len(frame) for frame in frames])]).astype(np.int64),
        xy=xy,
        present=(xy > 0).all(axis=2),
        score=np.full((len(rows), 15), 0.5),
        head=np.full(len(rows), 10.0),
        track=np.array([track for track, _ in rows], dtype=np.int64),
        has_track=np.ones(len(rows), dtype=bool),
    )


def _hota(gt_frames, pred_frames, regions=None) -> dict[str, np.ndarray]:
    persons = _persons(gt_frames)
    gt = GroundTruthSequence(
        name="s", source="gt", persons=persons, rect_count=np.diff(persons.frame_ptr),
        labeled=np.ones(len(gt_frames), dtype=bool), image_ids=None, file_names=[""] * len(gt_frames),
        regions=regions or {}, annolist=False,
    )  # fmt: skip
    return sequence_hota(match_sequence(gt, _persons(pred_frames), "pt21"))


NOSE, NECK = 0, 1


def test_a_frame_without_gt_adds_the_whole_sequences_predicted_joints():
    # PoseTrack21 issue #10: frame 1 has no GT person, so every prediction of the sequence counts again as FP
    person = {NOSE: (100.0, 100.0), NECK: (100.0, 120.0)}
    hota = _hota([[(0, person)], []], [[(5, person)], [(5, {NOSE: (300.0, 300.0)})]])
    assert hota["HOTA_TP"][:, NOSE].tolist() == [1] * len(ALPHAS)
    assert hota["HOTA_FP"][:, NOSE].tolist() == [2] * len(ALPHAS)  # the whole sequence's 2 noses, not 1
    assert hota["HOTA_FP"][:, NECK].tolist() == [1] * len(ALPHAS)  # its 1 neck, though frame 1 has none
    # and a frame without predictions adds the whole sequence's GT joints to FN
    hota = _hota([[(0, person)], [(0, person)]], [[(5, person)], []])
    assert hota["HOTA_FN"][:, NOSE].tolist() == [2] * len(ALPHAS)


def test_similarity_reaches_zero_at_half_a_head_plus_a_hair():
    # PoseTrack21 issue #11: a joint half a head size away is correct for PCKh but reaches no alpha
    assert similarity(np.array([0.0, 0.25, 0.5, 0.5001, 2.0])).tolist() == pytest.approx(
        [1.0, 1 - 0.25 / 0.5001, 1 - 0.5 / 0.5001, 0.0, 0.0]
    )
    hota = _hota([[(0, {NOSE: (100.0, 100.0)})]], [[(1, {NOSE: (105.0, 100.0)})]])  # 0.5 head sizes
    assert hota["HOTA_TP"][:, NOSE].sum() == 0
    assert hota["HOTA_FN"][:, NOSE].tolist() == [1] * len(ALPHAS)


def test_gt_removed_by_ignore_regions_is_a_frame_without_gt():
    # the scorer crashes on this frame (IndexError); its code scores a frame without GT persons like this
    region = {1: [np.array([[50.0, 50.0], [150.0, 50.0], [150.0, 150.0], [50.0, 150.0]])]}
    person, elsewhere = {NOSE: (100.0, 100.0)}, {NOSE: (400.0, 400.0)}
    emptied = _hota([[(0, person)], [(0, person)]], [[(1, person)], [(1, elsewhere)]], region)
    written_empty = _hota([[(0, person)], []], [[(1, person)], [(1, elsewhere)]])
    for field in emptied:
        np.testing.assert_array_equal(emptied[field], written_empty[field])


def test_fragments_count_runs_of_one_gt_track_with_one_prediction():
    person = {NOSE: (100.0, 100.0)}
    # GT track 0 is found by prediction 1, then 2, then 1 again: two runs of (0, 1), one of (0, 2)
    hota = _hota([[(0, person)]] * 4, [[(1, person)], [(1, person)], [(2, person)], [(1, person)]])
    # AssA: 3 TPs with (0, 1) over 4 + 3 - 3 = 4, 1 TP with (0, 2) over 4 + 1 - 1 = 4
    assert hota["AssA"][0, NOSE] == pytest.approx((3 * 3 / 4 + 1 * 1 / 4) / 4)
    # FragA: runs of 2 and 1 with (0, 1), of 1 with (0, 2)
    assert hota["FragA"][0, NOSE] == pytest.approx((2 * 2 / 4 + 1 * 1 / 4 + 1 * 1 / 4) / 4)


def test_crowded_frames_take_the_maximum_similarity_assignment():
    # prediction 10 is closest to GT 0, but giving it GT 1 lets prediction 11 take GT 0: more similarity in all
    gt = [[(0, {NOSE: (100.0, 100.0)}), (1, {NOSE: (103.0, 100.0)})]]
    pred = [[(10, {NOSE: (101.0, 100.0)}), (11, {NOSE: (98.0, 100.0)})]]
    hota = _hota(gt, pred)
    assert hota["HOTA_TP"][0, NOSE] == 2
    assert hota["LocA"][0, NOSE] == pytest.approx(((1 - 0.2 / 0.5001) + (1 - 0.2 / 0.5001)) / 2)


def test_perfect_tracking_scores_100(synth, tmp_path):
    gt, _ = synth.write_case(tmp_path, seed=11, num_sequences=3, frames=(6, 12), protocol="pt21")
    perfect = [
        {"image_id": a["image_id"], "keypoints": a["keypoints"], "scores": [1.0] * 17, "track_id": a["track_id"] + 7}
        for path in sorted(gt.glob("*.json"))
        for a in json.loads(path.read_text())["annotations"]
    ]
    hota = evaluate(gt, perfect, protocol="pt21", tracking=True).hota
    assert all(value == pytest.approx(100.0) for values in hota.values() for value in values.values())


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**31 - 1))
def test_track_ids_are_labels_only(seed, synth, tmp_path_factory):
    gt, pred = synth.write_case(tmp_path_factory.mktemp("ids"), seed=seed, protocol="pt21", tracking=True)
    anns = [a for path in sorted(pred.glob("*.json")) for a in json.loads(path.read_text())["annotations"]]
    tracks = sorted({a["track_id"] for a in anns})
    relabel = dict(zip(tracks, np.random.default_rng(seed).permutation(len(tracks)) * 3 + 1, strict=True))
    renamed = [{**a, "track_id": int(relabel[a["track_id"]])} for a in anns]
    # equal up to the order of float sums (the pairs of tracks are added in the order of their ids)
    _close(
        evaluate(gt, renamed, protocol="pt21", tracking=True).hota,
        evaluate(gt, anns, protocol="pt21", tracking=True).hota,
    )


def test_track_ids_the_scorer_cannot_take_are_refused(synth, tmp_path):
    gt, pred = synth.write_case(tmp_path, seed=3, protocol="pt21")
    for path in sorted(gt.glob("*.json")):
        data = json.loads(path.read_text())
        anns = data["annotations"]
        pairs = [(a, b) for a, b in itertools.pairwise(anns) if a["image_id"] == b["image_id"]]
        if pairs:
            first, twin = pairs[0]
            break
    twin["track_id"] = first["track_id"]
    path.write_text(json.dumps(data))
    with pytest.raises(EvalInputError, match="track_id: a track id appears twice in one frame"):
        evaluate(gt, pred, protocol="pt21", tracking=True)
    assert evaluate(gt, pred, protocol="pt21").num_frames > 0  # the mAP does not read track ids
    twin["track_id"] = -2
    path.write_text(json.dumps(data))
    with pytest.raises(EvalInputError, match="track_id: -2 is negative"):
        evaluate(gt, pred, protocol="pt21", tracking=True)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_predictions_give_bounded_figures_or_one_error_line(data, synth, tmp_path_factory, capsys):
    from posetrack_eval.cli import main

    root = tmp_path_factory.mktemp("fuzz")
    gt, _ = synth.write_case(root, seed=data.draw(st.integers(0, 50)), num_sequences=2, protocol="pt21")
    image_ids = [im["id"] for path in sorted(gt.glob("*.json")) for im in json.loads(path.read_text())["images"]]
    coordinate = st.floats(-50, 2000, allow_nan=False) | st.sampled_from([0.0, 1.0])
    prediction = st.fixed_dictionaries({
        "image_id": st.sampled_from(image_ids),
        "keypoints": st.lists(coordinate, min_size=51, max_size=51),
        "scores": st.lists(st.floats(-1, 1, allow_nan=False), min_size=17, max_size=17),
        "track_id": st.integers(-1, 6),
    })  # fmt: skip
    path = root / "preds.json"
    path.write_text(json.dumps(data.draw(st.lists(prediction, max_size=30))))
    out = root / "r.json"
    code = main([str(path), "--gt", str(gt), "--protocol", "pt21", "--tracking", "--json", str(out), "--no-progress"])
    err = capsys.readouterr().err
    assert code in (0, 2)
    if code == 2:
        assert err.startswith(f"posetrack-eval: error: {path}: ")
        assert err.count("\n") == 1
        return
    for values in json.loads(out.read_text())["hota"].values():
        assert all(0.0 <= value <= 100.0 + 1e-9 for value in values.values())
