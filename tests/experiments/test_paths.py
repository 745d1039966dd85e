"""Output paths are checked before any work, and only regular files are ever replaced."""

from __future__ import annotations

import os
import sqlite3

import numpy as np
import pytest

from analogsim.experiments import cli
from analogsim.experiments.paths import (
    atomic_write,
    check_input_file,
    check_output_dir,
    check_output_file,
    clean_stale_temps,
)


def _write(f) -> None:
    np.save(f, np.arange(3))


@pytest.fixture
def fifo(tmp_path):
    path = tmp_path / "pipe"
    os.mkfifo(path)
    return path


def test_bad_output_files_are_named(tmp_path, fifo) -> None:
    (tmp_path / "file").write_text("keep")
    os.symlink(tmp_path / "file", tmp_path / "link")
    cases = {str(tmp_path): "is a directory", "/dev/null": "is a character device",
             str(fifo): "is a FIFO", str(tmp_path / "link"): "is a symbolic link",
             str(tmp_path / "file" / "below.npz"): "is not a directory",
             str(tmp_path / ("x" * 300)): "at most 255", "": "allowed: a file path"}
    for path, match in cases.items():
        with pytest.raises(ValueError, match=match):
            check_output_file(path, "--save")
    assert check_output_file(tmp_path / "new" / "deeper" / "c.npz", "--save").name == "c.npz"
    assert check_output_file(tmp_path / "file", "--save").read_text() == "keep"


def test_atomic_write_never_replaces_a_non_regular_file(tmp_path, fifo) -> None:
    before = os.stat("/dev/null")
    for target in ("/dev/null", fifo, tmp_path):
        with pytest.raises(ValueError, match="allowed: a regular file"):
            atomic_write(target, _write)
    after = os.stat("/dev/null")
    assert (before.st_mode, before.st_rdev) == (after.st_mode, after.st_rdev)
    assert os.path.exists(fifo) and not list(tmp_path.glob(".*.tmp"))
    out = atomic_write(tmp_path / "a.npy", _write)
    np.testing.assert_array_equal(np.load(out), np.arange(3))


def test_stale_temporary_files_of_dead_writers_are_removed(tmp_path) -> None:
    dead = tmp_path / ".c.npz.999999999.abc.tmp"  # no such pid
    live = tmp_path / f".c.npz.{os.getpid()}.def.tmp"
    other = tmp_path / ".d.npz.999999999.abc.tmp"
    for p in (dead, live, other):
        p.write_text("partial")
    atomic_write(tmp_path / "c.npz", _write)
    assert not dead.exists() and live.exists() and other.exists()
    assert clean_stale_temps(tmp_path / "d.npz") == 1


def test_output_dirs(tmp_path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(ValueError, match="is not a directory"):
        check_output_dir(tmp_path / "f" / "sub", "--out")
    with pytest.raises(ValueError, match="exists and is not a regular file|exists and is"):
        check_output_dir(tmp_path / "f", "--out")
    assert check_output_dir(tmp_path / "new", "--out") == tmp_path / "new"


def test_input_files_must_be_regular_and_bounded(tmp_path, fifo) -> None:
    (tmp_path / "big").write_bytes(b"x" * 100)
    with pytest.raises(ValueError, match="is a FIFO"):
        check_input_file(fifo, "spec", 10)
    with pytest.raises(ValueError, match="is a character device"):
        check_input_file("/dev/zero", "spec", 10)
    with pytest.raises(ValueError, match="100 bytes; allowed: at most 10"):
        check_input_file(tmp_path / "big", "spec", 10)


@pytest.mark.parametrize("save, match", [("/dev/null", "character device"),
                                         ("", "allowed: a file path"),
                                         (".", "is a directory")])
def test_train_refuses_a_bad_save_path_before_training(save, match, capsys) -> None:
    assert cli.main(["train", "--epochs", "50", "--save", save]) == 2
    assert match in capsys.readouterr().err


def test_report_refuses_files_that_are_not_stores(tmp_path, capsys) -> None:
    empty = tmp_path / "empty.sqlite"
    empty.write_bytes(b"")
    text = tmp_path / "notes.txt"
    text.write_text("my notes")
    other = tmp_path / "other.sqlite"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.close()
    for path, match in ((empty, "is an empty file"), (text, "not a SQLite database"),
                        (other, "without a 'runs' table")):
        assert cli.main(["report", str(path), "--out", str(tmp_path / "r")]) == 2
        assert match in capsys.readouterr().err
    assert empty.read_bytes() == b"" and text.read_text() == "my notes"


def test_report_on_an_empty_store_is_an_error(tmp_path, capsys) -> None:
    from analogsim.experiments.store import ResultsStore

    with ResultsStore(tmp_path / "s.sqlite"):
        pass
    assert cli.main(["report", str(tmp_path / "s.sqlite")]) == 2
    assert "holds no results yet" in capsys.readouterr().err


def test_a_full_disk_is_a_clear_error_that_keeps_what_was_written(tmp_path, monkeypatch,
                                                                   capsys) -> None:
    import errno

    from analogsim.experiments import checkpoint

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    save = tmp_path / "c.npz"
    assert cli.main(["train", "--epochs", "1", "--save", str(save)]) == 0
    before = save.read_bytes()
    monkeypatch.setattr(checkpoint, "atomic_write", full)
    assert cli.main(["train", "--epochs", "2", "--save", str(save), "--resume"]) == cli.EXIT_IO
    err = capsys.readouterr().err
    assert "no space left on the device" in err and "already written are intact" in err
    assert save.read_bytes() == before
