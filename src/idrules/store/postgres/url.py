"""A PostgreSQL store's URL: recognised, its idrules options taken out, and named in messages
with the password masked.

The URL is libpq's (``postgresql://user:password@host:port/dbname?sslmode=require``); the
password may also come from ``PGPASSWORD`` or ``~/.pgpass``, which libpq reads itself. idrules
adds one query parameter of its own, ``idrules_schema=NAME`` (the PostgreSQL schema holding the
store's tables, default ``idrules``), removed before the URL reaches libpq.

A password is never printed: messages name the store by :func:`masked` (``user:***@``), and
:func:`scrub` takes the password out of any text that quotes it (a driver's error message).
"""

from __future__ import annotations

import re
import urllib.parse

import attrs

from ..._errors import StoreError

#: the schemes that name a PostgreSQL store (libpq accepts both)
SCHEMES = ("postgresql://", "postgres://")
#: the PostgreSQL schema a store's tables live in, unless the URL or the caller says otherwise
DEFAULT_SCHEMA = "idrules"
#: the query parameter naming it
SCHEMA_PARAM = "idrules_schema"
#: a schema name idrules accepts: a plain identifier, so it never needs quoting in a message
_SCHEMA_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_MASK = "***"


def is_postgres_url(text: str) -> bool:
    """Whether a ``--store`` argument names a PostgreSQL database rather than a file."""
    return text.startswith(SCHEMES)


@attrs.frozen
class StoreUrl:
    """A store URL taken apart: what libpq connects to, what messages show, the schema."""

    conninfo: str  # the URL without idrules' own parameters (holds the password, if given)
    shown: str  # the URL as messages show it: password masked
    schema: str
    secrets: tuple[str, ...]  # the password as written and decoded: scrubbed from messages


def parse(url: str, schema: str | None = None) -> StoreUrl:
    """Take ``url`` apart; ``schema`` (a keyword argument) wins over ``idrules_schema=``."""
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    kept = [(k, v) for k, v in query if k != SCHEMA_PARAM]
    given = [v for k, v in query if k == SCHEMA_PARAM]
    chosen = schema if schema is not None else (given[-1] if given else DEFAULT_SCHEMA)
    secrets = _passwords(parts.netloc, query)
    conninfo = urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(kept)))
    shown = masked(url)
    if not _SCHEMA_NAME.fullmatch(chosen):
        raise StoreError(
            f"store {shown}: schema name {chosen[:64]!r} is not a plain identifier "
            "(letters, digits and _, not starting with a digit, at most 63)"
        )
    return StoreUrl(conninfo, shown, chosen, secrets)


def masked(url: str) -> str:
    """``url`` with its password (in the user part, or a ``password=`` parameter) as ``***``."""
    parts = urllib.parse.urlsplit(url)
    netloc = parts.netloc
    user, at, host = netloc.rpartition("@")
    if at and ":" in user:
        netloc = f"{user.split(':', 1)[0]}:{_MASK}@{host}"
    query = parts.query
    if query:
        pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
        if any(k == "password" for k, _ in pairs):
            query = "&".join(
                f"{k}={_MASK}" if k == "password" else f"{k}={urllib.parse.quote(v, safe='')}"
                for k, v in pairs
            )
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc, query=query))


def scrub(text: str, secrets: tuple[str, ...]) -> str:
    """``text`` with every secret in it replaced by ``***`` and on one line."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, _MASK)
    return " ".join(text.split())


def _passwords(netloc: str, query: list[tuple[str, str]]) -> tuple[str, ...]:
    found: list[str] = []
    user, at, _ = netloc.rpartition("@")
    if at and ":" in user:
        raw = user.split(":", 1)[1]
        found += [raw, urllib.parse.unquote(raw)]
    found += [v for k, v in query if k == "password"]
    # longest first: a password containing another one is masked whole
    return tuple(sorted({s for s in found if s}, key=len, reverse=True))
