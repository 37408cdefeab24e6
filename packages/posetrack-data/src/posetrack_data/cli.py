"""The `posetrack-data` command: `synth` writes a synthetic dataset, `check` validates a dataset root."""

import argparse
import logging
import sys

from posetrack_data.annotations import VERSIONS
from posetrack_data.check import check_root
from posetrack_data.errors import PoseTrackFormatError
from posetrack_data.outputs import CommandParser, run_guarded
from posetrack_data.synthetic import generate_dataset

# Caps of `synth` options against a typo that would run for days; the generator's own limits are wider.
_SYNTH_CAPS = {
    "videos": 10_000,
    "frames": 10_000,
    "val_videos": 10_000,
    "test_videos": 10_000,
    "eval_frames": 10_000,
    "pretrain_frames": 200_000,
    "max_people": 20,
}


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (0 ok, 1 problems found, 2 usage or input error)."""
    parser = CommandParser(prog="posetrack-data", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    synth = commands.add_parser("synth", help="write a synthetic PoseTrack18-format dataset")
    synth.add_argument("root", help="output folder")
    synth.add_argument("--videos", type=int, default=40, help="videos in total, train + val (default 40)")
    synth.add_argument("--frames", type=int, default=60, help="frames per video (default 60)")
    synth.add_argument("--size", default="384x288", help="frame size WxH (default 384x288)")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--val-fraction", type=float, default=0.2)
    synth.add_argument("--val-videos", type=int, default=None, help="val videos of --videos (default: --val-fraction)")
    synth.add_argument("--test-videos", type=int, default=0, help="test videos, besides --videos (default 0)")
    synth.add_argument(
        "--eval-frames",
        type=int,
        default=None,
        help="frames per val/test video, cut from a --frames clip, labelled frames with both neighbours "
        "(default: --frames, labelled from frame 0)",
    )
    synth.add_argument(
        "--pretrain-frames", type=int, default=0, help="single crowded frames to pretrain on (default 0)"
    )
    synth.add_argument(
        "--pretrain-people",
        type=int,
        nargs=2,
        default=(4, 10),
        metavar=("MIN", "MAX"),
        help="figures per pretraining frame (default 4 10)",
    )
    synth.add_argument("--max-people", type=int, default=3)
    synth.add_argument(
        "--crossing",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="figures walk across each other, into the target's box (default; --no-crossing: separate lanes)",
    )
    synth.add_argument(
        "--background-motion",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="shapes drift over the background (default on)",
    )
    synth.add_argument("--occlusion-prob", type=float, default=0.15, help="per figure and frame (default 0.15)")
    synth.add_argument("--blur-prob", type=float, default=0.1, help="motion blur, per frame (default 0.1)")
    synth.add_argument("--defocus-prob", type=float, default=0.1, help="defocus, per frame (default 0.1)")
    synth.add_argument("--overwrite", action="store_true", help="replace files of an earlier dataset in ROOT")

    check = commands.add_parser("check", help="validate a dataset root; one line per problem, exit 1 if any")
    check.add_argument("root", help="dataset root")
    check.add_argument("--version", choices=VERSIONS, default=None, help="layout (default: detect)")
    check.add_argument("--split", action="append", default=None, help="annotation split to check (repeatable)")
    check.add_argument("--no-decode", action="store_true", help="only check that frames exist, do not decode them")

    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return run_guarded(f"posetrack-data {args.command}", lambda: _run(args), (ValueError, PoseTrackFormatError))


def _run(args: argparse.Namespace) -> int:
    if args.command == "synth":
        width, height = _parse_size(args.size)
        for option, cap in _SYNTH_CAPS.items():
            value = getattr(args, option)
            if value is not None and value > cap:
                raise ValueError(f"--{option.replace('_', '-')} must be <= {cap}, got {value}")
        root = generate_dataset(
            args.root,
            num_videos=args.videos,
            num_frames=args.frames,
            image_size=(width, height),
            seed=args.seed,
            val_fraction=args.val_fraction,
            num_val_videos=args.val_videos,
            num_test_videos=args.test_videos,
            eval_frames=args.eval_frames,
            num_pretrain_frames=args.pretrain_frames,
            pretrain_people=tuple(args.pretrain_people),
            max_people=args.max_people,
            crossing=args.crossing,
            background_motion=args.background_motion,
            occlusion_prob=args.occlusion_prob,
            blur_prob=args.blur_prob,
            defocus_prob=args.defocus_prob,
            overwrite=args.overwrite,
        )
        print(root)
        return 0
    problems = check_root(args.root, version=args.version, splits=args.split, decode=not args.no_decode)
    for problem in problems:
        print(problem)
    print(f"{len(problems)} problem(s) found in {args.root}", file=sys.stderr)
    return 1 if problems else 0


def _parse_size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"--size must be WxH, e.g. 384x288, got {text!r}") from None
    return width, height


if __name__ == "__main__":
    sys.exit(main())
