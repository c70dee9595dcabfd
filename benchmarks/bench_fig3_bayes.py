"""fig3_bayes: NUTS on the Fig 3 two-level mixture (200 clusters x 15), default settings.

4 chains x 1000 draws after 1000 tuning steps, ML initialisation, on 5 simulated data sets
(seeds 1-5): min bulk ESS per second of sampling (target at least 30 and at least 2x the
baseline), R-hat, divergences and the largest |posterior mean - ML| in posterior SDs (target
below 0.5).

The baseline (``fig3_bayes_baseline``, same data, same run) is the model a PyMC user would
write first: centred school effects, ``pm.Mixture`` of normals with per-student weights,
ordered class intercepts (without them chains label classes differently and no ESS is
meaningful), nutpie with its default jittered initialisation and default adaptation.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import arviz_stats as azs
import numpy as np
import pymc as pm
import pytensor.tensor as pt
from _common import emit, emit_bayes
from pymc.distributions.transforms import Ordered

import bayesmix as bm
from bayesmix.paper.section2 import FIG3_PARAMS

DRAWS = TUNE = 1000
CHAINS = 4


def baseline_model(data) -> pm.Model:
    """The Fig 3 model as a direct PyMC transcription (eqs 3-9)."""
    codes, schools = np.unique(data["cluster"].to_numpy(), return_inverse=True)
    w_school = data.groupby("cluster")["w"].first().loc[codes].to_numpy()
    x, w, y = (data[c].to_numpy() for c in ("x", "w", "y"))
    with pm.Model() as model:
        b0 = pm.Normal("b0", 0.0, 10.0, shape=2, transform=Ordered(ascending=False),
                       initval=np.array([1.0, -1.0]))  # fmt: skip
        bx = pm.Normal("bx", 0.0, 10.0, shape=2)
        bw = pm.Normal("bw", 0.0, 10.0)
        sd_u = pm.HalfNormal("sd_u", 2.0)
        u = pm.Normal("u", 0.0, sd_u, shape=len(codes))
        sigma = pm.HalfNormal("sigma", 5.0)
        g = pm.Normal("g", 0.0, 5.0, shape=3)
        sd_a = pm.HalfNormal("sd_a", 2.0)
        a = pm.Normal("a", g[0] + g[2] * w_school, sd_a)
        p1 = pm.math.sigmoid(a[schools] + g[1] * x)
        weights = pt.stack([p1, 1.0 - p1], axis=1)
        mu = b0[None, :] + bx[None, :] * x[:, None] + (bw * w + u[schools])[:, None]
        pm.Mixture("y", w=weights, comp_dists=pm.Normal.dist(mu=mu, sigma=sigma), observed=y)
    return model


def run_baseline(data, seed: int) -> dict[str, float]:
    import nutpie

    t0 = time.perf_counter()
    compiled = nutpie.compile_pymc_model(baseline_model(data))
    t1 = time.perf_counter()
    idata = nutpie.sample(
        compiled, draws=DRAWS, tune=TUNE, chains=CHAINS, seed=seed, progress_bar=False
    )
    sampling_s = time.perf_counter() - t1
    names = ["b0", "bx", "bw", "sd_u", "sigma", "g", "sd_a"]
    post = idata["posterior"].to_dataset()[names]
    ess = azs.ess(post, method="bulk")
    rhat = azs.rhat(post)
    ess_min = float(min(float(ess[v].min()) for v in names))
    rhat_max = float(max(float(rhat[v].max()) for v in names))
    divergences = int(idata["sample_stats"]["diverging"].sum())
    return {
        "ess_bulk_min": round(ess_min, 1),
        "min_ess_per_s_sampling": round(ess_min / sampling_s, 2),
        "sampling_s": round(sampling_s, 2),
        "compile_s": round(t1 - t0, 2),
        "rhat_max": round(rhat_max, 4),
        "divergences": divergences,
    }


def main() -> None:
    spec = bm.load_spec(Path(__file__).resolve().parent.parent / "models" / "fig3.toml")
    seeds = [int(s) for s in sys.argv[1:]] or list(range(1, 6))
    for seed in seeds:
        data = bm.simulate(spec, FIG3_PARAMS, clusters=200, cluster_size=15, random_seed=seed)
        ml = bm.fit_ml(spec, data, starts=8, random_seed=seed)
        fit = bm.fit_bayes(spec, data, random_seed=seed, ml_starts=8)
        gap = ((fit.table["mean"] - ml.params["estimate"]).abs() / fit.table["sd"]).max()
        base = run_baseline(data, seed)
        ours = fit.ess_bulk_min / fit.timings["sampling_s"]
        emit_bayes(
            "fig3_bayes",
            fit,
            n=3000,
            clusters=200,
            data_seed=seed,
            max_gap_in_sd=round(float(gap), 3),
            label_switching=fit.labels.switched,
            baseline_min_ess_per_s=base["min_ess_per_s_sampling"],
            speedup_over_baseline=round(ours / base["min_ess_per_s_sampling"], 2),
            target_min_ess_per_s=30,
            target_speedup=2.0,
        )
        emit("fig3_bayes_baseline", n=3000, clusters=200, data_seed=seed, chains=CHAINS,
             draws=DRAWS, tune=TUNE, **base)  # fmt: skip


if __name__ == "__main__":
    main()
