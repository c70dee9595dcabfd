"""Simulate data from a spec at given parameter values."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from bayesmix.data import term_column
from bayesmix.errors import DataError, SpecError
from bayesmix.params import Params
from bayesmix.spec import Spec

Generator = str | tuple[Any, ...] | Callable[[np.random.Generator, int], np.ndarray]


def _draw_covariate(name: str, how: Generator, rng: np.random.Generator, n: int) -> np.ndarray:
    if callable(how):
        values = np.asarray(how(rng, n), dtype=float)
        if values.shape != (n,):
            raise DataError(f"generator for {name!r} returned shape {values.shape}, not ({n},).")
        return values
    kind, *args = (how,) if isinstance(how, str) else how
    if kind == "normal":
        mean, sd = (args + [0.0, 1.0][len(args) :])[:2]
        return rng.normal(mean, sd, size=n)
    if kind == "bernoulli":
        p = args[0] if args else 0.5
        return (rng.random(n) < p).astype(float)
    raise SpecError(
        f"covariate generator for {name!r} must be 'normal', ('normal', mean, sd), "
        f"'bernoulli', ('bernoulli', p) or a callable, got {how!r}."
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
        Parameter values by name (see :func:`bayesmix.params.param_names`;
        variances as ``sigma2``, ``var(u_x)``), or structured parameters.
    n : int, optional
        Number of observations of a single-level model.
    clusters, cluster_size : int, optional
        Number of clusters and observations per cluster of a two-level model.
    covariates : DataFrame or mapping, optional
        Either the covariate values to use (with the cluster column for
        two-level models), or per-covariate generators: ``"normal"`` (mean 0,
        variance 1, the default), ``("normal", mean, sd)``, ``"bernoulli"``
        (p = 0.5, the default for ``residual_groups``), ``("bernoulli", p)``
        or a callable ``f(rng, size)``. School-level columns (level-2
        covariates, residual groups) are drawn once per cluster.
    random_seed : int, optional
        Seed; the same seed gives the same data.

    Returns
    -------
    pandas.DataFrame
        The covariates, the cluster column, the outcome and ``C``, the true
        latent class (1..K), and ``D``, the true level-2 class (1..L), with
        level-2 classes.
    """
    from bayesmix.params import layout

    rng = np.random.default_rng(random_seed)
    school_cols = list(spec.level2_covariates)
    if spec.residual_groups:
        school_cols.append(spec.residual_groups)
    school_cols += [
        name
        for term in spec.between_membership
        for name in term.split(":")
        if name != "1" and name not in school_cols
    ]
    names = [c for c in spec.columns if c not in (spec.outcome, spec.cluster)]
    if isinstance(covariates, pd.DataFrame):
        need = names + ([spec.cluster] if spec.cluster else [])
        missing = [c for c in need if c not in covariates.columns]
        if missing:
            raise DataError(
                f"covariates lack column(s) {missing}; they have {list(covariates.columns)}."
            )
        frame = covariates[need].reset_index(drop=True).copy()
        frame[names] = frame[names].astype(float)
    else:
        gens = dict(covariates or {})
        unknown = sorted(set(gens) - set(names))
        if unknown:
            raise DataError(f"generators given for {unknown}, which the model does not use.")
        if spec.cluster is not None:
            if not clusters or not cluster_size or clusters < 1 or cluster_size < 1:
                raise DataError(
                    f"model {spec.name!r} is two-level: simulate needs clusters >= 1 and "
                    "cluster_size >= 1."
                )
            size = clusters * cluster_size
            frame = pd.DataFrame(
                {spec.cluster: np.repeat(np.arange(1, clusters + 1), cluster_size)}
            )
            for col in names:
                default = "bernoulli" if col == spec.residual_groups else "normal"
                how = gens.get(col, default)
                if col in school_cols:
                    frame[col] = np.repeat(_draw_covariate(col, how, rng, clusters), cluster_size)
                else:
                    frame[col] = _draw_covariate(col, how, rng, size)
        else:
            if n is None or n < 1:
                raise DataError("simulate needs n >= 1 when covariates is not a DataFrame.")
            frame = pd.DataFrame(
                {c: _draw_covariate(c, gens.get(c, "normal"), rng, n) for c in names}
            )
    levels: tuple = ()
    if spec.residual_groups:
        levels = tuple(
            int(v) if float(v).is_integer() else float(v)
            for v in np.unique(frame[spec.residual_groups])
        )
    lay = layout(spec, levels)
    structured = params if isinstance(params, Params) else lay.from_named(dict(params))
    size = len(frame)
    F = np.column_stack(
        [
            term_column(frame, term) * (1.0 if w is None else term_column(frame, w))
            for _, term, w in spec.fixed_effects
        ]
    )
    Z = np.column_stack([term_column(frame, t) for t in spec.membership])
    if spec.residual_groups:
        V = frame[spec.residual_groups].to_numpy()[:, None] == np.array(levels)[None, :]
        V = V.astype(float)
    else:
        V = np.column_stack([term_column(frame, t) for t in ("1", *spec.residual_covariates)])
    beta = np.asarray(structured.beta, dtype=float)
    gamma = np.asarray(structured.gamma, dtype=float)
    lsig = np.asarray(structured.lsig, dtype=float)
    r = len(spec.random)
    b = np.zeros((size, 0))
    if spec.random_effects:
        codes, _ = pd.factorize(frame[spec.cluster], sort=True)
        chol = np.asarray(structured.chol, dtype=float)
        b = (rng.standard_normal((codes.max() + 1, chol.shape[0])) @ chol.T)[codes]
    eta = Z @ gamma.T
    if spec.membership_random != "none":
        eta = eta + b[:, r:] @ np.asarray(structured.load, dtype=float).T
    logits = np.column_stack([eta, np.zeros(size)])
    logits -= logits.max(axis=1, keepdims=True)
    prob = np.exp(logits)
    prob /= prob.sum(axis=1, keepdims=True)
    cls = (rng.random(size)[:, None] > np.cumsum(prob, axis=1)).sum(axis=1)
    cls = np.minimum(cls, spec.classes - 1)
    between = np.zeros(size, dtype=int)
    if spec.between_classes > 1:
        between = _draw_between(spec, frame, structured, rng)
    mu = np.einsum("ip,ip->i", F, beta[between * spec.classes + cls])
    if r:
        R = np.column_stack([term_column(frame, t) for t in spec.random])
        mu = mu + np.einsum("ir,ir->i", R, b[:, :r])
    sigma = np.exp(0.5 * np.einsum("iv,iv->i", V, lsig[cls]))
    out = frame.copy()
    out[spec.outcome] = mu + sigma * rng.standard_normal(size)
    out["C"] = cls + 1
    if spec.between_classes > 1:
        out["D"] = between + 1
    return out


def _draw_between(
    spec: Spec, frame: pd.DataFrame, params: Params, rng: np.random.Generator
) -> np.ndarray:
    """Level-2 class of each row's school, drawn from the logit of eq 32."""
    codes, _ = pd.factorize(frame[spec.cluster], sort=True)
    first = np.unique(codes, return_index=True)[1]
    W = np.column_stack([term_column(frame.iloc[first], t) for t in spec.between_membership])
    eta = W @ np.asarray(params.delta, dtype=float).T
    logits = np.column_stack([eta, np.zeros(len(W))])
    prob = np.exp(logits - logits.max(axis=1, keepdims=True))
    prob /= prob.sum(axis=1, keepdims=True)
    d = (rng.random(len(W))[:, None] > np.cumsum(prob, axis=1)).sum(axis=1)
    return np.minimum(d, spec.between_classes - 1)[codes]
