"""Data in: resolve a data argument, validate it against a spec, build design matrices.

The data argument is read by :mod:`bayesmix.data.reading` and checked by
:mod:`bayesmix.data.checks`; :func:`resolve_data` is also importable from here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from bayesmix.data.checks import (
    MissingPolicy,
    check_clusters,
    check_columns,
    check_constant,
    check_matrices,
    check_rank,
    check_rows_for_classes,
    check_rows_for_parameters,
    check_school_columns,
    check_values,
    handle_missing,
    residual_group_levels,
)
from bayesmix.data.matrices import Matrices
from bayesmix.data.reading import DataLike, resolve_data
from bayesmix.data.terms import code_terms
from bayesmix.data.weighting import SampleWeights, sample_weights
from bayesmix.errors import DataError, SpecError, type_name
from bayesmix.model.formula import INTERCEPT, term_parts
from bayesmix.model.params import Layout
from bayesmix.model.spec import Spec

__all__ = [
    "DataLike",
    "Design",
    "Matrices",
    "MissingPolicy",
    "build_design",
    "design_matrices",
    "resolve_data",
    "term_column",
]


@dataclass(frozen=True, eq=False)
class Design:
    """Validated data for one spec: outcome, design matrices and bookkeeping.

    With a cluster column the rows are sorted by cluster (stably), so that
    each cluster's observations are contiguous; ``frame`` is in that order.

    Attributes
    ----------
    spec : Spec
        The model the matrices were built for, one term per column: a
        categorical or transformed term of the spec given is replaced by its
        columns (:func:`bayesmix.data.terms.code_terms`).
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
        The rows used, after any listwise deletion and sorting, with the
        columns derived from formula terms (``spec.derived``) appended.
    schools : pandas.DataFrame
        One row per cluster (index ``cluster_ids``) with the school-level
        covariates as used (after centring); empty without clusters.
    n_dropped : int
        Rows removed for missing values.
    weights : SampleWeights or None
        The scaled sampling weights (:mod:`bayesmix.data.weighting`); None for an
        unweighted model.
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
    weights: SampleWeights | None = field(default=None, repr=False)

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
        :func:`bayesmix.density.compiled.loglik_and_grad`.
        """
        return (
            np.ascontiguousarray(self.y, dtype=float),
            np.ascontiguousarray(self.F, dtype=float),
            np.ascontiguousarray(self.R, dtype=float),
            np.ascontiguousarray(self.Z, dtype=float),
            np.ascontiguousarray(self.V, dtype=float),
            np.ascontiguousarray(self.bounds, dtype=np.int64),
        )

    def weight_args(self) -> tuple[np.ndarray, np.ndarray | None] | None:
        """Sampling weights as the likelihoods take them: None without weights; the
        student and school weights ``(a, b)`` for a model that integrates over schools;
        each row's ``a b`` and None for a single-level model."""
        w = self.weights
        if w is None:
            return None
        if self.spec.integrates_schools:
            return w.row, w.cluster
        return w.combined(self.cluster), None

    @property
    def bounds(self) -> np.ndarray:
        """Row offsets of the clusters: cluster j is rows ``bounds[j]:bounds[j + 1]``."""
        counts = np.bincount(self.cluster, minlength=len(self.cluster_ids))
        return np.concatenate([[0], np.cumsum(counts)])


def term_column(frame: pd.DataFrame, term: str) -> np.ndarray:
    """Values of one formula term: a column, a product ``a:b``, or ones for ``"1"``."""
    if term == INTERCEPT:
        return np.ones(len(frame))
    out = np.ones(len(frame))
    for name in term_parts(term):
        out = out * frame[name].to_numpy(dtype=float)
    return out


def _matrix(frame: pd.DataFrame, terms: tuple[str, ...]) -> np.ndarray:
    """Columns of ``terms`` (see :func:`term_column`), shape (rows, len(terms))."""
    if not terms:
        return np.empty((len(frame), 0))
    return np.column_stack([term_column(frame, t) for t in terms])


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
            f"{type_name(spec)} {spec!r:.80}; e.g. bayesmix.load_spec('models/fig1.toml')."
        )
    frame = resolve_data(data)
    check_columns(frame, spec)
    cols = list(spec.columns)
    weight_columns = [] if spec.weights is None else list(spec.weights.columns)
    for col in weight_columns:
        if col not in frame.columns:
            raise DataError(
                f"weight column {col!r} is not in the data; its columns are "
                f"{list(map(str, frame.columns))[:20]}."
            )
    frame, n_dropped = handle_missing(frame, cols + weight_columns, missing)
    if len(frame) == 0:
        raise DataError("no rows left to fit.")
    frame, codes, cluster_ids = _sort_by_cluster(frame, spec)
    # categorical and transformed terms become columns of their own (bayesmix.data.terms)
    coded = code_terms(spec, frame)
    spec = coded.spec
    if len(coded.columns.columns):
        frame = pd.concat([frame, coded.columns], axis=1)
    cols = list(spec.columns)
    numeric = frame[[c for c in cols if c != spec.cluster]].astype(float)
    check_values(numeric, spec)
    _centre(numeric, spec)
    if spec.cluster is not None:
        check_school_columns(numeric, spec, spec.cluster, frame[spec.cluster], codes)
    group_levels = residual_group_levels(numeric, spec)
    # before the layout, whose parameter names number at least the classes: a mistyped
    # number of classes (1e11) would otherwise exhaust time and memory naming them
    check_rows_for_classes(spec, len(frame), len(cluster_ids))
    lay = Layout(spec, group_levels)
    first = None
    if spec.cluster is not None:
        first = np.concatenate([[0], np.flatnonzero(np.diff(codes)) + 1])
    check_rows_for_parameters(spec, len(frame), lay.n_params)
    m = design_matrices(spec, numeric, group_levels, first, cluster_ids)
    check_matrices(spec, m, numeric.index, cluster_ids)
    if spec.cluster is not None:
        check_clusters(spec, np.asarray(codes), len(cluster_ids))
        check_constant(m.W, spec.between_membership, "[between] formula")
        check_rank(m.W, list(spec.between_membership), "[between] formula")
    return Design(
        spec=spec,
        layout=lay,
        y=m.y,
        X=m.X,
        F=m.F,
        R=m.R,
        Z=m.Z,
        V=m.V,
        W=np.ascontiguousarray(m.W, dtype=float),
        cluster=np.asarray(codes, dtype=np.int64),
        cluster_ids=cluster_ids,
        frame=frame,
        schools=m.schools,
        n_dropped=n_dropped,
        weights=sample_weights(spec, frame, np.asarray(codes), len(cluster_ids)),
    )


def _sort_by_cluster(
    frame: pd.DataFrame, spec: Spec
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Rows sorted (stably) by cluster, each row's cluster index, and the cluster labels."""
    if spec.cluster is None:
        return frame, np.zeros(len(frame), dtype=int), np.zeros(1, dtype=int)
    codes, uniques = pd.factorize(frame[spec.cluster], sort=True)
    order = np.argsort(codes, kind="stable")
    return frame.iloc[order], codes[order], np.asarray(uniques)


def _centre(numeric: pd.DataFrame, spec: Spec) -> None:
    """Grand-mean centre the columns ``spec.centre`` names, in place."""
    for col in spec.centre:
        if col not in numeric.columns:
            raise DataError(
                f"centre names {col!r}, which the model does not use; centre some of "
                f"{list(numeric.columns)}, or drop {col!r} from centre."
            )
        numeric[col] = numeric[col] - numeric[col].mean()
