"""The reason-code registry is the one source of every code the engine gives."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from idrules import Engine, load_ruleset
from idrules.decision import Citation
from idrules.reasons import CATALOG, Check, Code, field_code, is_known

SRC = Path(__file__).resolve().parent.parent / "src" / "idrules"
FIXED = {str(code) for code in Code}


class TestRegistry:
    """idrules.reasons: codes, checks, catalog."""

    def test_every_code_documented(self) -> None:
        """Every fixed code and every field check appears in the catalog the docs come from."""
        listed = {code for entry in CATALOG for code in entry.codes}
        assert listed >= FIXED
        assert {f"<field>.{check}" for check in Check} <= listed

    def test_known_codes(self) -> None:
        """is_known accepts the registry's codes and field checks, and nothing else."""
        assert all(is_known(code) for code in FIXED)
        assert is_known(field_code("user_id", Check.TOO_LONG))
        assert not is_known("user_id.nonsense")
        assert not is_known("match.something")

    def test_no_code_written_twice(self) -> None:
        """No module but reasons.py spells a reason code as a string literal."""
        offenders = []
        for path in SRC.rglob("*.py"):
            if path.name == "reasons.py":
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Constant) and node.value in FIXED:
                    offenders.append(f"{path.relative_to(SRC)}:{node.lineno} {node.value}")
        assert offenders == []

    def test_engine_gives_only_known_codes(self) -> None:
        """Decisions of a varied run carry only registered codes."""
        engine = Engine("helpshift")
        decisions = [
            engine.identify({"userId": " x"}, session="a"),
            engine.identify({"userId": "u1", "userEmail": "bad"}, session="b"),
            engine.track("vote", session="b"),
            engine.logout(session="b"),
            engine.decide({"id": "x"}),
        ]
        codes = {code for d in decisions for code in d.codes}
        assert codes and all(is_known(code) for code in codes)


class TestCitations:
    """A citation names an existing knob, or the engine refuses to start."""

    def test_unknown_knob_is_an_error(self) -> None:
        """Citing a mistyped knob raises at once, rather than citing a parent knob."""
        ruleset = load_ruleset("helpshift")
        with pytest.raises(LookupError, match=r"matching\.precedense"):
            ruleset.cite("matching.precedense")

    def test_citation_is_structured(self) -> None:
        """A citation is (file, line, knob), shown as `file:line knob`."""
        cited = load_ruleset("helpshift").cite("matching.precedence")
        assert isinstance(cited, Citation) and cited.source == "helpshift.yaml"
        assert Citation.parse(str(cited)) == cited

    def test_attribute_names_with_dots(self, tmp_path: Path) -> None:
        """An attribute named with a dot is cited by its own line, not split into a path."""
        rules = tmp_path / "r.yaml"
        rules.write_text(
            "extends: quackback\nattributes:\n  schema:\n    plan.tier: {type: string}\n"
        )
        engine = Engine(str(rules), secrets={"current": "k" * 40})
        d = engine.identify({"id": "u1", "email": "a@example.com", "plan.tier": 5})
        (reason,) = [r for r in d.reasons if r.code == Code.ATTRIBUTE_INVALID]
        assert reason.rule == f"{rules}:4 attributes.schema.plan.tier"
