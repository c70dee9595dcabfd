"""Path diagrams of a model spec, in the style of the paper's Figs 2, 3, 4 and 7.

Observed variables are boxes, latent classes and school residuals circles. The
school level (between) is drawn above the student level (within). A slope that
differs across the classes is a broken arrow; the school part of an outcome
coefficient or a membership logit is a circle at the school level, joined to
what it varies by a dotted line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from bayesmix.model.formula import term_parts
from bayesmix.model.spec import INTERCEPT, Spec

Level = Literal["within", "between"]
Shape = Literal["box", "circle"]
Style = Literal["solid", "dashed", "dotted"]


@dataclass(frozen=True)
class DiagramNode:
    """A variable of the diagram.

    Attributes
    ----------
    name : str
        Identifier, unique in the diagram (``y``, ``x``, ``C``, ``u_1``...).
    label : str
        Text drawn in it.
    shape : {"box", "circle"}
        Observed (box) or latent (circle).
    level : {"within", "between"}
        Student or school level.
    """

    name: str
    label: str
    shape: Shape
    level: Level


@dataclass(frozen=True)
class DiagramEdge:
    """An arrow from ``tail`` to ``head``: solid (an effect), dashed (an effect that
    differs across the classes) or dotted (a school part joined to what it varies)."""

    tail: str
    head: str
    style: Style = "solid"


@dataclass(frozen=True)
class ModelDiagram:
    """The nodes and edges of a spec's path diagram (:func:`model_diagram`)."""

    nodes: tuple[DiagramNode, ...]
    edges: tuple[DiagramEdge, ...]

    def to_graphviz(self) -> Any:
        """The diagram as a ``graphviz.Digraph`` (rendering needs Graphviz's ``dot``)."""
        try:
            import graphviz
        except ImportError as err:  # pragma: no cover - graphviz is a dependency
            raise ImportError(
                "plot_model_diagram needs the graphviz package: pip install graphviz"
            ) from err
        graph = graphviz.Digraph(graph_attr={"rankdir": "TB", "newrank": "true"})
        for level, title in (("between", "Between (schools)"), ("within", "Within (students)")):
            nodes = [n for n in self.nodes if n.level == level]
            if not nodes:
                continue
            with graph.subgraph(name=f"cluster_{level}") as sub:
                sub.attr(label=title, style="rounded", color="grey60", fontname="Helvetica")
                for n in nodes:
                    sub.node(
                        n.name,
                        n.label,
                        shape="box" if n.shape == "box" else "ellipse",
                        fontname="Helvetica",
                    )
        for e in self.edges:
            attrs = {"style": e.style}
            if e.style == "dotted":
                attrs["arrowhead"] = "none"
            graph.edge(e.tail, e.head, **attrs)
        return graph


def _school_covariates(spec: Spec) -> set[str]:
    """Columns the spec uses at the school level: its level-2 covariates and the
    covariates of the level-2 class regression."""
    names = set(spec.level2_covariates)
    names.update(t for t in spec.between_membership if t != INTERCEPT)
    return names


def _coefficient_label(term: str) -> str:
    return "intercept" if term == INTERCEPT else f"{term} slope"


def model_diagram(spec: Spec) -> ModelDiagram:
    """The path diagram of ``spec``: its variables and arrows, without drawing them.

    A membership covariate is drawn at the school level when the spec uses it
    there (a level-2 covariate of an outcome coefficient or of the level-2
    classes), at the student level otherwise.

    Parameters
    ----------
    spec : Spec

    Returns
    -------
    ModelDiagram
    """
    nodes: dict[str, DiagramNode] = {}
    edges: list[DiagramEdge] = []
    school = _school_covariates(spec)

    def node(name: str, label: str, shape: Shape, level: Level) -> str:
        nodes.setdefault(name, DiagramNode(name, label, shape, level))
        return name

    y = node("y", spec.outcome, "box", "within")
    for term in spec.terms:
        if term == INTERCEPT:
            continue
        x = node(term, term, "box", "within")
        edges.append(DiagramEdge(x, y, "dashed" if term in spec.class_varying else "solid"))
    if spec.classes > 1:
        c = node("C", "C", "circle", "within")
        if INTERCEPT in spec.class_varying:
            edges.append(DiagramEdge(c, y))
        logits = _membership_logits(spec, node, edges)
        for term in spec.membership:
            if term == INTERCEPT:
                continue
            level: Level = "between" if term in school else "within"
            w = node(term, term, "box", level)
            for head in logits if level == "between" and logits else [c]:
                edges.append(DiagramEdge(w, head))
    level2 = spec.level2_map
    for term in spec.terms:
        if term not in spec.random and term not in level2:
            continue
        u = node(f"u_{term}", _coefficient_label(term), "circle", "between")
        edges.append(DiagramEdge(u, y, "dotted"))
        for covariate in level2.get(term, ()):
            for part in term_parts(covariate):
                edges.append(DiagramEdge(node(part, part, "box", "between"), u))
    if spec.between_classes > 1:
        d = node("D", "D", "circle", "between")
        for term in spec.between_membership:
            if term != INTERCEPT:
                edges.append(DiagramEdge(node(term, term, "box", "between"), d))
        for term in spec.between_varying:
            if term in spec.terms:
                head = node(f"u_{term}", _coefficient_label(term), "circle", "between")
                if DiagramEdge(head, y, "dotted") not in edges:
                    edges.append(DiagramEdge(head, y, "dotted"))
                edges.append(DiagramEdge(d, head))
    return ModelDiagram(tuple(nodes.values()), tuple(dict.fromkeys(edges)))


def _membership_logits(spec: Spec, node: Any, edges: list[DiagramEdge]) -> list[str]:
    """The school parts of the membership logits (circles ``C#1``...), joined to ``C``, and
    the factor ``f`` behind them; none without membership residuals. School covariates of
    the membership regression point at these logits."""
    if spec.membership_random == "none":
        return []
    logits = [f"C#{k + 1}" for k in range(spec.classes - 1)]
    for logit in logits:
        node(logit, logit, "circle", "between")
        edges.append(DiagramEdge(logit, "C", "dotted"))
    if spec.membership_random == "factor":
        f = node("f", "f", "circle", "between")
        edges.extend(DiagramEdge(f, logit) for logit in logits)
    return logits


def plot_model_diagram(spec: Spec) -> Any:
    """Draw ``spec`` as a path diagram, in the style of the paper's Figs 2, 3, 4 and 7.

    Boxes are observed variables, circles latent classes (``C``, and ``D``
    for level-2 classes) and school-level parts of coefficients and
    membership logits; the school level is drawn above the student level.
    A slope that differs across the classes is a broken arrow, an effect
    shared by the classes a solid one. In a notebook the returned object
    shows itself; ``.pipe(format="svg")`` gives the SVG.

    Parameters
    ----------
    spec : Spec

    Returns
    -------
    graphviz.Digraph
    """
    return model_diagram(spec).to_graphviz()
