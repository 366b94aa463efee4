"""PyJWT's signature verifier, prepared once for a ruleset: only the allowed algorithms, and
each HMAC key checked at start-up rather than on every token."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import jwt
from jwt.algorithms import HMACAlgorithm, get_default_algorithms

from ._errors import SecretsError


class _PreparedHMAC(HMACAlgorithm):
    """PyJWT's HMAC algorithm, with each key prepared (and checked) once rather than on every
    token: PyJWT's key preparation re-checks the secret (PEM, SSH, DER, JSON) per call, which
    cost more than the signature itself."""

    def __init__(self, hash_alg: Any) -> None:
        super().__init__(hash_alg)
        self._prepared: dict[str | bytes, bytes] = {}

    def prepare_key(self, key: str | bytes) -> bytes:
        prepared = self._prepared.get(key)
        if prepared is None:
            prepared = self._prepared[key] = super().prepare_key(key)
        return prepared


def jws_for(algorithms: list[str], keys: Mapping[str, bytes]) -> jwt.PyJWS:
    """A PyJWT signature verifier knowing only the allowed algorithms, its keys prepared now,
    so a key PyJWT refuses as an HMAC secret is reported at start-up, not on every token."""
    jws = jwt.PyJWS(algorithms=algorithms)
    defaults = get_default_algorithms()
    for name in algorithms:
        hashed = _PreparedHMAC(cast(HMACAlgorithm, defaults[name]).hash_alg)
        for key_name, key in keys.items():
            try:
                hashed.prepare_key(key)
            except jwt.InvalidKeyError as exc:
                raise SecretsError(f"key {key_name!r} cannot be an HMAC secret: {exc}") from None
        jws.unregister_algorithm(name)
        jws.register_algorithm(name, hashed)
    return jws


def algorithm_of(token: str) -> str:
    """The token's declared algorithm, for a reason's detail (short, or "?")."""
    try:
        algorithm = jwt.get_unverified_header(token).get("alg")
    except jwt.PyJWTError:
        return "?"
    return algorithm if isinstance(algorithm, str) and len(algorithm) <= 16 else "?"
