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

import itertools
import numbers
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
from scipy import optimize, stats

from bayesmix.data.design import DataLike, Design, MissingPolicy, build_design
from bayesmix.data.standardise import Standardisation, standardise
from bayesmix.density.likelihood import (
    BACKENDS,
    loglik_and_grad,
    needs_quadrature,
    pointwise,
)
from bayesmix.density.quadrature import DEFAULT_POINTS, AdaptiveQuadrature, NodeState
from bayesmix.errors import (
    BoundaryWarning,
    ConvergenceWarning,
    EstimationError,
    IdentificationWarning,
    ReplicationWarning,
)
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
from bayesmix.results.fits import MLResult, StartsReport
from bayesmix.validate import check_seed

REPLICATION_TOL = 1e-3
"""Two starts reach the same maximum when their log-likelihoods differ by less."""

GRADIENT_TOL = 1e-3
"""A fit has converged when no free parameter's log-likelihood gradient (on the
standardised scale of :mod:`bayesmix.data.standardise`) exceeds this."""

_VARIANCE_FLOOR = 1e-6
"""Smallest residual variance allowed, as a fraction of the outcome variance."""


@dataclass(frozen=True)
class _Run:
    theta: np.ndarray
    loglik: float
    converged: bool
    iterations: int
    message: str
    nodes: NodeState | None = None
    """The quadrature nodes settled at ``theta`` (final-stage starts)."""


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
    run = _optimise(quad.fun_following, theta, bounds, quad.n, maxiter, ftol=1e-10)
    iterations = 0
    theta = run.theta
    last = quad.adapt(theta)
    for _ in range(rounds):
        run = _optimise(quad.fun, theta, bounds, quad.n, maxiter, ftol=1e-10)
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


def _staged_starts(
    quad: AdaptiveQuadrature,
    design: Design,
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
    coarse = AdaptiveQuadrature(design, min(3, quad.points), quad.backend)
    initial = []
    thetas = (random_start(design, rng) for _ in range(n_starts))
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


def _posterior_args(design: Design, params: Params) -> tuple[np.ndarray, ...]:
    """Arguments of :func:`~bayesmix.density.likelihood.pointwise` without school residuals."""
    n = design.n_obs
    return (
        np.asarray(params.beta, dtype=float),
        np.asarray(params.lsig, dtype=float),
        np.asarray(params.gamma, dtype=float),
        np.zeros(n),
        np.zeros((n, design.spec.classes - 1)),
        design.y,
        design.F,
        design.Z,
        design.V,
    )


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


def _optimise(
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


def _jacobian(
    f: Callable[[np.ndarray], np.ndarray], theta: np.ndarray, rel_step: float, central: bool = True
) -> np.ndarray:
    """Jacobian of a vector function by central or forward differences, column by column."""
    base = None if central else np.asarray(f(theta))
    columns = []
    for i in range(theta.size):
        h = rel_step * max(1.0, abs(theta[i]))
        up = theta.copy()
        up[i] += h
        if base is None:
            down = theta.copy()
            down[i] -= h
            columns.append((np.asarray(f(up)) - np.asarray(f(down))) / (2 * h))
        else:
            columns.append((np.asarray(f(up)) - base) / h)
    return np.column_stack(columns)


def observed_information(
    fun: Callable[[np.ndarray], tuple[float, np.ndarray]],
    theta: np.ndarray,
    n: int,
    central: bool = True,
) -> np.ndarray:
    """Observed information (negative Hessian of the log-likelihood) at ``theta``.

    Differences of the analytic gradient, symmetrised: central (2p
    evaluations, for standard errors) or forward (p + 1, for Newton steps,
    which need a direction rather than the last digits).
    """
    info = _jacobian(lambda t: fun(t)[1] * n, theta, 1e-5 if central else 1e-7, central)
    return 0.5 * (info + info.T)


def _at_bound(theta: np.ndarray, bounds: list[tuple[float | None, float | None]]) -> np.ndarray:
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
        free = ~_at_bound(theta, bounds)
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


def _natural_jacobian(lay: Layout, theta: np.ndarray) -> np.ndarray:
    """d natural / d theta by central differences (exact enough for the delta method)."""
    return _jacobian(lay.to_natural, theta, 1e-6)


def _expected_block_diagonal(info: np.ndarray, n_fixed: int) -> np.ndarray:
    """Zero the fixed-effect x variance-parameter block of the information.

    In a Gaussian mixed model that block has expectation zero, and the
    fixed-effect block equals ``X' V^-1 X`` exactly, so this gives the
    standard errors of lme4, nlme and SAS PROC MIXED: fixed effects from
    ``(X' V^-1 X)^-1``, variance parameters from their own observed block.
    """
    out = info.copy()
    out[:n_fixed, n_fixed:] = 0.0
    out[n_fixed:, :n_fixed] = 0.0
    return out


def _standard_errors(
    info: np.ndarray, jac: np.ndarray, free: np.ndarray
) -> tuple[np.ndarray, np.ndarray, bool]:
    """Covariance of the natural parameters by the delta method.

    Parameters held at a bound are treated as fixed (their rows and
    columns are zero); a singular information matrix gives NaN SEs.
    """
    p = info.shape[0]
    sub = info[np.ix_(free, free)]
    eigvals = np.linalg.eigvalsh(sub) if sub.size else np.array([1.0])
    singular = bool(eigvals.min() <= 1e-8 * max(eigvals.max(), 1.0))
    cov_theta = np.zeros((p, p))
    cov_theta[np.ix_(free, free)] = np.linalg.pinv(sub) if singular else np.linalg.inv(sub)
    cov = jac @ cov_theta @ jac.T
    se = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    if singular:
        se = np.full_like(se, np.nan)
    return cov, se, singular


def _check_options(
    starts: int, backend: str | None, maxiter: int | None, points: int | None
) -> None:
    """Refuse option values no fit can use, naming the option."""
    for label, value in (("starts", starts), ("maxiter", maxiter), ("points", points)):
        if value is None and label != "starts":
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise EstimationError(f"{label} must be a positive integer, got {value!r}.")
    if backend is not None and backend not in BACKENDS:
        raise EstimationError(
            f"backend={backend!r} is not available; use one of {', '.join(BACKENDS)}."
        )


def _internal_theta(
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
            f"names of MLResult.names) or be a Params, got {type(values).__name__}."
        )
    if not np.all(np.isfinite(natural)):
        raise EstimationError(f"{label} has non-finite values; give finite starting values.")
    return _initial_theta(lay, lay.unpack(st.to_internal(natural), natural=True))


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
    backend : {"jax", "numba"}, optional
        Compiler of the log-likelihood and its gradient: XLA through JAX
        (compiled for the data's shapes) or pytensor's numba backend (any
        shape). Default: JAX for two-level mixtures, whose quadrature it
        runs faster, and for models without random effects, where a new
        process loads the compiled function sooner; numba for conventional
        two-level models, where compiling once for all data sizes matters
        more.
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
        model's solution with a class split (:func:`split_class_start`).

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
    random_seed = check_seed(random_seed)
    design = build_design(spec, data, missing=missing)
    internal, st = standardise(design)
    given = [] if init is None else [_internal_theta(st, init)]
    if isinstance(extra_starts, (str, Mapping, Params)) or not isinstance(extra_starts, Sequence):
        raise EstimationError(
            "extra_starts must be a list of starting values (mappings of parameter names "
            f"to values, or Params), got {type(extra_starts).__name__}."
        )
    extra = [_internal_theta(st, v, "extra_starts") for v in extra_starts]
    extra = extra if spec.classes > 1 else []
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
    )
    return replace(user_result(fit, design, st), elapsed_s=time.perf_counter() - t0)


def user_result(fit: MLResult, design: Design, st: Standardisation) -> MLResult:
    """A fit to the standardised design (:func:`fit_internal`) in the user's units.

    Estimates and their covariance follow the affine map of
    :class:`~bayesmix.data.standardise.Standardisation`; the log-likelihood
    gains the Jacobian ``-n log s_y`` of the outcome's scaling; class
    probabilities and diagnostics are unchanged.
    """
    estimates = st.to_user(fit.estimates)
    cov = st.cov_to_user(fit.cov)
    se = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    undefined = np.isin(np.asarray(fit.names), fit.boundary) | fit.singular_information
    se = np.where(undefined, np.nan, se)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = estimates / se
    shift = design.n_obs * np.log(st.y_scale)
    return replace(
        fit,
        design=design,
        estimates=estimates,
        se=se,
        z=z,
        p=2 * stats.norm.sf(np.abs(z)),
        cov=cov,
        loglik=fit.loglik - shift,
        starts=replace(fit.starts, logliks=fit.starts.logliks - shift),
    )


@dataclass(frozen=True)
class _Objective:
    """What the optimiser evaluates: the plain objective, or adaptive quadrature."""

    fun: Callable[[np.ndarray], tuple[float, np.ndarray]]
    quad: AdaptiveQuadrature | None
    backend: str
    points: int | None
    compile_s: float


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
    posterior_args = _posterior_args(design, lay.unpack(np.zeros(lay.n_params)))
    pointwise(lay, backend, posterior_args)
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
    """Optimise from every start: given, random, then extra (see :func:`fit_ml`)."""
    bar = Progress(n_starts + len(extra), "ML starts", enabled=progress)
    if obj.quad is not None:
        runs = _staged_starts(obj.quad, design, rng, n_starts, bounds, maxiter, bar, given, extra)
    else:
        runs = [_optimise(obj.fun, theta, bounds, design.n_obs, maxiter) for theta in given]
        thetas = (random_start(design, rng) for _ in range(n_starts))
        for theta in itertools.chain(thetas, extra):
            runs.append(_optimise(obj.fun, theta, bounds, design.n_obs, maxiter))
            bar.update(f"best logL {max(r.loglik for r in runs):.3f}")
    bar.close()
    return runs


def _labelled(best: _Run, spec: Spec, lay: Layout) -> _Run:
    """The best run with its classes labelled (before the information matrix, so that
    the standard errors belong to the reported labels)."""
    structured = lay.unpack(best.theta)
    perm = order_permutation(structured, spec)
    ordered = relabel(structured, perm)
    same = np.array_equal(perm, np.arange(len(perm)))
    if spec.between_classes > 1:
        perm_between = between_order_permutation(ordered, spec)
        ordered = relabel_between(ordered, perm_between)
        same = same and np.array_equal(perm_between, np.arange(len(perm_between)))
    # nodes adapted to other labels are not those of the relabelled parameters
    return replace(best, theta=lay.pack(ordered, natural=False), nodes=best.nodes if same else None)


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
        held_now = _at_bound(best.theta, bounds)
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
) -> MLResult:
    """The ML fit of :func:`fit_ml` on a design as given (the standardised one).

    ``given`` and ``extra`` are optimiser vectors (theta) of user starts
    (``init``) and extra starts.
    """
    t0 = time.perf_counter()
    spec, lay, n = design.spec, design.layout, design.n_obs
    obj = _build_objective(design, backend, points)
    if maxiter is None:
        maxiter = 300 if obj.quad is not None else 2000
    rng = np.random.default_rng(random_seed)
    n_starts = 1 if spec.classes == 1 else starts
    bounds = lay.bounds(float(np.log(_VARIANCE_FLOOR * design.y.var())))
    t_opt = time.perf_counter()
    runs = _run_starts(
        design, obj, rng, n_starts, bounds, maxiter, progress, list(given), list(extra)
    )
    finite = [r for r in runs if np.isfinite(r.loglik)]
    if not finite:
        raise EstimationError(
            f"all {len(runs)} starts of model {spec.name!r} ended with a non-finite "
            "log-likelihood; check the model and the data's extreme values."
        )
    best = _labelled(max(finite, key=lambda r: r.loglik), spec, lay)
    optimise_s = time.perf_counter() - t_opt
    t_se = time.perf_counter()
    if obj.quad is not None:
        best, info = _polish_quadrature(obj, best, n, bounds)
    else:
        best, info = _polish(obj.fun, best, n, bounds)
    return _ml_result(
        design,
        obj,
        runs,
        best,
        info,
        bounds,
        seed=random_seed,
        maxiter=maxiter,
        n_starts=n_starts + len(extra),
        timings={"compile_s": obj.compile_s, "optimise_s": optimise_s},
        t_se=t_se,
        t0=t0,
    )


def _ml_result(
    design: Design,
    obj: _Objective,
    runs: list[_Run],
    best: _Run,
    info: np.ndarray,
    bounds: list[tuple[float | None, float | None]],
    *,
    seed: int | None,
    maxiter: int,
    n_starts: int,
    timings: dict[str, float],
    t_se: float,
    t0: float,
) -> MLResult:
    """Standard errors, class posteriors, replication and diagnostics of the polished best run."""
    spec, lay, n = design.spec, design.layout, design.n_obs
    grad = -obj.fun(best.theta)[1] * n
    held = _at_bound(best.theta, bounds)
    max_grad = float(np.max(np.abs(grad[~held]), initial=0.0))
    # a start that used up its iteration budget stopped early, whatever the polish did
    exhausted = best.iterations >= maxiter
    converged = max_grad < GRADIENT_TOL and not exhausted
    logliks = np.array([r.loglik for r in runs])
    # replication among the starts' own optima: the polish raises only the best one
    replicated = int(np.sum(np.abs(logliks - np.nanmax(logliks)) < REPLICATION_TOL))
    natural = lay.to_natural(best.theta)
    if spec.classes == 1 and spec.cluster is not None:
        info = _expected_block_diagonal(info, len(spec.fixed_names))
    cov, se, singular = _standard_errors(info, _natural_jacobian(lay, best.theta), ~held)
    boundary = _boundary(lay, natural, held, design.y.var())
    se = np.where(np.isin(lay.names, boundary), np.nan, se)
    post, post_between = _posteriors(design, obj, best.theta)
    notes = _diagnose(
        spec, max_grad, maxiter if exhausted else None, replicated, len(runs), singular, boundary
    )
    if spec.classes > 1:
        notes += empty_class_notes(np.asarray(post).sum(axis=0), len(design.y))
    if spec.between_classes > 1:
        notes += empty_class_notes(
            np.asarray(post_between).sum(axis=0), design.n_clusters, "school class"
        )
    with np.errstate(divide="ignore", invalid="ignore"):
        z = natural / se
    return MLResult(
        spec=spec,
        design=design,
        names=tuple(lay.names),
        estimates=natural,
        se=se,
        z=z,
        p=2 * stats.norm.sf(np.abs(z)),
        cov=cov,
        loglik=float(best.loglik),
        class_probabilities=np.asarray(post),
        starts=StartsReport(
            n_starts=n_starts,
            logliks=logliks,
            replicated=replicated,
            converged=int(sum(r.converged for r in runs)),
            seed=seed,
            n_final=len(runs) if obj.quad is not None else None,
        ),
        converged=converged,
        max_abs_gradient=max_grad,
        boundary=tuple(boundary),
        singular_information=singular,
        diagnostics=tuple(notes),
        elapsed_s=time.perf_counter() - t0,
        timings={**timings, "se_s": time.perf_counter() - t_se},
        quadrature_points=obj.points,
        between_probabilities=(np.asarray(post_between) if spec.between_classes > 1 else None),
    )


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


def _posteriors(
    design: Design, obj: _Objective, theta: np.ndarray
) -> tuple[np.ndarray, np.ndarray | None]:
    """Posterior class probabilities of the students (and schools, model C) at ``theta``."""
    if obj.quad is not None:
        evaluated = obj.quad.evaluate(theta)
        return evaluated[3], evaluated[5]
    args = _posterior_args(design, design.layout.unpack(theta))
    return pointwise(design.layout, obj.backend, args)(*args)[1], None


def empty_class_notes(counts: np.ndarray, n: int, level: str = "class") -> list[str]:
    """Warn about classes holding fewer than 0.5% of the units (or under one unit).

    Parameters
    ----------
    counts : ndarray
        Estimated units per class (sums of posterior class probabilities).
    n : int
        Units in all.
    level : str
        ``"class"`` or ``"school class"``, for the message.
    """
    from bayesmix.errors import EmptyClassWarning

    notes = []
    for c, count in enumerate(counts):
        if count < max(1.0, 0.005 * n):
            text = (
                f"{level} {c + 1} holds {count:.2f} of {n} units ({100 * count / n:.2f}%): an "
                f"(almost) empty class, or one holding outliers: fit fewer {level}es or check "
                "those units."
            )
            warnings.warn(text, EmptyClassWarning, stacklevel=3)
            notes.append(text)
    return notes


def _diagnose(
    spec: Spec,
    max_grad: float,
    exhausted: int | None,
    replicated: int,
    n_starts: int,
    singular: bool,
    boundary: list[str],
) -> list[str]:
    """Issue warnings for the problems Mplus would flag, and list them.

    ``exhausted`` is the iteration limit the best start reached, if it did.
    """
    notes: list[tuple[str, type[Warning]]] = []
    if exhausted is not None:
        notes.append(
            (
                f"the best solution did not converge: its optimisation stopped at the limit "
                f"of maxiter={exhausted} iterations (max |gradient| {max_grad:.2g}); raise "
                "maxiter.",
                ConvergenceWarning,
            )
        )
    elif max_grad >= GRADIENT_TOL:
        notes.append(
            (
                f"the best solution did not converge (max |gradient| {max_grad:.2g} on the "
                f"standardised scale, above {GRADIENT_TOL:g}); raise maxiter or simplify the "
                "model.",
                ConvergenceWarning,
            )
        )
    if spec.classes > 1 and replicated < 2:
        notes.append(
            (
                f"the best log-likelihood was reached by only {replicated} of {n_starts} starts; "
                "it may be a local maximum: increase starts.",
                ReplicationWarning,
            )
        )
    if singular:
        notes.append(
            (
                "the observed information matrix is singular: some parameters are not "
                "identified (standard errors set to NaN); consider fewer classes.",
                IdentificationWarning,
            )
        )
    if boundary:
        notes.append(
            (
                f"variance(s) {boundary} are at the boundary 0 (standard errors not defined); "
                "for a random effect, consider fixing its variance at 0 (drop it from "
                "random); for a class, consider fewer classes or a common residual variance.",
                BoundaryWarning,
            )
        )
    for text, category in notes:
        warnings.warn(text, category, stacklevel=3)
    return [text for text, _ in notes]
