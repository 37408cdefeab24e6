"""The (score, label) samples the data-set-wide AP ranks, gathered match by match, and the result built on them."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from posetrack_eval.ap import joint_ap
from posetrack_eval.joints import NUM_EVAL_JOINTS
from posetrack_eval.matching import SequenceMatch
from posetrack_eval.mota import MotCounts
from posetrack_eval.ranking import TieOrder, mixed_ties
from posetrack_eval.result import SCORED_JOINT_NAMES, EvalResult, summarise

__all__ = ["Samples"]


class Samples:
    """(score, label) samples per joint, in poseval's order: sequence, frame, prediction (about 9 bytes each).

    They are kept as one pair of arrays per match added, joint after joint: few long-lived objects, so the
    memory that parsing frees between two matches is not pinned by small ones. ``sequence_sizes`` holds
    Int[k, 15] arrays, the samples of each joint of each sequence added, which tell whether a tie spans
    sequences; the caller appends them when the samples join several sequences.
    """

    def __init__(self, tie_order: TieOrder = "numpy1") -> None:
        # per match: scores Float[n], labels Bool[n] (joint 0's samples, then joint 1's, ...), counts Int[15]
        self.parts: list[tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_], npt.NDArray[np.int64]]] = []
        self.num_gt = np.zeros(NUM_EVAL_JOINTS, dtype=np.int64)
        self.tie_order: TieOrder = tie_order
        self.sequence_sizes: list[npt.NDArray[np.int64]] = []

    def add(
        self,
        match: SequenceMatch,
        preds: npt.NDArray[np.bool_] | None = None,
        gts: npt.NDArray[np.bool_] | None = None,
    ) -> None:
        """Add the samples of the predictions ``preds`` and the GT joints of the persons ``gts`` (all when None).

        Shapes:
            preds: Bool[n_pred]
            gts: Bool[n_gt]
        """
        has = match.pred.has if preds is None else match.pred.has & preds[:, None]
        joint_major = has.T
        self.parts.append((match.pred.score.T[joint_major], match.label.T[joint_major], has.sum(axis=0)))
        self.num_gt += match.num_gt if gts is None else match.gt.has[gts].sum(axis=0)

    def _joint(self, j: int) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
        """The samples of joint j: Float[S] scores and Bool[S] labels."""
        scores, labels = [np.zeros(0)], [np.zeros(0, dtype=bool)]
        for part_scores, part_labels, counts in self.parts:
            start = int(counts[:j].sum())
            scores.append(part_scores[start : start + counts[j]])
            labels.append(part_labels[start : start + counts[j]])
        return np.concatenate(scores), np.concatenate(labels)

    def _ties(self, j: int, scores: npt.NDArray[np.float64], labels: npt.NDArray[np.bool_]) -> tuple[bool, bool]:
        """Whether joint j has a tie of a true and a false positive, and whether one spans sequences."""
        mixed = mixed_ties(scores, labels)
        if not mixed.any():
            return False, False
        sizes = np.concatenate([np.zeros((0, NUM_EVAL_JOINTS), dtype=np.int64), *self.sequence_sizes])
        if len(sizes) < 2:
            return True, False
        # every sample of the data set is held meanwhile: each temporary is freed as soon as it is used
        index = np.flatnonzero(mixed)
        del mixed
        tied = scores[index]
        sequence = np.searchsorted(np.cumsum(sizes[:, j]), index, side="right").astype(np.int32)
        del index
        order = np.argsort(tied, kind="stable")
        tied = tied[order]
        sequence = sequence[order]
        del order
        return True, bool(((tied[1:] == tied[:-1]) & (sequence[1:] != sequence[:-1])).any())

    def result(
        self,
        protocol: str,
        num_frames: int,
        *,
        keep_curves: bool = False,
        mot: MotCounts | None = None,
        hota: dict[str, dict[str, float]] | None = None,
        undefined_without_gt: bool = False,
    ) -> EvalResult:
        """The figures; ``undefined_without_gt`` makes AP and recall NaN for joints without GT (subsets)."""
        figures, curves, tied, across = [], {}, [], []
        for j, name in enumerate(SCORED_JOINT_NAMES):
            scores, labels = self._joint(j)
            joint = joint_ap(scores, labels, float(self.num_gt[j]), recall_floor=protocol == "pt21",
                             tie_order=self.tie_order, keep_curve=keep_curves)  # fmt: skip
            figures.append((joint.ap, joint.precision, joint.recall))
            if keep_curves:  # two floats per sample: kept only when asked for
                curves[name] = (joint.curve_precision, joint.curve_recall)
            has_ties, spans = self._ties(j, scores, labels)
            tied += [name] if has_ties else []
            across += [name] if spans else []
        ap, precision, recall = np.array(figures).reshape(-1, 3).T
        if undefined_without_gt:
            ap[self.num_gt == 0] = recall[self.num_gt == 0] = np.nan
        fields: dict[str, Any] = {"hota": hota}
        if mot is not None:
            metrics = mot.metrics()
            fields |= {
                "mota": summarise(metrics["mota"], protocol),
                "mota_per_joint": dict(zip(SCORED_JOINT_NAMES, metrics["mota"].tolist(), strict=True)),
                "motp": summarise(metrics["motp"], protocol)["Total"],
                "precision": summarise(metrics["precision"], protocol)["Total"],
                "recall": summarise(metrics["recall"], protocol)["Total"],
            }
        return EvalResult(
            protocol=protocol,
            num_frames=num_frames,
            ap=summarise(ap, protocol),
            ap_per_joint=dict(zip(SCORED_JOINT_NAMES, ap.tolist(), strict=True)),
            ap_precision=summarise(precision, protocol),
            ap_recall=summarise(recall, protocol),
            curves=curves if keep_curves else None,
            tied_joints=tuple(tied),
            tied_across_sequences=tuple(across),
            **fields,
        )
