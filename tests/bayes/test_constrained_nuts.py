"""Constraints under NUTS: fixed parameters are not sampled, equal ones share one variable,
and the posterior agrees with the constrained ML fit."""

from __future__ import annotations

import numpy as np
import pytest

import bayesmix as bm
from bayesmix.errors import EstimationError
from bayesmix.paper.section2 import FIG1_PARAMS
from tests.support.paths import MODELS

CONSTRAINTS = {
    "fixed": {"x[c2]": 0.5, "C#1 ~ z": 0.0},
    "equal": [["z[c1]", "z[c2]"], ["sigma2[c1]", "sigma2[c2]"]],
}


@pytest.fixture(scope="module")
def data():
    base = bm.simulate(bm.load_spec(MODELS / "fig1.toml"), FIG1_PARAMS, n=600, random_seed=4)
    return base.assign(z=np.random.default_rng(5).normal(size=len(base)))


@pytest.fixture(scope="module")
def spec() -> bm.Spec:
    return bm.make_spec(
        "y ~ x + z",
        classes=2,
        residual_variance="class",
        membership="x + z",
        constraints=CONSTRAINTS,
        name="fig1z",
    )


@pytest.fixture(scope="module")
def fits(spec, data) -> tuple[bm.MLResult, bm.BayesResult]:
    ml = bm.fit_ml(spec, data, starts=10, random_seed=1)
    post = bm.fit_bayes(spec, data, draws=300, tune=300, chains=2, random_seed=1, init=ml)
    return ml, post


def test_fixed_parameters_are_absent_from_the_posterior(fits):
    ml, post = fits
    for name in ("x[c2]", "C#1 ~ z"):
        assert name in ml.names and name not in post.names
        assert name not in post.idata["posterior"].data_vars
    sampled = set(post.idata["sample_space"].data_vars)
    assert {"b_x[c1]", "gamma[C#1 ~ x]", "sigma[sigma2[c1]]"} <= sampled
    assert not {"b_x[c2]", "gamma[C#1 ~ z]"} & sampled
    assert len(ml.names) == 11 and len(post.names) == 9
    assert post.n_params == ml.n_params == 7
    matrix = post.parameter_matrix()
    assert matrix.shape[1] == len(ml.names)
    for name, value in (("x[c2]", 0.5), ("C#1 ~ z", 0.0)):
        assert np.all(matrix[:, list(ml.names).index(name)] == value)
    line = (
        "constraints: x[c2] fixed at 0.5; C#1 ~ z fixed at 0; z[c1] = z[c2]; "
        "sigma2[c1] = sigma2[c2] (fixed ones not sampled)"
    )
    assert line in post.summary()


def test_equal_parameters_share_their_draws(fits):
    _, post = fits
    assert np.array_equal(post.draws["z[c1]"], post.draws["z[c2]"])
    assert np.array_equal(post.draws["sigma2[c1]"], post.draws["sigma2[c2]"])
    sampled = post.idata["sample_space"].data_vars
    assert "b_z[c2]" not in sampled and "sigma[sigma2[c2]]" not in sampled


def test_the_posterior_agrees_with_the_constrained_ml_fit(fits):
    ml, post = fits
    assert post.rhat_max < 1.05 and post.divergences == 0
    means, sds = post.table["mean"], post.table["sd"]
    for name in post.names:
        k = list(ml.names).index(name)
        assert abs(means[name] - ml.estimates[k]) < 0.5 * sds[name], name
    # the log-likelihood at the posterior means uses the fixed values
    assert post.loglik == pytest.approx(ml.loglik, abs=2.0)


def test_a_saved_constrained_posterior_reloads(fits, tmp_path):
    _, post = fits
    post.save(tmp_path / "post.bmx")
    back = bm.load_result(tmp_path / "post.bmx")
    assert back.names == post.names and back.n_params == 7
    assert back.loglik == pytest.approx(post.loglik, abs=1e-9)


@pytest.mark.parametrize(
    ("constraints", "message"),
    [
        ({"fixed": {"log(sigma2) ~ x": 0.0}}, r"'log\(sigma2\) ~ x' is none of these.*fit_ml"),
        ({"equal": [["x[c1]", "z[c1]"]]}, r"span \['x', 'z'\].*fit_ml"),
        ({"equal": [["x[c1]", "C#1 ~ x"]]}, r"span \['C#', 'x'\].*fit_ml"),
    ],
)
def test_constraints_nuts_does_not_take_are_refused(data, constraints, message):
    spec = bm.make_spec(
        "y ~ x + z",
        classes=2,
        membership="x",
        residual_covariates="x",
        constraints=constraints,
    )
    with pytest.raises(EstimationError, match=message):
        bm.fit_bayes(spec, data, draws=10, tune=10, chains=1, init="prior")


def test_the_public_model_samples_only_the_free_parameters(spec, data):
    model = bm.build_model(spec, data)
    free = {v.name for v in model.free_RVs}
    assert {"b_x[c1]", "b_z[c1]", "gamma[C#1 ~ x]", "sigma[sigma2[c1]]"} <= free
    assert not {"b_x[c2]", "b_z[c2]", "gamma[C#1 ~ z]", "sigma[sigma2[c2]]"} & free
    assert {"x[c2]", "C#1 ~ z"} <= {v.name for v in model.deterministics}


def test_the_ml_fit_that_starts_the_chains_uses_the_starting_values(data):
    from bayesmix.bayes.fit import ml_start
    from bayesmix.data.design import build_design
    from bayesmix.data.standardise import standardise
    from bayesmix.ml.tie import make_tie

    spec = bm.make_spec("y ~ x", classes=2, membership="x", constraints={"start": {"1[c1]": 3.0}})
    internal, st = standardise(build_design(spec, data))
    assert make_tie(st) is None
    ml = ml_start(internal, 4, 1, st)
    assert len(ml.starts.logliks) == 5
    assert len(ml_start(internal, 4, 1).starts.logliks) == 4
