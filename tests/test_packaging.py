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

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = ROOT / "pyproject.toml"
#: what CI's second run installs: every floor exactly (pip install -c FLOORS '.[test]')
FLOORS = ROOT / "constraints" / "floors.txt"
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
    return declared_floors(tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"])


def normalized(name: str) -> str:
    """A distribution name as pip compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def padded(version: tuple[int, ...]) -> tuple[int, ...]:
    """A version without its trailing zeros: 23.2 and 23.2.0 are one version (PEP 440)."""
    parts = list(version)
    while parts and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


def declared_floors(requirements: list[str]) -> dict[str, tuple[int, ...]]:
    """Each ``name>=version`` requirement's floor, by normalized name."""
    out = {}
    for requirement in requirements:
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)(\[[a-z,]+\])?>=([0-9.]+)", requirement)
        assert match, f"every requirement has a floor: {requirement}"
        floor = tuple(int(p) for p in match.group(3).split("."))
        out[normalized(match.group(1))] = floor
        if match.group(2) == "[binary]":  # psycopg[binary]: its libpq wheel, at the same floor
            out[normalized(match.group(1) + "-binary")] = floor
    return out


def pinned() -> dict[str, tuple[int, ...]]:
    """The ``name==version`` pins of constraints/floors.txt, by normalized name."""
    out: dict[str, tuple[int, ...]] = {}
    for line in FLOORS.read_text(encoding="utf-8").splitlines():
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)==([0-9.]+)", text)
        assert match, f"constraints/floors.txt: not a name==version pin: {line!r}"
        name = normalized(match.group(1))
        assert name not in out, f"constraints/floors.txt pins {name} twice"
        out[name] = tuple(int(p) for p in match.group(2).split("."))
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


class TestFloorsConstraints:
    """constraints/floors.txt, which CI installs for its second run, pins exactly pyproject's
    floors: the run tests the lowest versions a user's pip may choose, not others."""

    @pytest.mark.parametrize("group", ["dependencies", "test"])
    def test_every_requirement_pinned_at_its_floor(self, group: str) -> None:
        """Each runtime dependency, and each tool of the test extra (pytest, hypothesis,
        flask), is pinned to exactly the version its floor names."""
        project = tomllib.loads(PYPROJECT.read_text())["project"]
        if group == "dependencies":
            wanted = declared_floors(project["dependencies"])
        else:
            wanted = declared_floors(project["optional-dependencies"][group])
        pins = pinned()
        assert set(wanted) <= set(pins), f"not pinned: {sorted(set(wanted) - set(pins))}"
        for name, floor in wanted.items():
            assert padded(pins[name]) == padded(floor), f"{name}: {pins[name]} is not {floor}"

    def test_nothing_else_pinned(self) -> None:
        """Only declared requirements are pinned: a stray pin would hold a transitive
        dependency back without pyproject saying so."""
        project = tomllib.loads(PYPROJECT.read_text())["project"]
        declared = declared_floors(
            [*project["dependencies"], *project["optional-dependencies"]["test"]]
        )
        assert set(pinned()) == set(declared)

    def test_pins_are_read_as_pip_reads_them(self) -> None:
        """The reader normalizes names and versions as pip does (PyYAML is pyyaml, 4.0 is 4)."""
        assert normalized("PyYAML") == normalized("pyyaml") == "pyyaml"
        assert normalized("email_validator") == "email-validator"
        assert padded((23, 2, 0)) == padded((23, 2)) == (23, 2)
        assert padded((4, 0)) == (4,) != padded((4, 0, 1))


class TestPublicNames:
    """The package's public names are the documented objects, however it was imported."""

    def test_names_after_every_submodule(self) -> None:
        """After importing every submodule, `from idrules import X` is still the object."""
        import importlib
        import pkgutil

        import idrules

        for module in pkgutil.walk_packages(idrules.__path__, "idrules."):
            if module.name != "idrules.__main__":
                importlib.import_module(module.name)
        from idrules import Engine, Summary, replay

        assert callable(replay) and replay.__module__ == "idrules.replaying"
        assert Summary.__module__ == "idrules.replaying"
        assert Engine.__module__ == "idrules.engine"
        for name in idrules.__all__:
            assert not isinstance(getattr(idrules, name), type(idrules)), name
