"""Helpers shared by the test modules that drive the library in process: the widget secrets
and clock, the proofs a customer's server computes (HMAC signatures, JWTs), an engine wrapper
with automatic event ids (:class:`Run`), reading decisions, and the identity invariants every
store must keep. Helpers for tests of the real command line are in ``cli_support.py``."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import jwt

from idrules import Decision, Engine, Reason, Ruleset, export_rows, load_ruleset

#: the widget secret of the shipped packs' tests (key name ``current``)
SECRET = "s3cr3t-current-key-0123456789abcdef"
#: the key before a rotation (key name ``previous``)
PREVIOUS = "pr3v10us-key-material-0123456789abcdef"
SECRETS = {"current": SECRET}
#: the moment every test clock starts from
T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
T0_S = int(T0.timestamp())
#: the keys of an export line, in order (SPEC §3)
EXPORT_KEYS = [
    "profile",
    "user_id",
    "email",
    "name",
    "avatar",
    "verified",
    "anonymous",
    "state",
    "attributes",
    "sessions",
    "activity",
    "merged_into",
]


# time and proofs ----------------------------------------------------------------------------


def iso(offset: float = 0, base: datetime = T0) -> str:
    """RFC 3339 text for ``base`` + ``offset`` seconds (microsecond precision)."""
    return (base + timedelta(seconds=offset)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def hmac_hex(message: str, secret: str = SECRET) -> str:
    """The hex HMAC-SHA256 of ``message`` (strict's, userjot's and lumio's signature)."""
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def hmac_b64(message: str, secret: str = SECRET) -> str:
    """The base64 HMAC-SHA256 of ``message`` (Helpshift's userAuthToken)."""
    digest = hmac.new(secret.encode(), message.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def b64url(data: bytes) -> str:
    """Unpadded base64url, as a JWT's parts are written."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def token(claims: dict[str, Any], secret: str = SECRET, algorithm: str = "HS256") -> str:
    """A JWT of exactly ``claims`` (a ``None`` value is written as JSON null)."""
    return jwt.encode(claims, secret, algorithm=algorithm)


def raw_token(
    payload: bytes, header: bytes = b'{"alg":"HS256","typ":"JWT"}', secret: str = SECRET
) -> str:
    """A token signed by hand over exactly these bytes (for payloads PyJWT will not build)."""
    signing_input = b64url(header) + "." + b64url(payload)
    mac = hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64url(mac)


# rules and engines --------------------------------------------------------------------------


def override(tmp_path: Path, text: str, name: str = "override.yaml") -> Ruleset:
    """The ruleset of a rules file holding ``text``, written to ``tmp_path / name``."""
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return load_ruleset(path)


class Run:
    """An engine over a fresh store with automatic event ids; times are offsets from T0."""

    def __init__(self, ruleset: Any, secrets: dict[str, str] | None = None) -> None:
        self.engine = Engine(ruleset, secrets=SECRETS if secrets is None else secrets, environ={})
        self.count = 0
        self.decisions: list[Decision] = []

    def _next(self) -> str:
        self.count += 1
        return f"e{self.count}"

    def _keep(self, decision: Decision) -> Decision:
        self.decisions.append(decision)
        return decision

    def identify(
        self, payload: dict[str, Any] | None, session: str | None = "s1", at: float = 0
    ) -> Decision:
        return self._keep(
            self.engine.identify(payload, session=session, id=self._next(), ts=iso(at))
        )

    def track(
        self,
        name: str = "vote",
        session: str = "s1",
        at: float = 0,
        email: str | None = None,
        properties: dict[str, Any] | None = None,
    ) -> Decision:
        return self._keep(
            self.engine.track(
                name,
                session=session,
                email=email,
                properties=properties,
                id=self._next(),
                ts=iso(at),
            )
        )

    def logout(self, session: str = "s1", at: float = 0) -> Decision:
        return self._keep(self.engine.logout(session=session, id=self._next(), ts=iso(at)))

    def export(self) -> list[dict[str, Any]]:
        """The store's export rows, in creation order."""
        return list(export_rows(self.engine.store))

    def rows(self) -> dict[str, dict[str, Any]]:
        """The export rows by profile id."""
        return {row["profile"]: row for row in self.export()}

    def by_user(self, user_id: str) -> dict[str, Any] | None:
        """The active profile holding ``user_id``, if any."""
        found = [r for r in self.export() if r["user_id"] == user_id and r["state"] == "active"]
        return found[0] if found else None


# reading decisions --------------------------------------------------------------------------


def reason(decision: Decision, code: str) -> Reason:
    """The first reason with ``code`` (fails the test when there is none)."""
    for r in decision.reasons:
        if r.code == code:
            return r
    raise AssertionError(f"no {code} in {decision.codes}")


def cites(decision: Decision, code: str, knob: str, pack: str | None = None) -> Reason:
    """The reason ``code`` of ``decision``, checked to cite ``knob`` (in ``pack``'s file)."""
    r = reason(decision, code)
    assert r.rule is not None and r.rule.endswith(" " + knob), r.rule
    if pack is not None:
        assert r.rule.startswith(f"{pack}.yaml:"), r.rule
    return r


def ident(decision: Decision) -> tuple[Any, ...]:
    """The decision's identity as (user id, email, name, avatar, verified)."""
    i = decision.identity
    assert i is not None
    return (i.user_id, i.email, i.name, i.avatar, i.verified)


def check_invariants(engine: Engine, decisions: list[Decision]) -> None:
    """The identity invariants of ``engine``'s store after ``decisions``: no user id on two
    active profiles, each recorded activity on exactly one profile, merges only fold anonymous
    profiles into identified ones, and a profile that is not active holds no session."""
    rows = list(export_rows(engine.store))
    by_id = {row["profile"]: row for row in rows}
    active_ids = [r["user_id"] for r in rows if r["state"] == "active" and r["user_id"] is not None]
    assert len(active_ids) == len(set(active_ids)), f"two active profiles share a user id: {rows}"
    recorded = [d.event_id for d in decisions if d.outcome == "recorded"]
    for event_id in recorded:
        holders = [r["profile"] for r in rows if event_id in r["activity"]]
        assert len(holders) == 1, f"{event_id} attributed to {holders}"
    all_activity = [e for r in rows for e in r["activity"]]
    assert sorted(all_activity) == sorted(recorded)
    identified = {d.profile for d in decisions if d.outcome == "identified"}
    for row in rows:
        if row["merged_into"] is not None:
            assert row["state"] == "merged"
            target = by_id[row["merged_into"]]
            assert target["anonymous"] is False
            assert row["anonymous"] is True, f"an identified profile was merged: {row}"
            assert row["profile"] not in identified
        if row["state"] == "merged":
            assert row["merged_into"] is not None
        if row["state"] != "active":
            assert row["sessions"] == []
    for decision in decisions:
        for folded in decision.merged:
            assert folded not in identified
            assert by_id[folded]["merged_into"] == decision.profile


def check_json_decisions(store: Any, decisions: list[dict[str, Any]]) -> None:
    """SPEC §3 on ``store`` after decisions read back as JSON from several deciders (processes,
    HTTP clients): :func:`check_invariants`, no profile merged twice, and every event id
    decided exactly once (any other answer for it ``duplicate``)."""
    as_objects = [SimpleNamespace(**d) for d in decisions]
    check_invariants(SimpleNamespace(store=store), as_objects)  # type: ignore[arg-type]
    folded = [p for d in decisions for p in d["merged"]]
    assert len(folded) == len(set(folded)), "a profile was merged twice"
    by_id: dict[str, list[str]] = {}
    for d in decisions:
        by_id.setdefault(d["event_id"], []).append(d["outcome"])
    for event_id, outcomes in by_id.items():
        decided = [o for o in outcomes if o != "duplicate"]
        assert len(decided) == 1, f"{event_id} decided {len(decided)} times: {outcomes}"
