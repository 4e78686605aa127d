"""The templates as a desk sees them: on screen and printed, in Excel and in LibreOffice.

Read from the committed workbooks: no chart covers a filled cell; no defined name is also a
function name; every sheet has a print setup.  Rendered by LibreOffice (one run for the three
templates to PDF, one to CSV with every cell's text as shown; a default installation, which
shows the saved values but recomputes array formulas): only the tables spilled by xlmvar
functions show an error (LibreOffice cannot run them); every native formula shows the number
the workbook holds, to the digits shown; every chart's cells show numbers; every printed page
starts with its sheet's title (one page wide, print titles repeated); wrapped notes print whole.
"""

from __future__ import annotations

import csv
import datetime
import posixpath
import re
import subprocess
import zipfile
from functools import lru_cache

import openpyxl
import pytest
from lxml import etree
from openpyxl.utils.cell import range_boundaries
from openpyxl.worksheet.formula import ArrayFormula

from xlmvar.excel import FUNCTIONS
from xlmvar.workbook._xlsx import sheet_parts

from _workbooks import CSV_AS_SHOWN, WORKBOOKS, libreoffice_convert, pdftotext, soffice

NAMES = ["spy_tlt_btc", "edhec_history", "risk_desk"]
BOOKS = [WORKBOOKS / f"{name}.xlsx" for name in NAMES]
NS = {
    "m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main",
    "r": "http://schemas.openxmlformats.org/officeDocument/2006/relationships",
    "pr": "http://schemas.openxmlformats.org/package/2006/relationships",
    "xdr": "http://schemas.openxmlformats.org/drawingml/2006/spreadsheetDrawing",
    "c": "http://schemas.openxmlformats.org/drawingml/2006/chart",
}
#: The errors a spreadsheet shows in a cell (LibreOffice's own are Err:nnn).
ERROR = re.compile(r"^(#NAME\?|#VALUE!|#REF!|#DIV/0!|#N/A|#NUM!|#NULL!|Err:\d+)$")
needs_libreoffice = pytest.mark.skipif(
    soffice() is None, reason="LibreOffice is not installed (.ci/run installs libreoffice-calc-nogui)"
)
needs_pdftotext = pytest.mark.skipif(pdftotext() is None, reason="pdftotext is not installed (.ci/run installs poppler-utils)")


# ------------------------------------------------------------------------------------------
# Reading the archive: charts and what they cover
# ------------------------------------------------------------------------------------------
@lru_cache(maxsize=None)
def _load(book, data_only=False):
    """The workbook as openpyxl reads it (loaded once; the tests only read it)."""
    return openpyxl.load_workbook(book, data_only=data_only)


def _rels(archive, part):
    """{relationship id: target part} of a part."""
    folder, name = posixpath.split(part)
    rels = posixpath.join(folder, "_rels", name + ".rels")
    if rels not in archive.namelist():
        return {}
    root = etree.fromstring(archive.read(rels))
    return {
        r.get("Id"): posixpath.normpath(posixpath.join(folder, r.get("Target")))
        for r in root.iterfind("pr:Relationship", NS)
    }


def _charts(book):
    """[(sheet, covered cells, [series value ranges])] of every chart in the workbook.

    A chart covers the cells from its anchor's first cell to its last; a last cell reached
    at offset 0 is only touched by the chart's edge and is not covered.
    """
    found = []
    with zipfile.ZipFile(book) as archive:
        for sheet, part in sheet_parts(archive):
            root = etree.fromstring(archive.read(part))
            rels = _rels(archive, part)
            for drawing in root.iterfind("m:drawing", NS):
                drawing_part = rels[drawing.get(f"{{{NS['r']}}}id")]
                drawing_rels = _rels(archive, drawing_part)
                anchors = etree.fromstring(archive.read(drawing_part))
                assert not anchors.findall("xdr:oneCellAnchor", NS) + anchors.findall("xdr:absoluteAnchor", NS)
                for anchor in anchors.iterfind("xdr:twoCellAnchor", NS):
                    (c0, co0, r0, ro0), (c1, co1, r1, ro1) = (
                        [int(anchor.find(f"xdr:{end}/xdr:{k}", NS).text) for k in ("col", "colOff", "row", "rowOff")]
                        for end in ("from", "to")
                    )
                    last_col, last_row = (c1 if co1 else c1 - 1), (r1 if ro1 else r1 - 1)
                    covered = {(r + 1, c + 1) for r in range(r0, last_row + 1) for c in range(c0, last_col + 1)}
                    chart_id = anchor.find(".//c:chart", NS).get(f"{{{NS['r']}}}id")
                    chart = etree.fromstring(archive.read(drawing_rels[chart_id]))
                    series = [f.text for f in chart.iterfind(".//c:ser/c:val//c:f", NS)]
                    assert series, f"a chart on {sheet} has no series"
                    found.append((sheet, covered, series))
    return found


def _filled(book, sheet):
    """(row, col) of every cell of ``sheet`` holding a value or a formula (1-based)."""
    ws = _load(book)[sheet]
    return {(r, c) for (r, c), cell in ws._cells.items() if cell.value not in (None, "")}


@pytest.mark.parametrize("book", BOOKS, ids=NAMES)
def test_no_chart_covers_a_filled_cell(book):
    charts = _charts(book)
    assert charts
    for sheet, covered, _ in charts:
        hidden = covered & _filled(book, sheet)
        assert not hidden, f"{book.name} {sheet}: a chart covers {sorted(hidden)}"


@pytest.mark.parametrize("book", BOOKS, ids=NAMES)
def test_no_defined_name_is_an_xlmvar_function_name(book):
    # LibreOffice reads NAME( as a call only when it knows the function: with a name Returns,
    # =RETURNS(...) became the range Returns followed by "(" (Err:509). Names equal to its own
    # functions are harmless (a name Confidence leaves =CONFIDENCE(0.05,1,100) at 0.196).
    names = set(_load(book).defined_names)
    assert names and not {n.upper() for n in names} & {f.upper() for f in FUNCTIONS}


@pytest.mark.parametrize("book", BOOKS, ids=NAMES)
def test_every_sheet_prints_one_page_wide_with_titles_and_an_area(book):
    for ws in _load(book).worksheets:
        assert ws.page_setup.orientation in ("landscape", "portrait"), ws.title
        assert ws.sheet_properties.pageSetUpPr.fitToPage, ws.title
        assert (ws.page_setup.fitToWidth or 1, ws.page_setup.fitToHeight) == (1, 0), ws.title  # 1: the default
        assert ws.print_title_rows and ws.print_title_rows.replace("$", "").startswith("1:"), ws.title
        (area,) = ws.print_area.split(",")
        c0, r0, c1, r1 = range_boundaries(area.rpartition("!")[2].replace("$", ""))
        assert (c0, r0) == (1, 1), ws.title
        filled = {(c.row, c.column) for row in ws.iter_rows() for c in row if c.value not in (None, "")}
        assert max(r for r, _ in filled) <= r1 and max(c for _, c in filled) <= c1, ws.title
        for _, covered, _ in (chart for chart in _charts(book) if chart[0] == ws.title):
            assert max(r for r, _ in covered) <= r1 and max(c for _, c in covered) <= c1, ws.title


# ------------------------------------------------------------------------------------------
# Rendered by LibreOffice
# ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def shown(tmp_path_factory):
    """{(book name, sheet): [[text of each cell as LibreOffice shows it]]}."""
    out = libreoffice_convert(BOOKS, tmp_path_factory.mktemp("lo-csv"), CSV_AS_SHOWN)
    tables = {}
    for book in BOOKS:
        for sheet in _load(book).sheetnames:
            with (out / f"{book.stem}-{sheet}.csv").open(newline="", encoding="utf-8") as handle:
                tables[book.stem, sheet] = list(csv.reader(handle))
    return tables


@pytest.fixture(scope="module")
def printed(tmp_path_factory):
    """{book name: [text of each printed page]} of LibreOffice's PDF of each template."""
    out = libreoffice_convert(BOOKS, tmp_path_factory.mktemp("lo-pdf"), "pdf")
    pages = {}
    for book in BOOKS:
        text = subprocess.run(
            [pdftotext(), "-layout", str(out / f"{book.stem}.pdf"), "-"],
            check=True, capture_output=True, text=True, timeout=60,
        ).stdout
        pages[book.stem] = [page for page in text.split("\f") if page.strip()]
    return pages


def _text(table, row, col):
    """The text of a 1-based cell in a CSV table ("" beyond its edges)."""
    return table[row - 1][col - 1] if row <= len(table) and col <= len(table[row - 1]) else ""


@lru_cache(maxsize=None)
def _formula_cells(book):
    """({(sheet, row, col): formula} of every formula cell outside the arrays below,
    {(sheet, row, col)} of the cells of array formulas that call an xlmvar function).

    LibreOffice recomputes array formulas on opening (it cannot run xlmvar functions, so
    their arrays show #NAME?) and shows the saved value of every other formula."""
    udf = {name.upper() for name in FUNCTIONS}
    calls = lambda text: set(re.findall(r"([A-Z][A-Z0-9._]*)\(", text.upper())) & udf  # noqa: E731
    native, spilled = {}, set()
    for ws in _load(book).worksheets:
        for row in ws.iter_rows():
            for cell in row:
                value = cell.value
                text = getattr(value, "text", value)
                if not (isinstance(text, str) and text.startswith("=")):
                    continue
                area = value.ref if isinstance(value, ArrayFormula) else cell.coordinate
                c0, r0, c1, r1 = range_boundaries(area)
                cells = {(ws.title, r, c) for r in range(r0, r1 + 1) for c in range(c0, c1 + 1)}
                if calls(text) and isinstance(value, ArrayFormula):
                    spilled |= cells
                else:
                    native.update(dict.fromkeys(cells, text))
    return native, spilled


_NUMBER = re.compile(r"-?\$?-?[\d,]*\.?\d+(E[+-]\d+)?%?")


def _shown_number(text):
    """(value, half a unit of the last digit shown) of a number as LibreOffice shows it."""
    if not _NUMBER.fullmatch(text):
        raise ValueError(f"{text!r} is not a number")
    t = text.replace("$", "").replace(",", "")
    scale = 0.01 if t.endswith("%") else 1.0
    t = t.rstrip("%")
    mantissa, _, exponent = t.partition("E")
    decimals = len(mantissa.partition(".")[2])
    unit = 10.0 ** (-decimals) * 10.0 ** int(exponent or 0) * scale
    return float(t) * scale, unit / 2


@needs_libreoffice
@pytest.mark.parametrize("book", BOOKS, ids=NAMES)
def test_libreoffice_shows_every_formula_outside_xlmvar_arrays_as_the_workbook_holds_it(shown, book):
    native, spilled = _formula_cells(book)
    saved = _load(book, data_only=True)
    errors = set()
    for (stem, sheet), table in shown.items():
        if stem != book.stem:
            continue
        assert _text(table, 1, 1) == (saved[sheet]["A1"].value or ""), f"{sheet}: the CSV does not start at A1"
        errors |= {
            (sheet, r, c, text) for r, line in enumerate(table, 1) for c, text in enumerate(line, 1) if ERROR.match(text)
        }
    # LibreOffice cannot run xlmvar functions: only the tables they spill may show an error,
    # and only the one for an unknown function (Err:509 was a name shadowing RETURNS)
    assert {e[:3] for e in errors} <= spilled, sorted({e[:3] for e in errors} - spilled)[:10]
    assert {e[3] for e in errors} <= {"#NAME?"}
    assert native, "no formula found"
    for (sheet, r, c), formula in native.items():
        text = _text(shown[book.stem, sheet], r, c)
        value = saved[sheet].cell(r, c).value
        where = f"{book.stem} {sheet}!{saved[sheet].cell(r, c).coordinate} {formula}"
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                number, half_unit = _shown_number(text)
            except ValueError:
                pytest.fail(f"{where}: shows {text!r}, holds {value!r}")
            assert abs(number - value) <= half_unit * (1 + 1e-9), f"{where}: shows {text!r}, holds {value!r}"
        elif isinstance(value, datetime.datetime):  # a date-formatted figure (the templates show yyyy-mm-dd)
            assert saved[sheet].cell(r, c).number_format == "yyyy-mm-dd", where
            assert text == value.date().isoformat(), f"{where}: shows {text!r}, holds {value!r}"
        else:
            assert text == ("" if value is None else str(value)), f"{where}: shows {text!r}, holds {value!r}"


@needs_libreoffice
@pytest.mark.parametrize("book", BOOKS, ids=NAMES)
def test_libreoffice_shows_numbers_in_every_cell_a_chart_draws(shown, book):
    for _, _, series in _charts(book):
        for reference in series:
            sheet, _, area = reference.lstrip("=").rpartition("!")
            sheet = sheet.strip("'")
            c0, r0, c1, r1 = range_boundaries(area.replace("$", ""))
            for r in range(r0, r1 + 1):
                for c in range(c0, c1 + 1):
                    text = _text(shown[book.stem, sheet], r, c)
                    try:
                        _shown_number(text)
                    except ValueError:
                        pytest.fail(f"{book.stem} {reference}: row {r} col {c} shows {text!r}, not a number")


def _pages_by_sheet(pages, sheets):
    """{sheet: [page text]}, from the footer that names the sheet at the bottom of each page."""
    by_sheet = {}
    for page in pages:
        footer = [line for line in page.splitlines() if line.strip()][-1].split()
        assert footer[-4:-3] == ["Page"] and " ".join(footer[:-4]) in sheets, footer
        by_sheet.setdefault(" ".join(footer[:-4]), []).append(page)
    return by_sheet


@needs_libreoffice
@needs_pdftotext
@pytest.mark.parametrize("book", BOOKS, ids=NAMES)
def test_printed_pages_are_one_page_wide_with_the_title_on_each(printed, book):
    wb = _load(book)
    pages = printed[book.stem]
    assert not any("Err:" in page for page in pages)
    by_sheet = _pages_by_sheet(pages, wb.sheetnames)
    assert list(by_sheet) == wb.sheetnames  # every sheet prints, in order
    for sheet, sheet_pages in by_sheet.items():
        title = " ".join(str(wb[sheet]["A1"].value).split())
        for page in sheet_pages:
            first = " ".join([line for line in page.splitlines() if line.strip()][0].split())
            # column A on every page: nothing is cut off to the right onto pages of its own
            assert title.startswith(first), f"{book.stem} {sheet}: a page starts with {first!r}"


@needs_libreoffice
@needs_pdftotext
@pytest.mark.parametrize("book", BOOKS, ids=NAMES)
def test_wrapped_notes_print_whole(printed, book):
    wb = _load(book)
    by_sheet = _pages_by_sheet(printed[book.stem], wb.sheetnames)
    notes = 0
    for ws in wb.worksheets:
        text = " ".join(" ".join(by_sheet[ws.title]).split())
        for row in ws.iter_rows():
            for cell in row:
                if isinstance(cell.value, str) and cell.alignment.wrap_text and len(cell.value) > 40:
                    notes += 1
                    # a note whose row is too short loses its last line
                    last_words = " ".join(cell.value.split()[-1:])
                    assert last_words in text, f"{book.stem} {ws.title}!{cell.coordinate}: {cell.value[-60:]!r}"
    assert notes
