"""The rank order of tied scores: numpy 1.x's argsort on every numpy, and a fast path that gives the same AP."""

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from posetrack_eval.ap import joint_ap
from posetrack_eval.ranking import _c_sort, _tie_groups, descending_order, mixed_ties, numpy1_argsort, reference_argsort

RECORDED = json.loads((Path(__file__).parent / "fixtures" / "numpy1_argsort.json").read_text())

# scores on a coarse grid, so that most draws hold ties
tied_scores = hnp.arrays(np.float64, st.integers(0, 80), elements=st.sampled_from([0.0, 0.1, 0.5, 0.7, 1.0, -9999.0]))


@pytest.mark.parametrize("case", RECORDED["cases"], ids=lambda c: f"n{len(c['values'])}")
def test_equals_numpy_1_26_argsort(case):
    values = np.array([np.nan if v is None else v for v in case["values"]])
    assert numpy1_argsort(values).tolist() == case["argsort"]


@pytest.mark.parametrize("case", RECORDED["cases"], ids=lambda c: f"n{len(c['values'])}")
def test_reference_equals_numpy_1_26_argsort(case):
    values = np.array([np.nan if v is None else v for v in case["values"]])
    assert reference_argsort(values).tolist() == case["argsort"]


@settings(max_examples=40, deadline=None)
@given(
    st.integers(0, 3000),
    st.integers(1, 40),
    st.floats(0, 0.2),
    st.integers(0, 2**32 - 1),
)
def test_c_sort_equals_the_reimplementation(size, levels, nan_share, seed):
    # long tie-heavy arrays: deep partitions, many insertion runs, NaNs (numpy sorts them last)
    rng = np.random.default_rng(seed)
    values = rng.integers(0, levels, size) / levels
    values[rng.random(size) < nan_share] = np.nan
    expected = reference_argsort(values).tolist()
    assert numpy1_argsort(values).tolist() == expected
    if size >= 2:  # the key used past 65,536 distinct scores
        assert _c_sort(values, *_tie_groups(values), wide=True).tolist() == expected


@settings(max_examples=60, deadline=None)
@given(tied_scores)
def test_is_an_argsort_and_stable_below_17_elements(values):
    order = numpy1_argsort(values)
    assert sorted(order.tolist()) == list(range(len(values)))
    assert (np.diff(values[order]) >= 0).all()
    if len(values) <= 16:  # numpy 1.x insertion-sorts short arrays, which is stable
        assert order.tolist() == np.argsort(values, kind="stable").tolist()


@settings(max_examples=60, deadline=None)
@given(tied_scores, st.data())
def test_fast_path_gives_the_exact_order_s_ap(scores, data):
    labels = data.draw(hnp.arrays(np.bool_, len(scores)))
    exact = numpy1_argsort(scores)[::-1]
    ours = descending_order(scores, labels)
    if not mixed_ties(scores, labels).any():
        # equal scores carry equal labels: any order of them gives the same labels in rank order
        assert labels[ours].tolist() == labels[exact].tolist()
    else:
        assert ours.tolist() == exact.tolist()


def test_installed_order_can_differ_and_default_is_the_same_everywhere():
    # 40 tied scores: numpy 1.x's quicksort interleaves them; the default reproduces it on this numpy too
    scores = np.full(40, 0.5)
    scores[::7] = 0.9
    labels = np.arange(40) % 3 == 0
    expected = numpy1_argsort(scores)[::-1]
    assert descending_order(scores, labels).tolist() == expected.tolist()
    distinct = np.arange(40, 0, -1.0)  # untied scores already in rank order
    assert joint_ap(scores, labels, 20.0).ap == joint_ap(distinct, labels[expected], 20.0).ap


def test_mixed_ties_marks_ties_of_a_true_and_a_false_positive():
    scores = np.array([0.5, 0.5, 0.7, 0.7, 0.9])
    labels = np.array([True, False, True, True, False])
    assert mixed_ties(scores, labels).tolist() == [True, True, False, False, False]


def test_unknown_tie_order_is_refused():
    with pytest.raises(ValueError, match="tie_order"):
        descending_order(np.zeros(3), np.zeros(3, bool), "random")  # type: ignore[arg-type]
