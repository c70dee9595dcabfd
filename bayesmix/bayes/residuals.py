"""School residuals of the PyMC model: their covariance factor, its order, and starts.

The residuals are non-centred (``u = z L'``) or, with a plan of
:mod:`bayesmix.bayes.centring`, have their leading outcome terms centred. The
Cholesky factor may be sampled in another order than the spec's
(:func:`residual_order`), and chains start near the ML solution.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from bayesmix.bayes.centring import (
    SchoolMeans,
    centred_school_effects,
    direct_variance_ratio,
    school_start,
)
from bayesmix.data.design import Design
from bayesmix.errors import SpecError
from bayesmix.model.params import Params
from bayesmix.model.priors import Prior


def noncentred_residuals(
    design: Design,
    priors: Mapping[str, Prior],
    init: Params | None,
    order: np.ndarray,
    init_z: np.ndarray | None = None,
) -> Any:
    """Non-centred school residuals u = z L' (cluster x rterm).

    ``order`` is that of the sampled Cholesky factor (:func:`residual_order`),
    which ``z``'s columns follow. With level-2 classes each school has one
    residual vector per level-2 class (between x cluster x rterm), see
    :func:`bayesmix.bayes.model._between_likelihood`.
    """
    spec = design.spec
    L = _residual_cholesky(design, priors, init, order)
    dims = ("cluster", "rterm") if spec.between_classes == 1 else ("between", "cluster", "rterm")
    z_dims = dims
    if not np.array_equal(order, np.arange(len(order))):
        pm.modelcontext(None).add_coord("zterm", [spec.random_effects[k] for k in order])
        z_dims = (*dims[:-1], "zterm")
    kw = {}
    if init_z is not None:
        kw["initval"] = init_z
    elif init is not None:
        start = _unidentified_residual_start(design, spec.between_classes)
        kw["initval"] = start[..., order]
    z = pm.Normal("z_u", 0.0, 1.0, dims=z_dims, **kw)
    return pm.Deterministic("u", pt.matmul(z, L.T), dims=dims)


def centred_residuals(
    design: Design,
    priors: Mapping[str, Prior],
    init: Params,
    plan: SchoolMeans,
    beta: Any,
    order: np.ndarray,
    generative: bool = False,
) -> Any:
    """School residuals with the outcome coefficients sampled centred (see
    :mod:`bayesmix.bayes.centring`), starting at their means at the ML start ``init``
    (a plan exists only with one); the membership residuals ``z_member`` in
    ``order`` (:func:`residual_order`, the centred terms first). ``generative``
    as in :func:`bayesmix.bayes.centring.centred_school_effects`."""
    r = len(plan.terms)
    L = _residual_cholesky(design, priors, init, order)
    jitter = _unidentified_residual_start(design, 1)[:, order]
    init_a = school_start(design, plan, np.asarray(init.beta, dtype=float), jitter[:, :r])
    return centred_school_effects(design, plan, beta, L, init_a, jitter[:, r:], generative)


_DETERMINED = 0.1
"""Share of a school residual's variance below which the residuals before it nearly
determine it (a correlation beyond 0.95 with one of them), see :func:`residual_order`."""


def residual_order(design: Design, init: Params | None, lead: int = 0) -> np.ndarray:
    """Order of the school residuals in the Cholesky factor NUTS samples.

    The spec's order, except for mixtures (one level of classes) with three
    or more residuals of unstructured covariance and ML estimates ``init``.
    Then, after the first ``lead`` (the centred ones, see
    :mod:`bayesmix.bayes.centring`), one at a time, the first residual in
    the spec's order of which those before it leave at least
    :data:`_DETERMINED` of the variance unexplained at the ML estimates,
    and of which the schools' data determine at least
    :data:`_DETERMINED` of the variance on their own
    (:func:`~bayesmix.bayes.centring.direct_variance_ratio`). Failing that,
    the first that the residuals before it leave undetermined; failing that,
    the one they leave most unexplained.

    Both rules keep out of the rows before the last a residual whose
    standardised school values the data leave free. A later row depends on
    that residual's and its own standardised values only through the
    length of their coefficients, and NUTS has to rotate every school's
    pair together to move along that circle. The data leave them free where
    the residuals before nearly determine the residual (the Cholesky
    diagonal is near 0), as on NELS-sized model B3 data (corr(u_1,
    u_female) -0.997 at the ML estimates), and where they say little about
    the residual itself, as about HSB's female slopes (own ratio 0.96). On
    both, the order (u_1, u_f, u_female) removes the slow rotation that had
    kept the largest R-hat above 1.01. The LKJ and SD priors give the same
    covariance density in any order, so the model is unchanged.
    """
    spec = design.spec
    r = len(spec.random_effects)
    if (
        init is None
        or spec.classes < 2
        or spec.between_classes > 1
        or r < 3
        or spec.covariance != "unstructured"
    ):
        return np.arange(r)
    chol = np.asarray(init.chol, dtype=float)
    sigma = chol @ chol.T
    # the data's own information is defined only off the rank-deficient boundary where
    # ML estimates can lie (HSB B3's covariance is), so correlations shrink by 1/1.1 for it
    shrunk = sigma + 0.1 * np.diag(np.diag(sigma)) + 1e-12 * np.eye(r)
    own = direct_variance_ratio(design, replace(init, chol=np.linalg.cholesky(shrunk)))
    order, rest = list(range(lead)), list(range(lead, r))

    def unexplained(k: int) -> float:
        if sigma[k, k] <= 0.0:
            return 0.0
        if not order:
            return 1.0
        c = sigma[order, k]
        return (
            float(sigma[k, k] - c @ np.linalg.pinv(sigma[np.ix_(order, order)]) @ c) / sigma[k, k]
        )

    while rest:
        shares = [unexplained(k) for k in rest]
        kept = [k for k, share in zip(rest, shares, strict=True) if share >= _DETERMINED]
        informed = [k for k in kept if own[k] <= 1.0 - _DETERMINED]
        pick = (informed or kept)[0] if kept else rest[int(np.argmax(shares))]
        order.append(pick)
        rest.remove(pick)
    return np.asarray(order)


def _residual_cholesky(
    design: Design, priors: Mapping[str, Prior], init: Params | None, order: np.ndarray
) -> Any:
    """Factor of the school residual covariance: SDs times an LKJ correlation factor,
    or diagonal SDs.

    An unstructured covariance is sampled as its SDs ``sd_u`` (with their
    priors) and the Cholesky factor ``chol_corr_u`` of its correlation
    matrix (LKJ(2)), whose product ``diag(sd_u) chol_corr_u`` is a Cholesky
    factor of the covariance: the prior of ``pm.LKJCholeskyCov`` with the
    same SD priors, so the same covariance density. Sampled apart from the
    correlations, an SD near 0 is one coordinate, where the packed factor of
    the covariance made it the length of a row of several, and NUTS mixed
    slowly along it (HSB B3's var(u_female), whose posterior SD exceeds its
    mean). The factor is sampled in ``order`` (:func:`residual_order`, which
    keeps the centred terms first), as ``sd_u_ordered`` and
    ``chol_corr_u_ordered`` when that is not the spec's, and its rows are
    put back in the spec's order. ``chol_u`` (with ``chol_u_stds`` and
    ``chol_u_corr``) is then the lower Cholesky factor in the spec's order,
    recorded with the draws.
    """
    spec = design.spec
    r = len(spec.random_effects)
    sd_priors = [priors[f"sd(u_{t})"] for t in spec.random_effects]
    scales = np.array([p.sigma for p in sd_priors])
    families = {p.family for p in sd_priors}
    if len(families) != 1:
        raise SpecError("priors of the random-effect SDs mix families; use one family.")
    nu = np.array([p.nu for p in sd_priors])
    init_chol = None if init is None else np.asarray(init.chol)
    unstructured = spec.covariance == "unstructured" and r > 1
    if not unstructured:
        order = np.arange(r)
    scales, nu = scales[order], nu[order]
    same = np.array_equal(order, np.arange(r))
    suffix = "" if same else "_ordered"
    kw: dict[str, Any] = {"dims": "rterm"} if same else {"shape": r}
    corr_kw: dict[str, Any] = {}
    if init_chol is not None:
        sigma = (init_chol @ init_chol.T)[np.ix_(order, order)]
        kw["initval"] = np.maximum(np.sqrt(np.diag(sigma)), 0.05 * scales)
        corr_kw["initval"] = _correlation_start(sigma)
    if sd_priors[0].family == "half_normal":
        sd_u = pm.HalfNormal(f"sd_u{suffix}", sigma=scales, **kw)
    else:
        sd_u = pm.HalfStudentT(f"sd_u{suffix}", nu=nu, sigma=scales, **kw)
    if not unstructured:
        return pt.diag(sd_u)
    corr = pm.LKJCorr(f"chol_corr_u{suffix}", n=r, eta=2.0, **corr_kw)
    L = (sd_u[:, None] * corr)[np.argsort(order), :]
    _record_spec_order_cholesky(L, r)
    return L


_CORRELATION_SHRINK = 0.01
"""Shrinkage of the ML correlations at the start when their Cholesky factor has a
diagonal below it (a correlation matrix on or near the boundary, rank-deficient)."""


def _correlation_start(sigma: np.ndarray) -> np.ndarray:
    """Cholesky factor of the correlations of the ML covariance ``sigma``, where chains start.

    A variance of 0 leaves its correlations at 0. At or near the boundary
    (HSB B3's estimate is rank-deficient) the correlations shrink by
    ``1 / (1 + s)``, ``s`` = :data:`_CORRELATION_SHRINK`, so that the factor
    is of full rank and its unconstrained value finite. An entry of exactly
    0, with ``z_u`` starting at 0, would have a gradient of exactly 0, where
    nutpie cannot start, so it starts at 1e-3, its row rescaled to length 1.
    """
    r = len(sigma)
    sd = np.sqrt(np.clip(np.diag(sigma), 0.0, None))
    positive = sd > 0.0
    safe = np.where(positive, sd, 1.0)
    corr = np.where(np.outer(positive, positive), sigma / np.outer(safe, safe), 0.0)
    np.fill_diagonal(corr, 1.0)
    try:
        factor = np.linalg.cholesky(corr)
        full_rank = bool(np.diag(factor).min() >= _CORRELATION_SHRINK)
    except np.linalg.LinAlgError:
        full_rank = False
    if not full_rank:
        shrunk = (corr + _CORRELATION_SHRINK * np.eye(r)) / (1.0 + _CORRELATION_SHRINK)
        factor = np.linalg.cholesky(shrunk)
    factor[np.tril(factor == 0.0, -1)] = 1e-3
    return factor / np.linalg.norm(factor, axis=1, keepdims=True)


def _record_spec_order_cholesky(factor: Any, r: int) -> None:
    """``chol_u``, ``chol_u_stds`` and ``chol_u_corr`` from a factor with rows in spec order.

    The lower Cholesky factor of ``factor factor'`` is the transpose of the
    R of ``factor' = QR`` with its rows' signs made positive: exact where a
    Cholesky factorisation of the product would fail at a variance near 0.
    """
    _, upper = pt.linalg.qr(pt.transpose(factor))
    signs = pt.where(pt.lt(pt.diagonal(upper), 0.0), -1.0, 1.0)
    chol = pt.transpose(upper * signs[:, None])
    rows, cols = np.tril_indices(r)
    pm.Deterministic("chol_u", chol[rows, cols])
    cov = pt.dot(factor, pt.transpose(factor))
    stds = pt.sqrt(pt.diagonal(cov))
    pm.Deterministic("chol_u_stds", stds)
    pm.Deterministic("chol_u_corr", cov / (stds[:, None] * stds[None, :]))


def _unidentified_residual_start(design: Design, between: int) -> np.ndarray:
    """Start of z_u at an ML start: 0, except 0.01 N(0, 1) where no row informs it.

    A residual the likelihood ignores (the female slope of an all-male school)
    would have a gradient of exactly 0 at 0, which nutpie rejects as a starting
    point; every other residual starts at its prior mean, as the ML start does.
    """
    n_clusters, r = len(design.cluster_ids), len(design.spec.random_effects)
    # residuals beyond R's columns enter the class membership of every student
    informed = np.ones((n_clusters, r))
    outcome = design.R.shape[1]
    informed[:, :outcome] = 0.0
    np.add.at(informed[:, :outcome], design.cluster, design.R != 0)
    shape = (n_clusters, r) if between == 1 else (between, n_clusters, r)
    jitter = 0.01 * np.random.default_rng(0).standard_normal(shape)
    return np.where(informed == 0, jitter, 0.0)


def between_residual_start(
    design: Design, estimates: np.ndarray, between_probabilities: np.ndarray
) -> np.ndarray:
    """Posterior means of each school's standardised residuals given each level-2 class.

    A school's residual vector for a class it almost surely does not belong
    to has a likelihood gradient of exactly 0 at z = 0, which nutpie rejects
    as an initial point; these means (from the adaptive quadrature at the
    ML ``estimates``, natural values on ``design``'s scale) are where each
    vector's posterior is, shape (L, J, r). ``between_probabilities`` (J, L)
    are the schools' level-2 class probabilities at the estimates.
    """
    from bayesmix.density.quadrature import adapted_quadrature

    quad = adapted_quadrature(design, design.layout.to_theta(estimates), iterations=2)
    centre = np.concatenate(
        [c[: chunk.n_clusters] for c, chunk in zip(quad.centre, quad.chunks, strict=True)]
    )
    # a vector of a class the school is unlikely to be in starts near the prior
    # mean: at its conditional posterior mean it would make that class explain
    # the school's data as well as it can, and warm-up would start from schools
    # that look ambiguous
    share = np.clip(between_probabilities, 0.05, 1.0)[:, :, None]
    z = np.transpose(share * centre, (1, 0, 2))
    # nutpie refuses a start where any gradient component is exactly 0, as it is
    # for a residual the likelihood ignores (an empty class) at its prior mean 0
    return np.ascontiguousarray(np.where(z == 0.0, 1e-3, z))
