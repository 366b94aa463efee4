"""Smoke test of the benchmarks (benchmarks/): fast, a few seconds.

The generator is deterministic for a seed; the hand-written baseline and idrules agree on the
outcome (and the profile) of every event of a small log of each pack; the harness's direct
pre-fill stores exactly what deciding the pre-fill identify events stores.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import baseline  # noqa: E402
import harness  # noqa: E402
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
