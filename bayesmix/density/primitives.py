"""The log-density's primitives, each written once for numpy, pytensor and JAX.

Every path of the likelihood is made of three pieces: the membership
log-softmax against a reference class whose logit is fixed at 0 (eqs 2, 19,
32), the normal log density of a residual, and the log density of a
school's outcomes under their marginal normal (random effects integrated,
eqs 10-16). The pytensor graphs of the ML objective, of the quadrature and
of the PyMC model, the numpy post-processing of posterior draws and the JAX
reference of :mod:`bayesmix.density.fused` all call the functions here.

Each function takes the array namespace ``xp`` of its inputs:
``numpy``, ``pytensor.tensor`` or ``jax.numpy``. The formulas use operators
and the functions the three spell alike (``exp``, ``log``, ``sum``,
``concatenate``, ``tensordot``, ...); the three the namespaces spell
differently (``logsumexp``, ``softplus``, ``sigmoid``) come from each
namespace's own library through :func:`_special`. ``tests/density/
test_primitives.py`` checks every primitive against scipy in the three
namespaces, and that no other module writes one of them again.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from types import ModuleType
from typing import Any

LOG_2PI = math.log(2.0 * math.pi)
"""``log(2 pi)``, the normal density's constant."""


def logsumexp(a: Any, axis: int = -1, keepdims: bool = False) -> Any:
    """``log sum exp`` of a numpy array along ``axis``, shifted by its maximum.

    scipy's version goes through array-API dispatch that costs more than the
    arithmetic on the many short reductions of the post-processing (a class
    axis of 2 or 3). An all ``-inf`` slice gives ``-inf``; ``+inf`` gives ``+inf``.
    """
    import numpy as np

    a = np.asarray(a)
    top = np.max(a, axis=axis, keepdims=True)
    shift = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(divide="ignore"):
        out = np.log(np.sum(np.exp(a - shift), axis=axis, keepdims=True)) + shift
    return out if keepdims else np.squeeze(out, axis=axis)


def _softplus(x: Any) -> Any:
    """numpy ``log(1 + exp(x))`` as ``max(x, 0) + log1p(exp(-|x|))``: exact to rounding
    for every x and cheaper than ``logaddexp(0, x)``."""
    import numpy as np

    return np.maximum(x, 0.0) + np.log1p(np.exp(-np.abs(x)))


@dataclass(frozen=True)
class _Special:
    """The functions a namespace spells its own way."""

    logsumexp: Callable[..., Any]
    softplus: Callable[[Any], Any]
    sigmoid: Callable[[Any], Any]


@cache
def _special(xp: ModuleType) -> _Special:
    """``logsumexp(x, axis=, keepdims=)``, ``softplus`` and ``sigmoid`` of namespace ``xp``."""
    name = xp.__name__
    if name == "pytensor.tensor":
        return _Special(xp.logsumexp, xp.softplus, xp.sigmoid)
    if name == "jax.numpy":
        import jax

        return _Special(jax.nn.logsumexp, jax.nn.softplus, jax.nn.sigmoid)
    if name == "numpy":
        from scipy import special

        return _Special(logsumexp, _softplus, special.expit)
    raise TypeError(f"xp must be numpy, pytensor.tensor or jax.numpy, got {name}.")


def reference_logits(eta: Any, xp: ModuleType, axis: int = -1) -> Any:
    """The logits of all classes: ``eta`` (K-1 along ``axis``) and the reference class's 0.

    The reference class is the last; its zeros are shaped from ``eta`` (not
    from a data shape), which keeps shapes static for JAX.
    """
    zero = xp.zeros_like(xp.sum(eta, axis=axis, keepdims=True))
    return xp.concatenate([eta, zero], axis=axis)


def log_softmax_ref(eta: Any, xp: ModuleType, axis: int = -1) -> Any:
    """Log class probabilities of logits ``eta`` (K-1 along ``axis``) against a last,
    reference class with logit 0, K along ``axis``: ``log softmax([eta, 0])``."""
    full = reference_logits(eta, xp, axis)
    return full - _special(xp).logsumexp(full, axis=axis, keepdims=True)


def log_softmax_ref_binary(eta: Any, xp: ModuleType, axis: int = -1) -> Any:
    """:func:`log_softmax_ref` of two classes (``eta`` of size 1 along ``axis``).

    ``log sigmoid(eta) = eta - softplus(eta)`` and ``log sigmoid(-eta) =
    -softplus(eta)``: one exponential and one logarithm per row.
    """
    spread = _special(xp).softplus(eta)
    return xp.concatenate([eta - spread, -spread], axis=axis)


def log_softmax_ref_clipped(eta: Any, xp: ModuleType, axis: int = -1) -> Any:
    """:func:`log_softmax_ref` of two classes as the logs of ``sigmoid(eta)`` and
    ``1 - sigmoid(eta)``, ``eta`` clipped to [-30, 30].

    Two logarithms of one sigmoid, where :func:`log_softmax_ref_binary`'s
    ``softplus`` needs ``log1p``, for which numba calls the C library's scalar
    function, dearer in a NUTS step. The clip keeps ``1 - sigmoid`` above 0
    and changes the log probabilities by less than 1e-13 beyond it. The ML
    objective keeps :func:`log_softmax_ref_binary`: XLA has its own
    ``log1p``, and an optimiser can take a logit past the clip, where the
    flat density would stall it.
    """
    prob = _special(xp).sigmoid(xp.clip(eta, -30.0, 30.0))
    return xp.log(xp.concatenate([prob, 1.0 - prob], axis=axis))


def normal_logpdf(resid: Any, log_var: Any, xp: ModuleType) -> Any:
    """``log N(resid | 0, exp(log_var))``: the normal log density of a residual ``y - mu``
    with log variance ``log_var``, elementwise (broadcast)."""
    return -0.5 * (LOG_2PI + log_var + resid**2 / xp.exp(log_var))


def std_normal_logpdf(z: Any, xp: ModuleType, dims: int | None = None) -> Any:
    """``log phi_d(z)``: the standard ``d``-variate normal log density of the vectors along
    ``z``'s last axis (``d`` given as ``dims``, or that axis's length)."""
    d = z.shape[-1] if dims is None else dims
    return -0.5 * xp.sum(z**2, axis=-1) - 0.5 * d * LOG_2PI


def segment_sum(values: Any, bounds: Any, xp: ModuleType) -> Any:
    """Sums of ``values`` (rows) over contiguous segments ``bounds[j]:bounds[j + 1]``."""
    zero = xp.zeros_like(values[:1])
    cum = xp.concatenate([zero, xp.cumsum(values, axis=0)], axis=0)
    return cum[bounds[1:]] - cum[bounds[:-1]]


def school_gaussian_logpdf(
    resid: Any,
    log_var: Any,
    R: Any,
    chol: Any,
    bounds: Any,
    xp: ModuleType,
    r: int | None = None,
) -> Any:
    """Log density of each school's residuals under their marginal normal, shape (J,).

    School j's rows ``bounds[j]:bounds[j + 1]`` have residuals ``resid``
    (``y - F beta``), log residual variances ``log_var`` (the diagonal
    ``D_j``) and random-effect design ``R`` (n, r); with the school
    residuals ``u_j ~ N(0, L L')`` (``chol`` = L, r x r, which may be
    singular) integrated out, ``resid_j ~ N(0, V_j)``,
    ``V_j = D_j + R_j L L' R_j'``. By the matrix determinant lemma and
    Woodbury's identity with ``M_j = I + L' R_j' D_j^-1 R_j L``,
    ``log|V_j| = log|D_j| + log|M_j|`` and
    ``e' V_j^-1 e = e' D_j^-1 e - |chol(M_j)^-1 L' R_j' D_j^-1 e|^2``. ``r``
    (the columns of ``R``) must be given for pytensor, whose shapes are
    symbolic.
    """
    r = chol.shape[0] if r is None else r
    w = xp.exp(-log_var)
    n_j = segment_sum(xp.ones_like(resid), bounds, xp)
    c = segment_sum(w * resid**2, bounds, xp)
    log_d = segment_sum(log_var, bounds, xp)
    if r == 0:
        return -0.5 * (n_j * LOG_2PI + log_d + c)
    outer = (R[:, :, None] * R[:, None, :]).reshape((R.shape[0], r * r))
    A = segment_sum(outer * w[:, None], bounds, xp).reshape((-1, r, r))
    b = segment_sum(R * (w * resid)[:, None], bounds, xp)
    AL = xp.tensordot(A, chol, axes=[[2], [0]])
    M = xp.swapaxes(xp.tensordot(AL, chol, axes=[[1], [0]]), 1, 2) + xp.eye(r)[None]
    s = xp.dot(b, chol)
    logdet, quad = _batched_cholesky_solve(M, s, r, xp)
    return -0.5 * (n_j * LOG_2PI + log_d + logdet + c - quad)


def _batched_cholesky_solve(M: Any, s: Any, r: int, xp: ModuleType) -> tuple[Any, Any]:
    """Per-school Cholesky of small r x r matrices, unrolled over r.

    Returns ``log|M_j|`` and ``|chol(M_j)^-1 s_j|^2`` as (J,) arrays; unrolling
    keeps every operation elementwise over schools, which is far faster than
    batched linear algebra for the r <= 4 of these models.
    """
    lower: list[list[Any]] = [[None] * r for _ in range(r)]
    for i in range(r):
        for j in range(i + 1):
            acc = M[:, i, j]
            for k in range(j):
                acc = acc - lower[i][k] * lower[j][k]
            lower[i][j] = xp.sqrt(acc) if i == j else acc / lower[j][j]
    xs: list[Any] = []
    for i in range(r):
        acc = s[:, i]
        for k in range(i):
            acc = acc - lower[i][k] * xs[k]
        xs.append(acc / lower[i][i])
    logdet = 2.0 * sum(xp.log(lower[i][i]) for i in range(r))
    quad = sum(x**2 for x in xs)
    return logdet, quad
