"""The durable store: one SQLite file (WAL), set up through sqlite-utils, used per event through
prepared SQL.

Every event is one ``BEGIN IMMEDIATE`` transaction around its read-modify-write: the planner's
reads and :meth:`SqliteStore.apply`'s writes see one snapshot, and two processes on one file
queue for the write lock instead of failing with "database is locked" or losing an update.
A crash at any point leaves the file as it was after the last committed event.

Per event, the planner's reads are served from a read cache this connection keeps of what it
read and wrote (profiles, sessions, match keys). While it holds the write lock nobody else
can change the file, so the cache is exact if nobody did in between: each transaction starts
by comparing ``PRAGMA data_version`` (which changes when *another* connection commits) with
the value at the last check, and drops the cache when it moved. The writes then touch only
what changed (see :mod:`.sqlite_schema` for why pages are what counts).
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
import urllib.parse
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, suppress
from functools import cache
from pathlib import Path
from types import TracebackType
from typing import Any, Generic, TypeVar

import attrs
import sqlite_utils

from .._errors import StoreError
from ..decision import dumps
from .base import Changes, DecisionRecord, Profile, Session, detached
from .sqlite_schema import SCHEMA_VERSION, check_version, create_schema, upgrade

_PROFILE_COLUMNS = (
    "id, created_by, user_id, user_key, email, email_key, name, avatar, verified, anonymous, "
    "state, merged_into, attributes, last_seen"
)
_SELECT_PROFILE = f"SELECT {_PROFILE_COLUMNS} FROM profiles"
_PROFILE_BY_ID = f"{_SELECT_PROFILE} WHERE id=?"
#: key lookups read the first entries of (key, state) in the key's index: creation order
_PROFILE_BY_USER_KEY = f"{_SELECT_PROFILE} WHERE user_key=? AND state='active' ORDER BY seq LIMIT 1"
_PROFILES_BY_EMAIL_KEY = (
    f"{_SELECT_PROFILE} WHERE email_key=? AND state='active' ORDER BY seq LIMIT ?"
)
_INSERT_PROFILE = f"INSERT INTO profiles ({_PROFILE_COLUMNS}) VALUES ({', '.join('?' * 14)})"
#: what an update may change (``id`` and ``created_by`` never do)
_UPDATABLE = (
    "user_id",
    "user_key",
    "email",
    "email_key",
    "name",
    "avatar",
    "verified",
    "anonymous",
    "state",
    "merged_into",
    "attributes",
    "last_seen",
)
_SESSION_BY_ID = "SELECT id, current, anon FROM sessions WHERE id=?"
_UPSERT_SESSION = (
    "INSERT INTO sessions (id, current, anon) VALUES (?, ?, ?) "
    "ON CONFLICT(id) DO UPDATE SET current=excluded.current, anon=excluded.anon"
)
_IS_DECIDED = "SELECT 1 FROM events WHERE id=?"
_INSERT_EVENT = "INSERT INTO events (id) VALUES (?)"
_INSERT_TIMELINE = "INSERT INTO timeline (profile, seq, n, event_id) VALUES (?, ?, ?, ?)"
_MOVE_ACTIVITY = "UPDATE timeline SET profile=? WHERE profile=? AND n > 0"
_INSERT_DECISION = (
    "INSERT INTO decisions (run, line, event_id, outcome, profile, merged, reasons, hash) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_BARE_DECISION = "INSERT INTO decisions (event_id) VALUES (?)"
#: profiles per batch of an export (:meth:`SqliteStore.profiles`)
_EXPORT_BATCH = 1_000
#: events per savepoint inside a commit group (see :meth:`SqliteStore._mark`)
_MARK_EVERY = 256
#: entries per read-cache map: a busy widget's working set (the benchmark's 10k returning
#: users and their sessions) in ~25 MiB at most, filled early in a long replay and then flat
CACHE_ENTRIES = 16_384
#: the prepared statements sqlite3 keeps per connection (its default, 128, is shared with the
#: history and export queries; an update's SQL varies with the columns it changes)
_STATEMENTS = 512
#: a profile's attributes as stored: canonical JSON, one encoder for the process
#: (``json.dumps`` with options builds one per call)
_ATTRIBUTES = json.JSONEncoder(ensure_ascii=False, sort_keys=True, separators=(",", ":"))

K = TypeVar("K")
V = TypeVar("V")


@attrs.frozen
class Run:
    """A replay of one log under one ruleset, and where it stopped."""

    id: int
    count: int
    last_line: int
    last_event_id: str | None
    last_hash: str | None


class _Bounded(OrderedDict[K, V], Generic[K, V]):
    """A map that forgets its oldest entry beyond ``limit`` entries (memory stays flat however
    many profiles the file holds)."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def put(self, key: K, value: V) -> None:
        self[key] = value
        if len(self) > self.limit:
            self.popitem(last=False)


class _ReadCache:
    """What this connection last saw of the file, keyed as the planner asks for it.

    Absences are kept too (no such profile or session, no active profile holding a key): a
    new user's or session's lookups would otherwise query the file each time, as the planner
    asks again before writing.
    """

    def __init__(self, limit: int) -> None:
        self.profiles: _Bounded[str, Profile | None] = _Bounded(limit)
        self.sessions: _Bounded[str, Session | None] = _Bounded(limit)
        #: user key -> the active profile holding it (earliest created), as an id
        self.user_keys: _Bounded[str, str | None] = _Bounded(limit)
        #: email key -> (the limit asked for, the first active holders found, as ids): the
        #: answer to any limit up to the one asked, and to every limit when fewer were found
        self.email_keys: _Bounded[str, tuple[int, tuple[str, ...]]] = _Bounded(limit)

    def clear(self) -> None:
        for part in (self.profiles, self.sessions, self.user_keys, self.email_keys):
            part.clear()

    def wrote_profile(self, after: Profile, before: Profile | None) -> None:
        """Keep up with a profile write: the profile itself, and the key lookups it changes.

        A new profile is created after every other, so it can only join the end of a key's
        holders: a cached answer is extended (an absence becomes it; a complete list of email
        holders gains it) rather than dropped, and a key many profiles share stays cached. An
        update that moves a key or the state forgets the lookups of both keys."""
        self.profiles.put(after.id, _owned(after))
        if before is None:
            if after.state != "active":
                return
            key = after.user_key
            if key is not None and key in self.user_keys and self.user_keys[key] is None:
                self.user_keys.put(key, after.id)
            if after.email_key is not None and after.email_key in self.email_keys:
                asked, ids = self.email_keys[after.email_key]
                if len(ids) < asked:
                    self.email_keys.put(after.email_key, (asked, (*ids, after.id)))
            return
        moved = before.state != after.state
        if moved or before.user_key != after.user_key:
            for key in (before.user_key, after.user_key):
                if key is not None:
                    self.user_keys.pop(key, None)
        if moved or before.email_key != after.email_key:
            for key in (before.email_key, after.email_key):
                if key is not None:
                    self.email_keys.pop(key, None)


class _Transaction:
    """What :meth:`SqliteStore.transaction` returns: one object per store, reused (a
    generator-based context manager costs a microsecond per event)."""

    __slots__ = ("_store",)

    def __init__(self, store: SqliteStore) -> None:
        self._store = store

    def __enter__(self) -> None:
        self._store._enter()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        failure: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._store._exit(failure)


class SqliteStore:
    """A store in one SQLite file.

    ``create``: make the file and its tables when missing (False: the file must already be an
    idrules store; nothing is written on opening). ``readonly``: open an existing store for
    reading only (``mode=ro``, or ``immutable`` when SQLite cannot share its lock files, as in
    a folder the reader may not write): nothing is ever created or written. A file that holds
    other tables, or an idrules store of an unknown schema version, is refused before
    anything is written to it; a store of an older version this idrules can upgrade is
    re-keyed once when opened for writing, and :attr:`notes` says what changed.

    One store may be shared by threads: each event's transaction, and every read, holds the
    store's lock, so events are decided one at a time and a reader never sees half of one.

    ``commit_every``: 1 (the default) commits each event on its own. N > 1 groups N events per
    commit: each event is still atomic (an event that fails is rolled back alone, see
    :meth:`_undo_event`), the file stays consistent, but a crash loses up to N-1 decided
    events, which a resumed replay then decides again. It raises throughput (one commit per
    group) at that durability cost; :meth:`commit` (or :meth:`close`) makes the last group
    durable. ``before_commit`` is called just before each commit (a replay flushes its
    decisions file there, so the file never lags the store).

    Writes go through :meth:`apply` only (a commit group replays what it applied when one of
    its events fails).
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
        #: one-line notes about the opening (an older store re-keyed), for the caller to show
        self.notes: list[str] = []
        self._lock = threading.RLock()
        self.commit_every = commit_every
        self.before_commit: Callable[[], object] | None = None
        self._pending = 0
        self._depth = 0
        self._closed = False
        self._transaction = _Transaction(self)
        #: what :meth:`apply` wrote in the current event, then (once it succeeded) since the
        #: commit group's savepoint: what to write again after rolling a failed event back
        self._applied: list[tuple[Changes, DecisionRecord | None]] = []
        self._since_mark: list[tuple[Changes, DecisionRecord | None]] = []
        self._cache = _ReadCache(CACHE_ENTRIES)
        #: whether the cache may answer reads: only inside a write transaction it validated
        self._trusted = False
        self._data_version: int | None = None
        if (readonly or not create) and not os.path.isfile(self.path):
            raise StoreError(f"store not found: {self.path}")
        self._conn = self._connect(timeout)
        try:
            self._open_patiently(create and not readonly, timeout)
        except sqlite3.Error as exc:
            self._conn.close()
            raise StoreError(f"cannot open store {self.path}: {_why(exc)}") from None
        except StoreError:
            self._conn.close()
            raise
        # one cursor for the per-event statements: each fetches its row at once
        self._cur = self._conn.cursor()
        self.db = sqlite_utils.Database(self._conn)

    def _connect(self, timeout: float) -> sqlite3.Connection:
        """The connection: read-write, or read-only (``mode=ro``, then ``immutable`` when the
        folder's lock files cannot be made). Shared by the threads using this store, which
        take :attr:`_lock` around every use."""

        def connect(target: str, uri: bool) -> sqlite3.Connection:
            conn = sqlite3.connect(
                target,
                isolation_level=None,
                timeout=timeout,
                cached_statements=_STATEMENTS,
                check_same_thread=False,
                uri=uri,
            )
            if self.readonly:  # a WAL file's first read needs its lock files: check now
                conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            return conn

        try:
            if not self.readonly:
                return connect(self.path, False)
            url = "file:" + urllib.parse.quote(os.path.abspath(self.path))
            try:
                return connect(url + "?mode=ro", True)
            except sqlite3.OperationalError:
                return connect(url + "?immutable=1", True)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open store {self.path}: {_why(exc)}") from None

    def _open_patiently(self, create: bool, timeout: float) -> None:
        """Open, retrying while another process holds the lock for its own opening: switching
        the journal to WAL takes the file for a moment without honouring the busy timeout."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._open(create)
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                time.sleep(0.01)

    def _open(self, create: bool) -> None:
        conn = self._conn
        tables = self._tables()
        if tables and "meta" not in tables:
            raise StoreError(f"{self.path} is an SQLite database but not an idrules store")
        if not tables and not create:
            raise StoreError(f"{self.path} is not an idrules store (it holds no tables)")
        if tables:  # an existing store: check it before writing anything (even a pragma)
            if check_version(conn, self.path, writable=not self.readonly) != SCHEMA_VERSION:
                note = upgrade(conn, self.path)
                if note is not None:
                    self.notes.append(note)
        elif create:
            conn.execute("PRAGMA journal_mode=WAL")
        if self.readonly:
            return
        conn.execute("PRAGMA synchronous=NORMAL")
        # 32 MiB of pages (64 before the read cache): the read cache holds what the planner
        # asks for again, the pages serve the writes; a long replay's memory then stops
        # growing early (~150 MiB at 1M events), at no measurable cost with 1M profiles
        conn.execute("PRAGMA cache_size=-32768")
        # a commit group's savepoint journals the pages its events change: in memory rather
        # than in a temporary file written page by page (bounded by _MARK_EVERY)
        conn.execute("PRAGMA temp_store=MEMORY")
        # a checkpoint (copying the WAL's pages into the file, two fsyncs) every 8192 WAL pages
        # (~32 MiB) rather than SQLite's 1000: a page rewritten many times is copied once,
        # which takes ~15 µs off each per-event commit
        conn.execute("PRAGMA wal_autocheckpoint=8192")
        if tables:
            return
        # one opener at a time: sqlite-utils' deferred read-then-write fails at once with
        # "database is locked" (and its STRICT probe then silently gives up STRICT)
        conn.execute("BEGIN IMMEDIATE")
        try:
            tables = self._tables()  # another opener may have made it since
            if not tables:
                create_schema(sqlite_utils.Database(conn))
            elif "meta" not in tables:
                raise StoreError(f"{self.path} is an SQLite database but not an idrules store")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        check_version(conn, self.path)

    def _tables(self) -> set[str]:
        rows = self._conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
        return {row[0] for row in rows}

    # transactions ----------------------------------------------------------------------
    def transaction(self) -> AbstractContextManager[None]:
        """One event: ``BEGIN IMMEDIATE`` ... ``COMMIT``, or one event of a commit group.

        If the body raises, that event's writes are rolled back (and only them).
        """
        return self._transaction

    def _enter(self) -> None:
        self._lock.acquire()  # released by _exit, or here when the transaction cannot begin
        self._depth += 1
        if self._depth > 1 or self._conn.in_transaction:
            return
        if self.readonly:
            self._depth -= 1
            self._lock.release()
            raise StoreError(f"store {self.path} was opened read-only")
        try:
            self._begin()
        except sqlite3.Error as exc:
            self._depth -= 1
            self._forget()
            self._lock.release()
            raise StoreError(f"cannot write store {self.path}: {_why(exc)}") from None

    def _exit(self, failure: BaseException | None) -> None:
        try:
            self._finish(failure)
        finally:
            self._lock.release()

    def _finish(self, failure: BaseException | None) -> None:
        self._depth -= 1
        if self._depth:
            return
        applied = self._applied
        self._applied = []
        if failure is not None:
            self._undo_event()
            if isinstance(failure, sqlite3.Error):
                raise StoreError(f"store {self.path}: {_why(failure)}") from None
            return
        self._pending += 1
        if self._pending >= self.commit_every:
            self.commit()
        elif applied:
            self._since_mark += applied
            if len(self._since_mark) >= _MARK_EVERY:
                try:
                    self._cur.execute("RELEASE mark")
                    self._mark()
                except sqlite3.Error as exc:
                    self._abandon()
                    raise StoreError(f"store {self.path}: {_why(exc)}") from None

    def _begin(self) -> None:
        """Take the write lock, and trust the read cache again if no other connection has
        committed since this one last looked."""
        cur = self._cur
        cur.execute("BEGIN IMMEDIATE")
        version = cur.execute("PRAGMA data_version").fetchone()[0]
        if version != self._data_version:
            self._cache.clear()
            self._data_version = version
        self._trusted = True
        if self.commit_every > 1:
            self._mark()

    def _mark(self) -> None:
        """Inside a commit group: the savepoint a failed event rolls back to, before the
        events applied since it are written again (:meth:`_undo_event`). A savepoint per
        event would cost two statements per event; this costs two per :data:`_MARK_EVERY`
        events, which also bounds what the savepoint's journal and the list of events hold."""
        self._cur.execute("SAVEPOINT mark")
        self._since_mark.clear()

    def _undo_event(self) -> None:
        """Roll a failed event's writes back, and only them: to the commit group's savepoint,
        then the group's events since then written again. Should that fail too, the whole
        uncommitted group goes, as in a crash (a resumed replay decides it again)."""
        self._cache.clear()  # it may hold the failed event's writes: this is the rare path
        since, self._since_mark = self._since_mark, []
        try:
            if self._pending == 0:  # nothing else in this transaction: release the lock
                self._cur.execute("ROLLBACK")
                self._trusted = False
                return
            self._cur.execute("ROLLBACK TO mark")
            for changes, record in since:
                self._write(changes, record)
            self._since_mark = since
        except BaseException as exc:
            lost = self._pending
            self._abandon()
            if isinstance(exc, sqlite3.Error):
                raise StoreError(
                    f"store {self.path}: {_why(exc)} (and the {lost} uncommitted events of "
                    "this commit group with the failed one)"
                ) from None
            raise

    def _abandon(self) -> None:
        """Give up the open transaction, whatever state it is in."""
        self._pending = 0
        self._since_mark = []
        self._forget()
        if self._conn.in_transaction:
            with suppress(sqlite3.Error):
                self._cur.execute("ROLLBACK")

    def _forget(self) -> None:
        """Drop the read cache and stop trusting it (after a failed begin or commit, when what
        the file holds is unsure)."""
        self._cache.clear()
        self._trusted = False

    def commit(self) -> None:
        """Commit the events decided so far (a no-op when nothing is pending)."""
        with self._lock:
            self._commit()

    def _commit(self) -> None:
        self._pending = 0
        self._since_mark.clear()
        if self._conn.in_transaction:
            if self.before_commit is not None:
                self.before_commit()
            try:
                self._cur.execute("COMMIT")
            except sqlite3.Error as exc:
                self._forget()
                raise StoreError(f"cannot commit to store {self.path}: {_why(exc)}") from None
        # the lock is released: others may write before this connection's next begin
        self._trusted = False

    # reading ---------------------------------------------------------------------------
    # Each read holds the store's lock (re-entered, cheaply, inside a transaction): threads
    # share one connection, and a reader must never see half of another thread's event.
    def is_decided(self, event_id: str) -> bool:
        with self._lock:
            return self._cur.execute(_IS_DECIDED, (event_id,)).fetchone() is not None

    def profile(self, profile_id: str) -> Profile | None:
        with self._lock:
            profiles = self._cache.profiles
            if self._trusted and profile_id in profiles:
                return profiles[profile_id]
            row = self._cur.execute(_PROFILE_BY_ID, (profile_id,)).fetchone()
            found = None if row is None else _profile(row)
            if self._trusted:
                profiles.put(profile_id, found)
            return found

    def by_user_key(self, user_key: str) -> Profile | None:
        with self._lock:
            keys = self._cache.user_keys
            if self._trusted and user_key in keys:
                return self._by_id(keys[user_key])
            found = self._load(_PROFILE_BY_USER_KEY, (user_key,))
            holder = found[0] if found else None
            if self._trusted:
                keys.put(user_key, None if holder is None else holder.id)
            return holder

    def by_email_key(self, email_key: str, limit: int) -> list[Profile]:
        with self._lock:
            keys = self._cache.email_keys
            if self._trusted and email_key in keys:
                asked, ids = keys[email_key]
                if limit <= asked or len(ids) < asked:
                    return [p for p in map(self._by_id, ids[:limit]) if p is not None]
            found = self._load(_PROFILES_BY_EMAIL_KEY, (email_key, limit))
            if self._trusted:
                keys.put(email_key, (limit, tuple(p.id for p in found)))
            return found

    def _by_id(self, profile_id: str | None) -> Profile | None:
        return None if profile_id is None else self.profile(profile_id)

    def _load(self, sql: str, args: tuple[Any, ...]) -> list[Profile]:
        """The profiles a key lookup finds, added to the profile cache when trusted."""
        found = [_profile(row) for row in self._cur.execute(sql, args).fetchall()]
        if self._trusted:
            for p in found:
                self._cache.profiles.put(p.id, p)
        return found

    def session(self, session_id: str) -> Session | None:
        with self._lock:
            sessions = self._cache.sessions
            if self._trusted and session_id in sessions:
                return sessions[session_id]
            row = self._cur.execute(_SESSION_BY_ID, (session_id,)).fetchone()
            found = None if row is None else Session(*row)
            if self._trusted:
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
                f"SELECT seq, {_PROFILE_COLUMNS} FROM profiles WHERE seq > ? ORDER BY seq "
                f"LIMIT {_EXPORT_BATCH}",
                (after,),
            )
            for row in rows:
                yield _profile(row[1:])
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

    def _fetch(self, sql: str, args: tuple[Any, ...] | list[Any] = ()) -> list[Any]:
        """All rows of one query, under the store's lock; a failure is one line."""
        with self._lock:
            try:
                return self._conn.execute(sql, args).fetchall()
            except sqlite3.Error as exc:
                raise StoreError(f"store {self.path}: {_why(exc)}") from None

    # writing ---------------------------------------------------------------------------
    def apply(self, changes: Changes, record: DecisionRecord | None = None) -> None:
        """Write one event's changes (call inside :meth:`transaction`)."""
        self._applied.append((changes, record))
        self._write(changes, record)

    def _write(self, changes: Changes, record: DecisionRecord | None) -> None:
        """The statements of :meth:`apply`. The read cache follows every write, trusted or
        not: a write is this connection's own, so what the cache holds stays what the file
        holds."""
        cur, cache = self._cur, self._cache
        for write in changes.profiles:
            p, before = write.after, write.before
            if before is None:
                cur.execute(_INSERT_PROFILE, _row(p))
            else:
                self._update_profile(p, before)
            cache.wrote_profile(p, before)
        for session in changes.sessions:
            cur.execute(_UPSERT_SESSION, (session.id, session.current, session.anon))
            cache.sessions.put(session.id, session)
        for source, target in changes.moves:
            cur.execute(_MOVE_ACTIVITY, (target, source))
        if changes.event_id is not None:
            cur.execute(_INSERT_EVENT, (changes.event_id,))
        about = None
        if record is not None:
            about = record.profile
            merged = dumps(list(record.merged)) if record.merged else "[]"
            cur.execute(
                _INSERT_DECISION,
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
            cur.execute(_INSERT_BARE_DECISION, (changes.event_id,))
        else:
            return
        seq = cur.lastrowid
        if about is not None:
            cur.execute(_INSERT_TIMELINE, (about, seq, 0, None))
        for n, (event_id, profile) in enumerate(changes.activity, 1):
            cur.execute(_INSERT_TIMELINE, (profile, seq, n, event_id))

    def _update_profile(self, p: Profile, before: Profile) -> None:
        """Write only the columns that changed: an unchanged indexed column then costs no
        index page, and unchanged attributes no JSON encoding."""
        names: list[str] = []
        values: list[Any] = []
        for name in _UPDATABLE:
            value = getattr(p, name)
            if value != getattr(before, name):
                names.append(name)
                values.append(_ATTRIBUTES.encode(value) if name == "attributes" else value)
        if names:
            values.append(p.id)
            self._cur.execute(_update_sql(tuple(names)), values)

    # replay runs and history ---------------------------------------------------------
    def run_for(self, log_key: str, ruleset: str) -> Run:
        """The replay run of this log under this ruleset (made on first use), with where it
        stopped: how many decisions it holds and the last one's line, event id and hash."""
        conn = self._conn
        with self._lock:
            return self._run_for(conn, log_key, ruleset)

    def _run_for(self, conn: sqlite3.Connection, log_key: str, ruleset: str) -> Run:
        try:
            # its own transaction, not an event's: a commit group re-applies only events
            self.commit()
            conn.execute(
                "INSERT OR IGNORE INTO runs (log_key, ruleset) VALUES (?, ?)", (log_key, ruleset)
            )
            run_id = conn.execute(
                "SELECT id FROM runs WHERE log_key=? AND ruleset=?", (log_key, ruleset)
            ).fetchone()[0]
            count = conn.execute(
                "SELECT count(*) FROM decisions WHERE run=?", (run_id,)
            ).fetchone()[0]
            last = conn.execute(
                "SELECT line, event_id, hash FROM decisions WHERE run=? ORDER BY seq DESC LIMIT 1",
                (run_id,),
            ).fetchone()
        except sqlite3.Error as exc:
            raise StoreError(f"store {self.path}: {_why(exc)}") from None
        if last is None:
            return Run(run_id, 0, 0, None, None)
        return Run(run_id, count, last[0], last[1], last[2])

    def claim_run(self, log_key: str, ruleset: str) -> tuple[Run, AbstractContextManager[object]]:
        """:meth:`run_for`, claimed for this process: one replay of a run at a time.

        The claim is an operating-system lock (:mod:`idrules.runlock`, released on exit of the
        returned context manager, or by the kernel when the process dies); a claim another
        replay holds (in another process, or this one) raises ``RunBusyError`` at once. A run
        the store already knows is claimed before anything is written (another replay of it
        may hold the write lock for a whole commit group); a new one is made, then claimed."""
        from contextlib import nullcontext

        from ..runlock import RunLock

        if self.path == ":memory:":  # nobody else can reach it
            return self.run_for(log_key, ruleset), nullcontext()
        try:
            known = self._conn.execute(
                "SELECT id FROM runs WHERE log_key=? AND ruleset=?", (log_key, ruleset)
            ).fetchone()
        except sqlite3.Error as exc:
            raise StoreError(f"store {self.path}: {_why(exc)}") from None
        lock = None if known is None else RunLock(self.path, known[0])
        try:
            run = self.run_for(log_key, ruleset)
            if lock is None:
                lock = RunLock(self.path, run.id)
        except BaseException:
            if lock is not None:
                lock.release()
            raise
        return run, lock

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
            row = rows[0] if rows else None
            if row is None or row[0] is None or row[0] in seen:
                return profile_id
            profile_id = row[0]
            seen.add(profile_id)

    def find_profiles(self, column: str, value: str) -> list[str]:
        """Ids of profiles (any state) whose ``user_id``, ``user_key``, ``email_key`` or ``id``
        equals ``value``, earliest first."""
        if column not in ("id", "user_id", "user_key", "email_key"):
            raise ValueError(column)
        rows = self._fetch(f"SELECT id FROM profiles WHERE {column}=? ORDER BY seq", (value,))
        return [row[0] for row in rows]

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


@cache
def _update_sql(names: tuple[str, ...]) -> str:
    """The UPDATE of exactly these profile columns (a handful of combinations occur)."""
    return f"UPDATE profiles SET {', '.join(f'{n}=?' for n in names)} WHERE id=?"


def _owned(p: Profile) -> Profile:
    """``p`` sharing no nested attribute value with the caller's objects: a cached profile
    must not change when the caller later mutates its payload."""
    if any(isinstance(v, (dict, list)) for v in p.attributes.values()):
        return attrs.evolve(p, attributes=detached(p.attributes))
    return p


def _profile(row: tuple[Any, ...]) -> Profile:
    return Profile(
        id=row[0],
        created_by=row[1],
        user_id=row[2],
        user_key=row[3],
        email=row[4],
        email_key=row[5],
        name=row[6],
        avatar=row[7],
        verified=bool(row[8]),
        anonymous=bool(row[9]),
        state=row[10],
        merged_into=row[11],
        attributes=json.loads(row[12]),
        last_seen=row[13],
    )


def _row(p: Profile) -> tuple[Any, ...]:
    return (
        p.id,
        p.created_by,
        p.user_id,
        p.user_key,
        p.email,
        p.email_key,
        p.name,
        p.avatar,
        int(p.verified),
        int(p.anonymous),
        p.state,
        p.merged_into,
        _ATTRIBUTES.encode(p.attributes),
        p.last_seen,
    )


def _why(exc: sqlite3.Error) -> str:
    text = str(exc) or type(exc).__name__
    if "not a database" in text:
        return "the file is not an SQLite database"
    return text
