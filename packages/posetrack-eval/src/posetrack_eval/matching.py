"""Per-sequence frame selection, ignore regions and PCKh person assignment, vectorised over all frames.

This reproduces ``eval_helpers.assignGTmulti`` of poseval (and ``PosemAP.eval_sequence`` of PoseTrack21):
each prediction keeps only its best GT by PCKh (first on ties), then each GT takes the prediction with the
highest remaining PCKh (first on ties; none if 0). Every predicted joint is then one (score, label) sample.
The prediction-GT pairs of a block of frames are handled at once as flat arrays ordered (frame, prediction, GT).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from posetrack_eval.io import GroundTruthSequence, Persons
from posetrack_eval.joints import NUM_EVAL_JOINTS
from posetrack_eval.polygon import inside_any, inside_any_by_frame

__all__ = ["DIST_THRESHOLD", "MATCH_BLOCK_PAIRS", "NEAR_DISTANCE", "SequenceMatch", "Side", "match_sequence"]

# poseval's distThresh: a joint is correct within half the head size (PCKh@0.5).
DIST_THRESHOLD = 0.5
# Joint pairs kept for tracking: MOTA reads those within DIST_THRESHOLD, keypoint HOTA those of positive
# similarity (below 0.5001 head sizes); the margin leaves HOTA's own float comparison to decide at the edge.
NEAR_DISTANCE = 0.5002
# Prediction-GT pairs matched at once: bounds the temporaries of one matching pass.
MATCH_BLOCK_PAIRS = 1 << 14


@dataclass
class Side:
    """GT or predicted persons of the scored frames, after ignore regions.

    Shapes:
        frame_ptr: Int[K + 1]
        xy: Float[n, 15, 2]
        has: Bool[n, 15]
        score: Float[n, 15]
        head: Float[n]
        track: Int[n]
        person: Int[n] (row of the person in the ``Persons`` it was selected from)
    """

    frame_ptr: npt.NDArray[np.int64]
    xy: npt.NDArray[np.float64]
    has: npt.NDArray[np.bool_]
    score: npt.NDArray[np.float64]
    head: npt.NDArray[np.float64]
    track: npt.NDArray[np.int64]
    person: npt.NDArray[np.int64]

    @property
    def counts(self) -> npt.NDArray[np.int64]:
        return np.diff(self.frame_ptr)

    def frames(self, start: int, stop: int) -> Side:
        """The persons of scored frames ``start:stop``."""
        r0, r1 = int(self.frame_ptr[start]), int(self.frame_ptr[stop])
        return Side(
            frame_ptr=self.frame_ptr[start : stop + 1] - r0,
            **{name: getattr(self, name)[r0:r1] for name in ("xy", "has", "score", "head", "track", "person")},
        )


@dataclass
class SequenceMatch:
    """The outcome of matching one sequence (or several, frames one after another).

    ``near_*`` are the joint pairs (a prediction's joint, the same joint of a GT person in its frame) closer than
    ``NEAR_DISTANCE`` head sizes, all that tracking reads: MOTA those within ``DIST_THRESHOLD``, keypoint HOTA
    those of positive similarity. They are ordered by prediction, then GT person, then joint.

    Shapes:
        label: Bool[n_pred, 15] (a predicted joint is a true positive)
        assigned: Int[n_pred] (the GT person, a row of ``gt``, each prediction is assigned to; -1 if none)
        num_gt: Int[15]
        near_pred, near_gt: Int[m] (rows of ``pred`` and ``gt``)
        near_joint: Int[m]
        near_dist: Float[m] (joint distance / head size)
    """

    name: str
    gt: Side
    pred: Side
    label: npt.NDArray[np.bool_]
    assigned: npt.NDArray[np.int64]
    num_gt: npt.NDArray[np.int64]
    near_pred: npt.NDArray[np.int64]
    near_gt: npt.NDArray[np.int64]
    near_joint: npt.NDArray[np.int64]
    near_dist: npt.NDArray[np.float64]

    @property
    def num_frames(self) -> int:
        return len(self.gt.frame_ptr) - 1

    def frames(self, start: int, stop: int, name: str) -> SequenceMatch:
        """The match of scored frames ``start:stop`` (one sequence of several matched together)."""
        gt, pred = self.gt.frames(start, stop), self.pred.frames(start, stop)
        p0, p1 = int(self.pred.frame_ptr[start]), int(self.pred.frame_ptr[stop])
        g0 = int(self.gt.frame_ptr[start])
        n0, n1 = np.searchsorted(self.near_pred, [p0, p1])
        assigned = self.assigned[p0:p1]
        return SequenceMatch(
            name=name,
            gt=gt,
            pred=pred,
            label=self.label[p0:p1],
            assigned=np.where(assigned >= 0, assigned - g0, -1),
            num_gt=gt.has.sum(axis=0),
            near_pred=self.near_pred[n0:n1] - p0,
            near_gt=self.near_gt[n0:n1] - g0,
            near_joint=self.near_joint[n0:n1],
            near_dist=self.near_dist[n0:n1],
        )


def _rows_of_frames(frame_ptr: npt.NDArray[np.int64], frames: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    counts = frame_ptr[frames + 1] - frame_ptr[frames]
    starts = np.repeat(frame_ptr[frames] - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts)
    return starts + np.arange(counts.sum())


def _ptr(counts: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    return np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)


def _inside(xy, frame_of_row, region_frames) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    """Rows of frames with regions, and which of their 15 joints lie strictly inside a region."""
    rows = np.flatnonzero(np.isin(frame_of_row, list(region_frames)))
    points = xy[rows].reshape(-1, 2)
    inside = inside_any_by_frame(points, np.repeat(frame_of_row[rows], NUM_EVAL_JOINTS), region_frames)
    return rows, inside.reshape(len(rows), NUM_EVAL_JOINTS)


def _ignore_poseval(persons: Persons, rows, xy, present, score, frame_of_row, region_frames) -> npt.NDArray[np.bool_]:
    """Mimic poseval's ``removeIgnoredPoints``: drop joints inside a region, then persons left without points.

    Edits ``present``/``xy``/``score`` in place (rows are the scored persons); returns the persons to keep.
    """
    keep = np.ones(len(rows), dtype=bool)
    block, inside = _inside(xy, frame_of_row, region_frames)
    removed = present[block] & inside
    present[block] &= ~inside
    keep[block] = present[block].any(axis=1)
    if len(persons.extra):
        # annolist points after the first of their id, or with ids outside 0..14 (rare): one by one
        local = np.full(len(persons.head), -1, dtype=np.int64)
        local[rows] = np.arange(len(rows))
        position = np.full(len(rows), -1, dtype=np.int64)
        position[block] = np.arange(len(block))
        for extra in persons.extra:
            r = int(local[int(extra[0])])
            if r < 0 or position[r] < 0:
                continue
            joint, x, y, s = int(extra[1]), extra[2], extra[3], extra[4]
            polygons = region_frames[int(frame_of_row[r])]
            if inside_any(np.array([[x, y]]), polygons)[0]:
                continue
            keep[r] = True  # a surviving point keeps the person
            if joint >= 0 and removed[position[r], joint] and not present[r, joint]:
                # the first surviving point of an id becomes the joint (poseval picks the first match)
                present[r, joint], xy[r, joint], score[r, joint] = True, (x, y), s
    return keep


def _ignore_pt21(xy, frame_of_row, region_frames) -> npt.NDArray[np.bool_]:
    """PoseTrack21: flag all 15 joints (absent ones too) inside a region; drop all-flagged or all-nonpositive."""
    keep = np.ones(len(xy), dtype=bool)
    block, flags = _inside(xy, frame_of_row, region_frames)
    moved = xy[block]
    moved[flags] = 0.0
    xy[block] = moved
    keep[block] = ~(flags.all(axis=1) | ((moved[..., 0] <= 0) & (moved[..., 1] <= 0)).all(axis=1))
    return keep


def _side(persons: Persons, frames: npt.NDArray[np.int64], regions: list[list], protocol: str) -> Side:
    """Select the persons of the scored frames and apply the ignore regions (regions[k] of scored frame k)."""
    rows = _rows_of_frames(persons.frame_ptr, frames)
    counts = persons.frame_ptr[frames + 1] - persons.frame_ptr[frames]
    ptr = _ptr(counts)
    xy = persons.xy[rows].copy()
    score = persons.score[rows].copy()
    region_frames = {k: polys for k, polys in enumerate(regions) if polys}
    frame_of_row = np.repeat(np.arange(len(frames)), counts)
    keep = np.ones(len(rows), dtype=bool)
    if protocol == "poseval":
        present = persons.present[rows].copy()
        if region_frames:
            keep = _ignore_poseval(persons, rows, xy, present, score, frame_of_row, region_frames)
    else:
        if region_frames:
            keep = _ignore_pt21(xy, frame_of_row, region_frames)
        present = (xy[..., 0] > 0) & (xy[..., 1] > 0)
    if not keep.all():
        ptr = _ptr(np.bincount(frame_of_row[keep], minlength=len(frames)))
        rows, xy, present, score = rows[keep], xy[keep], present[keep], score[keep]
    return Side(frame_ptr=ptr, xy=xy, has=present, score=score, head=persons.head[rows], track=persons.track[rows],
                person=rows)  # fmt: skip


def scored_frames(gt: GroundTruthSequence, protocol: Literal["poseval", "pt21"]) -> npt.NDArray[np.int64]:
    """Poseval scores frames whose GT has at least one rect; PoseTrack21 those flagged ``is_labeled``."""
    return np.flatnonzero(gt.rect_count > 0 if protocol == "poseval" else gt.labeled).astype(np.int64)


def _blocks(pair_counts: npt.NDArray[np.int64], block_pairs: int) -> list[tuple[int, int]]:
    """Consecutive frame ranges of at most ``block_pairs`` prediction-GT pairs each (or one larger frame)."""
    bounds, cumulative, start = [], np.concatenate([[0], np.cumsum(pair_counts)]), 0
    while start < len(pair_counts):
        stop = max(start + 1, int(np.searchsorted(cumulative, cumulative[start] + block_pairs, side="right")) - 1)
        bounds.append((start, stop))
        start = stop
    return bounds


def _match_frames(gts: Side, prs: Side, start: int, stop: int, label, assigned) -> tuple[npt.NDArray, ...]:
    """Assign the predictions of frames ``start:stop`` (filling ``label`` and ``assigned``); return their near pairs.

    All prediction-GT pairs of the frames are handled at once as flat arrays ordered (frame, prediction, GT).
    """
    n_pr, n_gt = prs.counts[start:stop], gts.counts[start:stop]
    pair_counts = n_pr * n_gt
    pair_ptr = _ptr(pair_counts)
    num_pairs = int(pair_ptr[-1])
    frame = np.repeat(np.arange(stop - start), pair_counts)
    offset = np.arange(num_pairs) - pair_ptr[frame]
    p = prs.frame_ptr[start + frame] + offset // np.maximum(n_gt[frame], 1)
    g = gts.frame_ptr[start + frame] + offset % np.maximum(n_gt[frame], 1)

    both = prs.has[p] & gts.has[g]
    delta = gts.xy[g] - prs.xy[p]
    with np.errstate(divide="ignore", invalid="ignore"):
        dist = np.sqrt(delta[..., 0] * delta[..., 0] + delta[..., 1] * delta[..., 1]) / gts.head[g][:, None]
    del delta
    dist[~both] = np.inf
    match = dist <= DIST_THRESHOLD
    joints_of_gt = gts.has.sum(axis=1)
    pck = match.sum(axis=1).astype(np.float64)
    annotated = joints_of_gt[g] > 0
    pck[annotated] /= joints_of_gt[g][annotated]
    if num_pairs:
        # each prediction keeps its best GT (first on ties); pairs are grouped by prediction, GT ascending
        row_start = np.flatnonzero(np.r_[True, p[1:] != p[:-1]])
        row_id = np.cumsum(np.r_[False, p[1:] != p[:-1]])
        row_best = np.maximum.reduceat(pck, row_start)
        cand = np.flatnonzero(pck == row_best[row_id])
        first = cand[np.r_[True, row_id[cand][1:] != row_id[cand][:-1]]]  # cand ascending: first of each row
        kept = np.zeros(num_pairs)
        kept[first] = pck[first]
        # each GT takes the prediction with the highest kept PCKh (first on ties), if above 0
        by_gt = np.lexsort((p, g))
        col_g = g[by_gt]
        col_start = np.flatnonzero(np.r_[True, col_g[1:] != col_g[:-1]])
        col_id = np.cumsum(np.r_[False, col_g[1:] != col_g[:-1]])
        col_best = np.maximum.reduceat(kept[by_gt], col_start)
        cand = np.flatnonzero((kept[by_gt] == col_best[col_id]) & (col_best[col_id] > 0))
        pairs = by_gt[cand[np.r_[True, col_id[cand][1:] != col_id[cand][:-1]]]] if len(cand) else cand
        label[p[pairs]] = match[pairs]
        assigned[p[pairs]] = g[pairs]
    pair, joint = np.nonzero(dist < NEAR_DISTANCE)
    return p[pair], g[pair], joint, dist[pair, joint]


def match_sequence(
    gt: GroundTruthSequence,
    pred: Persons,
    protocol: Literal["poseval", "pt21"],
    block_pairs: int = MATCH_BLOCK_PAIRS,
) -> SequenceMatch:
    """Select frames, drop ignored joints, and assign predictions to GT persons in every frame of one sequence.

    Frames are matched in blocks of at most ``block_pairs`` prediction-GT pairs, which bounds the temporaries
    (about 1 KiB a pair); a larger block only saves numpy's per-call costs.
    """
    frames = scored_frames(gt, protocol)
    regions = [gt.regions.get(int(f), []) for f in frames]
    gts = _side(gt.persons, frames, regions, protocol)
    prs = _side(pred, frames, regions, protocol)
    label = np.zeros_like(prs.has)
    assigned = np.full(len(prs.head), -1, dtype=np.int64)
    empty = (np.zeros(0, dtype=np.int64),) * 3 + (np.zeros(0),)
    blocks = _blocks(prs.counts * gts.counts, block_pairs)
    parts = [empty, *(_match_frames(gts, prs, start, stop, label, assigned) for start, stop in blocks)]
    near_pred, near_gt, near_joint, near_dist = (np.concatenate(column) for column in zip(*parts, strict=True))
    label &= prs.has
    return SequenceMatch(
        name=gt.name,
        gt=gts,
        pred=prs,
        label=label,
        assigned=assigned,
        num_gt=gts.has.sum(axis=0),
        near_pred=near_pred,
        near_gt=near_gt,
        near_joint=near_joint,
        near_dist=near_dist,
    )
