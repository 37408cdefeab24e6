"""`check_root`: validate a PoseTrack dataset root and list every problem found."""

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from posetrack_data.annotations import (
    Frame,
    Version,
    Video,
    annotation_folder,
    annotation_splits,
    detect_version,
    read_detections,
    read_video,
)
from posetrack_data.errors import PoseTrackFormatError
from posetrack_data.images import open_image

__all__ = ["Problem", "check_root"]


@dataclass(frozen=True)
class Problem:
    """One problem: the file, the JSON field (or ``image``) and what is wrong."""

    file: str
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.field}: {self.message}"


def check_root(
    root: str | Path,
    *,
    version: Version | None = None,
    splits: Iterable[str] | None = None,
    decode: bool = True,
    progress: bool = True,
) -> list[Problem]:
    """Check a PoseTrack root: JSON structure, joint order, frames on disk, keypoints, boxes, detections.

    Reports malformed or structurally wrong annotation files (with the field), unknown joint orders,
    negative or repeated image and annotation ids (within a split), a track annotated twice on one frame,
    listed frames missing on disk, unreadable frames (decoded at 1/8 scale when `decode`), frames whose
    size differs from the JSON's width/height, annotated keypoints outside the image, person boxes of
    zero area, and malformed files under ``person_detections/``.

    Args:
        root: Dataset root.
        version: Layout (one of ``VERSIONS``); None detects it.
        splits: Annotation sub-folders to check; None checks all. A split without a folder is an error.
        decode: Decode every listed frame (slow on a full dataset) instead of only checking it exists.
        progress: Show a progress bar over annotation files.

    Returns:
        The problems found, in file order (empty when the root is clean).

    Raises:
        ValueError: `root` is not a folder, or a split in `splits` has no annotation folder.
    """
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"root must be a dataset folder, got {str(root)!r} (not a folder)")
    try:
        version = version or detect_version(root)
    except PoseTrackFormatError as err:
        return [Problem(err.file, err.field, err.problem)]
    present = annotation_splits(root, version)
    split_names = sorted(set(splits)) if splits is not None else present
    for split in split_names:
        if split not in present:  # a typo would otherwise check nothing and report no problem
            folder = annotation_folder(root, version, split)
            raise ValueError(f"split {split!r}: no annotation folder {folder} (splits: {', '.join(present) or 'none'})")
    problems: list[Problem] = []
    for split in split_names:
        files = sorted(annotation_folder(root, version, split).glob("*.json"))
        ids = _SplitIds()
        for file in tqdm(files, desc=f"Checking {split} annotation files", unit="file", disable=not progress):
            try:
                video = read_video(file)
            except PoseTrackFormatError as err:
                problems.append(Problem(err.file, err.field, err.problem))
                continue
            problems += _check_video(root, video, decode)
            problems += ids.check(video)
    for file in sorted((root / "person_detections").glob("*.json")):
        try:
            read_detections(file)
        except PoseTrackFormatError as err:
            problems.append(Problem(err.file, err.field, err.problem))
    return problems


class _SplitIds:
    """Image and annotation ids seen so far in one split: each must be unique and non-negative."""

    def __init__(self) -> None:
        self.images: dict[int, str] = {}
        self.annotations: dict[int, str] = {}

    def check(self, video: Video) -> list[Problem]:
        problems = []
        file = str(video.file)
        for frame in video.frames:
            field = frame.field.removesuffix(".file_name") + ".id"
            if frame.image_id < 0:
                problems.append(Problem(file, field, f"negative image id {frame.image_id}"))
            elif frame.image_id in self.images:
                where = self.images[frame.image_id]
                problems.append(Problem(file, field, f"duplicate image id {frame.image_id} (also in {where})"))
            self.images.setdefault(frame.image_id, file)
            tracks: dict[int, str] = {}
            for person in frame.persons:
                if person.track_id >= 0 and person.track_id in tracks:
                    first = tracks[person.track_id]
                    message = f"duplicate annotation: track {person.track_id} twice on one frame (also {first})"
                    problems.append(Problem(file, f"{person.field}.track_id", message))
                tracks.setdefault(person.track_id, person.field)
                if person.annotation_id is None:
                    continue
                if person.annotation_id < 0:
                    problems.append(
                        Problem(file, f"{person.field}.id", f"negative annotation id {person.annotation_id}")
                    )
                elif person.annotation_id in self.annotations:
                    where = self.annotations[person.annotation_id]
                    message = f"duplicate annotation id {person.annotation_id} (also in {where})"
                    problems.append(Problem(file, f"{person.field}.id", message))
                self.annotations.setdefault(person.annotation_id, file)
        return problems


def _check_video(root: Path, video: Video, decode: bool) -> list[Problem]:
    problems = []
    for frame in video.frames:
        size, problem = _frame_size(root / frame.file_name, decode)
        if problem is not None:
            problems.append(Problem(str(video.file), frame.field, f"{problem}: {root / frame.file_name}"))
        if size is not None and frame.width is not None and (frame.width, frame.height) != size:
            problems.append(
                Problem(
                    str(video.file),
                    frame.field,
                    f"frame is {size[0]}x{size[1]}, JSON says {frame.width}x{frame.height}",
                )
            )
        width, height = (frame.width, frame.height) if frame.width is not None else (size or (None, None))
        problems += _check_persons(video, frame, width, height)
    return problems


def _check_persons(video: Video, frame: Frame, width: int | None, height: int | None) -> list[Problem]:
    problems = []
    for person in frame.persons:
        if person.bbox is not None and (person.bbox[2] <= 0 or person.bbox[3] <= 0):
            problems.append(Problem(str(video.file), f"{person.field}.bbox", f"box of zero area {list(person.bbox)}"))
        if width is None or height is None:
            continue
        for slot, (x, y, v) in enumerate(person.keypoints):
            if v > 0 and not (0 <= x < width and 0 <= y < height):
                message = f"keypoint {slot} at ({x:g}, {y:g}) is outside the {width}x{height} image"
                problems.append(Problem(str(video.file), f"{person.field}.keypoints", message))
    return problems


def _frame_size(path: Path, decode: bool) -> tuple[tuple[int, int] | None, str | None]:
    try:
        with open_image(path, path) as image:
            size = image.size
            if decode:
                image.draft("RGB", (max(1, size[0] // 8), max(1, size[1] // 8)))
                image.load()
    except PoseTrackFormatError as err:
        return None, err.problem
    return size, None
