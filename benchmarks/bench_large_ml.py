"""large_A2_ml: model A with K = 2 (the paper's eqs 18-25, HSB variables) by ML on 100000
students in 2000 schools, simulated from the HSB A2 estimates.

Target (issue 9): fits within 24 GiB; reports the peak resident memory of the fitting
process (measured in a fresh child process, so the parent's data do not count) and the
wall time with 4 random starts.
"""

from __future__ import annotations

import multiprocessing as mp
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _common import emit

SCHOOLS, STUDENTS = 2000, 50


def _fit(conn) -> None:
    import numpy as np

    import bayesmix as bm

    spec = bm.load_spec("models/hsb_A.toml", classes=2)
    hsb = bm.fit_ml(spec, "hsb", starts=4, random_seed=1)
    covariates = {
        "female": "bernoulli",
        "ses": ("normal", 0.0, 0.78),
        "pracad": ("normal", 0.5, 0.25),
        "catholic": ("bernoulli", 0.44),
        "meanses": ("normal", 0.0, 0.41),
    }
    data = bm.simulate(
        spec, hsb.structured, clusters=SCHOOLS, cluster_size=STUDENTS,
        covariates=covariates, random_seed=2,
    )  # fmt: skip
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    fit = bm.fit_ml(spec, data, starts=4, random_seed=1)
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    gap = np.abs(fit.estimates - hsb.estimates) / fit.se
    conn.send(
        {
            "wall_s": round(wall, 1),
            "peak_rss_gib": round(peak / 2**20, 2),
            "rss_before_fit_gib": round(before / 2**20, 2),
            "loglik": round(fit.loglik, 3),
            "converged": bool(fit.converged),
            "finite": bool(np.isfinite(fit.loglik) and np.isfinite(fit.se).all()),
            "max_gap_in_se_from_population": round(float(gap.max()), 2),
        }
    )


def main() -> None:
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_fit, args=(child,))
    proc.start()
    record = parent.recv()
    proc.join()
    emit(
        "large_A2_ml",
        n=SCHOOLS * STUDENTS,
        schools=SCHOOLS,
        starts=4,
        **record,
        target_peak_gib=24,
        met=record["peak_rss_gib"] < 24 and record["finite"],
    )


if __name__ == "__main__":
    main()
