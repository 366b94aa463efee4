"""The audit trail, over any durable store (:class:`~idrules.store.base.DurableStore`).

- :mod:`.chain`: the tamper-evident decisions file (each line hashes the one before);
- :mod:`.journal`: a replay's sealing writer, and where a replay resumes;
- :mod:`.records`: the compact record a store keeps of each decision, and how it is shown;
- :mod:`.runlock`: one replay per store and run;
- :mod:`.history`: which profile a ``history`` question is about.
"""

from .chain import Verdict, seal, verify_lines
from .history import find_profile
from .journal import Journal, Position, Sealer, cut_back, resume_position
from .records import record_dict, record_of, record_text
from .runlock import RunBusyError, RunLock

__all__ = [
    "Journal",
    "Position",
    "RunBusyError",
    "RunLock",
    "Sealer",
    "Verdict",
    "cut_back",
    "find_profile",
    "record_dict",
    "record_of",
    "record_text",
    "resume_position",
    "seal",
    "verify_lines",
]
