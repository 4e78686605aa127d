"""Evaluation core on IronCalc: native formulas in Rust, xlmvar functions in Python between.

IronCalc (``ironcalc`` on PyPI, MIT/Apache-2.0) loads the workbook and evaluates every native
formula; it cannot call Python.  The xlmvar functions (:data:`xlmvar.excel.FUNCTIONS`) are
therefore computed here, between IronCalc's evaluations:

1. Every formula calling an xlmvar function is taken apart into its xlmvar calls, innermost
   first.  Each call's result goes into a *block*: a scratch sheet of its own, at ``A1``.
   A formula that is exactly one call (``=PORTVAR(...)``, or an array formula
   ``{=COMPONENTVAR(...)}``) gets the values themselves; any other formula is rewritten with
   the call replaced by a reference to its block (``=SQRT(INDEX('_xlmvar3'!$A$1:$C$3,2,2))``)
   and IronCalc evaluates the rest.
2. Calls run in dependency order: a call comes after every xlmvar call whose cells its
   arguments refer to (directly or through a defined name).  Before a call reads its
   arguments the workbook is re-evaluated if a block changed since the last evaluation, so a
   native cell between two xlmvar calls has its new value.
3. When some call's arguments cover native formula cells (which might depend on an xlmvar
   result in ways the direct references do not show), rounds repeat until no block changes
   (the engine's content cache makes a repeated call with unchanged inputs cheap).  Calls
   that never settle are a cycle: their cells get ``#VALUE!`` with the cells named.

Arguments reach the xlmvar functions as the xlwings bridge hands them (see
:func:`xlmvar.workbook.calc.excel_function`): a range argument as a 2-D array (float when
every cell is a number, else object with blanks as ``None`` and errors as their code; ``None``
when all blank or omitted), a scalar argument as one value (``None`` when blank or omitted).
An exception becomes ``#VALUE!``, its message kept as the error's reason; NaN or infinity in
a result becomes ``#NUM!``.  An array result fills the range the file gives its formula (the
range Excel saved); cells beyond the result get ``#N/A``, as in Excel, and a single value or
a single row/column is repeated across the range.

The interface is :func:`evaluate`: a workbook path in (already checked by the reader), the
value of every formula cell out.  Writing stays with :mod:`xlmvar.workbook.calc`.
"""

from __future__ import annotations

import contextlib
import inspect
import math
import os
import re
import sys
import typing
import zipfile
from dataclasses import dataclass, field

import numpy as np

from ._evaluator import col_index, col_letters, overflow_reason
from ._xlsx import read_xml, sheet_parts

__all__ = ["ErrorValue", "Evaluation", "evaluate", "formula_cells"]

_NS = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
_CELL = re.compile(r"\$?([A-Za-z]{1,3})\$?([0-9]+)")
_REF = re.compile(
    r"^(?:(?P<sheet>'(?:[^']|'')+'|[A-Za-z0-9_.]+)!)?"
    r"\$?(?P<c0>[A-Za-z]{1,3})\$?(?P<r0>[0-9]+)(?::\$?(?P<c1>[A-Za-z]{1,3})\$?(?P<r1>[0-9]+))?$"
)
_NUMBER = re.compile(r"^[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?%?$")
_IDENT = re.compile(r"[A-Za-z0-9_.\\]")
BLOCK_PREFIX = "_xlmvar"


@dataclass(frozen=True)
class ErrorValue:
    """An Excel error value (``#VALUE!``, ``#N/A``, ...) with, when known, the reason."""

    code: str
    reason: str = ""
    function: str = ""  # the xlmvar function that failed with this error, if one did

    def __str__(self) -> str:
        return self.code


@dataclass
class Evaluation:
    """The value of every formula cell, and how the xlmvar calls went."""

    values: dict = field(default_factory=dict)  # (sheet, "B2") -> float | str | bool | None | ErrorValue
    rounds: int = 0  # rounds of xlmvar calls until no block changed (0: the book has none)
    calls: int = 0  # xlmvar calls in the book


# --------------------------------------------------------------------------------------
# Cells and references
# --------------------------------------------------------------------------------------
def _bounds(ref: str) -> tuple[int, int, int, int]:
    """(first row, first column, last row, last column) of ``A1`` or ``A1:C3``."""
    first, _, last = ref.partition(":")
    m0, m1 = _CELL.fullmatch(first), _CELL.fullmatch(last or first)
    r0, c0, r1, c1 = int(m0.group(2)), col_index(m0.group(1).upper()), int(m1.group(2)), col_index(m1.group(1).upper())
    return min(r0, r1), min(c0, c1), max(r0, r1), max(c0, c1)


def formula_cells(path, pattern=None) -> tuple[list[tuple[str, str, tuple[int, int] | None]], set]:
    """``(sheet, "B2", array shape or None)`` of every formula anchor of the workbook, and
    the sheets where some formula text matches ``pattern``.

    The shape ``(rows, columns)`` is the range the file gives an array formula
    (``<f t="array" ref="...">``); every cell of it is a formula cell.
    """
    from lxml import etree

    cells, matching = [], set()
    c_tag, f_tag = f"{_NS}c", f"{_NS}f"
    with zipfile.ZipFile(path) as archive:
        for sheet, part in sheet_parts(archive):
            with archive.open(part) as stream:
                head = stream.read(4096)
            if b"<!DOCTYPE" in head or b"<!ENTITY" in head:
                read_xml(archive, part)  # raises the reader's refusal
            # streamed, each cell dropped once read: a sheet of a million cells is never a tree
            events = etree.iterparse(archive.open(part), events=("end",), tag=c_tag, resolve_entities=False,
                                     no_network=True, load_dtd=False, huge_tree=False)
            for _, c in events:
                f = c.find(f_tag)
                if f is None:
                    c.clear(keep_tail=True)
                    continue
                shape = None
                if f.get("t") == "array" and f.get("ref"):
                    r0, c0, r1, c1 = _bounds(f.get("ref"))
                    shape = (r1 - r0 + 1, c1 - c0 + 1)
                cells.append((sheet, c.get("r"), shape))
                if pattern is not None and f.text and sheet not in matching and pattern.search(f.text):
                    matching.add(sheet)
                c.clear(keep_tail=True)
                while c.getprevious() is not None:  # the rows and cells already read
                    del c.getparent()[0]
    return cells, matching


_COLUMNS: dict = {}


def _row_col(ref: str) -> tuple[int, int]:
    """(row, column) of a cell reference like ``B2``."""
    i = 0
    while ref[i].isalpha():
        i += 1
    letters = ref[:i]
    col = _COLUMNS.get(letters)
    if col is None:
        col = _COLUMNS[letters] = col_index(letters.upper())
    return int(ref[i:]), col


# --------------------------------------------------------------------------------------
# Formula text: xlmvar calls and their arguments
# --------------------------------------------------------------------------------------
def _skip_quoted(text: str, i: int) -> int:
    """Index just past the quoted run ("..." or '...', doubled quotes inside) starting at i."""
    quote, i = text[i], i + 1
    while i < len(text):
        if text[i] == quote:
            if i + 1 < len(text) and text[i + 1] == quote:
                i += 2
                continue
            return i + 1
        i += 1
    return i


def _closing(text: str, i: int) -> int:
    """Index of the parenthesis closing the one at ``i``."""
    depth = 0
    while i < len(text):
        ch = text[i]
        if ch in "\"'":
            i = _skip_quoted(text, i)
            continue
        if ch in "({":
            depth += 1
        elif ch in ")}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise ValueError(f"formula: unbalanced parenthesis in {text!r}")


def split_arguments(text: str) -> list[str]:
    """The top-level, comma-separated arguments of an argument list (without its parentheses)."""
    args, depth, start, i = [], 0, 0, 0
    while i < len(text):
        ch = text[i]
        if ch in "\"'":
            i = _skip_quoted(text, i)
            continue
        if ch in "({":
            depth += 1
        elif ch in ")}":
            depth -= 1
        elif ch == "," and depth == 0:
            args.append(text[start:i].strip())
            start = i + 1
        i += 1
    args.append(text[start:].strip())
    return [] if args == [""] else args


def find_calls(text: str, names) -> list[tuple[int, int, str]]:
    """``(start, end, NAME)`` of every call of a function in ``names`` (outside strings).

    ``end`` is just past the closing parenthesis.  A ``_xludf.`` prefix belongs to the call.
    """
    upper = {n.upper() for n in names}
    calls, i = [], 0
    while i < len(text):
        ch = text[i]
        if ch in "\"'":
            i = _skip_quoted(text, i)
            continue
        if (ch.isalpha() or ch == "_") and (i == 0 or not _IDENT.match(text[i - 1])):
            j = i
            while j < len(text) and _IDENT.match(text[j]):
                j += 1
            word = text[i:j]
            bare = word[7:] if word.lower().startswith("_xludf.") else word
            k = j
            while k < len(text) and text[k] == " ":
                k += 1
            if k < len(text) and text[k] == "(" and bare.upper() in upper:
                end = _closing(text, k) + 1
                calls.append((i, end, bare.upper()))
            i = j
            continue
        i += 1
    return calls


@dataclass
class _Call:
    """One xlmvar call: its function, argument texts (``{k}`` = block of inner call k)."""

    name: str
    args: list[str]
    block: int  # index of its scratch sheet among the blocks
    shape: tuple[int, int] = (1, 1)
    value: object = None  # 2-D object array of the last result


@dataclass
class _Cell:
    """A formula cell with xlmvar calls: where, its template, its calls innermost first."""

    sheet: int
    row: int
    col: int
    shape: tuple[int, int] | None  # array formula range
    template: str  # formula with each call replaced by {k}
    calls: list[int]  # indices into the list of calls, innermost first
    direct: bool  # the formula is exactly one call: values go into the cell(s)


def _plan(text: str, names, calls: list[_Call]) -> tuple[str, list[int]]:
    """Replace every xlmvar call in ``text`` by ``{k}`` (innermost first); return the template."""
    mine = []
    while True:
        found = find_calls(text, names)
        if not found:
            return text, mine
        # an innermost call: no other call inside its parentheses
        start, end, name = next(c for c in found if not any(c[0] < o[0] and o[1] <= c[1] for o in found))
        inner = text[start:end]
        args = split_arguments(inner[inner.index("(") + 1:-1])
        calls.append(_Call(name, args, block=len(calls)))
        mine.append(len(calls) - 1)
        text = f"{text[:start]}{{{len(calls) - 1}}}{text[end:]}"


# --------------------------------------------------------------------------------------
# Values between IronCalc and the xlmvar functions
# --------------------------------------------------------------------------------------
@contextlib.contextmanager
def _quiet_stdout():
    """Discard what IronCalc prints on the process's standard output and error (``Unexpected
    type (empty) in S!A2`` for a formula cell saved without a value; a Rust panic's
    backtrace): stdout is the report's, stderr the one line that says what went wrong."""
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        saved = [os.dup(1), os.dup(2)]
    except OSError:  # no file descriptors 1 and 2 (an embedded interpreter): nothing to protect
        yield
        return
    try:
        with open(os.devnull, "wb") as sink:
            os.dup2(sink.fileno(), 1)
            os.dup2(sink.fileno(), 2)
            yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])


class _Model:
    """An IronCalc model with sheet names, defined names, reads of ranges and writes of values."""

    def __init__(self, path):
        import ironcalc

        with _quiet_stdout():
            self.m = ironcalc.load_from_xlsx(str(path), "en", "UTC")
        self._error_type = ironcalc.CellType.ErrorValue
        self.sheets = {p["name"].lower(): i for i, p in enumerate(self.m.get_worksheets_properties())}
        self.names = {}
        for d in self.m.get_defined_name_list():
            self.names[(d["name"].lower(), d["scope"])] = d["formula"].lstrip("=")
        self.dirty = True

    def evaluate(self) -> None:
        with _quiet_stdout():
            self.m.evaluate()
        self.dirty = False

    def cell(self, sheet: int, row: int, col: int):
        value = self.m.get_cell_value(sheet, row, col)
        if isinstance(value, str) and self.m.get_cell_type(sheet, row, col) == self._error_type:
            return ErrorValue(value)
        return value

    def read(self, sheet: int, r0: int, c0: int, r1: int, c1: int) -> np.ndarray:
        """The values of a range as a 2-D object array (errors as :class:`ErrorValue`)."""
        get, kind = self.m.get_cell_value, self.m.get_cell_type
        out = np.empty((r1 - r0 + 1, c1 - c0 + 1), dtype=object)
        for i, r in enumerate(range(r0, r1 + 1)):
            row = [get(sheet, r, c) for c in range(c0, c1 + 1)]
            if str in set(map(type, row)):
                row = [ErrorValue(v) if isinstance(v, str) and kind(sheet, r, c0 + j) == self._error_type else v
                       for j, v in enumerate(row)]
            out[i] = row
        return out

    def resolve(self, text: str, sheet: int):
        """``(sheet, r0, c0, r1, c1)`` of a reference or defined name, or None."""
        text = text.strip()
        for scope in (sheet, None):
            if (text.lower(), scope) in self.names:
                return self.resolve(self.names[(text.lower(), scope)], sheet)
        m = _REF.match(text)
        if not m:
            return None
        target = sheet
        if m.group("sheet"):
            name = m.group("sheet")
            name = name[1:-1].replace("''", "'") if name.startswith("'") else name
            if name.lower() not in self.sheets:
                return None
            target = self.sheets[name.lower()]
        r0, c0, r1, c1 = _bounds(f"{m.group('c0')}{m.group('r0')}:{m.group('c1') or m.group('c0')}{m.group('r1') or m.group('r0')}")
        return target, r0, c0, r1, c1

    def put_block(self, sheet: int, row: int, col: int, block: np.ndarray) -> None:
        """Set a 2-D block of values with its top-left cell at (row, col)."""
        number = self.m.update_cell_with_number
        for i, values in enumerate(block.tolist()):
            for j, v in enumerate(values):
                if type(v) is float and math.isfinite(v):
                    number(sheet, row + i, col + j, v)
                else:
                    self.put(sheet, row + i, col + j, v)
        self.dirty = True

    def put(self, sheet: int, row: int, col: int, value) -> None:
        """Set a value (not a formula) into a cell."""
        if isinstance(value, np.generic):
            value = value.item()
        if value is None:
            self.m.clear_cell_contents(sheet, row, col)
        elif isinstance(value, ErrorValue):
            self.m.set_user_input(sheet, row, col, value.code)
        elif isinstance(value, bool):
            self.m.update_cell_with_bool(sheet, row, col, value)
        elif isinstance(value, (int, float)):
            if math.isfinite(value):
                self.m.update_cell_with_number(sheet, row, col, float(value))
            else:
                self.m.set_user_input(sheet, row, col, "#NUM!")
        else:
            self.m.update_cell_with_text(sheet, row, col, str(value))
        self.dirty = True


def _bridge_range(arr: np.ndarray):
    """A block of cells as the xlwings bridge hands a range argument."""
    if arr.size and set(map(type, arr.flat)) == {float}:
        return arr.astype(float)  # the common case, a block of numbers: no per-cell work
    out = np.empty(arr.shape, dtype=object)
    numbers = True
    for index, v in np.ndenumerate(arr):
        if isinstance(v, ErrorValue):
            v = v.code  # as xlwings hands an error cell over (err_to_str): the adapter names it
        out[index] = v
        numbers = numbers and isinstance(v, float)
    if numbers and out.size:
        return out.astype(float)
    if all(v is None for v in out.flat):
        return None
    return out


def _bridge_scalar(arr: np.ndarray, name: str):
    if arr.size != 1:
        raise ValueError(f"{name}: expected a single cell, got a range of {arr.size} cells")
    v = arr.reshape(-1)[0]
    return v.code if isinstance(v, ErrorValue) else v


def _literal(text: str):
    """The value of a constant argument (number, text, TRUE/FALSE), or raise KeyError."""
    if _NUMBER.match(text):
        return float(text[:-1]) / 100 if text.endswith("%") else float(text)
    if len(text) >= 2 and text[0] == text[-1] == '"' and '"' not in text[1:-1].replace('""', ""):
        return text[1:-1].replace('""', '"')
    if text.upper() in ("TRUE", "FALSE"):
        return text.upper() == "TRUE"
    raise KeyError(text)


def _is_range_hint(hint) -> bool:
    base = typing.get_args(hint)[0] if typing.get_origin(hint) is typing.Annotated else hint
    base = typing.get_origin(base) or base
    return base in (np.ndarray, list)


def _result_block(result) -> np.ndarray:
    """An xlmvar result as a 2-D object array; NaN and infinities become #NUM!."""
    if isinstance(result, np.ndarray) and result.dtype.kind == "f":
        arr = result.reshape(1, 1) if result.ndim == 0 else result.reshape(1, -1) if result.ndim == 1 else result
        if np.isfinite(arr).all():
            return arr.astype(object)
    arr = np.asarray(result, dtype=object)
    arr = arr.reshape(1, 1) if arr.ndim == 0 else arr.reshape(1, -1) if arr.ndim == 1 else arr
    out = np.empty(arr.shape, dtype=object)
    for index, v in np.ndenumerate(arr):
        if isinstance(v, np.generic):
            v = v.item()
        if isinstance(v, float) and not math.isfinite(v):
            v = ErrorValue("#NUM!", "not a finite number")
        out[index] = v
    return out


def _fit(block: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A result laid on an array formula's range, as Excel does: repeat a single row/column
    or value across it, #N/A where the result has no cell."""
    rows, cols = shape
    out = np.empty(shape, dtype=object)
    h, w = block.shape
    for i in range(rows):
        for j in range(cols):
            bi = 0 if h == 1 else i
            bj = 0 if w == 1 else j
            out[i, j] = block[bi, bj] if bi < h and bj < w else ErrorValue("#N/A", "outside the result")
    return out


# --------------------------------------------------------------------------------------
# The evaluation
# --------------------------------------------------------------------------------------
class _Run:
    def __init__(self, path, functions):
        self.model = _Model(path)
        self.functions = {name.upper(): f for name, f in functions.items()}
        self.kinds = {}
        for name, f in self.functions.items():
            hints = typing.get_type_hints(f, include_extras=True)
            params = list(inspect.signature(f).parameters)
            self.kinds[name] = [(p, _is_range_hint(hints.get(p))) for p in params]
        self.calls: list[_Call] = []
        self.cells: list[_Cell] = []
        self.reasons: dict = {}  # (sheet index, row, col) -> reason of an xlmvar error there
        self.block_sheet: list = []
        self.block_names: dict = {}
        self.stable: dict = {}  # range -> (cells, bridged range) of ranges holding no formula
        self.boxes: dict = {}  # sheet index -> (r0, c0, r1, c1) arrays of the formula cells
        self.progress = None  # callable(cell) told each xlmvar cell before it is computed

    def _has_formulas(self, rng) -> bool:
        sheet, r0, c0, r1, c1 = rng
        if sheet not in self.boxes:  # a block or scratch sheet: its values change
            return True
        b0, b1, b2, b3 = self.boxes[sheet]
        return bool(np.any((b0 <= r1) & (b2 >= r0) & (b1 <= c1) & (b3 >= c0)))

    def index_formulas(self, anchors) -> None:
        by_sheet: dict = {}
        for sheet, row, col, shape in anchors:
            h, w = shape or (1, 1)
            by_sheet.setdefault(self.model.sheets[sheet.lower()], []).append((row, col, row + h - 1, col + w - 1))
        for index in range(len(self.model.sheets)):
            arr = np.array(by_sheet.get(index, []), dtype=np.int64).reshape(-1, 4)
            self.boxes[index] = tuple(arr[:, k] for k in range(4))

    # planning --------------------------------------------------------------------------
    def pattern(self):
        """A regular expression finding a call of any of the functions."""
        names = "|".join(map(re.escape, self.functions))
        return re.compile(r"\b(?:_xludf\.)?(?:" + names + r")\s*\(", re.I)

    def plan(self, anchors, sheets: set) -> None:
        """Take apart every formula calling an xlmvar function (only on ``sheets``)."""
        m = self.model.m
        names = list(self.functions)
        pattern = self.pattern()
        for sheet, row, col, shape in anchors:
            if sheet not in sheets:
                continue
            index = self.model.sheets[sheet.lower()]
            text = m.get_cell_formula(index, row, col) or ""
            if not pattern.search(text):
                continue
            template, mine = _plan(text.lstrip("="), names, self.calls)
            direct = template.strip() == f"{{{mine[-1]}}}"
            self.cells.append(_Cell(index, row, col, shape, template, mine, direct))
        # a block sheet for every call whose result a rewritten formula refers to (a call
        # that is a whole formula puts its values straight into its cells: no block)
        referenced = {k for c in self.cells for k in (c.calls[:-1] if c.direct else c.calls)}
        self.block_sheet = [None] * len(self.calls)
        for k in sorted(referenced):
            name = f"{BLOCK_PREFIX}{k}"
            while name.lower() in self.model.sheets:
                name += "_"
            m.add_sheet(name)
            self.model.sheets[name.lower()] = len(self.model.sheets)
            self.block_sheet[k] = self.model.sheets[name.lower()]
            self.block_names[k] = name

    def _refs(self, cell: _Cell) -> list[tuple[int, int, int, int, int]]:
        """The ranges the arguments of a cell's calls name (references and defined names)."""
        out = []
        for k in cell.calls:
            for arg in self.calls[k].args:
                for token in re.findall(r"(?:'(?:[^']|'')+'|[A-Za-z0-9_.]+)!\$?[A-Za-z]{1,3}\$?[0-9]+(?::\$?[A-Za-z]{1,3}\$?[0-9]+)?"
                                        r"|\$?[A-Za-z]{1,3}\$?[0-9]+(?::\$?[A-Za-z]{1,3}\$?[0-9]+)?|[A-Za-z_][A-Za-z0-9_.]*", arg):
                    found = self.model.resolve(token, cell.sheet)
                    if found:
                        out.append(found)
        return out

    def order(self, anchors) -> tuple[list[_Cell], bool]:
        """Cells in dependency order (direct references); and whether the arguments cover
        native formula cells (then indirect dependencies are possible: rounds repeat)."""
        def covers(rng, sheet, r, c, shape):
            s, r0, c0, r1, c1 = rng
            h, w = shape or (1, 1)
            return s == sheet and r <= r1 and r + h - 1 >= r0 and c <= c1 and c + w - 1 >= c0

        xl = {(c.sheet, c.row, c.col) for c in self.cells}
        native = [(self.model.sheets[s.lower()], r, c, shape) for s, r, c, shape in anchors
                  if (self.model.sheets[s.lower()], r, c) not in xl]
        refs = {id(cell): self._refs(cell) for cell in self.cells}
        needs = {id(cell): [other for other in self.cells if other is not cell and
                            any(covers(rng, other.sheet, other.row, other.col, other.shape) for rng in refs[id(cell)])]
                 for cell in self.cells}
        ordered, placed = [], set()
        pending = list(self.cells)
        while pending:
            ready = [c for c in pending if all(id(o) in placed for o in needs[id(c)])] or pending[:1]  # a cycle: go on
            for c in ready:
                ordered.append(c)
                placed.add(id(c))
                pending.remove(c)
        indirect = any(covers(rng, s, r, c, shape) for cell in self.cells for rng in refs[id(cell)]
                       for s, r, c, shape in native)
        return ordered, indirect

    # computing -------------------------------------------------------------------------
    def _substitute(self, text: str) -> str:
        def block(m):
            call = self.calls[int(m.group(1))]
            sheet = self.block_names[call.block]
            h, w = call.shape
            ref = "$A$1" if (h, w) == (1, 1) else f"$A$1:${col_letters(w)}${h}"
            return f"'{sheet}'!{ref}"
        return re.sub(r"\{(\d+)\}", block, text)

    def _argument(self, text: str, sheet: int, is_range: bool, name: str):
        if text == "":
            return None
        try:
            value = _literal(text)
            return _bridge_range(np.array([[value]], dtype=object)) if is_range else value
        except KeyError:
            pass
        found = self.model.resolve(text, sheet)
        if found and found in self.stable:  # constants only: read and converted once
            arr, bridged = self.stable[found]
            return bridged if is_range else _bridge_scalar(arr, name)
        if self.model.dirty:
            self.model.evaluate()
        if found:
            arr = self.model.read(*found)
            if not self._has_formulas(found):
                self.stable[found] = (arr, _bridge_range(arr))
                return self.stable[found][1] if is_range else _bridge_scalar(arr, name)
        else:  # an expression: evaluate it in a scratch sheet of its own, read what it spills
            m = self.model.m
            m.add_sheet("_xlmvar_arg")
            scratch = len(self.model.sheets)
            try:  # its references still mean the calling cell's sheet
                m.set_user_input(scratch, 1, 1, "=" + _qualified(text, self._name(sheet)))
                m.evaluate()
                _, r1, _, c1 = m.get_sheet_dimensions(scratch)
                arr = self.model.read(scratch, 1, 1, r1, c1)
            finally:
                m.delete_sheet(scratch)
        return _bridge_range(arr) if is_range else _bridge_scalar(arr, name)

    def compute(self, call: _Call, cell: _Cell) -> bool:
        """Compute one call into its block; True when the block's values changed."""
        function = self.functions[call.name]
        kinds = self.kinds[call.name]
        try:
            if len(call.args) > len(kinds):
                raise ValueError(f"{call.name}: takes at most {len(kinds)} arguments, got {len(call.args)}")
            args = [self._argument(self._substitute(a), cell.sheet, rng, p) for a, (p, rng) in zip(call.args, kinds)]
            block = _result_block(function(*args))
        except Exception as exc:  # shown in the cell as #VALUE!, reason kept
            message = str(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}"
            block = np.array([[ErrorValue(getattr(exc, "excel_error", "#VALUE!"), message, call.name)]], dtype=object)
        changed = call.value is None or call.value.shape != block.shape or not all(
            _same(a, b) for a, b in zip(call.value.flat, block.flat))
        sheet = self.block_sheet[call.block]
        if changed and sheet is not None:
            if call.value is not None:
                self.model.m.range_clear_all(sheet, 1, 1, *call.value.shape)
            self.model.put_block(sheet, 1, 1, block)
        if changed:
            call.value, call.shape = block, block.shape
        return changed

    def place(self, cell: _Cell) -> None:
        """Put a cell's result in place: its values (a bare call) or its rewritten formula."""
        if cell.direct:
            block = self.calls[cell.calls[-1]].value
            values = _fit(block, cell.shape) if cell.shape else block[:1, :1]
            if cell.shape:  # IronCalc keeps the range as its array formula's spill: release it
                h, w = cell.shape
                self.model.m.range_clear_contents(cell.sheet, cell.row, cell.col, cell.row + h - 1, cell.col + w - 1)
            self.model.put_block(cell.sheet, cell.row, cell.col, values)
            for (i, j), v in np.ndenumerate(values):
                if isinstance(v, ErrorValue) and v.reason:
                    self.reasons[(cell.sheet, cell.row + i, cell.col + j)] = v
            return
        formula = "=" + self._substitute(cell.template)
        if cell.shape:
            h, w = cell.shape  # the range is released first (IronCalc refuses to write into an array)
            self.model.m.range_clear_contents(cell.sheet, cell.row, cell.col, cell.row + h - 1, cell.col + w - 1)
            self.model.m.set_user_array_formula(cell.sheet, cell.row, cell.col, w, h, formula)
        else:
            self.model.m.update_cell_with_formula(cell.sheet, cell.row, cell.col, formula)
        self.model.dirty = True
        for k in cell.calls:
            v = self.calls[k].value.flat[0]
            if isinstance(v, ErrorValue) and v.reason:
                self.reasons[(cell.sheet, cell.row, cell.col)] = v

    def run(self, anchors, max_rounds: int | None) -> int:
        ordered, indirect = self.order(anchors)
        limit = max_rounds or len(self.calls) + 2
        rounds = 0
        while True:
            rounds += 1
            changed = []
            for cell in ordered:
                if self.progress is not None:
                    self.progress(f"{self._name(cell.sheet)}!{col_letters(cell.col)}{cell.row}")
                if any([self.compute(self.calls[k], cell) for k in cell.calls]) or rounds == 1:
                    self.place(cell)
                    changed.append(cell)
            if not changed or not indirect:
                return rounds
            if rounds >= limit:
                where = ", ".join(f"{self._name(c.sheet)}!{col_letters(c.col)}{c.row}" for c in changed)
                error = ErrorValue("#VALUE!", f"circular dependency: the xlmvar results of {where} never settle")
                for cell in changed:
                    self.model.put(cell.sheet, cell.row, cell.col, error)
                    self.reasons[(cell.sheet, cell.row, cell.col)] = error
                return rounds

    def _name(self, index: int) -> str:
        return self.model.m.get_worksheets_properties()[index]["name"]


_A1 = re.compile(r"^(?:\$?[A-Za-z]{1,3}\$?[0-9]+(?::\$?[A-Za-z]{1,3}\$?[0-9]+)?|\$?[A-Za-z]{1,3}:\$?[A-Za-z]{1,3}|\$?[0-9]+:\$?[0-9]+)$")


def _qualified(text: str, sheet: str) -> str:
    """``text`` with every reference that names no sheet given the sheet ``sheet``
    (``B1:B3*2`` -> ``'Risk'!B1:B3*2``), so that it means the same cells anywhere."""
    from ._evaluator import _tokens

    tokens = _tokens(text)
    if not tokens:
        return text
    prefix = "'" + sheet.replace("'", "''") + "'!"
    return "".join(prefix + t.value if t.type == "OPERAND" and t.subtype == "RANGE" and "!" not in t.value
                   and _A1.match(t.value) else t.value for t in tokens)


def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    return type(a) is type(b) and a == b


def evaluate(path, functions: dict | None = None, *, max_rounds: int | None = None) -> Evaluation:
    """Evaluate every formula of a workbook: native ones with IronCalc, xlmvar ones in Python.

    Parameters
    ----------
    path : path
        An .xlsx/.xlsm workbook, already checked and bounded by the reader
        (:func:`xlmvar.workbook._xlsx.check_archive`); it is only read.
    functions : dict, optional
        Excel name -> Python function; default :data:`xlmvar.excel.FUNCTIONS`.
    max_rounds : int, optional
        Rounds of xlmvar calls before the ones still changing are declared a cycle
        (default: the number of calls + 2).

    Returns
    -------
    Evaluation
        ``values[(sheet, "B2")]`` for every formula cell, array formula ranges cell by cell:
        a float, str, bool, ``None`` (blank) or :class:`ErrorValue` (with the reason when an
        xlmvar function raised).
    """
    if functions is None:
        from ..excel import FUNCTIONS as functions
    run = _Run(path, functions)
    cells, sheets = formula_cells(path, run.pattern())
    anchors = [(sheet, *_row_col(ref), shape) for sheet, ref, shape in cells]
    run.index_formulas(anchors)
    run.plan(anchors, sheets)
    result = Evaluation(calls=len(run.calls))
    if run.cells:
        result.rounds = run.run(anchors, max_rounds)
    run.model.evaluate()
    get = run.model.cell
    values = result.values
    for (sheet, ref, shape), (_, row, col, _) in zip(cells, anchors):
        index = run.model.sheets[sheet.lower()]
        if shape is None:
            keys = [(ref, row, col)]
        else:
            keys = [(f"{col_letters(col + j)}{row + i}", row + i, col + j)
                    for i in range(shape[0]) for j in range(shape[1])]
        for key, r, c in keys:
            value = get(index, r, c)
            if type(value) is ErrorValue:
                known = run.reasons.get((index, r, c))
                if known:
                    value = ErrorValue(value.code, f"{known.function}: {known.reason}" if known.function else known.reason)
            values[(sheet, key)] = value
    return result


# --------------------------------------------------------------------------------------
# A workbook read by the reader: what IronCalc may evaluate, what keeps Excel's value
# --------------------------------------------------------------------------------------
_STRING = re.compile(r'"(?:[^"]|"")*"')
_FUNCTION_CALL = re.compile(r"(?<![A-Za-z0-9_.\\])([A-Za-z_][A-Za-z0-9_.]*)\s*\(")
_EXTERNAL = re.compile(r"\[\d+\]")
_PREFIXES = ("_XLFN._XLWS.", "_XLFN.", "_XLWS.", "_XLUDF.")
_SUPPORTED: dict = {}  # function name -> whether IronCalc knows it (probed once per process)

#: IronCalc's error codes that are not Excel's, and what the calculator makes of them.
CIRCULAR, UNPARSED, NOT_IMPLEMENTED = "#CIRC!", "#ERROR!", "#N/IMPL!"


@dataclass
class Plan:
    """What the reader's formulas need before IronCalc evaluates them (by formula index)."""

    kept: dict = field(default_factory=dict)  # not evaluated: Excel's cached value, and why
    failures: dict = field(default_factory=dict)  # (error code, reason): shown as that error
    rewrites: dict = field(default_factory=dict)  # text IronCalc evaluates instead of the file's
    functions: set = field(default_factory=set)  # every function the formulas call (no prefix)


def _bare(name: str) -> str:
    name = name.upper()
    for prefix in _PREFIXES:
        if name.startswith(prefix):
            return name[len(prefix):]
    return name


def _without_strings(text: str) -> str:
    return _STRING.sub('""', text) if '"' in text else text


def supported_functions(names) -> set:
    """The names among ``names`` (upper case, no prefix) that IronCalc evaluates.

    IronCalc is asked once per process and name: ``=NAME()`` is ``#NAME?`` exactly when it
    does not know the function (a known one fails on its arguments instead).
    """
    import ironcalc

    ask = sorted(n for n in set(names) if n not in _SUPPORTED)
    if ask:
        model = ironcalc.create("probe", "en", "UTC")
        for row, name in enumerate(ask, start=1):
            model.set_user_input(0, row, 1, f"={name}()")
        model.evaluate()
        for row, name in enumerate(ask, start=1):
            _SUPPORTED[name] = model.get_cell_value(0, row, 1) != "#NAME?"
    return {n for n in names if _SUPPORTED[n]}


def plan(book, xlmvar_names) -> Plan:
    """Sort the formulas of ``book`` (from :func:`~xlmvar.workbook._evaluator.read_workbook`).

    ``xlmvar_names``: the xlmvar function names, or a callable giving them (only called when
    the book uses a function IronCalc does not know: a book of native formulas never loads
    the Excel adapter).

    * a formula that refers to another workbook (``[1]Data!B1``, or a defined name that
      does) keeps the value Excel cached: IronCalc would read nothing, or a local sheet;
    * one that calls an Excel function IronCalc lacks (``CUBEVALUE``, ``WEBSERVICE``) keeps
      Excel's value too; one that calls a function that is neither Excel's nor xlmvar's is
      ``#NAME?``;
    * a range of more than 65,536 cells, or a whole row or column, is read up to the sheet's
      last filled cell (IronCalc walks every cell of ``B2:B1048576`` and cannot hold
      ``A1:XFD1048576``): the formula is rewritten with the clipped range, and one that
      calls a function whose answer depends on the range's size or its blank cells (ROWS,
      COUNTIF, ...) keeps Excel's value instead;
    * structured references (``Table1[Col]``) are rewritten as the ranges they name.

    The text of every formula is scanned once; only formulas with a bracket, a colon or a
    function IronCalc lacks are tokenized.
    """
    from ._evaluator import (
        Unsupported,
        _check_clipping,
        _clip,
        _Resolver,
        _rewrite_structured,
        _tokens,
    )

    out = Plan()
    texts = [_without_strings(fc.text) for fc in book.formulas]
    names = out.functions = {_bare(m) for m in _FUNCTION_CALL.findall("\n".join(texts))}
    unknown = names - supported_functions(names)  # xlmvar's, or ones IronCalc lacks
    xlmvar = {n.upper() for n in (xlmvar_names() if callable(xlmvar_names) else xlmvar_names)} if unknown else set()
    lacking = unknown - xlmvar
    external_names = {n for (_, n), d in book.names.items() if _EXTERNAL.search(d.split("!")[0])}
    large_names = set()
    resolver = _Resolver(book)
    for (scope, name), definition in book.names.items():
        try:
            rect = resolver.rect(definition, scope or (book.order[0].upper() if book.order else ""))
        except Unsupported:
            continue
        if rect is not None and _clip(rect, book) != rect:
            large_names.add(name)
    watch = re.compile(r"\b(?:" + "|".join(map(re.escape, sorted(external_names | large_names))) + r")\b", re.I) \
        if external_names or large_names else None
    any_name = re.compile(r"(?<![A-Za-z0-9_.!$'])(?:" + "|".join(map(re.escape, sorted({n for _, n in book.names}))) + r")(?![A-Za-z0-9_.(!])", re.I) \
        if book.names else None
    for i, (fc, text) in enumerate(zip(book.formulas, texts)):
        if len(text) > MAX_NESTING and _nesting(text) > MAX_NESTING:
            out.failures[i] = ("#NAME?", f"nested {_nesting(text):,} levels deep (the calculator reads up to {MAX_NESTING:,}; "
                                         "Excel allows 64 levels of functions)")
            continue
        if lacking:
            used = {_bare(m) for m in _FUNCTION_CALL.findall(text)} & lacking
            if used:
                from openpyxl.utils import FORMULAE  # (openpyxl costs 0.15 s to import: only here)

                excel = {n for n in used if n in FORMULAE or re.search(rf"_xl(?:fn|ws)\.{re.escape(n)}\s*\(", text, re.I)}
                if used - excel:
                    out.failures[i] = ("#NAME?", f"unknown function {', '.join(sorted(used - excel))} (neither an Excel nor an xlmvar function)")
                else:
                    out.kept[i] = f"calls {', '.join(sorted(excel))}, which the headless calculator does not evaluate"
                continue
        named = watch is not None and watch.search(text)
        source = fc.text
        if any_name is not None and any_name.search(text):  # IronCalc evaluates no name that is
            try:                                             # not a plain reference
                source = _inline_names(source, fc.target.sheet, book, resolver)
            except Unsupported as exc:
                out.kept[i] = str(exc)
                continue
            text = _without_strings(source)
        t = fc.target
        one = t.r0 == t.r1 and t.c0 == t.c1 and not fc.array
        legacy = one and (":" in text or (any_name is not None and any_name.search(text)))
        if "[" not in text and not named and (":" not in text or not _may_be_large(text)):
            if legacy:  # a one-cell formula as Excel saved it before dynamic arrays: ranges meet its cell
                source = _implicit_intersection(source, fc, resolver)
            if one and (legacy or source != fc.text or (any_name is not None and any_name.search(text))):
                inside = _scalar_use(source, fc, resolver, source == fc.text, xlmvar)
                if inside:
                    out.kept[i] = _scalar_reason(inside)
                    continue
            if source != fc.text:
                out.rewrites[i] = source
            continue
        tokens = _tokens(source)
        ranges = [t for t in tokens if t.type == "OPERAND" and t.subtype == "RANGE"]
        try:
            rects = [resolver.resolve(t.value, fc.target.sheet) for t in ranges if not _is_structured(t.value)]
            native = _whole_lines_in_native_functions(tokens, resolver, fc.target.sheet, book)
            if not native:
                _check_clipping(tokens, rects, book)
            for rect in rects:
                if rect is not None and _clip(rect, book).area > book.limits.max_area:
                    raise book.limits.exceeded(
                        "max_area", f"workbook: {fc.sheet}!{fc.anchor} reads {_clip(rect, book).ref}, {_clip(rect, book).area:,} filled cells")
        except Unsupported as exc:
            out.kept[i] = str(exc)
            continue
        try:
            rewritten = _rewrite_structured(source, book, fc.target.r0) if "[" in text else source
        except ValueError as exc:
            out.failures[i] = ("#NAME?", str(exc))  # as the table's unknown name would be in Excel
            continue
        if legacy:  # before clipping: S!3:3 in row 5 is S!E3... wherever the sheet's cells end
            rewritten = _implicit_intersection(rewritten, fc, resolver)
        clipped = rewritten if native else _clipped_text(rewritten, fc.target.sheet, resolver, book)
        if one:
            inside = _scalar_use(clipped, fc, resolver, clipped == fc.text, xlmvar)
            if inside:
                out.kept[i] = _scalar_reason(inside)
                continue
        if clipped != fc.text:
            out.rewrites[i] = clipped
    return out


#: Functions IronCalc evaluates over a whole column or row (``COUNTIFS($A:$A, x)``) in time
#: proportional to the filled cells, with Excel's count of the blank ones (measured; SUM,
#: MAX, COUNTA, MATCH... walk all 1,048,576 cells: 0.5-3 s a formula, so those are clipped).
_NATIVE_WHOLE = {"COUNTIF", "COUNTIFS", "SUMIF", "SUMIFS", "AVERAGEIF", "AVERAGEIFS", "MAXIFS", "MINIFS", "ROWS", "COLUMNS"}
_WHOLE_LINE = re.compile(r"^(?:\$?[A-Za-z]{1,3}:\$?[A-Za-z]{1,3}|\$?[0-9]+:\$?[0-9]+)$")


def _whole_lines_in_native_functions(tokens, resolver, sheet: str, book) -> bool:
    """Whether every range the calculator would clip is a whole column or row (``$A:$A``,
    ``$1:$1``) given straight to a function of :data:`_NATIVE_WHOLE` (and there is one):
    IronCalc then evaluates the formula as written, exactly and fast."""
    from ._evaluator import Unsupported, _clip

    stack, found = [], False
    for k, token in enumerate(tokens):
        if token.type == "FUNC" and token.subtype == "OPEN":
            stack.append(_bare(token.value[:-1].strip()))
        elif token.type == "FUNC" and token.subtype == "CLOSE":
            if stack:
                stack.pop()
        elif token.type == "OPERAND" and token.subtype == "RANGE" and not _is_structured(token.value):
            try:
                rect = resolver.resolve(token.value, sheet)
            except Unsupported:
                return False
            if rect is None or _clip(rect, book) == rect:
                continue
            before = tokens[k - 1] if k else None
            after = tokens[k + 1] if k + 1 < len(tokens) else None
            alone = (before is not None and (before.type == "FUNC" and before.subtype == "OPEN" or before.type == "SEP")
                     and after is not None and (after.type == "SEP" or after.type == "FUNC" and after.subtype == "CLOSE"))
            if not (alone and _WHOLE_LINE.match(token.value.rpartition("!")[2]) and stack and stack[-1] in _NATIVE_WHOLE):
                return False  # (">"&B:B inside SUMIF is an array IronCalc walks to row 1,048,576)
            found = True
    return found


_AREA = re.compile(r"\$?([A-Za-z]{1,3})?\$?([0-9]{1,7})?:\$?([A-Za-z]{1,3})?\$?([0-9]{1,7})?(?![A-Za-z0-9(])")


def _may_be_large(text: str) -> bool:
    """Whether ``text`` may hold a range the calculator clips: a whole column or row, or
    corners more than 65,536 cells apart (a quick look; the tokenizer decides)."""
    from ._evaluator import _CLIP_ABOVE, col_index

    for c0, r0, c1, r1 in _AREA.findall(text):
        if not (c0 and r0 and c1 and r1):
            if c0 or r0 or c1 or r1:
                return True
            continue
        area = (abs(int(r1) - int(r0)) + 1) * (abs(col_index(c1.upper()) - col_index(c0.upper())) + 1)
        if area > _CLIP_ABOVE:
            return True
    return False


#: A definition that computes a reference (``S!$B$1:INDEX(S!$B:$B,3)``, ``OFFSET(...)``):
#: IronCalc gave 0 for SUM over one; such names keep Excel's value.
_COMPUTED_REFERENCE = re.compile(r"\b(?:OFFSET|INDIRECT|INDEX|CHOOSE|IF)\s*\(|:\s*[A-Za-z_][A-Za-z0-9_.]*\s*\(|\)\s*:", re.I)


def _inline_names(text: str, sheet: str, book, resolver, depth: int = 0) -> str:
    """``text`` with each defined name that is not a plain reference replaced by its
    definition in parentheses (``(0.99)``, ``(S!$B$1:INDEX(S!$B:$B,3))``).

    IronCalc does not evaluate a name that is a constant or a formula
    (``IFERROR(Conf,0.95)`` gave 0.95 for ``Conf = 0.99``); written out, it does.  A name that
    is a reference stays a name (:func:`_scalar_use` covers what IronCalc gets wrong about
    those).  A sheet-local name wins over a global one, as in Excel; names inside a
    definition are written out in turn (up to ten levels).
    """
    from ._evaluator import Unsupported, _tokens

    tokens = _tokens(text)
    if not tokens:
        return text
    out, changed = [], False
    for token in tokens:
        value = token.value
        if token.type == "OPERAND" and token.subtype == "RANGE" and "!" not in value and not _is_structured(value) \
                and not _A1.match(value):
            definition = book.names.get((sheet, value.upper())) or book.names.get(("", value.upper()))
            if definition:
                definition = definition.lstrip("=")
                if depth < 10:
                    definition = _inline_names(definition, sheet, book, resolver, depth + 1)
                try:
                    plain = resolver.rect(definition, sheet) is not None
                except Unsupported:  # another workbook: left to the rules for those
                    plain = True
                except ValueError:  # not a reference at all
                    plain = False
                if not plain and _COMPUTED_REFERENCE.search(definition):
                    raise Unsupported(f"uses the name {value}, a reference computed by a formula ({definition}), "
                                      "which the headless calculator does not evaluate")
                if not plain:  # a reference stays a name (see _scalar_use)
                    value, changed = f"({definition})", True
        out.append(value)
    return "".join(out) if changed else text


#: Functions that take a range argument as a whole (a range inside any other function of a
#: legacy formula is one value: the cell in the formula's row or column).
_RANGE_FUNCTIONS = frozenset("""SUM SUMPRODUCT SUMSQ SUMX2MY2 SUMX2PY2 SUMXMY2 AVERAGE AVERAGEA COUNT COUNTA
COUNTBLANK COUNTIF COUNTIFS SUMIF SUMIFS AVERAGEIF AVERAGEIFS MAXIFS MINIFS MIN MINA MAX MAXA PRODUCT
MEDIAN MODE MODE.SNGL MODE.MULT STDEV STDEV.S STDEV.P STDEVA STDEVP STDEVPA VAR VAR.S VAR.P VARA VARP
VARPA INDEX MATCH XMATCH VLOOKUP HLOOKUP LOOKUP XLOOKUP MMULT MINVERSE MDETERM TRANSPOSE ROWS COLUMNS
ROW COLUMN LINEST LOGEST TREND GROWTH FORECAST FORECAST.LINEAR SLOPE INTERCEPT RSQ STEYX CORREL
PEARSON COVAR COVARIANCE.S COVARIANCE.P PERCENTILE PERCENTILE.INC PERCENTILE.EXC QUARTILE
QUARTILE.INC QUARTILE.EXC PERCENTRANK PERCENTRANK.INC PERCENTRANK.EXC RANK RANK.EQ RANK.AVG LARGE
SMALL KURT SKEW SKEW.P DEVSQ AVEDEV GEOMEAN HARMEAN TRIMMEAN FREQUENCY NPV IRR MIRR XNPV XIRR
SUBTOTAL AGGREGATE OFFSET CHOOSE IFERROR IFNA ISREF AREAS CONCAT TEXTJOIN FILTER SORT SORTBY UNIQUE
TAKE DROP CHOOSEROWS CHOOSECOLS DCOUNT DCOUNTA DSUM DAVERAGE DMAX DMIN DGET DPRODUCT DSTDEV DSTDEVP
DVAR DVARP PROB FTEST TTEST T.TEST F.TEST CHITEST CHISQ.TEST ZTEST Z.TEST""".split())


def _scalar_use(source: str, fc, resolver, names_only: bool, xlmvar_names) -> str | None:
    """The function, if any, in which a legacy formula reads a multi-cell range as one value
    (``=ABS(Prices)``): IronCalc reads the range's first cell there, Excel the cell in the
    formula's row or column.  ``names_only``: only defined names count (IronCalc gets an
    inline range right in a formula it loaded, not in one it was given as text)."""
    from ._evaluator import Unsupported, _tokens

    called = {_bare(n) for n in _FUNCTION_CALL.findall(_without_strings(source))}
    if not called - _RANGE_FUNCTIONS - set(xlmvar_names):  # only functions that take ranges whole
        return None
    stack = []
    for token in _tokens(source):
        if token.type == "FUNC":
            if token.subtype == "OPEN":
                stack.append(_bare(token.value[:-1].strip()))
            elif stack:
                stack.pop()
        elif token.type == "OPERAND" and token.subtype == "RANGE" and stack and not _is_structured(token.value):
            name = stack[-1]
            if name in _RANGE_FUNCTIONS or name in xlmvar_names or (names_only and _A1.match(token.value.rpartition("!")[2])):
                continue
            try:
                rect = resolver.resolve(token.value, fc.target.sheet)
            except Unsupported:
                continue
            if rect is not None and rect.area > 1:
                return name
    return None


def _scalar_reason(function: str) -> str:
    return (f"reads a range as one value inside {function}() (implicit intersection), "
            "which the headless calculator does not do inside a function")


def _nesting(text: str) -> int:
    """Deepest nesting of parentheses and braces in a formula without its strings."""
    depth = deepest = 0
    for ch in text:
        if ch in "({":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in ")}":
            depth -= 1
    return deepest


def _one_call(text: str) -> bool:
    """Whether the formula is one function call, ``NAME(...)`` with its parenthesis closing last."""
    m = re.match(r"\s*[A-Za-z_][A-Za-z0-9_.]*\s*\(", text)
    if not m:
        return False
    try:
        return _closing(text, m.end() - 1) == len(text.rstrip()) - 1
    except ValueError:
        return False


def _implicit_intersection(text: str, fc, resolver) -> str:
    """A legacy one-cell formula with each range it uses as a value replaced by the cell
    where the range meets the formula's row (a column range) or column (a row range).

    Excel saves a formula entered before dynamic arrays (or with ``@``) as a plain ``<f>``:
    there ``=Prices*2`` in row 5, with ``Prices`` naming ``B1:B9``, is ``B5*2``.  IronCalc
    has no implicit intersection (it shows ``#VALUE!``), so the formula is rewritten.  Only
    ranges outside any function's parentheses are intersected (inside, a function such as
    SUM takes the whole range); a range the cell does not meet becomes ``#VALUE!``, as in
    Excel.
    """
    from ._evaluator import Unsupported, _tokens, col_letters

    if _one_call(text):  # =AVERAGE(...): nothing at the top level
        return text
    tokens = _tokens(text)
    if not tokens:
        return text
    row, col = fc.target.r0, fc.target.c0
    out, depth, changed = [], 0, False
    for token in tokens:
        value = token.value
        if token.type == "FUNC":
            depth += 1 if token.subtype == "OPEN" else -1
        elif token.type == "OPERAND" and token.subtype == "RANGE" and depth == 0 and not _is_structured(value):
            try:
                rect = resolver.resolve(value, fc.target.sheet)
            except Unsupported:
                rect = None
            if rect is not None and rect.area > 1:
                r = row if rect.r0 <= row <= rect.r1 else (rect.r0 if rect.r0 == rect.r1 else None)
                c = col if rect.c0 <= col <= rect.c1 else (rect.c0 if rect.c0 == rect.c1 else None)
                if r is not None and c is not None:
                    name = resolver.book.sheets[rect.sheet].name.replace("'", "''")
                    value, changed = f"'{name}'!{col_letters(c)}{r}", True
                else:  # Excel: #VALUE! (IronCalc would take some cell of the range instead)
                    value, changed = "#VALUE!", True
        out.append(value)
    return "".join(out) if changed else text


def _is_structured(token: str) -> bool:
    name, bracket, _ = token.partition("[")
    return bool(bracket and name and not name.startswith("'"))


def _clipped_text(text: str, sheet: str, resolver, book) -> str:
    """``text`` with every range larger than the calculator reads replaced by its clipped form."""
    from ._evaluator import _clip, _tokens

    if ":" not in text and not any(name in text.upper() for _, name in book.names):
        return text
    tokens = _tokens(text)
    if not tokens:
        return text
    out, changed = [], False
    for token in tokens:
        value = token.value
        if token.type == "OPERAND" and token.subtype == "RANGE":
            rect = resolver.resolve(value, sheet)
            if rect is not None:
                clipped = _clip(rect, book)
                if clipped != rect:
                    name = book.sheets[clipped.sheet].name.replace("'", "''")
                    value, changed = f"'{name}'!{clipped.ref}", True
        out.append(value)
    return "".join(out) if changed else text


def _load(path, functions) -> "_Run":
    """IronCalc's model of the workbook; a file it cannot read is a ValueError saying so."""
    try:
        return _Run(path, functions)
    except Exception as exc:  # noqa: BLE001 - IronCalc's WorkbookError, or a panic turned exception
        raise ValueError(f"workbook: the evaluation core (IronCalc) cannot read it: {exc}") from None
    except BaseException as exc:  # a Rust panic arrives as pyo3's PanicException
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        raise ValueError(f"workbook: the evaluation core (IronCalc) cannot read it: {exc}") from None


def _put_target(model: _Model, sheet: int, target, values: np.ndarray) -> None:
    """Replace a formula's cells by values (a kept or failed formula): dependents read them."""
    model.m.range_clear_contents(sheet, target.r0, target.c0, target.r1, target.c1)
    for (i, j), v in np.ndenumerate(values):
        model.put(sheet, target.r0 + i, target.c0 + j, _plain_value(v))


def _plain_value(v):
    """A reader value (schedula's EMPTY, formulas' XlError) as the bridge's None / ErrorValue."""
    import schedula as sh
    from formulas.tokens.operand import XlError

    if v is None or v is sh.EMPTY:
        return None

    if isinstance(v, XlError):
        return ErrorValue(str(v))
    return v


def _xlmvar_sheets(book, pattern) -> set:
    by_sheet: dict = {}
    for fc in book.formulas:
        by_sheet.setdefault(fc.sheet, []).append(fc.text)
    return {sheet for sheet, texts in by_sheet.items() if pattern.search("\n".join(texts))}


#: Stack of the thread IronCalc runs on: its parser recurses once per nesting level (the
#: process's 8 MiB main stack overflows near 4,000 nested parentheses, a crash, not an error).
IRONCALC_STACK = 512 << 20
#: Nesting refused before IronCalc sees it (Excel itself allows 64 levels of functions).
MAX_NESTING = 1_000


def evaluate_book(path, book, make_error, functions: dict | None = None, progress=None):
    """:func:`_evaluate_book` on a thread with a :data:`IRONCALC_STACK` stack (see there)."""
    import threading

    outcome: dict = {}

    def work():
        try:
            outcome["value"] = _evaluate_book(path, book, make_error, functions, progress)
        except (Exception, KeyboardInterrupt, SystemExit) as exc:  # handed to the caller's thread
            outcome["error"] = exc
        except BaseException as exc:  # noqa: BLE001 - a Rust panic (pyo3's PanicException)
            outcome["error"] = ValueError(f"workbook: the evaluation core (IronCalc) failed on it: {exc}")

    previous = threading.stack_size(IRONCALC_STACK)
    try:
        worker = threading.Thread(target=work, name="xlmvar-ironcalc", daemon=True)
        worker.start()
    finally:
        threading.stack_size(previous)
    worker.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def _evaluate_book(path, book, make_error, functions: dict | None = None, progress=None):
    """Evaluate the formulas of a workbook the reader has checked, with IronCalc.

    Parameters
    ----------
    path : path
        The workbook file; IronCalc loads it (only after the reader has bounded it).
    book : Workbook
        :func:`~xlmvar.workbook._evaluator.read_workbook`'s reading of ``path``.
    make_error : callable(code, reason)
        Builds the error value a cell shows (with its reason for the report).
    functions : dict, optional
        Excel name -> Python function; default :data:`xlmvar.excel.FUNCTIONS`.
    progress : callable(done, total, cell), optional
        Told the first cell when the evaluation starts, and each xlmvar cell as it is
        computed (IronCalc evaluates the native formulas in one pass, without telling).

    Returns
    -------
    xlmvar.workbook._evaluator.Evaluation
        ``values[i]``: the value of formula ``i`` (a scalar for one cell, a 2-D object array
        filling an array formula's range); ``kept[i]``: why formula ``i`` keeps Excel's
        cached value; ``failures[i]``: the error of a formula that was not evaluated.
        IronCalc's own codes become Excel's: a circular reference (``#CIRC!``) is ``#REF!``
        naming the cycle, a formula it cannot parse (``#ERROR!``) ``#NAME?``, a form of a
        function it does not implement (``#N/IMPL!``) keeps Excel's value.
    """
    from ._evaluator import Evaluation, _cached, _error_fill

    def table():
        nonlocal functions
        if functions is None:
            from ..excel import FUNCTIONS as functions
        return functions

    steps = plan(book, lambda: list(table()))
    run = _load(path, table() if steps.functions - supported_functions(steps.functions) else {})
    model, formulas = run.model, book.formulas
    sheet_index = {name: model.sheets[name.lower()] for name in {fc.sheet for fc in formulas}}
    index = [sheet_index[fc.sheet] for fc in formulas]
    wide = [i for i, fc in enumerate(formulas) if fc.dynamic or (t := fc.target).r1 != t.r0 or t.c1 != t.c0]  # the few
    dynamics = [i for i in wide if formulas[i].dynamic]
    filled = {i: _filled_beyond(model, index[i], formulas[i].target) for i in dynamics}
    failures = {i: make_error(code, reason) for i, (code, reason) in steps.failures.items()}
    for i in steps.kept:
        _put_target(model, index[i], formulas[i].target, _cached(formulas[i], book))
    for i, error in failures.items():
        _put_target(model, index[i], formulas[i].target, _error_fill(formulas[i], ErrorValue(str(error))))
    texts = dict(steps.rewrites)
    for i in wide:  # a legacy array's range as the file states it, even when
        fc = formulas[i]  # the file leaves out its cells (IronCalc needs them)
        t = fc.target
        if (t.r1 != t.r0 or t.c1 != t.c0) and not fc.dynamic and i not in texts and i not in steps.kept \
                and i not in failures and model.m.is_empty_cell(index[i], t.r1, t.c1):
            texts[i] = fc.text
    for i, text in texts.items():
        t = formulas[i].target
        if t.area > 1 and not formulas[i].dynamic:
            model.m.range_clear_contents(index[i], t.r0, t.c0, t.r1, t.c1)
            model.m.set_user_array_formula(index[i], t.r0, t.c0, t.c1 - t.c0 + 1, t.r1 - t.r0 + 1, "=" + text)
        else:
            model.m.update_cell_with_formula(index[i], t.r0, t.c0, "=" + text)
    model.dirty = True
    skip = set(steps.kept) | set(failures)
    if progress is not None and formulas:
        progress(0, len(formulas), f"{formulas[0].sheet}!{formulas[0].anchor}")
    anchors = _Anchors(formulas, skip)
    sheets = _xlmvar_sheets(book, run.pattern()) if steps.functions & set(run.functions) else set()
    if sheets:  # (a book without xlmvar calls has nothing to plan, nor to index: only they read it)
        run.plan(_Anchors(formulas, skip, sheets), sheets)
    if run.cells:
        run.index_formulas(anchors)
        run.progress = progress and (lambda cell: progress(0, len(formulas), cell))
        run.run(anchors, None)
    kept = dict(steps.kept)
    while True:
        model.evaluate()
        values = _read_values(run, formulas, index, skip)
        special = {i: v for i, v in values.items() if isinstance(v, (ErrorValue, np.ndarray))}  # the few to look at
        missing = _showing(special, NOT_IMPLEMENTED)
        if not missing:
            break
        # the cells that fail themselves, not through an input that failed (those follow)
        own = {i for i in missing if not any(formulas[j].target.intersects(rect) for rect in _inputs(book, i)
                                             for j in missing if j != i)} or missing
        for i in own:  # a form IronCalc lacks: Excel's value, and dependents computed from it
            used = ", ".join(sorted({_bare(n) for n in _FUNCTION_CALL.findall(_without_strings(formulas[i].text))}))
            kept[i] = (f"calls {used} in a form the headless calculator does not implement" if used
                       else "holds a value the headless calculator does not implement (a date cell, say)")
            _put_target(model, index[i], formulas[i].target, _cached(formulas[i], book))
            skip.add(i)
        model.dirty = True
    _trace_failures(run, book, values, index)
    circular = sorted(_showing(special, CIRCULAR))
    reasons = _circular_reasons(book, circular)
    out = values  # a plain value (the common case) stays as it is
    for i, v in special.items():
        out[i] = _excel_value(v, formulas[i], make_error, run.reasons, index[i], reasons.get(i))
    for i in kept:
        out[i] = _cached(formulas[i], book)
    for i, error in failures.items():
        out[i] = _error_fill(formulas[i], error)
    overflows = {i: why for i in dynamics if i not in skip and (why := _overflow(run, formulas[i], index[i], filled[i]))}
    dynamic = {(index[i], formulas[i].target.r0, formulas[i].target.c0): i for i in dynamics if i not in skip}
    for cell in run.cells:  # an xlmvar result is laid on the stored range: larger is said
        i = dynamic.get((cell.sheet, cell.row, cell.col))
        if i is not None and i not in overflows:
            rows = max(run.calls[k].value.shape[0] for k in cell.calls if run.calls[k].value is not None)
            cols = max(run.calls[k].value.shape[1] for k in cell.calls if run.calls[k].value is not None)
            why = overflow_reason((rows, cols), formulas[i].target)
            if why:
                overflows[i] = why
    return Evaluation(out, failures, kept, overflows)


_SPILL_PROBE = 100_000  # cells past a dynamic array's stored range walked for a larger result


def _filled_beyond(model: _Model, sheet: int, t) -> tuple[bool, bool]:
    """Whether the file fills the cell just below, and just right of, a dynamic array's
    stored range (looked at before anything is evaluated)."""
    below = t.r1 < 1_048_576 and not model.m.is_empty_cell(sheet, t.r1 + 1, t.c0)
    right = t.c1 < 16_384 and not model.m.is_empty_cell(sheet, t.r0, t.c1 + 1)
    return below, right


def _overflow(run: _Run, fc, sheet: int, filled: tuple[bool, bool]) -> str | None:
    """Why a dynamic array's result does not fit the range stored in the file, if it does not.

    IronCalc spills a dynamic array as Excel does, and only into empty cells (else the
    anchor shows #SPILL!).  When the cell just past the stored range was empty in the file
    (``filled`` says) and holds a value now, the result is larger: its extent is walked.
    """
    t = fc.target
    m = run.model.m
    rows, cols = t.shape
    if not filled[0]:
        while rows < t.shape[0] + _SPILL_PROBE and t.r0 + rows <= 1_048_576 and not m.is_empty_cell(sheet, t.r0 + rows, t.c0):
            rows += 1
    if not filled[1]:
        while cols < t.shape[1] + _SPILL_PROBE and t.c0 + cols <= 16_384 and not m.is_empty_cell(sheet, t.r0, t.c0 + cols):
            cols += 1
    return overflow_reason((rows, cols), t)


def _showing(values: dict, code: str) -> set:
    """The formulas whose (anchor) value is the error ``code``."""
    return {i for i, v in values.items()
            if (type(v) is ErrorValue and v.code == code)
            or (type(v) is np.ndarray and type(v[0, 0]) is ErrorValue and v[0, 0].code == code)}


def _anchor(value):
    return value[0, 0] if isinstance(value, np.ndarray) else value


def _read_values(run: _Run, formulas, index, skip) -> dict:
    """Every evaluated formula's value: a scalar, or the 2-D block of an array formula.

    The anchors are read in one call of ``map`` (no Python call per cell); a text read back
    is looked at again (an error code reads as its text), and ranges are read as blocks."""
    get, kind, error_type = run.model.m.get_cell_value, run.model.m.get_cell_type, run.model._error_type
    order = [i for i in range(len(formulas)) if i not in skip] if skip else range(len(formulas))
    targets = [formulas[i].target for i in order]
    sheets = [index[i] for i in order]
    values = list(map(get, sheets, [t.r0 for t in targets], [t.c0 for t in targets]))
    for k in [k for k, (v, t) in enumerate(zip(values, targets)) if type(v) is str or t.r0 != t.r1 or t.c0 != t.c1]:
        t = targets[k]
        if t.r0 != t.r1 or t.c0 != t.c1:
            values[k] = run.model.read(sheets[k], t.r0, t.c0, t.r1, t.c1)
        elif kind(sheets[k], t.r0, t.c0) == error_type:
            values[k] = ErrorValue(values[k])
    return dict(zip(order, values))


class _Anchors:
    """``(sheet, row, col, shape or None)`` of each formula not in ``skip`` (and on one of
    ``sheets``, when given), made as they are walked (what :class:`_Run` takes; a list would
    hold a tuple per formula of the book)."""

    def __init__(self, formulas, skip, sheets=None):
        self.formulas, self.skip, self.sheets = formulas, frozenset(skip), sheets  # (skip as it is now)

    def __iter__(self):
        skip, sheets = self.skip, self.sheets
        return ((fc.sheet, t.r0, t.c0, (t.r1 - t.r0 + 1, t.c1 - t.c0 + 1) if t.r1 != t.r0 or t.c1 != t.c0 else None)
                for i, fc in enumerate(self.formulas) if i not in skip and (sheets is None or fc.sheet in sheets)
                for t in (fc.target,))


def _excel_value(value, fc, make_error, reasons: dict, sheet: int, circular: str | None):
    """IronCalc's value of a formula as the writer takes it: errors with Excel's codes and
    their reasons; a dynamic array that fails as a whole shows the error in its anchor only."""
    def convert(v, r, c):
        if type(v) is not ErrorValue:
            return v
        if v.code == CIRCULAR:
            return make_error("#REF!", circular or "circular reference; xlmvar does not iterate")
        if v.code == UNPARSED:
            return make_error("#NAME?", "cannot evaluate the formula headlessly: the evaluation core cannot parse it")
        known = v if v.reason else reasons.get((sheet, r, c))
        return make_error(v.code, known.reason, known.function) if known else make_error(v.code, None)

    t = fc.target
    if not isinstance(value, np.ndarray):
        return convert(value, t.r0, t.c0)
    out = np.empty(value.shape, dtype=object)
    for (i, j), v in np.ndenumerate(value):
        out[i, j] = convert(v, t.r0 + i, t.c0 + j)
    first = value[0, 0]
    if fc.dynamic and type(first) is ErrorValue and all(type(v) is ErrorValue and v.code == first.code for v in value.flat):
        anchor = out[0, 0]
        out[:] = None
        out[0, 0] = anchor
    return out


def _inputs(book, i: int) -> list:
    """The rectangles formula ``i`` refers to (its ranges and names; not through INDIRECT)."""
    from ._evaluator import Unsupported, _Resolver, _tokens

    fc, resolver, rects = book.formulas[i], _Resolver(book), []
    for token in _tokens(fc.text):
        if token.type == "OPERAND" and token.subtype == "RANGE":
            try:
                rect = resolver.resolve(token.value, fc.target.sheet)
            except Unsupported:
                rect = None
            if rect is not None:
                rects.append(rect)
    return rects


def _trace_failures(run: _Run, book, values: dict, index: list) -> None:
    """Give an error that came from a failed xlmvar call the call's reason.

    A native formula over an xlmvar cell that failed shows the same error; IronCalc does not
    say where it came from.  Each such cell is traced through the cells it refers to, until
    no more are found (``run.reasons`` grows with every cell traced).
    """
    if not run.reasons:
        return
    failed = run.reasons
    sheets = {idx: name for name, idx in run.model.sheets.items()}
    open_ = {i for i, v in values.items()
             if type(_anchor(v)) is ErrorValue and not _anchor(v).reason
             and (index[i], book.formulas[i].target.r0, book.formulas[i].target.c0) not in failed}
    inputs = {}
    while open_:
        found = set()
        for i in open_:
            t, code = book.formulas[i].target, _anchor(values[i]).code
            rects = inputs.setdefault(i, _inputs(book, i))
            for (s, r, c), err in list(failed.items()):
                if err.code == code and any(rect.sheet == sheets[s].upper() and rect.r0 <= r <= rect.r1 and rect.c0 <= c <= rect.c1
                                            for rect in rects):
                    failed[(index[i], t.r0, t.c0)] = err
                    found.add(i)
                    break
        if not found:
            return
        open_ -= found


def _circular_reasons(book, circular: list) -> dict:
    """A reason naming the cycle for every formula IronCalc found on or behind one."""
    if not circular:
        return {}
    from ._evaluator import _cycles

    stuck = set(circular)
    deps = {}
    for i in circular:
        rects = _inputs(book, i)
        deps[i] = {j for j in stuck if any(book.formulas[j].target.intersects(r) for r in rects)}
    if any(not deps[i] for i in stuck):  # a cycle through INDIRECT, OFFSET or a name: not traced
        return {}
    return _cycles(deps, stuck, book)
