"""Stage 6: resolution (plan.py) through the Engine with a memory store (docs/rules.md matching)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import attrs
import pytest

from idrules import Decision, Engine, Event, MemoryStore, export_rows, load_ruleset
from idrules.events import parse_object

TS = "2026-03-01T12:00:00Z"
SECRET = "k" * 40


def engine_for(tmp_path: Path | None = None, text: str = "", base: str = "helpshift") -> Engine:
    """An engine over a memory store, for ``base`` plus an optional override."""
    if not text:
        return Engine(base, MemoryStore(), secrets={"current": SECRET})
    assert tmp_path is not None
    path = tmp_path / "rules.yaml"
    path.write_text(f"extends: {base}\n{text}", encoding="utf-8")
    return Engine(load_ruleset(path), MemoryStore(), secrets={"current": SECRET})


def ident(engine: Engine, event_id: str, session: str | None = "s", **payload: Any) -> Decision:
    keys = {"user_id": "userId", "email": "userEmail", "name": "userName"}
    body = {keys.get(k, k): v for k, v in payload.items()}
    return engine.identify(body, session=session, id=event_id, ts=TS)


def rows(engine: Engine) -> list[dict[str, Any]]:
    return list(export_rows(engine.store))


def row(engine: Engine, profile: str | None) -> dict[str, Any]:
    return next(r for r in rows(engine) if r["profile"] == profile)


def snapshot(engine: Engine) -> str:
    return json.dumps(rows(engine))


def pid(event_id: str) -> str:
    return "p_" + hashlib.sha256(event_id.encode()).hexdigest()[:16]


class TestPrecedence:
    def test_user_id_first(self) -> None:
        """[user_id, email]: the user id's profile wins over the email's."""
        engine = engine_for()
        a = ident(engine, "e1", user_id="u1", email="a@example.com")
        b = ident(engine, "e2", user_id="u2", email="b@example.com")
        d = ident(engine, "e3", user_id="u2", email="a@example.com")
        assert d.profile == b.profile != a.profile
        assert d.codes[0] == "match.user_id"
        assert "conflict.email_other_user_id" not in d.codes
        assert d.reasons[0].rule == str(engine.ruleset.cite("matching.precedence"))

    def test_email_first(self, tmp_path: Path) -> None:
        """[email, user_id]: the email is looked up first (here: a conflict, then the user id)."""
        engine = engine_for(tmp_path, "matching:\n  precedence: [email, user_id]\n")
        ident(engine, "e1", user_id="u1", email="a@example.com")
        b = ident(engine, "e2", user_id="u2", email="b@example.com")
        d = ident(engine, "e3", user_id="u2", email="a@example.com")
        assert d.codes[:3] == ["match.email", "conflict.email_other_user_id", "match.user_id"]
        assert d.profile == b.profile
        assert d.created is False

    def test_email_only_precedence_still_keeps_user_ids_unique(self, tmp_path: Path) -> None:
        """With precedence [email], a known user id still resolves to its profile."""
        engine = engine_for(tmp_path, "matching:\n  precedence: [email]\n")
        a = ident(engine, "e1", user_id="u1")
        d = ident(engine, "e2", user_id="u1", email="z@example.com")
        assert d.profile == a.profile
        assert d.created is False
        assert "match.user_id" in d.codes

    def test_user_id_match_is_case_sensitive(self) -> None:
        """helpshift user ids keep their case: U1 is not u1."""
        engine = engine_for()
        a = ident(engine, "e1", user_id="u1")
        d = ident(engine, "e2", user_id="U1")
        assert d.created is True
        assert d.profile != a.profile

    def test_email_match_is_case_insensitive(self) -> None:
        """An email-only call matches the profile whatever the address's case."""
        engine = engine_for()
        a = ident(engine, "e1", user_id="u1", email="ada@example.com")
        d = ident(engine, "e2", session="t", email="ADA@Example.com")
        assert d.profile == a.profile
        assert d.codes[0] == "match.email"


class TestEmailWithoutUserId:
    def test_attach(self) -> None:
        """attach: the user id is added to the email-only profile."""
        engine = engine_for()
        a = ident(engine, "e1", email="a@example.com")
        d = ident(engine, "e2", user_id="u1", email="a@example.com")
        assert d.profile == a.profile
        assert d.created is False
        assert d.codes == ["match.email", "identifier.attached"]
        assert d.reasons[1].rule == str(
            engine.ruleset.cite("matching.email_matches_profile_without_user_id")
        )
        assert row(engine, a.profile)["user_id"] == "u1"
        assert len(rows(engine)) == 1

    def test_new_profile(self, tmp_path: Path) -> None:
        """new_profile: a new profile is created beside the email-only one."""
        engine = engine_for(
            tmp_path, "matching:\n  email_matches_profile_without_user_id: new_profile\n"
        )
        a = ident(engine, "e1", email="a@example.com")
        d = ident(engine, "e2", user_id="u1", email="a@example.com")
        assert d.created is True
        assert d.profile != a.profile
        assert "identifier.attached" not in d.codes
        assert row(engine, a.profile)["user_id"] is None
        assert row(engine, d.profile)["email"] == "a@example.com"


class TestConflict:
    def test_new_profile(self) -> None:
        """new_profile: an email held by another user id gives the caller a new profile."""
        engine = engine_for()
        a = ident(engine, "e1", user_id="u1", email="a@example.com")
        d = ident(engine, "e2", session="t", user_id="u2", email="a@example.com")
        assert d.outcome == "identified"
        assert d.created is True
        assert d.profile != a.profile
        assert d.codes == ["match.email", "conflict.email_other_user_id", "profile.created"]
        assert row(engine, a.profile)["user_id"] == "u1"

    def test_reject(self, tmp_path: Path) -> None:
        """reject: that call is refused and nothing changes."""
        engine = engine_for(
            tmp_path, "matching:\n  email_matches_profile_with_other_user_id: reject\n"
        )
        ident(engine, "e1", user_id="u1", email="a@example.com")
        before = snapshot(engine)
        d = ident(engine, "e2", session="t", user_id="u2", email="a@example.com")
        assert d.outcome == "rejected"
        assert d.profile is None
        assert d.codes == ["match.email", "conflict.email_other_user_id"]
        assert snapshot(engine) == before
        assert engine.store.session("t") is None


class TestUpdateOnMatch:
    def test_listed_fields_update(self) -> None:
        """helpshift updates email and name of the matched profile, each with a reason."""
        engine = engine_for()
        a = ident(engine, "e1", user_id="u1", email="a@example.com", name="Ada")
        d = ident(engine, "e2", user_id="u1", email="b@example.com", name="Ada L")
        assert d.profile == a.profile
        assert d.codes == ["match.user_id", "profile.updated", "profile.updated"]
        assert [r.field for r in d.reasons[1:]] == ["email", "name"]
        assert (row(engine, a.profile)["email"], row(engine, a.profile)["name"]) == (
            "b@example.com",
            "Ada L",
        )

    def test_unchanged_values_are_not_updates(self) -> None:
        """Re-sending the same values reports no update."""
        engine = engine_for()
        ident(engine, "e1", user_id="u1", email="a@example.com", name="Ada")
        d = ident(engine, "e2", user_id="u1", email="a@example.com", name="Ada")
        assert d.codes == ["match.user_id"]

    def test_unchanged_profile_is_not_written(self) -> None:
        """Re-sending the same values plans no profile write, even from a store whose every
        read returns a fresh copy (as a store without a read cache does)."""
        engine = engine_for()
        ident(engine, "e1", user_id="u1", email="a@example.com", name="Ada")
        memory = engine.store

        class Copying:
            def __getattr__(self, name: str) -> Any:
                return getattr(memory, name)

            def profile(self, profile_id: str) -> Any:
                found = memory.profile(profile_id)
                return None if found is None else attrs.evolve(found)

            def by_user_key(self, user_key: str) -> Any:
                found = memory.by_user_key(user_key)
                return None if found is None else attrs.evolve(found)

        engine.store = Copying()  # type: ignore[assignment]
        event = parse_object(
            {
                "id": "e2",
                "ts": TS,
                "type": "identify",
                "session": "s",
                "payload": {"userId": "u1", "userEmail": "a@example.com", "userName": "Ada"},
            }
        )
        assert isinstance(event, Event)
        plan = engine.plan(event)
        assert plan.decision.codes == ["match.user_id"]
        assert plan.changes.profiles == ()
        assert plan.changes.sessions == ()

    def test_empty_list_updates_nothing(self, tmp_path: Path) -> None:
        """update_on_match: [] leaves the matched profile as it was."""
        engine = engine_for(tmp_path, "matching:\n  update_on_match: []\n")
        a = ident(engine, "e1", user_id="u1", email="a@example.com", name="Ada")
        d = ident(engine, "e2", user_id="u1", email="b@example.com", name="Bob")
        assert "profile.updated" not in d.codes
        assert (row(engine, a.profile)["email"], row(engine, a.profile)["name"]) == (
            "a@example.com",
            "Ada",
        )

    def test_attributes_merge_when_listed(self, tmp_path: Path) -> None:
        """attributes in update_on_match merges new attributes over the old ones."""
        engine = engine_for(
            tmp_path,
            "input: {attributes: '*'}\nattributes: {unknown: keep}\n"
            "matching: {update_on_match: [attributes]}\n",
        )
        a = ident(engine, "e1", user_id="u1", plan="free", seats=1)
        ident(engine, "e2", user_id="u1", plan="pro")
        assert row(engine, a.profile)["attributes"] == {"plan": "pro", "seats": 1}

    def test_old_email_no_longer_matches(self) -> None:
        """Only a profile's current email matches; the one it held before does not."""
        engine = engine_for()
        a = ident(engine, "e1", user_id="u1", email="a@example.com")
        ident(engine, "e2", user_id="u1", email="b@example.com")
        d = ident(engine, "e3", session="t", email="a@example.com")
        assert d.created is True
        assert d.profile != a.profile
        d = ident(engine, "e4", session="t2", email="b@example.com")
        assert d.profile == a.profile


class TestAmbiguousEmail:
    def test_earliest_created_wins(self) -> None:
        """Several profiles hold one email: the earliest-created wins, with email_ambiguous."""
        engine = engine_for()
        # event ids chosen so the later profile's id sorts first
        ids = sorted(["z1", "z2", "z3", "z4", "z5"], key=pid, reverse=True)
        first = ident(engine, ids[0], session="s1", user_id="u1", email="a@example.com")
        second = ident(engine, ids[1], session="s2", user_id="u2", email="a@example.com")
        assert second.created and pid(ids[1]) < pid(ids[0])
        d = ident(engine, ids[2], session="s3", email="A@example.com")
        assert d.profile == first.profile
        assert d.codes[:2] == ["match.email", "match.email_ambiguous"]
        assert d.reasons[1].field == "email"

    def test_single_holder_is_not_ambiguous(self) -> None:
        """One profile holding the email is a plain match.email."""
        engine = engine_for()
        ident(engine, "e1", user_id="u1", email="a@example.com")
        d = ident(engine, "e2", session="t", email="a@example.com")
        assert "match.email_ambiguous" not in d.codes


class TestProfileIds:
    def test_deterministic_from_event_ids(self) -> None:
        """A created profile's id derives from the creating event's id alone."""
        for engine in (engine_for(), engine_for()):
            d = ident(engine, "evt-42", user_id="u1")
            assert d.profile == pid("evt-42")
            assert d.created is True
            t = engine.track("vote", session="other", id="evt-43", ts=TS)
            assert t.profile == pid("evt-43")

    def test_same_log_same_ids_in_any_engine(self) -> None:
        """Two engines given one log name every profile identically."""
        outputs = []
        for _ in range(2):
            engine = engine_for()
            ident(engine, "a", user_id="u1")
            engine.track("vote", session="b", id="b", ts=TS)
            ident(engine, "c", session="b", user_id="u2")
            outputs.append(snapshot(engine))
        assert outputs[0] == outputs[1]


class TestPurity:
    @pytest.mark.parametrize(
        "event",
        [
            {"id": "n1", "ts": TS, "type": "identify", "session": "s", "payload": {"userId": "u9"}},
            {"id": "n2", "ts": TS, "type": "identify", "session": "s", "payload": {"userId": "u1"}},
            {"id": "n3", "ts": TS, "type": "track", "session": "s", "payload": {"name": "v"}},
            {"id": "n4", "ts": TS, "type": "track", "session": "new", "payload": {"name": "v"}},
            {"id": "n5", "ts": TS, "type": "logout", "session": "s"},
            {"id": "n6", "ts": TS, "type": "identify", "session": "s", "payload": None},
            {
                "id": "n7",
                "ts": "2026-04-01T00:00:00Z",
                "type": "identify",
                "session": "anon",
                "payload": {"userId": "u1"},
            },
            {"id": "e1", "ts": TS, "type": "logout", "session": "s"},
        ],
    )
    def test_plan_leaves_the_store_unchanged(self, tmp_path: Path, event: dict[str, Any]) -> None:
        """engine.plan(event) writes nothing; deciding afterwards gives the planned decision."""
        engine = engine_for(tmp_path, "anonymous: {on_identify: merge}\n")
        ident(engine, "e1", user_id="u1", email="a@example.com")
        engine.track("vote", session="anon", id="e2", ts=TS)
        engine.logout(session="s", id="e3", ts=TS)
        parsed = parse_object(event)
        assert isinstance(parsed, Event)
        before = (
            snapshot(engine),
            [engine.store.session(s) for s in ("s", "anon", "new")],
            engine.store.is_decided(parsed.id),
        )
        plan = engine.plan(parsed)
        again = engine.plan(parsed)
        after = (
            snapshot(engine),
            [engine.store.session(s) for s in ("s", "anon", "new")],
            engine.store.is_decided(parsed.id),
        )
        assert after == before
        assert plan.decision == again.decision
        assert engine.decide(parsed) == plan.decision


class TestSessions:
    def test_keep_leaves_anonymous_apart(self) -> None:
        """on_identify: keep leaves the session's anonymous profile (and its activity) apart."""
        engine = engine_for()
        t = engine.track("vote", session="s", id="t1", ts=TS)
        d = ident(engine, "i1", user_id="u1")
        assert d.created is True
        assert "anonymous.kept" in d.codes
        assert row(engine, t.profile)["state"] == "active"
        assert row(engine, t.profile)["activity"] == ["t1"]

    def test_promotion_keeps_the_inline_email(self, tmp_path: Path) -> None:
        """Promoted by an identify without email, the profile keeps the email typed earlier."""
        engine = engine_for(tmp_path, "anonymous: {on_identify: merge}\n")
        t = engine.track("vote", session="s", id="t1", ts=TS, email="Ada@Example.com")
        d = ident(engine, "i1", user_id="u1")
        assert (d.profile, d.created) == (t.profile, False)
        assert row(engine, d.profile)["email"] == "Ada@example.com"
        again = ident(engine, "i2", session="other", email="ada@EXAMPLE.com")
        assert again.profile == d.profile and "match.email" in again.codes

    def test_merge_promotes_when_new(self, tmp_path: Path) -> None:
        """merge: a new identity takes over the anonymous profile itself (same id)."""
        engine = engine_for(tmp_path, "anonymous: {on_identify: merge}\n")
        t = engine.track("vote", session="s", id="t1", ts=TS)
        d = ident(engine, "i1", user_id="u1")
        assert (d.profile, d.created, d.merged) == (t.profile, False, ())
        assert d.codes == ["anonymous.promoted"]
        assert row(engine, d.profile)["anonymous"] is False

    def test_merge_folds_into_existing(self, tmp_path: Path) -> None:
        """merge: into an existing profile, the anonymous one is folded with its activity."""
        engine = engine_for(tmp_path, "anonymous: {on_identify: merge}\n")
        a = ident(engine, "i0", session="other", user_id="u1")
        t = engine.track("vote", session="s", id="t1", ts=TS)
        d = ident(engine, "i1", user_id="u1")
        assert (d.profile, d.merged) == (a.profile, (t.profile,))
        assert "anonymous.merged" in d.codes
        folded = row(engine, t.profile)
        assert (folded["state"], folded["merged_into"]) == ("merged", a.profile)
        assert row(engine, a.profile)["activity"] == ["t1"]

    def test_merge_never_merges_identified(self, tmp_path: Path) -> None:
        """Switching between two identified users never merges them (merge.blocked)."""
        engine = engine_for(tmp_path, "anonymous: {on_identify: merge}\n")
        a = ident(engine, "i1", user_id="u1")
        b = ident(engine, "i2", user_id="u2")
        assert b.merged == ()
        assert "session.switched" in b.codes
        assert "merge.blocked" in b.codes
        assert row(engine, a.profile)["state"] == "active"

    def test_clear_discards(self, tmp_path: Path) -> None:
        """clear: the session's anonymous profile is discarded."""
        engine = engine_for(tmp_path, "anonymous: {on_identify: clear}\n")
        t = engine.track("vote", session="s", id="t1", ts=TS)
        d = ident(engine, "i1", user_id="u1")
        assert "anonymous.cleared" in d.codes
        assert row(engine, t.profile)["state"] == "cleared"

    def test_logout_restores_the_anonymous_profile(self) -> None:
        """after_logout: restore: after logout the session acts as its old anonymous profile."""
        engine = engine_for()
        t = engine.track("vote", session="s", id="t1", ts=TS)
        ident(engine, "i1", user_id="u1")
        assert engine.logout(session="s", id="l1", ts=TS).outcome == "logged_out"
        after = engine.track("vote", session="s", id="t2", ts=TS)
        assert after.profile == t.profile
        assert after.created is False

    def test_logout_new(self, tmp_path: Path) -> None:
        """after_logout: new: after logout the session starts a fresh anonymous profile."""
        engine = engine_for(tmp_path, "anonymous: {after_logout: new}\n")
        t = engine.track("vote", session="s", id="t1", ts=TS)
        ident(engine, "i1", user_id="u1")
        engine.logout(session="s", id="l1", ts=TS)
        after = engine.track("vote", session="s", id="t2", ts=TS)
        assert after.profile != t.profile
        assert after.created is True

    def test_anonymous_outcome_acts_like_logout(self) -> None:
        """An anonymous identify leaves the session acting as its anonymous profile."""
        engine = engine_for()
        t = engine.track("vote", session="s", id="t1", ts=TS)
        ident(engine, "i1", user_id="u1")
        d = ident(engine, "i2", user_id=" bad")
        assert (d.outcome, d.profile) == ("anonymous", t.profile)
        assert engine.track("vote", session="s", id="t2", ts=TS).profile == t.profile

    def test_anonymous_without_session_has_no_profile(self) -> None:
        """An anonymous call without a session resolves to no profile and stores nothing."""
        engine = engine_for()
        d = ident(engine, "i1", session=None, user_id=" bad")
        assert (d.outcome, d.profile) == ("anonymous", None)
        assert rows(engine) == []

    def test_claimed_anonymous_profile_detaches_its_sessions(self) -> None:
        """Another session claiming an anonymous profile by its email detaches its session."""
        engine = engine_for()
        t = engine.track("vote", session="s1", email="a@example.com", id="t1", ts=TS)
        d = ident(engine, "i1", session="s2", user_id="u1", email="a@example.com")
        assert (d.profile, d.codes) == (t.profile, ["match.email", "identifier.attached"])
        assert row(engine, t.profile)["sessions"] == ["s2"]
        after = engine.track("vote", session="s1", id="t2", ts=TS)
        assert after.created is True
        assert after.profile != t.profile

    def test_claiming_a_kept_anonymous_profile_does_not_log_its_session_out(self) -> None:
        """A session identified as u1 stays u1 when another session claims its old anon profile."""
        engine = engine_for()
        engine.track("vote", session="s1", email="a@example.com", id="t1", ts=TS)
        u1 = ident(engine, "i1", session="s1", user_id="u1", email="a@example.com")
        assert "anonymous.kept" in u1.codes
        ident(engine, "i2", session="s3", email="a@example.com")  # claims the kept anon profile
        after = engine.track("vote", session="s1", id="t2", ts=TS)
        assert (after.profile, after.created) == (u1.profile, False)
        assert row(engine, u1.profile)["sessions"] == ["s1"]

    def test_ttl_expires_anonymous_profile(self) -> None:
        """An anonymous profile unused for longer than ttl_days expires."""
        engine = engine_for()
        t = engine.track("vote", session="s", id="t1", ts="2026-03-01T00:00:00Z")
        d = engine.track("vote", session="s", id="t2", ts="2026-03-08T00:00:01Z")
        assert d.profile != t.profile
        assert d.codes[0] == "anonymous.expired"
        assert row(engine, t.profile)["state"] == "expired"

    def test_ttl_counts_from_last_activity(self) -> None:
        """ttl_days counts from the last activity, not from creation."""
        engine = engine_for()
        t = engine.track("vote", session="s", id="t1", ts="2026-03-01T00:00:00Z")
        engine.track("vote", session="s", id="t2", ts="2026-03-07T00:00:00Z")
        d = engine.track("vote", session="s", id="t3", ts="2026-03-13T00:00:00Z")
        assert d.profile == t.profile


class TestProtectVerified:
    def test_unverified_call_may_not_act_as_verified_profile(self, tmp_path: Path) -> None:
        """protect_verified: an unverified call resolving to a verified profile is refused."""
        engine = engine_for(tmp_path, "verification: {mode: optional}\n")
        signature = hmac.new(SECRET.encode(), b"u1", hashlib.sha256).digest()
        good = ident(engine, "i1", user_id="u1", userAuthToken=base64.b64encode(signature).decode())
        assert good.identity is not None and good.identity.verified is True
        before = snapshot(engine)
        d = ident(engine, "i2", session="t", user_id="u1")
        assert d.outcome == "rejected"
        assert "auth.protected_profile" in d.codes
        assert snapshot(engine) == before


class TestUserIdsStayUnique:
    def test_attach_never_duplicates_a_user_id(self, tmp_path: Path) -> None:
        """Attaching a user id by email must not create a second active holder of that id."""
        engine = engine_for(tmp_path, "matching:\n  precedence: [email, user_id]\n")
        ident(engine, "e1", session="s1", user_id="u1")
        ident(engine, "e2", session="s2", email="a@example.com")
        ident(engine, "e3", session="s3", user_id="u1", email="a@example.com")
        holders = [r for r in rows(engine) if r["state"] == "active" and r["user_id"] == "u1"]
        assert len(holders) == 1
