"""Time posetrack-eval against poseval and against plain JSON parsing of the same files.

Generates (seeded) a PoseTrack18-style val set the size of PoseTrack18 val by default: 170 videos,
about 50k GT poses (and as many predictions) on the labeled frames, per-sequence GT and prediction files
in poseval's layout. Then times, in this one run:

* posetrack-eval: ``evaluate(gt_dir, pred_dir)`` (loading included);
* JSON parsing only: ``json.loads`` and ``orjson.loads`` (the parser posetrack-eval uses) of every GT and
  prediction file's bytes;
* poseval (when ``--poseval-python`` is given): ``load_data_dir`` + ``evaluateAP`` in a subprocess with that
  interpreter (timed inside it, so interpreter start-up is excluded); its Total AP is compared.

All of them run once per round, ``--repeat`` interleaved rounds (3), and the medians are printed: of the
times, and of the per-round ratios (each ratio compares runs made under about the same machine load).
Wall and CPU times are both printed (CPU time is steadier when other jobs share the machine). Before the
data is generated, the start-up of ``posetrack-eval --help`` is timed (median of 5 fresh interpreters).
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
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import orjson

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
import numpy
out.update(seconds=time.perf_counter() - start, cpu=time.process_time() - cpu, total_ap=float(ap[15, 0]),
           numpy=numpy.__version__)
print(json.dumps(out))
"""

NAMES = [
    "nose", "head_bottom", "head_top", "left_ear", "right_ear", "left_shoulder", "right_shoulder", "left_elbow",
    "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle",
    "right_ankle",
]  # fmt: skip


def generate(
    root: Path, *, videos: int, frames: int, persons: int, seed: int, false_positives: int = 0, pt21: bool = False
) -> tuple[Path, Path, int]:
    """Write ``root/gt`` and ``root/pred``; return them and the number of GT poses.

    ``false_positives`` adds that many random predictions to every labeled frame; ``pt21`` writes the
    ``ignore_regions_x/y`` lists on every image (empty where there are none), which PoseTrack21's scorer
    requires, and lets one predicted track in ten take a new id for the rest of its video (tracking errors).
    Neither changes the rest of the data drawn for a seed.
    """
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
        pred_track, fresh_track = np.arange(persons), persons
        for f in range(frames):
            image_id = 10000000000 + (v + 1) * 10000 + f
            image = {"id": image_id, "file_name": f"images/val/{name}/{f:06d}.jpg", "is_labeled": bool(labeled[f])}
            if labeled[f] and rng.random() < 0.1:
                c = centres[0]
                image["ignore_regions_x"] = [[c[0] - 40, c[0] + 40, c[0] + 40, c[0] - 40]]
                image["ignore_regions_y"] = [[c[1] - 40, c[1] - 40, c[1] + 40, c[1] + 40]]
            if pt21:
                image.setdefault("ignore_regions_x", [])
                image.setdefault("ignore_regions_y", [])
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
            if pt21 and rng.random() < 0.1:
                pred_track[rng.integers(persons)] = fresh_track  # a fragmented track
                fresh_track += 1
            for i in range(n):
                gt_anns.append({"id": image_id * 100 + i, "image_id": image_id, "track_id": i, "category_id": 1,
                                "keypoints": gt[i].ravel().tolist(), "scores": [],
                                "bbox_head": [*(kpts[i, 2] - scales[i] / 2).round().tolist(), round(scales[i]),
                                              round(scales[i])]})  # fmt: skip
                pred_anns.append({"image_id": image_id, "track_id": int(pred_track[i]), "category_id": 1,
                                  "keypoints": pred[i].ravel().tolist(),
                                  "scores": rng.random(17).round(4).tolist()})  # fmt: skip
            for k in range(false_positives):
                centre = rng.uniform([100, 100], [1820, 980])
                spread = rng.normal(0, 1, size=(17, 2)) * rng.uniform(30, 120) * 2
                kpts_fp = np.concatenate([centre + spread, np.ones((17, 1))], axis=1).round(2)
                pred_anns.append({"image_id": image_id, "track_id": 1000 + k, "category_id": 1,
                                  "keypoints": kpts_fp.ravel().tolist(),
                                  "scores": (rng.random(17) * 0.5).round(4).tolist()})  # fmt: skip
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


def _parse_all(loads, *folders: Path) -> int:
    """Only parse every file (as a plain script would: bytes in, objects out, the GC left on)."""
    count = 0
    for folder in folders:
        for path in sorted(folder.glob("*.json")):
            count += len(loads(path.read_bytes())["annotations"])
    return count


def _start_up_seconds(runs: int = 5) -> tuple[float, float]:
    """Median wall and CPU (user + system) seconds of ``posetrack-eval --help`` in a fresh interpreter."""
    script = Path(sys.executable).with_name("posetrack-eval")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "posetrack_eval.cli"]
    walls, cpus = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run([*command, "--help"], capture_output=True, check=True)
        walls.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return statistics.median(walls), statistics.median(cpus)


def run_reference(python: str, pythonpath: str, code: str, *args: str, optimize: bool = False) -> dict:
    """Run a reference scorer's timing snippet with another interpreter; return the JSON of its last line."""
    env = {**os.environ, "PYTHONPATH": pythonpath}
    command = [python, *(["-O"] if optimize else []), "-c", code, *args]
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """The size of the generated set (PoseTrack18/21 val by default)."""
    parser.add_argument("--videos", type=int, default=170)
    parser.add_argument("--frames", type=int, default=80, help="frames per video (about 42 labeled)")
    parser.add_argument("--persons", type=int, default=9, help="max persons per labeled frame (mean about 7)")
    parser.add_argument("--seed", type=int, default=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_arguments(parser)
    parser.add_argument("--repeat", type=int, default=3, help="interleaved rounds; medians are reported")
    parser.add_argument("--poseval-python", help="interpreter that can import poseval (skip the comparison without)")
    parser.add_argument("--poseval-path", default="", help="folder to put on PYTHONPATH for that interpreter")
    parser.add_argument("--tracking", action="store_true", help="also compute MOTA on both sides")
    args = parser.parse_args()

    wall, cpu = _start_up_seconds()
    print(f"posetrack-eval --help: {wall:.3f} s wall {cpu:.3f} s CPU (median of 5 fresh interpreters)")
    with tempfile.TemporaryDirectory() as tmp:
        gt, pred, poses = generate(Path(tmp), videos=args.videos, frames=args.frames, persons=args.persons,
                                   seed=args.seed)  # fmt: skip
        size_mb = sum(p.stat().st_size for p in Path(tmp).rglob("*.json")) / 2**20
        print(f"data: {args.videos} videos, {poses} GT poses (+ as many predictions), {size_mb:.0f} MiB of JSON")
        # interleaved rounds: within a round every contender sees about the same machine load
        rounds: dict[str, list[tuple[float, float]]] = {"json": [], "orjson": [], "ours": [], "poseval": []}
        for _ in range(args.repeat):
            rounds["json"].append(_timed(lambda: _parse_all(json.loads, gt, pred))[:2])
            rounds["orjson"].append(_timed(lambda: _parse_all(orjson.loads, gt, pred))[:2])
            wall, cpu, result = _timed(lambda: evaluate(gt, pred, tracking=args.tracking))
            rounds["ours"].append((wall, cpu))
            if args.poseval_python:
                ref = run_reference(args.poseval_python, args.poseval_path, POSEVAL_TIMER, str(gt), str(pred) + "/",
                                    str(int(args.tracking)))  # fmt: skip
                rounds["poseval"].append((ref["seconds"], ref["cpu"]))

        def median(name: str, kind: int) -> float:
            return statistics.median(r[kind] for r in rounds[name])

        def ratio(top: str, bottom: str, kind: int) -> float:
            """Median over rounds of the per-round ratio."""
            return statistics.median(a[kind] / b[kind] for a, b in zip(rounds[top], rounds[bottom], strict=True))

        print(f"medians of {args.repeat} interleaved rounds (wall / CPU of this process)")
        print(f"json.loads only     : {median('json', 0):8.2f} s wall {median('json', 1):8.2f} s CPU")
        print(f"orjson.loads only   : {median('orjson', 0):8.2f} s wall {median('orjson', 1):8.2f} s CPU")
        print(f"posetrack-eval      : {median('ours', 0):8.2f} s wall {median('ours', 1):8.2f} s CPU "
              f"({ratio('ours', 'orjson', 0):.2f}x / {ratio('ours', 'orjson', 1):.2f}x the orjson parse time, "
              f"{ratio('ours', 'json', 0):.2f}x / {ratio('ours', 'json', 1):.2f}x the json parse time)")  # fmt: skip
        print(f"posetrack-eval Total AP: {result.ap['Total']:.6f}")
        if args.tracking:
            print(f"posetrack-eval Total MOTA: {result.mota['Total']:.6f}")
        if not args.poseval_python:
            print("poseval: skipped (no --poseval-python)")
            return
        faster = f"{ratio('poseval', 'ours', 0):.1f}x / {ratio('poseval', 'ours', 1):.1f}x"
        print(f"poseval             : {median('poseval', 0):8.2f} s wall {median('poseval', 1):8.2f} s CPU "
              f"(posetrack-eval is {faster} faster)")  # fmt: skip
        diff = abs(ref["total_ap"] - result.ap["Total"])
        print(f"poseval Total AP       : {ref['total_ap']:.6f} (difference {diff:.2e})")
        # poseval ranks ties with its interpreter's numpy; posetrack-eval's default is numpy 1.x's order
        same = evaluate(gt, pred, tracking=args.tracking, tie_order="installed").ap["Total"]
        print(f"posetrack-eval Total AP, tie_order='installed' (untimed): {same:.6f} "
              f"(difference to poseval {abs(ref['total_ap'] - same):.2e}; same numpy as poseval's: "
              f"{ref.get('numpy') == np.__version__})")  # fmt: skip
        if args.tracking:
            diff = abs(ref["total_mota"] - result.mota["Total"])
            print(f"poseval Total MOTA     : {ref['total_mota']:.6f} (difference {diff:.2e})")


if __name__ == "__main__":
    main()
