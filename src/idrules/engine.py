"""The engine: wires the pipeline stages for one ruleset and one store.

``parse event -> map the dialect -> verify proof -> check fields -> filter attributes ->
plan (pure) -> apply the plan in one transaction -> decision``. Every stage is compiled once
here, when the engine starts, so the per-event path does no set-up work.
"""

from __future__ import annotations

import os
import random
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from functools import partial
from typing import Any

from ._errors import StoreConflict
from .audit.journal import Sealer
from .audit.records import record_of
from .claim import Claim, Intake
from .decision import Decision
from .events import (
    Event,
    InvalidEvent,
    format_ts,
    invalid_value,
    not_json_text,
    parse_line,
    parse_object,
)
from .keys import read_keys
from .plan import Plan, Planner
from .redact import Redactor
from .rules.loader import load_ruleset
from .rules.model import Ruleset
from .store.base import DecisionRecord, Store
from .store.memory import MemoryStore

Clock = Callable[[], datetime]
#: ``store.prefetch(event_id, session, user_key)``, an optional store method
Prefetch = Callable[[str, str | None, str | None], None]
#: ``store.is_decided(event_id)``, or the optional ``store.claim_event(event_id)``: inside the
#: event's transaction, records the id as decided and says whether it already was
Decided = Callable[[str], bool]
#: how many times an event lost to a concurrent writer is planned again, and the backoff
_ATTEMPTS = 20
_BACKOFF_S = 0.002


def _no_record() -> None:
    """The sealer's answer for a store that keeps no decision records."""
    return None


def _sealer(
    decision: Decision, journal: Sealer | None, keep: bool
) -> Callable[[], DecisionRecord | None]:
    """What the store calls once the event's writes are in: the journal seals and writes the
    decision; the record goes to a store that keeps records."""
    if journal is not None:
        return partial(journal.seal, decision, keep)
    return partial(record_of, decision) if keep else _no_record


class Engine:
    """Decides events for one ruleset against one store.

    ``secrets`` maps key names to secrets (else ``IDRULES_SECRET_<NAME>`` is read); ``clock``
    dates library calls that carry no ``ts`` (default: the wall clock, UTC). One engine may
    serve many threads: the caller's claim is built from compiled stages and bounded caches,
    and each event is then planned and applied in one store transaction, one at a time.
    """

    def __init__(
        self,
        ruleset: Ruleset | str | os.PathLike[str],
        store: Store | None = None,
        *,
        secrets: Mapping[str, str | bytes] | None = None,
        clock: Clock | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.ruleset = ruleset if isinstance(ruleset, Ruleset) else load_ruleset(ruleset)
        self.store: Store = store if store is not None else MemoryStore()
        self.clock: Clock = clock or (lambda: datetime.now(UTC))
        env = os.environ if environ is None else environ
        self._intake = Intake(self.ruleset, read_keys(self.ruleset, secrets, env))
        self._redactor = Redactor(self.ruleset, secrets, env)
        self._planner = Planner(self.ruleset)
        #: a store across a network may be told, before planning, what an event reads first
        #: (its id, its session, its user key), to read it all in one round trip
        self._prefetch: Prefetch | None = getattr(self.store, "prefetch", None)
        #: a store that can record an event's id as it checks it saves a statement an event
        self._claim_event: Decided = getattr(self.store, "claim_event", self.store.is_decided)

    # the one entry point ---------------------------------------------------------------
    def decide(
        self, event: Event | InvalidEvent | Mapping[str, Any], *, journal: Sealer | None = None
    ) -> Decision:
        """Decide one event (parsed, or a JSON-like mapping) and apply it to the store.

        ``journal`` (a replay's) seals the decision and writes its line inside the event's
        transaction, before the commit.
        """
        if not isinstance(event, (Event, InvalidEvent)):
            problem = not_json_text(event)
            event = parse_object(event) if problem is None else invalid_value(event, problem)
        claim = self.claim(event)  # pure: before the store's transaction
        store = self.store
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                with store.transaction():
                    if self._prefetch is not None and isinstance(event, Event):
                        key = claim.user_key if claim and claim.verdict == "proceed" else None
                        self._prefetch(event.id, event.session, key)
                    plan = self._plan(event, claim, self._claim_event)
                    decision = plan.decision
                    if self._redactor.active:
                        decision = self._redactor.apply(decision)
                    store.apply(plan.changes, _sealer(decision, journal, store.keeps_decisions))
                return decision
            except StoreConflict:
                if attempt == _ATTEMPTS:
                    raise
                time.sleep(random.uniform(0, _BACKOFF_S * attempt))  # let the other writer pass
        raise AssertionError("unreachable")  # pragma: no cover

    def decide_line(self, raw: bytes | str, line: int | None = None) -> Decision:
        """Decide one log line (not blank); ``line`` is its 1-based number in the log."""
        return self.decide(parse_line(raw, line))

    def claim(self, event: Event | InvalidEvent) -> Claim | None:
        """What the event's caller asserted and proved (stages 2 to 5), without the store:
        an identify's payload, or a track's inline email; None when there is nothing to
        claim (a malformed event, a logout, a track without an email)."""
        if isinstance(event, InvalidEvent):
            return None
        payload = event.payload
        if event.type == "track":
            email = payload.get("email")
            return None if email is None else self._intake.inline_email(email)
        if event.type == "logout" or payload is None:
            return None
        return self._intake.identify(payload, event.ts)

    def plan(self, event: Event | InvalidEvent) -> Plan:
        """The plan for one event against the store as it is now. Writes nothing."""
        return self._plan(event, self.claim(event), self.store.is_decided)

    def _plan(self, event: Event | InvalidEvent, claim: Claim | None, decided: Decided) -> Plan:
        planner, store = self._planner, self.store
        if isinstance(event, InvalidEvent):
            if event.id is not None and decided(event.id):
                return planner.duplicate(event.id, event.line)
            return planner.invalid(event)
        if decided(event.id):
            return planner.duplicate(event.id, event.line)
        if event.type == "track":
            return planner.track(event, claim, store)
        if claim is None:  # a logout, or identify(null)
            return planner.logout(event, store)
        return planner.identify(event, claim, store)

    # library conveniences --------------------------------------------------------------
    def identify(
        self,
        payload: Mapping[str, Any] | None,
        *,
        session: str | None = None,
        id: str | None = None,
        ts: str | None = None,
    ) -> Decision:
        """Decide ``identify(payload)`` as the widget sent it (``None``: clear identity)."""
        return self.decide(self._event("identify", id, ts, session, payload))

    def track(
        self,
        name: str,
        *,
        session: str,
        properties: Mapping[str, Any] | None = None,
        email: str | None = None,
        id: str | None = None,
        ts: str | None = None,
    ) -> Decision:
        """Decide a ``track`` (a vote, a post, a message), optionally with an inline email."""
        payload: dict[str, Any] = {"name": name}
        if properties is not None:
            payload["properties"] = dict(properties)
        if email is not None:
            payload["email"] = email
        return self.decide(self._event("track", id, ts, session, payload))

    def logout(self, *, session: str, id: str | None = None, ts: str | None = None) -> Decision:
        """Decide a ``logout`` of ``session``."""
        return self.decide(self._event("logout", id, ts, session, None))

    def _event(
        self, kind: str, event_id: str | None, ts: str | None, session: str | None, payload: Any
    ) -> dict[str, Any]:
        if ts is None:
            now = self.clock()
            micros = (
                int(now.timestamp() * 1_000_000)
                if now.tzinfo
                else int(now.replace(tzinfo=UTC).timestamp() * 1_000_000)
            )
            ts = format_ts(micros)
        event: dict[str, Any] = {
            "id": event_id or f"lib-{uuid.uuid4().hex}",
            "ts": ts,
            "type": kind,
            "payload": payload,
        }
        if session is not None:
            event["session"] = session
        return event
