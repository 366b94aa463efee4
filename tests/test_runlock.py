"""The run lock (:mod:`idrules.audit.runlock`, :meth:`SqliteStore.claim_run`): one replay of a run
into a store at a time, a kernel lock that dies with its process, and that holds inside one
process too (POSIX locks alone would not)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from idrules import SqliteStore
from idrules.audit.runlock import _FILES, RunBusyError, RunLock, lock_path

RULESET = "r" * 64


def key(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class TestInOneProcess:
    """Claims made by one process: refused twice, released cleanly."""

    def test_same_run_twice_refused(self, tmp_path: Path) -> None:
        """A second claim of a run this process holds is refused, naming this process."""
        store = str(tmp_path / "s.db")
        with RunLock(store, 1), pytest.raises(RunBusyError, match=f"pid {os.getpid()}"):
            RunLock(store, 1)

    def test_released_run_can_be_claimed_again(self, tmp_path: Path) -> None:
        """After release (or the end of the with block) the run is free."""
        store = str(tmp_path / "s.db")
        with RunLock(store, 3):
            pass
        lock = RunLock(store, 3)
        lock.release()
        lock.release()  # again: a no-op

    def test_other_runs_side_by_side(self, tmp_path: Path) -> None:
        """Different runs of one store lock different bytes: both claims hold."""
        store = str(tmp_path / "s.db")
        with RunLock(store, 1), RunLock(store, 2):
            assert Path(lock_path(store)).exists()

    def test_descriptor_closed_when_nothing_is_held(self, tmp_path: Path) -> None:
        """The process keeps one descriptor per lock file, only while it holds a run there."""
        store = str(tmp_path / "s.db")
        before = dict(_FILES)
        first, second = RunLock(store, 1), RunLock(store, 2)
        assert len(_FILES) == len(before) + 1
        first.release()
        assert len(_FILES) == len(before) + 1  # run 2 is still held: closing would free it
        second.release()
        assert dict(_FILES) == before

    def test_claim_run_twice_through_two_stores(self, tmp_path: Path) -> None:
        """Two store objects on one file: the second claim of the run is refused."""
        path = tmp_path / "s.db"
        a, b = SqliteStore(path), SqliteStore(path)
        try:
            run, claim = a.claim_run(key("first line"), RULESET)
            with claim, pytest.raises(RunBusyError, match=str(path)):
                b.claim_run(key("first line"), RULESET)
            again, claim = b.claim_run(key("first line"), RULESET)
            with claim:
                assert again.id == run.id
        finally:
            a.close()
            b.close()

    def test_claim_run_makes_the_run(self, tmp_path: Path) -> None:
        """claim_run is run_for plus the claim: a new run is made, then claimed."""
        store = SqliteStore(tmp_path / "s.db")
        try:
            run, claim = store.claim_run(key("a log"), RULESET)
            with claim:
                assert store.run_for(key("a log"), RULESET) == run
                assert (tmp_path / "s.db.lock").exists()
        finally:
            store.close()

    def test_memory_store_needs_no_lock_file(self, tmp_path: Path) -> None:
        """An in-memory SQLite store is private to its connection: no lock file is made."""
        store = SqliteStore(":memory:")
        try:
            _, claim = store.claim_run(key("a log"), RULESET)
            with claim:
                assert not Path(":memory:.lock").exists()
        finally:
            store.close()


class TestAcrossProcesses:
    """A claim held by another process is refused, naming it; its death frees the run."""

    HOLDER = textwrap.dedent(
        """
        import sys
        from idrules.audit.runlock import RunLock
        lock = RunLock(sys.argv[1], 5)
        print("held", flush=True)
        sys.stdin.read()
        """
    )

    def test_held_elsewhere(self, tmp_path: Path) -> None:
        """Refused at once with the holder's pid; free again once the holder is killed."""
        store = str(tmp_path / "s.db")
        holder = subprocess.Popen(
            [sys.executable, "-c", self.HOLDER, store],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        try:
            assert holder.stdout is not None and holder.stdout.readline() == b"held\n"
            with pytest.raises(RunBusyError, match=f"pid {holder.pid}"):
                RunLock(store, 5)
            with RunLock(store, 6):  # another run of the same store is not held
                pass
        finally:
            holder.kill()
            holder.wait(timeout=30)
        with RunLock(store, 5):  # the kernel released the dead holder's lock
            pass
