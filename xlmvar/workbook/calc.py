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

import functools
import inspect
import re
import sys
import typing
from collections.abc import ItemsView, Mapping, ValuesView
from dataclasses import dataclass, field
from itertools import groupby
from operator import attrgetter
from pathlib import Path

import numpy as np

from ._evaluator import as_2d, col_letters, parse_cell
from ._limits import DEFAULT_LIMITS, Limits
from ._safe_write import atomic_write, check_output
from ._xlsx import Archive, write_zip_replacing

__all__ = ["CellError", "FormulaTable", "KeptCell", "Recalculation", "excel_function", "register_functions", "recalculate", "calc"]

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


@functools.cache
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

    while isinstance(value, np.ndarray) and value.ndim == 0:  # {-1;2} holds its -1 as a 0-d array
        value = value[()]
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
    """A single-cell argument's cell; a range is handed over whole, for the adapter to read
    as the omitted argument (a range of blanks, where it is optional) or refuse."""
    value = getattr(value, "value", value)
    arr = np.asarray(value, dtype=object)
    if arr.size != 1:
        return _range_argument(arr)
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


@dataclass(frozen=True)
class KeptCell:
    """A formula cell that was not recalculated: it keeps the value Excel cached."""

    sheet: str
    cell: str
    reason: str
    what: str = "kept its cached value"

    def __str__(self) -> str:
        return f"{self.sheet}!{self.cell}: {self.what}; {self.reason}"


@dataclass
class Recalculation:
    """What a recalculation computed: formula anchors and their values, errors, kept cells."""

    source: Path
    values: Mapping = field(default_factory=dict)  # (sheet, ref) -> 2-D object array (recalculate: a FormulaTable)
    formulas: Mapping = field(default_factory=dict)  # (sheet, ref) -> formula text (recalculate: a FormulaTable)
    errors: list = field(default_factory=list)
    kept: list = field(default_factory=list)  # KeptCell: not recalculated, cached value kept
    names: object = field(default_factory=dict)  # NAME -> 2-D value of a defined name (.get)
    dynamic: set = field(default_factory=set)  # (sheet, ref) of dynamic array formulas
    output: Path | None = None
    limits: Limits = DEFAULT_LIMITS
    kept_targets: set = field(default_factory=set)  # (sheet, ref) of formulas not recalculated

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
    arr = value if isinstance(value, np.ndarray) and value.ndim == 2 else as_2d(value)
    if i < arr.shape[0] and j < arr.shape[1]:
        return arr[i, j]
    if arr.shape == (1, 1):
        return arr[0, 0]
    return _xl_error_class()("#N/A")


def recalculate(path, progress=None, limits: Limits = DEFAULT_LIMITS, core: str = "ironcalc") -> Recalculation:
    """Evaluate every formula of the workbook at ``path`` headlessly.

    Parameters
    ----------
    path : path
        An .xlsx or .xlsm workbook; it is only read.
    progress : callable(done, total, cell), optional
        Called as the work goes on, with the count of formulas done, their number and the
        address of the cell being evaluated (empty when unknown); the command line prints
        it for long runs.
    limits : Limits
        Bounds on what the workbook may cost; a workbook over one raises
        :class:`~xlmvar.workbook._limits.LimitError` (a ValueError) naming the option.
    core : {"ironcalc", "formulas"}
        The evaluation core: IronCalc (Rust; native formulas evaluated in one pass, the
        xlmvar functions called between its evaluations) or the pure-Python ``formulas``
        library (a formula at a time; kept as a second opinion).

    Returns
    -------
    Recalculation
        ``values`` maps ``(sheet, ref)`` of each formula (a cell, or an array formula's
        range) to its value; ``errors`` lists the formula cells that end in an Excel error,
        with the reason; ``kept`` the formula cells that were not recalculated and keep
        Excel's cached value (external references, functions the calculator lacks), with
        the reason; ``names`` gives the values of defined names.
    """
    from ._evaluator import evaluate, mark_missing_arguments, name_values, read_workbook

    if core not in ("ironcalc", "formulas"):
        raise ValueError(f"core: expected 'ironcalc' or 'formulas', got {core!r}")
    path = Path(path)
    book = read_workbook(path, limits)  # the reader bounds and checks the file before any core sees it
    total = len(book.formulas)
    if core == "ironcalc":
        from ._core_ironcalc import evaluate_book

        evaluation = evaluate_book(path, book, _error, None, progress)  # the adapter only loaded if used
        _release_freed_heap()
        if progress is not None:
            progress(total, total, "")
    else:
        names = set(register_functions())
        marker = f'"{MISSING}"'
        evaluation = evaluate(book, _error, progress, lambda text: mark_missing_arguments(text, names, marker))
    result = Recalculation(source=path, limits=limits)
    cells = book.formulas
    raw = [evaluation.values[i] for i in range(total)]
    result.formulas = FormulaTable(cells, [fc.text for fc in cells])
    result.values = FormulaTable(cells, raw, blocks=True)
    result.dynamic = {_key(fc) for fc in cells if fc.dynamic}
    # in the order of the formulas, as a walk over all of them would list them
    for i in sorted(set(evaluation.kept) | set(evaluation.overflows)):
        fc = cells[i]
        if i in evaluation.kept:
            result.kept.append(KeptCell(fc.sheet, fc.anchor, evaluation.kept[i]))
            result.kept_targets.add(_key(fc))
        else:  # written as far as the file's range goes, and said so
            result.kept.append(KeptCell(fc.sheet, fc.anchor, evaluation.overflows[i], "only partly written"))
    # values that may hold an error: arrays, and the errors made here (a book without any
    # never imports formulas); a plain value is no error
    may_err = (np.ndarray,) if _ERROR_CLASS is None else (np.ndarray, _ERROR_CLASS)
    for i in [i for i, value in enumerate(raw) if isinstance(value, may_err)]:
        if i not in evaluation.kept:
            fc = cells[i]
            result.errors.extend(_errors_in(fc.sheet, _key(fc)[1], fc.text, _as_block(raw[i])))
    result.names = name_values(book, evaluation)
    return result


def _release_freed_heap() -> None:
    """Hand the memory IronCalc's model freed back to the system (Linux).

    glibc keeps freed heap for reuse, and the model of a large book is hundreds of MB: kept,
    it would stay in the process's footprint under everything the writer allocates after it
    (measured at 1.25M formulas: the peak falls from 1,008 MB to 908 MB)."""
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            ctypes.CDLL(None).malloc_trim(0)
        except (OSError, AttributeError):  # not glibc (musl has no malloc_trim)
            pass


def _key(fc) -> tuple[str, str]:
    """``(sheet, ref)`` of a formula in a :class:`Recalculation`: its cell, or the range it fills."""
    t = fc.target
    return fc.sheet, fc.anchor if t.r0 == t.r1 and t.c0 == t.c1 and "$" not in fc.anchor else t.ref


def _as_block(value):
    """A formula's value as a 2-D array (a one-cell value as a 1 x 1 array)."""
    if isinstance(value, np.ndarray):
        return value
    block = np.empty((1, 1), dtype=object)
    block[0, 0] = value
    return block


class FormulaTable(Mapping):
    """``{(sheet, ref): item}`` of a workbook's formulas, in their order, as a read-only mapping.

    It holds the reader's formula list and one item per formula (its text, or its value), not
    a dict entry, a key and a 1 x 1 array per formula: a book of a million formulas would
    hold a million of each.  The keys are made as they are walked; looking one up builds
    the index once.  With ``blocks``, a one-cell value is handed out as a 1 x 1 array.
    """

    def __init__(self, cells: list, items: list, blocks: bool = False):
        self.cells, self.items_, self._blocks, self._index, self._sheets = cells, items, blocks, None, None

    def of_sheet(self, sheet: str) -> tuple[list, list]:
        """``(formulas, items)`` of the formulas on ``sheet``, in their order (the runs of
        formulas of each sheet are found once, in C)."""
        if self._sheets is None:
            self._sheets, pos = {}, 0
            for name, run in groupby(map(attrgetter("sheet"), self.cells)):
                n = len(list(run))
                self._sheets.setdefault(name, []).append((pos, pos + n))
                pos += n
        spans = self._sheets.get(sheet, [])
        return ([fc for a, b in spans for fc in self.cells[a:b]] if len(spans) != 1 else self.cells[spans[0][0]:spans[0][1]],
                [v for a, b in spans for v in self.items_[a:b]] if len(spans) != 1 else self.items_[spans[0][0]:spans[0][1]])

    def item(self, i: int):
        return _as_block(self.items_[i]) if self._blocks else self.items_[i]

    def __len__(self) -> int:
        return len(self.cells)

    def __iter__(self):
        return map(_key, self.cells)

    def __getitem__(self, key):
        if self._index is None:
            self._index = {k: i for i, k in enumerate(self)}
        return self.item(self._index[key])

    def items(self):
        return _TableItems(self)

    def values(self):
        return _TableValues(self)

    def __repr__(self) -> str:
        return repr(dict(self.items()))


class _TableItems(ItemsView):
    def __iter__(self):
        table = self._mapping
        return zip(map(_key, table.cells), map(table.item, range(len(table))))


class _TableValues(ValuesView):
    def __iter__(self):
        table = self._mapping
        return map(table.item, range(len(table)))


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
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_LOOKS_ESCAPED = re.compile(r"_(x[0-9A-Fa-f]{4}_)")


def escape_text(text: str) -> str:
    """A string as OOXML stores it: control characters as ``_xHHHH_``, as Excel writes them.

    A literal ``_xHHHH_`` in the text is protected as ``_x005F_xHHHH_`` so that it reads back
    unchanged.
    """
    text = _LOOKS_ESCAPED.sub(r"_x005F_\1", text)
    return _NOT_XML.sub(lambda m: f"_x{ord(m.group()):04X}_", text)


def _set_cached_value(cell, value, blank: bool = False) -> None:
    """Give a worksheet ``<c>`` element the cached value ``value``; its formula is kept.

    A blank value shows as 0 in a formula's own cell, and as a blank cell where ``blank``
    (the part of a dynamic array's stored range that its result does not reach).
    """
    for child in cell.findall(_V) + cell.findall(_IS):
        cell.remove(child)
    kind, text = _encoded(value, blank)
    if text is None:  # the blank part of a dynamic array's range
        cell.attrib.pop("t", None)
        return
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


class _SheetCells:
    """The ``<row>`` and ``<c>`` elements of a sheet, found and inserted in O(log n)."""

    def __init__(self, sheet_data):
        import bisect

        self.bisect = bisect
        self.sheet_data = sheet_data
        self.rows: dict = {}
        self.cells: dict = {}
        self.cols: dict = {}  # row number -> sorted column numbers of its cells
        last = 0
        for row in sheet_data.iter(_ROW):
            r = int(row.get("r") or last + 1)
            last = r
            self.rows[r] = row
            cols, col = [], 0
            for cell in row.iter(_C):
                ref = cell.get("r")
                col = parse_cell(ref)[1] if ref else col + 1
                self.cells[(r, col)] = cell
                cols.append(col)
            self.cols[r] = sorted(cols)
        self.row_numbers = sorted(self.rows)

    def cell(self, r: int, c: int):
        """The ``<c>`` element at row ``r``, column ``c``, inserted in order when absent."""
        found = self.cells.get((r, c))
        if found is not None:
            return found
        row = self.rows.get(r)
        if row is None:
            row = self.sheet_data.makeelement(_ROW, {"r": str(r)})
            k = self.bisect.bisect(self.row_numbers, r)
            if k < len(self.row_numbers):
                self.rows[self.row_numbers[k]].addprevious(row)
            else:
                self.sheet_data.append(row)
            self.row_numbers.insert(k, r)
            self.rows[r], self.cols[r] = row, []
        cell = row.makeelement(_C, {"r": f"{col_letters(c)}{r}"})
        cols = self.cols[r]
        k = self.bisect.bisect(cols, c)
        if k < len(cols):
            self.cells[(r, cols[k])].addprevious(cell)
        else:
            row.append(cell)
        cols.insert(k, c)
        self.cells[(r, c)] = cell
        return cell


def _patched_sheet(root, sheet: str, recalc: Recalculation) -> bool:
    from openpyxl.utils.cell import range_boundaries

    sheet_data = root.find(_SHEETDATA)
    if sheet_data is None:
        return False
    cells = None
    changed = False
    for ref, value in zip(*_sheet_values(recalc, sheet)):
        cells = cells or _SheetCells(sheet_data)
        dynamic = (sheet, ref) in recalc.dynamic
        value = as_2d(_as_block(value))  # once per formula, not once per cell
        c0, r0, c1, r1 = range_boundaries(ref)
        for r in range(r0, r1 + 1):
            for c in range(c0, c1 + 1):
                anchor = r == r0 and c == c0
                _set_cached_value(cells.cell(r, c), _element(value, r - r0, c - c0), blank=dynamic and not anchor)
                changed = True
    return changed


def _encoded(value, blank: bool = False) -> tuple[str | None, str | None]:
    """``(t attribute, <v> text)`` of a cached value, as :func:`_set_cached_value` writes it
    (``(None, None)``: a blank cell of a dynamic array's range)."""
    if type(value) is float and value - value == 0.0:  # a finite number: most cells
        return None, repr(value)
    import schedula as sh

    if isinstance(value, np.generic):
        value = value.item()
    if value is sh.EMPTY or value is None:
        if blank:
            return None, None
        value = 0.0
    if isinstance(value, _xl_error_class()):
        return "e", str(value)
    if isinstance(value, bool):
        return "b", "1" if value else "0"
    if isinstance(value, (int, float)):
        if not np.isfinite(value):
            return "e", "#NUM!"
        return None, repr(float(value)) if isinstance(value, float) else str(value)
    return "str", escape_text(str(value))


_ANY_CELL = re.compile(
    rb'<c r="([A-Z]{1,3}[0-9]{1,7})"((?: [a-zA-Z:]{1,12}="[^"<]*")*)'
    rb'(?:\s*/>|>(<f\b[^>]*?(?:/>|>[^<]*</f>))?(?:<v(?: xml:space="preserve")?>[^<]*</v>|<v\s*/>)?</c>)'
)
_TYPE_ATTR = re.compile(rb'\s+t="[^"]*"')
_XML_TEXT = {ord("&"): "&amp;", ord("<"): "&lt;", ord(">"): "&gt;", ord("\r"): "&#13;"}


def _cell_bytes(value, blank: bool = False) -> tuple[bytes, bytes]:
    """``(t attribute, <v> element)`` of a cached value as bytes (:func:`_encoded`)."""
    if type(value) is float and value - value == 0.0:  # a finite number: most cells
        return b"", b"<v>%r</v>" % value
    kind, text = _encoded(value, blank)
    attr = b"" if kind is None else b' t="' + kind.encode() + b'"'
    if text is None:
        return attr, b""
    return attr, b"<v>" + (text if kind is None else text.translate(_XML_TEXT)).encode() + b"</v>"


_ANY_CELL_TEXT = re.compile(_ANY_CELL.pattern.decode(), re.ASCII)  # the same, over the part decoded
_TYPE_ATTR_TEXT = re.compile(_TYPE_ATTR.pattern.decode(), re.ASCII)
_SLICE = 1 << 20  # bytes of a sheet part patched at a time


def _sheet_values(recalc: Recalculation, sheet: str) -> tuple[list, list]:
    """``(refs, values)`` of the recalculated formulas of ``sheet`` (not the kept ones), in
    the order of the formulas; a one-cell formula's value as it is (no 1 x 1 array made)."""
    values, kept = recalc.values, recalc.kept_targets
    if isinstance(values, FormulaTable):  # no key and no array made per formula
        cells, items = values.of_sheet(sheet)
        refs = [fc.anchor if (t := fc.target).r0 == t.r1 and t.c0 == t.c1 and "$" not in fc.anchor else t.ref
                for fc in cells]
    else:
        pairs = [(key[1], value) for key, value in values.items() if key[0] == sheet]
        refs, items = [ref for ref, _ in pairs], [value for _, value in pairs]
    if kept:
        pairs = [(ref, value) for ref, value in zip(refs, items) if (sheet, ref) not in kept]
        refs, items = [ref for ref, _ in pairs], [value for _, value in pairs]
    return refs, items


def _cell_text(value, blank: bool = False) -> tuple[str, str]:
    """:func:`_cell_bytes` as text (the part is patched decoded)."""
    attr, v = _cell_bytes(value, blank)
    return attr.decode(), v.decode()


def _patched_fast(xml: bytes, sheet: str, recalc: Recalculation) -> list | None:
    """The sheet part with new cached values, rewritten in one pass, as a list of byte slices.

    Every formula cell must be written the way Excel (and XlsxWriter, openpyxl) write one:
    ``<c r="B2" ...><f ...>...</f><v>...</v></c>`` with no prefix.  When some cell to update
    is not found in that form (a cell the file leaves out, a prefixed namespace), None is
    returned and :func:`_patched_sheet` does the work on the XML tree instead.

    The part is patched a slice of rows at a time, each decoded (``surrogateescape``: every
    byte comes back as it was) so that the cells are looked up by the formulas' own
    reference strings: no bytes key, and no encoded value, made per cell beforehand.
    """
    if b"<!--" in xml or b"<![CDATA[" in xml:  # a cell-like text in a comment is no cell: the tree knows
        return None
    refs, values = _sheet_values(recalc, sheet)
    updates: dict = {}  # "B2" -> its value, or (t attribute, <v> element) for a cell of a range
    if ":" in "".join(refs):  # ranges too: every cell set in the order of the formulas
        _add_updates(updates, zip(refs, values), sheet, recalc)
    else:
        updates = dict(zip(refs, values))
        for ref, value in [(ref, value) for ref, value in zip(refs, values) if isinstance(value, np.ndarray)]:
            if updates[ref] is value:
                updates[ref] = value.flat[0]
    del refs, values
    pop, missing = updates.pop, updates

    def replace(m):
        ref, attrs, f = m.group(1, 2, 3)
        value = pop(ref, missing)
        if value is missing:
            return m.group(0)
        if " t=" in attrs:
            attrs = _TYPE_ATTR_TEXT.sub("", attrs)
        if type(value) is float and value - value == 0.0:  # a finite number: most cells
            return f'<c r="{ref}"{attrs}>{f or ""}<v>{value!r}</v></c>'
        kind, v = value if type(value) is _Encoded else _cell_text(value)
        return f'<c r="{ref}"{attrs}{kind}>{f or ""}{v}</c>'

    out, pos = [], 0
    while pos < len(xml):
        end = xml.find(b"</row>", pos + _SLICE)  # a cell is never cut: it lies inside its row
        end = len(xml) if end < 0 else end + len(b"</row>")
        text = xml[pos:end].decode("utf-8", "surrogateescape")
        out.append(_ANY_CELL_TEXT.sub(replace, text).encode("utf-8", "surrogateescape"))
        pos = end
    return out if not updates else None  # some cell in another form: the tree writes it


def _add_updates(updates: dict, pairs, sheet: str, recalc: Recalculation) -> None:
    """Every cell the formulas ``pairs`` fill, with what :func:`_patched_fast` writes there."""
    for ref, value in pairs:
        if ":" not in ref:
            updates[ref] = value.flat[0] if isinstance(value, np.ndarray) else value
            continue
        from openpyxl.utils.cell import range_boundaries

        dynamic = (sheet, ref) in recalc.dynamic
        value = as_2d(_as_block(value))
        c0, r0, c1, r1 = range_boundaries(ref)
        letters = [col_letters(c) for c in range(c0, c1 + 1)]
        fits = value.shape == (r1 - r0 + 1, c1 - c0 + 1)
        for r in range(r0, r1 + 1):
            for j, col in enumerate(letters):
                item = value[r - r0, j] if fits else _element(value, r - r0, j)
                updates[f"{col}{r}"] = _Encoded(_cell_text(item, blank=dynamic and (r, j) != (r0, 0)))


class _Encoded(tuple):
    """``(t attribute, <v> element)`` of a cell of an array formula's range, encoded already."""


def write_cached_values(source, target, recalc: Recalculation, *, follow_symlink: bool = False) -> Path:
    """Write a copy of ``source`` to ``target`` with the recalculated values cached.

    Only the ``<v>`` elements of recalculated formula cells change (cells kept at their
    cached value are untouched); every other part of the archive is copied as it is.  The
    copy is written with :func:`~xlmvar.workbook._safe_write.atomic_write`: a temporary
    file in the target's folder, fsync-ed and renamed over ``target`` in one step.
    """
    from lxml import etree

    source, target = Path(source), Path(target)
    replacements = {}
    if isinstance(recalc.values, FormulaTable) and not recalc.kept_targets:
        written = {fc.sheet for fc in recalc.values.cells}  # (no key made per formula)
    else:
        written = {sheet for sheet, ref in recalc.values if (sheet, ref) not in recalc.kept_targets}
    with Archive(source, recalc.limits) as archive:
        for sheet, part in archive.sheet_parts():
            if sheet not in written:  # a sheet without recalculated formulas is copied as it is
                continue
            fast = _patched_fast(archive.read(part), sheet, recalc)
            if fast is not None:
                replacements[part] = fast
                continue
            root = archive.xml(part)
            if _patched_sheet(root, sheet, recalc):
                replacements[part] = etree.tostring(root, xml_declaration=True, encoding="UTF-8", standalone=True)
    return atomic_write(
        target, lambda tmp: write_zip_replacing(source, tmp, replacements, recalc.limits), follow_symlink=follow_symlink
    )


def calc(source, target=None, *, in_place: bool = False, progress=None, limits: Limits = DEFAULT_LIMITS,
         core: str = "ironcalc") -> Recalculation:
    """Recalculate ``source`` headlessly and write the result.

    Parameters
    ----------
    source : path
        The workbook to recalculate (.xlsx or .xlsm); it is only read.
    target : path, optional
        Where to write; default ``<stem>.calc<suffix>`` beside the source.  It must be a
        new path or a regular file other than the source (not a link to it, a symbolic
        link, a FIFO or a device).
    in_place : bool
        Replace the source itself (atomically, keeping its mode and owner; a symbolic link
        is followed and stays a link); ``target`` must then be omitted.
    limits : Limits
        Bounds on what the workbook may cost.
    core : {"ironcalc", "formulas"}
        The evaluation core (see :func:`recalculate`).
    """
    source = Path(source)
    if in_place:
        if target is not None:
            raise ValueError("target: give either a target or in_place, not both")
        target = check_output(source, (source,), follow_symlink=True, what="--in-place")
    else:
        if target is None:
            target = source.with_name(f"{source.stem}.calc{source.suffix}")
        target = check_output(target, (source,), what="target")
    result = recalculate(source, progress, limits, core)
    result.output = write_cached_values(source, target, result, follow_symlink=in_place)
    return result
