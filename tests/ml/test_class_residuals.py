"""Class-specific residual variances combined with models 1b (log-linear) and 1c (groups)."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import bayesmix as bm
from bayesmix.bayes.draws import structured_draws
from bayesmix.bayes.model import sampling_model
from bayesmix.data.design import build_design
from bayesmix.density.compiled import loglik_and_grad
from bayesmix.model import params as param_layout
from bayesmix.model.priors import resolve_priors

LOGLIN = {
    "1[c1]": 3.0, "1[c2]": -1.0, "x[c1]": 1.0, "x[c2]": -0.5,
    "log(sigma2) ~ 1[c1]": -1.0, "log(sigma2) ~ x[c1]": 0.6,
    "log(sigma2) ~ 1[c2]": 0.5, "log(sigma2) ~ x[c2]": -0.4,
    "C#1 ~ 1": 0.2, "C#1 ~ x": 0.8,
}  # fmt: skip

GROUPS = {
    "1[c1]": 3.0, "1[c2]": -1.0, "x": 0.5, "var(u_1)": 0.2,
    "sigma2[v=0,c1]": 0.3, "sigma2[v=1,c1]": 1.2,
    "sigma2[v=0,c2]": 2.0, "sigma2[v=1,c2]": 0.5,
    "C#1 ~ 1": 0.0,
}  # fmt: skip


def _one_draw(model, point) -> xr.Dataset:
    """The model's variables on their natural scale at ``point``, as a 1 x 1 posterior."""
    outs = model.unobserved_value_vars
    values = model.compile_fn(outs, inputs=model.value_vars, on_unused_input="ignore")(point)
    return xr.Dataset(
        {
            var.name: (
                ("chain", "draw", *(f"{var.name}_{i}" for i in range(np.ndim(v)))),
                np.asarray(v)[None, None],
            )
            for var, v in zip(outs, values, strict=True)
        }
    )


def loglin_spec() -> bm.Spec:
    return bm.make_spec(
        "y ~ x",
        classes=2,
        class_varying=["1", "x"],
        membership="x",
        residual_variance="class",
        residual_covariates="x",
        name="loglin2",
    )


def groups_spec() -> bm.Spec:
    return bm.make_spec(
        "y ~ x",
        classes=2,
        class_varying=["1"],
        cluster="g",
        random="1",
        residual_variance="class",
        residual_groups="v",
        name="groups2",
    )


def test_names_are_class_major_and_round_trip():
    assert param_layout.param_names(loglin_spec()) == list(LOGLIN)
    data = bm.simulate(groups_spec(), GROUPS, clusters=40, cluster_size=5, random_seed=3)
    lay = build_design(groups_spec(), data).layout
    assert lay.names == list(GROUPS)
    natural = np.array([GROUPS[n] for n in lay.names])
    params = lay.unpack(natural, natural=True)
    np.testing.assert_allclose(np.exp(params.lsig), [[0.3, 1.2], [2.0, 0.5]], rtol=1e-12)
    np.testing.assert_allclose(lay.pack(params), natural, rtol=1e-12)
    np.testing.assert_allclose(lay.to_natural(lay.to_theta(natural)), natural, rtol=1e-12)


def test_class_specific_log_linear_variance_is_recovered_by_ml():
    data = bm.simulate(loglin_spec(), LOGLIN, n=4000, random_seed=11)
    fit = bm.fit_ml(loglin_spec(), data, starts=10, random_seed=1)
    assert fit.converged
    for name, truth in LOGLIN.items():
        est, se = fit.params.loc[name, ["estimate", "se"]]
        assert abs(est - truth) < 3 * se, f"{name}: {est:.3f} vs {truth} (SE {se:.3f})"
    # the classes really differ in how the variance moves with x
    diff = (
        fit.params.loc["log(sigma2) ~ x[c1]", "estimate"]
        - fit.params.loc["log(sigma2) ~ x[c2]", "estimate"]
    )
    assert diff > 0.7


def test_bayes_model_density_and_draws_match_the_layout():
    """The PyMC model's observed density at the ML estimates is the ML log-likelihood,
    and its free variables map back onto the same parameters."""
    data = bm.simulate(loglin_spec(), LOGLIN, n=600, random_seed=5)
    design = build_design(loglin_spec(), data)
    lay = design.layout
    params = lay.from_named(LOGLIN)
    model = sampling_model(design, resolve_priors(design, None), params)
    point = model.initial_point()
    ll_model = float(model.compile_logp(vars=[model["y"]], sum=True)(point))
    theta = lay.pack(params, natural=False)
    ll_ml = float(loglik_and_grad(lay)(theta, *design.likelihood_args())[0])
    assert ll_model == pytest.approx(ll_ml, rel=1e-10)
    posterior = _one_draw(model, point)
    draws = structured_draws(posterior, design)
    np.testing.assert_allclose(draws.lsig[0, 0], params.lsig, atol=1e-12)
    np.testing.assert_allclose(draws.beta[0, 0], params.beta, atol=1e-12)


def test_bayes_groups_by_class_map_back():
    data = bm.simulate(groups_spec(), GROUPS, clusters=40, cluster_size=5, random_seed=3)
    design = build_design(groups_spec(), data)
    params = design.layout.from_named(GROUPS)
    model = sampling_model(design, resolve_priors(design, None), params)
    assert model.named_vars_to_dims["sigma"] == ("class", "group")
    point = model.initial_point()
    posterior = _one_draw(model, point)
    draws = structured_draws(posterior, design)
    np.testing.assert_allclose(np.exp(draws.lsig[0, 0]), [[0.3, 1.2], [2.0, 0.5]], rtol=1e-10)


@pytest.mark.slow
def test_class_specific_group_variances_in_a_two_level_mixture():
    data = bm.simulate(groups_spec(), GROUPS, clusters=150, cluster_size=20, random_seed=4)
    fit = bm.fit_ml(groups_spec(), data, starts=8, random_seed=1)
    assert fit.converged
    for name, truth in GROUPS.items():
        est, se = fit.params.loc[name, ["estimate", "se"]]
        assert abs(est - truth) < 3 * se, f"{name}: {est:.3f} vs {truth} (SE {se:.3f})"
