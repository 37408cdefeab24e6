"""Person boxes for top-down inference: detection files, ground-truth boxes, and their frames.

Accepted detection files:

- COCO results: a list of `{"image_id", "bbox": [x, y, w, h], "score", "category_id"}` (the PoseTrack18
  sample's `test_posetrack18_human_detections.json`, the synthetic clips' `person_detections/val.json`).
- PoseTrack box lists: a list of `{"image_name", "bbox", "score", ...}` (DCPose's precomputed boxes);
  `file_name` is accepted in place of `image_name`.
- PoseTrack18-style files: `{"images": [...], "annotations": [{"image_id", "bbox", "score"}]}`.

A record finds its frame by `image_id` (the ids `open_frames` assigns, or the ground truth's ids after
`bind_annotations`) or by image name (the full `file_name`, else `<video>/<frame file>`).
"""

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vremd_models.predict.errors import PredictInputError
from vremd_models.predict.frames import FrameSequence

__all__ = [
    "BoxRecord",
    "PersonBox",
    "assign_boxes",
    "bind_annotations",
    "boxes_on_frame",
    "ground_truth_boxes",
    "load_annotations",
    "load_detections",
]

PERSON_CATEGORY = 1


@dataclass(frozen=True)
class PersonBox:
    """One person box on one frame.

    Args:
        bbox: (x, y, w, h) in image pixels.
        score: Detector confidence (1.0 for ground-truth boxes).
    """

    bbox: tuple[float, float, float, float]
    score: float


@dataclass(frozen=True)
class BoxRecord:
    """A box as read from a file, before it is matched to a frame by `image_id` or `image_name`."""

    image_id: int | None
    image_name: str | None
    box: PersonBox


def load_detections(path: str | Path) -> list[BoxRecord]:
    """Read a detection file in any of the accepted formats (see the module docstring).

    Raises:
        PredictInputError: The file is missing or not JSON, a record lacks a valid field, or it holds no
            person boxes.
    """
    path = Path(path)
    data = _read_json(path)
    if isinstance(data, dict) and "annotations" in data:
        names = _image_names(data, path)
        records = [_parse_record(item, i, path, names) for i, item in enumerate(data["annotations"])]
    elif isinstance(data, list):
        records = [_parse_record(item, i, path, {}) for i, item in enumerate(data)]
    else:
        raise PredictInputError(f"{path}: expected a list of detections or a dict with 'annotations'")
    records = [record for record in records if record is not None]
    if not records:
        raise PredictInputError(f"{path}: holds no person detections")
    return records


def load_annotations(path: str | Path) -> list[dict[str, Any]]:
    """Read PoseTrack18-format ground truth: a folder of per-video JSON files or one merged file.

    Returns:
        The JSON documents, each with `images` and `annotations`.
    """
    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob("*.json"))
        if not files:
            raise PredictInputError(f"{path}: holds no .json annotation files")
    elif path.is_file():
        files = [path]
    else:
        raise PredictInputError(f"{path}: no such annotation file or folder")
    docs = []
    for file in files:
        doc = _read_json(file)
        if not isinstance(doc, dict) or not isinstance(doc.get("images"), list):
            raise PredictInputError(f"{file}: field 'images' missing; expected PoseTrack18-format annotations")
        if not isinstance(doc.get("annotations", []), list):
            raise PredictInputError(f"{file}: field 'annotations' must be a list")
        doc["_source"] = str(file)
        docs.append(doc)
    return docs


def bind_annotations(sequences: list[FrameSequence], annotations: list[dict[str, Any]]) -> int:
    """Give every frame that the ground truth lists the ground truth's `file_name` and `image_id`.

    Frames are matched on `<video>/<frame file>`; frames the ground truth does not list keep their names.

    Returns:
        The number of frames matched.
    """
    by_key: dict[str, tuple[str, int]] = {}
    for doc in annotations:
        for i, image in enumerate(doc["images"]):
            if not isinstance(image.get("file_name"), str) or not isinstance(image.get("id"), int):
                raise PredictInputError(f"{doc['_source']}: images[{i}] needs a string 'file_name' and an int 'id'")
            by_key[_name_key(image["file_name"])] = (image["file_name"], image["id"])
    matched = 0
    for sequence in sequences:
        file_names, image_ids = list(sequence.file_names), list(sequence.image_ids)
        for index, name in enumerate(sequence.file_names):
            found = by_key.get(_name_key(name))
            if found is not None:
                file_names[index], image_ids[index] = found
                matched += 1
        sequence.rename(file_names=tuple(file_names), image_ids=tuple(image_ids))
    return matched


def ground_truth_boxes(annotations: list[dict[str, Any]]) -> list[BoxRecord]:
    """The person boxes of labelled ground-truth persons (at least one annotated joint), score 1.

    Persons without any annotated joint are left out: they can never be matched by the evaluator, so
    predicting on them would only add false positives.
    """
    records = []
    for doc in annotations:
        names = _image_names(doc, Path(doc["_source"]))
        for i, person in enumerate(doc.get("annotations", [])):
            keypoints = person.get("keypoints") or []
            if not any(keypoints[2::3]) or "bbox" not in person:
                continue
            record = _parse_record({**person, "score": 1.0}, i, Path(doc["_source"]), names)
            if record is not None:
                records.append(record)
    if not records:
        sources = ", ".join(doc["_source"] for doc in annotations)
        raise PredictInputError(f"{sources}: no annotated person with a 'bbox' to use as ground-truth box")
    return records


def assign_boxes(
    records: list[BoxRecord],
    sequences: list[FrameSequence],
    *,
    source: str | Path,
    min_score: float = 0.0,
) -> dict[str, list[list[PersonBox]]]:
    """Sort boxes onto the frames of `sequences`, drop those under `min_score`, order by score.

    Args:
        records: From `load_detections` or `ground_truth_boxes`.
        sequences: From `open_frames` (after `bind_annotations` when ground truth is used).
        source: The file the records came from, for error messages.
        min_score: Boxes with a lower score are dropped (DCPose keeps boxes scoring 0.2 and up).

    Returns:
        For each sequence name, per frame, the boxes in descending score order.

    Raises:
        PredictInputError: A record refers to an image that is not in the input, or no box is left after
            the score threshold.
    """
    by_id: dict[int, tuple[str, int]] = {}
    by_name: dict[str, tuple[str, int]] = {}
    for sequence in sequences:
        for index, (name, image_id) in enumerate(zip(sequence.file_names, sequence.image_ids, strict=True)):
            by_id[image_id] = (sequence.name, index)
            by_name[_name_key(name)] = (sequence.name, index)
    boxes: dict[str, list[list[PersonBox]]] = {s.name: [[] for _ in range(len(s))] for s in sequences}
    unknown = []
    for record in records:
        found = by_id.get(record.image_id) if record.image_id is not None else None
        if found is None and record.image_name is not None:
            found = by_name.get(_name_key(record.image_name))
        if found is None:
            unknown.append(record)
        elif record.box.score >= min_score:
            boxes[found[0]][found[1]].append(record.box)
    if unknown:
        first = unknown[0]
        what = f"image_id {first.image_id}" if first.image_id is not None else f"image {first.image_name!r}"
        raise PredictInputError(
            f"{source}: {len(unknown)} of {len(records)} boxes refer to images not in the input (first: {what})"
        )
    if not any(frame for frames in boxes.values() for frame in frames):
        raise PredictInputError(f"{source}: no box scores at least {min_score} on the input frames")
    for frames in boxes.values():
        for frame in frames:
            frame.sort(key=lambda box: -box.score)
    return boxes


def boxes_on_frame(
    records: list[BoxRecord], sequence: FrameSequence, index: int, *, min_score: float = 0.0
) -> list[PersonBox]:
    """The boxes of one frame, in descending score order; boxes of other images are ignored.

    Unlike `assign_boxes`, a file covering more images than the input is fine here (one frame is wanted).
    """
    image_id, key = sequence.image_ids[index], _name_key(sequence.file_names[index])
    boxes = [
        record.box
        for record in records
        if (record.image_id == image_id or (record.image_name is not None and _name_key(record.image_name) == key))
        and record.box.score >= min_score
    ]
    return sorted(boxes, key=lambda box: -box.score)


def _read_json(path: Path) -> Any:
    try:
        with path.open() as f:
            return json.load(f)
    except FileNotFoundError:
        raise PredictInputError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise PredictInputError(f"{path}: not a readable JSON file ({error})") from None


def _image_names(doc: dict[str, Any], path: Path) -> dict[int, str]:
    images = doc.get("images", [])
    if not isinstance(images, list):
        raise PredictInputError(f"{path}: field 'images' must be a list")
    return {image["id"]: image["file_name"] for image in images if "id" in image and "file_name" in image}


def _parse_record(item: Any, index: int, path: Path, names: dict[int, str]) -> BoxRecord | None:
    where = f"{path}: entry {index}"
    if not isinstance(item, dict):
        raise PredictInputError(f"{where}: expected an object, got {type(item).__name__}")
    if item.get("category_id", PERSON_CATEGORY) != PERSON_CATEGORY:
        return None
    bbox = item.get("bbox")
    if (
        not isinstance(bbox, list | tuple)
        or len(bbox) != 4
        or not all(isinstance(v, int | float) and math.isfinite(v) for v in bbox)
    ):
        raise PredictInputError(f"{where}: field 'bbox' must be 4 finite numbers [x, y, w, h], got {bbox!r}")
    score = item.get("score", 1.0)
    if isinstance(score, list) and len(score) == 1:  # DCPose writes some scalars as 1-element lists
        score = score[0]
    if not isinstance(score, int | float) or not math.isfinite(score):
        raise PredictInputError(f"{where}: field 'score' must be a number, got {score!r}")
    image_id = item.get("image_id")
    if image_id is not None and (not isinstance(image_id, int) or isinstance(image_id, bool)):
        raise PredictInputError(f"{where}: field 'image_id' must be an integer, got {image_id!r}")
    image_name = item.get("image_name", item.get("file_name", names.get(image_id) if image_id is not None else None))
    if image_id is None and not isinstance(image_name, str):
        raise PredictInputError(f"{where}: needs an 'image_id' or an 'image_name'")
    if bbox[2] <= 0 or bbox[3] <= 0:
        return None  # degenerate box: nothing to crop
    x, y, w, h = (float(v) for v in bbox)
    return BoxRecord(image_id=image_id, image_name=image_name, box=PersonBox((x, y, w, h), float(score)))


def _name_key(name: str) -> str:
    """`<video>/<frame stem>`: the part of an image path that names the frame in every convention."""
    parts = Path(name).parts
    return "/".join((*parts[-2:-1], Path(parts[-1]).stem)) if parts else name
