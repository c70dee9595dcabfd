"""The likelihood both estimators use, written as pytensor graphs.

Given the school residuals u_j, observation i of school j in class c has

    log p(y_ij, C_ij = c | u_j) = log pi_ijc + log N(y_ij | F_ij' beta_c + R_ij' u_j, sigma2_ijc)

with pi from the membership logit (eq 2) and log sigma2_ijc = V_ij' lsig_c
(eqs 1-3, 10-18). :func:`class_log_joint` is this conditional density; the
PyMC model uses it as its observed density (u sampled), and:

* single-level mixtures (no u) sum it over classes exactly
  (:func:`mixture_loglik`);
* the conventional two-level model (K = 1) integrates u out in closed form
  per cluster (:func:`gaussian_multilevel_loglik`), the exact Gaussian
  marginal likelihood that lme4 maximises.

Compiled numpy-facing versions are cached per model structure so that a
second fit of the same spec does not recompile.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytensor
import pytensor.tensor as pt
from pytensor.gradient import zero_grad

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


def gauss_hermite(points: int, dims: int) -> tuple[np.ndarray, np.ndarray]:
    """Tensor-product Gauss-Hermite rule for the standard normal in ``dims`` dimensions.

    Returns nodes (Q, dims) and ``log w_k - log phi(z_k)`` (Q,), so that
    ``int f(z) dz ~= sum_k exp(logw_k) f(z_k)`` for a density-like ``f``.
    """
    z, w = np.polynomial.hermite_e.hermegauss(points)
    w = w / math.sqrt(2.0 * math.pi)
    grids = np.meshgrid(*([z] * dims), indexing="ij")
    nodes = np.stack([g.ravel() for g in grids], axis=1) if dims else np.zeros((1, 0))
    wgrids = np.meshgrid(*([np.log(w)] * dims), indexing="ij")
    logw = sum(g.ravel() for g in wgrids) if dims else np.zeros(1)
    logw = logw + 0.5 * np.sum(nodes**2, axis=1) + 0.5 * dims * _LOG_2PI
    return nodes, np.asarray(logw, dtype=float)


def _outcome_grid(nodes: np.ndarray, r: int) -> tuple[np.ndarray, int]:
    """The distinct first ``r`` coordinates of a tensor-product rule, and the repeat count.

    :func:`gauss_hermite` varies the last coordinate fastest, so node ``k``
    has outer node ``k // inner``; the rule (Q, d) gives (Q / inner, r) and
    ``inner``. With ``r = d`` (or nodes that are not such a grid) every node
    is its own outer node.
    """
    Q, d = nodes.shape
    if r == 0 or r >= d:
        return nodes[:, :r], 1
    points = round(Q ** (1.0 / d))
    inner = points ** (d - r)
    outer = nodes[::inner, :r]
    if points**d != Q or not np.array_equal(np.repeat(outer, inner, axis=0), nodes[:, :r]):
        return nodes[:, :r], 1
    return outer, inner


def _shifted_exp(full: pt.TensorVariable, axis: int = 0) -> pt.TensorVariable:
    """``exp(full - max(full))`` over ``axis``, the shift a constant for the gradient."""
    return pt.exp(full - zero_grad(pt.max(full, axis=axis, keepdims=True)))


def _class_mixture(
    ew: pt.TensorVariable, logn: pt.TensorVariable, axis: int, inner: int = 1
) -> tuple[pt.TensorVariable, pt.TensorVariable]:
    """Class-marginal log density and class posteriors, classes along ``axis``.

    ``ew`` holds the exponentials of the membership logits (the reference
    class's 0 included), each shifted by a constant per student and node
    (see :func:`_shifted_exp`), ``logn`` the class log densities. Returns
    ``log sum_c ew_c exp(logn_c) - log sum_c ew_c`` and ``P(c | y)``. The
    shift that keeps the densities' sum finite is a constant for the
    gradient (the result does not depend on it).
    With ``inner > 1`` (classes on axis 0, nodes on axis 1) ``logn`` holds
    one node of every ``inner`` consecutive nodes of ``ew``: its
    exponentials are taken there and repeated.
    """
    top = zero_grad(pt.max(logn, axis=axis, keepdims=True))
    en = pt.exp(logn - top)
    if inner > 1:
        K, n = ew.shape[0], ew.shape[2]
        en = pt.reshape(pt.repeat(en[:, :, None, :], inner, axis=2), (K, -1, n))
        top = pt.reshape(pt.repeat(top[:, :, None, :], inner, axis=2), (1, -1, n))
    mixed = ew * en
    mixed_sum = pt.sum(mixed, axis=axis, keepdims=True)
    per_obs = pt.squeeze(top + pt.log(mixed_sum / pt.sum(ew, axis=axis, keepdims=True)), axis)
    return per_obs, mixed / mixed_sum


def quadrature_loglik(
    y: pt.TensorLike,
    F: pt.TensorLike,
    R: pt.TensorLike,
    Z: pt.TensorLike,
    V: pt.TensorLike,
    cluster: pt.TensorLike,
    params: Params,
    n_outcome_random: int,
    nodes: np.ndarray,
    logw: np.ndarray,
    centre: pt.TensorLike,
    scale: pt.TensorLike,
    W: pt.TensorLike | None = None,
    between: int = 1,
) -> tuple[pt.TensorVariable, ...]:
    """Marginal log-likelihood of each cluster by adaptive Gauss-Hermite quadrature.

    The school residuals are ``b_j = L v_j`` with ``v_j ~ N(0, I)``; the
    integral over v_j is taken on the nodes ``v_jk = centre_j + scale_j z_k``
    (``scale_j`` lower triangular), which the caller places at the
    posterior mean and Cholesky covariance of v_j (adaptive quadrature). A
    variance of 0 is a zero column of L and needs no special case.
    ``cluster`` (n,) holds each observation's cluster index in 0..J-1, J
    being the number of rows of ``centre``.

    With ``between = L > 1`` level-2 latent classes (model C, eqs 26-32)
    ``params.beta`` has L K rows (row ``d K + c``), the students' class
    mixtures are summed within each school for each d, and the school's
    density mixes over d with the weights ``softmax(W_j delta)`` (``W``
    (J, m2)), inside the integral over the random effects.

    Returns
    -------
    loglik : (J,) tensor
        ``log int p(y_j | b) p(b) db`` per cluster.
    mean, cov : (J, d) and (J, d, d) tensors
        Posterior mean and covariance of v_j under the quadrature, for the
        next adaptation step.
    post_class : (n, K) tensor
        P(C_ij = c | y_j), the random effects integrated out.
    post_between : (J, L) tensor
        P(D_j = d | y_j) (ones when L = 1).
    """
    # Arrays are laid out (class, node, observation): observations innermost
    # give long vectorisable loops, where classes innermost (K is 2-4) would
    # give loops too short to vectorise.
    if between > 1:
        return _between_quadrature(
            y, F, R, Z, V, cluster, params, n_outcome_random, nodes, logw, centre, scale, W,
            between,
        )  # fmt: skip
    y = pt.as_tensor_variable(y)
    r = n_outcome_random
    z = pt.as_tensor_variable(nodes)
    v = centre[:, None, :] + pt.sum(scale[:, None, :, :] * z[None, :, None, :], axis=-1)
    e0 = y[None, :] - pt.dot(params.beta, pt.transpose(F))
    outer, inner = _outcome_grid(nodes, r)
    if r:
        # With the outcome terms first, L and scale lower triangular, the outcome residuals
        # depend only on the first r node coordinates: the class densities are computed on
        # that coarser grid (e.g. 25 of NELS B3's 125 nodes) and broadcast over the rest.
        zo = pt.as_tensor_variable(outer)
        vo = centre[:, None, :r] + pt.sum(scale[:, None, :r, :r] * zo[None, :, None, :], axis=-1)
        bo = pt.dot(vo, pt.transpose(params.chol[:r, :r]))[cluster].dimshuffle(2, 1, 0)
        off = pt.sum(bo * pt.transpose(R)[:, None, :], axis=0)
        resid = e0[:, None, :] - off[None, :, :]
    else:
        resid = e0[:, None, :]
    logs2 = pt.dot(params.lsig, pt.transpose(V))
    logn = (-0.5 * (_LOG_2PI + logs2))[:, None, :] - 0.5 * pt.exp(-logs2)[:, None, :] * resid**2
    eta = pt.dot(params.gamma, pt.transpose(Z))[:, None, :]
    # an array of (., Q, n) whose zeros (not symbolic shapes) keep shapes static for JAX
    every_node = logn
    if nodes.shape[1] > r:
        # the membership residuals at every node, (d - r, Q, n)
        every_node = pt.dot(v, pt.transpose(params.chol[r:]))[cluster].dimshuffle(2, 1, 0)
        if params.load is not None:
            eta = eta + pt.tensordot(params.load, every_node, axes=[[1], [0]])
    eta = eta + pt.zeros_like(pt.sum(every_node[:1], axis=0, keepdims=True))
    full = pt.concatenate([eta, pt.zeros_like(pt.sum(eta, axis=0, keepdims=True))], axis=0)
    per_obs, cls = _class_mixture(_shifted_exp(full), logn, axis=0, inner=inner)
    log_phi = -0.5 * pt.sum(v**2, axis=-1) - 0.5 * nodes.shape[1] * _LOG_2PI
    log_det = pt.sum(pt.log(pt.diagonal(scale, axis1=1, axis2=2)), axis=1)
    # a scatter-add, not differences of a cumulative sum: XLA lowers cumsum to
    # a windowed reduction that is slow on CPU
    school = pt.inc_subtensor(pt.zeros_like(log_phi)[cluster], pt.transpose(per_obs))
    a = pt.as_tensor_variable(logw)[None, :] + log_phi + school
    total = pt.logsumexp(a, axis=1)
    weight = pt.exp(a - total[:, None])
    post_class = pt.transpose(pt.sum(pt.transpose(weight)[:, cluster][None, :, :] * cls, axis=1))
    mean = pt.sum(weight[:, :, None] * v, axis=1)
    dev = v - mean[:, None, :]
    cov = pt.sum(weight[:, :, None, None] * dev[:, :, :, None] * dev[:, :, None, :], axis=1)
    return total + log_det, mean, cov, post_class, pt.ones_like(total)[:, None]


def _between_quadrature(
    y, F, R, Z, V, cluster, params: Params, r: int, nodes, logw, centre, scale, W, L: int
) -> tuple[pt.TensorVariable, ...]:
    """:func:`quadrature_loglik` with L level-2 classes, one adapted rule per class.

    Given D_j = d the school residuals have a unimodal posterior, but mixed
    over d it can be multimodal, which one moment-matched rule integrates
    poorly; so ``p(y_j) = sum_d pi_jd int p(y_j | u, d) phi(u) du`` with
    nodes ``centre[j, d] + scale[j, d] z`` for each d (``centre`` (J, L,
    dim), ``scale`` (J, L, dim, dim)). Arrays are laid out (level-2 class,
    class, node, observation).
    """
    y = pt.as_tensor_variable(y)
    z = pt.as_tensor_variable(nodes)
    Q, dim = nodes.shape
    v = centre[:, :, None, :] + pt.sum(scale[:, :, None, :, :] * z[None, None, :, None, :], axis=-1)
    b = pt.dot(v.reshape((v.shape[0], L * Q, dim)), pt.transpose(params.chol))
    bq = b[cluster].dimshuffle(2, 1, 0)
    n = y.shape[0]
    K = params.lsig.shape[0]
    e0 = (y[None, :] - pt.dot(params.beta, pt.transpose(F))).reshape((L, K, 1, n))
    if r:
        off = pt.sum(bq[:r] * pt.transpose(R)[:, None, :], axis=0).reshape((L, 1, Q, n))
        resid = e0 - off
    else:
        resid = e0
    logs2 = pt.dot(params.lsig, pt.transpose(V))[None, :, None, :]
    logn = -0.5 * (_LOG_2PI + logs2) - 0.5 * pt.exp(-logs2) * resid**2
    eta = pt.dot(params.gamma, pt.transpose(Z))[None, :, None, :]
    if params.load is not None and dim > r:
        member = pt.tensordot(params.load, bq[r:], axes=[[1], [0]])
        eta = eta + member.reshape((member.shape[0], L, Q, n)).dimshuffle(1, 0, 2, 3)
    eta = eta + pt.zeros_like(pt.sum(logn, axis=1, keepdims=True))
    full = pt.concatenate([eta, pt.zeros_like(pt.sum(eta, axis=1, keepdims=True))], axis=1)
    per_obs, cls = _class_mixture(_shifted_exp(full, axis=1), logn, axis=1)
    log_phi = (-0.5 * pt.sum(v**2, axis=-1) - 0.5 * dim * _LOG_2PI).dimshuffle(0, 2, 1)
    log_det = pt.sum(pt.log(pt.diagonal(scale, axis1=2, axis2=3)), axis=2)
    school = pt.inc_subtensor(pt.zeros_like(log_phi)[cluster], per_obs.dimshuffle(2, 1, 0))
    eta_d = pt.dot(pt.as_tensor_variable(W), pt.transpose(params.delta))
    full_d = pt.concatenate([eta_d, pt.zeros_like(pt.sum(eta_d, axis=1, keepdims=True))], 1)
    log_pi_d = full_d - pt.logsumexp(full_d, axis=1, keepdims=True)
    a3 = (
        pt.as_tensor_variable(logw)[None, :, None]
        + log_phi
        + school
        + (log_det + log_pi_d)[:, None, :]
    )
    total = pt.logsumexp(a3.reshape((a3.shape[0], Q * L)), axis=1)
    weight3 = pt.exp(a3 - total[:, None, None])
    post_between = pt.sum(weight3, axis=1)
    # each level-2 class's rule adapts to the posterior given that class
    within = pt.exp(a3 - pt.logsumexp(a3, axis=1, keepdims=True)).dimshuffle(0, 2, 1)
    mean = pt.sum(within[..., None] * v, axis=2)
    dev = v - mean[:, :, None, :]
    cov = pt.sum(within[..., None, None] * dev[..., :, None] * dev[..., None, :], axis=2)
    w_obs = weight3[cluster].dimshuffle(2, 1, 0)
    post_class = pt.transpose(pt.sum(w_obs[:, None, :, :] * cls, axis=(0, 2)))
    return total, mean, cov, post_class, post_between


def _structure(lay: Layout) -> Layout:
    """The layout without labels, so that cache keys depend on structure only."""
    return Layout(dataclasses.replace(lay.spec, name="", description=""), lay.group_levels)


def needs_quadrature(lay: Layout) -> bool:
    """Whether the model needs the quadrature objective.

    Two-level mixtures with random effects integrate them numerically;
    level-2 classes mix whole schools, which that objective handles (with a
    single node when there are no random effects).
    """
    return (lay.n_random > 0 and lay.spec.classes > 1) or lay.spec.between_classes > 1


def _total_loglik(lay: Layout, params: Params, y, F, R, Z, V, bounds) -> pt.TensorVariable:
    spec = lay.spec
    if spec.random:
        return pt.sum(gaussian_multilevel_loglik(y, F, R, V, bounds, params, lay.n_random))
    return pt.sum(pt.logsumexp(model_log_joint(y, F, Z, V, params), axis=1))


BACKENDS = ("jax", "numba")
"""Compilers of the ML objectives: XLA through JAX, or pytensor's default (numba)."""


def _check_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"backend={backend!r} is not one of {', '.join(BACKENDS)}")
    return backend


def _mode(backend: str) -> str | None:
    # XLA fuses the (observations x nodes x classes) elementwise chain into
    # vectorised loops with static shapes, where pytensor's numba loops call
    # scalar exponentials and logarithms one value at a time.
    if backend != "jax":
        return None
    _persistent_jax_cache()
    return "JAX"


@lru_cache(maxsize=1)
def _persistent_jax_cache() -> None:
    """Keep XLA compilations on disk, so a new process fitting the same shapes skips them.

    The folder is ``$BAYESMIX_CACHE/jax`` (default ``~/.cache/bayesmix/jax``); a
    cache the user configured for JAX is left alone.
    """
    import jax

    if jax.config.jax_compilation_cache_dir:
        return
    root = Path(os.environ.get("BAYESMIX_CACHE", Path.home() / ".cache" / "bayesmix"))
    try:
        (root / "jax").mkdir(parents=True, exist_ok=True)
    except OSError:
        return
    jax.config.update("jax_compilation_cache_dir", str(root / "jax"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)


def _typed_inputs(
    shapes: tuple[tuple[int, ...], ...] | None, names: tuple[tuple[str, str, int], ...]
) -> list[pt.TensorVariable]:
    """Input tensors ``(name, dtype, ndim)``: of the given static shapes, or of any shape."""
    if shapes is None:
        return [pt.tensor(name, dtype=dt, shape=(None,) * nd) for name, dt, nd in names]
    return [
        pt.tensor(name, dtype=dt, shape=shape)
        for (name, dt, _), shape in zip(names, shapes, strict=True)
    ]


_DATA_NAMES = (
    ("y", "float64", 1),
    ("F", "float64", 2),
    ("R", "float64", 2),
    ("Z", "float64", 2),
    ("V", "float64", 2),
    ("bounds", "int64", 1),
)
# the quadrature takes the observation-level data without bounds, then per-cluster inputs
_QUAD_NAMES = (
    *_DATA_NAMES[:5],
    ("cluster", "int64", 1),
    ("weight", "float64", 1),
    ("W", "float64", 2),
    ("centre", "float64", 2),
    ("scale", "float64", 3),
)


def _shapes(arrays) -> tuple[tuple[int, ...], ...]:
    return tuple(tuple(int(k) for k in np.shape(a)) for a in arrays)


def _compile_shapes(
    backend: str, args: tuple[np.ndarray, ...] | None
) -> tuple[tuple[int, ...], ...] | None:
    """Static input shapes to compile for: those of ``args`` for JAX, none for numba."""
    _check_backend(backend)
    if backend != "jax":
        return None
    if args is None:
        raise ValueError("the JAX backend compiles for given data: pass args")
    return _shapes(args)


@lru_cache(maxsize=32)
def _quadrature_functions(
    lay: Layout, points: int, shapes: tuple[tuple[int, ...], ...] | None, backend: str
) -> tuple[Callable[..., list[np.ndarray]], ...]:
    theta = pt.tensor("theta", dtype="float64", shape=(lay.n_params,))
    extra = int(lay.spec.between_classes > 1)
    names = tuple(
        (name, dt, nd + extra if name in ("centre", "scale") else nd)
        for name, dt, nd in _QUAD_NAMES
    )
    inputs = _typed_inputs(shapes, names)
    y, F, R, Z, V, cluster, weight, W, centre, scale = inputs
    nodes, logw = gauss_hermite(points, lay.n_random)
    per_cluster, mean, cov, post_class, post_between = quadrature_loglik(
        y,
        F,
        R,
        Z,
        V,
        cluster,
        lay.unpack(theta, pt),
        lay.n_outcome_random,
        nodes,
        logw,
        centre,
        scale,
        W=W,
        between=lay.spec.between_classes,
    )
    # weights 0 mark the padding clusters of equal-shaped chunks
    loglik = pt.sum(weight * per_cluster)
    mode = _mode(backend)

    def compiled(outputs: list[pt.TensorVariable]) -> Callable[..., list[np.ndarray]]:
        return _reentrant(
            pytensor.function(
                [theta, *inputs], outputs, trust_input=True, on_unused_input="ignore", mode=mode
            )
        )

    # The optimiser calls the first and the node adaptation the last; the class
    # probabilities cost another pass of exponentials over the (classes, nodes,
    # observations) array and are needed only for the results.
    value_and_grad = compiled([loglik, pytensor.grad(loglik, theta)])
    posterior = compiled([loglik, mean, cov, post_class, per_cluster, post_between])
    moments = compiled([loglik, mean, cov])
    return value_and_grad, posterior, moments


def _reentrant(fn: Callable[..., list[np.ndarray]]) -> Callable[..., list[np.ndarray]]:
    """The compiled XLA function inside a JAX-mode pytensor function.

    A pytensor function passes its inputs and outputs through storage cells
    that concurrent calls would overwrite; the jitted function it wraps
    takes arguments and returns (asynchronous) arrays, and can run in
    several threads at once. Other modes are returned as they are.
    """
    jitted = getattr(getattr(fn, "vm", None), "jit_fn", None)
    return jitted if jitted is not None else fn


def quadrature_functions(
    lay: Layout, points: int, args: tuple[np.ndarray, ...], backend: str = "jax"
) -> tuple[Callable[..., list[np.ndarray]], ...]:
    """Compiled quadrature objective, posterior and moments for data shaped like ``args``.

    ``args`` are ``(y, F, R, Z, V, cluster, weight, W, centre, scale)``, with
    ``weight`` (J,) the clusters' weights in the log-likelihood (0 for
    padding) and ``W`` (J, m2) the school design of the level-2 classes.
    The JAX backend compiles for their shapes (one compilation per data
    size), the numba backend for any shape.

    Returns
    -------
    value_and_grad : callable
        ``f(theta, *args) -> [loglik, grad]``, the weighted sum over
        clusters. The nodes sit at
        ``centre + scale z``; the gradient holds them fixed (as in adaptive
        quadrature, where they are updated between optimisation rounds).
    posterior : callable
        ``f(theta, *args) -> [loglik, means, covariances, class probs, per-cluster,
        level-2 class probs]``: posterior means (J, d) and covariances (J, d, d)
        of the standardised school residuals under the quadrature,
        P(C_ij = c | y_j) (n, K), each cluster's log-likelihood (J,) and
        P(D_j = d | y_j) (J, L).
    moments : callable
        ``f(theta, *args) -> [loglik, means, covariances]``, what the node
        adaptation needs, without the class probabilities' extra pass.
    """
    shapes = _compile_shapes(backend, args)
    return _quadrature_functions(_structure(lay), points, shapes, backend)


def _inputs() -> tuple[pt.TensorVariable, ...]:
    return tuple(_typed_inputs(None, _DATA_NAMES))


@lru_cache(maxsize=64)
def _objective(
    lay: Layout, shapes: tuple[tuple[int, ...], ...] | None, backend: str
) -> Callable[..., list[np.ndarray]]:
    theta = pt.tensor("theta", dtype="float64", shape=(lay.n_params,))
    data = _typed_inputs(shapes, _DATA_NAMES)
    loglik = _total_loglik(lay, lay.unpack(theta, pt), *data)
    grad = pytensor.grad(loglik, theta)
    return pytensor.function(
        [theta, *data],
        [loglik, grad],
        trust_input=True,
        on_unused_input="ignore",
        mode=_mode(backend),
    )


def loglik_and_grad(
    lay: Layout, args: tuple[np.ndarray, ...] | None = None, backend: str = "numba"
) -> Callable[..., list[np.ndarray]]:
    """Compiled ``f(theta, y, F, R, Z, V, bounds) -> [loglik, gradient]``.

    ``theta`` is the optimiser's vector (see :class:`~bayesmix.model.params.Layout`),
    random effects and classes integrated out. Inputs must be contiguous
    float64 arrays (int64 ``bounds``). The JAX backend compiles for the shapes
    of ``args`` (the data the function will be called with), the numba backend
    for any shape.
    """
    shapes = _compile_shapes(backend, args)
    return _objective(_structure(lay), shapes, backend)


@lru_cache(maxsize=32)
def _cluster_loglik(lay: Layout) -> Callable[..., list[np.ndarray]]:
    theta = pt.tensor("theta", dtype="float64", shape=(lay.n_params,))
    y, F, R, Z, V, bounds = _inputs()
    params = lay.unpack(theta, pt)
    if lay.spec.random:
        out = gaussian_multilevel_loglik(y, F, R, V, bounds, params, lay.n_random)
    else:
        out = segment_sum(pt.logsumexp(model_log_joint(y, F, Z, V, params), axis=1), bounds)
    return pytensor.function([theta, y, F, R, Z, V, bounds], out, on_unused_input="ignore")


def cluster_loglik(lay: Layout) -> Callable[..., np.ndarray]:
    """Compiled ``f(theta, y, F, R, Z, V, bounds)`` -> each cluster's log-likelihood (J,).

    For the models without quadrature: the exact Gaussian marginal of the
    conventional two-level model (school residuals integrated out), or the
    sum of the students' class mixtures when there are no school residuals.
    """
    return _cluster_loglik(_structure(lay))


_POINTWISE_NAMES = (
    ("beta", "float64", 2),
    ("lsig", "float64", 2),
    ("gamma", "float64", 2),
    ("offset", "float64", 1),
    ("member_offset", "float64", 2),
    *(_DATA_NAMES[i] for i in (0, 1, 3, 4)),
)


@lru_cache(maxsize=64)
def _pointwise(
    lay: Layout, shapes: tuple[tuple[int, ...], ...] | None, backend: str
) -> Callable[..., list[np.ndarray]]:
    inputs = _typed_inputs(shapes, _POINTWISE_NAMES)
    beta, lsig, gamma, offset, member_offset, y, F, Z, V = inputs
    params = Params(beta=beta, lsig=lsig, gamma=gamma, chol=pt.zeros((0, 0)))
    joint = model_log_joint(y, F, Z, V, params, offset, member_offset)
    loglik = pt.logsumexp(joint, axis=1)
    posterior = pt.exp(joint - loglik[:, None])
    return pytensor.function(
        inputs, [loglik, posterior], on_unused_input="ignore", mode=_mode(backend)
    )


def pointwise(
    lay: Layout, backend: str = "numba", args: tuple[np.ndarray, ...] | None = None
) -> Callable[..., list[np.ndarray]]:
    """Compiled ``f(beta, lsig, gamma, offset, member_offset, y, F, Z, V)``.

    Returns ``[loglik_i, P(C_i = c | y_i)]`` conditional on the school
    residuals through ``offset = R u`` and ``member_offset`` (n, K-1) (zeros for
    single-level models). The JAX backend compiles for the shapes of
    ``args`` (arguments the function will be called with), the numba
    backend for any shape.
    """
    shapes = _compile_shapes(backend, args)
    return _pointwise(_structure(lay), shapes, backend)
