"""The plots draw what they claim: subsets, class lines, curves and intervals."""

from __future__ import annotations

import warnings

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
from matplotlib.collections import LineCollection, PolyCollection
from matplotlib.figure import Figure

import bayesmix as bm
from bayesmix.data.datasets import load_hsb
from bayesmix.data.design import build_design
from bayesmix.errors import DataError, EstimationError, ReplicationWarning, SamplingWarning
from bayesmix.paper.section2 import FIG1_PARAMS
from bayesmix.plots import (
    plot_class_lines,
    plot_diagnostics,
    plot_fig1,
    plot_fig5,
    plot_membership,
    plot_ml_vs_bayes,
)
from bayesmix.results.ml import MLResult, StartsReport
from tests.support.paths import MODELS
from tests.support.settings import PLOTS

WALD_Z = 1.959964


@pytest.fixture(scope="module")
def gender_data(fig1_spec):
    return bm.simulate(fig1_spec, FIG1_PARAMS, n=4000, covariates={"x": "bernoulli"}, random_seed=5)


def test_fig1_panels_count_every_student_once(gender_data, tmp_path):
    fig = plot_fig1(gender_data)
    axes = fig.get_axes()
    assert len(axes) == 5
    titles = [ax.get_title() for ax in axes]
    assert titles[0].startswith("(a) low class, females")
    assert titles[3].startswith("(d) high class, males")
    assert titles[4] == "(e) observed distributions, classes ignored"
    counts = [int(t.split("n=")[1].rstrip(")")) for t in titles[:4]]
    assert sum(counts) == len(gender_data)
    expected_a = int(((gender_data["x"] == 1) & (gender_data["C"] == 2)).sum())
    assert counts[0] == expected_a
    # histogram bar heights of panel (a) add up to its count
    heights = sum(p.get_height() for p in axes[0].patches)
    assert heights == expected_a
    legend = [t.get_text() for t in axes[4].get_legend().get_texts()]
    male_mean = gender_data.loc[gender_data["x"] == 0, "y"].mean()
    assert legend[0] == f"males (mean {male_mean:.2f})"
    fig.savefig(tmp_path / "fig1.png")
    assert (tmp_path / "fig1.png").stat().st_size > 10_000


def test_fig1_accepts_modal_classes_of_a_fit(gender_data):
    modal = np.where(gender_data["y"] > 1.5, 1, 2)
    fig = plot_fig1(gender_data, classes=modal)
    n_a = int(((gender_data["x"] == 1) & (modal == 2)).sum())
    assert fig.get_axes()[0].get_title().endswith(f"(n={n_a})")


def test_school_effects_plot_reports_share():
    import pandas as pd

    from bayesmix.plots import plot_school_effects

    eff = pd.DataFrame(
        {
            "coef_1": [10.0, 12.0, 14.0, 9.0],
            "coef_female": [0.5, -1.0, -2.0, 0.2],
            "sd_coef_1": [1.0] * 4,
            "sd_coef_female": [0.5] * 4,
        }
    )
    fig = plot_school_effects(eff, errorbars=True)
    ax = fig.get_axes()[0]
    assert ax.get_title() == "4 schools; female coefficient > 0 in 50.0%"
    assert ax.get_xlabel() == "school coefficient of intercept"
    offsets = ax.collections[-1].get_offsets()
    np.testing.assert_allclose(offsets[:, 1], [0.5, -1.0, -2.0, 0.2])


# -- fitted models ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fig1_data(fig1_spec):
    return bm.simulate(fig1_spec, FIG1_PARAMS, n=2000, covariates={"x": "bernoulli"}, random_seed=5)


@pytest.fixture(scope="module")
def fig1_ml(fig1_spec, fig1_data):
    # few starts keep the test fast; whether they replicate does not matter to a plot
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ReplicationWarning)
        return bm.fit_ml(fig1_spec, fig1_data, starts=4, random_seed=1)


@pytest.fixture(scope="module")
def fig1_bayes(fig1_spec, fig1_data):
    # 100 draws cannot mix, and the plots need no converged posterior
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)
        warnings.filterwarnings("ignore", message="Estimated shape parameter of Pareto")
        return bm.fit_bayes(fig1_spec, fig1_data, **PLOTS.kwargs(random_seed=1, ml_starts=4))


@pytest.fixture(scope="module")
def model_c_result():
    """Model C (K = 3, L = 2) on HSB with made-up estimates: plots need no optimum."""
    spec = bm.load_spec(MODELS / "hsb_C.toml")
    design = build_design(spec, "hsb")
    rng = np.random.default_rng(3)
    names = tuple(design.layout.names)
    estimates = rng.normal(0.0, 1.0, len(names))
    for k, name in enumerate(names):
        if name.startswith(("var(", "sigma2")):
            estimates[k] = 1.0
        elif name.startswith("cov("):
            estimates[k] = 0.0
    n, J = design.n_obs, len(design.cluster_ids)
    zeros = np.zeros(len(names))
    return MLResult(
        spec=spec,
        design=design,
        names=names,
        estimates=estimates,
        se=np.full(len(names), 0.1),
        z=zeros,
        p=zeros,
        cov=np.eye(len(names)),
        loglik=0.0,
        class_probabilities=rng.dirichlet(np.ones(3), size=n),
        starts=StartsReport(1, np.zeros(1), 1, 1, None),
        converged=True,
        max_abs_gradient=0.0,
        boundary=(),
        singular_information=False,
        diagnostics=(),
        elapsed_s=0.0,
        between_probabilities=rng.dirichlet(np.ones(2), size=J),
    )


def _legend_texts(ax):
    return [t.get_text() for t in ax.get_legend().get_texts()]


def _softmax_last_reference(gamma, z):
    logits = np.append(np.asarray(gamma) @ z, 0.0)
    e = np.exp(logits - logits.max())
    return e / e.sum()


# -- Fig 5 ------------------------------------------------------------------------------------


def test_fig5_panels_describe_each_gender(tmp_path):
    hsb = load_hsb()
    fig = plot_fig5(hsb)
    axes = fig.get_axes()
    assert len(axes) == 4
    titles = [ax.get_title() for ax in axes]
    males, females = hsb[hsb["female"] == 0], hsb[hsb["female"] == 1]
    assert titles[0] == f"(a) males: math (n={len(males)}, mean {males['math'].mean():.2f})"
    assert titles[1] == "(a) males: math on ses"
    assert titles[2] == f"(b) females: math (n={len(females)}, mean {females['math'].mean():.2f})"
    assert titles[3] == "(b) females: math on ses"
    assert sum(p.get_height() for p in axes[0].patches) == len(males)
    assert sum(p.get_height() for p in axes[2].patches) == len(females)
    offsets = axes[3].collections[0].get_offsets()
    np.testing.assert_allclose(offsets[:, 0], females["ses"])
    np.testing.assert_allclose(offsets[:, 1], females["math"])
    assert [axes[1].get_xlabel(), axes[1].get_ylabel()] == ["ses", "math"]
    assert axes[0].get_ylim() == axes[2].get_ylim()
    fig.savefig(tmp_path / "fig5.png")
    assert (tmp_path / "fig5.png").stat().st_size > 10_000


# -- class lines ------------------------------------------------------------------------------


def test_class_lines_ml_are_the_class_regressions(fig1_ml):
    fig = plot_class_lines(fig1_ml, "x")
    (ax,) = fig.get_axes()
    lines = ax.get_lines()
    assert len(lines) == fig1_ml.spec.classes == 2
    beta = np.asarray(fig1_ml.structured.beta)
    for c, line in enumerate(lines):
        x, y = line.get_xdata(), line.get_ydata()
        assert (x[0], x[-1]) == (0.0, 1.0)
        np.testing.assert_allclose([y[0], y[-1]], [beta[c, 0], beta[c, 0] + beta[c, 1]])
    shares = fig1_ml.class_probabilities.mean(axis=0)
    assert _legend_texts(ax) == [f"class {c + 1} ({100 * shares[c]:.1f}%)" for c in range(2)]
    modal = fig1_ml.class_probabilities.argmax(axis=1)
    points = [len(col.get_offsets()) for col in ax.collections]
    assert points == list(np.bincount(modal, minlength=2))
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("x", "y")


def test_class_lines_with_other_data_scatter_it_in_grey(fig1_ml, fig1_data):
    fig = plot_class_lines(fig1_ml, "x", data=fig1_data.iloc[:50])
    (ax,) = fig.get_axes()
    assert len(ax.collections) == 1
    assert len(ax.collections[0].get_offsets()) == 50
    assert len(ax.get_lines()) == 2


def test_class_lines_model_c_one_panel_per_level2_class(model_c_result):
    res = model_c_result
    fig = plot_class_lines(res, "ses")
    axes = fig.get_axes()
    assert len(axes) == 2
    frame = res.design.frame
    mean = {w: frame[w].mean() for w in ("pracad", "catholic", "meanses", "female")}
    mean_female_w = {w: (frame["female"] * frame[w]).mean() for w in ("pracad", "catholic")}
    mean_female_w["meanses"] = (frame["female"] * frame["meanses"]).mean()
    beta = np.asarray(res.structured.beta)
    names = res.spec.fixed_names
    col = {n: names.index(n) for n in names}
    ses = frame["ses"].to_numpy()
    for d, ax in enumerate(axes):
        assert ax.get_title().startswith(f"level-2 class {d + 1} (")
        assert len(ax.get_lines()) == 3
        for c, line in enumerate(ax.get_lines()):
            b = beta[d * 3 + c]
            intercept = (
                b[col["1"]]
                + sum(b[col[w]] * mean[w] for w in ("pracad", "catholic", "meanses"))
                + b[col["female"]] * mean["female"]
                + sum(b[col[f"female:{w}"]] * mean_female_w[w] for w in mean_female_w)
            )
            slope = b[col["ses"]] + sum(
                b[col[f"ses:{w}"]] * mean[w] for w in ("pracad", "catholic", "meanses")
            )
            x = np.array([ses.min(), ses.max()])
            y = line.get_ydata()[[0, -1]]
            np.testing.assert_allclose(line.get_xdata()[[0, -1]], x)
            np.testing.assert_allclose(y, intercept + slope * x)
    # every student appears in the panel of the modal class of their school
    total = sum(len(coll.get_offsets()) for ax in axes for coll in ax.collections)
    assert total == res.design.n_obs


def test_class_lines_rejects_a_term_not_in_the_outcome_formula(fig1_ml):
    with pytest.raises(DataError, match="not a covariate of the outcome formula"):
        plot_class_lines(fig1_ml, "z")


# -- membership -------------------------------------------------------------------------------


def test_membership_ml_curves_follow_the_logit_and_sum_to_one(fig1_ml):
    fig = plot_membership(fig1_ml, "x")
    (ax,) = fig.get_axes()
    lines = ax.get_lines()
    assert len(lines) == 2
    total = np.sum([line.get_ydata() for line in lines], axis=0)
    np.testing.assert_allclose(total, 1.0)
    gamma = np.asarray(fig1_ml.structured.gamma)
    for x in (0.0, 1.0):
        k = int(np.flatnonzero(lines[0].get_xdata() == x)[0])
        expected = _softmax_last_reference(gamma, np.array([1.0, x]))
        np.testing.assert_allclose([line.get_ydata()[k] for line in lines], expected)
    # the observations' posterior probabilities, one scatter per class
    offsets = ax.collections[1].get_offsets()
    np.testing.assert_allclose(offsets[:, 1], fig1_ml.class_probabilities[:, 1])
    assert ax.get_xlabel() == "x"


def test_membership_model_c_holds_other_covariates_at_their_means(model_c_result):
    res = model_c_result
    fig = plot_membership(res, "meanses")
    (ax,) = fig.get_axes()
    lines = ax.get_lines()
    assert len(lines) == 3
    np.testing.assert_allclose(np.sum([ln.get_ydata() for ln in lines], axis=0), 1.0)
    frame = res.design.frame
    z = np.array([1.0, *(frame[t].mean() for t in ("female", "ses", "pracad", "catholic")), 0.0])
    gamma = np.asarray(res.structured.gamma)
    for k in (0, -1):
        z[-1] = lines[0].get_xdata()[k]
        expected = _softmax_last_reference(gamma, z)
        np.testing.assert_allclose([ln.get_ydata()[k] for ln in lines], expected)


def test_membership_rejects_a_covariate_not_in_the_membership_formula(fig1_ml):
    with pytest.raises(DataError, match="not a covariate of the membership formula"):
        plot_membership(fig1_ml, "y")


# -- Bayes ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_class_lines_bayes_mean_line_and_band(fig1_bayes):
    fig = plot_class_lines(fig1_bayes, "x")
    (ax,) = fig.get_axes()
    lines = ax.get_lines()
    assert len(lines) == 2
    bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert len(bands) == 2
    for c, (line, band) in enumerate(zip(lines, bands, strict=True)):
        b1 = fig1_bayes.draws[f"1[c{c + 1}]"].ravel()
        bx = fig1_bayes.draws[f"x[c{c + 1}]"].ravel()
        at_one = b1 + bx
        np.testing.assert_allclose(line.get_ydata()[[0, -1]], [b1.mean(), at_one.mean()])
        vertices = band.get_paths()[0].vertices
        for x, values in ((0.0, b1), (1.0, at_one)):
            ys = vertices[vertices[:, 0] == x, 1]
            for q in np.quantile(values, [0.025, 0.975]):
                assert np.isclose(ys, q).any()
    assert "posterior mean" in ax.get_legend().get_title().get_text()


@pytest.mark.slow
def test_membership_bayes_bands_and_curves_sum_to_one(fig1_bayes):
    fig = plot_membership(fig1_bayes, "x")
    (ax,) = fig.get_axes()
    lines = ax.get_lines()
    np.testing.assert_allclose(np.sum([ln.get_ydata() for ln in lines], axis=0), 1.0)
    assert sum(isinstance(c, PolyCollection) for c in ax.collections) == 2
    g0 = fig1_bayes.draws["C#1 ~ 1"].ravel()
    expected = np.mean(1.0 / (1.0 + np.exp(-g0)))
    np.testing.assert_allclose(lines[0].get_ydata()[0], expected)


@pytest.mark.slow
def test_ml_vs_bayes_rows_and_interval_ends(fig1_ml, fig1_bayes):
    fig = plot_ml_vs_bayes(fig1_ml, fig1_bayes)
    (ax,) = fig.get_axes()
    names = list(fig1_ml.names)
    assert [t.get_text() for t in ax.get_yticklabels()] == names
    by_label = {c.get_label(): c for c in ax.collections if isinstance(c, LineCollection)}
    ml_segments = np.array(by_label["ML (95% Wald)"].get_segments())
    bayes_segments = np.array(by_label["Bayes (95% credible)"].get_segments())
    assert len(ml_segments) == len(bayes_segments) == len(names)
    est, se = fig1_ml.params["estimate"].to_numpy(), fig1_ml.params["se"].to_numpy()
    np.testing.assert_allclose(ml_segments[:, 0, 0], est - WALD_Z * se, rtol=1e-6)
    np.testing.assert_allclose(ml_segments[:, 1, 0], est + WALD_Z * se, rtol=1e-6)
    table = fig1_bayes.table.loc[names]
    np.testing.assert_allclose(bayes_segments[:, 0, 0], table["q2.5"])
    np.testing.assert_allclose(bayes_segments[:, 1, 0], table["q97.5"])
    # the two markers of a row sit on either side of its tick
    assert np.all(ml_segments[:, 0, 1] < np.arange(len(names)))
    assert np.all(bayes_segments[:, 0, 1] > np.arange(len(names)))
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == ["ML (95% Wald)", "Bayes (95% credible)"]


@pytest.mark.slow
def test_ml_vs_bayes_subset_and_standardised(fig1_ml, fig1_bayes):
    fig = plot_ml_vs_bayes(fig1_ml, fig1_bayes, names=["x[c1]", "x[c2]"], standardize=True)
    (ax,) = fig.get_axes()
    assert [t.get_text() for t in ax.get_yticklabels()] == ["x[c1]", "x[c2]"]
    by_label = {c.get_label(): c for c in ax.collections if isinstance(c, LineCollection)}
    ml_segments = np.array(by_label["ML (95% Wald)"].get_segments())
    np.testing.assert_allclose(ml_segments[:, :, 0], [[-WALD_Z, WALD_Z]] * 2, rtol=1e-6)
    se = fig1_ml.params.loc["x[c1]", "se"]
    shifted = (fig1_bayes.table.loc["x[c1]", "q2.5"] - fig1_ml.params.loc["x[c1]", "estimate"]) / se
    bayes_segments = np.array(by_label["Bayes (95% credible)"].get_segments())
    np.testing.assert_allclose(bayes_segments[0, 0, 0], shifted)
    assert "ML standard errors" in ax.get_xlabel()
    with pytest.raises(DataError, match="not in both fits"):
        plot_ml_vs_bayes(fig1_ml, fig1_bayes, names=["nope"])


@pytest.mark.slow
@pytest.mark.parametrize(
    ("kind", "var_names", "n_axes"),
    [
        ("trace", ["1[c1]", "sigma2[c1]"], 4),
        ("rank", ["1[c1]", "1[c2]"], 2),
        ("pair", ["1[c1]", "1[c2]", "sigma2[c1]", "sigma2[c2]"], 16),
    ],
)
def test_diagnostics_draw_the_chosen_variables(fig1_bayes, kind, var_names, n_axes):
    fig = plot_diagnostics(fig1_bayes, kind, var_names=var_names)
    assert isinstance(fig, Figure)
    assert len(fig.get_axes()) == n_axes
    assert fig.get_suptitle() == f"fig1: {kind} diagnostics"


@pytest.mark.slow
def test_diagnostics_defaults_and_errors(fig1_bayes):
    rank = plot_diagnostics(fig1_bayes, "rank")
    # one panel per parameter: 2 intercepts, 2 slopes, 2 residual variances, 2 logit
    # coefficients (the class shares are no parameters)
    assert len(rank.get_axes()) == 8
    energy = plot_diagnostics(fig1_bayes, "energy")
    assert isinstance(energy, Figure)
    assert energy.get_axes()
    with pytest.raises(EstimationError, match="unknown diagnostic kind 'forest'"):
        plot_diagnostics(fig1_bayes, "forest")  # type: ignore[arg-type]
    with pytest.raises(EstimationError, match="not in the posterior"):
        plot_diagnostics(fig1_bayes, "trace", var_names=["b_2"])
