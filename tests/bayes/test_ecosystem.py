"""A PyMC and ArviZ user's session: after the fit, only PyMC and ArviZ calls on what
bayesmix returns (the model, the DataTrees)."""

from __future__ import annotations

import arviz as az
import arviz_plots as azp
import numpy as np
import pymc as pm
import pytest

import bayesmix as bm
from tests.support.fits import two_level_60x10
from tests.support.settings import READ, SHORT


@pytest.mark.slow
def test_a_session_with_only_pymc_and_arviz_calls(fig3_bayes, conventional_on_fig3_bayes):
    fitted = two_level_60x10("fig3")
    model = bm.build_model(fitted.spec, fitted.data, init=fitted.ml)

    # the model: its graph, and forward draws from its prior
    graph = pm.model_to_graphviz(model)
    assert "C#1 ~ w" in graph.source and "cluster (60)" in graph.source
    prior = pm.sample_prior_predictive(draws=300, model=model, random_seed=3)
    assert prior["prior_predictive"]["y"].shape == (1, 300, 600)
    assert prior["prior"]["C#1 ~ w"].shape == (1, 300)

    # the posterior under the paper's names, as the fit's own table names them
    ours = fig3_bayes.table
    summary = az.summary(fig3_bayes.idata, var_names=list(ours.index), round_to="none")
    assert list(summary.index) == list(ours.index)
    np.testing.assert_allclose(summary["mean"].to_numpy(float), ours["mean"], rtol=1e-10)

    # PSIS-LOO and the comparison of two fits with ArviZ's defaults (the student level),
    # and at the school level from the fits' own school-level trees
    loo = az.loo(fig3_bayes.idata)
    assert loo.n_data_points == 600
    students = az.compare(
        {"fig3": fig3_bayes.idata, "conventional": conventional_on_fig3_bayes.idata},
        round_to="none",
    )
    assert set(students.index) == {"fig3", "conventional"}
    assert students.loc["fig3", "elpd"] == pytest.approx(loo.elpd)
    schools = az.compare(
        {
            "fig3": fig3_bayes.loo_data("school_marginal", max_draws=200),
            "conventional": conventional_on_fig3_bayes.loo_data("school_marginal", max_draws=200),
        }
    )
    assert schools.index[0] == "fig3"  # the data come from the mixture

    # replicates from the posterior, in the coordinates the sampler kept, and arviz-plots'
    # predictive check on them
    replicated = pm.sample_posterior_predictive(
        fig3_bayes.idata["sample_space"].to_dataset(),
        model=model,
        random_seed=5,
        progressbar=False,
    )
    y_rep = replicated["posterior_predictive"]["y"]
    assert y_rep.shape == (2, READ.draws, 600)
    # the replicates' means follow the posterior of the outcome's mean
    assert abs(float(y_rep.mean()) - float(fitted.data["y"].mean())) < 0.1
    plot = azp.plot_ppc_dist(replicated, num_samples=50)
    assert plot is not None

    # another NUTS implementation through PyMC, with the same DataTree
    other = bm.fit_bayes(
        fitted.spec, fitted.data, sampler="numpyro", **SHORT.kwargs(random_seed=2, init=fitted.ml)
    )
    other_summary = az.summary(other.idata, var_names=list(ours.index), round_to="none")
    assert list(other_summary.index) == list(ours.index)
    gap = (other_summary["mean"] - summary["mean"]).abs() / summary["sd"]
    assert (gap < 0.5).all(), gap.to_dict()
