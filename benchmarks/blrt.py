"""Power, size and a two-level case of the bootstrap likelihood-ratio test (``bm.blrt``).

Run by ``make blrt`` (outside ``make bench`` and CI). Three cases, one JSON line each:

* ``blrt_power``: data sets of 500 students from the two-class regression mixture of
  Fig 1 (``FIG1_PARAMS``, x standard normal), 99 bootstraps each; target: one class
  rejected against two at p <= 0.01 in at least 19 of 20 (the same share of fewer).
* ``blrt_size``: data sets of 500 students from a one-class regression of y on x, 19
  bootstraps each, the exact 5% test; target: rejected in at most 10 of 100 (the same
  share of fewer).
* ``blrt_two_level``: one data set of the Fig 3 design (200 schools x 15 students), 99
  bootstraps; target: one class rejected against two (p <= 0.05).

Every test's bootstraps are appended to ``blrt-output/<case>_<data set>.jsonl`` as they
finish, so an interrupted run resumes where it stopped. ``wall_s`` is the time of this
run; ``bootstrap_s`` sums the bootstraps' own seconds, which a resumed run does not
repeat. The bootstraps run on two local Dask worker processes kept for the whole run (a
process pool per test would import the package and compile the likelihood again for every
data set), or on two local processes when the distributed package is missing.

Usage: ``python benchmarks/blrt.py [--power N] [--size N] [--no-two-level]`` (default 20
and 100 data sets and the two-level case).
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np
from _common import emit

import bayesmix as bm
from bayesmix.paper.section2 import FIG1_PARAMS, FIG3_PARAMS

OUT = Path("blrt-output")
MODELS = Path(__file__).resolve().parents[1] / "models"
ONE_CLASS = {"1": 0.0, "x": 0.5, "sigma2": 1.0}
"""The null population of the size case: one regression of y on x."""
STARTS = 10
"""Random starts of the observed two-class fit and of each bootstrap's."""


def _test(
    spec: bm.Spec, data: Any, name: str, bootstraps: int, seed: int, runner: dict[str, Any]
) -> bm.BLRTResult:
    """The observed one- and two-class fits and the bootstrap test of one against two."""
    with warnings.catch_warnings():
        # two classes fitted to one-class data replicate their best solution rarely: the
        # test is about that data, and the warning would print once per data set
        warnings.simplefilter("ignore", bm.BayesmixWarning)
        smaller = bm.fit_ml(spec.with_classes(1), data, random_seed=seed)
        larger = bm.fit_ml(spec.with_classes(2), data, starts=STARTS, random_seed=seed)
    return bm.blrt(
        smaller,
        larger,
        bootstraps=bootstraps,
        starts=STARTS,
        random_seed=seed,
        out=OUT / f"{name}.jsonl",
        progress=False,
        **runner,
    )


def _case(case: str, tests: list[bm.BLRTResult], alpha: float, wall: float, **fields: Any) -> None:
    p = np.array([t.p_value for t in tests])
    emit(
        case,
        **fields,
        data_sets=len(tests),
        bootstraps=tests[0].bootstraps if tests else 0,
        alpha=alpha,
        rejected=int(np.sum(p <= alpha)),
        p_values=[round(float(v), 4) for v in p],
        failed_bootstraps=sum(t.failed for t in tests),
        negative_lr=sum(t.negative for t in tests),
        not_converged=sum(t.not_converged for t in tests),
        bootstrap_s=round(sum(r["seconds"] for t in tests for r in t.records), 1),
        wall_s=round(wall, 1),
    )


def _fig1_cases(power: int, size: int, runner: dict[str, Any]) -> None:
    fig1 = bm.load_spec(MODELS / "fig1.toml")
    t0 = time.perf_counter()
    tests = []
    for d in range(power):
        data = bm.simulate(fig1, FIG1_PARAMS, n=500, random_seed=1000 + d)
        tests.append(_test(fig1, data, f"power_{d}", 99, d, runner))
        print(f"power {d}: {tests[-1].summary()}", file=sys.stderr)
    if power:
        _case("blrt_power", tests, 0.01, time.perf_counter() - t0, target="rejected >= 95%")
    t0 = time.perf_counter()
    tests = []
    for d in range(size):
        data = bm.simulate(fig1.with_classes(1), ONE_CLASS, n=500, random_seed=2000 + d)
        tests.append(_test(fig1, data, f"size_{d}", 19, d, runner))
        print(f"size {d}: {tests[-1].summary()}", file=sys.stderr)
    if size:
        _case("blrt_size", tests, 0.05, time.perf_counter() - t0, target="rejected <= 10%")


def _two_level_case(runner: dict[str, Any]) -> None:
    fig3 = bm.load_spec(MODELS / "fig3.toml")
    t0 = time.perf_counter()
    data = bm.simulate(fig3, FIG3_PARAMS, clusters=200, cluster_size=15, random_seed=3000)
    test = _test(fig3, data, "two_level_0", 99, 0, runner)
    print(f"two-level: {test.summary()}", file=sys.stderr)
    _case("blrt_two_level", [test], 0.05, time.perf_counter() - t0, target="rejected")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--power", type=int, default=20, help="data sets of the power case")
    parser.add_argument("--size", type=int, default=100, help="data sets of the size case")
    parser.add_argument("--no-two-level", action="store_true", help="skip the Fig 3 case")
    args = parser.parse_args()
    OUT.mkdir(exist_ok=True)
    with ExitStack() as stack:
        try:
            from distributed import Client, LocalCluster

            cluster = stack.enter_context(
                LocalCluster(
                    n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
                )
            )
            runner: dict[str, Any] = {"client": stack.enter_context(Client(cluster))}
        except ImportError:
            runner = {"workers": 2}
        _fig1_cases(args.power, args.size, runner)
        if not args.no_two_level:
            _two_level_case(runner)


if __name__ == "__main__":
    main()
