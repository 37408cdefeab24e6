"""Average precision per joint exactly as poseval's ``computeRPC`` + ``VOCap`` (and PoseTrack21's copy)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from posetrack_eval.ranking import TieOrder, descending_order

__all__ = ["JointAP", "joint_ap"]


@dataclass(frozen=True)
class JointAP:
    """AP, final precision and final recall of one joint (percent), and its precision-recall curve."""

    ap: float
    precision: float
    recall: float
    curve_precision: npt.NDArray[np.float64]
    curve_recall: npt.NDArray[np.float64]


def joint_ap(
    scores: npt.NDArray[np.float64],
    labels: npt.NDArray[np.bool_],
    num_gt: float,
    *,
    recall_floor: bool = False,
    tie_order: TieOrder = "numpy1",
    keep_curve: bool = True,
) -> JointAP:
    """All-point interpolated AP of one joint over every predicted joint of the data set.

    Samples (in poseval's order: sequence, frame, prediction) are ranked by descending score; tied scores
    rank as numpy 1.x's ``scores.argsort()[::-1]`` ranks them, on every numpy (:mod:`posetrack_eval.ranking`;
    ``tie_order="installed"`` uses this machine's numpy instead). With no samples AP, precision and recall
    are 0; with ``num_gt == 0`` recall is NaN (poseval divides by zero) unless ``recall_floor`` (PoseTrack21
    divides by ``max(num_gt, 1)``). Without ``keep_curve`` the curves are left empty (they take 16 bytes a
    sample; each temporary is freed as soon as it is used, since all samples of the data set are held too).

    Shapes:
        scores: Float[S]
        labels: Bool[S]
    """
    if len(scores) == 0:
        empty = np.zeros(0)
        return JointAP(0.0, 0.0, 0.0, empty, empty)
    true_pos = np.cumsum(labels[descending_order(scores, labels, tie_order)])
    with np.errstate(divide="ignore", invalid="ignore"):
        recall = true_pos / (np.float64(max(num_gt, 1)) if recall_floor else np.float64(num_gt))
    precision = np.arange(1, len(scores) + 1, dtype=np.float64)
    np.divide(true_pos, precision, out=precision)
    del true_pos
    final_precision, final_recall = float(precision[-1] * 100), float(recall[-1] * 100)
    mpre = np.concatenate([[0.0], precision, [0.0]])
    if not keep_curve:
        precision = np.zeros(0)
    mrec = np.concatenate([[0.0], recall, [1.0]])
    if not keep_curve:
        recall = np.zeros(0)
    np.maximum.accumulate(mpre[::-1], out=mpre[::-1])  # VOC's precision envelope, from the right
    # the sum over the points where recall changes of the recall step times the envelope there (VOCap)
    steps = np.diff(mrec)
    del mrec
    change = steps != 0  # where mrec[i] != mrec[i - 1] (NaN recall, with no GT, counts as a change)
    steps = steps[change]
    steps *= mpre[1:][change]
    return JointAP(float(np.sum(steps) * 100), final_precision, final_recall, precision, recall)
