"""Stages 4 and 5 for an import's rows: a row's fields and attributes checked by the same
compiled rules as an identify call's (:mod:`idrules.fields`, :mod:`idrules.attributes`),
into a :class:`~idrules.claim.Claim` the planner resolves.

There is no dialect and no proof: a row is the product's own server data, in canonical
columns, so it is trusted as a verified call is (all its identifiers are match keys), and
its ``verified`` column says whether the profile counts as verified. What differs from an
identify call is the verdict: a row has no session to be anonymous in, so a field whose
``on_invalid`` is ``anonymous`` refuses the row as ``reject`` does; ``drop`` drops the value
and the row goes on. A row left with neither a user id nor an email is refused too.
"""

from __future__ import annotations

from ..attributes import AttributeFilter
from ..claim import Claim
from ..decision import Identity, Reason
from ..fields import IdentityChecker
from ..reasons import Code
from ..rules.model import Ruleset
from .rows import UserRow

#: the reason of a row with nothing to be found by
NO_IDENTIFIER = Reason(
    Code.EVENT_INVALID, None, None, "the row has neither a user id nor an email to import by"
)


class RowIntake:
    """The compiled field and attribute rules of one ruleset, for import rows."""

    def __init__(self, ruleset: Ruleset) -> None:
        self._fields = IdentityChecker(ruleset)
        self._attributes = AttributeFilter(ruleset)

    def claim(self, row: UserRow) -> Claim:
        """The claim of one readable row (``row.problem`` is None)."""
        checked = self._fields.check(row.values)
        filtered = self._attributes.filter(row.attributes, row.attributes_given)
        reasons = (*checked.reasons, *filtered.reasons)
        fields = checked.fields
        user_id, email = fields["user_id"], fields["email"]
        identity = Identity(
            user_id.value, email.value, fields["name"].value, fields["avatar"].value, row.verified
        )
        if checked.failed in ("reject", "anonymous") or filtered.reject:
            return Claim(identity, reasons=reasons, verdict="reject")
        if user_id.key is None and email.key is None:
            return Claim(identity, reasons=(*reasons, NO_IDENTIFIER), verdict="reject")
        return Claim(identity, user_id.key, email.key, filtered.kept, reasons)
