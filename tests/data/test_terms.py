"""Formula terms coded on data (bayesmix.data.terms): categorical columns, products and
transforms give the design, the names and the fits of hand-made columns.

HSB has no sector column; ``sector`` is derived here with three levels: ``catholic``
(catholic = 1), and the public schools split by size: ``public_large`` (size > 1000,
64 schools) and ``public_small`` (26 schools). Its levels sort with ``catholic``
first, so treatment coding names ``C(sector)[T.public_large]`` and
``C(sector)[T.public_small]``.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import bayesmix as bm
from bayesmix.data.design import build_design
from bayesmix.errors import DataError, SamplingWarning, SpecError

FORMULA = "math ~ C(sector) + center(ses) + female*minority"
LEVEL2 = {"1": "meanses", "center(ses)": "C(sector)"}
NAMES = (
    "1", "meanses", "C(sector)[T.public_large]", "C(sector)[T.public_small]", "center(ses)",
    "center(ses):C(sector)[T.public_large]", "center(ses):C(sector)[T.public_small]",
    "female", "minority", "female:minority", "var(u_1)", "sigma2",
)  # fmt: skip
# the same model on columns made by hand, name for name
HAND_FORMULA = "math ~ large + small + ses_c + female + minority + female:minority"
HAND_LEVEL2 = {"1": "meanses", "ses_c": "large + small"}
HAND_NAMES = (
    "1", "meanses", "large", "small", "ses_c", "ses_c:large", "ses_c:small",
    "female", "minority", "female:minority", "var(u_1)", "sigma2",
)  # fmt: skip


def with_sector(data: pd.DataFrame) -> pd.DataFrame:
    """HSB with the text column sector and its hand-made dummies and centred ses."""
    public = data["catholic"] == 0
    sector = np.where(public, np.where(data["size"] > 1000, "public_large", "public_small"), "")
    data = data.assign(sector=np.where(public, sector, "catholic"))
    return data.assign(
        large=(data["sector"] == "public_large").astype(float),
        small=(data["sector"] == "public_small").astype(float),
        ses_c=data["ses"] - data["ses"].mean(),
    )


@pytest.fixture(scope="module")
def hsb() -> pd.DataFrame:
    return with_sector(bm.datasets.load_hsb())


@pytest.fixture(scope="module")
def spec() -> bm.Spec:
    return bm.make_spec(FORMULA, cluster="school", random="1", level2=LEVEL2)


@pytest.fixture(scope="module")
def fits(hsb: pd.DataFrame, spec: bm.Spec) -> tuple[bm.MLResult, bm.MLResult]:
    hand = bm.make_spec(HAND_FORMULA, cluster="school", random="1", level2=HAND_LEVEL2)
    return bm.fit_ml(spec, hsb, random_seed=1), bm.fit_ml(hand, hsb, random_seed=1)


def test_sector_has_three_levels_by_school(hsb: pd.DataFrame) -> None:
    counts = hsb.groupby("school")["sector"].first().value_counts()
    assert counts.to_dict() == {"catholic": 70, "public_large": 64, "public_small": 26}


def test_spec_as_written_keeps_the_terms(spec: bm.Spec) -> None:
    assert spec.terms == ("1", "C(sector)", "center(ses)", "female", "minority", "female:minority")
    assert spec.columns == ("math", "sector", "ses", "female", "minority", "meanses", "school")
    assert spec.derived == ()


def test_design_has_one_term_per_column(hsb: pd.DataFrame, spec: bm.Spec) -> None:
    design = build_design(spec, hsb)
    assert design.spec.terms == (
        "1", "C(sector)[T.public_large]", "C(sector)[T.public_small]", "center(ses)",
        "female", "minority", "female:minority",
    )  # fmt: skip
    assert design.spec.derived == (
        "C(sector)[T.public_large]", "C(sector)[T.public_small]", "center(ses)",
    )  # fmt: skip
    assert tuple(design.layout.names) == NAMES
    frame = design.frame
    expected = np.column_stack(
        [
            np.ones(len(frame)),
            frame["large"],
            frame["small"],
            frame["ses"] - hsb["ses"].mean(),
            frame["female"],
            frame["minority"],
            frame["female"] * frame["minority"],
        ]
    )
    np.testing.assert_allclose(design.X, expected, rtol=0, atol=1e-12)
    # the cross-level products of centred ses with the school dummies
    np.testing.assert_allclose(design.F[:, 5], expected[:, 3] * frame["large"], atol=1e-12)
    np.testing.assert_allclose(design.F[:, 6], expected[:, 3] * frame["small"], atol=1e-12)


def test_ml_fit_equals_the_fit_of_hand_made_columns(fits) -> None:
    formula, hand = fits
    assert formula.names == NAMES
    assert hand.names == HAND_NAMES
    assert abs(formula.loglik - hand.loglik) < 1e-8
    np.testing.assert_allclose(formula.estimates, hand.estimates, rtol=0, atol=1e-6)
    np.testing.assert_allclose(formula.se, hand.se, rtol=1e-6)
    assert formula.loglik == pytest.approx(-23132.5058, abs=1e-3)


def test_membership_and_residual_covariates_are_coded(hsb: pd.DataFrame) -> None:
    spec = bm.make_spec(
        "math ~ ses",
        classes=2,
        membership="C(sector) + center(ses)",
        residual_covariates="sector",
    )
    design = build_design(spec, hsb)
    assert design.spec.membership == (
        "1", "C(sector)[T.public_large]", "C(sector)[T.public_small]", "center(ses)",
    )  # fmt: skip
    assert design.spec.residual_covariates == ("sector[T.public_large]", "sector[T.public_small]")
    assert "C#1 ~ C(sector)[T.public_large]" in design.layout.names
    frame = design.frame
    np.testing.assert_array_equal(
        design.Z, np.column_stack([np.ones(len(frame)), frame["large"], frame["small"],
                                   frame["ses_c"]])
    )  # fmt: skip
    np.testing.assert_array_equal(design.V[:, 1:], frame[["large", "small"]].to_numpy())


def test_group_center_and_group_mean(hsb: pd.DataFrame) -> None:
    spec = bm.make_spec(
        "math ~ group_center(ses)", cluster="school", random="1", level2={"1": "group_mean(ses)"}
    )
    design = build_design(spec, hsb)
    mean = design.frame.groupby("school")["ses"].transform("mean").to_numpy()
    np.testing.assert_allclose(design.X[:, 1], design.frame["ses"] - mean, atol=1e-12)
    assert design.spec.fixed_names == ("1", "group_mean(ses)", "group_center(ses)")
    np.testing.assert_allclose(
        design.schools["group_mean(ses)"], hsb.groupby("school")["ses"].mean(), atol=1e-12
    )


def test_group_center_needs_a_cluster() -> None:
    with pytest.raises(SpecError, match=r"terms by cluster \['group_center\(ses\)'\].*cluster ="):
        bm.make_spec("math ~ group_center(ses)")


def test_log_of_zero_names_the_term_and_the_row(hsb: pd.DataFrame) -> None:
    data = hsb.assign(pracad=hsb["pracad"].where(hsb.index != 5, 0.0))
    with pytest.raises(DataError) as info:
        build_design(bm.make_spec("math ~ np.log(pracad)"), data)
    message = str(info.value)
    assert message.startswith("outcome formula: term 'np.log(pracad)' is not finite (-inf)")
    assert "e.g. row 5 (pracad = 0.0)" in message


def test_levels_absent_or_unlisted_are_named(hsb: pd.DataFrame) -> None:
    extra = 'math ~ C(sector, levels=["catholic", "public_large", "public_small", "private"])'
    with pytest.raises(DataError, match=r"\[T\.private\]\" of term .* is 0 in every row"):
        build_design(bm.make_spec(extra), hsb)
    short = 'math ~ C(sector, levels=["catholic", "public_large"])'
    with pytest.raises(DataError, match=r"level outside those given .*public_small"):
        build_design(bm.make_spec(short), hsb)


def test_single_level_and_unknown_transform_are_named(hsb: pd.DataFrame) -> None:
    with pytest.raises(DataError, match=r"term 'C\(one\)' gives no column on the data"):
        build_design(bm.make_spec("math ~ ses + C(one)"), hsb.assign(one="a"))
    with pytest.raises(DataError, match=r"term 'foo\(ses\)' cannot be evaluated.*available"):
        build_design(bm.make_spec("math ~ foo(ses)"), hsb)


def test_names_of_levels_select_effects(hsb: pd.DataFrame) -> None:
    spec = bm.make_spec(
        "math ~ C(sector) + ses", classes=2, class_varying=["1", "C(sector)[T.public_large]"]
    )
    design = build_design(spec, hsb)
    assert design.spec.class_varying == ("1", "C(sector)[T.public_large]")
    whole = bm.make_spec("math ~ C(sector) + ses", classes=2, class_varying=["1", "C(sector)"])
    assert build_design(whole, hsb).spec.class_varying == (
        "1", "C(sector)[T.public_large]", "C(sector)[T.public_small]",
    )  # fmt: skip
    several = bm.make_spec("math ~ C(sector)", classes=2, order_classes_by="C(sector)")
    with pytest.raises(SpecError, match=r"order_classes_by='C\(sector\)' names a term of 2"):
        build_design(several, hsb)


def test_model_file_with_formulas(tmp_path: Path, hsb: pd.DataFrame, spec: bm.Spec) -> None:
    path = tmp_path / "sector.toml"
    path.write_text(
        'name = "model"\ncluster = "school"\n\n[outcome]\n'
        f'formula = "{FORMULA}"\n\n[level2]\n"1" = "meanses"\n'
        '"center(ses)" = "C(sector)"\n\n[random]\nterms = ["1"]\n'
    )
    loaded = bm.load_spec(path)
    assert loaded == spec
    assert tuple(build_design(loaded, hsb).layout.names) == NAMES


def test_simulate_codes_the_covariates_and_refuses_to_draw_them(hsb: pd.DataFrame, fits) -> None:
    spec, formula = fits[0].design.spec, fits[0]
    written = bm.make_spec(FORMULA, cluster="school", random="1", level2=LEVEL2)
    params = dict(zip(formula.names, formula.estimates, strict=True))
    data = hsb[["school", "sector", "ses", "female", "minority", "meanses"]]
    sim = bm.simulate(written, params, covariates=data, random_seed=3)
    assert "sector" in sim.columns and "C(sector)[T.public_large]" not in sim.columns
    refit = bm.fit_ml(written, sim, random_seed=1)
    assert refit.names == NAMES
    assert spec.derived == refit.design.spec.derived
    with pytest.raises(SpecError, match=r"terms coded on data \('C\(sector\)'"):
        bm.simulate(written, params, clusters=10, cluster_size=5, random_seed=3)


@pytest.mark.slow
def test_nuts_posterior_names_the_levels(hsb: pd.DataFrame, spec: bm.Spec, fits) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        post = bm.fit_bayes(
            spec, hsb, init=fits[0], draws=100, tune=100, chains=2, random_seed=1, progress=False
        )
    # 100 draws may warn of R-hat or ESS, which is not what is checked here; nothing else
    assert all(issubclass(w.category, SamplingWarning) for w in caught)
    assert tuple(post.names) == NAMES
    assert "C(sector)[T.public_large]" in post.idata["posterior"].data_vars
    mean = post.table["mean"]
    ml = dict(zip(fits[0].names, fits[0].estimates, strict=True))
    for name in ("C(sector)[T.public_large]", "C(sector)[T.public_small]", "center(ses)"):
        assert mean[name] == pytest.approx(ml[name], abs=0.5)


def test_saved_fit_loads_with_its_coded_terms(tmp_path: Path, fits) -> None:
    formula = fits[0]
    path = formula.save(tmp_path / "sector.json")
    loaded = bm.load_result(path)
    assert tuple(loaded.names) == NAMES
    assert loaded.design.spec == formula.design.spec
    assert loaded.loglik == formula.loglik
