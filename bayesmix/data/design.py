"""Data in: resolve a data argument, validate it against a spec, build design matrices."""

from __future__ import annotations

import csv
import difflib
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from bayesmix.data.datasets import BUNDLED
from bayesmix.errors import DataError, DataWarning, DesignWarning, MissingDataWarning, SpecError
from bayesmix.model.formula import INTERCEPT
from bayesmix.model.params import Layout
from bayesmix.model.spec import Spec

DataLike = pd.DataFrame | str | Path
MissingPolicy = Literal["error", "listwise"]
# residual_groups with more levels than this is more likely a continuous variable
_MAX_GROUP_LEVELS = 20


@dataclass(frozen=True, eq=False)
class Design:
    """Validated data for one spec: outcome, design matrices and bookkeeping.

    With a cluster column the rows are sorted by cluster (stably), so that
    each cluster's observations are contiguous; ``frame`` is in that order.

    Attributes
    ----------
    spec : Spec
        The model the matrices were built for.
    layout : Layout
        Its parameter layout (with the residual group levels of the data).
    y : ndarray, shape (n,)
        Outcome.
    X : ndarray, shape (n, p)
        Level-1 outcome terms, columns in ``spec.terms`` order.
    F : ndarray, shape (n, P)
        Fixed-effect design, columns in ``spec.fixed_names`` order (terms and
        their products with school covariates).
    R : ndarray, shape (n, r)
        Random-effect design, columns in ``spec.random`` order.
    Z : ndarray, shape (n, m)
        Membership design, columns in ``spec.membership`` order.
    V : ndarray, shape (n, v)
        Residual-variance design (ones; covariates for 1b; group indicators for 1c).
    W : ndarray, shape (J, m2)
        School-level design of the level-2 class logits (eq 32), columns in
        ``spec.between_membership`` order; a column of ones without level-2
        classes.
    cluster : ndarray of int, shape (n,)
        Cluster index 0..J-1 of each row (non-decreasing); zeros without clusters.
    cluster_ids : ndarray, shape (J,)
        Cluster labels in index order.
    frame : pandas.DataFrame
        The rows used, after any listwise deletion and sorting.
    schools : pandas.DataFrame
        One row per cluster (index ``cluster_ids``) with the school-level
        covariates as used (after centring); empty without clusters.
    n_dropped : int
        Rows removed for missing values.
    """

    spec: Spec
    layout: Layout
    y: np.ndarray
    X: np.ndarray
    F: np.ndarray
    R: np.ndarray
    Z: np.ndarray
    V: np.ndarray
    W: np.ndarray
    cluster: np.ndarray
    cluster_ids: np.ndarray
    frame: pd.DataFrame = field(repr=False)
    schools: pd.DataFrame = field(repr=False)
    n_dropped: int = 0

    @property
    def n_obs(self) -> int:
        """Number of observations used."""
        return int(self.y.shape[0])

    @property
    def n_clusters(self) -> int | None:
        """Number of clusters J, or None for single-level models."""
        return None if self.spec.cluster is None else int(self.cluster_ids.shape[0])

    def likelihood_args(self) -> tuple[np.ndarray, ...]:
        """``(y, F, R, Z, V, bounds)`` as the compiled likelihoods take them.

        Contiguous float64 arrays and int64 cluster offsets, in the order of
        :func:`bayesmix.density.likelihood.loglik_and_grad`.
        """
        return (
            np.ascontiguousarray(self.y, dtype=float),
            np.ascontiguousarray(self.F, dtype=float),
            np.ascontiguousarray(self.R, dtype=float),
            np.ascontiguousarray(self.Z, dtype=float),
            np.ascontiguousarray(self.V, dtype=float),
            np.ascontiguousarray(self.bounds, dtype=np.int64),
        )

    @property
    def bounds(self) -> np.ndarray:
        """Row offsets of the clusters: cluster j is rows ``bounds[j]:bounds[j + 1]``."""
        counts = np.bincount(self.cluster, minlength=len(self.cluster_ids))
        return np.concatenate([[0], np.cumsum(counts)])


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

    Raises
    ------
    DataError
        For a name that is neither a file nor a bundled data set, a folder,
        a file that cannot be read as CSV, an empty file, one that is not
        UTF-8 text, one whose header is separated by ``;``, tabs or ``|``
        rather than commas, or one with column names but no rows.

    Warns
    -----
    DataWarning
        When the CSV header repeats a column name (pandas renames the later
        ones ``x.1``, ``x.2``...).
    """
    if isinstance(data, pd.DataFrame):
        return data
    if isinstance(data, (str, Path)):
        key = str(data)
        if key == "":  # Path("") is the current folder
            raise DataError(
                f"data {key!r} is an empty name; give a CSV file or a bundled data set "
                f"({sorted(BUNDLED)})."
            )
        if key.lower() in BUNDLED:
            return BUNDLED[key.lower()]()
        path = Path(key)
        if path.is_dir():
            raise DataError(
                f"data {key!r} is a folder; give a CSV file in it, or a bundled data set "
                f"({sorted(BUNDLED)})."
            )
        if not path.is_file():
            close = difflib.get_close_matches(key.lower(), sorted(BUNDLED), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise DataError(
                f"data {key!r} is neither a CSV file nor a bundled data set; bundled data "
                f"sets are {sorted(BUNDLED)}.{hint}"
            )
        header, first_row = _first_rows(path)
        _check_separator(key, header, first_row)
        try:
            frame = pd.read_csv(path)
        except pd.errors.EmptyDataError:
            raise DataError(
                f"{key!r} is empty: it has no header line of column names and no rows; check "
                "that the file was written completely, or give the file that holds the data."
            ) from None
        except UnicodeDecodeError:
            raise DataError(_not_utf8(key, path)) from None
        except pd.errors.ParserError as err:
            raise DataError(f"cannot read {key!r} as CSV: {err}") from None
        if len(frame) == 0:
            raise DataError(
                f"{key!r} has column names {[str(c) for c in frame.columns]} but no rows; "
                "check that the file was written completely, or give the file that holds "
                "the data."
            )
        _warn_duplicate_header(key, header, frame)
        return frame
    raise DataError(
        f"data must be a pandas DataFrame, a CSV path or one of {sorted(BUNDLED)}, "
        f"got {type(data).__name__}."
    )


def _not_utf8(key: str, path: Path) -> str:
    """Where a file stops being UTF-8 text, and what to do about it."""
    raw = path.read_bytes()
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as err:
        # pandas reports the position within the chunk it was decoding; this is the file's
        line = raw.count(b"\n", 0, err.start) + 1
        where = (
            f": line {line} holds the byte 0x{raw[err.start]:02x} at offset {err.start}, which "
            "UTF-8 does not allow there"
        )
    else:  # pandas found a fault that Python's decoder does not see
        where = ""
    return (
        f"{key!r} is not UTF-8 text{where}; save the file as UTF-8 (e.g. 'CSV UTF-8' in a "
        f"spreadsheet), or read it with pandas.read_csv({key!r}, encoding='latin-1') and pass "
        "the DataFrame."
    )


# separators that users' files have instead of commas, as messages name them
_SEPARATORS = {";": "';'", "\t": "tabs", "|": "'|'"}


def _first_rows(path: Path) -> tuple[list[str], str]:
    """The header fields of a CSV file (as the csv module splits them) and its second line."""
    with path.open(encoding="utf-8-sig", errors="replace", newline="") as handle:
        lines = [handle.readline(), handle.readline()]
    header = next(csv.reader([lines[0]]), [])
    return header, lines[1]


def _check_separator(key: str, header: list[str], first_row: str) -> None:
    """Name the separator of a file whose header is one field split by ';', tabs or '|'."""
    if len(header) != 1:
        return
    for sep, shown in _SEPARATORS.items():
        if len([p for p in header[0].split(sep) if p.strip()]) > 1:
            # a ';'-separated file usually comes with decimal commas (1,5)
            decimal = ", decimal=','" if "," in first_row else ""
            raise DataError(
                f"{key!r} is separated by {shown}, not by commas (its header is "
                f"{header[0].strip()!r}); save it comma-separated, or read it with "
                f"pandas.read_csv({key!r}, sep={sep!r}{decimal}) and pass the DataFrame."
            )


def _warn_duplicate_header(key: str, header: list[str], frame: pd.DataFrame) -> None:
    """Warn when the CSV header repeats a name, which pandas renames silently."""
    if len(header) != len(frame.columns):
        return
    positions: dict[str, list[int]] = {}
    for i, name in enumerate(header):
        positions.setdefault(name.strip(), []).append(i)
    for name, where in positions.items():
        if len(where) < 2 or not name:
            continue
        renamed = [str(frame.columns[i]) for i in where[1:]]
        warnings.warn(
            f"{key!r} has {len(where)} columns named {name!r} (columns "
            f"{', '.join(str(i + 1) for i in where)}); pandas renamed the later ones "
            f"{', '.join(map(repr, renamed))}, and a model that names {name!r} uses the "
            "first of them: rename the columns in the file so that each name is used once.",
            DataWarning,
            stacklevel=4,
        )


def _separator_hint(col: str, available: list[str], used: tuple[str, ...]) -> str | None:
    """A column named like ``"y;x"``: the file was read with the wrong separator."""
    for name in available:
        for sep, shown in {**_SEPARATORS, " ": "spaces"}.items():
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


def _check_columns(frame: pd.DataFrame, spec: Spec) -> None:
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
    for col in spec.columns:
        series = frame[col]
        if col == spec.cluster or pd.api.types.is_bool_dtype(series):
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


def term_column(frame: pd.DataFrame, term: str) -> np.ndarray:
    """Values of one formula term: a column, a product ``a:b``, or ones for ``"1"``."""
    if term == INTERCEPT:
        return np.ones(len(frame))
    out = np.ones(len(frame))
    for name in term.split(":"):
        out = out * frame[name].to_numpy(dtype=float)
    return out


def _matrix(frame: pd.DataFrame, terms: tuple[str, ...]) -> np.ndarray:
    """Columns of ``terms`` (see :func:`term_column`), shape (rows, len(terms))."""
    if not terms:
        return np.empty((len(frame), 0))
    return np.column_stack([term_column(frame, t) for t in terms])


# Largest |value| * sqrt(n) accepted: sums of n squares stay below 1e300, leaving room
# under the float64 overflow at 1.8e308 for the products with other columns and
# coefficients in the variances, standardisations and least squares of the fit.
# Smallest spread (max - min): below it the squares of the differences, and so the
# outcome's standard deviation, fall into float64's subnormal range.
_LARGEST = 1e150
_SMALLEST_SPREAD = 1e-150


def _check_magnitude(values: np.ndarray, label: str, rows: pd.Index, unit: str = "row") -> None:
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


def _check_constant(mat: np.ndarray, terms: tuple[str, ...], where: str) -> None:
    """Name the first non-intercept term whose column is constant."""
    for j, term in enumerate(terms):
        if term != INTERCEPT and np.ptp(mat[:, j]) == 0:
            raise DataError(
                f"term {term!r} of the {where} is constant ({mat[0, j]:g}) in the data; "
                "drop it from the formula (the intercept already covers a constant)."
            )


@dataclass(frozen=True, eq=False)
class Matrices:
    """The design matrices of a spec on numeric data (see :class:`Design` for shapes)."""

    y: np.ndarray
    X: np.ndarray
    F: np.ndarray
    R: np.ndarray
    Z: np.ndarray
    V: np.ndarray
    W: np.ndarray
    schools: pd.DataFrame


def design_matrices(
    spec: Spec,
    numeric: pd.DataFrame,
    group_levels: tuple[Any, ...] = (),
    first: np.ndarray | None = None,
    cluster_ids: np.ndarray | None = None,
) -> Matrices:
    """Build the design matrices of ``spec`` from numeric columns, without checks.

    Parameters
    ----------
    spec : Spec
    numeric : DataFrame
        The model's columns as floats (after any centring), rows sorted by cluster.
    group_levels : tuple
        Levels of ``spec.residual_groups`` (model 1c), one indicator column each.
    first : ndarray of int, optional
        Row of each cluster's first observation (two-level models).
    cluster_ids : ndarray, optional
        Cluster labels, the index of ``schools``.

    Returns
    -------
    Matrices
    """
    n = len(numeric)
    if spec.residual_groups:
        group_values = numeric[spec.residual_groups].to_numpy()
        V = (group_values[:, None] == np.asarray(group_levels, dtype=float)[None, :]).astype(float)
    elif spec.residual_covariates:
        V = _matrix(numeric, ("1", *spec.residual_covariates))
    else:
        V = np.ones((n, 1))
    X = _matrix(numeric, spec.terms)
    F = np.column_stack(
        [
            term_column(numeric, term) * (1.0 if w is None else term_column(numeric, w))
            for _, term, w in spec.fixed_effects
        ]
    )
    R = (
        np.column_stack([X[:, spec.terms.index(t)] for t in spec.random])
        if spec.random
        else np.empty((n, 0))
    )
    if first is not None:
        rows = numeric.iloc[first]
        schools = rows[list(spec.level2_covariates)].set_axis(cluster_ids)
        W = _matrix(rows, spec.between_membership)
    else:
        schools = pd.DataFrame()
        W = np.ones((1, 1))
    return Matrices(
        y=numeric[spec.outcome].to_numpy(),
        X=X,
        F=F,
        R=R,
        Z=_matrix(numeric, spec.membership),
        V=V,
        W=np.ascontiguousarray(W, dtype=float),
        schools=schools,
    )


def _check_rank(mat: np.ndarray, names: tuple[str, ...] | list[str], where: str) -> None:
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


def _check_clusters(spec: Spec, codes: np.ndarray, n_clusters: int) -> None:
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


def _check_school_level(
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
    SpecError
        When ``spec`` is not a :class:`Spec`.
    DataError
        For a missing, repeated or non-numeric (text, complex) column, a
        separator other than commas, no rows, infinite values, values too
        large (|value| * sqrt(n) >= 1e150) or too finely spread (max - min
        < 1e-150) to square in double precision, missing values (unless
        ``missing="listwise"``; all rows missing always), a constant
        covariate, a school-level covariate that varies within a cluster,
        fewer rows than parameters, or no more clusters than level-2 classes.

    Warns
    -----
    DataWarning
        For a CSV file whose header repeats a name.
    DesignWarning
        For few clusters, single-row clusters with random slopes, and a
        ``residual_groups`` column of more than 20 levels.
    """
    if not isinstance(spec, Spec):
        raise SpecError(
            f"the model must be a Spec made by bayesmix.load_spec or bayesmix.make_spec, got "
            f"{type(spec).__name__} {spec!r:.80}; e.g. bayesmix.load_spec('models/fig1.toml')."
        )
    frame = resolve_data(data)
    _check_columns(frame, spec)
    cols = list(spec.columns)
    frame, n_dropped = _handle_missing(frame, cols, missing)
    if len(frame) == 0:
        raise DataError("no rows left to fit.")
    if spec.cluster is not None:
        codes, uniques = pd.factorize(frame[spec.cluster], sort=True)
        order = np.argsort(codes, kind="stable")
        frame = frame.iloc[order]
        codes = codes[order]
        cluster_ids = np.asarray(uniques)
    else:
        codes = np.zeros(len(frame), dtype=int)
        cluster_ids = np.zeros(1, dtype=int)
    numeric_cols = [c for c in cols if c != spec.cluster]
    numeric = frame[numeric_cols].astype(float)
    for col in numeric_cols:
        n_inf = int(np.isinf(numeric[col].to_numpy()).sum())
        if n_inf:
            raise DataError(f"column {col!r} has {n_inf} infinite value(s); remove or recode them.")
        label = f"outcome {col!r}" if col == spec.outcome else f"column {col!r}"
        _check_magnitude(numeric[col].to_numpy(), label, numeric.index)
    for col in spec.centre:
        if col not in numeric.columns:
            raise DataError(
                f"centre names {col!r}, which the model does not use; centre some of "
                f"{list(numeric.columns)}, or drop {col!r} from centre."
            )
        numeric[col] = numeric[col] - numeric[col].mean()
    if spec.cluster is not None:
        school_cols = list(spec.level2_covariates)
        if spec.residual_groups:
            school_cols.append(spec.residual_groups)
        for term in spec.between_membership:
            for name in term.split(":"):
                if name != INTERCEPT and name not in school_cols:
                    school_cols.append(name)
        _check_school_level(
            numeric.assign(**{spec.cluster: frame[spec.cluster]}), codes, school_cols, spec.cluster
        )
    group_levels: tuple = ()
    if spec.residual_groups:
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
                stacklevel=2,
            )
    # before the layout, whose parameter names number at least the classes: a mistyped
    # number of classes (1e11) would otherwise exhaust time and memory naming them
    if spec.classes > 1 and spec.classes >= len(frame):
        raise DataError(
            f"model {spec.name!r} has {spec.classes} latent classes but the data have only "
            f"{len(frame)} usable rows, fewer than one per class; use fewer classes."
        )
    if spec.cluster is not None and len(cluster_ids) <= spec.between_classes:
        raise DataError(
            f"{spec.between_classes} level-2 classes need more clusters than classes, "
            f"but the data have {len(cluster_ids)} cluster(s) of {spec.cluster!r}; use "
            "fewer level-2 classes (between classes) or more clusters."
        )
    lay = Layout(spec, group_levels)
    first = None
    if spec.cluster is not None:
        first = np.concatenate([[0], np.flatnonzero(np.diff(codes)) + 1])
    if len(frame) <= lay.n_params:
        # before the checks of constant columns, which every column of a few rows fails
        classes = f" with {spec.classes} classes" if spec.classes > 1 else ""
        fewer = "fewer classes, " if spec.classes > 1 else ""
        raise DataError(
            f"model {spec.name!r}{classes} has {lay.n_params} parameters but the data have "
            f"only {len(frame)} usable rows; use {fewer}a simpler model or more data."
        )
    m = design_matrices(spec, numeric, group_levels, first, cluster_ids)
    y, X, F, R, Z, V, W = m.y, m.X, m.F, m.R, m.Z, m.V, m.W
    # products a:b of columns that pass one by one can still overflow
    products = [
        (F, spec.fixed_names, "term", numeric.index, "row"),
        (Z, spec.membership, "membership term", numeric.index, "row"),
        (W, spec.between_membership, "[between] term", pd.Index(cluster_ids), "cluster"),
    ]
    if spec.residual_covariates:
        products.append(
            (V, ("1", *spec.residual_covariates), "residual term", numeric.index, "row")
        )
    for mat, names, kind, rows, unit in products:
        for j, name in enumerate(names):
            if ":" in name:
                _check_magnitude(mat[:, j], f"{kind} {name!r}", rows, unit)
    if spec.residual_covariates:
        _check_constant(V, ("1", *spec.residual_covariates), "residual variance formula")
    _check_constant(X, spec.terms, "outcome formula")
    for j, name in enumerate(spec.fixed_names):
        if name != INTERCEPT and np.ptp(F[:, j]) == 0:
            raise DataError(
                f"fixed effect {name!r} has a constant column ({F[0, j]:g}) in the data; "
                "drop it (the intercept already covers a constant)."
            )
    _check_constant(Z, spec.membership, "membership formula")
    _check_rank(F, list(spec.fixed_names), "fixed effects")
    _check_rank(Z, list(spec.membership), "membership formula")
    if np.ptp(y) == 0:
        raise DataError(f"outcome {spec.outcome!r} is constant ({y[0]:g}); nothing to model.")
    distinct = len(np.unique(y))
    if spec.classes > 1 and distinct <= spec.classes:
        raise DataError(
            f"outcome {spec.outcome!r} takes only {distinct} distinct values, too few to "
            f"identify {spec.classes} regression classes; use fewer classes."
        )
    if spec.cluster is not None:
        _check_clusters(spec, np.asarray(codes), len(cluster_ids))
        _check_constant(W, spec.between_membership, "[between] formula")
        _check_rank(W, list(spec.between_membership), "[between] formula")
    schools = m.schools
    return Design(
        spec=spec,
        layout=lay,
        y=y,
        X=X,
        F=F,
        R=R,
        Z=Z,
        V=V,
        W=np.ascontiguousarray(W, dtype=float),
        cluster=np.asarray(codes, dtype=np.int64),
        cluster_ids=cluster_ids,
        frame=frame,
        schools=schools,
        n_dropped=n_dropped,
    )
