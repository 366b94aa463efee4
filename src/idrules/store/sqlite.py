"""The durable store: one SQLite file (WAL), set up through sqlite-utils, used per event through
prepared SQL.

Every event is one ``BEGIN IMMEDIATE`` transaction around its read-modify-write: the planner's
reads and :meth:`SqliteStore.apply`'s writes see one snapshot, and two processes on one file
queue for the write lock instead of failing with "database is locked" or losing an update.
A crash at any point leaves the file as it was after the last committed event.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs
import sqlite_utils

from .._errors import StoreError
from ..decision import dumps
from .base import Changes, DecisionRecord, Profile, Session

SCHEMA_VERSION = "2"
_PROFILE_COLUMNS = (
    "id, created_by, user_id, user_key, email, email_key, name, avatar, verified, anonymous, "
    "state, merged_into, attributes, last_seen"
)
_SELECT_PROFILE = f"SELECT {_PROFILE_COLUMNS} FROM profiles"
_INSERT_PROFILE = f"INSERT INTO profiles ({_PROFILE_COLUMNS}) VALUES ({', '.join('?' * 14)})"
# the indexed key columns are written only when they change: an unchanged write still costs
# the index update
_UPDATE_PROFILE = (
    "UPDATE profiles SET user_id=?, email=?, name=?, avatar=?, verified=?, anonymous=?, "
    "state=?, merged_into=?, attributes=?, last_seen=? WHERE id=?"
)
_UPDATE_KEYS = "UPDATE profiles SET user_key=?, email_key=? WHERE id=?"
_UPSERT_SESSION = (
    "INSERT INTO sessions (id, current, anon) VALUES (?, ?, ?) "
    "ON CONFLICT(id) DO UPDATE SET current=excluded.current, anon=excluded.anon"
)


@attrs.frozen
class Run:
    """A replay of one log under one ruleset, and where it stopped."""

    id: int
    count: int
    last_line: int
    last_event_id: str | None
    last_hash: str | None


class SqliteStore:
    """A store in one SQLite file.

    ``create``: make the file and its tables when missing (False: the file must already be an
    idrules store; nothing is written on opening). A file that holds other tables is refused
    before anything is written to it.

    ``commit_every``: 1 (the default) commits each event on its own. N > 1 groups N events per
    commit: each event is still atomic (a savepoint), the file stays consistent, but a crash
    loses up to N-1 decided events, which a resumed replay then decides again. It raises
    throughput (one fsync-bound commit per group) at that durability cost; :meth:`commit` (or
    :meth:`close`) makes the last group durable. ``before_commit`` is called just before each
    commit (a replay flushes its decisions file there, so the file never lags the store).
    """

    keeps_decisions = True

    def __init__(
        self,
        path: str | Path,
        *,
        create: bool = True,
        commit_every: int = 1,
        timeout: float = 60.0,
    ) -> None:
        if commit_every < 1:
            raise ValueError("commit_every must be at least 1")
        self.path = str(path)
        self.commit_every = commit_every
        self.before_commit: Callable[[], object] | None = None
        self._pending = 0
        self._depth = 0
        self._closed = False
        if not create and not os.path.isfile(self.path):
            raise StoreError(f"store not found: {self.path}")
        try:
            self._conn = sqlite3.connect(self.path, isolation_level=None, timeout=timeout)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open store {self.path}: {_why(exc)}") from None
        try:
            self._open_patiently(create, timeout)
        except sqlite3.Error as exc:
            self._conn.close()
            raise StoreError(f"cannot open store {self.path}: {_why(exc)}") from None
        except StoreError:
            self._conn.close()
            raise
        self.db = sqlite_utils.Database(self._conn)

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
        tables = {
            row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
        }
        if tables and "meta" not in tables:
            raise StoreError(f"{self.path} is an SQLite database but not an idrules store")
        if not tables and not create:
            raise StoreError(f"{self.path} is not an idrules store (it holds no tables)")
        if create:
            conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA cache_size=-65536")
        if create:
            # one opener at a time: sqlite-utils' deferred read-then-write fails at once with
            # "database is locked" (and its STRICT probe then silently gives up STRICT)
            conn.execute("BEGIN IMMEDIATE")
            try:
                self._create_schema(sqlite_utils.Database(conn))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        found = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        if found is None or found[0] != SCHEMA_VERSION:
            version = found[0] if found else "none"
            raise StoreError(
                f"{self.path} has store schema version {version}; this idrules "
                f"reads version {SCHEMA_VERSION}"
            )

    @staticmethod
    def _create_schema(db: sqlite_utils.Database) -> None:
        """Tables and indexes, created explicitly (idempotent)."""
        db.table("profiles").create(
            {
                "seq": int,
                "id": str,
                "created_by": str,
                "user_id": str,
                "user_key": str,
                "email": str,
                "email_key": str,
                "name": str,
                "avatar": str,
                "verified": int,
                "anonymous": int,
                "state": str,
                "merged_into": str,
                "attributes": str,
                "last_seen": int,
            },
            pk="seq",
            not_null={
                "id",
                "created_by",
                "verified",
                "anonymous",
                "state",
                "attributes",
                "last_seen",
            },
            strict=True,
            if_not_exists=True,
        )
        db.table("profiles").create_index(["id"], unique=True, if_not_exists=True)
        db.table("profiles").create_index(["user_key"], if_not_exists=True)
        db.table("profiles").create_index(["email_key"], if_not_exists=True)
        db.table("profiles").create_index(["merged_into"], if_not_exists=True)
        db.table("sessions").create(
            {"id": str, "current": str, "anon": str}, pk="id", strict=True, if_not_exists=True
        )
        db.table("sessions").create_index(["current"], if_not_exists=True)
        db.table("sessions").create_index(["anon"], if_not_exists=True)
        db.table("activity").create(
            {"seq": int, "event_id": str, "profile": str},
            pk="seq",
            not_null={"event_id", "profile"},
            strict=True,
            if_not_exists=True,
        )
        db.table("activity").create_index(["profile", "seq"], if_not_exists=True)
        db.table("events").create({"id": str}, pk="id", strict=True, if_not_exists=True)
        # every decision applied, in order: the store's own audit trail (history, resume)
        db.table("decisions").create(
            {
                "seq": int,
                "run": int,
                "line": int,
                "event_id": str,
                "outcome": str,
                "profile": str,
                "merged": str,
                "reasons": str,
                "hash": str,
            },
            pk="seq",
            not_null={"outcome", "merged", "reasons"},
            strict=True,
            if_not_exists=True,
        )
        db.table("decisions").create_index(["profile"], if_not_exists=True)
        db.table("decisions").create_index(["run", "seq"], if_not_exists=True)
        db.table("runs").create(
            {"id": int, "log_key": str, "ruleset": str},
            pk="id",
            not_null={"log_key", "ruleset"},
            strict=True,
            if_not_exists=True,
        )
        db.table("runs").create_index(["log_key", "ruleset"], unique=True, if_not_exists=True)
        db.table("meta").create(
            {"key": str, "value": str}, pk="key", strict=True, if_not_exists=True
        )
        db.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)",
            (SCHEMA_VERSION,),
        )

    # transactions ----------------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One event: ``BEGIN IMMEDIATE`` ... ``COMMIT``, or a savepoint inside a commit group.

        If the body raises, that event's writes are rolled back (and only them).
        """
        if self._depth:
            yield
            return
        conn = self._conn
        # a savepoint only inside a commit group: alone, the transaction is the event
        grouped = self.commit_every > 1
        try:
            if not conn.in_transaction:
                conn.execute("BEGIN IMMEDIATE")
            if grouped:
                conn.execute("SAVEPOINT event")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot write store {self.path}: {_why(exc)}") from None
        self._depth += 1
        try:
            yield
        except sqlite3.Error as exc:
            self._rollback_event(grouped)
            raise StoreError(f"store {self.path}: {_why(exc)}") from None
        except BaseException:
            self._rollback_event(grouped)
            raise
        finally:
            self._depth -= 1
        if grouped:
            conn.execute("RELEASE event")
        self._pending += 1
        if self._pending >= self.commit_every:
            self.commit()

    def _rollback_event(self, grouped: bool) -> None:
        conn = self._conn
        if grouped:
            conn.execute("ROLLBACK TO event")
            conn.execute("RELEASE event")
        if self._pending == 0:  # nothing else in this group: release the write lock
            conn.execute("ROLLBACK")

    def commit(self) -> None:
        """Commit the events decided so far (a no-op when nothing is pending)."""
        self._pending = 0
        if self._conn.in_transaction:
            if self.before_commit is not None:
                self.before_commit()
            try:
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                raise StoreError(f"cannot commit to store {self.path}: {_why(exc)}") from None

    # reading ---------------------------------------------------------------------------
    def is_decided(self, event_id: str) -> bool:
        row = self._conn.execute("SELECT 1 FROM events WHERE id=?", (event_id,)).fetchone()
        return row is not None

    def profile(self, profile_id: str) -> Profile | None:
        row = self._conn.execute(f"{_SELECT_PROFILE} WHERE id=?", (profile_id,)).fetchone()
        return None if row is None else _profile(row)

    def by_user_key(self, user_key: str) -> Profile | None:
        row = self._conn.execute(
            f"{_SELECT_PROFILE} WHERE user_key=? AND state='active' ORDER BY seq LIMIT 1",
            (user_key,),
        ).fetchone()
        return None if row is None else _profile(row)

    def by_email_key(self, email_key: str) -> list[Profile]:
        rows = self._conn.execute(
            f"{_SELECT_PROFILE} WHERE email_key=? AND state='active' ORDER BY seq", (email_key,)
        ).fetchall()
        return [_profile(row) for row in rows]

    def session(self, session_id: str) -> Session | None:
        row = self._conn.execute(
            "SELECT id, current, anon FROM sessions WHERE id=?", (session_id,)
        ).fetchone()
        return None if row is None else Session(*row)

    def sessions_of(self, profile_id: str) -> list[Session]:
        rows = self._conn.execute(
            "SELECT id, current, anon FROM sessions WHERE current=? OR anon=? ORDER BY id",
            (profile_id, profile_id),
        ).fetchall()
        return [Session(*row) for row in rows]

    def profiles(self) -> Iterator[Profile]:
        for row in self._conn.execute(f"{_SELECT_PROFILE} ORDER BY seq"):
            yield _profile(row)

    def activity_of(self, profile_id: str) -> list[str]:
        rows = self._conn.execute(
            "SELECT event_id FROM activity WHERE profile=? ORDER BY seq", (profile_id,)
        ).fetchall()
        return [row[0] for row in rows]

    def acting_sessions(self, profile_id: str) -> list[str]:
        rows = self._conn.execute(
            "SELECT id FROM sessions WHERE current=? ORDER BY id", (profile_id,)
        ).fetchall()
        return [row[0] for row in rows]

    # writing ---------------------------------------------------------------------------
    def apply(self, changes: Changes, record: DecisionRecord | None = None) -> None:
        """Write one event's changes (call inside :meth:`transaction`)."""
        conn = self._conn
        for write in changes.profiles:
            p, before = write.after, write.before
            if before is None:
                conn.execute(_INSERT_PROFILE, _row(p))
                continue
            conn.execute(
                _UPDATE_PROFILE,
                (
                    p.user_id,
                    p.email,
                    p.name,
                    p.avatar,
                    int(p.verified),
                    int(p.anonymous),
                    p.state,
                    p.merged_into,
                    _attributes(p),
                    p.last_seen,
                    p.id,
                ),
            )
            if (p.user_key, p.email_key) != (before.user_key, before.email_key):
                conn.execute(_UPDATE_KEYS, (p.user_key, p.email_key, p.id))
        for session in changes.sessions:
            conn.execute(_UPSERT_SESSION, (session.id, session.current, session.anon))
        if changes.activity:
            conn.executemany(
                "INSERT INTO activity (event_id, profile) VALUES (?, ?)", changes.activity
            )
        for source, target in changes.moves:
            conn.execute("UPDATE activity SET profile=? WHERE profile=?", (target, source))
        if changes.event_id is not None:
            conn.execute("INSERT INTO events (id) VALUES (?)", (changes.event_id,))
        if record is not None:
            conn.execute(
                "INSERT INTO decisions (run, line, event_id, outcome, profile, merged, reasons, "
                "hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.run,
                    record.line,
                    record.event_id,
                    record.outcome,
                    record.profile,
                    dumps(list(record.merged)),
                    record.reasons,
                    record.hash,
                ),
            )

    # replay runs and history ---------------------------------------------------------
    def run_for(self, log_key: str, ruleset: str) -> Run:
        """The replay run of this log under this ruleset (made on first use), with where it
        stopped: how many decisions it holds and the last one's line, event id and hash."""
        conn = self._conn
        try:
            with self.transaction():
                conn.execute(
                    "INSERT OR IGNORE INTO runs (log_key, ruleset) VALUES (?, ?)",
                    (log_key, ruleset),
                )
            self.commit()
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

    def history(self, profile_ids: Iterable[str]) -> Iterator[DecisionRecord]:
        """Every decision whose profile is one of ``profile_ids``, in the order applied."""
        ids = list(profile_ids)
        marks = ", ".join("?" * len(ids))
        rows = self._conn.execute(
            "SELECT event_id, outcome, profile, merged, reasons, run, line, hash FROM decisions "
            f"WHERE profile IN ({marks}) ORDER BY seq",
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
            rows = self._conn.execute(
                "SELECT id FROM profiles WHERE merged_into=? ORDER BY seq", (todo.pop(),)
            ).fetchall()
            for (pid,) in rows:
                if pid not in found and pid != profile_id:
                    found.append(pid)
                    todo.append(pid)
        return found

    def root_of(self, profile_id: str) -> str:
        """The profile ``profile_id`` was merged into, followed to the end (itself if none)."""
        seen = {profile_id}
        while True:
            row = self._conn.execute(
                "SELECT merged_into FROM profiles WHERE id=?", (profile_id,)
            ).fetchone()
            if row is None or row[0] is None or row[0] in seen:
                return profile_id
            profile_id = row[0]
            seen.add(profile_id)

    def find_profiles(self, column: str, value: str) -> list[str]:
        """Ids of profiles (any state) whose ``user_id``, ``user_key``, ``email_key`` or ``id``
        equals ``value``, earliest first."""
        if column not in ("id", "user_id", "user_key", "email_key"):
            raise ValueError(column)
        rows = self._conn.execute(
            f"SELECT id FROM profiles WHERE {column}=? ORDER BY seq", (value,)
        ).fetchall()
        return [row[0] for row in rows]

    def close(self) -> None:
        """Commit any pending group, then close the file (again: a no-op)."""
        if self._closed:
            return
        self._closed = True
        try:
            self.commit()
        finally:
            self._conn.close()


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
        _attributes(p),
        p.last_seen,
    )


def _attributes(p: Profile) -> str:
    return json.dumps(p.attributes, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def _why(exc: sqlite3.Error) -> str:
    text = str(exc) or type(exc).__name__
    if "not a database" in text:
        return "the file is not an SQLite database"
    return text
