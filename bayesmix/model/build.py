"""Building a :class:`~bayesmix.model.spec.Spec`: in Python with :func:`make_spec`, from a
mapping with :func:`spec_from_dict`, or from a TOML model file with :func:`load_spec`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

from bayesmix.errors import SpecError
from bayesmix.model.checks import (
    check_argument_types,
    check_class_overrides,
    check_fixed_effects,
    names_term,
    warn_membership_random_dropped,
)
from bayesmix.model.constraints import Constraints, constraints_from
from bayesmix.model.files import model_table, model_tables, read_model_file
from bayesmix.model.formula import INTERCEPT, normalise_term, parse_formula
from bayesmix.model.spec import (
    Covariance,
    MembershipRandom,
    ResidualVariance,
    Spec,
    default_order,
)
from bayesmix.model.weights import Weights, weights_from


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
    return _names(value)


def _names(value: Iterable[str]) -> tuple[str, ...]:
    """Names of terms or effects as the formula parser writes them (``I(x*2)`` -> ``I(x * 2)``)."""
    return tuple(normalise_term(v) for v in value)


class _ClassSettings(NamedTuple):
    """The level-1 class settings of :func:`make_spec`, resolved for the number of classes."""

    varying: tuple[str, ...]
    order: str | None
    membership_random: MembershipRandom
    residual_variance: ResidualVariance


def _class_settings(
    classes: int,
    class_varying: str | Iterable[str],
    order_classes_by: str | None,
    fixed: tuple[str, ...],
    membership_random: MembershipRandom,
    residual_variance: ResidualVariance,
    name: str,
) -> _ClassSettings:
    """Resolve ``class_varying`` and the label order; a one-class model drops its mixture."""
    if isinstance(class_varying, str):
        varying = fixed if class_varying == "all" else (normalise_term(class_varying),)
    else:
        varying = _names(class_varying)
    check_fixed_effects(varying, fixed, "class_varying")
    # checked whatever the number of classes, as class_varying is: a one-class model drops
    # the setting, but a name that is no term of the model is a mistake in any model
    if order_classes_by is not None:
        order_classes_by = normalise_term(order_classes_by)
    if order_classes_by is not None and not names_term(order_classes_by, fixed):
        raise SpecError(
            f"order_classes_by={order_classes_by!r} is not a fixed effect of the model; give "
            f"one of the class-varying effects among {list(fixed)}, or leave it out."
        )
    if classes == 1:
        varying = ()
        if membership_random != "none":
            # 4: this function, make_spec, then make_spec's caller is named
            warn_membership_random_dropped(membership_random, f"model {name!r}", stacklevel=4)
        membership_random = "none"
        if residual_variance == "class":
            residual_variance = "common"
    order = order_classes_by if order_classes_by is not None else default_order(varying)
    return _ClassSettings(varying, order, membership_random, residual_variance)


def _between_settings(
    between_classes: int,
    between_membership: str | None,
    between_varying: str | Iterable[str],
    varying: tuple[str, ...],
    fixed: tuple[str, ...],
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The level-2 class formula's terms and the effects varying across level-2 classes."""
    # the [between] settings are read whatever the number of level-2 classes, as the
    # class settings are: a model with one level-2 class drops them, but a formula that does
    # not parse or a name that is no fixed effect is a mistake in any model
    between_terms: tuple[str, ...] = (INTERCEPT,)
    if between_membership is not None:
        between_terms = (INTERCEPT, *_rhs_terms(between_membership, "[between] formula"))
    if isinstance(between_varying, str):
        named = {"class_varying": tuple(varying) or fixed, "all": fixed}
        bvarying = named.get(between_varying, (normalise_term(between_varying),))
    else:
        bvarying = _names(between_varying)
    check_fixed_effects(bvarying, fixed, "[between] varying")
    if between_classes == 1:
        return (INTERCEPT,), ()
    return between_terms, bvarying


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
    weights: str | Mapping[str, str] | Weights | None = None,
    constraints: Mapping[str, Any] | Constraints | None = None,
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
    weights : str, mapping or Weights, optional
        Sampling weights: the student-weight column, or a mapping with keys
        ``within``, ``between``, ``scaling`` and ``between_scaling`` (see
        :class:`~bayesmix.model.weights.Weights`).
    constraints : mapping or Constraints, optional
        Fixed values, equalities and starting values by parameter name: a
        mapping with keys ``fixed`` (``{"x[c2]": 0.0}``), ``equal``
        (``[["x[c1]", "x[c2]"]]``) and ``start``, or a
        :class:`~bayesmix.model.constraints.Constraints`.
    name, description : str
        Labels for tables.

    Returns
    -------
    Spec
    """
    check_argument_types(
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
        (normalise_term(str(term)), _rhs_terms(covs, f"[level2] {term}"))
        for term, covs in (level2 or {}).items()
    )
    if isinstance(random, str):
        rand = parse_formula(random, where="random terms").terms
    else:
        rand = _names(random or ())
    fixed = Spec(outcome=formula.lhs, terms=formula.terms, level2=l2, cluster=cluster).fixed_names
    mixture = _class_settings(
        classes, class_varying, order_classes_by, fixed, membership_random, residual_variance, name
    )
    between_terms, bvarying = _between_settings(
        between_classes, between_membership, between_varying, mixture.varying, fixed
    )
    return Spec(
        outcome=formula.lhs,
        terms=formula.terms,
        classes=classes,
        class_varying=mixture.varying,
        residual_variance=mixture.residual_variance,
        membership=member_terms if classes > 1 else (INTERCEPT,),
        order_classes_by=mixture.order if classes > 1 else None,
        cluster=cluster,
        level2=l2,
        random=rand,
        membership_random=mixture.membership_random,
        covariance=covariance,
        residual_covariates=_rhs_terms(residual_covariates, "residual_covariates"),
        residual_groups=residual_groups,
        centre=_rhs_terms(centre, "centre") if isinstance(centre, str) else tuple(centre),
        between_classes=between_classes,
        between_membership=between_terms,
        between_varying=bvarying,
        weights=weights_from(weights),
        constraints=constraints_from(constraints),
        name=name,
        description=description,
    )


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
    outcome, membership, random, between = model_tables(doc, source)
    k = doc.get("classes", 1) if classes is None else classes
    membership_random = membership.get("random", "none")
    if k == 1 and not isinstance(k, bool) and membership_random != "none":
        warn_membership_random_dropped(membership_random, source, stacklevel=4)
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
            level2=model_table(doc, "level2", source),
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
            weights=weights_from(model_table(doc, "weights", source) or None, "[weights]"),
            constraints=constraints_from(
                model_table(doc, "constraints", source) or None, "[constraints]"
            ),
            name=doc.get("name", Path(source).stem),
            description=doc.get("description", ""),
        )
    except SpecError as err:
        raise SpecError(f"{source}: {err}") from None


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
    doc = read_model_file(path)
    check_class_overrides(classes, between_classes)
    return spec_from_dict(
        doc, source=str(Path(path)), classes=classes, between_classes=between_classes
    )
