"""Plots of the paper's figures and of fitted models."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, get_args

import numpy as np
import pandas as pd

from bayesmix.data.design import Design
from bayesmix.density.likelihood import reference_log_probs
from bayesmix.errors import DataError, EstimationError
from bayesmix.model.formula import INTERCEPT
from bayesmix.model.params import Params
from bayesmix.results.fits import BayesResult, MLResult

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from bayesmix.analysis.predictive import PredictiveDraws


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
    plt = _pyplot()
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

    plt = _pyplot()
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


DiagnosticKind = Literal["trace", "rank", "energy", "pair"]
_DIAGNOSTIC_KINDS: tuple[str, ...] = get_args(DiagnosticKind)
_WALD_Z = 1.959963984540054
_SCHOOL_VARIABLES = ("z_u", "u", "b_school", "z_member")
# coordinates NUTS samples in place of the model's parameters (see bayesmix.bayes.centring)
_SAMPLER_SUFFIXES = ("_last", "_log_gap", "_offset", "_centred", "_ordered")
_MAX_PAIR = 12


def _pyplot() -> Any:
    # No backend is forced: notebooks keep their inline backend, and matplotlib picks
    # Agg by itself on a machine without a display.
    import matplotlib.pyplot as plt

    return plt


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
    plt = _pyplot()
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


def _model_column(design: Design, name: str) -> np.ndarray:
    """A data column as the model used it (grand-mean centred where the spec says so)."""
    if name == INTERCEPT:
        return np.ones(design.n_obs)
    values = design.frame[name].to_numpy(dtype=float)
    return values - values.mean() if name in design.spec.centre else values


def _profile(
    design: Design, products: list[tuple[str, ...]], covariate: str, grid: np.ndarray
) -> np.ndarray:
    """Design rows along ``grid`` for products of columns, others at their sample means.

    Returns shape (len(grid), len(products)): a product that contains the
    covariate varies with it (its other factors at the mean of their
    product), the others are the sample mean of their column.
    """
    shift = design.frame[covariate].to_numpy(dtype=float).mean()
    x = grid - shift if covariate in design.spec.centre else grid
    out = np.empty((len(grid), len(products)))
    for j, factors in enumerate(products):
        power = factors.count(covariate)
        rest = np.ones(design.n_obs)
        for name in factors:
            if name != covariate:
                rest = rest * _model_column(design, name)
        out[:, j] = rest.mean() * x**power
    return out


def _factors(term: str, covariate: str | None = None) -> tuple[str, ...]:
    names = term.split(":") + ([] if covariate is None else covariate.split(":"))
    return tuple(n for n in names if n != INTERCEPT)


def _flat_draws(result: BayesResult) -> np.ndarray:
    """Posterior draws (chains stacked) in layout order, shape (S, n_params)."""
    names = result.design.layout.names
    return np.stack([np.asarray(result.draws[n]).reshape(-1) for n in names], axis=1)


def _indices(result: MLResult | BayesResult) -> Params:
    """Structured parameters holding each entry's position in the layout.

    Unpacking positions instead of values maps every entry of ``beta`` and
    ``gamma`` to its named parameter, which vectorises over draws.
    """
    lay = result.design.layout
    return lay.unpack(np.arange(lay.n_params, dtype=float))


def _class_shares(result: MLResult | BayesResult) -> np.ndarray:
    return np.asarray(result.class_probabilities, dtype=float).mean(axis=0)


def _check_covariate(covariate: str, terms: tuple[str, ...], where: str) -> None:
    available = sorted({n for t in terms for n in _factors(t)})
    if covariate not in available:
        raise DataError(
            f"{covariate!r} is not a covariate of the {where}; choose from {available}."
        )


def plot_class_lines(
    result: MLResult | BayesResult,
    term: str,
    data: pd.DataFrame | None = None,
) -> Figure:
    """Class-specific regression lines of the outcome on one level-1 covariate.

    Each latent class gets the line ``E(y | x, class c)`` with the other
    covariates (and school covariates) at their sample means and the school
    residuals at 0, drawn over a scatter of the observations coloured by
    their modal class (``result.class_probabilities.argmax(1)``). After a
    Bayesian fit the line is the posterior mean and the shaded band its
    pointwise 95% credible interval.

    With level-2 latent classes (model C) there is one panel per level-2
    class d, showing the rows of ``beta`` that belong to d; the scatter of a
    panel holds the students of the schools whose modal level-2 class is d.

    Parameters
    ----------
    result : MLResult or BayesResult
        A fitted model.
    term : str
        A covariate of the outcome formula (a data column; products with it
        vary along it). The x-axis is in the column's original units even if
        the model centres it.
    data : DataFrame, optional
        Observations to scatter (columns outcome and ``term``), drawn in grey
        since their classes are unknown; default the fitted rows, coloured
        by modal class.

    Returns
    -------
    matplotlib.figure.Figure
        One axes per level-2 class; one line per latent class whose legend
        entry reads ``"class c (share%)"`` with the posterior class share.

    Raises
    ------
    DataError
        If ``term`` is not a covariate of the outcome formula.
    """
    plt = _pyplot()
    design = result.design
    spec = design.spec
    _check_covariate(term, spec.terms, "outcome formula")
    K, L = spec.classes, spec.between_classes
    raw_x = design.frame[term].to_numpy(dtype=float)
    y = design.y
    modal = np.asarray(result.class_probabilities).argmax(axis=1)
    if data is not None:
        raw_x = data[term].to_numpy(dtype=float)
        y = data[spec.outcome].to_numpy(dtype=float)
    grid = np.linspace(raw_x.min(), raw_x.max(), 101)
    products = [_factors(t, w) for _, t, w in spec.fixed_effects]
    profile = _profile(design, products, term, grid)
    if isinstance(result, MLResult):
        lines = (np.asarray(result.structured.beta, dtype=float) @ profile.T)[None]
        band = None
    else:
        draws = _flat_draws(result)[:, np.asarray(_indices(result).beta).astype(int)]
        all_lines = np.einsum("srp,gp->srg", draws, profile)
        lines = all_lines.mean(axis=0, keepdims=True)
        band = np.quantile(all_lines, [0.025, 0.975], axis=0)
    shares = _class_shares(result)
    school_class = (
        None
        if result.between_probabilities is None
        else np.asarray(result.between_probabilities).argmax(axis=1)[design.cluster]
    )
    fig, axes = plt.subplots(
        1, L, figsize=(6.5 * L, 5), layout="constrained", squeeze=False, sharey=True
    )
    for d, ax in enumerate(axes[0]):
        in_panel = np.ones(len(y), dtype=bool)
        if data is None and school_class is not None:
            in_panel = school_class == d
        if data is None:
            for c in range(K):
                sel = in_panel & (modal == c)
                ax.scatter(raw_x[sel], y[sel], s=5, alpha=0.25, color=f"C{c}", linewidths=0)
        else:
            ax.scatter(raw_x, y, s=5, alpha=0.25, color="0.5", linewidths=0)
        for c in range(K):
            row = d * K + c
            if band is not None:
                ax.fill_between(grid, band[0, row], band[1, row], color=f"C{c}", alpha=0.25)
            ax.plot(
                grid,
                lines[0, row],
                color=f"C{c}",
                linewidth=2.5,
                label=f"class {c + 1} ({100 * shares[c]:.1f}%)",
            )
        ax.set_xlabel(term)
        ax.set_ylabel(spec.outcome)
        title = f"{spec.outcome} on {term} by latent class"
        if L > 1:
            share_d = np.asarray(result.between_probabilities).mean(axis=0)[d]
            title = f"level-2 class {d + 1} ({100 * share_d:.1f}% of schools): " + title
        ax.set_title(title)
        ax.legend(title="ML estimate" if band is None else "posterior mean, 95% band")
    fig.suptitle("other covariates at their means, school residuals at 0", fontsize="medium")
    return fig


def plot_ppc(
    pred: PredictiveDraws, *, by: str | None = None, replicates: int = 50, bins: int = 40
) -> Figure:
    """Observed outcome distribution against replicated ones, per group.

    Parameters
    ----------
    pred : PredictiveDraws
        Output of :func:`bayesmix.posterior_predictive`.
    by : str, optional
        Column whose levels get one panel each (e.g. ``"female"``).
    replicates : int
        Replicated data sets drawn as thin lines.
    bins : int
        Histogram bins (shared by observed and replicated data).

    Returns
    -------
    matplotlib.figure.Figure
        One panel per group: the observed histogram (density), the
        replicates' histograms and their pointwise 95% band.
    """
    plt = _pyplot()
    groups = pred.groups(by)
    fig, axes = plt.subplots(
        1, len(groups), figsize=(4.5 * len(groups), 3.8), layout="constrained", squeeze=False
    )
    edges = np.histogram_bin_edges(np.concatenate([pred.y, pred.y_rep.ravel()]), bins=bins)
    mids = 0.5 * (edges[:-1] + edges[1:])
    what = "posterior predictive" if pred.source == "posterior" else "ML plug-in"
    for ax, (name, mask) in zip(axes[0], groups.items(), strict=True):
        dens = np.array([np.histogram(r[mask], bins=edges, density=True)[0] for r in pred.y_rep])
        for row in dens[:replicates]:
            ax.plot(mids, row, color="tab:blue", alpha=0.12, linewidth=0.7)
        lo, hi = np.quantile(dens, [0.025, 0.975], axis=0)
        ax.fill_between(mids, lo, hi, color="tab:blue", alpha=0.2, label=f"{what} 95% band")
        obs = np.histogram(pred.y[mask], bins=edges, density=True)[0]
        ax.step(mids, obs, where="mid", color="black", linewidth=1.4, label="observed")
        ax.set_xlabel(pred.outcome)
        ax.set_ylabel("density")
        ax.set_title(f"{name} (n = {int(mask.sum())})")
    axes[0][0].legend(loc="upper left", fontsize="small")
    fig.suptitle(f"{pred.outcome}: observed vs {len(pred.y_rep)} replicated data sets")
    return fig


def plot_membership(result: MLResult | BayesResult, covariate: str) -> Figure:
    """Latent class probabilities as a function of one membership covariate.

    The curves are the multinomial logit of class membership (eq 2; the
    last class is the reference) with the other membership covariates at
    their sample means and any membership random effects at 0. The
    observations' posterior class probabilities are drawn as a light
    scatter. After a Bayesian fit the curves are the pointwise posterior
    means of the probabilities with 95% credible bands.

    Parameters
    ----------
    result : MLResult or BayesResult
        A fit with at least two latent classes.
    covariate : str
        A covariate of the membership formula; the x-axis is in its original
        units even if the model centres it.

    Returns
    -------
    matplotlib.figure.Figure
        One axes with one curve per class; the curves sum to 1 at every x.

    Raises
    ------
    DataError
        For a one-class model or a covariate not in the membership formula.
    """
    plt = _pyplot()
    design = result.design
    spec = design.spec
    K = spec.classes
    if K < 2:
        raise DataError(f"model {spec.name!r} has one class: there is no class membership.")
    _check_covariate(covariate, spec.membership, "membership formula")
    raw_x = design.frame[covariate].to_numpy(dtype=float)
    grid = np.linspace(raw_x.min(), raw_x.max(), 101)
    profile = _profile(design, [_factors(t) for t in spec.membership], covariate, grid)
    if isinstance(result, MLResult):
        gamma = np.asarray(result.structured.gamma, dtype=float)[None]
    else:
        gamma = _flat_draws(result)[:, np.asarray(_indices(result).gamma).astype(int)]
    probs = np.exp(reference_log_probs(np.einsum("scm,gm->sgc", gamma, profile)))
    post = np.asarray(result.class_probabilities, dtype=float)
    shares = _class_shares(result)
    fig, ax = plt.subplots(figsize=(7, 5), layout="constrained")
    for c in range(K):
        ax.scatter(raw_x, post[:, c], s=4, alpha=0.08, color=f"C{c}", linewidths=0)
    for c in range(K):
        if isinstance(result, BayesResult):
            low, high = np.quantile(probs[..., c], [0.025, 0.975], axis=0)
            ax.fill_between(grid, low, high, color=f"C{c}", alpha=0.25)
        ax.plot(
            grid,
            probs[..., c].mean(axis=0),
            color=f"C{c}",
            linewidth=2.5,
            label=f"class {c + 1} ({100 * shares[c]:.1f}%)",
        )
    ax.set_xlabel(covariate)
    ax.set_ylabel("P(class | covariate)")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(
        f"class membership on {covariate} (multinomial logit; points: posterior probabilities)"
    )
    ax.legend(title="ML estimate" if isinstance(result, MLResult) else "posterior mean, 95% band")
    return fig


def plot_ml_vs_bayes(
    ml: MLResult,
    bayes: BayesResult,
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
    plt = _pyplot()
    ml_table, bayes_table = ml.params, bayes.table
    if names is None:
        names = [n for n in ml_table.index if n in bayes_table.index]
    names = list(names)
    missing = [n for n in names if n not in ml_table.index or n not in bayes_table.index]
    if missing:
        raise DataError(
            f"parameter(s) {missing} are not in both fits; the ML fit has "
            f"{list(ml_table.index)}, the Bayes fit {list(bayes_table.index)}."
        )
    est = ml_table.loc[names, "estimate"].to_numpy(dtype=float)
    se = ml_table.loc[names, "se"].to_numpy(dtype=float)
    mean = bayes_table.loc[names, "mean"].to_numpy(dtype=float)
    low = bayes_table.loc[names, "q2.5"].to_numpy(dtype=float)
    high = bayes_table.loc[names, "q97.5"].to_numpy(dtype=float)
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
        ("ML (95% Wald)", -0.15, est, est - _WALD_Z * se, est + _WALD_Z * se, "C0", "o"),
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


def plot_diagnostics(
    bayes: BayesResult,
    kind: DiagnosticKind = "trace",
    var_names: list[str] | tuple[str, ...] | None = None,
) -> Figure:
    """MCMC diagnostics of a Bayesian fit, drawn by ArviZ.

    Parameters
    ----------
    bayes : BayesResult
        A NUTS fit.
    kind : {"trace", "rank", "energy", "pair"}
        ``"trace"``: marginal densities and traces per chain
        (``arviz_plots.plot_trace_dist``); ``"rank"``: fractional rank ECDF
        per chain with its envelope (``plot_rank``); ``"energy"``: marginal
        and transition energy with BFMI (``plot_energy``); ``"pair"``:
        pairwise scatter of the draws with divergences (``plot_pair``), for
        at most 12 scalar parameters.
    var_names : sequence of str, optional
        Posterior variables to show (PyMC variable names, e.g. ``"b_1"``,
        ``"gamma"``, ``"sigma"``); default all but the school residuals
        and coefficients (``z_u``, ``u``, ``b_school``, ``z_member``), the
        coordinates NUTS samples in place of the parameters (``b_1_last``,
        ``b_1_log_gap``...) and variables with a constant entry (the unit
        diagonal of ``chol_u_corr``). Ignored for ``"energy"``.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    EstimationError
        For an unknown ``kind``, a variable not in the posterior, or a pair
        plot of more than 12 scalar parameters.
    """
    if kind not in _DIAGNOSTIC_KINDS:
        raise EstimationError(
            f"unknown diagnostic kind {kind!r}; choose one of {list(_DIAGNOSTIC_KINDS)}."
        )
    _pyplot()
    import arviz_plots as azp

    idata = bayes.idata
    available = [str(v) for v in idata["posterior"].data_vars]
    if var_names is None:
        posterior = idata["posterior"]
        # constant entries (a correlation matrix's unit diagonal) have no density to draw
        var_names = [
            v
            for v in available
            if v not in _SCHOOL_VARIABLES
            and not v.endswith(_SAMPLER_SUFFIXES)
            and bool(np.all(posterior[v].std(dim=("chain", "draw")).values > 0))
        ]
    var_names = list(var_names)
    unknown = [v for v in var_names if v not in available]
    if unknown:
        raise EstimationError(
            f"variable(s) {unknown} are not in the posterior; it has {available}."
        )
    if kind == "pair":
        n_scalar = sum(int(idata["posterior"][v].isel(chain=0, draw=0).size) for v in var_names)
        if n_scalar > _MAX_PAIR:
            raise EstimationError(
                f"a pair plot of {n_scalar} scalar parameters would need {n_scalar**2} "
                f"panels; pass var_names with at most {_MAX_PAIR} scalars in all."
            )
    from arviz_base import rc_context

    # ArviZ caps figures at 40 panels; the pair cap above keeps that case readable
    with rc_context(rc={"plot.max_subplots": None}):
        if kind == "trace":
            plotted = azp.plot_trace_dist(idata, var_names=var_names, backend="matplotlib")
        elif kind == "rank":
            plotted = azp.plot_rank(idata, var_names=var_names, backend="matplotlib")
        elif kind == "energy":
            plotted = azp.plot_energy(idata, backend="matplotlib")
        else:
            plotted = azp.plot_pair(idata, var_names=var_names, backend="matplotlib")
    fig = plotted.viz["figure"]
    fig = fig.item() if hasattr(fig, "item") else fig
    # ArviZ lays panels out without an engine, which leaves no room for a title
    fig.set_layout_engine("constrained")
    fig.suptitle(f"{bayes.spec.name}: {kind} diagnostics")
    return fig
