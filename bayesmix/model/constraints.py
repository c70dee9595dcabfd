"""Constraints on a model's parameters: fixed values, equalities and starting values.

A model file gives them in a ``[constraints]`` table (Mplus ``@`` for a fixed value,
labels in parentheses for equalities, ``*`` for a starting value)::

    [constraints]
    fixed = { "x[c2]" = 0.0, "sigma2" = 40.0 }   # Mplus: y ON x@0; y@40
    equal = [["x:w[c1]", "x:w[c2]"]]              # Mplus: y ON x:w (1) in each class
    start = { "1[c1]" = 60.0 }                    # Mplus: [y*60]

``equal`` may also be a table of labels, ``equal = { a = ["x[c1]", "x[c2]"] }``.
Every name is a parameter name of the fit (:attr:`bayesmix.MLResult.names`), in the
user's units. Groups that share a name are one group, and a group with a fixed member
is fixed at that value throughout.

What constraints change:

* the parameter count, the information criteria and the likelihood-ratio tests'
  degrees of freedom count the free parameters only (each fixed value and each
  equality removes one);
* a fixed parameter's standard error is 0, with no z or p value; equal parameters
  share their estimate and standard error;
* NUTS samples only the free parameters: a fixed one is absent from the posterior.

Class labels: constraints that treat the classes alike (a term equal across all
classes) keep the labelling by ``order_classes_by``; when that term's class values are
constrained equal, the classes are labelled by the next class-varying fixed effect (in
formula order) whose values are free, and by none when no such effect remains.
Constraints that single out a class (a value fixed in one class, an equality of two
classes out of three, any membership coefficient) label the classes themselves, as
in Mplus: the classes keep the labels the constraints give them, and the fit does not
relabel them.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from bayesmix.errors import SpecError, type_name

CONSTRAINT_KEYS = {"fixed", "equal", "start"}
"""The keys of a model file's ``[constraints]`` table."""

_LABEL = re.compile(r"\[([^\[\]]*)\]$")


def _value(name: str, value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SpecError(
            f"{where}: the value of {name!r} must be a number, got {type_name(value)} {value!r}."
        )
    if not math.isfinite(float(value)):
        raise SpecError(f"{where}: the value of {name!r} must be finite, got {value!r}.")
    return float(value)


def _pairs(value: Any, where: str) -> tuple[tuple[str, float], ...]:
    """``{name: value}`` or ``[[name, value], ...]`` as sorted-free pairs, checked."""
    if isinstance(value, Mapping):
        items = list(value.items())
    elif isinstance(value, (list, tuple)) and all(
        isinstance(p, (list, tuple)) and len(p) == 2 for p in value
    ):
        items = [tuple(p) for p in value]
    else:
        raise SpecError(
            f"{where} must be a table of parameter names and values, e.g. "
            f'{{"x[c2]" = 0.0}}, got {type_name(value)} {value!r}.'
        )
    out: dict[str, float] = {}
    for name, v in items:
        if not isinstance(name, str) or not name:
            raise SpecError(f"{where}: {name!r} is not a parameter name.")
        if name in out:
            raise SpecError(f"{where}: {name!r} is given twice.")
        out[name] = _value(name, v, where)
    return tuple(out.items())


def _groups(value: Any, where: str) -> tuple[tuple[str, ...], ...]:
    """A list of groups, or a table of labels and their groups, as tuples of names."""
    groups = list(value.values()) if isinstance(value, Mapping) else value
    if not isinstance(groups, (list, tuple)):
        raise SpecError(
            f"{where} must be a list of groups of parameter names, e.g. "
            f'[["x[c1]", "x[c2]"]], or a table of labels, got {type_name(value)} {value!r}.'
        )
    out = []
    for group in groups:
        if isinstance(group, str) or not isinstance(group, (list, tuple)):
            raise SpecError(
                f"{where}: each group is a list of parameter names, got {type_name(group)} "
                f"{group!r}."
            )
        names = tuple(dict.fromkeys(group))
        if any(not isinstance(n, str) or not n for n in names):
            raise SpecError(f"{where}: the group {list(group)!r} holds a non-name.")
        if len(names) < 2:
            raise SpecError(
                f"{where}: the group {list(group)!r} names fewer than two parameters; an "
                "equality needs two or more."
            )
        out.append(names)
    return tuple(out)


@dataclass(frozen=True)
class Constraints:
    """Fixed values, equalities and starting values of a model's parameters.

    Attributes
    ----------
    fixed : tuple of (str, float)
        Parameters held at a value (user's units), not estimated.
    equal : tuple of tuple of str
        Groups of parameters constrained equal to one another.
    start : tuple of (str, float)
        Starting values of free parameters for the ML fit's first start (the
        random starts are unchanged).
    """

    fixed: tuple[tuple[str, float], ...] = ()
    equal: tuple[tuple[str, ...], ...] = ()
    start: tuple[tuple[str, float], ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "fixed", _pairs(self.fixed, "constraints fixed"))
        object.__setattr__(self, "equal", _groups(self.equal, "constraints equal"))
        object.__setattr__(self, "start", _pairs(self.start, "constraints start"))
        fixed = dict(self.fixed)
        both = [n for n, _ in self.start if n in fixed]
        if both:
            raise SpecError(
                f"constraints: {both} are fixed and also given a starting value; a fixed "
                "parameter starts at its value: drop it from start."
            )

    @property
    def names(self) -> tuple[str, ...]:
        """Every parameter a fixed value or an equality names (not the starting values)."""
        out = [n for n, _ in self.fixed] + [n for g in self.equal for n in g]
        return tuple(dict.fromkeys(out))

    def to_table(self) -> dict[str, Any]:
        """The ``[constraints]`` table of a model file."""
        return {
            "fixed": dict(self.fixed),
            "equal": [list(g) for g in self.equal],
            "start": dict(self.start),
        }


def constraints_from(value: Any, where: str = "constraints") -> Constraints | None:
    """Constraints from what a user gives: None, :class:`Constraints`, or a mapping with
    the keys of a ``[constraints]`` table (``fixed``, ``equal``, ``start``)."""
    if value is None or isinstance(value, Constraints):
        return value
    if not isinstance(value, Mapping):
        raise SpecError(
            f"{where} must be a table with keys {sorted(CONSTRAINT_KEYS)}, got "
            f"{type_name(value)} {value!r}."
        )
    unknown = sorted(set(value) - CONSTRAINT_KEYS)
    if unknown:
        raise SpecError(
            f"{where}: unknown key(s) {unknown}; valid keys are {sorted(CONSTRAINT_KEYS)}."
        )
    made = Constraints(
        fixed=value.get("fixed", ()), equal=value.get("equal", ()), start=value.get("start", ())
    )
    return made if (made.fixed or made.equal or made.start) else None


def is_variance(name: str) -> bool:
    """Whether a parameter is a variance: of the residual (estimated on the log scale) or
    of a school residual (through its Cholesky factor)."""
    return name.startswith(("sigma2", "var("))


def is_covariance(name: str) -> bool:
    """Whether a parameter is a covariance of the school residuals."""
    return name.startswith("cov(")


def _kind(name: str) -> str:
    """What an equality may join: residual variances, school-residual variances, or the
    other parameters (coefficients, loadings)."""
    if name.startswith("sigma2"):
        return "residual variances"
    return "school-residual variances" if name.startswith("var(") else "coefficients"


@dataclass(frozen=True)
class Resolved:
    """Constraints against a model's parameter names, as positions.

    Attributes
    ----------
    fixed : dict of int to float
        Position and value of each fixed parameter (members of a group with a
        fixed member included).
    groups : tuple of tuple of int
        Equality groups of free parameters, merged where they share a name, each
        in layout order.
    start : dict of int to float
        Position and starting value of each parameter given one.
    """

    fixed: dict[int, float]
    groups: tuple[tuple[int, ...], ...]
    start: dict[int, float]

    @property
    def n_restrictions(self) -> int:
        """How many free parameters the constraints remove."""
        return len(self.fixed) + sum(len(g) - 1 for g in self.groups)

    @property
    def constrained(self) -> frozenset[int]:
        """Positions of every parameter a fixed value or an equality touches."""
        return frozenset(self.fixed) | frozenset(i for g in self.groups for i in g)


def _unknown(name: str, names: list[str], where: str) -> SpecError:
    close = difflib.get_close_matches(name, names, n=3)
    hint = f"; did you mean {close}?" if close else f"; the model's parameters are {names}."
    return SpecError(f"{where}: {name!r} is not a parameter of the model{hint}")


def _merged(groups: Iterable[tuple[str, ...]]) -> list[list[str]]:
    """Equality groups merged where they share a name, in first-seen order."""
    merged: list[list[str]] = []
    for group in groups:
        hits = [m for m in merged if set(m) & set(group)]
        joined = [n for m in hits for n in m]
        joined += [n for n in group if n not in joined]
        merged = [m for m in merged if m not in hits] + [joined]
    return merged


def resolve(constraints: Constraints | None, names: list[str] | tuple[str, ...]) -> Resolved:
    """Check constraints against a model's parameter names and give their positions.

    Raises
    ------
    SpecError
        Naming the parameter: one the model does not have, a variance or covariance of
        correlated school residuals (not constrainable; those of a diagonal covariance
        are), an equality of a variance with another kind of parameter, a group fixed at
        two values, or a variance fixed at a value <= 0.
    """
    if constraints is None:
        return Resolved({}, (), {})
    names = list(names)
    for label, named in (
        ("constraints", constraints.names),
        ("constraints start", [n for n, _ in constraints.start]),
    ):
        for name in named:
            if name not in names:
                raise _unknown(name, names, label)
    correlated = any(is_covariance(n) for n in names)
    for name in constraints.names:
        if is_covariance(name) or (correlated and name.startswith("var(")):
            raise SpecError(
                f"constraints: {name!r} is a {'covariance' if is_covariance(name) else 'variance'}"
                " of correlated school residuals, which cannot be fixed or constrained equal; "
                'set covariance = "diagonal" (covariances 0), whose variances can be, or leave '
                "a term out of random terms to fix its variance at 0."
            )
    fixed = dict(constraints.fixed)
    for name, value in fixed.items():
        if is_variance(name) and value <= 0:
            raise SpecError(
                f"constraints fixed: the variance {name!r} must be positive, got {value!r}; "
                "a school-residual variance of 0 is its term left out of random terms."
            )
    groups = []
    for group in _merged(constraints.equal):
        kinds = {_kind(n) for n in group}
        if len(kinds) > 1:
            raise SpecError(
                f"constraints equal: {group} mixes {' and '.join(sorted(kinds))}; constrain "
                "variances equal only to variances of the same kind."
            )
        values = {fixed[n] for n in group if n in fixed}
        if len(values) > 1:
            raise SpecError(
                f"constraints: the equal parameters {group} are fixed at different values "
                f"{sorted(values)}; fix them at one value or drop the equality."
            )
        if values:
            value = values.pop()
            fixed.update(dict.fromkeys(group, value))
        else:
            groups.append(tuple(sorted(names.index(n) for n in group)))
    start = {names.index(n): v for n, v in constraints.start}
    tied = [names[i] for g in groups for i in g[1:] if i in start]
    if tied:
        raise SpecError(
            f"constraints start: {tied} are constrained equal to a parameter listed before "
            "them, whose starting value they take; give the start to the first of the group."
        )
    return Resolved(
        fixed={names.index(n): v for n, v in fixed.items()},
        groups=tuple(sorted(groups)),
        start=start,
    )


def restrictions(constraints: Constraints | None, names: Iterable[str]) -> int:
    """How many of ``names`` the constraints take out of the free parameters: each fixed
    name present, and each equal name present beyond the first of its group."""
    if constraints is None:
        return 0
    present = set(names)
    fixed = {n for n, _ in constraints.fixed}
    count = len(fixed & present)
    for group in _merged(constraints.equal):
        if fixed & set(group):
            count += len((set(group) - fixed) & present)
        else:
            count += max(len(set(group) & present) - 1, 0)
    return count


def _swap(name: str, a: str, b: str) -> str:
    """``name`` with the class labels ``a`` and ``b`` exchanged in its bracket."""
    match = _LABEL.search(name)
    if match is None:
        return name
    parts = [b if p == a else a if p == b else p for p in match.group(1).split(",")]
    return name[: match.start()] + "[" + ",".join(parts) + "]"


def _image(constraints: Constraints, a: str, b: str) -> tuple[frozenset, frozenset]:
    fixed = frozenset((_swap(n, a, b), v) for n, v in constraints.fixed)
    groups = frozenset(frozenset(_swap(n, a, b) for n in g) for g in _merged(constraints.equal))
    return fixed, groups


def symmetric(
    constraints: Constraints | None, labels: list[str], prefixes: tuple[str, ...]
) -> bool:
    """Whether relabelling the classes ``labels`` (e.g. ``c1``, ``c2``) leaves the
    constraints as they are; constraints on a parameter starting with one of
    ``prefixes`` (the class's logit coefficients, which a relabelling re-expresses)
    never are."""
    if constraints is None:
        return True
    if any(n.startswith(prefixes) for n in constraints.names):
        return False
    base = _image(constraints, "", "")
    return all(
        _image(constraints, labels[i], labels[i + 1]) == base for i in range(len(labels) - 1)
    )


def _tied(entries: list[str], constraints: Constraints) -> bool:
    """Whether constraints leave the classes' values of one effect no freedom to differ."""
    fixed = {n for n, _ in constraints.fixed}
    if set(entries) <= fixed:
        return True
    return any(set(entries) <= set(g) for g in _merged(constraints.equal))


def labelling_term(
    constraints: Constraints | None,
    order_by: str | None,
    varying: list[str],
    entries: Mapping[str, list[str]],
    labels: list[str],
    prefixes: tuple[str, ...],
) -> str | None:
    """The fixed effect that labels the classes under the constraints, or None.

    Parameters
    ----------
    constraints : Constraints or None
    order_by : str or None
        The spec's labelling effect (``order_classes_by`` or ``between_order_by``).
    varying : list of str
        The effects that vary over these classes, in formula order.
    entries : mapping
        Each varying effect's parameter names over these classes (in the first class
        of the other level).
    labels : list of str
        The class labels, e.g. ``["c1", "c2"]``.
    prefixes : tuple of str
        Parameters whose constraint singles out a class (see :func:`symmetric`).

    Returns
    -------
    str or None
        ``order_by`` when the constraints leave its values free, else the first
        varying effect whose values are free; None when the constraints single out a
        class (they label the classes) or leave no such effect.
    """
    if order_by is None or constraints is None:
        return order_by
    if not symmetric(constraints, labels, prefixes):
        return None
    for name in [order_by, *(v for v in varying if v != order_by)]:
        if not _tied(entries[name], constraints):
            return name
    return None


def sampled_names(constraints: Constraints | None, names: Iterable[str]) -> tuple[str, ...]:
    """The parameters a NUTS posterior holds: ``names`` less the fixed ones."""
    names = tuple(names)
    if constraints is None:
        return names
    fixed = resolve(constraints, names).fixed
    return tuple(n for k, n in enumerate(names) if k not in fixed)


def with_fixed(
    values: Any, present: Iterable[str], names: Iterable[str], constraints: Constraints | None
) -> Any:
    """Values of the parameters ``present`` (last axis) as values of all ``names``, the
    fixed parameters, which a NUTS posterior leaves out, at their values."""
    import numpy as np  # here, not at the top: specs are built without importing numpy

    values = np.asarray(values, dtype=float)
    present, names = list(present), list(names)
    if present == names:
        return values
    fixed = resolve(constraints, names).fixed
    out = np.empty((*values.shape[:-1], len(names)))
    where = {n: i for i, n in enumerate(present)}
    for k, name in enumerate(names):
        out[..., k] = fixed[k] if k in fixed else values[..., where[name]]
    return out


def describe(constraints: Constraints | None) -> str:
    """The constraints in one line, e.g. ``x[c2] fixed at 0.5; x[c1] = x[c2]``; empty
    without fixed values or equalities."""
    if constraints is None:
        return ""
    parts = [f"{n} fixed at {v:g}" for n, v in constraints.fixed]
    parts += [" = ".join(g) for g in _merged(constraints.equal)]
    return "; ".join(parts)
