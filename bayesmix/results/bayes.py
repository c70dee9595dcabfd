"""NUTS fits: :class:`BayesResult` and the check of the chains' class labels."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd

from bayesmix.data.design import Design
from bayesmix.diagnostics import RHAT_MAX, Diagnostic
from bayesmix.formatting import format_table
from bayesmix.model.constraints import describe, with_fixed
from bayesmix.model.spec import Spec
from bayesmix.results.interface import FitResult, sample_size, tail_quantiles
from bayesmix.results.persist import write_draws
from bayesmix.results.tables import class_lines, diagnostic_lines, json_float, proportions
from bayesmix.validate import check_seed

if TYPE_CHECKING:
    import xarray as xr

    from bayesmix.model.params import Params


@dataclass(frozen=True)
class LabelCheck:
    """Agreement of chains on class labels.

    Attributes
    ----------
    switched : bool
        True when some chain's classes match chain 1's only after a
        permutation.
    permutations : tuple of tuple of int
        Per chain, the class of that chain matching each class of chain 1.
    agreement : tuple of float
        Per chain, the share of probability mass on matched classes.
    """

    switched: bool
    permutations: tuple[tuple[int, ...], ...]
    agreement: tuple[float, ...]


@dataclass(frozen=True, eq=False)
class BayesResult(FitResult):
    """A NUTS fit.

    Attributes
    ----------
    spec, design
        Model and data.
    idata : xarray.DataTree
        ArviZ DataTree (see :mod:`bayesmix.bayes.datatree`): ``posterior``
        holds one (chain, draw) variable per parameter, named as the rows
        of :attr:`table` (``1[c1]``, ``x:w``, ``var(u_1)``, ``C#1 ~ w``)
        in the user's units, the school residuals ``u`` (cluster x rterm)
        and, for mixtures, the class shares per draw ``class_share`` (the
        mean over students of their class probabilities in that draw;
        model C adds ``between_share``); ``sample_space`` holds the
        variables NUTS sampled, on the standardised scale; ``log_likelihood``
        holds one array, ``y`` per observation, conditional on the school
        residuals (for model C, whose schools are the independent units,
        ``y_school`` per school instead); then ``sample_stats`` and
        ``observed_data``. So ``az.summary(post.idata)``,
        ``az.loo(post.idata)`` and ``az.compare`` work with ArviZ's
        defaults; the school levels are :meth:`loo_data`.
    names : tuple of str
        Parameter names, as in :class:`MLResult`.
    table : pandas.DataFrame
        Posterior mean, sd, 2.5% and 97.5% quantiles, r_hat, ess_bulk and
        ess_tail of each parameter.
    draws : dict of str to ndarray
        Draws (chain, draw) of each named parameter.
    class_probabilities : ndarray, shape (n, K)
        Posterior mean of P(C_i = c | y_i) over all draws.
    loglik : float
        Log-likelihood at the posterior means (for BIC/AIC beside ML fits).
    loo : object
        ArviZ ``ELPDDataLOO`` of the pointwise log-likelihood.
    divergences : int
    labels : LabelCheck
    priors : dict
    settings, timings : dict
        Sampler settings (draws, tune, chains, seed, init, sampler) and
        seconds spent (compile_s, sampling_s, elapsed_s).
    between_probabilities : ndarray, shape (J, L), or None
        Posterior mean of P(D_j = d | y_j) over all draws (model C).
    between_labels : LabelCheck or None
        Agreement of chains on the level-2 class labels (model C).
    diagnostics : tuple of Diagnostic
        Problems with the posterior sample, found by the estimator (and again
        on loading, from the same draws) and issued as warnings there.
    cache : dict
        Quantities computed on demand (the trees of :meth:`loo_data` and the
        LOO of :meth:`elpd`).
    """

    spec: Spec
    design: Design = field(repr=False)
    idata: Any = field(repr=False)
    names: tuple[str, ...]
    table: pd.DataFrame
    draws: dict[str, np.ndarray] = field(repr=False)
    class_probabilities: np.ndarray = field(repr=False)
    loglik: float
    loo: Any = field(repr=False)
    divergences: int
    labels: LabelCheck
    priors: dict[str, Any] = field(repr=False)
    settings: dict[str, Any]
    timings: dict[str, float]
    between_probabilities: np.ndarray | None = field(default=None, repr=False)
    between_labels: LabelCheck | None = None
    diagnostics: tuple[Diagnostic, ...] = ()
    cache: dict[Any, Any] = field(default_factory=dict, repr=False)
    estimator: str = "bayes"

    REBUILT: ClassVar[frozenset[str]] = frozenset(
        {"idata", "draws", "table", "loo", "cache", "diagnostics"}
    )
    """Fields not in the JSON block: the draws and DataTree go to the zarr store beside it,
    and the table, LOO and cache are computed from them again on loading."""

    def elpd(self, level: str | None = None, **kwargs: Any) -> Any:
        """PSIS-LOO and WAIC at the student or school level: :func:`bayesmix.analysis.loo.elpd`."""
        from bayesmix.analysis.loo import elpd

        return elpd(self, level, **kwargs)

    def loo_data(self, level: str | None = None, **kwargs: Any) -> Any:
        """The posterior and one log-likelihood array at ``level``, as a DataTree for
        ArviZ's defaults (``az.loo``, ``az.compare``):
        :func:`bayesmix.analysis.loo.loo_data`.

        ``level`` is ``"student"`` (the fit's own ``log_likelihood``),
        ``"school"`` (summed over each school's students, conditional on its
        residual) or ``"school_marginal"`` (the residuals integrated out).
        """
        from bayesmix.analysis.loo import loo_data

        return loo_data(self, level, **kwargs)

    @property
    def params(self) -> pd.DataFrame:
        """Alias of :attr:`table`: the tidy parameter table."""
        return self.table

    @property
    def point_estimates(self) -> pd.Series:
        """Posterior means by parameter name."""
        return self.table["mean"]

    @property
    def standard_errors(self) -> pd.Series:
        """Posterior standard deviations by parameter name."""
        return self.table["sd"]

    @property
    def structured(self) -> Params:
        """The posterior means as structured :class:`~bayesmix.model.params.Params` (fixed
        parameters at their values)."""
        return self.design.layout.unpack(self._all(self.table["mean"].to_numpy()), natural=True)

    def _all(self, values: np.ndarray) -> np.ndarray:
        """Values over :attr:`names` (last axis) as values over every parameter of the
        layout, the fixed ones (absent from the posterior) at their values."""
        return with_fixed(values, self.names, self.design.layout.names, self.spec.constraints)

    def layout_draws(self) -> np.ndarray:
        """Every parameter's draws in layout order, fixed ones included: (chain, draw, p)."""
        return self._all(np.stack([self.draws[n] for n in self.names], axis=-1))

    def _flat(self) -> np.ndarray:
        """Draws (chains stacked) by parameter, shape (S, n_params), columns as ``names``."""
        stacked = np.stack([self.draws[n] for n in self.names], axis=-1)
        return stacked.reshape(-1, len(self.names))

    def intervals(self, level: float = 0.95) -> pd.DataFrame:
        """Equal-tailed posterior intervals: the (1 -+ level) / 2 quantiles of the draws.

        At 0.95 these are the table's ``q2.5`` and ``q97.5``.
        """
        low, high = tail_quantiles(level)
        flat = self._flat()
        return pd.DataFrame(
            {"lower": np.quantile(flat, low, axis=0), "upper": np.quantile(flat, high, axis=0)},
            index=pd.Index(self.names, name="parameter"),
        )

    def sample_parameters(
        self, n: int | None = None, *, random_seed: int | None = None
    ) -> pd.DataFrame:
        """Posterior draws of the parameters.

        Parameters
        ----------
        n : int, optional
            Draws picked at random from all chains (with replacement only when
            more are asked for than there are); default every draw, chain by
            chain.
        random_seed : int, optional

        Returns
        -------
        pandas.DataFrame
            One row per draw, one column per parameter.
        """
        flat = self._flat()
        if n is not None:
            size = sample_size(n, len(flat))
            rng = np.random.default_rng(check_seed(random_seed))
            flat = flat[rng.choice(len(flat), size=size, replace=size > len(flat))]
        return pd.DataFrame(flat, columns=pd.Index(self.names, name="parameter"))

    @property
    def has_draws(self) -> bool:
        """True: a NUTS fit is a posterior sample."""
        return True

    def add_group(self, name: str, group: xr.Dataset) -> None:
        """Put ``group`` into ``idata`` as the group ``name``, replacing one so named."""
        import xarray as xr

        self.idata[name] = xr.DataTree(group)

    def parameter_matrix(self) -> np.ndarray:
        """Every posterior draw, chains stacked, of every parameter of the layout (fixed
        ones at their values): shape (chains x draws, p)."""
        flat = np.stack([np.asarray(self.draws[n]).reshape(-1) for n in self.names], axis=1)
        return self._all(flat)

    @property
    def posterior(self) -> xr.Dataset:
        """The DataTree's posterior group as a Dataset."""
        return self.idata["posterior"].to_dataset()

    @property
    def estimate_label(self) -> str:
        """``"posterior mean, 95% band"``."""
        return "posterior mean, 95% band"

    @property
    def starts_replicated(self) -> str:
        """Empty: NUTS runs no competing random starts."""
        return ""

    @property
    def converged(self) -> bool:
        """Largest R-hat at most :data:`~bayesmix.diagnostics.RHAT_MAX`, no divergences."""
        return bool(self.rhat_max <= RHAT_MAX and self.divergences == 0)

    def convergence(self) -> dict[str, Any]:
        """``converged``, ``rhat_max`` and ``divergences``."""
        return {
            "converged": self.converged,
            "rhat_max": self.rhat_max,
            "divergences": int(self.divergences),
        }

    @property
    def quadrature_points(self) -> None:
        """None: quadrature, where used on the draws (the log-likelihood at the posterior
        means, school-level LOO), takes its default points."""
        return None

    def _draws_writer(self, rows: bool) -> Callable[[Path], None]:
        def write(store: Path) -> None:
            write_draws(self.idata, self.names, self.draws, store, rows)

        return write

    @property
    def rhat_max(self) -> float:
        """Largest rank-normalised split R-hat over the parameters."""
        return float(self.table["r_hat"].max())

    @property
    def ess_bulk_min(self) -> float:
        """Smallest bulk effective sample size over the parameters."""
        return float(self.table["ess_bulk"].min())

    @property
    def ess_per_second(self) -> float:
        """Smallest bulk ESS per second of sampling (compile time excluded)."""
        return self.ess_bulk_min / self.timings["sampling_s"]

    @property
    def pareto_k_bad(self) -> int:
        """Observations whose PSIS Pareto k exceeds the reliability threshold."""
        return int((np.asarray(self.loo.pareto_k) > self.loo.good_k).sum())

    def summary(self) -> str:
        """A printable report: settings, diagnostics, posterior table, classes."""
        s, st = self.spec, self.settings
        kept = st.get("interrupted_at")
        n_draws = st["draws"] if kept is None else f"{kept} of {st['draws']} (interrupted)"
        lines = [
            f"bayesmix Bayes fit: {s.name}  ({s.classes} class{'es' if s.classes > 1 else ''})",
            f"  observations {self.n_obs}   parameters {self.n_params}   "
            f"{st['chains']} chains x {n_draws} draws ({st['tune']} tune), "
            f"{st['sampler']}, init {st['init']}, seed {st['seed']}",
            f"  time {self.timings['elapsed_s']:.1f}s (compile {self.timings['compile_s']:.1f}s, "
            f"sampling {self.timings['sampling_s']:.1f}s)",
            f"  max R-hat {self.rhat_max:.3f}   min bulk ESS {self.ess_bulk_min:.0f}   "
            f"divergences {self.divergences}",
            f"  elpd_loo {self.loo.elpd:.2f} (SE {self.loo.se:.2f}, p_loo {self.loo.p:.2f})   "
            f"logL at posterior mean {self.loglik:.3f}",
        ]
        if describe(s.constraints):
            lines.append(f"  constraints: {describe(s.constraints)} (fixed ones not sampled)")
        lines += ["", format_table(self.table)]
        lines += class_lines(s, self.classes, self.between_probabilities)
        lines += ["", *diagnostic_lines(self.diagnostics)]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (the CLI's ``--json`` contract)."""
        s_c = self.spec.constraints
        return {
            "model": self.spec.name,
            "estimator": "bayes",
            "classes": self.spec.classes,
            "n_obs": self.n_obs,
            "n_clusters": self.design.n_clusters,
            "loglik": self.loglik,
            "n_params": self.n_params,
            "constraints": None if s_c is None else s_c.to_table(),
            "bic": self.bic,
            "aic": self.aic,
            "entropy": json_float(self.entropy),
            "elapsed_s": self.timings["elapsed_s"],
            "compile_s": self.timings["compile_s"],
            "sampling_s": self.timings["sampling_s"],
            "draws": self.settings["draws"],
            "tune": self.settings["tune"],
            "chains": self.settings["chains"],
            "seed": self.settings["seed"],
            "rhat_max": self.rhat_max,
            "ess_bulk_min": self.ess_bulk_min,
            "divergences": self.divergences,
            "label_switching": self.labels.switched,
            "loo": {
                "elpd": float(self.loo.elpd),
                "se": float(self.loo.se),
                "p_loo": float(self.loo.p),
                "pareto_k_bad": self.pareto_k_bad,
            },
            "class_proportions": proportions(self.class_probabilities),
            "between_proportions": proportions(self.between_probabilities),
            "params": [
                {
                    "name": nm,
                    "mean": float(row["mean"]),
                    "sd": float(row["sd"]),
                    "r_hat": float(row["r_hat"]),
                    "ess_bulk": float(row["ess_bulk"]),
                }
                for nm, row in self.table.iterrows()
            ],
            "diagnostics": [d.to_dict() for d in self.diagnostics],
        }
