"""``posetrack-eval``: poseval's tables on stdout, every figure as JSON, optional precision-recall plot.

posetrack-eval preds.json --gt annotations/val/
posetrack-eval preds/ --gt annotations/val/ --tracking
posetrack-eval preds.json --gt annotations/val/ --json results.json --per-sequence --plot pr.png
posetrack-eval preds.json --gt annotations/val/ --subset occluded_ids.json
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from posetrack_eval._outputs import CommandParser, OutputError, OutputPolicy, atomic_write_text, run_guarded

__all__ = ["main"]

_PROG = "posetrack-eval"


def _parser() -> argparse.ArgumentParser:
    parser = CommandParser(
        prog=_PROG,
        description="PoseTrack mAP, MOTA and keypoint HOTA exactly as poseval and PoseTrack21's scorer compute them.",
    )
    parser.add_argument(
        "predictions", help="merged predictions file (PoseTrack18 JSON or COCO results) or per-sequence folder"
    )
    parser.add_argument("--gt", required=True, help="ground-truth folder of per-sequence files, or one merged file")
    parser.add_argument(
        "--tracking",
        action="store_true",
        help="also score tracking: MOTA, MOTP, precision, recall (poseval); keypoint HOTA (pt21)",
    )
    parser.add_argument("--json", metavar="PATH", help="write every figure at full precision to this JSON file")
    parser.add_argument("--per-sequence", action="store_true", help="also score and print each sequence")
    parser.add_argument("--protocol", choices=("poseval", "pt21"), default="poseval",
                        help="poseval (PoseTrack17/18, default) or pt21 (PoseTrack21's mAP and HOTA)")  # fmt: skip
    parser.add_argument(
        "--subset",
        metavar="FILE",
        help="also AP over subsets of GT persons: a JSON list of GT annotation ids, or name -> list",
    )
    parser.add_argument("--plot", metavar="PNG", help="save precision-recall curves per joint group (needs [plot]); "
                        "the suffix picks the format (.png, .pdf, .svg, any that matplotlib writes)")  # fmt: skip
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --json or --plot file")
    parser.add_argument("--tie-order", choices=("numpy1", "installed"), default="numpy1",
                        help="tied scores rank as numpy 1.x ranks them (default) or as this numpy")  # fmt: skip
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0; 2 for a bad input, 130 for Ctrl-C, with one line on stderr)."""
    args = _parser().parse_args(argv)
    # imported after parsing: numpy alone takes longer than the rest of ``--help``
    from posetrack_eval.io import EvalInputError

    return run_guarded(_PROG, lambda: _run(args), (EvalInputError,))


def _run(args: argparse.Namespace) -> int:
    from posetrack_eval.result import format_table
    from posetrack_eval.scorer import evaluate

    if args.plot:
        _check_plot_format(args.plot)  # before the (long) evaluation
    policy = OutputPolicy.for_inputs((args.predictions, args.gt, args.subset), overwrite=args.overwrite)
    for option, target in (("--json", args.json), ("--plot", args.plot)):
        if target and not Path(target).resolve().parent.is_dir():
            raise OutputError(f"{option} {target}: folder does not exist")
        if target:
            policy.target(target)
    if args.json and args.plot and Path(args.json).resolve() == Path(args.plot).resolve():
        raise OutputError(f"{args.json}: --json and --plot name the same file")
    result = evaluate(
        args.gt, args.predictions, protocol=args.protocol, tracking=args.tracking, per_sequence=args.per_sequence,
        progress=not args.no_progress, keep_curves=bool(args.plot), tie_order=args.tie_order, subset=args.subset,
    )  # fmt: skip
    print(format_table(result))
    note = result.tie_note()
    if note is not None:
        print(f"{_PROG}: {note}", file=sys.stderr)
    if args.json:
        atomic_write_text(args.json, json.dumps(result.to_dict(), indent=2, allow_nan=False) + "\n")
    if args.plot:
        from posetrack_eval.plot import save_pr_curves

        save_pr_curves(result, args.plot)
    return 0


def _check_plot_format(path: str) -> None:
    """Refuse a --plot the writer cannot make: matplotlib missing, or a suffix it has no format for."""
    try:
        from matplotlib.backend_bases import FigureCanvasBase
    except ImportError:
        raise OutputError("--plot needs matplotlib: pip install 'posetrack-eval[plot]'") from None
    suffix = Path(path).suffix.lower().lstrip(".")
    formats = FigureCanvasBase.get_supported_filetypes()
    if suffix and suffix not in formats:
        raise OutputError(f"--plot {path}: matplotlib writes no .{suffix} files (it writes .{', .'.join(formats)})")


if __name__ == "__main__":
    sys.exit(main())
