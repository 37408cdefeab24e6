"""`vremd-predict`: run a VREMD model on videos or PoseTrack frame folders and write PoseTrack18 predictions.

    vremd-predict data/posetrack18/images/val --model runs/x --detections val_dets.json --out preds/
    vremd-predict my_clip.mp4 --model org/vremd-vitl-pt17 --detections dets.json --out preds.json --render out.mp4
    vremd-predict data/posetrack18/images/val --model runs/x --gt-boxes --annotations data/.../val --out preds/

Everything the run needs (frames, boxes, model, output paths) is checked before anything is written; no
output replaces an input or a file vremd-predict did not write (without --overwrite). Each sequence's
predictions (and render) appear atomically, and a rerun with the same model and options skips the
sequences its manifest shows written and unchanged; any other file at an output path is reported.
"""

import argparse
import hashlib
import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

from tqdm.auto import tqdm

from posetrack_data.annotations import clip_box
from posetrack_data.errors import PoseTrackFormatError
from posetrack_data.outputs import OutputPolicy, file_sha256, run_guarded
from posetrack_data.predictions import PersonPose, PredictionWriter, sequence_document
from vremd_models.decoding import REFINE_CHOICES
from vremd_models.predict.detections import (
    PersonBox,
    assign_boxes,
    bind_ground_truth,
    ground_truth_boxes,
    load_detections,
)
from vremd_models.predict.errors import PredictInputError
from vremd_models.predict.frames import VIDEO_SUFFIXES, FrameSequence, open_frames
from vremd_models.predict.tracking import track_poses

__all__ = ["build_parser", "load_model", "main", "quiet_ffmpeg", "resolve_dtype", "run", "run_command", "track_poses"]

logger = logging.getLogger(__name__)

DTYPES = ("float32", "float16", "bfloat16")


def build_parser() -> argparse.ArgumentParser:
    """The `vremd-predict` argument parser."""
    parser = argparse.ArgumentParser(
        prog="vremd-predict",
        description="Top-down VREMD inference with flip test; writes PoseTrack18-format predictions.",
    )
    parser.add_argument("input", type=Path, help="video file, sequence folder of frames, or folder of sequences")
    parser.add_argument("--model", required=True, help="hub id or local folder saved with save_pretrained")
    parser.add_argument("--out", required=True, type=Path, help="folder (one <sequence>.json each) or merged .json")
    boxes = parser.add_mutually_exclusive_group(required=True)
    boxes.add_argument("--detections", type=Path, help="person boxes: COCO results or PoseTrack detection JSON")
    boxes.add_argument("--gt-boxes", action="store_true", help="use the ground-truth boxes of --annotations")
    parser.add_argument(
        "--annotations",
        type=Path,
        help="PoseTrack18 ground truth (per-video folder or merged file): frame names and ids, and --gt-boxes",
    )
    parser.add_argument("--min-box-score", type=float, default=0.2, help="drop boxes scoring lower (default 0.2)")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu, cuda, cuda:1 (default cpu)")
    parser.add_argument("--batch-size", type=int, default=32, help="persons per forward pass (default 32)")
    parser.add_argument("--dtype", choices=DTYPES, default="float32", help="model compute dtype (default float32)")
    parser.add_argument("--no-flip-test", dest="flip_test", action="store_false", help="skip the flipped pass")
    parser.add_argument("--refine", choices=REFINE_CHOICES, default="dark", help="sub-pixel decoding")
    parser.add_argument("--tracking", choices=("oks", "iou", "none"), default="oks", help="track-id assignment")
    parser.add_argument("--render", type=Path, help="also draw the poses: a .mp4/.avi (one sequence) or a folder")
    parser.add_argument("--fps", type=float, default=25.0, help="frame rate of rendered videos (default 25)")
    parser.add_argument("--overwrite", action="store_true",
                        help="redo written sequences; replace files vremd-predict did not write")  # fmt: skip
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="hide the progress bar")
    return parser


def resolve_dtype(name: str, device: str):
    """The torch dtype for `--dtype`, refusing float16 on CPU (several CPU kernels lack it)."""
    import torch

    dtype = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[name]
    if dtype == torch.float16 and torch.device(device).type == "cpu":
        raise PredictInputError("--dtype float16: needs a CUDA --device; use bfloat16 on CPU")
    return dtype


def load_model(model_id: str, device: str):
    """`VREMD.from_pretrained`, with loading problems turned into one-line errors."""
    import torch

    from vremd_models import VREMD

    try:
        torch.device(device)
    except RuntimeError as error:
        raise PredictInputError(f"--device {device}: {error}") from None
    if torch.device(device).type == "cuda" and not torch.cuda.is_available():
        raise PredictInputError(f"--device {device}: CUDA is not available on this machine")
    try:
        return VREMD.from_pretrained(model_id)
    except (OSError, ValueError, KeyError, RuntimeError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise PredictInputError(f"--model {model_id}: cannot load a VREMD model ({reason})") from None


def run(args: argparse.Namespace) -> str:
    """Run one `vremd-predict` invocation; returns the summary line."""
    sequences, boxes = _prepare_inputs(args)
    render_video = args.render is not None and args.render.suffix.lower() in VIDEO_SUFFIXES
    if render_video and len(sequences) != 1:
        raise PredictInputError(f"--render {args.render}: a video holds one sequence, the input has {len(sequences)}")
    model_dir = args.model if os.path.isdir(args.model) else None
    policy = OutputPolicy.for_inputs(
        (args.input, args.detections, args.annotations, model_dir), overwrite=args.overwrite
    )
    if args.render is not None:  # every render target is checked before any work
        for sequence in sequences:
            _render_targets(policy, sequence, args.render, video=render_video)
    writer = PredictionWriter(args.out, overwrite=args.overwrite, fingerprint=_fingerprint(args), policy=policy)
    names = [s.name for s in sequences]
    pending_names, redone = writer.pending(names)
    pending = [s for s in sequences if s.name in set(pending_names)]
    if not pending:
        writer.finish(names)
        return f"{args.out}: all {len(sequences)} sequences already written; nothing to do (--overwrite redoes them)"
    boxes, clipped, dropped = _clip_to_frames(pending, boxes)

    from vremd_models.predict.predictor import PosePredictor

    dtype = resolve_dtype(args.dtype, args.device)
    predictor = PosePredictor(
        load_model(args.model, args.device),
        device=args.device,
        dtype=dtype,
        batch_size=args.batch_size,
        flip_test=args.flip_test,
        refine=args.refine,
    )
    num_persons = 0
    with tqdm(total=sum(len(s) for s in pending), unit="frame", disable=not args.progress) as bar:
        for sequence in pending:
            bar.set_postfix_str(sequence.name)
            poses = predictor.predict_sequence(sequence, boxes[sequence.name], on_frame=bar.update)
            if args.tracking != "none":
                poses = track_poses(poses, args.tracking)
            if args.render is not None:
                _render(
                    sequence, poses, _render_targets(policy, sequence, args.render, video=render_video), fps=args.fps
                )
            writer.write(sequence.name, sequence_document(sequence.file_names, sequence.image_ids, poses))
            sequence.close()
            num_persons += sum(len(frame) for frame in poses)
    out = writer.finish([s.name for s in sequences])
    skipped = len(sequences) - len(pending)
    summary = f"{out}: wrote {len(pending)} sequences ({sum(len(s) for s in pending)} frames, {num_persons} persons)"
    notes = [f"skipped {skipped} already written"] if skipped else []
    notes += [f"redid {redone} damaged parts"] if redone else []
    notes += [f"clipped {clipped} boxes reaching far outside their frame"] if clipped else []
    notes += [f"dropped {dropped} boxes outside their frame"] if dropped else []
    return ", ".join([summary, *notes])


def _fingerprint(args: argparse.Namespace) -> str:
    """SHA-256 over the model files and every option that changes the predictions."""
    from vremd_models.weights import CONFIG_FILE, WEIGHTS_FILE, resolve_file

    digest = hashlib.sha256()
    for name in (CONFIG_FILE, WEIGHTS_FILE):
        try:
            digest.update(file_sha256(resolve_file(args.model, name)).encode())
        except (OSError, ValueError) as error:
            raise PredictInputError(f"--model {args.model}: cannot load a VREMD model ({error})") from None
    boxes = args.detections if args.detections is not None else args.annotations
    options = {
        "input": str(Path(args.input).resolve()),
        "boxes": "gt" if args.gt_boxes else "detections",
        "boxes_file": _tree_digest(Path(boxes)),
        "annotations": _tree_digest(Path(args.annotations)) if args.annotations is not None else None,
        "min_box_score": None if args.gt_boxes else args.min_box_score,
        "dtype": args.dtype,
        "flip_test": args.flip_test,
        "refine": args.refine,
        "tracking": args.tracking,
    }
    digest.update(json.dumps(options, sort_keys=True).encode())
    return digest.hexdigest()


def _tree_digest(path: Path) -> str:
    files = sorted(path.glob("*.json")) if path.is_dir() else [path]
    return hashlib.sha256("".join(f"{f.name}:{file_sha256(f)};" for f in files).encode()).hexdigest()


def _clip_to_frames(
    sequences: list[FrameSequence], boxes: dict[str, list[list[PersonBox]]]
) -> tuple[dict[str, list[list[PersonBox]]], int, int]:
    """Drop boxes without a pixel in their frame; clip boxes reaching over a frame size beyond it.

    A box of 1e30 would put every keypoint far outside the frame; boxes a little outside (common in
    PoseTrack's ground truth) are kept as they are, so predictions match the training-time crops.
    """
    import dataclasses

    clipped = dropped = 0
    out = dict(boxes)
    for sequence in sequences:
        height, width = sequence.read(0).shape[:2]
        frames = []
        for frame_boxes in boxes[sequence.name]:
            kept = []
            for box in frame_boxes:
                if clip_box(box.bbox, width, height) is None:
                    dropped += 1
                    continue
                x, y, w, h = box.bbox
                if x < -width or y < -height or x + w > 2 * width or y + h > 2 * height:
                    x0, y0 = max(x, -width), max(y, -height)
                    x1, y1 = min(x + w, 2.0 * width), min(y + h, 2.0 * height)
                    clipped += 1
                    box = dataclasses.replace(box, bbox=(x0, y0, x1 - x0, y1 - y0))
                kept.append(box)
            frames.append(kept)
        out[sequence.name] = frames
    return out, clipped, dropped


def _render_targets(policy: OutputPolicy, sequence: FrameSequence, target: Path, *, video: bool) -> list[Path] | Path:
    """The checked render output of one sequence: the video file, or one image per frame in its folder."""
    if video:
        return policy.target(target)
    return [policy.inside(target, sequence.name, f"{Path(name).stem}.jpg") for name in sequence.file_names]


def _prepare_inputs(args: argparse.Namespace) -> tuple[list[FrameSequence], dict[str, list[list[PersonBox]]]]:
    if args.batch_size < 1:
        raise PredictInputError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.gt_boxes and args.annotations is None:
        raise PredictInputError("--gt-boxes: needs --annotations (the ground truth holding the boxes)")
    sequences = open_frames(args.input)
    annotations = None
    if args.annotations is not None:
        annotations = bind_ground_truth(sequences, args.annotations, label=args.input)
    if args.gt_boxes:
        records = ground_truth_boxes(annotations)
        boxes = assign_boxes(records, sequences, source=args.annotations, min_score=0.0)
    else:
        records = load_detections(args.detections)
        boxes = assign_boxes(records, sequences, source=args.detections, min_score=args.min_box_score)
    return sequences, boxes


def _render(sequence: FrameSequence, poses: list[list[PersonPose]], target: list[Path] | Path, *, fps: float) -> None:
    from vremd_models.predict.render import draw_poses, write_image, write_video

    frames = (draw_poses(sequence.read(i), poses[i]) for i in range(len(sequence)))
    if isinstance(target, Path):
        write_video(frames, target, fps=fps)
        return
    for path, frame in zip(target, frames, strict=True):
        write_image(frame, path)


def quiet_ffmpeg() -> None:
    """Silence FFmpeg's own stderr lines (e.g. "moov atom not found"), so a bad video gives one error line.

    OpenCV reads `OPENCV_FFMPEG_LOGLEVEL` when it first opens a video; a value the user set is kept.
    """
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET


def run_command(
    prog: str,
    argv: list[str] | None,
    parser: argparse.ArgumentParser,
    command: Callable[[argparse.Namespace], str],
) -> int:
    """Parse ``argv``, run ``command`` and print its summary.

    Unusable input is one stderr line and status 2, Ctrl-C one line and 130 (`posetrack_data.outputs.run_guarded`).
    """
    args = parser.parse_args(argv)
    quiet_ffmpeg()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    def body() -> int:
        print(command(args))
        return 0

    return run_guarded(prog, body, (PredictInputError, PoseTrackFormatError))


def main(argv: list[str] | None = None) -> int:
    """Entry point of `vremd-predict`; returns the exit status (2 for unusable input, 130 for Ctrl-C)."""
    return run_command("vremd-predict", argv, build_parser(), run)


if __name__ == "__main__":
    sys.exit(main())
