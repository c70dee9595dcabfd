"""K selection, starting values carried between models, and `bayesmix paper`."""

from __future__ import annotations

import numpy as np
import pytest

import bayesmix as bm
from bayesmix.ml.starts import _strip_between
from bayesmix.model import params as param_layout
from bayesmix.paper.runs import PaperPlan, run_paper
from bayesmix.paper.section2 import FIG1_PARAMS
from tests.support.models import C22_PARAMS, c22_spec
from tests.support.paths import MODELS
from tests.support.settings import SHORT


@pytest.fixture(scope="module")
def fig1_data():
    spec = bm.load_spec(MODELS / "fig1.toml")
    return bm.simulate(spec, FIG1_PARAMS, n=3000, covariates={"x": "bernoulli"}, random_seed=2)


def test_select_classes_stops_when_bic_gets_worse(fig1_data):
    sel = bm.select_classes(
        bm.load_spec(MODELS / "fig1.toml"), fig1_data, max_classes=4, starts=4, random_seed=1
    )
    ks = [f.spec.classes for f in sel.fits]
    # two true classes: K = 3 is fitted, is worse by BIC, and K = 4 is not tried
    assert ks == [1, 2, 3]
    assert sel.stopped_early
    assert sel.best.spec.classes == 2
    assert list(sel.table["best_bic"]) == ["", "*", ""]
    assert sel.table["bic"].iloc[2] > sel.table["bic"].iloc[1]
    assert "smallest BIC: fig1 with K = 2" in str(sel)
    with pytest.raises(bm.EstimationError, match="smaller than min_classes"):
        bm.select_classes(bm.load_spec(MODELS / "fig1.toml"), fig1_data, max_classes=1,
                          min_classes=2)  # fmt: skip


def test_user_starting_values_are_one_more_start(fig1_data):
    spec = bm.load_spec(MODELS / "fig1.toml")
    fit = bm.fit_ml(spec, fig1_data, starts=1, random_seed=3, init=FIG1_PARAMS)
    assert fit.starts.n_starts == 1 and len(fit.starts.logliks) == 2
    assert fit.loglik == pytest.approx(max(fit.starts.logliks), abs=1e-6)
    with pytest.raises(bm.EstimationError, match="missing parameter value"):
        bm.fit_ml(spec, fig1_data, starts=1, init={"1[c1]": 3.0})


def test_strip_between_names():
    assert _strip_between("1[c1,d2]", 2) == ("1[c1]", 1)
    assert _strip_between("female[d1]", 2) == ("female", 0)
    assert _strip_between("x[c2]", 2) == ("x[c2]", 0)


def test_between_start_carries_model_b_into_model_c():
    data = bm.simulate(c22_spec(), C22_PARAMS, clusters=60, cluster_size=10, random_seed=2)
    b = bm.fit_ml(c22_spec(1), data, starts=2, random_seed=1)
    start = bm.between_start(b, c22_spec(), shift=0.5)
    step = 0.5 * float(np.std(b.design.y))
    est = b.params["estimate"]
    assert start["1[c1,d1]"] == pytest.approx(est["1[c1]"])
    assert start["1[c2,d2]"] == pytest.approx(est["1[c2]"] - step)
    assert start["x[c2]"] == pytest.approx(est["x[c2]"])
    assert start["D#1 ~ w"] == 0.0
    assert list(start) == param_layout.param_names(c22_spec())
    with pytest.raises(bm.EstimationError, match="one level-2 class"):
        bm.between_start(b, bm.load_spec(MODELS / "hsb_C.toml"))


@pytest.mark.slow
def test_bayes_starts_from_a_given_ml_fit_without_refitting(monkeypatch):
    import bayesmix.ml.fit as ml_fit

    spec = bm.load_spec(MODELS / "fig1.toml")
    # a continuous x: with the 0/1 x of fig1_data the classes of the x = 1 students can
    # swap labels on their own, a second posterior mode a short chain may visit
    data = bm.simulate(spec, FIG1_PARAMS, n=3000, random_seed=2)
    ml = bm.fit_ml(spec, data, starts=4, random_seed=1)

    def refit(*args, **kwargs):
        raise AssertionError("fit_bayes refitted by ML although given an ML fit")

    with monkeypatch.context() as patch:
        patch.setattr(ml_fit, "fit_internal", refit)
        fit = bm.fit_bayes(spec, data, **SHORT.kwargs(random_seed=1, init=ml))
    assert fit.settings["init"] == "ml"
    z = (fit.table["mean"] - ml.params["estimate"]) / fit.table["sd"]
    assert z.abs().max() < 0.5
    other = bm.fit_ml(spec.with_classes(3), data, starts=2, random_seed=1)
    with pytest.raises(bm.EstimationError, match="not of 'fig1'"):
        bm.fit_bayes(spec, data, init=other)


@pytest.mark.slow
def test_paper_run_writes_tables_figures_and_report(tmp_path):
    plan = PaperPlan(mixture_classes=(2,), between=False, starts=2, starts_large=2, bayes_models=())
    result = run_paper(tmp_path, plan=plan, seed=1)
    table2 = result["table2"]
    assert list(table2["label"]) == ["1", "1b", "1c", "A2", "B2"]
    # the paper's ordering of the one-class models and the gain from two classes
    assert table2.set_index("label").loc["A2", "loglik"] == pytest.approx(-22917.164, abs=0.01)
    assert table2.set_index("label").loc["1", "n_params"] == 19
    assert table2["best_bic"].tolist().count("*") == 1
    for name in ("fig5.png", "fig6.png", "fig8.png", "class_lines_B2.png", "table1.csv",
                 "table2.csv", "report.md", "fit_B2.json"):  # fmt: skip
        assert (tmp_path / name).stat().st_size > 200, name
    report = (tmp_path / "report.md").read_text()
    assert "## Table 2" in report and "| A2 |" in report
    assert "Schools with a positive female coefficient" in report


def test_extra_starts_join_the_random_ones_without_changing_them(fig1_data):
    spec = bm.load_spec(MODELS / "fig1.toml")
    plain = bm.fit_ml(spec, fig1_data, starts=3, random_seed=4)
    more = bm.fit_ml(spec, fig1_data, starts=3, random_seed=4, extra_starts=[FIG1_PARAMS])
    assert more.starts.n_starts == 4 and len(more.starts.logliks) == 4
    # the random starts come first and are those of the fit without the extra start
    np.testing.assert_array_equal(more.starts.logliks[:3], plain.starts.logliks)
    assert more.loglik >= plain.loglik - 1e-9


def test_split_class_start_refines_the_smaller_solution(fig1_data):
    from bayesmix.data.design import build_design
    from bayesmix.ml.starts import split_class_start

    spec = bm.load_spec(MODELS / "fig1.toml")
    one = bm.fit_ml(spec.with_classes(1), fig1_data, random_seed=1)
    two = bm.fit_ml(spec, fig1_data, starts=8, random_seed=1)
    design = build_design(spec, fig1_data)
    start = split_class_start(one, design, np.random.default_rng(0))
    assert np.asarray(start.beta).shape == (2, 2)
    # from the split start alone the fit ends within 0.1 of the best of 8 random starts
    # (at a neighbouring optimum, -5310.30 against -5310.24), far above one class
    warm = bm.fit_ml(spec, fig1_data, starts=1, random_seed=99, extra_starts=[start])
    assert two.loglik - 0.1 < warm.starts.logliks[1] < two.loglik + 1e-6
    assert warm.starts.logliks[1] > one.loglik + 10
    with pytest.raises(bm.EstimationError, match="needs a fit of 2 classes"):
        split_class_start(
            one, build_design(spec.with_classes(3), fig1_data), np.random.default_rng(0)
        )


def test_select_classes_gives_each_larger_k_a_warm_start(fig1_data):
    spec = bm.load_spec(MODELS / "fig1.toml")
    kw = {"max_classes": 3, "starts": 2, "random_seed": 5}
    warm = bm.select_classes(spec, fig1_data, **kw)
    cold = bm.select_classes(spec, fig1_data, warm_starts=False, **kw)
    assert [f.starts.n_starts for f in warm.fits] == [1, 3, 3]
    assert [f.starts.n_starts for f in cold.fits] == [1, 2, 2]
    for w, c in zip(warm.fits[1:], cold.fits[1:], strict=True):
        np.testing.assert_array_equal(w.starts.logliks[:2], c.starts.logliks)
        assert w.loglik >= c.loglik - 1e-9
