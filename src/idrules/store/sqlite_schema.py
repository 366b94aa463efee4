"""The SQLite store's schema: created once per file, checked on every opening.

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

import sqlite_utils

from .._errors import StoreError

#: "3": WITHOUT ROWID tables, ``timeline``, partial indexes (a version 2 file is refused)
SCHEMA_VERSION = "3"


def check_version(conn: sqlite3.Connection, path: str) -> None:
    """Refuse, with one line, a store written by another schema version (nothing is written)."""
    found = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    if found is None or found[0] != SCHEMA_VERSION:
        version = found[0] if found else "none"
        raise StoreError(
            f"{path} has store schema version {version}; this idrules reads version "
            f"{SCHEMA_VERSION} (replay the log into a new store)"
        )


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
    _partial_index(db, "profiles", "user_key")
    _partial_index(db, "profiles", "email_key")
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
