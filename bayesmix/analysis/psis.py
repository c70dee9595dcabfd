"""PSIS-LOO vectorised over observations, with ArviZ's definitions.

:func:`loo` gives what ``arviz_stats.loo(data)`` gives for a plain
log-likelihood array (no Jacobian, mixture or moment matching), computing
every observation's Pareto smoothing at once with numpy instead of one
observation at a time. The method is Vehtari et al. (2024), *Pareto
Smoothed Importance Sampling*, JMLR 25(72), as ArviZ implements it:

* the raw log weights of observation i are ``-log p(y_i | theta_s)`` over the
  S draws, less their maximum;
* the ``M = floor(3 sqrt(S / r_eff))`` largest (``floor(S / 5)`` when
  ``S r_eff <= 225``) are replaced by the quantiles ``(m - 1/2) / M`` of a
  generalised Pareto distribution fitted to their exceedances of the largest
  weight below them, by Zhang and Stephens' (2009) empirical Bayes estimate
  with ``30 + floor(sqrt(M))`` grid points and the weakly informative prior
  on k (Vehtari et al., 2024, eq. 9), capped at the largest raw weight;
  ``r_eff`` is the mean relative ESS ("mean" method) over the posterior's
  variables, as ArviZ takes it;
* ``elpd_i = log sum_s w_is p(y_i | theta_s)`` with the normalised smoothed
  weights, ``p_loo = sum_i (lppd_i - elpd_i)`` and the standard error
  ``sqrt(n var(elpd_i))``.

Results agree with ArviZ's to rounding; a test holds them equal.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import xarray as xr

from bayesmix.density.primitives import logsumexp

_PRIOR_BS = 3
_PRIOR_K = 10
_CHUNK_VALUES = 2_000_000
"""Entries of the (observations x grid x tail) array computed at once."""
_THREADS = min(4, os.cpu_count() or 1)
"""Blocks of observations smoothed at once."""
_BLOCK_ROWS = 128
"""Observations per block: a block's arrays of all draws stay in cache."""


def tail_length(n_draws: int, r_eff: float) -> int:
    """Number of largest weights smoothed, ArviZ's rule for the right tail."""
    if n_draws * r_eff > 225:
        return int(np.floor(3 * (n_draws / r_eff) ** 0.5))
    return int(np.floor(n_draws / 5))


def gpd_fit(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Shape k and scale sigma of a generalised Pareto distribution, row by row.

    ``x`` (rows, n) holds each row's exceedances sorted ascending. A row
    whose first quartile does not exceed its minimum gets ``(nan, nan)``, a
    fit with no finite k ``(inf, nan)``, as in ArviZ.
    """
    rows, n = x.shape
    m_est = 30 + int(n**0.5)
    xstar = x[:, int((n / 4 + 0.5) - 1)]
    grid = 1 - np.sqrt(m_est / (np.arange(1, m_est + 1, dtype=float) - 0.5))
    step = max(1, _CHUNK_VALUES // (m_est * n))
    # rows whose fit is undefined (a first quartile of 0) divide by zero; they are
    # set to nan below, as ArviZ returns them
    with np.errstate(divide="ignore", invalid="ignore"):
        b = grid[None, :] / (_PRIOR_BS * xstar[:, None]) + 1 / x[:, -1:]
        k_grid = np.empty_like(b)
        for lo in range(0, rows, step):
            hi = min(rows, lo + step)
            k_grid[lo:hi] = np.mean(np.log1p(-b[lo:hi, :, None] * x[lo:hi, None, :]), axis=2)
        len_scale = n * (np.log(-b / k_grid) - k_grid - 1)
        w = np.exp(len_scale - logsumexp(len_scale, axis=1, keepdims=True))
        w = np.where(w >= 10 * np.finfo(float).eps, w, 0.0)
        w /= w.sum(axis=1, keepdims=True)
        b_post = np.sum(b * w, axis=1)
        kappa = np.mean(np.log1p(-b_post[:, None] * x), axis=1)
        sigma = -kappa / b_post
        kappa = (n * kappa + _PRIOR_K * 0.5) / (n + _PRIOR_K)
    far = xstar <= x[:, 0]
    kappa = np.where(far, np.nan, np.where(np.isnan(kappa), np.inf, kappa))
    sigma = np.where(far, np.nan, sigma)
    return kappa, sigma


def _gpd_quantiles(p: np.ndarray, kappa: np.ndarray, sigma: np.ndarray, mu: np.ndarray):
    """Quantiles ``p`` (n,) of generalised Pareto distributions, one per row."""
    k, s, m = kappa[:, None], sigma[:, None], mu[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.where(
            k == 0,
            m - s * np.log1p(-p),
            m + s * np.expm1(-k * np.log1p(-p)) / k,
        )
    return np.where(s <= 0, np.nan, q)


def psis_log_weights(log_lik: np.ndarray, r_eff: float) -> tuple[np.ndarray, np.ndarray]:
    """Pareto-smoothed, normalised log weights and Pareto k of every observation.

    Parameters
    ----------
    log_lik : ndarray
        Pointwise log-likelihood, shape (n_obs, S), draws chain-major.
    r_eff : float
        Relative efficiency of the draws.

    Returns
    -------
    log_weights : ndarray
        (n_obs, S), each row summing to 1 on the natural scale.
    pareto_k : ndarray
        (n_obs,).
    """
    log_w, kappa, _, _ = _smooth(np.asarray(log_lik, dtype=float), r_eff)
    return log_w, kappa


def _smooth(
    log_lik: np.ndarray, r_eff: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Log weights, Pareto k, ``elpd_i`` and ``lppd_i`` of every observation (rows of
    ``log_lik``).

    Smoothing changes only the M tail weights, so every pass over all S draws
    is a plain array operation; ``elpd_i = log sum_s w_s p(y_i | theta_s)`` is
    then a sum over the tail plus ``S - M`` equal terms, since a body draw's
    raw weight is ``1 / p(y_i | theta_s)`` up to the row's constant.
    """
    low = log_lik.min(axis=1, keepdims=True)
    # -log p less its maximum, as ArviZ forms the raw log weights
    raw = low - log_lik
    n_obs, n_draws = raw.shape
    n_tail = tail_length(n_draws, r_eff)
    if n_tail < 5:
        raise ValueError(f"PSIS needs at least 5 tail draws; {n_draws} draws give {n_tail}.")
    cut = n_draws - n_tail
    order = np.argpartition(raw, cut - 1, axis=1)
    rows = np.arange(n_obs)[:, None]
    tail_index = order[:, cut:]
    tail_index = np.take_along_axis(tail_index, np.argsort(raw[rows, tail_index], axis=1), axis=1)
    tail = raw[rows, tail_index]
    cutoff = raw[rows[:, 0], order[:, cut - 1]]
    # equal draws (a chain that stayed put) in the tail take their smoothed values in
    # the order of a full sort, ArviZ's, so that the weights are the same draw by draw
    tied = np.flatnonzero(np.any(np.diff(tail, axis=1) == 0, axis=1) | (tail[:, 0] == cutoff))
    for i in tied:
        tail_index[i] = np.argsort(raw[i])[cut:]
    max_tail = tail[:, -1]
    if np.any(max_tail - tail[:, 0] < np.finfo(float).tiny):
        raise ValueError("All tail values are the same")
    exp_cutoff = np.exp(cutoff)
    kappa, sigma = gpd_fit(np.exp(tail) - exp_cutoff[:, None])
    p = np.arange(0.5, n_tail) / n_tail
    with np.errstate(divide="ignore", invalid="ignore"):
        smoothed = np.log(_gpd_quantiles(p, kappa, sigma, exp_cutoff))
    smoothed = np.where(smoothed > max_tail[:, None], max_tail[:, None], smoothed)
    smoothed = np.where(np.isfinite(kappa)[:, None], smoothed, tail)
    body = np.exp(raw)
    body[rows, tail_index] = 0.0
    norm = np.log(body.sum(axis=1) + np.exp(smoothed).sum(axis=1))
    elpd_i = low[:, 0] - norm + np.log(cut + np.exp(smoothed - tail).sum(axis=1))
    raw[rows, tail_index] = smoothed
    raw -= norm[:, None]
    lppd_i = logsumexp(log_lik, axis=1) - np.log(n_draws)
    return raw, kappa, elpd_i, lppd_i


def _smooth_blocks(
    log_lik: np.ndarray, r_eff: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """:func:`_smooth` on blocks of rows, which stay in cache, in threads (rows are
    independent, and numpy releases the GIL in the array work); each block is made
    contiguous in its own thread."""
    n_obs = log_lik.shape[0]
    edges = [*range(0, n_obs, _BLOCK_ROWS), n_obs]
    if len(edges) == 2:
        return _smooth(np.ascontiguousarray(log_lik), r_eff)

    def block(lo: int, hi: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        return _smooth(np.ascontiguousarray(log_lik[lo:hi]), r_eff)

    with ThreadPoolExecutor(_THREADS, thread_name_prefix="bayesmix-psis") as pool:
        parts = list(pool.map(block, edges[:-1], edges[1:]))
    return tuple(np.concatenate(arrays) for arrays in zip(*parts, strict=True))  # type: ignore[return-value]


def relative_efficiency(data: Any) -> float:
    """ArviZ's default ``r_eff``: mean relative ESS over the posterior's variables."""
    posterior = data.posterior
    if posterior.sizes["chain"] == 1:
        return 1.0
    import arviz_stats  # noqa: F401  (registers the .azstats accessor)

    ess = posterior.azstats.ess(method="mean")
    values = np.hstack([np.asarray(ess[v]).ravel() for v in ess.data_vars])
    n_samples = posterior.sizes["chain"] * posterior.sizes["draw"]
    return float(values.mean() / n_samples)


def loo(data: Any, var_name: str | None = None, pointwise: bool = True) -> Any:
    """PSIS-LOO of a DataTree's log-likelihood, as ``arviz_stats.loo`` returns it.

    Parameters
    ----------
    data : DataTree
        With ``posterior`` and ``log_likelihood`` groups.
    var_name : str, optional
        The log-likelihood variable; needed when there are several.
    pointwise : bool
        Keep ``elpd_i`` and ``pareto_k`` in the result.

    Returns
    -------
    arviz_stats.utils.ELPDDataLOO
    """
    from arviz_stats.utils import ELPDDataLOO

    group = data.log_likelihood.dataset
    if var_name is None:
        if len(group.data_vars) != 1:
            raise ValueError(
                f"var_name is needed: the log-likelihood has {sorted(group.data_vars)}."
            )
        var_name = next(iter(group.data_vars))
    da = group[var_name]
    obs_dims = [d for d in da.dims if d not in ("chain", "draw")]
    n_samples = da.sizes["chain"] * da.sizes["draw"]
    obs_shape = tuple(da.sizes[d] for d in obs_dims)
    # observations by draws, a view of the array as stored
    flat = np.asarray(da.transpose("chain", "draw", *obs_dims).values, dtype=float)
    flat = flat.reshape(n_samples, -1).T
    r_eff = relative_efficiency(data)
    log_w, kappa, elpd_i, lppd_i = _smooth_blocks(flat, r_eff)
    p_loo_i = lppd_i - elpd_i
    n = elpd_i.size
    good_k = min(1 - 1 / np.log10(n_samples), 0.7) if n_samples > 1 else 0.7
    coords = {d: da.coords[d] for d in obs_dims if d in da.coords}
    elpd_da = xr.DataArray(elpd_i.reshape(obs_shape), dims=obs_dims, coords=coords)
    k_da = xr.DataArray(kappa.reshape(obs_shape), dims=obs_dims, coords=coords)
    return ELPDDataLOO(
        elpd=float(np.sum(elpd_i)),
        se=float(np.sqrt(n * np.var(elpd_i, ddof=1))) if n > 1 else 0.0,
        p=float(np.sum(p_loo_i)),
        n_samples=n_samples,
        n_data_points=n,
        scale="log",
        warning=bool(np.any(kappa > good_k)),
        good_k=good_k,
        elpd_i=elpd_da if pointwise else None,
        pareto_k=k_da if pointwise else None,
        approx_posterior=False,
        log_weights=xr.DataArray(
            log_w.reshape(*obs_shape, da.sizes["chain"], da.sizes["draw"]),
            dims=(*obs_dims, "chain", "draw"),
            coords=da.coords,
            name=var_name,
        ),
    )
