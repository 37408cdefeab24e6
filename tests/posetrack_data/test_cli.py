import json
import subprocess
import sys

import pytest

from posetrack_data.cli import main


def test_synth_writes_a_dataset_that_check_accepts(tmp_path, capsys):
    root = tmp_path / "synthetic"
    assert main(["synth", str(root), "--videos", "2", "--frames", "3", "--size", "96x80"]) == 0
    assert capsys.readouterr().out.strip() == str(root)
    assert sorted(p.name for p in (root / "annotations" / "val").iterdir()) == ["000002_mpii_test.json"]
    assert main(["check", str(root)]) == 0
    assert "0 problem(s)" in capsys.readouterr().err


def test_check_prints_one_line_per_problem_and_exits_1(synthetic_root, tmp_path, capsys):
    root = tmp_path / "data"
    (root / "annotations" / "val").mkdir(parents=True)
    content = json.loads((synthetic_root / "annotations" / "val" / "000004_mpii_test.json").read_text())
    (root / "annotations" / "val" / "000004_mpii_test.json").write_text(json.dumps(content))
    assert main(["check", str(root), "--no-decode"]) == 1
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 9  # no frame of the 9 listed is on disk
    assert lines[0].endswith(
        "000004_mpii_test.json: images[0].file_name: frame not found: " + str(root / content["images"][0]["file_name"])
    )


@pytest.mark.slow  # a fresh interpreter importing datasets, PIL and cv2
def test_usage_errors_are_one_line_without_traceback(tmp_path, capsys):
    result = subprocess.run(
        [sys.executable, "-m", "posetrack_data.cli", "check", str(tmp_path / "absent")], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"posetrack-data check: root must be a dataset folder, got {str(tmp_path / 'absent')!r} (not a folder)"
    ]
    # The same handling in-process (a second subprocess would only repeat the import cost).
    assert main(["synth", str(tmp_path / "x"), "--videos", "1"]) == 2
    assert (
        capsys.readouterr().err.strip() == "posetrack-data synth: num_videos must be >= 2 (one train, one val), got 1"
    )
