"""A simple greedy tracker: link each frame's poses to the previous frames' tracks by OKS or box IoU.

Enough for `posetrack-eval --tracking` to score MOTA; it is not a re-identification tracker. Pairs are
taken in descending similarity (the greedy matching of Simple Baselines' tracker, without optical flow);
a pose that matches no track above the threshold starts a new track. `track_poses` runs it over one
sequence, for `vremd-predict` and for `train.py`'s validation alike.
"""

import dataclasses
from collections.abc import Sequence
from typing import Literal

import numpy as np
import numpy.typing as npt

from posetrack_data.predictions import PersonPose

__all__ = ["POSETRACK_OKS_SIGMAS", "GreedyTracker", "box_iou", "object_keypoint_similarity", "track_poses"]

# COCO's per-joint OKS sigmas moved to the 17-slot PoseTrack order: head_bottom and head_top take the
# eye slots' values (the slots they replace); see docs/paper-map.md.
POSETRACK_OKS_SIGMAS = np.array([
    0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072,
    0.062, 0.062, 0.107, 0.107, 0.087, 0.087, 0.089, 0.089,
])  # fmt: skip


def box_iou(boxes_a: npt.ArrayLike, boxes_b: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Pairwise intersection over union of (x, y, w, h) boxes.

    Shapes:
        boxes_a: Float[P, 4], boxes_b: Float[Q, 4] -> Float[P, Q]
    """
    a = np.asarray(boxes_a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(boxes_b, dtype=np.float64).reshape(-1, 4)
    top_left = np.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = np.minimum(a[:, None, :2] + a[:, None, 2:], b[None, :, :2] + b[None, :, 2:])
    intersection = np.clip(bottom_right - top_left, 0, None).prod(-1)
    union = a[:, None, 2:].prod(-1) + b[None, :, 2:].prod(-1) - intersection
    return np.divide(intersection, union, out=np.zeros_like(intersection), where=union > 0)


def object_keypoint_similarity(
    keypoints_a: npt.ArrayLike,
    keypoints_b: npt.ArrayLike,
    *,
    visible_a: npt.ArrayLike,
    visible_b: npt.ArrayLike,
    areas_b: npt.ArrayLike,
    sigmas: npt.ArrayLike = POSETRACK_OKS_SIGMAS,
) -> npt.NDArray[np.float64]:
    """Pairwise COCO OKS over the joints visible in both poses; NaN where no joint is shared.

    Args:
        keypoints_a: Poses (x, y) in image pixels.
        keypoints_b: Reference poses; their scale is `areas_b`.
        visible_a: Which joints of `keypoints_a` count.
        visible_b: Which joints of `keypoints_b` count.
        areas_b: Object area (box w * h) of each reference pose.
        sigmas: Per-joint OKS sigma.

    Shapes:
        keypoints_a: Float[P, J, 2], keypoints_b: Float[Q, J, 2], visible_*: Bool[P|Q, J], areas_b: Float[Q]
        -> Float[P, Q]
    """
    a = np.asarray(keypoints_a, dtype=np.float64)
    b = np.asarray(keypoints_b, dtype=np.float64)
    variances = (2 * np.asarray(sigmas, dtype=np.float64)) ** 2
    if a.ndim != 3 or b.ndim != 3 or a.shape[1:] != b.shape[1:] or a.shape[1] != len(variances):
        raise ValueError(f"keypoints must be (P, J, 2) and (Q, J, 2) with J={len(variances)}, got {a.shape}, {b.shape}")
    squared = ((a[:, None] - b[None]) ** 2).sum(-1)
    scale = np.maximum(np.asarray(areas_b, dtype=np.float64), np.finfo(np.float64).eps)[None, :, None]
    similarity = np.exp(-squared / (2 * scale * variances))
    shared = np.asarray(visible_a, dtype=bool)[:, None] & np.asarray(visible_b, dtype=bool)[None]
    count = shared.sum(-1)
    total = np.where(shared, similarity, 0.0).sum(-1)
    return np.divide(total, count, out=np.full(count.shape, np.nan), where=count > 0)


class GreedyTracker:
    """Assigns track ids frame by frame, greedily matching poses to recent tracks.

    Args:
        metric: `"oks"` compares poses (falling back to box IoU for a pair with no joint visible in both);
            `"iou"` compares boxes only.
        threshold: Least similarity for a match; below it a pose starts a new track.
        max_age: A track not matched for this many frames is no longer matched.
        keypoint_threshold: Joints with a lower score do not count in OKS.
        sigmas: Per-joint OKS sigma.
    """

    def __init__(
        self,
        *,
        metric: Literal["oks", "iou"] = "oks",
        threshold: float = 0.3,
        max_age: int = 1,
        keypoint_threshold: float = 0.1,
        sigmas: npt.ArrayLike = POSETRACK_OKS_SIGMAS,
    ) -> None:
        if metric not in ("oks", "iou"):
            raise ValueError(f"metric must be 'oks' or 'iou', got {metric!r}")
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {threshold}")
        if max_age < 1:
            raise ValueError(f"max_age must be at least 1, got {max_age}")
        self.metric = metric
        self.threshold = threshold
        self.max_age = max_age
        self.keypoint_threshold = keypoint_threshold
        self.sigmas = np.asarray(sigmas, dtype=np.float64)
        self.reset()

    def reset(self) -> None:
        """Forget every track (call between sequences)."""
        self._frame = 0
        self._next_id = 0
        self._ids = np.zeros(0, dtype=np.int64)
        self._boxes = np.zeros((0, 4))
        self._keypoints = np.zeros((0, len(self.sigmas), 2))
        self._visible = np.zeros((0, len(self.sigmas)), dtype=bool)
        self._last_seen = np.zeros(0, dtype=np.int64)

    def update(
        self,
        boxes: npt.ArrayLike,
        keypoints: npt.ArrayLike | None = None,
        scores: npt.ArrayLike | None = None,
    ) -> npt.NDArray[np.int64]:
        """Track ids for the poses of the next frame.

        Shapes:
            boxes: Float[P, 4] (x, y, w, h), keypoints: Float[P, J, 2], scores: Float[P, J] -> Int[P]
        """
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        P = len(boxes)
        if self.metric == "oks" and (keypoints is None or scores is None):
            raise ValueError("metric='oks' needs keypoints and scores")
        J = len(self.sigmas)
        keypoints = np.zeros((P, J, 2)) if keypoints is None else np.asarray(keypoints, dtype=np.float64)
        visible = np.zeros((P, J), dtype=bool) if scores is None else np.asarray(scores) >= self.keypoint_threshold
        if keypoints.shape != (P, J, 2) or visible.shape != (P, J):
            raise ValueError(
                f"keypoints must be ({P}, {J}, 2) and scores ({P}, {J}), got {keypoints.shape}, {visible.shape}"
            )

        alive = self._frame - self._last_seen <= self.max_age
        ids = np.full(P, -1, dtype=np.int64)
        if P and alive.any():
            similarity = self._similarity(boxes, keypoints, visible, alive)
            track_index = np.flatnonzero(alive)
            for flat in np.argsort(-similarity, axis=None, kind="stable"):
                p, t = divmod(int(flat), similarity.shape[1])
                if similarity[p, t] < self.threshold:
                    break
                if ids[p] < 0 and not np.any(ids == self._ids[track_index[t]]):
                    ids[p] = self._ids[track_index[t]]
        new = ids < 0
        ids[new] = np.arange(self._next_id, self._next_id + new.sum())
        self._next_id += int(new.sum())
        self._remember(ids, boxes, keypoints, visible)
        self._frame += 1
        return ids

    def _similarity(self, boxes, keypoints, visible, alive) -> npt.NDArray[np.float64]:
        iou = box_iou(boxes, self._boxes[alive])
        if self.metric == "iou":
            return iou
        areas = self._boxes[alive, 2] * self._boxes[alive, 3]
        oks = object_keypoint_similarity(
            keypoints,
            self._keypoints[alive],
            visible_a=visible,
            visible_b=self._visible[alive],
            areas_b=areas,
            sigmas=self.sigmas,
        )
        return np.where(np.isnan(oks), iou, oks)

    def _remember(self, ids, boxes, keypoints, visible) -> None:
        # Matched tracks take the new pose; unmatched old tracks keep theirs until they age out.
        keep = ~np.isin(self._ids, ids) & (self._frame - self._last_seen <= self.max_age)
        self._ids = np.concatenate([self._ids[keep], ids])
        self._boxes = np.concatenate([self._boxes[keep], boxes])
        self._keypoints = np.concatenate([self._keypoints[keep], keypoints])
        self._visible = np.concatenate([self._visible[keep], visible])
        self._last_seen = np.concatenate([self._last_seen[keep], np.full(len(ids), self._frame)])


def track_poses(poses: Sequence[Sequence[PersonPose]], metric: Literal["oks", "iou"]) -> list[list[PersonPose]]:
    """Give the poses of one sequence greedy track ids (a fresh `GreedyTracker` with `metric`).

    `poses` lists the frames in temporal order. A frame without poses still counts as a frame: a track not
    matched in it is no longer matched after `max_age` such frames.
    """
    tracker = GreedyTracker(metric=metric)
    J = len(tracker.sigmas)
    tracked = []
    for frame in poses:
        if not frame:
            tracker.update(np.zeros((0, 4)), np.zeros((0, J, 2)), np.zeros((0, J)))
            tracked.append([])
            continue
        ids = tracker.update(
            [p.bbox for p in frame], np.stack([p.keypoints for p in frame]), np.stack([p.scores for p in frame])
        )
        tracked.append([dataclasses.replace(p, track_id=int(i)) for p, i in zip(frame, ids, strict=True)])
    return tracked
