"""scale_hsb_A2_ml: model A (K = 2) on HSB with each covariate rescaled or shifted.

Target (reliability issue): every covariate of model A, at level 1 (female, ses) and level
2 (pracad, catholic, meanses), multiplied by 1e-6, 1e-3, 1e3 and 1e6, and separately
shifted by +5e4: the ML fit converges, reproduces the unscaled log-likelihood to 1e-6
relative, and its estimates and standard errors map back to the unscaled ones within
1e-4 x max(|estimate|, SE), up to a permutation of the classes. The expected values come
from tests/support/scale_check.py (least squares between the two designs, not bayesmix's map).
"""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1]))

from _common import emit

import bayesmix as bm
from tests.support.scale_check import TRANSFORMS, expected, mismatch, transformed

COVARIATES = ("female", "ses", "pracad", "catholic", "meanses")


def main() -> None:
    spec = bm.load_spec(Path(__file__).parents[1] / "models" / "hsb_A.toml", classes=2)
    data = bm.datasets.load_hsb()
    t0 = time.perf_counter()
    base = bm.fit_ml(spec, data, starts=20, random_seed=1)
    emit(
        "scale_hsb_A2_ml_base",
        loglik=round(base.loglik, 3),
        converged=base.converged,
        wall_s=round(time.perf_counter() - t0, 1),
    )
    worst, failures = 0.0, []
    for column in COVARIATES:
        for transform in TRANSFORMS:
            new_data = transformed(data, column, transform)
            t0 = time.perf_counter()
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                fit = bm.fit_ml(spec, new_data, starts=20, random_seed=1)
            wall = time.perf_counter() - t0
            est, se, _ = expected(base, new_data)
            gap = mismatch(fit, est, se)
            rel = abs(fit.loglik - base.loglik) / abs(base.loglik)
            met = fit.converged and rel <= 1e-6 and gap <= 1e-4
            worst = max(worst, gap)
            if not met:
                failures.append(f"{column} {transform}")
            emit(
                "scale_hsb_A2_ml",
                covariate=column,
                transform=transform,
                loglik=round(fit.loglik, 4),
                loglik_rel_diff=float(f"{rel:.2e}"),
                max_mismatch=float(f"{gap:.2e}"),
                converged=fit.converged,
                warnings=[str(w.message)[:80] for w in caught],
                wall_s=round(wall, 1),
                met=met,
            )
    emit(
        "scale_hsb_A2_ml_summary",
        cases=len(COVARIATES) * len(TRANSFORMS),
        worst_mismatch=float(f"{worst:.2e}"),
        failures=failures,
        target="converged, logL rel 1e-6, estimates and SEs within 1e-4 x max(|est|, SE)",
        met=not failures,
    )


if __name__ == "__main__":
    main()
