"""LOO and WAIC at the student and the school level, and the school-level LOO by brute force."""

from __future__ import annotations

import math
from types import SimpleNamespace

import arviz_stats as azs
import numpy as np
import pytest
from arviz_stats import ess

import bayesmix as bm
from bayesmix.analysis.loo import _thin, waic
from bayesmix.density.compiled import cluster_loglik
from bayesmix.paper.section2 import CONVENTIONAL_PARAMS
from tests.support.paths import MODELS

# Section 2.2's conventional model, 30 schools x 10 students
CONV = CONVENTIONAL_PARAMS
SETTINGS = {"draws": 500, "tune": 500, "chains": 4, "random_seed": 7}


def test_waic_matches_its_definition():
    rng = np.random.default_rng(1)
    ll = rng.normal(-1.0, 0.3, size=(400, 6))
    elpd, se, p = waic(ll)
    lppd = np.log(np.exp(ll).mean(axis=0))
    pw = ll.var(axis=0, ddof=1)
    assert elpd == pytest.approx(np.sum(lppd - pw), rel=1e-12)
    assert p == pytest.approx(pw.sum(), rel=1e-12)
    assert se == pytest.approx(math.sqrt(6 * np.var(lppd - pw)), rel=1e-12)


def test_thinning_keeps_at_most_the_budget():
    keep = _thin(4, 1000, 1000)
    assert len(keep) == 250 and keep[0] == 0 and keep[-1] == 999
    assert len(_thin(4, 100, 1000)) == 100


@pytest.fixture(scope="module")
def conv_data():
    spec = bm.load_spec(MODELS / "conventional.toml")
    return bm.simulate(spec, CONV, clusters=30, cluster_size=10, random_seed=3)


@pytest.fixture(scope="module")
def conv_fit(conv_data):
    return bm.fit_bayes(bm.load_spec(MODELS / "conventional.toml"), conv_data, **SETTINGS)


@pytest.mark.slow
def test_levels_and_their_units(conv_fit):
    student = conv_fit.elpd("student")
    school = conv_fit.elpd("school")
    marginal = conv_fit.elpd("school_marginal")
    assert (student.n_units, school.n_units, marginal.n_units) == (300, 30, 30)
    # integrating the school residuals out leaves about one effective parameter per
    # parameter of the model (8), where the conditional versions count every residual
    assert 5 < marginal.p_loo < 12 < school.p_loo
    assert marginal.n_bad_k <= 2
    assert conv_fit.elpd("school_marginal") is marginal  # cached
    with pytest.raises(bm.EstimationError, match="level must be one of"):
        conv_fit.elpd("cluster")


@pytest.mark.slow
def test_school_level_loo_agrees_with_refitting_without_the_school(conv_fit, conv_data):
    """PSIS-LOO with the school residuals integrated out, against its definition: refit
    without school j, then log mean_s p(y_j | theta_s), for three schools."""
    spec = conv_fit.spec
    psis = conv_fit.elpd("school_marginal", max_draws=2000)
    design = conv_fit.design
    ids = design.cluster_ids
    for j in (0, 11, 23):
        rest = conv_data[conv_data["cluster"] != ids[j]]
        refit = bm.fit_bayes(spec, rest, **SETTINGS)
        # every school's marginal log-likelihood under the refit's draws; keep school j
        lay, args = design.layout, design.likelihood_args()
        f = cluster_loglik(lay)
        names = list(refit.names)
        stacked = np.stack([refit.draws[n] for n in names], axis=-1)
        ll = np.array(
            [f(lay.to_theta(v), *args)[j] for v in stacked.reshape(-1, len(names))]
        ).reshape(stacked.shape[:2])
        top = ll.max()
        ratio = np.exp(ll - top)
        brute = top + math.log(ratio.mean())
        # Monte Carlo SE of log mean exp by the delta method, with the draws' ESS
        mcse = float(ratio.std() / ratio.mean() / math.sqrt(ess(ratio)))
        assert abs(psis.pointwise[j] - brute) < 4 * mcse + 0.02, (j, psis.pointwise[j], brute, mcse)


@pytest.mark.slow
def test_compare_ranks_bayes_fits_by_bic_and_by_school_level_loo(conv_fit, conv_data):
    spec = conv_fit.spec
    intercept_only = bm.make_spec(
        "y ~ x", cluster="cluster", level2={"1": "w", "x": "w"}, random="1", name="ri"
    )
    ri = bm.fit_bayes(intercept_only, conv_data, **SETTINGS)
    ml = bm.fit_ml(spec, conv_data)
    table = bm.compare([ml, conv_fit, ri], max_draws=1000)
    assert list(table["estimator"]) == ["ml", "bayes", "bayes"]
    assert np.isnan(table.loc[0, "elpd_loo"])
    # the data have a random slope (variance 0.5): leaving it out predicts new schools
    # worse (by about 1.3 SE with 30 schools)
    assert table.loc[1, "best_loo"] == "*" and table.loc[1, "elpd_diff"] == 0.0
    assert table.loc[2, "elpd_diff"] < -table.loc[2, "se_diff"] < 0
    assert table.loc[1, "elpd_loo"] == pytest.approx(conv_fit.elpd().elpd_loo)
    assert list(table.loc[1:, "rank_loo"]) == [1.0, 2.0]
    assert table.attrs["level"] == "school_marginal"
    assert isinstance(table.attrs["rank_disagreement"], bool)
    assert "elpd_loo" in bm.format_table(table)


@pytest.mark.slow
def test_arviz_loo_with_its_defaults_is_the_student_level(fig3_bayes):
    post = fig3_bayes
    loo = azs.loo(post.idata)
    student = post.elpd("student")
    assert loo.elpd == pytest.approx(student.elpd_loo, abs=1e-8)
    assert loo.se == pytest.approx(student.se_loo, abs=1e-8)
    assert loo.p == pytest.approx(student.p_loo, abs=1e-8)
    assert post.loo.elpd == pytest.approx(student.elpd_loo, abs=1e-8)
    np.testing.assert_array_equal(
        post.loo_data("student")["log_likelihood"]["y"].values,
        post.idata["log_likelihood"]["y"].values,
    )


@pytest.mark.slow
def test_each_level_is_a_tree_with_one_log_likelihood(fig3_bayes):
    post = fig3_bayes
    design = post.design
    student = post.idata["log_likelihood"]["y"].values
    for level, name, units in (
        ("school", "y_school", design.n_clusters),
        ("school_marginal", "y_school", design.n_clusters),
    ):
        tree = post.loo_data(level, max_draws=100)
        (values,) = tree["log_likelihood"].to_dataset().data_vars.values()
        assert values.name == name and values.dims == ("chain", "draw", "school")
        assert values.shape[2] == units
        assert azs.loo(tree).elpd == pytest.approx(
            post.elpd(level, max_draws=100).elpd_loo, abs=1e-8
        )
    # conditional on the residuals a school's log-likelihood is the sum over its students
    school = post.loo_data("school")["log_likelihood"]["y_school"].values
    np.testing.assert_allclose(
        school[:, :, 1], student[:, :, design.bounds[1] : design.bounds[2]].sum(axis=2)
    )
    # the marginal level keeps the draws it integrated, posterior and log-likelihood alike
    marginal = post.loo_data("school_marginal", max_draws=100)
    assert marginal["posterior"].sizes["draw"] == marginal["log_likelihood"].sizes["draw"] == 50
    assert post.loo_data("school_marginal", max_draws=100) is marginal  # cached


@pytest.mark.slow
def test_arviz_compare_agrees_with_bm_compare_at_both_levels(
    fig3_bayes, conventional_on_fig3_bayes
):
    fits = {"fig3": fig3_bayes, "conventional": conventional_on_fig3_bayes}
    for level in ("student", "school_marginal"):
        table = bm.compare(list(fits.values()), level=level, max_draws=200).set_index("model")
        if level == "student":
            trees = {name: fit.idata for name, fit in fits.items()}
        else:
            trees = {name: fit.loo_data(level, max_draws=200) for name, fit in fits.items()}
        ours = azs.compare(trees, round_to="none")
        for name, fit in fits.items():
            row = table.loc[fit.spec.name]
            assert ours.loc[name, "elpd"] == pytest.approx(row["elpd_loo"], abs=1e-8)
            assert ours.loc[name, "se"] == pytest.approx(row["se_loo"], abs=1e-8)
            assert ours.loc[name, "p"] == pytest.approx(row["p_loo"], abs=1e-8)
            # both this fit's elpd minus the best one's
            assert ours.loc[name, "elpd_diff"] == pytest.approx(row["elpd_diff"], abs=1e-8)
            assert ours.loc[name, "dse"] == pytest.approx(row["se_diff"], abs=1e-8)
    # the data come from the mixture, which predicts new schools better
    assert ours.index[0] == "fig3"


def test_levels_a_model_does_not_define_are_refused(fig1_spec):
    from bayesmix.analysis.loo import loo_data

    # the levels are checked before any draw is read
    no_clusters = SimpleNamespace(spec=fig1_spec, cache={})
    for level in ("school", "school_marginal"):
        with pytest.raises(bm.EstimationError, match="has no clusters; use level='student'"):
            loo_data(no_clusters, level)  # type: ignore[arg-type]
    with pytest.raises(bm.EstimationError, match="level must be one of"):
        loo_data(no_clusters, "cluster")  # type: ignore[arg-type]
