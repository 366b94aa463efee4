"""Many engine processes deciding against one PostgreSQL database at once, on the same users
and sessions: every invariant of SPEC §3 holds on the result (needs ``IDRULES_TEST_POSTGRES``,
see ``pg_support``)."""

from __future__ import annotations

import json
import multiprocessing
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cli_support import clean_env, command, write_events
from support import check_json_decisions

pytest.importorskip("psycopg")

from idrules import Engine
from idrules.store.postgres import PostgresStore

pytest_plugins = ["pg_support"]

USERS = [f"u{n}" for n in range(8)]
WORKERS = 4
ROUNDS = 120
#: helpshift, with anonymous sessions folded into the profile that identifies in them
MERGING = "extends: helpshift\nruleset: helpshift-merging\nanonymous: {on_identify: merge}\n"


def _event(worker: int, n: int) -> dict[str, Any]:
    """A worker's n-th call: identifies, anonymous tracks (some with an inline email),
    logouts, over shared users and sessions; every 6th is the same event (same id, same
    content) in every worker, as a retried request would be."""
    shared = n % 6 == 5
    w = 0 if shared else worker
    session = f"s{(w * 3 + n) % 7}"
    user = USERS[(w + n) % len(USERS)]
    event: dict[str, Any] = {
        "id": f"shared-{n}" if shared else f"w{worker}-{n}",
        "ts": f"2026-03-01T12:{n // 60:02d}:{n % 60:02d}Z",
        "session": session,
    }
    kind = n % 5
    if kind in (0, 3):
        event["type"] = "identify"
        event["payload"] = {"userId": user, "userEmail": f"{user}@example.com"}
    elif kind == 4 and n % 10 == 4:
        event["type"] = "logout"
    else:
        event["type"] = "track"
        event["payload"] = {"name": "vote"}
        if n % 4 == 1:
            event["payload"]["email"] = f"{user}@example.com"
    return event


def _worker(url: str, rules: str, worker: int, commit_every: int, start: Any, results: Any) -> None:
    try:
        store = PostgresStore(url, commit_every=commit_every)
        engine = Engine(rules, store)
        start.wait(60)
        decided = [engine.decide(_event(worker, n)).to_dict() for n in range(ROUNDS)]
        store.close()
        results.put((worker, decided, None))
    except BaseException as exc:  # reported by the test
        results.put((worker, [], f"{type(exc).__name__}: {exc}"))


def _check(url: str, decisions: list[dict[str, Any]]) -> None:
    """SPEC §3's invariants on the store and every process's decisions."""
    reader = PostgresStore(url, readonly=True)
    # a user id on at most one active profile; every recorded track in exactly one
    # profile's activity; only anonymous profiles merged, into the decision's profile, once;
    # one decision per event id
    check_json_decisions(reader, decisions)
    schema = reader.schema
    reader.close()
    import psycopg

    from idrules.store.postgres.url import parse

    with psycopg.connect(parse(url).conninfo) as conn:
        events = conn.execute(f"SELECT count(*) FROM {schema}.events").fetchone()
        twice = conn.execute(
            f"SELECT event_id FROM {schema}.decisions WHERE outcome <> 'duplicate' "
            "GROUP BY event_id HAVING count(*) > 1"
        ).fetchall()
    assert events is not None and events[0] == len({d["event_id"] for d in decisions})
    assert twice == [], f"decision records doubled: {twice}"


class TestConcurrentEngines:
    """Processes calling Engine.decide on the same users, sessions and event ids at once."""

    @pytest.mark.parametrize("commit_every", [1, 5])
    def test_invariants_hold(self, pg_url: str, tmp_path: Path, commit_every: int) -> None:
        """Four processes: no error, every invariant kept, each shared event decided once."""
        rules = tmp_path / "merging.yaml"
        rules.write_text(MERGING)
        PostgresStore(pg_url).close()  # made once, before the race
        spawn = multiprocessing.get_context("spawn")
        start, results = spawn.Event(), spawn.Queue()
        procs = [
            spawn.Process(
                target=_worker, args=(pg_url, str(rules), w, commit_every, start, results)
            )
            for w in range(WORKERS)
        ]
        for p in procs:
            p.start()
        start.set()
        got = [results.get(timeout=300) for _ in procs]
        for p in procs:
            p.join(timeout=60)
        errors = [error for _, _, error in got if error]
        assert errors == []
        decisions = [d for _, part, _ in sorted(got) for d in part]
        assert len(decisions) == WORKERS * ROUNDS
        outcomes = {d["outcome"] for d in decisions}
        assert {"identified", "recorded", "duplicate"} <= outcomes
        assert any(d["merged"] for d in decisions), "the workload merges no session"
        _check(pg_url, decisions)


class TestConcurrentReplays:
    """`idrules replay` of different logs (same users and sessions) into one database."""

    def test_four_replays(self, pg_url: str, tmp_path: Path) -> None:
        """Four replays at once all finish, and every invariant holds across them."""
        logs = [write_events(tmp_path / f"log{k}.jsonl", 300, prefix=f"r{k}-") for k in range(4)]
        args = [
            ["replay", str(log), "--rules", "helpshift", "--store", pg_url, "-q", "--out",
             str(tmp_path / f"out{k}.jsonl")]
            for k, log in enumerate(logs)
        ]  # fmt: skip
        procs = [
            subprocess.Popen(command(*a), stderr=subprocess.PIPE, env=clean_env()) for a in args
        ]
        errors = [p.communicate(timeout=300)[1].decode() for p in procs]
        assert [p.returncode for p in procs] == [0] * 4, errors
        decisions = [
            json.loads(line)
            for k in range(4)
            for line in (tmp_path / f"out{k}.jsonl").read_text().splitlines()
        ]
        assert len(decisions) == 1200
        _check(pg_url, decisions)


class TestSharedStoreThreads:
    """One engine on one PostgresStore shared by threads, as a threaded web backend has it."""

    @pytest.mark.parametrize("pool_size", [1, 4])
    def test_eight_threads(self, pg_url: str, pool_size: int) -> None:
        """Eight threads on one engine (one connection, or a pool of four deciding in
        parallel): no error, each decision whole, every invariant kept."""
        from concurrent.futures import ThreadPoolExecutor

        from test_threads import hammer

        store = PostgresStore(pg_url, pool_size=pool_size)
        engine = Engine("helpshift", store)
        with ThreadPoolExecutor(max_workers=8) as pool:
            results = list(pool.map(lambda w: hammer(engine, w), range(8)))
        used = [link for link in store._links.all() if link.wire.round_trips]
        assert (len(used) > 1) == (pool_size > 1)
        decisions = [d.to_dict() for part in results for d in part]
        assert len(decisions) == 8 * 60
        assert {d["outcome"] for d in decisions} <= {"identified", "recorded", "logged_out"}
        store.close()
        _check(pg_url, decisions)
