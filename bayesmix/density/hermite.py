"""The marginal likelihood of two-level mixtures by adaptive Gauss-Hermite quadrature.

Pytensor graphs of the school log-likelihoods with the school residuals
integrated on nodes placed by :mod:`bayesmix.density.quadrature`, with one
level of classes or with level-2 classes (model C).
"""

from __future__ import annotations

import numpy as np
import pytensor.tensor as pt
from pytensor.gradient import zero_grad

from bayesmix.density.primitives import (
    log_softmax_ref,
    normal_logpdf,
    reference_logits,
    std_normal_logpdf,
)
from bayesmix.model.params import Params


def gauss_hermite(points: int, dims: int) -> tuple[np.ndarray, np.ndarray]:
    """Tensor-product Gauss-Hermite rule for the standard normal in ``dims`` dimensions.

    Returns nodes (Q, dims) and ``log w_k - log phi(z_k)`` (Q,), so that
    ``int f(z) dz ~= sum_k exp(logw_k) f(z_k)`` for a density-like ``f``.
    """
    z, w = np.polynomial.hermite_e.hermegauss(points)
    # hermegauss integrates against exp(-z^2 / 2) = phi(z) / phi(0)
    log_w = np.log(w) + std_normal_logpdf(np.zeros(1), np)
    grids = np.meshgrid(*([z] * dims), indexing="ij")
    nodes = np.stack([g.ravel() for g in grids], axis=1) if dims else np.zeros((1, 0))
    wgrids = np.meshgrid(*([log_w] * dims), indexing="ij")
    logw = sum(g.ravel() for g in wgrids) if dims else np.zeros(1)
    logw = logw - std_normal_logpdf(nodes, np, dims)
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
    row_weight: pt.TensorLike | None = None,
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

    ``row_weight`` (n,), the scaled student sampling weights, raises each
    student's density to its weight inside the integral (the weighted
    pseudo-likelihood of :mod:`bayesmix.model.weights`).

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
            between, row_weight,
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
    logn = normal_logpdf(resid, logs2[:, None, :], pt)
    eta = pt.dot(params.gamma, pt.transpose(Z))[:, None, :]
    # an array of (., Q, n) whose zeros (not symbolic shapes) keep shapes static for JAX
    every_node = logn
    if nodes.shape[1] > r:
        # the membership residuals at every node, (d - r, Q, n)
        every_node = pt.dot(v, pt.transpose(params.chol[r:]))[cluster].dimshuffle(2, 1, 0)
        if params.load is not None:
            eta = eta + pt.tensordot(params.load, every_node, axes=[[1], [0]])
    eta = eta + pt.zeros_like(pt.sum(every_node[:1], axis=0, keepdims=True))
    full = reference_logits(eta, pt, axis=0)
    per_obs, cls = _class_mixture(_shifted_exp(full), logn, axis=0, inner=inner)
    if row_weight is not None:
        per_obs = per_obs * pt.as_tensor_variable(row_weight)[None, :]
    log_phi = std_normal_logpdf(v, pt, nodes.shape[1])
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
    y, F, R, Z, V, cluster, params: Params, r: int, nodes, logw, centre, scale, W, L: int,
    row_weight=None,
) -> tuple[pt.TensorVariable, ...]:  # fmt: skip
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
    logn = normal_logpdf(resid, logs2, pt)
    eta = pt.dot(params.gamma, pt.transpose(Z))[None, :, None, :]
    if params.load is not None and dim > r:
        member = pt.tensordot(params.load, bq[r:], axes=[[1], [0]])
        eta = eta + member.reshape((member.shape[0], L, Q, n)).dimshuffle(1, 0, 2, 3)
    eta = eta + pt.zeros_like(pt.sum(logn, axis=1, keepdims=True))
    full = reference_logits(eta, pt, axis=1)
    per_obs, cls = _class_mixture(_shifted_exp(full, axis=1), logn, axis=1)
    if row_weight is not None:
        per_obs = per_obs * pt.as_tensor_variable(row_weight)[None, None, :]
    log_phi = std_normal_logpdf(v, pt, dim).dimshuffle(0, 2, 1)
    log_det = pt.sum(pt.log(pt.diagonal(scale, axis1=2, axis2=3)), axis=2)
    school = pt.inc_subtensor(pt.zeros_like(log_phi)[cluster], per_obs.dimshuffle(2, 1, 0))
    eta_d = pt.dot(pt.as_tensor_variable(W), pt.transpose(params.delta))
    log_pi_d = log_softmax_ref(eta_d, pt, axis=1)
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
