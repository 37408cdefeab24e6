"""Command-line entry points of vremd-models: ``vremd-convert-vitpose``."""

import argparse
import os
import re
import sys
import tempfile
from pathlib import Path

from vremd_models.config import PRESETS
from vremd_models.weights import CheckpointMismatchError, KeyReport, read_vremd_config
from vremd_models.weights.convert import convert_vitpose as convert_source

__all__ = ["convert_vitpose"]


def _parse_grid(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"(\d+)x(\d+)", text)
    if not match:
        raise argparse.ArgumentTypeError(f"expected HxW such as 14x14, got {text!r}")
    return int(match.group(1)), int(match.group(2))


def convert_vitpose(argv: list[str] | None = None) -> int:
    """``vremd-convert-vitpose SOURCE OUTPUT_DIR``: write a VREMD model folder initialised from ViTPose."""
    parser = argparse.ArgumentParser(
        prog="vremd-convert-vitpose",
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
    parser.add_argument("output_dir", type=Path, help="new folder to write; must not exist or be empty")
    parser.add_argument("--preset", default="vremd-vitl", choices=sorted(PRESETS), help="VREMD's own modules")
    parser.add_argument(
        "--config", type=Path, default=None, help="VREMD config.json to convert into instead of a preset; its "
        "backbone must agree with the source"
    )  # fmt: skip
    parser.add_argument("--num-heads", type=int, default=None, help="backbone heads, for a non-standard width")
    parser.add_argument("--head", action="store_true", help="also load ViTPose's simple-decoder head into H_m")
    parser.add_argument("--source-grid", type=_parse_grid, default=None, help="checkpoint token grid HxW")
    parser.add_argument("--base-model", default=None, help="hub id of the source, for the model card's base_model")
    args = parser.parse_args(argv)
    # vremd-models does not depend on posetrack-data, so this is the same boundary as its run_guarded:
    # one line and status 2 for bad input, 130 for Ctrl-C. The output rule is simpler still: a new folder,
    # swapped in whole, so nothing existing is ever replaced.
    try:
        report = _convert_to_folder(args)
    except KeyboardInterrupt:
        print("vremd-convert-vitpose: interrupted", file=sys.stderr)
        return 130
    except CheckpointMismatchError as err:
        print(f"vremd-convert-vitpose: error: {args.checkpoint}: {err.report.summary()}", file=sys.stderr)
        return 2
    except (OSError, ValueError, TypeError, RecursionError, OverflowError, MemoryError) as err:
        message = " ".join(str(err).split()) or type(err).__name__
        print(f"vremd-convert-vitpose: error: {message}", file=sys.stderr)
        return 2
    print(f"wrote {args.output_dir} ({report.summary()})")
    return 0


def _convert_to_folder(args: argparse.Namespace) -> KeyReport:
    output_dir: Path = args.output_dir
    if output_dir.exists() and (not output_dir.is_dir() or any(output_dir.iterdir())):
        raise ValueError(f"{output_dir}: output folder exists and is not empty")
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
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.", dir=output_dir.parent))
    converted.model.save_pretrained(staging, model_card_kwargs=converted.card_kwargs(args.base_model))
    umask = os.umask(0)
    os.umask(umask)
    staging.chmod(0o777 & ~umask)  # mkdtemp creates 0700; give the folder the usual permissions
    if output_dir.exists():
        output_dir.rmdir()  # empty, checked above
    os.replace(staging, output_dir)
    return converted.report
