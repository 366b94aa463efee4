"""One command that measures idrules against the hand-written baseline on one generated log.

    python benchmarks/harness.py --pack strict --events 100000 --seed 1 [--json out.json]

Without ``--pack`` (or with ``--lean``) it compares whole processes instead, for every pack:
the lean resolver (benchmarks/lean.py) against ``idrules replay`` in memory and into SQLite
(benchmarks/processes.py). What follows is the in-process comparison of one pack.

In one process, on the same log (generated from the seed before any timing):

1. **variants**, each over fresh state pre-filled with ``--prefill`` (10k) profiles: the
   baseline (benchmarks/baseline.py), idrules with the in-memory store, idrules with SQLite and
   a commit per event, idrules with SQLite and grouped commits (``commit_every=1000``);
2. **scaling**: the same log against ``--big`` (1M) pre-filled profiles (memory store, baseline,
   SQLite with grouped commits), and the ratio of per-event cost to the 10k run;
3. **stages**: one more idrules run with every stage object of the engine wrapped in timers
   (parse, dialect, proof, fields, attributes, plan with its store reads, apply, transaction,
   serialise), so the split is measured, not guessed (the wrappers add a little: both totals
   are shown);
4. **memory**: RSS and peak RSS around every variant, and with ``--flat N`` a replay of an
   N-event log streamed from disk into a SQLite store, RSS sampled at 10%, 50% and 100%.

Timing: ``time.perf_counter`` around the replay loop only (parsing, deciding, writing each
decision's JSON to /dev/null); pre-filling, log generation and checks are outside. ``--repeat
N`` keeps the best of N runs of each variant. The pre-fill writes the profiles that deciding
the pre-fill identify events would make straight into the store (checked equal by
tests/test_benchmarks.py), so a 1M pre-fill takes seconds, not the length of a 1M replay.

Outcome agreement: the outcome counts of every variant are compared, and (unless
``--no-check``) an untimed lock-step pass compares baseline and idrules event by event.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import inspect
import io
import json
import os
import platform
import pstats
import resource
import shutil
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib import metadata
from itertools import pairwise
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import baseline as baseline_mod
import hotkeys
import processes
import workload

from idrules import Engine, MemoryStore, SqliteStore, load_ruleset
from idrules.events import parse_line
from idrules.replaying import replay as idrules_replay
from idrules.store.base import Changes, Profile, ProfileWrite, Session

HERE = Path(__file__).resolve().parent
TARGETS = {
    "memory_vs_baseline_max": 1.0,
    "sqlite_vs_memory_min": 1 / 3,
    "big_vs_small_max": 1.3,
}


# --------------------------------------------------------------------------------------------
# the machine and memory


def machine() -> dict[str, Any]:
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        mem_kb = 0
    versions = {}
    for dist in ("idrules", "PyJWT", "email-validator", "sqlite-utils", "attrs", "jsonschema"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    try:
        rev = subprocess.run(
            ["git", "-C", str(HERE.parent), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(HERE.parent), "status", "--porcelain", "--", "src", "rules"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.split("\n")
    except OSError:
        rev, dirty = "", []
    return {
        "nproc": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu": model,
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "sqlite": sqlite3.sqlite_version,
        "libraries": versions,
        "git": rev,
        # the working tree measured: files under src/ and rules/ that differ from the commit
        "git_uncommitted": sorted(line[3:] for line in dirty if line.strip()),
    }


def rss_mib() -> float:
    """Current resident set size (VmRSS), MiB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def peak_rss_mib() -> float:
    """The process's peak RSS so far (ru_maxrss, KiB on Linux), MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --------------------------------------------------------------------------------------------
# pre-filled state


def _pid(event_id: str) -> str:
    import hashlib

    return "p_" + hashlib.sha256(event_id.encode()).hexdigest()[:16]


def prefill_changes(pack: str, n: int) -> Iterator[Changes]:
    """The changes deciding the first ``n`` pre-fill identify events makes, without deciding."""
    ts_us = workload.PREFILL_TS * 1_000_000
    # an HMAC over the user id vouches for nothing else: a verified profile's email is no key
    hmac_signed = load_ruleset(pack).verification.method == "hmac"
    for seq, i in enumerate(workload.prefill_indices(n)):
        v = workload.prefilled_profile(pack, i)
        event_id = f"pre-{seq}"
        pid = _pid(event_id)
        profile = Profile(
            id=pid,
            created_by=event_id,
            user_id=v["user_id"],
            user_key=v["user_id"],
            email=v["email"],
            email_key=None if v["verified"] and hmac_signed else v["email"].lower(),
            name=v["name"],
            avatar=v["avatar"],
            verified=v["verified"],
            attributes=v["attributes"],
            last_seen=ts_us,
        )
        yield Changes(event_id, (ProfileWrite(profile),), (Session(v["session"], pid, None),))


def prefill_store(store: Any, pack: str, n: int) -> None:
    """Write ``n`` pre-filled profiles into an idrules store (memory or SQLite)."""
    if isinstance(store, SqliteStore):
        saved = store.commit_every
        store.commit_every = 10_000
        for changes in prefill_changes(pack, n):
            with store.transaction():
                store.apply(changes)
        store.commit()
        store.commit_every = saved
        return
    for changes in prefill_changes(pack, n):
        store.apply(changes)


def prefill_baseline(b: baseline_mod.Baseline, pack: str, n: int) -> None:
    ts = float(workload.PREFILL_TS)
    for seq, i in enumerate(workload.prefill_indices(n)):
        v = workload.prefilled_profile(pack, i)
        b.prefill(f"pre-{seq}", ts, v["session"], v)


class SqliteTemplates:
    """Pre-filled SQLite files, built once per size and copied for each fresh run."""

    def __init__(self, workdir: Path, pack: str) -> None:
        self.workdir = workdir
        self.pack = pack
        self.built: dict[int, Path] = {}
        self.count = 0

    def fresh(self, n: int) -> Path:
        template = self.built.get(n)
        if template is None:
            template = self.workdir / f"template-{self.pack}-{n}.db"
            for suffix in ("", "-wal", "-shm"):
                Path(f"{template}{suffix}").unlink(missing_ok=True)
            store = SqliteStore(template)
            prefill_store(store, self.pack, n)
            store.close()
            self.built[n] = template
        self.count += 1
        path = self.workdir / f"run-{self.pack}-{self.count}.db"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        shutil.copyfile(template, path)
        return path

    def cleanup(self) -> None:
        for path in self.workdir.glob(f"*-{self.pack}-*.db*"):
            path.unlink(missing_ok=True)


# --------------------------------------------------------------------------------------------
# runs


class Sink:
    """Where decisions go while timed: /dev/null, through a text file object like a replay's."""

    def __init__(self) -> None:
        self.handle = open(os.devnull, "w", encoding="utf-8", newline="\n")  # noqa: SIM115

    def close(self) -> None:
        self.handle.close()


def run_baseline(pack: str, lines: list[bytes], prefill: int) -> dict[str, Any]:
    b = baseline_mod.Baseline(pack, workload.SECRET)
    prefill_baseline(b, pack, prefill)
    return _timed(lambda write: b.replay(lines, write), keep=b)


def run_idrules(
    pack: str,
    lines: list[bytes],
    prefill: int,
    store_kind: str,
    templates: SqliteTemplates,
    commit_every: int = 1,
) -> dict[str, Any]:
    if store_kind == "memory":
        store: Any = MemoryStore()
        prefill_store(store, pack, prefill)
        path = None
    else:
        path = templates.fresh(prefill)
        store = SqliteStore(path, commit_every=commit_every)
    engine = Engine(pack, store, secrets=workload.SECRETS)

    def body(write: Callable[[str], object]) -> dict[str, int]:
        summary = idrules_replay(engine, lines, write)
        if isinstance(store, SqliteStore):
            store.commit()  # the last group is part of the work
        return summary.outcomes

    try:
        result = _timed(body, keep=store)
    finally:
        store.close()
        if path is not None:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
    return result


def _timed(body: Callable[[Callable[[str], object]], dict[str, int]], keep: Any) -> dict[str, Any]:
    sink = Sink()
    gc.collect()
    before = rss_mib()
    load = os.getloadavg()[0]
    cpu_started = time.process_time()
    started = time.perf_counter()
    outcomes = body(sink.handle.write)
    seconds = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    after = rss_mib()  # the state (``keep``) is still alive here
    sink.close()
    del keep
    events = sum(outcomes.values())
    return {
        "seconds": seconds,
        "events": events,
        "events_per_s": events / seconds,
        "us_per_event": seconds / events * 1e6,
        # CPU time of this process: less disturbed than wall time by other load on the machine
        "cpu_seconds": cpu,
        "cpu_us_per_event": cpu / events * 1e6,
        "loadavg_1m_before": round(load, 2),
        "outcomes": dict(sorted(outcomes.items())),
        "rss_before_mib": round(before, 1),
        "rss_after_mib": round(after, 1),
        "peak_rss_mib": round(peak_rss_mib(), 1),
    }


def _best(results: list[dict[str, Any]]) -> dict[str, Any]:
    """The fastest run (wall time), with every run's seconds and the least CPU time seen."""
    best = dict(min(results, key=lambda r: r["seconds"]))
    best["runs"] = [round(r["seconds"], 4) for r in results]
    least_cpu = min(r["cpu_seconds"] for r in results)
    best["cpu_seconds"] = least_cpu
    best["cpu_us_per_event"] = least_cpu / best["events"] * 1e6
    return best


# --------------------------------------------------------------------------------------------
# outcome agreement (untimed)


def agreement(pack: str, lines: list[bytes], prefill: int) -> dict[str, Any]:
    """Baseline and idrules (memory store) decided in lock step, event by event."""
    b = baseline_mod.Baseline(pack, workload.SECRET)
    prefill_baseline(b, pack, prefill)
    store = MemoryStore()
    prefill_store(store, pack, prefill)
    engine = Engine(pack, store, secrets=workload.SECRETS)
    outcome_diff = profile_diff = 0
    examples: list[dict[str, Any]] = []
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        ours = engine.decide_line(raw, number)
        theirs = b.decide_line(raw, number)
        if ours.outcome != theirs["outcome"]:
            outcome_diff += 1
        elif ours.profile != theirs["profile"]:
            profile_diff += 1
        else:
            continue
        if len(examples) < 5:
            examples.append(
                {
                    "line": number,
                    "idrules": [ours.outcome, ours.profile, ours.codes],
                    "baseline": [theirs["outcome"], theirs["profile"]],
                }
            )
    return {
        "events": len(lines),
        "outcome_mismatches": outcome_diff,
        "profile_mismatches": profile_diff,
        "examples": examples,
    }


# --------------------------------------------------------------------------------------------
# stage split


class _Timed:
    """A stage object whose listed methods add their wall time to ``acc[stage]``."""

    def __init__(self, target: Any, methods: dict[str, str], acc: Counter[str]) -> None:
        self._target = target
        for method, stage in methods.items():
            setattr(self, method, _wrap(getattr(target, method), stage, acc))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target, name)


def _wrap(func: Callable[..., Any], stage: str, acc: Counter[str]) -> Callable[..., Any]:
    clock = time.perf_counter

    def timed(*args: Any, **kwargs: Any) -> Any:
        started = clock()
        try:
            return func(*args, **kwargs)
        finally:
            acc[stage] += clock() - started

    return timed


class _TimedStore(_Timed):
    def __init__(self, target: Any, acc: Counter[str]) -> None:
        reads = {m: "store_read" for m in ("profile", "by_user_key", "by_email_key", "session")}
        reads["sessions_of"] = "store_read"
        reads["is_decided"] = "dup_check"
        reads["apply"] = "apply"
        super().__init__(target, reads, acc)
        self._acc = acc

    @contextmanager
    def transaction(self) -> Iterator[None]:
        clock = time.perf_counter
        started = clock()
        manager = self._target.transaction()
        manager.__enter__()
        self._acc["transaction"] += clock() - started
        try:
            yield
        except BaseException:
            manager.__exit__(*sys.exc_info())
            raise
        started = clock()
        manager.__exit__(None, None, None)
        self._acc["transaction"] += clock() - started


def stage_split(
    pack: str,
    lines: list[bytes],
    prefill: int,
    store_kind: str,
    templates: SqliteTemplates,
    commit_every: int = 1,
) -> dict[str, Any]:
    """One instrumented idrules run: seconds per stage (µs per event)."""
    acc: Counter[str] = Counter()
    if store_kind == "memory":
        store: Any = MemoryStore()
        prefill_store(store, pack, prefill)
        path = None
    else:
        path = templates.fresh(prefill)
        store = SqliteStore(path, commit_every=commit_every)
    engine = Engine(pack, store, secrets=workload.SECRETS)
    intake = engine._intake  # the claim's stages, each timed
    intake._dialect = _Timed(  # type: ignore[assignment]
        intake._dialect, {"map": "dialect", "from_claims": "dialect"}, acc
    )
    intake._prover = _Timed(intake._prover, {"verify": "proof"}, acc)  # type: ignore[assignment]
    intake._fields = _Timed(  # type: ignore[assignment]
        intake._fields,
        {"check": "fields", "check_email": "fields", "carries_identifier": "fields"},
        acc,
    )
    intake._attributes = _Timed(  # type: ignore[assignment]
        intake._attributes, {"filter": "attributes"}, acc
    )
    plans = dict.fromkeys(("identify", "track", "logout", "duplicate", "invalid"), "plan")
    engine._planner = _Timed(engine._planner, plans, acc)  # type: ignore[assignment]
    engine.store = _TimedStore(store, acc)  # type: ignore[assignment]
    sink = Sink()
    write = sink.handle.write
    clock = time.perf_counter
    journal = _journal(engine, write, acc)  # the replay's sealing writer, when idrules has one
    gc.collect()
    started = clock()
    count = 0
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        t0 = clock()
        event = parse_line(raw.rstrip(b"\r\n"), number)
        t1 = clock()
        if journal is not None:
            engine.decide(event, journal=journal)  # type: ignore[call-arg]
            t2 = t3 = clock()
        else:
            decision = engine.decide(event)
            t2 = clock()
            write(decision.to_json() + "\n")
            t3 = clock()
        acc["parse"] += t1 - t0
        acc["decide"] += t2 - t1
        acc["serialise"] += t3 - t2
        count += 1
    if isinstance(store, SqliteStore):
        t0 = clock()
        store.commit()
        acc["transaction"] += clock() - t0
    total = clock() - started
    sink.close()
    store.close()
    if path is not None:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    us = {k: v / count * 1e6 for k, v in acc.items()}
    inside = sum(
        us.get(k, 0.0)
        for k in (
            "sealed",
            "dialect",
            "proof",
            "fields",
            "attributes",
            "plan",
            "dup_check",
            "apply",
            "transaction",
        )
    )
    split = {
        "parse": us.get("parse", 0.0),
        "dup_check": us.get("dup_check", 0.0),
        "dialect": us.get("dialect", 0.0),
        "proof": us.get("proof", 0.0),
        "fields": us.get("fields", 0.0),
        "attributes": us.get("attributes", 0.0),
        "plan (logic)": us.get("plan", 0.0) - us.get("store_read", 0.0),
        "plan (store reads)": us.get("store_read", 0.0),
        "apply": us.get("apply", 0.0),
        "transaction": us.get("transaction", 0.0),
        "serialise": us.get("serialise", 0.0) + us.get("sealed", 0.0),
        "engine glue + timers": us.get("decide", 0.0) - inside,
    }
    loop = total / count * 1e6 - sum(split.values())
    split["replay loop"] = loop
    return {
        "store": store_kind,
        "events": count,
        "us_per_event": total / count * 1e6,
        "split": split,
    }


def _journal(engine: Engine, write: Callable[[str], object], acc: Counter[str]) -> Any:
    """idrules' replay journal (serialises, hash-chains and writes each decision inside
    ``Engine.decide``) with its ``seal`` timed as the serialise stage; None on versions
    without one (then the harness serialises after ``decide``)."""
    try:
        from idrules.audit import Journal
    except ImportError:
        return None
    if "journal" not in inspect.signature(engine.decide).parameters:
        return None
    journal = Journal(write, engine.ruleset.sha256, None)
    journal.seal = _wrap(journal.seal, "sealed", acc)
    return journal


# --------------------------------------------------------------------------------------------
# flat memory on a long replay with a store


def flat_memory(
    pack: str, events: int, seed: int, prefill: int, workdir: Path, commit_every: int
) -> dict[str, Any]:
    """Replay an ``events``-line log streamed from disk into SQLite; RSS at every 10%."""
    log = workdir / f"flat-{pack}-{events}-{seed}.jsonl"
    if not log.exists():
        tmp = log.with_suffix(".part")
        with open(tmp, "w", encoding="utf-8") as out:
            for line in workload.LogGenerator(pack, seed).lines(events):
                out.write(line + "\n")
        tmp.rename(log)
    gc.collect()
    db = workdir / f"flat-{pack}.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    store = SqliteStore(db, commit_every=commit_every)
    prefill_store(store, pack, prefill)
    engine = Engine(pack, store, secrets=workload.SECRETS)
    marks = {max(1, events * k // 10): f"{k * 10}%" for k in range(1, 11)}
    samples: dict[str, float] = {}
    times: dict[str, float] = {}
    sink = Sink()
    start_rss = rss_mib()
    started = time.perf_counter()

    def sampled() -> Iterator[bytes]:
        with open(log, "rb") as handle:
            for count, raw in enumerate(handle, start=1):
                yield raw
                if count in marks:
                    samples[marks[count]] = round(rss_mib(), 1)
                    times[marks[count]] = round(time.perf_counter() - started, 1)

    summary = idrules_replay(engine, sampled(), sink.handle.write)
    store.close()
    sink.close()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    growth = samples.get("100%", 0.0) - samples.get("10%", 0.0)
    late = samples.get("100%", 0.0) - samples.get("50%", 0.0)
    return {
        "events": summary.events,
        "commit_every": commit_every,
        "seconds": round(summary.seconds, 2),
        "events_per_s": round(summary.events / summary.seconds, 1),
        "rss_start_mib": round(start_rss, 1),
        "rss_mib": samples,
        "elapsed_s": times,
        "growth_10_to_100_mib": round(growth, 1),
        "growth_50_to_100_mib": round(late, 1),
        # the SQLite page cache is 64 MiB (cache_size=-65536): growth within it is not a leak
        "flat": growth <= 64.0,
    }


# --------------------------------------------------------------------------------------------
# profile


def profile_run(
    pack: str, lines: list[bytes], prefill: int, tool: str, out_dir: Path
) -> dict[str, Any]:
    store = MemoryStore()
    prefill_store(store, pack, prefill)
    engine = Engine(pack, store, secrets=workload.SECRETS)
    sink = Sink()
    out_dir.mkdir(parents=True, exist_ok=True)
    if tool == "pyinstrument":
        from pyinstrument import Profiler  # type: ignore[import-not-found]

        profiler = Profiler(interval=0.0002)
        profiler.start()
        idrules_replay(engine, lines, sink.handle.write)
        profiler.stop()
        text = profiler.output_text(unicode=False, color=False, show_all=False)
        path = out_dir / f"profile-{pack}-pyinstrument.txt"
        path.write_text(text)
        return {"tool": tool, "file": str(path)}
    prof = cProfile.Profile()
    prof.enable()
    idrules_replay(engine, lines, sink.handle.write)
    prof.disable()
    path = out_dir / f"profile-{pack}.pstats"
    prof.dump_stats(path)
    buf = io.StringIO()
    stats = pstats.Stats(prof, stream=buf).strip_dirs()
    stats.sort_stats("tottime").print_stats(30)
    stats.sort_stats("cumulative").print_stats(40)
    text_path = out_dir / f"profile-{pack}-cprofile.txt"
    text_path.write_text(buf.getvalue())
    return {"tool": tool, "file": str(text_path), "pstats": str(path)}


# --------------------------------------------------------------------------------------------
# hot keys: per-event cost of events that share one match key, against the ordinary log

HOT_TARGET = 2.0  # a hot-key event may cost at most this many ordinary events
HOT_STORES = ("memory", "sqlite")


def run_marked(
    pack: str,
    lines: list[bytes],
    prefill: int,
    store_kind: str,
    templates: SqliteTemplates,
    tail_start: int,
) -> dict[str, Any]:
    """One idrules replay (memory, or SQLite with a commit per event) of ``lines``, timed as a
    whole, per tenth of the log and over its tail (``lines[tail_start:]``).

    The clocks are read as the replay pulls a boundary line, i.e. once every line before it
    has been decided, written and committed; the last reading follows the final commit."""
    if store_kind == "memory":
        store: Any = MemoryStore()
        prefill_store(store, pack, prefill)
        path = None
    else:
        path = templates.fresh(prefill)
        store = SqliteStore(path, commit_every=1)
    engine = Engine(pack, store, secrets=workload.SECRETS)
    total = len(lines)
    deciles = [total * k // 10 for k in range(11)]
    wanted = {*deciles[:-1], tail_start}
    clock, cpu = time.perf_counter, time.process_time
    stamps: dict[int, tuple[float, float]] = {}

    def marked() -> Iterator[bytes]:
        for index, raw in enumerate(lines):
            if index in wanted:
                stamps[index] = (clock(), cpu())
            yield raw

    sink = Sink()
    gc.collect()
    load = os.getloadavg()[0]
    before = rss_mib()
    try:
        summary = idrules_replay(engine, marked(), sink.handle.write)
        if isinstance(store, SqliteStore):
            store.commit()
        stamps[total] = (clock(), cpu())
        after = rss_mib()
    finally:
        sink.close()
        store.close()
        if path is not None:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)

    def span(a: int, b: int) -> dict[str, Any]:
        events = max(1, b - a)
        wall = stamps[b][0] - stamps[a][0]
        used = stamps[b][1] - stamps[a][1]
        return {
            "events": b - a,
            "seconds": wall,
            "us_per_event": wall / events * 1e6,
            "cpu_seconds": used,
            "cpu_us_per_event": used / events * 1e6,
        }

    whole = span(0, total)
    return {
        **whole,
        "store": store_kind,
        "events_per_s": whole["events"] / whole["seconds"] if whole["seconds"] else 0.0,
        "tail": span(tail_start, total),
        # µs per event in each tenth of the log: growth shows as a rising curve
        "curve_us": [round(span(a, b)["us_per_event"], 2) for a, b in pairwise(deciles) if b > a],
        "outcomes": dict(sorted(summary.outcomes.items())),
        "loadavg_1m_before": round(load, 2),
        "rss_before_mib": round(before, 1),
        "rss_after_mib": round(after, 1),
    }


def _best_tail(results: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the fastest tail; every run's tail seconds kept."""
    best = dict(min(results, key=lambda r: r["tail"]["seconds"]))
    best["runs_tail_s"] = [round(r["tail"]["seconds"], 4) for r in results]
    return best


def hot_keys(args: argparse.Namespace) -> dict[str, Any]:
    """The hot-key mode: each part of benchmarks/hotkeys.py in every store, and the ordinary
    log of the part's pack in the same store, pre-filled alike."""
    parts = [p for p in args.parts.split(",") if p]
    for part in parts:
        if part not in hotkeys.PARTS:
            raise SystemExit(f"unknown hot-key part {part!r} (one of {', '.join(hotkeys.PARTS)})")
    stores = [s for s in args.stores.split(",") if s]
    for kind in stores:
        if kind not in HOT_STORES:
            raise SystemExit(f"unknown store {kind!r} (one of {', '.join(HOT_STORES)})")
    n = hotkeys.size(args.scale)
    events = args.events if args.events is not None else max(5_000, round(20_000 * args.scale))
    log = _progress
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {
        "mode": "hot-keys",
        "machine": machine(),
        "params": {
            "scale": args.scale,
            "n": n,
            "seed": args.seed,
            "prefill": args.prefill,
            "ordinary_events": events,
            "repeat": args.repeat,
            "warmup": args.warmup,
            "parts": parts,
            "stores": stores,
            "tail": hotkeys.TAIL,
            "target_ratio": HOT_TARGET,
        },
        "ordinary": {},
        "hot": {},
    }
    packs = list(dict.fromkeys(hotkeys.PACK[part] for part in parts))
    for pack in packs:
        templates = SqliteTemplates(workdir, pack)
        try:
            lines = [line.encode() for line in workload.LogGenerator(pack, args.seed).lines(events)]
            if args.warmup:
                run_idrules(pack, lines[: args.warmup], args.prefill, "memory", templates)
            ordinary: dict[str, Any] = {}
            for kind in stores:
                runs = [
                    run_marked(pack, lines, args.prefill, kind, templates, len(lines) * 9 // 10)
                    for _ in range(args.repeat)
                ]
                ordinary[kind] = _best(runs)
                log(
                    f"ordinary {pack} {kind}: {ordinary[kind]['us_per_event']:.1f} us/event "
                    f"({len(lines):,} events)"
                )
            result["ordinary"][pack] = ordinary
            for part in [p for p in parts if hotkeys.PACK[p] == pack]:
                hot = hotkeys.generate(part, args.scale, args.seed)
                raw = [line.encode() for line in hot.lines]
                entry: dict[str, Any] = {
                    "pack": hot.pack,
                    "describe": hot.describe,
                    "events": len(raw),
                    "tail_start": hot.tail_start,
                    "tail_events": hot.tail_events,
                    "expected_outcomes": hot.expected,
                    "stores": {},
                }
                cold = hotkeys.generate(part, args.scale, args.seed, spread=True)
                cold_raw = [line.encode() for line in cold.lines]
                for kind in stores:
                    started = time.perf_counter()
                    runs = [
                        run_marked(pack, raw, args.prefill, kind, templates, hot.tail_start)
                        for _ in range(args.repeat)
                    ]
                    best = _best_tail(runs)
                    best["outcomes_as_expected"] = best["outcomes"] == dict(
                        sorted(hot.expected.items())
                    )
                    control = _best_tail(
                        [
                            run_marked(
                                pack, cold_raw, args.prefill, kind, templates, cold.tail_start
                            )
                            for _ in range(args.repeat)
                        ]
                    )
                    best["control"] = {
                        "tail": control["tail"],
                        "curve_us": control["curve_us"],
                        "outcomes_as_expected": control["outcomes"]
                        == dict(sorted(cold.expected.items())),
                    }
                    entry["stores"][kind] = best
                    log(
                        f"hot {part} {kind}: tail {best['tail']['us_per_event']:.1f} us/event, "
                        f"{len(raw):,} events in {time.perf_counter() - started:.1f}s"
                    )
                result["hot"][part] = entry
        finally:
            templates.cleanup()
    result["targets"] = hot_targets(result)
    result["peak_rss_mib"] = round(peak_rss_mib(), 1)
    return result


def hot_targets(result: dict[str, Any]) -> dict[str, Any]:
    """Per part and store: the tail's per-event cost over the ordinary log's, target <= 2."""
    target = result["params"].get("target_ratio", HOT_TARGET)
    out: dict[str, Any] = {}
    for part, entry in result["hot"].items():
        ordinary = result["ordinary"][entry["pack"]]
        for kind, run in entry["stores"].items():
            base = ordinary[kind]
            ratio = run["tail"]["us_per_event"] / base["us_per_event"]
            cpu_ratio = run["tail"]["cpu_us_per_event"] / base["cpu_us_per_event"]
            control = run.get("control")
            out[f"{part} {kind}"] = {
                "part": part,
                "store": kind,
                "hot_us": run["tail"]["us_per_event"],
                "ordinary_us": base["us_per_event"],
                # the same events with the key spread: what sharing the key alone costs
                "control_us": control["tail"]["us_per_event"] if control else None,
                "control_value": (
                    run["tail"]["us_per_event"] / control["tail"]["us_per_event"]
                    if control
                    else None
                ),
                "value": ratio,
                "cpu_value": cpu_ratio,
                "target": f"<= {target:g}",
                "verdict": "met" if ratio <= target else "NOT met",
            }
    return out


def hot_table(result: dict[str, Any]) -> str:
    out = _machine_lines(result["machine"])
    p = result["params"]
    out.append(
        f"hot keys: scale {p['scale']:g} (n = {p['n']:,}), seed {p['seed']}, each run pre-filled "
        f"with {p['prefill']:,} profiles; ordinary log {p['ordinary_events']:,} events of the "
        f"part's pack; best of {p['repeat']}; SQLite commits every event"
    )
    for part, entry in result["hot"].items():
        tail = (
            f"the last {entry['tail_events']:,} events"
            if part != "inline"
            else f"the {entry['tail_events']:,} identifies"
        )
        out.append(f"  {part:<8}({entry['pack']}) {entry['describe']}; tail: {tail}")
    out.append("")
    target = p.get("target_ratio", HOT_TARGET)
    header = (
        f"{'part':<8}{'pack':<11}{'store':<8}{'events':>8}{'seconds':>9}{'first 10%':>11}"
        f"{'tail':>10}{'ordinary':>10}{'hot/ord':>9}{'(cpu)':>8}{'control':>9}{'hot/ctl':>9}"
        f"{'load':>6}  target <= {target:g}x"
    )
    out.append(header)
    out.append("-" * len(header))
    verdicts = result.get("targets", {})
    unexpected: list[str] = []
    for part, entry in result["hot"].items():
        for kind, run in entry["stores"].items():
            v = verdicts[f"{part} {kind}"]
            out.append(
                f"{part:<8}{entry['pack']:<11}{kind:<8}{run['events']:>8,}{run['seconds']:>9.2f}"
                f"{run['curve_us'][0]:>11.1f}{v['hot_us']:>10.1f}{v['ordinary_us']:>10.1f}"
                f"{v['value']:>9.2f}{v['cpu_value']:>8.2f}"
                + (
                    f"{v['control_us']:>9.1f}{v['control_value']:>9.2f}"
                    if v.get("control_us")
                    else f"{'-':>9}{'-':>9}"
                )
                + f"{run.get('loadavg_1m_before', 0.0):>6.1f}  {v['verdict']}"
            )
            if not run.get("outcomes_as_expected", True):
                unexpected.append(
                    f"{part} {kind}: {run['outcomes']} (expected {entry['expected_outcomes']})"
                )
    out.append(
        "(us per event, wall: first 10% of the part's events, its tail, and the ordinary log "
        "of the same pack and store on average; hot/ord: tail / ordinary, (cpu): the same "
        "from CPU times; control: the tail of the same part with the key spread over distinct "
        "values, hot/ctl: what sharing the key alone costs; load: 1-min load average before "
        "the run; the target is met when "
        f"the tail costs at most {target:g}x an ordinary event)"
    )
    out.append(
        "ordinary logs: "
        + ", ".join(
            f"{pack} {kind} {run['us_per_event']:.1f} us/event (cpu "
            f"{run['cpu_us_per_event']:.1f}, load {run.get('loadavg_1m_before', 0.0):.1f})"
            for pack, runs in result["ordinary"].items()
            for kind, run in runs.items()
        )
    )
    out.append("")
    out.append("per-event cost in each tenth of the part (us, wall):")
    for part, entry in result["hot"].items():
        for kind, run in entry["stores"].items():
            curve = " ".join(f"{us:.0f}" for us in run["curve_us"])
            out.append(f"  {part:<8}{kind:<8}{curve}")
    out.append("")
    out.append(
        "outcomes as generated in every run"
        if not unexpected
        else "UNEXPECTED outcomes (the part did not do what it should):"
    )
    out.extend(f"  {line}" for line in unexpected)
    return "\n".join(out)


def _machine_lines(m: dict[str, Any]) -> list[str]:
    out = [
        f"machine: {m['nproc']} cpu ({m['cpu']}), {m['memory_gib']} GiB, "
        f"{m['implementation']} {m['python']}, SQLite {m['sqlite']}, {m['platform']}"
    ]
    libs = ", ".join(f"{k} {v}" for k, v in m["libraries"].items())
    out.append(f"libraries: {libs}; idrules git {m['git']}")
    if m.get("git_uncommitted"):
        out.append("uncommitted in src/ and rules/: " + ", ".join(m["git_uncommitted"]))
    return out


# --------------------------------------------------------------------------------------------
# report


def table(result: dict[str, Any]) -> str:
    out = _machine_lines(result["machine"])
    p = result["params"]
    out.append(
        f"pack {p['pack']}, {p['events']:,} events (seed {p['seed']}), pre-filled "
        f"{p['prefill']:,} profiles, best of {p['repeat']}"
    )
    out.append("")
    variants = result.get("variants", {})
    base = variants.get("baseline")
    mem = variants.get("idrules-memory")
    header = (
        f"{'variant':<26}{'events/s':>10}{'us/event':>10}{'cpu us':>8}{'x baseline':>11}"
        f"{'(cpu)':>7}{'x memory':>10}{'(cpu)':>7}{'RSS MiB':>9}{'peak MiB':>10}{'load':>6}"
    )
    out.append(header)
    out.append("-" * len(header))
    for name, r in variants.items():
        vs_base = r["seconds"] / base["seconds"] if base and name != "baseline" else None
        vs_mem = (
            r["events_per_s"] / mem["events_per_s"]
            if mem and name.startswith("idrules-sql")
            else None
        )
        cpu_base = r["cpu_seconds"] / base["cpu_seconds"] if base and name != "baseline" else None
        cpu_mem = (
            mem["cpu_seconds"] / r["cpu_seconds"]
            if mem and name.startswith("idrules-sql")
            else None
        )
        out.append(
            f"{name:<26}{r['events_per_s']:>10,.0f}{r['us_per_event']:>10.1f}"
            f"{r['cpu_us_per_event']:>8.1f}{_fmt(vs_base):>11}{_fmt(cpu_base):>7}"
            f"{_fmt(vs_mem):>10}{_fmt(cpu_mem):>7}"
            f"{r['rss_after_mib'] - r['rss_before_mib']:>+9.0f}{r['peak_rss_mib']:>10.0f}"
            f"{r['loadavg_1m_before']:>6.1f}"
        )
    out.append(
        "(us/event: wall; cpu us: this process's CPU time (user+sys) per event; x baseline: "
        "idrules time / baseline time, < 1.0 = idrules faster; x memory: SQLite rate / "
        "in-memory rate; (cpu): the same from CPU times; RSS: growth during the replay, state "
        "alive; peak: process so far; load: 1-min load average before the run, on a 2-core "
        "machine shared with other jobs)"
    )
    scaling = result.get("scaling")
    if scaling:
        out.append("")
        out.append(f"per-event cost, {p['prefill']:,} vs {scaling['big']:,} pre-filled profiles:")
        for name, s in scaling["variants"].items():
            out.append(
                f"  {name:<24}{s['small_us']:>8.1f} us  {s['big_us']:>8.1f} us  "
                f"ratio {s['ratio']:.2f}  "
                f"(cpu {s['small_cpu_us']:.1f} -> {s['big_cpu_us']:.1f} us, "
                f"ratio {s['cpu_ratio']:.2f}; RSS after {s['big_rss_mib']:.0f} MiB)"
            )
    stages = result.get("stages")
    if stages:
        for split in stages:
            out.append("")
            out.append(
                f"stage split, idrules {split['store']} ({split['us_per_event']:.1f} us/event "
                f"instrumented):"
            )
            total = split["us_per_event"]
            for stage, us in split["split"].items():
                out.append(f"  {stage:<22}{us:>8.2f} us  {us / total * 100:>5.1f}%")
    flat = result.get("flat")
    if flat:
        out.append("")
        out.append(
            f"flat memory: {flat['events']:,} events into SQLite (commit_every "
            f"{flat['commit_every']}, a fresh process), {flat['events_per_s']:,.0f}/s; "
            f"peak {flat.get('peak_rss_mib', '?')} MiB; RSS MiB at start "
            f"{flat['rss_start_mib']}, "
            + ", ".join(f"{k} {v}" for k, v in flat["rss_mib"].items())
            + f"; growth 10%->100% {flat['growth_10_to_100_mib']} MiB, 50%->100% "
            + f"{flat.get('growth_50_to_100_mib', '?')} MiB: "
            + ("flat" if flat["flat"] else "NOT flat")
        )
    agree = result.get("agreement")
    if agree:
        out.append("")
        out.append(
            f"agreement baseline vs idrules, event by event: {agree['outcome_mismatches']} outcome "
            f"and {agree['profile_mismatches']} profile mismatches in {agree['events']:,} events"
        )
    counts = {k: v["outcomes"] for k, v in variants.items()}
    if not counts:
        return "\n".join(out)
    same = len({json.dumps(c, sort_keys=True) for c in counts.values()}) == 1
    first = next(iter(counts.values()))
    out.append(
        f"outcome counts {'identical in every variant' if same else 'DIFFER'}: "
        + ", ".join(f"{k} {v}" for k, v in first.items())
    )
    if not same:
        for name, c in counts.items():
            out.append(f"  {name}: {c}")
    verdicts = result.get("targets")
    if verdicts:
        out.append("")
        out.append("targets:")
        for name, v in verdicts.items():
            out.append(f"  {name:<52}{v['value']:>8.3f}  {v['target']:<9}{v['verdict']}")
    return "\n".join(out)


def summary(results: list[dict[str, Any]]) -> str:
    """One line per saved result (pack): the headline ratios, wall time (CPU time); a
    hot-key result: one line, its ratios to the ordinary log."""
    hot = [r for r in results if r.get("mode") == "hot-keys"]
    results = [r for r in results if r.get("mode") != "hot-keys"]

    def pair(wall: float | None, cpu: float | None) -> str:
        return "-" if wall is None or cpu is None else f"{wall:.2f} ({cpu:.2f})"

    head = (
        f"{'pack':<10}{'events':>9}{'baseline/s':>11}{'memory/s':>10}{'mem/base':>14}"
        f"{'sql-event/s':>12}{'/memory':>14}{'sql-group/s':>12}{'/memory':>14}"
        f"{'mem 1M/10k':>14}{'sql 1M/10k':>14}{'load':>10}"
    )
    out = [head, "-" * len(head)]
    for r in results:
        v = r["variants"]
        base, mem = v.get("baseline"), v.get("idrules-memory")
        per, grp = v.get("idrules-sqlite-per-event"), v.get("idrules-sqlite-grouped")
        big = r.get("scaling", {}).get("variants", {})
        mb, sb = big.get("idrules-memory"), big.get("idrules-sqlite-grouped")

        def rate(x: dict[str, Any] | None) -> str:
            return "-" if x is None else f"{x['events_per_s']:,.0f}"

        def vs(x: dict[str, Any] | None, y: dict[str, Any] | None, inverse: bool) -> str:
            if x is None or y is None:
                return "-"
            if inverse:  # a rate fraction: y's time / x's time
                return pair(y["seconds"] / x["seconds"], y["cpu_seconds"] / x["cpu_seconds"])
            return pair(x["seconds"] / y["seconds"], x["cpu_seconds"] / y["cpu_seconds"])

        loads = [x["loadavg_1m_before"] for x in v.values()]
        out.append(
            f"{r['params']['pack']:<10}{r['params']['events']:>9,}{rate(base):>11}{rate(mem):>10}"
            f"{vs(mem, base, False):>14}{rate(per):>12}{vs(per, mem, True):>14}"
            f"{rate(grp):>12}{vs(grp, mem, True):>14}"
            f"{pair(mb and mb['ratio'], mb and mb['cpu_ratio']):>14}"
            f"{pair(sb and sb['ratio'], sb and sb['cpu_ratio']):>14}"
            f"{min(loads):>5.1f}-{max(loads):<4.1f}"
        )
    out.append(
        "(ratios: wall time, and CPU time in brackets; mem/base: idrules in memory time / "
        "baseline time, target <= 1.0; /memory: SQLite rate / in-memory rate, target >= 0.33; "
        "1M/10k: per-event cost with 1M vs 10k pre-filled profiles, target <= 1.3; load: 1-min "
        "load average before the runs)"
    )
    for r in hot:
        verdicts = hot_targets(r)
        out.append(
            f"hot keys, scale {r['params']['scale']:g} (hot/ordinary per event, target "
            f"<= {r['params'].get('target_ratio', HOT_TARGET):g}): "
            + ", ".join(f"{k} {v['value']:.2f} {v['verdict']}" for k, v in verdicts.items())
        )
    return "\n".join(out)


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


def targets(result: dict[str, Any]) -> dict[str, Any]:
    v = result.get("variants", {})
    out: dict[str, Any] = {}

    def add(name: str, value: float, target: str, ok: bool) -> None:
        out[name] = {"value": value, "target": target, "verdict": "met" if ok else "NOT met"}

    if "baseline" in v and "idrules-memory" in v:
        ratio = v["idrules-memory"]["seconds"] / v["baseline"]["seconds"]
        add("idrules memory / baseline time", ratio, "<= 1.0", ratio <= 1.0)
        ratio = v["idrules-memory"]["cpu_seconds"] / v["baseline"]["cpu_seconds"]
        add("idrules memory / baseline CPU time", ratio, "<= 1.0", ratio <= 1.0)
    for name in ("idrules-sqlite-per-event", "idrules-sqlite-grouped"):
        if name in v and "idrules-memory" in v:
            frac = v[name]["events_per_s"] / v["idrules-memory"]["events_per_s"]
            add(f"{name} rate / memory rate", frac, ">= 0.333", frac >= 1 / 3)
            frac = v["idrules-memory"]["cpu_seconds"] / v[name]["cpu_seconds"]
            add(f"{name} rate / memory rate (CPU)", frac, ">= 0.333", frac >= 1 / 3)
    scaling = result.get("scaling")
    if scaling:
        for name, s in scaling["variants"].items():
            if name.startswith("idrules"):
                add(f"{name} cost 1M / 10k", s["ratio"], "<= 1.3", s["ratio"] <= 1.3)
                ratio = s["cpu_ratio"]
                add(f"{name} cost 1M / 10k (CPU)", ratio, "<= 1.3", ratio <= 1.3)
    flat = result.get("flat")
    if flat:
        add("flat RSS growth 10%->100% (MiB)", flat["growth_10_to_100_mib"], "<= 64", flat["flat"])
    return out


# --------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--pack",
        choices=workload.PACKS,
        help="the in-process comparison of one pack (without it: --lean for every pack)",
    )
    parser.add_argument(
        "--events",
        type=int,
        help="events in the log (100,000; with --hot-keys: the ordinary log, "
        "max(5,000, 20,000 x scale))",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--prefill", type=int, default=10_000, help="profiles before each run")
    parser.add_argument(
        "--big", type=int, default=1_000_000, help="pre-filled profiles for scaling (0: skip)"
    )
    parser.add_argument(
        "--big-variants",
        default="baseline,idrules-memory,idrules-sqlite-grouped",
        help="comma list for the scaling runs (also: idrules-sqlite-per-event)",
    )
    parser.add_argument("--repeat", type=int, default=1, help="best of N runs per variant")
    parser.add_argument(
        "--warmup", type=int, default=3000, help="untimed events decided first by each engine"
    )
    parser.add_argument(
        "--big-repeat", type=int, default=1, help="best of N runs for the scaling runs"
    )
    parser.add_argument("--commit-every", type=int, default=1000, help="grouped commit size")
    parser.add_argument(
        "--variants",
        default="baseline,idrules-memory,idrules-sqlite-per-event,idrules-sqlite-grouped",
    )
    parser.add_argument("--no-stages", action="store_true", help="skip the stage split")
    parser.add_argument("--stage-stores", default="memory,sqlite", help="stores to split by stage")
    parser.add_argument("--no-check", action="store_true", help="skip the event-by-event check")
    parser.add_argument(
        "--flat", type=int, default=0, metavar="N", help="also replay N events into SQLite"
    )
    parser.add_argument("--flat-commit-every", type=int, default=1)
    parser.add_argument("--flat-child", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--profile", choices=("cprofile", "pyinstrument"))
    parser.add_argument("--workdir", default=str(HERE / "out"), help="SQLite files, logs")
    parser.add_argument("--json", dest="json_out", help="write the figures as JSON here")
    hot_args = parser.add_argument_group("hot keys (--hot-keys; benchmarks/hotkeys.py)")
    hot_args.add_argument(
        "--hot-keys",
        action="store_true",
        help="per-event cost of events sharing one match key vs the ordinary log",
    )
    hot_args.add_argument("--scale", type=float, default=1.0, help="1.0: n = 10,000 (hotkeys.py)")
    hot_args.add_argument("--parts", default=",".join(hotkeys.PARTS), help="comma list of parts")
    hot_args.add_argument(
        "--stores", default=",".join(HOT_STORES), help="memory, sqlite (a commit per event)"
    )
    lean_args = parser.add_argument_group(
        "the lean resolver (the default without --pack; benchmarks/processes.py)"
    )
    lean_args.add_argument(
        "--lean",
        action="store_true",
        help="whole processes vs benchmarks/lean.py (every pack, or --pack's)",
    )
    lean_args.add_argument(
        "--count-events",
        type=int,
        default=20_000,
        help="events replayed in-process to count SQLite statements",
    )
    parser.add_argument("--from-json", help="print the table of a saved JSON result and exit")
    parser.add_argument(
        "--summary", nargs="+", metavar="JSON", help="one headline line per saved result; exit"
    )
    args = parser.parse_args(argv)
    if args.summary:
        print(summary([json.loads(Path(f).read_text()) for f in args.summary]))
        return 0
    if args.from_json:
        saved = json.loads(Path(args.from_json).read_text())
        if saved.get("mode") == "lean":
            print(processes.table(saved))
            return 0
        if saved.get("mode") == "hot-keys":
            saved["targets"] = hot_targets(saved)
            print(hot_table(saved))
            return 0
        saved["targets"] = targets(saved)
        print(table(saved))
        return 0
    if args.hot_keys:
        if args.pack is not None:
            parser.error("--pack does not apply to --hot-keys: each part has its pack")
        hot = hot_keys(args)
        print(hot_table(hot))
        if args.json_out:
            Path(args.json_out).write_text(json.dumps(hot, indent=2) + "\n")
        return 0
    if args.events is None:
        args.events = 100_000
    if args.lean or (args.pack is None and not args.flat_child):
        packs = [args.pack] if args.pack else list(workload.PACKS)
        lean = processes.compare(
            packs,
            args.events,
            args.seed,
            args.repeat,
            args.commit_every,
            Path(args.workdir),
            args.count_events,
            _progress,
        )
        lean["mode"] = "lean"
        lean["machine"] = machine()
        print(processes.table(lean))
        if args.json_out:
            Path(args.json_out).write_text(json.dumps(lean, indent=2) + "\n")
        return 0
    if args.flat_child:
        flat = flat_memory(
            args.pack,
            args.flat_child,
            args.seed,
            args.prefill,
            Path(args.workdir),
            args.flat_commit_every,
        )
        flat["peak_rss_mib"] = round(peak_rss_mib(), 1)
        print(json.dumps(flat))
        return 0
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    pack = args.pack
    result: dict[str, Any] = {
        "machine": machine(),
        "params": {
            "pack": pack,
            "events": args.events,
            "seed": args.seed,
            "prefill": args.prefill,
            "repeat": args.repeat,
            "commit_every": args.commit_every,
            "warmup": args.warmup,
        },
    }
    log = _progress
    started = time.perf_counter()
    lines = [line.encode() for line in workload.LogGenerator(pack, args.seed).lines(args.events)]
    result["params"]["log_bytes"] = sum(len(line) + 1 for line in lines)
    log(f"generated {len(lines):,} events in {time.perf_counter() - started:.1f}s")
    templates = SqliteTemplates(workdir, pack)
    try:
        if args.warmup:  # imports, lazy tables and caches of the libraries, allocator arenas
            head = lines[: args.warmup]
            run_baseline(pack, head, args.prefill)
            run_idrules(pack, head, args.prefill, "memory", templates)
            log(f"warmed up on {len(head):,} events")
        # repeats go round-robin over the variants, so a burst of other load on the machine
        # hits them alike; each variant keeps its best run
        names = [v for v in args.variants.split(",") if v]
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
        for round_ in range(args.repeat):
            for name in names:
                runs[name].append(
                    _variant(name, pack, lines, args.prefill, templates, args.commit_every)()
                )
                log(f"{name} #{round_ + 1}: {runs[name][-1]['events_per_s']:,.0f} events/s")
        variants = {name: _best(results) for name, results in runs.items()}
        result["variants"] = variants

        if args.big:
            scaling: dict[str, Any] = {"big": args.big, "variants": {}}
            big_names = [v for v in args.big_variants.split(",") if v and v in variants]
            big_runs: dict[str, list[dict[str, Any]]] = {name: [] for name in big_names}
            for round_ in range(args.big_repeat):
                for name in big_names:
                    gc.collect()
                    big_runs[name].append(
                        _variant(name, pack, lines, args.big, templates, args.commit_every)()
                    )
                    rate = big_runs[name][-1]["events_per_s"]
                    log(f"{name} with {args.big:,} profiles #{round_ + 1}: {rate:,.0f} events/s")
                    gc.collect()
            for name in big_names:
                small, big = variants[name], _best(big_runs[name])
                scaling["variants"][name] = {
                    "small_us": small["us_per_event"],
                    "big_us": big["us_per_event"],
                    "ratio": big["us_per_event"] / small["us_per_event"],
                    "small_cpu_us": small["cpu_us_per_event"],
                    "big_cpu_us": big["cpu_us_per_event"],
                    "cpu_ratio": big["cpu_us_per_event"] / small["cpu_us_per_event"],
                    "big_rss_mib": big["rss_after_mib"],
                    "big_outcomes": big["outcomes"],
                    "big_runs": big["runs"],
                }
            result["scaling"] = scaling

        if not args.no_stages:
            stages = []
            for kind in [s for s in args.stage_stores.split(",") if s]:
                store_kind = "memory" if kind == "memory" else "sqlite"
                stages.append(stage_split(pack, lines, args.prefill, store_kind, templates))
                log(f"stage split ({kind}) done")
            result["stages"] = stages

        if not args.no_check:
            result["agreement"] = agreement(pack, lines, args.prefill)
            log("agreement checked")

        if args.profile:
            result["profile"] = profile_run(pack, lines, args.prefill, args.profile, workdir)
            log(f"profile written to {result['profile']['file']}")

        if args.flat:
            # in a fresh interpreter: this one's heap, grown and freed by the runs above,
            # would hide growth (new objects reuse freed arenas without raising RSS)
            child = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--pack",
                    pack,
                    "--seed",
                    str(args.seed),
                    "--prefill",
                    str(args.prefill),
                    "--workdir",
                    str(workdir),
                    "--flat-commit-every",
                    str(args.flat_commit_every),
                    "--flat-child",
                    str(args.flat),
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            result["flat"] = json.loads(child.stdout)
            log("flat-memory replay done")
    finally:
        templates.cleanup()

    result["targets"] = targets(result)
    result["peak_rss_mib"] = round(peak_rss_mib(), 1)
    print(table(result))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(result, indent=2) + "\n")
    return 0


def _variant(
    name: str,
    pack: str,
    lines: list[bytes],
    prefill: int,
    templates: SqliteTemplates,
    commit_every: int,
) -> Callable[[], dict[str, Any]]:
    if name == "baseline":
        return lambda: run_baseline(pack, lines, prefill)
    if name == "idrules-memory":
        return lambda: run_idrules(pack, lines, prefill, "memory", templates)
    if name == "idrules-sqlite-per-event":
        return lambda: run_idrules(pack, lines, prefill, "sqlite", templates, 1)
    if name == "idrules-sqlite-grouped":
        return lambda: run_idrules(pack, lines, prefill, "sqlite", templates, commit_every)
    raise SystemExit(f"unknown variant {name!r}")


def _progress(message: str) -> None:
    print(f"[harness] {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    try:
        code = main()
        sys.stdout.flush()  # here, where a closed pipe is caught, not at interpreter exit
    except BrokenPipeError:  # stdout closed early (| head): stop quietly
        workload.quiet_broken_pipe()
        code = 1
    sys.exit(code)
