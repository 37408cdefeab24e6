"""Hostile and careless inputs to `posetrack-data` and posetrack_data's main Python entry points (`tests/red_team.py`).

Grouped by the class of failure each guards against: one boundary and typed readers (a traceback or a silent
wrong result before), inputs opened by type, budgets before work, outputs claimed before writing.
"""

import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from posetrack_data import PoseTrackFormatError, TopDownTransform, load_posetrack, read_detections
from posetrack_data.check import check_root
from posetrack_data.outputs import OutputError, OutputPolicy
from posetrack_data.predictions import PersonPose, sequence_document
from posetrack_data.synthetic import generate_dataset
from tests.red_team import (
    Call,
    Case,
    Sandbox,
    bomb_png,
    check_call,
    check_case,
    dangling,
    dataset_with,
    deep_json,
    fifo,
    make_sandbox,
    params,
    raw_file,
    set_field,
    text_file,
)

DATA = "posetrack_data.cli:main"


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory) -> Sandbox:
    return make_sandbox(tmp_path_factory.mktemp("red-team"))


def _synth(root: Path, *extra: str) -> list[str]:
    return ["synth", str(root), "--videos", "2", "--frames", "3", "--size", "96x80", "--val-fraction", "0.5", *extra]


def _check(root: Path, *extra: str) -> list[str]:
    return ["check", str(root), "--no-decode", *extra]


def _deep_root(tmp: Path) -> Path:
    (tmp / "d" / "annotations" / "val").mkdir(parents=True)
    deep_json(tmp / "d" / "annotations" / "val" / "000001_mpii_test.json")
    return tmp / "d"


def _dup_image_id(content: dict) -> None:
    content["images"][1]["id"] = content["images"][0]["id"]


def _dup_annotation(content: dict) -> None:
    content["annotations"].append(dict(content["annotations"][0]))


def _with_detections(s: Sandbox, tmp: Path, detections: list) -> Path:
    root = dataset_with(s, tmp, lambda content: None)
    text_file(root / "person_detections" / "val.json", json.dumps(detections))
    return root


def _pt17_root(tmp: Path, annorect: dict) -> Path:
    """A PoseTrack17 root: one annolist file whose one frame has `annorect`."""
    frame = {"image": [{"name": "images/val/000002_mpii_test/00000001.jpg"}], "annorect": [annorect]}
    text_file(tmp / "pt17" / "annotations" / "val" / "000002_mpii_test.json", json.dumps({"annolist": [frame]}))
    return tmp / "pt17"


def _frame_replaced(s: Sandbox, tmp: Path, replace) -> Path:
    root = dataset_with(s, tmp, lambda content: None)
    frame = next((root / "images" / "val" / "000002_mpii_test").glob("*.jpg"))
    frame.unlink()
    replace(frame)
    return root


def _annotation_bytes(s: Sandbox, tmp: Path, data: bytes) -> Path:
    root = dataset_with(s, tmp, lambda content: None)
    raw_file(next((root / "annotations" / "val").glob("*.json")), data)
    return root


def _huge_integer_id(s: Sandbox, tmp: Path) -> Path:
    root = dataset_with(s, tmp, lambda content: None)
    path = next((root / "annotations" / "val").glob("*.json"))
    content = json.loads(path.read_text())
    text = json.dumps(content).replace(f'"id": {content["images"][0]["id"]},', f'"id": {"9" * 4301},', 1)
    path.write_text(text)
    return root


def _output_in_place(tmp: Path, make) -> Path:
    """An empty synth root in which `make` has put something at synthetic.json."""
    (tmp / "out").mkdir()
    make(tmp / "out" / "synthetic.json")
    return tmp / "out"


CASES = [
    # ---- class 1: one boundary, typed readers, options checked when parsed
    Case("data-synth-into-dataset", DATA, lambda s, t: _synth(s.root, "--seed", "1"), "exists and was not written"),
    Case("data-synth-onto-file", DATA, lambda s, t: ["synth", str(s.detections)], "not a folder"),
    Case("data-synth-bad-size", DATA, lambda s, t: ["synth", str(t / "x"), "--size", "big"], "--size must be WxH"),
    Case(
        "data-synth-one-video", DATA, lambda s, t: ["synth", str(t / "x"), "--videos", "1"], "num_videos must be >= 2"
    ),
    Case(
        "data-synth-nan-fraction",
        DATA,
        lambda s, t: ["synth", str(t / "x"), "--val-fraction", "nan"],
        "val_fraction must be in (0, 1)",
    ),
    Case("data-synth-negative-seed", DATA, lambda s, t: _synth(t / "x", "--seed", "-1"), "seed must be >= 0, got -1"),
    Case("data-synth-unknown-option", DATA, lambda s, t: _synth(t / "x", "--frobnicate"), "unrecognized arguments"),
    Case("data-check-unknown-version", DATA, lambda s, t: _check(s.root, "--version", "2019"), "invalid choice"),
    Case("data-check-missing-root", DATA, lambda s, t: ["check", str(t / "absent")], "root must be a dataset folder"),
    Case("data-check-split-typo", DATA, lambda s, t: _check(s.root, "--split", "vall"), "split 'vall': no annotation"),
    Case("data-check-deep-json", DATA, lambda s, t: _check(_deep_root(t)), "nested too deeply", status=1),
    Case(
        "data-check-huge-image-id",
        DATA,
        lambda s, t: _check(dataset_with(s, t, set_field("images.0.id", 2**70))),
        "out of range",
        status=1,
    ),
    Case(
        "data-check-4301-digit-id",
        DATA,
        lambda s, t: _check(_huge_integer_id(s, t)),
        "malformed JSON (Exceeds the limit",
        status=1,
    ),
    Case(
        "data-check-duplicate-image-id",
        DATA,
        lambda s, t: _check(dataset_with(s, t, _dup_image_id)),
        "duplicate image id",
        status=1,
    ),
    Case(
        "data-check-negative-id",
        DATA,
        lambda s, t: _check(dataset_with(s, t, set_field("images.1.id", -5))),
        "negative image id",
        status=1,
    ),
    Case(
        "data-check-duplicate-annotation",
        DATA,
        lambda s, t: _check(dataset_with(s, t, _dup_annotation)),
        "duplicate annotation",
        status=1,
    ),
    Case(
        "data-check-inf-keypoint",
        DATA,
        lambda s, t: _check(dataset_with(s, t, set_field("annotations.0.bbox", [0, 0, 1e300, 1]))),
        "expected a finite number",
        status=1,
    ),
    Case(
        "data-check-detection-image-id-list",
        DATA,
        lambda s, t: _check(_with_detections(s, t, [{"image_id": [1], "bbox": [0, 0, 5, 5], "score": 0.9}])),
        "val.json: [0].image_id: expected an integer, got [1]",
        status=1,
    ),
    Case(
        "data-check-pt17-annopoints-number",
        DATA,
        lambda s, t: _check(_pt17_root(t, {"annopoints": 5})),
        "annorect[0].annopoints[0]: expected an object, got 5",
        status=1,
    ),
    Case(
        "data-check-superscript-frame-name",
        DATA,
        lambda s, t: _check(dataset_with(s, t, set_field("images.0.file_name", "images/val/000002_mpii_test/².jpg"))),
        "does not start with a frame number",
        status=1,
    ),
    Case(
        "data-check-annotations-number",
        DATA,
        lambda s, t: _check(dataset_with(s, t, set_field("annotations", 5))),
        "annotations: expected a list, got 5",
        status=1,
    ),
    Case(
        "data-check-joint-name-list",
        DATA,
        lambda s, t: _check(dataset_with(s, t, set_field("categories.0.keypoints.0", ["nose"]))),
        "categories[0].keypoints[0]: expected a string",
        status=1,
    ),
    Case(
        "data-check-is-labeled-string",
        DATA,
        lambda s, t: _check(dataset_with(s, t, set_field("images.0.is_labeled", "yes"))),
        "images[0].is_labeled: expected true or false, got 'yes'",
        status=1,
    ),
    Case(
        "data-check-negative-width",
        DATA,
        lambda s, t: _check(dataset_with(s, t, set_field("images.0.width", -96))),
        "images[0].width: expected a positive integer, got -96",
        status=1,
    ),
    Case(
        "data-check-not-utf8",
        DATA,
        lambda s, t: _check(_annotation_bytes(s, t, b'{"images": "\xff\xfe"}')),
        "malformed JSON",
        status=1,
    ),
    Case(
        "data-check-bomb-frame",
        DATA,
        lambda s, t: ["check", str(_frame_replaced(s, t, bomb_png))],
        "claims more pixels than a frame may have",
        status=1,
    ),
    # ---- class 2: inputs opened by type; anything already at an output path is not ours
    Case("data-check-root-is-fifo", DATA, lambda s, t: _check(fifo(t / "root")), "root must be a dataset folder"),
    Case(
        "data-check-fifo-annotation",
        DATA,
        lambda s, t: _check(_annotation_fifo(s, t)),
        "is a FIFO (named pipe), expected a regular file",
        status=1,
    ),
    Case(
        "data-check-fifo-detections",
        DATA,
        lambda s, t: _check(_detections_fifo(s, t)),
        "val.json: file: is a FIFO (named pipe)",
        status=1,
    ),
    Case(
        "data-check-fifo-frame",
        DATA,
        lambda s, t: ["check", str(_frame_replaced(s, t, fifo))],
        "unreadable frame (is a FIFO (named pipe), expected a regular file)",
        status=1,
    ),
    Case(
        "data-synth-root-dangling-symlink",
        DATA,
        lambda s, t: _synth(dangling(t / "out")),
        "exists and is a symlink, not a folder",
    ),
    Case(
        "data-synth-output-is-fifo",
        DATA,
        lambda s, t: _synth(_output_in_place(t, fifo)),
        "exists (a FIFO (named pipe)) and was not written by this command",
    ),
    Case(
        "data-synth-output-dangling-symlink",
        DATA,
        lambda s, t: _synth(_output_in_place(t, dangling)),
        "exists (a symlink) and was not written by this command",
    ),
    Case(
        "data-synth-output-is-folder",
        DATA,
        lambda s, t: _synth(_output_in_place(t, Path.mkdir)),
        "is a folder; expected a file name",
    ),
    # ---- class 3: budgets before work
    Case(
        "data-synth-frames-budget",
        DATA,
        lambda s, t: ["synth", str(t / "x"), "--videos", "9999", "--frames", "9999"],
        "the dataset would hold up to 99980001 frames",
        isolated=True,
    ),
    Case(
        "data-synth-pixel-budget",
        DATA,
        lambda s, t: ["synth", str(t / "x"), "--videos", "4000", "--frames", "100", "--size", "4096x4096"],
        "one run writes at most",
    ),
    # ---- class 4: every writer claims its output
    Case(
        "data-synth-while-another-writes",
        DATA,
        lambda s, t: _synth(t / "out"),
        "another run (pid",
        held=lambda s, t: t / "out",
    ),
]


def _annotation_fifo(s: Sandbox, tmp: Path) -> Path:
    root = dataset_with(s, tmp, lambda content: None)
    fifo(root / "annotations" / "val" / "000009_mpii_test.json")
    return root


def _detections_fifo(s: Sandbox, tmp: Path) -> Path:
    root = dataset_with(s, tmp, lambda content: None)
    fifo(root / "person_detections" / "val.json")
    return root


@pytest.mark.parametrize("case", params(CASES))
def test_bad_input_is_one_line_and_changes_nothing(case, sandbox, tmp_path, capsys):
    check_case(case, sandbox, tmp_path, capsys)


def _pose(value: float) -> PersonPose:
    keypoints = np.full((17, 2), value, np.float32)
    return PersonPose(bbox=(0, 0, 10, 10), box_score=0.9, keypoints=keypoints, scores=np.ones(17, np.float32))


def _cache(tmp: Path) -> Path:
    """A `datasets` cache beside the case folder: the cache is the loader's to write."""
    return tmp.with_name(f"{tmp.name}-cache")


def _load_pt17(s: Sandbox, tmp: Path):
    return functools.partial(load_posetrack, _pt17_root(tmp, {"annopoints": 5}), split="val", cache_dir=_cache(tmp))


def _load_dup_ids(s: Sandbox, tmp: Path):
    root = tmp / "data"
    shutil.copytree(s.root, root)
    (video,) = (root / "annotations" / "val").glob("*.json")
    shutil.copy(video, video.with_name("000009_mpii_test.json"))  # a second video with the same image ids
    return functools.partial(load_posetrack, root, split="val", cache_dir=_cache(tmp))


def _transform_bomb(s: Sandbox, tmp: Path):
    root = _frame_replaced(s, tmp, bomb_png)
    frame = next((root / "images" / "val" / "000002_mpii_test").glob("*.jpg")).relative_to(root)
    row = {"frame_paths": [[str(frame)] * 3], "keypoints": [np.zeros((17, 3))], "bbox": [[10.0, 10.0, 30.0, 40.0]]}
    return functools.partial(TopDownTransform(train=False, root=root), row)


def _policy_target(path_maker):
    return lambda s, t: functools.partial(OutputPolicy.for_inputs(()).target, path_maker(t))


CALLS = [
    Call(
        "load-pt17-annopoints-number",
        _load_pt17,
        PoseTrackFormatError,
        "annorect[0].annopoints[0]: expected an object, got 5",
    ),
    Call("load-duplicate-image-ids-across-files", _load_dup_ids, PoseTrackFormatError, "duplicate image id"),
    Call(
        "load-fifo-detections",
        lambda s, t: functools.partial(load_posetrack, s.root, split="val", detections=fifo(t / "d.json")),
        PoseTrackFormatError,
        "d.json: file: not a regular file",
    ),
    Call("transform-bomb-frame", _transform_bomb, PoseTrackFormatError, "claims more pixels than a frame may have"),
    Call(
        "read-detections-image-id-list",
        lambda s, t: functools.partial(
            read_detections,
            text_file(t / "d.json", json.dumps([{"image_id": [1], "bbox": [0, 0, 1, 1], "score": 1}])),
        ),
        PoseTrackFormatError,
        "[0].image_id: expected an integer, got [1]",
    ),
    Call(
        "check-split-typo",
        lambda s, t: functools.partial(check_root, s.root, splits=["vall"], progress=False),
        ValueError,
        "split 'vall': no annotation folder",
    ),
    Call(
        "synth-frames-budget",
        lambda s, t: functools.partial(generate_dataset, t / "x", num_videos=999_999, num_frames=10_000),
        ValueError,
        "the dataset would hold up to",
    ),
    Call(
        "synth-while-another-writes",
        lambda s, t: functools.partial(generate_dataset, t / "out", num_videos=2, num_frames=3),
        OutputError,
        "another run (pid",
        held=lambda s, t: t / "out",
    ),
    Call("policy-output-is-device", _policy_target(lambda t: "/dev/full"), OutputError, "(a character device)"),
    Call(
        "policy-output-dangling-symlink",
        _policy_target(lambda t: dangling(t / "out.json")),
        OutputError,
        "exists (a symlink) and was not written",
    ),
    Call(
        "prediction-writer-nan",
        lambda s, t: functools.partial(sequence_document, ["v/0.jpg"], [1], [[_pose(float("nan"))]]),
        ValueError,
        "v/0.jpg: person 0: the pose holds NaN or infinite values; not written",
    ),
]


@pytest.mark.parametrize("case", params(CALLS))
def test_python_entry_points_refuse_in_one_error_and_change_nothing(case, sandbox, tmp_path):
    check_call(case, sandbox, tmp_path)


def test_check_names_the_problems(sandbox, tmp_path, capsys):
    from posetrack_data.cli import main

    root = dataset_with(sandbox, tmp_path, _dup_annotation)
    assert main(["check", str(root), "--no-decode"]) == 1
    assert "duplicate annotation" in capsys.readouterr().out


@pytest.mark.parametrize("name", ["..", "/etc", "a/../../b", ""])
def test_names_from_inputs_stay_inside_the_output_folder(tmp_path, name):
    with pytest.raises(OutputError, match="would leave the output folder"):
        OutputPolicy.for_inputs(()).inside(tmp_path / "render", name, "000000.jpg")


def test_symlink_out_of_the_output_folder_is_refused(tmp_path):
    (tmp_path / "render").mkdir()
    (tmp_path / "render" / "seq").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    with pytest.raises(OutputError, match="leads out of the output folder"):
        OutputPolicy.for_inputs(()).inside(tmp_path / "render", "seq", "000000.jpg")


def test_ctrl_c_is_one_line_and_130(sandbox, monkeypatch, capsys):
    from posetrack_data import cli

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "check_root", interrupt)
    assert cli.main(["check", str(sandbox.root)]) == 130
    assert capsys.readouterr().err.strip() == "posetrack-data check: interrupted"


def test_an_internal_bug_is_one_line_saying_so_and_1(sandbox, monkeypatch, capsys):
    from posetrack_data import cli

    def bug(*args, **kwargs):
        return None + 1

    monkeypatch.setattr(cli, "check_root", bug)
    assert cli.main(["check", str(sandbox.root)]) == 1
    assert capsys.readouterr().err.strip() == (
        "posetrack-data check: internal error: TypeError: unsupported operand type(s) for +: 'NoneType' and 'int' "
        "(a bug, not your input: please report it with the traceback that VREMD_DEBUG=1 shows)"
    )
    monkeypatch.setenv("VREMD_DEBUG", "1")
    with pytest.raises(TypeError):
        cli.main(["check", str(sandbox.root)])


@pytest.mark.slow  # a real SIGINT to a fresh interpreter
def test_real_sigint_during_synth_leaves_nothing(tmp_path):
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "posetrack_data.cli", "synth", str(tmp_path / "x"), "--videos", "40"]
    # A shell's background job (`.ci/run &`) ignores SIGINT and its children inherit that, which would make
    # Python skip its Ctrl-C handler: the child gets the default disposition back, as in a terminal.
    restore_sigint = functools.partial(signal.signal, signal.SIGINT, signal.SIG_DFL)
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env, preexec_fn=restore_sigint)
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob(".x.staging-*/images")) and time.monotonic() < deadline:
        time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1].endswith("posetrack-data synth: interrupted")
    assert list(tmp_path.iterdir()) == []  # the staging folder and the claim went with the interrupted run
