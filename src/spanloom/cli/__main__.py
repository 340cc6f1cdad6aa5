"""``python -m spanloom.cli``: the same command as ``spanloom``."""

from spanloom.cli import main

main()
