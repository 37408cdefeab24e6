import json
import tempfile
from pathlib import Path

import pytest

from posetrack_eval.io import MISSING_SCORE, iter_ground_truth, load_predictions, sequence_predictions


@pytest.fixture(scope="module")
def small_case(synth, tmp_path_factory):
    gt, pred = synth.write_case(tmp_path_factory.mktemp("small"), seed=3, num_sequences=1, frames=(4, 5))
    return json.loads(next(gt.glob("*.json")).read_text()), json.loads(next(pred.glob("*.json")).read_text())


def _sequences(gt: dict):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "000001_mpii_test.json"
        path.write_text(json.dumps(gt))
        yield from iter_ground_truth(path)


def test_coco_scores_missing_or_empty_mean_no_score(small_case):
    gt, pred = small_case
    pred = json.loads(json.dumps(pred))
    image_id = pred["images"][0]["id"]
    kp = [100.0, 100.0, 1.0] * 17
    pred["annotations"] = [
        {"image_id": image_id, "keypoints": kp, "scores": [], "track_id": 0},
        {"image_id": image_id, "keypoints": kp, "track_id": 1},
        {"image_id": image_id, "keypoints": kp, "scores": [0.25] * 17, "track_id": 2},
    ]
    persons = sequence_predictions(pred, "pred.json", next(iter(_sequences(gt))))
    assert (persons.score[:2] == MISSING_SCORE).all()
    assert (persons.score[2] == 0.25).all()
    assert persons.frame_ptr[:2].tolist() == [0, 3]


def test_joint_written_as_zero_with_nonzero_v_is_present(small_case):
    gt, pred = small_case
    pred = json.loads(json.dumps(pred))
    kp = [0.0] * 51
    kp[2] = 1.0  # nose at (0, 0) with v = 1: poseval keeps it
    kp[5 * 3 + 2] = 0.0  # left_shoulder (0, 0, 0): dropped
    pred["annotations"] = [{"image_id": pred["images"][0]["id"], "keypoints": kp, "scores": [0.5] * 17}]
    merged = load_predictions(pred)
    gt_seq = next(iter(_sequences(gt)))
    persons = merged.for_sequence(gt_seq)
    assert persons.present[0].tolist() == [True] + [False] * 14
