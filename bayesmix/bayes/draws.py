"""Posterior draws after sampling: structured and named, in the user's units, pointwise.

:func:`structured_draws` reads the sampler's variables (the DataTree's
``sample_space`` group, see :mod:`bayesmix.bayes.datatree`) into
:class:`~bayesmix.model.params.Params`, :func:`named_draws` turns those into
the paper's parameters; one pass over the draws (:class:`Pointwise`) gives
the pointwise log-likelihood for LOO, the posterior class probabilities per
chain and the class shares per draw, and chains are checked for disagreeing
class labels (:func:`check_labels`).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import xarray as xr
from scipy.optimize import linear_sum_assignment
from scipy.special import logsumexp

from bayesmix.bayes.coefficients import fixed_rv_name
from bayesmix.data.design import Design
from bayesmix.density.batched import pointwise_draws
from bayesmix.density.primitives import log_softmax_ref, normal_logpdf
from bayesmix.model.constraints import sampled_names
from bayesmix.model.params import Params
from bayesmix.results.bayes import LabelCheck

_BLOCK_VALUES = 250_000
"""Entries of a (draws x students x classes) array computed at once by the pointwise pass:
small enough to stay in cache."""
_THREADS = min(4, os.cpu_count() or 1)
"""Blocks of draws evaluated at once."""


def structured_draws(posterior: xr.Dataset, design: Design) -> Params:
    """Stack posterior draws into :class:`Params` arrays with leading (chain, draw) dims."""
    spec, lay = design.spec, design.layout
    K, L = spec.classes, spec.between_classes
    columns = []
    for name in spec.fixed_names:
        values = posterior[fixed_rv_name(name)].values
        cv, bv = lay._varies(name)
        if cv and bv:
            values = values.reshape(*values.shape[:2], L * K)
        elif cv:
            values = np.tile(values, (1, 1, L))
        elif bv:
            values = np.repeat(values, K, axis=-1)
        else:
            values = np.repeat(values[..., None], K * L, axis=-1)
        columns.append(values)
    beta = np.stack(columns, axis=-1)
    lead = beta.shape[:2]
    by_class = lay.residual_by_class
    if spec.residual_covariates:
        lsig = posterior["lsig"].values
        if not by_class:
            lsig = np.repeat(lsig[:, :, None, :], K, axis=2)
    elif spec.residual_groups:
        lsig = 2 * np.log(posterior["sigma"].values)
        if not by_class:
            lsig = np.repeat(lsig[:, :, None, :], K, axis=2)
    elif by_class:
        lsig = 2 * np.log(posterior["sigma"].values)[..., None]
    else:
        lsig = np.repeat(2 * np.log(posterior["sigma"].values)[..., None, None], K, axis=2)
    gamma = posterior["gamma"].values if K > 1 else np.zeros((*lead, 0, len(spec.membership)))
    r = len(spec.random_effects)
    if r == 0:
        chol = np.zeros((*lead, 0, 0))
    elif "chol_u" in posterior:
        packed = posterior["chol_u"].values
        chol = np.zeros((*lead, r, r))
        rows, cols = np.tril_indices(r)
        chol[..., rows, cols] = packed
    else:
        sd = posterior["sd_u"].values
        chol = np.zeros((*lead, r, r))
        for i in range(r):
            chol[..., i, i] = sd[..., i]
    if spec.membership_random == "independent":
        load = np.broadcast_to(np.eye(K - 1), (*lead, K - 1, K - 1))
    elif spec.membership_random == "factor":
        lam = posterior["lambda"].values if K > 2 else np.zeros((*lead, 0))
        load = np.concatenate([np.ones((*lead, 1)), lam], axis=-1)[..., None]
    else:
        load = np.zeros((*lead, max(K - 1, 0), 0))
    if L > 1:
        delta = posterior["delta"].values
    else:
        delta = np.zeros((*lead, 0, len(spec.between_membership)))
    return Params(beta=beta, lsig=lsig, gamma=gamma, chol=chol, load=load, delta=delta)


def named_draws(draws: Params, design: Design) -> dict[str, np.ndarray]:
    """Posterior draws of every named natural parameter, each (chain, draw), but those the
    spec's constraints fix (:func:`~bayesmix.model.constraints.sampled_names`)."""
    lay = design.layout
    n_chain, n_draw = np.asarray(draws.beta).shape[:2]
    out = np.empty((n_chain, n_draw, lay.n_params))
    for ch in range(n_chain):
        for d in range(n_draw):
            out[ch, d] = lay.pack(
                Params(
                    beta=draws.beta[ch, d],
                    lsig=draws.lsig[ch, d],
                    gamma=draws.gamma[ch, d],
                    chol=draws.chol[ch, d],
                    load=draws.load[ch, d],
                    delta=draws.delta[ch, d],
                ),
                natural=True,
            )
    kept = set(sampled_names(design.spec.constraints, lay.names))
    return {name: out[:, :, k] for k, name in enumerate(lay.names) if name in kept}


@dataclass(frozen=True)
class Pointwise:
    """What one pass over the posterior draws computes for each student or school.

    Attributes
    ----------
    loglik : ndarray
        Log-likelihood per draw: (chain, draw, n) per student, or for level-2
        classes (chain, draw, J) per school, D_j marginalised.
    chain_post : ndarray, shape (chain, n, K)
        Per chain, the mean over draws of P(C_i = c | y, theta, u).
    class_share : ndarray, shape (chain, draw, K)
        Per draw, the mean over students of P(C_i = c | y, theta, u): the
        share of the students in each class. Its mean over draws is the mean
        of :attr:`chain_post` over students and chains.
    chain_between : ndarray or None
        Per chain, the mean over draws of P(D_j = d | y_j, theta, u) (chain, J, L).
    between_share : ndarray or None
        Per draw, the mean over schools of P(D_j = d | y_j, theta, u) (chain, draw, L).
    """

    loglik: np.ndarray
    chain_post: np.ndarray
    class_share: np.ndarray
    chain_between: np.ndarray | None = None
    between_share: np.ndarray | None = None


def _pointwise_draws(draws: Params, design: Design, u: np.ndarray | None) -> Pointwise:
    """Per-student log-likelihood, class probabilities and class shares of every draw,
    computed for blocks of draws at once, in threads (numpy releases the GIL in the
    array work)."""
    spec = design.spec
    n_chain, n_draw = draws.beta.shape[:2]
    n, K, r = design.n_obs, spec.classes, len(spec.random)
    block = max(1, _BLOCK_VALUES // (n * max(K, r + 1)))

    def evaluate(ch: int, lo: int) -> tuple[np.ndarray, np.ndarray]:
        hi = min(n_draw, lo + block)
        offset, member = np.zeros((hi - lo, n)), None
        if u is not None:
            ui = u[ch, lo:hi][:, design.cluster]
            for k in range(r):
                offset += design.R[:, k] * ui[:, :, k]
            if spec.membership_random != "none":
                member = np.einsum("dis,dcs->dic", ui[:, :, r:], draws.load[ch, lo:hi])
        return pointwise_draws(
            np.asarray(draws.beta[ch, lo:hi], dtype=float),
            np.asarray(draws.lsig[ch, lo:hi], dtype=float),
            np.asarray(draws.gamma[ch, lo:hi], dtype=float),
            offset,
            member,
            design.y,
            design.F,
            design.Z,
            design.V,
        )

    tasks = [(ch, lo) for ch in range(n_chain) for lo in range(0, n_draw, block)]
    loglik = np.empty((n_chain, n_draw, n))
    post = np.zeros((n_chain, n, K))
    share = np.empty((n_chain, n_draw, K))
    with ThreadPoolExecutor(_THREADS, thread_name_prefix="bayesmix-pointwise") as pool:
        results = pool.map(evaluate, [ch for ch, _ in tasks], [lo for _, lo in tasks])
        for (ch, lo), (ll, pp) in zip(tasks, results, strict=True):
            hi = lo + ll.shape[0]
            loglik[ch, lo:hi] = ll
            post[ch] += pp.sum(axis=1).T
            share[ch, lo:hi] = pp.mean(axis=2).T
    post /= n_draw
    return Pointwise(loglik=loglik, chain_post=post, class_share=share)


def _between_pointwise_draws(draws: Params, design: Design, u: np.ndarray | None) -> Pointwise:
    """Model C, per draw and conditional on the school residuals.

    ``u`` (chain, draw, L, J, r) holds each school's residuals per level-2
    class (see :func:`bayesmix.bayes.model._between_likelihood`). Returns the school
    log-likelihoods (chain, draw, J) with D_j marginalised, per chain the
    mean P(C_ij = c | y_j) (chain, n, K) and P(D_j = d | y_j) (chain, J, L),
    and per draw their means over students and over schools.
    """
    spec = design.spec
    K, L, r = spec.classes, spec.between_classes, len(spec.random)
    n_chain, n_draw = draws.beta.shape[:2]
    J, n = len(design.cluster_ids), design.n_obs
    loglik = np.empty((n_chain, n_draw, J))
    post = np.zeros((n_chain, n, K))
    post_d = np.zeros((n_chain, J, L))
    share = np.empty((n_chain, n_draw, K))
    share_d = np.empty((n_chain, n_draw, L))
    starts = design.bounds[:-1]
    offset = np.zeros((n, L))
    member = np.zeros((n, L, K - 1))
    for ch in range(n_chain):
        for d in range(n_draw):
            if u is not None:
                # one residual vector per level-2 class: (L, n, r)
                ui = u[ch, d][:, design.cluster]
                offset = np.einsum("ir,lir->il", design.R, ui[:, :, :r])
                if spec.membership_random != "none":
                    member = np.einsum("lim,km->ilk", ui[:, :, r:], np.asarray(draws.load[ch, d]))
            logs2 = design.V @ draws.lsig[ch, d].T
            logw = log_softmax_ref((design.Z @ draws.gamma[ch, d].T)[:, None, :] + member, np)
            fitted = (design.F @ draws.beta[ch, d].T).reshape(n, L, K) + offset[:, :, None]
            resid = design.y[:, None, None] - fitted
            joint = logw + normal_logpdf(resid, logs2[:, None, :], np)
            per_obs = logsumexp(joint, axis=2)
            a = np.add.reduceat(per_obs, starts, axis=0) + log_softmax_ref(
                design.W @ draws.delta[ch, d].T, np
            )
            total = logsumexp(a, axis=1)
            weight = np.exp(a - total[:, None])
            loglik[ch, d] = total
            post_d[ch] += weight
            within = np.exp(joint - per_obs[:, :, None])
            probs = np.einsum("id,idk->ik", weight[design.cluster], within)
            post[ch] += probs
            share[ch, d] = np.mean(probs, axis=0)
            share_d[ch, d] = np.mean(weight, axis=0)
    return Pointwise(
        loglik=loglik,
        chain_post=post / n_draw,
        class_share=share,
        chain_between=post_d / n_draw,
        between_share=share_d,
    )


def check_labels(chain_post: np.ndarray) -> LabelCheck:
    """Do all chains agree with chain 1 on which class is which?

    For each chain the mean posterior class probabilities of the
    observations are matched to chain 1's by maximising their overlap; a
    matching other than the identity means the chains label classes
    differently (label switching between chains).
    """
    n_chain, _, K = chain_post.shape
    perms: list[tuple[int, ...]] = []
    agreement: list[float] = []
    for ch in range(n_chain):
        overlap = chain_post[0].T @ chain_post[ch] / chain_post.shape[1]
        rows, cols = linear_sum_assignment(-overlap)
        perm = tuple(int(c) for c in cols[np.argsort(rows)])
        perms.append(perm)
        agreement.append(float(overlap[rows, cols].sum()))
    switched = any(p != tuple(range(K)) for p in perms)
    return LabelCheck(switched=switched, permutations=tuple(perms), agreement=tuple(agreement))
