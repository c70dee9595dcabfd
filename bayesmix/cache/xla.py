"""JAX across processes: XLA's compilation cache and exported functions, in bayesmix's
cache folder."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

from bayesmix.cache.fingerprint import environment_fingerprint
from bayesmix.cache.folders import cache_folder, write_atomic

MIN_COMPILE_SECONDS = 0.2
"""Compilations shorter than this are not written: loading them would not save time."""


@lru_cache(maxsize=1)
def persistent_jax_cache() -> None:
    """Keep XLA compilations in the ``jax`` cache, so a new process fitting the same
    shapes skips them; a cache folder the user configured for JAX is left alone."""
    import jax

    if jax.config.jax_compilation_cache_dir:
        return
    folder = cache_folder("jax")
    if folder is None:
        return
    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)


EXPORT_FORMAT = "bayesmix-jax-export-1"
"""Version of the stored exports' layout; part of every key."""


def export_key(*parts: object) -> str:
    """Digest of a compiled function's description ``parts`` (their ``repr``) and of
    :func:`~bayesmix.cache.fingerprint.environment_fingerprint`."""
    text = "\n".join([EXPORT_FORMAT, environment_fingerprint(), *map(repr, parts)])
    return hashlib.sha256(text.encode()).hexdigest()


def exported_function(
    key: str,
    build: Callable[[], Callable[..., Any]],
    arguments: Sequence[tuple[tuple[int, ...], str]],
) -> Callable[..., Any]:
    """A jitted function kept in the ``exported`` cache, for arguments of fixed shapes.

    The first process calls ``build()`` (a function that ``jax.jit`` can trace,
    such as the ``jit_fn`` of a pytensor function compiled in JAX mode, whose
    construction rewrites pytensor graphs for seconds), exports it for
    ``arguments`` (shape and dtype of each positional argument) and stores the
    export under ``key``. Later processes deserialise it, skipping pytensor and
    the tracing; XLA's own cache (:func:`persistent_jax_cache`) then skips the
    compilation. Every process calls the deserialised export, so the first
    and later ones run the same computation.
    """
    import jax
    from jax import export

    persistent_jax_cache()
    # as pytensor's JAX backend does on import, which a loaded export skips
    jax.config.update("jax_enable_x64", True)
    folder = cache_folder("exported")
    path = None if folder is None else folder / f"{key}.bin"
    if path is not None and path.is_file():
        try:
            return jax.jit(export.deserialize(bytearray(path.read_bytes())).call)
        except (OSError, ValueError, TypeError, IndexError):
            # an entry from another layout or a damaged file: exported afresh and replaced
            pass
    specs = [jax.ShapeDtypeStruct(shape, dtype) for shape, dtype in arguments]
    exported = export.export(jax.jit(build()))(*specs)
    if path is not None:
        write_atomic(path, bytes(exported.serialize()))
    return jax.jit(exported.call)
