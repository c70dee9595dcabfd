"""Level-2 latent classes (the paper's model C, eqs 26-32): spec, likelihood, ML and NUTS."""

from __future__ import annotations

import numpy as np
import pytest

import bayesmix as bm
from bayesmix.bayes.draws import _between_pointwise_draws
from bayesmix.bayes.model import sampling_model
from bayesmix.data.design import build_design
from bayesmix.density.quadrature import AdaptiveQuadrature, adapted_quadrature
from bayesmix.model import params as param_layout
from bayesmix.model.params import Params, relabel, relabel_between
from bayesmix.model.priors import resolve_priors
from tests.support.models import C22_PARAMS, c22_spec
from tests.support.paths import MODELS


@pytest.fixture(scope="module")
def c22_data():
    """K = 2 student classes in L = 2 school classes, 300 schools x 20 students."""
    return bm.simulate(c22_spec(), C22_PARAMS, clusters=300, cluster_size=20, random_seed=1)


@pytest.fixture(scope="module")
def c22_ml(c22_data):
    """Model C's ML fit to :func:`c22_data` from 20 starts (seed 1)."""
    return bm.fit_ml(c22_spec(), c22_data, starts=20, random_seed=1)


def test_model_c_names_and_count():
    assert param_layout.param_names(c22_spec()) == list(C22_PARAMS)
    spec = bm.load_spec(MODELS / "hsb_C.toml")
    assert (spec.classes, spec.between_classes) == (3, 2)
    assert param_layout.count_params(spec) == 51
    # L = 1 is model B exactly
    one = bm.load_spec(MODELS / "hsb_C.toml", between_classes=1)
    assert param_layout.param_names(one) == param_layout.param_names(
        bm.load_spec(MODELS / "hsb_B.toml")
    )


def test_spec_errors_name_the_fix():
    with pytest.raises(bm.SpecError, match="need a cluster column"):
        bm.make_spec("y ~ x", between_classes=2)
    with pytest.raises(bm.SpecError, match="not fixed effects"):
        bm.make_spec("y ~ x", cluster="g", between_classes=2, between_varying=["z"])


def test_simulated_level2_classes_follow_the_school_logit(c22_data):
    per_school = c22_data.groupby("cluster")["D"].nunique()
    assert (per_school == 1).all()
    # P(D = 1 | w) = logistic(0.3 + w): more class-1 schools where w is high
    schools = c22_data.groupby("cluster")[["w", "D"]].first()
    assert schools.loc[schools["w"] > 0, "D"].eq(1).mean() > 0.65
    assert schools.loc[schools["w"] < 0, "D"].eq(1).mean() < 0.55


def test_identical_level2_classes_give_the_one_class_likelihood(c22_data):
    """Two level-2 classes with equal coefficients mix two copies of one density: the
    log-likelihood is that of L = 1 for any class shares."""
    one = build_design(c22_spec(1), c22_data)
    two = build_design(c22_spec(2), c22_data)
    values = {**C22_PARAMS, "1[c1,d2]": 4.0, "1[c2,d2]": 1.0, "D#1 ~ w": -0.7}
    reduced = {
        k.replace(",d1", ""): v for k, v in values.items() if ",d2" not in k and "D#" not in k
    }
    th1 = one.layout.pack(one.layout.from_named(reduced), natural=False)
    th2 = two.layout.pack(two.layout.from_named(values), natural=False)
    ll1 = adapted_quadrature(one, th1, points=15).adapt(th1, 3)
    ll2 = adapted_quadrature(two, th2, points=15).adapt(th2, 3)
    assert ll2 == pytest.approx(ll1, abs=1e-6)


def test_per_class_rules_are_exact_to_the_dense_rule(c22_data):
    design = build_design(c22_spec(), c22_data)
    lay = design.layout
    theta = lay.pack(lay.from_named(C22_PARAMS), natural=False)
    dense = AdaptiveQuadrature(design, 61).value_and_grad(theta)[0]
    for points in (10, 15):
        quad = adapted_quadrature(design, theta, points=points)
        # repeated adaptation is stable and matches a dense non-adaptive rule
        assert quad.adapt(theta, 1) == pytest.approx(quad.adapt(theta, 1), abs=1e-8)
        assert quad.adapt(theta, 1) == pytest.approx(dense, abs=1e-4)


def test_relabelling_keeps_the_likelihood(c22_data):
    design = build_design(c22_spec(), c22_data)
    lay = design.layout
    params = lay.from_named(C22_PARAMS)
    values = []
    for p in (params, relabel_between(params, np.array([1, 0])), relabel(params, np.array([1, 0]))):
        th = lay.pack(p, natural=False)
        values.append(adapted_quadrature(design, th, points=15).adapt(th, 3))
    np.testing.assert_allclose(values, values[0], atol=1e-6)


@pytest.mark.slow
def test_model_c_ml_recovers_all_parameters(c22_data, c22_ml):
    fit = c22_ml
    for name, truth in C22_PARAMS.items():
        est, se = fit.params.loc[name, ["estimate", "se"]]
        assert abs(est - truth) < 3 * se, f"{name}: {est:.3f} vs {truth} (SE {se:.3f})"
    assert fit.converged and fit.starts.replicated >= 2
    post = fit.between_probabilities
    assert post.shape == (300, 2)
    np.testing.assert_allclose(post.sum(axis=1), 1.0, atol=1e-9)
    truth = c22_data.groupby("cluster")["D"].first().to_numpy()
    assert np.mean(post.argmax(axis=1) + 1 == truth) > 0.9


def test_school_effects_refuse_level2_classes_with_a_message(c22_data):
    small = c22_data[c22_data["cluster"] <= 60]
    fit = bm.fit_ml(c22_spec(), small, starts=2, random_seed=1)
    with pytest.raises(bm.DataError, match="between_probabilities"):
        bm.school_effects(fit)
    assert "c22" in fit.summary()


@pytest.mark.usefixtures("python_linker")
def test_bayes_density_marginalises_level2_classes_per_school(c22_data):
    """The model's potential is sum_j log sum_d pi_jd p(y_j | u[d, j], d): with the school
    residuals at 0 it is the ML log-likelihood at var(u) = 0, and the pointwise school
    log-likelihoods stored for LOO add up to it."""
    design = build_design(c22_spec(), c22_data)
    lay = design.layout
    values = {**C22_PARAMS, "var(u_1)": 1e-14}
    params = lay.from_named(values)
    model = sampling_model(design, resolve_priors(design, None), params)
    point = model.initial_point()
    assert point["z_u"].shape == (2, 300, 1)
    point["z_u"] = np.zeros_like(point["z_u"])
    (out,) = model.replace_rvs_by_values([model["y_school"]])
    potential = float(
        model.compile_fn(out, inputs=model.value_vars, on_unused_input="ignore")(point)
    )
    theta = lay.pack(lay.from_named({**C22_PARAMS, "var(u_1)": 0.0}), natural=False)
    ml = float(AdaptiveQuadrature(design, 3).value_and_grad(theta)[0])
    assert potential == pytest.approx(ml, abs=1e-6)
    fields = ("beta", "lsig", "gamma", "chol")
    draws = Params(
        **{k: np.asarray(getattr(params, k))[None, None] for k in fields},
        load=np.zeros((1, 1, 1, 0)),
        delta=np.asarray(params.delta)[None, None],
    )
    u = np.zeros((1, 1, 2, 300, 1))
    pointwise = _between_pointwise_draws(draws, design, u)
    assert pointwise.loglik.sum() == pytest.approx(potential, rel=1e-12)
    np.testing.assert_allclose(pointwise.chain_post.sum(axis=2), 1.0, atol=1e-12)
    np.testing.assert_allclose(pointwise.chain_between.sum(axis=2), 1.0, atol=1e-12)
    # one draw: the shares are the mean probabilities over students and schools
    np.testing.assert_allclose(pointwise.class_share[0, 0], pointwise.chain_post[0].mean(axis=0))
    np.testing.assert_allclose(
        pointwise.between_share[0, 0], pointwise.chain_between[0].mean(axis=0)
    )


@pytest.mark.long
def test_model_c_bayes_agrees_with_ml(c22_data, c22_ml):
    ml = c22_ml
    # 2000 draws: with 1000 the largest R-hat of this model's parameters ranged over
    # 1.0076-1.0128 with the rounding of the compiled log-density (1.0033 with 2000)
    fit = bm.fit_bayes(c22_spec(), c22_data, draws=2000, tune=1000, random_seed=2, backend="numba")
    assert fit.rhat_max <= 1.01
    assert fit.divergences == 0
    assert not fit.labels.switched and not fit.between_labels.switched
    table = fit.params.join(ml.params[["estimate"]])
    z = (table["mean"] - table["estimate"]) / table["sd"]
    assert (z.abs() < 0.5).all(), z.to_dict()
    # schools' level-2 classes: the posterior mean probabilities follow the ML ones
    assert np.mean(np.abs(fit.between_probabilities - ml.between_probabilities)) < 0.02
    # no student-level likelihood: the log_likelihood group holds the school terms alone
    assert list(fit.idata["log_likelihood"].data_vars) == ["y_school"]
    assert fit.idata["log_likelihood"]["y_school"].shape == (4, 2000, 300)
    assert "Level-2 classes" in fit.summary()


@pytest.mark.usefixtures("python_linker")
def test_bayes_model_c_with_equal_school_classes_is_model_b_on_hsb():
    """HSB C23 with both school classes equal and each school's two residual vectors
    equal has model B3's density (factor membership effect, three random dimensions)."""
    from bayesmix.ml.starts import _strip_between, random_start
    from bayesmix.model.params import order_permutation, relabel

    spec_c = bm.load_spec(MODELS / "hsb_C.toml", classes=3, between_classes=2)
    spec_b = bm.load_spec(MODELS / "hsb_B.toml", classes=3)
    dc, db = build_design(spec_c, "hsb"), build_design(spec_b, "hsb")
    rng = np.random.default_rng(0)
    pb = db.layout.unpack(random_start(db, rng))
    pb = relabel(pb, order_permutation(pb, spec_b))
    nat_b = dict(zip(db.layout.names, db.layout.pack(pb), strict=True))
    for k in nat_b:
        if k.startswith(("var(", "cov(")):
            nat_b[k] = 2.0 if k.startswith("var(") else 0.3
    pb = db.layout.from_named(nat_b)
    nat_c = {
        n: 0.3 if n.startswith("D#") else nat_b[_strip_between(n, 2)[0]] for n in dc.layout.names
    }
    mb = sampling_model(db, resolve_priors(db, None), pb)
    mc = sampling_model(dc, resolve_priors(dc, None), dc.layout.from_named(nat_c))
    pt_b, pt_c = mb.initial_point(), mc.initial_point()
    z = rng.normal(size=pt_c["z_u"].shape[1:])
    pt_c["z_u"] = np.stack([z, z])
    # model B samples its leading outcome coefficients centred on their means (b_school,
    # as many as its centring plan takes) and the other residuals given them (z_member);
    # u = z L' in both
    (u_out,) = mb.replace_rvs_by_values([mb["u"]])
    u_of = mb.compile_fn(u_out, inputs=mb.value_vars, on_unused_input="ignore")
    r = pt_b["b_school"].shape[1]
    assert 1 <= r <= len(spec_b.random)
    means = pt_b["b_school"] - u_of(pt_b)[:, :r]
    u = z @ np.asarray(pb.chol).T
    pt_b["b_school"], pt_b["z_member"] = means + u[:, :r], z[:, r:]
    np.testing.assert_allclose(u_of(pt_b), u, atol=1e-10)
    ll_b = float(mb.compile_logp(vars=[mb["y"]], sum=True)(pt_b))
    (out,) = mc.replace_rvs_by_values([mc["y_school"]])
    ll_c = float(mc.compile_fn(out, inputs=mc.value_vars, on_unused_input="ignore")(pt_c))
    assert np.isfinite(ll_b)
    assert ll_c == pytest.approx(ll_b, abs=1e-6)


def test_model_c_adds_the_start_carried_over_from_model_b(c22_data, tmp_path):
    small = c22_data[c22_data["cluster"] <= 60]
    fit = bm.fit_ml(c22_spec(), small, starts=2, random_seed=1)
    b = bm.fit_ml(c22_spec().with_between_classes(1), small, starts=2, random_seed=1)
    # the carried-over start is one more final-stage run, reported with where it ended
    assert fit.starts.carried is not None
    # in the user's units, as the log-likelihoods: at least model B's, which C nests
    assert fit.starts.carried >= b.loglik - 1e-6
    assert fit.starts.carried <= fit.loglik + 1e-6
    assert fit.starts.carried_won == (fit.starts.carried >= fit.loglik - 1e-3)
    assert "the start from the model without level-2 classes reached logL" in fit.summary()
    assert fit.to_dict()["carried_start_won"] == fit.starts.carried_won
    # a saved fit keeps which run the carried start was
    loaded = bm.load_result(bm.save_result(fit, tmp_path / "c22.json"))
    assert loaded.starts.carried == fit.starts.carried
    plain = bm.fit_ml(c22_spec(), small, starts=2, random_seed=1, start_from_smaller=False)
    assert plain.starts.carried is None and plain.starts.carried_won is None
    assert len(plain.starts.logliks) == len(fit.starts.logliks) - 1
    assert "without level-2 classes" not in plain.summary()
