"""What compiled code depends on besides the model: package versions, the CPU, the source.

A cache key combines the model's structure with :func:`environment_fingerprint`,
so that an upgrade of numba or pytensor, another processor (code is compiled
for the host CPU's features) or a change to bayesmix's own code never reuses
code compiled under other conditions.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import platform
import sys
from functools import lru_cache
from pathlib import Path

PACKAGES = ("bayesmix", "numba", "llvmlite", "pytensor", "pymc", "nutpie", "numpy", "jax")
"""Packages whose versions enter every cache key."""


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


def _cpu() -> str:
    """The host CPU's name and features as LLVM sees them (what numba compiles for)."""
    from llvmlite import binding

    return f"{binding.get_host_cpu_name()}:{binding.get_host_cpu_features().flatten()}"


def _source_digest() -> str:
    """Digest of bayesmix's own Python files: custom operators compile from them."""
    root = Path(__file__).resolve().parent.parent
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        h.update(path.relative_to(root).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()


@lru_cache(maxsize=1)
def environment_fingerprint() -> str:
    """Digest of the package versions, Python, the platform, the CPU and bayesmix's source."""
    parts = [f"{p}={_version(p)}" for p in PACKAGES]
    parts += [sys.version, platform.machine(), platform.system(), _cpu(), _source_digest()]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()
