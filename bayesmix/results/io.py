"""Saving fits and loading them back: :func:`save_result` and :func:`load_result`.

A fit writes itself (:meth:`~bayesmix.results.interface.FitResult.save`,
through the records of :mod:`bayesmix.results.persist`); loading rebuilds the
result class the file's ``estimator`` names, reading the fields that class
saves (:func:`~bayesmix.results.interface.saved_fields`) each through a
checked reader of :mod:`bayesmix.results.reader`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from bayesmix.bayes.datatree import SAMPLE_SPACE, SCHOOL_LOGLIK, STUDENT_LOGLIK, current_layout
from bayesmix.bayes.diagnose import posterior_diagnostics
from bayesmix.bayes.posterior import bayes_result
from bayesmix.diagnostics import Diagnostic
from bayesmix.errors import BayesmixError
from bayesmix.model.constraints import sampled_names
from bayesmix.results.bayes import BayesResult, LabelCheck
from bayesmix.results.interface import FitResult, saved_fields
from bayesmix.results.ml import MLResult, StartsReport
from bayesmix.results.persist import (
    IDATA_NAME,
    NAMED_GROUP,
    ResultFileError,
    check_checksums,
    read_payload,
)
from bayesmix.results.reader import (
    FieldReader,
    read_design,
    read_names,
    read_priors,
    read_probabilities,
    read_settings,
    read_spec,
    read_timings,
    show,
)

Reader = Callable[[FieldReader, Any, str, tuple[str, ...]], Any]
"""Reads one saved field: the reader, the value, the field's name, the parameter names."""


def save_result(
    result: FitResult,
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
        kept, as LOO needs it, and so are the ``posterior`` (with the school
        residuals) and ``sample_space`` groups. A result loaded from such a file has
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
    if not isinstance(result, FitResult):
        raise BayesmixError(
            f"save_result takes a fit_ml or fit_bayes result, got {type(result).__name__}."
        )
    return result.save(path, overwrite=overwrite, include_data=include_data)


# --- field readers -----------------------------------------------------------------------------


def _vector(read: FieldReader, value: Any, field: str, names: tuple[str, ...]) -> np.ndarray:
    return read.numbers(value, field, (len(names),))


def _starts(read: FieldReader, value: Any, field: str) -> StartsReport:
    st = read.mapping(value, field)

    def start(key: str) -> Any:
        return read.get(st, key, field)

    return StartsReport(
        n_starts=read.integer(start("n_starts"), f"{field}.n_starts"),  # type: ignore[arg-type]
        logliks=read.numbers(start("logliks"), f"{field}.logliks", (None,)),
        replicated=read.integer(start("replicated"), f"{field}.replicated"),  # type: ignore[arg-type]
        converged=read.integer(start("converged"), f"{field}.converged"),  # type: ignore[arg-type]
        seed=read.integer(start("seed"), f"{field}.seed", optional=True),
        n_final=read.integer(start("n_final"), f"{field}.n_final", optional=True),
        # absent from files written before model C fits carried a start over
        carried_index=read.integer(
            st.get("carried_index"), f"{field}.carried_index", optional=True
        ),
    )


def _label_check(read: FieldReader, values: Any, field: str) -> LabelCheck | None:
    if values is None:
        return None
    values = read.mapping(values, field)
    perms = read.get(values, "permutations", field)
    if not isinstance(perms, list):
        read.fail(f"{field}.permutations", f"is {show(perms)}, not a list")
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


def _diagnostics(read: FieldReader, value: Any, field: str) -> tuple[Diagnostic, ...]:
    """Records as :meth:`Diagnostic.to_dict` writes them, or the plain messages of files
    written before diagnostics were records (read as ``"saved_as_text"``)."""
    if not isinstance(value, list):
        read.fail(field, f"is {show(value)}, not a list")
    found = []
    for i, item in enumerate(value):
        where = f"{field}[{i}]"
        if isinstance(item, str):
            found.append(Diagnostic("saved_as_text", item))
            continue
        record = read.mapping(item, where)
        found.append(
            Diagnostic.from_dict(
                {
                    key: read.text(read.get(record, key, where), f"{where}.{key}")  # type: ignore[misc]
                    for key in ("code", "message", "category")
                }
            )
        )
    return tuple(found)


def _se_type(read: FieldReader, value: Any, field: str) -> str:
    if value not in ("ml", "mlr", "none"):
        read.fail(field, f"is {value!r}, not 'ml', 'mlr' or 'none'")
    return str(value)


def _chain_labels(read: FieldReader, value: Any, field: str) -> LabelCheck:
    if value is None:
        read.fail(field, "is null, not the chains' label check")
    return _label_check(read, value, field)  # type: ignore[return-value]


ML_READERS: dict[str, Reader] = {
    "names": lambda read, value, field, names: names,
    "estimates": _vector,
    "se": _vector,
    "z": _vector,
    "p": _vector,
    "cov": lambda read, value, field, names: read.numbers(value, field, (len(names),) * 2),
    "loglik": lambda read, value, field, names: read.number(value, field),
    "starts": lambda read, value, field, names: _starts(read, value, field),
    "converged": lambda read, value, field, names: read.boolean(value, field),
    "max_abs_gradient": lambda read, value, field, names: read.number(value, field),
    "boundary": lambda read, value, field, names: tuple(read.texts(value, field)),
    "singular_information": lambda read, value, field, names: read.boolean(value, field),
    "diagnostics": lambda read, value, field, names: _diagnostics(read, value, field),
    "elapsed_s": lambda read, value, field, names: read.number(value, field),
    "timings": lambda read, value, field, names: read_timings(read, value, field),
    "quadrature_points": lambda read, value, field, names: read.integer(
        value, field, optional=True, minimum=1
    ),
    "se_type": lambda read, value, field, names: _se_type(read, value, field),
    "scaling_factor": lambda read, value, field, names: (
        None if value is None else read.number(value, field)
    ),
}
"""A reader for each field :class:`MLResult` saves."""

BAYES_READERS: dict[str, Reader] = {
    "names": lambda read, value, field, names: names,
    "loglik": lambda read, value, field, names: read.number(value, field),
    "divergences": lambda read, value, field, names: read.integer(value, field),
    "labels": lambda read, value, field, names: _chain_labels(read, value, field),
    "priors": lambda read, value, field, names: read_priors(read, value),
    "settings": lambda read, value, field, names: read_settings(read, value),
    "timings": lambda read, value, field, names: read_timings(
        read, value, field, ("elapsed_s", "compile_s", "sampling_s")
    ),
    "between_labels": lambda read, value, field, names: _label_check(read, value, field),
}
"""A reader for each field :class:`BayesResult` saves."""

OPTIONAL = {"bayes.loglik", "ml.se_type", "ml.scaling_factor"}
"""Fields a readable file may lack: format 1 saved no log-likelihood at the posterior means
(it saved the rows, from which it is computed again), and fits saved before robust standard
errors existed have the observed information's."""


def _read_fields(
    read: FieldReader, block: dict[str, Any], cls: type, readers: dict[str, Reader], names: Any
) -> dict[str, Any]:
    """The fields ``cls`` saves, in field order, from the JSON block of its estimator."""
    prefix = cls.estimator  # type: ignore[attr-defined]
    values = {}
    for name in saved_fields(cls):
        field = f"{prefix}.{name}"
        if field in OPTIONAL and name not in block:
            values[name] = None
            continue
        values[name] = readers[name](read, read.get(block, name, prefix), field, names)
    return values


# --- loading -----------------------------------------------------------------------------------


def _load_ml(target: Path, file: Path, payload: dict[str, Any], verify: bool) -> MLResult:
    check_checksums(file, payload, None, verify)
    read = FieldReader(file)
    design = read_design(read, payload, read_spec(read, read.get(payload, "spec", "")))
    block = read.mapping(read.get(payload, "ml", ""), "ml")
    names = read_names(read, read.get(block, "names", "ml"), "ml.names", design.layout.names)
    fields = _read_fields(read, block, MLResult, ML_READERS, names)
    fields["se_type"] = fields["se_type"] or "ml"
    return MLResult(
        spec=design.spec,
        design=design,
        **fields,
        class_probabilities=read_probabilities(read, block, "ml", design, 1),
        between_probabilities=read_probabilities(read, block, "ml", design, 2),
    )


def _open_draws(read: FieldReader, folder: Path, names: tuple[str, ...]) -> tuple[Any, np.ndarray]:
    """The DataTree (without the named-draws group) and the named draws (chain, draw, P)."""
    import xarray as xr

    store = folder / IDATA_NAME
    try:
        tree = xr.open_datatree(store, engine="zarr", consolidated=False).load()
        groups = {name: tree[name].to_dataset() for name in tree.children}
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as err:
        # what zarr and its codecs raise for missing metadata or chunks, and for bytes that
        # do not decode (RuntimeError from the decompressor)
        raise ResultFileError(
            f"{folder}: the draws ({IDATA_NAME}) cannot be read ({type(err).__name__}: "
            f"{err}); the store is damaged: save the fit again."
        ) from None
    for group in ("posterior", "log_likelihood", NAMED_GROUP):
        if group not in groups:
            read.fail(f"{IDATA_NAME}/{group}", "is missing")
    named = groups.pop(NAMED_GROUP)
    if "draws" not in named or named["draws"].dims != ("chain", "draw", "parameter"):
        read.fail(f"{IDATA_NAME}/{NAMED_GROUP}", "does not hold the (chain, draw, parameter) draws")
    saved = [str(p) for p in named["parameter"].values]
    if saved != list(names):
        read.fail(
            f"{IDATA_NAME}/{NAMED_GROUP}",
            f"names the parameters {saved}, not those of field bayes.names",
        )
    idata = xr.DataTree.from_dict({f"/{name}": ds for name, ds in groups.items()})
    return idata, np.asarray(named["draws"].values, dtype=float)


def _load_bayes(target: Path, file: Path, payload: dict[str, Any], verify: bool) -> BayesResult:
    from bayesmix.analysis import psis

    if not target.is_dir():
        raise ResultFileError(
            f"{target} is the JSON part of a NUTS fit; load its folder {target.parent}."
        )
    if not (target / IDATA_NAME).is_dir():
        raise ResultFileError(
            f"{target}: the draws ({IDATA_NAME}) are missing; the folder is incomplete: save "
            "the fit again."
        )
    check_checksums(file, payload, target / IDATA_NAME if "checksum" in payload else None, verify)
    read = FieldReader(file)
    design = read_design(read, payload, read_spec(read, read.get(payload, "spec", "")))
    block = read.mapping(read.get(payload, "bayes", ""), "bayes")
    names = read_names(
        read,
        read.get(block, "names", "bayes"),
        "bayes.names",
        sampled_names(design.spec.constraints, design.layout.names),
    )
    idata, stacked = _open_draws(read, target, names)
    post = read_probabilities(read, block, "bayes", design, 1)
    between = read_probabilities(read, block, "bayes", design, 2)
    var = SCHOOL_LOGLIK if between is not None else STUDENT_LOGLIK
    if var not in idata["log_likelihood"].to_dataset():
        read.fail(f"{IDATA_NAME}/log_likelihood", f"has no variable {var!r}")
    named = {n: stacked[:, :, k] for k, n in enumerate(names)}
    if SAMPLE_SPACE in idata.children:
        missing = [n for n in names if n not in idata["posterior"].data_vars]
        if missing:
            read.fail(f"{IDATA_NAME}/posterior", f"lacks the parameters {missing}")
    # a fit saved before the paper-named layout is read into it
    idata = current_layout(idata, named)
    arrays = list(idata["log_likelihood"].data_vars)
    if arrays != [var]:
        read.fail(f"{IDATA_NAME}/log_likelihood", f"holds {arrays}, not {var!r} alone")
    values = _read_fields(read, block, BayesResult, BAYES_READERS, names)
    del values["names"]  # bayes_result takes them from the draws
    # bayes_result averages per-chain class probabilities; the saved ones are averages already
    # (or, without rows, their summary), so they are put in place afterwards as saved
    result = bayes_result(
        spec=design.spec,
        design=design,
        idata=idata,
        named=named,
        chain_post=np.empty((1, 0, design.spec.classes)),
        chain_between=None,
        loo=psis.loo(idata),
        **values,
    )
    result = replace(result, class_probabilities=post, between_probabilities=between)
    return replace(result, diagnostics=posterior_diagnostics(result))


_LOADERS: dict[str, Callable[[Path, Path, dict[str, Any], bool], FitResult]] = {
    MLResult.estimator: _load_ml,
    BayesResult.estimator: _load_bayes,
}
"""How a file is loaded, by the estimator it names."""


def load_result(path: str | Path, *, verify: bool = True) -> FitResult:
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
        it supports. A NUTS fit's DataTree has the groups of
        :mod:`bayesmix.bayes.datatree`, also when it was saved by a
        bayesmix whose ``posterior`` held the sampler's variables: those
        move to ``sample_space``, the named draws and school residuals
        become the ``posterior`` (without class shares, which such files
        lack) and ``y`` alone stays in ``log_likelihood``.

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
    file, payload = read_payload(target)
    estimator = payload.get("estimator")
    if not isinstance(estimator, str) or estimator not in _LOADERS:
        raise ResultFileError(f"{target}: unknown estimator {estimator!r}.")
    return _LOADERS[estimator](target, file, payload, verify)
