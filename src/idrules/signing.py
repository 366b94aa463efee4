"""What the customer's server sends: an HMAC signature or a signed JWT for a user.

``idrules sign`` uses it to show integrators the exact proof the engine accepts. It shares the
message template (:class:`idrules.proof.HmacMessage`) and the claim names (the ruleset's
``verification.jwt.claims``) with the verifier, so what it signs is what verifies.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

import jwt

from ._errors import InputError, SecretsError
from .events import not_json_text
from .proof import HmacMessage
from .rules.model import Ruleset


class Signer:
    """Signs for one ruleset with its keys (:func:`idrules.keys.read_keys` with ``always``)."""

    def __init__(self, ruleset: Ruleset, keys: Mapping[str, bytes]) -> None:
        rules = ruleset.verification
        self.method = rules.method
        self._keys = dict(keys)
        self._message = HmacMessage(rules.hmac.message)
        self._encoding = rules.hmac.encoding
        self._claims = {k: v for k, v in rules.jwt.claims.items() if v}
        self._algorithm = rules.jwt.algorithms[0]

    def hmac(self, values: Mapping[str, Any], key_name: str | None = None) -> str:
        """The signature over ``values`` (as the widget will send them)."""
        message = self._message(values).encode("utf-8")
        digest = hmac.new(self._key(key_name), message, hashlib.sha256).digest()
        return digest.hex() if self._encoding == "hex" else base64.b64encode(digest).decode()

    def token(
        self,
        values: Mapping[str, Any],
        extra: Mapping[str, Any],
        issued_at: int,
        expires_in: int | None,
        key_name: str | None = None,
    ) -> str:
        """A token with the ruleset's claim names for ``values``, ``iat`` and ``exp``.

        Raises :class:`InputError` for a claim value JSON text cannot carry (NaN, infinity, an
        unpaired surrogate): PyJWT would write ``Infinity`` into the payload, a token no
        verifier (this one included) could read."""
        claims: dict[str, Any] = dict(extra)
        for field, claim in self._claims.items():
            if values.get(field) is not None:
                claims[claim] = values[field]
        claims["iat"] = issued_at
        if expires_in is not None:
            claims["exp"] = issued_at + expires_in
        problem = not_json_text(claims)
        if problem is not None:
            raise InputError(f"cannot sign: a claim is not JSON ({problem})")
        return jwt.encode(claims, self._key(key_name), algorithm=self._algorithm)

    def _key(self, key_name: str | None) -> bytes:
        name = key_name or next(iter(self._keys))
        if name not in self._keys:
            known = ", ".join(self._keys)
            raise SecretsError(f"no key named {name!r} in verification.keys (keys: {known})")
        return self._keys[name]
