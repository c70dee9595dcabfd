"""The paper's model files, shipped inside the package.

The TOML files live in ``bayesmix/model/bundled/`` and are installed with the
package; the checkout's top-level ``models/`` folder is a link to the same
folder, so the catalogue users read and the files the package reads are one
copy. :func:`model_file` finds a file by its name wherever bayesmix is
installed, e.g. ``bm.load_spec(bm.model_file("fig1"))``.
"""

from __future__ import annotations

import atexit
from contextlib import ExitStack
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from bayesmix.errors import SpecError

_FOLDER = "bundled"

# Holds the temporary copies made when the package is not on the file system
# (e.g. imported from a zip file); they are removed when the interpreter exits.
_EXTRACTED = ExitStack()
atexit.register(_EXTRACTED.close)


def _folder() -> Traversable:
    return resources.files("bayesmix.model").joinpath(_FOLDER)


def model_names() -> tuple[str, ...]:
    """The names of the bundled model files, sorted.

    Returns
    -------
    tuple of str
        File names without ``.toml``, e.g. ``("conventional", "fig1", ...)``.
    """
    return tuple(
        sorted(
            entry.name.removesuffix(".toml")
            for entry in _folder().iterdir()
            if entry.name.endswith(".toml") and entry.is_file()
        )
    )


def model_file(name: str) -> Path:
    """The path of a bundled model file, to give to :func:`bayesmix.load_spec`.

    Parameters
    ----------
    name : str
        A name from :func:`model_names`, with or without ``.toml``, e.g.
        ``"fig1"`` or ``"hsb_B.toml"``.

    Returns
    -------
    pathlib.Path
        The file inside the installed package (a temporary copy that lasts
        until the interpreter exits when the package is not on the file
        system).

    Raises
    ------
    SpecError
        If ``name`` is not the name of a bundled model; the message lists them.

    Examples
    --------
    >>> import bayesmix as bm
    >>> spec = bm.load_spec(bm.model_file("fig1"))
    >>> spec.classes
    2
    """
    names = model_names()
    stem = name.removesuffix(".toml") if isinstance(name, str) else None
    if stem not in names:
        raise SpecError(
            f"no bundled model named {name!r}; the bundled models are {', '.join(names)}."
        )
    resource = _folder().joinpath(f"{stem}.toml")
    if isinstance(resource, Path):
        return resource
    return _EXTRACTED.enter_context(resources.as_file(resource))


__all__ = ["model_file", "model_names"]
