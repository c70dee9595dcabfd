"""The order in which NUTS samples the Cholesky factor of the school residual covariance."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pymc as pm
import pytensor.tensor as pt
import pytest

import bayesmix as bm
from bayesmix.bayes.centring import (
    direct_variance_ratio,
    posterior_variance_ratio,
    school_posterior_covariance,
)
from bayesmix.bayes.model import sampling_model
from bayesmix.bayes.residuals import residual_order
from bayesmix.data.design import build_design
from bayesmix.model.priors import resolve_priors
from bayesmix.paper.section2 import FIG3_PARAMS
from tests.support.paths import MODELS


@pytest.fixture(scope="module")
def design():
    spec = bm.load_spec(MODELS / "hsb_B.toml", classes=3)
    hsb = bm.datasets.load_hsb()
    return build_design(spec, hsb[hsb["school"].isin(hsb["school"].unique()[:30])])


def _start(design, corr: float, var_female: float = 0.08, sigma2: float = 1.0):
    """The role of the ML estimates: var(u_1) 0.76, var(u_female) ``var_female``, var(u_f)
    0.49, corr(u_1, u_female) ``corr`` and the residual variance ``sigma2``."""
    lay = design.layout
    params = lay.unpack(np.zeros(lay.n_params))
    sd = np.sqrt([0.76, var_female, 0.49])
    cov = np.diag(sd**2)
    cov[0, 1] = cov[1, 0] = corr * sd[0] * sd[1]
    lsig = np.full(np.shape(params.lsig), np.log(sigma2))
    return replace(params, chol=np.linalg.cholesky(cov), lsig=lsig)


def test_the_residual_the_others_determine_goes_last(design):
    assert list(residual_order(design, _start(design, -0.997))) == [0, 2, 1]
    assert list(residual_order(design, _start(design, -0.997), lead=1)) == [0, 2, 1]
    # nothing nearly determined: the spec's order, as without ML estimates
    assert list(residual_order(design, _start(design, -0.3))) == [0, 1, 2]
    assert list(residual_order(design, None)) == [0, 1, 2]


def test_a_residual_the_data_say_little_about_goes_after_those_they_inform(design):
    # HSB's residual variance 9 and a female-slope variance of 0.02: the schools' female
    # students determine under a tenth of it (ratio above 0.9), while at variance 0.2
    # they determine more (ratio below 0.9) and the spec's order stays
    # (classes apart in their intercepts, so that the students' classes inform u_f)
    def start(var_female: float):
        params = _start(design, -0.3, var_female=var_female, sigma2=9.0)
        beta = np.array(params.beta, dtype=float)
        beta[:, list(design.spec.fixed_names).index("1")] = [18.0, 12.0, 6.0]
        return replace(params, beta=beta)

    own = direct_variance_ratio(design, start(0.02))
    assert own[1] > 0.9 and own[0] < 0.9 and own[2] < 0.9
    assert list(residual_order(design, start(0.02))) == [0, 2, 1]
    assert 0.8 < direct_variance_ratio(design, start(0.2))[1] < 0.9
    assert list(residual_order(design, start(0.2))) == [0, 1, 2]


def test_direct_ratio_leaves_out_what_correlated_residuals_tell():
    """With independent residuals (Fig 3's), a residual's own ratio is its posterior
    variance over its prior variance given the school's other residuals: no larger than
    the ratio with them unknown, smaller when the school's posterior correlates them."""
    spec = bm.load_spec(MODELS / "fig3.toml")
    data = bm.simulate(spec, FIG3_PARAMS, clusters=30, cluster_size=8, random_seed=3)
    fig3 = build_design(spec, data)
    start = fig3.layout.from_named(FIG3_PARAMS)
    own = direct_variance_ratio(fig3, start)
    posterior = school_posterior_covariance(fig3, start)
    given_others = 1.0 / np.diagonal(np.linalg.inv(posterior), axis1=1, axis2=2)
    np.testing.assert_allclose(own, np.median(given_others, axis=0), rtol=1e-9)
    marginal = posterior_variance_ratio(fig3, start)
    assert np.all(own <= marginal) and np.any(own < marginal - 0.01)
    assert np.all((own > 0.0) & (own < 1.0))


def test_one_class_keeps_the_spec_order():
    spec = bm.load_spec(MODELS / "hsb_1.toml")
    one = build_design(spec, "hsb")
    r = len(spec.random_effects)
    chol = np.eye(r)
    chol[1, 0], chol[1, 1] = 0.999, 0.01
    params = replace(one.layout.unpack(np.zeros(one.layout.n_params)), chol=chol)
    assert list(residual_order(one, params)) == list(range(r))


@pytest.mark.parametrize("order", [[0, 2, 1], [2, 0, 1], [1, 2, 0]])
def test_lkj_and_sd_priors_give_one_covariance_density_in_any_order(order):
    """The density of the covariance matrix (that of its Cholesky factor less the Jacobian
    of Sigma = L L', 2^r prod L_ii^(r - i)) does not depend on the order."""
    r = 3
    scales = np.array([2.0, 1.0, 3.0])
    sigma = np.array([[1.2, -0.5, 0.3], [-0.5, 0.9, 0.2], [0.3, 0.2, 2.0]])

    def density(order: list[int]) -> float:
        chol = np.linalg.cholesky(sigma[np.ix_(order, order)])
        with pm.Model() as model:
            sd = pm.HalfNormal.dist(sigma=scales[order], shape=r)
            pm.LKJCholeskyCov("c", n=r, eta=2.0, sd_dist=sd, compute_corr=False)
        rv = model["c"]
        value = model.rvs_to_transforms[rv].forward(pt.as_tensor(chol[np.tril_indices(r)]))
        logp = model.compile_logp(jacobian=False)({model.rvs_to_values[rv].name: value.eval()})
        jacobian = r * np.log(2.0) + sum((r - 1 - i) * np.log(chol[i, i]) for i in range(r))
        return float(logp) - jacobian

    assert density(order) == pytest.approx(density([0, 1, 2]), abs=1e-10)


def test_sds_and_an_lkj_correlation_factor_give_the_lkj_cholesky_covariance_density():
    """The sampled SDs and correlation factor, through L = diag(sd) L_corr, give the
    Cholesky factor of the covariance the density pm.LKJCholeskyCov gives it. Row i of L
    is sd_i times a unit vector whose first i - 1 entries are free, so the Jacobian is
    prod sd_i^(i - 1) / L_corr_ii."""
    r = 3
    scales = np.array([2.0, 1.0, 3.0])
    rng = np.random.default_rng(0)

    def transformed(model, rv, value):
        transform = model.rvs_to_transforms[rv]
        return transform.forward(pt.as_tensor(value), *rv.owner.inputs[3:]).eval()

    with pm.Model() as joint:
        sd_dist = pm.HalfNormal.dist(sigma=scales, shape=r)
        pm.LKJCholeskyCov("c", n=r, eta=2.0, sd_dist=sd_dist, compute_corr=False)
    with pm.Model() as split:
        pm.HalfNormal("sd", sigma=scales, shape=r)
        pm.LKJCorr("corr", n=r, eta=2.0)
    joint_logp = joint.compile_logp(jacobian=False)
    split_logp = split.compile_logp(jacobian=False)
    for _ in range(5):
        x = rng.normal(size=(r, r))
        sigma = x @ x.T + 0.3 * np.eye(r)
        chol = np.linalg.cholesky(sigma)
        sd = np.sqrt(np.diag(sigma))
        corr = chol / sd[:, None]
        want = joint_logp(
            {"c_cholesky-cov-packed__": transformed(joint, joint["c"], chol[np.tril_indices(r)])}
        )
        point = {
            split.rvs_to_values[split["sd"]].name: transformed(split, split["sd"], sd),
            split.rvs_to_values[split["corr"]].name: transformed(split, split["corr"], corr),
        }
        jacobian = sum(i * np.log(sd[i]) - np.log(corr[i, i]) for i in range(r))
        assert float(split_logp(point)) - jacobian == pytest.approx(float(want), abs=1e-10)


def test_draws_record_the_factor_in_the_spec_order(design):
    start = _start(design, -0.997)
    model = sampling_model(design, resolve_priors(design, None), start)
    free = [rv.name for rv in model.free_RVs]
    assert {"sd_u_ordered", "chol_corr_u_ordered"} <= set(free)
    assert not {"sd_u", "chol_corr_u", "chol_u"} & set(free)
    # the standardised residuals are labelled in the sampled order, u in the spec's
    effects = list(design.spec.random_effects)
    assert model.named_vars_to_dims["u"] == ("cluster", "rterm")
    assert list(model.coords["rterm"]) == effects
    if "z_u" in model.named_vars:
        assert list(model.coords["zterm"]) == [effects[k] for k in (0, 2, 1)]
    else:
        assert list(model.coords["mrterm"]) == [effects[2], effects[1]]
    names = ["sd_u_ordered", "chol_corr_u_ordered", "chol_u", "chol_u_stds", "chol_u_corr"]
    outs = model.replace_rvs_by_values([model[n] for n in names])
    fn = model.compile_fn(
        outs, inputs=model.value_vars, mode="FAST_COMPILE", on_unused_input="ignore"
    )
    sd, corr_factor, chol_packed, stds, corr = fn(model.initial_point())
    rows, cols = np.tril_indices(3)
    factor = (sd[:, None] * corr_factor)[np.argsort([0, 2, 1])]
    cov = factor @ factor.T
    chol = np.zeros((3, 3))
    chol[rows, cols] = chol_packed
    np.testing.assert_allclose(chol, np.linalg.cholesky(cov), rtol=1e-10)
    np.testing.assert_allclose(stds, np.sqrt(np.diag(cov)), rtol=1e-12)
    np.testing.assert_allclose(corr, cov / np.outer(stds, stds), rtol=1e-12)
    # the start: the ML SDs in the sampled order (raised to 0.05 prior SDs) and the
    # Cholesky factor of the ML correlations, whose entries of 0 (u_f is uncorrelated here)
    # start at 1e-3, where the gradient would be exactly 0, the rows kept of unit length
    ml = start.chol @ start.chol.T
    ml = ml[np.ix_([0, 2, 1], [0, 2, 1])]
    priors = resolve_priors(design, None)
    scales = np.array([priors[f"sd(u_{t})"].sigma for t in effects])[[0, 2, 1]]
    ml_sd = np.sqrt(np.diag(ml))
    np.testing.assert_allclose(sd, np.maximum(ml_sd, 0.05 * scales), rtol=1e-10)
    expected = np.linalg.cholesky(ml / np.outer(ml_sd, ml_sd))
    expected[np.tril(expected == 0.0, -1)] = 1e-3
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(corr_factor, expected, rtol=1e-8)


def test_a_correlation_start_on_the_boundary_is_shrunk_to_full_rank():
    from bayesmix.bayes.residuals import _correlation_start

    sd = np.array([0.3, 0.6, 0.0])
    corr = np.array([[1.0, -1.0, 0.0], [-1.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    factor = _correlation_start(corr * np.outer(sd, sd))
    assert np.all(np.isfinite(factor)) and np.diag(factor).min() > 0.1
    np.testing.assert_allclose(np.linalg.norm(factor, axis=1), 1.0, rtol=1e-12)
    implied = factor @ factor.T
    # -1 shrunk by 1/1.01; the variance of 0 leaves its correlations near 0
    assert implied[0, 1] == pytest.approx(-1.0 / 1.01, abs=1e-5)
    assert np.abs(implied[2, :2]).max() < 2e-3
