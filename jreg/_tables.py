"""Tables for the command line: reading a CSV file into columns, and encoding its feature
columns (learned on the training rows, applied to them and to new rows)."""

import csv
import pathlib
import sys

import numpy as np


class InputError(Exception):
    """Bad input: reported as one ``jreg: error: ...`` line on stderr, exit status 2."""


# --------------------------------------------------------------------------------------------
# Reading a CSV file: columns by name, each a float array (NaN where missing) or an object array
# of stripped strings (None where missing). Errors name data rows, counted from 1 after the
# header, blank lines skipped.

MISSING = frozenset(["", "NA", "N/A", "n/a", "NaN", "nan", "null", "NULL"])  # missing cells


def reason(error: Exception) -> str:
    reason = getattr(error, "strerror", None) or str(error)
    return " ".join(reason.split())  # one line (pandas' messages have newlines)


def read_header(source: pathlib.Path) -> list[str]:
    """The column names of a CSV file, checked to be unique."""
    try:
        with open(source, newline="", encoding="utf-8-sig") as file:  # -sig: skip a BOM
            header = [name.strip() for name in next(csv.reader(file), [])]
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise InputError(f"cannot read {source}: {reason(error)}") from None
    if len(set(header)) != len(header):
        raise InputError(f"{source} has duplicate column names: {', '.join(header)}")
    return header


def _cell(text: str) -> str | None:
    text = text.strip()
    return None if text in MISSING else text


def _read_plain(source: pathlib.Path, header: list[str]) -> dict[str, np.ndarray]:
    """The csv module's reading (without pandas): every column as strings."""
    try:
        with open(source, newline="", encoding="utf-8-sig") as file:
            rows = [row for row in csv.reader(file) if row][1:]
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise InputError(f"cannot read {source}: {reason(error)}") from None
    for i, row in enumerate(rows):
        if len(row) != len(header):
            raise InputError(
                f"{source}, data row {i + 1}: {len(row)} fields, the header has {len(header)}"
            )
    table = np.array([[_cell(text) for text in row] for row in rows], dtype=object)
    return {name: table[:, j] for j, name in enumerate(header)} if rows else {}


def _read_pandas(pandas, source, header, text) -> dict[str, np.ndarray]:
    """pandas' reading: its numeric columns as floats, the others (and ``text``) as strings."""
    try:
        frame = pandas.read_csv(
            source,
            header=0,
            names=header,
            index_col=False,
            encoding="utf-8-sig",
            na_values=sorted(MISSING),
            keep_default_na=False,
            skipinitialspace=True,
            dtype=dict.fromkeys(text, str),
        )
    except (OSError, ValueError) as error:  # pandas' parser errors are ValueErrors
        raise InputError(f"cannot read {source}: {reason(error)}") from None

    def column(series):
        if series.dtype.kind in "iuf":
            return series.to_numpy(dtype=float)
        cells = [None if value != value else _cell(str(value)) for value in series.tolist()]
        return np.array(cells, dtype=object)  # value != value: NaN, a missing cell

    return {name: column(frame[name]) for name in header} if len(frame) else {}


def read_csv(source: pathlib.Path, *, text=()) -> dict[str, np.ndarray]:
    """The columns of a CSV file with a header line (``text``: columns kept as strings).

    Read by pandas when it is installed (``pip install "jreg[cli]"``), else by the csv module,
    slower, which also rejects rows with too few fields (pandas reads them as missing values).
    """
    header = read_header(source)
    try:
        import pandas
    except ImportError:
        columns = _read_plain(source, header)
    else:
        columns = _read_pandas(pandas, source, header, text)
    if not columns:
        raise InputError(f"{source} has no data rows (a header line, then one row per sample)")
    return columns


def is_missing(column: np.ndarray) -> np.ndarray:
    return np.isnan(column) if column.dtype != object else np.equal(column, None)


def numbers_of(column: np.ndarray) -> np.ndarray | None:
    """The column as floats (NaN where missing), or None where a value is not a number."""
    if column.dtype != object:
        return column
    present = ~is_missing(column)
    numbers = np.full(column.shape, np.nan)
    try:
        numbers[present] = column[present].astype(float)
    except ValueError:
        return None
    return numbers


def is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def as_text(column: np.ndarray) -> np.ndarray:
    """The column as strings (None where missing); integers without a trailing ``.0``."""
    if column.dtype == object:
        return column
    return np.array(
        [None if v != v else str(int(v)) if v.is_integer() else repr(v) for v in column.tolist()],
        dtype=object,
    )


# --------------------------------------------------------------------------------------------
# Features: learned on the training rows (``_learn``), applied to them and to new rows
# (``_encode``). Each feature column is numeric, or categorical: one-hot, its first level (in
# sorted order) dropped, outputs named ``column=level``.


def locate(source, name, column, rows, bad) -> str:
    """``column 'x' of data.csv has the value 'v' on data row 3``: the first bad cell."""
    i = int(np.flatnonzero(bad)[0])
    text = as_text(column[i : i + 1])[0]
    value = "a missing value" if text is None else f"the value {text!r}"
    return f"column {name!r} of {source} has {value} on data row {rows[i]}"


def _check_numeric(name, column, source, rows) -> np.ndarray:
    """A numeric feature's values (NaN where missing); text and infinities are errors."""
    numbers = numbers_of(column)
    if numbers is None:
        text = np.array([v is not None and not is_number(v) for v in column])
        mixed = np.any(~text & ~is_missing(column))
        hint = "; list it in --categorical to one-hot encode it" if mixed else ""
        raise InputError(f"{locate(source, name, column, rows, text)} (not a number{hint})")
    if np.isinf(numbers).any():
        where = locate(source, name, numbers, rows, np.isinf(numbers))
        raise InputError(f"{where} (every value must be a finite number)")
    return numbers


def _is_text(column: np.ndarray) -> bool:
    """Text (for --categorical auto): no number among the column's values."""
    return numbers_of(column) is None and not any(is_number(v) for v in column if v is not None)


def learn(columns, features, *, categorical, source, rows) -> list[dict]:
    """Per feature column: ``{"column", "levels", "fill"}`` (categorical: its sorted levels and
    the most frequent, the first on ties) or ``{"column", "fill"}`` (numeric: its mean); ``fill``
    is None for a column without values. ``categorical``: the --categorical names, or None
    (auto: the text columns). A categorical column with a single level is left out (a note)."""
    learned = []
    for name in features:
        column = columns[name]
        if name in categorical if categorical is not None else _is_text(column):
            text = as_text(column)
            levels, counts = np.unique(text[~is_missing(text)].astype(str), return_counts=True)
            if levels.size == 1:
                note = f"column {name!r} has a single level ({levels[0]!r}): left out"
                print(f"jreg: note: {note}", file=sys.stderr)
                continue
            fill = str(levels[np.argmax(counts)]) if levels.size else None
            learned.append({"column": name, "levels": levels.tolist(), "fill": fill})
        else:
            numbers = _check_numeric(name, column, source, rows)
            present = numbers[~np.isnan(numbers)]
            learned.append(
                {"column": name, "fill": float(present.mean()) if present.size else None}
            )
    if not learned:
        raise InputError(f"{source} has no feature columns besides the target")
    return learned


def encode(columns, learned, *, missing, source, rows) -> tuple[np.ndarray, list[str]]:
    """The feature matrix and its column names. Missing values: an error (``"error"``), NaN in
    the row (``"drop"``), or the learned fill (``"mean"``); an unknown level: all the column's
    dummies 0 (a warning)."""
    blocks, names = [], []
    for feature in learned:
        name, column = feature["column"], columns[feature["column"]]
        absent = is_missing(column)
        if absent.any() and missing == "error":
            where = locate(source, name, column, rows, absent)
            raise InputError(f"{where} (--missing drop or mean handles missing values)")
        if absent.any() and missing == "mean" and feature["fill"] is None:
            raise InputError(f"column {name!r} of {source} has no values to take a mean of")
        if "levels" in feature:
            text = as_text(column)
            if missing == "mean":
                text = np.where(absent, feature["fill"], text)
            known = set(feature["levels"])
            unknown = np.array([v is not None and v not in known for v in text])
            if unknown.any():
                where = locate(source, name, text, rows, unknown)
                print(
                    f"jreg: warning: {where}, a level not seen in fitting: {unknown.sum()} of "
                    f"{len(text)} rows get all the dummies of {name!r} 0",
                    file=sys.stderr,
                )
            dummies = feature["levels"][1:]
            block = (text[:, None] == np.array(dummies, dtype=object)).astype(float)
            block[np.equal(text, None)] = np.nan
            names += [f"{name}={level}" for level in dummies]
        else:
            numbers = _check_numeric(name, column, source, rows)
            if missing == "mean":
                numbers = np.where(absent, feature["fill"], numbers)
            block = numbers[:, None]
            names.append(name)
        blocks.append(block)
    return np.hstack(blocks), names
