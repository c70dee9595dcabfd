"""The parametric bootstrap likelihood-ratio test of K - 1 against K classes (Mplus TECH14).

McLachlan (1987) and Nylund, Asparouhov & Muthén (2007): the observed
statistic ``LR = 2 (log L_K - log L_{K-1})`` is referred to its distribution
under the smaller model, drawn by simulating B data sets from the smaller
fit (its estimates, the observed covariates and schools) and fitting both
models to each. The p-value is ``(1 + #{LR_b >= LR}) / (B + 1)``.

Each bootstrap fits the smaller model from its observed estimates (and one
random start), and the larger model from its random starts, the observed
larger fit's estimates, and the bootstrap's smaller solution with its largest
class split in two (:func:`bayesmix.ml.starts.split_class_start`); no fit
computes standard errors (``se="none"``). Bootstraps run in this process, on
local processes or on Dask (:func:`bayesmix.analysis.tasks.run_tasks`), are
appended to a JSON-lines file as they finish, and a test given the same file
and settings resumes from it.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bayesmix.analysis.blrt_result import BLRTResult
from bayesmix.analysis.nested import check_class_pair
from bayesmix.analysis.study import append_records, read_records
from bayesmix.analysis.tasks import run_tasks
from bayesmix.data.design import build_design
from bayesmix.data.simulate import simulate_outcome
from bayesmix.errors import ConvergenceWarning, type_name
from bayesmix.ml.fit import fit_ml
from bayesmix.ml.starts import split_class_start
from bayesmix.model.spec import Spec
from bayesmix.outputs import check_output
from bayesmix.progress import Progress
from bayesmix.results.ml import MLResult
from bayesmix.validate import check_count, check_seed


@dataclass(frozen=True)
class _Setup:
    """What every bootstrap of a test shares."""

    smaller: Spec
    larger: Spec
    frame: pd.DataFrame = field(repr=False)
    smaller_values: dict[str, float]
    larger_values: dict[str, float]
    starts: int
    fit_kwargs: dict[str, Any]


@dataclass(frozen=True)
class _Task:
    setup: _Setup
    replication: int
    seed: int


def _fit_pair(task: _Task) -> dict[str, Any]:
    """Simulate one data set from the smaller fit and fit both models to it."""
    s = task.setup
    sim_seed, fit_seed, split_seed = (
        int(c.generate_state(1)[0]) for c in np.random.SeedSequence(task.seed).spawn(3)
    )
    design = build_design(s.smaller, s.frame)
    params = design.layout.from_named(s.smaller_values)
    data = design.frame.copy()
    data[s.smaller.outcome] = simulate_outcome(design, params, np.random.default_rng(sim_seed))
    small = fit_ml(
        s.smaller,
        data,
        starts=1,
        random_seed=fit_seed,
        init=s.smaller_values,
        se="none",
        **s.fit_kwargs,
    )
    extra = []
    if s.larger.classes == s.smaller.classes + 1:
        larger_design = build_design(s.larger, data)
        extra = [split_class_start(small, larger_design, np.random.default_rng(split_seed))]
    large = fit_ml(
        s.larger,
        data,
        starts=s.starts,
        random_seed=fit_seed,
        init=s.larger_values,
        extra_starts=extra,
        se="none",
        **s.fit_kwargs,
    )
    return {
        "loglik_smaller": float(small.loglik),
        "loglik_larger": float(large.loglik),
        "lr": 2.0 * float(large.loglik - small.loglik),
        "converged_smaller": bool(small.converged),
        "converged_larger": bool(large.converged),
        "replicated_larger": int(large.starts.replicated),
    }


def _bootstrap(task: _Task) -> list[dict[str, Any]]:
    """One bootstrap's record; a failed fit is recorded, not raised."""
    t0 = time.perf_counter()
    record: dict[str, Any] = {"replication": task.replication, "model": "blrt", "seed": task.seed}
    try:
        # the bootstrap fits' warnings (a start replicated once, an empty class under H0)
        # are counted in the test's table instead of printed once each
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            record.update(_fit_pair(task))
        record.update(ok=True, warnings=sorted({w.category.__name__ for w in caught}))
    except Exception as err:
        record.update(ok=False, error=f"{type_name(err)}: {err}")
        record["traceback"] = traceback.format_exc(limit=3)
    record["seconds"] = time.perf_counter() - t0
    return [record]


def _frame_digest(frame: pd.DataFrame) -> str:
    return hashlib.sha256(
        pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes()
    ).hexdigest()


def _header(
    setup: _Setup, smaller: MLResult, larger: MLResult, statistic: float, seed: int
) -> dict[str, Any]:
    """What must not change between a test and its resumption (not the number of
    bootstraps: a rerun with more adds to those done)."""
    return {
        "blrt": {
            "smaller": smaller.spec.name,
            "larger": larger.spec.name,
            "smaller_classes": smaller.spec.classes,
            "larger_classes": larger.spec.classes,
            "statistic": statistic,
        },
        "fit": [f"{setup.smaller!r} against {setup.larger!r}"],
        "data": _frame_digest(setup.frame),
        "smaller_estimates": setup.smaller_values,
        "larger_estimates": setup.larger_values,
        "random_seed": seed,
        "settings": json.loads(
            json.dumps({"starts": setup.starts, **setup.fit_kwargs}, default=repr, sort_keys=True)
        ),
    }


def blrt(
    smaller: MLResult,
    larger: MLResult,
    *,
    bootstraps: int = 99,
    starts: int = 10,
    random_seed: int = 0,
    workers: int | None = 1,
    client: Any = None,
    out: str | Path | None = None,
    progress: bool = True,
    maxiter: int | None = None,
    points: int | None = None,
    backend: str | None = None,
) -> BLRTResult:
    """The parametric bootstrap likelihood-ratio test of fewer against more classes.

    Parameters
    ----------
    smaller, larger : MLResult
        ML fits of one model with fewer and with more classes to the same
        data (``larger.spec.with_classes(K)`` for the smaller, as
        :func:`bayesmix.select_classes` makes them).
    bootstraps : int
        B, the data sets drawn from the smaller fit. With B + 1 a multiple
        of 1/alpha (19 for 5%, 99 for 1%) the test rejecting at ``p <= alpha``
        has size alpha.
    starts : int
        Random starts of the larger model's fit to each bootstrap data set,
        besides its two warm starts (Mplus ``LRTSTARTS``). The smaller model
        starts from its observed estimates and one random start.
    random_seed : int
        Seed of the test: bootstrap b uses the b-th child of
        ``numpy.random.SeedSequence(random_seed)`` for its data and fits, so
        the results do not depend on ``workers``, ``client`` or the order in
        which bootstraps finish.
    workers : int, optional
        Local processes (None: the machine's cores); 1 runs here.
    client : dask.distributed.Client or str, optional
        Run on a Dask cluster (a Client, or a scheduler address) instead;
        needs the ``distributed`` package.
    out : path, optional
        JSON-lines file; each bootstrap is appended as it finishes (an
        interruption, Ctrl-C included, keeps those done), and a test given
        the same file, fits and settings runs only the bootstraps not in it:
        a larger ``bootstraps`` adds to them. A file of another test is
        refused.
    progress : bool
        Show progress.
    maxiter, points, backend
        Passed to :func:`bayesmix.fit_ml` for every bootstrap fit.

    Returns
    -------
    BLRTResult

    Raises
    ------
    EstimationError
        For fits that are not one model with fewer and more classes on the
        same data (:func:`bayesmix.analysis.nested.check_class_pair`), an
        option out of range, or an ``out`` file of another test.

    Warns
    -----
    ConvergenceWarning
        When the observed larger fit's log-likelihood is below the smaller
        one's: its starts missed the smaller solution, and the test says
        nothing until it is refitted with more starts.
    """
    t0 = time.perf_counter()
    check_class_pair(smaller, larger, "the bootstrap LRT", adjacent=False)
    bootstraps = check_count(bootstraps, "bootstraps")
    starts = check_count(starts, "starts")
    random_seed = check_seed(random_seed)
    statistic = 2.0 * float(larger.loglik - smaller.loglik)
    if statistic < 0:
        warnings.warn(
            f"the {larger.spec.classes}-class fit's log-likelihood ({larger.loglik:.3f}) is "
            f"below the {smaller.spec.classes}-class fit's ({smaller.loglik:.3f}); refit the "
            "larger model with more starts before testing.",
            ConvergenceWarning,
            stacklevel=2,
        )
    columns = list(dict.fromkeys((*larger.spec.columns, *smaller.spec.columns)))
    setup = _Setup(
        smaller=smaller.spec,
        larger=larger.spec,
        frame=larger.design.frame[columns].reset_index(drop=True),
        smaller_values=_named(smaller),
        larger_values=_named(larger),
        starts=starts,
        fit_kwargs={
            k: v
            for k, v in (("maxiter", maxiter), ("points", points), ("backend", backend))
            if v is not None
        },
    )
    path = (
        check_output(out, label="out", overwrite=True, example="blrt.jsonl")
        if out is not None
        else None
    )
    records = (
        read_records(path, _header(setup, smaller, larger, statistic, random_seed))
        if path is not None
        else []
    )
    done = {r["replication"] for r in records}
    seeds = [
        int(c.generate_state(1)[0]) for c in np.random.SeedSequence(random_seed).spawn(bootstraps)
    ]
    todo = [_Task(setup, b, seeds[b]) for b in range(bootstraps) if b not in done]
    bar = Progress(bootstraps, "bootstraps", enabled=progress)
    bar.done = len(done & set(range(bootstraps)))

    def keep(new: list[dict[str, Any]]) -> None:
        records.extend(new)
        append_records(path, new)
        bar.update(f"LR {new[0].get('lr', float('nan')):.2f}")

    run_tasks(
        _bootstrap, todo, keep, workers=workers or os.cpu_count() or 1, client=client, path=path
    )
    bar.close()
    kept = sorted(
        (r for r in records if r["replication"] < bootstraps), key=lambda r: r["replication"]
    )
    return BLRTResult(
        smaller=smaller.spec.name,
        larger=larger.spec.name,
        smaller_classes=smaller.spec.classes,
        larger_classes=larger.spec.classes,
        statistic=statistic,
        bootstraps=bootstraps,
        records=kept,
        random_seed=random_seed,
        elapsed_s=time.perf_counter() - t0,
    )


def _named(fit: MLResult) -> dict[str, float]:
    return {n: float(v) for n, v in zip(fit.names, fit.estimates, strict=True)}
