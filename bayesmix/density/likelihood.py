"""The likelihood both estimators use, written as pytensor graphs.

Given the school residuals u_j, observation i of school j in class c has

    log p(y_ij, C_ij = c | u_j) = log pi_ijc + log N(y_ij | F_ij' beta_c + R_ij' u_j, sigma2_ijc)

with pi from the membership logit (eq 2) and log sigma2_ijc = V_ij' lsig_c
(eqs 1-3, 10-18). :func:`class_log_joint` is this conditional density; the
PyMC model uses it as its observed density (u sampled), and:

* single-level mixtures (no u) sum it over classes exactly
  (:func:`mixture_logp`);
* the conventional two-level model (K = 1) integrates u out in closed form
  per cluster (:func:`gaussian_multilevel_loglik`), the exact Gaussian
  marginal likelihood that lme4 maximises;
* two-level mixtures integrate u by Gauss-Hermite quadrature
  (:mod:`bayesmix.density.hermite`).

Compiled numpy-facing versions are in :mod:`bayesmix.density.compiled`.
"""

from __future__ import annotations

import math

import numpy as np
import pytensor.tensor as pt

from bayesmix.model.params import Layout, Params

_LOG_2PI = math.log(2.0 * math.pi)


def linear_predictor(F: pt.TensorLike, beta: pt.TensorLike) -> pt.TensorVariable:
    """Class-specific fixed part of the mean ``F[i] @ beta[c]``, shape (n, K)."""
    return pt.dot(F, pt.transpose(beta))


def residual_variance(V: pt.TensorLike, lsig: pt.TensorLike) -> pt.TensorVariable:
    """Residual variances ``exp(V[i] @ lsig[c])``, shape (n, K)."""
    return pt.exp(pt.dot(V, pt.transpose(lsig)))


def membership_logprob(
    Z: pt.TensorLike, gamma: pt.TensorLike, offset: pt.TensorLike | None = None
) -> pt.TensorVariable:
    """Log class probabilities ``log pi[i, c]`` (eqs 2, 19), shape (n, K).

    ``gamma`` has K-1 rows; the last class is the reference with logit 0.
    ``offset`` (n, K-1) adds the school random intercepts of the logits.
    """
    Z = pt.as_tensor_variable(Z)
    eta = pt.dot(Z, pt.transpose(gamma))
    if offset is not None:
        eta = eta + offset
    return log_class_probs(eta)


def log_class_probs(eta: pt.TensorLike) -> pt.TensorVariable:
    """Log class probabilities (n, K) of logits ``eta`` (n, K-1) against a last,
    reference class with logit 0."""
    eta = pt.as_tensor_variable(eta)
    if eta.type.shape[-1] == 1:
        # two classes: log sigmoid(eta) = eta - softplus(eta), log sigmoid(-eta) =
        # -softplus(eta), one exponential and one logarithm per row
        spread = pt.softplus(eta)
        return pt.concatenate([eta - spread, -spread], axis=1)
    # zeros shaped from eta (not from Z.shape) keep shapes static for JAX
    full = pt.concatenate([eta, pt.zeros_like(pt.sum(eta, axis=1, keepdims=True))], axis=1)
    return full - pt.logsumexp(full, axis=1, keepdims=True)


def reference_log_probs(eta: np.ndarray) -> np.ndarray:
    """numpy :func:`membership_logprob`: log probabilities of logits ``eta`` (..., C-1)
    against a last, reference class with logit 0, shape (..., C)."""
    from scipy.special import log_softmax

    return log_softmax(np.concatenate([eta, np.zeros((*eta.shape[:-1], 1))], axis=-1), axis=-1)


def class_log_joint(
    y: pt.TensorLike, mu: pt.TensorLike, sigma2: pt.TensorLike, logw: pt.TensorLike
) -> pt.TensorVariable:
    """``log pi[i, c] + log N(y_i | mu[i, c], sigma2[i, c])``, shape (n, K)."""
    y = pt.as_tensor_variable(y)
    resid = y[..., None] - mu
    return logw - 0.5 * (_LOG_2PI + pt.log(sigma2) + resid**2 / sigma2)


def mixture_logp(
    y: pt.TensorLike, mu: pt.TensorLike, sigma2: pt.TensorLike, logw: pt.TensorLike
) -> pt.TensorVariable:
    """Per-observation log-likelihood with classes marginalised, shape (n,)."""
    return pt.logsumexp(class_log_joint(y, mu, sigma2, logw), axis=-1)


def model_log_joint(
    y: pt.TensorLike,
    F: pt.TensorLike,
    Z: pt.TensorLike,
    V: pt.TensorLike,
    params: Params,
    offset: pt.TensorLike = 0.0,
    member_offset: pt.TensorLike | None = None,
) -> pt.TensorVariable:
    """Class log joint densities (n, K) given the school residuals.

    ``offset = R u`` shifts the outcome mean, ``member_offset`` (n, K-1) the
    membership logits.
    """
    mu = linear_predictor(F, params.beta) + pt.as_tensor_variable(offset)[..., None]
    logw = membership_logprob(Z, params.gamma, member_offset)
    return class_log_joint(y, mu, residual_variance(V, params.lsig), logw)


def segment_sum(values: pt.TensorLike, bounds: pt.TensorLike) -> pt.TensorVariable:
    """Sums of ``values`` (rows) over contiguous segments ``bounds[j]:bounds[j + 1]``."""
    values = pt.as_tensor_variable(values)
    zero = pt.zeros_like(values[:1])
    cum = pt.concatenate([zero, pt.cumsum(values, axis=0)], axis=0)
    return cum[bounds[1:]] - cum[bounds[:-1]]


def _batched_cholesky_solve(
    M: pt.TensorVariable, s: pt.TensorVariable, r: int
) -> tuple[pt.TensorVariable, pt.TensorVariable]:
    """Per-cluster Cholesky of small r x r matrices, unrolled over r.

    Returns ``log|M_j|`` and ``|chol(M_j)^-1 s_j|^2`` as (J,) tensors; unrolling keeps every
    operation elementwise over clusters, which is far faster than batched
    linear algebra for the r <= 4 of these models.
    """
    lower: list[list[pt.TensorVariable]] = [[None] * r for _ in range(r)]  # type: ignore[list-item]
    for i in range(r):
        for j in range(i + 1):
            acc = M[:, i, j]
            for k in range(j):
                acc = acc - lower[i][k] * lower[j][k]
            lower[i][j] = pt.sqrt(acc) if i == j else acc / lower[j][j]
    xs: list[pt.TensorVariable] = []
    for i in range(r):
        acc = s[:, i]
        for k in range(i):
            acc = acc - lower[i][k] * xs[k]
        xs.append(acc / lower[i][i])
    logdet = 2.0 * sum(pt.log(lower[i][i]) for i in range(r))
    quad = sum(x**2 for x in xs)
    return logdet, quad


def gaussian_multilevel_loglik(
    y: pt.TensorLike,
    F: pt.TensorLike,
    R: pt.TensorLike,
    V: pt.TensorLike,
    bounds: pt.TensorLike,
    params: Params,
    r: int,
) -> pt.TensorVariable:
    """Exact marginal log-likelihood of each cluster, one-class model, shape (J,).

    With u_j ~ N(0, L L') and diagonal residual covariance D_j,
    ``V_j = D_j + R_j L L' R_j'`` and, by the matrix determinant lemma and
    Woodbury's identity with ``M_j = I + L' R_j' D_j^-1 R_j L``,
    ``log|V_j| = log|D_j| + log|M_j|`` and
    ``e' V_j^-1 e = e' D_j^-1 e - |chol(M_j)^-1 L' R_j' D_j^-1 e|^2``.
    The factor L may be singular (variances at 0).
    """
    y = pt.as_tensor_variable(y)
    R = pt.as_tensor_variable(R)
    e = y - pt.dot(F, params.beta[0])
    log_s2 = pt.dot(V, params.lsig[0])
    w = pt.exp(-log_s2)
    n_j = segment_sum(pt.ones_like(y), bounds)
    c = segment_sum(w * e**2, bounds)
    log_d = segment_sum(log_s2, bounds)
    if r == 0:
        return -0.5 * (n_j * _LOG_2PI + log_d + c)
    L = params.chol
    outer = (R[:, :, None] * R[:, None, :]).reshape((R.shape[0], r * r))
    A = segment_sum(outer * w[:, None], bounds).reshape((-1, r, r))
    b = segment_sum(R * (w * e)[:, None], bounds)
    AL = pt.tensordot(A, L, axes=[[2], [0]])
    M = pt.tensordot(AL, L, axes=[[1], [0]]).dimshuffle(0, 2, 1) + pt.eye(r)[None]
    s = pt.dot(b, L)
    logdet, quad = _batched_cholesky_solve(M, s, r)
    return -0.5 * (n_j * _LOG_2PI + log_d + logdet + c - quad)


def needs_quadrature(lay: Layout) -> bool:
    """Whether the model needs the quadrature objective.

    Two-level mixtures with random effects integrate them numerically;
    level-2 classes mix whole schools, which that objective handles (with a
    single node when there are no random effects).
    """
    return (lay.n_random > 0 and lay.spec.classes > 1) or lay.spec.between_classes > 1


def total_loglik(lay: Layout, params: Params, y, F, R, Z, V, bounds) -> pt.TensorVariable:
    spec = lay.spec
    if spec.random:
        return pt.sum(gaussian_multilevel_loglik(y, F, R, V, bounds, params, lay.n_random))
    return pt.sum(pt.logsumexp(model_log_joint(y, F, Z, V, params), axis=1))
