"""Diagnostics are records made where a problem is found, with named thresholds."""

from __future__ import annotations

import ast
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

import bayesmix.bayes.diagnose as diagnose
from bayesmix.diagnostics import (
    EMPTY_CLASS_SHARE,
    ESS_MIN_PER_CHAIN,
    RHAT_MAX,
    Diagnostic,
    empty_classes,
)
from bayesmix.errors import (
    BayesmixWarning,
    EmptyClassWarning,
    LabelSwitchingWarning,
    SamplingWarning,
)
from bayesmix.results.io import _diagnostics
from bayesmix.results.persist import ResultFileError
from bayesmix.results.reader import FieldReader

PACKAGE = Path(__file__).resolve().parents[1] / "bayesmix"


def _posterior(r_hat: list[float], ess: list[float], **extra: object) -> SimpleNamespace:
    """The parts of a NUTS result that the posterior checks read."""
    table = pd.DataFrame({"r_hat": r_hat, "ess_bulk": ess}, index=["a", "b"][: len(r_hat)])
    no_switch = SimpleNamespace(switched=False, permutations=((0, 1),))
    fields = {
        "table": table,
        "settings": {"chains": 2, "draws": 100},
        "rhat_max": max(r_hat),
        "ess_bulk_min": min(ess),
        "divergences": 0,
        "labels": no_switch,
        "between_labels": None,
        "class_probabilities": np.full((10, 2), 0.5),
        "between_probabilities": None,
        "pareto_k_bad": 0,
        "loo": SimpleNamespace(good_k=0.7),
    }
    return SimpleNamespace(**{**fields, **extra})


def test_a_record_round_trips_through_json_and_warns_as_its_category():
    note = Diagnostic("empty_class", "class 2 holds 0.10 of 100 units", EmptyClassWarning)
    assert Diagnostic.from_dict(note.to_dict()) == note
    assert note.to_dict() == {
        "code": "empty_class",
        "message": "class 2 holds 0.10 of 100 units",
        "category": "EmptyClassWarning",
    }
    assert str(note) == note.message
    with pytest.warns(EmptyClassWarning, match="class 2 holds"):
        note.warn()
    odd = Diagnostic.from_dict({"code": "x", "message": "m", "category": "NoSuchWarning"})
    assert odd.category is BayesmixWarning


def test_posterior_checks_use_the_named_thresholds(monkeypatch):
    # at the thresholds nothing is flagged; beyond them, one record each
    at = _posterior([RHAT_MAX, 1.0], [2.0 * ESS_MIN_PER_CHAIN, 900.0])
    assert diagnose.posterior_diagnostics(at) == ()
    beyond = _posterior([RHAT_MAX + 0.01, 1.0], [2.0 * ESS_MIN_PER_CHAIN - 1, 900.0])
    found = diagnose.posterior_diagnostics(beyond)
    assert [(d.code, d.category) for d in found] == [
        ("rhat", SamplingWarning),
        ("ess", SamplingWarning),
    ]
    assert "R-hat above 1.01 for ['a'] (max 1.020)" in found[0].message
    assert "bulk ESS below 200 for ['a'] (min 199)" in found[1].message
    # the check reads the module's threshold, not a copy of its value
    monkeypatch.setattr(diagnose, "RHAT_MAX", 1.05)
    assert [d.code for d in diagnose.posterior_diagnostics(beyond)] == ["ess"]


def test_each_posterior_problem_has_its_own_code_and_category():
    switched = SimpleNamespace(switched=True, permutations=((0, 1), (1, 0)))
    probs = np.column_stack([np.full(1000, 0.9996), np.full(1000, 0.0004)])
    result = _posterior(
        [1.0, 1.0],
        [900.0, 900.0],
        settings={"chains": 2, "draws": 100, "interrupted_at": 40},
        divergences=3,
        labels=switched,
        class_probabilities=probs,
        pareto_k_bad=2,
    )
    found = diagnose.posterior_diagnostics(result)
    assert [(d.code, d.category) for d in found] == [
        ("interrupted", SamplingWarning),
        ("divergences", SamplingWarning),
        ("label_switching", LabelSwitchingWarning),
        ("empty_class", EmptyClassWarning),
        ("pareto_k", SamplingWarning),
    ]
    assert found[2].message == (
        "chains disagree on class labels (matching permutations [(0, 1), (1, 0)]): label "
        "switching between chains."
    )
    assert "class 2 holds 0.40 of 1000 units (0.04%) in the posterior" in found[3].message


def test_empty_class_threshold_is_the_named_share():
    n = 10_000
    just_under = EMPTY_CLASS_SHARE * n - 0.01
    assert [d.code for d in empty_classes(np.array([n - just_under, just_under]), n)] == [
        "empty_class"
    ]
    assert empty_classes(np.array([n - EMPTY_CLASS_SHARE * n, EMPTY_CLASS_SHARE * n]), n) == []


def test_saved_diagnostics_read_as_records_and_old_plain_messages_still_load(tmp_path):
    read = FieldReader(tmp_path / "fit.json")
    note = Diagnostic("boundary", "variance(s) ['var(u_1)'] are at the boundary 0", BayesmixWarning)
    assert _diagnostics(read, [note.to_dict()], "ml.diagnostics") == (note,)
    (old,) = _diagnostics(read, ["an older file's message"], "ml.diagnostics")
    assert (old.code, old.message) == ("saved_as_text", "an older file's message")
    with pytest.raises(ResultFileError, match=r"ml\.diagnostics"):
        _diagnostics(read, "not a list", "ml.diagnostics")


def _literals(tree: ast.AST) -> set[float]:
    return {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)} - {True, False}


def test_thresholds_are_written_only_where_they_are_named():
    """The R-hat bound and the empty-class share appear as numbers only in diagnostics.py."""
    thresholds = {RHAT_MAX, EMPTY_CLASS_SHARE}
    where = {
        str(p.relative_to(PACKAGE))
        for p in PACKAGE.rglob("*.py")
        if thresholds & _literals(ast.parse(p.read_text()))
    }
    assert where == {"diagnostics.py"}


def test_no_code_finds_a_diagnostic_by_its_message():
    """Nothing in the package tests a diagnostic's text: ``"..." in d`` or ``in d.message``."""
    hits = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Compare):
                continue
            sides = [node.left, *node.comparators]
            texts = [s for s in sides if isinstance(s, ast.Constant) and isinstance(s.value, str)]
            names = {
                n.attr if isinstance(n, ast.Attribute) else getattr(n, "id", "")
                for s in sides
                for n in ast.walk(s)
            }
            if texts and names & {"diagnostics", "message", "text", "note", "notes"}:
                hits.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert hits == []
