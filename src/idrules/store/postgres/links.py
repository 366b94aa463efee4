"""The connections of a PostgreSQL store: one (the default), or a pool, for threads.

A *link* is one connection with its own state: the wire (:mod:`.wire`), the transaction state
(:mod:`.tx`) and the event's reads (:mod:`.reads`). A store has one link, shared by the threads
that use it: each event holds the link's lock from its start to its end, so events go one at a
time, as with SQLite. With ``pool_size`` N > 1 it has a pool of up to N (psycopg_pool): each
event takes a link of its own for its duration, so the threads of a web backend decide in
parallel, against each other as processes do (every invariant kept the same way), and one
waiting for its commit holds up no other. Commit groups need the single link.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Any

import psycopg

from ..._errors import StoreError
from .reads import EventReads
from .sql import Sql
from .tx import Transactions
from .wire import Wire

Connect = Callable[[], psycopg.Connection[Any]]


class Link:
    """One connection and its state."""

    __slots__ = ("conn", "lock", "reads", "tx", "wire")

    def __init__(
        self, conn: psycopg.Connection[Any], sql: Sql, *, schema: str, shown: str, commit_every: int
    ) -> None:
        self.conn = conn
        self.lock = threading.RLock()
        self.wire = Wire(conn)
        self.tx = Transactions(self.wire, self.lock, shown=shown, commit_every=commit_every)
        self.reads = EventReads(self.tx, sql, schema=schema, shown=shown)


class Links:
    """Where a store's events and reads get their connection."""

    def __init__(
        self,
        first: psycopg.Connection[Any],
        sql: Sql,
        *,
        schema: str,
        shown: str,
        commit_every: int,
        pool: Any | None = None,
    ) -> None:
        self._sql = sql
        self._schema = schema
        self._shown = shown
        self._commit_every = commit_every
        self._pool = pool
        self._mutex = threading.Lock()
        self._links: dict[int, Link] = {}
        self._local = threading.local()
        self.before_commit: Callable[[], object] | None = None
        self.single = None if pool is not None else self._link(first)
        self.event = _Event(self)

    def _link(self, conn: psycopg.Connection[Any]) -> Link:
        """The link of a connection (made on its first use)."""
        with self._mutex:
            link = self._links.get(id(conn))
            if link is None or link.conn is not conn:
                link = Link(
                    conn,
                    self._sql,
                    schema=self._schema,
                    shown=self._shown,
                    commit_every=self._commit_every,
                )
                link.tx.before_commit = self.before_commit
                self._links[id(conn)] = link
            return link

    def all(self) -> list[Link]:
        with self._mutex:
            return list(self._links.values())

    def current(self) -> Link | None:
        """The link of the event this thread is deciding (None outside one)."""
        link: Link | None = getattr(self._local, "link", None)
        return link

    def checkout(self) -> Link:
        """A link for this thread's use (the single one, or one taken from the pool)."""
        if self.single is not None:
            return self.single
        assert self._pool is not None
        try:
            conn = self._pool.getconn()
        except Exception as exc:  # psycopg_pool.PoolTimeout, or the server is gone
            raise StoreError(f"store {self._shown}: no connection to the server ({exc})") from None
        return self._link(conn)

    def checkin(self, link: Link) -> None:
        """Give a link taken by :meth:`checkout` back (a lost one is dropped by the pool)."""
        if self._pool is None:
            return
        with self._mutex:
            if link.wire.lost:
                self._links.pop(id(link.conn), None)
        self._pool.putconn(link.conn)

    @contextmanager
    def borrow(self) -> Iterator[Link]:
        """A link for one read outside an event: this thread's event's, or any."""
        link = self.current()
        if link is not None:
            yield link
            return
        link = self.checkout()
        try:
            yield link
        finally:
            self.checkin(link)

    def set_commit_every(self, events: int) -> None:
        if events > 1 and self._pool is not None:
            raise ValueError("commit groups need one connection (pool_size=1)")
        self._commit_every = events
        for link in self.all():
            link.tx.commit_every = events

    def set_before_commit(self, hook: Callable[[], object] | None) -> None:
        self.before_commit = hook
        for link in self.all():
            link.tx.before_commit = hook

    def close(self) -> None:
        """Close every connection (their open transactions roll back)."""
        if self._pool is not None:
            self._pool.close()
        for link in self.all():
            link.wire.close()


class _Event:
    """``PostgresStore.transaction()``: one event, on this thread's link for its duration."""

    def __init__(self, links: Links) -> None:
        self._links = links

    def __enter__(self) -> None:
        links = self._links
        local = links._local
        link: Link | None = getattr(local, "link", None)
        if link is None:
            link = links.checkout()
            try:
                link.tx.__enter__()
            except BaseException:
                links.checkin(link)
                raise
            local.link = link
            local.depth = 1
            return
        local.depth += 1
        link.tx.__enter__()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        failure: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        links = self._links
        local = links._local
        link: Link = local.link
        local.depth -= 1
        if local.depth:
            link.tx.__exit__(kind, failure, trace)
            return
        local.link = None
        try:
            link.tx.__exit__(kind, failure, trace)
        finally:
            links.checkin(link)
