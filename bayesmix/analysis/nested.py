"""The one check of the two fits that a test of K - 1 against K classes compares.

:func:`bayesmix.blrt` and :func:`bayesmix.analysis.lmr.lmr` both call
:func:`check_class_pair` before any work, so that what the tests accept is
decided in one place.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from bayesmix.errors import EstimationError
from bayesmix.results.interface import FitResult


def check_class_pair(smaller: FitResult, larger: FitResult, test: str, *, adjacent: bool) -> None:
    """Refuse two fits that are not one model with fewer and more classes on the same data.

    Parameters
    ----------
    smaller, larger : FitResult
        The fits with fewer and with more latent classes.
    test : str
        The test's name, for messages.
    adjacent : bool
        Whether the larger fit must have exactly one class more.

    Raises
    ------
    EstimationError
        When either fit carries posterior draws (the tests need maximum
        likelihood fits), the fits use different rows or outcomes, the larger
        does not have more classes, or the two are not the same model apart
        from its classes (``larger.spec.with_classes(K - 1)``).

    Notes
    -----
    This is the place for every condition on the pair. Fits with sampling
    weights are refused: a parametric bootstrap draws data from the fitted
    model, which has no sampling design, and the Vuong-Lo-Mendell-Rubin
    reference distribution assumes independent, equally weighted units.
    """
    for label, fit in (("smaller", smaller), ("larger", larger)):
        if fit.spec.weights is not None:
            raise EstimationError(
                f"{test} is not defined for fits with sampling weights, and {label} "
                f"({fit.spec.name!r}) has them ({', '.join(fit.spec.weights.columns)}); "
                "compare weighted fits by BIC or by bayesmix.lrt's scaled difference test "
                "of nested models."
            )
        if fit.has_draws:
            raise EstimationError(
                f"{test} compares maximum-likelihood fits; {label} ({fit.spec.name!r}) has "
                "posterior draws. Fit both models with bayesmix.fit_ml."
            )
    k_small, k_large = smaller.spec.classes, larger.spec.classes
    wanted = k_small + 1 if adjacent else None
    if k_large <= k_small or (wanted is not None and k_large != wanted):
        need = f"{wanted} classes" if wanted is not None else f"more than {k_small} classes"
        raise EstimationError(
            f"{test} tests {k_small} classes against {need}, but larger has {k_large}; "
            "pass the fit with fewer classes first."
        )
    same_rows = smaller.n_obs == larger.n_obs and np.array_equal(smaller.design.y, larger.design.y)
    if not same_rows:
        raise EstimationError(
            f"{test} needs both fits on the same data: smaller has {smaller.n_obs} rows and "
            f"larger {larger.n_obs}, or their outcomes differ. Fit both to the same data "
            "(with the same missing-value handling)."
        )
    reduced = larger.spec.with_classes(k_small)
    named = dataclasses.replace(
        reduced, name=smaller.spec.name, description=smaller.spec.description
    )
    if named != smaller.spec:
        raise EstimationError(
            f"{test} compares one model with {k_small} and {k_large} classes, but "
            f"{smaller.spec.name!r} is not {larger.spec.name!r} with {k_small} classes. Fit "
            f"the smaller model as larger.spec.with_classes({k_small}), as "
            "bayesmix.select_classes does."
        )
