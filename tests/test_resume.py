"""Crash-safe resumable replay (docs/stores.md): a `replay --store` killed at any moment (SIGKILL,
no chance to clean up) and run again with the same arguments ends with the same decisions
file and the same store as a run that was never interrupted; nothing lost, nothing twice.

Every replay here is the real command line (``python -m idrules``) in a subprocess."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cli_support import assert_one_line_error, clean_env, cli, command

BIG_LOG_LINES = 2400
SMALL_LOG_LINES = 400
KILL_POINTS = 52
WORKERS = 2
OVERRIDE = "extends: helpshift\nanonymous: {on_identify: clear}\n"


# helpers -------------------------------------------------------------------------------------
def make_log(lines: int, seed: int) -> bytes:
    """A deterministic Helpshift log: identifies (ids, emails, names, bad values), tracks,
    logouts, malformed lines, duplicate ids, blank lines and long gaps (TTL expiry)."""
    rnd = random.Random(seed)
    users = [f"u_{n}" for n in range(80)] + ["U_1", " padded ", "mail@example.com", "x" * 800]
    emails = [f"user{n}@example.com" for n in range(60)]
    emails += ["User3@Example.COM", "not-an-email", " user4@example.com", "zoë@exämple.org"]
    names = ["Ada", "Bob", "Zoë", "  Cy  ", "n" * 300]
    sessions = [f"browser-{n}" for n in range(50)]
    bad = [
        "not json at all",
        "[1, 2, 3]",
        '{"id": 5, "ts": "2026-03-01T12:00:00Z", "type": "track"}',
        '{"id": "bad-ts", "ts": "yesterday", "type": "identify", "payload": {}}',
        '{"id": "no-session", "ts": "2026-03-01T12:00:00Z", "type": "logout"}',
    ]
    clock = datetime(2026, 3, 1, 12, tzinfo=UTC)
    out: list[str] = []
    ids: list[str] = []
    for n in range(lines):
        clock += timedelta(minutes=rnd.choice([1, 2, 5, 30, 60 * 24 * 8]))
        ts = clock.strftime("%Y-%m-%dT%H:%M:%SZ")
        roll = rnd.random()
        if n > 0 and roll < 0.02:
            out.append("")
            continue
        if n > 0 and roll < 0.05:
            out.append(rnd.choice(bad))
            continue
        event_id = rnd.choice(ids) if roll < 0.08 and ids else f"e{n}"
        session = rnd.choice(sessions)
        event: dict[str, object]
        if roll < 0.5:
            payload: dict[str, str] = {}
            if rnd.random() < 0.8:
                payload["userId"] = rnd.choice(users)
            if rnd.random() < 0.6 or not payload:
                payload["userEmail"] = rnd.choice(emails)
            if rnd.random() < 0.4:
                payload["userName"] = rnd.choice(names)
            event = {"id": event_id, "ts": ts, "type": "identify", "session": session}
            event["payload"] = payload
        elif roll < 0.9:
            name = rnd.choice(["vote", "post", "message"])
            event = {"id": event_id, "ts": ts, "type": "track", "session": session}
            event["payload"] = {"name": name, "properties": {"n": n}}
        else:
            event = {"id": event_id, "ts": ts, "type": "logout", "session": session}
        ids.append(event_id)
        out.append(json.dumps(event, ensure_ascii=False))
    return ("\n".join(out) + "\n").encode()


def replay_args(log: Path, *extra: str, out: bool = True, rules: str = "helpshift") -> list[str]:
    """The replay command every run of one scenario repeats (paths relative to its folder)."""
    args = ["replay", str(log), "--rules", rules, "--store", "s.db"]
    if out:
        args += ["--out", "d.jsonl"]
    return [*args, *extra]


def export(folder: Path, store: str = "s.db") -> str:
    proc = cli("export", "--store", store, cwd=folder)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def read(path: Path) -> str:
    return path.read_text(errors="replace").strip()


def complete_lines(data: bytes) -> list[bytes]:
    """The newline-terminated lines of ``data`` (a torn last line dropped)."""
    return data.split(b"\n")[:-1]


def stored_decisions(db: Path) -> list[tuple[int, int, str, str]]:
    """The decisions table: (run, line, event id, hash) in the order applied."""
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute(
            "SELECT run, line, event_id, hash FROM decisions ORDER BY seq"
        ).fetchall()
    finally:
        conn.close()
    return [tuple(row) for row in rows]


@dataclass(frozen=True)
class Reference:
    """An uninterrupted replay: its log, decisions, export and how long it took."""

    log: Path
    decisions: bytes
    export: str
    wall: float

    @property
    def lines(self) -> list[bytes]:
        return complete_lines(self.decisions)

    @property
    def parsed(self) -> list[dict]:
        return [json.loads(line) for line in self.lines]


def reference_run(folder: Path, log: Path, *, rules: str = "helpshift") -> Reference:
    """Replay ``log`` uninterrupted into ``folder`` (store and --out): the expected bytes."""
    folder.mkdir(parents=True, exist_ok=True)
    proc = cli(*replay_args(log, rules=rules), cwd=folder)
    assert proc.returncode == 0, proc.stderr
    return Reference(log, (folder / "d.jsonl").read_bytes(), export(folder), 0.0)


# the kill points -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Reference:
    """The big log, replayed uninterrupted twice at once (to --out, and to stdout), timed."""
    root = tmp_path_factory.mktemp("resume-reference")
    log = root / "events.jsonl"
    log.write_bytes(make_log(BIG_LOG_LINES, seed=20260301))
    to_file, to_stdout = root / "file", root / "stdout"
    to_file.mkdir()
    to_stdout.mkdir()
    started = time.perf_counter()
    with open(to_stdout / "stdout", "wb") as sink:
        procs = [
            subprocess.Popen(
                command(*replay_args(log)),
                cwd=to_file,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env=clean_env(),
            ),
            subprocess.Popen(
                command(*replay_args(log, out=False)),
                cwd=to_stdout,
                stdout=sink,
                stderr=subprocess.DEVNULL,
                env=clean_env(),
            ),
        ]
        ended: dict[int, float] = {}
        deadline = started + 120
        while len(ended) < len(procs) and time.perf_counter() < deadline:
            for n, proc in enumerate(procs):
                if n not in ended and proc.poll() is not None:
                    ended[n] = time.perf_counter() - started
            time.sleep(0.005)
        codes = [proc.wait(timeout=1) for proc in procs]
    assert codes == [0, 0]
    wall = min(ended.values())
    decisions = (to_file / "d.jsonl").read_bytes()
    assert (to_stdout / "stdout").read_bytes() == decisions
    exported = export(to_file)
    assert export(to_stdout) == exported
    return Reference(log, decisions, exported, wall)


@dataclass(frozen=True)
class KillPoint:
    """One interrupted replay: when to kill it, whether to kill the rerun too, and how it
    runs (``--commit-every``, decisions to --out or to stdout)."""

    index: int
    delay: float
    second_delay: float | None
    commit_every: int
    stdout: bool

    @property
    def extra(self) -> list[str]:
        return ["-q"] + (["--commit-every", "7"] if self.commit_every != 1 else [])


def kill_plan(wall: float, count: int = KILL_POINTS, seed: int = 7) -> list[KillPoint]:
    """Seeded kill delays spread over the whole run (one per slice of 0 .. its wall time:
    start-up, deciding, the very end), in a shuffled order."""
    rnd = random.Random(seed)
    span = wall
    points = []
    for k in range(count):
        delay = (k + rnd.random()) * span / count
        stdout = k % 5 == 4
        second = rnd.uniform(0.0, span) if not stdout and k % 4 == 3 else None
        points.append(KillPoint(k, delay, second, 7 if k % 3 == 1 else 1, stdout))
    rnd.shuffle(points)
    return points


def start_and_kill(args: list[str], folder: Path, delay: float, stdout_to: Path | None) -> int:
    """Start a replay, SIGKILL it after ``delay`` seconds; its exit status (-9 when killed,
    0 when it finished first)."""
    errors = folder / "stderr.txt"
    with open(stdout_to or os.devnull, "wb") as sink, open(errors, "wb") as err:
        proc = subprocess.Popen(
            command(*args), cwd=folder, stdout=sink, stderr=err, env=clean_env()
        )
        try:
            code = proc.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            code = proc.wait(timeout=60)
    return code


def run_kill_point(ref: Reference, point: KillPoint, folder: Path) -> tuple[int, list[str]]:
    """Kill, (maybe kill again), resume to the end, compare with the reference. Returns how
    many decisions were on disk after the first kill, and every problem found."""
    folder.mkdir()
    args = replay_args(ref.log, *point.extra, out=not point.stdout)
    name = f"kill point {point.index} ({point.delay:.3f}s, {point.extra}, stdout={point.stdout})"
    problems: list[str] = []
    total = len(ref.lines)
    first_out = folder / "first.out" if point.stdout else None
    code = start_and_kill(args, folder, point.delay, first_out)
    if code not in (0, -signal.SIGKILL):
        problems.append(f"{name}: the first run exited {code}: {read(folder / 'stderr.txt')}")
    if point.stdout:
        assert first_out is not None
        on_disk = complete_lines(first_out.read_bytes())
    else:
        written = folder / "d.jsonl"
        on_disk = complete_lines(written.read_bytes()) if written.exists() else []
    if on_disk != ref.lines[: len(on_disk)]:
        problems.append(f"{name}: the killed run wrote lines that are not the reference's")
    if point.second_delay is not None:
        code = start_and_kill(args, folder, point.second_delay, None)
        if code not in (0, -signal.SIGKILL):
            problems.append(
                f"{name}: the second run (killed after {point.second_delay:.3f}s) exited "
                f"{code}: {read(folder / 'stderr.txt')}"
            )
    final = cli(*args, cwd=folder)
    if final.returncode != 0:
        return len(on_disk), [f"{name}: the resumed run failed: {final.stderr.strip()}"]
    if point.stdout:
        printed = complete_lines(final.stdout.encode())
        already = total - len(printed)
        if printed != ref.lines[already:]:
            problems.append(f"{name}: the resumed run's stdout is not the reference's tail")
        if len(on_disk) < already:
            problems.append(f"{name}: the store holds {already} decisions never printed")
    else:
        if (folder / "d.jsonl").read_bytes() != ref.decisions:
            problems.append(f"{name}: the decisions file differs from the reference")
        verified = cli("verify-log", "d.jsonl", cwd=folder)
        if verified.returncode != 0 or not verified.stdout.startswith(f"ok: {total} decisions"):
            problems.append(f"{name}: verify-log failed: {verified.stderr.strip()}")
    if export(folder) != ref.export:
        problems.append(f"{name}: the export differs from the reference")
    expected = [(1, d["line"], d["event_id"], d["hash"]) for d in ref.parsed]
    if stored_decisions(folder / "s.db") != expected:
        problems.append(f"{name}: the store's decisions are lost, doubled or out of order")
    return len(on_disk), problems


class TestKillAndResume:
    """SIGKILL at random moments, then the same command again: the same bytes in the end."""

    def test_reference_exercises_every_outcome(self, big: Reference) -> None:
        """The generated log is decided with every outcome, blank lines skipped, one per line."""
        outcomes = Counter(d["outcome"] for d in big.parsed)
        assert set(outcomes) == {
            "identified",
            "anonymous",
            "rejected",
            "logged_out",
            "recorded",
            "duplicate",
        }
        numbers = [d["line"] for d in big.parsed]
        assert numbers == sorted(set(numbers))
        blank = [n for n, raw in enumerate(big.log.read_bytes().split(b"\n"), 1) if not raw]
        assert len(numbers) + len(blank) - 1 == BIG_LOG_LINES  # the final newline's empty piece
        assert not set(blank[:-1]) & set(numbers)
        assert big.export.count("\n") > 100

    def test_killed_anywhere_resumes_to_the_same_bytes(
        self, big: Reference, tmp_path: Path
    ) -> None:
        """At least 50 kill points (grouped commits, stdout, double kills): same bytes after."""
        plan = kill_plan(big.wall)
        assert len(plan) >= 50
        with ThreadPoolExecutor(max_workers=WORKERS) as pool:
            futures = [
                pool.submit(run_kill_point, big, point, tmp_path / f"k{point.index:02d}")
                for point in plan
            ]
            results = [future.result() for future in futures]
        problems = [problem for _, found in results for problem in found]
        assert not problems, "\n".join(problems[:10])
        on_disk = [count for count, _ in results]
        total = len(big.lines)
        # the kills did land everywhere: before the first decision, in the middle, at the end
        assert sum(1 for count in on_disk if count == 0) >= 1, on_disk
        assert sum(1 for count in on_disk if 0 < count < total) >= 10, on_disk
        assert sum(1 for count in on_disk if count >= total * 0.75) >= 1, on_disk
        assert any(point.commit_every == 7 for point in plan)
        assert any(point.stdout for point in plan)
        assert any(point.second_delay is not None for point in plan)


# resume in general ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Reference:
    """A smaller log and its uninterrupted replay."""
    root = tmp_path_factory.mktemp("resume-small")
    log = root / "events.jsonl"
    log.write_bytes(make_log(SMALL_LOG_LINES, seed=99))
    return reference_run(root / "reference", log)


def partial_log(ref: Reference, folder: Path, lines: int) -> Path:
    """The first ``lines`` lines of the reference's log, as a log of its own in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "events.jsonl"
    log.write_bytes(b"".join(ref.log.read_bytes().splitlines(keepends=True)[:lines]))
    return log


class TestResumeCompleted:
    """Replaying again a replay that finished changes nothing and says so."""

    @pytest.mark.parametrize("commit_every", ["1", "7"])
    def test_rerun_changes_nothing(self, small: Reference, tmp_path: Path, commit_every) -> None:
        """Same decisions bytes, same export, no decision printed; the summary says resumed."""
        args = replay_args(small.log, "--commit-every", commit_every)
        first = cli(*args, cwd=tmp_path)
        assert first.returncode == 0, first.stderr
        assert (tmp_path / "d.jsonl").read_bytes() == small.decisions
        again = cli(*args, cwd=tmp_path)
        assert again.returncode == 0, again.stderr
        assert again.stdout == ""
        assert again.stderr.startswith("idrules: 0 events")
        assert f"resumed after {len(small.lines)} already decided" in again.stderr
        assert (tmp_path / "d.jsonl").read_bytes() == small.decisions
        assert export(tmp_path) == small.export
        assert len(stored_decisions(tmp_path / "s.db")) == len(small.lines)

    def test_rerun_to_stdout_prints_nothing(self, small: Reference, tmp_path: Path) -> None:
        """Decisions to stdout: the first run prints them all, the rerun prints none."""
        args = replay_args(small.log, out=False)
        first = cli(*args, cwd=tmp_path)
        assert first.stdout.encode() == small.decisions
        again = cli(*args, cwd=tmp_path)
        assert again.returncode == 0, again.stderr
        assert again.stdout == ""
        assert "resumed after" in again.stderr
        assert export(tmp_path) == small.export


class TestGrowingLog:
    """A log that grew since the last replay: the replay continues where it stopped."""

    @pytest.mark.parametrize("cut", [1, 57, 200, 399])
    def test_appended_lines_continue(self, small: Reference, tmp_path: Path, cut: int) -> None:
        """Replay a prefix, append the rest to the log, replay again: the uninterrupted bytes."""
        log = partial_log(small, tmp_path, cut)
        first = cli(*replay_args(log), cwd=tmp_path)
        assert first.returncode == 0, first.stderr
        done = len(complete_lines((tmp_path / "d.jsonl").read_bytes()))
        assert 0 < done < len(small.lines)
        log.write_bytes(small.log.read_bytes())
        second = cli(*replay_args(log), cwd=tmp_path)
        assert second.returncode == 0, second.stderr
        assert f"resumed after {done} already decided" in second.stderr
        assert second.stderr.startswith(f"idrules: {len(small.lines) - done} events")
        assert (tmp_path / "d.jsonl").read_bytes() == small.decisions
        assert export(tmp_path) == small.export
        assert cli("verify-log", "d.jsonl", cwd=tmp_path).returncode == 0

    def test_appended_to_stdout_prints_only_the_new(self, small: Reference, tmp_path) -> None:
        """Decisions to stdout: the second run prints exactly the reference's tail."""
        log = partial_log(small, tmp_path, 150)
        first = cli(*replay_args(log, out=False), cwd=tmp_path)
        done = len(complete_lines(first.stdout.encode()))
        log.write_bytes(small.log.read_bytes())
        second = cli(*replay_args(log, out=False), cwd=tmp_path)
        assert second.returncode == 0, second.stderr
        assert complete_lines(second.stdout.encode()) == small.lines[done:]
        assert export(tmp_path) == small.export

    def test_changed_log_is_refused(self, small: Reference, tmp_path: Path) -> None:
        """The line where the last replay stopped now holds another event: one-line error."""
        log = partial_log(small, tmp_path, 100)
        assert cli(*replay_args(log), cwd=tmp_path).returncode == 0
        last = json.loads(complete_lines((tmp_path / "d.jsonl").read_bytes())[-1])
        lines = small.log.read_bytes().splitlines(keepends=True)
        event = json.loads(lines[last["line"] - 1])
        event["id"] = "someone-else"
        lines[last["line"] - 1] = (json.dumps(event) + "\n").encode()
        log.write_bytes(b"".join(lines))
        before = (tmp_path / "d.jsonl").read_bytes()
        proc = cli(*replay_args(log), cwd=tmp_path)
        assert_one_line_error(proc, f"line {last['line']}", "changed")
        assert (tmp_path / "d.jsonl").read_bytes() == before


class TestDecisionsFileCutBack:
    """--out is cut back to what the store holds: a torn line goes, a short file is refused."""

    def test_torn_last_line_is_cut_off(self, small: Reference, tmp_path: Path) -> None:
        """Half a line written at the end of a finished run's file is cut off on resume."""
        assert cli(*replay_args(small.log), cwd=tmp_path).returncode == 0
        half = small.lines[-1][: len(small.lines[-1]) // 2]
        with open(tmp_path / "d.jsonl", "ab") as handle:
            handle.write(half)
        proc = cli(*replay_args(small.log), cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        assert (tmp_path / "d.jsonl").read_bytes() == small.decisions

    def test_torn_line_then_more_events(self, small: Reference, tmp_path: Path) -> None:
        """A torn line after a partial replay is replaced by the right decisions."""
        log = partial_log(small, tmp_path, 120)
        assert cli(*replay_args(log), cwd=tmp_path).returncode == 0
        done = len(complete_lines((tmp_path / "d.jsonl").read_bytes()))
        torn = small.lines[done][:40]  # the start of the next decision, never finished
        with open(tmp_path / "d.jsonl", "ab") as handle:
            handle.write(torn)
        log.write_bytes(small.log.read_bytes())
        proc = cli(*replay_args(log), cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        assert (tmp_path / "d.jsonl").read_bytes() == small.decisions
        assert export(tmp_path) == small.export

    def test_extra_complete_lines_are_cut_back(self, small: Reference, tmp_path: Path) -> None:
        """Whole lines beyond what the store committed (as grouped commits leave) are cut."""
        log = partial_log(small, tmp_path, 120)
        assert cli(*replay_args(log), cwd=tmp_path).returncode == 0
        done = len(complete_lines((tmp_path / "d.jsonl").read_bytes()))
        with open(tmp_path / "d.jsonl", "ab") as handle:
            handle.write(b"\n".join(small.lines[done : done + 3]) + b"\n")
            handle.write(b'{"event_id":"forged"}\n')
        log.write_bytes(small.log.read_bytes())
        assert cli(*replay_args(log), cwd=tmp_path).returncode == 0
        assert (tmp_path / "d.jsonl").read_bytes() == small.decisions

    def test_shorter_file_is_refused(self, small: Reference, tmp_path: Path) -> None:
        """Fewer lines than the store's run holds: one-line error, exit 1, nothing changed."""
        assert cli(*replay_args(small.log), cwd=tmp_path).returncode == 0
        short = b"".join(line + b"\n" for line in small.lines[:-5])
        (tmp_path / "d.jsonl").write_bytes(short)
        proc = cli(*replay_args(small.log), cwd=tmp_path)
        count = len(small.lines)
        assert_one_line_error(proc, "d.jsonl", f"{count - 5} of the {count}")
        assert (tmp_path / "d.jsonl").read_bytes() == short
        assert export(tmp_path) == small.export

    def test_missing_file_is_refused(self, small: Reference, tmp_path: Path) -> None:
        """The decisions file deleted while the store holds the run: one-line error, exit 1."""
        assert cli(*replay_args(small.log), cwd=tmp_path).returncode == 0
        (tmp_path / "d.jsonl").unlink()
        proc = cli(*replay_args(small.log), cwd=tmp_path)
        assert_one_line_error(proc, "d.jsonl", "missing")
        assert not (tmp_path / "d.jsonl").exists()


class TestNewRun:
    """A run is one log under one ruleset: another log or another ruleset starts afresh."""

    def test_different_log_starts_a_new_run(self, small: Reference, tmp_path: Path) -> None:
        """Another first line: decided from its line 1, chained from the ruleset, same store."""
        assert cli(*replay_args(small.log), cwd=tmp_path).returncode == 0
        other = tmp_path / "other.jsonl"
        reused = small.parsed[0]["event_id"]
        other.write_text(
            json.dumps(
                {
                    "id": "other-1",
                    "ts": "2027-01-01T00:00:00Z",
                    "type": "identify",
                    "session": "browser-new",
                    "payload": {"userId": "u_new", "userEmail": "new@example.com"},
                }
            )
            + "\n"
            + json.dumps(
                {
                    "id": reused,
                    "ts": "2027-01-01T00:01:00Z",
                    "type": "track",
                    "session": "browser-new",
                    "payload": {"name": "vote"},
                }
            )
            + "\n"
        )
        proc = cli("replay", other, "--rules", "helpshift", "--store", "s.db", cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        assert "resumed" not in proc.stderr
        got = [json.loads(line) for line in proc.stdout.splitlines()]
        assert [(d["line"], d["event_id"], d["outcome"]) for d in got] == [
            (1, "other-1", "identified"),
            (2, reused, "duplicate"),  # the store keeps every decided id, whatever the run
        ]
        assert got[0]["prev"] == got[0]["ruleset"]["sha256"]
        (tmp_path / "other-d.jsonl").write_text(proc.stdout)
        assert cli("verify-log", "other-d.jsonl", cwd=tmp_path).returncode == 0
        runs = {row[0] for row in stored_decisions(tmp_path / "s.db")}
        assert runs == {1, 2}
        assert '"user_id":"u_new"' in export(tmp_path)
        # the first run is still there: replaying its log again resumes it
        again = cli(*replay_args(small.log), cwd=tmp_path)
        assert again.returncode == 0, again.stderr
        assert f"resumed after {len(small.lines)} already decided" in again.stderr
        assert (tmp_path / "d.jsonl").read_bytes() == small.decisions

    def test_different_ruleset_starts_a_new_run(self, small: Reference, tmp_path: Path) -> None:
        """The same log under another ruleset: a new run of duplicates, chained from its sha."""
        assert cli(*replay_args(small.log), cwd=tmp_path).returncode == 0
        (tmp_path / "override.yaml").write_text(OVERRIDE)
        args = ["replay", small.log, "--rules", "override.yaml", "--store", "s.db"]
        proc = cli(*args, "--out", "d2.jsonl", cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        assert "resumed" not in proc.stderr
        got = [json.loads(line) for line in (tmp_path / "d2.jsonl").read_bytes().splitlines()]
        assert [d["line"] for d in got] == [d["line"] for d in small.parsed]
        assert {d["outcome"] for d in got} <= {"duplicate", "rejected"}
        sha = got[0]["ruleset"]["sha256"]
        assert sha != small.parsed[0]["ruleset"]["sha256"]
        assert got[0]["prev"] == sha
        assert cli("verify-log", "d2.jsonl", cwd=tmp_path).returncode == 0
        assert export(tmp_path) == small.export  # duplicates and invalid lines change nothing
        assert (tmp_path / "d.jsonl").read_bytes() == small.decisions
        # that run resumes on its own too
        again = cli(*args, "--out", "d2.jsonl", cwd=tmp_path)
        assert f"resumed after {len(got)} already decided" in again.stderr
        runs = Counter(row[0] for row in stored_decisions(tmp_path / "s.db"))
        assert runs == {1: len(small.lines), 2: len(got)}


# one replay at a time, closed output, Ctrl-C -----------------------------------------------
def wait_for(condition, timeout: float = 60.0) -> None:
    """Poll ``condition`` until it holds (fails the test after ``timeout`` seconds)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.01)


def lines_in(path: Path) -> int:
    return len(complete_lines(path.read_bytes())) if path.exists() else 0


class Feeder:
    """A replay reading the log from a pipe this test controls: it decides what it was given,
    then waits for more, holding its claim on the run (and, with --commit-every, its open
    commit group), for as long as the test likes."""

    def __init__(self, ref: Reference, folder: Path, *extra: str) -> None:
        self.raw = ref.log.read_bytes().splitlines(keepends=True)
        self.args = ["replay", "-", *replay_args(ref.log, *extra)[2:]]
        self.proc = subprocess.Popen(
            command(*self.args),
            cwd=folder,
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=clean_env(),
        )
        self.given = 0

    def give(self, count: int) -> None:
        """Send the next ``count`` lines of the log."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"".join(self.raw[self.given : self.given + count]))
        self.proc.stdin.flush()
        self.given += count

    def finish(self) -> tuple[int, str]:
        """Send the rest, close the pipe, and wait: exit status and stderr."""
        self.give(len(self.raw) - self.given)
        assert self.proc.stdin is not None and self.proc.stderr is not None
        self.proc.stdin.close()
        err = self.proc.stderr.read().decode()
        return self.proc.wait(timeout=60), err

    def decided(self, ref: Reference) -> int:
        """How many decisions the lines given so far make (blank lines make none)."""
        return sum(1 for d in ref.parsed if d["line"] <= self.given)


def assert_as_reference(ref: Reference, folder: Path) -> None:
    """The folder's decisions file, verify-log, store and export are the uninterrupted run's."""
    assert (folder / "d.jsonl").read_bytes() == ref.decisions
    verified = cli("verify-log", "d.jsonl", cwd=folder)
    assert verified.stdout.startswith(f"ok: {len(ref.lines)} decisions"), verified.stderr
    assert export(folder) == ref.export
    expected = [(1, d["line"], d["event_id"], d["hash"]) for d in ref.parsed]
    assert stored_decisions(folder / "s.db") == expected


class TestOneReplayPerRun:
    """Two replays of one run into one store never run at once (an overrunning cron job): the
    second is refused at once with one line, before it touches --out; the first ends intact."""

    @pytest.mark.parametrize("commit_every", ["1", "7"])
    def test_second_refused_first_intact(
        self, small: Reference, tmp_path: Path, commit_every: str
    ) -> None:
        """The second replay exits 1 naming the store and the first's pid; the first's
        decisions file is not cut back, and it ends with every decision exactly once."""
        first = Feeder(small, tmp_path, "--commit-every", commit_every)
        first.give(210)
        if commit_every == "1":  # every decision given so far is on disk
            wait_for(lambda: lines_in(tmp_path / "d.jsonl") == first.decided(small))
        else:  # decided up to the open commit group, which waits for more lines
            wait_for(lambda: lines_in(tmp_path / "d.jsonl") >= first.decided(small) - 7)
        before = (tmp_path / "d.jsonl").read_bytes()
        second = cli(*replay_args(small.log, "--commit-every", commit_every), cwd=tmp_path)
        assert_one_line_error(
            second, "another replay of this log is running into s.db", f"(pid {first.proc.pid})"
        )
        assert (tmp_path / "d.jsonl").read_bytes()[: len(before)] == before
        code, err = first.finish()
        assert code == 0, err
        ids = [d["event_id"] for d in map(json.loads, complete_lines(small.decisions))]
        assert len(stored_decisions(tmp_path / "s.db")) == len(ids)
        assert_as_reference(small, tmp_path)

    def test_after_the_first_ends_the_run_is_free(self, small: Reference, tmp_path: Path) -> None:
        """Once the first replay has ended, the same command runs (and decides nothing)."""
        first = Feeder(small, tmp_path)
        first.give(50)
        code, err = first.finish()
        assert code == 0, err
        again = cli(*replay_args(small.log), cwd=tmp_path)
        assert again.returncode == 0, again.stderr
        assert again.stderr.startswith("idrules: 0 events")
        assert_as_reference(small, tmp_path)

    def test_a_killed_holder_frees_the_run(self, small: Reference, tmp_path: Path) -> None:
        """The lock dies with its process: after a SIGKILL the same command resumes."""
        first = Feeder(small, tmp_path)
        first.give(120)
        wait_for(lambda: lines_in(tmp_path / "d.jsonl") == first.decided(small))
        first.proc.kill()
        first.proc.wait(timeout=60)
        again = cli(*replay_args(small.log), cwd=tmp_path)
        assert again.returncode == 0, again.stderr
        assert_as_reference(small, tmp_path)

    def test_other_logs_run_side_by_side(self, small: Reference, tmp_path: Path) -> None:
        """A replay of another log into the same store is another run: not refused."""
        first = Feeder(small, tmp_path)
        first.give(100)
        wait_for(lambda: lines_in(tmp_path / "d.jsonl") == first.decided(small))
        other = tmp_path / "other.jsonl"
        other.write_text(
            '{"id": "o1", "ts": "2026-03-01T12:00:00Z", "type": "logout", "session": "z"}\n'
        )
        proc = cli("replay", other, "--rules", "helpshift", "--store", "s.db", "--out",
                   "o.jsonl", cwd=tmp_path)  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        code, err = first.finish()
        assert code == 0, err
        assert (tmp_path / "d.jsonl").read_bytes() == small.decisions


class TestClosedOutputResumes:
    """`replay --store ... | head`: exit 1 with one line, and the store holds only decisions
    whose lines went out, so the same command resumes to the uninterrupted bytes."""

    @pytest.mark.parametrize("commit_every", ["1", "7"])
    def test_head_then_resume(self, small: Reference, tmp_path: Path, commit_every: str) -> None:
        """Read three decisions, close the pipe; then resume: stdout is the reference's tail
        after what the store holds, and the store and the export are the reference's."""
        args = replay_args(small.log, "--commit-every", commit_every, out=False)
        proc = subprocess.Popen(
            command(*args),
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=clean_env(),
        )
        assert proc.stdout is not None and proc.stderr is not None
        got = [proc.stdout.readline() for _ in range(3)]
        assert all(line.endswith(b"\n") for line in got)
        assert [line[:-1] for line in got] == small.lines[:3]
        proc.stdout.close()
        err = proc.stderr.read().decode()
        assert proc.wait(timeout=60) == 1, err
        (line,) = err.splitlines()
        assert line.startswith("idrules: error: ") and "broken pipe" in line
        held = stored_decisions(tmp_path / "s.db")  # at most what went out: a line may
        assert len(held) < len(small.lines)  # go out while its commit group is still open
        expected = [(1, d["line"], d["event_id"], d["hash"]) for d in small.parsed]
        assert held == expected[: len(held)]
        again = cli(*args, cwd=tmp_path)
        assert again.returncode == 0, again.stderr
        assert complete_lines(again.stdout.encode()) == small.lines[len(held) :]
        assert export(tmp_path) == small.export
        assert stored_decisions(tmp_path / "s.db") == expected


class TestInterrupt:
    """Ctrl-C (SIGINT) at any moment of a replay: one line, `idrules: interrupted`, exit 130,
    never a traceback; the same command then resumes to the uninterrupted bytes."""

    @pytest.mark.parametrize(
        ("given", "commit_every"),
        [(1, "1"), (60, "1"), (250, "1"), (60, "7"), (250, "7"), (395, "7")],
    )
    def test_waiting_for_input(
        self, small: Reference, tmp_path: Path, given: int, commit_every: str
    ) -> None:
        """Interrupted while it waits for more of the log (between events, or inside an open
        commit group whose decisions are not flushed yet)."""
        feeder = Feeder(small, tmp_path, "--commit-every", commit_every)
        feeder.give(given)
        decided = feeder.decided(small)
        flushed = decided - decided % int(commit_every)  # the open group is not flushed yet
        assert flushed > 0  # on disk: start-up is over, the handlers are in place
        wait_for(lambda: lines_in(tmp_path / "d.jsonl") == flushed)
        time.sleep(0.1)  # it is blocked reading stdin now
        feeder.proc.send_signal(signal.SIGINT)
        assert_interrupted(feeder.proc)
        assert lines_in(tmp_path / "d.jsonl") >= len(stored_decisions(tmp_path / "s.db"))
        again = cli(*replay_args(small.log, "--commit-every", commit_every), cwd=tmp_path)
        assert again.returncode == 0, again.stderr
        assert_as_reference(small, tmp_path)

    @pytest.mark.parametrize("at", [1, 300, 900, 1500, 2100])
    @pytest.mark.parametrize("commit_every", ["1", "7"])
    def test_while_deciding(
        self, big: Reference, tmp_path: Path, at: int, commit_every: str
    ) -> None:
        """Interrupted in full flow, once ``at`` decisions are on disk (the moment the signal
        lands inside an event varies run to run: every such moment must be safe)."""
        args = replay_args(big.log, "-q", "--commit-every", commit_every)
        proc = subprocess.Popen(
            command(*args), cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            env=clean_env(),
        )  # fmt: skip
        wait_for(lambda: lines_in(tmp_path / "d.jsonl") >= at or proc.poll() is not None)
        proc.send_signal(signal.SIGINT)
        if proc.wait(timeout=60) != 0:  # it may have finished first
            assert_interrupted(proc)
        again = cli(*args, cwd=tmp_path)
        assert again.returncode == 0, again.stderr
        assert_as_reference(big, tmp_path)


def assert_interrupted(proc: subprocess.Popen[bytes]) -> None:
    """Exit 130, and exactly `idrules: interrupted` on stderr."""
    assert proc.stderr is not None
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 130, err
    assert err == "idrules: interrupted\n", err
