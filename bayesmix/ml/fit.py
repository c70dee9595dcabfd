"""Maximum-likelihood estimation from many random starts.

The exact marginal log-likelihood (classes summed out and, for the
conventional two-level model, random effects integrated in closed form; see
:mod:`bayesmix.density.likelihood`) is maximised by L-BFGS-B with analytic gradients
over a vector of log residual variances and Cholesky factors of the
random-effect covariance (diagonal >= 0, so variances may reach 0), from
``starts`` random starting values, as Mplus does with ``STARTS``. The best
solution is polished by Newton steps on the observed information, classes
are labelled by decreasing ``order_classes_by`` coefficient, and standard
errors come from the inverse observed information (central differences of
the analytic gradient) mapped to the natural scale by the delta method. In
one-class mixed models the fixed-effect/variance cross block of the
information is set to its expectation, zero, as lme4 and SAS PROC MIXED do.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import replace

import numpy as np
from scipy.special import ndtr

from bayesmix.data.design import DataLike, Design, MissingPolicy, build_design
from bayesmix.data.standardise import Standardisation, standardise
from bayesmix.diagnostics import empty_classes
from bayesmix.errors import (
    EstimationError,
    type_name,
)
from bayesmix.ml.algorithm import ML_BACKENDS, Algorithm, choose_algorithm
from bayesmix.ml.diagnose import convergence_diagnostics, estimate_diagnostics
from bayesmix.ml.inference import (
    cluster_scores,
    expected_block_diagonal,
    natural_jacobian,
    robust_covariance,
    standard_errors,
)
from bayesmix.ml.optimise import GRADIENT_TOL, _Run, at_bound
from bayesmix.ml.starts import between_start, constrained_start, internal_theta
from bayesmix.ml.tie import Tie, make_tie
from bayesmix.model.constraints import resolve
from bayesmix.model.params import (
    Layout,
    Params,
    between_order_permutation,
    order_permutation,
    relabel,
    relabel_between,
)
from bayesmix.model.spec import Spec
from bayesmix.progress import Progress
from bayesmix.results.ml import REPLICATION_TOL, MLResult, StartsReport
from bayesmix.validate import check_count, check_seed

SE_TYPES = ("ml", "mlr", "none")
"""Kinds of standard errors: observed information, sandwich (Mplus MLR), or none at all."""

_VARIANCE_FLOOR = 1e-6
"""Smallest residual variance allowed, as a fraction of the outcome variance."""


def _check_options(
    starts: int, backend: str | None, maxiter: int | None, points: int | None
) -> None:
    """Refuse option values no fit can use, naming the option."""
    for label, value in (("starts", starts), ("maxiter", maxiter), ("points", points)):
        if value is None and label != "starts":
            continue
        check_count(value, label)
    if backend is not None and backend not in ML_BACKENDS:
        raise EstimationError(
            f"backend={backend!r} is not available; use one of {', '.join(ML_BACKENDS)}."
        )


def _se_type(se: str | None, spec: Spec) -> str:
    """The kind of standard error asked for, its default resolved: MLR for weighted models."""
    weighted = isinstance(spec, Spec) and spec.weights is not None
    if se is None:
        return "mlr" if weighted else "ml"
    if se not in SE_TYPES:
        raise EstimationError(
            f"se={se!r} is not a kind of standard error; use one of {', '.join(SE_TYPES)}."
        )
    if weighted and se == "ml":
        raise EstimationError(
            f"model {spec.name!r} has sampling weights, and the inverse information of a "
            "pseudo-likelihood does not estimate the estimates' variance; use se='mlr' (the "
            "default for weighted models) or drop [weights]."
        )
    return se


def fit_ml(
    spec: Spec,
    data: DataLike,
    *,
    starts: int = 20,
    random_seed: int | None = None,
    missing: MissingPolicy = "error",
    maxiter: int | None = None,
    points: int | None = None,
    progress: bool = False,
    backend: str | None = None,
    init: Mapping[str, float] | Params | None = None,
    extra_starts: Sequence[Mapping[str, float] | Params] = (),
    start_from_smaller: bool = True,
    se: str | None = None,
) -> MLResult:
    """Fit a model by maximum likelihood from random starts.

    Parameters
    ----------
    spec : Spec
        The model (see :func:`bayesmix.load_spec`, :func:`bayesmix.make_spec`).
    data : DataFrame, str or Path
        Data frame, CSV path or bundled data set name (``"hsb"``).
    starts : int
        Number of random starts (Mplus ``STARTS``); a one-class model uses a
        single start.
    random_seed : int, optional
        Seed of the random starts; the same seed reproduces the fit.
    missing : {"error", "listwise"}
        Handling of rows with missing values.
    maxiter : int, optional
        Iteration limit of each start's optimisation: 2000 by default, 300
        for a final-stage start of a two-level mixture, whose evaluations
        cost far more; a start that reaches it is counted as not converged.
    points : int, optional
        Gauss-Hermite points per integration dimension for two-level
        mixtures (default 15, 7 and 5 for 1, 2 and 3 dimensions). The
        quadrature is adaptive: nodes are centred and scaled at each
        school's posterior of its random effects.
    progress : bool
        Print a progress line per start to stderr.
    backend : {"numpy", "jax", "numba"}, optional
        Evaluator of the log-likelihood and its gradient. One-class models
        default to numpy's closed form (:mod:`bayesmix.density.gaussian`),
        which needs no compiler; the same likelihood compiled by JAX or numba
        gives the same fit to rounding. Mixtures default to XLA through JAX
        (compiled for the data's shapes); pytensor's numba backend compiles
        once for all data sizes, which pays when one process fits many data
        sets of different sizes. JAX runs the two-level mixtures' quadrature
        faster, compiles a new model in seconds where numba takes up to a
        minute on a machine whose caches are empty, and a new process loads
        its compiled function from the on-disk cache.
    init : mapping or Params, optional
        Starting values (Mplus ``SVALUES``; natural parameter names as in
        :attr:`MLResult.names`, e.g. a smaller model's estimates expanded),
        optimised as one more start besides the random ones; for two-level
        mixtures it goes to the final stage directly.
    extra_starts : sequence of mappings or Params
        Starting values that count as starts of their own, optimised after
        the random ones, which do not depend on them. For two-level
        mixtures they run in the initial stage and go on to the final stage,
        in addition to the best fifth of the random starts, when they rank
        among these. :func:`bayesmix.select_classes` passes the smaller
        model's solution with a class split (:func:`bayesmix.ml.starts.split_class_start`).
    start_from_smaller : bool
        For a model with level-2 classes (model C), first fit the same model
        without them (model B, ``spec.with_between_classes(1)``, with the same
        starts and seed) and add its solution, spread over the level-2
        classes by :func:`bayesmix.between_start`, as one more start that
        goes to the final stage directly (what Mplus users do by hand with
        ``SVALUES``): random starts alone often stop at model B's solution
        with a level-2 class that does no work. ``starts.carried`` and
        ``starts.carried_won`` report where that start ended.
    se : {"ml", "mlr", "none"}, optional
        Standard errors from the inverse observed information (``"ml"``, the
        default, which lme4 and Mplus's ``ESTIMATOR = ML`` report), or sandwich
        standard errors robust to misspecification (``"mlr"``, Mplus's default
        for mixtures and ``TYPE = COMPLEX``): ``A^-1 B A^-1`` with ``A`` the
        observed information and ``B`` the summed outer products of each
        cluster's scores (schools for two-level models, the cluster column for
        single-level models that name one, single observations otherwise),
        times ``G / (G - 1)`` for G clusters, as Mplus does. Wald tests use the
        chosen covariance, and :func:`bayesmix.lrt` of two MLR fits is the
        scaled difference test. A model with sampling weights (``spec.weights``)
        is fitted by pseudo-maximum likelihood, whose only valid standard errors
        are the sandwich ones: its default is ``"mlr"``, and ``"ml"`` is refused.
        ``"none"`` skips the information matrix after
        the polish and leaves ``se``, ``cov``, ``z`` and ``p`` NaN: for fits
        whose log-likelihood alone is wanted, such as the bootstrap fits of
        :func:`bayesmix.blrt`.

    Returns
    -------
    MLResult
        In the user's units. The fit itself runs on standardised columns
        (:mod:`bayesmix.data.standardise`): random starts, bounds and the
        convergence criterion (``max_abs_gradient``) are on that scale, and
        classes are labelled by ``order_classes_by`` at the means of the
        centred covariates.
    """
    t0 = time.perf_counter()
    _check_options(starts, backend, maxiter, points)
    se = _se_type(se, spec)
    random_seed = check_seed(random_seed)
    design = build_design(spec, data, missing=missing)
    internal, st = standardise(design)
    tie = make_tie(st)
    given = [] if init is None else [internal_theta(st, init)]
    if spec.constraints is not None and spec.constraints.start:
        given.append(constrained_start(internal, st, random_seed))
    carried = spec.between_classes > 1 and start_from_smaller
    if carried:
        # the model without level-2 classes only supplies a start, projected on the
        # constraints below: its own parameters are not those the constraints name
        smaller = fit_ml(
            replace(spec.with_between_classes(1), constraints=None),
            data,
            starts=starts,
            random_seed=random_seed,
            missing=missing,
            maxiter=maxiter,
            points=points,
            progress=progress,
            backend=backend,
        )
        given.append(internal_theta(st, between_start(smaller, design.spec)))
    if isinstance(extra_starts, (str, Mapping, Params)) or not isinstance(extra_starts, Sequence):
        raise EstimationError(
            "extra_starts must be a list of starting values (mappings of parameter names "
            f"to values, or Params), got {type_name(extra_starts)}."
        )
    extra = [internal_theta(st, v, "extra_starts") for v in extra_starts]
    extra = extra if spec.classes > 1 else []
    if tie is not None:
        given = [tie.project(theta) for theta in given]
        extra = [tie.project(theta) for theta in extra]
    fit = fit_internal(
        internal,
        starts=starts,
        random_seed=random_seed,
        maxiter=maxiter,
        points=points,
        progress=progress,
        backend=backend,
        given=given,
        extra=extra,
        carried=carried,
        se=se,
        tie=tie,
    )
    return replace(user_result(fit, design, st), elapsed_s=time.perf_counter() - t0)


def user_result(fit: MLResult, design: Design, st: Standardisation) -> MLResult:
    """A fit to the standardised design (:func:`fit_internal`) in the user's units.

    Estimates and their covariance follow the affine map of
    :class:`~bayesmix.data.standardise.Standardisation`; the log-likelihood
    gains the Jacobian ``-n log s_y`` of the outcome's scaling; class
    probabilities and diagnostics are unchanged. With sampling weights n is the
    weighted number of students, ``sum a_ij b_j``.
    """
    estimates = st.to_user(fit.estimates)
    cov = st.cov_to_user(fit.cov)
    se = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    undefined = np.isin(np.asarray(fit.names), fit.boundary) | fit.singular_information
    se = np.where(undefined, np.nan, se)
    fixed = resolve(design.spec.constraints, list(fit.names)).fixed
    for k, value in fixed.items():
        # the value given, not its round trip through the standardised scale
        estimates[k] = value
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(np.isin(np.arange(len(se)), list(fixed)), np.nan, estimates / se)
    students = design.n_obs if design.weights is None else design.weights.total(design.cluster)
    shift = students * np.log(st.y_scale)
    return replace(
        fit,
        design=design,
        estimates=estimates,
        se=se,
        z=z,
        p=2 * ndtr(-np.abs(z)),
        cov=cov,
        loglik=fit.loglik - shift,
        starts=replace(fit.starts, logliks=fit.starts.logliks - shift),
    )


def fit_internal(
    design: Design,
    *,
    starts: int = 20,
    random_seed: int | None = None,
    maxiter: int | None = None,
    points: int | None = None,
    progress: bool = False,
    backend: str | None = None,
    given: Sequence[np.ndarray] = (),
    extra: Sequence[np.ndarray] = (),
    carried: bool = False,
    se: str = "ml",
    tie: Tie | None = None,
) -> MLResult:
    """The ML fit of :func:`fit_ml` on a design as given (the standardised one).

    ``given`` and ``extra`` are optimiser vectors (theta, or the free vector of
    ``tie``) of user starts (``init``) and extra starts; with ``carried`` the last
    of ``given`` is the start carried over from the model without level-2 classes.
    With ``tie`` (:mod:`bayesmix.ml.tie`) the optimiser works on the free
    parameters of the spec's constraints.
    """
    t0 = time.perf_counter()
    spec, lay, n = design.spec, design.layout, design.n_obs
    algorithm = choose_algorithm(design, backend, points, tie)
    maxiter = algorithm.maxiter if maxiter is None else maxiter
    rng = np.random.default_rng(random_seed)
    n_starts = 1 if spec.classes == 1 else starts
    bounds = optimiser_bounds(design)
    if tie is not None:
        bounds = tie.bounds(bounds)
    t_opt = time.perf_counter()
    bar = Progress(n_starts + len(extra), "ML starts", enabled=progress)
    runs = algorithm.run_starts(rng, n_starts, bounds, maxiter, bar, list(given), list(extra))
    bar.close()
    finite = [r for r in runs if np.isfinite(r.loglik)]
    if not finite:
        raise EstimationError(
            f"all {len(runs)} starts of model {spec.name!r} ended with a non-finite "
            "log-likelihood; check the model and the data's extreme values."
        )
    best = _labelled(max(finite, key=lambda r: r.loglik), spec, lay, tie)
    optimise_s = time.perf_counter() - t_opt
    t_se = time.perf_counter()
    best, info = algorithm.polish(best, n, bounds, se != "none")
    return _ml_result(
        design,
        algorithm,
        runs,
        best,
        info,
        bounds,
        seed=random_seed,
        maxiter=maxiter,
        n_starts=n_starts + len(extra),
        carried_index=len(given) - 1 if carried else None,
        timings={"compile_s": algorithm.compile_s, "optimise_s": optimise_s},
        t_se=t_se,
        t0=t0,
        se_type=se,
        tie=tie,
    )


def optimiser_bounds(design: Design) -> list[tuple[float | None, float | None]]:
    """L-BFGS-B bounds of a fit to ``design`` (the standardised one): Cholesky diagonals
    >= 0 and residual variances above a small fraction of the outcome's."""
    return design.layout.bounds(float(np.log(_VARIANCE_FLOOR * design.y.var())))


def _labelled(best: _Run, spec: Spec, lay: Layout, tie: Tie | None = None) -> _Run:
    """The best run with its classes labelled (before the information matrix, so that
    the standard errors belong to the reported labels); constraints that single out a
    class leave the labels as they are (:func:`bayesmix.model.params.labelling`)."""
    theta = best.theta if tie is None else tie.expand(best.theta)
    structured = lay.unpack(theta)
    perm = order_permutation(structured, spec)
    ordered = relabel(structured, perm)
    same = np.array_equal(perm, np.arange(len(perm)))
    if spec.between_classes > 1:
        perm_between = between_order_permutation(ordered, spec)
        ordered = relabel_between(ordered, perm_between)
        same = same and np.array_equal(perm_between, np.arange(len(perm_between)))
    theta = lay.pack(ordered, natural=False)
    # nodes adapted to other labels are not those of the relabelled parameters
    return replace(
        best,
        theta=theta if tie is None else tie.project(theta),
        nodes=best.nodes if same else None,
    )


def _ml_result(
    design: Design,
    algorithm: Algorithm,
    runs: list[_Run],
    best: _Run,
    info: np.ndarray | None,
    bounds: list[tuple[float | None, float | None]],
    *,
    seed: int | None,
    maxiter: int,
    n_starts: int,
    timings: dict[str, float],
    t_se: float,
    t0: float,
    carried_index: int | None = None,
    se_type: str = "ml",
    tie: Tie | None = None,
) -> MLResult:
    """Standard errors, class posteriors, replication and diagnostics of the polished best run
    (whose vector is the free one of ``tie`` where there is one)."""
    spec, lay, n = design.spec, design.layout, design.n_obs
    grad = -algorithm.fun(best.theta)[1] * n
    held = at_bound(best.theta, bounds)
    theta = best.theta if tie is None else tie.expand(best.theta)
    max_grad = float(np.max(np.abs(grad[~held]), initial=0.0))
    # a start that used up its iteration budget stopped early, whatever the polish did
    exhausted = best.iterations >= maxiter
    converged = max_grad < GRADIENT_TOL and not exhausted
    logliks = np.array([r.loglik for r in runs])
    # replication among the starts' own optima: the polish raises only the best one
    replicated = int(np.sum(np.abs(logliks - np.nanmax(logliks)) < REPLICATION_TOL))
    natural = lay.to_natural(theta)
    cov, se, singular, scaling = _covariance(
        design, algorithm, best.theta, info, held, se_type, tie
    )
    held_theta = held if tie is None else (tie.matrix[:, held] != 0).any(axis=1)
    boundary = _boundary(lay, natural, held_theta, design.y.var())
    se = np.where(np.isin(lay.names, boundary), np.nan, se)
    post, post_between = algorithm.posteriors(best.theta)
    found = convergence_diagnostics(max_grad, maxiter if exhausted else None)
    found += estimate_diagnostics(spec.classes, replicated, len(runs), singular, boundary)
    if spec.classes > 1:
        found += empty_classes(np.asarray(post).sum(axis=0), len(design.y))
    if spec.between_classes > 1:
        found += empty_classes(
            np.asarray(post_between).sum(axis=0), design.n_clusters, "school class"
        )
    for diagnostic in found:
        # fit_ml -> fit_internal -> here: the warning points at the user's call
        diagnostic.warn(stacklevel=4)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = natural / se
    return MLResult(
        spec=spec,
        design=design,
        names=tuple(lay.names),
        estimates=natural,
        se=se,
        z=z,
        p=2 * ndtr(-np.abs(z)),
        cov=cov,
        loglik=float(best.loglik),
        class_probabilities=np.asarray(post),
        starts=StartsReport(
            n_starts=n_starts,
            logliks=logliks,
            replicated=replicated,
            converged=int(sum(r.converged for r in runs)),
            seed=seed,
            n_final=len(runs) if algorithm.staged else None,
            # the given starts run first, in order, and logliks follow the runs
            carried_index=carried_index,
        ),
        converged=converged,
        max_abs_gradient=max_grad,
        boundary=tuple(boundary),
        singular_information=singular,
        diagnostics=tuple(found),
        elapsed_s=time.perf_counter() - t0,
        timings={**timings, "se_s": time.perf_counter() - t_se},
        quadrature_points=algorithm.points,
        between_probabilities=(np.asarray(post_between) if spec.between_classes > 1 else None),
        se_type=se_type,
        scaling_factor=scaling,
    )


def _covariance(
    design: Design,
    algorithm: Algorithm,
    theta: np.ndarray,
    info: np.ndarray | None,
    held: np.ndarray,
    se_type: str,
    tie: Tie | None = None,
) -> tuple[np.ndarray, np.ndarray, bool, float | None]:
    """Covariance, standard errors, whether the information is singular, and MLR's scaling
    factor; NaN throughout when the information was not computed (``se="none"``).
    ``theta``, ``info`` and ``held`` are in the free vector of ``tie`` where there is one:
    the delta method goes through ``d theta / d psi``, which gives fixed parameters a
    standard error of 0 and equal ones the same."""
    spec, lay = design.spec, design.layout
    if info is None:
        return np.full((lay.n_params,) * 2, np.nan), np.full(lay.n_params, np.nan), False, None
    n_fixed = len(spec.fixed_names)
    if tie is None:
        jac = natural_jacobian(lay, theta)
    else:
        jac = natural_jacobian(lay, tie.expand(theta)) @ tie.matrix
        n_fixed = int(np.count_nonzero(tie.matrix[:n_fixed].any(axis=0)))
    if spec.classes == 1 and spec.cluster is not None:
        info = expected_block_diagonal(info, n_fixed)
    if se_type == "mlr":
        scores = cluster_scores(algorithm.cluster_logliks, theta)
        return robust_covariance(info, scores, jac, ~held, spec.cluster is not None)
    cov, se, singular = standard_errors(info, jac, ~held)
    return cov, se, singular, None


def _boundary(lay: Layout, natural: np.ndarray, held: np.ndarray, y_var: float) -> list[str]:
    """Variances at (or numerically at) their lower bound 0."""
    names = lay.names
    floor = 10 * _VARIANCE_FLOOR * y_var
    variances = set(lay.variance_names())
    boundary = [nm for nm, v in zip(names, natural, strict=True) if nm in variances and v < floor]
    if held.any() and lay.n_random:
        boundary += [
            nm
            for nm in names
            if nm.startswith("var(")
            and nm not in boundary
            and natural[names.index(nm)] < 1e-8 * y_var
        ]
    return boundary
