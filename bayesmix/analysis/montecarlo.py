"""Monte Carlo studies, Mplus MONTECARLO style: simulate, fit, summarise, in parallel.

Each replication draws one data set from a generating model and fits every
model of a list to it. Replications run in local processes or on a Dask
cluster, are written to a JSON-lines file as they finish (an interrupted
study resumes from it), and are summarised per parameter (population value,
average estimate, SD of the estimates, average SE, SE/SD, MSE, 95% coverage,
share significant) and per model (share of replications in which it has the
best BIC). Failed fits are counted and reported, never dropped silently.
"""

from __future__ import annotations

import os
import traceback
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from bayesmix.analysis.study import (
    SimulationDesign,
    append_records,
    read_records,
    study_header,
)
from bayesmix.analysis.tasks import run_tasks
from bayesmix.bayes.fit import fit_bayes
from bayesmix.errors import EstimationError, type_name
from bayesmix.formatting import format_table
from bayesmix.ml.fit import fit_ml
from bayesmix.model.spec import Spec
from bayesmix.outputs import check_output
from bayesmix.progress import Progress
from bayesmix.results.interface import FitResult
from bayesmix.validate import check_count, check_seed

Estimator = Literal["ml", "bayes"]


@dataclass(frozen=True)
class EstimatorEntry:
    """How a study fits its models with one estimator.

    Attributes
    ----------
    fit : callable
        ``fit(spec, data, random_seed=..., **fit_kwargs)`` returning a
        :class:`~bayesmix.results.interface.FitResult`.
    has_draws : bool
        Whether its fits carry posterior draws: their intervals are
        posterior intervals, and a study of several models also ranks them
        by PSIS-LOO.
    """

    fit: Callable[..., FitResult]
    has_draws: bool


ESTIMATORS: dict[str, EstimatorEntry] = {
    "ml": EstimatorEntry(fit_ml, has_draws=False),
    "bayes": EstimatorEntry(fit_bayes, has_draws=True),
}
"""The estimators a study can use, by the name ``montecarlo(estimator=...)`` takes."""


@dataclass(frozen=True)
class _Task:
    design: SimulationDesign
    fits: tuple[Spec, ...]
    replication: int
    seed: int
    estimator: str
    fit_kwargs: dict[str, Any] = field(default_factory=dict)
    loo: bool = False


def _fit_record(task: _Task, spec: Spec, data: pd.DataFrame) -> dict[str, Any]:
    record: dict[str, Any] = {"replication": task.replication, "model": spec.name}
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fit = ESTIMATORS[task.estimator].fit(
                spec, data, random_seed=task.seed, **task.fit_kwargs
            )
            bounds = fit.intervals(0.95)
            record.update(fit.convergence())
            if task.loo:
                # only needed to rank several models; the costliest step of a record
                record["elpd"] = fit.elpd().elpd_loo
        record.update(
            ok=True,
            loglik=float(fit.loglik),
            bic=float(fit.bic),
            n_params=int(fit.n_params),
            names=list(fit.names),
            estimate=[float(v) for v in fit.point_estimates],
            se=[float(v) for v in fit.standard_errors],
            lower=[float(v) for v in bounds["lower"]],
            upper=[float(v) for v in bounds["upper"]],
            warnings=sorted({w.category.__name__ for w in caught}),
        )
    except Exception as err:
        # a failed replication is data, not a crash: it is counted and reported
        record.update(ok=False, error=f"{type_name(err)}: {err}")
        record["traceback"] = traceback.format_exc(limit=3)
    return record


def _replicate(task: _Task) -> list[dict[str, Any]]:
    """Simulate one data set and fit every model to it."""
    from bayesmix.data.simulate import simulate

    d = task.design
    data = simulate(
        d.spec,
        d.params,
        n=d.n,
        clusters=d.clusters,
        cluster_size=d.cluster_size,
        random_seed=task.seed,
    )
    return [_fit_record(task, spec, data) for spec in task.fits]


@dataclass(frozen=True, eq=False)
class MonteCarloResult:
    """Replications of a Monte Carlo study and their summaries.

    Attributes
    ----------
    records : list of dict
        One per replication and fitted model (``ok`` False for failures,
        with the error).
    design : SimulationDesign
    models : tuple of str
        Names of the fitted models.
    estimator : str
    replications : int
        Replications asked for.
    random_seed : int
        Seed of the study.
    """

    records: list[dict[str, Any]]
    design: SimulationDesign
    models: tuple[str, ...]
    estimator: str
    replications: int
    random_seed: int = 0

    @property
    def failures(self) -> dict[str, int]:
        """Failed fits per model."""
        return {
            m: sum(1 for r in self.records if r["model"] == m and not r["ok"]) for m in self.models
        }

    def parameters(self, model: str | None = None) -> pd.DataFrame:
        """Per-parameter summary of one fitted model (default: the first).

        Columns: ``population`` (NaN for a model other than the generating
        one), ``average``, ``sd`` (of the estimates), ``average_se``,
        ``se_sd`` (ratio), ``mse``, ``coverage`` (95% interval contains the
        population value), ``significant`` (share with the interval excluding
        0), ``significant_negative`` and ``significant_positive``, and
        ``replications`` (successful fits).
        """
        model = model or self.models[0]
        rows = [r for r in self.records if r["model"] == model and r["ok"]]
        if not rows:
            raise EstimationError(f"no successful replication of model {model!r}.")
        names = rows[0]["names"]
        est = np.array([r["estimate"] for r in rows])
        se = np.array([r["se"] for r in rows])
        lower = np.array([r["lower"] for r in rows])
        upper = np.array([r["upper"] for r in rows])
        same = model == self.design.spec.name
        truth = np.array([self.design.params.get(n, np.nan) if same else np.nan for n in names])
        with np.errstate(invalid="ignore"):
            sd = est.std(axis=0, ddof=1) if len(rows) > 1 else np.full(len(names), np.nan)
            # a parameter without any finite SE (unidentified in every fit) averages to NaN
            finite = np.isfinite(se)
            avg_se = np.where(finite, se, 0.0).sum(axis=0) / np.where(
                finite.any(axis=0), finite.sum(axis=0), np.nan
            )
            table = pd.DataFrame(
                {
                    "population": truth,
                    "average": est.mean(axis=0),
                    "sd": sd,
                    "average_se": avg_se,
                    "se_sd": avg_se / sd,
                    "mse": np.mean((est - truth) ** 2, axis=0),
                    "coverage": np.mean((lower <= truth) & (truth <= upper), axis=0),
                    "significant": np.mean((lower > 0) | (upper < 0), axis=0),
                    "significant_negative": np.mean(upper < 0, axis=0),
                    "significant_positive": np.mean(lower > 0, axis=0),
                    "replications": len(rows),
                },
                index=pd.Index(names, name="parameter"),
            )
        if not same:
            table[["mse", "coverage"]] = np.nan
        return table

    def selection(self) -> pd.DataFrame:
        """Per model: successful fits, failures, share with the best BIC (and LOO for Bayes).

        Shares are over the replications in which every model fitted.
        """
        by_rep: dict[int, dict[str, dict[str, Any]]] = {}
        for r in self.records:
            by_rep.setdefault(r["replication"], {})[r["model"]] = r
        complete = [
            reps
            for reps in by_rep.values()
            if all(m in reps and reps[m]["ok"] for m in self.models)
        ]
        best_bic = [min(reps, key=lambda m: reps[m]["bic"]) for reps in complete]
        out = pd.DataFrame(
            {
                "fitted": [
                    sum(1 for r in self.records if r["model"] == m and r["ok"]) for m in self.models
                ],
                "failed": [self.failures[m] for m in self.models],
                "not_converged": [
                    sum(
                        1
                        for r in self.records
                        if r["model"] == m and r["ok"] and not r.get("converged", True)
                    )
                    for m in self.models
                ],
                "best_bic": [
                    best_bic.count(m) / len(complete) if complete else np.nan for m in self.models
                ],
            },
            index=pd.Index(self.models, name="model"),
        )
        if ESTIMATORS[self.estimator].has_draws and len(self.models) > 1:
            best_loo = [max(reps, key=lambda m: reps[m]["elpd"]) for reps in complete]
            out["best_loo"] = [
                best_loo.count(m) / len(complete) if complete else np.nan for m in self.models
            ]
        out.attrs["complete_replications"] = len(complete)
        return out

    def summary(self) -> str:
        """Printable report: design, failures, selection and each model's parameters."""
        d = self.design
        size = f"n = {d.n}" if d.n else f"{d.clusters} clusters x {d.cluster_size}"
        lines = [
            f"Monte Carlo: data from {d.spec.name} ({size}), {self.replications} replications, "
            f"estimator {self.estimator}",
            "",
            self.selection().to_string(float_format=lambda v: f"{v:.3f}"),
        ]
        for m in self.models:
            try:
                table = self.parameters(m)
            except EstimationError as err:
                lines += ["", f"{m}: {err}"]
                continue
            lines += ["", f"model {m}:", format_table(table)]
        return "\n".join(lines)


def compare_estimators(
    ml: MonteCarloResult, bayes: MonteCarloResult, model: str | None = None
) -> pd.DataFrame:
    """ML Wald intervals and Bayes posterior intervals over the same data sets.

    Both studies must share the generating design and seed, so replication
    r is the same data set in both; only replications that both estimators
    fitted are compared.

    Parameters
    ----------
    ml, bayes : MonteCarloResult
        The same study run with ``estimator="ml"`` and ``estimator="bayes"``.
    model : str, optional
        Fitted model (default: the first).

    Returns
    -------
    pandas.DataFrame
        Per parameter: ``population``, then ``average``, ``sd`` (of the
        estimates), ``average_se`` (ML SE, posterior SD), ``se_sd``,
        ``mse`` and ``coverage`` (95%), each with the suffix ``_ml`` or
        ``_bayes``. ``attrs`` holds the paired replications and the Bayes
        fits not converged (R-hat above 1.01 or divergences).
    """
    # Wald intervals against posterior intervals: a study without draws, then one with
    if ESTIMATORS[ml.estimator].has_draws or not ESTIMATORS[bayes.estimator].has_draws:
        raise EstimationError(
            f"compare_estimators(ml, bayes) takes an ML and a Bayes study, got "
            f"{ml.estimator!r} and {bayes.estimator!r}."
        )
    if repr(ml.design) != repr(bayes.design) or ml.random_seed != bayes.random_seed:
        raise EstimationError(
            "the two studies simulate different data (design or random_seed differ); run "
            "both with the same generate, size and random_seed."
        )
    model = model or ml.models[0]

    def ok(res: MonteCarloResult) -> set[int]:
        return {r["replication"] for r in res.records if r["model"] == model and r["ok"]}

    paired = ok(ml) & ok(bayes)
    if not paired:
        raise EstimationError(f"no replication of model {model!r} fitted by both estimators.")

    def table(res: MonteCarloResult) -> pd.DataFrame:
        kept = [r for r in res.records if r["replication"] in paired]
        return replace(res, records=kept).parameters(model)

    t_ml, t_bayes = table(ml), table(bayes)
    stats = ["average", "sd", "average_se", "se_sd", "mse", "coverage"]
    out = pd.DataFrame({"population": t_ml["population"]})
    for stat in stats:
        out[f"{stat}_ml"] = t_ml[stat]
        out[f"{stat}_bayes"] = t_bayes[stat]
    out.attrs["paired_replications"] = len(paired)
    out.attrs["bayes_not_converged"] = sum(
        1
        for r in bayes.records
        if r["model"] == model and r["replication"] in paired and not r.get("converged", True)
    )
    return out


def montecarlo(
    generate: tuple[Spec, Mapping[str, float]] | SimulationDesign,
    fit: Spec | Sequence[Spec],
    replications: int,
    *,
    n: int | None = None,
    clusters: int | None = None,
    cluster_size: int | None = None,
    estimator: Estimator = "ml",
    random_seed: int = 0,
    workers: int | None = None,
    client: Any = None,
    out: str | Path | None = None,
    progress: bool = True,
    **fit_kwargs: Any,
) -> MonteCarloResult:
    """Run a Monte Carlo study.

    Parameters
    ----------
    generate : (Spec, mapping) or SimulationDesign
        Generating model and its population values (with ``n`` or
        ``clusters`` and ``cluster_size``), or a :class:`SimulationDesign`.
    fit : Spec or list of Spec
        Models fitted to every data set (names must differ).
    replications : int
    n, clusters, cluster_size : int, optional
        Size of each data set, when ``generate`` is not a SimulationDesign.
    estimator : {"ml", "bayes"}
        ML (Wald intervals) or NUTS (posterior mean, SD and 95% quantile
        interval; fit_kwargs such as ``draws`` pass through).
    random_seed : int
        Seed of the study: replication r uses the r-th child of
        ``numpy.random.SeedSequence(random_seed)``, so results do not
        depend on the number of workers or their order.
    workers : int, optional
        Local processes (default: the machine's cores); 1 runs in this
        process.
    client : dask.distributed.Client or str, optional
        Run on a Dask cluster (a Client, or a scheduler address) instead.
    out : path, optional
        JSON-lines file; each replication's records are appended as it
        finishes, and replications already in it are not run again.
    progress : bool
        Show progress.
    **fit_kwargs
        Passed to ``fit_ml`` or ``fit_bayes`` (e.g. ``starts``).

    Returns
    -------
    MonteCarloResult
    """
    design = (
        generate
        if isinstance(generate, SimulationDesign)
        else SimulationDesign(
            generate[0], dict(generate[1]), n=n, clusters=clusters, cluster_size=cluster_size
        )
    )
    fits = (fit,) if isinstance(fit, Spec) else tuple(fit)
    names = [s.name for s in fits]
    if len(set(names)) != len(names):
        raise EstimationError(f"fitted models need distinct names, got {names}.")
    replications = check_count(replications, "replications")
    if not isinstance(estimator, str) or estimator not in ESTIMATORS:
        raise EstimationError(f"estimator must be 'ml' or 'bayes', got {estimator!r}.")
    random_seed = check_seed(random_seed)
    seeds = [
        int(s.generate_state(1)[0]) for s in np.random.SeedSequence(random_seed).spawn(replications)
    ]
    # before any replication: the file must be one that can be created, or resumed
    path = (
        check_output(out, label="out", overwrite=True, example="study.jsonl")
        if out is not None
        else None
    )
    header = study_header(design, fits, estimator, random_seed, fit_kwargs)
    records = read_records(path, header) if path is not None else []
    done = {r["replication"] for r in records}
    loo = ESTIMATORS[estimator].has_draws and len(fits) > 1
    todo = [
        _Task(design, fits, r, seeds[r], estimator, dict(fit_kwargs), loo)
        for r in range(replications)
        if r not in done
    ]
    bar = Progress(replications, "replications", enabled=progress)
    bar.done = len(done)
    workers = workers or os.cpu_count() or 1

    def keep(new: list[dict[str, Any]]) -> None:
        records.extend(new)
        append_records(path, new)
        failed = sum(1 for r in records if not r["ok"])
        bar.update(f"failed fits {failed}")

    run_tasks(_replicate, todo, keep, workers=workers, client=client, path=path)
    bar.close()
    records.sort(key=lambda r: (r["replication"], names.index(r["model"])))
    return MonteCarloResult(
        records=[r for r in records if r["replication"] < replications],
        design=design,
        models=tuple(names),
        estimator=estimator,
        replications=replications,
        random_seed=random_seed,
    )
