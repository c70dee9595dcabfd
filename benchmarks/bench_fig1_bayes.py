"""fig1_bayes: NUTS (nutpie) on the Fig 1 model, n = 10000, 4 chains x 1000 + 1000 tune.

Reports min bulk ESS per second of sampling, and per second of the whole
fit (ML initialisation, compilation, sampling, pointwise log-likelihood, LOO).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _common import emit_bayes

import bayesmix as bm
from bayesmix.paper.section2 import FIG1_PARAMS


def main() -> None:
    spec = bm.load_spec(Path(__file__).resolve().parent.parent / "models" / "fig1.toml")
    data = bm.simulate(spec, FIG1_PARAMS, n=10000, random_seed=2009)
    fit = bm.fit_bayes(spec, data, draws=1000, tune=1000, chains=4, random_seed=1)
    emit_bayes("fig1_bayes", fit, n=10000)


if __name__ == "__main__":
    main()
