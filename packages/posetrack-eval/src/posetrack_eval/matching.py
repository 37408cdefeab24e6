"""Per-sequence frame selection, ignore regions and PCKh person assignment, vectorised over all frames.

This reproduces ``eval_helpers.assignGTmulti`` of poseval (and ``PosemAP.eval_sequence`` of PoseTrack21):
each prediction keeps only its best GT by PCKh (first on ties), then each GT takes the prediction with the
highest remaining PCKh (first on ties; none if 0). Every predicted joint is then one (score, label) sample.
All pairs of a sequence are handled at once as flat arrays ordered (frame, prediction, GT).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from posetrack_eval.geometry import inside_any
from posetrack_eval.io import GroundTruthSequence, Persons
from posetrack_eval.joints import NUM_EVAL_JOINTS

__all__ = ["DIST_THRESHOLD", "SequenceMatch", "Side", "match_sequence"]

# poseval's distThresh: a joint is correct within half the head size (PCKh@0.5).
DIST_THRESHOLD = 0.5


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
    """

    frame_ptr: npt.NDArray[np.int64]
    xy: npt.NDArray[np.float64]
    has: npt.NDArray[np.bool_]
    score: npt.NDArray[np.float64]
    head: npt.NDArray[np.float64]
    track: npt.NDArray[np.int64]

    @property
    def counts(self) -> npt.NDArray[np.int64]:
        return np.diff(self.frame_ptr)


@dataclass
class SequenceMatch:
    """The outcome of matching one sequence.

    Shapes (K scored frames, E prediction-GT pairs within frames, ordered frame, prediction, GT):
        label: Bool[n_pred, 15] (a predicted joint is a true positive)
        num_gt: Int[15]
        pair_ptr: Int[K + 1]
        dist: Float[E, 15] (joint distance / head size; inf where either joint is missing)
    """

    name: str
    gt: Side
    pred: Side
    label: npt.NDArray[np.bool_]
    num_gt: npt.NDArray[np.int64]
    pair_ptr: npt.NDArray[np.int64]
    dist: npt.NDArray[np.float64]

    @property
    def num_frames(self) -> int:
        return len(self.pair_ptr) - 1


def _rows_of_frames(frame_ptr: npt.NDArray[np.int64], frames: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    counts = frame_ptr[frames + 1] - frame_ptr[frames]
    starts = np.repeat(frame_ptr[frames] - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts)
    return starts + np.arange(counts.sum())


def _ptr(counts: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    return np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)


def _ignore_poseval(
    persons: Persons, rows: npt.NDArray[np.int64], xy, present, score, regions_of_rows: list[tuple[slice, list]]
) -> npt.NDArray[np.bool_]:
    """Poseval's ``removeIgnoredPoints``: drop joints strictly inside a region, then persons left without points.

    Edits ``present``/``xy``/``score`` in place (rows are the scored persons); returns the persons to keep.
    """
    keep = np.ones(len(rows), dtype=bool)
    extra = persons.extra
    extra_rows = {}
    if len(extra):
        local = np.full(len(persons.head), -1, dtype=np.int64)
        local[rows] = np.arange(len(rows))
        extra_local = local[extra[:, 0].astype(np.int64)]
        for e in np.flatnonzero(extra_local >= 0):
            extra_rows.setdefault(int(extra_local[e]), []).append(e)
    for span, polygons in regions_of_rows:
        block = np.arange(span.start, span.stop)
        if len(block) == 0:
            continue
        inside = inside_any(xy[block].reshape(-1, 2), polygons).reshape(len(block), NUM_EVAL_JOINTS)
        removed = present[block] & inside
        present[block] &= ~inside
        for r in block:
            points = int(present[r].sum())
            for e in extra_rows.get(int(r), []):
                joint, x, y, s = int(extra[e, 1]), extra[e, 2], extra[e, 3], extra[e, 4]
                if inside_any(np.array([[x, y]]), polygons)[0]:
                    continue
                points += 1
                if joint >= 0 and removed[r - span.start, joint] and not present[r, joint]:
                    # the first surviving point of an id becomes the joint (poseval picks the first match)
                    present[r, joint], xy[r, joint], score[r, joint] = True, (x, y), s
            keep[r] = points > 0
    return keep


def _ignore_pt21(xy, regions_of_rows: list[tuple[slice, list]]) -> npt.NDArray[np.bool_]:
    """PoseTrack21: flag all 15 joints (absent ones too) inside a region; drop all-flagged or all-nonpositive."""
    keep = np.ones(len(xy), dtype=bool)
    for span, polygons in regions_of_rows:
        block = xy[span]
        if len(block) == 0:
            continue
        flags = inside_any(block.reshape(-1, 2), polygons).reshape(len(block), NUM_EVAL_JOINTS)
        block[flags] = 0.0
        gone = flags.all(axis=1) | ((block[..., 0] <= 0) & (block[..., 1] <= 0)).all(axis=1)
        keep[span] &= ~gone
    return keep


def _side(persons: Persons, frames: npt.NDArray[np.int64], regions: list[list], protocol: str) -> Side:
    """Select the persons of the scored frames and apply the ignore regions (regions[k] of scored frame k)."""
    rows = _rows_of_frames(persons.frame_ptr, frames)
    counts = persons.frame_ptr[frames + 1] - persons.frame_ptr[frames]
    ptr = _ptr(counts)
    xy = persons.xy[rows].copy()
    score = persons.score[rows].copy()
    spans = [(slice(int(ptr[k]), int(ptr[k + 1])), polys) for k, polys in enumerate(regions) if polys]
    if protocol == "poseval":
        present = persons.present[rows].copy()
        keep = _ignore_poseval(persons, rows, xy, present, score, spans) if spans else np.ones(len(rows), dtype=bool)
    else:
        keep = _ignore_pt21(xy, spans) if spans else np.ones(len(rows), dtype=bool)
        present = (xy[..., 0] > 0) & (xy[..., 1] > 0)
    if not keep.all():
        frame_of = np.repeat(np.arange(len(frames)), counts)
        ptr = _ptr(np.bincount(frame_of[keep], minlength=len(frames)))
        rows, xy, present, score = rows[keep], xy[keep], present[keep], score[keep]
    return Side(frame_ptr=ptr, xy=xy, has=present, score=score, head=persons.head[rows], track=persons.track[rows])


def scored_frames(gt: GroundTruthSequence, protocol: Literal["poseval", "pt21"]) -> npt.NDArray[np.int64]:
    """Poseval scores frames whose GT has at least one rect; PoseTrack21 those flagged ``is_labeled``."""
    return np.flatnonzero(gt.rect_count > 0 if protocol == "poseval" else gt.labeled).astype(np.int64)


def match_sequence(gt: GroundTruthSequence, pred: Persons, protocol: Literal["poseval", "pt21"]) -> SequenceMatch:
    """Select frames, drop ignored joints, and assign predictions to GT persons in every frame of one sequence."""
    frames = scored_frames(gt, protocol)
    regions = [gt.regions.get(int(f), []) for f in frames]
    gts = _side(gt.persons, frames, regions, protocol)
    prs = _side(pred, frames, regions, protocol)

    n_pr, n_gt = prs.counts, gts.counts
    pair_counts = n_pr * n_gt
    pair_ptr = _ptr(pair_counts)
    num_pairs = int(pair_ptr[-1])
    frame = np.repeat(np.arange(len(frames)), pair_counts)
    offset = np.arange(num_pairs) - pair_ptr[frame]
    p = prs.frame_ptr[frame] + offset // np.maximum(n_gt[frame], 1)
    g = gts.frame_ptr[frame] + offset % np.maximum(n_gt[frame], 1)

    both = prs.has[p] & gts.has[g]
    delta = gts.xy[g] - prs.xy[p]
    with np.errstate(divide="ignore", invalid="ignore"):
        dist = np.sqrt(delta[..., 0] * delta[..., 0] + delta[..., 1] * delta[..., 1]) / gts.head[g][:, None]
    dist[~both] = np.inf
    match = dist <= DIST_THRESHOLD
    joints_of_gt = gts.has.sum(axis=1)
    pck = match.sum(axis=1).astype(np.float64)
    annotated = joints_of_gt[g] > 0
    pck[annotated] /= joints_of_gt[g][annotated]

    label = np.zeros_like(prs.has)
    if num_pairs:
        # each prediction keeps its best GT (first on ties); pairs are grouped by prediction, GT ascending
        row_start = np.flatnonzero(np.r_[True, p[1:] != p[:-1]])
        row_id = np.cumsum(np.r_[False, p[1:] != p[:-1]])
        row_best = np.maximum.reduceat(pck, row_start)
        cand = np.flatnonzero(pck == row_best[row_id])
        _, first = np.unique(row_id[cand], return_index=True)
        kept = np.zeros(num_pairs)
        kept[cand[first]] = pck[cand[first]]
        # each GT takes the prediction with the highest kept PCKh (first on ties), if above 0
        by_gt = np.lexsort((p, g))
        col_g = g[by_gt]
        col_start = np.flatnonzero(np.r_[True, col_g[1:] != col_g[:-1]])
        col_id = np.cumsum(np.r_[False, col_g[1:] != col_g[:-1]])
        col_best = np.maximum.reduceat(kept[by_gt], col_start)
        cand = np.flatnonzero((kept[by_gt] == col_best[col_id]) & (col_best[col_id] > 0))
        _, first = np.unique(col_id[cand], return_index=True)
        pairs = by_gt[cand[first]]
        label[p[pairs]] = match[pairs]
    label &= prs.has
    return SequenceMatch(
        name=gt.name,
        gt=gts,
        pred=prs,
        label=label,
        num_gt=gts.has.sum(axis=0),
        pair_ptr=pair_ptr,
        dist=dist,
    )
