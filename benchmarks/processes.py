"""Whole processes against the lean resolver (issue 14): ``python benchmarks/harness.py``.

Per pack, one generated log written to a file, then each variant as its own process over it,
decisions written to a file: the lean resolver (``benchmarks/lean.py``), ``idrules replay``
in memory, into a fresh SQLite file with a commit per event, and with ``--commit-every N``.
Timing is the child's wall time and its CPU time (``os.wait4``'s rusage: user + system), so
start-up (imports, the ruleset's compilation) counts, as it does for a user. ``repeat`` runs go
round-robin over the variants and each keeps its best. The SQLite statements an event costs are
counted in this process with ``sqlite3``'s trace callback, over a short replay of the same log.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import workload

HERE = Path(__file__).resolve().parent
VARIANTS = ("lean", "memory", "sqlite-event", "sqlite-grouped")
#: the issue's targets: idrules' time over the lean resolver's, at most
LEAN_TARGETS = {"memory": 1.0, "sqlite-event": 3.0, "sqlite-grouped": 1.5}
STATEMENTS_TARGET = 4.0


def command(variant: str, pack: str, log: Path, out: Path, db: Path, every: int) -> list[str]:
    """The command line of one variant."""
    if variant == "lean":
        return [sys.executable, str(HERE / "lean.py"), "--pack", pack, str(log), "--out", str(out)]
    cmd = [sys.executable, "-m", "idrules", "replay", "--rules", pack, str(log), "-q"]
    cmd += ["--out", str(out)]
    if variant == "sqlite-event":
        cmd += ["--store", str(db)]
    elif variant == "sqlite-grouped":
        cmd += ["--store", str(db), "--commit-every", str(every)]
    return cmd


def run(cmd: list[str], db: Path) -> dict[str, float]:
    """One child process: its wall and CPU seconds (a fresh store file each time)."""
    _clean(db)
    env = {**os.environ, "IDRULES_SECRET_CURRENT": workload.SECRET}
    started = time.perf_counter()
    child = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    err = child.stderr.read().decode() if child.stderr else ""
    if child.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({child.returncode}): {err.strip()}")
    return {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime}


@contextmanager
def _counted(store: Any) -> Iterator[list[int]]:
    """Counts the statements SQLite runs on the store's connection (BEGIN and COMMIT too;
    not the nested ``-- ...`` ones a statement runs inside itself)."""
    count = [0]

    def trace(text: str) -> None:
        if not text.startswith("--"):  # not a trigger's or a table-valued pragma's own
            count[0] += 1

    store._conn.set_trace_callback(trace)
    try:
        yield count
    finally:
        store._conn.set_trace_callback(None)


def statements_per_event(pack: str, log: Path, events: int, every: int, db: Path) -> float:
    """SQLite statements per event over the log's first ``events`` lines, replayed as
    ``idrules replay --store`` does (a run claimed, each decision recorded with its event);
    the count starts once the run is claimed and includes the final commit."""
    from idrules import Engine, SqliteStore
    from idrules.audit.journal import resume_position
    from idrules.replaying import replay

    lines = iter(log.read_bytes().splitlines(keepends=True)[:events])
    _clean(db)
    store = SqliteStore(str(db), commit_every=every)
    try:
        engine = Engine(pack, store, secrets=workload.SECRETS)
        start, rest, claim = resume_position(store, engine.ruleset.sha256, lines)
        with claim, _counted(store) as count:
            summary = replay(engine, rest, lambda _: None, start=start)
            store.commit()
        return count[0] / summary.events
    finally:
        store.close()
        _clean(db)


def _clean(db: Path) -> None:
    for suffix in ("", "-wal", "-shm", ".lock"):  # the file, SQLite's, the run claim's
        db.with_name(db.name + suffix).unlink(missing_ok=True)


def compare(
    packs: list[str],
    events: int,
    seed: int,
    repeat: int,
    every: int,
    workdir: Path,
    count_events: int = 20_000,
    log: Any = print,
) -> dict[str, Any]:
    """Every pack's variants as whole processes; the ratios to the lean resolver."""
    workdir.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"events": events, "seed": seed, "commit_every": every, "packs": {}}
    for pack in packs:
        path = workdir / f"{pack}-{events}-{seed}.jsonl"
        if not path.exists():
            lines = workload.LogGenerator(pack, seed).lines(events)
            path.write_text("".join(line + "\n" for line in lines))
        out, db = workdir / f"{pack}-decisions.jsonl", workdir / f"{pack}-lean.db"
        runs: dict[str, list[dict[str, float]]] = {v: [] for v in VARIANTS}
        for _ in range(repeat):
            for variant in VARIANTS:
                runs[variant].append(run(command(variant, pack, path, out, db, every), db))
        best = {v: min(r, key=lambda x: x["cpu_s"]) for v, r in runs.items()}
        per_pack: dict[str, Any] = {"variants": best, "ratios": {}}
        for variant in VARIANTS[1:]:
            per_pack["ratios"][variant] = {
                "cpu": best[variant]["cpu_s"] / best["lean"]["cpu_s"],
                "wall": best[variant]["wall_s"] / best["lean"]["wall_s"],
            }
        n = min(count_events, events)
        per_pack["statements"] = {
            "event": statements_per_event(pack, path, n, 1, db),
            "grouped": statements_per_event(pack, path, n, every, db),
        }
        out.unlink(missing_ok=True)
        result["packs"][pack] = per_pack
        log(f"{pack}: " + ", ".join(f"{v} {r['cpu']:.2f}x" for v, r in per_pack["ratios"].items()))
    return result


def table(result: dict[str, Any]) -> str:
    """The ratios to the lean resolver, one line per pack (CPU time; wall time in brackets)."""
    head = (
        f"{'pack':<10} {'lean ev/s':>10} {'memory/lean':>14} {'sql-event/lean':>15} "
        f"{'sql-group/lean':>15} {'stmts/event':>12} {'grouped':>8}"
    )
    rows = [
        f"whole processes, {result['events']:,} events (seed {result['seed']}), decisions to a "
        f"file; idrules' time / the lean resolver's, CPU (wall); best of the runs",
        head,
    ]
    met = {v: True for v in LEAN_TARGETS}
    stmts_met = True
    for pack, r in result["packs"].items():
        lean = r["variants"]["lean"]
        cells = []
        for variant, limit in LEAN_TARGETS.items():
            ratio = r["ratios"][variant]
            met[variant] = met[variant] and ratio["cpu"] <= limit
            cells.append(f"{ratio['cpu']:.2f} ({ratio['wall']:.2f})")
        s = r["statements"]
        stmts_met = stmts_met and s["event"] <= STATEMENTS_TARGET
        rows.append(
            f"{pack:<10} {result['events'] / lean['cpu_s']:>10,.0f} {cells[0]:>14} "
            f"{cells[1]:>15} {cells[2]:>15} {s['event']:>12.2f} {s['grouped']:>8.2f}"
        )
    rows.append(
        "targets: "
        + ", ".join(
            f"{v} <= {limit}x: {'met' if met[v] else 'NOT met'}"
            for v, limit in LEAN_TARGETS.items()
        )
        + f", statements/event <= {STATEMENTS_TARGET:g}: {'met' if stmts_met else 'NOT met'}"
    )
    return "\n".join(rows)
