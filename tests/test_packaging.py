"""The dependency floors in pyproject.toml are true: each declared minimum is a version the
code and the suite were run with (see the comment above ``dependencies``). A floor that is too
low lets pip install a version the code fails on, as attrs 23.1 did: ``Reason.json`` is a
``functools.cached_property`` on a slotted attrs class, which attrs supports from 23.2."""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"
#: the lowest version of each dependency known to work, and why
KNOWN_FLOORS = {
    "attrs": ((23, 2), "cached_property on slotted classes"),
    "cattrs": ((23, 2, 1), "23.2.0 is yanked"),
    "email-validator": ((2, 3), "the local part's length is not limited unless strict"),
    "sqlite-utils": ((4, 0), "3.x commits inside create(), ending the store's transaction"),
    "click": ((8, 3, 1), "sqlite-utils 4.0 needs it"),
}


def floors() -> dict[str, tuple[int, ...]]:
    """Each dependency's declared minimum version, as a tuple of ints."""
    declared = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    out = {}
    for requirement in declared:
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)>=([0-9.]+)", requirement)
        assert match, f"every dependency has a floor: {requirement}"
        out[match.group(1).lower()] = tuple(int(part) for part in match.group(2).split("."))
    return out


def installed(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version(name))[:3])


class TestDependencyFloors:
    """pyproject's minimum versions are not lower than what the code needs."""

    @pytest.mark.parametrize("name", sorted(KNOWN_FLOORS))
    def test_floor_not_below_the_known_minimum(self, name: str) -> None:
        """The declared floor is at least the version the code was verified to need."""
        needed, why = KNOWN_FLOORS[name]
        assert floors()[name] >= needed, f"{name} must be >= {needed}: {why}"

    @pytest.mark.parametrize("name", sorted(floors()))
    def test_installed_versions_meet_the_floors(self, name: str) -> None:
        """What this environment runs satisfies what pyproject declares."""
        assert installed(name) >= floors()[name]

    def test_cached_property_on_slotted_decision_parts(self) -> None:
        """The reason for the attrs floor works: a Reason encodes itself, once."""
        from idrules import Reason, RulesetRef

        reason = Reason("event.invalid", None, None, "x")
        assert reason.json == '{"code":"event.invalid","rule":null,"detail":"x"}'
        assert reason.json is reason.json
        assert RulesetRef("r", "1", "0" * 64).json.startswith('{"name":"r"')
