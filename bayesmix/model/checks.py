"""Checks of the values given to build a model specification, before a Spec exists.

Every check raises :class:`~bayesmix.errors.SpecError` with a message that names
the setting and says how to fix it. :func:`check_spec` runs when a
:class:`~bayesmix.model.spec.Spec` is created; the others check the arguments of
:func:`~bayesmix.model.build.make_spec` and the tables of a model file before a
Spec exists.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable, Mapping
from typing import Any

from bayesmix.errors import SpecError, SpecWarning
from bayesmix.model.formula import term_parts

MEMBERSHIP_RANDOM = ("none", "independent", "factor")
"""The kinds of school random intercepts of the membership logits."""

RESIDUAL_CHOICES = ("common", "class")
"""The residual variance settings."""

COVARIANCE_CHOICES = ("unstructured", "diagonal")
"""The covariance structures of the school residuals."""


def names_term(name: str, terms: tuple[str, ...]) -> bool:
    """Whether ``name`` is one of ``terms``, or a column of one of them.

    A categorical term's columns are known only with data; ``C(g)[T.b]`` and
    ``C(g)[T.b]:x`` are columns of the terms ``C(g)`` and ``C(g):x``.
    """
    if name in terms:
        return True
    parts = [re.sub(r"\[[^\[\]]*\]$", "", part) for part in term_parts(name)]
    return ":".join(parts) in terms


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
    unknown = [t for t in names if not names_term(t, fixed)]
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
        The arguments of :func:`~bayesmix.model.build.make_spec` that a model
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
