"""PoseTrack21's keypoint HOTA exactly as its scorer computes it (metric ``HOTAeypoints``).

The scorer: anDoer/PoseTrack21, ``eval/posetrack21/posetrack21/trackeval/metrics/hota_pose.py``, run by
``eval/posetrack21/scripts/run_posetrack_challenge.py`` on the frames and persons its ``datasets/posetrack.py``
keeps (the ``pt21`` protocol's: labeled frames, ignore regions applied, a joint exists at ``x > 0 and y > 0``).
Per sequence, joint and threshold alpha (19 of them, 0.05 ... 0.95): in every frame the GT and predicted joints
are paired by a maximum-similarity assignment (scipy's ``linear_sum_assignment``) on the similarity
``max(1 - d / 0.5001, 0)`` of head-normalised distance d; a pair of similarity >= alpha is a true positive.
Association (AssA, AssRe, AssPr) counts each (GT track, predicted track) pair's true positives against the
two tracks' joint counts; FragA also splits them into the runs in which the GT track kept that prediction.
Sequences combine by summing the counts and weighting AssA, AssRe, AssPr, FragA and LocA by true positives.

The scorer's quirks, reproduced (see the package README):

* a frame without GT persons adds the *whole sequence's* predicted joints to every false-positive count, and
  a frame without predictions (but with GT) the whole sequence's GT joints to every false negative
  (PoseTrack21 issue #10);
* the similarity reaches 0 at distance 0.5001, so a joint counts for any alpha only within half a head size
  (issue #11), and the 19 thresholds split (0, 0.5] very unevenly in distance;
* the Total column of one sequence is the mean over joints; of the data set, it is computed from the
  sequences' Total columns (counts summed, AssA etc. weighted by the Total true positives).

Where the scorer crashes, this module does not: a labeled frame whose GT persons are all gone (none written,
or all removed by ignore regions) is the "no GT" frame the scorer's code describes; a NaN similarity (a zero
head box on a joint that coincides with the prediction, 0/0) is 0 instead of an error from scipy.
"""

from __future__ import annotations

import itertools
from typing import Final

import numpy as np
import numpy.typing as npt

from posetrack_eval.joints import NUM_EVAL_JOINTS
from posetrack_eval.matching import SequenceMatch

__all__ = ["ALPHAS", "HOTA_FIELDS", "HOTA_JOINT_NAMES", "HotaTotals", "hota_summary", "sequence_hota", "similarity"]

# the scorer's array_labels: 0.05, 0.10, ..., 0.95 (as np.arange computes them, 0.15000000000000002 etc.)
ALPHAS: Final = np.arange(0.05, 0.99, 0.05)
# the scorer's joint names, in its order (the 17 slots without the ears)
HOTA_JOINT_NAMES: Final = ("Nose", "Neck", "Head", "LS", "RS", "LE", "RE", "LW", "RW", "LH", "RH", "LK", "RK", "LA",
                           "RA")  # fmt: skip
_ARRAY_FIELDS: Final = ("HOTA", "DetA", "AssA", "FragA", "DetRe", "DetPr", "AssRe", "AssPr", "LocA", "RHOTA",
                        "FA-HOTA", "FA-RHOTA")  # fmt: skip
_AT_ZERO_FIELDS: Final = ("HOTA(0)", "LocA(0)", "HOTALocA(0)")
# the fields of the scorer's summary table, as the issue and its users name them
HOTA_FIELDS: Final = _ARRAY_FIELDS + _AT_ZERO_FIELDS
_COUNTS: Final = ("HOTA_TP", "HOTA_FN", "HOTA_FP")
_WEIGHTED: Final = ("AssRe", "AssPr", "AssA", "FragA")
_EPS: Final = np.finfo("float").eps  # the scorer compares similarity >= alpha - eps

Fields = dict[str, npt.NDArray[np.float64]]


def similarity(dist: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """The scorer's ``distance2sim``: 1 at distance 0, falling linearly to 0 at 0.5001 head sizes."""
    return np.maximum((-1 / 0.5001) * dist + 1, 0)


def _repeated(keys: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
    """Per element, whether another element has the same key."""
    _, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
    return counts[inverse.reshape(-1)] > 1


def _assigned_pairs(match: SequenceMatch) -> tuple[npt.NDArray[np.int64], ...]:
    """The (GT row, prediction row, joint, similarity, frame) of the pairs the scorer's assignments keep.

    The scorer runs ``linear_sum_assignment`` on each frame's GT x prediction similarity of each joint; only
    pairs of positive similarity can reach an alpha. Where no GT person and no prediction has two positive
    pairs (the common case) the optimum holds every positive pair, so only the other frame-joint blocks are
    solved, on the same matrix the scorer builds.
    """
    from scipy.optimize import linear_sum_assignment  # imported here: scipy costs ~1 s and only tracking needs it

    sim = similarity(match.near_dist)
    positive = sim > 0
    g, p, joint, sim = match.near_gt[positive], match.near_pred[positive], match.near_joint[positive], sim[positive]
    gts, prs = match.gt, match.pred
    frame = np.searchsorted(prs.frame_ptr, p, side="right") - 1
    crowded = _repeated(joint * len(gts.head) + g) | _repeated(joint * len(prs.head) + p)
    block = frame * NUM_EVAL_JOINTS + joint
    keep = ~np.isin(block, block[crowded])
    solved = np.flatnonzero(~keep)
    solved = solved[np.argsort(block[solved], kind="stable")]  # grouped by block
    bounds = np.flatnonzero(np.r_[True, block[solved][1:] != block[solved][:-1], True]).tolist() if len(solved) else []
    for start, stop in itertools.pairwise(bounds):
        entries = solved[start:stop]
        f = int(frame[entries[0]])  # a block is one frame and one joint
        g0, g1, p0, p1 = gts.frame_ptr[f], gts.frame_ptr[f + 1], prs.frame_ptr[f], prs.frame_ptr[f + 1]
        scores = np.zeros((g1 - g0, p1 - p0))
        scores[g[entries] - g0, p[entries] - p0] = sim[entries]
        index = np.full(scores.shape, -1)
        index[g[entries] - g0, p[entries] - p0] = entries
        rows, cols = linear_sum_assignment(-scores)
        chosen = index[rows, cols]
        keep[chosen[chosen >= 0]] = True
    return g[keep], p[keep], joint[keep], sim[keep], frame[keep]


def _above(counts: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """``out[..., a]``: the total of ``counts[..., m]`` over m > a, for the 19 alphas (m counts alphas passed).

    Shapes:
        counts: Float[..., 20] -> Float[..., 19]
    """
    return np.cumsum(counts[..., ::-1], axis=-1)[..., ::-1][..., 1:]


def _score_frames(match: SequenceMatch, res: Fields) -> None:
    """The scorer's main path (both GT and predictions in the sequence): fill ``res`` (Float[19, 15] each)."""
    gts, prs = match.gt, match.pred
    A, J = len(ALPHAS), NUM_EVAL_JOINTS
    n_gt, n_pr = gts.counts, prs.counts
    no_gt, no_pr = n_gt == 0, (n_pr == 0) & (n_gt > 0)
    # PoseTrack21 issue #10: the whole sequence's joints, once per frame without GT (or without predictions)
    res["HOTA_FP"] += no_gt.sum() * prs.has.sum(axis=0)
    res["HOTA_FN"] += no_pr.sum() * gts.has.sum(axis=0)
    both = ~no_gt & ~no_pr
    gt_joints, pr_joints = gts.has[np.repeat(both, n_gt)].sum(axis=0), prs.has[np.repeat(both, n_pr)].sum(axis=0)

    g, p, joint, sim, frame = _assigned_pairs(match)
    passed = np.searchsorted(ALPHAS - _EPS, sim, side="right")  # how many alphas each pair reaches
    tp = _above(np.bincount(joint * (A + 1) + passed, minlength=J * (A + 1)).reshape(J, A + 1)).T
    res["HOTA_TP"] += tp
    res["HOTA_FN"] += gt_joints - tp
    res["HOTA_FP"] += pr_joints - tp
    loc = _above(np.bincount(joint * (A + 1) + passed, weights=sim, minlength=J * (A + 1)).reshape(J, A + 1)).T
    res["LocA"] = np.maximum(1e-10, loc) / np.maximum(1e-10, tp)

    # association: per (joint, GT track, predicted track) key, its true positives at each alpha
    gt_track = np.unique(gts.track, return_inverse=True)[1].reshape(-1)
    pr_track = np.unique(prs.track, return_inverse=True)[1].reshape(-1)
    NG, NP = int(gt_track.max()) + 1, int(pr_track.max()) + 1
    gt_count = np.bincount((gt_track[:, None] * J + np.arange(J))[gts.has], minlength=NG * J).reshape(NG, J)
    pr_count = np.bincount((pr_track[:, None] * J + np.arange(J))[prs.has], minlength=NP * J).reshape(NP, J)
    keys, key = np.unique((joint * NG + gt_track[g]) * NP + pr_track[p], return_inverse=True)
    key = key.reshape(-1)
    key_joint, key_gt, key_pr = keys // (NG * NP), keys // NP % NG, keys % NP
    K = len(keys)
    matches = _above(np.bincount(key * (A + 1) + passed, minlength=K * (A + 1)).reshape(K, A + 1))
    gt_k, pr_k = gt_count[key_gt, key_joint][:, None], pr_count[key_pr, key_joint][:, None]
    union = np.maximum(1, gt_k + pr_k - matches)
    weight = np.maximum(1, tp)
    for name, per_key in (
        ("AssA", matches * (matches / union)),
        ("AssRe", matches * (matches / np.maximum(1, gt_k))),
        ("AssPr", matches * (matches / np.maximum(1, pr_k))),
    ):
        total = np.zeros((J, A))
        np.add.at(total, key_joint, per_key)
        res[name] = total.T / weight

    # FragA: the true positives of each key split into runs, a run ending when its GT track takes another
    order = np.lexsort((frame, gt_track[g], joint))
    track_of, pred_of, passed_of, key_of = (
        (joint * NG + gt_track[g])[order],
        pr_track[p][order],
        passed[order],
        key[order],
    )
    frag = np.zeros((A, J))
    for a in range(A):
        sel = np.flatnonzero(passed_of > a)
        if not len(sel):
            continue
        new_run = np.r_[True, (track_of[sel][1:] != track_of[sel][:-1]) | (pred_of[sel][1:] != pred_of[sel][:-1])]
        length = np.bincount(np.cumsum(new_run) - 1).astype(np.float64)
        run_key = key_of[sel][new_run]
        frag[a] = np.bincount(key_joint[run_key], weights=length * (length / union[run_key, a]), minlength=J)
    res["FragA"] = frag / weight


def _final_fields(res: Fields) -> Fields:
    """The scorer's ``_compute_final_fields`` without the Total column: the fields derived from the counts."""
    tp, fn, fp = res["HOTA_TP"], res["HOTA_FN"], res["HOTA_FP"]
    out = dict(res)
    out["DetRe"] = tp / np.maximum(1, tp + fn)
    out["DetPr"] = tp / np.maximum(1, tp + fp)
    out["DetA"] = tp / np.maximum(1, tp + fn + fp)
    out["HOTA"] = np.sqrt(out["DetA"] * res["AssA"])
    out["RHOTA"] = np.sqrt(out["DetRe"] * res["AssA"])
    out["FA-HOTA"] = np.sqrt(out["DetA"] * np.sqrt(res["AssA"] * res["FragA"]))
    out["FA-RHOTA"] = np.sqrt(out["DetRe"] * np.sqrt(res["AssA"] * res["FragA"]))
    out["HOTA(0)"] = out["HOTA"][0]
    out["LocA(0)"] = out["LocA"][0]
    out["HOTALocA(0)"] = out["HOTA(0)"] * out["LocA(0)"]
    return out


def _with_total(res: Fields) -> Fields:
    """A sequence's Total column: the sum over joints of the counts, the mean of everything else."""
    return {
        name: np.concatenate([v, v.sum(axis=-1, keepdims=True) if name in _COUNTS else v.mean(axis=-1, keepdims=True)],
                             axis=-1)
        for name, v in res.items()
    }  # fmt: skip


def sequence_hota(match: SequenceMatch) -> Fields:
    """The scorer's ``eval_sequence`` of one sequence (pt21 protocol): every field, with its Total column.

    Shapes:
        return: Float[19, 16] per array field and count, Float[16] per ``(0)`` field (15 joints, then Total)
    """
    res = {name: np.zeros((len(ALPHAS), NUM_EVAL_JOINTS)) for name in (*_COUNTS, *_WEIGHTED, "LocA")}
    if len(match.pred.head) == 0:
        res["HOTA_FN"] += match.gt.has.sum(axis=0)
        res["LocA"] += 1
    elif len(match.gt.head) == 0:
        res["HOTA_FP"] += match.pred.has.sum(axis=0)
        res["LocA"] += 1
    else:
        _score_frames(match, res)
    return _with_total(_final_fields(res))


class HotaTotals:
    """The scorer's ``combine_sequences``: counts summed, AssA/AssRe/AssPr/FragA/LocA weighted by true positives."""

    def __init__(self) -> None:
        shape = (len(ALPHAS), NUM_EVAL_JOINTS + 1)
        self.sums = {name: np.zeros(shape) for name in (*_COUNTS, *_WEIGHTED, "LocA")}

    def add(self, sequence: Fields) -> None:
        for name in _COUNTS:
            self.sums[name] += sequence[name]
        for name in (*_WEIGHTED, "LocA"):
            self.sums[name] += sequence[name] * sequence["HOTA_TP"]

    def fields(self) -> Fields:
        tp = self.sums["HOTA_TP"]
        res = {name: self.sums[name] for name in _COUNTS}
        res.update({name: self.sums[name] / np.maximum(1.0, tp) for name in _WEIGHTED})
        res["LocA"] = np.maximum(1e-10, self.sums["LocA"]) / np.maximum(1e-10, tp)
        return _final_fields(res)


def hota_summary(fields: Fields) -> dict[str, dict[str, float]]:
    """What the scorer's summary table prints, at full precision: ``{field: {joint or "Total": percent}}``.

    Array fields are 100 x their mean over the 19 alphas, the ``(0)`` fields 100 x their value.
    """
    names = (*HOTA_JOINT_NAMES, "Total")
    summary = {}
    for field in HOTA_FIELDS:
        values = fields[field].mean(axis=0) if field in _ARRAY_FIELDS else fields[field]
        summary[field] = dict(zip(names, (100 * values).tolist(), strict=True))
    return summary
