"""Bad input gives bayesmix's own errors naming the problem; random input never crashes."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bayesmix as bm
from bayesmix.data.design import build_design
from bayesmix.diagnostics import empty_classes
from tests.support.fits import two_level_60x10
from tests.support.paths import MODELS


def frame(n: int = 60, clusters: int = 6, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(clusters), n // clusters)
    w = rng.normal(size=clusters)[g]
    x = rng.normal(size=n)
    return pd.DataFrame({"y": x + w + rng.normal(size=n), "x": x, "w": w, "g": g})


TWO_LEVEL = {"cluster": "g", "random": "1"}

# what is wrong: (formula, make_spec keywords, data change, error, words the message has)
CASES = {
    "unknown column": ("y ~ z", {}, None, bm.DataError, ["'z'"]),
    "dangling plus": ("y ~ x +", {}, None, bm.FormulaError, ["'+'"]),
    "text column": ("y ~ x", {}, {"x": ["a"] * 60}, bm.DataError, ["'x'"]),
    "infinite value": ("y ~ x", {}, {"x": [np.inf] + [0.5] * 59}, bm.DataError, ["infinite"]),
    "missing value": ("y ~ x", {}, {"y": [np.nan] * 2 + [0.5] * 58}, bm.DataError, ["listwise"]),
    "constant covariate": ("y ~ x", {}, {"x": [2.0] * 60}, bm.DataError, ["'x'", "constant"]),
    "collinear covariates": ("y ~ x + x2", {}, "collinear", bm.DataError, ["'x2'", "collinear"]),
    "school covariate varies": (
        "y ~ x", {**TWO_LEVEL, "level2": {"1": "x"}}, None, bm.DataError, ["varies within"]
    ),
    "one row per cluster": ("y ~ x", TWO_LEVEL, "singletons", bm.DataError, ["single row"]),
    "too few clusters": (
        "y ~ x", {"cluster": "g", "random": ["1", "x"]}, "two clusters", bm.DataError,
        ["2 cluster", "random"],
    ),
    "K above what y can separate": (
        "y ~ x", {"classes": 3}, "binary y", bm.DataError, ["distinct values", "fewer classes"]
    ),
    "more parameters than rows": (
        "y ~ x", {"classes": 4}, "five rows", bm.DataError, ["parameters", "rows"]
    ),
}  # fmt: skip


def _data(change) -> pd.DataFrame:
    data = frame()
    if isinstance(change, dict):
        for col, values in change.items():
            data[col] = values
    elif change == "collinear":
        data["x2"] = 2.0 * data["x"] - 1.0
    elif change == "singletons":
        data["g"] = np.arange(len(data))
    elif change == "two clusters":
        data["g"] = np.arange(len(data)) % 2
    elif change == "binary y":
        data["y"] = (data["y"] > 0).astype(float)
    elif change == "five rows":
        data = data.iloc[:5]
    return data


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_names_the_problem_and_the_fix(case):
    formula, kwargs, change, error, words = CASES[case]
    with pytest.raises(error) as info:
        bm.fit_ml(bm.make_spec(formula, **kwargs), _data(change))
    for word in words:
        assert word in str(info.value)


def test_weak_designs_warn():
    data = frame(n=40, clusters=4)
    with pytest.warns(bm.errors.DesignWarning, match="only 4 clusters"):
        build_design(bm.make_spec("y ~ x", cluster="g", random="1"), data)
    data = frame(n=200, clusters=20)
    data.loc[0, "g"] = 99  # one school with one student
    with pytest.warns(bm.errors.DesignWarning, match="1 of 21 clusters .* single row"):
        build_design(bm.make_spec("y ~ x", cluster="g", random=["1", "x"]), data)


def test_empty_classes_are_flagged():
    (note,) = empty_classes(np.array([600.0, 399.6, 0.4]), 1000)
    assert (note.code, note.category) == ("empty_class", bm.errors.EmptyClassWarning)
    assert note.message.startswith("class 3 holds 0.40 of 1000 units (0.04%): ")
    with pytest.warns(bm.errors.EmptyClassWarning, match="class 3 holds 0.40 of 1000"):
        note.warn()
    # the threshold: 0.5% of the units, and at least one unit
    assert empty_classes(np.array([995.0, 5.0]), 1000) == []
    assert len(empty_classes(np.array([995.1, 4.9]), 1000)) == 1
    assert len(empty_classes(np.array([99.1, 0.9]), 100)) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert empty_classes(np.array([500.0, 500.0]), 1000) == []


def test_a_class_of_one_outlier_is_reported_by_the_fit():
    rng = np.random.default_rng(0)
    x = rng.normal(size=400)
    y = 1.0 + 0.5 * x + np.random.default_rng(3).normal(size=400)
    y[0] = 40.0
    spec = bm.make_spec("y ~ x", classes=2, class_varying="1")
    with pytest.warns(bm.errors.EmptyClassWarning, match=r"class 1 holds 1.00 of 400 units"):
        fit = bm.fit_ml(spec, pd.DataFrame({"x": x, "y": y}), starts=4, random_seed=1)
    assert "! class 1 holds" in fit.summary()


COLUMN_VALUES = st.one_of(
    st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=1, max_size=12),
    st.lists(st.integers(-3, 3), min_size=1, max_size=12),
    st.lists(st.text(max_size=3), min_size=1, max_size=12),
    st.lists(st.booleans(), min_size=1, max_size=12),
    st.lists(st.none(), min_size=1, max_size=3),
)
NAMES = st.sampled_from(["y", "x", "w", "g", "z", "1", "x:w", "0", "-1", "", "y y", "x+"])


@st.composite
def bad_frames(draw):
    cols = draw(st.lists(st.sampled_from(["y", "x", "w", "g", "q"]), max_size=5, unique=True))
    n = draw(st.integers(0, 12))
    data = {}
    for col in cols:
        values = draw(COLUMN_VALUES)
        data[col] = (values * (n // len(values) + 1))[:n]
    return pd.DataFrame(data)


@st.composite
def bad_specs(draw):
    terms = draw(st.lists(NAMES, max_size=3))
    outcome = draw(NAMES)
    formula = f"{outcome} ~ {' + '.join(terms)}" if draw(st.booleans()) else " ".join(terms)
    kwargs = {
        "classes": draw(st.integers(-1, 4)),
        "cluster": draw(st.sampled_from([None, "g", "q", "nope"])),
    }
    if kwargs["cluster"] and draw(st.booleans()):
        kwargs["random"] = draw(st.lists(NAMES, max_size=2))
    if draw(st.booleans()):
        kwargs["membership"] = draw(NAMES)
    return formula, kwargs


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
@given(spec=bad_specs(), data=bad_frames())
def test_random_bad_input_raises_only_bayesmix_errors(spec, data):
    formula, kwargs = spec
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bm.BayesmixWarning)
        try:
            fit = bm.fit_ml(bm.make_spec(formula, **kwargs), data, starts=1)
        except bm.BayesmixError as err:
            assert str(err)  # every error says something
            return
    assert np.isfinite(fit.loglik)


def _outcome_scale_map(lay, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Natural parameters of y * scale from those of y: ``a * value + b``, written out
    by parameter kind (the expectation the standardised fit must meet)."""
    outcome_terms = set(lay.spec.random)
    a, b = np.ones(lay.n_params), np.zeros(lay.n_params)
    for k, name in enumerate(lay.names):
        if name.startswith(("var(", "cov(")):
            terms = [t.removeprefix("u_") for t in name[4:-1].split(",")]
            power = sum(t in outcome_terms for t in terms) * (2 if len(terms) == 1 else 1)
            a[k] = scale**power
        elif name.startswith("sigma2"):
            a[k] = scale**2
        elif name.startswith("log(sigma2) ~ 1"):
            b[k] = 2.0 * np.log(scale)
        elif not name.startswith(("C#", "D#", "log(", "lambda(")):
            a[k] = scale
    return a, b


@pytest.mark.parametrize("model", ["conventional", "fig3"])
def test_estimates_follow_the_outcome_scale_from_1e_minus_6_to_1e6(model):
    # 60 schools x 10 students (seed 1) and their fit from 4 starts (seed 1)
    shared = two_level_60x10(model)
    spec, data, base = shared.spec, shared.data, shared.ml
    for scale in (1e-6, 1e6):
        fit = bm.fit_ml(spec, data.assign(y=data["y"] * scale), starts=4, random_seed=1)
        a, b = _outcome_scale_map(fit.design.layout, scale)
        assert fit.converged and np.isfinite(fit.se).all()
        np.testing.assert_allclose((fit.estimates - b) / a, base.estimates, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(fit.se / a, base.se, rtol=1e-3)
        assert fit.loglik + len(data) * np.log(scale) == pytest.approx(base.loglik, abs=1e-6)


def test_standardisation_maps_every_parameter_kind():
    from bayesmix.data.standardise import standardise

    spec = bm.load_spec(MODELS / "fig3.toml")
    design = build_design(spec, frame_fig3())
    _, st = standardise(design)
    s_y, s_x, s_w = st.y_scale, st.scale["x"], st.scale["w"]
    A = dict(zip(design.layout.names, np.diag(st.A), strict=True))
    assert A["x[c1]"] == pytest.approx(s_y / s_x) and A["w"] == pytest.approx(s_y / s_w)
    assert A["var(u_1)"] == pytest.approx(s_y**2) and A["sigma2"] == pytest.approx(s_y**2)
    assert A["var(u_C#1)"] == 1.0 and A["C#1 ~ x"] == pytest.approx(1 / s_x)
    shift = dict(zip(design.layout.names, st.b, strict=True))
    # the intercepts absorb the outcome's mean; nothing else shifts
    assert shift["1[c1]"] == pytest.approx(design.y.mean())
    assert not any(v for k, v in shift.items() if not k.startswith("1["))
    spec_1b = bm.make_spec("y ~ x", residual_covariates="x")
    design_1b = build_design(spec_1b, frame())
    _, st_1b = standardise(design_1b)
    shift = dict(zip(design_1b.layout.names, st_1b.b, strict=True))
    assert shift["log(sigma2) ~ 1"] == pytest.approx(2 * np.log(st_1b.y_scale))
    assert shift["log(sigma2) ~ x"] == 0.0


def frame_fig3() -> pd.DataFrame:
    from bayesmix.paper.section2 import FIG3_PARAMS

    return bm.simulate(bm.load_spec(MODELS / "fig3.toml"), FIG3_PARAMS, clusters=20,
                       cluster_size=5, random_seed=2)  # fmt: skip


def test_clusters_of_1_to_500_students_give_finite_fits():
    from bayesmix.paper.section2 import CONVENTIONAL_PARAMS, FIG3_PARAMS

    rng = np.random.default_rng(4)
    sizes = np.concatenate([[1, 1, 2, 500, 350], rng.integers(1, 60, size=40)])
    for name, values in (("conventional", CONVENTIONAL_PARAMS), ("fig3", FIG3_PARAMS)):
        spec = bm.load_spec(MODELS / f"{name}.toml")
        base = bm.simulate(spec, values, clusters=len(sizes), cluster_size=500, random_seed=4)
        keep = base.groupby("cluster").cumcount() < np.repeat(sizes, 500)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", bm.errors.DesignWarning)
            fit = bm.fit_ml(spec, base[keep], starts=4, random_seed=1)
        assert fit.design.n_obs == sizes.sum()
        assert np.isfinite(fit.loglik) and np.isfinite(fit.estimates).all()
        assert np.isfinite(fit.se).all() and fit.max_abs_gradient < 1e-2


# --- model files: random TOML through the command line ---------------------------------------

VALUES = st.one_of(
    NAMES,
    st.integers(-2, 4),
    st.booleans(),
    st.floats(allow_nan=False, allow_infinity=False, width=16),
    st.lists(NAMES, max_size=3),
    st.sampled_from(["all", "class", "common", "factor", "independent", "diagonal", "none"]),
    st.dictionaries(NAMES, NAMES, max_size=2),
)
TABLES = {
    "outcome": ["formula", "class_varying", "residual_variance", "order_classes_by",
                "residual_covariates", "residual_groups", "typo"],
    "membership": ["formula", "random", "typo"],
    "random": ["terms", "covariance", "typo"],
    "level2": ["1", "x", "typo"],
    "between": ["classes", "formula", "varying", "typo"],
}  # fmt: skip


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return (
            "{" + ", ".join(f"{_toml_value(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"
        )
    return repr(value)


# values that often make a valid model, so that the files reach the data checks and the fit
LIKELY = {
    "formula": st.sampled_from(["y ~ x", "y ~ x + w", "y ~ 1", "y ~ z", "y ~", "x ~ y + x"]),
    "classes": st.integers(0, 3),
    "cluster": st.sampled_from(["g", "w", "nope"]),
    "terms": st.lists(st.sampled_from(["1", "x", "w"]), max_size=2),
    "1": st.sampled_from(["w", "x", "w + x"]),
    "x": st.sampled_from(["w", "q"]),
    "class_varying": st.sampled_from(["all", "1", ["1", "x"], ["w"]]),
}


@st.composite
def model_files(draw) -> str:
    def value(key: str):
        if key in LIKELY and draw(st.booleans()):
            return draw(LIKELY[key])
        return draw(VALUES)

    lines = []
    for key in draw(st.lists(st.sampled_from(["classes", "cluster", "centre", "name", "typo"]),
                             max_size=3, unique=True)):  # fmt: skip
        lines.append(f"{key} = {_toml_value(value(key))}")
    for table in draw(st.lists(st.sampled_from(list(TABLES)), max_size=4, unique=True)):
        lines.append(f"[{table}]")
        keys = draw(st.lists(st.sampled_from(TABLES[table]), max_size=3, unique=True))
        if table == "outcome" and draw(st.booleans()):
            keys = ["formula", *[k for k in keys if k != "formula"]]
        for key in keys:
            lines.append(f"{_toml_value(key)} = {_toml_value(value(key))}")
    return "\n".join(lines) + "\n"


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
@given(text=model_files())
def test_random_model_files_give_a_bayesmix_error_or_a_fit(text, tmp_path_factory):
    from bayesmix.cli import main

    folder = tmp_path_factory.mktemp("model")
    (folder / "m.toml").write_text(text)
    frame().to_csv(folder / "d.csv", index=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bm.BayesmixWarning)
        code = main(["fit", str(folder / "m.toml"), "--data", str(folder / "d.csv"),
                     "--starts", "1", "--quiet"])  # fmt: skip
    assert code in (0, 2)  # a fit, or "bayesmix: error: ..." (an exception would propagate)
