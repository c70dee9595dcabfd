"""Tests of bayesmix.model.formula.parse_formula."""

from __future__ import annotations

import pytest

from bayesmix.errors import FormulaError, SpecError
from bayesmix.model.formula import INTERCEPT, Formula, parse_formula


@pytest.mark.parametrize(
    ("text", "lhs", "terms"),
    [
        ("y ~ x", "y", ("1", "x")),
        ("y~x+z", "y", ("1", "x", "z")),
        ("  y  ~  x  +  z  ", "y", ("1", "x", "z")),
        ("y ~ 1", "y", ("1",)),
        ("y ~ x + 1", "y", ("1", "x")),
        ("y ~ 1 + x + 1", "y", ("1", "x")),
        ("x", None, ("1", "x")),
        ("x + w", None, ("1", "x", "w")),
        ("C ~ x", "C", ("1", "x")),
        ("y ~ x.1 + _z", "y", ("1", "x.1", "_z")),
    ],
)
def test_intercept_is_added_first(text: str, lhs: str | None, terms: tuple[str, ...]) -> None:
    formula = parse_formula(text)
    assert formula == Formula(lhs=lhs, terms=terms)
    assert formula.has_intercept
    assert formula.terms[0] == INTERCEPT


@pytest.mark.parametrize(
    "text",
    ["y ~ 0 + x", "y ~ x + 0", "y ~ x - 1", "y ~ -1 + x", "y ~ x+ -1", "y ~ x -1"],
)
def test_zero_or_minus_one_removes_intercept(text: str) -> None:
    formula = parse_formula(text)
    assert formula.lhs == "y"
    assert formula.terms == ("x",)
    assert not formula.has_intercept


def test_interactions_are_single_terms() -> None:
    formula = parse_formula("y ~ x + w + x:w")
    assert formula.terms == ("1", "x", "w", "x:w")
    assert formula.variables == ("x", "w")


def test_interaction_with_spaces_is_normalised() -> None:
    assert parse_formula("y ~ a : b").terms == ("1", "a:b")


def test_three_way_interaction() -> None:
    formula = parse_formula("y ~ a:b:c")
    assert formula.terms == ("1", "a:b:c")
    assert formula.variables == ("a", "b", "c")


def test_variables_in_order_of_first_use() -> None:
    formula = parse_formula("y ~ a:b + c + a")
    assert formula.terms == ("1", "a:b", "c", "a")
    assert formula.variables == ("a", "b", "c")


def test_duplicate_terms_are_kept_once() -> None:
    assert parse_formula("y ~ x + z + x").terms == ("1", "x", "z")
    assert parse_formula("y ~ x:w + x:w + x").terms == ("1", "x:w", "x")


def test_reordered_interaction_is_a_duplicate() -> None:
    assert parse_formula("y ~ a:b + b:a").terms == ("1", "a:b")


def test_formula_is_frozen() -> None:
    formula = parse_formula("y ~ x")
    with pytest.raises(AttributeError):
        formula.terms = ("x",)  # type: ignore[misc]


def test_formula_error_is_a_spec_error() -> None:
    assert issubclass(FormulaError, SpecError)
    assert issubclass(FormulaError, ValueError)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "expected a formula such as 'y ~ x', got ''"),
        ("   ", "expected a formula such as 'y ~ x'"),
        (None, "got None"),
        (3, "got 3"),
        ("y ~ x ~ z", "has more than one '~'"),
        ("3y ~ x", "left-hand side '3y' of '3y ~ x' is not a column name"),
        ("~ x", "left-hand side '' of '~ x' is not a column name"),
        ("y + z ~ x", "left-hand side 'y + z'"),
        ("y ~ 0", "'y ~ 0' has no terms and no intercept"),
        ("y ~ -1", "has no terms and no intercept"),
    ],
)
def test_malformed_formula_raises(text: object, fragment: str) -> None:
    with pytest.raises(FormulaError) as info:
        parse_formula(text)  # type: ignore[arg-type]
    assert fragment in str(info.value)


@pytest.mark.parametrize(
    ("text", "term"),
    [
        ("y ~ x*z", "x*z"),
        ("y ~ log(x)", "log(x)"),
        ("y ~ a::b", "a::b"),
        ("y ~ x - z", "- z"),
        ("y ~ -x", "-x"),
        ("y ~ 2", "2"),
        ("y ~ x + 1x", "1x"),
        ("y ~ x:", "x:"),
    ],
)
def test_unreadable_term_names_the_term_and_the_grammar(text: str, term: str) -> None:
    with pytest.raises(FormulaError) as info:
        parse_formula(text)
    message = str(info.value)
    assert f"cannot read term {term!r} in {text!r}" in message
    assert "interactions 'a:b'" in message
    assert "'1', '0' or '-1'" in message


def test_where_prefixes_the_message() -> None:
    with pytest.raises(FormulaError, match=r"^membership formula: "):
        parse_formula("x ~ y ~ z", where="membership formula")
