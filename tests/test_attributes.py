"""Custom attributes against ``attributes.schema`` (docs/rules.md): schemas run in linear time
(``pattern`` on RE2), are compiled once, and what the engine cannot run is refused at load."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from idrules import Engine, RulesError, load_ruleset
from idrules.attributes import AttributeFilter
from idrules.rules import attribute_schema as schema_module

TS = "2026-03-01T12:00:00Z"
#: nested quantifiers: Python's `re` backtracks exponentially on a near-miss
EVIL = "^(a+)+$"
#: a near-miss Python's `re` needs about half a second for (each more "a" doubles it): every
#: test below tries it first, so a backtracking engine fails them quickly instead of hanging
#: on the longer values
NEAR_MISS = "a" * 24 + "b"


def assert_fast(filtered: AttributeFilter, payload: dict[str, object]) -> None:
    """One call on ``payload`` is decided in under 50 ms (generous: RE2 takes microseconds)."""
    start = time.perf_counter()
    filtered.filter(payload)
    assert time.perf_counter() - start < 0.05


def rules(tmp_path: Path, attributes: str) -> Path:
    """A rules file of the defaults with ``attributes.schema`` set to ``attributes``."""
    path = tmp_path / "rules.yaml"
    path.write_text(
        f"ruleset: attrs\nversion: 1\nattributes:\n  schema:\n{attributes}", encoding="utf-8"
    )
    return path


def attribute_filter(tmp_path: Path, schema: str) -> AttributeFilter:
    """The compiled attribute filter for one attribute ``code`` of ``schema`` (flow YAML)."""
    return AttributeFilter(load_ruleset(rules(tmp_path, f"    code: {schema}\n")))


class TestPatternKeyword:
    """`pattern` runs on RE2: linear time, unanchored search as JSON Schema says."""

    def test_nested_quantifiers_decide_fast(self, tmp_path: Path) -> None:
        """`^(a+)+$` on a near-miss is decided at once (Python's re: seconds per call)."""
        filtered = attribute_filter(tmp_path, f"{{type: string, pattern: '{EVIL}'}}")
        start = time.perf_counter()
        result = filtered.filter({"code": NEAR_MISS})
        assert time.perf_counter() - start < 0.05
        assert result.kept == {}
        assert [r.code for r in result.reasons] == ["attribute.invalid"]

    def test_ten_kilobyte_value_well_under_a_millisecond(self, tmp_path: Path) -> None:
        """100 decisions on a 10 KB value take well under 50 ms in all (bound kept generous)."""
        filtered = attribute_filter(tmp_path, f"{{type: string, pattern: '{EVIL}'}}")
        assert_fast(filtered, {"code": NEAR_MISS})
        miss, hit = "a" * 10_000 + "b", "a" * 10_000
        filtered.filter({"code": miss})  # warm up
        start = time.perf_counter()
        for _ in range(100):
            assert filtered.filter({"code": miss}).kept == {}
        assert time.perf_counter() - start < 0.05
        assert filtered.filter({"code": hit}).kept == {"code": hit}

    def test_through_the_engine(self, tmp_path: Path) -> None:
        """An identify carrying the near-miss value is decided quickly; the attribute dropped."""
        ruleset = load_ruleset(rules(tmp_path, f"    code: {{pattern: '{EVIL}'}}\n"))
        assert_fast(AttributeFilter(ruleset), {"code": NEAR_MISS})
        engine = Engine(ruleset)
        payload = {"user_id": "u1", "attributes": {"code": "a" * 10_000 + "b", "n": 1}}
        start = time.perf_counter()
        decision = engine.identify(payload, session="s", id="e1", ts=TS)
        assert time.perf_counter() - start < 0.5
        assert decision.outcome == "identified"
        invalid = [r for r in decision.reasons if r.code == "attribute.invalid"]
        assert [r.field for r in invalid] == ["code"]

    @pytest.mark.parametrize(
        ("pattern", "value"),
        [
            ("b", "abc"),
            ("^b", "abc"),
            ("^a.c$", "abc"),
            ("c$", "abc\n"),
            ("^[0-9]{3}-[0-9]{4}$", "555-1234"),
            ("^[0-9]{3}-[0-9]{4}$", "555-12345"),
            ("(?i)^abc$", "ABC"),
            ("^[a-z_][a-z0-9_]*$", "user_1"),
            ("^.{2}$", "hé"),
            ("^$", ""),
            ("é", "café"),
        ],
    )
    def test_search_semantics(self, tmp_path: Path, pattern: str, value: str) -> None:
        """A pattern matches anywhere unless anchored, as JSON Schema (and `re.search`) say;
        `$` is the end of the text only (ECMA-262, RE2), not before a final newline."""
        filtered = attribute_filter(tmp_path, f"{{type: string, pattern: {json.dumps(pattern)}}}")
        expected = re.search(pattern.replace("$", r"\Z"), value) is not None
        assert ("code" in filtered.filter({"code": value}).kept) is expected

    def test_lone_surrogate_is_invalid_not_an_error(self, tmp_path: Path) -> None:
        """A string RE2 cannot encode (a lone surrogate from JSON) fails its pattern."""
        filtered = attribute_filter(tmp_path, "{pattern: '.'}")
        result = filtered.filter({"code": "\ud800"})
        assert result.kept == {}
        assert [r.code for r in result.reasons] == ["attribute.invalid"]

    def test_pattern_ignores_non_strings(self, tmp_path: Path) -> None:
        """`pattern` constrains strings only: a number passes a schema with no `type`."""
        filtered = attribute_filter(tmp_path, "{pattern: '^x$'}")
        assert filtered.filter({"code": 5}).kept == {"code": 5}

    def test_patterns_under_sub_schemas(self, tmp_path: Path) -> None:
        """Patterns in properties, items, propertyNames and $defs all run on RE2."""
        schema = (
            "{type: object, propertyNames: {pattern: '^[a-z]+$'},"
            f" properties: {{p: {{pattern: '{EVIL}'}}, l: {{items: {{$ref: '#/$defs/e'}}}}}},"
            f" $defs: {{e: {{pattern: '{EVIL}'}}}}}}"
        )
        filtered = attribute_filter(tmp_path, schema)
        assert_fast(filtered, {"code": {"p": NEAR_MISS}})
        assert_fast(filtered, {"code": {"l": ["aa", NEAR_MISS]}})
        start = time.perf_counter()
        near_miss = "a" * 40 + "b"
        assert filtered.filter({"code": {"p": near_miss}}).kept == {}
        assert filtered.filter({"code": {"l": ["aa", near_miss]}}).kept == {}
        assert filtered.filter({"code": {"Bad": "x"}}).kept == {}
        assert time.perf_counter() - start < 0.05
        good = {"p": "aaa", "l": ["a", "aa"]}
        assert filtered.filter({"code": good}).kept == {"code": good}


class TestPatternsAtLoad:
    """A pattern RE2 cannot run is refused by `load_ruleset` (and `check`), located."""

    @pytest.mark.parametrize(
        "pattern",
        [r"(a)\1", "(?=a)", "(?!a)b", "(?<=a)b", r"\Z", "a{1001}"],
    )
    def test_uncompilable_pattern_refused(self, tmp_path: Path, pattern: str, capfd) -> None:
        """Backreferences, lookaround and other non-RE2 syntax: one problem at its line."""
        path = rules(
            tmp_path,
            f"    plan: {{type: string}}\n    code:\n      pattern: {json.dumps(pattern)}\n",
        )
        with pytest.raises(RulesError) as caught:
            load_ruleset(path)
        (problem,) = caught.value.problems
        assert (problem.line, problem.path) == (7, "attributes.schema.code.pattern")
        assert (
            "RE2 cannot compile" in problem.message or "not a valid JSON Schema" in problem.message
        )
        assert capfd.readouterr().err == ""  # RE2's own logging is off

    def test_nested_pattern_located(self, tmp_path: Path) -> None:
        """A bad pattern deep in a schema is cited at its own line and path."""
        path = rules(
            tmp_path,
            "    code:\n      type: object\n      properties:\n        ref:\n"
            "          type: string\n          pattern: '(x)\\1'\n",
        )
        with pytest.raises(RulesError) as caught:
            load_ruleset(path)
        (problem,) = caught.value.problems
        assert (problem.line, problem.path) == (10, "attributes.schema.code.properties.ref.pattern")

    def test_pattern_properties_refused(self, tmp_path: Path) -> None:
        """`patternProperties` would run Python's `re` on keys: refused, saying what to use."""
        path = rules(tmp_path, f"    code: {{patternProperties: {{'{EVIL}': {{}}}}}}\n")
        with pytest.raises(RulesError) as caught:
            load_ruleset(path)
        (problem,) = caught.value.problems
        assert problem.path == "attributes.schema.code.patternProperties"
        assert "not supported" in problem.message and "propertyNames" in problem.message

    def test_check_says_it_in_one_line(self, tmp_path: Path) -> None:
        """`idrules check` prints the located problem and a summary, no traceback."""
        import subprocess
        import sys

        rules(tmp_path, "    code: {pattern: '(?=a)'}\n")
        proc = subprocess.run(
            [sys.executable, "-m", "idrules", "check", "rules.yaml"],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=60,
        )
        assert proc.returncode == 1
        assert proc.stderr.splitlines() == [
            'idrules: rules.yaml:5 attributes.schema.code.pattern: RE2 cannot compile "(?=a)": '
            "invalid perl operator: (?=",
            "idrules: 1 problem in rules.yaml",
        ]


class TestAttributeFilterBuild:
    """The filter compiles each attribute's validator once, at engine start."""

    def test_validators_and_patterns_built_once(self, tmp_path: Path, monkeypatch) -> None:
        """Deciding many calls builds no validator and compiles no pattern."""
        ruleset = load_ruleset(
            rules(tmp_path, f"    a: {{pattern: '{EVIL}'}}\n    b: {{pattern: '^b'}}\n")
        )
        built: list[object] = []
        compiled: list[str] = []
        real_build, real_compile = (
            schema_module.validator_for_attribute,
            schema_module.compile_pattern,
        )

        def build(schema: object) -> object:
            built.append(schema)
            return real_build(schema)

        def compile_pattern(pattern: str) -> object:
            compiled.append(pattern)
            return real_compile(pattern)

        monkeypatch.setattr("idrules.attributes.validator_for_attribute", build)
        monkeypatch.setattr(schema_module, "compile_pattern", compile_pattern)
        filtered = AttributeFilter(ruleset)
        assert (len(built), sorted(compiled)) == (2, sorted([EVIL, "^b"]))
        for n in range(200):
            filtered.filter({"a": "a" * n, "b": f"b{n}"})
        assert (len(built), len(compiled)) == (2, 2)

    def test_format_is_not_enforced(self, tmp_path: Path) -> None:
        """`format` is an annotation only (as in JSON Schema by default): not checked."""
        filtered = attribute_filter(tmp_path, "{type: string, format: email}")
        assert filtered.filter({"code": "not an email"}).kept == {"code": "not an email"}


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-3, 3)
    | st.sampled_from([0.0, 1.0, -0.0, 2.5])
    | st.sampled_from(["", "a", "b"]),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.sampled_from(["a", "b"]), children, max_size=2)
    ),
    max_leaves=8,
)


class TestUniqueItemsKeyword:
    """`uniqueItems` decides in linear time, with jsonschema's notion of equality."""

    def test_many_objects_decide_fast(self, tmp_path: Path) -> None:
        """An array of distinct objects is decided at once (jsonschema: pairwise, seconds)."""
        filtered = attribute_filter(tmp_path, "{type: array, uniqueItems: true}")
        assert_fast(filtered, {"code": [{"n": n} for n in range(1_000)]})
        distinct = [{"n": n, "tag": "x"} for n in range(5_000)]
        start = time.perf_counter()
        assert filtered.filter({"code": distinct}).kept == {"code": distinct}
        assert filtered.filter({"code": [*distinct, {"tag": "x", "n": 7}]}).kept == {}
        assert time.perf_counter() - start < 0.5

    @settings(max_examples=300, deadline=None)
    @given(items=st.lists(json_values, max_size=6))
    def test_same_verdict_as_jsonschema(self, items: list[object]) -> None:
        """Any array of JSON values is unique for us exactly when it is for jsonschema."""
        ours = schema_module.validator_for_attribute({"uniqueItems": True})
        theirs = jsonschema.Draft202012Validator({"uniqueItems": True})
        assert ours.is_valid(items) is theirs.is_valid(items)

    @pytest.mark.parametrize(
        ("items", "unique"),
        [
            ([1, 1.0], False),
            ([True, 1], True),
            ([False, 0, None, ""], True),
            ([{"a": 1, "b": 2}, {"b": 2, "a": 1}], False),
            ([[1, [2]], [1, [2.0]]], False),
            ([[True], [1]], True),
        ],
    )
    def test_equality_cases(self, items: list[object], unique: bool) -> None:
        """1 and 1.0 are equal, true and 1 are not, object key order does not matter."""
        validator = schema_module.validator_for_attribute({"uniqueItems": True})
        assert validator.is_valid(items) is unique
