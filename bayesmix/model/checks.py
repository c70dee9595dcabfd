"""Checks of a model specification: of the values given to build one, and of a built Spec.

Every check raises :class:`~bayesmix.errors.SpecError` with a message that names
the setting and says how to fix it. :func:`check_spec` runs when a
:class:`~bayesmix.model.spec.Spec` is created; the others check the arguments of
:func:`~bayesmix.model.spec.make_spec` and the tables of a model file before a
Spec exists.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from bayesmix.errors import SpecError, SpecWarning
from bayesmix.model.formula import INTERCEPT

if TYPE_CHECKING:
    from bayesmix.model.spec import Spec

MEMBERSHIP_RANDOM = ("none", "independent", "factor")
"""The kinds of school random intercepts of the membership logits."""

RESIDUAL_CHOICES = ("common", "class")
"""The residual variance settings."""

COVARIANCE_CHOICES = ("unstructured", "diagonal")
"""The covariance structures of the school residuals."""


def check_spec(spec: Spec) -> None:
    """Refuse a specification whose settings do not make one model.

    The checks run in a fixed order, so that of several problems the same one
    is always named.

    Parameters
    ----------
    spec : Spec
        The specification, just built.

    Raises
    ------
    SpecError
        Naming the first problem found and its fix.
    """
    _check_class_count(spec)
    _check_choices(spec)
    _check_terms_known(spec)
    _check_membership_random(spec)
    _check_cluster_given(spec)
    _check_names_once(spec)
    if INTERCEPT in spec.residual_covariates:
        raise SpecError(
            "residual_covariates names '1', but the log-linear residual variance always "
            'has an intercept; list only covariates, e.g. ["x"].'
        )
    for label, text in (("name", spec.name), ("description", spec.description)):
        if not isinstance(text, str):
            raise SpecError(f"{label} must be text, got {text!r}.")
    _check_cluster_not_a_covariate(spec)
    _check_outcome_not_a_covariate(spec)
    if spec.residual_covariates and spec.residual_groups:
        raise SpecError(
            "use either residual_covariates (model 1b) or residual_groups (model 1c), not both."
        )
    check_fixed_effects(spec.class_varying, spec.fixed_names, "class_varying")
    if spec.membership and spec.membership[0] != INTERCEPT:
        raise SpecError("the membership regression must include an intercept.")
    _check_between(spec)
    _check_mixture(spec)


def _check_class_count(spec: Spec) -> None:
    if not isinstance(spec.classes, int) or isinstance(spec.classes, bool):
        raise SpecError(f"classes must be an integer >= 1, got {spec.classes!r}.")
    if spec.classes < 1:
        raise SpecError(
            f"classes must be at least 1, got {spec.classes}; use classes=1 for an "
            "ordinary (single-class) regression."
        )


def _check_choices(spec: Spec) -> None:
    if spec.residual_variance not in RESIDUAL_CHOICES:
        raise SpecError(
            f"residual_variance must be one of {RESIDUAL_CHOICES}, got {spec.residual_variance!r}."
        )
    if spec.covariance not in COVARIANCE_CHOICES:
        raise SpecError(f"covariance must be one of {COVARIANCE_CHOICES}, got {spec.covariance!r}.")


def _check_terms_known(spec: Spec) -> None:
    """Level-2 regressions and random effects belong to terms of the outcome formula."""
    for term, _ in spec.level2:
        if term not in spec.terms:
            raise SpecError(
                f"[level2] regresses {term!r}, which is not a term of the outcome "
                f"formula; its terms are {list(spec.terms)}."
            )
    bad_random = [t for t in spec.random if t not in spec.terms]
    if bad_random:
        raise SpecError(
            f"random names {bad_random}, which are not terms of the outcome formula; "
            f"its terms are {list(spec.terms)}."
        )


def _check_membership_random(spec: Spec) -> None:
    if spec.membership_random not in MEMBERSHIP_RANDOM:
        raise SpecError(
            f"membership random must be one of {MEMBERSHIP_RANDOM}, got {spec.membership_random!r}."
        )
    if spec.membership_random != "none" and spec.classes < 2:
        raise SpecError("membership random intercepts need at least 2 classes.")


def _check_cluster_given(spec: Spec) -> None:
    """Settings that act per school need the column that names the schools."""
    if spec.cluster is not None:
        return
    needs = [
        f"{label} {value!r}"
        for label, value in (
            ("random", list(spec.random)),
            ("level2", dict(spec.level2)),
            ("residual_groups", spec.residual_groups),
            ("membership random", spec.membership_random),
        )
        if value and value != "none"
    ]
    if needs:
        raise SpecError(
            f"random effects, level-2 regressions and residual groups need a cluster "
            f'column ({", ".join(needs)}): set cluster = "school" (or your level-2 '
            "identifier)."
        )


def _check_names_once(spec: Spec) -> None:
    for label, names in (
        ("random", spec.random),
        ("class_varying", spec.class_varying),
        ("residual_covariates", spec.residual_covariates),
        ("centre", spec.centre),
        ("between varying", spec.between_varying),
    ):
        twice = sorted({t for t in names if names.count(t) > 1})
        if twice:
            raise SpecError(
                f"{label} names {', '.join(map(repr, twice))} more than once; list each term once."
            )


def _check_cluster_not_a_covariate(spec: Spec) -> None:
    """The cluster column labels schools; as a variable it would be read as numbers."""
    c = spec.cluster
    if c is None:
        return
    uses = (
        ("the outcome", (spec.outcome,)),
        ("a term of the outcome formula", spec.terms),
        ("a term of the membership formula", spec.membership),
        ("a [level2] covariate", spec.level2_covariates),
        ("a residual_covariates term", spec.residual_covariates),
        ("the residual_groups column", (spec.residual_groups or "",)),
        ("a term of the [between] formula", spec.between_membership),
    )
    for where, terms in uses:
        if any(c in term.split(":") for term in terms):
            raise SpecError(
                f"cluster column {c!r} identifies the clusters (schools) and cannot also "
                f"be {where}; remove it from there, or, if the column also holds a numeric "
                f"school-level variable, use a copy of it under another name "
                f'(e.g. data["{c}_value"] = data["{c}"]).'
            )


def _check_outcome_not_a_covariate(spec: Spec) -> None:
    """The outcome explains nothing in its own model (the outcome formula is checked
    where it is parsed)."""
    uses = (
        ("the membership formula", spec.membership),
        ("a [level2] covariate", spec.level2_covariates),
        ("residual_covariates", spec.residual_covariates),
        ("residual_groups", (spec.residual_groups or "",)),
        ("the [between] formula", spec.between_membership),
    )
    for where, terms in uses:
        if any(spec.outcome in term.split(":") for term in terms):
            raise SpecError(
                f"outcome {spec.outcome!r} also appears in {where}; the outcome cannot "
                f"explain itself: remove {spec.outcome!r} there."
            )


def _check_between(spec: Spec) -> None:
    L = spec.between_classes
    if not isinstance(L, int) or isinstance(L, bool) or L < 1:
        raise SpecError(f"between classes must be an integer >= 1, got {L!r}.")
    if L == 1:
        return
    if spec.cluster is None:
        raise SpecError('level-2 latent classes need a cluster column: set cluster = "school".')
    if not spec.between_varying:
        raise SpecError(
            f"{L} level-2 classes need at least one outcome coefficient that varies "
            f"across them; set [between] varying to some of {list(spec.fixed_names)}."
        )
    check_fixed_effects(spec.between_varying, spec.fixed_names, "[between] varying")
    order = spec.between_order_by
    if order not in spec.between_varying:
        raise SpecError(
            f"level-2 classes are labelled by decreasing {order!r}, which must vary "
            f"across them; add it to [between] varying {list(spec.between_varying)}."
        )
    if spec.between_membership[:1] != (INTERCEPT,):
        raise SpecError("the level-2 class regression must include an intercept.")


def _check_mixture(spec: Spec) -> None:
    """A mixture needs something that differs across classes, and a label for them."""
    if spec.classes == 1:
        return
    if not spec.class_varying:
        raise SpecError(
            f"a {spec.classes}-class mixture needs at least one class-varying "
            f"outcome coefficient; set class_varying to some of "
            f"{list(spec.fixed_names)}."
        )
    if spec.order_classes_by not in spec.class_varying:
        raise SpecError(
            f"order_classes_by={spec.order_classes_by!r} must be one of the "
            f"class-varying effects {list(spec.class_varying)}."
        )


def check_fixed_effects(names: tuple[str, ...], fixed: tuple[str, ...], setting: str) -> None:
    """Refuse names in ``setting`` that are not fixed effects of the model, listing those.

    Parameters
    ----------
    names : tuple of str
        The names given to the setting.
    fixed : tuple of str
        The model's fixed effects.
    setting : str
        The setting's name, as the user wrote it.
    """
    unknown = [t for t in names if t not in fixed]
    if unknown:
        raise SpecError(
            f"{setting} names {unknown}, which are not fixed effects of the model; "
            f"they are {list(fixed)}."
        )


def warn_membership_random_dropped(value: Any, where: str, stacklevel: int) -> None:
    """Warn that a one-class model drops its school random membership intercepts.

    Parameters
    ----------
    value : Any
        The membership random setting given.
    where : str
        The model or file, for the message.
    stacklevel : int
        Passed to :func:`warnings.warn` (1 is this function).
    """
    if value not in MEMBERSHIP_RANDOM:
        raise SpecError(
            f"{where}: membership random must be one of {MEMBERSHIP_RANDOM}, got {value!r}."
        )
    warnings.warn(
        f"{where}: membership random = {value!r} is dropped: the school random intercepts "
        "belong to the membership logits, and a model with one class has no membership "
        "logits. Fit classes >= 2 (e.g. --classes 2) to keep them, or remove random from "
        "[membership] (membership_random='none') to silence this warning.",
        SpecWarning,
        stacklevel=stacklevel,
    )


def check_class_overrides(classes: Any, between_classes: Any) -> None:
    """Refuse numbers of classes, given to override a model file's, that are no counts.

    Parameters
    ----------
    classes, between_classes : Any
        The numbers of level-1 and level-2 classes given, or None for the file's.
    """
    if classes is not None and (
        isinstance(classes, bool) or not isinstance(classes, int) or classes < 1
    ):
        raise SpecError(f"classes must be an integer >= 1, got {classes!r}.")
    if between_classes is not None and (
        isinstance(between_classes, bool)
        or not isinstance(between_classes, int)
        or between_classes < 1
    ):
        raise SpecError(f"between classes must be an integer >= 1, got {between_classes!r}.")


_INTEGERS = ("classes", "between_classes")
_OPTIONAL_TEXT = (
    "membership", "order_classes_by", "cluster", "residual_groups", "between_membership"
)  # fmt: skip
_TEXT_OR_NAMES = (
    "class_varying", "random", "residual_covariates", "centre", "between_varying"
)  # fmt: skip


def _is_names(value: Any) -> bool:
    return (
        isinstance(value, Iterable)
        and not isinstance(value, Mapping | bytes)
        and all(isinstance(v, str) for v in value)
    )


def check_argument_types(**values: Any) -> None:
    """Refuse values of the wrong type (as a model file can hold) with the setting's name.

    Parameters
    ----------
    **values : Any
        The arguments of :func:`~bayesmix.model.spec.make_spec` that a model
        file can set to a value of the wrong type, by name.
    """
    for key in _INTEGERS:
        v = values[key]
        if isinstance(v, bool) or not isinstance(v, int):
            raise SpecError(f"{key} must be an integer >= 1, got {v!r}.")
    for key in _OPTIONAL_TEXT:
        v = values[key]
        if v is not None and not isinstance(v, str):
            raise SpecError(f'{key} must be text such as "x + w" or a column name, got {v!r}.')
    for key in _TEXT_OR_NAMES:
        v = values[key]
        if v is not None and not isinstance(v, str) and not _is_names(v):
            raise SpecError(f'{key} must be a list of names such as ["1", "x"] or text, got {v!r}.')
    level2 = values["level2"]
    if level2 is None:
        return
    if not isinstance(level2, Mapping):
        raise SpecError(f'level2 must map terms to covariates, e.g. {{x = "w"}}, got {level2!r}.')
    for term, covs in level2.items():
        if not isinstance(covs, str) and not _is_names(covs):
            raise SpecError(
                f'[level2] {term}: expected covariates such as "w1 + w2" or a list of '
                f"names, got {covs!r}."
            )
