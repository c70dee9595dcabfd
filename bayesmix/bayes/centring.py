"""Hierarchical centring of a mixture's school coefficients for NUTS.

In a two-level mixture the school residual ``u_j`` of the intercept is often well
informed by the school's students, while its mean, the intercept of the
reference class plus the level-2 regression on school covariates (``w``,
``pracad``...), is informed only through the residuals. Sampled as
``u_j = L z_j`` (non-centred), the level-2 coefficients and all the ``z_j``
move together along a ridge that NUTS crosses slowly: on the Fig 3 data the
coefficient of ``w`` mixes many times worse than when the intercepts are
centred. Here such a school coefficient ``a_j = m_j + u_j`` is sampled
directly, from N(m_j, Sigma), with ``m_j`` the reference class's coefficient
plus the level-2 regression; the other classes' coefficients of that term
enter the likelihood as offsets from the reference class. Terms that few
students inform (a slope with a small variance) and the membership residuals
stay non-centred, conditional on the centred ones, since centring them would
make a funnel. All these maps are shifts or shears, so the posterior is
unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from bayesmix.bayes.constrained import constrained_effects
from bayesmix.bayes.generative import (
    forward_substitution,
    prior_logp,
    reference_offsets,
    school_coefficients,
    school_coefficients_logp,
)
from bayesmix.data.design import Design
from bayesmix.model.formula import term_parts
from bayesmix.model.params import Params
from bayesmix.model.priors import Prior
from bayesmix.model.spec import fixed_effect_name


@dataclass(frozen=True)
class SchoolMeans:
    """Which fixed effects move into the means of the school coefficients.

    Attributes
    ----------
    terms : tuple of int
        For each outcome random term (``spec.random`` order), the index of
        its own fixed effect in ``spec.fixed_names``.
    level2 : tuple of (int, int, ndarray)
        ``(k, j, w)``: fixed effect ``j`` is the class-invariant level-2
        effect of random term ``k`` on the school covariate values ``w``
        (one per cluster).
    """

    terms: tuple[int, ...]
    level2: tuple[tuple[int, int, np.ndarray], ...]

    @property
    def absorbed(self) -> frozenset[int]:
        """Fixed-effect columns whose effect the school means carry."""
        return frozenset(self.terms) | frozenset(j for _, j, _ in self.level2)


def school_means_plan(design: Design, init: Params | None) -> SchoolMeans | None:
    """The centring plan of a one-level-class mixture, from its ML estimates.

    An outcome term's school coefficients are sampled centred when the data
    inform them more than the school distribution does: at the ML estimates,
    the median over schools of their posterior variance (from the adaptive
    quadrature, which accounts for the students' class uncertainty) is
    below half the prior variance ``var(u_k)``. Otherwise (a small slope
    variance, few students, classes that leave a school's level in doubt)
    centring would make a funnel, and they stay non-centred. Terms are taken
    in ``spec.random`` order while they qualify, so that the centred ones
    lead the Cholesky factor. Returns None (all non-centred) without ML
    estimates, without level-1 mixture classes, with level-2 classes, or when
    no term qualifies.

    A level-2 effect of a centred term moves into the school mean when it is
    shared by the classes and its design column is exactly the term's column
    times the school covariate. Effects with constraints
    (:mod:`bayesmix.bayes.constrained`) stay out of the school means.
    """
    spec = design.spec
    if init is None or spec.classes < 2 or spec.between_classes > 1 or not spec.random:
        return None
    ratio = posterior_variance_ratio(design, init)
    constrained = constrained_effects(spec)
    n_centred = 0
    while (
        n_centred < len(spec.random)
        and ratio[n_centred] < 0.5
        and spec.random[n_centred] not in constrained
    ):
        n_centred += 1
    if n_centred == 0:
        return None
    names = list(spec.fixed_names)
    terms = tuple(names.index(t) for t in spec.random[:n_centred])
    level2 = []
    for k, term in enumerate(spec.random[:n_centred]):
        for covariate in spec.level2_map.get(term, ()):
            name = fixed_effect_name(term, covariate)
            if name in spec.class_varying or name in constrained:
                continue
            j = names.index(name)
            values = np.ones(len(design.cluster_ids))
            for part in term_parts(covariate):
                values = values * design.schools[part].to_numpy(dtype=float)
            if np.allclose(design.F[:, j], design.R[:, k] * values[design.cluster]):
                level2.append((k, j, values))
    return SchoolMeans(terms=terms, level2=tuple(level2))


def school_posterior_covariance(design: Design, init: Params) -> np.ndarray:
    """Each school's posterior covariance of its standardised residuals at ``init``.

    With ``u = L v`` (``L`` the Cholesky factor at ``init``) the ``v`` are a
    priori independent N(0, 1); the adaptive quadrature's node scales ``S``
    (which account for the students' class uncertainty) give the posterior
    covariance ``S S'`` of each school's ``v``, shape (cluster, r, r).
    """
    from bayesmix.density.quadrature import adapted_quadrature

    theta = design.layout.pack(init, natural=False)
    quad = adapted_quadrature(design, theta, iterations=2)
    return np.concatenate(
        [
            np.einsum("jab,jcb->jac", scale[: chunk.n_clusters], scale[: chunk.n_clusters])
            for scale, chunk in zip(quad.scale, quad.chunks, strict=True)
        ]
    )


def posterior_variance_ratio(design: Design, init: Params) -> np.ndarray:
    """Median over schools of the posterior variance of each standardised school residual.

    ``v_1`` is the first residual on its own scale, each later ``v_k`` the
    part of ``u_k`` the earlier residuals leave undetermined (see
    :func:`school_posterior_covariance`). The diagonal of their posterior
    covariance is then the ratio of posterior to prior variance of what the
    data can inform, free of the outcome's units. (Dividing by the prior
    variance of ``u_k`` instead would make the decision depend on those
    units: on Fig 3 data with y x 0.44 the intercepts would no longer be
    centred, and they would mix much worse.)
    """
    posterior = school_posterior_covariance(design, init)
    return np.median(np.diagonal(posterior, axis1=1, axis2=2), axis=0)


def direct_variance_ratio(design: Design, init: Params) -> np.ndarray:
    """How much the schools' data inform each residual directly: median over schools of
    ``1 / (1 + H_kk var(u_k))``.

    ``H`` is a school's data information about its residuals ``u`` at
    ``init``, ``L^-T (P^-1 - I) L^-1`` with ``P`` the posterior covariance of
    the standardised residuals (:func:`school_posterior_covariance`) and
    ``L`` the Cholesky factor, which must be of full rank. The ratio is what
    a residual's posterior variance would be, over its prior variance, if it
    were the school's only residual: near 0 when the students pin it down, 1
    when they say nothing about it. Unlike the posterior variance of ``u_k``
    itself, it does not borrow what the data say about a residual it is
    correlated with. Free of the outcome's units.
    """
    posterior = school_posterior_covariance(design, init)
    L = np.asarray(init.chol, dtype=float)
    r = L.shape[0]
    inverse = np.linalg.inv(L)
    information = np.linalg.inv(posterior) - np.eye(r)
    h = np.einsum("ak,jab,bk->jk", inverse, information, inverse)
    prior = np.sum(L**2, axis=1)
    return np.median(1.0 / (1.0 + np.maximum(h, 0.0) * prior), axis=0)


def reference_offset_effect(
    name: str,
    plist: list[Prior],
    ordered: bool,
    start: np.ndarray,
    base_rv: Any | None,
) -> Any:
    """A class-varying fixed effect as its last class's value plus offsets.

    ``base_rv`` is the last class's coefficient (a free variable with its
    prior); the other classes are ``base + d_c``. When the effect labels
    the classes (descending), ``d_1 > ... > d_{K-1} > 0`` are built from
    free log gaps. The priors of classes 1..K-1 are added as a potential on
    the implied coefficients; the map is a shear, so no Jacobian beyond the
    log gaps' is needed. With ``base_rv`` None the same coordinates and
    density, ``b_<name>_last`` among them, are free variables that can be
    drawn forward (:func:`bayesmix.bayes.generative.reference_offsets`).
    Recorded as the deterministic ``b_<name>``.
    """
    if base_rv is None:
        base_rv, free = reference_offsets(name, plist, ordered, start)
        offsets = pt.cumsum(pt.exp(free)[::-1])[::-1] if ordered else free
        return pm.Deterministic(
            f"b_{name}", pt.concatenate([base_rv + offsets, pt.stack([base_rv])]), dims="class"
        )
    K = len(plist)
    offsets0 = start[:-1] - start[-1]
    if ordered:
        gaps0 = offsets0 - np.append(offsets0[1:], 0.0)
        log_gap = pm.Flat(f"b_{name}_log_gap", shape=K - 1, initval=np.log(np.maximum(gaps0, 1e-6)))
        offsets = pt.cumsum(pt.exp(log_gap)[::-1])[::-1]
        pm.Potential(f"jacobian_b_{name}", pt.sum(log_gap))
    else:
        offsets = pm.Flat(f"b_{name}_offset", shape=K - 1, initval=offsets0)
    value = pm.Deterministic(
        f"b_{name}", pt.concatenate([base_rv + offsets, pt.stack([base_rv])]), dims="class"
    )
    pm.Potential(f"prior_b_{name}", prior_logp(name, plist[:-1], value[:-1]))
    return value


def centred_school_effects(
    design: Design,
    plan: SchoolMeans,
    beta: Any,
    L: Any,
    init_a: np.ndarray,
    init_z: np.ndarray,
    generative: bool = False,
) -> Any:
    """School residuals ``u`` (cluster x rterm) with the leading outcome terms centred.

    Parameters
    ----------
    design : Design
    plan : SchoolMeans
    beta : tensor, shape (K, P)
        Fixed effects (rows by class); the last class's row gives the means.
    L : tensor, shape (r_all, r_all)
        Lower Cholesky factor of the residual covariance (``spec.random_effects``
        order, the centred terms first).
    init_a : ndarray
        Start of the school coefficients ``b_school`` (cluster x centred term).
    init_z : ndarray
        Start of the other residuals, standardised, ``z_member``.
    generative : bool
        Write ``b_school`` as a free variable that can be drawn forward
        (:func:`bayesmix.bayes.generative.school_coefficients`) rather than a
        flat variable with its density as a potential.

    Returns
    -------
    tensor
        ``u`` with ``u[:, :r] = a - m`` for the r centred terms and the others
        ``u[:, r:] = z_o L_mo' + z_member L_mm'``, ``z_o = L_oo^-1 (a - m)``.
    """
    spec = design.spec
    r, r_all = len(plan.terms), len(spec.random_effects)
    J = len(design.cluster_ids)
    ref = beta[-1]
    columns = []
    for k, j in enumerate(plan.terms):
        mean = pt.zeros(J) + ref[j]
        for k2, j2, values in plan.level2:
            if k2 == k:
                # shared data, not a constant: the compiled code is then the same for
                # every data set of the design's shapes
                mean = mean + ref[j2] * pm.Data(f"school_level2_{k2}_{j2}", values)
        columns.append(mean)
    m = pt.stack(columns, axis=1)
    if generative:
        a = school_coefficients(m, L, r, J, init_a)
    else:
        a = pm.Flat("b_school", dims=("cluster", "oterm"), initval=init_a)
        # a_j ~ N(m_j, L_oo L_oo'): the density of z_o and the Jacobian of a_j -> z_oj
        pm.Potential("prior_b_school", school_coefficients_logp(a, m, L, r, J))
    resid = a - m
    z_o = forward_substitution(L, resid, r)
    if r_all == r:
        return pm.Deterministic("u", resid, dims=("cluster", "rterm"))
    z_m = pm.Normal("z_member", 0.0, 1.0, dims=("cluster", "mrterm"), initval=init_z)
    member = pt.dot(z_o, pt.transpose(L[r:, :r])) + pt.dot(z_m, pt.transpose(L[r:, r:]))
    return pm.Deterministic("u", pt.concatenate([resid, member], axis=1), dims=("cluster", "rterm"))


def school_start(
    design: Design, plan: SchoolMeans, beta0: np.ndarray, jitter: np.ndarray
) -> np.ndarray:
    """Start of ``b_school`` at fixed effects ``beta0`` (K, P): the means plus ``jitter``.

    ``jitter`` (cluster x outcome term) is nonzero only where no student
    informs a coefficient, whose gradient would otherwise be exactly 0.
    """
    ref = beta0[-1]
    J = len(design.cluster_ids)
    start = np.tile(ref[list(plan.terms)], (J, 1)).astype(float)
    for k, j, values in plan.level2:
        start[:, k] += ref[j] * values
    return start + jitter
