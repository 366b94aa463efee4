"""Read-only stores: export and history open a store they may not write, and never write it."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_support import assert_one_line_error, cli, command

from idrules import Engine, SqliteStore, StoreError

NOBODY = 65534


def as_reader(*args: str) -> list[str]:
    """The argv of ``idrules ARGS`` run by a user who may read, not write (root can write
    anything, so as root the command runs as ``nobody``)."""
    argv = command(*args)
    if os.geteuid() != 0:
        return argv
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: cannot drop the right to write")
    drop = [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--"]
    probe = subprocess.run([*drop, sys.executable, "-c", "import idrules"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("the interpreter or the package is not readable by nobody")
    return [*drop, *argv]


@pytest.fixture
def locked_folder() -> Iterator[Path]:
    """A folder holding a store with a decided event, neither of them writable by a reader."""
    folder = Path(tempfile.mkdtemp(prefix="idrules-ro-"))
    folder.chmod(0o755)
    store = SqliteStore(folder / "s.db")
    Engine("helpshift", store).identify({"userId": "u1", "userEmail": "a@example.com"}, id="e1")
    store.close()
    (folder / "s.db").chmod(0o444)
    folder.chmod(0o555)
    try:
        yield folder
    finally:
        folder.chmod(0o755)
        shutil.rmtree(folder)


class TestReadOnlyOpen:
    """SqliteStore(readonly=True) and the commands that only read."""

    def test_export_and_history_of_a_locked_store(self, locked_folder: Path) -> None:
        """export and history work on a store in a folder the reader may not write."""
        before = sorted(os.listdir(locked_folder))
        store = str(locked_folder / "s.db")
        export = subprocess.run(as_reader("export", "--store", store), capture_output=True)
        assert export.returncode == 0, export.stderr
        assert b'"user_id":"u1"' in export.stdout
        history = subprocess.run(
            as_reader("history", "--store", store, "--user-id", "u1"), capture_output=True
        )
        assert history.returncode == 0, history.stderr
        assert b"e1" in history.stdout
        assert sorted(os.listdir(locked_folder)) == before

    def test_readonly_store_refuses_writes(self, tmp_path: Path) -> None:
        """A store opened read-only refuses to decide, with one line."""
        SqliteStore(tmp_path / "s.db").close()
        engine = Engine("helpshift", SqliteStore(tmp_path / "s.db", readonly=True))
        with pytest.raises(StoreError, match="read-only"):
            engine.identify({"userId": "u1"})

    def test_old_version_named_read_only(self, tmp_path: Path) -> None:
        """export of a version 3 store says a writing command re-keys it, in one line."""
        path = tmp_path / "s.db"
        SqliteStore(path).close()
        with sqlite3.connect(path) as conn:
            conn.execute("UPDATE meta SET value='3' WHERE key='schema_version'")
        assert_one_line_error(cli("export", "--store", path), "version 3", "re-keys")
        replay = cli("replay", "-", "--rules", "helpshift", "--store", path, "-q", stdin="")
        assert replay.returncode == 0, replay.stderr
        assert cli("export", "--store", path).returncode == 0
