"""Hostile and careless inputs to `posetrack-eval` (the harness is `tests/red_team.py`).

Every case runs the command in a fresh interpreter under an address-space limit and a timeout, as users run
it: posetrack-eval starts in a fraction of a second, so isolation costs little here.
"""

import importlib
import json
from pathlib import Path

import pytest

from tests.red_team import (
    Case,
    Sandbox,
    check_case,
    dangling,
    dataset_with,
    deep_json,
    fifo,
    make_sandbox,
    params,
    raw_file,
    text_file,
)

EVAL = "posetrack_eval.cli:main"


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory) -> Sandbox:
    return make_sandbox(tmp_path_factory.mktemp("red-team"))


def _eval(s: Sandbox, *extra: str, preds: Path | None = None, gt: Path | None = None) -> list[str]:
    return [str(preds or s.preds), "--gt", str(gt or s.gt), "--no-progress", *extra]


def _first_prediction(s: Sandbox) -> Path:
    return next(s.preds.glob("*.json"))


def _predictions_with(s: Sandbox, tmp: Path, make) -> Path:
    """A per-sequence predictions folder whose one file `make` puts in place."""
    make(tmp / "preds" / _first_prediction(s).name)
    return tmp / "preds"


def _huge_integer(s: Sandbox, tmp: Path) -> Path:
    content = json.loads(_first_prediction(s).read_text())
    text = json.dumps(content).replace(f'"id": {content["images"][0]["id"]},', f'"id": {"9" * 4301},', 1)
    return text_file(tmp / "p.json", text)


def _nan_keypoint(s: Sandbox, tmp: Path) -> Path:
    content = json.loads(_first_prediction(s).read_text())
    content["annotations"][0]["keypoints"][0] = float("nan")
    return text_file(tmp / "preds" / _first_prediction(s).name, json.dumps(content))


def _eval_case(id: str, argv, says: str) -> Case:
    return Case(id, EVAL, argv, says, isolated=True)


CASES = [
    # ---- class 1: one boundary, options checked when parsed
    _eval_case(
        "eval-json-onto-prediction",
        lambda s, t: _eval(s, "--json", str(_first_prediction(s))),
        "would be written inside the input folder",
    ),
    _eval_case(
        "eval-json-onto-merged-input",
        lambda s, t: _eval(s, "--json", str(s.detections), preds=s.detections),
        "would replace the input",
    ),
    _eval_case(
        "eval-json-existing-file",
        lambda s, t: _eval(s, "--json", str(text_file(t / "r.json"))),
        "--overwrite replaces it",
    ),
    _eval_case(
        "eval-plot-existing-file",
        lambda s, t: _eval(s, "--plot", str(text_file(t / "pr.png"))),
        "--overwrite replaces it",
    ),
    _eval_case(
        "eval-json-into-gt", lambda s, t: _eval(s, "--json", str(s.gt / "results.json")), "inside the input folder"
    ),
    _eval_case(
        "eval-json-missing-folder", lambda s, t: _eval(s, "--json", str(t / "no" / "r.json")), "folder does not exist"
    ),
    _eval_case(
        "eval-plot-unknown-format",
        lambda s, t: _eval(s, "--plot", str(t / "pr.xyz")),
        "pr.xyz: matplotlib writes no .xyz files (it writes .eps,",
    ),
    _eval_case("eval-unknown-protocol", lambda s, t: _eval(s, "--protocol", "pt22"), "invalid choice: 'pt22'"),
    _eval_case("eval-deep-predictions", lambda s, t: _eval(s, preds=deep_json(t / "p.json")), "nested too deeply"),
    _eval_case(
        "eval-binary-predictions",
        lambda s, t: _eval(s, preds=raw_file(t / "p.json", b"\xff\xfe\x00\x01")),
        "not valid JSON",
    ),
    _eval_case(
        "eval-4301-digit-integer",
        lambda s, t: _eval(s, preds=_huge_integer(s, t)),
        "p.json: file: not valid JSON (Exceeds the limit (4300 digits)",
    ),
    _eval_case(
        "eval-huge-image-id",
        lambda s, t: _eval(s, gt=dataset_with(s, t, lambda c: c["images"][0].update(id=2**70)) / "annotations" / "val"),
        "64 bits",
    ),
    _eval_case("eval-missing-gt", lambda s, t: _eval(s, gt=t / "absent"), "absent"),
    _eval_case(
        "eval-nan-keypoint",
        lambda s, t: _eval(s, preds=_nan_keypoint(s, t).parent),
        "must be finite, got nan",
    ),
    # ---- class 2: inputs opened by type; anything already at an output path is not ours
    _eval_case("eval-fifo-predictions", lambda s, t: _eval(s, preds=fifo(t / "p.json")), "is a FIFO (named pipe)"),
    _eval_case(
        "eval-fifo-in-predictions-folder",
        lambda s, t: _eval(s, preds=_predictions_with(s, t, fifo)),
        "000002_mpii_test.json: file: missing: no predictions for GT sequence",
    ),
    _eval_case("eval-fifo-gt", lambda s, t: _eval(s, gt=fifo(t / "gt.json")), "is a FIFO (named pipe)"),
    _eval_case("eval-fifo-subset", lambda s, t: _eval(s, "--subset", str(fifo(t / "s.json"))), "is a FIFO"),
    _eval_case(
        "eval-json-onto-fifo",
        lambda s, t: _eval(s, "--json", str(fifo(t / "r.json"))),
        "exists (a FIFO (named pipe)) and was not written",
    ),
    _eval_case(
        "eval-json-onto-dangling-symlink",
        lambda s, t: _eval(s, "--json", str(dangling(t / "r.json"))),
        "exists (a symlink) and was not written",
    ),
    _eval_case("eval-json-onto-folder", lambda s, t: _eval(s, "--json", str(t)), "is a folder; expected a file name"),
    _eval_case("eval-plot-onto-device", lambda s, t: _eval(s, "--plot", "/dev/full"), "(a character device)"),
]


@pytest.mark.parametrize("case", params(CASES))
def test_bad_input_is_one_line_and_changes_nothing(case, sandbox, tmp_path, capsys):
    check_case(case, sandbox, tmp_path, capsys)


def test_ctrl_c_is_one_line_and_130(sandbox, monkeypatch, capsys):
    from posetrack_eval import cli

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    # posetrack-eval imports its scorer when it runs, so patch it where it is looked up
    monkeypatch.setattr(importlib.import_module("posetrack_eval.scorer"), "evaluate", interrupt)
    assert cli.main([str(sandbox.preds), "--gt", str(sandbox.gt)]) == 130
    assert capsys.readouterr().err.strip() == "posetrack-eval: interrupted"
