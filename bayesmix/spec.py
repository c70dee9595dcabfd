"""Model specifications: what is fitted, independent of data and estimator.

A :class:`Spec` is a frozen dataclass. It is built in Python with
:func:`make_spec` or read from a TOML file in ``models/`` with
:func:`load_spec`. The TOML layout is::

    name = "fig1"
    description = "Single-level regression mixture (paper eqs 1-2)"
    classes = 2                       # K, the number of level-1 latent classes

    [outcome]
    formula = "y ~ x"                 # outcome regression (eq 1)
    class_varying = "all"             # or a list of terms, e.g. ["1", "x"]
    residual_variance = "class"       # "common" (theta) or "class" (theta_c)
    order_classes_by = "1"            # classes are labelled by decreasing value of this term

    [membership]
    formula = "x"                     # multinomial logit of class membership (eq 2)
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from bayesmix.errors import SpecError
from bayesmix.formula import INTERCEPT, parse_formula

ResidualVariance = Literal["common", "class"]
_RESIDUAL_CHOICES = ("common", "class")


@dataclass(frozen=True)
class Spec:
    """A regression mixture model.

    Attributes
    ----------
    outcome : str
        Name of the outcome column ``y``.
    terms : tuple of str
        Terms of the outcome regression; ``"1"`` is the intercept.
    classes : int
        Number of level-1 latent classes K (1 gives an ordinary regression).
    class_varying : tuple of str
        Terms whose coefficient differs across classes (beta_c in eq 1); the
        others are shared by all classes.
    residual_variance : {"common", "class"}
        Whether the residual variance theta is the same in every class or
        class-specific (theta_c).
    membership : tuple of str
        Terms of the multinomial logistic regression of class membership
        (eq 2), intercept ``"1"`` first. The last class is the reference.
    order_classes_by : str or None
        Class-varying term whose coefficient labels the classes: class 1 has
        the largest value. ``None`` when K = 1.
    name : str
        Short model name used in tables.
    description : str
        Free text.
    """

    outcome: str
    terms: tuple[str, ...]
    classes: int = 1
    class_varying: tuple[str, ...] = ()
    residual_variance: ResidualVariance = "common"
    membership: tuple[str, ...] = (INTERCEPT,)
    order_classes_by: str | None = None
    name: str = "model"
    description: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.classes, int) or isinstance(self.classes, bool):
            raise SpecError(f"classes must be an integer >= 1, got {self.classes!r}.")
        if self.classes < 1:
            raise SpecError(
                f"classes must be at least 1, got {self.classes}; use classes=1 for an "
                "ordinary (single-class) regression."
            )
        if self.residual_variance not in _RESIDUAL_CHOICES:
            raise SpecError(
                f"residual_variance must be one of {_RESIDUAL_CHOICES}, "
                f"got {self.residual_variance!r}."
            )
        unknown = [t for t in self.class_varying if t not in self.terms]
        if unknown:
            raise SpecError(
                f"class_varying names {unknown}, which are not terms of the outcome "
                f"formula; its terms are {list(self.terms)}."
            )
        if self.membership and self.membership[0] != INTERCEPT:
            raise SpecError("the membership regression must include an intercept.")
        if self.classes > 1:
            if not self.class_varying:
                raise SpecError(
                    f"a {self.classes}-class mixture needs at least one class-varying "
                    f"outcome coefficient; set class_varying to some of {list(self.terms)}."
                )
            if self.order_classes_by not in self.class_varying:
                raise SpecError(
                    f"order_classes_by={self.order_classes_by!r} must be one of the "
                    f"class-varying terms {list(self.class_varying)}."
                )

    @property
    def n_classes(self) -> int:
        """Number of level-1 latent classes K."""
        return self.classes

    @property
    def common_terms(self) -> tuple[str, ...]:
        """Outcome terms whose coefficient is shared by all classes."""
        return tuple(t for t in self.terms if t not in self.class_varying)

    @property
    def columns(self) -> tuple[str, ...]:
        """Every data column the model uses, outcome first."""
        cols = [self.outcome]
        for term in (*self.terms, *self.membership):
            if term == INTERCEPT:
                continue
            for name in term.split(":"):
                if name not in cols:
                    cols.append(name)
        return tuple(cols)

    def with_classes(self, classes: int) -> Spec:
        """Return a copy with ``classes`` latent classes.

        With K = 1 the membership regression and class-varying terms are
        dropped, giving the ordinary regression nested in the mixture.
        """
        if classes == self.classes:
            return self
        if classes == 1:
            return dataclasses.replace(
                self,
                classes=1,
                class_varying=(),
                membership=(INTERCEPT,),
                order_classes_by=None,
                residual_variance="common",
            )
        varying = self.class_varying or tuple(self.terms)
        order = self.order_classes_by or _default_order(varying)
        return dataclasses.replace(
            self, classes=classes, class_varying=varying, order_classes_by=order
        )


def _default_order(varying: tuple[str, ...]) -> str | None:
    if not varying:
        return None
    return INTERCEPT if INTERCEPT in varying else varying[0]


def make_spec(
    outcome: str,
    *,
    classes: int = 1,
    class_varying: str | Iterable[str] = "all",
    residual_variance: ResidualVariance = "common",
    membership: str | None = None,
    order_classes_by: str | None = None,
    name: str = "model",
    description: str = "",
) -> Spec:
    """Build a :class:`Spec` from formulas.

    Parameters
    ----------
    outcome : str
        Outcome formula such as ``"y ~ x"``.
    classes : int
        Number of latent classes K.
    class_varying : "all" or iterable of str
        Terms whose coefficients vary across classes (ignored when K = 1).
    residual_variance : {"common", "class"}
        Class-invariant or class-specific residual variance.
    membership : str, optional
        Membership formula such as ``"x"`` or ``"C ~ x"``; intercept only
        when omitted.
    order_classes_by : str, optional
        Class-varying term that labels the classes in decreasing order;
        defaults to the intercept when it varies, else the first varying term.
    name, description : str
        Labels for tables.

    Returns
    -------
    Spec
    """
    formula = parse_formula(outcome, where="outcome formula")
    if formula.lhs is None:
        raise SpecError(f"the outcome formula {outcome!r} needs an outcome: write 'y ~ ...'.")
    member_terms: tuple[str, ...] = (INTERCEPT,)
    if membership is not None:
        mform = parse_formula(membership, where="membership formula")
        member_terms = (INTERCEPT, *(t for t in mform.terms if t != INTERCEPT))
    if formula.lhs in formula.variables:
        raise SpecError(
            f"outcome {formula.lhs!r} also appears on the right-hand side of {outcome!r}."
        )
    if isinstance(class_varying, str):
        varying = formula.terms if class_varying == "all" else (class_varying,)
    else:
        varying = tuple(class_varying)
    unknown = [t for t in varying if t not in formula.terms]
    if unknown:
        raise SpecError(
            f"class_varying names {unknown}, which are not terms of the outcome formula; "
            f"its terms are {list(formula.terms)}."
        )
    if classes == 1:
        varying = ()
        member_terms = (INTERCEPT,)
        if residual_variance == "class":
            residual_variance = "common"
    order = order_classes_by if order_classes_by is not None else _default_order(varying)
    return Spec(
        outcome=formula.lhs,
        terms=formula.terms,
        classes=classes,
        class_varying=tuple(varying),
        residual_variance=residual_variance,
        membership=member_terms,
        order_classes_by=order if classes > 1 else None,
        name=name,
        description=description,
    )


_TOP_KEYS = {"name", "description", "classes", "outcome", "membership"}
_OUTCOME_KEYS = {"formula", "class_varying", "residual_variance", "order_classes_by"}
_MEMBERSHIP_KEYS = {"formula"}


def _check_keys(table: Mapping[str, Any], valid: set[str], where: str) -> None:
    unknown = sorted(set(table) - valid)
    if unknown:
        raise SpecError(f"{where}: unknown key(s) {unknown}; valid keys are {sorted(valid)}.")


def spec_from_dict(
    doc: Mapping[str, Any], *, source: str = "spec", classes: int | None = None
) -> Spec:
    """Build a :class:`Spec` from the parsed contents of a TOML model file.

    Parameters
    ----------
    doc : mapping
        Parsed TOML document.
    source : str
        Where the document comes from, for error messages.
    classes : int, optional
        Number of classes overriding the document's ``classes``; the file's
        mixture settings (class-varying terms, membership...) apply to it.

    Returns
    -------
    Spec
    """
    _check_keys(doc, _TOP_KEYS, source)
    if "outcome" not in doc or not isinstance(doc["outcome"], Mapping):
        raise SpecError(f"{source}: needs an [outcome] table with a 'formula'.")
    outcome = doc["outcome"]
    _check_keys(outcome, _OUTCOME_KEYS, f"{source} [outcome]")
    if "formula" not in outcome:
        raise SpecError(f"{source} [outcome]: needs a 'formula' such as \"y ~ x\".")
    membership = doc.get("membership", {})
    if not isinstance(membership, Mapping):
        raise SpecError(f"{source}: [membership] must be a table with a 'formula'.")
    _check_keys(membership, _MEMBERSHIP_KEYS, f"{source} [membership]")
    try:
        return make_spec(
            outcome["formula"],
            classes=doc.get("classes", 1) if classes is None else classes,
            class_varying=outcome.get("class_varying", "all"),
            residual_variance=outcome.get("residual_variance", "common"),
            membership=membership.get("formula"),
            order_classes_by=outcome.get("order_classes_by"),
            name=str(doc.get("name", Path(source).stem)),
            description=str(doc.get("description", "")),
        )
    except SpecError as err:
        raise SpecError(f"{source}: {err}") from None


def load_spec(path: str | Path, *, classes: int | None = None) -> Spec:
    """Read a model specification from a TOML file.

    Parameters
    ----------
    path : str or Path
        The ``.toml`` file, e.g. ``models/fig1.toml``.
    classes : int, optional
        Override the number of latent classes in the file.

    Returns
    -------
    Spec

    Raises
    ------
    SpecError
        If the file is missing, is not valid TOML or describes an invalid model.
    """
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"model file {str(path)!r} does not exist.")
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as err:
        raise SpecError(f"{path}: not valid TOML ({err}).") from None
    if classes is not None and (
        isinstance(classes, bool) or not isinstance(classes, int) or classes < 1
    ):
        raise SpecError(f"classes must be an integer >= 1, got {classes!r}.")
    return spec_from_dict(doc, source=str(path), classes=classes)
