"""What an event reads, inside its transaction: locked, remembered, and fetched in as few round
trips as the planner allows.

- a **session** is read after its advisory lock (so a session read as absent stays absent:
  its creation is this event's), its row locked, with its profiles in the same round trip:
  the anonymous ones locked (the event may write them), the identified ones not (it never
  writes them, and what it reads of them never changes: an identified profile stays active
  and identified), so two sessions switching between two users never wait for each other;
- a **user key** or an **email key** is read after its advisory lock (no concurrent event can
  make a new holder of it meanwhile), its holders locked;
- a **profile** read by id is locked; the **event id** is recorded at once (``INSERT ... ON
  CONFLICT DO NOTHING``): a concurrent event with the same id waits for this one, then finds
  it decided.

:meth:`EventReads.prefetch` reads the event's id, its session and its user key in one round
trip before the planner starts (the engine says what they are); the planner's own reads then
come from the transaction's cache, valid until the commit because everything in it is locked.
In a commit group with earlier events a read never waits for a lock (``NOWAIT``, try-locks):
see :meth:`EventReads.locking`.
"""

from __future__ import annotations

from typing import Any

from ..._errors import StoreConflict
from ..base import Profile, Session, profile_id_for
from .schema import lock_key
from .sql import Sql, profile_of
from .tx import Queued, Transactions
from .wire import Command, Result


class EventReads:
    """The reads of the event in progress (the store's lock held by the caller)."""

    def __init__(self, tx: Transactions, sql: Sql, *, schema: str, shown: str) -> None:
        self.tx = tx
        self.sql = sql
        self._schema = schema
        self._shown = shown

    # the event id ------------------------------------------------------------------------
    def is_decided(self, event_id: str) -> bool:
        tx = self.tx
        if tx.known_decided(event_id):
            return True
        if event_id in tx.claimed:
            return False
        if tx.doubt == event_id:  # asked again after a deferred claim found it decided
            tx.doubt = None
            return not self._took(event_id, self.send([(self.sql.claim, [event_id])])[0])

        # not prefetched (a malformed event): record the id now, and read the answer with the
        # next round trip; if the id was there, the event is planned again, as a duplicate
        def check(result: Any) -> None:
            if not result.affected:
                tx.doubt = event_id
                raise StoreConflict(f"store {self._shown}: event {event_id!r} is decided")

        tx.queue.append(Queued(self.sql.claim, [event_id], "check", check))
        self.claimed(event_id)
        return False

    def _took(self, event_id: str, result: Result) -> bool:
        """Whether the claim recorded the id (else it was decided already)."""
        if result.affected:
            self.claimed(event_id)
            return True
        self.tx.remember(event_id)
        return False

    def claimed(self, event_id: str) -> None:
        """The event id is recorded by this event: the profile it may create does not exist
        (no other event makes a profile of that id), so asking for it costs nothing."""
        tx = self.tx
        tx.claimed.add(event_id)
        tx.cache.profiles.put(profile_id_for(event_id), None)

    def prefetch(self, event_id: str, session_id: str | None, user_key: str | None) -> None:
        """The event's id recorded, its session and its user key's holder read: one round
        trip for what the planner reads first."""
        tx = self.tx
        if tx.known_decided(event_id):  # a duplicate: the planner reads nothing else
            return
        commands: list[Command] = []
        claim = event_id not in tx.claimed
        if claim:
            commands.append((self.sql.claim, [event_id]))
        session_end, session_lock = 0, 0
        if session_id is not None and session_id not in tx.cache.sessions:
            session_lock = self._session_commands(session_id, commands)
            session_end = len(commands)
        user = user_key is not None and user_key not in tx.cache.user_keys
        user_lock = 0
        if user_key is not None and user:
            user_lock = self._user_commands(user_key, commands)
        if not commands:
            return
        results = self.send(commands)
        if claim:
            self._took(event_id, results[0])
        if session_id is not None and session_end:
            self._session_results(session_id, session_lock, results[session_end - 3 : session_end])
        if user_key is not None and user:
            self._user_result(user_key, user_lock, results[-1])

    # sessions ----------------------------------------------------------------------------
    def session(self, session_id: str) -> Session | None:
        sessions = self.tx.cache.sessions
        if session_id in sessions:
            return sessions[session_id]
        commands: list[Command] = []
        lock = self._session_commands(session_id, commands)
        return self._session_results(session_id, lock, self.send(commands)[-3:])

    def _session_commands(self, session_id: str, commands: list[Command]) -> int:
        """The session's lock, its row (locked), then its profiles (two statements, whose
        results come last)."""
        lock = self._key_lock("session", session_id, commands)
        commands.append((self.locking(self.sql.session_lock), [session_id]))
        commands.append((self.locking(self.sql.session_anonymous_lock), [session_id]))
        commands.append((self.sql.session_identified, [session_id]))
        return lock

    def _session_results(self, session_id: str, lock: int, results: list[Result]) -> Session | None:
        tx = self.tx
        found, anonymous, identified = results
        tx.held.add(lock)
        session = Session(*found.rows[0]) if found.rows else None
        tx.cache.sessions.put(session_id, session)
        for row in (*anonymous.rows, *identified.rows):
            p = profile_of(row)
            tx.cache.profiles.put(p.id, p)
        return session

    def sessions_of(self, profile_id: str) -> list[Session]:
        rows = self.send([(self.locking(self.sql.sessions_of_lock), [profile_id])])[0].rows
        found = [Session(*row) for row in rows]
        for s in found:
            self.tx.cache.sessions.put(s.id, s)
        return found

    # profiles ----------------------------------------------------------------------------
    def profile(self, profile_id: str) -> Profile | None:
        cached = self.tx.cache.profiles
        if profile_id in cached:
            return cached[profile_id]
        rows = self.send([(self.locking(self.sql.profile_lock), [profile_id])])[0].rows
        found = profile_of(rows[0]) if rows else None
        cached.put(profile_id, found)
        return found

    def by_user_key(self, user_key: str) -> Profile | None:
        keys = self.tx.cache.user_keys
        if user_key in keys:
            holder = keys[user_key]
            return None if holder is None else self.profile(holder)
        commands: list[Command] = []
        lock = self._user_commands(user_key, commands)
        return self._user_result(user_key, lock, self.send(commands)[-1])

    def _user_commands(self, user_key: str, commands: list[Command]) -> int:
        lock = self._key_lock("user", user_key, commands)
        commands.append((self.locking(self.sql.by_user_key_lock), [user_key]))
        return lock

    def _user_result(self, user_key: str, lock: int, result: Result) -> Profile | None:
        tx = self.tx
        tx.held.add(lock)
        found = profile_of(result.rows[0]) if result.rows else None
        if found is not None:
            tx.cache.profiles.put(found.id, found)
        tx.cache.user_keys.put(user_key, None if found is None else found.id)
        return found

    def by_email_key(self, email_key: str, limit: int) -> list[Profile]:
        tx = self.tx
        keys = tx.cache.email_keys
        if email_key in keys:
            asked, ids = keys[email_key]
            if limit <= asked or len(ids) < asked:
                cached = [self.profile(pid) for pid in ids[:limit]]
                return [p for p in cached if p is not None]
        commands: list[Command] = []
        lock = self._key_lock("email", email_key, commands)
        commands.append((self.locking(self.sql.by_email_key_lock), [email_key, limit]))
        rows = self.send(commands)[-1].rows
        tx.held.add(lock)
        found = [profile_of(row) for row in rows]
        for p in found:
            tx.cache.profiles.put(p.id, p)
        keys.put(email_key, (limit, tuple(p.id for p in found)))
        return found

    # locks -------------------------------------------------------------------------------
    def _key_lock(self, kind: str, key: str, commands: list[Command]) -> int:
        """The advisory lock of a match key or a session id, added to ``commands`` unless this
        transaction holds it already."""
        lock = lock_key(self._schema, kind, key)
        if lock not in self.tx.held:
            sql = self.sql
            commands.append(
                (sql.advisory_try_lock if self.tx.pending else sql.advisory_lock, [lock])
            )
        return lock

    def email_lock(self, email_key: str, commands: list[Command]) -> bool:
        """Before a write that makes a profile hold this email key: its lock, unless held.
        Whether one was added (a wait, so a write that may lose a race)."""
        lock = lock_key(self._schema, "email", email_key)
        if lock in self.tx.held:
            return False
        self._key_lock("email", email_key, commands)
        self.tx.held.add(lock)
        return True

    def holds(self, kind: str, key: str) -> bool:
        return lock_key(self._schema, kind, key) in self.tx.held

    def locking(self, statement: str) -> str:
        """A locking read as this event may run it: in a commit group with earlier events
        (whose locks it holds) it must not wait, or two groups could wait for each other: a
        lock held elsewhere ends the group (committed) and the event is retried in a new one,
        where it waits as an event of its own does."""
        return self.sql.nowait(statement) if self.tx.pending else statement

    def send(self, commands: list[Command]) -> list[Result]:
        """The event's commands (after the queue); a try-lock that found its lock taken is a
        lost race (see :meth:`locking`)."""
        results = self.tx.send(commands)
        try_lock = self.sql.advisory_try_lock
        for (statement, _), result in zip(commands, results, strict=True):
            if statement is try_lock and not result.rows[0][0]:
                raise StoreConflict(f"store {self._shown}: a key is locked by another writer")
        return results
