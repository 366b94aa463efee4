"""Stage 2: the ruleset's ``input`` mapping from the client's payload to canonical fields."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from idrules import Engine, load_ruleset
from idrules.dialect import Dialect
from idrules.rules.model import InputMap

TS = "2026-03-01T12:00:00Z"


def dialect(**sources: Any) -> Dialect:
    return Dialect(InputMap(**sources))


class TestKey:
    def test_plain_key(self) -> None:
        """A payload key maps its value onto the canonical field."""
        mapped = dialect(user_id="userId", email="userEmail").map(
            {"userId": "u_1", "userEmail": "a@example.com"}
        )
        assert dict(mapped.values) == {"user_id": "u_1", "email": "a@example.com"}

    def test_values_come_out_as_sent(self) -> None:
        """The dialect does not normalise: spaces, case and non-strings are kept as sent."""
        mapped = dialect(user_id="userId", name="userName").map({"userId": 42, "userName": " Ada "})
        assert dict(mapped.values) == {"user_id": 42, "name": " Ada "}

    def test_null_counts_as_absent(self) -> None:
        """A key holding null is absent, exactly like a missing key."""
        mapped = dialect(user_id="userId", email="userEmail").map({"userId": None})
        assert dict(mapped.values) == {}

    def test_unmapped_fields_are_ignored(self) -> None:
        """A canonical field mapped to nothing never appears, whatever the payload holds."""
        mapped = dialect(user_id="userId").map({"userId": "u", "email": "a@example.com"})
        assert dict(mapped.values) == {"user_id": "u"}

    def test_falsy_values_are_present(self) -> None:
        """Empty strings, 0 and false are values, not absences (checks judge them later)."""
        mapped = dialect(user_id="a", email="b", name="c").map({"a": "", "b": 0, "c": False})
        assert dict(mapped.values) == {"user_id": "", "email": 0, "name": False}


class TestListOfKeys:
    def test_first_present_wins(self) -> None:
        """With a list of keys, the first one present in the payload wins."""
        d = dialect(user_id=("id", "userId", "user_id"))
        assert d.map({"userId": "b", "user_id": "c"}).values["user_id"] == "b"
        assert d.map({"id": "a", "userId": "b"}).values["user_id"] == "a"
        assert d.map({"user_id": "c"}).values["user_id"] == "c"

    def test_null_is_skipped(self) -> None:
        """A key holding null does not win: the next present key does."""
        d = dialect(user_id=("id", "userId"))
        assert d.map({"id": None, "userId": "b"}).values["user_id"] == "b"

    def test_none_present(self) -> None:
        """When no listed key is present the field is absent."""
        assert "user_id" not in dialect(user_id=("id", "userId")).map({"x": 1}).values


class TestTemplate:
    @pytest.mark.parametrize(
        ("payload", "expected"),
        [
            ({"firstName": "Ada", "lastName": "Lovelace"}, "Ada Lovelace"),
            ({"firstName": "Ada"}, "Ada"),
            ({"lastName": "Lovelace"}, "Lovelace"),
            ({"firstName": "Ada", "lastName": None}, "Ada"),
            ({"firstName": None, "lastName": "Lovelace"}, "Lovelace"),
            ({"firstName": "", "lastName": "Lovelace"}, "Lovelace"),
            ({"firstName": "Ada  Augusta", "lastName": "King"}, "Ada Augusta King"),
        ],
    )
    def test_missing_parts_dropped_spaces_collapsed(
        self, payload: dict[str, Any], expected: str
    ) -> None:
        """A template drops missing parts and collapses runs of spaces."""
        d = dialect(name="{firstName} {lastName}")
        assert d.map(payload).values["name"] == expected

    def test_all_parts_missing_is_absent(self) -> None:
        """A template none of whose parts is present yields no value."""
        d = dialect(name="{firstName} {lastName}")
        assert "name" not in d.map({"other": "x"}).values
        assert "name" not in d.map({"firstName": None, "lastName": None}).values

    def test_middle_part_missing(self) -> None:
        """A missing middle part leaves a single space between its neighbours."""
        d = dialect(name="{first} {middle} {last}")
        assert d.map({"first": "Ada", "last": "King"}).values["name"] == "Ada King"

    def test_non_string_part_as_json_text(self) -> None:
        """A non-string part is written as its JSON text."""
        d = dialect(name="{first} {n}")
        assert d.map({"first": "Ada", "n": 2}).values["name"] == "Ada 2"

    def test_literal_text_is_kept(self) -> None:
        """Literal text around the placeholders is kept."""
        d = dialect(user_id="org-{org}/{uid}")
        assert d.map({"org": "acme", "uid": "7"}).values["user_id"] == "org-acme/7"

    def test_template_through_engine(self, tmp_path: Path) -> None:
        """A template in a rules override names the profile in a decision."""
        path = tmp_path / "rules.yaml"
        path.write_text('extends: helpshift\ninput:\n  name: "{firstName} {lastName}"\n')
        engine = Engine(load_ruleset(path))
        decision = engine.identify({"userId": "u1", "firstName": "Ada"}, session="s", ts=TS)
        assert decision.identity is not None
        assert decision.identity.name == "Ada"


class TestAttributes:
    def test_no_attributes_source(self) -> None:
        """With attributes: null the call brings no attributes."""
        mapped = dialect(user_id="userId").map({"userId": "u", "plan": "pro"})
        assert (mapped.attributes, mapped.attributes_given) == (None, False)

    def test_star_takes_every_unmapped_key(self) -> None:
        """attributes "*" takes every key not used by another mapping (lists, templates too)."""
        d = dialect(
            user_id=("id", "userId"),
            email="userEmail",
            name="{firstName} {lastName}",
            signature="userAuthToken",
            attributes="*",
        )
        payload = {
            "userId": "u",
            "userEmail": "a@example.com",
            "firstName": "Ada",
            "userAuthToken": "sig",
            "plan": "pro",
            "seats": 3,
            "id": None,
        }
        mapped = d.map(payload)
        assert mapped.attributes == {"plan": "pro", "seats": 3}
        assert mapped.attributes_given is True

    def test_star_with_nothing_left(self) -> None:
        """attributes "*" with no unmapped key means no attributes were given."""
        mapped = dialect(user_id="userId", attributes="*").map({"userId": "u"})
        assert (mapped.attributes, mapped.attributes_given) == ({}, False)

    def test_key_holding_an_object(self) -> None:
        """attributes naming a key takes the object that key holds."""
        d = dialect(user_id="user_id", attributes="traits")
        mapped = d.map({"user_id": "u", "traits": {"plan": "pro"}, "other": 1})
        assert (mapped.attributes, mapped.attributes_given) == ({"plan": "pro"}, True)

    def test_key_holding_null_or_missing(self) -> None:
        """An attributes key that is null or missing means no attributes were given."""
        d = dialect(user_id="user_id", attributes="traits")
        assert d.map({"user_id": "u", "traits": None}).attributes_given is False
        assert d.map({"user_id": "u"}).attributes_given is False

    def test_key_holding_a_non_object_is_passed_on(self) -> None:
        """A non-object under the attributes key is handed on raw (the filter refuses it)."""
        mapped = dialect(attributes="traits").map({"traits": ["pro"]})
        assert (mapped.attributes, mapped.attributes_given) == (["pro"], True)

    def test_non_object_attributes_through_engine(self, tmp_path: Path) -> None:
        """Through the engine, a non-object attributes value is attribute.invalid and dropped."""
        engine = Engine("strict", secrets={"current": "x" * 40})
        decision = engine.identify({"attributes": ["pro"]}, session="s", ts=TS)
        assert decision.outcome == "anonymous"
        assert "attribute.invalid" in decision.codes
        assert dict(decision.attributes) == {}

    def test_star_through_engine_with_keep(self, tmp_path: Path) -> None:
        """attributes "*" with unknown: keep brings every unmapped key into the decision."""
        path = tmp_path / "rules.yaml"
        path.write_text(
            'extends: helpshift\ninput:\n  attributes: "*"\nattributes: {unknown: keep}\n'
        )
        engine = Engine(load_ruleset(path))
        decision = engine.identify(
            {"userId": "u1", "userName": "Ada", "plan": "pro", "seats": 3}, session="s", ts=TS
        )
        assert dict(decision.attributes) == {"plan": "pro", "seats": 3}
        assert decision.codes.count("attribute.unknown") == 2
