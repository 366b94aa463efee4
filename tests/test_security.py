"""Security laws of resolution: nobody becomes or locks out another person."""

from __future__ import annotations

from pathlib import Path

from support import Run, hmac_b64, hmac_hex

from idrules import SqliteStore


def helpshift_verified_by_email(tmp_path: Path) -> Path:
    """Helpshift Identity Verification over the email (base64 HMAC of ``{email}``)."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "extends: helpshift\n"
        "verification: {mode: required, method: hmac, "
        'hmac: {message: "{email}", encoding: base64}}\n'
    )
    return rules


class TestNoTakeoverByCaseFolding:
    """A different address that full case folding would join never reaches the profile."""

    def test_other_domain_is_another_person(self, tmp_path: Path) -> None:
        """admin@straße.de (verified) does not resolve to admin@strasse.de's profile."""
        run = Run(str(helpshift_verified_by_email(tmp_path)))
        victim = run.identify(
            {"userEmail": "admin@strasse.de", "userAuthToken": hmac_b64("admin@strasse.de")},
            session="victim",
        )
        attacker_email = "admin@xn--strae-oqa.de"
        attacker = run.identify(
            {"userEmail": attacker_email, "userAuthToken": hmac_b64(attacker_email)},
            session="attacker",
        )
        assert victim.outcome == attacker.outcome == "identified"
        assert attacker.created and attacker.profile != victim.profile
        assert "match.email" not in attacker.codes
        vote = run.track("vote", session="attacker")
        assert victim.profile is not None
        assert vote.event_id not in run.rows()[victim.profile]["activity"]

    def test_long_s_is_another_mailbox(self) -> None:
        """ſam@example.com is not sam@example.com."""
        run = Run("helpshift")
        sam = run.identify({"userEmail": "sam@example.com"}, session="a")
        other = run.identify({"userEmail": "ſam@example.com"}, session="b")
        assert other.created and other.profile != sam.profile

    def test_case_still_matches(self) -> None:
        """SAM@Example.COM is sam@example.com."""
        run = Run("helpshift")
        sam = run.identify({"userEmail": "sam@example.com"}, session="a")
        again = run.identify({"userEmail": "SAM@Example.COM"}, session="b")
        assert again.profile == sam.profile and "match.email" in again.codes


class TestUnsignedValues:
    """A value the proof does not cover neither refuses a verified caller nor moves it."""

    def test_typed_email_cannot_lock_out_its_owner(self) -> None:
        """strict: mallory, signed, typing ceo's email neither locks ceo out nor becomes ceo."""
        run = Run("strict")
        mallory = run.identify(
            {"user_id": "mallory", "email": "ceo@bigcorp.com", "signature": hmac_hex("mallory")},
            session="m",
        )
        ceo = run.identify(
            {"user_id": "ceo", "email": "ceo@bigcorp.com", "signature": hmac_hex("ceo")},
            session="c",
        )
        assert mallory.outcome == ceo.outcome == "identified"
        assert ceo.created and ceo.profile != mallory.profile
        assert "conflict.email_other_user_id" not in ceo.codes
        again = run.identify(
            {"user_id": "ceo", "email": "ceo@bigcorp.com", "signature": hmac_hex("ceo")},
            session="c2",
        )
        assert again.outcome == "identified" and again.profile == ceo.profile

    def test_typed_email_cannot_become_its_owner(self) -> None:
        """userjot, signed over the id: an unsigned email does not reach the email's profile."""
        run = Run("userjot")
        owner = run.identify({"id": "ceo", "email": "ceo@bigcorp.com"}, session="c")
        fb = run.track("feedback", session="kiosk", email="boss@bigcorp.com")
        signed = run.identify(
            {"id": "mallory", "email": "boss@bigcorp.com", "signature": hmac_hex("mallory")},
            session="m",
        )
        assert signed.outcome == "identified" and signed.profile != fb.profile
        assert "match.email" not in signed.codes
        other = run.identify(
            {"id": "mallory2", "email": "ceo@bigcorp.com", "signature": hmac_hex("mallory2")},
            session="m2",
        )
        assert other.profile != owner.profile

    def test_unsigned_value_is_kept_without_a_key(self) -> None:
        """The profile keeps the typed email as a contact value, not as a match key."""
        run = Run("strict")
        d = run.identify(
            {"user_id": "u_1", "email": "Ada@Example.com", "signature": hmac_hex("u_1")}
        )
        assert d.identity is not None and d.identity.email == "Ada@example.com"
        assert run.rows()[str(d.profile)]["email"] == "Ada@example.com"
        stored = run.engine.store.profile(str(d.profile))
        assert stored is not None and stored.email_key is None and stored.user_key == "u_1"

    def test_signed_email_is_a_key(self, tmp_path: Path) -> None:
        """An email the signature covers is matched as before."""
        run = Run(str(helpshift_verified_by_email(tmp_path)))
        first = run.identify(
            {"userEmail": "ada@example.com", "userAuthToken": hmac_b64("ada@example.com")},
            session="a",
        )
        again = run.identify(
            {"userEmail": "ADA@example.com", "userAuthToken": hmac_b64("ADA@example.com")},
            session="b",
        )
        assert again.profile == first.profile and "match.email" in again.codes


class TestOldStoresRekeyed:
    """A store written with case-folded keys is re-keyed when opened for writing."""

    def test_rekey_splits_folded_keys(self, tmp_path: Path) -> None:
        """Two profiles joined by a folded key get their own keys, with a one-line note."""
        path = tmp_path / "old.db"
        store = SqliteStore(path)
        run = Run("helpshift")
        run.engine.store = store
        a = run.identify({"userEmail": "sam@example.com"}, session="a")
        b = run.identify({"userEmail": "ſam@example.com"}, session="b")
        store.close()
        import sqlite3

        with sqlite3.connect(path) as conn:  # as version 3 wrote them
            conn.execute("UPDATE profiles SET email_key='sam@example.com'")
            conn.execute("UPDATE meta SET value='3' WHERE key='schema_version'")
        reopened = SqliteStore(path)
        try:
            assert len(reopened.notes) == 1
            note = reopened.notes[0]
            assert "re-keyed" in note and str(a.profile) in note and str(b.profile) in note
            keys = {p.id: p.email_key for p in reopened.profiles()}
            assert keys[str(a.profile)] == "sam@example.com"
            assert keys[str(b.profile)] == "ſam@example.com"
        finally:
            reopened.close()
        again = SqliteStore(path)
        assert again.notes == []  # idempotent
        again.close()
