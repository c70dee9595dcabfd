"""Bad input: bayesmix errors instead of tracebacks, messages that name the real problem and
its fix, and warnings (or errors) instead of silent acceptance."""

from __future__ import annotations

import datetime
import decimal
import json
import tomllib
import warnings
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bayesmix as bm
from bayesmix import errors
from bayesmix.cli import main
from bayesmix.data.design import build_design
from bayesmix.model.build import load_spec, spec_from_dict
from tests.support.paths import MODELS

FIG1 = str(MODELS / "fig1.toml")


def fig1_frame(n: int = 300, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    c = rng.random(n) < 0.5
    y = np.where(c, 1.0 + 0.5 * x, -1.0 - 0.5 * x) + rng.normal(scale=0.5, size=n)
    return pd.DataFrame({"y": y, "x": x})


def fig3_frame(clusters: int = 20, size: int = 5, seed: int = 2) -> pd.DataFrame:
    from bayesmix.paper.section2 import FIG3_PARAMS

    spec = load_spec(MODELS / "fig3.toml")
    return bm.simulate(spec, FIG3_PARAMS, clusters=clusters, cluster_size=size, random_seed=seed)


def fig1_csv(folder: Path) -> str:
    path = folder / "fig1.csv"
    fig1_frame().to_csv(path, index=False)
    return str(path)


def bayesmix_warnings(record: list[warnings.WarningMessage]) -> list[warnings.WarningMessage]:
    return [w for w in record if issubclass(w.category, bm.BayesmixWarning)]


# --- tracebacks become bayesmix errors ----------------------------------------------------------


def test_binary_model_file_is_a_spec_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "x.toml"
    path.write_bytes(bytes([0x80, 0xFF, 0xFE, 0x00, 0x41, 0x42]))
    with pytest.raises(bm.SpecError) as info:
        load_spec(path)
    message = str(info.value)
    assert str(path) in message
    assert "not a text TOML file" in message


@pytest.mark.parametrize("seed", ["-1", "1.5", "abc", str(2**32)])
@pytest.mark.parametrize("command", ["fit", "simulate", "montecarlo", "demo", "paper"])
def test_bad_seed_is_refused_by_every_subcommand(
    command: str, seed: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = {
        "fit": ["fit", FIG1, "--data", fig1_csv(tmp_path), "--starts", "1", "--quiet"],
        "simulate": ["simulate", FIG1, "--n", "20", "--out", str(tmp_path / "s.csv")],
        "montecarlo": ["montecarlo", "section2", "--study", "recovery", "--replications", "1",
                       "--out", str(tmp_path / "mc.jsonl")],
        "demo": ["demo", "--quick", "--out", str(tmp_path / "demo")],
        "paper": ["paper", "--quick", "--out", str(tmp_path / "paper")],
    }[command]  # fmt: skip
    with pytest.raises(SystemExit) as info:
        main([*argv, "--seed", seed])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "--seed" in err
    assert f"a whole number from 0 to {2**32 - 1}" in err
    assert seed in err


def test_check_seed_refuses_negative_fractional_and_text_seeds() -> None:
    from bayesmix.validate import check_seed

    for bad in (-1, 1.5, "abc", True, 2**32, np.float64(3.0)):
        with pytest.raises(bm.EstimationError) as info:
            check_seed(bad, "random_seed")
        message = str(info.value)
        assert "random_seed" in message
        assert repr(bad) in message or str(bad) in message
        assert f"0 to {2**32 - 1}" in message
    with pytest.raises(bm.DataError, match="seed"):
        check_seed(-5, "seed", error=bm.DataError)
    assert check_seed(None, "random_seed") is None
    assert check_seed(np.int64(7), "random_seed") == 7
    assert type(check_seed(np.uint32(2**32 - 1), "random_seed")) is int
    assert check_seed(0, "random_seed") == 0


def test_count_options_refuse_booleans_and_accept_numpy_integers_everywhere() -> None:
    """Every entry point checks its counts alike: True is not 1, np.int64(3) is 3."""
    from bayesmix.validate import check_count

    assert type(check_count(np.int64(3), "draws")) is int
    for bad in (True, 0, -2, 2.0, "3", None):
        with pytest.raises(bm.EstimationError, match=r"draws must be a positive integer"):
            check_count(bad, "draws")
    with pytest.raises(bm.DataError, match="clusters"):
        check_count(False, "clusters", error=bm.DataError)
    spec = load_spec(MODELS / "fig1.toml")
    for call in (
        lambda: bm.fit_bayes(spec, fig1_frame(), draws=True),
        lambda: bm.fit_ml(spec, fig1_frame(), starts=True),
        lambda: bm.sbc(spec, fig1_frame(), simulations=True),
        lambda: bm.select_classes(spec, fig1_frame(), max_classes=True),
    ):
        with pytest.raises(bm.EstimationError, match="must be a positive integer, got True"):
            call()


def test_cluster_column_in_the_formula_is_a_spec_error_that_suggests_a_copy() -> None:
    doc = tomllib.loads((MODELS / "fig3.toml").read_text())
    doc["outcome"]["formula"] = "y ~ x + cluster"
    with pytest.raises(bm.SpecError) as info:
        build_design(spec_from_dict(doc), fig3_frame())
    message = str(info.value)
    assert "'cluster'" in message
    assert "identifies the clusters" in message
    assert "copy" in message
    for kwargs in (
        {"membership": "x + g"},
        {"residual_groups": "g", "random": "1"},
        {"level2": {"1": "g"}},
    ):
        with pytest.raises(bm.SpecError, match="'g' identifies the clusters"):
            bm.make_spec("y ~ x", classes=2, cluster="g", **kwargs)


def test_dataframe_with_duplicate_column_names_is_a_data_error_naming_them() -> None:
    data = fig1_frame()
    dup = pd.concat([data, data[["x"]]], axis=1)
    with pytest.raises(bm.DataError) as info:
        build_design(load_spec(FIG1), dup)
    message = str(info.value)
    assert "'x'" in message and "more than one column" in message
    assert "rename" in message


# --- misleading messages ------------------------------------------------------------------------


def test_huge_outcome_value_is_named_with_its_row_not_called_constant() -> None:
    data = fig1_frame()
    data.loc[5, "y"] = 1e200
    with pytest.raises(bm.DataError) as info:
        bm.fit_ml(load_spec(FIG1), data, starts=1, random_seed=1)
    message = str(info.value)
    assert "constant" not in message
    for word in ("outcome 'y'", "1e+200", "row 5", "rescale", "data-entry error"):
        assert word in message


def test_huge_covariate_value_is_named_not_blamed_on_the_outcome() -> None:
    data = fig1_frame()
    data.loc[7, "x"] = 1e300
    with pytest.raises(bm.DataError) as info:
        bm.fit_ml(load_spec(FIG1), data, starts=1, random_seed=1)
    message = str(info.value)
    assert "outcome's scale" not in message
    for word in ("column 'x'", "1e+300", "row 7", "rescale"):
        assert word in message


def test_overflowing_product_and_vanishing_spread_are_named() -> None:
    data = fig1_frame().assign(z=1.0)
    data.loc[3, ["x", "z"]] = [1e100, 1e100]  # each passes, the product x:z does not
    data["z"] += np.arange(len(data))
    with pytest.raises(bm.DataError, match=r"term 'x:z' has value 1e\+200 in row 3"):
        build_design(bm.make_spec("y ~ x + x:z"), data)
    tiny = fig1_frame().assign(y=lambda d: d["y"] * 1e-155)
    with pytest.raises(bm.DataError, match=r"outcome 'y' varies by only .* multiply it by 1e6"):
        build_design(load_spec(FIG1), tiny)


def test_header_only_csv_says_no_rows(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_text("y,x\n")
    with pytest.raises(bm.DataError) as info:
        build_design(load_spec(FIG1), str(path))
    message = str(info.value)
    assert "stored as text" not in message
    assert "has column names ['y', 'x'] but no rows" in message
    assert str(path) in message
    with pytest.raises(bm.DataError, match="no rows"):
        build_design(load_spec(FIG1), pd.DataFrame({"y": [], "x": []}))


@pytest.mark.parametrize(("sep", "shown"), [(";", "';'"), ("\t", "tab"), ("|", "'|'")])
def test_semicolon_and_tab_separated_files_name_the_separator(
    sep: str, shown: str, tmp_path: Path
) -> None:
    path = tmp_path / "data.csv"
    fig1_frame().to_csv(path, sep=sep, index=False)
    with pytest.raises(bm.DataError) as info:
        build_design(load_spec(FIG1), str(path))
    message = str(info.value)
    assert f"separated by {shown}" in message
    assert f"sep={sep!r}" in message and "comma-separated" in message
    # the same frame read with pandas' defaults, passed as a DataFrame
    with pytest.raises(bm.DataError, match=f"separated by {shown}"):
        build_design(load_spec(FIG1), pd.read_csv(path))


def test_decimal_commas_are_suggested_for_a_european_file(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text("y;x\n1,5;0,25\n2,5;1,75\n")
    with pytest.raises(bm.DataError, match=r"decimal=','"):
        build_design(load_spec(FIG1), str(path))


# --- silent acceptance --------------------------------------------------------------------------


def test_random_membership_with_one_class_warns_that_it_is_dropped() -> None:
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        spec = bm.make_spec("y ~ x", classes=1, cluster="g", membership_random="independent")
        hsb = load_spec(MODELS / "hsb_A.toml", classes=1)
    found = bayesmix_warnings(record)
    assert len(found) == 2
    assert spec.membership_random == "none" and hsb.membership_random == "none"
    for w in found:
        assert w.category.__name__ == "SpecWarning"
        assert "membership random" in str(w.message)
        assert "one class has no membership logits" in str(w.message)
        assert "classes >= 2" in str(w.message)
    assert "'factor'" in str(found[1].message) and "hsb_A.toml" in str(found[1].message)


def test_residual_groups_with_more_than_20_levels_warns() -> None:
    rng = np.random.default_rng(3)
    g = np.repeat(np.arange(30), 10)
    data = pd.DataFrame(
        {"y": rng.normal(size=300), "x": rng.normal(size=300), "g": g, "v": rng.normal(size=30)[g]}
    )
    spec = bm.make_spec("y ~ x", cluster="g", random="1", residual_groups="v")
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        build_design(spec, data)
    found = bayesmix_warnings(record)
    assert len(found) == 1 and found[0].category is errors.DesignWarning
    message = str(found[0].message)
    for word in ("'v'", "30 levels", "not whole numbers", "residual_covariates"):
        assert word in message
    # a grouping of 3 levels stays silent
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        build_design(spec, data.assign(v=(data["g"] % 3).astype(float)))


def test_duplicated_csv_header_warns_naming_the_column(tmp_path: Path) -> None:
    data = fig1_frame()
    path = tmp_path / "dup.csv"
    data.assign(other=data["x"] * 2).to_csv(path, index=False, header=["y", "x", "x"])
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        design = build_design(load_spec(FIG1), str(path))
    found = bayesmix_warnings(record)
    assert len(found) == 1
    message = str(found[0].message)
    for word in (str(path), "2 columns named 'x'", "'x.1'", "rename"):
        assert word in message
    np.testing.assert_allclose(design.X[:, 1], data["x"].to_numpy())


def test_repeated_classes_value_is_refused_before_fitting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["fit", FIG1, "--data", fig1_csv(tmp_path), "--classes", "1", "2", "2",
                 "--starts", "1", "--quiet"])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 2
    assert captured.out == ""
    assert captured.err.startswith("bayesmix: error: --classes")
    assert "2 more than once" in captured.err and "--classes 1 2" in captured.err


def test_centre_given_as_text_names_columns_not_letters() -> None:
    data = fig1_frame().rename(columns={"x": "ses"}).assign(meanses=lambda d: d["ses"] ** 2)
    spec = bm.make_spec("y ~ ses + meanses", centre="ses + meanses")
    assert spec.centre == ("ses", "meanses")
    design = build_design(spec, data)
    np.testing.assert_allclose(design.X[:, 1:].mean(axis=0), 0.0, atol=1e-12)
    with pytest.raises(bm.DataError, match=r"centre names 'w', .* drop 'w' from centre"):
        build_design(bm.make_spec("y ~ ses", centre="w"), data)


# --- what the generated campaign below found, each a case of its own --------------------------


def _two_level(n_clusters: int = 8, size: int = 6) -> pd.DataFrame:
    rng = np.random.default_rng(5)
    g = np.repeat(np.arange(n_clusters), size)
    w = rng.normal(size=n_clusters)[g]
    x = rng.normal(size=len(g))
    return pd.DataFrame({"y": x + w + rng.normal(size=len(g)), "x": x, "w": w, "g": g})


def _multiindex_columns() -> pd.DataFrame:
    data = fig1_frame()
    return data.set_axis(pd.MultiIndex.from_tuples([(c, "a") for c in data.columns]), axis=1)


FOUND = {
    "multi-level column names": (
        lambda: build_design(load_spec(FIG1), _multiindex_columns()),
        bm.DataError, ["2 levels", "('y', 'a')", "get_level_values"],
    ),
    "complex outcome": (
        lambda: build_design(load_spec(FIG1), fig1_frame().assign(y=lambda d: d["y"] + 1j)),
        bm.DataError, ["column 'y'", "complex", ".real"],
    ),
    "listwise deletion of every row": (
        lambda: build_design(load_spec(FIG1), fig1_frame().assign(x=np.nan), missing="listwise"),
        bm.DataError, ["every one of the 300 rows", "{'x': 300}"],
    ),
    "one row": (
        lambda: build_design(bm.make_spec("y ~ x"), fig1_frame().iloc[:1]),
        bm.DataError, ["3 parameters", "only 1 usable rows"],
    ),
    "one cluster for two level-2 classes": (
        lambda: build_design(
            bm.make_spec("y ~ x", classes=2, cluster="g", between_classes=2,
                         between_membership="w"),
            _two_level().assign(g=1, w=0.3),
        ),
        bm.DataError, ["2 level-2 classes", "1 cluster(s) of 'g'", "fewer level-2 classes"],
    ),
    "a model file's path instead of a Spec": (
        lambda: bm.fit_ml(FIG1, fig1_frame(), starts=1),
        bm.SpecError, ["got str", "load_spec"],
    ),
    "load_spec(None)": (lambda: load_spec(None), bm.SpecError, ["NoneType", "models/fig1.toml"]),
    "load_spec of a folder": (lambda: load_spec(MODELS), bm.SpecError, ["is a folder"]),
    "data from a folder": (
        lambda: build_design(load_spec(FIG1), str(MODELS)), bm.DataError, ["is a folder"]
    ),
    "residual_covariates with the intercept": (
        lambda: bm.make_spec("y ~ x", residual_covariates=["1"]),
        bm.SpecError, ["residual_covariates names '1'", "intercept"],
    ),
    "a random term twice": (
        lambda: bm.make_spec("y ~ x", cluster="g", random=["x", "x"]),
        bm.SpecError, ["random names 'x' more than once"],
    ),
    "the outcome as a school covariate": (
        lambda: bm.make_spec("y ~ x", cluster="g", random="1", level2={"1": "y"}),
        bm.SpecError, ["outcome 'y' also appears in a [level2] covariate"],
    ),
    "membership random without a cluster": (
        lambda: bm.make_spec("y ~ x", classes=2, membership_random="factor"),
        bm.SpecError, ["membership random 'factor'", "cluster"],
    ),
    "a name that is not text": (
        lambda: bm.make_spec("y ~ x", name=None), bm.SpecError, ["name must be text", "None"]
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", list(FOUND))
def test_generated_campaign_findings_name_the_problem(case: str) -> None:
    call, error, words = FOUND[case]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bm.BayesmixWarning)
        with pytest.raises(error) as info:
            call()
    for word in words:
        assert word in str(info.value)


# --- a derandomised campaign of generated bad Python API calls ----------------------------------
#
# A valid base model and data set get up to two defects (a column's values or dtype, the
# cluster labels, the frame's shape or names, a make_spec option); the call is build_design,
# fit_ml (single-level bases: one start on a tiny frame), load_spec of the same model written
# as TOML, make_spec alone, or load_spec of random bytes. Every call must succeed or raise a
# BayesmixError whose message names what the generator broke.

# formula, make_spec keywords, whether fit_ml is cheap (no quadrature) on it
BASES = {
    "regression": ("y ~ x", {}, True),
    "mixture": ("y ~ x + z", {"classes": 2, "membership": "x"}, True),
    "1b": ("y ~ x + z", {"residual_covariates": "z"}, True),
    "centred product": ("y ~ x + x:z", {"centre": ["x"]}, True),
    "two-level": ("y ~ x", {"cluster": "g", "random": "1", "level2": {"1": "w"}}, False),
    "1c": ("y ~ x", {"cluster": "g", "random": "1", "residual_groups": "r"}, False),
    "fig3-like": ("y ~ x", {"classes": 2, "cluster": "g", "random": "1", "membership": "x + w",
                            "membership_random": "independent"}, False),
    "model C-like": ("y ~ x", {"classes": 2, "cluster": "g", "between_classes": 2,
                               "between_membership": "w"}, False),
}  # fmt: skip
SCHOOL_COLUMNS = ("w", "r")


def base_frame(seed: int, clusters: int, size: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(1, clusters + 1), size)
    x, z = rng.normal(size=len(g)), rng.normal(size=len(g))
    w = rng.normal(size=clusters)[g - 1]
    two = np.where(rng.random(len(g)) < 0.5, 1.5, -1.5)
    y = 1.0 + 0.5 * x + 0.3 * z + w + two + rng.normal(size=len(g))
    return pd.DataFrame({"y": y, "x": x, "z": z, "w": w, "r": (g % 2).astype(float), "g": g})


def _nullable(values: np.ndarray, dtype: str, at: int) -> Any:
    out = pd.array(values, dtype=dtype)
    out[at] = pd.NA
    return out


def _with(values: np.ndarray, at: int | slice, value: Any) -> np.ndarray:
    out = values.copy()
    out[at] = value
    return out


def column_values(kind: str, col: pd.Series) -> Any:
    """A column's replacement values for one data defect."""
    n = len(col)
    f = col.to_numpy(dtype=float)
    obj = col.astype(object).to_numpy()
    values = {
        "text": lambda: ["abc"] * n,
        "numbers as text": lambda: col.astype(str).to_numpy(),
        "text among numbers": lambda: _with(obj, slice(None, None, 3), "n/a"),
        "datetime": lambda: pd.date_range("2000-01-01", periods=n),
        "timedelta": lambda: pd.to_timedelta(np.arange(n), unit="D"),
        "categorical text": lambda: pd.Categorical(np.where(np.arange(n) % 2, "a", "b")),
        "categorical numbers": lambda: pd.Categorical(np.arange(n) % 3),
        "complex": lambda: f + 1j,
        "bytes": lambda: [b"1"] * n,
        "lists": lambda: [[1.0]] * n,
        "decimals": lambda: [decimal.Decimal(f"{v:.3f}") for v in f],
        "dates as objects": lambda: [datetime.date(2000, 1, 1)] * n,
        "Int64 with NA": lambda: _nullable(np.arange(n) % 5, "Int64", 0),
        "Float64": lambda: pd.array(f, dtype="Float64"),
        "boolean with NA": lambda: _nullable(np.arange(n) % 2 == 0, "boolean", n - 1),
        "booleans": lambda: np.arange(n) % 2 == 0,
        "integers": lambda: np.arange(n) % 4,
        "one NaN": lambda: _with(f, n // 2, np.nan),
        "all NaN": lambda: np.full(n, np.nan),
        "one None": lambda: _with(obj, 0, None),
        "inf": lambda: _with(f, 1 % n, np.inf),
        "-inf": lambda: _with(f, 1 % n, -np.inf),
        "1e200": lambda: _with(f, 2 % n, 1e200),
        "-1e300": lambda: _with(f, 2 % n, -1e300),
        "1.7e308": lambda: _with(f, 2 % n, 1.7e308),
        "1e149": lambda: _with(f, 2 % n, 1e149),
        "times 1e-200": lambda: f * 1e-200,
        "times 1e-160": lambda: f * 1e-160,
        "times 1e155": lambda: f * 1e155,
        "constant": lambda: np.full(n, 2.0),
        "spread 1e-300": lambda: 1.0 + np.arange(n) * 1e-300,
        "float32": lambda: f.astype(np.float32),
        "uint8": lambda: (np.arange(n) % 7).astype(np.uint8),
        "binary": lambda: (np.arange(n) % 2).astype(float),
    }
    return values[kind]()


COLUMN_DEFECTS = [
    "text", "numbers as text", "text among numbers", "datetime", "timedelta",
    "categorical text", "categorical numbers", "complex", "bytes", "lists", "decimals",
    "dates as objects", "Int64 with NA", "Float64", "boolean with NA", "booleans", "integers",
    "one NaN", "all NaN", "one None", "inf", "-inf", "1e200", "-1e300", "1.7e308", "1e149",
    "times 1e-200", "times 1e-160", "times 1e155", "constant", "spread 1e-300", "float32",
    "uint8", "binary",
]  # fmt: skip


def cluster_values(kind: str, g: np.ndarray) -> Any:
    """Cluster labels for one cluster defect (some are valid labels of another type)."""
    n = len(g)
    tuples = np.empty(n, dtype=object)
    tuples[:] = [(int(v), "a") for v in g]
    values = {
        "string labels": lambda: np.array([f"s{v}" for v in g], dtype=object),
        "mixed labels": lambda: np.array([f"s{v}" if v % 2 else int(v) for v in g], dtype=object),
        "float labels": lambda: g + 0.5,
        "NaN label": lambda: _with(g.astype(float), 0, np.nan),
        "None label": lambda: _with(g.astype(object), 0, None),
        "bool labels": lambda: g % 2 == 0,
        "one cluster": lambda: np.ones(n, dtype=int),
        "singletons": lambda: np.arange(n),
        "tuple labels": lambda: tuples,
        "categorical labels": lambda: pd.Categorical(g, categories=[*sorted(set(g)), 999]),
        "datetime labels": lambda: pd.Timestamp("2000-01-01") + pd.to_timedelta(g, unit="D"),
    }
    return values[kind]()


CLUSTER_DEFECTS = {
    "string labels", "mixed labels", "float labels", "NaN label", "None label", "bool labels",
    "one cluster", "singletons", "tuple labels", "categorical labels", "datetime labels",
}  # fmt: skip
FRAME_DEFECTS = [
    "no rows", "one row", "three rows", "duplicate column", "drop column", "no columns",
    "integer column name", "duplicated index", "string index", "multiindex rows",
    "multiindex columns", "shuffled rows", "text column not used", "w and g swapped",
]  # fmt: skip

# make_spec options and bad values for them
OPTION_DEFECTS: dict[str, list[Any]] = {
    "classes": [0, -1, 2.5, "2", True, None, [2]],
    "class_varying": ["bogus", ["zz"], 5, [1, 2], ["1", 3]],
    "residual_variance": ["both", None, 1, "Class"],
    "membership": ["x +", "", 5, "C ~ ~x", "nope", "y", "x:x:x", "C ~ x ~ z", ["x"]],
    "order_classes_by": ["bogus", 3, "z"],
    "cluster": [5, "", "nope", "y", "x", ["g"]],
    "level2": [{"x": "w"}, {"1": 5}, {"zz": "w"}, "w", [("1", "w")], {"1": "nope"},
               {"1": "x"}, {"1": ""}, {"1": "y"}],
    "random": ["bogus", 5, ["1", "zz"], "1 + nope", ["x", "x"]],
    "membership_random": ["bogus", 1, "factor", None, "independent"],
    "covariance": ["full", None, 1],
    "residual_covariates": ["zz", 5, "x +", "y", ["1"]],
    "residual_groups": [5, "nope", "x", "", "y", ["r"]],
    "centre": [["nope"], "nope", 5, ["g"], [1], ["y"], "x + z"],
    "between_classes": [0, 2.5, 2, "2", -3],
    "between_membership": [5, "zz", "x", "w +", "y ~ w"],
    "between_varying": [["zz"], 5, "bogus", []],
    "name": [5, None, ["a"]],
    "description": [5, None],
}  # fmt: skip
# other spellings of an option in messages (TOML keys, the setting's meaning)
OPTION_WORDS = {
    "membership_random": ["membership random"],
    "between_classes": ["between classes", "level-2 classes"],
    "between_membership": ["[between]", "level-2 class regression"],
    "between_varying": ["[between] varying", "between varying", "vary across them"],
    "level2": ["[level2]"],
    "residual_covariates": ["residual variance"],
    "residual_groups": ["residual groups"],
}


def _strings(value: Any) -> list[str]:
    """Column names inside an option's value, which a message may quote."""
    if isinstance(value, str):
        return [value, *(t.strip() for t in value.replace("~", "+").split("+") if t.strip())]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (*_strings(k), *_strings(v))]
    if isinstance(value, list | tuple):
        return [s for v in value for s in _strings(v)]
    return []


@dataclass
class BadCall:
    base: str
    formula: str
    kwargs: dict[str, Any]
    frame: pd.DataFrame
    call: str
    missing: str
    defects: list[str]
    # words of which the message must hold one; None: the generator cannot tell
    names: list[str] | None
    raw: bytes = b""


def _frame_defect(draw: Any, what: str, frame: pd.DataFrame, rng: np.random.Generator) -> Any:
    """The frame with one whole-frame defect, and the words its message must name."""
    if isinstance(frame.columns, pd.MultiIndex):
        return frame, []  # one such defect is enough
    present = [c for c in ("y", "x", "z", "w", "r", "g") if c in frame.columns]
    if what == "no rows":
        return frame.iloc[:0], ["no rows"]
    if what in ("one row", "three rows"):
        return frame.iloc[: 1 if what == "one row" else 3], None
    if what == "duplicate column" and present:
        col = draw(st.sampled_from(present))
        return pd.concat([frame, frame[[col]]], axis=1), [f"'{col}'"]
    if what == "drop column" and present:
        col = draw(st.sampled_from(present))
        return frame.drop(columns=col), [f"'{col}'"]
    if what == "no columns":
        return pd.DataFrame(index=frame.index), ["'y'"]
    if what == "integer column name":
        return frame.assign(seven=1.0).rename(columns={"seven": 7}), []
    if what == "duplicated index":
        return frame.set_axis(np.zeros(len(frame), dtype=int)), []
    if what == "string index":
        return frame.set_axis([f"r{i}" for i in range(len(frame))]), []
    if what == "multiindex rows":
        rows = pd.MultiIndex.from_arrays([np.arange(len(frame)) % 2, np.arange(len(frame))])
        return frame.set_axis(rows), []
    if what == "multiindex columns" and len(frame.columns):
        cols = pd.MultiIndex.from_tuples([(c, "a") for c in frame.columns])
        return frame.set_axis(cols, axis=1), ["'y'"]
    if what == "shuffled rows":
        return frame.sample(frac=1.0, random_state=int(rng.integers(100))), []
    if what == "text column not used":
        return frame.assign(junk=["?"] * len(frame)), []
    if what == "w and g swapped":
        return frame.rename(columns={"w": "g", "g": "w"}), ["'g'", "'w'", "'x'"]
    return frame, []


@st.composite
def bad_calls(draw: Any) -> BadCall:
    base = draw(st.sampled_from(sorted(BASES)))
    formula, kwargs, cheap = BASES[base]
    kwargs = dict(kwargs)
    frame = base_frame(
        draw(st.integers(0, 2**16)), draw(st.integers(6, 12)), draw(st.integers(3, 8))
    )
    clean = frame.copy()
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    kinds = draw(st.lists(st.sampled_from(["column", "cluster", "frame", "option"]),
                          min_size=1, max_size=2))  # fmt: skip
    kinds.sort(key=lambda k: k == "frame")  # values from the clean frame, its shape last
    names: list[str] | None = []
    defects: list[str] = []
    for kind in kinds:
        if kind == "column":
            col, what = draw(st.sampled_from("yxzwrg")), draw(st.sampled_from(COLUMN_DEFECTS))
            source = clean[col]
            if col in SCHOOL_COLUMNS:  # a defect of the school's value, the same within it
                source = clean.groupby("g", sort=False)[col].transform("first")
            frame = frame.assign(**{col: column_values(what, source)})
            defects.append(f"{col}: {what}")
            new = [f"'{col}'", "within g "] if col == "g" else [f"'{col}'"]
        elif kind == "cluster":
            what = draw(st.sampled_from(sorted(CLUSTER_DEFECTS)))
            frame = frame.assign(g=cluster_values(what, clean["g"].to_numpy()))
            defects.append(f"g: {what}")
            new = ["'g'", "within g "]  # "... varies within g 3": the cluster's label
        elif kind == "frame":
            what = draw(st.sampled_from(FRAME_DEFECTS))
            frame, new = _frame_defect(draw, what, frame, rng)
            defects.append(what)
        else:
            option = draw(st.sampled_from(sorted(OPTION_DEFECTS)))
            value = draw(st.sampled_from(OPTION_DEFECTS[option]))
            kwargs[option] = value
            defects.append(f"{option}={value!r}")
            new = [option, *OPTION_WORDS.get(option, []), repr(value), str(value)]
            new += [repr(s) for s in _strings(value)]
        names = None if names is None or new is None else names + new
    call = draw(st.sampled_from(["build_design", "build_design", "fit_ml", "load_spec",
                                 "make_spec", "load_spec bytes"]))  # fmt: skip
    if call == "fit_ml" and not cheap:
        call = "build_design"
    raw = draw(st.binary(max_size=40)) if call == "load_spec bytes" else b""
    missing = draw(st.sampled_from(["error", "error", "listwise"]))
    return BadCall(base, formula, kwargs, frame, call, missing, defects, names, raw)


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return '"none"'
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(str(k))} = {_toml(v)}" for k, v in value.items()) + "}"
    return repr(value)


def model_file(formula: str, kwargs: dict[str, Any]) -> str:
    """The make_spec call as a TOML model file (description left out)."""
    top = [f"{key} = {_toml(kwargs[key])}" for key in ("classes", "cluster", "centre", "name")
           if key in kwargs]  # fmt: skip
    level2 = kwargs.get("level2")
    if level2 is not None and not isinstance(level2, dict):
        top.append(f"level2 = {_toml(level2)}")
    tables = {
        "outcome": {"formula": formula, **{k: kwargs[k] for k in (
            "class_varying", "residual_variance", "order_classes_by", "residual_covariates",
            "residual_groups") if k in kwargs}},
        "membership": {k: kwargs[o] for k, o in (("formula", "membership"),
                       ("random", "membership_random")) if o in kwargs},
        "level2": level2 if isinstance(level2, dict) else {},
        "random": {k: kwargs[o] for k, o in (("terms", "random"), ("covariance", "covariance"))
                   if o in kwargs},
        "between": {k: kwargs[o] for k, o in (("classes", "between_classes"),
                    ("formula", "between_membership"), ("varying", "between_varying"))
                    if o in kwargs},
    }  # fmt: skip
    lines = top[:]
    for table, entries in tables.items():
        if entries:
            lines.append(f"[{table}]")
            lines += [f"{json.dumps(str(k))} = {_toml(v)}" for k, v in entries.items()]
    return "\n".join(lines) + "\n"


TALLY: Counter[str] = Counter()
CALLS: Counter[str] = Counter()


@pytest.fixture(scope="module", autouse=True)
def _report_tally() -> Iterator[None]:
    yield
    if TALLY:
        print(f"\ngenerated bad API calls: {dict(CALLS.most_common())}")
        print(f"their outcomes: {dict(TALLY.most_common())}")


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@settings(
    max_examples=500, derandomize=True, deadline=None, database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)  # fmt: skip
@given(case=bad_calls())
def test_generated_bad_api_calls_raise_only_bayesmix_errors_naming_the_problem(
    case: BadCall, model_folder: Path
) -> None:
    path = model_folder / "m.toml"
    CALLS[case.call] += 1
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", bm.BayesmixWarning)
            if case.call == "load_spec bytes":
                path.write_bytes(case.raw)
                load_spec(path)
            elif case.call == "load_spec":
                path.write_text(model_file(case.formula, case.kwargs))
                build_design(load_spec(path), case.frame, missing=case.missing)
            elif case.call == "make_spec":
                bm.make_spec(case.formula, **case.kwargs)
            else:
                spec = bm.make_spec(case.formula, **case.kwargs)
                if case.call == "build_design":
                    build_design(spec, case.frame, missing=case.missing)
                else:
                    bm.fit_ml(spec, case.frame, starts=1, random_seed=1, missing=case.missing)
    except bm.BayesmixError as err:
        TALLY[type(err).__name__] += 1
        message = str(err)
        if case.call == "load_spec bytes":
            assert str(path) in message
        elif case.defects and case.names is not None:
            assert any(name in message for name in case.names), (case.defects, message)
    else:
        TALLY["no error"] += 1
