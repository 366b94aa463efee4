"""Transactions of a PostgreSQL store: one per event, or events grouped under one commit, with
the statements of each held back and sent with the next round trip that must happen anyway.

An event's transaction runs at READ COMMITTED. Its reads lock what they read (see
:mod:`.store`), so the planner's view holds until the commit; a lost race (a deadlock, a
unique violation on an event id, a session or an active user key) rolls the event back and
raises ``StoreConflict``, and the engine plans it again against what is there now.

Round trips are what an event costs, so statements that need no answer wait in a queue and
travel in front of the next statement that does: ``BEGIN`` goes with the event's first read,
the decision record and ``COMMIT`` go together after the decision is sealed. In a commit
group (``commit_every`` > 1) each event after the first runs under a savepoint (queued, so
free in round trips): a lost race rolls back that event alone, and then commits the group's
earlier events, whose locks the winner may be waiting for; and a group also ends once it
holds :data:`MAX_GROUP_LOCKS` advisory locks, leaving the server's shared lock table to
everyone else.

A Ctrl-C that lands during an event is deferred to the event's end (in the main thread, where
Python delivers it): the event's round trips then always finish, so what the server holds is
known, and a lock wait the interrupt lands in is cancelled on the server at once (the event
then fails and is rolled back). The interrupt goes on when the event has ended, committed or
rolled back.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Sequence
from contextlib import suppress
from importlib import import_module
from types import TracebackType
from typing import Any, Literal, NamedTuple

from ..._errors import StoreConflict, StoreError
from ..sqlite.cache import ReadCache
from .codec import Param
from .wire import Command, Failure, Result, Wire

#: SQLSTATEs of a lost race: serialization failure, deadlock, unique violation, lock timeout
CONFLICTS = frozenset({"40001", "40P01", "23505", "55P03"})
#: advisory locks a commit group may hold before it commits early
MAX_GROUP_LOCKS = 256
#: event ids known decided (committed), remembered so a retried request costs no query
RECENT_DECIDED = 8_192

Kind = Literal["tx", "prior", "check", "event"]

# the C module behind :mod:`signal`: the same calls without their enum conversions (which cost
# ~8 µs a handler swap, an exception each time; these ~0.4 µs), as this runs twice an event
try:
    _signals: Any = import_module("_signal")
except ImportError:  # pragma: no cover - another Python
    _signals = signal
_SIGINT = int(signal.SIGINT)


class Queued(NamedTuple):
    """A statement waiting for the next round trip. ``kind``: ``tx`` (transaction control) and
    ``prior`` (an earlier event's sealed writes) must not fail; ``check`` and ``event`` are
    the current event's (``check`` verifies its result, raising ``StoreConflict``)."""

    sql: str
    params: Sequence[Param] | None
    kind: Kind
    check: Callable[[Result], None] | None = None


class Transactions:
    """The transaction state of one connection; also the context manager of
    ``PostgresStore.transaction()``, which holds the store's lock from enter to exit."""

    def __init__(self, wire: Wire, lock: threading.RLock, *, shown: str, commit_every: int) -> None:
        self.wire = wire
        self._lock = lock
        self._shown = shown
        self.commit_every = commit_every
        self.before_commit: Callable[[], object] | None = None
        self.queue: list[Queued] = []
        self.open = False  # a transaction is begun (its BEGIN queued or sent)
        self.pending = 0  # events applied in it
        self.in_event = False
        self.sealed = False  # the current event's decision is written out: no retry now
        self._depth = 0
        self._mark = 0  # queue length when the event began: what follows is the event's
        self._event_sent = False  # some of the event's statements reached the server
        self._savepoint = False
        #: rows read (locked) in the open transaction, and keys looked up
        self.cache = ReadCache()
        self.held: set[int] = set()  # advisory locks held in the open transaction
        self.claimed: set[str] = set()  # event ids the current event recorded
        self._group_claimed: set[str] = set()  # ... and the group's earlier events
        self._recent: dict[str, None] = {}
        #: an event id whose deferred claim found it decided: asked at once when retried
        self.doubt: str | None = None
        self.applied = 0  # events applied since opening (an export's prefetch checks it)
        self._previous: object = None  # the SIGINT handler while one is held back
        self._deferred: tuple[int, object] | None = None  # a SIGINT held back

    # the context manager -----------------------------------------------------------------
    def __enter__(self) -> None:
        self._lock.acquire()
        self._depth += 1
        if self._depth > 1:
            return
        if self.wire.lost:
            self._depth -= 1
            self._lock.release()
            raise StoreError(f"store {self._shown}: the connection to the server was lost")
        self._defer_interrupts()
        if not self.open:
            self.queue.append(Queued("BEGIN", None, "tx"))
            self.open = True
        self._mark = len(self.queue)
        self._savepoint = self.pending > 0
        if self._savepoint:
            self.queue.append(Queued("SAVEPOINT e", None, "tx"))
        self.in_event = True
        self._event_sent = False
        self.sealed = False
        self.claimed = set()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        failure: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        try:
            self._depth -= 1
            if self._depth:
                return
            try:
                self._end_event(failure)
            finally:
                self._deliver_interrupts()
        finally:
            self._lock.release()

    def _end_event(self, failure: BaseException | None) -> None:
        self.in_event = False
        if failure is not None:
            self.undo_event()
            if isinstance(failure, StoreConflict) and self.open:
                # the group's earlier events keep their locks until the commit: the writer
                # this event lost to may be waiting for one of them, and would win again on
                # the retry; committing them (decided and written out already) lets it pass
                self.commit()
            return
        self.pending += 1
        self.applied += 1
        self._group_claimed |= self.claimed
        # what the event left queued is sealed now: a failure of it is no lost race
        self.queue = [q._replace(kind="prior") if q.kind == "event" else q for q in self.queue]
        if self.pending >= self.commit_every or len(self.held) >= MAX_GROUP_LOCKS:
            self.commit()
        elif self._savepoint:
            self.queue.append(Queued("RELEASE SAVEPOINT e", None, "tx"))

    # Ctrl-C ------------------------------------------------------------------------------
    def _defer_interrupts(self) -> None:
        """Hold a SIGINT back until the event ends (main thread only: Python delivers
        signals there, and only there may a handler be set)."""
        self._deferred = None
        if threading.current_thread() is not threading.main_thread():
            return
        self._previous = _signals.getsignal(_SIGINT)
        _signals.signal(_SIGINT, self._defer)

    def _defer(self, signum: int, frame: object) -> None:
        self._deferred = (signum, frame)
        self.wire.cancel_requested = True

    def _deliver_interrupts(self) -> None:
        """Put the SIGINT handler back, and hand it the signal held back, if any."""
        previous, self._previous = self._previous, None
        if previous is None:
            return
        _signals.signal(_SIGINT, previous)
        deferred, self._deferred = self._deferred, None
        self.wire.cancel_requested = False
        if deferred is not None:
            if callable(previous):
                previous(*deferred)
            elif previous == signal.SIG_DFL:
                signal.raise_signal(signal.SIGINT)

    # sending -----------------------------------------------------------------------------
    def send(self, commands: Sequence[Command]) -> list[Result]:
        """The queue, then ``commands``, in one round trip; the results of ``commands``."""
        queued, self.queue = self.queue, []
        batch = [(q.sql, q.params) for q in queued]
        batch.extend(commands)
        if self.in_event:  # from here on the server may hold some of the event
            self._event_sent = True
        try:
            results = self.wire.send(batch)
        except Failure as failure:
            raise self._failed(failure, queued) from None
        except BaseException:  # cut off mid-batch: what of it ran is unknown, so all goes
            self.abandon()
            raise
        for q, result in zip(queued, results, strict=False):
            if q.check is not None:
                q.check(result)
        return results[len(queued) :]

    def flush(self) -> None:
        """Send the queue now (a round trip), when it holds anything."""
        if self.queue:
            self.send([])

    def _failed(self, failure: Failure, queued: list[Queued]) -> StoreError:
        """The error to raise for a failed batch. A failure of the current event's own
        statements before its decision is sealed may be a lost race (``StoreConflict``); one
        of an earlier event's statements, or of transaction control, loses the open
        transaction (its events are rolled back: their lines were written out, so the caller
        must stop, and a resumed replay decides them again)."""
        if failure.lost:
            self._reset(lost=True)
            return self._lost(failure)
        own = failure.index >= len(queued) or queued[failure.index].kind in ("check", "event")
        if own and self.in_event:
            if not self.sealed and failure.sqlstate in CONFLICTS:
                return StoreConflict(f"store {self._shown}: {failure.message}")
            return StoreError(f"store {self._shown}: {failure.message}")
        lost = self.pending
        self.abandon()
        more = f" (and the {lost} uncommitted events before it)" if lost else ""
        return StoreError(f"store {self._shown}: {failure.message}{more}")

    def _lost(self, failure: Failure) -> StoreError:
        return StoreError(
            f"store {self._shown}: the connection to the server was lost ({failure.message})"
        )

    # ending an event ---------------------------------------------------------------------
    def undo_event(self) -> None:
        """Roll the current event back, and only it: nothing to do when none of it reached the
        server; else to its savepoint in a commit group, or the whole transaction."""
        self.cache.clear()
        self.held.clear()
        self.claimed = set()
        if self.wire.lost:
            self._reset(lost=True)
            return
        if not self._event_sent:
            del self.queue[self._mark :]
            if self.pending == 0 and len(self.queue) <= 1:  # at most its unsent BEGIN
                self.queue.clear()
                self.open = False
            return
        self.queue.clear()  # the event's statements not sent yet
        if not self._savepoint:
            self._end("ROLLBACK")
            return
        try:
            self.wire.send([("ROLLBACK TO SAVEPOINT e", None), ("RELEASE SAVEPOINT e", None)])
        except Failure as failure:
            lost = self.pending
            self.abandon()
            raise StoreError(
                f"store {self._shown}: {failure.message} (and the {lost} uncommitted events "
                "of this commit group with the failed one)"
            ) from None

    def commit(self) -> None:
        """Commit the events decided so far (a no-op when nothing is pending); the queue goes
        with the ``COMMIT``, in one round trip."""
        with self._lock:
            if not self.open:
                self.pending = 0
                return
            if self.pending and self.before_commit is not None:
                self.before_commit()
            self._end("COMMIT")

    def _end(self, verb: str) -> None:
        queued, self.queue = self.queue, []
        committing = verb == "COMMIT"
        batch = [(q.sql, q.params) for q in queued] if committing else []
        batch.append((verb, None))
        decided = self._group_claimed
        try:
            self.wire.send(batch)
        except Failure as failure:
            self._reset(lost=failure.lost)
            if failure.lost:
                raise self._lost(failure) from None
            doing = "commit to" if committing else "roll back in"
            raise StoreError(f"cannot {doing} store {self._shown}: {failure.message}") from None
        self._reset(lost=False)
        if committing:
            for event_id in decided:
                self.remember(event_id)

    def abandon(self) -> None:
        """Give up the open transaction, whatever state it is in."""
        sent = self.open and not self.wire.lost
        self._reset(lost=False)
        if sent:
            with suppress(Failure):
                self.wire.send([("ROLLBACK", None)])

    def _reset(self, *, lost: bool) -> None:
        self.queue = []
        self.open = False
        self.pending = 0
        self.cache.clear()
        self.held.clear()
        self.claimed = set()
        self._group_claimed = set()
        if lost:
            self.wire.lost = True

    # decided event ids -------------------------------------------------------------------
    def known_decided(self, event_id: str) -> bool:
        """Whether the event id is known decided without asking: committed (remembered), or
        recorded by an earlier event of the open group."""
        return event_id in self._recent or event_id in self._group_claimed

    def remember(self, event_id: str) -> None:
        recent = self._recent
        recent[event_id] = None
        if len(recent) > RECENT_DECIDED:
            del recent[next(iter(recent))]
