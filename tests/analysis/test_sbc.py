"""Simulation-based calibration: a small study of the conventional model, its file, and
the checks of its options."""

from __future__ import annotations

import json

import numpy as np
import pytest

import bayesmix as bm
from bayesmix.analysis.sbc_result import rank_bins
from bayesmix.model.params import param_names
from bayesmix.paper.section2 import CONVENTIONAL_PARAMS
from bayesmix.plots import plot_sbc
from tests.support.paths import MODELS

SIMULATIONS = 10


@pytest.fixture(scope="module")
def design():
    spec = bm.load_spec(MODELS / "conventional.toml")
    data = bm.simulate(spec, CONVENTIONAL_PARAMS, clusters=12, cluster_size=8, random_seed=4)
    return spec, data


@pytest.fixture(scope="module")
def study(design, tmp_path_factory):
    spec, data = design
    path = tmp_path_factory.mktemp("sbc") / "conventional.jsonl"
    result = bm.sbc(spec, data, simulations=SIMULATIONS, random_seed=3, out=path, progress=False)
    return result, path


@pytest.mark.slow
def test_ranks_of_every_parameter_and_the_log_likelihood(study):
    result, _ = study
    names = [*param_names(bm.load_spec(MODELS / "conventional.toml")), "loglik"]
    assert list(result.ranks.columns) == names
    assert result.ranks.shape == (SIMULATIONS, len(names))
    assert result.ranks.to_numpy().min() >= 0 and result.ranks.to_numpy().max() <= 99
    # the drawn values differ between simulations: each comes from the prior
    truth = np.array([[r["truth"][n] for n in names[:-1]] for r in result.records])
    assert np.all(truth.std(axis=0) > 0)
    # ten simulations: two bins of 50 ranks, each test at 0.01 over the 9 tests
    assert result.bins == 2 and result.threshold == pytest.approx(0.01 / len(names))
    assert result.p_values.between(0, 1).all()
    # every fit samples the same compiled density: they all ran, with 2 x 500 draws
    assert len(result.fits) == SIMULATIONS and (result.fits["rhat_max"] < 1.1).all()
    # 12 schools of 8 pin the fixed effects and sigma2 down far more than their prior
    assert (result.contraction[["1", "x", "sigma2"]] > 0.9).all()
    assert "SBC of conventional: 10 simulations" in result.summary()
    fig = plot_sbc(result)
    assert sum(ax.get_visible() for ax in fig.axes) == len(names)


@pytest.mark.slow
def test_an_interrupted_study_resumes_to_the_same_ranks(design, study):
    spec, data = design
    result, path = study
    lines = path.read_text().splitlines()
    assert json.loads(lines[0])["study"]["simulations"] == SIMULATIONS
    assert len(lines) == 1 + SIMULATIONS
    # cut after six simulations, the last line half written
    path.write_text("\n".join(lines[:7]) + "\n" + lines[7][:25])
    resumed = bm.sbc(spec, data, simulations=SIMULATIONS, random_seed=3, out=path, progress=False)
    assert resumed.ranks.equals(result.ranks)
    assert len(path.read_text().splitlines()) == 1 + SIMULATIONS
    with pytest.raises(bm.EstimationError, match="holds a different study"):
        bm.sbc(spec, data, simulations=SIMULATIONS, random_seed=4, out=path, progress=False)


def test_rank_bins_split_the_ranks_evenly():
    assert rank_bins(99, 100) == 20
    assert rank_bins(99, 10) == 2
    assert rank_bins(99, 4) == 1


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"simulations": 0}, "simulations must be a positive integer, got 0"),
        ({"draws": 40, "chains": 2}, "ranks=99 needs at least as many posterior draws"),
        ({"residual_sd_factor": -1.0}, "residual_sd_factor must be a positive number"),
        ({"random_seed": -1}, "random_seed"),
    ],
)
def test_bad_options_name_the_problem(design, options, message):
    spec, data = design
    with pytest.raises(bm.EstimationError, match=message):
        bm.sbc(spec, data, progress=False, **options)
