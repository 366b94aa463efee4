"""The engine: wires the pipeline stages for one ruleset and one store.

``parse event -> map the dialect -> verify proof -> check fields -> filter attributes ->
plan (pure) -> apply the plan in one transaction -> decision``. Every stage is compiled once
here, when the engine starts, so the per-event path does no set-up work.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from .attributes import AttributeFilter
from .decision import Decision
from .dialect import Dialect
from .events import (
    Event,
    InvalidEvent,
    format_ts,
    invalid_value,
    not_json_text,
    parse_line,
    parse_object,
)
from .fields import IdentityChecker
from .plan import Plan, Planner
from .proof import Prover
from .redact import Redactor
from .rules.loader import load_ruleset
from .rules.model import Ruleset
from .store.base import DecisionRecord, Store, record_of
from .store.memory import MemoryStore

Clock = Callable[[], datetime]


class Journal(Protocol):
    """Seals a decision (a replay's decisions file) and returns the record the store keeps."""

    def seal(self, decision: Decision, keep: bool) -> DecisionRecord | None:
        """Seal and write ``decision``; its record when ``keep`` (the store keeps records)."""
        ...


class Engine:
    """Decides events for one ruleset against one store.

    ``secrets`` maps key names to secrets (else ``IDRULES_SECRET_<NAME>`` is read); ``clock``
    dates library calls that carry no ``ts`` (default: the wall clock, UTC).
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
        self._dialect = Dialect(self.ruleset.input)
        env = os.environ if environ is None else environ
        self._prover = Prover(self.ruleset, secrets, env)
        self._redactor = Redactor(self.ruleset, secrets, env)
        self._fields = IdentityChecker(self.ruleset)
        self._attributes = AttributeFilter(self.ruleset)
        self._planner = Planner(self.ruleset)

    # the one entry point ---------------------------------------------------------------
    def decide(
        self, event: Event | InvalidEvent | Mapping[str, Any], *, journal: Journal | None = None
    ) -> Decision:
        """Decide one event (parsed, or a JSON-like mapping) and apply it to the store.

        ``journal`` (a replay's) seals the decision and writes its line inside the event's
        transaction, before the commit.
        """
        if not isinstance(event, (Event, InvalidEvent)):
            problem = not_json_text(event)
            event = parse_object(event) if problem is None else invalid_value(event, problem)
        store = self.store
        with store.transaction():
            plan = self.plan(event)
            decision = plan.decision
            if self._redactor.active:
                decision = self._redactor.apply(decision)
            keep = store.keeps_decisions
            if journal is not None:
                record = journal.seal(decision, keep)
            else:
                record = record_of(decision) if keep else None
            store.apply(plan.changes, record)
        return decision

    def decide_line(self, raw: bytes | str, line: int | None = None) -> Decision:
        """Decide one log line (not blank); ``line`` is its 1-based number in the log."""
        return self.decide(parse_line(raw, line))

    def plan(self, event: Event | InvalidEvent) -> Plan:
        """The plan for one event against the store as it is now. Writes nothing."""
        planner, store = self._planner, self.store
        if isinstance(event, InvalidEvent):
            if event.id is not None and store.is_decided(event.id):
                return planner.duplicate(event.id, event.line)
            return planner.invalid(event)
        if store.is_decided(event.id):
            return planner.duplicate(event.id, event.line)
        if event.type == "track":
            email = event.payload.get("email")
            inline = None if email is None else self._fields.check_email(email)
            return planner.track(event, inline, store)
        if event.type == "logout" or event.payload is None:
            return planner.logout(event, store)
        mapped = self._dialect.map(event.payload)
        prover = self._prover
        # only proof asks whether the caller asserts an identity at all
        identified = prover.mode == "disabled" or self._fields.carries_identifier(mapped.values)
        verified = prover.verify(mapped, event.ts, identified)
        checked = self._fields.check(verified.values)
        if verified.proof.verified:
            checked = checked.keyed_by(verified.proof.covers)
        filtered = self._attributes.filter(verified.attributes, verified.attributes_given)
        reasons = (*verified.proof.reasons, *checked.reasons, *filtered.reasons)
        return planner.identify(
            event, checked, verified.proof, filtered.kept, reasons, filtered.reject, store
        )

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
