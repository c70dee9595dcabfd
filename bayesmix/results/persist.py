"""Writing fitted results to disk as records, and reading the records back.

A fit turns itself into a :class:`ResultRecord` (its fields as plain values,
see :meth:`bayesmix.results.interface.FitResult.to_record`); this module
writes such a record without knowing which estimator made it, and reads and
verifies a saved file. :mod:`bayesmix.results.io` rebuilds the result
classes from what is read.

An ML fit is one JSON file; a NUTS fit is a folder holding the same JSON
(settings, timings, class probabilities, label checks) and the ArviZ
DataTree as a zarr store. Both carry the model specification, the rows the
fit used (unless saved with ``include_data=False``) and the bayesmix
version, so a loaded result rebuilds its design and gives the same summary,
tables and plots as the fit that was saved.

Each file carries a checksum of its contents (format 2): a SHA-256 of the
canonical JSON of every field (``spec.classes``, ``ml.estimates``...) and
of every group of the zarr store. :func:`bayesmix.load_result` names the
fields that changed since the save and refuses the file unless asked not to
verify it; whether verified or not, a file whose fields cannot describe a
fit (a string where a number belongs, a missing field, parameter names that
do not match the model) is refused with the field named.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bayesmix._version import __version__
from bayesmix.diagnostics import Diagnostic
from bayesmix.errors import DataError, ResultFileWarning
from bayesmix.model.spec import Spec
from bayesmix.outputs import RESULT_FORMAT, RESULT_JSON, check_output, write_file, write_folder
from bayesmix.results.rowless import ClassSummary
from bayesmix.results.tables import relative_entropy

FORMAT = RESULT_FORMAT
FORMAT_VERSION = 2
READABLE = (1, 2)
JSON_NAME = RESULT_JSON
IDATA_NAME = "idata.zarr"
NAMED_GROUP = "bayesmix_named_draws"
ROW_GROUPS = (
    "observed_data",
    "constant_data",
    "posterior_predictive",
    "prior_predictive",
    "predictions",
    "predictions_constant_data",
)
"""DataTree groups that hold data rows (or draws generated from them): not saved without rows."""

PROBABILITY_FIELDS = ("class_probabilities", "between_probabilities")
"""Result fields saved per unit with the rows, as summaries without them (last in a block)."""


class ResultFileError(DataError):
    """A file is not a saved bayesmix result, or one this version cannot read."""


def encode(value: Any) -> Any:
    """JSON-ready copy: arrays to lists, non-finite floats to strings (exact round trip).

    A dataclass instance (a start report, a label check, a prior) becomes
    the object of its fields.
    """
    if isinstance(value, Diagnostic):
        return value.to_dict()
    if isinstance(value, np.ndarray):
        return encode(value.tolist())
    if isinstance(value, (list, tuple)):
        return [encode(v) for v in value]
    if isinstance(value, dict):
        return {str(k): encode(v) for k, v in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return encode({f.name: getattr(value, f.name) for f in dataclasses.fields(value)})
    if isinstance(value, np.generic):
        return encode(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return {"float": repr(value)}
    return value


def decode(value: Any) -> Any:
    """Inverse of :func:`encode` for numbers: ``{"float": "nan"}`` back to a float."""
    if isinstance(value, dict):
        if set(value) == {"float"}:
            return float(value["float"])
        return {k: decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode(v) for v in value]
    return value


def spec_to_dict(spec: Spec) -> dict[str, Any]:
    """The specification as plain JSON values."""
    return encode(asdict(spec))


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
        out[f"{IDATA_NAME}/{entry.name}"] = digest.hexdigest()
    return out


# --- records and writing -----------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class ResultRecord:
    """A fit as plain values, ready to be written by :func:`write_record`.

    Attributes
    ----------
    estimator : str
        Names the JSON block of the fit's own fields (``"ml"``, ``"bayes"``)
        and tells the loader which result to rebuild.
    spec : Spec
    design : Design or DesignSummary
        Saved as the rows (``rows`` True) or their counts.
    rows : bool
        Whether the data rows and per-unit class probabilities are saved.
    fields : dict
        The fit's own fields, unencoded; the class probabilities last (per
        unit, or as :class:`ClassSummary` objects without rows).
    draws : callable or None
        Writes the draws (a zarr store) to the path it is given; None for a
        fit without draws, saved as one JSON file.
    """

    estimator: str
    spec: Spec
    design: Any
    rows: bool
    fields: dict[str, Any]
    draws: Callable[[Path], None] | None = None


def probability_fields(result: Any, rows: bool) -> dict[str, Any]:
    """Per-unit class probabilities with rows; their summaries without."""
    if rows:
        return {name: getattr(result, name) for name in PROBABILITY_FIELDS}
    return {
        "class_summary": _class_summary(result.class_probabilities),
        "between_summary": _class_summary(result.between_probabilities),
    }


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


def _data(design: Any, rows: bool) -> dict[str, Any]:
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


def _payload(record: ResultRecord) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "bayesmix_version": __version__,
        "estimator": record.estimator,
        "spec": spec_to_dict(record.spec),
        "data": encode(_data(record.design, record.rows)),
        record.estimator: encode(record.fields),
    }


def write_record(record: ResultRecord, path: str | Path, *, overwrite: bool = False) -> Path:
    """Write a record: one JSON file, or a folder of the JSON and the draws.

    See :func:`bayesmix.save_result` for the paths taken and refused.
    """
    target = Path(path)
    if record.draws is None:
        if not target.suffix:
            target = target.with_suffix(".json")
        check_output(target, kind="file", label="save path", overwrite=overwrite)
        payload = _payload(record)
        payload["checksum"] = field_checksums(payload)
        return write_file(target, json.dumps(payload))
    check_output(target, kind="folder", label="save path", overwrite=overwrite)
    payload = _payload(record)
    write_draws = record.draws

    def fill(folder: Path) -> None:
        write_draws(folder / IDATA_NAME)
        sums = {**field_checksums(payload), **_store_checksums(folder / IDATA_NAME)}
        write_file(folder / JSON_NAME, json.dumps({**payload, "checksum": sums}))

    return write_folder(target, fill)


def write_draws(
    idata: Any, names: tuple[str, ...], draws: Mapping[str, np.ndarray], store: Path, rows: bool
) -> None:
    """Write a DataTree and the named (chain, draw) draws beside it as one zarr store."""
    import xarray as xr

    named = np.stack([draws[n] for n in names], axis=-1)
    tree = idata.copy()
    if not rows:
        for name in ROW_GROUPS:
            if name in tree.children:
                del tree[name]
    tree[NAMED_GROUP] = xr.DataTree(
        xr.Dataset(
            {"draws": (("chain", "draw", "parameter"), named)},
            coords={"parameter": list(names)},
        )
    )
    # consolidated metadata is not part of the zarr v3 format; other readers need not know it
    tree.to_zarr(store, consolidated=False)


# --- reading -----------------------------------------------------------------------------------


def read_payload(path: Path) -> tuple[Path, dict[str, Any]]:
    """The JSON file of a saved result and its contents, once its format is one this reads."""
    file = path / JSON_NAME if path.is_dir() else path
    if not file.exists():
        raise ResultFileError(f"{path} does not exist or holds no saved bayesmix result.")
    try:
        payload = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ResultFileError(f"{file} is not a saved bayesmix result ({err}).") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ResultFileError(f"{file} is not a saved bayesmix result.")
    version = payload.get("format_version")
    if isinstance(version, bool) or version not in READABLE:
        raise ResultFileError(
            f"{file} has result format {version}; this bayesmix reads formats "
            f"{list(READABLE)}: load it with bayesmix {payload.get('bayesmix_version')}."
        )
    return file, payload


def check_checksums(file: Path, payload: dict[str, Any], store: Path | None, verify: bool) -> None:
    """Compare a file's checksums with its contents; refuse or warn as ``verify`` says.

    Called by the public loader, whose caller the warnings point at.
    """
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
