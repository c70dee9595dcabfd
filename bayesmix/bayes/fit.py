"""Bayesian estimation: the likelihood of :mod:`bayesmix.density.likelihood` in PyMC, by NUTS.

Class indicators are marginalised (log-sum-exp) so that NUTS sees a smooth
density; classes are labelled by a descending order constraint on the
``order_classes_by`` coefficient (class 1 highest, as in the ML labelling);
chains start at the ML solution by default. After sampling, the DataTree is
laid out as :mod:`bayesmix.bayes.datatree` describes (the paper's parameters
in ``posterior``, the sampler's coordinates in ``sample_space``, one
pointwise log-likelihood array), posterior class probabilities are
computed, and chains are checked for disagreeing class labels.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import replace
from typing import Literal

import numpy as np
import xarray as xr

from bayesmix.analysis import psis
from bayesmix.bayes.constrained import model_ties
from bayesmix.bayes.datatree import split_posterior
from bayesmix.bayes.diagnose import posterior_diagnostics
from bayesmix.bayes.draws import (
    Pointwise,
    _between_pointwise_draws,
    _pointwise_draws,
    check_labels,
    named_draws,
    structured_draws,
)
from bayesmix.bayes.model import sampling_model
from bayesmix.bayes.posterior import bayes_result
from bayesmix.bayes.residuals import between_residual_start
from bayesmix.bayes.sampling import Sampler, compile_key, run_sampler, sampler_backend
from bayesmix.data.design import DataLike, Design, MissingPolicy, build_design
from bayesmix.data.standardise import Standardisation, standardise
from bayesmix.errors import (
    EstimationError,
)
from bayesmix.ml.starts import constrained_start
from bayesmix.ml.tie import make_tie
from bayesmix.model.params import Params
from bayesmix.model.priors import Prior, canonical_priors, resolve_priors
from bayesmix.model.spec import Spec
from bayesmix.results.bayes import BayesResult, LabelCheck
from bayesmix.results.ml import MLResult
from bayesmix.validate import check_count, check_seed

Init = Literal["ml", "prior"]


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
    backend: Literal["numba", "jax"] | None = None,
    progress: bool = False,
    pseudo_likelihood: bool = False,
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
        the run on the same machine (for numpyro and blackjax, with as many
        JAX devices: chains run in parallel and one after another round
        differently).
    init : {"ml", "prior"} or MLResult
        Start every chain at the ML estimates (default: avoids chains
        settling in different modes), at those of a given ML fit of the same
        spec and data (no refit), or at the prior-based default.
    priors : mapping of str to Prior, optional
        Overrides of the data-scaled default priors
        (see :mod:`bayesmix.model.priors`).
    sampler : {"nutpie", "pymc", "numpyro", "blackjax"}
        NUTS implementation: nutpie (default; its compiled model is kept for
        refits, see Notes), or one of ``pm.sample``'s ``nuts_sampler``
        choices: PyMC's own NUTS, numpyro's or blackjax's. numpyro and
        blackjax run the log density in JAX, the fused mixture density through
        its JAX implementation, and need their packages
        (``pip install "bayesmix[jax]"``). They run the chains in parallel on
        one JAX device each where JAX has enough devices (on CPU when
        ``pymc.sampling.jax`` was imported before JAX first ran), else one
        after another (numpyro) or vectorised (blackjax). All return the same
        result: the same posterior variables, ``sample_stats`` with
        ``diverging``, the same diagnostics.
    missing : {"error", "listwise"}
        Handling of rows with missing values.
    ml_starts : int
        Random starts of the ML fit used for initialisation: the first
        :data:`QUICK_ML_STARTS` of them, and all of them only when those do
        not reach their best log-likelihood twice (see :func:`ml_start`).
    adaptation : {"diag", "low_rank"}
        nutpie's mass-matrix adaptation: diagonal, or diagonal plus a
        low-rank correction that captures strong posterior correlations
        (e.g. between fixed effects of uncentred covariates). The other
        samplers adapt a diagonal mass matrix and refuse ``"low_rank"``.
    backend : {"numba", "jax"}, optional
        Compiler of the log-density and its gradient for nutpie (default:
        the environment variable ``BAYESMIX_NUTS_BACKEND``, else numba).
        ``"jax"`` runs on a GPU when JAX has one; on CPU numba samples faster
        for models of the paper's size (JAX pays a dispatch cost per
        gradient), but JAX compiles a new model in seconds where numba
        takes tens of seconds, so short runs finish sooner with JAX. The
        other samplers compile with their own (pymc numba, numpyro and
        blackjax JAX) and refuse the other value.
    progress : bool
        Show progress.
    pseudo_likelihood : bool
        For a model with sampling weights (``spec.weights``), sample the weighted
        pseudo-posterior: each student's log density times its weight ``a_ij b_j``
        (:mod:`bayesmix.model.weights`; for model C the school weight multiplies each
        school's term), the school residuals' distribution and the priors unweighted.
        Its posterior SDs and intervals are not design-based uncertainty (they
        understate it when the weights vary much); use :func:`bayesmix.fit_ml`'s
        robust standard errors for inference. The pointwise ``log_likelihood`` stays
        unweighted. A weighted model without this option is refused.

    Returns
    -------
    BayesResult
        Its ``idata`` is an ArviZ DataTree whose ``posterior`` holds the
        paper's parameters under the names of ``summary()`` (``1[c1]``,
        ``x:w``, ``var(u_1)``, ``C#1 ~ w``) in the user's units, the school
        residuals ``u`` and the class shares per draw ``class_share``;
        ``sample_space`` holds the coordinates NUTS sampled (standardised);
        ``log_likelihood`` holds one array, ``y`` per student (model C:
        ``y_school`` per school), so that ``az.summary``, ``az.loo`` and
        ``az.compare`` work with their defaults. See
        :mod:`bayesmix.bayes.datatree`; the school levels of LOO are
        :meth:`BayesResult.loo_data`.

    Notes
    -----
    The nutpie model compiled for a spec, data, priors and ML start is kept
    (the last four in the process), so a refit of the same model with more
    draws, another seed or another adaptation does not compile again. The
    other samplers compile on every call, inside ``pm.sample``.

    With ``init="ml"`` or an ML fit every sampler starts its chains at the
    ML solution, without jitter; with ``init="prior"`` at jittered points
    around the prior-based start.

    Ctrl-C while sampling: nutpie stops and the result keeps the draws that
    every chain finished, with a warning that the run was interrupted. PyMC's
    own sampler does the same through ``pm.sample``, which may drop chains
    that stopped early to keep more draws. numpyro and blackjax sample in one
    compiled JAX call that Python interrupts only when it returns: Ctrl-C
    takes effect after sampling, as a ``KeyboardInterrupt`` with no result.
    An interruption before any draw was kept raises
    :class:`~bayesmix.errors.EstimationError`.

    Timings: ``compile_s`` is nutpie's compilation, or ``pm.sample``'s time
    outside its sampling loop for the other samplers; numpyro and blackjax
    compile their sampling loop with XLA when it starts, and that counts in
    ``sampling_s``.
    """
    t_start = time.perf_counter()
    _check_options(draws, tune, chains, init)
    backend = sampler_backend(sampler, backend, adaptation)
    random_seed = check_seed(random_seed)
    design, internal, st, full_priors = prepare(spec, data, priors, missing)
    _check_weighted(spec, pseudo_likelihood)
    seed = int(np.random.default_rng(random_seed).integers(2**31 - 1))
    init_params, init_z = chain_start(init, design, internal, st, ml_starts, seed)
    model = sampling_model(
        internal, full_priors, init_params, init_z, shared_outcome=True, ties=model_ties(st)
    )
    key = None
    if sampler == "nutpie":
        key = compile_key(internal, full_priors, init_params, init_z, backend)
    idata, compile_s, sampling_s, interrupted_at = run_sampler(
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
    named, pointwise = _record_draws(idata, design, internal, st)
    chain_between = pointwise.chain_between
    result = bayes_result(
        spec=spec,
        design=design,
        idata=idata,
        named=named,
        chain_post=pointwise.chain_post,
        chain_between=chain_between,
        divergences=int(np.asarray(idata["sample_stats"]["diverging"]).sum()),
        labels=(
            check_labels(pointwise.chain_post) if spec.classes > 1 else LabelCheck(False, (), ())
        ),
        between_labels=None if chain_between is None else check_labels(chain_between),
        loo=psis.loo(idata),
        priors={name: st.prior_to_user(name, prior) for name, prior in full_priors.items()},
        settings={
            "draws": draws,
            "tune": tune,
            "chains": chains,
            "seed": seed,
            "init": "prior" if init == "prior" else "ml",
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
    result = replace(result, diagnostics=posterior_diagnostics(result))
    for diagnostic in result.diagnostics:
        diagnostic.warn(stacklevel=2)
    return result


def _check_weighted(spec: Spec, pseudo_likelihood: bool) -> None:
    """Refuse a weighted model unless its pseudo-posterior is asked for, and the option
    for an unweighted one."""
    if spec.weights is not None and not pseudo_likelihood:
        raise EstimationError(
            f"model {spec.name!r} has sampling weights ({', '.join(spec.weights.columns)}); "
            "NUTS samples them only as a weighted pseudo-posterior, whose SDs are not "
            "design-based uncertainty: pass pseudo_likelihood=True to sample it, or fit by "
            "bayesmix.fit_ml (pseudo-ML with robust standard errors)."
        )
    if pseudo_likelihood and spec.weights is None:
        raise EstimationError(
            f"pseudo_likelihood=True weights the likelihood, and model {spec.name!r} has no "
            "[weights]; name the weight columns in the model, or drop the option."
        )


def prepare(
    spec: Spec, data: DataLike, priors: Mapping[str, Prior] | None, missing: MissingPolicy
) -> tuple[Design, Design, Standardisation, dict[str, Prior]]:
    """The design, its standardised twin NUTS samples on, the map between them, and the
    complete priors on the standardised scale (``priors`` given in the user's units),
    without rounding noise (:func:`~bayesmix.model.priors.canonical_priors`)."""
    design = build_design(spec, data, missing=missing)
    internal, st = standardise(design)
    full = canonical_priors(resolve_priors(internal, priors, st.prior_to_internal))
    return design, internal, st, full


def _check_options(draws: int, tune: int, chains: int, init: Init | MLResult) -> None:
    """Refuse option values no fit can use, naming the option (the sampler's own options
    are checked by :func:`bayesmix.bayes.sampling.sampler_backend`)."""
    for label, value in (("draws", draws), ("tune", tune), ("chains", chains)):
        check_count(value, label)
    # a fit given as init is asked for what the start needs, its ML estimates
    if init not in ("ml", "prior") and getattr(init, "estimates", None) is None:
        raise EstimationError(f"init must be 'ml', 'prior' or an MLResult, got {init!r}.")


def chain_start(
    init: Init | MLResult,
    design: Design,
    internal: Design,
    st: Standardisation,
    ml_starts: int,
    seed: int,
) -> tuple[Params | None, np.ndarray | None]:
    """Where every chain starts, on the standardised design ``internal``.

    The structured ML estimates (of a new ML fit with ``init="ml"``, else of
    the given fit) and, for level-2 classes with school residuals, each
    school's standardised residuals per level-2 class; ``(None, None)`` for
    the prior-based start.
    """
    if init == "prior":
        return None, None
    if init == "ml":
        ml = ml_start(internal, ml_starts, seed, st)
        estimates, between = ml.estimates, ml.between_probabilities
    else:
        spec = design.spec
        if init.spec != spec or init.n_obs != design.n_obs:
            raise EstimationError(
                f"init: the ML fit is of model {init.spec.name!r} on {init.n_obs} "
                f"observations, not of {spec.name!r} on {design.n_obs}; pass the fit of "
                "this spec to these data, or init='ml'."
            )
        estimates, between = st.to_internal(init.estimates), init.between_probabilities
    init_z = None
    if internal.spec.between_classes > 1 and internal.spec.random_effects:
        init_z = between_residual_start(internal, estimates, between)
    return unsaturated(internal, internal.layout.unpack(estimates, natural=True)), init_z


QUICK_ML_STARTS = 8
"""Random starts tried first for the ML fit that starts the chains (see :func:`ml_start`)."""


def ml_start(
    internal: Design,
    ml_starts: int,
    seed: int,
    st: Standardisation | None = None,
) -> MLResult:
    """The ML fit whose estimates start every chain, from as few starts as is safe.

    The first :data:`QUICK_ML_STARTS` of the ``ml_starts`` random starts run
    first (the same starts, from the same seed). A mixture whose best
    log-likelihood they reach from at least two starts (Mplus's check that the
    best log-likelihood is replicated) keeps that fit; otherwise all
    ``ml_starts`` run. A one-class model has a single start either way. With ``st``
    (the design's standardisation) the fit meets the spec's constraints
    (:mod:`bayesmix.ml.tie`), and its starting values start one more optimisation, as
    in :func:`bayesmix.fit_ml`.
    """
    from bayesmix.ml.fit import fit_internal

    quick = min(ml_starts, QUICK_ML_STARTS)
    tie = None if st is None else make_tie(st)
    given = []
    constraints = None if st is None else st.layout.spec.constraints
    if constraints is not None and constraints.start:
        theta = constrained_start(internal, st, seed)
        given = [theta if tie is None else tie.project(theta)]
    ml = fit_internal(internal, starts=quick, random_seed=seed, tie=tie, given=given)
    if quick < ml_starts and internal.spec.classes > 1 and ml.starts.replicated < 2:
        ml = fit_internal(internal, starts=ml_starts, random_seed=seed, tie=tie, given=given)
    return ml


MAX_START_LOGIT = 10.0
"""Largest membership logit (in absolute value) of any student at a chain's start."""


def unsaturated(design: Design, start: Params) -> Params:
    """``start`` with its membership coefficients shrunk towards 0, where needed, so that
    no student's logit exceeds :data:`MAX_START_LOGIT`.

    An ML solution can make membership deterministic (logits of 70 on small data sets).
    There the class probabilities are 0 or 1 in floating point, the gradient with respect
    to everything that only moves them (the membership residuals) is exactly 0, and nutpie,
    which sets its first mass matrix from the gradient, cannot start. The shrunk start has
    the same classes, nearly as sharply separated.
    """
    if design.spec.classes < 2 or start.gamma is None or design.Z.shape[1] == 0:
        return start
    gamma = np.asarray(start.gamma, dtype=float)
    largest = float(np.abs(design.Z @ gamma.T).max(initial=0.0))
    if largest <= MAX_START_LOGIT:
        return start
    return replace(start, gamma=gamma * (MAX_START_LOGIT / largest))


def _record_draws(
    idata: xr.DataTree, design: Design, internal: Design, st: Standardisation
) -> tuple[dict[str, np.ndarray], Pointwise]:
    """Lay ``idata`` out as :mod:`bayesmix.bayes.datatree` describes, adding the observed
    data; return the named draws (chain, draw) in the user's units and the pointwise pass."""
    spec = design.spec
    sampled = idata["posterior"].to_dataset()
    draws_struct = st.params_to_user(structured_draws(sampled, internal))
    u = st.residuals_to_user(sampled["u"].values) if spec.random_effects else None
    named = named_draws(draws_struct, design)
    if spec.between_classes > 1:
        # with level-2 classes the schools are the independent units
        pointwise = _between_pointwise_draws(draws_struct, design, u)
    else:
        pointwise = _pointwise_draws(draws_struct, design, u)
    split_posterior(idata, named, u, pointwise, spec)
    if "observed_data" not in idata.children:
        idata["observed_data"] = xr.DataTree(xr.Dataset({"y": (("obs",), design.y)}))
    return named, pointwise
