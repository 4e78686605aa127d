"""The reader's fast lane (``_sheetscan``) reads exactly what the element-by-element reader
reads: the same formulas, cached values, sheet extents and constants, on every workbook here
(the templates, the Excel-saved corpus, hand-written XML), and hands back what it does not
know instead of reading it differently."""

from pathlib import Path

import pytest
from _corpus import CORPUS
from _hostile import with_sheet

from xlmvar.workbook import _evaluator
from xlmvar.workbook._evaluator import read_workbook
from xlmvar.workbook._sheetscan import scan

ROOT = Path(__file__).resolve().parents[1]
BOOKS = sorted((ROOT / "workbooks").glob("*.xlsx")) + sorted(CORPUS.glob("*.xlsx"))


def _both(path, monkeypatch):
    fast = read_workbook(path)
    with monkeypatch.context() as m:
        m.setattr(_evaluator, "_FAST_LANE_BYTES", -1)  # every sheet element by element
        slow = read_workbook(path)
    return fast, slow


def _same(fast, slow):
    assert [(f.sheet, f.anchor, f.target, f.text, repr(f.cached), f.dynamic) for f in fast.formulas] == \
           [(f.sheet, f.anchor, f.target, f.text, repr(f.cached), f.dynamic) for f in slow.formulas]
    for key, sheet in slow.sheets.items():
        other = fast.sheets[key]
        assert (other.max_row, other.max_col) == (sheet.max_row, sheet.max_col), key
        assert {k: repr(v) for k, v in other.constants.items()} == {k: repr(v) for k, v in sheet.constants.items()}, key


@pytest.mark.parametrize("path", BOOKS, ids=lambda p: p.name)
def test_fast_lane_reads_what_the_element_reader_reads(path, monkeypatch):
    fast, slow = _both(path, monkeypatch)
    _same(fast, slow)


def test_the_fast_lane_takes_the_common_forms():
    import zipfile

    with zipfile.ZipFile(ROOT / "workbooks" / "risk_desk.xlsx") as z:
        parts = [n for n in z.namelist() if n.startswith("xl/worksheets/sheet")]
        taken = [scan(z.read(n), _evaluator.col_index) is not None for n in parts]
    assert all(taken), dict(zip(parts, taken))  # XlsxWriter's every sheet: read in bulk
    excel = {}
    for path in sorted(CORPUS.glob("*.xlsx")):  # and every sheet Excel saved with cells
        with zipfile.ZipFile(path) as z:
            for n in z.namelist():
                data = z.read(n)
                if n.startswith("xl/worksheets/sheet") and b"<sheetData>" in data:
                    excel[f"{path.name}:{n}"] = scan(data, _evaluator.col_index) is not None
    assert len(excel) >= 40 and all(excel.values()), [k for k, v in excel.items() if not v]


CELLS = {
    "numbers, strings, booleans, errors, blanks": (
        '<row r="1" spans="1:4"><c r="A1"><v>1.5</v></c><c r="B1" s="2" t="b"><v>1</v></c>'
        '<c r="C1" t="e"><v>#N/A</v></c><c r="D1" s="3"/></row>'
        '<row r="3"><c r="A3" t="inlineStr"><is><t>a &amp; b</t></is></c><c r="B3"><f>A1*2</f><v>3</v></c>'
        '<c r="C3" t="str"><f>"x"&amp;"&lt;"</f><v>x&lt;</v></c><c r="D3" t="b"><f>A1&gt;1</f><v>1</v></c></row>'
    ),
    "shared and array formulas": (
        '<row r="1"><c r="A1"><v>1</v></c><c r="B1"><f t="shared" ref="B1:B3" si="0">A1*2</f><v>2</v></c>'
        '<c r="C1"><f t="array" ref="C1:C2">A1:A2*10</f><v>10</v></c></row>'
        '<row r="2"><c r="A2"><v>2</v></c><c r="B2"><f t="shared" si="0"/><v>4</v></c><c r="C2"><v>20</v></c></row>'
        '<row r="3"><c r="B3"><f t="shared" si="0"/><v>0</v></c></row>'
    ),
    "a cell without its reference (element reader)": '<row r="1"><c><v>1</v></c><c r="B1"><f>A1+1</f></c></row>',
    "a prefixed namespace (element reader)": None,
}


@pytest.mark.parametrize("kind", [k for k, v in CELLS.items() if v], ids=str)
def test_hand_written_sheets_read_the_same_both_ways(tmp_path, monkeypatch, kind):
    fast, slow = _both(with_sheet(tmp_path, CELLS[kind]), monkeypatch)
    _same(fast, slow)
    assert fast.formulas


def test_unusual_forms_are_handed_back():
    head = b'<?xml version="1.0"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>'
    tail = b"</sheetData></worksheet>"
    assert scan(head + b'<row r="1"><c r="A1"><v>1</v></c></row>' + tail, _evaluator.col_index) is not None
    for cells in (b'<row r="1"><c><v>1</v></c></row>',  # no reference
                  b'<row r="1"><c r="A1"><v>twelve</v></c></row>',  # not a number
                  b'<row r="x"><c r="A1"><v>1</v></c></row>',  # not a row number
                  b'<row r="1"><c r="XFE1"><v>1</v></c></row>',  # past the last column
                  b'<row r="1"><c r="A1" t="s"><v>-1</v></c></row>',  # not an index
                  b'<row r="1"><c r="A1"><v>1</v></c></row><!DOCTYPE x>',
                  b'<row r="1"><c r="A1"><v>1</v></c>'):  # not well-formed
        assert scan(head + cells + tail, _evaluator.col_index) is None, cells


@pytest.mark.parametrize("text, origin, dest", [
    ("A1*2+$A$1", "B1", "B7"), ("SUM(A1:A3)+Sheet2!C$4", "C2", "E9"), ("'My sheet'!A1&\"A1\"", "A1", "C3"),
    ("A:A+1:1", "B2", "D5"), ("Name1+A1", "A1", "A2"), ("PORTVAR(B1:B3,Cov,95%)", "A1", "A9")])
def test_a_shared_formula_is_moved_as_openpyxls_translator_moves_it(text, origin, dest):
    """The anchor is tokenized once per shared formula; each cell sharing it shifts the
    references: the same text as openpyxl's Translator working from scratch for every cell."""
    from openpyxl.formula.translate import Translator

    assert _evaluator._translate(text, origin, dest) == Translator("=" + text, origin=origin).translate_formula(dest)[1:]
