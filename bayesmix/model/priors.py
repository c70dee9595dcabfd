"""Prior distributions for the Bayesian estimator, with defaults scaled to the data.

NUTS samples the model on standardised data (:mod:`bayesmix.data.standardise`:
outcome and covariates centred where that keeps the model, and scaled by
their standard deviations), and the default priors are set there, weakly
informative in the spirit of rstanarm/brms. In the user's units, for a
covariate x with standard deviation sd(x):

* intercept ``1``: Normal(mean(y), 2.5 sd(y) (1 + sum_t |mean(x_t)| / sd(x_t))),
  the intercept at the means of the centred covariates (as brms's
  ``Intercept``), the sum over covariates that are not centred;
* slope of term t: Normal(0, 2.5 sd(y) / sd(x_t)) (for a product term, sd of
  the product of the standardised variables in place of sd(x_t));
* residual standard deviation ``sigma`` (every class): HalfStudentT(3, sd(y));
* membership intercepts ``C#c ~ 1``: Normal(0, 2.5 (1 + sum_t |mean(z_t)| / sd(z_t)))
  at the centred covariates' means;
* membership slopes ``C#c ~ z``: Normal(0, 2.5 / sd(z));
* level-2 class regression ``D#d ~ w`` (model C): as the membership
  logits, on the school covariates;
* random-effect SDs ``sd(u_x)``: HalfStudentT(3, sd(y) / sd(x)) (sd(y) for
  the intercept), with an LKJ(2) prior on their correlations; the SDs of
  the membership random intercepts ``sd(u_C#1)`` or ``sd(u_f)``:
  HalfStudentT(3, 1) on the logit scale; factor loadings ``lambda(C#c)``:
  Normal(1, 2). With centred covariates the random intercept is the school
  residual at the covariates' means, and the LKJ prior concerns the
  correlations of these residuals;
* log-linear residual variance (model 1b): Normal(log var(y), 2) for the
  intercept, Normal(0, 1 / sd(v)) for the slopes.

Because they live on the standardised scale, multiplying a covariate by a
constant leaves the posterior unchanged, and so does shifting a centred one.

Override any of them with ``priors={name: Prior(...)}``, where ``name`` is a
parameter name (``"x[c1]"``, ``"x[c1,d2]"``, ``"C#1 ~ x"``), a class-varying
term name (``"x"``: every class, level-1 and level-2), or ``"sigma"`` for the
residual standard deviation. A user prior is given in the user's units and
re-expressed for the standardised parameter by its scale factor; a prior on
an intercept is the prior of the intercept at the centred covariates' means.
:attr:`bayesmix.BayesResult.priors` reports every prior in the user's units.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np

from bayesmix.data.design import Design
from bayesmix.errors import SpecError
from bayesmix.model.formula import INTERCEPT

Family = Literal["normal", "student_t", "half_normal", "half_student_t"]
_LOCATION = ("normal", "student_t")
_SCALE = ("half_normal", "half_student_t")


@dataclass(frozen=True)
class Prior:
    """One prior distribution.

    Attributes
    ----------
    family : {"normal", "student_t", "half_normal", "half_student_t"}
    mu : float
        Location (location families only).
    sigma : float
        Scale, > 0.
    nu : float
        Degrees of freedom of Student-t families.
    """

    family: Family
    mu: float = 0.0
    sigma: float = 1.0
    nu: float = 3.0

    def __post_init__(self) -> None:
        if self.family not in (*_LOCATION, *_SCALE):
            raise SpecError(f"prior family {self.family!r} is not one of {[*_LOCATION, *_SCALE]}.")
        if not (np.isfinite(self.sigma) and self.sigma > 0):
            raise SpecError(f"prior scale sigma must be positive, got {self.sigma!r}.")
        if not (np.isfinite(self.nu) and self.nu > 0):
            raise SpecError(f"prior degrees of freedom nu must be positive, got {self.nu!r}.")


def _offset_factor(M: np.ndarray, terms: tuple[str, ...]) -> float:
    factor = 1.0
    for j, term in enumerate(terms):
        if term != INTERCEPT:
            col = M[:, j]
            factor += abs(col.mean()) / col.std()
    return factor


def prior_arrays(label: str, priors: list[Prior]) -> tuple[str, np.ndarray, np.ndarray, np.ndarray]:
    """Family and per-element ``mu``, ``sigma``, ``nu`` of the priors of coefficient ``label``.

    Raises
    ------
    SpecError
        When the priors mix families (one distribution must cover them all).
    """
    families = {p.family for p in priors}
    if len(families) != 1:
        raise SpecError(f"priors of {label!r} mix families {sorted(families)}; use one family.")
    return (
        priors[0].family,
        np.array([p.mu for p in priors]),
        np.array([p.sigma for p in priors]),
        np.array([p.nu for p in priors]),
    )


def default_priors(design: Design) -> dict[str, Prior]:
    """Data-scaled default priors, keyed by parameter name (and ``"sigma"``, ``"sd(u_x)"``)."""
    spec = design.spec
    y_mean, y_sd = float(design.y.mean()), float(design.y.std())
    out: dict[str, Prior] = {}
    for j, name in enumerate(spec.fixed_names):
        if name == INTERCEPT:
            prior = Prior("normal", y_mean, 2.5 * y_sd * _offset_factor(design.F, spec.fixed_names))
        else:
            prior = Prior("normal", 0.0, 2.5 * y_sd / float(design.F[:, j].std()))
        for entry in design.layout.fixed_entries(name):
            out[entry] = prior
    if spec.residual_covariates:
        out["log(sigma2) ~ 1"] = Prior("normal", float(np.log(design.y.var())), 2.0)
        for k, term in enumerate(spec.residual_covariates, start=1):
            out[f"log(sigma2) ~ {term}"] = Prior("normal", 0.0, 1.0 / float(design.V[:, k].std()))
    else:
        out["sigma"] = Prior("half_student_t", 0.0, y_sd, 3.0)
    for k, term in enumerate(spec.random):
        col_sd = float(design.R[:, k].std())
        scale = y_sd if term == INTERCEPT or col_sd == 0 else y_sd / col_sd
        out[f"sd(u_{term})"] = Prior("half_student_t", 0.0, scale, 3.0)
    for term in spec.random_effects[len(spec.random) :]:
        # school random intercepts of the membership logits, on the logit scale
        out[f"sd(u_{term})"] = Prior("half_student_t", 0.0, 1.0, 3.0)
    for c in range(1, spec.classes - 1):
        if spec.membership_random == "factor":
            out[f"lambda(C#{c + 1})"] = Prior("normal", 1.0, 2.0)
    for c in range(spec.classes - 1):
        for j, term in enumerate(spec.membership):
            if term == INTERCEPT:
                prior = Prior("normal", 0.0, 2.5 * _offset_factor(design.Z, spec.membership))
            else:
                prior = Prior("normal", 0.0, 2.5 / float(design.Z[:, j].std()))
            out[f"C#{c + 1} ~ {term}"] = prior
    for d in range(spec.between_classes - 1):
        for j, term in enumerate(spec.between_membership):
            if term == INTERCEPT:
                scale = 2.5 * _offset_factor(design.W, spec.between_membership)
                prior = Prior("normal", 0.0, scale)
            else:
                prior = Prior("normal", 0.0, 2.5 / float(design.W[:, j].std()))
            out[f"D#{d + 1} ~ {term}"] = prior
    return out


def resolve_priors(
    design: Design,
    overrides: Mapping[str, Prior] | None,
    convert: Callable[[str, Prior], Prior] | None = None,
) -> dict[str, Prior]:
    """Default priors with user overrides applied.

    Parameters
    ----------
    design : Design
        The design the priors are for (the standardised one in
        :func:`bayesmix.fit_bayes`).
    overrides : mapping, optional
        User priors by parameter name, term or ``"sigma"``.
    convert : callable, optional
        ``convert(name, prior)`` re-expresses a user prior of parameter
        ``name`` on the design's scale
        (:meth:`bayesmix.data.standardise.Standardisation.prior_to_internal`).

    Raises
    ------
    SpecError
        For a key that names no parameter, or a family that does not fit
        the parameter (a half-distribution for a coefficient, or a location
        family for ``sigma``).
    """
    priors = default_priors(design)
    if not overrides:
        return priors
    spec = design.spec
    for key, prior in overrides.items():
        if not isinstance(prior, Prior):
            raise SpecError(f"prior for {key!r} must be a bayesmix.Prior, got {prior!r}.")
        if key in spec.class_varying or (spec.between_classes > 1 and key in spec.between_varying):
            targets = design.layout.fixed_entries(key)
        elif key in priors:
            targets = [key]
        else:
            raise SpecError(
                f"prior key {key!r} names no parameter; valid keys are {sorted(priors)} "
                f"and the class-varying terms "
                f"{sorted({*spec.class_varying, *spec.between_varying})}."
            )
        wanted = _SCALE if key == "sigma" or key.startswith("sd(") else _LOCATION
        if prior.family not in wanted:
            raise SpecError(f"prior for {key!r} must be one of {wanted}, got {prior.family!r}.")
        for target in targets:
            priors[target] = prior if convert is None else convert(target, prior)
    return priors


CANONICAL_DIGITS = 10
"""Significant digits kept of a prior's scale and degrees of freedom by :func:`canonical_priors`."""


def _round_significant(value: float) -> float:
    return float(f"{value:.{CANONICAL_DIGITS}g}")


def canonical_priors(priors: Mapping[str, Prior]) -> dict[str, Prior]:
    """``priors`` with rounding noise removed: scales and degrees of freedom to
    :data:`CANONICAL_DIGITS` significant digits, locations to multiples of
    ``10**-CANONICAL_DIGITS`` times the scale.

    On standardised data a data-scaled default is the same number for every
    data set up to rounding (a scale of 2.5 comes out as 2.4999999999999996,
    a location of 0 as -4e-17). The priors enter the compiled log-density as
    constants, so without this two data sets of one structure would compile
    different code (:mod:`bayesmix.bayes.compiled_store`); the change to the
    prior is below 1e-10 of its scale.
    """
    out = {}
    for name, prior in priors.items():
        sigma = _round_significant(prior.sigma)
        mu = float(np.round(prior.mu / sigma, CANONICAL_DIGITS)) * sigma + 0.0
        out[name] = Prior(prior.family, mu, sigma, _round_significant(prior.nu))
    return out
