"""Fits shared by the whole session.

Each fixture here is a fit (or the data it is made from) that tests in more than one file
inspect without changing: it is made once, on first use, with exactly the arguments each of
those tests used before. A test that changes a result, or checks how a fit is made (its
seed, its compile cache, its warnings), makes its own.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator

import pandas as pd
import pytensor
import pytest

import bayesmix as bm
from bayesmix.paper.section2 import FIG1_PARAMS
from tests.support.fits import two_level_60x10
from tests.support.paths import MODELS
from tests.support.settings import CHECK_MODE, READ, TEST_BACKEND

# set before any fit, and inherited by the processes tests start (CLI, Monte Carlo workers)
os.environ.setdefault("BAYESMIX_NUTS_BACKEND", TEST_BACKEND)


@pytest.fixture
def python_linker() -> Iterator[None]:
    """pytensor's default mode set to :data:`tests.support.settings.CHECK_MODE` for the test."""
    with pytensor.config.change_flags(mode=CHECK_MODE):
        yield


@pytest.fixture(scope="session")
def fig1_spec() -> bm.Spec:
    """The Fig 1 single-level mixture (models/fig1.toml)."""
    return bm.load_spec(MODELS / "fig1.toml")


@pytest.fixture(scope="session")
def fig1_10k(fig1_spec: bm.Spec) -> pd.DataFrame:
    """Section 2.1's data: n = 10000 from the Fig 1 population values, x with mean 0 and
    variance 1."""
    return bm.simulate(fig1_spec, FIG1_PARAMS, n=10000, random_seed=2009)


@pytest.fixture(scope="session")
def fig1_10k_ml(fig1_spec: bm.Spec, fig1_10k: pd.DataFrame) -> bm.MLResult:
    """The ML fit of Fig 1 to :func:`fig1_10k` from 20 starts (seed 1)."""
    return bm.fit_ml(fig1_spec, fig1_10k, starts=20, random_seed=1)


@pytest.fixture(scope="session")
def fig3_bayes() -> bm.BayesResult:
    """NUTS fit of the Fig 3 model to :func:`tests.support.fits.two_level_60x10` ("fig3"),
    2 chains x 300 draws (seed 1), started at that ML fit."""
    fitted = two_level_60x10("fig3")
    return bm.fit_bayes(fitted.spec, fitted.data, **READ.kwargs(random_seed=1, init=fitted.ml))


@pytest.fixture(scope="session")
def conventional_on_fig3_bayes() -> bm.BayesResult:
    """NUTS fit of the conventional model (models/conventional.toml) to the data of
    :func:`fig3_bayes`, as :func:`fig3_bayes` is made: the paper's Section 2.2 pair."""
    fitted = two_level_60x10("fig3")
    spec = bm.load_spec(MODELS / "conventional.toml")
    ml = bm.fit_ml(spec, fitted.data, random_seed=1)
    return bm.fit_bayes(spec, fitted.data, **READ.kwargs(random_seed=1, init=ml))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the files with the most ``slow`` tests first, each file's tests in their order.

    ``make test`` hands whole files to two workers as they come free; starting with the
    longest files keeps one worker from finishing a long file alone at the end.
    """
    weight = Counter(item.path for item in items if item.get_closest_marker("slow"))
    items.sort(key=lambda item: -weight[item.path])
