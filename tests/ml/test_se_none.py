"""Fits without standard errors (se="none"), as the bootstrap LRT makes them."""

from __future__ import annotations

import numpy as np
import pytest

import bayesmix as bm
from bayesmix.data.design import build_design
from bayesmix.data.simulate import simulate_outcome
from bayesmix.paper.section2 import FIG1_PARAMS
from tests.support.paths import MODELS


def test_se_none_gives_the_same_fit_without_standard_errors(tmp_path) -> None:
    spec = bm.load_spec(MODELS / "fig1.toml")
    data = bm.simulate(spec, FIG1_PARAMS, n=400, random_seed=8)
    full = bm.fit_ml(spec, data, starts=4, random_seed=1)
    bare = bm.fit_ml(spec, data, starts=4, random_seed=1, se="none")
    assert bare.loglik == pytest.approx(full.loglik, abs=1e-8)
    np.testing.assert_allclose(bare.estimates, full.estimates, atol=1e-6)
    assert bare.se_type == "none" and np.isnan(bare.se).all() and np.isnan(bare.cov).all()
    loaded = bm.load_result(bare.save(tmp_path / "bare.json"))
    assert loaded.se_type == "none"


def test_simulate_outcome_draws_as_simulate_does() -> None:
    spec = bm.load_spec(MODELS / "fig1.toml")
    data = bm.simulate(spec, FIG1_PARAMS, n=300, random_seed=8)
    design = build_design(spec, data)
    y = simulate_outcome(design, design.layout.from_named(FIG1_PARAMS), np.random.default_rng(3))
    again = bm.simulate(spec, FIG1_PARAMS, covariates=data[["x"]], random_seed=3)
    np.testing.assert_array_equal(y, again["y"].to_numpy())
