"""Path diagrams of the paper's models, drawn from their model files."""

from __future__ import annotations

import pytest

import bayesmix as bm
from bayesmix.plots import plot_model_diagram
from bayesmix.plots.diagram import model_diagram
from tests.support.paths import MODELS


def _diagram(name: str, classes: int | None = None):
    spec = bm.load_spec(
        MODELS / f"{name}.toml", **({} if classes is None else {"classes": classes})
    )
    d = model_diagram(spec)
    nodes = {(n.name, n.shape, n.level) for n in d.nodes}
    edges = {(e.tail, e.head, e.style) for e in d.edges}
    assert len(edges) == len(d.edges)
    return nodes, edges


def test_fig1_single_level_mixture():
    """Fig 1 (eqs 1-2): x -> y with a class-varying slope, C -> y, x -> C."""
    nodes, edges = _diagram("fig1")
    assert nodes == {("y", "box", "within"), ("x", "box", "within"), ("C", "circle", "within")}
    assert edges == {("x", "y", "dashed"), ("C", "y", "solid"), ("x", "C", "solid")}


def test_fig3_two_level_mixture():
    """Fig 3 (eqs 3-9): at the school level w explains the random intercept and the
    membership logit's school part C#1."""
    nodes, edges = _diagram("fig3")
    assert nodes == {
        ("y", "box", "within"),
        ("x", "box", "within"),
        ("C", "circle", "within"),
        ("w", "box", "between"),
        ("u_1", "circle", "between"),
        ("C#1", "circle", "between"),
    }
    assert edges == {
        ("x", "y", "dashed"),
        ("C", "y", "solid"),
        ("x", "C", "solid"),
        ("w", "u_1", "solid"),
        ("u_1", "y", "dotted"),
        ("w", "C#1", "solid"),
        ("C#1", "C", "dotted"),
    }


def test_model_1_has_no_classes_and_three_school_coefficients():
    nodes, edges = _diagram("hsb_1")
    assert not any(n[0] in ("C", "f", "D") for n in nodes)
    assert {("female", "y", "solid"), ("ses", "y", "solid")} <= edges
    for term in ("1", "female", "ses"):
        assert (f"u_{term}", "circle", "between") in nodes
        for w in ("pracad", "catholic", "meanses"):
            assert (w, f"u_{term}", "solid") in edges


@pytest.mark.parametrize("name", ["hsb_A", "hsb_B"])
def test_models_a_and_b_share_one_membership_factor(name):
    """Figs 4 and 7: the factor f behind both membership logits; school covariates point
    at the logits; model B adds the female slope's school residual."""
    nodes, edges = _diagram(name, classes=3)
    assert {("f", "C#1", "solid"), ("f", "C#2", "solid")} <= edges
    assert {("C#1", "C", "dotted"), ("C#2", "C", "dotted")} <= edges
    assert {("female", "C", "solid"), ("ses", "C", "solid")} <= edges
    assert {("pracad", "C#1", "solid"), ("meanses", "C#2", "solid")} <= edges
    assert {("female", "y", "dashed"), ("ses", "y", "dashed"), ("C", "y", "solid")} <= edges
    assert (("u_female", "y", "dotted") in edges) == (name == "hsb_B")
    assert ("pracad", "box", "between") in nodes and ("female", "box", "within") in nodes


def test_model_c_adds_level_2_classes_above_the_class_varying_coefficients():
    nodes, edges = _diagram("hsb_C", classes=3)
    assert ("D", "circle", "between") in nodes
    assert {
        ("pracad", "D", "solid"),
        ("catholic", "D", "solid"),
        ("meanses", "D", "solid"),
    } <= edges
    assert {("D", "u_1", "solid"), ("D", "u_female", "solid"), ("D", "u_ses", "solid")} <= edges


def test_the_drawing_puts_the_school_level_in_its_own_box_above():
    graph = plot_model_diagram(bm.load_spec(MODELS / "fig3.toml"))
    source = graph.source
    assert source.index("cluster_between") < source.index("cluster_within")
    assert "x -> y [style=dashed]" in source
    assert "u_1 -> y [arrowhead=none style=dotted]" in source
