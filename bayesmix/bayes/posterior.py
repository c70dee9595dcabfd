"""Posterior draws summarised into a :class:`~bayesmix.results.bayes.BayesResult`.

The summary table (mean, SD, 95% interval, R-hat, bulk and tail ESS), the
log-likelihood at the posterior means and the class probabilities averaged
over chains are computed here, by the estimator, so that the result only
holds them. A saved fit is loaded through the same function, from its draws.
"""

from __future__ import annotations

from typing import Any

import arviz_stats as azs
import numpy as np
import pandas as pd

from bayesmix.data.design import Design
from bayesmix.density.compiled import loglik_and_grad
from bayesmix.model.constraints import with_fixed
from bayesmix.model.params import needs_quadrature
from bayesmix.model.spec import Spec
from bayesmix.results.bayes import BayesResult, LabelCheck


def posterior_table(named: dict[str, np.ndarray]) -> pd.DataFrame:
    """Mean, SD, 95% equal-tailed interval, R-hat and ESS of each parameter.

    Parameters
    ----------
    named : dict of str to ndarray
        Draws of each parameter, shape (chains, draws).

    Returns
    -------
    pandas.DataFrame
        Indexed by parameter name.
    """
    names = tuple(named)
    stacked = np.stack([named[n] for n in names], axis=-1)
    flat = stacked.reshape(-1, len(names))
    return pd.DataFrame(
        {
            "mean": flat.mean(axis=0),
            "sd": flat.std(axis=0, ddof=1),
            "q2.5": np.quantile(flat, 0.025, axis=0),
            "q97.5": np.quantile(flat, 0.975, axis=0),
            "r_hat": np.atleast_1d(azs.rhat(stacked)),
            "ess_bulk": np.atleast_1d(azs.ess(stacked)),
            "ess_tail": np.atleast_1d(azs.ess(stacked, method="tail", prob=(0.05, 0.95))),
        },
        index=pd.Index(names, name="parameter"),
    )


def loglik_at_means(design: Design, means: np.ndarray) -> float:
    """The log-likelihood at the posterior means of the natural parameters."""
    lay = design.layout
    theta = lay.to_theta(means)
    if needs_quadrature(lay):
        from bayesmix.density.quadrature import adapted_quadrature

        return float(adapted_quadrature(design, theta, iterations=3).evaluate(theta)[0])
    return float(loglik_and_grad(lay)(theta, *design.likelihood_args())[0])


def bayes_result(
    *,
    spec: Spec,
    design: Design,
    idata: Any,
    named: dict[str, np.ndarray],
    chain_post: np.ndarray,
    divergences: int,
    labels: LabelCheck,
    chain_between: np.ndarray | None = None,
    between_labels: LabelCheck | None = None,
    loo: Any,
    priors: dict[str, Any],
    settings: dict[str, Any],
    timings: dict[str, float],
    loglik: float | None = None,
) -> BayesResult:
    """Summarise posterior draws into a result.

    ``loglik`` (the log-likelihood at the posterior means) is computed
    from the design unless given, as it is by a loaded result. Class
    probabilities are averaged over the chains (``chain_post``, shape
    (chains, n, K)).
    """
    table = posterior_table(named)
    if loglik is None:
        means = with_fixed(
            table["mean"].to_numpy(), table.index, design.layout.names, spec.constraints
        )
        loglik = loglik_at_means(design, means)
    return BayesResult(
        spec=spec,
        design=design,
        idata=idata,
        names=tuple(named),
        table=table,
        draws=named,
        class_probabilities=chain_post.mean(axis=0),
        loglik=loglik,
        loo=loo,
        divergences=divergences,
        labels=labels,
        priors=priors,
        settings=settings,
        timings=timings,
        between_probabilities=None if chain_between is None else chain_between.mean(axis=0),
        between_labels=between_labels,
    )
