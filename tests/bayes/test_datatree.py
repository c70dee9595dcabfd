"""The DataTree of a NUTS fit speaks the paper: ArviZ's own calls, with their defaults, give
the result's table and LOO."""

from __future__ import annotations

import warnings

import arviz_stats as azs
import numpy as np
import pytest
import xarray as xr

import bayesmix as bm
from bayesmix.bayes.datatree import current_layout
from bayesmix.errors import SamplingWarning
from tests.support.models import C22_PARAMS, c22_spec
from tests.support.settings import PLOTS


@pytest.mark.slow
def test_posterior_holds_the_paper_parameters_residuals_and_shares(fig3_bayes):
    post = fig3_bayes
    posterior = post.idata["posterior"]
    assert list(posterior.data_vars) == [*post.names, "u", "class_share"]
    assert posterior["u"].dims == ("chain", "draw", "cluster", "rterm")
    assert list(posterior["rterm"].values) == ["1", "C#1"]
    assert posterior["u"].shape[2] == post.design.n_clusters == 60
    # the shares per draw average to the class proportions of the summary
    np.testing.assert_allclose(
        posterior["class_share"].mean(("chain", "draw")).values,
        post.class_probabilities.mean(axis=0),
        rtol=1e-10,
    )
    np.testing.assert_allclose(posterior["class_share"].sum("class").values, 1.0, atol=1e-12)
    # the sampler's coordinates sit apart, on the standardised scale
    sampled = post.idata["sample_space"]
    assert {"sigma", "gamma", "u"} <= set(sampled.data_vars)
    assert not set(post.names) & set(sampled.data_vars)


@pytest.mark.slow
def test_az_summary_rows_are_the_table(fig3_bayes):
    post = fig3_bayes
    names = list(post.names)
    summary = azs.summary(post.idata, var_names=names, round_to="none")
    assert list(summary.index) == names == list(post.table.index)
    for column in ("mean", "sd", "r_hat", "ess_bulk"):
        np.testing.assert_allclose(
            summary[column].to_numpy(dtype=float), post.table[column].to_numpy(), rtol=1e-10
        )
    # with no arguments: the parameters first, then the residuals and the shares
    rows = list(azs.summary(post.idata, kind="stats").index)
    assert rows[: len(names)] == names
    assert rows[len(names)].startswith("u[") and rows[len(names)].endswith(", 1]")
    assert rows[-2:] == ["class_share[c1]", "class_share[c2]"]


@pytest.mark.slow
def test_model_c_log_likelihood_holds_the_school_terms_alone():
    data = bm.simulate(c22_spec(), C22_PARAMS, clusters=40, cluster_size=10, random_seed=1)
    with warnings.catch_warnings():
        # 2 x 100 draws from the prior start: R-hat and ESS warnings are expected
        warnings.simplefilter("ignore", SamplingWarning)
        post = bm.fit_bayes(c22_spec(), data, **PLOTS.kwargs(random_seed=1, init="prior"))
    assert list(post.idata["log_likelihood"].data_vars) == ["y_school"]
    assert post.idata["log_likelihood"]["y_school"].dims == ("chain", "draw", "school")
    posterior = post.idata["posterior"]
    assert list(posterior.data_vars) == [*post.names, "u", "class_share", "between_share"]
    assert posterior["u"].dims == ("chain", "draw", "between", "cluster", "rterm")
    np.testing.assert_allclose(
        posterior["between_share"].mean(("chain", "draw")).values,
        post.between_probabilities.mean(axis=0),
        rtol=1e-10,
    )
    loo = azs.loo(post.idata)
    assert loo.elpd == pytest.approx(post.elpd("school").elpd_loo, abs=1e-8)
    assert loo.elpd == pytest.approx(post.loo.elpd, abs=1e-8)
    with pytest.raises(bm.EstimationError, match="level-2 classes"):
        post.loo_data("student")


def test_a_tree_in_the_old_layout_is_read_into_the_new_one():
    rng = np.random.default_rng(0)
    sample = {"chain": [0, 1], "draw": [0, 1, 2]}
    old = xr.Dataset(
        {
            "b_1": (("chain", "draw", "class"), rng.normal(size=(2, 3, 2))),
            "z_u": (("chain", "draw", "cluster", "rterm"), rng.normal(size=(2, 3, 4, 1))),
            "u": (("chain", "draw", "cluster", "rterm"), rng.normal(size=(2, 3, 4, 1))),
        },
        coords={**sample, "class": ["c1", "c2"], "cluster": list("abcd"), "rterm": ["1"]},
    )
    loglik = xr.Dataset(
        {
            "y": (("chain", "draw", "obs"), rng.normal(size=(2, 3, 8))),
            "y_school": (("chain", "draw", "school"), rng.normal(size=(2, 3, 4))),
        },
        coords=sample,
    )
    stats = xr.Dataset({"diverging": (("chain", "draw"), np.zeros((2, 3), bool))}, coords=sample)
    tree = xr.DataTree.from_dict(
        {"/posterior": old, "/log_likelihood": loglik, "/sample_stats": stats}
    )
    named = {"1[c1]": old["b_1"].values[..., 0], "1[c2]": old["b_1"].values[..., 1]}
    new = current_layout(tree, named)
    assert list(new.children) == ["posterior", "log_likelihood", "sample_stats", "sample_space"]
    assert list(new["posterior"].data_vars) == ["1[c1]", "1[c2]", "u"]
    np.testing.assert_array_equal(new["posterior"]["1[c2]"].values, old["b_1"].values[..., 1])
    xr.testing.assert_identical(new["posterior"]["u"], old["u"])
    xr.testing.assert_identical(new["sample_space"].to_dataset(), old)
    assert list(new["log_likelihood"].data_vars) == ["y"]
    # a tree in the new layout keeps its groups, its posterior put in the table's order
    shuffled = new["posterior"].to_dataset()[["u", "1[c2]", "1[c1]"]]
    stored = xr.DataTree.from_dict(
        {
            "/sample_space": old,
            "/posterior": shuffled,
            "/log_likelihood": new["log_likelihood"].to_dataset(),
        }
    )
    again = current_layout(stored, named)
    assert list(again.children) == ["posterior", "sample_space", "log_likelihood"]
    assert list(again["posterior"].data_vars) == ["1[c1]", "1[c2]", "u"]
