"""Record the reference scorers' numbers for the parity tests (run by hand; needs a poseval install).

    python tests/posetrack_eval/make_fixtures.py --python /path/to/env/bin/python \
        --poseval-src /path/to/poseval-checkout --pt21-src /path/to/PoseTrack21/eval/posetrack21 \
        --sample /path/to/shared/data/posetrack18-sample [--pt21-python /path/to/pinned/bin/python] [--only hota]

The interpreter must have numpy, scipy, shapely, motmetrics, pandas and click; ``--pt21-python`` (default: the
same) runs PoseTrack21's keypoint HOTA, recorded in the environment its requirements.txt pins (numpy 1.22,
scipy 1.7.3, Shapely 1.8, plus tqdm, which it imports). The runners below only call the reference code; only
their output numbers end up in ``fixtures/``. poseval globs the GT folder in file
system order, which decides how tied scores across sequences rank; the runner sorts that glob so the
recorded numbers are reproducible (our evaluator reads sequences sorted by name too).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import synth

FIXTURES = Path(__file__).parent / "fixtures"

POSEVAL_RUNNER = r"""
import contextlib, copy, glob, io, json, os, sys, tempfile, warnings
import numpy as np
_glob = glob.glob
glob.glob = lambda pattern, *a, **k: sorted(_glob(pattern, *a, **k))
from poseval import eval_helpers
from poseval.evaluateAP import evaluateAP
from poseval.evaluateTracking import evaluateTracking
warnings.simplefilter("ignore")
def L(a):
    return [None if not np.isfinite(v) else v for v in np.asarray(a, dtype=float).ravel().tolist()]
gt, pr, tracking = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
out, buf = {}, io.StringIO()
with contextlib.redirect_stdout(buf), tempfile.TemporaryDirectory() as tmp:
    g, p = eval_helpers.load_data_dir(["", gt, pr.rstrip("/") + "/"])
    out["frames"] = len(g)
    g2, p2 = copy.deepcopy(g), copy.deepcopy(p)
    ap, pre, rec = evaluateAP(g, p, tmp, True, True)
    print("Average Precision (AP) metric:")
    eval_helpers.printTable(ap)
    out.update(ap=L(ap), ap_pre=L(pre), ap_rec=L(rec))
    seqs = {}
    if tracking:
        m = evaluateTracking(g2, p2, tmp, True, True)
        metrics = np.zeros([19, 1])
        metrics[:16, 0] = m["mota"][0, :16]
        metrics[16, 0], metrics[17, 0], metrics[18, 0] = m["motp"][0, 15], m["pre"][0, 15], m["rec"][0, 15]
        print("Multiple Object Tracking (MOT) metrics:")
        eval_helpers.printTable(metrics, motHeader=True)
        out.update(mota=L(m["mota"]), motp=L(m["motp"]), mot_pre=L(m["pre"]), mot_rec=L(m["rec"]))
    for f in sorted(os.listdir(tmp)):
        if f.startswith("total_"):
            continue
        name, kind = f.rsplit("_", 2)[0], f.rsplit("_", 2)[1]
        d = json.load(open(os.path.join(tmp, f)))
        seq = seqs.setdefault(name, {})
        if kind == "AP":
            seq.update(ap=L(d["ap"]), ap_pre=L(d["pre"]), ap_rec=L(d["rec"]))
        else:
            seq.update(mota=L(d["mota"]), motp=L(d["motp"]), mot_pre=L(d["pre"]), mot_rec=L(d["rec"]))
    out["per_sequence"] = seqs
lines = buf.getvalue().splitlines()
start = lines.index("Average Precision (AP) metric:")
out["table"] = [line for line in lines[start:] if line.startswith(("&", "Average", "Multiple"))]
json.dump(out, sys.stdout)
"""

PT21_RUNNER = r"""
import contextlib, io, json, os, sys, warnings
import numpy as np
np.int, np.float = int, float  # the PoseTrack21 code predates numpy 1.24
warnings.simplefilter("ignore")
from posetrack21.trackeval.datasets.posetrack import PoseTrack
from posetrack21.trackeval.metrics.map import PosemAP
gt, pr = sys.argv[1], sys.argv[2]
with contextlib.redirect_stdout(io.StringIO()):
    ds = PoseTrack({"GT_FOLDER": gt, "TRACKERS_FOLDER": pr, "PRINT_CONFIG": False, "ASSURE_SINGLE_TRACKER": True})
    metric, res = PosemAP(), {}
    for seq in sorted(ds.seq_list):  # PoseTrack21's evaluator also iterates sorted(seq_list)
        raw = ds.get_raw_seq_data(ds.tracker_list[0], seq)
        res[seq] = metric.eval_sequence(ds.get_preprocessed_seq_data(raw, "person"))
    comb = metric.combine_sequences(res)
C = lambda d: {k: (None if not np.isfinite(v) else float(v)) for k, v in d.items()}
out = {"map": C(comb["map"]), "precision": C(comb["precision"]), "recall": C(comb["recall"]),
       "per_sequence": {os.path.splitext(s)[0]: {"map": C(r["map"]), "precision": C(r["precision"]),
                                                  "recall": C(r["recall"])} for s, r in res.items()}}
json.dump(out, sys.stdout)
"""

HOTA_RUNNER = r"""
import contextlib, io, json, os, sys, warnings
import numpy as np
np.int, np.float = int, float  # the PoseTrack21 code predates numpy 1.24
warnings.simplefilter("ignore")
from posetrack21.trackeval.datasets.posetrack import PoseTrack
from posetrack21.trackeval.metrics.hota_pose import HOTAeypoints
gt, pr = sys.argv[1], sys.argv[2]
def summary(metric, res):
    # what HOTAeypoints._summary_result prints, before formatting
    out = {}
    for field in metric.float_array_fields + metric.float_fields:
        values = 100 * (np.mean(res[field], axis=0) if field in metric.float_array_fields else res[field])
        out[field] = dict(zip(metric.joint_names + ["Total"], [float(v) for v in values]))
    return out
with contextlib.redirect_stdout(io.StringIO()):
    ds = PoseTrack({"GT_FOLDER": gt, "TRACKERS_FOLDER": pr, "PRINT_CONFIG": False, "ASSURE_SINGLE_TRACKER": True})
    metric, res = HOTAeypoints(), {}
    for seq in sorted(ds.seq_list):  # as trackeval's Evaluator (run_posetrack_challenge.py) iterates them
        raw = ds.get_raw_seq_data(ds.tracker_list[0], seq)
        res[seq] = metric.eval_sequence(ds.get_preprocessed_seq_data(raw, "person"))
    comb = metric.combine_sequences(res)
# per sequence, the Total column (what the scorer's per-sequence rows print)
out = {"hota": summary(metric, comb),
       "per_sequence": {os.path.splitext(s)[0]: {f: v["Total"] for f, v in summary(metric, r).items()}
                        for s, r in res.items()}}
json.dump(out, sys.stdout)
"""

COMBOS = (("pt18", "pt18"), ("pt17", "pt17"), ("pt18", "pt17"), ("pt17", "pt18"))


def poseval_cases() -> list[dict]:
    cases = []
    for i, seed in enumerate(range(100, 124)):
        gt_format, pred_format = COMBOS[i % len(COMBOS)]
        cases.append({"seed": seed, "gt_format": gt_format, "pred_format": pred_format, "protocol": "poseval"})
    cases.append({"seed": 200, "gt_format": "pt18", "pred_format": "pt18", "protocol": "poseval", "num_sequences": 6,
                  "frames": [20, 40]})  # fmt: skip
    cases.append({"seed": 201, "gt_format": "pt17", "pred_format": "pt18", "protocol": "poseval", "num_sequences": 4,
                  "frames": [10, 30], "labeled_p": 0.3})  # fmt: skip
    return cases


def pt21_cases() -> list[dict]:
    cases = [{"seed": seed, "gt_format": "pt18", "pred_format": "pt18", "protocol": "pt21"} for seed in range(300, 310)]
    cases.append({"seed": 310, "gt_format": "pt18", "pred_format": "pt18", "protocol": "pt21", "num_sequences": 6,
                  "frames": [20, 40]})  # fmt: skip
    return cases


def hota_cases() -> list[dict]:
    common = {"gt_format": "pt18", "pred_format": "pt18", "protocol": "pt21", "tracking": True}
    cases = [{"seed": seed, **common, "frames": [8, 16]} for seed in range(500, 516)]
    cases += [{"seed": seed, **common, "num_sequences": 6, "frames": [20, 40]} for seed in (520, 521)]
    return cases


def _run(python: str, code: str, pythonpath: str, *args: str, optimize: bool = False) -> dict:
    env = {**os.environ, "PYTHONPATH": pythonpath}
    # -O: the PoseTrack21 scorer asserts on head sizes in labeled frames without GT persons, which its code
    # otherwise scores (as "no GT" frames); it runs only with its asserts off
    command = [python, *(["-O"] if optimize else []), "-c", code, *args]
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
    return json.loads(done.stdout)


def record_hota(python: str, pt21_src: str, sample: Path, tmp: str) -> None:
    records = []
    for params in hota_cases():
        gt, pred = synth.write_case(Path(tmp) / f"hota_{params['seed']}", **_write_params(params))
        expected = _run(python, HOTA_RUNNER, pt21_src, str(gt), str(pred), optimize=True)
        records.append({"params": params, "expected": expected})
        sys.stderr.write(f"hota {params['seed']}: HOTA {expected['hota']['HOTA']['Total']:.2f}\n")
    gt = sample / "annotations" / "val"
    pred = synth.perturb_sample(gt, Path(tmp) / "hota_sample_pred", seed=0)
    on_sample = {"seed": 0, **_run(python, HOTA_RUNNER, pt21_src, str(gt), str(pred), optimize=True)}
    note = (
        "Numbers of PoseTrack21's keypoint HOTA (anDoer/PoseTrack21 3e61960, HOTAeypoints, python -O, numpy 1.22.0, "
        "scipy 1.7.3, Shapely 1.8.0) on synth.write_case(**params) and on the real sample with "
        "synth.perturb_sample(seed) predictions."
    )
    text = json.dumps({"note": note, "cases": records, "sample": on_sample}, indent=1)
    (FIXTURES / "pt21_hota_cases.json").write_text(text + "\n")


def _write_params(params: dict) -> dict:
    return {**params, "frames": tuple(params["frames"])} if "frames" in params else params


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", required=True, help="interpreter with poseval's dependencies")
    parser.add_argument("--poseval-src", required=True, help="checkout of leonid-pishchulin/poseval")
    parser.add_argument("--pt21-src", required=True, help="PoseTrack21's eval/posetrack21 folder")
    parser.add_argument("--sample", required=True, type=Path, help="shared/data/posetrack18-sample")
    parser.add_argument("--pt21-python", help="interpreter for PoseTrack21's HOTA (default: --python)")
    parser.add_argument("--only", choices=("all", "hota"), default="all", help="record every fixture or HOTA's")
    args = parser.parse_args()
    FIXTURES.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        record_hota(args.pt21_python or args.python, args.pt21_src, args.sample, tmp)
    if args.only == "hota":
        return
    with tempfile.TemporaryDirectory() as tmp:
        records = []
        for params in poseval_cases():
            root = Path(tmp) / f"poseval_{params['seed']}"
            gt, pred = synth.write_case(root, **_write_params(params))
            expected = _run(args.python, POSEVAL_RUNNER, args.poseval_src, str(gt), str(pred), "1")
            records.append({"params": params, "expected": expected})
            sys.stderr.write(f"poseval {params['seed']}: AP {expected['ap'][15]:.2f} MOTA {expected['mota'][15]:.2f}\n")
        records_21 = []
        for params in pt21_cases():
            root = Path(tmp) / f"pt21_{params['seed']}"
            gt, pred = synth.write_case(root, **_write_params(params))
            expected = _run(args.python, PT21_RUNNER, args.pt21_src, str(gt), str(pred))
            records_21.append({"params": params, "expected": expected})
            sys.stderr.write(f"pt21 {params['seed']}: AP {expected['map']['Total']:.2f}\n")
        gt = args.sample / "annotations" / "val"
        pred = synth.perturb_sample(gt, Path(tmp) / "sample_pred", seed=0)
        sample = {
            "seed": 0,
            "poseval": _run(args.python, POSEVAL_RUNNER, args.poseval_src, str(gt), str(pred), "0"),
            "pt21": _run(args.python, PT21_RUNNER, args.pt21_src, str(gt), str(pred)),
        }
    note = "poseval's numbers (leonid-pishchulin/poseval 4258a15, motmetrics 1.4.0) on synth.write_case(**params)."
    (FIXTURES / "poseval_cases.json").write_text(json.dumps({"note": note, "cases": records}, indent=1) + "\n")
    note = "Numbers of PoseTrack21's PosemAP (anDoer/PoseTrack21 3e61960) on synth.write_case(**params)."
    (FIXTURES / "pt21_cases.json").write_text(json.dumps({"note": note, "cases": records_21}, indent=1) + "\n")
    note = "poseval and PoseTrack21 on the real PoseTrack18 sample with synth.perturb_sample(seed) predictions."
    (FIXTURES / "sample.json").write_text(json.dumps({"note": note, **sample}, indent=1) + "\n")


if __name__ == "__main__":
    main()
