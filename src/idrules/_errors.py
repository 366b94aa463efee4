"""One exception hierarchy, so a caller can catch ``IdrulesError`` and print one line.

Every message is written for the person who must act on it: it names the file, line, knob,
variable or value at fault, and never contains a secret.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs


class IdrulesError(Exception):
    """Base of every error idrules raises on purpose; ``str()`` is one actionable line."""


@attrs.frozen
class Problem:
    """One located problem in a rules file: where it is and what is wrong."""

    source: str
    line: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line is not None else self.source
        knob = f" {self.path}" if self.path else ""
        return f"{where}{knob}: {self.message}"


class RulesError(IdrulesError):
    """A rules file cannot be loaded: it carries every problem found, each located."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        first = str(self.problems[0]) if self.problems else "invalid rules"
        more = len(self.problems) - 1
        super().__init__(first + (f" (and {more} more)" if more > 0 else ""))


class SecretsError(IdrulesError):
    """A secret the ruleset needs is missing, too short, or unreadable (never printed)."""


class StoreError(IdrulesError):
    """The store cannot be opened, read or written."""


class StoreConflict(StoreError):
    """Another writer changed what this event read (a lost race on a shared database): the
    event's transaction was rolled back before anything of it was written out, and the engine
    plans it again against what is there now."""


class InputError(IdrulesError):
    """An input file (events log, secrets file) cannot be read."""
