"""The NUTS settings the tests use, read in one place.

``BAYESMIX_TEST_DRAWS`` raises the draws (and tuning steps) of the tests that compare NUTS
with ML for a thorough local check; ``BAYESMIX_NOTEBOOK_DRAWS`` sets the draws the notebooks
run with under ``make notebooks``. Every other test keeps the fixed settings named here,
which are part of what it checks (a warning expected from few draws, a seed's draws).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

TEST_DRAWS = int(os.environ.get("BAYESMIX_TEST_DRAWS", "400"))
"""Draws (and tuning steps) of the NUTS-against-ML tests; small by default to keep CI fast."""

NOTEBOOK_DRAWS = os.environ.get("BAYESMIX_NOTEBOOK_DRAWS", "150")
"""Draws the notebooks read from ``BAYESMIX_NOTEBOOK_DRAWS`` when they are executed."""


@dataclass(frozen=True)
class Sampling:
    """Draws, tuning steps and chains of one NUTS run (4 chains, as fit_bayes's default)."""

    draws: int
    tune: int
    chains: int = 4
    backend: str | None = None

    def kwargs(self, **extra: Any) -> dict[str, Any]:
        """Keyword arguments of :func:`bayesmix.fit_bayes`, with ``extra`` added."""
        run = {"draws": self.draws, "tune": self.tune, "chains": self.chains}
        if self.backend is not None:
            run["backend"] = self.backend
        return {**run, **extra}


TEST_BACKEND = "jax"
"""nutpie's compiler in the tests that do not name one (``BAYESMIX_NUTS_BACKEND``, set by
tests/conftest.py): JAX compiles each new model in seconds, where numba's compilation on a
machine with empty caches would take most of the suite's time. The tests of the default
path, NUTS against ML at :data:`SCALED` and those that name numba, compile with numba."""


SCALED = Sampling(TEST_DRAWS, TEST_DRAWS, backend="numba")
"""NUTS against ML at ``TEST_DRAWS`` draws after as many tuning steps, 4 chains, compiled
with numba, the default compiler outside the tests."""

SHORT = Sampling(200, 200, 2)
"""Two short chains: enough for a posterior that is only read, not judged on convergence."""

READ = Sampling(300, 300, 2)
"""Two chains a little longer than :data:`SHORT`: for the shared fits whose DataTree, summary
and LOO the tests read and compare with ArviZ's own computations."""

PLOTS = Sampling(100, 100, 2)
"""Draws that cannot mix: plots need draws, not a converged posterior."""

TINY = Sampling(50, 50, 2)
"""The fewest draws a saved result or a summary can be built from."""


CHECK_MODE = "FAST_COMPILE"
"""pytensor's mode (``python_linker`` in tests/conftest.py) for the functions that tests
compile to evaluate a model at a few points or to draw it forward: Python's linker compiles
in a second what numba compiles in tens of seconds on empty caches, for the same values.
The samplers, and every function the library compiles itself, keep their own modes."""
