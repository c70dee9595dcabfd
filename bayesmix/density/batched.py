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

from bayesmix.density.primitives import (
    log_softmax_ref,
    log_softmax_ref_binary,
    logsumexp,
    normal_logpdf,
)


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
        (K, D, n), ``P(C_i = c | y_i, theta, u)``: classes first, so that the
        sums over them run over whole arrays rather than along a short axis.
    """
    K = beta.shape[1]
    joint = np.stack(
        [normal_logpdf(y - (beta[:, k] @ F.T + offset), lsig[:, k] @ V.T, np) for k in range(K)]
    )
    if K > 1:
        eta = np.stack([gamma[:, c] @ Z.T for c in range(K - 1)])
        if member_offset is not None:
            eta = eta + np.moveaxis(member_offset, -1, 0)
        log_prob = (
            log_softmax_ref_binary(eta, np, axis=0) if K == 2 else log_softmax_ref(eta, np, axis=0)
        )
        joint = joint + log_prob
    loglik = logsumexp(joint, axis=0)
    return loglik, np.exp(joint - loglik)
