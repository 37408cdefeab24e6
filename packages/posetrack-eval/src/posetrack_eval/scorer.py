"""``evaluate``: stream the sequences, match them a chunk at a time, and reduce to the reference scorers' figures.

Memory is bounded by a chunk of sequences (about ``MATCH_BLOCK_PAIRS`` prediction-GT pairs and persons, or one
sequence if larger) and by what the figures keep for the whole data set: the (score, label) sample of every
predicted joint for the AP ranking, small per-sequence counters for MOTA and HOTA, and per subset its samples.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Literal

import numpy as np

from posetrack_eval.hota import HotaTotals, hota_summary, sequence_hota
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
from posetrack_eval.matching import MATCH_BLOCK_PAIRS, SequenceMatch, match_sequence, scored_frames
from posetrack_eval.mota import MotCounts, sequence_mot_counts
from posetrack_eval.ranking import TieOrder
from posetrack_eval.records import concat_ground_truth, concat_persons
from posetrack_eval.result import EvalResult
from posetrack_eval.samples import Samples
from posetrack_eval.subsets import Subsets, load_subsets

__all__ = ["evaluate"]

logger = logging.getLogger(__name__)

Protocol = Literal["poseval", "pt21"]


class _Scoring:
    """What the figures need, gathered chunk by chunk of sequences (the chunks are then dropped)."""

    def __init__(
        self, protocol: Protocol, tracking: bool, per_sequence: bool, tie_order: TieOrder, subsets: Subsets | None
    ) -> None:
        self.protocol: Protocol = protocol
        self.tie_order: TieOrder = tie_order
        self.samples = Samples(tie_order)
        self.num_frames = 0
        self.mot = MotCounts() if tracking and protocol == "poseval" else None
        self.hota = HotaTotals() if tracking and protocol == "pt21" else None
        self.sequences: dict[str, EvalResult] | None = {} if per_sequence else None
        self.subsets = subsets
        self.subset_samples = {name: Samples(tie_order) for name in subsets.ids} if subsets else {}
        self.subset_found = (
            {name: np.zeros(len(ids), dtype=np.int64) for name, ids in subsets.ids.items()} if subsets else {}
        )

    def add(self, chunk: list[tuple[GroundTruthSequence, Persons]]) -> None:
        """Match a chunk of sequences in one pass (numpy's per-call costs paid once) and keep what the figures need."""
        gt = concat_ground_truth([gt_seq for gt_seq, _ in chunk])
        match = match_sequence(gt, concat_persons([pred for _, pred in chunk]), self.protocol)
        self.samples.add(match)
        self.num_frames += match.num_frames
        if self.subsets is not None:
            self._add_subsets(gt, match)
        start, sizes = 0, []
        for gt_seq, _ in chunk:
            stop = start + len(scored_frames(gt_seq, self.protocol))
            seq_match = match.frames(start, stop, gt_seq.name)
            start = stop
            sizes.append(seq_match.pred.has.sum(axis=0))
            mot = sequence_mot_counts(seq_match) if self.mot is not None else None
            if mot is not None:
                self.mot += mot
            hota = sequence_hota(seq_match) if self.hota is not None else None
            if hota is not None:
                self.hota.add(hota)
            if self.sequences is not None:
                own = Samples(self.tie_order)
                own.add(seq_match)
                self.sequences[gt_seq.name] = own.result(
                    self.protocol, seq_match.num_frames, mot=mot, hota=None if hota is None else hota_summary(hota)
                )
        self.samples.sequence_sizes.append(np.array(sizes).reshape(-1, NUM_EVAL_JOINTS))

    def _add_subsets(self, gt: GroundTruthSequence, match: SequenceMatch) -> None:
        """Per subset: the samples of predictions assigned to its persons or to none, and its persons' GT joints."""
        assert self.subsets is not None
        assert gt.annotation_ids is not None  # checked per sequence (_check_identified)
        for name, found in self.subsets.occurrences(gt.annotation_ids).items():
            self.subset_found[name] += found
        scored_ids = gt.annotation_ids[match.gt.person]
        for name, ids in self.subsets.ids.items():
            chosen = np.isin(scored_ids, ids)
            kept = match.assigned < 0  # unassigned predictions stay false positives
            kept[~kept] = chosen[match.assigned[~kept]]
            self.subset_samples[name].add(match, preds=kept, gts=chosen)

    def result(self, keep_curves: bool) -> EvalResult:
        hota = hota_summary(self.hota.fields()) if self.hota is not None else None
        result = self.samples.result(self.protocol, self.num_frames, keep_curves=keep_curves, mot=self.mot, hota=hota)
        extra: dict[str, Any] = {}
        if self.sequences is not None:
            extra["per_sequence"] = self.sequences
        if self.subsets is not None:
            self.subsets.check(self.subset_found)
            extra["subsets"] = {
                name: samples.result(self.protocol, self.num_frames, undefined_without_gt=True)
                for name, samples in self.subset_samples.items()
            }
        return EvalResult(**{**result.__dict__, **extra}) if extra else result


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
    """Tracking needs a track id on every person of the scored frames; HOTA also unique, non-negative GT ids."""
    frames = scored_frames(gt, protocol)
    for persons, source in ((gt.persons, gt.source), (pred, pred_source)):
        rows = np.concatenate([np.arange(persons.frame_ptr[f], persons.frame_ptr[f + 1]) for f in frames] or [[]])
        rows = rows.astype(np.int64)
        if not persons.has_track[rows].all():
            raise EvalInputError(source, "track_id", "missing on some persons (needed for --tracking)")
        if protocol != "pt21":
            continue
        if (persons.track[rows] < 0).any():
            # the PoseTrack21 scorer indexes an array by track id: a negative one silently merges with another
            raise EvalInputError(source, "track_id", f"{persons.track[rows].min()} is negative")
        frame = np.repeat(np.arange(len(frames)), persons.frame_ptr[frames + 1] - persons.frame_ptr[frames])
        pairs = np.unique(np.stack([frame, persons.track[rows]]), axis=1)
        if pairs.shape[1] < len(rows):
            problem = "a track id appears twice in one frame (the PoseTrack21 scorer refuses it)"
            raise EvalInputError(source, "track_id", problem)


def _check_identified(gt: GroundTruthSequence) -> None:
    """Subsets name GT persons by annotation id: every GT annotation needs one."""
    if gt.annolist:
        raise EvalInputError(gt.source, "annolist", "PoseTrack17 GT has no annotation ids to select subsets by")
    if gt.annotation_ids is None:
        raise EvalInputError(gt.source, gt.unidentified or "annotations", "missing (subsets select GT persons by id)")


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
        protocol: ``"poseval"`` (default) or ``"pt21"`` (PoseTrack21's mAP variant, and its HOTA with tracking).
        tracking: also score tracking: poseval's MOTA, MOTP, precision and recall, or with ``protocol="pt21"``
            PoseTrack21's keypoint HOTA (:mod:`posetrack_eval.hota`).
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
    if not isinstance(predictions, str | Path | list | dict):
        raise TypeError(f"predictions must be a path, a list or a dict, got {type(predictions).__name__}")
    gt_path = Path(gt)
    pred_source = load_predictions(predictions)
    if tie_order not in ("numpy1", "installed"):
        raise ValueError(f"tie_order must be 'numpy1' or 'installed', got {tie_order!r}")
    subsets = load_subsets(subset) if subset is not None else None
    files = ground_truth_files(gt_path)
    bar = _progress_bar(len(files)) if progress and len(files) >= 2 else None
    pred_name = str(pred_source if isinstance(pred_source, Path) else pred_source.source)
    scoring = _Scoring(protocol, tracking, per_sequence, tie_order, subsets)
    chunk: list[tuple[GroundTruthSequence, Persons]] = []
    size = 0
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
            _check_tracks(gt_seq, pred, pred_name, protocol)
        chunk.append((gt_seq, pred))
        # prediction-GT pairs (an upper bound: all frames) and persons: what matching the chunk holds
        size += int(np.diff(gt_seq.persons.frame_ptr) @ np.diff(pred.frame_ptr)) + len(gt_seq.persons.head)
        size += len(pred.head)
        if size >= MATCH_BLOCK_PAIRS:
            scoring.add(chunk)
            chunk, size = [], 0
        if bar is not None:
            bar.update()
        logger.debug("read %s: %d frames", gt_seq.name, gt_seq.num_frames)
    if chunk:
        scoring.add(chunk)
    if bar is not None:
        bar.close()
    if isinstance(pred_source, MergedPredictions):
        pred_source.check_all_used()
    return scoring.result(keep_curves)
