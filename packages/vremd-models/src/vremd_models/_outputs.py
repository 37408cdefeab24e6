"""The one boundary of every command: inputs opened by type, outputs claimed and checked, errors as one line.

Inputs: `input_file` and `input_folder` say what a path is before anything opens it (a FIFO given as a file
would block its reader forever; a device or a folder is no input file).

Outputs, checked by `OutputPolicy` before anything is written:

- an output never resolves to an input, or to anything inside an input folder (symlinks resolved);
- a name taken from an input (a sequence or frame name) stays inside the output folder it is joined to:
  ``..``, absolute names and symlinks that lead out are refused;
- anything already at an output path (a file, a folder, a symlink, dangling or not, a device node, a FIFO) is
  never replaced unless it is a regular file the command recorded as its own, or ``--overwrite`` says so;
- files appear atomically (a temporary file in the same folder, then ``os.replace``); a folder is written
  into a `staging` folder beside it and moved into place by `commit_folder`, so ``--overwrite`` replaces at
  commit time and never deletes first, and the staging folder is removed on every exit path;
- a command `claim`s its output folder before writing, so a second command writing there at the same time is
  refused in one line.

At the boundary, `CommandParser` reports a bad option in one line (status 2), and `run_guarded` turns an
exception into one stderr line: status 2 for a bad input (the command's own error types, `OutputError`,
``ValueError``, the OS errors and the recursion, overflow, decode and memory errors hostile files provoke), 130
for Ctrl-C, and 1 for anything else, which is a bug in the command and says so; ``VREMD_DEBUG=1`` shows the
traceback instead.

posetrack-eval and vremd-models run without posetrack-data, so they keep copies of this file
(``posetrack_eval/_outputs.py``, ``vremd_models/_outputs.py``); a test pins the three byte for byte. Edit them
together.
"""

import argparse
import contextlib
import errno
import hashlib
import os
import shutil
import stat
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

__all__ = [
    "BAD_INPUT",
    "DEBUG_VARIABLE",
    "INTERNAL_ERROR",
    "INTERRUPTED",
    "CommandParser",
    "OutputError",
    "OutputPolicy",
    "atomic_write_bytes",
    "atomic_write_text",
    "claim",
    "commit_folder",
    "file_sha256",
    "input_file",
    "input_folder",
    "run_guarded",
    "staging",
]

BAD_INPUT = 2
INTERNAL_ERROR = 1
INTERRUPTED = 130
# Set to 1 to see the traceback behind an error line (bug reports).
DEBUG_VARIABLE = "VREMD_DEBUG"
# An error line longer than this is cut: a message quoting a hostile value stays readable.
_MAX_LINE = 600


class OutputError(ValueError):
    """An output path the policy refuses; the message names the path and the reason."""


# ------------------------------------------------------------------------------------------------ inputs


def input_file(path: str | Path) -> Path:
    """`path` if it is a regular file (a symlink to one included), found out without opening it.

    Raises:
        FileNotFoundError: nothing is there.
        OSError: it is something else (a folder, a FIFO, a device, a socket); the error names the path.
    """
    return _require_kind(Path(path), stat.S_ISREG, "a regular file")


def input_folder(path: str | Path) -> Path:
    """`path` if it is a folder (a symlink to one included).

    Raises:
        FileNotFoundError: nothing is there.
        NotADirectoryError: it is something else; the error names the path and what it is.
    """
    return _require_kind(Path(path), stat.S_ISDIR, "a folder")


def _require_kind(path: Path, is_kind: Callable[[int], bool], expected: str) -> Path:
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise FileNotFoundError(errno.ENOENT, "no such file or folder", str(path)) from None
    if not is_kind(mode):
        error = NotADirectoryError if expected == "a folder" else IsADirectoryError if stat.S_ISDIR(mode) else OSError
        raise error(errno.EINVAL, f"is {_kind(mode)}, expected {expected}", str(path))
    return path


def _kind(mode: int) -> str:
    kinds = {
        stat.S_ISDIR: "a folder",
        stat.S_ISFIFO: "a FIFO (named pipe)",
        stat.S_ISCHR: "a character device",
        stat.S_ISBLK: "a block device",
        stat.S_ISSOCK: "a socket",
        stat.S_ISLNK: "a symlink",
    }
    return next((name for test, name in kinds.items() if test(mode)), "a regular file")


# ------------------------------------------------------------------------------------------------ outputs


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

    def target(self, path: str | Path, *, ours: Callable[[Path], bool] | None = None, folder: bool = False) -> Path:
        """Check one output file, or with `folder` one output folder; returns it unchanged.

        Args:
            path: The output as given.
            ours: Tells whether an existing regular file was written by this command (it may then be replaced
                without ``--overwrite``); None means nothing existing is ours.
            folder: `path` is a folder the command writes into: an existing folder is fine (each file in it is
                checked on its own), anything else there is refused.

        Raises:
            OutputError: `path` is an input or inside an input folder; or something that is not ours is there
                and ``overwrite`` is off; or a folder is where a file goes, or the other way round.
        """
        path = Path(path)
        resolved = path.resolve()
        for source in self.inputs:
            if resolved == source:
                raise OutputError(f"{path}: output would replace the input {source}")
            if resolved.is_relative_to(source) and source.is_dir():
                raise OutputError(f"{path}: output would be written inside the input folder {source}")
        if not os.path.lexists(path):
            return path
        mode = path.lstat().st_mode
        if folder:
            if not path.is_dir():
                raise OutputError(f"{path}: exists and is {_kind(mode)}, not a folder")
        elif stat.S_ISDIR(mode):
            raise OutputError(f"{path}: is a folder; expected a file name")
        elif not self.overwrite and not (stat.S_ISREG(mode) and ours is not None and ours(path)):
            what = "" if stat.S_ISREG(mode) else f" ({_kind(mode)})"
            raise OutputError(f"{path}: exists{what} and was not written by this command (--overwrite replaces it)")
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


@contextlib.contextmanager
def claim(folder: str | Path, command: str) -> Iterator[Path]:
    """Hold `folder` for this command while the block runs; a second claim meanwhile is refused.

    The claim is an exclusive ``flock`` on ``.<name>.lock`` beside the folder (so the folder itself may be
    emptied or replaced by `commit_folder` under it), removed when the block ends. The kernel drops it when the
    process dies, so a killed run leaves no claim behind. A claim is per open file: claiming a folder the same
    process already holds is refused too.

    Raises:
        OutputError: another command holds `folder` (the message names it).
    """
    import fcntl  # POSIX only: imported here so that the readers and scorers work everywhere

    folder = Path(folder)
    lock = folder.absolute().parent / f".{folder.absolute().name}.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 200).decode(errors="replace").strip() or "another command"
            os.close(fd)
            raise OutputError(
                f"{folder}: {holder} is writing here; wait for it to finish or choose another folder"
            ) from None
        # the holder before us may have removed the file between our open and our lock: lock the new one
        held, named = os.fstat(fd), _stat_or_none(lock)
        if named is not None and (held.st_dev, held.st_ino) == (named.st_dev, named.st_ino):
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{command} (pid {os.getpid()})".encode())
        yield folder
    finally:
        lock.unlink(missing_ok=True)
        os.close(fd)


def _stat_or_none(path: Path) -> os.stat_result | None:
    try:
        return path.lstat()
    except FileNotFoundError:
        return None


@contextlib.contextmanager
def staging(final: str | Path) -> Iterator[Path]:
    """A new hidden folder beside `final` to write its contents into, removed on every exit path.

    `commit_folder` moves what was written into `final`; whatever is left (an error, Ctrl-C) goes with the folder.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=f".{final.name}.staging-", dir=final.parent))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def commit_folder(staged: str | Path, final: str | Path) -> Path:
    """Move everything in `staged` into `final`: the whole folder when `final` is missing or empty, else file by file.

    Each file replaces its namesake by one rename, so a file in `final` is either the old or the new one,
    never a mixture, and nothing is deleted first. Files in `final` that `staged` lacks stay.
    """
    staged, final = Path(staged), Path(final)
    os.chmod(staged, 0o777 & ~_umask())  # mkdtemp made it private
    if not os.path.lexists(final) or (final.is_dir() and not final.is_symlink() and not any(final.iterdir())):
        os.replace(staged, final)
        return final
    for source in sorted(staged.rglob("*")):
        if source.is_dir():
            continue
        destination = final / source.relative_to(staged)
        destination.parent.mkdir(parents=True, exist_ok=True)
        os.replace(source, destination)
    return final


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
    with open(input_file(path), "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# ----------------------------------------------------------------------------------------------- boundary


class CommandParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` whose usage errors are one stderr line too (status 2), pointing to ``--help``."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {' '.join(message.split())} (--help lists the options)\n")
        raise SystemExit(BAD_INPUT)


def run_guarded(prog: str, command: Callable[[], int], input_errors: tuple[type[Exception], ...] = ()) -> int:
    """Run a CLI body; whatever it raises becomes one stderr line and an exit status, never a traceback.

    Bad input is status 2, Ctrl-C 130, and any other exception 1: a bug, and the line says so and how to see
    the traceback (``VREMD_DEBUG=1``, which re-raises everything caught here instead).

    Args:
        prog: The command name that starts the line.
        command: The body; returns the exit status.
        input_errors: The command's own bad-input error types (their message names file and field).
    """
    try:
        return command()
    except KeyboardInterrupt:
        if os.environ.get(DEBUG_VARIABLE) == "1":
            raise
        sys.stderr.write(f"{prog}: interrupted\n")
        return INTERRUPTED
    except Exception as error:
        if os.environ.get(DEBUG_VARIABLE) == "1":
            raise
        bad_input = (*input_errors, OutputError, ValueError, OSError, RecursionError, OverflowError, MemoryError)
        if isinstance(error, bad_input):
            sys.stderr.write(f"{prog}: error: {_one_line(error)}\n")
            return BAD_INPUT
        sys.stderr.write(
            f"{prog}: internal error: {type(error).__name__}: {_one_line(error)} (a bug, not your input: "
            f"please report it with the traceback that {DEBUG_VARIABLE}=1 shows)\n"
        )
        return INTERNAL_ERROR


def _one_line(error: BaseException) -> str:
    if isinstance(error, RecursionError):
        return "input nested too deeply (recursion limit)"
    if isinstance(error, MemoryError):
        return "input too large to hold in memory"
    if isinstance(error, OSError) and error.strerror:
        text = f"{error.filename}: {error.strerror}" if error.filename else error.strerror
    else:
        text = str(error)
    text = " ".join(text.split()) or type(error).__name__
    return text if len(text) <= _MAX_LINE else f"{text[: _MAX_LINE - 3]}..."
