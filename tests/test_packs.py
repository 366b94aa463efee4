"""Each shipped pack reproduces its vendor document, clause by clause (shared/seeds/*.txt).

One test per clause; each test's docstring quotes the clause it checks. Overrides the documents
describe as settings (Quackback's "Verified identity only", Helpshift's Identity Verification
and clearAnonymousUserOnLogin) are the documented overrides of README.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from support import SECRET, T0_S, Run, cites, hmac_b64, hmac_hex, ident, override, token

from idrules import load_ruleset

NEW_SECRET = "n3w-r0tated-widget-secret-0123456789abcdef"
DAY = 86_400


# --------------------------------------------------------------------------------------------


class TestQuackback:
    """shared/seeds/quackback-identify.txt."""

    def qb_token(self, secret: str = SECRET, **claims: Any) -> str:
        base = {"sub": "user_123", "email": "ada@example.com", "iat": T0_S, "exp": T0_S + 300}
        return token({k: v for k, v in {**base, **claims}.items() if v is not None}, secret)

    def schema(self, tmp_path: Path) -> Any:
        return override(
            tmp_path,
            "extends: quackback\n"
            "attributes: {schema: {plan: {type: string}, mrr: {type: number}}}\n",
        )

    def test_with_their_details(self) -> None:
        """quackback: "Pass id, email, and name directly from the client." (unverified)"""
        d = Run("quackback").identify(
            {"id": "user_123", "email": "ada@example.com", "name": "Ada Lovelace"}
        )
        assert d.outcome == "identified" and d.created
        assert ident(d) == ("user_123", "ada@example.com", "Ada Lovelace", None, False)

    def test_id_required(self) -> None:
        """quackback: "id | string | Yes | Stable, unique ID from your system"."""
        d = Run("quackback").identify({"email": "ada@example.com", "name": "Ada"})
        assert d.outcome == "rejected" and d.profile is None
        cites(d, "user_id.missing", "fields.user_id.required", "quackback")

    def test_email_required(self) -> None:
        """quackback: "email | string | Yes | Used for notifications and dedup"."""
        run = Run("quackback")
        d = run.identify({"id": "user_123", "name": "Ada"})
        assert d.outcome == "rejected" and d.profile is None
        cites(d, "email.missing", "fields.email.required", "quackback")
        assert run.rows() == {}

    def test_name_optional(self) -> None:
        """quackback: "name | string | No | Display name shown in the dashboard"."""
        d = Run("quackback").identify({"id": "user_123", "email": "ada@example.com"})
        assert d.outcome == "identified"
        assert ident(d)[2] is None
        assert not [c for c in d.codes if c.startswith("name.")]

    def test_custom_attributes_filtered(self, tmp_path: Path) -> None:
        """quackback: "doesn't match a configured attribute is ignored, not rejected"."""
        run = Run(self.schema(tmp_path))
        d = run.identify(
            {
                "id": "user_123",
                "email": "ada@example.com",
                "name": "Ada Lovelace",
                "plan": "pro",
                "company": "Acme Corp",
                "mrr": 299,
            }
        )
        assert d.outcome == "identified"
        assert dict(d.attributes) == {"plan": "pro", "mrr": 299}
        assert cites(d, "attribute.unknown", "attributes.unknown").field == "company"
        d = run.identify({"id": "user_123", "email": "ada@example.com", "mrr": "lots"})
        assert d.outcome == "identified" and dict(d.attributes) == {}
        assert cites(d, "attribute.invalid", "attributes.schema.mrr").field == "mrr"
        (row,) = run.rows().values()
        assert row["attributes"] == {"plan": "pro", "mrr": 299}

    def test_sso_token_claims(self) -> None:
        """quackback: "sub Yes ... email Yes ... name No ... avatarUrl No ... exp Recommended"."""
        run = Run("quackback")
        tok = self.qb_token(name="Ada", avatarUrl="https://example.com/ada.png")
        d = run.identify({"ssoToken": tok}, at=240)
        assert d.outcome == "identified"
        assert ident(d) == (
            "user_123",
            "ada@example.com",
            "Ada",
            "https://example.com/ada.png",
            True,
        )
        d = run.identify({"ssoToken": tok}, session="s2", at=300 + 31)
        assert d.outcome == "rejected"
        cites(d, "auth.expired", "verification.jwt.leeway_s", "quackback")
        d = run.identify({"ssoToken": self.qb_token(email=None)}, session="s3")
        assert d.outcome == "rejected"
        assert cites(d, "auth.claims", "verification.jwt.required").field == "email"

    def test_extra_claims_are_attributes(self, tmp_path: Path) -> None:
        """quackback: "Or as extra claims inside a signed JWT" (plan, company, mrr)"""
        run = Run(self.schema(tmp_path))
        d = run.identify(
            {"ssoToken": self.qb_token(plan="pro", company="Acme Corp", mrr=299, jti="t-1")}
        )
        assert d.outcome == "identified" and ident(d)[4] is True
        assert dict(d.attributes) == {"plan": "pro", "mrr": 299}
        assert [r.field for r in d.reasons if r.code == "attribute.unknown"] == ["company"]

    def test_verified_identity_only(self, tmp_path: Path) -> None:
        """quackback: "unverified identify calls and the inline email prompt are both rejected"."""
        run = Run(override(tmp_path, "extends: quackback\nverification: {mode: required}\n"))
        d = run.identify({"id": "user_123", "email": "ada@example.com", "name": "Ada"})
        assert d.outcome == "rejected"
        assert cites(d, "auth.missing", "verification.mode").field == "token"
        d = run.track("post", session="s2", email="ada@example.com")
        assert d.outcome == "rejected"
        assert cites(d, "auth.missing", "verification.mode").field == "email"
        assert run.rows() == {}
        d = run.identify({"ssoToken": self.qb_token()})
        assert d.outcome == "identified" and ident(d)[4] is True

    def test_rotated_secret_invalidates_old_one(self) -> None:
        """quackback: "The old secret is invalidated instantly"."""
        run = Run("quackback", secrets={"current": NEW_SECRET})
        d = run.identify({"ssoToken": self.qb_token(SECRET)})
        assert d.outcome == "rejected"
        cites(d, "auth.invalid", "verification.keys", "quackback")
        assert load_ruleset("quackback").verification.keys == ("current",)
        d = run.identify({"ssoToken": self.qb_token(NEW_SECRET)})
        assert d.outcome == "identified"

    def test_anonymous_activity_moves_to_account(self) -> None:
        """quackback: "everything they did anonymously moves across to their account"."""
        run = Run("quackback")
        # a new account: the anonymous profile itself becomes the account
        vote = run.track("vote", session="s1", email="ada@example.com")
        d = run.identify({"id": "user_123", "email": "ada@example.com"}, session="s1")
        assert d.profile == vote.profile and not d.created
        cites(d, "anonymous.promoted", "anonymous.on_identify", "quackback")
        # an existing account: the anonymous profile is folded into it
        post = run.track("post", session="s2", email="grace@example.com")
        other = run.identify({"id": "user_123", "email": "ada@example.com"}, session="s2")
        assert other.profile == d.profile and other.merged == (post.profile,)
        cites(other, "anonymous.merged", "anonymous.on_identify", "quackback")
        rows = run.rows()
        assert rows[d.profile]["activity"] == [vote.event_id, post.event_id]
        assert rows[post.profile]["state"] == "merged"
        assert rows[post.profile]["merged_into"] == d.profile

    def test_switch_users_mid_session(self) -> None:
        """quackback: "No need to call logout in between — the new identify call replaces"."""
        run = Run("quackback")
        a = run.identify({"id": "user_A", "email": "alice@example.com", "name": "Alice"})
        b = run.identify({"id": "user_B", "email": "bob@example.com", "name": "Bob"})
        assert b.outcome == "identified" and b.profile != a.profile
        cites(b, "session.switched", "anonymous.on_identify")
        assert b.merged == ()
        vote = run.track("vote")
        assert vote.profile == b.profile
        rows = run.rows()
        assert rows[a.profile]["activity"] == [] and rows[a.profile]["sessions"] == []
        assert rows[b.profile]["activity"] == [vote.event_id]

    def test_logout_returns_to_anonymous(self) -> None:
        """quackback: "just in an anonymous state, same as it started"."""
        run = Run("quackback")
        before = run.track("post", email="ada@example.com")
        account = run.identify({"id": "user_123", "email": "ada@example.com"})
        assert run.logout().outcome == "logged_out"
        assert run.track("post").outcome == "rejected"  # as it started: the email prompt
        after = run.track("post", email="ada@example.com")
        assert after.outcome == "recorded" and after.created
        assert after.profile not in (before.profile, account.profile)
        assert run.rows()[account.profile]["activity"] == [before.event_id]

    def test_inline_email_prompt(self) -> None:
        """quackback: "prompts for an email inline the first time the user posts"."""
        run = Run("quackback")
        d = run.track("post")
        assert d.outcome == "rejected" and d.profile is None
        assert cites(d, "activity.email_required", "anonymous.activity_requires_email").field
        d = run.track("post", email="ada@example.com")
        assert d.outcome == "recorded" and d.created
        again = run.track("vote")  # the session's profile now has the email
        assert again.outcome == "recorded" and again.profile == d.profile
        assert run.rows()[d.profile]["anonymous"] is True


class TestReplyful:
    """shared/seeds/replyful-identify.txt."""

    def test_hs256_token(self) -> None:
        """replyful: "Your backend generates a signed JWT" ... "algorithm: 'HS256'"."""
        run = Run("replyful", secrets={"current": SECRET * 2})
        d = run.identify({"token": token({"userId": "u_1"}, SECRET * 2)})
        assert d.outcome == "identified" and ident(d)[4] is True
        d = run.identify({"token": token({"userId": "u_1"}, SECRET * 2, "HS512")}, session="s2")
        assert d.outcome == "anonymous"
        cites(d, "auth.algorithm", "verification.jwt.algorithms", "replyful")

    def test_user_id_required(self) -> None:
        """replyful: "userId | string | Yes | Unique identifier in your system"."""
        run = Run("replyful")
        d = run.identify({"token": token({"sub": "u_1", "email": "ada@example.com"})})
        assert d.outcome == "anonymous"
        assert cites(d, "auth.claims", "verification.jwt.required").field == "userId"
        d = run.identify({"token": token({"userId": "u_1"})}, session="s2")
        assert ident(d)[0] == "u_1"

    def test_email_and_name_optional(self) -> None:
        """replyful: "email | string | No" and "name | string | No"."""
        run = Run("replyful")
        d = run.identify({"token": token({"userId": "u_1"})})
        assert d.outcome == "identified" and ident(d) == ("u_1", None, None, None, True)
        d = run.identify(
            {"token": token({"userId": "u_2", "email": "Ada@Example.com", "name": "Ada"})}
        )
        assert ident(d) == ("u_2", "Ada@example.com", "Ada", None, True)

    def test_custom_properties(self) -> None:
        """replyful: "* | any | No | Custom properties (visible to support)"."""
        run = Run("replyful")
        claims = {"userId": "u_1", "plan": "pro", "company": "Acme", "iat": T0_S, "exp": T0_S + 60}
        d = run.identify({"token": token(claims)})
        assert dict(d.attributes) == {"plan": "pro", "company": "Acme"}
        (row,) = run.rows().values()
        assert row["attributes"] == {"company": "Acme", "plan": "pro"}

    def test_missing_expired_or_invalid_tokens_stay_anonymous(self) -> None:
        """replyful: "missing or invalid tokens gracefully — users can still chat anonymously"."""
        run = Run("replyful")
        expired = token({"userId": "u_1", "iat": T0_S - 7200, "exp": T0_S - 3600})
        cases = [
            ({}, None),
            ({"userId": "u_1", "email": "ada@example.com"}, None),  # details without a token
            ({"token": expired}, "auth.expired"),
            ({"token": token({"userId": "u_1"}, NEW_SECRET)}, "auth.invalid"),
            ({"token": "not-a-jwt"}, "auth.invalid"),
        ]
        for i, (payload, code) in enumerate(cases):
            session = f"s{i}"
            d = run.identify(payload, session=session)
            assert d.outcome == "anonymous", (payload, d.to_json())
            if code is not None:
                assert code in d.codes
            chat = run.track("message", session=session)
            assert chat.outcome == "recorded" and chat.profile == d.profile
        assert all(row["anonymous"] for row in run.rows().values())

    def test_one_hour_token(self) -> None:
        """replyful: "Use short expiration times (1 hour recommended)" (expiresIn: '1h')"""
        tok = token({"userId": "u_1", "iat": T0_S, "exp": T0_S + 3600})
        run = Run("replyful")
        assert run.identify({"token": tok}, at=3599).outcome == "identified"
        d = run.identify({"token": tok}, session="s2", at=3600 + 31)
        assert d.outcome == "anonymous"
        cites(d, "auth.expired", "verification.jwt.leeway_s", "replyful")

    def test_links_the_conversation(self) -> None:
        """replyful: "Replyful verifies the token and links the conversation to the user"."""
        run = Run("replyful")
        d = run.identify({"token": token({"userId": "u_1"})})
        chat = run.track("message")
        assert chat.profile == d.profile
        assert run.rows()[d.profile]["activity"] == [chat.event_id]


class TestUserjot:
    """shared/seeds/userjot-identify.txt."""

    def test_id_required(self) -> None:
        """userjot: "id: 'user_123', // Required: unique user ID"."""
        run = Run("userjot")
        d = run.identify({"email": "john@example.com", "firstName": "John"})
        assert d.outcome == "rejected"
        cites(d, "user_id.missing", "fields.user_id.required", "userjot")
        d = run.identify({"id": "user_123"})
        assert d.outcome == "identified" and ident(d)[0] == "user_123"

    def test_email(self) -> None:
        """userjot: "email: 'john@example.com'," (stored normalised)"""
        d = Run("userjot").identify({"id": "user_123", "email": "john@EXAMPLE.com"})
        assert ident(d)[1] == "john@example.com"

    def test_first_and_last_name(self) -> None:
        """userjot: "firstName: 'John', lastName: 'Doe'," (one name; either part alone works)"""
        run = Run("userjot")
        d = run.identify({"id": "u_1", "firstName": "John", "lastName": "Doe"})
        assert ident(d)[2] == "John Doe"
        assert ident(run.identify({"id": "u_2", "firstName": "John"}))[2] == "John"
        assert ident(run.identify({"id": "u_3", "lastName": "Doe"}))[2] == "Doe"
        assert ident(run.identify({"id": "u_4"}))[2] is None

    def test_avatar(self) -> None:
        """userjot: "avatar: 'https://example.com/avatar.jpg'"."""
        run = Run("userjot")
        d = run.identify({"id": "user_123", "avatar": "https://example.com/avatar.jpg"})
        assert ident(d)[3] == "https://example.com/avatar.jpg"
        (row,) = run.rows().values()
        assert row["avatar"] == "https://example.com/avatar.jpg"

    def test_signed_identification_optional(self) -> None:
        """userjot: "use signed identification to prevent impersonation"."""
        run = Run("userjot")
        plain = run.identify({"id": "u_1", "email": "john@example.com"})
        assert plain.outcome == "identified" and ident(plain)[4] is False
        signed = run.identify({"id": "u_2", "signature": hmac_hex("u_2")})
        assert signed.outcome == "identified" and ident(signed)[4] is True
        forged = run.identify({"id": "u_3", "signature": hmac_hex("u_2")})
        assert forged.outcome == "rejected"
        cites(forged, "auth.invalid", "verification.hmac.message", "userjot")
        spoof = run.identify({"id": "u_2"}, session="s2")  # impersonation of a signed user
        assert spoof.outcome == "rejected"
        cites(spoof, "auth.protected_profile", "verification.protect_verified", "userjot")

    def test_identify_null_clears(self) -> None:
        """userjot: "When users log out, clear their identification: window.uj.identify(null);"."""
        run = Run("userjot")
        account = run.identify({"id": "user_123", "email": "john@example.com"})
        d = run.identify(None)
        assert d.outcome == "logged_out" and d.profile is None
        vote = run.track("vote")
        assert vote.outcome == "recorded" and vote.profile != account.profile
        assert run.rows()[account.profile]["sessions"] == []

    def test_anonymous_feedback_needs_email_votes_do_not(self) -> None:
        """userjot: "Submit feedback (with email required) ... Vote on features"."""
        run = Run("userjot")
        d = run.track("feedback", session="a")
        assert d.outcome == "rejected" and d.profile is None
        cites(d, "activity.email_required", "anonymous.activity_requires_email", "userjot")
        assert run.track("vote", session="b").outcome == "recorded"
        assert run.track("feedback", session="c", email="john@example.com").outcome == "recorded"

    def test_submissions_tracked_by_email_same_session(self) -> None:
        """userjot: "Their submissions will be tracked by email if provided." (same browser)"""
        run = Run("userjot")
        account = run.identify({"id": "user_123", "email": "john@example.com"}, session="old")
        run.logout(session="old")
        fb = run.track("feedback", session="s1", email="john@example.com")
        d = run.identify({"id": "user_123", "email": "john@example.com"}, session="s1")
        assert d.profile == account.profile and d.merged == (fb.profile,)
        cites(d, "anonymous.merged", "anonymous.on_identify", "userjot")
        rows = run.rows()
        assert rows[account.profile]["activity"] == [fb.event_id]
        assert rows[fb.profile]["state"] == "merged"

    def test_submissions_tracked_by_email_other_session(self) -> None:
        """userjot: "Their submissions will be tracked by email if provided." (other browser)"""
        run = Run("userjot")
        fb = run.track("feedback", session="kiosk", email="John@Example.com")
        d = run.identify({"id": "user_123", "email": "john@example.com"}, session="laptop")
        assert d.outcome == "identified" and d.profile == fb.profile
        cites(d, "match.email", "matching.precedence")
        rows = run.rows()
        assert rows[fb.profile]["anonymous"] is False
        assert rows[fb.profile]["activity"] == [fb.event_id]
        assert rows[fb.profile]["sessions"] == ["laptop"]  # the kiosk was detached
        later = run.track("vote", session="kiosk")  # never acts as the account
        assert later.profile != fb.profile and later.created
        assert run.rows()[fb.profile]["activity"] == [fb.event_id]


class TestLumio:
    """shared/seeds/lumio-identify.txt."""

    def test_user_id_required(self) -> None:
        """lumio: "userId: 'user_123', // required — your internal user id"."""
        run = Run("lumio")
        d = run.identify({"email": "alice@example.com", "signature": hmac_hex("")})
        assert d.outcome == "rejected"
        cites(d, "user_id.missing", "fields.user_id.required", "lumio")
        assert run.rows() == {}

    def test_signature_required(self) -> None:
        """lumio: "signature: '<hmac>', // required — computed server-side"."""
        run = Run("lumio")
        d = run.identify({"userId": "user_123", "name": "Alice"})
        assert d.outcome == "rejected"
        assert cites(d, "auth.missing", "verification.mode", "lumio").field == "signature"
        assert run.rows() == {}

    def test_signature_is_hex_hmac_of_user_id(self) -> None:
        """lumio: "The signature is an HMAC-SHA256 of the userId" (.digest('hex'))"""
        conformance = "9652701f4e4edfeb3dbd302a91a42580068648c8986f9ac3b62530232d71bd17"
        assert hmac_hex("user_123", "s3cr3t-current-key-0123456789abcdef") == conformance
        run = Run("lumio", secrets={"current": "s3cr3t-current-key-0123456789abcdef"})
        d = run.identify({"userId": "user_123", "signature": conformance})
        assert d.outcome == "identified" and ident(d)[4] is True
        cites(d, "auth.verified", "verification.method", "lumio")

    def test_prevents_spoofing(self) -> None:
        """lumio: "Verified identity — prevents user spoofing via a server-side HMAC signature"."""
        run = Run("lumio")
        d = run.identify({"userId": "admin", "signature": hmac_hex("user_123")})
        assert d.outcome == "rejected"
        cites(d, "auth.invalid", "verification.hmac.message", "lumio")

    def test_name_and_email_optional(self) -> None:
        """lumio: "name: 'Alice', // optional" and "email: ..., // optional"."""
        run = Run("lumio")
        d = run.identify({"userId": "user_123", "signature": hmac_hex("user_123")})
        assert ident(d) == ("user_123", None, None, None, True)
        d = run.identify(
            {
                "userId": "user_123",
                "signature": hmac_hex("user_123"),
                "name": "Alice",
                "email": "alice@example.com",
            }
        )
        assert ident(d) == ("user_123", "alice@example.com", "Alice", None, True)

    def test_properties_are_attributes(self) -> None:
        """lumio: "properties: { // optional — any key/value pairs"."""
        run = Run("lumio")
        d = run.identify(
            {
                "userId": "user_123",
                "signature": hmac_hex("user_123"),
                "properties": {"plan": "pro", "role": "admin", "companySize": 40},
            }
        )
        assert dict(d.attributes) == {"plan": "pro", "role": "admin", "companySize": 40}
        (row,) = run.rows().values()
        assert row["attributes"] == {"companySize": 40, "plan": "pro", "role": "admin"}

    def test_properties_snapshotted_on_events(self) -> None:
        """lumio: "Lumio also snapshots these properties on analytics events"."""
        run = Run("lumio")
        sig = hmac_hex("user_123")
        run.identify({"userId": "user_123", "signature": sig, "properties": {"plan": "free"}})
        first = run.track("article_read")
        assert first.outcome == "recorded" and dict(first.attributes) == {"plan": "free"}
        run.identify({"userId": "user_123", "signature": sig, "properties": {"plan": "pro"}})
        second = run.track("article_read")
        assert dict(second.attributes) == {"plan": "pro"}
        assert dict(first.attributes) == {"plan": "free"}


class TestHelpshift:
    """shared/seeds/helpshift-webchat-identify.txt (Identity Verification as an override)."""

    VERIFIED = "extends: helpshift\nverification: {mode: required}\n"

    def test_user_auth_token_is_base64_hmac_of_user_id(self, tmp_path: Path) -> None:
        """helpshift: "HMAC using SHA256" ... "generated only using the userId"."""
        run = Run(override(tmp_path, self.VERIFIED))
        tok = hmac_b64("captain_planet")
        d = run.identify(
            {
                "userId": "captain_planet",
                "userEmail": "captain@example.com",
                "userName": "Captain Planet",
                "userAuthToken": tok,
            }
        )
        assert d.outcome == "identified" and ident(d)[4] is True
        # the seed's example token: 43 base64 characters, no padding, with + and /
        example = "ab+dKOFgxspi3ARXSa/zSdN4wFrU6CQu3hJzHQtXYRI"
        assert (
            run.identify({"userId": "captain_planet", "userAuthToken": tok.rstrip("=")}).outcome
            == "identified"
        )
        d = run.identify({"userId": "captain_planet", "userAuthToken": example}, session="s2")
        assert d.outcome == "rejected"
        cites(d, "auth.invalid", "verification.hmac.message")  # well-shaped, wrong value
        d = run.identify({"userId": "captain_planet", "userAuthToken": hmac_hex("x")})
        cites(d, "auth.invalid", "verification.hmac.encoding")

    def test_unverified_logged_in_users_refused(self, tmp_path: Path) -> None:
        """helpshift: "Logged-in users ... are not able to file issues ... if ... unverified"."""
        run = Run(override(tmp_path, self.VERIFIED))
        for payload in ({"userId": "captain_planet"}, {"userEmail": "captain@example.com"}):
            d = run.identify(payload)
            assert d.outcome == "rejected"
            assert cites(d, "auth.missing", "verification.mode").field == "signature"
        d = run.identify({"userId": "captain_planet", "userAuthToken": hmac_b64("piano_man")})
        assert d.outcome == "rejected"
        cites(d, "auth.invalid", "verification.hmac.message")
        assert run.rows() == {}

    def test_anonymous_users_never_refused(self, tmp_path: Path) -> None:
        """helpshift: "Anonymous users ... are always able to file issues"."""
        run = Run(override(tmp_path, self.VERIFIED))
        d = run.identify({"userName": "Someone"})
        assert d.outcome == "anonymous"
        assert not [c for c in d.codes if c.startswith("auth.")]
        issue = run.track("issue")
        assert issue.outcome == "recorded" and issue.profile == d.profile

    def test_old_secret_invalid_once_deleted(self, tmp_path: Path) -> None:
        """helpshift: "delete the old secret key ... the old secret key become invalid"."""
        both = override(
            tmp_path,
            "extends: helpshift\nverification: {mode: required, keys: [current, previous]}\n",
        )
        run = Run(both, secrets={"current": NEW_SECRET, "previous": SECRET})
        d = run.identify({"userId": "u_1", "userAuthToken": hmac_b64("u_1", SECRET)})
        assert d.outcome == "identified"
        assert cites(d, "auth.verified", "verification.method").detail.startswith("key previous;")
        deleted = Run(override(tmp_path, self.VERIFIED), secrets={"current": NEW_SECRET})
        d = deleted.identify({"userId": "u_1", "userAuthToken": hmac_b64("u_1", SECRET)})
        assert d.outcome == "rejected"

    def test_clear_anonymous_user_on_login(self, tmp_path: Path) -> None:
        """helpshift: "clearAnonymousUserOnLogin ... Once cleared ... are not fetched again"."""
        run = Run(override(tmp_path, "extends: helpshift\nanonymous: {on_identify: clear}\n"))
        anon = run.track("issue")
        d = run.identify({"userId": "piano_man"})
        assert d.outcome == "identified" and d.profile != anon.profile and d.merged == ()
        cites(d, "anonymous.cleared", "anonymous.on_identify")
        run.logout()
        again = run.track("issue")
        assert again.created and again.profile != anon.profile
        rows = run.rows()
        assert rows[anon.profile]["state"] == "cleared"
        assert rows[anon.profile]["sessions"] == []
        assert rows[d.profile]["activity"] == []

    def test_anonymous_user_cleared_after_7_days(self) -> None:
        """helpshift: "The anonymous user will be cleared from Web Chat after 7 days"."""
        run = Run("helpshift")
        first = run.track("issue", at=0)
        assert run.track("issue", at=6 * DAY).profile == first.profile
        assert run.track("issue", at=13 * DAY).profile == first.profile  # 7 days since last use
        late = run.track("issue", at=20 * DAY + 1)
        assert late.profile != first.profile and late.created
        cites(late, "anonymous.expired", "anonymous.ttl_days", "helpshift")
        assert run.rows()[first.profile]["state"] == "expired"

    def test_logout_restores_browser_anonymous_user(self) -> None:
        """helpshift: "only the conversations started by anonymous users using that ... browser"."""
        run = Run("helpshift")
        anon = run.track("issue", session="browser")
        other = run.track("issue", session="elsewhere")
        account = run.identify({"userId": "captain_planet"}, session="browser")
        cites(account, "anonymous.kept", "anonymous.on_identify")
        run.logout(session="browser")
        after = run.track("issue", session="browser")
        assert after.profile == anon.profile != other.profile
        assert run.rows()[anon.profile]["activity"] == [anon.event_id, after.event_id]


class TestStrict:
    """strict (docs/rules.md): "the recommended secure default for new integrations\"."""

    @pytest.mark.parametrize(
        "placeholder", ["undefined", "NULL", "None", "[object Object]", "0", "-1", "guest", ""]
    )
    def test_placeholder_ids_refused(self, placeholder: str) -> None:
        """strict: "rejects placeholder ids"."""
        run = Run("strict")
        d = run.identify({"user_id": placeholder, "signature": hmac_hex(placeholder)})
        assert d.outcome == "rejected" and d.profile is None
        cites(d, "user_id.blocked", "fields.user_id.blocked", "strict")
        assert run.rows() == {}

    def test_hmac_required(self) -> None:
        """strict: "requires an HMAC (hex, over {user_id}) for every identified call"."""
        run = Run("strict")
        d = run.identify({"user_id": "u_1", "email": "ada@example.com"})
        assert d.outcome == "rejected"
        cites(d, "auth.missing", "verification.mode", "strict")
        d = run.identify({"user_id": "u_1", "signature": hmac_hex("u_1")})
        assert d.outcome == "identified" and ident(d)[4] is True

    def test_canonical_dialect(self) -> None:
        """strict: "uses the canonical dialect (payload keys user_id, email, name, ...)"."""
        d = Run("strict").identify(
            {
                "user_id": "u_1",
                "email": "ada@example.com",
                "name": "Ada",
                "avatar": "https://example.com/a.png",
                "signature": hmac_hex("u_1"),
            }
        )
        assert ident(d) == ("u_1", "ada@example.com", "Ada", "https://example.com/a.png", True)

    def test_verified_profiles_protected(self, tmp_path: Path) -> None:
        """strict: "protects verified profiles"."""
        assert load_ruleset("strict").verification.protect_verified is True
        run = Run(override(tmp_path, "extends: strict\nverification: {mode: optional}\n"))
        run.identify({"user_id": "u_1", "signature": hmac_hex("u_1")})
        d = run.identify({"user_id": "u_1"}, session="s2")
        assert d.outcome == "rejected"
        cites(d, "auth.protected_profile", "verification.protect_verified", "strict")

    def test_anonymous_sessions_merged_on_identify(self) -> None:
        """strict: "merges anonymous sessions on identify"."""
        run = Run("strict")
        vote = run.track("vote", session="s1")
        new = run.identify({"user_id": "u_1", "signature": hmac_hex("u_1")}, session="s1")
        assert new.profile == vote.profile
        cites(new, "anonymous.promoted", "anonymous.on_identify", "strict")
        post = run.track("post", session="s2")
        existing = run.identify({"user_id": "u_1", "signature": hmac_hex("u_1")}, session="s2")
        assert existing.profile == new.profile and existing.merged == (post.profile,)
        cites(existing, "anonymous.merged", "anonymous.on_identify", "strict")
        assert run.rows()[new.profile]["activity"] == [vote.event_id, post.event_id]
