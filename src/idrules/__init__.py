"""idrules: an identity-resolution rules engine.

A widget's ``identify({...})`` call, an existing user store and a declarative ruleset go in;
a :class:`Decision` comes out, naming the profile the caller resolves to and every rule (file,
line, knob) that shaped the outcome, so a replay reproduces it and an auditor can read it.

    >>> from idrules import Engine
    >>> engine = Engine("helpshift")
    >>> engine.identify({"userId": "u_1", "userEmail": "ada@example.com"}, session="b1").outcome
    'identified'

The names below are imported on first use (PEP 562), so ``import idrules`` is cheap and the
command line can take charge of Ctrl-C before the libraries load.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._errors import (
        IdrulesError,
        InputError,
        Problem,
        RulesError,
        SecretsError,
        StoreConflict,
        StoreError,
    )
    from .asyncengine import AsyncEngine
    from .claim import Claim
    from .decision import Citation, Decision, Identity, Reason, RulesetRef
    from .engine import Engine
    from .events import Event, InvalidEvent, parse_line
    from .importing import ImportSummary, import_users
    from .replaying import Summary, replay
    from .rules import Ruleset, load_ruleset, pack_names
    from .serve.app import create_app as create_app
    from .store import MemoryStore, Profile, Session, SqliteStore, Store, export_rows
    from .store.postgres import PostgresStore as PostgresStore

#: public name -> the module that defines it
_WHERE = {
    "IdrulesError": "._errors",
    "InputError": "._errors",
    "Problem": "._errors",
    "RulesError": "._errors",
    "SecretsError": "._errors",
    "StoreConflict": "._errors",
    "StoreError": "._errors",
    "AsyncEngine": ".asyncengine",
    "Claim": ".claim",
    "Citation": ".decision",
    "Decision": ".decision",
    "Identity": ".decision",
    "Reason": ".decision",
    "RulesetRef": ".decision",
    "Engine": ".engine",
    "Event": ".events",
    "InvalidEvent": ".events",
    "parse_line": ".events",
    "ImportSummary": ".importing",
    "import_users": ".importing",
    "Summary": ".replaying",
    "replay": ".replaying",
    "Ruleset": ".rules",
    "load_ruleset": ".rules",
    "pack_names": ".rules",
    "MemoryStore": ".store",
    "Profile": ".store",
    "Session": ".store",
    "SqliteStore": ".store",
    "Store": ".store",
    "export_rows": ".store",
    # need an extra (postgres: psycopg; serve: Starlette, uvicorn, prometheus_client), so not
    # in __all__: `from idrules import *` works without them
    "PostgresStore": ".store.postgres",
    "create_app": ".serve.app",
}

__all__ = [
    "AsyncEngine",
    "Citation",
    "Claim",
    "Decision",
    "Engine",
    "Event",
    "Identity",
    "IdrulesError",
    "ImportSummary",
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
    "StoreConflict",
    "StoreError",
    "Summary",
    "export_rows",
    "import_users",
    "load_ruleset",
    "pack_names",
    "parse_line",
    "replay",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'idrules' has no attribute {name!r}")
    value = getattr(import_module(module, __name__), name)
    globals()[name] = value  # the next access is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
