"""Maximum-likelihood estimation from many random starts.

The exact marginal log-likelihood (classes summed out, see
:mod:`bayesmix.likelihood`) is maximised by L-BFGS-B with analytic gradients
over an unconstrained parameter vector (log variances), from ``starts``
random starting values, as Mplus does with ``STARTS``. The best solution is
polished by Newton steps on the observed information, classes are labelled
by decreasing ``order_classes_by`` coefficient, and standard errors come
from the inverse observed information (central differences of the analytic
gradient) mapped to the natural scale by the delta method.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import optimize, stats

from bayesmix.data import DataLike, Design, MissingPolicy, build_design
from bayesmix.errors import (
    BoundaryWarning,
    ConvergenceWarning,
    EstimationError,
    IdentificationWarning,
    ReplicationWarning,
)
from bayesmix.likelihood import loglik_and_grad, pointwise
from bayesmix.params import (
    Params,
    order_permutation,
    pack,
    param_names,
    relabel,
    unpack,
    variance_mask,
)
from bayesmix.progress import Progress
from bayesmix.results import MLResult, StartsReport
from bayesmix.spec import Spec

REPLICATION_TOL = 1e-3
"""Two starts reach the same maximum when their log-likelihoods differ by less."""

_VARIANCE_FLOOR = 1e-6
"""Smallest residual variance allowed, as a fraction of the outcome variance."""


@dataclass(frozen=True)
class _Run:
    theta: np.ndarray
    loglik: float
    converged: bool
    iterations: int
    message: str


def _objective(design: Design) -> Callable[[np.ndarray], tuple[float, np.ndarray]]:
    """Negative mean log-likelihood and its gradient, as scipy expects."""
    f = loglik_and_grad(design.spec)
    y = np.ascontiguousarray(design.y, dtype=float)
    X = np.ascontiguousarray(design.X, dtype=float)
    Z = np.ascontiguousarray(design.Z, dtype=float)
    n = design.n_obs

    def fun(theta: np.ndarray) -> tuple[float, np.ndarray]:
        ll, grad = f(np.ascontiguousarray(theta, dtype=float), y, X, Z)
        if not np.isfinite(ll):
            return np.inf, np.zeros_like(theta)
        return -float(ll) / n, -np.asarray(grad) / n

    return fun


def _weighted_lstsq(X: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    sw = np.sqrt(w)
    ridge = 1e-8 * np.eye(X.shape[1])
    xtwx = (X * sw[:, None]).T @ (X * sw[:, None]) + ridge
    return np.linalg.solve(xtwx, (X * w[:, None]).T @ y)


def random_start(design: Design, rng: np.random.Generator) -> np.ndarray:
    """Draw one unconstrained starting vector from a random soft partition.

    Observations are softly assigned to K seeds drawn among the OLS
    residuals; weighted least squares within each class gives the outcome
    coefficients and variances, and the class shares give the membership
    intercepts (slopes start near 0). This keeps every start data-driven
    yet lets different starts explore different class configurations.
    """
    spec, y, X = design.spec, design.y, design.X
    K = spec.classes
    ols = _weighted_lstsq(X, y, np.ones_like(y))
    resid = y - X @ ols
    scale = resid.std()
    var_y = y.var()
    if K == 1:
        resp = np.ones((len(y), 1))
    else:
        seeds = rng.choice(resid, size=K, replace=False)
        width = scale * rng.uniform(0.25, 1.0)
        logits = -((resid[:, None] - seeds[None, :]) ** 2) / (2 * width**2)
        logits -= logits.max(axis=1, keepdims=True)
        resp = np.exp(logits)
        resp /= resp.sum(axis=1, keepdims=True)
    shares = np.clip(resp.mean(axis=0), 1e-3, None)
    beta = np.empty((K, X.shape[1]))
    sigma2 = np.empty(K)
    for c in range(K):
        w = resp[:, c] + 1e-6
        beta[c] = _weighted_lstsq(X, y, w)
        r = y - X @ beta[c]
        sigma2[c] = max(np.sum(w * r**2) / np.sum(w), 0.05 * var_y)
    common = [j for j, t in enumerate(spec.terms) if t not in spec.class_varying]
    beta[:, common] = shares @ beta[:, common] / shares.sum()
    if spec.residual_variance == "common":
        sigma2[:] = shares @ sigma2 / shares.sum()
    q = design.Z.shape[1]
    gamma = np.zeros((K - 1, q))
    if K > 1:
        gamma[:, 0] = np.log(shares[:-1] / shares[-1])
        z_sd = design.Z[:, 1:].std(axis=0)
        gamma[:, 1:] = rng.normal(0.0, 0.25, size=(K - 1, q - 1)) / z_sd
    return pack(Params(beta=beta, sigma2=sigma2, gamma=gamma), spec, log_variances=True)


def _bounds(design: Design) -> list[tuple[float | None, float | None]]:
    floor = float(np.log(_VARIANCE_FLOOR * design.y.var()))
    return [(floor, None) if v else (None, None) for v in variance_mask(design.spec)]


def _optimise(
    fun: Callable[[np.ndarray], tuple[float, np.ndarray]],
    theta0: np.ndarray,
    bounds: list[tuple[float | None, float | None]],
    n: int,
    maxiter: int,
) -> _Run:
    res = optimize.minimize(
        fun,
        theta0,
        jac=True,
        method="L-BFGS-B",
        bounds=bounds,
        options={"maxiter": maxiter, "ftol": 1e-15, "gtol": 1e-9, "maxcor": 20},
    )
    return _Run(
        theta=np.asarray(res.x),
        loglik=-float(res.fun) * n,
        converged=bool(res.success),
        iterations=int(res.nit),
        message=str(res.message),
    )


def observed_information(
    fun: Callable[[np.ndarray], tuple[float, np.ndarray]], theta: np.ndarray, n: int
) -> np.ndarray:
    """Observed information (negative Hessian of the log-likelihood) at ``theta``.

    Central differences of the analytic gradient, symmetrised.
    """
    p = theta.size
    info = np.empty((p, p))
    for i in range(p):
        h = 1e-5 * max(1.0, abs(theta[i]))
        up, down = theta.copy(), theta.copy()
        up[i] += h
        down[i] -= h
        info[:, i] = (fun(up)[1] - fun(down)[1]) * n / (2 * h)
    return 0.5 * (info + info.T)


def _polish(
    fun: Callable[[np.ndarray], tuple[float, np.ndarray]], run: _Run, n: int
) -> tuple[_Run, np.ndarray]:
    """Newton steps on the observed information until the gradient vanishes."""
    theta, ll = run.theta, run.loglik
    info = observed_information(fun, theta, n)
    for _ in range(5):
        grad = -fun(theta)[1] * n
        if np.max(np.abs(grad)) < 1e-6:
            break
        try:
            step = np.linalg.solve(info, grad)
        except np.linalg.LinAlgError:
            break
        candidate = theta + step
        val = fun(candidate)[0]
        if not np.isfinite(val) or -val * n < ll - 1e-9:
            break
        theta, ll = candidate, -val * n
        info = observed_information(fun, theta, n)
    return _Run(theta, ll, run.converged, run.iterations, run.message), info


def _standard_errors(
    info: np.ndarray, natural: np.ndarray, mask: np.ndarray
) -> tuple[np.ndarray, np.ndarray, bool]:
    """Covariance on the natural scale (delta method for log variances)."""
    eigvals = np.linalg.eigvalsh(info)
    singular = bool(eigvals.min() <= 1e-8 * max(eigvals.max(), 1.0))
    if singular:
        cov_theta = np.linalg.pinv(info)
    else:
        cov_theta = np.linalg.inv(info)
    jac = np.where(mask, natural, 1.0)
    cov = cov_theta * np.outer(jac, jac)
    se = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    if singular:
        se = np.full_like(se, np.nan)
    return cov, se, singular


def fit_ml(
    spec: Spec,
    data: DataLike,
    *,
    starts: int = 20,
    random_seed: int | None = None,
    missing: MissingPolicy = "error",
    maxiter: int = 2000,
    progress: bool = False,
) -> MLResult:
    """Fit a model by maximum likelihood from random starts.

    Parameters
    ----------
    spec : Spec
        The model (see :func:`bayesmix.load_spec`, :func:`bayesmix.make_spec`).
    data : DataFrame, str or Path
        Data frame, CSV path or bundled data set name (``"hsb"``).
    starts : int
        Number of random starts (Mplus ``STARTS``); a one-class model has a
        single maximum and uses one start.
    random_seed : int, optional
        Seed of the random starts; the same seed reproduces the fit.
    missing : {"error", "listwise"}
        Handling of rows with missing values.
    maxiter : int
        Iteration limit of each optimisation.
    progress : bool
        Print a progress line per start to stderr.

    Returns
    -------
    MLResult
    """
    t0 = time.perf_counter()
    if not isinstance(starts, int) or starts < 1:
        raise EstimationError(f"starts must be a positive integer, got {starts!r}.")
    design = build_design(spec, data, missing=missing)
    n = design.n_obs
    rng = np.random.default_rng(random_seed)
    n_starts = 1 if spec.classes == 1 else starts
    fun = _objective(design)
    bounds = _bounds(design)
    runs: list[_Run] = []
    bar = Progress(n_starts, "ML starts", enabled=progress)
    for _ in range(n_starts):
        runs.append(_optimise(fun, random_start(design, rng), bounds, n, maxiter))
        bar.update(f"best logL {max(r.loglik for r in runs):.3f}")
    bar.close()
    finite = [r for r in runs if np.isfinite(r.loglik)]
    if not finite:
        raise EstimationError(
            f"all {n_starts} starts of model {spec.name!r} ended with a non-finite "
            "log-likelihood; check the outcome's scale and the model."
        )
    best = max(finite, key=lambda r: r.loglik)
    # Relabel before the information matrix, so SEs belong to the reported labels.
    natural_best = unpack(best.theta, spec)
    ordered = relabel(natural_best, order_permutation(natural_best, spec))
    theta = pack(ordered, spec, log_variances=True)
    best = _Run(theta, best.loglik, best.converged, best.iterations, best.message)
    best, info = _polish(fun, best, n)
    grad = -fun(best.theta)[1] * n
    max_grad = float(np.max(np.abs(grad)))
    converged = max_grad < 1e-3
    logliks = np.array([r.loglik for r in runs])
    replicated = int(np.sum(np.abs(logliks - best.loglik) < REPLICATION_TOL))
    mask = variance_mask(spec)
    params = unpack(best.theta, spec)
    natural = pack(params, spec, log_variances=False)
    cov, se, singular = _standard_errors(info, natural, mask)
    names = param_names(spec)
    floor = _VARIANCE_FLOOR * design.y.var()
    boundary = [nm for nm, v, m in zip(names, natural, mask, strict=True) if m and v < 10 * floor]
    _, post = pointwise(spec)(
        np.asarray(params.beta, dtype=float),
        np.asarray(params.sigma2, dtype=float),
        np.asarray(params.gamma, dtype=float),
        design.y,
        design.X,
        design.Z,
    )
    notes = _diagnose(spec, converged, max_grad, replicated, n_starts, singular, boundary)
    z = natural / se
    pvals = 2 * stats.norm.sf(np.abs(z))
    return MLResult(
        spec=spec,
        design=design,
        names=tuple(names),
        estimates=natural,
        se=se,
        z=z,
        p=pvals,
        cov=cov,
        loglik=float(best.loglik),
        class_probabilities=np.asarray(post),
        starts=StartsReport(
            n_starts=n_starts,
            logliks=logliks,
            replicated=replicated,
            converged=int(sum(r.converged for r in runs)),
            seed=random_seed,
        ),
        converged=converged,
        max_abs_gradient=max_grad,
        boundary=tuple(boundary),
        singular_information=singular,
        diagnostics=tuple(notes),
        elapsed_s=time.perf_counter() - t0,
    )


def _diagnose(
    spec: Spec,
    converged: bool,
    max_grad: float,
    replicated: int,
    n_starts: int,
    singular: bool,
    boundary: list[str],
) -> list[str]:
    """Issue warnings for the problems Mplus would flag, and list them."""
    notes: list[tuple[str, type[Warning]]] = []
    if not converged:
        notes.append(
            (
                f"the best solution did not converge (max |gradient| {max_grad:.2g}); raise "
                "maxiter or simplify the model.",
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
                f"variance(s) {boundary} are at the lower boundary: a class may have collapsed "
                "onto few observations; consider fewer classes or a common residual variance.",
                BoundaryWarning,
            )
        )
    for text, category in notes:
        warnings.warn(text, category, stacklevel=3)
    return [text for text, _ in notes]
