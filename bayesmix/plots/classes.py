"""Latent classes of a fit: class-specific regression lines and class membership curves.

Both draw the point estimates of an ML fit, and the posterior mean with its
95% band of a NUTS fit, from the parameter values the fit stands for
(:meth:`~bayesmix.results.interface.FitResult.parameter_matrix`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from bayesmix.data.design import Design
from bayesmix.density.likelihood import reference_log_probs
from bayesmix.errors import DataError
from bayesmix.model.formula import INTERCEPT, term_parts
from bayesmix.model.params import Params
from bayesmix.plots.backend import pyplot
from bayesmix.results.interface import FitResult

if TYPE_CHECKING:
    from matplotlib.figure import Figure


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
    names = [*term_parts(term), *(() if covariate is None else term_parts(covariate))]
    return tuple(n for n in names if n != INTERCEPT)


def _indices(result: FitResult) -> Params:
    """Structured parameters holding each entry's position in the layout.

    Unpacking positions instead of values maps every entry of ``beta`` and
    ``gamma`` to its named parameter, which vectorises over draws.
    """
    lay = result.design.layout
    return lay.unpack(np.arange(lay.n_params, dtype=float))


def _class_shares(result: FitResult) -> np.ndarray:
    return np.asarray(result.class_probabilities, dtype=float).mean(axis=0)


def _check_covariate(covariate: str, terms: tuple[str, ...], where: str) -> None:
    available = sorted({n for t in terms for n in _factors(t)})
    if covariate not in available:
        raise DataError(
            f"{covariate!r} is not a covariate of the {where}; choose from {available}."
        )


def plot_class_lines(
    result: FitResult,
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
    result : FitResult
        A fitted model (MLResult or BayesResult).
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
    plt = pyplot()
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
    beta = result.parameter_matrix()[:, np.asarray(_indices(result).beta).astype(int)]
    band = None
    if result.has_draws:
        all_lines = np.einsum("srp,gp->srg", beta, profile)
        lines = all_lines.mean(axis=0, keepdims=True)
        band = np.quantile(all_lines, [0.025, 0.975], axis=0)
    else:
        lines = beta @ profile.T
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
        ax.legend(title=result.estimate_label)
    fig.suptitle("other covariates at their means, school residuals at 0", fontsize="medium")
    return fig


def plot_membership(result: FitResult, covariate: str) -> Figure:
    """Latent class probabilities as a function of one membership covariate.

    The curves are the multinomial logit of class membership (eq 2; the
    last class is the reference) with the other membership covariates at
    their sample means and any membership random effects at 0. The
    observations' posterior class probabilities are drawn as a light
    scatter. After a Bayesian fit the curves are the pointwise posterior
    means of the probabilities with 95% credible bands.

    Parameters
    ----------
    result : FitResult
        A fit (MLResult or BayesResult) with at least two latent classes.
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
    plt = pyplot()
    design = result.design
    spec = design.spec
    K = spec.classes
    if K < 2:
        raise DataError(f"model {spec.name!r} has one class: there is no class membership.")
    _check_covariate(covariate, spec.membership, "membership formula")
    raw_x = design.frame[covariate].to_numpy(dtype=float)
    grid = np.linspace(raw_x.min(), raw_x.max(), 101)
    profile = _profile(design, [_factors(t) for t in spec.membership], covariate, grid)
    gamma = result.parameter_matrix()[:, np.asarray(_indices(result).gamma).astype(int)]
    probs = np.exp(reference_log_probs(np.einsum("scm,gm->sgc", gamma, profile)))
    post = np.asarray(result.class_probabilities, dtype=float)
    shares = _class_shares(result)
    fig, ax = plt.subplots(figsize=(7, 5), layout="constrained")
    for c in range(K):
        ax.scatter(raw_x, post[:, c], s=4, alpha=0.08, color=f"C{c}", linewidths=0)
    for c in range(K):
        if result.has_draws:
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
    ax.legend(title=result.estimate_label)
    return fig
