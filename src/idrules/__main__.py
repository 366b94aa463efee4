"""``python -m idrules`` and the ``idrules`` script: the command line (:mod:`idrules.cli`).

Ctrl-C is taken in charge before anything else loads: an interrupt while the libraries are
still importing is one line and exit 130, as it is later, never a traceback."""

from __future__ import annotations

import signal
import sys


def main() -> None:
    def interrupted(signum: int, frame: object) -> None:
        sys.stderr.write("idrules: interrupted\n")
        raise SystemExit(130)

    previous = signal.signal(signal.SIGINT, interrupted)
    from .cli import main as command_line

    signal.signal(signal.SIGINT, previous)  # the command line reports it from here on
    command_line()


if __name__ == "__main__":
    main()
