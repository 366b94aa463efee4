"""The ``idrules`` command line (docs/cli.md): the group and its commands, one module per kind
of work (:mod:`.deciding`, :mod:`.auditing`, :mod:`.authoring`, :mod:`.importing`,
:mod:`.serving`) over :mod:`.base`, each imported when one of its commands runs
(:data:`.base.COMMANDS`)."""

from .base import COMMANDS, main

__all__ = ["COMMANDS", "main"]
