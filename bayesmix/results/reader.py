"""Reading the fields of a saved result, each checked and named when it is wrong.

A file whose fields cannot describe a fit (a string where a number belongs, a
missing field, arrays of the wrong length, parameter names that do not match
the model) is refused with a :class:`~bayesmix.results.persist.ResultFileError`
naming the field, whether or not its checksums were verified.
"""

from __future__ import annotations

import math
import types
import typing
from collections.abc import Sequence
from dataclasses import MISSING, fields, replace
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import pandas as pd

from bayesmix.errors import DataError, SpecError
from bayesmix.model.constraints import constraints_from
from bayesmix.model.params import Layout
from bayesmix.model.spec import Spec
from bayesmix.model.weights import weights_from
from bayesmix.results.persist import ResultFileError, decode
from bayesmix.results.rowless import ClassSummary, DesignSummary


def _tuples(value: Any) -> Any:
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


def show(value: Any) -> str:
    """A value as a message shows it: its repr, cut at 40 characters."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


class FieldReader:
    """Typed access to the fields of one saved result; each failure names its field."""

    def __init__(self, where: Path) -> None:
        self.where = where

    def fail(self, field: str, problem: str) -> NoReturn:
        raise ResultFileError(
            f"{self.where}: field {field} {problem}; the file was edited or damaged: save the "
            "fit again."
        )

    def get(self, obj: Any, key: str, field: str) -> Any:
        if not isinstance(obj, dict):
            self.fail(field, f"is {show(obj)}, not an object")
        if key not in obj:
            self.fail(f"{field}.{key}" if field else key, "is missing")
        return obj[key]

    def number(self, value: Any, field: str) -> float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, dict) and set(value) == {"float"}:
            try:
                out = float(value["float"])
            except (TypeError, ValueError):
                pass
            else:
                if not math.isfinite(out):
                    return out
        self.fail(field, f"is {show(value)}, not a number")

    def integer(
        self, value: Any, field: str, *, optional: bool = False, minimum: int | None = 0
    ) -> int | None:
        if optional and value is None:
            return None
        if not isinstance(value, int) or isinstance(value, bool):
            self.fail(field, f"is {show(value)}, not an integer")
        if minimum is not None and value < minimum:
            self.fail(field, f"is {value}, less than {minimum}")
        return value

    def boolean(self, value: Any, field: str) -> bool:
        if isinstance(value, bool):
            return value
        self.fail(field, f"is {show(value)}, not true or false")

    def text(self, value: Any, field: str, *, optional: bool = False) -> str | None:
        if optional and value is None:
            return None
        if isinstance(value, str):
            return value
        self.fail(field, f"is {show(value)}, not a string")

    def texts(self, value: Any, field: str) -> list[str]:
        if not isinstance(value, list):
            self.fail(field, f"is {show(value)}, not a list")
        return [self.text(v, f"{field}[{i}]") for i, v in enumerate(value)]  # type: ignore[misc]

    def mapping(self, value: Any, field: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            self.fail(field, f"is {show(value)}, not an object")
        return value

    def numbers(self, value: Any, field: str, shape: tuple[int | None, ...]) -> np.ndarray:
        """An array of numbers of the given shape (None: any length)."""
        try:
            arr = np.array(decode(value))
        except (TypeError, ValueError):
            arr = None
        if (
            arr is not None
            and arr.dtype.kind in "fiu"
            and arr.ndim == len(shape)
            and all(s is None or s == a for s, a in zip(shape, arr.shape, strict=True))
        ):
            return arr.astype(float)
        self._walk(value, field, shape)
        self.fail(field, "is not an array of numbers")  # unreachable: _walk names the entry

    def _walk(self, value: Any, field: str, shape: tuple[int | None, ...]) -> None:
        if not shape:
            self.number(value, field)
            return
        if not isinstance(value, list):
            self.fail(field, f"is {show(value)}, not a list")
        if shape[0] is not None and len(value) != shape[0]:
            self.fail(field, f"has {len(value)} entries where {shape[0]} are expected")
        for i, v in enumerate(value):
            self._walk(v, f"{field}[{i}]", shape[1:])


def _conforms(value: Any, hint: Any) -> bool:
    """Whether a JSON value fits a Spec field's type (lists standing for tuples)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is str:
        return isinstance(value, str)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is type(None):
        return value is None
    if origin is typing.Literal:
        return value in args
    if origin in (typing.Union, types.UnionType):
        return any(_conforms(value, a) for a in args)
    if origin is tuple:
        if not isinstance(value, list):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_conforms(v, args[0]) for v in value)
        return len(value) == len(args) and all(
            _conforms(v, a) for v, a in zip(value, args, strict=True)
        )
    return True


def read_spec(read: FieldReader, values: Any) -> Spec:
    """The saved model specification, each field checked against its type."""
    values = read.mapping(values, "spec")
    known = {f.name: f for f in fields(Spec)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ResultFileError(
            f"{read.where}: the saved model has fields {unknown} this bayesmix version does "
            "not know; load it with the version that saved it."
        )
    hints = typing.get_type_hints(Spec)
    for name, f in known.items():
        if name not in values:
            if f.default is MISSING and f.default_factory is MISSING:  # every saved spec has it
                read.fail(f"spec.{name}", "is missing")
            continue
        if not _conforms(values[name], hints[name]):
            read.fail(f"spec.{name}", f"is {show(values[name])}, not a valid value")
    try:
        settings = {k: _tuples(v) for k, v in values.items()}
        if settings.get("weights") is not None:
            settings["weights"] = weights_from(dict(values["weights"]), "spec.weights")
        if settings.get("constraints") is not None:
            settings["constraints"] = constraints_from(
                read.mapping(values["constraints"], "spec.constraints"), "spec.constraints"
            )
        return Spec(**settings)
    except SpecError as err:
        raise ResultFileError(
            f"{read.where}: field spec describes no valid model ({err}); the file was edited "
            "or damaged: save the fit again."
        ) from None


def read_design(read: FieldReader, payload: dict[str, Any], spec: Spec) -> Any:
    """The design rebuilt from the saved rows, or a :class:`DesignSummary` without rows."""
    from bayesmix.data.design import build_design

    data = read.mapping(read.get(payload, "data", ""), "data")
    n_dropped = read.integer(read.get(data, "n_dropped", "data"), "data.n_dropped")
    # format 1 always saved the rows and had no "included"
    if not read.boolean(data.get("included", True), "data.included"):
        n_obs = read.integer(read.get(data, "n_obs", "data"), "data.n_obs", minimum=1)
        n_clusters = read.integer(
            read.get(data, "n_clusters", "data"), "data.n_clusters", optional=True, minimum=1
        )
        if (n_clusters is None) != (spec.cluster is None):
            read.fail(
                "data.n_clusters", f"is {n_clusters!r} for a model with cluster {spec.cluster!r}"
            )
        levels = read.get(data, "group_levels", "data")
        if not isinstance(levels, list):
            read.fail("data.group_levels", f"is {show(levels)}, not a list")
        for i, v in enumerate(levels):
            read.number(v, f"data.group_levels[{i}]")
        return DesignSummary(
            spec=spec,
            layout=Layout(spec, tuple(levels)),
            n_obs=n_obs,  # type: ignore[arg-type]
            n_clusters=n_clusters,
            n_dropped=n_dropped,  # type: ignore[arg-type]
        )
    columns = read.texts(read.get(data, "columns", "data"), "data.columns")
    values = read.mapping(read.get(data, "values", "data"), "data.values")
    cols = {}
    for c in columns:
        column = read.get(values, c, "data.values")
        if not isinstance(column, list):
            read.fail(f"data.values.{c}", f"is {show(column)}, not a list")
        try:
            cols[c] = decode(column)
        except (TypeError, ValueError):
            read.fail(f"data.values.{c}", "holds a value that is not a number or a label")
    lengths = {len(v) for v in cols.values()}
    if len(lengths) > 1:
        read.fail("data.values", f"has columns of different lengths {sorted(lengths)}")
    frame = pd.DataFrame(cols, columns=columns)
    try:
        design = build_design(spec, frame)
    except (DataError, SpecError) as err:
        raise ResultFileError(
            f"{read.where}: field data does not fit the model in field spec ({err}); the file "
            "was edited or damaged: save the fit again."
        ) from None
    return replace(design, n_dropped=n_dropped)


def read_names(
    read: FieldReader, values: Any, field: str, expected_names: Sequence[str]
) -> tuple[str, ...]:
    """Saved parameter names, which must be those the model's layout gives the fit."""
    names = read.texts(values, field)
    expected = list(expected_names)
    if names == expected:
        return tuple(names)
    k = next(
        (i for i, (a, b) in enumerate(zip(names, expected, strict=False)) if a != b),
        min(len(names), len(expected)),
    )
    found = repr(names[k]) if k < len(names) else "nothing"
    wanted = repr(expected[k]) if k < len(expected) else "nothing"
    if len(names) == len(expected):
        detail = f"{found} where the model has {wanted}"
    else:
        detail = (
            f"it has {len(names)} parameters, the model has {len(expected)} (first "
            f"difference: {found} where the model has {wanted})"
        )
    read.fail(field, f"does not match the model in field spec: {detail}")


def read_probabilities(
    read: FieldReader, block: dict[str, Any], prefix: str, design: Any, level: int
) -> Any:
    """Class probabilities (level 1: observations; level 2: schools), or their summary."""
    spec = design.spec
    K = spec.classes if level == 1 else spec.between_classes
    rows = not isinstance(design, DesignSummary)
    key = ("class" if level == 1 else "between") + ("_probabilities" if rows else "_summary")
    value = read.get(block, key, prefix)
    field = f"{prefix}.{key}"
    if level == 2 and K == 1:
        if value is not None:
            read.fail(field, "is given for a model without level-2 classes")
        return None
    n = design.n_obs if level == 1 else design.n_clusters
    if rows:
        return read.numbers(value, field, (n, K))
    summary = read.mapping(value, field)
    count = read.integer(read.get(summary, "n", field), f"{field}.n")
    if count != n:
        read.fail(f"{field}.n", f"is {count}, not the {n} units of the fit")
    return ClassSummary(
        sums=read.numbers(read.get(summary, "sums", field), f"{field}.sums", (K,)),
        modal_counts=read.numbers(
            read.get(summary, "modal_counts", field), f"{field}.modal_counts", (K,)
        ).astype(int),
        entropy=read.number(read.get(summary, "entropy", field), f"{field}.entropy"),
        n=n,
    )


def read_timings(read: FieldReader, value: Any, field: str, required: tuple[str, ...] = ()) -> dict:
    """Seconds by step, with the ``required`` steps present."""
    timings = read.mapping(value, field)
    for key in required:
        read.get(timings, key, field)
    return {k: read.number(v, f"{field}.{k}") for k, v in timings.items()}


def read_priors(read: FieldReader, values: Any) -> dict[str, Any]:
    """The priors of a NUTS fit, each a valid :class:`~bayesmix.model.priors.Prior`."""
    from bayesmix.model.priors import Prior

    known = {f.name for f in fields(Prior)}
    out = {}
    for name, prior in read.mapping(values, "bayes.priors").items():
        field = f"bayes.priors.{name}"
        prior = read.mapping(prior, field)
        extra = sorted(set(prior) - known)
        if extra:
            read.fail(field, f"has unknown entries {extra}")
        family = read.text(read.get(prior, "family", field), f"{field}.family")
        numbers = {k: read.number(v, f"{field}.{k}") for k, v in prior.items() if k != "family"}
        try:
            out[name] = Prior(family=family, **numbers)  # type: ignore[arg-type]
        except SpecError as err:
            read.fail(field, f"is no valid prior ({err})")
    return out


def read_settings(read: FieldReader, value: Any) -> dict[str, Any]:
    """The sampler settings of a NUTS fit (draws, tune, chains, sampler, init, seed)."""
    settings = read.mapping(value, "bayes.settings")
    for key in ("draws", "tune", "chains"):
        read.integer(read.get(settings, key, "bayes.settings"), f"bayes.settings.{key}", minimum=1)
    for key in ("sampler", "init"):
        read.text(read.get(settings, key, "bayes.settings"), f"bayes.settings.{key}")
    read.integer(read.get(settings, "seed", "bayes.settings"), "bayes.settings.seed", optional=True)
    if "interrupted_at" in settings:
        read.integer(settings["interrupted_at"], "bayes.settings.interrupted_at", optional=True)
    return settings
