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

import numpy as np
import pytensor.tensor as pt

from bayesmix.density.primitives import (
    log_softmax_ref,
    log_softmax_ref_binary,
    normal_logpdf,
    school_gaussian_logpdf,
)
from bayesmix.model.params import Layout, Params


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
        return log_softmax_ref_binary(eta, pt, axis=1)
    return log_softmax_ref(eta, pt, axis=1)


def reference_log_probs(eta: np.ndarray) -> np.ndarray:
    """numpy :func:`membership_logprob`: log probabilities of logits ``eta`` (..., C-1)
    against a last, reference class with logit 0, shape (..., C)."""
    return log_softmax_ref(np.asarray(eta, dtype=float), np)


def class_log_joint(
    y: pt.TensorLike, mu: pt.TensorLike, sigma2: pt.TensorLike, logw: pt.TensorLike
) -> pt.TensorVariable:
    """``log pi[i, c] + log N(y_i | mu[i, c], sigma2[i, c])``, shape (n, K)."""
    y = pt.as_tensor_variable(y)
    return logw + normal_logpdf(y[..., None] - mu, pt.log(sigma2), pt)


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

    The Gaussian marginal of
    :func:`~bayesmix.density.primitives.school_gaussian_logpdf` with
    u_j ~ N(0, L L'); the factor L may be singular (variances at 0).
    """
    y = pt.as_tensor_variable(y)
    R = pt.as_tensor_variable(R)
    resid = y - pt.dot(F, params.beta[0])
    log_var = pt.dot(V, params.lsig[0])
    return school_gaussian_logpdf(resid, log_var, R, params.chol, bounds, pt, r)


def total_loglik(
    lay: Layout, params: Params, y, F, R, Z, V, bounds, weight=None
) -> pt.TensorVariable:
    """The log-likelihood of the models without quadrature; ``weight`` (n,), the rows'
    sampling weights of a model without school residuals, multiplies each row's term."""
    spec = lay.spec
    if spec.random:
        return pt.sum(gaussian_multilevel_loglik(y, F, R, V, bounds, params, lay.n_random))
    per_row = pt.logsumexp(model_log_joint(y, F, Z, V, params), axis=1)
    return pt.sum(per_row if weight is None else weight * per_row)
