"""Saved results load back with the same summary, and seeds reproduce fits exactly."""

from __future__ import annotations

import dataclasses
import json

import arviz_stats as azs
import numpy as np
import pandas as pd
import pytest
import xarray as xr

import bayesmix as bm
from bayesmix.paper.section2 import FIG1_PARAMS
from tests.support.paths import MODELS
from tests.support.settings import SHORT


@pytest.fixture(scope="module")
def fig1_data() -> pd.DataFrame:
    spec = bm.load_spec(MODELS / "fig1.toml")
    return bm.simulate(spec, FIG1_PARAMS, n=1500, random_seed=3)


def test_ml_fit_round_trips_through_json(tmp_path, fig1_data):
    ml = bm.fit_ml(bm.load_spec(MODELS / "fig1.toml"), fig1_data, starts=4, random_seed=1)
    path = ml.save(tmp_path / "fig1")
    assert path.name == "fig1.json"
    back = bm.load_result(path)
    assert isinstance(back, bm.MLResult)
    assert back.summary() == ml.summary()
    pd.testing.assert_frame_equal(back.params, ml.params)
    np.testing.assert_array_equal(back.class_probabilities, ml.class_probabilities)
    np.testing.assert_array_equal(back.starts.logliks, ml.starts.logliks)
    assert back.spec == ml.spec
    saved = json.loads(path.read_text())
    assert saved["bayesmix_version"] == bm.__version__ and saved["estimator"] == "ml"


def test_two_level_fit_with_string_schools_and_nan_se_round_trips(tmp_path):
    spec = bm.load_spec(MODELS / "conventional.toml")
    from bayesmix.paper.section2 import CONVENTIONAL_PARAMS

    data = bm.simulate(spec, CONVENTIONAL_PARAMS, clusters=40, cluster_size=10, random_seed=2)
    data["cluster"] = "school-" + data["cluster"].astype(str)
    fit = bm.fit_ml(spec, data)
    # a variance at its boundary has no SE; NaN and infinity must survive the file
    se = fit.se.copy()
    se[5], se[6] = np.nan, np.inf
    ml = dataclasses.replace(fit, se=se)
    back = bm.load_result(ml.save(tmp_path / "conv.json"))
    assert back.summary() == ml.summary()
    assert list(back.design.cluster_ids) == list(ml.design.cluster_ids)
    np.testing.assert_array_equal(back.se, ml.se)  # NaN where the variance sits at 0
    pd.testing.assert_frame_equal(bm.school_effects(back), bm.school_effects(ml))


def test_bad_files_are_named(tmp_path):
    with pytest.raises(bm.ResultFileError, match="does not exist"):
        bm.load_result(tmp_path / "nothing.json")
    other = tmp_path / "other.json"
    other.write_text('{"a": 1}')
    with pytest.raises(bm.ResultFileError, match="not a saved bayesmix result"):
        bm.load_result(other)
    other.write_text("not json")
    with pytest.raises(bm.ResultFileError, match="not a saved bayesmix result"):
        bm.load_result(other)
    other.write_text(json.dumps({"format": "bayesmix-result", "format_version": 99}))
    with pytest.raises(bm.ResultFileError, match="format 99"):
        bm.load_result(other)


@pytest.mark.slow
def test_bayes_fit_round_trips_and_its_seed_reproduces_it(tmp_path, fig1_data):
    spec = bm.load_spec(MODELS / "fig1.toml")
    post = bm.fit_bayes(spec, fig1_data, **SHORT.kwargs(random_seed=4))
    again = bm.fit_bayes(spec, fig1_data, **SHORT.kwargs(random_seed=4))
    np.testing.assert_array_equal(again.draws["x[c1]"], post.draws["x[c1]"])
    folder = post.save(tmp_path / "post")
    back = bm.load_result(folder)
    assert isinstance(back, bm.BayesResult)
    assert back.summary() == post.summary()
    pd.testing.assert_frame_equal(back.table, post.table)
    for group, name in (("posterior", "C#1 ~ x"), ("sample_space", "gamma")):
        np.testing.assert_array_equal(
            back.idata[group][name].values, post.idata[group][name].values
        )
    assert list(back.idata["posterior"].data_vars) == list(post.idata["posterior"].data_vars)
    assert back.elpd("student").elpd_loo == pytest.approx(post.elpd("student").elpd_loo)
    # saving again over the same folder replaces it; a foreign folder is left alone
    post.save(folder)
    (tmp_path / "mine").mkdir()
    with pytest.raises(bm.BayesmixError, match="not a saved bayesmix result"):
        post.save(tmp_path / "mine")
    with pytest.raises(bm.ResultFileError, match="load its folder"):
        bm.load_result(folder / "result.json")


@pytest.mark.slow
def test_an_interrupted_fit_keeps_its_draws_and_says_so(monkeypatch, fig1_data):
    import time

    import nutpie

    real = nutpie.sample

    def interrupted(*args, **kwargs):
        running = real(*args, **kwargs)

        def wait():
            time.sleep(4.0)  # then Ctrl-C, long before 50000 draws are done
            raise KeyboardInterrupt

        running.wait = wait
        return running

    monkeypatch.setattr(nutpie, "sample", interrupted)
    spec = bm.load_spec(MODELS / "fig1.toml")
    with pytest.warns(bm.BayesmixWarning, match="interrupted: the result holds the first"):
        post = bm.fit_bayes(spec, fig1_data, draws=50000, tune=100, chains=2, random_seed=1)
    kept = post.settings["interrupted_at"]
    assert 0 < kept < 50000
    assert post.draws["x[c1]"].shape == (2, kept)
    assert np.isfinite(post.table["mean"]).all()
    assert f"x {kept} of 50000 (interrupted) draws" in post.summary()


def _old_layout(post: bm.BayesResult) -> xr.DataTree:
    """``post``'s DataTree as bayesmix wrote it before the paper-named layout: the sampler's
    variables in ``posterior`` (``u`` in the user's units), ``y`` and ``y_school`` in
    ``log_likelihood``."""
    tree = post.idata
    old = tree["sample_space"].to_dataset()
    old["u"] = tree["posterior"]["u"]
    loglik = tree["log_likelihood"].to_dataset()
    bounds = post.design.bounds
    loglik["y_school"] = (
        ("chain", "draw", "school"),
        np.add.reduceat(loglik["y"].values, bounds[:-1], axis=2),
    )
    groups = {name: tree[name].to_dataset() for name in tree.children if name != "sample_space"}
    return xr.DataTree.from_dict(
        {
            f"/{name}": ds
            for name, ds in {**groups, "posterior": old, "log_likelihood": loglik}.items()
        }
    )


@pytest.mark.slow
def test_new_layout_round_trips_and_the_old_one_still_loads(tmp_path, fig3_bayes):
    post = fig3_bayes
    back = bm.load_result(post.save(tmp_path / "new"))
    for group in ("posterior", "sample_space", "log_likelihood"):
        assert sorted(back.idata[group].data_vars) == sorted(post.idata[group].data_vars)
    assert list(back.idata["posterior"].data_vars) == list(post.idata["posterior"].data_vars)
    np.testing.assert_array_equal(
        back.idata["posterior"]["class_share"].values, post.idata["posterior"]["class_share"].values
    )
    assert back.loo.elpd == pytest.approx(post.loo.elpd, abs=1e-10)
    assert back.summary() == post.summary()

    old = dataclasses.replace(post, idata=_old_layout(post), cache={})
    assert sorted(old.idata["log_likelihood"].data_vars) == ["y", "y_school"]
    loaded = bm.load_result(old.save(tmp_path / "old"))
    assert list(loaded.idata["posterior"].data_vars) == [*post.names, "u"]  # no class shares
    assert list(loaded.idata["log_likelihood"].data_vars) == ["y"]
    assert {"sigma", "gamma", "u"} <= set(loaded.idata["sample_space"].data_vars)
    pd.testing.assert_frame_equal(loaded.table, post.table)
    np.testing.assert_array_equal(
        loaded.idata["posterior"]["u"].values, post.idata["posterior"]["u"].values
    )
    # ArviZ's defaults work on it, and the school level is summed from y again
    assert azs.loo(loaded.idata).elpd == pytest.approx(loaded.elpd("student").elpd_loo, abs=1e-8)
    np.testing.assert_allclose(
        loaded.loo_data("school")["log_likelihood"]["y_school"].values,
        old.idata["log_likelihood"]["y_school"].values,
    )
