"""PSIS-LOO vectorised over observations against ArviZ's own, one observation at a time."""

from __future__ import annotations

import warnings

import arviz_base as azb
import arviz_stats as azs
import numpy as np
import pytest

from bayesmix.analysis import psis


def _assert_same(ours, theirs) -> None:
    assert ours.elpd == pytest.approx(float(theirs.elpd), rel=1e-12)
    assert ours.se == pytest.approx(float(theirs.se), rel=1e-10)
    assert ours.p == pytest.approx(float(theirs.p), rel=1e-10, abs=1e-10)
    assert ours.good_k == theirs.good_k
    assert ours.warning == theirs.warning
    assert (ours.n_samples, ours.n_data_points) == (theirs.n_samples, theirs.n_data_points)
    np.testing.assert_allclose(ours.elpd_i.values, theirs.elpd_i.values, rtol=0, atol=1e-11)
    np.testing.assert_allclose(
        ours.pareto_k.values, theirs.pareto_k.values, rtol=0, atol=1e-10, equal_nan=True
    )
    assert ours.log_weights.dims == theirs.log_weights.dims
    np.testing.assert_allclose(
        ours.log_weights.values, theirs.log_weights.values, rtol=0, atol=1e-10
    )


def test_a_fits_loo_is_arviz_loo_of_its_datatree(fig3_bayes):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        theirs = azs.loo(fig3_bayes.idata)
    _assert_same(fig3_bayes.loo, theirs)
    assert fig3_bayes.loo.elpd_i.dims == theirs.elpd_i.dims


def test_heavy_tails_and_undefined_fits_match_arviz():
    rng = np.random.default_rng(3)
    ll = rng.normal(-1.0, 0.3, size=(4, 500, 120))
    # influential observations: Pareto k above 0.7, some above 1
    ll[:, :, :30] += 3.0 * rng.standard_t(1.5, size=(4, 500, 30))
    # a tail of equal exceedances up to its first quartile: no generalised Pareto fit
    ll[:, :, 30] = np.where(rng.random((4, 500)) < 0.97, 0.0, -1.0)
    ll[0, :10, 30] = -1.0 - np.arange(10) * 0.1
    tree = azb.from_dict(
        {"posterior": {"a": rng.normal(size=(4, 500, 2))}, "log_likelihood": {"y": ll}},
        dims={"y": ["student"]},
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        theirs = azs.loo(tree)
    ours = psis.loo(tree)
    assert np.sum(theirs.pareto_k.values > 1) > 0
    _assert_same(ours, theirs)


def test_several_log_likelihoods_need_a_name():
    rng = np.random.default_rng(0)
    tree = azb.from_dict(
        {
            "posterior": {"a": rng.normal(size=(2, 100))},
            "log_likelihood": {"y": rng.normal(size=(2, 100, 5)), "z": rng.normal(size=(2, 100))},
        }
    )
    names = r"\['y', 'z'\]"
    with pytest.raises(ValueError, match=f"var_name is needed: the log-likelihood has {names}"):
        psis.loo(tree)
