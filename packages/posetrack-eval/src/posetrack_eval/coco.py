"""PoseTrack18/21 COCO-like files (``images`` + ``annotations`` + ``categories``) and COCO results rows."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from posetrack_eval._parse import (
    as_list,
    column,
    field_of,
    float_matrix,
    frames_of,
    int_array,
    labeller,
    number,
    unique_ids,
)
from posetrack_eval.joints import NUM_EVAL_JOINTS, PT21_FROM_SLOT17, SLOT17_NAMES
from posetrack_eval.records import MISSING_SCORE, EvalInputError, GroundTruthSequence, Persons

__all__ = ["INTERNAL_FROM_SLOT17", "coco_annotations", "coco_ground_truth", "coco_images", "coco_persons", "slot_table"]

# internal joint index of each of the 17 slots (-1 for the ears)
INTERNAL_FROM_SLOT17 = np.array([PT21_FROM_SLOT17.index(s) if s in PT21_FROM_SLOT17 else -1 for s in range(17)])
_POSEVAL_NAMES_18 = {SLOT17_NAMES[s] for s in PT21_FROM_SLOT17}


def slot_table(data: dict[str, Any], source: str) -> npt.NDArray[np.int64]:
    """Internal joint index (or -1) for each keypoint position, from ``categories[0].keypoints`` if given."""
    categories = data.get("categories")
    if not categories:
        return INTERNAL_FROM_SLOT17
    names = field_of(as_list(categories, source, "categories")[0], "keypoints", source, "categories[0]")
    names = as_list(names, source, "categories[0].keypoints")
    if len(names) not in (15, 17) or not all(isinstance(n, str) for n in names):
        raise EvalInputError(source, "categories[0].keypoints", f"expected 15 or 17 names, got {names!r:.80}")
    missing = _POSEVAL_NAMES_18 - set(names)
    if missing:
        raise EvalInputError(source, "categories[0].keypoints", f"missing joints {sorted(missing)}")
    table = [PT21_FROM_SLOT17.index(SLOT17_NAMES.index(n)) if n in _POSEVAL_NAMES_18 else -1 for n in names]
    return np.array(table)


def coco_persons(
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

    kpts = float_matrix(column(items, "keypoints", source, label), 3 * len(table), source,
                         lambda k: f"{label(k)}.keypoints").reshape(-1, len(table), 3)  # fmt: skip
    n = len(items)
    score_rows = [item.get("scores") for item in items]
    bad = next((k for k, row in enumerate(score_rows) if not row and row is not None and row != []), None)
    if bad is not None:
        raise EvalInputError(source, f"{label(bad)}.scores", f"expected a list, got {score_rows[bad]!r:.40}")
    score_full = np.full((n, len(table)), MISSING_SCORE)
    given = [k for k, row in enumerate(score_rows) if row]  # poseval: an empty list means no scores
    if given:
        rows = [score_rows[k] for k in given]
        score_full[given] = float_matrix(rows, len(table), source, lambda k: f"{label(given[k])}.scores")
    track_rows = [item.get("track_id") for item in items]
    has_track = np.array([t is not None for t in track_rows], dtype=bool).reshape(n)
    with_track = np.flatnonzero(has_track)
    track = np.zeros(n, dtype=np.int64)
    track[with_track] = int_array([track_rows[k] for k in with_track], source,
                                   lambda k: f"{label(with_track[k])}.track_id")  # fmt: skip
    head = np.full(n, math.nan)
    if ground_truth:
        box_rows = [item.get("bbox_head") for item in items]
        with_box = [k for k, box in enumerate(box_rows) if box is not None]
        boxes = float_matrix([box_rows[k] for k in with_box], 4, source, lambda k: f"{label(with_box[k])}.bbox_head")
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
            raise EvalInputError(source, f"{bad}.bbox_head", "missing (needed for the head size)")
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
    xs, ys = as_list(xs, source, f"{where}.ignore_regions_x"), as_list(ys, source, f"{where}.ignore_regions_y")
    if len(xs) != len(ys):
        raise EvalInputError(source, f"{where}.ignore_regions_y", f"{len(ys)} polygons for {len(xs)} in x")
    polygons = []
    for r, (px, py) in enumerate(zip(xs, ys, strict=True)):
        px, py = (
            as_list(px, source, f"{where}.ignore_regions_x[{r}]"),
            as_list(py, source, f"{where}.ignore_regions_y[{r}]"),
        )
        if len(px) != len(py):
            raise EvalInputError(source, f"{where}.ignore_regions_y[{r}]", f"{len(py)} points for {len(px)} in x")
        xs_r = [number(x, source, f"{where}.ignore_regions_x[{r}]") for x in px]
        ys_r = [number(y, source, f"{where}.ignore_regions_y[{r}]") for y in py]
        polygons.append(np.array([xs_r, ys_r], dtype=np.float64).T.reshape(-1, 2))
    return polygons


def _object_list(data: dict[str, Any], key: str, source: str) -> list[dict[str, Any]]:
    """The list under ``key``, checked to hold objects."""
    items = as_list(field_of(data, key, source, ""), source, key)
    if set(map(type, items)) <= {dict}:  # parsed JSON holds plain dicts: one C-level pass
        return items
    for i, item in enumerate(items):  # dict subclasses (in-memory input) pass too
        if not isinstance(item, dict):
            raise EvalInputError(source, f"{key}[{i}]", f"expected an object, got {type(item).__name__}")
    return items


def coco_images(data: dict[str, Any], source: str) -> list[dict[str, Any]]:
    """The ``images`` list, checked to hold objects."""
    return _object_list(data, "images", source)


def coco_annotations(data: dict[str, Any], source: str) -> list[dict[str, Any]]:
    """The ``annotations`` list, checked to hold objects."""
    return _object_list(data, "annotations", source)


def _image_ids_and_names(images: list[dict[str, Any]], source: str) -> tuple[npt.NDArray[np.int64], list[str]]:
    """The ``id`` (unique) and ``file_name`` of every image."""
    label = labeller("images")
    ids = int_array(column(images, "id", source, label), source, lambda k: f"images[{k}].id")
    unique_ids(ids, source, lambda k: f"images[{k}].id", "image id")
    names = [im.get("file_name") for im in images]
    if set(map(type, names)) - {str}:
        k = next(k for k, name in enumerate(names) if not isinstance(name, str))
        problem = "missing" if names[k] is None else f"expected a string, got {names[k]!r:.60}"
        raise EvalInputError(source, f"images[{k}].file_name", problem)
    return ids, names


def _video_name(file_name: str) -> str:
    parts = file_name.replace("\\", "/").split("/")
    return parts[-2] if len(parts) >= 2 else ""


def coco_ground_truth(data: dict[str, Any], source: str, default_name: str) -> list[GroundTruthSequence]:
    """One or more sequences (a merged file holds several) from a COCO-like GT file."""
    images = coco_images(data, source)
    anns = coco_annotations(data, source)
    table = slot_table(data, source)
    ids, names = _image_ids_and_names(images, source)
    ann_label = labeller("annotations")
    frame_of_ann = frames_of(ids, int_array(column(anns, "image_id", source, ann_label), source,
                                              lambda k: f"annotations[{k}].image_id"), source, ann_label)  # fmt: skip
    with_id = [k for k, ann in enumerate(anns) if "id" in ann]
    ann_ids = int_array([anns[k]["id"] for k in with_id], source, lambda k: f"annotations[{with_id[k]}].id")
    unique_ids(ann_ids, source, lambda k: f"annotations[{with_id[k]}].id", "annotation id")
    unidentified = None
    if len(with_id) < len(anns):
        unidentified = f"annotations[{next(k for k, ann in enumerate(anns) if 'id' not in ann)}].id"
    all_ann_ids = np.zeros(len(anns), dtype=np.int64)
    all_ann_ids[with_id] = ann_ids
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
        persons = coco_persons(
            [anns[a] for a in mine.tolist()], local[frame_of_ann[mine]], len(frames), table, source,
            ground_truth=True, prefix="annotations", indices=mine,
        )  # fmt: skip
        regions = {}
        for f, i in enumerate(frames.tolist()):
            if images[i].get("ignore_regions_x"):  # most frames have none: skip the call
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
                unflagged_frame=next((int(i) for i in frames if "is_labeled" not in images[i]), None),
                image_ids=np.array([ids[i] for i in frames], dtype=np.int64),
                file_names=[names[i] for i in frames],
                regions=regions,
                annolist=False,
                annotation_ids=None if unidentified else all_ann_ids[mine],
                unidentified=unidentified,
            )
        )
    return sequences
