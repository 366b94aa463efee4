"""Hypothesis properties of the whole engine: determinism, robustness, truncation, duplicates
and the identity invariants that must hold whatever the order of events."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from support import T0, check_invariants, hmac_hex

from idrules import Decision, Engine, MemoryStore, SqliteStore, export_rows, load_ruleset, replay
from idrules.fields import FieldChecker
from idrules.rules.model import FieldRule

SECRET = "x" * 40
SECRETS = {"current": SECRET}

FAST = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --------------------------------------------------------------------------------------------
# strategies

# text, sometimes holding lone surrogates (JSON can carry them as escapes such as "\ud800")
any_text = st.text() | st.text(alphabet=st.characters(categories=["Cs", "Ll"]), max_size=4)
json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | any_text
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(any_text, children, max_size=4)
    ),
    max_leaves=12,
)
# text with astral code points, combining marks, controls (no surrogates: not encodable)
rich_text = st.lists(
    st.characters(codec="utf-8")
    | st.sampled_from(
        ["\U0001f600", "\U0001f468\u200d\U0001f469", "e\u0301", "\u0301", "\U0001d538"]
    ),
    max_size=30,
).map("".join)
TS = ["2026-03-01T12:00:00Z", "2026-03-01T12:00:00.5+02:00", "2026-03-01 12:00:00z"]

SESSIONS = ["s1", "s2", "s3"]
USER_IDS = ["u1", "u2", "U1"]
EMAILS = ["a@example.com", "A@Example.COM", "b@example.com", "not-an-email"]
STEPS = [0, 0, 1, 60, 3_600, 8 * 86_400]  # seconds; 8 days outlives the default 7-day TTL


@st.composite
def ops(draw: st.DrawFn, max_size: int = 14) -> list[dict[str, Any]]:
    """A random sequence of identify/track/logout operations (not yet events)."""
    kinds = st.sampled_from(["identify", "identify", "identify", "track", "track", "logout"])
    out = []
    for _ in range(draw(st.integers(1, max_size))):
        kind = draw(kinds)
        op: dict[str, Any] = {
            "type": kind,
            "session": draw(st.sampled_from(SESSIONS)),
            "step": draw(st.sampled_from(STEPS)),
        }
        if kind == "identify":
            if draw(st.integers(0, 9)) == 0:
                op["null"] = True
            op["user_id"] = draw(st.none() | st.sampled_from(USER_IDS))
            op["email"] = draw(st.none() | st.sampled_from(EMAILS))
            op["name"] = draw(st.none() | st.sampled_from(["Ada", "Bob"]))
            op["sign"] = draw(st.sampled_from(["good", "good", "good", "upper", "bad", "none"]))
            if draw(st.booleans()):
                op["session"] = None if draw(st.integers(0, 4)) == 0 else op["session"]
        elif kind == "track":
            op["email"] = draw(st.none() | st.sampled_from(EMAILS))
        out.append(op)
    return out


def sign_hex(user_id: str | None) -> str:
    """What the customer's server computes for the strict pack: hex HMAC-SHA256 of the user id."""
    return hmac_hex(user_id or "", SECRET)


def to_events(operations: list[dict[str, Any]], dialect: str) -> list[dict[str, Any]]:
    """Events (dicts) for ``operations``, in the helpshift or the canonical (strict) dialect."""
    events = []
    moment = T0
    for number, op in enumerate(operations, start=1):
        moment += timedelta(seconds=op["step"])
        event: dict[str, Any] = {
            "id": f"e{number}",
            "ts": moment.isoformat().replace("+00:00", "Z"),
            "type": op["type"],
        }
        if op["session"] is not None:
            event["session"] = op["session"]
        if op["type"] == "identify":
            if op.get("null"):
                event["payload"] = None
            elif dialect == "helpshift":
                keys = {"user_id": "userId", "email": "userEmail", "name": "userName"}
                event["payload"] = {keys[k]: op[k] for k in keys if op[k] is not None}
            else:
                payload = {k: op[k] for k in ("user_id", "email", "name") if op[k] is not None}
                signature = sign_hex(op["user_id"])
                if op["sign"] == "upper":
                    payload["signature"] = signature.upper()
                elif op["sign"] == "bad":
                    payload["signature"] = sign_hex("someone else")
                elif op["sign"] == "good":
                    payload["signature"] = signature
                event["payload"] = payload
        elif op["type"] == "track":
            payload = {"name": "vote", "properties": {"n": number}}
            if op["email"] is not None:
                payload["email"] = op["email"]
            event["payload"] = payload
        events.append(event)
    return events


def lines_of(events: Iterable[dict[str, Any]]) -> list[bytes]:
    return [json.dumps(e).encode("utf-8") for e in events]


def run_replay(engine: Engine, lines: list[bytes]) -> tuple[str, str]:
    """Replay ``lines``; the decisions' bytes and the export's bytes."""
    out: list[str] = []
    replay(engine, lines, out.append)
    export = "".join(json.dumps(row) + "\n" for row in export_rows(engine.store))
    return "".join(out), export


def export_text(engine: Engine) -> str:
    return "".join(json.dumps(row) + "\n" for row in export_rows(engine.store))


def assert_json_decision(decision: Decision) -> None:
    """``to_json()`` is strict JSON (no NaN/Infinity), UTF-8 encodable, and round-trips."""
    assert isinstance(decision, Decision)
    text = decision.to_json()
    text.encode("utf-8")  # no lone surrogates

    def refuse(name: str) -> Any:
        raise AssertionError(f"non-JSON constant {name} in {text}")

    parsed = json.loads(text, parse_constant=refuse)
    assert isinstance(parsed, dict)
    assert parsed["outcome"] in {
        "identified",
        "anonymous",
        "rejected",
        "logged_out",
        "recorded",
        "duplicate",
    }


@pytest.fixture(scope="module")
def rules_dir() -> Iterable[Path]:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder)
        (path / "merge.yaml").write_text("extends: helpshift\nanonymous:\n  on_identify: merge\n")
        (path / "clear.yaml").write_text("extends: helpshift\nanonymous:\n  on_identify: clear\n")
        (path / "other.yaml").write_text(
            "extends: helpshift\n"
            "anonymous: {on_identify: merge, after_logout: new, ttl_days: 1}\n"
            "matching: {email_matches_profile_without_user_id: new_profile,\n"
            "           email_matches_profile_with_other_user_id: reject}\n"
        )
        (path / "name5.yaml").write_text(
            "extends: helpshift\nfields:\n  name: {max_length: 5, too_long: truncate}\n"
        )
        yield path


# --------------------------------------------------------------------------------------------
# determinism


PACKS = ["helpshift", "strict", "merge.yaml", "clear.yaml", "other.yaml"]


def engine_for(rules_dir: Path, pack: str, store: Any = None) -> tuple[Engine, str]:
    """An engine for a shipped pack or one of the override files, and its payload dialect."""
    ruleset = load_ruleset(rules_dir / pack if pack.endswith(".yaml") else pack)
    dialect = "strict" if pack == "strict" else "helpshift"
    return Engine(ruleset, store if store is not None else MemoryStore(), secrets=SECRETS), dialect


class TestDeterminism:
    @SLOW
    @given(operations=ops(max_size=20), pack=st.sampled_from(PACKS))
    def test_replay_twice_gives_same_bytes(
        self, rules_dir: Path, operations: list[dict[str, Any]], pack: str
    ) -> None:
        """Two replays of one log into fresh memory stores give identical decisions and export."""
        first_engine, dialect = engine_for(rules_dir, pack)
        second_engine, _ = engine_for(rules_dir, pack)
        events = lines_of(to_events(operations, dialect))
        half = len(events) // 2
        # a blank line (skipped but counted), a duplicate, a malformed line
        lines = [*events[:half], b"   ", *events[half:], events[0], b"{not json"]
        first = run_replay(first_engine, lines)
        second = run_replay(second_engine, lines)
        assert first == second
        assert first[0].count("\n") == len(events) + 2

    @SLOW
    @given(operations=ops(max_size=16), pack=st.sampled_from(PACKS))
    def test_sqlite_store_gives_same_bytes_as_memory(
        self, rules_dir: Path, operations: list[dict[str, Any]], pack: str
    ) -> None:
        """The SQLite store decides a log to the same bytes (decisions and export) as memory."""
        memory_engine, dialect = engine_for(rules_dir, pack)
        lines = lines_of(to_events(operations, dialect))
        lines.append(lines[-1])
        memory = run_replay(memory_engine, lines)
        with tempfile.TemporaryDirectory() as folder:
            store = SqliteStore(Path(folder) / "store.db")
            try:
                on_disk = run_replay(engine_for(rules_dir, pack, store)[0], lines)
            finally:
                store.close()
        assert on_disk == memory


# --------------------------------------------------------------------------------------------
# robustness: nothing crashes the engine


HELPSHIFT = load_ruleset("helpshift")
STRICT = load_ruleset("strict")


def _engines() -> list[Engine]:
    return [Engine(HELPSHIFT), Engine(STRICT, secrets=SECRETS)]


class TestNoCrash:
    @FAST
    @given(value=json_values)
    def test_any_json_value_as_event(self, value: Any) -> None:
        """Any JSON value given to decide() or decide_line() yields a JSON decision."""
        for engine in _engines():
            assert_json_decision(engine.decide(value))
            assert_json_decision(engine.decide_line(json.dumps(value)))
            literal = json.dumps(value, ensure_ascii=False)
            assert_json_decision(engine.decide_line(literal))
            assert_json_decision(engine.decide_line(literal.encode("utf-8", "surrogatepass")))

    @FAST
    @given(value=st.dictionaries(any_text, json_values, max_size=6))
    def test_any_object_as_event(self, value: dict[str, Any]) -> None:
        """An arbitrary object (even without an envelope) given to decide() yields a decision."""
        for engine in _engines():
            assert_json_decision(engine.decide(value))

    @FAST
    @given(
        kind=st.sampled_from(["identify", "track", "logout"]),
        payload=json_values,
        session=st.none() | st.sampled_from(SESSIONS),
        ts=st.sampled_from(TS),
        extra=st.dictionaries(
            st.sampled_from(
                [
                    "userId",
                    "userEmail",
                    "userName",
                    "user_id",
                    "email",
                    "name",
                    "signature",
                    "attributes",
                    "userAuthToken",
                    "avatar",
                    "token",
                ]
            ),
            any_text | json_values,
            max_size=5,
        ),
    )
    def test_valid_envelope_arbitrary_payload(
        self, kind: str, payload: Any, session: str | None, ts: str, extra: dict[str, Any]
    ) -> None:
        """An event with a valid envelope and any payload yields a JSON decision, twice."""
        for body in (payload, extra, {**extra, "name": "vote", "properties": extra}):
            for engine in _engines():
                event: dict[str, Any] = {"id": "e1", "ts": ts, "type": kind, "payload": body}
                if session is not None:
                    event["session"] = session
                first = engine.decide(event)
                assert_json_decision(first)
                event["id"] = "e2"
                assert_json_decision(engine.decide_line(json.dumps(event)))
                again = engine.decide(dict(event, id="e1"))
                assert again.outcome == "duplicate"

    @FAST
    @given(raw=st.binary(max_size=80) | st.text(max_size=80))
    def test_arbitrary_raw_lines(self, raw: bytes | str) -> None:
        """Arbitrary bytes (invalid UTF-8 too) or text as a line yield a JSON decision."""
        assume(raw.strip())  # blank lines are the replay's to skip
        for engine in _engines():
            assert_json_decision(engine.decide_line(raw))

    @FAST
    @given(
        where=st.sampled_from(["id", "session", "payload_key", "payload_value", "extra"]),
        surrogate=st.sampled_from(["\\ud800", "\\udfff", "a\\udc00b", "\\ud83d"]),
        kind=st.sampled_from(["identify", "track", "logout"]),
        literal=st.booleans(),
    )
    def test_lone_surrogates_are_refused(
        self, where: str, surrogate: str, kind: str, literal: bool
    ) -> None:
        """An escaped (or literal) lone surrogate anywhere yields event.invalid, never a crash."""
        payload: dict[str, Any] = {"name": "vote", "userId": "u1", "user_id": "u1"}
        event: dict[str, Any] = {"id": "e1", "ts": TS[0], "type": kind, "session": "s1"}
        text = f'"{surrogate}"'
        line = json.dumps({**event, "payload": payload})
        marker = '"MARK"'
        if where == "id":
            line = line.replace('"e1"', text)
        elif where == "session":
            line = line.replace('"s1"', text)
        elif where == "payload_key":
            line = line.replace('"user_id"', text).replace('"userId"', text)
        elif where == "payload_value":
            line = line.replace('"u1"', text)
        else:
            line = line[:-1] + f', "extra": {marker}}}'
            line = line.replace(marker, text)
        if literal:  # the same line, decoded: real surrogate code points in a Python str
            line = json.dumps(json.loads(line), ensure_ascii=False)
        for engine in _engines():
            decision = engine.decide_line(line)
            assert_json_decision(decision)
            assert decision.outcome == "rejected"
            assert decision.codes == ["event.invalid"]
            assert decision.event_id in (None, "e1")
            obj = json.loads(line)
            fresh = Engine(engine.ruleset, secrets=SECRETS)
            decision = fresh.decide(obj)
            assert_json_decision(decision)
            assert decision.codes == ["event.invalid"]
            assert list(export_rows(fresh.store)) == []

    @FAST
    @given(payload=st.dictionaries(st.text(max_size=6), json_values, max_size=6))
    def test_strict_pack_with_signed_arbitrary_payload(self, payload: dict[str, Any]) -> None:
        """The strict pack decides a validly signed call with arbitrary extra keys."""
        user_id = payload.get("user_id")
        signed = dict(payload, signature=sign_hex(user_id if isinstance(user_id, str) else None))
        for body in (payload, signed):
            engine = Engine(STRICT, secrets=SECRETS)
            event = {"id": "e1", "ts": TS[0], "type": "identify", "session": "s", "payload": body}
            assert_json_decision(engine.decide(event))


# --------------------------------------------------------------------------------------------
# truncation


def _assert_truncated(given_text: str, value: str | None, limit: int) -> None:
    assert value is not None
    assert len(value) <= limit
    assert given_text.startswith(value)
    value.encode("utf-8")


class TestTruncation:
    @FAST
    @given(text=rich_text, limit=st.integers(1, 12))
    def test_field_checker_truncates_by_code_points(self, text: str, limit: int) -> None:
        """A truncating name keeps at most N code points, a prefix of the input, valid UTF-8."""
        ruleset = load_ruleset("helpshift")
        rule = FieldRule(max_length=limit, too_long="truncate", whitespace="keep")
        checked = FieldChecker("name", rule, ruleset).check(text)
        if text == "":
            assert checked.value is None
            return
        _assert_truncated(text, checked.value, limit)
        if len(text) > limit:
            assert len(checked.value or "") == limit
            assert [r.code for r in checked.reasons] == ["name.truncated"]
            assert "fields.name.max_length" in (checked.reasons[0].rule or "")
        else:
            assert checked.value == text
            assert checked.reasons == ()

    @FAST
    @given(text=rich_text.filter(lambda t: t != ""))
    def test_engine_truncates_name_from_rules_override(self, rules_dir: Path, text: str) -> None:
        """Through the engine and an override file, a long name is cut to 5 code points."""
        engine = Engine(load_ruleset(rules_dir / "name5.yaml"))
        decision = engine.identify({"userId": "u1", "userName": text}, session="s1", ts=TS[0])
        assert decision.outcome == "identified"
        assert decision.identity is not None
        _assert_truncated(text, decision.identity.name, 5)
        assert ("name.truncated" in decision.codes) == (len(text) > 5)
        decision.to_json().encode("utf-8")


# --------------------------------------------------------------------------------------------
# duplicates


class TestDuplicates:
    @SLOW
    @given(
        operations=ops(max_size=14),
        dialect=st.sampled_from(["helpshift", "strict"]),
        pick=st.integers(0, 1_000),
    )
    def test_a_duplicate_changes_nothing(
        self, operations: list[dict[str, Any]], dialect: str, pick: int
    ) -> None:
        """Deciding an already-decided event again is `duplicate` and leaves the export alone."""
        engine = Engine(dialect, secrets=SECRETS)
        events = to_events(operations, dialect)
        for event in events:
            engine.decide(event)
        before = export_text(engine)
        again = events[pick % len(events)]
        for decision in (engine.decide(again), engine.decide_line(json.dumps(again))):
            assert decision.outcome == "duplicate"
            assert decision.codes == ["event.duplicate"]
            assert decision.event_id == again["id"]
            assert decision.profile is None
            assert export_text(engine) == before
        # a duplicate id with a different body is still a duplicate
        logout = {"id": again["id"], "ts": TS[0], "type": "logout", "session": "s1"}
        assert engine.decide(logout).outcome == "duplicate"
        assert export_text(engine) == before


# --------------------------------------------------------------------------------------------
# identity invariants


class TestInvariants:
    @settings(max_examples=100, deadline=None)
    @given(
        operations=ops(max_size=18),
        pack=st.sampled_from(PACKS),
    )
    def test_identity_invariants(
        self, rules_dir: Path, operations: list[dict[str, Any]], pack: str
    ) -> None:
        """Unique active user ids, activity attributed once, merges only fold anonymous ones."""
        engine, dialect = engine_for(rules_dir, pack)
        decisions = []
        for event in to_events(operations, dialect):
            decision = engine.decide(event)
            assert_json_decision(decision)
            decisions.append(decision)
            check_invariants(engine, decisions)

    @settings(max_examples=150, deadline=None)
    @given(
        operations=ops(max_size=18),
        pack=st.sampled_from(PACKS),
    )
    def test_identified_session_stays_identified(
        self, rules_dir: Path, operations: list[dict[str, Any]], pack: str
    ) -> None:
        """Only the session's own events end its identity: its tracks go to that profile."""
        engine, dialect = engine_for(rules_dir, pack)
        acting: dict[str, str | None] = {}  # session -> identified profile it acts as
        for event in to_events(operations, dialect):
            decision = engine.decide(event)
            session = event.get("session")
            if session is None:
                continue
            if decision.outcome == "identified":
                acting[session] = decision.profile
            elif decision.outcome in ("logged_out", "anonymous"):
                acting[session] = None
            elif decision.outcome == "recorded" and acting.get(session) is not None:
                assert decision.profile == acting[session], (
                    f"{event['id']} on {session} went to {decision.profile}, "
                    f"not the identified {acting[session]}"
                )
                assert decision.created is False
