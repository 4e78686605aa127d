"""Native formulas over array *values* and relative defined names, where IronCalc's answer
differs from Excel's without a word (issue 11, silent wrong values found in review).

Every expected value is Excel's, worked out by hand from the cells written (B1:B5 = 3, 1, 4,
1, 5; C1:C5 = x, y, x, y, x, so the "x" rows hold 3, 4, 5); LibreOffice agrees on every one
(``/tmp/review/lo_check.py``) except MEDIAN({1,TRUE,3}), where it counts TRUE as Excel does not,
and SUMXMY2 over a text, where it gives #VALUE!.
A formula IronCalc would get wrong keeps the value Excel cached (written here as Excel's
value) and is reported with the function and the argument, or, where an exact rewrite
exists, is computed; so are the ordinary formulas beside them (their cached value is a
planted -1).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("ironcalc")
xlsxwriter = pytest.importorskip("xlsxwriter")

from xlmvar.workbook.calc import recalculate  # noqa: E402

PLANTED = -1.0


def _book(path, formulas: dict) -> None:
    """Sheet S with B1:B5 = 3,1,4,1,5 and C1:C5 = x,y,x,y,x; ``formulas`` maps a cell to
    ``(formula, cached value)``; ``{=...}`` is an array formula as Excel saves one."""
    wb = xlsxwriter.Workbook(path)
    ws = wb.add_worksheet("S")
    ws.write_column("B1", [3, 1, 4, 1, 5])
    ws.write_column("C1", list("xyxyx"))
    for cell, (formula, cached) in formulas.items():
        if formula.startswith("{"):
            ws.write_array_formula(f"{cell}:{cell}", formula, None, cached)
        else:
            ws.write_formula(cell, formula, None, cached)
    wb.close()


def _check(tmp_path, kept: dict, computed: dict, names: dict) -> None:
    formulas = {cell: (f, v) for cell, (f, v) in kept.items()}
    formulas.update({cell: (f, PLANTED) for cell, (f, _) in computed.items()})
    path = tmp_path / "arrays.xlsx"
    _book(path, formulas)
    r = recalculate(path)
    for cell, (formula, excel) in {**kept, **computed}.items():
        assert r.value("S", cell) == pytest.approx(excel, rel=1e-12, abs=1e-12), (cell, formula)
    reasons = {k.cell: k.reason for k in r.kept}
    assert set(reasons) == set(kept)
    for cell, (function, argument) in names.items():
        assert function in reasons[cell] and argument in reasons[cell], reasons[cell]


def test_aggregates_over_an_array_value_keep_excels_value_or_are_rewritten(tmp_path):
    x = np.array([3.0, 4.0, 5.0])  # the "x" rows: Excel ignores IF's FALSEs for the others
    kept = {
        "A3": ('{=COUNT(IF(C1:C5="x",B1:B5))}', 3.0),  # IronCalc 0 (array ignored)
        "A4": ("=COUNT({1,2,3})", 3.0),  # IronCalc 0
        "A6": ("{=NPV(0.1,B1:B5*1)}", sum(v / 1.1 ** (k + 1) for k, v in enumerate([3, 1, 4, 1, 5]))),  # IronCalc 0
        "A9": ("=MEDIAN({1,TRUE,3})", 2.0),  # Excel ignores TRUE in an array; IronCalc 1
        "A10": ("=SUMPRODUCT(COUNT(B1:B5*1))", 5.0),  # an array inside SUMPRODUCT; IronCalc 0
        "A11": ('{=AVERAGE((C1:C5="x"),4)}', 4.0),  # the comparison's logicals ignored; IronCalc 7/6
        "A13": ('{=SUMXMY2(IF(C1:C5="x",B1:B5,""),B1:B5)}', 0.0),  # pairs with a text dropped; IronCalc 2
        "A14": ('{=COVAR(IF(C1:C5="x",B1:B5),B1:B5*B1:B5)}', np.cov(x, x * x, bias=True)[0, 1]),  # IronCalc #N/A
        "A15": ('{=AVERAGE(IF(C1:C5="x",IF(B1:B5>3,B1:B5)))}', 4.5),  # nested IF: FALSEs either way; kept
    }
    skew = 0.0  # 3, 4, 5 is symmetric
    computed = {  # IF(c, v) given "" as its third argument (equal in Excel), which IronCalc reads right
        "A1": ('{=AVERAGE(IF(C1:C5="x",B1:B5))}', x.mean()),  # IronCalc 2.4 (FALSE as 0)
        "A2": ('{=MEDIAN(IF(C1:C5="x",B1:B5))}', 4.0),  # IronCalc 3
        "A5": ('{=SKEW(IF(C1:C5="x",B1:B5))}', skew),  # IronCalc -0.197
        "A7": ('{=GEOMEAN(IF(C1:C5="x",B1:B5))}', 60 ** (1 / 3)),  # IronCalc #NUM!
        "A8": ('{=HARMEAN(IF(C1:C5="x",B1:B5))}', 3 / (1 / 3 + 1 / 4 + 1 / 5)),  # IronCalc #NUM!
        "A12": ('{=_xlfn.SKEW.P(IF(C1:C5="x",B1:B5))}', skew),  # IronCalc -0.132
        "A16": ('{=AVERAGE(IF(C1:C5="x",B1:B5),IF(C1:C5="y",B1:B5 * 10))}', (3 + 4 + 5 + 10 + 10) / 5),  # IronCalc 3.2
        "D1": ("=AVERAGE(B1:B5)", 2.8),
        "D2": ("=COUNT(B1:B5)", 5.0),
        "D3": ("=NPV(0.1,B1:B5)", kept["A6"][1]),
        "D4": ("{=AVERAGE(B1:B5*2)}", 5.6),  # arithmetic: numbers only
        "D5": ('{=AVERAGE(IF(C1:C5="x",B1:B5,""))}', 4.0),  # text, which both ignore
        "D6": ('{=AVERAGE(--(C1:C5="x"))}', 0.6),
        "D7": ('{=STDEV(IF(C1:C5="x",B1:B5))}', 1.0),  # IronCalc ignores the FALSEs, as Excel
        "D8": ('{=SUM(IF(C1:C5="x",B1:B5))}', 12.0),
        "D9": ('{=MAX(IF(C1:C5="x",B1:B5))}', 5.0),
        "D10": ("=MEDIAN(B1:B5)", 3.0),
        "D11": ('{=CORREL(IF(C1:C5="x",B1:B5),B1:B5*B1:B5)}', np.corrcoef(x, x * x)[0, 1]),  # pairs dropped, as Excel
        "D12": ('{=SKEW(IF(C1:C5="x",B1:B5,""))}', skew),
    }
    names = {"A4": ("COUNT", "{1,2,3}"), "A6": ("NPV", "B1:B5*1"), "A9": ("MEDIAN", "{1,TRUE,3}"),
             "A11": ("AVERAGE", '(C1:C5="x")'), "A15": ("AVERAGE", 'IF(C1:C5="x",IF(B1:B5>3,B1:B5))')}
    _check(tmp_path, kept, computed, names)


def test_an_array_as_a_criterion_keeps_excels_value(tmp_path):
    kept = {
        "A1": ('=SUM(COUNTIF(C1:C5,{"x","y"}))', 5.0),  # {3,2}; IronCalc 0
        "A2": ('=SUMPRODUCT(SUMIFS(B1:B5,C1:C5,{"x";"y"}))', 14.0),  # {12;2}; IronCalc 0
        "A3": ("{=MAX(COUNTIF(B1:B5,B1:B5))}", 2.0),  # 1 appears twice; IronCalc 0
        "A4": ("=SUMPRODUCT(1/COUNTIF(C1:C5,C1:C5))", 2.0),  # distinct count; IronCalc #DIV/0!
        "A5": ('=SUM(AVERAGEIF(C1:C5,{"x","y"},B1:B5))', 4.0 + 1.0),  # IronCalc #DIV/0!
        "A6": ('=SUMPRODUCT(COUNTIF(B1:B5,">"&B1:B5))', 2 + 3 + 1 + 3 + 0),  # IronCalc 0
        "A7": ("{=SUM(RANK(B1:B5,B1:B5))}", 3 + 4 + 2 + 4 + 1),  # ranks of 3,1,4,1,5; IronCalc 1
        "A8": ("{=SUM(_xlfn.RANK.AVG(B1:B5,B1:B5))}", 3 + 4.5 + 2 + 4.5 + 1),  # IronCalc 4.5
    }
    computed = {
        "D1": ('=COUNTIF(C1:C5,"x")', 3.0),
        "D2": ('=SUMIFS(B1:B5,C1:C5,"x")', 12.0),
        "D3": ("=COUNTIF(C1:C5,C3)", 3.0),
        "D4": ('=SUM(SUMIF(C1:C5,{"x","y"},B1:B5))', 14.0),  # SUMIF IronCalc applies per element
        "D5": ('{=SUM(COUNTIF(C1:C5,"x")*B1:B5)}', 3.0 * 14),
        "D6": ("=RANK(B3,B1:B5)", 2.0),
        "D7": ("{=RANK(4,B1:B5)}", 2.0),
    }
    names = {"A1": ("COUNTIF", '{"x","y"}'), "A2": ("SUMIFS", '{"x";"y"}'), "A4": ("COUNTIF", "C1:C5"),
             "A6": ("COUNTIF", '">"&B1:B5'), "A7": ("RANK", "B1:B5")}
    _check(tmp_path, kept, computed, names)


def test_a_relative_defined_name_means_the_row_that_uses_it(tmp_path):
    """RowPos = Risk!$B1:$C1 (stored relative to A1) is $B2:$C2 in row 2; Above = Risk!A1048576
    is, in row r and column c, the cell above, c - 1 columns right: in K2 it is K1 (rows wrap
    past the sheet's last one in Excel; LibreOffice agrees on RowPos, but does not wrap: it
    gives 1 and #REF! for K2 and K3)."""
    cov = np.array([[0.04, 0.01], [0.01, 0.09]])
    rows = {1: [1000.0, 2000.0], 2: [-500.0, 4000.0], 3: [3000.0, 0.0]}
    path = tmp_path / "relname.xlsx"
    wb = xlsxwriter.Workbook(path)
    ws = wb.add_worksheet("Risk")
    for r, p in rows.items():
        ws.write_row(f"B{r}", p)
        ws.write_formula(f"A{r}", "=PORTVOL(RowPos,$E$1:$F$2)", None, PLANTED)
        ws.write_formula(f"H{r}", "=SUM(RowPos)", None, PLANTED)
    ws.write_row("E1", cov[0])
    ws.write_row("E2", cov[1])
    ws.write_number("K1", 7)
    ws.write_formula("K2", "=Above+1", None, PLANTED)
    ws.write_formula("K3", "=Above+1", None, PLANTED)
    wb.define_name("RowPos", "=Risk!$B1:$C1")
    wb.define_name("Above", "=Risk!A1048576")
    wb.close()
    r = recalculate(path)
    assert not r.kept
    for row, p in rows.items():
        x = np.array(p)
        assert r.value("Risk", f"A{row}") == pytest.approx(math.sqrt(x @ cov @ x), rel=1e-12)
        assert r.value("Risk", f"H{row}") == sum(p)  # IronCalc read row 1 everywhere: 3000
    assert r.value("Risk", "K2") == 8 and r.value("Risk", "K3") == 9
