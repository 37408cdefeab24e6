"""MOTA / MOTP / precision / recall per joint as poseval's ``evaluateTracking`` computes them with motmetrics.

poseval feeds one ``motmetrics.MOTAccumulator`` per sequence and joint. This module reimplements the event
logic of motmetrics 1.4 (``MOTAccumulator.update``) for those inputs: first re-establish last frame's
correspondences, then a minimum-cost assignment (scipy, on the same cost matrix motmetrics builds) of the rest,
SWITCH when an object changes hypothesis. Only the counters poseval reads are kept.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from posetrack_eval.joints import NUM_EVAL_JOINTS
from posetrack_eval.matching import DIST_THRESHOLD, SequenceMatch

__all__ = ["MotCounts", "sequence_mot_counts"]


@dataclass
class MotCounts:
    """Event counts per joint (Int[15]) and the sum of the accumulator's 'D' column (Float[15])."""

    misses: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(NUM_EVAL_JOINTS, dtype=np.int64))
    switches: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(NUM_EVAL_JOINTS, dtype=np.int64))
    false_positives: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(NUM_EVAL_JOINTS, dtype=np.int64))
    matches: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(NUM_EVAL_JOINTS, dtype=np.int64))
    distance_sum: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros(NUM_EVAL_JOINTS))

    def __iadd__(self, other: MotCounts) -> MotCounts:
        for name in ("misses", "switches", "false_positives", "matches", "distance_sum"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        return self

    def metrics(self) -> dict[str, npt.NDArray[np.float64]]:
        """Per-joint MOTA, MOTP, precision, recall in percent (NaN where poseval gets NaN)."""
        objects = (self.matches + self.switches + self.misses).astype(np.float64)
        detections = (self.matches + self.switches).astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            objects_nan = np.where(objects > 0, objects, np.nan)
            claimed = detections + self.false_positives
            mota = 100 * (1.0 - (self.misses + self.switches + self.false_positives) / objects_nan)
            motp = np.where(detections == 0, 0.0, 100 * (1.0 - self.distance_sum / detections))
            precision = 100 * (detections / np.where(claimed > 0, claimed, np.nan))
            recall = 100 * (detections / objects_nan)
        return {"mota": mota, "motp": motp, "precision": precision, "recall": recall}


class _Accumulator:
    """The state of one motmetrics accumulator (one sequence, one joint) and the events it has emitted."""

    def __init__(self) -> None:
        self.m: dict[int, int] = {}  # object -> hypothesis of its last correspondence
        self.res_m: dict[int, int] = {}  # hypothesis -> object (set by the assignment step only)
        self.last_match: set[int] = set()
        self.hyp_history: set[int] = set()
        self.misses = self.switches = self.false_positives = self.matches = 0
        self.distance_sum = 0.0

    def update(self, oids: list[int], hids: list[int], dists: list[list[float]]) -> None:
        """One frame: ``dists[i][j]`` is the distance of object i to hypothesis j, NaN if they may not match.

        Plain Python on lists: frames hold a handful of persons, where numpy's per-call cost dominates.
        Hypothesis ids are unique within a frame (checked when loading).
        """
        no, nh = len(oids), len(hids)
        # motmetrics records every finite distance as a RAW event; poseval sums 'D' over all events
        raw = [d for row in dists for d in row if d == d]
        if not raw:
            self.misses += no
            self.false_positives += nh
            return
        self.distance_sum += math.fsum(raw)
        o_done = [False] * no
        h_done = [False] * nh
        column_of = {h: j for j, h in enumerate(hids)}
        for i, o in enumerate(oids):
            if o not in self.m:
                continue
            j = column_of.get(self.m[o])
            if j is not None and not h_done[j] and dists[i][j] == dists[i][j]:
                h = hids[j]
                o_done[i] = h_done[j] = True
                self.matches += 1
                self.distance_sum += dists[i][j]
                self.last_match.add(o)
                self.hyp_history.add(h)
        open_rows = [i for i in range(no) if not o_done[i]]
        open_cols = [j for j in range(nh) if not h_done[j]]
        if any(dists[i][j] == dists[i][j] for i in open_rows for j in open_cols):
            self._assign(oids, hids, dists, o_done, h_done)
        self.misses += no - sum(o_done)
        self.false_positives += nh - sum(h_done)

    def _assign(self, oids, hids, dists, o_done, h_done) -> None:
        """Step 2 of motmetrics: minimum-cost assignment of what step 1 left, SWITCH when an object changes."""
        from scipy.optimize import linear_sum_assignment  # imported here: scipy costs ~1 s and only MOTA needs it

        costs = np.array(dists, dtype=np.float64).reshape(len(oids), len(hids))
        costs[np.array(o_done, dtype=bool), :] = np.nan
        costs[:, np.array(h_done, dtype=bool)] = np.nan
        valid = np.isfinite(costs)
        # motmetrics' scipy path: unassignable pairs get a cost no optimum can choose
        if not valid.all():
            large = 2 * min(costs.shape) * (np.abs(costs[valid]).max() + 1) + 1
            costs_lsa = np.where(valid, costs, large)
        else:
            costs_lsa = costs
        for i, j in zip(*linear_sum_assignment(costs_lsa), strict=True):
            if not valid[i, j]:
                continue
            o, h, d = oids[i], hids[j], float(costs[i, j])
            is_switch = o in self.m and self.m[o] != h
            if is_switch and h not in self.hyp_history:
                self.distance_sum += d  # ASCEND event
            if h in self.res_m and self.res_m[h] != o:
                if o not in self.last_match:
                    self.distance_sum += d  # MIGRATE event
                self.distance_sum += d  # TRANSFER event
            self.hyp_history.add(h)
            self.last_match.add(o)
            if is_switch:
                self.switches += 1
            else:
                self.matches += 1
            self.distance_sum += d
            o_done[i] = h_done[j] = True
            self.m[o] = h
            self.res_m[h] = o


def sequence_mot_counts(match: SequenceMatch) -> MotCounts:
    """Feed every scored frame but the last (poseval drops it) to one accumulator per joint."""
    counts = MotCounts()
    gts, prs = match.gt, match.pred
    accumulators = [_Accumulator() for _ in range(NUM_EVAL_JOINTS)]
    gt_tracks, pr_tracks = gts.track.tolist(), prs.track.tolist()
    correct_joint = match.near_dist <= DIST_THRESHOLD
    near_pred, near_gt = match.near_pred[correct_joint], match.near_gt[correct_joint]
    near_joint, near_dist = match.near_joint[correct_joint], match.near_dist[correct_joint]
    near_ptr = np.searchsorted(near_pred, prs.frame_ptr)
    for k in range(match.num_frames - 1):
        g0, g1 = int(gts.frame_ptr[k]), int(gts.frame_ptr[k + 1])
        p0, p1 = int(prs.frame_ptr[k]), int(prs.frame_ptr[k + 1])
        if g1 == g0 or p1 == p0:
            # poseval's placeholder for frames without GT or predictions: object 0 and hypothesis 0, unmatched
            for acc in accumulators:
                acc.misses += 1
                acc.false_positives += 1
            continue
        # per joint: [GT][prediction] distances of correct joints, NaN elsewhere (poseval's MOT input)
        block = np.full((NUM_EVAL_JOINTS, g1 - g0, p1 - p0), np.nan)
        n0, n1 = near_ptr[k], near_ptr[k + 1]
        block[near_joint[n0:n1], near_gt[n0:n1] - g0, near_pred[n0:n1] - p0] = near_dist[n0:n1]
        correct = block.tolist()
        gt_has, pr_has = gts.has[g0:g1].T.tolist(), prs.has[p0:p1].T.tolist()
        for j, acc in enumerate(accumulators):
            gi = [i for i, has in enumerate(gt_has[j]) if has]
            pi = [i for i, has in enumerate(pr_has[j]) if has]
            if not gi or not pi:
                acc.misses += len(gi)
                acc.false_positives += len(pi)
                continue
            rows = correct[j]
            dists = [[rows[g][p] for p in pi] for g in gi]
            acc.update([gt_tracks[g0 + i] for i in gi], [pr_tracks[p0 + i] for i in pi], dists)
    for j, acc in enumerate(accumulators):
        counts.misses[j] = acc.misses
        counts.switches[j] = acc.switches
        counts.false_positives[j] = acc.false_positives
        counts.matches[j] = acc.matches
        counts.distance_sum[j] = 0.0 if math.isnan(acc.distance_sum) else acc.distance_sum
    return counts
