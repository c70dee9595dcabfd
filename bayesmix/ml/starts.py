"""Starting values of the ML optimisation: random starts, class splits and user values.

Every random start is data-driven: the students are softly assigned to
classes and weighted least squares within each class gives the parameters
(:func:`start_from_responsibilities`), so different starts explore different
class configurations.
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Mapping
from dataclasses import replace

import numpy as np

from bayesmix.data.design import Design
from bayesmix.data.standardise import Standardisation
from bayesmix.errors import EstimationError, type_name
from bayesmix.model.constraints import resolve
from bayesmix.model.params import Layout, Params, between_label, layout
from bayesmix.model.spec import Spec
from bayesmix.results.ml import MLResult


def _initial_theta(lay: Layout, init: Mapping[str, float] | Params) -> np.ndarray:
    """Optimiser vector of user starting values, checked against the model's names."""
    if isinstance(init, Params):
        params = init
    else:
        try:
            params = lay.from_named(dict(init))
        except KeyError as err:
            raise EstimationError(f"init: {err.args[0]}") from None
    theta = lay.pack(params, natural=False)
    if not np.all(np.isfinite(theta)):
        raise EstimationError(
            "init has non-finite values on the optimiser's scale (a variance <= 0?); "
            "give variances > 0."
        )
    return theta


def internal_theta(
    st: Standardisation, values: Mapping[str, float] | Params, label: str = "init"
) -> np.ndarray:
    """Optimiser vector of starting values given in the user's units."""
    lay = st.layout
    if isinstance(values, Params):
        natural = lay.pack(values, natural=True)
    elif isinstance(values, Mapping):
        bad = {k: v for k, v in values.items() if not isinstance(v, numbers.Real)}
        if bad:
            raise EstimationError(f"{label}: values must be numbers, got {bad}.")
        try:
            natural = lay.pack(lay.from_named(dict(values)), natural=True)
        except KeyError as err:
            raise EstimationError(f"{label}: {err.args[0]}") from None
    else:
        raise EstimationError(
            f"{label} must map parameter names to values (e.g. {{'x[c1]': 0.5, ...}}, the "
            f"names of MLResult.names) or be a Params, got {type_name(values)}."
        )
    if not np.all(np.isfinite(natural)):
        raise EstimationError(f"{label} has non-finite values; give finite starting values.")
    return _initial_theta(lay, lay.unpack(st.to_internal(natural), natural=True))


def constrained_start(design: Design, st: Standardisation, random_seed: int | None) -> np.ndarray:
    """The start of a spec's ``constraints.start`` values (Mplus ``*``): a random start
    (its own generator, so that the random starts stay as they are) with those values,
    and the fixed ones, put in; theta of the standardised ``design``."""
    lay = st.layout
    resolved = resolve(lay.spec.constraints, lay.names)
    theta = random_start(design, np.random.default_rng(random_seed))
    natural = st.to_user(lay.to_natural(theta))
    for k, value in {**resolved.start, **resolved.fixed}.items():
        natural[k] = value
    return internal_theta(st, dict(zip(lay.names, natural, strict=True)), "constraints start")


def _weighted_lstsq(X: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    sw = np.sqrt(w)
    ridge = 1e-8 * np.eye(X.shape[1])
    xtwx = (X * sw[:, None]).T @ (X * sw[:, None]) + ridge
    return np.linalg.solve(xtwx, (X * w[:, None]).T @ y)


def random_start(design: Design, rng: np.random.Generator) -> np.ndarray:
    """Draw one starting theta from a random soft partition of the observations.

    Observations are softly assigned to K seeds drawn among the OLS
    residuals, and :func:`start_from_responsibilities` turns the assignment
    into parameters. With one class this is the OLS solution. Every start
    is data-driven yet different starts explore different class
    configurations.
    """
    y, F, K = design.y, design.F, design.spec.classes
    resid = y - F @ _weighted_lstsq(F, y, np.ones_like(y))
    if K == 1:
        resp = np.ones((len(y), 1))
    else:
        seeds = rng.choice(resid, size=K, replace=False)
        width = resid.std() * rng.uniform(0.25, 1.0)
        logits = -((resid[:, None] - seeds[None, :]) ** 2) / (2 * width**2)
        logits -= logits.max(axis=1, keepdims=True)
        resp = np.exp(logits)
        resp /= resp.sum(axis=1, keepdims=True)
    return start_from_responsibilities(design, resp, rng)


def split_class_start(smaller: MLResult, design: Design, rng: np.random.Generator) -> Params:
    """Starting values for K classes from a fit of the same model with K - 1.

    The students keep their posterior classes of the smaller fit, except
    those of its largest class, which are split between two classes by the
    sign of their residual from that class's regression (softly, on the
    scale of its residual SD); :func:`start_from_responsibilities` turns
    these into parameters, and the outcome random effects keep the smaller
    fit's covariance.

    Raises
    ------
    EstimationError
        When ``smaller`` is not a fit of K - 1 classes to the same rows.
    """
    K = design.spec.classes
    post = np.asarray(smaller.class_probabilities)
    if (
        smaller.spec.classes != K - 1
        or post.shape != (design.n_obs, K - 1)
        or not np.array_equal(smaller.design.y, design.y)
    ):
        raise EstimationError(
            f"a split-class start for {K} classes needs a fit of {K - 1} classes to the "
            f"same data; got {smaller.spec.classes} classes on {post.shape[0]} rows."
        )
    y, F = design.y, design.F
    s = int(np.argmax(post.sum(axis=0)))
    w = post[:, s] + 1e-9
    resid = y - F @ _weighted_lstsq(F, y, w)
    sd = float(np.sqrt(np.sum(w * resid**2) / np.sum(w)))
    upper = 0.5 * (1.0 + np.tanh(resid / max(sd, 1e-12)))
    resp = np.column_stack([post, post[:, s] * (1.0 - upper)])
    resp[:, s] *= upper
    lay = design.layout
    params = lay.unpack(start_from_responsibilities(design, resp, rng))
    n_out, small = lay.n_outcome_random, smaller.design.layout
    if n_out and small.n_outcome_random == n_out:
        chol = np.array(params.chol)
        chol[:n_out, :n_out] = small.unpack(small.to_theta(smaller.estimates)).chol[:n_out, :n_out]
        params = replace(params, chol=chol)
    return params


def start_from_responsibilities(
    design: Design, resp: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Starting theta from soft class responsibilities ``resp`` (n, K) of the students.

    Weighted least squares within each class gives the fixed effects and
    residual variances, and the class shares the membership intercepts
    (slopes start near 0, drawn from ``rng``); each outcome random effect
    gets a fifth of the residual variance.
    """
    spec, lay, y, F = design.spec, design.layout, design.y, design.F
    K = spec.classes
    scale = (y - F @ _weighted_lstsq(F, y, np.ones_like(y))).std()
    shares = np.clip(resp.mean(axis=0), 1e-3, None)
    beta = np.empty((K, F.shape[1]))
    sigma2 = np.empty(K)
    for c in range(K):
        w = resp[:, c] + 1e-6
        beta[c] = _weighted_lstsq(F, y, w)
        r = y - F @ beta[c]
        sigma2[c] = max(np.sum(w * r**2) / np.sum(w), 0.05 * y.var())
    common = [j for j, t in enumerate(spec.fixed_names) if t not in spec.class_varying]
    beta[:, common] = shares @ beta[:, common] / shares.sum()
    if spec.residual_variance == "common":
        sigma2[:] = shares @ sigma2 / shares.sum()
    n_out = lay.n_outcome_random
    chol = np.zeros((lay.n_random, lay.n_random))
    if n_out:
        sigma2 = 0.8 * sigma2
        sd = np.array(
            [
                max(design.R[:, k].std(), 1e-3) if spec.random[k] != "1" else 1.0
                for k in range(n_out)
            ]
        )
        chol[:n_out, :n_out] = np.diag(np.sqrt(0.2 * sigma2[0] / n_out) / sd)
    for k in range(n_out, lay.n_random):
        chol[k, k] = rng.uniform(0.3, 1.0)
    load = None
    if spec.membership_random == "independent":
        load = np.eye(K - 1)
    elif spec.membership_random == "factor":
        load = np.ones((K - 1, 1))
    lsig = np.zeros((K, lay.residual_width))
    if spec.residual_groups:
        lsig[:, :] = np.log(sigma2)[:, None]
    else:
        lsig[:, 0] = np.log(sigma2)
    m = design.Z.shape[1]
    gamma = np.zeros((K - 1, m))
    if K > 1:
        gamma[:, 0] = np.log(shares[:-1] / shares[-1])
        z_sd = design.Z[:, 1:].std(axis=0)
        gamma[:, 1:] = rng.normal(0.0, 0.25, size=(K - 1, m - 1)) / z_sd
    beta, delta = _between_start(design, beta, scale, rng)
    return lay.pack(
        Params(beta=beta, lsig=lsig, gamma=gamma, chol=chol, load=load, delta=delta),
        natural=False,
    )


def _between_start(
    design: Design, beta: np.ndarray, scale: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Level-2 classes start as random shifts of the effects that vary across them."""
    spec = design.spec
    L, m2 = spec.between_classes, design.W.shape[1]
    if L == 1:
        return beta, np.zeros((0, m2))
    out = np.tile(beta, (L, 1))
    K = beta.shape[0]
    for j, name in enumerate(spec.fixed_names):
        if name in spec.between_varying:
            sd = max(float(design.F[:, j].std()), 1e-3) if name != "1" else 1.0
            shifts = rng.normal(0.0, 0.5 * scale / sd, size=L)
            out[:, j] += np.repeat(shifts, K)
    delta = np.zeros((L - 1, m2))
    if m2 > 1:
        w_sd = np.maximum(design.W[:, 1:].std(axis=0), 1e-3)
        delta[:, 1:] = rng.normal(0.0, 0.25, size=(L - 1, m2 - 1)) / w_sd
    return out, delta


def between_start(smaller: MLResult, spec: Spec, shift: float = 0.5) -> dict[str, float]:
    """Starting values for a model with level-2 classes from the same model without them.

    Every level-2 class starts at the smaller model's estimates, except the
    effect that labels the level-2 classes, which moves down by ``shift``
    outcome SDs per class (so the classes start apart, in the labelling
    order); the level-2 class regression starts at equal shares.

    Parameters
    ----------
    smaller : MLResult
        Fit of ``spec`` with one level-2 class (model B for model C).
    spec : Spec
        The model with level-2 classes.
    shift : float
        Spacing of the level-2 classes, in SDs of the outcome.

    Returns
    -------
    dict
        Natural parameter values by name, for ``fit_ml(..., init=...)``.
    """

    def bare(s: Spec) -> Spec:
        return dataclasses.replace(s, name="", description="")

    if smaller.spec.between_classes != 1 or bare(spec.with_between_classes(1)) != bare(
        smaller.spec
    ):
        raise EstimationError(
            f"the smaller fit ({smaller.spec.name!r}) must be the same model with one "
            "level-2 class."
        )
    est = dict(zip(smaller.names, smaller.estimates, strict=True))
    step = shift * float(np.std(smaller.design.y))
    out: dict[str, float] = {}
    for name in layout(spec, smaller.design.layout.group_levels).names:
        if name.startswith("D#"):
            out[name] = 0.0
            continue
        base, d = _strip_between(name, spec.between_classes)
        labels = base.split("[")[0] == spec.between_order_by
        out[name] = est[base] - (step * d if labels else 0.0)
    return out


def _strip_between(name: str, L: int) -> tuple[str, int]:
    """``x[c1,d2]`` -> (``x[c1]``, 1), ``x[d2]`` -> (``x``, 1), others unchanged with 0."""
    for d in range(L):
        label = between_label(d)
        if name.endswith(f",{label}]"):
            return name[: -len(label) - 2] + "]", d
        if name.endswith(f"[{label}]"):
            return name[: -len(label) - 2], d
    return name, 0
