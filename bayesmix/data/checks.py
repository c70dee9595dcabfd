"""Checks of data against a model: columns, missing values, magnitudes, ranks, clusters.

Each check raises :class:`~bayesmix.errors.DataError` naming the column, row or
cluster at fault and how to fix it, or warns with a
:class:`~bayesmix.errors.DesignWarning` or
:class:`~bayesmix.errors.MissingDataWarning` where the fit can go on.
"""

from __future__ import annotations

import difflib
import warnings
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from bayesmix.data.reading import SEPARATORS
from bayesmix.errors import DataError, DesignWarning, MissingDataWarning
from bayesmix.model.formula import INTERCEPT

if TYPE_CHECKING:
    from bayesmix.data.matrices import Matrices
    from bayesmix.model.spec import Spec

MissingPolicy = Literal["error", "listwise"]
# residual_groups with more levels than this is more likely a continuous variable
_MAX_GROUP_LEVELS = 20


def _separator_hint(col: str, available: list[str], used: tuple[str, ...]) -> str | None:
    """A column named like ``"y;x"``: the file was read with the wrong separator."""
    for name in available:
        for sep, shown in {**SEPARATORS, " ": "spaces"}.items():
            parts = [p.strip() for p in name.split(sep)]
            # a space can be part of a name ("math score"): ask for two model columns then
            if col in parts and (sep != " " or len(set(parts) & set(used)) > 1):
                return (
                    f"column {col!r} is not in the data, but column {name!r} holds names "
                    f"separated by {shown}: the file was read as if separated by commas. "
                    f"Read it with pandas.read_csv(path, sep={sep!r}) and pass the "
                    "DataFrame, or save it comma-separated."
                )
    return None


def check_columns(frame: pd.DataFrame, spec: Spec) -> None:
    if isinstance(frame.columns, pd.MultiIndex):
        raise DataError(
            f"the data's column names have {frame.columns.nlevels} levels (e.g. "
            f"{frame.columns[0]!r}), but the model names single columns such as "
            f"{spec.outcome!r}; flatten them first, e.g. "
            "data.columns = data.columns.get_level_values(0)."
        )
    available = [str(c) for c in frame.columns]
    for col in spec.columns:
        if col not in frame.columns:
            hint = _separator_hint(col, available, spec.columns)
            if hint is not None:
                raise DataError(hint)
            close = difflib.get_close_matches(col, available, n=3)
            hint = f" Did you mean {close}?" if close else ""
            raise DataError(
                f"column {col!r} used by model {spec.name!r} is not in the data; the "
                f"columns are {available}.{hint}"
            )
    repeated = [col for col in spec.columns if int((frame.columns == col).sum()) > 1]
    if repeated:
        raise DataError(
            f"the data have more than one column named {', '.join(map(repr, repeated))}, "
            "so the model's column is ambiguous: rename or drop the others (e.g. "
            "data.loc[:, ~data.columns.duplicated()] keeps the first of each name)."
        )
    if len(frame) == 0:
        raise DataError(
            f"the data have columns {available} but no rows; pass the data that hold the "
            "observations."
        )
    categorical = text_categories(frame, spec)
    for col in spec.columns:
        series = frame[col]
        if col == spec.cluster or pd.api.types.is_bool_dtype(series) or col in categorical:
            continue
        if pd.api.types.is_complex_dtype(series):
            raise DataError(
                f"column {col!r} holds complex numbers (dtype {series.dtype}); pass its real "
                f"part, e.g. frame[{col!r}].to_numpy().real, or the column you meant."
            )
        if not pd.api.types.is_numeric_dtype(series):
            bad = series[pd.to_numeric(series, errors="coerce").isna() & series.notna()]
            if len(bad) == 0:
                raise DataError(
                    f"column {col!r} holds numbers stored as text (dtype {series.dtype}); "
                    f"convert it with pandas.to_numeric(frame[{col!r}])."
                )
            raise DataError(
                f"column {col!r} is not numeric (dtype {series.dtype}, e.g. value "
                f"{bad.iloc[0]!r} in row {bad.index[0]}); recode it as numbers, or, if it "
                f"holds categories, write C({col}) in the formula."
            )


def text_categories(frame: pd.DataFrame, spec: Spec) -> set[str]:
    """Covariate columns read as categories: a categorical dtype, or text none of whose
    values is a number (text of numbers, or numbers mixed with text, is refused as a
    column that is not numeric); the outcome and residual groups are always numbers."""
    out = set()
    for col in spec.columns:
        if col in (spec.outcome, spec.residual_groups, spec.cluster):
            continue
        series = frame[col]
        if isinstance(series.dtype, pd.CategoricalDtype):
            out.add(col)
        elif not pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_complex_dtype(
            series
        ):
            values = series.dropna()
            if len(values) and pd.to_numeric(values, errors="coerce").isna().all():
                out.add(col)
    return out


def handle_missing(
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
    if n_bad == len(frame) and missing == "listwise":
        raise DataError(
            f"every one of the {len(frame)} rows has a missing value in a column the model "
            f"uses (per column: {per_col}), so listwise deletion leaves no rows; check those "
            "columns (one may be empty), or drop them from the model."
        )
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


# Largest |value| * sqrt(n) accepted: sums of n squares stay below 1e300, leaving room
# under the float64 overflow at 1.8e308 for the products with other columns and
# coefficients in the variances, standardisations and least squares of the fit.
# Smallest spread (max - min): below it the squares of the differences, and so the
# outcome's standard deviation, fall into float64's subnormal range.
_LARGEST = 1e150
_SMALLEST_SPREAD = 1e-150


def check_magnitude(values: np.ndarray, label: str, rows: pd.Index, unit: str = "row") -> None:
    """Refuse values whose squares overflow (or whose differences underflow) in the fit.

    ``rows`` labels the values (the frame's index, or the cluster ids for ``unit="cluster"``).
    """
    n = len(values)
    if n == 0:
        return
    size = np.abs(values)
    limit = _LARGEST / np.sqrt(n)
    i = int(np.argmax(size))
    if size[i] >= limit:
        raise DataError(
            f"{label} has value {values[i]:g} in {unit} {_plain(rows[i])}, too large to fit: "
            f"sums of its squares overflow double precision (the limit for {n} rows is "
            f"|value| < {limit:.3g}); rescale the column (e.g. divide it by 1e6) or check "
            "for a data-entry error."
        )
    spread = float(np.ptp(values))
    if 0 < spread < _SMALLEST_SPREAD:
        raise DataError(
            f"{label} varies by only {spread:.3g} (values around {values[i]:g}), too little "
            "to fit: the squares of its differences underflow double precision; rescale the "
            "column (e.g. multiply it by 1e6) or check for a data-entry error."
        )


def check_constant(mat: np.ndarray, terms: tuple[str, ...], where: str) -> None:
    """Name the first non-intercept term whose column is constant."""
    for j, term in enumerate(terms):
        if term != INTERCEPT and np.ptp(mat[:, j]) == 0:
            raise DataError(
                f"term {term!r} of the {where} is constant ({mat[0, j]:g}) in the data; "
                "drop it from the formula (the intercept already covers a constant)."
            )


def check_rank(mat: np.ndarray, names: tuple[str, ...] | list[str], where: str) -> None:
    """Name the first column that is a linear combination of the ones before it."""
    if mat.shape[1] < 2:
        return
    scaled = mat / np.maximum(np.abs(mat).max(axis=0), 1e-300)
    for j in range(1, scaled.shape[1]):
        before = scaled[:, :j]
        coef, *_ = np.linalg.lstsq(before, scaled[:, j], rcond=None)
        resid = scaled[:, j] - before @ coef
        if np.linalg.norm(resid) <= 1e-8 * max(np.linalg.norm(scaled[:, j]), 1e-300):
            used = [f"{c:+.3g} {n}" for c, n in zip(coef, names[:j], strict=True) if abs(c) > 1e-9]
            raise DataError(
                f"{where}: {names[j]!r} is collinear with {list(names[:j])} "
                f"({names[j]} = {' '.join(used) or '0'}), so their effects are not identified; "
                f"drop {names[j]!r} or one of the others."
            )


def check_clusters(spec: Spec, codes: np.ndarray, n_clusters: int) -> None:
    """Enough clusters, and clusters large enough, for the random effects asked."""
    r = len(spec.random_effects)
    if r == 0:
        return
    if n_clusters <= r:
        raise DataError(
            f"the random part has {r} dimensions but the data have only {n_clusters} "
            f"cluster(s) of {spec.cluster!r}, too few to estimate their covariance; use fewer "
            "random terms ([random] terms) or more clusters."
        )
    sizes = np.bincount(codes, minlength=n_clusters)
    if (sizes == 1).all():
        raise DataError(
            f"every cluster of {spec.cluster!r} has a single row, so school residuals cannot "
            "be told from student residuals; check the cluster column, or fit a single-level "
            "model (no cluster)."
        )
    if n_clusters < 10:
        warnings.warn(
            f"only {n_clusters} clusters of {spec.cluster!r}: random-effect variances from "
            "fewer than 10 clusters are poorly determined; consider fewer random terms.",
            DesignWarning,
            stacklevel=4,
        )
    singles = int((sizes == 1).sum())
    if singles and len(spec.random) > 1:
        warnings.warn(
            f"{singles} of {n_clusters} clusters of {spec.cluster!r} have a single row; they "
            "inform the random intercept but cannot separate random slopes from residual noise.",
            DesignWarning,
            stacklevel=4,
        )


def _plain(value: object) -> str:
    """A cluster label as users wrote it: 3 rather than np.int64(3), quotes for strings."""
    if isinstance(value, np.generic):
        value = value.item()
    return repr(value) if isinstance(value, str) else str(value)


def check_school_level(
    frame: pd.DataFrame, codes: np.ndarray, cols: list[str], cluster: str
) -> None:
    for col in cols:
        values = frame[col].to_numpy(dtype=float)
        first = np.full(codes.max() + 1, np.nan)
        first[codes[::-1]] = values[::-1]
        varies = values != first[codes]
        if varies.any():
            row = int(np.argmax(varies))
            raise DataError(
                f"school-level column {col!r} varies within {cluster} "
                f"{_plain(frame[cluster].iloc[row])} (e.g. {values[row]:g} vs "
                f"{first[codes[row]]:g}); a level-2 covariate must be constant within each "
                "cluster: use its cluster mean, or move it to the level-1 formula."
            )


def check_values(numeric: pd.DataFrame, spec: Spec) -> None:
    """Refuse infinite values, and values too large or too finely spread to square.

    Parameters
    ----------
    numeric : DataFrame
        The model's numeric columns, as floats.
    spec : Spec
        The model, to name its outcome as such.
    """
    for col in numeric.columns:
        n_inf = int(np.isinf(numeric[col].to_numpy()).sum())
        if n_inf:
            raise DataError(f"column {col!r} has {n_inf} infinite value(s); remove or recode them.")
        label = f"outcome {col!r}" if col == spec.outcome else f"column {col!r}"
        check_magnitude(numeric[col].to_numpy(), label, numeric.index)


def check_school_columns(
    numeric: pd.DataFrame, spec: Spec, cluster: str, clusters: pd.Series, codes: np.ndarray
) -> None:
    """Refuse a school-level column (level-2 covariate, residual group, [between] term)
    that varies within a cluster.

    Parameters
    ----------
    numeric : DataFrame
        The model's numeric columns, rows sorted by cluster.
    spec : Spec
        The model.
    cluster : str
        Its cluster column.
    clusters : Series
        The cluster labels of the rows.
    codes : ndarray of int
        The cluster index of each row.
    """
    check_school_level(numeric.assign(**{cluster: clusters}), codes, school_columns(spec), cluster)


def school_columns(spec: Spec) -> list[str]:
    """Columns constant within a cluster: level-2 covariates, residual groups, [between] terms.

    Parameters
    ----------
    spec : Spec
        The model.

    Returns
    -------
    list of str
        The columns, each once.
    """
    cols = list(spec.level2_covariates)
    if spec.residual_groups:
        cols.append(spec.residual_groups)
    for term in spec.between_membership:
        for name in spec.term_columns(term):
            if name not in cols:
                cols.append(name)
    return cols


def residual_group_levels(numeric: pd.DataFrame, spec: Spec) -> tuple[Any, ...]:
    """The levels of the residual_groups column (model 1c), checked; empty without one.

    Parameters
    ----------
    numeric : DataFrame
        The model's numeric columns.
    spec : Spec
        The model.

    Returns
    -------
    tuple
        The sorted levels, whole numbers as int.
    """
    if not spec.residual_groups:
        return ()
    levels = np.unique(numeric[spec.residual_groups].to_numpy())
    group_levels = tuple(int(v) if float(v).is_integer() else float(v) for v in levels)
    if len(levels) < 2:
        raise DataError(
            f"residual_groups column {spec.residual_groups!r} has a single level; "
            "it needs at least two groups."
        )
    if len(levels) > _MAX_GROUP_LEVELS:
        whole = all(isinstance(v, int) for v in group_levels)
        warnings.warn(
            f"residual_groups column {spec.residual_groups!r} has {len(levels)} levels"
            f"{'' if whole else ', and its values are not whole numbers'}, so the model "
            f"fits {len(levels)} residual variances, one per distinct value. For a "
            f"grouping of a few levels this is model 1c; for a continuous variable use "
            f"residual_covariates = [{spec.residual_groups!r}] (a log-linear variance, "
            "model 1b) instead.",
            DesignWarning,
            # 3: this function, build_design, then build_design's caller is named
            stacklevel=3,
        )
    return group_levels


def check_rows_for_classes(spec: Spec, n_rows: int, n_clusters: int) -> None:
    """Refuse fewer rows than level-1 classes, or no more clusters than level-2 classes.

    Parameters
    ----------
    spec : Spec
        The model.
    n_rows : int
        Usable rows.
    n_clusters : int
        Clusters in them.
    """
    if spec.classes > 1 and spec.classes >= n_rows:
        raise DataError(
            f"model {spec.name!r} has {spec.classes} latent classes but the data have only "
            f"{n_rows} usable rows, fewer than one per class; use fewer classes."
        )
    if spec.cluster is not None and n_clusters <= spec.between_classes:
        raise DataError(
            f"{spec.between_classes} level-2 classes need more clusters than classes, "
            f"but the data have {n_clusters} cluster(s) of {spec.cluster!r}; use "
            "fewer level-2 classes (between classes) or more clusters."
        )


def check_rows_for_parameters(spec: Spec, n_rows: int, n_params: int) -> None:
    """Refuse data with no more rows than the model has parameters.

    Run before the checks of constant columns, which every column of a few rows fails.

    Parameters
    ----------
    spec : Spec
        The model.
    n_rows : int
        Usable rows.
    n_params : int
        The model's free parameters.
    """
    if n_rows <= n_params:
        classes = f" with {spec.classes} classes" if spec.classes > 1 else ""
        fewer = "fewer classes, " if spec.classes > 1 else ""
        raise DataError(
            f"model {spec.name!r}{classes} has {n_params} parameters but the data have "
            f"only {n_rows} usable rows; use {fewer}a simpler model or more data."
        )


def check_matrices(spec: Spec, m: Matrices, rows: pd.Index, cluster_ids: np.ndarray) -> None:
    """Refuse design matrices that cannot identify the model.

    Products ``a:b`` too large to square, constant or collinear columns, and an
    outcome with too few distinct values for the classes.

    Parameters
    ----------
    spec : Spec
        The model.
    m : Matrices
        The outcome and design matrices.
    rows : Index
        The rows' labels, for messages.
    cluster_ids : ndarray
        The cluster labels, for messages about the [between] design ``m.W``.
    """
    y, X, F, Z, V, W = m.y, m.X, m.F, m.Z, m.V, m.W
    # products a:b of columns that pass one by one can still overflow
    products = [
        (F, spec.fixed_names, "term", rows, "row"),
        (Z, spec.membership, "membership term", rows, "row"),
        (W, spec.between_membership, "[between] term", pd.Index(cluster_ids), "cluster"),
    ]
    if spec.residual_covariates:
        products.append((V, ("1", *spec.residual_covariates), "residual term", rows, "row"))
    for mat, names, kind, labels, unit in products:
        for j, name in enumerate(names):
            if ":" in name:
                check_magnitude(mat[:, j], f"{kind} {name!r}", labels, unit)
    if spec.residual_covariates:
        check_constant(V, ("1", *spec.residual_covariates), "residual variance formula")
    check_constant(X, spec.terms, "outcome formula")
    for j, name in enumerate(spec.fixed_names):
        if name != INTERCEPT and np.ptp(F[:, j]) == 0:
            raise DataError(
                f"fixed effect {name!r} has a constant column ({F[0, j]:g}) in the data; "
                "drop it (the intercept already covers a constant)."
            )
    check_constant(Z, spec.membership, "membership formula")
    check_rank(F, list(spec.fixed_names), "fixed effects")
    check_rank(Z, list(spec.membership), "membership formula")
    if np.ptp(y) == 0:
        raise DataError(f"outcome {spec.outcome!r} is constant ({y[0]:g}); nothing to model.")
    distinct = len(np.unique(y))
    if spec.classes > 1 and distinct <= spec.classes:
        raise DataError(
            f"outcome {spec.outcome!r} takes only {distinct} distinct values, too few to "
            f"identify {spec.classes} regression classes; use fewer classes."
        )
