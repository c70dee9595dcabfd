"""Numbers for people: significant digits that do not depend on the data's units.

A coefficient of a covariate in dollars may be 0.00004; printed with four
fixed decimals it reads 0.0000. Parameter tables therefore print estimates,
standard errors and posterior summaries with a fixed number of significant
digits, in fixed notation where that stays short and in scientific notation
beyond.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import pandas as pd

SIGNIFICANT = 4
"""Significant digits of estimates, standard errors and posterior summaries."""

_COLUMN_FORMATS: dict[str, str] = {
    "z": "fixed2",
    "p": "fixed4",
    "r_hat": "fixed3",
    "ess_bulk": "integer",
    "ess_tail": "integer",
    "se_sd": "fixed3",
    "coverage": "fixed3",
    "significant": "fixed3",
    "significant_negative": "fixed3",
    "significant_positive": "fixed3",
}
"""Columns printed with fixed decimals: statistics on a fixed scale, shares and counts."""


def significant(value: float, digits: int = SIGNIFICANT) -> str:
    """``value`` with ``digits`` significant digits.

    Fixed notation for magnitudes in [1e-4, 1e6), with as many decimals as
    the digits need (``0.001113``, ``2.941``, ``-20905``), scientific beyond
    (``4.100e-05``, ``1.235e+08``); ``nan``, ``inf`` and ``0`` as such.
    """
    if not math.isfinite(value):
        return str(value)
    if value == 0:
        return "0"
    magnitude = math.floor(math.log10(abs(value)))
    if -4 <= magnitude < 6:
        decimals = max(0, digits - 1 - magnitude)
        return f"{value:.{decimals}f}"
    return f"{value:.{digits - 1}e}"


def _formatter(kind: str) -> Callable[[float], str]:
    if kind == "fixed2":
        return lambda v: f"{v:.2f}"
    if kind == "fixed3":
        return lambda v: f"{v:.3f}"
    if kind == "fixed4":
        return lambda v: f"{v:.4f}"
    if kind == "integer":
        return lambda v: f"{v:.0f}" if math.isfinite(v) else str(v)
    return significant


def _base(column: str) -> str:
    """A column's statistic without an estimator suffix (``coverage_ml`` -> ``coverage``)."""
    return column.removesuffix("_ml").removesuffix("_bayes")


def format_table(table: pd.DataFrame, formats: Mapping[str, str] | None = None) -> str:
    """A parameter table as text, each column in its own format.

    Columns named in ``formats`` (or the defaults: ``z`` two decimals, ``p``
    four, ``r_hat`` three, ESS as integers) keep fixed decimals; every
    other numeric column gets :data:`SIGNIFICANT` significant digits.
    """
    kinds = {**_COLUMN_FORMATS, **(formats or {})}
    formatters = {
        col: _formatter(kinds.get(_base(str(col)), "significant"))
        for col in table.columns
        if pd.api.types.is_float_dtype(table[col])
    }
    return table.to_string(formatters=formatters)
