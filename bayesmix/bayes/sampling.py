"""Running NUTS on a PyMC model: nutpie's compiled models kept per process, or ``pm.sample``.

nutpie is called directly, so that its compiled model can be kept and reused
and an interrupted run returns its draws. The other NUTS implementations
(PyMC's own, numpyro's and blackjax's) run through ``pm.sample(nuts_sampler=...)``;
the JAX ones evaluate the model's log density, the fused mixture op included,
through its JAX implementation.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import importlib.util
import os
import re
import time
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
import pandas as pd
import pymc as pm
import pytensor
import xarray as xr

from bayesmix.cache.xla import persistent_jax_cache
from bayesmix.data.design import Design
from bayesmix.density.fused import register_jax
from bayesmix.errors import EstimationError
from bayesmix.model.params import Params
from bayesmix.model.priors import Prior
from bayesmix.validate import SAMPLERS

Sampler = Literal["nutpie", "pymc", "numpyro", "blackjax"]

_JAX_SAMPLERS = ("numpyro", "blackjax")


BACKEND_VARIABLE = "BAYESMIX_NUTS_BACKEND"
"""Environment variable naming nutpie's compiler when a fit does not: ``numba`` or ``jax``."""


def default_nutpie_backend() -> str:
    """nutpie's compiler when a fit names none: :data:`BACKEND_VARIABLE`, else numba.

    numba samples fastest on a CPU but compiles each new model for tens of
    seconds; JAX compiles in seconds and pays a dispatch cost per gradient, so
    it finishes short runs (and runs on a GPU) sooner.

    Raises
    ------
    EstimationError
        If the variable holds anything else.
    """
    value = os.environ.get(BACKEND_VARIABLE, "").strip()
    if value in ("", "numba", "jax"):
        return value or "numba"
    raise EstimationError(
        f"{BACKEND_VARIABLE}={value!r}: it must be 'numba' or 'jax'; unset it for numba."
    )


def sampler_backend(sampler: str, backend: str | None, adaptation: str) -> str:
    """The log-density compiler a sampler uses, after refusing options it cannot take.

    Parameters
    ----------
    sampler : str
        One of :data:`SAMPLERS`.
    backend : {"numba", "jax"} or None
        The compiler asked for; None for the sampler's own (for nutpie
        :func:`default_nutpie_backend`, numba for PyMC, JAX for numpyro and
        blackjax).
    adaptation : {"diag", "low_rank"}
        The mass-matrix adaptation asked for; ``"low_rank"`` is nutpie's.

    Returns
    -------
    str
        ``"numba"`` or ``"jax"``.

    Raises
    ------
    EstimationError
        For an unknown sampler or backend, a combination the sampler does not
        run, a JAX sampler whose package is not installed, or a blackjax
        release that PyMC 6.4 cannot run (1.6 and later).
    """
    if sampler not in SAMPLERS:
        choices = ", ".join(repr(s) for s in SAMPLERS)
        raise EstimationError(f"sampler must be one of {choices}, got {sampler!r}.")
    if backend not in (None, "numba", "jax"):
        raise EstimationError(f"backend must be 'numba' or 'jax' (or None), got {backend!r}.")
    if adaptation not in ("diag", "low_rank"):
        raise EstimationError(f"adaptation must be 'diag' or 'low_rank', got {adaptation!r}.")
    if sampler != "nutpie" and adaptation != "diag":
        raise EstimationError(
            f"adaptation={adaptation!r} is nutpie's; sampler={sampler!r} adapts a diagonal "
            "mass matrix: leave adaptation='diag', or use sampler='nutpie'."
        )
    own = "jax" if sampler in _JAX_SAMPLERS else "numba"
    if sampler == "nutpie":
        return backend or default_nutpie_backend()
    if backend not in (None, own):
        raise EstimationError(
            f"backend={backend!r} does not apply to sampler={sampler!r}, which always compiles "
            f"with {own}: leave backend unset, or use sampler='nutpie' with backend={backend!r}."
        )
    if sampler in _JAX_SAMPLERS and importlib.util.find_spec(sampler) is None:
        raise EstimationError(
            f"sampler={sampler!r} needs the {sampler} package, which is not installed: "
            f"pip install 'bayesmix[jax]' (or pip install {sampler})."
        )
    if sampler == "blackjax" and _release(importlib.metadata.version("blackjax")) >= (1, 6):
        # blackjax 1.6 dropped window_adaptation's progress_bar, which PyMC 6.4 still passes:
        # the first warm-up step fails inside JAX (pymc-devs/pymc#8367)
        raise EstimationError(
            f"sampler='blackjax' fails with blackjax {importlib.metadata.version('blackjax')} "
            "under PyMC 6.4, which supports blackjax before 1.6: pip install 'blackjax<1.6' "
            "(or 'bayesmix[jax]')."
        )
    return own


def _release(version: str) -> tuple[int, int]:
    """The major and minor release of a version string: ``"1.5.2"`` -> ``(1, 5)``."""
    found = re.match(r"(\d+)\.(\d+)", version)
    return (int(found[1]), int(found[2])) if found else (0, 0)


# nutpie models compiled in this process, by :func:`compile_key`; a refit of the same
# spec, data, priors and start (more draws, another seed) skips compilation
_COMPILED: OrderedDict[str, Any] = OrderedDict()


_COMPILED_MAX = 4


def compile_key(
    design: Design,
    priors: Mapping[str, Prior],
    init: Params | None,
    init_z: np.ndarray | None,
    backend: str,
) -> str:
    """Digest of everything the compiled log-density and its starting point depend on."""
    h = hashlib.sha256(backend.encode())
    h.update(repr(design.spec).encode())
    h.update(repr(sorted(priors.items())).encode())
    h.update(pd.util.hash_pandas_object(design.frame, index=False).to_numpy().tobytes())
    h.update(repr(tuple(design.frame.columns)).encode())
    arrays = [] if init is None else [getattr(init, f.name) for f in dataclasses.fields(init)]
    for value in [*arrays, init_z]:
        h.update(b"none" if value is None else np.ascontiguousarray(value, float).tobytes())
    return h.hexdigest()


def compiled_nutpie(model: pm.Model, ml_init: bool, key: str | None, backend: str) -> Any:
    """nutpie's compiled ``model`` (kept under ``key`` when one is given); with
    ``ml_init`` every chain starts at the model's initial point, without jitter.

    With numba, code compiled for a model of the same structure, in this
    process or an earlier one, is reused from :mod:`bayesmix.bayes.compiled_store`;
    with JAX, XLA's compilations are kept in the ``jax`` cache.
    """
    if key is not None and key in _COMPILED:
        _COMPILED.move_to_end(key)
        return _COMPILED[key]
    compiled = _compile_or_load(model, ml_init, backend)
    if key is not None:
        _COMPILED[key] = compiled
        while len(_COMPILED) > _COMPILED_MAX:
            _COMPILED.popitem(last=False)
    return compiled


def _compile_or_load(model: pm.Model, ml_init: bool, backend: str) -> Any:
    import nutpie

    from bayesmix.bayes import compiled_store

    if backend == "jax":
        persistent_jax_cache()
        register_jax()
        structure = None
    else:
        structure = compiled_store.structure_key(model, backend)
        code = compiled_store.load_code(structure)
        if code is not None:
            return compiled_store.bind(code, model, ml_init)
    # nutpie compiles its outer numba function afresh in every process, inlining the
    # log-density's inner functions when they are compiled in the same process but
    # calling them when they come from the on-disk cache; with fast-math reassociation
    # the two round differently, and the same seed gave different draws on a first
    # (cold-cache) run than on later ones. IEEE arithmetic makes both the same.
    with pytensor.config.change_flags(numba__fastmath=False):
        compiled = nutpie.compile_pymc_model(
            model,
            backend=backend,
            gradient_backend="jax" if backend == "jax" else "pytensor",
            jitter_rvs=set() if ml_init else None,
        )
    if structure is not None:
        compiled_store.store_code(structure, compiled, model)
    return compiled


def run_sampler(
    model: pm.Model,
    sampler: Sampler,
    draws: int,
    tune: int,
    chains: int,
    seed: int,
    ml_init: bool,
    progress: bool,
    adaptation: str = "diag",
    key: str | None = None,
    backend: str = "numba",
) -> tuple[xr.DataTree, float, float, int | None]:
    """Draws, compile and sampling seconds, and the draws kept per chain if interrupted.

    ``adaptation``, ``key`` (the compile cache's) and ``backend`` are nutpie's;
    the other samplers take them as :func:`sampler_backend` resolved them.
    """
    if sampler == "nutpie":
        return _run_nutpie(
            model, draws, tune, chains, seed, ml_init, progress, adaptation, key, backend
        )
    return _run_pm_sample(model, sampler, draws, tune, chains, seed, ml_init, progress)


def _run_nutpie(
    model: pm.Model,
    draws: int,
    tune: int,
    chains: int,
    seed: int,
    ml_init: bool,
    progress: bool,
    adaptation: str,
    key: str | None,
    backend: str,
) -> tuple[xr.DataTree, float, float, int | None]:
    """nutpie on the compiled model of ``key``; Ctrl-C keeps the draws every chain finished."""
    import nutpie

    t0 = time.perf_counter()
    compiled = compiled_nutpie(model, ml_init, key, backend)
    t1 = time.perf_counter()
    running = nutpie.sample(
        compiled,
        draws=draws,
        tune=tune,
        chains=chains,
        seed=seed,
        progress_bar=progress,
        save_warmup=False,
        adaptation=adaptation,
        blocking=False,
    )
    try:
        idata = running.wait()
    except KeyboardInterrupt:
        idata = running.abort()
        kept = _complete_draws(idata)
        if kept == 0:
            raise _interrupted_in_tuning(time.perf_counter() - t1) from None
        return _first_draws(idata, kept), t1 - t0, time.perf_counter() - t1, kept
    return idata, t1 - t0, time.perf_counter() - t1, None


def _run_pm_sample(
    model: pm.Model,
    sampler: Sampler,
    draws: int,
    tune: int,
    chains: int,
    seed: int,
    ml_init: bool,
    progress: bool,
) -> tuple[xr.DataTree, float, float, int | None]:
    """``pm.sample`` with the NUTS implementation ``sampler`` (pymc, numpyro or blackjax).

    Chains start at the model's initial point, unjittered when that is the
    ML solution, as nutpie's do. The compile seconds are ``pm.sample``'s time
    outside its sampling loop; numpyro and blackjax compile their loop with
    XLA when it starts, so that compilation counts as sampling.
    """
    if sampler == "pymc":
        options: dict[str, Any] = {"init": "adapt_diag" if ml_init else "jitter+adapt_diag"}
    else:
        register_jax()
        options = {"nuts": {"jitter": not ml_init, "chain_method": _chain_method(sampler, chains)}}
    t0 = time.perf_counter()
    with model:
        idata = pm.sample(
            draws=draws,
            tune=tune,
            chains=chains,
            random_seed=seed,
            progressbar=progress,
            compute_convergence_checks=False,
            nuts_sampler=sampler,
            **options,
        )
    total = time.perf_counter() - t0
    sampling_s = float(idata["posterior"].attrs.get("sampling_time", total))
    if "constant_data" in idata.children:
        # the design's arrays, which the result holds already; nutpie's DataTree has none
        del idata["constant_data"]
    for name in list(idata.children):
        # the JAX samplers' draws are JAX arrays; a result holds NumPy arrays, as nutpie's
        idata[name] = xr.DataTree(idata[name].to_dataset().as_numpy())
    # PyMC's own sampler stops at Ctrl-C and returns the draws so far (chains that stopped
    # early may be dropped to keep more draws); the JAX samplers run as one compiled call,
    # which Python interrupts only once it returns
    kept = int(idata["posterior"].sizes.get("draw", 0))
    if kept == 0:
        raise _interrupted_in_tuning(sampling_s)
    return idata, total - sampling_s, sampling_s, kept if kept < draws else None


def _chain_method(sampler: str, chains: int) -> str:
    """How a JAX sampler runs its chains: on one JAX device each, where there are enough.

    Else one after another (numpyro) or vectorised (blackjax, which has no
    sequential mode). pymc.sampling.jax asks XLA for many host devices when it
    is imported before JAX starts; a process that ran JAX before has one CPU
    device.
    """
    import jax
    import pymc.sampling.jax  # noqa: F401  (its import sets XLA's host device count)

    if jax.local_device_count() >= chains:
        return "parallel"
    return "sequential" if sampler == "numpyro" else "vectorized"


def _interrupted_in_tuning(seconds: float) -> EstimationError:
    return EstimationError(
        f"sampling was interrupted during tuning (after {seconds:.0f} s), before any draw "
        "was kept; nothing to return."
    )


def _complete_draws(idata: xr.DataTree) -> int:
    """Post-tuning draws that every chain has finished (unfinished ones are NaN)."""
    if "posterior" not in idata.children:
        return 0
    post = idata["posterior"].to_dataset()
    if not post.data_vars or post.sizes.get("draw", 0) == 0:
        return 0
    done = None
    for var in post.data_vars.values():
        finite = np.isfinite(var.values).reshape(var.shape[0], var.shape[1], -1).all(axis=-1)
        done = finite if done is None else done & finite
    assert done is not None
    # the leading draws that every chain completed
    return int(np.cumprod(done.all(axis=0)).sum())


def _first_draws(idata: xr.DataTree, kept: int) -> xr.DataTree:
    return xr.DataTree.from_dict(
        {
            f"/{name}": idata[name].to_dataset().isel(draw=slice(0, kept))
            if "draw" in idata[name].to_dataset().dims
            else idata[name].to_dataset()
            for name in idata.children
        }
    )
