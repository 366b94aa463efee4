"""Stage 3: verify the caller's proof of identity (the ruleset's ``verification``).

``hmac``: the identity comes from the payload, and the signature must equal the HMAC-SHA256
of the message template filled with the values *as the client sent them*. ``jwt``: the
identity comes from the verified token's claims alone (PyJWT; algorithms from the rules'
allow-list, never from the token; the claims are mapped to fields by the dialect), and time
claims are checked against the event's ``ts``, so an old log replays as it happened. Every
listed key is tried (rotation); a decision names the key that verified, never its value.
Secrets, signatures and tokens never reach a reason: at most a fingerprint.

This module only verifies; :mod:`idrules.signing` makes what the customer's server sends.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import string
from collections.abc import Mapping
from typing import Any

import attrs
import jwt

from .caches import BoundedCache, memoized
from .decision import Citation, Reason, dumps, fingerprint
from .events import not_json_text, strict_loads
from .jws import algorithm_of, jws_for
from .reasons import Code
from .rules.model import IDENTITY_FIELDS, Ruleset

MAX_TOKEN_BYTES = 8 * 1024
#: tokens and signatures remembered once verified (a widget re-sends the same one)
_VERIFIED = 16_384
_FINGERPRINTS = 4_096
_EVERY_FIELD = frozenset(IDENTITY_FIELDS)
_HEX = re.compile(r"[0-9a-fA-F]{64}")
_B64 = re.compile(r"[A-Za-z0-9+/]{43}=?|[A-Za-z0-9_-]{43}=?")
_US = 1_000_000
#: NumericDate bounds a time claim may take: the years 1 to 9999, in seconds
_EARLIEST, _LATEST = -62_135_596_800, 253_402_300_799


@attrs.frozen(slots=True)
class Proof:
    """What the proof stage concluded.

    ``covers``: the identity fields a verified proof vouches for (an HMAC's message template
    names them; a token vouches for every field). ``claims``: when a token was given, the
    identity comes from its verified claims alone (empty when it failed); None when the
    payload's values stand (an HMAC, no proof, or no token given)."""

    verified: bool = False
    reasons: tuple[Reason, ...] = ()
    refuse: bool = False  # reject the call
    anonymous: bool = False  # treat the caller as anonymous
    covers: frozenset[str] = frozenset()
    claims: Mapping[str, Any] | None = None

    @property
    def failed(self) -> bool:
        """Whether a proof was needed or given and did not hold (refused or anonymous)."""
        return self.refuse or self.anonymous


NO_PROOF = Proof()
_NO_CLAIMS: Mapping[str, Any] = {}


class HmacMessage:
    """The signed message: the ``hmac.message`` template filled with the values as sent (the
    empty string for a missing one, a non-string value as its JSON text). Shared by the
    verifier and :mod:`idrules.signing`, so both build the same bytes."""

    def __init__(self, template: str) -> None:
        self._parts = list(string.Formatter().parse(template))
        #: the fields the signature is computed over (what it covers)
        self.fields = tuple(name for _, name, _, _ in self._parts if name)
        only = self._parts[0] if len(self._parts) == 1 else None
        self._only = only[1] if only is not None and not only[0] and not only[2] else None

    def covers_any(self, values: Mapping[str, Any]) -> bool:
        """Whether the call carries at least one field the signature is computed over: a
        signature over none would be an HMAC of the template's bare text, proving nothing."""
        return any(values.get(field) is not None for field in self.fields)

    def __call__(self, values: Mapping[str, Any]) -> str:
        if self._only is not None:  # the template is one field, e.g. "{user_id}"
            value = values.get(self._only)
            return "" if value is None else value if isinstance(value, str) else dumps(value)
        out: list[str] = []
        for literal, name, _, _ in self._parts:
            out.append(literal)
            if name:
                value = values.get(name)
                if value is not None:
                    out.append(value if isinstance(value, str) else dumps(value))
        return "".join(out)


class Prover:
    """The compiled ``verification`` section with its keys (see :func:`idrules.keys.read_keys`),
    built once per engine."""

    def __init__(self, ruleset: Ruleset, keys: Mapping[str, bytes]) -> None:
        rules = ruleset.verification
        self._mode = rules.mode
        #: whether :meth:`verify` asks if the call asserts an identity (only proof needs to)
        self.checks = rules.mode != "disabled"
        self._jwt = rules.method == "jwt"
        self._keys = dict(keys)
        self._hmac_keys = [
            (name, hmac.new(key, digestmod=hashlib.sha256)) for name, key in self._keys.items()
        ]
        self._on_failure = rules.on_failure
        self._message = HmacMessage(rules.hmac.message)
        self._hmac_covers = frozenset(self._message.fields)
        self._encoding = rules.hmac.encoding
        jwt_rules = rules.jwt
        self._algorithms = list(jwt_rules.algorithms)
        self._jws = jws_for(self._algorithms, self._keys if self._jwt else {})
        self._required = tuple(jwt_rules.required)
        self._leeway_us = jwt_rules.leeway_s * _US
        self._max_age_us = None if jwt_rules.max_age_s is None else jwt_rules.max_age_s * _US
        # tokens already verified -> (key name, claims): a widget re-sends the same token
        # until it expires; only the time claims are checked again, against each event's ts
        self._tokens: BoundedCache[str, tuple[str, dict[str, Any]]] = BoundedCache(_VERIFIED)
        # (message, signature) pairs already verified -> their proof (see _hmac)
        self._proofs: BoundedCache[tuple[str, str], Proof] = BoundedCache(_VERIFIED)
        self._fingerprint = memoized(fingerprint, _FINGERPRINTS)
        self._c: dict[str, Citation] = {
            k: ruleset.cite(f"verification.{k}")
            for k in (
                "mode",
                "method",
                "keys",
                "hmac.message",
                "hmac.encoding",
                "jwt.algorithms",
                "jwt.required",
                "jwt.leeway_s",
                "jwt.max_age_s",
            )
        }

    def verify(self, values: Mapping[str, Any], ts: int, asserted: bool) -> Proof:
        """Verify one identify call's proof at the event's time ``ts`` (µs since the epoch).

        ``values``: the canonical values as sent; ``asserted``: whether they assert a user id
        or an email. A caller asserting neither is anonymous and never refused for lacking
        proof."""
        if self._mode == "disabled":
            return NO_PROOF
        if self._jwt:
            token = values.get("token")
            if token is not None:  # the identity comes from its claims alone: none if it fails
                proof = self._token(token, ts)
                if proof.verified:
                    return proof
                return attrs.evolve(self._fingerprinted(proof, "token", token), claims=_NO_CLAIMS)
            return self._missing("token") if asserted else NO_PROOF
        if not asserted:
            return NO_PROOF
        signature = values.get("signature")
        if signature is None:
            return self._missing("signature")
        return self._hmac(values, signature)

    # hmac ------------------------------------------------------------------------------
    def _hmac(self, values: Mapping[str, Any], signature: Any) -> Proof:
        """The signature's verdict; a signature that verified once is known by its message.

        A returning user sends the same message and signature again and again: the verified
        proof is kept (the keys never change while the engine runs), so only new pairs cost
        an HMAC. Only a call its signature covers is looked up, so the cache never answers
        for a call the checks below would refuse."""
        seen: tuple[str, str] | None = None
        if isinstance(signature, str) and self._message.covers_any(values):
            seen = (self._message(values), signature)
            known = self._proofs.get(seen)
            if known is not None:
                return known
        verdict = self._check_hmac(values, signature)
        if isinstance(verdict, Proof):
            return self._fingerprinted(verdict, "signature", signature)
        proof = self._verified(
            verdict, self._hmac_covers, f"signature {self._fingerprint(signature)}"
        )
        if seen is not None:
            self._proofs.put(seen, proof)
        return proof

    def _check_hmac(self, values: Mapping[str, Any], signature: Any) -> Proof | str:
        """The name of the key that signed the call, or the failure."""
        if not isinstance(signature, str):
            return self._fail(
                Code.AUTH_INVALID, "hmac.encoding", "signature", "the signature is not a string"
            )
        given = _decode_signature(signature, self._encoding)
        if given is None:
            return self._fail(
                Code.AUTH_INVALID,
                "hmac.encoding",
                "signature",
                f"the signature is not {self._encoding} HMAC-SHA256",
            )
        if not self._message.covers_any(values):
            signed = ", ".join(self._message.fields)
            return self._fail(
                Code.AUTH_INVALID,
                "hmac.message",
                "signature",
                f"the call lacks what the signature must cover ({signed})",
            )
        message = self._message(values).encode("utf-8", "surrogatepass")
        for name, keyed in self._hmac_keys:
            mac = keyed.copy()
            mac.update(message)
            if hmac.compare_digest(mac.digest(), given):
                return name
        return self._fail(
            Code.AUTH_INVALID,
            "hmac.message",
            "signature",
            "the signature does not match the payload",
        )

    # jwt -------------------------------------------------------------------------------
    def _token(self, token: Any, ts: int) -> Proof:
        if not isinstance(token, str):
            return self._fail(Code.AUTH_INVALID, "method", "token", "the token is not a string")
        if (
            len(token) > MAX_TOKEN_BYTES
            or len(token.encode("utf-8", "surrogatepass")) > MAX_TOKEN_BYTES
        ):
            return self._fail(
                Code.AUTH_INVALID, "method", "token", "the token is larger than 8 KiB"
            )
        cached = self._tokens.get(token)
        if cached is None:
            decoded = self._decode(token)
            if isinstance(decoded, Proof):
                return decoded
            cached = self._tokens.put(token, decoded)
        key_name, claims = cached
        problem = self._time_problem(claims, ts)
        if problem is not None:
            code, knob, detail = problem
            return self._fail(code, knob, "token", detail)
        for claim in self._required:
            if claim not in claims:
                return self._fail(
                    Code.AUTH_CLAIMS, "jwt.required", claim, f"required claim {claim!r} is missing"
                )
        proof = self._verified(key_name, _EVERY_FIELD, f"token {self._fingerprint(token)}")
        return attrs.evolve(proof, claims=claims)

    def _decode(self, token: str) -> tuple[str, dict[str, Any]] | Proof:
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
                    Code.AUTH_ALGORITHM,
                    "jwt.algorithms",
                    "token",
                    f"algorithm {algorithm_of(token)!r} is not allowed",
                )
            except (jwt.PyJWTError, ValueError, RecursionError):  # the payload is not JSON
                return self._fail(Code.AUTH_INVALID, "method", "token", "the token is malformed")
            if not isinstance(claims, dict) or not_json_text(claims) is not None:
                # NaN/Infinity or a lone surrogate: never into a decision or a clock
                return self._fail(Code.AUTH_INVALID, "method", "token", "the token is malformed")
            return name, claims
        return self._fail(
            Code.AUTH_INVALID, "keys", "token", "the token's signature does not match any key"
        )

    def _time_problem(self, claims: Mapping[str, Any], ts: int) -> tuple[Code, str, str] | None:
        """The first time claim that refuses the token at the event's time ``ts``, if any.

        A time claim is a NumericDate: a finite number of seconds within the years 1 to 9999
        (what any RFC 3339 ``ts`` can be compared with). Anything else (a huge ``exp`` such as
        1e308, whose microseconds overflow to infinity) is ``auth.invalid``, never an error."""
        leeway = self._leeway_us
        stamps: dict[str, int] = {}
        for claim in ("exp", "nbf", "iat"):
            if claim in claims:
                value = claims[claim]
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    return Code.AUTH_INVALID, "method", f"claim {claim!r} is not a number"
                if not _EARLIEST <= value <= _LATEST:  # False for NaN too
                    return (
                        Code.AUTH_INVALID,
                        "method",
                        f"claim {claim!r} is not a time between the years 1 and 9999",
                    )
                stamps[claim] = int(value * _US)
        if "exp" in stamps and ts >= stamps["exp"] + leeway:  # valid only *before* exp
            return Code.AUTH_EXPIRED, "jwt.leeway_s", "the token had expired at the event's time"
        if "nbf" in stamps and ts < stamps["nbf"] - leeway:
            return Code.AUTH_NOT_YET_VALID, "jwt.leeway_s", "the token was not yet valid"
        if "iat" in stamps and ts < stamps["iat"] - leeway:
            return Code.AUTH_NOT_YET_VALID, "jwt.leeway_s", "the token was issued after the event"
        if self._max_age_us is not None:
            if "iat" not in stamps:
                return Code.AUTH_CLAIMS, "jwt.max_age_s", "max_age_s needs the 'iat' claim"
            if ts - stamps["iat"] > self._max_age_us + leeway:
                return Code.AUTH_EXPIRED, "jwt.max_age_s", "the token is older than max_age_s"
        return None

    # verdicts --------------------------------------------------------------------------
    def _verified(self, key_name: str, covers: frozenset[str], mark: str) -> Proof:
        """A verified proof naming the key and the signature's or token's fingerprint."""
        reason = Reason(Code.AUTH_VERIFIED, self._c["method"], None, f"key {key_name}; {mark}")
        return Proof(verified=True, reasons=(reason,), covers=covers)

    def _missing(self, what: str) -> Proof:
        if self._mode == "optional":
            return NO_PROOF
        return self._fail(Code.AUTH_MISSING, "mode", what, f"no {what}: proof is required")

    def _fail(self, code: Code, knob: str, field: str, detail: str) -> Proof:
        """A failed proof, as ``on_failure`` says: refused, or treated as anonymous."""
        consequence = "refused" if self._on_failure == "reject" else "treated as anonymous"
        reason = Reason(code, self._c[knob], field, f"{detail}; {consequence} (on_failure)")
        return Proof(
            reasons=(reason,),
            refuse=self._on_failure == "reject",
            anonymous=self._on_failure == "anonymous",
        )

    def _fingerprinted(self, proof: Proof, what: str, value: Any) -> Proof:
        """The proof's reasons name the token or signature by fingerprint (never by value), so
        an auditor can see the same token come back without ever reading it."""
        if not isinstance(value, str) or not proof.reasons:
            return proof
        mark = f"{what} {self._fingerprint(value)}"
        reasons = tuple(
            Reason(r.code, r.citation, r.field, f"{r.detail}; {mark}" if r.detail else mark)
            for r in proof.reasons
        )
        return attrs.evolve(proof, reasons=reasons)


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
