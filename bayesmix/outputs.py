"""Output paths: checked before any work is done, written atomically.

Every file or folder bayesmix writes (``save``, the CLI's ``--json`` and
``--out``) goes through this module:

* :func:`check_output` runs before the fit or simulation, so that a long
  run is not lost to a missing folder, an unwritable path, a path naming one
  of the command's own inputs, or an existing file that is not a bayesmix
  output;
* :func:`write_file` and :func:`write_folder` write to a temporary name in
  the target's folder and rename it onto the target only when it is
  complete, so that an error or Ctrl-C midway leaves the old target intact
  and no partial file behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import stat
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Literal

from bayesmix.errors import BayesmixError

RESULT_FORMAT = "bayesmix-result"
"""``format`` of a saved result's JSON (:mod:`bayesmix.results.persist`)."""

CLI_FORMAT = "bayesmix-fit"
"""``format`` of the JSON written by ``bayesmix fit --json``."""

RESULT_JSON = "result.json"
"""The JSON file inside a saved NUTS result folder."""

_FORMATS = (RESULT_FORMAT, CLI_FORMAT)


class OutputError(BayesmixError, OSError):
    """An output path cannot or may not be written."""


def _json_format(file: Path) -> str | None:
    """The ``format`` marker of a JSON file, or None when it is not a bayesmix JSON."""
    try:
        with file.open("rb") as fh:
            # anything that does not open as a JSON object (a CSV, a binary file) is not ours,
            # and is not read to its end to find that out
            head = fh.read(1).lstrip()
            if head != b"{":
                return None
            payload = json.loads(b"{" + fh.read())
    except (OSError, ValueError):
        return None
    value = payload.get("format") if isinstance(payload, dict) else None
    return value if value in _FORMATS else None


def is_bayesmix_output(path: str | Path) -> bool:
    """Whether ``path`` is something bayesmix wrote and may replace.

    That is a saved result (a JSON file or a NUTS result folder holding
    ``result.json``) or the JSON of ``bayesmix fit --json``. A CSV written
    by ``bayesmix simulate`` carries no marker and is not recognised.
    """
    target = Path(path)
    if target.is_dir():
        return (target / RESULT_JSON).is_file() and _json_format(
            target / RESULT_JSON
        ) == RESULT_FORMAT
    return target.is_file() and _json_format(target) is not None


def _same_file(a: Path, b: Path) -> bool:
    if a.resolve() == b.resolve():
        return True
    try:
        return os.path.samefile(a, b)  # hard links and other aliases
    except OSError:
        return False


def _ensure_folder(folder: Path, label: str, target: Path) -> None:
    """Create ``folder`` (and its parents) and prove it writable with a probe file."""
    if folder.exists() and not folder.is_dir():
        raise OutputError(
            f"{label} {str(target)!r}: {str(folder)!r} is a file, not a folder; give a path "
            "in an existing folder or one that can be created."
        )
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputError(
            f"{label} {str(target)!r}: cannot create the folder {str(folder)!r} "
            f"({err.strerror or err}); give a path in a folder you can write to."
        ) from None
    probe = folder / f".bayesmix-probe-{secrets.token_hex(6)}"
    try:
        fd = os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except OSError as err:
        raise OutputError(
            f"{label} {str(target)!r}: the folder {str(folder)!r} is not writable "
            f"({err.strerror or err}); give a path in a folder you can write to."
        ) from None
    os.close(fd)
    os.unlink(probe)


def check_output(
    path: str | Path,
    *,
    kind: Literal["file", "folder"] = "file",
    label: str = "output",
    inputs: Iterable[tuple[str, str | Path]] = (),
    overwrite: bool = False,
    force_hint: str = "pass overwrite=True",
    replace_outputs: bool = True,
    example: str = "result.json",
) -> Path:
    """Check an output path before the work that will fill it.

    Parameters
    ----------
    path : str or Path
        Where the output will go.
    kind : {"file", "folder"}
        What will be written there.
    label : str
        How messages name the path (``"--json"``, ``"save path"``).
    inputs : iterable of (str, path)
        The command's input files with their names (``("--data", "fig1.csv")``);
        the output may not be one of them, whatever ``overwrite`` says.
    overwrite : bool
        Replace an existing file that is not a bayesmix output.
    force_hint : str
        What the user does to overwrite (``"pass --force"`` on the CLI).
    replace_outputs : bool
        Whether an existing bayesmix output (a saved result, a ``--json``
        file) is replaced without ``overwrite``.
    example : str
        A file name that messages suggest in a folder given where a file is
        wanted (``"simulated.csv"`` for a CSV).

    Returns
    -------
    Path
        The path, with its folder created.

    Raises
    ------
    OutputError
        When the folder cannot be created or written, the path is a folder
        where a file is wanted (or a file where a folder is), the path is
        one of ``inputs``, or it holds something that is not a bayesmix
        output and ``overwrite`` is false. An existing folder that is not a
        saved result and is not empty is never replaced: deleting a folder
        of someone's files is not a thing to do on a flag.
    """
    if str(path) == "":  # Path("") is the current folder, which no one means by an empty name
        raise OutputError(f"{label} is an empty path; give a file name such as {example!r}.")
    target = Path(path)
    for name, source in inputs:
        if Path(source).exists() and _same_file(target, Path(source)):
            raise OutputError(
                f"{label} {str(target)!r} is the {name} input of this command, which "
                "writing would destroy; give another path."
            )
    _ensure_folder(target.parent if str(target.parent) else Path("."), label, target)
    if not target.exists() and not target.is_symlink():
        return target
    ours = is_bayesmix_output(target)
    if kind == "file":
        if target.is_dir():
            raise OutputError(
                f"{label} {str(target)!r} is a folder; give a file name (e.g. "
                f"{str(target / example)!r})."
            )
        if (ours and replace_outputs) or overwrite:
            return target
        what = "exists" if ours else "exists and is not a bayesmix output"
        raise OutputError(
            f"{label} {str(target)!r} {what}; give a new name, or {force_hint} to replace it."
        )
    if not target.is_dir():
        if overwrite:
            return target
        raise OutputError(
            f"{label} {str(target)!r} is a file, and a folder is written there; give a new "
            f"name, or {force_hint} to replace the file."
        )
    if ours:
        return target
    if any(target.iterdir()):
        raise OutputError(
            f"{label} {str(target)!r} is a folder that is not a saved bayesmix result and is "
            "not empty; give a new folder name (its contents are not deleted, even when "
            "asked to overwrite)."
        )
    if not overwrite:
        raise OutputError(
            f"{label} {str(target)!r} exists and is not a saved bayesmix result; give a new "
            f"name, or {force_hint} to use the empty folder."
        )
    return target


def check_folder(path: str | Path, *, label: str = "--out") -> Path:
    """Check that ``path`` is, or can be created as, a writable folder; create it."""
    if str(path) == "":
        raise OutputError(
            f"{label} is an empty path; give a folder name such as 'bayesmix-output' (or '.' "
            "for the current folder)."
        )
    target = Path(path)
    _ensure_folder(target, label, target)
    return target


def _temporary(folder: Path, name: str, suffix: str) -> Path:
    return folder / f".{name}.{secrets.token_hex(6)}{suffix}"


def _sync_folder(folder: Path) -> None:
    # the rename itself is made durable by syncing the folder; not every file system
    # allows opening a folder, and the write is complete without it
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_file(path: str | Path, content: str | Callable[[IO[str]], None]) -> Path:
    """Write a text file atomically.

    Parameters
    ----------
    path : str or Path
        The target; checked beforehand with :func:`check_output`.
    content : str or callable
        The text, or a function writing it to the open file.

    Returns
    -------
    Path
        The target.

    Notes
    -----
    The text goes to a temporary file in the target's folder, is flushed to
    disk and renamed onto the target (``os.replace``). On any failure,
    ``KeyboardInterrupt`` included, the temporary file is removed and the
    old target is left as it was. A replaced file keeps its permissions.
    """
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    while True:
        tmp = _temporary(folder, target.name, ".tmp")
        try:
            # mode 0o666 less the umask, as a plain open() would create it
            fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
            break
        except FileExistsError:
            continue
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            if callable(content):
                content(fh)
            else:
                fh.write(content)
            fh.flush()
            os.fsync(fh.fileno())
        if target.is_file():
            os.chmod(tmp, stat.S_IMODE(target.stat().st_mode))
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _sync_folder(folder)
    return target


def write_folder(path: str | Path, fill: Callable[[Path], None]) -> Path:
    """Write a folder atomically.

    Parameters
    ----------
    path : str or Path
        The target folder; checked beforehand with :func:`check_output`.
    fill : callable
        Writes the folder's contents into the (temporary) folder it is given.

    Returns
    -------
    Path
        The target.

    Notes
    -----
    ``fill`` writes a temporary sibling folder. Only when it is complete is
    an existing target moved aside, the new folder renamed into place and
    the old one deleted; on any failure (``KeyboardInterrupt`` included)
    the temporary folder is removed and the old target is left as it was.
    """
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    tmp = _temporary(folder, target.name, ".tmp")
    old = None
    try:
        tmp.mkdir()
        fill(tmp)
        if target.exists():
            old = _temporary(folder, target.name, ".old")
            os.replace(target, old)
        os.replace(tmp, target)
    except BaseException:
        if old is not None and not target.exists():
            os.replace(old, target)
            old = None
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        if old is not None and target.exists():
            if old.is_dir():
                shutil.rmtree(old, ignore_errors=True)
            else:
                old.unlink(missing_ok=True)
    _sync_folder(folder)
    return target
