"""Match keys: two values share a key only when they differ by case alone (docs/stores.md)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from idrules import Engine
from idrules.emails import EmailCache, normalize_email
from idrules.matchkeys import email_key_of, lower_each, user_key

#: letters whose full case folding joins them to other spellings, and their neighbours
_TRICKY = "ßſﬁςσΣİıKkKSsfiIÅÅåΩΩω"
_TEXT = st.text(st.sampled_from(list("aAbB.-_1" + _TRICKY)), min_size=1, max_size=8)


class TestLowerEach:
    """lower_each maps one character to one character."""

    @given(_TEXT)
    def test_same_length(self, text: str) -> None:
        """The key never has another length than the value."""
        assert len(lower_each(text)) == len(text)

    def test_no_full_case_folding(self) -> None:
        """ß, ſ, ﬁ and ς keep their identity: only case is removed."""
        for folded, plain in (("ß", "ss"), ("ſ", "s"), ("ﬁ", "fi"), ("ς", "σ")):
            assert lower_each(folded) != lower_each(plain)
        assert lower_each("Straße") == "straße"
        # a final capital sigma lowers to σ, as it does alone: never to the final form ς
        assert lower_each("AΣ") == lower_each("Aσ") == "aσ" != lower_each("Aς")
        assert lower_each("İx") == "İx"  # lower() would make two characters of İ


class TestUserKey:
    """User ids under case_sensitive: false."""

    @settings(max_examples=400)
    @given(_TEXT, _TEXT)
    def test_shared_only_by_case(self, a: str, b: str) -> None:
        """Two user ids share a key only if they differ by letter case alone."""
        if user_key(a, False) == user_key(b, False):
            assert len(a) == len(b)
            assert all(x == y or x.lower() == y.lower() for x, y in zip(a, b, strict=True))

    @pytest.mark.parametrize(
        ("a", "b", "a_cased"), [("Straße", "strasse", "STRAßE"), ("ﬁnance", "finance", "ﬁNANCE")]
    )
    def test_folding_pairs_are_two_users(
        self, tmp_path: Path, a: str, b: str, a_cased: str
    ) -> None:
        """Straße/strasse and ﬁnance/finance are two users, even case-insensitively."""
        rules = tmp_path / "rules.yaml"
        rules.write_text("extends: helpshift\nfields: {user_id: {case_sensitive: false}}\n")
        engine = Engine(str(rules))
        first = engine.identify({"userId": a}, session="s1")
        second = engine.identify({"userId": b}, session="s2")
        assert first.outcome == second.outcome == "identified"
        assert second.created and second.profile != first.profile
        same = engine.identify({"userId": a_cased}, session="s3")
        assert same.profile == first.profile and "match.user_id" in same.codes

    def test_case_sensitive_is_the_value(self) -> None:
        """A case-sensitive user id is its own key."""
        assert user_key("Ada", True) == "Ada"


class TestEmailKey:
    """Email match keys: lower-cased local part, ASCII domain."""

    @settings(max_examples=500, deadline=None)
    @given(local_a=_TEXT, local_b=_TEXT, domain=st.sampled_from(["example.com", "straße.de"]))
    def test_shared_only_by_case(self, local_a: str, local_b: str, domain: str) -> None:
        """Two valid addresses share a key only if they differ by letter case alone."""
        a, ka, _ = normalize_email(f"{local_a}@{domain}")
        b, kb, _ = normalize_email(f"{local_b}@{domain}")
        if a is None or b is None or ka != kb:
            return
        la, lb = a.rpartition("@")[0], b.rpartition("@")[0]
        assert len(la) == len(lb)
        assert all(x == y or x.lower() == y.lower() for x, y in zip(la, lb, strict=True))

    @pytest.mark.parametrize(
        ("a", "b"),
        [
            ("admin@straße.de", "admin@strasse.de"),
            ("admin@xn--strae-oqa.de", "admin@strasse.de"),
            ("ſam@example.com", "sam@example.com"),
            ("ﬁnance@example.com", "finance@example.com"),
            ("ςa@example.com", "σa@example.com"),
        ],
    )
    def test_different_people(self, a: str, b: str) -> None:
        """Addresses that full case folding would join keep different keys."""
        assert normalize_email(a)[1] != normalize_email(b)[1]

    @pytest.mark.parametrize(
        ("a", "b"),
        [
            ("Ada@Example.COM", "ada@example.com"),
            ("ADMIN@STRAßE.DE", "admin@xn--strae-oqa.de"),
            ("Admin@Straße.de", "admin@straße.de"),
        ],
    )
    def test_same_person(self, a: str, b: str) -> None:
        """Case alone, and the Unicode and ASCII spellings of one domain, share a key."""
        assert normalize_email(a)[1] == normalize_email(b)[1]

    @settings(max_examples=300, deadline=None)
    @given(local=_TEXT, domain=st.sampled_from(["Example.COM", "straße.de", "bücher.example"]))
    def test_one_function_builds_every_key(self, local: str, domain: str) -> None:
        """The live check, the cache and a stored address (history, re-keying) agree."""
        normalized, key, _ = normalize_email(f"{local}@{domain}")
        if normalized is None:
            return
        assert EmailCache()(f"{local}@{domain}")[1] == key
        assert email_key_of(normalized) == key
