"""Fits made once per test session and shared by the test files that only read them."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import pandas as pd

import bayesmix as bm
from bayesmix.paper.section2 import CONVENTIONAL_PARAMS, FIG3_PARAMS
from tests.support.paths import MODELS


@dataclass(frozen=True)
class Fitted:
    """A model, the data it was fitted to and its ML fit."""

    spec: bm.Spec
    data: pd.DataFrame
    ml: bm.MLResult


_POPULATION = {"fig3": FIG3_PARAMS, "conventional": CONVENTIONAL_PARAMS}


@cache
def two_level_60x10(model: str) -> Fitted:
    """Data of 60 schools x 10 students (seed 1) from the population values of ``model``
    (``"fig3"`` or ``"conventional"``) and its ML fit from 4 starts (seed 1).

    The conventional model has one class, so that its fit makes a single start whatever
    the number asked for. Used by tests/data/test_standardise.py and
    tests/ml/test_robustness.py, which rescale or shift these data and compare.
    """
    spec = bm.load_spec(MODELS / f"{model}.toml")
    data = bm.simulate(spec, _POPULATION[model], clusters=60, cluster_size=10, random_seed=1)
    return Fitted(spec, data, bm.fit_ml(spec, data, starts=4, random_seed=1))
