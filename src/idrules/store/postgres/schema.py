"""A PostgreSQL store's tables: in a PostgreSQL schema of their own (default ``idrules``), so
they sit beside an application's tables; created on first use, checked on every opening.

The layout mirrors the SQLite store's (:mod:`idrules.store.sqlite.schema`):

- ``profiles``: ``seq`` (a ``bigserial``) is creation order: the export's order, and the order
  in which "the earliest holders of an email" are read. Indexes: the email key with the state
  and ``seq`` (``WHERE email_key=$1 AND state='active' ORDER BY seq LIMIT $2`` reads the first
  entries of one key), and a partial UNIQUE index on the user key of active profiles, which
  both answers the user-key lookup and is the safety net of the invariant "a user id on at
  most one active profile" (a concurrent second holder fails with a unique violation, and the
  event is planned again); ``merged_into`` and ``user_id`` for ``history``;
- ``sessions``, ``timeline`` (per profile, the order of the decisions about it, n = 0, and its
  activity, n >= 1), ``events`` (the decided event ids: its primary key is "one decision per
  event id"), ``decisions`` (the audit records), ``runs`` (replays), ``meta`` (the version).

Every text column uses the ``"C"`` collation: comparisons and ``ORDER BY`` go by code point, as
in Python and SQLite, so sessions sort the same way in every store (and indexes are cheaper).
Creation takes a transaction-level advisory lock, so processes opening a new database at once
create the tables once; a schema that holds other tables, or idrules tables of another
version, is refused before anything is written.
"""

from __future__ import annotations

import hashlib
from typing import Any

import psycopg

from ..._errors import StoreError
from .url import StoreUrl, scrub

#: this store type's own schema versions (unrelated to the SQLite store's)
SCHEMA_VERSION = "1"
TABLES = frozenset({"profiles", "sessions", "timeline", "events", "decisions", "runs", "meta"})
_C = 'COLLATE "C"'
#: relation kinds that count as a schema's tables: tables, partitioned tables, views,
#: materialised views, foreign tables
_KINDS = "('r', 'p', 'v', 'm', 'f')"


def quoted(schema: str) -> str:
    """The schema as an SQL identifier (names are plain identifiers: see :mod:`.url`)."""
    return '"' + schema.replace('"', '""') + '"'


def lock_key(*parts: str) -> int:
    """A signed 64-bit advisory lock key for ``parts`` (the same in every process)."""
    digest = hashlib.blake2b("\x1f".join(parts).encode("utf-8", "surrogatepass"), digest_size=8)
    return int.from_bytes(digest.digest(), "big", signed=True)


def statements(schema: str) -> list[str]:
    """The DDL of a new store, in order."""
    s = quoted(schema)
    return [
        f"CREATE TABLE {s}.profiles (seq bigserial PRIMARY KEY, id text {_C} NOT NULL UNIQUE, "
        f"created_by text {_C} NOT NULL, user_id text {_C}, user_key text {_C}, "
        f"email text {_C}, email_key text {_C}, name text {_C}, avatar text {_C}, "
        "verified boolean NOT NULL, anonymous boolean NOT NULL, "
        f"state text {_C} NOT NULL CHECK (state IN ('active', 'merged', 'cleared', 'expired')), "
        f"merged_into text {_C}, attributes text {_C} NOT NULL, last_seen bigint NOT NULL)",
        f"CREATE UNIQUE INDEX profiles_active_user_key ON {s}.profiles (user_key) "
        "WHERE state = 'active' AND user_key IS NOT NULL",
        f"CREATE INDEX profiles_email_key ON {s}.profiles (email_key, state, seq) "
        "WHERE email_key IS NOT NULL",
        f"CREATE INDEX profiles_merged_into ON {s}.profiles (merged_into) "
        "WHERE merged_into IS NOT NULL",
        f"CREATE INDEX profiles_user_id ON {s}.profiles (user_id) WHERE user_id IS NOT NULL",
        f"CREATE TABLE {s}.sessions (id text {_C} PRIMARY KEY, current text {_C}, anon text {_C})",
        f"CREATE INDEX sessions_current ON {s}.sessions (current) WHERE current IS NOT NULL",
        f"CREATE INDEX sessions_anon ON {s}.sessions (anon) WHERE anon IS NOT NULL",
        f"CREATE TABLE {s}.timeline (profile text {_C} NOT NULL, seq bigint NOT NULL, "
        f"n integer NOT NULL, event_id text {_C}, PRIMARY KEY (profile, seq, n))",
        f"CREATE TABLE {s}.events (id text {_C} PRIMARY KEY)",
        f"CREATE TABLE {s}.decisions (seq bigserial PRIMARY KEY, run integer, line bigint, "
        f"event_id text {_C}, outcome text {_C}, profile text {_C}, merged text {_C}, "
        f"reasons text {_C}, hash text {_C})",
        f"CREATE INDEX decisions_run ON {s}.decisions (run, seq) WHERE run IS NOT NULL",
        f"CREATE TABLE {s}.runs (id serial PRIMARY KEY, log_key text {_C} NOT NULL, "
        f"ruleset text {_C} NOT NULL, UNIQUE (log_key, ruleset))",
        f"CREATE TABLE {s}.meta (key text {_C} PRIMARY KEY, value text {_C} NOT NULL)",
        f"INSERT INTO {s}.meta (key, value) VALUES ('schema_version', '{SCHEMA_VERSION}'), "
        "('store', 'idrules')",
    ]


def open_schema(conn: psycopg.Connection[Any], url: StoreUrl, *, create: bool) -> None:
    """Check the store's schema (refusing, in one line, one that is not idrules' or of another
    version) and, when it is empty and ``create``, create the tables."""
    try:
        encoding = conn.execute("SHOW server_encoding").fetchone()
        if encoding is None or str(encoding[0]).upper() not in ("UTF8", "UTF-8"):
            found = encoding[0] if encoding else "unknown"
            raise StoreError(
                f"store {url.shown}: the database's encoding is {found}; idrules needs a UTF8 "
                "database (CREATE DATABASE ... ENCODING 'UTF8')"
            )
        tables = _tables(conn, url.schema)
        if tables:
            _check(conn, url, tables)
            return
        if not create:
            raise StoreError(
                f"{url.shown} holds no idrules store (schema {url.schema} has no tables); "
                "a replay or resolve into it creates one"
            )
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", [lock_key("create", url.schema)])
            tables = _tables(conn, url.schema)  # another opener may have made it meanwhile
            if tables:
                _check(conn, url, tables)
                return
            exists = conn.execute(
                "SELECT 1 FROM pg_namespace WHERE nspname = %s", [url.schema]
            ).fetchone()
            if exists is None:
                conn.execute(f"CREATE SCHEMA {quoted(url.schema)}")
            for statement in statements(url.schema):
                conn.execute(statement)
    except psycopg.Error as exc:
        raise StoreError(f"cannot open store {url.shown}: {scrub(str(exc), url.secrets)}") from None


def _tables(conn: psycopg.Connection[Any], schema: str) -> set[str]:
    rows = conn.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        f"WHERE n.nspname = %s AND c.relkind IN {_KINDS}",
        [schema],
    ).fetchall()
    return {str(row[0]) for row in rows}


def _check(conn: psycopg.Connection[Any], url: StoreUrl, tables: set[str]) -> None:
    """Refuse a schema that is not (only) an idrules store of this version."""
    where = f"schema {url.schema} of {url.shown}"
    foreign = sorted(tables - TABLES)
    if foreign:
        more = f" and {len(foreign) - 5} more" if len(foreign) > 5 else ""
        raise StoreError(
            f"{where} holds tables that are not idrules' ({', '.join(foreign[:5])}{more}); "
            "give the store a schema of its own (idrules_schema=NAME in the URL)"
        )
    if "meta" not in tables:
        raise StoreError(f"{where} is not an idrules store (it has no meta table)")
    row = conn.execute(
        f"SELECT value FROM {quoted(url.schema)}.meta WHERE key = 'schema_version'"
    ).fetchone()
    version = None if row is None else str(row[0])
    if version != SCHEMA_VERSION:
        raise StoreError(
            f"{where} has idrules store schema version {version or 'none'}; this idrules "
            f"reads version {SCHEMA_VERSION} (replay the log into a new schema or database)"
        )
    missing = sorted(TABLES - tables)
    if missing:
        raise StoreError(f"{where} is an incomplete idrules store (no {', '.join(missing)})")
