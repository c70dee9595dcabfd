"""The design matrices of a model on numeric data, shared by building and checking them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True, eq=False)
class Matrices:
    """The design matrices of a spec on numeric data (see :class:`Design` for shapes)."""

    y: np.ndarray
    X: np.ndarray
    F: np.ndarray
    R: np.ndarray
    Z: np.ndarray
    V: np.ndarray
    W: np.ndarray
    schools: pd.DataFrame
