"""Stores (docs/stores.md): memory and SQLite decide alike; the SQLite file's schema, transactions,
two processes on one file, refusal of a non-SQLite file, and durability across reopenings."""

from __future__ import annotations

import json
import random
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlite_utils
from support import hmac_hex

from idrules import Engine, MemoryStore, SqliteStore, StoreError, export_rows
from idrules.store.base import Changes
from idrules.store.sqlite import SCHEMA_VERSION
from idrules.store.sqlite import groups as sqlite_groups

DATA = Path(__file__).resolve().parent / "data"
MERGE_RULES = str(DATA / "rules" / "merge.yaml")
SECRET = "store-tests-secret-0123456789abcdef0123456789"
HELPSHIFT_KEYS = {"user_id": "userId", "email": "userEmail", "name": "userName"}
CANONICAL_KEYS = {"user_id": "user_id", "email": "email", "name": "name"}
TS = "2026-03-01T12:00:00Z"


def varied_log(
    seed: int, count: int, keys: dict[str, str], *, sign: bool = False, prefix: str = "e"
) -> list[bytes]:
    """A deterministic log mixing identifies (good, bad, email-only, null), tracks (some with an
    inline email), logouts, duplicate ids, malformed lines and long gaps (TTL expiry)."""
    rnd = random.Random(seed)
    users = ["u_0", "u_1", "U_1", "u_2", "u_3", "u_4"]
    emails = ["ada@example.com", "Ada@Example.COM", "bob@example.com", "cy@example.org", "nope"]
    sessions = [f"browser-{n}" for n in range(5)]
    clock = datetime(2026, 3, 1, 12, tzinfo=UTC)
    lines: list[str] = []
    ids: list[str] = []
    for n in range(count):
        clock += timedelta(minutes=rnd.choice([1, 5, 30, 60 * 30]))
        ts = clock.strftime("%Y-%m-%dT%H:%M:%SZ")
        event_id = f"{prefix}{n}"
        session = rnd.choice(sessions)
        roll = rnd.random()
        event: dict[str, object]
        if roll < 0.40:
            canon: dict[str, str] = {}
            if rnd.random() < 0.75:
                canon["user_id"] = rnd.choice(users)
            if rnd.random() < 0.6 or not canon:
                canon["email"] = rnd.choice(emails)
            if rnd.random() < 0.4:
                canon["name"] = rnd.choice(["Ada", "Bob", "  Cy  ", "x" * 300])
            if rnd.random() < 0.1:
                canon["user_id"] = " padded "
            payload: dict[str, object] = {keys[k]: v for k, v in canon.items()}
            if rnd.random() < 0.3:
                payload["plan"] = rnd.choice(["pro", "free"])
            if sign and "user_id" in canon:
                signature = hmac_hex(canon["user_id"], SECRET)
                payload["signature"] = signature if rnd.random() < 0.85 else "0" * 64
            event = {"id": event_id, "ts": ts, "type": "identify", "session": session}
            event["payload"] = payload
        elif roll < 0.45:
            event = {"id": event_id, "ts": ts, "type": "identify", "payload": None}
            event["session"] = session
        elif roll < 0.75:
            track: dict[str, object] = {
                "name": rnd.choice(["vote", "post"]),
                "properties": {"n": n},
            }
            if rnd.random() < 0.2:
                track["email"] = rnd.choice(emails)
            event = {"id": event_id, "ts": ts, "type": "track", "session": session}
            event["payload"] = track
        elif roll < 0.85:
            event = {"id": event_id, "ts": ts, "type": "logout", "session": session}
        elif roll < 0.92 and ids:  # a second event with an id already used
            event = {"id": rnd.choice(ids), "ts": ts, "type": "logout", "session": session}
            lines.append(json.dumps(event))
            continue
        else:
            lines.append(
                rnd.choice(
                    [
                        "not json",
                        "[1, 2]",
                        "",
                        json.dumps({"id": event_id, "type": "identify"}),
                        json.dumps({"id": event_id, "ts": ts, "type": "track"}),
                        json.dumps({"id": 5, "ts": ts, "type": "logout", "session": "s"}),
                    ]
                )
            )
            continue
        ids.append(event_id)
        lines.append(json.dumps(event))
    return [line.encode() for line in lines]


def decide_all(engine: Engine, log: list[bytes]) -> list[str]:
    """Decision lines for every non-blank line, as a replay numbers them."""
    return [
        engine.decide_line(raw, number).to_json()
        for number, raw in enumerate(log, 1)
        if raw.strip()
    ]


def decided_ids(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        return {row[0] for row in conn.execute("SELECT id FROM events")}


def readable_ids(log: list[bytes]) -> set[str]:
    """Ids a replay must record: every line that is a JSON object with a string id."""
    out = set()
    for raw in log:
        try:
            obj = json.loads(raw)
        except ValueError:
            continue
        if isinstance(obj, dict) and isinstance(obj.get("id"), str) and obj["id"]:
            out.add(obj["id"])
    return out


CASES = {
    "helpshift": ("helpshift", HELPSHIFT_KEYS, False),
    "merge": (MERGE_RULES, HELPSHIFT_KEYS, False),
    "strict": ("strict", CANONICAL_KEYS, True),
}


class TestStoresAgree:
    """The memory store and the SQLite store give the same decisions and export."""

    @pytest.mark.parametrize("commit_every", [1, 7])
    @pytest.mark.parametrize("case", sorted(CASES))
    def test_same_decisions_and_export(self, case: str, commit_every: int, tmp_path: Path) -> None:
        """Replaying one varied log into each store gives identical decisions and export rows
        (SQLite with a commit per event, and in commit groups)."""
        rules, keys, sign = CASES[case]
        log = varied_log(3, 400, keys, sign=sign)
        memory = MemoryStore()
        sqlite = SqliteStore(tmp_path / "store.db", commit_every=commit_every)
        try:
            by_memory = decide_all(Engine(rules, memory, secrets={"current": SECRET}), log)
            by_sqlite = decide_all(Engine(rules, sqlite, secrets={"current": SECRET}), log)
            assert by_sqlite == by_memory
            assert list(export_rows(sqlite)) == list(export_rows(memory))
        finally:
            sqlite.close()
        outcomes = Counter(json.loads(line)["outcome"] for line in by_memory)
        assert {"identified", "rejected", "logged_out", "recorded", "duplicate"} <= set(outcomes)

    def test_log_is_varied(self, tmp_path: Path) -> None:
        """The comparison exercises merges, email ambiguity, expiry, attributes and activity."""
        log = varied_log(3, 400, HELPSHIFT_KEYS)
        memory = MemoryStore()
        lines = decide_all(Engine(MERGE_RULES, memory), log)
        codes = Counter(r["code"] for line in lines for r in json.loads(line)["reasons"])
        wanted = {
            "anonymous.merged",
            "anonymous.promoted",
            "anonymous.expired",
            "match.email_ambiguous",
            "attribute.unknown",
            "event.invalid",
            "event.duplicate",
        }
        assert wanted <= set(codes)
        states = Counter(row["state"] for row in export_rows(memory))
        assert {"active", "merged", "expired"} <= set(states)
        assert any(row["activity"] for row in export_rows(memory))


class TestSqliteSchema:
    """The SQLite file: tables created explicitly, match keys indexed, WAL on."""

    @pytest.fixture
    def path(self, tmp_path: Path) -> Path:
        path = tmp_path / "store.db"
        store = SqliteStore(path)
        engine = Engine("helpshift", store)
        engine.identify({"userId": "u1", "userEmail": "a@example.com"}, session="s", id="e1", ts=TS)
        store.close()
        return path

    def test_tables_created_explicitly(self, path: Path) -> None:
        """The tables exist as STRICT tables with declared column types."""
        db = sqlite_utils.Database(path)
        assert {"profiles", "sessions", "timeline", "events", "decisions"} <= set(db.table_names())
        for name in ("profiles", "sessions", "timeline", "events", "decisions"):
            sql = db[name].schema
            assert sql.rstrip().upper().endswith("STRICT"), sql
        columns = {c.name: c.type for c in db["profiles"].columns}
        assert columns["user_key"] == "TEXT"
        assert columns["email_key"] == "TEXT"

    @pytest.mark.parametrize("column", ["user_key", "email_key"])
    def test_match_keys_indexed(self, path: Path, column: str) -> None:
        """Each match key column has an index with the state, and a lookup of the active
        holders uses it with no sort, so it reads the first entries only."""
        db = sqlite_utils.Database(path)
        indexed = [index.columns for index in db["profiles"].indexes]
        assert [column, "state"] in indexed
        with sqlite3.connect(path) as conn:
            names = {
                row[0]
                for row in conn.execute(
                    "SELECT name FROM sqlite_master WHERE type='index' AND tbl_name='profiles'"
                )
            }
            assert any(column in name for name in names)
            plan = conn.execute(
                f"EXPLAIN QUERY PLAN SELECT id FROM profiles WHERE {column}=?", ("x",)
            ).fetchall()
            active = conn.execute(
                f"EXPLAIN QUERY PLAN SELECT id FROM profiles WHERE {column}=? "
                "AND state='active' ORDER BY seq LIMIT 2",
                ("x",),
            ).fetchall()
        assert "USING INDEX" in " ".join(str(row[-1]) for row in plan).upper()
        steps = " ".join(str(row[-1]) for row in active).upper()
        assert "USING INDEX" in steps and "TEMP B-TREE" not in steps

    def test_wal_mode(self, path: Path) -> None:
        """The file is in WAL journal mode (persistent: seen by any later connection)."""
        with sqlite3.connect(path) as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


class TestTransactions:
    """Each event is one committed transaction."""

    def test_each_event_committed(self, tmp_path: Path) -> None:
        """After each of N events a second connection already sees N decided events."""
        path = tmp_path / "store.db"
        store = SqliteStore(path)
        engine = Engine("helpshift", store)
        watcher = sqlite3.connect(path)
        try:
            log = [line for line in varied_log(5, 60, HELPSHIFT_KEYS) if line.strip()]
            seen: set[str] = set()
            for number, raw in enumerate(log, 1):
                decision = engine.decide_line(raw, number)
                if decision.outcome != "duplicate" and decision.event_id is not None:
                    seen.add(decision.event_id)
                count = watcher.execute("SELECT count(*) FROM events").fetchone()[0]
                assert count == len(seen), number
            assert len(seen) > 30
            assert watcher.execute("SELECT count(*) FROM profiles").fetchone()[0] > 0
        finally:
            watcher.close()
            store.close()

    def test_failed_event_leaves_store_as_before(self, tmp_path: Path, monkeypatch) -> None:
        """An event failing half way through its writes is rolled back entirely."""
        path = tmp_path / "store.db"
        store = SqliteStore(path)
        engine = Engine("helpshift", store)
        engine.track("vote", session="s1", id="e1", ts=TS)
        before = list(export_rows(store))
        real_apply = store.apply

        def crash(changes, record=None):  # write the profile rows, then fail before the rest
            store._conn.execute("INSERT INTO events (id) VALUES ('half-written')")
            real_apply(changes, record)
            raise RuntimeError("power cut")

        monkeypatch.setattr(store, "apply", crash)
        with pytest.raises(RuntimeError):
            engine.identify({"userId": "u1"}, session="s1", id="e2", ts=TS)
        monkeypatch.undo()
        assert list(export_rows(store)) == before
        assert decided_ids(path) == {"e1"}
        again = engine.identify({"userId": "u1"}, session="s1", id="e2", ts=TS)
        assert again.outcome == "identified" and again.created
        store.close()

    @pytest.mark.parametrize("mark_every", [256, 4])
    def test_failed_event_in_a_commit_group(
        self, tmp_path: Path, monkeypatch, mark_every: int
    ) -> None:
        """In a commit group, a failed event's writes go and the group's other events stay
        (whether the group's savepoint was taken before them or among them)."""
        monkeypatch.setattr(sqlite_groups, "MARK_EVERY", mark_every)
        log = [line for line in varied_log(9, 120, HELPSHIFT_KEYS) if line.strip()]
        # two events after the savepoint either way: they are rolled back and written again
        fail_at = next(n for n, raw in enumerate(log) if n % 4 == 2 and b'"identify"' in raw)
        assert 2 < fail_at < 50
        memory = MemoryStore()
        reference = Engine("helpshift", memory)
        expected = [
            reference.decide_line(raw, n).to_json() for n, raw in enumerate(log) if n != fail_at
        ]
        path = tmp_path / "store.db"
        store = SqliteStore(path, commit_every=50)
        engine = Engine("helpshift", store)
        real_apply = store.apply

        def crash(changes, record=None):
            store._conn.execute("INSERT INTO events (id) VALUES ('half-written')")
            real_apply(changes, record)
            raise RuntimeError("power cut")

        decided = []
        for n, raw in enumerate(log):
            if n == fail_at:
                monkeypatch.setattr(store, "apply", crash)
                with pytest.raises(RuntimeError):
                    engine.decide_line(raw, n)
                monkeypatch.setattr(store, "apply", real_apply)
                assert store.pending == fail_at % 50  # the group's other events still wait
                continue
            decided.append(engine.decide_line(raw, n).to_json())
        store.close()
        assert decided == expected
        reopened = SqliteStore(path)
        try:
            assert list(export_rows(reopened)) == list(export_rows(memory))
        finally:
            reopened.close()
        parsed = [json.loads(line) for line in expected]
        ids = {d["event_id"] for d in parsed if d["outcome"] != "duplicate" and d["event_id"]}
        assert decided_ids(path) == ids
        with sqlite3.connect(path) as conn:
            outcomes = [
                row[0] for row in conn.execute("SELECT outcome FROM decisions ORDER BY seq")
            ]
        conn.close()
        assert outcomes == [d["outcome"] for d in parsed]

    def test_failed_first_event_of_a_group_releases_the_lock(
        self, tmp_path: Path, monkeypatch
    ) -> None:
        """A group whose only event failed holds nothing: another writer gets the file at once."""
        path = tmp_path / "store.db"
        store = SqliteStore(path, commit_every=10)
        engine = Engine("helpshift", store)

        def crash(changes, record=None):
            raise RuntimeError("bug")

        monkeypatch.setattr(store, "apply", crash)
        with pytest.raises(RuntimeError):
            engine.identify({"userId": "u1"}, session="s1", id="e1", ts=TS)
        other = sqlite3.connect(path, timeout=0)
        try:
            other.execute("BEGIN IMMEDIATE")
            other.execute("ROLLBACK")
        finally:
            other.close()
            store.close()
        assert decided_ids(path) == set()

    def test_stores_taking_turns_on_one_file(self, tmp_path: Path) -> None:
        """Two stores on one file deciding alternate events decide as one store would: each
        sees the other's commits (its read cache is checked against the file per event)."""
        log = [line for line in varied_log(4, 300, HELPSHIFT_KEYS) if line.strip()]
        memory = MemoryStore()
        reference = Engine("helpshift", memory)
        expected = [reference.decide_line(raw, n).to_json() for n, raw in enumerate(log)]
        path = tmp_path / "store.db"
        stores = [SqliteStore(path), SqliteStore(path)]
        engines = [Engine("helpshift", store) for store in stores]
        try:
            # runs of 1 to 3 events each, so each store also meets its own last writes
            turns = random.Random(5)
            decided, n, turn = [], 0, 0
            while n < len(log):
                for _ in range(turns.randint(1, 3)):
                    if n < len(log):
                        decided.append(engines[turn].decide_line(log[n], n).to_json())
                        n += 1
                turn = 1 - turn
            assert decided == expected
            assert list(export_rows(stores[0])) == list(export_rows(memory))
        finally:
            for store in stores:
                store.close()

    def test_claimed_id_recorded_once_and_rolled_back_with_its_event(self, tmp_path: Path) -> None:
        """claim_event records an id as it checks it (a second claim finds it); the event's
        write does not insert it again; a transaction that fails takes the claim with it."""
        store = SqliteStore(tmp_path / "store.db")
        try:
            with store.transaction():
                assert store.claim_event("e1") is False
                assert store.claim_event("e1") is True
                store.apply(Changes("e1"))
            with pytest.raises(RuntimeError), store.transaction():
                assert store.claim_event("e2") is False
                raise RuntimeError("bug")
            assert store.is_decided("e1") and not store.is_decided("e2")
        finally:
            store.close()
        assert decided_ids(tmp_path / "store.db") == {"e1"}

    @pytest.mark.parametrize("commit_every", [1, 100])
    def test_statements_per_event(self, tmp_path: Path, commit_every: int) -> None:
        """An event costs few SQLite statements (BEGIN, the cache's check and COMMIT
        included): a guard against a change that adds one to every event."""
        log = [line for line in varied_log(6, 400, HELPSHIFT_KEYS) if line.strip()]
        store = SqliteStore(tmp_path / "store.db", commit_every=commit_every)
        engine = Engine("helpshift", store)
        count = Counter[str]()
        store._conn.set_trace_callback(lambda text: count.update([text.split()[0]]))
        try:
            for n, raw in enumerate(log):
                engine.decide_line(raw, n)
            store.commit()
        finally:
            store._conn.set_trace_callback(None)
            store.close()
        per_event = sum(count.values()) / len(log)
        assert count["PRAGMA"] == count["BEGIN"]  # data_version: once a transaction
        assert per_event <= (7.5 if commit_every == 1 else 4.5), (per_event, count)

    def test_writes_without_a_record_keep_the_activity_order(self, tmp_path: Path) -> None:
        """Changes applied directly, without a decision record, order their activity (and its
        moves) as the memory store does."""
        writes = [
            Changes("t1", activity=(("t1", "p1"),)),
            Changes("t2", activity=(("t2", "p2"), ("t2b", "p2"))),
            Changes("t3", activity=(("t3", "p1"),)),
            Changes("t4", moves=(("p2", "p1"),)),
            Changes("t5", activity=(("t5", "p1"),)),
        ]
        memory = MemoryStore()
        store = SqliteStore(tmp_path / "store.db")
        try:
            for changes in writes:
                memory.apply(changes)
                with store.transaction():
                    store.apply(changes)
            for profile in ("p1", "p2"):
                assert store.activity_of(profile) == memory.activity_of(profile)
            assert store.activity_of("p1") == ["t1", "t2", "t2b", "t3", "t5"]
            assert list(store.history(["p1", "p2"])) == []
        finally:
            store.close()


WORKER = textwrap.dedent(
    """
    import os, sys, time
    from idrules import Engine, SqliteStore

    store_path, log_path, out_path, ready, go = sys.argv[1:6]
    store = SqliteStore(store_path)
    engine = Engine("helpshift", store)
    open(ready, "w").close()
    deadline = time.time() + 30
    while not os.path.exists(go) and time.time() < deadline:
        time.sleep(0.002)
    with open(log_path, "rb") as src, open(out_path, "w") as out:
        for number, raw in enumerate(src, 1):
            if raw.strip():
                out.write(engine.decide_line(raw, number).to_json() + "\\n")
    store.close()
    """
)


def two_logs(tmp_path: Path) -> dict[str, list[bytes]]:
    """Two logs with their own events (disjoint ids, same users and sessions) and a shared
    stretch of identical events (overlapping ids), interleaved."""
    shared = varied_log(11, 250, HELPSHIFT_KEYS, prefix="c")
    logs = {}
    for name, seed in (("a", 1), ("b", 2)):
        own = varied_log(seed, 500, HELPSHIFT_KEYS, prefix=name)
        mixed: list[bytes] = []
        for n, line in enumerate(own):
            mixed.append(line)
            if n % 2 == 0 and n // 2 < len(shared):
                mixed.append(shared[n // 2])
        (tmp_path / f"{name}.jsonl").write_bytes(b"\n".join(mixed) + b"\n")
        logs[name] = mixed
    return logs


def check_consistent(tmp_path: Path, store: Path, logs: dict[str, list[bytes]]) -> None:
    """No event lost or decided twice; no user id or session in two active profiles."""
    decisions = {
        name: [json.loads(line) for line in (tmp_path / f"{name}.out").read_text().splitlines()]
        for name in logs
    }
    for name, log in logs.items():  # one decision per non-blank line, nothing lost
        assert len(decisions[name]) == sum(1 for line in log if line.strip())
    decided = Counter(
        d["event_id"]
        for ds in decisions.values()
        for d in ds
        if d["outcome"] != "duplicate" and d["event_id"] is not None
    )
    twice = [event_id for event_id, n in decided.items() if n > 1]
    assert twice == []
    expected = readable_ids(logs["a"]) | readable_ids(logs["b"])
    assert set(decided) == expected
    assert decided_ids(store) == expected
    reopened = SqliteStore(store)
    try:
        rows = list(export_rows(reopened))
    finally:
        reopened.close()
    active = [row for row in rows if row["state"] == "active"]
    users = Counter(row["user_id"] for row in active if row["user_id"] is not None)
    assert [u for u, n in users.items() if n > 1] == []
    sessions = Counter(s for row in rows for s in row["sessions"])
    assert [s for s, n in sessions.items() if n > 1] == []
    activity = Counter(e for row in rows for e in row["activity"])
    recorded = {
        d["event_id"] for ds in decisions.values() for d in ds if d["outcome"] == "recorded"
    }
    assert set(activity) == recorded
    assert max(activity.values()) == 1
    ids = {row["profile"] for row in rows}
    assert all(row["merged_into"] in ids for row in rows if row["merged_into"])


class TestTwoProcesses:
    """BEGIN IMMEDIATE lets two processes write one store file safely."""

    def test_two_engines_concurrently(self, tmp_path: Path) -> None:
        """Two processes released at once on one file lose nothing and decide nothing twice."""
        logs = two_logs(tmp_path)
        script = tmp_path / "worker.py"
        script.write_text(WORKER)
        store = tmp_path / "store.db"
        go = tmp_path / "go"
        procs = {
            name: subprocess.Popen(
                [
                    sys.executable,
                    str(script),
                    str(store),
                    str(tmp_path / f"{name}.jsonl"),
                    str(tmp_path / f"{name}.out"),
                    str(tmp_path / f"{name}.ready"),
                    str(go),
                ],
                stderr=subprocess.PIPE,
                text=True,
            )
            for name in logs
        }
        deadline = time.time() + 30
        while not all((tmp_path / f"{name}.ready").exists() for name in logs):
            assert all(p.poll() is None for p in procs.values()), "a worker died on opening"
            assert time.time() < deadline
            time.sleep(0.005)
        go.touch()
        for name, proc in procs.items():
            _, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, (name, err[-2000:])
        check_consistent(tmp_path, store, logs)

    def test_two_cli_replays_concurrently(self, tmp_path: Path) -> None:
        """Two `idrules replay --store` processes on one new file both finish consistently."""
        logs = two_logs(tmp_path)
        store = tmp_path / "store.db"
        procs = {
            name: subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "idrules",
                    "replay",
                    str(tmp_path / f"{name}.jsonl"),
                    "--rules",
                    "helpshift",
                    "--store",
                    str(store),
                    "--out",
                    str(tmp_path / f"{name}.out"),
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for name in logs
        }
        for name, proc in procs.items():
            _, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, (name, err[-2000:])
        check_consistent(tmp_path, store, logs)

    def test_concurrent_openers_of_a_new_file(self, tmp_path: Path) -> None:
        """Several processes creating one new store at once all succeed, tables STRICT."""
        code = (
            "import os, sys, time; from idrules import SqliteStore\n"
            "open(sys.argv[1] + '.ready' + sys.argv[2], 'w').close()\n"
            "while not os.path.exists(sys.argv[1] + '.go'): time.sleep(0.001)\n"
            "SqliteStore(sys.argv[1]).close()\n"
        )
        for trial in range(2):
            path = tmp_path / f"new{trial}.db"
            procs = [
                subprocess.Popen(
                    [sys.executable, "-c", code, str(path), str(n)],
                    stderr=subprocess.PIPE,
                    text=True,
                )
                for n in range(3)
            ]
            deadline = time.time() + 30
            while len(list(tmp_path.glob(f"new{trial}.db.ready*"))) < 3:
                assert all(p.poll() is None for p in procs) and time.time() < deadline
                time.sleep(0.005)
            (tmp_path / f"new{trial}.db.go").touch()
            for proc in procs:
                _, err = proc.communicate(timeout=60)
                assert proc.returncode == 0, err[-1000:]
            db = sqlite_utils.Database(path)
            assert db["profiles"].schema.rstrip().upper().endswith("STRICT")


class TestStoreErrors:
    """A file that is not an SQLite store is refused with one clear line, untouched."""

    @pytest.mark.parametrize(
        "content", [b"hello, this is a text file\n" * 20, b"\x00\x01binary" * 100]
    )
    def test_not_sqlite(self, tmp_path: Path, content: bytes) -> None:
        """Opening a non-SQLite file raises StoreError naming the file, and leaves it as is."""
        path = tmp_path / "notes.db"
        path.write_bytes(content)
        with pytest.raises(StoreError) as caught:
            SqliteStore(path)
        message = str(caught.value)
        assert "\n" not in message
        assert str(path) in message
        assert "not an SQLite database" in message
        assert path.read_bytes() == content

    @pytest.mark.parametrize("create", [True, False])
    def test_other_schema_version(self, tmp_path: Path, create: bool) -> None:
        """A store written by another schema version (here version 2's layout) is refused with
        one line naming both versions, and left as it was."""
        path = tmp_path / "old.db"
        with sqlite3.connect(path) as conn:
            conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT) STRICT")
            conn.execute("INSERT INTO meta VALUES ('schema_version', '2')")
            conn.execute("CREATE TABLE events (id TEXT PRIMARY KEY) STRICT")
        conn.close()
        content = path.read_bytes()
        with pytest.raises(StoreError) as caught:
            SqliteStore(path, create=create)
        message = str(caught.value)
        assert "\n" not in message
        assert str(path) in message
        assert f"schema version 2; this idrules reads version {SCHEMA_VERSION}" in message
        assert path.read_bytes() == content
        assert sorted(p.name for p in tmp_path.iterdir()) == ["old.db"]

    def test_directory(self, tmp_path: Path) -> None:
        """A directory as the store is a StoreError, not a crash."""
        with pytest.raises(StoreError) as caught:
            SqliteStore(tmp_path)
        assert "\n" not in str(caught.value)


class TestReopen:
    """A store file keeps everything across closings and reopenings."""

    def test_reopen_keeps_everything(self, tmp_path: Path) -> None:
        """After reopening: same export, every old id is a duplicate, old users still match."""
        path = tmp_path / "store.db"
        log = varied_log(8, 200, HELPSHIFT_KEYS)
        store = SqliteStore(path)
        first = decide_all(Engine("helpshift", store), log)
        exported = list(export_rows(store))
        store.close()

        store = SqliteStore(path)
        try:
            assert list(export_rows(store)) == exported
            engine = Engine("helpshift", store)
            second = [json.loads(line) for line in decide_all(engine, log)]
            ids = {json.loads(line)["event_id"] for line in first} - {None}
            assert {d["event_id"] for d in second if d["outcome"] == "duplicate"} == ids
            assert all(d["outcome"] in ("duplicate", "rejected") for d in second)
            assert list(export_rows(store)) == exported
            known = next(row for row in exported if row["user_id"] and row["state"] == "active")
            decision = engine.identify(
                {"userId": known["user_id"]}, session="new-browser", id="later-1", ts=TS
            )
            assert decision.outcome == "identified"
            assert decision.profile == known["profile"]
            assert not decision.created
        finally:
            store.close()
