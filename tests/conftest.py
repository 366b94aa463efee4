"""Suite-wide configuration: the ``slow`` marker.

A handful of tests take most of the suite's time: hypothesis runs that replay whole logs
hundreds of times, and the sweep that kills a replay at dozens of points. They are marked
``slow`` here, by test id, so that CI's second run (the floors: every dependency at the
lowest version pyproject.toml allows, see constraints/floors.txt and .ci/run) can run
everything else with ``-m "not slow"`` and stay within its time budget. The slow tests
exercise the same library calls as the fast ones, only many more times; the first CI run, on
current versions, runs them all.

Shared helpers live in ``support.py`` and ``cli_support.py`` (import them from there:
pytest discourages importing conftest).
"""

from __future__ import annotations

import pytest

#: test id (file::class::name, parameters left off) -> why it is slow. Keep each entry's
#: reason; an entry that no longer names a test is an error on a full run (below).
SLOW = {
    "test_resume.py::TestKillAndResume::test_killed_anywhere_resumes_to_the_same_bytes": (
        "kills a real replay at 52 points and resumes each (about 100 s)"
    ),
    "test_session_laws.py::TestSessionLaws::test_laws_hold_for_any_sequence": (
        "hypothesis: 2,000 multi-session sequences replayed twice (about 20 s)"
    ),
}


def _test_id(item: pytest.Item) -> str:
    """The item's id relative to tests/, without parameters (``file::Class::test``)."""
    return item.nodeid.split("[", 1)[0].removeprefix("tests/")


@pytest.hookimpl(tryfirst=True)  # before -m and -k deselect: "not slow" must see the marks
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the SLOW tests; on a run of the whole suite, every SLOW entry must name a test
    (a renamed test would otherwise leave the floors run silently slower)."""
    found = set()
    for item in items:
        test_id = _test_id(item)
        if test_id in SLOW:
            item.add_marker(pytest.mark.slow)
            found.add(test_id)
    if config.args_source is pytest.Config.ArgsSource.TESTPATHS:
        stale = sorted(set(SLOW) - found)
        if stale:
            raise pytest.UsageError(f"tests/conftest.py SLOW names no test: {', '.join(stale)}")
