"""Choosing the number of classes: fit K = 1, 2, ... until BIC stops improving.

Also the starting values that carry one model's estimates into a larger one
(model B's into model C with level-2 classes), as Mplus users do with
``SVALUES``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from bayesmix.analysis.compare import compare
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
        :func:`bayesmix.analysis.compare` of the fits.
    best : MLResult
        The fit with the smallest BIC.
    stopped_early : bool
        Whether the search stopped before ``max_classes`` because BIC got
        worse.
    """

    fits: list[MLResult]
    table: pd.DataFrame
    best: MLResult
    stopped_early: bool

    def __str__(self) -> str:
        from bayesmix.analysis.compare import format_table

        stop = " (stopped: BIC got worse)" if self.stopped_early else ""
        return (
            f"{format_table(self.table)}\n"
            f"smallest BIC: {self.best.spec.name} with K = {self.best.spec.classes}{stop}"
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
    **fit_kwargs: Any,
) -> ClassSelection:
    """Fit ``spec`` with K = min_classes, ..., max_classes and stop when BIC gets worse.

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
    fits: list[MLResult] = []
    stopped = False
    bar = Progress(max_classes - min_classes + 1, "class selection", enabled=progress)
    for K in range(min_classes, max_classes + 1):
        spec_k = spec.with_classes(K)
        extra = []
        if warm_starts and fits and fits[-1].spec.classes == K - 1:
            design = build_design(spec_k, data, missing=fit_kwargs.get("missing", "error"))
            # its own stream, so that the random starts are those of a fit without it
            rng = np.random.default_rng([K] if random_seed is None else [random_seed, K])
            extra = [split_class_start(fits[-1], design, rng)]
        fit = fit_ml(
            spec_k,
            data,
            starts=starts,
            random_seed=random_seed,
            progress=progress,
            extra_starts=extra,
            **fit_kwargs,
        )
        fits.append(fit)
        bar.update(f"K = {K}: logL {fit.loglik:.3f}, BIC {fit.bic:.2f}")
        if len(fits) > 1 and fit.bic > fits[-2].bic:
            stopped = K < max_classes
            break
    bar.close()
    best = min(fits, key=lambda f: f.bic)
    return ClassSelection(fits=fits, table=compare(fits), best=best, stopped_early=stopped)
