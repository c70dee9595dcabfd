"""The order in which NUTS samples the Cholesky factor of the school residual covariance."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pymc as pm
import pytensor.tensor as pt
import pytest

import bayesmix as bm
from bayesmix.bayes.model import sampling_model
from bayesmix.bayes.residuals import residual_order
from bayesmix.data.design import build_design
from bayesmix.model.priors import resolve_priors
from tests.support.paths import MODELS


@pytest.fixture(scope="module")
def design():
    spec = bm.load_spec(MODELS / "hsb_B.toml", classes=3)
    hsb = bm.datasets.load_hsb()
    return build_design(spec, hsb[hsb["school"].isin(hsb["school"].unique()[:30])])


def _start(design, corr: float):
    """The role of the ML estimates: var(u_1) 0.76, var(u_female) 0.08, var(u_f) 0.49 and
    corr(u_1, u_female) ``corr``."""
    lay = design.layout
    params = lay.unpack(np.zeros(lay.n_params))
    sd = np.sqrt([0.76, 0.08, 0.49])
    cov = np.diag(sd**2)
    cov[0, 1] = cov[1, 0] = corr * sd[0] * sd[1]
    return replace(params, chol=np.linalg.cholesky(cov))


def test_the_residual_the_others_determine_goes_last(design):
    assert list(residual_order(design, _start(design, -0.997))) == [0, 2, 1]
    assert list(residual_order(design, _start(design, -0.997), lead=1)) == [0, 2, 1]
    # nothing nearly determined: the spec's order, as without ML estimates
    assert list(residual_order(design, _start(design, -0.3))) == [0, 1, 2]
    assert list(residual_order(design, None)) == [0, 1, 2]


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


def test_draws_record_the_factor_in_the_spec_order(design):
    start = _start(design, -0.997)
    model = sampling_model(design, resolve_priors(design, None), start)
    free = [rv.name for rv in model.free_RVs]
    assert "chol_u_ordered" in free and "chol_u" not in free
    # the standardised residuals are labelled in the sampled order, u in the spec's
    effects = list(design.spec.random_effects)
    assert model.named_vars_to_dims["u"] == ("cluster", "rterm")
    assert list(model.coords["rterm"]) == effects
    if "z_u" in model.named_vars:
        assert list(model.coords["zterm"]) == [effects[k] for k in (0, 2, 1)]
    else:
        assert list(model.coords["mrterm"]) == [effects[2], effects[1]]
    names = ["chol_u_ordered", "chol_u", "chol_u_stds", "chol_u_corr"]
    outs = model.replace_rvs_by_values([model[n] for n in names])
    fn = model.compile_fn(
        outs, inputs=model.value_vars, mode="FAST_COMPILE", on_unused_input="ignore"
    )
    packed, chol_packed, stds, corr = fn(model.initial_point())
    rows, cols = np.tril_indices(3)
    ordered = np.zeros((3, 3))
    ordered[rows, cols] = packed
    factor = ordered[np.argsort([0, 2, 1])]
    cov = factor @ factor.T
    chol = np.zeros((3, 3))
    chol[rows, cols] = chol_packed
    np.testing.assert_allclose(chol, np.linalg.cholesky(cov), rtol=1e-10)
    np.testing.assert_allclose(stds, np.sqrt(np.diag(cov)), rtol=1e-12)
    np.testing.assert_allclose(corr, cov / np.outer(stds, stds), rtol=1e-12)
    # the start is the Cholesky factor of the ML covariance in the sampled order (below its
    # first column, diagonals near 0 are raised to 0.05 prior SDs, and entries of exactly 0
    # start at 1e-3 prior SDs, where their gradient would be exactly 0)
    ml = start.chol @ start.chol.T
    expected = np.linalg.cholesky(ml[np.ix_([0, 2, 1], [0, 2, 1])])
    priors = resolve_priors(design, None)
    scales = np.array([priors[f"sd(u_{t})"].sigma for t in effects])[[0, 2, 1]]
    zero = np.tril(expected == 0.0, -1)
    expected[zero] = 1e-3 * np.broadcast_to(scales[:, None], (3, 3))[zero]
    np.testing.assert_allclose(ordered[:, 0], expected[:, 0], rtol=1e-10)
    np.testing.assert_allclose(ordered[2, :2], expected[2, :2], rtol=1e-10)
