"""fig3_ml_start: the ML fit that starts NUTS, from the first 8 of 20 starts, on Fig 3 data.

For each data seed (default 1-5; 200 schools x 15 students), ``fit_bayes``'s start
(:func:`bayesmix.bayes.fit.ml_start`: 8 starts, all 20 only when the best log-likelihood of
the 8 is not replicated) against the fit from all 20 starts, on the standardised data the
chains run on: seconds, the best log-likelihood of each and whether the quick one was kept.
Then ``fit_bayes`` with its defaults (4 x 1000 + 1000) from that start: R-hat, minimum bulk
ESS, divergences and label switching. Target: the same mode as 20 starts (log-likelihoods
within 1e-3), and on every seed no label switching and every R-hat at most 1.01.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _common import emit

import bayesmix as bm
from bayesmix.bayes.fit import QUICK_ML_STARTS, ml_start, prepare
from bayesmix.diagnostics import RHAT_MAX
from bayesmix.ml.fit import fit_internal
from bayesmix.paper.section2 import FIG3_PARAMS

STARTS = 20


def main() -> None:
    spec = bm.load_spec(Path(__file__).resolve().parent.parent / "models" / "fig3.toml")
    seeds = [int(s) for s in sys.argv[1:]] or list(range(1, 6))
    for seed in seeds:
        data = bm.simulate(spec, FIG3_PARAMS, clusters=200, cluster_size=15, random_seed=seed)
        _, internal, _, _ = prepare(spec, data, None, "error")
        t0 = time.perf_counter()
        quick = ml_start(internal, STARTS, seed)
        quick_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        full = fit_internal(internal, starts=STARTS, random_seed=seed)
        full_s = time.perf_counter() - t0
        fit = bm.fit_bayes(spec, data, random_seed=seed)
        same_mode = abs(quick.loglik - full.loglik) < 1e-3
        emit(
            "fig3_ml_start",
            data_seed=seed,
            quick_starts=quick.starts.n_starts,
            kept_quick=quick.starts.n_starts == QUICK_ML_STARTS,
            quick_replicated=quick.starts.replicated,
            quick_s=round(quick_s, 2),
            full_s=round(full_s, 2),
            loglik_quick=round(float(quick.loglik), 4),
            loglik_full=round(float(full.loglik), 4),
            rhat_max=round(fit.rhat_max, 4),
            ess_bulk_min=round(fit.ess_bulk_min, 1),
            divergences=int(fit.idata["sample_stats"]["diverging"].sum()),
            label_switching=fit.labels.switched,
            target="same mode; no label switching; R-hat <= 1.01",
            met=bool(same_mode and not fit.labels.switched and fit.rhat_max <= RHAT_MAX),
        )


if __name__ == "__main__":
    main()
