"""One-pass normal-mixture log density and its gradient, for the NUTS graph.

Written as pytensor operations, the class-marginal density ``log sum_k pi_ik
N(y_i | mu_ik, sigma2_k)``, with ``pi_i = softmax(eta_i, 0)``, and its gradient
become about eight loops over the (observation, class) array: the class
log-probabilities, the maximum, the exponentials and their sum, the
logarithm, the class weights, a division, and the backward products. This op
computes the density and every factor of its gradient in one pass over the
observations. With two classes each of its two log-sum-exps (over the
classes' joint densities and over the logits) is ``max + log(1 + exp(-|d|))``
and its weight ``sigmoid(d)``, from the same exponential; with more, every
term is exponentiated after subtracting the maximum. Both sums lie in
``[1, K]``, so one logarithm of their ratio gives the density. The loop runs
over blocks of students with the classes outside, and the exponentials are
taken by a polynomial that LLVM vectorises (numba has no vector math library
here and calls the C library's ``exp`` one value at a time, which no loop
around it can vectorise). The values are those of
:func:`bayesmix.density.likelihood.mixture_logp` with
:func:`bayesmix.density.likelihood.log_class_probs` up to rounding; the measured gain
is in ``benchmarks/README.md``.
"""

from __future__ import annotations

import functools
import hashlib
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytensor.tensor as pt
from pytensor.gradient import DisconnectedType
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op

from bayesmix.density.primitives import normal_logpdf, reference_logits

# numba's on-disk cache knows the op by its class name; a key from this file's text
# keeps a kernel compiled by another version of it from being loaded
_SOURCE_KEY = int(hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:12], 16)


def _mixture_terms(y: Any, mu: Any, lsig: Any, eta: Any, xp: Any = np) -> tuple[Any, Any, Any, Any]:
    """Array reference (``xp`` numpy or jax.numpy): log density (n,) and the gradient factors.

    The joint log densities are the primitives'; the log-sum-exps over the
    logits and over the joint densities share the shifts that the gradient
    factors need.
    """
    logits = reference_logits(eta, xp, axis=1)
    top_eta = logits.max(axis=1, keepdims=True)
    ex_eta = xp.exp(logits - top_eta)
    norm = ex_eta.sum(axis=1, keepdims=True)
    prec = xp.exp(-lsig)
    resid = y[:, None] - mu
    quad = resid**2 * prec
    joint = logits + normal_logpdf(resid, lsig, xp)
    top = joint.max(axis=1, keepdims=True)
    ex = xp.exp(joint - top)
    total = ex.sum(axis=1, keepdims=True)
    weight = ex / total
    logp = (top + xp.log(total) - top_eta - xp.log(norm))[:, 0]
    prob = ex_eta / norm
    return logp, weight * resid * prec, 0.5 * weight * (quad - 1.0), (weight - prob)[:, :-1]


class NormalMixtureLogp(Op):
    """``log sum_k pi_ik N(y_i | mu_ik, exp(lsig_k))``, ``pi_i = softmax(eta_i, 0)``.

    Inputs ``y`` (n,), ``mu`` (n, K), ``lsig`` (K,) class log variances,
    ``eta`` (n, K-1) membership logits against the last class. Outputs the
    log density (n,) and, for the gradient, ``w r / sigma2`` and ``w (r^2 /
    sigma2 - 1) / 2`` (n, K each) and ``w - pi`` (n, K-1), with ``w`` the
    posterior class probabilities and ``r = y - mu``. Only the first output
    may be differentiated.
    """

    __props__ = ()

    def make_node(self, y: Any, mu: Any, lsig: Any, eta: Any) -> Apply:
        y, mu, lsig, eta = (pt.as_tensor_variable(v, dtype="float64") for v in (y, mu, lsig, eta))
        if (y.ndim, mu.ndim, lsig.ndim, eta.ndim) != (1, 2, 1, 2):
            raise TypeError("NormalMixtureLogp takes y (n,), mu (n, K), lsig (K,), eta (n, K-1).")
        n, k = mu.type.shape
        outputs = [
            pt.tensor(dtype="float64", shape=(n,)),
            pt.tensor(dtype="float64", shape=(n, k)),
            pt.tensor(dtype="float64", shape=(n, k)),
            pt.tensor(dtype="float64", shape=eta.type.shape),
        ]
        return Apply(self, [y, mu, lsig, eta], outputs)

    def perform(self, node: Apply, inputs: list[np.ndarray], output_storage: list[Any]) -> None:
        for store, value in zip(output_storage, _mixture_terms(*inputs), strict=True):
            store[0] = value

    def infer_shape(self, node: Apply, shapes: list[Any]) -> list[Any]:
        n = shapes[0][0]
        k = shapes[1][1]
        return [(n,), (n, k), (n, k), shapes[3]]

    def pullback(self, inputs: Any, outputs: Any, cotangents: Any) -> list[Any]:
        for g in cotangents[1:]:
            if not isinstance(g.type, DisconnectedType):
                raise NotImplementedError(
                    "only the log density of NormalMixtureLogp has a gradient"
                )
        g = cotangents[0][:, None]
        _, wr, wq, weta = outputs
        return [-pt.sum(g * wr, axis=1), g * wr, pt.sum(g * wq, axis=0), g * weta]

    def connection_pattern(self, node: Apply) -> list[list[bool]]:
        return [[True, True, True, True] for _ in node.inputs]


normal_mixture_logp = NormalMixtureLogp()


# exp(x) = 2^k p(r), k = round(x / ln 2), r = x - k ln 2 in [-ln 2 / 2, ln 2 / 2], with ln 2
# in two parts (Cody and Waite) so that r is exact, and p the Taylor polynomial of degree
# 12, whose remainder is below 2.5e-16 relative on that interval
_LOG2E = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_EXP_COEFS = tuple(1.0 / math.factorial(j) for j in range(13))
# the lowest whole argument whose 2^k (k = -1021) is a normal number
_EXP_FLOOR = -708.0
# students per block: the block's temporaries (6K + 5 rows of it, 47 kB for K = 3) stay in
# the L2 cache
_BLOCK = 256


@functools.cache
def numba_kernels() -> tuple[Any, Any, Any]:
    """The numba kernels ``exp_nonpositive``, ``two_classes`` and ``any_classes``.

    Compiled on first use and callable only from other numba functions.
    """
    from pytensor.link.numba.dispatch.basic import numba_njit

    # numpy's error model: a division is an IEEE division, without Python's zero check,
    # which keeps the loops free of branches so that LLVM vectorises them; IEEE arithmetic
    # (no fastmath) keeps the two-part reduction exact
    kernel = numba_njit(fastmath=False, error_model="numpy")
    exp_nonpositive = _exp_kernel(kernel)
    two_classes = _two_classes_kernel(kernel, exp_nonpositive)
    any_classes = _any_classes_kernel(kernel, exp_nonpositive)
    return exp_nonpositive, two_classes, any_classes


def _exp_kernel(kernel: Any) -> Any:
    """``exp_nonpositive(x, bits)``: ``x = exp(x)`` in place for ``x <= 0``."""
    c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12 = _EXP_COEFS
    log2e, ln2_hi, ln2_lo, floor_ = _LOG2E, _LN2_HI, _LN2_LO, _EXP_FLOOR

    @kernel
    def exp_nonpositive(x, bits):  # type: ignore[no-untyped-def]
        # in place, for x <= 0: numba calls the C library's exp one value at a time, a
        # scalar call in every iteration; this loop is branch-free arithmetic that LLVM
        # vectorises. Below -708 the result is exp(-708) instead of a smaller number or 0,
        # NaN stays NaN, and k comes from a clamped copy so that it is always an integer.
        for i in range(x.shape[0]):
            v = x[i]
            clamped = v if v > floor_ else floor_
            v = v if not v < floor_ else floor_
            k = math.floor(clamped * log2e + 0.5)
            r = (v - k * ln2_hi) - k * ln2_lo
            p = c12 * r + c11
            p = p * r + c10
            p = p * r + c9
            p = p * r + c8
            p = p * r + c7
            p = p * r + c6
            p = p * r + c5
            p = p * r + c4
            p = p * r + c3
            p = p * r + c2
            p = p * r + c1
            x[i] = p * r + c0
            bits[i] = (np.int64(k) + 1023) << 52
        scale = bits.view(np.float64)
        for i in range(x.shape[0]):
            x[i] *= scale[i]

    return exp_nonpositive


def _two_classes_kernel(kernel: Any, exp_nonpositive: Any) -> Any:
    """``two_classes(y, mu, prec, const, eta, logp, wr, wq, weta)``: the outputs of
    :class:`NormalMixtureLogp` for two classes, written into the last four arguments."""
    block = _BLOCK

    @kernel
    def two_classes(y, mu, prec, const, eta, logp, wr, wq, weta):  # type: ignore[no-untyped-def]
        # with d the difference of the two joint log densities and e the logit, each
        # log-sum-exp is max + log(1 + exp(-|d|)) and its weight sigmoid(d), from the same
        # exponential; one logarithm of the ratio of the two sums (each in [1, 2])
        n = y.shape[0]
        res = np.empty((2, block))
        quad = np.empty((2, block))
        diff = np.empty(block)
        arg = np.empty(2 * block)
        bits = np.empty(2 * block, np.int64)
        base = np.empty(block)
        ratio = np.empty(block)
        for s in range(0, n, block):
            m = min(block, n - s)
            for i in range(m):
                r1 = y[s + i] - mu[s + i, 0]
                r2 = y[s + i] - mu[s + i, 1]
                q1 = r1 * r1 * prec[0]
                q2 = r2 * r2 * prec[1]
                e = eta[s + i, 0]
                d = e + const[0] - 0.5 * q1 - (const[1] - 0.5 * q2)
                res[0, i] = r1
                res[1, i] = r2
                quad[0, i] = q1
                quad[1, i] = q2
                diff[i] = d
                arg[i] = -abs(d)
                arg[m + i] = -abs(e)
            exp_nonpositive(arg[: 2 * m], bits)
            for i in range(m):
                d = diff[i]
                e = eta[s + i, 0]
                x = arg[i]
                xe = arg[m + i]
                inv = 1.0 / (1.0 + x)
                w1 = inv if d >= 0.0 else x * inv
                inv_e = 1.0 / (1.0 + xe)
                p1 = inv_e if e >= 0.0 else xe * inv_e
                base[i] = (
                    const[1] - 0.5 * quad[1, i] + (d if d > 0.0 else 0.0) - (e if e > 0.0 else 0.0)
                )
                ratio[i] = (1.0 + x) * inv_e
                w2 = 1.0 - w1
                wr[s + i, 0] = w1 * res[0, i] * prec[0]
                wr[s + i, 1] = w2 * res[1, i] * prec[1]
                wq[s + i, 0] = 0.5 * w1 * (quad[0, i] - 1.0)
                wq[s + i, 1] = 0.5 * w2 * (quad[1, i] - 1.0)
                weta[s + i, 0] = w1 - p1
            for i in range(m):
                logp[s + i] = base[i] + math.log(ratio[i])

    return two_classes


def _any_classes_kernel(kernel: Any, exp_nonpositive: Any) -> Any:
    """``any_classes(y, mu, prec, const, eta, logp, wr, wq, weta)``: the outputs of
    :class:`NormalMixtureLogp` for any number of classes, written into the last four."""
    block = _BLOCK

    @kernel
    def any_classes(y, mu, prec, const, eta, logp, wr, wq, weta):  # type: ignore[no-untyped-def]
        # loops over a block of students, classes outside: the joint log densities and the
        # logits less their maxima go into one array for exp_nonpositive; both sums are in
        # [1, K], so one logarithm of their ratio
        n, k = mu.shape
        res = np.empty((k, block))
        quad = np.empty((k, block))
        # rows 0..k-1 the joint densities' exponentials, rows k..2k-1 the logits'
        ex = np.empty(2 * k * block)
        bits = np.empty(2 * k * block, np.int64)
        top = np.empty(block)
        top_eta = np.empty(block)
        total = np.empty(block)
        norm = np.empty(block)
        ratio = np.empty(block)
        for s in range(0, n, block):
            m = min(block, n - s)
            for i in range(m):
                top_eta[i] = 0.0
                top[i] = -np.inf
            for c in range(k - 1):
                for i in range(m):
                    e = eta[s + i, c]
                    top_eta[i] = e if e > top_eta[i] else top_eta[i]
            for c in range(k):
                for i in range(m):
                    logit = eta[s + i, c] if c < k - 1 else 0.0
                    r = y[s + i] - mu[s + i, c]
                    q = r * r * prec[c]
                    res[c, i] = r
                    quad[c, i] = q
                    j = logit + const[c] - 0.5 * q
                    ex[c * m + i] = j
                    ex[(k + c) * m + i] = logit - top_eta[i]
                    top[i] = j if j > top[i] else top[i]
            for c in range(k):
                for i in range(m):
                    ex[c * m + i] -= top[i]
            exp_nonpositive(ex[: 2 * k * m], bits)
            for i in range(m):
                total[i] = 0.0
                norm[i] = 0.0
            for c in range(k):
                for i in range(m):
                    total[i] += ex[c * m + i]
                    norm[i] += ex[(k + c) * m + i]
            for i in range(m):
                ratio[i] = total[i] / norm[i]
                total[i] = 1.0 / total[i]
                norm[i] = 1.0 / norm[i]
            for i in range(m):
                logp[s + i] = top[i] - top_eta[i] + math.log(ratio[i])
            for c in range(k):
                for i in range(m):
                    w = ex[c * m + i] * total[i]
                    wr[s + i, c] = w * res[c, i] * prec[c]
                    wq[s + i, c] = 0.5 * w * (quad[c, i] - 1.0)
            for c in range(k - 1):
                for i in range(m):
                    weta[s + i, c] = ex[c * m + i] * total[i] - ex[(k + c) * m + i] * norm[i]

    return any_classes


def _register_numba() -> None:
    # the kernel keeps its own loop, the normal constant included; the tests check it
    # against the primitives
    from pytensor.link.numba.dispatch.basic import (
        numba_njit,
        register_funcify_default_op_cache_key,
    )

    from bayesmix.density.primitives import LOG_2PI

    @register_funcify_default_op_cache_key(NormalMixtureLogp)
    def _funcify(op: NormalMixtureLogp, node: Apply | None = None, **kwargs: Any) -> Any:
        _, two_classes, any_classes = numba_kernels()
        log_2pi = LOG_2PI

        @numba_njit
        def normal_mixture(y, mu, lsig, eta):  # type: ignore[no-untyped-def]
            n, k = mu.shape
            prec = np.exp(-lsig)
            const = -0.5 * (log_2pi + lsig)
            logp = np.empty(n)
            wr = np.empty((n, k))
            wq = np.empty((n, k))
            weta = np.empty((n, k - 1))
            if k == 2:
                two_classes(y, mu, prec, const, eta, logp, wr, wq, weta)
            else:
                any_classes(y, mu, prec, const, eta, logp, wr, wq, weta)
            return logp, wr, wq, weta

        return normal_mixture, _SOURCE_KEY


@functools.lru_cache(maxsize=1)
def register_jax() -> None:
    """Give pytensor's JAX backend the op's JAX implementation.

    Called before anything compiles a graph with JAX (the ML objectives, nutpie's
    JAX backend, numpyro and blackjax, :func:`bayesmix.build_model`) rather than at
    import: loading pytensor's JAX dispatch takes about a second, which a fit whose
    compiled code comes from the caches does not need.
    """
    try:
        from pytensor.link.jax.dispatch import jax_funcify
    except ImportError:
        return

    @jax_funcify.register(NormalMixtureLogp)
    def _funcify(op: NormalMixtureLogp, **kwargs: Any) -> Any:
        import jax.numpy as jnp

        def normal_mixture(y, mu, lsig, eta):  # type: ignore[no-untyped-def]
            return _mixture_terms(y, mu, lsig, eta, xp=jnp)

        return normal_mixture


_register_numba()
