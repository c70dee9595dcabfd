"""A small parser for the additive formulas used in model specifications.

Formulas are of the form ``"y ~ x + z"`` (outcome) or ``"x + z"`` / ``"C ~ x"``
(membership). The intercept is the term ``"1"``; it is included unless the
formula contains ``0`` or ``-1``. Interactions ``a:b`` are kept as single
terms whose column is the product of the named columns.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bayesmix.errors import FormulaError

INTERCEPT = "1"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")


@dataclass(frozen=True)
class Formula:
    """A parsed additive formula.

    Attributes
    ----------
    lhs : str or None
        Left-hand side (the outcome), or ``None`` for one-sided formulas.
    terms : tuple of str
        Terms in order, starting with ``"1"`` when an intercept is present.
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
            if term == INTERCEPT:
                continue
            for name in term.split(":"):
                if name not in seen:
                    seen.append(name)
        return tuple(seen)


def parse_formula(text: str, *, where: str = "formula") -> Formula:
    """Parse an additive formula.

    Parameters
    ----------
    text : str
        The formula, e.g. ``"y ~ x + z"`` or ``"x"``.
    where : str
        Where the formula comes from, used in error messages.

    Returns
    -------
    Formula

    Raises
    ------
    FormulaError
        If the formula is empty, has several ``~`` or contains a term that is
        neither a column name, an interaction ``a:b``, ``1``, ``0`` nor ``-1``.
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
            raise FormulaError(f"{where}: left-hand side {lhs!r} of {text!r} is not a column name.")
    intercept = True
    terms: list[str] = []
    # "x + -1" is "x - 1"; then one split on '+' suffices
    for i, raw in enumerate(re.sub(r"\+\s*-", "-", rhs).replace("-", "+-").split("+")):
        token = raw.strip().replace(" ", "")
        if token == "":
            if (i == 0 and rhs.strip().startswith("-")) or not rhs.strip():
                continue  # the split's empty head of "-1 + x", or an empty right side
            raise FormulaError(
                f"{where}: {text!r} has a '+' with no term on one side; remove it or add "
                "the missing term."
            )
        if token in ("0", "-1"):
            intercept = False
            continue
        if token == "1":
            continue
        names = token.split(":")
        if not all(_NAME.match(name) for name in names):
            raise FormulaError(
                f"{where}: cannot read term {raw.strip()!r} in {text!r}; terms are column "
                "names joined by '+', interactions 'a:b', and '1', '0' or '-1'."
            )
        # a:b and b:a are the same product column
        if not any(set(t.split(":")) == set(names) for t in terms):
            terms.append(token)
    if intercept:
        terms.insert(0, INTERCEPT)
    if not terms:
        raise FormulaError(f"{where}: {text!r} has no terms and no intercept.")
    return Formula(lhs=lhs, terms=tuple(terms))
