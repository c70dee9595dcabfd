"""Tests between fits: likelihood-ratio tests of nested models."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

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
