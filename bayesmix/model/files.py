"""Model files: reading one as TOML, and the tables and keys it may hold.

The layout of a model file is described in :mod:`bayesmix.model.spec`; its
settings become a :class:`~bayesmix.model.spec.Spec` there.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from os import PathLike
from pathlib import Path
from typing import Any

from bayesmix.errors import SpecError, type_name
from bayesmix.model.catalogue import model_file, model_names

TOP_KEYS = {
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
    "weights",
    "constraints",
}
OUTCOME_KEYS = {
    "formula",
    "class_varying",
    "residual_variance",
    "order_classes_by",
    "residual_covariates",
    "residual_groups",
}
MEMBERSHIP_KEYS = {"formula", "random"}
RANDOM_KEYS = {"terms", "covariance"}
BETWEEN_KEYS = {"classes", "formula", "varying"}


def check_keys(table: Mapping[str, Any], valid: set[str], where: str) -> None:
    """Refuse keys of a model file's table that are not settings, listing those that are.

    Parameters
    ----------
    table : mapping
        The table, as parsed.
    valid : set of str
        Its valid keys.
    where : str
        The file and table, for the message.
    """
    unknown = sorted(set(table) - valid)
    if unknown:
        raise SpecError(f"{where}: unknown key(s) {unknown}; valid keys are {sorted(valid)}.")


def model_table(doc: Mapping[str, Any], key: str, source: str) -> Mapping[str, Any]:
    """A table of a model file, empty when the file has none.

    Parameters
    ----------
    doc : mapping
        The parsed file.
    key : str
        The table's name.
    source : str
        The file, for the message.

    Returns
    -------
    mapping
        The table.
    """
    value = doc.get(key, {})
    if not isinstance(value, Mapping):
        raise SpecError(f"{source}: [{key}] must be a table.")
    return value


def model_tables(
    doc: Mapping[str, Any], source: str
) -> tuple[Mapping[str, Any], Mapping[str, Any], Mapping[str, Any], Mapping[str, Any]]:
    """The [outcome], [membership], [random] and [between] tables of a model file, checked.

    Parameters
    ----------
    doc : mapping
        The parsed file.
    source : str
        The file, for messages.

    Returns
    -------
    tuple of mapping
        The four tables, each empty where the file has none but [outcome].

    Raises
    ------
    SpecError
        If a table holds an unknown key, or [outcome] or its formula is missing.
    """
    check_keys(doc, TOP_KEYS, source)
    if "outcome" not in doc or not isinstance(doc["outcome"], Mapping):
        raise SpecError(f"{source}: needs an [outcome] table with a 'formula'.")
    outcome = doc["outcome"]
    check_keys(outcome, OUTCOME_KEYS, f"{source} [outcome]")
    if "formula" not in outcome:
        raise SpecError(f"{source} [outcome]: needs a 'formula' such as \"y ~ x\".")
    membership = model_table(doc, "membership", source)
    check_keys(membership, MEMBERSHIP_KEYS, f"{source} [membership]")
    random = model_table(doc, "random", source)
    check_keys(random, RANDOM_KEYS, f"{source} [random]")
    between = model_table(doc, "between", source)
    check_keys(between, BETWEEN_KEYS, f"{source} [between]")
    return outcome, membership, random, between


def _bundled_hint(path: Path) -> str:
    """Where the package's copy of a missing model file is, when its name is a bundled one."""
    stem = path.name.removesuffix(".toml")
    if path.suffix not in ("", ".toml") or stem not in model_names():
        return ""
    return f"; bayesmix ships {stem!r} as {str(model_file(stem))!r} (bayesmix.model_file({stem!r}))"


def read_model_file(path: Any) -> dict[str, Any]:
    """Read and parse a TOML model file, refusing what is not one with the reason.

    Parameters
    ----------
    path : str or PathLike
        The file; anything else is refused with a :class:`SpecError`.

    Returns
    -------
    dict
        The parsed document.

    Raises
    ------
    SpecError
        If the path is not a path, is empty, is a folder, does not exist, cannot
        be read as UTF-8 text or is not valid TOML.
    """
    if not isinstance(path, str | PathLike):
        raise SpecError(
            f"load_spec needs the path of a model file such as 'models/fig1.toml', got "
            f"{type_name(path)} {path!r}."
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
    return doc
