"""The one output policy of every command, and the CLI boundary that turns bad input into one line.

Promises, checked before anything is written:

- an output never resolves to an input, or to anything inside an input folder (symlinks resolved);
- a name taken from an input (a sequence or frame name) stays inside the output folder it is joined to:
  ``..``, absolute names and symlinks that lead out are refused;
- an existing file the command did not write is never replaced without ``--overwrite``;
- files appear atomically (a temporary file in the same folder, then ``os.replace``).

At the boundary, `run_guarded` prints one line and returns 2 for a bad input (the command's own error
types, `OutputError`, and the recursion, overflow, decode and OS errors hostile files provoke), 130 for
Ctrl-C; never a traceback.

posetrack-eval runs without posetrack-data, so it keeps a copy of this file as ``posetrack_eval/_outputs.py``;
a test pins the two byte for byte. Edit both together.
"""

import hashlib
import os
import sys
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "BAD_INPUT",
    "INTERRUPTED",
    "OutputError",
    "OutputPolicy",
    "atomic_write_bytes",
    "atomic_write_text",
    "file_sha256",
    "run_guarded",
]

BAD_INPUT = 2
INTERRUPTED = 130


class OutputError(ValueError):
    """An output path the policy refuses; the message names the path and the reason."""


@dataclass(frozen=True)
class OutputPolicy:
    """Where a command may write, given what it reads.

    Args:
        inputs: Every file and folder the command reads, resolved (see `for_inputs`).
        overwrite: Replace existing files the command did not write (``--overwrite``).
    """

    inputs: tuple[Path, ...]
    overwrite: bool = False

    @classmethod
    def for_inputs(cls, inputs: Iterable[str | Path | None], *, overwrite: bool = False) -> "OutputPolicy":
        """A policy protecting `inputs` (None entries, e.g. unset options, are skipped)."""
        return cls(tuple(Path(p).resolve() for p in inputs if p is not None), overwrite)

    def target(self, path: str | Path, *, ours: Callable[[Path], bool] | None = None) -> Path:
        """Check one output file or folder; returns it unchanged.

        Args:
            path: The output as given.
            ours: Tells whether an existing file was written by this command (it may then be replaced
                without ``--overwrite``); None means nothing existing is ours.

        Raises:
            OutputError: `path` is an input or inside an input folder, or an existing file that is not
                ours and ``overwrite`` is off.
        """
        path = Path(path)
        resolved = path.resolve()
        for source in self.inputs:
            if resolved == source:
                raise OutputError(f"{path}: output would replace the input {source}")
            if resolved.is_relative_to(source) and source.is_dir():
                raise OutputError(f"{path}: output would be written inside the input folder {source}")
        if path.is_file() and not self.overwrite and not (ours is not None and ours(path)):
            raise OutputError(f"{path}: exists and was not written by this command (--overwrite replaces it)")
        return path

    def inside(self, folder: str | Path, *names: str, ours: Callable[[Path], bool] | None = None) -> Path:
        """``folder / names...`` for names taken from inputs, refused when it would leave `folder`.

        Raises:
            OutputError: a name is empty, absolute or ``..``, a symlink leads out of `folder`, or the
                result breaks a rule of `target`.
        """
        folder = Path(folder)
        for name in names:
            parts = Path(name).parts
            if not name or Path(name).is_absolute() or any(part in ("..", ".") for part in parts):
                raise OutputError(f"{folder}: the name {name!r} (from an input) would leave the output folder")
        path = folder.joinpath(*names)
        if not path.resolve().is_relative_to(folder.resolve()):
            raise OutputError(f"{path}: leads out of the output folder {folder} (symlink)")
        return self.target(path, ours=ours)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write `data` to `path` through a temporary file in the same folder and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """`atomic_write_bytes` of UTF-8 text."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of a file, read in 1 MiB blocks (manifests record what a command wrote)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def run_guarded(prog: str, command: Callable[[], int], input_errors: tuple[type[Exception], ...] = ()) -> int:
    """Run a CLI body: bad input is one stderr line and status 2, Ctrl-C one line and 130.

    Args:
        prog: The command name that starts the line.
        command: The body; returns the exit status.
        input_errors: The command's own bad-input error types (their message names file and field).
    """
    try:
        return command()
    except KeyboardInterrupt:
        sys.stderr.write(f"{prog}: interrupted\n")
        return INTERRUPTED
    except (*input_errors, OutputError, RecursionError, OverflowError, UnicodeError, MemoryError) as error:
        sys.stderr.write(f"{prog}: error: {_one_line(error)}\n")
        return BAD_INPUT
    except OSError as error:
        where = f"{error.filename}: " if error.filename else ""
        sys.stderr.write(f"{prog}: error: {where}{error.strerror or _one_line(error)}\n")
        return BAD_INPUT


def _one_line(error: BaseException) -> str:
    if isinstance(error, RecursionError):
        return "input nested too deeply (recursion limit)"
    if isinstance(error, MemoryError):
        return "input too large to hold in memory"
    text = " ".join(str(error).split())
    return text or type(error).__name__
