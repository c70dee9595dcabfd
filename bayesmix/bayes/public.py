"""The model as a PyMC model of its own: :func:`build_model` and :func:`prior_predictive`.

:func:`bayesmix.fit_bayes` samples a PyMC model of the spec on the
standardised data (:mod:`bayesmix.data.standardise`), in coordinates chosen
for NUTS. :func:`build_model` gives the same model, the same free variables
and the same joint density, written so that PyMC's own tools work on it:
every free variable is a distribution that can be drawn forward
(:mod:`bayesmix.bayes.generative`), the paper's parameters are named
deterministics in the user's units, and ``y`` is observed in the user's
units.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pymc as pm
import pytensor.tensor as pt
import xarray as xr

from bayesmix.bayes.constrained import model_ties
from bayesmix.bayes.fit import chain_start, prepare
from bayesmix.bayes.generative import UserUnits
from bayesmix.bayes.model import sampling_model
from bayesmix.data.design import DataLike, Design, MissingPolicy
from bayesmix.data.standardise import Standardisation
from bayesmix.density.fused import register_jax
from bayesmix.errors import EstimationError
from bayesmix.model.priors import Prior
from bayesmix.model.spec import Spec
from bayesmix.results.ml import MLResult
from bayesmix.validate import check_count, check_seed


def build_model(
    spec: Spec,
    data: DataLike,
    priors: Mapping[str, Prior] | None = None,
    *,
    missing: MissingPolicy = "error",
    init: MLResult | None = None,
) -> pm.Model:
    """The Bayesian model of a spec on data, as a PyMC model.

    The model :func:`bayesmix.fit_bayes` samples, in a form PyMC's tools
    work on: :func:`pymc.model_to_graphviz`,
    :func:`pymc.sample_prior_predictive`, :func:`pymc.sample_posterior_predictive`
    and :func:`pymc.sample` itself. The class indicators are marginalised, as
    NUTS needs; forward sampling draws them.

    Parameters
    ----------
    spec : Spec
        The model.
    data : DataFrame, str or Path
        Data frame, CSV path or bundled data set name.
    priors : mapping of str to Prior, optional
        Overrides of the data-scaled default priors, in the user's units
        (see :mod:`bayesmix.model.priors`), as in :func:`bayesmix.fit_bayes`.
    missing : {"error", "listwise"}
        Handling of rows with missing values.
    init : MLResult, optional
        An ML fit of this spec to these data. Its estimates become the
        initial point and choose the coordinates exactly as
        :func:`bayesmix.fit_bayes` does from an ML start (which school
        coefficients are centred, the order of the residuals' Cholesky
        factor). Without it the coordinates are those of
        ``fit_bayes(init="prior")``; the model and its prior are the same.

    Returns
    -------
    pymc.Model
        Dimensions ``class`` (``c1``, ``c2``...), ``logit`` (``C#1``...,
        the membership logits; the last class is the reference) and
        ``mterm`` (their terms), ``cluster`` (the schools) and ``rterm``
        (the random terms), ``obs`` (the students), ``between`` and
        ``school_logit`` with level-2 classes, ``group`` and ``lterm`` for
        residual groups and log-linear residual variances. Deterministics
        named as the rows of ``fit.summary()`` (``1[c1]``, ``x:w``,
        ``var(u_1)``, ``cov(u_1,u_x)``, ``sigma2``, ``C#1 ~ w``...) hold the
        paper's parameters in the user's units, and ``y`` is the observed
        outcome in the user's units (with level-2 classes one density term
        for the whole vector, the schools' classes marginalised). The free variables are those NUTS
        samples, on the standardised scale (``b_<term>`` fixed effects or
        their reparameterisations, ``sigma``, ``gamma``, ``sd_u`` and
        ``chol_corr_u``, ``z_u``...); the model's log density is that of the model
        ``fit_bayes`` samples minus ``n log sd(y)``, the Jacobian of the
        outcome's standardisation.

    Raises
    ------
    SpecError
        For an ordered (class labelling) effect with a different prior in
        each class, whose order-restricted prior has no sorted-draws form.
    """
    return _public_model(spec, data, priors, missing, init)[0]


def _public_model(
    spec: Spec,
    data: DataLike,
    priors: Mapping[str, Prior] | None,
    missing: MissingPolicy,
    init: MLResult | None,
) -> tuple[pm.Model, list[str]]:
    """:func:`build_model` and the names of the paper's parameters, in layout order."""
    if isinstance(spec, Spec) and spec.weights is not None:
        raise EstimationError(
            f"model {spec.name!r} has sampling weights; the public PyMC model is the "
            "generative model of the data, which weights do not change: drop [weights] "
            "(dataclasses.replace(spec, weights=None)), or sample the weighted "
            "pseudo-posterior with bayesmix.fit_bayes(..., pseudo_likelihood=True)."
        )
    design, internal, st, full_priors = prepare(spec, data, priors, missing)
    start, init_z = None, None
    if init is not None:
        if getattr(init, "estimates", None) is None:
            raise EstimationError(f"init must be an MLResult of this spec or None, got {init!r}.")
        # a given ML fit is used as it is: no ML starts, no seed
        start, init_z = chain_start(init, design, internal, st, 0, 0)
    units = UserUnits(y=design.y, centre=st.y_centre, scale=st.y_scale)
    model = sampling_model(
        internal, full_priors, start, init_z, user_units=units, ties=model_ties(st)
    )
    # the model is for any PyMC sampler, numpyro's and blackjax's included
    register_jax()
    with model:
        _paper_parameters(model, internal, st)
    return model, list(design.layout.names)


def prior_predictive(
    spec: Spec,
    data: DataLike,
    *,
    draws: int = 500,
    random_seed: int | None = None,
    priors: Mapping[str, Prior] | None = None,
    missing: MissingPolicy = "error",
) -> xr.DataTree:
    """Draws of the parameters from their prior, and of the outcome given them.

    Parameters
    ----------
    spec : Spec
    data : DataFrame, str or Path
        The design (covariates, schools) the outcome is drawn on.
    draws : int
        Number of draws.
    random_seed : int, optional
        Seed; the same seed gives the same draws.
    priors : mapping of str to Prior, optional
        Overrides of the default priors, as in :func:`bayesmix.fit_bayes`.
        The default priors are scaled to the data's outcome, so they are
        the priors a fit to ``data`` uses.
    missing : {"error", "listwise"}

    Returns
    -------
    xarray.DataTree
        Groups ``prior`` (the paper's parameters, named as in
        ``fit.summary()``, in the user's units, dims ``chain`` x ``draw``),
        ``prior_predictive`` (``y``, dims ``chain`` x ``draw`` x ``obs``)
        and ``observed_data`` (``y``), as arviz-plots' predictive checks
        read them.
    """
    draws = check_count(draws, "draws")
    seed = check_seed(random_seed)
    model, names = _public_model(spec, data, priors, missing, None)
    return pm.sample_prior_predictive(
        draws=draws, model=model, var_names=[*names, "y"], random_seed=seed
    )


def _natural_internal(model: pm.Model, design: Design) -> Any:
    """The natural parameters (layout order) on the standardised scale, a tensor.

    The symbolic counterpart of :func:`bayesmix.bayes.draws.structured_draws`
    followed by :meth:`bayesmix.model.params.Layout.pack`.
    """
    spec, lay = design.spec, design.layout
    K, L = spec.classes, spec.between_classes
    out: list[Any] = []
    for name in spec.fixed_names:
        b = model[f"b_{name}"]
        cv, bv = lay._varies(name)
        if cv and bv:
            out += [b[d, c] for d in range(L) for c in range(K)]
        elif cv:
            out += [b[c] for c in range(K)]
        elif bv:
            out += [b[d] for d in range(L)]
        else:
            out.append(pt.reshape(b, ()))
    r = lay.n_random
    if r:
        if "chol_u" in model.named_vars:
            factor = pm.math.expand_packed_triangular(r, model["chol_u"], lower=True)
            cov = pt.dot(factor, pt.transpose(factor))
        else:
            cov = pt.diag(model["sd_u"] ** 2)
        out += [cov[i, i] for i in range(r)]
        if spec.covariance == "unstructured":
            out += [cov[i, j] for i in range(r) for j in range(i + 1, r)]
    if spec.membership_random == "factor" and K > 2:
        out += [model["lambda"][c] for c in range(K - 2)]
    # class major, as Layout._residual_names; one entry each when shared by the classes
    resid = lay._slices()["resid"]
    if spec.residual_covariates:
        values = pt.flatten(model["lsig"])
    else:
        values = pt.flatten(model["sigma"] ** 2)
    out += [values[i] for i in range(resid.stop - resid.start)]
    if K > 1:
        gamma = pt.flatten(model["gamma"])
        out += [gamma[i] for i in range(len(spec.membership) * (K - 1))]
    if L > 1:
        delta = pt.flatten(model["delta"])
        out += [delta[i] for i in range(len(spec.between_membership) * (L - 1))]
    return pt.stack(out)


def _paper_parameters(model: pm.Model, design: Design, st: Standardisation) -> None:
    """Add each paper parameter, in the user's units, as a deterministic of its name."""
    natural = pt.dot(st.A, _natural_internal(model, design)) + st.b
    for k, name in enumerate(design.layout.names):
        pm.Deterministic(name, natural[k])
