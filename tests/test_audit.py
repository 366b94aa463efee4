"""The audit tools, run for real (``python -m idrules``): `verify-log` (the decisions file's hash
chain catches every kind of tampering and names the line), `diff` (what a rules change would do
to a log) and `history` (every decision that shaped a profile, merged ones included)."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest
from cli_support import assert_one_line_error, cli

QUACKBACK_SECRET = "s3cr3t-current-key-0123456789abcdef"
OVERRIDE = """\
extends: helpshift
matching:
  email_matches_profile_with_other_user_id: reject
anonymous:
  on_identify: merge
"""


# helpers -------------------------------------------------------------------------------------


def write_log(path: Path, events: list[dict | str]) -> Path:
    """A log: dicts as JSON lines (``ts`` filled in minute by minute), strings as they are."""
    lines = []
    for n, item in enumerate(events):
        if isinstance(item, str):
            lines.append(item)
        else:
            lines.append(json.dumps({"ts": f"2026-03-01T12:{n:02d}:00Z", **item}))
    path.write_text("\n".join(lines) + "\n")
    return path


def identify(event_id: str, session: str, **payload: str) -> dict:
    return {"id": event_id, "type": "identify", "session": session, "payload": payload}


def track(event_id: str, session: str, name: str, email: str | None = None) -> dict:
    payload = {"name": name} if email is None else {"name": name, "email": email}
    return {"id": event_id, "type": "track", "session": session, "payload": payload}


def canonical(value: object) -> str:
    """Canonical JSON as the decisions file holds it: compact UTF-8, keys in order."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def seal(decision: dict, prev: str) -> bytes:
    """A decision sealed by hand as the chain documents it: hash = sha256(prev + body)."""
    body = canonical({k: v for k, v in decision.items() if k not in ("prev", "hash")})
    digest = hashlib.sha256((prev + body).encode("utf-8")).hexdigest()
    return f'{body[:-1]},"prev":"{prev}","hash":"{digest}"}}\n'.encode()


def unsealed(line: bytes | str) -> dict:
    """A decision line without its chain keys."""
    return {k: v for k, v in json.loads(line).items() if k not in ("prev", "hash")}


# verify-log -------------------------------------------------------------------------------------
VERIFY_EVENTS: list[dict | str] = [
    track("v1", "b1", "vote"),
    identify("v2", "b1", userId="u_1"),
    identify("v3", "b2", userEmail="a@example.com"),
    track("v4", "b2", "post"),
    {"id": "v5", "type": "logout", "session": "b1"},
    identify("v6", "b3", userId=" pad "),
    "not json",
    identify("v2", "b3", userId="u_9"),
    identify("v8", "b4", userId="u_2", userName="Bo"),
    track("v9", "b4", "vote"),
]


@pytest.fixture
def sealed(tmp_path: Path) -> list[bytes]:
    """An intact decisions file's lines (10 decisions, helpshift)."""
    log = write_log(tmp_path / "events.jsonl", VERIFY_EVENTS)
    proc = cli("replay", log, "--rules", "helpshift", "--out", "d.jsonl", "-q", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = (tmp_path / "d.jsonl").read_bytes().splitlines(keepends=True)
    assert len(lines) == 10
    return lines


def edit(lines: list[bytes], index: int, key: str, value: object) -> list[bytes]:
    """Change one field of one line, keeping its prev and hash."""
    obj = json.loads(lines[index])
    assert obj[key] != value
    obj[key] = value
    changed = list(lines)
    changed[index] = (canonical(obj) + "\n").encode()
    return changed


def drop(lines: list[bytes], index: int) -> list[bytes]:
    return lines[:index] + lines[index + 1 :]


def insert(lines: list[bytes], index: int, line: bytes) -> list[bytes]:
    return [*lines[:index], line, *lines[index:]]


def swap(lines: list[bytes], i: int, j: int) -> list[bytes]:
    changed = list(lines)
    changed[i], changed[j] = changed[j], changed[i]
    return changed


def forged_after(lines: list[bytes], index: int) -> bytes:
    """A made-up decision correctly chained to line ``index`` (0-based)."""
    predecessor = json.loads(lines[index])
    forged = unsealed(lines[index])
    forged.update(event_id="forged", outcome="identified", profile="p_0000000000000000")
    return seal(forged, predecessor["hash"])


TAMPERING = {
    # name: (make the tampered lines, the 1-based line verify-log must name, words it says)
    "edit outcome": (lambda ls: edit(ls, 4, "outcome", "identified"), 5, "edited"),
    "edit profile": (lambda ls: edit(ls, 2, "profile", "p_ffffffffffffffff"), 3, "edited"),
    "edit first event id": (lambda ls: edit(ls, 0, "event_id", "v0"), 1, "edited"),
    "edit last line": (lambda ls: edit(ls, 9, "created", True), 10, "edited"),
    "drop a middle line": (lambda ls: drop(ls, 4), 5, "dropped"),
    "drop the first line": (lambda ls: drop(ls, 0), 1, "ruleset"),
    "insert a copied line": (lambda ls: insert(ls, 6, ls[2]), 7, "copy of line 3"),
    "insert a copy of the previous line": (lambda ls: insert(ls, 4, ls[3]), 5, "copy of line 4"),
    "insert a forged chained line": (lambda ls: insert(ls, 4, forged_after(ls, 3)), 5, "inserted"),
    "swap two lines": (lambda ls: swap(ls, 4, 5), 5, "reordered"),
    "swap the first two lines": (lambda ls: swap(ls, 0, 1), 1, "ruleset"),
    "swap distant lines": (lambda ls: swap(ls, 2, 7), 3, ""),
}


class TestVerifyLog:
    """`idrules verify-log FILE [--head H]`: the hash chain of a decisions file."""

    def test_chain_is_as_documented(self, sealed: list[bytes]) -> None:
        """Each line is its body plus prev and sha256(prev + body); line 1 starts at the rules."""
        prev = json.loads(sealed[0])["ruleset"]["sha256"]
        for line in sealed:
            assert seal(unsealed(line), prev) == line
            prev = json.loads(line)["hash"]

    def test_intact_file_passes(self, sealed: list[bytes], tmp_path: Path) -> None:
        """An untouched file: exit 0 and one line giving the count and the head hash."""
        head = json.loads(sealed[-1])["hash"]
        proc = cli("verify-log", "d.jsonl", cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout == f"ok: 10 decisions, chain intact; head {head}\n"
        assert proc.stderr == ""
        with_head = cli("verify-log", "d.jsonl", "--head", head, cwd=tmp_path)
        assert with_head.returncode == 0, with_head.stderr
        assert with_head.stdout == proc.stdout

    @pytest.mark.parametrize("name", list(TAMPERING))
    def test_tampering_names_the_line(self, sealed: list[bytes], tmp_path: Path, name: str) -> None:
        """Every kind of tampering: exit 1, one line naming file:N: of the tampered line."""
        make, number, words = TAMPERING[name]
        tampered = make(sealed)
        assert tampered != sealed
        (tmp_path / "t.jsonl").write_bytes(b"".join(tampered))
        line = assert_one_line_error(cli("verify-log", "t.jsonl", cwd=tmp_path), words)
        assert line.startswith(f"idrules: error: t.jsonl:{number}: "), line

    @pytest.mark.parametrize("keep", [9, 5, 1])
    def test_truncated_end_needs_head(self, sealed: list[bytes], tmp_path: Path, keep) -> None:
        """Lines cut off the end leave a valid chain; only --head (the kept hash) catches it."""
        head = json.loads(sealed[-1])["hash"]
        (tmp_path / "t.jsonl").write_bytes(b"".join(sealed[:keep]))
        plain = cli("verify-log", "t.jsonl", cwd=tmp_path)
        assert plain.returncode == 0, plain.stderr
        assert plain.stdout.startswith(f"ok: {keep} decisions")
        checked = cli("verify-log", "t.jsonl", "--head", head, cwd=tmp_path)
        assert_one_line_error(checked, "t.jsonl", head, "cut off")

    def test_forged_line_at_the_end_needs_head(self, sealed: list[bytes], tmp_path: Path) -> None:
        """A forged line chained onto the end passes alone; --head catches it."""
        head = json.loads(sealed[-1])["hash"]
        (tmp_path / "t.jsonl").write_bytes(b"".join([*sealed, forged_after(sealed, 9)]))
        assert cli("verify-log", "t.jsonl", cwd=tmp_path).returncode == 0
        assert_one_line_error(cli("verify-log", "t.jsonl", "--head", head, cwd=tmp_path), head)

    def test_not_a_decision_line(self, sealed: list[bytes], tmp_path: Path) -> None:
        """A line that is not a sealed decision (a blank line, a note) is named."""
        (tmp_path / "t.jsonl").write_bytes(b"".join(insert(sealed, 3, b'{"note": 1}\n')))
        assert_one_line_error(cli("verify-log", "t.jsonl", cwd=tmp_path), "t.jsonl:4:")

    def test_missing_file(self, tmp_path: Path) -> None:
        """A decisions file that does not exist: one-line error, exit 1."""
        assert_one_line_error(cli("verify-log", "nope.jsonl", cwd=tmp_path), "nope.jsonl")


class TestVerifyLogStrict:
    """verify-log checks the bytes as they are, and an empty file is not an intact chain."""

    def test_empty_file(self, tmp_path: Path) -> None:
        """An empty decisions file: exit 1, one line saying it is empty (not "chain intact")."""
        (tmp_path / "d.jsonl").write_bytes(b"")
        assert_one_line_error(cli("verify-log", "d.jsonl", cwd=tmp_path), "d.jsonl", "empty")

    @pytest.mark.parametrize("bad", [b"\xff", b"\xc3", b"\xe2\x82", b"\xf0\x9f"])
    def test_invalid_utf8_where_a_replacement_character_was(
        self, tmp_path: Path, bad: bytes
    ) -> None:
        """A decision holding U+FFFD, its three bytes swapped for bytes that are not UTF-8
        (which a lenient decoder reads as U+FFFD again): named as edited."""
        log = write_log(tmp_path / "events.jsonl", [identify("r1", "b1", userName="Ada\ufffd")])
        proc = cli("replay", log, "--rules", "helpshift", "--out", "d.jsonl", "-q", cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        original = (tmp_path / "d.jsonl").read_bytes()
        assert original.count("\ufffd".encode()) == 1
        assert cli("verify-log", "d.jsonl", cwd=tmp_path).returncode == 0
        tampered = original.replace("\ufffd".encode(), bad)
        assert tampered.decode("utf-8", "replace") == original.decode()
        (tmp_path / "t.jsonl").write_bytes(tampered)
        line = assert_one_line_error(cli("verify-log", "t.jsonl", cwd=tmp_path), "UTF-8")
        assert line.startswith("idrules: error: t.jsonl:1: edited")


# diff ---------------------------------------------------------------------------------------
DIFF_EVENTS: list[dict | str] = [
    # the same under both: a new user from a fresh session
    identify("i1", "s0", userId="u_1", userEmail="ada@example.com"),
    track("t2", "s1", "vote"),
    # B merges s1's anonymous profile into u_1 (A keeps it apart): a merge change
    identify("i3", "s1", userId="u_1"),
    "",
    track("t4", "s2", "vote"),
    # B promotes s2's anonymous profile (A creates a new one): a profile change
    identify("i5", "s2", userId="u_5", userEmail="bob@example.com"),
    # ada's email belongs to u_1: A makes a new profile, B rejects: outcome and profile change
    identify("i6", "s3", userId="u_2", userEmail="Ada@Example.com"),
    track("t7", "s1", "post"),
    "not json",
    identify("i1", "s9", userId="u_9"),  # a duplicate id
]
CHANGED = {"i3": 3, "i5": 6, "i6": 7}  # event id -> line


def table(text: str) -> tuple[dict[str, int], dict[str, tuple[int, int, str]]]:
    """The summary's rows (label -> count) and reason-code rows (code -> (A, B, change))."""
    rows: dict[str, int] = {}
    codes: dict[str, tuple[int, int, str]] = {}
    in_codes = False
    for line in text.splitlines()[2:]:
        if not line.strip():
            continue
        if line.startswith("reason code"):
            in_codes = True
            continue
        if in_codes:
            code, a, b, change = line.split()
            codes[code] = (int(a), int(b), change)
        else:
            label, _, count = line.strip().rpartition(" ")
            rows[label.strip()] = int(count)
    return rows, codes


@pytest.fixture
def diff_log(tmp_path: Path) -> Path:
    (tmp_path / "override.yaml").write_text(OVERRIDE)
    return write_log(tmp_path / "events.jsonl", DIFF_EVENTS)


class TestDiff:
    """`idrules diff EVENTS --rules A --against B [--out F]`: what a rules change would do."""

    def test_summary_counts(self, diff_log: Path, tmp_path: Path) -> None:
        """Outcome, profile and merge changes and the reason codes that appeared or vanished."""
        proc = cli(
            "diff", diff_log, "--rules", "helpshift", "--against", "override.yaml", cwd=tmp_path
        )
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.startswith("idrules diff: A = helpshift (helpshift ")
        assert ", B = override.yaml (" in proc.stdout.splitlines()[0]
        rows, codes = table(proc.stdout)
        assert rows == {
            "events": 9,
            "decisions changed": 3,
            "outcome changed": 1,
            "profile assignment changed": 2,
            "merges changed": 1,
            "identified -> rejected": 1,
        }
        assert codes == {
            "anonymous.kept": (2, 0, "vanished"),
            "anonymous.merged": (0, 1, "appeared"),
            "anonymous.promoted": (0, 1, "appeared"),
            "profile.created": (3, 1, "-2"),
        }

    def test_out_holds_exactly_the_changed_events(self, diff_log: Path, tmp_path: Path) -> None:
        """--out: one line per changed event, with both decisions exactly as a replay gives."""
        proc = cli(
            "diff",
            diff_log,
            "--rules",
            "helpshift",
            "--against",
            "override.yaml",
            "--out",
            "changes.jsonl",
            cwd=tmp_path,
        )
        assert proc.returncode == 0, proc.stderr
        changes = [json.loads(line) for line in (tmp_path / "changes.jsonl").open()]
        assert {c["event_id"]: c["line"] for c in changes} == CHANGED
        assert [c["line"] for c in changes] == sorted(CHANGED.values())
        assert all(list(c) == ["line", "event_id", "a", "b"] for c in changes)
        for side, rules in (("a", "helpshift"), ("b", "override.yaml")):
            replayed = cli("replay", diff_log, "--rules", rules, "-q", cwd=tmp_path)
            by_id = {}
            for line in replayed.stdout.splitlines():
                decision = unsealed(line)
                by_id.setdefault(decision["event_id"], decision)
            for change in changes:
                assert change[side] == by_id[change["event_id"]], (side, change["event_id"])
        first = {c["event_id"]: c for c in changes}
        assert (first["i3"]["a"]["merged"], len(first["i3"]["b"]["merged"])) == ([], 1)
        assert first["i3"]["a"]["profile"] == first["i3"]["b"]["profile"]
        assert first["i5"]["a"]["profile"] != first["i5"]["b"]["profile"]
        assert (first["i6"]["a"]["outcome"], first["i6"]["b"]["outcome"]) == (
            "identified",
            "rejected",
        )
        assert first["i6"]["b"]["profile"] is None

    @pytest.mark.parametrize("rules", ["helpshift", "override.yaml"])
    def test_identical_rulesets_change_nothing(
        self, diff_log: Path, tmp_path: Path, rules: str
    ) -> None:
        """A ruleset against itself: zero changes everywhere, no code rows, an empty --out."""
        proc = cli(
            "diff",
            diff_log,
            "--rules",
            rules,
            "--against",
            rules,
            "--out",
            "changes.jsonl",
            cwd=tmp_path,
        )
        assert proc.returncode == 0, proc.stderr
        rows, codes = table(proc.stdout)
        assert rows == {
            "events": 9,
            "decisions changed": 0,
            "outcome changed": 0,
            "profile assignment changed": 0,
            "merges changed": 0,
        }
        assert codes == {}
        assert (tmp_path / "changes.jsonl").read_bytes() == b""

    def test_missing_events_file(self, tmp_path: Path) -> None:
        """A missing log: one-line error, exit 1, no --out file made."""
        proc = cli(
            "diff",
            "nope.jsonl",
            "--rules",
            "helpshift",
            "--against",
            "helpshift",
            "--out",
            "changes.jsonl",
            cwd=tmp_path,
        )
        assert_one_line_error(proc, "nope.jsonl")
        assert not (tmp_path / "changes.jsonl").exists()


# history ------------------------------------------------------------------------------------
HISTORY_EVENTS: list[dict | str] = [
    identify("q1", "s0", id="u_1", email="ada@example.com", name="Ada"),
    # s1 acts anonymously with the inline email prompt, then identifies as u_1: merged
    track("q2", "s1", "vote", email="ADA@example.com"),
    track("q3", "s1", "post", email="ada@example.com"),
    identify("q4", "s1", id="u_1", email="ada@example.com"),
    # s2 acts anonymously, then identifies as a new user: its profile is promoted
    track("q5", "s2", "vote", email="bob@example.com"),
    identify("q6", "s2", id="u_2", email="bob@example.com", name="Bob"),
    track("q7", "s1", "post"),
    # another user id with ada's email: a second profile holds it
    identify("q8", "s3", id="u_3", email="ada@example.com"),
    track("q9", "s4", "vote"),  # refused: quackback's anonymous activity needs an email
]


@pytest.fixture
def history_store(tmp_path: Path) -> dict[str, dict]:
    """A quackback replay into q.db; returns its decisions by event id."""
    (tmp_path / "secrets.json").write_text(json.dumps({"current": QUACKBACK_SECRET}))
    log = write_log(tmp_path / "events.jsonl", HISTORY_EVENTS)
    proc = cli(
        "replay",
        log,
        "--rules",
        "quackback",
        "--secrets",
        "secrets.json",
        "--store",
        "q.db",
        "-q",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    decisions = {d["event_id"]: d for d in map(json.loads, proc.stdout.splitlines())}
    assert decisions["q4"]["merged"] == [decisions["q2"]["profile"]]
    assert decisions["q6"]["profile"] == decisions["q5"]["profile"]
    return decisions


def history(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return cli("history", "--store", "q.db", *args, cwd=tmp_path)


class TestHistory:
    """`idrules history --store S (--user-id X | --email E | --profile P) [--json]`."""

    def test_json_lists_every_decision_in_order(self, history_store, tmp_path: Path) -> None:
        """u_1: its own decisions and those of the anonymous profile merged into it, in order,
        each with the replay's reasons, citations, line and hash."""
        proc = history(tmp_path, "--user-id", "u_1", "--json")
        assert proc.returncode == 0, proc.stderr
        records = [json.loads(line) for line in proc.stdout.splitlines()]
        assert [r["event_id"] for r in records] == ["q1", "q2", "q3", "q4", "q7"]
        for record in records:
            replayed = history_store[record["event_id"]]
            assert record == {
                "event_id": replayed["event_id"],
                "line": replayed["line"],
                "outcome": replayed["outcome"],
                "profile": replayed["profile"],
                "merged": replayed["merged"],
                "reasons": replayed["reasons"],
                "hash": replayed["hash"],
            }
        codes = [reason["code"] for r in records for reason in r["reasons"]]
        assert "anonymous.merged" in codes and "anonymous.created" in codes
        assert all(
            reason["rule"].startswith("quackback.yaml:") for r in records for reason in r["reasons"]
        )

    def test_text_names_the_merged_profiles_and_rules(self, history_store, tmp_path) -> None:
        """Text form: the profile and what was merged into it, then one line per decision with
        its reasons and rule citations."""
        target, anonymous = history_store["q1"]["profile"], history_store["q2"]["profile"]
        proc = history(tmp_path, "--user-id", "u_1")
        assert proc.returncode == 0, proc.stderr
        lines = proc.stdout.splitlines()
        assert lines[0] == f"profile {target} (merged into it: {anonymous})"
        assert [line.split()[2] for line in lines[1:]] == ["q1", "q2", "q3", "q4", "q7"]
        merge = lines[4]
        assert f"merged {anonymous}" in merge
        for reason in history_store["q4"]["reasons"]:
            assert f"{reason['code']}" in merge and f"[{reason['rule']}]" in merge
        assert proc.stderr == ""

    def test_by_profile_is_the_same(self, history_store, tmp_path: Path) -> None:
        """--profile P gives the same answer as the user id that P holds."""
        target = history_store["q1"]["profile"]
        assert (
            history(tmp_path, "--profile", target, "--json").stdout
            == history(tmp_path, "--user-id", "u_1", "--json").stdout
        )

    @pytest.mark.parametrize("email", ["bob@example.com", "BOB@EXAMPLE.COM", "Bob@Example.Com"])
    def test_email_lookup_ignores_case(self, history_store, tmp_path: Path, email) -> None:
        """--email finds the profile whatever the case; a promoted profile's own history."""
        proc = history(tmp_path, "--email", email, "--json")
        assert proc.returncode == 0, proc.stderr
        records = [json.loads(line) for line in proc.stdout.splitlines()]
        assert [r["event_id"] for r in records] == ["q5", "q6"]
        assert {r["profile"] for r in records} == {history_store["q6"]["profile"]}
        codes = [reason["code"] for r in records for reason in r["reasons"]]
        assert codes == ["anonymous.created", "anonymous.promoted"]

    def test_ambiguous_email(self, history_store, tmp_path: Path) -> None:
        """Two profiles hold the email: one-line error naming them and suggesting --profile."""
        line = assert_one_line_error(history(tmp_path, "--email", "Ada@Example.com"), "--profile")
        assert history_store["q1"]["profile"] in line
        assert history_store["q8"]["profile"] in line

    @pytest.mark.parametrize(
        "args",
        [["--user-id", "nobody"], ["--email", "nobody@example.com"], ["--profile", "p_0"]],
    )
    def test_unknown(self, history_store, tmp_path: Path, args: list[str]) -> None:
        """Nothing holds that user id, email or profile id: one-line error, exit 1."""
        assert_one_line_error(history(tmp_path, *args), args[1])

    def test_missing_store_is_not_created(self, tmp_path: Path) -> None:
        """A store that does not exist: one-line error, exit 1, and no file made."""
        proc = cli("history", "--store", "nope.db", "--user-id", "u_1", cwd=tmp_path)
        assert_one_line_error(proc, "nope.db")
        assert sorted(p.name for p in tmp_path.iterdir()) == []

    @pytest.mark.parametrize(
        "args",
        [
            [],
            ["--user-id", "u_1", "--email", "ada@example.com"],
            ["--user-id", "u_1", "--profile", "p_0"],
            ["--email", "ada@example.com", "--profile", "p_0", "--user-id", "u_1"],
        ],
    )
    def test_needs_exactly_one_selector(self, history_store, tmp_path, args) -> None:
        """None, two or three of --user-id/--email/--profile: a usage error, exit 2."""
        proc = history(tmp_path, *args)
        assert proc.returncode == 2, proc.stderr
        assert proc.stdout == ""
        assert "exactly one of" in proc.stderr
        assert "Traceback" not in proc.stderr
