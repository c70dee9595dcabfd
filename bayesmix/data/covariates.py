"""The covariates of a simulated data set: given as a DataFrame, or drawn from generators.

Given covariates are checked as data are (numeric, complete, finite, school-level
columns constant within clusters) and must agree with the size arguments;
drawn ones follow per-column generators, school-level columns once per cluster.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from bayesmix.data.checks import check_school_level, school_columns
from bayesmix.errors import DataError, SpecError
from bayesmix.model.spec import Spec

Generator = str | tuple[Any, ...] | Callable[[np.random.Generator, int], np.ndarray]
"""How to draw one covariate: a name, a (name, parameters...) tuple, or ``f(rng, size)``."""

_GENERATORS = "'normal', ('normal', mean, sd), 'bernoulli', ('bernoulli', p) or a callable"


def is_number(value: object) -> bool:
    """Whether ``value`` is a real number (a bool is not)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _draw_covariate(name: str, how: Generator, rng: np.random.Generator, n: int) -> np.ndarray:
    if callable(how):
        try:
            values = np.asarray(how(rng, n), dtype=float)
        except (TypeError, ValueError):
            raise DataError(
                f"generator for {name!r} returned values that are not numbers; it must "
                f"return {n} floats."
            ) from None
        if values.shape != (n,):
            raise DataError(f"generator for {name!r} returned shape {values.shape}, not ({n},).")
        bad = int((~np.isfinite(values)).sum())
        if bad:
            raise DataError(
                f"generator for {name!r} returned {bad} non-finite value(s) (nan or inf); it "
                "must return finite numbers."
            )
        return values
    parts = (how,) if isinstance(how, str) else how
    if not isinstance(parts, (tuple, list)) or not parts:
        raise SpecError(f"covariate generator for {name!r} must be {_GENERATORS}, got {how!r}.")
    kind, *args = parts
    prefix = f"covariate generator for {name!r}"
    if kind == "normal":
        if len(args) > 2:
            raise SpecError(f"{prefix}: ('normal', mean, sd) takes 2 numbers, got {len(args)}.")
        mean, sd = (args + [0.0, 1.0][len(args) :])[:2]
        if not is_number(mean) or not np.isfinite(mean):
            raise SpecError(f"{prefix}: the mean must be a finite number, got {mean!r}.")
        if not is_number(sd) or not np.isfinite(sd) or sd < 0:
            raise SpecError(f"{prefix}: the sd must be a finite number >= 0, got {sd!r}.")
        return rng.normal(mean, sd, size=n)
    if kind == "bernoulli":
        if len(args) > 1:
            raise SpecError(f"{prefix}: ('bernoulli', p) takes 1 number, got {len(args)}.")
        p = args[0] if args else 0.5
        if not is_number(p) or not 0 <= p <= 1:
            raise SpecError(f"{prefix}: p must be a number within [0, 1], got {p!r}.")
        return (rng.random(n) < p).astype(float)
    raise SpecError(f"{prefix} must be {_GENERATORS}, got {how!r}.")


def given_covariates(
    spec: Spec,
    covariates: pd.DataFrame,
    names: list[str],
    n: int | None,
    clusters: int | None,
    cluster_size: int | None,
) -> pd.DataFrame:
    """The covariates DataFrame's columns, checked, with the size arguments it must agree with."""
    need = names + ([spec.cluster] if spec.cluster else [])
    missing = [c for c in need if c not in covariates.columns]
    if missing:
        raise DataError(
            f"covariates lack column(s) {missing}; they have {list(covariates.columns)}."
        )
    twice = [c for c in need if int((covariates.columns == c).sum()) > 1]
    if twice:
        raise DataError(
            f"covariates have several columns named {twice[0]!r}; rename or drop all but one."
        )
    frame = covariates[need].reset_index(drop=True).copy()
    if len(frame) == 0:
        raise DataError("the covariates DataFrame has no rows; give at least one row.")
    if n is not None and n != len(frame):
        raise DataError(
            f"n={n} disagrees with the covariates DataFrame's {len(frame)} rows; the DataFrame "
            "sets the size: drop n."
        )
    for col in names:
        series = frame[col]
        if pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
            continue
        coerced = pd.to_numeric(series, errors="coerce")
        bad = series[coerced.isna() & series.notna()]
        if len(bad):
            raise DataError(
                f"covariate column {col!r} is not numeric (e.g. value {bad.iloc[0]!r} in row "
                f"{bad.index[0]}); recode it as numbers."
            )
        frame[col] = coerced
    na = frame.isna().sum()
    if na.any():
        per_col = {str(c): int(k) for c, k in na.items() if k}
        raise DataError(
            f"covariates have missing values (per column: {per_col}); drop or impute those rows "
            "before simulating."
        )
    frame[names] = frame[names].astype(float)
    for col in names:
        n_inf = int(np.isinf(frame[col].to_numpy()).sum())
        if n_inf:
            raise DataError(
                f"covariate column {col!r} has {n_inf} infinite value(s); remove or recode them."
            )
    if spec.cluster is not None:
        codes, uniques = pd.factorize(frame[spec.cluster], sort=True)
        if clusters is not None and clusters != len(uniques):
            raise DataError(
                f"clusters={clusters} disagrees with the covariates DataFrame's {len(uniques)} "
                f"clusters of {spec.cluster!r}; the DataFrame sets the size: drop clusters."
            )
        sizes = np.bincount(codes)
        if cluster_size is not None and (sizes != cluster_size).any():
            raise DataError(
                f"cluster_size={cluster_size} disagrees with the covariates DataFrame, whose "
                f"clusters have {sizes.min()} to {sizes.max()} rows; the DataFrame sets the "
                "size: drop cluster_size."
            )
        check_school_level(frame, codes, school_columns(spec), spec.cluster)
    return frame


def drawn_covariates(
    spec: Spec,
    gens: Mapping[str, Generator],
    names: list[str],
    n: int | None,
    clusters: int | None,
    cluster_size: int | None,
    rng: np.random.Generator,
) -> pd.DataFrame:
    """Covariates drawn from their generators, school-level columns once per cluster."""
    unknown = sorted(set(gens) - set(names))
    if unknown:
        raise DataError(f"generators given for {unknown}, which the model does not use.")
    if spec.cluster is None:
        if n is None:
            raise DataError(
                f"model {spec.name!r} is single-level: simulate needs n (the number of "
                "observations) or a covariates DataFrame."
            )
        return pd.DataFrame({c: _draw_covariate(c, gens.get(c, "normal"), rng, n) for c in names})
    if clusters is None or cluster_size is None:
        alone = (
            "; n alone does not say how to split the observations into clusters"
            if n is not None
            else ""
        )
        raise DataError(
            f"model {spec.name!r} is two-level (cluster column {spec.cluster!r}): simulate needs "
            "clusters (the number of clusters) and cluster_size (observations per cluster), or "
            f"a covariates DataFrame with the cluster column{alone}."
        )
    size = clusters * cluster_size
    if n is not None and n != size:
        raise DataError(
            f"n={n} disagrees with clusters * cluster_size = {clusters} * {cluster_size} = "
            f"{size}; a two-level model takes its size from clusters and cluster_size: drop n."
        )
    school_cols = school_columns(spec)
    frame = pd.DataFrame({spec.cluster: np.repeat(np.arange(1, clusters + 1), cluster_size)})
    for col in names:
        default = "bernoulli" if col == spec.residual_groups else "normal"
        how = gens.get(col, default)
        if col in school_cols:
            frame[col] = np.repeat(_draw_covariate(col, how, rng, clusters), cluster_size)
        else:
            frame[col] = _draw_covariate(col, how, rng, size)
    return frame
