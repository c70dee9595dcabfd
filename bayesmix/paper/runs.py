"""``bayesmix paper``: the paper's Section 3 analysis on the bundled HSB data, end to end.

Models 1, 1b and 1c (Table 1), the two-level regression mixtures A2-A4 and
B2-B4 and the level-2 class model C23 by ML (Table 2, with the Wald test of
B3's extra parameters over A3), models 1 and B3 by NUTS with LOO at the
school level, the paper's Figs 5, 6 and 8 and the mixture plots, written to
an output folder with a Markdown report.
"""

from __future__ import annotations

import json
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from bayesmix.analysis.compare import compare, format_table, wald
from bayesmix.bayes.fit import fit_bayes
from bayesmix.data.datasets import load_hsb
from bayesmix.ml.fit import fit_ml
from bayesmix.ml.starts import between_start
from bayesmix.model.build import load_spec
from bayesmix.model.catalogue import model_file
from bayesmix.model.spec import Spec
from bayesmix.paper.report import ReportInputs, RunLog, add_report_sections, save_figure
from bayesmix.paper.tables import estimates_table
from bayesmix.results.bayes import BayesResult
from bayesmix.results.interface import FitResult
from bayesmix.results.ml import MLResult


@dataclass(frozen=True)
class PaperPlan:
    """What a run fits and how hard it tries.

    Attributes
    ----------
    mixture_classes : tuple of int
        K of models A and B.
    between : bool
        Whether model C23 is fitted.
    starts : int
        ML random starts per mixture (Mplus ``STARTS``; the best fifth go to
        the final stage).
    starts_large : int
        Starts for K = 4, whose final stage costs most (with 10 starts B4's
        best log-likelihood on HSB is missed).
    bayes_models : tuple of str
        Models fitted by NUTS ("1" and/or "B3").
    draws, tune : int
        NUTS draws and warm-up per chain (4 chains) of the mixtures. B3's
        school covariances mix slowly: with 500 + 500 its largest R-hat
        stays well above 1.01, and 2000 + 1000 brings it to about 1.01
        within the full run's time.
    draws_conventional : int
        Draws and warm-up per chain of model 1, whose random-effect
        covariances mix slowly but whose draws are cheap.
    loo_draws : int
        Posterior draws used for the integrated school-level LOO.
    """

    mixture_classes: tuple[int, ...] = (2, 3, 4)
    between: bool = True
    starts: int = 20
    starts_large: int = 20
    bayes_models: tuple[str, ...] = ("1", "B3")
    draws: int = 2000
    tune: int = 1000
    draws_conventional: int = 2000
    loo_draws: int = 500

    @classmethod
    def quick(cls) -> PaperPlan:
        """A smaller run: K = 2 only, no model C, few starts and short chains."""
        return cls(
            mixture_classes=(2,),
            between=False,
            starts=4,
            starts_large=4,
            bayes_models=("1",),
            draws=300,
            tune=300,
            draws_conventional=500,
            loo_draws=200,
        )


def paper_spec(model: str, classes: int = 1) -> Spec:
    """The paper's model ``"1"``, ``"1b"``, ``"1c"``, ``"A"``, ``"B"`` or ``"C"`` on HSB."""
    files = {"1": "hsb_1", "1b": "hsb_1b", "1c": "hsb_1c", "A": "hsb_A", "B": "hsb_B"}
    if model == "C":
        return load_spec(model_file("hsb_C"), classes=classes, between_classes=2)
    spec = load_spec(model_file(files[model]))
    return spec if model in ("1", "1b", "1c") else spec.with_classes(classes)


def _label(fit: FitResult) -> str:
    spec = fit.spec
    letter = spec.name.removeprefix("hsb_")
    if spec.classes == 1:
        return letter
    if spec.between_classes > 1:
        # the paper's C23: two level-2 classes over three level-1 classes
        return f"{letter}{spec.between_classes}{spec.classes}"
    return f"{letter}{spec.classes}"


def run_paper(
    out: Path,
    *,
    quick: bool = False,
    seed: int = 20090301,
    plan: PaperPlan | None = None,
    lmr: bool = False,
    blrt: int = 0,
    workers: int = 1,
) -> dict[str, Any]:
    """Run the paper's HSB analysis and write tables, figures and ``report.md`` to ``out``.

    Parameters
    ----------
    out : Path
        Output folder (created).
    quick : bool
        The smaller plan of :meth:`PaperPlan.quick`.
    seed : int
        Seed of every fit.
    plan : PaperPlan, optional
        Overrides ``quick``.
    lmr : bool
        Add the Vuong-Lo-Mendell-Rubin and adjusted LMR p-values of each ML
        fit against the same model with one class fewer to Table 2.
    blrt : int
        B > 0 adds the bootstrap LRT's p-value from B bootstraps to Table 2;
        on HSB each bootstrap costs two full fits of a two-level mixture, so it
        is off by default.
    workers : int
        Local processes of the bootstrap LRT.

    Returns
    -------
    dict
        ``table2`` (DataFrame), ``fits`` (label -> result) and ``elapsed_s``.
    """
    from bayesmix.plots import plot_fig5

    if plan is None:
        plan = PaperPlan.quick() if quick else PaperPlan()
    out.mkdir(parents=True, exist_ok=True)
    log = RunLog()
    data = load_hsb()
    n_schools = data["school"].nunique()
    log.step(f"HSB: {len(data)} students in {n_schools} schools; plan: {plan}")
    log.md(
        "# Multilevel regression mixture analysis of High School and Beyond",
        "",
        f"{len(data)} students in {n_schools} schools; outcome math, level-1 covariates "
        "female and ses, school covariates pracad, catholic and meanses. "
        f"{'Quick run (smaller plan). ' if quick else ''}Seed {seed}.",
        "",
    )
    save_figure(plot_fig5(data), out / "fig5.png", log)

    fits = _fit_ml_models(plan, data, seed, log)

    ml_fits = list(fits.values())
    table2 = compare(
        ml_fits,
        lmr=lmr,
        blrt=blrt,
        blrt_options={"random_seed": seed, "workers": workers, "progress": False},
    )
    table2.insert(0, "label", [_label(f) for f in ml_fits])
    text2 = format_table(table2)
    log.step("Table 2 (ML):\n" + text2)
    table2.to_csv(out / "table2.csv", index=False)

    bayes = _fit_bayes_models(plan, fits, data, seed, log)
    table_bayes = _bayes_table(bayes, plan, out, log)

    # Table 1 and the school effects of the conventional model
    table1 = estimates_table(fits["1"], bayes.get("1"))  # type: ignore[arg-type]
    table1.to_csv(out / "table1.csv")
    share1, share_mix, main = _school_figures(plan, fits, bayes, out, log)

    wald_text = ""
    if "A3" in fits and "B3" in fits:
        extra = [n for n in fits["B3"].names if n not in fits["A3"].names]
        test = wald(fits["B3"], extra)  # type: ignore[arg-type]
        wald_text = f"Wald test of B3's {len(extra)} extra parameters over A3: {test}"
        log.step(wald_text)

    for label, fit in fits.items():
        (out / f"fit_{label}.json").write_text(
            json.dumps(fit.to_dict(), indent=2), encoding="utf-8"
        )
    for label, b in bayes.items():
        (out / f"fit_{label}_nuts.json").write_text(
            json.dumps(b.to_dict(), indent=2), encoding="utf-8"
        )

    add_report_sections(
        log,
        ReportInputs(
            table1=table1,
            table2=table2,
            table_bayes=table_bayes,
            bayes=bayes,
            wald_text=wald_text,
            share1=share1,
            share_mix=share_mix,
            main=main,
        ),
    )
    elapsed = time.perf_counter() - log.start
    log.md(f"Run time: {elapsed:.0f} s.")
    (out / "report.md").write_text("\n".join(log.lines) + "\n", encoding="utf-8")
    log.step(f"wrote {out / 'report.md'}; total {elapsed:.0f}s")
    return {
        "table2": table2,
        "fits": {**fits, **{f"{k}_nuts": v for k, v in bayes.items()}},
        "elapsed_s": elapsed,
    }


def _fit_ml_models(
    plan: PaperPlan, data: pd.DataFrame, seed: int, log: RunLog
) -> dict[str, MLResult]:
    """Models 1, 1b and 1c, the mixtures A and B, and C23 from B3, by ML."""
    fits: dict[str, MLResult] = {}
    for variant in ("1", "1b", "1c"):
        fit = fit_ml(paper_spec(variant), data, random_seed=seed)
        fits[variant] = fit
        log.step(f"model {variant} (ML): logL {fit.loglik:.3f}, BIC {fit.bic:.2f}")
    for letter in ("A", "B"):
        for K in plan.mixture_classes:
            starts = plan.starts_large if K >= 4 else plan.starts
            log.step(f"model {letter}{K} (ML, {starts} starts) ...")
            fit = fit_ml(
                paper_spec(letter, K), data, starts=starts, random_seed=seed, progress=True
            )
            fits[f"{letter}{K}"] = fit
            log.step(
                f"model {letter}{K}: logL {fit.loglik:.3f}, {fit.n_params} parameters, "
                f"BIC {fit.bic:.2f}, best logL replicated {fit.starts.replicated}/"
                f"{fit.starts.n_final or fit.starts.n_starts}"
            )
    if plan.between and "B3" in fits:
        spec_c = paper_spec("C", 3)
        # B3's estimates as a start (Mplus SVALUES) find the optimum that random
        # starts reach rarely; a few random starts check it
        n_c = max(2, plan.starts // 4)
        log.step(f"model C23 (ML, {n_c} starts + B3's estimates) ...")
        fit = fit_ml(
            spec_c,
            data,
            starts=n_c,
            random_seed=seed,
            init=between_start(fits["B3"], spec_c),  # type: ignore[arg-type]
            start_from_smaller=False,
            progress=True,
        )
        fits["C23"] = fit
        log.step(f"model C23: logL {fit.loglik:.3f}, BIC {fit.bic:.2f}")
    return fits


def _fit_bayes_models(
    plan: PaperPlan,
    fits: dict[str, MLResult],
    data: pd.DataFrame,
    seed: int,
    log: RunLog,
) -> dict[str, BayesResult]:
    """The plan's models by NUTS from their ML estimates, each with its school-level LOO."""
    bayes: dict[str, BayesResult] = {}
    for label in plan.bayes_models:
        ml = fits[label]
        n_draws = plan.draws_conventional if ml.spec.classes == 1 else plan.draws
        log.step(f"model {label} by NUTS (4 chains x {n_draws} draws, from the ML estimates) ...")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            b = fit_bayes(
                ml.spec,
                data,
                draws=n_draws,
                tune=n_draws if ml.spec.classes == 1 else plan.tune,
                random_seed=seed,
                init=ml,  # type: ignore[arg-type]
                progress=True,
            )
        for w in caught:
            log.step(f"  ! {w.message}")
        bayes[label] = b
        e = b.elpd("school_marginal", max_draws=plan.loo_draws, progress=True)
        log.step(
            f"model {label} (NUTS): {b.timings['sampling_s']:.0f}s sampling, max R-hat "
            f"{b.rhat_max:.3f}, min ESS {b.ess_bulk_min:.0f}, {b.divergences} divergences; {e}"
        )
    return bayes


def _bayes_table(
    bayes: dict[str, BayesResult], plan: PaperPlan, out: Path, log: RunLog
) -> pd.DataFrame | None:
    """The NUTS fits compared by school-level LOO, written to ``table2_bayes.csv``."""
    table_bayes = None
    if bayes:
        table_bayes = compare(
            list(bayes.values()), level="school_marginal", max_draws=plan.loo_draws
        )
        table_bayes.insert(0, "label", [f"{k} (NUTS)" for k in bayes])
        log.step("Bayes fits, school-level LOO:\n" + format_table(table_bayes))
        table_bayes.to_csv(out / "table2_bayes.csv", index=False)
    return table_bayes


def _school_figures(
    plan: PaperPlan,
    fits: dict[str, MLResult],
    bayes: dict[str, BayesResult],
    out: Path,
    log: RunLog,
) -> tuple[float, float, str]:
    """Figs 6 and 8 and the mixture's plots; the shares of schools with a positive female
    coefficient under model 1 and under the interpreted mixture, and that mixture's label."""
    from bayesmix.analysis.schools import school_effects, share_positive
    from bayesmix.plots import (
        plot_class_lines,
        plot_diagnostics,
        plot_membership,
        plot_ml_vs_bayes,
        plot_school_effects,
    )

    effects1 = school_effects(fits["1"])
    share1 = share_positive(effects1, "female")
    save_figure(plot_school_effects(effects1), out / "fig6.png", log)

    # the mixture the paper interprets: B3 (B2 in the quick plan)
    main = "B3" if "B3" in fits else f"B{max(plan.mixture_classes)}"
    mix = fits[main]
    effects_mix = school_effects(mix)
    share_mix = share_positive(effects_mix, "female")
    save_figure(plot_school_effects(effects_mix), out / "fig8.png", log)
    save_figure(plot_class_lines(mix, "ses"), out / f"class_lines_{main}.png", log)  # type: ignore[arg-type]
    save_figure(plot_membership(mix, "ses"), out / f"membership_{main}.png", log)  # type: ignore[arg-type]
    if main in bayes:
        save_figure(plot_ml_vs_bayes(mix, bayes[main]), out / f"ml_vs_bayes_{main}.png", log)  # type: ignore[arg-type]
        save_figure(plot_diagnostics(bayes[main], "trace"), out / f"trace_{main}.png", log)
    if "1" in bayes:
        save_figure(plot_ml_vs_bayes(fits["1"], bayes["1"]), out / "ml_vs_bayes_1.png", log)  # type: ignore[arg-type]
    return share1, share_mix, main
