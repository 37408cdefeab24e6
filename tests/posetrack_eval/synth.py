"""Seeded random PoseTrack ground truth and predictions that exercise every poseval quirk.

Used by the parity tests (inputs are regenerated from the seed and parameters stored with each fixture)
and by ``make_fixtures.py``, which ran poseval / the PoseTrack21 scorer on them once to record the expected
numbers. Nothing here knows the scoring rules; it only writes files in the formats the scorers read.

Quirks covered: unlabeled frames, labeled frames without persons, GT persons without joints, ignore
regions (joints inside, on a vertex, outside), missing per-joint scores, duplicate joint ids and unscored
joint ids (annolist only), tied scores and duplicate detections, joints outside the image, prediction frames
with no persons, predicted joints the GT lacks, predictions on unlabeled frames, track ids with switches;
with ``tracking=True`` also fragmented tracks and sequences or labeled frames without GT or predictions.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

POSEVAL_FROM_SLOT17 = (16, 14, 12, 11, 13, 15, 10, 8, 6, 5, 7, 9, 1, 0, 2)
SLOT17_NAMES = (
    "nose", "head_bottom", "head_top", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
)  # fmt: skip
SCORED_SLOTS = tuple(s for s in range(17) if s not in (3, 4))
IMAGE_W, IMAGE_H = 1920, 1080


def _category() -> dict[str, Any]:
    return {"supercategory": "person", "id": 1, "name": "person", "keypoints": list(SLOT17_NAMES), "skeleton": []}


class _Sequence:
    """One video: GT persons per frame (17-slot arrays) and predictions derived from them."""

    def __init__(
        self, rng: np.random.Generator, index: int, num_frames: int, protocol: str, labeled_p: float, tracking: bool
    ):
        self.rng = rng
        self.name = f"{10000 + index:06d}_mpii_test"
        self.seq_num = 10000 + index
        self.protocol = protocol
        self.num_frames = num_frames
        num_tracks = int(rng.integers(1, 5))
        self.templates = [self._template() for _ in range(num_tracks)]
        # tracking cases (drawn only for them, so the other cases keep their inputs): predicted track ids that
        # change for good (fragmented tracks), whole sequences without GT or without predictions, labeled
        # frames without GT persons
        self.tracking = tracking
        self.pred_ids = list(range(num_tracks))
        self.fresh_id = 200
        no_gt, no_pred = (rng.random() < 0.12, rng.random() < 0.12) if tracking else (False, False)
        self.frames: list[dict[str, Any]] = []
        for f in range(num_frames):
            labeled = f < 2 or rng.random() < labeled_p
            persons = []
            if labeled:
                present = [t for t in range(num_tracks) if rng.random() < 0.8]
                if (f < 2 or protocol == "pt21") and not present:
                    present = [0]
                if f >= 2 and protocol == "poseval" and rng.random() < 0.08:
                    present = []  # labeled frame without persons
                if tracking and (no_gt or (f >= 2 and rng.random() < 0.1)):
                    present = []
                persons = [self._gt_person(t, f) for t in present]
                if f < 2 and persons and all(p["kpts"][:, 2].sum() == 0 for p in persons):
                    persons[0] = self._gt_person(present[0], f, allow_empty=False)
            regions = self._regions(persons) if labeled and persons and rng.random() < 0.3 else []
            self.frames.append(
                {"labeled": labeled and (bool(persons) or protocol == "poseval" or tracking), "gt": persons,
                 "regions": regions}
            )  # fmt: skip
            pred = self._predictions(persons, regions, labeled)
            self.frames[-1]["pred"] = [] if no_pred else pred

    def _template(self) -> dict[str, Any]:
        rng = self.rng
        scale = float(rng.uniform(30, 160))
        centre = np.array([rng.uniform(-100, IMAGE_W + 100), rng.uniform(-80, IMAGE_H + 80)])
        if self.protocol == "pt21":
            centre = np.array([rng.uniform(4 * scale, IMAGE_W - 100), rng.uniform(4 * scale, IMAGE_H - 50)])
        offsets = rng.normal(0, 1.5 * scale, size=(17, 2))
        return {"scale": scale, "centre": centre, "offsets": offsets}

    def _gt_person(self, track: int, frame: int, allow_empty: bool = True) -> dict[str, Any]:
        rng = self.rng
        tpl = self.templates[track]
        centre = tpl["centre"] + frame * rng.normal(0, 3, size=2)
        xy = centre + tpl["offsets"] + rng.normal(0, 2, size=(17, 2))
        xy = np.round(xy) if rng.random() < 0.3 else np.round(xy, 2)
        if self.protocol == "pt21":
            xy = np.maximum(xy, 1.0)
        present = rng.random(17) < 0.85
        present[[3, 4]] = False
        if allow_empty and rng.random() < 0.05:
            present[:] = False
        if not present.any():
            present[0] = not allow_empty
        kpts = np.zeros((17, 3))
        kpts[present, :2] = xy[present]
        kpts[present, 2] = 1
        s = tpl["scale"]
        head = [
            float(np.round(centre[0] - s / 2)),
            float(np.round(centre[1] - s)),
            float(np.round(s * rng.uniform(0.8, 1.2))),
            float(np.round(s * rng.uniform(0.8, 1.3))),
        ]
        return {"track": track, "kpts": kpts, "head": head, "scale": s}

    def _regions(self, persons: list[dict[str, Any]]) -> list[list[tuple[float, float]]]:
        rng = self.rng
        regions = []
        for _ in range(int(rng.integers(1, 3))):
            person = persons[int(rng.integers(len(persons)))]
            joints = np.flatnonzero(person["kpts"][:, 2] > 0)
            if len(joints) == 0:
                continue
            centre = person["kpts"][rng.choice(joints), :2] + rng.normal(0, 10, size=2)
            radius = float(rng.uniform(15, 2 * person["scale"]))
            if self.protocol == "pt21":
                # Keep at least one joint of the first person outside (PT21's scorer crashes on frames left empty).
                first = persons[0]["kpts"]
                far = np.hypot(*(first[first[:, 2] > 0, :2] - centre).T)
                if len(far) == 0 or far.max() <= radius:
                    continue
            k = int(rng.integers(3, 7))
            angles = np.sort(rng.uniform(0, 2 * np.pi, size=k))
            poly = [
                (float(np.round(centre[0] + radius * np.cos(a))), float(np.round(centre[1] + radius * np.sin(a))))
                for a in angles
            ]
            regions.append(poly)
        return regions

    def _predictions(self, persons: list[dict[str, Any]], regions: list, labeled: bool) -> list[dict[str, Any]]:
        rng = self.rng
        preds: list[dict[str, Any]] = []
        if not labeled and rng.random() < 0.5:
            return preds
        if rng.random() < 0.1:
            return preds  # empty prediction frame
        track_map = list(range(len(self.templates)))
        if rng.random() < 0.15 and len(track_map) > 1:
            i, j = rng.choice(len(track_map), size=2, replace=False)
            track_map[i], track_map[j] = track_map[j], track_map[i]  # an ID switch for this frame
        if self.tracking and rng.random() < 0.15:
            self.pred_ids[int(rng.integers(len(self.pred_ids)))] = self.fresh_id  # a track fragments for good
            self.fresh_id += 1
        track_map = [self.pred_ids[t] for t in track_map]
        next_track = 100
        for person in persons:
            if rng.random() > 0.85:
                continue
            sigma = person["scale"] * rng.uniform(0.05, 0.5)
            kpts = person["kpts"].copy()
            kpts[:, :2] += rng.normal(0, sigma, size=(17, 2))
            gt_missing = kpts[:, 2] == 0
            add = gt_missing & (rng.random(17) < 0.1)
            kpts[add, :2] = person["kpts"][:, :2].max(axis=0) + rng.normal(0, person["scale"], size=(int(add.sum()), 2))
            kpts[add, 2] = 1
            drop = rng.random(17) < 0.1
            kpts[drop] = 0
            preds.append({"track": track_map[person["track"]], "kpts": kpts})
        for _ in range(int(rng.poisson(0.6))):
            tpl = self.templates[int(rng.integers(len(self.templates)))]
            kpts = np.zeros((17, 3))
            kpts[:, :2] = tpl["centre"] + rng.normal(0, 3 * tpl["scale"], size=(17, 2))
            kpts[:, 2] = rng.random(17) < 0.7
            kpts[kpts[:, 2] == 0, :2] = 0
            preds.append({"track": next_track, "kpts": kpts})
            next_track += 1
        for pred in preds:
            pred["kpts"][:, :2] = np.round(pred["kpts"][:, :2], 3)
            if self.protocol == "pt21":
                pred["kpts"][pred["kpts"][:, 2] > 0, :2] = np.abs(pred["kpts"][pred["kpts"][:, 2] > 0, :2]) + 1
            scores = rng.normal(0.0, 2.0, size=17) if rng.random() < 0.3 else rng.random(17)
            if rng.random() < 0.3:
                scores = np.round(scores, 1)  # ties
            pred["scores"] = scores
            pred["score_mode"] = "ok" if rng.random() > 0.05 else ("missing" if rng.random() < 0.5 else "empty")
            if self.protocol == "pt21" and pred["score_mode"] == "empty":
                pred["score_mode"] = "missing"
        if preds and rng.random() < 0.15:
            dup = dict(preds[int(rng.integers(len(preds)))])
            dup["kpts"] = dup["kpts"].copy()
            dup["kpts"][dup["kpts"][:, 2] > 0, :2] += rng.normal(
                0, 5, size=(int((dup["kpts"][:, 2] > 0).sum()), 2)
            ).round()
            dup["track"] = next_track
            preds.insert(int(rng.integers(len(preds) + 1)), dup)
        if regions and preds and rng.random() < 0.5:
            # a predicted joint exactly on a polygon vertex: on the boundary, so not ignored
            pred = preds[0]
            slot = int(rng.choice(SCORED_SLOTS))
            pred["kpts"][slot] = [regions[0][0][0], regions[0][0][1], 1]
        if rng.random() < 0.03:
            preds.append(
                {"track": next_track + 1, "kpts": np.zeros((17, 3)), "scores": rng.random(17), "score_mode": "ok"}
            )
        return preds

    # ---- writers -------------------------------------------------------------------------------------------------

    def image_id(self, frame: int) -> int:
        return 10000000000 + self.seq_num * 10000 + frame

    def file_name(self, frame: int) -> str:
        return f"images/val/{self.name}/{frame:06d}.jpg"

    def gt_pt18(self) -> dict[str, Any]:
        images, annotations = [], []
        for f, frame in enumerate(self.frames):
            image = {
                "id": self.image_id(f),
                "frame_id": self.image_id(f),
                "vid_id": f"{self.seq_num:06d}",
                "file_name": self.file_name(f),
                "nframes": self.num_frames,
                "is_labeled": frame["labeled"],
                "ignore_regions_x": [[p[0] for p in poly] for poly in frame["regions"]],
                "ignore_regions_y": [[p[1] for p in poly] for poly in frame["regions"]],
            }
            images.append(image)
            for i, person in enumerate(frame["gt"]):
                annotations.append(
                    {
                        "id": self.image_id(f) * 100 + i,
                        "image_id": self.image_id(f),
                        "category_id": 1,
                        "track_id": person["track"],
                        "bbox_head": person["head"],
                        "bbox": [0, 0, 1, 1],
                        "keypoints": person["kpts"].ravel().tolist(),
                        "scores": [],
                        "iscrowd": False,
                    }
                )
        return {"images": images, "annotations": annotations, "categories": [_category()]}

    def pred_pt18(self) -> dict[str, Any]:
        images, annotations = [], []
        for f, frame in enumerate(self.frames):
            images.append({"id": self.image_id(f), "file_name": self.file_name(f), "frame_id": self.image_id(f)})
            for pred in frame["pred"]:
                ann = {
                    "image_id": self.image_id(f),
                    "category_id": 1,
                    "track_id": pred["track"],
                    "keypoints": pred["kpts"].ravel().tolist(),
                    "score": 0.5,
                }
                if pred["score_mode"] == "ok":
                    ann["scores"] = pred["scores"].tolist()
                elif pred["score_mode"] == "empty":
                    ann["scores"] = []
                annotations.append(ann)
        return {"images": images, "annotations": annotations, "categories": [_category()]}

    def _points(self, kpts: np.ndarray, scores: np.ndarray | None, extras: bool) -> list[dict[str, Any]]:
        rng = self.rng
        points = []
        for pid, slot in enumerate(POSEVAL_FROM_SLOT17):
            if kpts[slot, 2] == 0:
                continue
            point = {"id": [pid], "x": [float(kpts[slot, 0])], "y": [float(kpts[slot, 1])], "is_visible": [1]}
            if scores is not None and rng.random() > 0.03:
                point["score"] = [float(scores[slot])]
            points.append(point)
        rng.shuffle(points)
        if extras and points and rng.random() < 0.08:
            first = points[int(rng.integers(len(points)))]
            points.append({**first, "x": [first["x"][0] + 40.0]})  # duplicate joint id: the first one counts
        if extras and rng.random() < 0.03:
            points.append({"id": [15], "x": [10.0], "y": [10.0], "score": [0.5]})  # id outside 0..14: never scored
        return points

    def gt_pt17(self) -> dict[str, Any]:
        annolist = []
        for f, frame in enumerate(self.frames):
            rects = []
            for person in frame["gt"]:
                x, y, w, h = person["head"]
                rect = {"x1": [x], "y1": [y], "x2": [x + w], "y2": [y + h], "track_id": [person["track"]]}
                points = self._points(person["kpts"], None, extras=True)
                if points:
                    rect["annopoints"] = [{"point": points}]
                else:
                    rect["annopoints"] = [] if self.rng.random() < 0.5 else [{"point": []}]
                rects.append(rect)
            item = {
                "image": [{"name": self.file_name(f)}],
                "imgnum": [f + 1],
                "is_labeled": [int(frame["labeled"])],
                "annorect": rects,
            }
            if frame["regions"]:
                item["ignore_regions"] = [
                    {"point": [{"x": [p[0]], "y": [p[1]]} for p in poly]} for poly in frame["regions"]
                ]
            annolist.append(item)
        return {"annolist": annolist}

    def pred_pt17(self) -> dict[str, Any]:
        annolist = []
        for f, frame in enumerate(self.frames):
            rects = []
            for pred in frame["pred"]:
                scores = pred["scores"] if pred["score_mode"] == "ok" else None
                rect = {
                    "score": [0.5],
                    "track_id": [pred["track"]],
                    "annopoints": [{"point": self._points(pred["kpts"], scores, extras=True)}],
                }
                rects.append(rect)
            annolist.append({"image": [{"name": self.file_name(f)}], "annorect": rects})
        return {"annolist": annolist}


def write_case(
    root: Path,
    *,
    seed: int,
    num_sequences: int = 3,
    frames: tuple[int, int] = (4, 10),
    gt_format: str = "pt18",
    pred_format: str = "pt18",
    protocol: str = "poseval",
    labeled_p: float = 0.6,
    tracking: bool = False,
) -> tuple[Path, Path]:
    """Write ``root/gt/<seq>.json`` and ``root/pred/<seq>.json``; return both folders.

    ``tracking`` adds what only tracking scores react to (the inputs of the other cases stay as they were):
    fragmented predicted tracks, sequences without GT or without predictions, labeled frames without GT.
    """
    rng = np.random.default_rng(seed)
    gt_dir, pred_dir = root / "gt", root / "pred"
    gt_dir.mkdir(parents=True, exist_ok=True)
    pred_dir.mkdir(parents=True, exist_ok=True)
    for index in range(num_sequences):
        seq = _Sequence(rng, index, int(rng.integers(frames[0], frames[1] + 1)), protocol, labeled_p, tracking)
        gt = seq.gt_pt18() if gt_format == "pt18" else seq.gt_pt17()
        pred = seq.pred_pt18() if pred_format == "pt18" else seq.pred_pt17()
        (gt_dir / f"{seq.name}.json").write_text(json.dumps(gt))
        (pred_dir / f"{seq.name}.json").write_text(json.dumps(pred))
    return gt_dir, pred_dir


def perturb_sample(gt_dir: Path, out_dir: Path, *, seed: int) -> Path:
    """Predictions for the real PoseTrack18 sample: jittered GT joints with random scores, one FP per frame."""
    rng = np.random.default_rng(seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    for path in sorted(gt_dir.glob("*.json")):
        data = json.loads(path.read_text())
        annotations = []
        for ann in data["annotations"]:
            kpts = np.asarray(ann["keypoints"], dtype=float).reshape(17, 3)
            head = np.hypot(ann["bbox_head"][2], ann["bbox_head"][3])
            present = kpts[:, 2] > 0
            kpts[present, :2] += rng.normal(0, 0.15 * head, size=(int(present.sum()), 2))
            annotations.append(
                {
                    "image_id": ann["image_id"],
                    "track_id": ann["track_id"],
                    "keypoints": np.round(kpts, 2).ravel().tolist(),
                    "scores": rng.random(17).round(3).tolist(),
                }
            )
        for image in data["images"]:
            kpts = np.zeros((17, 3))
            kpts[:, 0], kpts[:, 1], kpts[:, 2] = rng.uniform(0, 1920, 17), rng.uniform(0, 1080, 17), 1
            annotations.append(
                {
                    "image_id": image["id"],
                    "track_id": 99,
                    "keypoints": kpts.round(1).ravel().tolist(),
                    "scores": (rng.random(17) * 0.5).round(3).tolist(),
                }
            )
        pred = {"images": data["images"], "annotations": annotations, "categories": data["categories"]}
        (out_dir / path.name).write_text(json.dumps(pred))
    return out_dir


def annolist_from_pt18(data: dict[str, Any], *, ground_truth: bool) -> dict[str, Any]:
    """The same persons written as a PoseTrack17 annolist (frames in ``images`` order, persons in file order).

    As poseval's converter reads them: a joint is written unless stored exactly ``(0, 0, 0)``, the ears are
    dropped (annolist has no ears), per-joint scores come from a non-empty ``scores``, the head box from
    ``bbox_head``. A GT person without joints keeps an empty point list.
    """
    slot_names = data["categories"][0]["keypoints"]
    annolist = []
    for image in data["images"]:
        rects = []
        for ann in (a for a in data["annotations"] if a["image_id"] == image["id"]):
            xyv = np.reshape(ann["keypoints"], (-1, 3))
            scores = ann.get("scores") or None
            points = []
            for pid, slot in enumerate(POSEVAL_FROM_SLOT17):
                k = slot_names.index(SLOT17_NAMES[slot])
                if not (xyv[k] == 0).all():
                    point = {"id": [pid], "x": [float(xyv[k, 0])], "y": [float(xyv[k, 1])]}
                    if scores is not None:
                        point["score"] = [float(scores[k])]
                    points.append(point)
            rect = {"annopoints": [{"point": points}]}
            if "track_id" in ann:
                rect["track_id"] = [ann["track_id"]]
            if ground_truth:
                x, y, w, h = ann["bbox_head"]
                rect.update(x1=[x], y1=[y], x2=[x + w], y2=[y + h])
            rects.append(rect)
        frame = {"image": [{"name": image["file_name"]}], "annorect": rects}
        if ground_truth and image.get("ignore_regions_x"):
            frame["ignore_regions"] = [
                {"point": [{"x": [x], "y": [y]} for x, y in zip(xs, ys, strict=True)]}
                for xs, ys in zip(image["ignore_regions_x"], image["ignore_regions_y"], strict=True)
            ]
        annolist.append(frame)
    return {"annolist": annolist}
