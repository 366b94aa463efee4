"""The durable store: one SQLite file (WAL), set up through sqlite-utils, used per event through
prepared SQL.

Every event is one ``BEGIN IMMEDIATE`` transaction around its read-modify-write: the planner's
reads and :meth:`SqliteStore.apply`'s writes see one snapshot, and two processes on one file
queue for the write lock instead of failing with "database is locked" or losing an update.
A crash at any point leaves the file as it was after the last committed event.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlite_utils

from .._errors import StoreError
from .base import Changes, Profile, Session

SCHEMA_VERSION = "1"
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


class SqliteStore:
    """A store in one SQLite file. Opening creates the tables (and the file) if needed.

    ``commit_every``: 1 (the default) commits each event on its own. N > 1 groups N events per
    commit: each event is still atomic (a savepoint), the file stays consistent, but a crash
    loses up to N-1 decided events, which a resumed replay then decides again. It raises
    throughput (one fsync-bound commit per group) at that durability cost; call
    :meth:`commit` (or :meth:`close`) to make the last group durable.
    """

    def __init__(self, path: str | Path, *, timeout: float = 60.0, commit_every: int = 1) -> None:
        if commit_every < 1:
            raise ValueError("commit_every must be at least 1")
        self.path = str(path)
        self.commit_every = commit_every
        self._pending = 0
        try:
            self._conn = sqlite3.connect(self.path, isolation_level=None, timeout=timeout)
            self.db = sqlite_utils.Database(self._conn)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute("PRAGMA cache_size=-65536")
            # one opener at a time: sqlite-utils' deferred read-then-write fails at once with
            # "database is locked" (and its STRICT probe then silently gives up STRICT)
            self._conn.execute("BEGIN IMMEDIATE")
            self._create_schema()
            self._conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open store {self.path}: {_why(exc)}") from None
        self._depth = 0

    def _create_schema(self) -> None:
        """Tables and indexes, created explicitly (idempotent, safe for concurrent openers)."""
        db = self.db
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
        db.table("events").create(
            {"id": str, "line": int}, pk="id", strict=True, if_not_exists=True
        )
        db.table("meta").create(
            {"key": str, "value": str}, pk="key", strict=True, if_not_exists=True
        )
        self._conn.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)",
            (SCHEMA_VERSION,),
        )
        found = self._conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        if found is None or found[0] != SCHEMA_VERSION:
            raise sqlite3.DatabaseError(
                f"store schema version {found[0] if found else '?'} is not {SCHEMA_VERSION}"
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
        try:
            if not conn.in_transaction:
                conn.execute("BEGIN IMMEDIATE")
            conn.execute("SAVEPOINT event")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot write store {self.path}: {_why(exc)}") from None
        self._depth += 1
        try:
            yield
        except BaseException:
            conn.execute("ROLLBACK TO event")
            conn.execute("RELEASE event")
            if self._pending == 0:  # nothing else in this group: release the write lock
                conn.execute("ROLLBACK")
            raise
        finally:
            self._depth -= 1
        conn.execute("RELEASE event")
        self._pending += 1
        if self._pending >= self.commit_every:
            self.commit()

    def commit(self) -> None:
        """Commit the events decided so far (a no-op when nothing is pending)."""
        self._pending = 0
        if self._conn.in_transaction:
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
    def apply(self, changes: Changes) -> None:
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

    def close(self) -> None:
        """Commit any pending group, then close the file."""
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
