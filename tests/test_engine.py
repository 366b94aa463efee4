"""The library API: Engine construction, conveniences, clock, decide() inputs, Decision shape."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import attrs
import pytest

from idrules import (
    Decision,
    Engine,
    Event,
    InvalidEvent,
    MemoryStore,
    SecretsError,
    SqliteStore,
    export_rows,
    load_ruleset,
    parse_line,
)

TS = "2026-03-01T12:00:00Z"
SECRET = "s" * 40
SPEC_KEYS = [
    "event_id",
    "outcome",
    "profile",
    "created",
    "merged",
    "identity",
    "attributes",
    "reasons",
    "ruleset",
]


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class TestConstruction:
    def test_ruleset_by_name_path_or_object(self, tmp_path: Path) -> None:
        """Engine takes a pack name, a rules path or a loaded Ruleset."""
        path = tmp_path / "rules.yaml"
        path.write_text("extends: helpshift\n")
        by_name = Engine("helpshift")
        by_path = Engine(path)
        by_object = Engine(load_ruleset("helpshift"))
        assert by_name.ruleset.name == by_path.ruleset.name == by_object.ruleset.name
        assert by_name.ruleset.sha256 == by_object.ruleset.sha256 == by_path.ruleset.sha256

    def test_default_store_is_a_fresh_memory_store(self) -> None:
        """Without a store, each engine decides against its own empty memory store."""
        first, second = Engine("helpshift"), Engine("helpshift")
        assert isinstance(first.store, MemoryStore)
        first.identify({"userId": "u1"}, session="s", ts=TS)
        assert list(second.store.profiles()) == []

    def test_given_store_is_used(self, tmp_path: Path) -> None:
        """A store passed in (here SQLite) is the one written."""
        store = SqliteStore(tmp_path / "store.db")
        try:
            engine = Engine("helpshift", store)
            decision = engine.identify({"userId": "u1"}, session="s", id="e1", ts=TS)
            assert [row["profile"] for row in export_rows(store)] == [decision.profile]
            assert store.is_decided("e1")
        finally:
            store.close()

    def test_secrets_in_code(self) -> None:
        """secrets= gives a verifying pack its keys."""
        engine = Engine("strict", secrets={"current": SECRET}, environ={})
        signature = hmac.new(SECRET.encode(), b"u1", hashlib.sha256).hexdigest()
        decision = engine.identify({"user_id": "u1", "signature": signature}, session="s", ts=TS)
        assert decision.outcome == "identified"
        assert decision.identity is not None and decision.identity.verified is True

    def test_secrets_from_environment(self) -> None:
        """Without secrets=, IDRULES_SECRET_CURRENT is read (here from environ=)."""
        engine = Engine("strict", environ={"IDRULES_SECRET_CURRENT": SECRET})
        signature = hmac.new(SECRET.encode(), b"u1", hashlib.sha256).hexdigest()
        decision = engine.identify({"user_id": "u1", "signature": signature}, session="s", ts=TS)
        assert decision.outcome == "identified"

    def test_missing_secret_refuses_to_start(self) -> None:
        """A verifying pack without its secret refuses to start, naming the variable."""
        with pytest.raises(SecretsError, match="IDRULES_SECRET_CURRENT"):
            Engine("strict", environ={})

    def test_short_secret_refused(self) -> None:
        """A secret under 32 bytes is refused, without echoing it."""
        with pytest.raises(SecretsError) as info:
            Engine("strict", secrets={"current": "tiny-secret"}, environ={})
        assert "tiny-secret" not in str(info.value)
        assert "32" in str(info.value)

    def test_disabled_verification_needs_no_secret(self) -> None:
        """helpshift (verification disabled) starts with no secret at all."""
        assert Engine("helpshift", environ={}).ruleset.verification.mode == "disabled"


class TestConveniences:
    def test_identify(self) -> None:
        """identify() decides identify(payload) with the given id and session."""
        engine = Engine("helpshift")
        decision = engine.identify(
            {"userId": "u1", "userEmail": "a@example.com"}, session="s", id="e1", ts=TS
        )
        assert (decision.event_id, decision.outcome, decision.created) == ("e1", "identified", True)
        assert engine.store.session("s") is not None
        assert engine.store.is_decided("e1")

    def test_identify_null_clears_identity(self) -> None:
        """identify(None) is identify(null): the session logs out."""
        engine = Engine("helpshift")
        engine.identify({"userId": "u1"}, session="s", ts=TS)
        decision = engine.identify(None, session="s", ts=TS)
        assert decision.outcome == "logged_out"
        assert decision.profile is None

    def test_track_with_properties_and_email(self) -> None:
        """track() records activity, taking properties and an inline email."""
        engine = Engine("helpshift")
        decision = engine.track(
            "vote", session="s", properties={"post": "p9"}, email="a@example.com", id="t1", ts=TS
        )
        assert (decision.outcome, decision.created, decision.event_id) == ("recorded", True, "t1")
        row = next(iter(export_rows(engine.store)))
        assert (row["activity"], row["email"], row["anonymous"]) == (
            ["t1"],
            "a@example.com",
            True,
        )

    def test_logout(self) -> None:
        """logout() ends the session's identity."""
        engine = Engine("helpshift")
        identified = engine.identify({"userId": "u1"}, session="s", ts=TS)
        decision = engine.logout(session="s", ts=TS)
        assert decision.outcome == "logged_out"
        row = next(r for r in export_rows(engine.store) if r["profile"] == identified.profile)
        assert row["sessions"] == []

    def test_generated_ids_are_unique(self) -> None:
        """Calls without an id get distinct generated ids (never duplicates)."""
        engine = Engine("helpshift")
        first = engine.track("vote", session="s", ts=TS)
        second = engine.track("vote", session="s", ts=TS)
        assert first.event_id != second.event_id
        assert second.outcome == "recorded"

    def test_explicit_id_reused_is_duplicate(self) -> None:
        """Reusing an id in a convenience call is a duplicate."""
        engine = Engine("helpshift")
        engine.track("vote", session="s", id="t1", ts=TS)
        assert engine.logout(session="s", id="t1", ts=TS).outcome == "duplicate"


class TestClock:
    def test_clock_dates_calls_without_ts(self) -> None:
        """Calls without ts take their time from the clock (here: the anonymous TTL)."""
        clock = Clock(datetime(2026, 3, 1, 12, 0, tzinfo=UTC))
        engine = Engine("helpshift", clock=clock)
        first = engine.track("vote", session="s")
        clock.now += timedelta(days=6)
        assert engine.track("vote", session="s").profile == first.profile
        clock.now += timedelta(days=7, seconds=1)
        later = engine.track("vote", session="s")
        assert later.profile != first.profile
        assert "anonymous.expired" in later.codes

    def test_explicit_ts_beats_the_clock(self) -> None:
        """A call with ts ignores the clock."""
        clock = Clock(datetime(2030, 1, 1, tzinfo=UTC))
        engine = Engine("helpshift", clock=clock)
        first = engine.track("vote", session="s", ts="2026-03-01T00:00:00Z")
        second = engine.track("vote", session="s", ts="2026-03-02T00:00:00Z")
        assert second.profile == first.profile
        assert engine.track("vote", session="s").codes[0] == "anonymous.expired"

    def test_aware_clock_in_another_zone(self) -> None:
        """An aware clock in another time zone is converted to UTC."""
        zone = timezone(timedelta(hours=-5))
        clock = Clock(datetime(2026, 3, 8, 7, 0, 1, tzinfo=zone))  # 12:00:01 UTC, 7 days later
        engine = Engine("helpshift", clock=clock)
        first = engine.track("vote", session="s", ts="2026-03-01T12:00:00Z")
        assert engine.track("vote", session="s").profile != first.profile

    def test_naive_clock_is_utc(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A naive clock reading is taken as UTC, whatever the machine's zone."""
        monkeypatch.setenv("TZ", "Pacific/Kiritimati")  # UTC+14
        time.tzset()
        try:
            clock = Clock(datetime(2026, 3, 8, 12, 0, 0))  # exactly 7 days: not yet expired
            engine = Engine("helpshift", clock=clock)
            first = engine.track("vote", session="s", ts="2026-03-01T12:00:00Z")
            assert engine.track("vote", session="s").profile == first.profile
            clock.now += timedelta(days=7, seconds=1)
            assert engine.track("vote", session="s").profile != first.profile
        finally:
            monkeypatch.undo()
            time.tzset()


class TestDecideInputs:
    def test_decide_accepts_a_dict(self) -> None:
        """decide() takes a JSON-like mapping."""
        engine = Engine("helpshift")
        decision = engine.decide(
            {"id": "e1", "ts": TS, "type": "identify", "session": "s", "payload": {"userId": "u"}}
        )
        assert isinstance(decision, Decision)
        assert decision.outcome == "identified"

    def test_decide_accepts_parsed_events(self) -> None:
        """decide() takes an Event or an InvalidEvent as parse_line returns them."""
        engine = Engine("helpshift")
        event = parse_line(json.dumps({"id": "e1", "ts": TS, "type": "logout", "session": "s"}))
        assert isinstance(event, Event)
        assert engine.decide(event).outcome == "logged_out"
        bad = parse_line("nope")
        assert isinstance(bad, InvalidEvent)
        assert engine.decide(bad).codes == ["event.invalid"]

    def test_decide_line_sets_line(self) -> None:
        """decide_line(raw, n) carries n into the decision and its JSON."""
        engine = Engine("helpshift")
        raw = json.dumps({"id": "e1", "ts": TS, "type": "logout", "session": "s"})
        decision = engine.decide_line(raw.encode(), 4)
        assert decision.line == 4
        assert json.loads(decision.to_json())["line"] == 4

    def test_decide_dict_invalid(self) -> None:
        """A malformed mapping is a rejected event.invalid decision, not an exception."""
        engine = Engine("helpshift")
        decision = engine.decide({"id": "e1", "type": "identify"})
        assert (decision.event_id, decision.outcome, decision.codes) == (
            "e1",
            "rejected",
            ["event.invalid"],
        )


class TestDecisionShape:
    def test_decision_is_frozen(self) -> None:
        """A Decision cannot be modified."""
        decision = Engine("helpshift").identify({"userId": "u1"}, session="s", ts=TS)
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            decision.outcome = "rejected"  # type: ignore[misc]
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            decision.reasons[0].code = "x"  # type: ignore[misc]

    @pytest.mark.parametrize("kind", ["identify", "track", "logout", "invalid", "duplicate"])
    def test_key_order_and_no_line_for_library_calls(self, kind: str) -> None:
        """to_json() keys come in docs/decisions.md order, with no line for library calls."""
        engine = Engine("helpshift")
        engine.identify({"userId": "u0"}, session="s", id="dup", ts=TS)
        if kind == "identify":
            decision = engine.identify({"userId": "u1"}, session="s", ts=TS)
        elif kind == "track":
            decision = engine.track("vote", session="s", ts=TS)
        elif kind == "logout":
            decision = engine.logout(session="s", ts=TS)
        elif kind == "invalid":
            decision = engine.decide({"id": "x"})
        else:
            decision = engine.logout(session="s", id="dup", ts=TS)
        keys = list(json.loads(decision.to_json()))
        assert keys == SPEC_KEYS
        assert decision.line is None

    def test_identity_and_ruleset_blocks(self) -> None:
        """identity has its canonical keys; ruleset names the loaded ruleset."""
        engine = Engine("helpshift")
        decision = engine.identify(
            {"userId": "u1", "userEmail": "Ada@Example.COM", "userName": "Ada"}, session="s", ts=TS
        )
        data = json.loads(decision.to_json())
        assert data["identity"] == {
            "user_id": "u1",
            "email": "Ada@example.com",
            "name": "Ada",
            "avatar": None,
            "verified": False,
        }
        assert data["ruleset"] == {
            "name": "helpshift",
            "version": "1",
            "sha256": engine.ruleset.sha256,
        }
        assert len(engine.ruleset.sha256) == 64

    def test_identity_null_for_other_events(self) -> None:
        """identity is null for track and logout decisions."""
        engine = Engine("helpshift")
        assert engine.track("vote", session="s", ts=TS).identity is None
        assert json.loads(engine.logout(session="s", ts=TS).to_json())["identity"] is None

    def test_track_attributes_are_a_snapshot(self, tmp_path: Path) -> None:
        """A track decision carries the profile's attributes at that moment."""
        path = tmp_path / "rules.yaml"
        path.write_text(
            "extends: helpshift\ninput: {attributes: '*'}\nattributes: {unknown: keep}\n"
        )
        engine = Engine(load_ruleset(path))
        engine.identify({"userId": "u1", "plan": "pro"}, session="s", ts=TS)
        assert dict(engine.track("vote", session="s", ts=TS).attributes) == {"plan": "pro"}


class TestValuesNeverLeakOrAlias:
    def test_non_finite_float_never_reaches_the_json(self, tmp_path: Path) -> None:
        """A mapping holding float('inf') must not make to_json() emit non-JSON Infinity."""
        path = tmp_path / "rules.yaml"
        path.write_text(
            "extends: helpshift\ninput: {attributes: '*'}\nattributes: {unknown: keep}\n"
        )
        engine = Engine(load_ruleset(path))
        event = {
            "id": "e1",
            "ts": TS,
            "type": "identify",
            "session": "s",
            "payload": {"userId": "u", "big": float("inf")},
        }

        def refuse(name: str) -> None:
            raise ValueError(name)

        json.loads(engine.decide(event).to_json(), parse_constant=refuse)

    def test_memory_store_does_not_alias_caller_values(self, tmp_path: Path) -> None:
        """Mutating the payload or a decision afterwards must not change the stored profile."""
        path = tmp_path / "rules.yaml"
        path.write_text(
            "extends: helpshift\ninput: {attributes: '*'}\nattributes: {unknown: keep}\n"
        )
        engine = Engine(load_ruleset(path))
        payload = {"userId": "u", "plan": {"tier": "pro"}}
        decision = engine.identify(payload, session="s", ts=TS)
        payload["plan"]["tier"] = "free"
        decision.attributes["plan"]["tier"] = "changed"
        assert next(iter(export_rows(engine.store)))["attributes"] == {"plan": {"tier": "pro"}}
