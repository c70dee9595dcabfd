"""School-level estimates: empirical Bayes (ML) and posterior (Bayes) school coefficients.

For a conventional two-level model the coefficient of term t in school j is
its fixed part ``gamma_t0 + sum_w gamma_tw w_j`` plus the school residual
``u_tj`` when t is random (eqs 11-12, 14-16). :func:`school_effects` returns,
per school, the residuals and coefficients with their uncertainty: after an
ML fit the empirical Bayes posterior means and SDs of u_j given the school's
data at the estimates (as lme4's ``ranef``), after a Bayes fit the posterior
means and SDs over the draws.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bayesmix.data.design import Design, term_column
from bayesmix.errors import DataError
from bayesmix.results.interface import FitResult


def _fixed_parts(design: Design, beta: np.ndarray) -> dict[str, np.ndarray]:
    """Fixed part of each term's coefficient per school, shape (..., J) per term."""
    spec = design.spec
    out = {t: np.zeros((*beta.shape[:-1], len(design.cluster_ids))) for t in spec.terms}
    for k, (_, term, w) in enumerate(spec.fixed_effects):
        value = np.ones(len(design.schools)) if w is None else term_column(design.schools, w)
        out[term] = out[term] + beta[..., k, None] * value
    return out


def _posterior_u(
    design: Design, beta: np.ndarray, lsig: np.ndarray, chol: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Conditional means (J, r) and covariances (J, r, r) of u_j given y_j."""
    e = design.y - design.F @ beta
    w = np.exp(-(design.V @ lsig))
    bounds = design.bounds
    r = chol.shape[0]
    means = np.zeros((len(bounds) - 1, r))
    covs = np.zeros((len(bounds) - 1, r, r))
    for j in range(len(bounds) - 1):
        rows = slice(bounds[j], bounds[j + 1])
        Rj, wj = design.R[rows], w[rows]
        A = (Rj * wj[:, None]).T @ Rj
        M = np.eye(r) + chol.T @ A @ chol
        cov = chol @ np.linalg.solve(M, chol.T)
        means[j] = cov @ (Rj.T @ (wj * e[rows]))
        covs[j] = cov
    return means, covs


def school_effects(result: FitResult) -> pd.DataFrame:
    """Per-school residuals and coefficients with their uncertainty.

    Parameters
    ----------
    result : FitResult
        A fit (MLResult or BayesResult) of a model with a cluster column.

    Returns
    -------
    pandas.DataFrame
        One row per school: ``cluster``, ``n`` (students), and for each
        random term t ``u_t`` and ``sd_u_t``; for every outcome term
        ``coef_t`` and ``sd_coef_t`` (the school's coefficient; its SD is
        that of u_t, the fixed part being held at its estimate after ML and
        varying with the draws after Bayes). For mixtures the coefficient is
        averaged over the school's students and their posterior class
        probabilities, as in the paper's Fig 8, and the columns ``p_c1``...
        give the school's mean class probabilities.
    """
    design = result.design
    spec = design.spec
    if spec.cluster is None:
        raise DataError(f"model {spec.name!r} has no cluster column: no school effects.")
    if spec.between_classes > 1:
        raise DataError(
            f"model {spec.name!r} has level-2 latent classes: school effects for model C are "
            "not available in this version; use result.between_probabilities for the "
            "schools' classes."
        )
    if spec.classes > 1:
        return _mixture_school_effects(result)
    out = pd.DataFrame(
        {
            "cluster": design.cluster_ids,
            "n": np.diff(design.bounds),
        }
    )
    posterior = result.posterior
    if posterior is None:
        return _empirical_bayes_effects(result, out)
    u = posterior["u"].values if spec.random else None
    draws = result.parameter_matrix()
    n_chain, n_draw = posterior.sizes["chain"], posterior.sizes["draw"]
    columns = [result.names.index(name) for name in spec.fixed_names]
    beta = draws[:, columns].reshape(n_chain, n_draw, len(columns))
    fixed = _fixed_parts(design, beta)
    for k, term in enumerate(spec.random):
        out[f"u_{term}"] = u[..., k].mean(axis=(0, 1))
        out[f"sd_u_{term}"] = u[..., k].std(axis=(0, 1), ddof=1)
    for term in spec.terms:
        coef = fixed[term]
        if term in spec.random:
            coef = coef + u[..., spec.random.index(term)]
        out[f"coef_{term}"] = coef.mean(axis=(0, 1))
        out[f"sd_coef_{term}"] = coef.std(axis=(0, 1), ddof=1)
    return out


def _empirical_bayes_effects(result: FitResult, out: pd.DataFrame) -> pd.DataFrame:
    """School effects of a fit without draws: empirical Bayes at the point estimates."""
    design = result.design
    spec = design.spec
    params = result.structured
    beta = np.asarray(params.beta, dtype=float)[0]
    means, covs = _posterior_u(
        design, beta, np.asarray(params.lsig)[0], np.asarray(params.chol, dtype=float)
    )
    fixed = _fixed_parts(design, beta)
    for k, term in enumerate(spec.random):
        out[f"u_{term}"] = means[:, k]
        out[f"sd_u_{term}"] = np.sqrt(np.clip(covs[:, k, k], 0.0, None))
    for term in spec.terms:
        coef = fixed[term].copy()
        sd = np.zeros_like(coef)
        if term in spec.random:
            coef += out[f"u_{term}"].to_numpy()
            sd = out[f"sd_u_{term}"].to_numpy()
        out[f"coef_{term}"] = coef
        out[f"sd_coef_{term}"] = sd
    return out


def _mixture_school_effects(result: FitResult) -> pd.DataFrame:
    """School coefficients of a two-level mixture averaged over class probabilities (Fig 8)."""
    design = result.design
    spec, lay = design.spec, design.layout
    r = len(spec.random)
    counts = np.diff(design.bounds)
    post = np.asarray(result.class_probabilities)
    weights = np.add.reduceat(post, design.bounds[:-1], axis=0) / counts[:, None]
    params = result.structured
    posterior = result.posterior
    if posterior is None:
        # no draws of the residuals: their posterior given each school's data at the estimates
        from bayesmix.density.quadrature import adapted_quadrature

        theta = lay.to_theta(result.point_estimates.to_numpy())
        quad = adapted_quadrature(design, theta, result.quadrature_points)
        _, mean_v, cov_v, *_ = quad.evaluate(theta)
        chol = np.asarray(params.chol, dtype=float)
        u_mean = np.asarray(mean_v) @ chol.T
        u_cov = np.einsum("ab,jbc,dc->jad", chol, np.asarray(cov_v), chol)
        u_sd = np.sqrt(np.clip(np.einsum("jaa->ja", u_cov), 0.0, None))
    else:
        u_draws = posterior["u"].values
        u_mean = u_draws.mean(axis=(0, 1))
        u_sd = u_draws.std(axis=(0, 1), ddof=1)
    fixed = _fixed_parts(design, np.asarray(params.beta, dtype=float))
    out = pd.DataFrame({"cluster": design.cluster_ids, "n": counts})
    for c in range(spec.classes):
        out[f"p_c{c + 1}"] = weights[:, c]
    for k, term in enumerate(spec.random):
        out[f"u_{term}"] = u_mean[:, k]
        out[f"sd_u_{term}"] = u_sd[:, k]
    for term in spec.terms:
        coef = np.sum(weights.T * fixed[term], axis=0)
        sd = np.zeros_like(coef)
        if term in spec.random[:r]:
            coef = coef + out[f"u_{term}"].to_numpy()
            sd = out[f"sd_u_{term}"].to_numpy()
        out[f"coef_{term}"] = coef
        out[f"sd_coef_{term}"] = sd
    return out


def share_positive(effects: pd.DataFrame, term: str) -> float:
    """Share of schools whose estimated coefficient of ``term`` is positive.

    With ``term="female"`` this is the paper's share of schools where
    females have an advantage (38% on NELS under model 1).
    """
    column = f"coef_{term}"
    if column not in effects:
        raise DataError(f"no school coefficients for {term!r}; columns are {list(effects)}.")
    return float((effects[column] > 0).mean())
