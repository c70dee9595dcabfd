"""Helpers for tests that drive the command line."""

from __future__ import annotations

from collections.abc import Mapping


def param_args(values: Mapping[str, object]) -> list[str]:
    """``--param NAME=VALUE`` for every entry of ``values``, in their order."""
    return [arg for name, value in values.items() for arg in ("--param", f"{name}={value}")]
