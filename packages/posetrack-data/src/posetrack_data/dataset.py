"""`load_posetrack`: PoseTrack 2017/2018/2021 person instances as a cached Hugging Face `datasets.Dataset`."""

import hashlib
import json
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import datasets
import numpy as np
import numpy.typing as npt
from datasets.exceptions import DatasetGenerationError
from tqdm.auto import tqdm

from posetrack_data.annotations import (
    VERSIONS,
    Detection,
    Frame,
    Version,
    Video,
    annotation_files,
    clip_box,
    detect_version,
    joint_box,
    neighbour_name,
    read_detections,
    read_video,
)
from posetrack_data.errors import PoseTrackFormatError
from posetrack_data.images import open_image
from posetrack_data.joints import NUM_JOINTS

__all__ = ["dataset_features", "dataset_info", "load_posetrack", "resolve_frame_paths"]

logger = logging.getLogger(__name__)

# Bump when the rows produced for the same files change, so that old cache entries are not reused.
# Named, not only numbered: branches bumping the number in parallel would otherwise share cache entries.
_ROW_FORMAT = "4-relative-frame-paths-unique-ids"

_CITATIONS = {
    "2018": """@inproceedings{andriluka2018posetrack,
  title = {PoseTrack: A Benchmark for Human Pose Estimation and Tracking},
  author = {Andriluka, Mykhaylo and Iqbal, Umar and Insafutdinov, Eldar and Pishchulin, Leonid and Milan, Anton
            and Gall, Juergen and Schiele, Bernt},
  booktitle = {IEEE/CVF Conference on Computer Vision and Pattern Recognition (CVPR)},
  year = {2018}
}""",
    "2021": """@inproceedings{doering2022posetrack21,
  title = {PoseTrack21: A Dataset for Person Search, Multi-Object Tracking and Multi-Person Pose Tracking},
  author = {Doering, Andreas and Chen, Di and Zhang, Shanshan and Schiele, Bernt and Gall, Juergen},
  booktitle = {IEEE/CVF Conference on Computer Vision and Pattern Recognition (CVPR)},
  year = {2022}
}""",
}
_HOMEPAGES = {"2018": "https://posetrack.net/", "2021": "https://github.com/anDoer/PoseTrack21"}


def dataset_features(num_frames: int = 3, *, version: Version = "2018") -> datasets.Features:
    """The explicit `Features` of `load_posetrack` rows (PoseTrack21 adds `person_id`, `keypoint_visibility`)."""
    features = {
        "video": datasets.Value("string"),
        "file_name": datasets.Value("string"),
        "image_id": datasets.Value("int64"),
        "frame_index": datasets.Value("int32"),
        "num_frames": datasets.Value("int32"),
        "frame_paths": datasets.List(datasets.Value("string"), length=num_frames),
        "keypoints": datasets.Array2D((NUM_JOINTS, 3), "float32"),
        "bbox": datasets.List(datasets.Value("float32"), length=4),
        "track_id": datasets.Value("int32"),
        "box_score": datasets.Value("float32"),
        "from_detector": datasets.Value("bool"),
        "image_width": datasets.Value("int32"),
        "image_height": datasets.Value("int32"),
    }
    if version == "2021":
        features["person_id"] = datasets.Value("int32")
        features["keypoint_visibility"] = datasets.List(datasets.Value("float32"), length=NUM_JOINTS)
    return datasets.Features(features)


def dataset_info(version: Version, split: str, *, detections: bool = False) -> datasets.DatasetInfo:
    """The `DatasetInfo` of `load_posetrack` rows: description, citation, homepage and license of the version."""
    source = "2021" if version == "2021" else "2018"  # PoseTrack17 and 18 share the benchmark paper and site
    rows = "detector box (DCPose protocol)" if detections else "annotated person"
    description = (
        f"PoseTrack{version[2:]} {split}: one row per {rows} on a labeled frame, with the frames of the clip "
        "around it. `frame_paths` are relative to the dataset root; resolve them with "
        "`TopDownTransform(root=...)` or `posetrack_data.resolve_frame_paths`."
    )
    return datasets.DatasetInfo(
        description=description,
        citation=_CITATIONS[source],
        homepage=_HOMEPAGES[source],
        license=f"PoseTrack terms of use, see {_HOMEPAGES[source]} (frames from the MPII Human Pose videos)",
        features=dataset_features(version=version),
    )


def resolve_frame_paths(paths: Sequence[str], root: str | os.PathLike | None) -> list[str]:
    """Absolute frame paths: `load_posetrack`'s root-relative ``frame_paths`` joined to the data root.

    Absolute paths (as the predictor builds) are returned unchanged, so ``root`` may be None for them.

    Raises:
        ValueError: a relative path without a root.
    """
    if root is None:
        relative = next((p for p in paths if not os.path.isabs(p)), None)
        if relative is not None:
            raise ValueError(
                f"frame path {relative!r} is relative to the PoseTrack root; pass the root "
                "(TopDownTransform(root=...), resolve_frame_paths(paths, root))"
            )
        return list(paths)
    return [os.path.join(root, p) for p in paths]


def load_posetrack(
    root: str | Path,
    version: Version | None = None,
    split: str = "train",
    *,
    detections: str | Path | None = None,
    min_detection_score: float = 0.2,
    frame_offsets: Sequence[int] = (-1, 0, 1),
    cache_dir: str | Path | None = None,
) -> datasets.Dataset:
    """Load one split of a PoseTrack dataset as person instances with their neighbour frames.

    One row per annotated person (at least one joint with v > 0) on a labeled frame, or, with
    `detections`, one row per detector box with ``score >= min_detection_score`` on a labeled frame
    (DCPose's protocol for val/test). Boxes of zero area or without a pixel inside their image are dropped
    (DCPose drops zero-area GT boxes), with a count logged; other boxes are kept as given. Neighbour
    frames are ``frame_index + offset``, clamped to the video and replaced by the key frame when absent
    on disk (DCPose uses the key frame itself at the sequence ends).

    The result is built by `datasets` into its cache under a fingerprint of the annotation and
    detection files (path, size, mtime), the frame folders and the arguments, so a second call with
    unchanged files memory-maps the cached Arrow file instead of parsing JSON again.

    Args:
        root: Dataset root (holding ``annotations/`` for PT17/18 or ``posetrack_data/`` for PT21).
        version: One of ``VERSIONS`` (``"2017"``, ``"2018"``, ``"2021"``); None detects it from the layout.
        split: Annotation sub-folder (``"train"``, ``"val"``, ...).
        detections: Person detections for this split: COCO results (``image_id``, ``bbox``,
            ``score``) or DCPose's list (``image_name``, ``bbox``, ``score``).
        min_detection_score: Detector boxes below this score are dropped (DCPose: 0.2).
        frame_offsets: Frame offsets of the clip relative to the key frame; must contain 0.
        cache_dir: `datasets` cache folder; None uses the `datasets` default.

    Returns:
        A `datasets.Dataset` with the columns of :func:`dataset_features`, ``split`` set to ``split`` and the
        `info` of :func:`dataset_info`. ``frame_paths`` are relative to ``root`` (so a moved root or a
        ``save_to_disk`` copy still works): pass the root to `TopDownTransform(root=...)`.

    Raises:
        PoseTrackFormatError: A file is missing or malformed (the message names file and field).
    """
    if version is not None and version not in VERSIONS:
        raise ValueError(f"version must be one of {', '.join(map(repr, VERSIONS))} or None, got {version!r}")
    offsets = tuple(frame_offsets)
    if not offsets or 0 not in offsets or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets):
        raise ValueError(f"frame_offsets must be integers including 0, got {frame_offsets!r}")
    if not 0.0 <= min_detection_score <= 1.0:
        raise ValueError(f"min_detection_score must be in [0, 1], got {min_detection_score}")
    root = Path(root).resolve()
    if not root.is_dir():
        raise ValueError(f"root must be a PoseTrack dataset folder, got {str(root)!r} (not a folder)")
    version = version or detect_version(root)
    files = annotation_files(root, version, split)
    detections_file = Path(detections).resolve() if detections is not None else None
    if detections_file is not None and not detections_file.is_file():
        problem = "detections file not found" if not os.path.lexists(detections_file) else "not a regular file"
        raise PoseTrackFormatError(detections_file, "file", problem)
    plan = _Plan(str(root), version, tuple(str(f) for f in files), detections_file, min_detection_score, offsets)
    try:
        info = dataset_info(version, split, detections=detections_file is not None)
        info.features = dataset_features(len(offsets), version=version)
        return datasets.Dataset.from_generator(
            _generate_rows,
            features=info.features,
            cache_dir=str(cache_dir) if cache_dir is not None else None,
            gen_kwargs={"plan": plan},
            split=datasets.NamedSplit(split),
            info=info,
            fingerprint=_fingerprint(plan, split),
        )
    except DatasetGenerationError as err:
        # `datasets` wraps whatever generating the rows raised (ours name file and field, an OSError its file):
        # surface the cause itself, so that the caller's boundary reports it as it would any other.
        if err.__cause__ is not None:
            raise err.__cause__ from None
        raise


@dataclass(frozen=True)
class _Plan:
    root: str
    version: Version
    files: tuple[str, ...]
    detections: Path | None
    min_detection_score: float
    offsets: tuple[int, ...]


def _fingerprint(plan: _Plan, split: str) -> str:
    digest = hashlib.sha256()
    stats = []
    folders = set()
    for file in plan.files:
        stat = os.stat(file)
        stats.append((file, stat.st_size, stat.st_mtime_ns))
        # Neighbour clamping depends on the frames present on disk: a frame folder's mtime changes
        # when frames are added or removed. PT18/21 keep frames in images/<split>/<video>/.
        folders.add(os.path.join(plan.root, "images", split, Path(file).stem))
    for folder in sorted(folders):
        stats.append((folder, os.stat(folder).st_mtime_ns if os.path.isdir(folder) else -1))
    if plan.detections is not None:
        stat = plan.detections.stat()
        stats.append((str(plan.detections), stat.st_size, stat.st_mtime_ns))
    meta = (_ROW_FORMAT, plan.root, plan.version, split, plan.offsets, plan.min_detection_score, stats)
    digest.update(json.dumps(meta, default=str).encode())
    return digest.hexdigest()[:32]


def _generate_rows(plan: _Plan) -> Iterator[dict]:
    root = Path(plan.root)
    detections = read_detections(plan.detections) if plan.detections is not None else None
    videos = [read_video(file) for file in tqdm(plan.files, desc="Reading PoseTrack annotations", unit="video")]
    _check_unique_ids(videos)
    by_image = _detections_by_frame(videos, detections, plan) if detections is not None else {}
    listings: dict[Path, set[str]] = {}
    dropped = 0
    for video in videos:
        size: tuple[int, int] | None = None
        for frame in video.frames:
            if not frame.is_labeled:
                continue
            key_path = root / frame.file_name
            paths = [
                _neighbour(root, video, frame, offset, listings).relative_to(root).as_posix() for offset in plan.offsets
            ]
            if frame.width is not None and frame.height is not None:
                width, height = frame.width, frame.height
            else:  # PT17 and some PT18 files carry no size: read it once per video from a frame header
                size = size or _image_size(key_path, video)
                width, height = size
            base = {
                "video": video.name,
                "file_name": frame.file_name,
                "image_id": frame.image_id,
                "frame_index": frame.frame_index,
                "num_frames": video.num_frames,
                "frame_paths": paths,
                "image_width": width,
                "image_height": height,
            }
            if plan.version == "2021":
                base["person_id"] = -1
                base["keypoint_visibility"] = np.zeros(NUM_JOINTS, np.float32)
            if detections is not None:
                for det in by_image.get(frame.image_id, ()):
                    if clip_box(det.bbox, width, height) is None:
                        dropped += 1
                        continue
                    yield base | _detection_row(det)
                continue
            for person in frame.persons:
                keypoints = _pt21_keypoints(person.keypoints) if plan.version == "2021" else person.keypoints
                if not (keypoints[:, 2] > 0).any():
                    continue
                bbox = person.bbox if person.bbox is not None else joint_box(keypoints)
                # crops keep the box as given (DCPose); one with no pixel in the image is dropped
                if bbox is None or clip_box(bbox, width, height) is None:
                    dropped += 1
                    continue
                row = base | {
                    "keypoints": keypoints,
                    "bbox": list(bbox),
                    "track_id": person.track_id,
                    "box_score": 1.0,
                    "from_detector": False,
                }
                if plan.version == "2021":
                    row["person_id"] = person.person_id
                    row["keypoint_visibility"] = person.keypoints[:, 2]
                yield row
    if dropped:
        logger.warning("dropped %d boxes of zero area or outside their image (see `posetrack-data check`)", dropped)


def _check_unique_ids(videos: list[Video]) -> None:
    # Detections and predictions are keyed by image id: two frames sharing one would swap neighbours and boxes.
    seen: dict[int, Path] = {}
    for video in videos:
        for frame in video.frames:
            first = seen.setdefault(frame.image_id, video.file)
            if first != video.file:
                field = frame.field.removesuffix(".file_name") + ".id"
                raise PoseTrackFormatError(video.file, field, f"duplicate image id {frame.image_id} (also in {first})")


def _pt21_keypoints(keypoints: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    # PT21 recodes visibility for occlusions (the exact coding is not documented) and its scorer counts
    # a joint as annotated iff x > 0 and y > 0, ignoring v. Use the scorer's rule for v (so that
    # training targets and evaluation agree); the raw flags stay in `keypoint_visibility`.
    annotated = ((keypoints[:, 0] > 0) & (keypoints[:, 1] > 0)) | (keypoints[:, 2] > 0)
    converted = keypoints.copy()
    converted[:, 2] = annotated
    return converted


def _detection_row(det: Detection) -> dict:
    return {
        "keypoints": np.zeros((NUM_JOINTS, 3), np.float32),
        "bbox": list(det.bbox),
        "track_id": -1,
        "box_score": det.score,
        "from_detector": True,
    }


def _detections_by_frame(videos: list[Video], detections: list[Detection], plan: _Plan) -> dict[int, list[Detection]]:
    labeled_ids = {frame.image_id for video in videos for frame in video.frames if frame.is_labeled}
    # DCPose's box files name the image instead of giving its id; match on <video folder>/<frame file>.
    id_for_name = {_name_key(frame.file_name): frame.image_id for video in videos for frame in video.frames}
    by_image: dict[int, list[Detection]] = {}
    skipped = 0
    for det in detections:
        image_id = det.image_id if det.image_id is not None else id_for_name.get(_name_key(det.image_name or ""))
        if image_id not in labeled_ids:
            skipped += 1
            continue
        if det.score >= plan.min_detection_score and det.bbox[2] > 0 and det.bbox[3] > 0:
            by_image.setdefault(image_id, []).append(det)
    if skipped:
        logger.info("%d detections are on frames that are unknown or unlabeled in this split; skipped", skipped)
    return by_image


def _name_key(name: str) -> str:
    path = Path(name)
    return f"{path.parent.name}/{path.name}"


def _neighbour(root: Path, video: Video, frame: Frame, offset: int, listings: dict[Path, set[str]]) -> Path:
    key_path = root / frame.file_name
    if offset == 0:
        return key_path
    last = video.first_index + video.num_frames - 1
    index = min(max(frame.frame_index + offset, video.first_index), last)
    path = root / neighbour_name(frame.file_name, index)
    folder = path.parent
    if folder not in listings:
        listings[folder] = set(os.listdir(folder)) if folder.is_dir() else set()
        if not listings[folder]:
            logger.warning("frame folder %s is missing or empty; neighbours fall back to the key frame", folder)
    return path if path.name in listings[folder] else key_path


def _image_size(path: Path, video: Video) -> tuple[int, int]:
    try:
        with open_image(path, path) as image:
            return image.size
    except PoseTrackFormatError as err:
        raise PoseTrackFormatError(
            path, "image", f"cannot read the frame size ({video.file} has no width/height): {err.problem}"
        ) from None
