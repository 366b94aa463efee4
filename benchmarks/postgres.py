"""The PostgreSQL store under load: events/s for 1, 2 and 4 engine processes deciding at once
against one database, each on users of its own, with a commit per event and grouped commits,
and the statements and round trips each event costs.

    python benchmarks/postgres.py --url postgresql://postgres@127.0.0.1:5432/test

Each configuration gets a fresh store (a schema of its own in the database, dropped after),
pre-filled with ``--prefill`` profiles (the workload's pool, decided by one process first).
Process k replays its own log: ``workload.py``'s generator with seed ``--seed + k``, the
returning users drawn from its own slice of the pool, new users from its own range of the
universe, and event ids prefixed ``p{k}-``: no two processes touch the same user, session or
event id, so what is measured is the store's parallelism, not contention. Every process
prepares its log and its engine first, then all start together; events/s is all their events
over the time from the first start to the last end.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import workload  # noqa: E402

#: the universe range each process draws its new users from
_NEW_USERS = 10_000_000


def _url(base: str, schema: str) -> str:
    return base + ("&" if "?" in base else "?") + f"idrules_schema={schema}"


def log_for(pack: str, events: int, seed: int, k: int, procs: int) -> list[bytes]:
    """Process ``k``'s log (of ``procs``): its own pool slice, new users and event ids."""
    pool = workload.pool_indices()[k::procs]
    gen = workload.LogGenerator(pack, seed + k, pool=pool)
    gen.next_user = workload.UNIVERSE + (k + 1) * _NEW_USERS
    prefix = f'"id":"p{k}-'
    return [line.replace('"id":"', prefix, 1).encode() for line in gen.lines(events)]


def worker(args: argparse.Namespace) -> int:
    """One process: prepare, say ready, wait for go, replay, print the result as JSON."""
    from idrules import Engine, replay
    from idrules.store.postgres import PostgresStore

    threads = args.threads
    logs = [
        log_for(args.pack, args.events, args.seed, args.k * threads + t, args.procs * threads)
        for t in range(threads)
    ]
    store = PostgresStore(args.store, commit_every=args.commit_every, pool_size=threads)
    engine = Engine(args.pack, store, secrets=workload.SECRETS, environ={})
    print("ready", flush=True)
    sys.stdin.readline()
    before = store.counts
    cpu = time.process_time()
    start = time.monotonic()
    with open(os.devnull, "w") as sink, ThreadPoolExecutor(threads) as pool:
        done = list(pool.map(lambda lines: replay(engine, lines, sink.write).events, logs))
        store.close()
    end = time.monotonic()
    statements, trips = (a - b for a, b in zip(store.counts, before, strict=True))
    result = {
        "events": sum(done),
        "start": start,
        "end": end,
        "cpu": time.process_time() - cpu,
        "statements": statements,
        "round_trips": trips,
    }
    print(json.dumps(result), flush=True)
    return 0


def prefill(store_url: str, pack: str, count: int) -> None:
    """Decide the workload's pre-fill identifies (one process, grouped commits)."""
    from idrules import Engine
    from idrules.store.postgres import PostgresStore

    store = PostgresStore(store_url, commit_every=1000)
    engine = Engine(pack, store, secrets=workload.SECRETS, environ={})
    for event in workload.prefill_events(pack, count):
        engine.decide(event)
    store.close()


def run(base: str, args: argparse.Namespace, procs: int, commit_every: int) -> dict[str, Any]:
    """One configuration on a fresh store: its figures."""
    import psycopg

    from idrules.store.postgres.url import parse

    schema = f"bench_{secrets.token_hex(4)}"
    store_url = _url(base, schema)
    try:
        prefill(store_url, args.pack, args.prefill)
        workers = []
        for k in range(procs):
            argv = [sys.executable, __file__, "--worker", "--store", store_url, "--pack",
                    args.pack, "--events", str(args.events), "--seed", str(args.seed), "--k",
                    str(k), "--procs", str(procs), "--commit-every", str(commit_every),
                    "--threads", str(args.threads)]  # fmt: skip
            workers.append(
                subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            )
        for w in workers:
            assert w.stdout is not None
            if w.stdout.readline().strip() != "ready":
                raise SystemExit(f"a worker failed to start (exit {w.wait()})")
        load = os.getloadavg()[0]
        for w in workers:
            assert w.stdin is not None
            w.stdin.write("go\n")
            w.stdin.flush()
        results = []
        for w in workers:
            out, _ = w.communicate(timeout=3600)
            if w.returncode != 0:
                raise SystemExit(f"a worker failed (exit {w.returncode})")
            results.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        with psycopg.connect(parse(base).conninfo, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    events = sum(r["events"] for r in results)
    wall = max(r["end"] for r in results) - min(r["start"] for r in results)
    return {
        "procs": procs,
        "threads": args.threads,
        "commit_every": commit_every,
        "events": events,
        "seconds": wall,
        "rate": events / wall,
        "cpu_per_event_us": sum(r["cpu"] for r in results) / events * 1e6,
        "statements": sum(r["statements"] for r in results) / events,
        "round_trips": sum(r["round_trips"] for r in results) / events,
        "load": [load, os.getloadavg()[0]],
    }


def calibrate(base: str, args: argparse.Namespace) -> dict[str, float]:
    """What bounds the figures on this machine: a bare round trip (``SELECT 1``), a bare
    commit (one INSERT and COMMIT a round trip, the server's fsync included) and the engine
    alone (in memory, process 0's log)."""
    import psycopg

    from idrules import Engine, MemoryStore, replay
    from idrules.store.postgres.url import parse
    from idrules.store.postgres.wire import Wire

    n = 2_000
    with psycopg.connect(parse(base).conninfo, autocommit=True) as conn:
        wire = Wire(conn)
        start = time.perf_counter()
        for _ in range(n):
            wire.send([("SELECT 1", None)])
        trip = (time.perf_counter() - start) / n
        table = f"idrules_calibration_{secrets.token_hex(4)}"  # logged: its commits fsync
        wire.send([(f"CREATE TABLE {table} (id bigserial PRIMARY KEY)", None)])
        try:
            start = time.perf_counter()
            for _ in range(n):
                wire.send([("BEGIN", None), (f"INSERT INTO {table} DEFAULT VALUES", None),
                           ("COMMIT", None)])  # fmt: skip
            commit = (time.perf_counter() - start) / n
        finally:
            wire.send([(f"DROP TABLE {table}", None)])
    lines = log_for(args.pack, args.events, args.seed, 0, 1)
    engine = Engine(args.pack, MemoryStore(), secrets=workload.SECRETS, environ={})
    with open(os.devnull, "w") as sink:
        start = time.perf_counter()
        replay(engine, lines, sink.write)
        memory = len(lines) / (time.perf_counter() - start)
    return {"round_trip_us": trip * 1e6, "commits_per_s": 1 / commit, "memory_rate": memory}


def table(rows: list[dict[str, Any]]) -> str:
    """The results as a Markdown table; speed-up against 1 process with the same commits."""
    one = {r["commit_every"]: r["rate"] for r in rows if r["procs"] == r["threads"] == 1}
    lines = [
        "| processes | threads | commit | events | events/s | vs 1 process | statements/event | "
        "round trips/event | client CPU µs/event | load (1 min) |",
        "|---:|---:|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        commit = "per event" if r["commit_every"] == 1 else f"every {r['commit_every']}"
        base = one.get(r["commit_every"])
        speed = f"{r['rate'] / base:.2f}x" if base else "-"
        lines.append(
            f"| {r['procs']} | {r['threads']} | {commit} | {r['events']:,} | "
            f"{r['rate']:,.0f} | {speed} | "
            f"{r['statements']:.2f} | {r['round_trips']:.2f} | {r['cpu_per_event_us']:.0f} | "
            f"{r['load'][0]:.1f}-{r['load'][1]:.1f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--url",
        default=os.environ.get("IDRULES_BENCH_POSTGRES") or os.environ.get("IDRULES_TEST_POSTGRES"),
        help="the database (default: $IDRULES_BENCH_POSTGRES, else $IDRULES_TEST_POSTGRES)",
    )
    parser.add_argument("--pack", default="strict", choices=workload.PACKS)
    parser.add_argument("--events", type=int, default=20_000, help="events per process")
    parser.add_argument("--prefill", type=int, default=10_000, help="pre-filled profiles")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--procs", default="1,2,4", help="process counts to run")
    parser.add_argument("--commit-every", default="1,100", help="commit sizes to run")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="threads per process, sharing one engine and a store with a pool of as many "
        "connections (per-event commits only)",
    )
    parser.add_argument("--json", help="also write the results to this file")
    # a worker's own arguments
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--store", help=argparse.SUPPRESS)
    parser.add_argument("--k", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        args.procs = int(args.procs)
        args.commit_every = int(args.commit_every)
        return worker(args)
    if not args.url:
        parser.error("give --url (or set IDRULES_BENCH_POSTGRES)")
    bounds = calibrate(args.url, args)
    print(
        f"on this machine: a round trip {bounds['round_trip_us']:.0f} µs, bare commits "
        f"{bounds['commits_per_s']:,.0f}/s (one connection), the engine in memory "
        f"{bounds['memory_rate']:,.0f} events/s",
        flush=True,
    )
    rows = []
    for commit_every in (int(c) for c in args.commit_every.split(",")):
        for procs in (int(p) for p in args.procs.split(",")):
            row = run(args.url, args, procs, commit_every)
            rows.append(row)
            print(
                f"{procs} process(es), commit every {commit_every}: {row['rate']:,.0f} events/s "
                f"({row['statements']:.2f} statements, {row['round_trips']:.2f} round trips "
                "per event)",
                file=sys.stderr,
                flush=True,
            )
    print(table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps({"bounds": bounds, "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
