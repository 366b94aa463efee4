"""The command line (docs/cli.md), run for real: ``python -m idrules`` in a subprocess.

Good input gives decisions on stdout (or ``--out``) and at most a summary on stderr; bad input
gives ONE line on stderr starting ``idrules: ``, exit 1, never a traceback; usage errors exit 2.
Secrets and signatures never appear in any output."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest
from cli_support import (
    assert_one_line_error,
    assert_one_line_usage_error,
    clean_env,
    cli,
    command,
    write_events,
)
from support import EXPORT_KEYS, hmac_hex

from idrules import Engine, MemoryStore, export_rows, replay

DATA = Path(__file__).resolve().parent / "data"
EVENTS = DATA / "events" / "helpshift.jsonl"
SECRET = "cli-tests-secret-0123456789abcdef0123456789abcdef"
WRONG_SECRET = "not-the-right-secret-0123456789abcdef0123456789"


def decisions(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines()]


def sign(user_id: str, secret: str = SECRET) -> str:
    """strict's proof: the hex HMAC-SHA256 of the user id."""
    return hmac_hex(user_id, secret)


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
    """Usage errors exit 2 with ONE line: `idrules: error: ...` and the --help hint."""

    @pytest.mark.parametrize(
        ("args", "fragment"),
        [
            (["bogus"], "No such command 'bogus'"),
            (["replay"], "Missing argument 'EVENTS'"),
            (["replay", "events.jsonl"], "Missing option '--rules'"),
            (["replay", "e.jsonl", "--rules", "helpshift", "--no-such-option"], "--no-such-option"),
            (["resolve", "--rules", "helpshift"], "Missing option '--store'"),
            (["export"], "Missing option '--store'"),
            (["check"], "Missing argument 'RULES'"),
            (["replay", "e.jsonl", "--rules", "helpshift", "--commit-every", "0"], "0"),
            (["sign", "--rules", "strict", "--user-id", "u", "--expires-in", "x"], "x"),
        ],
    )
    def test_one_line_exit_2(self, args: list[str], fragment: str) -> None:
        """A missing argument or option, an unknown command or option, a bad value: exit 2,
        one line naming the problem and where the help is, never click's three-line block."""
        assert_one_line_usage_error(cli(*args), fragment)

    def test_no_command_shows_help(self) -> None:
        """`idrules` alone prints the help on stderr and exits 2 (a usage error)."""
        proc = cli()
        assert proc.returncode == 2 and proc.stdout == ""
        assert "Commands:" in proc.stderr and "replay" in proc.stderr

    @pytest.mark.parametrize("args", [["--help"], ["replay", "--help"], ["-h"]])
    def test_help_still_works(self, args: list[str]) -> None:
        """--help prints the usage on stdout and exits 0."""
        proc = cli(*args)
        assert proc.returncode == 0 and proc.stderr == ""
        assert proc.stdout.startswith("Usage: ")

    def test_version(self) -> None:
        """--version prints the version and exits 0."""
        proc = cli("--version")
        assert proc.returncode == 0 and "version" in proc.stdout


# hardening: no command destroys an input ----------------------------------------------------
class TestOutNeverAnInput:
    """`--out` naming an input is refused with one line, before anything is opened for writing
    (and before a store is opened or created); the input is left byte for byte."""

    @pytest.mark.parametrize("how", ["same", "dotted", "absolute", "symlink", "hardlink"])
    def test_replay_out_is_the_events_file(self, tmp_path: Path, how: str) -> None:
        """However it is spelt (relative, absolute, a link), the log is not emptied."""
        log = tmp_path / "log.jsonl"
        log.write_bytes(EVENTS.read_bytes())
        out = {"same": "log.jsonl", "dotted": "./sub/../log.jsonl", "absolute": str(log)}.get(
            how, f"{how}.jsonl"
        )
        (tmp_path / "sub").mkdir()
        if how == "symlink":
            (tmp_path / out).symlink_to(log)
        if how == "hardlink":
            os.link(log, tmp_path / out)
        proc = cli("replay", "log.jsonl", "--rules", "helpshift", "--out", out, cwd=tmp_path)
        assert_one_line_error(proc, f"--out {out} is the events file", "refusing to overwrite")
        assert log.read_bytes() == EVENTS.read_bytes()

    @pytest.mark.parametrize("suffix", ["", "-wal", "-shm", "-journal", ".lock"])
    def test_replay_out_is_a_store_file_not_yet_made(self, tmp_path: Path, suffix: str) -> None:
        """--out naming the store (or a file SQLite keeps beside it): refused, no store made."""
        proc = cli(
            "replay", EVENTS, "--rules", "helpshift", "--store", "s.db", "--out", f"s.db{suffix}",
            cwd=tmp_path,
        )  # fmt: skip
        assert_one_line_error(proc, f"--out s.db{suffix} is the store")
        assert list(tmp_path.iterdir()) == []

    def test_replay_out_is_an_existing_store(self, tmp_path: Path) -> None:
        """An existing store named by --out is left as it was (its export unchanged)."""
        assert cli("replay", EVENTS, "--rules", "helpshift", "--store", "s.db", cwd=tmp_path)
        before = (tmp_path / "s.db").read_bytes()
        exported = cli("export", "--store", "s.db", cwd=tmp_path).stdout
        proc = cli(
            "replay", EVENTS, "--rules", "helpshift", "--store", "s.db", "--out", "s.db",
            cwd=tmp_path,
        )  # fmt: skip
        assert_one_line_error(proc, "--out s.db is the store")
        assert (tmp_path / "s.db").read_bytes() == before
        assert cli("export", "--store", "s.db", cwd=tmp_path).stdout == exported

    def test_replay_out_is_the_rules_file(self, tmp_path: Path) -> None:
        """The rules file given to --rules is an input."""
        rules = tmp_path / "rules.yaml"
        rules.write_text("extends: helpshift\n")
        proc = cli("replay", EVENTS, "--rules", "rules.yaml", "--out", "rules.yaml", cwd=tmp_path)
        assert_one_line_error(proc, "--out rules.yaml is the rules file")
        assert rules.read_text() == "extends: helpshift\n"

    def test_replay_out_is_the_secrets_file(self, tmp_path: Path) -> None:
        """The secrets file is an input, and its contents never appear in the message."""
        path = secrets_file(tmp_path)
        proc = cli("replay", strict_log(tmp_path), "--rules", "strict", "--secrets", path,
                   "--out", path)  # fmt: skip
        line = assert_one_line_error(proc, "is the secrets file")
        assert SECRET not in line
        assert json.loads(path.read_text()) == {"current": SECRET}

    @pytest.mark.parametrize("which", ["events", "rules", "against", "secrets"])
    def test_diff_out_is_an_input(self, tmp_path: Path, which: str) -> None:
        """diff --out is refused for the log, either rules file, or the secrets file."""
        (tmp_path / "log.jsonl").write_bytes(EVENTS.read_bytes())
        (tmp_path / "a.yaml").write_text("extends: helpshift\n")
        (tmp_path / "b.yaml").write_text("extends: helpshift\nanonymous: {on_identify: clear}\n")
        secrets_file(tmp_path, name="s.json")
        target = {"events": "log.jsonl", "rules": "a.yaml", "against": "b.yaml"}.get(
            which, "s.json"
        )
        before = (tmp_path / target).read_bytes()
        proc = cli(
            "diff", "log.jsonl", "--rules", "a.yaml", "--against", "b.yaml", "--secrets",
            "s.json", "--out", target, cwd=tmp_path,
        )  # fmt: skip
        assert_one_line_error(proc, f"--out {target} is the", "refusing to overwrite")
        assert (tmp_path / target).read_bytes() == before

    def test_stdin_events_with_out(self, tmp_path: Path) -> None:
        """`-` (stdin) with --out is fine: there is no events file to overwrite."""
        proc = cli("replay", "-", "--rules", "helpshift", "--out", "d.jsonl", cwd=tmp_path,
                   stdin=EVENTS.read_bytes())  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        assert len((tmp_path / "d.jsonl").read_text().splitlines()) == 10

    def test_out_is_a_directory(self, tmp_path: Path) -> None:
        """A directory as --out is refused before the store is made."""
        (tmp_path / "out").mkdir()
        proc = cli("replay", EVENTS, "--rules", "helpshift", "--store", "s.db", "--out", "out",
                   cwd=tmp_path)  # fmt: skip
        assert_one_line_error(proc, "--out out is a directory")
        assert not (tmp_path / "s.db").exists()


class TestClosedOutput:
    """A closed stdout (`| head`) is a failure: exit 1, one line, no traceback."""

    def test_replay_into_head(self, tmp_path: Path) -> None:
        """Reading three decisions and closing the pipe ends the replay with exit 1."""
        log = write_events(tmp_path / "log.jsonl", 3000)
        proc = subprocess.Popen(
            command("replay", log, "--rules", "helpshift"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=clean_env(),
        )
        assert proc.stdout is not None and proc.stderr is not None
        for _ in range(3):
            json.loads(proc.stdout.readline())
        proc.stdout.close()
        err = proc.stderr.read().decode()
        assert proc.wait(timeout=60) == 1
        assert "Traceback" not in err and "Exception ignored" not in err
        (line,) = err.splitlines()
        assert line.startswith("idrules: error: ") and "broken pipe" in line

    def test_resolve_keeps_nothing_it_could_not_print(self, tmp_path: Path) -> None:
        """resolve to a closed stdout fails, and its event is not kept: asked again, it is
        decided (not a duplicate of a decision nobody saw)."""
        store = tmp_path / "r.db"
        line = event("r1", {"userId": "u_1"})
        read_end, write_end = os.pipe()
        os.close(read_end)
        try:
            proc = subprocess.run(
                command("resolve", "--rules", "helpshift", "--store", store),
                input=line.encode(),
                stdout=write_end,
                stderr=subprocess.PIPE,
                env=clean_env(),
                timeout=60,
            )
        finally:
            os.close(write_end)
        err = proc.stderr.decode()
        assert proc.returncode == 1 and "Traceback" not in err, err
        assert len(err.splitlines()) == 1 and "broken pipe" in err
        again = cli("resolve", "--rules", "helpshift", "--store", store, stdin=line)
        assert json.loads(again.stdout)["outcome"] == "identified"


class TestSecretErrors:
    """A bad secret is one line that says where it came from, and never shows it."""

    def test_environment_not_utf8(self, tmp_path: Path) -> None:
        """IDRULES_SECRET_CURRENT holding bytes that are not UTF-8: one line naming it."""
        env = {k.encode(): v.encode() for k, v in clean_env().items()}
        env[b"IDRULES_SECRET_CURRENT"] = b"\xff\xfe" + b"k" * 40
        proc = cli("replay", strict_log(tmp_path), "--rules", "strict", env=env)
        line = assert_one_line_error(proc, "IDRULES_SECRET_CURRENT", "not valid UTF-8")
        assert "k" * 40 not in line

    def test_secrets_file_lone_surrogate(self, tmp_path: Path) -> None:
        """A "\\udc80" escape in the secrets file: one line naming the file, not the value."""
        path = tmp_path / "secrets.json"
        path.write_text('{"current": "\\udc80' + "k" * 40 + '"}')
        proc = cli("replay", strict_log(tmp_path), "--rules", "strict", "--secrets", path)
        line = assert_one_line_error(proc, "secrets file", "secrets.json", "not valid UTF-8")
        assert "k" * 40 not in line

    def test_short_secret_from_file_names_the_file(self, tmp_path: Path) -> None:
        """A short secret from --secrets blames the file, not the environment variable."""
        path = secrets_file(tmp_path, "short-secret-31-bytes-long-abcd")
        proc = cli("replay", strict_log(tmp_path), "--rules", "strict", "--secrets", path)
        line = assert_one_line_error(proc, "secrets file", "secrets.json", "31 bytes")
        assert "IDRULES_SECRET_CURRENT" not in line

    def test_short_secret_from_environment_names_the_variable(self, tmp_path: Path) -> None:
        """A short secret from the environment names IDRULES_SECRET_CURRENT."""
        env = clean_env(IDRULES_SECRET_CURRENT="short-secret-31-bytes-long-abcd")
        proc = cli("replay", strict_log(tmp_path), "--rules", "strict", env=env)
        assert_one_line_error(proc, "IDRULES_SECRET_CURRENT", "31 bytes")

    def test_secrets_path_is_a_directory(self, tmp_path: Path) -> None:
        """--secrets naming a directory says so (not "not readable JSON")."""
        proc = cli("replay", strict_log(tmp_path), "--rules", "strict", "--secrets", tmp_path)
        assert_one_line_error(proc, "is a directory")

    def test_secrets_file_with_bom(self, tmp_path: Path) -> None:
        """A secrets file an editor saved with a byte order mark is read."""
        path = tmp_path / "secrets.json"
        path.write_bytes(b"\xef\xbb\xbf" + json.dumps({"current": SECRET}).encode())
        proc = cli("replay", strict_log(tmp_path), "--rules", "strict", "--secrets", path)
        assert proc.returncode == 0, proc.stderr


class TestResolveStdin:
    """resolve reads exactly one event from stdin."""

    def test_two_events_refused(self, tmp_path: Path) -> None:
        """Two events: one line saying to give exactly one, how many lines were found; no
        store made."""
        lines = event("r1", {"userId": "u_1"}) + "\n" + event("r2", {"userId": "u_2"}) + "\n"
        proc = cli("resolve", "--rules", "helpshift", "--store", tmp_path / "r.db", stdin=lines)
        assert_one_line_error(proc, "exactly one event", "found 2 lines")
        assert not (tmp_path / "r.db").exists()

    def test_one_event_over_several_lines(self, tmp_path: Path) -> None:
        """One event pretty-printed over several lines is still one event."""
        text = json.dumps(json.loads(event("r1", {"userId": "u_1"})), indent=2)
        proc = cli("resolve", "--rules", "helpshift", "--store", tmp_path / "r.db", stdin=text)
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["outcome"] == "identified"

    def test_byte_order_mark_ignored(self, tmp_path: Path) -> None:
        """A BOM before the event is ignored (the event is decided, not rejected)."""
        data = b"\xef\xbb\xbf" + event("r1", {"userId": "u_1"}).encode()
        proc = cli("resolve", "--rules", "helpshift", "--store", tmp_path / "r.db", stdin=data)
        assert json.loads(proc.stdout)["outcome"] == "identified", proc.stdout


class TestStrictLog:
    """Through the command line: BOM ignored, numbers JSON cannot carry refused."""

    def test_bom_file_decided_as_without(self, tmp_path: Path) -> None:
        """A log saved with a BOM gives the same decisions (physical line numbers kept)."""
        log = tmp_path / "bom.jsonl"
        log.write_bytes(b"\xef\xbb\xbf" + EVENTS.read_bytes())
        proc = cli("replay", log, "--rules", "helpshift")
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout == cli("replay", EVENTS, "--rules", "helpshift").stdout

    def test_bom_file_in_diff(self, tmp_path: Path) -> None:
        """diff ignores the BOM too: the first event (a track) is decided, and changed by a
        ruleset that needs an email for anonymous activity, exactly as without the mark."""
        log = tmp_path / "bom.jsonl"
        log.write_bytes(b"\xef\xbb\xbf" + EVENTS.read_bytes())
        (tmp_path / "b.yaml").write_text(
            "extends: helpshift\nanonymous: {activity_requires_email: true}\n"
        )
        runs = {}
        for name, source in (("bom", log), ("plain", EVENTS)):
            proc = cli("diff", source, "--rules", "helpshift", "--against", "b.yaml", "--out",
                       f"changed-{name}.jsonl", cwd=tmp_path)  # fmt: skip
            assert proc.returncode == 0, proc.stderr
            runs[name] = proc.stdout.replace(str(source), "LOG")
        assert runs["bom"] == runs["plain"]
        changed = (tmp_path / "changed-bom.jsonl").read_bytes()
        assert changed == (tmp_path / "changed-plain.jsonl").read_bytes()
        first = json.loads(changed.splitlines()[0])
        assert (first["line"], first["a"]["outcome"]) == (1, "recorded")

    def test_overflowing_number_never_stored(self, tmp_path: Path) -> None:
        """1e400 in an event: rejected event.invalid; the decisions and the export stay
        strict JSON (no Infinity)."""
        log = tmp_path / "log.jsonl"
        bad = '{"id": "x1", "ts": "2026-03-01T12:00:00Z", "type": "identify", "session": "s",'
        bad += ' "payload": {"userId": "u_9", "n": 1e400}}'
        log.write_text(bad + "\n" + EVENTS.read_text())
        rules = tmp_path / "keep.yaml"  # every other payload key kept as an attribute
        rules.write_text(
            'extends: helpshift\ninput: {attributes: "*"}\nattributes: {unknown: keep}\n'
        )
        proc = cli("replay", log, "--rules", rules, "--store", tmp_path / "s.db")
        assert proc.returncode == 0, proc.stderr
        first = json.loads(proc.stdout.splitlines()[0])
        assert (first["event_id"], first["outcome"]) == ("x1", "rejected")
        exported = cli("export", "--store", tmp_path / "s.db").stdout
        for text in (proc.stdout, exported):
            for row in text.splitlines():
                json.loads(row, parse_constant=pytest.fail)
