"""Maximum-likelihood fits: :class:`MLResult` and the report of its random starts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd
from scipy.special import ndtri

from bayesmix.data.design import Design
from bayesmix.diagnostics import Diagnostic
from bayesmix.errors import EstimationError
from bayesmix.formatting import format_table
from bayesmix.model.constraints import describe
from bayesmix.model.params import Params
from bayesmix.model.spec import Spec
from bayesmix.model.weights import within_scaling
from bayesmix.results.interface import FitResult, sample_size, tail_quantiles
from bayesmix.results.tables import (
    class_lines,
    clusters_text,
    diagnostic_lines,
    json_float,
    proportions,
)
from bayesmix.validate import check_seed

if TYPE_CHECKING:
    import xarray as xr


REPLICATION_TOL = 1e-3
"""Two starts reach the same maximum when their log-likelihoods differ by less."""


@dataclass(frozen=True, eq=False)
class StartsReport:
    """How the random starts of an ML fit ended.

    Attributes
    ----------
    n_starts : int
        Starts run.
    logliks : ndarray
        Final log-likelihood of each start.
    replicated : int
        Final-stage starts that reached the best log-likelihood (within
        :data:`REPLICATION_TOL`).
    converged : int
        Final-stage starts whose optimiser reported convergence.
    seed : int or None
        Seed of the starts.
    n_final : int or None
        Starts carried to the final stage (two-level mixtures, Mplus-style
        ``STARTS = n n/4``); None when every start ran to convergence.
    carried_index : int or None
        For a model with level-2 classes, the position in ``logliks`` of the
        run from the start carried over from the same model without them
        (:func:`bayesmix.between_start`); None when there was no such start.
    """

    n_starts: int
    logliks: np.ndarray
    replicated: int
    converged: int
    seed: int | None
    n_final: int | None = None
    carried_index: int | None = None

    @property
    def carried(self) -> float | None:
        """The log-likelihood reached from the carried-over start; None without one."""
        if self.carried_index is None:
            return None
        return float(self.logliks[self.carried_index])

    @property
    def carried_won(self) -> bool | None:
        """Whether the carried-over start reached the best log-likelihood (within
        :data:`REPLICATION_TOL`); None when there was no such start."""
        if self.carried is None:
            return None
        return bool(self.carried >= np.nanmax(self.logliks) - REPLICATION_TOL)


@dataclass(frozen=True, eq=False)
class MLResult(FitResult):
    """A maximum-likelihood fit.

    Attributes
    ----------
    spec, design
        Model and data.
    names : tuple of str
        Parameter names (see :func:`bayesmix.model.params.param_names`).
    estimates, se, z, p : ndarray
        Estimates, standard errors (from the observed information, or robust;
        see ``se_type``), Wald z and two-sided p-values, on the natural scale
        (variances, not logs).
    cov : ndarray
        Covariance matrix of the estimates.
    loglik : float
        Maximised log-likelihood.
    class_probabilities : ndarray, shape (n, K)
        Posterior class probabilities of each observation at the estimates.
    starts : StartsReport
    converged : bool
        Whether the best solution has a vanishing gradient.
    max_abs_gradient : float
    boundary : tuple of str
        Variances at the lower boundary.
    singular_information : bool
    diagnostics : tuple of Diagnostic
        Problems found, also issued as warnings.
    elapsed_s : float
    timings : dict
        Seconds spent compiling the likelihood (``compile_s``), optimising
        from all starts (``optimise_s``) and polishing plus standard errors
        (``se_s``).
    quadrature_points : int or None
        Gauss-Hermite points per dimension (two-level mixtures only).
    between_probabilities : ndarray, shape (J, L), or None
        Posterior level-2 class probabilities of each school (model C).
    se_type : {"ml", "mlr", "none"}
        Where ``se`` and ``cov`` come from: the observed information, or the
        sandwich over clusters (Mplus MLR; see :func:`bayesmix.fit_ml`); with
        ``"none"`` they were not computed and are NaN.
    scaling_factor : float or None
        MLR's scaling correction factor ``tr(A^-1 B) / p`` (None for ``"ml"``),
        which the scaled likelihood-ratio test uses.
    """

    spec: Spec
    design: Design = field(repr=False)
    names: tuple[str, ...]
    estimates: np.ndarray
    se: np.ndarray
    z: np.ndarray
    p: np.ndarray
    cov: np.ndarray = field(repr=False)
    loglik: float
    class_probabilities: np.ndarray = field(repr=False)
    starts: StartsReport
    converged: bool
    max_abs_gradient: float
    boundary: tuple[str, ...]
    singular_information: bool
    diagnostics: tuple[Diagnostic, ...]
    elapsed_s: float
    timings: dict[str, float] = field(default_factory=dict)
    quadrature_points: int | None = None
    between_probabilities: np.ndarray | None = field(default=None, repr=False)
    se_type: str = "ml"
    scaling_factor: float | None = None
    estimator: str = "ml"

    REBUILT: ClassVar[frozenset[str]] = frozenset()
    """Every field is saved as it is."""

    DEFAULT_SAMPLE: ClassVar[int] = 1000
    """Draws of :meth:`sample_parameters` when none are asked for."""

    @property
    def params(self) -> pd.DataFrame:
        """Table of estimate, se, z and p, indexed by parameter name."""
        return pd.DataFrame(
            {"estimate": self.estimates, "se": self.se, "z": self.z, "p": self.p},
            index=pd.Index(self.names, name="parameter"),
        )

    @property
    def point_estimates(self) -> pd.Series:
        """The estimates by parameter name."""
        return pd.Series(self.estimates, index=pd.Index(self.names, name="parameter"))

    @property
    def standard_errors(self) -> pd.Series:
        """Standard errors from the observed information (NaN where there is none)."""
        return pd.Series(self.se, index=pd.Index(self.names, name="parameter"))

    @property
    def structured(self) -> Params:
        """The estimates as structured :class:`~bayesmix.model.params.Params`."""
        return self.design.layout.unpack(self.estimates, natural=True)

    def intervals(self, level: float = 0.95) -> pd.DataFrame:
        """Wald intervals ``estimate -+ z SE`` with z the normal quantile of ``level``.

        NaN where a parameter has no standard error (a variance at its
        boundary, or singular information).
        """
        z = float(ndtri(tail_quantiles(level)[1]))
        return pd.DataFrame(
            {"lower": self.estimates - z * self.se, "upper": self.estimates + z * self.se},
            index=pd.Index(self.names, name="parameter"),
        )

    def sample_parameters(
        self, n: int | None = None, *, random_seed: int | None = None
    ) -> pd.DataFrame:
        """Draws from the asymptotic normal sampling distribution N(estimates, cov).

        Parameters
        ----------
        n : int, optional
            Number of draws (default :attr:`DEFAULT_SAMPLE`).
        random_seed : int, optional

        Returns
        -------
        pandas.DataFrame
            One row per draw, one column per parameter, on the natural scale
            of the estimates (as the Wald intervals). A parameter without a
            finite standard error has no sampling distribution: its column
            is NaN, and the others are drawn from their own block of ``cov``.
        """
        size = sample_size(n, self.DEFAULT_SAMPLE)
        rng = np.random.default_rng(check_seed(random_seed))
        cov = np.asarray(self.cov, dtype=float)
        known = np.isfinite(self.se) & np.isfinite(cov).all(axis=1)
        out = np.full((size, self.n_params), np.nan)
        if known.any():
            block = cov[np.ix_(known, known)]
            out[:, known] = rng.multivariate_normal(
                np.asarray(self.estimates, dtype=float)[known], block, size=size, method="eigh"
            )
        return pd.DataFrame(out, columns=pd.Index(self.names, name="parameter"))

    @property
    def has_draws(self) -> bool:
        """False: an ML fit is a point estimate with a sampling distribution, not a sample."""
        return False

    def add_group(self, name: str, group: xr.Dataset) -> None:
        """Refused: an ML fit holds no DataTree; fit by NUTS (``fit_bayes``) to keep one."""
        raise EstimationError(
            f"an ML fit holds no DataTree to add the group {name!r} to; fit by NUTS "
            "(fit_bayes) to keep draws and their groups."
        )

    def parameter_matrix(self) -> np.ndarray:
        """The estimates as one row, shape (1, n_params)."""
        return np.asarray(self.estimates, dtype=float)[None, :]

    @property
    def posterior(self) -> None:
        """None: an ML fit has no posterior draws."""
        return None

    @property
    def estimate_label(self) -> str:
        """``"ML estimate"``."""
        return "ML estimate"

    @property
    def starts_replicated(self) -> str:
        """``"r/n"`` final-stage starts reaching the best log-likelihood; empty for one class."""
        if self.spec.classes == 1:
            return ""
        st = self.starts
        n_runs = st.n_final if st.n_final is not None else st.n_starts
        return f"{st.replicated}/{n_runs}"

    def convergence(self) -> dict[str, Any]:
        """``{"converged": ...}``: whether the best solution has a vanishing gradient."""
        return {"converged": bool(self.converged)}

    def elpd(self, level: str | None = None, **kwargs: Any) -> Any:
        """Not available: LOO and WAIC need posterior draws.

        Raises
        ------
        EstimationError
            Always; compare ML fits by their information criteria.
        """
        raise EstimationError(
            "LOO and WAIC need posterior draws, which an ML fit has not: compare ML fits by "
            "BIC (bayesmix.compare), or fit the model with fit_bayes."
        )

    def summary(self) -> str:
        """A printable report: fit statistics, estimates, classes, diagnostics."""
        s = self.spec
        lines = [
            f"bayesmix ML fit: {s.name}  ({s.classes} class{'es' if s.classes > 1 else ''})",
            f"  observations {self.n_obs}{clusters_text(self.design)}   parameters "
            f"{self.n_params}   time {self.elapsed_s:.2f}s",
            f"  log-likelihood {self.loglik:.3f}   AIC {self.aic:.3f}   BIC {self.bic:.3f}   "
            f"aBIC {self.sabic:.3f}",
        ]
        if s.classes > 1:
            st = self.starts
            of = (
                f"{st.n_final} final-stage starts ({st.n_starts} initial)"
                if st.n_final is not None
                else f"{st.n_starts} starts"
            )
            lines.append(
                f"  entropy {self.entropy:.3f}   best logL replicated by {st.replicated} of "
                f"{of} (seed {st.seed})"
            )
            if st.carried is not None:
                verdict = "the best" if st.carried_won else "below the best"
                lines.append(
                    f"  the start from the model without level-2 classes reached logL "
                    f"{st.carried:.3f} ({verdict})"
                )
        lines.append(
            f"  converged {'yes' if self.converged else 'NO'} (max |gradient| "
            f"{self.max_abs_gradient:.1e})"
        )
        if self.se_type == "mlr":
            units = f"{self.design.n_clusters} clusters" if s.cluster else "observations"
            lines.append(
                f"  standard errors: MLR, sandwich over {units} (scaling correction factor "
                f"{self.scaling_factor:.4f})"
            )
        if s.weights is not None:
            scaling = within_scaling(s.weights, s.integrates_schools)
            parts = [f"{s.weights.within} ({scaling})"] if s.weights.within else []
            if s.weights.between:
                parts.append(f"schools {s.weights.between} ({s.weights.between_scaling})")
            lines.append(f"  sampling weights: {', '.join(parts)}; pseudo-log-likelihood")
        if describe(s.constraints):
            lines.append(f"  constraints: {describe(s.constraints)}")
        lines += ["", format_table(self.params)]
        lines += class_lines(s, self.classes, self.between_probabilities)
        lines += ["", *diagnostic_lines(self.diagnostics)]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (the CLI's ``--json`` contract)."""
        s_c = self.spec.constraints
        return {
            "model": self.spec.name,
            "estimator": "ml",
            "classes": self.spec.classes,
            "n_obs": self.n_obs,
            "n_clusters": self.design.n_clusters,
            "loglik": self.loglik,
            "n_params": self.n_params,
            "constraints": None if s_c is None else s_c.to_table(),
            "bic": self.bic,
            "aic": self.aic,
            "sabic": self.sabic,
            "entropy": json_float(self.entropy),
            "elapsed_s": self.elapsed_s,
            "converged": self.converged,
            "quadrature_points": self.quadrature_points,
            "se_type": self.se_type,
            "scaling_factor": json_float(self.scaling_factor),
            "starts": self.starts.n_starts,
            "best_loglik_replicated": self.starts.replicated,
            "final_stage_starts": self.starts.n_final,
            "carried_start_loglik": json_float(self.starts.carried),
            "carried_start_won": self.starts.carried_won,
            "class_proportions": proportions(self.class_probabilities),
            "between_proportions": proportions(self.between_probabilities),
            "params": [
                {"name": nm, "estimate": float(e), "se": json_float(se)}
                for nm, e, se in zip(self.names, self.estimates, self.se, strict=True)
            ],
            "diagnostics": [d.to_dict() for d in self.diagnostics],
        }
