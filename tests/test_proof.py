"""Security tests of the proof stage (docs/rules.md "Verification"): HMAC and JWT proofs, failure
policies, modes, rotation, protected profiles, secrets, and that no secret, signature or token
ever leaks into a decision, an export line or the command line's output."""

from __future__ import annotations

import base64
import json
import os
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import cli_support
import jwt
import pytest
import support
from support import (
    PREVIOUS,
    SECRET,
    SECRETS,
    T0_S,
    b64url,
    hmac_b64,
    hmac_hex,
    iso,
    override,
    raw_token,
    reason,
    token,
)

from idrules import Decision, Engine, RulesError, SecretsError, export_rows, load_ruleset

OTHER = "an0ther-widget-secret-0123456789abcdef"
REGISTERED = ("iss", "sub", "aud", "exp", "nbf", "iat", "jti")


# --------------------------------------------------------------------------------------------
# helpers


def qb_claims(**extra: Any) -> dict[str, Any]:
    """Quackback claims valid at T0 (5 minutes, as the vendor recommends)."""
    claims: dict[str, Any] = {
        "sub": "u_1",
        "email": "ada@example.com",
        "name": "Ada",
        "iat": T0_S,
        "exp": T0_S + 300,
    }
    claims.update(extra)
    return {k: v for k, v in claims.items() if v is not None}


#: an override written to ``tmp_path / "rules.yaml"`` and loaded
rules = partial(override, name="rules.yaml")


class Run(support.Run):
    """support.Run, whose rows() are the export in creation order (a list)."""

    def rows(self) -> list[dict[str, Any]]:  # type: ignore[override]
        return self.export()


def assert_refused(decision: Decision, code: str, knob: str, field: str | None = None) -> None:
    """Rejected with ``code``, citing the ``verification.<knob>`` knob (file:line knob)."""
    assert decision.outcome == "rejected", decision.to_json()
    assert decision.profile is None
    r = reason(decision, code)
    assert r.rule is not None and r.rule.endswith(f" verification.{knob}"), r.rule
    assert ".yaml:" in r.rule
    if field is not None:
        assert r.field == field
    assert "auth.verified" not in decision.codes


def assert_verified(decision: Decision, key: str = "current") -> None:
    assert decision.outcome == "identified", decision.to_json()
    assert decision.identity is not None and decision.identity.verified is True
    r = reason(decision, "auth.verified")
    assert r.rule is not None and " verification." in r.rule
    assert r.detail is not None and r.detail.split(";")[0] == f"key {key}"


def strict_with(tmp_path: Path, verification: str) -> Any:
    return rules(tmp_path, f"extends: strict\nverification: {verification}\n")


# --------------------------------------------------------------------------------------------
# HMAC


class TestHmacEncoding:
    """verification.hmac.encoding: hex (case-insensitive) and base64."""

    def test_hex_signature_verifies(self) -> None:
        """strict: the hex HMAC-SHA256 of the user id verifies and names the key."""
        run = Run("strict")
        d = run.identify({"user_id": "u_1", "signature": hmac_hex("u_1")})
        assert_verified(d)
        assert d.identity is not None and d.identity.user_id == "u_1"

    def test_hex_compared_case_insensitively(self) -> None:
        """Hex signatures are decoded to bytes first: upper-case hex verifies too."""
        run = Run("strict")
        assert_verified(run.identify({"user_id": "u_1", "signature": hmac_hex("u_1").upper()}))
        mixed = "".join(c.upper() if i % 2 else c for i, c in enumerate(hmac_hex("u_2")))  # aBcD...
        assert_verified(run.identify({"user_id": "u_2", "signature": mixed}, session="s2"))

    def test_base64_override_of_strict_verifies(self, tmp_path: Path) -> None:
        """strict + encoding base64: the base64 HMAC verifies; the hex one is the wrong shape."""
        run = Run(strict_with(tmp_path, "{hmac: {encoding: base64}}"))
        assert_verified(run.identify({"user_id": "u_1", "signature": hmac_b64("u_1")}))
        d = run.identify({"user_id": "u_1", "signature": hmac_hex("u_1")}, session="s2")
        assert_refused(d, "auth.invalid", "hmac.encoding", "signature")

    def test_base64_override_of_lumio_verifies(self, tmp_path: Path) -> None:
        """lumio + encoding base64: same HMAC, base64 text (padded and unpadded)."""
        ruleset = rules(tmp_path, "extends: lumio\nverification: {hmac: {encoding: base64}}\n")
        run = Run(ruleset)
        sig = hmac_b64("user_123")
        assert sig.endswith("=")
        assert_verified(run.identify({"userId": "user_123", "signature": sig}))
        assert_verified(run.identify({"userId": "user_123", "signature": sig.rstrip("=")}))
        d = run.identify({"userId": "user_123", "signature": hmac_hex("user_123")})
        assert_refused(d, "auth.invalid", "hmac.encoding", "signature")

    def test_base64_tampered_refused(self, tmp_path: Path) -> None:
        """A base64 signature with a changed leading character does not verify."""
        run = Run(strict_with(tmp_path, "{hmac: {encoding: base64}}"))
        sig = hmac_b64("u_1")
        tampered = ("B" if sig[0] != "B" else "C") + sig[1:]
        d = run.identify({"user_id": "u_1", "signature": tampered})
        assert_refused(d, "auth.invalid", "hmac.message", "signature")


class TestHmacMessage:
    """verification.hmac.message: the template filled with the values as sent."""

    def test_user_id_signed_as_sent_before_normalisation(self, tmp_path: Path) -> None:
        """{user_id} takes the id as sent: ' u_1 ' (stripped later) is signed with its spaces."""
        ruleset = rules(tmp_path, "extends: strict\nfields: {user_id: {whitespace: strip}}\n")
        run = Run(ruleset)
        d = run.identify({"user_id": " u_1 ", "signature": hmac_hex(" u_1 ")})
        assert_verified(d)
        assert d.identity is not None and d.identity.user_id == "u_1"
        d = run.identify({"user_id": " u_1 ", "signature": hmac_hex("u_1")}, session="s2")
        assert_refused(d, "auth.invalid", "hmac.message", "signature")

    def test_email_signed_as_sent(self, tmp_path: Path) -> None:
        """{email}: an email with an upper-case domain is signed as sent, stored normalised."""
        run = Run(strict_with(tmp_path, '{hmac: {message: "{email}"}}'))
        sent = "Ada@EXAMPLE.COM"
        d = run.identify({"user_id": "u_1", "email": sent, "signature": hmac_hex(sent)})
        assert_verified(d)
        assert d.identity is not None and d.identity.email == "Ada@example.com"
        d = run.identify(
            {"user_id": "u_1", "email": sent, "signature": hmac_hex("Ada@example.com")},
            session="s2",
        )
        assert_refused(d, "auth.invalid", "hmac.message", "signature")

    def test_user_id_and_email_template(self, tmp_path: Path) -> None:
        """{user_id}:{email} joins both values as sent, with the literal colon."""
        run = Run(strict_with(tmp_path, '{hmac: {message: "{user_id}:{email}"}}'))
        sent = {"user_id": "u_1", "email": "Ada@EXAMPLE.COM"}
        assert_verified(run.identify({**sent, "signature": hmac_hex("u_1:Ada@EXAMPLE.COM")}))
        for wrong in ("u_1Ada@EXAMPLE.COM", "u_1:Ada@example.com", "u_1", "Ada@EXAMPLE.COM:u_1"):
            d = run.identify({**sent, "signature": hmac_hex(wrong)}, session="s2")
            assert_refused(d, "auth.invalid", "hmac.message", "signature")

    def test_missing_field_is_the_empty_string(self, tmp_path: Path) -> None:
        """A field the call does not carry (or sends as null) fills the template with ''."""
        run = Run(strict_with(tmp_path, '{hmac: {message: "{user_id}:{email}"}}'))
        assert_verified(run.identify({"user_id": "u_1", "signature": hmac_hex("u_1:")}))
        assert_verified(
            run.identify({"user_id": "u_1", "email": None, "signature": hmac_hex("u_1:")})
        )
        for wrong in ("u_1:None", "u_1:null", "u_1"):
            d = run.identify({"user_id": "u_1", "signature": hmac_hex(wrong)}, session="s2")
            assert_refused(d, "auth.invalid", "hmac.message", "signature")

    def test_a_remembered_signature_never_verifies_a_call_it_does_not_cover(
        self, tmp_path: Path
    ) -> None:
        """HMAC("") verified for user id "" is not reused for an email-only call."""
        ruleset = rules(tmp_path, "extends: strict\nfields: {user_id: {required: false}}\n")
        run = Run(ruleset)
        first = run.identify({"user_id": "", "email": "a@example.com", "signature": hmac_hex("")})
        assert "auth.verified" in first.codes  # the proof held (the blocked id is refused later)
        d = run.identify({"email": "victim@example.com", "signature": hmac_hex("")}, session="s2")
        assert_refused(d, "auth.invalid", "hmac.message", "signature")
        assert "auth.verified" not in d.codes

    def test_non_string_value_is_its_json_text(self, tmp_path: Path) -> None:
        """A number is signed as its JSON text: user id 42 (type scalar) signs '42'."""
        ruleset = rules(tmp_path, "extends: strict\nfields: {user_id: {type: scalar}}\n")
        run = Run(ruleset)
        d = run.identify({"user_id": 42, "signature": hmac_hex("42")})
        assert_verified(d)
        assert d.identity is not None and d.identity.user_id == "42"
        d = run.identify({"user_id": 42, "signature": hmac_hex("42.0")}, session="s2")
        assert_refused(d, "auth.invalid", "hmac.message")

    def test_boolean_value_is_its_json_text(self, tmp_path: Path) -> None:
        """{user_id}:{name} with name true signs 'u_1:true' (the name itself is then dropped)."""
        run = Run(strict_with(tmp_path, '{hmac: {message: "{user_id}:{name}"}}'))
        d = run.identify({"user_id": "u_1", "name": True, "signature": hmac_hex("u_1:true")})
        assert_verified(d)
        assert "name.invalid_type" in d.codes
        d = run.identify(
            {"user_id": "u_1", "name": True, "signature": hmac_hex("u_1:True")}, session="s2"
        )
        assert_refused(d, "auth.invalid", "hmac.message")


class TestHmacTampering:
    """Tampered or malformed HMAC proofs are refused, citing a verification knob."""

    def test_tampered_payload_refused(self) -> None:
        """A valid signature for u_1 does not cover a payload whose user id became u_2."""
        run = Run("strict")
        d = run.identify({"user_id": "u_2", "signature": hmac_hex("u_1")})
        assert_refused(d, "auth.invalid", "hmac.message", "signature")
        assert d.identity is not None and d.identity.verified is False
        assert run.rows() == []

    def test_tampered_signature_refused(self) -> None:
        """One flipped hex digit of a valid signature is refused."""
        run = Run("strict")
        sig = hmac_hex("u_1")
        flipped = sig[:10] + ("0" if sig[10] != "0" else "1") + sig[11:]
        assert_refused(
            run.identify({"user_id": "u_1", "signature": flipped}), "auth.invalid", "hmac.message"
        )
        assert run.rows() == []

    def test_signature_of_another_user_refused(self) -> None:
        """u_2's genuine signature sent with u_2's payload verifies, not with u_1's."""
        run = Run("strict")
        assert_verified(run.identify({"user_id": "u_2", "signature": hmac_hex("u_2")}))
        d = run.identify({"user_id": "u_1", "signature": hmac_hex("u_2")}, session="s2")
        assert_refused(d, "auth.invalid", "hmac.message", "signature")
        assert run.by_user("u_1") is None

    def test_signature_with_another_secret_refused(self) -> None:
        """A signature made with another widget's secret does not verify."""
        run = Run("strict")
        d = run.identify({"user_id": "u_1", "signature": hmac_hex("u_1", OTHER)})
        assert_refused(d, "auth.invalid", "hmac.message", "signature")

    @pytest.mark.parametrize(
        "shape",
        [
            pytest.param(lambda s: s[:-1], id="63-hex-digits"),
            pytest.param(lambda s: s[:32], id="half-length"),
            pytest.param(lambda s: s + "0", id="65-hex-digits"),
            pytest.param(lambda s: s + "00", id="66-hex-digits"),
            pytest.param(lambda s: "g" + s[1:], id="non-hex-digit"),
            pytest.param(lambda s: "0x" + s[2:], id="0x-prefix"),
            pytest.param(lambda s: " " + s, id="leading-space"),
            pytest.param(lambda s: s + "\n", id="trailing-newline"),
            pytest.param(lambda s: "", id="empty"),
            pytest.param(lambda s: base64.b64encode(bytes.fromhex(s)).decode(), id="base64"),
            pytest.param(lambda s: "sha256=" + s, id="prefixed"),
        ],
    )
    def test_wrong_shape_refused(self, shape: Any) -> None:
        """A signature of the wrong shape is auth.invalid, citing hmac.encoding."""
        run = Run("strict")
        d = run.identify({"user_id": "u_1", "signature": shape(hmac_hex("u_1"))})
        assert_refused(d, "auth.invalid", "hmac.encoding", "signature")
        assert run.rows() == []

    @pytest.mark.parametrize(
        "value",
        [
            pytest.param(12345, id="number"),
            pytest.param(0, id="zero"),
            pytest.param(True, id="boolean"),
            pytest.param([hmac_hex("u_1")], id="list"),
            pytest.param({"signature": hmac_hex("u_1")}, id="object"),
        ],
    )
    def test_non_string_signature_refused(self, value: Any) -> None:
        """A signature that is not a string (number, list, object) is auth.invalid."""
        run = Run("strict")
        d = run.identify({"user_id": "u_1", "signature": value})
        assert_refused(d, "auth.invalid", "hmac.encoding", "signature")
        assert run.rows() == []

    def test_signature_over_no_field_refused(self, tmp_path: Path) -> None:
        """An email-only call signed over '{user_id}' (the HMAC of '') proves nothing: refused."""
        ruleset = rules(tmp_path, "extends: helpshift\nverification: {mode: required}\n")
        run = Run(ruleset)
        d = run.identify({"userEmail": "ada@example.com", "userAuthToken": hmac_b64("")})
        assert_refused(d, "auth.invalid", "hmac.message", "signature")
        assert run.rows() == []

    def test_null_signature_is_missing(self) -> None:
        """A null signature counts as absent: auth.missing, citing verification.mode."""
        run = Run("strict")
        d = run.identify({"user_id": "u_1", "signature": None})
        assert_refused(d, "auth.missing", "mode", "signature")

    def test_missing_signature_refused(self) -> None:
        """No signature at all in required mode: auth.missing (field signature)."""
        run = Run("strict")
        d = run.identify({"user_id": "u_1", "email": "ada@example.com"})
        assert_refused(d, "auth.missing", "mode", "signature")
        assert run.rows() == []


class TestOnFailure:
    """verification.on_failure: reject vs anonymous."""

    def test_reject_changes_nothing(self) -> None:
        """on_failure reject: refused, no profile, and the session keeps its previous identity."""
        run = Run("strict")
        first = run.identify({"user_id": "u_1", "signature": hmac_hex("u_1")})
        d = run.identify({"user_id": "u_2", "signature": hmac_hex("nope")})
        assert_refused(d, "auth.invalid", "hmac.message")
        assert "refused" in (reason(d, "auth.invalid").detail or "")
        assert run.track().profile == first.profile
        assert run.by_user("u_2") is None

    def test_anonymous_treats_caller_as_anonymous(self, tmp_path: Path) -> None:
        """on_failure anonymous: outcome anonymous, the session's anonymous profile, no identity."""
        run = Run(strict_with(tmp_path, "{on_failure: anonymous}"))
        d = run.identify({"user_id": "u_1", "signature": hmac_hex("forged")})
        assert d.outcome == "anonymous"
        r = reason(d, "auth.invalid")
        assert r.rule.endswith("verification.hmac.message")
        assert "anonymous" in (r.detail or "")
        rows = run.rows()
        assert [row["anonymous"] for row in rows] == [True]
        assert rows[0]["profile"] == d.profile and rows[0]["user_id"] is None

    def test_anonymous_without_session_has_no_profile(self, tmp_path: Path) -> None:
        """on_failure anonymous without a session: anonymous, profile null, nothing stored."""
        run = Run(strict_with(tmp_path, "{on_failure: anonymous}"))
        d = run.identify({"user_id": "u_1", "signature": "0" * 64}, session=None)
        assert d.outcome == "anonymous" and d.profile is None
        assert run.rows() == []

    def test_anonymous_failure_leaves_identified_session(self, tmp_path: Path) -> None:
        """A failed proof on an identified session leaves it anonymous, as a logout would."""
        run = Run(strict_with(tmp_path, "{on_failure: anonymous}"))
        account = run.identify({"user_id": "u_1", "signature": hmac_hex("u_1")})
        d = run.identify({"user_id": "u_1", "signature": hmac_hex("u_1", OTHER)})
        assert d.outcome == "anonymous" and d.profile != account.profile
        assert run.track().profile == d.profile != account.profile

    def test_missing_proof_anonymous(self, tmp_path: Path) -> None:
        """on_failure anonymous also covers a missing signature (auth.missing)."""
        run = Run(strict_with(tmp_path, "{on_failure: anonymous}"))
        d = run.identify({"user_id": "u_1"})
        assert d.outcome == "anonymous"
        assert reason(d, "auth.missing").field == "signature"


class TestOptionalMode:
    """verification.mode optional: proof checked when given."""

    def test_no_signature_is_an_unverified_identify(self, tmp_path: Path) -> None:
        """optional: a call without a signature is identified, unverified, with no auth reason."""
        run = Run(strict_with(tmp_path, "{mode: optional}"))
        d = run.identify({"user_id": "u_1"})
        assert d.outcome == "identified"
        assert d.identity is not None and d.identity.verified is False
        assert not [c for c in d.codes if c.startswith("auth.")]
        assert run.by_user("u_1")["verified"] is False  # type: ignore[index]

    def test_bad_signature_is_a_failure(self, tmp_path: Path) -> None:
        """optional: a signature that is sent but wrong is refused, not ignored."""
        run = Run(strict_with(tmp_path, "{mode: optional}"))
        d = run.identify({"user_id": "u_1", "signature": hmac_hex("u_2")})
        assert_refused(d, "auth.invalid", "hmac.message", "signature")
        d = run.identify({"user_id": "u_1", "signature": "not-a-signature"})
        assert_refused(d, "auth.invalid", "hmac.encoding", "signature")
        assert run.rows() == []

    def test_good_signature_verifies(self, tmp_path: Path) -> None:
        """optional: a valid signature verifies and the profile is stored verified."""
        run = Run(strict_with(tmp_path, "{mode: optional}"))
        assert_verified(run.identify({"user_id": "u_1", "signature": hmac_hex("u_1")}))
        assert run.by_user("u_1")["verified"] is True  # type: ignore[index]

    def test_disabled_ignores_signatures(self, tmp_path: Path) -> None:
        """disabled: even a wrong signature is not checked (and nothing claims verification)."""
        run = Run(strict_with(tmp_path, "{mode: disabled}"), secrets={})
        d = run.identify({"user_id": "u_1", "signature": "garbage"})
        assert d.outcome == "identified" and d.identity is not None
        assert d.identity.verified is False


class TestRequiredMode:
    """verification.mode required: identified calls need proof, anonymous ones never do."""

    @pytest.mark.parametrize(
        "payload",
        [
            pytest.param({}, id="empty"),
            pytest.param({"name": "Ada"}, id="name-only"),
            pytest.param({"attributes": {"plan": "pro"}}, id="attributes-only"),
            pytest.param({"signature": "0" * 64}, id="signature-only"),
        ],
    )
    def test_anonymous_caller_never_refused(self, payload: dict[str, Any]) -> None:
        """A caller with no identifiers is anonymous, never refused for lacking proof."""
        run = Run("strict")
        d = run.identify(payload)
        assert d.outcome == "anonymous"
        assert not [c for c in d.codes if c.startswith("auth.")]

    def test_identify_null_is_a_logout(self) -> None:
        """identify(null) needs no proof: it clears the identity."""
        run = Run("strict")
        run.identify({"user_id": "u_1", "signature": hmac_hex("u_1")})
        assert run.identify(None).outcome == "logged_out"

    def test_email_only_call_needs_proof(self) -> None:
        """An email is an identifier: an email-only call without signature is auth.missing."""
        run = Run("strict")
        d = run.identify({"email": "ada@example.com"})
        assert_refused(d, "auth.missing", "mode", "signature")

    def test_anonymous_track_without_email_recorded(self) -> None:
        """Anonymous activity without an inline email needs no proof."""
        run = Run("strict")
        d = run.track("vote")
        assert d.outcome == "recorded" and d.profile is not None

    def test_anonymous_track_with_inline_email_refused(self) -> None:
        """An anonymous track with an inline email is auth.missing (field email), not recorded."""
        run = Run("strict")
        d = run.track("post", email="ada@example.com")
        assert d.outcome == "rejected" and d.profile is None
        r = reason(d, "auth.missing")
        assert r.field == "email" and r.rule.endswith("verification.mode")
        rows = run.rows()
        assert all(row["activity"] == [] for row in rows)
        assert all(row["email"] is None for row in rows)

    def test_inline_email_from_identified_session_ignored(self) -> None:
        """An inline email on a track from an identified session is ignored, never refused."""
        run = Run("strict")
        account = run.identify(
            {"user_id": "u_1", "email": "ada@example.com", "signature": hmac_hex("u_1")}
        )
        d = run.track("post", email="mallory@example.com")
        assert d.outcome == "recorded" and d.profile == account.profile
        row = run.by_user("u_1")
        assert row is not None and row["email"] == "ada@example.com"
        assert row["activity"] == [d.event_id]


# --------------------------------------------------------------------------------------------
# JWT


class TestJwtClaims:
    """method jwt: the identity comes from the verified claims alone."""

    def test_quackback_claims_mapped(self) -> None:
        """quackback: sub, email, name and avatarUrl become the identity."""
        run = Run("quackback")
        claims = qb_claims(avatarUrl="https://example.com/a.png", email="Ada@Example.COM")
        d = run.identify({"ssoToken": token(claims)})
        assert_verified(d)
        assert d.identity is not None
        assert (d.identity.user_id, d.identity.email, d.identity.name, d.identity.avatar) == (
            "u_1",
            "Ada@example.com",
            "Ada",
            "https://example.com/a.png",
        )
        assert run.by_user("u_1")["verified"] is True  # type: ignore[index]

    def test_replyful_user_id_claim(self) -> None:
        """replyful: the userId claim is the user id (sub is not)."""
        run = Run("replyful")
        d = run.identify({"token": token({"userId": "r_9", "sub": "ignored", "exp": T0_S + 3600})})
        assert_verified(d)
        assert d.identity is not None and d.identity.user_id == "r_9"

    def test_extra_claims_become_attributes(self) -> None:
        """replyful: custom claims become attributes."""
        run = Run("replyful")
        d = run.identify(
            {"token": token({"userId": "r_1", "plan": "pro", "company": "Acme", "seats": 3})}
        )
        assert dict(d.attributes) == {"plan": "pro", "company": "Acme", "seats": 3}
        assert run.by_user("r_1")["attributes"] == {"company": "Acme", "plan": "pro", "seats": 3}  # type: ignore[index]

    def test_registered_claims_never_attributes(self) -> None:
        """iss sub aud exp nbf iat jti never become attributes (replyful keeps every other)."""
        run = Run("replyful")
        claims = {
            "userId": "r_1",
            "iss": "https://issuer",
            "sub": "s",
            "aud": "widget",
            "exp": T0_S + 60,
            "nbf": T0_S - 60,
            "iat": T0_S - 60,
            "jti": "j-1",
            "plan": "pro",
        }
        d = run.identify({"token": token(claims)})
        assert_verified(d)
        assert dict(d.attributes) == {"plan": "pro"}
        fields = {r.field for r in d.reasons}
        assert not fields & set(REGISTERED)
        assert run.by_user("r_1")["attributes"] == {"plan": "pro"}  # type: ignore[index]

    def test_registered_claims_never_attributes_even_when_configured(self, tmp_path: Path) -> None:
        """Even an attribute schema naming iss/aud/jti does not let registered claims in."""
        ruleset = rules(
            tmp_path,
            "extends: quackback\nattributes:\n  schema:\n"
            + "".join(f"    {c}: {{}}\n" for c in (*REGISTERED, "plan")),
        )
        run = Run(ruleset)
        claims = qb_claims(iss="i", aud="a", jti="j", nbf=T0_S, plan="pro")
        d = run.identify({"ssoToken": token(claims)})
        assert_verified(d)
        assert dict(d.attributes) == {"plan": "pro"}

    def test_payload_fields_beside_token_ignored(self, tmp_path: Path) -> None:
        """Fields beside a JWT (id, email, name, attributes) are ignored: claims alone count."""
        ruleset = rules(tmp_path, "extends: quackback\nattributes: {schema: {plan: {}}}\n")
        run = Run(ruleset)
        d = run.identify(
            {
                "ssoToken": token(qb_claims(plan="free")),
                "id": "admin",
                "email": "mallory@example.com",
                "name": "Mallory",
                "plan": "enterprise",
            }
        )
        assert_verified(d)
        assert d.identity is not None
        assert (d.identity.user_id, d.identity.email, d.identity.name) == (
            "u_1",
            "ada@example.com",
            "Ada",
        )
        assert dict(d.attributes) == {"plan": "free"}
        assert run.by_user("admin") is None

    def test_payload_fields_never_fill_missing_claims(self, tmp_path: Path) -> None:
        """A field the token does not carry is not taken from the payload either."""
        ruleset = rules(tmp_path, "extends: quackback\nattributes: {schema: {plan: {}}}\n")
        run = Run(ruleset)
        d = run.identify(
            {
                "ssoToken": token(qb_claims(name=None)),
                "name": "Mallory",
                "avatar": "https://evil.example/x.png",
                "plan": "enterprise",
            }
        )
        assert_verified(d)
        assert d.identity is not None
        assert (d.identity.name, d.identity.avatar) == (None, None)
        assert dict(d.attributes) == {}
        row = run.by_user("u_1")
        assert row is not None and row["name"] is None and row["attributes"] == {}

    def test_replyful_payload_beside_token_ignored(self) -> None:
        """replyful: a userId in the payload beside the token is not the identity."""
        run = Run("replyful")
        d = run.identify({"token": token({"userId": "r_1"}), "userId": "admin", "email": "m@x.io"})
        assert d.identity is not None and d.identity.user_id == "r_1"
        assert d.identity.email is None


def alg_none(claims: dict[str, Any]) -> str:
    """An unsigned token built by hand: header {"alg":"none"}, empty signature."""
    return b64url(b'{"alg":"none"}') + "." + b64url(json.dumps(claims).encode()) + "."


class TestJwtAlgorithms:
    """verification.jwt.algorithms: the allow-list, never the token's header."""

    @pytest.mark.parametrize("pack,key", [("quackback", "ssoToken"), ("replyful", "token")])
    def test_alg_none_refused(self, pack: str, key: str) -> None:
        """A hand-built alg none token is auth.algorithm, citing jwt.algorithms."""
        claims = {**qb_claims(), "userId": "u_1"}
        run = Run(pack)
        d = run.identify({key: alg_none(claims)})
        r = reason(d, "auth.algorithm")
        assert r.rule.endswith("verification.jwt.algorithms")
        assert d.outcome in ("rejected", "anonymous")
        assert "auth.verified" not in d.codes
        assert run.by_user("u_1") is None

    @pytest.mark.parametrize("header", [b'{"alg":"None"}', b'{"alg":"NONE"}', b'{"typ":"JWT"}'])
    def test_alg_none_variants_refused(self, header: bytes) -> None:
        """Case variants of none, or no alg at all, are auth.algorithm too."""
        tok = b64url(header) + "." + b64url(json.dumps(qb_claims()).encode()) + "."
        d = Run("quackback").identify({"ssoToken": tok})
        assert_refused(d, "auth.algorithm", "jwt.algorithms", "token")

    @pytest.mark.parametrize("algorithm", ["HS512", "HS384"])
    def test_other_hmac_algorithm_refused(self, algorithm: str) -> None:
        """HS512/HS384 with the right secret when only HS256 is listed: auth.algorithm."""
        secret = SECRET * 2  # long enough for HS512
        run = Run("quackback", secrets={"current": secret})
        d = run.identify({"ssoToken": token(qb_claims(), secret, algorithm)})
        assert_refused(d, "auth.algorithm", "jwt.algorithms", "token")

    def test_listed_algorithm_accepted(self, tmp_path: Path) -> None:
        """Control: once HS512 is listed, the same token verifies."""
        secret = SECRET * 2
        ruleset = rules(tmp_path, "extends: quackback\nverification: {jwt: {algorithms: [HS512]}}")
        run = Run(ruleset, secrets={"current": secret})
        assert_verified(run.identify({"ssoToken": token(qb_claims(), secret, "HS512")}))
        d = run.identify({"ssoToken": token(qb_claims(), secret, "HS256")}, session="s2")
        assert_refused(d, "auth.algorithm", "jwt.algorithms")

    def test_header_swapped_to_hs512_refused(self) -> None:
        """An HS256 token whose header claims HS512 is refused, never verified."""
        tok = token(qb_claims())
        _, payload, sig = tok.split(".")
        forged = b64url(b'{"alg":"HS512","typ":"JWT"}') + "." + payload + "." + sig
        d = Run("quackback").identify({"ssoToken": forged})
        assert_refused(d, "auth.algorithm", "jwt.algorithms")


class TestJwtTime:
    """Time claims are checked against the event's ts, with jwt.leeway_s (30 s in the packs)."""

    def test_expired_at_event_ts(self) -> None:
        """exp before the event's ts (beyond leeway) is auth.expired."""
        d = Run("quackback").identify({"ssoToken": token(qb_claims())}, at=300 + 31)
        assert_refused(d, "auth.expired", "jwt.leeway_s", "token")

    def test_valid_at_ts_though_long_expired_by_wall_clock(self) -> None:
        """The clock is the event's ts: a 2020 token replayed at its 2020 ts verifies."""
        then = datetime(2020, 1, 1, tzinfo=UTC)
        issued = int(then.timestamp())
        assert issued + 300 < datetime.now(UTC).timestamp()
        tok = token(qb_claims(iat=issued, exp=issued + 300))
        run = Run("quackback")
        d = run.engine.identify({"ssoToken": tok}, session="s1", id="old", ts=iso(60, then))
        assert_verified(d)

    def test_not_yet_valid_by_ts_though_valid_by_wall_clock(self) -> None:
        """A token issued in 2026 is not yet valid for an event dated 2020."""
        run = Run("quackback")
        then = datetime(2020, 1, 1, tzinfo=UTC)
        d = run.engine.identify(
            {"ssoToken": token(qb_claims(exp=None))}, session="s1", id="x", ts=iso(0, then)
        )
        assert_refused(d, "auth.not_yet_valid", "jwt.leeway_s")

    def test_nbf_in_future_not_yet_valid(self) -> None:
        """nbf after the event's ts (beyond leeway) is auth.not_yet_valid."""
        d = Run("quackback").identify({"ssoToken": token(qb_claims(nbf=T0_S + 120))})
        assert_refused(d, "auth.not_yet_valid", "jwt.leeway_s", "token")

    def test_iat_in_future_not_yet_valid(self) -> None:
        """iat after the event's ts (beyond leeway) is auth.not_yet_valid."""
        d = Run("quackback").identify(
            {"ssoToken": token(qb_claims(iat=T0_S + 120, exp=T0_S + 420))}
        )
        assert_refused(d, "auth.not_yet_valid", "jwt.leeway_s", "token")

    def test_exp_leeway_boundary(self) -> None:
        """exp + 30 s leeway: a microsecond before verifies, a microsecond after is expired."""
        tok = token(qb_claims())
        run = Run("quackback")
        assert_verified(run.identify({"ssoToken": tok}, at=300 + 29.999999))
        d = run.identify({"ssoToken": tok}, session="s2", at=300 + 30.000001)
        assert_refused(d, "auth.expired", "jwt.leeway_s")

    def test_nbf_leeway_boundary(self) -> None:
        """nbf - 30 s leeway: a microsecond after verifies, a microsecond before is refused."""
        tok = token(qb_claims(nbf=T0_S + 100, iat=None, exp=T0_S + 1000))
        run = Run("quackback")
        assert_verified(run.identify({"ssoToken": tok}, at=70.000001))
        d = run.identify({"ssoToken": tok}, session="s2", at=69.999999)
        assert_refused(d, "auth.not_yet_valid", "jwt.leeway_s")

    def test_zero_leeway(self, tmp_path: Path) -> None:
        """leeway_s 0 (override): one second past exp is expired."""
        ruleset = rules(tmp_path, "extends: quackback\nverification: {jwt: {leeway_s: 0}}\n")
        run = Run(ruleset)
        assert_verified(run.identify({"ssoToken": token(qb_claims())}, at=299))
        d = run.identify({"ssoToken": token(qb_claims())}, session="s2", at=301)
        assert_refused(d, "auth.expired", "jwt.leeway_s")

    def test_max_age_with_iat(self, tmp_path: Path) -> None:
        """max_age_s 600 (override): a token without exp is too old 600 s + leeway after iat."""
        ruleset = rules(tmp_path, "extends: quackback\nverification: {jwt: {max_age_s: 600}}\n")
        tok = token(qb_claims(exp=None))
        run = Run(ruleset)
        assert_verified(run.identify({"ssoToken": tok}, at=600))
        d = run.identify({"ssoToken": tok}, session="s2", at=600 + 31)
        assert_refused(d, "auth.expired", "jwt.max_age_s", "token")

    def test_max_age_needs_iat(self, tmp_path: Path) -> None:
        """max_age_s set and no iat claim: auth.claims, citing jwt.max_age_s."""
        ruleset = rules(tmp_path, "extends: quackback\nverification: {jwt: {max_age_s: 600}}\n")
        d = Run(ruleset).identify({"ssoToken": token(qb_claims(iat=None))})
        assert_refused(d, "auth.claims", "jwt.max_age_s")

    def test_no_max_age_no_iat_needed(self) -> None:
        """Control: without max_age_s a token with neither iat nor exp verifies."""
        d = Run("quackback").identify({"ssoToken": token(qb_claims(iat=None, exp=None))})
        assert_verified(d)

    @pytest.mark.parametrize("value", ["1772366700", None, [1], {"t": 1}, True])
    def test_non_numeric_time_claim_refused(self, value: Any) -> None:
        """An exp that is not a number is refused (auth.invalid), never ignored."""
        claims = qb_claims(exp=None)
        claims["exp"] = value
        d = Run("quackback").identify({"ssoToken": token(claims)})
        assert d.outcome == "rejected" and "auth.verified" not in d.codes
        assert reason(d, "auth.invalid").rule.split(" ")[1].startswith("verification.")

    @pytest.mark.parametrize(
        "payload",
        [
            b'{"sub":"u_1","email":"ada@example.com","exp":Infinity}',
            b'{"sub":"u_1","email":"ada@example.com","exp":-Infinity}',
            b'{"sub":"u_1","email":"ada@example.com","exp":NaN}',
            b'{"sub":"u_1","email":"ada@example.com","iat":1e400}',
        ],
    )
    def test_non_finite_time_claim_refused(self, payload: bytes) -> None:
        """A signed token whose exp/iat is not a finite number is auth.invalid, not a crash."""
        d = Run("quackback").identify({"ssoToken": raw_token(payload)})
        assert_refused(d, "auth.invalid", "method", "token")

    def test_non_finite_claim_never_reaches_a_decision(self) -> None:
        """NaN/Infinity in a signed token's claims never make a decision that is not JSON."""
        run = Run("replyful")
        d = run.identify({"token": raw_token(b'{"userId":"r_1","plan":NaN,"n":Infinity}')})
        json.loads(d.to_json(), parse_constant=lambda c: pytest.fail(f"{c} in decision"))
        for row in run.rows():
            json.loads(json.dumps(row), parse_constant=lambda c: pytest.fail(f"{c} in export"))

    def test_deeply_nested_claim_is_not_a_crash(self) -> None:
        """A signed token nesting a claim 900 lists deep is decided, never a RecursionError."""
        payload = b'{"userId":"r_1","x":' + b"[" * 900 + b"]" * 900 + b"}"
        d = Run("replyful").identify({"token": raw_token(payload)})
        assert d.outcome == "identified"
        json.loads(d.to_json())


class TestJwtRequiredClaims:
    """verification.jwt.required: a missing required claim is auth.claims."""

    def test_quackback_missing_email(self) -> None:
        """quackback requires sub and email: no email claim is auth.claims (field email)."""
        d = Run("quackback").identify({"ssoToken": token(qb_claims(email=None))})
        assert_refused(d, "auth.claims", "jwt.required", "email")

    def test_quackback_missing_sub(self) -> None:
        """No sub claim is auth.claims (field sub)."""
        d = Run("quackback").identify({"ssoToken": token(qb_claims(sub=None))})
        assert_refused(d, "auth.claims", "jwt.required", "sub")

    def test_replyful_missing_user_id_is_anonymous(self) -> None:
        """replyful requires userId; without it the visitor stays anonymous (auth.claims)."""
        d = Run("replyful").identify({"token": token({"sub": "u_1", "email": "a@example.com"})})
        assert d.outcome == "anonymous"
        assert reason(d, "auth.claims").rule.endswith("verification.jwt.required")


class TestJwtSize:
    """A token over 8 KiB is auth.invalid, refused before it is decoded."""

    @staticmethod
    def sized(total: int) -> str:
        """A valid quackback token of exactly ``total`` bytes (padding in an extra claim)."""
        for pad in range(total, 0, -1):
            tok = token(qb_claims(pad="x" * pad))
            if len(tok) <= total:
                break
        # one-character steps of the claim move the token by 0 or 2 bytes: fine-tune the name
        for extra in range(0, 8):
            candidate = token(qb_claims(pad="x" * pad, **{"k" * (extra + 1): 1}))
            if len(candidate) == total:
                return candidate
            candidate = token(qb_claims(pad="x" * (pad - extra)))
            if len(candidate) == total:
                return candidate
        raise AssertionError(f"could not build a token of {total} bytes")

    def test_oversized_refused_before_decoding(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A valid but 8193-byte token is refused and PyJWT is never called to decode it."""
        tok = self.sized(8193)
        assert len(tok) == 8193

        def boom(*args: Any, **kwargs: Any) -> Any:
            pytest.fail("an oversized token reached the JWT decoder")

        run = Run("quackback")
        monkeypatch.setattr(jwt, "decode", boom)
        monkeypatch.setattr(jwt, "get_unverified_header", boom)
        monkeypatch.setattr(jwt.api_jws.PyJWS, "_load", boom)
        d = run.identify({"ssoToken": tok})
        assert_refused(d, "auth.invalid", "method", "token")
        assert "8 KiB" in (reason(d, "auth.invalid").detail or "")

    def test_exactly_8_kib_accepted(self) -> None:
        """Boundary: a valid token of exactly 8192 bytes is decoded and verifies."""
        tok = self.sized(8192)
        assert len(tok) == 8192
        assert_verified(Run("quackback").identify({"ssoToken": tok}))

    def test_multibyte_oversize_refused(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """8 KiB counts bytes: 4,100 two-byte characters are over the limit."""
        monkeypatch.setattr(jwt, "decode", lambda *a, **k: pytest.fail("decoded"))
        d = Run("quackback").identify({"ssoToken": "é" * 4100})
        assert_refused(d, "auth.invalid", "method", "token")


class TestJwtGarbage:
    """Malformed tokens are refused (or anonymous per on_failure), never an exception."""

    GARBAGE: list[Any] = [  # noqa: RUF012
        "",
        "abc",
        "a.b.c",
        "...",
        "a.b",
        "eyJhbGciOiJIUzI1NiJ9",
        "eyJhbGciOiJIUzI1NiJ9..",
        "eyJhbGciOiJIUzI1NiJ9.e30",
        "eyJhbGciOiJIUzI1NiJ9.e30.",
        "eyJhbGciOiJIUzI1NiJ9.!!!.abc",
        b64url(b"[1,2]") + ".e30.",
        b64url(b'"HS256"') + ".e30.",
        b64url(b'{"alg":"HS256"}') + "." + b64url(b"[1]") + ".sig",
        "é.é.é",
        "Bearer eyJhbGciOiJIUzI1NiJ9.e30.x",
        123,
        1.5,
        True,
        ["eyJhbGciOiJIUzI1NiJ9.e30.x"],
        {"token": "x"},
    ]

    @pytest.mark.parametrize("garbage", GARBAGE)
    def test_quackback_refuses_garbage(self, garbage: Any) -> None:
        """quackback (on_failure reject): a malformed token is refused with an auth reason."""
        run = Run("quackback")
        d = run.identify({"ssoToken": garbage, "id": "u_1", "email": "ada@example.com"})
        assert d.outcome == "rejected" and d.profile is None
        assert [c for c in d.codes if c in ("auth.invalid", "auth.algorithm")]
        assert run.rows() == []

    @pytest.mark.parametrize("garbage", GARBAGE[:6])
    def test_replyful_garbage_is_anonymous(self, garbage: Any) -> None:
        """replyful (on_failure anonymous): a malformed token leaves the visitor anonymous."""
        d = Run("replyful").identify({"token": garbage})
        assert d.outcome == "anonymous"
        assert "auth.invalid" in d.codes

    def test_tampered_payload_refused(self) -> None:
        """A token whose payload was swapped for another user's keeps the old signature: refused."""
        tok = token(qb_claims())
        head, _, sig = tok.split(".")
        evil = b64url(json.dumps(qb_claims(sub="admin")).encode())
        d = Run("quackback").identify({"ssoToken": f"{head}.{evil}.{sig}"})
        assert_refused(d, "auth.invalid", "keys", "token")

    def test_token_from_another_secret_refused(self) -> None:
        """A well-formed token signed with another secret is auth.invalid."""
        d = Run("quackback").identify({"ssoToken": token(qb_claims(), OTHER)})
        assert_refused(d, "auth.invalid", "keys", "token")


class TestRotation:
    """verification.keys: every listed key is accepted; the decision names the one that verified."""

    def test_hmac_previous_and_current(self, tmp_path: Path) -> None:
        """strict + keys [current, previous]: both verify, each named in auth.verified."""
        ruleset = strict_with(tmp_path, "{keys: [current, previous]}")
        run = Run(ruleset, secrets={"current": SECRET, "previous": PREVIOUS})
        assert_verified(run.identify({"user_id": "u_1", "signature": hmac_hex("u_1")}), "current")
        old = hmac_hex("u_1", PREVIOUS)
        assert_verified(run.identify({"user_id": "u_1", "signature": old}), "previous")

    def test_jwt_previous_and_current(self, tmp_path: Path) -> None:
        """quackback + keys [current, previous]: a token from the retired secret verifies."""
        ruleset = rules(tmp_path, "extends: quackback\nverification: {keys: [current, previous]}")
        run = Run(ruleset, secrets={"current": SECRET, "previous": PREVIOUS})
        assert_verified(run.identify({"ssoToken": token(qb_claims(), PREVIOUS)}), "previous")
        assert_verified(run.identify({"ssoToken": token(qb_claims())}), "current")
        d = run.identify({"ssoToken": token(qb_claims(), OTHER)})
        assert_refused(d, "auth.invalid", "keys")

    def test_removing_previous_invalidates_old_tokens(self, tmp_path: Path) -> None:
        """Once previous is removed (the pack's keys: [current]), its tokens fail."""
        run = Run("quackback", secrets={"current": SECRET})
        d = run.identify({"ssoToken": token(qb_claims(), PREVIOUS)})
        assert_refused(d, "auth.invalid", "keys", "token")
        strict = Run("strict")
        d = strict.identify({"user_id": "u_1", "signature": hmac_hex("u_1", PREVIOUS)})
        assert_refused(d, "auth.invalid", "hmac.message")

    def test_every_listed_key_needs_a_secret(self, tmp_path: Path) -> None:
        """keys [current, previous] without a previous secret: SecretsError naming its variable."""
        ruleset = strict_with(tmp_path, "{keys: [current, previous]}")
        with pytest.raises(SecretsError) as info:
            Engine(ruleset, secrets={"current": SECRET}, environ={})
        assert "IDRULES_SECRET_PREVIOUS" in str(info.value)


class TestProtectVerified:
    """verification.protect_verified: an unverified call may not act as a verified profile."""

    def test_identical_values_refused(self, tmp_path: Path) -> None:
        """Same id, email and name, no signature: refused auth.protected_profile."""
        run = Run(strict_with(tmp_path, "{mode: optional}"))
        values = {"user_id": "u_1", "email": "ada@example.com", "name": "Ada"}
        account = run.identify({**values, "signature": hmac_hex("u_1")})
        assert_verified(account)
        d = run.identify(values, session="s2")
        assert_refused(d, "auth.protected_profile", "protect_verified")
        assert run.track(session="s2").profile != account.profile

    def test_same_session_refused(self, tmp_path: Path) -> None:
        """Even from the session that verified, an unverified call is refused."""
        run = Run(strict_with(tmp_path, "{mode: optional}"))
        run.identify({"user_id": "u_1", "signature": hmac_hex("u_1")})
        d = run.identify({"user_id": "u_1"})
        assert_refused(d, "auth.protected_profile", "protect_verified")

    def test_found_by_email_refused(self, tmp_path: Path) -> None:
        """An unverified email-only call whose email finds a verified profile is refused."""
        ruleset = rules(
            tmp_path,
            "extends: strict\nfields: {user_id: {required: false}}\n"
            'verification: {mode: optional, hmac: {message: "{user_id}:{email}"}}\n',
        )
        run = Run(ruleset)
        signature = hmac_hex("u_1:ada@example.com")
        run.identify({"user_id": "u_1", "email": "ada@example.com", "signature": signature})
        d = run.identify({"email": "ADA@example.com"}, session="s2")
        assert_refused(d, "auth.protected_profile", "protect_verified")
        assert run.by_user("u_1")["email"] == "ada@example.com"  # type: ignore[index]

    def test_unsigned_email_finds_nothing(self, tmp_path: Path) -> None:
        """An email the verified call did not sign is no key: an unverified call with it gets
        a profile of its own and never reaches the verified one."""
        ruleset = rules(
            tmp_path,
            "extends: strict\nfields: {user_id: {required: false}}\n"
            "verification: {mode: optional}\n",
        )
        run = Run(ruleset)
        first = run.identify(
            {"user_id": "u_1", "email": "ada@example.com", "signature": hmac_hex("u_1")}
        )
        d = run.identify({"email": "ADA@example.com"}, session="s2")
        assert d.outcome == "identified" and d.created and d.profile != first.profile
        assert run.by_user("u_1")["email"] == "ada@example.com"  # type: ignore[index]

    def test_unprotected_control(self, tmp_path: Path) -> None:
        """Control: protect_verified false lets the unverified call act as the profile."""
        ruleset = strict_with(tmp_path, "{mode: optional, protect_verified: false}")
        run = Run(ruleset)
        account = run.identify({"user_id": "u_1", "signature": hmac_hex("u_1")})
        d = run.identify({"user_id": "u_1"}, session="s2")
        assert d.outcome == "identified" and d.profile == account.profile

    def test_verified_call_upgrades_unverified_profile(self, tmp_path: Path) -> None:
        """A verified call on an unverified profile marks it verified; then it is protected."""
        run = Run(strict_with(tmp_path, "{mode: optional}"))
        run.identify({"user_id": "u_1"})
        assert_verified(run.identify({"user_id": "u_1", "signature": hmac_hex("u_1")}))
        assert run.by_user("u_1")["verified"] is True  # type: ignore[index]
        d = run.identify({"user_id": "u_1"}, session="s3")
        assert_refused(d, "auth.protected_profile", "protect_verified")

    def test_jwt_verified_profile_protected(self, tmp_path: Path) -> None:
        """quackback with protect_verified: unverified details may not act as a token's profile."""
        ruleset = rules(tmp_path, "extends: quackback\nverification: {protect_verified: true}\n")
        run = Run(ruleset)
        assert_verified(run.identify({"ssoToken": token(qb_claims())}))
        d = run.identify({"id": "u_1", "email": "ada@example.com", "name": "Ada"}, session="s2")
        assert_refused(d, "auth.protected_profile", "protect_verified")


class TestSecrets:
    """Secrets: present and at least 32 bytes at start-up, never in a rules file."""

    def test_missing_secret_refuses_to_start(self) -> None:
        """No secret: SecretsError at construction, one line naming IDRULES_SECRET_CURRENT."""
        with pytest.raises(SecretsError) as info:
            Engine("strict", environ={})
        message = str(info.value)
        assert "IDRULES_SECRET_CURRENT" in message
        assert "\n" not in message

    def test_a_key_pyjwt_refuses_as_hmac_secret_is_reported_at_start(self) -> None:
        """A JWT secret that is a JWK's text: SecretsError naming the key, not its value."""
        secret = '{"kty":"oct","k":"c2VjcmV0LXZhbHVlLW5vdC10by1iZS1wcmludGVk"}'
        with pytest.raises(SecretsError) as info:
            Engine("quackback", secrets={"current": secret})
        message = str(info.value)
        assert "'current'" in message and "c2Vjc" not in message
        assert "\n" not in message

    @pytest.mark.parametrize("pack", ["strict", "lumio", "quackback", "replyful", "userjot"])
    def test_every_verifying_pack_needs_current(self, pack: str) -> None:
        """Every shipped pack that verifies reads one key, current."""
        with pytest.raises(SecretsError, match="IDRULES_SECRET_CURRENT"):
            Engine(pack, environ={})
        assert load_ruleset(pack).verification.keys == ("current",) or list(
            load_ruleset(pack).verification.keys
        ) == ["current"]

    @pytest.mark.parametrize("secret", ["", "s" * 31, b"b" * 31, "é" * 15])
    def test_short_secret_refused(self, secret: str | bytes) -> None:
        """A secret shorter than 32 bytes is refused, and the message does not show it."""
        with pytest.raises(SecretsError) as info:
            Engine("strict", secrets={"current": secret}, environ={})
        message = str(info.value)
        assert "\n" not in message
        if len(secret) >= 4:
            shown = secret if isinstance(secret, str) else secret.decode()
            assert shown[:4] not in message

    def test_32_bytes_accepted(self) -> None:
        """Boundary: exactly 32 bytes (16 two-byte characters) is enough."""
        Engine("strict", secrets={"current": "é" * 16}, environ={})
        Engine("strict", secrets={"current": "k" * 32}, environ={})

    def test_environment_variable_is_read(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """IDRULES_SECRET_CURRENT from the process environment is the current key."""
        monkeypatch.setenv("IDRULES_SECRET_CURRENT", SECRET)
        engine = Engine("strict")
        d = engine.identify(
            {"user_id": "u_1", "signature": hmac_hex("u_1")}, session="s", id="e1", ts=iso()
        )
        assert_verified(d)
        monkeypatch.setenv("IDRULES_SECRET_CURRENT", OTHER)
        d = Engine("strict").identify(
            {"user_id": "u_1", "signature": hmac_hex("u_1")}, session="s", id="e1", ts=iso()
        )
        assert_refused(d, "auth.invalid", "hmac.message")

    def test_short_environment_secret_refused(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A short secret from the environment is refused just the same."""
        monkeypatch.setenv("IDRULES_SECRET_CURRENT", "tooshort")
        with pytest.raises(SecretsError):
            Engine("strict")

    def test_disabled_needs_no_secret(self) -> None:
        """verification disabled (helpshift): the engine starts without any secret."""
        Engine("helpshift", environ={})

    def test_secret_in_rules_file_refused(self, tmp_path: Path) -> None:
        """Secrets are never in a rules file: a secret knob is a schema error."""
        with pytest.raises(RulesError):
            rules(tmp_path, f"extends: strict\nverification: {{secret: {SECRET}}}\n")
        with pytest.raises(RulesError):
            rules(tmp_path, f"extends: strict\nsecrets: {{current: {SECRET}}}\n")


# --------------------------------------------------------------------------------------------
# leaks


class TestNoLeak:
    """No secret, signature or token (nor a long prefix of one) in any output."""

    @staticmethod
    def needles(
        secrets: list[str], signatures: list[str], tokens: list[str]
    ) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        for s in secrets:
            out += [(s, "secret"), (s[:12], "secret prefix"), (s[-12:], "secret suffix")]
        for s in signatures:
            out += [(s, "signature"), (s[:16], "signature prefix"), (s.lower()[:16], "sig")]
        for t in tokens:
            out += [(t, "token"), (t[:60], "token prefix")]
            for part in t.split(".")[1:]:  # payload and signature segments
                if len(part) >= 16:
                    out.append((part[:16], "token segment"))
        return out

    @staticmethod
    def check(text: str, needles: list[tuple[str, str]], where: str) -> None:
        for needle, kind in needles:
            assert needle not in text, f"a {kind} leaked into {where}"

    @staticmethod
    def log() -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[str], list[str]]:
        """Events for strict and quackback, plus the signatures and tokens they carry."""
        sigs = [hmac_hex(u) for u in ("u_1", "u_2", "u_3")]
        sigs += [hmac_hex("u_1", PREVIOUS), hmac_hex("u_4").upper(), hmac_hex("u_5", OTHER)]
        strict_payloads: list[Any] = [
            {"user_id": "u_1", "email": "ada@example.com", "signature": sigs[0]},
            {"user_id": "u_2", "signature": sigs[1]},
            {"user_id": "u_9", "signature": sigs[2]},  # another user's signature
            {"user_id": "u_1", "signature": sigs[3]},  # retired secret
            {"user_id": "u_4", "signature": sigs[4]},  # upper-case hex
            {"user_id": "u_5", "signature": sigs[5]},  # other widget's secret
            {"user_id": "u_6", "signature": sigs[0][:-1]},  # too short
            {"user_id": "u_6", "signature": [sigs[0]]},
            {"user_id": "u_6", "signature": {"v": sigs[1]}},
            {"user_id": "u_7"},
            {"signature": sigs[2]},
            None,
        ]
        toks = [
            token(qb_claims()),
            token(qb_claims(sub="u_2", exp=T0_S - 3600)),  # expired
            token(qb_claims(nbf=T0_S + 3600)),  # not yet valid
            token(qb_claims(), PREVIOUS),  # retired secret
            token(qb_claims(email=None)),  # missing claim
            token(qb_claims(plan="pro", mrr=9), SECRET * 2, "HS512"),
            alg_none(qb_claims()),
            TestJwtSize.sized(8193),
        ]
        head, _, sig = toks[0].split(".")
        toks.append(f"{head}.{b64url(json.dumps(qb_claims(sub='admin')).encode())}.{sig}")
        toks.append(toks[0][:-3])  # truncated signature
        qb_payloads: list[Any] = [{"ssoToken": t, "id": "u_x", "email": "m@x.io"} for t in toks]
        qb_payloads.append({"ssoToken": toks[0], "signature": sigs[0], "token": toks[1]})

        def events(payloads: list[Any], prefix: str) -> list[dict[str, Any]]:
            out: list[dict[str, Any]] = []
            for i, payload in enumerate(payloads):
                session = f"{prefix}s{i % 3}"
                out.append(
                    {
                        "id": f"{prefix}{i}",
                        "ts": iso(i),
                        "type": "identify",
                        "session": session,
                        "payload": payload,
                    }
                )
                out.append(
                    {
                        "id": f"{prefix}t{i}",
                        "ts": iso(i),
                        "type": "track",
                        "session": session,
                        "payload": {"name": "vote", "email": "x@example.com"},
                    }
                )
            out.append({"id": 5, "ts": iso(), "type": "identify", "payload": payloads[0]})
            out.append({"id": f"{prefix}bad", "ts": "yesterday", "payload": payloads[0]})
            return out

        all_tokens = [t for t in toks if isinstance(t, str)]
        return events(strict_payloads, "a"), events(qb_payloads, "b"), sigs, all_tokens

    def test_engine_decisions_and_export(self) -> None:
        """Decisions and export lines of a varied log carry no secret, signature or token."""
        strict_events, qb_events, sigs, toks = self.log()
        needles = self.needles([SECRET, PREVIOUS, OTHER, SECRET * 2], sigs, toks)
        for pack, events in (("strict", strict_events), ("quackback", qb_events)):
            engine = Engine(pack, secrets=SECRETS, environ={})
            text = "\n".join(engine.decide(e).to_json() for e in events)
            assert '"outcome":"identified"' in text and "auth.invalid" in text
            self.check(text, needles, f"{pack} decisions")
            export = "\n".join(json.dumps(r) for r in export_rows(engine.store))
            self.check(export, needles, f"{pack} export")

    def test_cli_replay_export_and_resolve(self, tmp_path: Path) -> None:
        """replay --secrets, export and resolve print no secret, signature or token."""
        strict_events, qb_events, sigs, toks = self.log()
        needles = self.needles([SECRET, PREVIOUS, OTHER, SECRET * 2], sigs, toks)
        secrets_file = tmp_path / "secrets.json"
        secrets_file.write_text(json.dumps({"current": SECRET}))
        env = {k: v for k, v in os.environ.items() if not k.startswith("IDRULES_")}
        for pack, events in (("strict", strict_events), ("quackback", qb_events)):
            log = tmp_path / f"{pack}.jsonl"
            log.write_text("".join(json.dumps(e) + "\n" for e in events))
            store = tmp_path / f"{pack}.db"
            runs = [
                runs_base(log, pack, secrets_file),
                [*runs_base(log, pack, secrets_file), "--store", str(store)],
                ["export", "--store", str(store)],
            ]
            outputs = []
            for args in runs:
                done = cli(args, env)
                assert done.returncode == 0, done.stderr
                self.check(done.stdout + done.stderr, needles, f"idrules {args[0]} {pack}")
                outputs.append(done.stdout)
            assert "auth.invalid" in outputs[0] and '"outcome":"identified"' in outputs[0]
            assert outputs[2].count("\n") >= 2  # the export lists profiles
            event = json.dumps({**events[0], "id": "fresh"})
            done = cli(
                ["resolve", "--rules", pack, "--store", str(store), "--secrets", str(secrets_file)],
                env,
                stdin=event,
            )
            assert done.returncode == 0, done.stderr
            self.check(done.stdout + done.stderr, needles, f"idrules resolve {pack}")

    def test_cli_failures_do_not_echo_secrets(self, tmp_path: Path) -> None:
        """Failing commands (short secret, bad secrets file, missing secret) stay silent on it."""
        short = "sh0rt-but-secret-value"
        env = {k: v for k, v in os.environ.items() if not k.startswith("IDRULES_")}
        log = tmp_path / "log.jsonl"
        log.write_text(json.dumps({"id": "e1", "ts": iso(), "type": "logout", "session": "s"}))
        short_file = tmp_path / "short.json"
        short_file.write_text(json.dumps({"current": short}))
        broken = tmp_path / "broken.json"
        broken.write_text('{"current": "' + SECRET + '"')  # truncated JSON
        not_text = tmp_path / "list.json"
        not_text.write_text(json.dumps({"current": [SECRET]}))
        cases = [
            (["replay", str(log), "--rules", "strict", "--secrets", str(short_file)], env),
            (["replay", str(log), "--rules", "strict"], {**env, "IDRULES_SECRET_CURRENT": short}),
            (["replay", str(log), "--rules", "strict", "--secrets", str(broken)], env),
            (["replay", str(log), "--rules", "strict", "--secrets", str(not_text)], env),
            (["replay", str(log), "--rules", "strict"], env),
            (["sign", "--rules", "strict", "--user-id", "u_1", "--secrets", str(short_file)], env),
            (
                ["sign", "--rules", "lumio", "--user-id", "u_1"],
                {**env, "IDRULES_SECRET_CURRENT": short},
            ),
        ]
        needles = self.needles([SECRET, short], [], [])
        for args, run_env in cases:
            done = cli(args, run_env)
            assert done.returncode == 1, (args, done.stderr)
            assert done.stdout == ""
            lines = done.stderr.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("idrules: error:"), done.stderr
            assert "Traceback" not in done.stderr
            self.check(done.stderr, needles, f"stderr of {args}")


def runs_base(log: Path, pack: str, secrets_file: Path) -> list[str]:
    return ["replay", str(log), "--rules", pack, "--secrets", str(secrets_file)]


def cli(args: list[str], env: dict[str, str], stdin: str | None = None) -> Any:
    """Run the real command line."""
    return cli_support.cli(*args, stdin=stdin, env=env, timeout=60)
