"""The PostgreSQL store: its URL and messages, its schema, the store contract, byte-identical
decisions and export, the command line, and a server connection killed mid-replay.

Tests that need a server read its URL from ``IDRULES_TEST_POSTGRES`` (see ``pg_support``) and
are skipped without it; the others (URLs, the codec, errors without a server) always run.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import golden
import pytest
import test_store
import workload
from cli_support import assert_one_line_error, clean_env, cli, command, write_events
from hypothesis import given, settings
from hypothesis import strategies as st

from idrules import Engine, MemoryStore, SqliteStore, StoreError, export_rows, replay
from idrules.audit import RunBusyError
from idrules.decision import dumps
from idrules.store.base import Changes, Profile, ProfileWrite, Session
from idrules.store.postgres.codec import from_pg, to_pg
from idrules.store.postgres.url import masked, parse, scrub

psycopg = pytest.importorskip("psycopg")

from idrules.store.postgres import PostgresStore  # noqa: E402

pytest_plugins = ["pg_support"]

ROOT = Path(__file__).resolve().parent.parent
QUACKBACK = ROOT / "examples" / "quackback-events.jsonl"
DEMO_SECRETS = ROOT / "examples" / "demo-secrets.json"


def sql(url: str, statement: str) -> list[tuple[object, ...]]:
    """Run one statement on the store's database (outside idrules); its rows."""
    conninfo = parse(url).conninfo
    with psycopg.connect(conninfo, autocommit=True) as conn:
        cur = conn.execute(statement)
        return list(cur.fetchall()) if cur.description else []


def export_text(store: PostgresStore | SqliteStore) -> str:
    return "".join(dumps(row) + "\n" for row in export_rows(store))


class TestStoreUrl:
    """Recognising a store URL, its options, and never showing its password."""

    def test_password_masked(self) -> None:
        """The password in the user part or in a password= parameter shows as ***."""
        assert masked("postgresql://ann:pa%40ss@db:5432/x") == "postgresql://ann:***@db:5432/x"
        assert "s3cret" not in masked("postgresql://db/x?user=ann&password=s3cret")
        assert masked("postgresql://ann@db/x") == "postgresql://ann@db/x"

    def test_schema_parameter_taken_out(self) -> None:
        """idrules_schema= chooses the schema and never reaches libpq; other parameters do."""
        url = parse("postgresql://ann:pw@db/x?sslmode=require&idrules_schema=crm_ids")
        assert url.schema == "crm_ids"
        assert "idrules_schema" not in url.conninfo and "sslmode=require" in url.conninfo
        assert parse("postgresql://db/x").schema == "idrules"
        assert parse("postgresql://db/x?idrules_schema=a", schema="b").schema == "b"

    def test_schema_name_must_be_plain(self) -> None:
        """A schema name that is not a plain identifier is refused, with the password masked."""
        with pytest.raises(StoreError) as caught:
            parse("postgresql://ann:topsecret@db/x?idrules_schema=a;drop")
        assert "topsecret" not in str(caught.value) and "***" in str(caught.value)

    def test_scrub(self) -> None:
        """Any text quoting the password (as written or decoded) loses it, on one line."""
        url = parse("postgresql://ann:p%40ss@db/x")
        assert (
            scrub("failed for p@ss and p%40ss\nagain", url.secrets)
            == "failed for *** and *** again"
        )


class TestConnectionFailure:
    """A store that cannot be reached is one line naming it, password masked."""

    def test_library_error_masks_password(self) -> None:
        """PostgresStore on a closed port: StoreError with the masked URL, never the password."""
        with pytest.raises(StoreError) as caught:
            PostgresStore("postgresql://ann:hunter2secret@127.0.0.1:1/nowhere", connect_timeout=2)
        text = str(caught.value)
        assert "hunter2secret" not in text
        assert "postgresql://ann:***@127.0.0.1:1/nowhere" in text

    def test_command_line_error_masks_password(self) -> None:
        """`idrules export` on an unreachable server: exit 1, one line, no password."""
        proc = cli("export", "--store", "postgresql://ann:hunter2secret@127.0.0.1:1/nowhere")
        line = assert_one_line_error(proc, "postgresql://ann:***@127.0.0.1:1/nowhere")
        assert "hunter2secret" not in line

    def test_without_psycopg(self) -> None:
        """Without psycopg, a postgresql:// store is one line saying what to install."""
        code = (
            "import sys; sys.modules['psycopg'] = None; sys.argv = ['idrules', 'export', "
            "'--store', 'postgresql://ann:pw@127.0.0.1:1/x']; "
            "from idrules.__main__ import main; main()"
        )
        proc = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env=clean_env()
        )
        assert proc.returncode == 1, proc.stderr
        assert proc.stderr.startswith("idrules: error: ") and proc.stderr.count("\n") == 1
        assert "pip install 'idrules[postgres]'" in proc.stderr and ":pw@" not in proc.stderr


class TestTextCodec:
    """Text as PostgreSQL stores it: NUL escaped, order and equality kept."""

    @settings(max_examples=300, deadline=None)
    @given(st.text(alphabet='\x00\x01\x02a\\"{},é😀'), st.text(alphabet='\x00\x01\x02a\\"'))
    def test_round_trip_and_order(self, a: str, b: str) -> None:
        """Decoding gives the original; stored UTF-8 bytes sort as the originals do."""
        assert from_pg(to_pg(a)) == a
        assert "\x00" not in to_pg(a)
        assert (to_pg(a).encode() < to_pg(b).encode()) == (a < b)


class TestSchema:
    """The store's PostgreSQL schema: created on first use, checked on every opening."""

    def test_created_beside_other_tables(self, pg_url: str) -> None:
        """A new store makes its own schema and tables; public's tables are left alone."""
        sql(pg_url, "CREATE TABLE IF NOT EXISTS public.app_users (id int)")
        store = PostgresStore(pg_url)
        store.close()
        schema = parse(pg_url).schema
        tables = {
            r[0]
            for r in sql(pg_url, f"SELECT tablename FROM pg_tables WHERE schemaname = '{schema}'")
        }
        assert tables == {"profiles", "sessions", "timeline", "events", "decisions", "runs", "meta"}
        assert sql(pg_url, f"SELECT value FROM {schema}.meta WHERE key = 'schema_version'") == [
            ("1",)
        ]

    def test_foreign_tables_refused(self, pg_url: str) -> None:
        """A schema holding tables that are not idrules' is refused in one line."""
        schema = parse(pg_url).schema
        sql(pg_url, f"CREATE SCHEMA {schema}")
        sql(pg_url, f"CREATE TABLE {schema}.orders (id int)")
        with pytest.raises(StoreError, match="holds tables that are not idrules' \\(orders\\)"):
            PostgresStore(pg_url)

    def test_other_version_refused(self, pg_url: str) -> None:
        """A store of another schema version is refused in one line, read or written."""
        PostgresStore(pg_url).close()
        schema = parse(pg_url).schema
        sql(pg_url, f"UPDATE {schema}.meta SET value = '9' WHERE key = 'schema_version'")
        for readonly in (False, True):
            with pytest.raises(StoreError, match="schema version 9; this idrules reads version 1"):
                PostgresStore(pg_url, readonly=readonly)

    def test_readonly_never_creates(self, pg_url: str) -> None:
        """Opening a missing store read-only fails and creates no schema."""
        with pytest.raises(StoreError, match="holds no idrules store"):
            PostgresStore(pg_url, readonly=True)
        schema = parse(pg_url).schema
        assert sql(pg_url, f"SELECT 1 FROM pg_namespace WHERE nspname = '{schema}'") == []

    def test_concurrent_creation(self, pg_url: str) -> None:
        """Six processes opening one new store at once all succeed, and make it once."""
        code = (
            "import sys; from idrules.store.postgres import PostgresStore; "
            "PostgresStore(sys.argv[1]).close()"
        )
        procs = [
            subprocess.Popen([sys.executable, "-c", code, pg_url], stderr=subprocess.PIPE)
            for _ in range(6)
        ]
        errors = [p.communicate(timeout=60)[1].decode() for p in procs]
        assert [p.returncode for p in procs] == [0] * 6, errors
        schema = parse(pg_url).schema
        assert sql(pg_url, f"SELECT count(*) FROM {schema}.meta") == [(2,)]


def _profile(pid: str, **kw: object) -> Profile:
    return Profile(id=pid, created_by="e-" + pid, **kw)  # type: ignore[arg-type]


class TestPostgresStore:
    """The store contract, as the SQLite store keeps it."""

    def test_odd_text_kept_and_sorted(self, pg_url: str, tmp_path: Path) -> None:
        """NUL, \\x01, quotes and non-ASCII in ids survive, and sessions sort as in SQLite."""
        odd = ["b\x00", "b", "b\x01", "B", "é", 'a"{,}\\', "\x01"]
        results = []
        for store in (PostgresStore(pg_url), SqliteStore(tmp_path / "s.db")):
            p = _profile(
                "p_1", user_id="u\x00x", user_key="u\x00x", name="N\x01", attributes={"k": "\x00"}
            )
            with store.transaction():
                store.apply(
                    Changes(
                        "e\x00",
                        profiles=(ProfileWrite(p),),
                        sessions=tuple(Session(s, "p_1") for s in odd),
                        activity=(("t\x00\x01", "p_1"),),
                    )
                )
            results.append(
                (export_text(store), store.is_decided("e\x00"), store.by_user_key("u\x00x"))
            )
            store.close()
        assert results[0] == results[1]
        assert results[0][1] is True and results[0][2] is not None

    def test_commit_group_and_failed_event(self, pg_url: str) -> None:
        """In a commit group a failed event rolls back alone; close commits the group."""
        store = PostgresStore(pg_url, commit_every=100)
        engine = Engine("helpshift", store)
        engine.identify({"userId": "u1"}, session="s1", id="e1")
        with pytest.raises(RuntimeError), store.transaction():
            store.apply(Changes("e2", profiles=(ProfileWrite(_profile("p_x")),)))
            raise RuntimeError("the caller failed mid-event")
        engine.identify({"userId": "u2"}, session="s2", id="e3")
        assert store.pending == 2
        store.close()
        reader = PostgresStore(pg_url, readonly=True)
        assert [r["user_id"] for r in export_rows(reader)] == ["u1", "u2"]
        assert not reader.is_decided("e2") and reader.is_decided("e3")
        reader.close()

    @pytest.mark.parametrize(("commit_every", "trips"), [(1, 2.0), (50, 1.0)])
    def test_round_trips_per_event(self, pg_url: str, commit_every: int, trips: float) -> None:
        """A workload event costs two round trips (one in a commit group), ~10 statements."""
        lines = [line.encode() for line in workload.generate("strict", 600, seed=5)]
        store = PostgresStore(pg_url, commit_every=commit_every)
        engine = Engine("strict", store, secrets=workload.SECRETS, environ={})
        before = store.counts
        replay(engine, lines, lambda _: None)
        store.commit()
        after = store.counts
        statements, round_trips = after[0] - before[0], after[1] - before[1]
        store.close()
        assert round_trips / len(lines) <= trips + 0.05
        assert statements / len(lines) <= 10.5

    def test_readonly_refuses_writes(self, pg_url: str) -> None:
        """A read-only store refuses a transaction and a run claim."""
        PostgresStore(pg_url).close()
        reader = PostgresStore(pg_url, readonly=True)
        with pytest.raises(StoreError, match="read-only"):
            reader.transaction()
        with pytest.raises(StoreError, match="read-only"):
            reader.claim_run("log", "rules")
        reader.close()

    def test_history_as_sqlite(self, pg_url: str, tmp_path: Path) -> None:
        """history, merged_into, root_of and find_profiles answer as the SQLite store does."""
        answers = []
        for store in (PostgresStore(pg_url), SqliteStore(tmp_path / "h.db")):
            engine = Engine("quackback", store, secrets=json.loads(DEMO_SECRETS.read_text()))
            for raw in QUACKBACK.read_bytes().splitlines():
                if raw.strip():
                    engine.decide_line(raw)
            target = store.find_profiles("user_id", "user_123")[0]
            merged = store.merged_into(target)
            answers.append(
                (
                    target,
                    merged,
                    [store.root_of(m) for m in merged],
                    list(store.history([target, *merged])),
                )
            )
            store.close()
        assert answers[0] == answers[1]
        assert answers[0][1]  # the example merges a profile

    @pytest.mark.parametrize("pool_size", [1, 3])
    def test_run_claimed_once(self, pg_url: str, pool_size: int) -> None:
        """A run claimed by one store is refused to another, and free once released."""
        first = PostgresStore(pg_url, pool_size=pool_size)
        second = PostgresStore(pg_url, pool_size=pool_size)
        run, claim = first.claim_run("log", "rules")
        with pytest.raises(RunBusyError, match=f"\\(pid {os.getpid()} on "):
            second.claim_run("log", "rules")
        with pytest.raises(RunBusyError):
            first.claim_run("log", "rules")  # the same process, again
        other, other_claim = second.claim_run("another log", "rules")
        assert other.id != run.id
        claim.__exit__(None, None, None)
        again, again_claim = second.claim_run("log", "rules")
        assert again.id == run.id
        for c in (other_claim, again_claim):
            c.__exit__(None, None, None)
        first.close()
        second.close()


class TestStoresAgreePostgres:
    """The PostgreSQL store decides test_store's varied logs as the memory store does."""

    @pytest.mark.parametrize("commit_every", [1, 7])
    @pytest.mark.parametrize("case", sorted(test_store.CASES))
    def test_same_decisions_and_export(self, case: str, commit_every: int, pg_url: str) -> None:
        """Merges, expiry, ambiguity, duplicates and malformed lines: same decisions, export."""
        rules, keys, sign = test_store.CASES[case]
        log = test_store.varied_log(3, 400, keys, sign=sign)
        secrets = {"current": test_store.SECRET}
        memory = MemoryStore()
        store = PostgresStore(pg_url, commit_every=commit_every)
        by_memory = test_store.decide_all(Engine(rules, memory, secrets=secrets), log)
        by_store = test_store.decide_all(Engine(rules, store, secrets=secrets), log)
        assert by_store == by_memory
        assert list(export_rows(store)) == list(export_rows(memory))
        store.close()


class TestGoldenPostgres:
    """Every pack's workload gives the recorded bytes in PostgreSQL too."""

    @pytest.mark.parametrize("pack", workload.PACKS)
    def test_postgres(self, pack: str, pg_url: str) -> None:
        """Decisions and export of a sequential replay equal memory's and SQLite's."""
        recorded = json.loads(golden.GOLDEN.read_text())[pack]
        assert golden.digests(pack, PostgresStore(pg_url)) == recorded

    def test_postgres_grouped(self, pg_url: str) -> None:
        """Grouped commits give the same bytes."""
        recorded = json.loads(golden.GOLDEN.read_text())["strict"]
        assert golden.digests("strict", PostgresStore(pg_url, commit_every=50)) == recorded


def _replay(
    log: Path, store: str | Path, out: Path, *extra: str
) -> subprocess.CompletedProcess[str]:
    return cli("replay", log, "--rules", "helpshift", "--store", store, "--out", out, "-q", *extra)


class TestCommandLine:
    """replay, resolve, export and history with --store postgresql://..."""

    def test_same_bytes_as_sqlite(self, pg_url: str, tmp_path: Path) -> None:
        """A replay, its export and a history give SQLite's bytes."""
        log = write_events(tmp_path / "log.jsonl", 400)
        outputs = []
        for name, store in (("pg", pg_url), ("lite", tmp_path / "s.db")):
            assert _replay(log, store, tmp_path / f"{name}.out").returncode == 0
            exported = cli("export", "--store", store)
            shown = cli("history", "--store", store, "--user-id", "u_7", "--json")
            assert exported.returncode == shown.returncode == 0, exported.stderr + shown.stderr
            outputs.append(((tmp_path / f"{name}.out").read_bytes(), exported.stdout, shown.stdout))
        assert outputs[0] == outputs[1]

    def test_resolve(self, pg_url: str) -> None:
        """resolve decides one event into the database and prints its decision."""
        event = json.dumps(
            {"id": "r1", "ts": "2026-03-01T12:00:00Z", "type": "identify", "session": "s",
             "payload": {"userId": "u"}}
        )  # fmt: skip
        proc = cli("resolve", "--rules", "helpshift", "--store", pg_url, stdin=event)
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["outcome"] == "identified"
        again = cli("resolve", "--rules", "helpshift", "--store", pg_url, stdin=event)
        assert json.loads(again.stdout)["outcome"] == "duplicate"

    def test_export_missing_store(self, pg_url: str) -> None:
        """export of a schema with no store: one line, and nothing created."""
        assert_one_line_error(cli("export", "--store", pg_url), "holds no idrules store")
        schema = parse(pg_url).schema
        assert sql(pg_url, f"SELECT 1 FROM pg_namespace WHERE nspname = '{schema}'") == []

    def test_second_replay_of_a_run_refused(self, pg_url: str, tmp_path: Path) -> None:
        """While a process holds a run, a replay of it is refused at once, naming the holder."""
        log = write_events(tmp_path / "log.jsonl", 50)
        assert _replay(log, pg_url, tmp_path / "a.out").returncode == 0
        holder = PostgresStore(pg_url)
        first = log.read_bytes().splitlines()[0]
        ruleset = Engine("helpshift").ruleset.sha256
        _, claim = holder.claim_run(hashlib.sha256(first).hexdigest(), ruleset)
        proc = _replay(log, pg_url, tmp_path / "a.out")
        assert_one_line_error(
            proc, "another replay of this log is running into", f"(pid {os.getpid()} on "
        )
        claim.__exit__(None, None, None)
        holder.close()
        assert _replay(log, pg_url, tmp_path / "a.out").returncode == 0


def _backend_pids(url: str) -> list[int]:
    rows = sql(
        url,
        "SELECT pid FROM pg_stat_activity WHERE application_name LIKE 'idrules pid %' "
        "AND pid <> pg_backend_pid() AND datname = current_database()",
    )
    return [int(r[0]) for r in rows]


class TestKilledConnection:
    """The server connection killed mid-replay: one line, no half event, resume to the bytes."""

    @pytest.mark.parametrize("commit_every", ["1", "25"])
    def test_terminated_backend_then_resume(
        self, pg_url: str, tmp_path: Path, commit_every: str
    ) -> None:
        """pg_terminate_backend mid-replay: exit 1 with one line; resuming gives the bytes and
        the export of a replay never interrupted, and the store never held half an event."""
        log = write_events(tmp_path / "log.jsonl", 3000)
        reference = tmp_path / "ref.out"
        assert _replay(log, tmp_path / "ref.db", reference).returncode == 0
        out = tmp_path / "d.out"
        args = ["replay", log, "--rules", "helpshift", "--store", pg_url, "--out", out, "-q"]
        proc = subprocess.Popen(
            command(*args, "--commit-every", commit_every), stderr=subprocess.PIPE, env=clean_env()
        )
        deadline = time.monotonic() + 60
        while (not out.exists() or out.stat().st_size < 20_000) and proc.poll() is None:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        killed = [
            sql(pg_url, f"SELECT pg_terminate_backend({pid})") for pid in _backend_pids(pg_url)
        ]
        assert proc.wait(timeout=60) == 1 and killed, "the replay was not cut off"
        assert proc.stderr is not None
        err = proc.stderr.read().decode()
        assert err.startswith("idrules: error: store postgresql://") and err.count("\n") == 1, err
        assert "connection to the server was lost" in err
        # no half event: what the store holds is exactly a prefix of the log, decided
        schema = parse(pg_url).schema
        held = sql(pg_url, f"SELECT count(*) FROM {schema}.decisions")[0][0]
        ids = sql(pg_url, f"SELECT count(*) FROM {schema}.events")[0][0]
        assert 0 < int(held) < 3000
        prefix = tmp_path / "prefix.jsonl"
        prefix.write_bytes(b"".join(log.read_bytes().splitlines(keepends=True)[: int(held)]))
        assert _replay(prefix, tmp_path / "prefix.db", tmp_path / "prefix.out").returncode == 0
        lite = SqliteStore(tmp_path / "prefix.db", readonly=True)
        pg = PostgresStore(pg_url, readonly=True)
        assert export_text(pg) == export_text(lite)
        assert int(ids) == len({json.loads(x)["id"] for x in prefix.read_text().splitlines()})
        pg.close()
        lite.close()
        # resume
        again = cli(*args)
        assert again.returncode == 0, again.stderr
        assert out.read_bytes() == reference.read_bytes()
        assert (
            cli("export", "--store", pg_url).stdout
            == cli("export", "--store", tmp_path / "ref.db").stdout
        )

    def test_interrupted_then_resumed(self, pg_url: str, tmp_path: Path) -> None:
        """Ctrl-C mid-replay in a commit group: exit 130; resuming gives the reference bytes."""
        log = write_events(tmp_path / "log.jsonl", 3000)
        reference = tmp_path / "ref.out"
        assert _replay(log, tmp_path / "ref.db", reference).returncode == 0
        out = tmp_path / "d.out"
        args = ["replay", log, "--rules", "helpshift", "--store", pg_url, "--out", out, "-q"]
        proc = subprocess.Popen(
            command(*args, "--commit-every", "9"), stderr=subprocess.PIPE, env=clean_env()
        )
        while (not out.exists() or out.stat().st_size < 20_000) and proc.poll() is None:
            time.sleep(0.005)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) in (0, 130)
        again = cli(*args)
        assert again.returncode == 0, again.stderr
        assert out.read_bytes() == reference.read_bytes()

    def test_interrupt_cancels_a_lock_wait(self, pg_url: str, tmp_path: Path) -> None:
        """Ctrl-C while an event waits for another connection's lock: exit 130 at once."""
        log = write_events(tmp_path / "log.jsonl", 50)
        PostgresStore(pg_url).close()
        schema = parse(pg_url).schema
        with psycopg.connect(parse(pg_url).conninfo) as blocker:
            blocker.execute(f"LOCK TABLE {schema}.events IN ACCESS EXCLUSIVE MODE")
            args = ["replay", log, "--rules", "helpshift", "--store", pg_url, "-q"]
            proc = subprocess.Popen(
                command(*args), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=clean_env()
            )
            deadline = time.monotonic() + 30
            while not sql(pg_url, "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock'"):
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.05)
            proc.send_signal(signal.SIGINT)
            code = proc.wait(timeout=10)  # while the lock is still held
            assert proc.stderr is not None
            assert (code, proc.stderr.read().decode()) == (130, "idrules: interrupted\n")
            blocker.rollback()
        assert cli(*args).returncode == 0
