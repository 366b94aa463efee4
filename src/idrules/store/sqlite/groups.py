"""Transactions of a SQLite store: one per event, or events grouped under one commit.

Every event is one ``BEGIN IMMEDIATE`` transaction around its read-modify-write: the planner's
reads and the store's writes see one snapshot, and two processes on one file queue for the
write lock instead of failing with "database is locked" or losing an update. A crash at any
point leaves the file as it was after the last committed event.

With ``commit_every`` N > 1, N events share one commit: each event is still atomic (one that
fails is rolled back alone, :meth:`Transactions.undo_event`), the file stays consistent, but a
crash loses up to N-1 decided events, which a resumed replay then decides again.

The object is also the context manager ``SqliteStore.transaction()`` returns: one per store,
reused (a generator-based context manager costs a microsecond per event). It holds the
store's lock from enter to exit, so threads sharing the store decide one event at a time.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from contextlib import suppress
from types import TracebackType

from ..._errors import StoreError
from ..base import Changes, DecisionRecord
from .cache import ReadCache

#: events per savepoint inside a commit group (see :meth:`Transactions.mark`)
MARK_EVERY = 256

Write = Callable[[Changes, DecisionRecord | None], None]
Applied = list[tuple[Changes, DecisionRecord | None]]


class Transactions:
    """The transaction state of one connection."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        cache: ReadCache,
        lock: threading.RLock,
        write: Write,
        *,
        path: str,
        commit_every: int,
        readonly: bool,
    ) -> None:
        self._conn = conn
        self._cur = conn.cursor()
        self._cache = cache
        self._lock = lock
        self._write = write
        self._path = path
        self.commit_every = commit_every
        self._readonly = readonly
        #: called just before each commit (a replay flushes its decisions file there, so the
        #: file never lags the store)
        self.before_commit: Callable[[], object] | None = None
        #: events decided since the last commit
        self.pending = 0
        self._depth = 0
        #: what the store wrote in the current event, then (once it succeeded) since the
        #: commit group's savepoint: what to write again after rolling a failed event back
        self.applied: Applied = []
        self._since_mark: Applied = []
        #: whether the read cache may answer: only inside a write transaction it validated
        self.trusted = False
        self._data_version: int | None = None
        #: the id ``SqliteStore.claim_event`` recorded in the open event (so its write skips
        #: the insert); forgotten when the event ends, whether it succeeded or not
        self.claimed: str | None = None

    # the context manager -----------------------------------------------------------------
    def __enter__(self) -> None:
        self._lock.acquire()  # released by __exit__, or here when the transaction cannot begin
        self._depth += 1
        if self._depth > 1 or self._conn.in_transaction:
            return
        if self._readonly:
            self._depth -= 1
            self._lock.release()
            raise StoreError(f"store {self._path} was opened read-only")
        try:
            self._begin()
        except sqlite3.Error as exc:
            self._depth -= 1
            self.forget()
            self._lock.release()
            raise StoreError(f"cannot write store {self._path}: {why(exc)}") from None

    def __exit__(
        self,
        kind: type[BaseException] | None,
        failure: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        try:
            self._finish(failure)
        finally:
            self._lock.release()

    def _finish(self, failure: BaseException | None) -> None:
        self._depth -= 1
        if self._depth:
            return
        self.claimed = None
        applied, self.applied = self.applied, []
        if failure is not None:
            self.undo_event()
            if isinstance(failure, sqlite3.Error):
                raise StoreError(f"store {self._path}: {why(failure)}") from None
            return
        self.pending += 1
        if self.pending >= self.commit_every:
            self.commit()
        elif applied:
            self._since_mark += applied
            if len(self._since_mark) >= MARK_EVERY:
                try:
                    self._cur.execute("RELEASE mark")
                    self.mark()
                except sqlite3.Error as exc:
                    self.abandon()
                    raise StoreError(f"store {self._path}: {why(exc)}") from None

    def _begin(self) -> None:
        """Take the write lock, and trust the read cache again if no other connection has
        committed since this one last looked."""
        cur = self._cur
        cur.execute("BEGIN IMMEDIATE")
        version = cur.execute("PRAGMA data_version").fetchone()[0]
        if version != self._data_version:
            self._cache.clear()
            self._data_version = version
        self.trusted = True
        if self.commit_every > 1:
            self.mark()

    # commit groups -----------------------------------------------------------------------
    def mark(self) -> None:
        """Inside a commit group: the savepoint a failed event rolls back to, before the
        events applied since it are written again (:meth:`undo_event`). A savepoint per event
        would cost two statements per event; this costs two per :data:`MARK_EVERY` events,
        which also bounds what the savepoint's journal and the list of events hold."""
        self._cur.execute("SAVEPOINT mark")
        self._since_mark.clear()

    def undo_event(self) -> None:
        """Roll a failed event's writes back, and only them: to the commit group's savepoint,
        then the group's events since then written again. Should that fail too, the whole
        uncommitted group goes, as in a crash (a resumed replay decides it again)."""
        self._cache.clear()  # it may hold the failed event's writes: this is the rare path
        since, self._since_mark = self._since_mark, []
        try:
            if self.pending == 0:  # nothing else in this transaction: release the lock
                self._cur.execute("ROLLBACK")
                self.trusted = False
                return
            self._cur.execute("ROLLBACK TO mark")
            for changes, record in since:
                self._write(changes, record)
            self._since_mark = since
        except BaseException as exc:
            lost = self.pending
            self.abandon()
            if isinstance(exc, sqlite3.Error):
                raise StoreError(
                    f"store {self._path}: {why(exc)} (and the {lost} uncommitted events of "
                    "this commit group with the failed one)"
                ) from None
            raise

    def abandon(self) -> None:
        """Give up the open transaction, whatever state it is in."""
        self.pending = 0
        self._since_mark = []
        self.forget()
        if self._conn.in_transaction:
            with suppress(sqlite3.Error):
                self._cur.execute("ROLLBACK")

    def forget(self) -> None:
        """Drop the read cache and stop trusting it (after a failed begin or commit, when what
        the file holds is unsure)."""
        self._cache.clear()
        self.trusted = False

    def commit(self) -> None:
        """Commit the events decided so far (a no-op when nothing is pending)."""
        with self._lock:
            self.pending = 0
            self._since_mark.clear()
            if self._conn.in_transaction:
                if self.before_commit is not None:
                    self.before_commit()
                try:
                    self._cur.execute("COMMIT")
                except sqlite3.Error as exc:
                    self.forget()
                    raise StoreError(f"cannot commit to store {self._path}: {why(exc)}") from None
            # the lock is released: others may write before this connection's next begin
            self.trusted = False


def why(exc: sqlite3.Error) -> str:
    """A SQLite error as one line a user can act on."""
    text = str(exc) or type(exc).__name__
    if "not a database" in text:
        return "the file is not an SQLite database"
    return text
