"""A Monte Carlo study's design and its JSON-lines file of replications.

The file starts with a header describing the study (generating model and
values, sizes, fitted models, estimator, seed, fit options); each later line
is one fitted model of one replication. A study resumes from its file only
when the header matches, so two studies are never mixed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bayesmix.errors import EstimationError
from bayesmix.model.spec import Spec


@dataclass(frozen=True)
class SimulationDesign:
    """What one replication simulates.

    Attributes
    ----------
    spec : Spec
        Generating model.
    params : dict
        Its population values by parameter name.
    n : int or None
        Observations (single-level models).
    clusters, cluster_size : int or None
        Two-level designs.
    """

    spec: Spec
    params: dict[str, float]
    n: int | None = None
    clusters: int | None = None
    cluster_size: int | None = None


def study_header(
    design: SimulationDesign,
    fits: Sequence[Spec],
    estimator: str,
    random_seed: int,
    fit_kwargs: Mapping[str, Any],
) -> dict[str, Any]:
    """What must not change between a study and its resumption."""
    return {
        "generate": repr(design.spec),
        "generate_params": {k: float(v) for k, v in sorted(design.params.items())},
        "size": [design.n, design.clusters, design.cluster_size],
        "fit": [repr(s) for s in fits],
        "estimator": estimator,
        "random_seed": random_seed,
        "fit_kwargs": json.loads(json.dumps(dict(fit_kwargs), default=repr, sort_keys=True)),
    }


def read_records(path: Path, header: dict[str, Any]) -> list[dict[str, Any]]:
    """Records already in ``path``, after checking it holds the same study.

    A file that is not a study's (a CSV, a binary file, another study) is
    refused before anything is written to it.
    """
    try:
        text = path.read_text(encoding="utf-8") if path.exists() else ""
    except UnicodeDecodeError:
        raise EstimationError(
            f"{path} is not a bayesmix Monte Carlo file (it is not UTF-8 text); give another "
            "out= file."
        ) from None
    if not text.strip():
        path.write_text(json.dumps({"study": header}) + "\n", encoding="utf-8")
        return []
    lines = [ln for ln in text.splitlines() if ln.strip()]
    rows = []
    cut = False
    for i, line in enumerate(lines):
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as err:
            if i == 0 or i < len(lines) - 1:
                raise EstimationError(
                    f"{path} is not a bayesmix Monte Carlo file (line {i + 1}: {err.msg}); "
                    "give another out= file."
                ) from None
            # the last line was cut short by an interruption: dropped once the header is checked
            cut = True
    saved = rows[0].get("study") if isinstance(rows[0], dict) else None
    if not isinstance(saved, dict):
        raise EstimationError(
            f"{path} does not start with a study header, so it cannot be resumed safely; "
            "give another out= file."
        )
    changed = [k for k in header if saved.get(k) != header[k]]
    if changed:
        diffs = "; ".join(
            f"{k} differs"
            if k in ("generate", "fit")
            else f"{k}: file {saved.get(k)!r}, now {header[k]!r}"
            for k in changed
        )
        raise EstimationError(
            f"{path} holds a different study ({diffs}). Resuming would mix two studies: "
            "give another out= file, or the same settings to resume."
        )
    for i, row in enumerate(rows[1:], start=2):
        if not (
            isinstance(row, dict) and isinstance(row.get("replication"), int) and "model" in row
        ):
            raise EstimationError(
                f"{path} line {i} is not a replication record ({lines[i - 1][:60]!r}); the "
                "file was edited or is damaged: give another out= file."
            )
    records = rows[1:]
    # a replication cut short between its models' records runs again, from a clean file
    models: dict[Any, set[Any]] = {}
    for r in records:
        models.setdefault(r["replication"], set()).add(r["model"])
    whole = [r for r in records if len(models[r["replication"]]) == len(header["fit"])]
    if cut or len(whole) < len(records):
        path.write_text("".join(json.dumps(r) + "\n" for r in [rows[0], *whole]), encoding="utf-8")
    return whole


def append_records(path: Path | None, records: list[dict[str, Any]]) -> None:
    """Append finished records to a study's file as JSON lines (nothing without a file)."""
    if path is None:
        return
    with path.open("a", encoding="utf-8") as fh:
        fh.write("".join(json.dumps(rec) + "\n" for rec in records))
