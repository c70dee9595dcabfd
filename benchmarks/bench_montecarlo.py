"""mc_recovery_100_ml: the paper's recovery study (Fig 3 model, 200 clusters x 15), 100
replications by ML with 20 starts on 2 local workers; then its first 20 replications on 1
and on 2 workers for the speed-up.

Target (issue 7): under 10 minutes on 2 cores; reports the speed-up from 1 to 2 workers
and the study's coverage and SE/SD ranges (targets 0.90-0.98 and 0.85-1.15).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _common import emit

from bayesmix.analysis.montecarlo import montecarlo
from bayesmix.paper.section2 import section2_study


def _run(replications: int, workers: int):
    t0 = time.perf_counter()
    res = montecarlo(
        **section2_study("recovery", replications), workers=workers, random_seed=1,
        progress=False,
    )  # fmt: skip
    return res, time.perf_counter() - t0


def main() -> None:
    replications = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    speedup_reps = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    res, wall = _run(replications, 2)
    table = res.parameters("fig3")
    emit(
        f"mc_recovery_{replications}_ml",
        workers=2,
        wall_s=round(wall, 1),
        target_s=600,
        met=wall < 600,
        failed=sum(res.failures.values()),
        coverage_min=round(float(table["coverage"].min()), 3),
        coverage_max=round(float(table["coverage"].max()), 3),
        se_sd_min=round(float(table["se_sd"].min()), 3),
        se_sd_max=round(float(table["se_sd"].max()), 3),
    )
    sys.stderr.write(res.summary() + "\n")
    # the speed-up from 1 to 2 workers, on the first replications of the same study
    walls = {w: _run(speedup_reps, w)[1] for w in (1, 2)}
    emit(
        f"mc_recovery_{speedup_reps}_ml_speedup",
        wall_1_worker_s=round(walls[1], 1),
        wall_2_workers_s=round(walls[2], 1),
        speedup=round(walls[1] / walls[2], 2),
    )


if __name__ == "__main__":
    main()
