"""Inference at the ML solution: the observed information and standard errors.

Standard errors come from the inverse observed information (central
differences of the analytic gradient) mapped to the natural scale by the
delta method. In one-class mixed models the fixed-effect/variance cross
block of the information is set to its expectation, zero, as lme4 and SAS
PROC MIXED do.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from bayesmix.data.design import Design
from bayesmix.model.params import Layout, Params


def _jacobian(
    f: Callable[[np.ndarray], np.ndarray], theta: np.ndarray, rel_step: float, central: bool = True
) -> np.ndarray:
    """Jacobian of a vector function by central or forward differences, column by column."""
    base = None if central else np.asarray(f(theta))
    columns = []
    for i in range(theta.size):
        h = rel_step * max(1.0, abs(theta[i]))
        up = theta.copy()
        up[i] += h
        if base is None:
            down = theta.copy()
            down[i] -= h
            columns.append((np.asarray(f(up)) - np.asarray(f(down))) / (2 * h))
        else:
            columns.append((np.asarray(f(up)) - base) / h)
    return np.column_stack(columns)


def observed_information(
    fun: Callable[[np.ndarray], tuple[float, np.ndarray]],
    theta: np.ndarray,
    n: int,
    central: bool = True,
) -> np.ndarray:
    """Observed information (negative Hessian of the log-likelihood) at ``theta``.

    Differences of the analytic gradient, symmetrised: central (2p
    evaluations, for standard errors) or forward (p + 1, for Newton steps,
    which need a direction rather than the last digits).
    """
    info = _jacobian(lambda t: fun(t)[1] * n, theta, 1e-5 if central else 1e-7, central)
    return 0.5 * (info + info.T)


def natural_jacobian(lay: Layout, theta: np.ndarray) -> np.ndarray:
    """d natural / d theta by central differences (exact enough for the delta method)."""
    return _jacobian(lay.to_natural, theta, 1e-6)


def expected_block_diagonal(info: np.ndarray, n_fixed: int) -> np.ndarray:
    """Zero the fixed-effect x variance-parameter block of the information.

    In a Gaussian mixed model that block has expectation zero, and the
    fixed-effect block equals ``X' V^-1 X`` exactly, so this gives the
    standard errors of lme4, nlme and SAS PROC MIXED: fixed effects from
    ``(X' V^-1 X)^-1``, variance parameters from their own observed block.
    """
    out = info.copy()
    out[:n_fixed, n_fixed:] = 0.0
    out[n_fixed:, :n_fixed] = 0.0
    return out


def standard_errors(
    info: np.ndarray, jac: np.ndarray, free: np.ndarray
) -> tuple[np.ndarray, np.ndarray, bool]:
    """Covariance of the natural parameters by the delta method.

    Parameters held at a bound are treated as fixed (their rows and
    columns are zero); a singular information matrix gives NaN SEs.
    """
    inverse, singular = _free_inverse(info, free)
    cov, se = _natural_covariance(_embed(inverse, free), jac, singular)
    return cov, se, singular


def _free_inverse(info: np.ndarray, free: np.ndarray) -> tuple[np.ndarray, bool]:
    """Inverse of the information's block of the free parameters (the pseudo-inverse when
    it is singular), and whether it is."""
    sub = info[np.ix_(free, free)]
    eigvals = np.linalg.eigvalsh(sub) if sub.size else np.array([1.0])
    singular = bool(eigvals.min() <= 1e-8 * max(eigvals.max(), 1.0))
    return (np.linalg.pinv(sub) if singular else np.linalg.inv(sub)), singular


def _embed(block: np.ndarray, free: np.ndarray) -> np.ndarray:
    """A covariance of the free parameters in theta, zero for those held at a bound."""
    out = np.zeros((free.size, free.size))
    out[np.ix_(free, free)] = block
    return out


def _natural_covariance(
    cov_theta: np.ndarray, jac: np.ndarray, singular: bool
) -> tuple[np.ndarray, np.ndarray]:
    """The delta method's covariance on the natural scale and its SEs (NaN when the
    information is singular)."""
    cov = jac @ cov_theta @ jac.T
    se = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    if singular:
        se = np.full_like(se, np.nan)
    return cov, se


def cluster_scores(
    cluster_loglik: Callable[[np.ndarray], np.ndarray], theta: np.ndarray
) -> np.ndarray:
    """Each cluster's score, ``d log L_g / d theta`` (G, p), by central differences of the
    clusters' log-likelihoods."""
    return _jacobian(cluster_loglik, theta, 1e-5)


def robust_covariance(
    info: np.ndarray, scores: np.ndarray, jac: np.ndarray, free: np.ndarray, adjust: bool
) -> tuple[np.ndarray, np.ndarray, bool, float]:
    """Sandwich covariance of the natural parameters, and the MLR scaling factor.

    ``A^-1 B A^-1`` in theta with ``A`` the information and ``B = sum_g s_g s_g'``
    the outer products of the clusters' scores, times ``G / (G - 1)`` with
    ``adjust`` (Mplus's finite-cluster factor; R's ``sandwich::vcovCL(cadjust =
    TRUE)``), mapped to the natural scale by the delta method. Parameters held at
    a bound are fixed, as in :func:`standard_errors`. The scaling correction
    factor is ``c = tr(A^-1 B) / p`` over the ``p`` free parameters (Mplus's
    "scaling correction factor for MLR"), which the scaled difference test of
    :func:`bayesmix.lrt` uses.
    """
    bread, singular = _free_inverse(info, free)
    s = scores[:, free]
    g = s.shape[0]
    meat = s.T @ s * (g / (g - 1) if adjust and g > 1 else 1.0)
    cov, se = _natural_covariance(_embed(bread @ meat @ bread, free), jac, singular)
    scaling = float(np.trace(bread @ meat) / max(int(free.sum()), 1))
    return cov, se, singular, scaling


def posterior_args(design: Design, params: Params) -> tuple[np.ndarray, ...]:
    """Arguments of :func:`~bayesmix.density.compiled.pointwise` without school residuals."""
    n = design.n_obs
    return (
        np.asarray(params.beta, dtype=float),
        np.asarray(params.lsig, dtype=float),
        np.asarray(params.gamma, dtype=float),
        np.zeros(n),
        np.zeros((n, design.spec.classes - 1)),
        design.y,
        design.F,
        design.Z,
        design.V,
    )
