"""The laws of sessions and merging, over thousands of random multi-session sequences.

Each generated sequence of identify / track (with or without an inline email) / logout /
identify(null) across a few browsers and users is replayed twice into fresh stores, under a
pack chosen at random (helpshift, strict, quackback, userjot and merge/clear/expiry
variants). After every event, and at the end, the laws below must hold. CI runs 2,000
sequences.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import hmac_hex

from idrules import Engine, MemoryStore, Ruleset, export_rows, load_ruleset

SECRET = "session-laws-secret-0123456789abcdef"
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
SESSIONS = ["s1", "s2", "s3"]
USERS = [("u1", "a@example.com"), ("u2", "b@example.com"), ("u3", "A@Example.com")]
EMAILS = ["a@example.com", "b@example.com", "c@example.com", "A@EXAMPLE.COM", "bad-email"]
STEPS = [0, 5, 60, 3_600, 2 * 86_400, 8 * 86_400]  # seconds; 8 days outlives a 7-day TTL

#: pack -> the payload keys of its dialect (user id, email, name, signature)
DIALECTS = {
    "helpshift": ("userId", "userEmail", "userName", None),
    "strict": ("user_id", "email", "name", "signature"),
    "quackback": ("id", "email", "name", None),
    "userjot": ("id", "email", "firstName", "signature"),
}
OVERRIDES = {
    "merge-restore.yaml": ("helpshift", "anonymous: {on_identify: merge, after_logout: restore}"),
    "merge-ttl.yaml": ("helpshift", "anonymous: {on_identify: merge, ttl_days: 1}"),
    "clear.yaml": ("helpshift", "anonymous: {on_identify: clear, after_logout: new}"),
    "userjot-email.yaml": ("userjot", "anonymous: {activity_requires_email: true}"),
}
PACKS = [*DIALECTS, *OVERRIDES]


@pytest.fixture(scope="module")
def rules_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder)
        for name, (base, body) in OVERRIDES.items():
            (path / name).write_text(f"extends: {base}\n{body}\n")
        yield path


@st.composite
def sequences(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Operations: who does what, in which browser, how long after the previous one."""
    out = []
    for _ in range(draw(st.integers(1, 22))):
        kind = draw(
            st.sampled_from(["identify", "identify", "track", "track", "track", "logout", "null"])
        )
        op: dict[str, Any] = {
            "kind": kind,
            "session": draw(st.sampled_from(SESSIONS)),
            "step": draw(st.sampled_from(STEPS)),
        }
        if kind == "identify":
            user, email = draw(st.sampled_from(USERS))
            op["user"] = draw(st.sampled_from([user, user, user, None]))
            op["email"] = draw(st.sampled_from([email, email, None, "bad-email"]))
        elif kind == "track":
            op["email"] = draw(st.none() | st.sampled_from(EMAILS))
            op["name"] = draw(st.sampled_from(["vote", "feedback"]))
        out.append(op)
    return out


def events_of(ops: list[dict[str, Any]], pack: str) -> list[dict[str, Any]]:
    base = OVERRIDES[pack][0] if pack in OVERRIDES else pack
    user_key, email_key, name_key, signature_key = DIALECTS[base]
    events = []
    moment = T0
    for number, op in enumerate(ops, start=1):
        moment += timedelta(seconds=op["step"])
        event: dict[str, Any] = {
            "id": f"e{number}",
            "session": op["session"],
            "ts": moment.isoformat().replace("+00:00", "Z"),
        }
        if op["kind"] in ("logout", "null"):
            event["type"] = "logout" if op["kind"] == "logout" else "identify"
            if op["kind"] == "null":
                event["payload"] = None
        elif op["kind"] == "track":
            event["type"] = "track"
            event["payload"] = {"name": op["name"]}
            if op["email"] is not None:
                event["payload"]["email"] = op["email"]
        else:
            event["type"] = "identify"
            payload: dict[str, Any] = {name_key: "Someone"}
            if op["user"] is not None:
                payload[user_key] = op["user"]
                if signature_key is not None:
                    payload[signature_key] = hmac_hex(op["user"], SECRET)
            if op["email"] is not None:
                payload[email_key] = op["email"]
            event["payload"] = payload
        events.append(event)
    return events


_RULESETS: dict[str, Ruleset] = {}


def engine_for(rules_dir: Path, pack: str) -> Engine:
    if pack not in _RULESETS:  # loading is the slow part: once per pack
        _RULESETS[pack] = load_ruleset(rules_dir / pack if pack in OVERRIDES else pack)
    return Engine(_RULESETS[pack], MemoryStore(), secrets={"current": SECRET})


class TestSessionLaws:
    """Merging never goes wrong, whatever the sequence."""

    @settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(ops=sequences(), pack=st.sampled_from(PACKS))
    def test_laws_hold_for_any_sequence(
        self, rules_dir: Path, ops: list[dict[str, Any]], pack: str
    ) -> None:
        """No identified merge; activity in one profile, never lost; no hijack; same bytes."""
        events = events_of(ops, pack)
        engine = engine_for(rules_dir, pack)
        store = engine.store
        lines: list[str] = []
        recorded: list[str] = []
        gone: set[str] = set()  # cleared or expired anonymous profiles: never used again
        acting: dict[str, str | None] = {}  # session -> identified profile it identified as
        for event in events:
            d = engine.decide(event)
            lines.append(d.to_json())
            session = event["session"]
            assert d.profile not in gone, f"{d.event_id} used the discarded {d.profile}"
            for merged in d.merged:
                folded = store.profile(merged)
                assert folded is not None and folded.anonymous, "an identified profile merged"
                assert folded.state == "merged" and folded.merged_into == d.profile
            if d.outcome == "identified":
                acting[session] = d.profile
            elif d.outcome in ("anonymous", "logged_out"):
                acting[session] = None
            elif d.outcome == "recorded":
                recorded.append(d.event_id or "")
                profile = store.profile(d.profile or "")
                assert profile is not None and profile.state == "active"
                if acting.get(session) is None:
                    # a browser that never identified as an account never acts as one, even
                    # when another browser claimed its anonymous profile by its inline email
                    assert profile.anonymous, f"{d.event_id}: {session} acts as {profile.id}"
                else:
                    assert d.profile == acting[session]
            for p in store.profiles():
                if p.state in ("cleared", "expired"):
                    gone.add(p.id)
        rows = list(export_rows(store))
        activity = [event_id for row in rows for event_id in row["activity"]]
        assert sorted(activity) == sorted(recorded), "activity lost, duplicated or invented"
        user_ids = [row["user_id"] for row in rows if row["state"] == "active" and row["user_id"]]
        assert len(user_ids) == len(set(user_ids)), "one user id on two active profiles"
        for row in rows:
            if row["merged_into"] is not None:
                assert row["anonymous"] and row["state"] == "merged"
                assert row["activity"] == [], "a merged profile kept activity"
        again = engine_for(rules_dir, pack)
        assert [again.decide(json.loads(json.dumps(e))).to_json() for e in events] == lines
        assert list(export_rows(again.store)) == rows, "the same sequence gave another store"
