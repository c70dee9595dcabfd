"""``python -m bayesmix``: the ``bayesmix`` command."""

from bayesmix.cli import run

run()
