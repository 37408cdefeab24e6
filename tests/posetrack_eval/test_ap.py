import math

import numpy as np
import pytest

from posetrack_eval.ap import joint_ap


def test_ap_by_hand():
    # ranked: TP, FP, TP with 2 GT joints: precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1
    result = joint_ap(np.array([0.9, 0.8, 0.7]), np.array([True, False, True]), 2.0)
    assert result.ap == pytest.approx(100 * (0.5 * 1 + 0.5 * 2 / 3))
    assert result.precision == pytest.approx(200 / 3)
    assert result.recall == 100.0
    np.testing.assert_allclose(result.curve_recall, [0.5, 0.5, 1.0])


def test_missed_joints_cap_recall():
    result = joint_ap(np.array([0.3, 0.9]), np.array([True, True]), 4.0)
    assert result.ap == pytest.approx(50.0)
    assert result.recall == pytest.approx(50.0)


def test_no_samples_is_zero_not_nan():
    result = joint_ap(np.zeros(0), np.zeros(0, dtype=bool), 5.0)
    assert (result.ap, result.precision, result.recall) == (0.0, 0.0, 0.0)


def test_no_ground_truth_is_nan_unless_floored():
    scores, labels = np.array([0.5, 0.4]), np.array([False, False])
    assert math.isnan(joint_ap(scores, labels, 0.0).ap)
    assert math.isnan(joint_ap(scores, labels, 0.0).recall)
    floored = joint_ap(scores, labels, 0.0, recall_floor=True)
    assert (floored.ap, floored.recall, floored.precision) == (0.0, 0.0, 0.0)


def test_ties_rank_like_numpy_argsort():
    # equal scores: the rank follows argsort()[::-1] of the array, which puts the later TP first here
    scores = np.array([0.5, 0.5])
    labels = np.array([False, True])
    order = scores.argsort()[::-1]
    first_is_tp = bool(labels[order[0]])
    expected = 100.0 if first_is_tp else 50.0
    assert joint_ap(scores, labels, 1.0).ap == pytest.approx(expected)
