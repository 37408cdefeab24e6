"""The demo's clips: where the frames and person boxes come from, and the predictions made on them.

A clip is one frame sequence: the built-in synthetic validation clip (generated once into the data folder,
like `train.py`'s default data, with its own detections and ground truth), an uploaded video, or an
uploaded folder of frames. Uploads are checked against `UploadLimits` before the model sees them; every
problem is a `PredictInputError` whose message names the uploaded file, shown on the page as one line.
"""

import itertools
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from posetrack_data.errors import PoseTrackFormatError
from posetrack_data.outputs import atomic_write_bytes
from posetrack_data.predictions import PersonPose, document_bytes, sequence_document
from vremd_models.predict.detections import (
    PersonBox,
    assign_boxes,
    bind_annotations,
    bind_ground_truth,
    ground_truth_boxes,
    load_annotations,
    load_detections,
    parse_box,
)
from vremd_models.predict.detector import PersonDetector
from vremd_models.predict.errors import PredictInputError
from vremd_models.predict.frames import IMAGE_SUFFIXES, VIDEO_SUFFIXES, FrameSequence, open_frames
from vremd_models.predict.predictor import PosePredictor

__all__ = [
    "BOX_SOURCES",
    "INPUT_ERRORS",
    "SYNTHETIC_CLIP",
    "Clip",
    "UploadLimits",
    "clip_boxes",
    "open_synthetic_clip",
    "open_uploaded_frames",
    "open_uploaded_video",
    "parse_box",
    "predict_clip",
    "write_predictions",
]

BOX_SOURCES = ("detections", "ground truth", "detector", "drawn box")
# What unusable input raises: frames and boxes (PredictInputError), malformed PoseTrack files (posetrack_data).
INPUT_ERRORS = (PredictInputError, PoseTrackFormatError)
# The built-in clip: one validation video (and one training video the generator insists on) in the
# synthetic PoseTrack18 layout, named like train.py's synthetic data folders.
SYNTHETIC_CLIP = {"num_videos": 2, "num_frames": 24, "image_size": (320, 240), "seed": 0, "val_fraction": 0.5}


@dataclass(frozen=True)
class UploadLimits:
    """What the page accepts: at most `max_frames` frames, each side between `min_side` and `max_side` pixels."""

    max_frames: int = 300
    min_side: int = 32
    max_side: int = 4096


@dataclass
class Clip:
    """One sequence of frames and the box files that come with it.

    Args:
        sequence: The frames.
        label: How the page names the clip in messages (the uploaded file name, or "synthetic clip").
        detections: Detection file of the synthetic clip; None for uploads (the user brings one).
        annotations: Ground truth of the synthetic clip; None for uploads.
    """

    sequence: FrameSequence
    label: str
    detections: Path | None = None
    annotations: Path | None = None


def _synthetic_root(data_dir: Path) -> Path:
    c = SYNTHETIC_CLIP
    width, height = c["image_size"]
    return data_dir / f"synthetic-{c['num_videos']}v{c['num_frames']}f-{width}x{height}-seed{c['seed']}"


def open_synthetic_clip(data_dir: str | Path, *, on_generate: Callable[[], None] | None = None) -> Clip:
    """The built-in validation clip, generated into `data_dir` on first use and reused after.

    Args:
        data_dir: Folder holding generated data (`train.py`'s default is `data`).
        on_generate: Called before a generation starts (to say so on the page).
    """
    from posetrack_data import generate_dataset

    root = _synthetic_root(Path(data_dir))
    if not (root / "annotations").is_dir():
        if on_generate is not None:
            on_generate()
        # The generator claims the folder, stages it and renames it into place: an interrupted generation leaves
        # nothing to reuse, and nothing already there is deleted.
        generate_dataset(root, **SYNTHETIC_CLIP, progress=False)
    (sequence,) = open_frames(root / "images" / "val")
    annotations = root / "annotations" / "val"
    bind_annotations([sequence], load_annotations(annotations))
    return Clip(sequence, "synthetic clip", root / "person_detections" / "val.json", annotations)


def open_uploaded_video(path: str | Path, limits: UploadLimits) -> Clip:
    """An uploaded video file, checked against `limits`."""
    path = Path(path)
    with _named_after(path):
        if path.suffix.lower() not in VIDEO_SUFFIXES:
            raise PredictInputError(f"{path}: not a video (expected one of {', '.join(sorted(VIDEO_SUFFIXES))})")
        (sequence,) = open_frames(path)
        _check_size(sequence, path, limits)
    return Clip(sequence, path.name)


def open_uploaded_frames(
    paths: list[str | Path], folder: str | Path, limits: UploadLimits, *, name: str = "frames"
) -> Clip:
    """An uploaded folder of frames: the image files of `paths`, linked into `folder/<name>/` and checked.

    Gradio keeps the uploaded files' names but not their folder's, so the sequence is called `name`: a
    detection file for it refers to frames by image id (the frame number from 0) or as `<name>/<file>`.
    Files that are not images are ignored.
    """
    images = sorted((Path(p) for p in paths if Path(p).suffix.lower() in IMAGE_SUFFIXES), key=lambda p: p.name)
    if not images:
        raise PredictInputError("the uploaded folder holds no image files (.jpg, .jpeg, .png, .bmp)")
    repeated = next((a.name for a, b in itertools.pairwise(images) if a.name == b.name), None)
    if repeated is not None:  # one would silently stand for both
        raise PredictInputError(f"the upload holds two frames named {repeated}; frames need distinct names")
    if len(images) > limits.max_frames:
        raise PredictInputError(
            f"the uploaded folder holds {len(images)} frames; the demo takes at most {limits.max_frames}"
        )
    target = Path(folder) / name
    target.mkdir(parents=True, exist_ok=True)
    for image in images:
        link = target / image.name
        if link.exists():
            continue
        try:
            os.link(image, link)
        except OSError:
            shutil.copyfile(image, link)
    with _named_after(target):
        (sequence,) = open_frames(target)
        _check_size(sequence, target, limits)
    return Clip(sequence, target.name)


@contextmanager
def _named_after(path: Path) -> Iterator[None]:
    """Shorten input-error messages from the upload's temporary path to the file's own name."""
    try:
        yield
    except INPUT_ERRORS as error:
        raise type(error)(str(error).replace(str(path), path.name)) from None


def _check_size(sequence: FrameSequence, path: Path, limits: UploadLimits) -> None:
    if len(sequence) > limits.max_frames:
        raise PredictInputError(f"{path}: {len(sequence)} frames; the demo takes at most {limits.max_frames}")
    for index in range(len(sequence)):
        height, width = sequence.frame_size(index)
        if min(height, width) < limits.min_side or max(height, width) > limits.max_side:
            raise PredictInputError(
                f"{path}: frame {index} is {width}x{height} pixels; the demo takes {limits.min_side} to "
                f"{limits.max_side} pixels a side"
            )


def clip_boxes(
    clip: Clip,
    source: str,
    *,
    boxes_file: str | Path | None = None,
    drawn_box: str = "",
    min_score: float = 0.2,
) -> list[list[PersonBox]] | None:
    """Per frame, the person boxes the model runs on; None for the detector's (found while predicting).

    Args:
        clip: The clip.
        source: One of `BOX_SOURCES`. A drawn box is used on every frame.
        boxes_file: Uploaded detections or ground truth; the synthetic clip's own files when None.
        drawn_box: The `x,y,w,h` text of a drawn box.
        min_score: Detections scoring lower are dropped.
    """
    sequence = clip.sequence
    if source == "detector":
        return None
    if source == "drawn box":
        box = PersonBox(parse_box(drawn_box), 1.0)
        return [[box] for _ in range(len(sequence))]
    if source not in BOX_SOURCES:
        raise PredictInputError(f"person boxes {source!r}: expected one of {', '.join(BOX_SOURCES)}")
    ground_truth = source == "ground truth"
    path = Path(boxes_file) if boxes_file else clip.annotations if ground_truth else clip.detections
    if path is None:
        raise PredictInputError(f"person boxes from {source}: upload a .json file for {clip.label}, or draw a box")
    with _named_after(path):
        if ground_truth:
            annotations = bind_ground_truth([sequence], path, label=clip.label)
            records, min_score = ground_truth_boxes(annotations), 0.0
        else:
            records = load_detections(path)
        return assign_boxes(records, [sequence], source=path, min_score=min_score)[sequence.name]


def predict_clip(
    predictor: PosePredictor,
    clip: Clip,
    boxes: list[list[PersonBox]] | None,
    *,
    detector: PersonDetector | None = None,
    detect_every: int = 1,
    min_score: float = 0.2,
    on_frame: Callable[[int], None] | None = None,
) -> list[list[PersonPose]]:
    """Poses with OKS track ids for every box of every frame, as `vremd-predict` makes them.

    Args:
        predictor: Predicts the poses.
        clip: The clip.
        boxes: Per frame, the boxes (`clip_boxes`); None to find them with `detector` while predicting, on
            every `detect_every`-th frame, carried from the poses between (`vremd_models.predict.online`).
        detector: Finds the boxes when `boxes` is None.
        detect_every: Detect on every N-th frame.
        min_score: Detected boxes scoring lower are dropped.
        on_frame: Called with 1 after each frame (for a progress bar).
    """
    from vremd_models.predict.cli import track_poses
    from vremd_models.predict.online import detect_and_predict

    if boxes is not None:
        return track_poses(predictor.predict_sequence(clip.sequence, boxes, on_frame=on_frame), "oks")
    if detector is None:
        raise ValueError("predict_clip needs boxes or a detector")
    _, poses = detect_and_predict(
        predictor, clip.sequence, detector.detect, detect_every=detect_every, min_score=min_score, on_frame=on_frame
    )
    return track_poses(poses, "oks")


def write_predictions(clip: Clip, poses: list[list[PersonPose]], folder: str | Path) -> Path:
    """Write the clip's PoseTrack18 predictions as `folder/<sequence>.json` (poseval pairs files by name)."""
    sequence = clip.sequence
    path = Path(folder) / f"{sequence.name}.json"
    atomic_write_bytes(path, document_bytes(sequence_document(sequence.file_names, sequence.image_ids, poses)))
    return path
