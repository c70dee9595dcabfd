"""samplers: the Fig 3 model (200 clusters x 15) by each NUTS implementation of fit_bayes.

One JSON line per sampler (``fig3_sampler_<name>``): nutpie, pymc, numpyro and blackjax on
the same data (seed 1) from the same ML start, 4 chains x 1000 draws after 1000 tuning
steps: sampling seconds, compile seconds, min bulk ESS over the 11 parameters and min bulk
ESS per second of sampling, R-hat and divergences. Reported, no target.

``pymc.sampling.jax`` is imported before JAX first runs, so that XLA offers one CPU device
per chain and numpyro and blackjax run their chains in parallel, as nutpie and PyMC do. Their
sampling seconds include XLA's compilation of the sampling loop, which happens when it
starts (``compile_in_sampling``); nutpie's and PyMC's compilation is in ``compile_s``.

Arguments: ``--draws N`` (draws and tuning steps per chain, default 1000; a small number
checks that the script runs), ``--samplers`` (default all four), ``--seed`` (data seed).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

# before anything runs JAX: XLA then offers one CPU device per chain
import pymc.sampling.jax  # noqa: F401, I001

import jax
from _common import emit_bayes

import bayesmix as bm
from bayesmix.paper.section2 import FIG3_PARAMS
from bayesmix.validate import SAMPLERS

CHAINS = 4


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=1000, help="draws and tuning steps")
    parser.add_argument("--samplers", nargs="+", choices=SAMPLERS, default=list(SAMPLERS))
    parser.add_argument("--seed", type=int, default=1, help="data seed")
    args = parser.parse_args()
    spec = bm.load_spec(Path(__file__).resolve().parent.parent / "models" / "fig3.toml")
    data = bm.simulate(spec, FIG3_PARAMS, clusters=200, cluster_size=15, random_seed=args.seed)
    ml = bm.fit_ml(spec, data, starts=8, random_seed=args.seed)
    for sampler in args.samplers:
        fit = bm.fit_bayes(
            spec,
            data,
            draws=args.draws,
            tune=args.draws,
            chains=CHAINS,
            init=ml,
            random_seed=args.seed,
            sampler=sampler,
        )
        emit_bayes(
            f"fig3_sampler_{sampler}",
            fit,
            sampler=sampler,
            n=3000,
            clusters=200,
            data_seed=args.seed,
            jax_devices=jax.local_device_count(),
            compile_in_sampling=sampler in ("numpyro", "blackjax"),
        )


if __name__ == "__main__":
    main()
