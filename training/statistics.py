"""The study's statistics: each row's mean AP and the paired difference of two rows, with bootstrap intervals.

Every row trains the same seeds on the same frozen backbone and is scored on the same test videos. One
bootstrap resample draws the test videos with replacement (one draw for every row and seed) and the seeds with
replacement (one draw for every row), and recomputes each run's AP exactly over the drawn videos
(``posetrack_eval.resampling``: the AP poseval would compute on the data set with those repeats, never a mean
of per-video APs). A row's mean is the mean over its drawn seeds; a difference subtracts, resample by resample,
the reference row's mean from the row's, so what two rows share (videos, seeds, data order) cancels. The
interval holds the central ``confidence`` share of the resampled values (percentile bootstrap).
"""

import dataclasses

import numpy as np
import numpy.typing as npt

from posetrack_eval.resampling import SequenceStatistics, resampled_ap

__all__ = ["Draws", "Estimate", "RunAP", "difference", "draw", "row_mean", "run_ap"]


@dataclasses.dataclass(frozen=True)
class Draws:
    """The resamples shared by every row of a study.

    Shapes:
        videos: Int[B, Q] (how often each of the Q test videos is drawn)
        seeds: Int[B, S] (which of the S seeds, by index, are drawn)
    """

    videos: npt.NDArray[np.int64]
    seeds: npt.NDArray[np.int64]


def draw(num_videos: int, num_seeds: int, resamples: int, seed: int = 0) -> Draws:
    """``resamples`` draws of the videos and of the seeds, each with replacement, from a fixed generator."""
    rng = np.random.default_rng(seed)
    picked = rng.integers(num_videos, size=(resamples, num_videos))
    videos = np.stack([np.bincount(row, minlength=num_videos) for row in picked])
    return Draws(videos=videos, seeds=rng.integers(num_seeds, size=(resamples, num_seeds)))


@dataclasses.dataclass(frozen=True)
class RunAP:
    """One run's Total AP on the test videos as they are, and on every resample of them.

    Shapes:
        resampled: Float[B]
    """

    observed: float
    resampled: npt.NDArray[np.float64]


def run_ap(stats: SequenceStatistics, draws: Draws, subset: list[int] | None = None) -> RunAP:
    """The AP of one run over all test persons (or a subset of them, by annotation id), observed and resampled."""
    observed = resampled_ap(stats, np.ones((1, len(stats.sequences)), dtype=np.int64), subset=subset)[0]
    return RunAP(float(observed), resampled_ap(stats, draws.videos, subset=subset))


@dataclasses.dataclass(frozen=True)
class Estimate:
    """An estimate and its bootstrap interval (NaN where the subset has no persons)."""

    value: float
    low: float
    high: float


def row_mean(runs: list[RunAP], draws: Draws, confidence: float = 0.95) -> Estimate:
    """A row's mean AP over its seeds (``runs`` in seed order), with the interval over seeds and videos."""
    observed = np.array([run.observed for run in runs])
    resampled = _seed_means(np.stack([run.resampled for run in runs]), draws)
    return _estimate(float(np.mean(observed)), resampled, confidence)


def difference(runs: list[RunAP], reference: list[RunAP], draws: Draws, confidence: float = 0.95) -> Estimate:
    """The paired difference row - reference of the mean AP, seeds paired by index (both in the same seed order)."""
    if len(runs) != len(reference):
        raise ValueError(f"a paired difference needs the same seeds: {len(runs)} runs against {len(reference)}")
    observed = np.mean([run.observed - ref.observed for run, ref in zip(runs, reference, strict=True)])
    row = _seed_means(np.stack([run.resampled for run in runs]), draws)
    ref = _seed_means(np.stack([run.resampled for run in reference]), draws)
    return _estimate(float(observed), row - ref, confidence)


def _seed_means(resampled: npt.NDArray[np.float64], draws: Draws) -> npt.NDArray[np.float64]:
    """Per resample, the mean over its drawn seeds of those runs' AP on its drawn videos.

    Shapes:
        resampled: Float[S, B] -> Float[B]
    """
    if draws.seeds.shape[1] != len(resampled):
        raise ValueError(f"the draws are of {draws.seeds.shape[1]} seeds, the row has {len(resampled)}")
    return resampled[draws.seeds, np.arange(len(draws.seeds))[:, None]].mean(axis=1)


def _estimate(value: float, resampled: npt.NDArray[np.float64], confidence: float) -> Estimate:
    defined = resampled[~np.isnan(resampled)]
    if not len(defined):
        return Estimate(value, float("nan"), float("nan"))
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(defined, [tail, 100 - tail])
    return Estimate(value, float(low), float(high))
