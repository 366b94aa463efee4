"""The ``audit`` section (README "Redaction"): how decisions show the emails and names they
carry. ``keep`` shows them, ``mask`` keeps a hint, ``hash`` replaces them by a keyed HMAC
(``hmac:`` + 16 hex digits) that correlates one address whatever its case. The store and the
export keep the real values; only the decision is redacted."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest

from idrules import Decision, Engine, SecretsError, export_rows, load_ruleset

AUDIT_KEY = "audit-key-for-redaction-tests-0123456789abcdef"
OTHER_KEY = "another-audit-key-for-the-tests-0123456789abcd"
HMAC = re.compile(r"hmac:[0-9a-f]{16}")
_IDS = itertools.count(1)


def engine(tmp_path: Path, emails: str = "keep", names: str = "keep", **secrets: str) -> Engine:
    """helpshift with an ``audit`` override; secrets given in code, none from the env."""
    rules = tmp_path / f"audit-{emails}-{names}.yaml"
    rules.write_text(f"extends: helpshift\naudit: {{emails: {emails}, names: {names}}}\n")
    return Engine(load_ruleset(rules), secrets=secrets, environ={})


def identify(e: Engine, session: str = "s1", **payload: str) -> Decision:
    return e.identify(payload, session=session, id=f"e{next(_IDS)}", ts="2026-03-01T12:00:00Z")


class TestKeep:
    """``keep`` (the default) shows emails and names as normalised."""

    def test_values_shown(self, tmp_path: Path) -> None:
        """The identity carries the normalised email and the name, unchanged."""
        d = identify(engine(tmp_path), userId="u_1", userEmail="Ada@Example.COM", userName="Ada")
        assert d.identity is not None
        assert (d.identity.email, d.identity.name) == ("Ada@example.com", "Ada")

    def test_no_key_needed(self, tmp_path: Path) -> None:
        """Nothing hashed: no audit secret is read (an engine starts without one)."""
        identify(engine(tmp_path, "keep", "keep"), userId="u_1", userEmail="ada@example.com")


class TestMask:
    """``mask`` keeps the first character of each part and the email's domain."""

    def test_email_and_name_masked(self, tmp_path: Path) -> None:
        """``Ada@example.com`` shows as ``A***@example.com``, ``Ada Lovelace`` as ``A*** L***``."""
        e = engine(tmp_path, "mask", "mask")
        d = identify(e, userId="u_1", userEmail="Ada@Example.com", userName="Ada Lovelace")
        assert d.identity is not None
        assert (d.identity.email, d.identity.name) == ("A***@example.com", "A*** L***")
        assert "Ada@" not in d.to_json() and "Lovelace" not in d.to_json()

    def test_mask_needs_no_key(self, tmp_path: Path) -> None:
        """Masking reads no secret: an engine starts without the audit key."""
        d = identify(engine(tmp_path, "mask", "mask"), userId="u_1", userEmail="bo@example.com")
        assert d.identity is not None and d.identity.email == "b***@example.com"

    def test_store_keeps_the_real_values(self, tmp_path: Path) -> None:
        """Only the decision is redacted: the export holds the address and the name."""
        e = engine(tmp_path, "mask", "mask")
        identify(e, userId="u_1", userEmail="ada@example.com", userName="Ada")
        (row,) = export_rows(e.store)
        assert (row["email"], row["name"]) == ("ada@example.com", "Ada")


class TestHash:
    """``hash``: a keyed HMAC, ``hmac:`` + 16 hex digits, the same for one address in any case."""

    def test_shape(self, tmp_path: Path) -> None:
        """Email and name become ``hmac:`` + 16 lower-case hex digits; neither is readable."""
        e = engine(tmp_path, "hash", "hash", audit=AUDIT_KEY)
        d = identify(e, userId="u_1", userEmail="ada@example.com", userName="Ada")
        assert d.identity is not None
        assert HMAC.fullmatch(d.identity.email or "") and HMAC.fullmatch(d.identity.name or "")
        assert "ada@" not in d.to_json() and '"Ada"' not in d.to_json()

    def test_case_does_not_break_correlation(self, tmp_path: Path) -> None:
        """``Ada@Example.com`` and ``ada@example.com`` hash alike: one address, one value."""
        e = engine(tmp_path, "hash", "keep", audit=AUDIT_KEY)
        upper = identify(e, userId="u_1", userEmail="Ada@Example.com")
        lower = identify(e, "s2", userId="u_2", userEmail="ada@example.com")
        assert upper.identity is not None and lower.identity is not None
        assert upper.identity.email == lower.identity.email
        assert HMAC.fullmatch(upper.identity.email or "")

    def test_different_addresses_differ(self, tmp_path: Path) -> None:
        """Two different addresses never share a hash."""
        e = engine(tmp_path, "hash", "keep", audit=AUDIT_KEY)
        a = identify(e, userId="u_1", userEmail="ada@example.com")
        b = identify(e, "s2", userId="u_2", userEmail="bob@example.com")
        assert a.identity is not None and b.identity is not None
        assert a.identity.email != b.identity.email

    def test_keyed(self, tmp_path: Path) -> None:
        """Another key gives another value: nobody without the key can test a guess."""
        one = identify(engine(tmp_path, "hash", audit=AUDIT_KEY), userEmail="ada@example.com")
        two = identify(engine(tmp_path, "hash", audit=OTHER_KEY), userEmail="ada@example.com")
        assert one.identity is not None and two.identity is not None
        assert one.identity.email != two.identity.email

    @pytest.mark.parametrize(("emails", "names"), [("hash", "keep"), ("keep", "hash")])
    def test_key_required_when_hashing(self, tmp_path: Path, emails: str, names: str) -> None:
        """Hashing either field needs the audit secret; its absence names the variable."""
        with pytest.raises(SecretsError, match="IDRULES_SECRET_AUDIT"):
            engine(tmp_path, emails, names)

    def test_short_key_refused(self, tmp_path: Path) -> None:
        """The audit secret is held to the same 32-byte minimum, and never shown."""
        with pytest.raises(SecretsError, match="32") as caught:
            engine(tmp_path, "hash", audit="too-short")
        assert "too-short" not in str(caught.value)


class TestInvalidEmailDetail:
    """email-validator's messages may quote the address: hidden unless emails are kept."""

    @pytest.mark.parametrize("emails", ["mask", "hash"])
    def test_detail_redacted(self, tmp_path: Path, emails: str) -> None:
        """An email.invalid reason says the check failed, without any part of the address."""
        e = engine(tmp_path, emails, audit=AUDIT_KEY)
        d = identify(e, userId="u_1", userEmail="zed-secretive@@example..com")
        (reason,) = [r for r in d.reasons if r.code == "email.invalid"]
        assert reason.detail is not None and "redacted" in reason.detail
        assert "zed" not in d.to_json() and "secretive" not in d.to_json()

    def test_detail_kept_with_keep(self, tmp_path: Path) -> None:
        """With emails kept, the reason keeps email-validator's own explanation."""
        d = identify(engine(tmp_path), userId="u_1", userEmail="zed@@example..com")
        (reason,) = [r for r in d.reasons if r.code == "email.invalid"]
        assert reason.detail is not None and "redacted" not in reason.detail
