"""Simulation-based calibration: a small study of the conventional model, its file, and
the checks of its options."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

import bayesmix as bm
from bayesmix.analysis.sbc_result import rank_bins
from bayesmix.model.params import param_names
from bayesmix.paper.section2 import CONVENTIONAL_PARAMS
from bayesmix.plots import plot_sbc
from tests.support.fits import two_level_60x10
from tests.support.paths import MODELS

SIMULATIONS = 10
NUMBA = {"backend": "numba", "random_seed": 3}


@pytest.fixture(scope="module")
def design():
    spec = bm.load_spec(MODELS / "conventional.toml")
    data = bm.simulate(spec, CONVENTIONAL_PARAMS, clusters=12, cluster_size=8, random_seed=4)
    return spec, data


@pytest.fixture(scope="module")
def study(design, tmp_path_factory):
    spec, data = design
    path = tmp_path_factory.mktemp("sbc") / "conventional.jsonl"
    # numba, SBC's compiler outside the tests: one compile serves every simulation, where
    # JAX would compile each anew and sample this small model many times more slowly
    result = bm.sbc(spec, data, simulations=SIMULATIONS, **NUMBA, out=path, progress=False)
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
    assert result.fits["ml_warnings"].map(type).eq(str).all()
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
    resumed = bm.sbc(spec, data, simulations=SIMULATIONS, **NUMBA, out=path, progress=False)
    assert resumed.ranks.equals(result.ranks)
    assert len(path.read_text().splitlines()) == 1 + SIMULATIONS
    with pytest.raises(bm.EstimationError, match="holds a different study"):
        bm.sbc(
            spec,
            data,
            simulations=SIMULATIONS,
            backend="numba",
            random_seed=4,
            out=path,
            progress=False,
        )


def test_ml_start_warnings_are_gathered_in_the_table_of_fits():
    from bayesmix.analysis.sbc_result import SBCResult

    def record(i, messages):
        return {
            "replication": i,
            "ranks": {"a": i * 9},
            "truth": {"a": float(i)},
            "post_var": {"a": 0.5},
            "rhat_max": 1.001,
            "ess_bulk_min": 400.0,
            "divergences": 0,
            "seconds": 1.0,
            **({} if messages is None else {"ml_warnings": messages}),
        }

    # the last record comes from a file written before the warnings were kept
    messages = [[], ["var(u_1) is at the boundary 0"], ["a", "b"], None]
    records = [record(i, m) for i, m in enumerate(messages)]
    result = SBCResult.from_records(records, ranks=99, residual_sd_factor=1.0, model="m")
    assert list(result.fits["ml_warnings"]) == ["", "var(u_1) is at the boundary 0", "a; b", ""]
    assert "ML-start warnings in 2 fits" in result.summary()


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
        ({"init": "truth"}, "init must be 'ml' or 'prior', got 'truth'"),
        ({"backend": "stan"}, "backend must be 'numba' or 'jax'"),
        ({"random_seed": -1}, "random_seed"),
    ],
)
def test_bad_options_name_the_problem(design, options, message):
    spec, data = design
    with pytest.raises(bm.EstimationError, match=message):
        bm.sbc(spec, data, progress=False, **options)


@pytest.mark.usefixtures("python_linker")
def test_each_simulation_starts_at_its_own_ml_estimates_in_the_datas_coordinates():
    # Fig 3 from an ML start centres the school intercepts: the coordinates are chosen at
    # the real data's ML estimates, and a simulated outcome's start is its own estimates
    # written in those coordinates, so that one compiled density serves every simulation
    from bayesmix.analysis import sbc as sbc_module
    from bayesmix.bayes.coefficients import fixed_rv_name
    from bayesmix.bayes.model import sampling_model

    fitted = two_level_60x10("fig3")
    setup = sbc_module._Setup(
        spec=fitted.spec,
        frame=fitted.data,
        priors=None,
        draws=500,
        tune=500,
        chains=2,
        ranks=99,
        init="ml",
        ml_starts=4,
        seed=1,
        backend="numba",
    )
    _, internal, _, priors = sbc_module._prepared(setup)
    real, real_z = sbc_module._ml_start(setup, internal, 1)
    y_sim = internal.y[::-1].copy()
    start, start_z = sbc_module._ml_start(setup, dataclasses.replace(internal, y=y_sim), 2)
    assert not np.allclose(start.beta, real.beta)
    model = sampling_model(internal, priors, real, real_z, shared_outcome=True)
    assert {"b_school", "b_1_log_gap"} <= set(model.named_vars)
    flat = sbc_module._initial_point(setup, start, start_z, real)
    shapes = {k: np.shape(v) for k, v in model.initial_point().items()}
    names_in_order = [model.rvs_to_values[rv].name for rv in model.free_RVs]
    sizes = [int(np.prod(shapes[n])) for n in names_in_order]
    assert len(flat) == sum(sizes)
    values = np.split(flat, np.cumsum(sizes)[:-1])
    point = {n: v.reshape(shapes[n]) for n, v in zip(names_in_order, values, strict=True)}
    spec = fitted.spec
    names = [fixed_rv_name(name) for name in spec.fixed_names]
    outputs = model.replace_rvs_by_values([model[n] for n in names])
    at = model.compile_fn(
        outputs, inputs=model.value_vars, on_unused_input="ignore", point_fn=True
    )(point)
    beta = np.asarray(start.beta)
    for j, (name, value) in enumerate(zip(spec.fixed_names, at, strict=True)):
        expected = beta[: spec.classes, j] if name in spec.class_varying else beta[0, j]
        np.testing.assert_allclose(value, expected, rtol=1e-9, err_msg=name)
