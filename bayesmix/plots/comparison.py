"""ML estimates beside posterior summaries of the same model, one row per parameter."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from bayesmix.errors import DataError
from bayesmix.plots.backend import pyplot
from bayesmix.results.interface import FitResult

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def plot_ml_vs_bayes(
    ml: FitResult,
    bayes: FitResult,
    names: list[str] | tuple[str, ...] | None = None,
    *,
    standardize: bool = False,
) -> Figure:
    """Forest plot of ML estimates against posterior summaries, one row per parameter.

    Each row shows the ML estimate with its 95% Wald interval
    (estimate +- 1.96 SE) and, just below it, the posterior mean with its
    2.5% and 97.5% quantiles.

    Parameters on very different scales (intercepts and variances beside
    slopes) can be handled in two ways: ``names`` picks a subset on a common
    scale, and ``standardize=True`` puts every row on the scale of its own
    ML standard error, centred at the ML estimate: the ML interval becomes
    -1.96..1.96 in every row and the Bayes interval shows how far the
    posterior lies from the ML estimate in ML standard errors. The default
    is the natural scale of the parameters.

    Parameters
    ----------
    ml : MLResult
    bayes : BayesResult
        Fits of the same model.
    names : sequence of str, optional
        Parameters to show, top to bottom; default every parameter of the
        ML fit that the Bayes fit also has.
    standardize : bool
        Centre each row at the ML estimate and divide by the ML SE.

    Returns
    -------
    matplotlib.figure.Figure
        One axes; y tick labels are the parameter names; the interval
        collections are labelled ``"ML (95% Wald)"`` and
        ``"Bayes (95% credible)"``, as is the figure legend below the axes.

    Raises
    ------
    DataError
        For a name missing from either fit.
    """
    plt = pyplot()
    ml_names, bayes_names = list(ml.names), list(bayes.names)
    if names is None:
        names = [n for n in ml_names if n in bayes_names]
    names = list(names)
    missing = [n for n in names if n not in ml_names or n not in bayes_names]
    if missing:
        raise DataError(
            f"parameter(s) {missing} are not in both fits; the ML fit has "
            f"{ml_names}, the Bayes fit {bayes_names}."
        )
    est = ml.point_estimates.loc[names].to_numpy(dtype=float)
    se = ml.standard_errors.loc[names].to_numpy(dtype=float)
    wald = ml.intervals(0.95).loc[names]
    mean = bayes.point_estimates.loc[names].to_numpy(dtype=float)
    credible = bayes.intervals(0.95).loc[names]
    low = credible["lower"].to_numpy(dtype=float)
    high = credible["upper"].to_numpy(dtype=float)
    if standardize:
        centre, scale = est, se
    else:
        centre, scale = np.zeros_like(est), np.ones_like(est)

    def norm(values: np.ndarray) -> np.ndarray:
        return (values - centre) / scale

    rows = np.arange(len(names), dtype=float)
    fig, ax = plt.subplots(figsize=(7.5, 1.2 + 0.45 * len(names)), layout="constrained")
    handles = []
    for label, offset, point, lo, hi, color, marker in (
        (
            "ML (95% Wald)",
            -0.15,
            est,
            wald["lower"].to_numpy(),
            wald["upper"].to_numpy(),
            "C0",
            "o",
        ),
        ("Bayes (95% credible)", 0.15, mean, low, high, "C3", "s"),
    ):
        ys = rows + offset
        bars = ax.hlines(ys, norm(lo), norm(hi), color=color, linewidth=2, label=label)
        (dots,) = ax.plot(norm(point), ys, linestyle="none", marker=marker, color=color)
        handles.append((bars, dots))
    if standardize:
        ax.axvline(0.0, color="0.6", linestyle="--", linewidth=0.8)
        ax.set_xlabel("difference from the ML estimate, in ML standard errors")
    else:
        ax.set_xlabel("parameter value")
    ax.set_yticks(rows, names)
    ax.set_ylim(len(names) - 0.5, -0.5)
    ax.set_ylabel("parameter")
    ax.set_title(f"{ml.spec.name}: ML vs Bayes ({len(names)} parameters)")
    # below the axes: inside, it would hide intervals that reach the corners
    fig.legend(
        handles, ["ML (95% Wald)", "Bayes (95% credible)"], loc="outside lower center", ncols=2
    )
    return fig
