"""The ``idrules`` command line (docs/cli.md): the group and its commands, one module per kind
of work (:mod:`.deciding`, :mod:`.auditing`, :mod:`.authoring`, :mod:`.importing`,
:mod:`.serving`) over :mod:`.base`."""

from . import auditing, authoring, deciding, importing, serving
from .base import main

__all__ = ["auditing", "authoring", "deciding", "importing", "main", "serving"]
