"""bm.build_model: the density fit_bayes samples, in a form PyMC draws forward."""

from __future__ import annotations

import math

import numpy as np
import pymc as pm
import pytest
from scipy import integrate, stats

import bayesmix as bm
from bayesmix.bayes.fit import chain_start
from bayesmix.bayes.model import sampling_model
from bayesmix.data.design import build_design
from bayesmix.data.standardise import standardise
from bayesmix.model.priors import resolve_priors
from tests.support.fits import two_level_60x10
from tests.support.models import C22_PARAMS, c22_spec
from tests.support.paths import MODELS


def _hsb(schools: int | None = None):
    hsb = bm.datasets.load_hsb()
    if schools is None:
        return hsb
    return hsb[hsb["school"].isin(hsb["school"].unique()[:schools])]


def _case(name: str):
    """Spec, data and ML start (or None) of a test case."""
    if name == "fig1":
        spec = bm.load_spec(MODELS / "fig1.toml")
        from bayesmix.paper.section2 import FIG1_PARAMS

        return spec, bm.simulate(spec, FIG1_PARAMS, n=800, random_seed=5), None
    if name == "fig3_ml":
        fitted = two_level_60x10("fig3")
        return fitted.spec, fitted.data, fitted.ml
    if name == "hsb_1":
        return bm.load_spec(MODELS / "hsb_1.toml"), _hsb(), None
    if name == "c22":
        spec = c22_spec()
        data = bm.simulate(spec, C22_PARAMS, clusters=40, cluster_size=10, random_seed=2)
        return spec, data, None
    return bm.load_spec(MODELS / "hsb_A.toml", classes=3), _hsb(30), None


@pytest.mark.usefixtures("python_linker")
@pytest.mark.parametrize("name", ["fig1", "fig3_ml", "hsb_1", "hsb_A3", "c22"])
def test_public_model_has_the_density_fit_bayes_samples(name):
    # The model fit_bayes samples (standardised y) and the public one (y in the user's
    # units) share their free variables; at 20 random points of that value space their
    # log densities differ by the outcome standardisation's Jacobian, n log sd(y), alone.
    spec, data, ml = _case(name)
    design = build_design(spec, data)
    internal, st = standardise(design)
    priors = resolve_priors(internal, None, st.prior_to_internal)
    start, init_z = (None, None) if ml is None else chain_start(ml, design, internal, st, 0, 0)
    sampled = sampling_model(internal, priors, start, init_z)
    public = bm.build_model(spec, data, init=ml)
    assert sorted(v.name for v in public.value_vars) == sorted(v.name for v in sampled.value_vars)
    assert not public.potentials
    assert all("Flat" not in str(rv.owner.op) for rv in public.free_RVs)
    rng = np.random.default_rng(29)
    centre = sampled.initial_point()
    logp_public, logp_sampled = public.compile_logp(), sampled.compile_logp()
    gaps = []
    for _ in range(20):
        point = {k: v + 0.3 * rng.standard_normal(np.shape(v)) for k, v in centre.items()}
        gaps.append(float(logp_public(point)) - float(logp_sampled(point)))
    jacobian = design.n_obs * math.log(st.y_scale)
    np.testing.assert_allclose(gaps, -jacobian, rtol=0, atol=1e-6)
    if name == "fig3_ml":
        # the ML start centres the school intercepts and samples the class offsets as log gaps
        assert {"b_school", "b_1_log_gap", "z_member"} <= set(public.named_vars)
    if name == "hsb_A3":
        assert {"b_1_centred", "b_female_centred", "lambda"} <= set(public.named_vars)


def _order_statistic_moments(c: int, K: int, mu: float, sigma: float) -> tuple[float, float]:
    """Mean and SD of the c-th largest (0-based) of K independent N(mu, sigma^2) draws."""
    coef = math.factorial(K) / (math.factorial(c) * math.factorial(K - 1 - c))

    def density(z: float) -> float:
        return coef * stats.norm.pdf(z) * stats.norm.cdf(z) ** (K - 1 - c) * stats.norm.sf(z) ** c

    m1 = integrate.quad(lambda z: z * density(z), -12, 12)[0]
    m2 = integrate.quad(lambda z: z * z * density(z), -12, 12)[0]
    return mu + sigma * m1, sigma * math.sqrt(m2 - m1**2)


def _half_t_cdf(prior: bm.Prior):
    return lambda x: 2.0 * stats.t.cdf(np.asarray(x) / prior.sigma, prior.nu) - 1.0


def _check_prior_draws(
    prior, spec: bm.Spec, data, expected: dict[str, tuple[float, float]] | None = None
) -> dict[str, float]:
    """Map the paper-named draws back to the standardised parameters and check each
    against its prior (or the mean and SD in ``expected``); returns the KS p-values of
    the scale and correlation checks."""
    design = build_design(spec, data)
    internal, st = standardise(design)
    priors = resolve_priors(internal, None, st.prior_to_internal)
    lay = design.layout
    user = np.stack([np.asarray(prior[n]).ravel() for n in lay.names], axis=1)
    draws = np.linalg.solve(st.A, (user - st.b).T).T
    n = len(draws)
    expected = expected or {}
    ordered = []
    if spec.classes > 1 and spec.between_classes == 1:
        ordered = lay.fixed_entries(spec.order_classes_by)
    r = lay.n_random
    pvalues = {}
    for k, name in enumerate(lay.names):
        x = draws[:, k]
        if name in expected:
            mean, sd = expected[name]
        elif name in ordered:
            p = priors[name]
            mean, sd = _order_statistic_moments(ordered.index(name), len(ordered), p.mu, p.sigma)
        elif name in priors and priors[name].family == "normal":
            mean, sd = priors[name].mu, priors[name].sigma
        elif name.startswith("sigma2"):
            pvalues[name] = stats.kstest(np.sqrt(x), _half_t_cdf(priors["sigma"])).pvalue
            continue
        elif name.startswith("var("):
            scale = priors[f"sd({name[4:-1]})"]
            pvalues[name] = stats.kstest(np.sqrt(x), _half_t_cdf(scale)).pvalue
            continue
        else:
            a, b = (t.strip() for t in name[4:-1].split(","))
            va, vb = draws[:, lay.names.index(f"var({a})")], draws[:, lay.names.index(f"var({b})")]
            # LKJ(2) in dimension r: each correlation is 2 Beta(1 + r/2, 1 + r/2) - 1
            corr = x / np.sqrt(va * vb)
            beta = stats.beta(1 + r / 2, 1 + r / 2, loc=-1, scale=2)
            pvalues[name] = stats.kstest(corr, beta.cdf).pvalue
            continue
        assert abs(x.mean() - mean) < 4.0 * sd / math.sqrt(n), (name, x.mean(), mean)
        assert abs(x.std() / sd - 1.0) < 4.0 / math.sqrt(2 * n), (name, x.std(), sd)
    if ordered:
        values = draws[:, [lay.names.index(e) for e in ordered]]
        assert np.all(np.diff(values, axis=1) < 0)
    assert min(pvalues.values(), default=1.0) > 1e-3, pvalues
    return pvalues


@pytest.mark.usefixtures("python_linker")
@pytest.mark.parametrize("name", ["hsb_1", "fig1", "fig3"])
def test_prior_predictive_draws_the_priors(name):
    if name == "fig3":
        fitted = two_level_60x10("fig3")
        spec, data = fitted.spec, fitted.data
    else:
        spec, data, _ = _case(name)
    tree = bm.prior_predictive(spec, data, draws=1500, random_seed=7)
    assert {"prior", "prior_predictive", "observed_data"} <= set(tree.children)
    names = build_design(spec, data).layout.names
    assert sorted(tree["prior"].data_vars) == sorted(names)
    y = tree["prior_predictive"]["y"]
    assert y.shape == (1, 1500, len(data)) and np.isfinite(y.values).all()
    pvalues = _check_prior_draws(tree["prior"], spec, data)
    if name == "hsb_1":
        assert len(pvalues) == 1 + 3 + 3  # sigma2, three variances, three correlations


@pytest.mark.usefixtures("python_linker")
def test_prior_predictive_with_level2_classes():
    # Model C, K = L = 2: the intercepts are ordered down row d1 and column c1, so
    # 1[c1,d1] is the largest of three prior draws, 1[c2,d1] and 1[c1,d2] each one of
    # the other two at random, and 1[c2,d2] is free.
    spec, data, _ = _case("c22")
    tree = bm.prior_predictive(spec, data, draws=1500, random_seed=9)
    y = tree["prior_predictive"]["y"]
    assert y.shape == (1, 1500, len(data)) and np.isfinite(y.values).all()
    internal, st = standardise(build_design(spec, data))
    p = resolve_priors(internal, None, st.prior_to_internal)["1[c1,d1]"]
    moments = [_order_statistic_moments(c, 3, p.mu, p.sigma) for c in range(3)]
    (m1, s1), (m2, s2) = moments[1], moments[2]
    either = ((m1 + m2) / 2, math.sqrt((s1**2 + s2**2) / 2 + ((m1 - m2) / 2) ** 2))
    expected = {"1[c1,d1]": moments[0], "1[c2,d1]": either, "1[c1,d2]": either}
    _check_prior_draws(tree["prior"], spec, data, expected)


def test_bad_options_are_refused(fig1_spec, fig1_10k):
    data = fig1_10k.iloc[:200]
    with pytest.raises(bm.EstimationError, match="draws must be a positive integer"):
        bm.prior_predictive(fig1_spec, data, draws=0)
    with pytest.raises(bm.EstimationError, match="init must be an MLResult"):
        bm.build_model(fig1_spec, data, init="ml")
    # the ordered intercepts are drawn as sorted draws of one prior
    with pytest.raises(bm.SpecError, match="give one prior for the term '1'"):
        bm.build_model(fig1_spec, data, priors={"1[c1]": bm.Prior("normal", 0.0, 5.0)})


@pytest.mark.usefixtures("python_linker")
def test_pymc_tools_on_the_public_model():
    # Only PyMC calls on bm.build_model's model: the graph, the prior predictive, and
    # replicates given each of its draws. From an ML start the class intercepts are the
    # last class's value and log gaps (drawn as the least of K prior draws and truncated
    # draws above it), and the school intercepts are centred: the prior of the paper's
    # parameters must still be the one the prior coordinates give.
    fitted = two_level_60x10("fig3")
    model = bm.build_model(fitted.spec, fitted.data, init=fitted.ml)
    assert {"b_1_log_gap", "b_school"} <= set(model.named_vars)
    graph = pm.model_to_graphviz(model)
    assert "C#1 ~ w" in graph.source and "cluster (60)" in graph.source
    prior = pm.sample_prior_predictive(draws=1500, model=model, random_seed=8)
    assert prior["prior"]["var(u_1)"].shape == (1, 1500)
    assert prior["prior"]["u"].dims == ("chain", "draw", "cluster", "rterm")
    assert prior["prior_predictive"]["y"].shape == (1, 1500, 600)
    _check_prior_draws(prior["prior"], fitted.spec, fitted.data)
    # the prior draws as a posterior: new outcomes at each draw's parameters
    replicated = pm.sample_posterior_predictive(
        prior["prior"], model=model, random_seed=4, progressbar=False
    )
    y = replicated["posterior_predictive"]["y"]
    assert y.shape == (1, 1500, 600)
    assert not np.allclose(y.values, prior["prior_predictive"]["y"].values)
    # the replicated outcomes follow their draw's parameters, not new ones
    means = y.mean("obs").values[0]
    prior_means = prior["prior_predictive"]["y"].mean("obs").values[0]
    assert np.corrcoef(means, prior_means)[0, 1] > 0.9


@pytest.mark.long
def test_forward_draws_match_nuts_on_the_sampled_prior():
    # NUTS on the model fit_bayes samples, with the likelihood taken out, samples its
    # prior with every potential in place; PyMC's forward draws of the public model must
    # match it. Model A3's sheared class coefficients are flat variables whose prior is a
    # potential in the sampled model, and the intercepts are ordered.
    spec, data, _ = _case("hsb_A3")
    design = build_design(spec, data)
    internal, st = standardise(design)
    priors = resolve_priors(internal, None, st.prior_to_internal)
    sampled = sampling_model(internal, priors)
    # pm.do copies only models without initial values: keep them aside, restore them
    starts = {rv.name: v for rv, v in sampled.rvs_to_initial_values.items() if v is not None}
    for name in starts:
        sampled.set_initval(sampled[name], None)
    no_data = pm.do(sampled, {"y": np.zeros(design.n_obs)})
    assert "y" not in {rv.name for rv in no_data.observed_RVs} and no_data.potentials
    nuts = pm.sample(
        draws=1000,
        tune=1000,
        chains=2,
        model=no_data,
        initvals=starts,
        random_seed=12,
        progressbar=False,
        compute_convergence_checks=False,
    )["posterior"]
    forward = pm.sample_prior_predictive(
        draws=4000, model=bm.build_model(spec, data), random_seed=13
    )["prior"]
    for name in ("b_1", "b_female", "b_ses", "b_pracad", "gamma", "lambda", "chol_u_stds"):
        a = nuts[name].values.reshape(2000, -1)
        b = forward[name].values.reshape(4000, -1)
        # NUTS draws are autocorrelated: allow for an ESS of a quarter of the draws
        se = np.sqrt(a.var(axis=0) / 500 + b.var(axis=0) / 4000)
        assert np.all(np.abs(np.median(a, 0) - np.median(b, 0)) < 5 * 1.25 * se), name
        if name != "chol_u_stds":
            assert np.all(np.abs(a.mean(0) - b.mean(0)) < 5 * se), name
