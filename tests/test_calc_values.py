"""Values the headless calculator used to get wrong without a word (issue 11 item 4, D7-D9).

Every expected value comes from a hand calculation or a brute-force loop over the cells
written, never from the calculator itself.
"""

import zipfile

import numpy as np
import openpyxl
import pytest
from _hostile import SHEET1, book, replace_parts

from xlmvar.cli import main
from xlmvar.engine import risk
from xlmvar.workbook.calc import calc, recalculate

WB = "xl/workbook.xml"
WB_RELS = "xl/_rels/workbook.xml.rels"


def _cached(path, sheet, cell):
    return openpyxl.load_workbook(path, data_only=True)[sheet][cell].value


def _external_book(tmp_path):
    """A book with a local sheet Data and a formula on [1]Data!B1 with Excel's cached 84,
    and the externalLink part Excel writes for it."""

    def build(wb):
        s = wb.add_worksheet("S")
        d = wb.add_worksheet("Data")
        d.write_number("B1", 5)  # a local sheet of the same name must not be read
        s.write_formula("A1", "=[1]Data!B1*2", None, 84)
        s.write_formula("A2", "=A1+1", None, 85)
        s.write_formula("A3", "=Ext*3", None, 126)
        wb.define_name("Ext", "=[1]Data!$B$1")

    base = book(tmp_path / "base.xlsx", build)
    link = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        '<externalLink xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
        'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
        '<externalBook r:id="rId1"><sheetNames><sheetName val="Data"/></sheetNames></externalBook></externalLink>'
    )
    link_rels = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/externalLinkPath" '
        'Target="Prices.xlsx" TargetMode="External"/></Relationships>'
    )
    with zipfile.ZipFile(base) as z:
        wb_xml, rels = z.read(WB), z.read(WB_RELS)
    wb_xml = wb_xml.replace(b"</sheets>", b'</sheets><externalReferences><externalReference r:id="rId99"/></externalReferences>')
    rels = rels.replace(
        b"</Relationships>",
        b'<Relationship Id="rId99" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/externalLink" '
        b'Target="externalLinks/externalLink1.xml"/></Relationships>',
    )
    parts = {
        WB: wb_xml,
        WB_RELS: rels,
        "xl/externalLinks/externalLink1.xml": link.encode(),
        "xl/externalLinks/_rels/externalLink1.xml.rels": link_rels.encode(),
    }
    return replace_parts(base, tmp_path / "external.xlsx", parts)


def test_external_references_keep_the_cached_value_and_are_reported(tmp_path, capsys):
    path = _external_book(tmp_path)
    r = recalculate(path)
    kept = {k.cell: k.reason for k in r.kept}
    assert set(kept) == {"A1", "A3"} and "Prices.xlsx" in kept["A1"] and "another workbook" in kept["A3"]
    assert r.value("S", "A1") == 84 and r.value("S", "A3") == 126  # Excel's values, not 5*2
    assert r.value("S", "A2") == 85  # its dependent computes from the kept value: 84 + 1
    out = tmp_path / "out.xlsx"
    assert main(["calc", str(path), "-o", str(out)]) == 3
    text = capsys.readouterr().out
    assert "S!A1: kept its cached value; refers to another workbook ([1] is Prices.xlsx)" in text
    assert _cached(out, "S", "A1") == 84 and _cached(out, "S", "A3") == 126


def test_a_self_reference_and_a_cycle_are_errors_naming_the_cells(tmp_path):
    def build(wb):
        s = wb.add_worksheet("S")
        s.write_formula("A1", "=A1+1")
        s.write_formula("B1", "=B2+1")
        s.write_formula("B2", "=B3+1")
        s.write_formula("B3", "=B1+1")
        s.write_formula("C1", "=B1*2")
        s.write_formula("D1", "=1+1")

    r = recalculate(book(tmp_path / "cycle.xlsx", build))
    errors = {e.cell: e for e in r.errors}
    assert errors["A1"].error == "#REF!" and "circular reference S!A1 -> S!A1" in errors["A1"].reason
    assert "circular reference S!B1 -> S!B2 -> S!B3 -> S!B1" in errors["B2"].reason
    assert errors["C1"].reason.startswith("depends on a circular reference S!B1")
    assert "D1" not in errors and r.value("S", "D1") == 2


def test_whole_column_and_whole_sheet_ranges(tmp_path):
    values = {(r, c): (r * 7 + c * 3) % 11 - 4.5 for r in range(2, 40) for c in range(2, 9)}

    def build(wb):
        s = wb.add_worksheet("S")
        for (r, c), v in values.items():
            s.write_number(r - 1, c - 1, v)
        t = wb.add_worksheet("T")
        t.write_formula("A1", "=SUM(S!B2:B1048576)")
        t.write_formula("A2", "=SUM(S!B2:XFD1048576)")
        t.write_formula("A3", "=SUM(S!$C:$E)")
        t.write_formula("A4", "=SUM(S!3:5)")
        t.write_formula("A5", "=COUNT(S!A1:XFD1048576)")
        t.write_formula("A6", "=ROWS(S!B:B)")
        t.write_formula("A7", '=COUNTIF(S!B:B,"")')  # Excel: 1,048,538 blanks; clipped: 1
        t.write_formula("A8", '=COUNTIF(S!B2:B39,"<0")')  # an exact range is evaluated
        t.write_formula("A9", "=ROWS(S!B2:B1048576)")  # clipped, so its size would be wrong: kept
        t.write_formula("A10", "=COUNTBLANK(S!B:B)")  # not one IronCalc counts fast: clipped, kept
        wb.define_name("Everything", "=S!$A$1:$XFD$1048576")  # unused: must cost nothing

    r = recalculate(book(tmp_path / "whole.xlsx", build))
    assert r.value("T", "A1") == pytest.approx(sum(v for (row, c), v in values.items() if c == 2))
    assert r.value("T", "A2") == pytest.approx(sum(values.values()))
    assert r.value("T", "A3") == pytest.approx(sum(v for (row, c), v in values.items() if 3 <= c <= 5))
    assert r.value("T", "A4") == pytest.approx(sum(v for (row, c), v in values.items() if 3 <= row <= 5))
    assert r.value("T", "A5") == len(values)
    # a whole column given to ROWS or COUNTIF is counted as Excel counts it: all 1,048,576
    # rows, 38 of them filled (the pure-Python core kept Excel's cached value instead)
    assert r.value("T", "A6") == 1_048_576 and r.value("T", "A7") == 1_048_576 - 38
    assert [k.cell for k in r.kept] == ["A9", "A10"]  # not 38 or 0 silently
    assert "ROWS" in r.kept[0].reason and "COUNTBLANK" in r.kept[1].reason
    assert r.value("T", "A8") == sum(1 for (row, c), v in values.items() if c == 2 and v < 0)


def test_index_with_a_row_or_column_of_zero(tmp_path):
    grid = [[1, 10, 100], [2, 20, 200], [3, 30, 300]]

    def build(wb):
        s = wb.add_worksheet("S")
        for i, row in enumerate(grid):
            s.write_row(i, 0, row)
        s.write_formula("E1", "=SUM(INDEX(A1:C3,0,2))")
        s.write_formula("E2", "=SUM(INDEX(A1:C3,2,0))")
        s.write_formula("E3", "=SUM(INDEX(A1:C3,0,0))")
        s.write_formula("E4", "=INDEX(A1:C3,0,4)")
        s.write_formula("E5", "=INDEX(A1:C3,3,2)")
        s.write_array_formula("F1:F3", "{=INDEX(A1:C3,0,3)}")

    r = recalculate(book(tmp_path / "index.xlsx", build))
    assert r.value("S", "E1") == 10 + 20 + 30
    assert r.value("S", "E2") == 2 + 20 + 200
    assert r.value("S", "E3") == sum(map(sum, grid))
    assert str(r.value("S", "E4")) == "#REF!"
    assert r.value("S", "E5") == 30
    assert [r.value("S", f"F{i}") for i in (1, 2, 3)] == [100, 200, 300]


def test_unsupported_functions_keep_their_cached_value_in_place(tmp_path, capsys):
    def build(wb):
        s = wb.add_worksheet("S")
        s.write_formula("A1", '=CUBEVALUE("Sales","[Measures].[Total]")', None, 1234.5)
        s.write_formula("A2", '=WEBSERVICE("https://example.com/price")', None, "101.25")
        s.write_formula("A3", "=A1*2")

    path = book(tmp_path / "cube.xlsx", build)
    assert main(["calc", str(path), "--in-place"]) == 3
    out = capsys.readouterr().out
    assert "S!A1: kept its cached value; calls CUBEVALUE" in out and "S!A2: kept its cached value; calls WEBSERVICE" in out
    assert _cached(path, "S", "A1") == 1234.5 and _cached(path, "S", "A2") == "101.25"
    assert _cached(path, "S", "A3") == 2469.0
    assert main(["calc", str(path), "--in-place"]) == 3  # a second run keeps them again
    assert _cached(path, "S", "A1") == 1234.5


def test_control_characters_are_written_escaped_as_excel_does(tmp_path):
    def build(wb):
        s = wb.add_worksheet("S")
        for n in range(1, 32):
            s.write_formula(n - 1, 0, f"=CHAR({n})")
        s.write_formula("B1", '="a_x0041_b"')

    path = book(tmp_path / "char.xlsx", build)
    result = calc(path, tmp_path / "out.xlsx")
    assert [result.value("S", f"A{n}") for n in range(1, 32)] == [chr(n) for n in range(1, 32)]
    with zipfile.ZipFile(tmp_path / "out.xlsx") as z:
        xml = z.read(SHEET1).decode()
    assert "<v>_x0001_</v>" in xml and "<v>_x001F_</v>" in xml and "<v>a_x005F_x0041_b</v>" in xml
    again = recalculate(tmp_path / "out.xlsx")  # and it reads back as written
    assert again.values == result.values or all(
        np.array_equal(again.values[k], result.values[k]) for k in result.values
    )
    assert again.value("S", "B1") == "a_x0041_b"  # a literal escape-like text survives


def test_array_constants_with_negative_numbers(tmp_path):
    def build(wb):
        s = wb.add_worksheet("S")
        s.write_formula("A1", "=PORTVAR({-1;2},{0.04,0.01;0.01,0.09},0.95)")
        s.write_formula("A2", "=SUM({-1.5,2;3,-4})")

    r = recalculate(book(tmp_path / "neg.xlsx", build))
    assert r.errors == []
    cov = np.array([[0.04, 0.01], [0.01, 0.09]])
    x = np.array([-1.0, 2.0])
    from scipy.stats import norm

    assert r.value("S", "A1") == pytest.approx(norm.ppf(0.95) * np.sqrt(x @ cov @ x), rel=1e-12)
    assert r.value("S", "A2") == -0.5
    assert risk  # the engine is what the closed form above checks against


def _table_book(tmp_path):
    def build(wb):
        s = wb.add_worksheet("S")
        s.add_table(
            "B2:D5",
            {
                "name": "Book1",
                "columns": [{"header": "Asset"}, {"header": "Position"}, {"header": "Vol"}],
                "data": [["SPY", 100, 0.2], ["TLT", 250, 0.1], ["BTC", 50, 0.8]],
            },
        )
        s.write_formula("F1", "=SUM(Book1[Position])")
        s.write_formula("F2", "=SUMPRODUCT(Book1[Position],Book1[Vol])")
        s.write_formula("F3", "=INDEX(Book1[[#Headers],[Vol]],1)")
        s.write_formula("F4", "=COUNTA(Book1[#All])")
        s.write_formula("F5", "=SUM(Book1[[Position]:[Vol]])")
        s.write_formula("E3", "=Book1[[#This Row],[Position]]*2")
        s.write_formula("F6", "=SUM(Book1[Nope])")

    return book(tmp_path / "table.xlsx", build)


def test_structured_references_are_resolved_from_the_table(tmp_path):
    r = recalculate(_table_book(tmp_path))
    assert r.value("S", "F1") == 100 + 250 + 50
    assert r.value("S", "F2") == pytest.approx(100 * 0.2 + 250 * 0.1 + 50 * 0.8)
    assert r.value("S", "F3") == "Vol"
    assert r.value("S", "F4") == 4 * 3
    assert r.value("S", "F5") == pytest.approx(400 + 1.1)
    assert r.value("S", "E3") == 200
    errors = {e.cell: e for e in r.errors}
    assert set(errors) == {"F6"} and "Book1[Nope]" in errors["F6"].reason and "no column" in errors["F6"].reason


def test_a_failing_dynamic_array_shows_one_error_in_its_anchor(tmp_path):
    def build(wb):
        s = wb.add_worksheet("S")
        s.write_column("A1", [1.0, 2.0, 3.0])
        s.write_dynamic_array_formula("C1:C3", "=PORTVAR(A1:A3, A1:A3, 95)")
        s.write_dynamic_array_formula("D1:D3", "=A1:A3*2")
        s.write_dynamic_array_formula("E1:E3", "=SQRT({4;-1;9})")
        s.write_array_formula("F1:F3", "{=PORTVAR(A1:A3, A1:A3, 95)}")

    path = book(tmp_path / "spill.xlsx", build)
    result = calc(path, tmp_path / "out.xlsx")
    ws = openpyxl.load_workbook(tmp_path / "out.xlsx", data_only=True)["S"]
    assert ws["C1"].value == "#VALUE!" and ws["C2"].value is None and ws["C3"].value is None
    assert [ws[f"D{i}"].value for i in (1, 2, 3)] == [2, 4, 6]
    assert [ws[f"E{i}"].value for i in (1, 2, 3)] == [2, "#NUM!", 3]  # an element's error stays
    assert [ws[f"F{i}"].value for i in (1, 2, 3)] == ["#VALUE!"] * 3  # a legacy array repeats it
    assert [e.cell for e in result.errors] == ["C1", "E2", "F1"]


def test_a_dynamic_array_larger_than_its_stored_range_is_reported(tmp_path, capsys):
    def build(wb):
        s = wb.add_worksheet("S")
        s.write_column("A1", [1.0, 2.0, 3.0])
        s.write_dynamic_array_formula("C1:C2", "=A1:A3*2")  # saved when A had two values

    path = book(tmp_path / "grown.xlsx", build)
    assert main(["calc", str(path), "-o", str(tmp_path / "out.xlsx")]) == 3
    assert "S!C1: only partly written; its result is 3 x 1 but the file's spill range C1:C2 is 2 x 1" in capsys.readouterr().out
    ws = openpyxl.load_workbook(tmp_path / "out.xlsx", data_only=True)["S"]
    assert [ws[f"C{i}"].value for i in (1, 2)] == [2, 4]


def test_double_negation_makes_numbers_as_in_excel(tmp_path):
    # formulas reads "--" as "+", which leaves TRUE/FALSE as they are: SUMPRODUCT(--(...))
    # counted 0 silently.  Excel's values, worked by hand from the column 1, -3, 5, -4, 0, "3".
    def build(wb):
        s = wb.add_worksheet("S")
        for i, v in enumerate([1, -3, 5, -4, 0]):
            s.write_number(i, 0, v)
        s.write_string(5, 0, "3")
        for i, f in enumerate(["=SUMPRODUCT(--(A1:A5<-2))", "=SUM(--(A1:A5<-2))", "=--A6", "=---(A1<2)",
                               "=A1--A2", "=--2^2", "=+(A1<2)"]):
            s.write_formula(i, 1, f, None, 0)

    r = recalculate(book(tmp_path / "negation.xlsx", build))
    assert [r.value("S", f"B{i}") for i in range(1, 7)] == [2, 2, 3, -1, -2, 4]
    assert r.value("S", "B7") is True  # a single unary plus leaves TRUE as it is, as in Excel


def test_the_evaluation_cores_own_error_codes_become_excels(tmp_path, capsys):
    """IronCalc's #N/IMPL! (a form of a function it lacks) and #ERROR! (a formula it cannot
    parse) are not Excel codes: the first keeps Excel's value, the second is #NAME?."""

    def build(wb):
        s = wb.add_worksheet("S")
        s.write_formula("A1", '=INFO("osversion")', None, "Windows (64-bit) NT 10.00")
        s.write_formula("A2", '=LEN(A1)', None, 25)  # from Excel's value of A1, not from an error
        s.write_formula("A3", "=1+", None, 0)  # no spreadsheet saves this; a hostile file can
        s.write_formula("A4", "=2+3", None, 0)

    path = book(tmp_path / "codes.xlsx", build)
    r = recalculate(path)
    assert [(k.cell, k.reason) for k in r.kept] == [("A1", "calls INFO in a form the headless calculator does not implement")]
    assert r.value("S", "A2") == len("Windows (64-bit) NT 10.00") and r.value("S", "A4") == 5
    errors = {e.cell: e for e in r.errors}
    assert set(errors) == {"A3"} and errors["A3"].error == "#NAME?" and "cannot parse" in errors["A3"].reason
    assert main(["calc", str(path), "-o", str(tmp_path / "out.xlsx")]) == 1
    assert _cached(tmp_path / "out.xlsx", "S", "A1") == "Windows (64-bit) NT 10.00"


def test_both_cores_agree_on_the_values_that_changed(tmp_path):
    """The pure-Python core (--core formulas) is the second opinion: the same book, the same
    values, except where IronCalc counts a whole column as Excel does."""
    path = _table_book(tmp_path)
    ironcalc, formulas = recalculate(path), recalculate(path, core="formulas")
    assert ironcalc.formulas == formulas.formulas
    for key in ironcalc.values:
        a, b = np.asarray(ironcalc.values[key], dtype=object), np.asarray(formulas.values[key], dtype=object)
        assert a.shape == b.shape and all(str(x) == str(y) if isinstance(x, str) else x == pytest.approx(y)
                                          for x, y in zip(a.flat, b.flat)), key
    with pytest.raises(ValueError, match="core: expected 'ironcalc' or 'formulas'"):
        recalculate(path, core="libreoffice")


def test_a_legacy_formula_meets_a_range_in_its_own_row_or_column(tmp_path):
    """Implicit intersection: a plain one-cell formula (as Excel saves one entered before
    dynamic arrays, or with @) reads a range used as a value at the cell in its own row (a
    column range) or column (a row range); SUM still takes the whole range; a dynamic array
    formula spills; a cell the range does not meet is #VALUE!, as in Excel."""

    def build(wb):
        s = wb.add_worksheet("S")
        s.write_column("A1", [1.0, 2.0, 3.0])
        s.write_row("A6", [10.0, 20.0, 30.0])
        for r in range(1, 5):
            s.write_formula(f"C{r}", "=Liste*2")  # row 4: the range ends at row 3
        s.write_formula("B8", "=Ligne+A2:A4")  # column B of A6:C6, row 8 of A2:A4 -> no row 8: #VALUE!
        s.write_formula("B3", "=Ligne+A2:A4")  # 20 + 3
        s.write_formula("D1", "=SUM(Liste)*1")
        s.write_dynamic_array_formula("E1:E3", "=Liste*10")
        wb.define_name("Liste", "=S!$A$1:$A$3")
        wb.define_name("Ligne", "=S!$A$6:$C$6")

    r = recalculate(book(tmp_path / "ii.xlsx", build))
    assert [r.value("S", f"C{i}") for i in (1, 2, 3)] == [2.0, 4.0, 6.0]
    assert str(r.value("S", "C4")) == "#VALUE!" and str(r.value("S", "B8")) == "#VALUE!"
    assert r.value("S", "B3") == 20.0 + 3.0 and r.value("S", "D1") == 6.0
    assert [r.value("S", f"E{i}") for i in (1, 2, 3)] == [10.0, 20.0, 30.0]


def _risk_book(path, build):
    """Positions B1:B3 = 100, 200, 300 and covariance C1:E3 on sheet S, then ``build(wb, s)``."""
    import xlsxwriter

    wb = xlsxwriter.Workbook(str(path))
    s = wb.add_worksheet("S")
    s.write_column("B1", [100.0, 200.0, 300.0])
    for i, row in enumerate(COV):
        s.write_row(i, 2, row)
    build(wb, s)
    wb.close()
    return path


COV = [[0.04, 0.01, 0.0], [0.01, 0.09, 0.02], [0.0, 0.02, 0.16]]


def _portvar(positions, confidence=0.99):
    from scipy.stats import norm

    x = np.asarray(positions, dtype=float)
    return norm.ppf(confidence) * np.sqrt(x @ np.asarray(COV) @ x)


def test_expression_arguments_of_xlmvar_functions_read_the_calling_sheet(tmp_path):
    # they were evaluated on a scratch sheet, so B1:B3*2 read blanks: PORTVAR gave 0 silently
    def build(wb, s):
        s.write_number("F1", 99)
        for r, f in enumerate(["=PORTVAR(B1:B3*2,C1:E3,0.99)", "=PORTVAR(IF(B1:B3>0,B1:B3,0),C1:E3,0.99)",
                               "=PORTVAR(B1:B3,C1:E3,IF(F1>50,0.99,0.95))", "=PORTVAR(B1:B3,C1:E3,F1/100)"], start=1):
            s.write_formula(f"H{r}", f)

    r = recalculate(_risk_book(tmp_path / "args.xlsx", build))
    want = [_portvar([200, 400, 600]), _portvar([100, 200, 300]), _portvar([100, 200, 300]), _portvar([100, 200, 300])]
    assert [r.value("S", f"H{i}") for i in range(1, 5)] == pytest.approx(want, rel=1e-12)


def test_arrays_around_xlmvar_results(tmp_path, capsys):
    # a legacy array formula whose xlmvar call is not the whole formula stopped the run
    # (status 2); a dynamic one whose result outgrew its stored range was cut short silently
    def build(wb, s):
        s.write_array_formula("J1:J3", "{=COMPONENTVAR(B1:B3,C1:E3,0.99)*2}")
        s.write_dynamic_array_formula("H1:H2", "=COMPONENTVAR(B1:B3,C1:E3,0.99)")

    path = _risk_book(tmp_path / "arrays.xlsx", build)
    x, cov = np.array([100.0, 200.0, 300.0]), np.asarray(COV)
    component = x * (cov @ x) / np.sqrt(x @ cov @ x) * (_portvar(x) / np.sqrt(x @ cov @ x))  # z x_i (S x)_i / sigma
    r = recalculate(path)
    assert [r.value("S", f"J{i}") for i in (1, 2, 3)] == pytest.approx(2 * component, rel=1e-12)
    assert [r.value("S", f"H{i}") for i in (1, 2)] == pytest.approx(component[:2], rel=1e-12)
    assert main(["calc", str(path), "-o", str(tmp_path / "out.xlsx")]) == 3
    assert "S!H1: only partly written; its result is 3 x 1 but the file's spill range H1:H2 is 2 x 1" in capsys.readouterr().out


def test_defined_names_that_are_not_plain_references(tmp_path):
    # IronCalc does not evaluate a name that is a constant or a formula: IFERROR(Conf,0.95)
    # gave 0.95 for Conf = 0.99; a reference computed by a formula gave SUM 0
    def build(wb, s):
        s.write_column("M1", [1.0, 2.0, 3.0])
        s.write_formula("H1", "=IFERROR(Conf,0.95)")
        s.write_formula("H2", "=PORTVAR(B1:B3,C1:E3,IFERROR(Conf,0.95))")
        s.write_formula("H3", "=SUM(PosX)", None, 6)
        wb.define_name("Conf", "=0.99")
        wb.define_name("PosX", "=S!$M$1:INDEX(S!$M:$M,3)")

    r = recalculate(_risk_book(tmp_path / "names.xlsx", build))
    assert r.value("S", "H1") == 0.99 and r.value("S", "H2") == pytest.approx(_portvar([100, 200, 300]), rel=1e-12)
    assert [(k.cell, "PosX" in k.reason) for k in r.kept] == [("H3", True)] and r.value("S", "H3") == 6


def test_implicit_intersection_where_excel_does_it_and_nowhere_else(tmp_path):
    def build(wb, s):
        s.write_column("G1", [10.0, 20.0, 30.0, 40.0, 50.0])
        s.write_array_formula("I5:I5", "{=G1:G5*2}")  # a one-cell CSE array: the first element
        s.write_formula("J5", "=Prices*2")  # legacy, top level: the cell in row 5
        s.write_formula("K5", "=ABS(Prices)", None, 50)  # inside a function: IronCalc reads G1
        t = wb.add_worksheet("T")
        t.write_formula("E3", "=S!3:3")  # S!E3, a covariance, not clipped away first
        wb.define_name("Prices", "=S!$G$1:$G$5")

    r = recalculate(_risk_book(tmp_path / "ii2.xlsx", build))
    assert r.value("S", "I5") == 20.0 and r.value("S", "J5") == 100.0 and r.value("T", "E3") == COV[2][2]
    assert [k.cell for k in r.kept] == ["K5"] and "inside ABS()" in r.kept[0].reason and r.value("S", "K5") == 50


def test_the_writer_is_not_fooled_by_a_comment_or_a_cell_in_another_form(tmp_path):
    from _hostile import with_sheet

    for name, cells in [("comment", '<row r="1"><c r="A1"><v>4</v></c><c s="0" r="B1"><f>A1*2</f><v>5</v></c></row>'
                                    '<!--<c r="B1"></c>-->'),
                        ("order", '<row r="1"><c r="A1"><v>4</v></c><c r="C1"><f>A1*3</f><v>5</v></c>'
                                  '<c s="0" r="B1"><f>A1*2</f><v>5</v></c></row>')]:
        path = with_sheet(tmp_path, cells, f"{name}.xlsx")
        calc(path, tmp_path / f"{name}.out.xlsx")
        assert _cached(tmp_path / f"{name}.out.xlsx", "S", "B1") == 8, name


def test_names_local_to_a_sheet_after_a_chart_sheet(tmp_path):
    # localSheetId counts the chart sheet: Conf local to S1 (localSheetId 1) was read as local
    # to S2, so S1 saw the global 0.95 and S2 the local 0.99, silently
    import xlsxwriter
    from scipy.stats import norm

    wb = xlsxwriter.Workbook(str(tmp_path / "chart_first.xlsx"))
    chart_sheet = wb.add_chartsheet("Chart1")
    for name in ("S1", "S2"):
        s = wb.add_worksheet(name)
        s.write_row("B1", [100, 0.0004])
        s.write_formula("A1", "=Conf*1")
        s.write_formula("A2", "=PORTVAR(B1,C1,Conf)")
    chart = wb.add_chart({"type": "line"})
    chart.add_series({"values": "=S1!$B$1:$B$1"})
    chart_sheet.set_chart(chart)
    wb.define_name("S1!Conf", "=0.99")
    wb.define_name("Conf", "=0.95")
    wb.close()
    r = recalculate(tmp_path / "chart_first.xlsx")
    assert [r.value("S1", "A1"), r.value("S2", "A1")] == [0.99, 0.95]
    # PORTVAR of 100 with a variance of 0.0004 (volatility 0.02): z * 2
    assert [r.value("S1", "A2"), r.value("S2", "A2")] == pytest.approx([norm.ppf(0.99) * 2, norm.ppf(0.95) * 2], rel=1e-12)
