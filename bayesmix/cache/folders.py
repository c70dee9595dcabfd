"""Where compiled code is kept between processes, and how it is written and cleared.

The root is the user's cache folder for bayesmix (``platformdirs``; on Linux
``~/.cache/bayesmix``), or the folder named by the environment variable
``BAYESMIX_CACHE``. Each cache has a subfolder: ``nutpie`` holds compiled
log-densities of PyMC models (:mod:`bayesmix.bayes.compiled_store`),
``exported`` the ML objectives as JAX exports and ``jax`` XLA's compilations
of them (:mod:`bayesmix.cache.xla`). Entries are written to a temporary
file in the same folder and renamed into place, so that a reader never sees
half a file and two processes writing one entry both succeed.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import platformdirs

CACHE_VARIABLE = "BAYESMIX_CACHE"
"""Environment variable naming the cache root in place of the user's cache folder."""

SUBFOLDERS = ("nutpie", "exported", "jax")
"""The caches under the root."""


def cache_root() -> Path:
    """The folder that holds every bayesmix cache (it may not exist yet)."""
    named = os.environ.get(CACHE_VARIABLE, "")
    return Path(named) if named else Path(platformdirs.user_cache_dir("bayesmix"))


def cache_folder(name: str) -> Path | None:
    """The subfolder ``name`` of :func:`cache_root`, created if needed; None when it
    cannot be created (a read-only home), in which case nothing is cached."""
    if name not in SUBFOLDERS:
        raise ValueError(f"unknown cache {name!r}; the caches are {', '.join(SUBFOLDERS)}")
    folder = cache_root() / name
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return folder


def write_atomic(path: Path, payload: bytes) -> bool:
    """Write ``payload`` to ``path`` through a temporary file renamed into place.

    Returns False, leaving ``path`` as it was, when the folder cannot be
    written (full disk, permissions); a cache that cannot be written is only
    slower, never wrong.
    """
    temporary: Path | None = None
    try:
        with tempfile.NamedTemporaryFile(
            dir=path.parent, prefix=f".{path.name}.", delete=False
        ) as handle:
            handle.write(payload)
            temporary = Path(handle.name)
        os.replace(temporary, path)
    except OSError:
        if temporary is not None:
            temporary.unlink(missing_ok=True)
        return False
    return True


@dataclass(frozen=True)
class CacheUsage:
    """One cache's folder, its number of entries and their size in bytes."""

    name: str
    folder: Path
    entries: int
    size: int


def cache_usage() -> list[CacheUsage]:
    """Every cache under :func:`cache_root`, with its entries and size."""
    usage = []
    for name in SUBFOLDERS:
        folder = cache_root() / name
        files = [p for p in folder.rglob("*") if p.is_file()] if folder.is_dir() else []
        usage.append(CacheUsage(name, folder, len(files), sum(p.stat().st_size for p in files)))
    return usage


def clear_cache() -> list[CacheUsage]:
    """Delete every cache under :func:`cache_root`; return what was deleted.

    Processes that already loaded compiled code keep it; the next process
    compiles again.
    """
    removed = cache_usage()
    for entry in removed:
        shutil.rmtree(entry.folder, ignore_errors=True)
    return removed
