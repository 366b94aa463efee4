"""Match keys: the one place that says when two values name the same person.

A match key decides who is the same person, so two different people must never share one
(docs/stores.md). Full Unicode case folding (``str.casefold``) joins different addresses and ids:
``ß``/``ss``, ``ſ``/``s``, ``ﬁ``/``fi``, ``ς``/``σ``, and ``straße.de`` is another domain than
``strasse.de``. So a key only ever lower-cases, one character to one character:

- an email's key is its local part lower-cased that way and its domain in its ASCII (IDNA)
  form, lower-cased: ``Ada@Example.COM`` and ``ada@example.com`` share a key,
  ``admin@straße.de`` (``admin@xn--strae-oqa.de``) and ``admin@strasse.de`` do not;
- a user id is its own key, or lower-cased the same way under ``case_sensitive: false``.

Two values therefore share a key only when they differ by letter case alone. Every key is
built here: the field checks, ``history`` and the store's re-keying of older files call these
functions and nothing else.
"""

from __future__ import annotations

from functools import lru_cache

from email_validator import EmailNotValidError, validate_email

#: domains whose ASCII form was looked up (stored or queried addresses; bounded)
_DOMAINS = 4_096


def lower_each(text: str) -> str:
    """``text`` lower-cased one character to one character, each on its own.

    ``str.lower()`` maps a few characters to two (``İ`` -> ``i̇``): those stay as they are, so
    the key never has another length than the value. And it lowers a word-final ``Σ`` to
    ``ς`` (its context rule), which would give ``AΣ`` the key of ``Aς`` rather than of ``Aσ``:
    lowering each character alone keeps ``ς`` and ``σ`` apart, as they are in a mailbox."""
    if text.isascii():
        return text.lower()
    return "".join(low if len(low := c.lower()) == 1 else c for c in text)


def user_key(user_id: str, case_sensitive: bool) -> str:
    """The match key of a user id: itself, or :func:`lower_each` of it."""
    return user_id if case_sensitive else lower_each(user_id)


def email_key(local_part: str, ascii_domain: str) -> str:
    """The match key of an address from its (normalised) local part and its ASCII domain."""
    return f"{lower_each(local_part)}@{ascii_domain.lower()}"


def email_key_of(address: str) -> str:
    """The match key of an address as stored or typed (email-validator's normalised form,
    whose domain may be Unicode): the domain is put in its ASCII form first. A value that is
    not an address (``validate: false`` keeps any text) is lower-cased as a whole."""
    local, at, domain = address.rpartition("@")
    if not at:
        return lower_each(address)
    ascii_domain = domain.lower() if domain.isascii() else _ascii_domain(domain)
    if ascii_domain is None:
        return lower_each(address)
    return email_key(local, ascii_domain)


@lru_cache(maxsize=_DOMAINS)
def _ascii_domain(domain: str) -> str | None:
    """A Unicode domain's ASCII (IDNA) form, as email-validator computes it (never DNS)."""
    try:
        return validate_email("a@" + domain, check_deliverability=False).ascii_domain
    except EmailNotValidError:
        return None
