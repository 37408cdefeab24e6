import json

import numpy as np

from posetrack_eval.io import GroundTruthSequence, Persons
from posetrack_eval.matching import match_sequence


def _persons(xys, has, scores=None, head=None, frame_ptr=None):
    n = len(xys)
    xy = np.zeros((n, 15, 2))
    present = np.zeros((n, 15), dtype=bool)
    for i, (points, joints) in enumerate(zip(xys, has, strict=True)):
        xy[i, joints] = points
        present[i, joints] = True
    return Persons(
        frame_ptr=np.array(frame_ptr if frame_ptr is not None else [0, n]),
        xy=xy,
        present=present,
        score=np.full((n, 15), 0.5) if scores is None else np.asarray(scores, dtype=float),
        head=np.full(n, 10.0) if head is None else np.asarray(head, dtype=float),
        track=np.arange(n),
        has_track=np.ones(n, dtype=bool),
    )


def _gt(persons, regions=None):
    frames = len(persons.frame_ptr) - 1
    return GroundTruthSequence(
        name="s", source="gt", persons=persons, rect_count=np.diff(persons.frame_ptr), labeled=np.ones(frames, bool),
        image_ids=None, file_names=[""] * frames, regions=regions or {}, annolist=False,
    )  # fmt: skip


def test_first_prediction_wins_a_pckh_tie_whatever_its_score():
    gt = _gt(_persons([[(0, 0), (10, 0)]], [[0, 1]]))
    # both predictions hit both joints; the second has higher scores but comes second
    pred = _persons([[(1, 0), (11, 0)], [(0, 1), (10, 1)]], [[0, 1], [0, 1]], scores=[[0.1] * 15, [0.9] * 15])
    match = match_sequence(gt, pred, "poseval")
    assert match.label[:, :2].tolist() == [[True, True], [False, False]]
    assert match.num_gt[:2].tolist() == [1, 1]


def test_joint_the_gt_lacks_is_a_false_positive_and_threshold_is_inclusive():
    gt = _persons([[(0, 0)]], [[0]], head=[10.0])  # head size (already 0.6 x head-box diagonal)
    pred = _persons([[(5, 0), (50, 50)]], [[0, 1]])  # nose exactly 0.5 head sizes away
    match = match_sequence(_gt(gt), pred, "poseval")
    assert match.label[0, :2].tolist() == [True, False]


def test_ignore_region_removes_joints_and_emptied_persons():
    gt = _persons([[(50, 50), (0, 0)], [(5, 5)]], [[0, 1], [0]])
    pred = _persons([[(5, 5)], [(50, 50)]], [[0], [0]])
    region = {0: [np.array([[1.0, 1.0], [9.0, 1.0], [9.0, 9.0], [1.0, 9.0]])]}
    match = match_sequence(_gt(gt, region), pred, "poseval")
    # the second GT person and the first prediction lay inside the region and are gone entirely
    assert len(match.gt.head) == 1
    assert len(match.pred.head) == 1
    assert match.label[0, 0]


def test_pt21_joints_exist_only_at_positive_coordinates():
    gt = _persons([[(-5, 10), (10, 10)]], [[0, 1]])
    pred = _persons([[(-5, 10), (10, 10)]], [[0, 1]])
    match = match_sequence(_gt(gt), pred, "pt21")
    assert match.num_gt[:2].tolist() == [0, 1]
    assert match.pred.has[0, :2].tolist() == [False, True]
    poseval = match_sequence(_gt(gt), pred, "poseval")
    assert poseval.num_gt[:2].tolist() == [1, 1]


def test_matching_in_blocks_of_frames_changes_nothing(synth, tmp_path):
    from posetrack_eval.io import iter_ground_truth, sequence_predictions

    gt, pred = synth.write_case(tmp_path, seed=9, num_sequences=1, frames=(30, 30))
    seq = next(iter_ground_truth(gt))
    path = pred / f"{seq.name}.json"
    preds = sequence_predictions(json.loads(path.read_text()), str(path), seq)
    whole = match_sequence(seq, preds, "poseval")
    for block_pairs in (1, 7, 50):
        blocks = match_sequence(seq, preds, "poseval", block_pairs=block_pairs)
        for name in ("label", "assigned", "num_gt", "near_pred", "near_gt", "near_joint", "near_dist"):
            np.testing.assert_array_equal(getattr(blocks, name), getattr(whole, name))
    assert len(whole.near_dist) > 0
