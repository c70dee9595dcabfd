"""startup: what a user waits for before any estimation starts, each in a fresh process.

- ``startup_import``: ``import bayesmix`` against ``import pandas`` in the same environment,
  median of 7 fresh interpreters each; target at most 1.5x pandas.
- ``startup_help``: ``bayesmix --help`` as a whole process, median of 7; target at most 0.5 s.
- ``startup_ml_fit``: ``bayesmix fit models/hsb_1.toml --data hsb --estimator ml`` as a whole
  process, the first run and the median of the next 3 (reported; the comparison with lme4
  needs R, which `make bench` does not install).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _common import emit

ROOT = Path(__file__).resolve().parent.parent
CLI = str(Path(sys.executable).with_name("bayesmix"))


def wall(command: list[str]) -> float:
    """Seconds a command takes as a whole process."""
    t0 = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, cwd=ROOT)
    return time.perf_counter() - t0


def median_wall(command: list[str], runs: int = 7) -> float:
    return statistics.median(wall(command) for _ in range(runs))


def main() -> None:
    python = sys.executable
    wall([python, "-c", "import bayesmix, pandas"])  # warm the file cache, not measured
    pandas_s = median_wall([python, "-c", "import pandas"])
    bayesmix_s = median_wall([python, "-c", "import bayesmix"])
    emit(
        "startup_import",
        import_bayesmix_s=round(bayesmix_s, 3),
        import_pandas_s=round(pandas_s, 3),
        ratio=round(bayesmix_s / pandas_s, 2),
        target_ratio=1.5,
        met=bayesmix_s <= 1.5 * pandas_s,
    )
    help_s = median_wall([CLI, "--help"])
    emit("startup_help", wall_s=round(help_s, 3), target_s=0.5, met=help_s <= 0.5)
    fit = [CLI, "fit", "models/hsb_1.toml", "--data", "hsb", "--estimator", "ml"]
    first = wall(fit)
    warm = statistics.median(wall(fit) for _ in range(3))
    emit("startup_ml_fit", first_s=round(first, 2), warm_s=round(warm, 2))


if __name__ == "__main__":
    main()
