"""``bayesmix cache``: where compiled code is kept, and clearing it."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from bayesmix.cache.folders import CACHE_VARIABLE, cache_root, cache_usage, clear_cache


def _size(n_bytes: int) -> str:
    return f"{n_bytes / 2**20:.1f} MiB"


def _cmd_cache(args: argparse.Namespace) -> int:
    if args.action == "clear":
        removed = clear_cache()
        total = sum(u.size for u in removed)
        entries = sum(u.entries for u in removed)
        sys.stdout.write(f"removed {entries} entries ({_size(total)}) from {cache_root()}\n")
        return 0
    sys.stdout.write(f"cache folder: {cache_root()} (set {CACHE_VARIABLE} to move it)\n")
    for usage in cache_usage():
        sys.stdout.write(f"  {usage.name:<8} {usage.entries:>6} entries  {_size(usage.size)}\n")
    return 0


def register(sub: argparse._SubParsersAction) -> dict[str, Callable[[argparse.Namespace], int]]:
    """Add ``bayesmix cache {info,clear}`` to the subcommands ``sub``."""
    cache = sub.add_parser(
        "cache",
        help="show or clear the compiled-code caches",
        description="Compiled log-densities (nutpie) and XLA compilations (jax) are kept "
        "between processes, so a second fit of a model of the same structure does not "
        "compile again. 'info' shows where and how much; 'clear' deletes them.",
    )
    cache.add_argument("action", choices=("info", "clear"), nargs="?", default="info")
    return {"cache": _cmd_cache}
