"""Run one scenario (the format of ``shared/conformance/README.md``) through the real CLI.

A scenario is a dict: ``rules`` (a pack name, or an object written as ``rules.yaml``),
optional ``secrets``, ``events`` (a string entry is written as that raw line) and the
expectations ``expect``, ``outcome_counts``, ``export``, ``export_count`` and
``never_in_decisions``. :func:`run_scenario` writes the files into a fresh folder, runs
``python -m idrules replay`` and ``python -m idrules export`` there, checks every expectation,
then replays the same scenario in a second folder under another ``TZ`` and ``PYTHONHASHSEED``
and requires byte-identical decisions and export.

The scenario is validated before anything runs: an unknown key, a value of the wrong type, an
unknown outcome or reason code is an error, so a typo can never make a check vanish.

Readings of the README: ``rule_cites`` holds when some reason with that code names one of the
knobs and every reason with that code cites ``file.yaml:LINE knob``; ``outcome_counts``
checks the outcomes it lists (give ``0`` to require none). One addition to the format: an
``export`` / ``export_count`` ``where`` may hold ``profile_of: EVENT`` (an id or ``#N``), the
profile that event's decision resolved to (how an anonymous profile is found).

Whatever a scenario expects, every run must also keep docs/decisions.md's promises: one decision per
event line, each with its physical ``line``, a known outcome, every reason citing
``file.yaml:LINE knob`` (``null`` for ``event.invalid`` and ``event.duplicate``), and no
value of ``secrets`` anywhere in the decisions, the export or what the commands print.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import attrs
import yaml
from support import EXPORT_KEYS

from idrules.reasons import Check, is_known

OUTCOMES = frozenset(("identified", "anonymous", "rejected", "logged_out", "recorded", "duplicate"))
#: a reason's ``rule`` when it cites a rules file: ``file.yaml:LINE knob``
_CITATION = re.compile(r"^([^ ]+\.yaml):(\d+) (\S+)$")
EXPORT_FIELDS = frozenset(EXPORT_KEYS)
SCENARIO_KEYS = frozenset(
    (
        "name",
        "source",
        "rules",
        "secrets",
        "events",
        "expect",
        "outcome_counts",
        "export",
        "export_count",
        "never_in_decisions",
    )
)
#: the two runs: the second differs in time zone and hash seed, and must give the same bytes
RUN_ENVIRONMENTS = (
    {"TZ": "UTC", "PYTHONHASHSEED": "0"},
    {"TZ": "Asia/Kolkata", "PYTHONHASHSEED": "4242"},
)
TIMEOUT_S = 120


class ScenarioError(ValueError):
    """A scenario file that is itself wrong: an unknown key, a value of the wrong type.

    Not an :class:`AssertionError`: a broken scenario is an error even under ``xfail``.
    """


class ScenarioFailure(AssertionError):
    """The engine did not do what the scenario expects."""


# validation -------------------------------------------------------------------------------
def _is_str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _is_code_list(value: Any) -> bool:
    return _is_str_list(value) and all(_known_code(v) for v in value)


def _known_code(code: str) -> bool:
    """A code of the registry (idrules.reasons), for any field name."""
    field, _, check = code.partition(".")
    return is_known(code) or (bool(field) and check in set(Check))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_rule_cites(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and bool(value)
        and all(
            _known_code(code) and (isinstance(knobs, str) or (_is_str_list(knobs) and knobs))
            for code, knobs in value.items()
        )
    )


_EXPECT_KEYS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "event": (lambda v: isinstance(v, str) and bool(v), "an event id or '#N'"),
    "outcome": (lambda v: v in OUTCOMES, f"one of {sorted(OUTCOMES)}"),
    "outcome_in": (
        lambda v: _is_str_list(v) and bool(v) and set(v) <= OUTCOMES,
        "a non-empty list of outcomes",
    ),
    "created": (lambda v: isinstance(v, bool), "true or false"),
    "profile_null": (lambda v: isinstance(v, bool), "true or false"),
    "profile_as": (lambda v: _is_str_list(v) and bool(v), "a non-empty list of events"),
    "profile_not_as": (lambda v: _is_str_list(v) and bool(v), "a non-empty list of events"),
    "merged_from": (lambda v: _is_str_list(v) and bool(v), "a non-empty list of events"),
    "merged_count": (lambda v: _is_int(v) and v >= 0, "a count"),
    "reasons": (_is_code_list, "a list of docs/reasons.md reason codes"),
    "no_reasons": (_is_code_list, "a list of docs/reasons.md reason codes"),
    "rule_cites": (_is_rule_cites, "an object: reason code -> knob name(s)"),
    "line": (lambda v: _is_int(v) and v >= 1, "a 1-based line number"),
    "identity": (lambda v: isinstance(v, dict) and bool(v), "a non-empty object"),
    "attributes": (lambda v: isinstance(v, dict), "an object"),
}


def _check_where(where: Any, problems: list[str], at: str) -> None:
    if not isinstance(where, dict):
        problems.append(f"{at}.where: must be an object")
        return
    for key, value in where.items():
        if key == "profile_of":
            if not isinstance(value, str) or not value:
                problems.append(f"{at}.where.profile_of: must be an event id or '#N'")
        elif key not in EXPORT_FIELDS:
            problems.append(f"{at}.where: unknown export field {key!r}")


def validate_scenario(scenario: Any, name: str = "scenario") -> None:
    """Raise :class:`ScenarioError` listing every problem of the scenario's own shape."""
    problems: list[str] = []
    if not isinstance(scenario, dict):
        raise ScenarioError(f"[{name}] a scenario must be a JSON object")
    for key in scenario:
        if key not in SCENARIO_KEYS:
            problems.append(f"unknown scenario key {key!r}")
    for key in ("name", "rules", "events"):
        if key not in scenario:
            problems.append(f"missing scenario key {key!r}")
    rules = scenario.get("rules")
    if rules is not None and not (isinstance(rules, str) and rules) and not isinstance(rules, dict):
        problems.append("rules: must be a pack name or an object")
    secrets = scenario.get("secrets")
    if secrets is not None and not (
        isinstance(secrets, dict) and all(isinstance(v, str) for v in secrets.values())
    ):
        problems.append("secrets: must be an object of name -> text")
    events = scenario.get("events")
    if events is not None:
        if not isinstance(events, list) or not events:
            problems.append("events: must be a non-empty list")
        else:
            for index, entry in enumerate(events):
                if isinstance(entry, str) and ("\n" in entry or "\r" in entry):
                    problems.append(f"events[{index}]: a raw line may not hold a line break")
    expect = scenario.get("expect", [])
    if not isinstance(expect, list):
        problems.append("expect: must be a list")
        expect = []
    for index, item in enumerate(expect):
        at = f"expect[{index}]"
        if not isinstance(item, dict):
            problems.append(f"{at}: must be an object")
            continue
        if "event" not in item:
            problems.append(f"{at}: needs 'event'")
        if len(item) < 2:
            problems.append(f"{at}: expects nothing")
        for key, value in item.items():
            spec = _EXPECT_KEYS.get(key)
            if spec is None:
                problems.append(f"{at}: unknown expectation {key!r}")
            elif not spec[0](value):
                problems.append(f"{at}.{key}: must be {spec[1]}, not {value!r}")
    counts = scenario.get("outcome_counts")
    if counts is not None and not (
        isinstance(counts, dict)
        and counts
        and all(k in OUTCOMES and _is_int(v) and v >= 0 for k, v in counts.items())
    ):
        problems.append("outcome_counts: must map outcomes to counts")
    for index, item in enumerate(scenario.get("export", [])):
        at = f"export[{index}]"
        if not isinstance(item, dict) or "where" not in item or len(item) < 2:
            problems.append(f"{at}: needs 'where' and at least one check")
            continue
        for key, value in item.items():
            if key == "where":
                _check_where(value, problems, at)
            elif key == "is":
                if not isinstance(value, dict) or not value or set(value) - EXPORT_FIELDS:
                    problems.append(f"{at}.is: must be a non-empty object of export fields")
            elif key == "activity_includes":
                if not _is_str_list(value) or not value:
                    problems.append(f"{at}.activity_includes: must be a list of event ids")
            elif key == "lacks":
                if not isinstance(value, dict) or not value or set(value) - EXPORT_FIELDS:
                    problems.append(f"{at}.lacks: must map export list fields to values")
                elif not all(isinstance(v, list) and v for v in value.values()):
                    problems.append(f"{at}.lacks: each field must list values")
            else:
                problems.append(f"{at}: unknown export check {key!r}")
    for index, item in enumerate(scenario.get("export_count", [])):
        at = f"export_count[{index}]"
        if not isinstance(item, dict) or set(item) != {"where", "count"}:
            problems.append(f"{at}: needs exactly 'where' and 'count'")
            continue
        _check_where(item["where"], problems, at)
        if not _is_int(item["count"]) or item["count"] < 0:
            problems.append(f"{at}.count: must be a count")
    never = scenario.get("never_in_decisions")
    if never is not None and not (_is_str_list(never) and never and all(never)):
        problems.append("never_in_decisions: must be a list of non-empty strings")
    if problems:
        raise ScenarioError(f"[{name}] invalid scenario:\n  " + "\n  ".join(problems))


# running ----------------------------------------------------------------------------------
@attrs.frozen
class Command:
    """One finished command: its arguments, exit status and output."""

    args: tuple[str, ...]
    returncode: int
    stdout: bytes
    stderr: bytes


@attrs.frozen
class Run:
    """One replay + export of a scenario in its own folder."""

    folder: Path
    replay: Command
    export: Command
    decisions_bytes: bytes

    @property
    def outputs(self) -> list[tuple[str, bytes]]:
        """Everything the commands printed, and the decisions, each with a label."""
        return [
            ("decisions.jsonl", self.decisions_bytes),
            ("replay stdout", self.replay.stdout),
            ("replay stderr", self.replay.stderr),
            ("export stdout", self.export.stdout),
            ("export stderr", self.export.stderr),
        ]


def _child_env(extra: Mapping[str, str]) -> dict[str, str]:
    """The environment without any IDRULES_* variable (secrets come from the scenario only)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("IDRULES_")}
    env.update(extra)
    return env


def _command(args: list[str], folder: Path, env: Mapping[str, str]) -> Command:
    full = [sys.executable, "-m", "idrules", *args]
    done = subprocess.run(
        full,
        cwd=folder,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    return Command(tuple(args), done.returncode, done.stdout, done.stderr)


def write_inputs(scenario: Mapping[str, Any], folder: Path) -> list[str]:
    """Write events, rules and secrets into ``folder``; return the replay's arguments."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = [
        entry if isinstance(entry, str) else json.dumps(entry, ensure_ascii=False)
        for entry in scenario["events"]
    ]
    (folder / "events.jsonl").write_bytes(
        "".join(f"{line}\n" for line in lines).encode("utf-8", "surrogatepass")
    )
    rules = scenario["rules"]
    if isinstance(rules, dict):
        text = yaml.safe_dump(rules, sort_keys=False, allow_unicode=True)
        (folder / "rules.yaml").write_text(text, encoding="utf-8")
        rules_arg = "rules.yaml"
    else:
        rules_arg = rules
    args = ["replay", "events.jsonl", "--rules", rules_arg, "--store", "store.db"]
    args += ["--out", "decisions.jsonl"]
    if scenario.get("secrets") is not None:
        (folder / "secrets.json").write_text(json.dumps(scenario["secrets"]), encoding="utf-8")
        args += ["--secrets", "secrets.json"]
    return args


def run_once(scenario: Mapping[str, Any], folder: Path, env: Mapping[str, str]) -> Run:
    """Replay then export the scenario in ``folder`` (created) under ``env``'s additions."""
    args = write_inputs(scenario, folder)
    child_env = _child_env(env)
    replay = _command(args, folder, child_env)
    export = _command(["export", "--store", "store.db"], folder, child_env)
    out = folder / "decisions.jsonl"
    decisions = out.read_bytes() if out.exists() else b""
    return Run(folder, replay, export, decisions)


def _show(command: Command) -> str:
    err = command.stderr.decode("utf-8", "replace").strip()
    return f"`idrules {' '.join(command.args)}` exited {command.returncode}; stderr: {err!r}"


def _lines(data: bytes) -> list[str]:
    """The lines of a JSON-lines output (split on newlines only: U+2028 may be inside JSON)."""
    text = data.decode("utf-8", "replace")
    if not text:
        return []
    return text.removesuffix("\n").split("\n")


def _same(a: Any, b: Any) -> bool:
    """Equal as JSON values (so ``true`` is not ``1`` and ``1.0`` is not ``1``)."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


class _Checker:
    """Checks one run's decisions and export against a scenario; collects every failure."""

    def __init__(self, run: Run) -> None:
        self.failures: list[str] = []
        self.decision_lines = _lines(run.decisions_bytes)
        self.decisions: list[dict[str, Any]] = []
        for number, text in enumerate(self.decision_lines):
            try:
                value = json.loads(text)
            except ValueError:
                value = None
            if not isinstance(value, dict):
                self.fail(f"decision line #{number} is not a JSON object: {text[:200]!r}")
                value = {}
            self.decisions.append(value)
        self.export_rows: list[dict[str, Any]] = []
        for text in _lines(run.export.stdout):
            try:
                row = json.loads(text)
            except ValueError:
                row = None
            if not isinstance(row, dict):
                self.fail(f"export line is not a JSON object: {text[:200]!r}")
                continue
            self.export_rows.append(row)

    def fail(self, message: str) -> None:
        self.failures.append(message)

    # selecting decisions -------------------------------------------------------------
    def select(self, selector: str) -> tuple[int, dict[str, Any]] | None:
        """The decision ``selector`` names (an event id, or ``#N``), with its line index."""
        if re.fullmatch(r"#\d+", selector):
            index = int(selector[1:])
            if index < len(self.decisions):
                return index, self.decisions[index]
            return None
        for index, decision in enumerate(self.decisions):
            if decision.get("event_id") == selector:
                return index, decision
        return None

    def profile_of(self, selector: str) -> tuple[str | None, str | None]:
        """The profile event ``selector`` resolved to, or why there is none to compare."""
        found = self.select(selector)
        if found is None:
            return None, f"no decision for event {selector!r}"
        profile = found[1].get("profile")
        if profile is None:
            return None, f"event {selector!r} resolved to no profile (null never matches)"
        return profile, None

    # per-event expectations ----------------------------------------------------------
    def check_expectation(self, item: Mapping[str, Any]) -> None:
        selector = item["event"]
        found = self.select(selector)
        if found is None:
            self.fail(f"event {selector}: no decision for this event (have {len(self.decisions)})")
            return
        index, decision = found
        shown = f"\n      decision #{index}: {self.decision_lines[index]}"
        for key, want in item.items():
            if key == "event":
                continue
            problem = self._expectation(key, want, decision)
            if problem is not None:
                self.fail(f"event {selector}: expectation {key!r}: {problem}{shown}")

    def _expectation(self, key: str, want: Any, decision: Mapping[str, Any]) -> str | None:
        codes = [r.get("code") for r in decision.get("reasons") or [] if isinstance(r, dict)]
        profile = decision.get("profile")
        if key == "outcome":
            got = decision.get("outcome")
            return None if got == want else f"want outcome {want!r}, got {got!r}"
        if key == "outcome_in":
            got = decision.get("outcome")
            return None if got in want else f"want an outcome in {want}, got {got!r}"
        if key == "created":
            got = decision.get("created")
            return None if got is want else f"want created {want}, got {got!r}"
        if key == "profile_null":
            if want and profile is not None:
                return f"want no profile, got {profile!r}"
            if not want and profile is None:
                return "want a profile, got null"
            return None
        if key == "profile_as":
            if profile is None:
                return "want the profile of " + ", ".join(want) + ", got null"
            for other in want:
                theirs, problem = self.profile_of(other)
                if problem is not None or theirs != profile:
                    return problem or f"want the profile of {other} ({theirs}), got {profile}"
            return None
        if key == "profile_not_as":
            if profile is None:
                return "want a profile (different from " + ", ".join(want) + "), got null"
            for other in want:
                theirs, problem = self.profile_of(other)
                if problem is not None and theirs is None and "no decision" in problem:
                    return problem
                if theirs == profile:
                    return f"want a profile other than {other}'s, got the same ({profile})"
            return None
        if key == "merged_from":
            merged = decision.get("merged")
            if not isinstance(merged, list):
                return f"'merged' is not a list: {merged!r}"
            for other in want:
                theirs, problem = self.profile_of(other)
                if problem is not None or theirs not in merged:
                    return problem or f"want {other}'s profile {theirs} in merged {merged}"
            return None
        if key == "merged_count":
            merged = decision.get("merged")
            got = len(merged) if isinstance(merged, list) else None
            return None if got == want else f"want {want} merged profiles, got {merged!r}"
        if key == "reasons":
            missing = [code for code in want if code not in codes]
            return None if not missing else f"missing reason codes {missing}; codes {codes}"
        if key == "no_reasons":
            present = [code for code in want if code in codes]
            return None if not present else f"unwanted reason codes {present}; codes {codes}"
        if key == "rule_cites":
            return self._rule_cites(want, decision)
        if key == "line":
            got = decision.get("line")
            return None if got == want else f"want line {want}, got {got!r}"
        if key == "identity":
            identity = decision.get("identity")
            if not isinstance(identity, dict):
                return f"want an identity holding {want}, got {identity!r}"
            wrong = {
                k: identity.get(k, "<absent>")
                for k, v in want.items()
                if k not in identity or not _same(identity[k], v)
            }
            return None if not wrong else f"want identity {want}; differs at {wrong}"
        if key == "attributes":
            got = decision.get("attributes")
            return None if _same(got, want) else f"want attributes exactly {want}, got {got!r}"
        raise ScenarioError(f"unknown expectation {key!r}")  # pragma: no cover - validated

    def _rule_cites(self, want: Mapping[str, Any], decision: Mapping[str, Any]) -> str | None:
        reasons = [r for r in decision.get("reasons") or [] if isinstance(r, dict)]
        problems: list[str] = []
        for code, knobs in want.items():
            allowed = [knobs] if isinstance(knobs, str) else list(knobs)
            matching = [r for r in reasons if r.get("code") == code]
            if not matching:
                problems.append(f"no {code!r} reason to check the citation of")
                continue
            rules = [r.get("rule") for r in matching]
            cited = [_CITATION.match(r) if isinstance(r, str) else None for r in rules]
            if None in cited:
                problems.append(f"{code!r} cites {rules}, not all 'file.yaml:LINE knob'")
            elif not any(c.group(3) in allowed for c in cited if c is not None):
                problems.append(f"{code!r} cites {rules}, none of them one of {allowed}")
        return "; ".join(problems) or None

    # whole-run expectations ----------------------------------------------------------
    def check_counts(self, want: Mapping[str, int]) -> None:
        got = Counter(d.get("outcome") for d in self.decisions)
        for outcome, count in want.items():
            if got[outcome] != count:
                self.fail(
                    f"outcome_counts: want {count} {outcome!r}, got {got[outcome]} "
                    f"(all: {dict(sorted(got.items(), key=str))})"
                )

    def where(self, where: Mapping[str, Any], context: str) -> list[dict[str, Any]] | None:
        conditions = dict(where)
        if "profile_of" in conditions:
            profile, problem = self.profile_of(conditions.pop("profile_of"))
            if problem is not None:
                self.fail(f"{context}: {problem}")
                return None
            conditions["profile"] = profile
        return [
            row
            for row in self.export_rows
            if all(k in row and _same(row[k], v) for k, v in conditions.items())
        ]

    def check_export(self, item: Mapping[str, Any]) -> None:
        context = f"export where {json.dumps(item['where'])}"
        rows = self.where(item["where"], context)
        if rows is None:
            return
        if len(rows) != 1:
            self.fail(f"{context}: want exactly one profile, found {len(rows)}{self._export()}")
            return
        row = rows[0]
        shown = f"\n      profile: {json.dumps(row, ensure_ascii=False)}"
        for field, value in item.get("is", {}).items():
            if field not in row or not _same(row[field], value):
                self.fail(
                    f"{context}: want {field} = {value!r}, got {row.get(field, '<absent>')!r}"
                    f"{shown}"
                )
        activity = row.get("activity")
        for event_id in item.get("activity_includes", []):
            if not isinstance(activity, list) or event_id not in activity:
                self.fail(f"{context}: want {event_id!r} in activity {activity!r}{shown}")
        for field, values in item.get("lacks", {}).items():
            held = row.get(field)
            if not isinstance(held, list):
                self.fail(f"{context}: lacks: field {field!r} is not a list: {held!r}{shown}")
                continue
            present = [v for v in values if any(_same(v, h) for h in held)]
            if present:
                self.fail(f"{context}: want {field} without {present}, got {held!r}{shown}")

    def check_export_count(self, item: Mapping[str, Any]) -> None:
        context = f"export_count where {json.dumps(item['where'])}"
        rows = self.where(item["where"], context)
        if rows is not None and len(rows) != item["count"]:
            self.fail(
                f"{context}: want {item['count']} profiles, found {len(rows)}{self._export()}"
            )

    def _export(self) -> str:
        lines = "\n".join(f"      {json.dumps(r, ensure_ascii=False)}" for r in self.export_rows)
        return f"\n    export:\n{lines}"

    def check_never(self, strings: list[str], runs: list[Run]) -> None:
        for run in runs:
            for label, data in run.outputs:
                text = data.decode("utf-8", "replace")
                for secret in strings:
                    if secret in text:
                        self.fail(f"never_in_decisions: {secret!r} appears in {label}")


def _event_lines(scenario: Mapping[str, Any]) -> list[int]:
    """The 1-based physical line of every event that is not blank: one decision each."""
    numbers = []
    for number, entry in enumerate(scenario["events"], start=1):
        line = entry if isinstance(entry, str) else json.dumps(entry, ensure_ascii=False)
        if line.encode("utf-8", "surrogatepass").strip():
            numbers.append(number)
    return numbers


def _check_invariants(checker: _Checker, scenario: Mapping[str, Any]) -> None:
    """What docs/decisions.md promises of every decision, whatever the scenario expects."""
    lines = _event_lines(scenario)
    if len(checker.decisions) != len(lines):
        checker.fail(
            f"want one decision per event line ({len(lines)}), got {len(checker.decisions)}"
        )
        return
    for index, (decision, line) in enumerate(zip(checker.decisions, lines, strict=True)):
        shown = f"\n      decision #{index}: {checker.decision_lines[index]}"
        if decision.get("line") != line:
            checker.fail(
                f"decision #{index}: want line {line}, got {decision.get('line')!r}{shown}"
            )
        if decision.get("outcome") not in OUTCOMES:
            checker.fail(f"decision #{index}: unknown outcome {decision.get('outcome')!r}{shown}")
        for reason in decision.get("reasons") or []:
            code = reason.get("code") if isinstance(reason, dict) else None
            rule = reason.get("rule") if isinstance(reason, dict) else None
            if code in ("event.invalid", "event.duplicate"):
                if rule is not None:
                    checker.fail(f"decision #{index}: {code} must cite no rule, cites {rule!r}")
            elif not isinstance(rule, str) or not _CITATION.match(rule):
                checker.fail(
                    f"decision #{index}: reason {code!r} cites {rule!r}, not 'file.yaml:LINE knob'"
                    f"{shown}"
                )


def check_run(scenario: Mapping[str, Any], run: Run, runs: list[Run]) -> list[str]:
    """Every failure of ``run`` against the scenario (``runs``: all runs, for secrets)."""
    if run.replay.returncode != 0 or b"Traceback" in run.replay.stderr:
        return [f"replay failed: {_show(run.replay)}"]
    if run.export.returncode != 0 or b"Traceback" in run.export.stderr:
        return [f"export failed: {_show(run.export)}"]
    checker = _Checker(run)
    _check_invariants(checker, scenario)
    for item in scenario.get("expect", []):
        checker.check_expectation(item)
    if "outcome_counts" in scenario:
        checker.check_counts(scenario["outcome_counts"])
    for item in scenario.get("export", []):
        checker.check_export(item)
    for item in scenario.get("export_count", []):
        checker.check_export_count(item)
    # secrets never appear anywhere, listed or not (docs/decisions.md)
    never = [*scenario.get("never_in_decisions", []), *(scenario.get("secrets") or {}).values()]
    if never:
        checker.check_never(never, runs)
    return checker.failures


def run_scenario(
    scenario: Mapping[str, Any],
    workdir: Path,
    *,
    name: str | None = None,
    check_determinism: bool = True,
) -> list[Run]:
    """Run the scenario under ``workdir``, check it; raise :class:`ScenarioFailure` if it fails.

    With ``check_determinism`` (the default) a second run, in another folder with another
    ``TZ`` and ``PYTHONHASHSEED``, must give byte-identical decisions and export.
    """
    label = name or str(scenario.get("name", "scenario"))
    validate_scenario(scenario, label)
    environments = RUN_ENVIRONMENTS if check_determinism else RUN_ENVIRONMENTS[:1]
    with ThreadPoolExecutor(max_workers=len(environments)) as pool:
        futures = [
            pool.submit(run_once, scenario, Path(workdir) / f"run{i + 1}", env)
            for i, env in enumerate(environments)
        ]
        runs = [future.result() for future in futures]
    failures = check_run(scenario, runs[0], runs)
    if not failures and len(runs) > 1:
        failures = compare_runs(runs[0], runs[1])
    if failures:
        header = f"scenario {label!r} failed ({len(failures)} problem(s)):"
        raise ScenarioFailure("\n  ".join([header, *failures]))
    return runs


def compare_runs(first: Run, second: Run) -> list[str]:
    """Why the second run's decisions or export differ from the first's bytes, if they do."""
    env = RUN_ENVIRONMENTS[1]
    where = f"TZ={env['TZ']} PYTHONHASHSEED={env['PYTHONHASHSEED']}"
    if second.replay.returncode != 0 or second.export.returncode != 0:
        return [f"second run ({where}) failed: {_show(second.replay)} / {_show(second.export)}"]
    failures = []
    if second.decisions_bytes != first.decisions_bytes:
        failures.append(f"decisions differ on a second run ({where}){_diff(first, second)}")
    if second.export.stdout != first.export.stdout:
        failures.append(
            f"export differs on a second run ({where}):\n      "
            f"{first.export.stdout!r}\n      {second.export.stdout!r}"
        )
    return failures


def _diff(first: Run, second: Run) -> str:
    a, b = _lines(first.decisions_bytes), _lines(second.decisions_bytes)
    for index, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return f"\n      first at #{index}:\n      {x}\n      {y}"
    return f": {len(a)} lines, then {len(b)} lines"


def load_scenario(path: Path) -> dict[str, Any]:
    """Read a scenario file (JSON)."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ScenarioError(f"[{Path(path).name}] a scenario must be a JSON object")
    return data
