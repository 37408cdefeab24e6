"""Validation: keypoints for every row, the poseval files, their score, and the baselines' predictions."""

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator
from tqdm.auto import tqdm

from posetrack_data import PersonPose, PredictionWriter, annotation_folder, joint_scores, read_video, sequence_document
from posetrack_data.annotations import detect_version
from posetrack_data.outputs import atomic_write_text
from posetrack_eval import TABLE_COLUMNS, EvalResult, evaluate, format_table
from training.config import Config, EvalConfig
from vremd_models import VREMD
from vremd_models.decoding import decode_heatmaps
from vremd_models.inference import heatmap_to_image, predict_head_heatmaps

__all__ = [
    "ALONE",
    "HEAD_NAMES",
    "gt_folder",
    "mean_pose_baseline",
    "predict_keypoints",
    "score_heads",
    "score_predictions",
    "summary_table",
    "write_predictions",
    "write_results",
]


# Output field -> the name the logs and tables use; ALONE: the heads scored on their own beside H.
HEAD_NAMES = {"heatmaps": "H", "motion_heatmaps": "H_m", "keypoint_heatmaps": "H_k"}
ALONE = ("H_m", "H_k")


@torch.no_grad()
def predict_keypoints(model: VREMD, loader, accelerator: Accelerator, cfg: EvalConfig, desc: str):
    """Keypoints in image pixels and per-joint confidences for every validation row, each exactly once.

    Returns (on every process) ``index`` [R] row indices and, per head (``"H"``, and ``"H_m"``, ``"H_k"`` alone
    when the model has them), ``(coords [R, J, 2], scores [R, J])`` as numpy, gathered across processes with
    ``gather_for_metrics`` (which drops the padding of the last batch).
    """
    mc = model.config
    model.eval()
    indices, per_head = [], {}
    for batch in tqdm(loader, desc=desc, leave=False, disable=not accelerator.is_main_process):
        with accelerator.autocast():
            maps = predict_head_heatmaps(model, batch["pixel_values"], flip_test=cfg.flip_test)
        indices.append(accelerator.gather_for_metrics(batch["index"]).cpu())
        for name, heatmaps in maps.items():
            coords, scores = decode_heatmaps(heatmaps.float(), refine=cfg.refine)
            coords = heatmap_to_image(
                coords, batch["image_from_crop"], heatmap_size=mc.heatmap_size, image_size=mc.image_size
            )
            coords, scores = accelerator.gather_for_metrics((coords, scores))
            per_head.setdefault(HEAD_NAMES[name], []).append((coords.cpu(), scores.float().cpu()))
    heads = {
        name: (torch.cat([c for c, _ in parts]).double().numpy(), torch.cat([s for _, s in parts]).double().numpy())
        for name, parts in per_head.items()
    }
    return torch.cat(indices).numpy(), heads


def mean_pose_baseline(train_rows, val_rows) -> tuple[np.ndarray, np.ndarray]:
    """The "mean pose in the box" baseline: each joint at its mean box-relative training position.

    Positions are relative to the box (0..1 across width and height); the confidence of a joint is the
    fraction of training persons where it is labelled. Returns ``coords`` [R, J, 2] and ``scores`` [R, J].
    """
    keypoints = np.asarray(train_rows["keypoints"], dtype=np.float64)  # [M, J, 3]
    boxes = np.asarray(train_rows["bbox"], dtype=np.float64)  # [M, 4]
    relative = (keypoints[..., :2] - boxes[:, None, :2]) / np.maximum(boxes[:, None, 2:], 1.0)
    visible = keypoints[..., 2] > 0
    counts = visible.sum(0)
    mean = (relative * visible[..., None]).sum(0) / np.maximum(counts, 1)[:, None]  # [J, 2]
    val_boxes = np.asarray(val_rows["bbox"], dtype=np.float64)
    coords = val_boxes[:, None, :2] + mean[None] * val_boxes[:, None, 2:]
    scores = np.broadcast_to(counts / max(len(keypoints), 1), coords.shape[:2])
    return coords, np.ascontiguousarray(scores)


def write_predictions(out_dir: Path, val_rows: dict[str, list], index, coords, scores, gt_dir: Path) -> int:
    """Per-sequence PoseTrack18 prediction files, one per ground-truth file, as poseval reads them.

    Each file is named like its ground-truth file and lists the ground truth's frames in ground-truth order
    (poseval pairs frames by position); written by ``posetrack_data.predictions`` like ``vremd-predict``'s.
    Returns the number of person predictions written.
    """
    poses: dict[int, list[PersonPose]] = {}
    for row, xy, maxima in zip(index.tolist(), coords, scores, strict=True):
        box_score = float(val_rows["box_score"][row])
        on_image = poses.setdefault(int(val_rows["image_id"][row]), [])
        pose = PersonPose(
            bbox=tuple(val_rows["bbox"][row]),
            box_score=box_score,
            keypoints=np.asarray(xy, np.float32),
            scores=joint_scores(maxima, box_score),
            track_id=len(on_image),
        )
        on_image.append(pose)
    writer = PredictionWriter(out_dir)
    for gt_file in sorted(gt_dir.glob("*.json")):
        frames = read_video(gt_file).frames
        document = sequence_document(
            [f.file_name for f in frames], [f.image_id for f in frames], [poses.get(f.image_id, []) for f in frames]
        )
        writer.write(gt_file.stem, document)
    return len(index)


def score_predictions(
    cfg: Config, root: Path, out_dir: Path, val_rows: dict[str, list], index, coords, scores
) -> dict[str, Any]:
    """Write the predictions into ``out_dir`` (replacing it), score them, and save ``<out_dir>.ap.json``.

    Returns ``ap`` (the table's columns), ``num_samples`` and ``table`` (poseval's console table).
    """
    gt_dir = gt_folder(cfg, root)
    shutil.rmtree(out_dir, ignore_errors=True)
    count = write_predictions(out_dir, val_rows, index, coords, scores, gt_dir)
    result: EvalResult = evaluate(gt_dir, out_dir, protocol=cfg.eval.protocol)
    atomic_write_text(out_dir.with_name(f"{out_dir.name}.ap.json"), json.dumps(result.to_dict(), indent=1))
    return {"ap": {k: float(result.ap[k]) for k in TABLE_COLUMNS}, "num_samples": count, "table": format_table(result)}


def score_heads(
    cfg: Config, root: Path, out_dir: Path, val_rows: dict[str, list], index, heads: dict[str, tuple]
) -> dict[str, Any]:
    """Score H into ``out_dir/latest`` (``ap``, ``num_samples``, ``table``) and each head alone (``head_ap``).

    Each head alone shows which one learns (H = H_k + H_m; without H_k, H_m is H): ``head_ap`` maps ``"H_m"``
    and ``"H_k"`` (when present) to their total AP, from ``out_dir/latest_H_m`` and ``out_dir/latest_H_k``.
    """
    entry = score_predictions(cfg, root, out_dir / "latest", val_rows, index, *heads["H"])
    entry["head_ap"] = {
        head: score_predictions(cfg, root, out_dir / f"latest_{head}", val_rows, index, *heads[head])["ap"]["Total"]
        for head in ALONE
        if head in heads
    }
    return entry


def gt_folder(cfg: Config, root: Path) -> Path:
    """Ground-truth annotation folder of the validation split."""
    if cfg.eval.gt is not None:
        return Path(cfg.eval.gt)
    return annotation_folder(root, cfg.data.version or detect_version(root), cfg.data.val_split)


def summary_table(history: list[dict[str, Any]]) -> str:
    """The AP rows of every evaluation so far, one line each.

    Columns: the name, the poseval columns of H, then the total AP of H_m and H_k scored alone ("-" where the
    model has no such head).
    """
    width = max(len(entry["name"]) for entry in history)
    lines = [f"{'':<{width}}  " + " ".join(f"{c:>6}" for c in (*TABLE_COLUMNS, *ALONE))]
    for entry in history:
        heads = entry.get("head_ap", {})
        columns = [f"{entry['ap'][c]:6.1f}" for c in TABLE_COLUMNS]
        columns += [f"{heads[h]:6.1f}" if h in heads else f"{'-':>6}" for h in ALONE]
        lines.append(f"{entry['name']:<{width}}  " + " ".join(columns))
    return "\n".join(lines)


def write_results(run_dir: Path, steps: int, history: list[dict[str, Any]]) -> None:
    """``results.json``: the final AP of H and of each head alone, and every evaluation (``ablate.py`` reads it)."""
    final = history[-1]
    results = {"steps": steps, "final": {"H": final["ap"]["Total"], **final.get("head_ap", {})}}
    results |= {"ap": final["ap"], "history": history}
    atomic_write_text(run_dir / "results.json", json.dumps(results, indent=1))
