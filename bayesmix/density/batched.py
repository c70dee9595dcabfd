"""The students' class log joint densities for many posterior draws at once, in numpy.

What :func:`bayesmix.density.compiled.pointwise` computes for one draw,
``log p(y_i | theta, u_j)`` with the classes summed out and the posterior
class probabilities, here for a block of draws in one pass of array
operations: after sampling, a per-draw call costs more in call overhead than
in arithmetic. Built from the same primitives as the graphs
(:mod:`bayesmix.density.primitives`).
"""

from __future__ import annotations

import numpy as np
from scipy.special import logsumexp

from bayesmix.density.primitives import log_softmax_ref, log_softmax_ref_binary, normal_logpdf


def pointwise_draws(
    beta: np.ndarray,
    lsig: np.ndarray,
    gamma: np.ndarray,
    offset: np.ndarray,
    member_offset: np.ndarray | None,
    y: np.ndarray,
    F: np.ndarray,
    Z: np.ndarray,
    V: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Log-likelihood of each student and posterior class probabilities, per draw.

    Parameters
    ----------
    beta, lsig, gamma : ndarray
        Draws (D, K, p), (D, K, v) and (D, K-1, m) of the fixed effects, log
        residual variance coefficients and membership logits.
    offset : ndarray
        ``R u`` of each draw, (D, n).
    member_offset : ndarray or None
        School effects on the membership logits, (D, n, K-1), or None.
    y, F, Z, V : ndarray
        Outcome (n,) and the fixed, membership and residual designs.

    Returns
    -------
    loglik : ndarray
        (D, n).
    posterior : ndarray
        (D, n, K), ``P(C_i = c | y_i, theta, u)``.
    """
    K = beta.shape[1]
    mu = np.einsum("np,dkp->dnk", F, beta) + offset[:, :, None]
    log_var = np.einsum("nv,dkv->dnk", V, lsig)
    joint = normal_logpdf(y[None, :, None] - mu, log_var, np)
    if K > 1:
        eta = np.einsum("nm,dcm->dnc", Z, gamma)
        if member_offset is not None:
            eta = eta + member_offset
        log_prob = log_softmax_ref_binary(eta, np) if K == 2 else log_softmax_ref(eta, np)
        joint = joint + log_prob
    loglik = logsumexp(joint, axis=-1)
    return loglik, np.exp(joint - loglik[..., None])
