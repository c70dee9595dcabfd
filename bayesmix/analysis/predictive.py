"""Posterior predictive checks: replicated outcomes and how the observed data sit among them.

Each replicate draws new school residuals, new latent classes (and new school
classes for model C) and new residuals for the observed covariates, under one
posterior draw of the parameters (or the ML estimates, for a plug-in check).
Replicates therefore test the whole hierarchical model: a check of the
outcome's distribution by gender asks whether the mixture reproduces the
shape of the maths scores of girls and boys, not only their means.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import xarray as xr

from bayesmix.errors import DataError, EstimationError, type_name
from bayesmix.results.interface import FitResult
from bayesmix.validate import SEED_MAX, check_count, check_seed

Statistic = Callable[[np.ndarray], float]


def _skewness(y: np.ndarray) -> float:
    d = y - y.mean()
    return float(np.mean(d**3) / np.mean(d**2) ** 1.5)


DEFAULT_STATISTICS: dict[str, Statistic] = {
    "mean": lambda y: float(np.mean(y)),
    "sd": lambda y: float(np.std(y, ddof=1)),
    "skewness": _skewness,
    "q10": lambda y: float(np.quantile(y, 0.10)),
    "median": lambda y: float(np.median(y)),
    "q90": lambda y: float(np.quantile(y, 0.90)),
}
"""Statistics checked by default: location, spread, asymmetry and tails."""


@dataclass(frozen=True)
class PredictiveDraws:
    """Replicated outcomes beside the observed ones.

    Attributes
    ----------
    y_rep : ndarray, shape (draws, n)
        Replicated outcomes, rows in the order of ``frame``.
    y : ndarray, shape (n,)
        Observed outcome.
    frame : pandas.DataFrame
        The rows used by the fit (after listwise deletion, sorted by cluster).
    outcome : str
        Name of the outcome column.
    source : str
        ``"posterior"`` (one posterior draw per replicate) or ``"ml"`` (the
        ML estimates for every replicate).
    """

    y_rep: np.ndarray = field(repr=False)
    y: np.ndarray = field(repr=False)
    frame: pd.DataFrame = field(repr=False)
    outcome: str
    source: str

    def groups(self, by: str | None) -> dict[str, np.ndarray]:
        """Row masks per level of ``by`` (one group ``"all"`` when None)."""
        if by is None:
            return {"all": np.ones(len(self.y), dtype=bool)}
        if by not in self.frame.columns:
            raise DataError(
                f"by={by!r} is not a column of the fitted data; columns: "
                f"{list(self.frame.columns)}."
            )
        values = self.frame[by].to_numpy()
        levels = pd.unique(values)
        if len(levels) > 20:
            raise DataError(
                f"by={by!r} has {len(levels)} distinct values; give a grouping column "
                "with at most 20 levels (e.g. a binned copy)."
            )

        def label(v: object) -> object:
            return int(v) if isinstance(v, float) and v.is_integer() else v

        return {f"{by}={label(v)}": values == v for v in sorted(levels)}

    def check(
        self, by: str | None = None, statistics: Mapping[str, Statistic] | None = None
    ) -> pd.DataFrame:
        """Posterior predictive p-values of summary statistics, per group.

        Parameters
        ----------
        by : str, optional
            Column whose levels are checked separately (e.g. ``"female"``).
        statistics : mapping, optional
            Name to function of a 1-D array; default
            :data:`DEFAULT_STATISTICS`.

        Returns
        -------
        pandas.DataFrame
            Indexed by (group, statistic): ``observed``, ``replicated_mean``,
            ``replicated_2.5%``, ``replicated_97.5%`` and ``p_value``
            (share of replicates with a statistic at least the observed
            one; values near 0 or 1 flag misfit).
        """
        stats = dict(statistics or DEFAULT_STATISTICS)
        rows = []
        for group, mask in self.groups(by).items():
            for name, fn in stats.items():
                obs = fn(self.y[mask])
                rep = np.array([fn(row[mask]) for row in self.y_rep])
                rows.append(
                    {
                        "group": group,
                        "statistic": name,
                        "observed": obs,
                        "replicated_mean": float(rep.mean()),
                        "replicated_2.5%": float(np.quantile(rep, 0.025)),
                        "replicated_97.5%": float(np.quantile(rep, 0.975)),
                        "p_value": float(np.mean(rep >= obs)),
                    }
                )
        return pd.DataFrame(rows).set_index(["group", "statistic"])


def _draw_params(result: FitResult, draws: int, rng: np.random.Generator) -> list:
    """One parameter set per replicate: posterior draws picked at random, or the estimates."""
    if not result.has_draws:
        return [result.structured] * draws
    # every draw of the named parameters, chain by chain
    matrix = result.parameter_matrix()
    picks = rng.choice(len(matrix), size=draws, replace=draws > len(matrix))
    layout = result.design.layout
    return [layout.unpack(matrix[int(k)], natural=True) for k in picks]


def posterior_predictive(
    result: FitResult, draws: int = 200, *, random_seed: int | None = None
) -> PredictiveDraws:
    """Replicate the outcome under the fitted model.

    Parameters
    ----------
    result : FitResult
        A NUTS fit (one posterior draw per replicate, so parameter
        uncertainty is included) or an ML fit (the estimates for every
        replicate: a plug-in check).
    draws : int
        Number of replicated data sets.
    random_seed : int, optional
        Seed; the same seed gives the same replicates.

    Returns
    -------
    PredictiveDraws
        For a NUTS fit the replicates also become the ``posterior_predictive``
        group of ``result.idata`` (``y``, one chain of ``draws`` draws over
        ``obs``, beside ``observed_data``), for ArviZ's predictive-check plots.
    """
    from bayesmix.data.simulate import simulate

    if not isinstance(result, FitResult):
        raise EstimationError(
            f"posterior_predictive takes a fit_bayes or fit_ml result, got {type_name(result)}."
        )
    draws = check_count(draws, "draws")
    design = result.design
    spec = design.spec
    covariates = design.frame.copy()
    for col in spec.centre:
        # the fit centred these columns; the replicates use them as the fit did
        covariates[col] = covariates[col].astype(float) - covariates[col].astype(float).mean()
    rng = np.random.default_rng(check_seed(random_seed))
    params = _draw_params(result, int(draws), rng)
    seeds = rng.integers(0, SEED_MAX + 1, size=len(params))
    y_rep = np.empty((len(params), len(covariates)))
    for i, (p, seed) in enumerate(zip(params, seeds, strict=True)):
        sim = simulate(spec, p, covariates=covariates, random_seed=int(seed))
        y_rep[i] = sim[spec.outcome].to_numpy()
    if result.has_draws:
        # one posterior draw per replicate: a single chain of `draws` draws, for ArviZ
        result.add_group(
            "posterior_predictive",
            xr.Dataset({"y": (("chain", "draw", "obs"), y_rep[None])}),
        )
    return PredictiveDraws(
        y_rep=y_rep,
        y=np.asarray(design.y, dtype=float),
        frame=design.frame.reset_index(drop=True),
        outcome=spec.outcome,
        source="posterior" if result.has_draws else result.estimator,
    )
