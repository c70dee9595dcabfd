"""Sampling weights: model files, scalings, and the weighted pseudo-likelihood checked
against duplicated rows and schools, at fixed parameters and fitted."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

import bayesmix as bm
from bayesmix.data.design import build_design
from bayesmix.density import gaussian
from bayesmix.density.quadrature import AdaptiveQuadrature
from bayesmix.errors import DataError, EstimationError, SpecError
from bayesmix.model.weights import Weights
from bayesmix.paper.section2 import FIG1_PARAMS, FIG3_PARAMS
from tests.support.paths import MODELS, REFERENCE


def weighted(spec: bm.Spec, **kw) -> bm.Spec:
    return dataclasses.replace(spec, weights=Weights(**kw))


def repeat_rows(data: pd.DataFrame, column: str) -> pd.DataFrame:
    """Each row as many times as its integer weight."""
    return data.loc[data.index.repeat(data[column].astype(int))].reset_index(drop=True)


def repeat_schools(data: pd.DataFrame, column: str, cluster: str) -> pd.DataFrame:
    """Each school as many times as its integer weight, the copies under new IDs."""
    parts = [
        group.assign(**{cluster: f"{school}/{k}"})
        for school, group in data.groupby(cluster, sort=True)
        for k in range(int(group[column].iloc[0]))
    ]
    return pd.concat(parts, ignore_index=True)


def with_weights(data: pd.DataFrame, cluster: str | None, seed: int) -> pd.DataFrame:
    """Integer student weights 1-3 (``wt``) and, with clusters, school weights 1-3 (``bwt``)."""
    rng = np.random.default_rng(seed)
    out = data.assign(wt=rng.integers(1, 4, len(data)).astype(float))
    if cluster is not None:
        ids = out[cluster].unique()
        school = dict(zip(ids, rng.integers(1, 4, len(ids)).astype(float), strict=True))
        out["bwt"] = out[cluster].map(school)
    return out


@pytest.fixture(scope="module")
def fig3_spec() -> bm.Spec:
    return bm.load_spec(MODELS / "fig3.toml")


@pytest.fixture(scope="module")
def fig3_data(fig3_spec) -> pd.DataFrame:
    data = bm.simulate(fig3_spec, FIG3_PARAMS, clusters=60, cluster_size=10, random_seed=3)
    return with_weights(data, "cluster", seed=2)


@pytest.fixture(scope="module")
def model_a() -> tuple[bm.Spec, pd.DataFrame]:
    spec = bm.load_spec(MODELS / "hsb_A.toml", classes=2)
    data = bm.datasets.load_hsb().query("school < 2000")
    return spec, with_weights(data, "school", seed=5)


# --- model files and checks -------------------------------------------------------------


def test_a_model_file_names_the_weights(tmp_path):
    text = (MODELS / "hsb_1.toml").read_text() + (
        '\n[weights]\nwithin = "wt"\nbetween = "bwt"\nscaling = "ecluster"\n'
        'between_scaling = "unscaled"\n'
    )
    path = tmp_path / "weighted.toml"
    path.write_text(text)
    spec = bm.load_spec(path)
    assert spec.weights == Weights("wt", "bwt", "ecluster", "unscaled")
    path.write_text(text.replace('between_scaling = "unscaled"', 'bscale = "unscaled"'))
    with pytest.raises(SpecError, match=r"\[weights\]: unknown key\(s\) \['bscale'\]"):
        bm.load_spec(path)
    assert bm.make_spec("y ~ x", weights="wt").weights == Weights(within="wt")


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        (dict(weights={"between": "bwt"}), "need a cluster column"),
        (dict(weights={"within": "wt", "scaling": "cluster"}), "use scaling 'sample'"),
        (dict(weights={"within": "x"}), "'x' is also a column of the model"),
        (dict(weights={"within": "wt", "scaling": "mean"}), "scaling must be one of"),
        (dict(weights={}), "weights name no column"),
    ],
)
def test_weights_a_model_cannot_use_are_refused(kw, message):
    with pytest.raises(SpecError, match=message):
        bm.make_spec("y ~ x", **kw)


def test_two_level_models_scale_within_schools():
    with pytest.raises(SpecError, match="use 'cluster' \\(the default\\)"):
        weights = {"within": "wt", "scaling": "sample"}
        bm.make_spec("math ~ ses", cluster="school", random="1", weights=weights)


def test_bad_weight_values_name_the_column_and_the_fix():
    spec = bm.make_spec(
        "math ~ ses", cluster="school", random="1", weights={"within": "wt", "between": "bwt"}
    )
    data = with_weights(bm.datasets.load_hsb().query("school < 1500"), "school", seed=1)
    with pytest.raises(DataError, match=r"weight column 'wt' has 1 value.*drop the rows"):
        build_design(spec, data.assign(wt=np.r_[0.0, data["wt"].to_numpy()[1:]]))
    varying = data.assign(bwt=np.r_[5.0, data["bwt"].to_numpy()[1:]])
    with pytest.raises(DataError, match="'bwt' varies within 1 cluster"):
        build_design(spec, varying)
    with pytest.raises(DataError, match="weight column 'wt' is not in the data"):
        build_design(spec, data.drop(columns="wt"))
    with pytest.raises(EstimationError, match="se='mlr'"):
        bm.fit_ml(spec, data, se="ml")


def test_the_scalings_give_the_documented_sums():
    data = with_weights(bm.datasets.load_hsb().query("school < 2000"), "school", seed=1)
    base = bm.make_spec("math ~ ses", cluster="school", random="1")
    sizes = data.groupby("school").size().to_numpy()
    sums = data.groupby("school")["wt"].sum().to_numpy()
    squares = data.groupby("school")["wt"].apply(lambda w: (w**2).sum()).to_numpy()

    def scaled(**kw):
        d = build_design(weighted(base, **kw), data)
        return d, d.weights, np.bincount(d.cluster, weights=d.weights.row)

    d, w, per_school = scaled(within="wt")
    np.testing.assert_allclose(per_school, sizes, rtol=1e-12)
    assert (w.scaling, w.between_scaling) == ("cluster", "sample")
    _, _, per_school = scaled(within="wt", scaling="ecluster")
    np.testing.assert_allclose(per_school, sums**2 / squares, rtol=1e-12)
    _, w, _ = scaled(within="wt", scaling="unscaled")
    np.testing.assert_array_equal(w.row, d.frame["wt"].to_numpy())
    # school weights: the products of the two sum to the number of students
    d, w, per_school = scaled(within="wt", between="bwt", scaling="ecluster")
    assert np.sum(w.cluster * per_school) == pytest.approx(len(data), rel=1e-12)
    np.testing.assert_allclose(
        w.cluster / w.cluster[0], d.schools.index.map(data.groupby("school")["bwt"].first())
        / data.groupby("school")["bwt"].first().iloc[0], rtol=1e-12,
    )  # fmt: skip
    single = build_design(bm.make_spec("math ~ ses", weights="wt"), data).weights
    assert single.row.sum() == pytest.approx(len(data), rel=1e-12)
    assert single.scaling == "sample"


# --- the weighted likelihood is that of duplicated data, at fixed parameters -----------------


def _quadrature_loglik(spec, data, theta, adapt: bool) -> float:
    design = build_design(spec, data)
    quad = AdaptiveQuadrature(design, 5, "jax")
    if adapt:
        quad.adapt(theta, iterations=4)
    return quad.value_and_grad(theta)[0]


@pytest.mark.parametrize("model", ["fig3", "model_a"])
def test_integer_weights_equal_duplicated_rows_and_schools(model, fig3_spec, fig3_data, model_a):
    if model == "fig3":
        spec, data = fig3_spec, fig3_data
    else:
        spec, data = model_a
    cluster = spec.cluster
    lay = build_design(spec, data).layout
    theta = 0.3 * np.random.default_rng(4).standard_normal(lay.n_params)
    for adapt in (False, True):
        students = _quadrature_loglik(
            weighted(spec, within="wt", scaling="unscaled"), data, theta, adapt
        )
        rows = _quadrature_loglik(spec, repeat_rows(data, "wt"), theta, adapt)
        schools = _quadrature_loglik(
            weighted(spec, between="bwt", between_scaling="unscaled"), data, theta, adapt
        )
        copies = _quadrature_loglik(spec, repeat_schools(data, "bwt", cluster), theta, adapt)
        # non-adaptive nodes are the same for both; adapted ones to rounding
        tol = 1e-10 if not adapt else 1e-7
        assert students == pytest.approx(rows, rel=0, abs=tol * max(1.0, abs(rows) / 1e4))
        assert schools == pytest.approx(copies, rel=0, abs=tol * max(1.0, abs(copies) / 1e4))


def test_one_class_weights_equal_duplicates_with_their_gradient():
    data = with_weights(bm.datasets.load_hsb().query("school < 2000"), "school", seed=1)
    spec = bm.load_spec(MODELS / "hsb_1.toml")
    rng = np.random.default_rng(1)

    def value(spec, data, theta):
        design = build_design(spec, data)
        y, F, R, _, V, bounds = design.likelihood_args()
        args = (design.layout, theta, y, F, R, V, bounds, design.weight_args())
        return gaussian.loglik_and_grad(*args)

    theta = 0.2 * rng.standard_normal(build_design(spec, data).layout.n_params)
    for w_spec, copied in (
        (weighted(spec, within="wt", scaling="unscaled"), repeat_rows(data, "wt")),
        (
            weighted(spec, between="bwt", between_scaling="unscaled"),
            repeat_schools(data, "bwt", "school"),
        ),
    ):
        ll, grad = value(w_spec, data, theta)
        ll_copy, grad_copy = value(spec, copied, theta)
        assert ll == pytest.approx(ll_copy, rel=1e-14)
        np.testing.assert_allclose(grad, grad_copy, rtol=1e-10, atol=1e-9)
        # the analytic gradient of the weighted form is its derivative
        step = 1e-6
        numeric = [
            (value(w_spec, data, theta + step * e)[0] - value(w_spec, data, theta - step * e)[0])
            / (2 * step)
            for e in np.eye(len(theta))
        ]
        np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-4)


# --- fitted: weighted and duplicated fits agree --------------------------------------------


@pytest.fixture(scope="module")
def fig3_fits(fig3_spec, fig3_data) -> dict[str, bm.MLResult]:
    kw = dict(starts=4, random_seed=1)
    return {
        "students": bm.fit_ml(
            weighted(fig3_spec, within="wt", scaling="unscaled"), fig3_data, **kw
        ),
        "rows": bm.fit_ml(fig3_spec, repeat_rows(fig3_data, "wt"), **kw),
        "schools": bm.fit_ml(
            weighted(fig3_spec, between="bwt", between_scaling="unscaled"), fig3_data, **kw
        ),
        "copies": bm.fit_ml(fig3_spec, repeat_schools(fig3_data, "bwt", "cluster"), **kw),
        "doubled": bm.fit_ml(
            weighted(fig3_spec, between="bwt", between_scaling="unscaled"),
            fig3_data.assign(bwt=2 * fig3_data["bwt"]),
            **kw,
        ),
    }


@pytest.mark.slow
@pytest.mark.parametrize(("pair"), [("students", "rows"), ("schools", "copies")])
def test_weighted_fits_equal_fits_to_duplicated_data(fig3_fits, pair):
    fit, copy = (fig3_fits[k] for k in pair)
    assert fit.se_type == "mlr" and fit.converged and copy.converged
    assert fit.loglik == pytest.approx(copy.loglik, abs=1e-5)
    shift = np.abs(fit.estimates - copy.estimates) / copy.se
    assert shift.max() < 1e-4


@pytest.mark.slow
def test_doubled_school_weights_give_the_same_estimates_and_robust_errors(fig3_fits):
    once, twice = fig3_fits["schools"], fig3_fits["doubled"]
    assert twice.loglik == pytest.approx(2 * once.loglik, rel=1e-9)
    assert np.max(np.abs(twice.estimates - once.estimates) / once.se) < 1e-4
    np.testing.assert_allclose(twice.se, once.se, rtol=1e-4)


def test_single_level_weights_in_a_mixture_and_in_one_class():
    spec = bm.load_spec(MODELS / "fig1.toml")
    data = with_weights(bm.simulate(spec, FIG1_PARAMS, n=600, random_seed=2), None, seed=3)
    kw = dict(starts=4, random_seed=1)
    fit = bm.fit_ml(weighted(spec, within="wt", scaling="unscaled"), data, **kw)
    copy = bm.fit_ml(spec, repeat_rows(data, "wt"), **kw)
    assert fit.loglik == pytest.approx(copy.loglik, abs=1e-5)
    assert np.max(np.abs(fit.estimates - copy.estimates) / copy.se) < 1e-4
    doubled = bm.fit_ml(
        weighted(spec, within="wt", scaling="unscaled"), data.assign(wt=2 * data["wt"]), **kw
    )
    assert np.max(np.abs(doubled.estimates - fit.estimates) / fit.se) < 1e-4
    np.testing.assert_allclose(doubled.se, fit.se, rtol=1e-4)
    # with the default scaling the weights sum to n, whatever their scale
    scaled = bm.fit_ml(weighted(spec, within="wt"), data, **kw)
    assert scaled.loglik == pytest.approx(fit.loglik * len(data) / data["wt"].sum(), rel=1e-6)
    np.testing.assert_allclose(scaled.se, fit.se, rtol=1e-4)


def test_a_weighted_fit_says_so_and_reloads(tmp_path):
    data = with_weights(bm.datasets.load_hsb().query("school < 2000"), "school", seed=1)
    spec = bm.make_spec(
        "math ~ ses", cluster="school", random="1", weights={"within": "wt", "between": "bwt"}
    )
    fit = bm.fit_ml(spec, data)
    assert fit.se_type == "mlr"
    assert "sampling weights: wt (cluster), schools bwt (sample)" in fit.summary()
    fit.save(tmp_path / "fit.json")
    back = bm.load_result(tmp_path / "fit.json")
    assert back.spec.weights == spec.weights
    assert back.loglik == fit.loglik
    np.testing.assert_array_equal(back.se, fit.se)


@pytest.mark.long
def test_model_a_weighted_fits_equal_fits_to_duplicated_data():
    """Model A (two classes, two integration dimensions) on 50 HSB schools: four fits of
    minutes each, so under make test-long."""
    spec = bm.load_spec(MODELS / "hsb_A.toml", classes=2)
    data = with_weights(bm.datasets.load_hsb().query("school < 3500"), "school", seed=5)
    kw = dict(starts=4, random_seed=1)
    pairs = [
        (
            bm.fit_ml(weighted(spec, within="wt", scaling="unscaled"), data, **kw),
            bm.fit_ml(spec, repeat_rows(data, "wt"), **kw),
        ),
        (
            bm.fit_ml(weighted(spec, between="bwt", between_scaling="unscaled"), data, **kw),
            bm.fit_ml(spec, repeat_schools(data, "bwt", "school"), **kw),
        ),
    ]
    for fit, copy in pairs:
        assert fit.converged and copy.converged
        assert fit.loglik == pytest.approx(copy.loglik, abs=1e-5)
        assert np.max(np.abs(fit.estimates - copy.estimates) / copy.se) < 1e-4


def test_weighted_clustered_regression_matches_r_weighted_lm_and_vcovcl():
    reference = json.loads((REFERENCE / "hsb_weighted_sandwich.json").read_text())
    data = bm.datasets.load_hsb()
    data["wt"] = 1 + data["female"] + 0.5 * data["minority"]
    spec = bm.make_spec("math ~ female + ses + catholic", cluster="school", weights="wt")
    fit = bm.fit_ml(spec, data)
    assert list(fit.names[:4]) == reference["names"]
    assert fit.design.n_clusters == reference["n_clusters"]
    np.testing.assert_allclose(fit.estimates[:4], reference["estimates"], rtol=1e-8)
    np.testing.assert_allclose(
        fit.params.loc["sigma2", "estimate"], reference["sigma2_pseudo_ml"], rtol=1e-8
    )
    np.testing.assert_allclose(fit.se[:4], reference["se_cadjust"], rtol=0, atol=1e-8)
