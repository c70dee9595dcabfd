"""Shared helpers of the benchmark scripts: one JSON line per case on stdout."""

from __future__ import annotations

import json
import os
import platform
import sys
from typing import Any


def emit(case: str, **fields: Any) -> None:
    """Print one benchmark record as a JSON line."""
    record = {
        "case": case,
        **fields,
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
    }
    sys.stdout.write(json.dumps(record) + "\n")
    sys.stdout.flush()


def emit_bayes(case: str, fit: Any, **fields: Any) -> None:
    """Print the standard record of a NUTS fit: ESS per second, timings, diagnostics."""
    t = fit.timings
    st = fit.settings
    emit(
        case,
        **fields,
        chains=st["chains"],
        draws=st["draws"],
        tune=st["tune"],
        ess_bulk_min=round(fit.ess_bulk_min, 1),
        min_ess_per_s_sampling=round(fit.ess_bulk_min / t["sampling_s"], 2),
        min_ess_per_s_total=round(fit.ess_bulk_min / t["elapsed_s"], 2),
        sampling_s=round(t["sampling_s"], 2),
        compile_s=round(t["compile_s"], 2),
        elapsed_s=round(t["elapsed_s"], 2),
        rhat_max=round(fit.rhat_max, 4),
        divergences=fit.divergences,
    )
