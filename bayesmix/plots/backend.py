"""The pyplot module, imported when a figure is drawn rather than with the package."""

from __future__ import annotations

from typing import Any


def pyplot() -> Any:
    """``matplotlib.pyplot``.

    No backend is forced: notebooks keep their inline backend, and
    matplotlib picks Agg by itself on a machine without a display.
    """
    import matplotlib.pyplot as plt

    return plt
