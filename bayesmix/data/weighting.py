"""Sampling weights of a design: the columns read, checked and scaled.

The scalings are Mplus's (Asparouhov 2006, "General multi-level modeling with sampling
weights"; Mplus User's Guide, ``WTSCALE`` and ``BWTSCALE``). With raw student weights
``w_ij`` and school weights ``w_j``, the student weights ``a_ij`` are

* ``cluster``: ``w_ij n_j / sum_i w_ij``, summing to the school's size n_j;
* ``ecluster``: ``w_ij sum_i w_ij / sum_i w_ij^2``, summing to its effective size
  ``(sum_i w_ij)^2 / sum_i w_ij^2``;
* ``sample`` (single-level models): ``w_i n / sum_i w_i``, summing to n;
* ``unscaled``: ``w_ij``;

and the school weights ``b_j`` are ``w_j n / sum_j w_j sum_i a_ij`` (``sample``: the
products ``a_ij b_j`` sum to n) or ``w_j`` (``unscaled``). Without a school-weight column
every ``b_j`` is 1, and without a student-weight column every raw ``w_ij`` is 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from bayesmix.errors import DataError
from bayesmix.model.spec import Spec
from bayesmix.model.weights import within_scaling


@dataclass(frozen=True, eq=False)
class SampleWeights:
    """Scaled sampling weights of a design's rows and clusters.

    Attributes
    ----------
    row : ndarray, shape (n,)
        Scaled student weights ``a_ij``, in the design's row order.
    cluster : ndarray, shape (J,)
        Scaled school weights ``b_j`` (ones without a cluster column or school weights).
    scaling, between_scaling : str
        The scalings applied.
    """

    row: np.ndarray
    cluster: np.ndarray
    scaling: str
    between_scaling: str

    def combined(self, cluster_index: np.ndarray) -> np.ndarray:
        """Each row's weight in a single-level likelihood, ``a_ij b_j``, shape (n,)."""
        return self.row * self.cluster[cluster_index]

    def total(self, cluster_index: np.ndarray) -> float:
        """The sum of the products ``a_ij b_j``: the weighted number of students, by which
        the log-likelihood's unit conversions scale."""
        return float(np.sum(self.combined(cluster_index)))


def _positive(frame: pd.DataFrame, column: str, what: str) -> np.ndarray:
    """A weight column as floats, refusing text, non-finite, zero and negative values."""
    try:
        values = frame[column].to_numpy(dtype=float)
    except (TypeError, ValueError):
        raise DataError(
            f"{what} column {column!r} is not numeric; sampling weights are positive numbers."
        ) from None
    bad = ~np.isfinite(values) | (values <= 0.0)
    if bad.any():
        first = frame.index[int(np.flatnonzero(bad)[0])]
        raise DataError(
            f"{what} column {column!r} has {int(bad.sum())} value(s) that are not positive "
            f"finite numbers (first at row {first!r}: {values[bad][0]!r}); a pseudo-likelihood "
            "needs weights > 0: drop the rows with weight 0 (they do not enter the estimates) "
            "or fix the column."
        )
    return values


def sample_weights(
    spec: Spec, frame: pd.DataFrame, codes: np.ndarray, n_clusters: int
) -> SampleWeights | None:
    """The scaled weights of ``spec.weights`` on the rows of ``frame``.

    Parameters
    ----------
    spec : Spec
    frame : DataFrame
        The rows used, sorted by cluster.
    codes : ndarray of int
        Each row's cluster index 0..J-1 (zeros without a cluster column).
    n_clusters : int
        J (1 without a cluster column).

    Returns
    -------
    SampleWeights or None
        None for an unweighted model.
    """
    weights = spec.weights
    if weights is None:
        return None
    scaling = within_scaling(weights, spec.integrates_schools)
    n = len(frame)
    raw = np.ones(n) if weights.within is None else _positive(frame, weights.within, "weight")
    sums = np.bincount(codes, weights=raw, minlength=n_clusters)
    if scaling == "cluster":
        sizes = np.bincount(codes, minlength=n_clusters)
        row = raw * (sizes / sums)[codes]
    elif scaling == "ecluster":
        squares = np.bincount(codes, weights=raw**2, minlength=n_clusters)
        row = raw * (sums / squares)[codes]
    elif scaling == "sample":
        row = raw * (n / raw.sum())
    else:
        row = raw
    cluster = np.ones(n_clusters)
    if weights.between is not None:
        school = _positive(frame, weights.between, "school weight")
        first = np.concatenate([[0], np.flatnonzero(np.diff(codes)) + 1])
        spread = np.maximum.reduceat(school, first) - np.minimum.reduceat(school, first)
        varies = np.flatnonzero(spread != 0.0)
        if varies.size:
            label = frame[spec.cluster].iloc[first[varies[0]]]
            raise DataError(
                f"school weight column {weights.between!r} varies within {varies.size} "
                f"cluster(s) (first {label!r}); a school weight is one value per school."
            )
        cluster = school[first]
        if weights.between_scaling == "sample":
            students = np.bincount(codes, weights=row, minlength=n_clusters)
            cluster = cluster * (n / np.sum(cluster * students))
    return SampleWeights(
        row=np.ascontiguousarray(row),
        cluster=np.ascontiguousarray(cluster),
        scaling=scaling,
        between_scaling=weights.between_scaling,
    )
