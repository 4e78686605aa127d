"""Evaluate a workbook's formulas: read the cells once, compile each formula, run in order.

``formulas.ExcelModel`` turns every cell, constant or not, into a node of a dispatch
graph; a history sheet of 500 x 100 returns then costs seconds before anything is
computed.  Here the constants are streamed from the worksheet XML into one table per
sheet, each distinct formula is compiled once by ``formulas.Parser`` (formulas that differ
only by a relative offset, such as a filled-down column, share one compiled function),
and the formulas are evaluated in dependency order without recursion.  A range argument
is assembled once as a 2-D array and shared by every formula that reads it.

Supported: formulas on any sheet, legacy and dynamic array formulas (the result fills the
range stored in the file; a dynamic array that evaluates to one value, an error say,
shows it in its anchor cell only, as Excel does), shared formulas, defined names (global or
sheet-local) that refer to ranges, constants or formulas, relative ones included (a name
stored as ``S!XFD1`` is the cell to the left of the cell that uses it; see
:func:`_names_written_out`), structured references to tables
(``Table1[Col]``, ``Table1[[#Headers],[A]:[B]]``, ``Table1[@Col]``), whole-column and
whole-row references (clipped to the cells that exist, so they cost what their filled
cells cost), ``INDEX`` with a row or column of 0.

Not evaluated, and reported: a circular reference is an error naming the cells on the
cycle; a formula that refers to another workbook (``[1]Data!B1``) or calls a function the
calculator lacks (``CUBEVALUE``, ``WEBSERVICE``, ...) or uses a name whose reference a
formula computes (``OFFSET(S!A1,1,0)``) keeps the value Excel cached and is listed as
*kept*; a name the calculator cannot read (a union, a local name of another sheet written
``T!Name``, a name with no sheet such as ``!$A1``) is an error with the reason.

All work is bounded by :class:`~xlmvar.workbook._limits.Limits`.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import logging
import operator
import re
from collections import defaultdict
from dataclasses import dataclass, field
from itertools import repeat
from typing import NamedTuple

import numpy as np

from ._limits import DEFAULT_LIMITS, Limits
from ._xlsx import Archive, _Prefixed, drop_before

__all__ = ["FormulaCell", "Workbook", "read_workbook", "evaluate", "name_values", "unescape_text"]

_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_C, _F, _V, _IS, _T, _ROW, _SI, _RPH = (f"{{{_NS}}}{tag}" for tag in ("c", "f", "v", "is", "t", "row", "si", "rPh"))
_CELL = re.compile(r"^\$?([A-Z]{1,3})\$?(\d+)$")
_PART = re.compile(r"^\$?([A-Z]{1,3})?\$?(\d+)?$")
_REF_IN_TOKEN = re.compile(r"(\$?)([A-Z]{1,3})(\$?)(\d+)(?![\d(])")
MAX_ROW, MAX_COL = 1_048_576, 16_384
_SMALL_RANGE = 64
_CLIP_ABOVE = 1 << 16  # ranges larger than this are clipped to the sheet's used area
_ESCAPE = re.compile(r"_x([0-9A-Fa-f]{4})_")


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


_COLUMNS: dict = {}


def parse_cell(ref: str) -> tuple[int, int]:
    """``(row, column)`` of an A1 cell reference; ValueError unless it is one on the sheet."""
    match = _CELL.match(ref) or _CELL.match(ref.upper())
    if not match:
        raise ValueError(f"not a cell reference: {ref}")
    letters = match.group(1)
    col = _COLUMNS.get(letters)
    if col is None:
        col = _COLUMNS[letters] = col_index(letters)
    row = int(match.group(2))
    if not (1 <= row <= MAX_ROW and 1 <= col <= MAX_COL):
        raise ValueError(f"not a cell reference: {ref} (outside the sheet)")
    return row, col


def unescape_text(text: str) -> str:
    """Undo OOXML's ``_xHHHH_`` escapes (control characters, and ``_x005F_`` for ``_``)."""
    if "_x" not in text:
        return text
    return _ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text)


class Rect(NamedTuple):
    """A rectangle of cells on one sheet, 1-based and inclusive.

    A named tuple rather than a dataclass: a book of a million formulas holds a million of
    them, and the fast lane builds them in C (``tuple.__new__`` mapped over the fields),
    without a Python call per cell.
    """

    sheet: str
    r0: int
    c0: int
    r1: int
    c1: int

    @property
    def shape(self) -> tuple[int, int]:
        return self.r1 - self.r0 + 1, self.c1 - self.c0 + 1

    @property
    def area(self) -> int:
        rows, cols = self.shape
        return rows * cols

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


class FormulaCell(NamedTuple):
    """One formula: its anchor, the range its value fills, its text (without '=') and cache.

    A named tuple (immutable; the fast lane builds them in C, ``tuple.__new__`` mapped over
    the fields): one per formula cell, a million of them for a large book.
    """

    sheet: str
    anchor: str
    target: Rect
    text: str
    cached: object = None  # the anchor's cached value as Excel saved it (None when absent)
    dynamic: bool = False  # a dynamic array formula (spills), as opposed to a legacy one
    array: bool = False  # an array formula (CSE or dynamic), even over one cell: no implicit intersection


@dataclass
class Sheet:
    name: str
    constants: dict = field(default_factory=dict)  # (row, col) -> value
    max_row: int = 0  # of the cells that hold a value or belong to a formula
    max_col: int = 0


@dataclass(frozen=True)
class Table:
    """An Excel table (ListObject): its range, header and totals rows and column names."""

    name: str
    sheet: str
    rect: Rect
    header_rows: int
    totals_rows: int
    columns: tuple


@dataclass
class Workbook:
    sheets: dict  # UPPER name -> Sheet
    formulas: list  # FormulaCell, in sheet order
    names: dict  # (scope UPPER sheet or "", UPPER name) -> reference text
    order: list  # sheet names as written
    hidden: set = field(default_factory=set)  # (scope, NAME) of hidden defined names
    tables: dict = field(default_factory=dict)  # UPPER table name -> Table
    external: dict = field(default_factory=dict)  # "1" -> target of external workbook [1]
    limits: Limits = DEFAULT_LIMITS


# --------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------
def _text_of(node) -> str:
    """The text of a rich-text node, without phonetic runs, OOXML escapes undone."""
    parts = []
    for t in node.iter(_T):
        parent = t.getparent()
        if parent is not None and parent.tag == _RPH:
            continue
        parts.append(t.text or "")
    return unescape_text("".join(parts))


#: Where the evaluation core (IronCalc) reads a workbook's shared strings, whatever its
#: relationships say.
_SHARED_STRINGS = "xl/sharedStrings.xml"


def _shared_strings(archive: Archive) -> list[str]:
    """The shared-string table, each string counted as a cell against ``--max-cells`` (the
    evaluation core holds every one of them: 6 million strings of 3 letters, a 10 MB file,
    took it 4 GB).  A table kept elsewhere than where the evaluation core reads it is
    refused: the two would read different text (Excel always writes this part)."""
    part = _SHARED_STRINGS
    for rel in archive.relationships(archive.workbook_part()).values():
        if rel[0].endswith("/sharedStrings"):
            part = rel[1]
    if part != _SHARED_STRINGS and (archive.has(part) or archive.has(_SHARED_STRINGS)):
        raise ValueError(
            f"workbook: its shared strings are in {part}, not in {_SHARED_STRINGS} where the evaluation core "
            "reads them, so the two would read different text; save the file again with Excel"
        )
    if not archive.has(part):
        return []
    strings, limit = [], archive.limits.max_cells
    for _, si in archive.events(part, tag=_SI):
        strings.append(_text_of(si))
        si.clear()
        drop_before(si)
        if len(strings) > limit:
            raise archive.limits.exceeded("max_cells", f"workbook: shared strings in {part}")
    return strings


def _cell_value(cell, strings, where):
    """The value a ``<c>`` element holds (None when it holds none).

    ``where()`` names the cell in a message; it is only called when the value is malformed.
    """
    kind = cell.get("t")
    v = cell.find(_V)
    text = None if v is None else v.text
    if kind is None or kind == "n":
        if text is None:
            return None
        if not _NUMBER_TEXT.match(text):  # Python's float() would take " 5 ", "1_000", "inf", "nan"
            raise ValueError(f"workbook: {where()} holds {text[:40]!r} where a number is expected; the file is malformed")
        number = _number_of(text)
        if number is _NOT_A_NUMBER:
            raise ValueError(f"workbook: {where()} holds {text[:40]!r}, past the largest number; the file is malformed")
        return number
    if kind == "inlineStr":
        node = cell.find(_IS)
        return _text_of(node) if node is not None else ""
    if text is None:
        return None
    if kind == "s":
        try:
            index = int(text)
        except ValueError:
            raise ValueError(f"workbook: {where()} refers to shared string {text!r}, not an index") from None
        if not 0 <= index < len(strings):
            raise ValueError(
                f"workbook: {where()} refers to shared string {index}, but the workbook holds {len(strings)}; the file is malformed"
            )
        return strings[index]
    if kind == "b":
        if text not in ("0", "1"):  # what OOXML allows; IronCalc reads anything else as FALSE
            raise ValueError(f"workbook: {where()} holds {text[:40]!r} where 0 or 1 (FALSE or TRUE) is expected; the file is malformed")
        return text == "1"
    if kind == "e":
        from formulas.tokens.operand import Error

        return Error.errors.get(text.strip().upper(), Error.errors["#VALUE!"])
    if kind in ("str", "d"):
        return unescape_text(text)
    raise ValueError(f"workbook: {where()} has the unknown cell type {kind[:20]!r}; the file is malformed")


@functools.lru_cache(maxsize=4096)
def _shared_tokens(text: str, origin: str) -> tuple:
    """A shared formula's anchor text as ``(row, column, tokens)``, tokenized once per
    formula (not once per cell that shares it: 100,000 cells cost 9 s that way)."""
    from openpyxl.formula.translate import Translator

    translator = Translator("=" + text, origin=origin)
    return translator.row, translator.col, tuple((t.type, t.subtype, t.value) for t in translator.get_tokens())


def _translate(text: str, origin: str, dest: str) -> str:
    """The formula ``text`` of cell ``origin`` as Excel shares it to cell ``dest``: relative
    references shifted by the offset (openpyxl's Translator, its tokens reused)."""
    from openpyxl.formula.translate import Translator

    row, col, tokens = _shared_tokens(text, origin)
    if tokens and tokens[0][0] == "LITERAL":
        return tokens[0][2]
    r, c = parse_cell(dest)
    return "".join(Translator.translate_range(value, r - row, c - col) if kind == "OPERAND" and sub == "RANGE" else value
                   for kind, sub, value in tokens)


class _SheetReader:
    """Stream one worksheet's cells into a :class:`Sheet` and a list of formulas."""

    def __init__(self, name: str, strings, limits: Limits, counts: dict):
        self.name, self.key = name, name.upper()
        self.sheet = Sheet(name)
        self.strings, self.limits, self.counts = strings, limits, counts
        self.formulas: list[FormulaCell] = []
        self.shared: dict = {}  # si -> (anchor, text)
        self.row, self.col = 0, 0
        self.seen: set = set()  # (row, col) of the cells read: a second one is refused

    def _grow(self, r1: int, c1: int) -> None:
        self.sheet.max_row = max(self.sheet.max_row, r1)
        self.sheet.max_col = max(self.sheet.max_col, c1)

    def _count(self, n: int, where: str) -> None:
        self.counts["cells"] += n
        if self.counts["cells"] > self.limits.max_cells:
            raise self.limits.exceeded("max_cells", f"workbook: cells up to {where}")

    def row_start(self, element) -> None:
        r = element.get("r")
        if r is None:
            self.row += 1
        else:
            try:
                self.row = int(r)
            except ValueError:
                raise ValueError(f"workbook: sheet {self.name!r} has a row numbered {r[:20]!r}; the file is malformed") from None
            if not 1 <= self.row <= MAX_ROW:
                raise ValueError(f"workbook: sheet {self.name!r} has a row numbered {self.row}, outside the sheet")
        self.col = 0

    def cell(self, cell) -> None:
        ref = cell.get("r")
        if ref is None:  # optional in the format: the next cell of the row
            row, col = self.row, self.col + 1
            ref = f"{col_letters(col)}{row}"
        else:
            try:
                row, col = parse_cell(ref)
            except ValueError:
                raise ValueError(f"workbook: sheet {self.name!r} has a cell at {ref[:20]!r}, not a cell reference") from None
            if self.row and row != self.row:  # Excel and IronCalc would disagree on where it is
                raise ValueError(f"workbook: sheet {self.name!r} has the cell {ref} in row {self.row}; the file is malformed")
        if row < 1 or col > MAX_COL:
            raise ValueError(f"workbook: sheet {self.name!r} has a cell outside any row")
        if (row, col) in self.seen:  # which one counts is anyone's guess: IronCalc takes the last
            raise ValueError(f"workbook: sheet {self.name!r} has two cells at {ref}; the file is malformed")
        self.seen.add((row, col))
        self.row, self.col = row, col
        sheet = self.sheet

        def where() -> str:
            return f"sheet {self.name!r} cell {ref}"

        f = cell.find(_F)
        if f is None or f.get("t") == "dataTable" or not (f.text or f.get("t") == "shared"):
            value = _cell_value(cell, self.strings, where)  # a what-if table's cells are Excel's own
            if value is not None:
                self.counts["cells"] += 1
                if self.counts["cells"] > self.limits.max_cells:
                    raise self.limits.exceeded("max_cells", f"workbook: cells up to {where()}")
                sheet.constants[(row, col)] = value
                if row > sheet.max_row:
                    sheet.max_row = row
                if col > sheet.max_col:
                    sheet.max_col = col
            return
        self._formula(cell, f, ref, row, col, where)

    def read(self, archive: Archive, part: str, stream=None) -> None:
        """Read the part element by element (``stream``: the part already opened)."""
        for event, element in archive.events(part, events=("start", "end"), tag=(_ROW, _C), stream=stream):
            if element.tag == _ROW:
                if event == "start":
                    self.row_start(element)
                else:
                    element.clear()
                    drop_before(element)
            elif event == "end":
                self.cell(element)
                element.clear()

    def _undo(self, counts: dict) -> bool:
        """Forget what the fast lane read of this sheet (the element reader reads it again)."""
        del self.formulas[:]
        self.shared.clear()
        self.counts.update(counts)
        return False

    def fast(self, data: bytes, constants) -> bool:
        """Read the whole part ``data`` through the fast lane (:mod:`._sheetscan`); False,
        with nothing changed, when the sheet is not in the regular form or some limit would
        be reached (the element-by-element reading then says where)."""
        from ._sheetscan import scan

        found = scan(data, col_index)
        if found is None or found.max_string >= len(self.strings):
            return False
        if self.counts["cells"] + found.constants + found.count > self.limits.max_cells \
                or self.counts["formulas"] + found.count > self.limits.max_formulas:
            return False
        saved = dict(self.counts)
        cells, columns, common = [], {}, 0
        try:
            with _collector_paused():
                for chunk in found.chunks():
                    taken = self._plain(chunk, columns)
                    if taken is None:  # some cell in a rarer form: one at a time
                        taken = self._one_by_one(chunk, columns, cells)
                    common += taken
        except (_Refused, ValueError):
            return self._undo(saved)
        self.counts["cells"] += found.constants + common
        self.counts["formulas"] += common
        if self.counts["cells"] > self.limits.max_cells or self.counts["formulas"] > self.limits.max_formulas:
            return self._undo(saved)  # an array formula's range took it over: the element reader says where
        self.sheet.constants = constants
        self.sheet.max_row = max([found.max_row] + [r for r, _ in cells])
        self.sheet.max_col = max([found.max_col] + [c for _, c in cells])
        return True

    def _columns(self, letters, columns: dict) -> list:
        """``(letters, number)`` of each column named in ``letters`` (bytes), looked up once each."""
        for name in set(letters).difference(columns):
            columns[name] = (name.decode(), col_index(name.decode()))
        return [columns[name] for name in letters]

    def _plain(self, chunk: list, columns: dict) -> int | None:
        """Take a slice of the fast lane's formula cells when every one is a plain formula
        (``<c r="B2"><f>A2*2</f><v>4</v></c>``: no type, no shared or array formula), as
        one batch of tuples built in C; None, with nothing taken, when one is not."""
        if not chunk:
            return 0
        letters, rows, cell_attrs, closed, opened, texts, cached = zip(*chunk)
        if b' t="' in b"".join(cell_attrs) or any(closed) or any(opened) or not all(texts):
            return None  # (attributes end with a quote: the join makes no ' t="' that was not there)
        joined = b"\n".join(texts)
        if b"&" in joined or b"\r" in joined or joined.count(b"\n") != len(texts) - 1:  # (a text with a line end)
            texts = [t.decode() if b"&" not in t and b"\r" not in t else _sheetscan_text(t) for t in texts]
        else:  # the common case: every text decoded in one call
            texts = joined.decode().split("\n")
        if max(map(len, texts)) > self.limits.max_formula_length:
            raise _Refused
        distinct = {raw: _number(raw) if raw else None for raw in set(cached)}  # few: a book never calculated has 0s
        if _NOT_A_NUMBER in distinct.values():
            raise _Refused
        values = list(map(distinct.__getitem__, cached))
        for name in set(letters).difference(columns):
            columns[name] = (name.decode(), col_index(name.decode()))
        numbers = {row: (row.decode(), int(row)) for row in set(rows)}  # one int per row, not per cell
        refs = list(map("".join, zip(map(_first, map(columns.__getitem__, letters)), map(_first, map(numbers.__getitem__, rows)))))
        rows = list(map(_second, map(numbers.__getitem__, rows)))
        cols = list(map(_second, map(columns.__getitem__, letters)))
        targets = map(_new_rect, zip(repeat(self.key), rows, cols, rows, cols))
        self.formulas.extend(map(_new_formula, zip(repeat(self.name), refs, targets, texts, values, repeat(False), repeat(False))))
        return len(texts)

    def _one_by_one(self, chunk: list, columns: dict, cells: list) -> int:
        """Take a slice of the fast lane's formula cells one at a time (shared and array
        formulas, typed cells); the plain ones are counted (returned), the others count
        themselves, and the ranges of array formulas are added to ``cells``."""
        from ._sheetscan import attributes

        sheet_name, key, longest, common = self.name, self.key, self.limits.max_formula_length, 0
        number = _numbers()
        for (letters, row, cell_attrs, closed, opened, text, cached), (column, col) in zip(chunk, self._columns([c[0] for c in chunk], columns)):
            row, f_attrs, raw, cached = int(row), closed or opened, cached, cached or None
            ref = f"{column}{row}"
            text = text.decode() if b"&" not in text and b"\r" not in text else _sheetscan_text(text)
            if not f_attrs and b' t="' not in cell_attrs and text:  # the common case
                value = number(raw)
                if len(text) > longest or value is _NOT_A_NUMBER:
                    raise _Refused
                self.formulas.append(FormulaCell(sheet_name, ref, Rect(key, row, col, row, col), text, value, False))
                common += 1
                continue
            element = _Cell(attributes(cell_attrs), attributes(f_attrs), text, cached)
            if element.f.get("t") == "dataTable" or not (text or element.f.get("t") == "shared"):
                raise _Refused  # rare forms: the element reader has the rules
            before = len(self.formulas)
            self._formula(element, element.f, ref, row, col, lambda ref=ref: f"sheet {sheet_name!r} cell {ref}")
            if len(self.formulas) > before:
                cells.append((self.formulas[-1].target.r1, self.formulas[-1].target.c1))
        return common

    def _formula(self, cell, f, ref: str, row: int, col: int, where) -> None:
        kind, text = f.get("t"), f.text or ""
        if kind == "shared":
            si = f.get("si")
            if text:
                self.shared[si] = (ref, text)
            elif si in self.shared:
                text = _translate(self.shared[si][1], self.shared[si][0], ref)
            else:
                raise ValueError(
                    f"workbook: {where()} uses shared formula {si}, whose anchor cell is missing; the file is malformed"
                )
        if len(text) > self.limits.max_formula_length:
            raise self.limits.exceeded("max_formula_length", f"workbook: the formula of {where()} has {len(text):,} characters")
        if kind == "array" and f.get("ref"):
            a, _, b = f.get("ref").partition(":")
            try:
                (r0, c0), (r1, c1) = parse_cell(a), parse_cell(b or a)
            except ValueError:
                raise ValueError(f"workbook: {where()} has an array range {f.get('ref')[:40]!r}, not a range") from None
            target = Rect(self.key, min(r0, r1), min(c0, c1), max(r0, r1), max(c0, c1))
            if target.area > self.limits.max_area:
                raise self.limits.exceeded(
                    "max_area", f"workbook: the array formula of {where()} fills {target.ref}, {target.area:,} cells"
                )
        else:
            target = Rect(self.key, row, col, row, col)
        self._count(target.area, where())
        self.counts["formulas"] += 1
        if self.counts["formulas"] > self.limits.max_formulas:
            raise self.limits.exceeded("max_formulas", f"workbook: formulas up to {where()}")
        self._grow(target.r1, target.c1)
        cached = _cell_value(cell, self.strings, where)
        self.formulas.append(FormulaCell(self.name, ref, target, text, cached, kind == "array" and cell.get("cm") is not None,
                                         kind == "array"))


#: Sheet parts up to this size (uncompressed) are read whole and tried in the fast lane.
_FAST_LANE_BYTES = 256 << 20
_NOT_A_NUMBER = object()
_NUMBER_TEXT = re.compile(r"-?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?$")


class _Refused(Exception):
    """The fast lane gives a sheet back to the element-by-element reader."""


def _read_up_to(stream, n: int) -> bytes:
    """The first ``n`` bytes of ``stream`` (all of it when shorter)."""
    chunks, size = [], 0
    while size < n and (chunk := stream.read(n - size)):
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


@contextlib.contextmanager
def _collector_paused():
    """Python's cycle collector off while the fast lane makes a tuple or two per formula.

    Every so many new containers the collector walks the older ones; with a million
    formulas read those walks cost as much as making the tuples (measured: 1.7 s of 4.5 s
    at 1.25M formulas).  The tuples hold strings and numbers: they form no cycles, and
    reference counting frees them."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


_new_rect = functools.partial(tuple.__new__, Rect)  # Rect(*fields), built in C
_first, _second = operator.itemgetter(0), operator.itemgetter(1)
_new_formula = functools.partial(tuple.__new__, FormulaCell)


def _numbers():
    """:func:`_number` of a cached value's bytes (None for none), remembering the answers: a
    slice of cells repeats few distinct values (every cached 0 of a book never calculated)."""
    memo = {b"": None}

    def number(raw):
        value = memo.get(raw, memo)
        if value is memo:
            value = memo[raw] = _number(raw)
        return value

    return number


def _number(raw: bytes):
    return _number_of(raw.decode("ascii", "replace"))


def _number_of(text: str):
    """The number a cell's ``<v>`` text holds (an int when it is one), or
    ``_NOT_A_NUMBER`` for text that is not a strict number or is past the largest float."""
    if not _NUMBER_TEXT.match(text):
        return _NOT_A_NUMBER
    if len(text) < 16:
        try:
            return int(text)
        except ValueError:
            pass
    number = float(text)
    return number if number - number == 0.0 else _NOT_A_NUMBER


def _sheetscan_text(raw: bytes) -> str:
    from ._sheetscan import _unescape

    return _unescape(raw)


class _Cell:
    """A formula cell read by the fast lane, shaped like the lxml element the reader takes."""

    class _Text:
        def __init__(self, text):
            self.text = text

    def __init__(self, attrs: dict, f_attrs: dict, text: str, cached):
        self.attrs, self.f = attrs, _Cell._Element(f_attrs, text)
        self.v = None if cached is None else _Cell._Text(_sheetscan_text(cached))

    class _Element:
        def __init__(self, attrs, text):
            self.attrs, self.text = attrs, text

        def get(self, name, default=None):
            return self.attrs.get(name, default)

    def get(self, name, default=None):
        return self.attrs.get(name, default)

    def find(self, tag):
        return self.v if tag == _V else None


class _LazyConstants(dict):
    """A sheet's constants, read (element by element) the first time something asks.

    The fast lane only counts constants: IronCalc reads the values itself.  What still needs
    them here (the value Excel cached in a kept array formula's range, a defined name the
    report reads, the ``formulas`` core) pays for one reading of that sheet.
    """

    def __init__(self, load):
        super().__init__()
        self._load = load

    def _filled(self):
        if self._load is not None:
            load, self._load = self._load, None
            self.update(load())
        return self

    def get(self, key, default=None):
        return dict.get(self._filled(), key, default)

    def __getitem__(self, key):
        return dict.__getitem__(self._filled(), key)

    def __contains__(self, key):
        return dict.__contains__(self._filled(), key)

    def __iter__(self):
        return dict.__iter__(self._filled())

    def __len__(self):
        return dict.__len__(self._filled())

    def items(self):
        return dict.items(self._filled())

    def keys(self):
        return dict.keys(self._filled())

    def values(self):
        return dict.values(self._filled())


def _lazy_constants(path, limits: Limits, name: str, part: str) -> _LazyConstants:
    def load() -> dict:
        with Archive(path, limits) as archive:
            strings = _shared_strings(archive)
            reader = _SheetReader(name, strings, limits.replace(max_cells=1 << 62, max_formulas=1 << 62), {"cells": 0, "formulas": 0})
            reader.read(archive, part)
        return reader.sheet.constants

    return _LazyConstants(load)


#: Excel's own limit on a workbook's cell formats; the evaluation core holds every ``<xf>``
#: of ``xl/styles.xml`` (3 million of them, a 5 MB file, took it 3 GB), which xlmvar's reader
#: otherwise never reads.
MAX_CELL_FORMATS = 65_490
_XF = f"{{{_NS}}}xf"


def _check_styles(archive: Archive) -> None:
    """Refuse a styles part with more cell formats than Excel allows (read as a stream, its
    bytes counted against ``--max-mib``)."""
    part = "xl/styles.xml"
    if not archive.has(part):
        return
    count = 0
    for _, xf in archive.events(part, tag=_XF):
        count += 1
        xf.clear()
        drop_before(xf)
        if count > MAX_CELL_FORMATS:
            raise ValueError(
                f"workbook: {part} holds more than {MAX_CELL_FORMATS:,} cell formats, Excel's own limit; "
                "the file was not written by Excel"
            )


def read_workbook(path, limits: Limits = DEFAULT_LIMITS) -> Workbook:
    """Read constants, formulas, defined names and tables of every worksheet."""
    with Archive(path, limits) as archive:
        _check_styles(archive)
        strings = _shared_strings(archive)
        sheets, formulas, order, tables = {}, [], [], {}
        counts = {"cells": 0, "formulas": 0}
        for name, part in archive.sheet_parts():
            reader = _SheetReader(name, strings, limits, counts)
            stream = archive.open(part)
            head = _read_up_to(stream, _FAST_LANE_BYTES + 1)
            if len(head) > _FAST_LANE_BYTES or not reader.fast(head, _lazy_constants(path, limits, name, part)):
                reader.read(archive, part, _Prefixed(head, stream))
            else:
                stream.close()
            head = None  # (not held while the next sheet is read)
            if reader.sheet.name.upper() in sheets:
                raise ValueError(f"workbook: two sheets are named {name!r}")
            sheets[reader.key] = reader.sheet
            order.append(name)
            formulas.extend(reader.formulas)
            for kind, target in archive.relationships(part).values():
                if kind.endswith("/table"):
                    table = _table(archive, target, reader.key)
                    tables[table.name.upper()] = table
        names, hidden = _defined_names(archive, order)
        external = _external_links(archive)
    return Workbook(sheets, formulas, names, order, hidden, tables, external, limits)


def _table(archive: Archive, part: str, sheet: str) -> Table:
    root = archive.xml(part)
    ref = root.get("ref", "")
    a, _, b = ref.partition(":")
    try:
        (r0, c0), (r1, c1) = parse_cell(a), parse_cell(b or a)
    except ValueError:
        raise ValueError(f"workbook: table part {part} has the range {ref[:40]!r}, not a range") from None
    columns = tuple(unescape_text(c.get("name", "")) for c in root.iter(f"{{{_NS}}}tableColumn"))
    return Table(
        root.get("displayName") or root.get("name") or "",
        sheet,
        Rect(sheet, r0, c0, r1, c1),
        int(root.get("headerRowCount", "1")),
        int(root.get("totalsRowCount", "0")),
        columns,
    )


def _defined_names(archive: Archive, order) -> tuple[dict, set]:
    root = archive.xml(archive.workbook_part())
    properties = root.find(f"{{{_NS}}}workbookPr")
    if properties is not None and properties.get("date1904") in ("1", "true"):
        # both cores count dates from 1900: every date would be 1,462 days off, silently
        raise ValueError("workbook: it uses the 1904 date system (File > Options > Advanced in Excel); "
                         "the headless calculator counts dates from 1900 only: switch the option off and save it again")
    names, hidden = {}, set()
    # localSheetId counts every sheet of the workbook, chart sheets too (``order`` has the
    # worksheets only: with a chart sheet first, names landed on the next sheet)
    every = [node.get("name", "") for node in root.iter(f"{{{_NS}}}sheet")] or list(order)
    for node in root.iter(f"{{{_NS}}}definedName"):
        scope = node.get("localSheetId")
        try:
            sheet = every[int(scope)].upper() if scope is not None else ""
        except (ValueError, IndexError):
            raise ValueError(f"workbook: defined name {node.get('name')!r} is local to sheet {scope!r}, which does not exist") from None
        key = (sheet, node.get("name", "").upper())
        names[key] = (node.text or "").strip()
        if node.get("hidden") in ("1", "true"):
            hidden.add(key)
    return names, hidden


def _external_links(archive: Archive) -> dict:
    """``{"1": "target file"}`` of the workbooks that ``[1]...`` references point to."""
    book = archive.workbook_part()
    rels = archive.relationships(book)
    out = {}
    refs = archive.xml(book).iter(f"{{{_NS}}}externalReference")
    for n, node in enumerate(refs, start=1):
        kind, part = rels.get(node.get(f"{{{_REL}}}id"), ("", ""))
        target = ""
        if part and archive.has(part):
            for kind2, t in archive.relationships(part).values():
                target = t
        out[str(n)] = target
    return out


# --------------------------------------------------------------------------------------
# References
# --------------------------------------------------------------------------------------
def parse_area(ref: str):
    """``(r0, c0, r1, c1)`` of an A1 area such as ``B2``, ``B2:C9``, ``B:B``, ``2:5``,
    ``B2:B`` or ``B2:`` (the last two are ``formulas``' short forms of ``B2:B1048576`` and
    ``B2:XFD1048576``); None when ``ref`` is not an area."""
    ref = ref.replace("$", "").upper()
    a, colon, b = ref.partition(":")
    ma, mb = _PART.match(a), _PART.match(b)
    if not ma or not mb or not (ma.group(1) or ma.group(2)):
        return None
    ca, ra = ma.group(1), ma.group(2)
    cb, rb = mb.group(1), mb.group(2)
    if not colon:
        if not (ca and ra):
            return None
        cb, rb = ca, ra
    elif not (cb or rb):  # "B2:" -> to the last cell
        cb, rb = "XFD", str(MAX_ROW)
    elif ca and ra and (bool(cb) != bool(rb)):  # "B2:B" or "A1:5"
        cb = cb or "XFD"
        rb = rb or str(MAX_ROW)
    elif bool(ca) != bool(cb) or bool(ra) != bool(rb):
        return None
    c0, c1 = (col_index(ca), col_index(cb)) if ca else (1, MAX_COL)
    r0, r1 = (int(ra), int(rb)) if ra else (1, MAX_ROW)
    if not (1 <= r0 <= MAX_ROW and 1 <= r1 <= MAX_ROW and 1 <= c0 <= MAX_COL and 1 <= c1 <= MAX_COL):
        return None
    return min(r0, r1), min(c0, c1), max(r0, r1), max(c0, c1)


class Unsupported(Exception):
    """A formula the calculator will not evaluate; its cached value is kept."""


class _Resolver:
    """Turn the references and names of a formula into rectangles."""

    def __init__(self, book: Workbook):
        self.book = book

    def rect(self, text: str, sheet: str) -> Rect | None:
        text = text.strip()
        if "!" in text:
            sheet_part, _, ref = text.rpartition("!")
            sheet_name = sheet_part
            if sheet_name.startswith("'") and sheet_name.endswith("'"):
                sheet_name = sheet_name[1:-1].replace("''", "'")
            if sheet_name.startswith("["):
                raise Unsupported(f"refers to another workbook ({self._external(sheet_name)}): {text}")
            sheet_name = sheet_name.upper()
        else:
            sheet_name, ref = sheet, text
        if text.startswith("["):
            raise Unsupported(f"refers to another workbook ({self._external(text)}): {text}")
        area = parse_area(ref)
        if area is None or sheet_name not in self.book.sheets:
            return None
        return Rect(sheet_name, *area)

    def _external(self, text: str) -> str:
        number = text[1:].split("]", 1)[0]
        target = self.book.external.get(number)
        return f"[{number}] is {target}" if target else f"external workbook [{number}]"

    def resolve(self, token: str, sheet: str) -> Rect | None:
        rect = self.rect(token, sheet)
        if rect is not None:
            return rect
        name = token.upper()
        definition = self.book.names.get((sheet, name)) or self.book.names.get(("", name))
        if definition:
            if "[" in definition.split("!")[0]:
                raise Unsupported(f"the name {token} refers to another workbook: {definition}")
            return self.rect(definition, sheet)
        table = self.book.tables.get(name)
        if table is not None:
            return _table_rows(table, "#DATA", 0)
        return None


# --------------------------------------------------------------------------------------
# Formula text: tokens, structured references, missing arguments, sharing
# --------------------------------------------------------------------------------------
def _tokens(text: str):
    """openpyxl's tokens of a formula; [] when its tokenizer cannot read it (formulas may)."""
    from openpyxl.formula.tokenizer import Tokenizer

    try:
        return Tokenizer("=" + text).items
    except Exception:
        return []


_SPECIAL = ("#ALL", "#DATA", "#HEADERS", "#TOTALS", "#THIS ROW")


def _table_rows(table: Table, item: str, row: int) -> Rect:
    rect = table.rect
    first_data = rect.r0 + table.header_rows
    last_data = rect.r1 - table.totals_rows
    if item == "#ALL":
        r0, r1 = rect.r0, rect.r1
    elif item == "#DATA":
        r0, r1 = first_data, last_data
    elif item == "#HEADERS":
        if not table.header_rows:
            raise ValueError(f"table {table.name} has no header row")
        r0 = r1 = rect.r0
    elif item == "#TOTALS":
        if not table.totals_rows:
            raise ValueError(f"table {table.name} has no totals row")
        r0 = r1 = rect.r1
    else:  # #THIS ROW
        if not first_data <= row <= last_data:
            raise ValueError(f"{table.name}[#This Row] used outside the table's rows")
        r0 = r1 = row
    return Rect(rect.sheet, r0, rect.c0, r1, rect.c1)


def _structured(token: str, book: Workbook, row: int) -> str | None:
    """The A1 reference of a structured reference such as ``Table1[[#Data],[A]:[B]]``.

    Returns None when ``token`` is not a structured reference; raises ValueError naming it
    when it is one the calculator cannot resolve.
    """
    name, bracket, rest = token.partition("[")
    if not bracket or not name or not rest.endswith("]") or name.startswith("'"):
        return None
    table = book.tables.get(name.upper())
    if table is None:
        raise ValueError(f"structured reference {token}: the workbook has no table named {name}")
    body = rest[:-1].strip()
    items = re.findall(r"\[((?:[^\[\]']|'.)*)\]", body) if body.startswith("[") else ([body] if body else [])
    if body.startswith("[") and not re.fullmatch(r"(\[(?:[^\[\]']|'.)*\]\s*[,:]?\s*)*", body):
        raise ValueError(f"structured reference {token}: not understood")
    separators = re.sub(r"\[(?:[^\[\]']|'.)*\]", "", body).replace(" ", "") if body.startswith("[") else ""
    item, columns = "#DATA", []
    for raw in items:
        text = re.sub(r"'(.)", r"\1", raw).strip()
        if text.startswith("@"):
            item, text = "#THIS ROW", text[1:].strip()
            if not text:
                continue
        if text.upper() in _SPECIAL:
            item = text.upper()
        elif text:
            columns.append(text)
    if body.startswith("@"):
        item, columns = "#THIS ROW", [re.sub(r"'(.)", r"\1", body[1:]).strip("[] ")]
    if len(columns) > 2 or (len(columns) == 2 and ":" not in separators):
        raise ValueError(f"structured reference {token}: not understood")
    rows = _table_rows(table, item, row)
    upper = [c.upper() for c in table.columns]
    c0, c1 = rows.c0, rows.c1
    if columns:
        try:
            found = [upper.index(c.upper()) for c in columns]
        except ValueError:
            raise ValueError(f"structured reference {token}: table {table.name} has no column {columns}") from None
        c0, c1 = table.rect.c0 + min(found), table.rect.c0 + max(found)
    rect = Rect(rows.sheet, rows.r0, c0, rows.r1, c1)
    sheet_name = book.sheets[rect.sheet].name.replace("'", "''")
    first, last = f"{col_letters(rect.c0)}{rect.r0}", f"{col_letters(rect.c1)}{rect.r1}"
    return f"'{sheet_name}'!{first}:{last}"  # D2:D2, not D2: a table's part is a range (INDEX needs one)


def _table_at(book: Workbook, sheet: str, row: int, col: int) -> Table | None:
    """The table whose range holds the cell, if any."""
    for table in book.tables.values():
        r = table.rect
        if r.sheet == sheet and r.r0 <= row <= r.r1 and r.c0 <= col <= r.c1:
            return table
    return None


def _rewrite_structured(text: str, book: Workbook, row: int, at: tuple | None = None) -> str:
    """``text`` with every structured reference replaced by its A1 reference.

    ``at``, the formula's ``(sheet, column)``: a reference without its table's name
    (``[col3]``, ``[@Qty]``, as Excel writes a table's totals row, ``SUBTOTAL(109,[col3])``)
    means the table the cell stands in.  (A bracket before a sheet, ``[1]Data!A1``, is a
    link to another workbook, left to the rules for those.)
    """
    if "[" not in text:
        return text
    tokens = _tokens(text)
    if not tokens:
        return text
    out = []
    for token in tokens:
        value = token.value
        if token.type == "OPERAND" and token.subtype == "RANGE" and "[" in value:
            if not value.startswith("["):
                a1 = _structured(value, book, row)
            elif at is not None and "!" not in value:
                table = _table_at(book, at[0], row, at[1])
                if table is None:
                    raise ValueError(f"structured reference {value}: the cell is in no table")
                a1 = _structured(table.name + value, book, row)
            else:
                a1 = None
            if a1 is not None:
                value = a1
        out.append(value)
    return "".join(out)


_IDENT_CHARS = re.compile(r"[A-Za-z0-9_.]")


def _identifier_before(text: str, i: int) -> str | None:
    """The function name just before ``text[i]`` (an opening parenthesis), if any."""
    j = i
    while j > 0 and text[j - 1].isspace():
        j -= 1
    k = j
    while k > 0 and _IDENT_CHARS.match(text[k - 1]):
        k -= 1
    name = text[k:j]
    return name.upper() if name and (name[0].isalpha() or name[0] == "_") else None


def mark_missing_arguments(text: str, functions, marker: str) -> str:
    """Put ``marker`` in every empty argument slot of a call to one of ``functions``.

    ``formulas`` compiles ``F(a,,b)`` as ``F(a,0,b)``, but Excel hands a user-defined
    function an omitted argument as *missing* (xlwings passes ``None``, so the default
    applies).  Native functions keep formulas' reading.  String literals and quoted sheet
    names are skipped.  Linear in the length of ``text``.
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
            stack.append(_identifier_before(text, i) if ch == "(" else None)
            if stack[-1] in functions and next_char(i + 1) == ",":
                out.append(marker)
        elif ch in ")}":
            if stack:
                stack.pop()
        elif ch == "," and stack and stack[-1] in functions and next_char(i + 1) in (",", ")"):
            out.append(marker)
        i += 1
    return "".join(out)


_PREFIXES = ("_XLFN._XLWS.", "_XLFN.", "_XLWS.", "_XLUDF.")


def _function_name(token_value: str) -> str:
    name = token_value[:-1].strip().upper()
    for prefix in _PREFIXES:
        if name.startswith(prefix):
            return name[len(prefix) :]
    return name


def _unsupported_functions(tokens, table) -> tuple[list[str], list[str]]:
    """``(Excel functions formulas lacks, names that are no Excel function at all)``.

    An Excel function is one of openpyxl's list of built-in names, or one written with
    Excel's ``_xlfn.`` prefix for functions newer than 2007 (``_xlfn.WEBSERVICE``).
    """
    from formulas.functions import not_implemented
    from openpyxl.utils import FORMULAE

    lacking, unknown = [], []
    for token in tokens:
        if token.type == "FUNC" and token.subtype == "OPEN":
            name = _function_name(token.value)
            entry = table.get(name) if name else None
            func = entry.get("function") if isinstance(entry, dict) else entry
            if name and (entry is None or func is not_implemented):
                excel = name in FORMULAE or token.value.upper().startswith(("_XLFN.", "_XLWS."))
                found = lacking if excel else unknown
                if name not in found:
                    found.append(name)
    return lacking, unknown


def _shape_key(tokens, row: int, col: int) -> tuple:
    """The formula in relative (R1C1-like) form: equal for a filled-down column."""

    def relative(m):
        c = m.group(2) if m.group(1) else f"C[{col_index(m.group(2)) - col}]"
        r = m.group(4) if m.group(3) else f"R[{int(m.group(4)) - row}]"
        return f"{m.group(1)}{c}{m.group(3)}{r}"

    parts = []
    for token in tokens:
        value = token.value
        if token.type == "OPERAND" and token.subtype == "RANGE":
            sheet, bang, ref = value.rpartition("!")
            value = sheet + bang + _REF_IN_TOKEN.sub(relative, ref.upper())
        parts.append(value)
    return tuple(parts)


# --------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------
@dataclass
class Evaluation:
    """Values of the formula targets, and what was not computed."""

    values: dict  # formula index -> 2-D object array filling its target
    failures: dict  # formula index -> XlError carrying a reason
    kept: dict = field(default_factory=dict)  # formula index -> why its cached value was kept
    overflows: dict = field(default_factory=dict)  # formula index -> why its spill was cut short


class _Index:
    """Which formula fills a cell, and which formulas fill part of a range."""

    def __init__(self, book: Workbook):
        self.book = book
        self.single: dict = {}
        self.arrays_by_col: dict = defaultdict(list)
        self.by_col: dict = defaultdict(list)
        self._within: dict = {}
        for i, fc in enumerate(book.formulas):
            t = fc.target
            if t.area == 1:
                self.single[(t.sheet, t.r0, t.c0)] = i
            for c in range(t.c0, t.c1 + 1):
                self.by_col[(t.sheet, c)].append(i)
                if t.area > 1:
                    self.arrays_by_col[(t.sheet, c)].append(i)

    def at(self, sheet: str, r: int, c: int):
        i = self.single.get((sheet, r, c))
        if i is None:
            for j in self.arrays_by_col.get((sheet, c), ()):
                t = self.book.formulas[j].target
                if t.r0 <= r <= t.r1:
                    return j
        return i

    def within(self, rect: Rect) -> list[int]:
        """Formulas whose target intersects ``rect``; cost ~ formulas in its columns."""
        found = self._within.get(rect)
        if found is not None:
            return found
        if rect.area <= _SMALL_RANGE:
            found = {i for r, c in rect.cells() if (i := self.at(rect.sheet, r, c)) is not None}
        else:
            found = set()
            sheet = self.book.sheets.get(rect.sheet)
            last = min(rect.c1, sheet.max_col if sheet else 0)
            for c in range(rect.c0, last + 1):
                for i in self.by_col.get((rect.sheet, c), ()):
                    if self.book.formulas[i].target.intersects(rect):
                        found.add(i)
        self._within[rect] = found = sorted(found)
        return found


def _clip(rect: Rect, book: Workbook) -> Rect:
    """``rect`` without the rows and columns past the sheet's last filled cell.

    Applied to whole rows and columns (``A:A``, ``B2:B1048576``, ``1:1``) and to any range
    of more than 65,536 cells; a smaller range keeps its exact shape.
    """
    if rect.area <= _CLIP_ABOVE and rect.r1 < MAX_ROW and rect.c1 < MAX_COL:
        return rect
    sheet = book.sheets[rect.sheet]
    r1, c1 = min(rect.r1, max(sheet.max_row, rect.r0)), min(rect.c1, max(sheet.max_col, rect.c0))
    return Rect(rect.sheet, rect.r0, rect.c0, r1, c1)


#: Functions whose answer depends on the size of a range, or can count its blank cells (a
#: criterion such as "" or "<>x" matches blanks): given a whole-column or whole-row reference
#: (clipped to the used area) they are not evaluated but keep Excel's cached value.
_SHAPE_FUNCTIONS = {"ROWS", "COLUMNS", "ROW", "COLUMN", "COUNTBLANK", "COUNTIF", "COUNTIFS"}


def _check_clipping(tokens, rects, book: Workbook) -> None:
    clipped = [r for r in rects if r is not None and _clip(r, book) != r]
    if not clipped:
        return
    names = {_function_name(t.value) for t in tokens if t.type == "FUNC" and t.subtype == "OPEN"}
    shape = sorted(names & _SHAPE_FUNCTIONS)
    if shape:
        raise Unsupported(
            f"calls {', '.join(shape)} on {clipped[0].ref}, a whole-column or whole-row range the calculator "
            "reads only up to the last filled cell"
        )


def _compiler(book: Workbook, make_error, rewrite):
    """A function ``i -> (compiled, rects)`` that compiles each distinct formula once."""
    import formulas

    resolver = _Resolver(book)
    mentions = _name_pattern(book, resolver)
    table = formulas.get_functions()
    cache: dict = {}

    def compile_one(i: int):
        fc = book.formulas[i]
        sheet = fc.target.sheet
        text = _names_written_out(fc, book, resolver, mentions)  # may raise Unsupported
        text = _rewrite_structured(text, book, fc.target.r0, (sheet, fc.target.c0))
        tokens = _tokens(text)
        lacking, unknown = _unsupported_functions(tokens, table)
        if unknown:
            raise NameError(f"unknown function {', '.join(unknown)} (neither an Excel nor an xlmvar function)")
        if lacking:
            raise Unsupported(f"calls {', '.join(lacking)}, which the headless calculator does not evaluate")
        ranges = [t.value for t in tokens if t.type == "OPERAND" and t.subtype == "RANGE"]
        rects_of_tokens = [resolver.resolve(t, sheet) for t in ranges]  # may raise Unsupported
        _check_clipping(tokens, rects_of_tokens, book)
        key = (sheet, _shape_key(tokens, fc.target.r0, fc.target.c0)) if tokens else None
        hit = cache.get(key) if key else None
        if hit is not None:
            func, mapping = hit
            if mapping is not None:
                return func, [rects_of_tokens[k] for k in mapping]
        func = formulas.Parser().ast("=" + (rewrite(text) if rewrite else text))[1].compile()
        rects = []
        for token in func.inputs:
            rect = resolver.resolve(token, sheet)
            if rect is None:
                raise LookupError(f"unknown name or reference {token}")
            rects.append(rect)
        if key:
            cache[key] = (func, _mapping(rects, rects_of_tokens, ranges))
        return func, rects

    return compile_one


def _names_written_out(fc: FormulaCell, book: Workbook, resolver: _Resolver, mentions) -> str:
    """The text of ``fc`` with the defined names ``formulas`` cannot read as they stand
    written out for its cell, as the IronCalc core writes them
    (:func:`~xlmvar.workbook._core_ironcalc._inline_names`).

    * A name whose definition holds a relative reference (no ``$`` before its row or column:
      ``Left = S!XFD1``, ``RowPos = S!$B1:$C1``, ``Top = S!B$1``) is stored relative to cell
      A1: used in row ``r``, column ``c`` it is the reference moved ``r - 1`` rows down and
      ``c - 1`` columns right, rows and columns wrapping past the sheet's edge as Excel does
      (``S!XFD1`` in F6 is ``S!E6``, the cell to the left; ``S!A1048576`` in K2 is ``S!K1``).
      An array formula (legacy or dynamic) uses it from its anchor, the top-left cell of its
      range; a shared formula from each of its cells.
    * A name that is a constant or a formula (``Conf = 0.99``, ``Twice = S!XFD1*2``) is
      written in parentheses; names inside a definition are written out in turn, for the
      same cell.
    * A name whose definition computes a reference (``OFFSET``, ``INDIRECT``, ``INDEX``...)
      raises :class:`Unsupported`: the formula keeps Excel's value, with the reason.

    A name that is a plain absolute reference stays a name (:meth:`_Resolver.resolve` reads
    it).  ``mentions`` (:func:`_name_pattern`) picks the formulas that may name one; only
    those are tokenized an extra time.
    """
    if mentions is None or not mentions.search(fc.text):
        return fc.text
    from ._core_ironcalc import _inline_names, _without_strings  # (the IronCalc core's rule; ironcalc is not loaded)

    text = _inline_names(fc.text, fc.target.sheet, book, resolver, at=(fc.target.r0, fc.target.c0))
    left = mentions.search(_without_strings(text))
    if left is not None:  # written with its sheet (``T!Loc``): formulas would read it at A1
        raise Unsupported(
            f"the name {left.group(0)} is written with its sheet; the headless calculator writes "
            "out such a name (relative, a constant or a formula) only as it is written unqualified"
        )
    return text


def _name_pattern(book: Workbook, resolver: _Resolver):
    """A pattern that finds, in a formula's text, the defined names of ``book`` that
    :func:`_names_written_out` writes out (and, at worst, a word that only looks like one):
    relative ones, and those that are no plain reference (constants, formulas); None when
    there are none.  A name that is a plain absolute reference (``Cov = Data!$B$2:$D$4``,
    the common case) is read as it stands: formulas naming only such names are not
    tokenized again."""
    words = set()
    for (scope, name), definition in book.names.items():
        text = definition.lstrip("=")
        try:
            plain = resolver.rect(text, scope) is not None
        except Unsupported:  # another workbook: kept by the rules for those, unless moved
            plain = True
        if not plain or _is_relative(text):
            words.add(name)
    if not words:
        return None
    alternatives = "|".join(map(re.escape, sorted(words, key=len, reverse=True)))
    # also after a sheet (``T!Loc``, a local name written with its sheet): found, so that
    # :func:`_names_written_out` refuses what it cannot write out rather than formulas
    # reading it at A1
    return re.compile(rf"(?<![\w.$'])(?:{alternatives})(?![\w.(!])", re.I)


def _mapping(rects, rects_of_tokens, tokens):
    """Positions in the token list of each compiled input, or None when ambiguous."""
    first: dict = {}
    for k, (rect, token) in enumerate(zip(rects_of_tokens, tokens)):
        if rect is None:
            continue
        if rect in first and tokens[first[rect]].upper() != token.upper():
            return None  # the same cells written two ways ($A$1 and A1): do not share
        first.setdefault(rect, k)
    try:
        return [first[rect] for rect in rects]
    except KeyError:
        return None


def evaluate(book: Workbook, make_error, progress=None, rewrite=None) -> Evaluation:
    """Compile and evaluate every formula of ``book`` in dependency order.

    ``make_error(code, reason)`` builds the error value a failing formula shows.
    ``progress(done, total, cell)``, if given, is called before each formula is evaluated
    (``cell`` is its address) and once at the end with an empty ``cell``.
    ``rewrite(text)``, if given, adjusts a formula's text before it is compiled.
    """
    from formulas.ranges import Ranges

    _register_index()
    _linear_parser()
    limits = book.limits
    index = _Index(book)
    compile_one = _compiler(book, make_error, rewrite)
    compiled, inputs, deps, failures, kept, overflows = {}, {}, {}, {}, {}, {}
    for i, fc in enumerate(book.formulas):
        deps[i] = set()
        try:
            compiled[i], rects = compile_one(i)
        except Unsupported as exc:
            kept[i] = str(exc)
            continue
        except LookupError as exc:
            failures[i] = make_error("#REF!", str(exc))
            continue
        except NameError as exc:
            failures[i] = make_error("#NAME?", str(exc))
            continue
        except Exception as exc:  # a syntax formulas cannot read, a bad structured reference
            failures[i] = make_error("#NAME?", f"cannot evaluate the formula headlessly: {_message(exc)}")
            continue
        inputs[i] = [_clip(rect, book) for rect in rects]
        for rect in inputs[i]:
            if rect.area > limits.max_area:
                raise limits.exceeded("max_area", f"workbook: {fc.sheet}!{fc.anchor} reads {rect.ref}, {rect.area:,} filled cells")
            deps[i].update(index.within(rect))

    order = _topological(deps)
    _check_depth(order, deps, book)
    for i, reason in _cycles(deps, set(deps) - set(order), book).items():
        failures[i] = make_error("#REF!", reason)

    values, range_cache = {}, {}
    done, total = 0, len(book.formulas)
    for i in order + sorted(set(deps) - set(order)):
        fc = book.formulas[i]
        if progress is not None:
            progress(done, total, f"{fc.sheet}!{fc.anchor}")
        if i in kept:
            values[i] = _cached(fc, book)
        elif i in failures:
            values[i] = _error_fill(fc, failures[i])
        else:
            args = []
            for rect in inputs[i]:
                if rect not in range_cache:
                    array = _assemble(rect, book, index, values)
                    name = book.sheets[rect.sheet].name.upper().replace("'", "''")
                    range_cache[rect] = Ranges().push(f"'[book]{name}'!{rect.ref}", array)
                args.append(range_cache[rect])
            try:
                with _quiet("schedula"):
                    result = compiled[i](*args)
            except Exception as exc:
                result = _failure(exc, make_error)
            values[i] = _fill(result, fc)
            overflow = _overflow(result, fc)
            if overflow:
                overflows[i] = overflow
        done += 1
    if progress is not None:
        progress(done, total, "")
    return Evaluation(values, failures, kept, overflows)


def _message(exc: Exception) -> str:
    if len(exc.args) == 2 and isinstance(exc.args[0], str) and "%s" in exc.args[0]:
        return (exc.args[0] % exc.args[1]).replace("\n", " ")
    return str(exc)


def _check_depth(order, deps, book: Workbook) -> None:
    limit = book.limits.max_depth
    depth: dict = {}
    for i in order:
        depth[i] = 1 + max((depth[j] for j in deps[i] if j in depth), default=0)
        if depth[i] > limit:
            fc = book.formulas[i]
            raise book.limits.exceeded("max_depth", f"workbook: {fc.sheet}!{fc.anchor} ends a chain of {depth[i]:,} dependent formulas")


def _cycles(deps, stuck: set, book: Workbook) -> dict:
    """A reason naming the cells of the cycle for every formula on or behind one."""
    cycle_of: dict = {}  # formula -> text of the cycle it is on or behind
    reasons: dict = {}
    names = {i: f"{book.formulas[i].sheet}!{book.formulas[i].anchor}" for i in stuck}
    for start in sorted(stuck):
        if start in cycle_of:
            continue
        path, seen = [], {}
        node = start
        while node not in cycle_of and node not in seen:  # every stuck formula has a stuck input
            seen[node] = len(path)
            path.append(node)
            node = min(j for j in deps[node] if j in stuck)
        if node in cycle_of:
            behind = path
            text = cycle_of[node]
        else:
            cycle = path[seen[node] :]
            behind = path[: seen[node]]
            text = " -> ".join(names[k] for k in cycle + [cycle[0]])
            for k in cycle:
                cycle_of[k] = text
                reasons[k] = f"circular reference {text}; xlmvar does not iterate"
        for k in behind:
            cycle_of[k] = text
            reasons[k] = f"depends on a circular reference {text}"
    return reasons


def name_values(book: Workbook, evaluation: Evaluation) -> "NamedValues":
    """The values of the defined names that refer to ranges, assembled when asked for."""
    return NamedValues(book, evaluation)


class NamedValues:
    """``{NAME: 2-D array}`` of defined names, computed on access (an unused name costs nothing).

    A global name wins over sheet-local ones; a hidden sheet-local name is never taken.
    """

    def __init__(self, book: Workbook, evaluation: Evaluation):
        self.book, self.evaluation = book, evaluation
        self._index = None  # built when a name is first read: a million formulas cost seconds
        self._cache: dict = {}

    @property
    def index(self) -> "_Index":
        if self._index is None:
            self._index = _Index(self.book)
        return self._index

    def definition(self, name: str):
        """``(scope, reference text)`` the name NAME stands for, or None."""
        name = name.upper()
        if ("", name) in self.book.names:
            return "", self.book.names[("", name)]
        local = [(s, n) for (s, n) in self.book.names if n == name and s and (s, n) not in self.book.hidden]
        return (local[0][0], self.book.names[local[0]]) if local else None

    def rect(self, name: str) -> Rect | None:
        """The cells the name ``name`` refers to; None when it names no range.

        Raises ValueError for a relative name (``Positions = Book!$B1:$B3``): it refers to
        other cells for every cell that uses it (:func:`_names_written_out`), so it has no
        value of its own, and reading it at A1, as the file stores it, would be a guess.
        """
        found = self.definition(name)
        if found is None or name.upper().startswith("_XLNM"):
            return None
        scope, text = found
        if _is_relative(text):
            raise ValueError(f"the name {name} ({text}) is relative: the cells it refers to depend on the cell that "
                             "uses it, so it has no value of its own; define it with absolute references "
                             "($ before each column and row)")
        try:
            return _Resolver(self.book).rect(text, scope or (self.book.order[0].upper() if self.book.order else ""))
        except Unsupported:
            return None

    def get(self, name: str, default=None):
        key = name.upper()
        if key not in self._cache:
            rect = self.rect(key)
            if rect is None:
                return default
            self._cache[key] = _assemble(_clip(rect, self.book), self.book, self.index, self.evaluation.values)
        return self._cache[key]

    def __getitem__(self, name: str):
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __contains__(self, name: str) -> bool:
        """Whether ``name`` names a range with a value of its own (not a relative name)."""
        try:
            return self.rect(name) is not None
        except ValueError:
            return False

    def keys(self):
        return sorted({n for (_, n) in self.book.names if n in self})

    def items(self):
        return [(n, self.get(n)) for n in self.keys()]

    def __iter__(self):
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self.keys())


def _is_relative(definition: str) -> bool:
    """Whether a name's definition holds a reference with a relative row or column
    (``S!$B1``, ``S!B$1``, ``S!B:B``, ``S!2:2``): whether moving it one row and one column,
    as a cell that uses it would (the IronCalc core's ``_moved``), changes it.  Read token by
    token: a sheet named like a cell (``'Q1'!$B$1``) is no relative reference."""
    from ._core_ironcalc import _moved

    text = definition.lstrip("=")
    moved = _moved(text, 1, 1)
    return bool(moved) and moved != text


def _full(shape, value) -> np.ndarray:
    """An object array filled with ``value`` itself (np.full would turn a str subclass into str)."""
    out = np.empty(shape, dtype=object)
    out.fill(value)
    return out


def _cached(fc: FormulaCell, book: Workbook) -> np.ndarray:
    """The values Excel cached for a formula's target: its anchor's and the cells of its range."""
    import schedula as sh

    t = fc.target
    if t.area == 1:  # a cell: its own cached value (the sheet's constants are not read)
        return _full((1, 1), sh.EMPTY if fc.cached is None else fc.cached)
    out = _full(t.shape, sh.EMPTY)
    constants = book.sheets[t.sheet].constants
    for r, c in t.cells():
        value = constants.get((r, c))
        if value is not None:
            out[r - t.r0, c - t.c0] = value
    out[0, 0] = sh.EMPTY if fc.cached is None else fc.cached
    return out


def _error_fill(fc: FormulaCell, error) -> np.ndarray:
    """A failed formula's value: the error fills a legacy array, only a dynamic one's anchor."""
    import schedula as sh

    out = _full(fc.target.shape, sh.EMPTY if fc.dynamic else error)
    out[0, 0] = error
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


def _topological(deps: dict[int, set[int]]) -> list[int]:
    """Kahn's algorithm; nodes on or behind a cycle (a self-reference included) are left out."""
    users: dict[int, list[int]] = {i: [] for i in deps}
    pending = {i: len(d) for i, d in deps.items()}
    for i, d in deps.items():
        for j in d:
            users[j].append(i)
    ready = sorted((i for i, n in pending.items() if n == 0), reverse=True)
    order = []
    while ready:
        i = ready.pop()
        order.append(i)
        for k in users[i]:
            pending[k] -= 1
            if pending[k] == 0:
                ready.append(k)
    return order


def _assemble(rect: Rect, book: Workbook, index: _Index, values) -> np.ndarray:
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
    for i in index.within(rect):
        if i not in values:
            continue
        t = book.formulas[i].target
        r0, r1 = max(t.r0, rect.r0), min(t.r1, rect.r1)
        c0, c1 = max(t.c0, rect.c0), min(t.c1, rect.c1)
        value = values[i] if isinstance(values[i], np.ndarray) else _full((1, 1), values[i])  # one cell: a scalar
        out[r0 - rect.r0 : r1 - rect.r0 + 1, c0 - rect.c0 : c1 - rect.c0 + 1] = value[
            r0 - t.r0 : r1 - t.r0 + 1, c0 - t.c0 : c1 - t.c0 + 1
        ]
    return out


def _plain(item):
    """A 0-d array inside an array result (``{-1;2}`` gives one) as the value it holds."""
    while isinstance(item, np.ndarray) and item.ndim == 0:
        item = item[()]
    return item


def as_2d(value) -> np.ndarray:
    """A formula value (Ranges, array or scalar) as a plain 2-D object array."""
    arr = np.asarray(getattr(value, "value", value), dtype=object)
    if arr.ndim == 0:
        arr = arr.reshape(1, 1)
    elif arr.ndim == 1:
        arr = arr.reshape(1, -1)
    arr = arr.view(np.ndarray)
    if any(isinstance(item, np.ndarray) for item in arr.flat):
        arr = np.vectorize(_plain, otypes=[object])(arr)
    return arr


def _overflow(result, fc: FormulaCell) -> str | None:
    """Why a dynamic array's result does not fit the range stored in the file, if it does not."""
    if not fc.dynamic:
        return None
    return overflow_reason(as_2d(result).shape, fc.target)


def overflow_reason(shape: tuple[int, int], target: Rect) -> str | None:
    """Why a result of ``shape`` does not fit the spill range ``target`` stored in the file."""
    rows, cols = target.shape
    if shape[0] <= rows and shape[1] <= cols:
        return None
    return (
        f"its result is {shape[0]} x {shape[1]} but the file's spill range {target.ref} is {rows} x {cols}; "
        "the cells beyond it were not written (Excel would spill into them)"
    )


def _fill(result, fc: FormulaCell) -> np.ndarray:
    """Lay a formula's result over its target range as Excel does.

    A legacy array formula repeats a single row, column or value over its range and shows
    #N/A where the result is smaller; a dynamic array shows its result once, from the
    anchor, and the rest of the range stored in the file is blank.
    """
    import schedula as sh
    from formulas.tokens.operand import XlError

    arr = as_2d(result)
    rows, cols = fc.target.shape
    if rows == cols == 1:
        return arr[:1, :1].copy()
    if fc.dynamic:
        out = _full((rows, cols), sh.EMPTY)
        h, w = min(rows, arr.shape[0]), min(cols, arr.shape[1])
        out[:h, :w] = arr[:h, :w]
        return out
    out = np.empty((rows, cols), dtype=object)
    for r in range(rows):
        for c in range(cols):
            rr = r if arr.shape[0] > 1 else 0
            cc = c if arr.shape[1] > 1 else 0
            out[r, c] = arr[rr, cc] if rr < arr.shape[0] and cc < arr.shape[1] else XlError("#N/A")
    return out


# --------------------------------------------------------------------------------------
# INDEX with a row or column of 0 (formulas lacks that form)
# --------------------------------------------------------------------------------------
_INDEX_REGISTERED = False


def _scalar_number(value):
    value = getattr(value, "value", value)
    arr = np.asarray(value, dtype=object)
    if arr.size != 1:
        return None
    item = _plain(arr.reshape(-1)[0])
    if isinstance(item, bool) or not isinstance(item, (int, float, np.integer, np.floating)):
        return None
    return float(item)


def index_whole(original):
    """``INDEX(array, row, col)`` where ``row`` or ``col`` is 0: the whole column or row.

    Excel: ``INDEX(r, 0, j)`` is column ``j`` of ``r``, ``INDEX(r, i, 0)`` row ``i``,
    ``INDEX(r, 0, 0)`` all of ``r``; an index past the array's size is #REF!.  Every other
    form is left to ``formulas``' own INDEX (``original``).
    """
    from formulas.functions import Array
    from formulas.tokens.operand import XlError

    def xindex(compiling, array, row_num, col_num=None, area_num=1):  # formulas passes COMPILING first
        r = _scalar_number(row_num)
        c = _scalar_number(col_num) if col_num is not None else None
        if compiling or r is None or c is None or (r != 0 and c != 0) or getattr(array, "is_set", False):
            return original(compiling, array, row_num, col_num, area_num)
        values = as_2d(array)
        rows, cols = values.shape
        r, c = int(r), int(c)
        if r < 0 or c < 0:
            return XlError("#VALUE!")
        if r > rows or c > cols:
            return XlError("#REF!")
        out = values
        if r:
            out = out[r - 1 : r, :]
        if c:
            out = out[:, c - 1 : c]
        return out.copy().view(Array)

    return xindex


def _register_index() -> None:
    global _INDEX_REGISTERED
    if _INDEX_REGISTERED:
        return
    import formulas

    table = formulas.get_functions()
    entry = table["INDEX"]
    if isinstance(entry, dict):
        table["INDEX"] = dict(entry, function=index_whole(entry["function"]))
    else:
        table["INDEX"] = index_whole(entry)
    _INDEX_REGISTERED = True


# --------------------------------------------------------------------------------------
# Two steps of formulas' parser are quadratic in the number of operators (a 100,000-character
# formula took minutes): it names the function node of every operator by probing "+<0>",
# "+<1>", ... from 0 each time, and it looks each new operator up from the start of the token
# list.  The same ids, found by remembering where the last probe stopped; the same lookup,
# answered at once for the token just appended.
# --------------------------------------------------------------------------------------
_PARSER_PATCHED = False


class _LastToken:
    """The token list, as ``Operator.update_name`` reads it, for a token just appended."""

    __slots__ = ("tokens",)

    def __init__(self, tokens):
        self.tokens = tokens

    def index(self, token):
        if self.tokens and self.tokens[-1] is token:
            return len(self.tokens) - 1
        return self.tokens.index(token)

    def __getitem__(self, i):
        return self.tokens[i]


def _linear_parser() -> None:
    global _PARSER_PATCHED
    if _PARSER_PATCHED:
        return
    import formulas.builder
    import schedula.dispatcher
    from formulas.tokens.operator import Operator

    last = {"nodes": None, "next": {}}

    def get_unused_node_id(graph, initial_guess="unknown", _format="{}<%d>"):
        """An id not yet in ``graph``: ``initial_guess``, else ``_format`` numbered upward."""
        nodes = graph.nodes
        if initial_guess not in nodes:
            return initial_guess
        if last["nodes"] is not nodes:  # a new graph: forget the previous one's counters
            last["nodes"], last["next"] = nodes, {}
        key = (initial_guess, _format)
        n = last["next"].get(key, 0)
        id_fmt = _format.format(initial_guess.replace("%", "%%"))
        node_id = id_fmt % n
        while node_id in nodes:
            n += 1
            node_id = id_fmt % n
        last["next"][key] = n + 1
        return node_id

    update_name = Operator.update_name

    def update_name_at_end(self, tokens, stack):
        return update_name(self, _LastToken(tokens), stack)

    formulas.builder.get_unused_node_id = get_unused_node_id
    schedula.dispatcher.get_unused_node_id = get_unused_node_id  # add_function names each SUM
    Operator.update_name = update_name_at_end
    _keep_double_negation()
    _PARSER_PATCHED = True


def _keep_double_negation() -> None:
    """Make ``--x`` a number, as in Excel (``SUMPRODUCT(--(A1:A5<0))`` counts).

    ``formulas`` reads a run of signs as one sign, so ``--x`` becomes the unary ``+x``,
    which leaves TRUE/FALSE as they are; SUM and SUMPRODUCT then skip them and count 0.
    Excel's unary minus turns its operand into a number.  A run with an even number (two or
    more) of minus signs is therefore marked, and in a unary place compiles to the numeric
    identity ``-(-x)`` (TRUE -> 1, "3" -> 3, an error stays an error).
    """
    from formulas.functions.operators import numeric_wrap
    from formulas.tokens.operator import Operator, OperatorToken

    process, compile_ = OperatorToken.process, Operator.compile
    double_negation = numeric_wrap(lambda x: -(-x))

    def process_marking(self, match, context=None, parser=None):
        attr = process(self, match, context=context, parser=parser)
        minus = attr.get("sum_minus", "").count("-")
        if minus >= 2 and minus % 2 == 0:
            attr["double_negation"] = True
        return attr

    def compile_numeric(self):
        if self.name == "u+" and self.attr.get("double_negation"):
            return double_negation
        return compile_(self)

    OperatorToken.process = process_marking
    Operator.compile = compile_numeric
