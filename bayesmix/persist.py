"""Saving fitted results to disk and loading them back.

An ML fit is one JSON file; a NUTS fit is a folder holding the same JSON
(settings, timings, class probabilities, label checks) and the ArviZ
DataTree as a zarr store. Both carry the model specification, the rows the
fit used and the bayesmix version, so a loaded result rebuilds its design
and gives the same summary, tables and plots as the fit that was saved.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bayesmix.errors import BayesmixError, DataError
from bayesmix.results import BayesResult, LabelCheck, MLResult, StartsReport
from bayesmix.spec import Spec

FORMAT = "bayesmix-result"
FORMAT_VERSION = 1
_JSON_NAME = "result.json"
_IDATA_NAME = "idata.zarr"
_NAMED_GROUP = "bayesmix_named_draws"


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


def _array(value: Any) -> np.ndarray:
    return np.asarray(_decode(value), dtype=float)


def _tuples(value: Any) -> Any:
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


def spec_to_dict(spec: Spec) -> dict[str, Any]:
    """The specification as plain JSON values."""
    return _encode(asdict(spec))


def spec_from_dict(values: dict[str, Any]) -> Spec:
    """Inverse of :func:`spec_to_dict`."""
    known = {f.name for f in fields(Spec)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ResultFileError(
            f"the saved model has fields {unknown} this bayesmix version does not know; "
            "load it with the version that saved it."
        )
    return Spec(**{k: _tuples(v) for k, v in values.items()})


def _common(result: MLResult | BayesResult) -> dict[str, Any]:
    from bayesmix import __version__

    design = result.design
    frame = design.frame.reset_index(drop=True)
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "bayesmix_version": __version__,
        "estimator": result.estimator,
        "spec": spec_to_dict(result.spec),
        "data": {
            "columns": [str(c) for c in frame.columns],
            "values": {str(c): _encode(frame[c].to_numpy()) for c in frame.columns},
            "n_dropped": design.n_dropped,
        },
    }


def _ml_payload(result: MLResult) -> dict[str, Any]:
    st = result.starts
    return {
        "names": list(result.names),
        "estimates": result.estimates,
        "se": result.se,
        "z": result.z,
        "p": result.p,
        "cov": result.cov,
        "loglik": result.loglik,
        "class_probabilities": result.class_probabilities,
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
        "between_probabilities": result.between_probabilities,
    }


def _labels(check: LabelCheck | None) -> Any:
    if check is None:
        return None
    return {
        "switched": check.switched,
        "permutations": [list(p) for p in check.permutations],
        "agreement": list(check.agreement),
    }


def _bayes_payload(result: BayesResult) -> dict[str, Any]:
    return {
        "names": list(result.names),
        "class_probabilities": result.class_probabilities,
        "between_probabilities": result.between_probabilities,
        "divergences": result.divergences,
        "labels": _labels(result.labels),
        "between_labels": _labels(result.between_labels),
        "priors": {k: asdict(v) for k, v in result.priors.items()},
        "settings": result.settings,
        "timings": result.timings,
    }


def save_result(result: MLResult | BayesResult, path: str | Path) -> Path:
    """Write a fit to disk.

    Parameters
    ----------
    result : MLResult or BayesResult
    path : str or Path
        For an ML fit, a JSON file (``.json`` is added when the name has
        no suffix); for a NUTS fit, a folder (created; an existing saved
        result there is replaced).

    Returns
    -------
    Path
        What was written.
    """
    import shutil

    import xarray as xr

    target = Path(path)
    if isinstance(result, MLResult):
        if not target.suffix:
            target = target.with_suffix(".json")
        payload = {**_common(result), "ml": _encode(_ml_payload(result))}
        target.write_text(json.dumps(payload), encoding="utf-8")
        return target
    if not isinstance(result, BayesResult):
        raise BayesmixError(
            f"save_result takes a fit_ml or fit_bayes result, got {type(result).__name__}."
        )
    if target.exists():
        if not (target / _JSON_NAME).exists():
            raise BayesmixError(
                f"{target} exists and is not a saved bayesmix result; give a new folder name."
            )
        shutil.rmtree(target)
    target.mkdir(parents=True)
    payload = {**_common(result), "bayes": _encode(_bayes_payload(result))}
    (target / _JSON_NAME).write_text(json.dumps(payload), encoding="utf-8")
    named = np.stack([result.draws[n] for n in result.names], axis=-1)
    tree = result.idata.copy()
    tree[_NAMED_GROUP] = xr.DataTree(
        xr.Dataset(
            {"draws": (("chain", "draw", "parameter"), named)},
            coords={"parameter": list(result.names)},
        )
    )
    # consolidated metadata is not part of the zarr v3 format; other readers need not know it
    tree.to_zarr(target / _IDATA_NAME, consolidated=False)
    return target


def _read_payload(path: Path) -> dict[str, Any]:
    file = path / _JSON_NAME if path.is_dir() else path
    if not file.exists():
        raise ResultFileError(f"{path} does not exist or holds no saved bayesmix result.")
    try:
        payload = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ResultFileError(f"{file} is not a saved bayesmix result ({err}).") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ResultFileError(f"{file} is not a saved bayesmix result.")
    if payload.get("format_version") != FORMAT_VERSION:
        raise ResultFileError(
            f"{file} has result format {payload.get('format_version')}; this bayesmix reads "
            f"format {FORMAT_VERSION}: load it with bayesmix {payload.get('bayesmix_version')}."
        )
    return payload


def _design(payload: dict[str, Any]) -> Any:
    from bayesmix.data import build_design

    spec = spec_from_dict(payload["spec"])
    data = payload["data"]
    frame = pd.DataFrame(
        {c: _decode(data["values"][c]) for c in data["columns"]}, columns=data["columns"]
    )
    design = build_design(spec, frame)
    return replace(design, n_dropped=int(data["n_dropped"]))


def _load_ml(payload: dict[str, Any]) -> MLResult:
    design = _design(payload)
    m = _decode(payload["ml"])
    st = m["starts"]
    between = m["between_probabilities"]
    return MLResult(
        spec=design.spec,
        design=design,
        names=tuple(m["names"]),
        estimates=_array(m["estimates"]),
        se=_array(m["se"]),
        z=_array(m["z"]),
        p=_array(m["p"]),
        cov=_array(m["cov"]),
        loglik=float(m["loglik"]),
        class_probabilities=_array(m["class_probabilities"]),
        starts=StartsReport(
            n_starts=int(st["n_starts"]),
            logliks=_array(st["logliks"]),
            replicated=int(st["replicated"]),
            converged=int(st["converged"]),
            seed=st["seed"],
            n_final=st["n_final"],
        ),
        converged=bool(m["converged"]),
        max_abs_gradient=float(m["max_abs_gradient"]),
        boundary=tuple(m["boundary"]),
        singular_information=bool(m["singular_information"]),
        diagnostics=tuple(m["diagnostics"]),
        elapsed_s=float(m["elapsed_s"]),
        timings={k: float(v) for k, v in m["timings"].items()},
        quadrature_points=m["quadrature_points"],
        between_probabilities=None if between is None else _array(between),
    )


def _label_check(values: Any) -> LabelCheck | None:
    if values is None:
        return None
    return LabelCheck(
        switched=bool(values["switched"]),
        permutations=tuple(tuple(int(i) for i in p) for p in values["permutations"]),
        agreement=tuple(float(a) for a in values["agreement"]),
    )


def _load_bayes(path: Path, payload: dict[str, Any]) -> BayesResult:
    import arviz_stats as azs
    import xarray as xr

    from bayesmix.priors import Prior

    design = _design(payload)
    b = _decode(payload["bayes"])
    tree = xr.open_datatree(path / _IDATA_NAME, engine="zarr", consolidated=False).load()
    named_ds = tree[_NAMED_GROUP].to_dataset()
    idata = xr.DataTree.from_dict(
        {f"/{name}": tree[name].to_dataset() for name in tree.children if name != _NAMED_GROUP}
    )
    names = tuple(b["names"])
    stacked = named_ds["draws"].values
    named = {n: stacked[:, :, k] for k, n in enumerate(names)}
    between = b["between_probabilities"]
    loo = azs.loo(idata, var_name="y_school" if between is not None else "y")
    return BayesResult.from_draws(
        spec=design.spec,
        design=design,
        idata=idata,
        named=named,
        chain_post=_array(b["class_probabilities"])[None],
        chain_between=None if between is None else _array(between)[None],
        divergences=int(b["divergences"]),
        labels=_label_check(b["labels"]),
        between_labels=_label_check(b["between_labels"]),
        loo=loo,
        priors={k: Prior(**v) for k, v in b["priors"].items()},
        settings=b["settings"],
        timings={k: float(v) for k, v in b["timings"].items()},
    )


def load_result(path: str | Path) -> MLResult | BayesResult:
    """Read a fit written by :func:`save_result` (or ``result.save``).

    Parameters
    ----------
    path : str or Path
        The JSON file of an ML fit or the folder of a NUTS fit.

    Returns
    -------
    MLResult or BayesResult
        With its design rebuilt from the saved rows, so summaries, tables
        and plots match the saved fit.
    """
    target = Path(path)
    payload = _read_payload(target)
    if payload.get("estimator") == "ml":
        return _load_ml(payload)
    if payload.get("estimator") == "bayes":
        if not target.is_dir():
            raise ResultFileError(
                f"{target} is the JSON part of a NUTS fit; load its folder {target.parent}."
            )
        return _load_bayes(target, payload)
    raise ResultFileError(f"{target}: unknown estimator {payload.get('estimator')!r}.")
