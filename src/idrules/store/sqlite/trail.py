"""The audit trail's queries on a SQLite store: replay runs and their claims, and history.

The store keeps, in the event's own transaction, a compact record of every decision it applied
(``decisions``) and, per profile, the order of the decisions about it (``timeline``, n = 0).
A *run* is a replay of one log under one ruleset: its records say where it stopped, so a
replay killed at any moment resumes (see :mod:`idrules.audit`)."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from ..._errors import StoreError
from ...audit.runlock import RunLock
from ..base import DecisionRecord, Run
from .groups import why

Fetch = Callable[[str, tuple[Any, ...] | list[Any]], list[Any]]


class Trail:
    """Runs and history of one store (its connection, lock and commit)."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        lock: threading.RLock,
        fetch: Fetch,
        commit: Callable[[], None],
        path: str,
    ) -> None:
        self._conn = conn
        self._lock = lock
        self._fetch = fetch
        self._commit = commit
        self._path = path

    # runs --------------------------------------------------------------------------------
    def run_for(self, log_key: str, ruleset: str) -> Run:
        """The replay run of this log under this ruleset (made on first use), with where it
        stopped: how many decisions it holds and the last one's line, event id and hash."""
        conn = self._conn
        with self._lock:
            try:
                # its own transaction, not an event's: a commit group re-applies only events
                self._commit()
                conn.execute(
                    "INSERT OR IGNORE INTO runs (log_key, ruleset) VALUES (?, ?)",
                    (log_key, ruleset),
                )
                run_id = conn.execute(
                    "SELECT id FROM runs WHERE log_key=? AND ruleset=?", (log_key, ruleset)
                ).fetchone()[0]
                count = conn.execute(
                    "SELECT count(*) FROM decisions WHERE run=?", (run_id,)
                ).fetchone()[0]
                last = conn.execute(
                    "SELECT line, event_id, hash FROM decisions WHERE run=? "
                    "ORDER BY seq DESC LIMIT 1",
                    (run_id,),
                ).fetchone()
            except sqlite3.Error as exc:
                raise StoreError(f"store {self._path}: {why(exc)}") from None
        if last is None:
            return Run(run_id, 0, 0, None, None)
        return Run(run_id, count, last[0], last[1], last[2])

    def claim_run(self, log_key: str, ruleset: str) -> tuple[Run, AbstractContextManager[object]]:
        """:meth:`run_for`, claimed for this process: one replay of a run at a time.

        The claim is an operating-system lock (:mod:`idrules.audit.runlock`, released on exit
        of the returned context manager, or by the kernel when the process dies); a claim
        another replay holds (in another process, or this one) raises ``RunBusyError`` at
        once. A run the store already knows is claimed before anything is written (another
        replay of it may hold the write lock for a whole commit group); a new one is made,
        then claimed."""
        if self._path == ":memory:":  # nobody else can reach it
            return self.run_for(log_key, ruleset), nullcontext()
        known = self._fetch("SELECT id FROM runs WHERE log_key=? AND ruleset=?", (log_key, ruleset))
        lock = None if not known else RunLock(self._path, known[0][0])
        try:
            run = self.run_for(log_key, ruleset)
            if lock is None:
                lock = RunLock(self._path, run.id)
        except BaseException:
            if lock is not None:
                lock.release()
            raise
        return run, lock

    # history -----------------------------------------------------------------------------
    def history(self, profile_ids: Iterable[str]) -> Iterator[DecisionRecord]:
        """Every decision whose profile is one of ``profile_ids``, in the order applied."""
        ids = list(profile_ids)
        marks = ", ".join("?" * len(ids))
        rows = self._fetch(
            "SELECT d.event_id, d.outcome, d.profile, d.merged, d.reasons, d.run, d.line, d.hash "
            f"FROM timeline t JOIN decisions d ON d.seq = t.seq WHERE t.profile IN ({marks}) "
            "AND t.n = 0 ORDER BY t.seq",
            ids,
        )
        for row in rows:
            yield DecisionRecord(
                row[0], row[1], row[2], tuple(json.loads(row[3])), row[4], row[5], row[6], row[7]
            )

    def merged_into(self, profile_id: str) -> list[str]:
        """Ids of the profiles folded into ``profile_id``, directly or through others."""
        found: list[str] = []
        todo = [profile_id]
        while todo:
            rows = self._fetch(
                "SELECT id FROM profiles WHERE merged_into=? ORDER BY seq", (todo.pop(),)
            )
            for (pid,) in rows:
                if pid not in found and pid != profile_id:
                    found.append(pid)
                    todo.append(pid)
        return found

    def root_of(self, profile_id: str) -> str:
        """The profile ``profile_id`` was merged into, followed to the end (itself if none)."""
        seen = {profile_id}
        while True:
            rows = self._fetch("SELECT merged_into FROM profiles WHERE id=?", (profile_id,))
            if not rows or rows[0][0] is None or rows[0][0] in seen:
                return profile_id
            profile_id = rows[0][0]
            seen.add(profile_id)

    def find_profiles(self, column: str, value: str) -> list[str]:
        """Ids of profiles (any state) whose ``user_id``, ``user_key``, ``email_key`` or ``id``
        equals ``value``, earliest first."""
        if column not in ("id", "user_id", "user_key", "email_key"):
            raise ValueError(column)
        rows = self._fetch(f"SELECT id FROM profiles WHERE {column}=? ORDER BY seq", (value,))
        return [row[0] for row in rows]
