import math

import numpy as np

from posetrack_eval.mota import MotCounts, _Accumulator

NAN = math.nan


def test_switch_is_counted_when_an_object_changes_hypothesis():
    acc = _Accumulator()
    acc.update([1, 2], [10, 20], np.array([[0.1, NAN], [NAN, 0.2]]))
    acc.update([1, 2], [20, 10], np.array([[0.3, NAN], [NAN, 0.4]]))  # the two hypotheses swapped objects
    assert (acc.matches, acc.switches, acc.misses, acc.false_positives) == (2, 2, 0, 0)


def test_previous_correspondence_wins_over_a_closer_hypothesis():
    acc = _Accumulator()
    acc.update([1], [10], np.array([[0.4]]))
    acc.update([1], [10, 11], np.array([[0.45, 0.01]]))  # 10 is kept although 11 is closer
    assert (acc.matches, acc.switches, acc.false_positives) == (2, 0, 1)


def test_unmatchable_pairs_are_misses_and_false_positives():
    acc = _Accumulator()
    acc.update([1, 2], [10], np.array([[NAN], [NAN]]))
    assert (acc.matches, acc.misses, acc.false_positives, acc.distance_sum) == (0, 2, 1, 0.0)


def test_distance_sum_includes_motmetrics_raw_events():
    acc = _Accumulator()
    # both pairs are finite RAW events (0.1 + 0.3); only (1, 10) is matched (0.1) and 2 is missed
    acc.update([1, 2], [10], np.array([[0.1], [0.3]]))
    assert acc.distance_sum == 0.1 + 0.3 + 0.1
    assert (acc.matches, acc.misses) == (1, 1)


def test_metrics_formulas():
    counts = MotCounts()
    counts.matches[:] = 6
    counts.switches[:] = 1
    counts.misses[:] = 3
    counts.false_positives[:] = 2
    counts.distance_sum[:] = 1.4
    counts.matches[0] = counts.switches[0] = counts.misses[0] = 0  # a joint with no objects
    metrics = MotCounts.metrics(counts)
    assert math.isnan(metrics["mota"][0])
    assert metrics["motp"][0] == 0.0
    np.testing.assert_allclose(metrics["mota"][1], 100 * (1 - (3 + 1 + 2) / 10))
    np.testing.assert_allclose(metrics["motp"][1], 100 * (1 - 1.4 / 7))
    np.testing.assert_allclose(metrics["precision"][1], 100 * 7 / 9)
    np.testing.assert_allclose(metrics["recall"][1], 70.0)
