"""The straight-line resolver a team would write by hand for one widget: the benchmark baseline.

Plain dicts for profiles by id, by user id and by case-folded email; the same library calls as
idrules on every event and no caches (``json.loads`` per line, email-validator's
``validate_email(..., check_deliverability=False)`` for every email, ``hmac.new(...)
.hexdigest()`` + ``hmac.compare_digest`` for every signature, ``jwt.decode`` with the pack's
algorithm list for every token); a decision dict without rule citations, ``json.dumps`` per
decision. Each pack's knobs are written here as constants, as a team would hard-code its one
widget's rules, not read from the YAML.

It implements the same outcomes (identified / anonymous / rejected / recorded / logged_out /
duplicate) and the same profile for every event of the generated logs (checked by
tests/test_benchmarks.py and by the harness on every run). Known differences, none of which the
generator produces: NaN/Infinity constants, unpaired surrogates and invalid UTF-8 are not
refused; an expired anonymous profile is not marked ``expired`` (it is simply never used
again, which gives the same outcomes while events come in time order); the planner's
``by_user_key`` fallback for rulesets whose ``precedence`` omits ``user_id`` (no shipped pack)
is left out; attributes are only filtered as the shipped packs need (empty schema).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

import jwt
from email_validator import EmailNotValidError, validate_email

_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})")
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_SPACES = re.compile(r" {2,}")
_REGISTERED = frozenset(("iss", "sub", "aud", "exp", "nbf", "iat", "jti"))
_TYPES = frozenset(("identify", "track", "logout"))
_SEVERITY = {None: 0, "drop": 1, "anonymous": 2, "reject": 3}
_DAY = 86_400.0


def _field(
    max_length: int | None,
    *,
    too_long: str = "invalid",
    whitespace: str = "invalid",
    empty: str = "absent",
    blocked: tuple[str, ...] = (),
    required: bool = False,
    on_invalid: str = "drop",
    validate: bool = False,
) -> dict[str, Any]:
    return {
        "max_length": max_length,
        "too_long": too_long,
        "whitespace": whitespace,
        "empty": empty,
        "blocked": frozenset(b.casefold() for b in blocked),
        "required": required,
        "on_invalid": on_invalid,
        "validate": validate,
    }


_NAME = _field(255, too_long="truncate", whitespace="strip")
_AVATAR = _field(2048, whitespace="strip")
_EMAIL = _field(254, validate=True, on_invalid="drop")

#: the hard-coded rules of each widget (what its integration guide says)
PACKS: dict[str, dict[str, Any]] = {
    "helpshift": {
        "input": {"user_id": "userId", "email": "userEmail", "name": "userName"},
        "attributes": (None, "drop"),
        "mode": "disabled",
        "method": "hmac",
        "on_failure": "reject",
        "protect": True,
        "precedence": ("user_id", "email"),
        "other_user_id": "new_profile",
        "update": ("email", "name"),
        "on_identify": "keep",
        "after_logout": "restore",
        "ttl_days": 7,
        "requires_email": False,
        "fields": {
            "user_id": _field(750, on_invalid="anonymous"),
            "email": _field(254, validate=True, on_invalid="anonymous"),
            "name": _field(255, too_long="truncate", whitespace="keep"),
            "avatar": _AVATAR,
        },
    },
    "strict": {
        "input": {
            "user_id": "user_id",
            "email": "email",
            "name": "name",
            "avatar": "avatar",
            "signature": "signature",
        },
        "attributes": ("attributes", "drop"),
        "mode": "required",
        "method": "hmac",
        "on_failure": "reject",
        "protect": True,
        "precedence": ("user_id", "email"),
        "other_user_id": "reject",
        "update": ("email", "name", "avatar", "attributes"),
        "on_identify": "merge",
        "after_logout": "new",
        "ttl_days": 7,
        "requires_email": False,
        "fields": {
            "user_id": _field(
                255,
                required=True,
                empty="given",
                blocked=(
                    *("", "undefined", "null", "none", "nan", "anonymous", "guest", "0", "-1"),
                    *("[object Object]", "true", "false", "id", "email", "user_id"),
                ),
                on_invalid="reject",
            ),
            "email": _field(254, validate=True, on_invalid="reject"),
            "name": _NAME,
            "avatar": _AVATAR,
        },
    },
    "quackback": {
        "input": {"user_id": "id", "email": "email", "name": "name", "token": "ssoToken"},
        "attributes": ("*", "drop"),
        "mode": "optional",
        "method": "jwt",
        "claims": {"user_id": "sub", "email": "email", "name": "name", "avatar": "avatarUrl"},
        "required_claims": ["sub", "email"],
        "on_failure": "reject",
        "protect": False,
        "precedence": ("user_id", "email"),
        "other_user_id": "new_profile",
        "update": ("email", "name", "avatar", "attributes"),
        "on_identify": "merge",
        "after_logout": "new",
        "ttl_days": None,
        "requires_email": True,
        "fields": {
            "user_id": _field(255, required=True, on_invalid="reject"),
            "email": _field(254, required=True, validate=True, on_invalid="reject"),
            "name": _NAME,
            "avatar": _AVATAR,
        },
    },
    "replyful": {
        "input": {"token": "token"},
        "attributes": (None, "keep"),
        "mode": "required",
        "method": "jwt",
        "claims": {"user_id": "userId", "email": "email", "name": "name"},
        "required_claims": ["userId"],
        "on_failure": "anonymous",
        "protect": True,
        "precedence": ("user_id", "email"),
        "other_user_id": "new_profile",
        "update": ("email", "name", "attributes"),
        "on_identify": "keep",
        "after_logout": "restore",
        "ttl_days": 7,
        "requires_email": False,
        "fields": {
            "user_id": _field(255, required=True, on_invalid="anonymous"),
            "email": _EMAIL,
            "name": _NAME,
            "avatar": _AVATAR,
        },
    },
    "userjot": {
        "input": {"user_id": "id", "email": "email", "avatar": "avatar", "signature": "signature"},
        "name_template": ("firstName", "lastName"),
        "attributes": (None, "drop"),
        "mode": "optional",
        "method": "hmac",
        "on_failure": "reject",
        "protect": True,
        "precedence": ("user_id", "email"),
        "other_user_id": "new_profile",
        "update": ("email", "name", "avatar"),
        "on_identify": "merge",
        "after_logout": "new",
        "ttl_days": None,
        "requires_email": ("feedback",),
        "fields": {
            "user_id": _field(255, required=True, on_invalid="reject"),
            "email": _EMAIL,
            "name": _NAME,
            "avatar": _AVATAR,
        },
    },
    "lumio": {
        "input": {
            "user_id": "userId",
            "email": "email",
            "name": "name",
            "signature": "signature",
        },
        "attributes": ("properties", "keep"),
        "mode": "required",
        "method": "hmac",
        "on_failure": "reject",
        "protect": True,
        "precedence": ("user_id",),
        "other_user_id": "new_profile",
        "update": ("email", "name", "attributes"),
        "on_identify": "keep",
        "after_logout": "restore",
        "ttl_days": 7,
        "requires_email": False,
        "fields": {
            "user_id": _field(255, required=True, on_invalid="reject"),
            "email": _EMAIL,
            "name": _NAME,
            "avatar": _AVATAR,
        },
    },
}


class _Refused(Exception):
    """The call is refused: nothing changes."""


class Baseline:
    """One widget's resolver over plain dicts. ``decide_line`` -> a decision dict."""

    def __init__(self, pack: str, secret: str | bytes) -> None:
        self.pack = pack
        self.c = dict(PACKS[pack])
        self.key = secret.encode() if isinstance(secret, str) else secret
        c = self.c
        c["mapped"] = frozenset(c["input"].values()) | (
            {c["name_template"][0], c["name_template"][1]} if "name_template" in c else set()
        )
        c["skip_claims"] = _REGISTERED | frozenset(c.get("claims", {}).values())
        self.ttl = None if c["ttl_days"] is None else c["ttl_days"] * _DAY
        # state
        self.profiles: dict[str, dict[str, Any]] = {}
        self.by_user: dict[str, str] = {}
        self.by_email: dict[str, list[str]] = {}
        self.sessions: dict[str, list[str | None]] = {}  # id -> [current, anon]
        self.refs: dict[str, set[str]] = {}  # profile id -> sessions holding it
        self.activity: dict[str, list[str]] = {}
        self.decided: set[str] = set()
        self.seq = 0

    # ---- the replay loop ------------------------------------------------------------------
    def replay(self, lines: Iterable[bytes], write: Callable[[str], object]) -> dict[str, int]:
        outcomes: dict[str, int] = {}
        for number, raw in enumerate(lines, start=1):
            if not raw.strip():
                continue
            decision = self.decide_line(raw, number)
            write(json.dumps(decision, ensure_ascii=False, separators=(",", ":")) + "\n")
            outcome = decision["outcome"]
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
        return outcomes

    def decide_line(self, raw: bytes | str, line: int | None = None) -> dict[str, Any]:
        try:
            obj = json.loads(raw)
        except ValueError:
            return self._invalid(None, line)
        if not isinstance(obj, dict):
            return self._invalid(None, line)
        eid = obj.get("id")
        if not isinstance(eid, str) or not eid:
            return self._invalid(None, line)
        if eid in self.decided:
            return self._decision(eid, line, "duplicate")
        ts_text = obj.get("ts")
        kind = obj.get("type")
        session = obj.get("session")
        payload = obj.get("payload")
        if (
            not isinstance(ts_text, str)
            or not _RFC3339.fullmatch(ts_text)
            or kind not in _TYPES
            or (session is not None and (not isinstance(session, str) or not session))
        ):
            return self._invalid(eid, line)
        try:
            ts = datetime.fromisoformat(ts_text.upper().replace(" ", "T")).timestamp()
        except ValueError:
            return self._invalid(eid, line)
        if kind == "identify":
            if payload is not None and not isinstance(payload, dict):
                return self._invalid(eid, line)
        elif session is None or (
            kind == "track"
            and (
                not isinstance(payload, dict)
                or not isinstance(payload.get("name"), str)
                or not (
                    payload.get("properties") is None or isinstance(payload["properties"], dict)
                )
            )
        ):
            return self._invalid(eid, line)
        self.decided.add(eid)
        if kind == "track":
            return self.track(eid, line, ts, session, payload)
        if kind == "logout" or payload is None:
            if session is not None and session in self.sessions:
                self._logged_out(session, ts)
            return self._decision(eid, line, "logged_out")
        return self.identify(eid, line, ts, session, payload)

    def _invalid(self, eid: str | None, line: int | None) -> dict[str, Any]:
        if eid is not None:
            self.decided.add(eid)
        return self._decision(eid, line, "rejected")

    # ---- identify -------------------------------------------------------------------------
    def identify(
        self, eid: str, line: int | None, ts: float, sid: str | None, payload: dict[str, Any]
    ) -> dict[str, Any]:
        c = self.c
        raw: dict[str, Any] = {}
        for name, key in c["input"].items():
            value = payload.get(key)
            if value is not None:
                raw[name] = value
        if "name_template" in c:  # "{firstName} {lastName}"
            first, last = (payload.get(k) for k in c["name_template"])
            if first is not None or last is not None:
                text = f"{_text(first)} {_text(last)}"
                raw["name"] = _SPACES.sub(" ", text).strip(" ")
        given: Any = None  # the custom attributes the call brings
        source, unknown = c["attributes"]
        if source == "*":
            given = {k: v for k, v in payload.items() if k not in c["mapped"]}
        elif source is not None:
            given = payload.get(source)
        verified = False
        fail = False
        mode = c["mode"]
        if mode != "disabled":
            if c["method"] == "jwt":
                token = raw.get("token")
                if token is not None:
                    claims = self._decode(token, ts)
                    raw = {}
                    if claims is None:
                        fail = True
                    else:
                        verified = True
                        for name, claim in c["claims"].items():
                            if claim in claims:
                                raw[name] = claims[claim]
                        given = {k: v for k, v in claims.items() if k not in c["skip_claims"]}
                elif mode == "required" and ("user_id" in raw or "email" in raw):
                    fail = True
            elif "user_id" in raw or "email" in raw:
                signature = raw.get("signature")
                if signature is not None:
                    # the message is "{user_id}": a signature without one proves nothing
                    if "user_id" in raw and self._signature_ok(raw["user_id"], signature):
                        verified = True
                    else:
                        fail = True
                elif mode == "required":
                    fail = True
        if fail and c["on_failure"] == "reject":
            return self._decision(eid, line, "rejected")
        # an empty attribute schema: every attribute is unknown, kept or dropped
        attributes = dict(given) if unknown == "keep" and isinstance(given, dict) else {}
        # fields
        given_id = raw.get("user_id") is not None or raw.get("email") is not None
        values: dict[str, Any] = {}
        keys: dict[str, str | None] = {}
        failed: str | None = None
        for name in ("user_id", "email", "name", "avatar"):
            rule = c["fields"][name]
            value, policy = _check(raw.get(name), rule, name == "email")
            if value is None and policy is None and given_id and rule["required"]:
                policy = rule["on_invalid"]
            if _SEVERITY[policy] > _SEVERITY[failed]:
                failed = policy
            if value is not None:
                values[name] = value
                if name == "email":
                    # the match key lower-cases (the workloads' addresses are ASCII)
                    keys["email"] = value.lower()
                elif name == "user_id":
                    keys["user_id"] = value
        if verified and c["method"] == "hmac":
            keys.pop("email", None)  # the signature covers the user id only: no key
        identity = {
            "user_id": values.get("user_id"),
            "email": values.get("email"),
            "name": values.get("name"),
            "avatar": values.get("avatar"),
            "verified": verified,
        }
        if failed == "reject":
            return self._decision(eid, line, "rejected", identity=identity)
        if fail or failed == "anonymous" or not keys:
            return self._anonymous(eid, line, ts, sid, identity)
        try:
            return self._identified(eid, line, ts, sid, identity, keys, attributes)
        except _Refused:
            return self._decision(eid, line, "rejected", identity=identity)

    def _signature_ok(self, user_id: Any, signature: Any) -> bool:
        if not isinstance(signature, str) or not _HEX64.fullmatch(signature):
            return False
        if isinstance(user_id, str):
            message = user_id
        else:
            message = json.dumps(user_id, ensure_ascii=False, separators=(",", ":"))
        expected = hmac.new(self.key, message.encode("utf-8", "surrogatepass"), hashlib.sha256)
        return hmac.compare_digest(expected.hexdigest(), signature.lower())

    def _decode(self, token: Any, ts: float) -> dict[str, Any] | None:
        if not isinstance(token, str) or len(token.encode("utf-8", "surrogatepass")) > 8192:
            return None
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self.key,
                algorithms=["HS256"],
                options={
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                    "verify_aud": False,
                    "verify_iss": False,
                    "require": self.c["required_claims"],
                },
            )
        except jwt.PyJWTError:
            return None
        leeway = 30
        for claim in ("exp", "nbf", "iat"):
            value = claims.get(claim)
            if claim in claims and (isinstance(value, bool) or not isinstance(value, int | float)):
                return None
        if "exp" in claims and ts > claims["exp"] + leeway:
            return None
        if "nbf" in claims and ts < claims["nbf"] - leeway:
            return None
        if "iat" in claims and ts < claims["iat"] - leeway:
            return None
        return claims

    def _identified(
        self,
        eid: str,
        line: int | None,
        ts: float,
        sid: str | None,
        identity: dict[str, Any],
        keys: dict[str, str | None],
        attributes: dict[str, Any],
    ) -> dict[str, Any]:
        c = self.c
        session = self.sessions.get(sid, [None, None]) if sid is not None else None
        own = session[1] if session is not None else None
        found: dict[str, Any] | None = None
        via = None
        for kind in c["precedence"]:
            key = keys.get(kind)
            if key is None:
                continue
            if kind == "user_id":
                pid = self.by_user.get(key)
                if pid is not None:
                    found, via = self.profiles[pid], "user_id"
                    break
                continue
            for pid in self.by_email.get(key, ()):
                p = self.profiles[pid]
                if pid != own and not self._expired(p, ts):
                    found, via = p, "email"
                    break
            if found is not None:
                break
        user_key = keys.get("user_id")
        attach = False
        if found is not None and via == "email" and user_key is not None:
            if found["user_key"] is None:
                attach = True
            else:
                if c["other_user_id"] == "reject":
                    raise _Refused
                found = None
        if found is not None and found["verified"] and not identity["verified"] and c["protect"]:
            raise _Refused
        created = False
        promoted = False
        if found is not None:
            target = found
            if attach:
                target["user_id"] = identity["user_id"]
                self._index_user(target, user_key)
            if target["anonymous"]:
                target["anonymous"] = False
                for other in list(self.refs.get(target["id"], ())):
                    if other != sid:  # detached; a session acting as someone else stays so
                        current = self.sessions[other][0]
                        self._set_session(other, None if current == target["id"] else current, None)
            update = c["update"]
            for name in ("email", "name", "avatar"):
                value = identity[name]
                if name not in update or value is None or value == target[name]:
                    continue
                if name == "email":
                    if keys.get("email") is not None and keys["email"] == target["email_key"]:
                        continue  # the same address, retyped
                    self._index_email(target, keys.get("email"))
                target[name] = value
            if "attributes" in update and attributes:
                target["attributes"] = {**target["attributes"], **attributes}
            if identity["verified"]:
                target["verified"] = True
        else:
            anon = None
            if session is not None and c["on_identify"] == "merge":
                current = self.profiles.get(session[0]) if session[0] else None
                if current is None or current["state"] != "active" or current["anonymous"]:
                    anon = self._live_anon(session[1], ts)
            if anon is not None:
                target, promoted = anon, True
                target.update(
                    anonymous=False,
                    user_id=identity["user_id"],
                    name=identity["name"],
                    avatar=identity["avatar"],
                    verified=identity["verified"],
                    attributes={**anon["attributes"], **attributes},
                    last_seen=ts,
                )
                self._index_user(target, user_key)
                target["email"] = identity["email"]
                self._index_email(target, keys.get("email"))
            else:
                target = self._new_profile(eid, ts, False)
                created = True
                target.update(
                    user_id=identity["user_id"],
                    email=identity["email"],
                    name=identity["name"],
                    avatar=identity["avatar"],
                    verified=identity["verified"],
                    attributes=dict(attributes),
                )
                self._index_user(target, user_key)
                self._index_email(target, keys.get("email"))
        merged: list[str] = []
        if sid is not None and session is not None:
            current = self.profiles.get(session[0]) if session[0] else None
            anon_id = None if promoted else session[1]
            if current is not None and current["state"] == "active" and not current["anonymous"]:
                pass  # a switch between identified profiles (never merged), or the same one
            elif not promoted:
                anon = self._live_anon(anon_id, ts)
                if anon is None:
                    anon_id = None
                elif c["on_identify"] == "merge":
                    anon["state"] = "merged"
                    self._unindex(anon)
                    moved = self.activity.pop(anon["id"], None)
                    if moved:
                        self.activity.setdefault(target["id"], []).extend(moved)
                    merged.append(anon["id"])
                    anon_id = None
                elif c["on_identify"] == "clear":
                    anon["state"] = "cleared"
                    self._unindex(anon)
                    anon_id = None
            self._set_session(sid, target["id"], anon_id)
        return self._decision(
            eid,
            line,
            "identified",
            profile=target["id"],
            created=created,
            merged=merged,
            identity=identity,
            attributes=attributes,
        )

    # ---- anonymous, logout, track ---------------------------------------------------------
    def _anonymous(
        self, eid: str, line: int | None, ts: float, sid: str | None, identity: dict[str, Any]
    ) -> dict[str, Any]:
        if sid is None:
            return self._decision(eid, line, "anonymous", identity=identity)
        self._logged_out(sid, ts)
        anon, created = self._anon_for(eid, sid, ts)
        anon["last_seen"] = max(anon["last_seen"], ts)
        return self._decision(
            eid, line, "anonymous", profile=anon["id"], created=created, identity=identity
        )

    def _logged_out(self, sid: str, ts: float) -> None:
        session = self.sessions.get(sid, [None, None])
        current = self.profiles.get(session[0]) if session[0] else None
        if current is not None and current["anonymous"]:
            return
        if self.c["after_logout"] == "new":
            self._set_session(sid, None, None)
        else:
            anon = self._live_anon(session[1], ts)
            anon_id = anon["id"] if anon is not None else None
            self._set_session(sid, anon_id, anon_id)

    def track(
        self, eid: str, line: int | None, ts: float, sid: str, payload: dict[str, Any]
    ) -> dict[str, Any]:
        c = self.c
        session = self.sessions.get(sid, [None, None])
        current = self.profiles.get(session[0]) if session[0] else None
        if current is not None and current["state"] == "active" and not current["anonymous"]:
            self.activity.setdefault(current["id"], []).append(eid)
            return self._decision(
                eid, line, "recorded", profile=current["id"], attributes=current["attributes"]
            )
        email = payload.get("email")
        value = None
        if email is not None:
            if c["mode"] == "required":
                return self._decision(eid, line, "rejected")
            value, policy = _check(email, c["fields"]["email"], True)
            if policy == "reject":
                return self._decision(eid, line, "rejected")
        anon = self._live_anon(session[1], ts)
        has_email = value is not None or (anon is not None and anon["email"] is not None)
        need = c["requires_email"]
        needs = need if isinstance(need, bool) else payload["name"] in need
        if needs and not has_email:
            return self._decision(eid, line, "rejected")
        anon, created = self._anon_for(eid, sid, ts)
        anon["last_seen"] = max(anon["last_seen"], ts)
        if value is not None and value.lower() != anon["email_key"]:
            anon["email"] = value
            self._index_email(anon, value.lower())
        self.activity.setdefault(anon["id"], []).append(eid)
        return self._decision(
            eid,
            line,
            "recorded",
            profile=anon["id"],
            created=created,
            attributes=anon["attributes"],
        )

    # ---- profiles and sessions ------------------------------------------------------------
    def _profile_id(self, eid: str) -> str:
        """The new profile's id: idrules' (a hash of the creating event's id)."""
        return "p_" + hashlib.sha256(eid.encode("utf-8", "surrogatepass")).hexdigest()[:16]

    def _new_profile(self, eid: str, ts: float, anonymous: bool) -> dict[str, Any]:
        self.seq += 1
        pid = self._profile_id(eid)
        p: dict[str, Any] = {
            "id": pid,
            "seq": self.seq,
            "user_id": None,
            "user_key": None,
            "email": None,
            "email_key": None,
            "name": None,
            "avatar": None,
            "verified": False,
            "anonymous": anonymous,
            "state": "active",
            "attributes": {},
            "last_seen": ts,
        }
        self.profiles[pid] = p
        return p

    def _anon_for(self, eid: str, sid: str, ts: float) -> tuple[dict[str, Any], bool]:
        session = self.sessions.get(sid, [None, None])
        anon = self._live_anon(session[1], ts)
        created = anon is None
        if anon is None:
            anon = self._new_profile(eid, ts, True)
        if session[0] != anon["id"] or session[1] != anon["id"]:
            self._set_session(sid, anon["id"], anon["id"])
        return anon, created

    def _live_anon(self, pid: str | None, ts: float) -> dict[str, Any] | None:
        if pid is None:
            return None
        anon = self.profiles.get(pid)
        if anon is None or anon["state"] != "active" or not anon["anonymous"]:
            return None
        if self._expired(anon, ts):
            return None
        return anon

    def _expired(self, p: dict[str, Any], ts: float) -> bool:
        return p["anonymous"] and self.ttl is not None and ts - p["last_seen"] > self.ttl

    def _index_user(self, p: dict[str, Any], key: str | None) -> None:
        if p["user_key"] is not None and self.by_user.get(p["user_key"]) == p["id"]:
            del self.by_user[p["user_key"]]
        p["user_key"] = key
        if key is not None:
            self.by_user[key] = p["id"]

    def _index_email(self, p: dict[str, Any], key: str | None) -> None:
        old = p["email_key"]
        if old == key:
            return
        if old is not None:
            ids = self.by_email.get(old)
            if ids and p["id"] in ids:
                ids.remove(p["id"])
                if not ids:
                    del self.by_email[old]
        p["email_key"] = key
        if key is not None:
            ids = self.by_email.setdefault(key, [])
            ids.append(p["id"])
            if len(ids) > 1:
                ids.sort(key=lambda pid: self.profiles[pid]["seq"])

    def _unindex(self, p: dict[str, Any]) -> None:
        """A profile that is no longer active leaves the match indexes."""
        key = p["email_key"]
        if key is not None:
            ids = self.by_email.get(key)
            if ids and p["id"] in ids:
                ids.remove(p["id"])
                if not ids:
                    del self.by_email[key]

    def _set_session(self, sid: str, current: str | None, anon: str | None) -> None:
        old = self.sessions.get(sid)
        if old is not None:
            for pid in old:
                if pid is not None and pid in self.refs:
                    self.refs[pid].discard(sid)
        self.sessions[sid] = [current, anon]
        for pid in (current, anon):
            if pid is not None:
                self.refs.setdefault(pid, set()).add(sid)

    # ---- pre-fill -------------------------------------------------------------------------
    def prefill(self, eid: str, ts: float, session: str, values: dict[str, Any]) -> None:
        """Store a profile as the pack's identify ``eid`` at ``ts`` made it (no checks)."""
        p = self._new_profile(eid, ts, False)
        p.update(
            user_id=values["user_id"],
            email=values["email"],
            name=values["name"],
            avatar=values["avatar"],
            verified=values["verified"],
            attributes=dict(values["attributes"]),
        )
        self._index_user(p, values["user_id"])
        signed_id_only = values["verified"] and self.c["method"] == "hmac"
        self._index_email(p, None if signed_id_only else values["email"].lower())
        self._set_session(session, p["id"], None)
        self.decided.add(eid)


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _check(raw: Any, rule: dict[str, Any], is_email: bool) -> tuple[str | None, str | None]:
    """One field's checks: (accepted value, None) or (None, the failed policy or None)."""
    if raw is None:
        return None, None
    if not isinstance(raw, str):
        return None, rule["on_invalid"]
    value = raw
    if value != value.strip():
        if rule["whitespace"] == "invalid":
            return None, rule["on_invalid"]
        if rule["whitespace"] == "strip":
            value = value.strip()
    if value == "" and rule["empty"] == "absent":
        return None, None
    if rule["blocked"] and value.casefold() in rule["blocked"]:
        return None, rule["on_invalid"]
    limit = rule["max_length"]
    if limit is not None and len(value) > limit:
        if rule["too_long"] == "invalid":
            return None, rule["on_invalid"]
        value = value[:limit]
    if is_email and rule["validate"]:
        try:
            value = validate_email(value, check_deliverability=False).normalized
        except EmailNotValidError:
            return None, rule["on_invalid"]
    return value, None


def decision_dict(
    eid: str | None,
    line: int | None,
    outcome: str,
    *,
    profile: str | None = None,
    created: bool = False,
    merged: list[str] | None = None,
    identity: dict[str, Any] | None = None,
    attributes: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "event_id": eid,
        "line": line,
        "outcome": outcome,
        "profile": profile,
        "created": created,
        "merged": merged or [],
        "identity": identity,
        "attributes": attributes or {},
    }


#: every decision goes through ``self._decision`` (a subclass may shape its own)
Baseline._decision = staticmethod(decision_dict)  # type: ignore[attr-defined]
