"""Readers for PoseTrack annotation files: PT17 annolist, PT18 and PT21 per-video JSON, detection files.

Every reader returns plain records in the 17-slot PoseTrack18 joint order and raises
:class:`~posetrack_data.errors.PoseTrackFormatError` naming the file and field for anything malformed.
Beside its reader, `detection_document` builds the detection files that `read_detections` reads back.
"""

import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal, get_args

import numpy as np
import numpy.typing as npt

from posetrack_data.errors import PoseTrackFormatError
from posetrack_data.joints import NUM_JOINTS, PT17_ID_FOR_SLOT, SLOT17_NAMES
from posetrack_data.outputs import input_file

__all__ = [
    "VERSIONS",
    "Detection",
    "Frame",
    "Person",
    "Version",
    "Video",
    "annotation_files",
    "annotation_folder",
    "annotation_splits",
    "clip_box",
    "detect_version",
    "detection_document",
    "joint_box",
    "neighbour_name",
    "parse_frame_name",
    "read_detections",
    "read_json",
    "read_video",
]

Version = Literal["2017", "2018", "2021"]
# Every PoseTrack release read here, oldest first: the values of `Version` (CLI choices, run-config checks).
VERSIONS: Final[tuple[Version, ...]] = get_args(Version)
# The folder holding the per-split annotation folders: PoseTrack21 renamed it.
_ANNOTATION_DIRS: Final[dict[Version, str]] = {"2017": "annotations", "2018": "annotations", "2021": "posetrack_data"}

# poseval's PT17 name for head_bottom; accepted in a PT18-style `categories[0].keypoints` list.
_NAME_ALIASES = {"neck": "head_bottom"}
_SLOT_FOR_NAME = {name: slot for slot, name in enumerate(SLOT17_NAMES)}
_SLOT_FOR_PT17_ID = {pt17: slot for slot, pt17 in enumerate(PT17_ID_FOR_SLOT) if pt17 is not None}
_FRAME_NAME = re.compile(r"^([0-9]+)(.*)$")  # ASCII digits only: int() also reads other scripts' digits
_PERSON_CATEGORY = {"supercategory": "person", "id": 1, "name": "person"}


@dataclass(frozen=True)
class Person:
    """One annotated person on one frame.

    Args:
        keypoints: Float[17, 3] (x, y, v) in the 17-slot order; unannotated joints are (0, 0, 0).
        bbox: Person box (x, y, w, h), or None when the file has none.
        bbox_head: Head box (x, y, w, h), or None.
        track_id: Track id within the video (-1 when absent).
        person_id: PT21 re-identification id across videos (-1 when absent).
        field: JSON path of the person in its file (``"annotations[3]"``), for error messages.
        annotation_id: The annotation's ``id`` (PT18/21; None when absent).
    """

    keypoints: npt.NDArray[np.float32]
    bbox: tuple[float, float, float, float] | None
    bbox_head: tuple[float, float, float, float] | None
    track_id: int
    person_id: int = -1
    field: str = ""
    annotation_id: int | None = None

    @property
    def has_keypoints(self) -> bool:
        return bool((self.keypoints[:, 2] > 0).any())


@dataclass(frozen=True)
class Frame:
    """One frame of a video as listed in its annotation file (`field`: its JSON path, for messages)."""

    image_id: int
    file_name: str
    frame_index: int
    is_labeled: bool
    width: int | None
    height: int | None
    persons: tuple[Person, ...]
    field: str = ""


@dataclass(frozen=True)
class Video:
    """One annotation file: a video's frames (labeled or not) and their persons.

    Args:
        name: Basename of the annotation file without extension (poseval pairs files by it).
        file: The annotation file.
        num_frames: Frames in the whole video (`nframes`; PT17: length of the annolist).
        first_index: Index of the first frame on disk (0 for PT18/21 `%06d`, 1 for PT17 `%08d`).
        frames: The listed frames in file order.
    """

    name: str
    file: Path
    num_frames: int
    first_index: int
    frames: tuple[Frame, ...]


@dataclass(frozen=True)
class Detection:
    """One detector box: COCO results (`image_id`) or DCPose's list format (`image_name`)."""

    image_id: int | None
    image_name: str | None
    bbox: tuple[float, float, float, float]
    score: float


def read_json(path: str | Path) -> Any:
    """Parse a JSON file, raising :class:`PoseTrackFormatError` for a missing, unreadable or malformed one.

    Only a regular file is opened: a FIFO or a device named as an annotation file is refused, not waited on.
    """
    try:
        with open(input_file(path), encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise PoseTrackFormatError(path, "file", "not found") from None
    except ValueError as err:  # malformed JSON, bytes that are not UTF-8, an integer of more than 4300 digits
        raise PoseTrackFormatError(path, "json", f"malformed JSON ({str(err)[:200]})") from None
    except RecursionError:
        raise PoseTrackFormatError(path, "json", "nested too deeply to be PoseTrack data") from None
    except OSError as err:
        raise PoseTrackFormatError(path, "file", err.strerror or str(err)) from None


def detect_version(root: str | Path) -> Version:
    """Tell the PoseTrack layout of a dataset root from its folders and first annotation file.

    ``posetrack_data/`` means PT21; ``annotations/<split>/*.json`` holding ``annolist`` means PT17,
    holding ``images`` means PT18.
    """
    root = Path(root)
    if (root / _ANNOTATION_DIRS["2021"]).is_dir():
        return "2021"
    for split in annotation_splits(root, "2018"):
        files = sorted(annotation_folder(root, "2018", split).glob("*.json"))
        if files:
            content = read_json(files[0])
            return "2017" if isinstance(content, dict) and "annolist" in content else "2018"
    raise PoseTrackFormatError(root, "layout", "no posetrack_data/ (PT21) or annotations/<split>/*.json (PT17/18)")


def annotation_folder(root: str | Path, version: Version, split: str) -> Path:
    """The folder of one split's per-video annotation files (it may not exist).

    ``<root>/annotations/<split>`` for PoseTrack17 and 18, ``<root>/posetrack_data/<split>`` for PoseTrack21.
    """
    return Path(root) / _ANNOTATION_DIRS[version] / split


def annotation_splits(root: str | Path, version: Version) -> list[str]:
    """The names of the split folders under a root's annotation folder, sorted (empty when it has none)."""
    return sorted(p.name for p in (Path(root) / _ANNOTATION_DIRS[version]).glob("*") if p.is_dir())


def annotation_files(root: str | Path, version: Version, split: str) -> list[Path]:
    """The per-video annotation files of one split, sorted by name."""
    folder = annotation_folder(root, version, split)
    if not folder.is_dir():
        raise PoseTrackFormatError(folder, "split", f"annotation folder for split {split!r} not found")
    files = sorted(folder.glob("*.json"))
    if not files:
        raise PoseTrackFormatError(folder, "split", f"no *.json annotation files for split {split!r}")
    return files


def read_video(path: str | Path) -> Video:
    """Read one per-video annotation file, in PT17 annolist or PT18/PT21 format (told by its content)."""
    path = Path(path)
    content = read_json(path)
    if not isinstance(content, dict):
        raise PoseTrackFormatError(path, "json", f"expected an object at top level, got {type(content).__name__}")
    if "annolist" in content:
        return _read_annolist(path, content)
    return _read_pt18(path, content)


def parse_frame_name(file: str | Path, field: str, name: str) -> tuple[int, int, str]:
    """Split a frame file name into (index, digit count, rest): ``000042.jpg`` -> (42, 6, ".jpg")."""
    match = _FRAME_NAME.match(Path(name).name)
    if match is None:
        raise PoseTrackFormatError(file, field, f"frame file name {name!r} does not start with a frame number")
    digits, rest = match.groups()
    return int(digits), len(digits), rest


def neighbour_name(name: str, index: int) -> str:
    """The file name of frame `index` in the folder of frame `name`, with the same zero padding."""
    _, width, rest = parse_frame_name(name, "file_name", name)
    return str(Path(name).with_name(f"{index:0{width}d}{rest}"))


def joint_box(keypoints: npt.NDArray[np.float32]) -> tuple[float, float, float, float] | None:
    """The tight box of the annotated joints enlarged by 30% about its centre (poseval's PT17 rule)."""
    present = keypoints[keypoints[:, 2] > 0, :2]
    if len(present) == 0:
        return None
    lo, hi = present.min(axis=0), present.max(axis=0)
    centre, size = (lo + hi) / 2, (hi - lo) * 1.3
    return (float(centre[0] - size[0] / 2), float(centre[1] - size[1] / 2), float(size[0]), float(size[1]))


def clip_box(
    box: tuple[float, float, float, float], width: float, height: float
) -> tuple[float, float, float, float] | None:
    """Clip a box (x, y, w, h) to the image; None when nothing of it lies inside (or it has no area)."""
    x, y, w, h = box
    x0, y0 = min(max(x, 0.0), width), min(max(y, 0.0), height)
    x1, y1 = min(max(x + w, 0.0), width), min(max(y + h, 0.0), height)
    if x1 - x0 <= 0 or y1 - y0 <= 0:
        return None
    return (float(x0), float(y0), float(x1 - x0), float(y1 - y0))


def read_detections(path: str | Path) -> list[Detection]:
    """Read person detections: COCO results, DCPose's lists, or PoseTrack18-style files.

    COCO results are ``{image_id, bbox, score}``; DCPose's lists ``{image_name, bbox, score}`` (``file_name``
    is accepted for ``image_name``); in a PoseTrack18-style ``{"images", "annotations"}`` file each box also
    knows its image's ``file_name``.

    Boxes of another category than 1 (person) are dropped.
    """
    path = Path(path)
    content = read_json(path)
    names: dict[int, str] = {}
    if isinstance(content, dict) and "annotations" in content:
        for i, image in enumerate(_list(path, "images", content.get("images") or [])):
            image = _object(path, f"images[{i}]", image)
            image_id = _int(path, f"images[{i}].id", _require(path, image, "id", f"images[{i}]"))
            names[image_id] = _string(
                path, f"images[{i}].file_name", _require(path, image, "file_name", f"images[{i}]")
            )
        content = content["annotations"]
    if not isinstance(content, list):
        raise PoseTrackFormatError(path, "json", f"expected a list of detections, got {type(content).__name__}")
    detections = []
    for i, entry in enumerate(content):
        field = f"[{i}]"
        entry = _object(path, field, entry)
        if _int(path, f"{field}.category_id", _scalar(entry.get("category_id", 1))) != 1:
            continue
        image_id = entry.get("image_id")
        if image_id is not None:
            image_id = _int(path, f"{field}.image_id", image_id)
        image_name = entry.get("image_name", entry.get("file_name", names.get(image_id)))
        if image_id is None and image_name is None:
            raise PoseTrackFormatError(path, f"{field}.image_id", "missing (and no image_name either)")
        if image_name is not None:
            image_name = _string(path, f"{field}.image_name", image_name)
        bbox = _box(path, f"{field}.bbox", _require(path, entry, "bbox", field))
        score = _number(path, f"{field}.score", _scalar(_require(path, entry, "score", field)))
        detections.append(Detection(image_id, image_name, bbox, score))
    return detections


def detection_document(
    file_names: Sequence[str], image_ids: Sequence[int], detections: Iterable[Detection]
) -> dict[str, Any]:
    """A PoseTrack18-style person-detection document, the layout `read_detections` reads with frame names.

    ``images`` lists every frame (``id``, ``file_name``), so a box finds its frame by id or by name;
    ``annotations`` holds one ``{image_id, category_id: 1, bbox, score}`` per detection, in the given order.
    Values are written at full precision: JSON floats read back bit for bit, so the boxes read are the boxes
    written.

    Args:
        file_names: Per frame, the image ``file_name``.
        image_ids: Per frame, the image id.
        detections: Boxes on those frames; each `Detection.image_id` must be one of `image_ids`.

    Raises:
        ValueError: The frame lists differ in length or repeat an id, a detection names another image, or a
            box or score is not finite.
    """
    if len(file_names) != len(image_ids) or len(set(image_ids)) != len(image_ids):
        raise ValueError(f"need one distinct image id per frame, got {len(file_names)} names and ids {image_ids}")
    known = set(image_ids)
    annotations = []
    for detection in detections:
        if detection.image_id not in known:
            raise ValueError(f"detection on image_id {detection.image_id}, which is not one of the frames given")
        values = (*detection.bbox, detection.score)
        if not all(math.isfinite(v) for v in values):
            raise ValueError(f"image_id {detection.image_id}: box and score must be finite, got {values}")
        annotations.append(
            {
                "image_id": int(detection.image_id),
                "category_id": 1,
                "bbox": [float(v) for v in detection.bbox],
                "score": float(detection.score),
            }
        )
    images = [{"id": int(i), "file_name": name} for name, i in zip(file_names, image_ids, strict=True)]
    return {"images": images, "annotations": annotations, "categories": [dict(_PERSON_CATEGORY)]}


# ---------------------------------------------------------------------------------------------------
# PT18 / PT21


def _read_pt18(path: Path, content: dict) -> Video:
    images = _require(path, content, "images", "")
    if not isinstance(images, list) or not images:
        raise PoseTrackFormatError(path, "images", "expected a non-empty list of frames")
    annotations = content.get("annotations")
    annotations = [] if annotations is None else _list(path, "annotations", annotations)
    slots = _slots_from_categories(path, content.get("categories"))

    persons_by_image: dict[int, list[Person]] = {}
    for i, ann in enumerate(annotations):
        field = f"annotations[{i}]"
        ann = _object(path, field, ann)
        image_id = _int(path, f"{field}.image_id", _require(path, ann, "image_id", field))
        raw = ann.get("keypoints")
        keypoints = np.zeros((NUM_JOINTS, 3), np.float32)
        if raw is not None and raw != []:  # PT21 persons may carry a box and no keypoints
            keypoints[slots] = _keypoint_array(path, f"{field}.keypoints", raw, len(slots))
        bbox = _box(path, f"{field}.bbox", ann["bbox"]) if ann.get("bbox") is not None else None
        head = _box(path, f"{field}.bbox_head", ann["bbox_head"]) if ann.get("bbox_head") is not None else None
        track_id = _int(path, f"{field}.track_id", ann.get("track_id", -1))
        person_id = _int(path, f"{field}.person_id", ann.get("person_id", -1))
        ann_id = _int(path, f"{field}.id", ann["id"]) if ann.get("id") is not None else None
        person = Person(keypoints, bbox, head, track_id, person_id, field, ann_id)
        persons_by_image.setdefault(image_id, []).append(person)

    frames = []
    num_frames = None
    seen_ids: dict[int, int] = {}
    seen_names: dict[str, int] = {}
    for i, image in enumerate(images):
        field = f"images[{i}]"
        image = _object(path, field, image)
        image_id = _int(path, f"{field}.id", _require(path, image, "id", field))
        file_name = _string(path, f"{field}.file_name", _require(path, image, "file_name", field))
        index, _, _ = parse_frame_name(path, f"{field}.file_name", file_name)
        # a repeated id or frame would attach persons and neighbour frames to the wrong image
        if seen_ids.setdefault(image_id, i) != i:
            raise PoseTrackFormatError(
                path, f"{field}.id", f"duplicate image id {image_id} (also images[{seen_ids[image_id]}])"
            )
        if seen_names.setdefault(file_name, i) != i:
            raise PoseTrackFormatError(
                path, f"{field}.file_name", f"frame {file_name!r} listed twice (also images[{seen_names[file_name]}])"
            )
        if num_frames is None and "nframes" in image:
            num_frames = _positive_int(path, f"{field}.nframes", image["nframes"])
        persons = tuple(persons_by_image.pop(image_id, ()))
        is_labeled = _flag(path, f"{field}.is_labeled", image.get("is_labeled", bool(persons)))
        width = _positive_int(path, f"{field}.width", image["width"]) if "width" in image else None
        height = _positive_int(path, f"{field}.height", image["height"]) if "height" in image else None
        frames.append(Frame(image_id, file_name, index, is_labeled, width, height, persons, f"{field}.file_name"))
    if persons_by_image:
        orphan = next(iter(persons_by_image))
        raise PoseTrackFormatError(path, "annotations[].image_id", f"{orphan} is not the id of any listed image")
    return Video(path.stem, path, num_frames or len(frames), 0, tuple(frames))


def _slots_from_categories(path: Path, categories: Any) -> list[int]:
    if not categories:
        return list(range(NUM_JOINTS))
    field = "categories[0].keypoints"
    if not isinstance(categories, list) or not isinstance(categories[0], dict):
        raise PoseTrackFormatError(path, "categories", "expected a list of category objects")
    names = categories[0].get("keypoints")
    if names is None:
        return list(range(NUM_JOINTS))
    names = [_string(path, f"{field}[{k}]", name) for k, name in enumerate(_list(path, field, names))]
    unknown = [n for n in names if _NAME_ALIASES.get(n, n) not in _SLOT_FOR_NAME]
    if unknown:
        raise PoseTrackFormatError(path, field, f"unknown joint order: names {unknown} are not PoseTrack joints")
    slots = [_SLOT_FOR_NAME[_NAME_ALIASES.get(n, n)] for n in names]
    if len(set(slots)) != len(slots):
        raise PoseTrackFormatError(path, field, f"unknown joint order: repeated joint names in {names}")
    return slots


def _keypoint_array(path: Path, field: str, raw: Any, num_joints: int) -> npt.NDArray[np.float32]:
    if not isinstance(raw, list) or len(raw) != 3 * num_joints:
        got = len(raw) if isinstance(raw, list) else type(raw).__name__
        raise PoseTrackFormatError(path, field, f"expected {3 * num_joints} numbers, got {got}")
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in raw):
        raise PoseTrackFormatError(path, field, "expected numbers only")
    keypoints = np.asarray(raw, np.float32).reshape(num_joints, 3)
    if not np.isfinite(keypoints).all():
        raise PoseTrackFormatError(path, field, "contains NaN or infinity")
    return keypoints


# ---------------------------------------------------------------------------------------------------
# PT17 annolist (mat2json output: every scalar is a one-element list)


def _read_annolist(path: Path, content: dict) -> Video:
    annolist = content["annolist"]
    if not isinstance(annolist, list) or not annolist:
        raise PoseTrackFormatError(path, "annolist", "expected a non-empty list of frames")
    frames = []
    for i, entry in enumerate(annolist):
        field = f"annolist[{i}]"
        entry = _object(path, field, entry)
        image = _scalar(_require(path, entry, "image", field))
        name = image.get("name") if isinstance(image, dict) else None
        name = _scalar(name)
        if not isinstance(name, str):
            raise PoseTrackFormatError(path, f"{field}.image[0].name", f"expected a string, got {name!r}")
        index, _, _ = parse_frame_name(path, f"{field}.image[0].name", name)
        rects = _list(path, f"{field}.annorect", _lone_struct(entry.get("annorect")))
        persons = tuple(_read_annorect(path, f"{field}.annorect[{j}]", rect) for j, rect in enumerate(rects))
        labeled_default = any(p.has_keypoints for p in persons)
        is_labeled = _flag(path, f"{field}.is_labeled", _scalar(entry.get("is_labeled", labeled_default)))
        image_id = _pt17_image_id(path, f"{field}.image[0].name", name, index)
        frames.append(Frame(image_id, name, index, is_labeled, None, None, persons, f"{field}.image[0].name"))
    return Video(path.stem, path, len(frames), 1, tuple(frames))


def _read_annorect(path: Path, field: str, rect: Any) -> Person:
    rect = _object(path, field, rect)
    keypoints = np.zeros((NUM_JOINTS, 3), np.float32)
    annopoints = rect.get("annopoints")
    points = []
    if annopoints is not None and annopoints != []:
        annopoint = _object(path, f"{field}.annopoints[0]", _scalar(annopoints))
        points = _list(path, f"{field}.annopoints[0].point", _lone_struct(annopoint.get("point")))
    seen = set()
    for k, point in enumerate(points):
        pfield = f"{field}.annopoints[0].point[{k}]"
        point = _object(path, pfield, point)
        joint_id = _int(path, f"{pfield}.id", _scalar(_require(path, point, "id", pfield)))
        if joint_id not in _SLOT_FOR_PT17_ID:
            raise PoseTrackFormatError(path, f"{pfield}.id", f"unknown joint order: id {joint_id} is not in 0..14")
        if joint_id in seen:  # poseval uses the first occurrence of a repeated joint id
            continue
        seen.add(joint_id)
        x = _number(path, f"{pfield}.x", _scalar(_require(path, point, "x", pfield)))
        y = _number(path, f"{pfield}.y", _scalar(_require(path, point, "y", pfield)))
        # poseval's convert.py: v is `is_visible` when given, else 1.
        v = _number(path, f"{pfield}.is_visible", _scalar(point.get("is_visible", 1)))
        keypoints[_SLOT_FOR_PT17_ID[joint_id]] = (x, y, v)
    head = None
    if all(k in rect for k in ("x1", "y1", "x2", "y2")):
        x1, y1, x2, y2 = (_number(path, f"{field}.{k}", _scalar(rect[k])) for k in ("x1", "y1", "x2", "y2"))
        head = (x1, y1, x2 - x1, y2 - y1)
    track_id = _int(path, f"{field}.track_id", _scalar(rect.get("track_id", -1)))
    return Person(keypoints, joint_box(keypoints), head, track_id, field=field)


def _pt17_image_id(path: Path, field: str, name: str, index: int) -> int:
    # poseval's frame id `T SSSSSS FFFF`: source (1 mpii, 2 bonn, 3 mpiinew), sequence, frame number.
    match = re.match(r"^(\d+)_(mpiinew|mpii|bonn)", Path(name).parent.name)
    if match is None:
        raise PoseTrackFormatError(path, field, f"video folder of {name!r} is not <digits>_<mpii|bonn|mpiinew>")
    source = {"mpii": 1, "bonn": 2, "mpiinew": 3}[match.group(2)]
    return source * 10**10 + int(match.group(1)) * 10**4 + index


# ---------------------------------------------------------------------------------------------------
# field helpers


# Each reads one JSON value as the type the format says, or raises PoseTrackFormatError naming file and field.


def _scalar(value: Any) -> Any:
    return value[0] if isinstance(value, list) and len(value) == 1 else value


def _lone_struct(value: Any) -> Any:
    """mat2json writes a list of one struct as the struct alone, and an empty one as null or nothing."""
    return [] if value is None else [value] if isinstance(value, dict) else value


def _object(path: Path, field: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise PoseTrackFormatError(path, field, f"expected an object, got {_short(value)}")
    return value


def _list(path: Path, field: str, value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise PoseTrackFormatError(path, field, f"expected a list, got {_short(value)}")
    return value


def _string(path: Path, field: str, value: Any) -> str:
    if not isinstance(value, str):
        raise PoseTrackFormatError(path, field, f"expected a string, got {_short(value)}")
    return value


def _flag(path: Path, field: str, value: Any) -> bool:
    """A JSON boolean, or 0 / 1 as mat2json writes MATLAB's logicals."""
    if value not in (True, False) or not isinstance(value, bool | int):
        raise PoseTrackFormatError(path, field, f"expected true or false, got {_short(value)}")
    return bool(value)


def _require(path: Path, obj: dict, key: str, field: str) -> Any:
    if key not in obj:
        raise PoseTrackFormatError(path, f"{field}.{key}" if field else key, "missing")
    return obj[key]


# every id is stored as int64 (Arrow, numpy); a larger one cannot be told apart from its neighbours
INT64_RANGE = range(-(2**63), 2**63)


def _int(path: Path, field: str, value: Any) -> int:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or (isinstance(value, float) and not math.isfinite(value))
        or int(value) != value
    ):
        raise PoseTrackFormatError(path, field, f"expected an integer, got {_short(value)}")
    if int(value) not in INT64_RANGE:
        raise PoseTrackFormatError(path, field, f"{int(value)} is out of range (64-bit integers only)")
    return int(value)


def _positive_int(path: Path, field: str, value: Any) -> int:
    number = _int(path, field, value)
    if number < 1:
        raise PoseTrackFormatError(path, field, f"expected a positive integer, got {number}")
    return number


def _finite(value: int | float) -> bool:
    try:
        return math.isfinite(value) and abs(value) < 1e30  # float32 boxes and keypoints
    except OverflowError:  # an int beyond float range
        return False


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:77]}..."


def _number(path: Path, field: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not _finite(value):
        raise PoseTrackFormatError(path, field, f"expected a finite number, got {_short(value)}")
    return float(value)


def _box(path: Path, field: str, value: Any) -> tuple[float, float, float, float]:
    if not isinstance(value, list) or len(value) != 4:
        raise PoseTrackFormatError(path, field, f"expected [x, y, w, h], got {value!r}")
    x, y, w, h = (_number(path, field, v) for v in value)
    return (x, y, w, h)
