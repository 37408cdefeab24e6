"""The one PoseTrack18 prediction writer: files that `posetrack-eval` (and poseval) read directly.

`train.py`'s validation and `vremd-predict` both write through here, so the same poses give the same bytes.

Two layouts: a folder with one `<sequence>.json` per sequence (poseval pairs prediction and ground-truth
files by this name), or one merged file. Every file appears atomically (temporary file, then
`os.replace`), so an interrupted run leaves finished sequences complete and nothing half-written; a
rerun skips them. A merged file is assembled at the end from per-sequence parts kept in a hidden
`.<name>.parts/` folder beside it, which also makes merged runs resumable.
"""

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from posetrack_data.errors import PoseTrackFormatError
from posetrack_data.joints import SKELETON, SLOT17_NAMES
from posetrack_data.outputs import atomic_write_bytes

__all__ = ["MAX_TRACK_ID", "PersonPose", "PredictionWriter", "document_bytes", "joint_scores", "sequence_document"]

# poseval asserts track ids below this (evaluateTracking.py, MAX_TRACK_ID).
MAX_TRACK_ID = 10_000


@dataclass(frozen=True, kw_only=True)
class PersonPose:
    """One predicted person on one frame.

    Args:
        bbox: The person box (x, y, w, h) the pose was predicted in.
        box_score: The box's detector score.
        keypoints: Joint positions (x, y) in image pixels.
        scores: Per-joint confidence written to `scores` (heatmap maximum times box score).
        track_id: Track id from the tracker (0 when tracking is off).

    Shapes:
        keypoints: Float[J, 2], scores: Float[J]
    """

    bbox: tuple[float, float, float, float]
    box_score: float
    keypoints: npt.NDArray[np.float32]
    scores: npt.NDArray[np.float32]
    track_id: int = 0


def joint_scores(heatmap_maxima: npt.NDArray[np.floating], box_score: float) -> npt.NDArray[np.float32]:
    """DCPose's rule: a joint's confidence is its heatmap maximum (negative maxima count as 0) x the box score.

    Shapes:
        heatmap_maxima: Float[..., J] -> Float[..., J]
    """
    return (np.clip(heatmap_maxima, 0.0, None) * box_score).astype(np.float32)


def document_bytes(document: dict[str, Any]) -> bytes:
    """The bytes of a prediction file: compact JSON (what the writer stores)."""
    return json.dumps(document, separators=(",", ":")).encode()


def sequence_document(
    file_names: tuple[str, ...] | list[str],
    image_ids: tuple[int, ...] | list[int],
    poses: list[list[PersonPose]],
) -> dict[str, Any]:
    """The PoseTrack18 JSON document of one sequence: `images`, `annotations`, `categories`.

    Every frame is listed (poseval pairs frames by position), with or without persons.

    Args:
        file_names: Per frame, the image `file_name`.
        image_ids: Per frame, the image id.
        poses: Per frame, the predicted persons.
    """
    if not len(file_names) == len(image_ids) == len(poses):
        raise ValueError(f"need one entry per frame, got {len(file_names)} names, {len(image_ids)} ids, {len(poses)}")
    images, annotations = [], []
    for file_name, image_id, persons in zip(file_names, image_ids, poses, strict=True):
        images.append({"file_name": file_name, "id": image_id, "frame_id": image_id, "nframes": len(file_names)})
        track_ids = [person.track_id for person in persons]
        if len(set(track_ids)) != len(track_ids) or any(not 0 <= t < MAX_TRACK_ID for t in track_ids):
            raise ValueError(
                f"{file_name}: track ids must be unique per frame and in [0, {MAX_TRACK_ID}), got {track_ids}"
            )
        for index, person in enumerate(persons):
            keypoints = np.concatenate([person.keypoints, np.ones((len(person.keypoints), 1))], axis=1)
            annotations.append(
                {
                    "id": image_id * 100 + index,
                    "image_id": image_id,
                    "category_id": 1,
                    "track_id": int(person.track_id),
                    "bbox": [round(float(v), 2) for v in person.bbox],
                    "score": round(float(person.box_score), 5),
                    "keypoints": [round(float(v), 2) for v in keypoints.ravel()],
                    "scores": [round(float(v), 5) for v in person.scores],
                }
            )
    category = {
        "supercategory": "person",
        "id": 1,
        "name": "person",
        "keypoints": list(SLOT17_NAMES),
        "skeleton": [[a + 1, b + 1] for a, b in SKELETON],  # the files are 1-based
    }
    return {"images": images, "annotations": annotations, "categories": [category]}


class PredictionWriter:
    """Writes per-sequence documents to a folder, or merges them into one file.

    Args:
        out: A `.json` path (merged file) or a folder (one file per sequence).
        overwrite: Redo sequences that are already written instead of skipping them.
    """

    def __init__(self, out: str | Path, *, overwrite: bool = False) -> None:
        self.out = Path(out)
        self.merged = self.out.suffix.lower() == ".json"
        if self.merged and self.out.is_dir():
            raise PoseTrackFormatError(self.out, "out", "is a folder; a merged prediction file needs a file path")
        if not self.merged and self.out.is_file():
            raise PoseTrackFormatError(self.out, "out", "is a file; use a .json name for one merged file, or a folder")
        self._parts = self.out.with_name(f".{self.out.name}.parts") if self.merged else self.out
        if overwrite:
            self._clear()

    def _clear(self) -> None:
        if self.merged:
            shutil.rmtree(self._parts, ignore_errors=True)
            self.out.unlink(missing_ok=True)

    def _part(self, name: str) -> Path:
        return self._parts / f"{name}.json"

    @property
    def complete(self) -> bool:
        """True when a merged file already exists (a finished earlier run)."""
        return self.merged and self.out.is_file() and not self._parts.exists()

    def is_done(self, name: str) -> bool:
        """Whether sequence `name` was written by this or an earlier run."""
        return self.complete or self._part(name).is_file()

    def write(self, name: str, document: dict[str, Any]) -> Path:
        """Write one sequence's document atomically; returns its path."""
        path = self._part(name)
        atomic_write_bytes(path, document_bytes(document))
        return path

    def finish(self, names: list[str]) -> Path:
        """Merge the parts of `names` (in this order) into the merged file; a no-op for folders.

        Returns:
            The merged file, or the folder.
        """
        if not self.merged or self.complete:
            return self.out
        merged: dict[str, Any] = {"images": [], "annotations": [], "categories": []}
        for name in names:
            with self._part(name).open() as f:
                document = json.load(f)
            merged["images"] += document["images"]
            merged["annotations"] += document["annotations"]
            merged["categories"] = document["categories"]
        atomic_write_bytes(self.out, document_bytes(merged))
        shutil.rmtree(self._parts)
        return self.out
