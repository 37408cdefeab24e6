"""PoseTrack17 ``annolist`` files (poseval's own format, MATLAB-style one-element lists)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from posetrack_eval._parse import as_list, field_of, integer, number, one
from posetrack_eval.joints import NUM_EVAL_JOINTS, POSEVAL_FROM_SLOT17, PT21_FROM_SLOT17
from posetrack_eval.records import MISSING_SCORE, EvalInputError, GroundTruthSequence, Persons

__all__ = ["annolist_frames", "annolist_ground_truth", "annolist_persons"]

# internal joint index of each poseval id
_INTERNAL_FROM_POSEVAL = np.array([PT21_FROM_SLOT17.index(slot) for slot in POSEVAL_FROM_SLOT17])


def _annolist_rect(rect: Any, source: str, where: str, ground_truth: bool) -> tuple[bool, dict[str, Any]]:
    """(has points, parsed person) for one annorect; poseval drops rects without ``annopoints[0].point``."""
    if not isinstance(rect, dict):
        raise EvalInputError(source, where, f"expected an object, got {type(rect).__name__}")
    annopoints = rect.get("annopoints")
    if not annopoints or not isinstance(annopoints, list) or not isinstance(annopoints[0], dict) or not annopoints[0]:
        return False, {}
    if "point" not in annopoints[0]:
        return False, {}
    points = as_list(annopoints[0]["point"], source, f"{where}.annopoints[0].point")
    xy = np.zeros((NUM_EVAL_JOINTS, 2))
    present = np.zeros(NUM_EVAL_JOINTS, dtype=bool)
    score = np.full(NUM_EVAL_JOINTS, MISSING_SCORE)
    extra = []
    for p, point in enumerate(points):
        pw = f"{where}.annopoints[0].point[{p}]"
        pid = integer(one(field_of(point, "id", source, pw), source, f"{pw}.id"), source, f"{pw}.id")
        x = number(one(field_of(point, "x", source, pw), source, f"{pw}.x"), source, f"{pw}.x")
        y = number(one(field_of(point, "y", source, pw), source, f"{pw}.y"), source, f"{pw}.y")
        s = MISSING_SCORE
        if "score" in point and not ground_truth:
            s = number(one(point["score"], source, f"{pw}.score"), source, f"{pw}.score")
        joint = int(_INTERNAL_FROM_POSEVAL[pid]) if 0 <= pid < NUM_EVAL_JOINTS else -1
        if joint >= 0 and not present[joint]:
            present[joint], xy[joint], score[joint] = True, (x, y), s
        else:
            extra.append((joint, x, y, s))  # poseval uses the first point of an id; others only count as points
    head = math.nan
    if ground_truth and all(k in rect for k in ("x1", "y1", "x2", "y2")):
        x1, y1, x2, y2 = (
            number(one(rect[k], source, f"{where}.{k}"), source, f"{where}.{k}") for k in ("x1", "y1", "x2", "y2")
        )
        head = 0.6 * math.sqrt((x2 - x1) ** 2 + (y2 - y1) ** 2)
    elif ground_truth and present.any():
        raise EvalInputError(source, f"{where}.x1", "missing head box (x1, y1, x2, y2)")
    track = rect.get("track_id")
    track = None if track is None else integer(one(track, source, f"{where}.track_id"), source, f"{where}.track_id")
    return True, {"xy": xy, "present": present, "score": score, "head": head, "track": track, "extra": extra}


def annolist_persons(frames: list[Any], source: str, ground_truth: bool) -> tuple[Persons, npt.NDArray[np.int64]]:
    """The persons of every frame, and the number of rects each frame lists (with or without points)."""
    rows: list[dict[str, Any]] = []
    ptr, rect_count = [0], []
    for f, frame in enumerate(frames):
        where = f"annolist[{f}]"
        rects = as_list(field_of(frame, "annorect", source, where), source, f"{where}.annorect")
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
    for r, region in enumerate(as_list(regions, source, f"{where}.ignore_regions")):
        rw = f"{where}.ignore_regions[{r}]"
        points = as_list(field_of(region, "point", source, rw), source, f"{rw}.point")
        polygons.append(
            np.array([[number(one(field_of(p, "x", source, rw), source, f"{rw}.point.x"), source, f"{rw}.point.x"),
                       number(one(field_of(p, "y", source, rw), source, f"{rw}.point.y"), source, f"{rw}.point.y")]
                      for p in points]).reshape(-1, 2)
        )  # fmt: skip
    return polygons


def annolist_frames(data: dict[str, Any], source: str) -> list[dict[str, Any]]:
    """The ``annolist`` entries, checked to be objects."""
    frames = as_list(data["annolist"], source, "annolist")
    for f, frame in enumerate(frames):
        if not isinstance(frame, dict):
            raise EvalInputError(source, f"annolist[{f}]", f"expected an object, got {type(frame).__name__}")
    return frames


def _annolist_name(frame: dict[str, Any]) -> str:
    try:
        return str(frame["image"][0]["name"])
    except (KeyError, IndexError, TypeError):
        return ""


def annolist_ground_truth(data: dict[str, Any], source: str, name: str) -> GroundTruthSequence:
    """One GT sequence from an annolist file."""
    frames = annolist_frames(data, source)
    persons, rect_count = annolist_persons(frames, source, ground_truth=True)
    regions = {}
    for f, frame in enumerate(frames):
        polys = _annolist_regions(frame, source, f"annolist[{f}]")
        if polys:
            regions[f] = polys
    labeled = np.array(
        [bool(one(fr.get("is_labeled", [len(fr["annorect"]) > 0]), source, "is_labeled")) for fr in frames], dtype=bool
    )
    return GroundTruthSequence(
        name=name, source=source, persons=persons, rect_count=rect_count, labeled=labeled, image_ids=None,
        file_names=[_annolist_name(fr) for fr in frames], regions=regions, annolist=True,
    )  # fmt: skip
