"""The command line (SPEC §6), run for real: ``python -m idrules`` in a subprocess.

Good input gives decisions on stdout (or ``--out``) and at most a summary on stderr; bad input
gives ONE line on stderr starting ``idrules: ``, exit 1, never a traceback; usage errors exit 2.
Secrets and signatures never appear in any output."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest
from cli_support import assert_one_line_error, clean_env, cli

from idrules import Engine, MemoryStore, export_rows, replay

DATA = Path(__file__).resolve().parent / "data"
EVENTS = DATA / "events" / "helpshift.jsonl"
SECRET = "cli-tests-secret-0123456789abcdef0123456789abcdef"
WRONG_SECRET = "not-the-right-secret-0123456789abcdef0123456789"
EXPORT_KEYS = [
    "profile",
    "user_id",
    "email",
    "name",
    "avatar",
    "verified",
    "anonymous",
    "state",
    "attributes",
    "sessions",
    "activity",
    "merged_into",
]


def decisions(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines()]


def sign(user_id: str, secret: str = SECRET) -> str:
    """strict's proof: the hex HMAC-SHA256 of the user id."""
    return hmac.new(secret.encode(), user_id.encode(), hashlib.sha256).hexdigest()


def event(event_id: str, payload: dict | None, session: str = "s1", kind: str = "identify") -> str:
    obj: dict = {"id": event_id, "ts": "2026-03-01T12:00:00Z", "type": kind, "session": session}
    if kind != "logout":
        obj["payload"] = payload
    return json.dumps(obj)


def strict_log(tmp_path: Path, signature: str | None = None) -> Path:
    """A strict (canonical dialect) log: two signed identifies of u_1 and a track."""
    sig = signature or sign("u_1")
    lines = [
        event("s-e1", {"user_id": "u_1", "email": "ada@example.com", "signature": sig}),
        event("s-e2", {"name": "vote"}, kind="track"),
        event("s-e3", {"user_id": "u_1", "signature": sig.upper()}, session="s2"),
    ]
    path = tmp_path / "strict.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def secrets_file(tmp_path: Path, secret: str = SECRET, name: str = "secrets.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps({"current": secret}))
    return path


def in_process(rules: str, path: Path, **engine_args) -> tuple[list[str], list[dict]]:
    """The same replay through the library, into a memory store: decisions and export."""
    store = MemoryStore()
    engine = Engine(rules, store, **engine_args)
    out: list[str] = []
    replay(engine, path.read_bytes().splitlines(), lambda line: out.append(line.rstrip("\n")))
    return out, list(export_rows(store))


class TestReplay:
    """`idrules replay`: from a file or stdin, to stdout or --out, in memory or a --store."""

    def test_from_file(self) -> None:
        """Decisions on stdout, one per event in order, the same bytes as the library's."""
        proc = cli("replay", EVENTS, "--rules", "helpshift")
        assert proc.returncode == 0, proc.stderr
        expected, _ = in_process("helpshift", EVENTS)
        assert proc.stdout.splitlines() == expected
        got = decisions(proc.stdout)
        assert [d["line"] for d in got] == [1, 2, 3, 5, 6, 7, 8, 9, 10, 11]
        assert [d["outcome"] for d in got] == [
            "recorded",
            "identified",
            "recorded",
            "logged_out",
            "identified",
            "anonymous",
            "rejected",
            "duplicate",
            "rejected",
            "identified",
        ]

    def test_summary_on_stderr_only(self) -> None:
        """stdout holds only decision lines; stderr holds one summary line, no progress."""
        proc = cli("replay", EVENTS, "--rules", "helpshift")
        for line in proc.stdout.splitlines():
            assert list(json.loads(line))[:3] == ["event_id", "line", "outcome"]
        lines = proc.stderr.splitlines()
        assert len(lines) == 1
        assert lines[0].startswith("idrules: 10 events")
        assert "\r" not in proc.stderr  # no progress bar: stderr is not a terminal

    def test_quiet(self) -> None:
        """-q leaves stderr empty and the decisions unchanged."""
        loud = cli("replay", EVENTS, "--rules", "helpshift")
        quiet = cli("replay", EVENTS, "--rules", "helpshift", "-q")
        assert quiet.returncode == 0 and quiet.stderr == ""
        assert quiet.stdout == loud.stdout

    def test_progress_on_a_terminal(self) -> None:
        """With stderr on a terminal a progress line appears there, and never on stdout."""
        main_fd, child_fd = pty.openpty()
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "idrules", "replay", str(EVENTS), "--rules", "helpshift"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=child_fd,
                env=clean_env(),
                timeout=60,
            )
            os.close(child_fd)
            seen = b""
            while True:
                try:
                    chunk = os.read(main_fd, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                seen += chunk
        finally:
            os.close(main_fd)
        assert proc.returncode == 0
        assert b"\r10 events" in seen
        assert b"idrules: 10 events" in seen
        assert b"\r" not in proc.stdout
        assert len(proc.stdout.splitlines()) == 10

    def test_from_stdin(self) -> None:
        """`-` reads the log from stdin and decides it exactly as from the file."""
        from_file = cli("replay", EVENTS, "--rules", "helpshift")
        from_stdin = cli("replay", "-", "--rules", "helpshift", stdin=EVENTS.read_bytes())
        assert from_stdin.returncode == 0, from_stdin.stderr
        assert from_stdin.stdout == from_file.stdout

    def test_out(self, tmp_path: Path) -> None:
        """--out writes the decisions to a file; stdout stays empty; a rerun gives equal bytes."""
        out = tmp_path / "decisions.jsonl"
        proc = cli("replay", EVENTS, "--rules", "helpshift", "--out", out)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout == ""
        assert proc.stderr.startswith("idrules: 10 events")
        first = out.read_bytes()
        assert first.decode() == cli("replay", EVENTS, "--rules", "helpshift").stdout
        cli("replay", EVENTS, "--rules", "helpshift", "--out", out)
        assert out.read_bytes() == first

    def test_store_then_export(self, tmp_path: Path) -> None:
        """--store persists the replay; `export` prints the same profiles as the library."""
        store = tmp_path / "idrules.db"
        proc = cli("replay", EVENTS, "--rules", "helpshift", "--store", store)
        assert proc.returncode == 0, proc.stderr
        expected_decisions, expected_rows = in_process("helpshift", EVENTS)
        assert proc.stdout.splitlines() == expected_decisions
        exported = cli("export", "--store", store)
        assert exported.returncode == 0, exported.stderr
        assert exported.stderr == ""
        rows = decisions(exported.stdout)
        assert rows == expected_rows
        assert all(list(row) == EXPORT_KEYS for row in rows)
        assert any(row["activity"] == ["e3"] for row in rows)

    def test_store_detects_duplicates_across_runs(self, tmp_path: Path) -> None:
        """Another log replaying events the store already decided gets duplicates, no changes."""
        store = tmp_path / "idrules.db"
        cli("replay", EVENTS, "--rules", "helpshift", "--store", store, "-q")
        before = cli("export", "--store", store).stdout
        other = tmp_path / "other.jsonl"  # a new first line: another log, so a new run
        first = b'{"id": "new-1", "ts": "2026-03-02T08:00:00Z", "type": "logout", "session": "x"}'
        other.write_bytes(first + b"\n" + Path(EVENTS).read_bytes())
        again = decisions(cli("replay", other, "--rules", "helpshift", "--store", store).stdout)
        assert again[0]["outcome"] == "logged_out"
        assert {d["outcome"] for d in again[1:] if d["event_id"]} == {"duplicate"}
        assert cli("export", "--store", store).stdout == before

    def test_secrets_file_strict(self, tmp_path: Path) -> None:
        """strict with --secrets verifies a valid hex HMAC (any case) of the user id."""
        proc = cli(
            "replay", strict_log(tmp_path), "--rules", "strict", "--secrets", secrets_file(tmp_path)
        )
        assert proc.returncode == 0, proc.stderr
        got = decisions(proc.stdout)
        assert [d["outcome"] for d in got] == ["identified", "recorded", "identified"]
        assert got[0]["identity"]["verified"] is True
        assert "auth.verified" in [r["code"] for r in got[0]["reasons"]]
        assert got[2]["profile"] == got[0]["profile"]
        assert got[1]["profile"] == got[0]["profile"]

    def test_secret_from_environment(self, tmp_path: Path) -> None:
        """IDRULES_SECRET_CURRENT in the environment works like the secrets file."""
        by_env = cli(
            "replay",
            strict_log(tmp_path),
            "--rules",
            "strict",
            env=clean_env(IDRULES_SECRET_CURRENT=SECRET),
        )
        by_file = cli(
            "replay", strict_log(tmp_path), "--rules", "strict", "--secrets", secrets_file(tmp_path)
        )
        assert by_env.returncode == 0, by_env.stderr
        assert by_env.stdout == by_file.stdout
        assert decisions(by_env.stdout)[0]["identity"]["verified"] is True

    def test_wrong_secret_rejects_without_leaking(self, tmp_path: Path) -> None:
        """A wrong secret gives `rejected` with auth.invalid; no secret or signature is shown."""
        signature = sign("u_1")
        out = tmp_path / "out.jsonl"
        proc = cli(
            "replay",
            strict_log(tmp_path, signature),
            "--rules",
            "strict",
            "--secrets",
            secrets_file(tmp_path, WRONG_SECRET),
            "--out",
            out,
        )
        assert proc.returncode == 0, proc.stderr
        got = decisions(out.read_text())
        identifies = [got[0], got[2]]
        for decision in identifies:
            assert decision["outcome"] == "rejected"
            assert decision["profile"] is None
            assert "auth.invalid" in [r["code"] for r in decision["reasons"]]
        everything = proc.stdout + proc.stderr + out.read_text()
        for secret_text in (SECRET, WRONG_SECRET, signature, signature.upper()):
            assert secret_text not in everything

    def test_valid_run_never_shows_secrets(self, tmp_path: Path) -> None:
        """Neither the secret nor the signatures appear in a successful replay's output."""
        signature = sign("u_1")
        store = tmp_path / "s.db"
        proc = cli(
            "replay",
            strict_log(tmp_path, signature),
            "--rules",
            "strict",
            "--store",
            store,
            env=clean_env(IDRULES_SECRET_CURRENT=SECRET),
        )
        assert proc.returncode == 0, proc.stderr
        everything = proc.stdout + proc.stderr + cli("export", "--store", store).stdout
        for secret_text in (SECRET, signature, signature.upper()):
            assert secret_text not in everything


class TestResolve:
    """`idrules resolve`: one event from stdin, one decision, the store kept between calls."""

    def test_store_persists_between_calls(self, tmp_path: Path) -> None:
        """The second identify of a user in another call matches the profile the first made."""
        store = tmp_path / "r.db"
        first = cli(
            "resolve",
            "--rules",
            "helpshift",
            "--store",
            store,
            stdin=event("r1", {"userId": "u_1", "userEmail": "ada@example.com"}) + "\n",
        )
        assert first.returncode == 0, first.stderr
        assert first.stderr == ""
        assert len(first.stdout.splitlines()) == 1
        one = json.loads(first.stdout)
        assert (one["event_id"], one["outcome"], one["created"]) == ("r1", "identified", True)
        second = cli(
            "resolve",
            "--rules",
            "helpshift",
            "--store",
            store,
            stdin=event("r2", {"userId": "u_1"}, session="s2"),
        )
        two = json.loads(second.stdout)
        assert two["outcome"] == "identified"
        assert two["profile"] == one["profile"]
        assert two["created"] is False
        assert "match.user_id" in [r["code"] for r in two["reasons"]]
        again = cli(
            "resolve",
            "--rules",
            "helpshift",
            "--store",
            store,
            stdin=event("r2", {"userId": "u_9"}, session="s3"),
        )
        assert json.loads(again.stdout)["outcome"] == "duplicate"
        rows = decisions(cli("export", "--store", store).stdout)
        assert len(rows) == 1
        assert rows[0]["sessions"] == ["s1", "s2"]

    def test_resolve_with_secrets(self, tmp_path: Path) -> None:
        """resolve takes --secrets like replay and verifies the HMAC."""
        line = event("v1", {"user_id": "u_7", "signature": sign("u_7")})
        proc = cli(
            "resolve",
            "--rules",
            "strict",
            "--store",
            tmp_path / "r.db",
            "--secrets",
            secrets_file(tmp_path),
            stdin=line,
        )
        assert proc.returncode == 0, proc.stderr
        decision = json.loads(proc.stdout)
        assert decision["outcome"] == "identified"
        assert decision["identity"]["verified"] is True

    def test_malformed_event_is_a_decision(self, tmp_path: Path) -> None:
        """A malformed event on stdin is a `rejected` decision (event.invalid), exit 0."""
        proc = cli("resolve", "--rules", "helpshift", "--store", tmp_path / "r.db", stdin="{x")
        assert proc.returncode == 0, proc.stderr
        decision = json.loads(proc.stdout)
        assert decision["outcome"] == "rejected"
        assert [r["code"] for r in decision["reasons"]] == ["event.invalid"]


class TestExport:
    """`idrules export`: every profile of a store, one JSON line each, in creation order."""

    def test_export_lines(self, tmp_path: Path) -> None:
        """Each line is one profile with the documented keys in order; stderr is empty."""
        store = tmp_path / "e.db"
        cli("replay", EVENTS, "--rules", "helpshift", "--store", store, "-q")
        proc = cli("export", "--store", store)
        assert proc.returncode == 0 and proc.stderr == ""
        rows = decisions(proc.stdout)
        assert [list(row) for row in rows] == [EXPORT_KEYS] * len(rows)
        identified = [row for row in rows if row["user_id"] == "u_1"]
        assert len(identified) == 1
        assert identified[0]["email"] in ("Ada@example.com", "ada@example.com")  # domain lowered
        assert identified[0]["state"] == "active"


class TestCheck:
    """`idrules check` through the real command line."""

    def test_check_pack(self) -> None:
        """A shipped pack is one `ok:` line on stdout, exit 0."""
        proc = cli("check", "strict")
        assert proc.returncode == 0 and proc.stderr == ""
        assert proc.stdout.startswith("ok: ruleset strict ") and proc.stdout.count("\n") == 1

    def test_check_invalid_file(self) -> None:
        """An invalid file lists located problems on stderr and exits 1."""
        proc = cli("check", "rules/broken.yaml", cwd=DATA)
        assert proc.returncode == 1 and proc.stdout == ""
        assert "Traceback" not in proc.stderr
        assert proc.stderr.splitlines()[0].startswith("idrules: rules/broken.yaml:")


class TestSign:
    """`idrules sign`: what the customer's server sends."""

    def test_sign_hmac(self, tmp_path: Path) -> None:
        """strict's signature for a user id is the hex HMAC-SHA256 of it under the secret."""
        proc = cli(
            "sign", "--rules", "strict", "--user-id", "u_1", "--secrets", secrets_file(tmp_path)
        )
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip().lower() == sign("u_1")
        assert SECRET not in proc.stdout + proc.stderr


class TestBadInput:
    """Every bad input is one line on stderr starting `idrules: `, exit 1, no traceback."""

    def test_missing_events_file(self, tmp_path: Path) -> None:
        """A missing events file is named."""
        proc = cli("replay", tmp_path / "none.jsonl", "--rules", "helpshift")
        assert_one_line_error(proc, "none.jsonl", "not found")

    def test_events_path_is_a_directory(self, tmp_path: Path) -> None:
        """An events path that is a directory is refused."""
        assert_one_line_error(cli("replay", tmp_path, "--rules", "helpshift"), "directory")

    def test_missing_store_for_export(self, tmp_path: Path) -> None:
        """export of a store that does not exist is refused, and creates nothing."""
        missing = tmp_path / "missing.db"
        assert_one_line_error(cli("export", "--store", missing), "missing.db", "not found")
        assert not missing.exists()

    @pytest.mark.parametrize("command", ["export", "replay", "resolve"])
    def test_store_not_a_database(self, tmp_path: Path, command: str) -> None:
        """A store file that is not SQLite is refused by every command, and left as it was."""
        store = tmp_path / "notes.db"
        store.write_text("my shopping list\n" * 50)
        args = {
            "export": ["export", "--store", store],
            "replay": ["replay", EVENTS, "--rules", "helpshift", "--store", store],
            "resolve": ["resolve", "--rules", "helpshift", "--store", store],
        }[command]
        proc = cli(*args, stdin=event("x1", {"userId": "u"}))
        assert_one_line_error(proc, "notes.db", "not an SQLite database")
        assert store.read_text() == "my shopping list\n" * 50

    @pytest.mark.parametrize("command", ["replay", "resolve"])
    def test_invalid_rules(self, tmp_path: Path, command: str) -> None:
        """An invalid rules file is one line naming the first problem and how many more."""
        rules = DATA / "rules" / "broken.yaml"
        args = (
            ["replay", EVENTS, "--rules", rules]
            if command == "replay"
            else ["resolve", "--rules", rules, "--store", tmp_path / "r.db"]
        )
        assert_one_line_error(cli(*args, stdin=event("x", {})), "broken.yaml:", "(and 7 more)")

    def test_unknown_pack(self) -> None:
        """An unknown pack name is refused, naming it."""
        proc = cli("replay", EVENTS, "--rules", "no-such-pack")
        assert_one_line_error(proc, "no-such-pack")

    def test_missing_secrets_file(self, tmp_path: Path) -> None:
        """A missing --secrets file is named."""
        proc = cli(
            "replay",
            strict_log(tmp_path),
            "--rules",
            "strict",
            "--secrets",
            tmp_path / "nope.json",
        )
        assert_one_line_error(proc, "nope.json")

    @pytest.mark.parametrize("content", ['{"current": "' + SECRET, "[1, 2]", '{"current": 5}'])
    def test_secrets_file_not_json_object(self, tmp_path: Path, content: str) -> None:
        """A secrets file that is not a JSON object of strings is refused without its text."""
        path = tmp_path / "secrets.json"
        path.write_text(content)
        proc = cli("replay", strict_log(tmp_path), "--rules", "strict", "--secrets", path)
        line = assert_one_line_error(proc, "secrets.json")
        assert SECRET not in line

    def test_secret_missing_for_strict(self, tmp_path: Path) -> None:
        """strict without a secret refuses to start, naming IDRULES_SECRET_CURRENT."""
        proc = cli("replay", strict_log(tmp_path), "--rules", "strict")
        assert_one_line_error(proc, "IDRULES_SECRET_CURRENT")

    def test_secret_missing_names_variable_not_other_secrets(self, tmp_path: Path) -> None:
        """A secrets file lacking `current` still names the variable and prints no value."""
        path = tmp_path / "other.json"
        path.write_text(json.dumps({"previous": SECRET}))
        proc = cli("replay", strict_log(tmp_path), "--rules", "strict", "--secrets", path)
        line = assert_one_line_error(proc, "IDRULES_SECRET_CURRENT")
        assert SECRET not in line

    @pytest.mark.parametrize("where", ["file", "env"])
    def test_secret_too_short(self, tmp_path: Path, where: str) -> None:
        """A secret under 32 bytes is refused, without printing it."""
        short = "short-secret-31-bytes-long-abcd"
        assert len(short.encode()) == 31
        if where == "file":
            args = ["--secrets", secrets_file(tmp_path, short)]
            env = clean_env()
        else:
            args, env = [], clean_env(IDRULES_SECRET_CURRENT=short)
        proc = cli("replay", strict_log(tmp_path), "--rules", "strict", *args, env=env)
        line = assert_one_line_error(proc, "32")
        assert short not in line

    @pytest.mark.parametrize("stdin", ["", "\n  \n"])
    def test_empty_stdin_for_resolve(self, tmp_path: Path, stdin: str) -> None:
        """resolve with nothing on stdin is refused (and creates no store)."""
        store = tmp_path / "r.db"
        proc = cli("resolve", "--rules", "helpshift", "--store", store, stdin=stdin)
        assert_one_line_error(proc, "stdin")
        assert not store.exists()


class TestUsage:
    """Usage errors (click's) exit 2."""

    @pytest.mark.parametrize(
        "args",
        [
            [],
            ["bogus"],
            ["replay"],
            ["replay", "events.jsonl"],
            ["replay", "events.jsonl", "--rules", "helpshift", "--no-such-option"],
            ["resolve", "--rules", "helpshift"],
            ["export"],
            ["check"],
        ],
    )
    def test_usage_error_exit_2(self, args: list[str]) -> None:
        """A missing argument or option, or an unknown command or option, exits 2."""
        proc = cli(*args)
        assert proc.returncode == 2, (args, proc.returncode, proc.stderr)
        assert "Traceback" not in proc.stderr
        assert proc.stdout == "" or args == []
