"""Estimation does not depend on the covariates' units: standardisation and its exact map back."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import bayesmix as bm
from bayesmix.data.design import build_design
from bayesmix.data.standardise import expansion, standardise
from bayesmix.density.compiled import loglik_and_grad
from bayesmix.density.quadrature import adapted_quadrature
from bayesmix.formatting import significant
from bayesmix.paper.section2 import FIG1_PARAMS
from tests.support.fits import two_level_60x10
from tests.support.paths import MODELS
from tests.support.scale_check import TRANSFORMS, expected, mismatch, transformed

HSB_1B_PARAMS = {
    "1": 12.0, "pracad": 3.0, "catholic": 1.0, "meanses": 2.5,
    "female": -1.2, "female:pracad": 0.5, "female:catholic": 0.3, "female:meanses": -0.4,
    "ses": 2.0, "ses:pracad": 0.6, "ses:catholic": -0.8, "ses:meanses": 0.2,
    "var(u_1)": 4.0, "var(u_female)": 0.8, "var(u_ses)": 0.5,
    "cov(u_1,u_female)": -0.6, "cov(u_1,u_ses)": 0.4, "cov(u_female,u_ses)": -0.1,
    "log(sigma2) ~ 1": 3.6, "log(sigma2) ~ female": -0.1, "log(sigma2) ~ ses": -0.05,
}  # fmt: skip


def _hsb_like(clusters: int = 40, size: int = 15, seed: int = 3) -> pd.DataFrame:
    spec = bm.load_spec(f"{MODELS}/hsb_1b.toml")
    return bm.simulate(
        spec,
        HSB_1B_PARAMS,
        clusters=clusters,
        cluster_size=size,
        covariates={
            "female": ("bernoulli", 0.5),
            "ses": ("normal", 0.0, 0.8),
            "pracad": ("normal", 0.5, 0.25),
            "catholic": ("bernoulli", 0.4),
            "meanses": ("normal", 0.0, 0.4),
        },
        random_seed=seed,
    )


DESIGNS = {
    "fig1": (
        "fig1.toml",
        lambda: bm.simulate(bm.load_spec(f"{MODELS}/fig1.toml"), FIG1_PARAMS, n=300, random_seed=2),
        ("x",),
        4,
    ),
    # None: 60 schools x 10 students, the data and fit of tests.support.fits.two_level_60x10
    "fig3": ("fig3.toml", None, ("x", "w"), 4),
    "conventional": ("conventional.toml", None, ("x", "w"), 1),
    "1b": (
        "hsb_1b.toml",
        _hsb_like,
        ("female", "ses", "pracad", "catholic", "meanses"),
        1,
    ),
}  # fmt: skip

CASES = [
    (design, column, transform)
    for design, (_, _, columns, _) in DESIGNS.items()
    for column in columns
    for transform in TRANSFORMS
]

_BASE: dict[str, tuple[bm.Spec, pd.DataFrame, bm.MLResult]] = {}


def _base(name: str) -> tuple[bm.Spec, pd.DataFrame, bm.MLResult]:
    """The design's data and its fit on the units as simulated, made once per session."""
    file, make, _, starts = DESIGNS[name]
    if make is None:
        shared = two_level_60x10(name)
        return shared.spec, shared.data, shared.ml
    if name not in _BASE:
        spec = bm.load_spec(f"{MODELS}/{file}")
        data = make()
        _BASE[name] = (spec, data, bm.fit_ml(spec, data, starts=starts, random_seed=1))
    return _BASE[name]


@pytest.mark.parametrize(("design", "column", "transform"), CASES)
def test_ml_fit_does_not_depend_on_a_covariates_units(design, column, transform):
    spec, data, base = _base(design)
    assert base.converged
    new_data = transformed(data, column, transform)
    fit = bm.fit_ml(spec, new_data, starts=DESIGNS[design][3], random_seed=1)
    est, se, _ = expected(base, new_data)
    assert fit.converged, fit.diagnostics
    assert fit.loglik == pytest.approx(base.loglik, rel=1e-6)
    assert np.isfinite(fit.se).all()
    assert mismatch(fit, est, se) <= 1e-4


def test_expansion_of_centred_products():
    # x:w with x and w centred expands into xw - c_w x - c_x w + c_x c_w
    cols = ((), ("x",), ("w",), ("w", "x"))
    T = expansion(cols, {"x": 2.0, "w": 3.0}, {"x": 0.5, "w": 4.0})
    assert T[:, 3] == pytest.approx(np.array([6.0, -3.0, -2.0, 1.0]) / 2.0)
    assert T[:, 1] == pytest.approx([-4.0, 2.0, 0.0, 0.0])
    # without w itself the centred product is not a combination of the columns
    assert expansion(((), ("x",), ("w", "x")), {"x": 2.0, "w": 3.0}, {"x": 1.0, "w": 1.0}) is None


def test_standardised_matrices_are_the_users_times_t():
    spec = bm.load_spec(f"{MODELS}/hsb_B.toml", classes=2)
    design = build_design(spec, "hsb")
    internal, st = standardise(design)
    for key, mat, mat_s in (
        ("F", design.F, internal.F),
        ("R", design.R, internal.R),
        ("Z", design.Z, internal.Z),
    ):
        np.testing.assert_allclose(mat @ st.T[key], mat_s, atol=1e-10)
    names = list(spec.fixed_names)
    for main in ("female", "ses", "pracad"):
        assert internal.F[:, names.index(main)].mean() == pytest.approx(0.0, abs=1e-12)
        assert internal.F[:, names.index(main)].std() == pytest.approx(1.0)
    # every covariate of model B is centred: the structure allows it
    assert set(st.centred) == {"female", "ses", "pracad", "catholic", "meanses"}
    assert internal.y.mean() == pytest.approx(0.0, abs=1e-12)
    assert internal.y.std() == pytest.approx(1.0)


def test_a_class_varying_slope_under_a_shared_intercept_is_only_scaled():
    # centring x would move c_x beta_x[c] into a shared intercept
    rng = np.random.default_rng(0)
    data = pd.DataFrame({"x": rng.normal(5.0, 2.0, 200), "z": rng.normal(size=200)})
    data["y"] = data["x"] + rng.normal(size=200)
    spec = bm.make_spec("y ~ x + z", classes=2, class_varying=["x"])
    _, st = standardise(build_design(spec, data))
    assert "x" not in st.centred and "z" in st.centred
    assert st.scale["x"] == pytest.approx(data["x"].std(ddof=0))


def test_diagonal_random_slopes_are_only_scaled():
    spec = bm.make_spec("y ~ x", cluster="g", random=["1", "x"], covariance="diagonal")
    rng = np.random.default_rng(1)
    g = np.repeat(np.arange(30), 10)
    data = pd.DataFrame({"g": g, "x": rng.normal(3.0, 1.0, 300)})
    data["y"] = data["x"] + rng.normal(size=30)[g] + rng.normal(size=300)
    _, st = standardise(build_design(spec, data))
    assert "x" not in st.centred
    assert np.count_nonzero(st.T["R"] - np.diag(np.diag(st.T["R"]))) == 0


@pytest.mark.parametrize("model", ["fig1", "conventional", "1b"])
def test_the_map_back_is_exact_for_the_closed_form_likelihoods(model):
    # a moderate shift and scale: in the user's units a shift of 5e4 costs the closed
    # form digits (the reason to standardise), which would blur the comparison
    spec, data, base = _base(model)
    column = DESIGNS[model][2][0]
    design = build_design(spec, data.assign(**{column: 3.0 * data[column] + 2.0}))
    internal, st = standardise(design)
    lay = design.layout
    rng = np.random.default_rng(4)
    theta_s = lay.to_theta(st.to_internal(base.estimates)) + 0.05 * rng.normal(size=lay.n_params)
    natural_s = lay.to_natural(theta_s)
    # JAX compiles the objective in seconds; numba's is checked against it below
    f = loglik_and_grad(lay, internal.likelihood_args(), backend="jax")
    ll_s = float(f(theta_s, *internal.likelihood_args())[0])
    ll = float(f(lay.to_theta(st.to_user(natural_s)), *design.likelihood_args())[0])
    assert ll == pytest.approx(ll_s - design.n_obs * np.log(st.y_scale), rel=1e-9)
    if model == "conventional":
        # the numba objective of a two-level model, which ML no longer uses by default
        numba = loglik_and_grad(lay)(theta_s, *internal.likelihood_args())[0]
        assert numba == pytest.approx(ll_s, rel=1e-12)


def test_the_map_back_is_exact_for_the_quadrature():
    spec, data, base = _base("fig3")
    design = build_design(spec, data.assign(w=3.0 * data["w"] + 2.0))
    internal, st = standardise(design)
    lay = design.layout
    theta_s = lay.to_theta(st.to_internal(base.estimates))
    theta = lay.to_theta(base.estimates)
    ll_s = float(adapted_quadrature(internal, theta_s).evaluate(theta_s)[0])
    ll = float(adapted_quadrature(design, theta).evaluate(theta)[0])
    assert ll == pytest.approx(ll_s - design.n_obs * np.log(st.y_scale), abs=1e-6)


def test_default_priors_follow_the_covariates_scale():
    from bayesmix.model.priors import default_priors, resolve_priors

    spec = bm.load_spec(f"{MODELS}/fig1.toml")
    data = _base("fig1")[1]
    priors = {}
    for factor in (1.0, 1e3):
        design = build_design(spec, data.assign(x=data["x"] * factor))
        internal, st = standardise(design)
        internal_priors = resolve_priors(internal, None, st.prior_to_internal)
        assert internal_priors == default_priors(internal)
        priors[factor] = {k: st.prior_to_user(k, v) for k, v in internal_priors.items()}
    assert priors[1e3]["x[c1]"].sigma == pytest.approx(priors[1.0]["x[c1]"].sigma / 1e3)
    assert priors[1e3]["C#1 ~ x"].sigma == pytest.approx(priors[1.0]["C#1 ~ x"].sigma / 1e3)
    intercept, intercept_1e3 = priors[1.0]["1[c1]"], priors[1e3]["1[c1]"]
    assert intercept_1e3.mu == pytest.approx(intercept.mu)
    assert intercept_1e3.sigma == pytest.approx(intercept.sigma)
    # a user prior in the user's units is the same prior after the map
    design = build_design(spec, data)
    internal, st = standardise(design)
    user = bm.Prior("normal", 0.3, 2.0)
    back = st.prior_to_user("x[c1]", st.prior_to_internal("x[c1]", user))
    assert back.mu == pytest.approx(0.3) and back.sigma == pytest.approx(2.0)


def test_an_early_stop_is_still_not_converged():
    spec, data, _ = _base("fig1")
    with pytest.warns(bm.BayesmixWarning):
        fit = bm.fit_ml(spec, data, starts=2, random_seed=1, maxiter=3)
    assert not fit.converged
    assert "did not converge" in fit.summary()


def test_income_like_covariate_converges_with_standard_errors():
    # 50000 + 1e4 x: today's case reached the right logL but reported converged NO and NaN SEs
    spec, data, base = _base("fig1")
    income = data.assign(x=50000 + 1e4 * data["x"])
    fit = bm.fit_ml(spec, income, starts=2, random_seed=1)
    assert fit.converged and np.isfinite(fit.se).all()
    assert fit.loglik == pytest.approx(base.loglik, rel=1e-9)
    assert "consider fewer classes" not in fit.summary()


def test_x_times_1e12_reaches_the_best_optimum():
    spec, data, base = _base("fig1")
    fit = bm.fit_ml(spec, data.assign(x=data["x"] * 1e12), starts=2, random_seed=1)
    assert fit.loglik == pytest.approx(base.loglik, rel=1e-9)


def test_small_coefficients_print_with_significant_digits():
    spec, data, _ = _base("fig1")
    fit = bm.fit_ml(spec, data.assign(x=50000 + 1e4 * data["x"]), starts=2, random_seed=1)
    row = next(line for line in fit.summary().splitlines() if line.startswith("x[c1]"))
    estimate, se = fit.params.loc["x[c1]", ["estimate", "se"]]
    assert abs(estimate) < 1e-3
    assert significant(estimate) in row and significant(se) in row
    assert "0.0000 " not in row


@pytest.fixture(scope="module")
def fig3_nuts_pair():
    """Fig 3 by NUTS on data as simulated and with x x 1e3 and w + 5e4 (same seeds)."""
    spec, data, _ = _base("fig3")
    moved = data.assign(x=data["x"] * 1e3, w=data["w"] + 5e4)
    kwargs = {"draws": 500, "tune": 500, "chains": 2, "random_seed": 3, "ml_starts": 4}
    return bm.fit_bayes(spec, data, **kwargs), bm.fit_bayes(spec, moved, **kwargs)


@pytest.mark.slow
def test_nuts_posterior_does_not_depend_on_the_covariates_units(fig3_nuts_pair):
    import arviz_stats as azs

    base, moved = fig3_nuts_pair
    # the moved fit's draws, mapped to the base data's units (x's coefficients x 1e3, the
    # intercepts and the membership intercept absorb 5e4 times w's coefficients)
    factor = {"x[c1]": 1e3, "x[c2]": 1e3, "C#1 ~ x": 1e3}
    shift = {"1[c1]": "w", "1[c2]": "w", "C#1 ~ 1": "C#1 ~ w"}
    for name in base.names:
        draws = moved.draws[name] * factor.get(name, 1.0)
        if name in shift:
            draws = draws + 5e4 * moved.draws[shift[name]]
        se = np.hypot(
            float(azs.mcse(base.draws[name][..., None])[0]), float(azs.mcse(draws[..., None])[0])
        )
        assert abs(draws.mean() - base.draws[name].mean()) <= 4 * se, name


@pytest.mark.slow
def test_nuts_summary_prints_significant_digits(fig3_nuts_pair):
    _, moved = fig3_nuts_pair
    row = next(line for line in moved.summary().splitlines() if line.startswith("x[c1]"))
    mean, sd = moved.table.loc["x[c1]", ["mean", "sd"]]
    assert abs(mean) < 1e-2
    assert significant(mean) in row and significant(sd) in row
    assert "0.0000 " not in row


def test_x_times_100_converges():
    spec, data, base = _base("fig1")
    fit = bm.fit_ml(spec, data.assign(x=data["x"] * 100), starts=2, random_seed=1)
    assert fit.converged, fit.diagnostics
    assert fit.loglik == pytest.approx(base.loglik, rel=1e-9)


def test_replication_counts_the_starts_at_the_best_starts_optimum():
    # the income-like covariate reported "reached by only 0 of 2 starts"
    spec, data, _ = _base("fig1")
    fit = bm.fit_ml(spec, data.assign(x=50000 + 1e4 * data["x"]), starts=2, random_seed=1)
    assert fit.starts.replicated >= 1
    assert not any("only 0 of" in note.message for note in fit.diagnostics)


def test_polish_stops_on_the_gradient_not_on_the_gain():
    # a log-likelihood with the curvature of 10^6 observations: at a gradient of 0.004 a
    # Newton step gains 8e-12, below what a sum over them resolves, and is still needed
    from bayesmix.ml.optimise import GRADIENT_TOL, _polish, _Run

    n, curvature = 10**6, 1e6
    optimum = np.array([0.3, -0.2])

    def fun(theta):
        d = theta - optimum
        ll = -0.5 * curvature * float(d @ d)
        return -ll / n, curvature * d / n

    start = optimum + np.array([0.004, -0.001]) / curvature
    run, _ = _polish(fun, _Run(start, 0.0, True, 1, ""), n, [(None, None)] * 2)
    assert np.max(np.abs(fun(run.theta)[1] * n)) < 0.1 * GRADIENT_TOL
