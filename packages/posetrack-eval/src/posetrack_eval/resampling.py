"""AP of resampled data sets (the bootstrap over videos), exactly, from one scoring pass.

poseval matches predictions to GT persons frame by frame, then ranks every predicted joint of the data set by
score. A resample of the data set's sequences (some twice, some not at all) changes which samples and GT
joints count, never how a sample was matched. So the samples of one pass (each predicted joint's score,
true-positive flag, sequence and assigned GT person) and each GT person's joints are sufficient statistics:
``resampled_ap`` gives, for every resample at once, the AP poseval would compute on the data set with each
sequence repeated as often as the resample draws it (a sequence drawn k times is k copies of its samples and
GT joints, which is k-fold weights on the ranking of one pass), over all GT persons or over a subset of them
(``posetrack_eval.subsets``'s rule).

Samples are ranked once per call as ``evaluate`` ranks the data set (or the subset) scored once, tied scores
included (``posetrack_eval.ranking``); copies of one sample carry one label, so their order among themselves
does not move AP (ties between different samples could rank otherwise in a copied data set).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

from posetrack_eval.io import iter_ground_truth, read_json, sequence_predictions
from posetrack_eval.joints import NUM_EVAL_JOINTS
from posetrack_eval.matching import match_sequence
from posetrack_eval.ranking import TieOrder, descending_order
from posetrack_eval.records import EvalInputError

__all__ = ["JointSamples", "SequenceStatistics", "resampled_ap", "sequence_statistics"]


@dataclass(frozen=True)
class JointSamples:
    """The predicted joints of one joint type, in poseval's order (sequence, frame, prediction).

    Shapes:
        score: Float[S]
        label: Bool[S] (a true positive)
        sequence: Int[S] (index into ``SequenceStatistics.sequences``)
        person: Int[S] (the GT person, an index into ``SequenceStatistics.gt_*``, it was assigned to; -1: none)
    """

    score: npt.NDArray[np.float64]
    label: npt.NDArray[np.bool_]
    sequence: npt.NDArray[np.int64]
    person: npt.NDArray[np.int64]


@dataclass(frozen=True)
class SequenceStatistics:
    """Everything the AP of any multiset of the scored sequences needs.

    Shapes:
        joints: 15 ``JointSamples``, poseval's joint order
        gt_sequence: Int[P] (the sequence of each scored GT person)
        gt_id: Int[P] (its annotation ``id``; -1 where the GT has none, as PoseTrack17 annolist)
        gt_has: Bool[P, 15] (its annotated joints, after ignore regions)
    """

    sequences: tuple[str, ...]
    protocol: Literal["poseval", "pt21"]
    tie_order: TieOrder
    joints: tuple[JointSamples, ...]
    gt_sequence: npt.NDArray[np.int64]
    gt_id: npt.NDArray[np.int64]
    gt_has: npt.NDArray[np.bool_]


def sequence_statistics(
    gt: str | Path,
    predictions: str | Path,
    *,
    protocol: Literal["poseval", "pt21"] = "poseval",
    tie_order: TieOrder = "numpy1",
) -> SequenceStatistics:
    """Match every sequence as ``evaluate`` does and keep the samples and GT joints.

    Args:
        gt: A folder of per-sequence GT files (or one merged file).
        predictions: A per-sequence predictions folder, files named like the GT files (poseval's layout).
        protocol: ``"poseval"`` or ``"pt21"`` (frame selection, joint presence and the recall divisor).
        tie_order: How tied scores rank (``evaluate``'s argument).

    Raises:
        EvalInputError: a missing or malformed file (names it and the field).
    """
    names, scores, labels, sequences, persons = [], [], [], [], []
    gt_sequence, gt_id, gt_has = [], [], []
    num_persons = 0
    for index, gt_seq in enumerate(iter_ground_truth(Path(gt))):
        path = Path(predictions) / f"{gt_seq.name}.json"
        if not path.is_file():
            raise EvalInputError(path, "file", f"missing: no predictions for GT sequence {gt_seq.source}")
        match = match_sequence(gt_seq, sequence_predictions(read_json(path), str(path), gt_seq), protocol)
        has = match.pred.has
        assigned = np.where(match.assigned >= 0, match.assigned + num_persons, -1)
        scores.append([match.pred.score[has[:, j], j] for j in range(NUM_EVAL_JOINTS)])
        labels.append([match.label[has[:, j], j] for j in range(NUM_EVAL_JOINTS)])
        persons.append([assigned[has[:, j]] for j in range(NUM_EVAL_JOINTS)])
        sequences.append([np.full(int(has[:, j].sum()), index) for j in range(NUM_EVAL_JOINTS)])
        ids = gt_seq.annotation_ids
        gt_id.append(ids[match.gt.person] if ids is not None else np.full(len(match.gt.person), -1))
        gt_has.append(match.gt.has)
        gt_sequence.append(np.full(len(match.gt.person), index))
        num_persons += len(match.gt.person)
        names.append(gt_seq.name)
    columns, dtypes = (scores, labels, sequences, persons), (np.float64, np.bool_, np.int64, np.int64)
    joints = tuple(
        JointSamples(*(_joined(parts, j, dtype) for parts, dtype in zip(columns, dtypes, strict=True)))
        for j in range(NUM_EVAL_JOINTS)
    )
    return SequenceStatistics(
        sequences=tuple(names),
        protocol=protocol,
        tie_order=tie_order,
        joints=joints,
        gt_sequence=np.concatenate([np.zeros(0, np.int64), *gt_sequence]),
        gt_id=np.concatenate([np.zeros(0, np.int64), *gt_id]).astype(np.int64),
        gt_has=np.concatenate([np.zeros((0, NUM_EVAL_JOINTS), bool), *gt_has]),
    )


def _joined(parts: list[list[npt.NDArray]], j: int, dtype: type) -> npt.NDArray:
    return np.concatenate([np.zeros(0, dtype), *(part[j] for part in parts)]).astype(dtype)


def resampled_ap(
    stats: SequenceStatistics, counts: npt.NDArray[np.int64], *, subset: Sequence[int] | None = None
) -> npt.NDArray[np.float64]:
    """The Total AP (percent) of each resample: the data set with sequence q repeated ``counts[b, q]`` times.

    With ``subset`` (GT annotation ids), the AP over those persons as ``evaluate(subset=...)`` scores it:
    predictions assigned to other GT persons are ignored, unassigned ones stay false positives, a joint without
    GT is NaN. Without it, poseval's plain AP: a joint without GT is NaN (0 when it has no samples either, and
    with ``pt21`` recall divides by at least 1). Total is the mean of the joints that are not NaN.

    Shapes:
        counts: Int[B, Q] (Q = ``len(stats.sequences)``; all ones is the data set itself) -> Float[B]
    """
    counts = np.asarray(counts, dtype=np.float64)
    if counts.ndim != 2 or counts.shape[1] != len(stats.sequences):
        raise ValueError(f"counts must be (resamples, {len(stats.sequences)}), got {counts.shape}")
    chosen = np.ones(len(stats.gt_id), dtype=bool) if subset is None else np.isin(stats.gt_id, np.asarray(subset))
    chosen_or_none = np.append(chosen, True)  # person -1 (unassigned) indexes the last entry: always kept
    per_joint = np.empty((len(counts), NUM_EVAL_JOINTS))
    for j, samples in enumerate(stats.joints):
        gt_joints = np.bincount(stats.gt_sequence[chosen & stats.gt_has[:, j]], minlength=len(stats.sequences))
        kept = np.flatnonzero(chosen_or_none[samples.person])
        kept = kept[descending_order(samples.score[kept], samples.label[kept], stats.tie_order)]
        weight = counts[:, samples.sequence[kept]]  # Float[B, S]: the copies of each ranked sample
        ap = _weighted_voc_ap(weight, samples.label[kept], counts @ gt_joints, pt21=stats.protocol == "pt21")
        if subset is not None:
            ap[counts @ gt_joints == 0] = np.nan  # a joint the subset lacks is undefined, as evaluate(subset=...)
        per_joint[:, j] = ap
    defined = ~np.isnan(per_joint)
    return np.where(defined, per_joint, 0).sum(axis=1) / np.where(defined.any(axis=1), defined.sum(axis=1), np.nan)


def _weighted_voc_ap(
    weight: npt.NDArray[np.float64], label: npt.NDArray[np.bool_], num_gt: npt.NDArray[np.float64], *, pt21: bool
) -> npt.NDArray[np.float64]:
    """The VOC all-point AP of poseval (``posetrack_eval.ap``) of ranked samples standing for ``weight`` copies.

    A run of k copies of a true positive adds k / num_gt recall at the precision of its last copy, which is
    what the envelope gives each copy (precision rises along the run); a run of false positives adds no recall
    and never lifts the envelope above the point before it. So the weighted curve's AP is the copies' AP.
    Without samples AP is 0; with ``num_gt == 0`` it is NaN (poseval divides by zero) unless ``pt21``.

    Shapes:
        weight: Float[B, S]; label: Bool[S]; num_gt: Float[B] -> Float[B]
    """
    true_pos = np.cumsum(weight * label, axis=1)
    ranked = np.cumsum(weight, axis=1)
    divisor = np.maximum(num_gt, 1.0) if pt21 else num_gt
    with np.errstate(divide="ignore", invalid="ignore"):
        recall = true_pos / divisor[:, None]
        precision = np.where(ranked > 0, true_pos / ranked, 0.0)  # before the first copy: the curve's 0 start
    edge = np.zeros((len(weight), 1))
    envelope = np.maximum.accumulate(np.concatenate([precision, edge], axis=1)[:, ::-1], axis=1)[:, ::-1]
    steps = np.diff(np.concatenate([edge, recall, edge + 1.0], axis=1), axis=1)
    ap = np.sum(steps * envelope, axis=1) * 100
    ap[np.sum(weight, axis=1) == 0] = 0.0
    return ap
