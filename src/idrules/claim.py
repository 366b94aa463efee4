"""Stages 2 to 5 as one value: what the caller asserted and proved (:class:`Claim`).

``map the dialect -> verify proof -> check and normalise fields -> filter attributes``: each
stage is compiled once per engine and hands the next one value. The planner then reads only
the claim (and the event and the store): it never sees a payload, a proof or a field rule.

The verdict is decided here, in one place: ``reject`` when proof, a field or an attribute
refuses the call; ``anonymous`` when proof failed softly, a field says so, or no identifier
is left to match by; ``proceed`` otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import attrs

from .attributes import AttributeFilter
from .decision import Identity, Reason
from .dialect import Dialect
from .fields import IdentityChecker
from .proof import NO_PROOF, Prover
from .rules.model import Ruleset

Verdict = Literal["proceed", "anonymous", "reject"]
#: the identity of a call whose proof failed: none of its values passed (docs/decisions.md)
UNPROVEN = Identity()


@attrs.frozen(slots=True)
class Claim:
    """What one call asserted and proved, ready to resolve.

    ``identity``: the values that passed their checks, normalised, and whether this call
    proved them. ``user_key``/``email_key``: the match keys it may be found by (only those its
    proof covers, when it is verified). ``attributes``: those kept. ``reasons``: every rule the
    stages applied, in order. ``verdict``: ``proceed``, ``anonymous`` or ``reject``."""

    identity: Identity
    user_key: str | None = None
    email_key: str | None = None
    attributes: Mapping[str, Any] = attrs.field(factory=dict)
    reasons: tuple[Reason, ...] = ()
    verdict: Verdict = "proceed"


class Intake:
    """The compiled stages 2 to 5 of one ruleset: payload in, :class:`Claim` out."""

    def __init__(self, ruleset: Ruleset, keys: Mapping[str, bytes]) -> None:
        self._dialect = Dialect(ruleset.input, ruleset.verification.jwt)
        self._prover = Prover(ruleset, keys)
        self._fields = IdentityChecker(ruleset)
        self._attributes = AttributeFilter(ruleset)

    def identify(self, payload: Mapping[str, Any], ts: int) -> Claim:
        """The claim of an ``identify`` payload at the event's time ``ts`` (µs)."""
        mapped = self._dialect.map(payload)
        prover = self._prover
        if prover.checks:
            asserted = self._fields.carries_identifier(mapped.values)
            proof = prover.verify(mapped.values, ts, asserted)
        else:
            proof = NO_PROOF
        if proof.claims is not None:  # a token: the identity comes from its claims alone
            mapped = self._dialect.from_claims(proof.claims)
        checked = self._fields.check(mapped.values)
        if proof.verified:  # matched only by what the proof vouches for (docs/rules.md)
            checked = checked.keyed_by(proof.covers)
        filtered = self._attributes.filter(mapped.attributes, mapped.attributes_given)
        reasons = (*proof.reasons, *checked.reasons, *filtered.reasons)
        fields = checked.fields
        user_id, email = fields["user_id"], fields["email"]
        user_key, email_key = user_id.key, email.key
        failed = checked.failed
        verdict: Verdict
        if proof.refuse or failed == "reject" or filtered.reject:
            verdict = "reject"
        elif proof.anonymous or failed == "anonymous" or (user_key is None and email_key is None):
            verdict = "anonymous"
        else:
            verdict = "proceed"
        if proof.refuse or proof.anonymous:
            identity = UNPROVEN
        else:
            identity = Identity(
                user_id.value,
                email.value,
                fields["name"].value,
                fields["avatar"].value,
                proof.verified,
            )
        return Claim(identity, user_key, email_key, filtered.kept, reasons, verdict)

    def inline_email(self, raw: Any) -> Claim:
        """The claim of a ``track``'s inline email (the widget's prompt), checked with the
        email rule: refused when the rule rejects, no email when it fails otherwise."""
        checked = self._fields.check_email(raw)
        verdict: Verdict = "reject" if checked.failed == "reject" else "proceed"
        return Claim(Identity(email=checked.value), None, checked.key, {}, checked.reasons, verdict)
