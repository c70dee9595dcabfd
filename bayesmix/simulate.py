"""Simulate data from a spec at given parameter values."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from bayesmix.data import term_column
from bayesmix.errors import DataError, SpecError
from bayesmix.params import Params, from_named
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
        variances as ``sigma2``), or structured parameters.
    n : int, optional
        Number of observations; required unless ``covariates`` is a DataFrame.
    covariates : DataFrame or mapping, optional
        Either the covariate values to use, or per-covariate generators:
        ``"normal"`` (mean 0, variance 1, the default for every covariate),
        ``("normal", mean, sd)``, ``"bernoulli"`` (p = 0.5),
        ``("bernoulli", p)`` or a callable ``f(rng, n)``.
    random_seed : int, optional
        Seed; the same seed gives the same data.

    Returns
    -------
    pandas.DataFrame
        The covariates, the outcome and ``C``, the true latent class (1..K).
    """
    rng = np.random.default_rng(random_seed)
    structured = params if isinstance(params, Params) else from_named(dict(params), spec)
    names = [c for c in spec.columns if c != spec.outcome]
    if isinstance(covariates, pd.DataFrame):
        missing = [c for c in names if c not in covariates.columns]
        if missing:
            raise DataError(
                f"covariates lack column(s) {missing}; they have {list(covariates.columns)}."
            )
        frame = covariates[names].reset_index(drop=True).astype(float)
    else:
        if n is None or n < 1:
            raise DataError("simulate needs n >= 1 when covariates is not a DataFrame.")
        gens = dict(covariates or {})
        unknown = sorted(set(gens) - set(names))
        if unknown:
            raise DataError(f"generators given for {unknown}, which the model does not use.")
        frame = pd.DataFrame({c: _draw_covariate(c, gens.get(c, "normal"), rng, n) for c in names})
    size = len(frame)
    X = np.column_stack([term_column(frame, t) for t in spec.terms])
    Z = np.column_stack([term_column(frame, t) for t in spec.membership])
    beta = np.asarray(structured.beta, dtype=float)
    gamma = np.asarray(structured.gamma, dtype=float)
    sigma = np.sqrt(np.asarray(structured.sigma2, dtype=float))
    logits = np.column_stack([Z @ gamma.T, np.zeros(size)])
    logits -= logits.max(axis=1, keepdims=True)
    prob = np.exp(logits)
    prob /= prob.sum(axis=1, keepdims=True)
    cls = (rng.random(size)[:, None] > np.cumsum(prob, axis=1)).sum(axis=1)
    cls = np.minimum(cls, spec.classes - 1)
    mu = np.einsum("ip,ip->i", X, beta[cls])
    out = frame.copy()
    out[spec.outcome] = mu + sigma[cls] * rng.standard_normal(size)
    out["C"] = cls + 1
    return out
