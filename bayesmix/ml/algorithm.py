"""The two ML algorithms: the closed-form objective, or adaptive quadrature.

Models without school residuals in a mixture have a closed-form marginal
log-likelihood (classes summed out and, for the conventional two-level
model, random effects integrated exactly; see
:mod:`bayesmix.density.likelihood`): every start is optimised to
convergence and the best is polished by Newton steps. Two-level mixtures
integrate the residuals by adaptive Gauss-Hermite quadrature
(:mod:`bayesmix.density.quadrature`): starts run in two stages, and the
polish re-adapts the nodes between Newton rounds. :func:`choose_algorithm`
picks one per fit, as an :class:`Algorithm` whose steps the fit calls.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np

from bayesmix.data.design import Design
from bayesmix.density import gaussian
from bayesmix.errors import EstimationError
from bayesmix.ml.inference import observed_information, posterior_args
from bayesmix.ml.optimise import GRADIENT_TOL, _polish, _Run, at_bound, optimise, staged_starts
from bayesmix.ml.starts import random_start
from bayesmix.ml.tie import Tie, TiedQuadrature
from bayesmix.model.params import needs_quadrature
from bayesmix.progress import Progress

if TYPE_CHECKING:
    from bayesmix.density.quadrature import AdaptiveQuadrature

ML_BACKENDS = ("numpy", "jax", "numba")
"""How the ML objective is evaluated: numpy's closed form (one-class models only), or
the likelihood's graph compiled by XLA through JAX or by pytensor's numba backend."""

Bounds = list[tuple[float | None, float | None]]
"""L-BFGS-B bounds on theta, one (lower, upper) pair per entry."""

Objective = Callable[[np.ndarray], tuple[float, np.ndarray]]
"""Negative mean log-likelihood and its gradient at theta, as scipy minimises."""


@dataclass(frozen=True)
class Algorithm:
    """How a fit evaluates and maximises its log-likelihood: :func:`closed_form` or
    :func:`quadrature`, chosen once by :func:`choose_algorithm`."""

    fun: Objective
    backend: str
    """Evaluator of the objective, one of :data:`ML_BACKENDS`."""
    points: int | None
    """Gauss-Hermite points per dimension; None for the closed form."""
    compile_s: float
    maxiter: int
    """Default iteration budget of each start's optimisation."""
    staged: bool
    """Whether the starts run in two stages, the runs returned being the final stage's."""
    run_starts: Callable[..., list[_Run]]
    """``f(rng, n_starts, bounds, maxiter, bar, given, extra)``: the runs of all starts."""
    polish: Callable[[_Run, int, Bounds, bool], tuple[_Run, np.ndarray | None]]
    """``f(best, n, bounds, information)``: the polished best run and, with ``information``,
    the observed information there (else None)."""
    posteriors: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray | None]]
    """``f(theta)``: class probabilities of the students and, model C, of the schools."""
    cluster_logliks: Callable[[np.ndarray], np.ndarray]
    """``f(theta)``: each cluster's log-likelihood (each observation's without a cluster
    column), whose scores the robust standard errors sum."""


def choose_algorithm(
    design: Design, backend: str | None, points: int | None, tie: Tie | None = None
) -> Algorithm:
    """Quadrature for the models that need it, else the closed form, compiled for ``design``.

    The default backend is numpy for one-class models, whose objective needs no
    compiler, and JAX for the others (see :func:`bayesmix.ml.fit.fit_ml`). With a
    :class:`~bayesmix.ml.tie.Tie` every step works on its free vector in place of theta.
    """
    lay = design.layout
    if backend == "numpy" and not gaussian.supports(lay):
        raise EstimationError(
            f"backend='numpy' evaluates one-class models only, and model {lay.spec.name!r} has "
            f"{lay.spec.classes} classes and {lay.spec.between_classes} level-2 classes; "
            "use backend='jax' or 'numba', or leave it unset."
        )
    if design.weights is not None and backend in ("jax", "numba") and gaussian.supports(lay):
        raise EstimationError(
            f"a weighted one-class model is evaluated by numpy's closed form; drop "
            f"backend={backend!r} (or use backend='numpy')."
        )
    if backend == "numpy" or (backend is None and gaussian.supports(lay)):
        return numpy_closed_form(design, tie)
    if needs_quadrature(lay):
        from bayesmix.density.quadrature import DEFAULT_POINTS

        default = DEFAULT_POINTS.get(lay.n_random, 3)
        return quadrature(design, backend or "jax", points or default, tie)
    return closed_form(design, backend or "jax", tie)


def start_drawer(design: Design, tie: Tie | None) -> Callable[[np.random.Generator], np.ndarray]:
    """Random starts (:func:`~bayesmix.ml.starts.random_start`) as optimiser vectors:
    projected on the constraints of ``tie``."""
    if tie is None:
        return partial(random_start, design)
    return lambda rng: tie.project(random_start(design, rng))


def numpy_closed_form(design: Design, tie: Tie | None = None) -> Algorithm:
    """The one-class objective of :mod:`bayesmix.density.gaussian`, every start optimised to
    convergence; all students are in the one class."""
    args = design.likelihood_args()
    weights = design.weight_args()
    fun = _tied(tie, gaussian.objective(design.layout, args, weights))
    ones = np.ones((design.n_obs, 1))
    return Algorithm(
        fun=fun,
        backend="numpy",
        points=None,
        compile_s=0.0,
        maxiter=2000,
        staged=False,
        run_starts=partial(_independent_starts, fun, design, start_drawer(design, tie)),
        polish=partial(_polish_closed, fun),
        posteriors=lambda theta: (ones, None),
        cluster_logliks=_free(tie, gaussian.cluster_logliks(design.layout, args, weights)),
    )


def closed_form(design: Design, backend: str, tie: Tie | None = None) -> Algorithm:
    """The closed-form objective, every start optimised to convergence, and the class
    posteriors (compiled here, so that their compilation counts as such)."""
    from bayesmix.density.compiled import pointwise

    t0 = time.perf_counter()
    lay = design.layout
    fun = _tied(tie, _objective(design, backend))
    pointwise(lay, backend, posterior_args(design, lay.unpack(np.zeros(lay.n_params))))
    return Algorithm(
        fun=fun,
        backend=backend,
        points=None,
        compile_s=time.perf_counter() - t0,
        maxiter=2000,
        staged=False,
        run_starts=partial(_independent_starts, fun, design, start_drawer(design, tie)),
        polish=partial(_polish_closed, fun),
        posteriors=_free(tie, partial(_pointwise_posteriors, design, backend)),
        cluster_logliks=_free(tie, partial(_compiled_cluster_logliks, design, backend)),
    )


def quadrature(design: Design, backend: str, points: int, tie: Tie | None = None) -> Algorithm:
    """Adaptive Gauss-Hermite quadrature with ``points`` per dimension, two-stage starts
    and a polish that re-adapts the nodes; a final-stage start's optimisation costs far
    more evaluations, so its default iteration budget is lower."""
    from bayesmix.density.quadrature import AdaptiveQuadrature

    t0 = time.perf_counter()
    quad: Any = AdaptiveQuadrature(design, points, backend)
    if tie is not None:
        quad = TiedQuadrature(quad, tie)
    return Algorithm(
        fun=quad.fun,
        backend=backend,
        points=points,
        compile_s=time.perf_counter() - t0,
        maxiter=300,
        staged=True,
        run_starts=partial(staged_starts, quad, start_drawer(design, tie)),
        polish=partial(_polish_quadrature, quad),
        posteriors=partial(_quadrature_posteriors, quad),
        cluster_logliks=partial(_quadrature_cluster_logliks, quad),
    )


def _objective(design: Design, backend: str) -> Callable[[np.ndarray], tuple[float, np.ndarray]]:
    """Negative mean log-likelihood and its gradient, as scipy expects; with sampling
    weights, of the weighted pseudo-log-likelihood."""
    from bayesmix.density.compiled import loglik_and_grad, weighted_loglik_and_grad

    args = design.likelihood_args()
    weights = design.weight_args()
    if weights is None:
        f = loglik_and_grad(design.layout, args, backend)
    else:
        args = (*args, np.ascontiguousarray(weights[0]))
        f = weighted_loglik_and_grad(design.layout, args, backend)
    n = design.n_obs

    def fun(theta: np.ndarray) -> tuple[float, np.ndarray]:
        ll, grad = f(np.ascontiguousarray(theta, dtype=float), *args)
        if not np.isfinite(ll):
            return np.inf, np.zeros_like(theta)
        return -float(ll) / n, -np.asarray(grad) / n

    return fun


def _tied(tie: Tie | None, fun: Objective) -> Objective:
    return fun if tie is None else tie.objective(fun)


def _free(tie: Tie | None, f: Callable[[np.ndarray], Any]) -> Callable[[np.ndarray], Any]:
    return f if tie is None else tie.of_free(f)


def _independent_starts(
    fun: Objective,
    design: Design,
    draw: Callable[[np.random.Generator], np.ndarray],
    rng: np.random.Generator,
    n_starts: int,
    bounds: Bounds,
    maxiter: int,
    bar: Progress,
    given: list[np.ndarray],
    extra: list[np.ndarray],
) -> list[_Run]:
    """Every start optimised to convergence: given, random, then extra."""
    runs = [optimise(fun, theta, bounds, design.n_obs, maxiter) for theta in given]
    thetas = (draw(rng) for _ in range(n_starts))
    for theta in itertools.chain(thetas, extra):
        runs.append(optimise(fun, theta, bounds, design.n_obs, maxiter))
        bar.update(f"best logL {max(r.loglik for r in runs):.3f}")
    return runs


def _polish_closed(
    fun: Objective, best: _Run, n: int, bounds: Bounds, information: bool = True
) -> tuple[_Run, np.ndarray | None]:
    """Newton steps from the best run; the observed information at the end by central
    differences for standard errors, or none (forward differences for the steps alone)."""
    if information:
        return _polish(fun, best, n, bounds)
    return _polish(fun, best, n, bounds, final_info=False, central=False)[0], None


def _polish_quadrature(
    quad: AdaptiveQuadrature, best: _Run, n: int, bounds: Bounds, information: bool = True
) -> tuple[_Run, np.ndarray | None]:
    """Newton steps with the nodes fixed, re-adapting them between rounds until
    re-adapting moves nothing; the nodes move little between rounds, so one
    information matrix serves them all.

    When re-adaptation has not settled after the rounds (a few schools' nodes
    converge slowly), a last polish with the nodes where they are makes the
    solution the maximum of the quadrature it is evaluated with.
    """
    fun = quad.fun
    if best.nodes is not None:
        quad.restore(best.nodes)
    else:
        quad.reset()
    quad.adapt(best.theta, iterations=6 if best.nodes is None else 1, settle=True)
    info, last = None, best.loglik
    for _ in range(10):
        best, info = _polish(fun, best, n, bounds, final_info=False, info=info, central=False)
        final = quad.adapt(best.theta, settle=True)
        best = replace(best, loglik=final)
        held_now = at_bound(best.theta, bounds)
        size = np.max(np.abs(fun(best.theta)[1][~held_now]), initial=0.0) * n
        # each round moves logL by less as the nodes settle; 1e-5 is far below the
        # precision reported
        if size < 0.1 * GRADIENT_TOL or (size < GRADIENT_TOL and abs(final - last) < 1e-5):
            break
        last = final
    else:
        best, info = _polish(fun, best, n, bounds, final_info=False, info=info, central=False)
        best = replace(best, loglik=quad.value_and_grad(best.theta)[0])
    return best, observed_information(fun, best.theta, n) if information else None


def _pointwise_posteriors(
    design: Design, backend: str, theta: np.ndarray
) -> tuple[np.ndarray, None]:
    """Posterior class probabilities of the students at ``theta``, no school residuals."""
    from bayesmix.density.compiled import pointwise

    args = posterior_args(design, design.layout.unpack(theta))
    return pointwise(design.layout, backend, args)(*args)[1], None


def _quadrature_posteriors(
    quad: AdaptiveQuadrature, theta: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Posterior class probabilities of the students and of the schools' level-2 classes
    (ones without them) at ``theta``, the school residuals integrated."""
    evaluated = quad.evaluate(theta)
    return evaluated[3], evaluated[5]


def _quadrature_cluster_logliks(quad: AdaptiveQuadrature, theta: np.ndarray) -> np.ndarray:
    """Each school's term of the (weighted) log-likelihood under the current nodes."""
    return quad.evaluate(theta)[4] * quad.school_weights


def _compiled_cluster_logliks(design: Design, backend: str, theta: np.ndarray) -> np.ndarray:
    """Each cluster's log-likelihood from the compiled graphs: the school marginals of a
    one-class two-level model, else the students' mixtures summed by cluster."""
    from bayesmix.density.compiled import cluster_loglik, pointwise
    from bayesmix.density.primitives import segment_sum

    lay = design.layout
    if lay.n_random:
        return np.asarray(cluster_loglik(lay)(theta, *design.likelihood_args()))
    args = posterior_args(design, lay.unpack(theta))
    per_row = np.asarray(pointwise(lay, backend, args)(*args)[0])
    weights = design.weight_args()
    if weights is not None:
        per_row = weights[0] * per_row
    return segment_sum(per_row, design.bounds, np) if design.spec.cluster is not None else per_row
