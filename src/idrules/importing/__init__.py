"""``idrules import``: load a product's existing users so that identify calls find them
(docs/import.md). :mod:`.rows` reads the users file, :mod:`.intake` checks a row by the
ruleset's field and attribute rules, :mod:`.importer` plans and applies each row."""

from .importer import ImportDraft, Importer, ImportSummary, import_users, imported_profile_id
from .rows import UserRow, UsersFile

__all__ = [
    "ImportDraft",
    "ImportSummary",
    "Importer",
    "UserRow",
    "UsersFile",
    "import_users",
    "imported_profile_id",
]
