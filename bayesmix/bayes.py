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
from bayesmix.likelihood import linear_predictor, membership_logprob, mixture_logp, pointwise
from bayesmix.params import Params, class_label
from bayesmix.priors import Prior, resolve_priors
from bayesmix.results import BayesResult, LabelCheck
from bayesmix.spec import Spec

Init = Literal["ml", "prior"]
Sampler = Literal["nutpie", "pymc"]

RHAT_MAX = 1.01
ESS_MIN = 400


def _rv_name(term: str) -> str:
    return f"b_{term}"


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
        Free variables ``b_<term>`` (dims ``class`` when class-varying),
        ``sigma`` (residual SD) and ``gamma`` (membership logits, dims
        ``logit`` x ``mterm``); observed ``y`` with the marginal mixture
        density.
    """
    spec = design.spec
    K = spec.classes
    classes = [class_label(c) for c in range(K)]
    coords: dict[str, list[Any]] = {"class": classes, "obs": list(range(design.n_obs))}
    if K > 1:
        coords["logit"] = [f"C#{c + 1}" for c in range(K - 1)]
        coords["mterm"] = list(spec.membership)
    with pm.Model(coords=coords) as model:
        columns = []
        for j, term in enumerate(spec.terms):
            kwargs: dict[str, Any] = {}
            if term in spec.class_varying:
                plist = [priors[f"{term}[{c}]"] for c in classes]
                if term == spec.order_classes_by:
                    kwargs["transform"] = Ordered(ascending=False)
                    if init is None:
                        spread = np.linspace(1.0, -1.0, K) * 0.5 * plist[0].sigma
                        kwargs["initval"] = np.array([p.mu for p in plist]) + spread
                if init is not None:
                    kwargs["initval"] = np.asarray(init.beta)[:, j]
                rv = _coef_rv(_rv_name(term), plist, dims="class", **kwargs)
                columns.append(rv)
            else:
                if init is not None:
                    kwargs["initval"] = float(np.asarray(init.beta)[0, j])
                rv = _coef_rv(_rv_name(term), [priors[term]], **kwargs)
                columns.append(pt.stack([rv] * K))
        beta = pt.stack(columns, axis=1)
        if spec.residual_variance == "class":
            kw = {} if init is None else {"initval": np.sqrt(np.asarray(init.sigma2))}
            sigma = _scale_rv("sigma", priors["sigma"], dims="class", **kw)
            sigma2 = sigma**2
        else:
            kw = {} if init is None else {"initval": float(np.sqrt(init.sigma2[0]))}
            sigma = _scale_rv("sigma", priors["sigma"], **kw)
            sigma2 = pt.stack([sigma**2] * K)
        if K > 1:
            plist = [priors[f"C#{c + 1} ~ {t}"] for c in range(K - 1) for t in spec.membership]
            kw = {} if init is None else {"initval": np.asarray(init.gamma)}
            gamma = _coef_rv(
                "gamma",
                plist,
                dims=("logit", "mterm"),
                shape=(K - 1, len(spec.membership)),
                **kw,
            )
        else:
            gamma = pt.zeros((0, len(spec.membership)))
        X = pm.Data("X", design.X)
        Z = pm.Data("Z", design.Z)
        mu = linear_predictor(X, beta)
        logw = membership_logprob(Z, gamma)
        pm.CustomDist(
            "y",
            mu,
            sigma2,
            logw,
            logp=mixture_logp,
            signature="(k),(k),(k)->()",
            observed=design.y,
            dims="obs",
        )
    return model


def structured_draws(posterior: xr.Dataset, spec: Spec) -> Params:
    """Stack posterior draws into :class:`Params` arrays with leading (chain, draw) dims."""
    K = spec.classes
    columns = []
    for term in spec.terms:
        values = posterior[_rv_name(term)].values
        if term not in spec.class_varying:
            values = np.repeat(values[..., None], K, axis=-1)
        columns.append(values)
    beta = np.stack(columns, axis=-1)
    sigma = posterior["sigma"].values
    if spec.residual_variance != "class":
        sigma = np.repeat(sigma[..., None], K, axis=-1)
    if K > 1:
        gamma = posterior["gamma"].values
    else:
        gamma = np.zeros((*beta.shape[:2], 0, len(spec.membership)))
    return Params(beta=beta, sigma2=sigma**2, gamma=gamma)


def named_draws(draws: Params, spec: Spec) -> dict[str, np.ndarray]:
    """Posterior draws of every parameter of :func:`param_names`, each (chain, draw)."""
    out: dict[str, np.ndarray] = {}
    for j, term in enumerate(spec.terms):
        if term in spec.class_varying:
            for c in range(spec.classes):
                out[f"{term}[{class_label(c)}]"] = draws.beta[:, :, c, j]
        else:
            out[term] = draws.beta[:, :, 0, j]
    if spec.residual_variance == "class":
        for c in range(spec.classes):
            out[f"sigma2[{class_label(c)}]"] = draws.sigma2[:, :, c]
    else:
        out["sigma2"] = draws.sigma2[:, :, 0]
    for c in range(spec.classes - 1):
        for j, term in enumerate(spec.membership):
            out[f"C#{c + 1} ~ {term}"] = draws.gamma[:, :, c, j]
    return out


def _pointwise_draws(draws: Params, design: Design) -> tuple[np.ndarray, np.ndarray]:
    """Log-likelihood (chain, draw, n) and per-chain mean class probabilities (chain, n, K)."""
    f = pointwise(design.spec)
    n_chain, n_draw = draws.beta.shape[:2]
    loglik = np.empty((n_chain, n_draw, design.n_obs))
    post = np.zeros((n_chain, design.n_obs, design.spec.classes))
    for ch in range(n_chain):
        for d in range(n_draw):
            ll, pp = f(
                draws.beta[ch, d],
                draws.sigma2[ch, d],
                draws.gamma[ch, d],
                design.y,
                design.X,
                design.Z,
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
        model, sampler, draws, tune, chains, seed, init == "ml", progress
    )
    posterior = idata["posterior"].to_dataset()
    draws_struct = structured_draws(posterior, spec)
    named = named_draws(draws_struct, spec)
    loglik, chain_post = _pointwise_draws(draws_struct, design)
    idata["log_likelihood"] = xr.DataTree(
        xr.Dataset(
            {"y": (("chain", "draw", "obs"), loglik)},
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
