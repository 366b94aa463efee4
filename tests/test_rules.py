"""Rules files (SPEC §4, §6 ``check``): shipped packs, located errors, ``extends``,
provenance of every knob, the sha256 of the effective form, the schema validator."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

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


def cli(*args: str, cwd: Path | str | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real command line."""
    return subprocess.run(
        [sys.executable, "-m", "idrules", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=60,
    )


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
        assert by_path.cite("matching.precedence").startswith(f"rules/{pack}.yaml:")

    @pytest.mark.parametrize("pack", PACKS)
    def test_pack_citations_are_relative(self, pack: str) -> None:
        """Every knob of a pack cites the pack or defaults.yaml by bare name, never a full path."""
        ruleset = load_ruleset(pack)
        sources = {source for source, _ in ruleset.provenance.locations.values()}
        assert sources <= {f"{pack}.yaml", "defaults.yaml"}
        assert f"{pack}.yaml" in sources
        for knob in ("matching.precedence", "fields.user_id.max_length", "anonymous.ttl_days"):
            assert not os.path.isabs(ruleset.cite(knob))
            assert str(REPO) not in ruleset.cite(knob)


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
            conf.cite("fields.user_id.max_length") == "conf/rules.yaml:3 fields.user_id.max_length"
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
        assert conf.cite(knob) == f"helpshift.yaml:{key_line(HELPSHIFT, knob)} {knob}"

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
        assert conf.cite(knob) == f"defaults.yaml:{key_line(DEFAULTS_FILE, knob)} {knob}"

    def test_list_item_cites_its_own_line(self, tmp_path: Path, monkeypatch) -> None:
        """Items of a block list are located line by line (used to point at a bad item)."""
        write(
            tmp_path / "r.yaml",
            "extends: helpshift\nmatching:\n  precedence:\n    - email\n    - user_id\n",
        )
        monkeypatch.chdir(tmp_path)
        ruleset = load_ruleset("r.yaml")
        assert ruleset.provenance.locations[("matching", "precedence", 1)] == ("r.yaml", 5)
        assert ruleset.cite("matching.precedence") == "r.yaml:3 matching.precedence"

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
