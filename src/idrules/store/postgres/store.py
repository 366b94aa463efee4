"""The PostgreSQL store: many engine processes, on one machine or many, deciding against one
database, every invariant of SPEC §3 kept.

How an event stays isolated (READ COMMITTED, each event one transaction):

- every row the planner reads is locked until the commit (``SELECT ... FOR UPDATE``): the
  profiles and sessions a decision is based on cannot change under it;
- an email key's holders are read under a transaction-level advisory lock on the key (taken
  before the lookup, which then sees whatever a previous holder of the lock committed), and a
  write that makes a profile hold an email key takes the same lock: no concurrent event can
  add a holder that a lookup missed;
- what has no row to lock is guarded by a unique index instead: a session read as absent is
  INSERTed (a concurrent creation of it fails), a user key read as free is then held by the
  profile the event writes (the partial unique index on active user keys fails the second),
  and the event id is recorded first (``events`` primary key): the same event id sent by two
  processes is decided once, and the other finds it decided (a ``duplicate``);
- a deadlock or a unique violation before the decision is sealed raises ``StoreConflict``
  (the event rolled back), and the engine plans it again.

Reads within a transaction are remembered (the rows are locked, so they cannot go stale);
nothing is remembered across transactions, where other writers may have been. Round trips are
the cost: see :mod:`.tx` (statements queued until a round trip must happen) and :mod:`.wire`.
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

from ..._errors import StoreConflict, StoreError
from ...decision import dumps
from ..base import Changes, DecisionRecord, Profile, Run, Session, profile_id_for
from .codec import Param
from .schema import lock_key, open_schema
from .sql import Sql, changed_columns, profile_of, row_of
from .trail import Trail
from .tx import Queued, Transactions
from .url import parse, scrub
from .wire import Command, Result, Wire

#: profiles per batch of an export (:meth:`PostgresStore.profiles`)
_EXPORT_BATCH = 1_000
_NO = object()


class PostgresStore:
    """A store in a PostgreSQL database (``url``: ``postgresql://...``, libpq's form).

    ``schema`` (or ``idrules_schema=NAME`` in the URL): the PostgreSQL schema holding the
    tables, default ``idrules``; created with them on first use unless ``create`` is False.
    ``readonly``: read an existing store only, in one read-only snapshot transaction: nothing
    is ever created or written. ``commit_every``: events per commit (1, the default: each on
    its own); :meth:`commit` or :meth:`close` commits the last group.

    One connection per store: threads sharing the store decide one event at a time on it
    (its lock is held from a transaction's start to its end), as with SQLite. For more
    parallelism run more processes (or a store per thread): they may share the database.
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
        connect_timeout: int = 10,
    ) -> None:
        if commit_every < 1:
            raise ValueError("commit_every must be at least 1")
        self._url = parse(url, schema)
        #: the store in messages: its URL, password masked
        self.path = self._url.shown
        self.schema = self._url.schema
        self.readonly = readonly
        self.notes: list[str] = []
        self._lock = threading.RLock()
        self._closed = False
        conn = self._connect(connect_timeout)
        try:
            if readonly:  # one snapshot for everything read, the checks included
                conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            open_schema(conn, self._url, create=create and not readonly)
        except BaseException:
            conn.close()
            raise
        self._wire = Wire(conn)
        self._sql = Sql(self.schema)
        self._tx = Transactions(self._wire, self._lock, shown=self.path, commit_every=commit_every)
        self._trail = Trail(
            self._fetch, self._lock, self.commit, schema=self.schema, shown=self.path
        )
        #: the export's last batch: events applied when it was read, its profiles, and their
        #: acting sessions and activity
        self._batch: tuple[int, set[str], dict[str, list[str]], dict[str, list[str]]] | None
        self._batch = None

    def _connect(self, timeout: int) -> psycopg.Connection[Any]:
        url = self._url
        try:
            given = conninfo_to_dict(url.conninfo)
            extra: dict[str, Any] = {"client_encoding": "UTF8"}
            if "application_name" not in given:
                extra["application_name"] = f"idrules pid {os.getpid()} on {socket.gethostname()}"[
                    :63
                ]
            if "connect_timeout" not in given:
                extra["connect_timeout"] = timeout
            return psycopg.connect(url.conninfo, autocommit=True, prepare_threshold=None, **extra)
        except psycopg.Error as exc:
            raise StoreError(
                f"cannot connect to store {url.shown}: {scrub(str(exc), url.secrets)}"
            ) from None

    # transactions ------------------------------------------------------------------------
    def transaction(self) -> AbstractContextManager[None]:
        """One event: its transaction, or its part of a commit group. If the body raises, the
        event's writes are rolled back (and only them)."""
        if self.readonly:
            raise StoreError(f"store {self.path} was opened read-only")
        return self._tx

    def commit(self) -> None:
        """Commit the events decided so far (a no-op when nothing is pending)."""
        if not self.readonly:
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
        """Called just before each commit (a replay flushes its decisions file there)."""
        return self._tx.before_commit

    @before_commit.setter
    def before_commit(self, hook: Callable[[], object] | None) -> None:
        self._tx.before_commit = hook

    @property
    def counts(self) -> tuple[int, int]:
        """Statements and round trips sent so far on this store's connection."""
        return self._wire.statements, self._wire.round_trips

    def close(self) -> None:
        """Commit any pending group, then close the connection (again: a no-op)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                if not self.readonly and not self._wire.lost:
                    self.commit()
            finally:
                self._wire.close()

    # reading -----------------------------------------------------------------------------
    def is_decided(self, event_id: str) -> bool:
        with self._lock:
            tx = self._tx
            if tx.known_decided(event_id):
                return True
            if not tx.in_event:
                return bool(self._fetch(self._sql.is_decided, [event_id]))
            if event_id in tx.claimed:
                return False
            if tx.doubt == event_id:  # asked again after a deferred claim found it decided
                tx.doubt = None
                result = tx.send([(self._sql.claim, [event_id])])[0]
                if result.affected:
                    self._claimed(event_id)
                    return False
                tx.remember(event_id)
                return True

            # inside the event's transaction, record the id at once (a concurrent event with
            # the same id then waits for this one), and read the answer with the next round
            # trip: if the id was there, the event is planned again, as a duplicate
            def check(result: Any) -> None:
                if not result.affected:
                    tx.doubt = event_id
                    raise StoreConflict(f"store {self.path}: event {event_id!r} is decided")

            tx.queue.append(Queued(self._sql.claim, [event_id], "check", check))
            self._claimed(event_id)
            return False

    def _claimed(self, event_id: str) -> None:
        """The event id is recorded by this event: the profile it may create does not exist
        (no other event can make a profile of that id), so asking for it costs nothing."""
        tx = self._tx
        tx.claimed.add(event_id)
        tx.cache.profiles.put(profile_id_for(event_id), None)

    def profile(self, profile_id: str) -> Profile | None:
        with self._lock:
            tx = self._tx
            if not tx.in_event:
                rows = self._fetch(self._sql.profile, [profile_id])
                return profile_of(rows[0]) if rows else None
            cached = tx.cache.profiles
            if profile_id in cached:
                return cached[profile_id]
            rows = self._send([(self._locking(self._sql.profile_lock), [profile_id])])[0].rows
            found = profile_of(rows[0]) if rows else None
            cached.put(profile_id, found)
            return found

    def by_user_key(self, user_key: str) -> Profile | None:
        with self._lock:
            tx = self._tx
            if not tx.in_event:
                rows = self._fetch(self._sql.by_user_key, [user_key])
                return profile_of(rows[0]) if rows else None
            keys = tx.cache.user_keys
            if user_key in keys:
                holder = keys[user_key]
                return None if holder is None else self.profile(holder)
            commands: list[Command] = []
            lock = self._key_lock("user", user_key, commands)
            commands.append((self._locking(self._sql.by_user_key_lock), [user_key]))
            rows = self._send(commands)[-1].rows
            tx.held.add(lock)
            found = profile_of(rows[0]) if rows else None
            if found is not None:
                tx.cache.profiles.put(found.id, found)
            keys.put(user_key, None if found is None else found.id)
            return found

    def by_email_key(self, email_key: str, limit: int) -> list[Profile]:
        with self._lock:
            tx = self._tx
            if not tx.in_event:
                rows = self._fetch(self._sql.by_email_key, [email_key, limit])
                return [profile_of(row) for row in rows]
            keys = tx.cache.email_keys
            if email_key in keys:
                asked, ids = keys[email_key]
                if limit <= asked or len(ids) < asked:
                    cached = [self.profile(pid) for pid in ids[:limit]]
                    return [p for p in cached if p is not None]
            commands: list[Command] = []
            lock = self._key_lock("email", email_key, commands)
            commands.append((self._locking(self._sql.by_email_key_lock), [email_key, limit]))
            rows = self._send(commands)[-1].rows
            tx.held.add(lock)
            found = [profile_of(row) for row in rows]
            for p in found:
                tx.cache.profiles.put(p.id, p)
            keys.put(email_key, (limit, tuple(p.id for p in found)))
            return found

    def _key_lock(self, kind: str, key: str, commands: list[Command]) -> int:
        """The advisory lock of a match key or a session id, added to ``commands`` unless this
        transaction holds it already."""
        lock = lock_key(self.schema, kind, key)
        if lock not in self._tx.held:
            sql = self._sql
            commands.append(
                (sql.advisory_try_lock if self._tx.pending else sql.advisory_lock, [lock])
            )
        return lock

    def _locking(self, statement: str) -> str:
        """A locking read as this event may run it: in a commit group with earlier events
        (whose locks it holds) it must not wait, or two groups could wait for each other: a
        lock held elsewhere ends the group (committed) and the event is retried in a new one,
        where it waits as an event of its own does."""
        return self._sql.nowait(statement) if self._tx.pending else statement

    def _send(self, commands: list[Command]) -> list[Result]:
        """The event's commands (after the queue); a try-lock that found its lock taken is a
        lost race (see :meth:`_locking`)."""
        results = self._tx.send(commands)
        try_lock = self._sql.advisory_try_lock
        for (statement, _), result in zip(commands, results, strict=True):
            if statement is try_lock and not result.rows[0][0]:
                raise StoreConflict(f"store {self.path}: a key is locked by another writer")
        return results

    def _holds(self, kind: str, key: str) -> bool:
        return lock_key(self.schema, kind, key) in self._tx.held

    def session(self, session_id: str) -> Session | None:
        with self._lock:
            tx = self._tx
            if not tx.in_event:
                rows = self._fetch(self._sql.session, [session_id])
                return Session(*rows[0]) if rows else None
            sessions = tx.cache.sessions
            if session_id in sessions:
                return sessions[session_id]
            # the session's lock, its row (locked), then its profiles: one round trip
            commands: list[Command] = []
            lock = self._key_lock("session", session_id, commands)
            commands.append((self._locking(self._sql.session_lock), [session_id]))
            commands.append((self._locking(self._sql.session_anonymous_lock), [session_id]))
            commands.append((self._sql.session_identified, [session_id]))
            *_, found, anonymous, identified = self._send(commands)
            tx.held.add(lock)
            session = Session(*found.rows[0]) if found.rows else None
            sessions.put(session_id, session)
            for row in (*anonymous.rows, *identified.rows):
                p = profile_of(row)
                tx.cache.profiles.put(p.id, p)
            return session

    def sessions_of(self, profile_id: str) -> list[Session]:
        with self._lock:
            tx = self._tx
            if not tx.in_event:
                return [Session(*r) for r in self._fetch(self._sql.sessions_of, [profile_id])]
            rows = self._send([(self._locking(self._sql.sessions_of_lock), [profile_id])])[0].rows
            found = [Session(*row) for row in rows]
            for s in found:
                tx.cache.sessions.put(s.id, s)
            return found

    def profiles(self) -> Iterator[Profile]:
        """Every profile in creation order, read in batches together with their acting
        sessions and activity (one round trip per batch), so an export streams."""
        sql, after = self._sql, 0
        while True:
            with self._lock:
                batch, acting, activity = self._tx.send(
                    [
                        (sql.profiles_after, [after, _EXPORT_BATCH]),
                        (sql.acting_sessions_after, [after, _EXPORT_BATCH]),
                        (sql.activity_after, [after, _EXPORT_BATCH]),
                    ]
                )
                ids = {row[1] for row in batch.rows}
                self._batch = (
                    self._tx.applied,
                    ids,
                    _grouped(acting.rows),
                    _grouped(activity.rows),
                )
            for row in batch.rows:
                yield profile_of(row[1:])
            if len(batch.rows) < _EXPORT_BATCH:
                return
            after = batch.rows[-1][0]

    def activity_of(self, profile_id: str) -> list[str]:
        with self._lock:
            found = self._prefetched(profile_id, activity=True)
            if found is not None:
                return found
            return [row[0] for row in self._fetch(self._sql.activity_of, [profile_id])]

    def acting_sessions(self, profile_id: str) -> list[str]:
        with self._lock:
            found = self._prefetched(profile_id, activity=False)
            if found is not None:
                return found
            return [row[0] for row in self._fetch(self._sql.acting_sessions, [profile_id])]

    def _prefetched(self, profile_id: str, *, activity: bool) -> list[str] | None:
        """What the export's last batch read about the profile, if nothing was applied since
        (None: ask the server)."""
        batch = self._batch
        if batch is None or batch[0] != self._tx.applied or profile_id not in batch[1]:
            return None
        return list((batch[3] if activity else batch[2]).get(profile_id, ()))

    def _fetch(self, query: str, params: list[Param]) -> list[tuple[Any, ...]]:
        """The rows of one statement outside an event (after anything queued)."""
        with self._lock:
            return self._tx.send([(query, params)])[0].rows

    # writing -----------------------------------------------------------------------------
    def apply(
        self, changes: Changes, seal: Callable[[], DecisionRecord | None] | None = None
    ) -> None:
        """Write one event's changes, then seal (write out) its decision, then its record.

        The writes that may lose a race (a new session, a profile newly holding a user key,
        the lock of an email key it newly holds, an event id not recorded yet) are sent
        before ``seal`` is called, with anything queued; the rest wait for the commit."""
        with self._lock:
            tx = self._tx
            if not tx.in_event:
                with tx:
                    self.apply(changes, seal)
                return
            commands, risky = self._writes(changes)
            if risky or any(q.check is not None for q in tx.queue):
                self._send(commands)
            else:
                tx.queue.extend(Queued(sql, params, "event") for sql, params in commands)
            record = None if seal is None else seal()
            tx.sealed = True
            self._record(changes, record)

    def _writes(self, changes: Changes) -> tuple[list[Command], bool]:
        """The statements of an event's changes, and whether any may lose a race."""
        tx, sql = self._tx, self._sql
        commands: list[Command] = []
        risky = False
        for write in changes.profiles:
            p, before = write.after, write.before
            if before is None:
                names: tuple[str, ...] = ()
                statement: Command = (sql.insert_profile, row_of(p))
            else:
                names, values = changed_columns(p, before)
                if not names:
                    tx.cache.wrote_profile(p, before)
                    continue
                statement = (sql.update_profile(names), [p.id, *values])
            if p.state == "active":
                # a key newly held: its lock (held since the lookup, as a rule) keeps others off
                was = before if before is not None and before.state == "active" else None
                key = p.email_key
                fresh = key is not None and (was is None or was.email_key != key)
                if key is not None and fresh and not self._holds("email", key):
                    tx.held.add(self._key_lock("email", key, commands))
                    risky = True
                key = p.user_key
                if key is not None and (was is None or was.user_key != key):
                    risky = risky or not self._holds("user", key)
            commands.append(statement)
            tx.cache.wrote_profile(p, before)
        sessions = tx.cache.sessions
        for session in changes.sessions:
            old = sessions.get(session.id, _NO)
            params = [session.id, session.current, session.anon]
            if old is _NO:  # not read: may race another writer
                risky = True
                commands.append((sql.upsert_session, params))
            elif old is None:  # read as absent, under its lock (else it may race a creation)
                risky = risky or not self._holds("session", session.id)
                commands.append((sql.insert_session, params))
            else:
                commands.append((sql.update_session, params))
            sessions.put(session.id, session)
        for source, target in changes.moves:
            commands.append((sql.move_activity, [target, source]))
        event_id = changes.event_id
        if event_id is not None and event_id not in tx.claimed:
            commands.append((sql.insert_event, [event_id]))
            self._claimed(event_id)
            risky = True
        return commands, risky

    def _record(self, changes: Changes, record: DecisionRecord | None) -> None:
        """Queue the decision record and its timeline entries (sent with the commit)."""
        profiles: list[str | int | None] = []
        numbers: list[str | int | None] = []
        events: list[str | int | None] = []
        if record is not None:
            params: list[Param] = [
                record.run,
                record.line,
                record.event_id,
                record.outcome,
                record.profile,
                dumps(list(record.merged)) if record.merged else "[]",
                record.reasons,
                record.hash,
            ]
            if record.profile is not None:
                profiles.append(record.profile)
                numbers.append(0)
                events.append(None)
        elif changes.activity:  # nothing else would give this event its place in the order
            params = [None, None, changes.event_id, None, None, None, None, None]
        else:
            return
        for n, (event_id, profile) in enumerate(changes.activity, 1):
            profiles.append(profile)
            numbers.append(n)
            events.append(event_id)
        params += [profiles, numbers, events]
        self._tx.queue.append(Queued(self._sql.record, params, "event"))

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
