"""Checks of a fit: posterior (or plug-in) predictive distributions and sampler diagnostics."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, get_args

import numpy as np

from bayesmix.errors import EstimationError
from bayesmix.plots.backend import pyplot

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from bayesmix.analysis.predictive import PredictiveDraws
    from bayesmix.results.bayes import BayesResult

DiagnosticKind = Literal["trace", "rank", "energy", "pair"]
_DIAGNOSTIC_KINDS: tuple[str, ...] = get_args(DiagnosticKind)
# what the posterior holds besides the parameters (see bayesmix.bayes.datatree)
_NOT_PARAMETERS = ("u", "class_share", "between_share")
_MAX_PAIR = 12


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
    plt = pyplot()
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
        Posterior variables to show: parameters under the names of
        ``bayes.table`` (e.g. ``"1[c1]"``, ``"x:w"``, ``"var(u_1)"``,
        ``"C#1 ~ x"``), the school residuals ``"u"`` or the class shares
        ``"class_share"``; default every parameter. Ignored for
        ``"energy"``.

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
    pyplot()
    import arviz_plots as azp

    idata = bayes.idata
    available = [str(v) for v in idata["posterior"].data_vars]
    if var_names is None:
        var_names = [v for v in available if v not in _NOT_PARAMETERS]
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
