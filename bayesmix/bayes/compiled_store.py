"""nutpie's compiled log-densities kept on disk, keyed on the model's structure.

nutpie compiles a PyMC model in two steps that both take seconds in every
new process: pytensor rewrites the log-density and its gradient and compiles
them with numba, then numba compiles nutpie's C-callable wrappers around
them, which numba's own cache cannot keep. This module keeps the machine code
of both wrappers (the log-density with its gradient, and the expansion to the
traced variables) with the numba environments they refer to and the layout of
the shared data they read, in :func:`bayesmix.cache.folders.cache_folder`
``("nutpie")``, under :func:`structure_key`: a digest of the model's graph
(operations, constants, the names, types and shapes of its shared data, not
their values) and of :func:`~bayesmix.cache.fingerprint.environment_fingerprint`.

A process fitting a model of the same structure (the same spec, priors and
sampling coordinates on data of the same shapes) loads that code, gives it its
own data and builds the chains' starting points from its own model, so the
same seed gives the same draws as code compiled in that process.

It relies on the layout of nutpie 0.16's compiled PyMC model, whose version
is part of every key.
"""

from __future__ import annotations

import builtins
import hashlib
import importlib
import io
import pickle
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pymc as pm
import pytensor
from pytensor.graph.basic import Constant
from pytensor.graph.op import HasInnerGraph
from pytensor.graph.traversal import ancestors
from pytensor.tensor.sharedvar import SharedVariable

from bayesmix.cache.fingerprint import environment_fingerprint
from bayesmix.cache.folders import cache_folder, write_atomic

FORMAT = "bayesmix-nutpie-1"
"""Version of the stored layout; part of every key."""

_ENV_SYMBOL = re.compile(r"@(_ZN08NumbaEnv[^\s,()]*)")


@dataclass(frozen=True)
class CompiledCode:
    """The machine code of a compiled model's two C callbacks, ready to call.

    ``shared`` lists each shared variable the code reads, by its name in the
    model and its field in nutpie's data record, in the record's order;
    ``keepalive`` holds the code libraries and numba environments the
    addresses point into.
    """

    logp_address: int
    expand_address: int
    shared: tuple[tuple[str, str], ...]
    n_dim: int
    n_expanded: int
    shape_info: tuple[Any, ...]
    keepalive: tuple[Any, ...]


@dataclass(frozen=True)
class _Callback:
    """What nutpie reads of a numba ``cfunc``: its address."""

    address: int


# code loaded or compiled in this process, by structure key, for the process's life:
# loading one library twice would define its symbols twice, so none is ever dropped
_LOADED: dict[str, CompiledCode] = {}


def _graph_text(outputs: list[Any]) -> str:
    buffer = io.StringIO()
    pytensor.dprint(outputs, file=buffer, print_type=True, print_shape=True)
    return buffer.getvalue()


def _leaves(outputs: list[Any]) -> list[Any]:
    """Every constant and shared variable of the graph, inner graphs included."""
    seen: list[Any] = []
    visited: set[int] = set()
    pending = list(outputs)
    while pending:
        inner: list[Any] = []
        for var in ancestors(pending):
            if id(var) in visited:
                continue
            visited.add(id(var))
            if isinstance(var, Constant | SharedVariable):
                seen.append(var)
            if var.owner is not None and isinstance(var.owner.op, HasInnerGraph):
                inner.extend(var.owner.op.inner_outputs)
        pending = inner
    return seen


def structure_key(model: pm.Model, backend: str) -> str:
    """Digest of everything nutpie's compiled code depends on, but no data values.

    The graphs of the joint log-density and of the traced variables (their
    printed form, every constant's bytes, each shared variable's name, dtype
    and shape), the free variables' names and transforms, the compiler and
    :func:`~bayesmix.cache.fingerprint.environment_fingerprint`.
    """
    outputs = [model.logp(), *model.unobserved_value_vars]
    h = hashlib.sha256(f"{FORMAT}\n{backend}\n{environment_fingerprint()}\n".encode())
    h.update(_graph_text(outputs).encode())
    for leaf in _leaves(outputs):
        if isinstance(leaf, SharedVariable):
            value = np.asarray(leaf.get_value(borrow=True))
            h.update(f"shared {leaf.name} {value.dtype} {value.shape}\n".encode())
        else:
            data = np.asarray(leaf.data)
            h.update(f"constant {data.dtype} {data.shape}\n".encode())
            # an object array's bytes are addresses: its printed values identify it
            raw = repr(leaf.data).encode() if data.dtype.hasobject else data.tobytes()
            h.update(raw)
    for rv in model.free_RVs:
        value = model.rvs_to_values[rv]
        h.update(f"free {rv.name} {value.name} {model.rvs_to_transforms.get(rv)}\n".encode())
    return h.hexdigest()


def _environments(libraries: list[Any]) -> list[tuple[str, str | None, list[Any]]]:
    """The numba environments the libraries' code refers to: name, module, constants."""
    from numba.core.environment import lookup_environment

    found = []
    for library in libraries:
        for name in sorted(set(_ENV_SYMBOL.findall(library.get_llvm_str()))):
            env = lookup_environment(name)
            if env is not None:
                found.append((name, env.globals.get("__name__"), list(env.consts)))
    return found


def capture(compiled: Any, model: pm.Model) -> tuple[CompiledCode, bytes] | None:
    """The code of nutpie's freshly compiled ``compiled`` and its stored form.

    None when the code cannot be kept: a shared variable without a unique
    name in ``model``, or an environment numba cannot serialise.
    """
    from numba.core import serialize

    names = [var.name for var in compiled.shared_var_keys]
    if len(set(names)) != len(names) or any(n not in model.named_vars for n in names):
        return None
    callbacks = (compiled.compiled_logp_func, compiled.compiled_expand_func)
    libraries = [cb._library for cb in callbacks]
    try:
        environments = serialize.dumps(_environments(libraries))
    except (pickle.PicklingError, TypeError, AttributeError):
        return None
    shared = tuple((var.name, key) for var, key in compiled.shared_var_keys.items())
    stored = {
        "format": FORMAT,
        "callbacks": [
            (cb.native_name, lib.serialize_using_object_code())
            for cb, lib in zip(callbacks, libraries, strict=True)
        ],
        "environments": environments,
        "shared": shared,
        "n_dim": compiled.n_dim,
        "n_expanded": compiled.n_expanded,
        "shape_info": compiled.shape_info,
    }
    code = CompiledCode(
        logp_address=callbacks[0].address,
        expand_address=callbacks[1].address,
        shared=shared,
        n_dim=compiled.n_dim,
        n_expanded=compiled.n_expanded,
        shape_info=tuple(compiled.shape_info),
        keepalive=(compiled,),
    )
    return code, pickle.dumps(stored, protocol=pickle.HIGHEST_PROTOCOL)


def _rebuild_environment(name: str, module: str | None, consts: list[Any]) -> Any:
    from numba.core.environment import Environment, lookup_environment

    env = lookup_environment(name)
    if env is not None:
        return env
    namespace = importlib.import_module(module).__dict__ if module else {"__builtins__": builtins}
    env = Environment(namespace)
    env.consts[:] = consts
    env.env_name = name
    Environment._memo[name] = env
    return env


def _load(payload: bytes) -> CompiledCode | None:
    """The code stored in ``payload``, linked into this process; None if it is not ours."""
    from numba.core import serialize
    from numba.core.registry import cpu_target
    from numba.core.runtime import rtsys

    stored = pickle.loads(payload)
    if not isinstance(stored, dict) or stored.get("format") != FORMAT:
        return None
    context = cpu_target.target_context
    rtsys.initialize(context)
    libraries, addresses = [], []
    for symbol, serialized in stored["callbacks"]:
        library = context.codegen().unserialize_library(serialized)
        libraries.append(library)
        addresses.append(library.get_pointer_to_function(symbol))
    environments = [_rebuild_environment(*e) for e in serialize.loads(stored["environments"])]
    codegen = libraries[0].codegen
    for env in environments:
        codegen.set_env(env.env_name, env)
    return CompiledCode(
        logp_address=addresses[0],
        expand_address=addresses[1],
        shared=tuple(tuple(s) for s in stored["shared"]),
        n_dim=stored["n_dim"],
        n_expanded=stored["n_expanded"],
        shape_info=tuple(stored["shape_info"]),
        keepalive=(*libraries, *environments),
    )


def _remember(key: str, code: CompiledCode) -> CompiledCode:
    _LOADED[key] = code
    return code


def load_code(key: str) -> CompiledCode | None:
    """The code stored under ``key`` (loaded once per process), or None."""
    if key in _LOADED:
        return _LOADED[key]
    folder = cache_folder("nutpie")
    path = None if folder is None else folder / f"{key}.pkl"
    if path is None or not path.is_file():
        return None
    try:
        code = _load(path.read_bytes())
    except (OSError, EOFError, pickle.UnpicklingError, ImportError, AttributeError, ValueError):
        # an entry from another layout or a damaged file is compiled afresh and replaced
        return None
    return None if code is None else _remember(key, code)


def store_code(key: str, compiled: Any, model: pm.Model) -> bool:
    """Keep nutpie's freshly compiled ``compiled`` under ``key``, on disk and in this
    process; False when it cannot be kept (see :func:`capture`) or written."""
    captured = capture(compiled, model)
    if captured is None:
        return False
    code, payload = captured
    _remember(key, code)
    folder = cache_folder("nutpie")
    return folder is not None and write_atomic(folder / f"{key}.pkl", payload)


def bind(code: CompiledCode, model: pm.Model, ml_init: bool) -> Any:
    """A nutpie model running ``code`` on ``model``'s data, from ``model``'s start.

    With ``ml_init`` every chain starts at the model's initial point without
    jitter, as :func:`nutpie.compile_pymc_model` with ``jitter_rvs=set()``;
    otherwise every free variable is jittered, as by default.
    """
    from nutpie.compile_pymc import (
        CompiledPyMCModel,
        _prepare_dims_and_coords,
        _rv_dict_to_flat_array_wrapper,
        _wrap_with_lock,
        make_user_data,
    )
    from pymc.initial_point import make_initial_point_fn

    shared_data, shared_var_keys = {}, {}
    for name, field in code.shared:
        var = model[name]
        value = np.array(var.get_value(), order="C", copy=True)
        value.flags.writeable = False
        shared_data[field] = value
        shared_var_keys[var] = field
    point = make_initial_point_fn(
        model=model,
        default_strategy="support_point",
        jitter_rvs=set() if ml_init else set(model.free_RVs),
        return_transformed=True,
    )
    names, _, shapes = code.shape_info
    free = len(model.free_RVs)
    reparameterized = [
        model.rvs_to_values[rv].name
        for rv in model.free_RVs
        if model.rvs_to_transforms.get(rv) is not None
    ]
    dims, coords = _prepare_dims_and_coords(model, code.shape_info, reparameterized)
    return CompiledPyMCModel(
        _n_dim=code.n_dim,
        dims=dims,
        _coords=coords,
        _shapes={name: tuple(shape) for name, shape in zip(names, shapes, strict=True)},
        compiled_logp_func=_Callback(code.logp_address),
        compiled_expand_func=_Callback(code.expand_address),
        initial_point_func=_rv_dict_to_flat_array_wrapper(
            _wrap_with_lock(point), names=names[:free], shapes=shapes[:free]
        ),
        shared_data=shared_data,
        shared_var_keys=shared_var_keys,
        user_data=make_user_data(shared_var_keys, shared_data),
        n_expanded=code.n_expanded,
        shape_info=code.shape_info,
        logp_func=code,
        expand_func=code,
        reparameterized_names=reparameterized,
    )
