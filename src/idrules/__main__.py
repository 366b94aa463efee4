"""``python -m idrules``: the same command line as the ``idrules`` script."""

from .cli import main

main()
