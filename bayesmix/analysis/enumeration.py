"""Class-enumeration tests as columns of the comparison table: LMR and bootstrap LRT.

Each fit of a table is tested against the fit of the same model with one
class fewer, when the table holds one: the row of K classes carries the
test of K - 1 against K, as Mplus prints TECH11 and TECH14 in the K-class
run.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import pandas as pd

from bayesmix.analysis.blrt import blrt as run_blrt
from bayesmix.analysis.blrt_result import BLRTResult
from bayesmix.analysis.lmr import LMRResult
from bayesmix.analysis.lmr import lmr as run_lmr
from bayesmix.errors import EstimationError
from bayesmix.results.interface import FitResult
from bayesmix.results.ml import MLResult

TEST_COLUMNS = ("lmr_p", "lmr_adj_p", "blrt_p")
"""The columns the tests add: VLMR, adjusted LMR and bootstrap LRT p-values."""


@dataclass(frozen=True)
class ClassTests:
    """The tests of one fit against the same model with one class fewer.

    Attributes
    ----------
    lmr : LMRResult or None
    blrt : BLRTResult or None
    """

    lmr: LMRResult | None = None
    blrt: BLRTResult | None = None


def one_class_fewer(results: Sequence[FitResult], k: int) -> int | None:
    """The position of the ML fit of ``results[k]``'s model with one class fewer, if any."""
    fit = results[k]
    if fit.has_draws or fit.spec.classes < 2:
        return None
    reduced = fit.spec.with_classes(fit.spec.classes - 1)
    for j, other in enumerate(results):
        renamed = dataclasses.replace(
            reduced, name=other.spec.name, description=other.spec.description
        )
        if not other.has_draws and other.spec == renamed and other.n_obs == fit.n_obs:
            return j
    return None


def class_tests(
    smaller: FitResult,
    larger: FitResult,
    *,
    lmr: bool,
    blrt: int,
    blrt_options: Mapping[str, Any] | None,
) -> ClassTests:
    """The asked-for tests of ``smaller`` (K - 1 classes) against ``larger`` (K)."""
    # one_class_fewer pairs ML fits only, which is what the tests take
    small, large = cast(MLResult, smaller), cast(MLResult, larger)
    return ClassTests(
        lmr=run_lmr(small, large) if lmr else None,
        blrt=(
            run_blrt(small, large, bootstraps=blrt, **dict(blrt_options or {})) if blrt else None
        ),
    )


def tests_against_fewer(
    results: Sequence[FitResult],
    *,
    lmr: bool,
    blrt: int,
    blrt_options: Mapping[str, Any] | None,
) -> dict[int, ClassTests]:
    """The tests of every fit that has a fit with one class fewer beside it in ``results``."""
    if isinstance(blrt, bool) or not isinstance(blrt, int) or blrt < 0:
        raise EstimationError(
            f"blrt is the number of bootstrap data sets (0 for no bootstrap LRT), got {blrt!r}."
        )
    if blrt_options is not None and "bootstraps" in blrt_options:
        raise EstimationError("give the number of bootstraps as blrt=B, not in blrt_options.")
    tests = {}
    for k in range(len(results)):
        j = one_class_fewer(results, k)
        if j is not None and (lmr or blrt):
            tests[k] = class_tests(
                results[j], results[k], lmr=lmr, blrt=blrt, blrt_options=blrt_options
            )
    return tests


def add_test_columns(
    table: pd.DataFrame, tests: Mapping[int, ClassTests], *, lmr: bool, blrt: bool
) -> pd.DataFrame:
    """``table`` with the p-value columns of the tests asked for (NaN where a row has none)."""
    n = len(table)
    if lmr:
        table["lmr_p"] = _column(n, tests, lambda t: t.lmr.p_value if t.lmr else np.nan)
        table["lmr_adj_p"] = _column(
            n, tests, lambda t: t.lmr.adjusted_p_value if t.lmr else np.nan
        )
    if blrt:
        table["blrt_p"] = _column(n, tests, lambda t: t.blrt.p_value if t.blrt else np.nan)
    table.attrs["class_tests"] = dict(tests)
    return table


def _column(n: int, tests: Mapping[int, ClassTests], value: Any) -> np.ndarray:
    out = np.full(n, np.nan)
    for k, t in tests.items():
        out[k] = value(t)
    return out
