"""Decisions that explain themselves: every outcome names the rule behind it."""

from __future__ import annotations

from pathlib import Path

from support import Run, cites, hmac_hex


class TestLogout:
    """A logout cites anonymous.after_logout and says what the session acts as now."""

    def test_logout_restores(self) -> None:
        """helpshift (restore): the decision says the session acts as its anonymous profile."""
        run = Run("helpshift")
        anon = run.track()
        run.identify({"userId": "u1"})
        d = run.logout()
        assert d.outcome == "logged_out"
        reason = cites(d, "session.logged_out", "anonymous.after_logout", "helpshift")
        assert str(anon.profile) in reason.detail

    def test_logout_starts_afresh(self) -> None:
        """strict (new): the decision says the session starts a fresh anonymous state."""
        run = Run("strict")
        run.identify({"user_id": "u1", "signature": hmac_hex("u1")})
        d = run.logout()
        reason = cites(d, "session.logged_out", "anonymous.after_logout", "strict")
        assert "fresh" in reason.detail

    def test_identify_null_of_an_unknown_session(self) -> None:
        """identify(null) from a session never seen still names its rule."""
        d = Run("userjot").identify(None, session="new")
        assert d.outcome == "logged_out"
        cites(d, "session.logged_out", "anonymous.after_logout", "userjot")

    def test_track_after_logout_cites_after_logout(self) -> None:
        """The anonymous profile a track starts after a logout cites after_logout."""
        run = Run("strict")
        run.identify({"user_id": "u1", "signature": hmac_hex("u1")})
        run.logout()
        d = run.track()
        assert d.created
        cites(d, "anonymous.created", "anonymous.after_logout", "strict")

    def test_first_track_cites_anonymous(self) -> None:
        """A session's very first anonymous profile cites the anonymous section."""
        d = Run("strict").track()
        cites(d, "anonymous.created", "anonymous", "strict")


class TestFailedProofIdentity:
    """When proof is what failed, the identity holds none of the claimed values."""

    def test_anonymous_after_failed_proof(self, tmp_path: Path) -> None:
        """on_failure: anonymous leaves no claimed user id in the identity."""
        rules = tmp_path / "r.yaml"
        rules.write_text("extends: strict\nverification: {on_failure: anonymous}\n")
        d = Run(str(rules)).identify({"user_id": "admin", "signature": hmac_hex("other")})
        assert d.outcome == "anonymous"
        assert d.identity is not None and d.identity.to_dict() == {
            "user_id": None,
            "email": None,
            "name": None,
            "avatar": None,
            "verified": False,
        }

    def test_rejected_after_failed_proof(self) -> None:
        """A refused forgery does not echo the identity it claimed."""
        d = Run("strict").identify(
            {"user_id": "admin", "email": "a@example.com", "signature": hmac_hex("x")}
        )
        assert d.outcome == "rejected"
        assert d.identity is not None and d.identity.user_id is None and d.identity.email is None

    def test_field_failures_keep_passing_values(self) -> None:
        """A field that failed its own check does not hide the values that passed."""
        d = Run("helpshift").identify({"userId": " padded", "userEmail": "a@example.com"})
        assert d.outcome == "anonymous"
        assert d.identity is not None and d.identity.email == "a@example.com"
