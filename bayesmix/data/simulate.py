"""Simulate data from a spec at given parameter values."""

from __future__ import annotations

import numbers
import os
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from bayesmix.data.checks import check_school_level
from bayesmix.data.design import design_matrices
from bayesmix.errors import DataError, SpecError
from bayesmix.model.formula import INTERCEPT
from bayesmix.model.params import Layout, Params, layout
from bayesmix.model.spec import Spec
from bayesmix.validate import check_seed

Generator = str | tuple[Any, ...] | Callable[[np.random.Generator, int], np.ndarray]

_GENERATORS = "'normal', ('normal', mean, sd), 'bernoulli', ('bernoulli', p) or a callable"


def _is_number(value: object) -> bool:
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
        if not _is_number(mean) or not np.isfinite(mean):
            raise SpecError(f"{prefix}: the mean must be a finite number, got {mean!r}.")
        if not _is_number(sd) or not np.isfinite(sd) or sd < 0:
            raise SpecError(f"{prefix}: the sd must be a finite number >= 0, got {sd!r}.")
        return rng.normal(mean, sd, size=n)
    if kind == "bernoulli":
        if len(args) > 1:
            raise SpecError(f"{prefix}: ('bernoulli', p) takes 1 number, got {len(args)}.")
        p = args[0] if args else 0.5
        if not _is_number(p) or not 0 <= p <= 1:
            raise SpecError(f"{prefix}: p must be a number within [0, 1], got {p!r}.")
        return (rng.random(n) < p).astype(float)
    raise SpecError(f"{prefix} must be {_GENERATORS}, got {how!r}.")


def _count(name: str, value: object) -> int | None:
    """A size argument as an int: None stays None, anything but a positive integer is refused."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise DataError(f"{name} must be a positive integer, got {value!r}.")
    return int(value)


def _listing(names: list[str], values: Mapping[str, float]) -> str:
    return ", ".join(f"{n} = {values[n]:g}" for n in names)


def _check_values(spec: Spec, params: Mapping[Any, Any]) -> dict[str, float]:
    """Named parameter values as floats, refused unless finite, with valid variances.

    Residual variances must be > 0 and school variances >= 0 (0 removes that
    school effect); the school residual covariance must be positive definite
    over the effects whose variance is not 0.
    """
    values: dict[str, float] = {}
    for key, value in params.items():
        name = str(key)
        if not _is_number(value):
            raise SpecError(f"parameter {name} has the value {value!r}, which is not a number.")
        values[name] = float(value)
    bad = [n for n, v in values.items() if not np.isfinite(v)]
    if bad:
        listing = ", ".join(f"{n} = {values[n]}" for n in bad)
        verb = "is not a finite number" if len(bad) == 1 else "are not finite numbers"
        what = "parameter" if len(bad) == 1 else "parameters"
        raise SpecError(f"{what} {listing} {verb}; give every parameter a finite value.")
    bad = [n for n, v in values.items() if n.startswith("sigma2") and v <= 0]
    if bad:
        one = len(bad) == 1
        raise SpecError(
            f"residual variance{'' if one else 's'} {_listing(bad, values)} "
            f"{'is' if one else 'are'} not positive; a residual variance must be > 0."
        )
    bad = [n for n, v in values.items() if n.startswith("var(") and v < 0]
    if bad:
        one = len(bad) == 1
        raise SpecError(
            f"school variance{'' if one else 's'} {_listing(bad, values)} "
            f"{'is' if one else 'are'} negative; a variance must be >= 0 (0 removes that "
            "school effect)."
        )
    _check_covariance(spec, values)
    return values


def _check_covariance(spec: Spec, values: Mapping[str, float]) -> None:
    """Refuse a school residual covariance that is not positive definite.

    Effects with variance 0 are left out of the test (they must have
    covariance 0 with the others); names the model lacks are left to the
    check of names.
    """
    effects = spec.random_effects
    if spec.covariance != "unstructured" or len(effects) < 2:
        return
    var_names = [f"var(u_{t})" for t in effects]
    pairs = [
        (i, j, f"cov(u_{effects[i]},u_{effects[j]})")
        for i in range(len(effects))
        for j in range(i + 1, len(effects))
    ]
    if any(n not in values for n in var_names + [p[2] for p in pairs]):
        return
    cov = np.diag([values[n] for n in var_names])
    for i, j, name in pairs:
        cov[i, j] = cov[j, i] = values[name]
    sd = np.sqrt(np.diag(cov))
    beyond = []
    for i, j, name in pairs:
        if cov[i, j] == 0:
            continue
        corr = cov[i, j] / (sd[i] * sd[j]) if sd[i] * sd[j] > 0 else np.copysign(np.inf, cov[i, j])
        # the same tolerance as the eigenvalue test below: |r| = 1 is singular
        if abs(corr) > 1 - 1e-10:
            beyond.append(f"{name} implies the correlation {corr:.3g}")
    kept = sd > 0
    scaled = cov[np.ix_(kept, kept)] / np.outer(sd[kept], sd[kept])
    # on the correlation scale the tolerance does not depend on the variances' units
    if not beyond and (scaled.size == 0 or np.linalg.eigvalsh(scaled).min() > 1e-10):
        return
    head = (
        f"the school residual covariance of {_listing(var_names + [p[2] for p in pairs], values)} "
        f"is not positive definite (smallest eigenvalue {np.linalg.eigvalsh(cov).min():.3g})"
    )
    if beyond:
        raise SpecError(
            f"{head}: {', '.join(beyond)}; give each covariance a correlation within (-1, 1), "
            "i.e. |cov(u_a,u_b)| < sqrt(var(u_a) * var(u_b))."
        )
    raise SpecError(
        f"{head}: each correlation is within (-1, 1) but together they are impossible; make "
        "the covariances smaller in size."
    )


def _structured_arrays(spec: Spec, params: Params) -> dict[str, np.ndarray]:
    """The arrays of ``params`` that simulating ``spec`` uses, as floats, refused unless finite."""
    fields = ["beta", "lsig", "gamma", "chol"]
    if spec.membership_random != "none":
        fields.append("load")
    if spec.between_classes > 1:
        fields.append("delta")
    arrays = {}
    for name in fields:
        value = getattr(params, name)
        try:
            array = np.asarray(value, dtype=float)
        except (TypeError, ValueError):
            raise SpecError(f"Params.{name} must be an array of numbers, got {value!r}.") from None
        bad = ~np.isfinite(array)
        if bad.any():
            where = [int(i) for i in np.argwhere(bad)[0]]
            raise SpecError(
                f"Params.{name} has {int(bad.sum())} non-finite value(s) "
                f"({array[tuple(where)]} at {where}); give every parameter a finite value."
            )
        arrays[name] = array
    return arrays


def _check_shapes(spec: Spec, lay: Layout, arrays: Mapping[str, np.ndarray]) -> None:
    K, L = spec.classes, spec.between_classes
    d, r = len(spec.random_effects), len(spec.random)
    rows = "classes" if L == 1 else "level-2 classes x level-1 classes"
    fixed, member = list(spec.fixed_names), list(spec.membership)
    between, effects = list(spec.between_membership), list(spec.random_effects)
    expected = {
        "beta": ((L * K, len(fixed)), f"rows: {rows}, columns: {fixed}"),
        "lsig": ((K, lay.residual_width), "rows: classes, columns: the residual variance design"),
        "gamma": ((K - 1, len(member)), f"rows: classes but the last, columns: {member}"),
        "chol": ((d, d), f"the Cholesky factor of the covariance of {effects}"),
        "load": ((K - 1, d - r), "rows: classes but the last, columns: membership random effects"),
        "delta": ((L - 1, len(between)), f"rows: level-2 classes but the last, columns: {between}"),
    }
    for name, array in arrays.items():
        shape, meaning = expected[name]
        if array.shape != shape:
            raise SpecError(
                f"Params.{name} has shape {array.shape} but model {spec.name!r} needs {shape} "
                f"({meaning})."
            )


def _physical_memory() -> int | None:
    """Bytes of physical memory, or None where the system does not say."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):
        return None


# bytes per row and column of the simulation's arrays at their peak: the covariates, the
# design matrices built from them, and the outcome's mean, variance and class probabilities
_BYTES_PER_CELL = 8 * 4


def _check_size(spec: Spec, n: int | None, clusters: int | None, cluster_size: int | None) -> None:
    """Refuse a size whose data cannot fit in memory, before drawing any of it."""
    total = _physical_memory()
    if total is None:
        return
    if spec.cluster is None:
        rows, given = n, f"n = {n}"
    elif clusters is not None and cluster_size is not None:
        rows = clusters * cluster_size
        given = f"clusters * cluster_size = {clusters} * {cluster_size} = {rows}"
    else:
        return
    if rows is None:
        return
    need = rows * (len(spec.columns) + 3) * _BYTES_PER_CELL
    if need > total:
        raise DataError(
            f"simulating {given} rows of model {spec.name!r} needs about "
            f"{need / 2**30:.3g} GiB of memory, more than the {total / 2**30:.3g} GiB this "
            "machine has; give a smaller size."
        )


def _check_enough_values(spec: Spec, values: Mapping[Any, Any]) -> None:
    """Refuse too few values for the classes before their parameters are named.

    Every class but the last has a membership intercept (``C#k ~ 1``), and
    every level-2 class but the last one of its own (``D#k ~ 1``); with a
    mistyped number of classes (1e11), naming the model's parameters to
    list the missing ones would exhaust time and memory.
    """
    least = spec.classes - 1 + spec.between_classes - 1
    if least > len(values):
        classes = f"{spec.classes} classes" + (
            f" and {spec.between_classes} level-2 classes" if spec.between_classes > 1 else ""
        )
        raise SpecError(
            f"model {spec.name!r} with {classes} has at least {least} membership intercepts "
            f"('C#1 ~ 1', 'C#2 ~ 1', ...) but only {len(values)} parameter values are given; "
            "use fewer classes, or give every parameter (bayesmix.model.params.param_names lists "
            "them)."
        )


def _named_params(lay: Layout, values: dict[str, float]) -> Params:
    names = lay.names
    missing = [n for n in names if n not in values]
    if missing:
        raise SpecError(f"missing parameter value(s) {missing}; the model has {names}.")
    unknown = [n for n in values if n not in names]
    if unknown:
        raise SpecError(f"unknown parameter name(s) {unknown}; the model has {names}.")
    return lay.from_named(values)


def _school_columns(spec: Spec) -> list[str]:
    """Columns constant within a cluster: level-2 covariates, residual groups, [between] terms."""
    cols = list(spec.level2_covariates)
    if spec.residual_groups:
        cols.append(spec.residual_groups)
    cols += [
        name
        for term in spec.between_membership
        for name in term.split(":")
        if name != INTERCEPT and name not in cols
    ]
    return cols


def _given_frame(
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
        check_school_level(frame, codes, _school_columns(spec), spec.cluster)
    return frame


def _drawn_frame(
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
    school_cols = _school_columns(spec)
    frame = pd.DataFrame({spec.cluster: np.repeat(np.arange(1, clusters + 1), cluster_size)})
    for col in names:
        default = "bernoulli" if col == spec.residual_groups else "normal"
        how = gens.get(col, default)
        if col in school_cols:
            frame[col] = np.repeat(_draw_covariate(col, how, rng, clusters), cluster_size)
        else:
            frame[col] = _draw_covariate(col, how, rng, size)
    return frame


def _refuse_non_finite(values: np.ndarray, what: str, unit: str = "row") -> None:
    """Refuse entries of ``values`` (1-D, or 2-D with one row per ``unit``) that overflowed."""
    bad = ~np.isfinite(values)
    if bad.ndim == 2:
        bad = bad.any(axis=1)
    if bad.any():
        raise SpecError(
            f"the parameter values give a non-finite {what} in {int(bad.sum())} of "
            f"{len(values)} {unit}s (first: {unit} {int(np.argmax(bad))}); they are too large for "
            "the covariates' values: check the parameters' scale against the covariates'."
        )


def simulate(
    spec: Spec,
    params: Mapping[str, float] | Params,
    *,
    n: int | None = None,
    clusters: int | None = None,
    cluster_size: int | None = None,
    covariates: pd.DataFrame | Mapping[str, Generator] | None = None,
    random_seed: int | None = None,
) -> pd.DataFrame:
    """Draw a data set from the model.

    Parameters
    ----------
    spec : Spec
        The model.
    params : mapping or Params
        Parameter values by name (see :func:`bayesmix.model.params.param_names`;
        variances as ``sigma2``, ``var(u_x)``), or structured parameters.
        Every value must be a finite number, residual variances > 0, school
        variances >= 0 (0 removes that school effect), and the school
        residual covariance positive definite over the effects whose
        variance is not 0 (each correlation within (-1, 1)). Structured
        parameters must be finite and shaped as the model's layout.
    n : int, optional
        Number of observations of a single-level model. A two-level model
        takes its size from ``clusters`` and ``cluster_size``, and a
        covariates DataFrame sets the size of either; ``n`` given there
        must agree with it.
    clusters, cluster_size : int, optional
        Number of clusters and observations per cluster of a two-level
        model (both needed unless ``covariates`` is a DataFrame, with which
        they must agree when given). A single-level model refuses them.
    covariates : DataFrame or mapping, optional
        Either the covariate values to use (with the cluster column for
        two-level models; numeric, complete and finite, school-level
        columns constant within clusters), or per-covariate generators:
        ``"normal"`` (mean 0, variance 1, the default), ``("normal", mean,
        sd)``, ``"bernoulli"`` (p = 0.5, the default for
        ``residual_groups``), ``("bernoulli", p)`` or a callable ``f(rng,
        size)``. School-level columns (level-2 covariates, residual groups)
        are drawn once per cluster.
    random_seed : int, optional
        Seed (a non-negative integer); the same seed gives the same data.

    Returns
    -------
    pandas.DataFrame
        The covariates, the cluster column, the outcome and ``C``, the true
        latent class (1..K), and ``D``, the true level-2 class (1..L), with
        level-2 classes.

    Raises
    ------
    SpecError
        For a parameter value that is missing, unknown, not a finite number,
        a variance out of range, a school covariance that is not positive
        definite, structured parameters of the wrong shape, a bad generator,
        or values that make the outcome overflow.
    DataError
        For a size argument that is not a positive integer, sizes missing or
        not applicable to the model or disagreeing with each other, a
        negative seed, or covariates that are not numeric, complete, finite
        and constant within clusters where they should be.
    """
    n = _count("n", n)
    clusters = _count("clusters", clusters)
    cluster_size = _count("cluster_size", cluster_size)
    random_seed = check_seed(random_seed, error=DataError)
    if spec.cluster is None and (clusters is not None or cluster_size is not None):
        raise DataError(
            f"model {spec.name!r} is single-level (no cluster column): it takes n (the number "
            "of observations), not clusters or cluster_size."
        )
    values: dict[str, float] | None = None
    arrays: dict[str, np.ndarray] = {}
    if isinstance(params, Params):
        arrays = _structured_arrays(spec, params)
    elif isinstance(params, Mapping):
        _check_enough_values(spec, params)
        values = _check_values(spec, params)
    else:
        raise SpecError(
            "params must be a mapping of parameter names to values (see "
            f"bayesmix.model.params.param_names) or a Params, got {type(params).__name__}."
        )

    if not isinstance(covariates, pd.DataFrame):
        _check_size(spec, n, clusters, cluster_size)
    rng = np.random.default_rng(random_seed)
    names = [c for c in spec.columns if c not in (spec.outcome, spec.cluster)]
    if isinstance(covariates, pd.DataFrame):
        frame = _given_frame(spec, covariates, names, n, clusters, cluster_size)
    else:
        frame = _drawn_frame(spec, dict(covariates or {}), names, n, clusters, cluster_size, rng)
    levels: tuple = ()
    if spec.residual_groups:
        levels = tuple(
            int(v) if float(v).is_integer() else float(v)
            for v in np.unique(frame[spec.residual_groups])
        )
    lay = layout(spec, levels)
    if values is not None:
        structured = _named_params(lay, values)
    else:
        _check_shapes(spec, lay, arrays)
        structured = params  # type: ignore[assignment]
    size = len(frame)
    codes = np.zeros(size, dtype=int)
    first = None
    cluster_ids = None
    if spec.cluster is not None:
        codes, uniques = pd.factorize(frame[spec.cluster], sort=True)
        first = np.unique(codes, return_index=True)[1]
        cluster_ids = np.asarray(uniques)
    # the outcome does not exist yet; its placeholder only fills Matrices.y
    numeric = frame[names].astype(float).assign(**{spec.outcome: 0.0})
    m = design_matrices(spec, numeric, levels, first, cluster_ids)
    beta = np.asarray(structured.beta, dtype=float)
    gamma = np.asarray(structured.gamma, dtype=float)
    lsig = np.asarray(structured.lsig, dtype=float)
    r = len(spec.random)
    b = np.zeros((size, 0))
    if spec.random_effects:
        chol = np.asarray(structured.chol, dtype=float)
        b = (rng.standard_normal((codes.max() + 1, chol.shape[0])) @ chol.T)[codes]
    eta = m.Z @ gamma.T
    if spec.membership_random != "none":
        eta = eta + b[:, r:] @ np.asarray(structured.load, dtype=float).T
    _refuse_non_finite(eta, "membership logit")
    logits = np.column_stack([eta, np.zeros(size)])
    logits -= logits.max(axis=1, keepdims=True)
    prob = np.exp(logits)
    prob /= prob.sum(axis=1, keepdims=True)
    cls = (rng.random(size)[:, None] > np.cumsum(prob, axis=1)).sum(axis=1)
    cls = np.minimum(cls, spec.classes - 1)
    between = np.zeros(size, dtype=int)
    if spec.between_classes > 1:
        between = _draw_between(spec, m.W, codes, structured, rng)
    mu = np.einsum("ip,ip->i", m.F, beta[between * spec.classes + cls])
    if r:
        mu = mu + np.einsum("ir,ir->i", m.R, b[:, :r])
    sigma = np.exp(0.5 * np.einsum("iv,iv->i", m.V, lsig[cls]))
    _refuse_non_finite(mu, "outcome mean")
    _refuse_non_finite(sigma, "outcome standard deviation")
    out = frame.copy()
    out[spec.outcome] = mu + sigma * rng.standard_normal(size)
    out["C"] = cls + 1
    if spec.between_classes > 1:
        out["D"] = between + 1
    return out


def _draw_between(
    spec: Spec, W: np.ndarray, codes: np.ndarray, params: Params, rng: np.random.Generator
) -> np.ndarray:
    """Level-2 class of each row's school, drawn from the logit of eq 32.

    ``W`` holds one row per cluster, in the order of the cluster index ``codes``.
    """
    eta = W @ np.asarray(params.delta, dtype=float).T
    _refuse_non_finite(eta, "level-2 class logit", "cluster")
    logits = np.column_stack([eta, np.zeros(len(W))])
    prob = np.exp(logits - logits.max(axis=1, keepdims=True))
    prob /= prob.sum(axis=1, keepdims=True)
    d = (rng.random(len(W))[:, None] > np.cumsum(prob, axis=1)).sum(axis=1)
    return np.minimum(d, spec.between_classes - 1)[codes]
