"""Redaction: how a decision shows the emails and names it carries (the ruleset's ``audit``).

``keep`` shows them; ``mask`` keeps a hint (``a***@example.com``, ``A*** L***``); ``hash``
replaces them by a keyed HMAC (``hmac:`` + 16 hex digits) so the same email still correlates
across lines without being readable, and nobody without the key can test a guess. Emails are
hashed by their match key (:mod:`idrules.matchkeys`), so case does not break the correlation.
Tokens and signatures never reach a decision at all.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping

import attrs

from .decision import Decision
from .keys import read_secret
from .matchkeys import email_key_of
from .reasons import Code
from .rules.model import Ruleset

_EMAIL_DETAIL = "the email failed the syntax check (detail redacted)"


class Redactor:
    """The compiled ``audit`` section; ``apply`` is the identity when everything is kept."""

    def __init__(
        self,
        ruleset: Ruleset,
        secrets: Mapping[str, str | bytes] | None,
        environ: Mapping[str, str],
    ) -> None:
        rules = ruleset.audit
        self.active = rules.emails != "keep" or rules.names != "keep"
        key = (
            read_secret(rules.key, secrets, environ)
            if "hash" in (rules.emails, rules.names)
            else b""
        )
        self._email = _policy(rules.emails, key, _mask_email, email_key_of)
        self._name = _policy(rules.names, key, _mask_name, lambda v: v)
        self._emails_hidden = rules.emails != "keep"

    def apply(self, decision: Decision) -> Decision:
        """The decision as the audit rules show it."""
        if not self.active:
            return decision
        identity = decision.identity
        if identity is not None:
            identity = attrs.evolve(
                identity,
                email=None if identity.email is None else self._email(identity.email),
                name=None if identity.name is None else self._name(identity.name),
            )
        reasons = decision.reasons
        if self._emails_hidden:  # email-validator's messages may quote parts of the address
            reasons = tuple(
                attrs.evolve(r, detail=_EMAIL_DETAIL) if r.code == Code.EMAIL_INVALID else r
                for r in reasons
            )
        return attrs.evolve(decision, identity=identity, reasons=reasons)


def _policy(
    how: str, key: bytes, mask: Callable[[str], str], normalize: Callable[[str], str]
) -> Callable[[str], str]:
    if how == "mask":
        return mask
    if how == "hash":
        return lambda value: (
            "hmac:"
            + hmac.new(key, normalize(value).encode("utf-8"), hashlib.sha256).hexdigest()[:16]
        )
    return lambda value: value


def _mask_email(value: str) -> str:
    local, at, domain = value.rpartition("@")
    if not at:
        return _mask_word(value)
    return f"{_mask_word(local)}@{domain}"


def _mask_name(value: str) -> str:
    return " ".join(_mask_word(word) for word in value.split(" "))


def _mask_word(word: str) -> str:
    return f"{word[:1]}***" if word else word
