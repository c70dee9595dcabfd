"""``python -m bayesmix``: the ``bayesmix`` command."""

from bayesmix.cli import main

raise SystemExit(main())
