"""Reading the batch job's inputs and writing its result.

Positions file (Parquet or CSV): one row per position, with a column per grouping level
(``desk``, ``book``, ...), an ``asset`` column naming a column of the scenario table, an
``amount`` column (signed exposure in currency) and optionally an ``id`` column, which
messages quote.  It is read in chunks, never whole: see :func:`position_chunks`.

Scenario table (Parquet or CSV): rows = scenarios (e.g. dates), one named column per asset
holding that asset's return in the scenario; columns no position holds are ignored, as is a
first column named ``date`` or ``scenario``.  It is read whole (2,500 x 1,000 is 20 MB).

Every problem is a :class:`ValueError` naming the file, the row (1-based, header excluded;
for CSV also the line) and the column.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
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
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    return path


def file_columns(path) -> list[str]:
    """Column names of a Parquet or CSV file, read from its schema or header only."""
    path = _exists(path)
    if file_format(path) == "parquet":
        return list(pq.read_schema(path).names)
    return list(pd.read_csv(path, nrows=0).columns)


def check_columns(path, needed: dict) -> None:
    """Raise if a column is missing; ``needed`` maps column name -> what it is for."""
    have = file_columns(path)
    for column, role in needed.items():
        if column not in have:
            raise ValueError(
                f"{path}: has no column {column!r} ({role}); its columns are {', '.join(map(str, have))}"
            )


def csv_dtypes(labels, amount) -> dict:
    """How a CSV's columns are read: labels as categories, amounts as text (checked later)."""
    return {**{c: "category" for c in labels}, amount: "str"}


def position_chunks(path, columns, amount, chunk_rows=1_000_000):
    """Yield the positions file as DataFrames of ``chunk_rows`` rows (the columns asked for)."""
    path = _exists(path)
    if file_format(path) == "parquet":
        labels = [c for c in columns if c != amount]
        source = pq.ParquetFile(path, read_dictionary=labels)  # labels as categories: cheap to group
        for batch in source.iter_batches(batch_size=chunk_rows, columns=list(columns)):
            yield batch.to_pandas()
    else:
        labels = [c for c in columns if c != amount]
        yield from pd.read_csv(
            path, usecols=list(columns), dtype=csv_dtypes(labels, amount), chunksize=chunk_rows,
            keep_default_na=False, na_values=[""],
        )


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


def read_scenarios(path, assets=None) -> pd.DataFrame:
    """The scenario table as floats: rows = scenarios, one column per asset.

    ``assets``, if given, are the columns kept (in the table's order); a label column
    (``date``/``scenario``) and assets nobody holds are dropped.  A cell that is not a finite
    number raises, naming the file, row and column.
    """
    path = _exists(path)
    if file_format(path) == "parquet":
        table = pd.read_parquet(path)
    else:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    table.columns = [str(c) for c in table.columns]
    if table.shape[1] and table.columns[0].strip().lower() in LABEL_COLUMNS:
        table = table.iloc[:, 1:]
    if assets is not None:
        wanted = set(assets)
        table = table[[c for c in table.columns if c in wanted]]
    if table.shape[0] < 2:
        raise ValueError(f"{path}: has {table.shape[0]} scenario rows; at least 2 are needed")
    out = {}
    for column in table.columns:
        raw = table[column]
        numeric = pd.api.types.is_float_dtype(raw) or pd.api.types.is_integer_dtype(raw)
        values = (raw if numeric else pd.to_numeric(raw, errors="coerce")).to_numpy(dtype=float)
        bad = ~np.isfinite(values)
        if bad.any():
            row = int(np.argmax(bad))
            raise ValueError(f"{where(path, row, column)}: holds {_show(raw.iloc[row])}; expected a finite number (a return)")
        out[column] = values
    return pd.DataFrame(out, index=table.index)


def _show(value) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)) or (isinstance(value, str) and not value.strip()):
        return "a blank"
    if isinstance(value, str):
        return f"the text {value!r}"
    return f"{value!r}"


def write_result(table: pd.DataFrame, path) -> Path:
    """Write the result as Parquet, CSV or xlsx (from the suffix)."""
    path = Path(path)
    kind = file_format(path, ("parquet", "csv", "xlsx"))
    if kind == "parquet":
        table.to_parquet(path, index=False)
    elif kind == "csv":
        table.to_csv(path, index=False, float_format="%.17g")
    else:
        table.to_excel(path, index=False, sheet_name="Risk by group", engine="xlsxwriter")
    return path
