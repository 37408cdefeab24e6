"""The study's statistics: resamples, row means and paired differences with their bootstrap intervals."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from posetrack_eval import evaluate
from posetrack_eval.resampling import sequence_statistics
from tests.posetrack_eval.synth import write_case
from training.statistics import RunAP, difference, draw, row_mean, run_ap


@given(st.integers(1, 30), st.integers(1, 6), st.integers(0, 2**32 - 1))
@settings(max_examples=20, deadline=None)
def test_draws_resample_videos_and_seeds_with_replacement(num_videos, num_seeds, seed):
    draws = draw(num_videos, num_seeds, 50, seed)
    assert draws.videos.shape == (50, num_videos)
    assert (draws.videos.sum(axis=1) == num_videos).all()  # each resample holds as many videos as the data
    assert draws.seeds.shape == (50, num_seeds)
    assert ((draws.seeds >= 0) & (draws.seeds < num_seeds)).all()
    again = draw(num_videos, num_seeds, 50, seed)
    assert (again.videos == draws.videos).all() and (again.seeds == draws.seeds).all()  # noqa: PT018


def _runs(rng, num_seeds, resamples, shift=0.0):
    return [RunAP(float(v) + shift, rng.normal(v, 1.0, resamples) + shift) for v in rng.uniform(30, 60, num_seeds)]


@given(st.integers(1, 6), st.floats(-5, 5), st.integers(0, 2**32 - 1))
@settings(max_examples=30, deadline=None)
def test_a_constant_shift_is_the_difference_exactly(num_seeds, shift, seed):
    rng = np.random.default_rng(seed)
    draws = draw(10, num_seeds, 200, seed)
    reference = _runs(rng, num_seeds, 200)
    shifted = [RunAP(run.observed + shift, run.resampled + shift) for run in reference]
    estimate = difference(shifted, reference, draws)
    assert estimate.value == pytest.approx(shift) and estimate.low == pytest.approx(shift)  # noqa: PT018
    assert estimate.high == pytest.approx(shift)
    assert difference(reference, reference, draws).high == 0.0


@given(st.integers(2, 6), st.integers(0, 2**32 - 1))
@settings(max_examples=30, deadline=None)
def test_differences_are_antisymmetric_and_means_bracket_their_value(num_seeds, seed):
    rng = np.random.default_rng(seed)
    draws = draw(10, num_seeds, 400, seed)
    a, b = _runs(rng, num_seeds, 400), _runs(rng, num_seeds, 400, shift=1.0)
    forward, backward = difference(a, b, draws), difference(b, a, draws)
    assert forward.value == pytest.approx(-backward.value)
    assert (forward.low, forward.high) == pytest.approx((-backward.high, -backward.low))
    mean = row_mean(a, draws)
    assert mean.value == pytest.approx(np.mean([run.observed for run in a]))
    assert mean.low < mean.high


def test_pairing_cancels_what_two_rows_share():
    # Two rows whose runs share large seed-to-seed swings: the difference is narrow, each mean is wide.
    rng = np.random.default_rng(0)
    draws = draw(20, 5, 2000, 1)
    swings = rng.normal(0, 3, (5, 2000))
    a = [RunAP(50 + s[0], 50 + s) for s in swings]
    b = [RunAP(51 + s[0], 51 + s + rng.normal(0, 0.1, 2000)) for s in swings]
    paired = difference(b, a, draws)
    assert paired.high - paired.low < 0.2 * (row_mean(a, draws).high - row_mean(a, draws).low)
    with pytest.raises(ValueError, match="the same seeds"):
        difference(a[:4], a, draws)


def test_run_ap_on_the_data_as_it_is_and_resampled(tmp_path):
    gt, pred = write_case(tmp_path, seed=3, num_sequences=4)
    stats = sequence_statistics(gt, pred)
    draws = draw(len(stats.sequences), 1, 300, 0)
    run = run_ap(stats, draws)
    assert run.observed == pytest.approx(evaluate(gt, pred).ap["Total"], abs=1e-9)
    assert run.resampled.shape == (300,)
    assert run.resampled.min() <= run.observed <= run.resampled.max()
