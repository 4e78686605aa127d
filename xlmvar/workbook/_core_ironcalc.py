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
import random
import re
import sys
import typing
import zipfile
from dataclasses import dataclass, field

import numpy as np

from . import _divergences
from ._evaluator import col_index, col_letters, overflow_reason
from ._xlsx import read_xml, sheet_parts

__all__ = ["ErrorValue", "Evaluation", "evaluate", "formula_cells"]

_NS = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
_CELL = re.compile(r"\$?([A-Za-z]{1,3})\$?([0-9]+)")
_REF = re.compile(
    r"^(?:(?P<sheet>'(?:[^']|'')+'|[\w.]+)!)?"
    r"\$?(?P<c0>[A-Za-z]{1,3})\$?(?P<r0>[0-9]+)(?::\$?(?P<c1>[A-Za-z]{1,3})\$?(?P<r1>[0-9]+))?$"
)
_NUMBER = re.compile(r"^[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?%?$")
_IDENT = re.compile(r"[\w.\\]")  # letters of any script: Excel's names and sheets (Übersicht, Лист2)
BLOCK_PREFIX = "_xlmvar"
#: A call taken out of a formula is marked by its number between NUL characters, which XML
#: 1.0 cannot carry: no formula text can hold one (``{0}`` can: ``SUM({0})``, ``"Desk {0}"``).
_PLACEHOLDER = re.compile("\x00([0-9]+)\x00")
#: A reference (with its sheet), a name local to a sheet (``Data!Cov``), or a word that may be
#: a defined name.
#: The last column of a whole-column reference (``E:G`` -> ``G``), the last row of a
#: whole-row one (``3:5`` -> ``5``), as an expression argument may read them.
_WHOLE_COLUMNS = re.compile(r"(?<![\w$.])\$?[A-Za-z]{1,3}:\$?([A-Za-z]{1,3})(?![\w(])")
_WHOLE_ROWS = re.compile(r"(?<![\w$.:])\$?[0-9]+:\$?([0-9]+)(?![\w.:])")
_REFERENCE_TOKEN = re.compile(r"(?:'(?:[^']|'')+'|[\w.]+)!\$?[A-Za-z]{1,3}\$?[0-9]+(?::\$?[A-Za-z]{1,3}\$?[0-9]+)?(?![\w.])"
                              r"|(?:'(?:[^']|'')+'|[\w.]+)![^\W\d][\w.]*"
                              r"|\$?[A-Za-z]{1,3}\$?[0-9]+(?::\$?[A-Za-z]{1,3}\$?[0-9]+)?|[^\W\d][\w.]*")


#: A cell or a range of this sheet (``B2``, ``$A$1:$C$3``): the groups are its corners.
_A1_AREA = re.compile(r"\$?([A-Za-z]{1,3})\$?([0-9]+)(?::\$?([A-Za-z]{1,3})\$?([0-9]+))?")
#: Whole columns or rows (``A:C``, ``'Data'!$2:$5``), perhaps of another sheet.
_LINE_TOKEN = re.compile(r"(?<![\w.$:!'])(?:(?:'(?:[^']|'')+'|[\w.]+)!)?(?:\$?[A-Za-z]{1,3}:\$?[A-Za-z]{1,3}|\$?[0-9]+:\$?[0-9]+)(?![\w.(!])")
_LINE = re.compile(r"^(?:(?P<sheet>'(?:[^']|'')+'|[\w.]+)!)?(?:\$?(?P<c0>[A-Za-z]{1,3}):\$?(?P<c1>[A-Za-z]{1,3})"
                   r"|\$?(?P<r0>[0-9]+):\$?(?P<r1>[0-9]+))$")
#: A function of a reference's address or size, not of its cells' values (``ROWS(A1:A9)``): no
#: dependency on them.
_ADDRESS_ONLY = re.compile(r"(?<![\w.])(?:ROWS?|COLUMNS?|AREAS|ISREF)\s*\([^()]*\)", re.I)
#: Functions whose reference is computed: a dependency may hide behind them.
_COMPUTED = re.compile(r"(?<![\w.])(?:INDIRECT|OFFSET)\s*\(", re.I)
#: The reason of a formula on a circular reference (then the circle, ``S!A5 -> S!B1 -> S!A5``).
_CIRCLE, _NO_ITERATION = "circular reference ", "; xlmvar does not iterate"
#: Rounds of xlmvar calls before the results still changing are a circle that never
#: settles (Excel's default for iterative calculation is 100 iterations).
MAX_ROUNDS = 100
_WORD = re.compile(r"[A-Za-z_\\][\w.]*")


def _unquoted(text: str) -> str:
    """``text`` with every string and quoted sheet name (``'RAND(1)'!A1``, ``'a"b'!A1``)
    emptied, read left to right as Excel does, where a function's name is no call."""
    out, i = [], 0
    while i < len(text):
        if text[i] in "\"'":
            j = _skip_quoted(text, i)
            out.append(text[i] * 2)
            i = j
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


#: A bound of RANDBETWEEN made a constant draw: numbers, texts, one-cell references, operators
#: and scalar functions of them, so that it is one number (a range, an array constant, a name or
#: another function may give an array, each element of which Excel draws on its own).
_SCALAR_BOUND = re.compile(
    r"^(?:\s|\"\"|[-+*/^&%(),.<>=]|[0-9]+(?:\.[0-9]*)?(?:[eE][-+]?[0-9]+)?|(?:(?:'(?:[^']|'')+'|[A-Za-z_][\w.]*)!)?\$?[A-Za-z]{1,3}\$?[0-9]+(?![\w(])"
    r"|(?:ROUND|ROUNDUP|ROUNDDOWN|INT|TRUNC|ABS|MIN|MAX|MOD|IF|IFERROR|VALUE)\s*\()*$", re.I)

#: The volatile functions whose draw becomes a constant (:meth:`_Run._drawn`); and the source of RAND's.
_DRAWN = ("RAND", "RANDBETWEEN", "NOW", "TODAY")
_RANDOM = random.Random()
_VOLATILE = re.compile(r"(?<![\w.])(?:_xlfn\.)?(?:RAND|RANDBETWEEN|RANDARRAY|NOW|TODAY)\s*\(", re.I)


_HERE = re.compile(r"(?<![\w.])(ROW|COLUMN)\s*\(\s*\)", re.I)


def _here(text: str, row: int, col: int) -> str:
    """``text`` with ``ROW()`` and ``COLUMN()`` (no argument: the calling cell's) as numbers."""
    if "(" not in text:
        return text
    parts = re.split(r'("(?:[^"]|"")*")', text)  # not inside strings
    for k in range(0, len(parts), 2):
        parts[k] = _HERE.sub(lambda m: str(row if m.group(1).upper() == "ROW" else col), parts[k])
    return "".join(parts)


#: A defined name (perhaps local to a sheet: ``Data!Cov``), not a function and not after ``!``.
_NAME_TOKEN = re.compile(r"(?<![\w.!$'\]])((?:'(?:[^']|'')+'|[\w.]+)!)?([^\W\d][\w.]*)(?![\w.(!\[])")


def _refuse_outside_its_cell(text: str) -> None:
    """Refuse an expression that means something else outside its cell: ``INDIRECT`` of an
    R1C1 address (``INDIRECT("RC[-1]",FALSE)``: relative to the cell) and ``CELL`` of no
    reference (the cell itself)."""
    for start, end, name in find_calls(text, ("INDIRECT", "CELL")):
        inner = text[start:end]
        args = split_arguments(inner[inner.index("(") + 1:-1])
        if name == "INDIRECT" and len(args) > 1 and args[1].strip().upper() not in ("TRUE", "1", ""):
            raise ValueError(f"cannot evaluate {inner} apart from its cell (an R1C1 address may be relative to it); "
                             "put it in a cell of its own and give that cell")
        if name == "CELL" and len(args) < 2:
            raise ValueError(f"cannot evaluate {inner} apart from its cell (CELL of no reference describes the cell); "
                             "give CELL a reference")


def _placeholder(k: int) -> str:
    return f"\x00{k}\x00"


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
        text = f"{text[:start]}{_placeholder(len(calls) - 1)}{text[end:]}"


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

    def resolve(self, text: str, sheet: int, depth: int = 0):
        """``(sheet, r0, c0, r1, c1)`` of a reference or defined name, or None (also for a
        name defined through a loop of names)."""
        text = text.strip()
        if depth > 64:
            return None
        for scope in (sheet, None):
            if (text.lower(), scope) in self.names:
                return self.resolve(self.names[(text.lower(), scope)], sheet, depth + 1)
        owner, bang, name = text.rpartition("!")
        if bang and not _REF.match(text):  # Data!Cov: a name local to the sheet Data
            owner = owner[1:-1].replace("''", "'") if owner.startswith("'") else owner
            scope = self.sheets.get(owner.lower())
            if scope is not None and (name.lower(), scope) in self.names:
                return self.resolve(self.names[(name.lower(), scope)], scope, depth + 1)
            return None
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

    def put_block(self, sheet: int, row: int, col: int, block: np.ndarray, mark: bool = True) -> None:
        """Set a 2-D block of values with its top-left cell at (row, col); ``mark``: the
        book's formulas must be evaluated again before one is read."""
        was, number = self.dirty, self.m.update_cell_with_number
        for i, values in enumerate(block.tolist()):
            for j, v in enumerate(values):
                if type(v) is float and math.isfinite(v):
                    number(sheet, row + i, col + j, v)
                else:
                    self.put(sheet, row + i, col + j, v)
        self.dirty = was or mark

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


def _bridge_cells(arr: np.ndarray) -> np.ndarray:
    """The cells as xlwings hands them over: an error cell as its code (err_to_str), which
    the adapter names."""
    out = np.empty(arr.shape, dtype=object)
    for index, v in np.ndenumerate(arr):
        out[index] = _excel_code(v) if isinstance(v, ErrorValue) else v
    return out


def _bridge_range(arr: np.ndarray):
    """A block of cells as the xlwings bridge hands a range argument."""
    if arr.size and set(map(type, arr.flat)) == {float}:
        return arr.astype(float)  # the common case, a block of numbers: no per-cell work
    out = _bridge_cells(arr)
    if out.size and all(isinstance(v, float) for v in out.flat):
        return out.astype(float)
    if all(v is None for v in out.flat):
        return None
    return out


def _bridge_scalar(arr: np.ndarray, name: str):
    """A single-cell argument's cell; a range is handed over whole, for the adapter to read
    as the omitted argument (a range of blanks, where it is optional) or refuse, as it does
    for xlwings."""
    if arr.size != 1:
        return _bridge_cells(arr)
    v = arr.reshape(-1)[0]
    return _excel_code(v) if isinstance(v, ErrorValue) else v


def _excel_code(error: ErrorValue) -> str:
    """Excel's code of an error IronCalc shows (its ``#CIRC!`` is Excel's ``#REF!`` here, its
    ``#ERROR!`` ``#NAME?``), as an xlmvar function is handed it."""
    return {CIRCULAR: "#REF!", UNPARSED: "#NAME?"}.get(error.code, error.code)


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
def _boxes(cells) -> dict:
    """Sheet index -> a (5, k) int array of the boxes of the cells ``(sheet, row, col, shape)``
    on it: rows r0, c0, r1, c1 and each box's position in ``cells``."""
    by_sheet: dict = {}
    for k, (sheet, row, col, shape) in enumerate(cells):
        h, w = shape or (1, 1)
        by_sheet.setdefault(sheet, []).append((row, col, row + h - 1, col + w - 1, k))
    return {sheet: np.array(rows, dtype=np.int64).T for sheet, rows in by_sheet.items()}


def _covering(boxes: dict, rng, first: bool = False) -> np.ndarray:
    """Positions (in the list given to :func:`_boxes`) of the boxes that meet the range
    ``(sheet, r0, c0, r1, c1)``; with ``first``, at most one."""
    sheet, r0, c0, r1, c1 = rng
    if sheet not in boxes:
        return np.empty(0, dtype=np.int64)
    b0, b1, b2, b3, at = boxes[sheet]
    hits = at[(b0 <= r1) & (b2 >= r0) & (b1 <= c1) & (b3 >= c0)]
    return hits[:1] if first else hits


def _cycles_of(roots, reads) -> list[list]:
    """The cycles of a graph reached from ``roots``, where ``reads(node)`` lists the nodes
    ``node`` reads: each strongly connected group of two or more nodes, and each node that
    reads itself (Tarjan's algorithm, without recursion; ``reads`` is asked once per node
    reached, a node never reached is never asked)."""
    index, low, on_stack, stack, groups = {}, {}, set(), [], []
    for root in roots:
        if root in index:
            continue
        work = [(root, iter(reads(root)))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(reads(child))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    group = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        group.append(member)
                        if member == node:
                            break
                    if len(group) > 1 or node in reads(node):
                        groups.append(group)
    return groups


def _circle(start, group: set, reads) -> list:
    """The nodes of a shortest circle from ``start`` back to it inside ``group`` (breadth
    first), ``start`` first."""
    parent, frontier = {}, [start]
    while frontier:
        following = []
        for node in frontier:
            for child in reads(node):
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(parent[path[-1]])
                    return path[::-1]
                if child in group and child not in parent:
                    parent[child] = node
                    following.append(child)
        frontier = following
    return [start]  # not reached: every node of a strongly connected group lies on a circle


class _Positions:
    """Which formula cells a range covers, asked once per distinct range a formula reads.

    ``cells[k] = (sheet, row, col, shape or None)`` is formula ``k``.  A range of at most
    :attr:`SMALL` cells looks its cells up in a dictionary of the one-cell formulas; a larger
    one uses the one-cell formulas of its sheet sorted by column, then row: the ones it
    covers are a run of positions in each of its columns, and each run is handed back as
    at most ``2 log2(n)`` nodes ``(sheet, v)`` of a segment tree over the positions (node
    ``v`` covers its children ``2v`` and ``2v + 1``; leaf ``size + p`` is position ``p``;
    :meth:`children`).  Overlapping ranges share nodes, so a column of running totals
    (``SUM($B$1:B9)`` filled down) adds ``O(log n)`` edges per formula, not ``O(n)``.  Array
    formulas (boxes of several cells, few) are tested box by box (:func:`_covering`).
    """

    SMALL = 64

    def __init__(self, cells):
        self.single: dict = {}
        multi = []
        for k, (sheet, row, col, shape) in enumerate(cells):
            if shape is None or shape == (1, 1):
                self.single[(sheet, row, col)] = k
            else:
                multi.append(k)
        self.multi = _boxes([cells[k] for k in multi])
        self.multi_ids = np.array(multi, dtype=np.int64)
        self._trees: dict | None = None  # sheet -> (keys, columns, size, formulas), on the first large range

    def _tree(self, sheet: int):
        if self._trees is None:
            by_sheet: dict = {}
            for (s, row, col), k in self.single.items():
                by_sheet.setdefault(s, []).append(((col << 21) | row, k))
            self._trees = {}
            for s, pairs in by_sheet.items():
                pairs.sort()
                keys = np.array([key for key, _ in pairs], dtype=np.int64)
                size = 1 << max(0, (len(pairs) - 1).bit_length())
                self._trees[s] = (keys, np.unique(keys >> 21), size, [k for _, k in pairs])
        return self._trees.get(sheet)

    def covered(self, rng) -> list:
        """The formulas (and segment nodes standing for runs of them) that meet ``rng``."""
        sheet, r0, c0, r1, c1 = rng
        out = []
        if (r1 - r0 + 1) * (c1 - c0 + 1) <= self.SMALL:
            get = self.single.get
            for r in range(r0, r1 + 1):
                for c in range(c0, c1 + 1):
                    k = get((sheet, r, c))
                    if k is not None:
                        out.append(k)
        elif (tree := self._tree(sheet)) is not None:
            keys, columns, size, formulas = tree
            i0, i1 = np.searchsorted(columns, [c0, c1 + 1])
            starts = np.searchsorted(keys, (columns[i0:i1] << 21) | r0)
            ends = np.searchsorted(keys, (columns[i0:i1] << 21) | r1, side="right")
            for lo, hi in zip(starts.tolist(), ends.tolist()):
                lo, hi = lo + size, hi + size
                while lo < hi:  # the canonical nodes of the run, bottom up
                    if lo & 1:
                        out.append(formulas[lo - size] if lo >= size else (sheet, lo))
                        lo += 1
                    if hi & 1:
                        hi -= 1
                        out.append(formulas[hi - size] if hi >= size else (sheet, hi))
                    lo, hi = lo >> 1, hi >> 1
        if sheet in self.multi:
            out.extend(self.multi_ids[_covering(self.multi, rng)].tolist())
        return out

    def children(self, node: tuple) -> list:
        """The two halves of a segment node: formulas (leaves) or segment nodes."""
        sheet, v = node
        size, formulas = self._trees[sheet][2], self._trees[sheet][3]
        return [formulas[c - size] if c >= size else (sheet, c) for c in (2 * v, 2 * v + 1)]


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
        self.referenced: set = set()  # the calls whose results a rewritten formula reads
        self.block_sheet, self.block_name = None, ""  # the sheet of those results (blocks)
        self.block_rows: dict = {}  # call -> (first row, rows) of its block
        self.next_block_row = 1
        self.stable: dict = {}  # range -> (cells, bridged range) of ranges holding no formula
        self.boxes: dict = {}  # sheet index -> boxes of its formula cells (see _boxes)
        self.progress = None  # callable(cell) told each xlmvar cell before it is computed
        self._names: list[str] = []  # sheet names by index
        self.dynamic: set = set()  # (sheet index, row, col) of the dynamic array formulas
        self.edges: dict = {}  # (sheet index, row, col) of a dynamic array -> (its stored range, filled beyond)
        self.spans: dict = {}  # (sheet index, row, col) of an xlmvar spill -> the shape it was placed with
        self.clock: dict = {}  # "NOW", "TODAY" -> the book's clock, read once per run (as text)
        self.unfaithful: dict = {}  # (sheet index, row, col) of a formula to keep at Excel's value in the next pass -> why
        self.grown: set = set()  # (sheet index, row, col) of the dynamic arrays seen past their stored range
        self.volatile: dict = {}  # (text, sheet, cell) -> value of a volatile expression argument
        self.extents: dict = {}  # sheet index -> (last row, last column) of the file's own cells
        self.native_cycles: dict = {}  # (sheet index, row, col, shape) of a native formula on a circle -> reason
        self._graph = None  # the graph of formulas _circles walked, for _computed_circles
        self._known_ranges: dict = {}  # (formula text, sheet index) -> the ranges it names (see _ranges)

    def _has_formulas(self, rng) -> bool:
        if rng[0] not in self.boxes or rng[0] == self.block_sheet:  # blocks or scratch: they change
            return True
        return _covering(self.boxes, rng, first=True).size > 0

    def index_formulas(self, anchors) -> None:
        """Index the boxes of every formula cell (and array range) by sheet."""
        self.boxes = _boxes([(self.model.sheets[sheet.lower()], row, col, shape) for sheet, row, col, shape in anchors])
        for index in range(len(self.model.sheets)):  # a sheet without formulas: an empty index
            self.boxes.setdefault(index, np.zeros((5, 0), dtype=np.int64))

    # planning --------------------------------------------------------------------------
    def pattern(self):
        """A regular expression finding a call of any of the functions."""
        names = "|".join(map(re.escape, self.functions))
        return re.compile(r"\b(?:_xludf\.)?(?:" + names + r")\s*\(", re.I)

    def plan(self, anchors, sheets: set, mentioned=None) -> None:
        """Take apart every formula calling an xlmvar function (only on ``sheets``).

        The sheet of results (:data:`BLOCK_PREFIX`, with ``_`` added until it names no sheet
        and, with ``mentioned(name)``, until the book's formulas and names do not mention it:
        ``INDIRECT("_xlmvar!A1")`` is ``#REF!`` in Excel, and must not find it)."""
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
            direct = template.strip() == _placeholder(mine[-1])
            self.cells.append(_Cell(index, row, col, shape, template, mine, direct))
        # one sheet of blocks, a block for every call whose result a rewritten formula refers
        # to (a call that is a whole formula puts its values straight into its cells: no
        # block); one sheet, because IronCalc evaluates the whole book to add a sheet
        self.referenced = {k for c in self.cells for k in (c.calls[:-1] if c.direct else c.calls)}
        if self.referenced:
            name = BLOCK_PREFIX
            while name.lower() in self.model.sheets or (mentioned is not None and mentioned(name)):
                name += "_"
            m.add_sheet(name)
            self.model.sheets[name.lower()] = len(self.model.sheets)
            self.block_sheet, self.block_name = self.model.sheets[name.lower()], name

    def _texts(self, cell: _Cell) -> list[str]:
        """The texts of a cell's formula: its calls' arguments and the template around them."""
        return [arg for k in cell.calls for arg in self.calls[k].args] + [cell.template]

    def _refs(self, cell: _Cell) -> list[tuple[int, int, int, int, int]]:
        """The ranges a cell's formula names (references and defined names), in its calls'
        arguments and in the native part around them (``=IFERROR(PORTVAR(...)/A9,1)``)."""
        return [rng for text in self._texts(cell) for rng in self._ranges(text, cell.sheet)]

    def _ranges(self, text: str, sheet: int) -> list[tuple[int, int, int, int, int]]:
        """``(sheet, r0, c0, r1, c1)`` of each range a formula text on ``sheet`` names: its
        references, its defined names that are references, its whole columns and rows
        (``A:A``, ``Data!1:3``, or a name defined as one).  Remembered by text and sheet (a
        covariance range that every cell names is read once)."""
        key = (text, sheet)
        if key in self._known_ranges:
            return self._known_ranges[key]
        text = _without_strings(_PLACEHOLDER.sub(" ", text))
        if "(" in text:
            text = _ADDRESS_ONLY.sub("0", text)
        out = []
        for m in _REFERENCE_TOKEN.finditer(text):
            token = m.group(0)
            if text.startswith("(", m.end()):  # a function (LOG10, ATAN2), not a cell
                continue
            if (area := _A1_AREA.fullmatch(token)) is not None:  # the common case (no name looks like a cell)
                r0, c0 = _row_col(area.group(1) + area.group(2))
                r1, c1 = _row_col(area.group(3) + area.group(4)) if area.group(3) else (r0, c0)
                out.append((sheet, min(r0, r1), min(c0, c1), max(r0, r1), max(c0, c1)))
            elif found := self.model.resolve(token, sheet) or self._line(self._definition(token, sheet), sheet):
                out.append(found)
        if ":" in text:
            out.extend(found for m in _LINE_TOKEN.finditer(text) if (found := self._line(m.group(0), sheet)))
        self._known_ranges[key] = out
        return out

    def _definition(self, token: str, sheet: int) -> str:
        """The text a defined name stands for on ``sheet`` (``""`` for anything else)."""
        owner, bang, name = token.rpartition("!")
        if bang:
            owner = owner[1:-1].replace("''", "'") if owner.startswith("'") else owner
            sheet = self.model.sheets.get(owner.lower(), -1)
        for scope in ((sheet,) if bang else (sheet, None)):
            if (name.lower(), scope) in self.model.names:
                return self.model.names[(name.lower(), scope)]
        return ""

    def _line(self, text: str, sheet: int):
        """``(sheet, r0, c0, r1, c1)`` of whole columns or rows (``A:C``, ``'S'!$2:$5``), or None."""
        m = _LINE.match(text.strip())
        if not m:
            return None
        if m.group("sheet"):
            name = m.group("sheet")
            sheet = self.model.sheets.get((name[1:-1].replace("''", "'") if name.startswith("'") else name).lower())
            if sheet is None:
                return None
        if m.group("c0"):
            c0, c1 = sorted((col_index(m.group("c0").upper()), col_index(m.group("c1").upper())))
            return sheet, 1, c0, 1_048_576, c1
        r0, r1 = sorted((int(m.group("r0")), int(m.group("r1"))))
        return sheet, r0, 1, r1, 16_384

    def _native_text(self, anchor) -> str:
        """The text of the native formula at ``anchor``, as IronCalc holds it now."""
        sheet, row, col, _ = anchor
        return self.model.m.get_cell_formula(sheet, row, col) or ""

    def order(self, anchors) -> tuple[list[list[_Cell]], dict, bool]:
        """Cells in levels of dependency order (direct references); the cells on a circular
        reference (cell index -> the circle, as text); and whether the references cover
        native formula cells (then indirect dependencies are possible: rounds repeat).

        Cells are placed level by level, in sheet order within a level: first those that
        read no other xlmvar cell, then those whose cells read are all placed, and so on
        (Kahn's algorithm).  A cell on a circular reference is an error, as Excel's circular
        references are here (see :meth:`_circles`), and counts as placed for the cells after
        it.  Each distinct range is tested once against the boxes of all formula cells on
        its sheet (vectorised): 4,000 cells took 20 s when every pair was compared in Python.
        """
        xl_boxes = _boxes([(c.sheet, c.row, c.col, c.shape) for c in self.cells])
        xl = {(c.sheet, c.row, c.col) for c in self.cells}
        natives = [(self.model.sheets[s.lower()], r, c, shape) for s, r, c, shape in anchors
                   if (self.model.sheets[s.lower()], r, c) not in xl]
        native_boxes = _boxes(natives)
        covered: dict = {}  # range -> indices of the xlmvar cells it covers
        computed = reads_natives = False
        needs, refs = [], [self._refs(cell) for cell in self.cells]
        for cell, ranges in zip(self.cells, refs):
            # a reference computed from text or an offset (INDIRECT, OFFSET) may reach any
            # cell, another xlmvar result through native formulas too: rounds repeat
            computed = computed or any(_COMPUTED.search(_without_strings(text)) for text in self._texts(cell))
            mine = set()
            for rng in ranges:
                if rng not in covered:
                    covered[rng] = _covering(xl_boxes, rng)
                    reads_natives = reads_natives or _covering(native_boxes, rng, first=True).size > 0
                mine.update(covered[rng].tolist())
            needs.append(mine)
        cycles = self._circles(needs, refs, natives, reads_natives or computed)
        self._known_ranges = {}  # (not needed past the order)
        waiting = [len(mine - cycles.keys()) for mine in needs]
        dependents: list[list[int]] = [[] for _ in self.cells]
        for k, mine in enumerate(needs):
            for other in mine - cycles.keys():
                dependents[other].append(k)
        levels = []
        level = [k for k, n in enumerate(waiting) if n == 0 and k not in cycles]
        while level:
            levels.append([self.cells[k] for k in level])
            following = []
            for k in level:
                for d in dependents[k]:
                    waiting[d] -= 1
                    if waiting[d] == 0 and d not in cycles:
                        following.append(d)
            level = sorted(following)
        return levels, {id(self.cells[k]): reason for k, reason in cycles.items()}, computed or reads_natives

    #: Circles named one by one in a strongly connected group; its other cells are named with it.
    MAX_CIRCLES = 50

    def _circles(self, needs: list[set], refs: list, natives: list, graph: bool) -> dict:
        """The xlmvar cells on a circular reference (index -> reason), with each native
        formula on one in :attr:`native_cycles` (anchor -> reason).

        Excel calls a formula that refers to its own cell, directly or through other
        formulas, a circular reference, whatever the values (``IF(ISNUMBER(A5),7,7)`` in B1
        with A5 ``=PORTVOL(B1:B2,...)``); with iterative calculation off it does not settle
        it.  The graph has a node per formula and an edge for each formula cell a range
        names (:meth:`_ranges`: references, names, whole columns).  Without ``graph`` (no
        xlmvar argument covers a native formula or computes a reference) it is the xlmvar
        cells and ``needs``; else the native formulas reachable from the xlmvar cells'
        ranges are added as they are reached (:class:`_Positions` finds the formulas a range
        covers), and only their formulas are read; the formulas reached that compute a
        reference (``INDIRECT``, ``OFFSET``) are remembered for :meth:`_computed_circles`.
        Each strongly connected group holding an xlmvar cell is one (:meth:`_named`).  A
        group of native formulas alone is IronCalc's (its ``#CIRC!``).
        """
        self.native_cycles, self._graph = {}, None
        x = len(self.cells)
        if graph:
            positions = _Positions([(c.sheet, c.row, c.col, c.shape) for c in self.cells] + natives)
            covered, memo, opaque = {}, {}, []

            def reads(node) -> list:
                if node in memo:
                    return memo[node]
                if type(node) is tuple:
                    found = positions.children(node)
                else:
                    found = []
                    texts = self._texts(self.cells[node]) if node < x else [self._native_text(natives[node - x])]
                    if any("(" in text and _COMPUTED.search(_without_strings(text)) for text in texts):
                        opaque.append(node)
                    for rng in refs[node] if node < x else self._ranges(texts[0], natives[node - x][0]):
                        if rng not in covered:
                            covered[rng] = positions.covered(rng)
                        found.extend(covered[rng])
                memo[node] = found
                return found
        else:
            def reads(node) -> list:
                return sorted(needs[node])

        reasons = self._named(_cycles_of(range(x), reads), reads, natives)
        if graph:
            self._graph = (reads, positions, natives, opaque)
        self.native_cycles = {natives[k - x]: why for k, why in reasons.items() if k >= x}
        return {k: why for k, why in reasons.items() if k < x}

    def _named(self, groups: list, reads, natives: list, known=()) -> dict:
        """Formula (node) -> reason, for the strongly connected ``groups`` holding an xlmvar
        cell: each cell is named by a shortest circle through it (``S!A5 -> S!B1 -> S!A5``:
        A5 reads B1, which reads A5); past :attr:`MAX_CIRCLES` circles in a group, its other
        cells by the group.  Nodes in ``known`` have their reason already."""
        x = len(self.cells)

        def where(node: int) -> str:
            sheet, row, col = (self.cells[node].sheet, self.cells[node].row, self.cells[node].col) if node < x \
                else natives[node - x][:3]
            return f"{self._name(sheet)}!{col_letters(col)}{row}"

        reasons: dict = {}
        for group in groups:
            cells = sorted(node for node in group if type(node) is not tuple)
            if not cells or cells[0] >= x:  # native formulas only: IronCalc's
                continue
            members, first = set(group), None
            for k, start in enumerate(cells):
                if start in reasons or start in known:
                    continue
                if k >= self.MAX_CIRCLES:
                    reasons[start] = (f"circular reference: {where(start)} is one of {len(cells)} cells that refer "
                                      f"to one another, among them {first}")
                    continue
                circle = [node for node in _circle(start, members, reads) if type(node) is not tuple]
                text = " -> ".join(map(where, circle + circle[:1]))
                first = first or text
                for node in circle:
                    if node not in known:
                        reasons.setdefault(node, f"{_CIRCLE}{text}{_NO_ITERATION}")
        return reasons

    def _computed_circles(self, cycles: dict) -> dict:
        """The circles that pass through a reference computed by ``INDIRECT`` or ``OFFSET``
        (``A5: =PORTVOL(B1:B2,...)``, ``B1: =INDIRECT("A5")*0+7``), found once the book is
        evaluated: each such call of a formula the graph reached is evaluated where its
        formula is (``ROW``, ``COLUMN``, ``ROWS``, ``COLUMNS`` and ``CELL("filename")`` of
        it, all in one evaluation), the range it gives becomes an edge, and the groups are
        found again.  The reference is the one the book's values give before any xlmvar call
        is computed (a reference that an xlmvar result moves is not followed).  Returns the
        xlmvar cells newly on a circle (``id`` -> reason); native ones join
        :attr:`native_cycles`."""
        if self._graph is None or not self._graph[3]:
            return {}
        reads, positions, natives, opaque = self._graph
        x = len(self.cells)
        probes = []  # (node, sheet, text of the probe)
        for node in dict.fromkeys(opaque):
            if node < x:
                cell = self.cells[node]
                sheet, at, texts = cell.sheet, (cell.row, cell.col), self._texts(cell)
            else:
                sheet, row, col, _ = natives[node - x]
                at, texts = (row, col), [self._native_text(natives[node - x])]
            for text in texts:
                for start, end, _ in find_calls(text, ("INDIRECT", "OFFSET")):
                    call = text[start:end]
                    if _PLACEHOLDER.search(call):
                        continue  # reads an xlmvar result: not known yet
                    call = _here(self._names_written_out(call, sheet), *at)
                    probes.append((node, sheet, f'=IFERROR(MIN(ROW({call}))&","&MIN(COLUMN({call}))&","&ROWS({call})&","&'
                                                f'COLUMNS({call})&","&CELL("filename",{call}),"")'))
        m = self.model.m
        places, free = [], {}
        for node, sheet, probe in probes:  # past the sheet's cells and every range a probe reads
            if sheet not in free:
                _, last_row, _, last_col = m.get_sheet_dimensions(sheet)
                if last_col > 16_384 - _PROBE_COLUMNS:  # the checks' probes: the sheet's own cells end before
                    last_col = self.extents.get(sheet, (last_row, 0))[1]
                free[sheet] = [last_row + 2, last_col + 2]
            for rng in self._ranges(probe, sheet):
                if rng[0] == sheet:
                    free[sheet][1] = max(free[sheet][1], rng[4] + 2)
        for node, sheet, probe in probes:
            row, col = free[sheet]
            if row <= 1_048_576 and col <= 16_384:
                m.set_user_input(sheet, row, col, probe)
                places.append((node, sheet, row, col))
                free[sheet][0] += 1
        if not places:
            return {}
        m.evaluate()
        extra: dict = {}
        for node, sheet, row, col in places:
            value = m.get_cell_value(sheet, row, col)
            m.range_clear_all(sheet, row, col, row, col)
            parts = value.split(",", 4) if isinstance(value, str) else []
            if len(parts) == 5 and all(_NUMBER.match(p) for p in parts[:4]):
                target = self.model.sheets.get(parts[4].rpartition("]")[2].lower())
                r0, c0, h, w = (int(float(p)) for p in parts[:4])
                if target is not None and h > 0 and w > 0:
                    extra.setdefault(node, []).extend(positions.covered((target, r0, c0, r0 + h - 1, c0 + w - 1)))
        self.model.dirty = True
        if not extra:
            return {}

        def more(node) -> list:
            return reads(node) + extra.get(node, []) if type(node) is not tuple else reads(node)

        known = {k for k, cell in enumerate(self.cells) if id(cell) in cycles} | \
            {x + k for k, anchor in enumerate(natives) if anchor in self.native_cycles}
        reasons = self._named(_cycles_of(range(x), more), more, natives, known)
        self.native_cycles.update({natives[k - x]: why for k, why in reasons.items() if k >= x})
        return {id(self.cells[k]): why for k, why in reasons.items() if k < x}

    def _where(self, cell: _Cell) -> str:
        return f"{self._name(cell.sheet)}!{col_letters(cell.col)}{cell.row}"

    # computing -------------------------------------------------------------------------
    def _substitute(self, text: str) -> str:
        """``text`` with each call's placeholder replaced by the range of its block."""
        def block(m):
            call = self.calls[int(m.group(1))]
            row = self.block_rows[call.block][0]
            h, w = call.shape
            ref = f"$A${row}" if (h, w) == (1, 1) else f"$A${row}:${col_letters(w)}${row + h - 1}"
            return f"'{self.block_name}'!{ref}"
        return _PLACEHOLDER.sub(block, text)

    def _lay(self, k: int, block: np.ndarray) -> None:
        """Put call ``k``'s new block on the sheet of blocks: in its rows while it fits them,
        else in new rows below the last block (a block does not move while it fits)."""
        m, sheet = self.model.m, self.block_sheet
        old = self.calls[k].value
        row, height = self.block_rows.get(k, (None, 0))
        if old is not None:
            m.range_clear_all(sheet, row, 1, row + old.shape[0] - 1, old.shape[1])
        if row is None or block.shape[0] > height:
            row, height = self.next_block_row, block.shape[0]
            if row + height - 1 > 1_048_576 or block.shape[1] > 16_384:
                raise ValueError(f"the results of the book's xlmvar calls do not fit a sheet ({block.shape[0]:,} x {block.shape[1]:,} more)")
            self.next_block_row += height
            self.block_rows[k] = (row, height)
        self.model.put_block(sheet, row, 1, block, mark=False)  # read by the cell placed after its level

    def _argument(self, text: str, sheet: int, at: tuple[int, int], is_range: bool, name: str, call: int = -1):
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
        # a call's values, set by compute() (the sheet of blocks is indexed, empty, when it was
        # added before the formulas were: it must never pass for a sheet of constants)
        block = found is not None and (found[0] not in self.boxes or found[0] == self.block_sheet)
        constant = found is not None and not block and not self._has_formulas(found) and not self._in_spill_zone(found)
        if self.model.dirty and found is not None and not constant and not block:
            self.model.evaluate()  # only formulas need it: not constants, not a call's block
        if found:
            arr = self.model.read(*found)
            if constant:
                self.stable[found] = (arr, _bridge_range(arr))
                return self.stable[found][1] if is_range else _bridge_scalar(arr, name)
        elif _VOLATILE.search(_unquoted(text)):  # an expression drawing: once per run, as in Excel
            key = (text, sheet, at, call)  # RAND() in two calls of a cell: two draws
            if key not in self.volatile:  # its draws made constants; the rest read again each round
                drawn, complete = self._drawn(text, sheet, at)
                self.volatile[key] = drawn if complete else self._expression(text, sheet, at)
                if not complete:  # RANDARRAY, RANDBETWEEN over an array: Excel draws each element
                    self.unfaithful[(sheet, *at)] = (
                        f"gives {name} random draws in a form (RANDARRAY, RANDBETWEEN over an array) the headless "
                        "calculator does not reproduce")
            frozen = self.volatile[key]
            arr = self._expression(frozen, sheet, at) if isinstance(frozen, str) else frozen
        else:  # an expression: evaluated where its cell is (its sheet, names, INDIRECT, ROW())
            arr = self._expression(text, sheet, at)
        if found is None and any(type(v) is ErrorValue and v.code == NOT_IMPLEMENTED for v in arr.flat):
            self.unfaithful[(sheet, *at)] = (  # (a form IronCalc lacks, RANDBETWEEN over an array)
                f"gives {name} an expression in a form the headless calculator's core does not implement")
        return _bridge_range(arr) if is_range else _bridge_scalar(arr, name)

    def _names_written_out(self, text: str, sheet: int) -> str:
        """``text`` with each defined name that is a reference written as that reference
        (``Data!Cov`` -> ``'Data'!$D$1:$E$2``): IronCalc parses neither a name local to
        another sheet nor a name outside ASCII."""
        if not self.model.names:
            return text

        def out(m):
            if m.group(1) and _A1.match(m.group(2)):
                return m.group(0)  # Data!B1: a reference already
            found = self.model.resolve(m.group(0), sheet)
            if found is None or (not m.group(1) and (m.group(2).lower(), sheet) not in self.model.names
                                 and (m.group(2).lower(), None) not in self.model.names):
                return m.group(0)
            name = self._name(found[0]).replace("'", "''")
            r0, c0, r1, c1 = found[1:]
            return f"'{name}'!${col_letters(c0)}${r0}:${col_letters(c1)}${r1}"

        parts = re.split(r'("(?:[^"]|"")*")', text)
        for k in range(0, len(parts), 2):
            parts[k] = _NAME_TOKEN.sub(out, parts[k])
        return "".join(parts)

    def _expression(self, text: str, sheet: int, at: tuple[int, int]) -> np.ndarray:
        """The value of an expression argument as the calling cell ``at`` on ``sheet`` sees
        it, as a 2-D object array, with a blank where the expression returns a reference to
        a blank cell (Excel hands an xlmvar function a reference's cells, not their values
        as a formula would show them: ``OFFSET(B1,0,0,3)`` with B3 blank is not 0 there).

        The expression is evaluated on the calling sheet itself, in a cell past the sheet's
        last row and column (so whole-column references of the sheet do not reach it), with
        ``ROW()`` and ``COLUMN()`` written as the calling cell's: sheet-local names, ``INDIRECT``
        of an address without a sheet and unqualified references then mean what they mean in
        the cell.  ``(expression&"")=""`` marks the blanks; it is never blank itself, so its
        spill gives the result's extent.
        """
        m = self.model.m
        _refuse_outside_its_cell(text)
        text = _here(self._names_written_out(text, sheet), *at)
        _, last_row, _, last_col = m.get_sheet_dimensions(sheet)
        if last_col > 16_384 - _PROBE_COLUMNS:  # the checks' probes: the sheet's own cells end before
            last_col = self.extents.get(sheet, (last_row, 0))[1]
        bare = _without_strings(text)
        for token in _REFERENCE_TOKEN.findall(bare):  # past what it reads, too
            found = self.model.resolve(token, sheet)
            if found and found[0] == sheet:
                last_row, last_col = max(last_row, found[3]), max(last_col, found[4])
        for c1 in _WHOLE_COLUMNS.findall(bare):  # E:E (of any sheet: at worst a column further)
            last_col = max(last_col, _bounds(f"{c1}1")[1])
        for r1 in _WHOLE_ROWS.findall(bare):  # 3:3
            last_row = max(last_row, int(r1))
        row, col = last_row + 2, last_col + 2
        if row > 1_048_576 or col > 16_384:
            raise ValueError("cannot evaluate this argument: the sheet has no free cell past its last row and "
                             "column and the ranges it reads")

        def spill(formula: str, shape=None) -> np.ndarray:
            m.set_user_input(sheet, row, col, formula)
            m.evaluate()
            if shape is None:
                h = w = 1
                while row + h <= 1_048_576 and not m.is_empty_cell(sheet, row + h, col):
                    h += 1
                while col + w <= 16_384 and not m.is_empty_cell(sheet, row, col + w):
                    w += 1
                shape = (h, w)
            out = self.model.read(sheet, row, col, row + shape[0] - 1, col + shape[1] - 1)
            m.range_clear_all(sheet, row, col, row + shape[0] - 1, col + shape[1] - 1)
            return out

        try:
            blank = spill(f'=IFERROR(({text})&""="",FALSE)')
            arr = spill(f"={text}", blank.shape)
        finally:
            self.model.dirty = True
        arr[(blank == True) & np.array([not isinstance(v, ErrorValue) for v in arr.flat]).reshape(arr.shape)] = None  # noqa: E712
        return arr

    def compute(self, call: _Call, cell: _Cell) -> bool:
        """Compute one call into its block; True when the block's values changed."""
        function = self.functions[call.name]
        kinds = self.kinds[call.name]
        try:
            if len(call.args) > len(kinds):
                raise ValueError(f"{call.name}: takes at most {len(kinds)} arguments, got {len(call.args)}")
            args = [self._argument(self._substitute(a), cell.sheet, (cell.row, cell.col), rng, p, call.block)
                    for a, (p, rng) in zip(call.args, kinds)]
            block = _result_block(function(*args))
        except Exception as exc:  # shown in the cell as #VALUE!, reason kept
            message = str(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}"
            block = np.array([[ErrorValue(getattr(exc, "excel_error", "#VALUE!"), message, call.name)]], dtype=object)
        changed = call.value is None or call.value.shape != block.shape or not all(
            _same(a, b) for a, b in zip(call.value.flat, block.flat))
        if changed and call.block in self.referenced:
            try:
                self._lay(call.block, block)
            except ValueError as exc:
                block = np.array([[ErrorValue("#VALUE!", str(exc), call.name)]], dtype=object)
                self._lay(call.block, block)
        if changed:
            call.value, call.shape = block, block.shape
        return changed

    def place(self, cell: _Cell) -> None:
        """Put a cell's result in place: its values (a bare call) or its rewritten formula."""
        dynamic = (cell.sheet, cell.row, cell.col) in self.dynamic
        if cell.direct:
            block = self.calls[cell.calls[-1]].value
            where = (cell.sheet, cell.row, cell.col)
            span = self.spans.get(where, cell.shape)  # the range last placed (stored, or larger)
            if not cell.shape:
                values = block[:1, :1]
            elif dynamic:  # a spill: as far as the result reaches where the cells are empty, as
                # in Excel (a larger one is reported as only partly written), blank beyond
                shape = (max(block.shape[0], cell.shape[0]), max(block.shape[1], cell.shape[1]))
                if shape != cell.shape and not self._room(where, shape, span):
                    shape = cell.shape  # (Excel's #SPILL!: the overflow is reported)
                values = np.full(shape, None, dtype=object)
                h, w = min(block.shape[0], shape[0]), min(block.shape[1], shape[1])
                values[:h, :w] = block[:h, :w]
                self.spans[where] = shape
            else:  # a legacy array: a single row or column repeated, #N/A where none reaches
                values = _fit(block, cell.shape)
            if cell.shape:  # IronCalc keeps the range as its array formula's spill: release it
                h, w = max(span[0], values.shape[0]), max(span[1], values.shape[1])
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
        if not dynamic:  # a legacy formula (one cell too) shows its array's top-left, no spill
            h, w = cell.shape or (1, 1)
            self.model.m.set_user_array_formula(cell.sheet, cell.row, cell.col, w, h, formula)
        else:  # a dynamic array spills from its anchor, as far as its result reaches
            self.model.m.update_cell_with_formula(cell.sheet, cell.row, cell.col, formula)
        self.model.dirty = True
        for k in cell.calls:
            v = self.calls[k].value.flat[0]
            if isinstance(v, ErrorValue) and v.reason:
                self.reasons[(cell.sheet, cell.row, cell.col)] = v

    def _room(self, where, shape, span) -> bool:
        """Whether the cells of ``shape`` from ``where`` past the range ``span`` last placed
        there are empty (a spill reaches only into empty cells)."""
        sheet, row, col = where
        m = self.model.m
        return all(m.is_empty_cell(sheet, row + i, col + j)
                   for i in range(shape[0]) for j in range(shape[1]) if i >= span[0] or j >= span[1])

    def fail(self, cell: _Cell, error: ErrorValue) -> None:
        """Show ``error`` (with its reason) in every cell of ``cell``'s range."""
        self._fail_at(cell.sheet, cell.row, cell.col, cell.shape, error)

    def _fail_at(self, sheet: int, row: int, col: int, shape, error: ErrorValue) -> None:
        """Show ``error`` (with its reason) in every cell of the formula at ``(row, col)``,
        in place of the formula."""
        h, w = shape or (1, 1)
        if shape:
            self.model.m.range_clear_contents(sheet, row, col, row + h - 1, col + w - 1)
        for i in range(h):
            for j in range(w):
                self.model.put(sheet, row + i, col + j, error)
                self.reasons[(sheet, row + i, col + j)] = error

    def freeze_volatile(self, anchors) -> None:
        """Make the draws of each native formula calling RAND, RANDBETWEEN, NOW or TODAY
        constants (the values they draw now): rounds of xlmvar calls evaluate the book again,
        and a new random draw each time would never settle (Excel draws once per
        recalculation), while the rest of the formula - which may read xlmvar results - is
        evaluated again in each round.  A formula whose draws cannot be made constants
        (RANDARRAY) is set to the value it has now, which may have been computed before the
        xlmvar results it reads: it is listed in :attr:`unfaithful`, and kept at Excel's value
        in the next pass (:func:`_evaluate_book`)."""
        m = self.model.m
        mine = {(c.sheet, c.row, c.col) for c in self.cells}
        for sheet, row, col, shape in anchors:
            index = self.model.sheets[sheet.lower()]
            if (index, row, col) in mine:
                continue
            text = (m.get_cell_formula(index, row, col) or "").removeprefix("=")
            if not _VOLATILE.search(_unquoted(text)):
                continue
            drawn, complete = self._drawn(text, index, (row, col))
            h, w = shape or (1, 1)
            if complete and (index, row, col) in self.dynamic or complete and not shape:
                m.update_cell_with_formula(index, row, col, "=" + drawn)
            elif complete:  # a legacy array formula
                m.range_clear_contents(index, row, col, row + h - 1, col + w - 1)
                m.set_user_array_formula(index, row, col, w, h, "=" + drawn)
            else:  # set to its value for this pass, and kept at Excel's value in the next
                values = self.model.read(index, row, col, row + h - 1, col + w - 1)
                if shape:
                    m.range_clear_contents(index, row, col, row + h - 1, col + w - 1)
                self.model.put_block(index, row, col, values)
                self.unfaithful[(index, row, col)] = (
                    "draws random numbers in a form (RANDARRAY, RANDBETWEEN over an array) whose draws the "
                    "headless calculator cannot hold across the rounds of the xlmvar calls its value may depend on")
            self.model.dirty = True

    def _drawn(self, text: str, sheet: int, at: tuple[int, int]) -> tuple[str, bool]:
        """``text`` with each call of RAND, RANDBETWEEN, NOW or TODAY made a constant draw
        (:meth:`_draw`), innermost first, and whether no volatile call is left (RANDARRAY,
        a call over an xlmvar result stay)."""
        left = 0  # calls left as they are, counted from the last
        while True:
            calls = find_calls(text, _DRAWN)
            if len(calls) <= left:
                return text, not _VOLATILE.search(_unquoted(text))
            start, end, name = calls[-(left + 1)]
            drawn = self._draw(name, text[start:end], sheet, at)
            if drawn is None:
                left += 1
            else:
                text = f"{text[:start]}({drawn}){text[end:]}"

    def _draw(self, name: str, call: str, sheet: int, at: tuple[int, int]) -> str | None:
        """A volatile call's draw as an expression without one, or ``None``: RAND a number
        drawn here; NOW and TODAY the book's clock, read once per run (Excel's is one per
        recalculation); ``RANDBETWEEN(a, b)`` ``ceil(a) + INT(u (floor(b) - ceil(a) + 1))``
        with ``u`` drawn here (``#NUM!`` when ``floor(b) < ceil(a)``, as in Excel), so that
        its bounds, which may read xlmvar results, are read in every round."""
        inner = call[call.index("(") + 1:-1]
        if _PLACEHOLDER.search(call) or _VOLATILE.search(_unquoted(inner)):
            return None
        if name == "RAND":
            return repr(_RANDOM.random()) if not inner.strip() else None
        if name in ("NOW", "TODAY"):
            if inner.strip():
                return None
            if name not in self.clock:
                value = self._expression(f"{name}()", sheet, at)
                self.clock[name] = repr(value[0, 0]) if value.shape == (1, 1) and type(value[0, 0]) is float else None
            return self.clock[name]
        args = [a.strip() or "0" for a in split_arguments(inner)]  # an omitted bound is 0, as in Excel
        if len(args) != 2 or not all(_SCALAR_BOUND.match(_without_strings(a)) for a in args):
            return None
        words = {w.lower() for a in args for w in _WORD.findall(_unquoted(a))}
        if any((w, scope) in self.model.names for w in words for scope in (sheet, None)):
            return None  # a name shaped like a cell (XFE1): it may hold a range
        a, b = (f"({x})" for x in args)
        low, high = f"-INT(-{a})", f"INT({b})"  # a first: its error is the one shown, as in Excel
        return f"IF({low}>{high},SQRT(-1),{low}+INT({_RANDOM.random()!r}*({high}-({low})+1)))"

    def draw_once(self, cell: _Cell) -> None:
        """Replace each volatile call in the native part of an xlmvar cell
        (``=PORTVAR(...)*RAND()``) by the value it draws now: the part is evaluated again
        in every round and at the end, and would draw again each time."""
        if _VOLATILE.search(_unquoted(cell.template)):
            cell.template = self._drawn(cell.template, cell.sheet, (cell.row, cell.col))[0]

    def run(self, anchors, max_rounds: int | None) -> int:
        """Compute the xlmvar cells, a level at a time: every call of a level is computed
        (the book evaluated at most once, before the first argument that reads a formula),
        then their results are placed.  Rounds repeat while a result changes and some
        argument reads native formulas (which may depend on a result)."""
        levels, cycles, indirect = self.order(anchors)
        self.model.evaluate()  # native results (and their spills) as they are before any call
        self.grown = self._spills_past()  # dynamic arrays past their stored ranges already: the
        indirect = indirect or bool(self.grown)  # cells past them are read as formulas, in rounds
        more = self._computed_circles(cycles)
        if more:  # (a level without them is still in order: they count as placed)
            cycles.update(more)
            levels = [kept for level in levels if (kept := [c for c in level if id(c) not in cycles])]
        if indirect:
            self.freeze_volatile(anchors)
        for cell in self.cells:
            self.draw_once(cell)
        for cell in self.cells:
            if id(cell) in cycles:
                self.fail(cell, ErrorValue("#REF!", cycles[id(cell)]))
        for (sheet, row, col, shape), reason in self.native_cycles.items():
            self._fail_at(sheet, row, col, shape, ErrorValue("#REF!", reason))
        limit = max_rounds or min(len(self.calls) + 2, MAX_ROUNDS)
        rounds = 0
        while True:
            rounds += 1
            changed = []
            for level in levels:
                now = []
                for cell in level:
                    if self.progress is not None:
                        self.progress(self._where(cell))
                    if any([self.compute(self.calls[k], cell) for k in cell.calls]) or rounds == 1:
                        now.append(cell)
                for cell in now:
                    self.place(cell)
                changed.extend(now)
            grown = self._spills_past() - self.grown if changed else set()
            if grown:  # cells past a stored range may have been read before they held their values
                self.grown |= grown
                self.stable.clear()  # (read as constants, perhaps)
                if not indirect:  # rounds, as for natives
                    indirect = True
                    self.freeze_volatile(anchors)
            if not changed or not indirect:
                return rounds
            if rounds >= limit:
                where = ", ".join(map(self._where, changed))
                error = ErrorValue("#VALUE!", f"circular dependency: the xlmvar results of {where} never settle")
                for cell in changed:
                    self.fail(cell, error)
                return rounds

    def _spills_past(self) -> set:
        """The dynamic arrays (native or xlmvar; their anchors) that now fill the cell just
        below or just right of the range stored in the file, which the file left empty: a
        larger result, whose cells an xlmvar argument may have read before they held their
        values."""
        if self.model.dirty:
            self.model.evaluate()
        m, past = self.model.m, set()
        for anchor, (t, filled) in self.edges.items():
            sheet = anchor[0]
            if (not filled[0] and t.r1 < 1_048_576 and not m.is_empty_cell(sheet, t.r1 + 1, t.c0)) \
                    or (not filled[1] and t.c1 < 16_384 and not m.is_empty_cell(sheet, t.r0, t.c1 + 1)):
                past.add(anchor)
        return past

    def _in_spill_zone(self, rng) -> bool:
        """Whether a dynamic array that has grown past its stored range may spill into ``rng``
        (below and right of its anchor): such a range is read again each time, never kept as
        constants."""
        sheet, _, _, r1, c1 = rng
        return any(s == sheet and r <= r1 and c <= c1 for s, r, c in self.grown)

    def _name(self, index: int) -> str:
        if len(self._names) != len(self.model.sheets):  # sheets are added for blocks
            self._names = [p["name"] for p in self.model.m.get_worksheets_properties()]
        return self._names[index]


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
    checks: dict = field(default_factory=dict)  # [_Check]: evaluated with the book, may keep Excel's value


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
    * structured references (``Table1[Col]``) are rewritten as the ranges they name;
    * a formula that applies a function IronCalc does not lift to an array where Excel does
      (``SUMPRODUCT(--ISBLANK(A1:A10))``) keeps Excel's value (:func:`_unlifted`);
    * lookups that may meet a blank cell, and formulas whose value may depend on the blank
      rows of a clipped whole column, get checks (``Plan.checks``) that are evaluated with
      the book and keep Excel's value where IronCalc's differs (:func:`_prepare_checks`);
    * approximate lookups, TEXT, SWITCH, LINEST/LOGEST/TREND/GROWTH, date and time parts get
      the checks of :mod:`._divergences` (DAY, MONTH, YEAR, WEEKDAY of a cell are rewritten
      to give Excel's answer before March 1900).

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
    lookups = _LOOKUP_CALL if {"MATCH", "XMATCH", "VLOOKUP", "HLOOKUP", "XLOOKUP", "LOOKUP"} & names else None
    quirks = _divergences.CALL if _divergences.NAMES & names else None  # TEXT, DAY, SECOND...
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
                source = _inline_names(source, fc.target.sheet, book, resolver, at=(fc.target.r0, fc.target.c0))
            except Unsupported as exc:
                out.kept[i] = str(exc)
                continue
            text = _without_strings(source)
        source = _array_values(out, i, source, fc, resolver)  # (array values IronCalc misreads)
        if source is None:
            continue
        t = fc.target
        one = t.r0 == t.r1 and t.c0 == t.c1 and not fc.array
        legacy = one and (":" in text or "[" in text or (any_name is not None and any_name.search(text)))
        if "[" not in text and not named and (":" not in text or not _may_be_large(text)):
            if legacy:  # a one-cell formula as Excel saved it before dynamic arrays: ranges meet its cell
                source = _implicit_intersection(source, fc, resolver)
            scalar = one and (legacy or source != fc.text or (any_name is not None and any_name.search(text)))
            why, source, extra = _kept_or_checked(source, fc, resolver, scalar, xlmvar, quirks and quirks.search(text), book)
            if why:
                out.kept[i] = why
                continue
            if source != fc.text:
                out.rewrites[i] = source
            if lookups is not None and lookups.search(text):
                out.checks[i] = _lookup_checks(source, fc.target.sheet, resolver, book)
            if extra:
                out.checks.setdefault(i, []).extend(extra)
            continue
        tokens = _tokens(source)
        ranges = [t for t in tokens if t.type == "OPERAND" and t.subtype == "RANGE"]
        try:
            plain = [t.value for t in ranges if not _is_structured(t.value)]
            rects = [resolver.resolve(value, fc.target.sheet) for value in plain]
            clipped_values = {value for value, rect in zip(plain, rects) if rect is not None and _clip(rect, book) != rect}
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
            rewritten = _rewrite_structured(source, book, fc.target.r0, (fc.target.sheet, fc.target.c0)) if "[" in text else source
        except ValueError as exc:
            out.failures[i] = ("#NAME?", str(exc))  # as the table's unknown name would be in Excel
            continue
        if legacy:  # before clipping: S!3:3 in row 5 is S!E3... wherever the sheet's cells end
            rewritten = _implicit_intersection(rewritten, fc, resolver)
        clipped = rewritten if native else _clipped_text(rewritten, fc.target.sheet, resolver, book)
        why, clipped, extra = _kept_or_checked(clipped, fc, resolver, one, xlmvar, quirks and quirks.search(text), book)
        if why:
            out.kept[i] = why
            continue
        if clipped != fc.text:
            out.rewrites[i] = clipped
        checks = _lookup_checks(clipped, fc.target.sheet, resolver, book) if lookups is not None and lookups.search(text) else []
        checks += extra
        if not native and "INDEX" in names and "INDEX" in text.upper():
            checks.extend(_index_checks(rewritten, clipped, fc.target.sheet, resolver, book))
        where = None if native else _blank_rows_matter(tokens, clipped_values)
        if where:  # the formula again with one more (blank) row or column: does its value change?
            shadow = _clipped_text(rewritten, fc.target.sheet, resolver, book, extra=1)
            checks.append(_Check("same", "{0}", f"its value depends on how many blank rows or columns {where} holds past "
                                                "the sheet's last filled cell, which the headless calculator does not read",
                                 value=shadow, sheet=book.sheets[fc.target.sheet].name))
        if checks:
            out.checks[i] = checks
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


#: A cell reference with a relative row or column (``B1``, ``$B1``, ``B$1``, ``B:B``, ``1:1``).
_RELATIVE = re.compile(r"(?<![A-Za-z0-9_.$\\])(?:[A-Za-z]{1,3}\$?[0-9]+|\$[A-Za-z]{1,3}[0-9]+"
                       r"|[A-Za-z]{1,3}:\$?[A-Za-z]{1,3}|\$[A-Za-z]{1,3}:[A-Za-z]{1,3}|[0-9]+:\$?[0-9]+|\$[0-9]+:[0-9]+)"
                       r"(?![A-Za-z0-9_(!])")
_CELL_PART = re.compile(r"^(?:(\$?)([A-Za-z]{1,3}))?(?:(\$?)([0-9]{1,7}))?$")


def _moved(definition: str, rows: int, columns: int) -> str:
    """``definition`` with every relative row moved ``rows`` down and every relative column
    ``columns`` right, wrapping past the last row or column as Excel does
    (``Risk!$B1:$C1`` moved 2 rows is ``Risk!$B3:$C3``; ``A1048576`` moved 1 row is ``A1``)."""
    from ._evaluator import MAX_COL, MAX_ROW, _tokens

    def part(text: str) -> str:
        m = _CELL_PART.match(text)
        if not m or not (m.group(2) or m.group(4)):
            return text
        dc, col, dr, row = m.groups()
        if col and not dc:
            col = col_letters((col_index(col) - 1 + columns) % MAX_COL + 1)
        if row and not dr:
            row = str((int(row) - 1 + rows) % MAX_ROW + 1)
        return f"{dc or ''}{col or ''}{dr or ''}{row or ''}"

    out = []
    for token in _tokens(definition):
        value = token.value
        if token.type == "OPERAND" and token.subtype == "RANGE" and not _is_structured(value):
            sheet, bang, ref = value.rpartition("!")
            if all(_CELL_PART.match(p) for p in ref.split(":")):
                value = sheet + bang + ":".join(part(p) for p in ref.split(":"))
        out.append(value)
    return "".join(out)


def _inline_names(text: str, sheet: str, book, resolver, depth: int = 0, at: tuple = (1, 1)) -> str:
    """``text`` with each defined name that is not a plain reference replaced by its
    definition in parentheses (``(0.99)``, ``(S!$B$1:INDEX(S!$B:$B,3))``).

    A name whose definition holds a relative reference (``RowPos = Risk!$B1:$C1``) is written
    out for the cell ``at`` (row, column) that uses it: the file stores it relative to A1, so
    in row ``r``, column ``c`` it means the reference moved ``r - 1`` rows and ``c - 1``
    columns, wrapping past the sheet's edge as Excel does (``Risk!$B3:$C3`` in row 3).
    IronCalc reads such a name as absolute.

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
                relative = _RELATIVE.search(_without_strings(definition)) is not None
                if relative:
                    definition = _moved(definition, at[0] - 1, at[1] - 1)
                if depth < 10:
                    definition = _inline_names(definition, sheet, book, resolver, depth + 1, at)
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
                elif relative:  # IronCalc would read it as absolute
                    value, changed = definition, True
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


#: Functions that hand a range argument on as it is (a reference): inside a function that
#: takes ranges whole they pass the whole range (``SUM(IFERROR(A1:A9,0))``), but at the top
#: of a legacy one-cell formula Excel reads one cell of it (``=IFERROR(Prices,0)`` in row 5:
#: the cell of row 5), where IronCalc read the range's first cell.
_PASSING = frozenset({"IFERROR", "IFNA", "CHOOSE"})


def _scalar_use(source: str, fc, resolver, names_only: bool, xlmvar_names) -> str | None:
    """The function, if any, in which a legacy formula reads a multi-cell range as one value
    (``=ABS(Prices)``): IronCalc reads the range's first cell there, Excel the cell in the
    formula's row or column.  ``names_only``: only defined names count (IronCalc gets an
    inline range right in a formula it loaded, not in one it was given as text)."""
    from ._evaluator import Unsupported, _tokens

    called = {_bare(n) for n in _FUNCTION_CALL.findall(_without_strings(source))}
    if not called - (_RANGE_FUNCTIONS - _PASSING) - set(xlmvar_names):  # only functions that take ranges whole
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
            if name in _PASSING and not any(f in _RANGE_FUNCTIONS and f not in _PASSING or f in xlmvar_names
                                            for f in stack[:-1]):
                pass  # IFERROR(Prices, 0) with no function around that takes the range: one value
            elif name in _RANGE_FUNCTIONS or name in xlmvar_names or (names_only and _A1.match(token.value.rpartition("!")[2])):
                continue
            try:
                rect = resolver.resolve(token.value, fc.target.sheet)
            except Unsupported:
                continue
            if rect is not None and rect.area > 1:
                return name
    return None


def _kept_or_checked(text: str, fc, resolver, scalar: bool, xlmvar_names, quirky, book):
    """``(why, text, checks)`` for formula ``fc`` given to IronCalc as ``text``: why it keeps
    Excel's value (:func:`_kept_for_arrays`), else None with the text the divergence rules
    rewrite and their checks (:func:`._divergences.checks`, when ``quirky``: the formula
    calls one of their functions)."""
    why = _kept_for_arrays(text, fc, resolver, scalar, xlmvar_names)
    if why or not quirky:
        return why, text, []
    text, extra = _divergences.checks(text, book.sheets[fc.target.sheet].name)
    return None, text, extra


def _kept_for_arrays(text: str, fc, resolver, scalar: bool, xlmvar_names) -> str | None:
    """Why formula ``fc``, given to IronCalc as ``text``, keeps Excel's value because of how
    it reads a range or array, or None: a multi-cell range read as one value inside a
    function (checked when ``scalar``: a legacy one-cell formula, :func:`_scalar_use`), or a
    function applied to each element of an array that IronCalc does not lift (:func:`_unlifted`)."""
    if scalar:
        inside = _scalar_use(text, fc, resolver, text == fc.text, xlmvar_names)
        if inside:
            return _scalar_reason(inside)
    return _unlifted(text, fc, resolver, text != fc.text, xlmvar_names)


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
    """A table reference: ``Table1[col]``, or ``[col]`` in the table's own cells (a bracket
    before a sheet, ``[1]Data!A1``, is another workbook)."""
    name, bracket, _ = token.partition("[")
    return bool(bracket and (name and not name.startswith("'") or not name and "!" not in token))


def _clipped_text(text: str, sheet: str, resolver, book, extra: int = 0) -> str:
    """``text`` with every range larger than the calculator reads replaced by its clipped form
    (``extra``: that many more rows, or columns, than the clip: blank ones, for a check)."""
    from ._evaluator import Rect, _clip, _tokens

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
                    if extra:
                        clipped = Rect(clipped.sheet, clipped.r0, clipped.c0,
                                       min(clipped.r1 + extra, rect.r1) if clipped.r1 < rect.r1 else clipped.r1,
                                       min(clipped.c1 + extra, rect.c1) if clipped.c1 < rect.c1 else clipped.c1)
                    name = book.sheets[clipped.sheet].name.replace("'", "''")
                    value, changed = f"'{name}'!{clipped.ref}", True
        out.append(value)
    return "".join(out) if changed else text


# --------------------------------------------------------------------------------------
# Array values (not references) given to aggregates and to criteria: IronCalc differs silently
# --------------------------------------------------------------------------------------
#: Aggregates that IronCalc 0.9 reads wrongly when an argument is an array *value* (an array
#: constant, or an expression over a range in an array formula), not a reference, measured
#: one by one against Excel's rules (and LibreOffice): ``"skipped"``: it ignores the array
#: (``COUNT({1,2,3})`` is 0, ``NPV(0.1,B1:B5*1)`` 0); ``"logical"``: it treats the logical
#: values of the array otherwise than Excel (Excel ignores them in AVERAGE... and counts them
#: in VARA...: ``AVERAGE(IF(C1:C5="x",B1:B5))`` averages IF's FALSEs as 0); ``"pairs"``: it
#: takes a logical or a text of the array as 0 where Excel drops the pair
#: (``SUMXMY2(IF(C1:C5="x",B1:B5,""),B1:B5)``), or gives #N/A (COVAR).  The value gives the first
#: argument concerned (NPV's rate is a number).  STDEV, VAR, MIN, MAX, SUM, SUMSQ, AVEDEV,
#: DEVSQ, MODE, LARGE, SMALL, PERCENTILE, QUARTILE, RANK, COUNTA, TRIMMEAN, FREQUENCY, IRR,
#: MIRR, XNPV, CORREL, PEARSON, RSQ, SLOPE, INTERCEPT, STEYX, FORECAST, SUMPRODUCT give Excel's
#: value over such arrays (measured), and all of them over a text-and-number array.
_ARRAY_VALUE_AGGREGATES = {
    "COUNT": ("skipped", 0), "NPV": ("skipped", 1),
    "AVERAGE": ("logical", 0), "MEDIAN": ("logical", 0), "SKEW": ("logical", 0), "SKEW.P": ("logical", 0),
    "KURT": ("logical", 0), "GEOMEAN": ("logical", 0), "HARMEAN": ("logical", 0), "VARA": ("logical", 0),
    "VARPA": ("logical", 0), "STDEVA": ("logical", 0), "STDEVPA": ("logical", 0),
    "SUMX2MY2": ("pairs", 0), "SUMX2PY2": ("pairs", 0), "SUMXMY2": ("pairs", 0), "COVAR": ("pairs", 0),
    "COVARIANCE.S": ("pairs", 0), "COVARIANCE.P": ("pairs", 0),
}
#: Functions that take one value at some arguments (the criteria: from the first position
#: given, every second one; RANK's number: that one only) and that Excel evaluates once per
#: element of an array given there, returning an array (``COUNTIF(C1:C5,{"x","y"})`` is
#: ``{3,2}``, ``{=SUM(RANK(B1:B5,B1:B5))}`` sums five ranks); IronCalc 0.9 gives 0, #DIV/0! or
#: one rank (SUMIF it applies per element, as Excel).  ``(first position, step)``.
_ARRAY_CRITERIA = {"COUNTIF": (1, 2), "COUNTIFS": (1, 2), "AVERAGEIF": (1, 2), "AVERAGEIFS": (2, 2), "SUMIFS": (2, 2),
                   "MAXIFS": (2, 2), "MINIFS": (2, 2), "RANK": (0, 0), "RANK.EQ": (0, 0), "RANK.AVG": (0, 0)}
#: Functions that return a logical value (or may, through their branches: :func:`_may_hold`).
_LOGICAL_RESULTS = frozenset("""ISBLANK ISNUMBER ISTEXT ISERROR ISERR ISNA ISLOGICAL ISNONTEXT ISFORMULA ISREF
ISEVEN ISODD AND OR XOR NOT TRUE FALSE EXACT""".split())
#: Functions that return a reference: ``AVERAGE(INDEX(B1:C5,0,1))`` reads a range.
_REFERENCE_FUNCTIONS = frozenset({"OFFSET", "INDEX", "INDIRECT"})
_ARRAY_VALUE_CALL = re.compile(r"(?<![A-Za-z0-9_.\\])(?:_xlfn\.)?(" + "|".join(
    map(re.escape, sorted(set(_ARRAY_VALUE_AGGREGATES) | set(_ARRAY_CRITERIA), key=len, reverse=True))) + r")\s*\(", re.I)


def _array_values(out: Plan, i: int, text: str, fc, resolver) -> str | None:
    """``text`` (formula ``i``, ``fc``) as IronCalc may evaluate it, or None when it keeps
    Excel's value (the reason recorded in ``out.kept``): it gives an array value where
    IronCalc differs from Excel without a word (see :func:`_array_value_use`).

    The commonest case is rewritten exactly instead: ``AVERAGE(IF(C1:C5="x",B1:B5))`` is
    ``AVERAGE(IF(C1:C5="x",B1:B5,""))`` in Excel (the FALSEs and the texts of an array are
    both ignored by the functions of :data:`_TEXT_IGNORED`), which IronCalc computes right.
    """
    if not (fc.array or fc.dynamic or fc.target.area > 1) and "{" not in text and "SUMPRODUCT" not in text.upper():
        return text  # a legacy formula without an array constant: no argument is an array
    if not _ARRAY_VALUE_CALL.search(text):
        return text
    from ._evaluator import _tokens

    tokens = _tokens(text)
    why, closes = _array_value_use(tokens, fc, resolver)
    if why:
        out.kept[i] = why
        return None
    if not closes:
        return text
    return "".join(',"")' if k in closes else t.value for k, t in enumerate(tokens))


def _array_value_use(tokens: list, fc, resolver) -> tuple[str | None, set]:
    """Why the formula ``fc`` (its ``tokens``) keeps Excel's value, or None; and the
    tokens closing an ``IF(condition, value)`` that may be given a third argument ``""``
    instead (an argument of a function of :data:`_TEXT_IGNORED` whose value holds no logical).

    * an aggregate of :data:`_ARRAY_VALUE_AGGREGATES` given an array value (not a bare
      reference) that IronCalc ignores (COUNT, NPV), or that may hold logical values
      (``IF(...)`` without its third argument, a comparison, ``{1,TRUE}``);
    * a function of :data:`_ARRAY_CRITERIA` given an array as a criterion (or as the number RANK ranks).

    An argument is an array when it holds an array constant, or, where Excel evaluates
    arrays (an array formula, or inside SUMPRODUCT in a legacy one), a range of more than one
    cell; elsewhere Excel reads one cell of the range (implicit intersection), as IronCalc does.
    """
    array_formula = fc.array or fc.dynamic or fc.target.area > 1
    closes = set()
    frames = []  # [function, argument index, first token of the argument, array context]
    depth_array = 0
    for k, token in enumerate(tokens):
        kind, sub = token.type, token.subtype
        if kind == "ARRAY":
            depth_array += 1 if sub == "OPEN" else -1
            continue
        if depth_array:
            continue
        if kind in ("FUNC", "PAREN") and sub == "OPEN":
            name = _bare(token.value[:-1].strip()) if kind == "FUNC" else "("
            context = array_formula or name == "SUMPRODUCT" or bool(frames and frames[-1][3])
            frames.append([name, 0, k + 1, context])
        elif frames and (kind == "SEP" and sub == "ARG" or kind in ("FUNC", "PAREN") and sub == "CLOSE"):
            name, position, start, context = frames[-1]
            argument = tokens[start:k]
            why = _array_argument_reason(name, position, argument, resolver, fc.target.sheet, context)
            close = _else_missing(argument) if why and name in _TEXT_IGNORED else None
            if close is not None:
                closes.add(start + close)
            elif why:
                return why, set()
            if sub == "CLOSE":
                frames.pop()
            else:
                frames[-1][1] += 1
                frames[-1][2] = k + 1
    return None, closes


#: Functions that ignore the logical values and the texts of an array alike, in Excel and
#: (the texts) in IronCalc: an IF's missing third argument may be "" there (measured).
_TEXT_IGNORED = frozenset({"AVERAGE", "MEDIAN", "SKEW", "SKEW.P", "KURT", "GEOMEAN", "HARMEAN"})


def _else_missing(argument: list) -> int | None:
    """Index (in ``argument``) of the token closing ``argument`` when it is exactly
    ``IF(condition, value)`` and ``value`` holds no logical value; else None."""
    start = next((k for k, t in enumerate(argument) if t.type != "WHITE-SPACE"), None)
    end = max((k for k, t in enumerate(argument) if t.type != "WHITE-SPACE"), default=None)
    if start is None or argument[start].type != "FUNC" or _bare(argument[start].value[:-1].strip()) != "IF" \
            or _top_level_end(argument, start) != end:
        return None
    args = _arguments(argument[start:end + 1])
    return end if len(args) == 2 and not _may_hold(args[1]) else None


def _array_argument_reason(name: str, position: int, argument: list, resolver, sheet: str, context: bool) -> str | None:
    """Why argument ``position`` of a call to ``name`` (its tokens ``argument``) makes the
    formula keep Excel's value (see :func:`_array_value_use`), or None."""
    text = "".join(t.value for t in argument)
    if name in _ARRAY_CRITERIA:
        first, step = _ARRAY_CRITERIA[name]
        at = position == first if not step else position >= first and (position - first) % step == 0
        if at and _is_array(argument, resolver, sheet, context):
            what = "a criterion" if step else f"argument {position + 1}, which takes one value"
            return (f"gives {name} the array {text} as {what} (Excel evaluates {name} once per element), "
                    "which the headless calculator's core does not")
        return None
    kind, first = _ARRAY_VALUE_AGGREGATES.get(name, (None, 0))
    if kind is None or position < first or _is_reference(argument) or not _is_array(argument, resolver, sheet, context):
        return None
    if kind == "skipped":
        return (f"gives {name} the array value {text} (not a reference), which the headless calculator's core "
                "ignores (Excel counts its numbers)")
    if _may_hold(argument, text=kind == "pairs"):
        held = "logical values or text" if kind == "pairs" else "logical values"
        return (f"gives {name} the array value {text}, which may hold {held} (IF without a third argument "
                f"gives FALSE): the headless calculator's core does not treat them as Excel does")
    return None


def _is_array(argument: list, resolver, sheet: str, context: bool) -> bool:
    """Whether ``argument`` holds an array constant or, in an array ``context``, a range (or
    name) of more than one cell."""
    from ._evaluator import Unsupported

    for token in argument:
        if token.type == "ARRAY":
            return True
        if context and token.type == "OPERAND" and token.subtype == "RANGE" and not _is_structured(token.value):
            try:
                rect = resolver.resolve(token.value, sheet)
            except Unsupported:
                continue
            if rect is None or rect.area > 1:  # (an unknown name may be an array)
                return True
        elif context and token.type == "OPERAND" and token.subtype == "RANGE":
            return True  # a table column
    return False


def _unwrapped(argument: list) -> list:
    """``argument`` without the parentheses around all of it."""
    while len(argument) >= 2 and argument[0].type == "PAREN" and argument[-1].type == "PAREN" \
            and _top_level_end(argument, 0) == len(argument) - 1:
        argument = argument[1:-1]
    return argument


def _top_level_end(tokens: list, start: int) -> int:
    """Index of the token closing the parenthesis, call or array that opens at ``start``."""
    depth = 0
    for k in range(start, len(tokens)):
        if tokens[k].subtype == "OPEN":
            depth += 1
        elif tokens[k].subtype == "CLOSE":
            depth -= 1
            if depth == 0:
                return k
    return len(tokens)


def _is_reference(argument: list) -> bool:
    """Whether ``argument`` is a bare reference (``B1:B5``, ``(Prices)``) or one call of a
    function that returns one (``INDEX(B1:C5,0,1)``)."""
    argument = _unwrapped(argument)
    if len(argument) == 1:
        return argument[0].type == "OPERAND" and argument[0].subtype == "RANGE"
    return bool(argument) and argument[0].type == "FUNC" and _bare(argument[0].value[:-1].strip()) in _REFERENCE_FUNCTIONS \
        and _top_level_end(argument, 0) == len(argument) - 1


def _arguments(call: list) -> list:
    """The arguments (token lists) of the call ``call`` (its first token opens it, its last closes it)."""
    args, current, depth = [], [], 0
    for token in call[1:-1]:
        if token.subtype == "OPEN":
            depth += 1
        elif token.subtype == "CLOSE":
            depth -= 1
        if depth == 0 and token.type == "SEP" and token.subtype == "ARG":
            args.append(current)
            current = []
            continue
        current.append(token)
    return args + [current]


def _may_hold(argument: list, text: bool = False) -> bool:
    """Whether the array value ``argument`` may hold TRUE or FALSE (or, with ``text``, a
    text): a comparison, a logical constant, a function of :data:`_LOGICAL_RESULTS`, IF
    without its third argument, or an IF/IFS/IFERROR/IFNA/CHOOSE/SWITCH one of whose results
    may; not arithmetic (``--(C1:C5="x")``, ``B1:B5*2``).  A range's cells count as numbers.
    Conservative: True when unsure."""
    argument = _unwrapped(argument)
    if not argument:
        return False
    depth, infix = 0, set()
    for token in argument:
        if token.subtype == "OPEN":
            depth += 1
        elif token.subtype == "CLOSE":
            depth -= 1
        elif depth == 0 and token.type == "OPERATOR-INFIX":
            infix.add(token.value)
    if infix & {"=", "<>", "<", ">", "<=", ">="}:
        return True
    if infix or argument[0].type == "OPERATOR-PREFIX" or argument[-1].type == "OPERATOR-POSTFIX":
        return text and bool(infix - {"+", "-", "*", "/", "^"})  # arithmetic gives numbers, "&" text
    if argument[0].type == "ARRAY":
        return any(t.subtype == "LOGICAL" or text and t.subtype == "TEXT" for t in argument)
    if len(argument) == 1:
        return argument[0].subtype == "LOGICAL" or text and argument[0].subtype == "TEXT"
    if argument[0].type != "FUNC" or _top_level_end(argument, 0) != len(argument) - 1:
        return True
    name, args = _bare(argument[0].value[:-1].strip()), _arguments(argument)
    if name in _LOGICAL_RESULTS:
        return True
    if name == "IF":
        return len(args) < 3 or any(_may_hold(a, text) for a in args[1:])
    if name in ("IFERROR", "IFNA"):
        return any(_may_hold(a, text) for a in args)
    if name in ("IFS", "SWITCH"):
        return True
    if name == "CHOOSE":
        return any(_may_hold(a, text) for a in args[1:])
    return text or name in _REFERENCE_FUNCTIONS  # a reference's cells may be logical; others give numbers or text


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

    The xlmvar cells are computed before the checks that find, once the book is evaluated,
    a native formula whose value is not Excel's (it then keeps Excel's cached value): an
    xlmvar cell may have read the value the check refused.  When a check keeps a formula
    so and xlmvar cells were computed, the book is evaluated again from the start with that
    formula kept from the outset, so every cell after it - xlmvar or native - reads Excel's
    value (a cell kept late used to leave the xlmvar cells that read it with IronCalc's).
    The rest of this docstring is :func:`_evaluate_once`'s.

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
    also: dict = {}
    while True:  # each pass keeps at least one more formula from the outset: it ends
        evaluation, late = _evaluate_once(path, book, make_error, functions, progress, also)
        if not late:
            return evaluation
        also.update(late)


def _evaluate_once(path, book, make_error, functions, progress, also: dict):
    """:func:`_evaluate_book` once, with the formulas of ``also`` (index -> why) kept from the
    outset.  Returns the evaluation and the formulas kept late (by a check, or as a form
    IronCalc lacks, after the xlmvar cells were computed; empty if none was computed)."""
    from ._evaluator import Evaluation, _cached, _error_fill

    def table():
        nonlocal functions
        if functions is None:
            from ..excel import FUNCTIONS as functions
        return functions

    steps = plan(book, lambda: list(table()))
    for i, why in also.items():  # kept late by an earlier pass: kept from the outset now
        steps.rewrites.pop(i, None)
        steps.checks.pop(i, None)
        steps.failures.pop(i, None)
        steps.kept[i] = why
    if steps.functions & {"SHEET", "SHEETS", "INFO"}:
        _sheet_numbers(book, _every_sheet(path, book), steps)
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
    probes, keep = _prepare_checks(model, book, steps.checks, index, skip, path, texts, steps.functions)
    for i, why in keep.items():  # Excel's value, and dependents computed from it
        steps.kept[i] = why
        _put_target(model, index[i], formulas[i].target, _cached(formulas[i], book))
        skip.add(i)
    if progress is not None and formulas:
        progress(0, len(formulas), f"{formulas[0].sheet}!{formulas[0].anchor}")
    anchors = _Anchors(formulas, skip)
    sheets = _xlmvar_sheets(book, run.pattern()) if steps.functions & set(run.functions) else set()
    if sheets:  # (a book without xlmvar calls has nothing to plan, nor to index: only they read it)
        run.plan(_Anchors(formulas, skip, sheets), sheets, lambda name: _mentioned(name, book))
    if run.cells:
        run.index_formulas(anchors)
        run.dynamic = {(index[i], formulas[i].target.r0, formulas[i].target.c0) for i in dynamics}
        run.edges = {(index[i], formulas[i].target.r0, formulas[i].target.c0): (formulas[i].target, filled[i])
                     for i in dynamics if i not in skip}
        run.extents = {model.sheets[name.lower()]: (sheet.max_row, sheet.max_col) for name, sheet in book.sheets.items()
                       if name.lower() in model.sheets}
        run.progress = progress and (lambda cell: progress(0, len(formulas), cell))
        run.run(anchors, None)
    kept = dict(steps.kept)
    late: dict = {}  # kept once the xlmvar cells were computed (which may have read them)
    while True:
        model.evaluate()
        values = _read_values(run, formulas, index, skip)
        special = {i: v for i, v in values.items() if isinstance(v, (ErrorValue, np.ndarray))}  # the few to look at
        missing = _showing(special, NOT_IMPLEMENTED)
        # a probe of a formula that reads a cell showing #N/IMPL! would find that error, though
        # the cell is about to keep Excel's value: it waits (the others are read first, as a
        # cell may show #N/IMPL! only because a value they refuse led it there)
        waiting = {i for i, *_ in probes if any(formulas[j].target.intersects(rect) for rect in _inputs(book, i)
                                                for j in missing)} if missing and probes else set()
        diverging = _diverging(model, probes, formulas, index, skip | waiting) if probes else {}
        for i, why in diverging.items():  # a check says IronCalc's value is not Excel's
            kept[i] = late[i] = why
            _put_target(model, index[i], formulas[i].target, _cached(formulas[i], book))
            skip.add(i)
            missing.discard(i)
        if diverging:
            model.dirty = True
            continue
        if not missing:
            break
        # the cells that fail themselves, not through an input that failed (those follow)
        own = {i for i in missing if not any(formulas[j].target.intersects(rect) for rect in _inputs(book, i)
                                             for j in missing if j != i)} or missing
        # (one that reads a formula whose probe waits may fail only through a value it refuses)
        own = {i for i in own if not any(formulas[w].target.intersects(rect) for rect in _inputs(book, i)
                                         for w in waiting)} or own
        for i in own:  # a form IronCalc lacks: Excel's value, and dependents computed from it
            used = ", ".join(sorted({_bare(n) for n in _FUNCTION_CALL.findall(_without_strings(formulas[i].text))}))
            kept[i] = late[i] = (f"calls {used} in a form the headless calculator does not implement" if used
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
    for cell in run.cells:  # a bare call's result is laid on the stored range: larger is said
        i = dynamic.get((cell.sheet, cell.row, cell.col))  # (any other formula spills in IronCalc)
        value = run.calls[cell.calls[-1]].value
        if cell.direct and i is not None and i not in overflows and value is not None:
            why = overflow_reason(value.shape, formulas[i].target)
            if why:
                overflows[i] = why
    where = {(index[i], formulas[i].target.r0, formulas[i].target.c0): i for i in range(len(formulas))}
    for anchor, why in run.unfaithful.items():  # frozen whole, or fed IronCalc's own error
        if anchor in where:
            kept[where[anchor]] = late[where[anchor]] = why
    return Evaluation(out, failures, kept, overflows), (late if run.cells else {})


def _every_sheet(path, book) -> list[str]:
    """The names of every sheet of the workbook in its order, chart sheets too (``book.order``
    has the worksheets only, IronCalc loads the worksheets only)."""
    from ._xlsx import Archive

    with Archive(path, book.limits) as archive:
        root = archive.xml(archive.workbook_part())
        return [node.get("name", "") for node in root.iter(f"{_NS}sheet")] or list(book.order)


def _mentioned(name: str, book) -> bool:
    """Whether a formula or a defined name of ``book`` holds ``name`` (any case)."""
    low = name.lower()
    return any(low in fc.text.lower() for fc in book.formulas) or any(low in d.lower() for d in book.names.values())


_SHEET_FUNCTIONS = ("SHEET", "SHEETS", "INFO", "_XLFN.SHEET", "_XLFN.SHEETS")
_SHEET_CALL = re.compile(r"(?<![\w.])(?:_xlfn\.)?(?:SHEETS?|INFO)\s*\(", re.IGNORECASE)
#: INFO types IronCalc 0.9 does not implement (measured): its #N/IMPL! keeps Excel's value.
#: It answers the others from its own session ("numfile": its sheets, "system": "linux",
#: "release": "unknown", "recalc": "Automatic").
_INFO_NOT_IMPLEMENTED = frozenset({"directory", "origin", "osversion"})


def _sheet_numbers(book, every: list[str], steps: Plan) -> None:
    """Give ``SHEET`` and ``SHEETS`` Excel's numbers, keep ``INFO``'s value (in ``steps``).

    Excel numbers and counts every sheet of the workbook, hidden ones and chart sheets
    included (``every``); IronCalc knows the worksheets only, and the sheet of intermediate
    results (:meth:`_Run.plan`) once it is added.  So ``SHEETS()`` is written as the count of
    ``every``, ``SHEET()`` as the position of the formula's sheet in it, ``SHEET("Risk")`` and
    ``SHEET(Risk!A1)`` (a reference or a name of one; IronCalc gave ``#VALUE!`` or did not
    implement it) as the position of that sheet, ``#N/A`` for a name that is no sheet, as
    Excel.  ``SHEET`` of a computed value keeps Excel's value.  ``INFO`` describes the Excel
    session that saved the book (``"numfile"``: the worksheets of every open workbook,
    ``"release"``, ``"system"``...): a formula calling it keeps Excel's value (the types
    IronCalc does not implement already do).  ``SHEETS(reference)`` is IronCalc's (not
    implemented there: kept).
    """
    from ._evaluator import Unsupported, _Resolver

    position = {name.upper(): k for k, name in enumerate(every, start=1)}
    resolver = _Resolver(book)
    for i, fc in enumerate(book.formulas):
        if i in steps.kept or i in steps.failures:
            continue
        source = steps.rewrites.get(i, fc.text)
        if not _SHEET_CALL.search(source):  # (a regular expression first: find_calls walks each character)
            continue
        calls = find_calls(source, _SHEET_FUNCTIONS)
        if not calls:
            continue
        why, out, end = None, [], 0
        for start, stop, name in calls:
            if start < end:  # inside a call already written out (SHEET(INDIRECT(...)) is kept)
                continue
            name = _bare(name)
            inner = source[start:stop]
            args = split_arguments(inner[inner.index("(") + 1:-1])
            arg = args[0].strip() if args else ""
            if name == "INFO":
                if arg.strip('"').lower() in _INFO_NOT_IMPLEMENTED and arg.startswith('"'):
                    continue  # IronCalc's #N/IMPL!: kept already, with that reason
                why = (f"calls INFO({arg}), which describes the Excel session that saved the workbook "
                       "(its open workbooks, version, system)")
                break
            if name == "SHEETS":
                if arg:
                    continue  # SHEETS(reference): IronCalc's
                value = str(len(every))
            elif not arg:
                value = str(position.get(fc.target.sheet.upper(), "NA()"))
            elif len(arg) >= 2 and arg[0] == arg[-1] == '"' and '"' not in arg[1:-1].replace('""', ""):
                found = position.get(arg[1:-1].replace('""', '"').upper())
                value = "NA()" if found is None else str(found)
            else:
                try:
                    rect = resolver.resolve(arg, fc.target.sheet)
                except Unsupported:
                    rect = None
                if rect is None:
                    why = f"calls SHEET of a computed value ({arg}), which the headless calculator does not number as Excel does"
                    break
                value = str(position.get(rect.sheet.upper(), "NA()"))
            out.append(source[end:start] + value)
            end = stop
        if why:
            steps.kept[i] = why
            steps.rewrites.pop(i, None)
            steps.checks.pop(i, None)
        elif out:
            steps.rewrites[i] = "".join(out) + source[end:]


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
    """The formulas whose value, or a cell of whose array, is the error ``code`` (a cell
    past the anchor too: IronCalc's own codes are no error of Excel's, and must not reach
    the file)."""
    return {i for i, v in values.items()
            if (type(v) is ErrorValue and v.code == code)
            or (type(v) is np.ndarray and any(type(x) is ErrorValue and x.code == code for x in v.flat))}


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
                    if not err.function and err.reason.startswith(_CIRCLE):  # behind a circle, not on it
                        err = ErrorValue(err.code, "depends on a " + err.reason.removesuffix(_NO_ITERATION))
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


# --------------------------------------------------------------------------------------
# Values IronCalc would give without a word where Excel's differ: computed by a check, or kept
# --------------------------------------------------------------------------------------
#: Functions IronCalc 0.9.1 applies element by element to an array argument in a formula
#: it evaluates as an array (a dynamic array, or one it was given as text), measured one by
#: one (``tests/test_calc_divergences.py`` measures them again).  Any other function given an
#: array where Excel lifts it reads one value (``ISBLANK(A1:A10)`` is FALSE, ``ROUND`` #VALUE!).
_LIFTED = frozenset("""ABS ACOS ASIN ATAN CHOOSE CLEAN COS COSH COT CSC DATE DAY EVEN EXACT EXP FACT FIND IF
IFERROR IFNA INT ISOWEEKNUM LEFT LEN LN LOG10 LOWER MID MONTH ODD POWER PROPER RADIANS REPLACE REPT
RIGHT SEARCH SEC SIGN SIN SINH SQRT SUBSTITUTE SUMIF TAN TANH TEXT TRIM UPPER WEEKDAY YEAR""".split())
#: ... and in a legacy formula (one Excel saved without ``t="array"``), where Excel still
#: lifts inside SUMPRODUCT: IronCalc lifts only these there (LEN(A1:A10) is #VALUE!).
_LIFTED_LEGACY = frozenset({"IF", "IFERROR", "IFNA"})
#: Functions IronCalc does not lift that then give a value, not an error, for the array
#: (ISBLANK(A1:A10) is FALSE, SWITCH its default): a silent difference.  Any other function
#: it does not lift shows #VALUE! (or #N/A), a visible difference unless a function around
#: it turns errors into values (:data:`_SWALLOWING`).
_SILENT_UNLIFTED = frozenset("""ISBLANK ISNUMBER ISTEXT ISERROR ISERR ISNA ISLOGICAL ISNONTEXT ISFORMULA
ISEVEN ISODD T N SWITCH""".split())
#: Functions that turn an error into a value.
_SWALLOWING = frozenset("""IFERROR IFNA ISERROR ISERR ISNA ISNUMBER ISTEXT ISLOGICAL ISNONTEXT ISBLANK
ERROR.TYPE TYPE AGGREGATE COUNT""".split())
#: Functions that return an array when they are given one (beyond the lifted ones).
_ARRAY_RESULTS = frozenset("""FILTER SORT SORTBY UNIQUE TRANSPOSE MMULT MINVERSE TAKE DROP CHOOSEROWS
CHOOSECOLS VSTACK HSTACK TOCOL TOROW WRAPROWS WRAPCOLS EXPAND OFFSET""".split())
#: The argument (0-based) of a function that Excel lifts over an array although the
#: function takes ranges elsewhere: the lookup value of the lookups.
_SCALAR_ARGUMENT = {"MATCH": 0, "XMATCH": 0, "VLOOKUP": 0, "HLOOKUP": 0, "XLOOKUP": 0, "LOOKUP": 0}
#: Functions that evaluate their arguments as arrays in a legacy formula too.
_ARRAY_CONTEXT = frozenset({"SUMPRODUCT"})
#: Functions that take an array whole (besides :data:`_RANGE_FUNCTIONS`): no lifting.
_WHOLE_ARRAYS = frozenset("AND OR XOR TYPE ISREF LET LAMBDA MAP BYROW BYCOL REDUCE SCAN MAKEARRAY ARRAYTOTEXT".split())


def _array_arguments(tokens, resolver, sheet: str, array_formula: bool, lifts: bool, whole=frozenset()):
    """``(function, argument text)`` of the first call that Excel applies element by element
    to an array argument and IronCalc does not (see :data:`_LIFTED`), or None.

    An argument is an array when it holds a range or name of more than one cell, an array
    constant, or the result of an operator or lifted function over one.  Only arrays Excel
    evaluates as arrays count: anywhere in an array formula, inside SUMPRODUCT in a legacy
    one (elsewhere a legacy formula reads one cell of the range: implicit intersection,
    which IronCalc does as Excel does).  ``whole``: more functions that take arrays whole
    (xlmvar's).
    """
    from ._evaluator import Unsupported

    lifted = _LIFTED if lifts else _LIFTED_LEGACY
    frames = []  # [name, argument index, argument holds an array, start of argument, inside an array context]
    depth_array = 0
    for k, token in enumerate(tokens):
        kind, sub = token.type, token.subtype
        if kind == "ARRAY":
            depth_array += 1 if sub == "OPEN" else -1
            if sub == "OPEN" and frames:
                frames[-1][2] = True
            continue
        if kind in ("FUNC", "PAREN") and sub == "OPEN":
            name = _bare(token.value[:-1].strip()) if kind == "FUNC" else "("
            context = array_formula or name in _ARRAY_CONTEXT or bool(frames and frames[-1][4])
            frames.append([name, 0, False, k + 1, context])
            continue
        if kind == "SEP" and sub == "ARG" and not depth_array and frames:
            found = _lifting_missed(frames, lifted, tokens, k, whole)
            if found:
                return found
            frames[-1][1] += 1
            frames[-1][2] = False
            frames[-1][3] = k + 1
            continue
        if kind in ("FUNC", "PAREN") and sub == "CLOSE" and frames:
            found = _lifting_missed(frames, lifted, tokens, k, whole)
            if found:
                return found
            name, _, array, _, _ = frames.pop()
            if frames and array and (name == "(" or name in lifted or name in _ARRAY_RESULTS):
                frames[-1][2] = True
            continue
        if kind == "OPERAND" and sub == "RANGE" and frames and not _is_structured(token.value):
            try:
                rect = resolver.resolve(token.value, sheet)
            except Unsupported:
                rect = None
            if rect is not None and rect.area > 1:
                frames[-1][2] = True
    return None


def _lifting_missed(frames, lifted, tokens, end: int, whole=frozenset()):
    """The innermost frame's ``(function, argument)`` when that argument is an array Excel
    lifts the function over and IronCalc does not, and the difference is silent (a value,
    or an error that a function around it turns into one)."""
    name, position, array, start, context = frames[-1]
    if not (array and context) or name == "(" or name in lifted:
        return None
    if name in _RANGE_FUNCTIONS and _SCALAR_ARGUMENT.get(name) != position:
        return None  # a function that takes the range whole there
    if name in _ARRAY_RESULTS or name in _ARRAY_CONTEXT or name in _WHOLE_ARRAYS or name in whole:
        return None
    if name not in _SILENT_UNLIFTED and name not in _SCALAR_ARGUMENT \
            and not any(outer[0] in _SWALLOWING for outer in frames[:-1]):
        return None  # IronCalc shows #VALUE!: a visible difference, reported as an error
    return name, "".join(t.value for t in tokens[start:end])


def _lifting_reason(found) -> str:
    function, argument = found
    return (f"applies {function} to each element of the array {argument} (Excel does), which the "
            "headless calculator's core does not: it would read one value")


def _unlifted(text: str, fc, resolver, rewritten: bool, whole=frozenset()) -> str | None:
    """Why ``text`` (formula ``fc`` as IronCalc will evaluate it) keeps Excel's value: it
    applies a function IronCalc does not lift to an array (see :func:`_array_arguments`);
    None when it does not.  ``rewritten``: IronCalc is given the text (it then evaluates the
    formula as a dynamic array), else it evaluates the formula it loaded.  ``whole``: more
    functions that take arrays whole (xlmvar's)."""
    array_formula = fc.array or fc.dynamic or fc.target.area > 1
    if "(" not in text or not array_formula and "SUMPRODUCT" not in text.upper():
        return None  # no function; or a legacy formula: Excel reads one cell of a range (implicit intersection)
    called = {_bare(n) for n in _FUNCTION_CALL.findall(_without_strings(text))}
    if not array_formula and not called & _ARRAY_CONTEXT:
        return None
    lifted = _LIFTED if array_formula or rewritten else _LIFTED_LEGACY
    if not (called - lifted - _ARRAY_RESULTS - _ARRAY_CONTEXT - _WHOLE_ARRAYS - whole - (_RANGE_FUNCTIONS - set(_SCALAR_ARGUMENT))):
        return None
    from ._evaluator import _tokens

    found = _array_arguments(_tokens(text), resolver, fc.target.sheet, array_formula, array_formula or rewritten, whole)
    return _lifting_reason(found) if found else None


# Checks evaluated beside the formulas: a probe formula on the formula's sheet, below the
# filled cells (ROW() and COLUMN() written out as the formula's), evaluated with the book.
@dataclass
class _Check:
    """What decides whether formula IronCalc evaluates keeps Excel's value instead.

    ``kind``: ``"true"`` keeps it when the probe shows TRUE (or an error); ``"same"`` when the
    probe's value differs from the formula's; ``"astral"`` when the probe's text holds a
    character beyond U+FFFF; ``"decide"`` when ``decide(model, probe's value)`` says so
    (:mod:`._divergences`: approximate lookups); ``"blank"`` (no probe) when ``rect`` holds
    a blank cell.  A
    ``"true"`` check with a ``rect`` is made only when ``rect`` holds a blank cell
    (``rect`` ``None``: a range computed by a formula, which may).
    """

    kind: str
    template: str  # the probe formula; ``{}`` stands for ``value`` qualified with ``sheet``
    reason: str
    rect: object = None
    computed: bool = False  # rect is unknown: a range computed by a formula
    value: str = ""
    sheet: str = ""
    decide: object = None  # kind "decide": decide(model, probe's value) -> keeps Excel's value

    @property
    def text(self) -> str:
        """The probe formula (its references qualified only now: most checks need no probe)."""
        return self.template.format(_qualified(self.value, self.sheet)) if self.value else self.template


#: Lookups: the argument searched, the part of it compared, the argument that chooses an
#: exact match, and the texts of that argument that mean exact (absent: its default).
_LOOKUPS = {
    "MATCH": (1, "all", 2, ("0", "FALSE"), False),
    "XMATCH": (1, "all", 2, ("0", "2"), True),
    "VLOOKUP": (1, "column", 3, ("0", "FALSE"), False),
    "HLOOKUP": (1, "row", 3, ("0", "FALSE"), False),
    "XLOOKUP": (1, "all", 4, ("0", "2"), True),
    "LOOKUP": (1, "all", None, (), False),
}
#: Functions that may return a range holding blank cells (a lookup over one may meet a blank).
_REFERENCE_RESULT = re.compile(r"\b(?:OFFSET|INDIRECT|INDEX|CHOOSE|IFS?|SWITCH|XLOOKUP)\s*\(", re.I)
_LOOKUP_CALL = re.compile(r"(?<![A-Za-z0-9_.\\])((?:_xlfn\.|_xlws\.)?(?:MATCH|XMATCH|VLOOKUP|HLOOKUP|XLOOKUP|LOOKUP))\s*\(", re.I)


def _masked(text: str) -> str:
    """``text`` with the inside of every string replaced by spaces (same length)."""
    return _STRING.sub(lambda m: '"' + " " * (len(m.group(0)) - 2) + '"', text) if '"' in text else text


def _lookup_checks(text: str, sheet: str, resolver, book) -> list:
    """A check for every lookup in ``text`` that IronCalc may answer by matching a blank cell.

    IronCalc compares a blank cell of the range searched as 0 (and, in VLOOKUP, as FALSE):
    ``VLOOKUP(0, A1:B10, 2, FALSE)`` finds a blank ``A3`` where Excel's exact match finds
    nothing (#N/A); an approximate match (``MATCH(4.5, A1:A10)``, sorted numbers with a blank
    between) lands on the blank.  So an exact lookup over a range with a blank keeps Excel's
    value when its lookup value is 0, FALSE or blank (a probe says, as the book evaluates),
    an approximate one whenever the range holds a blank.
    """
    from ._evaluator import Rect, Unsupported

    masked = _masked(text)
    checks = []
    for m in _LOOKUP_CALL.finditer(masked):
        name = _bare(m.group(1))
        try:
            close = _closing(masked, m.end() - 1)
        except ValueError:  # unbalanced: IronCalc will not parse it either (#NAME?)
            continue
        args = split_arguments(text[m.end():close])
        searched, part, mode_at, exact_texts, exact_default = _LOOKUPS[name]
        if len(args) <= searched:
            continue
        try:
            rect = resolver.resolve(args[searched], sheet)
        except Unsupported:
            continue
        if rect is None and not _REFERENCE_RESULT.search(_masked(args[searched])):
            continue  # an array computed from values: a blank is 0 there in Excel too
        if name == "LOOKUP" and len(args) == 2 and rect is not None:  # array form: the longer side's first line
            part = "row" if rect.c1 - rect.c0 > rect.r1 - rect.r0 else "column"
        if rect is not None and part == "column":
            rect = Rect(rect.sheet, rect.r0, rect.c0, rect.r1, rect.c0)
        elif rect is not None and part == "row":
            rect = Rect(rect.sheet, rect.r0, rect.c0, rect.r0, rect.c1)
        mode = args[mode_at].strip().upper() if mode_at is not None and len(args) > mode_at and args[mode_at].strip() else None
        exact = exact_default if mode is None else mode in exact_texts
        if name in ("XMATCH", "XLOOKUP"):
            search = args[mode_at + 1].strip() if len(args) > mode_at + 1 else ""
            exact = exact and search not in ("2", "-2")
        where = args[searched]
        value, sheet_name = args[0] or "0", resolver.book.sheets[sheet].name
        if not exact and rect is not None and name not in ("XMATCH", "XLOOKUP"):  # Excel's bisection
            descending = name == "MATCH" and mode is not None and mode.lstrip("+").startswith("-")
            checks += filter(None, [_divergences.lookup_check(name, rect, value, sheet_name, descending, where)])
        if exact:
            checks.append(_Check("true", "IFERROR(OR(({0})=0,({0})=FALSE),FALSE)",
                                 f"{name} looks up 0, FALSE or a blank in {where}, which holds a blank cell: Excel's exact "
                                 "match never finds a blank, the headless calculator's core matches it to 0",
                                 rect, rect is None, value, sheet_name))
        elif rect is not None and name not in ("XMATCH", "XLOOKUP") and rect.area > 1:
            # IronCalc's binary search takes a blank as 0; where that misleads it, it lands on a blank
            vector = ("'" + resolver.book.sheets[rect.sheet].name.replace("'", "''") + "'!" + rect.ref).replace("{", "{{").replace("}", "}}")
            order = "-1" if name == "MATCH" and mode is not None and mode.lstrip("+").startswith("-") else "1"
            checks.append(_Check("true", f"IFERROR(ISBLANK(INDEX({vector},MATCH({{0}},{vector},{order}))),FALSE)",
                                 f"{name} searches {where} by approximate match and lands on a blank cell, which the headless "
                                 "calculator's core compares as 0 (Excel passes over it)", rect, False, value, sheet_name))
        else:
            checks.append(_Check("blank", "", f"{name} searches {where} by approximate match and it holds a blank cell, "
                                              "which the headless calculator's core compares as 0 (Excel passes over it)",
                                 rect, rect is None))
    return checks


def _index_checks(text: str, clipped: str, sheet: str, resolver, book) -> list:
    """A check for every ``INDEX`` of ``text`` whose range the calculator clips.

    ``INDEX(A:A, k)`` reads row ``k`` of the whole column; clipped to the sheet's last filled
    row ``R`` (``A1:AR``), IronCalc gives ``#REF!`` for ``k > R`` where Excel reads the blank
    cell there (0 in a cell).  A probe evaluates the row (and column) index as the formula
    does (``clipped``: the same calls, ranges clipped) and the formula keeps Excel's value
    when one points past the clipped range but inside the whole one.  For a single row
    (``INDEX(5:5, k)``) a lone index is the column, as in Excel.
    """
    from ._evaluator import Unsupported, _clip

    checks = []
    pairs = zip(find_calls(text, ("INDEX", "_XLFN.INDEX")), find_calls(clipped, ("INDEX", "_XLFN.INDEX")))
    sheet_name = resolver.book.sheets[sheet].name
    for (start, end, _), (start2, end2, _) in pairs:
        inner, inner2 = text[start:end], clipped[start2:end2]
        args = split_arguments(inner[inner.index("(") + 1:-1])
        args2 = split_arguments(inner2[inner2.index("(") + 1:-1])
        if len(args) < 2 or len(args) > 3 or len(args2) != len(args):
            continue
        try:
            rect = resolver.resolve(args[0], sheet)
        except Unsupported:
            continue
        if rect is None or (cut := _clip(rect, book)) == rect:
            continue
        single_row = rect.r0 == rect.r1 and len(args) == 2
        row = None if single_row else args2[1].strip()
        col = args2[2].strip() if len(args) == 3 else args2[1].strip() if single_row else None
        past = [f"AND(({index})>{cut_n},({index})<={whole_n})" for index, cut_n, whole_n in (
            (row, cut.r1 - cut.r0 + 1, rect.r1 - rect.r0 + 1), (col, cut.c1 - cut.c0 + 1, rect.c1 - rect.c0 + 1))
            if index and cut_n < whole_n and _index_bound(index, sheet, resolver) > cut_n]
        if past:
            checks.append(_Check("true", "IFERROR({0},FALSE)",
                                 f"INDEX reads {args[0]} past {cut.ref}, where the headless calculator clips it to the "
                                 "sheet's filled cells (Excel reads the blank cell there)",
                                 value=f"OR({','.join(past)})", sheet=sheet_name))
    return checks


def _index_bound(index: str, sheet: str, resolver) -> float:
    """The most an index argument of INDEX can be, when its text says (else infinity): a
    number, or ``MATCH``/``XMATCH`` over a vector (at most its length; its clipped length as
    the calculator evaluates it, which is Excel's answer when the match is not in the blank
    rows past the sheet's filled cells, where the lookup checks look)."""
    from ._evaluator import Unsupported

    if _NUMBER.match(index):
        return float(index.rstrip("%"))
    calls = find_calls(index, ("MATCH", "XMATCH", "_XLFN.XMATCH"))
    if len(calls) == 1 and calls[0][0] == 0 and calls[0][1] == len(index):
        args = split_arguments(index[index.index("(") + 1:-1])
        try:
            rect = resolver.resolve(args[1], sheet) if len(args) > 1 else None
        except Unsupported:
            rect = None
        if rect is not None:
            return max(rect.r1 - rect.r0, rect.c1 - rect.c0) + 1
    return math.inf


#: Functions (and, for some, the argument) that ignore blank cells of a range given to them
#: whole: a whole column clipped to the sheet's filled rows gives them Excel's answer.
_BLANK_BLIND = {name: None for name in """SUM SUMSQ PRODUCT AVERAGE AVERAGEA COUNT COUNTA MAX MIN MAXA MINA
MEDIAN MODE MODE.SNGL STDEV STDEV.S STDEV.P STDEVA STDEVP STDEVPA VAR VAR.S VAR.P VARA VARP VARPA AVEDEV DEVSQ
GEOMEAN HARMEAN KURT SKEW SKEW.P CONCAT TEXTJOIN""".split()}
_BLANK_BLIND.update({"LARGE": {0}, "SMALL": {0}, "PERCENTILE": {0}, "PERCENTILE.INC": {0}, "PERCENTILE.EXC": {0},
                     "QUARTILE": {0}, "QUARTILE.INC": {0}, "QUARTILE.EXC": {0}, "RANK": {1}, "RANK.EQ": {1},
                     "RANK.AVG": {1}, "MATCH": {1}, "XMATCH": {1}, "VLOOKUP": {1}, "HLOOKUP": {1},
                     "XLOOKUP": {1, 2}, "LOOKUP": {1, 2}, "INDEX": {0}})


def _blank_rows_matter(tokens, clipped_values: set) -> str | None:
    """The first range the calculator clips (a whole column or row) stands where the blank
    cells past the sheet's last filled one may change the formula's value: anywhere but
    alone as an argument of a function of :data:`_BLANK_BLIND` (``SUMPRODUCT((A:A="")*1)``,
    ``AVERAGE((A:A="")*1)``, ``UNIQUE(A:A)`` count the blanks; ``SUM(A:A)`` does not).
    Lookups over a clipped range are checked for blanks on their own (:func:`_lookup_checks`).
    None when there is none.  ``clipped_values``: the texts of the ranges that are clipped.
    """
    if not clipped_values:
        return None

    def clipped(token) -> bool:
        return token.type == "OPERAND" and token.subtype == "RANGE" and token.value in clipped_values

    safe = _zeroed_spans(tokens, clipped)
    stack = []  # [function, argument index]
    depth_array = 0
    for k, token in enumerate(tokens):
        kind, sub = token.type, token.subtype
        if any(a <= k < b for a, b in safe):
            continue
        if kind == "ARRAY":
            depth_array += 1 if sub == "OPEN" else -1
        elif kind in ("FUNC", "PAREN") and sub == "OPEN":
            stack.append([_bare(token.value[:-1].strip()) if kind == "FUNC" else "(", 0])
        elif kind in ("FUNC", "PAREN") and sub == "CLOSE":
            if stack:
                stack.pop()
        elif kind == "SEP" and sub == "ARG" and not depth_array and stack:
            stack[-1][1] += 1
        elif clipped(token):
            before = tokens[k - 1] if k else None
            after = tokens[k + 1] if k + 1 < len(tokens) else None
            alone = (before is not None and (before.type == "FUNC" and before.subtype == "OPEN" or before.type == "SEP")
                     and after is not None and (after.type == "SEP" or after.type == "FUNC" and after.subtype == "CLOSE"))
            if not (alone and stack and stack[-1][0] in _BLANK_BLIND):
                return token.value
            positions = _BLANK_BLIND[stack[-1][0]]
            if positions is not None and stack[-1][1] not in positions:
                return token.value
    return None


#: Text functions whose answer counts characters: Excel counts UTF-16 code units (an emoji
#: is 2), IronCalc code points (1); the arguments (0-based) holding the text measured.
_UTF16_TEXT = {"LEN": (0,), "LENB": (0,), "LEFT": (0,), "LEFTB": (0,), "RIGHT": (0,), "RIGHTB": (0,),
               "MID": (0,), "MIDB": (0,), "FIND": (0, 1), "FINDB": (0, 1), "SEARCH": (0, 1), "SEARCHB": (0, 1),
               "REPLACE": (0,), "REPLACEB": (0,)}
_UTF16_CALL = re.compile(r"(?<![A-Za-z0-9_.\\])(" + "|".join(sorted(_UTF16_TEXT, key=len, reverse=True)) + r")\s*\(", re.I)
#: A character beyond U+FFFF in XML bytes: its UTF-8 lead byte, a surrogate escaped as Excel
#: does (``_xD83D_``), or a character reference that may be one (``&#x1F600;``, ``&#128512;``).
_ASTRAL_BYTES = re.compile(rb"[\xf0-\xf4]|_x[dD][89aAbB][0-9a-fA-F]{2}_|&#[xX]0*[1-9a-fA-F][0-9a-fA-F]{4,};|&#0*[1-9][0-9]{4,};")
_ASTRAL = re.compile("[\U00010000-\U0010ffff]")


def _astral_possible(path, book, functions: set) -> bool:
    """Whether some text of the book may hold a character beyond U+FFFF (an emoji): one in
    the shared strings or a sheet's inline strings (as UTF-8 or a character reference), a
    formula, a defined name or a cached value, or a UNICHAR call."""
    if "UNICHAR" in functions:
        return True
    if _ASTRAL.search("\n".join(fc.text for fc in book.formulas)) or _ASTRAL.search("\n".join(book.names.values())):
        return True
    if any(isinstance(fc.cached, str) and _ASTRAL.search(fc.cached) for fc in book.formulas):
        return True
    with zipfile.ZipFile(path) as archive:
        for part in archive.namelist():
            lower = part.lower()
            if (lower.endswith("sharedstrings.xml") or lower.startswith("xl/worksheets/") and lower.endswith(".xml")) \
                    and _ASTRAL_BYTES.search(archive.read(part)):
                return True
    return False


def _utf16_checks(text: str, sheet_name: str) -> list:
    """A check for the text functions of ``text``: Excel's value is kept when the text they
    measure holds a character beyond U+FFFF (see :data:`_UTF16_TEXT`)."""
    masked, measured, names = _masked(text), [], []
    for m in _UTF16_CALL.finditer(masked):
        try:
            close = _closing(masked, m.end() - 1)
        except ValueError:  # unbalanced: IronCalc will not parse it either (#NAME?)
            continue
        args = split_arguments(text[m.end():close])
        name = m.group(1).upper()
        measured += [args[k] for k in _UTF16_TEXT[name] if k < len(args) and args[k]]
        names.append(name)
    if not measured:
        return []
    probe = "CONCAT(" + ",".join(f"({_qualified(a, sheet_name)})&\"\"" for a in measured) + ")"
    return [_Check("astral", f"IFERROR({probe},\"\")",
                   f"{', '.join(sorted(set(names)))} measures text holding a character beyond U+FFFF (an emoji, say): "
                   "Excel counts it as two characters (UTF-16), the headless calculator's core as one")]


def _has_blank(model: _Model, sheet: int, rect, cache: dict) -> bool:
    key = (sheet, rect.r0, rect.c0, rect.r1, rect.c1)
    if key not in cache:
        empty = model.m.is_empty_cell
        cache[key] = any(empty(sheet, r, c) for r in range(rect.r0, rect.r1 + 1) for c in range(rect.c0, rect.c1 + 1))
    return cache[key]


def _prepare_checks(model: _Model, book, checks: dict, index: list, skip: set, path, texts: dict,
                    functions: set) -> tuple[list, dict]:
    """Write the probes of the checks (and, when the book may hold text beyond U+FFFF and
    calls a function of :data:`_UTF16_TEXT`, of its text functions) on the formulas' sheets, below the last filled row in
    the last columns (see :data:`_PROBE_COLUMN`); ``(probes, keep)``: the probes
    ``(formula, check, sheet, row)`` to read once the book is evaluated, and the formulas
    that keep Excel's value already (an approximate lookup over a blank)."""
    formulas = book.formulas
    if functions & set(_UTF16_TEXT) and _astral_possible(path, book, functions):
        checks = {i: list(c) for i, c in checks.items()}
        for i, fc in enumerate(formulas):
            text = texts.get(i, fc.text)
            if _UTF16_CALL.search(_masked(text)):
                checks.setdefault(i, []).extend(_utf16_checks(text, book.sheets[fc.target.sheet].name))
    probes, keep, blanks, free = [], {}, {}, {}
    for i, found in checks.items():
        if i in skip:
            continue
        fc = formulas[i]
        for check in found:
            if check.rect is not None or check.computed:
                blank = check.computed or _has_blank(model, model.sheets[check.rect.sheet.lower()], check.rect, blanks)
                if not blank:
                    continue
                if check.kind == "blank":
                    keep[i] = check.reason
                    break
            t, sheet = fc.target, index[i]
            h, w = (t.r1 - t.r0 + 1, t.c1 - t.c0 + 1) if check.kind == "same" else (1, 1)
            row = free.setdefault(sheet, book.sheets[fc.target.sheet].max_row + 2)
            if w > _PROBE_COLUMNS or row + h + 1 > 1_048_576 or book.sheets[fc.target.sheet].max_col >= _PROBE_COLUMN - 1:
                keep[i] = check.reason + " (not checked: no room for the check)"
                break
            free[sheet] = row + h + 2  # a dynamic array one row longer: still apart
            text = "=" + _here(check.text, t.r0, t.c0)
            if check.kind == "same" and t.area > 1 and not fc.dynamic:
                model.m.set_user_array_formula(sheet, row, _PROBE_COLUMN, w, h, text)
            else:
                model.m.update_cell_with_formula(sheet, row, _PROBE_COLUMN, text)
            probes.append((i, check, sheet, row))
    if probes:
        model.dirty = True
    return probes, keep


#: Where the probes go on a formula's own sheet: below its last filled row, in the last
#: columns (adding a scratch sheet would cost IronCalc a full evaluation of the book), each
#: probe at most this many columns wide.
_PROBE_COLUMNS = 64
_PROBE_COLUMN = 16_384 - _PROBE_COLUMNS + 1
_HERE = re.compile(r"(?<![A-Za-z0-9_.])(ROW|COLUMN)\s*\(\s*\)", re.I)


def _here(text: str, row: int, col: int) -> str:
    """``text`` with ``ROW()`` and ``COLUMN()`` written as the formula's own row and column
    (its probe stands elsewhere)."""
    if "(" not in text or not _HERE.search(_masked(text)):
        return text
    masked, out, last = _masked(text), [], 0
    for m in _HERE.finditer(masked):
        out.append(text[last:m.start()])
        out.append(str(row if m.group(1).upper() == "ROW" else col))
        last = m.end()
    return "".join(out) + text[last:]


def _diverging(model: _Model, probes: list, formulas, index: list, skip: set) -> dict:
    """The formulas whose probe says IronCalc's value is not Excel's: formula -> reason."""
    out = {}
    _divergences.new_round(model)
    for i, check, sheet, row in probes:
        if i in skip or i in out:
            continue
        t = formulas[i].target
        if check.kind == "same":
            h, w = t.r1 - t.r0 + 1, t.c1 - t.c0 + 1
            mine = model.read(index[i], t.r0, t.c0, t.r1, t.c1)
            probe = model.read(sheet, row, _PROBE_COLUMN, row + h - 1, _PROBE_COLUMN + w - 1)
            differs = not all(_same_value(a, b) for a, b in zip(mine.flat, probe.flat))
            if formulas[i].dynamic and not differs:  # a dynamic array one row (column) longer
                differs = (not model.m.is_empty_cell(sheet, row + h, _PROBE_COLUMN) and model.m.is_empty_cell(index[i], t.r1 + 1, t.c0)) \
                    or (w < _PROBE_COLUMNS and not model.m.is_empty_cell(sheet, row, _PROBE_COLUMN + w)
                        and t.c1 < 16_384 and model.m.is_empty_cell(index[i], t.r0, t.c1 + 1))
        else:
            v = model.cell(sheet, row, _PROBE_COLUMN)
            if check.kind == "true":
                differs = v is True or type(v) is ErrorValue
            elif check.kind == "decide":
                differs = check.decide(model, v)
            else:
                differs = isinstance(v, str) and any(ord(ch) > 0xFFFF for ch in v)
        if differs:
            out[i] = check.reason
    return out


def _same_value(a, b) -> bool:
    if type(a) is ErrorValue and type(b) is ErrorValue:
        return a.code == b.code
    return _same(a, b)


def _zeroed_spans(tokens, clipped) -> list:
    """Token spans ``(start, end)`` of the SUMPRODUCT and SUM calls where a blank row adds 0:
    one argument is a product with a clipped range as a factor (``SUMPRODUCT((A:A=1)*B:B)``,
    ``SUMPRODUCT(--(A:A=""), B:B)``): every product over the blank rows is 0, whatever the
    other factors and arguments make of them."""
    spans, k = [], 0
    while k < len(tokens):
        token = tokens[k]
        if token.type == "FUNC" and token.subtype == "OPEN" and _bare(token.value[:-1].strip()) in ("SUMPRODUCT", "SUM"):
            depth, end, start, zeroed = 0, None, k + 1, False
            for j in range(k, len(tokens)):
                t = tokens[j]
                if t.subtype == "OPEN":
                    depth += 1
                elif t.subtype == "CLOSE":
                    depth -= 1
                if (depth == 1 and t.type == "SEP" and t.subtype == "ARG") or (depth == 0 and t.subtype == "CLOSE"):
                    zeroed = zeroed or _product_with_range(tokens[start:j], clipped)
                    start = j + 1
                if depth == 0:
                    end = j + 1
                    break
            if end is None:
                break
            if zeroed:
                spans.append((k, end))
                k = end
                continue
        k += 1
    return spans


def _product_with_range(argument, clipped) -> bool:
    """Whether an argument's tokens are factors joined by ``*`` at the top level, one of them
    a clipped range alone."""
    depth, factors, current = 0, [], []
    for t in argument:
        if t.subtype == "OPEN":
            depth += 1
        elif t.subtype == "CLOSE":
            depth -= 1
        if depth == 0 and t.type == "OPERATOR-INFIX":
            if t.value != "*":
                return False
            factors.append(current)
            current = []
            continue
        current.append(t)
    factors.append(current)
    return any(len(f) == 1 and clipped(f[0]) for f in factors)
