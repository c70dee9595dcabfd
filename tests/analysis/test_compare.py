"""Tests of bayesmix.analysis.compare: the Table 2 comparison of ML fits, and its CLI printout."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import bayesmix as bm
from bayesmix.cli import main
from bayesmix.paper.demo import fig1_spec
from bayesmix.paper.section2 import FIG1_PARAMS
from tests.support.paths import MODELS

FIG1 = str(MODELS / "fig1.toml")


@pytest.fixture(scope="module")
def fig1_data():
    return bm.simulate(fig1_spec(), FIG1_PARAMS, n=2000, random_seed=3)


@pytest.fixture(scope="module")
def fits(fig1_data):
    return [
        bm.fit_ml(bm.load_spec(FIG1, classes=k), fig1_data, starts=6, random_seed=1)
        for k in (1, 2, 3)
    ]


def test_compare_rows_match_each_fit(fits):
    table = bm.compare(fits)
    assert list(table["classes"]) == [1, 2, 3]
    for row, fit in zip(table.itertuples(), fits, strict=True):
        assert row.loglik == fit.loglik
        assert row.n_params == fit.n_params
        # eq 33: BIC = -2 logL + r log n
        assert row.bic == pytest.approx(-2 * fit.loglik + fit.n_params * math.log(2000))
        assert row.aic == pytest.approx(-2 * fit.loglik + 2 * fit.n_params)
    assert table["replicated"][0] == ""
    assert table["replicated"][1] == f"{fits[1].starts.replicated}/{fits[1].starts.n_starts}"
    assert np.isnan(table["entropy"][0]) and 0 < table["entropy"][1] <= 1


def test_compare_marks_the_bic_minimum_at_the_true_two_classes(fits):
    table = bm.compare(fits)
    assert list(table["best_bic"]) == ["", "*", ""]
    assert table["loglik"].is_monotonic_increasing


def test_compare_refuses_fits_to_different_data(fits):
    other = bm.fit_ml(
        fig1_spec(), bm.simulate(fig1_spec(), FIG1_PARAMS, n=500, random_seed=4), starts=2
    )
    with pytest.raises(bm.EstimationError, match="different numbers of observations"):
        bm.compare([fits[1], other])
    with pytest.raises(bm.EstimationError, match="at least one"):
        bm.compare([])


def test_cli_with_several_classes_prints_and_writes_the_table(tmp_path, fig1_data, capsys):
    csv = tmp_path / "fig1.csv"
    fig1_data.to_csv(csv, index=False)
    out = tmp_path / "table.json"
    code = main(
        ["fit", FIG1, "--data", str(csv), "--classes", "1", "2", "--starts", "4",
         "--seed", "2", "--json", str(out)]
    )  # fmt: skip
    assert code == 0
    text = capsys.readouterr().out
    assert "Model comparison (* = lowest BIC)" in text
    payload = json.loads(out.read_text())
    assert [row["classes"] for row in payload["comparison"]] == [1, 2]
    assert [row["best_bic"] for row in payload["comparison"]] == ["", "*"]
    assert payload["fits"][1]["loglik"] == pytest.approx(payload["comparison"][1]["loglik"])


def test_cli_refuses_several_classes_for_bayes(capsys):
    assert main(["fit", FIG1, "--data", "hsb", "--estimator", "bayes", "--classes", "2", "3"]) == 2
    assert "with --estimator bayes give one K" in capsys.readouterr().err


def test_wald_of_one_parameter_is_the_squared_z(fits):
    fit = fits[1]
    test = bm.wald(fit, ["x[c1]"])
    assert test.df == 1
    assert test.statistic == pytest.approx(fit.params.loc["x[c1]", "z"] ** 2, rel=1e-9)
    shifted = bm.wald(fit, ["x[c1]"], [-1.1])
    z = (fit.params.loc["x[c1]", "estimate"] + 1.1) / fit.params.loc["x[c1]", "se"]
    assert shifted.statistic == pytest.approx(z**2, rel=1e-9)


def test_wald_of_two_parameters_uses_their_covariance(fits):
    fit = fits[1]
    names = ["x[c1]", "x[c2]"]
    idx = [fit.names.index(n) for n in names]
    cov = fit.cov[np.ix_(idx, idx)]
    b = fit.estimates[idx]
    test = bm.wald(fit, names)
    assert test.statistic == pytest.approx(float(b @ np.linalg.inv(cov) @ b), rel=1e-9)
    assert test.df == 2 and 0 <= test.p_value <= 1
    assert "chi2" in str(test)


def test_wald_refuses_unknown_names(fits):
    with pytest.raises(bm.EstimationError, match="unknown parameter"):
        bm.wald(fits[1], ["x[c9]"])
