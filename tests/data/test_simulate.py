"""Tests of bayesmix.data.simulate with the paper's Fig 1 model and population values."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from bayesmix import simulate
from bayesmix.errors import DataError, SpecError
from bayesmix.model.build import load_spec, make_spec
from bayesmix.model.params import from_named
from bayesmix.model.spec import Spec
from bayesmix.paper.section2 import FIG1_PARAMS
from tests.support.paths import MODELS

FIG1 = MODELS / "fig1.toml"
N = 20_000


@pytest.fixture(scope="module")
def spec() -> Spec:
    return load_spec(FIG1)


@pytest.fixture(scope="module")
def big(spec: Spec) -> pd.DataFrame:
    return simulate(spec, FIG1_PARAMS, n=N, random_seed=2009)


def _sigmoid(v: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-v))


def _ols(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Intercept and slope, their standard errors and the residual variance."""
    X = np.column_stack([np.ones_like(x), x])
    coef, *_ = np.linalg.lstsq(X, y, rcond=None)
    resid = y - X @ coef
    s2 = float(resid @ resid / (len(y) - 2))
    se = np.sqrt(np.diag(s2 * np.linalg.inv(X.T @ X)))
    return coef, se, s2


def test_fig1_params_cover_the_model(spec: Spec) -> None:
    assert FIG1_PARAMS == {
        "1[c1]": 3.0, "1[c2]": 0.0, "x[c1]": -1.1, "x[c2]": 0.5,
        "sigma2[c1]": 1.0, "sigma2[c2]": 1.0, "C#1 ~ 1": 0.0, "C#1 ~ x": 1.0,
    }  # fmt: skip


def test_columns_and_values(big: pd.DataFrame) -> None:
    assert list(big.columns) == ["x", "y", "C"]
    assert len(big) == N
    assert set(big["C"].unique()) == {1, 2}
    assert np.issubdtype(big["C"].dtype, np.integer)
    assert np.isfinite(big[["x", "y"]].to_numpy()).all()


def test_same_seed_reproduces(spec: Spec) -> None:
    a = simulate(spec, FIG1_PARAMS, n=500, random_seed=11)
    b = simulate(spec, FIG1_PARAMS, n=500, random_seed=11)
    pd.testing.assert_frame_equal(a, b)


def test_other_seed_differs(spec: Spec) -> None:
    a = simulate(spec, FIG1_PARAMS, n=500, random_seed=11)
    b = simulate(spec, FIG1_PARAMS, n=500, random_seed=12)
    assert not np.allclose(a["x"], b["x"])
    assert not np.allclose(a["y"], b["y"])
    assert (a["C"] != b["C"]).any()


def test_structured_params_give_the_same_data(spec: Spec) -> None:
    a = simulate(spec, FIG1_PARAMS, n=300, random_seed=5)
    b = simulate(spec, from_named(FIG1_PARAMS, spec), n=300, random_seed=5)
    pd.testing.assert_frame_equal(a, b)


def test_default_covariate_is_standard_normal(big: pd.DataFrame) -> None:
    x = big["x"].to_numpy()
    assert abs(x.mean()) < 4 / math.sqrt(N)
    assert abs(x.var() - 1.0) < 4 * math.sqrt(2 / N)


def test_class_shares_follow_logistic_membership(big: pd.DataFrame) -> None:
    # P(C = 1 | x) = sigmoid(0 + 1 * x); the count of class 1 given x is Poisson-binomial.
    p = _sigmoid(FIG1_PARAMS["C#1 ~ 1"] + FIG1_PARAMS["C#1 ~ x"] * big["x"].to_numpy())
    count = int((big["C"] == 1).sum())
    assert abs(count - p.sum()) < 4 * math.sqrt((p * (1 - p)).sum())
    # Marginally the classes are equally likely (x symmetric about 0, intercept 0).
    share = count / N
    assert abs(share - 0.5) < 4 * math.sqrt(0.25 / N)


def test_membership_depends_on_x(big: pd.DataFrame) -> None:
    x = big["x"].to_numpy()
    in_class_1 = (big["C"] == 1).to_numpy()
    for group in (x > 0, x <= 0):
        p = _sigmoid(x[group])
        share = float(in_class_1[group].mean())
        assert abs(share - p.mean()) < 4 * math.sqrt((p * (1 - p)).sum()) / group.sum()
    # E[sigmoid(x) | x > 0] is about 0.70 for x ~ N(0, 1): well above one half.
    assert in_class_1[x > 0].mean() > 0.65
    assert in_class_1[x <= 0].mean() < 0.35


@pytest.mark.parametrize("c", [1, 2])
def test_classwise_regressions_match_truth(big: pd.DataFrame, c: int) -> None:
    part = big[big["C"] == c]
    coef, se, s2 = _ols(part["x"].to_numpy(), part["y"].to_numpy())
    truth = np.array([FIG1_PARAMS[f"1[c{c}]"], FIG1_PARAMS[f"x[c{c}]"]])
    assert np.all(np.abs(coef - truth) < 4 * se), (coef, truth, se)
    sigma2 = FIG1_PARAMS[f"sigma2[c{c}]"]
    assert abs(s2 - sigma2) < 4 * sigma2 * math.sqrt(2 / len(part))


def test_classwise_means_match_truth(big: pd.DataFrame) -> None:
    for c in (1, 2):
        part = big[big["C"] == c]
        expected = FIG1_PARAMS[f"1[c{c}]"] + FIG1_PARAMS[f"x[c{c}]"] * part["x"].to_numpy()
        resid = part["y"].to_numpy() - expected
        assert abs(resid.mean()) < 4 * math.sqrt(FIG1_PARAMS[f"sigma2[c{c}]"] / len(part))


def test_bernoulli_covariate(spec: Spec) -> None:
    data = simulate(spec, FIG1_PARAMS, n=N, covariates={"x": "bernoulli"}, random_seed=3)
    x = data["x"].to_numpy()
    assert set(np.unique(x)) == {0.0, 1.0}
    assert abs(x.mean() - 0.5) < 4 * math.sqrt(0.25 / N)
    for value, p in ((0.0, 0.5), (1.0, float(_sigmoid(np.array(1.0))))):
        group = data[data["x"] == value]
        share = float((group["C"] == 1).mean())
        assert abs(share - p) < 4 * math.sqrt(p * (1 - p) / len(group))
    # class means per (x, C) cell: intercept + slope * x
    for c in (1, 2):
        for value in (0.0, 1.0):
            cell = data.loc[(data["C"] == c) & (data["x"] == value), "y"]
            mean = FIG1_PARAMS[f"1[c{c}]"] + FIG1_PARAMS[f"x[c{c}]"] * value
            assert abs(cell.mean() - mean) < 4 / math.sqrt(len(cell))


def test_bernoulli_with_probability(spec: Spec) -> None:
    data = simulate(spec, FIG1_PARAMS, n=N, covariates={"x": ("bernoulli", 0.2)}, random_seed=4)
    assert abs(data["x"].mean() - 0.2) < 4 * math.sqrt(0.2 * 0.8 / N)


def test_normal_with_mean_and_sd(spec: Spec) -> None:
    data = simulate(spec, FIG1_PARAMS, n=N, covariates={"x": ("normal", 5.0, 2.0)}, random_seed=6)
    x = data["x"].to_numpy()
    assert abs(x.mean() - 5.0) < 4 * 2.0 / math.sqrt(N)
    assert abs(x.std() - 2.0) < 4 * 2.0 / math.sqrt(2 * N)


def test_callable_covariate(spec: Spec) -> None:
    data = simulate(
        spec, FIG1_PARAMS, n=100, covariates={"x": lambda rng, n: np.arange(n) / n}, random_seed=1
    )
    np.testing.assert_array_equal(data["x"].to_numpy(), np.arange(100) / 100)


def test_callable_with_wrong_shape(spec: Spec) -> None:
    with pytest.raises(DataError, match=r"generator for 'x' returned shape \(3,\), not \(10,\)"):
        simulate(spec, FIG1_PARAMS, n=10, covariates={"x": lambda rng, n: np.zeros(3)})


def test_dataframe_covariates(spec: Spec) -> None:
    covariates = pd.DataFrame(
        {"x": [0.0, 1.0, 0.0, 1.0, -2.0], "other": list("abcde")}, index=[10, 11, 12, 13, 14]
    )
    data = simulate(spec, FIG1_PARAMS, covariates=covariates, random_seed=8)
    assert list(data.columns) == ["x", "y", "C"]
    assert list(data.index) == [0, 1, 2, 3, 4]
    np.testing.assert_array_equal(data["x"].to_numpy(), [0.0, 1.0, 0.0, 1.0, -2.0])
    again = simulate(spec, FIG1_PARAMS, covariates=covariates, random_seed=8)
    pd.testing.assert_frame_equal(data, again)


def test_dataframe_covariates_recover_class_means(spec: Spec) -> None:
    covariates = pd.DataFrame({"x": np.repeat([0.0, 1.0], N // 2)})
    data = simulate(spec, FIG1_PARAMS, covariates=covariates, random_seed=9)
    assert len(data) == N
    np.testing.assert_array_equal(data["x"].to_numpy(), covariates["x"].to_numpy())
    cell = data.loc[(data["C"] == 2) & (data["x"] == 1.0), "y"]
    assert abs(cell.mean() - 0.5) < 4 / math.sqrt(len(cell))


def test_dataframe_covariates_missing_column(spec: Spec) -> None:
    with pytest.raises(DataError) as info:
        simulate(spec, FIG1_PARAMS, covariates=pd.DataFrame({"z": [1.0, 2.0]}))
    assert str(info.value) == "covariates lack column(s) ['x']; they have ['z']."


@pytest.mark.parametrize("how", ["uniform", ("poisson", 3.0), ("Normal",)])
def test_bad_generator(spec: Spec, how: object) -> None:
    with pytest.raises(SpecError) as info:
        simulate(spec, FIG1_PARAMS, n=10, covariates={"x": how}, random_seed=1)
    message = str(info.value)
    assert message.startswith("covariate generator for 'x' must be 'normal'")
    assert "'bernoulli'" in message
    assert f"got {how!r}" in message


def test_generator_for_unused_column(spec: Spec) -> None:
    with pytest.raises(DataError, match=r"generators given for \['w'\], which the model does not"):
        simulate(spec, FIG1_PARAMS, n=10, covariates={"w": "normal"})


@pytest.mark.parametrize(
    ("n", "message"),
    [
        (
            None,
            "model 'fig1' is single-level: simulate needs n (the number of observations) or "
            "a covariates DataFrame.",
        ),
        (0, "n must be a positive integer, got 0."),
    ],
)
def test_n_required_without_dataframe(spec: Spec, n: int | None, message: str) -> None:
    with pytest.raises(DataError) as info:
        simulate(spec, FIG1_PARAMS, n=n)
    assert str(info.value) == message


def test_missing_parameter_lists_names(spec: Spec) -> None:
    values = {k: v for k, v in FIG1_PARAMS.items() if k not in ("sigma2[c2]", "C#1 ~ 1")}
    with pytest.raises(SpecError) as info:
        simulate(spec, values, n=10, random_seed=1)
    message = str(info.value)
    assert message.startswith("missing parameter value(s) ['sigma2[c2]', 'C#1 ~ 1']")
    assert str(list(FIG1_PARAMS)) in message


def test_single_class_has_one_class(spec: Spec) -> None:
    data = simulate(spec.with_classes(1), {"1": 2.0, "x": 1.0, "sigma2": 0.25}, n=N, random_seed=10)
    assert set(data["C"].unique()) == {1}
    coef, se, s2 = _ols(data["x"].to_numpy(), data["y"].to_numpy())
    assert np.all(np.abs(coef - [2.0, 1.0]) < 4 * se)
    assert abs(s2 - 0.25) < 4 * 0.25 * math.sqrt(2 / N)


# --- two-level models --------------------------------------------------------------------------

TWO_LEVEL_PARAMS = {
    "1": 1.0, "w": 0.5, "x": 2.0, "x:w": -0.3,
    "var(u_1)": 0.6, "var(u_x)": 0.2, "cov(u_1,u_x)": 0.1, "sigma2": 1.5,
}  # fmt: skip


@pytest.fixture(scope="module")
def two_level() -> Spec:
    """Random intercept and slope across clusters g, both regressed on the school covariate w."""
    return make_spec("y ~ x", cluster="g", level2={"1": "w", "x": "w"}, random=["1", "x"])


def _school_frame(clusters: int, size: int, **values: float) -> pd.DataFrame:
    """Covariates with constant values, ``size`` rows in each of ``clusters`` clusters."""
    frame = pd.DataFrame({"g": np.repeat(np.arange(clusters), size)})
    for name, value in values.items():
        frame[name] = value
    return frame


def _cluster_means(data: pd.DataFrame) -> np.ndarray:
    return data.groupby("g")["y"].mean().to_numpy()


def test_two_level_shape_and_cluster_column(two_level: Spec) -> None:
    data = simulate(two_level, TWO_LEVEL_PARAMS, clusters=50, cluster_size=20, random_seed=3)
    assert data.shape == (1000, 5)
    assert list(data.columns) == ["g", "x", "w", "y", "C"]
    np.testing.assert_array_equal(data["g"].to_numpy(), np.repeat(np.arange(1, 51), 20))
    assert set(data["C"].unique()) == {1}
    assert np.isfinite(data[["x", "w", "y"]].to_numpy()).all()


def test_two_level_school_covariates_are_constant_within_clusters(two_level: Spec) -> None:
    data = simulate(two_level, TWO_LEVEL_PARAMS, clusters=50, cluster_size=20, random_seed=3)
    per_cluster = data.groupby("g")[["w", "x"]].nunique()
    assert per_cluster["w"].tolist() == [1] * 50
    assert per_cluster["x"].tolist() == [20] * 50  # the level-1 covariate varies within
    w = data.groupby("g")["w"].first().to_numpy()
    assert len(np.unique(w)) == 50
    # w is drawn once per cluster from N(0, 1)
    assert abs(w.mean()) < 4 / math.sqrt(50)


def test_two_level_same_seed_reproduces(two_level: Spec) -> None:
    a = simulate(two_level, TWO_LEVEL_PARAMS, clusters=50, cluster_size=20, random_seed=21)
    b = simulate(two_level, TWO_LEVEL_PARAMS, clusters=50, cluster_size=20, random_seed=21)
    pd.testing.assert_frame_equal(a, b)
    c = simulate(two_level, TWO_LEVEL_PARAMS, clusters=50, cluster_size=20, random_seed=22)
    assert not np.allclose(a["w"], c["w"])
    assert not np.allclose(a["y"], c["y"])


def test_two_level_structured_params_give_the_same_data(two_level: Spec) -> None:
    structured = from_named(TWO_LEVEL_PARAMS, two_level)
    a = simulate(two_level, TWO_LEVEL_PARAMS, clusters=30, cluster_size=5, random_seed=4)
    b = simulate(two_level, structured, clusters=30, cluster_size=5, random_seed=4)
    pd.testing.assert_frame_equal(a, b)


def test_between_cluster_variance_of_means(two_level: Spec) -> None:
    # With x = w = 0, a cluster mean is 1 + u_1 + mean of 5 residuals:
    # variance var(u_1) + sigma2 / 5 = 0.6 + 0.3.
    clusters, size = 2000, 5
    data = simulate(
        two_level, TWO_LEVEL_PARAMS, covariates=_school_frame(clusters, size, x=0.0, w=0.0),
        random_seed=2024,
    )  # fmt: skip
    assert len(data) == clusters * size
    means = _cluster_means(data)
    expected = TWO_LEVEL_PARAMS["var(u_1)"] + TWO_LEVEL_PARAMS["sigma2"] / size
    assert abs(means.var(ddof=1) / expected - 1) < 0.10
    assert abs(means.mean() - 1.0) < 4 * math.sqrt(expected / clusters)


def test_random_slope_and_covariance_enter_the_cluster_means(two_level: Spec) -> None:
    # With x = 1, w = 0 a cluster mean is 1 + 2 + u_1 + u_x + residual mean:
    # variance 0.6 + 0.2 + 2 * 0.1 + 1.5 / 5 = 1.3.
    clusters, size = 2000, 5
    data = simulate(
        two_level, TWO_LEVEL_PARAMS, covariates=_school_frame(clusters, size, x=1.0, w=0.0),
        random_seed=2025,
    )  # fmt: skip
    means = _cluster_means(data)
    expected = 0.6 + 0.2 + 2 * 0.1 + 1.5 / size
    assert abs(means.var(ddof=1) / expected - 1) < 0.10
    assert abs(means.mean() - 3.0) < 4 * math.sqrt(expected / clusters)


def test_cross_level_effects_shift_the_mean(two_level: Spec) -> None:
    # x = 1, w = 1: mean 1 + 0.5 + 2 - 0.3 = 3.2
    clusters, size = 2000, 5
    data = simulate(
        two_level, TWO_LEVEL_PARAMS, covariates=_school_frame(clusters, size, x=1.0, w=1.0),
        random_seed=2026,
    )  # fmt: skip
    expected_var = 0.6 + 0.2 + 2 * 0.1 + 1.5 / size
    assert abs(_cluster_means(data).mean() - 3.2) < 4 * math.sqrt(expected_var / clusters)


def test_within_cluster_variance_is_sigma2(two_level: Spec) -> None:
    clusters, size = 1000, 5
    data = simulate(
        two_level, TWO_LEVEL_PARAMS, covariates=_school_frame(clusters, size, x=0.0, w=0.0),
        random_seed=2027,
    )  # fmt: skip
    within = data.groupby("g")["y"].var(ddof=1).mean()
    df = clusters * (size - 1)
    assert abs(within - 1.5) < 4 * 1.5 * math.sqrt(2 / df)


def test_two_level_needs_clusters(two_level: Spec) -> None:
    needs = (
        "model 'model' is two-level (cluster column 'g'): simulate needs clusters (the number "
        "of clusters) and cluster_size (observations per cluster), or a covariates DataFrame "
        "with the cluster column"
    )
    for kwargs, message in (
        ({"n": 100}, needs + "; n alone does not say how to split the observations into clusters."),
        ({"clusters": 10}, needs + "."),
        ({"clusters": 0, "cluster_size": 5}, "clusters must be a positive integer, got 0."),
    ):
        with pytest.raises(DataError) as info:
            simulate(two_level, TWO_LEVEL_PARAMS, random_seed=1, **kwargs)
        assert str(info.value) == message


def test_two_level_dataframe_needs_the_cluster_column(two_level: Spec) -> None:
    with pytest.raises(DataError) as info:
        simulate(two_level, TWO_LEVEL_PARAMS, covariates=pd.DataFrame({"x": [0.0], "w": [1.0]}))
    assert str(info.value) == "covariates lack column(s) ['g']; they have ['x', 'w']."


def test_two_level_string_cluster_labels(two_level: Spec) -> None:
    covariates = pd.DataFrame(
        {"g": list("bbaacc"), "x": [0.0] * 6, "w": [1.0, 1.0, 2.0, 2.0, 3.0, 3.0]}
    )
    data = simulate(two_level, TWO_LEVEL_PARAMS, covariates=covariates, random_seed=5)
    assert data["g"].tolist() == list("bbaacc")
    assert np.isfinite(data["y"]).all()


def test_residual_groups_get_their_own_variances() -> None:
    spec = make_spec("y ~ x", cluster="g", random="1", residual_groups="v")
    values = {"1": 0.0, "x": 1.0, "var(u_1)": 0.5, "sigma2[v=0]": 1.0, "sigma2[v=1]": 4.0}
    clusters, size = 1000, 5
    data = simulate(spec, values, clusters=clusters, cluster_size=size, random_seed=8)
    assert list(data.columns) == ["g", "x", "v", "y", "C"]
    assert data.groupby("g")["v"].nunique().max() == 1
    v = data.groupby("g")["v"].first()
    assert set(v.unique()) == {0.0, 1.0}  # bernoulli(0.5) per cluster by default
    assert abs(v.mean() - 0.5) < 4 * math.sqrt(0.25 / clusters)
    # within-cluster variance of y - x removes u and estimates sigma2 of the group
    resid = data.assign(r=data["y"] - data["x"])
    within = resid.groupby("g")["r"].var(ddof=1)
    for level, sigma2 in ((0.0, 1.0), (1.0, 4.0)):
        part = within[v == level]
        df = len(part) * (size - 1)
        assert abs(part.mean() - sigma2) < 4 * sigma2 * math.sqrt(2 / df)


def test_log_linear_residual_variance() -> None:
    spec = make_spec("y ~ x", cluster="g", random="1", residual_covariates="x")
    values = {"1": 0.0, "x": 1.0, "var(u_1)": 0.0, "log(sigma2) ~ 1": 0.0, "log(sigma2) ~ x": 0.5}
    covariates = pd.DataFrame(
        {"g": np.repeat(np.arange(2000), 10), "x": np.tile([0.0, 2.0], 10000)}
    )
    data = simulate(spec, values, covariates=covariates, random_seed=9)
    resid = (data["y"] - data["x"]).to_numpy()  # var(u_1) = 0: no school residual
    x = data["x"].to_numpy()
    for value, sigma2 in ((0.0, 1.0), (2.0, math.e)):
        part = resid[x == value]
        assert abs(part.mean()) < 4 * math.sqrt(sigma2 / len(part))
        assert abs(part.var() - sigma2) < 4 * sigma2 * math.sqrt(2 / len(part))


def test_two_level_mixture_has_both_classes() -> None:
    spec = make_spec("y ~ x", classes=2, cluster="g", random="1", membership="x")
    values = {
        "1[c1]": 3.0, "1[c2]": 0.0, "x[c1]": -1.0, "x[c2]": 0.5, "var(u_1)": 0.3,
        "sigma2": 1.0, "C#1 ~ 1": 0.0, "C#1 ~ x": 1.0,
    }  # fmt: skip
    data = simulate(spec, values, clusters=200, cluster_size=10, random_seed=12)
    assert set(data["C"].unique()) == {1, 2}
    share = float((data["C"] == 1).mean())
    assert abs(share - 0.5) < 4 * math.sqrt(0.25 / 2000)
