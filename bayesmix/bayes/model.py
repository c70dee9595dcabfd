"""The PyMC model: the likelihood of :mod:`bayesmix.density.likelihood` on the free variables.

Class indicators are marginalised (log-sum-exp) so that NUTS sees a smooth
density; classes are labelled by a descending order constraint on the
``order_classes_by`` coefficient (class 1 highest, as in the ML labelling).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from bayesmix.bayes.centring import SchoolMeans, school_means_plan
from bayesmix.bayes.coefficients import (
    coef_rv,
    constrained_effect_rows,
    fixed_effect_rows,
    loadings,
    membership_coefficients,
    mixture_fixed_effects,
    residual_rvs,
    whitened_fixed_effects,
)
from bayesmix.bayes.constrained import EffectTies, Ties
from bayesmix.bayes.generative import UserUnits, observed_outcome, observed_school_outcome
from bayesmix.bayes.residuals import centred_residuals, noncentred_residuals, residual_order
from bayesmix.data.design import Design
from bayesmix.density.fused import normal_mixture_logp
from bayesmix.density.likelihood import (
    linear_predictor,
    log_class_probs,
    membership_logprob,
    mixture_logp,
    residual_variance,
)
from bayesmix.density.primitives import (
    log_softmax_ref,
    log_softmax_ref_clipped,
    normal_logpdf,
    segment_sum,
)
from bayesmix.model.params import Params, between_label, class_label
from bayesmix.model.priors import Prior


def sampling_model(
    design: Design,
    priors: Mapping[str, Prior],
    init: Params | None = None,
    init_z: np.ndarray | None = None,
    *,
    user_units: UserUnits | None = None,
    shared_outcome: bool = False,
    coordinates: Params | None = None,
    ties: Ties | None = None,
) -> pm.Model:
    """The PyMC model of a spec on a (standardised) design, in the coordinates NUTS samples.

    Parameters
    ----------
    design : Design
    priors : mapping
        Complete priors, see :func:`bayesmix.model.priors.resolve_priors`.
    init : Params, optional
        Initial values (e.g. the ML estimates). They also choose the
        coordinates: which school coefficients are centred
        (:func:`bayesmix.bayes.centring.school_means_plan`) and the order of
        the residuals' Cholesky factor (:func:`residual_order`).
    init_z : ndarray, optional
        Initial standardised school residuals ``z_u``.
    user_units : UserUnits, optional
        The generative form that :func:`bayesmix.build_model` builds on:
        the same free variables, coordinates and density, but every
        coordinate is a distribution PyMC can draw forward (no flat
        variables, no potentials, see :mod:`bayesmix.bayes.generative`),
        and ``y`` is observed in the user's units (``user_units.y``, of
        which ``design.y`` is the standardisation). Its log density is then
        this model's without it minus ``n log s_y``, the Jacobian of the
        outcome's standardisation.
    shared_outcome : bool
        Observe ``y`` through the shared data ``y_obs``, so that one compiled
        model samples other outcomes on the same design (nutpie's
        ``with_data(y_obs=...)``), as :func:`bayesmix.sbc` does. Model C
        always does.
    coordinates : Params, optional
        Estimates that choose the coordinates in place of ``init``, which then
        gives the initial values alone: the model of another outcome on the
        same design, started at its own estimates, keeps the free variables
        (and so the compiled log density) of the model built at these.
    ties : Ties, optional
        The spec's constraints on the standardised scale
        (:func:`bayesmix.bayes.constrained.model_ties`): fixed values are
        constants, equal ones one free variable.

    Returns
    -------
    pymc.Model
        Free variables ``b_<effect>`` (dims ``class`` when class-varying);
        the residual variance as ``sigma`` (SD; dims ``class`` or ``group``)
        or ``lsig`` (log-linear coefficients, model 1b); the school
        residuals as ``z_u`` (standard normal, dims ``cluster`` x ``rterm``)
        with their SDs ``sd_u`` and, for an unstructured covariance, the
        Cholesky factor ``chol_corr_u`` of their correlations (LKJ; both
        sampled as ``..._ordered`` in another order where
        :func:`residual_order` says so), the covariance's Cholesky factor
        recorded as ``chol_u``,
        and ``u`` = z_u L'; membership logits ``gamma`` (dims ``logit`` x
        ``mterm``); observed ``y`` with the class-marginal density of
        :func:`bayesmix.density.likelihood.mixture_logp` (for mixtures with one
        residual variance per class, computed with its gradient in one pass
        by :class:`bayesmix.density.fused.NormalMixtureLogp`). With level-2 classes
        (model C) the effects varying over them have dims ``between`` (x
        ``class``), their regression is ``delta`` (dims ``school_logit`` x
        ``bterm``), and the likelihood is the potential ``y_school`` (one
        term per school, D_j marginalised).

        These are the sampler's coordinates, on the standardised scale of
        :mod:`bayesmix.data.standardise`: after sampling, :func:`bayesmix.fit_bayes`
        keeps them in the DataTree's ``sample_space`` group and writes the
        parameters under their paper names, in the user's units, to
        ``posterior`` (see :mod:`bayesmix.bayes.datatree`).
    """
    generative = user_units is not None
    chooser = init if coordinates is None else coordinates
    plan = school_means_plan(design, chooser)
    n_centred = 0 if plan is None else len(plan.terms)
    order = residual_order(design, chooser, n_centred)
    with pm.Model(coords=_coords(design, plan, order)) as model:
        ties = ties or Ties()
        effects = _fixed_effects(design, priors, init, plan, generative, ties.effects)
        beta = pt.stack(effects, axis=1)
        lsig = residual_rvs(design, priors, init, ties.residual)
        if design.spec.classes > 1:
            gamma = membership_coefficients(design, priors, init, ties.membership)
        else:
            gamma = pt.zeros((0, len(design.spec.membership)))
        Z = pm.Data("Z", design.Z)
        V = pm.Data("V", design.V)
        coefficients = _Coefficients(beta=beta, lsig=lsig, gamma=gamma)
        if design.spec.between_classes > 1:
            F = pm.Data("F", design.F)
            _between_likelihood(
                design, priors, init, init_z, F, Z, V, beta, lsig, gamma, user_units
            )
        else:
            observed = pm.Data("y_obs", design.y) if shared_outcome else design.y
            _observed_y(
                design, priors, init, init_z, plan, order, coefficients, Z, V, user_units, observed
            )
    return model


@dataclass(frozen=True)
class _Coefficients:
    """The model's coefficient tensors: ``beta`` (L K, P), ``lsig`` (K, v), ``gamma`` (K-1, m)."""

    beta: Any
    lsig: Any
    gamma: Any


def _coords(design: Design, plan: SchoolMeans | None, order: np.ndarray) -> dict[str, list[Any]]:
    """The model's named dimensions (see :func:`sampling_model`)."""
    spec, lay = design.spec, design.layout
    K = spec.classes
    classes = [class_label(c) for c in range(K)]
    coords: dict[str, list[Any]] = {"class": classes, "obs": list(range(design.n_obs))}
    if K > 1:
        coords["logit"] = [f"C#{c + 1}" for c in range(K - 1)]
        coords["mterm"] = list(spec.membership)
    if spec.random_effects:
        coords["cluster"] = [str(c) for c in design.cluster_ids]
        coords["rterm"] = list(spec.random_effects)
    if spec.residual_groups:
        coords["group"] = [str(g) for g in lay.group_levels]
    if spec.residual_covariates:
        coords["lterm"] = ["1", *spec.residual_covariates]
    if spec.membership_random == "factor" and K > 2:
        coords["lambda_class"] = [f"C#{c + 1}" for c in range(1, K - 1)]
    if plan is not None:
        n_centred = len(plan.terms)
        coords["oterm"] = list(spec.random[:n_centred])
        # in the order of the sampled Cholesky factor
        coords["mrterm"] = [spec.random_effects[k] for k in order[n_centred:]]
    L = spec.between_classes
    if L > 1:
        coords["between"] = [between_label(d) for d in range(L)]
        coords["bterm"] = list(spec.between_membership)
        coords["school_logit"] = [f"D#{d + 1}" for d in range(L - 1)]
        if "cluster" not in coords:
            coords["cluster"] = [str(c) for c in design.cluster_ids]
    return coords


def _fixed_effects(
    design: Design,
    priors: Mapping[str, Prior],
    init: Params | None,
    plan: SchoolMeans | None,
    generative: bool,
    ties: Mapping[str, EffectTies],
) -> list[Any]:
    """Each fixed effect's column of beta, in the coordinates NUTS samples it in; an
    effect with constraints (``ties``) as its free classes' values and constants."""
    spec = design.spec
    init_beta = None if init is None else np.asarray(init.beta)
    whiten = (
        not ties
        and spec.classes == 1
        and len(spec.fixed_names) > 1
        and all(priors[name].family == "normal" for name in spec.fixed_names)
    )
    if whiten:
        return whitened_fixed_effects(design, priors, init_beta)
    if spec.classes > 1 and spec.between_classes == 1:
        return mixture_fixed_effects(design, priors, init_beta, plan, generative, ties)
    return [
        constrained_effect_rows(design, priors, name, j, init_beta, ties[name])
        if name in ties
        else fixed_effect_rows(design, priors, name, j, init_beta, generative)
        for j, name in enumerate(spec.fixed_names)
    ]


def _observed_y(
    design: Design,
    priors: Mapping[str, Prior],
    init: Params | None,
    init_z: np.ndarray | None,
    plan: SchoolMeans | None,
    order: np.ndarray,
    coefficients: _Coefficients,
    Z: Any,
    V: Any,
    user_units: UserUnits | None,
    observed: Any,
) -> None:
    """The observed ``y`` of one level of classes, with its class-marginal density.

    The mixture graph is written for speed (measured on Fig 3 and NELS B3);
    the one-class graph keeps its plain form, whose draws the tests pin down.
    With ``user_units``, ``y`` in the user's units, drawn forward by
    :func:`bayesmix.bayes.generative.observed_outcome`.
    """
    spec = design.spec
    K = spec.classes
    mixture = K > 1
    mu = linear_predictor(pm.Data("F", design.F), coefficients.beta)
    eta = None
    # static shape: two classes take the two-class path of _log_class_probs
    gamma = pt.specify_shape(coefficients.gamma, (K - 1, len(spec.membership)))
    if spec.random_effects:
        r = len(spec.random)
        if plan is None:
            u = noncentred_residuals(design, priors, init, order, init_z)
        else:
            generative = user_units is not None
            u = centred_residuals(design, priors, init, plan, coefficients.beta, order, generative)
        cluster = pm.Data("cluster_index", design.cluster, shape=design.cluster.shape)
        if mixture:
            # one gather per column: a row gather's gradient is a slow 2-D scatter-add
            ui = [u[:, k][cluster] for k in range(r)]
            if r:
                mu = mu + _random_part(design, ui)[:, None]
            if spec.membership_random != "none":
                eta = _school_logits(design, u[:, r:], gamma, cluster, priors, init)
        elif r:
            mu = mu + pt.sum(pm.Data("R", design.R) * u[cluster][:, :r], axis=1)[:, None]
    lsig = coefficients.lsig
    if mixture and eta is None:
        eta = pt.dot(Z, pt.transpose(gamma))
    if user_units is not None:
        logw = log_class_probs(eta) if mixture else membership_logprob(Z, gamma)
        params = (mu, residual_variance(V, lsig), logw)
        observed_outcome(user_units, params)
        return
    if mixture and design.V.shape[1] == 1 and np.all(design.V == 1.0):
        # one variance per class: the density and its gradient in one pass
        params, density = (mu, lsig[:, 0][None, :], eta), _fused_mixture_logp
    elif mixture:
        params, density = (mu, residual_variance(V, lsig), _log_class_probs(eta)), mixture_logp
    else:
        params = (mu, residual_variance(V, lsig), membership_logprob(Z, gamma))
        density = mixture_logp
    signature = "(k),(k),(j)->()"
    if design.weights is not None:
        weight = design.weights.combined(design.cluster)
        params, density = (*params, pm.Data("weight", weight)), _weighted(density)
        signature = "(k),(k),(j),()->()"
    pm.CustomDist(
        "y",
        *params,
        logp=density,
        signature=signature,
        observed=observed,
        dims="obs",
    )


def _weighted(density: Any) -> Any:
    """``density`` times each observation's sampling weight, its last parameter: the
    weighted pseudo-likelihood that :func:`bayesmix.fit_bayes` samples with
    ``pseudo_likelihood=True``."""

    def weighted(y: Any, *params: Any) -> Any:
        return params[-1] * density(y, *params[:-1])

    return weighted


def _fused_mixture_logp(y: Any, mu: Any, lsig: Any, eta: Any) -> Any:
    """:func:`bayesmix.density.likelihood.mixture_logp` with class log variances ``lsig`` (1, K)
    and membership logits ``eta`` (n, K-1), by :class:`bayesmix.density.fused.NormalMixtureLogp`."""
    return normal_mixture_logp(y, mu, lsig[0], eta)[0]


def _column_times(column: np.ndarray, value: Any, name: str) -> Any:
    """``column * value`` with the column as shared data, or ``value`` for a column of ones."""
    if np.all(column == 1.0):
        return value
    return pm.Data(name, column, shape=column.shape) * value


def _random_part(design: Design, ui: list[Any]) -> Any:
    """``sum_k R[:, k] u[cluster, k]``, skipping the product for columns of ones."""
    parts = [_column_times(design.R[:, k], ui[k], f"R_{k}") for k in range(design.R.shape[1])]
    return sum(parts[1:], parts[0])


def _between_likelihood(
    design: Design,
    priors: Mapping[str, Prior],
    init: Params | None,
    init_z: np.ndarray | None,
    F: Any,
    Z: Any,
    V: Any,
    beta: Any,
    lsig: Any,
    gamma: Any,
    user_units: UserUnits | None,
) -> None:
    """School log-likelihoods of model C with the level-2 class D_j marginalised.

    Each school carries one residual vector ``u[d, j]`` per level-2 class,
    all a priori N(0, Sigma), and its density is

        p(y_j | u[:, j]) = sum_d pi_jd p(y_j | u[d, j], D_j = d)

    (students' class mixtures summed within the school, pi from the level-2
    class regression, eq 32). Integrating all ``u[:, j]`` out gives
    ``sum_d pi_jd int p(y_j | u, d) phi(u) du``, the model's likelihood,
    because each ``u[d', j]`` unused by class d' integrates to 1 under its
    prior. With one shared vector instead, a school whose class is in doubt
    has a multimodal posterior for u_j (one mode per class), between which
    NUTS chains do not move; per-class vectors are each unimodal. Added to
    the model as the potential ``y_school``, or with ``user_units`` as the
    observed ``y`` of :func:`bayesmix.bayes.generative.observed_school_outcome`.
    """
    spec = design.spec
    K, L = spec.classes, spec.between_classes
    n = design.n_obs
    m2 = len(spec.between_membership)
    plist = [priors[f"D#{d + 1} ~ {t}"] for d in range(L - 1) for t in spec.between_membership]
    kw = {} if init is None else {"initval": np.asarray(init.delta)}
    delta = coef_rv("delta", plist, dims=("school_logit", "bterm"), shape=(L - 1, m2), **kw)
    W = pm.Data("W", design.W)
    mu = linear_predictor(F, beta).reshape((n, L, K))
    eta = pt.dot(Z, pt.transpose(gamma))[:, None, :]
    if spec.random_effects:
        r = len(spec.random)
        u = noncentred_residuals(design, priors, init, residual_order(design, init), init_z)
        ui = u[:, pm.Data("cluster_index", design.cluster)]
        if r:
            R = pm.Data("R", design.R)
            mu = mu + pt.transpose(pt.sum(R[None] * ui[:, :, :r], axis=2))[:, :, None]
        if spec.membership_random != "none":
            load = loadings(spec, priors, init)
            eta = eta + pt.transpose(pt.matmul(ui[:, :, r:], pt.transpose(load)), (1, 0, 2))
    logw = log_softmax_ref(eta, pt)
    logs2 = pt.dot(V, pt.transpose(lsig))[:, None, :]
    if user_units is not None:
        full = (n, L, K)
        params = (mu, pt.broadcast_to(logw, full), pt.broadcast_to(logs2, full))
        log_pi = membership_logprob(W, delta)
        observed_school_outcome(user_units, design.cluster, design.bounds, (*params, log_pi))
        return
    y = pm.Data("y_obs", design.y)
    joint = logw + normal_logpdf(y[:, None, None] - mu, logs2, pt)
    per_obs = pt.logsumexp(joint, axis=2)
    if design.weights is not None:
        per_obs = per_obs * pm.Data("weight", design.weights.row)[:, None]
    school = segment_sum(per_obs, design.bounds, pt)
    log_pi = membership_logprob(W, delta)
    per_school = pt.logsumexp(school + log_pi, axis=1)
    if design.weights is not None:
        per_school = per_school * pm.Data("school_weight", design.weights.cluster)
    pm.Potential("y_school", pt.sum(per_school))


def _school_logits(
    design: Design,
    u_member: Any,
    gamma: Any,
    cluster: Any,
    priors: Mapping[str, Prior],
    init: Params | None,
) -> Any:
    """Membership logits (n, K-1) with random logit intercepts.

    The logit terms that are constant within schools (the intercept, school
    covariates) are added to the school residuals per school, and each logit
    is gathered to the students once: the students' pass then holds only the
    student-level columns, elementwise, and no matrix product over all rows.
    """
    spec = design.spec
    K = spec.classes
    # rows are sorted by school: each school's first row holds its school-level values
    school_rows = design.Z[design.bounds[:-1]]
    const = np.all(design.Z == school_rows[design.cluster], axis=0)
    school_eta = u_member
    if spec.membership_random != "independent":
        school_eta = pt.dot(u_member, pt.transpose(loadings(spec, priors, init)))
    if const.any():
        Zs = pm.Data("Z_school", school_rows[:, const])
        school_eta = school_eta + pt.dot(Zs, pt.transpose(gamma[:, np.flatnonzero(const)]))
    eta = pt.stack([school_eta[:, c][cluster] for c in range(K - 1)], axis=1)
    varying = np.flatnonzero(~const)
    if varying.size:
        Zv = pm.Data("Z_student", design.Z[:, varying])
        eta = eta + pt.dot(Zv, pt.transpose(gamma[:, varying]))
    return eta


def _log_class_probs(eta: Any) -> Any:
    """:func:`bayesmix.density.likelihood.log_class_probs` for the compiled NUTS graph:
    with two classes the clipped sigmoid form of
    :func:`~bayesmix.density.primitives.log_softmax_ref_clipped`, cheaper in a
    sampling step than the softplus form the ML objective keeps."""
    if eta.type.shape[-1] != 1:
        return log_class_probs(eta)
    return log_softmax_ref_clipped(eta, pt, axis=1)
