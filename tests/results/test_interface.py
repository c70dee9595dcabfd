"""Both result types answer every member of the one result interface, with real figures."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pandas as pd
import pytest

import bayesmix as bm
from bayesmix.errors import ReplicationWarning, SamplingWarning
from bayesmix.model.params import Params
from bayesmix.paper.section2 import FIG1_PARAMS
from bayesmix.results import io
from bayesmix.results.interface import FitResult, saved_fields
from bayesmix.results.persist import PROBABILITY_FIELDS

N = 600
WALD_Z = 1.959963984540054  # the normal 97.5% quantile


@pytest.fixture(scope="module")
def fig1_data() -> pd.DataFrame:
    spec = bm.load_spec(bm.model_file("fig1"))
    return bm.simulate(spec, FIG1_PARAMS, n=N, random_seed=3)


@pytest.fixture(scope="module")
def ml(fig1_data: pd.DataFrame) -> bm.MLResult:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ReplicationWarning)
        return bm.fit_ml(bm.load_spec(bm.model_file("fig1")), fig1_data, starts=4, random_seed=1)


@pytest.fixture(scope="module")
def post(fig1_data: pd.DataFrame) -> bm.BayesResult:
    # 150 draws per chain: enough for every member to answer, not for a converged posterior
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)
        warnings.filterwarnings("ignore", message="Estimated shape parameter of Pareto")
        return bm.fit_bayes(
            bm.load_spec(bm.model_file("fig1")),
            fig1_data,
            draws=150,
            tune=150,
            chains=2,
            random_seed=2,
            ml_starts=4,
        )


FITS = ["ml", pytest.param("post", marks=pytest.mark.slow)]


@pytest.fixture(params=FITS)
def fit(request: pytest.FixtureRequest) -> FitResult:
    return request.getfixturevalue(request.param)


def test_both_results_are_fit_results_with_the_layouts_names(fit: FitResult) -> None:
    assert isinstance(fit, FitResult)
    assert fit.names == tuple(fit.design.layout.names)
    assert fit.n_params == len(fit.names) == 8
    assert fit.n_obs == N
    assert fit.estimator in ("ml", "bayes")
    assert fit.spec.name in fit.summary()


def test_point_estimates_and_standard_errors_are_named_and_finite(fit: FitResult) -> None:
    est, se = fit.point_estimates, fit.standard_errors
    for series in (est, se):
        assert isinstance(series, pd.Series)
        assert list(series.index) == list(fit.names)
        assert np.isfinite(series).all()
    assert (se > 0).all()
    # the Fig 1 population values lie within a few standard errors of the estimates
    truth = pd.Series(FIG1_PARAMS)[list(fit.names)]
    assert (np.abs(est - truth) < 5 * se).all()
    column = "estimate" if fit.estimator == "ml" else "mean"
    np.testing.assert_array_equal(est.to_numpy(), fit.params[column].to_numpy())


def test_structured_holds_the_point_estimates(fit: FitResult) -> None:
    params = fit.structured
    assert isinstance(params, Params)
    expected = fit.design.layout.unpack(fit.point_estimates.to_numpy(), natural=True)
    np.testing.assert_array_equal(np.asarray(params.beta), np.asarray(expected.beta))
    assert np.asarray(params.beta).shape == (2, 2)  # two classes, intercept and slope of x


def test_intervals_contain_the_estimate_and_nest_by_level(fit: FitResult) -> None:
    wide, narrow = fit.intervals(0.95), fit.intervals(0.5)
    assert list(wide.columns) == ["lower", "upper"]
    assert list(wide.index) == list(fit.names)
    est = fit.point_estimates
    assert (wide["lower"] < est).all() and (est < wide["upper"]).all()
    assert (wide["lower"] < narrow["lower"]).all() and (narrow["upper"] < wide["upper"]).all()
    assert fit.intervals().equals(wide)
    for level in (0, 1, 1.5, "0.95", True):
        with pytest.raises(bm.EstimationError, match="level must be a number between 0 and 1"):
            fit.intervals(level)  # type: ignore[arg-type]


def test_ml_intervals_are_wald_intervals(ml: bm.MLResult) -> None:
    bounds = ml.intervals(0.95)
    np.testing.assert_allclose(bounds["upper"] - ml.estimates, WALD_Z * ml.se, rtol=1e-12)
    np.testing.assert_allclose(ml.estimates - bounds["lower"], WALD_Z * ml.se, rtol=1e-12)
    half = (ml.intervals(0.9)["upper"] - ml.estimates) / ml.se
    np.testing.assert_allclose(half, 1.6448536269514722, rtol=1e-12)


@pytest.mark.slow
def test_bayes_intervals_are_the_tables_posterior_quantiles(post: bm.BayesResult) -> None:
    bounds = post.intervals(0.95)
    np.testing.assert_array_equal(bounds["lower"], post.table["q2.5"])
    np.testing.assert_array_equal(bounds["upper"], post.table["q97.5"])
    draws = post.sample_parameters()
    np.testing.assert_allclose(post.intervals(0.8)["upper"], draws.quantile(0.9), rtol=1e-12)


def test_sample_parameters_reproduce_by_seed(fit: FitResult) -> None:
    first = fit.sample_parameters(400, random_seed=7)
    again = fit.sample_parameters(400, random_seed=7)
    other = fit.sample_parameters(400, random_seed=8)
    assert isinstance(first, pd.DataFrame)
    assert first.shape == (400, fit.n_params)
    assert list(first.columns) == list(fit.names)
    assert np.isfinite(first.to_numpy()).all()
    pd.testing.assert_frame_equal(first, again)
    assert not first.equals(other)
    for n in (0, -3, 2.5, True):
        with pytest.raises(bm.EstimationError, match="n must be a positive integer"):
            fit.sample_parameters(n)  # type: ignore[arg-type]


def test_ml_samples_follow_the_asymptotic_normal_distribution(ml: bm.MLResult) -> None:
    draws = ml.sample_parameters(20000, random_seed=1)
    assert len(ml.sample_parameters()) == bm.MLResult.DEFAULT_SAMPLE
    # the mean of 20000 draws lies within 4 of its standard errors (se / sqrt(n))
    assert (np.abs(draws.mean() - ml.estimates) < 4 * ml.se / math.sqrt(20000)).all()
    np.testing.assert_allclose(draws.std(), ml.se, rtol=0.03)
    np.testing.assert_allclose(np.cov(draws.to_numpy().T), ml.cov, atol=0.05 * ml.se.max() ** 2)


def test_ml_samples_leave_parameters_without_a_standard_error_empty(ml: bm.MLResult) -> None:
    import dataclasses

    se = ml.se.copy()
    se[3] = np.nan
    draws = dataclasses.replace(ml, se=se).sample_parameters(50, random_seed=1)
    assert draws.iloc[:, 3].isna().all()
    assert np.isfinite(draws.drop(columns=draws.columns[3]).to_numpy()).all()


@pytest.mark.slow
def test_bayes_samples_are_posterior_draws(post: bm.BayesResult) -> None:
    every = post.sample_parameters()
    assert every.shape == (2 * 150, post.n_params)
    np.testing.assert_array_equal(every["x[c1]"].to_numpy(), post.draws["x[c1]"].reshape(-1))
    picked = post.sample_parameters(50, random_seed=3).to_numpy()
    rows = {tuple(r) for r in every.to_numpy()}
    assert all(tuple(r) in rows for r in picked)
    assert len(post.sample_parameters(1000, random_seed=3)) == 1000  # more than there are


def test_parameter_matrix_and_posterior_say_whether_the_fit_has_draws(fit: FitResult) -> None:
    matrix = fit.parameter_matrix()
    assert matrix.shape[1] == fit.n_params
    if fit.has_draws:
        assert matrix.shape[0] == 2 * 150
        np.testing.assert_array_equal(matrix, fit.sample_parameters().to_numpy())
        assert fit.posterior is not None
        assert dict(fit.posterior.sizes)["chain"] == 2
        assert fit.estimate_label == "posterior mean, 95% band"
    else:
        np.testing.assert_array_equal(matrix, fit.point_estimates.to_numpy()[None, :])
        assert fit.posterior is None
        assert fit.estimate_label == "ML estimate"
    assert fit.has_draws is (fit.estimator == "bayes")


def test_information_criteria_follow_their_definitions(fit: FitResult) -> None:
    P, n = fit.n_params, fit.n_obs
    assert np.isfinite(fit.loglik) and fit.loglik < 0
    assert fit.aic == pytest.approx(-2 * fit.loglik + 2 * P, rel=1e-12)
    assert fit.bic == pytest.approx(-2 * fit.loglik + P * math.log(n), rel=1e-12)
    assert fit.sabic == pytest.approx(-2 * fit.loglik + P * math.log((n + 2) / 24), rel=1e-12)
    # log((n + 2) / 24) lies between 2 and log(n) for n = 600: AIC < aBIC < BIC
    assert fit.aic < fit.sabic < fit.bic


def test_class_probabilities_and_their_tables(fit: FitResult) -> None:
    post = np.asarray(fit.class_probabilities)
    assert post.shape == (N, 2)
    np.testing.assert_allclose(post.sum(axis=1), 1.0)
    assert fit.between_probabilities is None
    table = fit.classes
    assert list(table.index) == ["c1", "c2"]
    assert table["proportion"].sum() == pytest.approx(1.0)
    assert table["modal_count"].sum() == N
    # membership logit 0 + 1.0 x with x symmetric about 0: the classes hold about half each
    assert table["proportion"].iloc[0] == pytest.approx(0.5, abs=0.1)
    assert 0.0 < fit.entropy < 1.0


def test_convergence_and_replicated_starts(fit: FitResult) -> None:
    record = fit.convergence()
    assert next(iter(record)) == "converged"
    assert record["converged"] is fit.converged
    if fit.has_draws:
        assert set(record) == {"converged", "rhat_max", "divergences"}
        assert fit.starts_replicated == ""
    else:
        assert set(record) == {"converged"}
        st = fit.starts  # type: ignore[attr-defined]
        assert fit.starts_replicated == f"{st.replicated}/{st.n_starts}"
        assert fit.converged


def test_elpd_needs_draws(fit: FitResult) -> None:
    if not fit.has_draws:
        with pytest.raises(bm.EstimationError, match="need posterior draws"):
            fit.elpd()
        return
    e = fit.elpd("student")
    assert e.n_units == N and np.isfinite(e.elpd_loo)
    assert e.elpd_loo < 0 and e.p_loo > 0


def test_to_dict_is_json_and_matches_the_result(fit: FitResult) -> None:
    core = fit.to_dict()
    text = json.dumps(core, allow_nan=False)
    assert json.loads(text) == core
    for key in ("model", "estimator", "n_obs", "n_clusters", "loglik", "n_params", "bic"):
        assert key in core
    assert core["estimator"] == fit.estimator
    assert core["bic"] == fit.bic and core["n_params"] == fit.n_params
    assert [p["name"] for p in core["params"]] == list(fit.names)
    assert core["class_proportions"] == pytest.approx(list(fit.classes["proportion"]))


def test_record_holds_the_saved_fields_and_every_one_has_a_reader(fit: FitResult) -> None:
    record = fit.to_record(rows=True)
    cls = type(fit)
    assert record.estimator == fit.estimator
    assert list(record.fields) == [*saved_fields(cls), *PROBABILITY_FIELDS]
    readers = io.ML_READERS if fit.estimator == "ml" else io.BAYES_READERS
    assert set(readers) == set(saved_fields(cls))
    assert (record.draws is None) is (not fit.has_draws)
    summarised = fit.to_record(rows=False).fields
    assert summarised["class_summary"]["n"] == N and summarised["between_summary"] is None


def test_save_and_load_round_trip_the_interface(fit: FitResult, tmp_path) -> None:
    back = bm.load_result(fit.save(tmp_path / "fit"))
    assert type(back) is type(fit)
    assert back.summary() == fit.summary()
    assert back.to_dict() == fit.to_dict()
    pd.testing.assert_series_equal(back.point_estimates, fit.point_estimates)
    pd.testing.assert_series_equal(back.standard_errors, fit.standard_errors)
    pd.testing.assert_frame_equal(back.intervals(0.9), fit.intervals(0.9))
    np.testing.assert_array_equal(back.parameter_matrix(), fit.parameter_matrix())
    pd.testing.assert_frame_equal(
        back.sample_parameters(30, random_seed=4), fit.sample_parameters(30, random_seed=4)
    )
    assert back.convergence() == fit.convergence()
    assert back.starts_replicated == fit.starts_replicated
    np.testing.assert_array_equal(back.class_probabilities, fit.class_probabilities)
    assert (back.aic, back.bic, back.sabic) == (fit.aic, fit.bic, fit.sabic)
    again = bm.load_result(back.save(tmp_path / "again", include_data=False))
    assert again.summary() == fit.summary()


def test_save_result_takes_only_fit_results(tmp_path) -> None:
    with pytest.raises(bm.BayesmixError, match="takes a fit_ml or fit_bayes result, got dict"):
        bm.save_result({"estimates": [1.0]}, tmp_path / "x.json")  # type: ignore[arg-type]


def test_add_group_records_a_group_where_the_fit_has_draws(fit: FitResult) -> None:
    import xarray as xr

    group = xr.Dataset({"z": (("chain", "draw"), np.arange(3.0)[None])})
    if fit.has_draws:
        fit.add_group("added", group)
        np.testing.assert_array_equal(fit.idata["added"]["z"].values, [[0.0, 1.0, 2.0]])
    else:
        with pytest.raises(bm.EstimationError, match="holds no DataTree"):
            fit.add_group("added", group)
