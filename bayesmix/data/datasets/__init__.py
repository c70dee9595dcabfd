"""Data sets shipped with bayesmix."""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources

import pandas as pd


def load_hsb() -> pd.DataFrame:
    """High School and Beyond: 7185 students in 160 schools.

    Columns: ``school``, ``math``, ``female``, ``minority``, ``ses``,
    ``meanses``, ``catholic``, ``size``, ``pracad``, ``disclim``, ``himinty``.
    ``female``, ``minority`` and ``ses`` are student-level; the others are
    school-level (constant within ``school``).

    Returns
    -------
    pandas.DataFrame
    """
    with resources.files(__name__).joinpath("hsb.csv").open("r", encoding="utf-8") as fh:
        return pd.read_csv(fh)


BUNDLED: dict[str, Callable[[], pd.DataFrame]] = {"hsb": load_hsb}
"""Bundled data sets by the name the CLI and ``data=`` arguments accept."""

__all__ = ["BUNDLED", "load_hsb"]
