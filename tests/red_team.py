"""The red-team harness: hostile and careless inputs run against a command, every promise of the boundary checked.

A `Case` names a command, builds its argv in a sandbox, and says which exit status and which text the one stderr
line must hold. `check_case` runs it and asserts: the status; exactly one stderr line holding the text (for
``posetrack-data check``, status 1, the problem on stdout instead); no traceback; every file, folder, symlink
and special node that existed before unchanged (contents, link targets, kinds); nothing new anywhere, inside
the output folder or out of it, since every case is a refusal; and that no pickle payload ran.

Time and memory are bounded for every case. An isolated case runs the command in a fresh interpreter under an
address-space limit and a timeout: what users run, at the cost of importing the command afresh (about 0.3 s for
posetrack-eval, seconds for the torch commands). The others run in this process under the same kind of bounds
(``RLIMIT_AS`` lowered to what the process holds plus a margin, and a ``SIGALRM`` timer), so an allocation that
would blow up fails and a read that would block is interrupted, failing the case instead of the suite.
"""

import contextlib
import dataclasses
import hashlib
import importlib
import importlib.util
import json
import os
import pickle
import resource
import signal
import stat
import struct
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Bounds of one case: far above what any refusal needs, far below what a hang or a blow-up takes.
TIMEOUT_S = 120
IN_PROCESS_MARGIN = 3 * 2**30  # bytes of address space a case may add to this process's
ISOLATED_LIMIT = 8 * 2**30  # bytes of address space of a fresh interpreter (torch alone maps ~3 GiB)
# Progress bars the commands draw on stderr besides their one error line.
_PROGRESS = ("Checking", "Synthesising")


@dataclasses.dataclass(frozen=True)
class Sandbox:
    """What the cases attack; built once per test module, never changed by a case."""

    root: Path  # a synthetic PoseTrack18 dataset (2 videos of 3 frames, 96x80)
    model: Path | None = None  # a tiny VREMD model folder
    run: Path | None = None  # a train.py run directory with one checkpoint (contents not read before refusal)

    @property
    def base(self) -> Path:
        return self.root.parent

    @property
    def frames(self) -> Path:
        return self.root / "images" / "val"

    @property
    def sequence(self) -> Path:
        return self.frames / "000002_mpii_test"

    @property
    def gt(self) -> Path:
        return self.root / "annotations" / "val"

    @property
    def detections(self) -> Path:
        return self.root / "person_detections" / "val.json"

    @property
    def preds(self) -> Path:
        """Per-sequence predictions of the val split: the ground truth itself."""
        return self.base / "preds"


def make_sandbox(base: Path, *, model: bool = False, run: bool = False) -> Sandbox:
    """A dataset, its val GT copied as predictions, and on request a tiny model and a run directory."""
    from posetrack_data.synthetic import generate_dataset

    root = generate_dataset(
        base / "data", num_videos=2, num_frames=3, image_size=(96, 80), seed=1, val_fraction=0.5, progress=False
    )
    _copy_tree(root / "annotations" / "val", base / "preds")
    sandbox = Sandbox(root)
    if model:
        import torch

        from vremd_models import VREMD, VREMDConfig

        torch.manual_seed(0)
        VREMD(VREMDConfig.from_preset("vremd-tiny")).save_pretrained(base / "model")
        sandbox = dataclasses.replace(sandbox, model=base / "model")
    if run:
        from training.checkpoints import MANIFEST

        checkpoint = base / "run" / "checkpoints" / "step_00000001"
        checkpoint.mkdir(parents=True)
        (base / "run" / "config.yaml").write_text("{}\n")
        for name in ("model.safetensors", "optimizer.safetensors", "optimizer.json", "scheduler.json", "rng_0.json"):
            (checkpoint / name).write_text("{}")
        (checkpoint / "trainer_state.json").write_text(json.dumps({"step": 1}))
        (checkpoint / MANIFEST).write_text(json.dumps({"files": {"trainer_state.json": "0" * 64}}))
        sandbox = dataclasses.replace(sandbox, run=base / "run")
    return sandbox


@dataclasses.dataclass(frozen=True)
class Case:
    """One hostile input.

    Args:
        id: The test id.
        command: ``module:function`` of the entry point (``train.py:main`` for the script).
        argv: Builds the arguments from the sandbox and the case's own empty folder (the working directory).
        says: Text the one stderr line must hold (for status 1 of ``check``: a stdout line).
        status: The exit status: 2 bad input, 1 problems found by ``posetrack-data check``.
        isolated: Run in a fresh interpreter rather than in this process.
        held: The folder another command holds (`posetrack_data.outputs.claim`) while this one runs.
    """

    id: str
    command: str
    argv: Callable[[Sandbox, Path], list[str]]
    says: str
    status: int = 2
    isolated: bool = False
    held: Callable[[Sandbox, Path], Path] | None = None


@dataclasses.dataclass(frozen=True)
class Call:
    """A hostile input to a Python entry point, which must raise `raises` with `says` in its message.

    Args:
        id: The test id.
        call: Builds the inputs from the sandbox and the case's own empty folder; returns the call to make.
        raises: The exception type.
        says: Text the message must hold.
        held: The folder another command holds while the call runs (see `Case`).
    """

    id: str
    call: Callable[[Sandbox, Path], Callable[[], Any]]
    raises: type[Exception]
    says: str
    held: Callable[[Sandbox, Path], Path] | None = None


def params(cases: list[Case] | list[Call]) -> list[Any]:
    """The cases as pytest parameters, with their ids (each id once)."""
    ids = [case.id for case in cases]
    assert len(set(ids)) == len(ids), "case ids repeat"
    return [pytest.param(case, id=case.id) for case in cases]


def check_case(case: Case, sandbox: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Run `case` and assert every promise (see the module docstring)."""
    argv = case.argv(sandbox, tmp_path)
    with _held(case.held, sandbox, tmp_path):
        before = snapshot(sandbox.base, tmp_path)
        if case.isolated:
            status, out, err = _run_isolated(case.command, argv, tmp_path)
        else:
            capsys.readouterr()
            with _working_directory(tmp_path), bounded():
                try:
                    status = entry_point(case.command)(argv)
                except SystemExit as exit_:  # a usage error, as argparse reports it
                    status = exit_.code
            out, err = capsys.readouterr()
        after = snapshot(sandbox.base, tmp_path)
    lines = [line for line in err.splitlines() if line.strip() and not line.lstrip("\r").startswith(_PROGRESS)]
    assert status == case.status, err
    assert "Traceback" not in err
    if case.status == 2:
        assert len(lines) == 1, err
        assert case.says in lines[0], lines[0]
    else:
        assert case.says in out, out
    assert after == before
    assert not (tmp_path / "MARKER").exists()  # no pickle payload ever ran


def check_call(case: Call, sandbox: Sandbox, tmp_path: Path) -> None:
    """Make `case`'s call under the same bounds; it must raise, and change nothing."""
    call = case.call(sandbox, tmp_path)
    with _held(case.held, sandbox, tmp_path):
        before = snapshot(sandbox.base, tmp_path)
        with bounded(), pytest.raises(case.raises) as raised:
            call()
        after = snapshot(sandbox.base, tmp_path)
    assert case.says in str(raised.value)
    assert after == before


def _held(folder: Callable[[Sandbox, Path], Path] | None, sandbox: Sandbox, tmp_path: Path):
    """Another command's claim on the folder `folder` names, or nothing."""
    if folder is None:
        return contextlib.nullcontext()
    from posetrack_data.outputs import claim

    return claim(folder(sandbox, tmp_path), "another run")


def entry_point(command: str) -> Callable[[list[str]], int]:
    """The function ``module:function`` names; ``train.py:main`` loads the script."""
    module_name, function = command.split(":")
    if module_name.endswith(".py"):
        spec = importlib.util.spec_from_file_location(f"red_team_{module_name[:-3]}", ROOT / module_name)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    else:
        module = importlib.import_module(module_name)
    return getattr(module, function)


def snapshot(*roots: Path) -> dict[str, tuple]:
    """Every entry under `roots`, symlinks not followed: a file's SHA-256, a link's target, any other node's kind."""
    entries: dict[str, tuple] = {}
    for root in roots:
        for folder, folders, files in os.walk(root):
            for name in (*folders, *files):
                path = Path(folder, name)
                mode = path.lstat().st_mode
                if stat.S_ISREG(mode):
                    entries[str(path)] = ("file", hashlib.sha256(path.read_bytes()).hexdigest())
                elif stat.S_ISLNK(mode):
                    entries[str(path)] = ("link", os.readlink(path))
                else:
                    entries[str(path)] = ("node", stat.S_IFMT(mode))
    return entries


class CaseTimeout(BaseException):
    """A case ran past `TIMEOUT_S` (a BaseException, so that no boundary turns it into an error line)."""


@contextlib.contextmanager
def bounded(seconds: float = TIMEOUT_S, margin: int = IN_PROCESS_MARGIN) -> Iterator[None]:
    """Limit this process's address space to what it holds plus `margin`, and interrupt it after `seconds`."""

    def expire(signum: int, frame: Any) -> None:
        raise CaseTimeout(f"still running after {seconds} s")

    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = _address_space() + margin
    resource.setrlimit(resource.RLIMIT_AS, (limit if hard == resource.RLIM_INFINITY else min(limit, hard), hard))
    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def _address_space() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize:"))


def _limit_address_space() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ISOLATED_LIMIT, ISOLATED_LIMIT))


def _run_isolated(command: str, argv: list[str], cwd: Path) -> tuple[int, str, str]:
    module_name, function = command.split(":")
    if module_name.endswith(".py"):
        launch = [sys.executable, str(ROOT / module_name)]
    else:
        launch = [sys.executable, "-c", f"import sys; from {module_name} import {function} as f; sys.exit(f())"]
    path = os.pathsep.join(filter(None, [os.environ.get("PYTHONPATH"), str(ROOT)]))  # train.py imports training/
    env = os.environ | {"OMP_NUM_THREADS": "1", "PYTHONPATH": path}
    try:
        result = subprocess.run(
            [*launch, *argv],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            preexec_fn=_limit_address_space,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"{command} {argv}: still running after {TIMEOUT_S} s")
    return result.returncode, result.stdout, result.stderr


@contextlib.contextmanager
def _working_directory(path: Path) -> Iterator[None]:
    previous = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)


# ------------------------------------------------------------------------------------------ hostile inputs


class _Flatten:
    """Unpickling this would create the marker file: the payload that must never run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def payload(path: Path, marker: Path) -> Path:
    """A pickle whose unpickling creates `marker`."""
    path.write_bytes(pickle.dumps(_Flatten(marker), protocol=2))
    return path


def text_file(path: Path, text: str = "precious") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def raw_file(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def fifo(path: Path) -> Path:
    """A named pipe: a reader that opens it without checking waits forever for a writer."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(path)
    return path


def dangling(path: Path) -> Path:
    """A symlink to nothing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(path.with_name(f"{path.name}.missing"))
    return path


def deep_json(path: Path) -> Path:
    path.write_text("[" * 100_000 + "]" * 100_000)
    return path


def bomb_png(path: Path, width: int = 20_000, height: int = 20_000) -> Path:
    """A PNG of a few dozen bytes whose header claims `width` x `height` pixels (no pixel data)."""
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return raw_file(path, b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b""))


def edit_json(source: Path, target: Path, edit: Callable[[Any], None]) -> Path:
    content = json.loads(source.read_text())
    edit(content)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(content))
    return target


def set_field(path: str, value: Any) -> Callable[[Any], None]:
    """An edit setting the dotted `path` (``images.0.id``) of a JSON document to `value`."""

    def edit(content: Any) -> None:
        *parents, leaf = path.split(".")
        for key in parents:
            content = content[int(key)] if key.isdigit() else content[key]
        content[int(leaf) if leaf.isdigit() else leaf] = value

    return edit


def dataset_with(s: Sandbox, tmp: Path, edit: Callable[[Any], None]) -> Path:
    """A copy of the sandbox dataset (val split) whose annotation files went through `edit`."""
    root = tmp / "data"
    _copy_tree(s.root / "images", root / "images")
    for path in sorted(s.gt.glob("*.json")):
        edit_json(path, root / "annotations" / "val" / path.name, edit)
    return root


def model_with(s: Sandbox, tmp: Path, mutate: Callable[[Path], Any]) -> Path:
    """A copy of the sandbox model folder changed by `mutate`."""
    model = tmp / "model"
    _copy_tree(s.model, model)
    mutate(model)
    return model


def truncate(name: str, keep: int) -> Callable[[Path], None]:
    return lambda m: (m / name).write_bytes((m / name).read_bytes()[:keep])


def header_claims(size: int) -> Callable[[Path], None]:
    return lambda m: (m / "model.safetensors").write_bytes(struct.pack("<Q", size) + b"{}")


def plant(name: str, content: str) -> Callable[[Path], None]:
    return lambda m: (m / name).write_text(content)


def config_set(key: str, value: Any) -> Callable[[Path], None]:
    return lambda m: edit_json(m / "config.json", m / "config.json", set_field(key, value))


def _copy_tree(source: Path, target: Path) -> None:
    import shutil

    shutil.copytree(source, target, symlinks=True)
