"""What the optimiser evaluates: the closed-form objective or adaptive quadrature.

Models without school residuals in a mixture have a closed-form marginal
log-likelihood (classes summed out and, for the conventional two-level
model, random effects integrated exactly; see
:mod:`bayesmix.density.likelihood`); two-level mixtures integrate the
residuals by adaptive Gauss-Hermite quadrature
(:mod:`bayesmix.density.quadrature`).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from bayesmix.data.design import Design
from bayesmix.density.compiled import loglik_and_grad, pointwise
from bayesmix.density.likelihood import needs_quadrature
from bayesmix.density.quadrature import DEFAULT_POINTS, AdaptiveQuadrature
from bayesmix.ml.inference import observed_information, posterior_args
from bayesmix.ml.optimise import GRADIENT_TOL, _polish, _Run, at_bound, optimise, staged_starts
from bayesmix.ml.starts import random_start
from bayesmix.progress import Progress


@dataclass(frozen=True)
class _Objective:
    """What the optimiser evaluates: the plain objective, or adaptive quadrature."""

    fun: Callable[[np.ndarray], tuple[float, np.ndarray]]
    quad: AdaptiveQuadrature | None
    backend: str
    points: int | None
    compile_s: float


def _objective(design: Design, backend: str) -> Callable[[np.ndarray], tuple[float, np.ndarray]]:
    """Negative mean log-likelihood and its gradient, as scipy expects."""
    args = design.likelihood_args()
    f = loglik_and_grad(design.layout, args, backend)
    n = design.n_obs

    def fun(theta: np.ndarray) -> tuple[float, np.ndarray]:
        ll, grad = f(np.ascontiguousarray(theta, dtype=float), *args)
        if not np.isfinite(ll):
            return np.inf, np.zeros_like(theta)
        return -float(ll) / n, -np.asarray(grad) / n

    return fun


def _build_objective(design: Design, backend: str | None, points: int | None) -> _Objective:
    """Compile the objective (and, without quadrature, the class posteriors) for ``design``."""
    lay = design.layout
    if backend is None:
        backend = "jax" if needs_quadrature(lay) or lay.n_random == 0 else "numba"
    t0 = time.perf_counter()
    if needs_quadrature(lay):
        points = points or DEFAULT_POINTS.get(lay.n_random, 3)
        quad = AdaptiveQuadrature(design, points, backend)
        return _Objective(quad.fun, quad, backend, points, time.perf_counter() - t0)
    fun = _objective(design, backend)
    args = posterior_args(design, lay.unpack(np.zeros(lay.n_params)))
    pointwise(lay, backend, args)
    return _Objective(fun, None, backend, None, time.perf_counter() - t0)


def _run_starts(
    design: Design,
    obj: _Objective,
    rng: np.random.Generator,
    n_starts: int,
    bounds: list[tuple[float | None, float | None]],
    maxiter: int,
    progress: bool,
    given: list[np.ndarray],
    extra: list[np.ndarray],
) -> list[_Run]:
    """Optimise from every start: given, random, then extra (see :func:`bayesmix.ml.fit.fit_ml`)."""
    bar = Progress(n_starts + len(extra), "ML starts", enabled=progress)
    if obj.quad is not None:
        runs = staged_starts(obj.quad, design, rng, n_starts, bounds, maxiter, bar, given, extra)
    else:
        runs = [optimise(obj.fun, theta, bounds, design.n_obs, maxiter) for theta in given]
        thetas = (random_start(design, rng) for _ in range(n_starts))
        for theta in itertools.chain(thetas, extra):
            runs.append(optimise(obj.fun, theta, bounds, design.n_obs, maxiter))
            bar.update(f"best logL {max(r.loglik for r in runs):.3f}")
    bar.close()
    return runs


def _polish_quadrature(
    obj: _Objective, best: _Run, n: int, bounds: list[tuple[float | None, float | None]]
) -> tuple[_Run, np.ndarray]:
    """Newton steps with the nodes fixed, re-adapting them between rounds until
    re-adapting moves nothing; the nodes move little between rounds, so one
    information matrix serves them all.

    When re-adaptation has not settled after the rounds (a few schools' nodes
    converge slowly), a last polish with the nodes where they are makes the
    solution the maximum of the quadrature it is evaluated with.
    """
    quad, fun = obj.quad, obj.fun
    assert quad is not None
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
    return best, observed_information(fun, best.theta, n)


def _posteriors(
    design: Design, obj: _Objective, theta: np.ndarray
) -> tuple[np.ndarray, np.ndarray | None]:
    """Posterior class probabilities of the students (and schools, model C) at ``theta``."""
    if obj.quad is not None:
        evaluated = obj.quad.evaluate(theta)
        return evaluated[3], evaluated[5]
    args = posterior_args(design, design.layout.unpack(theta))
    return pointwise(design.layout, obj.backend, args)(*args)[1], None
