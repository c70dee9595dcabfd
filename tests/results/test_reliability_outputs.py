"""Outputs are checked before the work, written atomically, and saved results are verified.

The named tests reproduce cases of issue 27 ("results are lost or overwritten", tracebacks on
damaged result files, hand-edited result files loading as if valid).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import bayesmix as bm
import bayesmix.ml.fit
import bayesmix.outputs
import bayesmix.paper.demo
import bayesmix.paper.runs
import bayesmix.results.persist
from bayesmix.cli import main
from bayesmix.paper.section2 import FIG1_PARAMS
from tests.support.cli import param_args
from tests.support.paths import ROOT
from tests.support.settings import TINY

FIG1 = str(ROOT / "models" / "fig1.toml")


@pytest.fixture(scope="module")
def fig1_data() -> pd.DataFrame:
    return bm.simulate(bm.load_spec(FIG1), FIG1_PARAMS, n=300, random_seed=3)


@pytest.fixture(scope="module")
def ml(fig1_data: pd.DataFrame) -> bm.MLResult:
    return bm.fit_ml(bm.load_spec(FIG1), fig1_data, starts=2, random_seed=1)


@pytest.fixture(scope="module")
def post(fig1_data: pd.DataFrame) -> bm.BayesResult:
    with warnings.catch_warnings():
        # 2 x 50 draws: the R-hat, ESS and Pareto k warnings are expected
        warnings.simplefilter("ignore")
        return bm.fit_bayes(
            bm.load_spec(FIG1), fig1_data, **TINY.kwargs(random_seed=1, ml_starts=2)
        )


@pytest.fixture
def csv(tmp_path: Path, fig1_data: pd.DataFrame) -> Path:
    path = tmp_path / "fig1.csv"
    fig1_data.to_csv(path, index=False)
    return path


def _fit_argv(csv: Path, json_path: str) -> list[str]:
    fit = ["fit", FIG1, "--data", str(csv), "--starts", "2", "--seed", "1", "--quiet"]
    return [*fit, "--json", json_path]


@pytest.fixture
def fit_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the ML fits the CLI starts (the fit still runs)."""
    calls: list[int] = []
    real = bayesmix.ml.fit.fit_ml

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(bayesmix.ml.fit, "fit_ml", counting)
    return calls


def _sim_argv(out: Path, *extra: str) -> list[str]:
    argv = ["simulate", FIG1, "--n", "50", "--seed", "2", "--out", str(out), *extra]
    return [*argv, *param_args(FIG1_PARAMS)]


def _edit(path: Path, change) -> None:
    payload = json.loads(path.read_text())
    change(payload)
    path.write_text(json.dumps(payload))


# --- issue 27, "results are lost or overwritten" -----------------------------------------------


def test_json_to_missing_folder_is_checked_before_fitting(
    tmp_path: Path, csv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "new" / "deeper" / "fit.json"
    assert main(_fit_argv(csv, str(target))) == 0
    payload = json.loads(target.read_text())
    assert payload["format"] == "bayesmix-fit"
    assert payload["model"] == "fig1" and payload["n_obs"] == 300
    assert capsys.readouterr().err == ""


def test_json_to_unwritable_path_fails_before_fitting(
    tmp_path: Path, csv: Path, fit_calls: list[int], capsys: pytest.CaptureFixture[str]
) -> None:
    # a path below a file can never be written (permissions do not stop root)
    target = csv / "fit.json"
    assert main(_fit_argv(csv, str(target))) == 2
    err = capsys.readouterr().err
    assert err == (
        f"bayesmix: error: --json {str(target)!r}: {str(csv)!r} is a file, not a folder; "
        "give a path in an existing folder or one that can be created.\n"
    )
    assert fit_calls == []


def test_json_naming_the_data_file_is_refused_and_the_data_kept(
    csv: Path, fit_calls: list[int], capsys: pytest.CaptureFixture[str]
) -> None:
    before = csv.read_bytes()
    # the same file under another spelling is still the data file
    alias = csv.parent / "." / csv.name
    assert main(_fit_argv(csv, str(alias))) == 2
    err = capsys.readouterr().err
    assert err == (
        f"bayesmix: error: --json {str(alias)!r} is the --data input of this command, which "
        "writing would destroy; give another path.\n"
    )
    assert csv.read_bytes() == before
    assert fit_calls == []


def test_json_naming_the_model_file_is_refused(
    tmp_path: Path, csv: Path, fit_calls: list[int], capsys: pytest.CaptureFixture[str]
) -> None:
    model = tmp_path / "fig1.toml"
    model.write_text(Path(FIG1).read_text())
    argv = _fit_argv(csv, str(model))
    argv[1] = str(model)
    assert main(argv) == 2
    assert "is the model file input of this command" in capsys.readouterr().err
    assert model.read_text() == Path(FIG1).read_text()
    assert fit_calls == []


def test_json_over_a_foreign_file_needs_force(
    tmp_path: Path, csv: Path, fit_calls: list[int], capsys: pytest.CaptureFixture[str]
) -> None:
    notes = tmp_path / "notes.json"
    notes.write_text('{"mine": true}')
    assert main(_fit_argv(csv, str(notes))) == 2
    assert capsys.readouterr().err == (
        f"bayesmix: error: --json {str(notes)!r} exists and is not a bayesmix output; give a "
        "new name, or pass --force to replace it.\n"
    )
    assert notes.read_text() == '{"mine": true}' and fit_calls == []
    assert main([*_fit_argv(csv, str(notes)), "--force"]) == 0
    assert json.loads(notes.read_text())["format"] == "bayesmix-fit"
    # a --json file of an earlier run is replaced without --force
    assert main(_fit_argv(csv, str(notes))) == 0
    assert len(fit_calls) == 2


def test_ml_save_over_a_foreign_file_is_refused(tmp_path: Path, ml: bm.MLResult) -> None:
    data = tmp_path / "data.csv"
    data.write_text("y,x\n1,2\n")
    with pytest.raises(bm.BayesmixError) as info:
        ml.save(data)
    assert str(info.value) == (
        f"save path {str(data)!r} exists and is not a bayesmix output; give a new name, or "
        "pass overwrite=True to replace it."
    )
    assert data.read_text() == "y,x\n1,2\n"


def test_ml_save_into_missing_folder_creates_it(tmp_path: Path, ml: bm.MLResult) -> None:
    path = ml.save(tmp_path / "results" / "2024" / "fig1")
    assert path == tmp_path / "results" / "2024" / "fig1.json"
    assert bm.load_result(path).summary() == ml.summary()


# --- issue 27, tracebacks instead of errors ----------------------------------------------------


def test_simulate_out_into_missing_folder_creates_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "sims" / "run1" / "data.csv"
    assert main(_sim_argv(out)) == 0
    assert capsys.readouterr().out == f"wrote 50 rows to {out}\n"
    assert pd.read_csv(out).shape == (50, 3)


def test_result_json_with_string_estimate_is_a_result_file_error(
    tmp_path: Path, ml: bm.MLResult
) -> None:
    path = ml.save(tmp_path / "fit.json")

    def change(p):
        p["ml"]["estimates"][2] = "abc"

    _edit(path, change)
    with pytest.raises(bm.ResultFileError, match=r"fields that changed: \['ml.estimates'\]"):
        bm.load_result(path)
    with pytest.warns(bm.BayesmixWarning):
        with pytest.raises(bm.ResultFileError) as info:
            bm.load_result(path, verify=False)
    assert str(info.value) == (
        f"{path}: field ml.estimates[2] is 'abc', not a number; the file was edited or "
        "damaged: save the fit again."
    )


def test_result_json_with_missing_key_is_a_result_file_error(
    tmp_path: Path, ml: bm.MLResult
) -> None:
    path = ml.save(tmp_path / "fit.json")
    _edit(path, lambda p: p["ml"].pop("se"))
    with pytest.raises(bm.ResultFileError, match=r"fields that changed: \['ml.se'\]"):
        bm.load_result(path)
    with pytest.warns(bm.BayesmixWarning):
        with pytest.raises(bm.ResultFileError) as info:
            bm.load_result(path, verify=False)
    assert str(info.value) == (
        f"{path}: field ml.se is missing; the file was edited or damaged: save the fit again."
    )


@pytest.mark.slow
def test_bayes_result_folder_without_zarr_store_is_a_result_file_error(
    tmp_path: Path, post: bm.BayesResult
) -> None:
    import shutil

    folder = post.save(tmp_path / "post")
    shutil.rmtree(folder / "idata.zarr")
    with pytest.raises(bm.ResultFileError) as info:
        bm.load_result(folder, verify=False)
    assert str(info.value) == (
        f"{folder}: the draws (idata.zarr) are missing; the folder is incomplete: save the "
        "fit again."
    )
    with pytest.raises(bm.ResultFileError, match=r"idata\.zarr"):
        bm.load_result(folder)


# --- issue 27, silent acceptance ---------------------------------------------------------------


def test_result_json_with_changed_classes_is_refused(tmp_path: Path, ml: bm.MLResult) -> None:
    path = ml.save(tmp_path / "fit.json")

    def change(p):
        p["spec"]["classes"] = 3

    _edit(path, change)
    with pytest.raises(bm.ResultFileError) as info:
        bm.load_result(path)
    assert str(info.value) == (
        f"{path} was changed after it was saved: fields that changed: ['spec.classes']. "
        "Load it with verify=False to read it anyway."
    )
    with pytest.warns(bm.BayesmixWarning, match=r"\['spec.classes'\]"):
        with pytest.raises(bm.ResultFileError) as info:
            bm.load_result(path, verify=False)
    assert str(info.value).startswith(
        f"{path}: field ml.names does not match the model in field spec: it has 8 parameters, "
        "the model has 13 (first difference: 'x[c1]' where the model has '1[c3]')"
    )


def test_result_json_with_renamed_parameter_is_refused(tmp_path: Path, ml: bm.MLResult) -> None:
    path = ml.save(tmp_path / "fit.json")

    def change(p):
        p["ml"]["names"][2] = "slope[c1]"

    _edit(path, change)
    with pytest.raises(bm.ResultFileError, match=r"fields that changed: \['ml.names'\]"):
        bm.load_result(path)
    with pytest.warns(bm.BayesmixWarning):
        with pytest.raises(bm.ResultFileError) as info:
            bm.load_result(path, verify=False)
    assert str(info.value) == (
        f"{path}: field ml.names does not match the model in field spec: 'slope[c1]' where "
        "the model has 'x[c1]'; the file was edited or damaged: save the fit again."
    )


# --- output paths on the command line ----------------------------------------------------------


def test_simulate_out_refuses_an_existing_file_and_the_model_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "data.csv"
    out.write_text("precious\n")
    assert main(_sim_argv(out)) == 2
    assert capsys.readouterr().err == (
        f"bayesmix: error: --out {str(out)!r} exists and is not a bayesmix output; give a new "
        "name, or pass --force to replace it.\n"
    )
    assert out.read_text() == "precious\n"
    assert main([*_sim_argv(out), "--force"]) == 0
    assert pd.read_csv(out).shape == (50, 3)
    # not even --force writes over the model file
    model = tmp_path / "fig1.toml"
    model.write_text(Path(FIG1).read_text())
    argv = _sim_argv(model, "--force")
    argv[1] = str(model)
    assert main(argv) == 2
    assert "--out" in capsys.readouterr().err
    assert model.read_text() == Path(FIG1).read_text()


@pytest.mark.parametrize("command", ["demo", "paper"])
def test_demo_and_paper_check_their_folder_before_running(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    command: str,
) -> None:

    ran: list[Path] = []
    monkeypatch.setattr(bayesmix.paper.runs, "run_paper", lambda out, **kw: ran.append(out))
    monkeypatch.setattr(bayesmix.paper.demo, "run_fig1_demo", lambda out, **kw: ran.append(out))
    monkeypatch.setattr(bayesmix.paper.demo, "run_hsb_conventional_demo", lambda out: None)
    blocker = tmp_path / "report"
    blocker.write_text("a file")
    assert main([command, "--out", str(blocker)]) == 2
    assert capsys.readouterr().err == (
        f"bayesmix: error: --out {str(blocker)!r}: {str(blocker)!r} is a file, not a folder; "
        "give a path in an existing folder or one that can be created.\n"
    )
    assert ran == []
    fresh = tmp_path / "runs" / "today"
    assert main([command, "--out", str(fresh)]) == 0
    assert fresh.is_dir() and ran == [fresh]


def test_cli_json_keeps_its_documented_keys_beside_the_marker(tmp_path: Path, csv: Path) -> None:
    target = tmp_path / "fit.json"
    assert main(_fit_argv(csv, str(target))) == 0
    payload = json.loads(target.read_text())
    documented = {
        "model", "estimator", "n_obs", "n_clusters", "loglik", "n_params", "bic", "aic",
        "elapsed_s", "params",
    }  # fmt: skip
    assert documented <= set(payload)
    assert payload["format"] == "bayesmix-fit"
    assert bayesmix.outputs.is_bayesmix_output(target)
    # the JSON is not a saved result: load_result says so
    with pytest.raises(bm.ResultFileError, match="not a saved bayesmix result"):
        bm.load_result(target)


# --- saving: paths, atomic writes, overwrite ---------------------------------------------------


def test_ml_save_over_a_folder_is_refused(tmp_path: Path, ml: bm.MLResult) -> None:
    folder = tmp_path / "fits.json"
    folder.mkdir()
    with pytest.raises(bm.OutputError) as info:
        ml.save(folder, overwrite=True)
    assert str(info.value) == (
        f"save path {str(folder)!r} is a folder; give a file name (e.g. "
        f"{str(folder / 'result.json')!r})."
    )


def test_overwrite_true_replaces_a_foreign_file(tmp_path: Path, ml: bm.MLResult) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("old notes")
    notes.chmod(0o640)
    assert ml.save(notes, overwrite=True) == notes
    assert bm.load_result(notes).summary() == ml.summary()
    assert notes.stat().st_mode & 0o777 == 0o640
    # a saved result is replaced without being asked
    ml.save(notes)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_atomic_write_keeps_the_old_file_when_writing_fails(
    tmp_path: Path, ml: bm.MLResult, monkeypatch: pytest.MonkeyPatch
) -> None:

    path = ml.save(tmp_path / "fit.json")
    before = path.read_bytes()

    def interrupted(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(bayesmix.outputs.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        ml.save(path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["fit.json"]  # no temporary file left

    def half_written(fh):
        fh.write('{"format": "bayesmix-res')
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        bayesmix.outputs.write_file(path, half_written)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["fit.json"]


# --- checksums ---------------------------------------------------------------------------------


def test_verify_false_loads_an_edited_file_with_a_warning_naming_the_field(
    tmp_path: Path, ml: bm.MLResult
) -> None:
    path = ml.save(tmp_path / "fit.json")
    saved = json.loads(path.read_text())
    assert saved["format_version"] == 2
    assert set(saved["checksum"]) >= {"spec.classes", "ml.estimates", "ml.names", "data.values"}

    def change(p):
        p["ml"]["elapsed_s"] = 1.0

    _edit(path, change)
    with pytest.raises(bm.ResultFileError) as info:
        bm.load_result(path)
    assert str(info.value) == (
        f"{path} was changed after it was saved: fields that changed: ['ml.elapsed_s']. "
        "Load it with verify=False to read it anyway."
    )
    with pytest.warns(bm.ResultFileWarning) as record:
        back = bm.load_result(path, verify=False)
    assert [str(w.message) for w in record] == [
        f"{path} was changed after it was saved (fields that changed: ['ml.elapsed_s']); it "
        "is loaded unverified, as verify=False asks."
    ]
    assert back.elapsed_s == 1.0
    pd.testing.assert_frame_equal(back.params, ml.params)


def test_a_format_1_file_without_checksum_still_loads(tmp_path: Path, ml: bm.MLResult) -> None:
    path = ml.save(tmp_path / "fit.json")

    def as_format_1(p):
        p["format_version"] = 1
        del p["checksum"]
        del p["data"]["included"]

    _edit(path, as_format_1)
    with pytest.warns(bm.ResultFileWarning, match="format 1, which carries no checksum"):
        back = bm.load_result(path)
    assert back.summary() == ml.summary()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bm.load_result(path, verify=False)


# --- include_data=False ------------------------------------------------------------------------


def test_ml_result_saved_without_rows_keeps_summary_and_comparison(tmp_path: Path) -> None:
    from bayesmix.paper.section2 import CONVENTIONAL_PARAMS

    spec = bm.load_spec(str(ROOT / "models" / "conventional.toml"))
    data = bm.simulate(spec, CONVENTIONAL_PARAMS, clusters=40, cluster_size=10, random_seed=2)
    fit = bm.fit_ml(spec, data)
    path = fit.save(tmp_path / "conv.json", include_data=False)
    text = path.read_text()
    saved = json.loads(text)
    assert saved["data"] == {
        "included": False,
        "n_obs": 400,
        "n_clusters": 40,
        "n_dropped": 0,
        "group_levels": [],
    }
    assert "class_probabilities" not in saved["ml"]
    assert repr(float(data["y"].iloc[0])) not in text  # no outcome value is in the file
    back = bm.load_result(path)
    assert back.summary() == fit.summary()
    assert back.to_dict() == fit.to_dict()
    pd.testing.assert_frame_equal(back.params, fit.params)
    assert (back.aic, back.bic) == (fit.aic, fit.bic)
    pd.testing.assert_frame_equal(bm.compare([back, fit]), bm.compare([fit, fit]))
    with pytest.raises(bm.DataError) as info:
        bm.school_effects(back)
    assert str(info.value) == (
        "this result was saved with include_data=False and holds no data rows (asked for: "
        "design.cluster_ids); use a copy saved with include_data=True (the default), or fit "
        "the model to the data again."
    )
    with pytest.raises(bm.DataError, match="include_data=False"):
        bm.posterior_predictive(back)
    # saved again, it stays without rows
    again = bm.load_result(back.save(tmp_path / "again.json"))
    assert again.summary() == fit.summary()
    assert json.loads((tmp_path / "again.json").read_text())["data"]["included"] is False


def test_mixture_saved_without_rows_keeps_its_class_table(tmp_path: Path, ml: bm.MLResult) -> None:
    back = bm.load_result(ml.save(tmp_path / "fig1", include_data=False))
    assert back.summary() == ml.summary()
    pd.testing.assert_frame_equal(back.classes, ml.classes)
    assert back.entropy == ml.entropy
    with pytest.raises(bm.DataError, match="include_data=False"):
        np.asarray(back.class_probabilities)
    from bayesmix.plots import plot_class_lines

    with pytest.raises(bm.DataError, match="include_data=False"):
        plot_class_lines(back, "x")


# --- NUTS result folders -----------------------------------------------------------------------


@pytest.mark.slow
def test_bayes_result_saved_without_rows_keeps_summary_and_loo(
    tmp_path: Path, post: bm.BayesResult
) -> None:
    folder = post.save(tmp_path / "post", include_data=False)
    groups = sorted(p.name for p in (folder / "idata.zarr").iterdir() if p.is_dir())
    assert groups == [
        "bayesmix_named_draws",
        "log_likelihood",
        "posterior",
        "sample_space",
        "sample_stats",
    ]
    back = bm.load_result(folder)
    assert back.summary() == post.summary()
    pd.testing.assert_frame_equal(back.table, post.table)
    assert back.loglik == post.loglik
    assert "observed_data" not in back.idata.children
    table, expected = bm.compare([back]), bm.compare([post])
    assert table["elpd_loo"].iloc[0] == pytest.approx(expected["elpd_loo"].iloc[0])
    assert table["bic"].iloc[0] == expected["bic"].iloc[0]
    with pytest.raises(bm.DataError, match="include_data=False"):
        bm.posterior_predictive(back)


@pytest.mark.slow
def test_bayes_save_that_fails_keeps_the_old_folder(
    tmp_path: Path, post: bm.BayesResult, monkeypatch: pytest.MonkeyPatch
) -> None:

    folder = post.save(tmp_path / "post")
    before = (folder / "result.json").read_bytes()

    def interrupted(store):
        raise KeyboardInterrupt  # Ctrl-C after the draws were written, before the JSON

    monkeypatch.setattr(bayesmix.results.persist, "_store_checksums", interrupted)
    with pytest.raises(KeyboardInterrupt):
        post.save(folder, include_data=False)
    monkeypatch.undo()
    assert [p.name for p in tmp_path.iterdir()] == ["post"]
    assert (folder / "result.json").read_bytes() == before
    assert bm.load_result(folder).summary() == post.summary()


@pytest.mark.slow
def test_damaged_zarr_store_is_named(tmp_path: Path, post: bm.BayesResult) -> None:
    folder = post.save(tmp_path / "post")
    chunk = next(p for p in (folder / "idata.zarr" / "posterior").rglob("*") if p.is_file()
                 and p.parent.name != "posterior" and "c" in p.parts)  # fmt: skip
    chunk.write_bytes(b"damaged")
    with pytest.raises(bm.ResultFileError, match=r"\['idata.zarr/posterior'\]"):
        bm.load_result(folder)
    with pytest.warns(bm.ResultFileWarning):
        with pytest.raises(bm.ResultFileError, match="cannot be read"):
            bm.load_result(folder, verify=False)
    # a non-empty foreign folder is never replaced, not even with overwrite=True
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(bm.OutputError, match="not deleted"):
        post.save(tmp_path / "mine", overwrite=True)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep"
