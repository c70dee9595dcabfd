"""Maximising the log-likelihood: L-BFGS-B from a start, adaptive quadrature's two phases
and two-stage starts, and Newton polishing on the observed information."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy import optimize

from bayesmix.ml.inference import observed_information
from bayesmix.progress import Progress

if TYPE_CHECKING:
    from bayesmix.density.quadrature import AdaptiveQuadrature, NodeState

GRADIENT_TOL = 1e-3
"""A fit has converged when no free parameter's log-likelihood gradient (on the
standardised scale of :mod:`bayesmix.data.standardise`) exceeds this."""


@dataclass(frozen=True)
class _Run:
    theta: np.ndarray
    loglik: float
    converged: bool
    iterations: int
    message: str
    nodes: NodeState | None = None
    """The quadrature nodes settled at ``theta`` (final-stage starts)."""


def optimise(
    fun: Callable[[np.ndarray], tuple[float, np.ndarray]],
    theta0: np.ndarray,
    bounds: list[tuple[float | None, float | None]],
    n: int,
    maxiter: int,
    ftol: float = 1e-12,
) -> _Run:
    res = optimize.minimize(
        fun,
        theta0,
        jac=True,
        method="L-BFGS-B",
        bounds=bounds,
        options={"maxiter": maxiter, "ftol": ftol, "gtol": 1e-7, "maxcor": 20},
    )
    return _Run(
        theta=np.asarray(res.x),
        loglik=-float(res.fun) * n,
        converged=bool(res.success),
        iterations=int(res.nit),
        message=str(res.message),
    )


def _optimise_adaptive(
    quad: AdaptiveQuadrature,
    theta0: np.ndarray,
    bounds: list[tuple[float | None, float | None]],
    maxiter: int,
    rounds: int = 8,
    settle: bool = False,
) -> _Run:
    """L-BFGS-B on adaptive quadrature, in two phases.

    First the nodes follow theta (moved to the posterior at every
    evaluation), which takes the optimisation most of the way at once;
    then L-BFGS-B with the nodes fixed alternates with re-adaptation until
    the log-likelihood settles, so that the optimum is that of a fixed,
    converged rule. ``maxiter`` is the iteration budget of each L-BFGS-B run
    (the first phase and every round of the second), as for a fit without
    quadrature: each run restarts the optimiser on a changed objective. The
    first phase only brings theta near the optimum, on an objective that moves
    with its nodes, so it may use up its budget; the returned ``iterations``
    is the most a round of the second phase took, ``maxiter`` when one used
    up its budget, which makes the fit not converged.
    With ``settle`` the log-likelihood returned is that of the nodes settled
    at the solution (see :meth:`~bayesmix.density.quadrature.AdaptiveQuadrature.adapt`),
    the same for every start that reaches it, which the replication count needs.
    """
    quad.reset()
    theta = np.asarray(theta0, dtype=float)
    quad.adapt(theta, iterations=3)
    run = optimise(quad.fun_following, theta, bounds, quad.n, maxiter, ftol=1e-10)
    iterations = 0
    theta = run.theta
    last = quad.adapt(theta)
    for _ in range(rounds):
        run = optimise(quad.fun, theta, bounds, quad.n, maxiter, ftol=1e-10)
        iterations = max(iterations, run.iterations)
        theta = run.theta
        ll = quad.adapt(theta)
        if abs(ll - last) < 1e-6 or iterations >= maxiter:
            last = ll
            break
        last = ll
    if settle:
        last = quad.adapt(theta, settle=True)
        return _Run(theta, last, run.converged, iterations, run.message, quad.snapshot())
    return _Run(theta, last, run.converged, iterations, run.message)


def staged_starts(
    quad: AdaptiveQuadrature,
    draw: Callable[[np.random.Generator], np.ndarray],
    rng: np.random.Generator,
    n_starts: int,
    bounds: list[tuple[float | None, float | None]],
    maxiter: int,
    bar: Progress,
    given: list[np.ndarray] | None = None,
    extra: list[np.ndarray] | None = None,
) -> list[_Run]:
    """Mplus-style two-stage starts for quadrature models.

    Every start gets a short initial-stage optimisation (at most 10
    iterations with the nodes following the parameters, as Mplus's
    ``STITERATIONS``) on a coarse 3-point-per-dimension rule, which is
    enough to rank the starts; the best fifth (at least two; Mplus's default
    ``STARTS = 20 4``) are then optimised to convergence with the full rule.
    The returned runs are the final-stage ones, over which the replication
    of the best log-likelihood is counted.
    ``given`` starting values go to the final stage directly, in addition to
    the random ones; ``extra`` ones join the initial stage after the random
    ones (which therefore do not depend on them) and go on to the final
    stage, besides the random starts chosen, when they rank among these.
    """
    coarse = quad.with_points(min(3, quad.points))
    initial = []
    thetas = (draw(rng) for _ in range(n_starts))
    for theta in itertools.chain(thetas, extra or []):
        initial.append(_optimise_adaptive(coarse, theta, bounds, 10, rounds=1))
        bar.update(f"initial stage, best logL {max(r.loglik for r in initial):.3f}")
    n_final = min(n_starts, max(2, n_starts // 5))
    ranked = sorted(
        (r for r in initial[:n_starts] if np.isfinite(r.loglik)), key=lambda r: -r.loglik
    )
    bar.close()
    chosen = [*(given or []), *(r.theta for r in ranked[:n_final])]
    # an extra start that ranks among the chosen goes to the final stage besides them, so
    # that the random starts' final stage, and the replication it shows, stay as they were
    cut = ranked[min(n_final, len(ranked)) - 1].loglik if ranked else -np.inf
    chosen += [r.theta for r in initial[n_starts:] if np.isfinite(r.loglik) and r.loglik >= cut]
    final_bar = Progress(len(chosen), "ML final stage", enabled=bar.enabled)
    final = []
    for theta in chosen:
        final.append(_optimise_adaptive(quad, theta, bounds, maxiter, settle=True))
        final_bar.update(f"best logL {max(f.loglik for f in final):.3f}")
    final_bar.close()
    return final or [initial[0]]


def at_bound(theta: np.ndarray, bounds: list[tuple[float | None, float | None]]) -> np.ndarray:
    return np.array(
        [lo is not None and t <= lo + 1e-8 for t, (lo, _) in zip(theta, bounds, strict=True)]
    )


_DAMPING = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)


def _polish(
    fun: Callable[[np.ndarray], tuple[float, np.ndarray]],
    run: _Run,
    n: int,
    bounds: list[tuple[float | None, float | None]],
    final_info: bool = True,
    info: np.ndarray | None = None,
    central: bool = True,
) -> tuple[_Run, np.ndarray]:
    """Newton steps on the observed information until the gradient vanishes.

    The information (2p gradient evaluations; ``info`` when given, e.g. from
    an earlier polish nearby) is reused across steps and recomputed only
    when a step fails; with ``final_info`` it is recomputed at the end for
    the standard errors. A step is kept when it raises the log-likelihood,
    or leaves it unchanged to rounding (1e-8) while shrinking the gradient:
    near the optimum a step gains less than a sum over thousands of
    observations resolves, and the gradient is the sharper test. When a full
    step fails on a freshly computed information, as on a ridge where the
    quadratic model holds only nearby, damped steps (Levenberg-Marquardt:
    ``mu`` times the information's diagonal added to it) are tried on the
    same matrix, at one evaluation each and no new matrix. Steps stop when
    the gradient is below a tenth of :data:`GRADIENT_TOL` and their predicted
    gain below 1e-10: with many observations the gain of a step that is
    still needed is smaller than a sum over them resolves (at n = 10^6 a
    gradient of 0.004 predicts a gain of 1e-11), so the gradient, the
    convergence criterion, decides. Parameters held at a bound
    (variances at 0) are left there. ``central`` chooses central
    differences for the first matrix, which may be returned for standard
    errors; the matrices recomputed for steps use forward differences.
    """
    theta = run.theta
    value, g = fun(theta)
    ll, grad = -value * n, -g * n
    fresh = info is None
    if info is None:
        info = observed_information(fun, theta, n, central)
    moved = False

    def done(gain: float, size: float) -> bool:
        return 0.0 <= gain < 1e-10 and size < 0.1 * GRADIENT_TOL

    def attempt(
        free: np.ndarray, size: float, mu: float
    ) -> tuple[float, np.ndarray | None, float, np.ndarray]:
        """Predicted gain, and the candidate with its logL and gradient when it is kept."""
        block = info[np.ix_(free, free)]
        step = np.zeros_like(theta)
        try:
            step[free] = np.linalg.solve(block + mu * np.diag(np.abs(np.diag(block))), grad[free])
            gain = 0.5 * float(grad[free] @ step[free])
        except np.linalg.LinAlgError:
            gain = -1.0
        if gain <= 0.0 or done(gain, size):
            return gain, None, ll, grad
        candidate = theta + step
        if not all(lo is None or c >= lo for c, (lo, _) in zip(candidate, bounds, strict=True)):
            return gain, None, ll, grad
        value, g = fun(candidate)
        ll_c, grad_c = -value * n, -g * n
        ok = bool(np.isfinite(ll_c)) and (
            ll_c > ll or (ll_c > ll - 1e-8 and np.max(np.abs(grad_c[free]), initial=0.0) < size)
        )
        return gain, (candidate if ok else None), ll_c, grad_c

    for _ in range(12):
        free = ~at_bound(theta, bounds)
        size = np.max(np.abs(grad[free]), initial=0.0)
        if size < 1e-6:
            break
        gain, candidate, ll_c, grad_c = attempt(free, size, 0.0)
        if done(gain, size):
            break
        if candidate is None and fresh:
            for mu in _DAMPING:
                gain, candidate, ll_c, grad_c = attempt(free, size, mu)
                if candidate is not None or done(gain, size):
                    break
            if candidate is None:
                break
        elif candidate is None:
            info, fresh = observed_information(fun, theta, n, central=False), True
            continue
        theta, ll, grad, moved, fresh = candidate, ll_c, grad_c, True, False
    if final_info and (moved or not fresh):
        info = observed_information(fun, theta, n)
    return _Run(theta, ll, run.converged, run.iterations, run.message), info
