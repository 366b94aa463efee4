"""The decision: what one event resolved to and every rule that shaped it (docs/decisions.md).

Decisions are frozen values. :meth:`Decision.to_json` gives the canonical line a replay
writes: fixed key order, no spaces, UTF-8 text, attributes sorted, so two replays of one log
give the same bytes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from functools import cached_property
from json.encoder import encode_basestring
from typing import Any, Literal

import attrs

Outcome = Literal["identified", "anonymous", "rejected", "logged_out", "recorded", "duplicate"]


@attrs.frozen(slots=True)
class Citation:
    """Where a rule is written: the rules file (as given, or a pack's file name), the line,
    and the knob's dotted path. A decision shows it as ``file:line knob``."""

    source: str
    line: int
    knob: str
    #: the citation as a decision shows it (made once: reasons are built on the hot path)
    text: str = attrs.field(
        init=False,
        eq=False,
        repr=False,
        default=attrs.Factory(lambda c: f"{c.source}:{c.line} {c.knob}", takes_self=True),
    )

    def __str__(self) -> str:
        return self.text

    @classmethod
    def parse(cls, text: str) -> Citation:
        """The citation a decision shows as ``text`` (``file:line knob``)."""
        where, _, knob = text.partition(" ")
        source, _, line = where.rpartition(":")
        if not source or not knob or not line.isdigit():
            raise ValueError(f"not a citation (file:line knob): {text!r}")
        return cls(source, int(line), knob)


@attrs.frozen(slots=True)
class Reason:
    """One rule that shaped a decision: a code (:mod:`idrules.reasons`) and where the rule
    that decided it is written (None for a malformed or duplicate event)."""

    #: kept as plain text (a registry member is its text): a reason prints as its code
    code: str = attrs.field(converter=str)
    citation: Citation | None = None
    field: str | None = None
    detail: str | None = None

    @property
    def rule(self) -> str | None:
        """The citation as a decision shows it: ``file:line knob``, or None."""
        citation = self.citation
        return None if citation is None else citation.text

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "rule": self.rule}
        if self.field is not None:
            out["field"] = self.field
        if self.detail is not None:
            out["detail"] = self.detail
        return out

    @cached_property
    def json(self) -> str:
        """This reason's JSON text (:meth:`to_dict` encoded), made once: most reasons are
        constants of a compiled rule."""
        text = f'{{"code":{encode_basestring(self.code)},"rule":{_text(self.rule)}'
        if self.field is not None:
            text += f',"field":{encode_basestring(self.field)}'
        if self.detail is not None:
            text += f',"detail":{encode_basestring(self.detail)}'
        return text + "}"

    @cached_property
    def record(self) -> str:
        """This reason as a store's decision record holds it (``[code, rule, field, detail]``,
        compact JSON), made once like :attr:`json`."""
        return dumps([self.code, self.rule, self.field, self.detail])


@attrs.frozen(slots=True)
class Identity:
    """The canonical values an identify asserted that passed their checks, normalised."""

    user_id: str | None = None
    email: str | None = None
    name: str | None = None
    avatar: str | None = None
    verified: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "email": self.email,
            "name": self.name,
            "avatar": self.avatar,
            "verified": self.verified,
        }


@attrs.frozen(slots=True)
class RulesetRef:
    """Which ruleset decided: name, version and the sha256 of its effective form."""

    name: str
    version: str
    sha256: str

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "version": self.version, "sha256": self.sha256}

    @cached_property
    def json(self) -> str:
        """This reference's JSON text, made once: every decision of a ruleset carries it."""
        return dumps(self.to_dict())


@attrs.frozen(slots=True)
class Decision:
    """What one event resolved to. ``line`` is set by replay only."""

    event_id: str | None
    outcome: Outcome
    ruleset: RulesetRef
    profile: str | None = None
    created: bool = False
    merged: tuple[str, ...] = ()
    identity: Identity | None = None
    attributes: Mapping[str, Any] = attrs.field(factory=dict)
    reasons: tuple[Reason, ...] = ()
    line: int | None = None

    @property
    def codes(self) -> list[str]:
        """The reason codes, in the order they were applied."""
        return [reason.code for reason in self.reasons]

    def to_dict(self) -> dict[str, Any]:
        """docs/decisions.md's form, keys in their documented order."""
        out: dict[str, Any] = {"event_id": self.event_id}
        if self.line is not None:
            out["line"] = self.line
        out["outcome"] = self.outcome
        out["profile"] = self.profile
        out["created"] = self.created
        out["merged"] = list(self.merged)
        out["identity"] = None if self.identity is None else self.identity.to_dict()
        out["attributes"] = dict(sorted(self.attributes.items()))
        out["reasons"] = [reason.to_dict() for reason in self.reasons]
        out["ruleset"] = self.ruleset.to_dict()
        return out

    def to_json(self) -> str:
        """The canonical one-line JSON text of this decision: :meth:`to_dict` encoded, built
        from parts (a replay writes one per event; reasons and ruleset encode once each)."""
        line = "" if self.line is None else f',"line":{self.line}'
        identity = self.identity
        if identity is None:
            who = "null"
        else:
            who = (
                f'{{"user_id":{_text(identity.user_id)},"email":{_text(identity.email)},'
                f'"name":{_text(identity.name)},"avatar":{_text(identity.avatar)},'
                f'"verified":{"true" if identity.verified else "false"}}}'
            )
        attributes = _attributes_json(self.attributes)
        merged = ",".join(map(encode_basestring, self.merged))
        reasons = ",".join([reason.json for reason in self.reasons])
        return (
            f'{{"event_id":{_text(self.event_id)}{line},"outcome":"{self.outcome}",'
            f'"profile":{_text(self.profile)},"created":{"true" if self.created else "false"},'
            f'"merged":[{merged}],"identity":{who},"attributes":{attributes},'
            f'"reasons":[{reasons}],"ruleset":{self.ruleset.json}}}'
        )


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def dumps(value: Any) -> str:
    """Canonical JSON text: compact, UTF-8 (not ASCII-escaped), keys in the given order.

    One encoder for the process: ``json.dumps`` with options builds a new one per call."""
    return _ENCODER.encode(value)


def _attributes_json(values: Mapping[str, Any]) -> str:
    """``dumps`` of the attributes sorted by name; flat ones (text, whole numbers, booleans,
    null: almost all) are assembled directly, which costs a third of a ``dumps`` call."""
    if not values:
        return "{}"
    parts = []
    for key in sorted(values):
        value = values[key]
        kind = type(value)
        if type(key) is not str:
            break
        if kind is str:
            text = encode_basestring(value)
        elif kind is bool:
            text = "true" if value else "false"
        elif kind is int:
            text = int.__repr__(value)
        elif value is None:
            text = "null"
        else:
            break
        parts.append(f"{encode_basestring(key)}:{text}")
    else:
        return "{" + ",".join(parts) + "}"
    return dumps(dict(sorted(values.items())))


def _text(value: str | None) -> str:
    return "null" if value is None else encode_basestring(value)


def fingerprint(secret_value: str | bytes) -> str:
    """``sha256:`` and the first 12 hex digits: how a token or signature may be named."""
    data = (
        secret_value.encode("utf-8", "surrogatepass")
        if isinstance(secret_value, str)
        else secret_value
    )
    return "sha256:" + hashlib.sha256(data).hexdigest()[:12]
