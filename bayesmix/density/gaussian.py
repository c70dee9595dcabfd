"""The one-class log-likelihood and its gradient in closed form, in numpy.

A model with one class and no level-2 classes has a Gaussian marginal
likelihood: for single-level models each observation is
``N(F_i' beta, exp(V_i' lsig))``; for the conventional two-level model
school j's residuals ``e_j = y_j - F_j beta`` are ``N(0, V_j)`` with
``V_j = D_j + R_j L L' R_j'`` and ``D_j = diag(exp(V lsig))``
(:func:`~bayesmix.density.likelihood.gaussian_multilevel_loglik`, the graph
NUTS and the compiled objectives use). With ``W = D^-1``,
``M_j = I + L' R_j' W R_j L``, ``t_j = M_j^-1 L' R_j' W e_j`` and
``g_j = L t_j`` (the school's posterior mean of u), Woodbury's identity
gives ``V_j^-1 e_j = W (e_j - R_j g_j)`` and
``R_j' V_j^-1 R_j = A_j - A_j H_j A_j`` with ``A_j = R_j' W R_j`` and
``H_j = L M_j^-1 L'``, from which the gradient is

* ``d/d beta = sum_j F_j' V_j^-1 e_j``;
* ``d/d Sigma = 1/2 sum_j (q_j q_j' - R_j' V_j^-1 R_j)`` with
  ``q_j = R_j' V_j^-1 e_j``, and ``d/d L = 2 (d/d Sigma) L`` for ``Sigma = L L'``;
* ``d/d eta_i = 1/2 (w_i (e_i - R_i g_j)^2 - 1 + w_i R_i H_j R_i')`` for the
  log residual variance ``eta = V lsig``, and ``d/d lsig = V' d/d eta``.

It needs neither a compiler nor a compile step, which is what a one-class ML
fit, the most common fit, waits for.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from bayesmix.density.primitives import normal_logpdf, school_gaussian_logpdf, segment_sum
from bayesmix.model.params import Layout, Params

Objective = Callable[[np.ndarray], tuple[float, np.ndarray]]


def supports(lay: Layout) -> bool:
    """Whether the model has the closed form here: one class and no level-2 classes."""
    return lay.spec.classes == 1 and lay.spec.between_classes == 1


def _theta_gradient(
    lay: Layout, d_beta: np.ndarray, d_chol: np.ndarray, d_lsig: np.ndarray
) -> np.ndarray:
    """The gradient in theta's order: fixed effects, Cholesky entries, log residual variances."""
    sl = lay._slices()
    out = np.zeros(lay.n_params)
    out[sl["fixed"]] = d_beta
    r = lay.n_random
    if r:
        if lay.spec.covariance == "diagonal":
            out[sl["cov"]] = np.diag(d_chol)
        else:
            out[sl["cov"]] = d_chol[np.tril_indices(r)]
    out[sl["resid"]] = d_lsig
    return out


def _residuals(
    lay: Layout, theta: np.ndarray, y: np.ndarray, F: np.ndarray, V: np.ndarray
) -> tuple[Params, np.ndarray, np.ndarray]:
    """The parameters of ``theta``, the residuals ``y - F beta`` and the log residual
    variances ``V lsig``."""
    params = lay.unpack(np.asarray(theta, dtype=float))
    return params, y - F @ np.asarray(params.beta[0]), V @ np.asarray(params.lsig[0])


def loglik_and_grad(
    lay: Layout,
    theta: np.ndarray,
    y: np.ndarray,
    F: np.ndarray,
    R: np.ndarray,
    V: np.ndarray,
    bounds: np.ndarray,
) -> tuple[float, np.ndarray]:
    """Log-likelihood of a one-class model and its gradient in theta.

    Parameters
    ----------
    lay : Layout
        Layout of a model :func:`supports` accepts.
    theta : ndarray
        Optimiser vector (fixed effects, Cholesky entries of the random-effect
        covariance, log residual variance coefficients).
    y, F, R, V, bounds : ndarray
        As :meth:`bayesmix.data.design.Design.likelihood_args` gives them;
        rows sorted by cluster, ``bounds`` the clusters' row offsets.

    Returns
    -------
    loglik : float
    grad : ndarray
        Same length as ``theta``.
    """
    params, e, eta = _residuals(lay, theta, y, F, V)
    w = np.exp(-eta)
    r = lay.n_random
    if r == 0:
        we = w * e
        ll = float(np.sum(normal_logpdf(e, eta, np)))
        d_eta = 0.5 * (we * e - 1.0)
        return ll, _theta_gradient(lay, F.T @ we, np.zeros((0, 0)), V.T @ d_eta)
    chol = np.asarray(params.chol)
    starts = np.asarray(bounds[:-1])
    sizes = np.diff(bounds)
    school = np.repeat(np.arange(sizes.size), sizes)
    A = np.add.reduceat(R[:, :, None] * R[:, None, :] * w[:, None, None], starts)
    b = np.add.reduceat(R * (w * e)[:, None], starts)
    M = np.eye(r) + chol.T @ A @ chol
    M_inv = np.linalg.inv(M)
    s = b @ chol
    t = np.einsum("jkl,jl->jk", M_inv, s)
    ll = float(np.sum(school_gaussian_logpdf(e, eta, R, chol, bounds, np, r)))
    g = t @ chol.T
    H = chol @ M_inv @ chol.T
    adjusted = e - np.sum(R * g[school], axis=1)
    d_beta = F.T @ (w * adjusted)
    q = b - np.einsum("jkl,jl->jk", A, g)
    d_sigma = 0.5 * (np.einsum("jk,jl->kl", q, q) - A.sum(axis=0) + np.sum(A @ H @ A, axis=0))
    rhr = np.einsum("ik,ikl,il->i", R, H[school], R)
    d_eta = 0.5 * (w * adjusted**2 - 1.0 + w * rhr)
    return ll, _theta_gradient(lay, d_beta, 2.0 * d_sigma @ chol, V.T @ d_eta)


def cluster_loglik(
    lay: Layout,
    theta: np.ndarray,
    y: np.ndarray,
    F: np.ndarray,
    R: np.ndarray,
    V: np.ndarray,
    bounds: np.ndarray,
) -> np.ndarray:
    """Each cluster's log-likelihood (each observation's for a model with no cluster column).

    Arguments as :func:`loglik_and_grad`; the clusters are the schools of a
    two-level model, or the groups of the cluster column of a single-level one.
    """
    params, e, eta = _residuals(lay, theta, y, F, V)
    r = lay.n_random
    if r:
        return school_gaussian_logpdf(e, eta, R, np.asarray(params.chol), bounds, np, r)
    per_row = normal_logpdf(e, eta, np)
    return segment_sum(per_row, bounds, np) if lay.spec.cluster is not None else per_row


def objective(lay: Layout, args: tuple[np.ndarray, ...]) -> Objective:
    """Negative mean log-likelihood and its gradient, as scipy minimises.

    ``args`` are :meth:`~bayesmix.data.design.Design.likelihood_args`,
    ``(y, F, R, Z, V, bounds)``; Z (membership) has no part in one class.
    """
    y, F, R, _, V, bounds = args
    n = y.shape[0]

    def fun(theta: np.ndarray) -> tuple[float, np.ndarray]:
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            ll, grad = loglik_and_grad(lay, theta, y, F, R, V, bounds)
        if not np.isfinite(ll) or not np.all(np.isfinite(grad)):
            return np.inf, np.zeros_like(theta)
        return -ll / n, -grad / n

    return fun


def cluster_logliks(
    lay: Layout, args: tuple[np.ndarray, ...]
) -> Callable[[np.ndarray], np.ndarray]:
    """:func:`cluster_loglik` of ``theta`` on the data ``args``
    (:meth:`~bayesmix.data.design.Design.likelihood_args`), as :func:`objective` binds them."""
    y, F, R, _, V, bounds = args

    def logliks(theta: np.ndarray) -> np.ndarray:
        return cluster_loglik(lay, theta, y, F, R, V, bounds)

    return logliks
