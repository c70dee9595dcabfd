"""Generative definitions of the coordinates NUTS samples, for the public model.

The model that :func:`bayesmix.fit_bayes` samples writes some coordinates as
flat variables whose prior is a potential (class offsets and log gaps,
sheared class coefficients, centred school coefficients) and the
coefficient that labels the classes as a Normal under an order transform.
Their density is right, but PyMC cannot draw them forward: a flat variable
has no random method, a potential is skipped by forward sampling, and a
Normal under an order transform is drawn unordered. Here each becomes a
:class:`pymc.CustomDist` whose ``logp`` is the same density in the same
value coordinates and whose ``dist`` draws from it, so that
:func:`bayesmix.build_model` gives a model that
:func:`pymc.sample_prior_predictive` draws from exactly.

The order constraint makes the prior of a labelling coefficient the prior
of its K exchangeable class values restricted to one order, which is the
distribution of K independent prior draws sorted: the draws sort, and the
density is the prior's (up to the constant K!). This needs the K priors to
be one distribution; with a different prior per class forward sampling
would need rejection, and :func:`check_exchangeable` refuses it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pymc as pm
import pytensor.tensor as pt
from pymc.distributions.transforms import Ordered

from bayesmix.bayes.transforms import CornerOrdered
from bayesmix.density.likelihood import mixture_logp
from bayesmix.density.primitives import normal_logpdf, segment_sum, std_normal_logpdf
from bayesmix.errors import SpecError
from bayesmix.model.priors import Prior, prior_arrays


def check_exchangeable(label: str, priors: list[Prior]) -> Prior:
    """The one prior of the class values of an ordered coefficient ``label``.

    Raises
    ------
    SpecError
        When the classes have different priors, whose order-restricted
        prior has no sorted-draws form.
    """
    if len(set(priors)) != 1:
        raise SpecError(
            f"the classes are labelled by {label!r}, whose class values have different priors "
            f"{sorted({repr(p) for p in priors})}; the generative model draws the ordered "
            f"values as sorted draws of one prior: give one prior for the term {label!r} "
            "(priors={term: Prior(...)}) instead of one per class."
        )
    return priors[0]


def _prior_dist(prior: Prior, shape: Any = None) -> Any:
    """The prior as an unnamed PyMC distribution (Normal or Student-t)."""
    if prior.family == "normal":
        return pm.Normal.dist(mu=prior.mu, sigma=prior.sigma, shape=shape)
    return pm.StudentT.dist(nu=prior.nu, mu=prior.mu, sigma=prior.sigma, shape=shape)


def prior_logp(label: str, priors: list[Prior], value: Any) -> Any:
    """Summed log density of ``value`` under one Normal or Student-t prior per element."""
    family, mu, sigma, nu = prior_arrays(label, priors)
    if family == "normal":
        dist = pm.Normal.dist(mu=mu, sigma=sigma)
    else:
        dist = pm.StudentT.dist(nu=nu, mu=mu, sigma=sigma)
    return pt.sum(pm.logp(dist, value))


def _descending(x: Any) -> Any:
    return -pt.sort(-x, axis=-1)


def _independent_draws(priors: list[Prior]) -> Any:
    """One draw of each prior, a vector."""
    family, mu, sigma, nu = prior_arrays("draws", priors)
    if family == "normal":
        return pm.Normal.dist(mu=mu, sigma=sigma)
    return pm.StudentT.dist(nu=nu, mu=mu, sigma=sigma)


def shifted_coefficients(
    name: str,
    label: str,
    priors: list[Prior],
    shift: Any,
    *,
    ordered: bool,
    dims: str,
    initval: np.ndarray,
) -> Any:
    """Class values ``value = beta + shift`` of a coefficient with priors on ``beta``.

    ``shift`` (a scalar tensor, the same in every class) is 0 for a
    coefficient sampled as it is, or the shear of
    :func:`bayesmix.bayes.coefficients.mixture_fixed_effects`. With
    ``ordered`` the values are descending (transform
    ``Ordered(ascending=False)``) and drawn as sorted prior draws.
    """
    K = len(priors)
    shift_k = pt.zeros(K) + shift
    kwargs: dict[str, Any] = {"dims": dims, "initval": initval}
    if ordered:
        check_exchangeable(label, priors)
        kwargs["transform"] = Ordered(ascending=False)

    def logp(value: Any, s: Any) -> Any:
        return prior_logp(label, priors, value - s)

    def dist(s: Any, size: Any) -> Any:
        draws = _independent_draws(priors)
        return (_descending(draws) if ordered else draws) + s

    return pm.CustomDist(name, shift_k, logp=logp, dist=dist, signature="(k)->(k)", **kwargs)


def reference_offsets(
    label: str, priors: list[Prior], ordered: bool, start: np.ndarray
) -> tuple[Any, Any]:
    """The last class's value ``base`` and the other classes' offsets from it, generatively.

    Unordered, ``base`` has the last class's prior and the offsets
    ``d_c = value_c - base`` the priors of the other classes shifted by
    ``-base``. Ordered (descending), the free coordinates are ``base`` and
    the log gaps ``log(value_c - value_{c+1})``; ``base`` is then the least
    of K prior draws, density ``f(base) (1 - F(base))^(K-1)``, and the
    values above it are K-1 draws of the prior truncated below at ``base``,
    sorted, whose density carries ``-(K-1) log(1 - F(base))``. The two terms
    cancel in the joint, which is the density the sampled model gives these
    coordinates (up to the constant log K!, left out of both factors).

    Returns the two free variables, ``b_<label>_last`` and
    ``b_<label>_log_gap`` (ordered) or ``b_<label>_offset``.
    """
    K = len(priors)
    offsets0 = start[:-1] - start[-1]
    name = f"b_{label}"
    if not ordered:
        last = priors[-1]
        base = pm.CustomDist(
            f"{name}_last",
            logp=lambda v: prior_logp(label, [last], v),
            dist=lambda size: _prior_dist(last),
            signature="->()",
            initval=start[-1],
        )

        def offset_logp(value: Any, b: Any) -> Any:
            return prior_logp(label, priors[:-1], b + value)

        def offset_dist(b: Any, size: Any) -> Any:
            return _independent_draws(priors[:-1]) - b

        offsets = pm.CustomDist(
            f"{name}_offset",
            base,
            logp=offset_logp,
            dist=offset_dist,
            signature="()->(k)",
            initval=offsets0,
            shape=K - 1,
        )
        return base, offsets
    prior = check_exchangeable(label, priors)

    def tail(b: Any) -> Any:
        return (K - 1) * pm.logccdf(_prior_dist(prior), b)

    base = pm.CustomDist(
        f"{name}_last",
        logp=lambda v: prior_logp(label, [prior], v) + tail(v),
        dist=lambda size: pt.min(_prior_dist(prior, shape=(K,))),
        signature="->()",
        initval=start[-1],
    )

    def gap_logp(log_gap: Any, b: Any) -> Any:
        offsets = pt.cumsum(pt.exp(log_gap)[::-1])[::-1]
        return prior_logp(label, priors[:-1], b + offsets) + pt.sum(log_gap) - tail(b)

    def gap_dist(b: Any, size: Any) -> Any:
        above = _descending(_draws_above(prior, b, K - 1))
        return pt.log(above - pt.concatenate([above[1:], pt.stack([b])]))

    gaps0 = offsets0 - np.append(offsets0[1:], 0.0)
    log_gap = pm.CustomDist(
        f"{name}_log_gap",
        base,
        logp=gap_logp,
        dist=gap_dist,
        signature="()->(k)",
        initval=np.log(np.maximum(gaps0, 1e-6)),
        shape=K - 1,
    )
    return base, log_gap


def _draws_above(prior: Prior, lower: Any, n: int) -> Any:
    """``n`` draws of the prior truncated below at ``lower``, by its inverse survival function.

    Written out (erfc for the Normal, the incomplete beta function for the
    Student-t) so that the draw compiles with the rest of the forward graph.
    The survival probability is drawn uniformly below the bound's, which
    keeps the far upper tail exact.
    """
    z0 = (lower - prior.mu) / prior.sigma
    u = pm.Uniform.dist(0.0, 1.0, shape=(n,))
    if prior.family == "normal":
        z = np.sqrt(2.0) * pt.erfcinv(2.0 * 0.5 * pt.erfc(z0 / np.sqrt(2.0)) * u)
        return prior.mu + prior.sigma * z
    a, nu = 0.5 * prior.nu, prior.nu
    # P(T > z) = I_{nu / (nu + z^2)}(nu / 2, 1 / 2) / 2 for z >= 0
    tail = 0.5 * pt.betainc(a, 0.5, nu / (nu + z0**2))
    s = pt.switch(pt.ge(z0, 0.0), tail, 1.0 - tail) * u
    w = pt.betaincinv(a, 0.5, 2.0 * pt.minimum(s, 1.0 - s))
    z = pt.sqrt(nu * (1.0 / w - 1.0))
    return prior.mu + prior.sigma * pt.switch(pt.lt(s, 0.5), z, -z)


def school_coefficients_logp(a: Any, mean: Any, L: Any, r: int, n_schools: int) -> Any:
    """Log density of school coefficients ``a`` (cluster x r) under N(mean_j, L_oo L_oo').

    ``L`` is the lower Cholesky factor of the covariance of all school
    residuals, its first r rows and columns those of the coefficients:
    ``z_o = L_oo^-1 (a - mean)`` are standard normal, and the map has
    Jacobian ``-J log|L_oo|``.
    """
    z_o = forward_substitution(L, a - mean, r)
    log_diag = sum(pt.log(L[k, k]) for k in range(r))
    return pt.sum(std_normal_logpdf(z_o, pt, r)) - n_schools * log_diag


def forward_substitution(L: Any, resid: Any, r: int) -> Any:
    """``L[:r, :r]^-1 resid_j`` for every school, unrolled over the r <= 4 outcome terms.

    Elementwise over schools, which numba fuses, where a batched triangular
    solve is a library call per evaluation and slow to compile.
    """
    zs: list[Any] = []
    for i in range(r):
        acc = resid[:, i]
        for k in range(i):
            acc = acc - L[i, k] * zs[k]
        zs.append(acc / L[i, i])
    return pt.stack(zs, axis=1)


def school_coefficients(mean: Any, L: Any, r: int, n_schools: int, initval: np.ndarray) -> Any:
    """``b_school`` (cluster x oterm), drawn as ``mean + z L_oo'`` with z standard normal."""

    def dist(m: Any, chol: Any, size: Any) -> Any:
        z = pm.Normal.dist(0.0, 1.0, shape=m.shape)
        return m + pt.dot(z, pt.transpose(chol[:r, :r]))

    return pm.CustomDist(
        "b_school",
        mean,
        L,
        logp=lambda a, m, chol: school_coefficients_logp(a, m, chol, r, n_schools),
        dist=dist,
        signature="(j,o),(q,q)->(j,o)",
        dims=("cluster", "oterm"),
        initval=initval,
    )


@dataclass(frozen=True, eq=False)
class UserUnits:
    """The outcome as the user gave it, and its standardisation ``y' = (y - centre) / scale``.

    Attributes
    ----------
    y : ndarray
        The observed outcome, in the user's units.
    centre, scale : float
        See :class:`bayesmix.data.standardise.Standardisation` (``y_centre``, ``y_scale``).
    """

    y: np.ndarray
    centre: float
    scale: float


def observed_outcome(units: UserUnits, params: tuple[Any, ...]) -> Any:
    """The observed outcome ``y`` in the user's units, drawn as the model generates it.

    ``params`` are the internal (standardised) class means ``mu`` (n, K),
    residual variances (n, K) and log class probabilities (n, K). A student
    draws a class, then ``y' ~ N(mu_c, sigma2_c)``; the outcome is
    ``centre + scale y'``, whose density is that of ``y'`` times
    ``1 / scale`` per student (the classes marginalised, as NUTS sees them).
    """
    centre, scale = units.centre, units.scale
    log_scale = float(np.log(scale))

    def logp(value: Any, mu: Any, sigma2: Any, logw: Any) -> Any:
        return mixture_logp((value - centre) / scale, mu, sigma2, logw) - log_scale

    def dist(mu: Any, sigma2: Any, logw: Any, size: Any) -> Any:
        c = pm.Categorical.dist(logit_p=logw)
        mean = pt.take_along_axis(mu, c[..., None], axis=-1)[..., 0]
        var = pt.take_along_axis(sigma2, c[..., None], axis=-1)[..., 0]
        return centre + scale * (mean + pt.sqrt(var) * pm.Normal.dist(0.0, 1.0, shape=mean.shape))

    return pm.CustomDist(
        "y",
        *params,
        logp=logp,
        dist=dist,
        signature="(k),(k),(k)->()",
        observed=units.y,
        dims="obs",
    )


def corner_ordered_coefficients(
    name: str, label: str, priors: list[Prior], row: bool, col: bool, initval: np.ndarray
) -> Any:
    """An effect varying over level-1 and level-2 classes, shape (L, K), ordered as
    :class:`bayesmix.bayes.transforms.CornerOrdered` orders it, drawn in that order.

    Row 0 descending (with ``row``) and column 0 descending (with ``col``):
    the prior restricted to those orders is that of independent prior draws
    whose largest of row 0 and column 0 is moved to the corner, the rest of
    row 0 and of column 0 each sorted. Every split of the other values
    between the row and the column is then equally likely, as under the
    restricted prior, since the draws come in random order.
    """
    check_exchangeable(label, priors)
    L, K = initval.shape

    def logp(value: Any) -> Any:
        return prior_logp(label, priors, pt.flatten(value))

    def dist(size: Any) -> Any:
        x = pt.reshape(_independent_draws(priors), (L, K))
        if not (row and col):
            if row:
                return pt.set_subtensor(x[0, :], _descending(x[0, :]))
            return pt.set_subtensor(x[:, 0], _descending(x[:, 0]))
        v = pt.concatenate([x[0, :], x[1:, 0]])
        top = pt.argmax(v)
        largest = v[top]
        v = pt.set_subtensor(v[top], v[0])
        v = pt.set_subtensor(v[0], largest)
        x = pt.set_subtensor(x[0, 0], v[0])
        x = pt.set_subtensor(x[0, 1:], _descending(v[1:K]))
        return pt.set_subtensor(x[1:, 0], _descending(v[K:]))

    return pm.CustomDist(
        name,
        logp=logp,
        dist=dist,
        signature="->(l,k)",
        transform=CornerOrdered(row, col),
        dims=("between", "class"),
        initval=initval,
        shape=(L, K),
    )


def observed_school_outcome(
    units: UserUnits, cluster: np.ndarray, bounds: np.ndarray, params: tuple[Any, ...]
) -> Any:
    """The observed outcome of a model with level-2 classes, in the user's units.

    ``params`` are the internal class means ``mu`` (n, L, K), log class
    probabilities (n, L, K) and log residual variances (n, L, K) of each
    student given each level-2 class, and the schools' log level-2 class
    probabilities (J, L). A school draws its level-2 class D_j, each of its
    students a class given D_j, then ``y' ~ N(mu, sigma2)``; the outcome is
    ``centre + scale y'``. The density is that of the schools with their
    classes marginalised (see :func:`bayesmix.bayes.model._between_likelihood`),
    one term for the whole outcome vector.
    """
    centre, scale = units.centre, units.scale
    n = len(units.y)
    log_scale = n * float(np.log(scale))
    rows = np.arange(n)

    def logp(value: Any, mu: Any, logw: Any, logs2: Any, log_pi: Any) -> Any:
        y = (value - centre) / scale
        joint = logw + normal_logpdf(y[:, None, None] - mu, logs2, pt)
        school = segment_sum(pt.logsumexp(joint, axis=2), bounds, pt)
        return pt.sum(pt.logsumexp(school + log_pi, axis=1)) - log_scale

    def dist(mu: Any, logw: Any, logs2: Any, log_pi: Any, size: Any) -> Any:
        d = pm.Categorical.dist(logit_p=log_pi)[cluster]
        c = pm.Categorical.dist(logit_p=logw[rows, d])
        mean = mu[rows, d, c]
        sd = pt.exp(0.5 * logs2[rows, d, c])
        return centre + scale * (mean + sd * pm.Normal.dist(0.0, 1.0, shape=(n,)))

    return pm.CustomDist(
        "y",
        *params,
        logp=logp,
        dist=dist,
        signature="(n,l,k),(n,l,k),(n,l,k),(j,l)->(n)",
        observed=units.y,
        dims="obs",
    )
