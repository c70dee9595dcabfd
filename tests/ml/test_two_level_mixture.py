"""Two-level regression mixtures by ML with adaptive Gauss-Hermite quadrature (Fig 3 design)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytensor
import pytensor.tensor as pt
import pytest

import bayesmix as bm
from bayesmix.data.design import build_design
from bayesmix.density import hermite
from bayesmix.density.compiled import loglik_and_grad
from bayesmix.density.hermite import _outcome_grid, gauss_hermite, quadrature_loglik
from bayesmix.density.quadrature import AdaptiveQuadrature, make_chunks, plan_chunks
from bayesmix.model import params as param_layout
from bayesmix.paper.section2 import FIG3_PARAMS
from tests.support.paths import MODELS


@pytest.fixture(scope="module")
def fig3_spec() -> bm.Spec:
    return bm.load_spec(MODELS / "fig3.toml")


@pytest.fixture(scope="module")
def fig3_data(fig3_spec: bm.Spec) -> pd.DataFrame:
    return bm.simulate(fig3_spec, FIG3_PARAMS, clusters=200, cluster_size=15, random_seed=1)


@pytest.fixture(scope="module")
def fig3_fit(fig3_spec: bm.Spec, fig3_data: pd.DataFrame) -> bm.MLResult:
    return bm.fit_ml(fig3_spec, fig3_data, starts=8, random_seed=1)


def test_fig3_has_the_paper_parameter_count(fig3_spec):
    assert param_layout.param_names(fig3_spec) == list(FIG3_PARAMS)
    assert len(FIG3_PARAMS) == 11


@pytest.mark.parametrize("points", [3, 5, 7])
def test_quadrature_with_one_class_equals_exact_gaussian(points):
    """With K = 1 the integrand is Gaussian: adaptive quadrature is exact with any number of points,
    once the nodes sit at each school's posterior (starting from the prior)."""
    spec = bm.load_spec(MODELS / "hsb_1.toml")
    design = build_design(spec, "hsb")
    lay = design.layout
    values = {
        **dict(zip(lay.names, np.zeros(lay.n_params), strict=True)),
        "1": 12.0,
        "ses": 2.5,
        "female": -1.0,
        "var(u_1)": 4.0,
        "var(u_female)": 1.0,
        "var(u_ses)": 0.3,
        "cov(u_1,u_female)": -0.5,
        "sigma2": 36.0,
    }
    theta = lay.to_theta(np.array([values[n] for n in lay.names]))
    exact = float(loglik_and_grad(lay)(theta, *design.likelihood_args())[0])
    # small chunks, so that padding and the sum over chunks are exercised
    quad = AdaptiveQuadrature(design, points, chunk_cells=20_000)
    assert len(quad.chunks) > 3
    assert quad.adapt(theta, iterations=10) == pytest.approx(exact, abs=1e-6)
    ll, grad = quad.value_and_grad(theta)
    assert float(ll) == pytest.approx(exact, abs=1e-6)
    exact_grad = loglik_and_grad(lay)(theta, *design.likelihood_args())[1]
    np.testing.assert_allclose(grad, exact_grad, rtol=1e-5, atol=1e-5)


def test_chunks_evaluated_in_threads_sum_exactly_as_one_at_a_time(fig3_spec, fig3_data):
    design = build_design(fig3_spec, fig3_data)
    theta = design.layout.to_theta(np.array(list(FIG3_PARAMS.values())))
    results = []
    for threads in (1, 2, 3):
        quad = AdaptiveQuadrature(design, 5, chunk_cells=5_000, threads=threads)
        assert len(quad.chunks) > 6
        quad.adapt(theta, iterations=2)
        ll, grad = quad.value_and_grad(theta)
        results.append((ll, grad, quad.evaluate(theta)[3]))
    for ll, grad, post in results[1:]:
        assert ll == results[0][0]
        np.testing.assert_array_equal(grad, results[0][1])
        np.testing.assert_array_equal(post, results[0][2])
    assert np.isfinite(results[0][0]) and results[0][0] < 0


def test_adaptation_moments_match_the_posterior_and_survive_an_outlier(fig3_spec, fig3_data):
    """The moments-only function the adaptation calls gives the posterior function's moments,
    and the shared-exponential class mixture stays finite for a student 150 SDs
    from every class mean."""
    data = fig3_data.copy()
    data.loc[0, "y"] = 1000.0
    design = build_design(fig3_spec, data)
    theta = design.layout.to_theta(np.array(list(FIG3_PARAMS.values())))
    quad = AdaptiveQuadrature(design, 5, chunk_cells=5_000)
    ll = quad.adapt(theta, iterations=2)
    assert np.isfinite(ll) and ll < -4e5
    for k, chunk in enumerate(quad.chunks):
        args = (theta, *chunk.args, quad.centre[k], quad.scale[k])
        full, moments = quad.post(*args), quad.moments(*args)
        # XLA fuses the two functions differently: equal up to the last bits
        np.testing.assert_allclose(np.asarray(moments[1]), np.asarray(full[1]), rtol=1e-12)
        np.testing.assert_allclose(np.asarray(moments[2]), np.asarray(full[2]), rtol=1e-12)
        assert float(moments[0]) == pytest.approx(float(full[0]), abs=1e-9)
    post_class = quad.evaluate(theta)[3]
    assert np.all(np.isfinite(post_class))
    np.testing.assert_allclose(post_class.sum(axis=1), 1.0, atol=1e-12)


def test_outcome_grid_splits_the_tensor_rule():
    nodes, _ = gauss_hermite(5, 3)
    outer, inner = _outcome_grid(nodes, 2)
    assert outer.shape == (25, 2) and inner == 5
    np.testing.assert_array_equal(np.repeat(outer, inner, axis=0), nodes[:, :2])
    assert _outcome_grid(nodes, 3)[1] == 1 and _outcome_grid(nodes, 0)[1] == 1
    # not a tensor rule: every node is its own outer node
    shuffled = nodes[np.random.default_rng(0).permutation(len(nodes))]
    assert _outcome_grid(shuffled, 2)[1] == 1


@pytest.mark.parametrize("model", ["fig3", "hsb_B"])
def test_class_densities_on_the_outcome_grid_equal_the_full_grid(model, monkeypatch):
    """The class densities, computed on the outcome terms' coarser grid and repeated, give
    the objective, its gradient and the posteriors of the densities on every node."""
    spec = bm.load_spec(MODELS / f"{model}.toml", classes=3 if model == "hsb_B" else None)
    if model == "fig3":
        data = bm.simulate(spec, FIG3_PARAMS, clusters=20, cluster_size=8, random_seed=3)
        theta = build_design(spec, data).layout.to_theta(np.array(list(FIG3_PARAMS.values())))
    else:
        data = bm.datasets.load_hsb().query("school < 1500")
        rng = np.random.default_rng(4)
        theta = 0.3 * rng.standard_normal(build_design(spec, data).layout.n_params)
    design = build_design(spec, data)
    lay = design.layout
    assert lay.n_random > lay.n_outcome_random > 0
    nodes, logw = gauss_hermite(4, lay.n_random)
    chunk = make_chunks(design, len(nodes) * spec.classes, 10**9)[0]
    y, F, R, Z, V, cluster = chunk.args[:6]
    rng = np.random.default_rng(5)
    J, d = len(chunk.args[6]), lay.n_random
    centre = 0.3 * rng.standard_normal((J, d))
    scale = np.tril(0.2 * rng.standard_normal((J, d, d))) + 0.6 * np.eye(d)
    t = pt.dvector("theta")

    def outputs() -> list[np.ndarray]:
        out = quadrature_loglik(
            y, F, R, Z, V, cluster, lay.unpack(t, pt), lay.n_outcome_random, nodes, logw,
            centre, scale,
        )  # fmt: skip
        total = pt.sum(out[0])
        fn = pytensor.function([t], [total, pytensor.grad(total, t), *out[:4]], mode="FAST_COMPILE")
        return fn(theta)

    coarse = outputs()
    monkeypatch.setattr(hermite, "_outcome_grid", lambda nodes, r: (nodes[:, :r], 1))
    full = outputs()
    assert np.isfinite(coarse[0])
    for a, b in zip(coarse, full, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.slow
def test_fig3_ml_recovers_all_parameters(fig3_fit):
    table = fig3_fit.params
    for name, truth in FIG3_PARAMS.items():
        est, se = table.loc[name, "estimate"], table.loc[name, "se"]
        assert abs(est - truth) < 3 * se, f"{name}: {est:.3f} vs {truth} (SE {se:.3f})"
    assert fig3_fit.converged
    assert fig3_fit.quadrature_points == 7
    assert fig3_fit.starts.replicated >= 2
    assert fig3_fit.design.n_clusters == 200


@pytest.mark.slow
def test_fig3_loglik_stable_when_points_are_raised(fig3_spec, fig3_data, fig3_fit):
    more = bm.fit_ml(fig3_spec, fig3_data, starts=2, random_seed=1, points=11)
    assert more.loglik == pytest.approx(fig3_fit.loglik, abs=0.01)


@pytest.mark.slow
def test_conventional_model_on_fig3_data_finds_spurious_cross_level_effect(fig3_data, fig3_fit):
    """Section 2.2: fitted to Fig 3 data, the conventional model has a worse logL and BIC
    and a negative significant x:w."""
    conv = bm.fit_ml(bm.load_spec(MODELS / "conventional.toml"), fig3_data)
    assert conv.n_params == 8
    assert conv.loglik < fig3_fit.loglik
    assert conv.bic > fig3_fit.bic
    xw = conv.params.loc["x:w"]
    assert xw["estimate"] < 0
    assert xw["p"] < 0.05


@pytest.mark.parametrize("kind", ["independent", "factor"])
def test_relabel_keeps_class_probabilities_with_membership_random_effects(kind):
    """Relabelling re-expresses membership random intercepts against the new reference
    class; the distribution of every observation's class probabilities is unchanged."""
    from bayesmix.model.params import relabel

    spec = bm.make_spec(
        "y ~ x",
        classes=3,
        membership="x",
        cluster="g",
        random=["1"],
        membership_random=kind,
        covariance="unstructured",
    )
    lay = param_layout.layout(spec)
    rng = np.random.default_rng(11)
    theta = lay.to_theta(
        np.where(
            [n.startswith("var(") for n in lay.names],
            0.7,
            np.where([n.startswith("cov(") for n in lay.names], 0.2, rng.normal(size=lay.n_params)),
        )
    )
    params = lay.unpack(theta)
    perm = np.array([2, 0, 1])
    new = relabel(params, perm)
    z = rng.standard_normal((4000, lay.n_random))
    z_row = np.array([1.0, 0.3])

    def probs(p, a):
        b = a @ np.asarray(p.chol).T
        eta = z_row @ np.asarray(p.gamma).T + b[:, 1:] @ np.asarray(p.load).T
        full = np.column_stack([eta, np.zeros(len(a))])
        e = np.exp(full - full.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True), b[:, 0]

    old_p, old_u = probs(params, z)
    new_p, new_u = probs(new, z)
    # same distribution: compare moments of the probabilities (classes permuted) and of u
    np.testing.assert_allclose(new_p.mean(axis=0), old_p[:, perm].mean(axis=0), atol=0.02)
    np.testing.assert_allclose(new_p.std(axis=0), old_p[:, perm].std(axis=0), atol=0.02)
    np.testing.assert_allclose(np.cov(new_u), np.cov(old_u), rtol=1e-10)
    if kind == "factor":
        assert np.asarray(new.load)[0, 0] == pytest.approx(1.0)
    else:
        np.testing.assert_allclose(np.asarray(new.load), np.eye(2), atol=1e-12)


def test_factor_layout_round_trip():
    spec = bm.make_spec(
        "y ~ x", classes=4, membership="x", cluster="g", random=["1"], membership_random="factor"
    )
    lay = param_layout.layout(spec)
    assert [n for n in lay.names if n.startswith("lambda")] == ["lambda(C#2)", "lambda(C#3)"]
    natural = np.linspace(0.2, 1.6, lay.n_params)
    natural[lay.names.index("cov(u_1,u_f)")] = 0.1
    np.testing.assert_allclose(lay.to_natural(lay.to_theta(natural)), natural, atol=1e-12)
    load = np.asarray(lay.unpack(lay.to_theta(natural)).load)
    assert load[:, 0].tolist() == pytest.approx(
        [1.0, natural[lay.names.index("lambda(C#2)")], natural[lay.names.index("lambda(C#3)")]]
    )


@pytest.mark.long
def test_fig3_nuts_agrees_with_ml(fig3_spec, fig3_data, fig3_fit):
    # default draws (4 chains x 1000 + 1000), as the R-hat target is stated for them; the
    # tests' compiler (the numba-compiled two-level mixture runs in notebook 05 and make bench)
    fit = bm.fit_bayes(fig3_spec, fig3_data, random_seed=2, ml_starts=4)
    table = fit.table
    assert list(table.index) == list(FIG3_PARAMS)
    gap = (table["mean"] - fig3_fit.params["estimate"]).abs() / table["sd"]
    assert (gap < 0.5).all(), gap
    assert fit.rhat_max <= 1.01
    assert fit.divergences == 0
    assert not fit.labels.switched
    assert fit.loglik == pytest.approx(fig3_fit.loglik, abs=0.5)
    assert fit.idata["posterior"]["u"].shape[2:] == (200, 2)
    ll = fit.idata["log_likelihood"]
    school = fit.loo_data("school")["log_likelihood"]
    assert school["y_school"].shape == (4, 1000, 200)
    np.testing.assert_allclose(
        school["y_school"].values[:, :, 0], ll["y"].values[:, :, :15].sum(axis=2)
    )


@pytest.mark.slow
def test_fig8_school_effects_average_over_class_probabilities(fig3_fit):
    eff = bm.school_effects(fig3_fit)
    assert len(eff) == 200
    probs = eff[["p_c1", "p_c2"]].to_numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    est = fig3_fit.params["estimate"]
    w = fig3_fit.design.schools["w"].to_numpy()
    fixed = probs[:, 0] * est["1[c1]"] + probs[:, 1] * est["1[c2]"] + est["w"] * w
    np.testing.assert_allclose(eff["coef_1"], fixed + eff["u_1"], atol=1e-10)
    np.testing.assert_allclose(
        eff["coef_x"], probs[:, 0] * est["x[c1]"] + probs[:, 1] * est["x[c2]"]
    )
    # the predicted school intercepts track the simulated ones through w and class shares
    assert np.corrcoef(eff["coef_1"], fixed)[0, 1] > 0.5
    assert 0.2 < eff["sd_u_1"].mean() < 0.6
    assert 0.0 <= bm.share_positive(eff, "x") <= 1.0


def test_plan_chunks_covers_every_school_once_within_the_limit():
    sizes = np.array([5, 30, 2, 2, 2, 40, 9, 1])
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    runs = plan_chunks(bounds, cells_per_row=10, target=400)  # at most 40 rows per run
    covered = [j for r in runs for j in range(r.start, r.stop)]
    assert covered == list(range(len(sizes)))
    assert all(sizes[r].sum() <= 40 for r in runs)
    assert len(runs) == 4
    # the limit never falls below the largest school, which then fills a run alone
    assert plan_chunks(bounds, cells_per_row=10, target=10) == runs
    assert slice(5, 6) in runs


def test_chunks_pad_to_one_shape_with_a_zero_weight_school():
    design = build_design(bm.load_spec(MODELS / "hsb_A.toml", classes=2), "hsb")
    chunks = make_chunks(design, cells_per_row=98, target=100_000)
    shapes = {tuple(a.shape for a in c.args) for c in chunks}
    assert len(shapes) == 1
    n_pad, j_pad = chunks[0].args[0].shape[0], chunks[0].args[6].shape[0]
    assert sum(c.n_rows for c in chunks) == design.n_obs
    for c in chunks:
        m, rows = c.n_clusters, c.n_rows
        np.testing.assert_array_equal(c.args[6], np.r_[np.ones(m), np.zeros(j_pad - m)])
        assert np.all(c.args[5][rows:] == j_pad - 1)
        np.testing.assert_array_equal(c.args[0][:rows], design.y[c.rows])
        assert n_pad >= rows


@pytest.mark.slow
def test_hsb_model_a_two_classes_beats_one_class():
    """Model A on HSB: K = 2 raises the log-likelihood over K = 1 and wins on BIC.

    -22917.164 is the A2 maximum found from 20 starts (seeds 1 and 2, 7 and 11 points).
    """
    fits = [
        bm.fit_ml(bm.load_spec(MODELS / "hsb_A.toml", classes=k), "hsb", starts=8, random_seed=1)
        for k in (1, 2)
    ]
    assert fits[1].loglik == pytest.approx(-22917.164, abs=0.01)
    assert fits[1].loglik > fits[0].loglik + 100
    table = bm.compare(fits)
    assert list(table["best_bic"]) == ["", "*"]
    assert fits[1].converged
    assert fits[1].starts.replicated >= 2


def test_progress_reports_both_stages(fig3_spec, capsys):
    data = bm.simulate(fig3_spec, FIG3_PARAMS, clusters=60, cluster_size=10, random_seed=5)
    bm.fit_ml(fig3_spec, data, starts=5, random_seed=1, progress=True)
    err = capsys.readouterr().err
    assert "ML starts: 5/5" in err
    assert "ML final stage: 2/2" in err
    assert err.count("\n") == 2


@pytest.mark.slow
def test_extra_start_reaches_the_final_stage_besides_the_random_ones(fig3_spec, fig3_data):
    kw = {"starts": 5, "random_seed": 3, "points": 3}
    plain = bm.fit_ml(fig3_spec, fig3_data, **kw)
    # the generating values rank first after the initial stage: a third final start
    more = bm.fit_ml(fig3_spec, fig3_data, extra_starts=[FIG3_PARAMS], **kw)
    assert plain.starts.n_final == 2 and more.starts.n_final == 3
    assert more.starts.n_starts == 6
    np.testing.assert_allclose(more.starts.logliks[:2], plain.starts.logliks, rtol=0, atol=1e-9)
    # a start far from every random one ranks last and stays in the initial stage
    far = dict(FIG3_PARAMS, **{"1[c1]": -50.0, "1[c2]": 60.0})
    other = bm.fit_ml(fig3_spec, fig3_data, extra_starts=[far], **kw)
    assert other.starts.n_final == 2
    np.testing.assert_array_equal(other.starts.logliks, plain.starts.logliks)
