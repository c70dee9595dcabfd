"""The tables of the paper's HSB run: Table 1 beside its NUTS fit, and Markdown tables."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from bayesmix.results.bayes import BayesResult
from bayesmix.results.ml import MLResult


def estimates_table(ml: MLResult, bayes: BayesResult | None) -> pd.DataFrame:
    """Table 1: model 1's ML estimates, beside its posterior summaries when fitted by NUTS.

    Parameters
    ----------
    ml : MLResult
        Model 1 by ML.
    bayes : BayesResult, optional
        Model 1 by NUTS.

    Returns
    -------
    DataFrame
        One row per parameter.
    """
    table = ml.params[["estimate", "se", "z", "p"]].copy()
    if bayes is not None:
        table["posterior_mean"] = bayes.table["mean"]
        table["posterior_sd"] = bayes.table["sd"]
        table["r_hat"] = bayes.table["r_hat"]
    return table


def markdown_table(table: pd.DataFrame, digits: int) -> str:
    """A pipe table; floats with ``digits`` decimals, NaN blank.

    Parameters
    ----------
    table : DataFrame
        The table; its index is not shown.
    digits : int
        Decimals of floats.

    Returns
    -------
    str
        The Markdown table.
    """

    def cell(v: Any) -> str:
        if isinstance(v, float | np.floating):
            return "" if not np.isfinite(v) else f"{v:.{digits}f}"
        return str(v)

    head = "| " + " | ".join(str(c) for c in table.columns) + " |"
    rule = "|" + "|".join("---" for _ in table.columns) + "|"
    rows = ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(False)]
    return "\n".join([head, rule, *rows])
