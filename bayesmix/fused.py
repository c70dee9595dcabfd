"""One-pass normal-mixture log density and its gradient, for the NUTS graph.

Written as pytensor operations, the class-marginal density ``log sum_k pi_ik
N(y_i | mu_ik, sigma2_k)``, with ``pi_i = softmax(eta_i, 0)``, and its gradient
become about eight loops over the (observation, class) array: the class
log-probabilities, the maximum, the exponentials and their sum, the
logarithm, the class weights, a division, and the backward products. This op
computes the density and every factor of its gradient in one loop over the
observations. The largest term of each of its two log-sum-exps (over the
classes' joint densities and over the logits) is 1 and is not computed:
2(K - 1) exponentials, two logarithms and two divisions per observation
(with two classes, ``max + log(1 + exp(-|d|))`` and ``sigmoid(d)`` from the
same exponential). The values are those of
:func:`bayesmix.likelihood.mixture_logp` with
:func:`bayesmix.likelihood.log_class_probs` up to rounding; the timings are in
``benchmarks/README.md``.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytensor.tensor as pt
from pytensor.gradient import DisconnectedType
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op

from bayesmix.likelihood import _LOG_2PI

# numba's on-disk cache knows the op by its class name; a key from this file's text
# keeps a kernel compiled by another version of it from being loaded
_SOURCE_KEY = int(hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:12], 16)


def _mixture_terms(y: Any, mu: Any, lsig: Any, eta: Any, xp: Any = np) -> tuple[Any, Any, Any, Any]:
    """Array reference (``xp`` numpy or jax.numpy): log density (n,) and the gradient factors."""
    logits = xp.concatenate([eta, xp.zeros((eta.shape[0], 1), dtype=eta.dtype)], axis=1)
    top_eta = logits.max(axis=1, keepdims=True)
    ex_eta = xp.exp(logits - top_eta)
    norm = ex_eta.sum(axis=1, keepdims=True)
    prec = xp.exp(-lsig)
    resid = y[:, None] - mu
    quad = resid**2 * prec
    joint = logits - 0.5 * (_LOG_2PI + lsig + quad)
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


def _register_numba() -> None:
    from pytensor.link.numba.dispatch.basic import (
        numba_njit,
        register_funcify_default_op_cache_key,
    )

    @register_funcify_default_op_cache_key(NormalMixtureLogp)
    def _funcify(op: NormalMixtureLogp, node: Apply | None = None, **kwargs: Any) -> Any:
        log_2pi = _LOG_2PI

        @numba_njit
        def two_classes(y, mu, prec, const, eta, logp, wr, wq, weta):  # type: ignore[no-untyped-def]
            # log(1 + exp(-|d|)) and sigmoid(d) share one exponential per sum
            for i in range(len(y)):
                r1 = y[i] - mu[i, 0]
                r2 = y[i] - mu[i, 1]
                q1 = r1 * r1 * prec[0]
                q2 = r2 * r2 * prec[1]
                e = eta[i, 0]
                d = e + const[0] - 0.5 * q1 - (const[1] - 0.5 * q2)
                ad = abs(d)
                x = math.exp(-ad)
                inv = 1.0 / (1.0 + x)
                w1 = inv if d >= 0.0 else x * inv
                top = const[1] - 0.5 * q2 + (d if d > 0.0 else 0.0)
                ae = abs(e)
                xe = math.exp(-ae)
                inv_e = 1.0 / (1.0 + xe)
                p1 = inv_e if e >= 0.0 else xe * inv_e
                logp[i] = top + math.log(1.0 + x) - (e if e > 0.0 else 0.0) - math.log(1.0 + xe)
                w2 = 1.0 - w1
                wr[i, 0] = w1 * r1 * prec[0]
                wr[i, 1] = w2 * r2 * prec[1]
                wq[i, 0] = 0.5 * w1 * (q1 - 1.0)
                wq[i, 1] = 0.5 * w2 * (q2 - 1.0)
                weta[i, 0] = w1 - p1

        @numba_njit
        def any_classes(y, mu, prec, const, eta, logp, wr, wq, weta):  # type: ignore[no-untyped-def]
            # the largest term of each sum is exp(0) = 1: K - 1 exponentials per sum
            k = mu.shape[1]
            joint = np.empty(k)
            member = np.empty(k)
            for i in range(len(y)):
                top_eta = 0.0
                arg_eta = k - 1
                for c in range(k - 1):
                    if eta[i, c] > top_eta:
                        top_eta = eta[i, c]
                        arg_eta = c
                top = -np.inf
                arg = 0
                for c in range(k):
                    logit = eta[i, c] if c < k - 1 else 0.0
                    r = y[i] - mu[i, c]
                    q = r * r * prec[c]
                    wr[i, c] = r * prec[c]
                    wq[i, c] = q
                    member[c] = logit
                    joint[c] = logit + const[c] - 0.5 * q
                    if joint[c] > top:
                        top = joint[c]
                        arg = c
                total = 0.0
                norm = 0.0
                for c in range(k):
                    joint[c] = 1.0 if c == arg else math.exp(joint[c] - top)
                    total += joint[c]
                    member[c] = 1.0 if c == arg_eta else math.exp(member[c] - top_eta)
                    norm += member[c]
                logp[i] = top + math.log(total) - top_eta - math.log(norm)
                inv = 1.0 / total
                inv_norm = 1.0 / norm
                for c in range(k):
                    w = joint[c] * inv
                    wr[i, c] *= w
                    wq[i, c] = 0.5 * w * (wq[i, c] - 1.0)
                    if c < k - 1:
                        weta[i, c] = w - member[c] * inv_norm

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


def _register_jax() -> None:
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
_register_jax()
