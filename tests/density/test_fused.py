"""The one-pass normal-mixture density against the pytensor graph it replaces."""

from __future__ import annotations

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from bayesmix.density.fused import (
    _BLOCK,
    NormalMixtureLogp,
    _mixture_terms,
    normal_mixture_logp,
    numba_kernels,
    register_jax,
)
from bayesmix.density.likelihood import log_class_probs, mixture_logp


def _inputs(k: int, n: int = 40, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.normal(size=n)
    mu = rng.normal(size=(n, k))
    # one observation far from every class mean, and logits far beyond +-30
    mu[0] = y[0] + 40.0 * np.arange(1, k + 1)
    lsig = 0.3 * rng.normal(size=k)
    eta = 2.0 * rng.normal(size=(n, k - 1))
    eta[1] = 60.0
    eta[2] = -60.0
    return [y, mu, lsig, eta]


def _functions(
    mode: str, n: int, k: int
) -> tuple[pytensor.compile.Function, pytensor.compile.Function]:
    # static shapes, which the JAX backend needs for the graph's split of the logits
    vs = [
        pt.tensor("y", shape=(n,)),
        pt.tensor("mu", shape=(n, k)),
        pt.tensor("lsig", shape=(k,)),
        pt.tensor("eta", shape=(n, k - 1)),
    ]
    fused = pt.sum(normal_mixture_logp(*vs)[0])
    graph = pt.sum(mixture_logp(vs[0], vs[1], pt.exp(vs[2])[None, :], log_class_probs(vs[3])))
    out = [
        pytensor.function(vs, [total, *pytensor.grad(total, vs[1:])], mode=mode)
        for total in (fused, graph)
    ]
    return out[0], out[1]


@pytest.mark.parametrize("k", [2, 3, 4])
@pytest.mark.parametrize("mode", ["NUMBA", "FAST_COMPILE", "JAX"])
def test_density_and_gradient_match_the_graph(k: int, mode: str) -> None:
    register_jax()
    args = _inputs(k)
    fused, graph = _functions(mode, 40, k)
    got, want = fused(*args), graph(*args)
    assert abs(float(got[0]) - float(want[0])) < 1e-9 * abs(float(want[0]))
    for g, w in zip(got[1:], want[1:], strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("k", [2, 3])
def test_blocks_of_students_match_the_graph(k: int) -> None:
    # two full blocks and a partial one, in the numba kernels
    n = 2 * _BLOCK + 37
    args = _inputs(k, n=n, seed=5)
    args[1][n - 1] = args[0][n - 1] + 40.0 * np.arange(1, k + 1)
    fused, graph = _functions("NUMBA", n, k)
    got, want = fused(*args), graph(*args)
    assert abs(float(got[0]) - float(want[0])) < 1e-12 * abs(float(want[0]))
    for g, w in zip(got[1:], want[1:], strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-12)


def _vector_exp(x: np.ndarray) -> np.ndarray:
    import numba

    exp_nonpositive = numba_kernels()[0]

    @numba.njit
    def run(v: np.ndarray) -> np.ndarray:
        out = v.copy()
        exp_nonpositive(out, np.empty(out.shape[0], np.int64))
        return out

    return run(x)


def test_vectorised_exp_is_accurate_to_two_units_in_the_last_place() -> None:
    rng = np.random.default_rng(0)
    x = np.concatenate([-rng.exponential(5.0, 20000), -rng.uniform(0, 708, 20000), [0.0, -708.0]])
    got = _vector_exp(x)
    # against numpy's exp, itself within an ulp of exp; 2 ulp = 4.4e-16
    assert np.max(np.abs(got / np.exp(x) - 1.0)) < 4.5e-16


def test_vectorised_exp_floors_at_exp_minus_708_and_keeps_nan() -> None:
    got = _vector_exp(np.array([-709.0, -1e6, -np.inf, np.nan, -1e-300]))
    np.testing.assert_allclose(got[:3], np.exp(-708.0), rtol=1e-15)
    assert np.isnan(got[3])
    assert got[4] == 1.0


@pytest.mark.parametrize("k", [2, 3])
def test_a_nan_mean_gives_a_nan_density(k: int) -> None:
    # NUTS must see a non-finite density, not a class silently dropped
    y, mu, lsig, eta = _inputs(k, n=5, seed=1)
    mu[3, k - 1] = np.nan
    fused, _ = _functions("NUMBA", 5, k)
    assert np.isnan(float(fused(y, mu, lsig, eta)[0]))


def test_gradient_matches_finite_differences() -> None:
    y, mu, lsig, eta = _inputs(3, n=6, seed=3)
    eta[1:3] = 0.5  # keep every term smooth for the differences
    mu[0] = y[0] + np.array([0.5, -1.0, 2.0])
    fused, _ = _functions("NUMBA", 6, 3)
    _, g_mu, g_lsig, g_eta = fused(y, mu, lsig, eta)
    h = 1e-6
    for arg, grad in ((mu, g_mu), (lsig, g_lsig), (eta, g_eta)):
        for idx in np.ndindex(arg.shape):
            saved = arg[idx]
            arg[idx] = saved + h
            up = float(fused(y, mu, lsig, eta)[0])
            arg[idx] = saved - h
            down = float(fused(y, mu, lsig, eta)[0])
            arg[idx] = saved
            assert abs((up - down) / (2 * h) - grad[idx]) < 1e-6


def test_one_class_dominating_gives_its_normal_density() -> None:
    y = np.array([0.3])
    mu = np.array([[0.0, 50.0]])
    lsig = np.array([0.0, 0.0])
    eta = np.array([[0.0]])
    logp = _mixture_terms(y, mu, lsig, eta)[0]
    # class 2 is 50 SDs away: the mixture is half the class 1 density
    assert logp[0] == pytest.approx(np.log(0.5) - 0.5 * np.log(2 * np.pi) - 0.045, abs=1e-12)


def test_only_the_density_has_a_gradient() -> None:
    vs = [pt.vector("y"), pt.matrix("mu"), pt.vector("lsig"), pt.matrix("eta")]
    weights = normal_mixture_logp(*vs)[3]
    with pytest.raises(NotImplementedError, match="only the log density"):
        pytensor.grad(pt.sum(weights), vs[1])


def test_output_shapes_are_inferred_without_running_the_op() -> None:
    y, lsig = pt.dvector("y"), pt.dvector("lsig")
    mu, eta = pt.dmatrix("mu"), pt.dmatrix("eta")
    outputs = NormalMixtureLogp()(y, mu, lsig, eta)
    fn = pytensor.function([y, mu, lsig, eta], [o.shape for o in outputs])
    assert not any(isinstance(node.op, NormalMixtureLogp) for node in fn.maker.fgraph.apply_nodes)
    shapes = fn(np.zeros(5), np.zeros((5, 3)), np.zeros(3), np.zeros((5, 2)))
    assert [tuple(s) for s in shapes] == [(5,), (5, 3), (5, 3), (5, 2)]
