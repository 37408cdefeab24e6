"""Hostile and careless inputs to every command and the main Python entry points.

Each case asserts the exit status (2 bad input, 130 interrupted), a single stderr line naming the problem,
no traceback, and that every file that existed before the call is byte-for-byte unchanged.
"""

import functools
import hashlib
import importlib.util
import json
import os
import pickle
import shutil
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from posetrack_data.cli import main as data_main
from posetrack_data.synthetic import generate_dataset
from posetrack_eval.cli import main as eval_main
from vremd_models.cli import convert_vitpose
from vremd_models.predict.cli import main as predict_main
from vremd_models.predict.explain import main as explain_main

ROOT = Path(__file__).resolve().parents[2]


def _load_train():
    spec = importlib.util.spec_from_file_location("train_red_team", ROOT / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass(frozen=True)
class Sandbox:
    root: Path  # a synthetic PoseTrack18 dataset
    model: Path  # a tiny VREMD model folder
    preds: Path  # per-sequence predictions of the val split (the GT itself)
    run: Path  # a train.py run directory with one checkpoint

    @property
    def frames(self) -> Path:
        return self.root / "images" / "val"

    @property
    def gt(self) -> Path:
        return self.root / "annotations" / "val"

    @property
    def detections(self) -> Path:
        return self.root / "person_detections" / "val.json"


class _Flatten:
    """Unpickling this would create the marker file: the payload that must never run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory) -> Sandbox:
    import torch

    from training.checkpoints import MANIFEST
    from vremd_models import VREMD, VREMDConfig

    base = tmp_path_factory.mktemp("red-team")
    root = generate_dataset(
        base / "data", num_videos=2, num_frames=3, image_size=(96, 80), seed=1, val_fraction=0.5, progress=False
    )
    torch.manual_seed(0)
    VREMD(VREMDConfig.from_preset("vremd-tiny")).save_pretrained(base / "model")
    shutil.copytree(root / "annotations" / "val", base / "preds")
    # a checkpoint folder of the files train.py writes (contents are not read before the refusal)
    checkpoint = base / "run" / "checkpoints" / "step_00000001"
    checkpoint.mkdir(parents=True)
    (base / "run" / "config.yaml").write_text("{}\n")
    for name in ("model.safetensors", "optimizer.safetensors", "optimizer.json", "scheduler.json", "rng_0.json"):
        (checkpoint / name).write_text("{}")
    (checkpoint / "trainer_state.json").write_text(json.dumps({"step": 1}))
    (checkpoint / MANIFEST).write_text(json.dumps({"files": {"trainer_state.json": "0" * 64}}))
    return Sandbox(root, base / "model", base / "preds", base / "run")


def _hashes(*folders: Path) -> dict[str, str]:
    return {
        str(p): hashlib.sha256(p.read_bytes()).hexdigest()
        for folder in folders
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _deep_json(path: Path) -> Path:
    path.write_text("[" * 100_000 + "]" * 100_000)
    return path


def _edit_json(source: Path, target: Path, edit: Callable[[dict], None]) -> Path:
    content = json.loads(source.read_text())
    edit(content)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(content))
    return target


def _bad_model(s: Sandbox, tmp: Path, mutate: Callable[[Path], None]) -> Path:
    model = tmp / "model"
    shutil.copytree(s.model, model)
    mutate(model)
    return model


def _dataset_with(s: Sandbox, tmp: Path, edit: Callable[[dict], None]) -> Path:
    root = tmp / "data"
    shutil.copytree(s.root / "images", root / "images")
    for path in sorted((s.root / "annotations" / "val").glob("*.json")):
        _edit_json(path, root / "annotations" / "val" / path.name, edit)
    return root


def _predict(s: Sandbox, *extra):
    return [str(s.frames), "--model", str(s.model), "--detections", str(s.detections), "--no-flip-test", *extra]


def _set(path: str, value):
    def edit(content: dict) -> None:
        keys = path.split(".")
        target = content
        for key in keys[:-1]:
            target = target[int(key)] if key.isdigit() else target[key]
        target[int(keys[-1]) if keys[-1].isdigit() else keys[-1]] = value

    return edit


def _truncate(name: str, keep: int) -> Callable[[Path], None]:
    return lambda m: (m / name).write_bytes((m / name).read_bytes()[:keep])


def _header_claims(size: int) -> Callable[[Path], None]:
    return lambda m: (m / "model.safetensors").write_bytes(struct.pack("<Q", size) + b"{}")


def _plant(name: str, content: str) -> Callable[[Path], None]:
    return lambda m: (m / name).write_text(content)


def _config_set(key: str, value) -> Callable[[Path], None]:
    return lambda m: _edit_json(m / "config.json", m / "config.json", _set(key, value))


def _deep_config(model: Path) -> None:
    _deep_json(model / "config.json")


def _train():
    return _load_train().main


# (id, entry point, argv builder (sandbox, case folder) -> argv, exit status, text the stderr line must hold)
CASES: list[tuple[str, Callable[[], Callable], Callable[[Sandbox, Path], list[str]], int, str]] = [
    # ---- posetrack-data
    (
        "data-synth-into-dataset",
        lambda: data_main,
        lambda s, t: [
            "synth",
            str(s.root),
            "--videos",
            "2",
            "--frames",
            "3",
            "--size",
            "96x80",
            "--val-fraction",
            "0.5",
            "--seed",
            "1",
        ],
        2,
        "exists and was not written",
    ),
    ("data-synth-onto-file", lambda: data_main, lambda s, t: ["synth", str(s.detections)], 2, "is not a folder"),
    (
        "data-synth-bad-size",
        lambda: data_main,
        lambda s, t: ["synth", str(t / "x"), "--size", "big"],
        2,
        "--size must be WxH",
    ),
    (
        "data-synth-one-video",
        lambda: data_main,
        lambda s, t: ["synth", str(t / "x"), "--videos", "1"],
        2,
        "num_videos must be >= 2",
    ),
    (
        "data-check-missing-root",
        lambda: data_main,
        lambda s, t: ["check", str(t / "absent")],
        2,
        "root must be a dataset folder",
    ),
    (
        "data-check-deep-json",
        lambda: data_main,
        lambda s, t: ["check", str(_deep_root(t)), "--no-decode"],
        1,
        "nested too deeply",
    ),
    (
        "data-check-huge-image-id",
        lambda: data_main,
        lambda s, t: ["check", str(_dataset_with(s, t, _set("images.0.id", 2**70))), "--no-decode"],
        1,
        "out of range",
    ),
    (
        "data-check-duplicate-image-id",
        lambda: data_main,
        lambda s, t: ["check", str(_dataset_with(s, t, _dup_image_id)), "--no-decode"],
        1,
        "duplicate image id",
    ),
    (
        "data-check-negative-id",
        lambda: data_main,
        lambda s, t: ["check", str(_dataset_with(s, t, _set("images.1.id", -5))), "--no-decode"],
        1,
        "negative image id",
    ),
    (
        "data-check-duplicate-annotation",
        lambda: data_main,
        lambda s, t: ["check", str(_dataset_with(s, t, _dup_annotation)), "--no-decode"],
        1,
        "duplicate annotation",
    ),
    (
        "data-check-inf-keypoint",
        lambda: data_main,
        lambda s, t: ["check", str(_dataset_with(s, t, _set("annotations.0.bbox", [0, 0, 1e300, 1]))), "--no-decode"],
        1,
        "expected a finite number",
    ),
    # ---- posetrack-eval
    (
        "eval-json-onto-prediction",
        lambda: eval_main,
        lambda s, t: [str(s.preds), "--gt", str(s.gt), "--json", str(next(s.preds.glob("*.json"))), "--no-progress"],
        2,
        "would be written inside the input folder",
    ),
    (
        "eval-json-onto-merged-input",
        lambda: eval_main,
        lambda s, t: [str(s.detections), "--gt", str(s.gt), "--json", str(s.detections), "--no-progress"],
        2,
        "would replace the input",
    ),
    (
        "eval-json-existing-file",
        lambda: eval_main,
        lambda s, t: [str(s.preds), "--gt", str(s.gt), "--json", str(_file(t / "r.json")), "--no-progress"],
        2,
        "--overwrite replaces it",
    ),
    (
        "eval-plot-existing-file",
        lambda: eval_main,
        lambda s, t: [str(s.preds), "--gt", str(s.gt), "--plot", str(_file(t / "pr.png")), "--no-progress"],
        2,
        "--overwrite replaces it",
    ),
    (
        "eval-json-into-gt",
        lambda: eval_main,
        lambda s, t: [str(s.preds), "--gt", str(s.gt), "--json", str(s.gt / "results.json"), "--no-progress"],
        2,
        "inside the input folder",
    ),
    (
        "eval-json-missing-folder",
        lambda: eval_main,
        lambda s, t: [str(s.preds), "--gt", str(s.gt), "--json", str(t / "no" / "r.json"), "--no-progress"],
        2,
        "folder does not exist",
    ),
    (
        "eval-deep-predictions",
        lambda: eval_main,
        lambda s, t: [str(_deep_json(t / "p.json")), "--gt", str(s.gt), "--no-progress"],
        2,
        "nested too deeply",
    ),
    (
        "eval-binary-predictions",
        lambda: eval_main,
        lambda s, t: [str(_bytes(t / "p.json", b"\xff\xfe\x00\x01")), "--gt", str(s.gt), "--no-progress"],
        2,
        "not valid JSON",
    ),
    (
        "eval-huge-image-id",
        lambda: eval_main,
        lambda s, t: [
            str(s.preds),
            "--gt",
            str(_dataset_with(s, t, _set("images.0.id", 2**70)) / "annotations" / "val"),
            "--no-progress",
        ],
        2,
        "64 bits",
    ),
    (
        "eval-missing-gt",
        lambda: eval_main,
        lambda s, t: [str(s.preds), "--gt", str(t / "absent"), "--no-progress"],
        2,
        "absent",
    ),
    # ---- vremd-predict
    (
        "predict-render-into-input-frames",
        lambda: predict_main,
        lambda s, t: _predict(s, "--out", str(t / "p"), "--render", str(s.frames)),
        2,
        "inside the input folder",
    ),
    (
        "predict-render-inside-input",
        lambda: predict_main,
        lambda s, t: _predict(s, "--out", str(t / "p"), "--render", str(s.frames / "r")),
        2,
        "inside the input folder",
    ),
    (
        "predict-out-into-gt",
        lambda: predict_main,
        lambda s, t: [*_predict(s, "--out", str(s.gt)), "--annotations", str(s.gt)],
        2,
        "would replace the input",
    ),
    (
        "predict-out-onto-detections",
        lambda: predict_main,
        lambda s, t: _predict(s, "--out", str(s.detections)),
        2,
        "would replace the input",
    ),
    (
        "predict-out-unrelated-json",
        lambda: predict_main,
        lambda s, t: _predict(s, "--out", str(_file(t / "preds.json", '{"images": []}'))),
        2,
        "not written by this command",
    ),
    (
        "predict-out-foreign-sequence",
        lambda: predict_main,
        lambda s, t: _predict(s, "--out", str(_foreign_out(s, t))),
        2,
        "not written by vremd-predict",
    ),
    (
        "predict-render-existing-video",
        lambda: predict_main,
        lambda s, t: [
            str(s.frames / "000002_mpii_test"),
            "--model",
            str(s.model),
            "--detections",
            str(s.detections),
            "--out",
            str(t / "p"),
            "--render",
            str(_file(t / "v.mp4")),
        ],
        2,
        "--overwrite replaces it",
    ),
    (
        "predict-truncated-weights",
        lambda: predict_main,
        lambda s, t: (
            [*_predict(s, "--out", str(t / "p")), "--model", str(_bad_model(s, t, _truncate("model.safetensors", 100)))]
        ),
        2,
        "model.safetensors",
    ),
    (
        "predict-header-2-60",
        lambda: predict_main,
        lambda s, t: [*_predict(s, "--out", str(t / "p")), "--model", str(_bad_model(s, t, _header_claims(2**60)))],
        2,
        "header claims",
    ),
    (
        "predict-config-string-int",
        lambda: predict_main,
        lambda s, t: (
            [*_predict(s, "--out", str(t / "p")), "--model", str(_bad_model(s, t, _config_set("num_joints", "17")))]
        ),
        2,
        "num_joints: must be int",
    ),
    (
        "predict-config-list",
        lambda: predict_main,
        lambda s, t: (
            [*_predict(s, "--out", str(t / "p")), "--model", str(_bad_model(s, t, _plant("config.json", "[1, 2]")))]
        ),
        2,
        "expected a JSON object",
    ),
    (
        "predict-config-huge",
        lambda: predict_main,
        lambda s, t: (
            [*_predict(s, "--out", str(t / "p")), "--model", str(_bad_model(s, t, _config_set("hidden_dim", 2**70)))]
        ),
        2,
        "at most 65536",
    ),
    (
        "predict-config-deep",
        lambda: predict_main,
        lambda s, t: (
            [
                *_predict(s, "--out", str(t / "p")),
                "--model",
                str(_bad_model(s, t, lambda m: _deep_json(m / "config.json"))),
            ]
        ),
        2,
        "nested too deeply",
    ),
    (
        "predict-pickle-only-model",
        lambda: predict_main,
        lambda s, t: [*_predict(s, "--out", str(t / "p")), "--model", str(_pickle_model(s, t))],
        2,
        "refuses pickle",
    ),
    (
        "predict-deep-detections",
        lambda: predict_main,
        lambda s, t: [
            str(s.frames),
            "--model",
            str(s.model),
            "--detections",
            str(_deep_json(t / "d.json")),
            "--out",
            str(t / "p"),
        ],
        2,
        "nested too deeply",
    ),
    (
        "predict-bad-batch",
        lambda: predict_main,
        lambda s, t: _predict(s, "--out", str(t / "p"), "--batch-size", "0"),
        2,
        "--batch-size",
    ),
    # ---- vremd-explain
    (
        "explain-out-onto-frame",
        lambda: explain_main,
        lambda s, t: [
            str(s.frames / "000002_mpii_test"),
            "--model",
            str(s.model),
            "--out",
            str(next((s.frames / "000002_mpii_test").glob("*.jpg"))),
        ],
        2,
        "would be written inside the input folder",
    ),
    (
        "explain-out-existing",
        lambda: explain_main,
        lambda s, t: [str(s.frames / "000002_mpii_test"), "--model", str(s.model), "--out", str(_file(t / "e.png"))],
        2,
        "--overwrite replaces it",
    ),
    (
        "explain-bad-suffix",
        lambda: explain_main,
        lambda s, t: [str(s.frames / "000002_mpii_test"), "--model", str(s.model), "--out", str(t / "e.txt")],
        2,
        "expected a .png",
    ),
    (
        "explain-truncated-weights",
        lambda: explain_main,
        lambda s, t: [
            str(s.frames / "000002_mpii_test"),
            "--model",
            str(_bad_model(s, t, _truncate("model.safetensors", 5))),
            "--out",
            str(t / "e.png"),
        ],
        2,
        "model.safetensors",
    ),
    # ---- vremd-convert-vitpose
    (
        "convert-into-existing-folder",
        lambda: convert_vitpose,
        lambda s, t: [str(s.model / "model.safetensors"), str(s.root), "--preset", "vremd-tiny"],
        2,
        "exists and is not empty",
    ),
    (
        "convert-truncated-safetensors",
        lambda: convert_vitpose,
        lambda s, t: [str(_bytes(t / "v.safetensors", b"\x10\x00")), str(t / "o"), "--preset", "vremd-tiny"],
        2,
        "safetensors file",
    ),
    (
        "convert-pickle-payload",
        lambda: convert_vitpose,
        lambda s, t: [str(_payload(t / "v.pth", t / "MARKER")), str(t / "o"), "--preset", "vremd-tiny"],
        2,
        "weights_only",
    ),
    # ---- train.py
    (
        "train-negative-epochs",
        _train,
        lambda s, t: ["--set", "schedule.epochs=-3"],
        2,
        "schedule.epochs: must be at least 1",
    ),
    (
        "train-negative-lr",
        _train,
        lambda s, t: ["--set", "optimizer.lr=-0.01"],
        2,
        "optimizer.lr: must be a finite number > 0",
    ),
    ("train-nan-lr", _train, lambda s, t: ["--set", "optimizer.lr=.nan"], 2, "optimizer.lr"),
    ("train-string-int", _train, lambda s, t: ["--set", "data.batch_size=many"], 2, "data.batch_size"),
    (
        "train-resume-planted-pickle",
        _train,
        lambda s, t: ["--resume", str(_planted_run(s, t))],
        2,
        "did not write; refusing",
    ),
    ("train-resume-damaged-only", _train, lambda s, t: ["--resume", str(s.run)], 2, "is damaged"),
    ("train-resume-nothing", _train, lambda s, t: ["--resume", str(t)], 2, "no checkpoint"),
]


def _file(path: Path, text: str = "precious") -> Path:
    path.write_text(text)
    return path


def _bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _payload(path: Path, marker: Path) -> Path:
    path.write_bytes(pickle.dumps(_Flatten(marker), protocol=2))
    return path


def _deep_root(tmp: Path) -> Path:
    (tmp / "d" / "annotations" / "val").mkdir(parents=True)
    _deep_json(tmp / "d" / "annotations" / "val" / "000001_mpii_test.json")
    return tmp / "d"


def _dup_image_id(content: dict) -> None:
    content["images"][1]["id"] = content["images"][0]["id"]


def _dup_annotation(content: dict) -> None:
    content["annotations"].append(dict(content["annotations"][0]))


def _foreign_out(s: Sandbox, tmp: Path) -> Path:
    out = tmp / "p"
    out.mkdir()
    (out / "000002_mpii_test.json").write_text('{"images": []}')
    return out


def _pickle_model(s: Sandbox, tmp: Path) -> Path:
    model = tmp / "m"
    model.mkdir()
    shutil.copy(s.model / "config.json", model / "config.json")
    _payload(model / "pytorch_model.bin", tmp / "MARKER")
    return model


def _planted_run(s: Sandbox, tmp: Path) -> Path:
    run = tmp / "run"
    shutil.copytree(s.run, run)
    _payload(run / "checkpoints" / "step_00000001" / "custom_checkpoint_0.pkl", tmp / "MARKER")
    return run


@pytest.mark.parametrize(("entry", "argv", "status", "says"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_and_changes_nothing(entry, argv, status, says, sandbox, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = argv(sandbox, tmp_path)
    before = _hashes(sandbox.root.parent, tmp_path)
    code = entry()(args)
    captured = capsys.readouterr()
    err = captured.err
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith(("Checking", "Synth"))]
    assert code == status, err
    assert "Traceback" not in err
    if status == 2:
        assert len(lines) == 1, err
        assert says in lines[0]
    else:  # check: one line per problem on stdout, a count on stderr
        assert says in captured.out
    after = _hashes(sandbox.root.parent, tmp_path)
    assert {k: after.get(k) for k in before} == before
    assert not (tmp_path / "MARKER").exists()  # no pickle payload ever ran


def test_check_names_the_problems(sandbox, tmp_path, capsys):
    root = _dataset_with(sandbox, tmp_path, _dup_annotation)
    assert data_main(["check", str(root), "--no-decode"]) == 1
    assert "duplicate annotation" in capsys.readouterr().out


def test_loader_refuses_duplicate_image_ids_across_files(sandbox, tmp_path):
    from posetrack_data import PoseTrackFormatError, load_posetrack

    root = tmp_path / "data"
    shutil.copytree(sandbox.root, root)
    (video,) = (root / "annotations" / "val").glob("*.json")
    shutil.copy(video, video.with_name("000009_mpii_test.json"))  # a second video with the same image ids
    with pytest.raises(PoseTrackFormatError, match="duplicate image id"):
        load_posetrack(root, split="val", cache_dir=tmp_path / "cache")


@pytest.mark.parametrize("name", ["..", "/etc", "a/../../b", ""])
def test_names_from_inputs_stay_inside_the_output_folder(tmp_path, name):
    from posetrack_data.outputs import OutputError, OutputPolicy

    with pytest.raises(OutputError, match="would leave the output folder"):
        OutputPolicy.for_inputs(()).inside(tmp_path / "render", name, "000000.jpg")


def test_symlink_out_of_the_output_folder_is_refused(tmp_path):
    from posetrack_data.outputs import OutputError, OutputPolicy

    (tmp_path / "render").mkdir()
    (tmp_path / "render" / "seq").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    with pytest.raises(OutputError, match="leads out of the output folder"):
        OutputPolicy.for_inputs(()).inside(tmp_path / "render", "seq", "000000.jpg")


def test_from_pretrained_names_the_file(sandbox, tmp_path):
    from vremd_models import VREMD

    model = _bad_model(sandbox, tmp_path, _header_claims(2**60))
    with pytest.raises(ValueError, match=r"model\.safetensors: safetensors header claims"):
        VREMD.from_pretrained(model)


@pytest.mark.parametrize("entry", ["posetrack_data.cli", "posetrack_eval.cli"])
def test_ctrl_c_is_one_line_and_130(entry, sandbox, monkeypatch, capsys):
    module = importlib.import_module(entry)

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    # posetrack-eval imports its scorer when it runs, so patch it where it is looked up
    target = module if "data" in entry else importlib.import_module("posetrack_eval.scorer")
    monkeypatch.setattr(target, "check_root" if "data" in entry else "evaluate", interrupt)
    argv = ["check", str(sandbox.root)] if "data" in entry else [str(sandbox.preds), "--gt", str(sandbox.gt)]
    assert module.main(argv) == 130
    assert capsys.readouterr().err.strip().endswith("interrupted")


@pytest.mark.slow  # a real SIGINT to a fresh interpreter
def test_real_sigint_during_synth(tmp_path):
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    command = [
        sys.executable,
        "-m",
        "posetrack_data.cli",
        "synth",
        str(tmp_path / "x"),
        "--videos",
        "40",
        "--frames",
        "60",
    ]
    # A shell's background job (`.ci/run &`) ignores SIGINT and its children inherit that, which would make
    # Python skip its Ctrl-C handler: the child gets the default disposition back, as in a terminal.
    restore_sigint = functools.partial(signal.signal, signal.SIGINT, signal.SIG_DFL)
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env, preexec_fn=restore_sigint)
    deadline = time.monotonic() + 60
    while not (tmp_path / "x").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1].endswith("posetrack-data synth: interrupted")


def _checkpoint(run: Path, step: int, damaged: bool = False) -> Path:
    from training.checkpoints import MANIFEST

    folder = run / "checkpoints" / f"step_{step:08d}"
    folder.mkdir(parents=True)
    (folder / "trainer_state.json").write_text(json.dumps({"step": step}))
    digest = hashlib.sha256((folder / "trainer_state.json").read_bytes()).hexdigest()
    (folder / MANIFEST).write_text(json.dumps({"files": {"trainer_state.json": digest}}))
    if damaged:
        (folder / "trainer_state.json").write_text(json.dumps({"step": step + 1}))
    return folder


def test_resume_falls_back_to_the_previous_complete_checkpoint_saying_so(tmp_path):
    from training.checkpoints import find_checkpoint

    previous = _checkpoint(tmp_path, 10)
    _checkpoint(tmp_path, 20, damaged=True)
    said = []
    assert find_checkpoint(tmp_path, say=said.append) == previous
    assert said == [
        f"train.py: checkpoint {tmp_path / 'checkpoints' / 'step_00000020'} is damaged (trainer_state.json differs "
        f"from what was written); resuming from the previous checkpoint {previous}"
    ]
