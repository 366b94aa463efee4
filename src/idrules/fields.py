"""Stage 4: check and normalise each canonical identity field against its ``fields`` rule.

Checks run in a fixed order: type, whitespace, emptiness, blocked values, length, format
(email syntax, email-shaped user ids). The first failing check decides the field; its
``on_invalid`` policy (``reject`` > ``anonymous`` > ``drop``) decides what the whole call
becomes. Every check that fired, failing or not, is a reason citing its knob.

Match keys come from :mod:`idrules.matchkeys`: they only ever lower-case, one character to
one, so ``FOObar@Example.Com`` and ``foobar@example.com`` are one address while
``admin@straße.de`` and ``admin@strasse.de`` are two.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, Literal

import attrs

from .decision import Reason
from .emails import EmailCache
from .matchkeys import email_key_of, user_key
from .reasons import Check, Code, field_code
from .rules.model import IDENTITY_FIELDS, FieldRule, Ruleset

Policy = Literal["anonymous", "reject", "drop"]
_SEVERITY: dict[str | None, int] = {None: 0, "drop": 1, "anonymous": 2, "reject": 3}
_EMAIL_SHAPED = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


@attrs.frozen(slots=True)
class Checked:
    """One field after its checks: the accepted value and key, or the policy that failed it."""

    value: str | None
    key: str | None
    reasons: tuple[Reason, ...] = ()
    failed: Policy | None = None


@attrs.frozen(slots=True)
class CheckedIdentity:
    """All identity fields of one call, checked; ``failed`` is the strongest policy that fired."""

    fields: Mapping[str, Checked]
    reasons: tuple[Reason, ...]
    failed: Policy | None
    given_identifier: bool

    def value(self, name: str) -> str | None:
        checked = self.fields.get(name)
        return None if checked is None else checked.value

    def key(self, name: str) -> str | None:
        checked = self.fields.get(name)
        return None if checked is None else checked.key

    def keyed_by(self, covered: frozenset[str]) -> CheckedIdentity:
        """These fields with the match keys of identifiers outside ``covered`` removed: a
        verified call is matched only by what its proof vouches for (docs/rules.md), so a value it
        did not sign can neither send it to another profile nor, through a conflict, refuse
        it; the value itself is kept (a contact email, say), without a key."""
        if all(name in covered or self.key(name) is None for name in IDENTIFIERS):
            return self
        fields = {
            name: attrs.evolve(checked, key=None)
            if name in IDENTIFIERS and name not in covered
            else checked
            for name, checked in self.fields.items()
        }
        return CheckedIdentity(fields, self.reasons, self.failed, self.given_identifier)


_ABSENT = Checked(None, None)
#: the knobs only some fields have (every field has type, required, whitespace, empty,
#: blocked and max_length)
_OWN_KNOBS = {"user_id": ("email_shaped",), "email": ("validate",)}
#: the fields that identify a caller; a call with neither is anonymous
IDENTIFIERS = ("user_id", "email")


def _is_absent(result: Checked) -> bool:
    return result.value is None and result.failed is None


class FieldChecker:
    """The compiled checks for one field: citations resolved once, not per event."""

    def __init__(
        self, name: str, rule: FieldRule, ruleset: Ruleset, emails: EmailCache | None = None
    ) -> None:
        self.name = name
        self.rule = rule
        knobs = ("type", "required", "whitespace", "empty", "blocked", "max_length")
        self._cite = {
            k: ruleset.cite("fields", name, k) for k in (*knobs, *_OWN_KNOBS.get(name, ()))
        }
        self._blocked = frozenset(value.casefold() for value in rule.blocked)
        self._is_email = name == "email"
        self._emails = emails or EmailCache()
        self._trimmed = Reason(field_code(name, Check.TRIMMED), self._cite["whitespace"], name)
        self._truncated = Reason(
            field_code(name, Check.TRUNCATED),
            self._cite["max_length"],
            name,
            f"cut to {rule.max_length} code points",
        )
        self._missing = Checked(
            None,
            None,
            (Reason(field_code(name, Check.MISSING), self._cite["required"], name),),
            rule.on_invalid,
        )

    def absent(self, raw: Any) -> bool:
        """Whether a value as sent counts as not given: null, or empty under ``empty: absent``."""
        if raw is None:
            return True
        if self.rule.empty != "absent" or not isinstance(raw, str):
            return False
        return raw == "" or (self.rule.whitespace != "invalid" and raw.strip() == "")

    def missing(self) -> Checked:
        """The result for a ``required`` field the call did not carry."""
        return self._missing

    def check(self, raw: Any) -> Checked:
        """Check one value as sent (``None``: absent)."""
        if raw is None:
            return _ABSENT
        rule, name = self.rule, self.name
        reasons: list[Reason] = []
        if isinstance(raw, str):
            value = raw
        elif rule.type == "scalar" and isinstance(raw, (int, float)) and not isinstance(raw, bool):
            value = json.dumps(raw)
        else:
            expected = "a string" if rule.type == "string" else "a string or a number"
            return self._fail(
                Check.INVALID_TYPE, "type", f"expected {expected}, got {_json_type(raw)}"
            )
        if value != value.strip():
            if rule.whitespace == "invalid":
                return self._fail(Check.WHITESPACE, "whitespace", "leading or trailing whitespace")
            if rule.whitespace == "strip":
                value = value.strip()
                reasons.append(self._trimmed)
        if value == "" and rule.empty == "absent":
            return Checked(None, None, tuple(reasons))
        if self._blocked and value.casefold() in self._blocked:
            return self._fail(Check.BLOCKED, "blocked", "a blocked placeholder value", reasons)
        limit = rule.max_length
        if limit is not None and len(value) > limit:
            if rule.too_long == "invalid":
                return self._fail(
                    Check.TOO_LONG, "max_length", f"{len(value)} code points > {limit}", reasons
                )
            value = value[:limit]
            reasons.append(self._truncated)
        if self._is_email:
            if not rule.validate:
                return Checked(value, email_key_of(value), tuple(reasons))
            normalized, key, error = self._emails(value)
            if normalized is None:
                return self._fail_code(Code.EMAIL_INVALID, "validate", error, reasons)
            return Checked(normalized, key, tuple(reasons))
        if name == "user_id":
            if rule.email_shaped != "allow" and _EMAIL_SHAPED.fullmatch(value):
                cite = self._cite["email_shaped"]
                if rule.email_shaped == "invalid":
                    return self._fail_code(
                        Code.USER_ID_EMAIL_SHAPED,
                        "email_shaped",
                        "a user id must not be an email address",
                        reasons,
                    )
                reasons.append(
                    Reason(
                        Code.USER_ID_EMAIL_SHAPED,
                        cite,
                        name,
                        "looks like an email address; send emails as email",
                    )
                )
            return Checked(value, user_key(value, rule.case_sensitive), tuple(reasons))
        return Checked(value, None, tuple(reasons))

    def _fail(
        self, what: Check, knob: str, detail: str | None, reasons: list[Reason] | None = None
    ) -> Checked:
        return self._fail_code(field_code(self.name, what), knob, detail, reasons)

    def _fail_code(
        self, code: str, knob: str, detail: str | None, reasons: list[Reason] | None = None
    ) -> Checked:
        reason = Reason(code, self._cite[knob], self.name, detail)
        return Checked(None, None, (*(reasons or ()), reason), self.rule.on_invalid)


class IdentityChecker:
    """Checks every identity field of a call and applies ``required`` (docs/rules.md)."""

    def __init__(self, ruleset: Ruleset) -> None:
        emails = EmailCache()  # one per engine: its checks of inline emails share it
        self.checkers = {
            name: FieldChecker(name, ruleset.field(name), ruleset, emails)
            for name in IDENTITY_FIELDS
        }
        self._checkers = tuple(self.checkers.items())

    def check(self, values: Mapping[str, Any]) -> CheckedIdentity:
        """Check the canonical values of one call (as sent, after the dialect)."""
        results = {name: checker.check(values.get(name)) for name, checker in self._checkers}
        given = any(not _is_absent(results[name]) for name in IDENTIFIERS)
        reasons: list[Reason] = []
        failed: Policy | None = None
        for name, checker in self._checkers:
            result = results[name]
            if given and checker.rule.required and _is_absent(result):
                result = results[name] = checker.missing()
            elif result is _ABSENT:
                continue
            if result.reasons:
                reasons.extend(result.reasons)
            if result.failed is not None and _SEVERITY[result.failed] > _SEVERITY[failed]:
                failed = result.failed
        return CheckedIdentity(results, tuple(reasons), failed, given)

    def carries_identifier(self, values: Mapping[str, Any]) -> bool:
        """Whether the call asserts a user id or an email at all (an empty value it may leave
        blank, per ``empty: absent``, is no identifier); callers with none are anonymous."""
        return any(not self.checkers[name].absent(values.get(name)) for name in IDENTIFIERS)

    def check_email(self, raw: Any) -> Checked:
        """Check an inline email (a ``track``'s prompt) with the email rule."""
        return self.checkers["email"].check(raw)


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    return "null"  # pragma: no cover - None is absent, not checked
