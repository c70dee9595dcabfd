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
    # random = "factor"               # school random intercepts: "independent" or "factor"

    [between]                         # level-2 latent classes D (model C, eqs 26-32)
    classes = 2                       # L
    formula = "w"                     # multinomial logit of D on school covariates (eq 32)
    varying = ["1"]                   # fixed effects that vary across D (and C if class-varying)
"""

from __future__ import annotations

import dataclasses
import tomllib
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any, Literal

from bayesmix.errors import SpecError, SpecWarning
from bayesmix.model.formula import INTERCEPT, parse_formula

ResidualVariance = Literal["common", "class"]
Covariance = Literal["unstructured", "diagonal"]
MembershipRandom = Literal["none", "independent", "factor"]
_MEMBERSHIP_RANDOM = ("none", "independent", "factor")
_RESIDUAL_CHOICES = ("common", "class")
_COVARIANCE_CHOICES = ("unstructured", "diagonal")


def fixed_effect_name(term: str, covariate: str | None) -> str:
    """Name of a fixed effect: the term, or the cross-level effect ``term:w``.

    The level-2 regression of the intercept on ``w`` is named ``w``.
    """
    if covariate is None:
        return term
    return covariate if term == INTERCEPT else f"{term}:{covariate}"


@dataclass(frozen=True)
class Spec:
    """A (multilevel) regression mixture model.

    Attributes
    ----------
    outcome : str
        Name of the outcome column ``y``.
    terms : tuple of str
        Level-1 terms of the outcome regression; ``"1"`` is the intercept.
    classes : int
        Number of level-1 latent classes K (1 gives an ordinary regression).
    class_varying : tuple of str
        Fixed effects (see :attr:`fixed_names`) whose value differs across
        classes; the others are shared by all classes.
    residual_variance : {"common", "class"}
        Whether the residual variance theta is the same in every class or
        class-specific (theta_c). With ``residual_covariates`` (model 1b) or
        ``residual_groups`` (model 1c), "class" gives each class its own
        log-linear coefficients or group variances.
    membership : tuple of str
        Terms of the multinomial logistic regression of class membership
        (eq 2), intercept ``"1"`` first. The last class is the reference.
    order_classes_by : str or None
        Class-varying fixed effect that labels the classes: class 1 has the
        largest value. ``None`` when K = 1.
    cluster : str or None
        Column identifying the level-2 units (schools).
    level2 : tuple of (str, tuple of str)
        For each outcome term, the school covariates its coefficient is
        regressed on (eqs 11-12, 14-16); their effects are named ``term:w``
        (``w`` for the intercept).
    random : tuple of str
        Outcome terms whose coefficient has a school residual u (random
        intercept and slopes); terms not listed have residual variance 0.
    membership_random : {"none", "independent", "factor"}
        School random intercepts of the membership logits (eq 23): none, one
        per logit C#1..C#(K-1), or one factor f with a_1j = f_j and
        a_cj = lambda_c f_j (eqs 24-25). School covariates enter the
        membership formula directly, with class-specific coefficients.
    covariance : {"unstructured", "diagonal"}
        Covariance of all school residuals (outcome and membership).
    residual_covariates : tuple of str
        Level-1 terms of a log-linear model of the residual variance,
        ``log sigma2_ij = k0 + k' v_ij`` (model 1b).
    residual_groups : str or None
        Column (constant within schools) whose levels get separate residual
        variances (model 1c).
    centre : tuple of str
        Columns grand-mean centred (over all observations used) before fitting.
    between_classes : int
        Number of level-2 latent classes L (model C; 1 for none).
    between_membership : tuple of str
        Terms of the multinomial logit of the level-2 classes on school
        covariates (eq 32), intercept first.
    between_varying : tuple of str
        Fixed effects that vary across the level-2 classes.
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
    cluster: str | None = None
    level2: tuple[tuple[str, tuple[str, ...]], ...] = ()
    random: tuple[str, ...] = ()
    membership_random: MembershipRandom = "none"
    covariance: Covariance = "unstructured"
    residual_covariates: tuple[str, ...] = ()
    residual_groups: str | None = None
    centre: tuple[str, ...] = ()
    between_classes: int = 1
    between_membership: tuple[str, ...] = (INTERCEPT,)
    between_varying: tuple[str, ...] = ()
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
        if self.covariance not in _COVARIANCE_CHOICES:
            raise SpecError(
                f"covariance must be one of {_COVARIANCE_CHOICES}, got {self.covariance!r}."
            )
        for term, _ in self.level2:
            if term not in self.terms:
                raise SpecError(
                    f"[level2] regresses {term!r}, which is not a term of the outcome "
                    f"formula; its terms are {list(self.terms)}."
                )
        bad_random = [t for t in self.random if t not in self.terms]
        if bad_random:
            raise SpecError(
                f"random names {bad_random}, which are not terms of the outcome formula; "
                f"its terms are {list(self.terms)}."
            )
        if self.membership_random not in _MEMBERSHIP_RANDOM:
            raise SpecError(
                f"membership random must be one of {_MEMBERSHIP_RANDOM}, "
                f"got {self.membership_random!r}."
            )
        if self.membership_random != "none" and self.classes < 2:
            raise SpecError("membership random intercepts need at least 2 classes.")
        if self.cluster is None:
            needs = [
                f"{label} {value!r}"
                for label, value in (
                    ("random", list(self.random)),
                    ("level2", dict(self.level2)),
                    ("residual_groups", self.residual_groups),
                    ("membership random", self.membership_random),
                )
                if value and value != "none"
            ]
            if needs:
                raise SpecError(
                    f"random effects, level-2 regressions and residual groups need a cluster "
                    f'column ({", ".join(needs)}): set cluster = "school" (or your level-2 '
                    "identifier)."
                )
        for label, names in (
            ("random", self.random),
            ("class_varying", self.class_varying),
            ("residual_covariates", self.residual_covariates),
            ("centre", self.centre),
            ("between varying", self.between_varying),
        ):
            twice = sorted({t for t in names if names.count(t) > 1})
            if twice:
                raise SpecError(
                    f"{label} names {', '.join(map(repr, twice))} more than once; list each "
                    "term once."
                )
        if INTERCEPT in self.residual_covariates:
            raise SpecError(
                "residual_covariates names '1', but the log-linear residual variance always "
                'has an intercept; list only covariates, e.g. ["x"].'
            )
        for label, text in (("name", self.name), ("description", self.description)):
            if not isinstance(text, str):
                raise SpecError(f"{label} must be text, got {text!r}.")
        self._check_cluster_not_a_covariate()
        self._check_outcome_not_a_covariate()
        if self.residual_covariates and self.residual_groups:
            raise SpecError(
                "use either residual_covariates (model 1b) or residual_groups (model 1c), not both."
            )
        unknown = [t for t in self.class_varying if t not in self.fixed_names]
        if unknown:
            raise SpecError(
                f"class_varying names {unknown}, which are not fixed effects of the model; "
                f"they are {list(self.fixed_names)}."
            )
        if self.membership and self.membership[0] != INTERCEPT:
            raise SpecError("the membership regression must include an intercept.")
        self._check_between()
        if self.classes > 1:
            if not self.class_varying:
                raise SpecError(
                    f"a {self.classes}-class mixture needs at least one class-varying "
                    f"outcome coefficient; set class_varying to some of "
                    f"{list(self.fixed_names)}."
                )
            if self.order_classes_by not in self.class_varying:
                raise SpecError(
                    f"order_classes_by={self.order_classes_by!r} must be one of the "
                    f"class-varying effects {list(self.class_varying)}."
                )

    def _check_cluster_not_a_covariate(self) -> None:
        """The cluster column labels schools; as a variable it would be read as numbers."""
        c = self.cluster
        if c is None:
            return
        uses = (
            ("the outcome", (self.outcome,)),
            ("a term of the outcome formula", self.terms),
            ("a term of the membership formula", self.membership),
            ("a [level2] covariate", self.level2_covariates),
            ("a residual_covariates term", self.residual_covariates),
            ("the residual_groups column", (self.residual_groups or "",)),
            ("a term of the [between] formula", self.between_membership),
        )
        for where, terms in uses:
            if any(c in term.split(":") for term in terms):
                raise SpecError(
                    f"cluster column {c!r} identifies the clusters (schools) and cannot also "
                    f"be {where}; remove it from there, or, if the column also holds a numeric "
                    f"school-level variable, use a copy of it under another name "
                    f'(e.g. data["{c}_value"] = data["{c}"]).'
                )

    def _check_outcome_not_a_covariate(self) -> None:
        """The outcome explains nothing in its own model (the outcome formula is checked
        where it is parsed)."""
        uses = (
            ("the membership formula", self.membership),
            ("a [level2] covariate", self.level2_covariates),
            ("residual_covariates", self.residual_covariates),
            ("residual_groups", (self.residual_groups or "",)),
            ("the [between] formula", self.between_membership),
        )
        for where, terms in uses:
            if any(self.outcome in term.split(":") for term in terms):
                raise SpecError(
                    f"outcome {self.outcome!r} also appears in {where}; the outcome cannot "
                    f"explain itself: remove {self.outcome!r} there."
                )

    def _check_between(self) -> None:
        L = self.between_classes
        if not isinstance(L, int) or isinstance(L, bool) or L < 1:
            raise SpecError(f"between classes must be an integer >= 1, got {L!r}.")
        if L == 1:
            return
        if self.cluster is None:
            raise SpecError('level-2 latent classes need a cluster column: set cluster = "school".')
        if not self.between_varying:
            raise SpecError(
                f"{L} level-2 classes need at least one outcome coefficient that varies "
                f"across them; set [between] varying to some of {list(self.fixed_names)}."
            )
        unknown = [t for t in self.between_varying if t not in self.fixed_names]
        if unknown:
            raise SpecError(
                f"[between] varying names {unknown}, which are not fixed effects of the "
                f"model; they are {list(self.fixed_names)}."
            )
        order = self.between_order_by
        if order not in self.between_varying:
            raise SpecError(
                f"level-2 classes are labelled by decreasing {order!r}, which must vary "
                f"across them; add it to [between] varying {list(self.between_varying)}."
            )
        if self.between_membership[:1] != (INTERCEPT,):
            raise SpecError("the level-2 class regression must include an intercept.")

    @property
    def between_order_by(self) -> str | None:
        """Effect labelling the level-2 classes (decreasing, in level-1 class 1)."""
        if self.between_classes == 1:
            return None
        if self.order_classes_by in self.between_varying:
            return self.order_classes_by
        return _default_order(self.between_varying)

    @property
    def n_classes(self) -> int:
        """Number of level-1 latent classes K."""
        return self.classes

    @property
    def random_effects(self) -> tuple[str, ...]:
        """Names of all school residuals: outcome terms, then membership logits or ``f``."""
        if self.membership_random == "independent":
            member = tuple(f"C#{c + 1}" for c in range(self.classes - 1))
        elif self.membership_random == "factor":
            member = ("f",)
        else:
            member = ()
        return (*self.random, *member)

    @property
    def level2_map(self) -> dict[str, tuple[str, ...]]:
        """School covariates of each outcome term's coefficient."""
        return dict(self.level2)

    @property
    def fixed_effects(self) -> tuple[tuple[str, str, str | None], ...]:
        """``(name, term, covariate)`` of every fixed effect, in layout order."""
        out: list[tuple[str, str, str | None]] = []
        l2 = self.level2_map
        for term in self.terms:
            out.append((term, term, None))
            out.extend((fixed_effect_name(term, w), term, w) for w in l2.get(term, ()))
        return tuple(out)

    @property
    def fixed_names(self) -> tuple[str, ...]:
        """Names of the fixed effects (outcome terms and their level-2 effects)."""
        return tuple(name for name, _, _ in self.fixed_effects)

    @property
    def common_terms(self) -> tuple[str, ...]:
        """Fixed effects shared by all classes."""
        return tuple(t for t in self.fixed_names if t not in self.class_varying)

    @property
    def level2_covariates(self) -> tuple[str, ...]:
        """School-level columns used by the level-2 regressions."""
        seen: list[str] = []
        for _, covs in self.level2:
            for w in covs:
                for name in w.split(":"):
                    if name not in seen:
                        seen.append(name)
        return tuple(seen)

    @property
    def columns(self) -> tuple[str, ...]:
        """Every data column the model uses, outcome first."""
        cols = [self.outcome]
        terms = (
            *self.terms,
            *self.membership,
            *self.residual_covariates,
            *self.level2_covariates,
            *self.between_membership,
        )
        for term in terms:
            if term == INTERCEPT:
                continue
            for name in term.split(":"):
                if name not in cols:
                    cols.append(name)
        for extra in (self.residual_groups, self.cluster):
            if extra is not None and extra not in cols:
                cols.append(extra)
        return tuple(cols)

    def with_between_classes(self, between: int) -> Spec:
        """Return a copy with ``between`` level-2 latent classes (1 removes them)."""
        if between == self.between_classes:
            return self
        if between == 1:
            return dataclasses.replace(
                self, between_classes=1, between_membership=(INTERCEPT,), between_varying=()
            )
        varying = self.between_varying or self.class_varying or tuple(self.fixed_names)
        return dataclasses.replace(self, between_classes=between, between_varying=varying)

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
                membership_random="none",
            )
        varying = self.class_varying or tuple(self.fixed_names)
        order = self.order_classes_by or _default_order(varying)
        return dataclasses.replace(
            self, classes=classes, class_varying=varying, order_classes_by=order
        )


def _warn_membership_random_dropped(value: Any, where: str, stacklevel: int) -> None:
    """Warn that a one-class model drops its school random membership intercepts."""
    if value not in _MEMBERSHIP_RANDOM:
        raise SpecError(
            f"{where}: membership random must be one of {_MEMBERSHIP_RANDOM}, got {value!r}."
        )
    warnings.warn(
        f"{where}: membership random = {value!r} is dropped: the school random intercepts "
        "belong to the membership logits, and a model with one class has no membership "
        "logits. Fit classes >= 2 (e.g. --classes 2) to keep them, or remove random from "
        "[membership] (membership_random='none') to silence this warning.",
        SpecWarning,
        stacklevel=stacklevel,
    )


def _default_order(varying: tuple[str, ...]) -> str | None:
    if not varying:
        return None
    return INTERCEPT if INTERCEPT in varying else varying[0]


def _rhs_terms(value: str | Iterable[str] | None, where: str) -> tuple[str, ...]:
    """Terms of a one-sided formula or list, without the intercept."""
    if value is None:
        return ()
    if isinstance(value, str):
        if not value.strip():
            return ()
        form = parse_formula(value, where=where)
        if form.lhs is not None:
            raise SpecError(f"{where}: expected a right-hand side such as 'w1 + w2'.")
        return tuple(t for t in form.terms if t != INTERCEPT)
    return tuple(value)


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


def _check_argument_types(**values: Any) -> None:
    """Refuse values of the wrong type (as a model file can hold) with the setting's name."""
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


def _check_fixed_effects(names: tuple[str, ...], fixed: tuple[str, ...], setting: str) -> None:
    """Refuse names in ``setting`` that are not fixed effects of the model, listing those."""
    unknown = [t for t in names if t not in fixed]
    if unknown:
        raise SpecError(
            f"{setting} names {unknown}, which are not fixed effects of the model; "
            f"they are {list(fixed)}."
        )


def make_spec(
    outcome: str,
    *,
    classes: int = 1,
    class_varying: str | Iterable[str] = "all",
    residual_variance: ResidualVariance = "common",
    membership: str | None = None,
    order_classes_by: str | None = None,
    cluster: str | None = None,
    level2: Mapping[str, str | Iterable[str]] | None = None,
    random: str | Iterable[str] | None = None,
    membership_random: MembershipRandom = "none",
    covariance: Covariance = "unstructured",
    residual_covariates: str | Iterable[str] | None = None,
    residual_groups: str | None = None,
    centre: str | Iterable[str] = (),
    between_classes: int = 1,
    between_membership: str | None = None,
    between_varying: str | Iterable[str] = "class_varying",
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
        Fixed effects whose values vary across classes (ignored when K = 1).
    residual_variance : {"common", "class"}
        Class-invariant or class-specific residual variance.
    membership : str, optional
        Membership formula such as ``"x"`` or ``"C ~ x"``; intercept only
        when omitted.
    order_classes_by : str, optional
        Class-varying effect that labels the classes in decreasing order;
        defaults to the intercept when it varies, else the first varying one.
    cluster : str, optional
        Column of level-2 unit identifiers.
    level2 : mapping, optional
        ``{term: "w1 + w2"}``: school covariates of each term's coefficient
        (``"1"`` for the intercept).
    random : str or iterable of str, optional
        Terms with a school residual, e.g. ``["1", "x"]`` or ``"1 + x"``.
    membership_random : {"none", "independent", "factor"}
        School random intercepts of the membership logits (mixtures only:
        with ``classes=1`` they are dropped with a
        :class:`~bayesmix.errors.SpecWarning`).
    covariance : {"unstructured", "diagonal"}
        Covariance of the school residuals.
    residual_covariates : str or iterable, optional
        Log-linear residual variance on these level-1 terms (model 1b).
    residual_groups : str, optional
        Separate residual variance per level of this school column (model 1c).
    centre : str or iterable of str
        Columns to grand-mean centre, e.g. ``["ses"]`` or ``"ses + meanses"``.
    between_classes : int
        Number of level-2 latent classes L (model C); 1 for none.
    between_membership : str, optional
        School covariates of the multinomial logit of the level-2 classes
        (eq 32), e.g. ``"pracad + catholic"``; intercept only when omitted.
    between_varying : "class_varying", "all" or iterable of str
        Fixed effects whose values vary across the level-2 classes (those
        that are also class-varying vary over both); by default the
        class-varying ones.
    name, description : str
        Labels for tables.

    Returns
    -------
    Spec
    """
    _check_argument_types(
        classes=classes,
        between_classes=between_classes,
        class_varying=class_varying,
        membership=membership,
        order_classes_by=order_classes_by,
        cluster=cluster,
        level2=level2,
        random=random,
        residual_covariates=residual_covariates,
        residual_groups=residual_groups,
        centre=centre,
        between_membership=between_membership,
        between_varying=between_varying,
    )
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
    l2 = tuple(
        (str(term), _rhs_terms(covs, f"[level2] {term}")) for term, covs in (level2 or {}).items()
    )
    if isinstance(random, str):
        rand = parse_formula(random, where="random terms").terms
    else:
        rand = tuple(random or ())
    probe = Spec(outcome=formula.lhs, terms=formula.terms, level2=l2, cluster=cluster)
    fixed = probe.fixed_names
    if isinstance(class_varying, str):
        varying = fixed if class_varying == "all" else (class_varying,)
    else:
        varying = tuple(class_varying)
    _check_fixed_effects(varying, fixed, "class_varying")
    # checked whatever the number of classes, as class_varying is: a one-class model drops
    # the setting, but a name that is no term of the model is a mistake in any model
    if order_classes_by is not None and order_classes_by not in fixed:
        raise SpecError(
            f"order_classes_by={order_classes_by!r} is not a fixed effect of the model; give "
            f"one of the class-varying effects among {list(fixed)}, or leave it out."
        )
    if classes == 1:
        varying = ()
        member_terms = (INTERCEPT,)
        if membership_random != "none":
            _warn_membership_random_dropped(membership_random, f"model {name!r}", stacklevel=3)
        membership_random = "none"
        if residual_variance == "class":
            residual_variance = "common"
    order = order_classes_by if order_classes_by is not None else _default_order(varying)
    # the [between] settings are read whatever the number of level-2 classes, as the
    # class settings are: a model with one level-2 class drops them, but a formula that does
    # not parse or a name that is no fixed effect is a mistake in any model
    between_terms: tuple[str, ...] = (INTERCEPT,)
    if between_membership is not None:
        between_terms = (INTERCEPT, *_rhs_terms(between_membership, "[between] formula"))
    if isinstance(between_varying, str):
        named = {"class_varying": tuple(varying) or fixed, "all": fixed}
        bvarying = named.get(between_varying, (between_varying,))
    else:
        bvarying = tuple(between_varying)
    _check_fixed_effects(bvarying, fixed, "[between] varying")
    if between_classes == 1:
        between_terms, bvarying = (INTERCEPT,), ()
    return Spec(
        outcome=formula.lhs,
        terms=formula.terms,
        classes=classes,
        class_varying=tuple(varying),
        residual_variance=residual_variance,
        membership=member_terms,
        order_classes_by=order if classes > 1 else None,
        cluster=cluster,
        level2=l2,
        random=rand,
        membership_random=membership_random,
        covariance=covariance,
        residual_covariates=_rhs_terms(residual_covariates, "residual_covariates"),
        residual_groups=residual_groups,
        centre=_rhs_terms(centre, "centre") if isinstance(centre, str) else tuple(centre),
        between_classes=between_classes,
        between_membership=between_terms,
        between_varying=bvarying,
        name=name,
        description=description,
    )


_TOP_KEYS = {
    "name",
    "description",
    "classes",
    "cluster",
    "centre",
    "outcome",
    "membership",
    "level2",
    "random",
    "between",
}
_OUTCOME_KEYS = {
    "formula",
    "class_varying",
    "residual_variance",
    "order_classes_by",
    "residual_covariates",
    "residual_groups",
}
_MEMBERSHIP_KEYS = {"formula", "random"}
_RANDOM_KEYS = {"terms", "covariance"}
_BETWEEN_KEYS = {"classes", "formula", "varying"}


def _check_keys(table: Mapping[str, Any], valid: set[str], where: str) -> None:
    unknown = sorted(set(table) - valid)
    if unknown:
        raise SpecError(f"{where}: unknown key(s) {unknown}; valid keys are {sorted(valid)}.")


def _table(doc: Mapping[str, Any], key: str, source: str) -> Mapping[str, Any]:
    value = doc.get(key, {})
    if not isinstance(value, Mapping):
        raise SpecError(f"{source}: [{key}] must be a table.")
    return value


def spec_from_dict(
    doc: Mapping[str, Any],
    *,
    source: str = "spec",
    classes: int | None = None,
    between_classes: int | None = None,
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
    between_classes : int, optional
        Number of level-2 classes overriding ``[between] classes``.

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
    membership = _table(doc, "membership", source)
    _check_keys(membership, _MEMBERSHIP_KEYS, f"{source} [membership]")
    random = _table(doc, "random", source)
    _check_keys(random, _RANDOM_KEYS, f"{source} [random]")
    between = _table(doc, "between", source)
    _check_keys(between, _BETWEEN_KEYS, f"{source} [between]")
    k = doc.get("classes", 1) if classes is None else classes
    membership_random = membership.get("random", "none")
    if k == 1 and not isinstance(k, bool) and membership_random != "none":
        _warn_membership_random_dropped(membership_random, source, stacklevel=4)
        membership_random = "none"
    try:
        return make_spec(
            outcome["formula"],
            classes=k,
            class_varying=outcome.get("class_varying", "all"),
            residual_variance=outcome.get("residual_variance", "common"),
            membership=membership.get("formula"),
            membership_random=membership_random,
            order_classes_by=outcome.get("order_classes_by"),
            cluster=doc.get("cluster"),
            level2=_table(doc, "level2", source),
            random=random.get("terms"),
            covariance=random.get("covariance", "unstructured"),
            residual_covariates=outcome.get("residual_covariates"),
            residual_groups=outcome.get("residual_groups"),
            centre=doc.get("centre", ()),
            between_classes=(
                between.get("classes", 1) if between_classes is None else between_classes
            ),
            between_membership=between.get("formula"),
            between_varying=between.get("varying", "class_varying"),
            name=doc.get("name", Path(source).stem),
            description=doc.get("description", ""),
        )
    except SpecError as err:
        raise SpecError(f"{source}: {err}") from None


def _bundled_hint(path: Path) -> str:
    """Where the package's copy of a missing model file is, when its name is a bundled one."""
    from bayesmix.model.catalogue import model_file, model_names

    stem = path.name.removesuffix(".toml")
    if path.suffix not in ("", ".toml") or stem not in model_names():
        return ""
    return f"; bayesmix ships {stem!r} as {str(model_file(stem))!r} (bayesmix.model_file({stem!r}))"


def load_spec(
    path: str | Path, *, classes: int | None = None, between_classes: int | None = None
) -> Spec:
    """Read a model specification from a TOML file.

    Parameters
    ----------
    path : str or Path
        The ``.toml`` file, e.g. ``models/fig1.toml``.
    classes : int, optional
        Override the number of latent classes in the file.
    between_classes : int, optional
        Override the number of level-2 latent classes (model C).

    Returns
    -------
    Spec

    Raises
    ------
    SpecError
        If the file is missing, is not valid TOML or describes an invalid model.
    """
    if not isinstance(path, str | PathLike):
        raise SpecError(
            f"load_spec needs the path of a model file such as 'models/fig1.toml', got "
            f"{type(path).__name__} {path!r}."
        )
    if str(path) == "":  # Path("") is the current folder
        raise SpecError(
            f"the model file path {str(path)!r} is empty; give a .toml file such as "
            "models/fig1.toml."
        )
    path = Path(path)
    if path.is_dir():
        raise SpecError(
            f"{str(path)!r} is a folder, not a model file; give a .toml file such as "
            "models/fig1.toml."
        )
    if not path.is_file():
        raise SpecError(f"model file {str(path)!r} does not exist{_bundled_hint(path)}.")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise SpecError(
            f"{path}: not a text TOML file (byte 0x{err.object[err.start]:02x} at offset "
            f"{err.start} is not UTF-8 text); give a model file such as models/fig1.toml, "
            "saved as plain text."
        ) from None
    except OSError as err:
        raise SpecError(
            f"cannot read model file {str(path)!r} ({err.strerror}); check its permissions."
        ) from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise SpecError(f"{path}: not valid TOML ({err}).") from None
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
    return spec_from_dict(doc, source=str(path), classes=classes, between_classes=between_classes)
