"""Leave-one-out cross-validation (PSIS-LOO) and WAIC at the student and the school level.

A two-level model predicts new data in two different senses, and the
pointwise log-likelihood decides which one LOO estimates:

``"student"``
    ``log p(y_ij | theta, u_j)``: leave one student out, keeping the school
    residual u_j that the other students of the school inform. Answers "how
    well does the model predict a new student of a school we have seen?"
    (the ArviZ default for a PyMC model with non-centred residuals; what
    brms's ``loo()`` reports). Not defined for model C, where the level-2
    class ties the students of a school together.
``"school"``
    ``log p(y_j | theta, u_j)``: the same conditional density summed over a
    school's students. The school's own residual stays in the posterior, so
    leaving the school out is poorly approximated by importance sampling
    (many Pareto k above 0.7); it is reported for completeness.
``"school_marginal"``
    ``log p(y_j | theta) = log int p(y_j | theta, u) p(u | theta) du``: the
    school residuals (and the classes) integrated out for every posterior
    draw, by the exact Gaussian marginal for one-class models and by
    adaptive Gauss-Hermite quadrature for mixtures. Leave one school out and
    predict all its students: "how well does the model predict a new
    school?". This is the question of the paper's comparisons of models A, B
    and C, whose differences lie in the school level, and the level at which
    models with and without level-2 classes can be compared at all.

Each level comes as a DataTree of its own, the posterior and one
log-likelihood array (:func:`loo_data`, ``post.loo_data(level)``), so that
ArviZ's ``loo`` and ``compare`` work on it with their defaults; :func:`elpd`
and :func:`bayesmix.compare` compute from the same trees. The student level
is also the fit's own ``idata``'s (``az.loo(post.idata)``), except for
model C, whose ``idata`` holds the conditional school level.

WAIC is computed from the same pointwise log-likelihood; both come with
their standard errors (``sqrt(N var_i)`` of the pointwise values).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np
import xarray as xr

from bayesmix.errors import EstimationError
from bayesmix.progress import Progress

# the log-likelihood arrays as bayesmix.bayes.datatree names them (not imported from there:
# the result classes import this module, and the draws module imports theirs)
STUDENT_LOGLIK = "y"
SCHOOL_LOGLIK = "y_school"


class PosteriorFit(Protocol):
    """What LOO reads of a fit with draws (a :class:`~bayesmix.BayesResult`).

    Written out here rather than imported, so that the result classes, whose
    ``elpd`` calls into this module, are not imported back by it.
    """

    @property
    def spec(self) -> Any: ...
    @property
    def design(self) -> Any: ...
    @property
    def names(self) -> tuple[str, ...]: ...
    @property
    def draws(self) -> Mapping[str, np.ndarray]: ...
    @property
    def idata(self) -> Any: ...
    @property
    def cache(self) -> dict[Any, Any]: ...


Level = Literal["student", "school", "school_marginal"]
LEVELS: tuple[str, ...] = ("student", "school", "school_marginal")


@dataclass(frozen=True, eq=False)
class ELPD:
    """Expected log predictive density by PSIS-LOO and by WAIC.

    Attributes
    ----------
    level : {"student", "school", "school_marginal"}
        What is left out and predicted (see the module docstring).
    elpd_loo, se_loo, p_loo : float
        PSIS-LOO estimate, its standard error, effective number of parameters.
    elpd_waic, se_waic, p_waic : float
        The same by WAIC.
    pointwise : ndarray
        Per-unit (student or school) LOO elpd.
    pareto_k : ndarray
        Per-unit Pareto k of the importance weights.
    good_k : float
        Threshold above which a unit's LOO estimate is unreliable.
    n_draws : int
        Posterior draws used.
    """

    level: str
    elpd_loo: float
    se_loo: float
    p_loo: float
    elpd_waic: float
    se_waic: float
    p_waic: float
    pointwise: np.ndarray
    pareto_k: np.ndarray
    good_k: float
    n_draws: int

    @property
    def n_units(self) -> int:
        """Students or schools."""
        return int(self.pointwise.size)

    @property
    def n_bad_k(self) -> int:
        """Units whose Pareto k exceeds :attr:`good_k`."""
        return int(np.sum(self.pareto_k > self.good_k))

    def __str__(self) -> str:
        unit = "students" if self.level == "student" else "schools"
        text = (
            f"{self.level} level ({self.n_units} {unit}, {self.n_draws} draws): "
            f"elpd_loo {self.elpd_loo:.2f} (SE {self.se_loo:.2f}, p_loo {self.p_loo:.2f}); "
            f"elpd_waic {self.elpd_waic:.2f} (SE {self.se_waic:.2f}, p_waic {self.p_waic:.2f})"
        )
        if self.n_bad_k:
            text += f"; {self.n_bad_k} {unit} with Pareto k > {self.good_k:.2f}"
        return text


def waic(loglik: np.ndarray) -> tuple[float, float, float]:
    """WAIC elpd, its SE and p_waic from a (draws, units) log-likelihood matrix."""
    S = loglik.shape[0]
    top = loglik.max(axis=0)
    lppd = top + np.log(np.exp(loglik - top).sum(axis=0)) - math.log(S)
    p_i = loglik.var(axis=0, ddof=1)
    elpd_i = lppd - p_i
    return float(elpd_i.sum()), float(math.sqrt(elpd_i.size * elpd_i.var())), float(p_i.sum())


def _thin(n_chain: int, n_draw: int, max_draws: int) -> np.ndarray:
    """Evenly spaced draw indices, at most ``max_draws`` over all chains."""
    per_chain = max(1, min(n_draw, max_draws // n_chain))
    return np.unique(np.linspace(0, n_draw - 1, per_chain).round().astype(int))


def marginal_school_loglik(
    result: PosteriorFit,
    *,
    max_draws: int = 1000,
    points: int | None = None,
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """``log p(y_j | theta_s)`` per posterior draw and school, residuals integrated out.

    Parameters
    ----------
    result : BayesResult
        A two-level fit.
    max_draws : int
        Draws used over all chains, evenly thinned within each chain.
    points : int, optional
        Gauss-Hermite points per dimension for mixtures (default as in ML).
    progress : bool
        Show progress.

    Returns
    -------
    loglik : ndarray, shape (chain, draw, J)
    draws : ndarray
        Indices of the draws used within each chain.
    """
    from bayesmix.density.compiled import cluster_loglik
    from bayesmix.model.params import needs_quadrature

    design = result.design
    lay = design.layout
    if design.spec.cluster is None:
        raise EstimationError(f"model {design.spec.name!r} has no clusters; use level='student'.")
    stacked = result.layout_draws()
    n_chain, n_draw = stacked.shape[:2]
    keep = _thin(n_chain, n_draw, max_draws)
    J = len(design.cluster_ids)
    out = np.empty((n_chain, len(keep), J))
    bar = Progress(n_chain * len(keep), "school-level LOO", enabled=progress)
    if needs_quadrature(lay):
        from bayesmix.density.quadrature import DEFAULT_POINTS, AdaptiveQuadrature

        quad = AdaptiveQuadrature(
            design, points or DEFAULT_POINTS.get(lay.n_random, 3), backend="jax"
        )
        for ch in range(n_chain):
            for k, d in enumerate(keep):
                theta = lay.to_theta(stacked[ch, d])
                # consecutive draws are close: two moment steps from the previous
                # draw's nodes put them at this draw's posterior
                if k == 0:
                    quad.reset()
                    quad.adapt(theta, iterations=2)
                else:
                    for _ in range(2):
                        if not quad._step(theta, 0.0):
                            quad.reset()
                            quad.adapt(theta, iterations=2)
                            break
                out[ch, k] = quad.evaluate(theta)[4]
                bar.update()
    else:
        f = cluster_loglik(lay)
        args = design.likelihood_args()
        for ch in range(n_chain):
            for k, d in enumerate(keep):
                out[ch, k] = f(lay.to_theta(stacked[ch, d]), *args)
                bar.update()
    bar.close()
    return out, keep


def _check_level(spec: Any, level: str | None) -> str:
    """The level asked for, or the default: ``"school_marginal"`` with clusters, else
    ``"student"``."""
    if level is None:
        return "school_marginal" if spec.cluster is not None else "student"
    if level not in LEVELS:
        raise EstimationError(f"level must be one of {LEVELS}, got {level!r}.")
    return level


def _unavailable(spec: Any, level: str) -> EstimationError:
    """The error for a level the model does not define."""
    if spec.between_classes > 1:
        return EstimationError(
            f"level={level!r} is not available for model {spec.name!r}: it has level-2 "
            "classes, which tie a school's students together; use level='school_marginal' "
            "or 'school'."
        )
    return EstimationError(
        f"level={level!r} is not available for model {spec.name!r}: it has no clusters; "
        "use level='student'."
    )


def loo_data(
    result: PosteriorFit,
    level: Level | None = None,
    *,
    max_draws: int = 1000,
    points: int | None = None,
    progress: bool = False,
) -> xr.DataTree:
    """A DataTree of the posterior and one pointwise log-likelihood array at ``level``.

    ArviZ's defaults then work on it: ``az.loo(loo_data(fit, "school_marginal"))``,
    ``az.compare({"A3": loo_data(a, level), "B3": loo_data(b, level)})``.
    :func:`elpd` and :func:`bayesmix.compare` compute from the same trees.

    Parameters
    ----------
    result : BayesResult
    level : {"student", "school", "school_marginal"}, optional
        See the module docstring; default ``"school_marginal"`` for
        two-level models, ``"student"`` otherwise.
    max_draws, points, progress
        Draws, quadrature points and progress of the integration of
        ``"school_marginal"`` (see :func:`marginal_school_loglik`).

    Returns
    -------
    xarray.DataTree
        ``posterior`` (the fit's, for ``"school_marginal"`` only the draws
        integrated) and ``log_likelihood`` with ``y`` (dims chain, draw,
        obs) at the student level or ``y_school`` (chain, draw, school) at
        the school levels. Cached on the result: asking again costs nothing.

    Raises
    ------
    EstimationError
        For an unknown level, a school level of a model without clusters,
        or the student level of a model with level-2 classes.
    DataError
        For the school levels of a fit loaded without its data rows.
    """
    spec = result.spec
    level = _check_level(spec, level)
    key = ("loo_data", level, *((max_draws, points) if level == "school_marginal" else ()))
    if key in result.cache:
        return result.cache[key]
    if level != "student" and spec.cluster is None:
        raise _unavailable(spec, level)
    posterior = result.idata["posterior"].to_dataset()
    stored = result.idata["log_likelihood"].to_dataset()
    if level == "school_marginal":
        loglik, keep = marginal_school_loglik(
            result, max_draws=max_draws, points=points, progress=progress
        )
        posterior = posterior.isel(draw=keep)
        values = xr.DataArray(
            loglik,
            dims=("chain", "draw", "school"),
            coords={"chain": posterior["chain"], "draw": posterior["draw"]},
        )
    elif spec.between_classes > 1:
        if level == "student":
            raise _unavailable(spec, level)
        values = stored[SCHOOL_LOGLIK]
    else:
        values = stored[STUDENT_LOGLIK]
        if level == "school":
            # conditional on the school residuals, a school's students are independent
            bounds = result.design.bounds
            values = xr.DataArray(
                np.add.reduceat(values.transpose("chain", "draw", ...).values, bounds[:-1], axis=2),
                dims=("chain", "draw", "school"),
                coords={"chain": values["chain"], "draw": values["draw"]},
            )
    name = STUDENT_LOGLIK if level == "student" else SCHOOL_LOGLIK
    tree = xr.DataTree.from_dict(
        {
            "posterior": posterior,
            "log_likelihood": xr.Dataset({name: values.transpose("chain", "draw", ...)}),
        }
    )
    result.cache[key] = tree
    return tree


def elpd(
    result: PosteriorFit,
    level: Level | None = None,
    *,
    max_draws: int = 1000,
    points: int | None = None,
    progress: bool = False,
) -> ELPD:
    """PSIS-LOO and WAIC of a Bayes fit at the student or the school level.

    Parameters
    ----------
    result : BayesResult
    level : {"student", "school", "school_marginal"}, optional
        See the module docstring. Default: ``"school_marginal"`` for
        two-level models, ``"student"`` otherwise.
    max_draws : int
        Posterior draws used for ``"school_marginal"`` (each needs one
        integration per school).
    points : int, optional
        Quadrature points per dimension for ``"school_marginal"``.
    progress : bool
        Show progress of the integration.

    Returns
    -------
    ELPD
        PSIS-LOO on :func:`loo_data`'s tree with ArviZ's definitions and
        defaults (:func:`bayesmix.analysis.psis.loo`), and WAIC from the same
        values. Cached on the result: asking again costs nothing.
    """
    from bayesmix.analysis import psis

    level = _check_level(result.spec, level)
    key = ("elpd", level, max_draws, points)
    if key in result.cache:
        return result.cache[key]
    tree = loo_data(result, level, max_draws=max_draws, points=points, progress=progress)
    loo = psis.loo(tree)
    (values,) = tree["log_likelihood"].to_dataset().data_vars.values()
    flat = np.asarray(values).reshape(-1, values.shape[-1])
    w_elpd, w_se, w_p = waic(flat)
    out = ELPD(
        level=level,
        elpd_loo=float(loo.elpd),
        se_loo=float(loo.se),
        p_loo=float(loo.p),
        elpd_waic=w_elpd,
        se_waic=w_se,
        p_waic=w_p,
        pointwise=np.asarray(loo.elpd_i).ravel(),
        pareto_k=np.asarray(loo.pareto_k).ravel(),
        good_k=float(loo.good_k),
        n_draws=int(flat.shape[0]),
    )
    result.cache[key] = out
    return out
