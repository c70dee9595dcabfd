"""Choosing the number of classes: fit K = 1, 2, ... until BIC stops improving, or until
a test of K against K + 1 classes (LMR or bootstrap LRT) no longer rejects.

Also the starting values that carry one model's estimates into a larger one
(model B's into model C with level-2 classes), as Mplus users do with
``SVALUES``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from bayesmix.analysis.compare import compare
from bayesmix.analysis.enumeration import ClassTests, add_test_columns, class_tests
from bayesmix.data.design import DataLike, build_design
from bayesmix.errors import EstimationError
from bayesmix.ml.fit import fit_ml
from bayesmix.ml.starts import split_class_start
from bayesmix.model.spec import Spec
from bayesmix.progress import Progress
from bayesmix.results.ml import MLResult
from bayesmix.validate import check_count, check_seed


@dataclass(frozen=True, eq=False)
class ClassSelection:
    """Fits of one spec at K = 1, 2, ... and the paper's Table 2 for them.

    Attributes
    ----------
    fits : list of MLResult
        In the order fitted.
    table : DataFrame
        :func:`bayesmix.analysis.compare` of the fits, with the p-value
        column of the test when ``criterion`` is one.
    best : MLResult
        The fit chosen: the smallest BIC, or the smallest K whose test
        against K + 1 does not reject.
    stopped_early : bool
        Whether the search stopped before ``max_classes`` (BIC got worse, or
        the test stopped rejecting).
    criterion : {"bic", "lmr", "blrt"}
        How ``best`` was chosen.
    tests : dict
        Position in ``fits`` -> :class:`~bayesmix.analysis.enumeration.ClassTests`
        of that fit against the one before it (empty for ``"bic"``).
    """

    fits: list[MLResult]
    table: pd.DataFrame
    best: MLResult
    stopped_early: bool
    criterion: str = "bic"
    tests: dict[int, ClassTests] | None = None

    def __str__(self) -> str:
        from bayesmix.analysis.compare import format_table

        reason = {
            "bic": ("smallest BIC", "BIC got worse"),
            "lmr": ("adjusted LMR test", "the test did not reject"),
            "blrt": ("bootstrap LRT", "the test did not reject"),
        }[self.criterion]
        stop = f" (stopped: {reason[1]})" if self.stopped_early else ""
        return (
            f"{format_table(self.table)}\n"
            f"{reason[0]}: {self.best.spec.name} with K = {self.best.spec.classes}{stop}"
        )


def select_classes(
    spec: Spec,
    data: DataLike,
    *,
    max_classes: int = 4,
    min_classes: int = 1,
    starts: int = 20,
    random_seed: int | None = None,
    progress: bool = False,
    warm_starts: bool = True,
    criterion: Literal["bic", "lmr", "blrt"] = "bic",
    alpha: float = 0.05,
    bootstraps: int = 99,
    blrt_options: Mapping[str, Any] | None = None,
    **fit_kwargs: Any,
) -> ClassSelection:
    """Fit ``spec`` with K = min_classes, ..., max_classes and stop when BIC gets worse,
    or when a test of K - 1 against K classes stops rejecting.

    Parameters
    ----------
    spec : Spec
        The model; its number of classes is replaced by each K
        (:meth:`Spec.with_classes`).
    data : DataFrame, str or Path
    max_classes, min_classes : int
        Range of K.
    starts : int
        Random starts per K.
    random_seed : int, optional
        Seed of the starts (the same for every K).
    progress : bool
        Print which K is being fitted, and the starts' progress.
    warm_starts : bool
        Give each K, besides its random starts, one start from the K - 1
        solution with its largest class split in two
        (:func:`bayesmix.ml.starts.split_class_start`). The random starts stay
        those of a fit without it; with quadrature it reaches the final
        stage, as one more start, only when its initial stage ranks it among
        the random starts chosen.
    criterion : {"bic", "lmr", "blrt"}
        ``"bic"``: stop when BIC gets worse and choose the smallest BIC.
        ``"lmr"`` and ``"blrt"``: after fitting K, test K - 1 against K by the
        adjusted Lo-Mendell-Rubin test (:func:`bayesmix.lmr`) or the
        bootstrap LRT (:func:`bayesmix.blrt`); choose the smallest K - 1 whose
        test does not reject at ``alpha`` (``max_classes`` when every test
        rejects).
    alpha : float
        Level of the tests.
    bootstraps : int
        B of the bootstrap LRT (with B + 1 a multiple of 1/alpha for an exact
        level).
    blrt_options : mapping, optional
        Passed to :func:`bayesmix.blrt` (``random_seed``, ``starts``,
        ``workers``, ``client``, ``progress``).
    **fit_kwargs
        Passed to :func:`bayesmix.fit_ml`.

    Returns
    -------
    ClassSelection
    """
    for label, value in (("min_classes", min_classes), ("max_classes", max_classes)):
        check_count(value, label)
    if max_classes < min_classes:
        raise EstimationError(
            f"max_classes ({max_classes}) is smaller than min_classes ({min_classes})."
        )
    random_seed = check_seed(random_seed)
    if criterion not in ("bic", "lmr", "blrt"):
        raise EstimationError(f"criterion must be 'bic', 'lmr' or 'blrt', got {criterion!r}.")
    if not 0 < alpha < 1:
        raise EstimationError(f"alpha must lie between 0 and 1, got {alpha!r}.")
    fits: list[MLResult] = []
    tests: dict[int, ClassTests] = {}
    stopped = held = False
    bar = Progress(max_classes - min_classes + 1, "class selection", enabled=progress)
    for K in range(min_classes, max_classes + 1):
        fit = _fit_k(spec, data, K, fits, starts, random_seed, progress, warm_starts, fit_kwargs)
        fits.append(fit)
        bar.update(f"K = {K}: logL {fit.loglik:.3f}, BIC {fit.bic:.2f}")
        if len(fits) < 2:
            continue
        if criterion == "bic":
            if fit.bic > fits[-2].bic:
                stopped = K < max_classes
                break
            continue
        found = class_tests(
            fits[-2],
            fit,
            lmr=criterion == "lmr",
            blrt=bootstraps if criterion == "blrt" else 0,
            blrt_options=blrt_options,
        )
        tests[len(fits) - 1] = found
        if _p_value(found) > alpha:
            # K - 1 classes hold against K
            held, stopped = True, K < max_classes
            break
    bar.close()
    table = compare(fits)
    if criterion == "bic":
        best = min(fits, key=lambda f: f.bic)
    else:
        add_test_columns(table, tests, lmr=criterion == "lmr", blrt=criterion == "blrt")
        best = fits[-2] if held else fits[-1]
    return ClassSelection(
        fits=fits,
        table=table,
        best=best,
        stopped_early=stopped,
        criterion=criterion,
        tests=tests,
    )


def _p_value(tests: ClassTests) -> float:
    """The deciding p-value: the adjusted LMR test's (as Mplus users read TECH11), or the
    bootstrap LRT's."""
    if tests.lmr is not None:
        return tests.lmr.adjusted_p_value
    if tests.blrt is None:
        raise AssertionError("class_tests ran no test")
    return tests.blrt.p_value


def _fit_k(
    spec: Spec,
    data: DataLike,
    K: int,
    fits: list[MLResult],
    starts: int,
    random_seed: int,
    progress: bool,
    warm_starts: bool,
    fit_kwargs: dict[str, Any],
) -> MLResult:
    """The fit with K classes, with a split-class start from the K - 1 fit when asked."""
    spec_k = spec.with_classes(K)
    extra = []
    if warm_starts and fits and fits[-1].spec.classes == K - 1:
        design = build_design(spec_k, data, missing=fit_kwargs.get("missing", "error"))
        # its own stream, so that the random starts are those of a fit without it
        rng = np.random.default_rng([K] if random_seed is None else [random_seed, K])
        extra = [split_class_start(fits[-1], design, rng)]
    return fit_ml(
        spec_k,
        data,
        starts=starts,
        random_seed=random_seed,
        progress=progress,
        extra_starts=extra,
        **fit_kwargs,
    )
