"""Hostile and careless inputs to `vremd-predict` and `vremd-explain` (harness: `tests/red_team.py`)."""

import shutil
from pathlib import Path

import pytest

from tests.red_team import (
    Case,
    Sandbox,
    check_case,
    config_set,
    deep_json,
    header_claims,
    make_sandbox,
    model_with,
    params,
    payload,
    plant,
    text_file,
    truncate,
)

PREDICT = "vremd_models.predict.cli:main"
EXPLAIN = "vremd_models.predict.explain:main"


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory) -> Sandbox:
    return make_sandbox(tmp_path_factory.mktemp("red-team"), model=True)


def _predict(s: Sandbox, *extra: str) -> list[str]:
    return [str(s.frames), "--model", str(s.model), "--detections", str(s.detections), "--no-flip-test", *extra]


def _with_model(s: Sandbox, tmp: Path, mutate) -> list[str]:
    return [*_predict(s, "--out", str(tmp / "p")), "--model", str(model_with(s, tmp, mutate))]


def _explain(s: Sandbox, *extra: str, model: Path | None = None) -> list[str]:
    return [str(s.sequence), "--model", str(model or s.model), *extra]


def _foreign_out(s: Sandbox, tmp: Path) -> Path:
    text_file(tmp / "p" / "000002_mpii_test.json", '{"images": []}')
    return tmp / "p"


def _pickle_model(s: Sandbox, tmp: Path) -> Path:
    (tmp / "m").mkdir()
    shutil.copy(s.model / "config.json", tmp / "m" / "config.json")
    payload(tmp / "m" / "pytorch_model.bin", tmp / "MARKER")
    return tmp / "m"


CASES = [
    # ---- vremd-predict: outputs
    Case(
        "predict-render-into-input-frames",
        PREDICT,
        lambda s, t: _predict(s, "--out", str(t / "p"), "--render", str(s.frames)),
        "inside the input folder",
    ),
    Case(
        "predict-render-inside-input",
        PREDICT,
        lambda s, t: _predict(s, "--out", str(t / "p"), "--render", str(s.frames / "r")),
        "inside the input folder",
    ),
    Case(
        "predict-out-into-gt",
        PREDICT,
        lambda s, t: [*_predict(s, "--out", str(s.gt)), "--annotations", str(s.gt)],
        "would replace the input",
    ),
    Case(
        "predict-out-onto-detections",
        PREDICT,
        lambda s, t: _predict(s, "--out", str(s.detections)),
        "would replace the input",
    ),
    Case(
        "predict-out-unrelated-json",
        PREDICT,
        lambda s, t: _predict(s, "--out", str(text_file(t / "preds.json", '{"images": []}'))),
        "not written by this command",
    ),
    Case(
        "predict-out-foreign-sequence",
        PREDICT,
        lambda s, t: _predict(s, "--out", str(_foreign_out(s, t))),
        "not written by vremd-predict",
    ),
    Case(
        "predict-render-existing-video",
        PREDICT,
        lambda s, t: [
            str(s.sequence),
            *["--model", str(s.model), "--detections", str(s.detections), "--out", str(t / "p")],
            *["--render", str(text_file(t / "v.mp4"))],
        ],
        "--overwrite replaces it",
    ),
    # ---- vremd-predict: model folders
    Case(
        "predict-truncated-weights",
        PREDICT,
        lambda s, t: _with_model(s, t, truncate("model.safetensors", 100)),
        "model.safetensors",
    ),
    Case("predict-header-2-60", PREDICT, lambda s, t: _with_model(s, t, header_claims(2**60)), "header claims"),
    Case(
        "predict-config-string-int",
        PREDICT,
        lambda s, t: _with_model(s, t, config_set("num_joints", "17")),
        "num_joints: must be int",
    ),
    Case(
        "predict-config-list",
        PREDICT,
        lambda s, t: _with_model(s, t, plant("config.json", "[1, 2]")),
        "expected a JSON object",
    ),
    Case(
        "predict-config-huge",
        PREDICT,
        lambda s, t: _with_model(s, t, config_set("hidden_dim", 2**70)),
        "at most 65536",
    ),
    Case(
        "predict-config-deep",
        PREDICT,
        lambda s, t: _with_model(s, t, lambda m: deep_json(m / "config.json")),
        "nested too deeply",
    ),
    Case(
        "predict-pickle-only-model",
        PREDICT,
        lambda s, t: [*_predict(s, "--out", str(t / "p")), "--model", str(_pickle_model(s, t))],
        "refuses pickle",
    ),
    # ---- vremd-predict: boxes and options
    Case(
        "predict-deep-detections",
        PREDICT,
        lambda s, t: [
            *[str(s.frames), "--model", str(s.model), "--detections", str(deep_json(t / "d.json"))],
            *["--out", str(t / "p")],
        ],
        "nested too deeply",
    ),
    Case(
        "predict-bad-batch",
        PREDICT,
        lambda s, t: _predict(s, "--out", str(t / "p"), "--batch-size", "0"),
        "--batch-size",
    ),
    # ---- vremd-explain
    Case(
        "explain-out-onto-frame",
        EXPLAIN,
        lambda s, t: _explain(s, "--out", str(next(s.sequence.glob("*.jpg")))),
        "would be written inside the input folder",
    ),
    Case(
        "explain-out-existing",
        EXPLAIN,
        lambda s, t: _explain(s, "--out", str(text_file(t / "e.png"))),
        "--overwrite replaces it",
    ),
    Case("explain-bad-suffix", EXPLAIN, lambda s, t: _explain(s, "--out", str(t / "e.txt")), "expected a .png"),
    Case(
        "explain-truncated-weights",
        EXPLAIN,
        lambda s, t: _explain(s, "--out", str(t / "e.png"), model=model_with(s, t, truncate("model.safetensors", 5))),
        "model.safetensors",
    ),
]


@pytest.mark.parametrize("case", params(CASES))
def test_bad_input_is_one_line_and_changes_nothing(case, sandbox, tmp_path, capsys):
    check_case(case, sandbox, tmp_path, capsys)
