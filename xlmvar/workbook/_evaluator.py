"""Evaluate a workbook's formulas: read the cells once, compile each formula, run in order.

``formulas.ExcelModel`` turns every cell, constant or not, into a node of a dispatch
graph; a history sheet of 500 x 100 returns then costs seconds before anything is
computed.  Here the constants are read straight from the worksheet XML into one table per
sheet, each formula is compiled on its own by ``formulas.Parser`` (its parser, its function
library, the xlmvar functions registered in it), and the formulas are evaluated in
dependency order.  A range argument is assembled once as a 2-D array, whatever its size,
and shared by every formula that reads it.

Supported: formulas on any sheet, legacy and dynamic array formulas (the result fills the
range stored in the file), shared formulas, defined names that refer to ranges (global or
sheet-local), whole-column and whole-row references (bounded by the sheet's used area).
A circular reference is reported as an error rather than iterated.
"""

from __future__ import annotations

import contextlib
import logging
import re
import zipfile
from dataclasses import dataclass, field

import numpy as np

from ._xlsx import read_xml, sheet_parts, workbook_part

__all__ = ["FormulaCell", "Workbook", "read_workbook", "evaluate"]

_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_C, _F, _V, _IS, _T = (f"{{{_NS}}}{tag}" for tag in ("c", "f", "v", "is", "t"))
_CELL = re.compile(r"^\$?([A-Z]{1,3})\$?(\d+)$")
_ROWS = re.compile(r"^\$?(\d+):\$?(\d+)$")
_COLS = re.compile(r"^\$?([A-Z]{1,3}):\$?([A-Z]{1,3})$")
_SMALL_RANGE = 64


def col_index(letters: str) -> int:
    n = 0
    for ch in letters:
        n = n * 26 + ord(ch) - 64
    return n


def col_letters(index: int) -> str:
    out = ""
    while index:
        index, rem = divmod(index - 1, 26)
        out = chr(65 + rem) + out
    return out


def parse_cell(ref: str) -> tuple[int, int]:
    match = _CELL.match(ref.upper())
    if not match:
        raise ValueError(f"not a cell reference: {ref}")
    return int(match.group(2)), col_index(match.group(1))


@dataclass(frozen=True)
class Rect:
    """A rectangle of cells on one sheet, 1-based and inclusive."""

    sheet: str
    r0: int
    c0: int
    r1: int
    c1: int

    @property
    def shape(self) -> tuple[int, int]:
        return self.r1 - self.r0 + 1, self.c1 - self.c0 + 1

    @property
    def ref(self) -> str:
        a = f"{col_letters(self.c0)}{self.r0}"
        b = f"{col_letters(self.c1)}{self.r1}"
        return a if a == b else f"{a}:{b}"

    def cells(self):
        for r in range(self.r0, self.r1 + 1):
            for c in range(self.c0, self.c1 + 1):
                yield r, c

    def intersects(self, other: "Rect") -> bool:
        return (
            self.sheet == other.sheet
            and self.r0 <= other.r1
            and other.r0 <= self.r1
            and self.c0 <= other.c1
            and other.c0 <= self.c1
        )


@dataclass
class FormulaCell:
    """One formula: its anchor, the range its value fills and its text (without '=')."""

    sheet: str
    anchor: str
    target: Rect
    text: str


@dataclass
class Sheet:
    name: str
    constants: dict = field(default_factory=dict)  # (row, col) -> value
    max_row: int = 0
    max_col: int = 0


@dataclass
class Workbook:
    sheets: dict  # UPPER name -> Sheet
    formulas: list  # FormulaCell, in sheet order
    names: dict  # (scope UPPER sheet or "", UPPER name) -> reference text
    order: list  # sheet names as written


def _shared_strings(archive: zipfile.ZipFile) -> list[str]:
    part = "xl/sharedStrings.xml"
    if part not in archive.namelist():
        return []
    root = read_xml(archive, part)
    return ["".join(t.text or "" for t in si.iter(_T)) for si in root]


def _cell_value(cell, strings):
    from formulas.tokens.operand import Error

    kind = cell.get("t", "n")
    if kind == "inlineStr":
        node = cell.find(_IS)
        return "".join(t.text or "" for t in node.iter(_T)) if node is not None else ""
    v = cell.find(_V)
    if v is None or v.text is None:
        return None
    text = v.text
    if kind == "s":
        return strings[int(text)]
    if kind == "b":
        return text.strip() in ("1", "true")
    if kind == "e":
        return Error.errors.get(text.strip().upper(), Error.errors["#VALUE!"])
    if kind in ("str", "d"):
        return text
    number = float(text)
    return int(number) if number.is_integer() and "." not in text and "E" not in text.upper() else number


def _translate(text: str, origin: str, dest: str) -> str:
    from openpyxl.formula.translate import Translator

    return Translator("=" + text, origin=origin).translate_formula(dest)[1:]


def read_workbook(path) -> Workbook:
    """Read constants, formulas and defined names of every worksheet."""
    with zipfile.ZipFile(path) as archive:
        strings = _shared_strings(archive)
        sheets, formulas, order = {}, [], []
        for name, part in sheet_parts(archive):
            sheet = Sheet(name)
            sheets[name.upper()] = sheet
            order.append(name)
            shared = {}  # si -> (anchor, text)
            root = read_xml(archive, part)
            for cell in root.iter(_C):
                ref = cell.get("r")
                row, col = parse_cell(ref)
                sheet.max_row, sheet.max_col = max(sheet.max_row, row), max(sheet.max_col, col)
                f = cell.find(_F)
                if f is None:
                    value = _cell_value(cell, strings)
                    if value is not None:
                        sheet.constants[(row, col)] = value
                    continue
                kind, text = f.get("t"), f.text or ""
                if kind == "shared":
                    si = f.get("si")
                    if text:
                        shared[si] = (ref, text)
                    elif si in shared:
                        text = _translate(shared[si][1], shared[si][0], ref)
                if kind == "array" and f.get("ref"):
                    a, _, b = f.get("ref").partition(":")
                    (r0, c0), (r1, c1) = parse_cell(a), parse_cell(b or a)
                    target = Rect(name.upper(), r0, c0, r1, c1)
                else:
                    target = Rect(name.upper(), row, col, row, col)
                if kind == "dataTable" or not text:
                    value = _cell_value(cell, strings)  # what-if tables are Excel's own; keep values
                    if value is not None:
                        sheet.constants[(row, col)] = value
                    continue
                formulas.append(FormulaCell(name, ref, target, text))
        names = _defined_names(archive, order)
    return Workbook(sheets, formulas, names, order)


def _defined_names(archive, order) -> dict:
    root = read_xml(archive, workbook_part(archive))
    names = {}
    for node in root.iter(f"{{{_NS}}}definedName"):
        scope = node.get("localSheetId")
        sheet = order[int(scope)].upper() if scope is not None and int(scope) < len(order) else ""
        names[(sheet, node.get("name", "").upper())] = (node.text or "").strip()
    return names


# --------------------------------------------------------------------------------------
class _Resolver:
    """Turn the input names of a compiled formula into rectangles."""

    def __init__(self, book: Workbook):
        self.book = book

    def rect(self, text: str, sheet: str) -> Rect | None:
        text = text.strip()
        if "!" in text:
            sheet_part, _, ref = text.rpartition("!")
            sheet_name = sheet_part.strip("'").replace("''", "'").upper()
            if sheet_name.startswith("[") and "]" in sheet_name:
                sheet_name = sheet_name.split("]", 1)[1]
        else:
            sheet_name, ref = sheet, text
        ref = ref.replace("$", "").upper()
        if sheet_name not in self.book.sheets:
            return None
        target = self.book.sheets[sheet_name]
        a, _, b = ref.partition(":")
        if _CELL.match(a) and (not b or _CELL.match(b)):
            (r0, c0), (r1, c1) = parse_cell(a), parse_cell(b or a)
            return Rect(sheet_name, min(r0, r1), min(c0, c1), max(r0, r1), max(c0, c1))
        if _COLS.match(ref):
            m = _COLS.match(ref)
            return Rect(sheet_name, 1, col_index(m.group(1)), max(target.max_row, 1), col_index(m.group(2)))
        if _ROWS.match(ref):
            m = _ROWS.match(ref)
            return Rect(sheet_name, int(m.group(1)), 1, int(m.group(2)), max(target.max_col, 1))
        return None

    def resolve(self, token: str, sheet: str) -> Rect | None:
        rect = self.rect(token, sheet)
        if rect is not None:
            return rect
        name = token.upper()
        definition = self.book.names.get((sheet, name)) or self.book.names.get(("", name))
        if definition:
            return self.rect(definition, sheet)
        return None


@dataclass
class Evaluation:
    """Values of the formula targets, in the order they were computed."""

    values: dict  # id(FormulaCell) -> 2-D object array filling its target
    failures: dict  # id(FormulaCell) -> XlError carrying a reason


_IDENT_BEFORE = re.compile(r"([A-Za-z_][A-Za-z0-9_.]*)\s*$")


def mark_missing_arguments(text: str, functions, marker: str) -> str:
    """Put ``marker`` in every empty argument slot of a call to one of ``functions``.

    ``formulas`` compiles ``F(a,,b)`` as ``F(a,0,b)``, but Excel hands a user-defined
    function an omitted argument as *missing* (xlwings passes ``None``, so the default
    applies).  Native functions keep formulas' reading.  String literals and quoted sheet
    names are skipped.
    """
    out: list[str] = []
    stack: list[str | None] = []
    i, n = 0, len(text)

    def next_char(k: int) -> str:
        while k < n and text[k].isspace():
            k += 1
        return text[k] if k < n else ""

    while i < n:
        ch = text[i]
        if ch in "\"'":
            j = i + 1
            while j < n:
                if text[j] == ch and j + 1 < n and text[j + 1] == ch:
                    j += 2
                    continue
                if text[j] == ch:
                    break
                j += 1
            out.append(text[i : j + 1])
            i = j + 1
            continue
        out.append(ch)
        if ch in "({":
            match = _IDENT_BEFORE.search("".join(out[:-1])) if ch == "(" else None
            stack.append(match.group(1).upper() if match else None)
            if stack[-1] in functions and next_char(i + 1) == ",":
                out.append(marker)
        elif ch in ")}":
            if stack:
                stack.pop()
        elif ch == "," and stack and stack[-1] in functions and next_char(i + 1) in (",", ")"):
            out.append(marker)
        i += 1
    return "".join(out)


def evaluate(book: Workbook, make_error, progress=None, rewrite=None) -> Evaluation:
    """Compile and evaluate every formula of ``book`` in dependency order.

    ``make_error(code, reason)`` builds the error value a failing formula shows.
    ``progress(done, total, cell)``, if given, is called before each formula is evaluated
    (``cell`` is its address) and once at the end with an empty ``cell``.
    ``rewrite(text)``, if given, adjusts a formula's text before it is compiled.
    """
    import formulas
    from formulas.ranges import Ranges

    resolver = _Resolver(book)
    owner = {}  # (sheet, row, col) -> formula index, for every target cell
    by_sheet: dict[str, list[int]] = {}
    for i, fc in enumerate(book.formulas):
        by_sheet.setdefault(fc.target.sheet, []).append(i)
        for r, c in fc.target.cells():
            owner[(fc.target.sheet, r, c)] = i

    compiled, inputs, deps, failures = {}, {}, {}, {}
    for i, fc in enumerate(book.formulas):
        sheet = fc.target.sheet
        try:
            text = rewrite(fc.text) if rewrite else fc.text
            func = formulas.Parser().ast("=" + text)[1].compile()
        except Exception as exc:  # an unknown function or a syntax formulas cannot read
            failures[i] = make_error("#NAME?", f"cannot evaluate the formula headlessly: {exc}")
            deps[i] = set()
            continue
        rects = []
        for token in func.inputs:
            rect = resolver.resolve(token, sheet)
            if rect is None:
                failures[i] = make_error("#REF!", f"unknown name or reference {token}")
                break
            rects.append(rect)
        compiled[i], inputs[i] = func, rects
        deps[i] = _dependencies(rects, owner, by_sheet, book.formulas) - {i}

    order = _topological(deps)
    cyclic = set(deps) - set(order)
    for i in cyclic:
        failures[i] = make_error("#REF!", "circular reference; xlmvar does not iterate")

    values, range_cache = {}, {}
    done, total = 0, len(order)
    for i in order:
        fc = book.formulas[i]
        if progress is not None:
            progress(done, total, f"{fc.sheet}!{fc.anchor}")
        if i in failures:
            values[i] = _full(fc.target.shape, failures[i])
        else:
            args = []
            for rect in inputs[i]:
                if rect not in range_cache:
                    array = _assemble(rect, book, owner, values, failures)
                    range_cache[rect] = Ranges().push(f"'[book]{rect.sheet}'!{rect.ref}", array)
                args.append(range_cache[rect])
            try:
                with _quiet("schedula"):
                    result = compiled[i](*args)
            except Exception as exc:
                result = _failure(exc, make_error)
            values[i] = _fill(result, fc.target.shape, fc.target.r0 == fc.target.r1 and fc.target.c0 == fc.target.c1)
        done += 1
    if progress is not None:
        progress(done, total, "")
    for i in cyclic:
        values[i] = _full(book.formulas[i].target.shape, failures[i])
    return Evaluation(values, failures)


def name_values(book: Workbook, evaluation: Evaluation) -> dict:
    """``{NAME: 2-D array}`` of every defined name that refers to a range."""
    resolver = _Resolver(book)
    owner = {}
    for i, fc in enumerate(book.formulas):
        for r, c in fc.target.cells():
            owner[(fc.target.sheet, r, c)] = i
    out = {}
    for (scope, name), definition in book.names.items():
        rect = resolver.rect(definition, scope or (book.order[0].upper() if book.order else ""))
        if rect is not None and not name.startswith("_XLNM"):
            out.setdefault(name, _assemble(rect, book, owner, evaluation.values, evaluation.failures))
    return out


def _full(shape, value) -> np.ndarray:
    """An object array filled with ``value`` itself (np.full would turn a str subclass into str)."""
    out = np.empty(shape, dtype=object)
    for index in np.ndindex(*shape):
        out[index] = value
    return out


@contextlib.contextmanager
def _quiet(logger_name: str):
    """Silence a library's error log while its exceptions are turned into cell errors."""
    logger = logging.getLogger(logger_name)
    level = logger.level
    logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        logger.setLevel(level)


def _failure(exc: Exception, make_error):
    """The error value of a formula whose evaluation raised."""
    if "NotImplementedError" in repr(exc):  # formulas' marker for a function it lacks
        name = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], str) else "a function"
        return make_error("#NAME?", f"unknown or unsupported function {name} (not evaluated headlessly)")
    return make_error("#VALUE!", f"{type(exc).__name__}: {exc}")


def _dependencies(rects, owner, by_sheet, cells) -> set[int]:
    found = set()
    for rect in rects:
        rows, cols = rect.shape
        if rows * cols <= _SMALL_RANGE:
            for r, c in rect.cells():
                i = owner.get((rect.sheet, r, c))
                if i is not None:
                    found.add(i)
        else:
            found.update(j for j in by_sheet.get(rect.sheet, ()) if cells[j].target.intersects(rect))
    return found


def _topological(deps: dict[int, set[int]]) -> list[int]:
    """Kahn's algorithm; nodes on or behind a cycle are left out."""
    users: dict[int, list[int]] = {i: [] for i in deps}
    pending = {i: len(d) for i, d in deps.items()}
    for i, d in deps.items():
        for j in d:
            users[j].append(i)
    ready = sorted(i for i, n in pending.items() if n == 0)
    order = []
    while ready:
        i = ready.pop()
        order.append(i)
        for k in users[i]:
            pending[k] -= 1
            if pending[k] == 0:
                ready.append(k)
    return order


def _assemble(rect: Rect, book: Workbook, owner, values, failures) -> np.ndarray:
    """The 2-D array of a range: constants, computed formula values, EMPTY elsewhere."""
    import schedula as sh

    rows, cols = rect.shape
    out = _full((rows, cols), sh.EMPTY)
    constants = book.sheets[rect.sheet].constants
    if rows * cols > 4 * len(constants) + 64:  # sparse: walk the constants instead
        for (r, c), v in constants.items():
            if rect.r0 <= r <= rect.r1 and rect.c0 <= c <= rect.c1:
                out[r - rect.r0, c - rect.c0] = v
    else:
        for r in range(rect.r0, rect.r1 + 1):
            for c in range(rect.c0, rect.c1 + 1):
                v = constants.get((r, c))
                if v is not None:
                    out[r - rect.r0, c - rect.c0] = v
    for (sheet, r, c), i in owner.items() if rows * cols > len(owner) else _owned(rect, owner):
        if sheet == rect.sheet and rect.r0 <= r <= rect.r1 and rect.c0 <= c <= rect.c1 and i in values:
            target = book.formulas[i].target
            out[r - rect.r0, c - rect.c0] = values[i][r - target.r0, c - target.c0]
    return out


def _owned(rect: Rect, owner):
    for r, c in rect.cells():
        i = owner.get((rect.sheet, r, c))
        if i is not None:
            yield (rect.sheet, r, c), i


def as_2d(value) -> np.ndarray:
    """A formula value (Ranges, array or scalar) as a plain 2-D object array."""
    arr = np.asarray(getattr(value, "value", value), dtype=object)
    if arr.ndim == 0:
        return arr.reshape(1, 1)
    if arr.ndim == 1:
        return arr.reshape(1, -1)
    return arr.view(np.ndarray)


def _fill(result, shape, single: bool) -> np.ndarray:
    """Lay a formula's result over its target range as Excel does."""
    from formulas.tokens.operand import XlError

    arr = as_2d(result)
    if single:
        return arr[:1, :1].copy()
    rows, cols = shape
    out = np.empty(shape, dtype=object)
    for r in range(rows):
        for c in range(cols):
            rr = r if arr.shape[0] > 1 else 0
            cc = c if arr.shape[1] > 1 else 0
            out[r, c] = arr[rr, cc] if rr < arr.shape[0] and cc < arr.shape[1] else XlError("#N/A")
    return out
