"""Constraints in the sampled model: fixed effects held at a value or tied across classes.

NUTS samples only the free coefficients. A fixed effect's value in a class that the
spec's constraints fix (:mod:`bayesmix.model.constraints`) is a constant of the model,
and a value constrained equal to another class's is that class's free variable. The
standardisation keeps each constrained coefficient a function of its own standardised
counterpart (:mod:`bayesmix.data.standardise`), and the classes' values of one effect
share that scale, so the constraints hold on the sampled scale as they do in the user's.

NUTS takes constraints on fixed effects, within one effect; the ML fit
(:func:`bayesmix.fit_ml`) takes every kind. Others are refused with the parameter named.
"""

from __future__ import annotations

from dataclasses import dataclass

from bayesmix.data.standardise import Standardisation
from bayesmix.errors import EstimationError
from bayesmix.model.constraints import resolve
from bayesmix.model.params import Layout
from bayesmix.model.spec import Spec


@dataclass(frozen=True)
class EffectTies:
    """The constraints on one fixed effect's values over the classes.

    Attributes
    ----------
    fixed : dict of int to float
        Index among the effect's entries (:meth:`Layout.fixed_entries`) and its value on
        the sampled (standardised) scale.
    follows : dict of int to int
        Index of an entry constrained equal to an earlier one, and that one's index.
    """

    fixed: dict[int, float]
    follows: dict[int, int]


def _entries(lay: Layout) -> dict[int, tuple[str, int]]:
    """Layout position of every fixed-effect entry: its effect and its index there."""
    names = lay.names
    out = {}
    for effect in lay.spec.fixed_names:
        for e, entry in enumerate(lay.fixed_entries(effect)):
            out[names.index(entry)] = (effect, e)
    return out


def constrained_effects(spec: Spec) -> frozenset[str]:
    """The fixed effects one of whose values a fixed value or an equality names."""
    if spec.constraints is None:
        return frozenset()
    lay = Layout(spec)
    owner = {e: f for f in spec.fixed_names for e in lay.fixed_entries(f)}
    return frozenset(owner[n] for n in spec.constraints.names if n in owner)


def effect_ties(st: Standardisation) -> dict[str, EffectTies]:
    """Each constrained fixed effect's :class:`EffectTies` on the standardised scale.

    Raises
    ------
    EstimationError
        For a constraint NUTS does not take: on a parameter other than a fixed effect,
        or an equality of two different effects; naming the parameter and the fit that
        takes it.
    """
    lay = st.layout
    resolved = resolve(lay.spec.constraints, lay.names)
    where = _entries(lay)
    names = lay.names
    out: dict[str, EffectTies] = {}
    for k in sorted(resolved.constrained):
        if k not in where:
            raise EstimationError(
                f"constraints: NUTS holds fixed effects at a value or equal across classes, "
                f"and {names[k]!r} is not a fixed effect; fit this model by bayesmix.fit_ml, "
                "which takes constraints on every kind of parameter, or drop this one."
            )
    for k, value in resolved.fixed.items():
        effect, e = where[k]
        ties = out.setdefault(effect, EffectTies({}, {}))
        ties.fixed[e] = (value - st.b[k]) / st.A[k, k]
    for group in resolved.groups:
        effects = {where[k][0] for k in group}
        if len(effects) > 1:
            raise EstimationError(
                f"constraints: NUTS takes equalities among one fixed effect's classes, and "
                f"{[names[k] for k in group]} span the effects {sorted(effects)}; fit this "
                "model by bayesmix.fit_ml, which takes any equality."
            )
        effect, first = where[group[0]]
        ties = out.setdefault(effect, EffectTies({}, {}))
        for k in group[1:]:
            ties.follows[where[k][1]] = first
    return out
