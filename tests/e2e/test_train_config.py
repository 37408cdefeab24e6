"""train.py's run config from the command line: every mistake is one stderr line naming its source and key."""

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # each case starts a fresh interpreter importing torch, accelerate and datasets

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("yaml_text", "overrides", "message"),
    [
        (
            "optimizer:\n  lrr: 0.1\n",
            [],
            "{path}: optimizer.lrr: unknown key (valid: lr, weight_decay, betas, grad_clip)",
        ),
        (
            "model:\n  overrides:\n    hidden_dim: 0\n",
            [],
            "{path}: model.overrides.hidden_dim: must be a positive integer (at most 65536), got 0",
        ),
        ("run:\n  seed: 1\n", ["model.overrides.motion_op=dcn"], "--set: model.overrides.motion_op: must be one of"),
        ("run:\n  seed: 1\n", ["schedule.epochs=0"], "--set: schedule.epochs: must be at least 1, got 0"),
    ],
)
def test_cli_reports_a_bad_config_in_one_line(tmp_path, yaml_text, overrides, message):
    path = tmp_path / "run.yaml"
    path.write_text(yaml_text)
    command = [sys.executable, str(ROOT / "train.py"), "--config", str(path)]
    result = subprocess.run(
        [*command, *(["--set", *overrides] if overrides else [])],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"train.py: error: {message.format(path=path)}")
    assert not (tmp_path / "runs").exists()  # refused before any work
