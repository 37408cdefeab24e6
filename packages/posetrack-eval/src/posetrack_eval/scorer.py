"""``evaluate``: stream the sequences, match them, and reduce to poseval's figures."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from posetrack_eval.ap import joint_ap
from posetrack_eval.io import (
    EvalInputError,
    GroundTruthSequence,
    MergedPredictions,
    Persons,
    ground_truth_files,
    iter_ground_truth,
    load_predictions,
    read_json,
    sequence_predictions,
)
from posetrack_eval.joints import NUM_EVAL_JOINTS
from posetrack_eval.matching import SequenceMatch, match_sequence, scored_frames
from posetrack_eval.mota import MotCounts, sequence_mot_counts
from posetrack_eval.ranking import TieOrder, mixed_ties
from posetrack_eval.records import concat_ground_truth, concat_persons
from posetrack_eval.result import SCORED_JOINT_NAMES, EvalResult, summarise
from posetrack_eval.subsets import Subsets, load_subsets

__all__ = ["evaluate"]

logger = logging.getLogger(__name__)

Protocol = Literal["poseval", "pt21"]


class _Samples:
    """(score, label) samples per joint, in poseval's order: sequence, frame, prediction."""

    def __init__(self, tie_order: TieOrder = "numpy1") -> None:
        self.scores: list[list[npt.NDArray[np.float64]]] = [[] for _ in range(NUM_EVAL_JOINTS)]
        self.labels: list[list[npt.NDArray[np.bool_]]] = [[] for _ in range(NUM_EVAL_JOINTS)]
        self.num_gt = np.zeros(NUM_EVAL_JOINTS, dtype=np.int64)
        self.tie_order: TieOrder = tie_order
        # Int[sequences, joints] of predicted joints per sequence, when the samples join several sequences
        self.sequence_sizes: Callable[[], npt.NDArray[np.int64]] | None = None
        self._sizes: npt.NDArray[np.int64] | None = None

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
        has, score = match.pred.has, match.pred.score
        if preds is not None:
            has = has & preds[:, None]
        for j in range(NUM_EVAL_JOINTS):
            self.scores[j].append(score[has[:, j], j])
            self.labels[j].append(match.label[has[:, j], j])
        self.num_gt += match.num_gt if gts is None else match.gt.has[gts].sum(axis=0)

    def _ties(self, j: int, scores: npt.NDArray[np.float64], labels: npt.NDArray[np.bool_]) -> tuple[bool, bool]:
        """Whether joint j has a tie of a true and a false positive, and whether one spans sequences."""
        mixed = mixed_ties(scores, labels)
        if not mixed.any():
            return False, False
        if self.sequence_sizes is None:
            return True, False
        if self._sizes is None:
            self._sizes = self.sequence_sizes()
        sequence = np.repeat(np.arange(len(self._sizes)), self._sizes[:, j])
        _, group = np.unique(scores[mixed], return_inverse=True)
        first = np.full(group.max() + 1, -1)
        first[group[::-1]] = sequence[mixed][::-1]  # the first sequence of each tied group
        return True, bool((sequence[mixed] != first[group]).any())

    def result(
        self,
        protocol: str,
        num_frames: int,
        keep_curves: bool,
        mot: MotCounts | None,
        undefined_without_gt: bool = False,
    ) -> EvalResult:
        """The figures; ``undefined_without_gt`` makes AP and recall NaN for joints without GT (subsets)."""
        aps, tied, across = [], [], []
        for j, name in enumerate(SCORED_JOINT_NAMES):
            scores, labels = np.concatenate(self.scores[j]), np.concatenate(self.labels[j])
            aps.append(joint_ap(scores, labels, float(self.num_gt[j]), recall_floor=protocol == "pt21",
                                tie_order=self.tie_order))  # fmt: skip
            has_ties, spans = self._ties(j, scores, labels)
            tied += [name] if has_ties else []
            across += [name] if spans else []
        ap = np.array([a.ap for a in aps])
        recall = np.array([a.recall for a in aps])
        if undefined_without_gt:
            ap[self.num_gt == 0] = recall[self.num_gt == 0] = np.nan
        fields: dict[str, Any] = {}
        if mot is not None:
            metrics = mot.metrics()
            fields = {
                "mota": summarise(metrics["mota"], protocol),
                "mota_per_joint": dict(zip(SCORED_JOINT_NAMES, metrics["mota"].tolist(), strict=True)),
                "motp": summarise(metrics["motp"], protocol)["Total"],
                "precision": summarise(metrics["precision"], protocol)["Total"],
                "recall": summarise(metrics["recall"], protocol)["Total"],
            }
        curves = None
        if keep_curves:
            curves = {
                name: (a.curve_precision, a.curve_recall) for name, a in zip(SCORED_JOINT_NAMES, aps, strict=True)
            }
        return EvalResult(
            protocol=protocol,
            num_frames=num_frames,
            ap=summarise(ap, protocol),
            ap_per_joint=dict(zip(SCORED_JOINT_NAMES, ap.tolist(), strict=True)),
            ap_precision=summarise(np.array([a.precision for a in aps]), protocol),
            ap_recall=summarise(recall, protocol),
            curves=curves,
            tied_joints=tuple(tied),
            tied_across_sequences=tuple(across),
            **fields,
        )


def _predictions_for(source: MergedPredictions | Path, gt: GroundTruthSequence) -> Persons:
    if isinstance(source, MergedPredictions):
        return source.for_sequence(gt)
    path = source / f"{gt.name}.json"
    if not path.is_file():
        raise EvalInputError(path, "file", f"missing: no predictions for GT sequence {gt.source}")
    return sequence_predictions(read_json(path), str(path), gt)


def _progress_bar(total: int) -> Any:
    from tqdm.auto import tqdm  # imported here: it costs more than the rest of the start-up

    # disable=None: tqdm hides itself when stderr is not a terminal
    return tqdm(total=total, desc="posetrack-eval", unit="file", disable=None)


def _check_tracks(gt: GroundTruthSequence, pred: Persons, pred_source: str, protocol: Protocol) -> None:
    frames = scored_frames(gt, protocol)
    for persons, source in ((gt.persons, gt.source), (pred, pred_source)):
        rows = np.concatenate([np.arange(persons.frame_ptr[f], persons.frame_ptr[f + 1]) for f in frames] or [[]])
        if not persons.has_track[rows.astype(np.int64)].all():
            raise EvalInputError(source, "track_id", "missing on some persons (needed for --tracking)")


def _check_identified(gt: GroundTruthSequence) -> None:
    """Subsets name GT persons by annotation id: every GT annotation needs one."""
    if gt.annolist:
        raise EvalInputError(gt.source, "annolist", "PoseTrack17 GT has no annotation ids to select subsets by")
    if gt.annotation_ids is None:
        raise EvalInputError(gt.source, gt.unidentified or "annotations", "missing (subsets select GT persons by id)")


def _subset_results(
    subsets: Subsets, gt: GroundTruthSequence, match: SequenceMatch, protocol: Protocol, tie_order: TieOrder
) -> dict[str, EvalResult]:
    """AP over each subset: predictions assigned to GT persons outside it are ignored (see posetrack_eval.subsets)."""
    assert gt.annotation_ids is not None
    subsets.check_ids(gt.annotation_ids)
    scored_ids = gt.annotation_ids[match.gt.person]
    results = {}
    for name, ids in subsets.ids.items():
        chosen = np.isin(scored_ids, ids)
        assigned = match.assigned
        kept = (assigned < 0) | chosen[np.maximum(assigned, 0)]
        samples = _Samples(tie_order)
        samples.add(match, preds=kept, gts=chosen)
        results[name] = samples.result(protocol, match.num_frames, False, None, undefined_without_gt=True)
    return results


def evaluate(
    gt: str | Path,
    predictions: str | Path | list[dict[str, Any]] | dict[str, Any],
    *,
    protocol: Protocol = "poseval",
    tracking: bool = False,
    per_sequence: bool = False,
    progress: bool = False,
    keep_curves: bool = False,
    tie_order: TieOrder = "numpy1",
    subset: str | Path | list[int] | dict[str, list[int]] | None = None,
) -> EvalResult:
    """Score pose predictions against PoseTrack ground truth exactly as poseval (or PoseTrack21's scorer) does.

    Args:
        gt: a folder of per-sequence GT files (PoseTrack17 annolist or PoseTrack18/21 JSON), or one merged file.
        predictions: a per-sequence folder (files named like the GT files, frames paired by position as in
            poseval), a merged PoseTrack18-style file, a COCO keypoint results list file keyed by ``image_id``,
            or the same two as in-memory objects. GT frames without predictions have no predictions.
        protocol: ``"poseval"`` (default) or ``"pt21"`` (the PoseTrack21 mAP variant).
        tracking: also compute MOTA, MOTP, precision and recall (poseval protocol only).
        per_sequence: also score each sequence on its own.
        progress: show a progress bar over the sequences.
        keep_curves: keep each joint's precision-recall curve in the result (for plotting).
        tie_order: how tied scores rank: ``"numpy1"`` (default) as numpy 1.x's argsort, on any numpy;
            ``"installed"`` as this machine's numpy (see :mod:`posetrack_eval.ranking`).
        subset: also score AP over subsets of GT persons (:mod:`posetrack_eval.subsets`): a list of GT
            annotation ids, a map name -> list, or a JSON file holding either. Needs PoseTrack18/21 GT.

    Returns:
        The figures, in percent.

    Raises:
        EvalInputError: a file or object that is not valid PoseTrack data (a ValueError).
        ValueError: an invalid argument.
    """
    if protocol not in ("poseval", "pt21"):
        raise ValueError(f"protocol must be 'poseval' or 'pt21', got {protocol!r}")
    if tracking and protocol == "pt21":
        raise ValueError("tracking=True is poseval's MOTA; PoseTrack21 tracking (HOTA) is not implemented")
    if not isinstance(predictions, str | Path | list | dict):
        raise TypeError(f"predictions must be a path, a list or a dict, got {type(predictions).__name__}")
    gt_path = Path(gt)
    pred_source = load_predictions(predictions)
    if tie_order not in ("numpy1", "installed"):
        raise ValueError(f"tie_order must be 'numpy1' or 'installed', got {tie_order!r}")
    subsets = load_subsets(subset) if subset is not None else None
    files = ground_truth_files(gt_path)
    bar = _progress_bar(len(files)) if progress and len(files) >= 2 else None
    gt_seqs, preds = [], []
    for gt_seq in iter_ground_truth(gt_path):
        if protocol == "pt21" and gt_seq.unflagged_frame is not None:
            field = f"images[{gt_seq.unflagged_frame}].is_labeled"
            raise EvalInputError(gt_seq.source, field, "missing (the pt21 protocol scores the flagged frames)")
        if protocol == "pt21" and gt_seq.annolist:
            raise EvalInputError(gt_seq.source, "annolist", "the PoseTrack21 protocol reads PoseTrack18/21 JSON only")
        if subsets is not None:
            _check_identified(gt_seq)
        pred = _predictions_for(pred_source, gt_seq)
        if tracking:
            _check_tracks(
                gt_seq, pred, str(pred_source if isinstance(pred_source, Path) else pred_source.source), protocol
            )
        gt_seqs.append(gt_seq)
        preds.append(pred)
        if bar is not None:
            bar.update()
        logger.debug("read %s: %d frames", gt_seq.name, gt_seq.num_frames)
    if bar is not None:
        bar.close()
    # frames are independent: all sequences are matched in one pass (numpy's per-call cost paid once)
    all_gt = concat_ground_truth(gt_seqs)
    match = match_sequence(all_gt, concat_persons(preds), protocol)
    total = _Samples(tie_order)
    total.add(match)
    stops = np.cumsum([len(scored_frames(gt_seq, protocol)) for gt_seq in gt_seqs]).tolist()
    bounds = list(zip([0, *stops], stops, strict=False))  # (first, end) scored frame of each sequence
    # per sequence, predicted joints of each joint: told only when a tie needs it (see _Samples._ties)
    total.sequence_sizes = lambda: np.array(
        [match.frames(a, b, g.name).pred.has.sum(axis=0) for (a, b), g in zip(bounds, gt_seqs, strict=True)]
    ).reshape(len(gt_seqs), -1)
    mot_total = MotCounts() if tracking else None
    sequences: dict[str, EvalResult] = {}
    if tracking or per_sequence:
        start = 0
        for gt_seq in gt_seqs:
            stop = start + len(scored_frames(gt_seq, protocol))
            seq_match = match.frames(start, stop, gt_seq.name)
            start = stop
            seq_mot = sequence_mot_counts(seq_match) if tracking else None
            if mot_total is not None and seq_mot is not None:
                mot_total += seq_mot
            if per_sequence:
                own = _Samples(tie_order)
                own.add(seq_match)
                sequences[gt_seq.name] = own.result(protocol, seq_match.num_frames, False, seq_mot)
    if isinstance(pred_source, MergedPredictions):
        pred_source.check_all_used()
    result = total.result(protocol, match.num_frames, keep_curves, mot_total)
    if per_sequence:
        result = EvalResult(**{**result.__dict__, "per_sequence": sequences})
    if subsets is not None:
        result = EvalResult(
            **{**result.__dict__, "subsets": _subset_results(subsets, all_gt, match, protocol, tie_order)}
        )
    return result
