"""Command-line entry points of vremd-models: ``vremd-convert-vitpose``."""

import argparse
import os
import re
import sys
import tempfile
from pathlib import Path

from vremd_models.config import PRESETS, VREMDConfig
from vremd_models.convert import (
    CheckpointMismatchError,
    KeyReport,
    convert_vitpose_state_dict,
    load_vitpose_checkpoint,
    load_vitpose_into,
)

__all__ = ["convert_vitpose"]


def _parse_grid(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"(\d+)x(\d+)", text)
    if not match:
        raise argparse.ArgumentTypeError(f"expected HxW such as 14x14, got {text!r}")
    return int(match.group(1)), int(match.group(2))


def convert_vitpose(argv: list[str] | None = None) -> int:
    """``vremd-convert-vitpose CHECKPOINT OUTPUT_DIR``: write a VREMD model folder initialised from ViTPose."""
    parser = argparse.ArgumentParser(
        prog="vremd-convert-vitpose",
        description="Initialise a VREMD model from a ViTPose checkpoint (mmpose or transformers key layout) and "
        "save it with save_pretrained (config.json, model.safetensors, README.md).",
    )
    parser.add_argument("checkpoint", type=Path, help="ViTPose .pth (mmpose) or .safetensors (transformers) file")
    parser.add_argument("output_dir", type=Path, help="new folder to write; must not exist or be empty")
    parser.add_argument("--preset", default="vremd-vitl", choices=sorted(PRESETS), help="VREMD preset to build")
    parser.add_argument("--head", action="store_true", help="also load ViTPose's simple-decoder head into H_m")
    parser.add_argument("--source-grid", type=_parse_grid, default=None, help="checkpoint token grid HxW")
    args = parser.parse_args(argv)
    try:
        report = _convert_to_folder(args.checkpoint, args.output_dir, args.preset, args.head, args.source_grid)
    except CheckpointMismatchError as err:
        print(f"vremd-convert-vitpose: error: {args.checkpoint}: {err.report.summary()}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as err:
        print(f"vremd-convert-vitpose: error: {err}", file=sys.stderr)
        return 1
    print(f"wrote {args.output_dir} ({report.summary()})")
    return 0


def _convert_to_folder(
    checkpoint: Path, output_dir: Path, preset: str, include_head: bool, source_grid: tuple[int, int] | None
) -> KeyReport:
    from vremd_models.modeling import VREMD  # the model module imports this one's constants

    if output_dir.exists() and (not output_dir.is_dir() or any(output_dir.iterdir())):
        raise ValueError(f"{output_dir}: output folder exists and is not empty")
    if checkpoint.suffix == ".safetensors":
        from safetensors.torch import load_file

        if not checkpoint.is_file():
            raise FileNotFoundError(f"{checkpoint}: no such checkpoint file")
        state_dict = load_file(checkpoint)
    else:
        state_dict = load_vitpose_checkpoint(checkpoint)
    config: VREMDConfig = PRESETS[preset]
    try:
        converted = convert_vitpose_state_dict(
            state_dict, grid_size=config.grid_size, include_head=include_head, source_grid=source_grid
        )
    except ValueError as err:
        raise ValueError(f"{checkpoint}: {err}") from err
    model = VREMD(config)
    report = load_vitpose_into(model, converted, include_head=include_head)
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.", dir=output_dir.parent))
    model.save_pretrained(staging)
    umask = os.umask(0)
    os.umask(umask)
    staging.chmod(0o777 & ~umask)  # mkdtemp creates 0700; give the folder the usual permissions
    if output_dir.exists():
        output_dir.rmdir()  # empty, checked above
    os.replace(staging, output_dir)
    return report
