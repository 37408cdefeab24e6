"""Hostile and careless inputs to `train.py` (harness: `tests/red_team.py`): every one refused before any work."""

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from tests.red_team import Case, Sandbox, check_case, fifo, make_sandbox, params, payload, raw_file, text_file
from training.checkpoints import MANIFEST, find_checkpoint

TRAIN = "train.py:main"

# Nine nested aliases: 9^9 strings once expanded, a few hundred bytes on disk.
_LAUGHS = 'a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n' + "".join(
    f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]\n" for i in range(1, 9)
)


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory) -> Sandbox:
    return make_sandbox(tmp_path_factory.mktemp("red-team"), run=True)


def _config(tmp: Path, text: str | bytes) -> list[str]:
    path = tmp / "run.yaml"
    if isinstance(text, bytes):
        raw_file(path, text)
    else:
        text_file(path, text)
    return ["--config", str(path)]


def _planted_run(s: Sandbox, tmp: Path) -> Path:
    run = tmp / "run"
    shutil.copytree(s.run, run)
    payload(run / "checkpoints" / "step_00000001" / "custom_checkpoint_0.pkl", tmp / "MARKER")
    return run


def _stray_file_run(s: Sandbox, tmp: Path) -> Path:
    run = tmp / "run"
    shutil.copytree(s.run, run)
    text_file(run / "checkpoints" / "step_notes.txt", "the user's notes")
    return run


def _user_folder(tmp: Path) -> Path:
    text_file(tmp / "mine" / "thesis.tex", "the user's own file")
    return tmp / "mine"


CASES = [
    # ---- class 1: one boundary; configs type- and range-checked when loaded, before any work
    Case("train-negative-epochs", TRAIN, lambda s, t: ["--set", "schedule.epochs=-3"], "schedule.epochs: must be at"),
    Case("train-negative-lr", TRAIN, lambda s, t: ["--set", "optimizer.lr=-0.01"], "optimizer.lr: must be a finite"),
    Case("train-nan-lr", TRAIN, lambda s, t: ["--set", "optimizer.lr=.nan"], "optimizer.lr"),
    Case("train-string-int", TRAIN, lambda s, t: ["--set", "data.batch_size=many"], "data.batch_size"),
    Case("train-negative-seed", TRAIN, lambda s, t: ["--set", "run.seed=-1"], "run.seed: must be in [0, 2**32)"),
    Case("train-seed-past-2-32", TRAIN, lambda s, t: ["--set", "pretrain.stage1_seed=4294967296"], "stage1_seed"),
    Case(
        "train-set-broken-yaml",
        TRAIN,
        lambda s, t: ["--set", "optimizer.lr=[1"],
        "--set optimizer.lr=[1: not valid YAML",
    ),
    Case("train-unknown-option", TRAIN, lambda s, t: ["--frobnicate"], "unrecognized arguments: --frobnicate"),
    Case(
        "train-config-not-utf8",
        TRAIN,
        lambda s, t: _config(t, b"run:\n  seed: \xff\n"),
        "run.yaml: not UTF-8 text (byte 13 is 0xff)",
    ),
    Case(
        "train-config-python-tag",
        TRAIN,
        lambda s, t: _config(t, f"run: !!python/object/apply:os.system ['touch {t / 'MARKER'}']\n"),
        "not valid YAML",
    ),
    # ---- class 2: inputs by type
    Case("train-config-is-folder", TRAIN, lambda s, t: ["--config", str(t)], "cannot read the config: is a folder"),
    Case(
        "train-config-fifo",
        TRAIN,
        lambda s, t: ["--config", str(fifo(t / "run.yaml"))],
        "cannot read the config: is a FIFO (named pipe)",
    ),
    # ---- class 3: budgets before work: one strict reader, before anything is merged
    Case(
        "train-config-nested-aliases",
        TRAIN,
        lambda s, t: _config(t, _LAUGHS),
        "found the alias *a0; aliases are not allowed in run configs",
        isolated=True,
    ),
    Case(
        "train-config-too-large",
        TRAIN,
        lambda s, t: _config(t, "# padding\n" * 200_000),
        "bytes is too large for a run config",
    ),
    # ---- class 4: the run folder is claimed, and never one holding files train.py did not write
    Case(
        "train-output-dir-holds-user-files",
        TRAIN,
        lambda s, t: ["--set", f"run.output_dir={_user_folder(t)}"],
        "mine: run.output_dir exists and is not a run of train.py",
    ),
    Case(
        "train-output-dir-is-a-file",
        TRAIN,
        lambda s, t: ["--set", f"run.output_dir={text_file(t / 'notes.txt')}"],
        "notes.txt: run.output_dir exists and is not a run of train.py",
    ),
    Case(
        "train-while-another-writes",
        TRAIN,
        lambda s, t: ["--set", f"run.output_dir={t / 'run'}", "pretrain.enabled=false"],
        "run: another run (pid",
        held=lambda s, t: t / "run",
    ),
    Case(
        "train-resume-planted-pickle",
        TRAIN,
        lambda s, t: ["--resume", str(_planted_run(s, t))],
        "did not write; refusing",
    ),
    Case("train-resume-damaged-only", TRAIN, lambda s, t: ["--resume", str(s.run)], "is damaged"),
    Case(
        "train-resume-stray-file-in-checkpoints",
        TRAIN,
        lambda s, t: ["--resume", str(_stray_file_run(s, t))],
        "step_00000001 is damaged",
    ),
    Case("train-resume-nothing", TRAIN, lambda s, t: ["--resume", str(t)], "no checkpoint"),
    # ---- class 6: positive checks: a key twice, or one the schema does not know, is refused, never merged
    Case(
        "train-config-duplicate-section",
        TRAIN,
        lambda s, t: _config(t, "schedule:\n  epochs: 3\nrun:\n  seed: 1\nschedule:\n  epochs: 1\n"),
        "found the key 'schedule' twice in one mapping",
    ),
    Case(
        "train-config-unknown-section",
        TRAIN,
        lambda s, t: _config(t, "optimiser:\n  lr: 0.1\n"),
        "run.yaml: optimiser: unknown key (valid: base, data, model,",
    ),
]


@pytest.mark.parametrize("case", params(CASES))
def test_bad_input_is_one_line_and_changes_nothing(case, sandbox, tmp_path, capsys):
    check_case(case, sandbox, tmp_path, capsys)


def _checkpoint(run: Path, step: int, damaged: bool = False) -> Path:
    folder = run / "checkpoints" / f"step_{step:08d}"
    folder.mkdir(parents=True)
    (folder / "trainer_state.json").write_text(json.dumps({"step": step}))
    digest = hashlib.sha256((folder / "trainer_state.json").read_bytes()).hexdigest()
    (folder / MANIFEST).write_text(json.dumps({"files": {"trainer_state.json": digest}}))
    if damaged:
        (folder / "trainer_state.json").write_text(json.dumps({"step": step + 1}))
    return folder


def test_resume_falls_back_to_the_previous_complete_checkpoint_saying_so(tmp_path):
    previous = _checkpoint(tmp_path, 10)
    _checkpoint(tmp_path, 20, damaged=True)
    said = []
    assert find_checkpoint(tmp_path, say=said.append) == previous
    assert said == [
        f"train.py: checkpoint {tmp_path / 'checkpoints' / 'step_00000020'} is damaged (trainer_state.json differs "
        f"from what was written); resuming from the previous checkpoint {previous}"
    ]
