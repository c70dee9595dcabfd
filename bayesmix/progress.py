"""A minimal progress line on stderr for long loops (starts, chains)."""

from __future__ import annotations

import sys
import time


class Progress:
    """Print ``label i/n elapsed extra`` on one refreshed stderr line.

    Parameters
    ----------
    total : int
        Number of steps.
    label : str
        What is being counted.
    enabled : bool
        When False nothing is printed.
    """

    def __init__(self, total: int, label: str, *, enabled: bool = True) -> None:
        self.total = total
        self.label = label
        self.enabled = enabled
        self.done = 0
        self.closed = False
        self.start = time.perf_counter()
        self.drawn = -float("inf")

    def update(self, extra: str = "") -> None:
        """Count one finished step and redraw the line (at most five times a second)."""
        self.done += 1
        now = time.perf_counter()
        if self.enabled and (now - self.drawn >= 0.2 or self.done == self.total):
            self.drawn = now
            elapsed = now - self.start
            sys.stderr.write(f"\r{self.label}: {self.done}/{self.total}  {elapsed:6.1f}s  {extra}")
            sys.stderr.flush()

    def close(self) -> None:
        """End the line (once)."""
        if self.enabled and not self.closed:
            sys.stderr.write("\n")
            sys.stderr.flush()
        self.closed = True
