"""One interface for fitted results, whichever estimator made them.

:class:`FitResult` is what code that consumes a fit may ask of it: point
estimates and their uncertainty, intervals, draws (posterior draws of a NUTS
fit, draws from the asymptotic sampling distribution of an ML fit),
information criteria, class probabilities, the JSON core and saving. Tables,
comparisons, plots, school effects, predictive checks and Monte Carlo
studies call these members and never ask which estimator made the fit; what
differs between the estimators is answered by the result itself (the label
of an estimate in a legend, whether it carries draws of its parameters).

A result is data: the computations a member needs beyond its fields live in
the estimators and in :mod:`bayesmix.analysis`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from bayesmix.errors import EstimationError
from bayesmix.model.constraints import restrictions
from bayesmix.results.persist import (
    PROBABILITY_FIELDS,
    ResultRecord,
    probability_fields,
    write_record,
)
from bayesmix.results.rowless import DesignSummary
from bayesmix.results.tables import class_table, information_criteria, relative_entropy
from bayesmix.validate import check_count

if TYPE_CHECKING:
    import xarray as xr

    from bayesmix.data.design import Design
    from bayesmix.model.params import Params
    from bayesmix.model.spec import Spec

COMMON_FIELDS = frozenset({"spec", "design", "estimator"})
"""Fields every result saves in blocks of their own (model, data) or as the block's key."""


def saved_fields(cls: type) -> tuple[str, ...]:
    """The fields of a result dataclass that its saved block holds, in field order.

    Every field but the common ones, those the class rebuilds on loading
    (its ``REBUILT`` set) and the class probabilities, which close the block
    (per unit, or summarised when the rows are not saved).
    """
    skip = COMMON_FIELDS | getattr(cls, "REBUILT", frozenset()) | set(PROBABILITY_FIELDS)
    return tuple(f.name for f in fields(cls) if f.name not in skip)


def tail_quantiles(level: float) -> tuple[float, float]:
    """Lower and upper quantile levels of a central interval, e.g. 0.025 and 0.975.

    Rounded to the decimals they stand for (``(1 - 0.95) / 2`` is not 0.025
    in binary), so that a 95% interval reads the same quantiles as the
    result's table.
    """
    if isinstance(level, bool) or not isinstance(level, (int, float)) or not 0 < level < 1:
        raise EstimationError(f"level must be a number between 0 and 1, e.g. 0.95; got {level!r}.")
    return round((1 - level) / 2, 12), round((1 + level) / 2, 12)


def sample_size(n: Any, default: int) -> int:
    """Check the number of draws asked for (None: ``default``)."""
    if n is None:
        return default
    return check_count(n, "n")


class FitResult(ABC):
    """A fitted model, by maximum likelihood or by NUTS.

    Implemented by :class:`~bayesmix.MLResult` and
    :class:`~bayesmix.BayesResult`, frozen dataclasses holding the fields
    below.

    Attributes
    ----------
    spec : Spec
    design : Design
        The data the fit used (a :class:`DesignSummary` for a result saved
        without its rows).
    names : tuple of str
        Parameter names, in the order of the parameter layout.
    loglik : float
        Log-likelihood at the point estimates.
    class_probabilities : ndarray, shape (n, K)
        Posterior class probabilities of each observation.
    between_probabilities : ndarray, shape (J, L), or None
        Posterior level-2 class probabilities of each school (model C).
    estimator : str
        ``"ml"`` or ``"bayes"``: a label for tables and JSON.
    converged : bool
        Whether the estimator's convergence checks passed (see
        :meth:`convergence`).
    quadrature_points : int or None
        Gauss-Hermite points per dimension for likelihoods with the random
        effects integrated out; None for the default.
    """

    # Fields shared by the dataclasses are annotations only: a property of the same name
    # here would shadow the dataclass field.
    spec: Spec
    design: Design
    names: tuple[str, ...]
    loglik: float
    class_probabilities: np.ndarray
    between_probabilities: np.ndarray | None
    estimator: str
    converged: bool
    quadrature_points: int | None

    # --- shared by both estimators -------------------------------------------------------------

    @property
    def n_obs(self) -> int:
        """Number of observations."""
        return self.design.n_obs

    @property
    def n_params(self) -> int:
        """Number of free parameters: the named ones less those the spec's constraints fix
        or tie to another (:mod:`bayesmix.model.constraints`)."""
        return len(self.names) - restrictions(self.spec.constraints, self.names)

    @property
    def aic(self) -> float:
        """Akaike information criterion at the point estimates."""
        return information_criteria(self.loglik, self.n_params, self.n_obs)["aic"]

    @property
    def bic(self) -> float:
        """Bayesian information criterion, ``-2 logL + r log n`` (eq 33), at the point estimates."""
        return information_criteria(self.loglik, self.n_params, self.n_obs)["bic"]

    @property
    def sabic(self) -> float:
        """Sample-size adjusted BIC at the point estimates."""
        return information_criteria(self.loglik, self.n_params, self.n_obs)["sabic"]

    @property
    def entropy(self) -> float:
        """Relative entropy of the class assignment (NaN for one class)."""
        return relative_entropy(self.class_probabilities)

    @property
    def classes(self) -> pd.DataFrame:
        """Class proportions and modal class counts."""
        return class_table(self.class_probabilities)

    def to_record(self, rows: bool) -> ResultRecord:
        """The fit as plain values for :func:`~bayesmix.results.persist.write_record`.

        Parameters
        ----------
        rows : bool
            Whether the data rows and per-unit class probabilities go with it.
        """
        values = {name: getattr(self, name) for name in saved_fields(type(self))}
        values.update(probability_fields(self, rows))
        return ResultRecord(
            estimator=self.estimator,
            spec=self.spec,
            design=self.design,
            rows=rows,
            fields=values,
            draws=self._draws_writer(rows),
        )

    def _draws_writer(self, rows: bool) -> Callable[[Path], None] | None:
        """What writes the fit's draws beside its JSON; None saves the fit as one file."""
        return None

    def save(self, path: Any, *, overwrite: bool = False, include_data: bool = True) -> Path:
        """Write the fit to disk; see :func:`bayesmix.save_result`.

        A fit with draws is saved as a folder (JSON and zarr DataTree), one
        without as a JSON file.
        """
        rows = bool(include_data) and not isinstance(self.design, DesignSummary)
        return write_record(self.to_record(rows), path, overwrite=overwrite)

    # --- what each estimator answers in its own way ----------------------------------------

    @property
    @abstractmethod
    def params(self) -> pd.DataFrame:
        """The tidy parameter table, indexed by parameter name."""

    @property
    @abstractmethod
    def point_estimates(self) -> pd.Series:
        """Point estimates by parameter: ML estimates, or posterior means."""

    @property
    @abstractmethod
    def standard_errors(self) -> pd.Series:
        """Uncertainty of the point estimates: ML standard errors, or posterior SDs."""

    @property
    @abstractmethod
    def structured(self) -> Params:
        """The point estimates as structured :class:`~bayesmix.model.params.Params`."""

    @abstractmethod
    def intervals(self, level: float = 0.95) -> pd.DataFrame:
        """Central intervals by parameter: columns ``lower`` and ``upper``.

        Wald intervals (estimate +- z SE) for ML, equal-tailed posterior
        intervals for NUTS.
        """

    @abstractmethod
    def sample_parameters(self, n: int | None = None, *, random_seed: int | None = None) -> Any:
        """Draws of the parameters, one row per draw and one column per name.

        Posterior draws for NUTS, draws from the asymptotic normal sampling
        distribution of the estimates for ML.
        """

    @property
    @abstractmethod
    def has_draws(self) -> bool:
        """Whether the fit carries draws of its parameters (a posterior sample)."""

    @abstractmethod
    def add_group(self, name: str, group: xr.Dataset) -> None:
        """Put ``group`` into the fit's DataTree as the group ``name``, replacing one so named.

        For analysis functions that record what they computed beside the draws
        (:func:`bayesmix.analysis.predictive.posterior_predictive`); only a fit
        with draws has a DataTree.
        """

    @abstractmethod
    def parameter_matrix(self) -> np.ndarray:
        """The parameter values the fit stands for, shape (S, n_params), columns as ``names``.

        Every posterior draw (chains stacked) of a fit with draws; the
        point estimates as one row (S = 1) of a fit without.
        """

    @property
    @abstractmethod
    def posterior(self) -> xr.Dataset | None:
        """The posterior group of the fit's DataTree (model variables, school residuals
        ``u``), or None for a fit without draws."""

    @property
    @abstractmethod
    def estimate_label(self) -> str:
        """What a plotted line of this fit shows, for legends."""

    @property
    @abstractmethod
    def starts_replicated(self) -> str:
        """``"r/n"``: random starts that reached the best log-likelihood, of those run to
        the end; empty where no random starts compete (one class, or NUTS)."""

    @abstractmethod
    def convergence(self) -> dict[str, Any]:
        """The estimator's convergence checks as a flat record, starting with ``converged``."""

    @abstractmethod
    def elpd(self, level: str | None = None, **kwargs: Any) -> Any:
        """PSIS-LOO and WAIC (see :func:`bayesmix.analysis.loo.elpd`); they need draws."""

    @abstractmethod
    def summary(self) -> str:
        """A printable report."""

    @abstractmethod
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (the CLI's ``--json`` contract)."""
