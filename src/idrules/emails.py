"""Email syntax through email-validator (syntax only, never DNS), cached for a hot path.

:func:`normalize_email` is email-validator's verdict: the normalised address, or its error
message. :class:`EmailCache` gives the same answers faster, per engine:

- almost every address in a log is a plain ASCII ``local@domain``, and almost all of the
  library's time goes into the domain (IDNA, UTS 46 per character). For a plain local part
  (the library's own dot-atom pattern) the normalised address is the local part unchanged, an
  ``@`` and the normalised domain, so the domain's verdict is cached and shared by every
  address at that domain;
- anything else (non-ASCII, quoting, display names, special mailbox names, domains the
  library rewrites, failures, whose messages name the address) goes to the library itself,
  cached by the whole address.

``tests/test_emails.py`` checks the two paths agree on generated addresses.
"""

from __future__ import annotations

import re

from email_validator import EmailNotValidError, validate_email
from email_validator.rfc_constants import (
    CASE_INSENSITIVE_MAILBOX_NAMES,
    DOT_ATOM_TEXT,
    EMAIL_MAX_LENGTH,
)

from .caches import BoundedCache, memoized
from .matchkeys import email_key

#: (normalised address, its match key, None) or (None, None, the library's message)
Verdict = tuple[str | None, str | None, str | None]

#: a domain spelled only with these is read the same in any address (no quoting, no brackets)
_PLAIN_DOMAIN = re.compile(r"[A-Za-z0-9.-]+")
_SPECIAL_LOCAL = frozenset(name.lower() for name in CASE_INSENSITIVE_MAILBOX_NAMES)
_DOMAINS = 4_096
#: addresses off the fast path (non-ASCII, quoted, invalid): rare, so fewer are kept
_UNUSUAL = 4_096


def normalize_email(text: str) -> Verdict:
    """email-validator's normalised form of ``text`` and its match key, or its error message
    (never DNS)."""
    try:
        result = validate_email(text, check_deliverability=False)
    except EmailNotValidError as exc:
        return None, None, str(exc)
    return result.normalized, email_key(result.local_part, result.ascii_domain), None


class EmailCache:
    """:func:`normalize_email` with a per-domain cache for plain addresses and a per-address
    cache for the rest. Bounded (``size`` returning addresses, 4,096 domains, 4,096 unusual
    addresses) so a long replay's memory levels off; one per engine, never shared."""

    def __init__(self, size: int = 16_384) -> None:
        self._seen: BoundedCache[str, Verdict] = BoundedCache(size)  # returning addresses
        self._domains: BoundedCache[str, str | None] = BoundedCache(_DOMAINS)
        self._whole = memoized(normalize_email, _UNUSUAL)

    def __call__(self, text: str) -> Verdict:
        seen = self._seen.get(text)
        if seen is None:
            seen = self._seen.put(text, self._check(text))
        return seen

    def _check(self, text: str) -> Verdict:
        local, at, domain = text.partition("@")
        if (
            at
            and len(text) <= EMAIL_MAX_LENGTH
            and text.isascii()
            and DOT_ATOM_TEXT.match(local)
            and _PLAIN_DOMAIN.fullmatch(domain)
            and local.lower() not in _SPECIAL_LOCAL
        ):
            normalized = self._domain(domain)
            if normalized is not None and len(local) + 1 + len(normalized) <= EMAIL_MAX_LENGTH:
                # an ASCII domain the library leaves ASCII is its own (lower-case) IDNA form
                return f"{local}@{normalized}", f"{local.lower()}@{normalized}", None
        return self._whole(text)

    def _domain(self, domain: str) -> str | None:
        """The domain as the library normalises it, or None when only the library itself may
        answer for addresses there (an invalid domain, or one it turns into Unicode)."""
        if domain in self._domains:
            return self._domains[domain]
        try:
            result = validate_email("a@" + domain, check_deliverability=False)
        except EmailNotValidError:
            normalized = None
        else:
            normalized = result.domain if result.domain == result.ascii_domain else None
        self._domains.put(domain, normalized)
        return normalized
