"""Reading data: a DataFrame as is, a bundled data set by name, or a CSV file.

A CSV file that is not what it should be (empty, not UTF-8, separated by
semicolons or tabs, a repeated column name) is refused or warned about with
what to do instead.
"""

from __future__ import annotations

import csv
import difflib
import warnings
from pathlib import Path

import pandas as pd

from bayesmix.data.datasets import BUNDLED
from bayesmix.errors import DataError, DataWarning, type_name

DataLike = pd.DataFrame | str | Path


def resolve_data(data: DataLike) -> pd.DataFrame:
    """Turn a DataFrame, a CSV path or a bundled data set name into a DataFrame.

    Parameters
    ----------
    data : DataFrame, str or Path
        A DataFrame is returned as is; a string naming a bundled data set
        (``"hsb"``) loads it; any other string or path is read as CSV.

    Returns
    -------
    pandas.DataFrame

    Raises
    ------
    DataError
        For a name that is neither a file nor a bundled data set, a folder,
        a file that cannot be read as CSV, an empty file, one that is not
        UTF-8 text, one whose header is separated by ``;``, tabs or ``|``
        rather than commas, or one with column names but no rows.

    Warns
    -----
    DataWarning
        When the CSV header repeats a column name (pandas renames the later
        ones ``x.1``, ``x.2``...).
    """
    if isinstance(data, pd.DataFrame):
        return data
    if isinstance(data, (str, Path)):
        key = str(data)
        if key == "":  # Path("") is the current folder
            raise DataError(
                f"data {key!r} is an empty name; give a CSV file or a bundled data set "
                f"({sorted(BUNDLED)})."
            )
        if key.lower() in BUNDLED:
            return BUNDLED[key.lower()]()
        path = Path(key)
        if path.is_dir():
            raise DataError(
                f"data {key!r} is a folder; give a CSV file in it, or a bundled data set "
                f"({sorted(BUNDLED)})."
            )
        if not path.is_file():
            close = difflib.get_close_matches(key.lower(), sorted(BUNDLED), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise DataError(
                f"data {key!r} is neither a CSV file nor a bundled data set; bundled data "
                f"sets are {sorted(BUNDLED)}.{hint}"
            )
        header, first_row = _first_rows(path)
        _check_separator(key, header, first_row)
        try:
            frame = pd.read_csv(path)
        except pd.errors.EmptyDataError:
            raise DataError(
                f"{key!r} is empty: it has no header line of column names and no rows; check "
                "that the file was written completely, or give the file that holds the data."
            ) from None
        except UnicodeDecodeError:
            raise DataError(_not_utf8(key, path)) from None
        except pd.errors.ParserError as err:
            raise DataError(f"cannot read {key!r} as CSV: {err}") from None
        if len(frame) == 0:
            raise DataError(
                f"{key!r} has column names {[str(c) for c in frame.columns]} but no rows; "
                "check that the file was written completely, or give the file that holds "
                "the data."
            )
        _warn_duplicate_header(key, header, frame)
        return frame
    raise DataError(
        f"data must be a pandas DataFrame, a CSV path or one of {sorted(BUNDLED)}, "
        f"got {type_name(data)}."
    )


def _not_utf8(key: str, path: Path) -> str:
    """Where a file stops being UTF-8 text, and what to do about it."""
    raw = path.read_bytes()
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as err:
        # pandas reports the position within the chunk it was decoding; this is the file's
        line = raw.count(b"\n", 0, err.start) + 1
        where = (
            f": line {line} holds the byte 0x{raw[err.start]:02x} at offset {err.start}, which "
            "UTF-8 does not allow there"
        )
    else:  # pandas found a fault that Python's decoder does not see
        where = ""
    return (
        f"{key!r} is not UTF-8 text{where}; save the file as UTF-8 (e.g. 'CSV UTF-8' in a "
        f"spreadsheet), or read it with pandas.read_csv({key!r}, encoding='latin-1') and pass "
        "the DataFrame."
    )


# separators that users' files have instead of commas, as messages name them
SEPARATORS = {";": "';'", "\t": "tabs", "|": "'|'"}


def _first_rows(path: Path) -> tuple[list[str], str]:
    """The header fields of a CSV file (as the csv module splits them) and its second line."""
    with path.open(encoding="utf-8-sig", errors="replace", newline="") as handle:
        lines = [handle.readline(), handle.readline()]
    header = next(csv.reader([lines[0]]), [])
    return header, lines[1]


def _check_separator(key: str, header: list[str], first_row: str) -> None:
    """Name the separator of a file whose header is one field split by ';', tabs or '|'."""
    if len(header) != 1:
        return
    for sep, shown in SEPARATORS.items():
        if len([p for p in header[0].split(sep) if p.strip()]) > 1:
            # a ';'-separated file usually comes with decimal commas (1,5)
            decimal = ", decimal=','" if "," in first_row else ""
            raise DataError(
                f"{key!r} is separated by {shown}, not by commas (its header is "
                f"{header[0].strip()!r}); save it comma-separated, or read it with "
                f"pandas.read_csv({key!r}, sep={sep!r}{decimal}) and pass the DataFrame."
            )


def _warn_duplicate_header(key: str, header: list[str], frame: pd.DataFrame) -> None:
    """Warn when the CSV header repeats a name, which pandas renames silently."""
    if len(header) != len(frame.columns):
        return
    positions: dict[str, list[int]] = {}
    for i, name in enumerate(header):
        positions.setdefault(name.strip(), []).append(i)
    for name, where in positions.items():
        if len(where) < 2 or not name:
            continue
        renamed = [str(frame.columns[i]) for i in where[1:]]
        warnings.warn(
            f"{key!r} has {len(where)} columns named {name!r} (columns "
            f"{', '.join(str(i + 1) for i in where)}); pandas renamed the later ones "
            f"{', '.join(map(repr, renamed))}, and a model that names {name!r} uses the "
            "first of them: rename the columns in the file so that each name is used once.",
            DataWarning,
            stacklevel=4,
        )
