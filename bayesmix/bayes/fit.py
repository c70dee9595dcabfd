"""Bayesian estimation: the likelihood of :mod:`bayesmix.density.likelihood` in PyMC, by NUTS.

Class indicators are marginalised (log-sum-exp) so that NUTS sees a smooth
density; classes are labelled by a descending order constraint on the
``order_classes_by`` coefficient (class 1 highest, as in the ML labelling);
chains start at the ML solution by default. After sampling, the pointwise
log-likelihood is stored for LOO, posterior class probabilities are
computed, and chains are checked for disagreeing class labels.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
import warnings
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import replace
from typing import Any, Literal

import arviz_stats as azs
import numpy as np
import pandas as pd
import pymc as pm
import pytensor
import pytensor.tensor as pt
import xarray as xr
from pymc.distributions.transforms import Ordered
from pymc.logprob.transforms import Transform
from scipy.optimize import linear_sum_assignment
from scipy.special import logsumexp

from bayesmix.bayes.centring import (
    SchoolMeans,
    centred_school_effects,
    prior_logp,
    reference_offset_effect,
    school_means_plan,
    school_start,
)
from bayesmix.data.design import DataLike, Design, MissingPolicy, build_design
from bayesmix.data.standardise import standardise
from bayesmix.density.fused import normal_mixture_logp
from bayesmix.density.likelihood import (
    _LOG_2PI,
    linear_predictor,
    log_class_probs,
    membership_logprob,
    mixture_logp,
    pointwise,
    reference_log_probs,
    residual_variance,
    segment_sum,
)
from bayesmix.errors import (
    EmptyClassWarning,
    EstimationError,
    LabelSwitchingWarning,
    SamplingWarning,
    SpecError,
)
from bayesmix.model.params import Params, between_label, class_label
from bayesmix.model.priors import Prior, prior_arrays, resolve_priors
from bayesmix.model.spec import Spec
from bayesmix.results.fits import BayesResult, LabelCheck, MLResult
from bayesmix.validate import check_seed

Init = Literal["ml", "prior"]
Sampler = Literal["nutpie", "pymc"]

RHAT_MAX = 1.01
ESS_MIN = 400


def _coef_rv(
    name: str,
    priors: list[Prior],
    dims: Any = None,
    shape: tuple[int, ...] | None = None,
    **kwargs: Any,
) -> pt.TensorVariable:
    """A Normal or Student-t coefficient vector with one prior per element."""
    family, mu, sigma, nu = prior_arrays(name, priors)
    if dims is None:
        mu, sigma, nu = mu[0], sigma[0], nu[0]
    elif shape is not None:
        mu, sigma, nu = mu.reshape(shape), sigma.reshape(shape), nu.reshape(shape)
    if family == "normal":
        return pm.Normal(name, mu=mu, sigma=sigma, dims=dims, **kwargs)
    return pm.StudentT(name, nu=nu, mu=mu, sigma=sigma, dims=dims, **kwargs)


def _scale_rv(name: str, prior: Prior, dims: Any = None, **kwargs: Any) -> pt.TensorVariable:
    if prior.family == "half_normal":
        return pm.HalfNormal(name, sigma=prior.sigma, dims=dims, **kwargs)
    return pm.HalfStudentT(name, nu=prior.nu, sigma=prior.sigma, dims=dims, **kwargs)


def _fixed_rv_name(name: str) -> str:
    return f"b_{name}"


def build_model(
    design: Design,
    priors: Mapping[str, Prior],
    init: Params | None = None,
    init_z: np.ndarray | None = None,
) -> pm.Model:
    """The PyMC model of a spec on a design.

    Parameters
    ----------
    design : Design
    priors : mapping
        Complete priors, see :func:`bayesmix.model.priors.resolve_priors`.
    init : Params, optional
        Initial values (e.g. the ML estimates).
    init_z : ndarray, optional
        Initial standardised school residuals ``z_u``.

    Returns
    -------
    pymc.Model
        Free variables ``b_<effect>`` (dims ``class`` when class-varying);
        the residual variance as ``sigma`` (SD; dims ``class`` or ``group``)
        or ``lsig`` (log-linear coefficients, model 1b); the school
        residuals as ``z_u`` (standard normal, dims ``cluster`` x ``rterm``)
        with ``chol_u`` (LKJ Cholesky covariance; sampled as
        ``chol_u_ordered`` in another order where :func:`residual_order`
        says so, ``chol_u`` then recorded) or ``sd_u`` (diagonal),
        and ``u`` = z_u L'; membership logits ``gamma`` (dims ``logit`` x
        ``mterm``); observed ``y`` with the class-marginal density of
        :func:`bayesmix.density.likelihood.mixture_logp` (for mixtures with one
        residual variance per class, computed with its gradient in one pass
        by :class:`bayesmix.density.fused.NormalMixtureLogp`). With level-2 classes
        (model C) the effects varying over them have dims ``between`` (x
        ``class``), their regression is ``delta`` (dims ``school_logit`` x
        ``bterm``), and the likelihood is the potential ``y_school`` (one
        term per school, D_j marginalised).
    """
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
    init_beta = None if init is None else np.asarray(init.beta)
    plan = school_means_plan(design, init)
    n_centred = 0 if plan is None else len(plan.terms)
    order = residual_order(design, init, n_centred)
    if plan is not None:
        coords["oterm"] = list(spec.random[:n_centred])
        # in the order of the sampled Cholesky factor
        coords["mrterm"] = [spec.random_effects[k] for k in order[n_centred:]]
    whiten = (
        K == 1
        and len(spec.fixed_names) > 1
        and all(priors[name].family == "normal" for name in spec.fixed_names)
    )
    L = spec.between_classes
    if L > 1:
        coords["between"] = [between_label(d) for d in range(L)]
        coords["bterm"] = list(spec.between_membership)
        coords["school_logit"] = [f"D#{d + 1}" for d in range(L - 1)]
        if "cluster" not in coords:
            coords["cluster"] = [str(c) for c in design.cluster_ids]
    with pm.Model(coords=coords) as model:
        if whiten:
            columns = _whitened_fixed_effects(design, priors, init_beta)
        elif K > 1 and L == 1:
            columns = _mixture_fixed_effects(design, priors, init_beta, plan)
        else:
            columns = [
                _fixed_effect_rows(design, priors, name, j, init_beta)
                for j, name in enumerate(spec.fixed_names)
            ]
        beta = pt.stack(columns, axis=1)
        lsig = _residual_rvs(design, priors, init)
        if K > 1:
            gamma = _membership_coefficients(design, priors, init)
        else:
            gamma = pt.zeros((0, len(spec.membership)))
        Z = pm.Data("Z", design.Z)
        V = pm.Data("V", design.V)
        if L > 1:
            F = pm.Data("F", design.F)
            _between_likelihood(design, priors, init, init_z, F, Z, V, beta, lsig, gamma)
            return model
        # The mixture graph is written for speed (measured on Fig 3 and NELS B3); the
        # one-class graph keeps its plain form, whose draws the tests pin down.
        mixture = K > 1
        mu = linear_predictor(pm.Data("F", design.F), beta)
        eta = None
        # static shape: two classes take the two-class path of _log_class_probs
        gamma = pt.specify_shape(gamma, (K - 1, len(spec.membership)))
        if spec.random_effects:
            r = len(spec.random)
            if plan is None:
                u = _random_effects(design, priors, init, order, init_z)
            else:
                u = _centred_random_effects(design, priors, init, plan, beta, order)
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
        if mixture and eta is None:
            eta = pt.dot(Z, pt.transpose(gamma))
        if mixture and design.V.shape[1] == 1 and np.all(design.V == 1.0):
            # one variance per class: the density and its gradient in one pass
            params, density = (mu, lsig[:, 0][None, :], eta), _fused_mixture_logp
        elif mixture:
            params, density = (mu, residual_variance(V, lsig), _log_class_probs(eta)), mixture_logp
        else:
            params = (mu, residual_variance(V, lsig), membership_logprob(Z, gamma))
            density = mixture_logp
        pm.CustomDist(
            "y",
            *params,
            logp=density,
            signature="(k),(k),(j)->()",
            observed=design.y,
            dims="obs",
        )
    return model


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


class _CornerOrdered(Transform):
    """Descending order along row 0 and/or column 0 of a (L, K) coefficient array.

    Row 0 ordered labels the level-1 classes within level-2 class 1, column 0
    ordered labels the level-2 classes by level-1 class 1: the labelling of
    the ML estimates. The other entries are unconstrained.
    """

    name = "corner_ordered"
    ndim_supp = 2

    def __init__(self, row: bool, col: bool) -> None:
        self.row = row
        self.col = col

    def backward(self, value: Any, *inputs: Any) -> Any:
        x = value
        if self.row:
            steps = pt.concatenate([pt.zeros(1), pt.cumsum(pt.exp(value[0, 1:]))])
            x = pt.set_subtensor(x[0, :], value[0, 0] - steps)
        if self.col:
            steps = pt.concatenate([pt.zeros(1), pt.cumsum(pt.exp(value[1:, 0]))])
            x = pt.set_subtensor(x[:, 0], value[0, 0] - steps)
        return x

    def forward(self, value: Any, *inputs: Any) -> Any:
        x = value
        if self.row:
            x = pt.set_subtensor(x[0, 1:], pt.log(value[0, :-1] - value[0, 1:]))
        if self.col:
            x = pt.set_subtensor(x[1:, 0], pt.log(value[:-1, 0] - value[1:, 0]))
        return x

    def log_jac_det(self, value: Any, *inputs: Any) -> Any:
        out = pt.zeros(())
        if self.row:
            out = out + pt.sum(value[0, 1:])
        if self.col:
            out = out + pt.sum(value[1:, 0])
        return out


def _fixed_effect_rows(
    design: Design,
    priors: Mapping[str, Prior],
    name: str,
    j: int,
    init_beta: np.ndarray | None,
) -> Any:
    """Fixed effect ``name`` as its L K rows of beta (row ``d K + c``).

    The effect that labels the level-1 classes is ordered (descending)
    across them, within level-2 class 1; the one that labels the level-2
    classes across them, in level-1 class 1.
    """
    spec, lay = design.spec, design.layout
    K, L = spec.classes, spec.between_classes
    cv, bv = lay._varies(name)
    entries = lay.fixed_entries(name)
    plist = [priors[e] for e in entries]
    rv_name = _fixed_rv_name(name)
    order_c = cv and name == spec.order_classes_by
    order_d = bv and name == spec.between_order_by
    kwargs: dict[str, Any] = {}
    if cv and bv:
        if order_c or order_d:
            kwargs["transform"] = _CornerOrdered(order_c, order_d)
        if init_beta is not None:
            kwargs["initval"] = init_beta[:, j].reshape(L, K)
        else:
            kwargs["initval"] = _spread_start(plist, (L, K), order_c, order_d)
        rv = _coef_rv(rv_name, plist, dims=("between", "class"), shape=(L, K), **kwargs)
        return pt.flatten(rv)
    if cv or bv:
        n, dim = (K, "class") if cv else (L, "between")
        if order_c or order_d:
            kwargs["transform"] = Ordered(ascending=False)
            kwargs["initval"] = _spread_start(plist, (n,), True, False)
        if init_beta is not None:
            kwargs["initval"] = init_beta[:K, j] if cv else init_beta[::K, j]
        rv = _coef_rv(rv_name, plist, dims=dim, **kwargs)
        return pt.tile(rv, L) if cv else pt.repeat(rv, K)
    if init_beta is not None:
        kwargs["initval"] = float(init_beta[0, j])
    rv = _coef_rv(rv_name, plist, **kwargs)
    return pt.stack([rv] * (K * L))


def _spread_start(plist: list[Prior], shape: tuple[int, ...], rows: bool, cols: bool) -> np.ndarray:
    """Prior means spread in descending order along the ordered axes."""
    start = np.array([p.mu for p in plist], dtype=float).reshape(shape)
    half = 0.5 * plist[0].sigma
    if len(shape) == 1:
        return start + np.linspace(1.0, -1.0, shape[0]) * half if rows else start
    if rows:
        start = start + np.linspace(1.0, -1.0, shape[1])[None, :] * half
    if cols:
        start = start + np.linspace(1.0, -1.0, shape[0])[:, None] * half
    return start


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
    the model as the potential ``y_school``.
    """
    spec = design.spec
    K, L = spec.classes, spec.between_classes
    n = design.n_obs
    m2 = len(spec.between_membership)
    plist = [priors[f"D#{d + 1} ~ {t}"] for d in range(L - 1) for t in spec.between_membership]
    kw = {} if init is None else {"initval": np.asarray(init.delta)}
    delta = _coef_rv("delta", plist, dims=("school_logit", "bterm"), shape=(L - 1, m2), **kw)
    W = pm.Data("W", design.W)
    y = pm.Data("y_obs", design.y)
    mu = linear_predictor(F, beta).reshape((n, L, K))
    eta = pt.dot(Z, pt.transpose(gamma))[:, None, :]
    if spec.random_effects:
        r = len(spec.random)
        u = _random_effects(design, priors, init, residual_order(design, init), init_z)
        ui = u[:, pm.Data("cluster_index", design.cluster)]
        if r:
            R = pm.Data("R", design.R)
            mu = mu + pt.transpose(pt.sum(R[None] * ui[:, :, :r], axis=2))[:, :, None]
        if spec.membership_random != "none":
            load = _loadings(spec, priors, init)
            eta = eta + pt.transpose(pt.matmul(ui[:, :, r:], pt.transpose(load)), (1, 0, 2))
    full = pt.concatenate([eta, pt.zeros_like(eta[..., :1])], axis=-1)
    logw = full - pt.logsumexp(full, axis=-1, keepdims=True)
    logs2 = pt.dot(V, pt.transpose(lsig))[:, None, :]
    joint = logw - 0.5 * (_LOG_2PI + logs2 + (y[:, None, None] - mu) ** 2 / pt.exp(logs2))
    per_obs = pt.logsumexp(joint, axis=2)
    school = segment_sum(per_obs, design.bounds)
    log_pi = membership_logprob(W, delta)
    pm.Potential("y_school", pt.sum(pt.logsumexp(school + log_pi, axis=1)))


def _whitened_fixed_effects(
    design: Design, priors: Mapping[str, Prior], init_beta: np.ndarray | None
) -> list[Any]:
    """Fixed effects of a one-class model sampled in whitened coordinates.

    With ``F'F / n = A'A`` (A upper triangular), NUTS samples ``eta = A beta``,
    whose likelihood curvature is close to isotropic: uncentred covariates and
    interactions otherwise make the fixed effects strongly correlated (the
    QR reparameterisation of the Stan user's guide). The Normal priors on
    beta are kept exactly, as the implied MvNormal prior on eta. Each fixed
    effect is recorded as the deterministic ``b_<name>``.
    """
    spec = design.spec
    gram = design.F.T @ design.F / design.n_obs
    upper = np.linalg.cholesky(gram).T
    mu = np.array([priors[name].mu for name in spec.fixed_names])
    sd = np.array([priors[name].sigma for name in spec.fixed_names])
    kwargs: dict[str, Any] = {}
    if init_beta is not None:
        kwargs["initval"] = upper @ init_beta[0]
    eta = pm.MvNormal("b_whitened", mu=upper @ mu, cov=upper @ np.diag(sd**2) @ upper.T, **kwargs)
    beta = pt.dot(np.linalg.inv(upper), eta)
    return [
        pt.stack([pm.Deterministic(_fixed_rv_name(name), beta[j])])
        for j, name in enumerate(spec.fixed_names)
    ]


def _shear(basis: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """Least-squares coefficients of ``columns`` on ``basis`` (shape basis-cols x columns)."""
    return np.linalg.lstsq(basis, columns, rcond=None)[0]


def _class_start(
    plist: list[Prior], init_beta: np.ndarray | None, j: int, ordered: bool
) -> np.ndarray:
    """Start of a class-varying effect: its ML estimates, else the spread prior means."""
    if init_beta is not None:
        return np.asarray(init_beta[: len(plist), j], dtype=float)
    return _spread_start(plist, (len(plist),), ordered, False)


def _mixture_fixed_effects(
    design: Design,
    priors: Mapping[str, Prior],
    init_beta: np.ndarray | None,
    plan: SchoolMeans | None,
) -> list[Any]:
    """Fixed effects of a one-level-class mixture, in coordinates NUTS crosses easily.

    Effects the school means carry (``plan``, see :mod:`bayesmix.bayes.centring`)
    are sampled as the last class's value plus offsets. Among the others,
    shared columns such as a level-1 by school covariate interaction are
    strongly correlated with the class-varying ones. Writing
    ``F_s = F_v A + E`` (``F_v`` the class-varying columns, ``A`` least
    squares, ``E`` orthogonal to ``F_v``), the predictor
    ``F_v beta_v[c] + F_s beta_s`` equals ``F_v (beta_v[c] + A beta_s) + E beta_s``,
    so NUTS samples ``alpha[c] = beta_v[c] + A beta_s`` and ``beta_s``. The map
    is a shear (unit Jacobian) and the shift ``A beta_s`` is the same in every
    class, so ordering ``alpha`` by the labelling effect orders ``beta_v``.
    The priors on ``beta`` are kept exactly, as potentials on the implied
    coefficients; each fixed effect is the deterministic ``b_<name>``.
    """
    spec = design.spec
    names = spec.fixed_names
    absorbed = frozenset() if plan is None else plan.absorbed
    columns: dict[int, Any] = {}
    for j in sorted(absorbed):
        name = names[j]
        if name in spec.class_varying:
            plist = [priors[e] for e in design.layout.fixed_entries(name)]
            ordered = name == spec.order_classes_by
            start = _class_start(plist, init_beta, j, ordered)
            base = _coef_rv(f"{_fixed_rv_name(name)}_last", plist[-1:], initval=start[-1])
            columns[j] = reference_offset_effect(name, plist, ordered, start, base)
        else:
            columns[j] = _fixed_effect_rows(design, priors, name, j, init_beta)
    rest = [j for j in range(len(names)) if j not in absorbed]
    varying = [j for j in rest if names[j] in spec.class_varying]
    shared = [j for j in rest if names[j] not in spec.class_varying]
    for j in shared:
        columns[j] = _fixed_effect_rows(design, priors, names[j], j, init_beta)
    if not shared:
        for j in varying:
            columns[j] = _fixed_effect_rows(design, priors, names[j], j, init_beta)
        return [columns[j] for j in range(len(names))]
    shear = _shear(design.F[:, varying], design.F[:, shared])
    shift = pt.dot(shear, pt.stack([columns[j][0] for j in shared]))
    if init_beta is not None:
        start_s = init_beta[0, shared]
    else:
        start_s = np.array([priors[names[j]].mu for j in shared])
    for i, j in enumerate(varying):
        name = names[j]
        plist = [priors[e] for e in design.layout.fixed_entries(name)]
        ordered = name == spec.order_classes_by
        kwargs: dict[str, Any] = {
            "initval": _class_start(plist, init_beta, j, ordered) + shear[i] @ start_s
        }
        if ordered:
            kwargs["transform"] = Ordered(ascending=False)
        alpha = pm.Flat(f"{_fixed_rv_name(name)}_centred", dims="class", **kwargs)
        value = pm.Deterministic(_fixed_rv_name(name), alpha - shift[i], dims="class")
        pm.Potential(f"prior_{_fixed_rv_name(name)}", prior_logp(name, plist, value))
        columns[j] = value
    return [columns[j] for j in range(len(names))]


def _membership_coefficients(
    design: Design, priors: Mapping[str, Prior], init: Params | None
) -> Any:
    """Membership logit coefficients ``gamma`` (K-1, m).

    Sampled directly: centring their covariates (the intercepts at the
    covariate means) mixed worse on the Fig 1 model, whose membership
    covariate is a 0/1 student variable.
    """
    spec = design.spec
    K, m = spec.classes, len(spec.membership)
    plist = [priors[f"C#{c + 1} ~ {t}"] for c in range(K - 1) for t in spec.membership]
    kw = {} if init is None else {"initval": np.asarray(init.gamma, dtype=float)}
    return _coef_rv("gamma", plist, dims=("logit", "mterm"), shape=(K - 1, m), **kw)


def _residual_rvs(design: Design, priors: Mapping[str, Prior], init: Params | None) -> Any:
    """Residual variance parameters as ``lsig`` (K, v) log-variance coefficients.

    Model 1b's coefficients are the free variable ``lsig`` (dims ``lterm``,
    or ``class`` x ``lterm`` when class-specific), otherwise residual SDs
    ``sigma`` (dims ``group`` and/or ``class``, or a scalar).
    """
    spec, lay = design.spec, design.layout
    K = spec.classes
    by_class = lay.residual_by_class
    init_lsig = None if init is None else np.asarray(init.lsig)
    if spec.residual_covariates:
        names = ["log(sigma2) ~ 1"] + [f"log(sigma2) ~ {t}" for t in spec.residual_covariates]
        v = len(names)
        if by_class:
            kw = {} if init_lsig is None else {"initval": init_lsig}
            plist = [priors[n] for _ in range(K) for n in names]
            return _coef_rv("lsig", plist, dims=("class", "lterm"), shape=(K, v), **kw)
        kw = {} if init_lsig is None else {"initval": init_lsig[0]}
        coef = _coef_rv("lsig", [priors[n] for n in names], dims="lterm", **kw)
        return pt.stack([coef] * K)
    if spec.residual_groups:
        if by_class:
            kw = {} if init_lsig is None else {"initval": np.exp(0.5 * init_lsig)}
            sigma = _scale_rv("sigma", priors["sigma"], dims=("class", "group"), **kw)
            return 2.0 * pt.log(sigma)
        kw = {} if init_lsig is None else {"initval": np.exp(0.5 * init_lsig[0])}
        sigma = _scale_rv("sigma", priors["sigma"], dims="group", **kw)
        return pt.stack([2.0 * pt.log(sigma)] * K)
    if by_class:
        kw = {} if init_lsig is None else {"initval": np.exp(0.5 * init_lsig[:, 0])}
        sigma = _scale_rv("sigma", priors["sigma"], dims="class", **kw)
        return (2.0 * pt.log(sigma))[:, None]
    kw = {} if init_lsig is None else {"initval": float(np.exp(0.5 * init_lsig[0, 0]))}
    sigma = _scale_rv("sigma", priors["sigma"], **kw)
    return pt.stack([pt.stack([2.0 * pt.log(sigma)])] * K)


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
        school_eta = pt.dot(u_member, pt.transpose(_loadings(spec, priors, init)))
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
    """:func:`bayesmix.density.likelihood.log_class_probs` for the compiled NUTS graph.

    With two classes as the logs of ``sigmoid(eta)`` and ``1 - sigmoid(eta)``:
    ``softplus`` needs ``log1p``, for which numba calls the C library's
    scalar function, dearer in a sampling step than the two ``log`` calls
    on one sigmoid here. The clip keeps
    ``1 - sigmoid`` above 0 (it changes the density by less than 1e-13
    beyond it). The ML objective keeps the shared softplus form: XLA has its
    own ``log1p``, and an optimiser can take a logit past the clip, where the
    flat density would stall it.
    """
    if eta.type.shape[-1] != 1:
        return log_class_probs(eta)
    prob = pt.sigmoid(pt.clip(eta, -30.0, 30.0))
    return pt.log(pt.concatenate([prob, 1.0 - prob], axis=1))


def _loadings(spec: Spec, priors: Mapping[str, Prior], init: Params | None) -> Any:
    """Loadings of the membership logits on their random effects (identity or factor)."""
    K = spec.classes
    if spec.membership_random == "independent":
        return pt.eye(K - 1)
    names = [f"lambda(C#{c + 1})" for c in range(1, K - 1)]
    if not names:
        return pt.ones((1, 1))
    kw: dict[str, Any] = {}
    if init is not None:
        kw["initval"] = np.asarray(init.load)[1:, 0]
    lam = _coef_rv("lambda", [priors[n] for n in names], dims="lambda_class", **kw)
    return pt.concatenate([pt.ones(1), lam])[:, None]


def _random_effects(
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
    :func:`_between_likelihood`.
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


def _centred_random_effects(
    design: Design,
    priors: Mapping[str, Prior],
    init: Params,
    plan: SchoolMeans,
    beta: Any,
    order: np.ndarray,
) -> Any:
    """School residuals with the outcome coefficients sampled centred (see
    :mod:`bayesmix.bayes.centring`), starting at their means at the ML start ``init``
    (a plan exists only with one); the membership residuals ``z_member`` in
    ``order`` (:func:`residual_order`, the centred terms first)."""
    r = len(plan.terms)
    L = _residual_cholesky(design, priors, init, order)
    jitter = _unidentified_residual_start(design, 1)[:, order]
    init_a = school_start(design, plan, np.asarray(init.beta, dtype=float), jitter[:, :r])
    return centred_school_effects(design, plan, beta, L, init_a, jitter[:, r:])


_DETERMINED = 0.1
"""Share of a school residual's variance below which the residuals before it nearly
determine it (a correlation beyond 0.95 with one of them), see :func:`residual_order`."""


def residual_order(design: Design, init: Params | None, lead: int = 0) -> np.ndarray:
    """Order of the school residuals in the Cholesky factor NUTS samples.

    The spec's order, except for mixtures (one level of classes) with three
    or more residuals and ML estimates ``init``: after the first ``lead``
    (the centred ones, see :mod:`bayesmix.bayes.centring`), one at a time, the
    first residual in the spec's order of which those before it leave at
    least :data:`_DETERMINED` of the variance unexplained at the ML
    estimates (or, if none, the one they leave most). A residual that the
    others nearly determine has a Cholesky diagonal near 0; in a row before
    the last, the rows after it then depend on two standardised residuals
    of every school only through the length of their coefficients, and NUTS
    has to rotate all schools' pairs together to move along that circle.
    Last, the near-0 diagonal leaves no row after it. On NELS-sized model B3
    data (corr(u_1, u_female) -0.997 at the ML estimates) the order (u_1,
    u_f, u_female) removes that slow rotation, which had kept the largest
    R-hat well above 1.01. The LKJ and SD priors give the same covariance
    density in any order, so the model is unchanged.
    """
    spec = design.spec
    r = len(spec.random_effects)
    if init is None or spec.classes < 2 or spec.between_classes > 1 or r < 3:
        return np.arange(r)
    chol = np.asarray(init.chol, dtype=float)
    sigma = chol @ chol.T
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
        pick = kept[0] if kept else rest[int(np.argmax(shares))]
        order.append(pick)
        rest.remove(pick)
    return np.asarray(order)


def _residual_cholesky(
    design: Design, priors: Mapping[str, Prior], init: Params | None, order: np.ndarray
) -> Any:
    """Factor of the school residual covariance: LKJ or diagonal SDs.

    Lower triangular, except that an LKJ covariance's factor is sampled in
    ``order`` (:func:`residual_order`, which keeps the centred terms first)
    and its rows are put back in the spec's order. Then the sampled factor
    is ``chol_u_ordered`` and ``chol_u`` (with ``chol_u_stds`` and
    ``chol_u_corr``) is the lower Cholesky factor in the spec's order,
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
    if spec.covariance == "unstructured" and r > 1:
        scales, nu = scales[order], nu[order]
        if sd_priors[0].family == "half_normal":
            sd_dist = pm.HalfNormal.dist(sigma=scales, shape=r)
        else:
            sd_dist = pm.HalfStudentT.dist(nu=nu, sigma=scales, shape=r)
        kw: dict[str, Any] = {}
        same = np.array_equal(order, np.arange(r))
        if init_chol is not None:
            if same:
                chol = init_chol.copy()
            else:
                sigma = (init_chol @ init_chol.T)[np.ix_(order, order)]
                chol = np.linalg.cholesky(sigma + 1e-12 * np.eye(r))
            diag = np.diag(chol).copy()
            np.fill_diagonal(chol, np.maximum(diag, 0.05 * scales))
            kw["initval"] = chol[np.tril_indices(r)]
        if same:
            chol_u, _, _ = pm.LKJCholeskyCov(
                "chol_u", n=r, eta=2.0, sd_dist=sd_dist, compute_corr=True, **kw
            )
            return chol_u
        packed = pm.LKJCholeskyCov(
            "chol_u_ordered", n=r, eta=2.0, sd_dist=sd_dist, compute_corr=False, **kw
        )
        L = pm.math.expand_packed_triangular(r, packed, lower=True)[np.argsort(order), :]
        _record_spec_order_cholesky(L, r)
    else:
        kw = {}
        if init_chol is not None:
            kw["initval"] = np.maximum(np.sqrt(np.sum(init_chol**2, axis=1)), 0.05 * scales)
        if sd_priors[0].family == "half_normal":
            sd_u = pm.HalfNormal("sd_u", sigma=scales, dims="rterm", **kw)
        else:
            sd_u = pm.HalfStudentT("sd_u", nu=nu, sigma=scales, dims="rterm", **kw)
        L = pt.diag(sd_u)
    return L


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


def _between_residual_start(design: Design, ml: Any) -> np.ndarray:
    """Posterior means of each school's standardised residuals given each level-2 class.

    A school's residual vector for a class it almost surely does not belong
    to has a likelihood gradient of exactly 0 at z = 0, which nutpie rejects
    as an initial point; these means (from the adaptive quadrature at the
    ML estimates) are where each vector's posterior is, shape (L, J, r).
    """
    from bayesmix.density.quadrature import adapted_quadrature

    quad = adapted_quadrature(design, design.layout.to_theta(ml.estimates), iterations=2)
    centre = np.concatenate(
        [c[: chunk.n_clusters] for c, chunk in zip(quad.centre, quad.chunks, strict=True)]
    )
    # a vector of a class the school is unlikely to be in starts near the prior
    # mean: at its conditional posterior mean it would make that class explain
    # the school's data as well as it can, and warm-up would start from schools
    # that look ambiguous
    share = np.clip(ml.between_probabilities, 0.05, 1.0)[:, :, None]
    z = np.transpose(share * centre, (1, 0, 2))
    # nutpie refuses a start where any gradient component is exactly 0, as it is
    # for a residual the likelihood ignores (an empty class) at its prior mean 0
    return np.ascontiguousarray(np.where(z == 0.0, 1e-3, z))


def structured_draws(posterior: xr.Dataset, design: Design) -> Params:
    """Stack posterior draws into :class:`Params` arrays with leading (chain, draw) dims."""
    spec, lay = design.spec, design.layout
    K, L = spec.classes, spec.between_classes
    columns = []
    for name in spec.fixed_names:
        values = posterior[_fixed_rv_name(name)].values
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
    """Posterior draws of every named natural parameter, each (chain, draw)."""
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
    return {name: out[:, :, k] for k, name in enumerate(lay.names)}


def _user_posterior(
    posterior: xr.Dataset, draws: Params, u: np.ndarray | None, design: Design
) -> xr.Dataset:
    """The posterior with the model's parameters replaced by their values in the user's units.

    ``draws`` (structured, leading chain and draw dimensions) and ``u`` come
    from :meth:`~bayesmix.data.standardise.Standardisation.params_to_user`; the
    variables written are the inverse of :func:`structured_draws`: the fixed
    effects ``b_<name>``, ``sigma`` or ``lsig``, ``gamma``, ``delta``,
    ``chol_u`` (with ``chol_u_stds`` and ``chol_u_corr``) or ``sd_u``, and
    ``u``. The sampler's own coordinates (``z_u``, ``z_member``,
    ``b_school``, ``b_whitened``, ``chol_u_ordered``, offsets and log gaps)
    stay on the standardised scale NUTS samples.
    """
    spec, lay = design.spec, design.layout
    K, L = spec.classes, spec.between_classes
    out = posterior.copy()

    def put(name: str, values: np.ndarray) -> None:
        out[name] = (posterior[name].dims, np.asarray(values).reshape(posterior[name].shape))

    beta = np.asarray(draws.beta)
    for j, name in enumerate(spec.fixed_names):
        cv, bv = lay._varies(name)
        if cv and bv:
            values = beta[..., j]
        elif cv:
            values = beta[..., :K, j]
        elif bv:
            values = beta[..., ::K, j]
        else:
            values = beta[..., 0, j]
        put(_fixed_rv_name(name), values)
    lsig = np.asarray(draws.lsig)
    by_class = lay.residual_by_class
    if spec.residual_covariates:
        put("lsig", lsig if by_class else lsig[..., 0, :])
    elif spec.residual_groups:
        put("sigma", np.exp(0.5 * (lsig if by_class else lsig[..., 0, :])))
    else:
        put("sigma", np.exp(0.5 * (lsig[..., 0] if by_class else lsig[..., 0, 0])))
    if K > 1:
        put("gamma", draws.gamma)
    if L > 1:
        put("delta", draws.delta)
    chol = np.asarray(draws.chol)
    if chol.shape[-1]:
        cov = chol @ np.swapaxes(chol, -1, -2)
        stds = np.sqrt(np.diagonal(cov, axis1=-2, axis2=-1))
        if "chol_u" in posterior:
            rows, cols = np.tril_indices(chol.shape[-1])
            put("chol_u", chol[..., rows, cols])
            if "chol_u_stds" in posterior:
                put("chol_u_stds", stds)
                put("chol_u_corr", cov / (stds[..., :, None] * stds[..., None, :]))
        else:
            put("sd_u", stds)
    if u is not None:
        put("u", u)
    return out


def _pointwise_draws(
    draws: Params, design: Design, u: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """Log-likelihood (chain, draw, n) and per-chain mean class probabilities (chain, n, K)."""
    f = pointwise(design.layout)
    n_chain, n_draw = draws.beta.shape[:2]
    loglik = np.empty((n_chain, n_draw, design.n_obs))
    post = np.zeros((n_chain, design.n_obs, design.spec.classes))
    spec = design.spec
    r = len(spec.random)
    offset = np.zeros(design.n_obs)
    member = np.zeros((design.n_obs, spec.classes - 1))
    for ch in range(n_chain):
        for d in range(n_draw):
            if u is not None:
                ui = u[ch, d][design.cluster]
                offset = np.einsum("ir,ir->i", design.R, ui[:, :r])
                if spec.membership_random != "none":
                    member = ui[:, r:] @ np.asarray(draws.load[ch, d]).T
            ll, pp = f(
                draws.beta[ch, d],
                draws.lsig[ch, d],
                draws.gamma[ch, d],
                offset,
                member,
                design.y,
                design.F,
                design.Z,
                design.V,
            )
            loglik[ch, d] = ll
            post[ch] += pp
    post /= n_draw
    return loglik, post


def _between_pointwise_draws(
    draws: Params, design: Design, u: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Model C, per draw and conditional on the school residuals.

    ``u`` (chain, draw, L, J, r) holds each school's residuals per level-2
    class (see :func:`_between_likelihood`). Returns the school
    log-likelihoods (chain, draw, J) with D_j marginalised, and per chain
    the mean P(C_ij = c | y_j) (chain, n, K) and P(D_j = d | y_j) (chain,
    J, L).
    """
    spec = design.spec
    K, L, r = spec.classes, spec.between_classes, len(spec.random)
    n_chain, n_draw = draws.beta.shape[:2]
    J, n = len(design.cluster_ids), design.n_obs
    loglik = np.empty((n_chain, n_draw, J))
    post = np.zeros((n_chain, n, K))
    post_d = np.zeros((n_chain, J, L))
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
            logw = reference_log_probs((design.Z @ draws.gamma[ch, d].T)[:, None, :] + member)
            fitted = (design.F @ draws.beta[ch, d].T).reshape(n, L, K) + offset[:, :, None]
            resid = design.y[:, None, None] - fitted
            joint = logw - 0.5 * (
                _LOG_2PI + logs2[:, None, :] + resid**2 / np.exp(logs2)[:, None, :]
            )
            per_obs = logsumexp(joint, axis=2)
            a = np.add.reduceat(per_obs, starts, axis=0) + reference_log_probs(
                design.W @ draws.delta[ch, d].T
            )
            total = logsumexp(a, axis=1)
            weight = np.exp(a - total[:, None])
            loglik[ch, d] = total
            post_d[ch] += weight
            within = np.exp(joint - per_obs[:, :, None])
            post[ch] += np.einsum("id,idk->ik", weight[design.cluster], within)
    return loglik, post / n_draw, post_d / n_draw


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


# nutpie models compiled in this process, by :func:`_compile_key`; a refit of the same
# spec, data, priors and start (more draws, another seed) skips compilation
_COMPILED: OrderedDict[str, Any] = OrderedDict()
_COMPILED_MAX = 4


def _compile_key(
    design: Design,
    priors: Mapping[str, Prior],
    init: Params | None,
    init_z: np.ndarray | None,
    backend: str,
) -> str:
    """Digest of everything the compiled log-density and its starting point depend on."""
    h = hashlib.sha256(backend.encode())
    h.update(repr(design.spec).encode())
    h.update(repr(sorted(priors.items())).encode())
    h.update(pd.util.hash_pandas_object(design.frame, index=False).to_numpy().tobytes())
    h.update(repr(tuple(design.frame.columns)).encode())
    arrays = [] if init is None else [getattr(init, f.name) for f in dataclasses.fields(init)]
    for value in [*arrays, init_z]:
        h.update(b"none" if value is None else np.ascontiguousarray(value, float).tobytes())
    return h.hexdigest()


def _compiled_nutpie(model: pm.Model, ml_init: bool, key: str | None, backend: str) -> Any:
    import nutpie

    if key is not None and key in _COMPILED:
        _COMPILED.move_to_end(key)
        return _COMPILED[key]
    # nutpie compiles its outer numba function afresh in every process, inlining the
    # log-density's inner functions when they are compiled in the same process but
    # calling them when they come from the on-disk cache; with fast-math reassociation
    # the two round differently, and the same seed gave different draws on a first
    # (cold-cache) run than on later ones. IEEE arithmetic makes both the same.
    with pytensor.config.change_flags(numba__fastmath=False):
        compiled = nutpie.compile_pymc_model(
            model,
            backend=backend,
            gradient_backend="jax" if backend == "jax" else "pytensor",
            jitter_rvs=set() if ml_init else None,
        )
    if key is not None:
        _COMPILED[key] = compiled
        while len(_COMPILED) > _COMPILED_MAX:
            _COMPILED.popitem(last=False)
    return compiled


def _sample(
    model: pm.Model,
    sampler: Sampler,
    draws: int,
    tune: int,
    chains: int,
    seed: int,
    ml_init: bool,
    progress: bool,
    adaptation: str = "diag",
    key: str | None = None,
    backend: str = "numba",
) -> tuple[xr.DataTree, float, float, int | None]:
    """Draws, compile and sampling seconds, and the draws kept per chain if interrupted."""
    if sampler == "nutpie":
        import nutpie

        t0 = time.perf_counter()
        compiled = _compiled_nutpie(model, ml_init, key, backend)
        t1 = time.perf_counter()
        running = nutpie.sample(
            compiled,
            draws=draws,
            tune=tune,
            chains=chains,
            seed=seed,
            progress_bar=progress,
            save_warmup=False,
            adaptation=adaptation,
            blocking=False,
        )
        try:
            idata = running.wait()
        except KeyboardInterrupt:
            idata = running.abort()
            kept = _complete_draws(idata)
            if kept == 0:
                raise EstimationError(
                    f"sampling was interrupted during tuning (after {time.perf_counter() - t1:.0f}"
                    " s), before any draw was kept; nothing to return."
                ) from None
            return _first_draws(idata, kept), t1 - t0, time.perf_counter() - t1, kept
        return idata, t1 - t0, time.perf_counter() - t1, None
    t0 = time.perf_counter()
    with model:
        idata = pm.sample(
            draws=draws,
            tune=tune,
            chains=chains,
            random_seed=seed,
            progressbar=progress,
            compute_convergence_checks=False,
        )
    return idata, 0.0, time.perf_counter() - t0, None


def _complete_draws(idata: xr.DataTree) -> int:
    """Post-tuning draws that every chain has finished (unfinished ones are NaN)."""
    if "posterior" not in idata.children:
        return 0
    post = idata["posterior"].to_dataset()
    if not post.data_vars or post.sizes.get("draw", 0) == 0:
        return 0
    done = None
    for var in post.data_vars.values():
        finite = np.isfinite(var.values).reshape(var.shape[0], var.shape[1], -1).all(axis=-1)
        done = finite if done is None else done & finite
    assert done is not None
    # the leading draws that every chain completed
    return int(np.cumprod(done.all(axis=0)).sum())


def _first_draws(idata: xr.DataTree, kept: int) -> xr.DataTree:
    return xr.DataTree.from_dict(
        {
            f"/{name}": idata[name].to_dataset().isel(draw=slice(0, kept))
            if "draw" in idata[name].to_dataset().dims
            else idata[name].to_dataset()
            for name in idata.children
        }
    )


def fit_bayes(
    spec: Spec,
    data: DataLike,
    *,
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 4,
    random_seed: int | None = None,
    init: Init | MLResult = "ml",
    priors: Mapping[str, Prior] | None = None,
    sampler: Sampler = "nutpie",
    missing: MissingPolicy = "error",
    ml_starts: int = 20,
    adaptation: Literal["diag", "low_rank"] = "diag",
    backend: Literal["numba", "jax"] = "numba",
    progress: bool = False,
) -> BayesResult:
    """Fit a model by NUTS.

    Parameters
    ----------
    spec : Spec
        The model.
    data : DataFrame, str or Path
        Data frame, CSV path or bundled data set name.
    draws, tune, chains : int
        Posterior draws kept per chain, warm-up draws per chain, chains.
    random_seed : int, optional
        Seed of the ML starts and of the sampler; the same seed reproduces
        the run on the same machine.
    init : {"ml", "prior"} or MLResult
        Start every chain at the ML estimates (default: avoids chains
        settling in different modes), at those of a given ML fit of the same
        spec and data (no refit), or at the prior-based default.
    priors : mapping of str to Prior, optional
        Overrides of the data-scaled default priors
        (see :mod:`bayesmix.model.priors`).
    sampler : {"nutpie", "pymc"}
        NUTS implementation.
    missing : {"error", "listwise"}
        Handling of rows with missing values.
    ml_starts : int
        Random starts of the ML fit used for initialisation.
    adaptation : {"diag", "low_rank"}
        nutpie's mass-matrix adaptation: diagonal, or diagonal plus a
        low-rank correction that captures strong posterior correlations
        (e.g. between fixed effects of uncentred covariates).
    backend : {"numba", "jax"}
        Compiler of the log-density and its gradient for nutpie. ``"jax"``
        runs on a GPU when JAX has one; on CPU numba is faster for models of
        the paper's size (JAX pays a dispatch cost per gradient).
    progress : bool
        Show progress.

    Returns
    -------
    BayesResult

    Notes
    -----
    The nutpie model compiled for a spec, data, priors and ML start is kept
    (the last four in the process), so a refit of the same model with more
    draws, another seed or another adaptation does not compile again.
    """
    t_start = time.perf_counter()
    for label, value in (("draws", draws), ("tune", tune), ("chains", chains)):
        if not isinstance(value, int) or value < 1:
            raise EstimationError(f"{label} must be a positive integer, got {value!r}.")
    given_ml = init if isinstance(init, MLResult) else None
    if given_ml is None and init not in ("ml", "prior"):
        raise EstimationError(f"init must be 'ml', 'prior' or an MLResult, got {init!r}.")
    if sampler not in ("nutpie", "pymc"):
        raise EstimationError(f"sampler must be 'nutpie' or 'pymc', got {sampler!r}.")
    if backend not in ("numba", "jax"):
        raise EstimationError(f"backend must be 'numba' or 'jax', got {backend!r}.")
    random_seed = check_seed(random_seed)
    design = build_design(spec, data, missing=missing)
    internal, st = standardise(design)
    full_priors = resolve_priors(internal, priors, st.prior_to_internal)
    seed = int(np.random.default_rng(random_seed).integers(2**31 - 1))
    init_params = None
    init_z = None
    if given_ml is not None:
        if given_ml.spec != spec or given_ml.n_obs != design.n_obs:
            raise EstimationError(
                f"init: the ML fit is of model {given_ml.spec.name!r} on {given_ml.n_obs} "
                f"observations, not of {spec.name!r} on {design.n_obs}; pass the fit of "
                "this spec to these data, or init='ml'."
            )
    if init == "ml" or given_ml is not None:
        from bayesmix.ml.fit import fit_internal

        if given_ml is not None:
            ml = replace(given_ml, design=internal, estimates=st.to_internal(given_ml.estimates))
        else:
            ml = fit_internal(internal, starts=ml_starts, random_seed=seed)
        init_params = ml.structured
        if spec.between_classes > 1 and spec.random_effects:
            init_z = _between_residual_start(internal, ml)
    model = build_model(internal, full_priors, init_params, init_z)
    key = _compile_key(internal, full_priors, init_params, init_z, backend)
    idata, compile_s, sampling_s, interrupted_at = _sample(
        model,
        sampler,
        draws,
        tune,
        chains,
        seed,
        init_params is not None,
        progress,
        adaptation,
        key,
        backend,
    )
    posterior = idata["posterior"].to_dataset()
    draws_struct = st.params_to_user(structured_draws(posterior, internal))
    u = st.residuals_to_user(posterior["u"].values) if spec.random_effects else None
    posterior = _user_posterior(posterior, draws_struct, u, design)
    idata["posterior"] = xr.DataTree(posterior)
    named = named_draws(draws_struct, design)
    chain_between = None
    if spec.between_classes > 1:
        # with level-2 classes the schools are the independent units
        by_school, chain_post, chain_between = _between_pointwise_draws(draws_struct, design, u)
        pointwise_vars = {"y_school": (("chain", "draw", "school"), by_school)}
    else:
        loglik, chain_post = _pointwise_draws(draws_struct, design, u)
        pointwise_vars = {"y": (("chain", "draw", "obs"), loglik)}
        if spec.cluster is not None:
            # school level, conditional on the school residuals: the sum over its students
            by_school = np.add.reduceat(loglik, design.bounds[:-1], axis=2)
            pointwise_vars["y_school"] = (("chain", "draw", "school"), by_school)
    idata["log_likelihood"] = xr.DataTree(
        xr.Dataset(
            pointwise_vars,
            coords={"chain": posterior["chain"], "draw": posterior["draw"]},
        )
    )
    if "observed_data" not in idata.children:
        idata["observed_data"] = xr.DataTree(xr.Dataset({"y": (("obs",), design.y)}))
    labels = check_labels(chain_post) if spec.classes > 1 else LabelCheck(False, (), ())
    between_labels = None if chain_between is None else check_labels(chain_between)
    divergences = int(np.asarray(idata["sample_stats"]["diverging"]).sum())
    loo = azs.loo(idata, var_name="y_school" if chain_between is not None else "y")
    result = BayesResult.from_draws(
        spec=spec,
        design=design,
        idata=idata,
        named=named,
        chain_post=chain_post,
        chain_between=chain_between,
        divergences=divergences,
        labels=labels,
        between_labels=between_labels,
        loo=loo,
        priors={name: st.prior_to_user(name, prior) for name, prior in full_priors.items()},
        settings={
            "draws": draws,
            "tune": tune,
            "chains": chains,
            "seed": seed,
            "init": "ml" if given_ml is not None else init,
            "sampler": sampler,
            "adaptation": adaptation,
            "backend": backend,
            "interrupted_at": interrupted_at,
        },
        timings={
            "compile_s": compile_s,
            "sampling_s": sampling_s,
            "elapsed_s": time.perf_counter() - t_start,
        },
    )
    for text, category in _diagnose(result):
        warnings.warn(text, category, stacklevel=2)
    return result


def _diagnose(result: BayesResult) -> list[tuple[str, type[Warning]]]:
    notes = []
    for text in result.diagnostics:
        if "label" in text:
            category: type[Warning] = LabelSwitchingWarning
        elif " holds " in text:
            category = EmptyClassWarning
        else:
            category = SamplingWarning
        notes.append((text, category))
    return notes
