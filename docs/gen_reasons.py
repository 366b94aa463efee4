"""Write the reason-code tables of docs/reasons.md from the registry, ``idrules.reasons``.

The registry (``Code``, ``Check``, ``CATALOG``) is where codes are defined and described; this
script copies it into the page between the two markers, leaving the rest of the page as it
is. Run it after changing the registry:

    python docs/gen_reasons.py           # rewrite docs/reasons.md
    python docs/gen_reasons.py --check   # exit 1 when docs/reasons.md is not current

tests/test_docs.py runs the check.
"""

from __future__ import annotations

import sys
from pathlib import Path

from idrules.reasons import CATALOG, Check, Code
from idrules.rules.model import IDENTITY_FIELDS

PAGE = Path(__file__).resolve().parent / "reasons.md"
BEGIN = "<!-- BEGIN reason codes: made by docs/gen_reasons.py from idrules.reasons; do not edit -->"
END = "<!-- END reason codes -->"


def _markdown(text: str) -> str:
    """The registry's reStructuredText literals (````x````) as Markdown code (```x```)."""
    return text.replace("``", "`")


def every_code() -> list[str]:
    """Every code a decision may carry: the fixed ones and each field's checks, sorted."""
    fields = [f"{field}.{check}" for field in IDENTITY_FIELDS for check in Check]
    return sorted({*(str(code) for code in Code), *fields})


def tables() -> str:
    """The generated part of the page."""
    lines = ["| code | when | cites |", "|---|---|---|"]
    for entry in CATALOG:
        codes = ", ".join(f"`{code}`" for code in entry.codes)
        lines.append(f"| {codes} | {_markdown(entry.when)} | {_markdown(entry.cites)} |")
    fields = ", ".join(f"`{field}`" for field in IDENTITY_FIELDS)
    lines += [
        "",
        f"`<field>` is one of {fields}.",
        "",
        f"All {len(every_code())} codes, in alphabetical order: "
        + ", ".join(f"`{code}`" for code in every_code())
        + ".",
    ]
    return "\n".join(lines)


def render(page: str) -> str:
    """``page`` with the text between the markers replaced by :func:`tables`."""
    head, begin, rest = page.partition(BEGIN)
    _, end, tail = rest.partition(END)
    if not begin or not end:
        raise ValueError(f"{PAGE.name} lacks the markers {BEGIN!r} and {END!r}")
    return f"{head}{BEGIN}\n{tables()}\n{END}{tail}"


def main(argv: list[str]) -> int:
    page = PAGE.read_text(encoding="utf-8")
    wanted = render(page)
    if "--check" in argv:
        if wanted != page:
            print(f"{PAGE} is not current: run python docs/gen_reasons.py", file=sys.stderr)
            return 1
        return 0
    if wanted != page:
        PAGE.write_text(wanted, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
