"""What the generated command-line campaign (test_reliability_cli_campaign.py) found.

Each test is one command line the campaign turned up that ended in a traceback, a hang, a
destroyed input or a message that did not name the problem and its fix.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import bayesmix as bm
from bayesmix.analysis.montecarlo import SimulationDesign, montecarlo
from bayesmix.cli import main
from bayesmix.paper.section2 import FIG1_PARAMS, FIG3_PARAMS
from tests.support.cli import param_args
from tests.support.paths import MODELS

FIG1 = str(MODELS / "fig1.toml")
FIG3 = str(MODELS / "fig3.toml")
MONTECARLO = ["montecarlo", "section2", "--study", "recovery", "--replications", "1",
              "--workers", "1"]  # fmt: skip


def _data(folder: Path, clusters: int = 8, size: int = 5) -> str:
    rng = np.random.default_rng(3)
    g = np.repeat(np.arange(1, clusters + 1), size)
    x = rng.normal(size=len(g))
    y = np.where(rng.random(len(g)) < 0.5, 1.0 + x, -1.0 - 0.5 * x) + rng.normal(size=len(g))
    path = folder / "data.csv"
    pd.DataFrame({"y": y, "x": x, "w": rng.normal(size=clusters)[g - 1], "cluster": g}).to_csv(
        path, index=False
    )
    return str(path)


def _error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert err.startswith("bayesmix: error: ") and err.count("\n") == 1, err
    return err


# --- sizes that exhausted time or memory ------------------------------------------------------


def test_huge_number_of_classes_is_refused_before_naming_its_parameters(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _data(tmp_path)
    assert main(["fit", FIG1, "--data", data, "--classes", "100000000000", "--quiet"]) == 2
    assert _error(capsys) == (
        "bayesmix: error: model 'fig1' has 100000000000 latent classes but the data have only "
        "40 usable rows, fewer than one per class; use fewer classes.\n"
    )
    argv = ["fit", FIG3, "--data", data, "--between-classes", "100000000000", "--quiet"]
    assert main(argv) == 2
    assert "100000000000 level-2 classes need more clusters than classes" in _error(capsys)


def test_more_parameters_than_rows_names_the_number_of_classes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["fit", FIG1, "--data", _data(tmp_path), "--classes", "10", "--quiet"]) == 2
    assert _error(capsys) == (
        "bayesmix: error: model 'fig1' with 10 classes has 48 parameters but the data have only "
        "40 usable rows; use fewer classes, a simpler model or more data.\n"
    )


def test_simulate_with_a_huge_number_of_classes_is_refused_before_naming_its_parameters(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["simulate", FIG3, "--clusters", "5", "--cluster-size", "4", *param_args(FIG3_PARAMS),
            "--classes", "100000000000", "--out", str(tmp_path / "sim.csv")]  # fmt: skip
    assert main(argv) == 2
    assert _error(capsys) == (
        "bayesmix: error: model 'fig3' with 100000000000 classes has at least 99999999999 "
        "membership intercepts ('C#1 ~ 1', 'C#2 ~ 1', ...) but only 11 parameter values are "
        "given; use fewer classes, or give every parameter "
        "(bayesmix.model.params.param_names lists them).\n"
    )
    assert not (tmp_path / "sim.csv").exists()


def test_simulate_size_beyond_memory_is_refused_before_drawing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = str(tmp_path / "sim.csv")
    argv = ["simulate", FIG1, "--n", "100000000000", *param_args(FIG1_PARAMS), "--out", out]
    assert main(argv) == 2
    err = _error(capsys)
    assert err.startswith(
        "bayesmix: error: simulating n = 100000000000 rows of model 'fig1' needs about "
    )
    assert "GiB of memory, more than the" in err and err.endswith("give a smaller size.\n")
    argv = ["simulate", FIG3, "--clusters", "1000000", "--cluster-size", "1000000",
            *param_args(FIG3_PARAMS), "--out", out]  # fmt: skip
    assert main(argv) == 2
    assert "clusters * cluster_size = 1000000 * 1000000 = 1000000000000 rows" in _error(capsys)


# --- montecarlo --out ----------------------------------------------------------------------------


def test_montecarlo_out_under_a_file_is_refused_before_any_replication(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "notes.txt").write_text("my notes\n")
    out = tmp_path / "notes.txt" / "mc.jsonl"
    assert main([*MONTECARLO, "--out", str(out)]) == 2
    assert _error(capsys) == (
        f"bayesmix: error: --out {str(out)!r}: {str(tmp_path / 'notes.txt')!r} is a file, not a "
        "folder; give a path in an existing folder or one that can be created.\n"
    )


def test_montecarlo_out_folder_is_refused_before_any_replication(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*MONTECARLO, "--out", str(tmp_path)]) == 2
    assert _error(capsys) == (
        f"bayesmix: error: --out {str(tmp_path)!r} is a folder; give a file name (e.g. "
        f"{str(tmp_path / 'study.jsonl')!r}).\n"
    )


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"\xff\xfe\x00\x01", ["is not a bayesmix Monte Carlo file", "not UTF-8 text"]),
        (b"my notes\n", ["is not a bayesmix Monte Carlo file", "line 1"]),
        (b'{"study": "x"}\n', ["does not start with a study header"]),
    ],
    ids=["binary", "one line of text", "study not a table"],
)
def test_montecarlo_out_that_is_not_a_study_file_is_refused_and_kept(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, words: list[str]
) -> None:
    out = tmp_path / "notes.txt"
    out.write_bytes(content)
    assert main([*MONTECARLO, "--out", str(out)]) == 2
    err = _error(capsys)
    assert f"{out}" in err and "give another out= file" in err
    for word in words:
        assert word in err
    assert out.read_bytes() == content


def _ols_study(out: Path) -> bm.MonteCarloResult:
    ols = bm.make_spec("y ~ x", name="ols")
    design = SimulationDesign(ols, {"1": 1.0, "x": 0.5, "sigma2": 1.0}, n=40)
    return montecarlo(design, ols, 1, workers=1, out=out, progress=False)


def test_montecarlo_out_into_a_missing_folder_creates_it(tmp_path: Path) -> None:
    out = tmp_path / "new" / "sub" / "mc.jsonl"
    res = _ols_study(out)
    lines = out.read_text().splitlines()
    assert len(lines) == 2 and "study" in json.loads(lines[0])
    assert res.records[0]["ok"] and json.loads(lines[1])["replication"] == 0


def test_montecarlo_out_with_a_line_that_is_not_a_record_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "mc.jsonl"
    _ols_study(out)
    edited = out.read_text() + "5\n"
    out.write_text(edited)
    with pytest.raises(bm.EstimationError) as info:
        _ols_study(out)
    assert str(info.value) == (
        f"{out} line 3 is not a replication record ('5'); the file was edited or is damaged: "
        "give another out= file."
    )
    assert out.read_text() == edited


# --- simulate --out -----------------------------------------------------------------------------


def test_simulate_out_onto_the_covariates_file_is_refused_even_with_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _data(tmp_path)
    before = Path(data).read_bytes()
    argv = ["simulate", FIG1, "--covariates", data, *param_args(FIG1_PARAMS), "--out", data,
            "--force"]  # fmt: skip
    assert main(argv) == 2
    assert _error(capsys) == (
        f"bayesmix: error: --out {data!r} is the --covariates input of this command, which "
        "writing would destroy; give another path.\n"
    )
    assert Path(data).read_bytes() == before


# --- data files ---------------------------------------------------------------------------------


def test_csv_that_is_not_utf8_names_its_line_and_the_encoding(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "latin.csv"
    path.write_bytes(b"y,x\n1.0,2.0\n3.0,4.0\n5.0,caf\xe9\n")
    assert main(["fit", FIG1, "--data", str(path), "--quiet"]) == 2
    assert _error(capsys) == (
        f"bayesmix: error: {str(path)!r} is not UTF-8 text: line 4 holds the byte 0xe9 at "
        "offset 27, which UTF-8 does not allow there; save the file as UTF-8 (e.g. 'CSV UTF-8' "
        f"in a spreadsheet), or read it with pandas.read_csv({str(path)!r}, "
        "encoding='latin-1') and pass the DataFrame.\n"
    )


def test_empty_csv_says_it_is_empty(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "empty.csv"
    for content in (b"", b"\n\n  \n"):
        path.write_bytes(content)
        assert main(["fit", FIG1, "--data", str(path), "--quiet"]) == 2
        assert _error(capsys) == (
            f"bayesmix: error: {str(path)!r} is empty: it has no header line of column names "
            "and no rows; check that the file was written completely, or give the file that "
            "holds the data.\n"
        )


def test_misspelt_bundled_data_set_suggests_the_name(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fit", FIG1, "--data", "hbs", "--quiet"]) == 2
    assert _error(capsys) == (
        "bayesmix: error: data 'hbs' is neither a CSV file nor a bundled data set; bundled data "
        "sets are ['hsb']. Did you mean 'hsb'?\n"
    )


# --- model files --------------------------------------------------------------------------------


def test_order_classes_by_naming_no_term_is_refused_in_a_one_class_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = tmp_path / "model.toml"
    model.write_text('[outcome]\nformula = "y ~ x"\norder_classes_by = "zzz"\n')
    assert main(["fit", str(model), "--data", _data(tmp_path), "--quiet"]) == 2
    assert _error(capsys) == (
        f"bayesmix: error: {model}: order_classes_by='zzz' is not a fixed effect of the model; "
        "give one of the class-varying effects among ['1', 'x'], or leave it out.\n"
    )


# --- empty paths --------------------------------------------------------------------------------


def test_empty_json_path_is_refused_not_ignored(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["fit", FIG1, "--data", _data(tmp_path), "--json", "", "--quiet"]) == 2
    assert _error(capsys) == (
        "bayesmix: error: --json is an empty path; give a file name such as 'result.json'.\n"
    )


@pytest.mark.parametrize("command", ["demo", "paper"])
def test_empty_out_folder_is_refused_not_read_as_the_current_folder(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([command, "--out", ""]) == 2
    assert _error(capsys) == (
        "bayesmix: error: --out is an empty path; give a folder name such as "
        "'bayesmix-output' (or '.' for the current folder).\n"
    )


def test_empty_out_of_simulate_and_montecarlo_is_named_as_empty(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["simulate", FIG1, "--n", "40", *param_args(FIG1_PARAMS), "--out", ""]) == 2
    assert _error(capsys) == (
        "bayesmix: error: --out is an empty path; give a file name such as 'simulated.csv'.\n"
    )
    assert main([*MONTECARLO, "--out", ""]) == 2
    assert _error(capsys) == (
        "bayesmix: error: --out is an empty path; give a file name such as 'study.jsonl'.\n"
    )


def test_empty_data_and_model_paths_are_named_as_empty(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["fit", FIG1, "--data", "", "--quiet"]) == 2
    assert _error(capsys) == (
        "bayesmix: error: data '' is an empty name; give a CSV file or a bundled data set "
        "(['hsb']).\n"
    )
    assert main(["fit", "", "--data", _data(tmp_path), "--quiet"]) == 2
    assert _error(capsys) == (
        "bayesmix: error: the model file path '' is empty; give a .toml file such as "
        "models/fig1.toml.\n"
    )
