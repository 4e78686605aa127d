"""The fast lane of the worksheet reader: a sheet written the regular way, read in bulk.

Excel, XlsxWriter and openpyxl write every cell in one of a few fixed forms
(``<c r="B2" s="1"><v>0.25</v></c>``, ``<c r="A1" t="s"><v>7</v></c>``,
``<c r="C3"><f>A3*2</f><v>4</v></c>``, ...).  :func:`scan` recognises those forms with
regular expressions over the part's bytes, so that a sheet of a million constants costs a
few passes in C rather than a Python call per cell:

* every cell must match one of the forms exactly (its reference inside the sheet, a number
  that is a number, a shared-string index that is an index, an error code, TRUE/FALSE);
* what is left of ``<sheetData>`` once the cells are taken out may only be row tags, and the
  part without its cells is checked to be well-formed XML (expat), with no DTD, entity
  declaration or CDATA section anywhere;
* formula cells are returned a slice of rows at a time (the reader builds its formula list
  from them);
  constants are only counted, with the sheet's last row and column.

Anything else (a cell without its ``r``, inline strings, attributes in an unusual order, a
namespace prefix, a malformed value) returns None and the caller reads the sheet element by
element (:class:`xlmvar.workbook._evaluator._SheetReader`), which gives the precise message
for whatever is wrong.  The fast lane therefore never accepts a sheet the element-by-element
reader would refuse, and never reads one differently: it only reads the common case faster.
"""

from __future__ import annotations

import re
import xml.parsers.expat
from dataclasses import dataclass

__all__ = ["Scan", "scan"]

_REF = rb'r="[A-Z]{1,3}[1-9][0-9]{0,6}"'
_STYLE = rb'(?: s="[0-9]+")?'
_NUMBER = rb"-?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?"
_CONSTANT = re.compile(
    rb"<c " + _REF + _STYLE + rb"(?:"
    rb'(?: t="n")?><v>' + _NUMBER + rb"</v></c>"  # a number
    rb'| t="s"><v>[0-9]{1,10}</v></c>'  # a shared string (index checked below)
    rb'| t="b"><v>[01]</v></c>'  # TRUE / FALSE
    rb'| t="e"><v>#[A-Z0-9/!?_]{1,14}</v></c>'  # an error code
    rb'| t="inlineStr"><is><t(?: xml:space="preserve")?>[^<]*</t></is></c>'  # text in the cell (XlsxWriter)
    rb'| t="str"><v(?: xml:space="preserve")?>[^<]*</v></c>'  # a text result cached in an array's range
    rb")"
)
_BLANK = re.compile(rb"<c " + _REF + _STYLE + rb'(?: t="[a-zA-Z]{1,9}")?(?:\s*/>|></c>)')  # a styled blank
_ATTRS = rb'((?: [a-zA-Z:]{1,12}="[^"<]*")*)'
_FORMULA = re.compile(
    rb'<c r="([A-Z]{1,3})([1-9][0-9]{0,6})"' + _ATTRS + rb">"
    rb"(?:<f" + _ATTRS + rb"\s*/>|<f" + _ATTRS + rb">([^<]*)</f>)"
    rb'(?:<v(?: xml:space="preserve")?>([^<]*)</v>|<v\s*/>)?</c>'
)
_STRING_INDEX = re.compile(rb't="s"><v>([0-9]{1,10})</v>')
_ROW_TAGS = re.compile(rb'<row r="[1-9][0-9]{0,6}"(?: [a-zA-Z0-9:]{1,24}="[^"<]*")*\s*/?>|</row>|\s+')
_ROW_NUMBER = re.compile(rb'<row r="([0-9]{7,})"')  # a row past 999,999: checked against the sheet's size
_ATTR = re.compile(rb'([a-zA-Z]+)="([^"]*)"')
_ENTITY = re.compile(r"&(?:#([0-9]{1,7})|#x([0-9a-fA-F]{1,6})|(amp|lt|gt|quot|apos));")
_NAMED = {"amp": "&", "lt": "<", "gt": ">", "quot": '"', "apos": "'"}
_CHUNK = 1 << 20


@dataclass
class Scan:
    """What the fast lane read from one sheet part."""

    constants: int = 0  # cells holding a value and no formula
    max_row: int = 0  # of the cells holding a value or a formula (as the element reader counts)
    max_col: int = 0
    max_string: int = -1  # largest shared-string index a cell uses
    count: int = 0  # formula cells
    cells: bytes = b""  # the part's <sheetData> without its blank cells

    def chunks(self, size: int = _CHUNK):
        """The formula cells a slice of rows at a time (about ``size`` bytes of the part each),
        as the regular expression's groups ``(letters, row, cell attrs, attrs of <f/>, attrs
        of <f>, text, cached)``: a group that took no part is ``b""``.  A slice ends after a
        ``</row>``, which no cell spans; taking the cells a slice at a time keeps one tuple
        per formula of the whole sheet from being held at once."""
        for start, end in _slices(self.cells, size):
            yield _FORMULA.findall(self.cells, start, end)

    @property
    def formulas(self) -> list:
        """Every formula cell as ``(letters, row, cell attrs, f attrs, text or None, cached or None)``."""
        # findall builds the tuples in C; a group that took no part is b"" (an empty <f> or
        # <v> reads like a missing one, as it does for the element reader)
        return [(letters, int(row), attrs, closed or opened, text or None, cached or None)
                for chunk in self.chunks() for letters, row, attrs, closed, opened, text, cached in chunk]


def _unescape(raw: bytes) -> str:
    """XML character data as text: line ends normalised (XML 1.0, 2.11: a literal CR LF or
    CR is LF), then the five named entities and character references (``&#13;`` is a CR)."""
    if b"&" not in raw and b"\r" not in raw:
        return raw.decode("utf-8")
    text = raw.decode("utf-8")
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if "&" not in text:
        return text

    def one(m):
        if m.group(3):
            return _NAMED[m.group(3)]
        return chr(int(m.group(1)) if m.group(1) else int(m.group(2), 16))

    return _ENTITY.sub(one, text)


def attributes(raw: bytes) -> dict:
    """``{name: value}`` of a run of attributes (as captured by the cell patterns)."""
    return {k.decode(): _unescape(v) for k, v in _ATTR.findall(raw)} if raw else {}


_ORDER = re.compile(rb'<(?:row r="([0-9]+)"|c r="([A-Z]{1,3})([0-9]+)")')  # (the common "<" first: a third faster)


def _slices(data: bytes, size: int = _CHUNK):
    """``(start, end)`` of consecutive slices of ``data`` of about ``size`` bytes, each ending
    after a ``</row>`` (no cell spans one) or at the end."""
    pos = 0
    while pos < len(data):
        end = data.find(b"</row>", pos + size)
        end = len(data) if end < 0 else end + len(b"</row>")
        yield pos, end
        pos = end


def _in_order(cells: bytes, col_index) -> tuple[int, int] | None:
    """Rows ascending, each cell in its own row, columns ascending within it (as Excel writes
    them, and as OOXML asks): so no cell is there twice, and none is in a row it names wrongly.

    Returns ``(largest row, largest column)`` of the cells when they are in order, else None.
    The tags are taken a slice of rows at a time and compared as arrays: a row tag is a
    column of 0, each cell's row must be the number of the last row tag before it, and its
    column larger than that of the element before it (0 after a row tag).  Row numbers and
    column letters have no leading zeros (the patterns the cells matched say so), so
    comparing numbers is comparing the tags' text by length, then by bytes.
    """
    import numpy as np

    numbers = {b"": 0}
    row = col = max_row = max_col = 0  # carried over: the current row, the element before
    for start, end in _slices(cells):
        found = _ORDER.findall(cells, start, end)
        if not found:
            continue
        number, letters, cell_row = zip(*found)
        for name in set(letters).difference(numbers):
            numbers[name] = col_index(name.decode())
        cols = np.fromiter(map(numbers.__getitem__, letters), dtype=np.int64, count=len(letters))
        tag = cols == 0
        rows = np.where(tag, np.array(number), np.array(cell_row)).astype(np.int64)
        tags, cell = rows[tag], ~tag
        if tags.size and (tags[0] <= row or np.any(tags[1:] <= tags[:-1])):
            return None
        last_tag = np.where(tag, np.arange(len(rows)), -1)
        np.maximum.accumulate(last_tag, out=last_tag)
        enclosing = np.where(last_tag >= 0, rows[np.maximum(last_tag, 0)], row)
        before = np.concatenate(([col], cols[:-1]))
        if np.any(rows[cell] != enclosing[cell]) or np.any(cols[cell] <= before[cell]):
            return None
        row, col = (int(tags[-1]) if tags.size else row), int(cols[-1])
        if cell.any():
            max_row, max_col = max(max_row, int(rows[cell].max())), max(max_col, int(cols[cell].max()))
    return max_row, max_col


def _well_formed(data: bytes) -> bool:
    parser = xml.parsers.expat.ParserCreate()
    try:
        parser.Parse(data, True)
    except xml.parsers.expat.ExpatError:
        return False
    return True


def scan(data: bytes, col_index) -> Scan | None:
    """Read a worksheet part written the regular way; None when it is not (see the module).

    ``col_index`` turns column letters into a number (the reader's own function).
    """
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data or b"<![CDATA[" in data:
        return None
    start, end = data.find(b"<sheetData>"), data.rfind(b"</sheetData>")
    if start < 0 or end < start or data.find(b"<sheetData", start + 1) >= 0:
        return None
    cells = data[start + len(b"<sheetData>"):end]
    if b"/>" in cells or b"></c>" in cells:  # (a blank cell is written in one of these forms)
        cells, _ = _BLANK.subn(b"", cells)  # blanks hold nothing
    out = Scan(cells=cells)
    rest, out.count = _FORMULA.subn(b"", cells) if b"<f" in cells else (cells, 0)  # the formula cells: see chunks
    rest, out.constants = _CONSTANT.subn(b"", rest)
    if b"<c" in rest or _ROW_TAGS.sub(b"", rest):
        return None  # a cell or an element in a form the fast lane does not read
    if not _well_formed(data[:start] + b"<sheetData>" + rest + data[end:]):
        return None
    if any(int(r) > 1_048_576 for r in _ROW_NUMBER.findall(rest)):
        return None
    extent = _in_order(cells, col_index)
    if extent is None:
        return None  # the element reader says what is wrong, or reads what is merely unordered
    out.max_row, out.max_col = extent
    if out.max_row > 1_048_576 or out.max_col > 16_384:
        return None
    indices = _STRING_INDEX.findall(cells)
    out.max_string = max(map(int, indices), default=-1)
    return out
