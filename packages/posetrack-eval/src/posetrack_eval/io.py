"""Load PoseTrack ground truth and predictions in every format poseval reads into per-sequence arrays.

Formats: PoseTrack17 ``annolist`` files, PoseTrack18/21 COCO-like files (``images`` + ``annotations`` +
``categories``), one per video or merged, and COCO keypoint results (a list keyed by ``image_id``).
Everything is normalised to 15 scored joints in the 17-slot order without the ears
(``joints.PT21_FROM_SLOT17``). Nothing here applies scoring rules; ``matching`` does.
"""

from __future__ import annotations

import gc
import json
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from posetrack_eval.joints import NUM_EVAL_JOINTS, POSEVAL_FROM_SLOT17, PT21_FROM_SLOT17, SLOT17_NAMES

__all__ = [
    "MISSING_SCORE",
    "GroundTruthSequence",
    "Persons",
    "PoseTrackFormatError",
    "iter_ground_truth",
    "load_predictions",
]

# poseval's MIN_SCORE: the score of a predicted joint that carries none.
MISSING_SCORE = -9999.0

# internal joint index of each poseval id, and of each of the 17 slots (-1 for the ears)
_INTERNAL_FROM_POSEVAL = np.array([PT21_FROM_SLOT17.index(slot) for slot in POSEVAL_FROM_SLOT17])
_INTERNAL_FROM_SLOT17 = np.array([PT21_FROM_SLOT17.index(s) if s in PT21_FROM_SLOT17 else -1 for s in range(17)])
_POSEVAL_NAMES_18 = {SLOT17_NAMES[s] for s in PT21_FROM_SLOT17}


class PoseTrackFormatError(ValueError):
    """An input file (or in-memory object) that is not valid PoseTrack data; names the file and the field."""

    def __init__(self, source: str | Path, field: str, problem: str):
        self.source, self.field, self.problem = str(source), field, problem
        super().__init__(f"{source}: {field}: {problem}")


@dataclass
class Persons:
    """The persons of every frame of one sequence, one row per person, frames in order.

    Shapes:
        frame_ptr: Int[F + 1] (persons of frame f are rows frame_ptr[f]:frame_ptr[f + 1])
        xy: Float[n, 15, 2] (raw coordinates, also of joints that are absent)
        present: Bool[n, 15] (poseval's notion: the joint was written)
        score: Float[n, 15] (MISSING_SCORE where the file gives none)
        head: Float[n] (0.6 x head-box diagonal; NaN without a head box)
        track: Int[n] (valid where has_track)
        extra: Float[m, 5] rows (person, joint or -1, x, y, score): annolist points after the first of their
            id, or with an id outside 0..14. They only matter inside ignore regions.
    """

    frame_ptr: npt.NDArray[np.int64]
    xy: npt.NDArray[np.float64]
    present: npt.NDArray[np.bool_]
    score: npt.NDArray[np.float64]
    head: npt.NDArray[np.float64]
    track: npt.NDArray[np.int64]
    has_track: npt.NDArray[np.bool_]
    extra: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros((0, 5)))

    @property
    def num_frames(self) -> int:
        return len(self.frame_ptr) - 1

    @classmethod
    def empty_frames(cls, num_frames: int) -> Persons:
        return cls(
            frame_ptr=np.zeros(num_frames + 1, dtype=np.int64),
            xy=np.zeros((0, NUM_EVAL_JOINTS, 2)),
            present=np.zeros((0, NUM_EVAL_JOINTS), dtype=bool),
            score=np.zeros((0, NUM_EVAL_JOINTS)),
            head=np.zeros(0),
            track=np.zeros(0, dtype=np.int64),
            has_track=np.zeros(0, dtype=bool),
        )


@dataclass
class GroundTruthSequence:
    """One ground-truth video: its persons, frame flags and ignore regions.

    ``rect_count[f]`` counts every GT rect of frame f as written (poseval keeps a frame iff it is positive,
    even when none of its rects has points). ``regions[f]`` lists the ignore polygons (``Float[k, 2]``) of
    frame f when it has any.
    """

    name: str
    source: str
    persons: Persons
    rect_count: npt.NDArray[np.int64]
    labeled: npt.NDArray[np.bool_]
    image_ids: npt.NDArray[np.int64] | None
    file_names: list[str]
    regions: dict[int, list[npt.NDArray[np.float64]]]
    annolist: bool

    @property
    def num_frames(self) -> int:
        return len(self.rect_count)


# ---------------------------------------------------------------------------------------------------------------
# JSON reading


def read_json(path: Path) -> Any:
    """Parse one JSON file; a malformed or empty file raises PoseTrackFormatError."""
    try:
        text = path.read_bytes()
    except OSError as err:
        raise PoseTrackFormatError(path, "file", f"cannot read ({err.strerror})") from None
    if not text.strip():
        raise PoseTrackFormatError(path, "file", "empty file")
    # the cyclic GC finds nothing to free in fresh JSON but rescans it on every allocation burst;
    # pausing it makes large files parse about a third faster
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        return json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise PoseTrackFormatError(path, "file", f"not valid JSON ({err})") from None
    except RecursionError:
        raise PoseTrackFormatError(path, "file", "JSON nested too deeply") from None
    finally:
        if gc_was_enabled:
            gc.enable()


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _number(value: Any, source: str, where: str) -> float:
    if not _is_number(value):
        raise PoseTrackFormatError(source, where, f"expected a number, got {value!r:.60}")
    if not math.isfinite(value):
        raise PoseTrackFormatError(source, where, f"must be finite, got {value!r}")
    return float(value)


def _integer(value: Any, source: str, where: str) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise PoseTrackFormatError(source, where, f"expected an integer, got {value!r:.60}")
    if not -(2**63) <= value < 2**63:
        raise PoseTrackFormatError(source, where, f"{value} does not fit in 64 bits")
    return value


def _field(obj: Any, key: str, source: str, where: str) -> Any:
    if not isinstance(obj, dict):
        raise PoseTrackFormatError(source, where, f"expected an object, got {type(obj).__name__}")
    if key not in obj:
        raise PoseTrackFormatError(source, f"{where}.{key}" if where else key, "missing")
    return obj[key]


def _list(value: Any, source: str, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise PoseTrackFormatError(source, where, f"expected a list, got {type(value).__name__}")
    return value


def _one(value: Any, source: str, where: str) -> Any:
    """Annolist stores scalars as one-element lists (MATLAB export); accept a bare scalar too."""
    if isinstance(value, list):
        if len(value) != 1:
            raise PoseTrackFormatError(source, where, f"expected one value, got {len(value)}")
        return value[0]
    return value


def _float_matrix(rows: list[Any], width: int, source: str, label: Callable[[int], str]) -> npt.NDArray[np.float64]:
    """Stack equal-length number lists fast; on any problem find the offending row for the message."""
    if not rows:
        return np.zeros((0, width))
    try:
        arr = np.array(rows)
        ok = arr.ndim == 2 and arr.shape[1] == width and arr.dtype.kind in "iuf"
    except (ValueError, TypeError):
        ok = False
    if ok:
        arr = arr.astype(np.float64, copy=False)
        if np.isfinite(arr).all():
            return arr
    for i, row in enumerate(rows):
        where = label(i)
        if not isinstance(row, list):
            raise PoseTrackFormatError(source, where, f"expected a list of {width} numbers, got {type(row).__name__}")
        if len(row) != width:
            raise PoseTrackFormatError(source, where, f"expected {width} numbers, got {len(row)}")
        for j, value in enumerate(row):
            _number(value, source, f"{where}[{j}]")
    raise AssertionError("unreachable: a bad row must have been found")


def _int_array(values: list[Any], source: str, label: Callable[[int], str]) -> npt.NDArray[np.int64]:
    """Integers as an array, fast when they are all plain ints; else the first bad one is named."""
    if not values:
        return np.zeros(0, dtype=np.int64)
    if bool not in set(map(type, values)):
        try:
            arr = np.array(values)
        except (ValueError, TypeError, OverflowError):
            arr = None
        if arr is not None and arr.ndim == 1 and arr.dtype == np.int64:
            return arr
    return np.array([_integer(v, source, label(i)) for i, v in enumerate(values)], dtype=np.int64)


def _column(items: list[dict[str, Any]], key: str, source: str, label: Callable[[int], str]) -> list[Any]:
    """``item[key]`` of every item; a missing key is named."""
    try:
        return [item[key] for item in items]
    except KeyError:
        k = next(k for k, item in enumerate(items) if key not in item)
        raise PoseTrackFormatError(source, f"{label(k)}.{key}", "missing") from None


def _frames_of(
    image_ids: npt.NDArray[np.int64], ann_ids: npt.NDArray[np.int64], source: str, label: Callable[[int], str]
) -> npt.NDArray[np.int64]:
    """Index in ``image_ids`` of every annotation's image (all must exist)."""
    sorter = np.argsort(image_ids, kind="stable")
    pos = np.minimum(np.searchsorted(image_ids[sorter], ann_ids), max(len(image_ids) - 1, 0))
    found = image_ids[sorter][pos] == ann_ids if len(image_ids) else np.zeros(len(ann_ids), dtype=bool)
    if not found.all():
        k = int(np.flatnonzero(~found)[0])
        raise PoseTrackFormatError(source, f"{label(k)}.image_id", f"{ann_ids[k]} is not in images")
    return sorter[pos]


def _unique_ids(ids: npt.NDArray[np.int64], source: str, label: Callable[[int], str], what: str) -> None:
    uniq, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        dup = uniq[counts > 1][0]
        k = int(np.flatnonzero(ids == dup)[1])
        raise PoseTrackFormatError(source, label(k), f"duplicate {what} {dup}")


# ---------------------------------------------------------------------------------------------------------------
# COCO-like (PoseTrack18/21) files


def _slot_table(data: dict[str, Any], source: str) -> npt.NDArray[np.int64]:
    """Internal joint index (or -1) for each keypoint position, from ``categories[0].keypoints`` if given."""
    categories = data.get("categories")
    if not categories:
        return _INTERNAL_FROM_SLOT17
    names = _field(_list(categories, source, "categories")[0], "keypoints", source, "categories[0]")
    names = _list(names, source, "categories[0].keypoints")
    if len(names) not in (15, 17) or not all(isinstance(n, str) for n in names):
        raise PoseTrackFormatError(source, "categories[0].keypoints", f"expected 15 or 17 names, got {names!r:.80}")
    missing = _POSEVAL_NAMES_18 - set(names)
    if missing:
        raise PoseTrackFormatError(source, "categories[0].keypoints", f"missing joints {sorted(missing)}")
    table = [PT21_FROM_SLOT17.index(SLOT17_NAMES.index(n)) if n in _POSEVAL_NAMES_18 else -1 for n in names]
    return np.array(table)


def _coco_persons(
    anns: list[dict[str, Any]],
    frame_of: npt.NDArray[np.int64],
    num_frames: int,
    table: npt.NDArray[np.int64],
    source: str,
    *,
    ground_truth: bool,
    prefix: str,
    indices: Sequence[int] | None = None,
) -> Persons:
    """Persons from COCO-like annotations; ``frame_of[i]`` is the frame of ``anns[i]``.

    Errors name ``{prefix}[indices[i]]`` (``indices`` defaults to 0, 1, ...).
    """
    if len(frame_of) and (frame_of[1:] < frame_of[:-1]).any():
        order = np.argsort(frame_of, kind="stable").tolist()
        items = [anns[i] for i in order]
    else:
        order, items = range(len(anns)), anns

    def label(k: int) -> str:
        i = order[k]
        return f"{prefix}[{i if indices is None else indices[i]}]"

    kpts = _float_matrix(_column(items, "keypoints", source, label), 3 * len(table), source,
                         lambda k: f"{label(k)}.keypoints").reshape(-1, len(table), 3)  # fmt: skip
    n = len(items)
    score_rows = [item.get("scores") for item in items]
    bad = next((k for k, row in enumerate(score_rows) if not row and row is not None and row != []), None)
    if bad is not None:
        raise PoseTrackFormatError(source, f"{label(bad)}.scores", f"expected a list, got {score_rows[bad]!r:.40}")
    score_full = np.full((n, len(table)), MISSING_SCORE)
    given = [k for k, row in enumerate(score_rows) if row]  # poseval: an empty list means no scores
    if given:
        rows = [score_rows[k] for k in given]
        score_full[given] = _float_matrix(rows, len(table), source, lambda k: f"{label(given[k])}.scores")
    track_rows = [item.get("track_id") for item in items]
    has_track = np.array([t is not None for t in track_rows], dtype=bool).reshape(n)
    with_track = np.flatnonzero(has_track)
    track = np.zeros(n, dtype=np.int64)
    track[with_track] = _int_array([track_rows[k] for k in with_track], source,
                                   lambda k: f"{label(with_track[k])}.track_id")  # fmt: skip
    head = np.full(n, math.nan)
    if ground_truth:
        box_rows = [item.get("bbox_head") for item in items]
        with_box = [k for k, box in enumerate(box_rows) if box is not None]
        boxes = _float_matrix([box_rows[k] for k in with_box], 4, source, lambda k: f"{label(with_box[k])}.bbox_head")
        # poseval converts to corners and back: x2 - x1 with x2 = x + w, not w itself
        dx = (boxes[:, 0] + boxes[:, 2]) - boxes[:, 0]
        dy = (boxes[:, 1] + boxes[:, 3]) - boxes[:, 1]
        head[with_box] = 0.6 * np.sqrt(dx * dx + dy * dy)
    keep = table >= 0
    xy = np.zeros((n, NUM_EVAL_JOINTS, 2))
    present = np.zeros((n, NUM_EVAL_JOINTS), dtype=bool)
    score = np.full((n, NUM_EVAL_JOINTS), MISSING_SCORE)
    xy[:, table[keep]] = kpts[:, keep, :2]
    # poseval's converter drops exactly (0, 0, v=0); anything else is a written joint
    present[:, table[keep]] = ~((kpts[:, keep, 0] == 0) & (kpts[:, keep, 1] == 0) & (kpts[:, keep, 2] == 0))
    score[:, table[keep]] = score_full[:, keep]
    counts = np.bincount(frame_of, minlength=num_frames)
    if ground_truth:
        joints_without_head = np.isnan(head) & present.any(axis=1)
        if joints_without_head.any():
            bad = label(int(np.flatnonzero(joints_without_head)[0]))
            raise PoseTrackFormatError(source, f"{bad}.bbox_head", "missing (needed for the head size)")
    return Persons(
        frame_ptr=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        xy=xy,
        present=present,
        score=score,
        head=head,
        track=track,
        has_track=has_track,
    )


def _coco_regions(image: dict[str, Any], source: str, where: str) -> list[npt.NDArray[np.float64]]:
    xs, ys = image.get("ignore_regions_x"), image.get("ignore_regions_y")
    if not xs or ys is None:
        return []
    xs, ys = _list(xs, source, f"{where}.ignore_regions_x"), _list(ys, source, f"{where}.ignore_regions_y")
    if len(xs) != len(ys):
        raise PoseTrackFormatError(source, f"{where}.ignore_regions_y", f"{len(ys)} polygons for {len(xs)} in x")
    polygons = []
    for r, (px, py) in enumerate(zip(xs, ys, strict=True)):
        px, py = (
            _list(px, source, f"{where}.ignore_regions_x[{r}]"),
            _list(py, source, f"{where}.ignore_regions_y[{r}]"),
        )
        if len(px) != len(py):
            raise PoseTrackFormatError(source, f"{where}.ignore_regions_y[{r}]", f"{len(py)} points for {len(px)} in x")
        xs_r = [_number(x, source, f"{where}.ignore_regions_x[{r}]") for x in px]
        ys_r = [_number(y, source, f"{where}.ignore_regions_y[{r}]") for y in py]
        polygons.append(np.array([xs_r, ys_r], dtype=np.float64).T.reshape(-1, 2))
    return polygons


def _coco_images(data: dict[str, Any], source: str) -> list[dict[str, Any]]:
    images = _list(_field(data, "images", source, ""), source, "images")
    for i, image in enumerate(images):
        if not isinstance(image, dict):
            raise PoseTrackFormatError(source, f"images[{i}]", f"expected an object, got {type(image).__name__}")
    return images


def _coco_annotations(data: dict[str, Any], source: str) -> list[dict[str, Any]]:
    anns = _list(_field(data, "annotations", source, ""), source, "annotations")
    for i, ann in enumerate(anns):
        if not isinstance(ann, dict):
            raise PoseTrackFormatError(source, f"annotations[{i}]", f"expected an object, got {type(ann).__name__}")
    return anns


def _labeller(prefix: str) -> Callable[[int], str]:
    return lambda k: f"{prefix}[{k}]"


def _image_ids_and_names(images: list[dict[str, Any]], source: str) -> tuple[npt.NDArray[np.int64], list[str]]:
    """The ``id`` (unique) and ``file_name`` of every image."""
    label = _labeller("images")
    ids = _int_array(_column(images, "id", source, label), source, lambda k: f"images[{k}].id")
    _unique_ids(ids, source, lambda k: f"images[{k}].id", "image id")
    names = [im.get("file_name") for im in images]
    if set(map(type, names)) - {str}:
        k = next(k for k, name in enumerate(names) if not isinstance(name, str))
        problem = "missing" if names[k] is None else f"expected a string, got {names[k]!r:.60}"
        raise PoseTrackFormatError(source, f"images[{k}].file_name", problem)
    return ids, names


def _video_name(file_name: str) -> str:
    parts = file_name.replace("\\", "/").split("/")
    return parts[-2] if len(parts) >= 2 else ""


def _coco_ground_truth(data: dict[str, Any], source: str, default_name: str) -> list[GroundTruthSequence]:
    """One or more sequences (a merged file holds several) from a COCO-like GT file."""
    images = _coco_images(data, source)
    anns = _coco_annotations(data, source)
    table = _slot_table(data, source)
    ids, names = _image_ids_and_names(images, source)
    ann_label = _labeller("annotations")
    frame_of_ann = _frames_of(ids, _int_array(_column(anns, "image_id", source, ann_label), source,
                                              lambda k: f"annotations[{k}].image_id"), source, ann_label)  # fmt: skip
    with_id = [k for k, ann in enumerate(anns) if "id" in ann]
    ann_ids = _int_array([anns[k]["id"] for k in with_id], source, lambda k: f"annotations[{with_id[k]}].id")
    _unique_ids(ann_ids, source, lambda k: f"annotations[{with_id[k]}].id", "annotation id")
    ids = ids.tolist()
    # a merged file: group frames by video folder, in order of first appearance, sequences sorted by name
    videos: dict[str, list[int]] = {}
    for i, name in enumerate(names):
        videos.setdefault(_video_name(name) or default_name, []).append(i)
    if len(videos) == 1:
        videos = {default_name if default_name else next(iter(videos)): next(iter(videos.values()))}
    sequences = []
    ann_order = np.argsort(frame_of_ann, kind="stable")
    ann_frames = frame_of_ann[ann_order]
    for video in sorted(videos):
        frames = np.array(videos[video], dtype=np.int64)
        local = np.full(len(images), -1, dtype=np.int64)
        local[frames] = np.arange(len(frames))
        mine = ann_order[local[ann_frames] >= 0]
        persons = _coco_persons(
            [anns[a] for a in mine.tolist()], local[frame_of_ann[mine]], len(frames), table, source,
            ground_truth=True, prefix="annotations", indices=mine,
        )  # fmt: skip
        regions = {}
        for f, i in enumerate(frames):
            polys = _coco_regions(images[i], source, f"images[{i}]")
            if polys:
                regions[f] = polys
        sequences.append(
            GroundTruthSequence(
                name=video,
                source=source,
                persons=persons,
                rect_count=np.diff(persons.frame_ptr),
                labeled=np.array([bool(images[i].get("is_labeled", False)) for i in frames], dtype=bool),
                image_ids=np.array([ids[i] for i in frames], dtype=np.int64),
                file_names=[names[i] for i in frames],
                regions=regions,
                annolist=False,
            )
        )
    return sequences


# ---------------------------------------------------------------------------------------------------------------
# PoseTrack17 annolist files


def _annolist_rect(rect: Any, source: str, where: str, ground_truth: bool) -> tuple[bool, dict[str, Any]]:
    """(has points, parsed person) for one annorect; poseval drops rects without ``annopoints[0].point``."""
    if not isinstance(rect, dict):
        raise PoseTrackFormatError(source, where, f"expected an object, got {type(rect).__name__}")
    annopoints = rect.get("annopoints")
    if not annopoints or not isinstance(annopoints, list) or not isinstance(annopoints[0], dict) or not annopoints[0]:
        return False, {}
    if "point" not in annopoints[0]:
        return False, {}
    points = _list(annopoints[0]["point"], source, f"{where}.annopoints[0].point")
    xy = np.zeros((NUM_EVAL_JOINTS, 2))
    present = np.zeros(NUM_EVAL_JOINTS, dtype=bool)
    score = np.full(NUM_EVAL_JOINTS, MISSING_SCORE)
    extra = []
    for p, point in enumerate(points):
        pw = f"{where}.annopoints[0].point[{p}]"
        pid = _integer(_one(_field(point, "id", source, pw), source, f"{pw}.id"), source, f"{pw}.id")
        x = _number(_one(_field(point, "x", source, pw), source, f"{pw}.x"), source, f"{pw}.x")
        y = _number(_one(_field(point, "y", source, pw), source, f"{pw}.y"), source, f"{pw}.y")
        s = MISSING_SCORE
        if "score" in point and not ground_truth:
            s = _number(_one(point["score"], source, f"{pw}.score"), source, f"{pw}.score")
        joint = int(_INTERNAL_FROM_POSEVAL[pid]) if 0 <= pid < NUM_EVAL_JOINTS else -1
        if joint >= 0 and not present[joint]:
            present[joint], xy[joint], score[joint] = True, (x, y), s
        else:
            extra.append((joint, x, y, s))  # poseval uses the first point of an id; others only count as points
    head = math.nan
    if ground_truth and all(k in rect for k in ("x1", "y1", "x2", "y2")):
        x1, y1, x2, y2 = (
            _number(_one(rect[k], source, f"{where}.{k}"), source, f"{where}.{k}") for k in ("x1", "y1", "x2", "y2")
        )
        head = 0.6 * math.sqrt((x2 - x1) ** 2 + (y2 - y1) ** 2)
    elif ground_truth and present.any():
        raise PoseTrackFormatError(source, f"{where}.x1", "missing head box (x1, y1, x2, y2)")
    track = rect.get("track_id")
    track = None if track is None else _integer(_one(track, source, f"{where}.track_id"), source, f"{where}.track_id")
    return True, {"xy": xy, "present": present, "score": score, "head": head, "track": track, "extra": extra}


def _annolist_persons(frames: list[Any], source: str, ground_truth: bool) -> tuple[Persons, npt.NDArray[np.int64]]:
    rows: list[dict[str, Any]] = []
    ptr, rect_count = [0], []
    for f, frame in enumerate(frames):
        where = f"annolist[{f}]"
        rects = _list(_field(frame, "annorect", source, where), source, f"{where}.annorect")
        rect_count.append(len(rects))
        for r, rect in enumerate(rects):
            ok, person = _annolist_rect(rect, source, f"{where}.annorect[{r}]", ground_truth)
            if ok:
                rows.append(person)
        ptr.append(len(rows))
    n = len(rows)
    extra = [(i, *e) for i, row in enumerate(rows) for e in row["extra"]]
    persons = Persons(
        frame_ptr=np.array(ptr, dtype=np.int64),
        xy=np.array([r["xy"] for r in rows]).reshape(n, NUM_EVAL_JOINTS, 2),
        present=np.array([r["present"] for r in rows], dtype=bool).reshape(n, NUM_EVAL_JOINTS),
        score=np.array([r["score"] for r in rows]).reshape(n, NUM_EVAL_JOINTS),
        head=np.array([r["head"] for r in rows], dtype=np.float64),
        track=np.array([r["track"] or 0 for r in rows], dtype=np.int64),
        has_track=np.array([r["track"] is not None for r in rows], dtype=bool),
        extra=np.array(extra, dtype=np.float64).reshape(-1, 5),
    )
    return persons, np.array(rect_count, dtype=np.int64)


def _annolist_regions(frame: dict[str, Any], source: str, where: str) -> list[npt.NDArray[np.float64]]:
    regions = frame.get("ignore_regions")
    if not regions:
        return []
    polygons = []
    for r, region in enumerate(_list(regions, source, f"{where}.ignore_regions")):
        rw = f"{where}.ignore_regions[{r}]"
        points = _list(_field(region, "point", source, rw), source, f"{rw}.point")
        polygons.append(
            np.array([[_number(_one(_field(p, "x", source, rw), source, f"{rw}.point.x"), source, f"{rw}.point.x"),
                       _number(_one(_field(p, "y", source, rw), source, f"{rw}.point.y"), source, f"{rw}.point.y")]
                      for p in points]).reshape(-1, 2)
        )  # fmt: skip
    return polygons


def _annolist_frames(data: dict[str, Any], source: str) -> list[dict[str, Any]]:
    frames = _list(data["annolist"], source, "annolist")
    for f, frame in enumerate(frames):
        if not isinstance(frame, dict):
            raise PoseTrackFormatError(source, f"annolist[{f}]", f"expected an object, got {type(frame).__name__}")
    return frames


def _annolist_name(frame: dict[str, Any]) -> str:
    try:
        return str(frame["image"][0]["name"])
    except (KeyError, IndexError, TypeError):
        return ""


def _annolist_ground_truth(data: dict[str, Any], source: str, name: str) -> GroundTruthSequence:
    frames = _annolist_frames(data, source)
    persons, rect_count = _annolist_persons(frames, source, ground_truth=True)
    regions = {}
    for f, frame in enumerate(frames):
        polys = _annolist_regions(frame, source, f"annolist[{f}]")
        if polys:
            regions[f] = polys
    labeled = np.array(
        [bool(_one(fr.get("is_labeled", [len(fr["annorect"]) > 0]), source, "is_labeled")) for fr in frames], dtype=bool
    )
    return GroundTruthSequence(
        name=name, source=source, persons=persons, rect_count=rect_count, labeled=labeled, image_ids=None,
        file_names=[_annolist_name(fr) for fr in frames], regions=regions, annolist=True,
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------------------------
# public loaders


def _gt_sequences_of(data: Any, source: str, name: str) -> list[GroundTruthSequence]:
    if isinstance(data, dict) and "annolist" in data:
        return [_annolist_ground_truth(data, source, name)]
    if isinstance(data, dict) and "images" in data:
        return _coco_ground_truth(data, source, name)
    raise PoseTrackFormatError(
        source, "file", "expected a PoseTrack object with 'annolist' or 'images' + 'annotations'"
    )


def ground_truth_files(gt: Path) -> list[Path]:
    """The GT files: every ``*.json`` of a folder (sorted by name), or the one file given."""
    if gt.is_dir():
        files = sorted(gt.glob("*.json"))
        if not files:
            raise PoseTrackFormatError(gt, "folder", "no *.json ground-truth files")
        return files
    if not gt.exists():
        raise PoseTrackFormatError(gt, "path", "does not exist")
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
            raise PoseTrackFormatError(path, "images", f"a per-sequence file holds several videos ({names}, ...)")
        sequences[0].name = path.stem
        yield sequences[0]


def _check_unique_tracks(persons: Persons, source: str) -> None:
    """Poseval rejects a prediction frame that repeats a track id."""
    if not persons.has_track.any():
        return
    frame = np.repeat(np.arange(persons.num_frames), np.diff(persons.frame_ptr))
    rows = np.flatnonzero(persons.has_track)
    pairs = np.stack([frame[rows], persons.track[rows]], axis=1)
    uniq, counts = np.unique(pairs, axis=0, return_counts=True)
    if (counts > 1).any():
        f, t = uniq[np.argmax(counts > 1)]
        raise PoseTrackFormatError(source, "track_id", f"track id {t} appears twice in frame {f}")


def sequence_predictions(data: Any, source: str, gt: GroundTruthSequence) -> Persons:
    """Predictions of one per-sequence file, paired with the GT frames by position as poseval does."""
    if isinstance(data, dict) and "annolist" in data:
        frames = _annolist_frames(data, source)
        persons, _ = _annolist_persons(frames, source, ground_truth=False)
    elif isinstance(data, dict) and "images" in data:
        images = _coco_images(data, source)
        anns = _coco_annotations(data, source)
        label = _labeller("annotations")
        image_ids = _int_array(_column(images, "id", source, _labeller("images")), source, lambda k: f"images[{k}].id")
        _unique_ids(image_ids, source, lambda k: f"images[{k}].id", "image id")
        ann_image_ids = _int_array(_column(anns, "image_id", source, label), source, lambda k: f"{label(k)}.image_id")
        frame_of = _frames_of(image_ids, ann_image_ids, source, label)
        persons = _coco_persons(anns, frame_of, len(images), _slot_table(data, source), source, ground_truth=False,
                                prefix="annotations")  # fmt: skip
    else:
        raise PoseTrackFormatError(
            source, "file", "expected a PoseTrack object with 'annolist' or 'images' + 'annotations'"
        )
    if persons.num_frames != gt.num_frames:
        field_name = "annolist" if "annolist" in data else "images"
        problem = f"{persons.num_frames} frames for {gt.num_frames} GT frames of {gt.name} (poseval pairs by position)"
        raise PoseTrackFormatError(source, field_name, problem)
    _check_unique_tracks(persons, source)
    return persons


class MergedPredictions:
    """Predictions keyed by image (a merged PoseTrack18 file, a COCO results list, or the same in memory)."""

    def __init__(self, data: Any, source: str):
        self.source = source
        table = _INTERNAL_FROM_SLOT17
        if isinstance(data, dict) and "annotations" in data:
            anns = _coco_annotations(data, source)
            table = _slot_table(data, source)
            self.id_of_file_name: dict[str, int] = {}
            if "images" in data:
                images = _coco_images(data, source)
                label = _labeller("images")
                ids = _int_array(_column(images, "id", source, label), source, lambda k: f"{label(k)}.id").tolist()
                names = [im.get("file_name") for im in images]
                self.id_of_file_name = {n: i for n, i in zip(names, ids, strict=True) if isinstance(n, str)}
            self.prefix = "annotations"
        elif isinstance(data, list):
            anns = data
            for i, ann in enumerate(anns):
                if not isinstance(ann, dict):
                    raise PoseTrackFormatError(source, f"[{i}]", f"expected an object, got {type(ann).__name__}")
            self.id_of_file_name = {}
            self.prefix = ""
        else:
            raise PoseTrackFormatError(source, "file", "expected a COCO results list or an object with 'annotations'")
        self.anns, self.table = anns, table
        label = _labeller(self.prefix)
        self.image_ids = _int_array(_column(anns, "image_id", source, label), source, lambda k: f"{label(k)}.image_id")
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
                raise PoseTrackFormatError(self.source, "image_id", problem)
            keys = np.array([self.id_of_file_name.get(name, -(2**63)) for name in gt.file_names], dtype=np.int64)
        lo = np.searchsorted(self.sorted_ids, keys, side="left")
        hi = np.searchsorted(self.sorted_ids, keys, side="right")
        counts = hi - lo
        mine = self.by_image[
            np.repeat(lo - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts) + np.arange(counts.sum())
        ]
        frame_of_ann = np.repeat(np.arange(gt.num_frames), counts)
        self.used[mine] = True
        persons = _coco_persons(
            [self.anns[i] for i in mine.tolist()], frame_of_ann, gt.num_frames, self.table, self.source,
            ground_truth=False, prefix=self.prefix, indices=mine,
        )  # fmt: skip
        _check_unique_tracks(persons, self.source)
        return persons

    def check_all_used(self) -> None:
        if not self.used.all():
            i = int(np.flatnonzero(~self.used)[0])
            raise PoseTrackFormatError(
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
        raise PoseTrackFormatError(path, "path", "does not exist")
    data = read_json(path)
    if isinstance(data, dict) and "annolist" in data:
        raise PoseTrackFormatError(
            path, "annolist", "a single annolist file cannot be split into sequences; give the per-sequence folder"
        )
    return MergedPredictions(data, str(path))
