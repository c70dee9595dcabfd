"""Figures and tables both result types report alike: information criteria, entropy, classes.

Kept apart from the result classes so that they are written once and read
the same for a maximum-likelihood and a NUTS fit.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from bayesmix.diagnostics import Diagnostic
from bayesmix.model.params import between_label, class_label
from bayesmix.results.rowless import ClassSummary


def information_criteria(loglik: float, n_params: int, n_obs: int) -> dict[str, float]:
    """AIC, BIC (paper eq 33) and sample-size adjusted BIC (n* = (n + 2) / 24)."""
    return {
        "aic": -2 * loglik + 2 * n_params,
        "bic": -2 * loglik + n_params * math.log(n_obs),
        "sabic": -2 * loglik + n_params * math.log((n_obs + 2) / 24),
    }


def relative_entropy(post: np.ndarray) -> float:
    """Mplus relative entropy of posterior class probabilities (1 = perfect separation).

    ``1 - sum_ic(-p_ic log p_ic) / (n log K)``; NaN for one class.
    """
    if isinstance(post, ClassSummary):
        return post.entropy
    n, K = post.shape
    if K < 2:
        return float("nan")
    p = np.clip(post, 1e-300, 1.0)
    return float(1.0 - np.sum(-p * np.log(p)) / (n * math.log(K)))


def json_float(value: float | None) -> float | None:
    """A float for JSON: None for a missing or non-finite value."""
    return None if value is None or not math.isfinite(value) else float(value)


def proportions(post: Any) -> list[float] | None:
    """Mean class probabilities as plain floats (None for no probabilities)."""
    return None if post is None else [float(v) for v in post.mean(axis=0)]


def clusters_text(design: Any) -> str:
    """``"   clusters J"`` for two-level data, empty for single-level data."""
    return "" if design.n_clusters is None else f"   clusters {design.n_clusters}"


def class_table(post: Any, label: Callable[[int], str] = class_label) -> pd.DataFrame:
    """Proportions and modal counts of posterior class probabilities (level 1 or 2)."""
    K = post.shape[1]
    if isinstance(post, ClassSummary):
        return pd.DataFrame(
            {"proportion": post.mean(axis=0), "modal_count": post.modal_counts},
            index=[label(c) for c in range(K)],
        )
    modal = np.bincount(post.argmax(axis=1), minlength=K)
    return pd.DataFrame(
        {"proportion": post.mean(axis=0), "modal_count": modal},
        index=[label(c) for c in range(K)],
    )


def class_lines(spec: Any, classes: pd.DataFrame, between: Any) -> list[str]:
    """The class blocks of a summary: level-1 classes of a mixture, level-2 classes if any."""
    lines: list[str] = []
    if spec.classes > 1:
        lines += [
            "",
            "Classes (posterior proportions, modal assignment):",
            classes.to_string(float_format=lambda v: f"{v:.4f}"),
        ]
    if between is not None:
        lines += [
            "",
            "Level-2 classes (posterior proportions of schools, modal assignment):",
            class_table(between, between_label).to_string(float_format=lambda v: f"{v:.4f}"),
        ]
    return lines


def diagnostic_lines(diagnostics: tuple[Diagnostic, ...]) -> list[str]:
    """The closing block of a summary: each problem found, or none."""
    if diagnostics:
        return ["Diagnostics:", *(f"  ! {d}" for d in diagnostics)]
    return ["Diagnostics: none"]
