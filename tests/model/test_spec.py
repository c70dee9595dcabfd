"""Tests of bayesmix.model.spec: make_spec, Spec validation and load_spec."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from bayesmix.errors import FormulaError, SpecError
from bayesmix.model.build import load_spec, make_spec
from bayesmix.model.spec import Spec
from tests.support.paths import MODELS

FIG1 = MODELS / "fig1.toml"
FIG1_DESCRIPTION = "Single-level regression mixture of the paper's Fig 1 (eqs 1-2)"


def _write(tmp_path: Path, text: str, name: str = "model.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --- make_spec ---------------------------------------------------------------------------------


def test_make_spec_single_class_defaults() -> None:
    spec = make_spec("y ~ x")
    assert spec == Spec(
        outcome="y",
        terms=("1", "x"),
        classes=1,
        class_varying=(),
        residual_variance="common",
        membership=("1",),
        order_classes_by=None,
        name="model",
        description="",
    )
    assert spec.n_classes == 1
    assert spec.common_terms == ("1", "x")
    assert spec.columns == ("y", "x")


def test_make_spec_mixture_defaults_all_terms_varying_ordered_by_intercept() -> None:
    spec = make_spec("y ~ x", classes=2)
    assert spec.class_varying == ("1", "x")
    assert spec.order_classes_by == "1"
    assert spec.membership == ("1",)
    assert spec.residual_variance == "common"
    assert spec.common_terms == ()


def test_make_spec_varying_subset_orders_by_first_varying_term() -> None:
    spec = make_spec("y ~ x + z", classes=2, class_varying=["x"])
    assert spec.class_varying == ("x",)
    assert spec.order_classes_by == "x"
    assert spec.common_terms == ("1", "z")


def test_make_spec_string_class_varying_names_one_term() -> None:
    spec = make_spec("y ~ x + z", classes=2, class_varying="z")
    assert spec.class_varying == ("z",)
    assert spec.order_classes_by == "z"


def test_make_spec_membership_formula_and_columns() -> None:
    spec = make_spec("y ~ x + x:w", classes=3, membership="C ~ z + w", name="m", description="d")
    assert spec.membership == ("1", "z", "w")
    assert spec.columns == ("y", "x", "w", "z")
    assert spec.name == "m"
    assert spec.description == "d"


def test_make_spec_membership_always_has_intercept() -> None:
    spec = make_spec("y ~ x", classes=2, membership="0 + x")
    assert spec.membership == ("1", "x")


def test_make_spec_single_class_drops_mixture_settings() -> None:
    spec = make_spec("y ~ x", classes=1, residual_variance="class", membership="z")
    assert spec.class_varying == ()
    assert spec.residual_variance == "common"
    assert spec.membership == ("1",)
    assert spec.order_classes_by is None
    assert spec.columns == ("y", "x")


def test_make_spec_needs_outcome() -> None:
    with pytest.raises(SpecError, match=r"the outcome formula 'x' needs an outcome: write 'y ~"):
        make_spec("x")


def test_make_spec_bad_formula_raises_formula_error() -> None:
    with pytest.raises(FormulaError, match=r"^outcome formula: cannot read 'y ~ x \+'"):
        make_spec("y ~ x +")
    with pytest.raises(FormulaError, match=r"^membership formula: cannot read term '1x'"):
        make_spec("y ~ x", classes=2, membership="x + 1x")


def test_spec_is_frozen() -> None:
    spec = make_spec("y ~ x")
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.classes = 2  # type: ignore[misc]


# --- Spec validation ---------------------------------------------------------------------------


@pytest.mark.parametrize("classes", [0, -1])
def test_classes_below_one(classes: int) -> None:
    with pytest.raises(SpecError) as info:
        make_spec("y ~ x", classes=classes)
    assert str(info.value) == (
        f"classes must be at least 1, got {classes}; use classes=1 for an ordinary "
        "(single-class) regression."
    )


@pytest.mark.parametrize("classes", [2.0, True, "2"])
def test_classes_not_an_integer(classes: object) -> None:
    with pytest.raises(SpecError, match=r"classes must be an integer >= 1, got "):
        Spec(outcome="y", terms=("1", "x"), classes=classes)  # type: ignore[arg-type]


def test_class_varying_names_a_non_term() -> None:
    with pytest.raises(SpecError) as info:
        make_spec("y ~ x", classes=2, class_varying=["z", "x"])
    assert str(info.value) == (
        "class_varying names ['z'], which are not fixed effects of the model; they are ['1', 'x']."
    )


def test_mixture_needs_a_class_varying_term() -> None:
    with pytest.raises(SpecError, match=r"a 2-class mixture needs at least one class-varying"):
        make_spec("y ~ x", classes=2, class_varying=[])


def test_missing_order_term() -> None:
    with pytest.raises(SpecError) as info:
        Spec(outcome="y", terms=("1", "x"), classes=2, class_varying=("1", "x"))
    assert str(info.value) == (
        "order_classes_by=None must be one of the class-varying effects ['1', 'x']."
    )


@pytest.mark.parametrize("order", ["z", "1"])
def test_order_term_not_class_varying(order: str) -> None:
    with pytest.raises(SpecError, match=rf"order_classes_by='{order}' must be one of the class-"):
        make_spec("y ~ x + z", classes=2, class_varying=["x"], order_classes_by=order)


@pytest.mark.parametrize("value", ["bogus", "Class", ""])
def test_residual_variance_invalid(value: str) -> None:
    with pytest.raises(SpecError) as info:
        make_spec("y ~ x", classes=2, residual_variance=value)  # type: ignore[arg-type]
    assert str(info.value) == (
        f"residual_variance must be one of ('common', 'class'), got {value!r}."
    )


def test_membership_without_intercept_is_rejected() -> None:
    with pytest.raises(SpecError, match="the membership regression must include an intercept"):
        Spec(
            outcome="y",
            terms=("1", "x"),
            classes=2,
            class_varying=("1",),
            order_classes_by="1",
            membership=("x",),
        )


# --- load_spec ---------------------------------------------------------------------------------


def test_load_fig1_fields_exactly() -> None:
    spec = load_spec(FIG1)
    assert spec == Spec(
        outcome="y",
        terms=("1", "x"),
        classes=2,
        class_varying=("1", "x"),
        residual_variance="class",
        membership=("1", "x"),
        order_classes_by="1",
        name="fig1",
        description=FIG1_DESCRIPTION,
    )
    assert spec.columns == ("y", "x")
    assert load_spec(str(FIG1)) == spec


def test_load_spec_name_defaults_to_file_stem(tmp_path: Path) -> None:
    path = _write(tmp_path, '[outcome]\nformula = "y ~ x"\n', name="plain.toml")
    spec = load_spec(path)
    assert spec.name == "plain"
    assert spec.classes == 1
    assert spec.description == ""


def test_load_spec_class_varying_string(tmp_path: Path) -> None:
    path = _write(tmp_path, 'classes = 2\n[outcome]\nformula = "y ~ x + z"\nclass_varying = "x"\n')
    spec = load_spec(path)
    assert spec.class_varying == ("x",)
    assert spec.order_classes_by == "x"


@pytest.mark.parametrize(
    ("text", "where", "unknown", "valid"),
    [
        (
            'name = "m"\nclass = 2\n[outcome]\nformula = "y ~ x"\n',
            "",
            "['class']",
            "['between', 'centre', 'classes', 'cluster', 'constraints', 'description', 'level2', "
            "'membership', 'name', 'outcome', 'random', 'weights']",
        ),
        (
            '[outcome]\nformula = "y ~ x"\nvarying = ["x"]\nresidual = "class"\n',
            " [outcome]",
            "['residual', 'varying']",
            "['class_varying', 'formula', 'order_classes_by', 'residual_covariates', "
            "'residual_groups', 'residual_variance']",
        ),
        (
            '[outcome]\nformula = "y ~ x"\n[membership]\nformula = "x"\nfromula = "x"\n',
            " [membership]",
            "['fromula']",
            "['formula', 'random']",
        ),
    ],
)
def test_unknown_keys_list_valid_keys(
    tmp_path: Path, text: str, where: str, unknown: str, valid: str
) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert str(info.value) == (f"{path}{where}: unknown key(s) {unknown}; valid keys are {valid}.")


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert str(info.value) == f"model file {str(path)!r} does not exist."


def test_directory_is_not_a_model_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="is a folder, not a model file"):
        load_spec(tmp_path)


def test_invalid_toml(tmp_path: Path) -> None:
    path = _write(tmp_path, '[outcome\nformula = "y ~ x"\n')
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert str(info.value).startswith(f"{path}: not valid TOML (")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('name = "m"\n', "needs an [outcome] table with a 'formula'"),
        ('outcome = "y ~ x"\n', "needs an [outcome] table with a 'formula'"),
        ("[outcome]\nclass_varying = 'all'\n", "[outcome]: needs a 'formula' such as"),
        ('membership = "x"\n[outcome]\nformula = "y ~ x"\n', "[membership] must be a table"),
    ],
)
def test_malformed_tables(tmp_path: Path, text: str, fragment: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert str(info.value).startswith(str(path))
    assert fragment in str(info.value)


def test_invalid_model_in_file_names_the_file(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        'classes = 2\n[outcome]\nformula = "y ~ x"\nresidual_variance = "classes"\n',
    )
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert str(info.value) == (
        f"{path}: residual_variance must be one of ('common', 'class'), got 'classes'."
    )


def test_file_with_zero_classes(tmp_path: Path) -> None:
    path = _write(tmp_path, 'classes = 0\n[outcome]\nformula = "y ~ x"\n')
    with pytest.raises(SpecError, match=r"classes must be at least 1, got 0"):
        load_spec(path)


def test_file_order_term_not_varying(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        'classes = 2\n[outcome]\nformula = "y ~ x"\nclass_varying = ["x"]\n'
        'order_classes_by = "1"\n',
    )
    with pytest.raises(SpecError, match=r"order_classes_by='1' must be one of"):
        load_spec(path)


def test_load_spec_classes_override() -> None:
    spec = load_spec(FIG1, classes=3)
    assert spec.classes == 3
    assert spec.class_varying == ("1", "x")
    assert spec.membership == ("1", "x")
    assert spec.residual_variance == "class"
    assert load_spec(FIG1, classes=1).classes == 1


def test_load_spec_classes_override_below_one() -> None:
    with pytest.raises(SpecError, match=r"^classes must be an integer >= 1, got 0\.$"):
        load_spec(FIG1, classes=0)
    with pytest.raises(SpecError, match=r"^classes must be an integer >= 1, got True\.$"):
        load_spec(FIG1, classes=True)


def test_outcome_on_both_sides_is_rejected() -> None:
    with pytest.raises(SpecError, match="'y' also appears on the right-hand side"):
        make_spec("y ~ x + y")


def test_class_varying_non_term_rejected_for_one_class() -> None:
    with pytest.raises(SpecError, match=r"class_varying names \['z'\]"):
        make_spec("y ~ x", classes=1, class_varying=["z"])


def test_load_spec_classes_override_keeps_file_settings(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        'classes = 1\n[outcome]\nformula = "y ~ x + z"\nclass_varying = ["x"]\n'
        'residual_variance = "class"\norder_classes_by = "x"\n[membership]\nformula = "z"\n',
    )
    spec = load_spec(path, classes=2)
    assert spec.class_varying == ("x",)
    assert spec.residual_variance == "class"
    assert spec.order_classes_by == "x"
    assert spec.membership == ("1", "z")


# --- with_classes ------------------------------------------------------------------------------


def test_with_classes_one_gives_ordinary_regression() -> None:
    spec = load_spec(FIG1).with_classes(1)
    assert spec == Spec(
        outcome="y",
        terms=("1", "x"),
        classes=1,
        class_varying=(),
        residual_variance="common",
        membership=("1",),
        order_classes_by=None,
        name="fig1",
        description=FIG1_DESCRIPTION,
    )
    assert spec.columns == ("y", "x")


def test_with_classes_three_keeps_mixture_settings() -> None:
    spec = load_spec(FIG1).with_classes(3)
    assert spec == Spec(
        outcome="y",
        terms=("1", "x"),
        classes=3,
        class_varying=("1", "x"),
        residual_variance="class",
        membership=("1", "x"),
        order_classes_by="1",
        name="fig1",
        description=FIG1_DESCRIPTION,
    )


def test_with_same_classes_returns_same_object() -> None:
    spec = load_spec(FIG1)
    assert spec.with_classes(2) is spec


def test_with_classes_from_single_class_makes_all_terms_vary() -> None:
    spec = make_spec("y ~ x + z").with_classes(2)
    assert spec.classes == 2
    assert spec.class_varying == ("1", "x", "z")
    assert spec.order_classes_by == "1"
    assert spec.membership == ("1",)


def test_with_classes_zero_raises() -> None:
    with pytest.raises(SpecError, match=r"classes must be at least 1, got 0"):
        load_spec(FIG1).with_classes(0)


@pytest.mark.parametrize("variant", ["1", "1b", "1c"])
def test_hsb_model_files_equal_demo_specs(variant: str) -> None:
    import dataclasses

    from bayesmix.paper.demo import hsb_conventional_spec

    path = MODELS / f"hsb_{variant}.toml"
    from_file = dataclasses.replace(load_spec(path), description="")
    assert from_file == hsb_conventional_spec(variant)


def test_conventional_model_file_has_paper_parameter_count() -> None:
    from bayesmix.model.params import param_names

    spec = load_spec(MODELS / "conventional.toml")
    # Section 2.2: the conventional model has eight parameters
    assert param_names(spec) == [
        "1",
        "w",
        "x",
        "x:w",
        "var(u_1)",
        "var(u_x)",
        "cov(u_1,u_x)",
        "sigma2",
    ]
