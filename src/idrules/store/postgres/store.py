"""The PostgreSQL store: many engine processes, on one machine or many, deciding against one
database, every invariant of SPEC §3 kept.

How an event stays isolated (READ COMMITTED, each event one transaction; :mod:`.reads`):

- its session, user key and email key are read after a transaction-level advisory lock on
  each (so what has no row yet, a new session or key, cannot be created by anyone else
  meanwhile), and the rows it may write are locked as they are read (``FOR UPDATE``): the
  planner's view holds until the commit;
- its event id is recorded first: the same id sent by two processes is decided once, and the
  other finds it decided (a ``duplicate``);
- unique indexes stay as safety nets (``events.id``, ``sessions.id``, active user keys);
- a deadlock, a unique violation or (in a commit group, which never waits) a lock held
  elsewhere, before the decision is sealed, rolls the event back and raises
  ``StoreConflict``; the engine plans it again.

Reads within a transaction are remembered (the rows are locked, so they cannot go stale);
nothing is remembered across transactions, where other writers may have been. Round trips are
the cost: two an event (:meth:`PostgresStore.prefetch`, then the commit); see :mod:`.tx`
(statements queued until a round trip must happen), :mod:`.wire` (libpq pipelines),
:mod:`.writes` and :mod:`.links` (one connection, or a pool for threads).
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict

from ..._errors import StoreError
from ..base import Changes, DecisionRecord, Profile, Run, Session
from .codec import Param
from .links import Links
from .schema import open_schema
from .sql import Sql, profile_of
from .trail import Fetch, Trail
from .url import parse, scrub
from .writes import apply

#: profiles per batch of an export (:meth:`PostgresStore.profiles`)
_EXPORT_BATCH = 1_000


class PostgresStore:
    """A store in a PostgreSQL database (``url``: ``postgresql://...``, libpq's form).

    ``schema`` (or ``idrules_schema=NAME`` in the URL): the PostgreSQL schema holding the
    tables, default ``idrules``; created with them on first use unless ``create`` is False.
    ``readonly``: read an existing store only, in one read-only snapshot transaction: nothing
    is ever created or written. ``commit_every``: events per commit (1, the default: each on
    its own); :meth:`commit` or :meth:`close` commits the last group.

    ``pool_size``: 1 (the default), one connection, on which threads sharing the store
    decide one event at a time, as with SQLite; N > 1, a pool of up to N connections
    (psycopg_pool), each event on one of its own, so threads decide in parallel (see
    :mod:`.links`). Processes, on any machine, may share the database either way.
    """

    keeps_decisions = True

    def __init__(
        self,
        url: str,
        *,
        schema: str | None = None,
        create: bool = True,
        readonly: bool = False,
        commit_every: int = 1,
        pool_size: int = 1,
        connect_timeout: int = 10,
    ) -> None:
        if commit_every < 1:
            raise ValueError("commit_every must be at least 1")
        if pool_size < 1 or (pool_size > 1 and (commit_every > 1 or readonly)):
            raise ValueError("pool_size is at least 1, and 1 with commit groups or read-only")
        self._url = parse(url, schema)
        #: the store in messages: its URL, password masked
        self.path = self._url.shown
        self.schema = self._url.schema
        self.readonly = readonly
        #: how many events it decides at once (an AsyncEngine sizes its threads to it)
        self.pool_size = pool_size
        self.notes: list[str] = []
        self._lock = threading.Lock()
        self._closed = False
        self._options = self._connection_options(connect_timeout)
        conn = self._connect()
        try:
            if readonly:  # one snapshot for everything read, the checks included
                conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            open_schema(conn, self._url, create=create and not readonly)
            pool = None
            if pool_size > 1:
                conn.close()
                pool = self._pool(pool_size)
        except BaseException:
            conn.close()
            raise
        self._sql = Sql(self.schema)
        self._links = Links(
            conn, self._sql, schema=self.schema, shown=self.path, commit_every=commit_every,
            pool=pool,
        )  # fmt: skip
        self._trail = Trail(
            self._fetch, self._hold, self.commit, schema=self.schema, shown=self.path
        )
        #: the export's last batch: events applied when it was read, its profiles, and their
        #: acting sessions and activity
        self._batch: tuple[int, set[str], dict[str, list[str]], dict[str, list[str]]] | None
        self._batch = None

    def _connection_options(self, timeout: int) -> dict[str, Any]:
        """How idrules connects, beside what the URL says (which wins)."""
        given = conninfo_to_dict(self._url.conninfo)
        options: dict[str, Any] = {
            "autocommit": True,
            "prepare_threshold": None,
            "client_encoding": "UTF8",
        }
        if "application_name" not in given:
            options["application_name"] = f"idrules pid {os.getpid()} on {socket.gethostname()}"[
                :63
            ]
        if "connect_timeout" not in given:
            options["connect_timeout"] = timeout
        return options

    def _connect(self) -> psycopg.Connection[Any]:
        url = self._url
        try:
            return psycopg.connect(url.conninfo, **self._options)
        except psycopg.Error as exc:
            raise StoreError(
                f"cannot connect to store {url.shown}: {scrub(str(exc), url.secrets)}"
            ) from None

    def _pool(self, size: int) -> Any:
        """A pool of up to ``size`` connections, its first one open (or one line why not)."""
        from psycopg_pool import ConnectionPool

        url = self._url
        pool = ConnectionPool(
            url.conninfo, kwargs=self._options, min_size=1, max_size=size, open=False,
            name=f"idrules {self.schema}",
        )  # fmt: skip
        try:
            pool.open(wait=True, timeout=float(self._options.get("connect_timeout", 10)))
        except Exception as exc:
            pool.close()
            raise StoreError(
                f"cannot connect to store {url.shown}: {scrub(str(exc), url.secrets)}"
            ) from None
        return pool

    # transactions ------------------------------------------------------------------------
    def transaction(self) -> AbstractContextManager[None]:
        """One event: its transaction, or its part of a commit group. If the body raises, the
        event's writes are rolled back (and only them)."""
        if self.readonly:
            raise StoreError(f"store {self.path} was opened read-only")
        return self._links.event

    def commit(self) -> None:
        """Commit the events decided so far (a no-op when nothing is pending)."""
        if not self.readonly:
            for link in self._links.all():
                if not link.wire.lost:
                    link.tx.commit()

    @property
    def commit_every(self) -> int:
        """Events per commit (1: each on its own)."""
        return self._links._commit_every

    @commit_every.setter
    def commit_every(self, events: int) -> None:
        if events < 1:
            raise ValueError("commit_every must be at least 1")
        self._links.set_commit_every(events)

    @property
    def pending(self) -> int:
        """Events decided since the last commit."""
        return sum(link.tx.pending for link in self._links.all())

    @property
    def before_commit(self) -> Callable[[], object] | None:
        """Called just before each commit (a replay flushes its decisions file there)."""
        return self._links.before_commit

    @before_commit.setter
    def before_commit(self, hook: Callable[[], object] | None) -> None:
        self._links.set_before_commit(hook)

    @property
    def counts(self) -> tuple[int, int]:
        """Statements and round trips sent so far on this store's connections."""
        links = self._links.all()
        return sum(k.wire.statements for k in links), sum(k.wire.round_trips for k in links)

    def close(self) -> None:
        """Commit any pending group, then close the connections (again: a no-op)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        try:
            self.commit()
        finally:
            self._links.close()

    # reading -----------------------------------------------------------------------------
    # Inside an event's transaction reads go through EventReads (locked, remembered); outside
    # one (an export, history, Engine.plan) they lock nothing and remember nothing.
    def prefetch(self, event_id: str, session_id: str | None, user_key: str | None) -> None:
        """What an event will read first (the engine says, before planning): its id, its
        session and its user key's holder, in one round trip (see :mod:`.reads`)."""
        link = self._links.current()
        if link is not None:
            link.reads.prefetch(event_id, session_id, user_key)

    def is_decided(self, event_id: str) -> bool:
        link = self._links.current()
        if link is not None:
            return link.reads.is_decided(event_id)
        if any(k.tx.known_decided(event_id) for k in self._links.all()):
            return True
        return bool(self._fetch(self._sql.is_decided, [event_id]))

    def profile(self, profile_id: str) -> Profile | None:
        link = self._links.current()
        if link is not None:
            return link.reads.profile(profile_id)
        rows = self._fetch(self._sql.profile, [profile_id])
        return profile_of(rows[0]) if rows else None

    def by_user_key(self, user_key: str) -> Profile | None:
        link = self._links.current()
        if link is not None:
            return link.reads.by_user_key(user_key)
        rows = self._fetch(self._sql.by_user_key, [user_key])
        return profile_of(rows[0]) if rows else None

    def by_email_key(self, email_key: str, limit: int) -> list[Profile]:
        link = self._links.current()
        if link is not None:
            return link.reads.by_email_key(email_key, limit)
        return [profile_of(r) for r in self._fetch(self._sql.by_email_key, [email_key, limit])]

    def session(self, session_id: str) -> Session | None:
        link = self._links.current()
        if link is not None:
            return link.reads.session(session_id)
        rows = self._fetch(self._sql.session, [session_id])
        return Session(*rows[0]) if rows else None

    def sessions_of(self, profile_id: str) -> list[Session]:
        link = self._links.current()
        if link is not None:
            return link.reads.sessions_of(profile_id)
        return [Session(*r) for r in self._fetch(self._sql.sessions_of, [profile_id])]

    def profiles(self) -> Iterator[Profile]:
        """Every profile in creation order, read in batches together with their acting
        sessions and activity (one round trip per batch), so an export streams."""
        sql, after = self._sql, 0
        while True:
            with self._links.borrow() as link, link.lock:
                batch, acting, activity = link.tx.send(
                    [
                        (sql.profiles_after, [after, _EXPORT_BATCH]),
                        (sql.acting_sessions_after, [after, _EXPORT_BATCH]),
                        (sql.activity_after, [after, _EXPORT_BATCH]),
                    ]
                )
            ids = {row[1] for row in batch.rows}
            self._batch = (self._applied(), ids, _grouped(acting.rows), _grouped(activity.rows))
            for row in batch.rows:
                yield profile_of(row[1:])
            if len(batch.rows) < _EXPORT_BATCH:
                return
            after = batch.rows[-1][0]

    def activity_of(self, profile_id: str) -> list[str]:
        found = self._prefetched(profile_id, activity=True)
        if found is not None:
            return found
        return [row[0] for row in self._fetch(self._sql.activity_of, [profile_id])]

    def acting_sessions(self, profile_id: str) -> list[str]:
        found = self._prefetched(profile_id, activity=False)
        if found is not None:
            return found
        return [row[0] for row in self._fetch(self._sql.acting_sessions, [profile_id])]

    def _applied(self) -> int:
        return sum(link.tx.applied for link in self._links.all())

    def _prefetched(self, profile_id: str, *, activity: bool) -> list[str] | None:
        """What the export's last batch read about the profile, if nothing was applied since
        (None: ask the server)."""
        batch = self._batch
        if batch is None or profile_id not in batch[1] or batch[0] != self._applied():
            return None
        return list((batch[3] if activity else batch[2]).get(profile_id, ()))

    def _fetch(self, query: str, params: list[Param]) -> list[tuple[Any, ...]]:
        """The rows of one statement outside an event (after anything queued)."""
        with self._links.borrow() as link, link.lock:
            return link.tx.send([(query, params)])[0].rows

    def _hold(self) -> tuple[Fetch, Callable[[], None]]:
        """A connection kept for a run's claim: its fetch, and how to give it back."""
        links = self._links
        link = links.checkout()

        def fetch(query: str, params: list[Param]) -> list[tuple[Any, ...]]:
            with link.lock:
                return link.tx.send([(query, params)])[0].rows

        return fetch, lambda: links.checkin(link)

    # writing -----------------------------------------------------------------------------
    def apply(
        self, changes: Changes, seal: Callable[[], DecisionRecord | None] | None = None
    ) -> None:
        """Write one event's changes, then seal (write out) its decision, then its record
        (see :mod:`.writes`); outside a transaction, in one of its own."""
        link = self._links.current()
        if link is None:
            with self._links.event:
                self.apply(changes, seal)
            return
        apply(link.reads, changes, seal)

    # the audit trail (see .trail) ------------------------------------------------------
    def claim_run(self, log_key: str, ruleset: str) -> tuple[Run, AbstractContextManager[object]]:
        if self.readonly:
            raise StoreError(f"store {self.path} was opened read-only")
        return self._trail.claim_run(log_key, ruleset)

    def history(self, profile_ids: Iterable[str]) -> Iterator[DecisionRecord]:
        return self._trail.history(profile_ids)

    def merged_into(self, profile_id: str) -> list[str]:
        return self._trail.merged_into(profile_id)

    def root_of(self, profile_id: str) -> str:
        return self._trail.root_of(profile_id)

    def find_profiles(self, column: str, value: str) -> list[str]:
        return self._trail.find_profiles(column, value)


def _grouped(rows: list[tuple[Any, ...]]) -> dict[str, list[str]]:
    """``(key, value)`` rows (sorted by key) as key -> values, in order."""
    out: dict[str, list[str]] = {}
    for key, value in rows:
        out.setdefault(key, []).append(value)
    return out
