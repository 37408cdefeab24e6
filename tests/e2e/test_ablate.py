"""ablate.py at a tiny budget: one stage 1, equal rows trained once, paired statistics, verified resume, refusals."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from training.evaluation import read_results

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
TINY = [
    f"model.overrides.{key}={value}"
    for key, value in {
        "image_size": "[64, 48]", "heatmap_size": "[16, 12]", "backbone_dim": 32, "backbone_depth": 1,
        "backbone_num_heads": 2, "hidden_dim": 32, "num_heads": 2, "keypoint_head_hidden_dim": 32,
    }.items()
]  # fmt: skip
BUDGET = ["data.synthetic_videos=4", "data.synthetic_val_videos=1", "data.synthetic_test_videos=3"]
BUDGET += ["data.synthetic_eval_frames=5", "data.synthetic_pretrain_frames=8", "data.synthetic_frames=6"]
BUDGET += ["data.synthetic_image_size=[160, 120]", "data.batch_size=8", "schedule.max_steps=2"]
BUDGET += ["pretrain.stage1_max_steps=2", "eval.baselines=false"]
STUDY = {
    "seeds": [0, 1],
    "resamples": 200,
    "tables": [
        {
            "name": "Table 4",
            "rows": ["table4_baseline", "table4_full"],
            "differences": [["table4_baseline", "table4_full"]],
        },
        {"name": "Table 5", "rows": ["table5_d_both_masks"], "differences": []},
    ],
}  # fmt: skip


def _ablate(tmp_path, *extra, out="ablate", settings=()):
    study = tmp_path / "study.yaml"
    study.write_text(yaml.safe_dump(STUDY))
    command = [sys.executable, str(ROOT / "ablate.py"), "--study", str(study), "--out", str(tmp_path / out), *extra]
    command += ["--set", *TINY, *BUDGET, f"data.cache_dir={tmp_path / 'data'}", *settings]
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    return subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, env=env, check=False, timeout=1200)


def test_rows_share_stage1_train_once_report_paired_statistics_and_resume_verified(tmp_path):
    first = _ablate(tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "4 distinct row-seed(s), 4 to train" in first.stdout  # Table 5 (d) is Table 4 (c): one run for both
    assert len(list((tmp_path / "data").glob("stage1-*"))) == 1
    out = tmp_path / "ablate"
    report = json.loads((out / "study.json").read_text())
    assert (report["split"], report["videos"], report["resamples"]) == ("test", 3, 200)
    for row in ("table4_baseline", "table4_full"):
        tested = [read_results(out / row / f"seed{seed}").test.ap["Total"] for seed in (0, 1)]
        assert report["rows"][row]["per_seed"] == pytest.approx(tested, abs=1e-6)  # rescored from the files
        mean = report["rows"][row]["mean"]["all"]
        assert mean["value"] == pytest.approx(sum(tested) / 2, abs=1e-6)
        assert mean["low"] <= mean["high"]
    assert report["rows"]["table5_d_both_masks"]["per_seed"] == report["rows"]["table4_full"]["per_seed"]
    assert set(report["rows"]["table4_full"]["mean"]) == {"all", *json.loads(_subsets(tmp_path).read_text())}
    (pair,) = report["differences"]
    rows = report["rows"]
    expected = rows["table4_full"]["mean"]["all"]["value"] - rows["table4_baseline"]["mean"]["all"]["value"]
    assert pair["difference"]["all"]["value"] == pytest.approx(expected, abs=1e-9)
    table = (out / "results.md").read_text()
    assert "| (c) HKME + BMD - Baseline | +7.4 |" in table
    assert "| Baseline | `table4_baseline` | 80.2 |" in table
    assert table in first.stdout

    again = _ablate(tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "4 distinct row-seed(s), 0 to train" in again.stdout
    assert (out / "results.md").read_text() == table
    alone = _ablate(tmp_path, "--rows", "table5")  # Table 5 (d) alone, later, still reuses Table 4 (c)'s runs
    assert alone.returncode == 0, alone.stderr[-3000:]
    assert "2 distinct row-seed(s), 0 to train" in alone.stdout

    # A prediction file that no longer scores as results.json says: that row-seed is trained again.
    predicted = sorted((out / "table4_baseline" / "seed1" / "predictions_test" / "latest").glob("0*.json"))[0]
    document = json.loads(predicted.read_text())
    truth = json.loads((_subsets(tmp_path).parents[1] / "annotations" / "test" / predicted.name).read_text())
    document["annotations"] = [ann | {"scores": [1.0] * 17} for ann in truth["annotations"]]  # perfect poses
    predicted.write_text(json.dumps(document))
    tampered = _ablate(tmp_path)
    assert tampered.returncode == 0, tampered.stderr[-3000:]
    assert "table4_baseline/seed1: its predictions score" in tampered.stdout
    assert "4 distinct row-seed(s), 1 to train" in tampered.stdout

    # Refusals, each one line and status 2, before any training.
    repeated = _ablate(tmp_path, "--seeds", "0", "0")
    assert (repeated.returncode, repeated.stderr.count("\n")) == (2, 1)
    assert "--seeds 0 0: a seed is repeated" in repeated.stderr
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "results.md").write_text("someone's notes\n")
    foreign = _ablate(tmp_path, out="other")
    assert (foreign.returncode, foreign.stderr.count("\n")) == (2, 1)
    assert "results.md: exists and was not written by this command (--overwrite replaces it)" in foreign.stderr
    assert (tmp_path / "other" / "results.md").read_text() == "someone's notes\n"
    changed = _ablate(tmp_path, settings=["model.overrides.drop_path=0.05"])  # stage 2 only
    assert (changed.returncode, changed.stderr.count("\n")) == (2, 1)
    assert "holds a run of other settings" in changed.stderr


def _subsets(tmp_path):
    (root,) = (tmp_path / "data").glob("synthetic-*")
    return root / "subsets" / "test.json"
