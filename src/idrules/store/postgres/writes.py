"""An event's writes: its changes, then (once its decision is sealed) its record.

The writes that may lose a race (a profile newly holding an email key whose lock the event does
not hold yet; a session or user key not locked; an event id not recorded yet) go to the server
before the decision is sealed, so a lost race (``StoreConflict``) never follows a decision
written out. Everything else (updates of locked rows, sessions created under their lock,
activity moved, the decision record and its timeline entries) waits in the queue and goes with
the ``COMMIT``, in the same round trip.
"""

from __future__ import annotations

from collections.abc import Callable

from ...decision import dumps
from ..base import Changes, DecisionRecord
from .codec import Param
from .reads import EventReads
from .sql import changed_columns, row_of
from .tx import Queued
from .wire import Command

_NO = object()


def apply(
    reads: EventReads, changes: Changes, seal: Callable[[], DecisionRecord | None] | None
) -> None:
    """Write one event's changes, seal its decision, queue its record (in the event's
    transaction, the store's lock held)."""
    tx = reads.tx
    commands, risky = _writes(reads, changes)
    if risky or any(q.check is not None for q in tx.queue):
        reads.send(commands)
    else:
        tx.queue.extend(Queued(sql, params, "event") for sql, params in commands)
    record = None if seal is None else seal()
    tx.sealed = True
    _record(reads, changes, record)


def _writes(reads: EventReads, changes: Changes) -> tuple[list[Command], bool]:
    """The statements of an event's changes, and whether any may lose a race."""
    tx, sql = reads.tx, reads.sql
    commands: list[Command] = []
    risky = False
    for write in changes.profiles:
        p, before = write.after, write.before
        if before is None:
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
            if key is not None and (was is None or was.email_key != key):
                risky = reads.email_lock(key, commands) or risky
            key = p.user_key
            if key is not None and (was is None or was.user_key != key):
                risky = risky or not reads.holds("user", key)
        commands.append(statement)
        tx.cache.wrote_profile(p, before)
    sessions = tx.cache.sessions
    for session in changes.sessions:
        old = sessions.get(session.id, _NO)
        params: list[Param] = [session.id, session.current, session.anon]
        if old is _NO:  # not read: may race another writer
            risky = True
            commands.append((sql.upsert_session, params))
        elif old is None:  # read as absent, under its lock (else it may race a creation)
            risky = risky or not reads.holds("session", session.id)
            commands.append((sql.insert_session, params))
        else:
            commands.append((sql.update_session, params))
        sessions.put(session.id, session)
    for source, target in changes.moves:
        commands.append((sql.move_activity, [target, source]))
    event_id = changes.event_id
    if event_id is not None and event_id not in tx.claimed:
        commands.append((sql.insert_event, [event_id]))
        reads.claimed(event_id)
        risky = True
    return commands, risky


def _record(reads: EventReads, changes: Changes, record: DecisionRecord | None) -> None:
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
    reads.tx.queue.append(Queued(reads.sql.record, params, "event"))
