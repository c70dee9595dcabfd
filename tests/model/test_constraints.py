"""Constraints in specs: how they are given, checked, counted and which class labels follow."""

from __future__ import annotations

import dataclasses
import re

import pytest

import bayesmix as bm
from bayesmix.errors import SpecError
from bayesmix.model.constraints import (
    Constraints,
    constraints_from,
    describe,
    resolve,
    restrictions,
    symmetric,
)
from bayesmix.model.params import labelling, param_names
from tests.support.paths import MODELS

FIG1_NAMES = [
    "1[c1]",
    "1[c2]",
    "x[c1]",
    "x[c2]",
    "sigma2[c1]",
    "sigma2[c2]",
    "C#1 ~ 1",
    "C#1 ~ x",
]


def three_classes(**constraints) -> bm.Spec:
    return bm.make_spec("y ~ x + z", classes=3, membership="x", constraints=constraints or None)


def test_a_model_file_holds_constraints_and_labels(tmp_path):
    path = tmp_path / "m.toml"
    path.write_text(
        'name = "m"\nclasses = 2\n[outcome]\nformula = "y ~ x"\nresidual_variance = "class"\n'
        '[membership]\nformula = "x"\n'
        "[constraints]\n"
        'fixed = { "x[c2]" = 0.5 }\n'
        'equal = { a = ["sigma2[c1]", "sigma2[c2]"] }\n'
        'start = { "1[c1]" = 3.0 }\n'
    )
    spec = bm.load_spec(path)
    assert spec.constraints == Constraints(
        fixed=(("x[c2]", 0.5),), equal=(("sigma2[c1]", "sigma2[c2]"),), start=(("1[c1]", 3.0),)
    )
    assert describe(spec.constraints) == "x[c2] fixed at 0.5; sigma2[c1] = sigma2[c2]"
    assert param_names(spec) == FIG1_NAMES


def test_make_spec_takes_a_mapping_and_an_empty_one_is_none():
    spec = bm.make_spec("y ~ x", classes=2, constraints={"equal": [["x[c1]", "x[c2]"]]})
    assert spec.constraints.equal == (("x[c1]", "x[c2]"),)
    assert constraints_from({"fixed": {}, "equal": []}) is None


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"fixd": {}}, "unknown key(s) ['fixd']"),
        ({"fixed": {"x[c1]": "a"}}, "the value of 'x[c1]' must be a number"),
        ({"fixed": {"x[c1]": float("nan")}}, "must be finite"),
        ({"equal": [["x[c1]"]]}, "fewer than two parameters"),
        ({"equal": ["x[c1]"]}, "each group is a list of parameter names"),
        ({"fixed": {"x[c1]": 1.0}, "start": {"x[c1]": 2.0}}, "drop it from start"),
        ([1, 2], "must be a table with keys"),
    ],
)
def test_malformed_constraints_name_the_entry(value, message):
    with pytest.raises(SpecError, match=re.escape(message)):
        constraints_from(value)


@pytest.mark.parametrize(
    ("constraints", "message"),
    [
        ({"fixed": {"x[c3]": 0.0}}, r"'x\[c3\]' is not a parameter of the model; did you mean"),
        ({"fixed": {"sigma2[c1]": 0.0}}, "must be positive"),
        ({"equal": [["sigma2[c1]", "x[c1]"]]}, "mixes coefficients and residual variances"),
        (
            {"fixed": {"x[c1]": 0.0, "x[c2]": 1.0}, "equal": [["x[c1]", "x[c2]"]]},
            "fixed at different values",
        ),
        ({"equal": [["x[c1]", "x[c2]"]], "start": {"x[c2]": 1.0}}, "first of the group"),
    ],
)
def test_constraints_the_model_cannot_take_are_refused(constraints, message):
    with pytest.raises(SpecError, match=message):
        resolve(constraints_from(constraints), FIG1_NAMES)


def test_correlated_school_residuals_cannot_be_constrained():
    names = param_names(bm.load_spec(MODELS / "hsb_1.toml"))
    for name in ("var(u_1)", "cov(u_1,u_female)"):
        with pytest.raises(SpecError, match=r"of correlated school residuals.*diagonal"):
            resolve(constraints_from({"fixed": {name: 1.0}}), names)
    diagonal = param_names(bm.load_spec(MODELS / "fig3.toml"))
    got = resolve(constraints_from({"equal": [["var(u_1)", "var(u_C#1)"]]}), diagonal)
    assert len(got.groups) == 1
    for bad, message in (
        ({"fixed": {"var(u_1)": 0.0}}, "must be positive"),
        ({"equal": [["var(u_1)", "sigma2"]]}, "mixes residual variances and school-residual"),
    ):
        with pytest.raises(SpecError, match=message):
            resolve(constraints_from(bad), diagonal)


def test_groups_sharing_a_name_merge_and_a_fixed_member_fixes_the_group():
    cons = constraints_from(
        {"equal": [["1[c1]", "1[c2]"], ["1[c2]", "x[c1]"]], "fixed": {"x[c2]": 2.0}}
    )
    got = resolve(cons, FIG1_NAMES)
    assert got.groups == ((0, 1, 2),)
    assert got.fixed == {3: 2.0}
    assert got.n_restrictions == 3
    fixed_group = resolve(
        constraints_from({"equal": [["x[c1]", "x[c2]"]], "fixed": {"x[c2]": 2.0}}), FIG1_NAMES
    )
    assert fixed_group.fixed == {2: 2.0, 3: 2.0} and fixed_group.groups == ()


def test_restrictions_count_the_names_present():
    cons = constraints_from({"fixed": {"x[c2]": 0.5}, "equal": [["1[c1]", "1[c2]"]]})
    assert restrictions(cons, FIG1_NAMES) == 2
    # a posterior without the fixed parameter still has the equality
    assert restrictions(cons, [n for n in FIG1_NAMES if n != "x[c2]"]) == 1
    assert restrictions(None, FIG1_NAMES) == 0


def test_classes_are_labelled_by_the_next_free_effect_when_the_order_term_is_tied():
    tied = three_classes(equal=[["1[c1]", "1[c2]", "1[c3]"]])
    assert labelling(tied) == ("x", None)
    both = three_classes(equal=[["1[c1]", "1[c2]", "1[c3]"], ["x[c1]", "x[c2]", "x[c3]"]])
    assert labelling(both) == ("z", None)
    every = three_classes(
        equal=[["1[c1]", "1[c2]", "1[c3]"], ["x[c1]", "x[c2]", "x[c3]"]],
        fixed={"z[c1]": 0.0, "z[c2]": 0.0, "z[c3]": 0.0},
    )
    assert labelling(every) == (None, None)


def test_constraints_that_single_out_a_class_label_the_classes():
    assert labelling(three_classes(fixed={"x[c2]": 0.0})) == (None, None)
    assert labelling(three_classes(equal=[["x[c1]", "x[c2]"]])) == (None, None)
    assert labelling(three_classes(fixed={"C#1 ~ x": 0.0})) == (None, None)
    assert labelling(three_classes(equal=[["x[c1]", "x[c2]", "x[c3]"]])) == ("1", None)
    assert labelling(three_classes()) == ("1", None)


def test_symmetry_swaps_only_class_labels():
    cons = constraints_from({"equal": [["x[c1,d1]", "x[c2,d1]"], ["x[c1,d2]", "x[c2,d2]"]]})
    assert symmetric(cons, ["c1", "c2"], ("C#",))
    groups = constraints_from({"equal": [["x[c1,d1]", "x[c1,d2]"]]})
    assert symmetric(groups, ["d1", "d2"], ("D#",))
    assert not symmetric(groups, ["c1", "c2"], ("C#",))


def test_level2_labels_follow_the_constraints():
    spec = bm.load_spec(MODELS / "hsb_C.toml", classes=2, between_classes=2)
    assert labelling(spec) == (spec.order_classes_by, spec.between_order_by)
    name = f"{spec.between_order_by}[c1,d2]"
    fixed = dataclasses.replace(spec, constraints=Constraints(fixed=((name, 50.0),)))
    assert labelling(fixed) == (None, None)
