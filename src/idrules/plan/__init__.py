"""Stage 6: plan the resolution. Pure: it reads the store and returns a :class:`Plan`.

A plan is the decision plus the :class:`~idrules.store.base.Changes` that make it true;
:meth:`Store.apply` is the only write. Keeping this stage free of I/O is what makes replay,
diff and benchmarks simple: the same log, ruleset and store give the same plans.

The planner reads the event, the caller's :class:`~idrules.claim.Claim` and the store; it
never sees a payload, a proof or a field rule. Its rooms: :mod:`.draft` (the store as this
event reads and changes it), :mod:`.identify` (matching), :mod:`.sessions` (anonymous
profiles, logout, activity), :mod:`.cited` (the reasons it gives, with their citations).
"""

from __future__ import annotations

from collections.abc import Callable

from ..claim import Claim
from ..decision import Decision, Reason, RulesetRef
from ..events import Event, InvalidEvent
from ..reasons import Code
from ..rules.model import Ruleset
from ..store.base import Changes, StoreReader
from .cited import Cited
from .draft import Draft, Plan
from .identify import Resolver
from .sessions import Sessions

__all__ = ["Draft", "Plan", "Planner"]


class Planner:
    """Plans each kind of event against a store, for one ruleset."""

    def __init__(self, ruleset: Ruleset) -> None:
        self.ref = RulesetRef(ruleset.name, ruleset.version, ruleset.sha256)
        self._cited = Cited(ruleset)
        self._sessions = Sessions(ruleset, self._cited, self.ref)
        self._resolver = Resolver(ruleset, self._cited, self.ref, self._sessions)
        # the per-event entry points, bound once (no extra call per event)
        self.identify = self._resolver.identify
        self.logout = self._sessions.logout
        self.track = self._sessions.track
        #: ``resolve(draft, claim)``: a claim that proceeds, in a draft the caller made (an
        #: import's rows: :mod:`idrules.importing`)
        self.resolve = self._resolver.resolve

    def invalid(self, event: InvalidEvent) -> Plan:
        """A malformed event: refused, and its id (if one could be read) recorded."""
        reason = Reason(Code.EVENT_INVALID, None, None, event.problem)
        decision = Decision(event.id, "rejected", self.ref, reasons=(reason,), line=event.line)
        return Plan(decision, Changes(event.id))

    def duplicate(self, event_id: str, line: int | None) -> Plan:
        """An event id already decided: nothing changes, not even the record."""
        decision = Decision(
            event_id, "duplicate", self.ref, reasons=(self._cited.duplicate,), line=line
        )
        return Plan(decision, Changes(None))

    #: ``identify(event, claim, store)``: an identify, from the claim its payload made;
    #: ``logout(event, store)``: a logout, or ``identify(null)``; ``track(event, email,
    #: store)``: a track, with the claim of its inline email if it carries one
    identify: Callable[[Event, Claim, StoreReader], Plan]
    logout: Callable[[Event, StoreReader], Plan]
    track: Callable[[Event, Claim | None, StoreReader], Plan]
    resolve: Callable[[Draft, Claim], Plan]
