"""Model specifications: what is fitted, independent of data and estimator.

A :class:`Spec` is a frozen dataclass, checked when it is created. It is built in Python with
:func:`~bayesmix.model.build.make_spec` or read from a TOML file in ``models/`` with
:func:`~bayesmix.model.build.load_spec`. The TOML layout is::

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
import re
from dataclasses import dataclass
from typing import Literal

from bayesmix.errors import SpecError
from bayesmix.model.checks import (
    COVARIANCE_CHOICES,
    MEMBERSHIP_RANDOM,
    RESIDUAL_CHOICES,
    check_fixed_effects,
    names_term,
)
from bayesmix.model.constraints import Constraints
from bayesmix.model.formula import INTERCEPT, part_variables, term_parts
from bayesmix.model.weights import Weights, check_weights

ResidualVariance = Literal["common", "class"]
Covariance = Literal["unstructured", "diagonal"]
MembershipRandom = Literal["none", "independent", "factor"]


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
    derived : tuple of str
        Columns derived from formula terms on the data (a categorical level's
        indicator such as ``C(sector)[T.private]``, a transformed column such
        as ``center(ses)``): the terms of a spec coded on data
        (:func:`bayesmix.data.terms.code_terms`) name them as columns. Empty
        in a spec as written.
    between_classes : int
        Number of level-2 latent classes L (model C; 1 for none).
    between_membership : tuple of str
        Terms of the multinomial logit of the level-2 classes on school
        covariates (eq 32), intercept first.
    between_varying : tuple of str
        Fixed effects that vary across the level-2 classes.
    weights : Weights or None
        Sampling weights (:mod:`bayesmix.model.weights`): the student- and
        school-weight columns and their scalings. A weighted model is fitted by
        pseudo-maximum likelihood with robust standard errors.
    constraints : Constraints or None
        Fixed values, equalities and starting values of parameters
        (:mod:`bayesmix.model.constraints`), by parameter name.
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
    derived: tuple[str, ...] = ()
    between_classes: int = 1
    between_membership: tuple[str, ...] = (INTERCEPT,)
    between_varying: tuple[str, ...] = ()
    weights: Weights | None = None
    constraints: Constraints | None = None
    name: str = "model"
    description: str = ""

    def __post_init__(self) -> None:
        check_spec(self)

    @property
    def between_order_by(self) -> str | None:
        """Effect labelling the level-2 classes (decreasing, in level-1 class 1)."""
        if self.between_classes == 1:
            return None
        if self.order_classes_by in self.between_varying:
            return self.order_classes_by
        return default_order(self.between_varying)

    @property
    def integrates_schools(self) -> bool:
        """Whether the likelihood integrates over schools (random effects or level-2
        classes), so that student weights act inside each school's term."""
        # not from random_effects: a mistyped number of classes (1e11) would exhaust
        # memory listing one membership residual per class
        has_random = bool(self.random) or self.membership_random != "none"
        return self.cluster is not None and (has_random or self.between_classes > 1)

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

    def term_columns(self, term: str) -> tuple[str, ...]:
        """Data columns a term reads: its factors that are columns (derived ones
        included), and the columns named in the others' expressions."""
        out: list[str] = []
        for part in term_parts(term):
            for name in (part,) if part in self.derived else part_variables(part):
                if name not in out:
                    out.append(name)
        return tuple(out)

    @property
    def level2_covariates(self) -> tuple[str, ...]:
        """School-level columns used by the level-2 regressions."""
        seen: list[str] = []
        for _, covs in self.level2:
            for w in covs:
                for name in self.term_columns(w):
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
            *(w for _, covs in self.level2 for w in covs),
            *self.between_membership,
        )
        for term in terms:
            for name in self.term_columns(term):
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
        order = self.order_classes_by or default_order(varying)
        return dataclasses.replace(
            self, classes=classes, class_varying=varying, order_classes_by=order
        )


def default_order(varying: tuple[str, ...]) -> str | None:
    if not varying:
        return None
    return INTERCEPT if INTERCEPT in varying else varying[0]


# --- the checks a Spec runs when it is created ------------------------------------------------


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
    if spec.weights is not None and not isinstance(spec.weights, Weights):
        raise SpecError(
            f"weights must be a bayesmix.model.weights.Weights, got {spec.weights!r}; "
            "make_spec(weights=...) accepts a column name or a mapping."
        )
    if spec.constraints is not None and not isinstance(spec.constraints, Constraints):
        raise SpecError(
            f"constraints must be a bayesmix.Constraints, got {spec.constraints!r}; "
            "make_spec(constraints=...) accepts a mapping with keys fixed, equal and start."
        )
    if spec.weights is not None:
        check_weights(spec.weights, spec.cluster, spec.integrates_schools, spec.columns)


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
        if not names_term(term, spec.terms):
            raise SpecError(
                f"[level2] regresses {term!r}, which is not a term of the outcome "
                f"formula; its terms are {list(spec.terms)}."
            )
    bad_random = [t for t in spec.random if not names_term(t, spec.terms)]
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
    by_cluster = [
        t
        for t in (*spec.terms, *spec.membership, *spec.residual_covariates)
        if re.search(r"\bgroup_(center|mean)\(", t)
    ]
    needs = [
        f"{label} {value!r}"
        for label, value in (
            ("random", list(spec.random)),
            ("terms by cluster", by_cluster),
            ("level2", dict(spec.level2)),
            ("residual_groups", spec.residual_groups),
            ("membership random", spec.membership_random),
        )
        if value and value != "none"
    ]
    if needs:
        raise SpecError(
            f"random effects, level-2 regressions, residual groups and group_center(...) or "
            f"group_mean(...) terms need a cluster "
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
        if any(c in spec.term_columns(term) for term in terms):
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
        if any(spec.outcome in spec.term_columns(term) for term in terms):
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
