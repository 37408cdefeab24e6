"""Command-line entry points of vremd-models: ``vremd-convert-vitpose``."""

import argparse
import os
import re
from pathlib import Path

from vremd_models._outputs import (
    CommandParser,
    OutputError,
    OutputPolicy,
    claim,
    commit_folder,
    run_guarded,
    staging,
)
from vremd_models.config import PRESETS
from vremd_models.weights import KeyReport, read_vremd_config
from vremd_models.weights.convert import convert_vitpose as convert_source

__all__ = ["convert_vitpose"]

_PROG = "vremd-convert-vitpose"


def _parse_grid(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"([1-9][0-9]*)x([1-9][0-9]*)", text)
    if not match:
        raise argparse.ArgumentTypeError(f"expected HxW of positive integers such as 14x14, got {text!r}")
    return int(match.group(1)), int(match.group(2))


def _positive(text: str) -> int:
    if not re.fullmatch(r"[1-9][0-9]{0,5}", text):
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return int(text)


def convert_vitpose(argv: list[str] | None = None) -> int:
    """``vremd-convert-vitpose SOURCE OUTPUT_DIR``: write a VREMD model folder initialised from ViTPose."""
    parser = CommandParser(
        prog=_PROG,
        description="Initialise a VREMD model from a ViTPose checkpoint (mmpose, mmpose 1.x or transformers) and "
        "save it with save_pretrained (config.json, model.safetensors, README.md). The backbone's sizes come "
        "from the source; the preset only chooses VREMD's own modules.",
    )
    parser.add_argument(
        "checkpoint",
        help="ViTPose .pth (mmpose), .safetensors or model.safetensors.index.json file, a folder holding one (a "
        "transformers VitPoseForPoseEstimation folder with its config.json), or the hub id of such a folder "
        "(usyd-community/vitpose-base-simple; from the HF cache, fetched unless HF_HUB_OFFLINE=1; safetensors only)",
    )
    parser.add_argument(
        "output_dir", type=Path, help="new folder to write, outside the source; must not exist or be empty"
    )
    parser.add_argument("--preset", default="vremd-vitl", choices=sorted(PRESETS), help="VREMD's own modules")
    parser.add_argument(
        "--config", type=Path, default=None, help="VREMD config.json to convert into instead of a preset; its "
        "backbone must agree with the source"
    )  # fmt: skip
    parser.add_argument("--num-heads", type=_positive, default=None, help="backbone heads, for a non-standard width")
    parser.add_argument("--head", action="store_true", help="also load ViTPose's simple-decoder head into H_m")
    parser.add_argument("--source-grid", type=_parse_grid, default=None, help="checkpoint token grid HxW")
    parser.add_argument("--base-model", default=None, help="hub id of the source, for the model card's base_model")
    args = parser.parse_args(argv)

    def body() -> int:
        report = _convert_to_folder(args)
        print(f"wrote {args.output_dir} ({report.summary()})")
        return 0

    return run_guarded(_PROG, body)


def _convert_to_folder(args: argparse.Namespace) -> KeyReport:
    """Convert, then write the model into a staging folder moved into place whole: nothing existing is replaced."""
    output_dir: Path = args.output_dir
    _check_output(args)
    requested = read_vremd_config(args.config) if args.config is not None else None
    try:
        converted = convert_source(
            args.checkpoint,
            preset=args.preset,
            config=requested,
            num_heads=args.num_heads,
            include_head=args.head,
            source_grid=args.source_grid,
        )
    except ValueError as err:
        message = str(err)
        raise ValueError(message if message.startswith(args.checkpoint) else f"{args.checkpoint}: {message}") from err
    with claim(output_dir, _PROG), staging(output_dir) as staged:
        _check_output(args)  # again, now that it is ours: another run may have finished meanwhile
        converted.model.save_pretrained(staged, model_card_kwargs=converted.card_kwargs(args.base_model))
        commit_folder(staged, output_dir)
    return converted.report


def _check_output(args: argparse.Namespace) -> None:
    """The output folder is new or empty, and neither an input nor inside one."""
    inputs = [path for path in (args.checkpoint, args.config) if path is not None and os.path.lexists(path)]
    output_dir = OutputPolicy.for_inputs(inputs).target(args.output_dir, folder=True)
    if output_dir.is_dir() and any(output_dir.iterdir()):
        raise OutputError(f"{output_dir}: output folder exists and is not empty")
