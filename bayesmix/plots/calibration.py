"""Rank histograms of a simulation-based calibration study."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
from scipy import stats

from bayesmix.plots.backend import pyplot

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from bayesmix.analysis.sbc_result import SBCResult


_BAND = 0.99
"""Probability of the band of one bin's count under uniform ranks."""


def plot_sbc(result: SBCResult, *, columns: int = 4) -> Figure:
    """One rank histogram per parameter, with the band uniform ranks stay in.

    The gray band is the central 99% interval of one bin's count under
    uniform ranks (binomial with the study's simulations and 1 / bins), as in
    Talts et al. (2018); the title gives the test's p-value.

    Parameters
    ----------
    result : SBCResult
        Output of :func:`bayesmix.sbc`.
    columns : int
        Panels per row.

    Returns
    -------
    matplotlib.figure.Figure
    """
    plt = pyplot()
    names = list(result.ranks.columns)
    rows = math.ceil(len(names) / columns)
    fig, axes = plt.subplots(
        rows, columns, figsize=(3.2 * columns, 2.4 * rows), squeeze=False, sharey=True
    )
    n, bins = result.simulations, result.bins
    outside = (1.0 - _BAND) / 2
    low, high = stats.binom.ppf([outside, 1.0 - outside], n, 1.0 / bins)
    edges = np.linspace(0, result.n_ranks + 1, bins + 1)
    for ax, name in zip(axes.flat, names, strict=False):
        ax.axhspan(low, high, color="0.85", zorder=0)
        ax.axhline(n / bins, color="0.5", lw=0.8)
        ax.hist(result.ranks[name], bins=edges, color="C0", edgecolor="white")
        ax.set_title(f"{name}  p = {result.p_values[name]:.3f}", fontsize=9)
        ax.set_xlim(0, result.n_ranks + 1)
    for ax in list(axes.flat)[len(names) :]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel("simulations")
    for ax in axes[-1, :]:
        ax.set_xlabel("rank")
    fig.suptitle(f"SBC of {result.model}: {n} simulations, ranks 0..{result.n_ranks}")
    fig.tight_layout()
    return fig
