"""Stage 3: verify the caller's proof of identity (the ruleset's ``verification``).

``hmac``: the identity comes from the payload, and the signature must equal the HMAC-SHA256
of the message template filled with the values *as the client sent them*. ``jwt``: the
identity comes from the verified token's claims alone (PyJWT; algorithms from the rules'
allow-list, never from the token), and time claims are checked against the event's ``ts``,
so an old log replays as it happened. Every listed key is tried (rotation); a decision names
the key that verified, never its value. Secrets, signatures and tokens never reach a reason.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import string
from collections.abc import Mapping
from functools import lru_cache
from typing import Any, cast

import attrs
import jwt
from jwt.algorithms import HMACAlgorithm, get_default_algorithms

from ._errors import InputError, SecretsError
from .decision import Reason, dumps, fingerprint
from .dialect import Mapped
from .events import not_json_text, strict_loads
from .keys import read_secret
from .rules.model import IDENTITY_FIELDS, Ruleset

MAX_TOKEN_BYTES = 8 * 1024
_TOKEN_CACHE = 4096
_PROOF_CACHE = 16_384
REGISTERED_CLAIMS = frozenset(("iss", "sub", "aud", "exp", "nbf", "iat", "jti"))
_EVERY_FIELD = frozenset(IDENTITY_FIELDS)
_HEX = re.compile(r"[0-9a-fA-F]{64}")
_B64 = re.compile(r"[A-Za-z0-9+/]{43}=?|[A-Za-z0-9_-]{43}=?")
_US = 1_000_000


@attrs.frozen(slots=True)
class Proof:
    """What the proof stage concluded (see :mod:`idrules.proof`). ``covers``: the identity
    fields a verified proof vouches for (an HMAC's message template names them; a token
    vouches for every field, since the identity comes from its claims alone)."""

    verified: bool = False
    reasons: tuple[Reason, ...] = ()
    refuse: bool = False  # reject the call
    anonymous: bool = False  # treat the caller as anonymous
    covers: frozenset[str] = frozenset()


NO_PROOF = Proof()


@attrs.frozen(slots=True)
class Verified:
    """The proof's verdict and the values the rest of the pipeline checks."""

    proof: Proof
    values: Mapping[str, Any]
    attributes: Any = None
    attributes_given: bool = False


class Prover:
    """The compiled ``verification`` section with its secrets, built once per engine."""

    def __init__(
        self,
        ruleset: Ruleset,
        secrets: Mapping[str, str | bytes] | None = None,
        environ: Mapping[str, str] | None = None,
        *,
        signing: bool = False,
    ) -> None:
        rules = ruleset.verification
        self.mode = rules.mode
        self.method = rules.method
        env = os.environ if environ is None else environ
        self._keys = (
            {}
            if rules.mode == "disabled" and not signing
            else {name: read_secret(name, secrets, env) for name in rules.keys}
        )
        self._hmac_keys = [
            (name, hmac.new(key, digestmod=hashlib.sha256)) for name, key in self._keys.items()
        ]
        self._on_failure = rules.on_failure
        self._template = list(string.Formatter().parse(rules.hmac.message))
        # a signature over none of these fields would be an HMAC of the template's bare text:
        # it proves nothing about the caller, so such a call is refused
        self._signed_fields = tuple(name for _, name, _, _ in self._template if name)
        self._hmac_covers = frozenset(self._signed_fields)
        only = self._template[0] if len(self._template) == 1 else None
        self._only = only[1] if only is not None and not only[0] and not only[2] else None
        self._encoding = rules.hmac.encoding
        jwt_rules = rules.jwt
        self._algorithms = list(jwt_rules.algorithms)
        self._jws = _jws_for(self._algorithms, self._keys if rules.method == "jwt" else {})
        self._claims = {k: v for k, v in jwt_rules.claims.items() if v}
        self._required = tuple(jwt_rules.required)
        self._leeway_us = jwt_rules.leeway_s * _US
        self._max_age_us = None if jwt_rules.max_age_s is None else jwt_rules.max_age_s * _US
        self._extra = jwt_rules.extra_claims == "attributes"
        # tokens already verified -> (key name, claims): a widget re-sends the same token
        # until it expires; only the time claims are checked again, against each event's ts
        self._tokens: dict[str, tuple[str, dict[str, Any]]] = {}
        # (message, signature) pairs already verified -> their proof (see _hmac)
        self._proofs: dict[tuple[str, str], Proof] = {}
        self._fingerprint = lru_cache(maxsize=_TOKEN_CACHE)(fingerprint)
        mapped_claims = set(self._claims.values())
        self._skip_claims = REGISTERED_CLAIMS | mapped_claims
        cite = ruleset.cite
        self._c = {
            k: cite(f"verification.{k}")
            for k in (
                "mode",
                "method",
                "keys",
                "on_failure",
                "hmac.message",
                "hmac.encoding",
                "jwt.algorithms",
                "jwt.required",
                "jwt.leeway_s",
                "jwt.max_age_s",
            )
        }

    def verify(self, mapped: Mapped, ts: int, identified: bool = True) -> Verified:
        """Verify one identify call's proof at the event's time ``ts`` (µs since the epoch).

        ``identified``: whether the payload asserts a user id or an email; a caller with
        neither is anonymous and never refused for lacking proof.
        """
        values = mapped.values
        plain = Verified(NO_PROOF, values, mapped.attributes, mapped.attributes_given)
        if self.mode == "disabled":
            return plain
        if self.method == "jwt":
            token = values.get("token")
            if token is not None:
                verdict = self._jwt(token, ts)  # a verified one names the token already
                return (
                    verdict
                    if verdict.proof.verified
                    else self._fingerprinted(verdict, "token", token)
                )
            if not identified:
                return plain  # anonymous callers are never refused for lacking proof
            return self._missing(plain, "token")
        if not identified:
            return plain
        signature = values.get("signature")
        if signature is None:
            return self._missing(plain, "signature")
        return self._hmac(plain, signature)

    # hmac ------------------------------------------------------------------------------
    def _hmac(self, plain: Verified, signature: Any) -> Verified:
        """The signature's verdict; a signature that verified once is known by its message.

        A returning user sends the same message and signature again and again: the verified
        proof is kept (the keys never change while the engine runs), so only new pairs cost
        an HMAC. Only a call its signature covers is looked up, so the cache never answers
        for a call the checks below would refuse."""
        seen: tuple[str, str] | None = None
        if isinstance(signature, str) and self._covers(plain.values):
            seen = (self.message(plain.values), signature)
            proof = self._proofs.get(seen)
            if proof is not None:
                return _with_proof(plain, proof)
        verdict = self._check_hmac(plain, signature)
        if isinstance(verdict, Verified):
            return self._fingerprinted(verdict, "signature", signature)
        proof = self._verified(
            verdict, self._hmac_covers, f"signature {self._fingerprint(signature)}"
        )
        if seen is not None:
            if len(self._proofs) >= _PROOF_CACHE:
                del self._proofs[next(iter(self._proofs))]  # the oldest
            self._proofs[seen] = proof
        return _with_proof(plain, proof)

    def _covers(self, values: Mapping[str, Any]) -> bool:
        """Whether the call carries at least one field the signature is computed over."""
        return any(values.get(field) is not None for field in self._signed_fields)

    def _check_hmac(self, plain: Verified, signature: Any) -> Verified | str:
        """The name of the key that signed the call, or the failure."""
        if not isinstance(signature, str):
            return self._fail(
                plain, "auth.invalid", "hmac.encoding", "signature", "the signature is not a string"
            )
        given = _decode_signature(signature, self._encoding)
        if given is None:
            return self._fail(
                plain,
                "auth.invalid",
                "hmac.encoding",
                "signature",
                f"the signature is not {self._encoding} HMAC-SHA256",
            )
        if not self._covers(plain.values):
            signed = ", ".join(self._signed_fields)
            return self._fail(
                plain,
                "auth.invalid",
                "hmac.message",
                "signature",
                f"the call lacks what the signature must cover ({signed})",
            )
        message = self.message(plain.values).encode("utf-8", "surrogatepass")
        for name, keyed in self._hmac_keys:
            mac = keyed.copy()
            mac.update(message)
            if hmac.compare_digest(mac.digest(), given):
                return name
        return self._fail(
            plain,
            "auth.invalid",
            "hmac.message",
            "signature",
            "the signature does not match the payload",
        )

    def message(self, values: Mapping[str, Any]) -> str:
        """The HMAC message: the template filled with the values as sent ('' when missing)."""
        if self._only is not None:  # the template is one field, e.g. "{user_id}"
            value = values.get(self._only)
            return "" if value is None else value if isinstance(value, str) else dumps(value)
        out: list[str] = []
        for literal, name, _, _ in self._template:
            out.append(literal)
            if name:
                value = values.get(name)
                if value is None:
                    continue
                out.append(value if isinstance(value, str) else dumps(value))
        return "".join(out)

    # jwt -------------------------------------------------------------------------------
    def _jwt(self, token: Any, ts: int) -> Verified:
        nothing = Verified(NO_PROOF, {})
        if not isinstance(token, str):
            return self._fail(
                nothing, "auth.invalid", "method", "token", "the token is not a string"
            )
        if (
            len(token) > MAX_TOKEN_BYTES
            or len(token.encode("utf-8", "surrogatepass")) > MAX_TOKEN_BYTES
        ):
            return self._fail(
                nothing, "auth.invalid", "method", "token", "the token is larger than 8 KiB"
            )
        cached = self._tokens.get(token)
        if cached is None:
            decoded = self._decode(token, nothing)
            if isinstance(decoded, Verified):
                return decoded
            cached = decoded
            if len(self._tokens) >= _TOKEN_CACHE:
                del self._tokens[next(iter(self._tokens))]  # the oldest
            self._tokens[token] = cached
        key_name, claims = cached
        problem = self._time_problem(claims, ts)
        if problem is not None:
            code, knob, detail = problem
            return self._fail(nothing, code, knob, "token", detail)
        for claim in self._required:
            if claim not in claims:
                return self._fail(
                    nothing,
                    "auth.claims",
                    "jwt.required",
                    claim,
                    f"required claim {claim!r} is missing",
                )
        values = {field: claims[claim] for field, claim in self._claims.items() if claim in claims}
        extra = {k: v for k, v in claims.items() if k not in self._skip_claims}
        if not self._extra:
            extra = {}
        proof = self._verified(key_name, _EVERY_FIELD, f"token {self._fingerprint(token)}")
        return Verified(proof, values, extra, bool(extra))

    def _decode(self, token: str, nothing: Verified) -> tuple[str, dict[str, Any]] | Verified:
        """The key that verifies ``token`` and its claims (times not checked), or the failure.

        One parse per key: PyJWT itself refuses an algorithm outside the allow-list (the
        header is read again only to name it in the reason, on that rare path)."""
        for name, key in self._keys.items():
            try:
                signed = self._jws.decode_complete(token, key, algorithms=self._algorithms)
                # strict JSON (RFC 7519: UTF-8): NaN, Infinity and 1e400 are refused here
                claims = strict_loads(signed["payload"].decode("utf-8"))
            except jwt.InvalidSignatureError:
                continue
            except jwt.InvalidAlgorithmError:
                return self._fail(
                    nothing,
                    "auth.algorithm",
                    "jwt.algorithms",
                    "token",
                    f"algorithm {_algorithm_of(token)!r} is not allowed",
                )
            except (jwt.PyJWTError, ValueError, RecursionError):  # the payload is not JSON
                return self._fail(
                    nothing, "auth.invalid", "method", "token", "the token is malformed"
                )
            if not isinstance(claims, dict) or not_json_text(claims) is not None:
                # NaN/Infinity: never into a decision or a clock
                return self._fail(
                    nothing, "auth.invalid", "method", "token", "the token is malformed"
                )
            return name, claims
        return self._fail(
            nothing, "auth.invalid", "keys", "token", "the token's signature does not match any key"
        )

    def _time_problem(self, claims: Mapping[str, Any], ts: int) -> tuple[str, str, str] | None:
        """The first time claim that refuses the token at the event's time ``ts``, if any.

        A time claim is a NumericDate: a finite number of seconds within the years 1 to 9999
        (what any RFC 3339 ``ts`` can be compared with). Anything else (a huge ``exp`` such as
        1e308, whose microseconds overflow to infinity) is ``auth.invalid``, never an error."""
        leeway = self._leeway_us
        earliest, latest = -62_135_596_800, 253_402_300_799  # years 1 and 9999, in seconds
        stamps: dict[str, int] = {}
        for claim in ("exp", "nbf", "iat"):
            if claim in claims:
                value = claims[claim]
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    return "auth.invalid", "method", f"claim {claim!r} is not a number"
                if not earliest <= value <= latest:  # False for NaN too
                    return (
                        "auth.invalid",
                        "method",
                        f"claim {claim!r} is not a time between the years 1 and 9999",
                    )
                stamps[claim] = int(value * _US)
        if "exp" in stamps and ts >= stamps["exp"] + leeway:  # valid only *before* exp
            return "auth.expired", "jwt.leeway_s", "the token had expired at the event's time"
        if "nbf" in stamps and ts < stamps["nbf"] - leeway:
            return "auth.not_yet_valid", "jwt.leeway_s", "the token was not yet valid"
        if "iat" in stamps and ts < stamps["iat"] - leeway:
            return "auth.not_yet_valid", "jwt.leeway_s", "the token was issued after the event"
        if self._max_age_us is not None:
            if "iat" not in stamps:
                return "auth.claims", "jwt.max_age_s", "max_age_s needs the 'iat' claim"
            if ts - stamps["iat"] > self._max_age_us + leeway:
                return "auth.expired", "jwt.max_age_s", "the token is older than max_age_s"
        return None

    # verdicts --------------------------------------------------------------------------
    def _verified(self, key_name: str, covers: frozenset[str], mark: str) -> Proof:
        """A verified proof naming the key and the signature's or token's fingerprint."""
        reason = Reason("auth.verified", self._c["method"], None, f"key {key_name}; {mark}")
        return Proof(verified=True, reasons=(reason,), covers=covers)

    def _missing(self, plain: Verified, what: str) -> Verified:
        if self.mode == "optional":
            return plain
        return self._fail(plain, "auth.missing", "mode", what, f"no {what}: proof is required")

    def _fail(self, plain: Verified, code: str, knob: str, field: str, detail: str) -> Verified:
        consequence = "refused" if self._on_failure == "reject" else "treated as anonymous"
        reason = Reason(code, self._c[knob], field, f"{detail}; {consequence} (on_failure)")
        proof = Proof(
            reasons=(reason,),
            refuse=self._on_failure == "reject",
            anonymous=self._on_failure == "anonymous",
        )
        return _with_proof(plain, proof)

    def _fingerprinted(self, verified: Verified, what: str, value: Any) -> Verified:
        """The proof's reasons name the token or signature by fingerprint (never by value), so an
        auditor can see the same token come back without ever reading it."""
        proof = verified.proof
        if not isinstance(value, str) or not proof.reasons:
            return verified
        mark = f"{what} {self._fingerprint(value)}"
        reasons = tuple(
            Reason(r.code, r.rule, r.field, f"{r.detail}; {mark}" if r.detail else mark)
            for r in proof.reasons
        )
        return _with_proof(verified, Proof(proof.verified, reasons, proof.refuse, proof.anonymous))

    # for `idrules sign` ----------------------------------------------------------------
    def sign_hmac(self, values: Mapping[str, Any], key_name: str | None = None) -> str:
        """What the customer's server computes: the signature over ``values`` (as sent)."""
        key = self._key(key_name)
        digest = hmac.new(key, self.message(values).encode("utf-8"), hashlib.sha256).digest()
        return digest.hex() if self._encoding == "hex" else base64.b64encode(digest).decode()

    def sign_jwt(
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
        return jwt.encode(claims, self._key(key_name), algorithm=self._algorithms[0])

    def _key(self, key_name: str | None) -> bytes:
        name = key_name or next(iter(self._keys))
        if name not in self._keys:
            known = ", ".join(self._keys)
            raise SecretsError(f"no key named {name!r} in verification.keys (keys: {known})")
        return self._keys[name]


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


def _jws_for(algorithms: list[str], keys: Mapping[str, bytes]) -> jwt.PyJWS:
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


def _algorithm_of(token: str) -> str:
    """The token's declared algorithm, for a reason's detail (short, or "?")."""
    try:
        algorithm = jwt.get_unverified_header(token).get("alg")
    except jwt.PyJWTError:
        return "?"
    return algorithm if isinstance(algorithm, str) and len(algorithm) <= 16 else "?"


def _with_proof(plain: Verified, proof: Proof) -> Verified:
    return Verified(proof, plain.values, plain.attributes, plain.attributes_given)


def _decode_signature(text: str, encoding: str) -> bytes | None:
    """Signature text -> 32 bytes, or None when its shape is wrong (checked before decoding).

    Base64 must be canonical (standard or URL-safe alphabet, padding optional): the unused low
    bits of the last character must be zero, so one signature has one spelling.
    """
    if encoding == "hex":
        return bytes.fromhex(text) if _HEX.fullmatch(text) else None
    if not _B64.fullmatch(text):
        return None
    urlsafe = "-" in text or "_" in text
    body = text.rstrip("=")
    try:
        raw = base64.b64decode(body.replace("-", "+").replace("_", "/") + "=", validate=True)
    except (binascii.Error, ValueError):
        return None
    again = (base64.urlsafe_b64encode if urlsafe else base64.b64encode)(raw).decode().rstrip("=")
    return raw if len(raw) == 32 and again == body else None
