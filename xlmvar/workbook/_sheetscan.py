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
from dataclasses import dataclass, field

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
_COLUMN = re.compile(rb'<c r="([A-Z]{1,3})[0-9]')
_ROW_OF_CELL = re.compile(rb'<c r="[A-Z]{1,3}([0-9]{1,7})"')
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
        data, pos = self.cells, 0
        while pos < len(data):
            end = data.find(b"</row>", pos + size)
            end = len(data) if end < 0 else end + len(b"</row>")
            yield _FORMULA.findall(data, pos, end)
            pos = end

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


_ORDER = re.compile(rb'<row r="([0-9]+)"|<c r="([A-Z]{1,3})([0-9]+)"')


def _in_order(cells: bytes) -> bool:
    """Rows ascending, each cell in its own row, columns ascending within it (as Excel writes
    them, and as OOXML asks): so no cell is there twice, and none is in a row it names wrongly."""
    row = previous = b""
    last = (0, b"")
    for number, letters, cell_row in _ORDER.findall(cells):
        if number:
            if len(number) < len(previous) or (len(number) == len(previous) and number <= previous):
                return False
            previous = row = number
            last = (0, b"")
        else:
            if cell_row != row:
                return False
            key = (len(letters), letters)
            if key <= last:
                return False
            last = key
    return True


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
    cells, _ = _BLANK.subn(b"", data[start + len(b"<sheetData>"):end])  # blanks hold nothing
    out = Scan(cells=cells)
    rest, out.count = _FORMULA.subn(b"", cells)  # the formula cells are taken a slice at a time (chunks)
    rest, out.constants = _CONSTANT.subn(b"", rest)
    if b"<c" in rest or _ROW_TAGS.sub(b"", rest):
        return None  # a cell or an element in a form the fast lane does not read
    if not _well_formed(data[:start] + b"<sheetData>" + rest + data[end:]):
        return None
    if any(int(r) > 1_048_576 for r in _ROW_NUMBER.findall(rest)):
        return None
    if not _in_order(cells):
        return None  # the element reader says what is wrong, or reads what is merely unordered
    letters, rows = set(_COLUMN.findall(cells)), set(_ROW_OF_CELL.findall(cells))  # distinct ones: few
    out.max_row = max(map(int, rows), default=0)
    out.max_col = max((col_index(c.decode()) for c in letters), default=0)
    if out.max_row > 1_048_576 or out.max_col > 16_384:
        return None
    indices = _STRING_INDEX.findall(cells)
    out.max_string = max(map(int, indices), default=-1)
    return out
