"""Robust (sandwich, Mplus MLR) standard errors and the scaled likelihood-ratio test."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import bayesmix as bm
from bayesmix.errors import EstimationError

REFERENCE = json.loads((Path(__file__).parents[1] / "reference" / "hsb_sandwich.json").read_text())
REGRESSION = "math ~ female + ses + catholic"


@pytest.fixture(scope="module")
def clustered() -> bm.Spec:
    return bm.make_spec(REGRESSION, cluster="school", name="regression")


@pytest.mark.parametrize("backend", ["numpy", "jax"])
def test_clustered_regression_matches_r_sandwich_vcovcl(clustered, backend):
    fit = bm.fit_ml(clustered, "hsb", se="mlr", backend=backend)
    assert list(fit.names[:4]) == REFERENCE["names"]
    np.testing.assert_allclose(fit.estimates[:4], REFERENCE["estimates"], rtol=1e-8)
    assert fit.loglik == pytest.approx(REFERENCE["loglik"], abs=1e-6)
    # R's vcovCL(type = "HC0", cadjust = TRUE): the meat times G / (G - 1), as Mplus
    np.testing.assert_allclose(fit.se[:4], REFERENCE["se_cadjust"], rtol=0, atol=1e-8)
    np.testing.assert_allclose(fit.cov[:4, :4], REFERENCE["cov_cadjust"], rtol=1e-7, atol=1e-12)
    assert fit.se_type == "mlr"
    assert fit.design.n_clusters == REFERENCE["n_clusters"] == 160


def test_the_default_stays_the_observed_information(clustered):
    ml = bm.fit_ml(clustered, "hsb")
    assert ml.se_type == "ml" and ml.scaling_factor is None
    # the ML standard errors of least squares: sqrt(sigma2_ML / sigma2_OLS) times lm's
    n, k = REFERENCE["n_obs"], 4
    shrink = np.sqrt((n - k) / n)
    np.testing.assert_allclose(ml.se[:4], np.asarray(REFERENCE["se_ols"]) * shrink, rtol=1e-6)


def test_well_specified_independent_data_give_a_scaling_factor_near_one():
    rng = np.random.default_rng(4)
    n = 4000
    x = rng.normal(size=n)
    data = pd.DataFrame({"y": 1.0 + 0.5 * x + rng.normal(size=n), "x": x})
    spec = bm.make_spec("y ~ x", name="linear")
    ml, mlr = bm.fit_ml(spec, data), bm.fit_ml(spec, data, se="mlr")
    assert mlr.scaling_factor == pytest.approx(1.0, abs=0.1)
    np.testing.assert_allclose(mlr.se, ml.se, rtol=0.1)
    assert np.array_equal(mlr.estimates, ml.estimates)


def test_scaled_difference_test_on_a_nested_pair(clustered):
    smaller = bm.make_spec("math ~ female + ses", cluster="school", name="smaller")
    r0, r1 = bm.fit_ml(smaller, "hsb", se="mlr"), bm.fit_ml(clustered, "hsb", se="mlr")
    test = bm.lrt(r0, r1)
    p0, p1 = r0.n_params, r1.n_params
    cd = (p0 * r0.scaling_factor - p1 * r1.scaling_factor) / (p0 - p1)
    assert test.scaling == pytest.approx(cd, rel=1e-12)
    assert test.statistic == pytest.approx(2 * (r1.loglik - r0.loglik) / cd, rel=1e-12)
    assert test.df == 1
    assert "scaled LRT (MLR" in str(test)
    # the clustering of students in schools makes the plain statistic too large: scaling
    # by cd > 1 shrinks it
    plain = bm.lrt(bm.fit_ml(smaller, "hsb"), bm.fit_ml(clustered, "hsb"))
    assert plain.scaling is None and plain.statistic == 2 * (r1.loglik - r0.loglik)
    assert cd > 1 and test.statistic < plain.statistic
    with pytest.raises(EstimationError, match="fit both with se='mlr'"):
        bm.lrt(bm.fit_ml(smaller, "hsb"), r1)


def test_two_level_models_and_mixtures_get_robust_errors_that_are_saved(tmp_path):
    spec = bm.load_spec(bm.model_file("hsb_1"))
    ml, mlr = bm.fit_ml(spec, "hsb"), bm.fit_ml(spec, "hsb", se="mlr")
    assert mlr.loglik == ml.loglik
    assert np.all(np.isfinite(mlr.se)) and mlr.scaling_factor > 0
    ratio = mlr.se / ml.se
    assert np.all((ratio > 0.5) & (ratio < 2.0))
    saved = bm.load_result(mlr.save(tmp_path / "mlr.json"))
    assert saved.se_type == "mlr" and saved.scaling_factor == mlr.scaling_factor
    np.testing.assert_array_equal(saved.se, mlr.se)
    assert "standard errors: MLR, sandwich over 160 clusters" in mlr.summary()
    assert mlr.to_dict()["se_type"] == "mlr"


def test_an_unknown_kind_is_refused_by_name(clustered):
    with pytest.raises(EstimationError, match="se='robust' is not a kind of standard error"):
        bm.fit_ml(clustered, "hsb", se="robust")


def test_mixtures_by_both_algorithms_get_robust_errors(fig1_spec, fig1_10k):
    from bayesmix.paper.section2 import FIG3_PARAMS

    single = bm.fit_ml(fig1_spec, fig1_10k.head(1000), starts=4, random_seed=1, se="mlr")
    fig3 = bm.load_spec(bm.model_file("fig3"))
    data = bm.simulate(fig3, FIG3_PARAMS, clusters=40, cluster_size=10, random_seed=3)
    two_level = bm.fit_ml(fig3, data, starts=4, random_seed=1, se="mlr")
    for fit in (single, two_level):
        plain = bm.fit_ml(fit.spec, fit.design.frame, starts=4, random_seed=1)
        assert fit.loglik == pytest.approx(plain.loglik, abs=1e-6)
        assert np.all(np.isfinite(fit.se)) and fit.scaling_factor > 0
        ratio = fit.se / plain.se
        # the models hold: the sandwich is near the observed information
        assert np.all((ratio > 0.6) & (ratio < 1.6)), dict(zip(fit.names, ratio, strict=True))
