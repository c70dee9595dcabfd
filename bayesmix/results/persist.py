"""Saving fitted results to disk and loading them back.

An ML fit is one JSON file; a NUTS fit is a folder holding the same JSON
(settings, timings, class probabilities, label checks) and the ArviZ
DataTree as a zarr store. Both carry the model specification, the rows the
fit used (unless saved with ``include_data=False``) and the bayesmix
version, so a loaded result rebuilds its design and gives the same summary,
tables and plots as the fit that was saved.

Each file carries a checksum of its contents (format 2): a SHA-256 of the
canonical JSON of every field (``spec.classes``, ``ml.estimates``...) and
of every group of the zarr store. :func:`load_result` names the fields that
changed since the save and refuses the file unless asked not to verify it;
whether verified or not, a file whose fields cannot describe a fit (a
string where a number belongs, a missing field, parameter names that do not
match the model) is refused with the field named.
"""

from __future__ import annotations

import hashlib
import json
import math
import types
import typing
import warnings
from collections.abc import Mapping
from dataclasses import MISSING, asdict, fields, replace
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import pandas as pd

from bayesmix.errors import BayesmixError, DataError, ResultFileWarning, SpecError
from bayesmix.model.params import Layout
from bayesmix.model.spec import Spec
from bayesmix.outputs import RESULT_FORMAT, RESULT_JSON, check_output, write_file, write_folder
from bayesmix.results.fits import BayesResult, LabelCheck, MLResult, StartsReport, relative_entropy
from bayesmix.results.rowless import ClassSummary, DesignSummary

FORMAT = RESULT_FORMAT
FORMAT_VERSION = 2
_READABLE = (1, 2)
_JSON_NAME = RESULT_JSON
_IDATA_NAME = "idata.zarr"
_NAMED_GROUP = "bayesmix_named_draws"
_ROW_GROUPS = (
    "observed_data",
    "constant_data",
    "posterior_predictive",
    "prior_predictive",
    "predictions",
    "predictions_constant_data",
)
"""DataTree groups that hold data rows (or draws generated from them): not saved without rows."""


class ResultFileError(DataError):
    """A file is not a saved bayesmix result, or one this version cannot read."""


def _encode(value: Any) -> Any:
    """JSON-ready copy: arrays to lists, non-finite floats to strings (exact round trip)."""
    if isinstance(value, np.ndarray):
        return _encode(value.tolist())
    if isinstance(value, (list, tuple)):
        return [_encode(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _encode(v) for k, v in value.items()}
    if isinstance(value, np.generic):
        return _encode(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return {"float": repr(value)}
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"float"}:
            return float(value["float"])
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def _tuples(value: Any) -> Any:
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


def spec_to_dict(spec: Spec) -> dict[str, Any]:
    """The specification as plain JSON values."""
    return _encode(asdict(spec))


# --- checksums ---------------------------------------------------------------------------------


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def field_checksums(payload: Mapping[str, Any]) -> dict[str, str]:
    """SHA-256 of each field of a saved result's JSON.

    A top-level field holding an object (``spec``, ``data``, ``ml``,
    ``bayes``) gets one checksum per entry (``"ml.estimates"``), so that an
    edit is named to the entry; other fields get one each. The value is the
    canonical JSON of the field: ``json.dumps(value, sort_keys=True,
    separators=(",", ":"))``.
    """
    out: dict[str, str] = {}
    for key, value in payload.items():
        if key == "checksum":
            continue
        if isinstance(value, dict):
            for sub, inner in value.items():
                out[f"{key}.{sub}"] = _digest(inner)
        else:
            out[key] = _digest(value)
    return out


def _store_checksums(store: Path) -> dict[str, str]:
    """SHA-256 of each group (top-level entry) of a zarr store, over its files' bytes."""
    out: dict[str, str] = {}
    if not store.is_dir():
        return out
    for entry in sorted(store.iterdir()):
        digest = hashlib.sha256()
        files = [entry] if entry.is_file() else sorted(p for p in entry.rglob("*") if p.is_file())
        for file in files:
            digest.update(file.relative_to(store).as_posix().encode("utf-8") + b"\0")
            digest.update(hashlib.sha256(file.read_bytes()).digest())
        out[f"{_IDATA_NAME}/{entry.name}"] = digest.hexdigest()
    return out


# --- saving ------------------------------------------------------------------------------------


def _class_summary(post: Any) -> Any:
    if post is None:
        return None
    summary = post if isinstance(post, ClassSummary) else None
    if summary is None:
        summary = ClassSummary.of(post, relative_entropy(np.asarray(post, dtype=float)))
    return {
        "sums": summary.sums,
        "modal_counts": summary.modal_counts,
        "entropy": summary.entropy,
        "n": summary.n,
    }


def _data(result: MLResult | BayesResult, rows: bool) -> dict[str, Any]:
    design = result.design
    if not rows:
        return {
            "included": False,
            "n_obs": design.n_obs,
            "n_clusters": design.n_clusters,
            "n_dropped": design.n_dropped,
            "group_levels": list(design.layout.group_levels),
        }
    frame = design.frame.reset_index(drop=True)
    return {
        "included": True,
        "columns": [str(c) for c in frame.columns],
        "values": {str(c): frame[c].to_numpy() for c in frame.columns},
        "n_dropped": design.n_dropped,
    }


def _common(result: MLResult | BayesResult, rows: bool) -> dict[str, Any]:
    from bayesmix import __version__

    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "bayesmix_version": __version__,
        "estimator": result.estimator,
        "spec": spec_to_dict(result.spec),
        "data": _encode(_data(result, rows)),
    }


def _probabilities(payload: dict[str, Any], result: Any, rows: bool) -> None:
    """Per-unit class probabilities with rows; their summaries without."""
    if rows:
        payload["class_probabilities"] = result.class_probabilities
        payload["between_probabilities"] = result.between_probabilities
    else:
        payload["class_summary"] = _class_summary(result.class_probabilities)
        payload["between_summary"] = _class_summary(result.between_probabilities)


def _ml_payload(result: MLResult, rows: bool) -> dict[str, Any]:
    st = result.starts
    payload = {
        "names": list(result.names),
        "estimates": result.estimates,
        "se": result.se,
        "z": result.z,
        "p": result.p,
        "cov": result.cov,
        "loglik": result.loglik,
        "starts": {
            "n_starts": st.n_starts,
            "logliks": st.logliks,
            "replicated": st.replicated,
            "converged": st.converged,
            "seed": st.seed,
            "n_final": st.n_final,
        },
        "converged": result.converged,
        "max_abs_gradient": result.max_abs_gradient,
        "boundary": list(result.boundary),
        "singular_information": result.singular_information,
        "diagnostics": list(result.diagnostics),
        "elapsed_s": result.elapsed_s,
        "timings": result.timings,
        "quadrature_points": result.quadrature_points,
    }
    _probabilities(payload, result, rows)
    return payload


def _labels(check: LabelCheck | None) -> Any:
    if check is None:
        return None
    return {
        "switched": check.switched,
        "permutations": [list(p) for p in check.permutations],
        "agreement": list(check.agreement),
    }


def _bayes_payload(result: BayesResult, rows: bool) -> dict[str, Any]:
    payload = {
        "names": list(result.names),
        "loglik": result.loglik,
        "divergences": result.divergences,
        "labels": _labels(result.labels),
        "between_labels": _labels(result.between_labels),
        "priors": {k: asdict(v) for k, v in result.priors.items()},
        "settings": result.settings,
        "timings": result.timings,
    }
    _probabilities(payload, result, rows)
    return payload


def _write_draws(result: BayesResult, store: Path, rows: bool) -> None:
    import xarray as xr

    named = np.stack([result.draws[n] for n in result.names], axis=-1)
    tree = result.idata.copy()
    if not rows:
        for name in _ROW_GROUPS:
            if name in tree.children:
                del tree[name]
    tree[_NAMED_GROUP] = xr.DataTree(
        xr.Dataset(
            {"draws": (("chain", "draw", "parameter"), named)},
            coords={"parameter": list(result.names)},
        )
    )
    # consolidated metadata is not part of the zarr v3 format; other readers need not know it
    tree.to_zarr(store, consolidated=False)


def save_result(
    result: MLResult | BayesResult,
    path: str | Path,
    *,
    overwrite: bool = False,
    include_data: bool = True,
) -> Path:
    """Write a fit to disk.

    Parameters
    ----------
    result : MLResult or BayesResult
    path : str or Path
        For an ML fit, a JSON file (``.json`` is added when the name has
        no suffix); for a NUTS fit, a folder. Missing parent folders are
        created. A saved bayesmix result (or ``bayesmix fit --json`` file)
        already there is replaced.
    overwrite : bool
        Also replace a file that is not a bayesmix output (or an empty
        folder). A folder with other contents is never replaced.
    include_data : bool
        Save the data rows the fit used (default). With False the file holds
        no rows: no data frame, only class proportions and modal counts
        instead of each observation's class probabilities and, for a NUTS
        fit, no ``observed_data``/``constant_data`` groups in the DataTree.
        The ``log_likelihood`` group (one value per observation and draw) is
        kept, as LOO needs it. A result loaded from such a file has
        ``summary()``, ``params``/``table``, ``to_dict()``, AIC/BIC,
        student-level LOO, :func:`bayesmix.analysis.compare` (with ``level="student"``
        for Bayes fits of two-level models), ``fit_bayes(..., init=fit)``
        (which takes only the estimates) and ``save``; anything needing the
        rows (plots of the data, school effects, predictive checks,
        school-level LOO, :func:`bayesmix.between_start`) raises
        :class:`~bayesmix.errors.DataError`. A result loaded without rows is
        always saved without them.

    Returns
    -------
    Path
        What was written.

    Raises
    ------
    OutputError
        Before anything is written, when the path cannot be written or holds
        something else (see :func:`bayesmix.outputs.check_output`).

    Notes
    -----
    The file (or folder) is written under a temporary name and renamed into
    place when complete, so an error or interruption leaves an existing
    result as it was. The JSON carries per-field SHA-256 checksums, checked
    by :func:`load_result`.
    """
    if not isinstance(result, (MLResult, BayesResult)):
        raise BayesmixError(
            f"save_result takes a fit_ml or fit_bayes result, got {type(result).__name__}."
        )
    rows = bool(include_data) and not isinstance(result.design, DesignSummary)
    target = Path(path)
    if isinstance(result, MLResult):
        if not target.suffix:
            target = target.with_suffix(".json")
        check_output(target, kind="file", label="save path", overwrite=overwrite)
        payload = {**_common(result, rows), "ml": _encode(_ml_payload(result, rows))}
        payload["checksum"] = field_checksums(payload)
        return write_file(target, json.dumps(payload))
    check_output(target, kind="folder", label="save path", overwrite=overwrite)
    payload = {**_common(result, rows), "bayes": _encode(_bayes_payload(result, rows))}

    def fill(folder: Path) -> None:
        _write_draws(result, folder / _IDATA_NAME, rows)
        sums = {**field_checksums(payload), **_store_checksums(folder / _IDATA_NAME)}
        write_file(folder / _JSON_NAME, json.dumps({**payload, "checksum": sums}))

    return write_folder(target, fill)


# --- reading and checking fields ---------------------------------------------------------------


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


class _Reader:
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
            self.fail(field, f"is {_show(obj)}, not an object")
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
        self.fail(field, f"is {_show(value)}, not a number")

    def integer(
        self, value: Any, field: str, *, optional: bool = False, minimum: int | None = 0
    ) -> int | None:
        if optional and value is None:
            return None
        if not isinstance(value, int) or isinstance(value, bool):
            self.fail(field, f"is {_show(value)}, not an integer")
        if minimum is not None and value < minimum:
            self.fail(field, f"is {value}, less than {minimum}")
        return value

    def boolean(self, value: Any, field: str) -> bool:
        if isinstance(value, bool):
            return value
        self.fail(field, f"is {_show(value)}, not true or false")

    def text(self, value: Any, field: str, *, optional: bool = False) -> str | None:
        if optional and value is None:
            return None
        if isinstance(value, str):
            return value
        self.fail(field, f"is {_show(value)}, not a string")

    def texts(self, value: Any, field: str) -> list[str]:
        if not isinstance(value, list):
            self.fail(field, f"is {_show(value)}, not a list")
        return [self.text(v, f"{field}[{i}]") for i, v in enumerate(value)]  # type: ignore[misc]

    def mapping(self, value: Any, field: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            self.fail(field, f"is {_show(value)}, not an object")
        return value

    def numbers(self, value: Any, field: str, shape: tuple[int | None, ...]) -> np.ndarray:
        """An array of numbers of the given shape (None: any length)."""
        try:
            arr = np.array(_decode(value))
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
            self.fail(field, f"is {_show(value)}, not a list")
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


def _spec(read: _Reader, values: Any) -> Spec:
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
            read.fail(f"spec.{name}", f"is {_show(values[name])}, not a valid value")
    try:
        return Spec(**{k: _tuples(v) for k, v in values.items()})
    except SpecError as err:
        raise ResultFileError(
            f"{read.where}: field spec describes no valid model ({err}); the file was edited "
            "or damaged: save the fit again."
        ) from None


def _design(read: _Reader, payload: dict[str, Any], spec: Spec) -> Any:
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
            read.fail("data.group_levels", f"is {_show(levels)}, not a list")
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
            read.fail(f"data.values.{c}", f"is {_show(column)}, not a list")
        try:
            cols[c] = _decode(column)
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


def _names(read: _Reader, values: Any, field: str, layout: Layout) -> tuple[str, ...]:
    names = read.texts(values, field)
    expected = list(layout.names)
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


def _probs(read: _Reader, block: dict[str, Any], prefix: str, design: Any, level: int) -> Any:
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


def _timings(read: _Reader, value: Any, field: str, required: tuple[str, ...] = ()) -> dict:
    timings = read.mapping(value, field)
    for key in required:
        read.get(timings, key, field)
    return {k: read.number(v, f"{field}.{k}") for k, v in timings.items()}


def _load_ml(read: _Reader, payload: dict[str, Any], design: Any) -> MLResult:
    m = read.mapping(read.get(payload, "ml", ""), "ml")

    def get(key: str) -> Any:
        return read.get(m, key, "ml")

    names = _names(read, get("names"), "ml.names", design.layout)
    P = len(names)
    st = read.mapping(get("starts"), "ml.starts")

    def start(key: str) -> Any:
        return read.get(st, key, "ml.starts")

    return MLResult(
        spec=design.spec,
        design=design,
        names=names,
        estimates=read.numbers(get("estimates"), "ml.estimates", (P,)),
        se=read.numbers(get("se"), "ml.se", (P,)),
        z=read.numbers(get("z"), "ml.z", (P,)),
        p=read.numbers(get("p"), "ml.p", (P,)),
        cov=read.numbers(get("cov"), "ml.cov", (P, P)),
        loglik=read.number(get("loglik"), "ml.loglik"),
        class_probabilities=_probs(read, m, "ml", design, 1),
        starts=StartsReport(
            n_starts=read.integer(start("n_starts"), "ml.starts.n_starts"),  # type: ignore[arg-type]
            logliks=read.numbers(start("logliks"), "ml.starts.logliks", (None,)),
            replicated=read.integer(start("replicated"), "ml.starts.replicated"),  # type: ignore[arg-type]
            converged=read.integer(start("converged"), "ml.starts.converged"),  # type: ignore[arg-type]
            seed=read.integer(start("seed"), "ml.starts.seed", optional=True),
            n_final=read.integer(start("n_final"), "ml.starts.n_final", optional=True),
        ),
        converged=read.boolean(get("converged"), "ml.converged"),
        max_abs_gradient=read.number(get("max_abs_gradient"), "ml.max_abs_gradient"),
        boundary=tuple(read.texts(get("boundary"), "ml.boundary")),
        singular_information=read.boolean(get("singular_information"), "ml.singular_information"),
        diagnostics=tuple(read.texts(get("diagnostics"), "ml.diagnostics")),
        elapsed_s=read.number(get("elapsed_s"), "ml.elapsed_s"),
        timings=_timings(read, get("timings"), "ml.timings"),
        quadrature_points=read.integer(
            get("quadrature_points"), "ml.quadrature_points", optional=True, minimum=1
        ),
        between_probabilities=_probs(read, m, "ml", design, 2),
    )


def _label_check(read: _Reader, values: Any, field: str) -> LabelCheck | None:
    if values is None:
        return None
    values = read.mapping(values, field)
    perms = read.get(values, "permutations", field)
    if not isinstance(perms, list):
        read.fail(f"{field}.permutations", f"is {_show(perms)}, not a list")
    return LabelCheck(
        switched=read.boolean(read.get(values, "switched", field), f"{field}.switched"),
        permutations=tuple(
            tuple(int(i) for i in read.numbers(p, f"{field}.permutations[{k}]", (None,)))
            for k, p in enumerate(perms)
        ),
        agreement=tuple(
            float(a)
            for a in read.numbers(
                read.get(values, "agreement", field), f"{field}.agreement", (None,)
            )
        ),
    )


def _priors(read: _Reader, values: Any) -> dict[str, Any]:
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


def _settings(read: _Reader, value: Any) -> dict[str, Any]:
    settings = read.mapping(value, "bayes.settings")
    for key in ("draws", "tune", "chains"):
        read.integer(read.get(settings, key, "bayes.settings"), f"bayes.settings.{key}", minimum=1)
    for key in ("sampler", "init"):
        read.text(read.get(settings, key, "bayes.settings"), f"bayes.settings.{key}")
    read.integer(read.get(settings, "seed", "bayes.settings"), "bayes.settings.seed", optional=True)
    if "interrupted_at" in settings:
        read.integer(settings["interrupted_at"], "bayes.settings.interrupted_at", optional=True)
    return settings


def _open_draws(read: _Reader, folder: Path, names: tuple[str, ...]) -> tuple[Any, np.ndarray]:
    """The DataTree (without the named-draws group) and the named draws (chain, draw, P)."""
    import xarray as xr

    store = folder / _IDATA_NAME
    try:
        tree = xr.open_datatree(store, engine="zarr", consolidated=False).load()
        groups = {name: tree[name].to_dataset() for name in tree.children}
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as err:
        # what zarr and its codecs raise for missing metadata or chunks, and for bytes that
        # do not decode (RuntimeError from the decompressor)
        raise ResultFileError(
            f"{folder}: the draws ({_IDATA_NAME}) cannot be read ({type(err).__name__}: "
            f"{err}); the store is damaged: save the fit again."
        ) from None
    for group in ("posterior", "log_likelihood", _NAMED_GROUP):
        if group not in groups:
            read.fail(f"{_IDATA_NAME}/{group}", "is missing")
    named = groups.pop(_NAMED_GROUP)
    if "draws" not in named or named["draws"].dims != ("chain", "draw", "parameter"):
        read.fail(
            f"{_IDATA_NAME}/{_NAMED_GROUP}", "does not hold the (chain, draw, parameter) draws"
        )
    saved = [str(p) for p in named["parameter"].values]
    if saved != list(names):
        read.fail(
            f"{_IDATA_NAME}/{_NAMED_GROUP}",
            f"names the parameters {saved}, not those of field bayes.names",
        )
    idata = xr.DataTree.from_dict({f"/{name}": ds for name, ds in groups.items()})
    return idata, np.asarray(named["draws"].values, dtype=float)


def _load_bayes(read: _Reader, folder: Path, payload: dict[str, Any], design: Any) -> BayesResult:
    import arviz_stats as azs

    b = read.mapping(read.get(payload, "bayes", ""), "bayes")

    def get(key: str) -> Any:
        return read.get(b, key, "bayes")

    names = _names(read, get("names"), "bayes.names", design.layout)
    idata, stacked = _open_draws(read, folder, names)
    named = {n: stacked[:, :, k] for k, n in enumerate(names)}
    post = _probs(read, b, "bayes", design, 1)
    between = _probs(read, b, "bayes", design, 2)
    var = "y_school" if between is not None else "y"
    if var not in idata["log_likelihood"].to_dataset():
        read.fail(f"{_IDATA_NAME}/log_likelihood", f"has no variable {var!r}")
    # a format-1 file has no saved log-likelihood at the posterior means, but it has its rows
    loglik = read.number(b["loglik"], "bayes.loglik") if "loglik" in b else None
    labels = get("labels")
    if labels is None:
        read.fail("bayes.labels", "is null, not the chains' label check")
    # from_draws averages per-chain class probabilities; the saved ones are averages already
    # (or, without rows, their summary), so they are put in place afterwards as saved
    no_units = np.empty((1, 0, design.spec.classes))
    result = BayesResult.from_draws(
        spec=design.spec,
        design=design,
        idata=idata,
        named=named,
        chain_post=no_units,
        chain_between=None,
        divergences=read.integer(get("divergences"), "bayes.divergences"),  # type: ignore[arg-type]
        labels=_label_check(read, labels, "bayes.labels"),  # type: ignore[arg-type]
        between_labels=_label_check(read, get("between_labels"), "bayes.between_labels"),
        loo=azs.loo(idata, var_name=var),
        priors=_priors(read, get("priors")),
        settings=_settings(read, get("settings")),
        timings=_timings(
            read, get("timings"), "bayes.timings", ("elapsed_s", "compile_s", "sampling_s")
        ),
        loglik=loglik,
    )
    return replace(result, class_probabilities=post, between_probabilities=between)


# --- loading -----------------------------------------------------------------------------------


def _read_payload(path: Path) -> tuple[Path, dict[str, Any]]:
    file = path / _JSON_NAME if path.is_dir() else path
    if not file.exists():
        raise ResultFileError(f"{path} does not exist or holds no saved bayesmix result.")
    try:
        payload = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ResultFileError(f"{file} is not a saved bayesmix result ({err}).") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ResultFileError(f"{file} is not a saved bayesmix result.")
    version = payload.get("format_version")
    if isinstance(version, bool) or version not in _READABLE:
        raise ResultFileError(
            f"{file} has result format {version}; this bayesmix reads formats "
            f"{list(_READABLE)}: load it with bayesmix {payload.get('bayesmix_version')}."
        )
    return file, payload


def _verify(file: Path, payload: dict[str, Any], store: Path | None, verify: bool) -> None:
    stored = payload.get("checksum")
    if stored is None and payload.get("format_version") == 1:
        if verify:
            warnings.warn(
                f"{file} was saved in result format 1, which carries no checksum, so changes "
                "to it cannot be detected; save it again to add one.",
                ResultFileWarning,
                stacklevel=3,
            )
        return
    actual = field_checksums(payload)
    if store is not None:
        actual.update(_store_checksums(store))
    if not isinstance(stored, dict):
        changed = ["checksum"]
    else:
        changed = sorted(k for k in stored.keys() | actual.keys() if stored.get(k) != actual.get(k))
    if not changed:
        return
    if verify:
        raise ResultFileError(
            f"{file} was changed after it was saved: fields that changed: {changed}. Load it "
            "with verify=False to read it anyway."
        )
    warnings.warn(
        f"{file} was changed after it was saved (fields that changed: {changed}); it is "
        "loaded unverified, as verify=False asks.",
        ResultFileWarning,
        stacklevel=3,
    )


def load_result(path: str | Path, *, verify: bool = True) -> MLResult | BayesResult:
    """Read a fit written by :func:`save_result` (or ``result.save``).

    Parameters
    ----------
    path : str or Path
        The JSON file of an ML fit or the folder of a NUTS fit.
    verify : bool
        Check the file's checksums (default): a file changed since it was
        saved is refused, with the changed fields named. With False it is
        loaded with a :class:`~bayesmix.errors.ResultFileWarning` naming
        them. A file of format 1 (bayesmix before checksums) has none: it
        loads, with a warning saying its changes cannot be detected.

    Returns
    -------
    MLResult or BayesResult
        With its design rebuilt from the saved rows, so summaries, tables
        and plots match the saved fit. A fit saved with
        ``include_data=False`` has none: see :func:`save_result` for what
        it supports.

    Raises
    ------
    ResultFileError
        For a path holding no saved result, a changed file (unless
        ``verify=False``), and, verified or not, a file whose fields cannot
        describe a fit: a missing field, a string where a number belongs,
        arrays of the wrong length, parameter names that do not match the
        saved model, a NUTS folder whose zarr store is missing or damaged.
    """
    target = Path(path)
    file, payload = _read_payload(target)
    estimator = payload.get("estimator")
    if estimator not in ("ml", "bayes"):
        raise ResultFileError(f"{target}: unknown estimator {estimator!r}.")
    read = _Reader(file)
    if estimator == "ml":
        _verify(file, payload, None, verify)
        spec = _spec(read, read.get(payload, "spec", ""))
        return _load_ml(read, payload, _design(read, payload, spec))
    if not target.is_dir():
        raise ResultFileError(
            f"{target} is the JSON part of a NUTS fit; load its folder {target.parent}."
        )
    if not (target / _IDATA_NAME).is_dir():
        raise ResultFileError(
            f"{target}: the draws ({_IDATA_NAME}) are missing; the folder is incomplete: save "
            "the fit again."
        )
    _verify(file, payload, target / _IDATA_NAME if "checksum" in payload else None, verify)
    spec = _spec(read, read.get(payload, "spec", ""))
    return _load_bayes(read, target, payload, _design(read, payload, spec))
