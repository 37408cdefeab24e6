"""Hostile and careless inputs to `vremd-predict`, `vremd-explain` and `vremd-demo` (harness: `tests/red_team.py`)."""

import functools
import json
import shutil
import socket
from pathlib import Path

import pytest
import safetensors.torch
import torch

from tests.red_team import (
    Call,
    Case,
    Sandbox,
    check_call,
    check_case,
    config_set,
    deep_json,
    fifo,
    header_claims,
    make_sandbox,
    model_with,
    params,
    payload,
    plant,
    raw_file,
    text_file,
    truncate,
)
from vremd_models.demo.clip import UploadLimits, open_uploaded_frames
from vremd_models.predict.cli import main as predict_main
from vremd_models.predict.detections import parse_box
from vremd_models.predict.errors import PredictInputError

PREDICT = "vremd_models.predict.cli:main"
EXPLAIN = "vremd_models.predict.explain:main"
DEMO = "vremd_models.demo.cli:main"
# Sockets a case holds while the demo tries its port; closed when the module ends.
_HELD_SOCKETS: list[socket.socket] = []


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory) -> Sandbox:
    return make_sandbox(tmp_path_factory.mktemp("red-team"), model=True)


def _predict(s: Sandbox, *extra: str) -> list[str]:
    return [
        str(s.frames),
        "--model",
        str(s.model),
        "--detections",
        str(s.detections),
        "--no-flip-test",
        "--no-progress",
        *extra,
    ]


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


def _nan_weights(model: Path) -> None:
    tensors = safetensors.torch.load_file(model / "model.safetensors")
    nan = {name: torch.full_like(t, float("nan")) if t.is_floating_point() else t for name, t in tensors.items()}
    safetensors.torch.save_file(nan, model / "model.safetensors")


def _crowded_detections(s: Sandbox, tmp: Path) -> Path:
    """10,000 boxes on one frame: more persons than poseval has track ids."""
    image_id = json.loads(next(s.gt.glob("*.json")).read_text())["images"][0]["id"]
    box = {"image_id": image_id, "bbox": [10, 10, 20, 40], "score": 0.9, "category_id": 1}
    return text_file(tmp / "crowd.json", json.dumps([box] * 10_000))


def _own_copy(s: Sandbox, tmp: Path) -> Path:
    """A copy of the sandbox sequence in the case's folder, so that it may change."""
    folder = tmp / "frames" / s.sequence.name
    shutil.copytree(s.sequence, folder)
    return folder


def _first_run(s: Sandbox, frames: Path, out: Path, *extra: str) -> list[str]:
    argv = [str(frames), "--model", str(s.model), "--whole-image", "--no-flip-test", "--no-progress"]
    argv += ["--out", str(out), *extra]
    assert predict_main(argv) == 0
    return argv


def _frames_changed(s: Sandbox, tmp: Path) -> list[str]:
    """A finished run, then one of its frames replaced by another: the rerun may not say "nothing to do"."""
    frames = _own_copy(s, tmp)
    argv = _first_run(s, frames, tmp / "p")
    first, second = sorted(frames.glob("*.jpg"))[:2]
    first.write_bytes(second.read_bytes())
    return argv


def _render_asked_later(s: Sandbox, tmp: Path) -> list[str]:
    """A finished merged run without --render, then the same run asking for renders."""
    frames = _own_copy(s, tmp)
    return [*_first_run(s, frames, tmp / "p.json"), "--render", str(tmp / "r")]


def _overwrite_then_fail(s: Sandbox, tmp: Path) -> list[str]:
    """A finished merged run, then --overwrite with a model that cannot load: the old file must survive."""
    frames = _own_copy(s, tmp)
    argv = _first_run(s, frames, tmp / "p.json")
    return [*argv, "--overwrite", "--model", str(model_with(s, tmp, truncate("model.safetensors", 100)))]


def _busy_port(s: Sandbox, tmp: Path) -> list[str]:
    held = socket.socket()
    held.bind(("127.0.0.1", 0))
    held.listen()
    _HELD_SOCKETS.append(held)
    return ["--model", str(s.model), "--port", str(held.getsockname()[1])]


@pytest.fixture(scope="module", autouse=True)
def _close_held_sockets():
    yield
    while _HELD_SOCKETS:
        _HELD_SOCKETS.pop().close()


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
    # ---- vremd-predict: class 1, options checked when parsed, against what the writer can do
    Case(
        "predict-render-webm",
        PREDICT,
        lambda s, t: _predict(s, "--out", str(t / "p"), "--render", str(t / "r.webm")),
        "rendered videos are .mp4 or .avi",
    ),
    Case("predict-fps-zero", PREDICT, lambda s, t: _predict(s, "--out", str(t / "p"), "--fps", "0"), "frame rate"),
    Case("predict-fps-nan", PREDICT, lambda s, t: _predict(s, "--out", str(t / "p"), "--fps", "nan"), "frame rate"),
    # ---- class 2: paths by type
    Case(
        "predict-fifo-detections",
        PREDICT,
        lambda s, t: [*_predict(s, "--out", str(t / "p")), "--detections", str(fifo(t / "d.json"))],
        "expected a regular file",
    ),
    Case(
        "predict-model-typo",
        PREDICT,
        lambda s, t: [*_predict(s, "--out", str(t / "p")), "--model", "typo/model"],
        "typo/model: no such file or folder, and as a hub id not cached",
    ),
    # ---- class 3: budgets before inference
    Case(
        "predict-10000-boxes-on-a-frame",
        PREDICT,
        lambda s, t: [*_predict(s, "--out", str(t / "p")), "--detections", str(_crowded_detections(s, t))],
        "poseval's track-id limit",
    ),
    # ---- class 5: done keyed on what was asked
    Case("predict-rerun-after-frames-changed", PREDICT, _frames_changed, "made from input frames that changed"),
    Case("predict-rerun-asking-for-renders", PREDICT, _render_asked_later, "without the renders asked for"),
    Case("predict-overwrite-merged-then-model-fails", PREDICT, _overwrite_then_fail, "model.safetensors"),
    # ---- class 6: results checked before they are written
    Case(
        "predict-nan-weights",
        PREDICT,
        lambda s, t: _with_model(s, t, _nan_weights),
        "the model's heatmaps hold NaN or infinite values",
    ),
    # ---- vremd-explain
    Case(
        "explain-box-nan",
        EXPLAIN,
        lambda s, t: _explain(s, "--out", str(t / "e.png"), "--box", "0,0,nan,nan"),
        "expected finite numbers",
    ),
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
    Case(
        "explain-joint-superscript",
        EXPLAIN,
        lambda s, t: _explain(s, "--out", str(t / "e.png"), "--joint", "²"),
        "expected an index below 17",
    ),
    Case("explain-bad-suffix", EXPLAIN, lambda s, t: _explain(s, "--out", str(t / "e.txt")), "expected a .png"),
    # ---- vremd-demo's server start
    Case("demo-port-busy", DEMO, _busy_port, "cannot serve there"),
    Case("demo-port-zero", DEMO, lambda s, t: ["--model", str(s.model), "--port", "0"], "expected 1 to 65535"),
    Case(
        "demo-detect-every-zero",
        DEMO,
        lambda s, t: ["--model", str(s.model), "--detect-every", "0"],
        "expected at least 1",
    ),
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


def _same_name_uploads(s: Sandbox, tmp: Path):
    frame = next(s.sequence.glob("*.jpg")).read_bytes()
    frames = [raw_file(tmp / folder / "000001.jpg", frame) for folder in ("a", "b")]
    return functools.partial(open_uploaded_frames, frames, tmp / "session", UploadLimits())


CALLS = [
    Call("demo-upload-same-name-twice", _same_name_uploads, PredictInputError, "two frames named 000001.jpg"),
    Call("demo-drawn-box-nan", lambda s, t: functools.partial(parse_box, "0,0,nan,nan"), PredictInputError, "finite"),
]


@pytest.mark.parametrize("case", params(CALLS))
def test_python_entry_points_refuse_in_one_error_and_change_nothing(case, sandbox, tmp_path):
    check_call(case, sandbox, tmp_path)
