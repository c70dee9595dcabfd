"""Tests of the command-line interface bayesmix.cli.main."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bayesmix import simulate
from bayesmix.cli import main
from bayesmix.model.build import load_spec
from bayesmix.paper.section2 import FIG1_PARAMS
from tests.support.cli import param_args
from tests.support.data import HSB_COLUMNS
from tests.support.paths import MODELS

FIG1 = str(MODELS / "fig1.toml")


def test_main_restores_warning_format() -> None:
    before = warnings.formatwarning
    assert main(["fit", "no/such/model.toml", "--data", "hsb"]) == 2
    assert warnings.formatwarning is before


# --- errors ------------------------------------------------------------------------------------


def test_missing_model_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.toml"
    code = main(["fit", str(missing), "--data", "hsb", "--quiet"])
    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""
    assert err == f"bayesmix: error: model file {str(missing)!r} does not exist.\n"


def test_unknown_data_set_name(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["fit", FIG1, "--data", "hsbx", "--quiet"])
    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""
    assert err == (
        "bayesmix: error: data 'hsbx' is neither a CSV file nor a bundled data set; "
        "bundled data sets are ['hsb']. Did you mean 'hsb'?\n"
    )


def test_missing_column(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["fit", FIG1, "--data", "hsb", "--quiet"])
    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""
    assert err.startswith("bayesmix: error: column 'y' used by model 'fig1' is not in the data")
    assert str(HSB_COLUMNS) in err


def test_missing_column_in_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.csv"
    pd.DataFrame({"y": [1.0, 2.0, 3.0], "z": [0.0, 1.0, 0.0]}).to_csv(path, index=False)
    code = main(["fit", FIG1, "--data", str(path), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("bayesmix: error: column 'x' used by model 'fig1' is not in the data")
    assert "['y', 'z']" in err


def test_between_classes_need_clusters(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["fit", FIG1, "--data", "hsb", "--between-classes", "2", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    assert "level-2 latent classes need a cluster column" in err


def test_argparse_rejects_non_positive_starts(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["fit", FIG1, "--data", "hsb", "--starts", "0"])
    assert info.value.code == 2
    assert "argument --starts: expected a positive integer, got 0" in capsys.readouterr().err


def test_sampler_choices_are_listed(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["fit", FIG1, "--data", "hsb", "--estimator", "bayes", "--sampler", "stan"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "argument --sampler: invalid choice: 'stan'" in err
    for name in ("nutpie", "pymc", "numpyro", "blackjax"):
        assert name in err


def test_backend_a_jax_sampler_cannot_use(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["fit", FIG1, "--data", "hsb", "--estimator", "bayes", "--quiet"]
    code = main([*argv, "--sampler", "numpyro", "--backend", "numba"])
    assert code == 2
    assert capsys.readouterr().err == (
        "bayesmix: error: backend='numba' does not apply to sampler='numpyro', which always "
        "compiles with jax: leave backend unset, or use sampler='nutpie' with backend='numba'.\n"
    )


# --- simulate ----------------------------------------------------------------------------------


def test_simulate_writes_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_path = tmp_path / "sim.csv"
    argv = ["simulate", FIG1, "--n", "123", "--seed", "5", "--out", str(out_path)]
    code = main(argv + param_args(FIG1_PARAMS))
    out, err = capsys.readouterr()
    assert code == 0
    assert err == ""
    assert out == f"wrote 123 rows to {out_path}\n"
    frame = pd.read_csv(out_path)
    assert frame.shape == (123, 3)
    assert list(frame.columns) == ["x", "y", "C"]
    assert set(frame["C"].unique()) <= {1, 2}
    expected = simulate(load_spec(FIG1), FIG1_PARAMS, n=123, random_seed=5)
    pd.testing.assert_frame_equal(frame, expected, check_exact=False, rtol=1e-12)


def test_simulate_missing_parameter(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    values = {k: v for k, v in FIG1_PARAMS.items() if k != "x[c2]"}
    out_path = tmp_path / "sim.csv"
    code = main(["simulate", FIG1, "--n", "10", "--out", str(out_path), *param_args(values)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("bayesmix: error: missing parameter value(s) ['x[c2]']")
    assert not out_path.exists()


@pytest.mark.parametrize(
    ("item", "fragment"),
    [("x[c1]", "--param expects NAME=VALUE, got 'x[c1]'"), ("x[c1]=abc", "'abc' is not a number")],
)
def test_simulate_bad_param(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], item: str, fragment: str
) -> None:
    argv = ["simulate", FIG1, "--n", "10", "--out", str(tmp_path / "s.csv"), "--param", item]
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("bayesmix: error: ")
    assert fragment in err


# --- fit ---------------------------------------------------------------------------------------


def test_ml_fit_json_contract(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    n = 2000
    path = tmp_path / "fig1.csv"
    simulate(load_spec(FIG1), FIG1_PARAMS, n=n, random_seed=1).to_csv(path, index=False)
    code = main(["fit", FIG1, "--data", str(path), "--starts", "3", "--seed", "1", "--json", "-"])
    out, err = capsys.readouterr()
    assert code == 0
    # with JSON on stdout the human summary goes to stderr
    assert "bayesmix ML fit: fig1" in err
    payload = json.loads(out)
    required = {
        "model", "estimator", "n_obs", "n_clusters", "loglik", "n_params", "bic", "aic",
        "elapsed_s", "params",
    }  # fmt: skip
    assert required <= set(payload)
    assert payload["model"] == "fig1"
    assert payload["estimator"] == "ml"
    assert payload["n_obs"] == n
    assert payload["n_clusters"] is None
    assert payload["n_params"] == 8
    loglik = payload["loglik"]
    assert math.isfinite(loglik)
    assert payload["bic"] == pytest.approx(-2 * loglik + 8 * math.log(n), abs=1e-6)
    assert payload["aic"] == pytest.approx(-2 * loglik + 2 * 8, abs=1e-6)
    assert payload["elapsed_s"] > 0
    names = [p["name"] for p in payload["params"]]
    assert names == [
        "1[c1]", "1[c2]", "x[c1]", "x[c2]", "sigma2[c1]", "sigma2[c2]", "C#1 ~ 1", "C#1 ~ x",
    ]  # fmt: skip
    for entry in payload["params"]:
        assert set(entry) == {"name", "estimate", "se"}
        assert math.isfinite(entry["estimate"])
        assert entry["se"] > 0
        # n = 2000 recovers the population values within 5 standard errors
        assert abs(entry["estimate"] - FIG1_PARAMS[entry["name"]]) < 5 * entry["se"]


def test_the_console_command_flushes_runs_exit_handlers_and_keeps_its_exit_code(tmp_path):
    import os
    import subprocess
    import sys

    probe = (
        "import atexit, sys\n"
        "atexit.register(lambda: print('exit handler ran'))\n"
        "from bayesmix.cli import run\n"
        "sys.argv = ['bayesmix'] + sys.argv[1:]\n"
        "run()\n"
    )
    env = {**os.environ, "BAYESMIX_CACHE": str(tmp_path)}
    ok = subprocess.run(
        [sys.executable, "-c", probe, "cache"], capture_output=True, text=True, env=env, timeout=120
    )
    assert ok.returncode == 0
    assert str(tmp_path) in ok.stdout
    assert ok.stdout.rstrip().endswith("exit handler ran")
    failed = subprocess.run(
        [sys.executable, "-c", probe, "fit", str(tmp_path / "none.toml"), "--data", "hsb"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert failed.returncode == 2
    assert failed.stderr.startswith("bayesmix: error:")
    assert "none.toml" in failed.stderr


def test_a_weighted_model_file_fits_with_robust_errors_and_nuts_needs_the_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = tmp_path / "weighted.toml"
    model.write_text(Path(FIG1).read_text() + '\n[weights]\nwithin = "wt"\n')
    data = simulate(load_spec(FIG1), FIG1_PARAMS, n=500, random_seed=1)
    data["wt"] = np.random.default_rng(2).uniform(0.5, 2.0, len(data))
    path = tmp_path / "weighted.csv"
    data.to_csv(path, index=False)
    argv = ["fit", str(model), "--data", str(path), "--starts", "2", "--seed", "1"]
    assert main([*argv, "--json", "-"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["se_type"] == "mlr"
    assert "sampling weights: wt (sample)" in err
    assert main([*argv, "--se", "ml"]) == 2
    assert "se='mlr'" in capsys.readouterr().err
    assert main([*argv, "--estimator", "bayes", "--draws", "10", "--tune", "10"]) == 2
    assert "pseudo_likelihood=True" in capsys.readouterr().err


def test_a_model_file_with_constraints_fits_from_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = tmp_path / "constrained.toml"
    model.write_text(
        Path(FIG1).read_text()
        + '\n[constraints]\nfixed = { "x[c2]" = 0.5 }\nequal = [["sigma2[c1]", "sigma2[c2]"]]\n'
    )
    path = tmp_path / "fig1.csv"
    simulate(load_spec(FIG1), FIG1_PARAMS, n=500, random_seed=1).to_csv(path, index=False)
    argv = ["fit", str(model), "--data", str(path), "--starts", "4", "--seed", "1"]
    assert main([*argv, "--json", "-"]) == 0
    out, err = capsys.readouterr()
    got = json.loads(out)
    assert got["n_params"] == 6
    assert got["constraints"]["fixed"] == {"x[c2]": 0.5}
    params = {p["name"]: p for p in got["params"]}
    assert params["x[c2]"]["estimate"] == 0.5 and params["x[c2]"]["se"] == 0.0
    assert params["sigma2[c1]"]["estimate"] == pytest.approx(params["sigma2[c2]"]["estimate"])
    assert "constraints: x[c2] fixed at 0.5; sigma2[c1] = sigma2[c2]" in err
    model.write_text(Path(FIG1).read_text() + '\n[constraints]\nfixed = { "x[c3]" = 0.5 }\n')
    assert main(argv) == 2
    assert "'x[c3]' is not a parameter of the model; did you mean" in capsys.readouterr().err


def test_fit_adds_class_enumeration_tests(tmp_path: Path) -> None:
    data = tmp_path / "fig1.csv"
    simulate(load_spec(FIG1), FIG1_PARAMS, n=300, random_seed=11).to_csv(data, index=False)
    out = tmp_path / "table.json"
    argv = ["fit", FIG1, "--data", str(data), "--classes", "1", "2", "--starts", "4"]
    code = main([*argv, "--seed", "1", "--lmr", "--blrt", "2", "--quiet", "--json", str(out)])
    assert code == 0
    rows = json.loads(out.read_text())["comparison"]
    assert rows[0]["lmr_p"] is None and rows[0]["blrt_p"] is None
    assert rows[1]["lmr_p"] < 1e-6 and rows[1]["lmr_adj_p"] < 1e-6
    assert rows[1]["blrt_p"] == pytest.approx(1 / 3)


def test_fit_refuses_class_tests_without_several_classes(capsys) -> None:
    assert main(["fit", FIG1, "--data", "hsb", "--lmr", "--quiet"]) == 2
    assert "--classes 1 2 3 --lmr" in capsys.readouterr().err


def test_paper_passes_the_class_tests_to_table_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import bayesmix.paper.runs

    calls: list[dict] = []
    monkeypatch.setattr(bayesmix.paper.runs, "run_paper", lambda out, **kw: calls.append(kw))
    out = str(tmp_path / "paper")
    assert main(["paper", "--out", out, "--quick"]) == 0
    assert main(["paper", "--out", out, "--lmr", "--blrt", "19", "--workers", "2"]) == 0
    assert (calls[0]["lmr"], calls[0]["blrt"]) == (False, 0)
    assert (calls[1]["lmr"], calls[1]["blrt"], calls[1]["workers"]) == (True, 19, 2)
