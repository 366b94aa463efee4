"""Opening a SQLite store: the connection, the schema checked, created or upgraded, the
pragmas that make a commit per event affordable."""

from __future__ import annotations

import os
import sqlite3
import time
import urllib.parse

from ..._errors import StoreError
from .groups import why
from .schema import SCHEMA_VERSION, check_version, create_schema, upgrade

#: the prepared statements sqlite3 keeps per connection (its default, 128, is shared with the
#: history and export queries; an update's SQL varies with the columns it changes)
STATEMENTS = 512


def connect(path: str, *, readonly: bool, timeout: float) -> sqlite3.Connection:
    """The connection: read-write, or read-only (``mode=ro``, then ``immutable`` when the
    folder's lock files cannot be made). Shared by the threads using the store, which take
    the store's lock around every use (``check_same_thread`` is off)."""

    def attempt(target: str, uri: bool) -> sqlite3.Connection:
        conn = sqlite3.connect(
            target,
            isolation_level=None,
            timeout=timeout,
            cached_statements=STATEMENTS,
            check_same_thread=False,
            uri=uri,
        )
        if readonly:  # a WAL file's first read needs its lock files: find out now
            try:
                conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            except sqlite3.Error:
                conn.close()
                raise
        return conn

    try:
        if not readonly:
            return attempt(path, False)
        url = "file:" + urllib.parse.quote(os.path.abspath(path))
        try:
            return attempt(url + "?mode=ro", True)
        except sqlite3.OperationalError:
            return attempt(url + "?immutable=1", True)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open store {path}: {why(exc)}") from None


def open_schema(
    conn: sqlite3.Connection, path: str, *, create: bool, readonly: bool, timeout: float
) -> list[str]:
    """Check the file (refusing, in one line, one that is not an idrules store or of an
    unknown version), create its schema when new and ``create``, upgrade an older version
    when writable, and set the connection's pragmas. Retries while another process holds
    the lock for its own opening (switching the journal to WAL takes the file for a moment
    without honouring the busy timeout). Returns one-line notes (an upgrade's)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return _open(conn, path, create, readonly)
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            time.sleep(0.01)


def _open(conn: sqlite3.Connection, path: str, create: bool, readonly: bool) -> list[str]:
    notes: list[str] = []
    tables = _tables(conn)
    if tables and "meta" not in tables:
        raise StoreError(f"{path} is an SQLite database but not an idrules store")
    if not tables and not create:
        raise StoreError(f"{path} is not an idrules store (it holds no tables)")
    if tables:  # an existing store: check it before writing anything (even a pragma)
        if check_version(conn, path, writable=not readonly) != SCHEMA_VERSION:
            note = upgrade(conn, path)
            if note is not None:
                notes.append(note)
    elif create:
        conn.execute("PRAGMA journal_mode=WAL")
    if readonly:
        return notes
    conn.execute("PRAGMA synchronous=NORMAL")
    # 32 MiB of pages (64 before the read cache): the read cache holds what the planner asks
    # for again, the pages serve the writes; a long replay's memory then stops growing early
    # (~150 MiB at 1M events), at no measurable cost with 1M profiles
    conn.execute("PRAGMA cache_size=-32768")
    # a commit group's savepoint journals the pages its events change: in memory rather than
    # in a temporary file written page by page (bounded by groups.MARK_EVERY)
    conn.execute("PRAGMA temp_store=MEMORY")
    # a checkpoint (copying the WAL's pages into the file, two fsyncs) every 8192 WAL pages
    # (~32 MiB) rather than SQLite's 1000: a page rewritten many times is copied once, which
    # takes ~15 µs off each per-event commit
    conn.execute("PRAGMA wal_autocheckpoint=8192")
    if tables:
        return notes
    # one opener at a time: sqlite-utils' deferred read-then-write fails at once with
    # "database is locked" (and its STRICT probe then silently gives up STRICT)
    conn.execute("BEGIN IMMEDIATE")
    try:
        tables = _tables(conn)  # another opener may have made it since
        if not tables:
            import sqlite_utils  # ~45 ms of start-up, needed only to create a schema

            create_schema(sqlite_utils.Database(conn))
        elif "meta" not in tables:
            raise StoreError(f"{path} is an SQLite database but not an idrules store")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    check_version(conn, path)
    return notes


def _tables(conn: sqlite3.Connection) -> set[str]:
    return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
