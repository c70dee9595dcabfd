"""Constrained ML fits: fixed values, equalities and starting values against the models they
equal, with their parameter counts, information criteria and standard errors."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

import bayesmix as bm
from bayesmix.data.design import build_design
from bayesmix.data.standardise import standardise
from bayesmix.errors import EstimationError
from bayesmix.ml.starts import constrained_start
from bayesmix.model.constraints import Constraints
from bayesmix.paper.section2 import FIG1_PARAMS, FIG3_PARAMS
from tests.support.paths import MODELS


def constrained(spec: bm.Spec, **kw) -> bm.Spec:
    return dataclasses.replace(spec, constraints=Constraints(**kw))


def estimate(fit: bm.MLResult, name: str) -> float:
    return float(fit.estimates[list(fit.names).index(name)])


def se_of(fit: bm.MLResult, name: str) -> float:
    return float(fit.se[list(fit.names).index(name)])


@pytest.fixture(scope="module")
def fig1() -> tuple[bm.Spec, object]:
    spec = bm.load_spec(MODELS / "fig1.toml")
    return spec, bm.simulate(spec, FIG1_PARAMS, n=1000, random_seed=4)


@pytest.fixture(scope="module")
def fig1_fits(fig1) -> dict[str, bm.MLResult]:
    spec, data = fig1
    shared = dataclasses.replace(spec, class_varying=("1",))
    tied = constrained(spec, equal=(("x[c1]", "x[c2]"),))
    full = bm.fit_ml(spec, data, starts=10, random_seed=1)
    at_ml = constrained(spec, fixed=(("x[c2]", estimate(full, "x[c2]")),))
    return {
        "full": full,
        "shared": bm.fit_ml(shared, data, starts=10, random_seed=1),
        "tied": bm.fit_ml(tied, data, starts=10, random_seed=1),
        "fixed": bm.fit_ml(at_ml, data, starts=10, random_seed=1),
        "shared_mlr": bm.fit_ml(shared, data, starts=10, random_seed=1, se="mlr"),
        "tied_mlr": bm.fit_ml(tied, data, starts=10, random_seed=1, se="mlr"),
    }


def test_equality_across_classes_is_the_model_with_the_term_shared(fig1_fits):
    shared, tied = fig1_fits["shared"], fig1_fits["tied"]
    assert tied.loglik == pytest.approx(shared.loglik, abs=1e-6)
    assert tied.n_params == shared.n_params == 7
    assert tied.bic == pytest.approx(shared.bic, abs=1e-5)
    for kind in ("", "_mlr"):
        a, b = fig1_fits[f"shared{kind}"], fig1_fits[f"tied{kind}"]
        for c in ("c1", "c2"):
            assert estimate(b, f"x[{c}]") == pytest.approx(
                estimate(a, "x"), abs=1e-4 * se_of(a, "x")
            )
            assert se_of(b, f"x[{c}]") == pytest.approx(se_of(a, "x"), rel=1e-4)
        for name in ("1[c1]", "sigma2[c2]", "C#1 ~ x"):
            assert estimate(b, name) == pytest.approx(estimate(a, name), abs=1e-4 * se_of(a, name))
            assert se_of(b, name) == pytest.approx(se_of(a, name), rel=1e-4)


def test_fixing_a_parameter_at_its_estimate_keeps_the_fit_with_one_parameter_fewer(fig1_fits):
    full, fixed = fig1_fits["full"], fig1_fits["fixed"]
    assert fixed.loglik == pytest.approx(full.loglik, abs=1e-6)
    assert fixed.n_params == full.n_params - 1 == 7
    assert fixed.bic - full.bic == pytest.approx(-math.log(1000), abs=1e-5)
    k = list(fixed.names).index("x[c2]")
    assert fixed.estimates[k] == estimate(full, "x[c2]")
    assert fixed.se[k] == 0.0 and np.isnan(fixed.z[k]) and np.isnan(fixed.p[k])
    free = [n for n in full.names if n != "x[c2]"]
    for name in free:
        assert estimate(fixed, name) == pytest.approx(
            estimate(full, name), abs=1e-3 * se_of(full, name)
        )
    # the fixed value removes its uncertainty from the others: no SE grows
    assert all(se_of(fixed, n) <= se_of(full, n) * (1 + 1e-6) for n in free)
    assert "constraints: x[c2] fixed at" in fixed.summary()
    test = bm.lrt(fixed, full)
    assert test.df == 1 and test.statistic == pytest.approx(0.0, abs=2e-6)
    assert fixed.to_dict()["constraints"]["fixed"] == {"x[c2]": estimate(full, "x[c2]")}


@pytest.mark.parametrize("name", ["female", "1", "ses:meanses"])
def test_hsb_model_1_fixed_at_its_estimates_keeps_lme4s_loglik(name):
    spec = bm.load_spec(MODELS / "hsb_1.toml")
    hsb = bm.datasets.load_hsb()
    full = bm.fit_ml(spec, hsb)
    fixed = bm.fit_ml(constrained(spec, fixed=((name, estimate(full, name)),)), hsb)
    assert full.loglik == pytest.approx(-23214.496, abs=5e-4)
    assert fixed.loglik == pytest.approx(full.loglik, abs=1e-6)
    assert (full.n_params, fixed.n_params) == (19, 18)
    assert fixed.bic - full.bic == pytest.approx(-math.log(7185), abs=1e-5)


def test_an_equality_of_two_terms_on_different_scales_is_their_sum_as_one_covariate():
    hsb = bm.datasets.load_hsb().assign(female_ses=lambda d: d.female + d.ses)
    common = {"cluster": "school", "random": "1"}
    tied = bm.fit_ml(
        bm.make_spec(
            "math ~ female + ses + catholic",
            constraints={"equal": [["female", "ses"]]},
            **common,
        ),
        hsb,
    )
    summed = bm.fit_ml(bm.make_spec("math ~ female_ses + catholic", **common), hsb)
    assert tied.loglik == pytest.approx(summed.loglik, abs=1e-6)
    assert tied.n_params == summed.n_params == 5
    assert estimate(tied, "female") == estimate(tied, "ses")
    assert estimate(tied, "ses") == pytest.approx(estimate(summed, "female_ses"), rel=1e-7)
    assert se_of(tied, "ses") == pytest.approx(se_of(summed, "female_ses"), rel=1e-4)


@pytest.fixture(scope="module")
def fig3_data() -> object:
    spec = bm.load_spec(MODELS / "fig3.toml")
    return bm.simulate(spec, FIG3_PARAMS, clusters=60, cluster_size=10, random_seed=3)


@pytest.fixture(scope="module")
def fig3_pair(fig3_data) -> tuple[bm.MLResult, bm.MLResult]:
    spec, data = bm.load_spec(MODELS / "fig3.toml"), fig3_data
    shared = dataclasses.replace(spec, class_varying=("1",))
    tied = constrained(spec, equal=(("x[c1]", "x[c2]"),))
    return (
        bm.fit_ml(shared, data, starts=10, random_seed=1),
        bm.fit_ml(tied, data, starts=10, random_seed=1),
    )


def test_two_level_mixture_equality_is_the_shared_model_under_quadrature(fig3_pair):
    shared, tied = fig3_pair
    assert tied.loglik == pytest.approx(shared.loglik, abs=1e-6)
    assert tied.n_params == shared.n_params == 10
    assert estimate(tied, "x[c1]") == estimate(tied, "x[c2]")
    assert estimate(tied, "x[c1]") == pytest.approx(
        estimate(shared, "x"), abs=1e-3 * se_of(shared, "x")
    )
    assert se_of(tied, "x[c2]") == pytest.approx(se_of(shared, "x"), rel=1e-3)


def test_school_residual_variances_of_a_diagonal_covariance_fixed_or_equal(fig3_data):
    spec = bm.load_spec(MODELS / "fig3.toml")
    full = bm.fit_ml(spec, fig3_data, starts=10, random_seed=1)
    value = estimate(full, "var(u_C#1)")
    fixed = bm.fit_ml(
        constrained(spec, fixed=(("var(u_C#1)", value),)), fig3_data, starts=10, random_seed=1
    )
    assert fixed.loglik == pytest.approx(full.loglik, abs=1e-6)
    assert (full.n_params, fixed.n_params) == (11, 10)
    assert estimate(fixed, "var(u_C#1)") == value and se_of(fixed, "var(u_C#1)") == 0.0
    assert estimate(fixed, "var(u_1)") == pytest.approx(
        estimate(full, "var(u_1)"), abs=1e-3 * se_of(full, "var(u_1)")
    )
    equal = bm.fit_ml(
        constrained(spec, equal=(("var(u_1)", "var(u_C#1)"),)), fig3_data, starts=10, random_seed=1
    )
    assert estimate(equal, "var(u_1)") == pytest.approx(estimate(equal, "var(u_C#1)"), rel=1e-12)
    assert equal.n_params == 10 and equal.loglik < full.loglik
    assert se_of(equal, "var(u_1)") == pytest.approx(se_of(equal, "var(u_C#1)"), rel=1e-8)


def test_a_residual_variance_fixed_or_equal_across_classes(fig1):
    spec, data = fig1
    common = dataclasses.replace(spec, residual_variance="common")
    equal = constrained(spec, equal=(("sigma2[c1]", "sigma2[c2]"),))
    a = bm.fit_ml(common, data, starts=10, random_seed=1)
    b = bm.fit_ml(equal, data, starts=10, random_seed=1)
    assert b.loglik == pytest.approx(a.loglik, abs=1e-6)
    assert estimate(b, "sigma2[c1]") == pytest.approx(estimate(a, "sigma2"), rel=1e-6)
    fixed = bm.fit_ml(
        constrained(spec, fixed=(("sigma2[c1]", 1.5),)), data, starts=10, random_seed=1
    )
    assert estimate(fixed, "sigma2[c1]") == 1.5 and se_of(fixed, "sigma2[c1]") == 0.0


def test_a_starting_value_starts_one_optimisation_there(fig1):
    spec, data = fig1
    spec = constrained(spec, start=(("1[c1]", 7.0), ("sigma2[c2]", 0.25)), fixed=(("x[c2]", 0.5),))
    design = build_design(spec, data)
    internal, st = standardise(design)
    theta = constrained_start(internal, st, 1)
    natural = st.to_user(design.layout.to_natural(theta))
    names = design.layout.names
    assert natural[names.index("1[c1]")] == pytest.approx(7.0, rel=1e-12)
    assert natural[names.index("sigma2[c2]")] == pytest.approx(0.25, rel=1e-12)
    assert natural[names.index("x[c2]")] == pytest.approx(0.5, rel=1e-12)
    fit = bm.fit_ml(spec, data, starts=3, random_seed=1)
    assert fit.starts.n_starts == 3 and len(fit.starts.logliks) == 4


def test_constraints_survive_saving_and_loading(fig1_fits, tmp_path):
    fixed = fig1_fits["fixed"]
    fixed.save(tmp_path / "fit.bmx")
    back = bm.load_result(tmp_path / "fit.bmx")
    assert back.spec.constraints == fixed.spec.constraints
    assert back.n_params == 7 and back.bic == pytest.approx(fixed.bic, abs=1e-9)


def test_the_lmr_test_refuses_constrained_fits(fig1, fig1_fits):
    spec, data = fig1
    one = bm.fit_ml(spec.with_classes(1), data)
    with pytest.raises(EstimationError, match=r"has constraints .*blrt"):
        bm.lmr(one, fig1_fits["fixed"])
