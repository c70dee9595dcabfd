"""The paper's Section 2.1 analysis on simulated Fig 1 data (``bayesmix demo``)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from bayesmix.bayes import fit_bayes
from bayesmix.ml import fit_ml
from bayesmix.plots import plot_fig1
from bayesmix.simulate import simulate
from bayesmix.spec import Spec, make_spec

FIG1_PARAMS: dict[str, float] = {
    "1[c1]": 3.0,
    "1[c2]": 0.0,
    "x[c1]": -1.1,
    "x[c2]": 0.5,
    "sigma2[c1]": 1.0,
    "sigma2[c2]": 1.0,
    "C#1 ~ 1": 0.0,
    "C#1 ~ x": 1.0,
}
"""Population values of Section 2.1 (class 1 = high class, x = female)."""


def fig1_spec() -> Spec:
    """The Fig 1 model: y on x with class-varying coefficients, membership on x."""
    return make_spec(
        "y ~ x",
        classes=2,
        membership="x",
        residual_variance="class",
        name="fig1",
        description="Single-level regression mixture of the paper's Fig 1 (eqs 1-2)",
    )


def run_fig1_demo(out: Path, *, quick: bool = False, seed: int = 20090301) -> None:
    """Simulate Fig 1 data (n = 10000, x = gender), fit by ML and NUTS, write outputs.

    Parameters
    ----------
    out : Path
        Folder for ``fig1.png``, ``fig1_ml.json`` and ``fig1_bayes.json``.
    quick : bool
        Use 4 chains x 300 draws instead of 1000.
    seed : int
        Seed of the simulation and both fits.
    """
    out.mkdir(parents=True, exist_ok=True)
    spec = fig1_spec()
    say = sys.stdout.write
    say("Section 2.1: single-level regression mixture, Fig 1 design, n = 10000\n")
    data = simulate(spec, FIG1_PARAMS, n=10000, covariates={"x": "bernoulli"}, random_seed=seed)
    fig = plot_fig1(data)
    fig.savefig(out / "fig1.png", dpi=120)
    say(f"wrote {out / 'fig1.png'}\n\n")
    ml = fit_ml(spec, data, starts=20, random_seed=seed, progress=True)
    say(ml.summary() + "\n\n")
    draws = 300 if quick else 1000
    bayes = fit_bayes(
        spec, data, draws=draws, tune=draws, chains=4, random_seed=seed, progress=True
    )
    say(bayes.summary() + "\n\n")
    say("ML estimate vs posterior mean (true value):\n")
    for name in ml.names:
        say(
            f"  {name:12s} ML {ml.params.loc[name, 'estimate']:8.4f} "
            f"(SE {ml.params.loc[name, 'se']:.4f})   Bayes "
            f"{bayes.table.loc[name, 'mean']:8.4f} (SD {bayes.table.loc[name, 'sd']:.4f})   "
            f"true {FIG1_PARAMS[name]:6.2f}\n"
        )
    (out / "fig1_ml.json").write_text(json.dumps(ml.to_dict(), indent=2), encoding="utf-8")
    (out / "fig1_bayes.json").write_text(json.dumps(bayes.to_dict(), indent=2), encoding="utf-8")
    say(f"\nwrote {out / 'fig1_ml.json'} and {out / 'fig1_bayes.json'}\n")
