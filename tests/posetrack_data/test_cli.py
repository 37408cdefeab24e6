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


def test_check_takes_every_version_and_refuses_others(synthetic_root, capsys):
    assert main(["check", str(synthetic_root), "--version", "2018", "--no-decode"]) == 0
    with pytest.raises(SystemExit) as exit_:
        main(["check", str(synthetic_root), "--version", "2019"])
    assert exit_.value.code == 2
    assert "invalid choice: '2019' (choose from '2017', '2018', '2021')" in capsys.readouterr().err


@pytest.mark.slow  # a fresh interpreter importing datasets, PIL and cv2
def test_usage_errors_are_one_line_without_traceback(tmp_path, capsys):
    result = subprocess.run(
        [sys.executable, "-m", "posetrack_data.cli", "check", str(tmp_path / "absent")], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"posetrack-data check: error: root must be a dataset folder, got {str(tmp_path / 'absent')!r} (not a folder)"
    ]
    # The same handling in-process (a second subprocess would only repeat the import cost).
    assert main(["synth", str(tmp_path / "x"), "--videos", "1"]) == 2
    assert (
        capsys.readouterr().err.strip()
        == "posetrack-data synth: error: num_videos must be >= 2 (one train, one val), got 1"
    )


def test_synth_options_reach_the_generator(tmp_path, capsys):
    root = tmp_path / "lanes"
    args = ["synth", str(root), "--videos", "2", "--frames", "3", "--size", "96x80", "--no-crossing"]
    args += ["--no-background-motion", "--occlusion-prob", "0.5", "--blur-prob", "0", "--defocus-prob", "0.25"]
    assert main(args) == 0
    settings = json.loads((root / "synthetic.json").read_text())["settings"]
    assert {
        k: settings[k] for k in ("crossing", "background_motion", "occlusion_prob", "blur_prob", "defocus_prob")
    } == {
        "crossing": False,
        "background_motion": False,
        "occlusion_prob": 0.5,
        "blur_prob": 0.0,
        "defocus_prob": 0.25,
    }
    capsys.readouterr()
    assert main(["synth", str(tmp_path / "bad"), "--blur-prob", "0.7", "--defocus-prob", "0.6"]) == 2
    expected = "posetrack-data synth: error: blur_prob + defocus_prob must be <= 1, got 0.7 + 0.6"
    assert capsys.readouterr().err.strip() == expected
    assert not (tmp_path / "bad").exists()


def test_synth_split_options_reach_the_generator_within_caps(tmp_path, capsys):
    root = tmp_path / "splits"
    args = ["synth", str(root), "--videos", "3", "--frames", "5", "--size", "96x80", "--val-videos", "2"]
    args += ["--test-videos", "1", "--eval-frames", "3", "--pretrain-frames", "2", "--pretrain-people", "2", "3"]
    assert main(args) == 0
    settings = json.loads((root / "synthetic.json").read_text())["settings"]
    assert {k: settings[k] for k in ("num_val_videos", "num_test_videos", "eval_frames", "num_pretrain_frames")} == {
        "num_val_videos": 2,
        "num_test_videos": 1,
        "eval_frames": 3,
        "num_pretrain_frames": 2,
    }
    assert settings["pretrain_people"] == [2, 3]
    assert sorted(p.name for p in (root / "subsets").iterdir()) == [
        "pretrain.json",
        "test.json",
        "train.json",
        "val.json",
    ]
    capsys.readouterr()
    for option, value, cap in (("--pretrain-frames", "200001", 200_000), ("--test-videos", "10001", 10_000)):
        assert main(["synth", str(tmp_path / "big"), option, value]) == 2
        assert capsys.readouterr().err.strip() == f"posetrack-data synth: error: {option} must be <= {cap}, got {value}"
    assert main(["synth", str(tmp_path / "big"), "--size", "5000x300"]) == 2
    assert "image_size must be 64 to 4096 pixels a side (W, H), got (5000, 300)" in capsys.readouterr().err
    assert not (tmp_path / "big").exists()
