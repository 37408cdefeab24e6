"""`vremd-explain`: one figure of what VREMD sees for one person on one frame.

    vremd-explain my_clip.mp4 --frame 12 --person 0 --model runs/x --detections dets.json --out explain.png

Rows: the three input crops (t-1, t, t+1); the human mask (eq. 1) over each crop; the keypoint mask
(eq. 2) over each crop; then, on the key-frame crop, the DCA sampling points of the query token under the
chosen joint (eqs. 3-4, last ADC block, every head and point, both motion directions), all predicted
heatmaps with the decoded joints, and the chosen joint's heatmap.
"""

import argparse
import io
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch

from posetrack_data.outputs import CommandParser, OutputPolicy, atomic_write_bytes
from posetrack_data.transforms import IMAGENET_MEAN, IMAGENET_STD
from vremd_models.predict.cli import run_command
from vremd_models.predict.detections import (
    bind_annotations,
    boxes_on_frame,
    ground_truth_boxes,
    load_annotations,
    load_detections,
    parse_box,
)
from vremd_models.predict.errors import PredictInputError
from vremd_models.predict.frames import open_frames
from vremd_models.predict.predictor import crop_person, frame_window

__all__ = ["Explanation", "explain_person", "joint_token", "main", "plot_explanation", "token_to_pixel"]


@dataclass(frozen=True, kw_only=True)
class Explanation:
    """Everything `plot_explanation` draws, as numpy arrays (batch axis removed).

    Args:
        crops: The input crops, RGB in [0, 1].
        human_mask: Eq. 1 mask per frame on the token grid, or None when the model has no human mask.
        keypoint_mask: Eq. 2 mask per frame on the token grid, or None when the model has no keypoint mask.
        sampling_locations: Last ADC block's DCA sampling points (x, y) in token-grid units, per stream
            (forward, backward), token, head and point; None without BMD.
        heatmaps: Predicted heatmaps (single pass, no flip test).
        keypoints: Decoded joints in crop pixels.
        scores: Heatmap maxima.
        patch_size: The model's ViT patch size p: token (i, j) covers crop pixels [p j, p j + p) x [p i, p i + p).

    Shapes:
        crops: Float[T, H, W, 3], human_mask / keypoint_mask: Float[T, H/p, W/p],
        sampling_locations: Float[S, N, h, P, 2], heatmaps: Float[J, 64, 48], keypoints: Float[J, 2],
        scores: Float[J]
    """

    crops: npt.NDArray[np.float32]
    human_mask: npt.NDArray[np.float32] | None
    keypoint_mask: npt.NDArray[np.float32] | None
    sampling_locations: npt.NDArray[np.float32] | None
    heatmaps: npt.NDArray[np.float32]
    keypoints: npt.NDArray[np.float32]
    scores: npt.NDArray[np.float32]
    patch_size: int


@torch.inference_mode()
def explain_person(
    model: torch.nn.Module,
    frames: list[npt.NDArray[np.uint8]],
    bbox: tuple[float, float, float, float],
    *,
    device: str | torch.device = "cpu",
) -> Explanation:
    """Run the model once on one person with masks and sampling locations switched on.

    Args:
        model: A `VREMD` model.
        frames: RGB frames (t-1, t, t+1).
        bbox: The person box (x, y, w, h) on the key frame.
        device: Where to run the model.
    """
    from vremd_models.decoding import decode_heatmaps

    config = model.config
    H, W = config.image_size
    pixel_values, _ = crop_person(frames, bbox, (H, W))
    model = model.to(device).eval()
    output = model(
        torch.from_numpy(pixel_values)[None].to(device),
        output_masks=True,
        output_sampling_locations=True,
    )
    heatmaps = output.heatmaps.float()
    coords, scores = decode_heatmaps(heatmaps, refine="none")
    stride = torch.tensor([W / heatmaps.shape[-1], H / heatmaps.shape[-2]], device=coords.device)
    grid = config.grid_size
    crops = np.clip(
        pixel_values.transpose(0, 2, 3, 1) * np.asarray(IMAGENET_STD, np.float32)
        + np.asarray(IMAGENET_MEAN, np.float32),
        0.0,
        1.0,
    )
    return Explanation(
        crops=crops,
        human_mask=_grid_mask(output.human_mask, grid),
        keypoint_mask=_grid_mask(output.keypoint_mask, grid),
        sampling_locations=_last_block(output.sampling_locations),
        heatmaps=heatmaps[0].cpu().numpy(),
        keypoints=(coords[0] * stride).cpu().numpy(),
        scores=scores[0].cpu().numpy(),
        patch_size=config.patch_size,
    )


def _grid_mask(mask: torch.Tensor | None, grid: tuple[int, int]) -> npt.NDArray[np.float32] | None:
    if mask is None:
        return None
    return mask[0].float().reshape(mask.shape[1], *grid).cpu().numpy()


def _last_block(locations: torch.Tensor | None) -> npt.NDArray[np.float32] | None:
    # The last ADC block's points are the ones whose output feeds the heads.
    if locations is None:
        return None
    if locations.ndim != 7:
        raise ValueError(f"sampling_locations must be (B, L_m, S, N, h, P, 2), got {tuple(locations.shape)}")
    return locations[0, -1].float().cpu().numpy()


def plot_explanation(explanation: Explanation, *, joint: int | None = None, title: str = ""):
    """Draw an `Explanation` as a 4 x 3 matplotlib figure.

    Args:
        explanation: From `explain_person`.
        joint: Joint whose token's sampling points and heatmap are shown; the highest-scoring joint
            when None.
        title: Figure title.

    Returns:
        The `matplotlib.figure.Figure`.
    """
    from matplotlib.figure import Figure

    from posetrack_data.joints import SLOT17_NAMES

    e = explanation
    J = len(e.scores)
    if joint is None:
        joint = int(np.argmax(e.scores))
    if not 0 <= joint < J:
        raise ValueError(f"joint must be in [0, {J}), got {joint}")
    T, H, W = e.crops.shape[:3]
    figure = Figure(figsize=(9.0, 13.0), dpi=100, layout="constrained")
    axes = figure.subplots(4, 3)
    frame_names = ["t-1", "t", "t+1"] if T == 3 else [f"frame {i}" for i in range(T)]
    extent = (-0.5, W - 0.5, H - 0.5, -0.5)
    for t in range(T):
        axes[0, t].imshow(e.crops[t])
        axes[0, t].set_title(f"input {frame_names[t]}")
        for row, (mask, name) in enumerate([(e.human_mask, "human mask"), (e.keypoint_mask, "keypoint mask")], 1):
            axes[row, t].imshow(e.crops[t])
            if mask is None:
                axes[row, t].set_title(f"{name}: not in this model")
                continue
            axes[row, t].imshow(mask[t], cmap="inferno", alpha=0.6, extent=extent, interpolation="bilinear")
            axes[row, t].set_title(f"{name} {frame_names[t]}")
    key = T // 2
    name = SLOT17_NAMES[joint] if len(SLOT17_NAMES) == J else f"joint {joint}"
    _plot_sampling_points(axes[3, 0], e, joint, key, name)
    axes[3, 1].imshow(e.crops[key])
    axes[3, 1].imshow(e.heatmaps.max(0), cmap="jet", alpha=0.5, extent=extent, interpolation="bilinear")
    axes[3, 1].scatter(e.keypoints[:, 0], e.keypoints[:, 1], s=12, c="white", edgecolors="black", linewidths=0.5)
    axes[3, 1].set_title("heatmaps (max over joints)")
    axes[3, 2].imshow(e.crops[key])
    axes[3, 2].imshow(e.heatmaps[joint], cmap="jet", alpha=0.5, extent=extent, interpolation="bilinear")
    axes[3, 2].set_title(f"heatmap: {name} ({e.scores[joint]:.2f})")
    for axis in axes.flat:
        axis.set_axis_off()
    if title:
        figure.suptitle(title)
    return figure


def token_to_pixel(points: npt.NDArray[np.float32], patch_size: int) -> npt.NDArray[np.float32]:
    """Token-grid (x, y) to crop pixels: token k covers pixels pk .. pk + p - 1, so its centre is pk + (p - 1) / 2."""
    return points * patch_size + (patch_size - 1) / 2


def joint_token(explanation: Explanation, joint: int) -> tuple[int, int, int]:
    """The query token under a decoded joint: its flat index and its (column, row) on the token grid."""
    H, W = explanation.crops.shape[1:3]
    patch = explanation.patch_size
    grid_w = W // patch
    x, y = explanation.keypoints[joint]
    column = int(np.clip(x // patch, 0, grid_w - 1))
    row = int(np.clip(y // patch, 0, H // patch - 1))
    return row * grid_w + column, column, row


def _plot_sampling_points(axis, e: Explanation, joint: int, key: int, name: str) -> None:
    axis.imshow(e.crops[key])
    if e.sampling_locations is None:
        axis.set_title("DCA sampling: not in this model")
        return
    H, W = e.crops.shape[1:3]
    token, column, row = joint_token(e, joint)
    streams = ["forward", "backward"] if len(e.sampling_locations) == 2 else ["joint stream"]
    colors = ["cyan", "magenta", "yellow"]
    for s, stream in enumerate(streams):
        points = token_to_pixel(e.sampling_locations[s, token].reshape(-1, 2), e.patch_size)
        axis.scatter(points[:, 0], points[:, 1], s=10, c=colors[s], alpha=0.8, label=stream)
    query = token_to_pixel(np.array([column, row], dtype=np.float32), e.patch_size)
    axis.scatter([query[0]], [query[1]], s=60, marker="*", c="red", label="query")
    axis.set_xlim(-0.5, W - 0.5)
    axis.set_ylim(H - 0.5, -0.5)
    axis.legend(loc="lower left", fontsize=7, framealpha=0.6)
    axis.set_title(f"DCA sampling: {name} token")


def build_parser() -> argparse.ArgumentParser:
    """The `vremd-explain` argument parser."""
    parser = CommandParser(prog="vremd-explain", description="Figure of VREMD's masks and DCA sampling.")
    parser.add_argument("input", type=Path, help="video file, sequence folder, or folder of sequences")
    parser.add_argument("--model", required=True, help="hub id or local folder saved with save_pretrained")
    parser.add_argument("--out", required=True, type=Path, help="figure file (.png, .jpg, .pdf, .svg)")
    parser.add_argument("--frame", type=int, default=0, help="0-based key frame index (default 0)")
    parser.add_argument("--person", type=int, default=0, help="person index on that frame, by box score (default 0)")
    parser.add_argument("--sequence", help="sequence name when the input folder holds several")
    parser.add_argument("--joint", help="joint name or index for the sampling-point panel (default: best scoring)")
    boxes = parser.add_mutually_exclusive_group()
    boxes.add_argument("--detections", type=Path, help="person boxes: COCO results or PoseTrack detection JSON")
    boxes.add_argument("--gt-boxes", action="store_true", help="use the ground-truth boxes of --annotations")
    boxes.add_argument("--box", help="one box as x,y,w,h (default without boxes: the whole frame)")
    parser.add_argument("--annotations", type=Path, help="PoseTrack18 ground truth (folder or merged file)")
    parser.add_argument("--min-box-score", type=float, default=0.2, help="drop boxes scoring lower (default 0.2)")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.add_argument("--dpi", type=int, default=100, help="figure resolution (default 100)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    return parser


def _parse_joint(value: str | None) -> int | None:
    from posetrack_data.joints import SLOT17_NAMES

    if value is None:
        return None
    if value.isascii() and value.isdigit() and int(value) < len(SLOT17_NAMES):  # "²".isdigit() holds too
        return int(value)
    if value in SLOT17_NAMES:
        return SLOT17_NAMES.index(value)
    raise PredictInputError(
        f"--joint {value}: expected an index below {len(SLOT17_NAMES)} or one of {list(SLOT17_NAMES)}"
    )


def run(args: argparse.Namespace) -> str:
    """Run one `vremd-explain` invocation; returns the summary line."""
    from vremd_models.predict.cli import load_model

    joint = _parse_joint(args.joint)
    if args.out.suffix.lower() not in (".png", ".jpg", ".jpeg", ".pdf", ".svg"):
        raise PredictInputError(f"--out {args.out}: expected a .png, .jpg, .pdf or .svg file name")
    if not 1 <= args.dpi <= 1200:
        raise PredictInputError(f"--dpi must be in [1, 1200], got {args.dpi}")
    model_dir = args.model if Path(args.model).is_dir() else None
    inputs = (args.input, args.detections, args.annotations, model_dir)
    OutputPolicy.for_inputs(inputs, overwrite=args.overwrite).target(args.out)
    sequences = open_frames(args.input)
    if args.sequence is not None:
        sequences = [s for s in sequences if s.name == args.sequence]
        if not sequences:
            raise PredictInputError(f"--sequence {args.sequence}: not a sequence of {args.input}")
    elif len(sequences) > 1:
        raise PredictInputError(f"{args.input}: holds {len(sequences)} sequences; pick one with --sequence")
    sequence = sequences[0]
    if not 0 <= args.frame < len(sequence):
        raise PredictInputError(f"--frame {args.frame}: {sequence.name} has frames 0..{len(sequence) - 1}")
    if args.gt_boxes and args.annotations is None:
        raise PredictInputError("--gt-boxes: needs --annotations (the ground truth holding the boxes)")
    if args.annotations is not None:
        annotations = load_annotations(args.annotations)
        bind_annotations(sequences, annotations)
    if args.box is not None:
        boxes = [parse_box(args.box, "--box")]
    elif args.detections is not None or args.gt_boxes:
        records = ground_truth_boxes(annotations) if args.gt_boxes else load_detections(args.detections)
        source = args.annotations if args.gt_boxes else args.detections
        boxes = [box.bbox for box in boxes_on_frame(records, sequence, args.frame, min_score=args.min_box_score)]
        if not boxes:
            raise PredictInputError(f"{source}: no box scoring at least {args.min_box_score} on frame {args.frame}")
    else:
        H, W = sequence.read(args.frame).shape[:2]
        boxes = [(0.0, 0.0, float(W), float(H))]
    if not 0 <= args.person < len(boxes):
        raise PredictInputError(f"--person {args.person}: frame {args.frame} has {len(boxes)} boxes")
    model = load_model(args.model, args.device)
    frames = [sequence.read(i) for i in frame_window(args.frame, model.config.num_frames, len(sequence))]
    explanation = explain_person(model, frames, boxes[args.person], device=args.device)
    figure = plot_explanation(
        explanation, joint=joint, title=f"{sequence.name} frame {args.frame} person {args.person}"
    )
    buffer = io.BytesIO()
    figure.savefig(buffer, format=args.out.suffix.lower().lstrip(".").replace("jpg", "jpeg"), dpi=args.dpi)
    atomic_write_bytes(args.out, buffer.getvalue())
    return f"{args.out}: explain figure for {sequence.name} frame {args.frame} person {args.person}"


def main(argv: list[str] | None = None) -> int:
    """Entry point of `vremd-explain`; returns the exit status (2 for unusable input, 130 for Ctrl-C)."""
    return run_command("vremd-explain", argv, build_parser(), run)


if __name__ == "__main__":
    sys.exit(main())
