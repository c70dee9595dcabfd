"""Formulas of model specifications, read by formulaic.

Formulas are of the form ``"y ~ x + z"`` (outcome) or ``"x + z"`` / ``"C ~ x"``
(membership and the other one-sided fields). The right-hand side follows
formulaic's grammar (which bambi's formulae also follow): ``a:b`` is a
product, ``a*b`` is ``a + b + a:b``, ``C(g)`` codes a column as categorical,
and Python expressions such as ``center(x)``, ``scale(x)``, ``np.log(x)`` and
``I(x + z)`` are transformed columns. The intercept is the term ``"1"``; it is
included unless the formula contains ``0`` or ``-1``.

A term is kept as text, its factors joined by ``:``; which columns a term
gives (one per level of a categorical factor) is known only with data, see
:mod:`bayesmix.data.terms`.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from functools import cache
from itertools import pairwise
from typing import TYPE_CHECKING

from bayesmix.errors import FormulaError, type_name

if TYPE_CHECKING:
    from formulaic import SimpleFormula

INTERCEPT = "1"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")
_ANSI = re.compile(r"\x1b\[[0-9;]*m|[⧛⧚]")

GROUP_TRANSFORMS = ("group_center", "group_mean")
"""Transforms by cluster, which the design provides: ``group_center(x)`` is ``x`` minus
its cluster's mean (Mplus ``CENTERING = GROUPMEAN``), ``group_mean(x)`` the cluster mean."""


@cache
def _known() -> frozenset[str]:
    """Names in a formula's expressions that are functions or modules, not columns."""
    from formulaic.transforms import TRANSFORMS

    return frozenset({*TRANSFORMS, *GROUP_TRANSFORMS})


_GRAMMAR = (
    "terms are column names joined by '+', products 'a:b' and 'a*b' (a + b + a:b), "
    "categorical columns 'C(g)', transforms such as 'center(x)', 'group_center(x)', "
    "'scale(x)', 'np.log(x)' or 'I(x + z)', and '1', '0' or '-1'"
)


@dataclass(frozen=True)
class Formula:
    """A parsed formula.

    Attributes
    ----------
    lhs : str or None
        Left-hand side (the outcome), or ``None`` for one-sided formulas.
    terms : tuple of str
        Terms in the order written, starting with ``"1"`` when an intercept
        is present; a product's factors are joined by ``:``.
    """

    lhs: str | None
    terms: tuple[str, ...]

    @property
    def has_intercept(self) -> bool:
        """Whether the formula contains an intercept."""
        return INTERCEPT in self.terms

    @property
    def variables(self) -> tuple[str, ...]:
        """Data columns the right-hand side refers to, in order of first use."""
        seen: list[str] = []
        for term in self.terms:
            for name in term_variables(term):
                if name not in seen:
                    seen.append(name)
        return tuple(seen)


def term_parts(term: str) -> tuple[str, ...]:
    """The factors of a term: its text split at each ``:`` outside brackets.

    ``"x:w"`` gives ``("x", "w")``; ``"C(g)[T.a:b]:x"`` gives
    ``("C(g)[T.a:b]", "x")``: a level's label may hold a colon.
    """
    if term == INTERCEPT:
        return ()
    cuts = [-1, *_outside_brackets(term, ":"), len(term)]
    return tuple(term[i + 1 : j] for i, j in pairwise(cuts))


def _outside_brackets(text: str, char: str) -> list[int]:
    """Positions of ``char`` in ``text`` outside parentheses and brackets."""
    out, depth = [], 0
    for i, c in enumerate(text):
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif c == char and depth == 0:
            out.append(i)
    return out


def is_name(part: str) -> bool:
    """Whether a factor is a plain column name (rather than an expression)."""
    return bool(_NAME.match(part))


def part_variables(part: str) -> tuple[str, ...]:
    """Data columns a factor reads: itself for a name, else those its expression names.

    Names of transforms (``C``, ``center``, ``np``...) and of the cluster
    transforms :data:`GROUP_TRANSFORMS` are not columns.
    """
    if is_name(part):
        return (part,)
    # a categorical level's column, C(g)[T.b], reads the columns of its factor C(g)
    part = re.sub(r"\[[^\[\]]*\]$", "", part)
    try:
        tree = ast.parse(part, mode="eval")
    except SyntaxError:
        return ()
    called = {id(node.func) for node in ast.walk(tree) if isinstance(node, ast.Call)}
    out: list[str] = []
    for node in ast.walk(tree):
        # a called name is a function (np.log's root np included), not a column
        if isinstance(node, ast.Name) and id(node) not in called and node.id not in _known():
            if node.id not in out:
                out.append(node.id)
    return tuple(out)


def term_variables(term: str) -> tuple[str, ...]:
    """Data columns a term reads, in order of appearance."""
    out: list[str] = []
    for part in term_parts(term):
        for name in part_variables(part):
            if name not in out:
                out.append(name)
    return tuple(out)


def _plain_message(err: Exception) -> str:
    """formulaic's message without its terminal colours and markers, first line only."""
    text = _ANSI.sub("", str(err)).strip()
    return (text.splitlines()[0] if text else type_name(err)).replace("`", "'")


def _term_text(term: object, text: str, where: str) -> str:
    """A formulaic term as bayesmix's text, refused unless it reads back as itself."""
    from formulaic.parser.types import Factor

    factors: list[Factor] = list(term.factors)  # type: ignore[attr-defined]
    for factor in factors:
        if factor.eval_method == Factor.EvalMethod.LOOKUP and not is_name(factor.expr):
            raise FormulaError(
                f"{where}: cannot read term {str(factor.expr)!r} in {text!r}; it is not a "
                f"column name (letters, digits, '_' and '.', not starting with a digit); "
                f"{_GRAMMAR}."
            )
    out = str(term)
    again = [str(t) for t in _parse_rhs(out, text, where) if str(t) != INTERCEPT]
    if again != [out]:
        raise FormulaError(
            f"{where}: term {out!r} of {text!r} does not read back as one term; write a "
            f"computed column as I(...), e.g. I({out})."
        )
    return out


def _parse_rhs(rhs: str, text: str, where: str) -> SimpleFormula:
    from formulaic import Formula as _Formulaic
    from formulaic import SimpleFormula
    from formulaic.errors import FormulaicError

    try:
        parsed = _Formulaic(rhs, _ordering="none")
    except (FormulaicError, SyntaxError, ValueError) as err:
        raise FormulaError(
            f"{where}: cannot read {text!r} ({_plain_message(err)}); {_GRAMMAR}."
        ) from None
    if not isinstance(parsed, SimpleFormula):
        raise FormulaError(
            f"{where}: {text!r} has several parts ('|' or a second '~'); give one formula, "
            "e.g. 'y ~ x + w'."
        )
    return parsed


def _check_subtraction(rhs: str, text: str, where: str) -> None:
    """Refuse ``- term`` other than ``-1`` / ``-0``: formulaic would drop it silently."""
    for i in _outside_brackets(rhs, "-"):
        rest = rhs[i + 1 :].lstrip()
        token = re.match(r"[^+\-]*", rest)
        removed = token.group(0).strip() if token else ""
        if removed not in ("0", "1"):
            raise FormulaError(
                f"{where}: cannot read term {('-' + removed)!r} in {text!r}: only the "
                f"intercept can be removed ('-1' or '0'); drop the term from the formula "
                f"instead; {_GRAMMAR}."
            )


_PLAIN_ITEM = re.compile(r"^(0|1|[A-Za-z_][A-Za-z0-9_.]*(:[A-Za-z_][A-Za-z0-9_.]*)*)$")


def _plain_terms(rhs: str) -> list[str] | None:
    """The terms of a right-hand side of column names, products ``a:b``, ``1``, ``0`` and
    ``-1``, read as formulaic reads them; None for anything else (formulaic reads it).

    Most model files hold such formulas; reading them here spares the fit formulaic's
    import.
    """
    written = rhs.strip()
    written = written if written.startswith(("+", "-")) else f"+ {written}"
    items = re.split(r"\s*([+-])\s*", written)
    if items[0]:
        return None
    terms: list[str] = []
    intercept, removed, added = True, False, False
    for sign, item in zip(items[1::2], items[2::2], strict=True):
        if not _PLAIN_ITEM.match(item):
            return None
        if item in ("0", "1"):
            kept = (sign == "+") == (item == "1")
            removed = removed or not kept
            added = added or (kept and item == "1")
            intercept = intercept and kept
            continue
        if sign == "-":
            return None
        factors = item.split(":")
        # repeated factors or terms, and products in another order, are formulaic's to merge
        if len(set(factors)) < len(factors) or any(
            set(t.split(":")) == set(factors) for t in terms
        ):
            return None
        terms.append(item)
    if removed and added:
        return None
    return [INTERCEPT, *terms] if intercept else terms


def _formulaic_terms(rhs: str, text: str, where: str) -> list[str]:
    """The terms of a right-hand side as formulaic parses it, in the order written."""
    parsed = _parse_rhs(rhs, text, where)
    return [INTERCEPT if str(t) == INTERCEPT else _term_text(t, text, where) for t in parsed]


def parse_formula(text: str, *, where: str = "formula") -> Formula:
    """Parse a formula.

    Parameters
    ----------
    text : str
        The formula, e.g. ``"y ~ x + z"``, ``"x"`` or ``"y ~ C(g) * center(x)"``.
    where : str
        Where the formula comes from, used in error messages.

    Returns
    -------
    Formula

    Raises
    ------
    FormulaError
        If the formula is empty, has several ``~``, a left-hand side that is
        not a column name, or a right-hand side formulaic cannot read.
    """
    if not isinstance(text, str) or not text.strip():
        raise FormulaError(f"{where}: expected a formula such as 'y ~ x', got {text!r}.")
    parts = text.split("~")
    if len(parts) > 2:
        raise FormulaError(f"{where}: {text!r} has more than one '~'.")
    lhs: str | None = None
    rhs = parts[-1]
    if len(parts) == 2:
        lhs = parts[0].strip()
        if not _NAME.match(lhs):
            raise FormulaError(
                f"{where}: left-hand side {lhs!r} of {text!r} is not a column name; a "
                "transformed outcome is a new column of the data (e.g. "
                'data["log_y"] = np.log(data["y"])).'
            )
    if not rhs.strip():
        raise FormulaError(f"{where}: {text!r} has no terms and no intercept.")
    _check_subtraction(rhs, text, where)
    terms = _plain_terms(rhs)
    if terms is None:
        terms = _formulaic_terms(rhs, text, where)
    if INTERCEPT in terms:
        # the intercept leads, as the parameter layout expects
        terms.remove(INTERCEPT)
        terms.insert(0, INTERCEPT)
    if not terms:
        raise FormulaError(f"{where}: {text!r} has no terms and no intercept.")
    return Formula(lhs=lhs, terms=tuple(terms))


def normalise_term(name: str) -> str:
    """A term's name as :func:`parse_formula` writes it (``"I(x*2)"`` -> ``"I(x * 2)"``).

    Names that are no single term (a categorical level such as
    ``"C(g)[T.b]"``) are returned as given.
    """
    if name == INTERCEPT or is_name(name):
        return name
    try:
        terms = [t for t in parse_formula(name).terms if t != INTERCEPT]
    except FormulaError:
        return name
    return terms[0] if len(terms) == 1 else name
