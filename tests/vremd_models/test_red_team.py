"""Hostile and careless inputs to `vremd-convert-vitpose` and `VREMD.from_pretrained` (harness: `tests/red_team.py`)."""

import functools
import json
from pathlib import Path

import pytest
import torch

from tests.red_team import (
    Call,
    Case,
    Sandbox,
    check_call,
    check_case,
    config_set,
    dangling,
    deep_json,
    fifo,
    header_claims,
    make_sandbox,
    model_with,
    params,
    payload,
    raw_file,
)
from tests.vremd_models.vitpose_checkpoints import mmpose_state_dict
from vremd_models import VREMD
from vremd_models.weights import CheckpointMismatchError
from vremd_models.weights.convert import convert_vitpose

CONVERT = "vremd_models.cli:convert_vitpose"


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory) -> Sandbox:
    return make_sandbox(tmp_path_factory.mktemp("red-team"), model=True)


def _vitpose(tmp: Path) -> Path:
    """A tiny mmpose ViTPose checkpoint (width 32, 2 blocks: pass --num-heads 2)."""
    torch.save({"state_dict": mmpose_state_dict()}, tmp / "vitpose.pth")
    return tmp / "vitpose.pth"


def _convert(source: Path | str, out: Path, *extra: str) -> list[str]:
    return [str(source), str(out), "--preset", "vremd-tiny", *extra]


CASES = [
    # ---- class 1: one boundary, options checked when parsed
    Case(
        "convert-into-existing-folder",
        CONVERT,
        lambda s, t: _convert(s.model / "model.safetensors", s.root),
        "exists and is not empty",
    ),
    Case(
        "convert-truncated-safetensors",
        CONVERT,
        lambda s, t: _convert(raw_file(t / "v.safetensors", b"\x10\x00"), t / "o"),
        "safetensors file",
    ),
    Case(
        "convert-pickle-payload",
        CONVERT,
        lambda s, t: _convert(payload(t / "v.pth", t / "MARKER"), t / "o"),
        "weights_only",
    ),
    Case(
        "convert-num-heads-zero",
        CONVERT,
        lambda s, t: _convert(t / "v.pth", t / "o", "--num-heads", "0"),
        "argument --num-heads: expected a positive integer, got '0'",
    ),
    Case(
        "convert-grid-zero",
        CONVERT,
        lambda s, t: _convert(t / "v.pth", t / "o", "--source-grid", "0x12"),
        "expected HxW of positive integers",
    ),
    Case("convert-unknown-preset", CONVERT, lambda s, t: [str(t / "v.pth"), str(t / "o"), "--preset", "x"], "invalid"),
    Case(
        "convert-deep-config",
        CONVERT,
        lambda s, t: _convert(_vitpose(t), t / "o", "--config", str(deep_json(t / "c.json"))),
        "JSON nested too deeply",
    ),
    # ---- class 2: inputs by type, outputs outside the inputs, hub ids only where they look like one
    Case(
        "convert-into-its-source-folder",
        CONVERT,
        lambda s, t: _convert(s.model, s.model / "converted"),
        "would be written inside the input folder",
    ),
    Case("convert-onto-its-source", CONVERT, lambda s, t: _convert(s.model, s.model), "would replace the input"),
    Case(
        "convert-output-dangling-symlink",
        CONVERT,
        lambda s, t: _convert(t / "v.pth", dangling(t / "o")),
        "exists and is a symlink, not a folder",
    ),
    Case(
        "convert-fifo-checkpoint",
        CONVERT,
        lambda s, t: _convert(fifo(t / "v.pth"), t / "o"),
        "v.pth: is a FIFO (named pipe), expected a regular file",
    ),
    Case(
        "convert-fifo-safetensors",
        CONVERT,
        lambda s, t: _convert(fifo(t / "v.safetensors"), t / "o"),
        "cannot read (is a FIFO (named pipe)",
    ),
    Case(
        "convert-fifo-config",
        CONVERT,
        lambda s, t: _convert(_vitpose(t), t / "o", "--config", str(fifo(t / "c.json"))),
        "c.json: cannot read (is a FIFO (named pipe)",
    ),
    Case(
        "convert-uncached-hub-id",
        CONVERT,
        lambda s, t: _convert("typo/model", t / "o"),
        "typo/model: no such file or folder, and as a hub id not cached",
    ),
    Case(
        "convert-missing-path",
        CONVERT,
        lambda s, t: _convert("./typo/model", t / "o"),
        "no such file or folder (a path, so not looked up on the hub)",
    ),
    # ---- class 4: the output is claimed before it is written
    Case(
        "convert-while-another-writes",
        CONVERT,
        lambda s, t: _convert(_vitpose(t), t / "o", "--num-heads", "2", "--source-grid", "4x3"),
        "another run (pid",
        held=lambda s, t: t / "o",
    ),
]


@pytest.mark.parametrize("case", params(CASES))
def test_bad_input_is_one_line_and_changes_nothing(case, sandbox, tmp_path, capsys):
    check_case(case, sandbox, tmp_path, capsys)


def _load(mutate):
    return lambda s, t: functools.partial(VREMD.from_pretrained, model_with(s, t, mutate))


def _replace_with_fifo(name: str):
    def replace(model: Path) -> None:
        (model / name).unlink()
        fifo(model / name)

    return replace


def _pickle_only(s: Sandbox, tmp: Path):
    (tmp / "m").mkdir()
    (tmp / "m" / "config.json").write_text((s.model / "config.json").read_text())
    payload(tmp / "m" / "pytorch_model.bin", tmp / "MARKER")
    return functools.partial(VREMD.from_pretrained, tmp / "m")


CALLS = [
    Call(
        "from-pretrained-header-2-60",
        _load(header_claims(2**60)),
        ValueError,
        "model.safetensors: safetensors header claims",
    ),
    # every field in range, but 65536 blocks would allocate ~29 GB before a weight is read
    Call(
        "from-pretrained-depth-65536",
        _load(config_set("backbone_depth", 65536)),
        ValueError,
        "config.json asks for 65541 transformer blocks, but the file holds only",
    ),
    Call(
        "from-pretrained-wider-than-its-weights",
        _load(config_set("hidden_dim", 4096)),
        CheckpointMismatchError,
        "shape mismatch(es)",
    ),
    Call(
        "from-pretrained-fifo-config",
        _load(_replace_with_fifo("config.json")),
        OSError,
        "is a FIFO (named pipe), expected a regular file",
    ),
    Call(
        "from-pretrained-fifo-weights",
        _load(_replace_with_fifo("model.safetensors")),
        OSError,
        "is a FIFO (named pipe), expected a regular file",
    ),
    Call(
        "from-pretrained-config-list",
        _load(lambda m: (m / "config.json").write_text(json.dumps([1, 2]))),
        ValueError,
        "expected a JSON object",
    ),
    Call("from-pretrained-pickle-only", _pickle_only, FileNotFoundError, "refuses pickle"),
    Call(
        "from-pretrained-uncached-hub-id",
        lambda s, t: functools.partial(VREMD.from_pretrained, "typo/model"),
        FileNotFoundError,
        "typo/model: no such file or folder, and as a hub id not cached",
    ),
    Call(
        "convert-num-heads-zero",
        lambda s, t: functools.partial(convert_vitpose, _vitpose(t), preset="vremd-tiny", num_heads=0),
        ValueError,
        "backbone_num_heads: 0 heads do not divide the width 32",
    ),
]


@pytest.mark.parametrize("case", params(CALLS))
def test_python_entry_points_refuse_in_one_error_and_change_nothing(case, sandbox, tmp_path):
    check_call(case, sandbox, tmp_path)
