"""The shared conformance scenarios (``../shared/conformance``), run through the real CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
from scenario_runner import ScenarioFailure, load_scenario, run_scenario, validate_scenario

PROOF = (
    "Proof of identity: HMAC signatures and signed JWTs, key rotation, attribute filtering, "
    "and the Quackback, Replyful, UserJot and Lumio packs"
)
ANONYMOUS = (
    "Anonymous sessions, activity and merging: what a visitor did before login lands on the "
    "right account, and never on the wrong one"
)

#: scenario file -> the titles of the later issues it waits for, e.g.
#: ``"lumio-signature-required.json": (PROOF,)``. Strict xfail: when every feature has landed
#: the scenario passes, the xfail fails, and its entry must go. Empty since the quackback,
#: replyful, userjot and lumio packs landed (1a6382a) and all four of their scenarios pass.
PENDING: dict[str, tuple[str, ...]] = {}

CONFORMANCE_DIR = Path(__file__).resolve().parents[2] / "shared" / "conformance"
if not CONFORMANCE_DIR.is_dir():
    pytest.skip(f"no conformance folder at {CONFORMANCE_DIR}", allow_module_level=True)

SCENARIOS = sorted(CONFORMANCE_DIR.glob("*.json"))


def _param(path: Path) -> object:
    titles = PENDING.get(path.name)
    # only a ScenarioFailure is the expected failure: a malformed scenario still errors
    marks = (
        [pytest.mark.xfail(strict=True, raises=ScenarioFailure, reason="; ".join(titles))]
        if titles
        else []
    )
    return pytest.param(path, id=path.stem, marks=marks)


@pytest.mark.parametrize("path", [_param(p) for p in SCENARIOS])
def test_conformance_scenario(path: Path, tmp_path: Path) -> None:
    """The scenario's expectations hold, and a second run gives the same bytes."""
    scenario = load_scenario(path)
    run_scenario(scenario, tmp_path, name=f"{path.name}: {scenario.get('name', '')}")


def test_pending_entries_name_existing_scenarios() -> None:
    """Every PENDING entry names a scenario file that exists (no stale entries)."""
    names = {p.name for p in SCENARIOS}
    assert SCENARIOS, f"no *.json scenarios in {CONFORMANCE_DIR}"
    assert set(PENDING) <= names, f"unknown scenarios in PENDING: {set(PENDING) - names}"


def test_conformance_scenarios_are_well_formed() -> None:
    """Every scenario, pending ones too, uses only known keys, outcomes and reason codes."""
    for path in SCENARIOS:
        validate_scenario(load_scenario(path), path.name)
