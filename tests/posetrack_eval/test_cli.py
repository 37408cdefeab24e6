import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from posetrack_eval.cli import main

FIXTURES = Path(__file__).parent / "fixtures"
CASE = json.loads((FIXTURES / "poseval_cases.json").read_text())["cases"][0]


@pytest.fixture(scope="module")
def case_dirs(synth, tmp_path_factory):
    params = (
        {**CASE["params"], "frames": tuple(CASE["params"]["frames"])} if "frames" in CASE["params"] else CASE["params"]
    )
    return synth.write_case(tmp_path_factory.mktemp("cli"), **params)


def test_prints_posevals_tables(case_dirs, capsys):
    gt, pred = case_dirs
    # poseval ran on numpy 2, whose argsort orders this case's tied scores its own way (see test_scorer)
    assert main([str(pred), "--gt", str(gt), "--tracking", "--no-progress", "--tie-order", "installed"]) == 0
    # character for character what poseval printed for the same input
    captured = capsys.readouterr()
    assert captured.out.splitlines() == CASE["expected"]["table"]
    # the case is tie-heavy: one note says the references' AP depends on tie order and file order here
    assert captured.err.count("\n") == 1
    assert captured.err.startswith("posetrack-eval: note: 15 joint(s) rank tied scores")
    assert "across sequences" in captured.err


def test_json_schema(case_dirs, tmp_path, capsys):
    gt, pred = case_dirs
    out = tmp_path / "results.json"
    args = [str(pred), "--gt", str(gt), "--tracking", "--per-sequence", "--json", str(out), "--no-progress"]
    assert main([*args, "--tie-order", "installed"]) == 0
    data = json.loads(out.read_text())
    columns = ["Head", "Shou", "Elb", "Wri", "Hip", "Knee", "Ankl", "Total"]
    assert list(data["ap"]) == columns
    assert list(data["mota"]) == columns
    assert len(data["ap_per_joint"]) == 15
    assert data["ap"]["Total"] == pytest.approx(CASE["expected"]["ap"][15], abs=1e-9)
    for key in ("motp", "precision", "recall"):
        assert isinstance(data[key], float)
    assert sorted(data["per_sequence"]) == sorted(CASE["expected"]["per_sequence"])
    assert "Per-sequence AP:" in capsys.readouterr().out
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]  # written atomically, no temp file left


def test_no_tracking_keys_without_tracking(case_dirs, tmp_path):
    gt, pred = case_dirs
    out = tmp_path / "r.json"
    assert main([str(pred), "--gt", str(gt), "--json", str(out), "--no-progress"]) == 0
    assert not {"mota", "motp", "precision", "recall", "per_sequence"} & set(json.loads(out.read_text()))


def test_plot_option_writes_png(case_dirs, tmp_path):
    gt, pred = case_dirs
    out = tmp_path / "pr.png"
    assert main([str(pred), "--gt", str(gt), "--plot", str(out), "--no-progress"]) == 0
    assert out.stat().st_size > 1000


def _error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "Traceback" not in err
    return err.strip()


def test_bad_input_is_one_line_and_exit_2(case_dirs, tmp_path, capsys):
    gt, _ = case_dirs
    bad = tmp_path / "preds.json"
    bad.write_text(json.dumps([{"image_id": 5, "keypoints": [0] * 51}]))
    assert main([str(bad), "--gt", str(gt), "--no-progress"]) == 2
    assert _error_line(capsys) == f"posetrack-eval: error: {bad}: [0].image_id: 5 is not an image of the ground truth"
    assert main([str(tmp_path / "nope.json"), "--gt", str(gt)]) == 2
    assert "does not exist" in _error_line(capsys)
    assert main([str(bad), "--gt", str(gt), "--json", str(tmp_path / "no" / "r.json")]) == 2
    assert "folder does not exist" in _error_line(capsys)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    payload=st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
        lambda children: st.lists(children, max_size=3) | st.dictionaries(st.sampled_from(
            ["image_id", "keypoints", "scores", "track_id", "images", "annotations", "annolist", "id"]), children,
            max_size=4),
        max_leaves=12,
    )
)  # fmt: skip
def test_fuzzed_prediction_file_exits_0_or_2(case_dirs, tmp_path_factory, payload, capsys):
    gt, _ = case_dirs
    path = tmp_path_factory.mktemp("fuzz") / "preds.json"
    path.write_text(json.dumps(payload))
    code = main([str(path), "--gt", str(gt), "--no-progress"])
    captured = capsys.readouterr()
    assert code in (0, 2)
    if code == 2:
        assert captured.err.startswith(f"posetrack-eval: error: {path}: ")
        assert captured.err.count("\n") == 1


def test_console_script_exit_code(case_dirs, tmp_path):
    gt, _ = case_dirs
    bad = tmp_path / "p.json"
    bad.write_text("{")
    done = subprocess.run(
        [sys.executable, "-m", "posetrack_eval.cli", str(bad), "--gt", str(gt)], capture_output=True, text=True
    )
    assert done.returncode == 2
    assert done.stderr.startswith(f"posetrack-eval: error: {bad}: file: not valid JSON")
    assert done.stdout == ""


def test_subsets_print_rows_and_write_their_figures(case_dirs, tmp_path, capsys):
    gt, pred = case_dirs
    ids = [a["id"] for path in sorted(gt.glob("*.json")) for a in json.loads(path.read_text())["annotations"]]
    subsets = tmp_path / "subsets.json"
    subsets.write_text(json.dumps({"all": ids, "first": ids[:3]}))
    out = tmp_path / "r.json"
    assert main([str(pred), "--gt", str(gt), "--subset", str(subsets), "--json", str(out), "--no-progress"]) == 0
    lines = capsys.readouterr().out.splitlines()
    start = lines.index("AP over subsets of GT persons:")
    assert [line.split()[0] for line in lines[start + 1 :]] == ["subset", "all", "first"]
    assert lines[start + 2].split()[1:] == lines[2].split()  # the whole set: the plain row
    data = json.loads(out.read_text())
    assert list(data["subsets"]) == ["all", "first"]
    assert data["subsets"]["all"]["ap"] == data["ap"]
    assert set(data["subsets"]["first"]) == {"protocol", "num_frames", "ap", "ap_per_joint", "ap_precision",
                                              "ap_recall"}  # fmt: skip


def test_unknown_subset_id_is_one_line(case_dirs, tmp_path, capsys):
    gt, pred = case_dirs
    subsets = tmp_path / "subsets.json"
    subsets.write_text(json.dumps([12345]))
    assert main([str(pred), "--gt", str(gt), "--subset", str(subsets), "--no-progress"]) == 2
    assert (
        _error_line(capsys) == f"posetrack-eval: error: {subsets}: [0]: annotation id 12345 is not in the ground truth"
    )


def test_pt21_tracking_prints_and_writes_keypoint_hota(synth, tmp_path, capsys):
    gt, pred = synth.write_case(tmp_path / "case", seed=21, protocol="pt21", tracking=True)
    out = tmp_path / "r.json"
    args = [str(pred), "--gt", str(gt), "--protocol", "pt21", "--tracking", "--json", str(out), "--no-progress"]
    assert main(args) == 0
    data = json.loads(out.read_text())
    fields = ["HOTA", "DetA", "AssA", "FragA", "DetRe", "DetPr", "AssRe", "AssPr", "LocA", "RHOTA", "FA-HOTA",
              "FA-RHOTA", "HOTA(0)", "LocA(0)", "HOTALocA(0)"]  # fmt: skip
    joints = ["Nose", "Neck", "Head", "LS", "RS", "LE", "RE", "LW", "RW", "LH", "RH", "LK", "RK", "LA", "RA", "Total"]
    assert list(data["hota"]) == fields
    assert all(list(values) == joints for values in data["hota"].values())
    assert list(data["ap"]) == ["Head", "Shou", "Elb", "Wri", "Hip", "Knee", "Ankl", "Total"]
    assert "mota" not in data
    lines = capsys.readouterr().out.splitlines()
    start = lines.index("Keypoint HOTA (PoseTrack21 HOTAeypoints):")
    assert lines[start + 1].split() == ["Metric", *joints]
    row = lines[start + 2].split()
    assert row[0] == "HOTA"
    assert row[1:] == [f"{data['hota']['HOTA'][joint]:1.5g}" for joint in joints]  # the scorer's "%1.5g" cells
