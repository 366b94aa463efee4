"""Importing an existing user base in process (docs/import.md, SPEC §8): reading users files,
the row rules, derived profile ids, idempotence, the verified column, every shipped pack
finding the imported users, transactions, the library API, and any content never crashing.
The command line is in test_import_cli.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import SECRETS, hmac_hex, iso, override, token

import idrules
from idrules import (
    Decision,
    Engine,
    InputError,
    MemoryStore,
    SqliteStore,
    export_rows,
    import_users,
    load_ruleset,
)
from idrules.importing import Importer, UsersFile, imported_profile_id
from idrules.reasons import is_known
from idrules.store.base import Store, profile_id_for

pytest_plugins = ["pg_support"]

ADA = {"user_id": "u_1", "email": "ada@example.com", "name": "Ada"}


def run_import(
    rules: Any, users: Any, store: Store | None = None, **options: Any
) -> tuple[list[dict[str, Any]], Store]:
    """Import ``users`` and return the decisions (as JSON objects) and the store."""
    store = store if store is not None else MemoryStore()
    lines: list[str] = []
    import_users(rules, users, store, write=lines.append, **options)
    return [json.loads(line) for line in lines], store


def codes(decision: dict[str, Any]) -> list[str]:
    return [reason["code"] for reason in decision["reasons"]]


def write(path: Path, text: str | bytes) -> Path:
    if isinstance(text, str):
        text = text.encode()
    path.write_bytes(text)
    return path


def rows_of(path: Path, fmt: str = "auto") -> list[Any]:
    with UsersFile(path, fmt) as users:  # type: ignore[arg-type]
        return list(users.rows())


class TestUsersFile:
    """idrules.importing.rows: CSV and JSON lines into rows."""

    @pytest.mark.parametrize(
        "header",
        [
            "user_id,email,name",
            "User ID,Email,Name",
            "userId,EMAIL,name",
            " user-id , e-mail ,NAME",
            "\ufeffuser_id,email_address,name",
        ],
    )
    def test_header_variants(self, tmp_path: Path, header: str) -> None:
        """Case, spaces, hyphens, camelCase, aliases and a BOM all name the same columns."""
        (row,) = rows_of(write(tmp_path / "u.csv", f"{header}\nu_1,ada@example.com,Ada\n"))
        assert dict(row.values) == ADA and row.problem is None and row.number == 2

    def test_cells_attributes_and_numbering(self, tmp_path: Path) -> None:
        """Empty cells are absent, other columns are attributes (text), rows are numbered by
        the line where they start (header = line 1, blank lines and multi-line cells counted)."""
        text = 'user_id,email,plan,note\nu_1,,pro,\n\nu_2,b@example.com,,"two\nlines"\nu_3\n'
        rows = rows_of(write(tmp_path / "u.csv", text))
        assert [r.number for r in rows] == [2, 4, 6]
        assert dict(rows[0].values) == {"user_id": "u_1"}
        assert rows[0].attributes == {"plan": "pro"} and rows[0].attributes_given
        assert rows[1].attributes == {"note": "two\nlines"}
        assert dict(rows[2].values) == {"user_id": "u_3"} and not rows[2].attributes_given

    @pytest.mark.parametrize(
        ("cell", "verified", "problem"),
        [("true", True, None), ("TRUE", True, None), ("false", False, None), ("", False, None)]
        + [(bad, False, "'verified' must be true or false") for bad in ("yes", "1", " true")],
    )
    def test_csv_verified(self, tmp_path: Path, cell: str, verified: bool, problem: str) -> None:
        """verified is true or false (any case); empty is false; anything else refuses the row."""
        (row,) = rows_of(write(tmp_path / "u.csv", f"user_id,verified\nu_1,{cell}\n"))
        assert row.verified is verified
        assert (row.problem or "").startswith(problem or "")
        assert (row.problem is None) is (problem is None)

    def test_csv_row_problems(self, tmp_path: Path) -> None:
        """More cells than the header, or bytes that are not UTF-8, refuse that row only."""
        data = b"user_id,email\nu_1,a@example.com,extra\nu_\xff2,b@example.com\nu_3,\n"
        rows = rows_of(write(tmp_path / "u.csv", data))
        assert [r.problem for r in rows] == [
            "the row has 3 cells, the header 2",
            "the row is not UTF-8 text",
            None,
        ]

    @pytest.mark.parametrize(
        ("text", "fragment"),
        [
            ("", "no header row"),
            ("\n\n", "no header row"),
            ("name,plan\nAda,pro\n", "neither user_id nor email"),
            ("user_id,User ID\nu\n", "column 'user_id' appears twice"),
            ("user_id,,email\n", "column 2 of the header has no name"),
            ("user_id,plan,plan\n", "column 'plan' appears twice"),
            ('user_id\n"' + "x" * 200_000 + '"\n', "the row at line 2 is not CSV"),
        ],
    )
    def test_unreadable_csv_files(self, tmp_path: Path, text: str, fragment: str) -> None:
        """What makes a whole CSV file unreadable is one InputError naming the file."""
        path = write(tmp_path / "u.csv", text)
        with pytest.raises(InputError) as caught:
            rows_of(path)
        assert fragment in str(caught.value) and str(path) in str(caught.value)

    def test_jsonl_rows(self, tmp_path: Path) -> None:
        """JSON lines: canonical keys, a boolean verified, an attributes object; null is
        absent; blank lines are counted; every malformed line refuses that row only."""
        lines = [
            json.dumps({**ADA, "verified": True, "attributes": {"plan": "pro"}}),
            "",
            json.dumps({"email": None, "user_id": "u_2", "avatar": "https://a/b.png"}),
            '{"user_id": "u_3", "user_id": "u_4"}',
            '{"user_id": "u_5", "attributes": {"n": NaN}}',
            '{"userId": "u_6"}',
            '["u_7"]',
            '{"user_id": "u_8", "verified": "true"}',
            "not json",
            '{"user_id": "\\ud800"}',
        ]
        rows = rows_of(write(tmp_path / "u.jsonl", "\n".join(lines) + "\n"))
        assert [r.number for r in rows] == [1, 3, 4, 5, 6, 7, 8, 9, 10]
        assert dict(rows[0].values) == ADA and rows[0].verified
        assert rows[0].attributes == {"plan": "pro"}
        assert dict(rows[1].values) == {"user_id": "u_2", "avatar": "https://a/b.png"}
        problems = [r.problem for r in rows[2:]]
        assert problems[0] == "the key 'user_id' appears twice in one object"
        assert "NaN" in problems[1]
        assert problems[2].startswith("unknown key 'userId'")
        assert problems[3] == "a row must be a JSON object"
        assert problems[4] == "'verified' must be true or false"
        assert problems[5] == "line is not valid JSON"
        assert "surrogate" in problems[6]

    @pytest.mark.parametrize(
        ("name", "text", "expected"),
        [
            ("u.csv", "user_id\nu_1\n", "csv"),  # the extension decides
            ("u.jsonl", "", "jsonl"),
            ("u.ndjson", "user_id\nu_1\n", "jsonl"),
            ("u.txt", '\ufeff  \n{"user_id": "u_1"}\n', "jsonl"),  # else the first character
            ("u.txt", "user_id\nu_1\n", "csv"),
            ("u", "  \n", "jsonl"),  # nothing but blanks: no rows
        ],
    )
    def test_format_detection(self, tmp_path: Path, name: str, text: str, expected: str) -> None:
        """By extension (.csv, .jsonl, .ndjson), else by the first character: { is JSON lines."""
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        with UsersFile(path) as users:
            assert users.format == expected

    def test_extension_wins_over_content(self, tmp_path: Path) -> None:
        """A .csv file holding JSON is read as CSV: its header names no identifier."""
        with pytest.raises(InputError, match="neither user_id nor email"):
            UsersFile(write(tmp_path / "u.csv", json.dumps(ADA) + "\n"))

    def test_explicit_format(self, tmp_path: Path) -> None:
        """format= overrides the extension."""
        path = write(tmp_path / "u.csv", json.dumps(ADA) + "\n")
        (row,) = rows_of(path, "jsonl")
        assert dict(row.values) == ADA

    def test_missing_and_directory(self, tmp_path: Path) -> None:
        """A missing file or a directory is one InputError."""
        with pytest.raises(InputError, match="users file not found"):
            UsersFile(tmp_path / "nope.csv")
        with pytest.raises(InputError, match="is a directory"):
            UsersFile(tmp_path)


class TestRowRules:
    """Each row passes the ruleset's field and attribute rules, as an identify call does."""

    def test_outcomes_and_reasons(self) -> None:
        """Created, rejected with its reasons, and a refused row never stops the import."""
        rows = [
            ADA,
            {"user_id": "u_2", "email": "not-an-email"},
            {"user_id": "u_1", "email": "other@example.com"},
            {"name": "Nobody"},
            {"user_id": "u_3", "email": "c@example.com"},
        ]
        decisions, _ = run_import("helpshift", rows)
        assert [d["event_id"] for d in decisions] == [f"row:{n}" for n in range(1, 6)]
        assert [d["outcome"] for d in decisions] == [
            "identified",
            "rejected",
            "rejected",
            "rejected",
            "identified",
        ]
        assert codes(decisions[0]) == ["profile.created"] and decisions[0]["created"]
        assert codes(decisions[1]) == ["email.invalid"]  # helpshift: on_invalid anonymous
        dup = decisions[2]["reasons"][-1]
        assert dup["code"] == "event.duplicate" and dup["field"] == "user_id"
        assert "row:1" in dup["detail"]
        assert codes(decisions[3]) == ["event.invalid"]
        for d in decisions:
            assert list(d) == [
                "event_id",
                "outcome",
                "profile",
                "created",
                "merged",
                "identity",
                "attributes",
                "reasons",
                "ruleset",
            ]
            assert all(is_known(code) for code in codes(d))
            assert (d["profile"] is None) is (d["outcome"] == "rejected")

    def test_blocked_value(self) -> None:
        """strict blocks placeholder ids: the row is refused with user_id.blocked."""
        decisions, store = run_import("strict", [{"user_id": "undefined"}, {"user_id": "u_1"}])
        assert decisions[0]["outcome"] == "rejected" and codes(decisions[0]) == ["user_id.blocked"]
        assert [p["user_id"] for p in export_rows(store)] == ["u_1"]

    def test_drop_policy_keeps_the_row(self) -> None:
        """A field whose on_invalid is drop loses its value; the row is imported (lumio)."""
        decisions, store = run_import("lumio", [{"user_id": "u_1", "email": "nope"}])
        assert decisions[0]["outcome"] == "identified" and codes(decisions[0])[0] == "email.invalid"
        assert [p["email"] for p in export_rows(store)] == [None]

    def test_required_field(self) -> None:
        """quackback requires an email: a row without one is refused (email.missing)."""
        decisions, _ = run_import("quackback", [{"user_id": "u_1"}])
        assert decisions[0]["outcome"] == "rejected" and codes(decisions[0]) == ["email.missing"]

    def test_field_type_from_json(self) -> None:
        """A JSON row's user id of the wrong type fails the type check, as in an identify."""
        decisions, _ = run_import("strict", [{"user_id": 5}])
        assert codes(decisions[0]) == ["user_id.invalid_type"]

    def test_attributes_follow_the_pack(self, tmp_path: Path) -> None:
        """Attributes go through attributes.schema/unknown/invalid: helpshift drops unknown
        ones, lumio keeps them, an override with a schema and invalid: reject refuses the row."""
        row = {"user_id": "u_1", "attributes": {"plan": "pro"}}
        dropped, store = run_import("helpshift", [row])
        assert codes(dropped[0]) == ["attribute.unknown", "profile.created"]
        assert next(export_rows(store))["attributes"] == {}
        kept, store = run_import("lumio", [row])
        assert kept[0]["attributes"] == {"plan": "pro"}
        assert next(export_rows(store))["attributes"] == {"plan": "pro"}
        strict_plan = override(
            tmp_path,
            "extends: helpshift\nattributes:\n  schema:\n    plan: {enum: [free, pro]}\n"
            "  invalid: reject\n",
        )
        decisions, store = run_import(
            strict_plan, [row, {"user_id": "u_2", "attributes": {"plan": "gold"}}]
        )
        assert [d["outcome"] for d in decisions] == ["identified", "rejected"]
        assert codes(decisions[1]) == ["attribute.invalid"]
        assert [p["user_id"] for p in export_rows(store)] == ["u_1"]

    def test_csv_attributes_are_text(self, tmp_path: Path) -> None:
        """CSV attribute cells are strings: a schema of type integer refuses "42" (use JSON
        lines for typed values)."""
        rules = override(
            tmp_path,
            "extends: helpshift\nattributes:\n  schema:\n    seats: {type: integer}\n"
            "  invalid: drop\n",
        )
        csv_file = write(tmp_path / "u.csv", "user_id,seats\nu_1,42\n")
        jsonl = write(tmp_path / "u.jsonl", '{"user_id": "u_2", "attributes": {"seats": 42}}\n')
        (from_csv,), _ = run_import(rules, csv_file)
        (from_jsonl,), _ = run_import(rules, jsonl)
        assert codes(from_csv)[0] == "attribute.invalid" and from_csv["attributes"] == {}
        assert from_jsonl["attributes"] == {"seats": 42}

    def test_same_email_two_user_ids(self) -> None:
        """A repeated email follows the pack's matching rules: helpshift makes a new profile
        (conflict.email_other_user_id), strict refuses the row."""
        rows = [ADA, {"user_id": "u_2", "email": "ada@example.com"}]
        loose, _ = run_import("helpshift", rows)
        assert loose[1]["created"] and "conflict.email_other_user_id" in codes(loose[1])
        strict, _ = run_import("strict", rows)
        assert strict[1]["outcome"] == "rejected"
        assert codes(strict[1])[-1] == "conflict.email_other_user_id"

    def test_redaction(self, tmp_path: Path) -> None:
        """The ruleset's audit rules show emails and names in import decisions as in others."""
        rules = override(tmp_path, "extends: helpshift\naudit: {emails: mask, names: mask}\n")
        (decision,), store = run_import(rules, [ADA])
        assert decision["identity"]["email"] == "a***@example.com"
        assert decision["identity"]["name"] == "A***"
        assert next(export_rows(store))["email"] == "ada@example.com"


class TestProfileIds:
    """Profiles created by an import are named after the row's identifiers."""

    def test_derived_from_the_user_id_key_else_the_email_key(self) -> None:
        """The same user gets the same id in any file at any row; case-insensitive keys too."""
        first, _ = run_import("helpshift", [ADA, {"email": "Bob@Example.com"}])
        second, _ = run_import("helpshift", [{"email": "bob@example.com"}, {"user_id": "u_1"}])
        assert first[0]["profile"] == second[1]["profile"] == imported_profile_id("user_id", "u_1")
        assert first[1]["profile"] == second[0]["profile"]
        assert first[1]["profile"] == imported_profile_id("email", "bob@example.com")
        assert first[0]["profile"] != first[1]["profile"]

    def test_never_an_event_s_profile_id(self) -> None:
        """No event id names an imported profile: the hash input starts with a byte no UTF-8
        text has."""
        for text in ("user_id\x00u_1", "idrules-import\x00user_id\x00u_1", "\xffuser_id\x00u_1"):
            assert profile_id_for(text) != imported_profile_id("user_id", "u_1")

    def test_taken_id_moves_on(self) -> None:
        """When a profile already holds the derived id (an imported profile whose email has
        since changed), the row gets the next derived id, the same on every run."""
        store = MemoryStore()
        run_import("helpshift", [{"email": "old@example.com"}], store)
        engine = Engine("helpshift", store, environ={})
        engine.identify({"userId": "u_9", "userEmail": "old@example.com"}, session="s")
        engine.identify({"userId": "u_9", "userEmail": "new@example.com"}, session="s")
        (again,), _ = run_import("helpshift", [{"email": "old@example.com"}], store)
        assert again["created"]
        assert again["profile"] == imported_profile_id("email", "old@example.com", 2)


class TestIdempotence:
    """Importing the same file again changes nothing."""

    def test_second_import_changes_nothing(self, tmp_path: Path) -> None:
        """The export is byte-identical, every row matches, and no record is added."""
        users = write(
            tmp_path / "u.csv",
            "user_id,email,name,verified,plan\nu_1,ada@example.com,Ada,true,pro\n"
            "u_2,bob@example.com,Bob,,\n,carol@example.com,Carol,false,\nu_4,bad,,,\n",
        )
        store = SqliteStore(tmp_path / "s.db")
        try:
            first, _ = run_import("lumio", users, store)
            before = [json.dumps(row) for row in export_rows(store)]
            records = store._conn.execute("SELECT count(*) FROM decisions").fetchone()
            second, _ = run_import("lumio", users, store)
            assert [json.dumps(row) for row in export_rows(store)] == before
            assert store._conn.execute("SELECT count(*) FROM decisions").fetchone() == records
        finally:
            store.close()
        assert [d["created"] for d in first] == [True, True, False, True]
        assert [d["outcome"] for d in second] == [d["outcome"] for d in first]
        assert not any(d["created"] for d in second)
        assert [d["profile"] for d in second] == [d["profile"] for d in first]

    def test_row_ids_are_not_recorded(self, tmp_path: Path) -> None:
        """row:N is never recorded as decided: a real event with that id is decided, and a
        second file's rows are not duplicates of the first's."""
        store = SqliteStore(tmp_path / "s.db")
        try:
            run_import("helpshift", [ADA], store)
            assert not store.is_decided("row:1")
            (other,), _ = run_import("helpshift", [{"user_id": "u_2"}], store)
            assert other["created"]
            engine = Engine("helpshift", store, environ={})
            decision = engine.identify({"userId": "u_3"}, id="row:1", session="s")
            assert decision.outcome == "identified"
            assert [r.event_id for r in store.history([decision.profile])] == ["row:1"]
            history = list(store.history([imported_profile_id("user_id", "u_1")]))
            assert [(r.event_id, r.line, r.outcome) for r in history] == [
                ("row:1", 1, "identified")
            ]
        finally:
            store.close()

    def test_updates_on_match(self) -> None:
        """A changed row updates the profile per update_on_match; the same row again doesn't."""
        store = MemoryStore()
        run_import("helpshift", [ADA], store)
        (changed,), _ = run_import("helpshift", [{**ADA, "name": "Ada L."}], store)
        assert not changed["created"] and "profile.updated" in codes(changed)
        (same,), _ = run_import("helpshift", [{**ADA, "name": "Ada L."}], store)
        assert codes(same) == ["match.user_id"]
        assert next(export_rows(store))["name"] == "Ada L."


class TestVerified:
    """The verified column marks the profile verified (protected where the pack protects)."""

    def test_verified_profile_is_protected(self) -> None:
        """userjot protects verified profiles: an unsigned identify of a verified import is
        refused, a signed one matches; an unverified import matches unsigned calls."""
        store = MemoryStore()
        run_import("userjot", [{"user_id": "u_1", "verified": True}, {"user_id": "u_2"}], store)
        assert [p["verified"] for p in export_rows(store)] == [True, False]
        engine = Engine("userjot", store, secrets=SECRETS, environ={})
        unsigned = engine.identify({"id": "u_1"}, session="s1", ts=iso())
        assert unsigned.outcome == "rejected" and "auth.protected_profile" in unsigned.codes
        signed = engine.identify({"id": "u_1", "signature": hmac_hex("u_1")}, session="s2")
        assert signed.profile == imported_profile_id("user_id", "u_1") and not signed.created
        plain = engine.identify({"id": "u_2"}, session="s3", ts=iso())
        assert plain.profile == imported_profile_id("user_id", "u_2") and not plain.created

    def test_unverified_row_never_downgrades(self) -> None:
        """A verified: false row that meets a verified profile is refused under
        protect_verified (auth.protected_profile), as an unverified call would be; with
        protect_verified off it matches and the profile stays verified."""
        store = MemoryStore()
        run_import("userjot", [{"user_id": "u_1", "verified": True}], store)
        (refused,), _ = run_import("userjot", [{"user_id": "u_1", "name": "X"}], store)
        assert refused["outcome"] == "rejected" and codes(refused) == [
            "match.user_id",
            "auth.protected_profile",
        ]
        store = MemoryStore()
        run_import("quackback", [{**ADA, "verified": True}], store)
        (matched,), _ = run_import("quackback", [ADA], store)
        assert matched["outcome"] == "identified"
        assert next(export_rows(store))["verified"] is True


#: per shipped pack: identify payloads that should find the user imported from ADA's row,
#: and the reason code that finds it
FINDERS: dict[str, list[tuple[dict[str, Any], str]]] = {
    "helpshift": [
        ({"userId": "u_1"}, "match.user_id"),
        ({"userEmail": "ADA@example.com"}, "match.email"),
    ],
    "quackback": [
        ({"id": "u_1", "email": "ada@example.com"}, "match.user_id"),
        ({"ssoToken": token({"sub": "u_1", "email": "ada@example.com"})}, "match.user_id"),
    ],
    "replyful": [({"token": token({"userId": "u_1"})}, "match.user_id")],
    "userjot": [
        ({"id": "u_1"}, "match.user_id"),
        ({"id": "u_1", "signature": hmac_hex("u_1")}, "match.user_id"),
    ],
    "lumio": [({"userId": "u_1", "signature": hmac_hex("u_1")}, "match.user_id")],
    "strict": [({"user_id": "u_1", "signature": hmac_hex("u_1")}, "match.user_id")],
}


class TestEveryPack:
    """After an import, an identify by the user's id or email finds the imported profile."""

    def test_every_pack_is_covered(self) -> None:
        """The table names every shipped pack."""
        assert sorted(FINDERS) == sorted(idrules.pack_names())

    @pytest.mark.parametrize(
        ("pack", "payload", "code"),
        [(pack, payload, code) for pack, cases in FINDERS.items() for payload, code in cases],
    )
    def test_identify_finds_the_import(self, pack: str, payload: dict[str, Any], code: str) -> None:
        """created: false, the imported profile, found by the expected key."""
        store = MemoryStore()
        (imported,), _ = run_import(pack, [ADA], store)
        assert imported["outcome"] == "identified" and imported["created"]
        engine = Engine(pack, store, secrets=SECRETS, environ={})
        decision = engine.identify(payload, session="browser-1", id="e1", ts=iso())
        assert decision.outcome == "identified", decision.codes
        assert decision.profile == imported["profile"] and not decision.created
        assert code in decision.codes
        assert [p["profile"] for p in export_rows(store)] == [imported["profile"]]


class TestTransactions:
    """Each row is one transaction: a failure never leaves half a row."""

    def test_failure_keeps_whole_rows(self, tmp_path: Path) -> None:
        """A store failing while applying row 3 keeps rows 1-2 whole and nothing of row 3;
        importing again completes, with the same profiles as an uninterrupted import."""
        rows = [{"user_id": f"u_{n}", "email": f"user{n}@example.com"} for n in range(1, 6)]
        path = tmp_path / "s.db"
        store = SqliteStore(path)
        real_write = store._write
        calls = {"n": 0}

        def failing(changes: Any, record: Any) -> None:
            calls["n"] += 1
            real_write(changes, record)  # the row's writes are in: then the failure
            if calls["n"] == 3:
                raise OSError("disk full")

        store._write = failing  # type: ignore[method-assign]
        with pytest.raises(OSError):
            run_import("helpshift", rows, store)
        store.close()
        store = SqliteStore(path)
        try:
            assert [p["user_id"] for p in export_rows(store)] == ["u_1", "u_2"]
            decisions, _ = run_import("helpshift", rows, store)
            assert [d["created"] for d in decisions] == [False, False, True, True, True]
            assert len(list(export_rows(store))) == 5
        finally:
            store.close()

    def test_commit_groups(self, tmp_path: Path) -> None:
        """With grouped commits every row still lands, and the last group is committed."""
        store = SqliteStore(tmp_path / "s.db", commit_every=4)
        rows = [{"user_id": f"u_{n}"} for n in range(10)]
        run_import("helpshift", rows, store)
        assert store.pending == 0
        store.close()
        reopened = SqliteStore(tmp_path / "s.db", readonly=True)
        assert len(list(export_rows(reopened))) == 10
        reopened.close()


class TestLibrary:
    """idrules.import_users and its summary."""

    def test_public(self) -> None:
        """import_users and ImportSummary are public names."""
        assert {"import_users", "ImportSummary"} <= set(idrules.__all__)
        assert idrules.import_users is import_users

    def test_engine_store_and_summary(self, tmp_path: Path) -> None:
        """An Engine lends its ruleset and store; the summary counts each kind of row."""
        engine = Engine("helpshift", environ={})
        first = import_users(engine, [ADA, {"user_id": "u_2"}, {"email": "x"}])
        assert (first.rows, first.created, first.matched, first.rejected) == (3, 2, 0, 1)
        again = import_users(engine, [ADA, {**ADA, "user_id": "u_2", "name": "B"}])
        assert (again.created, again.matched, again.updated, again.rejected) == (0, 2, 1, 0)
        assert "2 matched (1 updated)" in again.line()
        found = engine.identify({"userId": "u_1"}, session="s")
        assert found.profile == imported_profile_id("user_id", "u_1")

    def test_path_and_ruleset(self, tmp_path: Path) -> None:
        """A path and a Ruleset work as the command line's file and --rules."""
        users = write(tmp_path / "u.jsonl", json.dumps(ADA) + "\n")
        decisions, store = run_import(load_ruleset("helpshift"), str(users))
        assert decisions[0]["created"] and len(list(export_rows(store))) == 1

    def test_mappings_must_be_json(self) -> None:
        """A mapping holding what JSON cannot carry is refused as a row (event.invalid)."""
        rows = [
            {"user_id": "u_1", "attributes": {"when": Path("x")}},
            {"user_id": "u_2", "attributes": {1: "one"}},
            {"user_id": "u_3", "attributes": {"n": float("nan")}},
            {"user_id": "u_4", "attributes": {"tags": ["a", {"b": True}]}},
        ]
        decisions, _ = run_import("lumio", rows)
        assert [d["outcome"] for d in decisions] == ["rejected"] * 3 + ["identified"]
        assert all(codes(d) == ["event.invalid"] for d in decisions[:3])

    def test_needs_a_store(self) -> None:
        """A ruleset without a store is refused (an Engine brings one)."""
        with pytest.raises(ValueError, match="needs a store"):
            import_users("helpshift", [ADA])

    def test_importer_decide(self) -> None:
        """Importer.decide gives Decision values, one row at a time."""
        importer = Importer(load_ruleset("helpshift"), MemoryStore())
        (row,) = list(idrules.importing.rows.rows_of_objects([ADA]))
        decision = importer.decide(row)
        assert isinstance(decision, Decision) and decision.event_id == "row:1"


class TestAnyContent:
    """Any users file content is imported or refused as a whole with one InputError."""

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        data=st.one_of(
            st.binary(max_size=300),
            st.text(alphabet=st.sampled_from('user_id,email,verified\n"{}:[]tru e\\a@x.'))
            .map(lambda t: "user_id,email,verified,plan\n" + t)
            .map(str.encode),
            st.lists(
                st.dictionaries(
                    st.sampled_from(["user_id", "email", "verified", "attributes", "name", "x"]),
                    st.one_of(
                        st.none(),
                        st.booleans(),
                        st.integers(),
                        st.text(max_size=8),
                        st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
                    ),
                ),
                max_size=5,
            ).map(lambda rows: "\n".join(json.dumps(r) for r in rows).encode()),
        ),
        fmt=st.sampled_from(["csv", "jsonl", "auto"]),
    )
    def test_never_crashes(
        self, tmp_path_factory: pytest.TempPathFactory, data: bytes, fmt: str
    ) -> None:
        """Every row gets one decision of the documented form, with known codes."""
        path = tmp_path_factory.mktemp("any") / "users"
        path.write_bytes(data)
        lines: list[str] = []
        try:
            summary = import_users(
                "helpshift", str(path), MemoryStore(), write=lines.append, format=fmt
            )  # type: ignore[arg-type]
        except InputError as exc:
            assert "\n" not in str(exc)
            return
        assert summary.rows == len(lines)
        assert summary.created + summary.matched + summary.rejected == summary.rows
        for line in lines:
            decision = json.loads(line)
            assert decision["event_id"].startswith("row:")
            assert decision["outcome"] in ("identified", "rejected")
            assert all(is_known(code) for code in codes(decision))


class TestPostgres:
    """The PostgreSQL store (IDRULES_TEST_POSTGRES)."""

    def test_import_twice_and_identify(self, pg_url: str) -> None:
        """Import, import again (export unchanged, nothing created), then identify finds it."""
        from idrules.store.postgres import PostgresStore

        store = PostgresStore(pg_url)
        try:
            rows = [ADA, {"user_id": "u_2", "email": "bob@example.com"}, {"email": "x"}]
            first, _ = run_import("helpshift", rows, store)
            before = list(export_rows(store))
            second, _ = run_import("helpshift", rows, store)
            assert list(export_rows(store)) == before and len(before) == 2
            assert [d["created"] for d in first] == [True, True, False]
            assert not any(d["created"] for d in second)
            engine = Engine("helpshift", store, environ={})
            found = engine.identify({"userEmail": "bob@example.com"}, session="s", ts=iso())
            assert found.profile == first[1]["profile"] and not found.created
            assert not store.is_decided("row:1")
        finally:
            store.close()
