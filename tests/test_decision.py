"""The decision value: canonical JSON form and secret fingerprints (docs/decisions.md)."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from idrules import Citation, Decision, Engine, Identity, Reason, RulesetRef
from idrules.decision import dumps, fingerprint

REF = RulesetRef("helpshift", "1", "ab" * 32)
TS = "2026-03-01T12:00:00Z"


def full() -> Decision:
    return Decision(
        event_id="e1",
        outcome="identified",
        ruleset=REF,
        profile="p_1",
        created=True,
        merged=("p_0",),
        identity=Identity("u_1", "ada@example.com", "Adá", None, True),
        attributes={"zeta": 1, "alpha": {"b": 2, "a": 1}},
        reasons=(
            Reason("match.email", Citation.parse("helpshift.yaml:75 matching.precedence"), "email"),
            Reason(
                "profile.updated",
                Citation.parse("x.yaml:3 matching.update_on_match"),
                "name",
                "détail",
            ),
        ),
    )


class TestToJson:
    def test_exact_canonical_bytes(self) -> None:
        """to_json() is compact, in documented key order, attributes sorted, UTF-8 unescaped."""
        expected = (
            '{"event_id":"e1","outcome":"identified","profile":"p_1","created":true,'
            '"merged":["p_0"],"identity":{"user_id":"u_1","email":"ada@example.com",'
            '"name":"Adá","avatar":null,"verified":true},'
            '"attributes":{"alpha":{"b":2,"a":1},"zeta":1},'
            '"reasons":[{"code":"match.email","rule":"helpshift.yaml:75 matching.precedence",'
            '"field":"email"},{"code":"profile.updated","rule":"x.yaml:3 matching.update_on_match",'
            '"field":"name","detail":"détail"}],'
            '"ruleset":{"name":"helpshift","version":"1","sha256":"' + "ab" * 32 + '"}}'
        )
        assert full().to_json() == expected

    def test_minimal_decision(self) -> None:
        """A bare decision has null profile/identity, false created, empty lists and objects."""
        decision = Decision("e2", "logged_out", REF)
        assert json.loads(decision.to_json()) == {
            "event_id": "e2",
            "outcome": "logged_out",
            "profile": None,
            "created": False,
            "merged": [],
            "identity": None,
            "attributes": {},
            "reasons": [],
            "ruleset": REF.to_dict(),
        }

    def test_null_event_id(self) -> None:
        """An unreadable id is JSON null."""
        assert Decision(None, "rejected", REF).to_json().startswith('{"event_id":null,')

    def test_line_when_given(self) -> None:
        """A replayed decision carries its line; a library one has none."""
        with_line = json.loads(Decision("e1", "recorded", REF, line=9).to_json())
        assert with_line["line"] == 9
        assert "line" not in json.loads(Decision("e1", "recorded", REF).to_json())

    def test_reason_omits_empty_field_and_detail(self) -> None:
        """A reason lists code and rule always, field and detail only when set."""
        assert Reason("event.invalid", None).to_dict() == {"code": "event.invalid", "rule": None}
        cited = Citation("r.yaml", 1, "k")
        assert list(Reason("a", cited, "f", "d").to_dict()) == ["code", "rule", "field", "detail"]
        assert Reason("a", cited, detail="d").to_dict() == {
            "code": "a",
            "rule": "r.yaml:1 k",
            "detail": "d",
        }

    def test_equal_decisions_give_equal_bytes(self) -> None:
        """Attribute insertion order does not change the bytes."""
        one = Decision("e", "recorded", REF, attributes={"a": 1, "b": 2})
        two = Decision("e", "recorded", REF, attributes={"b": 2, "a": 1})
        assert one.to_json() == two.to_json()

    def test_no_whitespace_and_single_line(self) -> None:
        """The JSON is one line with no insignificant whitespace."""
        text = Decision("e\n1", "recorded", REF, attributes={"k": "a b"}).to_json()
        assert "\n" not in text
        assert ", " not in text and ": " not in text

    def test_dumps_keeps_non_ascii(self) -> None:
        """dumps writes non-ASCII text as itself, not \\u escapes."""
        assert dumps({"n": "é😀"}) == '{"n":"é😀"}'

    def test_codes(self) -> None:
        """codes lists the reason codes in order."""
        assert full().codes == ["match.email", "profile.updated"]

    def test_roundtrip_of_engine_decision(self) -> None:
        """An engine's decision JSON parses back to its to_dict()."""
        decision = Engine("helpshift").identify({"userId": "u1"}, session="s", ts=TS)
        assert json.loads(decision.to_json()) == decision.to_dict()


class TestFingerprint:
    def test_format(self) -> None:
        """A fingerprint is sha256: and the first 12 lowercase hex digits of the hash."""
        value = fingerprint("secret-token")
        assert re.fullmatch(r"sha256:[0-9a-f]{12}", value)
        assert value == "sha256:" + hashlib.sha256(b"secret-token").hexdigest()[:12]

    def test_str_and_bytes_agree(self) -> None:
        """Text is hashed as its UTF-8 bytes."""
        assert fingerprint("clé") == fingerprint("clé".encode())

    def test_distinct_values_distinct_fingerprints(self) -> None:
        """Different values give different fingerprints (and never the value itself)."""
        assert fingerprint("a") != fingerprint("b")
        assert "abc" not in fingerprint("abc")[7:]

    def test_lone_surrogate_does_not_crash(self) -> None:
        """Even unencodable text gets a fingerprint."""
        assert fingerprint("\ud800").startswith("sha256:")


class TestSecretsNeverInDecisions:
    @pytest.mark.parametrize("variant", ["good", "bad", "upper"])
    def test_signature_and_secret_absent(self, variant: str) -> None:
        """Neither the secret nor the signature appears in a decision."""
        secret = "q" * 40
        engine = Engine("strict", secrets={"current": secret}, environ={})
        good = hmac.new(secret.encode(), b"u1", hashlib.sha256).hexdigest()
        signature = {"good": good, "bad": good[::-1], "upper": good.upper()}[variant]
        decision = engine.identify({"user_id": "u1", "signature": signature}, session="s", ts=TS)
        text = decision.to_json()
        assert secret not in text
        assert signature not in text and signature.lower() not in text
        assert decision.outcome == ("rejected" if variant == "bad" else "identified")


_TEXT = st.text(max_size=6)
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    _TEXT,
)
_FLAT = st.one_of(st.none(), st.booleans(), st.integers(), _TEXT)  # the assembled path
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(_TEXT, inner, max_size=3)),
    max_leaves=8,
)


class TestToJsonParts:
    """to_json assembles its text from parts; it must equal dumps(to_dict()) byte for byte."""

    @settings(max_examples=400, deadline=None)
    @given(
        attributes=st.one_of(
            st.dictionaries(_TEXT, _FLAT, min_size=2, max_size=5),
            st.dictionaries(_TEXT, _VALUES, max_size=4),
        ),
        event_id=st.one_of(st.none(), _TEXT),
        profile=st.one_of(st.none(), _TEXT),
        merged=st.lists(_TEXT, max_size=2),
        names=st.tuples(st.one_of(st.none(), _TEXT), st.one_of(st.none(), _TEXT)),
        line=st.one_of(st.none(), st.integers(min_value=1, max_value=10**9)),
        details=st.lists(st.tuples(_TEXT, st.one_of(st.none(), _TEXT)), max_size=3),
    )
    def test_same_bytes_as_the_dict_form(
        self,
        attributes: dict[str, Any],
        event_id: str | None,
        profile: str | None,
        merged: list[str],
        names: tuple[str | None, str | None],
        line: int | None,
        details: list[tuple[str, str | None]],
    ) -> None:
        """Any decision: the assembled line equals the encoder's, key order and escapes included."""
        decision = Decision(
            event_id,
            "identified",
            REF,
            profile,
            True,
            tuple(merged),
            Identity(names[0], names[1], None, 'ava"tar', False),
            attributes,
            tuple(
                Reason("c.ode", Citation("f.yaml", 1, rule), "f", detail)
                for rule, detail in details
            ),
            line,
        )
        assert decision.to_json() == dumps(decision.to_dict())
