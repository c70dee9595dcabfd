"""startup: what a user waits for before any estimation starts, each in a fresh process.

- ``startup_import``: ``import bayesmix`` against ``import pandas`` in the same environment,
  median of 7 fresh interpreters each; target at most 1.5x pandas.
- ``startup_help``: ``bayesmix --help`` as a whole process, median of 7; target at most 0.5 s.
- ``startup_ml_fit``: ``bayesmix fit models/hsb_1.toml --data hsb --estimator ml`` as a whole
  process: a first run with empty compile caches (bayesmix's and pytensor's, in temporary
  folders), a first run with the caches as they are, then the median of the next 3 (warm).
  Where ``Rscript`` is installed, ``tests/reference/hsb_1_lme4_fit.R`` fitting the same model
  with lme4 is timed the same way (first run, then the median of 3); target: warm, no slower
  than lme4. `make bench` does not install R; without it the comparison is left out.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _common import emit

ROOT = Path(__file__).resolve().parent.parent
CLI = str(Path(sys.executable).with_name("bayesmix"))


HSB_CSV = ROOT.parent / "shared" / "data" / "hsb.csv"


def wall(command: list[str], env: dict[str, str] | None = None) -> float:
    """Seconds a command takes as a whole process."""
    t0 = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, cwd=ROOT, env=env)
    return time.perf_counter() - t0


def cold_wall(command: list[str]) -> float:
    """Seconds a command takes as a whole process with empty compile caches."""
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "BAYESMIX_CACHE": str(Path(tmp) / "bayesmix"),
            "PYTENSOR_FLAGS": f"base_compiledir={Path(tmp) / 'pytensor'}",
        }
        return wall(command, env)


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
    cold = cold_wall(fit)
    first = wall(fit)
    warm = statistics.median(wall(fit) for _ in range(3))
    record = {"cold_s": round(cold, 2), "first_s": round(first, 2), "warm_s": round(warm, 2)}
    rscript = shutil.which("Rscript")
    if rscript is not None and HSB_CSV.is_file():
        lme4 = [rscript, "tests/reference/hsb_1_lme4_fit.R", str(HSB_CSV)]
        record["lme4_first_s"] = round(wall(lme4), 2)
        lme4_s = statistics.median(wall(lme4) for _ in range(3))
        record |= {"lme4_warm_s": round(lme4_s, 2), "ratio": round(warm / lme4_s, 2)}
        record |= {"target": "warm_s <= lme4_warm_s", "met": warm <= lme4_s}
    emit("startup_ml_fit", **record)


if __name__ == "__main__":
    main()
