"""The model's coefficients as PyMC free variables, with their priors and starts.

Fixed effects (ordered where they label the classes, whitened or sheared
where that helps NUTS), residual variances, membership coefficients and the
loadings of the membership random effects.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pymc as pm
import pytensor.tensor as pt
from pymc.distributions.transforms import Ordered

from bayesmix.bayes.centring import SchoolMeans, reference_offset_effect
from bayesmix.bayes.constrained import EffectTies
from bayesmix.bayes.generative import (
    corner_ordered_coefficients,
    prior_logp,
    shifted_coefficients,
)
from bayesmix.bayes.transforms import CornerOrdered
from bayesmix.data.design import Design
from bayesmix.model.params import Params, labelling
from bayesmix.model.priors import Prior, prior_arrays
from bayesmix.model.spec import Spec


def coef_rv(
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


def scale_rv(name: str, prior: Prior, dims: Any = None, **kwargs: Any) -> pt.TensorVariable:
    if prior.family == "half_normal":
        return pm.HalfNormal(name, sigma=prior.sigma, dims=dims, **kwargs)
    return pm.HalfStudentT(name, nu=prior.nu, sigma=prior.sigma, dims=dims, **kwargs)


def fixed_rv_name(name: str) -> str:
    return f"b_{name}"


def fixed_effect_rows(
    design: Design,
    priors: Mapping[str, Prior],
    name: str,
    j: int,
    init_beta: np.ndarray | None,
    generative: bool = False,
) -> Any:
    """Fixed effect ``name`` as its L K rows of beta (row ``d K + c``).

    The effect that labels the level-1 classes is ordered (descending)
    across them, within level-2 class 1; the one that labels the level-2
    classes across them, in level-1 class 1. With ``generative`` an ordered
    effect is drawn forward in order
    (:func:`bayesmix.bayes.generative.shifted_coefficients`,
    :func:`~bayesmix.bayes.generative.corner_ordered_coefficients`).
    """
    spec, lay = design.spec, design.layout
    K, L = spec.classes, spec.between_classes
    cv, bv = lay._varies(name)
    entries = lay.fixed_entries(name)
    plist = [priors[e] for e in entries]
    rv_name = fixed_rv_name(name)
    by_class, by_between = labelling(spec)
    order_c = cv and name == by_class
    order_d = bv and name == by_between
    kwargs: dict[str, Any] = {}
    if cv and bv:
        if order_c or order_d:
            kwargs["transform"] = CornerOrdered(order_c, order_d)
        if init_beta is not None:
            kwargs["initval"] = init_beta[:, j].reshape(L, K)
        else:
            kwargs["initval"] = _spread_start(plist, (L, K), order_c, order_d)
        if generative and (order_c or order_d):
            start = np.asarray(kwargs["initval"], dtype=float)
            rv = corner_ordered_coefficients(rv_name, name, plist, order_c, order_d, start)
        else:
            rv = coef_rv(rv_name, plist, dims=("between", "class"), shape=(L, K), **kwargs)
        return _rows(rv, cv, bv, K, L)
    if cv or bv:
        n, dim = (K, "class") if cv else (L, "between")
        if order_c or order_d:
            kwargs["transform"] = Ordered(ascending=False)
            kwargs["initval"] = _spread_start(plist, (n,), True, False)
        if init_beta is not None:
            kwargs["initval"] = init_beta[:K, j] if cv else init_beta[::K, j]
        if generative and (order_c or order_d):
            start = kwargs["initval"]
            rv = shifted_coefficients(
                rv_name, name, plist, 0.0, ordered=True, dims=dim, initval=start
            )
        else:
            rv = coef_rv(rv_name, plist, dims=dim, **kwargs)
        return _rows(rv, cv, bv, K, L)
    if init_beta is not None:
        kwargs["initval"] = float(init_beta[0, j])
    return _rows(coef_rv(rv_name, plist, **kwargs), cv, bv, K, L)


def tied_values(entries: list[str], ties: EffectTies, free: Callable[[int, str], Any]) -> list[Any]:
    """A block's values under its constraints: a fixed one a constant, one constrained
    equal to an earlier one that one's value, any other ``free(index, name)``."""
    values: list[Any] = []
    for e, entry in enumerate(entries):
        if e in ties.fixed:
            values.append(pt.constant(ties.fixed[e]))
        elif e in ties.follows:
            values.append(values[ties.follows[e]])
        else:
            values.append(free(e, entry))
    return values


def constrained_effect_rows(
    design: Design,
    priors: Mapping[str, Prior],
    name: str,
    j: int,
    init_beta: np.ndarray | None,
    ties: EffectTies,
) -> Any:
    """Fixed effect ``name`` as its L K rows of beta, its classes' values constrained.

    A fixed value is a constant; a value constrained equal to an earlier class's is
    that class's variable; each free value is a variable ``b_<entry>`` of its own, with
    its entry's prior (no order constraint: the constraints or another effect label the
    classes, :func:`bayesmix.model.params.labelling`). The values are recorded as the
    deterministic ``b_<name>``, shaped as an unconstrained effect's.
    """
    spec, lay = design.spec, design.layout
    K, L = spec.classes, spec.between_classes
    cv, bv = lay._varies(name)
    entries = lay.fixed_entries(name)
    start = None if init_beta is None else lay.effect_values(init_beta, j)

    def free(e: int, entry: str) -> Any:
        kwargs = {} if start is None else {"initval": float(start[e])}
        return coef_rv(fixed_rv_name(entry), [priors[entry]], **kwargs)

    stacked = pt.stack(tied_values(entries, ties, free))
    if cv and bv:
        values, dims = stacked.reshape((L, K)), ("between", "class")
    elif cv or bv:
        values, dims = stacked, "class" if cv else "between"
    else:
        values, dims = stacked[0], None
    pm.Deterministic(fixed_rv_name(name), values, dims=dims)
    return _rows(values, cv, bv, K, L)


def _rows(values: Any, cv: bool, bv: bool, K: int, L: int) -> Any:
    """An effect's values, shaped as its entries ((L, K), (K,), (L,) or a scalar), as its
    L K rows of beta (row ``d K + c``)."""
    if cv and bv:
        return pt.flatten(values)
    if cv:
        return pt.tile(values, L)
    return pt.repeat(values, K) if bv else pt.stack([values] * (K * L))


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


def whitened_fixed_effects(
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
    # the factor, its inverse and the prior of eta as shared data, not constants: one
    # compiled log-density serves every data set of these shapes
    eta = pm.MvNormal(
        "b_whitened",
        mu=pm.Data("whitened_prior_mean", upper @ mu),
        chol=pm.Data("whitened_prior_chol", np.linalg.cholesky(upper @ np.diag(sd**2) @ upper.T)),
        **kwargs,
    )
    beta = pt.dot(pm.Data("unwhitening", np.linalg.inv(upper)), eta)
    return [
        pt.stack([pm.Deterministic(fixed_rv_name(name), beta[j])])
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


def mixture_fixed_effects(
    design: Design,
    priors: Mapping[str, Prior],
    init_beta: np.ndarray | None,
    plan: SchoolMeans | None,
    generative: bool = False,
    ties: Mapping[str, EffectTies] | None = None,
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
    coefficients, or with ``generative`` as the densities of free variables
    that can be drawn forward (:mod:`bayesmix.bayes.generative`); each fixed
    effect is the deterministic ``b_<name>``. Effects with constraints (``ties``) are
    sampled by :func:`constrained_effect_rows`, outside the school means and the shear.
    """
    spec = design.spec
    names = spec.fixed_names
    absorbed = frozenset() if plan is None else plan.absorbed
    order_by = labelling(spec)[0]
    ties = ties or {}
    columns: dict[int, Any] = {}
    for j, name in enumerate(names):
        if name in ties:
            columns[j] = constrained_effect_rows(design, priors, name, j, init_beta, ties[name])
    for j in sorted(absorbed):
        name = names[j]
        if name in spec.class_varying:
            plist = [priors[e] for e in design.layout.fixed_entries(name)]
            ordered = name == order_by
            start = _class_start(plist, init_beta, j, ordered)
            base = None
            if not generative:
                base = coef_rv(f"{fixed_rv_name(name)}_last", plist[-1:], initval=start[-1])
            columns[j] = reference_offset_effect(name, plist, ordered, start, base)
        else:
            columns[j] = fixed_effect_rows(design, priors, name, j, init_beta, generative)
    rest = [j for j in range(len(names)) if j not in absorbed and names[j] not in ties]
    varying = [j for j in rest if names[j] in spec.class_varying]
    shared = [j for j in rest if names[j] not in spec.class_varying]
    for j in shared:
        columns[j] = fixed_effect_rows(design, priors, names[j], j, init_beta, generative)
    if not shared:
        for j in varying:
            columns[j] = fixed_effect_rows(design, priors, names[j], j, init_beta, generative)
        return [columns[j] for j in range(len(names))]
    shear = _shear(design.F[:, varying], design.F[:, shared])
    # shared data, not a constant: one compiled log-density serves every data set of
    # these shapes (see bayesmix.bayes.compiled_store)
    shift = pt.dot(pm.Data("shear", shear), pt.stack([columns[j][0] for j in shared]))
    if init_beta is not None:
        start_s = init_beta[0, shared]
    else:
        start_s = np.array([priors[names[j]].mu for j in shared])
    for i, j in enumerate(varying):
        name = names[j]
        plist = [priors[e] for e in design.layout.fixed_entries(name)]
        ordered = name == order_by
        start = _class_start(plist, init_beta, j, ordered) + shear[i] @ start_s
        if generative:
            alpha = shifted_coefficients(
                f"{fixed_rv_name(name)}_centred",
                name,
                plist,
                shift[i],
                ordered=ordered,
                dims="class",
                initval=start,
            )
            columns[j] = pm.Deterministic(fixed_rv_name(name), alpha - shift[i], dims="class")
            continue
        kwargs: dict[str, Any] = {"initval": start}
        if ordered:
            kwargs["transform"] = Ordered(ascending=False)
        alpha = pm.Flat(f"{fixed_rv_name(name)}_centred", dims="class", **kwargs)
        value = pm.Deterministic(fixed_rv_name(name), alpha - shift[i], dims="class")
        pm.Potential(f"prior_{fixed_rv_name(name)}", prior_logp(name, plist, value))
        columns[j] = value
    return [columns[j] for j in range(len(names))]


def membership_coefficients(
    design: Design,
    priors: Mapping[str, Prior],
    init: Params | None,
    ties: EffectTies | None = None,
) -> Any:
    """Membership logit coefficients ``gamma`` (K-1, m).

    Sampled directly: centring their covariates (the intercepts at the
    covariate means) mixed worse on the Fig 1 model, whose membership
    covariate is a 0/1 student variable. With constraints (``ties``) each free
    coefficient is a variable ``gamma[C#c ~ t]`` of its own and ``gamma`` their
    deterministic.
    """
    spec = design.spec
    K, m = spec.classes, len(spec.membership)
    names = [f"C#{c + 1} ~ {t}" for c in range(K - 1) for t in spec.membership]
    plist = [priors[n] for n in names]
    if ties is not None:
        start = None if init is None else np.asarray(init.gamma, dtype=float).ravel()

        def free(e: int, entry: str) -> Any:
            kwargs = {} if start is None else {"initval": float(start[e])}
            return coef_rv(f"gamma[{entry}]", [priors[entry]], **kwargs)

        values = pt.stack(tied_values(names, ties, free)).reshape((K - 1, m))
        return pm.Deterministic("gamma", values, dims=("logit", "mterm"))
    kw = {} if init is None else {"initval": np.asarray(init.gamma, dtype=float)}
    return coef_rv("gamma", plist, dims=("logit", "mterm"), shape=(K - 1, m), **kw)


def residual_rvs(
    design: Design,
    priors: Mapping[str, Prior],
    init: Params | None,
    ties: EffectTies | None = None,
) -> Any:
    """Residual variance parameters as ``lsig`` (K, v) log-variance coefficients.

    Model 1b's coefficients are the free variable ``lsig`` (dims ``lterm``,
    or ``class`` x ``lterm`` when class-specific), otherwise residual SDs
    ``sigma`` (dims ``group`` and/or ``class``, or a scalar). With constraints
    (``ties``, one variance per class or one in all) each free SD is a variable
    ``sigma[sigma2[c]]`` of its own and ``sigma`` their deterministic.
    """
    spec, lay = design.spec, design.layout
    K = spec.classes
    by_class = lay.residual_by_class
    init_lsig = None if init is None else np.asarray(init.lsig)
    if ties is not None:
        return _tied_residual_sds(design, priors, init_lsig, ties)
    if spec.residual_covariates:
        names = ["log(sigma2) ~ 1"] + [f"log(sigma2) ~ {t}" for t in spec.residual_covariates]
        v = len(names)
        if by_class:
            kw = {} if init_lsig is None else {"initval": init_lsig}
            plist = [priors[n] for _ in range(K) for n in names]
            return coef_rv("lsig", plist, dims=("class", "lterm"), shape=(K, v), **kw)
        kw = {} if init_lsig is None else {"initval": init_lsig[0]}
        coef = coef_rv("lsig", [priors[n] for n in names], dims="lterm", **kw)
        return pt.stack([coef] * K)
    if spec.residual_groups:
        if by_class:
            kw = {} if init_lsig is None else {"initval": np.exp(0.5 * init_lsig)}
            sigma = scale_rv("sigma", priors["sigma"], dims=("class", "group"), **kw)
            return 2.0 * pt.log(sigma)
        kw = {} if init_lsig is None else {"initval": np.exp(0.5 * init_lsig[0])}
        sigma = scale_rv("sigma", priors["sigma"], dims="group", **kw)
        return pt.stack([2.0 * pt.log(sigma)] * K)
    if by_class:
        kw = {} if init_lsig is None else {"initval": np.exp(0.5 * init_lsig[:, 0])}
        sigma = scale_rv("sigma", priors["sigma"], dims="class", **kw)
        return (2.0 * pt.log(sigma))[:, None]
    kw = {} if init_lsig is None else {"initval": float(np.exp(0.5 * init_lsig[0, 0]))}
    sigma = scale_rv("sigma", priors["sigma"], **kw)
    return pt.stack([pt.stack([2.0 * pt.log(sigma)])] * K)


def _tied_residual_sds(
    design: Design, priors: Mapping[str, Prior], init_lsig: np.ndarray | None, ties: EffectTies
) -> Any:
    """:func:`residual_rvs` of one residual variance per class or one in all, constrained."""
    lay, K = design.layout, design.spec.classes
    sl = lay._slices()["resid"]
    names = lay.names[sl.start : sl.stop]
    start = None if init_lsig is None else np.exp(0.5 * init_lsig[: len(names), 0])

    def free(e: int, entry: str) -> Any:
        kwargs = {} if start is None else {"initval": float(start[e])}
        return scale_rv(f"sigma[{entry}]", priors["sigma"], **kwargs)

    values = pt.stack(tied_values(names, ties, free))
    if lay.residual_by_class:
        sigma = pm.Deterministic("sigma", values, dims="class")
        return (2.0 * pt.log(sigma))[:, None]
    sigma = pm.Deterministic("sigma", values[0])
    return pt.stack([pt.stack([2.0 * pt.log(sigma)])] * K)


def loadings(spec: Spec, priors: Mapping[str, Prior], init: Params | None) -> Any:
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
    lam = coef_rv("lambda", [priors[n] for n in names], dims="lambda_class", **kw)
    return pt.concatenate([pt.ones(1), lam])[:, None]
