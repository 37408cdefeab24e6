"""Person boxes for top-down inference: detection files and ground-truth boxes, sorted onto frames.

Files are read by `posetrack_data.annotations` (the one reader of PoseTrack formats): detection files with
`read_detections` (COCO results, DCPose's `image_name` lists, PoseTrack18-style `{"images", "annotations"}`),
ground truth with `read_video`. A detection finds its frame by `image_id` (the ids `open_frames` assigns, or
the ground truth's ids after `bind_annotations`) or by image name (`<video>/<frame stem>`).
"""

import math
from dataclasses import dataclass, replace
from pathlib import Path

from posetrack_data.annotations import Detection, Video, clip_box, read_detections, read_video
from vremd_models.predict.errors import PredictInputError
from vremd_models.predict.frames import FrameSequence

__all__ = [
    "PersonBox",
    "assign_boxes",
    "bind_annotations",
    "bind_ground_truth",
    "boxes_on_frame",
    "clip_to_frames",
    "ground_truth_boxes",
    "load_annotations",
    "load_detections",
    "parse_box",
    "sort_by_score",
    "whole_image_boxes",
]


@dataclass(frozen=True)
class PersonBox:
    """One person box on one frame.

    Args:
        bbox: (x, y, w, h) in image pixels.
        score: Detector confidence (1.0 for ground-truth boxes).
    """

    bbox: tuple[float, float, float, float]
    score: float


def load_detections(path: str | Path) -> list[Detection]:
    """Read a detection file (see `posetrack_data.annotations.read_detections`); degenerate boxes are dropped.

    Raises:
        PoseTrackFormatError: The file is missing or malformed (naming the field).
        PredictInputError: It holds no person boxes.
    """
    detections = [d for d in read_detections(path) if d.bbox[2] > 0 and d.bbox[3] > 0]
    if not detections:
        raise PredictInputError(f"{path}: holds no person detections")
    return detections


def load_annotations(path: str | Path) -> list[Video]:
    """Read PoseTrack ground truth: a folder of per-video JSON files or one (merged) file.

    Raises:
        PoseTrackFormatError: A file is malformed (naming the field).
        PredictInputError: The folder holds no annotation files, or the path does not exist.
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
    return [read_video(file) for file in files]


def bind_annotations(sequences: list[FrameSequence], annotations: list[Video]) -> int:
    """Give every frame that the ground truth lists the ground truth's `file_name` and `image_id`.

    Frames are matched on `<video>/<frame file>`; frames the ground truth does not list keep their names.

    Returns:
        The number of frames matched.
    """
    by_key = {_name_key(f.file_name): (f.file_name, f.image_id) for video in annotations for f in video.frames}
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


def bind_ground_truth(sequences: list[FrameSequence], path: str | Path, *, label: str | Path) -> list[Video]:
    """`load_annotations(path)` bound onto `sequences` (see `bind_annotations`); none matched is an error.

    Args:
        sequences: From `open_frames`; their frames take the ground truth's names and ids.
        path: A ground-truth folder or file.
        label: What the sequences are called in the error (the input folder, the clip's name).
    """
    annotations = load_annotations(path)
    if bind_annotations(sequences, annotations) == 0:
        raise PredictInputError(f"{path}: lists none of the frames of {label}")
    return annotations


def ground_truth_boxes(annotations: list[Video]) -> list[Detection]:
    """The boxes of labelled ground-truth persons (at least one annotated joint, and a box), score 1.

    Persons without any annotated joint are left out: they can never be matched by the evaluator, so
    predicting on them would only add false positives.
    """
    records = [
        Detection(frame.image_id, frame.file_name, person.bbox, 1.0)
        for video in annotations
        for frame in video.frames
        for person in frame.persons
        if person.has_keypoints and person.bbox is not None and person.bbox[2] > 0 and person.bbox[3] > 0
    ]
    if not records:
        sources = ", ".join(str(video.file) for video in annotations)
        raise PredictInputError(f"{sources}: no annotated person with a 'bbox' to use as ground-truth box")
    return records


def clip_to_frames(
    sequences: list[FrameSequence], boxes: dict[str, list[list[PersonBox]]]
) -> tuple[dict[str, list[list[PersonBox]]], int, int]:
    """Drop boxes without a pixel in their frame; clip boxes reaching over a frame size beyond it.

    A box of 1e30 would put every keypoint far outside the frame; boxes a little outside (common in
    PoseTrack's ground truth) are kept as they are, so predictions match the training-time crops.

    Returns:
        The boxes of `sequences` (others unchanged), and how many boxes were clipped and dropped.
    """
    clipped = dropped = 0
    out = dict(boxes)
    for sequence in sequences:
        frames = []
        for index, frame_boxes in enumerate(boxes[sequence.name]):
            height, width = sequence.frame_size(index) if frame_boxes else (0, 0)  # each frame its own size
            kept = []
            for box in frame_boxes:
                if clip_box(box.bbox, width, height) is None:
                    dropped += 1
                    continue
                x, y, w, h = box.bbox
                if x < -width or y < -height or x + w > 2 * width or y + h > 2 * height:
                    x0, y0 = max(x, -width), max(y, -height)
                    x1, y1 = min(x + w, 2.0 * width), min(y + h, 2.0 * height)
                    clipped += 1
                    box = replace(box, bbox=(x0, y0, x1 - x0, y1 - y0))
                kept.append(box)
            frames.append(kept)
        out[sequence.name] = frames
    return out, clipped, dropped


def assign_boxes(
    records: list[Detection],
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
        elif record.score >= min_score:
            boxes[found[0]][found[1]].append(PersonBox(record.bbox, record.score))
    if unknown:
        first = unknown[0]
        what = f"image_id {first.image_id}" if first.image_id is not None else f"image {first.image_name!r}"
        raise PredictInputError(
            f"{source}: {len(unknown)} of {len(records)} boxes refer to images not in the input (first: {what})"
        )
    if not any(frame for frames in boxes.values() for frame in frames):
        raise PredictInputError(f"{source}: no box scores at least {min_score} on the input frames")
    return {name: [sort_by_score(frame) for frame in frames] for name, frames in boxes.items()}


def boxes_on_frame(
    records: list[Detection], sequence: FrameSequence, index: int, *, min_score: float = 0.0
) -> list[PersonBox]:
    """The boxes of one frame, in descending score order; boxes of other images are ignored.

    Unlike `assign_boxes`, a file covering more images than the input is fine here (one frame is wanted).
    """
    image_id, key = sequence.image_ids[index], _name_key(sequence.file_names[index])
    boxes = [
        PersonBox(record.bbox, record.score)
        for record in records
        if (record.image_id == image_id or (record.image_name is not None and _name_key(record.image_name) == key))
        and record.score >= min_score
    ]
    return sort_by_score(boxes)


def parse_box(text: str, label: str = "box") -> tuple[float, float, float, float]:
    """A box typed as ``x,y,w,h`` in image pixels: four finite numbers, width and height positive.

    Raises:
        PredictInputError: anything else (NaN passes a plain "not <= 0" test), naming `label` and `text`.
    """
    try:
        x, y, w, h = (float(v) for v in text.replace(" ", "").split(","))
    except ValueError:
        raise PredictInputError(f"{label} {text!r}: expected four numbers x,y,w,h") from None
    if not all(math.isfinite(v) for v in (x, y, w, h)) or w <= 0 or h <= 0:
        raise PredictInputError(f"{label} {text!r}: expected finite numbers, width and height positive")
    return x, y, w, h


def sort_by_score(boxes: list[PersonBox]) -> list[PersonBox]:
    """The boxes of one frame in descending score order, ties kept in their given order.

    Poses are predicted, tracked and written in this order whatever the boxes came from, so a rerun from a
    written box file (stored in this order) gives the same output.
    """
    return sorted(boxes, key=lambda box: -box.score)


def whole_image_boxes(sequence: FrameSequence) -> list[list[PersonBox]]:
    """One box covering the whole frame on every frame (score 1): single-person clips without a detector."""
    sizes = (sequence.frame_size(index) for index in range(len(sequence)))
    return [[PersonBox((0.0, 0.0, float(width), float(height)), 1.0)] for height, width in sizes]


def _name_key(name: str) -> str:
    """`<video>/<frame stem>`: the part of an image path that names the frame in every convention."""
    parts = Path(name).parts
    return "/".join((*parts[-2:-1], Path(parts[-1]).stem)) if parts else name
