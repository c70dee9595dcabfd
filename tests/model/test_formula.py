"""Tests of bayesmix.model.formula.parse_formula."""

from __future__ import annotations

import pytest

from bayesmix.errors import FormulaError, SpecError
from bayesmix.model.formula import (
    INTERCEPT,
    Formula,
    normalise_term,
    parse_formula,
    term_parts,
    term_variables,
)


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
    ("text", "fragment"),
    [
        ("y ~ a::b", "cannot read 'y ~ a::b' (Operator '::'"),
        ("y ~ x - z", "cannot read term '-z' in 'y ~ x - z': only the intercept can be removed"),
        ("y ~ -x", "cannot read term '-x' in 'y ~ -x'"),
        ("y ~ 2", "cannot read 'y ~ 2' (Numeric literals other than '1'"),
        ("y ~ x + 1x", "cannot read term '1x' in 'y ~ x + 1x'; it is not a column name"),
        ("y ~ x:", "cannot read 'y ~ x:' (Operator ':'"),
    ],
)
def test_unreadable_term_names_the_term_and_the_grammar(text: str, fragment: str) -> None:
    with pytest.raises(FormulaError) as info:
        parse_formula(text)
    message = str(info.value)
    assert fragment in message
    assert "products 'a:b' and 'a*b'" in message
    assert "'C(g)'" in message
    assert "'1', '0' or '-1'" in message


def test_a_formula_of_several_parts_is_refused() -> None:
    with pytest.raises(FormulaError, match=r"'y ~ x \| z' has several parts"):
        parse_formula("y ~ x | z")


def test_a_computed_term_must_read_back_as_itself() -> None:
    with pytest.raises(FormulaError, match=r"write a computed column as I\(\.\.\.\)"):
        parse_formula("y ~ {x + 1}")


def test_a_transformed_outcome_is_refused_with_the_fix() -> None:
    with pytest.raises(FormulaError, match=r"left-hand side 'np.log\(y\)'.*log_y"):
        parse_formula("np.log(y) ~ x")


# --- formulaic's grammar: products, categorical columns, transforms ---------------------------


@pytest.mark.parametrize(
    ("text", "terms", "variables"),
    [
        ("y ~ x*w", ("1", "x", "w", "x:w"), ("x", "w")),
        ("y ~ (a + b):c", ("1", "a:c", "b:c"), ("a", "c", "b")),
        ("y ~ C(sector) + ses", ("1", "C(sector)", "ses"), ("sector", "ses")),
        ("y ~ C(sector):ses", ("1", "C(sector):ses"), ("sector", "ses")),
        ("y ~ center(ses) + scale(x)", ("1", "center(ses)", "scale(x)"), ("ses", "x")),
        ("y ~ np.log(size) + I(x*2)", ("1", "np.log(size)", "I(x * 2)"), ("size", "x")),
        ("y ~ group_center(ses) + group_mean(ses)", ("1", "group_center(ses)",
                                                     "group_mean(ses)"), ("ses",)),
        ("y ~ C(g, contr.treatment('b'))", ("1", "C(g, contr.treatment('b'))"), ("g",)),
        ("y ~ 0 + C(g)", ("C(g)",), ("g",)),
    ],
)  # fmt: skip
def test_formulaic_terms(text: str, terms: tuple[str, ...], variables: tuple[str, ...]) -> None:
    formula = parse_formula(text)
    assert formula.terms == terms
    assert formula.variables == variables


def test_term_parts_keep_a_level_with_a_colon_whole() -> None:
    assert term_parts("C(g)[T.a:b]:x") == ("C(g)[T.a:b]", "x")
    assert term_parts("x:w") == ("x", "w")
    assert term_parts(INTERCEPT) == ()
    assert term_variables("C(g)[T.b]:np.log(x)") == ("g", "x")


def test_names_are_normalised_as_the_parser_writes_them() -> None:
    assert normalise_term("I(x*2)") == "I(x * 2)"
    assert normalise_term("x:w") == "x:w"
    assert normalise_term("C(sector)[T.private]") == "C(sector)[T.private]"


def test_where_prefixes_the_message() -> None:
    with pytest.raises(FormulaError, match=r"^membership formula: "):
        parse_formula("x ~ y ~ z", where="membership formula")


@pytest.mark.parametrize(
    "rhs",
    [
        "x",
        "x + z",
        "1 + x",
        "x + 1",
        "0 + x + z",
        "x + z - 1",
        "-1 + x",
        "x:w + x + w",
        "female + ses + pracad:catholic + meanses",
        "1",
        "z + x:w:v",
    ],
)
def test_plain_formulas_read_without_formulaic_as_formulaic_reads_them(rhs):
    from bayesmix.model.formula import _formulaic_terms, _plain_terms

    plain = _plain_terms(rhs)
    assert plain is not None
    assert plain == _formulaic_terms(rhs, rhs, "test")


@pytest.mark.parametrize("rhs", ["x + x", "x:w + w:x", "x:x", "C(g)", "x*w", "1 - 1 + x"])
def test_formulas_formulaic_must_merge_go_to_formulaic(rhs):
    from bayesmix.model.formula import _plain_terms

    assert _plain_terms(rhs) is None
