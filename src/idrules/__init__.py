"""idrules: an identity-resolution rules engine.

A widget's ``identify({...})`` call, an existing user store and a declarative ruleset go in;
a :class:`Decision` comes out, naming the profile the caller resolves to and every rule (file,
line, knob) that shaped the outcome, so a replay reproduces it and an auditor can read it.

    >>> from idrules import Engine
    >>> engine = Engine("helpshift")
    >>> engine.identify({"userId": "u_1", "userEmail": "ada@example.com"}, session="b1").outcome
    'identified'
"""

from ._errors import IdrulesError, InputError, Problem, RulesError, SecretsError, StoreError
from .decision import Decision, Identity, Reason, RulesetRef
from .engine import Engine
from .events import Event, InvalidEvent, parse_line
from .replay import Summary, replay
from .rules import Ruleset, load_ruleset, pack_names
from .store import MemoryStore, Profile, Session, SqliteStore, Store, export_rows

__all__ = [
    "Decision",
    "Engine",
    "Event",
    "Identity",
    "IdrulesError",
    "InputError",
    "InvalidEvent",
    "MemoryStore",
    "Problem",
    "Profile",
    "Reason",
    "RulesError",
    "Ruleset",
    "RulesetRef",
    "SecretsError",
    "Session",
    "SqliteStore",
    "Store",
    "StoreError",
    "Summary",
    "export_rows",
    "load_ruleset",
    "pack_names",
    "parse_line",
    "replay",
]
