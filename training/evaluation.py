"""Validation: keypoints for every row, the poseval files, their typed score, and the baselines' predictions.

Every evaluation ends as one :class:`Validation` (the AP per joint group of H, of each head alone, with
condition subsets of H per key-frame condition, and H's tracking scores with ``eval.tracking``): the history
of ``trainer_state.json``, the rows of the summary table and ``results.json``, which ``ablate.py`` reads back
with :func:`read_results`.
"""

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from accelerate import Accelerator
from tqdm.auto import tqdm

from posetrack_data import (
    PersonPose,
    PredictionWriter,
    annotation_folder,
    joint_scores,
    read_video,
    sequence_document,
    subsets_file,
)
from posetrack_data.annotations import detect_version
from posetrack_data.outputs import atomic_write_text
from posetrack_eval import TABLE_COLUMNS, EvalResult, evaluate, format_table
from training.config import Config, ConfigError, EvalConfig
from vremd_models import VREMD
from vremd_models.decoding import decode_heatmaps
from vremd_models.inference import heatmap_to_image, predict_head_heatmaps
from vremd_models.predict.tracking import track_poses
from vremd_models.schema import build

__all__ = [
    "ALONE",
    "HEAD_NAMES",
    "Results",
    "Scored",
    "Scorer",
    "Validation",
    "conditions_file",
    "gt_folder",
    "mean_pose_baseline",
    "predict_keypoints",
    "read_results",
    "summary_table",
    "write_predictions",
    "write_results",
]


# Output field -> the name the logs and tables use; ALONE: the heads scored on their own beside H.
HEAD_NAMES = {"heatmaps": "H", "motion_heatmaps": "H_m", "keypoint_heatmaps": "H_k"}
ALONE = ("H_m", "H_k")
RESULTS = "results.json"


@dataclasses.dataclass(frozen=True, kw_only=True)
class Validation:
    """The score of one evaluation, as the log, the checkpoints' history and ``results.json`` keep it.

    Args:
        name: ``"mean pose in the box"``, ``"untrained"``, ``"epoch 2"``, ``"step 20"``, ...
        step: Optimizer steps trained when it was measured.
        epoch: Epochs completed when it was measured.
        ap: AP of H per column of poseval's table (``TABLE_COLUMNS``: the joint groups and ``Total``).
        num_samples: Validation rows predicted.
        head_ap: Total AP of each head scored alone (``"H_m"``, ``"H_k"``: those the model has; none for the
            mean-pose baseline).
        conditions: Total AP of H over the persons of each key-frame condition (``"occluded"``, ...; NaN for a
            condition without persons), when the split has condition subsets.
        tracking: H's tracking scores (Total over the joints) with ``eval.tracking``, the headline first:
            ``MOTA``, ``MOTP``, ``Prec``, ``Rec`` (poseval's MOT table) or ``HOTA``, ``DetA``, ``AssA``
            (PoseTrack21's keypoint HOTA, ``protocol: pt21``); empty without tracking.
    """

    name: str
    step: int
    epoch: int
    ap: dict[str, float]
    num_samples: int
    head_ap: dict[str, float] = dataclasses.field(default_factory=dict)
    conditions: dict[str, float] = dataclasses.field(default_factory=dict)
    tracking: dict[str, float] = dataclasses.field(default_factory=dict)

    @classmethod
    def of(cls, name: str, step: int, epoch: int, num_samples: int, results: dict[str, EvalResult]) -> "Validation":
        """From the results of :meth:`Scorer.score_heads` (or ``{"H": ...}`` alone, for a baseline)."""
        return cls(
            name=name,
            step=step,
            epoch=epoch,
            ap={column: float(results["H"].ap[column]) for column in TABLE_COLUMNS},
            num_samples=num_samples,
            head_ap={head: float(results[head].ap["Total"]) for head in ALONE if head in results},
            conditions={name: float(subset.ap["Total"]) for name, subset in (results["H"].subsets or {}).items()},
            tracking=_tracking_scores(results["H"]),
        )

    def summary(self) -> str:
        """The log line: ``mAP: H 61.2, H_m alone 58.0, H_k alone 12.5``, then ``; MOTA 48.3, ...`` if tracked."""
        line = f"mAP: H {self.ap['Total']:.1f}" + "".join(f", {h} alone {ap:.1f}" for h, ap in self.head_ap.items())
        if self.tracking:
            line += "; " + ", ".join(f"{metric} {value:.1f}" for metric, value in self.tracking.items())
        return line


def _tracking_scores(result: EvalResult) -> dict[str, float]:
    """``Validation.tracking`` of a result: its Total MOTA, MOTP, precision, recall, or HOTA, DetA, AssA."""
    if result.mota is not None:
        return {"MOTA": result.mota["Total"], "MOTP": result.motp, "Prec": result.precision, "Rec": result.recall}
    if result.hota is not None:
        return {field: result.hota[field]["Total"] for field in ("HOTA", "DetA", "AssA")}
    return {}


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


def write_predictions(
    out_dir: Path, val_rows: dict[str, list], index, coords, scores, gt_dir: Path, *, tracking: bool = False
) -> int:
    """Per-sequence PoseTrack18 prediction files, one per ground-truth file, as poseval reads them.

    Each file is named like its ground-truth file and lists the ground truth's frames in ground-truth order
    (poseval pairs frames by position); written by ``posetrack_data.predictions`` like ``vremd-predict``'s.
    A person's track id is its index in its frame or, with ``tracking``, the id ``vremd-predict``'s OKS
    tracker (``track_poses``) gives it over the video's labelled frames in frame order. Validation predicts
    labelled frames only, so the tracker sees them as consecutive frames: a track links each labelled frame
    to the next across the unlabelled frames between (PoseTrack val labels every 4th frame). Passed as
    frames without poses, as ``vremd-predict --gt-boxes`` does, those would end every track (``max_age`` 1).
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
        if tracking:
            labelled = sorted((f for f in frames if f.is_labeled), key=lambda f: f.frame_index)
            tracked = track_poses([poses.get(f.image_id, []) for f in labelled], "oks")
            poses.update({f.image_id: on_frame for f, on_frame in zip(labelled, tracked, strict=True)})
        document = sequence_document(
            [f.file_name for f in frames], [f.image_id for f in frames], [poses.get(f.image_id, []) for f in frames]
        )
        writer.write(gt_file.stem, document)
    return len(index)


@dataclasses.dataclass(frozen=True)
class Scorer:
    """Writes validation predictions as poseval files and scores them against the ground truth.

    Args:
        val_rows: The scored rows' ``video``, ``image_id``, ``file_name``, ``box_score`` and ``bbox``.
        gt_dir: Ground-truth annotation folder of the scored split (``gt_folder``).
        protocol: posetrack-eval's scoring protocol (``eval.protocol``).
        subsets: The split's condition subsets file (``subsets_file``): H is also scored per condition.
        tracking: Track the poses and score tracking too (``eval.tracking``).
    """

    val_rows: dict[str, list]
    gt_dir: Path
    protocol: Literal["poseval", "pt21"]
    subsets: Path | None = None
    tracking: bool = False

    def score(self, out_dir: Path, index, coords, scores, *, conditions: bool = False) -> EvalResult:
        """Write the predictions into ``out_dir`` (replacing it), score them, and save ``<out_dir>.ap.json``.

        With ``conditions`` (and ``subsets``), the result also holds the AP over each condition's persons.

        Shapes:
            index: Int[R] scored rows; coords: Float[R, J, 2] image pixels; scores: Float[R, J].
        """
        shutil.rmtree(out_dir, ignore_errors=True)
        write_predictions(out_dir, self.val_rows, index, coords, scores, self.gt_dir, tracking=self.tracking)
        subset = self.subsets if conditions else None
        result = evaluate(self.gt_dir, out_dir, protocol=self.protocol, subset=subset, tracking=self.tracking)
        atomic_write_text(out_dir.with_name(f"{out_dir.name}.ap.json"), json.dumps(result.to_dict(), indent=1))
        return result

    def score_heads(self, out_dir: Path, index, heads: dict[str, tuple]) -> dict[str, EvalResult]:
        """Score H (per condition too) into ``out_dir/latest`` and each head alone into ``latest_H_m``, ``latest_H_k``.

        Each head alone shows which one learns (H = H_k + H_m; without H_k, H_m is H); only H is tracked.
        ``index`` and ``heads`` are :func:`predict_keypoints`'s; every row must be predicted exactly once.
        """
        total = len(self.val_rows["video"])
        if len(np.unique(index)) != len(index) or len(index) != total:
            raise RuntimeError(f"validation predicted {len(index)} rows, {len(np.unique(index))} distinct, of {total}")
        folders = {"H": "latest"} | {head: f"latest_{head}" for head in ALONE}
        alone = dataclasses.replace(self, tracking=False)
        scorers = {head: self if head == "H" else alone for head in heads}
        return {
            head: scorers[head].score(out_dir / folders[head], index, *heads[head], conditions=head == "H")
            for head in heads
        }


@dataclasses.dataclass(frozen=True)
class Scored:
    """A split a run scores: its loader (prepared by accelerate) and the scorer of its rows."""

    loader: Any
    scorer: Scorer

    @classmethod
    def of(cls, cfg: Config, root: Path, split: str, loader: Any, examples: Any) -> "Scored":
        """``split``'s loader and a scorer of its examples' rows (per condition with ``eval.conditions``)."""
        rows = examples.rows.select_columns(["video", "image_id", "file_name", "box_score", "bbox"]).to_dict()
        subsets = conditions_file(cfg, root, split)
        return cls(loader, Scorer(rows, gt_folder(cfg, root, split), cfg.eval.protocol, subsets, cfg.eval.tracking))

    def evaluate(
        self, model: VREMD, accelerator: Accelerator, cfg: EvalConfig, out_dir: Path, name: str, step: int, epoch: int
    ) -> "Validation | None":
        """Predict every row, score H (per condition too) and each head alone into ``out_dir``, print the table.

        Returns the ``Validation`` on the main process, ``None`` on the others; leaves ``model`` in train mode.
        """
        index, heads = predict_keypoints(model, self.loader, accelerator, cfg, desc=f"eval {name}")
        scored = None
        if accelerator.is_main_process:
            results = self.scorer.score_heads(out_dir, index, heads)
            scored = Validation.of(name, step, epoch, len(index), results)
            accelerator.print(f"\n{name} (step {step}): {format_table(results['H'])}\n{scored.summary()}")
        accelerator.wait_for_everyone()
        model.train()
        return scored


def gt_folder(cfg: Config, root: Path, split: str | None = None) -> Path:
    """Ground-truth annotation folder of ``split`` (default: the validation split) in the data root.

    ``eval.gt`` replaces the validation split's.
    """
    split = split or cfg.data.val_split
    if cfg.eval.gt is not None and split == cfg.data.val_split:
        return Path(cfg.eval.gt)
    return annotation_folder(root, cfg.data.version or detect_version(root), split)


def conditions_file(cfg: Config, root: Path, split: str) -> Path | None:
    """The condition subsets file of ``split`` when ``eval.conditions`` asks for one (``subsets_file``).

    Raises:
        ConfigError: ``eval.conditions`` is on but the data root has no subsets file for the split.
    """
    if not cfg.eval.conditions:
        return None
    path = subsets_file(root, split)
    if not path.is_file():
        raise ConfigError(f"eval.conditions: {path} does not exist (only synthetic data has condition subsets)")
    return path


def summary_table(history: list[Validation]) -> str:
    """The AP rows of every evaluation so far, one line each.

    Columns: the name, the poseval columns of H, then the total AP of H_m and H_k scored alone ("-" where the
    model has no such head), and H's MOTA or HOTA when tracking was scored.
    """
    width = max(len(entry.name) for entry in history)
    # one tracking column, the headline score (MOTA or HOTA), once any evaluation has tracking scores
    tracked = next(([next(iter(entry.tracking))] for entry in history if entry.tracking), [])
    lines = [f"{'':<{width}}  " + " ".join(f"{c:>6}" for c in (*TABLE_COLUMNS, *ALONE, *tracked))]
    for entry in history:
        columns = [f"{entry.ap[c]:6.1f}" for c in TABLE_COLUMNS]
        columns += [f"{entry.head_ap[h]:6.1f}" if h in entry.head_ap else f"{'-':>6}" for h in ALONE]
        columns += [f"{entry.tracking[m]:6.1f}" if m in entry.tracking else f"{'-':>6}" for m in tracked]
        lines.append(f"{entry.name:<{width}}  " + " ".join(columns))
    return "\n".join(lines)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Results:
    """What ``results.json`` holds: the run's key, its steps, the final and every validation, and the test score.

    Args:
        run_key: ``training.config.run_key`` of the run's config: what ``ablate.py`` checks a run against.
        steps: Optimizer steps trained.
        final: The last validation (``data.val_split``, the dev split).
        test: The final model's score on ``data.test_split`` (``None`` without one).
        history: Every validation, in order (the baselines first).
    """

    run_key: str
    steps: int
    final: Validation
    test: Validation | None
    history: list[Validation]


def write_results(run_dir: Path, results: Results) -> None:
    """``results.json``, written last and atomically: a run is finished when it is there."""
    atomic_write_text(run_dir / RESULTS, json.dumps(dataclasses.asdict(results), indent=1))


def read_results(run_dir: Path) -> Results | None:
    """The ``results.json`` of a finished run, or ``None`` when there is none (or it does not parse)."""
    try:
        return build(Results, json.loads((run_dir / RESULTS).read_text()))
    except (OSError, ValueError, TypeError):
        return None
