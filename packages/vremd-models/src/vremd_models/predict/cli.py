"""`vremd-predict`: run a VREMD model on videos or PoseTrack frame folders and write PoseTrack18 predictions.

    vremd-predict my_clip.mp4 --model org/vremd-vitl-pt17 --out preds/ --render out.mp4   # RT-DETR finds the people
    vremd-predict my_clip.mp4 --model runs/x --out preds/ --detector my-detector/ --detect-every 5
    vremd-predict data/posetrack18/images/val --model runs/x --detections val_dets.json --out preds/
    vremd-predict data/posetrack18/images/val --model runs/x --gt-boxes --annotations data/.../val --out preds/

Without a box file (`--detections`, `--gt-boxes`), a person detector finds the boxes (`vremd-models[detect]`,
see `detector` and `online`), or `--whole-image` takes each whole frame; the boxes used are then recorded as
`<out>/detections.json` (`box_record`), which `--detections` reads to give the same predictions again.

Everything the run needs (frames, boxes, model, output paths) is checked before anything is written; no
output replaces an input or a file vremd-predict did not write (without --overwrite). Each sequence's
predictions (and render) appear atomically, and a rerun with the same model and options skips the
sequences its manifest shows written from the same frames, with every render asked for, all unchanged; any
other file at an output path is reported.
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

from posetrack_data.errors import PoseTrackFormatError
from posetrack_data.outputs import CommandParser, OutputPolicy, file_sha256, run_guarded
from posetrack_data.predictions import MAX_TRACK_ID, PersonPose, PredictionWriter, sequence_document
from vremd_models.decoding import REFINE_CHOICES
from vremd_models.predict.box_record import BoxRecord
from vremd_models.predict.detections import (
    PersonBox,
    assign_boxes,
    bind_ground_truth,
    clip_to_frames,
    ground_truth_boxes,
    load_detections,
    whole_image_boxes,
)
from vremd_models.predict.detector import DEFAULT_DETECTOR, DEFAULT_THRESHOLD, resolve_detector
from vremd_models.predict.errors import PredictInputError, first_line
from vremd_models.predict.frames import VIDEO_SUFFIXES, FolderSequence, FrameSequence, open_frames
from vremd_models.predict.tracking import track_poses

__all__ = ["build_parser", "load_model", "main", "quiet_ffmpeg", "resolve_dtype", "run", "run_command", "track_poses"]

DTYPES = ("float32", "float16", "bfloat16")
# The video formats `render.write_video` encodes (OpenCV reads more than it writes).
RENDER_VIDEO_SUFFIXES = (".mp4", ".avi")
_MAX_FPS = 1000.0


def _fps(text: str) -> float:
    try:
        fps = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 < fps <= _MAX_FPS:  # NaN fails this too
        raise argparse.ArgumentTypeError(f"expected a frame rate above 0 and at most {_MAX_FPS:g}, got {text!r}")
    return fps


def _render_path(text: str) -> Path:
    path = Path(text)
    if path.suffix.lower() in VIDEO_SUFFIXES and path.suffix.lower() not in RENDER_VIDEO_SUFFIXES:
        raise argparse.ArgumentTypeError(
            f"{text}: rendered videos are {' or '.join(RENDER_VIDEO_SUFFIXES)} (any other name is a folder of images)"
        )
    return path


def build_parser() -> argparse.ArgumentParser:
    """The `vremd-predict` argument parser."""
    parser = CommandParser(
        prog="vremd-predict",
        description="Top-down VREMD inference with flip test; writes PoseTrack18-format predictions.",
    )
    parser.add_argument("input", type=Path, help="video file, sequence folder of frames, or folder of sequences")
    parser.add_argument("--model", required=True, help="hub id or local folder saved with save_pretrained")
    parser.add_argument("--out", required=True, type=Path, help="folder (one <sequence>.json each) or merged .json")
    boxes = parser.add_mutually_exclusive_group()
    boxes.add_argument("--detections", type=Path, help="person boxes: COCO results or PoseTrack detection JSON")
    boxes.add_argument("--gt-boxes", action="store_true", help="use the ground-truth boxes of --annotations")
    boxes.add_argument("--whole-image", action="store_true", help="one box per frame: the whole frame (one person)")
    boxes.add_argument(
        "--detector",
        help=f"without a box file, find persons with this transformers object-detection model: a hub id or folder "
        f"(default {DEFAULT_DETECTOR}; needs vremd-models[detect])",
    )
    parser.add_argument("--detector-threshold", type=float, help=f"least detector score (default {DEFAULT_THRESHOLD})")
    parser.add_argument(
        "--detect-every", type=int, help="detect on every N-th frame; between, boxes follow the poses (default 1)"
    )
    parser.add_argument(
        "--annotations",
        type=Path,
        help="PoseTrack18 ground truth (per-video folder or merged file): frame names and ids, and --gt-boxes",
    )
    parser.add_argument("--min-box-score", type=float, default=0.2, help="drop boxes scoring lower (default 0.2)")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu, cuda, cuda:1 (default cpu)")
    parser.add_argument(
        "--decode-device",
        help="decode and crop frame folders' JPEGs on this torch device (cuda: nvJPEG); default OpenCV on the CPU",
    )
    parser.add_argument("--batch-size", type=int, default=32, help="persons per forward pass (default 32)")
    parser.add_argument("--dtype", choices=DTYPES, default="float32", help="model compute dtype (default float32)")
    parser.add_argument("--no-flip-test", dest="flip_test", action="store_false", help="skip the flipped pass")
    parser.add_argument("--refine", choices=REFINE_CHOICES, default="dark", help="sub-pixel decoding")
    parser.add_argument("--tracking", choices=("oks", "iou", "none"), default="oks", help="track-id assignment")
    parser.add_argument(
        "--render", type=_render_path, help="also draw the poses: a .mp4/.avi (one sequence) or a folder"
    )
    parser.add_argument("--fps", type=_fps, default=25.0, help="frame rate of rendered videos (default 25)")
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
        raise PredictInputError(f"--model {model_id}: cannot load a VREMD model ({first_line(error)})") from None


def run(args: argparse.Namespace) -> str:
    """Run one `vremd-predict` invocation; returns the summary line."""
    sequences, boxes = _prepare_inputs(args)
    render_video = args.render is not None and args.render.suffix.lower() in VIDEO_SUFFIXES
    if render_video and len(sequences) != 1:
        raise PredictInputError(f"--render {args.render}: a video holds one sequence, the input has {len(sequences)}")
    model_dir = args.model if os.path.isdir(args.model) else None
    detector_dir = resolve_detector(args.detector or DEFAULT_DETECTOR) if _uses_detector(args) else None
    policy = OutputPolicy.for_inputs(
        (args.input, args.detections, args.annotations, model_dir, detector_dir), overwrite=args.overwrite
    )
    fingerprint = _fingerprint(args, detector_dir)
    inputs = {sequence.name: _frames_digest(sequence) for sequence in sequences}
    renders = {}
    if args.render is not None:
        renders = {s.name: _render_paths(s, args.render, video=render_video) for s in sequences}
    writer = PredictionWriter(
        args.out, overwrite=args.overwrite, fingerprint=fingerprint, inputs=inputs, artifacts=renders, policy=policy
    )
    for name, paths in renders.items():  # every render target is checked before any work
        for path in paths:
            if render_video:
                policy.target(path, ours=writer.artifact_is_ours)
            else:  # names from the input stay inside the render folder
                policy.inside(args.render, name, path.name, ours=writer.artifact_is_ours)
    names = [s.name for s in sequences]
    pending_names, redone = writer.pending(names)
    record = None
    if not writer.merged and (args.whole_image or detector_dir is not None):
        record = BoxRecord(args.out, fingerprint=fingerprint, inputs=inputs, policy=policy, overwrite=args.overwrite)
        record.check_names(sequences)
        pending_names = [*pending_names, *record.pending(names)]
    pending = [s for s in sequences if s.name in set(pending_names)]
    if not pending:
        writer.finish(names)
        return f"{args.out}: all {len(sequences)} sequences already written; nothing to do (--overwrite redoes them)"
    if boxes is None and record is not None:  # a finished boxes file of this run: its boxes, not the detector's again
        boxes = record.recorded(sequences, min_score=args.min_box_score)
    clipped = dropped = 0
    if boxes is not None:
        boxes, clipped, dropped = clip_to_frames(pending, boxes)
        _check_box_counts(pending, boxes)

    from vremd_models.predict.online import detect_and_predict
    from vremd_models.predict.predictor import PosePredictor

    dtype = resolve_dtype(args.dtype, args.device)
    predictor = PosePredictor(
        load_model(args.model, args.device),
        device=args.device,
        dtype=dtype,
        batch_size=args.batch_size,
        flip_test=args.flip_test,
        refine=args.refine,
        decode_device=args.decode_device,
        name=f"--model {args.model}",
    )
    detector = None if boxes is not None else _load_detector(args, detector_dir)
    num_persons = 0
    with tqdm(total=sum(len(s) for s in pending), unit="frame", disable=not args.progress) as bar:
        for sequence in pending:
            bar.set_postfix_str(sequence.name)
            if detector is None:
                used = boxes[sequence.name]
                poses = predictor.predict_sequence(sequence, used, on_frame=bar.update)
            else:
                used, poses = detect_and_predict(
                    predictor, sequence, detector.detect, detect_every=args.detect_every or 1,
                    min_score=args.min_box_score, on_frame=bar.update,
                )  # fmt: skip
            if args.tracking != "none":
                poses = track_poses(poses, args.tracking)
            if args.render is not None:
                _render(sequence, poses, renders[sequence.name], video=render_video, fps=args.fps)
            writer.write(sequence.name, sequence_document(sequence.file_names, sequence.image_ids, poses))
            if record is not None:  # after the predictions: a sequence counts as done once both are written
                record.write(sequence, used)
            sequence.close()
            num_persons += sum(len(frame) for frame in poses)
    out = writer.finish(names)
    skipped = len(sequences) - len(pending)
    summary = f"{out}: wrote {len(pending)} sequences ({sum(len(s) for s in pending)} frames, {num_persons} persons)"
    notes = [f"boxes in {record.finish(names)}"] if record is not None else []
    notes += [f"skipped {skipped} already written"] if skipped else []
    notes += [f"redid {redone} damaged parts"] if redone else []
    notes += [f"clipped {clipped} boxes reaching far outside their frame"] if clipped else []
    notes += [f"dropped {dropped} boxes outside their frame"] if dropped else []
    return ", ".join([summary, *notes])


def _uses_detector(args: argparse.Namespace) -> bool:
    return not (args.detections is not None or args.gt_boxes or args.whole_image)


def _detector_threshold(args: argparse.Namespace) -> float:
    return DEFAULT_THRESHOLD if args.detector_threshold is None else args.detector_threshold


def _load_detector(args: argparse.Namespace, folder: Path):
    from vremd_models.predict.detector import PersonDetector

    name = args.detector or DEFAULT_DETECTOR
    return PersonDetector.from_folder(folder, threshold=_detector_threshold(args), device=args.device, name=name)


def _fingerprint(args: argparse.Namespace, detector_dir: Path | None) -> str:
    """SHA-256 over the model files and every option that changes the predictions."""
    from vremd_models.weights import CONFIG_FILE, WEIGHTS_FILE, resolve_file

    digest = hashlib.sha256()
    for name in (CONFIG_FILE, WEIGHTS_FILE):
        try:
            digest.update(file_sha256(resolve_file(args.model, name)).encode())
        except (OSError, ValueError) as error:
            raise PredictInputError(f"--model {args.model}: cannot load a VREMD model ({error})") from None
    if args.detections is not None or args.gt_boxes:
        source = {
            "boxes": "gt" if args.gt_boxes else "detections",
            "boxes_file": _tree_digest(Path(args.detections if args.detections is not None else args.annotations)),
        }
    elif args.whole_image:
        source = {"boxes": "whole-image"}
    else:
        source = {
            "boxes": "detector",
            "detector": _tree_digest(detector_dir, "*.json", "*.safetensors"),
            "detector_threshold": _detector_threshold(args),
            "detect_every": args.detect_every or 1,
        }
    options = {  # the input frames are not here: each sequence's own are recorded (see `_frames_digest`)
        **source,
        "annotations": _tree_digest(Path(args.annotations)) if args.annotations is not None else None,
        "min_box_score": None if args.gt_boxes else args.min_box_score,
        "dtype": args.dtype,
        "flip_test": args.flip_test,
        "refine": args.refine,
        "tracking": args.tracking,
        "crops": "opencv" if args.decode_device is None else "torch",
    }
    digest.update(json.dumps(options, sort_keys=True).encode())
    return digest.hexdigest()


def _tree_digest(path: Path, *patterns: str) -> str:
    """SHA-256 over a file, or over the files of a folder matching `patterns` (default: its JSON files)."""
    files = sorted(f for pattern in patterns or ("*.json",) for f in path.glob(pattern)) if path.is_dir() else [path]
    return hashlib.sha256("".join(f"{f.name}:{file_sha256(f)};" for f in files).encode()).hexdigest()


def _frames_digest(sequence: FrameSequence) -> str:
    """SHA-256 over a sequence's frame names, image ids and frame files: what its predictions are made from."""
    files = sequence.paths if isinstance(sequence, FolderSequence) else (sequence.path,)
    digest = hashlib.sha256(json.dumps([sequence.file_names, sequence.image_ids]).encode())
    for path in files:
        digest.update(file_sha256(path).encode())
    return digest.hexdigest()


def _render_paths(sequence: FrameSequence, target: Path, *, video: bool) -> list[Path]:
    """The render output of one sequence: the video file, or one image per frame in its folder."""
    if video:
        return [target]
    folder = target / sequence.name
    return [folder / f"{Path(name).stem}.jpg" for name in sequence.file_names]


def _check_box_counts(sequences: list[FrameSequence], boxes: dict[str, list[list[PersonBox]]]) -> None:
    """Refuse a frame with more boxes than track ids exist (poseval's limit), before any inference."""
    for sequence in sequences:
        for index, frame_boxes in enumerate(boxes[sequence.name]):
            if len(frame_boxes) >= MAX_TRACK_ID:
                raise PredictInputError(
                    f"{sequence.name}: frame {index} has {len(frame_boxes)} boxes; a frame holds fewer than "
                    f"{MAX_TRACK_ID} persons (poseval's track-id limit); raise --min-box-score"
                )


def _prepare_inputs(
    args: argparse.Namespace,
) -> tuple[list[FrameSequence], dict[str, list[list[PersonBox]]] | None]:
    """The sequences and, unless a detector finds them while predicting (None), their boxes."""
    if args.batch_size < 1:
        raise PredictInputError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.gt_boxes and args.annotations is None:
        raise PredictInputError("--gt-boxes: needs --annotations (the ground truth holding the boxes)")
    _check_detector_options(args)
    sequences = open_frames(args.input)
    if args.decode_device is not None:
        _check_decode_device(args.decode_device, sequences)
    annotations = None
    if args.annotations is not None:
        annotations = bind_ground_truth(sequences, args.annotations, label=args.input)
    if args.gt_boxes:
        records = ground_truth_boxes(annotations)
        return sequences, assign_boxes(records, sequences, source=args.annotations, min_score=0.0)
    if args.detections is not None:
        records = load_detections(args.detections)
        return sequences, assign_boxes(records, sequences, source=args.detections, min_score=args.min_box_score)
    if args.whole_image:
        return sequences, {sequence.name: whole_image_boxes(sequence) for sequence in sequences}
    return sequences, None


def _check_detector_options(args: argparse.Namespace) -> None:
    for option, value in (("--detector-threshold", args.detector_threshold), ("--detect-every", args.detect_every)):
        if value is not None and not _uses_detector(args):
            raise PredictInputError(f"{option}: needs a detector (not --detections, --gt-boxes or --whole-image)")
    if args.detector_threshold is not None and not 0.0 <= args.detector_threshold <= 1.0:
        raise PredictInputError(f"--detector-threshold must be in [0, 1], got {args.detector_threshold}")
    if args.detect_every is not None and args.detect_every < 1:
        raise PredictInputError(f"--detect-every must be at least 1, got {args.detect_every}")


def _check_decode_device(device: str, sequences: list[FrameSequence]) -> None:
    from posetrack_data.torch_decode import check_device

    try:
        check_device(device)
    except ValueError as error:
        raise PredictInputError(f"--decode-device {device}: {error}") from None
    videos = [s for s in sequences if not isinstance(s, FolderSequence)]
    if videos:
        raise PredictInputError(
            f"--decode-device {device}: {videos[0].path} is a video, decoded by OpenCV (FFmpeg) on the CPU; "
            "only folders of frame files are decoded on a device"
        )


def _render(
    sequence: FrameSequence, poses: list[list[PersonPose]], target: list[Path], *, video: bool, fps: float
) -> None:
    from vremd_models.predict.render import draw_poses, write_image, write_video

    frames = (draw_poses(sequence.read(i), poses[i]) for i in range(len(sequence)))
    if video:
        write_video(frames, target[0], fps=fps)
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
