"""Time posetrack-eval against poseval and against plain JSON parsing of the same files.

Generates (seeded) a PoseTrack18-style val set the size of PoseTrack18 val by default: 170 videos,
about 50k GT poses (and as many predictions) on the labeled frames, per-sequence GT and prediction files
in poseval's layout. Then times, in this one run:

* posetrack-eval: ``evaluate(gt_dir, pred_dir)`` (loading included), best of ``--repeat``;
* JSON parsing only: ``json.load`` of every GT and prediction file, best of ``--repeat`` (interleaved);
* poseval (when ``--poseval-python`` is given): ``load_data_dir`` + ``evaluateAP`` in a subprocess with that
  interpreter (timed inside it, so interpreter start-up is excluded), once; its Total AP is compared.

Wall and CPU times are both printed (CPU time is steadier when other jobs share the machine).
With ``--tracking`` both also compute MOTA (poseval's ``evaluateTracking``; slow, so use fewer videos).

    uv run python benchmarks/eval_vs_poseval.py                                   # ours vs JSON only
    uv run python benchmarks/eval_vs_poseval.py --poseval-python /path/to/env/bin/python \
        --poseval-path /path/to/poseval-checkout                                  # + poseval
    uv run python benchmarks/eval_vs_poseval.py --videos 20 --tracking ...        # smaller set, with MOTA
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from posetrack_eval import evaluate

POSEVAL_TIMER = r"""
import contextlib, glob, io, json, sys, time, warnings
warnings.simplefilter("ignore")
_glob = glob.glob
glob.glob = lambda pattern, *a, **k: sorted(_glob(pattern, *a, **k))  # name order, as posetrack-eval (ties)
from poseval import eval_helpers
from poseval.evaluateAP import evaluateAP
from poseval.evaluateTracking import evaluateTracking
import copy, tempfile
start, cpu = time.perf_counter(), time.process_time()
out = {}
with contextlib.redirect_stdout(io.StringIO()), tempfile.TemporaryDirectory() as tmp:
    g, p = eval_helpers.load_data_dir(["", sys.argv[1], sys.argv[2]])
    if sys.argv[3] == "1":
        g2, p2 = copy.deepcopy(g), copy.deepcopy(p)
    ap, _, _ = evaluateAP(g, p, tmp, False, False)
    if sys.argv[3] == "1":
        out["total_mota"] = float(evaluateTracking(g2, p2, tmp, False, False)["mota"][0, 15])
out.update(seconds=time.perf_counter() - start, cpu=time.process_time() - cpu, total_ap=float(ap[15, 0]))
print(json.dumps(out))
"""

NAMES = [
    "nose", "head_bottom", "head_top", "left_ear", "right_ear", "left_shoulder", "right_shoulder", "left_elbow",
    "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle",
    "right_ankle",
]  # fmt: skip


def generate(root: Path, *, videos: int, frames: int, persons: int, seed: int) -> tuple[Path, Path, int]:
    """Write ``root/gt`` and ``root/pred``; return them and the number of GT poses."""
    rng = np.random.default_rng(seed)
    gt_dir, pred_dir = root / "gt", root / "pred"
    gt_dir.mkdir(parents=True)
    pred_dir.mkdir(parents=True)
    category = [{"id": 1, "name": "person", "keypoints": NAMES, "skeleton": []}]
    num_poses = 0
    for v in range(videos):
        name = f"{v + 1:06d}_mpii_test"
        labeled = np.zeros(frames, dtype=bool)
        labeled[frames // 4 : frames // 4 + 30] = True  # about 30 consecutive labeled frames
        labeled[::4] = True  # and every 4th frame, as in PoseTrack val
        images, gt_anns, pred_anns = [], [], []
        centres = rng.uniform([100, 100], [1820, 980], size=(persons, 2))
        scales = rng.uniform(30, 120, size=persons)
        for f in range(frames):
            image_id = 10000000000 + (v + 1) * 10000 + f
            image = {"id": image_id, "file_name": f"images/val/{name}/{f:06d}.jpg", "is_labeled": bool(labeled[f])}
            if labeled[f] and rng.random() < 0.1:
                c = centres[0]
                image["ignore_regions_x"] = [[c[0] - 40, c[0] + 40, c[0] + 40, c[0] - 40]]
                image["ignore_regions_y"] = [[c[1] - 40, c[1] - 40, c[1] + 40, c[1] + 40]]
            images.append(image)
            if not labeled[f]:
                continue
            n = int(rng.integers(persons // 2, persons + 1))
            kpts = centres[:n, None] + rng.normal(0, 1, size=(n, 17, 2)) * scales[:n, None, None] * 2
            vis = rng.random((n, 17)) < 0.85
            vis[:, 3:5] = False
            gt = np.concatenate([kpts * vis[..., None], vis[..., None].astype(float)], axis=2).round(2)
            noise = rng.normal(0, 1, size=(n, 17, 2)) * scales[:n, None, None] * rng.uniform(0.05, 0.4, (n, 1, 1))
            pred = np.concatenate([kpts + noise, np.ones((n, 17, 1))], axis=2).round(2)
            for i in range(n):
                gt_anns.append({"id": image_id * 100 + i, "image_id": image_id, "track_id": i, "category_id": 1,
                                "keypoints": gt[i].ravel().tolist(), "scores": [],
                                "bbox_head": [*(kpts[i, 2] - scales[i] / 2).round().tolist(), round(scales[i]),
                                              round(scales[i])]})  # fmt: skip
                pred_anns.append({"image_id": image_id, "track_id": i, "category_id": 1,
                                  "keypoints": pred[i].ravel().tolist(),
                                  "scores": rng.random(17).round(4).tolist()})  # fmt: skip
            num_poses += n
        (gt_dir / f"{name}.json").write_text(
            json.dumps({"images": images, "annotations": gt_anns, "categories": category})
        )
        pred = {"images": [{"id": im["id"], "file_name": im["file_name"]} for im in images], "annotations": pred_anns,
                "categories": category}  # fmt: skip
        (pred_dir / f"{name}.json").write_text(json.dumps(pred))
    return gt_dir, pred_dir, num_poses


def _timed(fn) -> tuple[float, float, object]:
    """(wall seconds, CPU seconds of this process, result)."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - wall, time.process_time() - cpu, out


def _parse_all(*folders: Path) -> int:
    count = 0
    for folder in folders:
        for path in sorted(folder.glob("*.json")):
            with open(path) as handle:
                count += len(json.load(handle)["annotations"])
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=170)
    parser.add_argument("--frames", type=int, default=80, help="frames per video (about 42 labeled)")
    parser.add_argument("--persons", type=int, default=9, help="max persons per labeled frame (mean about 7)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--poseval-python", help="interpreter that can import poseval (skip the comparison without)")
    parser.add_argument("--poseval-path", default="", help="folder to put on PYTHONPATH for that interpreter")
    parser.add_argument("--tracking", action="store_true", help="also compute MOTA on both sides")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        gt, pred, poses = generate(Path(tmp), videos=args.videos, frames=args.frames, persons=args.persons,
                                   seed=args.seed)  # fmt: skip
        size_mb = sum(p.stat().st_size for p in Path(tmp).rglob("*.json")) / 2**20
        print(f"data: {args.videos} videos, {poses} GT poses (+ as many predictions), {size_mb:.0f} MiB of JSON")
        # interleaved, best of each: the two share whatever else the machine is doing
        w_json = c_json = w_ours = c_ours = float("inf")
        for _ in range(args.repeat):
            wall, cpu, _ = _timed(lambda: _parse_all(gt, pred))
            w_json, c_json = min(w_json, wall), min(c_json, cpu)
            wall, cpu, result = _timed(lambda: evaluate(gt, pred, tracking=args.tracking))
            w_ours, c_ours = min(w_ours, wall), min(c_ours, cpu)
        print(f"json.load only      : {w_json:8.2f} s wall {c_json:8.2f} s CPU")
        print(f"posetrack-eval      : {w_ours:8.2f} s wall {c_ours:8.2f} s CPU "
              f"({w_ours / w_json:.2f}x / {c_ours / c_json:.2f}x the JSON parse time)")  # fmt: skip
        print(f"posetrack-eval Total AP: {result.ap['Total']:.6f}")
        if args.tracking:
            print(f"posetrack-eval Total MOTA: {result.mota['Total']:.6f}")
        if not args.poseval_python:
            print("poseval: skipped (no --poseval-python)")
            return
        env = {**os.environ, "PYTHONPATH": args.poseval_path}
        command = [args.poseval_python, "-c", POSEVAL_TIMER, str(gt), str(pred) + "/", str(int(args.tracking))]
        done = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
        ref = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"poseval             : {ref['seconds']:8.2f} s wall {ref['cpu']:8.2f} s CPU "
              f"(posetrack-eval is {ref['seconds'] / w_ours:.1f}x / {ref['cpu'] / c_ours:.1f}x faster)")  # fmt: skip
        diff = abs(ref["total_ap"] - result.ap["Total"])
        print(f"poseval Total AP       : {ref['total_ap']:.6f} (difference {diff:.2e})")
        if args.tracking:
            diff = abs(ref["total_mota"] - result.mota["Total"])
            print(f"poseval Total MOTA     : {ref['total_mota']:.6f} (difference {diff:.2e})")


if __name__ == "__main__":
    main()
