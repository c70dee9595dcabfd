"""Posterior predictive checks: replicates, p-values and the plot."""

from __future__ import annotations

import numpy as np
import pytest

import bayesmix as bm
from bayesmix.paper.section2 import FIG1_PARAMS
from bayesmix.plots import plot_ppc
from tests.support.paths import MODELS
from tests.support.settings import SHORT


@pytest.fixture(scope="module")
def fig1_data():
    spec = bm.load_spec(MODELS / "fig1.toml")
    return bm.simulate(spec, FIG1_PARAMS, n=3000, covariates={"x": "bernoulli"}, random_seed=5)


@pytest.fixture(scope="module")
def fits(fig1_data):
    mixture = bm.fit_ml(bm.load_spec(MODELS / "fig1.toml"), fig1_data, starts=4, random_seed=1)
    normal = bm.fit_ml(bm.make_spec("y ~ x", name="ols"), fig1_data)
    return mixture, normal


def test_replicates_follow_the_plug_in_model_and_repeat_with_the_seed(fits):
    _, normal = fits
    pred = bm.posterior_predictive(normal, 300, random_seed=2)
    assert pred.y_rep.shape == (300, 3000) and pred.source == "ml"
    again = bm.posterior_predictive(normal, 300, random_seed=2)
    np.testing.assert_array_equal(pred.y_rep, again.y_rep)
    # one normal regression: replicated means and SDs centre on the fitted ones
    beta = normal.params["estimate"]
    x = pred.frame["x"].to_numpy()
    np.testing.assert_allclose(
        pred.y_rep.mean(axis=0).mean(), beta["1"] + beta["x"] * x.mean(), atol=0.02
    )
    np.testing.assert_allclose(
        pred.y_rep.std(axis=1).mean(), np.sqrt(beta["sigma2"] + beta["x"] ** 2 * x.var()), rtol=0.02
    )


def test_checks_flag_the_normal_model_on_mixture_data_and_pass_the_mixture(fits):
    mixture, normal = fits
    bad = bm.posterior_predictive(normal, 200, random_seed=3).check(by="x")
    good = bm.posterior_predictive(mixture, 200, random_seed=3).check(by="x")
    assert list(bad.index.get_level_values("group").unique()) == ["x=0", "x=1"]
    # in the mixture data males are bimodal: the normal model misses their quantiles
    assert bad["p_value"].sub(0.5).abs().max() == 0.5
    assert good["p_value"].between(0.01, 0.99).all()
    obs = good.loc[("x=1", "mean"), "observed"]
    assert obs == pytest.approx(mixture.design.y[mixture.design.frame["x"] == 1].mean())


def test_bad_arguments_name_the_problem(fits):
    _, normal = fits
    pred = bm.posterior_predictive(normal, 5, random_seed=1)
    with pytest.raises(bm.DataError, match="by='gender' is not a column"):
        pred.check(by="gender")
    with pytest.raises(bm.DataError, match="distinct values"):
        pred.check(by="y")
    with pytest.raises(bm.EstimationError, match="positive integer"):
        bm.posterior_predictive(normal, 0)
    with pytest.raises(bm.EstimationError, match="fit_bayes or fit_ml result"):
        bm.posterior_predictive("fit", 5)


def test_ppc_plot_has_one_panel_per_group(fits):
    mixture, _ = fits
    fig = plot_ppc(bm.posterior_predictive(mixture, 20, random_seed=1), by="x")
    assert len(fig.axes) == 2
    n1 = int((mixture.design.frame["x"] == 1).sum())
    assert [ax.get_title() for ax in fig.axes] == [f"x=0 (n = {3000 - n1})", f"x=1 (n = {n1})"]
    assert fig.axes[0].get_xlabel() == "y" and fig.axes[0].get_ylabel() == "density"


@pytest.mark.slow
def test_posterior_replicates_use_posterior_draws(fig1_data):
    spec = bm.make_spec("y ~ x", name="ols")
    post = bm.fit_bayes(spec, fig1_data, **SHORT.kwargs(random_seed=1))
    pred = bm.posterior_predictive(post, 100, random_seed=1)
    assert pred.source == "posterior" and pred.y_rep.shape == (100, 3000)
    # replicated means vary with the posterior of the intercept and slope, plus noise
    spread = pred.y_rep.mean(axis=1).std()
    expected = np.sqrt(post.table.loc["sigma2", "mean"] / 3000)
    assert 0.8 * expected < spread < 2.5 * expected
    # the replicates are the fit's posterior_predictive group, beside the observed y
    group = post.idata["posterior_predictive"].to_dataset()
    assert group["y"].dims == ("chain", "draw", "obs")
    np.testing.assert_array_equal(group["y"].values[0], pred.y_rep)
    np.testing.assert_array_equal(post.idata["observed_data"]["y"].values, pred.y)
