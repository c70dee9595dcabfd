"""The one-class closed form in numpy against the likelihood's pytensor graph."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import bayesmix as bm
from bayesmix.data.design import build_design
from bayesmix.data.standardise import standardise
from bayesmix.density import gaussian
from bayesmix.density.compiled import loglik_and_grad
from bayesmix.errors import EstimationError


def _designs():
    hsb_1 = bm.load_spec(bm.model_file("hsb_1"))
    yield "hsb_1", hsb_1
    yield "hsb_1b", bm.load_spec(bm.model_file("hsb_1b"))
    yield "hsb_1c", bm.load_spec(bm.model_file("hsb_1c"))
    yield "diagonal", dataclasses.replace(hsb_1, name="diagonal", covariance="diagonal")
    yield (
        "intercept only",
        bm.make_spec("math ~ female + ses", name="intercept", cluster="school", random=["1"]),
    )
    yield "single level", bm.make_spec("math ~ female + ses + catholic", name="single")


CASES = list(_designs())


@pytest.mark.parametrize("spec", [s for _, s in CASES], ids=[n for n, _ in CASES])
def test_loglik_and_gradient_equal_the_pytensor_graph(spec):
    design, _ = standardise(build_design(spec, "hsb"))
    lay, args = design.layout, design.likelihood_args()
    y, F, R, _, V, bounds = args
    compiled = loglik_and_grad(lay, args, "jax")
    rng = np.random.default_rng(7)
    for k in range(4):
        theta = rng.normal(scale=0.4, size=lay.n_params)
        if k == 3 and lay.n_random:
            # a variance at its boundary 0: the Cholesky factor is singular
            theta[lay._slices()["cov"].start] = 0.0
        ll_ref, grad_ref = compiled(theta, *args)
        ll, grad = gaussian.loglik_and_grad(lay, theta, y, F, R, V, bounds)
        assert ll == pytest.approx(float(ll_ref), rel=1e-12)
        scale = np.max(np.abs(grad_ref))
        np.testing.assert_allclose(grad, np.asarray(grad_ref), rtol=0, atol=1e-11 * scale)


def test_numpy_and_jax_fits_agree():
    spec = bm.load_spec(bm.model_file("hsb_1"))
    numpy_fit = bm.fit_ml(spec, "hsb")
    jax_fit = bm.fit_ml(spec, "hsb", backend="jax")
    assert numpy_fit.timings["compile_s"] == 0.0
    assert numpy_fit.loglik == pytest.approx(jax_fit.loglik, abs=1e-8)
    assert numpy_fit.loglik == pytest.approx(-23214.496, abs=1e-3)
    np.testing.assert_allclose(numpy_fit.estimates, jax_fit.estimates, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(numpy_fit.se, jax_fit.se, rtol=1e-5)


def test_numpy_backend_refuses_mixtures(fig1_spec, fig1_10k):
    with pytest.raises(EstimationError, match="backend='numpy' evaluates one-class models"):
        bm.fit_ml(fig1_spec, fig1_10k.head(300), starts=2, backend="numpy")
