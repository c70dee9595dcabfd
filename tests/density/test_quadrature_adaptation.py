"""Re-adapting the quadrature nodes settles, also for schools whose moment updates cycle."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import bayesmix as bm
from bayesmix.data.design import build_design
from bayesmix.data.standardise import standardise
from bayesmix.density.quadrature import AdaptiveQuadrature
from bayesmix.paper.section2 import FIG3_PARAMS
from tests.support.paths import MODELS

# near the ML estimates of the 300 000-student Fig 3 data below, on the standardised scale
THETA = np.array(
    [0.8054517978572001, -0.5577356956425192, 0.22772651080408682, -0.4968225864050215,
     0.226447745121849, 0.3199316344830852, 0.709961134970469, -1.584776034208593,
     -0.00290694192063531, 0.9901051831894122, 0.998871238497084]
)  # fmt: skip

# of its 20 000 schools, those whose nodes cycled under plain moment updates
CYCLING = [11860, 13828, 14051]


@pytest.fixture(scope="module")
def cycling_schools():
    """The cycling schools' students, standardised as in the whole data set."""
    spec = bm.load_spec(MODELS / "fig3.toml")
    data = bm.simulate(spec, FIG3_PARAMS, clusters=20_000, cluster_size=15, random_seed=1)
    internal, _ = standardise(build_design(spec, data))
    rows = np.concatenate([np.arange(internal.bounds[j], internal.bounds[j + 1]) for j in CYCLING])
    with warnings.catch_warnings():
        # three clusters: the design is for the quadrature, not for a fit
        warnings.simplefilter("ignore", bm.errors.DesignWarning)
        return build_design(spec, internal.frame.iloc[rows])


def _changes(quad: AdaptiveQuadrature, step) -> list[float]:
    values = [quad.value_and_grad(THETA)[0]]
    for _ in range(12):
        step()
        values.append(quad.value_and_grad(THETA)[0])
    return list(np.abs(np.diff(values)))


def test_plain_moment_updates_cycle_on_these_schools(cycling_schools):
    quad = AdaptiveQuadrature(cycling_schools, 7, "jax")
    quad.adapt(THETA, iterations=6)
    changes = _changes(quad, lambda: quad._step(THETA, 0.0))
    assert min(changes[-6:]) > 1e-3


def test_re_adaptation_settles_on_these_schools(cycling_schools):
    quad = AdaptiveQuadrature(cycling_schools, 7, "jax")
    settled = quad.adapt(THETA, iterations=6, settle=True)
    assert quad.moved < 1e-4
    # settled nodes stay where they are
    changes = _changes(quad, lambda: quad.adapt(THETA, iterations=1, settle=True))
    assert max(changes) < 1e-5
    # and they are a function of the parameters: from the nodes of other parameters the
    # same log-likelihood is reached
    other = AdaptiveQuadrature(cycling_schools, 7, "jax")
    other.adapt(THETA * 1.05, iterations=6, settle=True)
    assert other.adapt(THETA, iterations=6, settle=True) == pytest.approx(settled, abs=1e-5)
