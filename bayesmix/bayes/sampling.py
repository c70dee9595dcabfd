"""Running NUTS on a PyMC model: nutpie's compiled models kept per process, or PyMC's sampler."""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
import pandas as pd
import pymc as pm
import pytensor
import xarray as xr

from bayesmix.data.design import Design
from bayesmix.errors import EstimationError
from bayesmix.model.params import Params
from bayesmix.model.priors import Prior

Sampler = Literal["nutpie", "pymc"]


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


def _compiled_nutpie(model: pm.Model, ml_init: bool, key: str | None, backend: str) -> Any:
    import nutpie

    if key is not None and key in _COMPILED:
        _COMPILED.move_to_end(key)
        return _COMPILED[key]
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
    if key is not None:
        _COMPILED[key] = compiled
        while len(_COMPILED) > _COMPILED_MAX:
            _COMPILED.popitem(last=False)
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
    """Draws, compile and sampling seconds, and the draws kept per chain if interrupted."""
    if sampler == "nutpie":
        import nutpie

        t0 = time.perf_counter()
        compiled = _compiled_nutpie(model, ml_init, key, backend)
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
                raise EstimationError(
                    f"sampling was interrupted during tuning (after {time.perf_counter() - t1:.0f}"
                    " s), before any draw was kept; nothing to return."
                ) from None
            return _first_draws(idata, kept), t1 - t0, time.perf_counter() - t1, kept
        return idata, t1 - t0, time.perf_counter() - t1, None
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
    return idata, 0.0, time.perf_counter() - t0, None


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
