"""Suite-wide configuration: the ``slow`` marker.

CI runs the suite twice (.ci/run): in full with current versions, then in a second virtualenv
with every dependency at the lowest version pyproject.toml allows (constraints/floors.txt).
Two full runs do not fit CI's time budget (well under 10 minutes on 2 cores; the suite takes
about 4.5), so the floors run is ``pytest -m "not slow"``, and ``slow`` marks, by test id
below, the runs that repeat through real processes what other tests check in process: sweeps
that kill or interrupt a replay at many points, the session laws' thousands of generated
sequences, and the scenario files, each replayed twice through the command line (about 60
tests, 40% of the suite's time). What the floors run keeps still loads every pack and rules
file (PyYAML, jsonschema, google-re2), checks emails (email-validator), verifies HMACs and
JWTs (PyJWT), builds decisions and rules (attrs, cattrs), decides into SQLite with its
transactions, failures and reopenings (sqlite-utils) and runs every command (click).

Under CI (``CI`` set, as .ci/run sets it) hypothesis is derandomized, with no example
database, in every hypothesis version the two runs install (recent versions do so by
themselves under CI; 6.108, the floor, does not), so a tree gets the same verdict on every
run. Outside CI, each run explores anew.

Shared helpers live in ``support.py`` and ``cli_support.py`` (import them from there:
pytest discourages importing conftest).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

TESTS = Path(__file__).resolve().parent

if os.environ.get("CI"):
    settings.register_profile(
        "idrules-ci",
        derandomize=True,
        database=None,
        deadline=None,
        print_blob=True,
        suppress_health_check=[HealthCheck.too_slow],
    )
    settings.load_profile("idrules-ci")

#: test id, or the id of a class or of a parametrized test (every test under it), relative
#: to tests/ -> why the floors run leaves it out. On a run of the whole suite, an entry that
#: names no test is an error, so a rename cannot quietly put a slow test back.
SLOW = {
    "test_resume.py::TestKillAndResume::test_killed_anywhere_resumes_to_the_same_bytes": (
        "kills a real replay at 52 points and resumes each (the suite's longest test, ~2 min)"
    ),
    "test_resume.py::TestInterrupt": (
        "interrupts real replays at 16 points; TestTransactions in test_store.py checks the "
        "rollback of a failed event in process"
    ),
    "test_session_laws.py::TestSessionLaws::test_laws_hold_for_any_sequence": (
        "hypothesis: 2,000 multi-session sequences, each replayed twice (~25 s)"
    ),
    "test_scenarios.py::test_scenario": (
        "each scenario file replayed twice through the real command line (~2 min together); "
        "test_packs.py, test_plan.py and test_proof.py check the same rules in process"
    ),
    "test_conformance.py::test_conformance_scenario": (
        "the shared scenarios, run as test_scenarios.py runs the project's own"
    ),
    "test_postgres.py::TestGoldenPostgres": (
        "every pack's workload replayed into PostgreSQL (~15 s); TestCommandLine compares "
        "PostgreSQL's bytes with SQLite's on one log"
    ),
    "test_postgres.py::TestKilledConnection::test_terminated_backend_then_resume": (
        "kills the server's backend mid-replay twice (~9 s); test_interrupted_then_resumed "
        "keeps the resume path"
    ),
    "test_serve_load.py::TestProperties": (
        "schemathesis against a live `idrules serve` (~10 s); test_serve.py checks every "
        "endpoint's answers, and the document's validity, directly"
    ),
    "test_serve_load.py::TestConcurrentClients::test_postgres_two_workers": (
        "two server processes on PostgreSQL under concurrent clients; test_pg_concurrency.py "
        "races engines on the database, and test_sqlite_two_workers races servers"
    ),
}


def _entry(item: pytest.Item) -> str | None:
    """The SLOW entry covering ``item``, if any."""
    test_id = item.nodeid.split("[", 1)[0].removeprefix("tests/")
    for entry in SLOW:
        if test_id == entry or test_id.startswith(entry + "::"):
            return entry
    return None


@pytest.hookimpl(tryfirst=True)  # before -m and -k deselect: "not slow" must see the marks
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the SLOW tests; on a run of the whole suite, every SLOW entry must name a test
    of its file (a module that skips itself, as test_conformance.py does without the shared
    scenarios, has none to name)."""
    found, files = set(), set()
    for item in items:
        files.add(item.nodeid.removeprefix("tests/").split("::", 1)[0])
        entry = _entry(item)
        if entry is not None:
            item.add_marker(pytest.mark.slow)
            found.add(entry)
    if config.args_source is pytest.Config.ArgsSource.TESTPATHS:
        stale = [
            entry
            for entry in SLOW
            if entry not in found
            and (entry.split("::", 1)[0] in files or not (TESTS / entry.split("::")[0]).exists())
        ]
        if stale:
            raise pytest.UsageError(f"tests/conftest.py SLOW names no test: {', '.join(stale)}")
