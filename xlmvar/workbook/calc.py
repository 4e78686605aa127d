"""Headless recalculation of a workbook: the numbers Excel would show, without Excel.

The formulas library (``formulas``) evaluates every formula, native and xlmvar, with the
xlmvar functions of :mod:`xlmvar.excel` registered as custom functions.  The freshly computed values
are then written back as the *cached values* of the formula cells, straight into the
worksheet XML of a copy of the workbook: every formula stays as it was, and everything this
module does not understand (styles, charts, names, other sheets, VBA, pivot caches) is
copied byte for byte.  The output is written to a temporary file beside the target and
moved into place atomically, so an interrupted run never leaves a half-written workbook
and never touches the input.

Bridge conventions: a UDF argument annotated as a range (``np.ndarray``) receives a 2-D
object array with blanks as ``None`` and error cells as formulas' ``XlError`` (which the
adapter's converter reads as the error code); a scalar argument receives a single value
(``None`` when blank or omitted).  An exception in a UDF becomes ``#VALUE!`` in its cell (or
the error code the exception names in ``excel_error``, e.g. ``#N/A`` passed along from an
input), with the message kept as the reason.
"""

from __future__ import annotations

import inspect
import os
import re
import tempfile
import typing
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ._evaluator import as_2d
from ._xlsx import check_archive, read_xml, sheet_parts, write_zip_replacing

__all__ = ["CellError", "Recalculation", "excel_function", "register_functions", "recalculate", "calc"]

_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_C = f"{{{_NS}}}c"
_F = f"{{{_NS}}}f"
_V = f"{{{_NS}}}v"
_IS = f"{{{_NS}}}is"
_ROW = f"{{{_NS}}}row"
_SHEETDATA = f"{{{_NS}}}sheetData"

_ERROR_MEANINGS = {
    "#DIV/0!": "division by zero",
    "#N/A": "value not available (a lookup found nothing, or the cell lies outside an array result)",
    "#NAME?": "unknown function or name",
    "#NULL!": "empty intersection of ranges",
    "#NUM!": "invalid number",
    "#REF!": "invalid cell reference",
    "#VALUE!": "wrong type of argument",
}


def _xl_error_class():
    from formulas.tokens.operand import XlError

    return XlError


_ERROR_CLASS = None


def _error(code: str, reason: str, function: str = ""):
    """An Excel error value (``#VALUE!``, ``#NAME?``, ...) that remembers why and where."""
    global _ERROR_CLASS
    if _ERROR_CLASS is None:
        _ERROR_CLASS = type("XlmvarError", (_xl_error_class(),), {})
    err = _ERROR_CLASS(code)
    err.reason = reason
    err.function = function
    return err


# --------------------------------------------------------------------------------------
# The bridge between formulas' calling convention and the xlwings UDFs
# --------------------------------------------------------------------------------------
def _is_range_hint(hint) -> bool:
    base = typing.get_args(hint)[0] if typing.get_origin(hint) is typing.Annotated else hint
    base = typing.get_origin(base) or base
    return base in (np.ndarray, list)


def _cell_value(value):
    """One cell for a UDF: blank -> None, numpy -> Python; an error stays formulas' XlError."""
    import schedula as sh

    if value is sh.EMPTY or value is None or (isinstance(value, str) and value == MISSING):
        return None
    if isinstance(value, np.generic):
        return value.item()
    return value


_type_of = np.frompyfunc(type, 1, 1)


def _range_argument(value):
    value = getattr(value, "value", value)
    arr = np.asarray(value, dtype=object)
    if arr.ndim == 0:
        arr = arr.reshape(1, 1)
    elif arr.ndim == 1:
        arr = arr.reshape(1, -1)
    kinds = _type_of(arr)
    if arr.size and ((kinds == float) | (kinds == int)).all():
        return arr.astype(float)  # the common case, a block of numbers: no per-cell work
    out = np.empty(arr.shape, dtype=object)
    for index, item in np.ndenumerate(arr):
        out[index] = _cell_value(item)
    return out  # a range of blanks stays one: the adapter reads it as omitted where optional


def _scalar_argument(value, name: str):
    value = getattr(value, "value", value)
    arr = np.asarray(value, dtype=object)
    if arr.size != 1:
        raise ValueError(f"{name}: expected a single cell, got a range of {arr.size} cells")
    return _cell_value(arr.reshape(-1)[0])


def excel_function(udf):
    """Wrap an xlwings UDF so that ``formulas`` can call it like Excel would."""
    hints = typing.get_type_hints(udf, include_extras=True)
    names = list(inspect.signature(udf).parameters)
    is_range = [_is_range_hint(hints.get(name)) for name in names]

    def call(*args):
        try:
            if len(args) > len(names):
                raise ValueError(f"{udf.__name__}: takes at most {len(names)} arguments, got {len(args)}")
            converted = [
                _range_argument(a) if rng else _scalar_argument(a, name)
                for a, rng, name in zip(args, is_range, names)
            ]
            result = udf(*converted)
        except Exception as exc:  # shown in the cell as #VALUE!, reason kept for the report
            message = str(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}"
            return _error(getattr(exc, "excel_error", "#VALUE!"), message, udf.__name__)
        if isinstance(result, (list, tuple, np.ndarray)):
            out = np.asarray(result, dtype=object)
            return out.reshape(1, -1) if out.ndim == 1 else out
        return result

    call.__name__ = udf.__name__
    call.__doc__ = udf.__doc__
    return call


def xlmvar_functions() -> dict:
    """The xlmvar Excel functions (:data:`xlmvar.excel.FUNCTIONS`), by name."""
    from ..excel import FUNCTIONS

    return dict(FUNCTIONS)


#: What an omitted argument of an xlmvar function is rewritten to before compiling (see
#: _evaluator.mark_missing_arguments); the bridge hands the function ``None`` for it.
MISSING = "\u2205xlmvar:missing"


def register_functions() -> list[str]:
    """Register every xlmvar Excel function with ``formulas``; return their names."""
    import formulas
    from formulas.functions import wrap_ranges_func

    table = formulas.get_functions()
    functions = xlmvar_functions()
    for name, udf in functions.items():
        # wrap_ranges_func resolves range arguments to their values and defers the call
        # while a range (e.g. a defined name) has no value yet, as formulas' own functions do
        table[name] = wrap_ranges_func(excel_function(udf))
    return sorted(functions)


# --------------------------------------------------------------------------------------
# Recalculation
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CellError:
    """A formula cell whose value is an Excel error, with the reason in words."""

    sheet: str
    cell: str
    error: str
    reason: str

    def __str__(self) -> str:
        return f"{self.sheet}!{self.cell}: {self.error} {self.reason}"


@dataclass
class Recalculation:
    """What a recalculation computed: formula anchors and their values, and the errors."""

    source: Path
    values: dict = field(default_factory=dict)  # (sheet, ref) -> 2-D object array
    formulas: dict = field(default_factory=dict)  # (sheet, ref) -> formula text
    errors: list = field(default_factory=list)
    names: dict = field(default_factory=dict)  # NAME (upper case) -> 2-D value of a defined name
    output: Path | None = None

    @property
    def formula_count(self) -> int:
        return len(self.formulas)

    def value(self, sheet: str, cell: str):
        """The value of one cell (an anchor or a cell inside an array formula's range)."""
        from openpyxl.utils.cell import coordinate_to_tuple, range_boundaries

        row, col = coordinate_to_tuple(cell)
        for (s, ref), val in self.values.items():
            if s.lower() != sheet.lower():
                continue
            c0, r0, c1, r1 = range_boundaries(ref)
            if r0 <= row <= r1 and c0 <= col <= c1:
                return _element(val, row - r0, col - c0)
        raise KeyError(f"{sheet}!{cell} is not a formula cell")


def _element(value, i: int, j: int):
    arr = as_2d(value)
    if i < arr.shape[0] and j < arr.shape[1]:
        return arr[i, j]
    if arr.shape == (1, 1):
        return arr[0, 0]
    return _xl_error_class()("#N/A")


def recalculate(path, progress=None) -> Recalculation:
    """Evaluate every formula of the workbook at ``path`` headlessly.

    Parameters
    ----------
    path : path
        An .xlsx or .xlsm workbook; it is only read.
    progress : callable(done, total, cell), optional
        Called before each formula is evaluated, with the count done so far, the number of
        formulas and the cell's address (the command line prints it for long runs).

    Returns
    -------
    Recalculation
        ``values`` maps ``(sheet, ref)`` of each formula (a cell, or an array formula's
        range) to its value as a 2-D array; ``errors`` lists the formula cells that end in
        an Excel error, with the reason; ``names`` holds the values of defined names.
    """
    from ._evaluator import evaluate, mark_missing_arguments, name_values, read_workbook

    path = Path(path)
    check_archive(path)
    book = read_workbook(path)
    names = set(register_functions())
    marker = f'"{MISSING}"'
    evaluation = evaluate(book, _error, progress, lambda text: mark_missing_arguments(text, names, marker))
    result = Recalculation(source=path)
    for i, fc in enumerate(book.formulas):
        key = (fc.sheet, fc.target.ref)
        result.formulas[key] = fc.text
        result.values[key] = evaluation.values[i]
        result.errors.extend(_errors_in(fc.sheet, fc.target.ref, fc.text, evaluation.values[i]))
    result.names = name_values(book, evaluation)
    return result


def _errors_in(sheet: str, ref: str, text: str, value) -> list[CellError]:
    from openpyxl.utils.cell import get_column_letter, range_boundaries

    arr = as_2d(value)
    c0, r0, _, _ = range_boundaries(ref)
    errors = []
    for (i, j), item in np.ndenumerate(arr):
        if isinstance(item, _xl_error_class()):
            cell = f"{get_column_letter(c0 + j)}{r0 + i}"
            errors.append(CellError(sheet, cell, str(item), _reason(item, text)))
            break  # one line per formula; an array formula's error repeats in every cell
    return errors


def _reason(error, text: str) -> str:
    reason = getattr(error, "reason", None)
    function = getattr(error, "function", "")
    if reason is None:
        return _ERROR_MEANINGS.get(str(error), "")
    if function and re.search(rf"\b{re.escape(function)}\s*\(", text, re.IGNORECASE):
        return f"{function}: {reason}"
    if function:
        return f"depends on a cell where {function} failed: {reason}"
    return reason


# --------------------------------------------------------------------------------------
# Writing the cached values back
# --------------------------------------------------------------------------------------
def _set_cached_value(cell, value) -> None:
    """Give a worksheet ``<c>`` element the cached value ``value``; its formula is kept."""
    import schedula as sh

    for child in cell.findall(_V) + cell.findall(_IS):
        cell.remove(child)
    if isinstance(value, np.generic):
        value = value.item()
    if value is sh.EMPTY or value is None:
        value = 0.0
    if isinstance(value, _xl_error_class()):
        kind, text = "e", str(value)
    elif isinstance(value, bool):
        kind, text = "b", "1" if value else "0"
    elif isinstance(value, (int, float)):
        if not np.isfinite(value):
            kind, text = "e", "#NUM!"
        else:
            kind, text = None, repr(float(value)) if isinstance(value, float) else str(value)
    else:
        kind, text = "str", str(value)
    if kind is None:
        cell.attrib.pop("t", None)
    else:
        cell.set("t", kind)
    v = cell.makeelement(_V, {})
    v.text = text
    f = cell.find(_F)
    if f is not None:
        f.addnext(v)
    else:
        cell.insert(0, v)


def _cells_by_ref(sheet_data) -> dict:
    return {cell.get("r"): cell for cell in sheet_data.iter(_C)}


def _ensure_cell(sheet_data, ref: str, cells: dict):
    """The ``<c>`` element for ``ref``, inserted in row and column order when absent."""
    from openpyxl.utils.cell import coordinate_to_tuple

    if ref in cells:
        return cells[ref]
    row_number, col = coordinate_to_tuple(ref)
    row = None
    for candidate in sheet_data.iter(_ROW):
        r = int(candidate.get("r"))
        if r == row_number:
            row = candidate
            break
        if r > row_number:
            row = sheet_data.makeelement(_ROW, {"r": str(row_number)})
            candidate.addprevious(row)
            break
    if row is None:
        row = sheet_data.makeelement(_ROW, {"r": str(row_number)})
        sheet_data.append(row)
    cell = row.makeelement(_C, {"r": ref})
    for existing in row.iter(_C):
        if coordinate_to_tuple(existing.get("r"))[1] > col:
            existing.addprevious(cell)
            break
    else:
        row.append(cell)
    cells[ref] = cell
    return cell


def _patched_sheet(root, sheet: str, recalc: Recalculation) -> bool:
    from openpyxl.utils.cell import get_column_letter, range_boundaries

    sheet_data = root.find(_SHEETDATA)
    if sheet_data is None:
        return False
    cells = _cells_by_ref(sheet_data)
    changed = False
    for (s, ref), value in recalc.values.items():
        if s != sheet:
            continue
        c0, r0, c1, r1 = range_boundaries(ref)
        for r in range(r0, r1 + 1):
            for c in range(c0, c1 + 1):
                cell = _ensure_cell(sheet_data, f"{get_column_letter(c)}{r}", cells)
                _set_cached_value(cell, _element(value, r - r0, c - c0))
                changed = True
    return changed


def write_cached_values(source, target, recalc: Recalculation) -> Path:
    """Write a copy of ``source`` to ``target`` with the recalculated values cached.

    Only the ``<v>`` elements of formula cells change; every other part of the archive is
    copied as it is.  The copy is written to a temporary file in the target's folder and
    renamed over ``target`` in one step.
    """
    from lxml import etree

    source, target = Path(source), Path(target)
    replacements = {}
    with zipfile.ZipFile(source) as archive:
        for sheet, part in sheet_parts(archive):
            root = read_xml(archive, part)
            if _patched_sheet(root, sheet, recalc):
                replacements[part] = etree.tostring(root, xml_declaration=True, encoding="UTF-8", standalone=True)
    _atomic_write(target, lambda tmp: write_zip_replacing(source, tmp, replacements))
    return target


def _atomic_write(target: Path, write) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def calc(source, target=None, *, in_place: bool = False, progress=None) -> Recalculation:
    """Recalculate ``source`` headlessly and write the result.

    Parameters
    ----------
    source : path
        The workbook to recalculate (.xlsx or .xlsm); it is only read.
    target : path, optional
        Where to write; default ``<stem>.calc<suffix>`` beside the source.
    in_place : bool
        Replace the source itself (atomically); ``target`` must then be omitted.
    """
    source = Path(source)
    if in_place:
        if target is not None:
            raise ValueError("target: give either a target or in_place, not both")
        target = source
    elif target is None:
        target = source.with_name(f"{source.stem}.calc{source.suffix}")
    target = Path(target)
    if target.resolve() == source.resolve() and not in_place:
        raise ValueError(f"target: {target} is the input workbook; pass in_place=True to overwrite it")
    result = recalculate(source, progress)
    result.output = write_cached_values(source, target, result)
    return result
