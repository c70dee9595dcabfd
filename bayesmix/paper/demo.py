"""The paper's analyses available so far (``bayesmix demo``): Section 2.1 on simulated
Fig 1 data, and Section 3.1 (conventional models 1, 1b, 1c) on HSB."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from bayesmix.bayes.fit import fit_bayes
from bayesmix.data.simulate import simulate
from bayesmix.formatting import significant
from bayesmix.ml.fit import fit_ml
from bayesmix.model.build import make_spec
from bayesmix.model.spec import Spec
from bayesmix.paper.section2 import FIG1_PARAMS
from bayesmix.plots import plot_fig1


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
            f"  {name:12s} ML {significant(ml.params.loc[name, 'estimate']):>8} "
            f"(SE {significant(ml.params.loc[name, 'se'])})   Bayes "
            f"{significant(bayes.table.loc[name, 'mean']):>8} "
            f"(SD {significant(bayes.table.loc[name, 'sd'])})   "
            f"true {FIG1_PARAMS[name]:6.2f}\n"
        )
    (out / "fig1_ml.json").write_text(json.dumps(ml.to_dict(), indent=2), encoding="utf-8")
    (out / "fig1_bayes.json").write_text(json.dumps(bayes.to_dict(), indent=2), encoding="utf-8")
    say(f"\nwrote {out / 'fig1_ml.json'} and {out / 'fig1_bayes.json'}\n")


HSB_LEVEL2 = "pracad + catholic + meanses"


def hsb_conventional_spec(variant: str = "1") -> Spec:
    """The paper's model 1 on HSB, or its variants 1b and 1c (``models/hsb_1*.toml``)."""
    extra: dict[str, str] = {}
    if variant == "1b":
        extra["residual_covariates"] = "female + ses"
    elif variant == "1c":
        extra["residual_groups"] = "catholic"
    elif variant != "1":
        raise ValueError(f"variant must be '1', '1b' or '1c', got {variant!r}")
    return make_spec(
        "math ~ female + ses",
        cluster="school",
        level2={"1": HSB_LEVEL2, "female": HSB_LEVEL2, "ses": HSB_LEVEL2},
        random=["1", "female", "ses"],
        name=f"hsb_{variant}",
        **extra,
    )


def run_hsb_conventional_demo(out: Path) -> None:
    """Section 3.1 on HSB: models 1, 1b and 1c by ML, Table 1 and Fig 6 analogues.

    Parameters
    ----------
    out : Path
        Folder for ``fig6.png`` and ``hsb_1_ml.json``.
    """
    from bayesmix.analysis.schools import school_effects, share_positive
    from bayesmix.plots import plot_school_effects

    out.mkdir(parents=True, exist_ok=True)
    say = sys.stdout.write
    say("Section 3.1: conventional two-level regression on HSB (7185 students, 160 schools)\n")
    fits = {v: fit_ml(hsb_conventional_spec(v), "hsb") for v in ("1", "1b", "1c")}
    say(fits["1"].summary() + "\n\n")
    say("Table 2 (one-class rows):\n  model  logL         parameters  BIC\n")
    for v, fit in fits.items():
        say(f"  {v:5s}  {fit.loglik:11.3f}  {fit.n_params:10d}  {fit.bic:10.3f}\n")
    effects = school_effects(fits["1"])
    share = share_positive(effects, "female")
    say(
        f"\nFig 6: females have an advantage (positive school female slope) in "
        f"{100 * share:.1f}% of the {len(effects)} schools (paper, NELS: 38%).\n"
    )
    plot_school_effects(effects).savefig(out / "fig6.png", dpi=120)
    (out / "hsb_1_ml.json").write_text(json.dumps(fits["1"].to_dict(), indent=2), encoding="utf-8")
    say(f"wrote {out / 'fig6.png'} and {out / 'hsb_1_ml.json'}\n")
