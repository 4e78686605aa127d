"""Gaps of `xlmvar calc` that gave a number (or an error) where Excel gives another, against
outside answers.

- A circular reference through native formulas between xlmvar cells settled to a number.
  Excel (iterative calculation off, its default) calls any formula that refers to its own
  cell, directly or through other formulas, a circular reference, and does not settle it;
  here such cells are ``#REF!`` naming the circle.  The cells in error are checked against
  LibreOffice recalculating the same book with each xlmvar call replaced by a native
  formula over the same ranges (its Err:522, saved as ``#VALUE!``), where the native links
  pass errors along (references written out, through names, ranges, INDIRECT, OFFSET); links that swallow an error (``IF(ISNUMBER(A5),7,7)``, ``COUNT``) follow
  Excel's definition, which looks at references, not values.
- ``SHEETS()`` counted the sheet of intermediate results; Excel numbers every sheet of the
  book, chart sheets too (LibreOffice agrees), and ``SHEET("Nope")`` is #N/A (Excel's page).
- ``INDEX(A:A, k)`` past the sheet's filled rows was #REF! (Excel: the blank cell, 0 in a
  cell; LibreOffice agrees): it keeps Excel's value.  Wildcard lookups, said to be #N/A,
  agree with LibreOffice and with Excel's rules where LibreOffice's differ.
"""

from __future__ import annotations

import math

import _workbooks
import numpy as np
import openpyxl
import pytest
import xlsxwriter

from xlmvar.workbook._core_ironcalc import _Positions
from xlmvar.workbook.calc import recalculate

COV = [[0.04, 0.01], [0.01, 0.09]]
#: The xlmvar call of the books, and the native formula over the same ranges LibreOffice gets.
PORTVOL, NATIVE = "PORTVOL({x},{c})", "SUMPRODUCT({x},{x})+SUM({c})"


def _vol(x, cov=COV) -> float:
    x = np.asarray(x, dtype=float)
    return float(np.sqrt(x @ np.asarray(cov) @ x))


def _circles_book(path, call: str):
    """Circles through native formulas, each closed by one call ``call``; and cells outside them."""
    wb = xlsxwriter.Workbook(str(path))
    ws, data = wb.add_worksheet("S"), wb.add_worksheet("Data")
    for i, row in enumerate(COV):
        ws.write_row(i, 2, row)  # C1:D2
    ws.write("B2", 3)

    def f(x, c="C1:D2"):
        return "=" + call.format(x=x, c=c)

    # xlmvar -> native -> native -> native -> xlmvar, and two cells behind the circle
    ws.write_formula("A5", f("B1:B2"), None, 0)
    ws.write_formula("B1", "=E1*0+7", None, 0)
    ws.write_formula("E1", "=E2+1", None, 0)
    ws.write_formula("E2", "=A5", None, 0)
    ws.write_formula("F1", "=A5*2", None, 0)
    ws.write_formula("F2", "=SUM(A1:A200)", None, 0)  # a range of more than 64 cells
    # across sheets
    ws.write_formula("H1", f("Data!B1:B2"), None, 0)
    data.write_formula("B1", "=S!H1*0+100", None, 0)
    data.write("B2", 5)
    # through a defined name
    wb.define_name("Total", "=S!$H$5")
    ws.write_formula("H5", f("H6:H7"), None, 0)
    ws.write_formula("H6", "=Total*0+1", None, 0)
    ws.write("H7", 2)
    # through a range that holds the cell, and through an array formula
    ws.write_formula("K1", f("K2:K3"), None, 0)
    ws.write_formula("K2", "=SUM(K1:K10)*0+1", None, 0)
    ws.write_array_formula("P1:Q1", "{=P5*0+{7,8}}", None, 0)
    ws.write_formula("P5", f("P1:Q1", "C1:C1"), None, 0)
    # through a reference computed by INDIRECT, by OFFSET; and one that makes no circle
    ws.write_formula("V5", f("V1:V2"), None, 0)
    ws.write_formula("V1", '=SUM(INDIRECT("V4:V6"))*0+7', None, 0)
    ws.write("V2", 1)
    ws.write_formula("X5", f("X1:X2"), None, 0)
    ws.write_formula("X1", "=OFFSET(X2,3,0)*0+5", None, 0)
    ws.write("X2", 1)
    ws.write_formula("Z5", f("Z1:Z2"), None, 0)
    ws.write_formula("Z1", '=INDIRECT("T1")*2', None, 0)
    ws.write("Z2", 1)
    # no circle: native between two calls, one way
    ws.write_formula("S1", "=T1*2", None, 0)
    ws.write("T1", 4)
    ws.write("S2", 1)
    ws.write_formula("S5", f("S1:S2"), None, 0)
    ws.write_formula("S6", "=S5+1", None, 0)
    ws.write_formula("S7", f("S6", "0.04"), None, 0)
    wb.close()
    return path


@pytest.fixture(scope="module")
def libre(tmp_path_factory):
    """LibreOffice's recalculation of the native books of this module, in one run:
    ``libre(name)`` is the workbook (values only)."""
    if _workbooks.soffice() is None:  # fails instead of skipping in CI (XLMVAR_REQUIRE_LIBREOFFICE)
        pytest.skip("LibreOffice is not installed (.ci/run installs libreoffice-calc-nogui)")
    folder = tmp_path_factory.mktemp("libre")
    books = [_circles_book(folder / "circles.xlsx", NATIVE), _sheets_book(folder / "sheets.xlsx", "SUM(A!B3)"),
             _index_book(folder / "wild.xlsx", WILDCARDS)]
    out = _workbooks.libreoffice_convert(books, folder, "xlsx", _workbooks.RECALC_ALWAYS)
    return lambda name: openpyxl.load_workbook(out / name, data_only=True)


def test_a_circle_through_native_formulas_is_an_error_on_every_cell(tmp_path, libre):
    libre = libre("circles.xlsx")
    expected = {(ws.title, c.coordinate) for ws in libre for row in ws.iter_rows() for c in row
                if isinstance(c.value, str) and c.value.startswith("#")}
    assert ("S", "A5") in expected and ("S", "S5") not in expected  # LibreOffice saw the circles

    r = recalculate(_circles_book(tmp_path / "xlmvar.xlsx", PORTVOL))
    got = {(e.sheet, e.cell) for e in r.errors} | {("S", "Q1")}  # P1:Q1 is listed once, by its anchor
    assert str(r.value("S", "Q1")) == "#REF!"
    assert got == expected
    reasons = {(e.sheet, e.cell): e.reason for e in r.errors}
    # each circle named in the order the cells read one another (A5 reads B1, which reads E1, ...)
    on = {("S", c): "S!A5 -> S!B1 -> S!E1 -> S!E2 -> S!A5" for c in ("A5", "B1", "E1", "E2")}
    on.update({("S", "H1"): "S!H1 -> Data!B1 -> S!H1", ("Data", "B1"): "S!H1 -> Data!B1 -> S!H1",
               ("S", "H5"): "S!H5 -> S!H6 -> S!H5", ("S", "H6"): "S!H5 -> S!H6 -> S!H5",
               ("S", "K1"): "S!K1 -> S!K2 -> S!K1", ("S", "K2"): "S!K1 -> S!K2 -> S!K1",
               ("S", "P5"): "S!P5 -> S!P1 -> S!P5", ("S", "P1"): "S!P5 -> S!P1 -> S!P5",
               ("S", "V5"): "S!V5 -> S!V1 -> S!V5", ("S", "V1"): "S!V5 -> S!V1 -> S!V5",
               ("S", "X5"): "S!X5 -> S!X1 -> S!X5", ("S", "X1"): "S!X5 -> S!X1 -> S!X5"})
    for cell, circle in on.items():
        assert reasons[cell] == f"circular reference {circle}; xlmvar does not iterate"
    for cell in (("S", "F1"), ("S", "F2")):
        assert reasons[cell] == "depends on a circular reference S!A5 -> S!B1 -> S!E1 -> S!E2 -> S!A5"
    s5 = _vol([8.0, 1.0])
    assert [r.value("S", c) for c in ("S5", "S6", "S7", "Z5")] == pytest.approx([s5, s5 + 1, 0.2 * (s5 + 1), s5], rel=1e-12)


def test_a_circle_is_one_whatever_the_values(tmp_path):
    # Excel: a formula that refers to its own cell through others is a circular reference,
    # even where the value could not change (IF(ISNUMBER(A5),7,7)) or an error is counted out
    # (COUNT over a column that holds the call); both settled to a number
    def build(wb, ws):
        for i, row in enumerate(COV):
            ws.write_row(i, 2, row)
        ws.write("B2", 3)
        ws.write_formula("A5", "=PORTVOL(B1:B2,C1:D2)")
        ws.write_formula("B1", "=IF(ISNUMBER(A5),7,7)")
        ws.write_formula("M1", "=COUNT(M:M)*0+1")
        ws.write("M2", 2)
        ws.write_formula("M5", "=PORTVOL(M1:M2,C1:D2)")
        ws.write_formula("N1", "=ROWS(N1:N9)")  # its size, not its cells: no circle
        ws.write_formula("N5", "=PORTVOL(N1,0.04)")

    wb = xlsxwriter.Workbook(str(tmp_path / "values.xlsx"))
    build(wb, wb.add_worksheet("S"))
    wb.close()
    r = recalculate(tmp_path / "values.xlsx")
    reasons = {e.cell: (e.error, e.reason) for e in r.errors}
    for cells, circle in ((("A5", "B1"), "S!A5 -> S!B1 -> S!A5"), (("M5", "M1"), "S!M5 -> S!M1 -> S!M5")):
        for cell in cells:
            assert reasons[cell] == ("#REF!", f"circular reference {circle}; xlmvar does not iterate")
    assert r.value("S", "N5") == pytest.approx(9 * 0.2, rel=1e-12)
    assert "N1" not in reasons and "N5" not in reasons


def test_a_circle_of_native_formulas_alone_stays_the_native_one(tmp_path):
    # B5 and B6 read each other; the call only reads them: it is behind the circle, not on it,
    # and is handed the error Excel shows there (IronCalc's own #CIRC! was read as a text)
    wb = xlsxwriter.Workbook(str(tmp_path / "native.xlsx"))
    ws = wb.add_worksheet("S")
    ws.write_formula("B5", "=B6+1")
    ws.write_formula("B6", "=B5")
    ws.write_formula("A1", "=PORTVOL(B5:B6,C1:D2)")
    wb.close()
    r = recalculate(tmp_path / "native.xlsx")
    reasons = {e.cell: (e.error, e.reason) for e in r.errors}
    assert reasons["B5"] == reasons["B6"] == ("#REF!", "circular reference S!B5 -> S!B6 -> S!B5; xlmvar does not iterate")
    assert reasons["A1"] == ("#REF!", "PORTVOL: positions: row 1, column 1 holds the error #REF!")  # not #CIRC!


def _expand(positions: _Positions, nodes: list) -> set:
    out, todo = set(), list(nodes)
    while todo:
        node = todo.pop()
        if type(node) is tuple:
            todo.extend(positions.children(node))
        else:
            out.add(node)
    return out


def test_the_formulas_a_range_covers_are_found_in_few_nodes():
    # brute force: every formula box tested against every range
    rng = np.random.default_rng(7)
    cells = [(int(rng.integers(2)), int(rng.integers(1, 400)), int(rng.integers(1, 9)), None) for _ in range(900)]
    cells = list(dict.fromkeys(cells))  # one formula per cell
    cells += [(0, 500, 2, (3, 2)), (1, 10, 9, (1, 4))]  # array formulas
    positions = _Positions(cells)
    for _ in range(300):
        sheet = int(rng.integers(2))
        r0, r1 = sorted(rng.integers(1, 520, 2).tolist())
        c0, c1 = sorted(rng.integers(1, 14, 2).tolist())
        want = {k for k, (s, r, c, shape) in enumerate(cells)
                if s == sheet and r <= r1 and r + (shape or (1, 1))[0] - 1 >= r0
                and c <= c1 and c + (shape or (1, 1))[1] - 1 >= c0}
        assert _expand(positions, positions.covered((sheet, r0, c0, r1, c1))) == want
    # running totals SUM($A$1:A(k-1)) down 4,096 rows: 2 log2(n) nodes a range at most, not k
    n = 4096
    positions = _Positions([(0, r, 1, None) for r in range(1, n + 1)])
    sizes = [len(positions.covered((0, 1, 1, k - 1, 1))) for k in range(66, n + 1)]
    assert max(sizes) <= 2 * math.log2(n)
    assert _expand(positions, positions.covered((0, 1, 1, 3000, 1))) == set(range(3000))


def test_a_long_circle_of_running_totals_is_named(tmp_path):
    # A1 reads J400; J1 reads A1; Jk sums J1..J(k-1): every cell lies on a circle
    n = 400
    wb = xlsxwriter.Workbook(str(tmp_path / "totals.xlsx"))
    ws = wb.add_worksheet("S")
    ws.write_formula("A1", f"=PORTVOL(J{n},1)")
    ws.write_formula("J1", "=A1*0+1")
    for k in range(2, n + 1):
        ws.write_formula(f"J{k}", f"=SUM($J$1:J{k - 1})")
    wb.close()
    r = recalculate(tmp_path / "totals.xlsx")
    reasons = {e.cell: e.reason for e in r.errors}
    assert len(reasons) == n + 1 and {e.error for e in r.errors} == {"#REF!"}
    assert reasons["A1"] == f"circular reference S!A1 -> S!J{n} -> S!J1 -> S!A1; xlmvar does not iterate"
    assert reasons["J2"] == f"circular reference S!J2 -> S!J1 -> S!A1 -> S!J{n} -> S!J2; xlmvar does not iterate"


# --------------------------------------------------------------------------------------
# The sheet of intermediate results, and chart sheets, as SHEET/SHEETS/INFO/INDIRECT see them
# --------------------------------------------------------------------------------------
#: SHEET/SHEETS forms on sheet B of a book A, Chart1 (a chart sheet), B; Excel numbers every
#: sheet, chart sheets included (its SHEET and SHEETS pages: "all worksheets (visible, hidden,
#: or very hidden) in addition to all other sheet types (macro, chart, or dialog sheets)").
SHEET_FORMULAS = ["=SHEETS()", "=SHEET()", '=SHEET("B")', "=SHEET(B!A1)", '=SHEET("a")', '=SHEETS()+SHEET("Chart1")']


def _sheets_book(path, call: str):
    wb = xlsxwriter.Workbook(str(path), {"use_future_functions": True})
    a = wb.add_worksheet("A")
    chart = wb.add_chart({"type": "line"})
    chart.add_series({"values": "=A!$B$1:$B$3"})
    wb.add_chartsheet("Chart1").set_chart(chart)
    b = wb.add_worksheet("B")
    a.write_column("B1", [1, 2, 3])
    for i, f in enumerate(SHEET_FORMULAS):
        b.write_formula(i, 0, f, None, 0)
    b.write_formula("C1", f"=IFERROR({call},0)+1", None, 0)  # a call inside a formula: a sheet of results
    b.write_formula("D1", '=SHEET("Nope")', None, 0)
    b.write_formula("D2", '=INDIRECT("_xlmvar!A1")', None, 0)
    b.write_formula("D3", '=INFO("numfile")', None, 7)
    wb.close()
    return path


def test_sheet_numbers_count_every_sheet_of_the_book_and_no_other(tmp_path, libre):
    # SHEETS() counted the sheet of intermediate results (4 here) and no chart sheet;
    # SHEET(B!A1) was #VALUE!
    libre = libre("sheets.xlsx")["B"]
    expected = [libre.cell(i + 1, 1).value for i in range(len(SHEET_FORMULAS))]
    assert expected == [3, 3, 3, 3, 1, 5]

    r = recalculate(_sheets_book(tmp_path / "xlmvar.xlsx", "PORTVOL(A!B3,0.04)"))
    assert [r.value("B", f"A{i + 1}") for i in range(len(SHEET_FORMULAS))] == expected
    assert r.value("B", "C1") == pytest.approx(1 + 3 * 0.2, rel=1e-12)  # the call was made
    # Excel: SHEET of a name that is no sheet is #N/A, INDIRECT to a sheet that does not exist #REF!
    assert [str(r.value("B", c)) for c in ("D1", "D2")] == ["#N/A", "#REF!"]
    kept = {k.cell: k.reason for k in r.kept}
    assert r.value("B", "D3") == 7 and "INFO" in kept["D3"]  # the Excel session's, not the book's


def test_sheets_without_chart_sheets_ignore_the_sheet_of_results(tmp_path):
    wb = xlsxwriter.Workbook(str(tmp_path / "plain.xlsx"), {"use_future_functions": True})
    ws = wb.add_worksheet("S")
    ws.write("B1", 100)
    ws.write_formula("A1", "=IFERROR(PORTVOL(B1,0.04),0)")  # inside a formula: a sheet of results
    ws.write_formula("A2", "=SHEETS()")
    ws.write_formula("A3", "=PORTVOL(B1,0.04)*SHEETS()")  # in an xlmvar cell's native part
    ws.write_formula("A4", "=PORTVOL(B1*SHEETS(),0.04)")  # in an argument
    wb.close()
    r = recalculate(tmp_path / "plain.xlsx")
    assert [r.value("S", c) for c in ("A1", "A2", "A3", "A4")] == pytest.approx([20.0, 1.0, 20.0, 20.0], rel=1e-12)


# --------------------------------------------------------------------------------------
# Lookups: INDEX past a clipped whole column, wildcards
# --------------------------------------------------------------------------------------
#: (formula, the value Excel caches): INDEX of a whole column past the sheet's filled rows
#: reads a blank cell, 0 in a formula's cell (Excel's INDEX page: the reference of the cell
#: at that row); past row 1,048,576 it is #REF! in Excel too.
INDEX_FORMULAS = [("=INDEX(A:A,50)", 0), ("=INDEX(A:A,1048576)", 0), ("=INDEX(3:3,1,300)", 0),
                  ("=INDEX(3:3,300)", 0), ("=INDEX(B:B,3)", 12), ("=INDEX(B:B,COUNTA(B:B)+1)", 0),
                  ("=INDEX(A:B,ROW()+100,2)", 0)]


def _index_book(path, extra=()):
    wb = xlsxwriter.Workbook(str(path), {"use_future_functions": True})
    ws = wb.add_worksheet("S")
    for i, v in enumerate(["apple", "banana", "cherry", "a?c", 5, "date"]):
        ws.write(i, 0, v)
        ws.write(i, 1, i + 10)
    for i, (f, cached) in enumerate(INDEX_FORMULAS):
        ws.write_formula(i, 3, f, None, cached)
        ws.write_formula(i, 4, f"=D{i + 1}+1", None, cached + 1)  # computed from D
    for i, f in enumerate(extra):
        ws.write_formula(i, 6, f, None, 0)
    wb.close()
    return path


#: Wildcard lookups (IronCalc 0.9.1 was said to give #N/A; measured equal to Excel's rules):
#: "*" and "?" match text only, "~" escapes, XLOOKUP matches wildcards only in mode 2.
WILDCARDS = ['=MATCH("b*",A1:A6,0)', '=VLOOKUP("c*",A1:B6,2,FALSE)', '=MATCH("*",A1:A6,0)', '=MATCH("a~?c",A1:A6,0)', '=MATCH("?ate",A:A,0)']


def test_index_past_a_clipped_whole_column_keeps_excels_value(tmp_path):
    # INDEX(A:A, 50) on a sheet filled to row 7 was #REF!: the column is clipped to A1:A7
    r = recalculate(_index_book(tmp_path / "index.xlsx"))
    kept = {k.cell: k.reason for k in r.kept}
    assert sorted(kept) == ["D1", "D2", "D3", "D4", "D7"], kept
    assert kept["D1"].startswith("INDEX reads A:A past A1:A7, where the headless calculator clips it")
    values = [r.value("S", f"D{i + 1}") for i in range(len(INDEX_FORMULAS))]
    assert values == [cached for _, cached in INDEX_FORMULAS]  # Excel's, kept or computed
    assert [r.value("S", f"E{i + 1}") for i in range(len(INDEX_FORMULAS))] == [v + 1 for v in values]
    assert not r.errors


def test_wildcard_lookups_agree_with_libreoffice(tmp_path, libre):
    book = _index_book(tmp_path / "wild.xlsx", WILDCARDS)
    libre = libre("wild.xlsx")["S"]
    expected = [libre.cell(i + 1, 7).value for i in range(len(WILDCARDS))]
    assert expected == [2, 12, 1, 4, 6]  # Excel's wildcard rules, by hand
    # the INDEX cells as LibreOffice computes them: the values kept above are Excel's
    assert [libre.cell(i + 1, 4).value for i in range(len(INDEX_FORMULAS))] == [c for _, c in INDEX_FORMULAS]
    r = recalculate(book)
    got = [r.value("S", f"G{i + 1}") for i in range(len(WILDCARDS))]
    assert got == expected
    # Excel's rules where this LibreOffice differs: wildcards match text only ("5*" does not
    # find the number 5; LibreOffice's does), XLOOKUP (not in it) uses them in mode 2 only
    wb = xlsxwriter.Workbook(str(tmp_path / "excel.xlsx"), {"use_future_functions": True})
    ws = wb.add_worksheet("S")
    ws.write_column("A1", ["x", 5, "50", "date"])
    ws.write_column("B1", [10, 11, 12, 13])
    for cell, f in (("C1", '=MATCH("5*",A1:A2,0)'), ("C2", '=MATCH("5*",A1:A3,0)'),
                    ("C3", '=XLOOKUP("d*",A1:A4,B1:B4,"none")'), ("C4", '=XLOOKUP("d*",A1:A4,B1:B4,"none",2)')):
        ws.write_formula(cell, f, None, 0)
    wb.close()
    r = recalculate(tmp_path / "excel.xlsx")
    assert [str(r.value("S", "C1")), r.value("S", "C2"), r.value("S", "C3"), r.value("S", "C4")] == ["#N/A", 3, "none", 13]
