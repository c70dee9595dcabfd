"""fig3_bayes: NUTS on the Fig 3 two-level mixture (200 clusters x 15), default settings.

4 chains x 1000 draws after 1000 tuning steps, ML initialisation, on 5 simulated data sets
(seeds 1-5): min bulk ESS per second of sampling (target at least 30), R-hat, divergences
and the largest |posterior mean - ML| in posterior SDs (target below 0.5).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _common import emit_bayes
from bench_fig3_ml import FIG3_PARAMS

import bayesmix as bm


def main() -> None:
    spec = bm.load_spec(Path(__file__).resolve().parent.parent / "models" / "fig3.toml")
    for seed in range(1, 6):
        data = bm.simulate(spec, FIG3_PARAMS, clusters=200, cluster_size=15, random_seed=seed)
        ml = bm.fit_ml(spec, data, starts=8, random_seed=seed)
        fit = bm.fit_bayes(spec, data, random_seed=seed, ml_starts=8)
        gap = ((fit.table["mean"] - ml.params["estimate"]).abs() / fit.table["sd"]).max()
        emit_bayes(
            "fig3_bayes",
            fit,
            n=3000,
            clusters=200,
            data_seed=seed,
            max_gap_in_sd=round(float(gap), 3),
            label_switching=fit.labels.switched,
            target_min_ess_per_s=30,
        )


if __name__ == "__main__":
    main()
