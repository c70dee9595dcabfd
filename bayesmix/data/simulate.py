"""Simulate data from a spec at given parameter values."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from bayesmix.data.checks import text_categories
from bayesmix.data.covariates import Generator, drawn_covariates, given_covariates, is_number
from bayesmix.data.design import Design, Matrices, design_matrices
from bayesmix.data.terms import code_terms
from bayesmix.density.primitives import log_softmax_ref
from bayesmix.errors import DataError, SpecError, type_name
from bayesmix.model.formula import is_name, term_parts
from bayesmix.model.params import Layout, Params, layout
from bayesmix.model.spec import Spec
from bayesmix.validate import check_count, check_seed


def _count(name: str, value: object) -> int | None:
    """A size argument as an int: None stays None, anything but a positive integer is refused."""
    if value is None:
        return None
    return check_count(value, name, error=DataError)


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
        if not is_number(value):
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
        are drawn once per cluster. Formula terms coded on data
        (categorical columns, transforms such as ``center(x)``) are coded on
        a covariates DataFrame, as :func:`bayesmix.fit_ml` codes them on the
        data (``params`` then name the coded columns, e.g.
        ``C(sector)[T.private]``); generators draw only numeric columns, so
        such terms need the DataFrame.
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
    written = spec
    if isinstance(covariates, pd.DataFrame):
        spec, covariates = _code_covariates(spec, covariates)
    elif _coded_terms(spec):
        raise SpecError(
            f"model {spec.name!r} has terms coded on data "
            f"({', '.join(map(repr, _coded_terms(spec)))}): categorical columns and "
            "transforms are coded on the covariates, which simulate cannot draw for them; "
            "pass covariates as a DataFrame with the columns "
            f"{[c for c in spec.columns if c != spec.outcome]}."
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
            f"bayesmix.model.params.param_names) or a Params, got {type_name(params)}."
        )

    if not isinstance(covariates, pd.DataFrame):
        _check_size(spec, n, clusters, cluster_size)
    rng = np.random.default_rng(random_seed)
    names = [c for c in spec.columns if c not in (spec.outcome, spec.cluster)]
    if isinstance(covariates, pd.DataFrame):
        frame = given_covariates(spec, covariates, names, n, clusters, cluster_size)
    else:
        frame = drawn_covariates(
            spec, dict(covariates or {}), names, n, clusters, cluster_size, rng
        )
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
    codes, m = _matrices(spec, frame, names, levels)
    y, cls, between = _draw_outcome(spec, m, codes, structured, rng)
    out = frame.copy()
    if written is not spec:
        # the data hold the columns as the model file names them, to be fitted again
        out = out.drop(columns=[c for c in spec.derived if c not in written.derived])
        for col in written.columns:
            if col not in out.columns and col != written.outcome:
                out[col] = covariates[col].to_numpy()
    out[spec.outcome] = y
    out["C"] = cls + 1
    if spec.between_classes > 1:
        out["D"] = between + 1
    return out


def _coded_terms(spec: Spec) -> list[str]:
    """Terms coded on data (categorical columns, transforms) rather than read as columns."""
    fields = (spec.terms, spec.membership, spec.residual_covariates, spec.between_membership)
    terms = [t for field in fields for t in field] + [w for _, ws in spec.level2 for w in ws]
    return [
        t for t in terms if any(not is_name(p) and p not in spec.derived for p in term_parts(t))
    ]


def _code_covariates(spec: Spec, covariates: pd.DataFrame) -> tuple[Spec, pd.DataFrame]:
    """The spec coded on the covariates, which gain the derived columns; unchanged where
    nothing is coded (a missing column is left for the covariates' checks to name)."""
    if any(c not in covariates.columns for c in spec.columns if c != spec.outcome):
        return spec, covariates
    if not _coded_terms(spec) and not text_categories(covariates, spec):
        return spec, covariates
    covariates = covariates.reset_index(drop=True)
    coded = code_terms(spec, covariates)
    return coded.spec, pd.concat([covariates, coded.columns], axis=1)


def simulate_outcome(design: Design, params: Params, rng: np.random.Generator) -> np.ndarray:
    """Draw a new outcome for the rows of a built design, its covariates and clusters kept.

    Unlike :func:`simulate`, the design's own matrices are used, with the
    covariates centred as the model's ``centre`` says, so that parameters
    estimated on the design (a fit's :attr:`~bayesmix.MLResult.structured`)
    generate data from the fitted model: the parametric bootstrap of
    :func:`bayesmix.blrt`.

    Parameters
    ----------
    design : Design
        The rows (:attr:`MLResult.design <bayesmix.MLResult.design>`), in its order.
    params : Params
        Structured parameters of ``design.spec`` in the design's units.
    rng : numpy.random.Generator
        The source of the school effects, classes and residuals.

    Returns
    -------
    ndarray, shape (n,)
        The outcome, one value per row of ``design.frame``.
    """
    arrays = _structured_arrays(design.spec, params)
    _check_shapes(design.spec, design.layout, arrays)
    return _draw_outcome(design.spec, design, design.cluster, params, rng)[0]


def _matrices(
    spec: Spec, frame: pd.DataFrame, names: list[str], levels: tuple[Any, ...]
) -> tuple[np.ndarray, Matrices]:
    """The cluster index of each row and the design matrices of the covariates."""
    codes = np.zeros(len(frame), dtype=int)
    first = None
    cluster_ids = None
    if spec.cluster is not None:
        codes, uniques = pd.factorize(frame[spec.cluster], sort=True)
        first = np.unique(codes, return_index=True)[1]
        cluster_ids = np.asarray(uniques)
    # the outcome does not exist yet; its placeholder only fills Matrices.y
    numeric = frame[names].astype(float).assign(**{spec.outcome: 0.0})
    return codes, design_matrices(spec, numeric, levels, first, cluster_ids)


def _draw_outcome(
    spec: Spec,
    m: Matrices | Design,
    codes: np.ndarray,
    structured: Params,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """School effects, then classes, then the outcome: ``(y, class, level-2 class)`` per row.

    The classes are numbered from 0. The draws come from ``rng`` in a fixed order
    (school effects, classes, level-2 classes, residuals), so a seed fixes the data.
    """
    size = len(codes)
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
    prob = np.exp(log_softmax_ref(eta, np))
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
    return mu + sigma * rng.standard_normal(size), cls, between


def _draw_between(
    spec: Spec, W: np.ndarray, codes: np.ndarray, params: Params, rng: np.random.Generator
) -> np.ndarray:
    """Level-2 class of each row's school, drawn from the logit of eq 32.

    ``W`` holds one row per cluster, in the order of the cluster index ``codes``.
    """
    eta = W @ np.asarray(params.delta, dtype=float).T
    _refuse_non_finite(eta, "level-2 class logit", "cluster")
    prob = np.exp(log_softmax_ref(eta, np))
    d = (rng.random(len(W))[:, None] > np.cumsum(prob, axis=1)).sum(axis=1)
    return np.minimum(d, spec.between_classes - 1)[codes]
