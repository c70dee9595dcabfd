"""Bayesian estimation: the likelihood of :mod:`bayesmix.likelihood` in PyMC, sampled by NUTS.

Class indicators are marginalised (log-sum-exp) so that NUTS sees a smooth
density; classes are labelled by a descending order constraint on the
``order_classes_by`` coefficient (class 1 highest, as in the ML labelling);
chains start at the ML solution by default. After sampling, the pointwise
log-likelihood is stored for LOO, posterior class probabilities are
computed, and chains are checked for disagreeing class labels.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping
from typing import Any, Literal

import arviz_stats as azs
import numpy as np
import pymc as pm
import pytensor.tensor as pt
import xarray as xr
from pymc.distributions.transforms import Ordered
from scipy.optimize import linear_sum_assignment

from bayesmix.data import DataLike, Design, MissingPolicy, build_design
from bayesmix.errors import EstimationError, LabelSwitchingWarning, SamplingWarning, SpecError
from bayesmix.likelihood import (
    linear_predictor,
    membership_logprob,
    mixture_logp,
    pointwise,
    residual_variance,
)
from bayesmix.params import Params, class_label
from bayesmix.priors import Prior, resolve_priors
from bayesmix.results import BayesResult, LabelCheck
from bayesmix.spec import Spec

Init = Literal["ml", "prior"]
Sampler = Literal["nutpie", "pymc"]

RHAT_MAX = 1.01
ESS_MIN = 400


def _coef_rv(
    name: str,
    priors: list[Prior],
    dims: Any = None,
    shape: tuple[int, ...] | None = None,
    **kwargs: Any,
) -> pt.TensorVariable:
    """A Normal or Student-t coefficient vector with one prior per element."""
    families = {p.family for p in priors}
    if len(families) != 1:
        raise SpecError(f"priors of {name!r} mix families {sorted(families)}; use one family.")
    mu = np.array([p.mu for p in priors])
    sigma = np.array([p.sigma for p in priors])
    nu = np.array([p.nu for p in priors])
    if dims is None:
        mu, sigma, nu = mu[0], sigma[0], nu[0]
    elif shape is not None:
        mu, sigma, nu = mu.reshape(shape), sigma.reshape(shape), nu.reshape(shape)
    if priors[0].family == "normal":
        return pm.Normal(name, mu=mu, sigma=sigma, dims=dims, **kwargs)
    return pm.StudentT(name, nu=nu, mu=mu, sigma=sigma, dims=dims, **kwargs)


def _scale_rv(name: str, prior: Prior, dims: Any = None, **kwargs: Any) -> pt.TensorVariable:
    if prior.family == "half_normal":
        return pm.HalfNormal(name, sigma=prior.sigma, dims=dims, **kwargs)
    return pm.HalfStudentT(name, nu=prior.nu, sigma=prior.sigma, dims=dims, **kwargs)


def _fixed_rv_name(name: str) -> str:
    return f"b_{name}"


def build_model(
    design: Design, priors: Mapping[str, Prior], init: Params | None = None
) -> pm.Model:
    """The PyMC model of a spec on a design.

    Parameters
    ----------
    design : Design
    priors : mapping
        Complete priors, see :func:`bayesmix.priors.resolve_priors`.
    init : Params, optional
        Initial values (e.g. the ML estimates).

    Returns
    -------
    pymc.Model
        Free variables ``b_<effect>`` (dims ``class`` when class-varying);
        the residual variance as ``sigma`` (SD; dims ``class`` or ``group``)
        or ``lsig`` (log-linear coefficients, model 1b); the school
        residuals as ``z_u`` (standard normal, dims ``cluster`` x ``rterm``)
        with ``chol_u`` (LKJ Cholesky covariance) or ``sd_u`` (diagonal),
        and ``u`` = z_u L'; membership logits ``gamma`` (dims ``logit`` x
        ``mterm``); observed ``y`` with the class-marginal density of
        :func:`bayesmix.likelihood.mixture_logp`.
    """
    spec, lay = design.spec, design.layout
    K = spec.classes
    classes = [class_label(c) for c in range(K)]
    coords: dict[str, list[Any]] = {"class": classes, "obs": list(range(design.n_obs))}
    if K > 1:
        coords["logit"] = [f"C#{c + 1}" for c in range(K - 1)]
        coords["mterm"] = list(spec.membership)
    if spec.random_effects:
        coords["cluster"] = [str(c) for c in design.cluster_ids]
        coords["rterm"] = list(spec.random_effects)
    if spec.residual_groups:
        coords["group"] = [str(g) for g in lay.group_levels]
    if spec.residual_covariates:
        coords["lterm"] = ["1", *spec.residual_covariates]
    if spec.membership_random == "factor" and K > 2:
        coords["lambda_class"] = [f"C#{c + 1}" for c in range(1, K - 1)]
    init_beta = None if init is None else np.asarray(init.beta)
    whiten = (
        K == 1
        and len(spec.fixed_names) > 1
        and all(priors[name].family == "normal" for name in spec.fixed_names)
    )
    with pm.Model(coords=coords) as model:
        columns = []
        if whiten:
            columns = _whitened_fixed_effects(design, priors, init_beta)
        for j, name in enumerate(spec.fixed_names):
            if whiten:
                break
            kwargs: dict[str, Any] = {}
            if name in spec.class_varying:
                plist = [priors[f"{name}[{c}]"] for c in classes]
                if name == spec.order_classes_by:
                    kwargs["transform"] = Ordered(ascending=False)
                    if init_beta is None:
                        spread = np.linspace(1.0, -1.0, K) * 0.5 * plist[0].sigma
                        kwargs["initval"] = np.array([p.mu for p in plist]) + spread
                if init_beta is not None:
                    kwargs["initval"] = init_beta[:, j]
                columns.append(_coef_rv(_fixed_rv_name(name), plist, dims="class", **kwargs))
            else:
                if init_beta is not None:
                    kwargs["initval"] = float(init_beta[0, j])
                rv = _coef_rv(_fixed_rv_name(name), [priors[name]], **kwargs)
                columns.append(pt.stack([rv] * K))
        beta = pt.stack(columns, axis=1)
        lsig = _residual_rvs(design, priors, init)
        if K > 1:
            plist = [priors[f"C#{c + 1} ~ {t}"] for c in range(K - 1) for t in spec.membership]
            kw = {} if init is None else {"initval": np.asarray(init.gamma)}
            gamma = _coef_rv(
                "gamma", plist, dims=("logit", "mterm"), shape=(K - 1, len(spec.membership)), **kw
            )
        else:
            gamma = pt.zeros((0, len(spec.membership)))
        F = pm.Data("F", design.F)
        Z = pm.Data("Z", design.Z)
        V = pm.Data("V", design.V)
        mu = linear_predictor(F, beta)
        member_offset = None
        if spec.random_effects:
            r = len(spec.random)
            u = _random_effects(design, priors, init)
            cluster = pm.Data("cluster_index", design.cluster)
            ui = u[cluster]
            if r:
                R = pm.Data("R", design.R)
                mu = mu + pt.sum(R * ui[:, :r], axis=1)[:, None]
            if spec.membership_random != "none":
                member_offset = pt.dot(ui[:, r:], pt.transpose(_loadings(spec, priors, init)))
        logw = membership_logprob(Z, gamma, member_offset)
        pm.CustomDist(
            "y",
            mu,
            residual_variance(V, lsig),
            logw,
            logp=mixture_logp,
            signature="(k),(k),(k)->()",
            observed=design.y,
            dims="obs",
        )
    return model


def _whitened_fixed_effects(
    design: Design, priors: Mapping[str, Prior], init_beta: np.ndarray | None
) -> list[Any]:
    """Fixed effects of a one-class model sampled in whitened coordinates.

    With ``F'F / n = A'A`` (A upper triangular), NUTS samples ``eta = A beta``,
    whose likelihood curvature is close to isotropic: uncentred covariates and
    interactions otherwise make the fixed effects strongly correlated (the
    QR reparameterisation of the Stan user's guide). The Normal priors on
    beta are kept exactly, as the implied MvNormal prior on eta. Each fixed
    effect is recorded as the deterministic ``b_<name>``.
    """
    spec = design.spec
    gram = design.F.T @ design.F / design.n_obs
    upper = np.linalg.cholesky(gram).T
    mu = np.array([priors[name].mu for name in spec.fixed_names])
    sd = np.array([priors[name].sigma for name in spec.fixed_names])
    kwargs: dict[str, Any] = {}
    if init_beta is not None:
        kwargs["initval"] = upper @ init_beta[0]
    eta = pm.MvNormal("b_whitened", mu=upper @ mu, cov=upper @ np.diag(sd**2) @ upper.T, **kwargs)
    beta = pt.dot(np.linalg.inv(upper), eta)
    return [
        pt.stack([pm.Deterministic(_fixed_rv_name(name), beta[j])])
        for j, name in enumerate(spec.fixed_names)
    ]


def _residual_rvs(design: Design, priors: Mapping[str, Prior], init: Params | None) -> Any:
    """Residual variance parameters as ``lsig`` (K, v) log-variance coefficients."""
    spec, lay = design.spec, design.layout
    K = spec.classes
    init_lsig = None if init is None else np.asarray(init.lsig)
    if spec.residual_covariates:
        names = lay.names[lay._slices()["resid"]]
        kw = {} if init_lsig is None else {"initval": init_lsig[0]}
        coef = _coef_rv("lsig", [priors[n] for n in names], dims="lterm", **kw)
        return pt.stack([coef] * K)
    if spec.residual_groups:
        kw = {} if init_lsig is None else {"initval": np.exp(0.5 * init_lsig[0])}
        sigma = _scale_rv("sigma", priors["sigma"], dims="group", **kw)
        return pt.stack([2.0 * pt.log(sigma)] * K)
    if spec.residual_variance == "class":
        kw = {} if init_lsig is None else {"initval": np.exp(0.5 * init_lsig[:, 0])}
        sigma = _scale_rv("sigma", priors["sigma"], dims="class", **kw)
        return (2.0 * pt.log(sigma))[:, None]
    kw = {} if init_lsig is None else {"initval": float(np.exp(0.5 * init_lsig[0, 0]))}
    sigma = _scale_rv("sigma", priors["sigma"], **kw)
    return pt.stack([pt.stack([2.0 * pt.log(sigma)])] * K)


def _loadings(spec: Spec, priors: Mapping[str, Prior], init: Params | None) -> Any:
    """Loadings of the membership logits on their random effects (identity or factor)."""
    K = spec.classes
    if spec.membership_random == "independent":
        return pt.eye(K - 1)
    names = [f"lambda(C#{c + 1})" for c in range(1, K - 1)]
    if not names:
        return pt.ones((1, 1))
    kw: dict[str, Any] = {}
    if init is not None:
        kw["initval"] = np.asarray(init.load)[1:, 0]
    lam = _coef_rv("lambda", [priors[n] for n in names], dims="lambda_class", **kw)
    return pt.concatenate([pt.ones(1), lam])[:, None]


def _random_effects(design: Design, priors: Mapping[str, Prior], init: Params | None) -> Any:
    """Non-centred school residuals u = z L' (cluster x rterm)."""
    spec = design.spec
    r = len(spec.random_effects)
    sd_priors = [priors[f"sd(u_{t})"] for t in spec.random_effects]
    scales = np.array([p.sigma for p in sd_priors])
    families = {p.family for p in sd_priors}
    if len(families) != 1:
        raise SpecError("priors of the random-effect SDs mix families; use one family.")
    nu = np.array([p.nu for p in sd_priors])
    init_chol = None if init is None else np.asarray(init.chol)
    if spec.covariance == "unstructured" and r > 1:
        if sd_priors[0].family == "half_normal":
            sd_dist = pm.HalfNormal.dist(sigma=scales, shape=r)
        else:
            sd_dist = pm.HalfStudentT.dist(nu=nu, sigma=scales, shape=r)
        kw: dict[str, Any] = {}
        if init_chol is not None:
            chol = init_chol.copy()
            diag = np.diag(chol).copy()
            np.fill_diagonal(chol, np.maximum(diag, 0.05 * scales))
            kw["initval"] = chol[np.tril_indices(r)]
        chol_u, _, _ = pm.LKJCholeskyCov(
            "chol_u", n=r, eta=2.0, sd_dist=sd_dist, compute_corr=True, **kw
        )
        L = chol_u
    else:
        kw = {}
        if init_chol is not None:
            kw["initval"] = np.maximum(np.sqrt(np.sum(init_chol**2, axis=1)), 0.05 * scales)
        if sd_priors[0].family == "half_normal":
            sd_u = pm.HalfNormal("sd_u", sigma=scales, dims="rterm", **kw)
        else:
            sd_u = pm.HalfStudentT("sd_u", nu=nu, sigma=scales, dims="rterm", **kw)
        L = pt.diag(sd_u)
    z = pm.Normal("z_u", 0.0, 1.0, dims=("cluster", "rterm"))
    return pm.Deterministic("u", pt.dot(z, L.T), dims=("cluster", "rterm"))


def structured_draws(posterior: xr.Dataset, design: Design) -> Params:
    """Stack posterior draws into :class:`Params` arrays with leading (chain, draw) dims."""
    spec = design.spec
    K = spec.classes
    columns = []
    for name in spec.fixed_names:
        values = posterior[_fixed_rv_name(name)].values
        if name not in spec.class_varying:
            values = np.repeat(values[..., None], K, axis=-1)
        columns.append(values)
    beta = np.stack(columns, axis=-1)
    lead = beta.shape[:2]
    if spec.residual_covariates:
        lsig = np.repeat(posterior["lsig"].values[:, :, None, :], K, axis=2)
    elif spec.residual_groups:
        lsig = np.repeat(2 * np.log(posterior["sigma"].values)[:, :, None, :], K, axis=2)
    elif spec.residual_variance == "class":
        lsig = 2 * np.log(posterior["sigma"].values)[..., None]
    else:
        lsig = np.repeat(2 * np.log(posterior["sigma"].values)[..., None, None], K, axis=2)
    gamma = posterior["gamma"].values if K > 1 else np.zeros((*lead, 0, len(spec.membership)))
    r = len(spec.random_effects)
    if r == 0:
        chol = np.zeros((*lead, 0, 0))
    elif "chol_u" in posterior:
        packed = posterior["chol_u"].values
        chol = np.zeros((*lead, r, r))
        rows, cols = np.tril_indices(r)
        chol[..., rows, cols] = packed
    else:
        sd = posterior["sd_u"].values
        chol = np.zeros((*lead, r, r))
        for i in range(r):
            chol[..., i, i] = sd[..., i]
    if spec.membership_random == "independent":
        load = np.broadcast_to(np.eye(K - 1), (*lead, K - 1, K - 1))
    elif spec.membership_random == "factor":
        lam = posterior["lambda"].values if K > 2 else np.zeros((*lead, 0))
        load = np.concatenate([np.ones((*lead, 1)), lam], axis=-1)[..., None]
    else:
        load = np.zeros((*lead, max(K - 1, 0), 0))
    return Params(beta=beta, lsig=lsig, gamma=gamma, chol=chol, load=load)


def named_draws(draws: Params, design: Design) -> dict[str, np.ndarray]:
    """Posterior draws of every named natural parameter, each (chain, draw)."""
    lay = design.layout
    n_chain, n_draw = np.asarray(draws.beta).shape[:2]
    out = np.empty((n_chain, n_draw, lay.n_params))
    for ch in range(n_chain):
        for d in range(n_draw):
            out[ch, d] = lay.pack(
                Params(
                    beta=draws.beta[ch, d],
                    lsig=draws.lsig[ch, d],
                    gamma=draws.gamma[ch, d],
                    chol=draws.chol[ch, d],
                    load=draws.load[ch, d],
                ),
                natural=True,
            )
    return {name: out[:, :, k] for k, name in enumerate(lay.names)}


def _pointwise_draws(
    draws: Params, design: Design, u: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """Log-likelihood (chain, draw, n) and per-chain mean class probabilities (chain, n, K)."""
    f = pointwise(design.layout)
    n_chain, n_draw = draws.beta.shape[:2]
    loglik = np.empty((n_chain, n_draw, design.n_obs))
    post = np.zeros((n_chain, design.n_obs, design.spec.classes))
    spec = design.spec
    r = len(spec.random)
    offset = np.zeros(design.n_obs)
    member = np.zeros((design.n_obs, spec.classes - 1))
    for ch in range(n_chain):
        for d in range(n_draw):
            if u is not None:
                ui = u[ch, d][design.cluster]
                offset = np.einsum("ir,ir->i", design.R, ui[:, :r])
                if spec.membership_random != "none":
                    member = ui[:, r:] @ np.asarray(draws.load[ch, d]).T
            ll, pp = f(
                draws.beta[ch, d],
                draws.lsig[ch, d],
                draws.gamma[ch, d],
                offset,
                member,
                design.y,
                design.F,
                design.Z,
                design.V,
            )
            loglik[ch, d] = ll
            post[ch] += pp
    post /= n_draw
    return loglik, post


def check_labels(chain_post: np.ndarray) -> LabelCheck:
    """Do all chains agree with chain 1 on which class is which?

    For each chain the mean posterior class probabilities of the
    observations are matched to chain 1's by maximising their overlap; a
    matching other than the identity means the chains label classes
    differently (label switching between chains).
    """
    n_chain, _, K = chain_post.shape
    perms: list[tuple[int, ...]] = []
    agreement: list[float] = []
    for ch in range(n_chain):
        overlap = chain_post[0].T @ chain_post[ch] / chain_post.shape[1]
        rows, cols = linear_sum_assignment(-overlap)
        perm = tuple(int(c) for c in cols[np.argsort(rows)])
        perms.append(perm)
        agreement.append(float(overlap[rows, cols].sum()))
    switched = any(p != tuple(range(K)) for p in perms)
    return LabelCheck(switched=switched, permutations=tuple(perms), agreement=tuple(agreement))


def _sample(
    model: pm.Model,
    sampler: Sampler,
    draws: int,
    tune: int,
    chains: int,
    seed: int,
    ml_init: bool,
    progress: bool,
    adaptation: str = "diag",
) -> tuple[xr.DataTree, float, float]:
    if sampler == "nutpie":
        import nutpie

        t0 = time.perf_counter()
        compiled = nutpie.compile_pymc_model(model, jitter_rvs=set() if ml_init else None)
        t1 = time.perf_counter()
        idata = nutpie.sample(
            compiled,
            draws=draws,
            tune=tune,
            chains=chains,
            seed=seed,
            progress_bar=progress,
            save_warmup=False,
            adaptation=adaptation,
        )
        return idata, t1 - t0, time.perf_counter() - t1
    t0 = time.perf_counter()
    with model:
        idata = pm.sample(
            draws=draws,
            tune=tune,
            chains=chains,
            random_seed=seed,
            progressbar=progress,
            compute_convergence_checks=False,
        )
    return idata, 0.0, time.perf_counter() - t0


def fit_bayes(
    spec: Spec,
    data: DataLike,
    *,
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 4,
    random_seed: int | None = None,
    init: Init = "ml",
    priors: Mapping[str, Prior] | None = None,
    sampler: Sampler = "nutpie",
    missing: MissingPolicy = "error",
    ml_starts: int = 20,
    adaptation: Literal["diag", "low_rank"] = "diag",
    progress: bool = False,
) -> BayesResult:
    """Fit a model by NUTS.

    Parameters
    ----------
    spec : Spec
        The model.
    data : DataFrame, str or Path
        Data frame, CSV path or bundled data set name.
    draws, tune, chains : int
        Posterior draws kept per chain, warm-up draws per chain, chains.
    random_seed : int, optional
        Seed of the ML starts and of the sampler; the same seed reproduces
        the run on the same machine.
    init : {"ml", "prior"}
        Start every chain at the ML estimates (default: avoids chains
        settling in different modes) or at the prior-based default.
    priors : mapping of str to Prior, optional
        Overrides of the data-scaled default priors
        (see :mod:`bayesmix.priors`).
    sampler : {"nutpie", "pymc"}
        NUTS implementation.
    missing : {"error", "listwise"}
        Handling of rows with missing values.
    ml_starts : int
        Random starts of the ML fit used for initialisation.
    adaptation : {"diag", "low_rank"}
        nutpie's mass-matrix adaptation: diagonal, or diagonal plus a
        low-rank correction that captures strong posterior correlations
        (e.g. between fixed effects of uncentred covariates).
    progress : bool
        Show progress.

    Returns
    -------
    BayesResult
    """
    t_start = time.perf_counter()
    for label, value in (("draws", draws), ("tune", tune), ("chains", chains)):
        if not isinstance(value, int) or value < 1:
            raise EstimationError(f"{label} must be a positive integer, got {value!r}.")
    if init not in ("ml", "prior"):
        raise EstimationError(f"init must be 'ml' or 'prior', got {init!r}.")
    if sampler not in ("nutpie", "pymc"):
        raise EstimationError(f"sampler must be 'nutpie' or 'pymc', got {sampler!r}.")
    if spec.between_classes > 1:
        raise EstimationError(
            f"model {spec.name!r} has {spec.between_classes} level-2 latent classes (model C), "
            "which this version fits by ML only: use fit_ml (CLI: --estimator ml), or "
            "--between-classes 1."
        )
    design = build_design(spec, data, missing=missing)
    full_priors = resolve_priors(design, priors)
    seed = int(np.random.default_rng(random_seed).integers(2**31 - 1))
    init_params = None
    if init == "ml":
        from bayesmix.ml import fit_ml

        ml = fit_ml(spec, design.frame, starts=ml_starts, random_seed=seed)
        init_params = ml.structured
    model = build_model(design, full_priors, init_params)
    idata, compile_s, sampling_s = _sample(
        model, sampler, draws, tune, chains, seed, init == "ml", progress, adaptation
    )
    posterior = idata["posterior"].to_dataset()
    draws_struct = structured_draws(posterior, design)
    named = named_draws(draws_struct, design)
    u = posterior["u"].values if spec.random_effects else None
    loglik, chain_post = _pointwise_draws(draws_struct, design, u)
    pointwise_vars = {"y": (("chain", "draw", "obs"), loglik)}
    if spec.cluster is not None:
        # school level, conditional on the school residuals: the sum over its students
        by_school = np.add.reduceat(loglik, design.bounds[:-1], axis=2)
        pointwise_vars["y_school"] = (("chain", "draw", "school"), by_school)
    idata["log_likelihood"] = xr.DataTree(
        xr.Dataset(
            pointwise_vars,
            coords={"chain": posterior["chain"], "draw": posterior["draw"]},
        )
    )
    if "observed_data" not in idata.children:
        idata["observed_data"] = xr.DataTree(xr.Dataset({"y": (("obs",), design.y)}))
    labels = check_labels(chain_post) if spec.classes > 1 else LabelCheck(False, (), ())
    divergences = int(np.asarray(idata["sample_stats"]["diverging"]).sum())
    loo = azs.loo(idata, var_name="y")
    result = BayesResult.from_draws(
        spec=spec,
        design=design,
        idata=idata,
        named=named,
        chain_post=chain_post,
        divergences=divergences,
        labels=labels,
        loo=loo,
        priors=full_priors,
        settings={
            "draws": draws,
            "tune": tune,
            "chains": chains,
            "seed": seed,
            "init": init,
            "sampler": sampler,
            "adaptation": adaptation,
        },
        timings={
            "compile_s": compile_s,
            "sampling_s": sampling_s,
            "elapsed_s": time.perf_counter() - t_start,
        },
    )
    for text, category in _diagnose(result):
        warnings.warn(text, category, stacklevel=2)
    return result


def _diagnose(result: BayesResult) -> list[tuple[str, type[Warning]]]:
    notes = []
    for text in result.diagnostics:
        category = LabelSwitchingWarning if "label" in text else SamplingWarning
        notes.append((text, category))
    return notes
