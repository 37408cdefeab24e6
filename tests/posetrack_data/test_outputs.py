import os
import signal
import subprocess
import sys

import pytest

from posetrack_data.outputs import (
    CommandParser,
    OutputError,
    OutputPolicy,
    claim,
    commit_folder,
    input_file,
    input_folder,
    run_guarded,
    staging,
)


def test_inputs_are_told_by_type_without_opening_them(tmp_path):
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "file").write_text("x")
    (tmp_path / "link").symlink_to(tmp_path / "file")
    assert input_file(tmp_path / "link") == tmp_path / "link"
    assert input_folder(tmp_path) == tmp_path
    with pytest.raises(OSError, match=r"is a FIFO \(named pipe\), expected a regular file"):
        input_file(tmp_path / "pipe")
    with pytest.raises(IsADirectoryError, match="is a folder, expected a regular file"):
        input_file(tmp_path)
    with pytest.raises(NotADirectoryError, match="is a regular file, expected a folder"):
        input_folder(tmp_path / "file")
    with pytest.raises(FileNotFoundError, match="no such file or folder"):
        input_file(tmp_path / "absent")


def test_anything_at_an_output_path_is_refused_unless_it_is_our_regular_file(tmp_path):
    policy = OutputPolicy.for_inputs(())
    (tmp_path / "ours.json").write_text("{}")
    assert policy.target(tmp_path / "ours.json", ours=lambda path: True) == tmp_path / "ours.json"
    (tmp_path / "link.json").symlink_to(tmp_path / "ours.json")  # a link to our file is not our file
    with pytest.raises(OutputError, match=r"exists \(a symlink\)"):
        policy.target(tmp_path / "link.json", ours=lambda path: True)
    with pytest.raises(OutputError, match="is a folder; expected a file name"):
        OutputPolicy.for_inputs((), overwrite=True).target(tmp_path)
    assert policy.target(tmp_path, folder=True) == tmp_path
    with pytest.raises(OutputError, match="exists and is a regular file, not a folder"):
        policy.target(tmp_path / "ours.json", folder=True)


def test_a_claim_refuses_a_second_holder_and_dies_with_its_process(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from posetrack_data.outputs import claim\n"
         "with claim(sys.argv[1], 'holder'):\n    print('held', flush=True); time.sleep(600)", str(tmp_path / "out")],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert holder.stdout.readline() == "held\n"
    with (
        pytest.raises(OutputError, match=rf"out: holder \(pid {holder.pid}\) is writing here"),
        claim(tmp_path / "out", "me"),
    ):
        pass
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    holder.stdout.close()
    with claim(tmp_path / "out", "me"):  # the kernel dropped the dead process's lock
        assert (tmp_path / ".out.lock").read_text() == f"me (pid {os.getpid()})"
    assert not (tmp_path / ".out.lock").exists()


def test_staging_is_removed_on_error_and_commit_replaces_by_rename(tmp_path):
    final = tmp_path / "out"

    def interrupted_write() -> None:
        with staging(final) as staged:
            (staged / "half.json").write_text("{")
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        interrupted_write()
    assert list(tmp_path.iterdir()) == []
    with staging(final) as staged:
        (staged / "a").mkdir()
        (staged / "a" / "new.json").write_text("new")
        commit_folder(staged, final)  # final is missing: the folder itself moves
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    (final / "a" / "new.json").write_text("old")
    (final / "keep.txt").write_text("user's")
    inode = (final / "keep.txt").stat().st_ino
    with staging(final) as staged:
        (staged / "a").mkdir()
        (staged / "a" / "new.json").write_text("new")
        commit_folder(staged, final)
    assert (final / "a" / "new.json").read_text() == "new"
    assert (final / "keep.txt").stat().st_ino == inode
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


@pytest.mark.parametrize(
    ("error", "status", "line"),
    [
        (ValueError("a.json: x: bad"), 2, "prog: error: a.json: x: bad"),
        (
            FileNotFoundError(2, "No such file or directory", "a.json"),
            2,
            "prog: error: a.json: No such file or directory",
        ),
        (OutputError("b.json: exists\n and\n spans lines"), 2, "prog: error: b.json: exists and spans lines"),
        (RecursionError(), 2, "prog: error: input nested too deeply (recursion limit)"),
        (KeyboardInterrupt(), 130, "prog: interrupted"),
        (KeyError("k"), 1, "prog: internal error: KeyError: 'k' (a bug, not your input"),
    ],
)
def test_every_exception_is_one_line_and_a_status(error, status, line, capsys, monkeypatch):
    monkeypatch.delenv("VREMD_DEBUG", raising=False)

    def fail() -> int:
        raise error

    assert run_guarded("prog", fail) == status
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(line)


def test_a_usage_error_is_one_line(capsys):
    parser = CommandParser(prog="prog")
    parser.add_argument("--fps", type=float, required=True)
    with pytest.raises(SystemExit) as exit_:
        parser.parse_args(["--fps", "fast"])
    assert exit_.value.code == 2
    assert capsys.readouterr().err == (
        "prog: error: argument --fps: invalid float value: 'fast' (--help lists the options)\n"
    )
