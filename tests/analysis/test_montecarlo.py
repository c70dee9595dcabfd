"""Monte Carlo studies: summaries, failures, resuming, local processes and Dask."""

from __future__ import annotations

import json

import numpy as np
import pytest

import bayesmix as bm
from bayesmix.analysis.montecarlo import SimulationDesign, montecarlo
from bayesmix.model import params as param_layout
from bayesmix.paper.section2 import FIG1_PARAMS, section2_study
from tests.support.paths import MODELS


def fig1() -> bm.Spec:
    return bm.load_spec(MODELS / "fig1.toml")


def one_class() -> bm.Spec:
    return bm.make_spec("y ~ x", name="ols")


def test_summary_figures_and_model_selection(tmp_path):
    out = tmp_path / "mc.jsonl"
    res = montecarlo(
        (fig1(), FIG1_PARAMS), [fig1(), one_class()], 4, n=1500, workers=1,
        random_seed=3, out=out, progress=False, starts=4,
    )  # fmt: skip
    table = res.parameters("fig1")
    assert list(table.index) == param_layout.param_names(fig1())
    assert (table["replications"] == 4).all()
    est = np.array([r["estimate"] for r in res.records if r["model"] == "fig1"])
    np.testing.assert_allclose(table["average"], est.mean(axis=0))
    np.testing.assert_allclose(table["sd"], est.std(axis=0, ddof=1))
    assert table.loc["1[c1]", "population"] == 3.0
    assert 0.0 <= table["coverage"].min() and table["coverage"].max() <= 1.0
    # two well separated classes: the mixture wins on BIC every time
    sel = res.selection()
    assert sel.loc["fig1", "best_bic"] == 1.0 and sel.loc["ols", "best_bic"] == 0.0
    other = res.parameters("ols")
    assert other["population"].isna().all() and other["coverage"].isna().all()
    lines = out.read_text().splitlines()
    assert len(lines) == 9 and "study" in json.loads(lines[0]) and json.loads(lines[1])["ok"]
    assert "4 replications" in res.summary()


def test_failures_are_counted_not_dropped():
    # too few observations for the mixture's 8 parameters: every fit fails
    res = montecarlo(
        (fig1(), FIG1_PARAMS), [fig1(), one_class()], 2, n=6, workers=1, progress=False,
        starts=2,
    )  # fmt: skip
    assert res.failures == {"fig1": 2, "ols": 0}
    assert all("Error" in r["error"] for r in res.records if not r["ok"])
    assert res.selection().attrs["complete_replications"] == 0
    with pytest.raises(bm.EstimationError, match="no successful replication"):
        res.parameters("fig1")


def test_resume_runs_only_missing_replications_and_seeds_do_not_depend_on_workers(tmp_path):
    out = tmp_path / "mc.jsonl"
    design = SimulationDesign(fig1(), FIG1_PARAMS, n=1000)
    first = montecarlo(design, fig1(), 2, workers=1, out=out, progress=False, starts=2)
    more = montecarlo(design, fig1(), 3, workers=2, out=out, progress=False, starts=2)
    assert len(out.read_text().splitlines()) == 4
    assert [r["estimate"] for r in more.records[:2]] == [r["estimate"] for r in first.records]
    fresh = montecarlo(design, fig1(), 3, workers=1, progress=False, starts=2)
    np.testing.assert_allclose(
        [r["estimate"] for r in fresh.records], [r["estimate"] for r in more.records]
    )


def test_section2_studies_and_errors():
    s = section2_study("conventional-on-mixture", 10)
    assert [f.name for f in s["fit"]] == ["conventional", "fig3"]
    assert (s["clusters"], s["cluster_size"]) == (200, 15)
    with pytest.raises(bm.EstimationError, match="study must be one of"):
        section2_study("nope")
    with pytest.raises(bm.EstimationError, match="distinct names"):
        montecarlo((fig1(), FIG1_PARAMS), [fig1(), fig1()], 1, n=100)


@pytest.mark.slow
def test_dask_local_cluster_gives_the_same_replications():
    from distributed import Client, LocalCluster

    design = SimulationDesign(fig1(), FIG1_PARAMS, n=1000)
    local = montecarlo(design, fig1(), 2, workers=1, progress=False, starts=2)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True) as cluster:
        with Client(cluster) as client:
            remote = montecarlo(design, fig1(), 2, client=client, progress=False, starts=2)
    np.testing.assert_allclose(
        [r["estimate"] for r in remote.records], [r["estimate"] for r in local.records]
    )


def test_resuming_another_study_is_refused_and_cut_records_run_again(tmp_path):
    out = tmp_path / "mc.jsonl"
    design = SimulationDesign(fig1(), FIG1_PARAMS, n=800)
    montecarlo(design, [fig1(), one_class()], 2, workers=1, out=out, progress=False, starts=2)
    lines = out.read_text().splitlines()
    assert json.loads(lines[0])["study"]["random_seed"] == 0 and len(lines) == 5
    with pytest.raises(bm.EstimationError, match=r"random_seed: file 0, now 7"):
        montecarlo(design, [fig1(), one_class()], 2, workers=1, out=out, random_seed=7,
                   progress=False, starts=2)  # fmt: skip
    with pytest.raises(bm.EstimationError, match=r"fit_kwargs: file \{'starts': 2\}"):
        montecarlo(design, [fig1(), one_class()], 2, workers=1, out=out, progress=False,
                   starts=3)  # fmt: skip
    with pytest.raises(bm.EstimationError, match="fit differs"):
        montecarlo(design, fig1(), 2, workers=1, out=out, progress=False, starts=2)
    # an interruption left replication 1 with one model's record and half a line
    out.write_text("\n".join(lines[:4]) + "\n" + lines[4][:30])
    again = montecarlo(design, [fig1(), one_class()], 2, workers=1, out=out, progress=False,
                       starts=2)  # fmt: skip
    assert len(out.read_text().splitlines()) == 5
    assert [r["estimate"] for r in again.records] == [json.loads(x)["estimate"] for x in lines[1:]]
    headless = tmp_path / "old.jsonl"
    headless.write_text("\n".join(lines[1:]) + "\n")
    with pytest.raises(bm.EstimationError, match="does not start with a study header"):
        montecarlo(design, [fig1(), one_class()], 2, workers=1, out=headless, progress=False)


@pytest.mark.slow
def test_ml_and_bayes_studies_see_the_same_data_and_compare_side_by_side():
    design = SimulationDesign(one_class(), {"1": 1.0, "x": 0.5, "sigma2": 1.0}, n=200)
    ml = montecarlo(design, one_class(), 3, workers=1, progress=False, random_seed=4)
    bayes = montecarlo(design, one_class(), 3, estimator="bayes", workers=1, progress=False,
                       random_seed=4, draws=300, tune=300, chains=2)  # fmt: skip
    table = bm.compare_estimators(ml, bayes)
    assert list(table.index) == ["1", "x", "sigma2"]
    assert table.attrs["paired_replications"] == 3
    np.testing.assert_allclose(table["average_ml"], ml.parameters()["average"])
    np.testing.assert_allclose(table["coverage_bayes"], bayes.parameters()["coverage"])
    # n = 200 and weak priors: posterior means and SDs sit close to the ML figures; the
    # residual variance's posterior mean exceeds its ML estimate by about (p + 2) / n
    np.testing.assert_allclose(table["average_bayes"][:2], table["average_ml"][:2], atol=0.02)
    np.testing.assert_allclose(
        table["average_bayes"]["sigma2"], table["average_ml"]["sigma2"] * 1.02, rtol=0.01
    )
    np.testing.assert_allclose(table["average_se_bayes"], table["average_se_ml"], rtol=0.15)
    assert "not_converged" in bayes.selection().columns
    assert "best_loo" not in bayes.selection().columns  # one model: nothing to rank
    with pytest.raises(bm.EstimationError, match="an ML and a Bayes study"):
        bm.compare_estimators(ml, ml)
    other = montecarlo(design, one_class(), 3, workers=1, progress=False, random_seed=5)
    with pytest.raises(bm.EstimationError, match="simulate different data"):
        bm.compare_estimators(other, bayes)
