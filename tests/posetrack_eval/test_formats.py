"""Format-proof: the same persons written as PoseTrack17 annolist and as PoseTrack18 JSON score the same."""

import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from posetrack_eval import evaluate


def _as_annolist(synth, folder: Path, out: Path, *, ground_truth: bool) -> Path:
    out.mkdir()
    for path in sorted(folder.glob("*.json")):
        data = synth.annolist_from_pt18(json.loads(path.read_text()), ground_truth=ground_truth)
        (out / path.name).write_text(json.dumps(data))
    return out


def _figures(gt: Path, pred: Path) -> dict:
    return evaluate(gt, pred, tracking=True, per_sequence=True).to_dict()


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**31 - 1))
def test_predictions_and_gt_in_either_format_give_identical_numbers(seed, synth, tmp_path_factory):
    root = tmp_path_factory.mktemp("formats")
    gt, pred = synth.write_case(root, seed=seed, frames=(4, 12))  # predictions carry ear values (#31)
    pred17 = _as_annolist(synth, pred, root / "pred17", ground_truth=False)
    gt17 = _as_annolist(synth, gt, root / "gt17", ground_truth=True)
    figures = _figures(gt, pred)
    assert _figures(gt, pred17) == figures
    assert _figures(gt17, pred) == figures
    assert _figures(gt17, pred17) == figures


def test_the_real_sample_in_either_format_gives_identical_numbers(
    posetrack18_sample, sample_predictions, synth, tmp_path
):
    gt = posetrack18_sample / "annotations" / "val"
    pred17 = _as_annolist(synth, sample_predictions, tmp_path / "pred17", ground_truth=False)
    gt17 = _as_annolist(synth, gt, tmp_path / "gt17", ground_truth=True)
    figures = evaluate(gt, sample_predictions, per_sequence=True).to_dict()
    assert evaluate(gt, pred17, per_sequence=True).to_dict() == figures
    assert evaluate(gt17, pred17, per_sequence=True).to_dict() == figures
    assert figures["ap"]["Total"] > 0
