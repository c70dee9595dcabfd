"""Tests of bayesmix.data.design (build_design, resolve_data) and bayesmix.data.datasets."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bayesmix.data.datasets import BUNDLED, load_hsb
from bayesmix.data.design import Design, build_design, resolve_data
from bayesmix.errors import DataError, MissingDataWarning
from bayesmix.model.build import make_spec
from bayesmix.model.spec import Spec
from tests.support.data import HSB_COLUMNS


@pytest.fixture
def spec() -> Spec:
    """The Fig 1 model (8 parameters, columns y and x)."""
    return make_spec("y ~ x", classes=2, membership="x", residual_variance="class")


@pytest.fixture
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(20240101)
    n = 50
    return pd.DataFrame({"x": rng.normal(size=n), "y": rng.normal(size=n), "w": rng.normal(size=n)})


# --- load_hsb ----------------------------------------------------------------------------------


def test_load_hsb_shape_and_columns() -> None:
    hsb = load_hsb()
    assert hsb.shape == (7185, 11)
    assert list(hsb.columns) == HSB_COLUMNS
    assert hsb["school"].nunique() == 160
    assert int(hsb.isna().sum().sum()) == 0
    assert set(hsb["female"].unique()) == {0, 1}
    assert set(hsb["catholic"].unique()) == {0, 1}


def test_hsb_school_level_columns_are_constant_within_school() -> None:
    hsb = load_hsb()
    per_school = hsb.groupby("school")[["meanses", "catholic", "size", "pracad"]].nunique()
    assert int(per_school.to_numpy().max()) == 1


def test_bundled_names() -> None:
    assert sorted(BUNDLED) == ["hsb"]


# --- resolve_data ------------------------------------------------------------------------------


def test_resolve_dataframe_is_returned_unchanged(frame: pd.DataFrame) -> None:
    assert resolve_data(frame) is frame


@pytest.mark.parametrize("name", ["hsb", "HSB", "Hsb"])
def test_resolve_bundled_name(name: str) -> None:
    data = resolve_data(name)
    assert data.shape == (7185, 11)
    assert list(data.columns) == HSB_COLUMNS


def test_resolve_csv_path(tmp_path: Path, frame: pd.DataFrame) -> None:
    path = tmp_path / "data.csv"
    frame.to_csv(path, index=False)
    for arg in (path, str(path)):
        data = resolve_data(arg)
        assert list(data.columns) == ["x", "y", "w"]
        np.testing.assert_allclose(data.to_numpy(), frame.to_numpy(), rtol=1e-12)


@pytest.mark.parametrize(
    ("name", "hint"), [("hsbb", " Did you mean 'hsb'?"), ("no/such/file.csv", "")]
)
def test_unknown_name_or_missing_path(name: str, hint: str) -> None:
    with pytest.raises(DataError) as info:
        resolve_data(name)
    assert str(info.value) == (
        f"data {name!r} is neither a CSV file nor a bundled data set; bundled data sets "
        f"are ['hsb'].{hint}"
    )


def test_missing_path_object(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="is neither a CSV file nor a bundled data set"):
        resolve_data(tmp_path / "absent.csv")


def test_empty_csv(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_text("", encoding="utf-8")
    with pytest.raises(DataError, match=r"empty\.csv' is empty: it has no header line"):
        resolve_data(path)


@pytest.mark.parametrize("bad", [42, None, [1, 2], {"x": [1.0]}])
def test_wrong_type(bad: object) -> None:
    with pytest.raises(DataError) as info:
        resolve_data(bad)  # type: ignore[arg-type]
    assert str(info.value) == (
        f"data must be a pandas DataFrame, a CSV path or one of ['hsb'], got {type(bad).__name__}."
    )


# --- build_design: success ---------------------------------------------------------------------


def test_design_matrices(spec: Spec, frame: pd.DataFrame) -> None:
    design = build_design(spec, frame)
    assert isinstance(design, Design)
    assert design.spec is spec
    assert design.n_obs == 50
    assert design.n_dropped == 0
    assert design.X.shape == (50, 2)
    assert design.Z.shape == (50, 2)
    np.testing.assert_array_equal(design.y, frame["y"].to_numpy())
    np.testing.assert_array_equal(design.X[:, 0], np.ones(50))
    np.testing.assert_array_equal(design.X[:, 1], frame["x"].to_numpy())
    np.testing.assert_array_equal(design.Z, design.X)
    # single level: F is X, no random effects, one residual column, one pseudo-cluster
    np.testing.assert_array_equal(design.F, design.X)
    assert design.R.shape == (50, 0)
    np.testing.assert_array_equal(design.V, np.ones((50, 1)))
    np.testing.assert_array_equal(design.cluster, np.zeros(50, dtype=np.int64))
    assert design.n_clusters is None
    assert design.bounds.tolist() == [0, 50]
    assert design.layout.names == [
        "1[c1]", "1[c2]", "x[c1]", "x[c2]", "sigma2[c1]", "sigma2[c2]", "C#1 ~ 1", "C#1 ~ x",
    ]  # fmt: skip
    assert design.layout.spec is spec
    assert list(design.frame.index) == list(range(50))


def test_interaction_column_is_product(frame: pd.DataFrame) -> None:
    spec = make_spec("y ~ x + w + x:w")
    design = build_design(spec, frame)
    np.testing.assert_allclose(design.X[:, 3], frame["x"] * frame["w"], rtol=0, atol=0)
    assert design.Z.shape == (50, 1)


def test_unused_columns_are_ignored(spec: Spec, frame: pd.DataFrame) -> None:
    data = frame.assign(w=np.nan, label="text")
    design = build_design(spec, data)
    assert design.n_obs == 50
    assert design.n_dropped == 0


def test_boolean_covariate_is_accepted(spec: Spec, frame: pd.DataFrame) -> None:
    data = frame.assign(x=frame["x"] > 0)
    design = build_design(spec, data)
    np.testing.assert_array_equal(design.X[:, 1], (frame["x"] > 0).to_numpy(dtype=float))


def test_design_from_csv_path(tmp_path: Path, spec: Spec, frame: pd.DataFrame) -> None:
    path = tmp_path / "fig1.csv"
    frame.to_csv(path, index=False)
    design = build_design(spec, str(path))
    assert design.n_obs == 50
    np.testing.assert_allclose(design.y, frame["y"].to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(design.X[:, 1], frame["x"].to_numpy(), rtol=1e-12)


def test_design_from_bundled_name() -> None:
    spec = make_spec("math ~ female + ses", classes=2, membership="female")
    design = build_design(spec, "hsb")
    assert design.n_obs == 7185
    assert design.X.shape == (7185, 3)
    assert design.Z.shape == (7185, 2)


# --- build_design: errors ----------------------------------------------------------------------


def test_missing_column_lists_existing_columns(spec: Spec, frame: pd.DataFrame) -> None:
    with pytest.raises(DataError) as info:
        build_design(spec, frame.drop(columns="x"))
    assert str(info.value) == (
        "column 'x' used by model 'model' is not in the data; the columns are ['y', 'w']."
    )


def test_missing_column_suggests_close_names(spec: Spec, frame: pd.DataFrame) -> None:
    with pytest.raises(DataError) as info:
        build_design(spec, frame.rename(columns={"x": "xx"}))
    message = str(info.value)
    assert "column 'x'" in message
    assert "['xx', 'y', 'w']" in message
    assert "Did you mean ['xx']?" in message


def test_missing_outcome_on_hsb_lists_hsb_columns(spec: Spec) -> None:
    with pytest.raises(DataError) as info:
        build_design(spec, "hsb")
    assert (
        f"column 'y' used by model 'model' is not in the data; the columns are {HSB_COLUMNS}"
        in str(info.value)
    )


def test_column_mixing_numbers_and_text_is_not_numeric(spec: Spec, frame: pd.DataFrame) -> None:
    data = frame.assign(x=["1.5", "a"] * 25)
    with pytest.raises(DataError) as info:
        build_design(spec, data)
    message = str(info.value)
    assert message.startswith("column 'x' is not numeric")
    assert "'a' in row 1" in message
    assert "write C(x) in the formula" in message


def test_text_column_is_categorical(spec: Spec, frame: pd.DataFrame) -> None:
    data = frame.assign(x=["a", "b"] * 25)
    design = build_design(spec, data)
    assert design.spec.terms == ("1", "x[T.b]")
    assert design.spec.derived == ("x[T.b]",)
    np.testing.assert_array_equal(design.X[:, 1], [0.0, 1.0] * 25)


def test_non_numeric_value_is_located(spec: Spec, frame: pd.DataFrame) -> None:
    data = frame.assign(y=frame["y"].astype(object))
    data.loc[7, "y"] = "n/a"
    with pytest.raises(DataError) as info:
        build_design(spec, data)
    message = str(info.value)
    assert message.startswith("column 'y' is not numeric")
    assert "'n/a' in row 7" in message


@pytest.mark.parametrize(("col", "rows"), [("x", [1, 2]), ("y", [4])])
def test_infinite_values(spec: Spec, frame: pd.DataFrame, col: str, rows: list[int]) -> None:
    data = frame.copy()
    data.loc[rows, col] = [np.inf, -np.inf][: len(rows)]
    with pytest.raises(DataError) as info:
        build_design(spec, data)
    assert str(info.value) == (
        f"column {col!r} has {len(rows)} infinite value(s); remove or recode them."
    )


@pytest.fixture
def with_missing(frame: pd.DataFrame) -> pd.DataFrame:
    """Four incomplete rows: x missing in rows 1, 2; y missing in rows 2, 5, 7."""
    data = frame.copy()
    data.loc[[1, 2], "x"] = np.nan
    data.loc[[2, 5, 7], "y"] = np.nan
    return data


def test_missing_values_raise_with_count(spec: Spec, with_missing: pd.DataFrame) -> None:
    with pytest.raises(DataError) as info:
        build_design(spec, with_missing)
    message = str(info.value)
    assert message.startswith("4 of 50 rows have missing values")
    assert "{'y': 3, 'x': 2}" in message
    assert "missing='listwise'" in message


def test_listwise_deletion_drops_rows_and_warns(spec: Spec, with_missing: pd.DataFrame) -> None:
    with pytest.warns(MissingDataWarning) as record:
        design = build_design(spec, with_missing, missing="listwise")
    assert len(record) == 1
    assert str(record[0].message).startswith(
        "listwise deletion removed 4 of 50 rows with missing values"
    )
    assert design.n_dropped == 4
    assert design.n_obs == 46
    assert list(design.frame.index) == [i for i in range(50) if i not in (1, 2, 5, 7)]
    assert not np.isnan(design.X).any()
    assert not np.isnan(design.y).any()


def test_listwise_without_missing_values_does_not_warn(spec: Spec, frame: pd.DataFrame) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        design = build_design(spec, frame, missing="listwise")
    assert design.n_dropped == 0
    assert design.n_obs == 50


def test_unknown_missing_policy(spec: Spec, frame: pd.DataFrame) -> None:
    with pytest.raises(DataError, match=r"missing must be 'error' or 'listwise', got 'drop'"):
        build_design(spec, frame, missing="drop")  # type: ignore[arg-type]


def test_constant_covariate(spec: Spec, frame: pd.DataFrame) -> None:
    with pytest.raises(DataError) as info:
        build_design(spec, frame.assign(x=2.5))
    assert str(info.value) == (
        "term 'x' of the outcome formula is constant (2.5) in the data; drop it from the "
        "formula (the intercept already covers a constant)."
    )


def test_constant_membership_covariate(frame: pd.DataFrame) -> None:
    spec = make_spec("y ~ x", classes=2, membership="w")
    with pytest.raises(DataError, match=r"term 'w' of the membership formula is constant \(0\)"):
        build_design(spec, frame.assign(w=0.0))


def test_constant_outcome(spec: Spec, frame: pd.DataFrame) -> None:
    with pytest.raises(DataError) as info:
        build_design(spec, frame.assign(y=1.0))
    assert str(info.value) == "outcome 'y' is constant (1); nothing to model."


@pytest.mark.parametrize("n", [3, 8])
def test_fewer_rows_than_parameters(spec: Spec, frame: pd.DataFrame, n: int) -> None:
    with pytest.raises(DataError) as info:
        build_design(spec, frame.iloc[:n])
    assert str(info.value) == (
        f"model 'model' with 2 classes has 8 parameters but the data have only {n} usable "
        "rows; use fewer classes, a simpler model or more data."
    )


def test_one_more_row_than_parameters_is_accepted(spec: Spec, frame: pd.DataFrame) -> None:
    assert build_design(spec, frame.iloc[:9]).n_obs == 9


def test_listwise_deletion_leaving_too_few_rows(spec: Spec, frame: pd.DataFrame) -> None:
    data = frame.iloc[:12].copy()
    data.loc[[0, 1, 2, 3], "y"] = np.nan
    with pytest.warns(MissingDataWarning, match="removed 4 of 12 rows"):
        with pytest.raises(DataError, match="has 8 parameters but the data have only 8 usable"):
            build_design(spec, data, missing="listwise")


def test_unknown_bundled_name_through_build_design(spec: Spec) -> None:
    with pytest.raises(DataError, match=r"data 'hsbx' is neither a CSV file nor a bundled"):
        build_design(spec, "hsbx")


def test_non_existent_path_through_build_design(spec: Spec, tmp_path: Path) -> None:
    path = tmp_path / "missing.csv"
    with pytest.raises(DataError, match="is neither a CSV file nor a bundled data set"):
        build_design(spec, path)


def test_numbers_stored_as_text_get_a_conversion_hint() -> None:
    frame = pd.DataFrame({"y": [1.0, 2.0, 3.5, 4.0], "x": ["1", "2", "3", "5"]})
    spec = make_spec("y ~ x")
    with pytest.raises(DataError, match=r"'x' holds numbers stored as text.*to_numeric"):
        build_design(spec, frame)


# --- build_design: two-level models ------------------------------------------------------------

CLUSTER_OF_ROW = [3, 1, 2, 1, 3, 2, 1, 3, 2, 1, 2, 3]
SORTED_ROWS = [1, 3, 6, 9, 2, 5, 8, 10, 0, 4, 7, 11]  # rows of cluster 1, then 2, then 3


@pytest.fixture
def two_level() -> Spec:
    """Intercept and slope regressed on w, both random across clusters g (8 parameters)."""
    return make_spec("y ~ x", cluster="g", level2={"1": "w", "x": "w"}, random=["1", "x"])


@pytest.fixture
def clustered() -> pd.DataFrame:
    """Twelve rows in three unsorted clusters; w and v are constant within clusters."""
    rng = np.random.default_rng(1)
    g = pd.Series(CLUSTER_OF_ROW)
    return pd.DataFrame(
        {
            "g": g,
            "x": rng.normal(size=12),
            "y": rng.normal(size=12),
            "w": g.map({1: 0.5, 2: -1.0, 3: 2.0}),
            "v": g.map({1: 1, 2: 0, 3: 1}),
        }
    )


def test_cluster_rows_are_sorted_stably(two_level: Spec, clustered: pd.DataFrame) -> None:
    design = build_design(two_level, clustered)
    assert list(design.frame.index) == SORTED_ROWS
    assert design.frame["g"].tolist() == [1] * 4 + [2] * 4 + [3] * 4
    assert design.cluster.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert design.cluster.dtype == np.int64
    assert design.cluster_ids.tolist() == [1, 2, 3]
    assert design.n_clusters == 3
    assert design.bounds.tolist() == [0, 4, 8, 12]
    np.testing.assert_array_equal(design.y, clustered["y"].to_numpy()[SORTED_ROWS])
    np.testing.assert_array_equal(design.X[:, 1], clustered["x"].to_numpy()[SORTED_ROWS])


def test_unequal_cluster_sizes_give_bounds(clustered: pd.DataFrame) -> None:
    spec = make_spec("y ~ x", cluster="g", random="1")
    data = clustered.assign(g=[7, 7, 7, 7, 7, 2, 2, 9, 9, 9, 9, 9])
    design = build_design(spec, data)
    assert design.n_clusters == 3
    assert design.cluster_ids.tolist() == [2, 7, 9]
    assert design.bounds.tolist() == [0, 2, 7, 12]
    assert list(design.frame.index) == [5, 6, 0, 1, 2, 3, 4, 7, 8, 9, 10, 11]


def test_fixed_random_and_residual_designs(two_level: Spec, clustered: pd.DataFrame) -> None:
    design = build_design(two_level, clustered)
    x = clustered["x"].to_numpy()[SORTED_ROWS]
    w = clustered["w"].to_numpy()[SORTED_ROWS]
    assert two_level.fixed_names == ("1", "w", "x", "x:w")
    assert design.F.shape == (12, 4)
    np.testing.assert_array_equal(design.F[:, 0], np.ones(12))
    np.testing.assert_array_equal(design.F[:, 1], w)
    np.testing.assert_array_equal(design.F[:, 2], x)
    np.testing.assert_array_equal(design.F[:, 3], x * w)
    np.testing.assert_array_equal(design.F[:4, 1], [0.5] * 4)
    np.testing.assert_array_equal(design.X, np.column_stack([np.ones(12), x]))
    np.testing.assert_array_equal(design.R, design.X)
    np.testing.assert_array_equal(design.V, np.ones((12, 1)))
    np.testing.assert_array_equal(design.Z, np.ones((12, 1)))
    assert design.layout.names == [
        "1", "w", "x", "x:w", "var(u_1)", "var(u_x)", "cov(u_1,u_x)", "sigma2",
    ]  # fmt: skip


def test_random_intercept_only_design(clustered: pd.DataFrame) -> None:
    spec = make_spec("y ~ x", cluster="g", random="1")
    design = build_design(spec, clustered)
    np.testing.assert_array_equal(design.R, np.ones((12, 1)))
    np.testing.assert_array_equal(design.F, design.X)


def test_level2_covariate_varying_within_cluster(two_level: Spec, clustered: pd.DataFrame) -> None:
    data = clustered.copy()
    data.loc[4, "w"] = 9.0  # row 4 is in cluster 3, whose first row (0) has w = 2
    with pytest.raises(DataError) as info:
        build_design(two_level, data)
    message = str(info.value)
    assert message.startswith("school-level column 'w' varies within g ")
    assert re.search(r"varies within g \S*\b3\b\S* \(e\.g\. 9 vs 2\)", message), message
    assert "must be constant within each cluster" in message


def test_level2_error_names_integer_cluster_plainly(
    two_level: Spec, clustered: pd.DataFrame
) -> None:
    data = clustered.copy()
    data.loc[4, "w"] = 9.0
    with pytest.raises(DataError, match=r"varies within g 3 \(e\.g\. 9 vs 2\)"):
        build_design(two_level, data)


def test_string_cluster_column_is_accepted(two_level: Spec, clustered: pd.DataFrame) -> None:
    data = clustered.assign(g=clustered["g"].map({1: "b", 2: "a", 3: "c"}))
    design = build_design(two_level, data)
    assert design.cluster_ids.tolist() == ["a", "b", "c"]
    assert design.n_clusters == 3
    assert design.bounds.tolist() == [0, 4, 8, 12]
    assert list(design.frame.index) == [2, 5, 8, 10, 1, 3, 6, 9, 0, 4, 7, 11]
    assert design.frame["g"].tolist() == ["a"] * 4 + ["b"] * 4 + ["c"] * 4
    np.testing.assert_array_equal(design.F[:4, 1], [-1.0] * 4)
    bad = data.copy()
    bad.loc[4, "w"] = 9.0
    with pytest.raises(DataError, match=r"school-level column 'w' varies within g 'c'"):
        build_design(two_level, bad)


def test_missing_cluster_column(two_level: Spec, clustered: pd.DataFrame) -> None:
    with pytest.raises(DataError) as info:
        build_design(two_level, clustered.drop(columns="g"))
    assert str(info.value) == (
        "column 'g' used by model 'model' is not in the data; the columns are ['x', 'y', 'w', 'v']."
    )


def test_constant_level2_covariate(two_level: Spec, clustered: pd.DataFrame) -> None:
    with pytest.raises(DataError) as info:
        build_design(two_level, clustered.assign(w=0.5))
    assert str(info.value) == (
        "fixed effect 'w' has a constant column (0.5) in the data; drop it (the intercept "
        "already covers a constant)."
    )


def test_listwise_deletion_can_remove_a_cluster(clustered: pd.DataFrame) -> None:
    spec = make_spec("y ~ x", cluster="g", random="1")
    data = clustered.copy()
    data.loc[[2, 5, 8, 10], "y"] = np.nan  # all of cluster 2
    with pytest.warns(MissingDataWarning, match="removed 4 of 12 rows"):
        design = build_design(spec, data, missing="listwise")
    assert design.n_clusters == 2
    assert design.cluster_ids.tolist() == [1, 3]
    assert design.cluster.tolist() == [0] * 4 + [1] * 4
    assert design.bounds.tolist() == [0, 4, 8]


def test_residual_groups_design(clustered: pd.DataFrame) -> None:
    spec = make_spec("y ~ x", cluster="g", random="1", residual_groups="v")
    design = build_design(spec, clustered)
    assert design.layout.group_levels == (0, 1)
    assert design.layout.names == ["1", "x", "var(u_1)", "sigma2[v=0]", "sigma2[v=1]"]
    # clusters 1 and 3 have v = 1, cluster 2 has v = 0
    expected = np.array([[0.0, 1.0]] * 4 + [[1.0, 0.0]] * 4 + [[0.0, 1.0]] * 4)
    np.testing.assert_array_equal(design.V, expected)


def test_residual_groups_with_a_single_level(clustered: pd.DataFrame) -> None:
    spec = make_spec("y ~ x", cluster="g", random="1", residual_groups="v")
    with pytest.raises(DataError) as info:
        build_design(spec, clustered.assign(v=1))
    assert str(info.value) == (
        "residual_groups column 'v' has a single level; it needs at least two groups."
    )


def test_residual_groups_must_be_constant_within_clusters(clustered: pd.DataFrame) -> None:
    spec = make_spec("y ~ x", cluster="g", random="1", residual_groups="v")
    data = clustered.copy()
    data.loc[3, "v"] = 0  # row 3 is in cluster 1, whose first row (1) has v = 1
    with pytest.raises(
        DataError, match=r"school-level column 'v' varies within g .*\(e\.g\. 0 vs 1\)"
    ):
        build_design(spec, data)


def test_residual_covariates_design(clustered: pd.DataFrame) -> None:
    spec = make_spec("y ~ x", cluster="g", random="1", residual_covariates="x")
    design = build_design(spec, clustered)
    x = clustered["x"].to_numpy()[SORTED_ROWS]
    np.testing.assert_array_equal(design.V, np.column_stack([np.ones(12), x]))
    assert design.layout.names[-2:] == ["log(sigma2) ~ 1", "log(sigma2) ~ x"]


def test_centre_subtracts_the_mean(clustered: pd.DataFrame) -> None:
    spec = make_spec("y ~ x", cluster="g", level2={"1": "w"}, random="1", centre=["x", "w"])
    design = build_design(spec, clustered)
    x = clustered["x"].to_numpy()[SORTED_ROWS]
    w = clustered["w"].to_numpy()[SORTED_ROWS]
    # grand mean over the observations used: w = (4 * 0.5 - 4 * 1 + 4 * 2) / 12 = 0.5
    assert w.mean() == pytest.approx(0.5, abs=1e-15)
    np.testing.assert_allclose(design.X[:, 1], x - x.mean(), rtol=0, atol=1e-15)
    np.testing.assert_allclose(design.F[:, 1], w - 0.5, rtol=0, atol=1e-15)
    np.testing.assert_allclose(design.F[:, 2], x - x.mean(), rtol=0, atol=1e-15)
    assert abs(design.X[:, 1].mean()) < 1e-15
    # the outcome and the stored frame keep their values
    np.testing.assert_array_equal(design.y, clustered["y"].to_numpy()[SORTED_ROWS])
    np.testing.assert_array_equal(design.frame["x"].to_numpy(), x)


def test_centre_single_level(spec: Spec, frame: pd.DataFrame) -> None:
    centred = make_spec("y ~ x", classes=2, membership="x", centre=["x"])
    design = build_design(centred, frame)
    x = frame["x"].to_numpy()
    np.testing.assert_allclose(design.X[:, 1], x - x.mean(), rtol=0, atol=1e-15)
    np.testing.assert_allclose(design.Z[:, 1], x - x.mean(), rtol=0, atol=1e-15)


def test_centre_of_an_unused_column(frame: pd.DataFrame) -> None:
    spec = make_spec("y ~ x", centre=["w"])
    with pytest.raises(DataError) as info:
        build_design(spec, frame)
    assert str(info.value) == (
        "centre names 'w', which the model does not use; centre some of ['y', 'x'], or "
        "drop 'w' from centre."
    )


def test_hsb_two_level_design() -> None:
    spec = make_spec(
        "math ~ ses", cluster="school", level2={"1": "meanses + catholic"}, random=["1", "ses"]
    )
    design = build_design(spec, "hsb")
    assert design.n_obs == 7185
    assert design.n_clusters == 160
    assert design.bounds.shape == (161,)
    assert design.bounds[:5].tolist() == [0, 47, 72, 120, 140]
    assert int(design.bounds[-1]) == 7185
    assert design.cluster_ids[:3].tolist() == [1224, 1288, 1296]
    assert np.all(np.diff(design.cluster) >= 0)
    assert design.layout.names == [
        "1", "meanses", "catholic", "ses", "var(u_1)", "var(u_ses)", "cov(u_1,u_ses)", "sigma2",
    ]  # fmt: skip
    np.testing.assert_array_equal(design.F[:, 1], design.frame["meanses"].to_numpy())
    np.testing.assert_array_equal(design.F[:, 3], design.frame["ses"].to_numpy())
