"""Stage 2: where every canonical field's value comes from: the client's payload (the vendor's
dialect) or, with a verified token, its claims.

The ruleset's ``input`` says where each canonical field comes from in the payload: a key, a
list of keys (the first present wins) or a template such as ``"{firstName} {lastName}"``
(missing parts dropped, runs of spaces collapsed). ``verification.jwt.claims`` says which
claim holds each field when the identity comes from a token; every other claim but the
registered ones (``iss``, ``sub``, ``exp``, ...) is an attribute when ``extra_claims`` says
so. Values come out exactly as sent: checking and normalising them is a later stage's job
(and HMAC messages need them raw).
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from .rules.model import InputMap, JwtRule

#: the canonical fields a dialect can map, in the order they are read
CANONICAL = ("user_id", "email", "name", "avatar", "signature", "token")
_SPACES = re.compile(r" {2,}")
#: JWT registered claims (RFC 7519): never attributes
REGISTERED_CLAIMS = frozenset(("iss", "sub", "aud", "exp", "nbf", "iat", "jti"))

Getter = Callable[[Mapping[str, Any]], Any]


@attrs.frozen(slots=True)
class Mapped:
    """Canonical values as sent (absent ones are not in ``values``) and the raw attributes."""

    values: Mapping[str, Any]
    attributes: Any = None
    attributes_given: bool = False


class Dialect:
    """A compiled ``input`` mapping (one getter per canonical field) and token claim mapping,
    built once per ruleset."""

    def __init__(self, rules: InputMap, claims: JwtRule | None = None) -> None:
        jwt_rules = claims or JwtRule()
        self._claims = tuple((f, c) for f, c in jwt_rules.claims.items() if c)
        self._extra = jwt_rules.extra_claims == "attributes"
        self._not_extra = REGISTERED_CLAIMS | {c for _, c in self._claims}
        self._getters: list[tuple[str, Getter]] = []
        mapped: set[str] = set()
        for field in CANONICAL:
            source = getattr(rules, field)
            if source is None:
                continue
            getter, keys = _compile(source)
            self._getters.append((field, getter))
            mapped.update(keys)
        self._attributes = rules.attributes
        self._mapped = frozenset(mapped | ({rules.attributes} if rules.attributes else set()))

    def from_claims(self, claims: Mapping[str, Any]) -> Mapped:
        """Canonical values of a verified token's claims (the payload beside it is ignored)."""
        values = {field: claims[claim] for field, claim in self._claims if claim in claims}
        if not self._extra:
            return Mapped(values)
        extra = {k: v for k, v in claims.items() if k not in self._not_extra}
        return Mapped(values, extra, bool(extra))

    def map(self, payload: Mapping[str, Any]) -> Mapped:
        """Canonical values of ``payload`` (an identify payload object)."""
        values: dict[str, Any] = {}
        for field, getter in self._getters:
            value = getter(payload)
            if value is not None:
                values[field] = value
        if self._attributes is None:
            return Mapped(values)
        if self._attributes == "*":
            rest = {k: v for k, v in payload.items() if k not in self._mapped}
            return Mapped(values, rest, bool(rest))
        raw = payload.get(self._attributes)
        return Mapped(values, raw, raw is not None)


def _compile(source: str | tuple[str, ...] | list[str]) -> tuple[Getter, set[str]]:
    """A getter for one ``input`` value, and the payload keys it reads."""
    if isinstance(source, (tuple, list)):
        keys = tuple(source)

        def first(payload: Mapping[str, Any]) -> Any:
            for key in keys:
                value = payload.get(key)
                if value is not None:
                    return value
            return None

        return first, set(keys)
    if "{" in source:
        return _template(source)
    key = source
    return (lambda payload: payload.get(key)), {key}


def _template(text: str) -> tuple[Getter, set[str]]:
    parts = list(string.Formatter().parse(text))
    keys = {name for _, name, _, _ in parts if name}

    def fill(payload: Mapping[str, Any]) -> Any:
        out: list[str] = []
        found = False
        for literal, name, _, _ in parts:
            out.append(literal)
            if not name:
                continue
            value = payload.get(name)
            if value is None:
                continue
            found = True
            out.append(value if isinstance(value, str) else json.dumps(value, ensure_ascii=False))
        if not found:
            return None
        return _SPACES.sub(" ", "".join(out)).strip(" ")

    return fill, keys
