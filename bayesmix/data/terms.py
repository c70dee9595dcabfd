"""Formula terms on data: one term per design column, through formulaic.

A spec as written has terms such as ``C(sector)``, ``center(ses)`` or
``ses:meanses``. :func:`code_terms` evaluates each formula field on the data
with formulaic (categorical columns in treatment coding, reduced rank where
the field has an intercept or the term's margins, so the design stays full
rank) and returns the spec with one term per column, e.g. ``C(sector)`` becomes
``C(sector)[T.catholic]`` and ``C(sector)[T.private]``. Every factor of such a
term that is not a numeric column of the data (a level's indicator, a
transformed column) becomes a derived column, named as formulaic names it and
listed in :attr:`~bayesmix.model.spec.Spec.derived`; products stay products of
columns, so the standardisation of the fit centres and scales each factor.

A field made of names of numeric columns and their products is left as it is.
The coding is that of the data at hand: levels, means and standard deviations
come from the rows fitted (or, for :func:`bayesmix.simulate`, the covariates
given).
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from bayesmix.errors import DataError, SpecError
from bayesmix.model.formula import INTERCEPT, is_name, part_variables, term_parts
from bayesmix.model.spec import Spec, fixed_effect_name

_TRANSFORMS_HINT = (
    "available are C(...), center(...), scale(...), group_center(...), group_mean(...), "
    "I(...) and numpy as np (np.log(...))"
)


@dataclass(frozen=True, eq=False)
class Coded:
    """A spec with one term per design column, and the derived columns it names.

    Attributes
    ----------
    spec : Spec
        The spec whose terms are products of columns of the data or of ``columns``.
    columns : pandas.DataFrame
        The derived columns (floats), index that of the data; no columns when the
        spec needed no coding.
    """

    spec: Spec
    columns: pd.DataFrame


def _is_raw(part: str, frame: pd.DataFrame, derived: tuple[str, ...]) -> bool:
    """Whether a factor is a column used as it is: a numeric (or boolean) column, or derived."""
    if part in derived:
        return True
    if not is_name(part) or part not in frame.columns:
        return False
    series = frame[part]
    return pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series)


def needs_coding(terms: tuple[str, ...], frame: pd.DataFrame, derived: tuple[str, ...]) -> bool:
    """Whether a field holds a term formulaic must evaluate (categorical or transformed)."""
    return any(not _is_raw(p, frame, derived) for t in terms for p in term_parts(t))


def group_transforms(spec: Spec, frame: pd.DataFrame) -> dict[str, Callable[[Any], np.ndarray]]:
    """``group_center`` and ``group_mean`` over the clusters of ``frame``'s rows.

    ``group_center(x)`` is ``x`` minus its cluster's mean (Mplus
    ``CENTERING = GROUPMEAN``); ``group_mean(x)`` is that mean, a school-level
    covariate.
    """
    codes: np.ndarray | None = None
    if spec.cluster is not None:
        codes = pd.factorize(frame[spec.cluster], sort=True)[0]

    def means(values: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
        if codes is None:
            raise SpecError(
                f"{name}(...) centres by cluster, but the model has no cluster column; set "
                'cluster = "school" (your level-2 identifier), or use center(...).'
            )
        x = np.asarray(values, dtype=float)
        mean = np.bincount(codes, weights=x) / np.bincount(codes)
        return x, mean[codes]

    def group_center(values: Any) -> np.ndarray:
        x, mean = means(values, "group_center")
        return x - mean

    def group_mean(values: Any) -> np.ndarray:
        return means(values, "group_mean")[1]

    return {"group_center": group_center, "group_mean": group_mean}


def _matrix(
    text: str, frame: pd.DataFrame, context: Mapping[str, Any], where: str, term: str
) -> Any:
    """formulaic's model matrix of ``text``, its problems as errors naming ``term``."""
    # formulaic (with scipy.sparse) loads only for formulas that need coding
    from formulaic import Formula
    from formulaic.errors import DataMismatchWarning, FormulaicError

    with warnings.catch_warnings(record=True) as caught, np.errstate(all="ignore"):
        # a log of 0 is found below as a value that is not finite, and named
        warnings.simplefilter("always", DataMismatchWarning)
        try:
            matrix = Formula(text).get_model_matrix(frame, context=context, na_action="ignore")
        except SpecError:
            raise
        except (FormulaicError, ValueError, TypeError, NameError, KeyError) as err:
            message = str(err).replace("`", "'")
            raise DataError(
                f"{where}: term {term!r} cannot be evaluated on the data ({message}); the "
                f"transforms {_TRANSFORMS_HINT}."
            ) from None
    for warning in caught:
        if issubclass(warning.category, DataMismatchWarning):
            raise DataError(
                f"{where}: term {term!r}: the data hold a level outside those given "
                f"({warning.message}); list every level in C(..., levels=[...]), or drop "
                "those rows."
            )
    # the others reach the user as they were raised
    for warning in caught:
        warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    return matrix


def _factor_values(
    terms: tuple[str, ...], frame: pd.DataFrame, context: Mapping[str, Any], where: str
) -> dict[str, np.ndarray]:
    """Every coding of every factor that is no numeric column: reduced and full rank."""
    out: dict[str, np.ndarray] = {}
    for term in terms:
        for part in term_parts(term):
            if _is_raw(part, frame, ()):
                continue
            for text in (f"1 + {part}", f"0 + {part}"):
                matrix = _matrix(text, frame, context, where, term)
                for name in matrix.columns:
                    if name != "Intercept":
                        out[str(name)] = matrix[name].to_numpy(dtype=float)
    return out


def _check_column(
    values: np.ndarray, name: str, term: str, frame: pd.DataFrame, where: str
) -> None:
    """Refuse a column with values that are not finite, or a level absent from the data."""
    bad = ~np.isfinite(values)
    if bad.any():
        row = int(np.argmax(bad))
        shown = ", ".join(
            f"{v} = {np.asarray(frame[v])[row].item()!r}"
            for p in term_parts(term)
            for v in part_variables(p)
            if v in frame.columns
        )
        raise DataError(
            f"{where}: term {term!r} is not finite ({values[row]}) in {int(bad.sum())} "
            f"row(s), e.g. row {frame.index[row]!r} ({shown}); a transform such as "
            "np.log needs values in its domain: shift the column (np.log(x + 1)) or drop "
            "those rows."
        )
    if not values.any() and "[" in name:
        raise DataError(
            f"{where}: column {name!r} of term {term!r} is 0 in every row: its level does not "
            "occur in the data; drop it from C(..., levels=[...]) or check the column."
        )


def code_field(
    terms: tuple[str, ...],
    frame: pd.DataFrame,
    context: Mapping[str, Any],
    where: str,
    derived: tuple[str, ...] = (),
) -> tuple[dict[str, tuple[str, ...]], dict[str, np.ndarray]]:
    """The columns of each term of one formula field, and the derived columns they use.

    Parameters
    ----------
    terms : tuple of str
        The field's terms; ``"1"`` (the intercept) sets reduced-rank coding.
    frame : DataFrame
        The data.
    context : mapping
        Names the formulas may use besides formulaic's (the cluster transforms).
    where : str
        The field, for messages.
    derived : tuple of str
        Columns derived already (kept as they are).

    Returns
    -------
    dict of str to tuple of str
        Each term's column names, in order (``"1"`` for the intercept).
    dict of str to ndarray
        The derived columns' values, by name.
    """
    if not needs_coding(terms, frame, derived):
        return {t: (t,) for t in terms}, {}
    body = [t for t in terms if t != INTERCEPT]
    text = " + ".join(["1" if INTERCEPT in terms else "0", *body])
    matrix = _matrix(text, frame, context, where, " + ".join(body))
    factors = _factor_values(tuple(body), frame, context, where)
    columns: dict[str, tuple[str, ...]] = {}
    values: dict[str, np.ndarray] = {}
    structure = {str(s.term): tuple(map(str, s.columns)) for s in matrix.model_spec.structure}
    for term in terms:
        names = structure.get(term, ())
        if term == INTERCEPT:
            columns[term] = (INTERCEPT,)
            continue
        if not names:
            raise DataError(
                f"{where}: term {term!r} gives no column on the data (a categorical column "
                "with a single level, or a term the others already span); drop it."
            )
        for name in names:
            column = matrix[name].to_numpy(dtype=float)
            _check_column(column, name, term, frame, where)
            product = np.ones(len(frame))
            for part in term_parts(name):
                if _is_raw(part, frame, derived):
                    product = product * frame[part].to_numpy(dtype=float)
                elif part in factors:
                    product = product * factors[part]
                    values[part] = factors[part]
                else:
                    product = np.full(len(frame), np.nan)
            if not np.allclose(product, column, rtol=1e-12, atol=0.0):
                raise SpecError(
                    f"{where}: column {name!r} of term {term!r} is not a product of single "
                    "columns; use treatment coding (C(x) or C(x, contr.treatment('level')))."
                )
        columns[term] = names
    return columns, values


def _expand(
    names: tuple[str, ...], mapping: Mapping[str, tuple[str, ...]], known: tuple[str, ...]
) -> tuple[str, ...]:
    """Names of terms or effects, each replaced by its columns; a column's name stays."""
    out: list[str] = []
    for name in names:
        for new in mapping.get(name, (name,) if name in known else ()):
            if new not in out:
                out.append(new)
        if name not in mapping and name not in known:
            raise SpecError(
                f"{name!r} is not a column of the model on these data; they are {list(known)}."
            )
    return tuple(out)


def code_terms(spec: Spec, frame: pd.DataFrame) -> Coded:
    """The spec with one term per design column on ``frame``, and its derived columns.

    Parameters
    ----------
    spec : Spec
        The model as written.
    frame : DataFrame
        The data (after missing values are handled).

    Returns
    -------
    Coded
    """
    derived = spec.derived
    level2 = spec.level2_map
    fields = {
        "outcome": spec.terms,
        "membership": spec.membership,
        "residual": (INTERCEPT, *spec.residual_covariates),
        "between": spec.between_membership,
        **{f"level2 {t}": (INTERCEPT, *covs) for t, covs in level2.items()},
    }
    if not any(needs_coding(terms, frame, derived) for terms in fields.values()):
        return Coded(spec=spec, columns=pd.DataFrame(index=frame.index))
    context = group_transforms(spec, frame)
    # only the model's columns: another column (simulate's class column C) would hide a
    # transform of that name from formulaic
    frame = frame[[c for c in spec.columns if c in frame.columns and c != spec.cluster]]
    labels = {"outcome": "outcome formula", "membership": "membership formula"}
    labels |= {"residual": "residual_covariates", "between": "[between] formula"}
    coded: dict[str, dict[str, tuple[str, ...]]] = {}
    values: dict[str, np.ndarray] = {}
    for key, terms in fields.items():
        where = labels.get(key, f"[level2] {key.removeprefix('level2 ')}")
        coded[key], found = code_field(terms, frame, context, where, derived)
        values.update(found)
    return Coded(
        spec=_coded_spec(spec, coded, tuple(values)),
        columns=pd.DataFrame(values, index=frame.index),
    )


def _flat(columns: Mapping[str, tuple[str, ...]], skip_intercept: bool = False) -> tuple[str, ...]:
    return tuple(c for cols in columns.values() for c in cols if not (skip_intercept and c == "1"))


def _coded_spec(
    spec: Spec, coded: Mapping[str, Mapping[str, tuple[str, ...]]], derived: tuple[str, ...]
) -> Spec:
    """``spec`` with every term, effect and setting naming the columns of its terms."""
    outcome = coded["outcome"]
    terms = _flat(outcome)
    level2: list[tuple[str, tuple[str, ...]]] = []
    effects: dict[str, tuple[str, ...]] = {}
    for term, covs in spec.level2_map.items():
        l2 = coded[f"level2 {term}"]
        w_columns = _flat({w: l2[w] for w in covs})
        for col in outcome[term]:
            level2.append((col, w_columns))
        for w in covs:
            effects[fixed_effect_name(term, w)] = tuple(
                fixed_effect_name(col, wc) for col in outcome[term] for wc in l2[w]
            )
    effects |= {t: cols for t, cols in outcome.items() if t not in effects}
    covariates = dict(level2)
    fixed = tuple(
        name
        for col in terms
        for name in (col, *(fixed_effect_name(col, w) for w in covariates.get(col, ())))
    )
    order = spec.order_classes_by
    if order is not None:
        ordered = _expand((order,), effects, fixed)
        if len(ordered) != 1:
            raise SpecError(
                f"order_classes_by={order!r} names a term of {len(ordered)} columns on these "
                f"data ({list(ordered)}); name one of them."
            )
        order = ordered[0]
    return dataclasses.replace(
        spec,
        terms=terms,
        level2=tuple(level2),
        random=_expand(spec.random, outcome, terms),
        class_varying=_expand(spec.class_varying, effects, fixed),
        order_classes_by=order,
        between_varying=_expand(spec.between_varying, effects, fixed),
        membership=_flat(coded["membership"]),
        residual_covariates=_flat(coded["residual"], skip_intercept=True),
        between_membership=_flat(coded["between"]),
        derived=tuple(dict.fromkeys((*spec.derived, *derived))),
    )
