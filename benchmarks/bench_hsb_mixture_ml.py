"""hsb_A3_ml and hsb_B3_ml: ML fits of the paper's models A and B with 3 classes on HSB.

20 random starts, default quadrature (7 x 7 nodes for model A's two dimensions, 5 x 5 x 5
for model B's three), JAX backend. Wall time of one fit in a fresh process (compilation
included), with the split into compile, optimise and standard errors, the log-likelihood
and how many final-stage starts replicated it. No target in the issue beyond reporting;
model B3's wall time bounds the full ``bayesmix paper`` run, which has 20 minutes.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _common import emit

import bayesmix as bm

MODELS = Path(__file__).resolve().parent.parent / "models"


def main() -> None:
    for name in sys.argv[1:] or ["A", "B"]:
        spec = bm.load_spec(MODELS / f"hsb_{name}.toml", classes=3)
        t0 = time.perf_counter()
        fit = bm.fit_ml(spec, "hsb", starts=20, random_seed=1)
        wall = time.perf_counter() - t0
        emit(
            f"hsb_{name}3_ml",
            n=fit.n_obs,
            clusters=fit.design.n_clusters,
            classes=3,
            starts=20,
            final_stage_starts=fit.starts.n_final,
            points=fit.quadrature_points,
            wall_s=round(wall, 1),
            split={k: round(v, 1) for k, v in fit.timings.items()},
            loglik=round(fit.loglik, 3),
            n_params=fit.n_params,
            bic=round(fit.bic, 2),
            replicated=fit.starts.replicated,
            converged=fit.converged,
        )


if __name__ == "__main__":
    main()
