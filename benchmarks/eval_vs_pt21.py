"""Time posetrack-eval's keypoint HOTA against PoseTrack21's own scorer on the same PoseTrack21-val-sized set.

Generates (seeded, with ``eval_vs_poseval.generate(..., pt21=True)``) per-sequence GT and prediction files the
size of PoseTrack21 val by default (its videos are PoseTrack18 val's: 170 videos, about 46,650 GT poses on the
labeled frames, as many predictions, fragmented predicted tracks). Then times, in this one run:

* posetrack-eval: ``evaluate(gt_dir, pred_dir, protocol="pt21", tracking=True)`` (loading included, and the
  PoseTrack21 mAP it computes as well);
* PoseTrack21's scorer (``--pt21-python``, an interpreter with its requirements, and ``--pt21-path``, its
  ``eval/posetrack21`` folder): loading, preprocessing, ``HOTAeypoints.eval_sequence`` of every sequence and
  ``combine_sequences``, as ``scripts/run_posetrack_challenge.py`` runs them, timed inside its process
  (interpreter start-up excluded); run with ``python -O`` as the parity fixtures were.

posetrack-eval runs ``--repeat`` times (median), the scorer once per round; the ratio of the medians is
printed, and the HOTA Totals of both (they must agree within 1e-6).

    uv run python benchmarks/eval_vs_pt21.py --pt21-python /path/to/env/bin/python \
        --pt21-path /path/to/PoseTrack21/eval/posetrack21
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from eval_vs_poseval import add_data_arguments, generate, run_reference

from posetrack_eval import evaluate

PT21_TIMER = r"""
import contextlib, io, json, sys, time, warnings
import numpy as np
np.int, np.float = int, float  # the PoseTrack21 code predates numpy 1.24
warnings.simplefilter("ignore")
from posetrack21.trackeval.datasets.posetrack import PoseTrack
from posetrack21.trackeval.metrics.hota_pose import HOTAeypoints
start, cpu = time.perf_counter(), time.process_time()
with contextlib.redirect_stdout(io.StringIO()):
    ds = PoseTrack({"GT_FOLDER": sys.argv[1], "TRACKERS_FOLDER": sys.argv[2], "PRINT_CONFIG": False})
    metric, res = HOTAeypoints(), {}
    for seq in sorted(ds.seq_list):
        raw = ds.get_raw_seq_data(ds.tracker_list[0], seq)
        res[seq] = metric.eval_sequence(ds.get_preprocessed_seq_data(raw, "person"))
    comb = metric.combine_sequences(res)
print(json.dumps({"seconds": time.perf_counter() - start, "cpu": time.process_time() - cpu,
                  "hota": 100 * float(np.mean(comb["HOTA"][:, -1])), "numpy": np.__version__}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_arguments(parser)
    parser.add_argument("--repeat", type=int, default=3, help="runs of posetrack-eval per round (median)")
    parser.add_argument("--rounds", type=int, default=1, help="rounds, each one run of the scorer")
    parser.add_argument("--pt21-python", required=True, help="interpreter with PoseTrack21's requirements")
    parser.add_argument("--pt21-path", required=True, help="PoseTrack21's eval/posetrack21 folder")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        gt, pred, poses = generate(Path(tmp), videos=args.videos, frames=args.frames, persons=args.persons,
                                   seed=args.seed, pt21=True)  # fmt: skip
        size_mb = sum(p.stat().st_size for p in Path(tmp).rglob("*.json")) / 2**20
        print(f"data: {args.videos} videos, {poses} GT poses (+ as many predictions), {size_mb:.0f} MiB of JSON")
        ours, theirs = [], []
        for _ in range(args.rounds):
            for _ in range(args.repeat):
                wall, cpu = time.perf_counter(), time.process_time()
                result = evaluate(gt, pred, protocol="pt21", tracking=True)
                ours.append((time.perf_counter() - wall, time.process_time() - cpu))
            # -O: as the parity fixtures were recorded (the scorer asserts on frames without GT persons)
            ref = run_reference(args.pt21_python, args.pt21_path, PT21_TIMER, str(gt), str(pred), optimize=True)
            theirs.append((ref["seconds"], ref["cpu"]))
    wall, cpu = statistics.median(t for t, _ in ours), statistics.median(c for _, c in ours)
    ref_wall, ref_cpu = statistics.median(t for t, _ in theirs), statistics.median(c for _, c in theirs)
    print(f"posetrack-eval (HOTA + mAP): {wall:8.2f} s wall {cpu:8.2f} s CPU (median of {len(ours)})")
    print(f"PoseTrack21 HOTAeypoints   : {ref_wall:8.2f} s wall {ref_cpu:8.2f} s CPU (numpy {ref['numpy']}, "
          f"median of {len(theirs)})")  # fmt: skip
    print(f"posetrack-eval is {ref_wall / wall:.1f}x (wall) / {ref_cpu / cpu:.1f}x (CPU) faster")
    ours_hota = result.hota["HOTA"]["Total"]
    print(f"HOTA Total: posetrack-eval {ours_hota:.6f}, PoseTrack21 {ref['hota']:.6f} "
          f"(difference {abs(ours_hota - ref['hota']):.2e})")  # fmt: skip


if __name__ == "__main__":
    main()
