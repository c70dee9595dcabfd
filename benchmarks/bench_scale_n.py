"""fig3_ml_300k and fig3_ml_1m: the Fig 3 model by ML on 300 000 and 1 000 000 students.

Target (reliability issue): the Fig 3 design with 20 000 schools x 15 students and with
about 67 000 schools x 15 (1 000 000 students) converges by ML (4 starts) under the same
convergence rule as small data; the 1 000 000-student fit within 10 minutes and 24 GiB.
Each fit runs in a fresh child process, whose peak resident memory is reported.
"""

from __future__ import annotations

import multiprocessing as mp
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _common import emit

CASES = {"fig3_ml_300k": 20_000, "fig3_ml_1m": 66_667}
SIZE = 15


def _fit(conn, clusters: int) -> None:
    import bayesmix as bm
    from bayesmix.paper.section2 import FIG3_PARAMS

    spec = bm.load_spec(Path(__file__).parents[1] / "models" / "fig3.toml")
    data = bm.simulate(spec, FIG3_PARAMS, clusters=clusters, cluster_size=SIZE, random_seed=1)
    t0 = time.perf_counter()
    fit = bm.fit_ml(spec, data, starts=4, random_seed=1)
    wall = time.perf_counter() - t0
    conn.send(
        {
            "wall_s": round(wall, 1),
            "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
            "loglik": round(fit.loglik, 3),
            "converged": bool(fit.converged),
            "max_abs_gradient": float(f"{fit.max_abs_gradient:.2e}"),
            "replicated": fit.starts.replicated,
            "final_stage_starts": fit.starts.n_final,
            "timings": {k: round(v, 1) for k, v in fit.timings.items()},
        }
    )


def main() -> None:
    ctx = mp.get_context("spawn")
    for case, clusters in CASES.items():
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_fit, args=(child, clusters))
        proc.start()
        record = parent.recv()
        proc.join()
        limit = 600 if case == "fig3_ml_1m" else None
        met = record["converged"] and record["peak_rss_gib"] < 24
        if limit is not None:
            met = met and record["wall_s"] <= limit
        emit(
            case,
            n=clusters * SIZE,
            schools=clusters,
            starts=4,
            **record,
            target="converged" + ("; within 600 s and 24 GiB" if limit else ""),
            met=met,
        )


if __name__ == "__main__":
    main()
