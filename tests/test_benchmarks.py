"""Smoke test of the benchmarks (benchmarks/): fast, a few seconds.

The generator is deterministic for a seed; the hand-written baseline and idrules agree on the
outcome (and the profile) of every event of a small log of each pack; the harness's direct
pre-fill stores exactly what deciding the pre-fill identify events stores. The hot-key logs
(benchmarks/hotkeys.py) do what they say, and the harness's hot-key mode gives a result of the
documented shape (timings are not checked). A closed stdout ends the harness quietly.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import baseline  # noqa: E402
import harness  # noqa: E402
import hotkeys  # noqa: E402
import instructions  # noqa: E402
import lean  # noqa: E402
import workload  # noqa: E402

from idrules import Engine, MemoryStore, export_rows  # noqa: E402

EVENTS = 1_200
PREFILL = 200


def test_generator_is_deterministic_for_a_seed() -> None:
    for pack in workload.PACKS:
        first = workload.generate(pack, 250, seed=7)
        assert first == workload.generate(pack, 250, seed=7)
        assert len(first) == 250
    assert first != workload.generate(pack, 250, seed=8)
    assert list(workload.prefill_events("quackback", 20)) == list(
        workload.prefill_events("quackback", 20)
    )


def test_generator_mix_is_realistic() -> None:
    lines = workload.generate("strict", 3_000, seed=1)
    kinds: dict[str, int] = {}
    malformed = 0
    for line in lines:
        try:
            event = json.loads(line)
            kinds[event["type"]] = kinds.get(event["type"], 0) + 1
        except (ValueError, KeyError, TypeError):
            malformed += 1
    assert kinds["identify"] > kinds["logout"] > 0
    assert kinds["track"] > 0
    assert 0 < malformed < len(lines) * 0.05
    assert len(set(lines)) < len(lines)  # retried (duplicate) events


def _decide_both(pack: str, lines: list[str]) -> tuple[list[Any], list[dict[str, Any]]]:
    engine = Engine(pack, MemoryStore(), secrets=workload.SECRETS)
    base = baseline.Baseline(pack, workload.SECRET)
    for event in workload.prefill_events(pack, PREFILL):
        engine.decide(event)
        base.decide_line(json.dumps(event))
    ours, theirs = [], []
    for number, line in enumerate(lines, start=1):
        raw = line.encode()
        ours.append(engine.decide_line(raw, number))
        theirs.append(base.decide_line(raw, number))
    return ours, theirs


@pytest.mark.parametrize("pack", workload.PACKS)
def test_baseline_and_idrules_agree(pack: str) -> None:
    lines = workload.generate(pack, EVENTS, seed=3)
    ours, theirs = _decide_both(pack, lines)
    outcomes = [d.outcome for d in ours]
    assert outcomes == [d["outcome"] for d in theirs]
    assert [d.profile for d in ours] == [d["profile"] for d in theirs]
    # the log exercises every outcome (duplicates, rejections, anonymous calls, logouts)
    assert {"identified", "recorded", "rejected", "duplicate", "logged_out"} <= set(outcomes)


class TestLean:
    """The lean resolver (benchmarks/lean.py) decides as idrules does."""

    @pytest.mark.parametrize("pack", workload.PACKS)
    def test_agrees_with_idrules_on_every_event(self, pack: str) -> None:
        """Same outcome for every event, and one lean profile id for each idrules one."""
        engine = Engine(pack, MemoryStore(), secrets=workload.SECRETS)
        resolver = lean.Lean(pack, workload.SECRET)
        lines = workload.generate(pack, EVENTS, seed=5)
        ours = [engine.decide_line(line.encode(), n) for n, line in enumerate(lines, start=1)]
        theirs = [resolver.decide_line(line.encode(), n) for n, line in enumerate(lines, start=1)]
        assert [d.outcome for d in ours] == [d["outcome"] for d in theirs]
        pairs = {(d.profile, t["profile"]) for d, t in zip(ours, theirs, strict=True)}
        assert len({a for a, _ in pairs}) == len({b for _, b in pairs}) == len(pairs)
        assert {d.created for d in ours if d.profile} == {True, False}
        assert [d.created for d in ours] == [t["created"] for t in theirs]

    def test_runs_as_a_process(self, tmp_path: Path) -> None:
        """The command writes one decision line per non-blank line of the log."""
        log = tmp_path / "log.jsonl"
        log.write_text("\n".join(workload.generate("helpshift", 200, seed=2)) + "\n\n")
        out = tmp_path / "decisions.jsonl"
        env = {**os.environ, "IDRULES_SECRET_CURRENT": workload.SECRET}
        subprocess.run(
            [
                sys.executable,
                str(BENCHMARKS / "lean.py"),
                "--pack",
                "helpshift",
                str(log),
                "--out",
                str(out),
            ],
            check=True,
            env=env,
            capture_output=True,
        )
        decisions = [json.loads(line) for line in out.read_text().splitlines()]
        assert len(decisions) == 200
        assert {d["outcome"] for d in decisions} >= {"identified", "recorded", "anonymous"}


@pytest.mark.parametrize("pack", workload.PACKS)
def test_direct_prefill_equals_deciding_the_prefill_events(pack: str) -> None:
    decided = Engine(pack, MemoryStore(), secrets=workload.SECRETS)
    for event in workload.prefill_events(pack, 60):
        assert decided.decide(event).outcome == "identified"
    direct = MemoryStore()
    harness.prefill_store(direct, pack, 60)
    assert list(export_rows(direct)) == list(export_rows(decided.store))
    assert [(p.user_key, p.email_key, p.last_seen) for p in direct.profiles()] == [
        (p.user_key, p.email_key, p.last_seen) for p in decided.store.profiles()
    ]
    assert all(decided.store.is_decided(f"pre-{seq}") for seq in range(60))
    assert all(direct.is_decided(f"pre-{seq}") for seq in range(60))


def test_harness_runs_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    code = harness.main(
        [
            "--pack",
            "userjot",
            "--events",
            "300",
            "--prefill",
            "50",
            "--big",
            "100",
            "--warmup",
            "50",
            "--flat",
            "150",
            "--workdir",
            str(tmp_path),
            "--json",
            str(out),
        ]
    )
    assert code == 0
    result = json.loads(out.read_text())
    assert result["agreement"]["outcome_mismatches"] == 0
    counts = {json.dumps(v["outcomes"], sort_keys=True) for v in result["variants"].values()}
    assert len(counts) == 1
    assert set(result["variants"]) == {
        "baseline",
        "idrules-memory",
        "idrules-sqlite-per-event",
        "idrules-sqlite-grouped",
    }
    assert result["stages"] and result["scaling"]["variants"]
    assert not list(tmp_path.glob("*.db"))


def test_harness_lean_mode(tmp_path: Path) -> None:
    """Without --pack's comparison (--lean): every variant as a process, its ratios and the
    statements counted, and the saved result printed again."""
    out = tmp_path / "lean.json"
    argv = ["--lean", "--pack", "helpshift", "--events", "300", "--count-events", "200"]
    code = harness.main([*argv, "--workdir", str(tmp_path), "--json", str(out)])
    assert code == 0
    result = json.loads(out.read_text())
    pack = result["packs"]["helpshift"]
    assert set(pack["variants"]) == {"lean", "memory", "sqlite-event", "sqlite-grouped"}
    assert all(r["cpu_s"] > 0 for r in pack["variants"].values())
    assert set(pack["ratios"]) == {"memory", "sqlite-event", "sqlite-grouped"}
    # BEGIN, the cache's check, the claim and COMMIT at least, per event; fewer grouped
    assert 4 <= pack["statements"]["event"] < 12
    assert pack["statements"]["grouped"] < pack["statements"]["event"]
    assert not list(tmp_path.glob("*.db*"))
    assert harness.main(["--from-json", str(out)]) == 0


class TestInstructions:
    """benchmarks/instructions.py: per-event instructions from two log sizes."""

    def test_per_event_and_startup_from_two_sizes(self) -> None:
        """The difference over the events between the sizes is per event; the rest start-up."""
        assert instructions.per_event(100, 300, 1_000_000 + 100 * 50, 1_000_000 + 300 * 50) == (
            50.0,
            1_000_000.0,
        )
        with pytest.raises(ValueError):
            instructions.per_event(300, 300, 1, 2)

    def test_measure_counts_each_variant_at_both_sizes(self, tmp_path: Path) -> None:
        """Each variant runs over the log's first small and large events; the table shows them."""
        seen: list[list[str]] = []

        def count(cmd: list[str]) -> int:
            seen.append(cmd)
            log = Path(next(a for a in cmd if a.endswith("-head.jsonl")))
            events = len(log.read_text().splitlines())
            per = 200 if "lean.py" in " ".join(cmd) else 100
            return 5_000_000 + events * per

        result = instructions.measure(
            ["helpshift"], 20, 50, 1, tmp_path, count=count, log=lambda _: None
        )
        assert len(seen) == 4
        pack = result["packs"]["helpshift"]
        assert pack["ratio"] == 0.5
        assert pack["variants"]["memory"] == {"per_event": 100.0, "startup": 5_000_000.0}
        assert "replay" in " ".join(seen[-1]) and "--store" not in seen[-1]
        assert "helpshift" in instructions.table(result) and "0.50" in instructions.table(result)

    def test_refuses_bad_sizes_and_packs(self, capsys: pytest.CaptureFixture[str]) -> None:
        """Sizes out of order and unknown packs are usage errors."""
        for argv in (["--small", "20", "--large", "10"], ["--packs", "nope"]):
            with pytest.raises(SystemExit) as exit_info:
                instructions.main(argv)
            assert exit_info.value.code == 2
        assert "unknown pack" in capsys.readouterr().err


HOT_SCALE = 0.01  # n = 100: 100 shared-email identifies, 200 tracks + 10 identifies, 200 merges


def test_hot_key_logs_are_deterministic_and_do_what_they_say() -> None:
    for part in hotkeys.PARTS:
        log = hotkeys.generate(part, HOT_SCALE, seed=2)
        assert log.lines == hotkeys.generate(part, HOT_SCALE, seed=2).lines
        assert 0 < log.tail_start < len(log.lines)
        engine = Engine(log.pack, MemoryStore(), secrets=workload.SECRETS)
        decisions = [
            engine.decide_line(line.encode(), number)
            for number, line in enumerate(log.lines, start=1)
        ]
        outcomes: dict[str, int] = {}
        for d in decisions:
            outcomes[d.outcome] = outcomes.get(d.outcome, 0) + 1
        assert outcomes == log.expected
        tail = decisions[log.tail_start :]
        if part == "shared":  # one new profile per user id, every later call matched by email
            assert len(log.lines) == 100
            assert all(d.created for d in decisions)
            assert len({d.profile for d in decisions}) == len(decisions)
            assert all("match.email_ambiguous" in d.codes for d in tail)
        elif part == "inline":  # 200 anonymous profiles hold the email; identifies match it
            assert log.tail_events == 10
            assert all(d.outcome == "recorded" for d in decisions[: log.tail_start])
            assert len({d.profile for d in decisions[: log.tail_start]}) == log.tail_start
            assert all(d.outcome == "identified" and "match.email" in d.codes for d in tail)
        else:  # every identify after the first folds its session's anonymous profile in
            target = decisions[0].profile
            identifies = decisions[2::2]
            assert len(identifies) == 200
            assert all(d.profile == target and len(d.merged) == 1 for d in identifies)
            assert all("anonymous.merged" in d.codes for d in identifies)


def test_harness_hot_keys_mode(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "hot.json"
    args = ["--hot-keys", "--scale", str(HOT_SCALE), "--prefill", "50", "--events", "300"]
    args += ["--warmup", "50", "--workdir", str(tmp_path), "--json", str(out)]
    assert harness.main(args) == 0
    printed = capsys.readouterr().out
    result = json.loads(out.read_text())
    assert result["mode"] == "hot-keys"
    assert result["params"]["n"] == 100 and result["params"]["target_ratio"] == 2.0
    assert set(result["ordinary"]) == {"helpshift", "strict"}
    for runs in result["ordinary"].values():
        assert set(runs) == {"memory", "sqlite"}
        assert all(r["events"] == 300 and r["us_per_event"] > 0 for r in runs.values())
    assert set(result["hot"]) == set(hotkeys.PARTS)
    for entry in result["hot"].values():
        assert set(entry["stores"]) == {"memory", "sqlite"}
        for run in entry["stores"].values():
            assert run["events"] == entry["events"]
            assert run["tail"]["events"] == entry["tail_events"] > 0
            assert run["tail"]["us_per_event"] > 0 and len(run["curve_us"]) == 10
            assert run["outcomes_as_expected"]
    verdicts = result["targets"]
    assert set(verdicts) == {f"{p} {s}" for p in hotkeys.PARTS for s in ("memory", "sqlite")}
    for v in verdicts.values():
        assert v["target"] == "<= 2" and v["verdict"] in ("met", "NOT met")
        assert v["value"] == pytest.approx(v["hot_us"] / v["ordinary_us"])
    assert "hot/ord" in printed and printed.count("met") >= 6
    assert not list(tmp_path.glob("*.db*"))
    # the saved result prints the same table; --summary gives it one line
    assert harness.main(["--from-json", str(out)]) == 0
    assert capsys.readouterr().out.strip() == printed.strip()
    assert harness.main(["--summary", str(out)]) == 0
    assert "hot keys, scale 0.01" in capsys.readouterr().out


def test_harness_exits_quietly_when_stdout_closes(tmp_path: Path) -> None:
    saved = tmp_path / "hot.json"
    saved.write_text(json.dumps(_tiny_hot_result()))
    child = subprocess.Popen(
        [sys.executable, str(BENCHMARKS / "harness.py"), "--from-json", str(saved)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert child.stdout is not None and child.stderr is not None
    child.stdout.close()  # the reader is gone before the child writes (| head)
    err = child.stderr.read().decode()
    child.wait(timeout=60)
    assert "Traceback" not in err and "BrokenPipe" not in err, err
    assert child.returncode == 1


def _tiny_hot_result() -> dict[str, Any]:
    run = {
        "events": 10,
        "seconds": 0.01,
        "us_per_event": 1000.0,
        "cpu_us_per_event": 900.0,
        "tail": {"events": 1, "us_per_event": 3000.0, "cpu_us_per_event": 2700.0},
        "curve_us": [1000.0] * 10,
        "outcomes": {"identified": 10},
        "outcomes_as_expected": True,
    }
    machine = harness.machine()
    params = {"scale": 0.001, "n": 10, "seed": 1, "prefill": 0, "ordinary_events": 10}
    params.update(repeat=1, target_ratio=2.0)
    hot = {"pack": "helpshift", "describe": "tiny", "events": 10, "tail_events": 1}
    hot.update(expected_outcomes={"identified": 10}, stores={"memory": run})
    return {
        "mode": "hot-keys",
        "machine": machine,
        "params": params,
        "ordinary": {"helpshift": {"memory": run}},
        "hot": {"shared": hot},
    }


def test_http_load_against_a_real_server(tmp_path: Path) -> None:
    """benchmarks/http_load.py drives a real `idrules serve` (memory, 40 requests over 4
    connections, every answer 200) and reports a row of the documented shape; its bodies
    are the log's JSON objects only."""
    import argparse

    import http_load

    bodies = http_load.request_bodies("helpshift", 300, 1)
    assert len(bodies) == 300 and all(isinstance(json.loads(b), dict) for b in bodies)
    args = argparse.Namespace(pack="helpshift", events=40, warmup=10, seed=1, connections=4)
    row = http_load.run_one("memory", None, 1, args, tmp_path)
    assert row["requests"] == 40 and row["rps"] > 0
    assert row["p99_ms"] >= row["p50_ms"] > 0
    assert http_load.table([row]).splitlines()[1].startswith("memory")
