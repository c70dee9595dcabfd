"""Reliability of simulate: parameter and argument checks, two-level models on the CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bayesmix import simulate
from bayesmix.cli import main
from bayesmix.errors import DataError, SpecError
from bayesmix.model.build import load_spec, make_spec
from bayesmix.model.params import Params, from_named
from bayesmix.model.spec import Spec
from bayesmix.paper.section2 import CONVENTIONAL_PARAMS, FIG1_PARAMS, FIG3_PARAMS
from tests.support.cli import param_args
from tests.support.paths import MODELS

FIG1 = str(MODELS / "fig1.toml")
FIG3 = str(MODELS / "fig3.toml")
CONVENTIONAL = str(MODELS / "conventional.toml")


@pytest.fixture(scope="module")
def fig1() -> Spec:
    return load_spec(FIG1)


@pytest.fixture(scope="module")
def conventional() -> Spec:
    return load_spec(CONVENTIONAL)


@pytest.fixture(scope="module")
def fig3() -> Spec:
    return load_spec(FIG3)


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


# --- parameter values --------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["-1", "0"])
def test_cli_non_positive_residual_variance_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    out_path = tmp_path / "sim.csv"
    values = {**FIG1_PARAMS, "sigma2[c1]": value}
    argv = ["simulate", FIG1, "--n", "10", "--out", str(out_path), *param_args(values)]
    code, out, err = _run(argv, capsys)
    assert code == 2
    assert out == ""
    assert err == (
        f"bayesmix: error: residual variance sigma2[c1] = {float(value):g} is not positive; "
        "a residual variance must be > 0.\n"
    )
    assert not out_path.exists()


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_cli_non_finite_residual_variance_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    out_path = tmp_path / "sim.csv"
    values = {**FIG1_PARAMS, "sigma2[c1]": value}
    argv = ["simulate", FIG1, "--n", "10", "--out", str(out_path), *param_args(values)]
    code, out, err = _run(argv, capsys)
    assert code == 2
    assert out == ""
    assert err == (
        f"bayesmix: error: parameter sigma2[c1] = {float(value)} is not a finite number; "
        "give every parameter a finite value.\n"
    )
    assert not out_path.exists()


def test_non_finite_values_are_all_named(fig1: Spec) -> None:
    values = {**FIG1_PARAMS, "x[c1]": float("inf"), "C#1 ~ x": float("nan")}
    with pytest.raises(SpecError) as info:
        simulate(fig1, values, n=10, random_seed=1)
    assert str(info.value) == (
        "parameters x[c1] = inf, C#1 ~ x = nan are not finite numbers; "
        "give every parameter a finite value."
    )


def test_non_numeric_value_is_refused(fig1: Spec) -> None:
    with pytest.raises(SpecError) as info:
        simulate(fig1, {**FIG1_PARAMS, "x[c1]": "steep"}, n=10, random_seed=1)
    assert str(info.value) == "parameter x[c1] has the value 'steep', which is not a number."


def test_negative_school_variance_is_refused(conventional: Spec) -> None:
    values = {**CONVENTIONAL_PARAMS, "var(u_1)": -0.5}
    with pytest.raises(SpecError) as info:
        simulate(conventional, values, clusters=10, cluster_size=5, random_seed=1)
    assert str(info.value) == (
        "school variance var(u_1) = -0.5 is negative; a variance must be >= 0 "
        "(0 removes that school effect)."
    )


def test_zero_school_variance_removes_the_effect(conventional: Spec) -> None:
    values = {**CONVENTIONAL_PARAMS, "var(u_1)": 0.0, "var(u_x)": 0.0, "sigma2": 1.0}
    data = simulate(conventional, values, clusters=200, cluster_size=5, random_seed=2)
    resid = data["y"] - (0.5 * data["w"] + data["x"] + data["x"] * data["w"])
    # no school residual: cluster means of the residual vary like means of 5 N(0, 1) draws
    means = resid.groupby(data["cluster"]).mean()
    assert abs(means.var(ddof=1) / 0.2 - 1) < 0.3


def test_non_positive_definite_school_covariance_is_refused(conventional: Spec) -> None:
    # var(u_1) = var(u_x) = 0.5: the covariance 0.6 implies the correlation 1.2
    values = {**CONVENTIONAL_PARAMS, "cov(u_1,u_x)": 0.6}
    with pytest.raises(SpecError) as info:
        simulate(conventional, values, clusters=10, cluster_size=5, random_seed=1)
    assert str(info.value) == (
        "the school residual covariance of var(u_1) = 0.5, var(u_x) = 0.5, "
        "cov(u_1,u_x) = 0.6 is not positive definite (smallest eigenvalue -0.1): "
        "cov(u_1,u_x) implies the correlation 1.2; give each covariance a correlation within "
        "(-1, 1), i.e. |cov(u_a,u_b)| < sqrt(var(u_a) * var(u_b))."
    )


def test_cli_non_positive_definite_school_covariance_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_path = tmp_path / "sim.csv"
    values = {**CONVENTIONAL_PARAMS, "cov(u_1,u_x)": -0.5}  # correlation -1
    argv = [
        "simulate", CONVENTIONAL, "--clusters", "10", "--cluster-size", "5",
        "--out", str(out_path), *param_args(values),
    ]  # fmt: skip
    code, _, err = _run(argv, capsys)
    assert code == 2
    assert err.startswith("bayesmix: error: the school residual covariance of var(u_1) = 0.5")
    assert "cov(u_1,u_x) implies the correlation -1" in err
    assert not out_path.exists()


def test_jointly_impossible_correlations_are_refused() -> None:
    spec = make_spec("y ~ x + z", cluster="g", random=["1", "x", "z"])
    values = {
        "1": 0.0, "x": 0.0, "z": 0.0, "sigma2": 1.0,
        "var(u_1)": 1.0, "var(u_x)": 1.0, "var(u_z)": 1.0,
        "cov(u_1,u_x)": 0.9, "cov(u_1,u_z)": 0.9, "cov(u_x,u_z)": -0.9,
    }  # fmt: skip
    with pytest.raises(SpecError) as info:
        simulate(spec, values, clusters=10, cluster_size=5, random_seed=1)
    message = str(info.value)
    assert message.startswith("the school residual covariance of var(u_1) = 1")
    assert "is not positive definite (smallest eigenvalue -0.8" in message
    assert "each correlation is within (-1, 1) but together they are impossible" in message


def test_covariance_with_a_zero_variance_is_refused(conventional: Spec) -> None:
    values = {**CONVENTIONAL_PARAMS, "var(u_x)": 0.0, "cov(u_1,u_x)": 0.1}
    with pytest.raises(SpecError) as info:
        simulate(conventional, values, clusters=10, cluster_size=5, random_seed=1)
    assert "cov(u_1,u_x) implies the correlation inf" in str(info.value)


def test_membership_random_variance_is_checked(fig3: Spec) -> None:
    with pytest.raises(SpecError, match=r"school variance var\(u_C#1\) = -1 is negative"):
        simulate(fig3, {**FIG3_PARAMS, "var(u_C#1)": -1.0}, clusters=10, cluster_size=5)


def test_missing_parameter_is_a_spec_error(fig1: Spec) -> None:
    values = {k: v for k, v in FIG1_PARAMS.items() if k != "x[c2]"}
    with pytest.raises(SpecError) as info:
        simulate(fig1, values, n=10, random_seed=1)
    assert str(info.value).startswith("missing parameter value(s) ['x[c2]']; the model has [")


def test_structured_params_with_nan_are_refused(fig1: Spec) -> None:
    good = from_named(FIG1_PARAMS, fig1)
    bad = Params(beta=good.beta, lsig=np.array([[0.0], [np.nan]]), gamma=good.gamma, chol=good.chol)
    with pytest.raises(SpecError) as info:
        simulate(fig1, bad, n=10, random_seed=1)
    assert str(info.value) == (
        "Params.lsig has 1 non-finite value(s) (nan at [1, 0]); give every parameter a "
        "finite value."
    )


def test_structured_params_of_the_wrong_shape_are_refused(fig1: Spec) -> None:
    good = from_named(FIG1_PARAMS, fig1)
    bad = Params(beta=good.beta[:, :1], lsig=good.lsig, gamma=good.gamma, chol=good.chol)
    with pytest.raises(SpecError) as info:
        simulate(fig1, bad, n=10, random_seed=1)
    assert str(info.value) == (
        "Params.beta has shape (2, 1) but model 'fig1' needs (2, 2) (rows: classes, "
        "columns: ['1', 'x'])."
    )


# --- size arguments ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"clusters": 2.5, "cluster_size": 5}, "clusters must be a positive integer, got 2.5."),
        (
            {"clusters": 10, "cluster_size": "5"},
            "cluster_size must be a positive integer, got '5'.",
        ),
        ({"clusters": 10, "cluster_size": 0}, "cluster_size must be a positive integer, got 0."),
        ({"clusters": True, "cluster_size": 5}, "clusters must be a positive integer, got True."),
    ],
)
def test_fractional_clusters_is_refused(
    conventional: Spec, kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(DataError) as info:
        simulate(conventional, CONVENTIONAL_PARAMS, random_seed=1, **kwargs)  # type: ignore[arg-type]
    assert str(info.value) == message


def test_fractional_n_is_refused(fig1: Spec) -> None:
    with pytest.raises(DataError) as info:
        simulate(fig1, FIG1_PARAMS, n=10.5, random_seed=1)  # type: ignore[arg-type]
    assert str(info.value) == "n must be a positive integer, got 10.5."


def test_numpy_integers_are_accepted(conventional: Spec) -> None:
    a = simulate(
        conventional, CONVENTIONAL_PARAMS, clusters=np.int64(4), cluster_size=np.int32(3),
        random_seed=1,
    )  # fmt: skip
    b = simulate(conventional, CONVENTIONAL_PARAMS, clusters=4, cluster_size=3, random_seed=1)
    pd.testing.assert_frame_equal(a, b)


def test_n_disagreeing_with_clusters_is_refused(conventional: Spec) -> None:
    with pytest.raises(DataError) as info:
        simulate(
            conventional, CONVENTIONAL_PARAMS, n=100, clusters=10, cluster_size=5, random_seed=1
        )
    assert str(info.value) == (
        "n=100 disagrees with clusters * cluster_size = 10 * 5 = 50; a two-level model takes "
        "its size from clusters and cluster_size: drop n."
    )


def test_n_agreeing_with_clusters_is_accepted(conventional: Spec) -> None:
    a = simulate(
        conventional, CONVENTIONAL_PARAMS, n=50, clusters=10, cluster_size=5, random_seed=3
    )
    b = simulate(conventional, CONVENTIONAL_PARAMS, clusters=10, cluster_size=5, random_seed=3)
    pd.testing.assert_frame_equal(a, b)


def test_two_level_given_only_n_names_what_it_needs(conventional: Spec) -> None:
    with pytest.raises(DataError) as info:
        simulate(conventional, CONVENTIONAL_PARAMS, n=100, random_seed=1)
    assert str(info.value) == (
        "model 'conventional' is two-level (cluster column 'cluster'): simulate needs "
        "clusters (the number of clusters) and cluster_size (observations per cluster), or "
        "a covariates DataFrame with the cluster column; n alone does not say how to split "
        "the observations into clusters."
    )


def test_single_level_given_clusters_names_what_it_needs(fig1: Spec) -> None:
    with pytest.raises(DataError) as info:
        simulate(fig1, FIG1_PARAMS, clusters=10, cluster_size=5, random_seed=1)
    assert str(info.value) == (
        "model 'fig1' is single-level (no cluster column): it takes n (the number of "
        "observations), not clusters or cluster_size."
    )


def test_n_disagreeing_with_a_covariates_frame_is_refused(fig1: Spec) -> None:
    with pytest.raises(DataError) as info:
        simulate(fig1, FIG1_PARAMS, n=10, covariates=pd.DataFrame({"x": [0.0, 1.0]}))
    assert str(info.value) == (
        "n=10 disagrees with the covariates DataFrame's 2 rows; the DataFrame sets the size: "
        "drop n."
    )


def test_negative_seed_is_refused(fig1: Spec) -> None:
    with pytest.raises(DataError) as info:
        simulate(fig1, FIG1_PARAMS, n=10, random_seed=-1)
    assert str(info.value) == (
        "random_seed must be a whole number from 0 to 4294967295, got -1; pass an integer "
        "such as 12345, or None for a fresh seed."
    )


# --- covariates --------------------------------------------------------------------------------


def test_covariates_with_missing_values_are_refused(fig1: Spec) -> None:
    with pytest.raises(DataError) as info:
        simulate(fig1, FIG1_PARAMS, covariates=pd.DataFrame({"x": [0.0, np.nan, 1.0]}))
    assert str(info.value) == (
        "covariates have missing values (per column: {'x': 1}); drop or impute those rows "
        "before simulating."
    )


def test_covariates_with_text_are_refused(fig1: Spec) -> None:
    with pytest.raises(DataError) as info:
        simulate(fig1, FIG1_PARAMS, covariates=pd.DataFrame({"x": ["0", "a", "1"]}))
    assert str(info.value) == (
        "covariate column 'x' is not numeric (e.g. value 'a' in row 1); recode it as numbers."
    )


def test_school_covariate_varying_within_a_cluster_is_refused(conventional: Spec) -> None:
    covariates = pd.DataFrame({"cluster": [1, 1, 2, 2], "x": 0.0, "w": [0.0, 1.0, 2.0, 2.0]})
    with pytest.raises(DataError, match="school-level column 'w' varies within cluster 1"):
        simulate(conventional, CONVENTIONAL_PARAMS, covariates=covariates, random_seed=1)


@pytest.mark.parametrize(
    ("how", "fragment"),
    [
        (("normal", 0.0, -1.0), "the sd must be a finite number >= 0, got -1.0"),
        (("bernoulli", 1.5), "p must be a number within [0, 1], got 1.5"),
        (("normal", "a"), "the mean must be a finite number, got 'a'"),
    ],
)
def test_bad_generator_arguments_are_refused(fig1: Spec, how: object, fragment: str) -> None:
    with pytest.raises(SpecError) as info:
        simulate(fig1, FIG1_PARAMS, n=10, covariates={"x": how}, random_seed=1)
    assert f"covariate generator for 'x': {fragment}" in str(info.value)


def test_generator_returning_nan_is_refused(fig1: Spec) -> None:
    with pytest.raises(DataError, match="generator for 'x' returned 10 non-finite value"):
        simulate(fig1, FIG1_PARAMS, n=10, covariates={"x": lambda rng, n: np.full(n, np.nan)})


def test_overflowing_mean_is_refused(fig1: Spec) -> None:
    covariates = pd.DataFrame({"x": [1e300, 0.0]})
    values = {**FIG1_PARAMS, "x[c1]": 1e10, "x[c2]": 1e10}
    with pytest.raises(SpecError) as info:
        simulate(fig1, values, covariates=covariates, random_seed=1)
    assert str(info.value).startswith(
        "the parameter values give a non-finite outcome mean in 1 of 2 rows (first: row 0)"
    )


# --- the command line --------------------------------------------------------------------------


def test_repeated_param_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_path = tmp_path / "sim.csv"
    argv = ["simulate", FIG1, "--n", "10", "--out", str(out_path), *param_args(FIG1_PARAMS)]
    code, out, err = _run([*argv, "--param", "x[c1]=2"], capsys)
    assert code == 2
    assert out == ""
    assert err == (
        "bayesmix: error: --param 'x[c1]' is given twice (x[c1]=-1.1, then x[c1]=2); "
        "give each parameter once.\n"
    )
    assert not out_path.exists()


def test_cli_simulates_a_two_level_model_with_clusters(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_path = tmp_path / "fig3.csv"
    argv = [
        "simulate", FIG3, "--clusters", "40", "--cluster-size", "15", "--seed", "7",
        "--out", str(out_path), *param_args(FIG3_PARAMS),
    ]  # fmt: skip
    code, out, err = _run(argv, capsys)
    assert (code, err) == (0, "")
    assert out == f"wrote 600 rows to {out_path}\n"
    frame = pd.read_csv(out_path)
    assert list(frame.columns) == ["cluster", "x", "w", "y", "C"]
    assert len(frame) == 40 * 15
    assert frame["cluster"].tolist() == list(np.repeat(np.arange(1, 41), 15))
    per_cluster = frame.groupby("cluster")[["w", "x"]].nunique()
    assert per_cluster["w"].tolist() == [1] * 40  # school covariate constant within a school
    assert per_cluster["x"].tolist() == [15] * 40
    assert set(frame["C"]) == {1, 2}
    expected = simulate(load_spec(FIG3), FIG3_PARAMS, clusters=40, cluster_size=15, random_seed=7)
    pd.testing.assert_frame_equal(frame, expected, check_exact=False, rtol=1e-12)


def test_cli_simulates_a_two_level_model_from_a_covariates_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = np.random.default_rng(3)
    w = rng.normal(size=12)
    covariates = pd.DataFrame(
        {
            "cluster": np.repeat([f"s{j:02d}" for j in range(12)], 6),
            "x": rng.normal(size=72),
            "w": np.repeat(w, 6),
            "unused": 1.0,
        }
    )
    cov_path = tmp_path / "schools.csv"
    covariates.to_csv(cov_path, index=False)
    out_path = tmp_path / "conventional.csv"
    argv = [
        "simulate", CONVENTIONAL, "--covariates", str(cov_path), "--seed", "4",
        "--out", str(out_path), *param_args(CONVENTIONAL_PARAMS),
    ]  # fmt: skip
    code, out, err = _run(argv, capsys)
    assert (code, err) == (0, "")
    assert out == f"wrote 72 rows to {out_path}\n"
    frame = pd.read_csv(out_path)
    assert list(frame.columns) == ["x", "w", "cluster", "y", "C"]
    assert frame["cluster"].tolist() == covariates["cluster"].tolist()
    np.testing.assert_allclose(frame[["x", "w"]], covariates[["x", "w"]], rtol=1e-12)
    expected = simulate(
        load_spec(CONVENTIONAL), CONVENTIONAL_PARAMS, covariates=covariates, random_seed=4
    )
    np.testing.assert_allclose(frame["y"], expected["y"], rtol=1e-12)


def test_cli_covariates_file_for_a_single_level_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cov_path = tmp_path / "x.csv"
    pd.DataFrame({"x": [0.0, 1.0, 2.0]}).to_csv(cov_path, index=False)
    out_path = tmp_path / "sim.csv"
    argv = ["simulate", FIG1, "--covariates", str(cov_path), "--out", str(out_path)]
    code, out, _ = _run([*argv, *param_args(FIG1_PARAMS)], capsys)
    assert code == 0
    assert out == f"wrote 3 rows to {out_path}\n"
    assert pd.read_csv(out_path)["x"].tolist() == [0.0, 1.0, 2.0]


def test_cli_missing_covariates_file_is_the_usual_data_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "none.csv"
    argv = ["simulate", CONVENTIONAL, "--covariates", str(missing), "--out", "x.csv"]
    code, _, err = _run([*argv, *param_args(CONVENTIONAL_PARAMS)], capsys)
    assert code == 2
    assert err.startswith(f"bayesmix: error: data {str(missing)!r} is neither a CSV file")


def test_cli_two_level_without_sizes_names_the_flags(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_path = tmp_path / "sim.csv"
    argv = ["simulate", FIG3, "--n", "100", "--out", str(out_path), *param_args(FIG3_PARAMS)]
    code, _, err = _run(argv, capsys)
    assert code == 2
    assert err == (
        "bayesmix: error: model 'fig3' is two-level (cluster column 'cluster'): give "
        "--clusters J and --cluster-size M, or --covariates FILE with the cluster column; "
        "--n alone does not say how to split the observations into clusters.\n"
    )
    assert not out_path.exists()


def test_cli_single_level_without_n_names_the_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["simulate", FIG1, "--out", str(tmp_path / "s.csv"), *param_args(FIG1_PARAMS)]
    code, _, err = _run(argv, capsys)
    assert code == 2
    assert err == (
        "bayesmix: error: model 'fig1' is single-level: give --n N (the number of "
        "observations), or --covariates FILE.\n"
    )


def test_cli_single_level_with_clusters_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [
        "simulate", FIG1, "--clusters", "10", "--cluster-size", "5",
        "--out", str(tmp_path / "s.csv"), *param_args(FIG1_PARAMS),
    ]  # fmt: skip
    code, _, err = _run(argv, capsys)
    assert code == 2
    assert err == (
        "bayesmix: error: model 'fig1' is single-level (no cluster column): --clusters and "
        "--cluster-size are for two-level models; give --n N.\n"
    )


def test_cli_param_value_not_a_number(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["simulate", FIG1, "--n", "10", "--out", str(tmp_path / "s.csv")]
    code, _, err = _run([*argv, "--param", "x[c1]=-1,1"], capsys)
    assert code == 2
    assert err == (
        "bayesmix: error: --param 'x[c1]=-1,1': '-1,1' is not a number; give NAME=VALUE "
        "with a decimal number as VALUE, such as -1.1 or 2.5e-3.\n"
    )


def test_cli_negative_seed_names_the_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["simulate", FIG1, "--n", "10", "--seed", "-1", "--out", str(tmp_path / "s.csv")]
    with pytest.raises(SystemExit) as info:
        main([*argv, *param_args(FIG1_PARAMS)])
    err = capsys.readouterr().err
    assert info.value.code == 2
    assert "--seed" in err and "'-1'" in err and "0 to 4294967295" in err
