"""Bad input: bayesmix errors instead of tracebacks, messages that name the real problem and
its fix, and warnings (or errors) instead of silent acceptance."""

from __future__ import annotations

import tomllib
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import bayesmix as bm
from bayesmix import errors
from bayesmix.cli import main
from bayesmix.data import build_design
from bayesmix.spec import load_spec, spec_from_dict

MODELS = Path(__file__).resolve().parent.parent / "models"
FIG1 = str(MODELS / "fig1.toml")


def fig1_frame(n: int = 300, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    c = rng.random(n) < 0.5
    y = np.where(c, 1.0 + 0.5 * x, -1.0 - 0.5 * x) + rng.normal(scale=0.5, size=n)
    return pd.DataFrame({"y": y, "x": x})


def fig3_frame(clusters: int = 20, size: int = 5, seed: int = 2) -> pd.DataFrame:
    from bayesmix.montecarlo import FIG3_PARAMS

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
