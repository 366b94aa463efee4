"""Stage 4: field checks and policies (fields.py), against docs/rules.md "Field policies"."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest

from idrules import Engine, Ruleset, load_ruleset
from idrules.fields import FieldChecker, IdentityChecker


def rules(tmp_path: Path, text: str, name: str = "rules.yaml") -> Ruleset:
    """A ruleset from an override file (``extends: helpshift`` plus ``text``)."""
    path = tmp_path / name
    path.write_text("extends: helpshift\n" + text, encoding="utf-8")
    return load_ruleset(path)


def check(ruleset: Ruleset, **values: Any) -> Any:
    return IdentityChecker(ruleset).check(values)


def field(ruleset: Ruleset, name: str, raw: Any) -> Any:
    return FieldChecker(name, ruleset.field(name), ruleset).check(raw)


def codes(result: Any) -> list[str]:
    return [reason.code for reason in result.reasons]


@pytest.fixture(scope="module")
def helpshift() -> Ruleset:
    return load_ruleset("helpshift")


@pytest.fixture(scope="module")
def strict() -> Ruleset:
    return load_ruleset("strict")


class TestType:
    @pytest.mark.parametrize("raw", [5, 1.5, True, False, ["u1"], {"id": "u1"}])
    def test_string_type_refuses_non_strings(self, helpshift: Ruleset, raw: Any) -> None:
        """type: string refuses numbers, booleans, arrays and objects (invalid_type)."""
        result = field(helpshift, "user_id", raw)
        assert result.value is None
        assert result.failed == "anonymous"
        assert codes(result) == ["user_id.invalid_type"]
        assert result.reasons[0].rule.endswith(" fields.user_id.type")

    @pytest.mark.parametrize(("raw", "value"), [(42, "42"), (-7, "-7"), (1.5, "1.5"), ("u", "u")])
    def test_scalar_type_accepts_numbers_as_text(
        self, tmp_path: Path, raw: Any, value: str
    ) -> None:
        """type: scalar takes a number as its JSON text."""
        ruleset = rules(tmp_path, "fields:\n  user_id: {type: scalar}\n")
        result = field(ruleset, "user_id", raw)
        assert (result.value, result.key, result.failed) == (value, value, None)

    @pytest.mark.parametrize("raw", [True, False, [1], {"a": 1}])
    def test_scalar_type_refuses_booleans_and_containers(self, tmp_path: Path, raw: Any) -> None:
        """type: scalar still refuses booleans, arrays and objects."""
        ruleset = rules(tmp_path, "fields:\n  user_id: {type: scalar}\n")
        result = field(ruleset, "user_id", raw)
        assert codes(result) == ["user_id.invalid_type"]
        assert "a string or a number" in (result.reasons[0].detail or "")


class TestWhitespace:
    @pytest.mark.parametrize("raw", [" u1", "u1 ", "\tu1", "u1\n", "\u00a0u1"])
    def test_invalid(self, helpshift: Ruleset, raw: str) -> None:
        """whitespace: invalid fails a value with leading or trailing whitespace."""
        result = field(helpshift, "user_id", raw)
        assert result.value is None
        assert result.failed == "anonymous"
        assert codes(result) == ["user_id.whitespace"]
        assert result.reasons[0].rule.endswith(" fields.user_id.whitespace")

    def test_inner_spaces_are_not_whitespace_errors(self, helpshift: Ruleset) -> None:
        """Spaces inside a value are allowed."""
        assert field(helpshift, "user_id", "u 1").value == "u 1"

    def test_strip(self, strict: Ruleset) -> None:
        """whitespace: strip trims the value and says so (<field>.trimmed)."""
        result = field(strict, "name", "  Ada  ")
        assert result.value == "Ada"
        assert result.failed is None
        assert codes(result) == ["name.trimmed"]
        assert result.reasons[0].rule.endswith(" fields.name.whitespace")

    def test_keep(self, helpshift: Ruleset) -> None:
        """whitespace: keep leaves the value as sent, without a reason."""
        result = field(helpshift, "name", "  Ada ")
        assert result.value == "  Ada "
        assert result.reasons == ()


class TestEmpty:
    def test_absent(self, helpshift: Ruleset) -> None:
        """empty: absent treats an empty string as if the field were not sent."""
        result = field(helpshift, "user_id", "")
        assert (result.value, result.failed, result.reasons) == (None, None, ())

    def test_blank_after_strip_is_absent(self, strict: Ruleset) -> None:
        """A value that strips to empty is absent, after its trimmed reason."""
        result = field(strict, "name", "   ")
        assert (result.value, result.failed) == (None, None)
        assert codes(result) == ["name.trimmed"]

    def test_given(self, tmp_path: Path) -> None:
        """empty: given keeps an empty string as a value."""
        ruleset = rules(tmp_path, "fields:\n  name: {empty: given}\n")
        result = field(ruleset, "name", "")
        assert result.value == ""
        assert result.failed is None

    def test_given_then_blocked(self, strict: Ruleset) -> None:
        """strict: an empty user id counts as given and is refused as a blocked placeholder."""
        result = field(strict, "user_id", "")
        assert result.failed == "reject"
        assert codes(result) == ["user_id.blocked"]


class TestBlocked:
    @pytest.mark.parametrize("raw", ["undefined", "UNDEFINED", "Null", "[object object]", "GUEST"])
    def test_case_insensitive(self, strict: Ruleset, raw: str) -> None:
        """blocked values compare case-insensitively."""
        result = field(strict, "user_id", raw)
        assert result.value is None
        assert result.failed == "reject"
        assert codes(result) == ["user_id.blocked"]
        assert result.reasons[0].rule.endswith(" fields.user_id.blocked")

    def test_not_blocked(self, strict: Ruleset) -> None:
        """A value merely containing a placeholder is fine."""
        assert field(strict, "user_id", "undefined_user").value == "undefined_user"

    def test_blocked_checked_after_strip(self, tmp_path: Path) -> None:
        """A stripped value is compared with the blocked list."""
        ruleset = rules(tmp_path, "fields:\n  name: {whitespace: strip, blocked: [Anon]}\n")
        assert codes(field(ruleset, "name", " anon ")) == ["name.trimmed", "name.blocked"]


class TestMaxLength:
    def test_at_the_limit_is_fine(self, helpshift: Ruleset) -> None:
        """A value of exactly max_length code points passes untouched."""
        result = field(helpshift, "user_id", "x" * 750)
        assert result.value == "x" * 750
        assert result.reasons == ()

    def test_too_long_invalid(self, helpshift: Ruleset) -> None:
        """too_long: invalid fails the value and cites fields.<f>.max_length."""
        result = field(helpshift, "user_id", "x" * 751)
        assert result.value is None
        assert result.failed == "anonymous"
        assert codes(result) == ["user_id.too_long"]
        assert result.reasons[0].rule == str(helpshift.cite("fields.user_id.max_length"))
        assert result.reasons[0].rule.startswith("helpshift.yaml:")

    def test_truncate(self, helpshift: Ruleset) -> None:
        """too_long: truncate cuts to max_length and cites fields.<f>.max_length."""
        result = field(helpshift, "name", "n" * 300)
        assert result.value == "n" * 255
        assert result.failed is None
        assert codes(result) == ["name.truncated"]
        assert result.reasons[0].rule.endswith(" fields.name.max_length")

    def test_counts_code_points_not_bytes_or_utf16(self, tmp_path: Path) -> None:
        """Lengths are code points: three emoji fit a limit of 3 and truncation keeps them whole."""
        ruleset = rules(tmp_path, "fields:\n  name: {max_length: 3}\n")
        assert field(ruleset, "name", "\U0001f600" * 3).reasons == ()
        result = field(ruleset, "name", "\U0001f600" * 4 + "é")
        assert result.value == "\U0001f600" * 3
        result.value.encode("utf-8")

    def test_override_file_is_cited_by_path_as_given(self, tmp_path: Path) -> None:
        """A limit set in the user's file cites that file (as given) and its line."""
        path = tmp_path / "mine.yaml"
        path.write_text("extends: helpshift\nfields:\n  name:\n    max_length: 3\n")
        ruleset = load_ruleset(str(path))
        result = field(ruleset, "name", "Adaline")
        assert result.reasons[0].rule == f"{path}:4 fields.name.max_length"


class TestEmail:
    def test_normalisation(self, helpshift: Ruleset) -> None:
        """The domain is lower-cased, the local part kept, the match key casefolded."""
        result = field(helpshift, "email", "Ada.Lovelace@Example.COM")
        assert result.value == "Ada.Lovelace@example.com"
        assert result.key == "ada.lovelace@example.com"

    def test_case_variants_share_a_key(self, helpshift: Ruleset) -> None:
        """FOObar@Example.Com and foobar@example.com are one address."""
        assert (
            field(helpshift, "email", "FOObar@Example.Com").key
            == field(helpshift, "email", "foobar@example.com").key
        )

    @pytest.mark.parametrize("raw", ["not-an-email", "a@", "@example.com", "a@@b.com", "a b@c.com"])
    def test_invalid_syntax(self, helpshift: Ruleset, raw: str) -> None:
        """An address failing email-validator's syntax check is email.invalid (its knob cited)."""
        result = field(helpshift, "email", raw)
        assert result.value is None
        assert result.failed == "anonymous"
        assert codes(result) == ["email.invalid"]
        assert result.reasons[0].rule.endswith(" fields.email.validate")
        assert result.reasons[0].detail

    def test_no_dns(self, helpshift: Ruleset, monkeypatch: pytest.MonkeyPatch) -> None:
        """A domain that does not exist is accepted, and no network lookup is made."""

        def no_network(*args: Any, **kwargs: Any) -> Any:
            raise AssertionError("DNS lookup attempted")

        monkeypatch.setattr(socket, "getaddrinfo", no_network)
        monkeypatch.setattr(socket, "gethostbyname", no_network)
        try:
            import dns.resolver

            monkeypatch.setattr(dns.resolver.Resolver, "resolve", no_network)
        except ImportError:  # pragma: no cover - dnspython is email-validator's dependency
            pass
        address = "someone@no-such-domain-3f9a7c1e-idrules.com"
        result = field(helpshift, "email", address)
        assert result.value == address
        assert result.failed is None

    def test_validate_false_keeps_text_but_matches_casefolded(self, tmp_path: Path) -> None:
        """validate: false accepts any text and still compares case-insensitively."""
        ruleset = rules(tmp_path, "fields:\n  email: {validate: false}\n")
        result = field(ruleset, "email", "Not An Email")
        assert (result.value, result.key, result.failed) == ("Not An Email", "not an email", None)

    def test_email_whitespace_invalid(self, helpshift: Ruleset) -> None:
        """An email with surrounding spaces is invalid under whitespace: invalid."""
        assert codes(field(helpshift, "email", " a@example.com")) == ["email.whitespace"]

    def test_email_too_long_by_default(self, helpshift: Ruleset) -> None:
        """An address over the default 254 code points is too long."""
        result = field(helpshift, "email", "a" * 64 + "@" + "b" * 190 + ".com")
        assert codes(result) == ["email.too_long"]

    def test_inline_email_uses_the_email_rule(self, helpshift: Ruleset) -> None:
        """A track's inline email goes through the same email checks."""
        checker = IdentityChecker(helpshift)
        assert checker.check_email("Ada@Example.com").key == "ada@example.com"
        assert checker.check_email("nope").failed == "anonymous"


class TestEmailShaped:
    def test_allow(self, tmp_path: Path) -> None:
        """email_shaped: allow accepts an email-like user id silently."""
        ruleset = rules(tmp_path, "fields:\n  user_id: {email_shaped: allow}\n")
        result = field(ruleset, "user_id", "ada@example.com")
        assert (result.value, result.reasons) == ("ada@example.com", ())

    def test_warn(self, helpshift: Ruleset) -> None:
        """email_shaped: warn accepts it with a user_id.email_shaped reason."""
        result = field(helpshift, "user_id", "ada@example.com")
        assert result.value == "ada@example.com"
        assert result.failed is None
        assert codes(result) == ["user_id.email_shaped"]
        assert result.reasons[0].rule.endswith(" fields.user_id.email_shaped")

    def test_invalid(self, tmp_path: Path) -> None:
        """email_shaped: invalid fails the user id under its on_invalid policy."""
        ruleset = rules(
            tmp_path, "fields:\n  user_id: {email_shaped: invalid, on_invalid: reject}\n"
        )
        result = field(ruleset, "user_id", "ada@example.com")
        assert result.value is None
        assert result.failed == "reject"
        assert codes(result) == ["user_id.email_shaped"]

    @pytest.mark.parametrize("raw", ["ada@localhost", "u_1", "@handle", "a@b"])
    def test_not_email_shaped(self, helpshift: Ruleset, raw: str) -> None:
        """Ids that do not look like an address are not flagged."""
        assert field(helpshift, "user_id", raw).reasons == ()


class TestCaseSensitivity:
    def test_user_id_case_sensitive_by_default(self, helpshift: Ruleset) -> None:
        """User ids keep their case: 1abc and 1ABC are different keys."""
        assert field(helpshift, "user_id", "1abc").key != field(helpshift, "user_id", "1ABC").key

    def test_case_insensitive_user_id(self, tmp_path: Path) -> None:
        """case_sensitive: false casefolds the key but keeps the value as sent."""
        ruleset = rules(tmp_path, "fields:\n  user_id: {case_sensitive: false}\n")
        result = field(ruleset, "user_id", "StraSSe")
        assert (result.value, result.key) == ("StraSSe", "strasse")


class TestRequired:
    def test_missing_with_identifier(self, tmp_path: Path) -> None:
        """A required field absent from a call with an identifier is <field>.missing."""
        ruleset = rules(tmp_path, "fields:\n  email: {required: true, on_invalid: reject}\n")
        result = check(ruleset, user_id="u1")
        assert result.failed == "reject"
        assert codes(result) == ["email.missing"]
        assert result.reasons[0].rule.endswith(" fields.email.required")

    def test_not_required_without_identifier(self, tmp_path: Path) -> None:
        """required does not apply to a call that carries no identifier."""
        ruleset = rules(tmp_path, "fields:\n  name: {required: true, on_invalid: reject}\n")
        result = check(ruleset, name=None)
        assert (result.failed, result.reasons, result.given_identifier) == (None, (), False)

    def test_present_required_field(self, tmp_path: Path) -> None:
        """A required field that is present is simply checked."""
        ruleset = rules(tmp_path, "fields:\n  name: {required: true, on_invalid: reject}\n")
        result = check(ruleset, user_id="u1", name="Ada")
        assert (result.failed, result.value("name")) == (None, "Ada")

    def test_missing_policy_applies(self, tmp_path: Path) -> None:
        """on_invalid applies to a missing required field (anonymous here)."""
        ruleset = rules(tmp_path, "fields:\n  name: {required: true, on_invalid: anonymous}\n")
        engine = Engine(ruleset)
        decision = engine.identify({"userId": "u1"}, session="s", ts="2026-03-01T12:00:00Z")
        assert decision.outcome == "anonymous"
        assert "name.missing" in decision.codes

    def test_required_field_that_fails_is_not_also_missing(self, tmp_path: Path) -> None:
        """A required field sent with a bad value fails once, not as missing too."""
        ruleset = rules(tmp_path, "fields:\n  email: {required: true, on_invalid: reject}\n")
        assert codes(check(ruleset, user_id="u1", email="nope")) == ["email.invalid"]


class TestSeverity:
    def test_reject_beats_anonymous_and_drop(self, tmp_path: Path) -> None:
        """reject > anonymous > drop, whatever the field order."""
        ruleset = rules(
            tmp_path,
            "fields:\n  user_id: {on_invalid: anonymous}\n  email: {on_invalid: drop}\n"
            "  name: {on_invalid: reject, type: string}\n",
        )
        result = check(ruleset, user_id=" u", email="bad", name=5)
        assert result.failed == "reject"
        assert codes(result) == ["user_id.whitespace", "email.invalid", "name.invalid_type"]

    def test_anonymous_beats_drop(self, helpshift: Ruleset) -> None:
        """A dropped name does not hide an anonymous user id."""
        result = check(helpshift, user_id=" u", name=5)
        assert result.failed == "anonymous"

    def test_drop_keeps_the_call(self, helpshift: Ruleset) -> None:
        """on_invalid: drop loses only that field; the call still identifies."""
        engine = Engine(helpshift)
        decision = engine.identify(
            {"userId": "u1", "userName": 5}, session="s", ts="2026-03-01T12:00:00Z"
        )
        assert decision.outcome == "identified"
        assert decision.identity is not None
        assert (decision.identity.user_id, decision.identity.name) == ("u1", None)
        assert "name.invalid_type" in decision.codes

    def test_anonymous_policy_makes_the_call_anonymous(self, helpshift: Ruleset) -> None:
        """on_invalid: anonymous makes the whole call anonymous, even with a good email."""
        engine = Engine(helpshift)
        decision = engine.identify(
            {"userId": " u1", "userEmail": "a@example.com"}, session="s", ts="2026-03-01T12:00:00Z"
        )
        assert decision.outcome == "anonymous"
        assert decision.identity is not None
        assert decision.identity.email == "a@example.com"

    def test_reject_policy_rejects(self, strict: Ruleset) -> None:
        """on_invalid: reject refuses the call and changes nothing."""
        engine = Engine(strict, secrets={"current": "x" * 40})
        decision = engine.identify({"user_id": "undefined"}, session="s", ts="2026-03-01T12:00:00Z")
        assert decision.outcome == "rejected"
        assert decision.profile is None
        assert list(engine.store.profiles()) == []


class TestCheckOrder:
    def test_type_before_everything(self, strict: Ruleset) -> None:
        """A wrongly typed value reports only its type."""
        assert codes(field(strict, "user_id", ["null"])) == ["user_id.invalid_type"]

    def test_blocked_before_length(self, tmp_path: Path) -> None:
        """blocked is checked before max_length."""
        ruleset = rules(tmp_path, "fields:\n  user_id: {max_length: 3, blocked: [guest]}\n")
        assert codes(field(ruleset, "user_id", "GUEST")) == ["user_id.blocked"]

    def test_truncate_then_validate_email(self, tmp_path: Path) -> None:
        """A truncated email is validated after the cut."""
        ruleset = rules(tmp_path, "fields:\n  email: {max_length: 12, too_long: truncate}\n")
        result = field(ruleset, "email", "ab@example.com.extra")
        assert codes(result) == ["email.truncated"]
        assert result.value == "ab@example.c"
