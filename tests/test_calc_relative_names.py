"""Relative defined names in both evaluation cores (``--core formulas`` read them as absolute).

A defined name whose reference has no ``$`` before a row or column is relative: Excel stores
it in the file relative to cell A1, so used in row ``r``, column ``c`` it means its reference
moved ``r - 1`` rows down and ``c - 1`` columns right, rows and columns wrapping past the
sheet's edge (``S!XFC1``, defined as ``=S!C5`` from E5, is "two columns left"; in G4 it is
``S!E4``).  An array formula uses it from its anchor (its range's top-left cell), a shared
formula from each of its cells.  Sources: Microsoft KB Q120503 (a name ``=SUM(Sheet1!B1)``
defined relative to A1 sums B2 when used in A2), J.K. Pieterse, *Range names in Excel*
(jkp-ads.com/articles/ExcelNames03.asp: ``=Sheet2!A1`` defined from C3 is "two left, two up");
PhpSpreadsheet reads the file's text relative to A1 (PR 3673).

Every expected value below is worked out by hand from the cells written (S!A r = r,
S!B r = 10 r, S!C r = 100 r, Data!K r = 1000 r); LibreOffice 7.4's recalculation of the same
book agrees on each native one whose name does not wrap past the sheet's edge (LibreOffice
does not wrap: the four cells whose names do are checked by hand and against the other core;
LibreOffice's answers there are in the test that runs it).  PORTVOL's values come from the
closed form.  Each formula's cached value is a planted -1, so a value read back unchanged
fails.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

xlsxwriter = pytest.importorskip("xlsxwriter")

from xlmvar.workbook._xlsx import write_zip_replacing  # noqa: E402
from xlmvar.workbook.calc import recalculate  # noqa: E402

PLANTED = -1.0
CORES = ("ironcalc", "formulas")
NS = 'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'
COV = np.array([[0.04, 0.01], [0.01, 0.09]])

#: name -> (definition as the file stores it, relative to A1; what it means)
NAMES = {
    "NextA": ("=S!$A2", "column A, one row down"),
    "RowAB": ("=S!$A1:$B1", "columns A:B of the row that uses it"),
    "Left2": ("=S!XFC1", "two columns left (wraps: XFC is column 16,383)"),
    "Above": ("=S!A1048576", "the cell above (wraps: the last row)"),
    "TopC": ("=S!C$1", "row 1, two columns right"),
    "ColB": ("=S!B:B", "the whole column one right"),
    "RowNext": ("=S!2:2", "the whole row one down"),
    "Other": ("=Data!A1", "the same cell on sheet Data"),
    "Loc": ("=S!$C1", "column C of the row that uses it (global)"),
    "T!Loc": ("=S!$B1", "column B of the row that uses it (local to T, wins there)"),
    "TwiceA": ("=S!$A1*2", "twice column A of the row that uses it (a formula name)"),
    "SumRow": ("=SUM(RowAB)*2", "a name over a relative name"),
    "Wnd": ("=S!$A1:$A3", "three cells of column A from the row that uses it"),
    "Off": ("=OFFSET(S!A1,1,0)", "a reference computed by OFFSET"),
}

#: (sheet, cell) -> (formula, Excel's value by hand)
CELLS = {
    ("S", "E1"): ("=NextA*1", 2.0),  # A2
    ("S", "E4"): ("=NextA*1", 5.0),  # A5
    ("S", "E9"): ("=NextA*1", 10.0),  # A10
    ("S", "F3"): ("=SUM(RowAB)", 33.0),  # A3:B3 = 3 + 30
    ("T", "B3"): ("=SUM(RowAB)", 33.0),  # from another sheet: S!$A3:$B3
    ("S", "G4"): ("=Left2+1", 6.0),  # E4 (column 7 + 16,382 wraps to 5) = 5, a formula cell
    ("S", "E5"): ("=Left2*1", 500.0),  # C5
    ("S", "H2"): ("=Above+1", 8.0),  # H1 = 7 (row 2 + 1,048,575 wraps to 1)
    ("S", "H3"): ("=Above+1", 9.0),  # H2, itself a relative-name formula
    ("S", "A12"): ("=TopC*1", 100.0),  # C1
    ("S", "A14"): ("=SUM(ColB)", 550.0),  # B:B = 10 (1 + ... + 10)
    ("T", "A9"): ("=SUM(RowNext)", 1110.0),  # S!10:10 = 10 + 100 + 1000
    ("S", "K5"): ("=Other", 5000.0),  # Data!K5
    ("T", "A4"): ("=Loc", 40.0),  # T's own Loc: S!$B4
    ("S", "L4"): ("=Loc", 400.0),  # the global Loc: S!$C4
    ("S", "M6"): ("=TwiceA", 12.0),  # A6 * 2
    ("S", "M7"): ("=SumRow", 154.0),  # (7 + 70) * 2
    ("S", "H5"): ("{=SUM(Wnd*2)}", 36.0),  # A5:A7 = 5, 6, 7
}
#: array formulas over more than one cell: range -> (formula, values by hand)
ARRAYS = {
    "I2:I4": ("{=Wnd*10}", [20.0, 30.0, 40.0]),  # from the anchor I2: A2:A4
}
DYNAMIC = {
    "J2:J4": ("=Wnd*100", [200.0, 300.0, 400.0]),  # spills from J2: A2:A4
}
#: a shared formula (as Excel saves a filled-down column) on sheet Sh: each cell uses the
#: names from its own row
SHARED = {
    "A": ("SUM(RowAB)", [11.0, 22.0, 33.0, 44.0, 55.0]),
    "C": ("NextA*2+B1", [5.0, 7.0, 9.0, 11.0, 13.0]),  # S!$A(r+1)*2 + Sh!B r (= 1)
}
#: cells whose names wrap past the sheet's edge, and LibreOffice's answer there
WRAPS = {("S", "E5"), ("S", "G4"), ("S", "H2"), ("S", "H3")}


def _portvol_rows():
    """=PORTVOL(RowAB, $O$1:$P$2) in N1:N3: positions (r, 10 r), closed form sqrt(x' C x)."""
    return {("S", f"N{r}"): ("=PORTVOL(RowAB,$O$1:$P$2)",
                             math.sqrt(np.array([r, 10.0 * r]) @ COV @ np.array([r, 10.0 * r]))) for r in (1, 2, 3)}


def _write(path):
    wb = xlsxwriter.Workbook(str(path), {"use_future_functions": True})
    sheets = {name: wb.add_worksheet(name) for name in ("S", "Data", "T", "Sh")}
    s = sheets["S"]
    for r in range(1, 11):
        s.write_row(f"A{r}", [r, 10.0 * r, 100.0 * r])
        sheets["Data"].write_number(f"K{r}", 1000.0 * r)
    s.write_number("H1", 7)
    s.write_row("O1", COV[0])
    s.write_row("O2", COV[1])
    s.write_formula("M8", "=Off", None, 42.0)  # Excel's value, kept
    for (sheet, cell), (formula, _) in {**CELLS, **_portvol_rows()}.items():
        if formula.startswith("{"):
            sheets[sheet].write_array_formula(f"{cell}:{cell}", formula, None, PLANTED)
        else:
            sheets[sheet].write_formula(cell, formula, None, PLANTED)
    for ref, (formula, _) in ARRAYS.items():
        s.write_array_formula(ref, formula, None, PLANTED)
    for ref, (formula, _) in DYNAMIC.items():
        s.write_dynamic_array_formula(ref, formula, None, PLANTED)
    for name, (definition, _) in NAMES.items():
        wb.define_name(name, definition)
    wb.close()
    rows = []
    for r in range(1, 6):
        shared = {col: f'<c r="{col}{r}"><f t="shared" si="{k}"/><v>{PLANTED}</v></c>' if r > 1 else
                  f'<c r="{col}{r}"><f t="shared" ref="{col}1:{col}5" si="{k}">{text}</f><v>{PLANTED}</v></c>'
                  for k, (col, (text, _)) in enumerate(SHARED.items())}
        rows.append(f'<row r="{r}">{shared["A"]}<c r="B{r}"><v>1</v></c>{shared["C"]}</row>')
    xml = f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<worksheet {NS}><sheetData>{"".join(rows)}</sheetData></worksheet>'
    final = path.with_name("relnames.xlsx")
    write_zip_replacing(path, final, {"xl/worksheets/sheet4.xml": xml.encode()})
    return final


def _expected():
    """{(sheet, cell): Excel's value by hand} of every formula cell but the kept one."""
    out = {key: value for key, (_, value) in {**CELLS, **_portvol_rows()}.items()}
    for ref, (_, values) in {**ARRAYS, **DYNAMIC}.items():
        col, first = ref[0], int(ref.split(":")[0][1:])
        out.update({("S", f"{col}{first + k}"): v for k, v in enumerate(values)})
    for col, (_, values) in SHARED.items():
        out.update({("Sh", f"{col}{r}"): v for r, v in enumerate(values, start=1)})
    return out


@pytest.fixture(scope="module")
def book(tmp_path_factory):
    return _write(tmp_path_factory.mktemp("relnames") / "base.xlsx")


@pytest.fixture(scope="module")
def results(book):
    return {core: recalculate(book, core=core) for core in CORES}


@pytest.mark.parametrize("core", CORES)
def test_relative_names_mean_the_cell_that_uses_them(results, core):
    r = results[core]
    assert r.errors == []
    got = {key: r.value(*key) for key in _expected()}
    assert got == pytest.approx(_expected(), rel=1e-12, abs=0)


def test_the_two_cores_agree_cell_by_cell(results):
    a, b = results["ironcalc"], results["formulas"]
    assert a.formulas == b.formulas
    for key in a.values:
        x, y = np.asarray(a.values[key], dtype=object), np.asarray(b.values[key], dtype=object)
        assert x.shape == y.shape and all(u == pytest.approx(v, rel=1e-12) for u, v in zip(x.flat, y.flat)), key


@pytest.mark.parametrize("core", CORES)
def test_a_name_computed_by_offset_keeps_excels_value_with_the_reason(results, core):
    r = results[core]
    assert r.value("S", "M8") == 42.0
    (kept,) = r.kept
    assert (kept.sheet, kept.cell) == ("S", "M8")
    assert "Off" in kept.reason and "OFFSET(S!" in kept.reason and "does not evaluate" in kept.reason


def test_libreoffice_agrees_where_no_name_wraps(book, tmp_path):
    """LibreOffice reads the file's names relative to A1 too; it does not wrap past the
    sheet's edge (7.4 gives 0, 1, 1 and #REF! for E5, G4, H2, H3), and it has no PORTVOL."""
    import _workbooks

    if _workbooks.soffice() is None:
        pytest.skip("LibreOffice (soffice) is not installed")
    lo = _workbooks.libreoffice_recalculate(book, tmp_path)
    values = {sheet: _workbooks.cached_values(lo, sheet) for sheet in ("S", "T", "Sh")}
    expected = {key: v for key, v in _expected().items() if key not in WRAPS and key not in _portvol_rows()}
    assert {key: values[key[0]].get(key[1]) for key in expected} == pytest.approx(expected, rel=1e-12, abs=0)
    assert all(values[sheet].get(cell) != _expected()[sheet, cell] for sheet, cell in WRAPS)


#: names neither core evaluates (each an Excel error with its reason, never a number):
#: a local name of another sheet, a union, a name with no sheet (``!$A1``: the sheet of the
#: cell that uses it); cell -> (formula, Excel's value by hand)
UNREAD = {
    "E9": ("=T!Loc", 90.0),  # T's Loc = S!$B1, used in row 9
    "E4": ("=SUM(Uni)", 404.0),  # Uni = (S!$A1,S!$C1): A4 + C4
    "E3": ("=AnyS*1", 3.0),  # AnyS = !$A1: A3 of this sheet
}


@pytest.mark.parametrize("core", CORES)
def test_names_the_cores_cannot_read_are_errors_with_a_reason(tmp_path, core):
    path = tmp_path / "unread.xlsx"
    wb = xlsxwriter.Workbook(str(path))
    s, _ = wb.add_worksheet("S"), wb.add_worksheet("T")
    for r in range(1, 11):
        s.write_row(f"A{r}", [r, 10.0 * r, 100.0 * r])
    for cell, (formula, _) in UNREAD.items():
        s.write_formula(cell, formula, None, PLANTED)
    wb.define_name("T!Loc", "=S!$B1")
    wb.define_name("Uni", "=(S!$A1,S!$C1)")
    wb.define_name("AnyS", "=!$A1")
    wb.close()
    r = recalculate(path, core=core)
    errors = {e.cell: e for e in r.errors}
    # the formulas core keeps Excel's value of a name written with its sheet (the reason says so)
    kept = {"E9"} if core == "formulas" else set()
    assert set(errors) == set(UNREAD) - kept and {k.cell for k in r.kept} == kept
    assert all(errors[cell].error in ("#REF!", "#NAME?") and errors[cell].reason for cell in errors)
    assert all("written with its sheet" in k.reason and r.value("S", k.cell) == PLANTED for k in r.kept)


def test_a_relative_name_has_no_value_of_its_own(tmp_path, capsys):
    """``xlmvar report`` reads names outside any cell: a relative Positions is refused, naming
    it (it had been read at A1, as the file stores it); the absolute names are read."""
    from xlmvar.cli import main

    path = tmp_path / "report.xlsx"
    wb = xlsxwriter.Workbook(str(path))
    s = wb.add_worksheet("Book")
    s.write_column("A1", ["SPY", "TLT"])
    s.write_column("B1", [1e6, 2e6])
    s.write_row("D1", [0.04, 0.006])
    s.write_row("D2", [0.006, 0.01])
    s.write_number("G1", 0.99)
    wb.add_worksheet("Q1").write_number("A1", 1)  # a sheet named like a cell: its names are absolute
    for name, ref in (("Assets", "Book!$A$1:$A$2"), ("Positions", "Book!$B1:$B2"), ("Covariance", "Book!$D$1:$E$2"),
                      ("Confidence", "Book!$G$1"), ("Horizon", "'Q1'!$A$1")):
        wb.define_name(name, f"={ref}")
    wb.close()
    for core in CORES:
        names = recalculate(path, core=core).names
        assert names.get("ASSETS").tolist() == [["SPY"], ["TLT"]] and names.get("HORIZON").tolist() == [[1]]
        assert "POSITIONS" not in names and "POSITIONS" not in names.keys() and "ASSETS" in names.keys()
        with pytest.raises(ValueError, match=r"the name POSITIONS \(Book!\$B1:\$B2\) is relative"):
            names.get("POSITIONS")
    assert main(["report", str(path)]) == 2
    assert "the name POSITIONS (Book!$B1:$B2) is relative" in capsys.readouterr().err


def test_a_local_relative_name_written_with_its_own_sheet_is_never_read_at_a1(tmp_path):
    # T's local Loc = S!$B1 used on T itself as T!Loc: Excel (and LibreOffice) read S!B5 = 50
    # in row 5; the formulas core had read it at A1 (10) - found by an adversarial review.
    # Where a core cannot write the name out, the cell keeps Excel's value or is an error,
    # each with a reason, never 10.
    path = tmp_path / "qualified.xlsx"
    wb = xlsxwriter.Workbook(str(path))
    s, t = wb.add_worksheet("S"), wb.add_worksheet("T")
    for r in range(1, 11):
        s.write_row(f"A{r}", [r, 10.0 * r, 100.0 * r])
    wb.define_name("T!Loc", "=S!$B1")
    t.write_formula("E5", "=T!Loc*1", None, 50.0)  # Excel's value, cached
    t.write_formula("E6", "=SUM(T!Loc)", None, 60.0)
    wb.close()
    for core in CORES:
        r = recalculate(path, core=core)
        for cell, excel in (("E5", 50.0), ("E6", 60.0)):
            kept = {k.cell: k for k in r.kept if k.sheet == "T"}
            errors = {e.cell: e for e in r.errors if e.sheet == "T"}
            if cell in kept:
                assert r.value("T", cell) == excel and kept[cell].reason, core
            elif cell in errors:
                assert errors[cell].reason, core
            else:
                assert r.value("T", cell) == excel, core
