"""Reading the batch job's inputs and writing its result.

Positions file (Parquet or CSV): one row per position, with a column per grouping level
(``desk``, ``book``, ...), an ``asset`` column naming a column of the scenario table, an
``amount`` column (signed exposure in currency) and optionally an ``id`` column, which
messages quote.  It is read in chunks, never whole: see :func:`position_chunks`.

Scenario table (Parquet or CSV): rows = scenarios (e.g. dates), one named column per asset
holding that asset's return in the scenario; columns no position holds are ignored, as is a
first column named ``date`` or ``scenario``.  It is read whole (2,500 x 1,000 is 20 MB).

Every problem is a :class:`ValueError` naming the file, the row (1-based, header excluded;
for CSV also the line, counting one line per row: a blank line or a quoted line break
before it shifts the count) and the column.  A file that cannot be parsed at all (empty, not
Parquet, a CSV row with more or fewer fields than the header) is refused with its name; so
are two columns of one name (pandas would rename the second ``A.1``).  CSV files are parsed
by pyarrow, which checks every row's number of fields while reading only the columns
needed.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

__all__ = [
    "FORMATS",
    "file_format",
    "file_columns",
    "check_columns",
    "position_chunks",
    "row_count",
    "row_groups",
    "read_row_group",
    "read_scenarios",
    "scenario_assets",
    "as_numbers",
    "where",
    "write_result",
]

#: file suffix -> format
FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".xlsx": "xlsx"}

#: scenario-table columns that label the rows rather than hold an asset's returns
LABEL_COLUMNS = ("date", "scenario")


def file_format(path, allowed=("parquet", "csv")) -> str:
    """``"parquet"``, ``"csv"`` (or ``"xlsx"`` if allowed) from the file's suffix."""
    kind = FORMATS.get(Path(path).suffix.lower())
    if kind not in allowed:
        raise ValueError(f"{path}: unknown file type {Path(path).suffix!r}; expected one of "
                         + ", ".join(s for s, k in FORMATS.items() if k in allowed))
    return kind


def _exists(path) -> Path:
    path = Path(path)
    if not path.exists():
        raise ValueError(f"{path}: no such file")
    if not path.is_file():
        kind = "a folder" if path.is_dir() else "not a regular file (a FIFO, device or socket)"
        raise ValueError(f"{path}: is {kind}; expected a Parquet or CSV file")
    return path


@contextlib.contextmanager
def _parsing(path):
    """Name the file in what pandas or pyarrow says of one it cannot parse."""
    try:
        yield
    except ValueError as exc:
        if str(exc).startswith(f"{path}:"):
            raise
        raise ValueError(f"{path}: cannot be read as {file_format(path)} ({' '.join(str(exc).split())})") from exc
    except (pa.ArrowException, UnicodeDecodeError, OSError) as exc:
        raise ValueError(f"{path}: cannot be read as {file_format(path)} ({' '.join(str(exc).split())})") from exc


def file_columns(path) -> list[str]:
    """Column names of a Parquet or CSV file, read from its schema or header only (as
    written: a CSV header's names are not renamed); two columns of one name are refused."""
    path = _exists(path)
    with _parsing(path):
        if file_format(path) == "parquet":
            names = [str(n) for n in pq.read_schema(path).names]
        else:
            header = pd.read_csv(path, header=None, nrows=1, dtype=str, keep_default_na=False)
            names = [str(n) for n in header.iloc[0]] if len(header) else []
    if not names:
        raise ValueError(f"{path}: has no columns (an empty file?)")
    seen = set()
    for name in names:
        if name in seen and name.strip():  # blank names (empty columns an export adds) are no column to read
            raise ValueError(f"{path}: has two columns named {name!r}; expected each column once")
        seen.add(name)
    return names


def check_columns(path, needed: dict) -> None:
    """Raise if a column is missing; ``needed`` maps column name -> what it is for."""
    have = file_columns(path)
    for column, role in needed.items():
        if column not in have:
            raise ValueError(
                f"{path}: has no column {column!r} ({role}); its columns are {', '.join(map(str, have))}"
            )


def csv_dtypes(labels, amount) -> dict:
    """How a CSV's columns are read on Dask: labels as categories, amounts as text (checked
    later)."""
    return {**{c: "category" for c in labels}, amount: "str"}


#: How Dask reads a CSV's blocks: with pyarrow's parser, which refuses a row of more fields
#: than the header even when only some columns are read (pandas' own parser, given
#: ``usecols``, cuts such a row short without a word: an unquoted ``1,500`` read as 1); a
#: blank field is blank, the text "NA" is text.
CSV_OPTIONS = {"engine": "pyarrow", "keep_default_na": False, "na_values": [""]}


def _csv_options(columns, labels=(), block_size=None):
    """pyarrow's options for a CSV read of ``columns`` as text (``labels`` as categories),
    every row checked to have the header's number of fields, a quoted line break allowed, a
    blank field null; blank lines skipped."""
    types = {c: (pa.dictionary(pa.int32(), pa.string()) if c in labels else pa.string()) for c in columns}
    read = pacsv.ReadOptions(block_size=block_size) if block_size else pacsv.ReadOptions()
    parse = pacsv.ParseOptions(newlines_in_values=True)
    convert = pacsv.ConvertOptions(include_columns=list(columns), column_types=types, strings_can_be_null=True,
                                   null_values=[""], quoted_strings_can_be_null=False)
    return {"read_options": read, "parse_options": parse, "convert_options": convert}


def _block_size(path, rows: int) -> int:
    """Bytes of a CSV block of about ``rows`` rows (from the first 64 KiB), 64 KiB to 256 MiB."""
    with open(path, "rb") as handle:
        head = handle.read(1 << 16)
    per_row = max(len(head) / max(head.count(b"\n"), 1), 1.0)
    return int(min(max(rows * per_row, 1 << 16), 1 << 28))


def position_chunks(path, columns, amount, chunk_rows=1_000_000):
    """Yield the positions file as DataFrames of about ``chunk_rows`` rows (the columns asked
    for; a CSV is read in blocks of about that many rows, the columns asked for only, every
    row checked for its number of fields)."""
    path = _exists(path)
    columns = list(dict.fromkeys(columns))
    labels = [c for c in columns if c != amount]
    with _parsing(path):
        if file_format(path) == "parquet":
            source = pq.ParquetFile(path, read_dictionary=labels)  # labels as categories: cheap to group
            for batch in source.iter_batches(batch_size=chunk_rows, columns=columns):
                yield batch.to_pandas()
        else:
            reader = pacsv.open_csv(path, **_csv_options(columns, labels, _block_size(path, chunk_rows)))
            for batch in reader:
                yield batch.to_pandas()


def row_count(path) -> int | None:
    """Rows of a Parquet file from its footer; ``None`` for CSV (not known before reading)."""
    return pq.ParquetFile(_exists(path)).metadata.num_rows if file_format(path) == "parquet" else None


def row_groups(path) -> int:
    """Number of row groups of a Parquet file (the Dask path's partitions)."""
    return pq.ParquetFile(_exists(path)).num_row_groups


def read_row_group(path, index: int, columns, amount) -> pd.DataFrame:
    """One row group of a Parquet positions file, labels as categories."""
    labels = [c for c in columns if c != amount]
    return pq.ParquetFile(path, read_dictionary=labels).read_row_group(index, columns=list(columns)).to_pandas()


def where(path, row: int, column: str, ident=None) -> str:
    """``file: row r (line l), id ..., column 'c'`` for a 0-based data row."""
    line = f" (line {row + 2})" if file_format(path) == "csv" else ""
    label = f", id {ident!r}" if ident is not None else ""
    return f"{path}: row {row + 1}{line}{label}, column {column!r}"


def scenario_assets(path) -> list[str]:
    """The asset columns of the scenario table, from its schema or header only: every column
    but a first one named ``date`` or ``scenario``."""
    names = file_columns(path)
    return names[1:] if names and names[0].strip().lower() in LABEL_COLUMNS else names


def read_scenarios(path, assets=None) -> pd.DataFrame:
    """The scenario table as floats: rows = scenarios, one column per asset.

    ``assets``, if given, are the columns kept (in the table's order); a label column
    (``date``/``scenario``) and assets nobody holds are dropped, unchecked.  A cell that is
    not a finite number raises, naming the file, row and column.
    """
    names = scenario_assets(path)  # checks the header: two columns of one name are refused
    wanted = names if assets is None else [c for c in names if c in set(assets)]
    with _parsing(path):
        if file_format(path) == "parquet":
            table = pd.read_parquet(path, columns=wanted)
        else:  # every row checked for its number of fields, the columns wanted read only
            table = pacsv.read_csv(path, **_csv_options(wanted)).to_pandas()
    table.columns = [str(c) for c in table.columns]
    if table.shape[0] < 2:
        raise ValueError(f"{path}: has {table.shape[0]} scenario rows; at least 2 are needed")
    out = {}
    for column in table.columns:
        raw = table[column]
        values, kind = as_numbers(raw)
        if values is None:
            raise ValueError(f"{where(path, 0, column)}: holds {kind}; expected finite numbers (returns)")
        bad = ~np.isfinite(values)
        if bad.any():
            row = int(np.argmax(bad))
            raise ValueError(f"{where(path, row, column)}: holds {_show(raw.iloc[row])}; expected a finite number (a return)")
        out[column] = values
    return pd.DataFrame(out, index=table.index)


#: What pandas infers a column of Python objects to hold, for the kinds that are not numbers
#: though pandas turns them into numbers (true/false as 1/0, a date as nanoseconds).
_NOT_NUMBERS = {
    "boolean": "true/false values", "datetime": "dates", "datetime64": "dates", "date": "dates",
    "timedelta": "durations", "timedelta64": "durations", "time": "times of day",
    "period": "periods", "interval": "intervals",
}


def as_numbers(raw: pd.Series):
    """``(values as floats, None)`` for a column of numbers or of text (text that is not a
    number becomes NaN, for the caller to name), else ``(None, what it holds)``: a column of
    dates, durations or true/false values (a Parquet file's, or a mistaken column) is
    refused, not read as nanoseconds or 1/0."""
    dtype = raw.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        raw, dtype = raw.astype(object), np.dtype(object)
    if pd.api.types.is_bool_dtype(dtype):
        return None, "true/false values"
    if pd.api.types.is_float_dtype(dtype) or pd.api.types.is_integer_dtype(dtype):
        return raw.to_numpy(dtype=float, na_value=np.nan), None
    if pd.api.types.is_object_dtype(dtype) or pd.api.types.is_string_dtype(dtype):
        kind = pd.api.types.infer_dtype(raw, skipna=True)
        if kind in _NOT_NUMBERS:
            return None, _NOT_NUMBERS[kind]
        return pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float, na_value=np.nan), None
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return None, f"dates ({dtype})"
    if pd.api.types.is_timedelta64_dtype(dtype):
        return None, f"durations ({dtype})"
    return None, f"values of type {dtype}"


def _show(value) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)) or (isinstance(value, str) and not value.strip()):
        return "a blank"
    if isinstance(value, str):
        return f"the text {value!r}"
    return f"{value!r}"


def write_result(table: pd.DataFrame, path, kind: str | None = None) -> Path:
    """Write the result as Parquet, CSV or xlsx (``kind``, by default from the suffix; the
    command line writes a temporary file and renames it over ``-o``).  In xlsx every label
    is text: one that starts with ``=`` is not made a formula, nor one that looks like an
    address a link."""
    path = Path(path)
    kind = kind or file_format(path, ("parquet", "csv", "xlsx"))
    if kind == "parquet":
        table.to_parquet(path, index=False)
    elif kind == "csv":
        table.to_csv(path, index=False, float_format="%.17g")
    else:
        options = {"strings_to_formulas": False, "strings_to_urls": False}
        table.to_excel(path, index=False, sheet_name="Risk by group", engine="xlsxwriter",
                       engine_kwargs={"options": options})
    return path
