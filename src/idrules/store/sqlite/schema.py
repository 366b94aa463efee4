"""The SQLite store's schema: created once per file, checked (and upgraded) on opening.

With a commit per event, what an event costs is mostly how many distinct B-tree pages it
dirties: each is a WAL frame at the commit (two ``pwrite`` calls, then a share of the next
checkpoint: 5-10 µs here). Version 3 lays the tables out so that an event of the benchmark's
mix dirties ~4.8 pages, where version 2's dirtied ~8.8:

- tables read by their key are ``WITHOUT ROWID`` (``events``, ``sessions``, ``timeline``):
  one B-tree where a rowid table with a text key is two (the rows and the key's index), both
  written on every insert;
- a profile's history and its activity share one B-tree, ``timeline``, keyed by (profile,
  seq, n): a track decision's two entries land in one page, where version 2 wrote an index
  of decisions by profile, an activity table and its index;
- indexes on nullable columns are partial (``IS NOT NULL``): an anonymous profile adds no
  match-key entry, an unmerged profile no ``merged_into`` entry, a session without an
  anonymous profile no ``anon`` entry, a library call's decision no ``run`` entry. A lookup
  ``column = ?`` still uses them (it implies ``NOT NULL``);
- ``profiles`` and ``decisions`` keep an integer rowid (``seq``: creation and application
  order), appended at the right edge of their B-tree; ``decisions.seq`` also orders the
  timeline.

sqlite-utils creates the rowid tables and plain indexes; it has no option for ``WITHOUT
ROWID`` tables or partial indexes, so those are plain DDL run through the same database.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

from ..._errors import StoreError
from ...matchkeys import email_key_of, user_key

if TYPE_CHECKING:  # imported where a schema is created: a command that makes none skips it
    import sqlite_utils

#: "4": match keys that only lower-case (:mod:`idrules.matchkeys`), indexed with the state so a
#: lookup of the active holders skips the others. "3": WITHOUT ROWID tables, ``timeline``,
#: partial indexes; a version 3 file is re-keyed when opened for writing (:func:`upgrade`)
SCHEMA_VERSION = "4"
#: the versions :func:`upgrade` brings to :data:`SCHEMA_VERSION`
UPGRADABLE = frozenset({"3"})
#: how many groups of profiles that no longer share a key the upgrade's note names
_NAMED = 5


def read_version(conn: sqlite3.Connection) -> str | None:
    """The schema version the file says it has (None: no version row)."""
    found = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    return None if found is None else str(found[0])


def check_version(conn: sqlite3.Connection, path: str, *, writable: bool = True) -> str:
    """Refuse, with one line, a store this idrules cannot use (nothing is written); return
    its version (:data:`SCHEMA_VERSION`, or one :func:`upgrade` takes when ``writable``)."""
    version = read_version(conn)
    if version == SCHEMA_VERSION:
        return version
    if version in UPGRADABLE:
        if writable:
            return version
        raise StoreError(
            f"{path} has store schema version {version}, from an earlier idrules; a command "
            f"that writes to it (replay, resolve) re-keys it to version {SCHEMA_VERSION} once"
        )
    raise StoreError(
        f"{path} has store schema version {version or 'none'}; this idrules reads version "
        f"{SCHEMA_VERSION} (replay the log into a new store)"
    )


def upgrade(conn: sqlite3.Connection, path: str) -> str | None:
    """Bring a version 3 store to version 4 in one transaction: every match key rebuilt by
    :mod:`idrules.matchkeys` (version 3 case-folded them, which joined different people) and
    the key indexes rebuilt with the state. Idempotent: another process that upgraded first
    leaves nothing to do. Returns a one-line note when keys changed (None otherwise)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        if read_version(conn) not in UPGRADABLE:  # another opener did it meanwhile
            conn.execute("ROLLBACK")
            return None
        groups: dict[tuple[str, str], set[str]] = {}
        members: dict[tuple[str, str], list[str]] = {}
        changed = 0
        rows = conn.execute(
            "SELECT id, user_id, user_key, email, email_key FROM profiles "
            "WHERE user_key IS NOT NULL OR email_key IS NOT NULL ORDER BY seq"
        ).fetchall()
        for pid, user_id, old_user, email, old_email in rows:
            new_user = old_user
            if old_user is not None and user_id is not None and old_user != user_id:
                new_user = user_key(user_id, case_sensitive=False)  # v3 folded it: not exact
            new_email = old_email
            if old_email is not None and email is not None:
                new_email = email_key_of(email)
            for kind, old, new in (
                ("user id", old_user, new_user),
                ("email", old_email, new_email),
            ):
                if old is not None:
                    groups.setdefault((kind, old), set()).add(new)
                    members.setdefault((kind, old), []).append(pid)
            if (new_user, new_email) != (old_user, old_email):
                changed += 1
                conn.execute(
                    "UPDATE profiles SET user_key=?, email_key=? WHERE id=?",
                    (new_user, new_email, pid),
                )
        for column in ("user_key", "email_key"):
            conn.execute(f"DROP INDEX IF EXISTS idx_profiles_{column}")
            _key_index(conn, column)
        conn.execute("UPDATE meta SET value=? WHERE key='schema_version'", (SCHEMA_VERSION,))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    split = [(kind, members[kind, old]) for (kind, old), new in groups.items() if len(new) > 1]
    if not changed:
        return None
    note = f"{path}: re-keyed to store schema version {SCHEMA_VERSION} ({changed} profiles)"
    if split:
        named = "; ".join(f"{', '.join(ids)} ({kind})" for kind, ids in split[:_NAMED])
        more = f"; and {len(split) - _NAMED} more" if len(split) > _NAMED else ""
        note += f"; profiles that no longer share a key: {named}{more}"
    return note


def create_schema(db: sqlite_utils.Database) -> None:
    """Tables, indexes and the schema version, in a new file (inside the caller's write
    transaction, so concurrent openers of one new file create it once)."""
    strict = ", STRICT" if db.supports_strict else ""
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
        not_null={"id", "created_by", "verified", "anonymous", "state", "attributes", "last_seen"},
        strict=True,
    )
    db.table("profiles").create_index(["id"], unique=True)
    _key_index(db.conn, "user_key")
    _key_index(db.conn, "email_key")
    _partial_index(db, "profiles", "merged_into")
    db.execute(
        "CREATE TABLE sessions (id TEXT PRIMARY KEY NOT NULL, current TEXT, anon TEXT) "
        f"WITHOUT ROWID{strict}"
    )
    _partial_index(db, "sessions", "current")
    _partial_index(db, "sessions", "anon")
    # a profile's timeline, in the order events were applied (``seq``: the event's row in
    # ``decisions``): n = 0 says that decision is about this profile (history), n >= 1 holds
    # the event's activity entries (``event_id``: the track event) while attributed to it
    db.execute(
        "CREATE TABLE timeline (profile TEXT NOT NULL, seq INTEGER NOT NULL, "
        "n INTEGER NOT NULL, event_id TEXT, PRIMARY KEY (profile, seq, n)) "
        f"WITHOUT ROWID{strict}"
    )
    db.execute(f"CREATE TABLE events (id TEXT PRIMARY KEY NOT NULL) WITHOUT ROWID{strict}")
    # every decision applied, in order: the store's own audit trail (history, resume). A
    # direct write with activity but no record (no engine behind it) gets a bare row (event
    # id only, no outcome): its ``seq`` orders that activity
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
        strict=True,
    )
    _partial_index(db, "decisions", "run")
    db.table("runs").create(
        {"id": int, "log_key": str, "ruleset": str},
        pk="id",
        not_null={"log_key", "ruleset"},
        strict=True,
    )
    db.table("runs").create_index(["log_key", "ruleset"], unique=True)
    db.table("meta").create({"key": str, "value": str}, pk="key", strict=True)
    db.table("meta").insert({"key": "schema_version", "value": SCHEMA_VERSION})


def _partial_index(db: sqlite_utils.Database, table: str, column: str) -> None:
    """``idx_<table>_<column>`` over the rows where ``column`` is set (within one value, in
    primary key order: creation order for profiles, application order for decisions)."""
    db.execute(
        f"CREATE INDEX idx_{table}_{column} ON {table} ({column}) WHERE {column} IS NOT NULL"
    )


def _key_index(conn: sqlite3.Connection, column: str) -> None:
    """``idx_profiles_<column>``: a match key and the state, over the profiles holding a key.
    Within one key and state, entries are in creation order, so "the earliest active holders"
    reads the first few entries, however many profiles hold the key or once held it."""
    conn.execute(
        f"CREATE INDEX idx_profiles_{column} ON profiles ({column}, state) "
        f"WHERE {column} IS NOT NULL"
    )
