"""Data in: resolve a data argument, validate it against a spec, build design matrices."""

from __future__ import annotations

import difflib
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from bayesmix.datasets import BUNDLED
from bayesmix.errors import DataError, MissingDataWarning
from bayesmix.formula import INTERCEPT
from bayesmix.spec import Spec

DataLike = pd.DataFrame | str | Path
MissingPolicy = Literal["error", "listwise"]


@dataclass(frozen=True, eq=False)
class Design:
    """Validated data for one spec: outcome, design matrices and bookkeeping.

    Attributes
    ----------
    spec : Spec
        The model the matrices were built for.
    y : ndarray, shape (n,)
        Outcome.
    X : ndarray, shape (n, p)
        Outcome design matrix, columns in ``spec.terms`` order.
    Z : ndarray, shape (n, q)
        Membership design matrix, columns in ``spec.membership`` order.
    frame : pandas.DataFrame
        The rows used, after any listwise deletion.
    n_dropped : int
        Rows removed for missing values.
    """

    spec: Spec
    y: np.ndarray
    X: np.ndarray
    Z: np.ndarray
    frame: pd.DataFrame = field(repr=False)
    n_dropped: int = 0

    @property
    def n_obs(self) -> int:
        """Number of observations used."""
        return int(self.y.shape[0])


def resolve_data(data: DataLike) -> pd.DataFrame:
    """Turn a DataFrame, a CSV path or a bundled data set name into a DataFrame.

    Parameters
    ----------
    data : DataFrame, str or Path
        A DataFrame is returned as is; a string naming a bundled data set
        (``"hsb"``) loads it; any other string or path is read as CSV.

    Returns
    -------
    pandas.DataFrame
    """
    if isinstance(data, pd.DataFrame):
        return data
    if isinstance(data, (str, Path)):
        key = str(data)
        if key.lower() in BUNDLED:
            return BUNDLED[key.lower()]()
        path = Path(key)
        if not path.is_file():
            raise DataError(
                f"data {key!r} is neither a CSV file nor a bundled data set; bundled data "
                f"sets are {sorted(BUNDLED)}."
            )
        try:
            return pd.read_csv(path)
        except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as err:
            raise DataError(f"cannot read {key!r} as CSV: {err}") from None
    raise DataError(
        f"data must be a pandas DataFrame, a CSV path or one of {sorted(BUNDLED)}, "
        f"got {type(data).__name__}."
    )


def _check_columns(frame: pd.DataFrame, spec: Spec) -> None:
    available = [str(c) for c in frame.columns]
    for col in spec.columns:
        if col not in frame.columns:
            close = difflib.get_close_matches(col, available, n=3)
            hint = f" Did you mean {close}?" if close else ""
            raise DataError(
                f"column {col!r} used by model {spec.name!r} is not in the data; the "
                f"columns are {available}.{hint}"
            )
    for col in spec.columns:
        series = frame[col]
        if pd.api.types.is_bool_dtype(series):
            continue
        if not pd.api.types.is_numeric_dtype(series):
            bad = series[pd.to_numeric(series, errors="coerce").isna() & series.notna()]
            if len(bad) == 0:
                raise DataError(
                    f"column {col!r} holds numbers stored as text (dtype {series.dtype}); "
                    f"convert it with pandas.to_numeric(frame[{col!r}])."
                )
            raise DataError(
                f"column {col!r} is not numeric (dtype {series.dtype}, e.g. value "
                f"{bad.iloc[0]!r} in row {bad.index[0]}); recode it as numbers, e.g. 0/1 "
                "dummies for categories."
            )


def _handle_missing(
    frame: pd.DataFrame, cols: list[str], missing: MissingPolicy
) -> tuple[pd.DataFrame, int]:
    if missing not in ("error", "listwise"):
        raise DataError(f"missing must be 'error' or 'listwise', got {missing!r}.")
    na = frame[cols].isna()
    rows = na.any(axis=1)
    n_bad = int(rows.sum())
    if n_bad == 0:
        return frame, 0
    per_col = {c: int(n) for c, n in na.sum().items() if n}
    if missing == "error":
        raise DataError(
            f"{n_bad} of {len(frame)} rows have missing values (per column: {per_col}); "
            "impute them, or pass missing='listwise' (CLI: --missing listwise) to drop "
            "those rows."
        )
    warnings.warn(
        f"listwise deletion removed {n_bad} of {len(frame)} rows with missing values "
        f"(per column: {per_col}).",
        MissingDataWarning,
        stacklevel=3,
    )
    return frame.loc[~rows], n_bad


def term_column(frame: pd.DataFrame, term: str) -> np.ndarray:
    """Values of one formula term: a column, a product ``a:b``, or ones for ``"1"``."""
    if term == INTERCEPT:
        return np.ones(len(frame))
    out = np.ones(len(frame))
    for name in term.split(":"):
        out = out * frame[name].to_numpy(dtype=float)
    return out


def _matrix(frame: pd.DataFrame, terms: tuple[str, ...], where: str) -> np.ndarray:
    mat = (
        np.column_stack([term_column(frame, t) for t in terms])
        if terms
        else np.empty((len(frame), 0))
    )
    for j, term in enumerate(terms):
        if term != INTERCEPT and np.ptp(mat[:, j]) == 0:
            raise DataError(
                f"term {term!r} of the {where} is constant ({mat[0, j]:g}) in the data; "
                "drop it from the formula (the intercept already covers a constant)."
            )
    return mat


def build_design(spec: Spec, data: DataLike, *, missing: MissingPolicy = "error") -> Design:
    """Validate data against a spec and build its design matrices.

    Parameters
    ----------
    spec : Spec
        The model.
    data : DataFrame, str or Path
        See :func:`resolve_data`.
    missing : {"error", "listwise"}
        What to do with rows that have missing values in used columns:
        raise (default) or drop them with a :class:`MissingDataWarning`
        that reports the count.

    Returns
    -------
    Design

    Raises
    ------
    DataError
        For a missing or non-numeric column, infinite values, missing values
        (unless ``missing="listwise"``), a constant covariate, or fewer rows
        than parameters.
    """
    from bayesmix.params import count_params  # local: params imports spec only

    frame = resolve_data(data)
    _check_columns(frame, spec)
    cols = list(spec.columns)
    frame, n_dropped = _handle_missing(frame, cols, missing)
    numeric = frame[cols].astype(float)
    for col in cols:
        n_inf = int(np.isinf(numeric[col].to_numpy()).sum())
        if n_inf:
            raise DataError(f"column {col!r} has {n_inf} infinite value(s); remove or recode them.")
    y = numeric[spec.outcome].to_numpy()
    X = _matrix(numeric, spec.terms, "outcome formula")
    Z = _matrix(numeric, spec.membership, "membership formula")
    n_params = count_params(spec)
    if len(y) <= n_params:
        raise DataError(
            f"model {spec.name!r} has {n_params} parameters but the data have only "
            f"{len(y)} usable rows; use a simpler model or more data."
        )
    if np.ptp(y) == 0:
        raise DataError(f"outcome {spec.outcome!r} is constant ({y[0]:g}); nothing to model.")
    return Design(spec=spec, y=y, X=X, Z=Z, frame=frame, n_dropped=n_dropped)
