"""The project documents itself: README.md and docs/ describe the code as it is.

The facts the docs list (knobs, defaults, reason codes, commands, options, citations) are
checked against their sources here: the rules JSON Schema and defaults.yaml, the reason-code
registry, the click commands and the shipped packs. A change to any of them that the docs do
not follow fails one of these tests.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import click
import jsonschema
import pytest
import yaml
from cli_support import cli

from idrules import load_ruleset, pack_names
from idrules.reasons import CATALOG, Check, Code

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
README = ROOT / "README.md"
SCHEMA_FILE = ROOT / "src" / "idrules" / "rules" / "schema.json"
DEFAULTS_FILE = ROOT / "src" / "idrules" / "rules" / "defaults.yaml"
#: every page a reader may follow a link from
PAGES = [README, ROOT / "CHANGELOG.md", *sorted(DOCS.glob("*.md"))]
#: the README's two fresh-machine commands, which must work as written
FRESH_MACHINE = (
    "python3 -m venv .venv && .venv/bin/pip install . && .venv/bin/idrules replay "
    "examples/helpshift-events.jsonl --rules helpshift",
    "python3 -m venv .venv && .venv/bin/pip install '.[test]' && .venv/bin/python -m pytest",
)
_FENCE = re.compile(r"^```.*?^```", re.S | re.M)
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
#: a quoted citation: FILE.yaml:LINE knob.path
_CITATION = re.compile(
    r"\b([A-Za-z0-9_-]+)\.yaml:(\d+) ([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*)"
)
_ROW = re.compile(r"^\| `([^`]+)` \| ([^|]*) \|(.*)$", re.M)


def text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def prose(page: str) -> str:
    """A Markdown page without its fenced code blocks."""
    return _FENCE.sub("", page)


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces as '-'."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    return {slug(m.group(1)) for m in re.finditer(r"^#+ (.+)$", prose(text(page)), re.M)}


def links(page: Path) -> Iterator[str]:
    """The local link targets of a page (web and mail links left out)."""
    for target in _LINK.findall(prose(text(page))):
        if not re.match(r"[a-z]+:", target):
            yield target


@cache
def schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(text(SCHEMA_FILE))
    return loaded


@cache
def defaults() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(text(DEFAULTS_FILE))
    return loaded


def resolved(node: dict[str, Any]) -> dict[str, Any]:
    """A schema node with its local ``$ref`` followed (its own keywords kept)."""
    while "$ref" in node:
        target = schema()["$defs"][node["$ref"].rsplit("/", 1)[-1]]
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def knobs(node: dict[str, Any] | None = None, path: str = "") -> Iterator[tuple[str, dict]]:
    """Every leaf knob of the schema: (dotted path, its resolved schema)."""
    node = resolved(schema() if node is None else node)
    if "properties" not in node:
        yield path, node
        return
    for key, sub in node["properties"].items():
        yield from knobs(sub, f"{path}.{key}" if path else key)


def default_of(path: str) -> Any:
    """The knob's value in defaults.yaml (KeyError when it has none)."""
    value: Any = defaults()
    for part in path.split("."):
        value = value[part]
    return value


def rows() -> dict[str, tuple[str, str]]:
    """The tables of docs/rules.md's knob reference: knob -> (default cell, rest of the row)."""
    page = text(DOCS / "rules.md")
    start = page.index("\n## Knob reference\n")
    reference = page[start : page.index("\n## ", start + 1)]
    return {m.group(1): (m.group(2).strip(), m.group(3)) for m in _ROW.finditer(reference)}


def yaml_blocks(page: Path) -> list[str]:
    return re.findall(r"^```yaml\n(.*?)^```", text(page), re.S | re.M)


def leaf_paths(doc: Any, path: str = "") -> Iterator[str]:
    """Every path a YAML document sets, down to its leaves (into the knob mappings only)."""
    if isinstance(doc, dict) and doc:
        for key, value in doc.items():
            sub = f"{path}.{key}" if path else str(key)
            yield sub
            if path != "attributes.schema" and sub != "attributes.schema":
                yield from leaf_paths(value, sub)


def command_section(name: str) -> str:
    """The part of docs/cli.md about ``idrules NAME``."""
    page = text(DOCS / "cli.md")
    start = page.index(f"\n## `idrules {name}`\n")
    end = page.find("\n## ", start + 1)
    return page[start : end if end != -1 else len(page)]


@cache
def gen_reasons() -> ModuleType:
    """docs/gen_reasons.py, imported from its file."""
    spec = importlib.util.spec_from_file_location("gen_reasons", DOCS / "gen_reasons.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class TestLinks:
    """README and docs link only to what exists."""

    @pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
    def test_links_name_existing_files_and_headings(self, page: Path) -> None:
        """Every local link names a file that exists, and a heading of it when it has '#'."""
        for target in links(page):
            where, _, anchor = target.partition("#")
            linked = (page.parent / where).resolve() if where else page
            assert linked.exists(), f"{page.name}: {target} does not exist"
            if anchor and linked.suffix == ".md":
                assert anchor in anchors(linked), f"{page.name}: no heading #{anchor} in {where}"

    def test_every_page_is_in_the_map(self) -> None:
        """docs/index.md and the README link every page of docs/."""
        for page in sorted(DOCS.glob("*.md")):
            if page.name != "index.md":
                assert page.name in set(links(DOCS / "index.md")), page.name
            assert f"docs/{page.name}" in set(links(README)), page.name

    def test_no_citation_of_an_unshipped_contract(self) -> None:
        """Neither the README nor docs/ cite the docs, which the project does not ship."""
        for page in PAGES:
            assert "SPEC" not in text(page), page.name


class TestReadme:
    """The README stays the entry point."""

    @pytest.mark.parametrize("command", FRESH_MACHINE)
    def test_fresh_machine_commands_verbatim(self, command: str) -> None:
        """The two commands for a fresh machine are there, word for word."""
        assert f"```sh\n{command}\n```" in text(README)

    def test_thirty_second_example(self) -> None:
        """The library example is there, opening with a shipped pack."""
        assert '\nengine = Engine("helpshift")' in text(README)


class TestRulesReference:
    """docs/rules.md lists every knob with its true default and choices."""

    def test_every_knob_is_documented(self) -> None:
        """Every leaf knob of the schema has a row in docs/rules.md."""
        missing = [path for path, _ in knobs() if path not in rows()]
        assert not missing, f"knobs missing from docs/rules.md: {missing}"

    def test_rows_name_only_real_knobs(self) -> None:
        """Every row of the knob tables is a knob of the schema (or extends)."""
        known = {path for path, _ in knobs()} | {"extends"}
        assert set(rows()) <= known, set(rows()) - known

    @pytest.mark.parametrize("path", [path for path, _ in knobs()])
    def test_documented_default_is_the_default(self, path: str) -> None:
        """A knob's default cell holds its value in defaults.yaml (as YAML)."""
        cell = rows()[path][0]
        try:
            default = default_of(path)
        except KeyError:
            assert not cell.startswith("`"), f"{path} has no default, yet docs give {cell}"
            return
        match = re.fullmatch(r"`([^`]*)`", cell)
        assert match, f"{path}: the default cell is not one YAML value in backticks: {cell}"
        assert yaml.safe_load(match.group(1)) == default, (path, cell, default)

    @pytest.mark.parametrize("path", [path for path, node in knobs() if "enum" in node])
    def test_every_choice_is_documented(self, path: str) -> None:
        """Each value an enum knob accepts appears in its row."""
        choices = dict(knobs())[path]["enum"]
        row = rows()[path][1]
        for choice in choices:
            assert f"`{choice}`" in row, (path, choice)

    def test_every_knob_has_an_example(self) -> None:
        """Some YAML example of docs/rules.md sets each knob."""
        shown: set[str] = set()
        for block in yaml_blocks(DOCS / "rules.md"):
            shown.update(leaf_paths(yaml.safe_load(block)))
        missing = [path for path, _ in knobs() if path not in shown]
        assert not missing, f"knobs without an example in docs/rules.md: {missing}"

    @pytest.mark.parametrize("page", [README, *sorted(DOCS.glob("*.md"))], ids=lambda p: p.name)
    def test_rules_examples_load(self, page: Path, tmp_path: Path) -> None:
        """Every YAML example that is a rules file loads (extends, defaults, validation)."""
        for number, block in enumerate(yaml_blocks(page)):
            doc = yaml.safe_load(block)
            if not isinstance(doc, dict) or not {"extends", "ruleset"} & set(doc):
                continue
            path = tmp_path / f"example{number}.yaml"
            path.write_text(block, encoding="utf-8")
            load_ruleset(path)


class TestSchema:
    """The rules JSON Schema explains itself and is easy to use from an editor."""

    def test_every_property_has_a_description(self) -> None:
        """Every property of the schema, at any depth ($defs too), has a description."""
        bare: list[str] = []

        def walk(node: Any, where: str) -> None:
            if isinstance(node, dict):
                for key, sub in node.get("properties", {}).items():
                    if not (isinstance(sub, dict) and sub.get("description")):
                        bare.append(f"{where}/properties/{key}")
                for key, sub in node.items():
                    walk(sub, f"{where}/{key}")
            elif isinstance(node, list):
                for index, sub in enumerate(node):
                    walk(sub, f"{where}/{index}")

        walk(schema(), "#")
        assert not bare, f"properties without a description: {bare}"

    def test_id_is_honest(self) -> None:
        """The $id is a name (a URN), not an address on an .invalid host."""
        assert schema()["$id"] == "urn:idrules:schema:ruleset"
        assert not re.search(r"://[^/\s\"]*\.invalid\b", text(SCHEMA_FILE))

    def test_schema_command_prints_the_shipped_file(self) -> None:
        """`idrules schema` prints the shipped schema, byte for byte."""
        proc = cli("schema")
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout == text(SCHEMA_FILE)
        assert json.loads(proc.stdout) == schema()

    @pytest.mark.parametrize("pack", pack_names())
    def test_schema_validates_every_pack(self, pack: str) -> None:
        """Every shipped pack's effective form is valid under the shipped schema."""
        validator = jsonschema.Draft202012Validator(schema())
        errors = [e.message for e in validator.iter_errors(dict(load_ruleset(pack).document))]
        assert not errors, errors

    def test_authoring_schema(self) -> None:
        """`idrules schema --authoring`: draft-07 for editors; the packs as written and as
        loaded pass, extends is a knob, and a file without extends names its ruleset."""
        proc = cli("schema", "--authoring")
        assert proc.returncode == 0, proc.stderr
        authoring = json.loads(proc.stdout)
        jsonschema.Draft7Validator.check_schema(authoring)
        validator = jsonschema.Draft7Validator(authoring)
        assert "$defs" not in proc.stdout
        for pack in pack_names():
            written = yaml.safe_load(text(ROOT / "rules" / f"{pack}.yaml"))
            assert not list(validator.iter_errors(written)), pack
            assert validator.is_valid(dict(load_ruleset(pack).document)), pack
        assert validator.is_valid({"extends": "helpshift", "verification": {"mode": "required"}})
        assert not validator.is_valid({"verification": {"mode": "required"}})
        assert not validator.is_valid({"extends": "helpshift", "fields": {"email": {"x": 1}}})
        assert not validator.is_valid({"extends": "helpshift", "input": {"email": 42}})
        assert authoring["properties"]["extends"]["description"]
        assert set(authoring["properties"]) == {"extends", *schema()["properties"]}
        assert authoring["definitions"].keys() == schema()["$defs"].keys()


class TestReasons:
    """docs/reasons.md is the registry's table."""

    def test_every_code_is_documented(self) -> None:
        """Every fixed code and every field check of the registry appears in docs/reasons.md."""
        page = text(DOCS / "reasons.md")
        for code in Code:
            assert f"`{code}`" in page, code
        for check in Check:
            assert f"`<field>.{check}`" in page, check

    def test_catalog_covers_every_code(self) -> None:
        """The registry's catalog describes every fixed code, so the generated table does."""
        described = {code for entry in CATALOG for code in entry.codes}
        assert set(Code) <= described

    def test_page_is_current(self) -> None:
        """docs/reasons.md is what docs/gen_reasons.py makes from the registry."""
        page = text(DOCS / "reasons.md")
        assert gen_reasons().render(page) == page, "run: python docs/gen_reasons.py"


def commands() -> dict[str, click.Command]:
    """The click commands of ``idrules``. Imported when a test runs, not when the tests are
    collected: importing the command line loads the ``idrules.replay`` submodule, which would
    shadow the ``idrules.replay`` function for test modules collected after this one."""
    from idrules.cli import main

    assert isinstance(main, click.Group)
    with click.Context(main) as ctx:
        found = {name: main.get_command(ctx, name) for name in main.list_commands(ctx)}
    assert all(found.values()), f"a command of COMMANDS is defined nowhere: {found}"
    return {name: command for name, command in found.items() if command is not None}


class TestLazyCommands:
    """The command line loads a command's module only when that command runs."""

    def test_commands_map_names_every_command(self) -> None:
        """COMMANDS names exactly the commands the modules define, each in its own module."""
        from idrules.cli import COMMANDS, main

        for module in set(COMMANDS.values()):
            importlib.import_module(f"idrules.cli.{module}")
        assert isinstance(main, click.Group)
        assert set(main.commands) == set(COMMANDS)
        for name, command in main.commands.items():
            assert command.callback is not None
            assert command.callback.__module__.endswith(f".cli.{COMMANDS[name]}"), name

    def test_replay_loads_no_other_command(self) -> None:
        """Resolving ``replay`` imports neither the server, the importer nor signing."""
        code = (
            "import sys, click\n"
            "from idrules.cli import main\n"
            "with click.Context(main) as ctx:\n"
            "    assert main.get_command(ctx, 'replay') is not None\n"
            "print(' '.join(sorted(m for m in sys.modules if m.startswith('idrules'))))\n"
        )
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        )
        loaded = set(done.stdout.split())
        assert "idrules.cli.deciding" in loaded
        for module in (
            "idrules.cli.serving",
            "idrules.serve",
            "idrules.cli.importing",
            "idrules.importing",
            "idrules.cli.authoring",
            "idrules.signing",
        ):
            assert module not in loaded, module


class TestCommandLine:
    """docs/cli.md documents every command and every option."""

    def test_every_command_has_a_section(self) -> None:
        """Each command has its own section in docs/cli.md, and each section is a command."""
        sections = set(re.findall(r"^## `idrules ([a-z-]+)`$", text(DOCS / "cli.md"), re.M))
        assert sections == set(commands())

    def test_every_argument_and_option_is_documented(self) -> None:
        """Each command's section names each of its arguments and options (short forms too)."""
        missing = []
        for name, command in sorted(commands().items()):
            section = command_section(name)
            for param in command.params:
                if isinstance(param, click.Option):
                    flags = [*param.opts, *param.secondary_opts]
                    missing += [f"{name} {flag}" for flag in flags if f"`{flag}" not in section]
                elif f"`{param.human_readable_name}`" not in section:
                    missing.append(f"{name} {param.human_readable_name}")
        assert not missing, f"not in docs/cli.md: {missing}"

    def test_command_table_lists_every_command(self) -> None:
        """The table at the top of docs/cli.md and the README's tour list every command."""
        page, readme = text(DOCS / "cli.md"), text(README)
        for name in commands():
            assert f"[`idrules {name}`](#idrules-{name})" in page, name
            assert f"`idrules {name}" in readme, name

    def test_global_options_documented(self) -> None:
        """--version and -h/--help are documented."""
        page = text(DOCS / "cli.md")
        for flag in ("--version", "-h", "--help"):
            assert f"`{flag}`" in page, flag


class TestCitations:
    """Every citation quoted in the README or docs/ is what the engine would cite."""

    def quoted(self) -> list[tuple[str, str, str]]:
        found = []
        for page in PAGES:
            for stem, line, knob in _CITATION.findall(text(page)):
                if stem in pack_names() or stem == "defaults":
                    found.append((page.name, f"{stem}.yaml:{line} {knob}", knob))
        return found

    def test_citations_are_found(self) -> None:
        """The docs do quote citations (so the test below is not vacuous)."""
        assert len(self.quoted()) >= 10

    def test_quoted_citations_are_true(self, tmp_path: Path) -> None:
        """Each quoted `PACK.yaml:LINE knob` is where that pack (or the defaults) writes it."""
        bare = tmp_path / "bare.yaml"
        bare.write_text("ruleset: bare\nversion: 1\n", encoding="utf-8")
        wrong = []
        for page, citation, knob in self.quoted():
            stem = citation.split(".yaml:")[0]
            ruleset = load_ruleset(bare if stem == "defaults" else stem)
            actual = str(ruleset.cite(knob))
            if actual != citation:
                wrong.append(f"{page}: {citation} (the engine cites {actual})")
        assert not wrong, "\n".join(wrong)
