"""Diagnostics as records, made where a problem is found, and their named thresholds.

A :class:`Diagnostic` carries what was found (``code``), the message a user
reads, and the warning class chosen where the problem was found. Results
hold their diagnostics as records; summaries print ``message`` and code that
reacts to a problem tests ``code`` or ``category``, never the message text.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from bayesmix import errors

RHAT_MAX = 1.01
"""Largest split R-hat of a converged chain set (Vehtari et al. 2021)."""

ESS_MIN_PER_CHAIN = 100
"""Smallest bulk and tail ESS per chain for stable posterior summaries (Vehtari et al. 2021)."""

EMPTY_CLASS_SHARE = 0.005
"""A class holding fewer than this share of the units (and under one unit) is reported as empty."""


@dataclass(frozen=True)
class Diagnostic:
    """One problem found in a fit.

    Attributes
    ----------
    code : str
        What was found, e.g. ``"rhat"``, ``"ess"``, ``"divergences"``,
        ``"label_switching"``, ``"empty_class"``, ``"boundary"``,
        ``"not_converged"``, ``"interrupted"``, ``"pareto_k"``.
    message : str
        The sentence a user reads: what was found and what to do.
    category : type[Warning]
        The warning class it is issued as, chosen where it was found.
    """

    code: str
    message: str
    category: type[Warning] = errors.BayesmixWarning

    def __str__(self) -> str:
        return self.message

    def warn(self, stacklevel: int = 2) -> None:
        """Issue the diagnostic as a warning of its category."""
        warnings.warn(self.message, self.category, stacklevel=stacklevel + 1)

    def to_dict(self) -> dict[str, str]:
        """The record as JSON-ready text: code, message and the category's name."""
        return {"code": self.code, "message": self.message, "category": self.category.__name__}

    @classmethod
    def from_dict(cls, record: dict[str, str]) -> Diagnostic:
        """A record written by :meth:`to_dict`; an unknown category reads as ``BayesmixWarning``."""
        category = getattr(errors, record.get("category", ""), errors.BayesmixWarning)
        if not (isinstance(category, type) and issubclass(category, Warning)):
            category = errors.BayesmixWarning
        return cls(code=record["code"], message=record["message"], category=category)


def empty_classes(
    counts: np.ndarray, n: int, level: str = "class", where: str = ""
) -> list[Diagnostic]:
    """Classes holding under :data:`EMPTY_CLASS_SHARE` of the units, or under one unit.

    Parameters
    ----------
    counts : ndarray
        Estimated units per class (sums of the units' class probabilities).
    n : int
        Units in all.
    level : str
        ``"class"`` or ``"school class"``, for the message.
    where : str
        Where the counts come from, e.g. ``" in the posterior"``, for the message.

    Returns
    -------
    list of Diagnostic
        One ``"empty_class"`` record (an :class:`~bayesmix.errors.EmptyClassWarning`)
        per such class.
    """
    found = []
    for c, count in enumerate(counts):
        if count < max(1.0, EMPTY_CLASS_SHARE * n):
            found.append(
                Diagnostic(
                    "empty_class",
                    f"{level} {c + 1} holds {count:.2f} of {n} units ({100 * count / n:.2f}%)"
                    f"{where}: an (almost) empty class, or one holding outliers: fit fewer "
                    f"{level}es or check those units.",
                    errors.EmptyClassWarning,
                )
            )
    return found
