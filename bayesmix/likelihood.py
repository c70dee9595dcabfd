"""The one likelihood both estimators use, written as pytensor graphs.

For observation i with outcome design row x_i and membership row z_i,

    log p(y_i) = logsumexp_c [ log pi_ic + log N(y_i | x_i' beta_c, sigma2_c) ],
    pi_ic = softmax_c(z_i' gamma_c),  gamma_K = 0                (paper eqs 1-2)

The same functions build the PyMC model's observed log density
(:mod:`bayesmix.bayes`) and the maximum-likelihood objective
(:mod:`bayesmix.ml`); compiled numpy-facing versions are cached per model
structure so that a second fit of the same spec does not recompile.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from functools import lru_cache

import numpy as np
import pytensor
import pytensor.tensor as pt

from bayesmix.params import Params, unpack
from bayesmix.spec import Spec

_LOG_2PI = math.log(2.0 * math.pi)


def linear_predictor(X: pt.TensorLike, beta: pt.TensorLike) -> pt.TensorVariable:
    """Class-specific means ``mu[i, c] = x_i' beta_c``, shape (n, K)."""
    return pt.dot(X, pt.transpose(beta))


def membership_logprob(Z: pt.TensorLike, gamma: pt.TensorLike) -> pt.TensorVariable:
    """Log class probabilities ``log pi[i, c]`` (eq 2), shape (n, K).

    ``gamma`` has K-1 rows; the last class is the reference with logit 0.
    """
    Z = pt.as_tensor_variable(Z)
    eta = pt.dot(Z, pt.transpose(gamma))
    full = pt.concatenate([eta, pt.zeros((Z.shape[0], 1), dtype=eta.dtype)], axis=1)
    return full - pt.logsumexp(full, axis=1, keepdims=True)


def class_log_joint(
    y: pt.TensorLike, mu: pt.TensorLike, sigma2: pt.TensorLike, logw: pt.TensorLike
) -> pt.TensorVariable:
    """``log pi[i, c] + log N(y_i | mu[i, c], sigma2[c])``, shape (n, K)."""
    y = pt.as_tensor_variable(y)
    resid = y[..., None] - mu
    return logw - 0.5 * (_LOG_2PI + pt.log(sigma2) + resid**2 / sigma2)


def mixture_logp(
    y: pt.TensorLike, mu: pt.TensorLike, sigma2: pt.TensorLike, logw: pt.TensorLike
) -> pt.TensorVariable:
    """Per-observation log-likelihood with classes marginalised, shape (n,)."""
    return pt.logsumexp(class_log_joint(y, mu, sigma2, logw), axis=-1)


def model_log_joint(
    y: pt.TensorLike, X: pt.TensorLike, Z: pt.TensorLike, params: Params
) -> pt.TensorVariable:
    """Class log joint densities (n, K) for structured parameters."""
    mu = linear_predictor(X, params.beta)
    logw = membership_logprob(Z, params.gamma)
    return class_log_joint(y, mu, params.sigma2, logw)


def _structure(spec: Spec) -> Spec:
    """The spec without labels, so that cache keys depend on structure only."""
    return dataclasses.replace(spec, name="", description="")


@lru_cache(maxsize=64)
def _objective(spec: Spec) -> Callable[..., list[np.ndarray]]:
    theta = pt.dvector("theta")
    y, X, Z = pt.dvector("y"), pt.dmatrix("X"), pt.dmatrix("Z")
    params = unpack(theta, spec, pt)
    loglik = pt.sum(pt.logsumexp(model_log_joint(y, X, Z, params), axis=1))
    grad = pytensor.grad(loglik, theta)
    return pytensor.function([theta, y, X, Z], [loglik, grad], trust_input=True)


def loglik_and_grad(spec: Spec) -> Callable[..., list[np.ndarray]]:
    """Compiled ``f(theta, y, X, Z) -> [loglik, gradient]``.

    ``theta`` is the unconstrained vector (log variances) in
    :func:`bayesmix.params.param_names` order. Inputs must be float64
    contiguous arrays.
    """
    return _objective(_structure(spec))


@lru_cache(maxsize=64)
def _pointwise(spec: Spec) -> Callable[..., list[np.ndarray]]:
    beta, gamma = pt.dmatrix("beta"), pt.dmatrix("gamma")
    sigma2 = pt.dvector("sigma2")
    y, X, Z = pt.dvector("y"), pt.dmatrix("X"), pt.dmatrix("Z")
    joint = model_log_joint(y, X, Z, Params(beta=beta, sigma2=sigma2, gamma=gamma))
    loglik = pt.logsumexp(joint, axis=1)
    posterior = pt.exp(joint - loglik[:, None])
    return pytensor.function([beta, sigma2, gamma, y, X, Z], [loglik, posterior])


def pointwise(spec: Spec) -> Callable[..., list[np.ndarray]]:
    """Compiled ``f(beta, sigma2, gamma, y, X, Z) -> [loglik_i, P(C_i = c | y_i)]``."""
    return _pointwise(_structure(spec))
