"""Sampling weights of a model: which columns hold them and how they are scaled.

A model file names them in a ``[weights]`` table (Mplus ``WEIGHT``, ``BWEIGHT``,
``WTSCALE`` and ``BWTSCALE``)::

    [weights]
    within = "w_student"        # each student's weight given the school
    between = "w_school"        # each school's weight (constant within a school)
    scaling = "cluster"         # of the student weights: cluster, ecluster, sample, unscaled
    between_scaling = "sample"  # of the school weights: sample or unscaled

The fit maximises the weighted pseudo-likelihood (Asparouhov 2006)

    sum_j b_j log int prod_i f(y_ij | u)^(a_ij) phi(u) du

for two-level models, and ``sum_i a_i b_j(i) log f(y_i)`` for single-level ones, with
the scaled student weights ``a`` and school weights ``b`` of
:mod:`bayesmix.data.weighting`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bayesmix.errors import SpecError, type_name

WITHIN_SCALINGS = ("cluster", "ecluster", "sample", "unscaled")
"""Scalings of the student weights: to sum to each school's size (Mplus ``WTSCALE =
CLUSTER``), to its effective size ``(sum a)^2 / sum a^2`` (``ECLUSTER``), to the sample
size over all students (single-level models), or as given."""

BETWEEN_SCALINGS = ("sample", "unscaled")
"""Scalings of the school weights: so that the products of school and student weights sum
to the number of students (Mplus ``BWTSCALE = SAMPLE``), or as given."""

WEIGHT_KEYS = {"within", "between", "scaling", "between_scaling"}
"""The keys of a model file's ``[weights]`` table."""


@dataclass(frozen=True)
class Weights:
    """The sampling-weight columns of a model and their scalings.

    Attributes
    ----------
    within : str or None
        Column of the student weights (Mplus ``WEIGHT``), positive.
    between : str or None
        Column of the school weights (Mplus ``BWEIGHT``), positive and constant
        within each school; needs a cluster column.
    scaling : {"cluster", "ecluster", "sample", "unscaled"} or None
        Scaling of the student weights; by default ``"cluster"`` for a model that
        integrates over schools (random effects or level-2 classes) and ``"sample"``
        otherwise. See :data:`WITHIN_SCALINGS`.
    between_scaling : {"sample", "unscaled"}
        Scaling of the school weights; see :data:`BETWEEN_SCALINGS`.
    """

    within: str | None = None
    between: str | None = None
    scaling: str | None = None
    between_scaling: str = "sample"

    def __post_init__(self) -> None:
        for label, value in (("within", self.within), ("between", self.between)):
            if value is not None and (not isinstance(value, str) or not value):
                raise SpecError(
                    f"weights {label} must name a column, got {type_name(value)} {value!r}."
                )
        if self.within is None and self.between is None:
            raise SpecError(
                "weights name no column: give within (the student weights) and/or between "
                '(the school weights), e.g. within = "w_student".'
            )
        if self.within is not None and self.within == self.between:
            raise SpecError(
                f"weights within and between both name {self.within!r}; the student and "
                "the school weights are different columns."
            )
        if self.scaling is not None and self.scaling not in WITHIN_SCALINGS:
            raise SpecError(
                f"weights scaling must be one of {WITHIN_SCALINGS}, got {self.scaling!r}."
            )
        if self.between_scaling not in BETWEEN_SCALINGS:
            raise SpecError(
                f"weights between_scaling must be one of {BETWEEN_SCALINGS}, got "
                f"{self.between_scaling!r}."
            )

    @property
    def columns(self) -> tuple[str, ...]:
        """The weight columns, student weights first."""
        return tuple(c for c in (self.within, self.between) if c is not None)


def weights_from(value: Any, where: str = "weights") -> Weights | None:
    """Sampling weights from what a user gives: None, a :class:`Weights`, the name of the
    student-weight column, or a mapping with the keys of a ``[weights]`` table."""
    if value is None or isinstance(value, Weights):
        return value
    if isinstance(value, str):
        return Weights(within=value)
    if isinstance(value, Mapping):
        unknown = sorted(set(value) - WEIGHT_KEYS)
        if unknown:
            raise SpecError(
                f"{where}: unknown key(s) {unknown}; valid keys are {sorted(WEIGHT_KEYS)}."
            )
        return Weights(**dict(value))
    raise SpecError(
        f"{where} must be a column name or a table of {sorted(WEIGHT_KEYS)}, got "
        f"{type_name(value)} {value!r}."
    )


def check_weights(
    weights: Weights | None,
    cluster: str | None,
    two_level: bool,
    used: tuple[str, ...],
) -> None:
    """Refuse weights a model cannot use, naming the setting and the fix.

    Parameters
    ----------
    weights : Weights or None
    cluster : str or None
        The model's cluster column.
    two_level : bool
        Whether the model integrates over schools
        (:attr:`bayesmix.model.spec.Spec.integrates_schools`).
    used : tuple of str
        The model's other columns (outcome, covariates, cluster).
    """
    if weights is None:
        return
    for column in weights.columns:
        if column in used:
            raise SpecError(
                f"weight column {column!r} is also a column of the model; sampling weights "
                "are a column of their own."
            )
    if weights.between is not None and cluster is None:
        raise SpecError(
            f"school weights (between = {weights.between!r}) need a cluster column: set "
            'cluster = "school" (or your level-2 identifier).'
        )
    if weights.scaling in ("cluster", "ecluster") and not two_level:
        raise SpecError(
            f"weights scaling {weights.scaling!r} scales the student weights within each "
            "school, which only a model with random effects or level-2 classes uses; use "
            "scaling 'sample' or 'unscaled'."
        )
    if weights.scaling == "sample" and two_level:
        raise SpecError(
            "weights scaling 'sample' is for single-level models; a two-level model scales "
            "its student weights within schools: use 'cluster' (the default), 'ecluster' or "
            "'unscaled'."
        )


def within_scaling(weights: Weights, two_level: bool) -> str:
    """The scaling of the student weights, its default resolved."""
    if weights.scaling is not None:
        return weights.scaling
    return "cluster" if two_level else "sample"
