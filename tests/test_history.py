"""``idrules history``'s parts (history.py), in process: :func:`find_profile` picks the profile
a question is about, :func:`record_dict` and :func:`record_text` show what the store kept of
each decision. (tests/test_audit.py runs the command itself.)"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import SECRETS

from idrules import Engine, InputError, SqliteStore
from idrules.audit import find_profile, record_dict, record_text
from idrules.store.base import DecisionRecord


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    """A fresh SQLite store (history reads SQLite stores)."""
    opened = SqliteStore(tmp_path / "s.db")
    yield opened
    opened.close()


def engine(store: SqliteStore, rules: str = "helpshift") -> Engine:
    return Engine(rules, store, secrets=SECRETS, environ={})


def record(**fields: object) -> DecisionRecord:
    """A stored decision: an identify on line 4 with two reasons, unless ``fields`` say else."""
    values: dict[str, object] = {
        "event_id": "e1",
        "outcome": "identified",
        "profile": "p_1",
        "merged": (),
        "reasons": json.dumps(
            [
                ["match.email", "helpshift.yaml:60 matching.precedence", "email", None],
                ["profile.updated", "helpshift.yaml:70 matching.update_on_match", None, "name"],
            ]
        ),
        "run": 1,
        "line": 4,
        "hash": "ab" * 32,
    }
    values.update(fields)
    return DecisionRecord(**values)  # type: ignore[arg-type]


class TestFindProfile:
    """find_profile(store, kind, value): the one profile asked about, or a one-line error."""

    def test_by_profile_id(self, store: SqliteStore) -> None:
        """--profile names the profile itself."""
        d = engine(store).identify({"userId": "u1"}, session="s1")
        assert find_profile(store, "profile", str(d.profile)) == d.profile

    def test_by_user_id(self, store: SqliteStore) -> None:
        """--user-id finds the profile holding that user id."""
        e = engine(store)
        e.identify({"userId": "u0"}, session="s0")
        d = e.identify({"userId": "u1"}, session="s1")
        assert find_profile(store, "user_id", "u1") == d.profile

    def test_user_id_is_exact(self, store: SqliteStore) -> None:
        """A user id differing in case is another user id (helpshift's are case-sensitive)."""
        engine(store).identify({"userId": "u1"}, session="s1")
        with pytest.raises(InputError) as caught:
            find_profile(store, "user_id", "U1")
        assert str(caught.value) == f"no profile with user id 'U1' in {store.path}"

    @pytest.mark.parametrize(
        "asked", ["ada@example.com", "ADA@EXAMPLE.COM", "Ada@Example.com", "  ada@example.com "]
    )
    def test_by_email_in_any_case(self, store: SqliteStore, asked: str) -> None:
        """--email compares match keys: letter case and surrounding spaces do not matter."""
        d = engine(store).identify({"userId": "u1", "userEmail": "Ada@Example.COM"}, session="s")
        assert find_profile(store, "email", asked) == d.profile

    @pytest.mark.parametrize("asked", ["ADA@XN--BCHER-KVA.EXAMPLE", "Ada@Bücher.example"])
    def test_by_email_with_an_international_domain(self, store: SqliteStore, asked: str) -> None:
        """An address stored with a Unicode domain is found by its ASCII (IDNA) form too,
        whatever the case: the key holds the domain in its ASCII form."""
        d = engine(store).identify({"userId": "u1", "userEmail": "ada@bücher.example"}, session="s")
        assert find_profile(store, "email", asked) == d.profile

    def test_email_that_is_not_an_address(self, store: SqliteStore, tmp_path: Path) -> None:
        """Under ``validate: false`` any text is an email; it is found by its lower-cased key."""
        rules = tmp_path / "lax.yaml"
        rules.write_text("extends: helpshift\nfields:\n  email: {validate: false}\n")
        d = engine(store, str(rules)).identify({"userId": "u1", "userEmail": "Ada At Home"})
        assert find_profile(store, "email", " ADA AT HOME ") == d.profile

    def test_similar_email_is_another(self, store: SqliteStore) -> None:
        """Only case is ignored: another address is not found."""
        engine(store).identify({"userId": "u1", "userEmail": "ada@example.com"}, session="s")
        with pytest.raises(InputError) as caught:
            find_profile(store, "email", "ada@example.org")
        assert str(caught.value) == f"no profile with email 'ada@example.org' in {store.path}"

    def test_unknown_profile(self, store: SqliteStore) -> None:
        """An unknown profile id is an error naming it and the store."""
        with pytest.raises(InputError) as caught:
            find_profile(store, "profile", "p_0000000000000000")
        assert str(caught.value) == f"no profile with profile 'p_0000000000000000' in {store.path}"

    def test_merged_profile_counts_as_its_target(self, store: SqliteStore) -> None:
        """A profile merged into another is answered by the one it was merged into."""
        e = engine(store, "quackback")
        anonymous = e.track("vote", session="s1", email="ada@example.com")
        account = e.identify({"id": "u1", "email": "bob@example.com"}, session="s2")
        merge = e.identify({"id": "u1", "email": "bob@example.com"}, session="s1")
        assert merge.merged == (anonymous.profile,)
        assert find_profile(store, "profile", str(anonymous.profile)) == account.profile
        assert find_profile(store, "email", "ADA@example.com") == account.profile

    def test_merged_holders_are_one(self, store: SqliteStore) -> None:
        """Two profiles holding one email, one merged into the other, are one answer."""
        e = engine(store, "quackback")
        anonymous = e.track("vote", session="s1", email="ada@example.com")
        account = e.identify({"id": "u1", "email": "bob@example.com"}, session="s2")
        e.identify({"id": "u1", "email": "ada@example.com"}, session="s1")
        assert sorted(store.find_profiles("email_key", "ada@example.com")) == sorted(
            [str(anonymous.profile), str(account.profile)]
        )
        assert find_profile(store, "email", "ada@example.com") == account.profile

    def test_several_holders(self, store: SqliteStore) -> None:
        """One email on two users' profiles: one line naming both, pointing to --profile."""
        e = engine(store)
        first = e.identify({"userId": "u1", "userEmail": "ada@example.com"}, session="s1")
        second = e.identify({"userId": "u2", "userEmail": "ADA@example.com"}, session="s2")
        assert first.profile != second.profile
        with pytest.raises(InputError) as caught:
            find_profile(store, "email", "Ada@Example.com")
        message = str(caught.value)
        assert message == (
            f"2 profiles hold email 'Ada@Example.com' ({first.profile}, {second.profile}): "
            "ask for one with --profile"
        )
        assert "\n" not in message


class TestRecordDict:
    """record_dict(record): a stored decision as the JSON object ``history --json`` prints."""

    def test_fields(self) -> None:
        """Event, line, outcome, profile, merged ids, reasons and hash, reasons expanded."""
        assert record_dict(record(merged=("p_0",))) == {
            "event_id": "e1",
            "line": 4,
            "outcome": "identified",
            "profile": "p_1",
            "merged": ["p_0"],
            "reasons": [
                {
                    "code": "match.email",
                    "rule": "helpshift.yaml:60 matching.precedence",
                    "field": "email",
                },
                {
                    "code": "profile.updated",
                    "rule": "helpshift.yaml:70 matching.update_on_match",
                    "detail": "name",
                },
            ],
            "hash": "ab" * 32,
        }

    def test_library_call(self) -> None:
        """A decision made by a library call has no line and no hash."""
        shown = record_dict(record(line=None, hash=None, run=None))
        assert shown["line"] is None and shown["hash"] is None

    def test_reasons_as_the_decision_gave_them(self, store: SqliteStore) -> None:
        """What history shows of a decision's reasons is what the decision itself said."""
        e = engine(store)
        e.identify({"userId": "u1", "userEmail": "ada@example.com"}, session="s1")
        d = e.identify({"userId": "u1", "userEmail": "bob@example.com", "userName": "Bo"})
        records = list(store.history([str(d.profile)]))
        assert [r.event_id for r in records][-1] == d.event_id
        assert record_dict(records[-1])["reasons"] == d.to_dict()["reasons"]
        assert record_dict(records[-1])["outcome"] == d.outcome == "identified"


class TestRecordText:
    """record_text(record): a stored decision as one readable line."""

    def test_line(self) -> None:
        """Where, event, outcome, profile, then each reason with its field, rule and detail."""
        assert record_text(record()) == (
            "line 4  e1  identified p_1  "
            "match.email email [helpshift.yaml:60 matching.precedence]; "
            "profile.updated [helpshift.yaml:70 matching.update_on_match]: name"
        )

    def test_library_call_and_merges(self) -> None:
        """A library call says so, and the profiles folded in are named."""
        text = record_text(record(line=None, merged=("p_a", "p_b")))
        assert text.startswith("library call  e1  identified p_1 merged p_a, p_b;  match.email")

    def test_no_reasons(self) -> None:
        """A decision without reasons says so rather than ending blank."""
        assert record_text(record(reasons="[]")) == "line 4  e1  identified p_1  no reasons"
