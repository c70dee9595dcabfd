"""Simulation-based calibration of the NUTS fit (Talts, Betancourt, Simpson, Vehtari and
Gelman 2018, "Validating Bayesian inference algorithms with simulation-based calibration").

Each simulation draws the parameters from the prior, simulates the outcome on the data's
design given them, fits by NUTS and records, for every parameter, the rank of the drawn
value among L thinned posterior draws. If the sampler draws from the posterior the model
defines, each rank is uniform on 0..L. The priors are computed once from the real data
and held fixed (the default priors depend on y, so recomputing them per simulated data
set would break the calibration), and so are the standardisation NUTS samples on and,
with the ML start, the sampled coordinates: every simulation samples the same log density,
with only the outcome changed, from its own ML estimates as ``fit_bayes`` starts.

Parameters and outcomes are drawn forward by PyMC from :func:`bayesmix.build_model`'s
model, whose joint density is the one :func:`bayesmix.fit_bayes` samples (up to a
constant); NUTS runs on the model ``fit_bayes`` builds, compiled once per process with
numba (or per simulation with JAX, which compiles the data in).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from bayesmix.analysis.sbc_result import SBCResult
from bayesmix.analysis.study import append_records, read_records
from bayesmix.analysis.tasks import run_tasks
from bayesmix.data.reading import DataLike
from bayesmix.errors import BayesmixWarning, EstimationError
from bayesmix.model.constraints import describe
from bayesmix.model.params import Params
from bayesmix.model.priors import Prior
from bayesmix.model.spec import Spec
from bayesmix.outputs import check_output
from bayesmix.progress import Progress
from bayesmix.validate import check_count, check_seed


@dataclass(frozen=True)
class _Setup:
    """What every simulation of a study shares, and how the NUTS runs are made."""

    spec: Spec
    frame: pd.DataFrame
    priors: dict[str, Prior] | None
    draws: int
    tune: int
    chains: int
    ranks: int
    init: str
    ml_starts: int
    seed: int
    backend: str


@dataclass(frozen=True)
class _Compiled:
    """What a process keeps of a setup: the estimates that chose the sampled coordinates
    (None for the prior-based start) and, with numba, nutpie's model compiled once."""

    coordinates: Params | None
    model: Any


@dataclass(frozen=True)
class _Task:
    setup: _Setup
    simulation: int
    seed: int
    y: np.ndarray
    truth: Params
    u: np.ndarray | None


# per process: the prepared design, standardisation and priors of a setup, and its
# compiled model (built in the processes that sample)
_PREPARED: dict[str, Any] = {}
_COMPILED: dict[str, Any] = {}


def _setup_key(setup: _Setup) -> str:
    h = hashlib.sha256(repr(dataclasses.replace(setup, frame=None)).encode())
    h.update(pd.util.hash_pandas_object(setup.frame, index=False).to_numpy().tobytes())
    return h.hexdigest()


def _prepared(setup: _Setup) -> tuple[Any, Any, Any, dict[str, Prior]]:
    """Design, standardised design, standardisation and its priors, once per process."""
    from bayesmix.bayes.fit import prepare

    key = _setup_key(setup)
    if key not in _PREPARED:
        _PREPARED.clear()
        _PREPARED[key] = prepare(setup.spec, setup.frame, setup.priors, "error")
    return _PREPARED[key]


def _ml_start(setup: _Setup, internal: Any, seed: int) -> tuple[Params, np.ndarray | None]:
    """The ML start of ``fit_bayes`` on the standardised design ``internal``."""
    from bayesmix.bayes.fit import chain_start

    _, _, st, _ = _prepared(setup)
    return chain_start("ml", internal, internal, st, setup.ml_starts, seed)


def _compiled(setup: _Setup) -> _Compiled:
    """The setup's sampled coordinates and, with numba, nutpie's model of it, compiled once
    per process with the outcome as shared data.

    With the ML start the coordinates (which school coefficients are centred, the
    order of the residuals' Cholesky factor) are chosen at the ML estimates of the
    real data, and each simulation starts at its own (:func:`_started`).
    """
    key = _setup_key(setup)
    if key not in _COMPILED:
        from bayesmix.bayes.model import sampling_model
        from bayesmix.bayes.sampling import compiled_nutpie

        _, internal, _, priors = _prepared(setup)
        start, init_z = (None, None)
        if setup.init == "ml":
            start, init_z = _ml_start(setup, internal, setup.seed)
        model = None
        if setup.backend == "numba":
            # numba's compiled model keeps the data as inputs that with_data replaces,
            # where nutpie's JAX backend compiles them in as constants
            shared = sampling_model(internal, priors, start, init_z, shared_outcome=True)
            model = compiled_nutpie(shared, start is not None, None, "numba")
        _COMPILED.clear()
        _COMPILED[key] = _Compiled(start, model)
    return _COMPILED[key]


def _initial_point(
    setup: _Setup, start: Params, init_z: np.ndarray | None, coordinates: Params
) -> np.ndarray:
    """The flat unconstrained point nutpie starts every chain at: ``start`` in the
    coordinates that ``coordinates`` chose."""
    import pytensor
    from pymc.initial_point import make_initial_point_fn

    from bayesmix.bayes.model import sampling_model

    _, internal, _, priors = _prepared(setup)
    model = sampling_model(
        internal, priors, start, init_z, shared_outcome=True, coordinates=coordinates
    )
    # evaluated once: compiling it for the Python linker is what costs least
    with pytensor.config.change_flags(mode="FAST_COMPILE"):
        point = make_initial_point_fn(model=model, jitter_rvs=set(), return_transformed=True)(0)
    return np.concatenate([np.ravel(point[model.rvs_to_values[rv].name]) for rv in model.free_RVs])


def _started(setup: _Setup, inner_y: np.ndarray, seed: int) -> Any:
    """nutpie's model of the outcome ``inner_y`` (standardised), started where
    ``fit_bayes`` would start it: at this outcome's ML estimates, or the prior-based start.
    JAX compiles it anew; numba's model of the setup takes the outcome as data."""
    from bayesmix.bayes.model import sampling_model
    from bayesmix.bayes.sampling import compiled_nutpie

    compiled = _compiled(setup)
    _, internal, _, priors = _prepared(setup)
    simulated = dataclasses.replace(internal, y=inner_y)
    start, init_z = (None, None)
    if compiled.coordinates is not None:
        start, init_z = _ml_start(setup, simulated, seed)
    if compiled.model is None:
        model = sampling_model(simulated, priors, start, init_z, coordinates=compiled.coordinates)
        return compiled_nutpie(model, start is not None, None, setup.backend)
    with_y = compiled.model.with_data(y_obs=inner_y)
    if start is None:
        return with_y
    flat = _initial_point(setup, start, init_z, compiled.coordinates)
    return dataclasses.replace(with_y, initial_point_func=lambda _seed: flat.copy())


def _flat_draws(a: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """The draws ``keep`` of (chain, draw, ...) draws flattened over chains, as one chain."""
    return a.reshape(a.shape[0] * a.shape[1], *a.shape[2:])[keep][None]


def _thinned(params: Params, keep: np.ndarray) -> Params:
    """:func:`_flat_draws` of every array of ``params``."""
    return Params(
        **{
            f.name: None
            if (a := getattr(params, f.name)) is None
            else _flat_draws(np.asarray(a), keep)
            for f in dataclasses.fields(params)
        }
    )


def _loglik(params: Params, design: Any, u: np.ndarray | None) -> np.ndarray:
    """Log-likelihood of the outcome given each draw and its school residuals (chain, draw)."""
    from bayesmix.bayes.draws import _between_pointwise_draws, _pointwise_draws

    pass_ = _between_pointwise_draws if design.spec.between_classes > 1 else _pointwise_draws
    return pass_(params, design, u).loglik.sum(axis=-1)


def _simulate_and_fit(task: _Task) -> list[dict[str, Any]]:
    """One simulation: NUTS on its outcome, and the ranks of the drawn values."""
    import nutpie

    from bayesmix.bayes.draws import named_draws, structured_draws
    from bayesmix.bayes.posterior import posterior_table

    t0 = time.perf_counter()
    s = task.setup
    design, internal, st, _ = _prepared(s)
    sim_design = dataclasses.replace(design, y=task.y)
    inner_y = (task.y - st.y_centre) / st.y_scale
    # the ML start's warnings (a boundary estimate, a start replicated once) go into the
    # study's table of fits, beside the sampler's diagnostics, instead of one print each
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", BayesmixWarning)
        started = _started(s, inner_y, task.seed)
    ours = [w for w in caught if issubclass(w.category, BayesmixWarning)]
    ml_warnings = sorted({str(w.message) for w in ours})
    for w in caught:
        if not issubclass(w.category, BayesmixWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    idata = nutpie.sample(
        started,
        draws=s.draws,
        tune=s.tune,
        chains=s.chains,
        seed=task.seed,
        progress_bar=False,
    )
    sampled = idata["posterior"].to_dataset()
    draws = st.params_to_user(structured_draws(sampled, internal))
    u = st.residuals_to_user(sampled["u"].values) if s.spec.random_effects else None
    named = named_draws(draws, design)
    truth = named_draws(task.truth, design)
    keep = np.linspace(0, s.chains * s.draws - 1, s.ranks).round().astype(int)
    thinned = _thinned(draws, keep)
    u_thin = None if u is None else _flat_draws(u, keep)
    ll = _loglik(thinned, sim_design, u_thin)[0]
    ll_true = float(_loglik(task.truth, sim_design, task.u)[0, 0])
    ranks = {n: int(np.sum(v.reshape(-1)[keep] < truth[n][0, 0])) for n, v in named.items()}
    ranks["loglik"] = int(np.sum(ll < ll_true))
    table = posterior_table(named)
    diverging = int(np.asarray(idata["sample_stats"]["diverging"]).sum())
    return [
        {
            "replication": task.simulation,
            "model": s.spec.name,
            "seed": task.seed,
            "ranks": ranks,
            "truth": {n: float(v[0, 0]) for n, v in truth.items()},
            "post_mean": {n: float(v) for n, v in table["mean"].items()},
            "post_var": {n: float(v) ** 2 for n, v in table["sd"].items()},
            "rhat_max": float(table["r_hat"].max()),
            "ess_bulk_min": float(table["ess_bulk"].min()),
            "divergences": diverging,
            "ml_warnings": ml_warnings,
            "seconds": time.perf_counter() - t0,
        }
    ]


def _residual_sd_name(model: Any, factor: float) -> str | None:
    """The sampled residual SD that the planted error scales, or None without one."""
    if factor == 1.0:
        return None
    if "sigma" not in model.named_vars:
        raise EstimationError(
            f"residual_sd_factor={factor!r} scales the residual SD, which this model writes "
            "as a log-linear function of covariates: leave residual_sd_factor at 1.0."
        )
    return "sigma"


def _draw_simulations(
    setup: _Setup, simulations: int, seed: int, factor: float
) -> tuple[list[np.ndarray], Params, np.ndarray | None]:
    """Outcomes, drawn parameters (leading 1 x simulations) and school residuals."""
    import pymc as pm

    from bayesmix.bayes.draws import structured_draws
    from bayesmix.bayes.public import build_model

    _, internal, st, _ = _prepared(setup)
    model = build_model(setup.spec, setup.frame, setup.priors)
    prior_seed, outcome_seed = np.random.SeedSequence(seed).spawn(2)
    # one call of each forward function per simulation: Python's linker compiles it in a
    # second, where numba's compile would take most of a small study's time
    forward = {"mode": "FAST_COMPILE"}
    prior = pm.sample_prior_predictive(
        draws=simulations,
        model=model,
        random_seed=int(prior_seed.generate_state(1)[0]),
        compile_kwargs=forward,
    )["prior"]
    truth_space = prior
    scaled = _residual_sd_name(model, factor)
    if scaled is not None:
        # the planted error: the outcome drawn with a wider residual SD than the truth says
        truth_space = prior.copy()
        truth_space[scaled] = prior[scaled] * factor
    y = pm.sample_posterior_predictive(
        truth_space,
        model=model,
        var_names=["y"],
        # every parameter is the simulation's truth, drawn above: none is redrawn, though
        # shared data (the whitening, the shear) lie upstream of some
        freeze_vars=[rv.name for rv in model.free_RVs if rv.name in truth_space],
        random_seed=int(outcome_seed.generate_state(1)[0]),
        progressbar=False,
        compile_kwargs=forward,
    )["posterior_predictive"]["y"].values[0]
    dataset = prior.to_dataset()
    truth = st.params_to_user(structured_draws(dataset, internal))
    u = st.residuals_to_user(dataset["u"].values) if setup.spec.random_effects else None
    return list(y), truth, u


def _one(params: Params, s: int) -> Params:
    """Simulation ``s`` of draws with leading (1, simulations) dims, as one draw."""
    return Params(
        **{
            f.name: np.asarray(getattr(params, f.name))[:, s : s + 1]
            for f in dataclasses.fields(params)
        }
    )


def _header(setup: _Setup, simulations: int, seed: int, factor: float) -> dict[str, Any]:
    """What must not change between a calibration study and its resumption."""
    return {
        "sbc": _setup_key(setup),
        "fit": [repr(setup.spec)],
        "simulations": simulations,
        "random_seed": seed,
        "residual_sd_factor": factor,
        "settings": {
            k: getattr(setup, k)
            for k in ("draws", "tune", "chains", "ranks", "init", "ml_starts", "backend")
        },
    }


def _check_options(counts: dict[str, Any], residual_sd_factor: Any, init: Any) -> None:
    """Refuse option values no study can use, naming the option."""
    for label, value in counts.items():
        check_count(value, label)
    ranks, posterior = counts["ranks"], counts["chains"] * counts["draws"]
    if ranks > posterior:
        raise EstimationError(
            f"ranks={ranks} needs at least as many posterior draws, got chains x draws = "
            f"{posterior}: raise draws or lower ranks."
        )
    if not (isinstance(residual_sd_factor, int | float) and residual_sd_factor > 0):
        raise EstimationError(
            f"residual_sd_factor must be a positive number, got {residual_sd_factor!r}."
        )
    if init not in ("ml", "prior"):
        raise EstimationError(f"init must be 'ml' or 'prior', got {init!r}.")


def _refuse_weights_and_constraints(spec: Spec) -> None:
    if isinstance(spec, Spec) and spec.weights is not None:
        raise EstimationError(
            f"model {spec.name!r} has sampling weights; SBC checks the posterior of the "
            "generative model, which weights do not change: run it on the model without "
            "them (dataclasses.replace(spec, weights=None))."
        )
    if isinstance(spec, Spec) and describe(spec.constraints):
        raise EstimationError(
            f"model {spec.name!r} has constraints ({describe(spec.constraints)}), whose "
            "values are in the units of one data set, and SBC draws a data set per "
            "simulation: run it on the model without them "
            "(dataclasses.replace(spec, constraints=None))."
        )


def sbc(
    spec: Spec,
    data: DataLike,
    *,
    simulations: int = 100,
    draws: int = 500,
    tune: int = 500,
    chains: int = 2,
    ranks: int = 99,
    priors: Mapping[str, Prior] | None = None,
    init: Literal["ml", "prior"] = "ml",
    ml_starts: int = 20,
    backend: Literal["numba", "jax"] | None = None,
    random_seed: int = 0,
    residual_sd_factor: float = 1.0,
    workers: int | None = 1,
    client: Any = None,
    out: str | Path | None = None,
    progress: bool = True,
) -> SBCResult:
    """Simulation-based calibration of NUTS on a model and a data set's design.

    Parameters
    ----------
    spec : Spec
        The model.
    data : DataFrame, str or Path
        The data whose design (covariates, schools) every simulation keeps,
        and from which the default priors are computed once.
    simulations : int
        Data sets drawn and fitted; every one counts, none is dropped.
    draws, tune, chains : int
        NUTS draws kept per chain, warm-up draws and chains of each fit.
    ranks : int
        L: the posterior draws are thinned evenly to L, so that each rank
        lies in 0..L (L + 1 values).
    priors : mapping of str to Prior, optional
        Overrides of the default priors, in the user's units, as in
        :func:`bayesmix.fit_bayes`.
    init : {"ml", "prior"}
        Where each fit's chains start, as in :func:`bayesmix.fit_bayes`:
        at the ML estimates of its own simulated outcome (``ml_starts``
        random starts), or at jittered points around the prior-based start.
        The ML start depends on the outcome alone, so the ranks stay
        uniform under a correct sampler. With ``"ml"`` the sampled
        coordinates (which school coefficients are centred, the order of
        the residuals' Cholesky factor) are chosen once, at the ML estimates
        of ``data``, so that every simulation samples one compiled density.
    ml_starts : int
        Random starts of each ML fit with ``init="ml"``.
    backend : {"numba", "jax"}, optional
        nutpie's compiler, as in :func:`bayesmix.fit_bayes` (default
        ``$BAYESMIX_NUTS_BACKEND``, else numba). numba compiles the model
        once per process and each simulation replaces its outcome; JAX
        compiles the data in, so it compiles every simulation anew, in
        seconds each, and samples more slowly.
    random_seed : int
        Seed of the study: the parameters, the outcomes and each fit's
        sampler seed derive from it.
    residual_sd_factor : float
        A planted error for a negative control: the outcomes are drawn with
        the residual SD times this factor, while the ranks are those of the
        drawn parameters. With 1.2 the calibration must fail.
    workers : int, optional
        Local processes (None: the machine's cores); 1 runs here.
    client : dask.distributed.Client or str, optional
        Run on a Dask cluster instead.
    out : path, optional
        JSON-lines file; each simulation's record is appended as it
        finishes, and a study given the same file and settings resumes.
    progress : bool
        Show progress.

    Returns
    -------
    SBCResult
        Ranks, uniformity tests, contraction and each fit's diagnostics.
    """
    from bayesmix.bayes.sampling import sampler_backend
    from bayesmix.data.reading import resolve_data

    _check_options(
        {
            "simulations": simulations,
            "draws": draws,
            "tune": tune,
            "chains": chains,
            "ranks": ranks,
            "ml_starts": ml_starts,
        },
        residual_sd_factor,
        init,
    )
    backend = sampler_backend("nutpie", backend, "diag")
    random_seed = check_seed(random_seed)
    _refuse_weights_and_constraints(spec)
    setup = _Setup(
        spec=spec,
        frame=resolve_data(data),
        priors=None if priors is None else dict(priors),
        draws=draws,
        tune=tune,
        chains=chains,
        ranks=ranks,
        init=init,
        ml_starts=ml_starts,
        seed=random_seed,
        backend=backend,
    )
    factor = float(residual_sd_factor)
    path = (
        check_output(out, label="out", overwrite=True, example="sbc.jsonl")
        if out is not None
        else None
    )
    header = _header(setup, simulations, random_seed, factor)
    records = read_records(path, header) if path is not None else []
    done = {r["replication"] for r in records}
    data_seed, fit_seed = np.random.SeedSequence(random_seed).spawn(2)
    seeds = [int(c.generate_state(1)[0]) % (2**31 - 1) for c in fit_seed.spawn(simulations)]
    todo: list[_Task] = []
    if len(done) < simulations:
        y, truth, u = _draw_simulations(
            setup, simulations, int(data_seed.generate_state(1)[0]), factor
        )
        todo = [
            _Task(setup, s, seeds[s], y[s], _one(truth, s), None if u is None else u[:, s : s + 1])
            for s in range(simulations)
            if s not in done
        ]
    bar = Progress(simulations, "simulations", enabled=progress)
    bar.done = len(done)

    def keep(new: list[dict[str, Any]]) -> None:
        records.extend(new)
        append_records(path, new)
        bar.update()

    run_tasks(
        _simulate_and_fit,
        todo,
        keep,
        workers=workers or os.cpu_count() or 1,
        client=client,
        path=path,
    )
    bar.close()
    records.sort(key=lambda r: r["replication"])
    return SBCResult.from_records(
        [r for r in records if r["replication"] < simulations],
        ranks=ranks,
        residual_sd_factor=factor,
        model=spec.name,
    )
