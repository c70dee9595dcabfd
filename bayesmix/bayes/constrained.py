"""Constraints in the sampled model: fixed effects held at a value or tied across classes.

NUTS samples only the free coefficients. A fixed effect's value in a class that the
spec's constraints fix (:mod:`bayesmix.model.constraints`) is a constant of the model,
and a value constrained equal to another class's is that class's free variable. The
standardisation keeps each constrained coefficient a function of its own standardised
counterpart (:mod:`bayesmix.data.standardise`), and the classes' values of one effect
share that scale, so the constraints hold on the sampled scale as they do in the user's.

NUTS takes constraints within one fixed effect (its classes' values), within the
membership coefficients, and within the residual variances (one per class, or one in
all); the ML fit (:func:`bayesmix.fit_ml`) takes every kind. Others, and equalities that
span two of these, are refused with the parameters named.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from bayesmix.data.standardise import Standardisation
from bayesmix.errors import EstimationError
from bayesmix.model.constraints import resolve
from bayesmix.model.params import Layout
from bayesmix.model.spec import Spec


@dataclass(frozen=True)
class EffectTies:
    """The constraints on one block of parameters NUTS samples together: a fixed effect's
    values over the classes, the membership coefficients, or the residual variances.

    Attributes
    ----------
    fixed : dict of int to float
        Index among the block's entries (an effect's :meth:`Layout.fixed_entries`, the
        membership coefficients or the residual variances, in layout order) and its value
        on the standardised scale (a residual variance's as an SD).
    follows : dict of int to int
        Index of an entry constrained equal to an earlier one, and that one's index.
    """

    fixed: dict[int, float]
    follows: dict[int, int]


@dataclass(frozen=True)
class Ties:
    """The spec's constraints on the sampled blocks (empty where a block has none).

    Attributes
    ----------
    effects : dict of str to EffectTies
        By fixed effect.
    membership : EffectTies or None
        Over the membership coefficients ``C#c ~ t`` (class major).
    residual : EffectTies or None
        Over the residual variances ``sigma2`` or ``sigma2[c]``, as SDs.
    """

    effects: dict[str, EffectTies] = field(default_factory=dict)
    membership: EffectTies | None = None
    residual: EffectTies | None = None


def _blocks(lay: Layout) -> dict[int, tuple[str, int]]:
    """Layout position of every parameter NUTS can constrain: its block and its index
    there (a fixed effect's name, ``"membership"`` or ``"residual"``)."""
    names = lay.names
    out = {}
    for effect in lay.spec.fixed_names:
        for e, entry in enumerate(lay.fixed_entries(effect)):
            out[names.index(entry)] = (effect, e)
    sl = lay._slices()
    for e, k in enumerate(range(sl["member"].start, sl["member"].stop)):
        out[k] = (MEMBERSHIP, e)
    if not lay.spec.residual_covariates and not lay.spec.residual_groups:
        for e, k in enumerate(range(sl["resid"].start, sl["resid"].stop)):
            out[k] = (RESIDUAL, e)
    return out


MEMBERSHIP = "C#"
"""The block of the membership coefficients (no fixed effect's name starts so)."""

RESIDUAL = "sigma2"
"""The block of the residual variances (no fixed effect is so named)."""


def constrained_effects(spec: Spec) -> frozenset[str]:
    """The fixed effects one of whose values a fixed value or an equality names."""
    if spec.constraints is None:
        return frozenset()
    lay = Layout(spec)
    owner = {e: f for f in spec.fixed_names for e in lay.fixed_entries(f)}
    return frozenset(owner[n] for n in spec.constraints.names if n in owner)


def model_ties(st: Standardisation) -> Ties:
    """The :class:`Ties` of the spec's constraints on the standardised scale.

    Raises
    ------
    EstimationError
        For a constraint NUTS does not take: on a parameter outside the blocks above
        (random-effect loadings, level-2 class coefficients, log-linear or grouped
        residual variances), or an equality that spans two blocks; naming the
        parameters and the fit that takes them.
    """
    lay = st.layout
    resolved = resolve(lay.spec.constraints, lay.names)
    where = _blocks(lay)
    names = lay.names
    for k in sorted(resolved.constrained):
        if k not in where:
            raise EstimationError(
                f"constraints: NUTS holds fixed effects, membership coefficients and "
                f"residual variances at a value or equal, and {names[k]!r} is none of these; "
                "fit this model by bayesmix.fit_ml, which takes constraints on every kind "
                "of parameter, or drop this one."
            )
    blocks: dict[str, EffectTies] = {}
    for k, value in resolved.fixed.items():
        block, e = where[k]
        internal = (value - st.b[k]) / st.A[k, k]
        blocks.setdefault(block, EffectTies({}, {})).fixed[e] = (
            math.sqrt(internal) if block == RESIDUAL else internal
        )
    for group in resolved.groups:
        spanned = {where[k][0] for k in group}
        if len(spanned) > 1:
            raise EstimationError(
                f"constraints: NUTS takes equalities within one fixed effect's classes, the "
                f"membership coefficients or the residual variances, and "
                f"{[names[k] for k in group]} span {sorted(spanned)}; fit this model by "
                "bayesmix.fit_ml, which takes any equality."
            )
        block, first = where[group[0]]
        ties = blocks.setdefault(block, EffectTies({}, {}))
        for k in group[1:]:
            ties.follows[where[k][1]] = first
    return Ties(
        effects={b: t for b, t in blocks.items() if b not in (MEMBERSHIP, RESIDUAL)},
        membership=blocks.get(MEMBERSHIP),
        residual=blocks.get(RESIDUAL),
    )
