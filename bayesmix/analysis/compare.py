"""Comparing fits: the paper's Table 2 (with LOO and WAIC for Bayes fits), likelihood-ratio
and Wald tests."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from bayesmix.analysis.enumeration import add_test_columns, tests_against_fewer
from bayesmix.errors import BayesmixWarning, EstimationError
from bayesmix.results.interface import FitResult
from bayesmix.results.ml import MLResult


@dataclass(frozen=True)
class LRTResult:
    """A likelihood-ratio test.

    Attributes
    ----------
    restricted, full : str
        Model names.
    statistic : float
        ``2 (logL_full - logL_restricted)``, divided by ``scaling`` for MLR fits.
    df : int
        Difference in the number of parameters.
    p_value : float
        Chi-square tail probability (not valid across class numbers).
    scaling : float or None
        The difference test's scaling correction ``cd`` (MLR fits), else None.
    """

    restricted: str
    full: str
    statistic: float
    df: int
    p_value: float
    scaling: float | None = None

    def __str__(self) -> str:
        kind = "LRT" if self.scaling is None else f"scaled LRT (MLR, cd = {self.scaling:.4f})"
        return (
            f"{kind} {self.restricted} vs {self.full}: chi2 = {self.statistic:.3f}, "
            f"df = {self.df}, p = {self.p_value:.4g}"
        )


def lrt(restricted: MLResult, full: MLResult) -> LRTResult:
    """Likelihood-ratio test of a restricted model against a fuller one.

    Parameters
    ----------
    restricted, full : MLResult
        ML fits to the same data, ``restricted`` nested in ``full``.

    Returns
    -------
    LRTResult

    Notes
    -----
    For two MLR fits (``se="mlr"``) the statistic is Satorra and Bentler's
    (2001) scaled difference, as Mplus computes it for log-likelihoods: with
    ``p0``, ``p1`` the parameter counts and ``c0``, ``c1`` the scaling correction
    factors (:attr:`MLResult.scaling_factor`) of the restricted and the full
    model, ``cd = (p0 c0 - p1 c1) / (p0 - p1)`` and the statistic is
    ``-2 (logL_0 - logL_1) / cd``, referred to chi-square with ``p1 - p0``
    degrees of freedom. A ``cd`` that is not positive (possible in small samples)
    makes the test undefined; it is refused.

    Warns
    -----
    BayesmixWarning
        When the fits have different numbers of classes: the restricted
        model then lies on the boundary of the fuller one's parameter space
        and the chi-square reference does not hold (use BIC instead, as the
        paper does).
    """
    if restricted.n_obs != full.n_obs:
        raise EstimationError(
            f"the fits use different data ({restricted.n_obs} vs {full.n_obs} observations)."
        )
    df = full.n_params - restricted.n_params
    if df <= 0:
        raise EstimationError(
            f"{full.spec.name!r} has {full.n_params} parameters, not more than "
            f"{restricted.spec.name!r} ({restricted.n_params}); pass the restricted model first."
        )
    if restricted.spec.classes != full.spec.classes:
        warnings.warn(
            f"the fits have different numbers of classes ({restricted.spec.classes} vs "
            f"{full.spec.classes}): the LRT's chi-square reference is invalid at this "
            "boundary; compare them by BIC.",
            BayesmixWarning,
            stacklevel=2,
        )
    statistic = 2.0 * (full.loglik - restricted.loglik)
    scaling = _difference_scaling(restricted, full)
    if scaling is not None:
        statistic /= scaling
    return LRTResult(
        restricted=restricted.spec.name,
        full=full.spec.name,
        statistic=statistic,
        df=df,
        p_value=float(stats.chi2.sf(statistic, df)),
        scaling=scaling,
    )


def _difference_scaling(restricted: MLResult, full: MLResult) -> float | None:
    """Satorra-Bentler's ``cd`` of two MLR fits; None for two ML fits."""
    kinds = (restricted.se_type, full.se_type)
    if "mlr" not in kinds:
        # the plain statistic does not depend on the standard errors' kind
        return None
    if kinds != ("mlr", "mlr"):
        raise EstimationError(
            f"the fits have {kinds[0]!r} and {kinds[1]!r} standard errors; fit both with "
            "se='mlr' for the scaled difference test, or both with se='ml'."
        )
    p0, p1 = restricted.n_params, full.n_params
    c0, c1 = float(restricted.scaling_factor or np.nan), float(full.scaling_factor or np.nan)
    cd = (p0 * c0 - p1 * c1) / (p0 - p1)
    if not cd > 0:
        raise EstimationError(
            f"the scaled difference test is undefined here: its correction cd = {cd:.4g} "
            f"(scaling factors {c0:.4f} with {p0} parameters, {c1:.4f} with {p1}) is not "
            "positive; compare the models by BIC."
        )
    return float(cd)


@dataclass(frozen=True)
class WaldResult:
    """A Wald test that a set of parameters equals given values.

    Attributes
    ----------
    names : tuple of str
        The parameters tested.
    statistic : float
        ``(b - b0)' V^-1 (b - b0)`` with V their covariance in the fit (from the
        observed information, or the sandwich of an ``se="mlr"`` fit).
    df : int
        Number of parameters tested.
    p_value : float
        Chi-square tail probability.
    """

    names: tuple[str, ...]
    statistic: float
    df: int
    p_value: float

    def __str__(self) -> str:
        return (
            f"Wald test of {', '.join(self.names)}: chi2 = {self.statistic:.3f}, "
            f"df = {self.df}, p = {self.p_value:.4g}"
        )


def wald(result: MLResult, names: list[str], values: list[float] | None = None) -> WaldResult:
    """Wald test that the parameters ``names`` of an ML fit jointly equal ``values``.

    Parameters
    ----------
    result : MLResult
    names : list of str
        Parameter names as in ``result.params`` (e.g. the cross-level
        effects model B adds to model A).
    values : list of float, optional
        Hypothesised values, zeros by default.

    Returns
    -------
    WaldResult

    Raises
    ------
    EstimationError
        For unknown names, or when a tested parameter has no standard error
        (boundary estimate or singular information), where the test is not
        valid.
    """
    unknown = [n for n in names if n not in result.names]
    if unknown:
        raise EstimationError(f"unknown parameter(s) {unknown}; the fit has {list(result.names)}.")
    if not names:
        raise EstimationError("wald() needs at least one parameter name.")
    idx = [result.names.index(n) for n in names]
    target = np.zeros(len(idx)) if values is None else np.asarray(values, dtype=float)
    if target.shape != (len(idx),):
        raise EstimationError(f"values has {target.size} entries for {len(idx)} names.")
    cov = np.asarray(result.cov)[np.ix_(idx, idx)]
    missing = [n for n, se in zip(names, result.se[idx], strict=True) if not np.isfinite(se)]
    if missing or not np.all(np.isfinite(cov)):
        raise EstimationError(
            f"{missing or names} have no standard error (boundary or not identified); "
            "the Wald test does not apply: compare the models by likelihood ratio or BIC."
        )
    diff = np.asarray(result.estimates)[idx] - target
    statistic = float(diff @ np.linalg.solve(cov, diff))
    return WaldResult(
        names=tuple(names),
        statistic=statistic,
        df=len(idx),
        p_value=float(stats.chi2.sf(statistic, len(idx))),
    )


def compare(
    results: Sequence[FitResult],
    *,
    level: str | None = None,
    max_draws: int = 1000,
    progress: bool = False,
    lmr: bool = False,
    blrt: int = 0,
    blrt_options: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """The paper's Table 2 for fits to the same data, with LOO and WAIC for Bayes fits.

    Parameters
    ----------
    results : list of FitResult
        Fits of any models (e.g. one spec at K = 1..4, or models A, B, C)
        to the same observations, by either estimator (MLResult or
        BayesResult).
    level : {"student", "school", "school_marginal"}, optional
        Level of the Bayes fits' LOO and WAIC (see :mod:`bayesmix.analysis.loo`);
        default ``"school_marginal"`` for two-level data, the only level at
        which models with level-2 classes compare with the others.
    max_draws : int
        Posterior draws for the school-level integration.
    progress : bool
        Show progress of the integration.
    lmr : bool
        Add ``lmr_p`` and ``lmr_adj_p``: the Vuong-Lo-Mendell-Rubin and
        adjusted LMR p-values (:func:`bayesmix.lmr`, Mplus TECH11) of each ML
        fit against the fit of the same model with one class fewer in
        ``results`` (NaN where there is none).
    blrt : int
        B > 0 adds ``blrt_p``, the bootstrap LRT p-value from B bootstrap
        data sets (:func:`bayesmix.blrt`, Mplus TECH14), for the same pairs;
        each bootstrap costs two fits.
    blrt_options : mapping, optional
        Passed to :func:`bayesmix.blrt` (``random_seed``, ``starts``,
        ``workers``, ``client``, ``progress``; not ``out``, which would name
        one file for several tests).

    Returns
    -------
    DataFrame
        One row per fit, in the given order: ``model``, ``estimator``,
        ``classes`` (and ``between_classes`` when a fit has level-2
        classes), ``loglik`` (for Bayes fits at the posterior mean),
        ``n_params``, ``bic`` (eq 33), ``aic``, ``sabic`` (sample-size
        adjusted BIC), ``entropy``, ``replicated`` (ML: how many final-stage
        starts reached the best log-likelihood, "r/n") and ``best_bic``
        (``*`` at the BIC minimum). With Bayes fits also ``elpd_loo``,
        ``se_loo``, ``p_loo``, ``pareto_k_bad`` (units with unreliable
        PSIS), ``elpd_waic``, ``se_waic``, ``elpd_diff`` and ``se_diff``
        (against the best LOO, the SE from the paired pointwise
        differences), ``rank_bic`` and ``rank_loo`` among the Bayes fits,
        and ``best_loo``. ``table.attrs["rank_disagreement"]`` says whether
        BIC and LOO order the Bayes fits differently; with ``lmr`` or
        ``blrt``, ``table.attrs["class_tests"]`` maps each tested row to its
        :class:`~bayesmix.analysis.enumeration.ClassTests`.

    Raises
    ------
    EstimationError
        When the list is empty or the fits use different numbers of
        observations (their likelihoods are then not comparable).
    """
    if not results:
        raise EstimationError("compare() needs at least one fit.")
    sizes = {r.n_obs for r in results}
    if len(sizes) > 1:
        raise EstimationError(
            f"the fits use different numbers of observations {sorted(sizes)}; "
            "information criteria compare fits to the same data only."
        )
    if blrt_options is not None and "out" in blrt_options:
        raise EstimationError(
            "blrt_options may not name out=: compare runs one test per pair of fits; run "
            "bayesmix.blrt on a pair to keep its bootstraps in a file."
        )
    tests = tests_against_fewer(results, lmr=lmr, blrt=blrt, blrt_options=blrt_options)
    if level is None:
        level = "school_marginal" if any(r.spec.cluster for r in results) else "student"
    rows = []
    elpds = {}
    for k, r in enumerate(results):
        row: dict[str, Any] = {
            "model": r.spec.name,
            "estimator": r.estimator,
            "classes": r.spec.classes,
            "between_classes": r.spec.between_classes,
            "loglik": r.loglik,
            "n_params": r.n_params,
            "bic": r.bic,
            "aic": r.aic,
            "sabic": r.sabic,
            "entropy": r.entropy,
            "replicated": r.starts_replicated,
        }
        if r.has_draws:
            e = r.elpd(level, max_draws=max_draws, progress=progress)
            elpds[k] = e
            row.update(
                elpd_loo=e.elpd_loo,
                se_loo=e.se_loo,
                p_loo=e.p_loo,
                pareto_k_bad=e.n_bad_k,
                elpd_waic=e.elpd_waic,
                se_waic=e.se_waic,
            )
        rows.append(row)
    table = pd.DataFrame(rows)
    if (table["between_classes"] == 1).all():
        table = table.drop(columns="between_classes")
    table["best_bic"] = np.where(table["bic"] == table["bic"].min(), "*", "")
    if lmr or blrt:
        add_test_columns(table, tests, lmr=lmr, blrt=bool(blrt))
    table.attrs["rank_disagreement"] = False
    if elpds:
        best = max(elpds, key=lambda k: elpds[k].elpd_loo)
        ref = elpds[best].pointwise
        diff = np.full(len(results), np.nan)
        se = np.full(len(results), np.nan)
        for k, e in elpds.items():
            d = e.pointwise - ref
            diff[k] = d.sum()
            se[k] = float(np.sqrt(d.size * d.var())) if k != best else 0.0
        table["elpd_diff"] = diff
        table["se_diff"] = se
        # BIC and LOO are ranked among the fits that have both: those with draws
        with_loo = table.index.isin(list(elpds))
        table["rank_bic"] = table["bic"].where(with_loo).rank(method="min")
        table["rank_loo"] = (-table["elpd_loo"]).rank(method="min")
        table["best_loo"] = np.where(table.index == best, "*", "")
        table.attrs["rank_disagreement"] = bool(
            (table.loc[with_loo, "rank_bic"] != table.loc[with_loo, "rank_loo"]).any()
        )
        table.attrs["level"] = level
    return table


def format_table(table: pd.DataFrame) -> str:
    """Fixed-width text of a :func:`compare` table, as the CLI prints it."""
    return table.to_string(
        index=False,
        formatters={
            "loglik": "{:.3f}".format,
            "bic": "{:.2f}".format,
            "aic": "{:.2f}".format,
            "sabic": "{:.2f}".format,
            "entropy": lambda v: "" if np.isnan(v) else f"{v:.3f}",
            **{
                k: (lambda v: "" if np.isnan(v) else f"{v:.2f}")
                for k in (
                    "elpd_loo",
                    "se_loo",
                    "p_loo",
                    "elpd_waic",
                    "se_waic",
                    "elpd_diff",
                    "se_diff",
                )
            },
            **{
                k: (lambda v: "" if np.isnan(v) else f"{v:.4f}")
                for k in ("lmr_p", "lmr_adj_p", "blrt_p")
            },
            **{
                k: (lambda v: "" if np.isnan(v) else f"{v:.0f}")
                for k in ("pareto_k_bad", "rank_bic", "rank_loo")
            },
        },
    )
