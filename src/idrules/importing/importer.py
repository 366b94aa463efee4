"""Import an existing user base: one decision per row, each row planned like an identify call
and applied in its own transaction (docs/import.md).

A row's claim (:mod:`.intake`) is resolved by the same planner as an identify call, in
:class:`ImportDraft`, which names a profile it creates after the row's identifiers rather
than after an event id: the user id's match key, else the email's. So importing a file
again finds every profile it made (``identified``, ``created: false``) and changes nothing.

Bookkeeping: a row's ``event_id`` is ``row:N``, but no row id is recorded as decided, so it
can never make a real event (or a row of another file) a duplicate. A row that changes the
store keeps its decision record (``history`` shows it); a row that changes nothing (matched
as it is, or refused) writes nothing at all.
"""

from __future__ import annotations

import hashlib
import os
import random
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from functools import partial
from typing import Any

import attrs

from .._errors import StoreConflict
from ..audit.records import record_of
from ..claim import Claim
from ..decision import Decision, Reason
from ..engine import Clock, Engine
from ..events import Event
from ..plan import Draft, Planner
from ..reasons import Code
from ..redact import Redactor
from ..rules.loader import load_ruleset
from ..rules.model import Ruleset
from ..store.base import DecisionRecord, DurableStore, Store, StoreReader
from .intake import RowIntake
from .rows import Format, UserRow, UsersFile, rows_of_objects

Progress = Callable[[int, float], None]
#: how many times a row lost to a concurrent writer is planned again, and the backoff
_ATTEMPTS = 20
_BACKOFF_S = 0.002
#: before every hashed identifier: a byte no UTF-8 text (an event id) starts with, so an
#: import's profile id can never be the one an event's id gives (``profile_id_for``)
_DOMAIN = b"\xffidrules-import\x00"


def imported_profile_id(kind: str, key: str, attempt: int = 1) -> str:
    """The id of the profile an import creates for a row whose ``kind`` (``user_id`` or
    ``email``) has match key ``key``; ``attempt`` > 1 when that id is taken (a profile an
    earlier import made has since changed its email, say)."""
    data = _DOMAIN + kind.encode() + b"\x00" + key.encode("utf-8", "surrogatepass")
    if attempt > 1:
        data += b"\x00" + str(attempt).encode()
    return "p_" + hashlib.sha256(data).hexdigest()[:16]


class ImportDraft(Draft):
    """A draft whose new profile is named after the row's identifiers."""

    __slots__ = ("_key", "_kind")

    def __init__(self, store: StoreReader, event: Event, claim: Claim) -> None:
        super().__init__(store, event)
        if claim.user_key is not None:
            self._kind, self._key = "user_id", claim.user_key
        else:
            self._kind, self._key = "email", claim.email_key or ""

    def new_profile_id(self) -> str:
        """The row's derived id, or the next one when a profile already holds it."""
        attempt = 1
        while True:
            profile_id = imported_profile_id(self._kind, self._key, attempt)
            if self.profile(profile_id) is None:
                return profile_id
            attempt += 1


@attrs.frozen
class ImportSummary:
    """What an import did: rows read, profiles created, rows matched to an existing profile
    (of which ``updated`` changed it), rows rejected, wall seconds."""

    rows: int
    created: int
    matched: int
    updated: int
    rejected: int
    seconds: float

    def line(self) -> str:
        rate = self.rows / self.seconds if self.seconds > 0 else 0.0
        rows = f"{self.rows} row{'' if self.rows == 1 else 's'}"
        return (
            f"{rows} in {self.seconds:.2f}s ({rate:,.0f}/s): {self.created} created, "
            f"{self.matched} matched ({self.updated} updated), {self.rejected} rejected"
        )


class Importer:
    """Decides the rows of a users file for one ruleset against one store.

    ``secrets``/``environ`` serve only the ruleset's ``audit`` redaction key: a row carries
    no proof, so the widget's keys are not needed. ``clock`` dates the import (the ``ts``
    every row is planned at: anonymous holders of an email expire against it)."""

    def __init__(
        self,
        ruleset: Ruleset,
        store: Store,
        *,
        secrets: Mapping[str, str | bytes] | None = None,
        environ: Mapping[str, str] | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.ruleset = ruleset
        self.store = store
        self._intake = RowIntake(ruleset)
        self._planner = Planner(ruleset)
        self._redactor = Redactor(ruleset, secrets, os.environ if environ is None else environ)
        now = (clock or (lambda: datetime.now(UTC)))()
        self._ts = int((now if now.tzinfo else now.replace(tzinfo=UTC)).timestamp() * 1_000_000)
        #: user id key -> the row that imported it (a later row with it is a duplicate)
        self._imported: dict[str, int] = {}
        self.counts: Counter[str] = Counter()

    def decide(self, row: UserRow) -> Decision:
        """Decide one row and apply it (in one transaction when it changes the store)."""
        event_id = f"row:{row.number}"
        ref = self._planner.ref
        if row.problem is not None:
            reason = Reason(Code.EVENT_INVALID, None, None, row.problem)
            return self._count(Decision(event_id, "rejected", ref, reasons=(reason,)), False)
        claim = self._intake.claim(row)
        if claim.verdict == "proceed" and claim.user_key in self._imported:
            first = self._imported[claim.user_key]
            duplicate = Reason(
                Code.EVENT_DUPLICATE,
                None,
                "user_id",
                f"row:{first} of this import has this user id already",
            )
            claim = attrs.evolve(claim, reasons=(*claim.reasons, duplicate), verdict="reject")
        if claim.verdict != "proceed":
            rejected = Decision(
                event_id, "rejected", ref, identity=claim.identity, reasons=claim.reasons
            )
            return self._count(self._redactor.apply(rejected), False)
        event = Event(event_id, self._ts, "identify", None, None)
        decision, changed = self._apply(event, claim, row.number)
        if decision.outcome == "identified" and claim.user_key is not None:
            self._imported[claim.user_key] = row.number
        return self._count(decision, changed)

    def _apply(self, event: Event, claim: Claim, number: int) -> tuple[Decision, bool]:
        """Plan the row against the store and apply it, planning again after a lost race."""
        store = self.store
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                with store.transaction():
                    plan = self._planner.resolve(ImportDraft(store, event, claim), claim)
                    decision = self._redactor.apply(plan.decision)
                    changes = attrs.evolve(plan.changes, event_id=None)  # no id recorded
                    if not changes.profiles:
                        return decision, False
                    seal = partial(_record, decision, number) if store.keeps_decisions else None
                    store.apply(changes, seal)
                return decision, True
            except StoreConflict:
                if attempt == _ATTEMPTS:
                    raise
                time.sleep(random.uniform(0, _BACKOFF_S * attempt))  # let the other writer pass
        raise AssertionError("unreachable")  # pragma: no cover

    def _count(self, decision: Decision, changed: bool) -> Decision:
        if decision.outcome != "identified":
            self.counts["rejected"] += 1
        elif decision.created:
            self.counts["created"] += 1
        else:
            self.counts["matched"] += 1
            self.counts["updated"] += changed
        return decision

    def run(
        self,
        rows: Iterable[UserRow],
        write: Callable[[str], object] | None = None,
        progress: Progress | None = None,
        every: float = 0.25,
    ) -> ImportSummary:
        """Decide every row, ``write`` each decision line, report ``progress(rows, seconds)``
        every ``every`` seconds and at the end."""
        started = last = time.perf_counter()
        count = 0
        for row in rows:
            decision = self.decide(row)
            count += 1
            if write is not None:
                write(decision.to_json() + "\n")
            if progress is not None:
                now = time.perf_counter()
                if now - last >= every:
                    last = now
                    progress(count, now - started)
        if isinstance(self.store, DurableStore):
            self.store.commit()  # the last commit group, when rows are grouped
        seconds = time.perf_counter() - started
        if progress is not None:
            progress(count, seconds)
        c = self.counts
        return ImportSummary(
            count, c["created"], c["matched"], c["updated"], c["rejected"], seconds
        )


def _record(decision: Decision, number: int) -> DecisionRecord:
    """The record a durable store keeps of a row that changed it (``history`` shows its
    line in the users file)."""
    return attrs.evolve(record_of(decision), line=number)


def import_users(
    rules: Engine | Ruleset | str | os.PathLike[str],
    users: str | os.PathLike[str] | Iterable[Mapping[str, Any]],
    store: Store | None = None,
    *,
    write: Callable[[str], object] | None = None,
    progress: Progress | None = None,
    format: Format = "auto",
    secrets: Mapping[str, str | bytes] | None = None,
    environ: Mapping[str, str] | None = None,
    clock: Clock | None = None,
) -> ImportSummary:
    """Import ``users`` into ``store`` under ``rules`` (docs/import.md).

    ``rules``: an :class:`Engine` (its ruleset, and its store unless ``store`` is given), a
    :class:`Ruleset`, a pack's name or a rules file. ``users``: a users file's path (CSV or
    JSON lines, ``format`` says which or ``auto``; ``-`` is stdin), or JSON-like mappings,
    one per user, as JSON-lines rows are written (numbered from 1). ``write`` receives each
    decision line. Returns the :class:`ImportSummary`; a refused row never stops the import.
    """
    if isinstance(rules, Engine):
        ruleset, store = rules.ruleset, store if store is not None else rules.store
    else:
        ruleset = rules if isinstance(rules, Ruleset) else load_ruleset(rules)
    if store is None:
        raise ValueError("import_users needs a store (or an Engine, whose store it uses)")
    importer = Importer(ruleset, store, secrets=secrets, environ=environ, clock=clock)
    if isinstance(users, (str, os.PathLike)):
        with UsersFile(users, format) as opened:
            return importer.run(opened.rows(), write, progress)
    return importer.run(_objects(users), write, progress)


def _objects(users: Iterable[Mapping[str, Any]]) -> Iterator[UserRow]:
    """Rows from mappings (a library caller's): plain dicts, as JSON lines decode to."""
    return rows_of_objects(dict(user) if isinstance(user, Mapping) else user for user in users)
