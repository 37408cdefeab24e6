"""`vremd-demo`: serve the VREMD page on this machine, offline, on CPU.

    vremd-demo --model runs/default/model                 # http://127.0.0.1:7860
    vremd-demo --model org/vremd-vitl-pt17 --port 8000 --data-dir data
    vremd-demo --model runs/default/model --detector my-detector/ --detect-every 5

The page binds to 127.0.0.1 unless `--host` says otherwise. Gradio's telemetry and version check are
switched off before Gradio is imported, and the page uses Gradio's bundled fonts only, so it loads and
runs without a network.
"""

import argparse
import logging
import os
import socket
import sys
from pathlib import Path

from posetrack_data.errors import PoseTrackFormatError
from posetrack_data.outputs import CommandParser, run_guarded
from vremd_models.predict.cli import load_model, quiet_ffmpeg, resolve_dtype
from vremd_models.predict.detector import DEFAULT_DETECTOR, DEFAULT_THRESHOLD
from vremd_models.predict.errors import PredictInputError

__all__ = ["build_parser", "main"]

# Set before Gradio is imported: no telemetry, no version check, no share tunnel, no server-side rendering
# (which would start a Node server).
_OFFLINE_ENVIRONMENT = {
    "GRADIO_ANALYTICS_ENABLED": "False",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "GRADIO_SSR_MODE": "False",
}


def build_parser() -> argparse.ArgumentParser:
    """The `vremd-demo` argument parser."""
    parser = CommandParser(prog="vremd-demo", description="A local web page showing what VREMD sees.")
    parser.add_argument("--model", required=True, help="hub id or local folder saved with save_pretrained")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=7860, help="port to serve on (default 7860)")
    parser.add_argument("--data-dir", type=Path, default=Path("data"), help="where the synthetic clip is generated")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32", help="model compute dtype")
    parser.add_argument("--max-frames", type=int, default=300, help="longest upload in frames (default 300)")
    parser.add_argument("--max-upload-mb", type=int, default=200, help="largest upload in MB (default 200)")
    parser.add_argument("--min-box-score", type=float, default=0.2, help="drop detections scoring lower")
    parser.add_argument(
        "--detector",
        default=DEFAULT_DETECTOR,
        help="the page's person detector: a transformers object-detection hub id or folder, loaded when first "
        f"picked (default {DEFAULT_DETECTOR}; needs vremd-models[detect])",
    )
    parser.add_argument("--detector-threshold", type=float, default=DEFAULT_THRESHOLD, help="least detector score")
    parser.add_argument("--detect-every", type=int, default=1, help="detect on every N-th frame (default 1)")
    parser.add_argument("--no-flip-test", dest="flip_test", action="store_false", help="skip the flipped pass")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of `vremd-demo`: serves until interrupted; 2 (one line) for unusable arguments, port or model."""
    args = build_parser().parse_args(argv)
    quiet_ffmpeg()
    for name, value in _OFFLINE_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return run_guarded("vremd-demo", lambda: _serve(args), (PredictInputError, PoseTrackFormatError))


def _check_port(host: str, port: int) -> None:
    """Refuse a port this machine cannot serve on (taken, or not ours to bind) before the model loads."""
    if not 1 <= port <= 65535:
        raise PredictInputError(f"--port {port}: expected 1 to 65535")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds it
            probe.bind(address)
    except OSError as error:
        reason = error.strerror or str(error)
        raise PredictInputError(f"--host {host} --port {port}: cannot serve there ({reason})") from None


def _serve(args: argparse.Namespace) -> int:
    if args.max_frames < 1:
        raise PredictInputError(f"--max-frames {args.max_frames}: expected at least 1")
    if not 0.0 <= args.detector_threshold <= 1.0:
        raise PredictInputError(f"--detector-threshold {args.detector_threshold}: expected 0 to 1")
    if args.detect_every < 1:
        raise PredictInputError(f"--detect-every {args.detect_every}: expected at least 1")
    _check_port(args.host, args.port)
    from vremd_models.predict.predictor import PosePredictor

    predictor = PosePredictor(
        load_model(args.model, args.device),
        device=args.device,
        dtype=resolve_dtype(args.dtype, args.device),
        flip_test=args.flip_test,
        name=f"--model {args.model}",
    )

    from vremd_models.demo.clip import UploadLimits
    from vremd_models.demo.page import DemoPage

    page = DemoPage(
        predictor,
        model_name=args.model,
        data_dir=args.data_dir,
        limits=UploadLimits(max_frames=args.max_frames),
        min_box_score=args.min_box_score,
        detector=args.detector,
        detector_threshold=args.detector_threshold,
        detect_every=args.detect_every,
    ).build()
    page.queue(default_concurrency_limit=1)
    page.launch(
        server_name=args.host,
        server_port=args.port,
        share=False,
        ssr_mode=False,
        max_file_size=f"{args.max_upload_mb}mb",
        footer_links=[],
        show_error=False,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
