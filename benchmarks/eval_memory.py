"""Peak memory (RSS) and time of posetrack-eval against the size of the data set, each in a fresh process.

Generates (seeded, with ``eval_vs_poseval.generate``) PoseTrack18-val-like sets of 0.25x to 4x the size of
PoseTrack18 val (170 videos, about 46,650 GT poses and as many predictions at 1x), then runs
``evaluate(gt_dir, pred_dir)`` on each in a new interpreter and prints its peak RSS and time beside the size,
and the ratio of the peak at 4x to the peak at 1x. With ``--baseline-src`` the same runs are made with
another copy of posetrack-eval (for instance ``packages/posetrack-eval/src`` of an older checkout) in the
same session, and its Total AP must equal ours.

    uv run python benchmarks/eval_memory.py
    uv run python benchmarks/eval_memory.py --baseline-src /path/to/old-checkout/packages/posetrack-eval/src
    uv run python benchmarks/eval_memory.py --false-positives 20 --scales 1   # 27 predictions per frame
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from eval_vs_poseval import generate

CHILD = r"""
import json, resource, sys, time
if sys.argv[4]:
    sys.path.insert(0, sys.argv[4])
from posetrack_eval import evaluate
start, cpu = time.perf_counter(), time.process_time()
result = evaluate(sys.argv[1], sys.argv[2], tracking=sys.argv[3] == "1")
print(json.dumps({"seconds": time.perf_counter() - start, "cpu": time.process_time() - cpu,
                  "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "total_ap": result.ap["Total"], "module": evaluate.__module__,
                  "file": sys.modules["posetrack_eval"].__file__}))
"""


def _run(gt: Path, pred: Path, tracking: bool, src: str) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-c", CHILD, str(gt), str(pred), "1" if tracking else "0", src]
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", type=float, nargs="+", default=[0.25, 0.5, 1, 2, 4],
                        help="data set sizes, in PoseTrack18 vals (170 videos each)")  # fmt: skip
    parser.add_argument("--false-positives", type=int, default=0, help="extra random predictions per labeled frame")
    parser.add_argument("--tracking", action="store_true", help="also compute MOTA")
    parser.add_argument("--baseline-src", help="a folder holding another posetrack_eval package to measure too")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rows = []
    for scale in args.scales:
        with tempfile.TemporaryDirectory() as tmp:
            videos = max(1, round(170 * scale))
            gt, pred, poses = generate(Path(tmp), videos=videos, frames=80, persons=9, seed=args.seed,
                                       false_positives=args.false_positives)  # fmt: skip
            size_mib = sum(p.stat().st_size for p in Path(tmp).rglob("*.json")) / 2**20
            ours = _run(gt, pred, args.tracking, "")
            base = _run(gt, pred, args.tracking, args.baseline_src) if args.baseline_src else None
        rows.append((scale, videos, poses, size_mib, ours, base))
        line = (f"{scale:5.2f}x  {videos:4d} videos  {poses:7d} GT poses  {size_mib:6.0f} MiB JSON  posetrack-eval: "
                f"{ours['peak_mib']:7.0f} MiB peak, {ours['seconds']:6.2f} s ({ours['cpu']:6.2f} s CPU)")  # fmt: skip
        if base is not None:
            same = "same Total AP" if base["total_ap"] == ours["total_ap"] else "Total AP DIFFERS"
            line += f"  | baseline: {base['peak_mib']:7.0f} MiB peak, {base['seconds']:6.2f} s ({same})"
        print(line, flush=True)
    peaks = {scale: ours["peak_mib"] for scale, *_, ours, _ in rows}
    if 1 in peaks and 4 in peaks:
        print(f"peak RSS at 4x / at 1x: {peaks[4] / peaks[1]:.2f} (goal <= 1.5)")
        if args.baseline_src:
            base_peaks = {scale: base["peak_mib"] for scale, *_, base in rows}
            print(f"baseline peak RSS at 4x / at 1x: {base_peaks[4] / base_peaks[1]:.2f}")


if __name__ == "__main__":
    main()
