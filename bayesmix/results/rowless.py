"""Stand-ins for the data rows of a result saved with ``include_data=False``.

Such a result keeps what its summary, parameter table, information
criteria and comparisons need (the model, its parameter layout, counts of
observations and clusters, class proportions) and none of the rows. Every
use of the rows (plots of the data, school effects, posterior predictive
checks, school-level LOO, starts for further fits) raises a
:class:`~bayesmix.errors.DataError` that says why and what to do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NoReturn

import numpy as np

from bayesmix.errors import DataError
from bayesmix.model.params import Layout
from bayesmix.model.spec import Spec

_ROW_ATTRIBUTES = frozenset(
    {
        "y",
        "X",
        "F",
        "R",
        "Z",
        "V",
        "W",
        "cluster",
        "cluster_ids",
        "frame",
        "schools",
        "bounds",
        "likelihood_args",
    }
)


def no_rows(what: str) -> NoReturn:
    """Raise the error of a result saved without its data rows."""
    raise DataError(
        f"this result was saved with include_data=False and holds no data rows (asked for: "
        f"{what}); use a copy saved with include_data=True (the default), or fit the model "
        "to the data again."
    )


@dataclass(frozen=True, eq=False)
class DesignSummary:
    """What a result saved without its rows keeps of its :class:`~bayesmix.data.design.Design`.

    Attributes
    ----------
    spec : Spec
    layout : Layout
        With the residual group levels of the data the fit used.
    n_obs : int
    n_clusters : int or None
    n_dropped : int
        Rows removed for missing values before the fit.

    Any attribute of a ``Design`` that holds rows (``y``, ``F``, ``frame``,
    ``cluster_ids``, ``schools``...) raises :class:`DataError`.
    """

    spec: Spec
    layout: Layout
    n_obs: int
    n_clusters: int | None
    n_dropped: int = 0

    def __getattr__(self, name: str) -> Any:
        if name in _ROW_ATTRIBUTES:
            no_rows(f"design.{name}")
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")


@dataclass(frozen=True, eq=False)
class ClassSummary:
    """Posterior class probabilities reduced to what a summary shows.

    Stands in for the (units, classes) array of a result saved without its
    rows: ``shape``, ``sum(axis=0)`` and ``mean(axis=0)`` answer as the
    array would; anything asking for single units raises :class:`DataError`.

    Attributes
    ----------
    sums : ndarray, shape (K,)
        Column sums of the probabilities (expected class sizes).
    modal_counts : ndarray of int, shape (K,)
        Units whose most likely class is each class.
    entropy : float
        Relative entropy of the probabilities (NaN for one class).
    n : int
        Units (observations, or schools for level-2 classes).
    """

    sums: np.ndarray
    modal_counts: np.ndarray
    entropy: float
    n: int

    @classmethod
    def of(cls, probabilities: np.ndarray, entropy: float) -> ClassSummary:
        """Summarise a (units, classes) probability array."""
        post = np.asarray(probabilities, dtype=float)
        return cls(
            sums=post.sum(axis=0),
            modal_counts=np.bincount(post.argmax(axis=1), minlength=post.shape[1]),
            entropy=float(entropy),
            n=int(post.shape[0]),
        )

    @property
    def shape(self) -> tuple[int, int]:
        """``(units, classes)``, as of the full array."""
        return (self.n, int(self.sums.shape[0]))

    def _axis(self, axis: Any) -> None:
        if axis != 0:
            no_rows("the class probabilities of single units")

    def sum(self, axis: Any = None) -> np.ndarray:
        """Expected class sizes (``axis=0`` only)."""
        self._axis(axis)
        return self.sums.copy()

    def mean(self, axis: Any = None) -> np.ndarray:
        """Class proportions (``axis=0`` only)."""
        self._axis(axis)
        return self.sums / self.n

    def argmax(self, *args: Any, **kwargs: Any) -> NoReturn:
        no_rows("the modal class of single units")

    def __getitem__(self, key: Any) -> NoReturn:
        no_rows("the class probabilities of single units")

    def __array__(self, *args: Any, **kwargs: Any) -> NoReturn:
        no_rows("the class probabilities of single units")
