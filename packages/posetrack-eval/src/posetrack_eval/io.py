"""Load PoseTrack ground truth and predictions in every format poseval reads into per-sequence arrays.

Formats: PoseTrack17 ``annolist`` files, PoseTrack18/21 COCO-like files (``images`` + ``annotations`` +
``categories``), one per video or merged, and COCO keypoint results (a list keyed by ``image_id``).
Everything is normalised to 15 scored joints in the 17-slot order without the ears
(``joints.PT21_FROM_SLOT17``). Nothing here applies scoring rules; ``matching`` does.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from posetrack_eval._parse import column, frames_of, int_array, labeller, read_json, unique_ids
from posetrack_eval.annolist import annolist_frames, annolist_ground_truth, annolist_persons
from posetrack_eval.coco import (
    INTERNAL_FROM_SLOT17,
    coco_annotations,
    coco_ground_truth,
    coco_images,
    coco_persons,
    slot_table,
)
from posetrack_eval.records import MISSING_SCORE, EvalInputError, GroundTruthSequence, Persons

__all__ = [
    "MISSING_SCORE",
    "EvalInputError",
    "GroundTruthSequence",
    "MergedPredictions",
    "Persons",
    "ground_truth_files",
    "iter_ground_truth",
    "load_predictions",
    "read_json",
    "sequence_predictions",
]


def _gt_sequences_of(data: Any, source: str, name: str) -> list[GroundTruthSequence]:
    if isinstance(data, dict) and "annolist" in data:
        return [annolist_ground_truth(data, source, name)]
    if isinstance(data, dict) and "images" in data:
        return coco_ground_truth(data, source, name)
    raise EvalInputError(source, "file", "expected a PoseTrack object with 'annolist' or 'images' + 'annotations'")


def ground_truth_files(gt: Path) -> list[Path]:
    """The GT files: every ``*.json`` of a folder (sorted by name), or the one file given."""
    if gt.is_dir():
        files = sorted(gt.glob("*.json"))
        if not files:
            raise EvalInputError(gt, "folder", "no *.json ground-truth files")
        return files
    if not gt.exists():
        raise EvalInputError(gt, "path", "does not exist")
    return [gt]


def iter_ground_truth(gt: Path) -> Iterator[GroundTruthSequence]:
    """Yield the GT sequences one file at a time (memory stays at one file), sorted by sequence name."""
    files = ground_truth_files(gt)
    if len(files) == 1 and not gt.is_dir():
        yield from _gt_sequences_of(read_json(files[0]), str(files[0]), "")
        return
    for path in files:
        sequences = _gt_sequences_of(read_json(path), str(path), path.stem)
        if len(sequences) != 1:
            names = ", ".join(s.name for s in sequences[:3])
            raise EvalInputError(path, "images", f"a per-sequence file holds several videos ({names}, ...)")
        sequences[0].name = path.stem
        yield sequences[0]


def _check_unique_tracks(persons: Persons, source: str) -> None:
    """Poseval rejects a prediction frame that repeats a track id."""
    if not persons.has_track.any():
        return
    frame = np.repeat(np.arange(persons.num_frames), np.diff(persons.frame_ptr))
    rows = np.flatnonzero(persons.has_track)
    frame, track = frame[rows], persons.track[rows]
    order = np.lexsort((track, frame))  # a plain sort of (frame, track) pairs: np.unique(axis=0) is ~10x slower
    frame, track = frame[order], track[order]
    repeated = (frame[1:] == frame[:-1]) & (track[1:] == track[:-1])
    if repeated.any():
        k = int(np.argmax(repeated))
        raise EvalInputError(source, "track_id", f"track id {track[k]} appears twice in frame {frame[k]}")


def sequence_predictions(data: Any, source: str, gt: GroundTruthSequence) -> Persons:
    """Predictions of one per-sequence file, paired with the GT frames by position as poseval does."""
    if isinstance(data, dict) and "annolist" in data:
        frames = annolist_frames(data, source)
        persons, _ = annolist_persons(frames, source, ground_truth=False)
    elif isinstance(data, dict) and "images" in data:
        images = coco_images(data, source)
        anns = coco_annotations(data, source)
        label = labeller("annotations")
        image_ids = int_array(column(images, "id", source, labeller("images")), source, lambda k: f"images[{k}].id")
        unique_ids(image_ids, source, lambda k: f"images[{k}].id", "image id")
        ann_image_ids = int_array(column(anns, "image_id", source, label), source, lambda k: f"{label(k)}.image_id")
        frame_of = frames_of(image_ids, ann_image_ids, source, label)
        persons = coco_persons(anns, frame_of, len(images), slot_table(data, source), source, ground_truth=False,
                                prefix="annotations")  # fmt: skip
    else:
        raise EvalInputError(source, "file", "expected a PoseTrack object with 'annolist' or 'images' + 'annotations'")
    if persons.num_frames != gt.num_frames:
        field_name = "annolist" if "annolist" in data else "images"
        problem = f"{persons.num_frames} frames for {gt.num_frames} GT frames of {gt.name} (poseval pairs by position)"
        raise EvalInputError(source, field_name, problem)
    _check_unique_tracks(persons, source)
    return persons


class MergedPredictions:
    """Predictions keyed by image (a merged PoseTrack18 file, a COCO results list, or the same in memory)."""

    def __init__(self, data: Any, source: str):
        self.source = source
        table = INTERNAL_FROM_SLOT17
        if isinstance(data, dict) and "annotations" in data:
            anns = coco_annotations(data, source)
            table = slot_table(data, source)
            self.id_of_file_name: dict[str, int] = {}
            if "images" in data:
                images = coco_images(data, source)
                label = labeller("images")
                ids = int_array(column(images, "id", source, label), source, lambda k: f"{label(k)}.id").tolist()
                names = [im.get("file_name") for im in images]
                self.id_of_file_name = {n: i for n, i in zip(names, ids, strict=True) if isinstance(n, str)}
            self.prefix = "annotations"
        elif isinstance(data, list):
            anns = data
            for i, ann in enumerate(anns):
                if not isinstance(ann, dict):
                    raise EvalInputError(source, f"[{i}]", f"expected an object, got {type(ann).__name__}")
            self.id_of_file_name = {}
            self.prefix = ""
        else:
            raise EvalInputError(source, "file", "expected a COCO results list or an object with 'annotations'")
        self.anns, self.table = anns, table
        label = labeller(self.prefix)
        self.image_ids = int_array(column(anns, "image_id", source, label), source, lambda k: f"{label(k)}.image_id")
        # annotations grouped by image id (stable: persons keep their order within an image)
        self.by_image = np.argsort(self.image_ids, kind="stable")
        self.sorted_ids = self.image_ids[self.by_image]
        self.used = np.zeros(len(anns), dtype=bool)

    def for_sequence(self, gt: GroundTruthSequence) -> Persons:
        if gt.image_ids is not None:
            keys = gt.image_ids
        else:
            if not self.id_of_file_name:
                problem = f"GT {gt.source} is annolist (no image ids): give images[].file_name or a per-sequence folder"
                raise EvalInputError(self.source, "image_id", problem)
            keys = np.array([self.id_of_file_name.get(name, -(2**63)) for name in gt.file_names], dtype=np.int64)
        lo = np.searchsorted(self.sorted_ids, keys, side="left")
        hi = np.searchsorted(self.sorted_ids, keys, side="right")
        counts = hi - lo
        mine = self.by_image[
            np.repeat(lo - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts) + np.arange(counts.sum())
        ]
        frame_of_ann = np.repeat(np.arange(gt.num_frames), counts)
        self.used[mine] = True
        persons = coco_persons(
            [self.anns[i] for i in mine.tolist()], frame_of_ann, gt.num_frames, self.table, self.source,
            ground_truth=False, prefix=self.prefix, indices=mine,
        )  # fmt: skip
        _check_unique_tracks(persons, self.source)
        return persons

    def check_all_used(self) -> None:
        if not self.used.all():
            i = int(np.flatnonzero(~self.used)[0])
            raise EvalInputError(
                self.source, f"{self.prefix}[{i}].image_id", f"{self.image_ids[i]} is not an image of the ground truth"
            )


def load_predictions(predictions: str | Path | list[Any] | dict[str, Any]) -> MergedPredictions | Path:
    """A per-sequence folder (returned as a Path, read lazily) or merged predictions (parsed now)."""
    if isinstance(predictions, list | dict):
        return MergedPredictions(predictions, "<predictions>")
    path = Path(predictions)
    if path.is_dir():
        return path
    if not path.exists():
        raise EvalInputError(path, "path", "does not exist")
    data = read_json(path)
    if isinstance(data, dict) and "annolist" in data:
        raise EvalInputError(
            path, "annolist", "a single annolist file cannot be split into sequences; give the per-sequence folder"
        )
    return MergedPredictions(data, str(path))
