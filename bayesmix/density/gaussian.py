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

Sampling weights (:mod:`bayesmix.model.weights`) enter as ``weights = (a, b)``.
Single-level models weight each observation's log density by ``a`` (there ``b``
is None). For two-level models, school j's term ``log int prod_i N(e_i | R_i u,
s_i)^(a_i) phi(u) du`` is, since ``N(e | m, s)^a = N(e | m, s / a) exp(c)`` with
``c = a log N(0 | 0, s) - log N(0 | 0, s / a)``, the unweighted marginal with
residual variances ``s_i / a_i`` plus ``sum_i c_i``; the school's term is then
multiplied by ``b_j``. The gradient of ``c_i`` in ``eta_i`` is ``(1 - a_i) / 2``.
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


Weights = tuple[np.ndarray, np.ndarray | None]
"""Row weights (n,) and, for two-level models, school weights (J,); see the module notes."""


def _weight_terms(eta: np.ndarray, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The log residual variances ``eta - log a`` of the weighted rows and the constants
    ``c`` that complete their densities (module notes)."""
    shifted = eta - np.log(a)
    zero = np.zeros_like(eta)
    return shifted, a * normal_logpdf(zero, eta, np) - normal_logpdf(zero, shifted, np)


def loglik_and_grad(
    lay: Layout,
    theta: np.ndarray,
    y: np.ndarray,
    F: np.ndarray,
    R: np.ndarray,
    V: np.ndarray,
    bounds: np.ndarray,
    weights: Weights | None = None,
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
    weights : tuple of ndarray, optional
        Sampling weights ``(a, b)`` (:meth:`bayesmix.data.design.Design.weight_args`).

    Returns
    -------
    loglik : float
    grad : ndarray
        Same length as ``theta``.
    """
    params, e, eta = _residuals(lay, theta, y, F, V)
    r = lay.n_random
    if r == 0:
        w = np.exp(-eta)
        we = w * e
        per_row = normal_logpdf(e, eta, np)
        d_eta = 0.5 * (we * e - 1.0)
        if weights is not None:
            a = weights[0]
            per_row, d_eta, we = a * per_row, a * d_eta, a * we
        ll = float(np.sum(per_row))
        return ll, _theta_gradient(lay, F.T @ we, np.zeros((0, 0)), V.T @ d_eta)
    return _two_level(lay, params, e, eta, R, V, F, bounds, weights)


def _two_level(
    lay: Layout,
    params: Params,
    e: np.ndarray,
    eta: np.ndarray,
    R: np.ndarray,
    V: np.ndarray,
    F: np.ndarray,
    bounds: np.ndarray,
    weights: Weights | None,
) -> tuple[float, np.ndarray]:
    """:func:`loglik_and_grad` of a two-level model (the module notes' formulas); with
    weights, the same formulas at the shifted log variances, each school's terms times
    its weight."""
    a, b, c, shifted = None, np.ones(len(bounds) - 1), None, eta
    if weights is not None:
        a = weights[0]
        b = b if weights[1] is None else weights[1]
        shifted, c = _weight_terms(eta, a)
    r = lay.n_random
    w = np.exp(-shifted)
    chol = np.asarray(params.chol)
    starts = np.asarray(bounds[:-1])
    sizes = np.diff(bounds)
    school = np.repeat(np.arange(sizes.size), sizes)
    A = np.add.reduceat(R[:, :, None] * R[:, None, :] * w[:, None, None], starts)
    rhs = np.add.reduceat(R * (w * e)[:, None], starts)
    M_inv = np.linalg.inv(np.eye(r) + chol.T @ A @ chol)
    g = np.einsum("jkl,jl->jk", M_inv, rhs @ chol) @ chol.T
    per_school = school_gaussian_logpdf(e, shifted, R, chol, bounds, np, r)
    if c is not None:
        per_school = per_school + segment_sum(c, bounds, np)
    ll = float(np.sum(b * per_school))
    H = chol @ M_inv @ chol.T
    row_b = b[school]
    adjusted = e - np.sum(R * g[school], axis=1)
    d_beta = F.T @ (row_b * w * adjusted)
    q = rhs - np.einsum("jkl,jl->jk", A, g)
    d_sigma = 0.5 * (
        np.einsum("j,jk,jl->kl", b, q, q)
        - np.einsum("j,jkl->kl", b, A)
        + np.einsum("j,jkl->kl", b, A @ H @ A)
    )
    rhr = np.einsum("ik,ikl,il->i", R, H[school], R)
    # the weights' constants add (1 - a) / 2 to each row's derivative
    d_eta = 0.5 * row_b * (w * adjusted**2 - 1.0 + w * rhr + (0.0 if a is None else 1.0 - a))
    return ll, _theta_gradient(lay, d_beta, 2.0 * d_sigma @ chol, V.T @ d_eta)


def cluster_loglik(
    lay: Layout,
    theta: np.ndarray,
    y: np.ndarray,
    F: np.ndarray,
    R: np.ndarray,
    V: np.ndarray,
    bounds: np.ndarray,
    weights: Weights | None = None,
) -> np.ndarray:
    """Each cluster's log-likelihood (each observation's for a model with no cluster column).

    Arguments as :func:`loglik_and_grad`; the clusters are the schools of a
    two-level model, or the groups of the cluster column of a single-level one.
    With ``weights``, each cluster's term of the weighted pseudo-log-likelihood.
    """
    params, e, eta = _residuals(lay, theta, y, F, V)
    r = lay.n_random
    if r:
        chol = np.asarray(params.chol)
        if weights is None:
            return school_gaussian_logpdf(e, eta, R, chol, bounds, np, r)
        a, b = weights
        shifted, c = _weight_terms(eta, a)
        per_school = school_gaussian_logpdf(e, shifted, R, chol, bounds, np, r)
        per_school = per_school + segment_sum(c, bounds, np)
        return per_school if b is None else b * per_school
    per_row = normal_logpdf(e, eta, np)
    if weights is not None:
        per_row = weights[0] * per_row
    return segment_sum(per_row, bounds, np) if lay.spec.cluster is not None else per_row


def objective(
    lay: Layout, args: tuple[np.ndarray, ...], weights: Weights | None = None
) -> Objective:
    """Negative mean log-likelihood and its gradient, as scipy minimises.

    ``args`` are :meth:`~bayesmix.data.design.Design.likelihood_args`,
    ``(y, F, R, Z, V, bounds)``; Z (membership) has no part in one class.
    ``weights`` are :meth:`~bayesmix.data.design.Design.weight_args`.
    """
    y, F, R, _, V, bounds = args
    n = y.shape[0]

    def fun(theta: np.ndarray) -> tuple[float, np.ndarray]:
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            ll, grad = loglik_and_grad(lay, theta, y, F, R, V, bounds, weights)
        if not np.isfinite(ll) or not np.all(np.isfinite(grad)):
            return np.inf, np.zeros_like(theta)
        return -ll / n, -grad / n

    return fun


def cluster_logliks(
    lay: Layout, args: tuple[np.ndarray, ...], weights: Weights | None = None
) -> Callable[[np.ndarray], np.ndarray]:
    """:func:`cluster_loglik` of ``theta`` on the data ``args``
    (:meth:`~bayesmix.data.design.Design.likelihood_args`), as :func:`objective` binds them."""
    y, F, R, _, V, bounds = args

    def logliks(theta: np.ndarray) -> np.ndarray:
        return cluster_loglik(lay, theta, y, F, R, V, bounds, weights)

    return logliks
