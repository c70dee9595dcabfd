"""Comparing fits: the paper's Table 2 and likelihood-ratio tests of nested models."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from bayesmix.errors import BayesmixWarning, EstimationError
from bayesmix.results import MLResult


@dataclass(frozen=True)
class LRTResult:
    """A likelihood-ratio test.

    Attributes
    ----------
    restricted, full : str
        Model names.
    statistic : float
        ``2 (logL_full - logL_restricted)``.
    df : int
        Difference in the number of parameters.
    p_value : float
        Chi-square tail probability (not valid across class numbers).
    """

    restricted: str
    full: str
    statistic: float
    df: int
    p_value: float

    def __str__(self) -> str:
        return (
            f"LRT {self.restricted} vs {self.full}: chi2 = {self.statistic:.3f}, "
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
    return LRTResult(
        restricted=restricted.spec.name,
        full=full.spec.name,
        statistic=statistic,
        df=df,
        p_value=float(stats.chi2.sf(statistic, df)),
    )


@dataclass(frozen=True)
class WaldResult:
    """A Wald test that a set of parameters equals given values.

    Attributes
    ----------
    names : tuple of str
        The parameters tested.
    statistic : float
        ``(b - b0)' V^-1 (b - b0)`` with V their covariance from the observed
        information.
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


def compare(results: list[MLResult]) -> pd.DataFrame:
    """The paper's Table 2 for ML fits to the same data.

    Parameters
    ----------
    results : list of MLResult
        Fits of any models (e.g. one spec at K = 1..4, or models A, B, C)
        to the same observations.

    Returns
    -------
    DataFrame
        One row per fit, in the given order: ``model``, ``classes``,
        ``loglik``, ``n_params``, ``bic`` (eq 33), ``aic``, ``sabic``
        (sample-size adjusted BIC), ``entropy``, ``replicated`` (how many
        final-stage starts reached the best log-likelihood, "r/n") and
        ``best_bic`` (``*`` at the BIC minimum).

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
    rows = []
    for r in results:
        st = r.starts
        n_runs = st.n_final if st.n_final is not None else st.n_starts
        rows.append(
            {
                "model": r.spec.name,
                "classes": r.spec.classes,
                "loglik": r.loglik,
                "n_params": r.n_params,
                "bic": r.bic,
                "aic": r.aic,
                "sabic": r.sabic,
                "entropy": r.entropy,
                "replicated": f"{st.replicated}/{n_runs}" if r.spec.classes > 1 else "",
            }
        )
    table = pd.DataFrame(rows)
    table["best_bic"] = np.where(table["bic"] == table["bic"].min(), "*", "")
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
        },
    )
