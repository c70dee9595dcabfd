"""Figures: the paper's Figs 1, 5, 6 and 8, class lines, membership, ML against posterior
intervals, predictive checks, sampler diagnostics, SBC ranks, and a model's path diagram."""

from bayesmix.plots.calibration import plot_sbc
from bayesmix.plots.classes import plot_class_lines, plot_membership
from bayesmix.plots.comparison import plot_ml_vs_bayes
from bayesmix.plots.diagnostics import plot_diagnostics, plot_ppc
from bayesmix.plots.diagram import plot_model_diagram
from bayesmix.plots.paper_figures import plot_fig1, plot_fig5, plot_school_effects

__all__ = [
    "plot_class_lines",
    "plot_diagnostics",
    "plot_fig1",
    "plot_fig5",
    "plot_membership",
    "plot_ml_vs_bayes",
    "plot_model_diagram",
    "plot_ppc",
    "plot_sbc",
    "plot_school_effects",
]
