"""NUTS on the weighted pseudo-likelihood: an option, refused without it, and weighting
each student's density."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import bayesmix as bm
from bayesmix.bayes.fit import prepare
from bayesmix.bayes.model import sampling_model
from bayesmix.errors import EstimationError
from bayesmix.model.weights import Weights
from bayesmix.paper.section2 import FIG1_PARAMS
from tests.support.paths import MODELS


@pytest.fixture(scope="module")
def weighted_fig1():
    spec = bm.load_spec(MODELS / "fig1.toml")
    data = bm.simulate(spec, FIG1_PARAMS, n=400, random_seed=4)
    data["wt"] = np.random.default_rng(1).uniform(0.5, 3.0, len(data))
    return spec, dataclasses.replace(spec, weights=Weights(within="wt")), data


def test_weighted_models_need_the_option(weighted_fig1):
    spec, wspec, data = weighted_fig1
    with pytest.raises(EstimationError, match="pass pseudo_likelihood=True"):
        bm.fit_bayes(wspec, data, draws=10, tune=10)
    with pytest.raises(EstimationError, match="has no \\[weights\\]"):
        bm.fit_bayes(spec, data, draws=10, tune=10, pseudo_likelihood=True)


def test_each_density_is_raised_to_its_weight(weighted_fig1):
    spec, wspec, data = weighted_fig1
    _, plain, _, priors = prepare(spec, data, None, "error")
    design, internal, _, wpriors = prepare(wspec, data, None, "error")
    plain_model = sampling_model(plain, priors)
    model = sampling_model(internal, wpriors)
    point = plain_model.initial_point()
    per_obs = plain_model.compile_fn(plain_model.logp(vars=plain_model.observed_RVs, sum=False))
    weighted = model.compile_fn(model.logp(vars=model.observed_RVs, sum=True))
    weights = design.weights.row
    # scaled to sum to n
    assert weights.sum() == pytest.approx(len(data), rel=1e-12)
    assert weighted(point) == pytest.approx(float(np.sum(weights * per_obs(point)[0])), rel=1e-12)


@pytest.mark.slow
def test_the_pseudo_posterior_centres_on_the_pseudo_ml_estimates(weighted_fig1):
    _, wspec, data = weighted_fig1
    ml = bm.fit_ml(wspec, data, random_seed=1)
    post = bm.fit_bayes(
        wspec, data, draws=400, tune=400, chains=2, random_seed=3, init=ml, pseudo_likelihood=True
    )
    table = post.table
    gap = np.abs(table["mean"].to_numpy() - ml.estimates) / table["sd"].to_numpy()
    assert gap.max() < 0.5
    assert "y" in post.idata["log_likelihood"]


def test_the_generative_model_and_sbc_refuse_weights(weighted_fig1):
    _, wspec, data = weighted_fig1
    with pytest.raises(EstimationError, match="public PyMC model is the generative model"):
        bm.build_model(wspec, data)
    with pytest.raises(EstimationError, match="SBC checks the posterior"):
        bm.sbc(wspec, data, simulations=2, draws=100, tune=10)
