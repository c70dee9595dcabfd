"""NUTS implementations: pm.sample's numpyro and blackjax against nutpie on the Fig 3 model.

The JAX samplers must evaluate the fused mixture density through the op's JAX
implementation, return the result nutpie's run returns (same posterior variables,
``diverging``, diagnostics) with posterior means within Monte Carlo error of it, and
reproduce their draws from the same seed.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import re
from typing import Any

import jax
import numpy as np
import pytensor
import pytest
from pymc.sampling.jax import get_jaxified_logp

import bayesmix as bm
from bayesmix.bayes.model import sampling_model
from bayesmix.bayes.sampling import sampler_backend
from bayesmix.data.design import build_design
from bayesmix.density import fused
from bayesmix.density.fused import NormalMixtureLogp
from bayesmix.model.priors import resolve_priors
from tests.support.fits import Fitted, two_level_60x10

JAX_SAMPLERS = ("numpyro", "blackjax")

# two chains, enough for means within a few Monte Carlo errors of nutpie's
RUN = {"draws": 300, "tune": 300, "chains": 2, "random_seed": 7, "progress": False}


@pytest.fixture(scope="module")
def fig3() -> Fitted:
    """Fig 3 data, 60 schools x 10 students, and their ML fit (the chains' start)."""
    return two_level_60x10("fig3")


@pytest.fixture(scope="module")
def nutpie_fit(fig3: Fitted) -> bm.BayesResult:
    return bm.fit_bayes(fig3.spec, fig3.data, init=fig3.ml, **RUN)


def _spy_fused(monkeypatch: pytest.MonkeyPatch) -> list[type]:
    """Record the array types of the class means that the fused op's array implementation
    is called with.

    The op's JAX dispatch calls this module-level function with ``jax.numpy``; under
    ``jax.jit`` the arguments that depend on the parameters are tracers (the outcome,
    data, stays an array).
    """
    seen: list[type] = []
    original = fused._mixture_terms

    def spy(y: Any, mu: Any, lsig: Any, eta: Any, xp: Any = np) -> Any:
        seen.append(type(mu))
        return original(y, mu, lsig, eta, xp)

    monkeypatch.setattr(fused, "_mixture_terms", spy)
    return seen


def _traced(seen: list[type]) -> bool:
    return any(issubclass(kind, jax.core.Tracer) for kind in seen)


def test_jax_log_density_runs_the_fused_op(fig3: Fitted, monkeypatch: pytest.MonkeyPatch):
    design = build_design(fig3.spec, fig3.data)
    model = sampling_model(design, resolve_priors(design, None))
    fused.register_jax()  # as every bayesmix path to a JAX compilation does
    # the op stays in the graph that pytensor's JAX rewrites leave
    compiled = pytensor.function(model.value_vars, model.logp(), mode="JAX")
    assert any(isinstance(n.op, NormalMixtureLogp) for n in compiled.maker.fgraph.apply_nodes)
    # and the log density that pm.sample's JAX samplers compile runs its JAX implementation
    seen = _spy_fused(monkeypatch)
    logp = jax.jit(get_jaxified_logp(model))
    point = model.initial_point()
    value = logp([point[v.name] for v in model.value_vars])
    assert _traced(seen)
    assert float(value) == pytest.approx(float(model.compile_logp()(point)), rel=1e-9)


def _check_same_result(fit: bm.BayesResult, ref: bm.BayesResult, sampler: str) -> None:
    """``fit`` is the result nutpie's run ``ref`` gives, its posterior the same within MC error."""
    assert isinstance(fit, bm.BayesResult)
    assert fit.settings["sampler"] == sampler
    assert set(fit.idata.children) == set(ref.idata.children)
    for group in ("posterior", "sample_space"):
        assert set(fit.idata[group].data_vars) == set(ref.idata[group].data_vars)
    for group in fit.idata.children.values():
        assert all(isinstance(v.data, np.ndarray) for v in group.data_vars.values())
    assert set(fit.idata["log_likelihood"].data_vars) == {"y"}
    assert fit.idata["sample_stats"]["diverging"].shape == (2, 300)
    assert fit.divergences == 0
    assert not fit.labels.switched
    assert list(fit.table.index) == list(ref.table.index)
    # the same checks: 600 draws are too few for the bulk ESS of var(u_C#1) in every run
    codes = {d.code for d in fit.diagnostics}
    assert "ess" in codes and "ess" in {d.code for d in ref.diagnostics}
    assert codes <= {"ess", "rhat", "pareto_k"}, codes
    # posterior means within four Monte Carlo standard errors of the difference
    a, b = fit.table, ref.table
    mcse = np.sqrt(a["sd"] ** 2 / a["ess_bulk"] + b["sd"] ** 2 / b["ess_bulk"])
    z = (a["mean"] - b["mean"]).abs() / mcse
    assert (z < 4.0).all(), z.round(2).to_dict()
    assert a["sd"].to_numpy() == pytest.approx(b["sd"].to_numpy(), rel=0.3)


@pytest.mark.slow
@pytest.mark.parametrize("sampler", JAX_SAMPLERS)
def test_jax_sampler_agrees_with_nutpie(
    fig3: Fitted, nutpie_fit: bm.BayesResult, sampler: str, monkeypatch: pytest.MonkeyPatch
):
    seen = _spy_fused(monkeypatch)
    fit = bm.fit_bayes(fig3.spec, fig3.data, init=fig3.ml, sampler=sampler, **RUN)
    # the sampler's compiled log density ran the fused op's JAX implementation
    assert _traced(seen)
    assert fit.settings["backend"] == "jax"
    _check_same_result(fit, nutpie_fit, sampler)
    # the same seed, the same draws
    again = bm.fit_bayes(fig3.spec, fig3.data, init=fig3.ml, sampler=sampler, **RUN)
    for name in fit.names:
        np.testing.assert_array_equal(again.draws[name], fit.draws[name])


@pytest.mark.long
def test_pymc_sampler_agrees_with_nutpie(fig3: Fitted, nutpie_fit: bm.BayesResult):
    fit = bm.fit_bayes(fig3.spec, fig3.data, init=fig3.ml, sampler="pymc", **RUN)
    assert fit.settings["backend"] == "numba"
    assert fit.timings["compile_s"] > 0.0
    _check_same_result(fit, nutpie_fit, "pymc")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"sampler": "stan"},
            "sampler must be one of 'nutpie', 'pymc', 'numpyro', 'blackjax', got 'stan'",
        ),
        ({"sampler": "numpyro", "backend": "numba"}, "backend='numba' does not apply to"),
        ({"sampler": "pymc", "backend": "jax"}, "sampler='nutpie' with backend='jax'"),
        ({"sampler": "blackjax", "adaptation": "low_rank"}, "adaptation='low_rank' is nutpie's"),
    ],
)
def test_sampler_options_are_checked(fig1_spec, fig1_10k, options, message):
    with pytest.raises(bm.EstimationError, match=re.escape(message)):
        bm.fit_bayes(fig1_spec, fig1_10k.iloc[:100], init="prior", **options)


def test_missing_jax_sampler_package_is_named(fig1_spec, fig1_10k, monkeypatch):
    find_spec = importlib.util.find_spec

    def without_blackjax(name: str, *args: Any) -> Any:
        return None if name == "blackjax" else find_spec(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", without_blackjax)
    with pytest.raises(bm.EstimationError, match=re.escape("pip install 'bayesmix[jax]'")):
        bm.fit_bayes(fig1_spec, fig1_10k.iloc[:100], init="prior", sampler="blackjax")


def test_blackjax_that_pymc_cannot_run_is_refused(fig1_spec, fig1_10k, monkeypatch):
    version = importlib.metadata.version
    monkeypatch.setattr(
        importlib.metadata, "version", lambda name: "1.7.1" if name == "blackjax" else version(name)
    )
    with pytest.raises(bm.EstimationError, match=re.escape("pip install 'blackjax<1.6'")):
        bm.fit_bayes(fig1_spec, fig1_10k.iloc[:100], init="prior", sampler="blackjax")


@pytest.mark.parametrize(("value", "backend"), [("", "numba"), ("numba", "numba"), ("jax", "jax")])
def test_nutpie_compiler_defaults_to_the_environment(monkeypatch, value, backend):
    monkeypatch.setenv("BAYESMIX_NUTS_BACKEND", value)
    assert sampler_backend("nutpie", None, "diag") == backend
    # a backend named in the call wins, and the other samplers keep their own
    assert sampler_backend("nutpie", "numba", "diag") == "numba"
    assert sampler_backend("pymc", None, "diag") == "numba"


def test_unknown_compiler_in_the_environment_is_refused(fig1_spec, fig1_10k, monkeypatch):
    monkeypatch.setenv("BAYESMIX_NUTS_BACKEND", "cuda")
    with pytest.raises(bm.EstimationError, match=re.escape("BAYESMIX_NUTS_BACKEND='cuda'")):
        bm.fit_bayes(fig1_spec, fig1_10k.iloc[:100], init="prior")
