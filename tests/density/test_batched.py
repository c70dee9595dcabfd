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
        np.testing.assert_allclose(post[:, i].T, post_ref, rtol=0, atol=1e-12)


def test_the_pass_over_chains_and_draws_adds_each_schools_effects():
    from bayesmix.bayes import draws as draws_module
    from bayesmix.model.params import Params

    spec = bm.load_spec(bm.model_file("hsb_A"), classes=3)
    design = build_design(spec, "hsb")
    lay, n = design.layout, design.n_obs
    r = len(spec.random)
    rng = np.random.default_rng(11)
    chains, per_chain = 2, 3
    params = [lay.unpack(rng.normal(scale=0.3, size=lay.n_params)) for _ in range(6)]

    def stacked(field):
        values = [np.asarray(getattr(p, field)) for p in params]
        return np.stack(values).reshape(chains, per_chain, *values[0].shape)

    draws = Params(
        beta=stacked("beta"),
        lsig=stacked("lsig"),
        gamma=stacked("gamma"),
        chol=None,
        load=stacked("load"),
    )
    u = rng.normal(size=(chains, per_chain, design.n_clusters, lay.n_random))
    out = draws_module._pointwise_draws(draws, design, u)
    args = (design.y, design.F, design.Z, design.V)
    post = np.zeros((chains, n, spec.classes))
    for ch in range(chains):
        for d in range(per_chain):
            p = params[ch * per_chain + d]
            ui = u[ch, d][design.cluster]
            offset = np.sum(design.R * ui[:, :r], axis=1)
            member = ui[:, r:] @ np.asarray(p.load).T
            call = (p.beta, p.lsig, p.gamma, offset, member, *args)
            ll, pp = pointwise(lay, "jax", call)(*call)
            np.testing.assert_allclose(out.loglik[ch, d], ll, rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(out.class_share[ch, d], pp.mean(axis=0), atol=1e-12)
            post[ch] += pp / per_chain
    np.testing.assert_allclose(out.chain_post, post, atol=1e-12)
