"""The one PoseTrack18 prediction writer: files that `posetrack-eval` (and poseval) read directly.

`train.py`'s validation and `vremd-predict` both write through here, so the same poses give the same bytes.

Two layouts: a folder with one `<sequence>.json` per sequence (poseval pairs prediction and ground-truth
files by this name), or one merged file. Every file appears atomically (temporary file, then
`os.replace`), so an interrupted run leaves finished sequences complete and nothing half-written; a
rerun with the same model and options skips them, after checking them against the run's manifest. A
merged file is assembled at the end from per-sequence parts kept in a hidden
`.<name>.parts/` folder beside it, which also makes merged runs resumable. With ``overwrite``, earlier files
are replaced as the new ones are written, never deleted first.

Results are checked before they are written: a pose with NaN or infinite values is refused, so a broken model
cannot leave a file that scorers then reject.
"""

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from posetrack_data.errors import PoseTrackFormatError
from posetrack_data.joints import NUM_JOINTS, SKELETON, SLOT17_NAMES
from posetrack_data.outputs import (
    OutputError,
    OutputPolicy,
    atomic_write_bytes,
    atomic_write_text,
    file_sha256,
    input_file,
)

__all__ = [
    "MANIFEST",
    "MAX_TRACK_ID",
    "PersonPose",
    "PredictionWriter",
    "document_bytes",
    "joint_scores",
    "sequence_document",
]

# What the writer wrote, with the run's fingerprint and each file's SHA-256 (see PredictionWriter). Not a .json
# name: sequence files are `<name>.json`, so no sequence name can land on it.
MANIFEST = ".vremd-predict.manifest"

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

    Raises:
        ValueError: the lists differ in length, a frame repeats a track id or has one out of range, or a pose
            is not 17 finite keypoints, scores, a finite box and box score (names the frame and the person).

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
            _check_pose(person, f"{file_name}: person {index}")
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


def _check_pose(person: PersonPose, where: str) -> None:
    shapes = (np.shape(person.keypoints), np.shape(person.scores))
    if shapes != ((NUM_JOINTS, 2), (NUM_JOINTS,)):
        raise ValueError(f"{where}: expected keypoints ({NUM_JOINTS}, 2) and scores ({NUM_JOINTS},), got {shapes}")
    values = (person.keypoints, person.scores, person.bbox, person.box_score)
    if not all(np.isfinite(np.asarray(v, np.float64)).all() for v in values):
        raise ValueError(f"{where}: the pose holds NaN or infinite values; not written")


class PredictionWriter:
    """Writes per-sequence documents to a folder, or merges them into one file, and records what it wrote.

    A manifest (``.vremd-predict.manifest`` in the folder, in the parts folder, or
    ``.<name>.vremd-predict.manifest`` beside a merged file) holds the run's fingerprint (model and options)
    and each file's SHA-256; per sequence, the digest of what it was made from (its input frames) and the
    other files written for it (renders), with their checksums. A sequence counts as done only when the
    manifest lists its file with the same fingerprint, checksum and inputs, and every artifact now asked for
    unchanged; any other file at an output path (foreign, stale, or changed since) is reported, never
    skipped as done.

    Args:
        out: A `.json` path (merged file) or a folder (one file per sequence).
        overwrite: Redo sequences that are already written, and replace files this did not write; each is
            replaced when its successor is written (a merged file when `finish` writes it), never before.
        fingerprint: Identifies the model and the options that change the predictions.
        inputs: Per sequence name, a digest of its input (e.g. of its frames); a sequence recorded with
            another digest is not done. None records and compares nothing.
        artifacts: Per sequence name, the other files this run writes for it (renders); a sequence whose
            artifacts are not all recorded and unchanged is not done.
        policy: The output policy (protects the inputs); None protects nothing but still refuses to
            replace files without ``overwrite``.
    """

    def __init__(
        self,
        out: str | Path,
        *,
        overwrite: bool = False,
        fingerprint: str = "",
        inputs: dict[str, str] | None = None,
        artifacts: dict[str, list[Path]] | None = None,
        policy: OutputPolicy | None = None,
    ) -> None:
        self.out = Path(out)
        self.inputs = inputs or {}
        self.artifacts = artifacts or {}
        self.merged = self.out.suffix.lower() == ".json"
        self.fingerprint = fingerprint
        self.overwrite = overwrite
        self.policy = policy or OutputPolicy((), overwrite)
        if self.merged and self.out.is_dir():
            raise PoseTrackFormatError(self.out, "out", "is a folder; a merged prediction file needs a file path")
        if not self.merged and self.out.is_file():
            raise PoseTrackFormatError(self.out, "out", "is a file; use a .json name for one merged file, or a folder")
        self._parts = self.out.with_name(f".{self.out.name}.parts") if self.merged else self.out
        self.policy.target(self.out, ours=self._merged_is_ours, folder=not self.merged)
        if self.merged and self._parts.exists() and not self._parts.is_dir():
            raise OutputError(f"{self._parts}: expected the parts folder of {self.out}, found a file")
        # with overwrite nothing counts as done; what is there stays until its successor replaces it
        self._records: dict[str, str] = {}
        self._recorded_inputs: dict[str, str] = {}
        self._artifacts: dict[str, dict[str, str]] = {}  # sequence name -> artifact path -> SHA-256
        if not overwrite:
            self._read_manifest(self._parts / MANIFEST)
            if self.merged and not self._parts.exists():  # a finished merged run: its inputs and artifacts
                self._read_manifest(self._merged_manifest())
                self._records = {}

    # ---------------------------------------------------------------- manifest

    def _read_manifest(self, path: Path) -> None:
        """Take the records of `path`'s manifest if it has this run's fingerprint; else trust none."""
        content = self._manifest_content(path)
        if content is None or content.get("fingerprint") != self.fingerprint:
            self._stale = content is not None and "fingerprint" in content
            return
        self._records = _strings(content.get("files"))
        self._recorded_inputs = _strings(content.get("inputs"))
        artifacts = content.get("artifacts")
        if isinstance(artifacts, dict):
            self._artifacts = {name: _strings(files) for name, files in artifacts.items()}

    @staticmethod
    def _manifest_content(path: Path) -> dict[str, Any] | None:
        try:
            content = json.loads(input_file(path).read_bytes())
        except (OSError, ValueError, RecursionError):  # missing, unreadable, not a file or corrupt: none trusted
            return None
        return content if isinstance(content, dict) else None

    def _write_manifest(self, path: Path, files: dict[str, str]) -> None:
        manifest = {
            "written_by": "vremd-predict",
            "fingerprint": self.fingerprint,
            "files": files,
            "inputs": self._recorded_inputs,
            "artifacts": self._artifacts,
        }
        atomic_write_text(path, json.dumps(manifest, indent=1, sort_keys=True))

    def _merged_manifest(self) -> Path:
        return self.out.with_name(f".{self.out.name}.{MANIFEST.lstrip('.')}")

    def _merged_is_ours(self, path: Path) -> bool:
        """Whether the merged file at `path` was written by vremd-predict (any fingerprint)."""
        try:
            content = json.loads(input_file(self._merged_manifest()).read_bytes())
            return isinstance(content, dict) and content.get("files", {}).get(path.name) == file_sha256(path)
        except (OSError, ValueError, RecursionError, AttributeError):
            return False

    _stale = False

    def _part(self, name: str) -> Path:
        return self.policy.inside(self._parts, f"{name}.json", ours=lambda _: True)

    # ---------------------------------------------------------------- state

    @property
    def complete(self) -> bool:
        """True when an earlier run's merged file is there, unchanged, with this fingerprint and these inputs.

        Every artifact asked for must be recorded and unchanged too; never true with overwrite.
        """
        if self.overwrite or not (self.merged and self.out.is_file() and not self._parts.exists()):
            return False
        content = self._manifest_content(self._merged_manifest())
        if content is None or content.get("fingerprint") != self.fingerprint:
            return False
        if not all(self._inputs_match(name) and self._artifacts_done(name) for name in self.inputs | self.artifacts):
            return False
        return _strings(content.get("files")).get(self.out.name) == file_sha256(self.out)

    def _inputs_match(self, name: str) -> bool:
        return name not in self.inputs or self._recorded_inputs.get(name) == self.inputs[name]

    def _artifacts_done(self, name: str) -> bool:
        recorded = self._artifacts.get(name, {})
        return all(
            path.is_file() and recorded.get(str(path)) == file_sha256(path) for path in self.artifacts.get(name, ())
        )

    def artifact_is_ours(self, path: Path) -> bool:
        """Whether `path` is an artifact an earlier run of this fingerprint recorded, unchanged (may be replaced)."""
        recorded = {files[str(path)] for files in self._artifacts.values() if str(path) in files}
        return bool(recorded) and file_sha256(path) in recorded

    def problem(self, name: str) -> str | None:
        """Why the existing output of sequence `name` cannot count as done, or None (missing or done)."""
        path = self._part(name)
        if not path.is_file():
            return None
        recorded = self._records.get(path.name)
        if recorded is None:
            return "written with another model or options" if self._stale else "not written by vremd-predict"
        if recorded != file_sha256(path):
            return "changed or damaged since vremd-predict wrote it (checksum differs)"
        if not self._inputs_match(name):
            return "made from input frames that changed since"
        return None

    def is_done(self, name: str) -> bool:
        """Whether sequence `name` was written by this or an earlier run with the same fingerprint, unchanged."""
        if self.complete:
            return True
        return self._part(name).is_file() and self.problem(name) is None and self._artifacts_done(name)

    def pending(self, names: list[str]) -> tuple[list[str], int]:
        """The sequences still to write, and how many of them replace a damaged part of a merged run.

        Raises:
            OutputError: a merged file or a per-sequence file exists that is foreign, stale or
                changed (``--overwrite`` replaces it), naming the first and counting the rest.
        """
        if self.merged and self.out.is_file() and not self.complete and not self.overwrite:
            reason = (
                "written with another model, options or input frames, or without the renders asked for"
                if self._merged_is_ours(self.out)
                else ("not written by vremd-predict, or changed since")
            )
            raise OutputError(f"{self.out}: exists, {reason}; --overwrite replaces it")
        if self.complete:
            return [], 0
        bad = [(name, self.problem(name)) for name in names]
        bad = [(name, reason) for name, reason in bad if reason is not None]
        if bad and not self.merged and not self.overwrite:
            name, reason = bad[0]
            more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
            raise OutputError(f"{self._part(name)}: exists, {reason}{more}; --overwrite replaces it")
        # a merged run's parts are this command's own scratch files: damaged ones are redone
        return [n for n in names if not self.is_done(n)], len(bad)

    # ---------------------------------------------------------------- writing

    def write(self, name: str, document: dict[str, Any]) -> Path:
        """Write one sequence's document atomically; returns its path.

        Records its checksum, its inputs and its artifacts (written before it).
        """
        path = self._part(name)
        data = document_bytes(document)
        atomic_write_bytes(path, data)
        self._records[path.name] = hashlib.sha256(data).hexdigest()
        if name in self.inputs:
            self._recorded_inputs[name] = self.inputs[name]
        if name in self.artifacts:
            self._artifacts[name] = {str(p): file_sha256(p) for p in self.artifacts[name]}
        self._write_manifest(self._parts / MANIFEST, self._records)
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
            if not self.is_done(name):
                raise OutputError(f"{self._part(name)}: missing or damaged part; rerun to redo it")
            document = json.loads(self._part(name).read_bytes())
            merged["images"] += document["images"]
            merged["annotations"] += document["annotations"]
            merged["categories"] = document["categories"]
        data = document_bytes(merged)
        atomic_write_bytes(self.out, data)
        self._write_manifest(self._merged_manifest(), {self.out.name: hashlib.sha256(data).hexdigest()})
        shutil.rmtree(self._parts)
        return self.out


def _strings(mapping: Any) -> dict[str, str]:
    """The string-valued entries of a manifest's mapping (anything else in an untrusted file is ignored)."""
    if not isinstance(mapping, dict):
        return {}
    return {key: value for key, value in mapping.items() if isinstance(key, str) and isinstance(value, str)}
