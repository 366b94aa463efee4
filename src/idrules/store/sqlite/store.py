"""The durable store: one SQLite file (WAL), set up through sqlite-utils, used per event through
prepared SQL.

Its rooms: :mod:`.connection` (opening, schema, pragmas), :mod:`.groups` (one transaction per
event, or commit groups), :mod:`.cache` (what the connection last saw), :mod:`.trail` (replay
runs and history), :mod:`.sql` (statements and rows), :mod:`.schema` (tables and versions).
Per event, the planner's reads are served from the read cache, validated at each
transaction's start; the writes then touch only what changed (see :mod:`.schema` for why
pages are what counts).
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from ..._errors import StoreError
from ...decision import dumps
from ..base import Changes, DecisionRecord, Profile, Run, Session
from . import sql
from .cache import ReadCache
from .connection import connect, open_schema
from .groups import Transactions, why
from .trail import Trail

#: profiles per batch of an export (:meth:`SqliteStore.profiles`)
_EXPORT_BATCH = 1_000


class SqliteStore:
    """A store in one SQLite file.

    ``create``: make the file and its tables when missing (False: the file must already be an
    idrules store; nothing is written on opening). ``readonly``: open an existing store for
    reading only (``mode=ro``, or ``immutable`` when SQLite cannot share its lock files, as in
    a folder the reader may not write): nothing is ever created or written. A file that holds
    other tables, or an idrules store of an unknown schema version, is refused before
    anything is written to it; a store of an older version this idrules can upgrade is
    re-keyed once when opened for writing, and :attr:`notes` says what changed.

    ``commit_every``: 1 (the default) commits each event on its own; N > 1 groups N events
    per commit (see :mod:`.groups`): faster, and a crash loses up to N-1 decided events, which
    a resumed replay decides again. :meth:`commit` (or :meth:`close`) makes the last group
    durable. ``before_commit`` is called just before each commit.

    One store may be shared by threads: each event's transaction, and every read, holds the
    store's lock, so events are decided one at a time and a reader never sees half of one.
    Writes go through :meth:`apply` only.
    """

    keeps_decisions = True

    def __init__(
        self,
        path: str | Path,
        *,
        create: bool = True,
        readonly: bool = False,
        commit_every: int = 1,
        timeout: float = 60.0,
    ) -> None:
        if commit_every < 1:
            raise ValueError("commit_every must be at least 1")
        self.path = str(path)
        self.readonly = readonly
        self._lock = threading.RLock()
        self._closed = False
        self._cache = ReadCache()
        if (readonly or not create) and not os.path.isfile(self.path):
            raise StoreError(f"store not found: {self.path}")
        self._conn = connect(self.path, readonly=readonly, timeout=timeout)
        try:
            #: one-line notes about the opening (an older store re-keyed), for the caller
            self.notes = open_schema(
                self._conn,
                self.path,
                create=create and not readonly,
                readonly=readonly,
                timeout=timeout,
            )
        except sqlite3.Error as exc:
            self._conn.close()
            raise StoreError(f"cannot open store {self.path}: {why(exc)}") from None
        except StoreError:
            self._conn.close()
            raise
        # one cursor for the per-event statements: each fetches its row at once
        self._cur = self._conn.cursor()
        self._tx = Transactions(
            self._conn,
            self._cache,
            self._lock,
            self._write,
            path=self.path,
            commit_every=commit_every,
            readonly=readonly,
        )
        self._trail = Trail(self._conn, self._lock, self._fetch, self.commit, self.path)

    # transactions ------------------------------------------------------------------------
    def transaction(self) -> AbstractContextManager[None]:
        """One event: ``BEGIN IMMEDIATE`` ... ``COMMIT``, or one event of a commit group.

        If the body raises, that event's writes are rolled back (and only them)."""
        return self._tx

    def commit(self) -> None:
        """Commit the events decided so far (a no-op when nothing is pending)."""
        self._tx.commit()

    @property
    def commit_every(self) -> int:
        """Events per commit (1: each on its own)."""
        return self._tx.commit_every

    @commit_every.setter
    def commit_every(self, events: int) -> None:
        if events < 1:
            raise ValueError("commit_every must be at least 1")
        self._tx.commit_every = events

    @property
    def pending(self) -> int:
        """Events decided since the last commit."""
        return self._tx.pending

    @property
    def before_commit(self) -> Callable[[], object] | None:
        """Called just before each commit (a replay flushes its decisions file there, so the
        file never lags the store)."""
        return self._tx.before_commit

    @before_commit.setter
    def before_commit(self, hook: Callable[[], object] | None) -> None:
        self._tx.before_commit = hook

    def close(self) -> None:
        """Commit any pending group, then close the file (again: a no-op)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                if not self.readonly:
                    self.commit()
            finally:
                self._conn.close()

    # reading -----------------------------------------------------------------------------
    # Each read holds the store's lock (re-entered, cheaply, inside a transaction): threads
    # share one connection, and a reader must never see half of another thread's event.
    def is_decided(self, event_id: str) -> bool:
        with self._lock:
            return self._cur.execute(sql.IS_DECIDED, (event_id,)).fetchone() is not None

    def claim_event(self, event_id: str) -> bool:
        """Inside the event's transaction: record ``event_id`` as decided, in the statement
        that checks it (``INSERT OR IGNORE``; True: it already was). The engine calls it
        instead of :meth:`is_decided`; :meth:`apply` then skips the id's insert."""
        with self._lock:
            if self._cur.execute(sql.CLAIM_EVENT, (event_id,)).rowcount == 0:
                return True
            self._tx.claimed = event_id
            return False

    def profile(self, profile_id: str) -> Profile | None:
        with self._lock:
            profiles, trusted = self._cache.profiles, self._tx.trusted
            if trusted and profile_id in profiles:
                return profiles[profile_id]
            row = self._cur.execute(sql.PROFILE_BY_ID, (profile_id,)).fetchone()
            found = None if row is None else sql.profile_of(row)
            if trusted:
                profiles.put(profile_id, found)
            return found

    def by_user_key(self, user_key: str) -> Profile | None:
        with self._lock:
            keys, trusted = self._cache.user_keys, self._tx.trusted
            if trusted and user_key in keys:
                return self._by_id(keys[user_key])
            found = self._load(sql.PROFILE_BY_USER_KEY, (user_key,))
            holder = found[0] if found else None
            if trusted:
                keys.put(user_key, None if holder is None else holder.id)
            return holder

    def by_email_key(self, email_key: str, limit: int) -> list[Profile]:
        with self._lock:
            keys, trusted = self._cache.email_keys, self._tx.trusted
            if trusted and email_key in keys:
                asked, ids = keys[email_key]
                if limit <= asked or len(ids) < asked:
                    return [p for p in map(self._by_id, ids[:limit]) if p is not None]
            found = self._load(sql.PROFILES_BY_EMAIL_KEY, (email_key, limit))
            if trusted:
                keys.put(email_key, (limit, tuple(p.id for p in found)))
            return found

    def _by_id(self, profile_id: str | None) -> Profile | None:
        return None if profile_id is None else self.profile(profile_id)

    def _load(self, query: str, args: tuple[Any, ...]) -> list[Profile]:
        """The profiles a key lookup finds, added to the profile cache when trusted."""
        found = [sql.profile_of(row) for row in self._cur.execute(query, args).fetchall()]
        if self._tx.trusted:
            for p in found:
                self._cache.profiles.put(p.id, p)
        return found

    def session(self, session_id: str) -> Session | None:
        with self._lock:
            sessions, trusted = self._cache.sessions, self._tx.trusted
            if trusted and session_id in sessions:
                return sessions[session_id]
            row = self._cur.execute(sql.SESSION_BY_ID, (session_id,)).fetchone()
            found = None if row is None else Session(*row)
            if trusted:
                sessions.put(session_id, found)
            return found

    def sessions_of(self, profile_id: str) -> list[Session]:
        rows = self._fetch(
            "SELECT id, current, anon FROM sessions WHERE current=? OR anon=? ORDER BY id",
            (profile_id, profile_id),
        )
        return [Session(*row) for row in rows]

    def profiles(self) -> Iterator[Profile]:
        """Every profile in creation order, read in batches (each under the lock), so an
        export of a large store streams."""
        after = 0
        while True:
            rows = self._fetch(
                f"SELECT seq, {sql.PROFILE_COLUMNS} FROM profiles WHERE seq > ? ORDER BY seq "
                f"LIMIT {_EXPORT_BATCH}",
                (after,),
            )
            for row in rows:
                yield sql.profile_of(row[1:])
            if len(rows) < _EXPORT_BATCH:
                return
            after = rows[-1][0]

    def activity_of(self, profile_id: str) -> list[str]:
        rows = self._fetch(
            "SELECT event_id FROM timeline WHERE profile=? AND n > 0 ORDER BY seq, n",
            (profile_id,),
        )
        return [row[0] for row in rows]

    def acting_sessions(self, profile_id: str) -> list[str]:
        rows = self._fetch("SELECT id FROM sessions WHERE current=? ORDER BY id", (profile_id,))
        return [row[0] for row in rows]

    def _fetch(self, query: str, args: tuple[Any, ...] | list[Any] = ()) -> list[Any]:
        """All rows of one query, under the store's lock; a failure is one line."""
        with self._lock:
            try:
                return self._conn.execute(query, args).fetchall()
            except sqlite3.Error as exc:
                raise StoreError(f"store {self.path}: {why(exc)}") from None

    # writing -----------------------------------------------------------------------------
    def apply(
        self, changes: Changes, seal: Callable[[], DecisionRecord | None] | None = None
    ) -> None:
        """Write one event's changes and its record (call inside :meth:`transaction`). One
        writer at a time holds the file, so no write can lose a race: ``seal`` is called
        first."""
        record = None if seal is None else seal()
        self._tx.applied.append((changes, record))
        self._write(changes, record)

    def _write(self, changes: Changes, record: DecisionRecord | None) -> None:
        """The statements of :meth:`apply` (and of a commit group written again). The read
        cache follows every write, trusted or not: a write is this connection's own, so what
        the cache holds stays what the file holds."""
        cur, cache = self._cur, self._cache
        for write in changes.profiles:
            p, before = write.after, write.before
            if before is None:
                cur.execute(sql.INSERT_PROFILE, sql.row_of(p))
            else:
                names, values = sql.changed_columns(p, before)
                if names:
                    values.append(p.id)
                    cur.execute(sql.update_sql(names), values)
            cache.wrote_profile(p, before)
        for session in changes.sessions:
            cur.execute(sql.UPSERT_SESSION, (session.id, session.current, session.anon))
            cache.sessions.put(session.id, session)
        for source, target in changes.moves:
            cur.execute(sql.MOVE_ACTIVITY, (target, source))
        if changes.event_id is not None:
            if changes.event_id == self._tx.claimed:  # recorded when it was checked
                self._tx.claimed = None
            else:
                cur.execute(sql.INSERT_EVENT, (changes.event_id,))
        about = None
        if record is not None:
            about = record.profile
            merged = dumps(list(record.merged)) if record.merged else "[]"
            cur.execute(
                sql.INSERT_DECISION,
                (
                    record.run,
                    record.line,
                    record.event_id,
                    record.outcome,
                    record.profile,
                    merged,
                    record.reasons,
                    record.hash,
                ),
            )
        elif changes.activity:  # nothing else would give this event its place in the order
            cur.execute(sql.INSERT_BARE_DECISION, (changes.event_id,))
        else:
            return
        seq = cur.lastrowid
        if about is not None:
            cur.execute(sql.INSERT_TIMELINE, (about, seq, 0, None))
        for n, (event_id, profile) in enumerate(changes.activity, 1):
            cur.execute(sql.INSERT_TIMELINE, (profile, seq, n, event_id))

    # the audit trail (see .trail) ------------------------------------------------------
    def run_for(self, log_key: str, ruleset: str) -> Run:
        return self._trail.run_for(log_key, ruleset)

    def claim_run(self, log_key: str, ruleset: str) -> tuple[Run, AbstractContextManager[object]]:
        return self._trail.claim_run(log_key, ruleset)

    def history(self, profile_ids: Iterable[str]) -> Iterator[DecisionRecord]:
        return self._trail.history(profile_ids)

    def merged_into(self, profile_id: str) -> list[str]:
        return self._trail.merged_into(profile_id)

    def root_of(self, profile_id: str) -> str:
        return self._trail.root_of(profile_id)

    def find_profiles(self, column: str, value: str) -> list[str]:
        return self._trail.find_profiles(column, value)
