"""The independent units' scores and the observed information of an ML fit, recomputed.

Tests that look at the shape of the log-likelihood around a solution, rather than
only its height (the Vuong-Lo-Mendell-Rubin test of
:mod:`bayesmix.analysis.lmr`), need each independent unit's score and the observed
information at the estimates. A fit keeps neither; they are recomputed here on
the optimiser's scale of the fit (:mod:`bayesmix.data.standardise`), from the
same likelihood the fit maximised.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bayesmix.data.standardise import standardise
from bayesmix.ml.algorithm import choose_algorithm
from bayesmix.ml.fit import optimiser_bounds
from bayesmix.ml.inference import cluster_scores
from bayesmix.ml.optimise import _Run, at_bound
from bayesmix.ml.starts import internal_theta
from bayesmix.results.ml import MLResult


@dataclass(frozen=True)
class UnitScores:
    """Scores and information of a fit over its free parameters.

    Attributes
    ----------
    scores : ndarray, shape (G, q)
        ``d log L_g / d theta`` of each independent unit g (a school in
        two-level models, a cluster of a single-level model that names one,
        else an observation), for the q parameters not held at a bound.
    information : ndarray, shape (q, q)
        The observed information (negative Hessian of the log-likelihood)
        over the same parameters.
    """

    scores: np.ndarray
    information: np.ndarray

    @property
    def units(self) -> int:
        """G, the number of independent units."""
        return int(self.scores.shape[0])


def unit_scores(result: MLResult, backend: str | None = None) -> UnitScores:
    """Each unit's score and the observed information of an ML fit at its estimates.

    Parameters
    ----------
    result : MLResult
        The fit.
    backend : {"numpy", "jax", "numba"}, optional
        Evaluator of the log-likelihood, as in :func:`bayesmix.fit_ml`.

    Returns
    -------
    UnitScores
        On the optimiser's scale of the fit; parameters held at a bound
        (variances at 0) are left out, as the fit's standard errors treat
        them as fixed.

    Notes
    -----
    Two-level mixtures integrate their school residuals by adaptive
    quadrature, whose nodes are set at the estimates by the fit's own Newton
    polish; the polish moves the estimates by no more than its tolerance,
    and the scores and information are those at the polished point.
    """
    internal, st = standardise(result.design)
    algorithm = choose_algorithm(internal, backend, result.quadrature_points)
    bounds = optimiser_bounds(internal)
    theta = internal_theta(st, dict(zip(result.names, result.estimates, strict=True)))
    start = _Run(theta, float(-algorithm.fun(theta)[0] * internal.n_obs), True, 0, "")
    best, info = algorithm.polish(start, internal.n_obs, bounds, True)
    if info is None:
        raise AssertionError("the polish returns the information when asked for it")
    free = ~at_bound(best.theta, bounds)
    scores = cluster_scores(algorithm.cluster_logliks, best.theta)
    return UnitScores(scores=scores[:, free], information=info[np.ix_(free, free)])
