"""The pointwise pass over many draws at once against the compiled per-draw function."""

from __future__ import annotations

import numpy as np
import pytest

import bayesmix as bm
from bayesmix.data.design import build_design
from bayesmix.density.batched import pointwise_draws
from bayesmix.density.compiled import pointwise
from bayesmix.paper.section2 import FIG3_PARAMS


@pytest.mark.parametrize(("name", "classes"), [("hsb_A", 3), ("fig3", 2), ("hsb_1", 1)])
def test_blocks_of_draws_equal_the_compiled_function(name, classes):
    spec = bm.load_spec(bm.model_file(name))
    if classes > 1:
        spec = bm.load_spec(bm.model_file(name), classes=classes)
    data = "hsb"
    if name == "fig3":
        data = bm.simulate(spec, FIG3_PARAMS, clusters=40, cluster_size=8, random_seed=2)
    design = build_design(spec, data)
    lay = design.layout
    rng = np.random.default_rng(5)
    draws = [lay.unpack(rng.normal(scale=0.3, size=lay.n_params)) for _ in range(4)]
    n, K = design.n_obs, spec.classes
    offset = rng.normal(size=(4, n))
    member = rng.normal(size=(4, n, K - 1)) if K > 1 else None
    ll, post = pointwise_draws(
        np.stack([d.beta for d in draws]),
        np.stack([d.lsig for d in draws]),
        np.stack([d.gamma for d in draws]),
        offset,
        member,
        design.y,
        design.F,
        design.Z,
        design.V,
    )
    args = (design.y, design.F, design.Z, design.V)
    for i, d in enumerate(draws):
        m = np.zeros((n, K - 1)) if member is None else member[i]
        call = (d.beta, d.lsig, d.gamma, offset[i], m, *args)
        ll_ref, post_ref = pointwise(lay, "jax", call)(*call)
        np.testing.assert_allclose(ll[i], ll_ref, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(post[i], post_ref, rtol=0, atol=1e-12)
