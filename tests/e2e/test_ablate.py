"""ablate.py at a tiny budget: shared stage 1, equal rows trained once, the table, and resuming by skipping."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
TINY = [
    f"model.overrides.{key}={value}"
    for key, value in {
        "image_size": "[64, 48]", "heatmap_size": "[16, 12]", "backbone_dim": 32, "backbone_depth": 1,
        "backbone_num_heads": 2, "hidden_dim": 32, "num_heads": 2, "keypoint_head_hidden_dim": 32,
    }.items()
]  # fmt: skip
BUDGET = ["data.synthetic_videos=4", "data.synthetic_val_videos=1", "data.synthetic_test_videos=1"]
BUDGET += ["data.synthetic_eval_frames=5", "data.synthetic_pretrain_frames=8", "data.synthetic_frames=6"]
BUDGET += ["data.synthetic_image_size=[160, 120]"]
BUDGET += ["data.batch_size=8", "schedule.max_steps=2", "pretrain.stage1_max_steps=2", "eval.baselines=false"]


def _ablate(tmp_path, rows=("table4_full", "table5_d")):
    command = [sys.executable, str(ROOT / "ablate.py"), "--rows", *rows, "--seeds", "0"]
    command += ["--out", str(tmp_path / "ablate"), "--set", *TINY, *BUDGET, f"data.cache_dir={tmp_path / 'data'}"]
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    return subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, env=env, check=False, timeout=300)


def test_rows_share_stage1_run_once_when_equal_and_resume_by_skipping(tmp_path):
    first = _ablate(tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "1 row-seed(s) to train" in first.stdout  # Table 5 (d) is Table 4 (c): one run for both
    assert len(list((tmp_path / "data").glob("stage1-*"))) == 1
    final = json.loads((tmp_path / "ablate" / "table4_full" / "seed0" / "results.json").read_text())["final"]
    final = {"H": final["ap"]["Total"], **final["head_ap"]}
    table = (tmp_path / "ablate" / "results.md").read_text()
    row = f"| Table 4 | (c) | `table4_full` | 87.6 | {final['H']:.1f} | {final['H_m']:.1f} | {final['H_k']:.1f} | 1 |"
    assert row in table
    assert "| Table 5 | (d) | `table5_d_both_masks` | 87.6 |" in table
    assert table in first.stdout

    again = _ablate(tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "0 row-seed(s) to train" in again.stdout
    assert "stage 1: reusing" in again.stdout
    assert (tmp_path / "ablate" / "results.md").read_text() == table

    # Table 5 (d) on its own, in a later invocation, reuses Table 4 (c)'s run.
    alone = _ablate(tmp_path, rows=("table5_d",))
    assert alone.returncode == 0, alone.stderr[-3000:]
    assert "0 row-seed(s) to train" in alone.stdout
    assert f"| Table 5 | (d) | `table5_d_both_masks` | 87.6 | {final['H']:.1f} |" in alone.stdout
