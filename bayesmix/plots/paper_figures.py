"""The paper's data figures: Fig 1 (classes hidden in a histogram), Fig 5 (HSB outcome by
gender) and Figs 6 and 8 (school slopes against intercepts)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from bayesmix.plots.backend import pyplot

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def plot_fig1(
    frame: pd.DataFrame,
    *,
    outcome: str = "y",
    group: str = "x",
    classes: str | np.ndarray = "C",
    group_labels: tuple[str, str] = ("males", "females"),
    class_labels: tuple[str, str] = ("high class", "low class"),
    bins: int = 40,
) -> Any:
    """The paper's Fig 1: outcome histograms by latent class and a binary group.

    Panels (a)-(d) show each class for each group (class 2 is "low", class 1
    "high", as labelled by bayesmix's ordering); panel (e) shows the observed
    histograms of both groups, where the class structure is hidden.

    Parameters
    ----------
    frame : DataFrame
        Data with the outcome, the binary group column (0/1) and classes.
    outcome, group : str
        Column names.
    classes : str or ndarray
        Column of classes (1 = high, 2 = low), e.g. ``"C"`` from
        :func:`bayesmix.data.simulate`, or an array such as the modal classes of a
        fit (``result.class_probabilities.argmax(axis=1) + 1``).
    group_labels : tuple of str
        Names of group 0 and group 1.
    class_labels : tuple of str
        Names of class 1 and class 2.
    bins : int
        Histogram bins.

    Returns
    -------
    matplotlib.figure.Figure
    """
    plt = pyplot()
    y = frame[outcome].to_numpy(dtype=float)
    g = frame[group].to_numpy()
    cls = frame[classes].to_numpy() if isinstance(classes, str) else np.asarray(classes)
    edges = np.histogram_bin_edges(y, bins=bins)
    fig = plt.figure(figsize=(10, 9), layout="constrained")
    grid = fig.add_gridspec(3, 2)
    panels = [(1, 2, "a"), (1, 1, "b"), (0, 2, "c"), (0, 1, "d")]
    for k, (grp, c, letter) in enumerate(panels):
        ax = fig.add_subplot(grid[k // 2, k % 2])
        sel = (g == grp) & (cls == c)
        ax.hist(y[sel], bins=edges, color="0.6" if grp == 1 else "0.2", edgecolor="white")
        ax.set_title(f"({letter}) {class_labels[c - 1]}, {group_labels[grp]} (n={sel.sum()})")
        ax.set_xlabel(outcome)
        ax.set_ylabel("count")
    ax = fig.add_subplot(grid[2, :])
    for grp, color in ((0, "0.2"), (1, "0.6")):
        ax.hist(
            y[g == grp],
            bins=edges,
            histtype="step",
            linewidth=2,
            color=color,
            label=f"{group_labels[grp]} (mean {y[g == grp].mean():.2f})",
        )
    ax.set_title("(e) observed distributions, classes ignored")
    ax.set_xlabel(outcome)
    ax.set_ylabel("count")
    ax.legend()
    return fig


def plot_fig5(
    frame: pd.DataFrame,
    *,
    outcome: str = "math",
    group: str = "female",
    covariate: str = "ses",
    group_labels: tuple[str, str] = ("males", "females"),
    bins: int = 30,
) -> Figure:
    """The paper's Fig 5: outcome histogram and outcome-on-covariate scatter per group.

    One row per group (0 then 1): on the left the histogram of the outcome,
    on the right the scatter of the outcome on the covariate.

    Parameters
    ----------
    frame : DataFrame
        Data with the outcome, the binary group column (0/1) and the
        covariate, e.g. :func:`bayesmix.data.datasets.load_hsb`.
    outcome, group, covariate : str
        Column names.
    group_labels : tuple of str
        Names of group 0 and group 1.
    bins : int
        Histogram bins (shared by both groups).

    Returns
    -------
    matplotlib.figure.Figure
        Four axes; panel titles start with ``"(a) <group 0>"`` and
        ``"(b) <group 1>"`` and report n and the outcome mean.
    """
    plt = pyplot()
    y = frame[outcome].to_numpy(dtype=float)
    x = frame[covariate].to_numpy(dtype=float)
    g = frame[group].to_numpy()
    edges = np.histogram_bin_edges(y, bins=bins)
    fig, axes = plt.subplots(2, 2, figsize=(10, 8), layout="constrained", squeeze=False)
    for grp, letter in ((0, "a"), (1, "b")):
        sel = g == grp
        label = f"({letter}) {group_labels[grp]}"
        ax_hist, ax_scatter = axes[grp]
        ax_hist.hist(y[sel], bins=edges, color="0.45", edgecolor="white")
        ax_hist.set_title(f"{label}: {outcome} (n={int(sel.sum())}, mean {y[sel].mean():.2f})")
        ax_hist.set_xlabel(outcome)
        ax_hist.set_ylabel("count")
        ax_scatter.scatter(x[sel], y[sel], s=6, alpha=0.35, color="0.2", linewidths=0)
        ax_scatter.set_title(f"{label}: {outcome} on {covariate}")
        ax_scatter.set_xlabel(covariate)
        ax_scatter.set_ylabel(outcome)
    # shared limits so that the two groups can be compared by eye
    for col in range(2):
        lows, highs = zip(*(axes[r, col].get_ylim() for r in range(2)), strict=True)
        for r in range(2):
            axes[r, col].set_ylim(min(lows), max(highs))
    return fig


def plot_school_effects(
    effects: pd.DataFrame,
    *,
    x: str = "1",
    y: str = "female",
    labels: tuple[str, str] | None = None,
    errorbars: bool = False,
) -> Any:
    """The paper's Fig 6 (and Fig 8): school slopes against school intercepts.

    Parameters
    ----------
    effects : DataFrame
        Output of :func:`bayesmix.school_effects`.
    x, y : str
        Terms whose school coefficients go on the axes (``"1"`` is the
        intercept).
    labels : tuple of str, optional
        Axis labels; default ``"school coefficient of <term>"``.
    errorbars : bool
        Draw +-1 SD bars (empirical Bayes or posterior SDs).

    Returns
    -------
    matplotlib.figure.Figure
        The title reports the share of schools with a positive ``y``
        coefficient (for ``y="female"``: schools where females have an
        advantage).
    """
    from bayesmix.analysis.schools import share_positive

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 5), layout="constrained")
    xs, ys = effects[f"coef_{x}"], effects[f"coef_{y}"]
    if errorbars:
        ax.errorbar(
            xs,
            ys,
            xerr=effects[f"sd_coef_{x}"],
            yerr=effects[f"sd_coef_{y}"],
            fmt="none",
            ecolor="0.8",
            linewidth=0.6,
        )
    ax.scatter(xs, ys, s=14, color="0.2")
    ax.axhline(0.0, color="0.5", linestyle="--", linewidth=0.8)
    name_x = "intercept" if x == "1" else x
    ax.set_xlabel(labels[0] if labels else f"school coefficient of {name_x}")
    ax.set_ylabel(labels[1] if labels else f"school coefficient of {y}")
    share = share_positive(effects, y)
    ax.set_title(f"{len(effects)} schools; {y} coefficient > 0 in {100 * share:.1f}%")
    return fig
