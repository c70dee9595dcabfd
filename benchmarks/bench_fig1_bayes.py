"""fig1_bayes: NUTS (nutpie) on the Fig 1 model, n = 10000, 4 chains x 1000 + 1000 tune.

Reports min bulk ESS per second of sampling, and per second of the whole
fit (ML initialisation, compilation, sampling, pointwise log-likelihood, LOO).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _common import emit

import bayesmix as bm
from bayesmix.demo import FIG1_PARAMS


def main() -> None:
    spec = bm.load_spec(Path(__file__).resolve().parent.parent / "models" / "fig1.toml")
    data = bm.simulate(spec, FIG1_PARAMS, n=10000, random_seed=2009)
    fit = bm.fit_bayes(spec, data, draws=1000, tune=1000, chains=4, random_seed=1)
    t = fit.timings
    emit(
        "fig1_bayes",
        n=10000,
        chains=4,
        draws=1000,
        tune=1000,
        ess_bulk_min=round(fit.ess_bulk_min, 1),
        min_ess_per_s_sampling=round(fit.ess_bulk_min / t["sampling_s"], 2),
        min_ess_per_s_total=round(fit.ess_bulk_min / t["elapsed_s"], 2),
        sampling_s=round(t["sampling_s"], 2),
        compile_s=round(t["compile_s"], 2),
        elapsed_s=round(t["elapsed_s"], 2),
        rhat_max=round(fit.rhat_max, 4),
        divergences=fit.divergences,
    )


if __name__ == "__main__":
    main()
