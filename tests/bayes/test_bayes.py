"""Bayes: the PyMC density equals the ML likelihood; NUTS agrees with ML on Fig 1 data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pymc as pm
import pytensor.tensor as pt
import pytest

import bayesmix as bm
from bayesmix.bayes import compiled_store, sampling
from bayesmix.bayes.draws import check_labels
from bayesmix.bayes.model import sampling_model
from bayesmix.cache.folders import CACHE_VARIABLE
from bayesmix.data.design import build_design
from bayesmix.density.compiled import loglik_and_grad
from bayesmix.errors import SamplingWarning
from bayesmix.model.priors import default_priors, resolve_priors
from bayesmix.paper.section2 import FIG1_PARAMS
from tests.support.settings import SCALED


def _transformed_point(model: pm.Model, values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    point = {}
    for rv in model.free_RVs:
        value = np.asarray(values[rv.name], dtype=float)
        transform = model.rvs_to_transforms[rv]
        if transform is not None:
            value = transform.forward(pt.as_tensor(value)).eval()
        point[model.rvs_to_values[rv].name] = value
    return point


@pytest.mark.parametrize("residual", ["class", "common"])
def test_pymc_density_equals_ml_loglik(fig1_10k, residual):
    spec = bm.make_spec("y ~ x", classes=2, membership="x", residual_variance=residual)
    values = {**FIG1_PARAMS, "1[c2]": 0.4, "C#1 ~ 1": 0.2}
    if residual == "common":
        del values["sigma2[c1]"], values["sigma2[c2]"]
        values["sigma2"] = 1.3
    design = build_design(spec, fig1_10k)
    lay = design.layout
    params = lay.from_named(values)
    model = sampling_model(design, resolve_priors(design, None))
    sigma = np.sqrt(params.sigma2 if residual == "class" else params.sigma2[0])
    point = _transformed_point(
        model,
        {"b_1": params.beta[:, 0], "b_x": params.beta[:, 1], "sigma": sigma, "gamma": params.gamma},
    )
    obs_logp = model.compile_logp(vars=model.observed_RVs, jacobian=False)(point)
    theta = lay.pack(params, natural=False)
    ml_ll = loglik_and_grad(lay)(theta, *design.likelihood_args())[0]
    assert float(obs_logp) == pytest.approx(float(ml_ll), abs=1e-8)


def test_default_priors_scale_with_data(fig1_spec, fig1_10k):
    design = build_design(fig1_spec, fig1_10k)
    wide = fig1_10k.assign(y=fig1_10k["y"] * 1000.0)
    wide_design = build_design(fig1_spec, wide)
    small, big = default_priors(design), default_priors(wide_design)
    assert big["x[c1]"].sigma == pytest.approx(1000 * small["x[c1]"].sigma)
    assert big["sigma"].sigma == pytest.approx(1000 * small["sigma"].sigma)
    assert big["C#1 ~ x"].sigma == pytest.approx(small["C#1 ~ x"].sigma)
    assert small["x[c1]"].sigma == pytest.approx(
        2.5 * fig1_10k["y"].std(ddof=0) / fig1_10k["x"].std(ddof=0)
    )


def test_prior_overrides_are_checked(fig1_spec, fig1_10k):
    design = build_design(fig1_spec, fig1_10k)
    priors = resolve_priors(design, {"x": bm.Prior("normal", 0.0, 10.0)})
    assert priors["x[c1]"].sigma == 10.0 and priors["x[c2]"].sigma == 10.0
    with pytest.raises(bm.SpecError, match="names no parameter"):
        resolve_priors(design, {"z": bm.Prior("normal")})
    with pytest.raises(bm.SpecError, match="must be one of"):
        resolve_priors(design, {"sigma": bm.Prior("normal")})
    with pytest.raises(bm.SpecError, match="scale sigma must be positive"):
        bm.Prior("normal", 0.0, -1.0)


def test_label_check_detects_permuted_chain():
    rng = np.random.default_rng(0)
    post = rng.dirichlet([0.3, 0.3, 0.3], size=500)
    same = np.stack([post, post, post])
    assert not check_labels(same).switched
    swapped = np.stack([post, post[:, [1, 0, 2]], post])
    check = check_labels(swapped)
    assert check.switched
    assert check.permutations[1] == (1, 0, 2)
    assert check.permutations[0] == (0, 1, 2)


@pytest.mark.slow
def test_nuts_agrees_with_ml_on_fig1(fig1_spec, fig1_10k, fig1_10k_ml):
    ml = fig1_10k_ml
    fit = bm.fit_bayes(fig1_spec, fig1_10k, **SCALED.kwargs(random_seed=11))
    table = fit.table
    assert list(table.index) == list(ml.names)
    for name in ml.names:
        gap = abs(table.loc[name, "mean"] - ml.params.loc[name, "estimate"])
        assert gap < 0.5 * table.loc[name, "sd"], f"{name}: gap {gap:.4f}"
        # posterior SD and ML SE describe the same curvature
        assert table.loc[name, "sd"] == pytest.approx(ml.params.loc[name, "se"], rel=0.25)
    assert fit.rhat_max <= 1.01
    assert fit.divergences == 0
    assert not fit.labels.switched
    assert fit.idata["log_likelihood"]["y"].shape == (4, SCALED.draws, 10000)
    assert fit.loo.elpd == pytest.approx(ml.loglik, abs=40)
    assert fit.loo.p == pytest.approx(8, abs=2)
    assert fit.loglik == pytest.approx(ml.loglik, abs=0.5)
    np.testing.assert_allclose(
        fit.class_probabilities.mean(axis=0), ml.class_probabilities.mean(axis=0), atol=0.01
    )
    payload = fit.to_dict()
    for key in (
        "model",
        "estimator",
        "n_obs",
        "n_clusters",
        "loglik",
        "n_params",
        "bic",
        "aic",
        "elapsed_s",
        "params",
        "rhat_max",
        "ess_bulk_min",
        "divergences",
        "loo",
    ):
        assert key in payload
    assert set(payload["params"][0]) == {"name", "mean", "sd", "r_hat", "ess_bulk"}
    assert "max R-hat" in fit.summary()


@pytest.mark.slow
def test_same_seed_reproduces_draws(fig1_spec, fig1_10k):
    small = fig1_10k.iloc[:1500]
    # 60 draws are too few for reliable diagnostics: the fit must say so.
    with pytest.warns(SamplingWarning, match="bulk ESS below 200"):
        a = bm.fit_bayes(fig1_spec, small, draws=60, tune=60, chains=2, random_seed=4)
    with pytest.warns(SamplingWarning, match="bulk ESS below 200"):
        b = bm.fit_bayes(fig1_spec, small, draws=60, tune=60, chains=2, random_seed=4)
    np.testing.assert_array_equal(a.draws["x[c1]"], b.draws["x[c1]"])
    assert a.settings["seed"] == b.settings["seed"]
    assert [d.code for d in a.diagnostics if "bulk ESS below 200" in d.message] == ["ess"]
    assert all(d.category is SamplingWarning for d in a.diagnostics if d.code == "ess")


def test_nutpie_compiles_without_fast_math(fig1_spec, fig1_10k, monkeypatch):
    # nutpie's outer function inlines freshly compiled inner functions but calls cached
    # ones; with fast-math the two round differently and a seed's draws depended on
    # the state of the compile cache
    import nutpie
    import pytensor

    class Recorded(Exception):
        pass

    seen = []

    def record(*args, **kwargs):
        seen.append(pytensor.config.numba__fastmath)
        raise Recorded

    monkeypatch.setattr(nutpie, "compile_pymc_model", record)
    before = pytensor.config.numba__fastmath
    design = build_design(fig1_spec, fig1_10k.iloc[:200])
    model = sampling_model(design, resolve_priors(design, None))
    with pytest.raises(Recorded):
        sampling.compiled_nutpie(model, False, None, "numba")
    assert seen == [False]
    assert pytensor.config.numba__fastmath == before


def test_ml_start_has_no_exactly_flat_residual():
    # a random slope of x in schools where x never varies: the likelihood ignores
    # those residuals, and nutpie refuses a start whose gradient has an exact 0
    rng = np.random.default_rng(5)
    g = np.repeat(np.arange(30), 10)
    x = rng.integers(0, 2, size=300).astype(float)
    x[g < 5] = 0.0
    data = pd.DataFrame({"g": g, "x": x, "y": x + rng.normal(size=30)[g] + rng.normal(size=300)})
    spec = bm.make_spec("y ~ x", cluster="g", random=["1", "x"])
    ml = bm.fit_ml(spec, data)
    design = build_design(spec, data)
    model = sampling_model(design, resolve_priors(design, None), ml.structured)
    grad = model.compile_dlogp(mode="FAST_COMPILE")(model.initial_point())
    assert np.all(grad != 0.0)
    assert np.abs(model.initial_point()["z_u"]).max() < 0.05


@pytest.mark.slow
def test_refit_of_same_model_and_data_skips_compilation(fig1_spec, fig1_10k, tmp_path, monkeypatch):
    # an empty compile cache, on disk and in this process
    monkeypatch.setenv(CACHE_VARIABLE, str(tmp_path))
    monkeypatch.setattr(sampling, "_COMPILED", type(sampling._COMPILED)())
    monkeypatch.setattr(compiled_store, "_LOADED", type(compiled_store._LOADED)())
    import nutpie

    compilations: list[int] = []
    compile_pymc_model = nutpie.compile_pymc_model

    def counted(*args, **kwargs):
        compilations.append(1)
        return compile_pymc_model(*args, **kwargs)

    monkeypatch.setattr(nutpie, "compile_pymc_model", counted)
    data = fig1_10k.iloc[:900]
    kw = dict(draws=40, tune=40, chains=2, progress=False, backend="numba")
    ml = bm.fit_ml(fig1_spec, data, random_seed=1)
    with pytest.warns(SamplingWarning):
        first = bm.fit_bayes(fig1_spec, data, random_seed=11, init=ml, **kw)
    with pytest.warns(SamplingWarning):
        bm.fit_bayes(fig1_spec, data, random_seed=12, init=ml, **kw)
    with pytest.warns(SamplingWarning):
        other = bm.fit_bayes(fig1_spec, fig1_10k.iloc[:901], random_seed=11, **kw)
    # the same spec, data, priors and ML start: the compiled model is reused
    # (the first fit compiles, the second reuses it, the third compiles its own)
    assert len(compilations) == 2
    assert first.timings["compile_s"] > 0.0
    # one more student: other shapes, a new log-density, compiled anew
    assert other.timings["compile_s"] > 0.0
    assert len(sampling._COMPILED) <= sampling._COMPILED_MAX
    # other data of the first shapes: the code compiled for them runs on these values
    with pytest.warns(SamplingWarning):
        shifted = bm.fit_bayes(fig1_spec, fig1_10k.iloc[900:1800], random_seed=11, **kw)
    assert len(compilations) == 2
    assert not np.allclose(shifted.table["mean"], first.table["mean"])


@pytest.mark.slow
def test_jax_backend_samples_the_same_posterior(fig1_spec, fig1_10k):
    data = fig1_10k.iloc[:1200]
    ml = bm.fit_ml(fig1_spec, data, random_seed=1)
    kw = dict(draws=300, tune=300, chains=2, init=ml, random_seed=5, progress=False)
    numba_fit = bm.fit_bayes(fig1_spec, data, backend="numba", **kw)
    jax_fit = bm.fit_bayes(fig1_spec, data, backend="jax", **kw)
    assert jax_fit.settings["backend"] == "jax"
    assert jax_fit.divergences == 0
    gap = (jax_fit.table["mean"] - numba_fit.table["mean"]).abs() / numba_fit.table["sd"]
    assert (gap < 0.35).all(), gap.to_dict()


def test_unknown_backend_is_refused(fig1_spec, fig1_10k):
    with pytest.raises(bm.EstimationError, match="backend must be 'numba' or 'jax'"):
        bm.fit_bayes(fig1_spec, fig1_10k.iloc[:100], backend="cuda", init="prior")


def test_a_start_with_saturated_membership_is_shrunk_to_logits_of_10(fig1_spec, fig1_10k):
    # an ML solution with deterministic membership gives exactly zero gradients for what
    # only moves the class probabilities, and nutpie cannot set its first mass matrix
    from bayesmix.bayes.fit import MAX_START_LOGIT, unsaturated

    design = build_design(fig1_spec, fig1_10k.iloc[:300])
    params = design.layout.from_named({**FIG1_PARAMS, "C#1 ~ 1": 70.0, "C#1 ~ x": -5.0})
    gamma = np.asarray(params.gamma)
    shrunk = np.asarray(unsaturated(design, params).gamma)
    largest = np.abs(design.Z @ gamma.T).max()
    assert largest > 70.0
    np.testing.assert_allclose(shrunk, gamma * MAX_START_LOGIT / largest, rtol=1e-15)
    assert np.abs(design.Z @ shrunk.T).max() == pytest.approx(MAX_START_LOGIT)
    moderate = design.layout.from_named(FIG1_PARAMS)
    assert unsaturated(design, moderate) is moderate


@pytest.mark.usefixtures("python_linker")
def test_a_start_with_a_variance_and_its_covariance_at_0_has_no_zero_gradient():
    # an ML fit with var(u_x) at the boundary has cov(u_1,u_x) = 0 exactly: with z_u at 0
    # the gradient of that Cholesky entry was exactly 0, and nutpie could not start
    from bayesmix.data.standardise import standardise
    from tests.support.fits import two_level_60x10

    fitted = two_level_60x10("conventional")
    internal, st = standardise(build_design(fitted.spec, fitted.data))
    lay = internal.layout
    values = dict(zip(lay.names, st.to_internal(fitted.ml.estimates), strict=True))
    values.update({"var(u_x)": 0.0, "cov(u_1,u_x)": 0.0})
    model = sampling_model(internal, resolve_priors(internal, None), lay.from_named(values))
    point = model.initial_point()
    gradient = model.compile_dlogp()(point)
    assert np.isfinite(gradient).all() and np.all(gradient != 0.0)


@pytest.mark.parametrize(
    ("classes", "replicated", "expected"),
    [(2, 2, [8]), (2, 1, [8, 20]), (1, 1, [8]), (2, 0, [8, 20])],
)
def test_ml_start_runs_all_starts_only_when_the_quick_ones_disagree(
    monkeypatch, classes, replicated, expected
):
    from types import SimpleNamespace

    from bayesmix.bayes.fit import ml_start
    from bayesmix.ml import fit as ml_fit

    calls: list[int] = []

    def fake(design, *, starts, random_seed, tie, given):
        calls.append(starts)
        assert random_seed == 3 and tie is None and given == []
        return SimpleNamespace(starts=SimpleNamespace(replicated=replicated, n_starts=starts))

    monkeypatch.setattr(ml_fit, "fit_internal", fake)
    design = SimpleNamespace(spec=SimpleNamespace(classes=classes))
    fit = ml_start(design, 20, 3)
    assert calls == expected
    assert fit.starts.n_starts == expected[-1]
    calls.clear()
    # asked for fewer starts than the quick number: those alone
    ml_start(design, 5, 3)
    assert calls == [5]
