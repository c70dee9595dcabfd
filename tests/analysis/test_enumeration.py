"""Class enumeration: the Vuong-Lo-Mendell-Rubin test, the bootstrap LRT, and both as
columns of the comparison table and criteria of class selection."""

from __future__ import annotations

import dataclasses
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import bayesmix as bm
from bayesmix.analysis.lmr import vuong_weights, weighted_chi2_sf
from bayesmix.errors import EstimationError
from bayesmix.ml.scores import unit_scores
from bayesmix.paper.section2 import FIG1_PARAMS
from tests.support.fits import two_level_60x10
from tests.support.paths import MODELS

ONE_CLASS = {"1": 0.0, "x": 0.5, "sigma2": 1.0}
"""A one-class regression of y on x, the null of the Fig 1 mixture."""


@pytest.fixture(scope="module")
def fig1() -> bm.Spec:
    return bm.load_spec(MODELS / "fig1.toml")


def _pair(spec: bm.Spec, data: pd.DataFrame) -> tuple[bm.MLResult, bm.MLResult]:
    """The one- and two-class fits, the two-class one from 10 starts (seed 1)."""
    with warnings.catch_warnings():
        # a two-class fit to one-class data replicates its best solution rarely: expected
        warnings.simplefilter("ignore", bm.BayesmixWarning)
        return (
            bm.fit_ml(spec.with_classes(1), data, random_seed=1),
            bm.fit_ml(spec, data, starts=10, random_seed=1),
        )


@pytest.fixture(scope="module")
def two_class(fig1: bm.Spec) -> tuple[bm.MLResult, bm.MLResult]:
    """300 students from the Fig 1 two-class population."""
    return _pair(fig1, bm.simulate(fig1, FIG1_PARAMS, n=300, random_seed=11))


@pytest.fixture(scope="module")
def one_class(fig1: bm.Spec) -> tuple[bm.MLResult, bm.MLResult]:
    """300 students from a one-class regression."""
    return _pair(fig1, bm.simulate(fig1.with_classes(1), ONE_CLASS, n=300, random_seed=11))


def test_weighted_chi2_equal_weights_is_chi2() -> None:
    for k in (1, 3, 8):
        for x in (0.0, 0.7, 4.0, 15.0, 60.0):
            assert weighted_chi2_sf(x, np.ones(k)) == pytest.approx(stats.chi2.sf(x, k), abs=1e-9)


def test_weighted_chi2_mixed_weights_against_simulation() -> None:
    weights = np.array([1.6, 0.8, 0.3, -0.2, -0.9])
    z = (np.random.default_rng(4).standard_normal((400_000, 5)) ** 2) @ weights
    for x in (-1.0, 0.0, 1.5, 4.0, 9.0):
        sd = np.sqrt(0.25 / z.size)
        assert weighted_chi2_sf(x, weights) == pytest.approx(np.mean(z >= x), abs=4 * sd)


def test_lmr_rejects_one_class_on_two_class_data(two_class) -> None:
    smaller, larger = two_class
    result = bm.lmr(smaller, larger)
    assert result.df == 5
    assert result.weights.shape == (11,)
    assert result.statistic == pytest.approx(2 * (larger.loglik - smaller.loglik))
    assert result.adjusted_statistic == pytest.approx(
        result.statistic / (1 + 1 / (5 * np.log(300)))
    )
    assert result.p_value < 1e-6
    assert result.adjusted_p_value < 1e-6
    assert "Lo-Mendell-Rubin adjusted LRT" in result.summary()
    assert json.loads(json.dumps(result.to_dict()))["df"] == 5


def test_lmr_does_not_reject_on_one_class_data(one_class) -> None:
    result = bm.lmr(*one_class)
    assert result.p_value > 0.1
    assert result.adjusted_p_value > result.p_value
    # the reference's mean is the sum of the weights, near the parameter difference
    assert 3 < result.mean < 8


def test_lmr_of_a_two_level_mixture_sums_scores_over_schools() -> None:
    fitted = two_level_60x10("fig3")
    one = bm.fit_ml(fitted.spec.with_classes(1), fitted.data, random_seed=1)
    result = bm.lmr(one, fitted.ml)
    assert result.units == 60
    assert result.df == fitted.ml.n_params - one.n_params == 6
    assert result.adjusted_statistic == pytest.approx(result.statistic / (1 + 1 / (6 * np.log(60))))
    assert result.p_value < 1e-4


def test_vuong_weights_equal_the_eigenvalues_of_w(two_class) -> None:
    """The symmetric computation against Vuong's W built block by block."""
    smaller, larger = two_class
    f, g = unit_scores(larger), unit_scores(smaller)
    a_f, a_g = -f.information, -g.information
    b_f, b_g = f.scores.T @ f.scores, g.scores.T @ g.scores
    b_fg = f.scores.T @ g.scores
    w = np.block(
        [
            [-b_f @ np.linalg.inv(a_f), -b_fg @ np.linalg.inv(a_g)],
            [b_fg.T @ np.linalg.inv(a_f), b_g @ np.linalg.inv(a_g)],
        ]
    )
    direct = np.sort(np.linalg.eigvals(w).real)[::-1]
    np.testing.assert_allclose(vuong_weights(f, g), direct, atol=1e-8 * np.abs(direct).max())


def test_vuong_weights_of_nested_regressions_are_ones_and_zeros() -> None:
    """Two correctly specified nested models: the weights are p - q ones and zeros, the
    reference is chi-square with p - q degrees of freedom."""
    rng = np.random.default_rng(2)
    n = 20_000
    x = rng.standard_normal((n, 3))
    y = x @ np.array([0.5, 0.0, 0.0]) + rng.standard_normal(n)

    def fit(cols: list[int]) -> bm.ml.scores.UnitScores:
        X = x[:, cols]
        beta = np.linalg.lstsq(X, y, rcond=None)[0]
        resid = y - X @ beta
        sigma2 = resid @ resid / n
        # scores of (beta, sigma2) of a normal regression, and the observed information
        scores = np.column_stack(
            [X * (resid / sigma2)[:, None], -0.5 / sigma2 + 0.5 * resid**2 / sigma2**2]
        )
        info = np.zeros((len(cols) + 1,) * 2)
        info[:-1, :-1] = X.T @ X / sigma2
        info[-1, -1] = n / (2 * sigma2**2)
        return bm.ml.scores.UnitScores(scores=scores, information=info)

    weights = vuong_weights(fit([0, 1, 2]), fit([0]))
    np.testing.assert_allclose(weights[:2], 1.0, atol=0.05)
    np.testing.assert_allclose(weights[2:], 0.0, atol=0.05)


def test_lmr_refuses_pairs_it_cannot_test(fig1, two_class) -> None:
    smaller, larger = two_class
    with pytest.raises(EstimationError, match="pass the fit with fewer classes first"):
        bm.lmr(larger, smaller)
    intercept_only = dataclasses.replace(fig1.with_classes(1), terms=("1",))
    not_nested = bm.fit_ml(intercept_only, larger.design.frame, random_seed=1)
    with pytest.raises(EstimationError, match=r"with_classes\(1\)"):
        bm.lmr(not_nested, larger)
    data = larger.design.frame.iloc[:200]
    fewer = bm.fit_ml(fig1.with_classes(1), data, random_seed=1)
    with pytest.raises(EstimationError, match="same data"):
        bm.lmr(fewer, larger)


BLRT_FAST = {"starts": 3, "progress": False}
"""Bootstrap fits from three random starts: enough to test the machinery quickly."""


@pytest.fixture(scope="module")
def blrt_two_class(two_class) -> bm.BLRTResult:
    """Four bootstraps of the two-class data, seed 5, in this process."""
    return bm.blrt(*two_class, bootstraps=4, random_seed=5, **BLRT_FAST)


def test_blrt_p_value_counts_the_bootstraps(blrt_two_class, two_class) -> None:
    smaller, larger = two_class
    result = blrt_two_class
    assert result.statistic == pytest.approx(2 * (larger.loglik - smaller.loglik))
    assert result.completed == 4 and result.failed == 0
    # far beyond every bootstrap statistic under one class: the smallest p four allow
    assert np.all(result.lr < result.statistic)
    assert result.p_value == pytest.approx(1 / 5)
    assert [r["replication"] for r in result.records] == [0, 1, 2, 3]
    assert "approximate p-value" in result.summary()
    assert result.table().shape[0] == 4


def test_blrt_p_value_on_one_class_data(one_class) -> None:
    result = bm.blrt(*one_class, bootstraps=4, random_seed=5, **BLRT_FAST)
    exceed = int(np.sum(result.lr >= result.statistic))
    assert result.p_value == pytest.approx((1 + exceed) / 5)
    assert result.p_value > 0.2


def test_blrt_resumes_from_its_file(two_class, blrt_two_class, tmp_path: Path) -> None:
    out = tmp_path / "blrt.jsonl"
    first = bm.blrt(*two_class, bootstraps=2, random_seed=5, out=out, **BLRT_FAST)
    assert [r["lr"] for r in first.records] == [r["lr"] for r in blrt_two_class.records[:2]]
    lines = out.read_text().splitlines()
    assert len(lines) == 3  # the header and two bootstraps
    more = bm.blrt(*two_class, bootstraps=4, random_seed=5, out=out, **BLRT_FAST)
    # the first two are read back, not run again; the two new ones are those of one run
    assert more.records[:2] == first.records
    assert [r["lr"] for r in more.records] == [r["lr"] for r in blrt_two_class.records]
    assert len(out.read_text().splitlines()) == 5
    loaded = bm.BLRTResult.load(out)
    assert loaded.p_value == more.p_value and loaded.statistic == more.statistic


def test_blrt_refuses_to_resume_other_settings(two_class, tmp_path: Path) -> None:
    out = tmp_path / "blrt.jsonl"
    bm.blrt(*two_class, bootstraps=1, random_seed=5, out=out, **BLRT_FAST)
    with pytest.raises(EstimationError, match="different study"):
        bm.blrt(*two_class, bootstraps=1, random_seed=6, out=out, **BLRT_FAST)
    with pytest.raises(EstimationError, match="settings"):
        bm.blrt(*two_class, bootstraps=1, random_seed=5, out=out, starts=4, progress=False)


def test_blrt_seed_reproduces_across_workers(two_class, blrt_two_class) -> None:
    pooled = bm.blrt(*two_class, bootstraps=4, random_seed=5, workers=2, **BLRT_FAST)
    assert [r["lr"] for r in pooled.records] == [r["lr"] for r in blrt_two_class.records]


def test_blrt_runs_on_dask(two_class, blrt_two_class) -> None:
    distributed = pytest.importorskip("distributed")
    with distributed.Client(processes=False, n_workers=1, threads_per_worker=1) as client:
        result = bm.blrt(*two_class, bootstraps=2, random_seed=5, client=client, **BLRT_FAST)
    assert [r["lr"] for r in result.records] == [r["lr"] for r in blrt_two_class.records[:2]]


def test_blrt_refuses_bad_options(two_class) -> None:
    with pytest.raises(EstimationError, match="bootstraps must be a positive integer"):
        bm.blrt(*two_class, bootstraps=0)
    with pytest.raises(EstimationError, match="pass the fit with fewer classes first"):
        bm.blrt(two_class[1], two_class[0])


def test_compare_adds_test_columns(two_class) -> None:
    smaller, larger = two_class
    table = bm.compare(
        [smaller, larger], lmr=True, blrt=2, blrt_options={"random_seed": 5, **BLRT_FAST}
    )
    assert np.isnan(table.loc[0, "lmr_p"]) and np.isnan(table.loc[0, "blrt_p"])
    assert table.loc[1, "lmr_p"] == pytest.approx(bm.lmr(smaller, larger).p_value)
    assert table.loc[1, "blrt_p"] == pytest.approx(1 / 3)
    assert "lmr_adj_p" in bm.format_table(table)
    assert "blrt_p" not in bm.compare([smaller, larger]).columns


def test_select_classes_by_lmr_keeps_one_class_on_one_class_data(one_class) -> None:
    data = one_class[0].design.frame
    spec = one_class[1].spec
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bm.BayesmixWarning)
        chosen = bm.select_classes(
            spec, data, max_classes=2, starts=10, random_seed=1, criterion="lmr"
        )
    assert chosen.best.spec.classes == 1
    assert chosen.table.loc[1, "lmr_adj_p"] > 0.05
    assert "adjusted LMR test: fig1 with K = 1" in str(chosen)


def test_select_classes_by_blrt_keeps_two_classes_on_two_class_data(two_class) -> None:
    data = two_class[0].design.frame
    chosen = bm.select_classes(
        two_class[1].spec,
        data,
        max_classes=2,
        starts=10,
        random_seed=1,
        criterion="blrt",
        alpha=0.25,
        bootstraps=3,
        blrt_options={"random_seed": 5, **BLRT_FAST},
    )
    assert chosen.best.spec.classes == 2
    assert chosen.table.loc[1, "blrt_p"] == pytest.approx(0.25)


def test_the_class_tests_refuse_weighted_fits(fig1, two_class) -> None:
    smaller, larger = two_class
    data = larger.design.frame.assign(wt=np.linspace(0.5, 2.0, larger.n_obs))
    weighted = dataclasses.replace(fig1, weights=bm.Weights(within="wt"))
    fit = bm.fit_ml(weighted, data, starts=3, random_seed=1)
    with pytest.raises(EstimationError, match="not defined for fits with sampling weights"):
        bm.blrt(smaller, fit, bootstraps=2, **BLRT_FAST)
    with pytest.raises(EstimationError, match="not defined for fits with sampling weights"):
        bm.lmr(smaller, fit)
