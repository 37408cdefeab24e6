import dataclasses
import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from posetrack_data import PersonPose
from vremd_models.predict.tracking import GreedyTracker, box_iou, object_keypoint_similarity, track_poses

TEMPLATE = np.random.default_rng(7).normal(0, 40, (17, 2))


def _person(rng, center):
    keypoints = center + TEMPLATE + rng.normal(0, 2, (17, 2))
    box = [*(keypoints.min(0) - 10), *(np.ptp(keypoints, 0) + 20)]
    return np.array(box), keypoints


def test_box_iou_known_values():
    iou = box_iou([[0, 0, 10, 10]], [[0, 0, 10, 10], [5, 0, 10, 10], [20, 20, 5, 5], [0, 0, 0, 0]])
    np.testing.assert_allclose(iou, [[1.0, 50 / 150, 0.0, 0.0]])


def test_oks_is_one_for_equal_poses_and_nan_without_shared_joints():
    rng = np.random.default_rng(0)
    keypoints = rng.uniform(0, 100, (2, 17, 2))
    visible = np.ones((2, 17), dtype=bool)
    oks = object_keypoint_similarity(keypoints, keypoints, visible_a=visible, visible_b=visible, areas_b=[1e4, 1e4])
    np.testing.assert_allclose(np.diag(oks), 1.0)
    assert (oks[~np.eye(2, dtype=bool)] < 1.0).all()
    hidden = np.zeros((2, 17), dtype=bool)
    assert np.isnan(
        object_keypoint_similarity(keypoints, keypoints, visible_a=hidden, visible_b=visible, areas_b=[1, 1])
    ).all()
    with pytest.raises(ValueError, match="keypoints must be"):
        object_keypoint_similarity(keypoints[:, :5], keypoints, visible_a=visible, visible_b=visible, areas_b=[1, 1])


@pytest.mark.parametrize("metric", ["oks", "iou"])
def test_ids_follow_people_through_reordering_and_a_newcomer(metric):
    rng = np.random.default_rng(1)
    centers = np.array([[200.0, 300.0], [600.0, 300.0], [1000.0, 320.0]])
    tracker = GreedyTracker(metric=metric)
    first = None
    for frame in range(6):
        people = [_person(rng, c + frame * 5) for c in centers[: 2 if frame < 3 else 3]]
        order = rng.permutation(len(people))
        boxes = np.stack([people[i][0] for i in order])
        keypoints = np.stack([people[i][1] for i in order])
        ids = tracker.update(boxes, keypoints, np.ones((len(people), 17)))
        by_person = dict(zip(order.tolist(), ids.tolist(), strict=True))
        if first is None:
            first = by_person
        assert by_person[0] == first[0]
        assert by_person[1] == first[1]
        if frame >= 3:
            assert by_person[2] == 2  # the newcomer got the next free id and keeps it
    assert first == {0: first[0], 1: first[1]}
    assert sorted(first.values()) == [0, 1]


@pytest.mark.parametrize("metric", ["oks", "iou"])
def test_track_poses_follows_people_in_frame_order_and_an_empty_frame_ends_their_tracks(metric):
    # vremd-predict's tracking of a sequence: the frames in order; a frame without poses ages every track
    rng = np.random.default_rng(2)
    people = {"a": (200.0, 300.0), "b": (600.0, 300.0), "c": (1000.0, 320.0)}
    frames = [["a", "b"], ["b", "a"], ["a", "b", "c"], [], ["a", "b"]]
    poses = []
    for t, names in enumerate(frames):
        poses.append([])
        for name in names:
            box, keypoints = _person(rng, np.add(people[name], 5 * t))
            scores = rng.uniform(0.2, 1.0, 17).astype(np.float32)
            pose = PersonPose(bbox=tuple(box), box_score=0.9, keypoints=keypoints.astype(np.float32), scores=scores)
            poses[-1].append(dataclasses.replace(pose, track_id=-1))
    tracked = track_poses(poses, metric)
    assert [[p.track_id for p in frame] for frame in tracked] == [[0, 1], [1, 0], [0, 1, 2], [], [3, 4]]
    for before, after in zip(itertools.chain(*poses), itertools.chain(*tracked), strict=True):
        assert before.track_id == -1  # the input poses are left as they were
        assert (after.bbox, after.box_score) == (before.bbox, before.box_score)
        assert after.keypoints is before.keypoints
        assert after.scores is before.scores


def test_track_is_dropped_after_max_age_frames():
    tracker = GreedyTracker(metric="iou", max_age=1)
    box = [[10, 10, 50, 100]]
    assert tracker.update(box).tolist() == [0]
    assert tracker.update(np.zeros((0, 4))).tolist() == []
    assert tracker.update(box).tolist() == [1]  # two frames apart: a new track
    patient = GreedyTracker(metric="iou", max_age=2)
    patient.update(box)
    patient.update(np.zeros((0, 4)))
    assert patient.update(box).tolist() == [0]


def test_reset_restarts_ids_and_oks_needs_keypoints():
    tracker = GreedyTracker(metric="oks")
    with pytest.raises(ValueError, match="needs keypoints and scores"):
        tracker.update([[0, 0, 1, 1]])
    tracker.update([[0, 0, 10, 10]], np.zeros((1, 17, 2)), np.ones((1, 17)))
    tracker.reset()
    assert tracker.update([[50, 50, 10, 10]], np.full((1, 17, 2), 55.0), np.ones((1, 17))).tolist() == [0]
    with pytest.raises(ValueError, match="metric must be"):
        GreedyTracker(metric="flow")


@settings(max_examples=25, deadline=None)
@given(counts=st.lists(st.integers(0, 6), min_size=1, max_size=6), seed=st.integers(0, 2**16))
def test_ids_are_unique_within_every_frame(counts, seed):
    rng = np.random.default_rng(seed)
    tracker = GreedyTracker()
    seen = set()
    for count in counts:
        boxes = np.concatenate([rng.uniform(0, 100, (count, 2)), rng.uniform(5, 50, (count, 2))], axis=1)
        keypoints = boxes[:, None, :2] + rng.uniform(0, 1, (count, 17, 2)) * boxes[:, None, 2:]
        ids = tracker.update(boxes, keypoints, rng.uniform(0, 1, (count, 17)))
        assert len(set(ids.tolist())) == count
        assert (ids >= 0).all()
        seen |= set(ids.tolist())
    assert seen == set(range(len(seen)))  # ids are handed out densely from 0
