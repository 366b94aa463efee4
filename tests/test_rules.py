"""Rules files (docs/rules.md, §6 ``check``): shipped packs, located errors, ``extends``,
provenance of every knob, the sha256 of the effective form, the schema validator."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from functools import partial
from pathlib import Path

import cli_support
import jsonschema
import pytest

from idrules import Engine, RulesError, load_ruleset, pack_names
from idrules.rules import schema as schema_module
from idrules.rules.packs import DEFAULTS_FILE, packs_dir

TESTS = Path(__file__).resolve().parent
DATA = TESTS / "data"
REPO = TESTS.parent
PACKS = pack_names()
HELPSHIFT = packs_dir() / "helpshift.yaml"
TS = "2026-03-01T12:00:00Z"
# one problem line of `idrules check`: "idrules: FILE:LINE KNOB: MESSAGE"
PROBLEM = re.compile(r"^idrules: (?P<file>[^\s:]+):(?P<line>\d+) (?P<knob>[\w.]+): (?P<msg>.+)$")


#: the real command line, with this process's environment
cli = partial(cli_support.cli, env=os.environ, timeout=60)


def key_line(path: Path, dotted: str) -> int:
    """The 1-based line of a block-style YAML key path, found by reading the text itself."""
    lines = path.read_text(encoding="utf-8").splitlines()
    start, indent, found = 0, -1, -1
    for part in dotted.split("."):
        for number in range(start, len(lines)):
            text = lines[number]
            body = text.lstrip(" ")
            depth = len(text) - len(body)
            if not body or body.startswith("#"):
                continue
            if depth <= indent:
                raise AssertionError(f"{dotted} not in {path.name}")
            if re.match(rf"{re.escape(part)}\s*:", body):
                start, indent, found = number + 1, depth, number
                break
        else:
            raise AssertionError(f"{dotted} not in {path.name}")
    return found + 1


def line_of(path: Path, needle: str) -> int:
    """The 1-based line of the only line of ``path`` holding ``needle``."""
    hits = [n for n, text in enumerate(path.read_text().splitlines(), 1) if needle in text]
    assert len(hits) == 1, (needle, hits)
    return hits[0]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def assert_no_traceback(proc: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in proc.stderr + proc.stdout


class TestShippedPacks:
    """Every pack in ``rules/`` loads, is checked clean, and cites itself portably."""

    def test_packs_are_the_rules_folder(self) -> None:
        """pack_names() lists exactly the rules/*.yaml files, helpshift and strict among them."""
        on_disk = sorted(p.stem for p in (REPO / "rules").glob("*.yaml"))
        assert on_disk == PACKS
        assert {"helpshift", "strict"} <= set(PACKS)

    @pytest.mark.parametrize("pack", PACKS)
    def test_pack_loads(self, pack: str) -> None:
        """A shipped pack loads by name with its own ruleset name, a version and a sha256."""
        ruleset = load_ruleset(pack)
        assert ruleset.name == pack
        assert ruleset.version
        assert re.fullmatch(r"[0-9a-f]{64}", ruleset.sha256)

    @pytest.mark.parametrize("pack", PACKS)
    def test_check_pack_exits_0_with_one_line(self, pack: str) -> None:
        """`idrules check PACK` exits 0 with one summary line on stdout and nothing on stderr."""
        proc = cli("check", pack)
        assert proc.returncode == 0, proc.stderr
        assert proc.stderr == ""
        lines = proc.stdout.splitlines()
        assert len(lines) == 1
        sha = load_ruleset(pack).sha256[:12]
        assert lines[0].startswith(f"ok: ruleset {pack} ")
        assert sha in lines[0]

    @pytest.mark.parametrize("pack", PACKS)
    def test_pack_by_path(self, pack: str, monkeypatch) -> None:
        """The same pack given as a path loads the same rules, cited by the path as given."""
        monkeypatch.chdir(REPO)
        by_path = load_ruleset(f"rules/{pack}.yaml")
        assert by_path.sha256 == load_ruleset(pack).sha256
        assert str(by_path.cite("matching.precedence")).startswith(f"rules/{pack}.yaml:")

    @pytest.mark.parametrize("pack", PACKS)
    def test_pack_citations_are_relative(self, pack: str) -> None:
        """Every knob of a pack cites the pack or defaults.yaml by bare name, never a full path."""
        ruleset = load_ruleset(pack)
        sources = {source for source, _ in ruleset.provenance.locations.values()}
        assert sources <= {f"{pack}.yaml", "defaults.yaml"}
        assert f"{pack}.yaml" in sources
        for knob in ("matching.precedence", "fields.user_id.max_length", "anonymous.ttl_days"):
            assert not os.path.isabs(str(ruleset.cite(knob)))
            assert str(REPO) not in str(ruleset.cite(knob))


BROKEN = DATA / "rules" / "broken.yaml"
#: (text on the faulty line, knob path, part of the message)
BROKEN_EXPECTED = [
    ("colour: blue", "colour", "unknown knob 'colour'"),
    ("max_lenght: 10", "fields.user_id.max_lenght", "did you mean 'max_length'?"),
    ("on_invalid: explode", "fields.email.on_invalid", '"explode" is not one of'),
    ("max_length: long", "fields.name.max_length", "is not of type 'integer'"),
    ("email: 42", "input.email", "payload key"),
    ("{phone}", "verification.hmac.message", "unknown field {phone}"),
    ("plan: {type: 12}", "attributes.schema.plan", "not a valid JSON Schema"),
    ("- phone", "matching.precedence.1", '"phone" is not one of'),
]


class TestCheckReportsEveryError:
    """`idrules check` lists every problem at once, as file:LINE knob: message, exit 1."""

    def test_every_schema_mistake_at_once(self) -> None:
        """All eight mistakes of broken.yaml are reported, each at its own line, exit 1."""
        proc = cli("check", "rules/broken.yaml", cwd=DATA)
        assert proc.returncode == 1
        assert proc.stdout == ""
        assert_no_traceback(proc)
        *problems, summary = proc.stderr.splitlines()
        assert summary == f"idrules: {len(BROKEN_EXPECTED)} problems in rules/broken.yaml"
        parsed = []
        for text in problems:
            match = PROBLEM.match(text)
            assert match, text
            parsed.append(match)
        assert len(parsed) == len(BROKEN_EXPECTED)
        by_knob = {m["knob"]: m for m in parsed}
        for needle, knob, message in BROKEN_EXPECTED:
            assert knob in by_knob, (knob, proc.stderr)
            found = by_knob[knob]
            assert found["file"] == "rules/broken.yaml"
            assert int(found["line"]) == line_of(BROKEN, needle), knob
            assert message in found["msg"], found["msg"]

    def test_library_raises_every_problem(self) -> None:
        """load_ruleset raises one RulesError carrying every problem, located."""
        with pytest.raises(RulesError) as caught:
            load_ruleset(BROKEN)
        problems = caught.value.problems
        assert len(problems) == len(BROKEN_EXPECTED)
        assert {p.path for p in problems} == {knob for _, knob, _ in BROKEN_EXPECTED}
        assert all(p.line is not None and p.source == str(BROKEN) for p in problems)
        assert "\n" not in str(caught.value)
        assert f"(and {len(BROKEN_EXPECTED) - 1} more)" in str(caught.value)

    @pytest.mark.parametrize(
        ("target", "where", "knob", "message"),
        [
            ("rules/syntax_error.yaml", ("rules/syntax_error.yaml", 5), "", "YAML syntax"),
            ("rules/not_mapping.yaml", ("rules/not_mapping.yaml", 1), "", "YAML mapping"),
            ("rules/no_such_file.yaml", ("rules/no_such_file.yaml", None), "", "not found"),
            ("no-such-pack", ("no-such-pack", None), "", "no shipped pack named 'no-such-pack'"),
            ("rules/cycle_a.yaml", ("rules/cycle_b.yaml", 3), "extends", "cycle"),
            ("rules/cycle_b.yaml", ("rules/cycle_a.yaml", 2), "extends", "cycle"),
            ("rules/extends_missing.yaml", ("rules/extends_missing.yaml", 2), "extends", "found"),
            (
                "rules/extends_unknown_pack.yaml",
                ("rules/extends_unknown_pack.yaml", 3),
                "extends",
                "no shipped pack named 'no-such-pack'",
            ),
        ],
    )
    def test_fatal_problem_located(
        self, target: str, where: tuple[str, int | None], knob: str, message: str
    ) -> None:
        """A file that cannot be read at all is one located problem, exit 1, no traceback."""
        proc = cli("check", target, cwd=DATA)
        assert proc.returncode == 1
        assert proc.stdout == ""
        assert_no_traceback(proc)
        lines = proc.stderr.splitlines()
        assert len(lines) == 2, proc.stderr
        assert lines[1] == f"idrules: 1 problem in {target}"
        source, line = where
        prefix = f"idrules: {source}" + ("" if line is None else f":{line}")
        prefix += f" {knob}: " if knob else ": "
        assert lines[0].startswith(prefix), lines[0]
        assert message in lines[0]

    def test_invalid_value_in_a_base_cites_the_base(self, tmp_path: Path) -> None:
        """Validation runs on the merged result; an inherited bad value cites its own file."""
        write(tmp_path / "base.yaml", "ruleset: base\nversion: 1\nanonymous:\n  ttl_days: -1\n")
        write(tmp_path / "top.yaml", "extends: base.yaml\nfields: {name: {max_length: 9}}\n")
        proc = cli("check", "top.yaml", cwd=tmp_path)
        assert proc.returncode == 1
        assert proc.stderr.splitlines()[0].startswith("idrules: base.yaml:4 anonymous.ttl_days: ")


class TestExtends:
    """``extends`` overrides a base key by key: mappings merge, lists and scalars replace."""

    def test_pack_name_and_relative_path(self, tmp_path: Path, monkeypatch) -> None:
        """A pack name and a path relative to the extending file give the same effective rules."""
        rel = os.path.relpath(HELPSHIFT, tmp_path / "conf")
        write(tmp_path / "conf" / "by_name.yaml", "extends: helpshift\n")
        write(tmp_path / "conf" / "by_path.yaml", f"extends: {rel}\n")
        monkeypatch.chdir(DATA)  # relative to the file, not to the working directory
        by_name = load_ruleset(tmp_path / "conf" / "by_name.yaml")
        by_path = load_ruleset(tmp_path / "conf" / "by_path.yaml")
        assert by_name.document == by_path.document == load_ruleset("helpshift").document
        assert by_name == by_path

    def test_relative_base_of_a_relative_base(self, tmp_path: Path) -> None:
        """A chain top -> ../base/mid.yaml -> helpshift applies each layer in order."""
        write(
            tmp_path / "base" / "mid.yaml",
            "extends: helpshift\nfields:\n  name: {max_length: 40}\n  user_id: {max_length: 50}\n",
        )
        write(
            tmp_path / "conf" / "top.yaml",
            "extends: ../base/mid.yaml\nfields:\n  name:\n    max_length: 30\n",
        )
        ruleset = load_ruleset(tmp_path / "conf" / "top.yaml")
        assert ruleset.fields.name.max_length == 30
        assert ruleset.fields.user_id.max_length == 50
        assert ruleset.fields.email.validate is True  # from helpshift

    def test_mappings_merge_deeply(self, tmp_path: Path) -> None:
        """Overriding one nested knob keeps its siblings from the base and the defaults."""
        path = write(
            tmp_path / "r.yaml", "extends: helpshift\nfields:\n  user_id:\n    max_length: 9\n"
        )
        ruleset, base = load_ruleset(path), load_ruleset("helpshift")
        assert ruleset.fields.user_id.max_length == 9
        assert ruleset.fields.user_id.email_shaped == base.fields.user_id.email_shaped == "warn"
        assert ruleset.fields.user_id.whitespace == base.fields.user_id.whitespace
        assert ruleset.fields.email == base.fields.email
        assert ruleset.fields.avatar == base.fields.avatar
        assert ruleset.input == base.input

    def test_lists_replace(self, tmp_path: Path) -> None:
        """A list in the override replaces the base's list (no union, no item-wise merge)."""
        base = write(
            tmp_path / "base.yaml",
            "extends: helpshift\nfields: {user_id: {blocked: [guest, anonymous, none]}}\n",
        )
        top = write(
            tmp_path / "top.yaml",
            f"extends: {base.name}\nfields: {{user_id: {{blocked: [zero]}}}}\n"
            "matching: {update_on_match: [name]}\n",
        )
        assert load_ruleset(base).fields.user_id.blocked == ("guest", "anonymous", "none")
        ruleset = load_ruleset(top)
        assert ruleset.fields.user_id.blocked == ("zero",)
        assert ruleset.matching.update_on_match == ("name",)

    def test_scalars_replace(self, tmp_path: Path) -> None:
        """A scalar in the override replaces the base's, even with null."""
        path = write(
            tmp_path / "r.yaml",
            "extends: helpshift\nanonymous: {on_identify: merge, ttl_days: null}\n"
            "input: {user_id: uid}\n",
        )
        ruleset = load_ruleset(path)
        assert ruleset.anonymous.on_identify == "merge"
        assert ruleset.anonymous.ttl_days is None
        assert ruleset.input.user_id == "uid"
        assert ruleset.input.email == load_ruleset("helpshift").input.email

    def test_ruleset_and_version_inherited(self, tmp_path: Path) -> None:
        """An override may omit ruleset and version (inherited) or set only one of them."""
        plain = write(tmp_path / "plain.yaml", "extends: strict\nanonymous: {ttl_days: 3}\n")
        named = write(tmp_path / "named.yaml", "extends: strict\nruleset: acme\n")
        versioned = write(tmp_path / "versioned.yaml", "extends: strict\nversion: 7\n")
        strict = load_ruleset("strict")
        assert (load_ruleset(plain).name, load_ruleset(plain).version) == (
            strict.name,
            strict.version,
        )
        assert (load_ruleset(named).name, load_ruleset(named).version) == ("acme", strict.version)
        assert (load_ruleset(versioned).name, load_ruleset(versioned).version) == ("strict", "7")

    def test_validation_applies_to_merged_result(self, tmp_path: Path) -> None:
        """A base missing ruleset/version is refused alone but valid once an override adds them."""
        base = write(tmp_path / "base.yaml", "fields: {name: {max_length: 10}}\n")
        top = write(tmp_path / "top.yaml", "extends: base.yaml\nruleset: mine\nversion: 2\n")
        with pytest.raises(RulesError) as caught:
            load_ruleset(base)
        problems = {(p.path, p.message) for p in caught.value.problems}
        assert problems >= {("ruleset", "this knob is required")}
        ruleset = load_ruleset(top)
        assert (ruleset.name, ruleset.version, ruleset.fields.name.max_length) == ("mine", "2", 10)


OVERRIDE = "extends: helpshift\nfields:\n  user_id: {max_length: 100}\n"


class TestProvenance:
    """Each knob cites the file and line its effective value came from."""

    @pytest.fixture
    def conf(self, tmp_path: Path, monkeypatch):
        """conf/rules.yaml (extends helpshift, max_length on line 3), loaded from its folder."""
        write(tmp_path / "conf" / "rules.yaml", OVERRIDE)
        monkeypatch.chdir(tmp_path)
        return load_ruleset("conf/rules.yaml")

    def test_override_cites_user_file_as_given(self, conf) -> None:
        """A knob set in the user's file cites that file by the path as given, and its line."""
        assert (
            str(conf.cite("fields.user_id.max_length"))
            == "conf/rules.yaml:3 fields.user_id.max_length"
        )

    @pytest.mark.parametrize(
        "knob",
        [
            "fields.user_id.whitespace",
            "fields.user_id.email_shaped",
            "fields.email.validate",
            "fields.name.too_long",
            "verification.hmac.encoding",
            "matching.precedence",
            "matching.update_on_match",
            "anonymous.ttl_days",
        ],
    )
    def test_inherited_cites_pack_line(self, conf, knob: str) -> None:
        """A knob inherited from helpshift cites helpshift.yaml at the line of that key."""
        assert str(conf.cite(knob)) == f"helpshift.yaml:{key_line(HELPSHIFT, knob)} {knob}"

    @pytest.mark.parametrize(
        "knob",
        [
            "fields.user_id.required",
            "fields.user_id.empty",
            "fields.avatar.max_length",
            "verification.jwt.leeway_s",
            "verification.jwt.claims.user_id",
        ],
    )
    def test_default_cites_defaults_line(self, conf, knob: str) -> None:
        """A knob no rules file sets cites defaults.yaml at the line of that key."""
        assert str(conf.cite(knob)) == f"defaults.yaml:{key_line(DEFAULTS_FILE, knob)} {knob}"

    def test_list_item_cites_its_own_line(self, tmp_path: Path, monkeypatch) -> None:
        """Items of a block list are located line by line (used to point at a bad item)."""
        write(
            tmp_path / "r.yaml",
            "extends: helpshift\nmatching:\n  precedence:\n    - email\n    - user_id\n",
        )
        monkeypatch.chdir(tmp_path)
        ruleset = load_ruleset("r.yaml")
        assert ruleset.provenance.locations[("matching", "precedence", 1)] == ("r.yaml", 5)
        assert str(ruleset.cite("matching.precedence")) == "r.yaml:3 matching.precedence"

    def test_decisions_cite_the_right_files(self, conf) -> None:
        """A decision's reasons cite the override, the pack and never an absolute path."""
        decision = Engine(conf).identify(
            {"userId": "x" * 101, "userEmail": "not-an-email"}, session="s1", id="e1", ts=TS
        )
        rules = {reason.code: reason.rule for reason in decision.reasons}
        assert rules["user_id.too_long"] == "conf/rules.yaml:3 fields.user_id.max_length"
        email_rule = rules["email.invalid"]
        assert email_rule is not None and email_rule.startswith("helpshift.yaml:")
        for reason in decision.reasons:
            if reason.rule is not None:
                source = reason.rule.split(":")[0]
                assert source in {"conf/rules.yaml", "helpshift.yaml", "defaults.yaml"}
        assert str(packs_dir()) not in decision.to_json()

    def test_no_citation_is_absolute(self, conf) -> None:
        """No location of a relative-path load names an absolute or install path."""
        for source, line in conf.provenance.locations.values():
            assert source in {"conf/rules.yaml", "helpshift.yaml", "defaults.yaml"}
            assert line >= 1


BASE_VARIANT = """\
extends: helpshift
fields:
  user_id:
    max_length: 100
matching:
  update_on_match:
    - email
    - name
    - avatar
"""


class TestSha256:
    """The sha256 is over the effective canonical form, not over the text."""

    def variants(self, tmp_path: Path) -> list[Path]:
        rel = os.path.relpath(HELPSHIFT, tmp_path)
        texts = [
            BASE_VARIANT,
            # flow style, other key order
            "{matching: {update_on_match: [email, name, avatar]},"
            " fields: {user_id: {max_length: 100}}, extends: helpshift}\n",
            # restating the base's values, comments, reordered
            "# same rules, said at length\nversion: 1\nruleset: helpshift\nanonymous:\n"
            "  ttl_days: 7\nmatching:\n  update_on_match: [email, name, avatar]\n"
            "  precedence: [user_id, email]\nfields:\n  user_id:\n    too_long: invalid\n"
            "    max_length: 100\nextends: helpshift\n",
            # the base by relative path instead of by name
            BASE_VARIANT.replace("helpshift", rel, 1),
        ]
        return [write(tmp_path / f"v{n}.yaml", text) for n, text in enumerate(texts)]

    def test_same_effective_rules_same_hash(self, tmp_path: Path) -> None:
        """Key order, flow vs block, restated values and base by path all hash the same."""
        hashes = {load_ruleset(path).sha256 for path in self.variants(tmp_path)}
        assert len(hashes) == 1
        assert hashes != {load_ruleset("helpshift").sha256}

    def test_empty_override_hashes_as_its_base(self, tmp_path: Path) -> None:
        """A file that only extends a pack has the pack's effective rules, so its hash."""
        path = write(tmp_path / "r.yaml", "extends: helpshift\nversion: '1'\n")
        assert load_ruleset(path).sha256 == load_ruleset("helpshift").sha256

    @pytest.mark.parametrize(
        "override",
        [
            "fields: {user_id: {max_length: 751}}",
            "fields: {name: {too_long: invalid}}",
            "fields: {user_id: {blocked: [guest]}}",
            "matching: {precedence: [email, user_id]}",
            "matching: {update_on_match: [name, email]}",
            "attributes: {schema: {plan: {type: string}}}",
            "verification: {hmac: {encoding: hex}}",
            "verification: {jwt: {leeway_s: 31}}",
            "anonymous: {ttl_days: 8}",
            "input: {avatar: userAvatar}",
            "version: 2",
            "ruleset: other",
        ],
    )
    def test_any_knob_change_changes_hash(self, tmp_path: Path, override: str) -> None:
        """Changing any one knob (even list order, even a default) changes the hash."""
        path = write(tmp_path / "r.yaml", f"extends: helpshift\n{override}\n")
        assert load_ruleset(path).sha256 != load_ruleset("helpshift").sha256

    def test_decisions_carry_the_hash(self, tmp_path: Path) -> None:
        """A decision's ruleset block names the effective hash, name and version."""
        ruleset = load_ruleset(self.variants(tmp_path)[0])
        decision = Engine(ruleset).identify({"userId": "u1"}, session="s", id="e1", ts=TS)
        assert decision.to_dict()["ruleset"] == {
            "name": "helpshift",
            "version": ruleset.version,
            "sha256": ruleset.sha256,
        }


class TestSchemaValidator:
    """The ruleset's JSON Schema validator is built once per process."""

    def test_validator_built_once(self, tmp_path: Path) -> None:
        """Loading many rulesets builds (and checks) the validator only once."""
        schema_module.ruleset_validator.cache_clear()
        for spec in ("helpshift", "strict", write(tmp_path / "r.yaml", OVERRIDE)):
            load_ruleset(spec)
        info = schema_module.ruleset_validator.cache_info()
        assert info.misses == 1
        assert info.hits >= 2
        assert schema_module.ruleset_validator() is schema_module.ruleset_validator()

    def test_shipped_schema_is_valid(self) -> None:
        """The shipped schema is valid under its meta-schema (the engine no longer checks it
        at start-up)."""
        schema = json.loads(schema_module.shipped_schema_text())
        jsonschema.validators.validator_for(schema).check_schema(schema)


# --- hardening: rules files `check` must refuse in one located line -----------------------


def check_problems(path: Path, cwd: Path) -> list[str]:
    """`idrules check` on ``path``: exit 1, no traceback; the problem lines (summary dropped)."""
    proc = cli("check", str(path.relative_to(cwd)), cwd=cwd)
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert proc.stdout == ""
    assert_no_traceback(proc)
    *problems, summary = proc.stderr.splitlines()
    assert summary.startswith("idrules: "), summary
    assert problems, proc.stderr
    return problems


def limited_memory() -> None:
    """In the child: 1 GiB of address space, so a runaway parse fails fast instead of
    taking the machine's memory."""
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))


#: "billion laughs": nine levels of nine aliases, 9**9 strings once expanded (~1 KB of text)
ALIAS_BOMB = (
    "extends: helpshift\nl0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
    + "".join(f"l{n}: &l{n} [{', '.join([f'*l{n - 1}'] * 9)}]\n" for n in range(1, 9))
)


class TestYamlBounds:
    """Reading a rules file is bounded in memory, time and depth, whatever the file holds."""

    def test_alias_bomb_refused_in_one_line(self, tmp_path: Path) -> None:
        """A 1 KB file of nested aliases is refused at the knob that explodes, in bounded memory."""
        path = write(tmp_path / "bomb.yaml", ALIAS_BOMB)
        assert len(ALIAS_BOMB) < 1200
        proc = subprocess.run(
            [sys.executable, "-m", "idrules", "check", "bomb.yaml"],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=60,
            preexec_fn=limited_memory,
        )
        assert_no_traceback(proc)
        assert proc.returncode == 1, proc.stderr
        first, summary = proc.stderr.splitlines()
        assert summary == "idrules: 1 problem in bomb.yaml"
        assert first.startswith(f"idrules: bomb.yaml:{line_of(path, 'l5: &l5')} l5: ")
        assert "100,000 values once aliases are expanded" in first

    def test_alias_bomb_in_library(self, tmp_path: Path) -> None:
        """load_ruleset raises a RulesError for a bomb without building it (a smaller bomb,
        9**7 strings, so that a loader without the bound fails this test, not the machine)."""
        small = "".join(ALIAS_BOMB.splitlines(keepends=True)[:8])
        path = write(tmp_path / "bomb.yaml", small)
        with pytest.raises(RulesError) as caught:
            load_ruleset(path)
        assert len(caught.value.problems) == 1
        assert "aliases are expanded" in caught.value.problems[0].message

    @pytest.mark.parametrize("opener", ["[", "{", "- "])
    def test_deep_nesting_refused_by_check(self, tmp_path: Path, opener: str) -> None:
        """10,000 nested lists or mappings: one located line from `check`, no RecursionError."""
        write(tmp_path / "deep.yaml", opener * 10_000 + "x\n")
        (problem,) = check_problems(tmp_path / "deep.yaml", tmp_path)
        assert problem.startswith("idrules: ")
        assert re.match(r"^idrules: \S*deep\.yaml:\d+", problem), problem
        assert "nested deeper than 64 levels" in problem

    def test_deep_nesting_refused_by_replay(self, tmp_path: Path) -> None:
        """`replay --rules` on a deeply nested file is one error line, not a traceback."""
        write(tmp_path / "deep.yaml", "{" * 10_000)
        write(tmp_path / "events.jsonl", "")
        proc = cli("replay", "events.jsonl", "--rules", "deep.yaml", cwd=tmp_path)
        assert proc.returncode == 1
        assert_no_traceback(proc)
        (line,) = proc.stderr.splitlines()
        assert line.startswith("idrules: error: deep.yaml:1")
        assert "nested deeper than 64 levels" in line

    def test_recursive_alias_refused(self, tmp_path: Path) -> None:
        """An alias inside its own anchor (a cyclic value) is refused as too deep."""
        path = write(tmp_path / "r.yaml", "extends: helpshift\nloop: &a [*a]\n")
        with pytest.raises(RulesError) as caught:
            load_ruleset(path)
        (problem,) = caught.value.problems
        assert problem.line == 2
        assert problem.path.startswith("loop.0.0")
        assert "nested deeper than 64 levels" in problem.message

    def test_limits_are_generous(self, tmp_path: Path) -> None:
        """A big but honest file (20,000 blocked values, nesting 60 deep) still loads."""
        blocked = "".join(f"      - guest{n}\n" for n in range(20_000))
        text = f"extends: helpshift\nfields:\n  user_id:\n    blocked:\n{blocked}"
        text += "attributes:\n  schema:\n    deep: " + "{not: " * 55 + "{}" + "}" * 55 + "\n"
        ruleset = load_ruleset(write(tmp_path / "big.yaml", text))
        assert len(ruleset.fields.user_id.blocked) == 20_000
        nested = "a:\n" + "".join("  " * n + f"k{n}:\n" for n in range(1, 60)) + "  " * 60 + "x\n"
        with pytest.raises(RulesError) as caught:  # 61 levels: read, then the schema speaks
            load_ruleset(write(tmp_path / "nested.yaml", "extends: helpshift\n" + nested))
        assert [p.message for p in caught.value.problems] == ["unknown knob 'a'"]

    def test_long_extends_chain_refused(self, tmp_path: Path) -> None:
        """32 files extending one another load; a 33rd is refused at its `extends` line."""
        write(tmp_path / "f0.yaml", "extends: helpshift\n")
        for n in range(1, 33):
            write(tmp_path / f"f{n}.yaml", f"# layer {n}\nextends: f{n - 1}.yaml\n")
        assert load_ruleset(tmp_path / "f30.yaml").name == "helpshift"
        with pytest.raises(RulesError) as caught:
            load_ruleset(tmp_path / "f32.yaml")
        (problem,) = caught.value.problems
        assert (problem.line, problem.path) == (2, "extends")
        assert "more than 32 files extend one another" in problem.message

    def test_oversized_file_refused(self, tmp_path: Path) -> None:
        """A file over 1 MiB is refused unread (a rules file is a few KB)."""
        path = write(tmp_path / "huge.yaml", "extends: helpshift\n" + "#" * (1 << 20) + "\n")
        with pytest.raises(RulesError) as caught:
            load_ruleset(path)
        (problem,) = caught.value.problems
        assert "larger than 1024 KiB" in problem.message

    def test_each_file_parsed_once(self, tmp_path: Path, monkeypatch) -> None:
        """Each layer is composed once (values come from the checked graph, no second parse)."""
        import yaml

        calls: list[str] = []
        real = yaml.SafeLoader.get_single_node

        def counting(self: yaml.SafeLoader) -> object:
            calls.append("compose")
            return real(self)

        monkeypatch.setattr(yaml.SafeLoader, "get_single_node", counting)
        monkeypatch.setattr(yaml, "safe_load", None)  # any second parse path would fail
        load_ruleset(write(tmp_path / "r.yaml", OVERRIDE))
        assert len(calls) == 3  # defaults.yaml, helpshift.yaml, r.yaml


class TestDuplicateKeys:
    """A key written twice in one mapping is refused, naming both lines."""

    def test_block_duplicate_names_both_lines(self, tmp_path: Path) -> None:
        """The second `max_length` is cited with the line of the first."""
        text = (
            "extends: helpshift\nfields:\n  user_id:\n    max_length: 5\n"
            "    whitespace: strip\n    case_sensitive: false\n    max_length: 6\n"
        )
        write(tmp_path / "rules.yaml", text)
        (problem,) = check_problems(tmp_path / "rules.yaml", tmp_path)
        assert problem == (
            "idrules: rules.yaml:7 fields.user_id: duplicate key 'max_length' (first at line 4)"
        )

    def test_flow_and_top_level_duplicates(self, tmp_path: Path) -> None:
        """Duplicates in flow style and at the top level are each reported, in line order."""
        path = write(
            tmp_path / "r.yaml",
            "extends: helpshift\nanonymous: {ttl_days: 3, ttl_days: 4}\nextends: strict\n",
        )
        with pytest.raises(RulesError) as caught:
            load_ruleset(path)
        found = [(p.line, p.path, p.message) for p in caught.value.problems]
        assert found == [
            (2, "anonymous", "duplicate key 'ttl_days' (first at line 2)"),
            (3, "", "duplicate key 'extends' (first at line 1)"),
        ]

    def test_quoted_and_plain_are_one_key(self, tmp_path: Path) -> None:
        """`"ruleset"` and `ruleset` are the same key."""
        path = write(tmp_path / "r.yaml", 'extends: helpshift\nruleset: a\n"ruleset": b\n')
        with pytest.raises(RulesError, match="duplicate key 'ruleset'"):
            load_ruleset(path)

    def test_same_key_in_other_mappings_and_merge_keys_are_fine(self, tmp_path: Path) -> None:
        """One key name in two mappings, or over a `<<` merge, is not a duplicate."""
        path = write(
            tmp_path / "r.yaml",
            "extends: helpshift\nfields:\n  name: &n {max_length: 40, too_long: truncate}\n"
            "  avatar:\n    <<: *n\n    max_length: 50\n",
        )
        ruleset = load_ruleset(path)
        assert ruleset.fields.name.max_length == 40
        assert (ruleset.fields.avatar.max_length, ruleset.fields.avatar.too_long) == (
            50,
            "truncate",
        )

    @pytest.mark.parametrize("key", ["1", "yes", "null", "2026-01-01", "[a, b]", '"\\udc00"'])
    def test_keys_are_text(self, tmp_path: Path, key: str) -> None:
        """A key YAML reads as a number, boolean, null, date or list is refused at its line."""
        path = write(tmp_path / "r.yaml", f"extends: helpshift\nattributes:\n  {key}: x\n")
        with pytest.raises(RulesError) as caught:
            load_ruleset(path)
        (problem,) = caught.value.problems
        assert (problem.line, problem.path) == (3, "attributes")
        assert any(
            text in problem.message for text in ("quote it", "a key must be text", "surrogate")
        )


#: a rules file setting every bounded numeric knob to the largest value the schema admits
MAXIMA = """\
extends: helpshift
fields:
  user_id: {max_length: 1000000}
  email: {max_length: 1000000}
  name: {max_length: 1000000}
  avatar: {max_length: 1000000}
input: {token: userToken}
verification:
  mode: optional
  method: jwt
  jwt: {leeway_s: 86400, max_age_s: 315360000}
anonymous: {ttl_days: 36500}
"""


class TestNumbers:
    """`check` refuses every number the engine could not start or run with."""

    @pytest.mark.parametrize("literal", [".inf", "-.inf", ".nan", ".NaN", "+.Inf", "1.0e+400"])
    @pytest.mark.parametrize(
        ("knob", "template"),
        [
            ("anonymous.ttl_days", "anonymous:\n  ttl_days: {v}\n"),
            ("fields.name.blocked.0", "fields:\n  name:\n    blocked: [{v}]\n"),
            ("attributes.schema.n.maximum", "attributes:\n  schema:\n    n: {{maximum: {v}}}\n"),
        ],
    )
    def test_non_finite_refused_anywhere(
        self, tmp_path: Path, literal: str, knob: str, template: str
    ) -> None:
        """.inf, .nan and overflowing floats are refused wherever they are, at their line."""
        text = "extends: helpshift\n" + template.format(v=literal)
        path = write(tmp_path / "r.yaml", text)
        with pytest.raises(RulesError) as caught:
            load_ruleset(path)
        (problem,) = caught.value.problems
        assert (problem.path, problem.line) == (knob, text.count("\n"))
        assert f"{literal} is not a finite number" in problem.message

    @pytest.mark.parametrize(
        ("override", "knob"),
        [
            ("anonymous: {ttl_days: 36501}", "anonymous.ttl_days"),
            ("anonymous: {ttl_days: 1.0e+308}", "anonymous.ttl_days"),
            ("fields: {user_id: {max_length: 1000001}}", "fields.user_id.max_length"),
            ("fields: {name: {max_length: 1.0e+308}}", "fields.name.max_length"),
            ("verification: {jwt: {leeway_s: 86401}}", "verification.jwt.leeway_s"),
            ("verification: {jwt: {max_age_s: 315360001}}", "verification.jwt.max_age_s"),
            ("verification: {jwt: {max_age_s: 1.0e+308}}", "verification.jwt.max_age_s"),
        ],
    )
    def test_numeric_knobs_have_upper_bounds(
        self, tmp_path: Path, override: str, knob: str
    ) -> None:
        """A number over its knob's bound is refused, quoted short."""
        path = write(tmp_path / "r.yaml", f"extends: helpshift\n{override}\n")
        with pytest.raises(RulesError) as caught:
            load_ruleset(path)
        (problem,) = caught.value.problems
        assert (problem.path, problem.line) == (knob, 2)
        assert "is greater than the maximum of" in problem.message
        assert len(problem.message) < 140

    def test_engine_starts_and_decides_at_every_maximum(self, tmp_path: Path) -> None:
        """With every numeric knob at its maximum the engine starts and decides events."""
        import jwt

        secret = "m" * 40
        ruleset = load_ruleset(write(tmp_path / "max.yaml", MAXIMA))
        assert ruleset.anonymous.ttl_days == 36500
        assert ruleset.verification.jwt.max_age_s == 315360000
        engine = Engine(ruleset, secrets={"current": secret})
        token = jwt.encode({"sub": "u1", "iat": 1772366400 - 3600}, secret, "HS256")
        first = engine.track("visit", session="s1", id="e0", ts=TS)
        decision = engine.identify({"userToken": token}, session="s1", id="e1", ts=TS)
        assert first.outcome and decision.outcome == "identified"
        assert "auth.verified" in {reason.code for reason in decision.reasons}
        later = engine.track("visit", session="s2", id="e2", ts="2126-01-01T00:00:00Z")
        assert later.outcome

    def test_tiny_ttl_starts(self, tmp_path: Path) -> None:
        """The smallest ttl_days admitted (any positive number) also starts the engine."""
        path = write(tmp_path / "r.yaml", "extends: helpshift\nanonymous: {ttl_days: 1.0e-300}\n")
        engine = Engine(load_ruleset(path))
        assert engine.track("visit", session="s", id="e0", ts=TS).outcome

    def test_long_integer_literal_refused(self, tmp_path: Path) -> None:
        """An integer of thousands of digits is one located line (Python would refuse to
        read it with a ValueError)."""
        path = write(
            tmp_path / "r.yaml",
            f"extends: helpshift\nfields:\n  name: {{max_length: {'9' * 5000}}}\n",
        )
        (problem,) = check_problems(path, tmp_path)
        assert problem.startswith("idrules: r.yaml:3 fields.name.max_length: ")
        assert "more than 64 characters" in problem

    @pytest.mark.parametrize(
        "value", ["2026-01-01", "2026-13-45", "!!binary aGVsbG8=", "!!set {a}", '"\\ud800"']
    )
    def test_non_json_values_refused(self, tmp_path: Path, value: str) -> None:
        """Dates, binary, sets and lone surrogates are not JSON text: refused at their line
        instead of crashing the hash (or the date parser)."""
        path = write(tmp_path / "r.yaml", f"extends: helpshift\nversion: {value}\n")
        (problem,) = check_problems(path, tmp_path)
        assert problem.startswith("idrules: r.yaml:2 version: ")


SECRET_VALUE = "s3cr3t-do-not-print-0123456789"


class TestExtendsTargets:
    """`extends` names a shipped pack or a .yaml/.yml file; nothing else is read or quoted."""

    @pytest.mark.parametrize("name", ["secrets.json", "secrets", "secrets.yaml.bak"])
    def test_non_yaml_base_refused_without_content(self, tmp_path: Path, name: str) -> None:
        """A base not named .yaml/.yml is refused naming the path, never quoting the file."""
        write(tmp_path / name, json.dumps({"audit": SECRET_VALUE, "ruleset": SECRET_VALUE}))
        write(tmp_path / "r.yaml", f"extends: ./{name}\n")
        proc = cli("check", "r.yaml", cwd=tmp_path)
        assert SECRET_VALUE not in proc.stdout + proc.stderr
        (problem,) = check_problems(tmp_path / "r.yaml", tmp_path)
        assert problem.startswith("idrules: r.yaml:1 extends: ")
        assert name in problem and ".yaml/.yml" in problem

    def test_system_file_refused_without_content(self, tmp_path: Path) -> None:
        """`extends: /etc/passwd` is refused by its name; none of its lines are printed."""
        write(tmp_path / "r.yaml", "extends: /etc/passwd\n")
        proc = cli("check", "r.yaml", cwd=tmp_path)
        assert proc.returncode == 1
        assert "root:" not in proc.stderr and "/bin/" not in proc.stderr
        assert proc.stderr.splitlines()[0] == (
            "idrules: r.yaml:1 extends: extends takes a shipped pack's name or a .yaml/.yml "
            "file, not /etc/passwd"
        )

    def test_yaml_link_to_other_file_refused(self, tmp_path: Path) -> None:
        """A .yaml name that links to a file of another kind is refused too."""
        write(tmp_path / "secrets.json", json.dumps({"audit": SECRET_VALUE}))
        (tmp_path / "base.yaml").symlink_to(tmp_path / "secrets.json")
        write(tmp_path / "r.yaml", "extends: base.yaml\n")
        with pytest.raises(RulesError) as caught:
            load_ruleset(tmp_path / "r.yaml")
        assert SECRET_VALUE not in str(caught.value)
        assert ".yaml/.yml" in caught.value.problems[0].message

    def test_link_loop_is_not_found(self, tmp_path: Path) -> None:
        """A .yaml link that points at itself is one line, not a traceback."""
        (tmp_path / "loop.yaml").symlink_to(tmp_path / "loop.yaml")
        write(tmp_path / "r.yaml", "extends: loop.yaml\n")
        (problem,) = check_problems(tmp_path / "r.yaml", tmp_path)
        assert problem == "idrules: r.yaml:1 extends: rules file not found: loop.yaml"

    def test_yaml_bases_still_load(self, tmp_path: Path) -> None:
        """.yaml and .yml bases, relative or absolute, and packs by name keep working."""
        write(tmp_path / "a.yml", "extends: helpshift\nfields: {name: {max_length: 9}}\n")
        write(tmp_path / "b.yaml", f"extends: {tmp_path / 'a.yml'}\n")
        write(tmp_path / "c.yaml", "extends: b.yaml\n")
        assert load_ruleset(tmp_path / "c.yaml").fields.name.max_length == 9

    def test_base_that_is_not_a_mapping_says_so_without_content(self, tmp_path: Path) -> None:
        """A .yaml base holding a list or text is refused as not a mapping, content unquoted."""
        write(tmp_path / "list.yaml", f"- {SECRET_VALUE}\n- two\n")
        write(tmp_path / "text.yaml", f"{SECRET_VALUE} and more words\n")
        for base in ("list.yaml", "text.yaml"):
            write(tmp_path / "r.yaml", f"extends: {base}\n")
            (problem,) = check_problems(tmp_path / "r.yaml", tmp_path)
            assert problem == f"idrules: {base}:1: a rules file must be a YAML mapping of knobs"

    def test_directory_is_named_a_directory(self, tmp_path: Path) -> None:
        """`check DIR`, `replay --rules DIR` and `extends: dir.yaml/` say it is a directory."""
        (tmp_path / "conf").mkdir()
        (tmp_path / "d.yaml").mkdir()
        write(tmp_path / "events.jsonl", "")
        (problem,) = check_problems(tmp_path / "conf", tmp_path)
        assert problem == "idrules: conf: conf is a directory, not a rules file"
        proc = cli("replay", "events.jsonl", "--rules", "conf", cwd=tmp_path)
        assert proc.stderr == "idrules: error: conf: conf is a directory, not a rules file\n"
        write(tmp_path / "r.yaml", "extends: d.yaml\n")
        (problem,) = check_problems(tmp_path / "r.yaml", tmp_path)
        assert problem == "idrules: r.yaml:1 extends: d.yaml is a directory, not a rules file"


class TestShortMessages:
    """A problem is one short line: it quotes an offending value cut short, and says it once."""

    def test_empty_file_reports_each_problem_once(self, tmp_path: Path) -> None:
        """An empty file lacks `ruleset` and `version`: two problems, each said once."""
        write(tmp_path / "empty.yaml", "")
        problems = check_problems(tmp_path / "empty.yaml", tmp_path)
        assert problems == [
            "idrules: empty.yaml:1 ruleset: this knob is required",
            "idrules: empty.yaml:1 version: this knob is required",
        ]

    @pytest.mark.parametrize(
        "override",
        [
            "ruleset: {v}",
            "fields: {{name: {{max_length: {v}}}}}",
            "fields: {{name: {{too_long: {v}}}}}",
            "input: {{email: {{a: {v}}}}}",
            "audit: {v}",
            "{v}: 1",
            "attributes: {{schema: {{plan: {{type: {v}}}}}}}",
            "attributes: {{schema: {{plan: {{$ref: '#/{v}'}}}}}}",
            "attributes: {{schema: {{plan: {{pattern: '(?={v})'}}}}}}",
        ],
    )
    def test_long_values_are_cut(self, tmp_path: Path, override: str) -> None:
        """A 1,000-character value is quoted in at most 60 characters, wherever it is."""
        value = "Q" * 1000
        write(tmp_path / "r.yaml", "extends: helpshift\n" + override.format(v=value) + "\n")
        (problem,) = check_problems(tmp_path / "r.yaml", tmp_path)
        assert "Q" * 61 not in problem
        assert "…" in problem
        assert len(problem) < 300


class TestAttributeSchemaReferences:
    """Every `$ref` of an attribute schema is local and resolves, checked at load time."""

    def load(self, tmp_path: Path, schema: str) -> object:
        """Load helpshift with attribute ``plan`` of ``schema`` (flow YAML)."""
        text = f"extends: helpshift\nattributes:\n  schema:\n    plan: {schema}\n"
        return load_ruleset(write(tmp_path / "r.yaml", text))

    @pytest.mark.parametrize(
        ("schema", "knob", "message"),
        [
            ("{$ref: '#/nope'}", "plan.$ref", "does not resolve"),
            ("{$ref: '#/$defs/x', $defs: {y: {}}}", "plan.$ref", "does not resolve"),
            ("{$ref: '#missing-anchor'}", "plan.$ref", "does not resolve"),
            ("{items: {$ref: '#/items/items'}}", "plan.items.$ref", "does not resolve"),
            ("{$ref: 'https://example.com/x.json'}", "plan.$ref", "not in this attribute's"),
            ("{$ref: 'other.json#/a'}", "plan.$ref", "not in this attribute's"),
            ("{$ref: '/etc/passwd'}", "plan.$ref", "not in this attribute's"),
            ("{$ref: '#/$defs/a/minimum', $defs: {a: {minimum: 3}}}", "plan.$ref", "not a schema"),
            ("{$ref: '#/enum/0', enum: [{type: 12}]}", "plan.$ref", "points at an invalid schema"),
            ("{$dynamicRef: '#meta'}", "plan.$dynamicRef", "not supported"),
            ("{$schema: 'https://example.com/s'}", "plan.$schema", "unknown $schema"),
        ],
    )
    def test_bad_reference_refused(
        self, tmp_path: Path, schema: str, knob: str, message: str
    ) -> None:
        """An unresolvable or non-local reference is one problem at the attribute's line."""
        with pytest.raises(RulesError) as caught:
            self.load(tmp_path, schema)
        (problem,) = caught.value.problems
        assert (problem.line, problem.path) == (4, f"attributes.schema.{knob}")
        assert message in problem.message

    def test_remote_reference_never_fetched(self, tmp_path: Path, monkeypatch) -> None:
        """Loading (and `check`) never opens a URL for a `$ref`."""
        import urllib.request

        def no_network(*args: object, **kwargs: object) -> None:
            raise AssertionError("a $ref was fetched")

        monkeypatch.setattr(urllib.request, "urlopen", no_network)
        with pytest.raises(RulesError, match="nothing is fetched"):
            self.load(tmp_path, "{properties: {a: {$ref: 'http://127.0.0.1:9/x.json'}}}")

    @pytest.mark.parametrize(
        "schema",
        [
            "{$ref: '#'}",
            "{allOf: [{$ref: '#'}]}",
            "{$defs: {a: {$ref: '#/$defs/b'}, b: {anyOf: [{$ref: '#/$defs/a'}]}},"
            " $ref: '#/$defs/a'}",
            "{$anchor: me, not: {$ref: '#me'}}",
        ],
    )
    def test_reference_loop_refused(self, tmp_path: Path, schema: str) -> None:
        """A schema that applies itself to the same value without end is refused at load."""
        with pytest.raises(RulesError, match="without end"):
            self.load(tmp_path, schema)

    def test_too_long_a_chain_refused(self, tmp_path: Path) -> None:
        """A chain of more $refs than the validator's stack allows is refused; 128 load."""

        def chain(length: int) -> str:
            defs = ", ".join(f"a{n}: {{$ref: '#/$defs/a{n + 1}'}}" for n in range(length - 1))
            return f"{{$ref: '#/$defs/a0', $defs: {{{defs}, a{length - 1}: {{type: string}}}}}}"

        with pytest.raises(RulesError, match="more than 128 sub-schemas"):
            self.load(tmp_path, chain(129))
        ruleset = self.load(tmp_path, chain(128))
        engine = Engine(ruleset)  # type: ignore[arg-type]
        decision = engine.identify({"userId": "u1"}, session="s", id="e1", ts=TS)
        assert decision.outcome == "identified"

    @pytest.mark.parametrize(
        "schema",
        [
            "{$defs: {code: {type: string, maxLength: 3}}, $ref: '#/$defs/code'}",
            "{$anchor: top, $defs: {c: {type: string}}, allOf: [{$ref: '#/$defs/c'}]}",
            "{$id: 'https://example.com/plan', $defs: {c: {type: string}}, $ref: '#/$defs/c'}",
            "{$schema: 'http://json-schema.org/draft-07/schema#', definitions: {c: {type: string}},"
            " $ref: '#/definitions/c'}",
            "{type: object, properties: {kids: {type: array, items: {$ref: '#'}}}}",
        ],
    )
    def test_local_references_load(self, tmp_path: Path, schema: str) -> None:
        """Local references (pointers, anchors, under a root $id, draft-07, recursion into
        the value) load as before."""
        ruleset = self.load(tmp_path, schema)
        assert "plan" in ruleset.attributes.schema  # type: ignore[attr-defined]
