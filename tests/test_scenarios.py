"""The project's own scenarios (``tests/scenarios/*.json``), run through the real CLI, and the
runner's own checks: a wrong expectation must fail, naming scenario, event and expectation."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import attrs
import pytest
from scenario_runner import (
    Run,
    ScenarioError,
    ScenarioFailure,
    check_run,
    compare_runs,
    load_scenario,
    run_scenario,
    validate_scenario,
)

SCENARIO_DIR = Path(__file__).resolve().parent / "scenarios"
SCENARIOS = sorted(SCENARIO_DIR.glob("*.json"))


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_scenario(path: Path, tmp_path: Path) -> None:
    """The scenario's expectations hold, and a second run gives the same bytes."""
    scenario = load_scenario(path)
    run_scenario(scenario, tmp_path, name=f"{path.name}: {scenario.get('name', '')}")


# the runner itself ------------------------------------------------------------------------
BASE: dict[str, Any] = {
    "name": "runner self-check",
    "rules": "helpshift",
    "events": [
        {
            "id": "e1",
            "ts": "2026-03-02T09:00:00Z",
            "type": "identify",
            "session": "b1",
            "payload": {"userId": "u1", "userEmail": "a@example.com", "userName": "Ada"},
        },
        {
            "id": "e2",
            "ts": "2026-03-02T09:01:00Z",
            "type": "identify",
            "session": "b1",
            "payload": {"userId": "u1", "userEmail": "b@example.com"},
        },
        {
            "id": "t1",
            "ts": "2026-03-02T09:02:00Z",
            "type": "track",
            "session": "b1",
            "payload": {"name": "vote"},
        },
        {"id": "e3", "ts": "2026-03-02T09:03:00Z", "type": "identify", "session": "b2"},
        "not json",
        {"id": "e4", "ts": "2026-03-02T09:04:00Z", "type": "logout", "session": "b1"},
    ],
    "expect": [
        {
            "event": "e1",
            "outcome": "identified",
            "outcome_in": ["identified"],
            "created": True,
            "profile_null": False,
            "line": 1,
            "identity": {"user_id": "u1", "verified": False},
            "attributes": {},
            "reasons": ["profile.created"],
            "no_reasons": ["match.email"],
            "rule_cites": {"profile.created": ["matching.precedence"]},
        },
        {"event": "e2", "profile_as": ["e1"], "merged_count": 0},
        {"event": "e3", "outcome": "logged_out", "profile_null": True},
        {"event": "t1", "outcome": "recorded", "profile_as": ["e1"]},
        {"event": "#4", "outcome": "rejected", "reasons": ["event.invalid"]},
    ],
    "outcome_counts": {"identified": 2, "recorded": 1, "rejected": 1},
    "export": [
        {
            "where": {"user_id": "u1"},
            "is": {"email": "b@example.com"},
            "activity_includes": ["t1"],
            "lacks": {"sessions": ["b1"]},
        }
    ],
    "export_count": [{"where": {}, "count": 1}],
    "never_in_decisions": ["s3cr3t-never-here"],
}


@pytest.fixture(scope="module")
def base_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """BASE, run twice (as every scenario is); it must pass."""
    runs = run_scenario(BASE, tmp_path_factory.mktemp("base"))
    return runs[0]


def _expect(index: int, **changes: Any) -> dict[str, Any]:
    scenario = copy.deepcopy(BASE)
    scenario["expect"][index].update(changes)
    return scenario


def _top(**changes: Any) -> dict[str, Any]:
    scenario = copy.deepcopy(BASE)
    scenario.update(changes)
    return scenario


MUTATIONS: dict[str, tuple[dict[str, Any], str]] = {
    "outcome": (_expect(0, outcome="anonymous"), "event e1: expectation 'outcome'"),
    "outcome_in": (_expect(0, outcome_in=["rejected"]), "event e1: expectation 'outcome_in'"),
    "created": (_expect(0, created=False), "event e1: expectation 'created'"),
    "profile_null": (_expect(0, profile_null=True), "event e1: expectation 'profile_null'"),
    "profile_as": (_expect(1, profile_as=["#4"]), "event e2: expectation 'profile_as'"),
    "profile_not_as": (_expect(1, profile_not_as=["e1"]), "event e2: expectation 'profile_not_as'"),
    "merged_from": (_expect(1, merged_from=["e1"]), "event e2: expectation 'merged_from'"),
    "merged_count": (_expect(1, merged_count=1), "event e2: expectation 'merged_count'"),
    "reasons": (_expect(0, reasons=["match.email"]), "event e1: expectation 'reasons'"),
    "no_reasons": (
        _expect(0, no_reasons=["profile.created"]),
        "event e1: expectation 'no_reasons'",
    ),
    "rule_cites knob": (
        _expect(0, rule_cites={"profile.created": "matching.update_on_match"}),
        "event e1: expectation 'rule_cites'",
    ),
    "rule_cites absent": (
        _expect(0, rule_cites={"match.email": ["matching.precedence"]}),
        "event e1: expectation 'rule_cites'",
    ),
    "rule_cites null rule": (
        _expect(4, rule_cites={"event.invalid": ["matching.precedence"]}),
        "event #4: expectation 'rule_cites'",
    ),
    "line": (_expect(0, line=2), "event e1: expectation 'line'"),
    "identity": (_expect(0, identity={"user_id": "u2"}), "event e1: expectation 'identity'"),
    "identity type": (_expect(0, identity={"verified": 0}), "event e1: expectation 'identity'"),
    "attributes": (_expect(0, attributes={"plan": "pro"}), "event e1: expectation 'attributes'"),
    "selector": (_expect(4, event="#9"), "event #9: no decision"),
    "outcome_counts": (_top(outcome_counts={"identified": 3}), "outcome_counts"),
    "export is": (
        _top(export=[{"where": {"user_id": "u1"}, "is": {"email": "a@example.com"}}]),
        "want email = 'a@example.com'",
    ),
    "export activity": (
        _top(export=[{"where": {"user_id": "u1"}, "activity_includes": ["e1"]}]),
        "want 'e1' in activity",
    ),
    "export lacks": (
        _top(export=[{"where": {"user_id": "u1"}, "lacks": {"activity": ["t1"]}}]),
        "want activity without ['t1']",
    ),
    "export where": (
        _top(export=[{"where": {"user_id": "nobody"}, "is": {"email": None}}]),
        "want exactly one profile, found 0",
    ),
    "export profile_of": (
        _top(export=[{"where": {"profile_of": "e1"}, "is": {"anonymous": True}}]),
        "want anonymous = True",
    ),
    "export_count": (_top(export_count=[{"where": {}, "count": 3}]), "want 3 profiles, found 1"),
    "never_in_decisions": (_top(never_in_decisions=["a@example.com"]), "appears in decisions"),
    "secrets": (_top(secrets={"current": "b@example.com"}), "'b@example.com' appears in"),
}


def test_base_scenario_passes(base_run: Run) -> None:
    """The unchanged BASE scenario has no failure (so each mutation below is what fails)."""
    assert check_run(BASE, base_run, [base_run]) == []


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_a_wrong_expectation_fails(base_run: Run, mutation: str) -> None:
    """Each kind of expectation, made wrong, is reported with its event and the decision."""
    scenario, needle = MUTATIONS[mutation]
    validate_scenario(scenario, mutation)
    failures = check_run(scenario, base_run, [base_run])
    assert failures, f"{mutation}: a wrong expectation went unnoticed"
    text = "\n".join(failures)
    assert needle in text, text
    if needle.startswith("event ") and "no decision" not in needle:
        assert '"event_id":' in text, f"the decision is not shown: {text}"


def test_a_second_run_with_other_bytes_fails(base_run: Run) -> None:
    """Decisions or export that differ between the two runs are a failure."""
    assert compare_runs(base_run, base_run) == []
    other = attrs.evolve(base_run, decisions_bytes=base_run.decisions_bytes + b"{}\n")
    assert "decisions differ" in "\n".join(compare_runs(base_run, other))
    export = attrs.evolve(base_run.export, stdout=base_run.export.stdout.replace(b"u1", b"u2"))
    other = attrs.evolve(base_run, export=export)
    assert "export differs" in "\n".join(compare_runs(base_run, other))


def test_a_broken_scenario_is_refused_with_every_problem() -> None:
    """Unknown keys, outcomes and codes are refused before anything runs."""
    scenario = copy.deepcopy(BASE)
    scenario["expects"] = []
    scenario["expect"][0]["reason"] = ["profile.created"]
    scenario["expect"][1]["outcome"] = "identifed"
    scenario["expect"][2]["no_reasons"] = ["user_id.to_long"]
    scenario["expect"][3] = {"event": "t1"}
    scenario["export"][0]["has"] = {}
    scenario["export_count"][0]["where"] = {"userId": "u1"}
    with pytest.raises(ScenarioError) as caught:
        validate_scenario(scenario, "broken")
    message = str(caught.value)
    for needle in (
        "[broken]",
        "unknown scenario key 'expects'",
        "expect[0]: unknown expectation 'reason'",
        "expect[1].outcome",
        "expect[2].no_reasons",
        "expect[3]: expects nothing",
        "unknown export check 'has'",
        "unknown export field 'userId'",
    ):
        assert needle in message, message


def test_a_missing_pack_is_a_scenario_failure(tmp_path: Path) -> None:
    """A scenario naming a pack that does not exist fails (so a strict xfail holds)."""
    scenario = _top(rules="no-such-pack")
    with pytest.raises(ScenarioFailure, match=r"replay failed: .*no-such-pack"):
        run_scenario(scenario, tmp_path, check_determinism=False)
