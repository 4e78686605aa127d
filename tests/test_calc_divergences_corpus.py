"""Approximate lookups, TEXT, date and time parts: where IronCalc's value is not Excel's, the
cell keeps Excel's cached value (xlmvar/workbook/_divergences.py).

- Excel's own answers in the shared corpus (read where they lie, cached values stripped in a
  temporary copy; skipped when the corpus is absent): in pycel-lookup.xlsx, pycel-text.xlsx
  and pycel-date-time.xlsx no recalculated cell may show a value other than Excel's (an
  error code is reported, a kept cell is listed; a different value would be silent).
- Books written as Excel writes them, each formula with the cached value Excel gives,
  reasoned by hand from Excel's documented rules: 15 significant digits then half away from
  zero for number formats; 1900 counted as a leap year (serial 60 is 29 February 1900,
  serial 0 is "0 January 1900"); times rounded to the nearest second in HOUR/MINUTE/SECOND;
  approximate lookups by bisection over the lookup value's own type.
- :func:`lookup_diverges` on hand-made vectors.
"""

from __future__ import annotations

import sys
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ironcalc")
from _corpus import as_value, corpus_book, stripped_copy  # noqa: E402
from _hostile import book  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from corpus_score import VOLATILE, read_book, same  # noqa: E402

from xlmvar.workbook._core_ironcalc import ErrorValue  # noqa: E402
from xlmvar.workbook._divergences import TEXT_NUMBER_FORMATS, lookup_diverges  # noqa: E402
from xlmvar.workbook.calc import recalculate  # noqa: E402

def _inside(ref: str, cell: str) -> bool:
    from openpyxl.utils.cell import coordinate_to_tuple, range_boundaries

    row, col = coordinate_to_tuple(cell)
    c0, r0, c1, r1 = range_boundaries(ref)
    return r0 <= row <= r1 and c0 <= col <= c1


#: Cells that read a kept cell: in the stripped copy the kept cell has no cached value, so they
#: read a blank (on the file itself they read Excel's value: test below).  pycel-stats: the
#: dynamic array P10:R10 = LINEST(J3:N3,J4:N5,TRUE,FALSE), data in rows, which IronCalc
#: cannot evaluate (#REF!), is kept; M22:O22 read it and O24 reads them.
READ_KEPT = {"pycel-stats.xlsx": {("Stats", "M22"), ("Stats", "N22"), ("Stats", "O22"), ("Stats", "O24")}}
KNOWN = READ_KEPT


# pycel-excelcompiler: its table's totals row is written SUBTOTAL(109,[col3]) (a column of the
# cell's own table), which was read as another workbook and kept, so SUM(Table1[#Totals]) read
# a blank once the scorer stripped the cached values
@pytest.mark.parametrize("name", ["pycel-lookup.xlsx", "pycel-text.xlsx", "pycel-date-time.xlsx", "pycel-logical.xlsx",
                                  "pycel-stats.xlsx", "pycel-excelcompiler.xlsx"])
def test_no_silent_difference_from_excel(name, tmp_path):
    source, stripped = stripped_copy(name, tmp_path)
    excel = read_book(source)
    r = recalculate(stripped)
    kept = [(s.lower(), ref) for s, ref in r.kept_targets]
    # a dynamic array whose result is one error shows it in its anchor (reported) and leaves
    # the rest of its stored range blank, as Excel does: those blanks are not silent values
    kept += [(s.lower(), ref) for (s, ref), v in r.values.items()
             if ":" in ref and as_value(r.value(s, ref.split(":")[0])).kind == "e"]
    silent, computed = [], 0
    for (sheet, cell), text in excel.formulas.items():
        if VOLATILE.search(text) or any(s == sheet.lower() and _inside(ref, cell) for s, ref in kept):
            continue
        got = as_value(r.value(sheet, cell))
        computed += 1
        if got.kind != "e" and not same(excel.values[(sheet, cell)], got):
            silent.append((sheet, cell, text, excel.values[(sheet, cell)], got))
    assert computed > 100
    assert {(sheet, cell) for sheet, cell, *_ in silent} == KNOWN.get(name, set()), silent


def test_cells_that_read_a_kept_array_read_excels_values():
    # on the file as Excel saved it (cached values present) the kept LINEST keeps Excel's
    # values and the cells that read it are computed from them: Excel's values again
    source = corpus_book("pycel-stats.xlsx")
    excel = read_book(source)
    r = recalculate(source)
    assert ("stats", "P10:R10") in {(s.lower(), ref) for s, ref in r.kept_targets}
    kept_cells = {(k.sheet, k.cell) for k in r.kept}
    for sheet, cell in READ_KEPT["pycel-stats.xlsx"]:
        assert (sheet, cell) not in kept_cells
        assert same(excel.values[(sheet, cell)], as_value(r.value(sheet, cell))), (sheet, cell)


def _recalculated(tmp_path, data, formulas):
    """``xlmvar calc`` of a sheet S holding ``data`` (cell -> value) and ``formulas`` (cell ->
    (text, Excel's value), the value cached)."""

    def build(wb):
        s = wb.add_worksheet("S")
        for cell, v in data.items():
            s.write(cell, v)
        for cell, (text, value) in formulas.items():
            s.write_formula(cell, text, None, value)

    return recalculate(book(tmp_path / "b.xlsx", build))


def _check(tmp_path, formulas, data, kept_words=None):
    """A sheet S holding ``data`` (cell -> value) and ``formulas`` (cell -> (text, Excel's
    value)); each formula's value must be Excel's, and the cells of ``kept_words`` must be
    kept with a reason holding the words (the others computed)."""

    r = _recalculated(tmp_path, data, formulas)
    reasons = {k.cell: k.reason for k in r.kept}
    for cell, (text, value) in formulas.items():
        got = r.value("S", cell)
        got = str(got) if isinstance(value, str) and value.startswith("#") else got
        assert got == value, (cell, text, got, reasons.get(cell))
    kept_words = kept_words or {}
    for cell in formulas:
        if cell in kept_words:
            assert cell in reasons and kept_words[cell] in reasons[cell], (cell, reasons.get(cell))
        else:
            assert cell not in reasons, (cell, reasons[cell])


def test_text_rounding_ties_keep_excels_value(tmp_path):
    # Excel: 15 significant digits, then half away from zero; IronCalc rounds the binary value
    data = {"A1": 2.675, "A2": 2.674, "A3": 2.5, "A4": -0.001, "A5": 0.125, "A6": 1234567.891, "A7": True,
            "B1": "0.00", "B2": "#.###"}
    formulas = {
        "C1": ('TEXT(A1,"0.00")', "2.68"),  # 2.67499999... in binary: a tie at 15 digits
        "C2": ('TEXT(A2,"0.00")', "2.67"),  # no tie: computed
        "C3": ('TEXT(A3,"0")', "3"),
        "C4": ('TEXT(A4,"0.00")', "-0.00"),  # Excel keeps the minus of a negative shown as zero
        "C5": ('TEXT(A5,"0.0%")', "12.5%"),  # no tie after scaling: computed
        "C6": ('TEXT(A6,"#,##0.00")', "1,234,567.89"),
        "C7": ('TEXT(A7,"0")', "TRUE"),  # a logical is shown as its name
        "C8": ("TEXT(A2,B1)", "2.67"),  # a format from a cell, verified: computed
        "C9": ("TEXT(A1,B1)", "2.68"),  # ... and its tie kept
        "C10": ("TEXT(A2,B2)", "2.674"),  # a format the core does not render as Excel: kept
        "C11": ('TEXT(1/0,"#.###")', "#DIV/0!"),  # an error passes through: computed
    }
    _check(tmp_path, formulas, data, {"C1": "rounding", "C3": "rounding", "C4": "rounding",
                                      "C7": "not a number", "C9": "rounding", "C10": "renders otherwise"})


def _excel_text(v: float, decimals: int, scale: int, grouping: bool) -> str:
    """``TEXT(v, fmt)`` by Excel's documented rule for a plain number format: the value to 15
    significant digits, scaled (percent), rounded half away from zero to the digits shown."""
    q = (Decimal(f"{v:.15g}") * scale).quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP)
    text = f"{q:,.{decimals}f}" if grouping else f"{q:.{decimals}f}"
    return text + ("%" if scale == 100 else "")


def _text_grid():
    """Values of every magnitude and sign (a seeded grid), with ties and near-ties among
    them, against every verified number format: cell -> (formula, Excel's text)."""
    rng = np.random.default_rng(7)
    values = [float(f"{m:.6g}") * 10.0 ** int(e) * int(sgn) for m, e, sgn in
              zip(rng.uniform(1, 10, 150), rng.integers(-5, 10, 150), rng.choice([-1, 1], 150))]
    values += [float(f"{m:.6g}") * int(sgn) for m, sgn in zip(rng.uniform(1, 3, 40), rng.choice([-1, 1], 40))]
    values += [0.5, 1.5, 2.5, 2.675, 1.005, 0.125, -0.125, -2.5, 1234.5, 0.0049, -0.004, 0.0, 999.995]
    data, formulas = {}, {}
    for i, v in enumerate(values, start=1):
        data[f"A{i}"] = v
        for j, (fmt, (decimals, scale)) in enumerate(sorted(TEXT_NUMBER_FORMATS.items())):
            col = "BCDEFGHIJKLMN"[j]
            formulas[f"{col}{i}"] = (f'TEXT(A{i},"{fmt}")', _excel_text(v, decimals, scale, "," in fmt))
    return data, formulas


def test_text_of_verified_formats_is_excels(tmp_path):
    data, formulas = _text_grid()

    r = _recalculated(tmp_path, data, formulas)
    kept = {k.cell for k in r.kept}
    wrong = [(cell, text, r.value("S", cell), value) for cell, (text, value) in formulas.items()
             if cell not in kept and r.value("S", cell) != value]
    assert wrong == []
    assert len(kept) < 0.45 * len(formulas)  # a third of the values are below 1: kept, as ties are


def test_text_of_iso_dates_is_the_calendars(tmp_path):
    # from serial 61 (1 March 1900) Excel's serial d is the day 30 December 1899 + d
    rng = np.random.default_rng(5)
    serials = [float(v) for v in rng.uniform(61, 2958465, 150)] + [61.0, 60.5, 0.0, 2958466.0, -1.0]
    data = {f"A{i}": v for i, v in enumerate(serials, start=1)}
    # Excel: day 0 and 29 February 1900 shown as such; past 9999 and below 0 #VALUE! (as in
    # pycel-text.xlsx TextDates!C15 and C21)
    expected = {61.0: "1900-03-01", 60.5: "1900-02-29", 0.0: "1900-01-00", 2958466.0: "#VALUE!", -1.0: "#VALUE!"}
    formulas = {f"B{i}": ('TEXT(A{0},"yyyy-mm-dd")'.format(i),
                          expected.get(v) or (date(1899, 12, 30) + timedelta(days=int(v))).isoformat())
                for i, v in enumerate(serials, start=1)}
    n = len(serials)
    _check(tmp_path, formulas, data, {f"B{k}": "yyyy-mm-dd" for k in range(n - 3, n + 1)})


def test_dates_before_march_1900(tmp_path):
    # Excel's serial 60 is 29 February 1900, serial 0 "0 January 1900"; from 61 (1 March 1900) on
    # both calendars agree. Serial 100 is 9 April 1900; 1 January 1900 (serial 1) a Sunday in
    # Excel. A blank, FALSE and TRUE are serials 0, 0 and 1 (pycel-date-time.xlsx). Computed
    # for a cell or a number; a text read as such a date keeps Excel's value.
    data = {"A1": 0, "A2": 30, "A3": 60, "A4": 100, "A5": 1, "A6": "15", "A7": True, "A8": False}
    formulas = {
        "B1": ("DAY(A1)", 0), "B2": ("DAY(A2)", 30), "B3": ("MONTH(A3)", 2), "B4": ("DAY(A3)", 29),
        "B5": ("YEAR(A1)", 1900), "B6": ("WEEKDAY(A5)", 1), "B7": ("WEEKDAY(A1)", 7), "B8": ("MONTH(A2)", 1),
        "B9": ("DAY(A4)", 9), "B10": ("MONTH(A4)", 4), "B11": ("YEAR(A4)", 1900), "B12": ("WEEKDAY(A4)", 2),
        "B13": ("DAY(A9)", 0), "B14": ("DAY(A7)", 1), "B15": ("YEAR(A8)", 1900), "B16": ("DAY(59.5)", 28),
        "B17": ("DAY(A6)", 15), "B18": ("WEEKDAY(A5,2)", 7),
    }
    _check(tmp_path, formulas, data, {"B17": "text read as a date", "B18": "serial below 61"})


def _excel_1900(d: int) -> tuple[int, int, int, int]:
    """(day, month, year, weekday) of Excel's serial ``d`` < 61 by its documented rule: the
    Gregorian calendar from 1 January 1900 (serial 1), with a 29 February 1900 inserted
    (serial 60) and a day 0; weekdays run on from 1 March 1900 (serial 61), a Thursday."""
    weekday = (date(1900, 3, 1) - timedelta(days=61 - d)).isoweekday() % 7 + 1  # Sunday 1
    if d == 0:
        return 0, 1, 1900, weekday
    if d == 60:
        return 29, 2, 1900, weekday
    day = date(1900, 1, 1) + timedelta(days=d - 1)
    return day.day, day.month, day.year, weekday


def test_every_serial_before_march_1900(tmp_path):
    data = {f"A{d + 1}": d for d in range(61)}
    formulas = {}
    for d in range(61):
        for col, (name, value) in zip("BCDE", zip(("DAY", "MONTH", "YEAR", "WEEKDAY"), _excel_1900(d))):
            formulas[f"{col}{d + 1}"] = (f"{name}(A{d + 1})", value)
    _check(tmp_path, formulas, data)


def test_time_parts_round_to_the_second(tmp_path):
    # 12:00:53.5 is 12:00:54 in Excel's HOUR/MINUTE/SECOND; 23:59:59.6 is the next midnight
    data = {"A1": 0.5 + 53.5 / 86400, "A2": 0.5 + 53.25 / 86400, "A3": (86399.6) / 86400}
    formulas = {
        "B1": ("SECOND(A1)", 54), "B2": ("SECOND(A2)", 53), "B3": ("MINUTE(A2)", 0),
        "B4": ("HOUR(A3)", 0), "B5": ("SECOND(A3)", 0),
    }
    _check(tmp_path, formulas, data, {"B1": "nearest", "B4": "nearest", "B5": "nearest"})


def test_approximate_lookups_outside_excels_rules_keep_excels_value(tmp_path):
    data = {"A1": 1, "A2": 2, "A3": 2, "A4": 2, "A5": 3,  # sorted, 2 repeated
            "B1": 10, "B2": 20, "B3": 30, "B4": 40, "B5": 50,  # sorted, no repeat
            "C1": "a", "C2": "e", "C3": "i", "C4": "o", "C5": "u",
            "D1": 50, "D2": 40, "D3": 30, "D4": 20, "D5": 10}
    formulas = {
        "F1": ("MATCH(2,A1:A5,1)", 4),  # bisection over equal values ends on the last in Excel
        "F2": ("MATCH(35,B1:B5,1)", 3),  # sorted, of the lookup value's type: computed
        "F3": ("VLOOKUP(45,B1:C5,2)", "o"),
        "F4": ("MATCH(TRUE,C1:C5,1)", "#N/A"),  # a logical never matches a text
        "F5": ('LOOKUP("k",C1:C5,B1:B5)', 30),  # texts sorted: computed
        "F6": ("MATCH(35,D1:D5,-1)", 2),  # descending for -1: computed
        "F7": ("MATCH(5,C1:C5,1)", "#N/A"),  # a number among texts
        "F8": ("MATCH(#N/A,B1:B5,1)", "#N/A"),  # an error looked up: both return it
    }
    _check(tmp_path, formulas, data, {"F1": "repeats", "F4": "type", "F7": "type"})


def test_switch_with_a_blank(tmp_path):
    # pycel-logical.xlsx (Excel): a blank is 0 to SWITCH: it matches 0, not FALSE, not ""
    data = {"A1": False, "A3": 0, "B4": 0, "B6": 1}
    formulas = {
        "C1": ('_xlfn.SWITCH(A1,A2,"match")', "#N/A"),  # FALSE against a blank
        "C2": ('_xlfn.SWITCH(A3,A2,"match")', "match"),  # 0 against a blank: computed
        "C3": ('_xlfn.SWITCH(A2,"","match")', "#N/A"),  # a blank against ""
        "C4": ('_xlfn.SWITCH(A2,B4,"match")', "match"),  # a blank against 0: computed
        "C5": ('_xlfn.SWITCH(B6,1,"one",2,"two","other")', "one"),  # no blank: computed
    }
    _check(tmp_path, formulas, data, {"C1": "blank", "C3": "blank"})


def test_linest_over_blanks_and_a_perfect_fit(tmp_path):
    # y = 1, 2, 4 over x = 1, 2, 3: slope Sxy/Sxx = 3/2 by hand. y = x - 1 exactly: Excel's F
    # statistic (row 4) is #NUM! (pycel-stats.xlsx D48). Known y's all blank: #VALUE!
    # (pycel-stats.xlsx LinestArrayExp!C28).
    data = {"A1": 1, "A2": 2, "A3": 4, "B1": 1, "B2": 2, "B3": 3, "D1": 0, "D2": 1, "D3": 2}
    formulas = {
        "E1": ("INDEX(LINEST(A1:A3,B1:B3),1,1)", 1.5),
        "E2": ("INDEX(LINEST(D1:D3,B1:B3,TRUE,TRUE),4,1)", "#NUM!"),
        "E3": ("INDEX(LINEST(C1:C3,B1:B3),1,1)", "#VALUE!"),
        "E4": ("INDEX(LINEST(D1:D3,B1:B3,TRUE,FALSE),1,1)", 1.0),  # no statistics asked: computed
    }
    _check(tmp_path, formulas, data, {"E2": "perfect fit", "E3": "blank"})


def test_approximate_lookups_computed_give_the_documented_answer(tmp_path):
    # Sorted vectors (some with repeats, some with texts) and lookup values of every kind: a
    # cell that is computed must hold the documented answer (MATCH 1: the last value <= x;
    # -1: the last value >= x over a descending vector; #N/A when there is none), found here
    # by a plain loop; a repeat landed on, a type mix or a disorder keeps Excel's value.
    rng = np.random.default_rng(11)
    data, formulas, n = {}, {}, 8
    for k in range(12):
        col = "ABCDEFGHIJKL"[k]
        vector = sorted(rng.choice(np.arange(1, 30), n, replace=k % 3 == 0).tolist())
        if k % 4 == 1:
            vector = [chr(ord("a") + v % 26) for v in vector]
            vector = sorted(set(vector), key=str.lower) + [vector[-1]] * (n - len(set(vector)))
        if k % 4 == 3:
            vector = vector[::-1]
        for i, v in enumerate(vector, start=1):
            data[f"{col}{i}"] = v
        descending = k % 4 == 3
        for j, x in enumerate([0.5, 7, 14.5, 29, 40, "m", True]):
            cell = f"{col}{20 + j}"
            kind = {bool: "b", str: "s"}.get(type(x), "n")
            hits = [i for i, v in enumerate(vector, start=1) if {bool: "b", str: "s"}.get(type(v), "n") == kind
                    and ((v.lower() >= x.lower() if descending else v.lower() <= x.lower()) if kind == "s"
                         else (v >= x if descending else v <= x))]
            text = f'"{x}"' if isinstance(x, str) else str(x).upper()
            expected = hits[-1] if hits else "#N/A"
            formulas[cell] = (f"MATCH({text},{col}1:{col}{n},{-1 if descending else 1})", expected)

    r = _recalculated(tmp_path, data, formulas)
    reasons = {k.cell: k.reason for k in r.kept}
    computed = [cell for cell in formulas if cell not in reasons]
    wrong = [(cell, formulas[cell], r.value("S", cell)) for cell in computed
             if str(r.value("S", cell)) != str(formulas[cell][1]) and r.value("S", cell) != formulas[cell][1]]
    assert wrong == []
    assert len(computed) > len(formulas) // 3


@pytest.mark.parametrize("values, x, descending, diverges", [
    ([1, 2, 3, 4], 2.5, False, False),  # sorted, one type, 2 landed on once
    ([1, None, 3, 4], 2.5, False, True),  # a blank among the values: IronCalc reads it as 0 on its way
    ([-5, -4, None, -3, -2], -2.5, False, True),  # IronCalc landed on -4 (2), Excel and LibreOffice 4
    ([5, 4, None, 3, 2], 2.5, True, True),  # descending: IronCalc 2, LibreOffice 4
    ([1, 2, 3, None], 2.5, False, False),  # blanks after the values: landing on one is the blank check's
    ([-2, -1, None, 1, 2], 1.5, False, False),  # sorted with the blank as 0: IronCalc searches as Excel
    ([1, 3, 2, 4], 2.5, False, True),  # not sorted
    ([1, 2, 2, 3], 2, False, True),  # lands on a repeated value
    ([1, 2, 2, 3], 3.5, False, False),  # lands on 3, once
    ([1, 2, 2, 3], 0.5, False, False),  # below all: #N/A in both
    ([4, 3, 2, 1], 2.5, True, False),  # descending for -1
    ([0, 1, 2, 3, 4], 0.5, True, True),  # ascending for -1 (pycel-lookup: Excel #N/A, IronCalc 5)
    (["a", "e", "i"], True, False, True),  # a logical among texts (Excel #N/A, IronCalc the last)
    (["a", "E", "i"], "f", False, False),  # texts compare case-blind
    (["a", "b-c", "d"], "c", False, True),  # punctuation: Excel's collation is not IronCalc's order
    ([1, "x", 3], 2, False, True),  # a text among numbers
    ([1, ErrorValue("#N/A"), 3], 2, False, True),  # an error among numbers
    ([1, 2, 3], ErrorValue("#VALUE!"), False, False),  # an error looked up: returned by both
    ([0, 1, 2], None, False, False),  # a blank lookup value is 0
])
def test_lookup_diverges(values, x, descending, diverges):
    assert lookup_diverges(values, x, descending) is diverges


def test_date_parts_over_a_range_with_one_early_serial_keep_excels_value(tmp_path):
    # {=SUM(DAY(A2:A3))} over 200 and 30: Excel 18 + 30 = 48 (DAY(30) is 30 January 1900);
    # the check asked AND(range >= 0, range < 61) of the whole range, FALSE as soon as one
    # element is 61 or more, and the cell was computed as 47 (found by an adversarial review)
    def build(wb):
        s = wb.add_worksheet("S")
        s.write_number("A2", 200)
        s.write_number("A3", 30)
        s.write_array_formula("B2:B2", "{=SUM(DAY(A2:A3))}", None, 48)
        s.write_array_formula("B3:B3", "{=SUM(MONTH(A2:A3))}", None, 8)  # July (200) + January
        s.write_formula("B4", "=SUMPRODUCT(DAY(A2:A3))", None, 48)

    r = recalculate(book(tmp_path / "d.xlsx", build))
    assert {k.cell for k in r.kept} == {"B2", "B3", "B4"}
    assert [r.value("S", c) for c in ("B2", "B3", "B4")] == [48, 8, 48]
    assert date(1900, 1, 1) + timedelta(days=200 - 2) == date(1900, 7, 18)  # serial 200: 18 July (Excel's extra day)


def test_other_date_functions_before_march_1900_keep_excels_value(tmp_path):
    # IronCalc's day 1 is 31 December 1899 and it has no 29 February 1900: DATE(1900,1,15)
    # gave 16 (Excel 15), EOMONTH(10,0) 32 (Excel 31, the last day of January 1900),
    # YEARFRAC(30,100) 0.19444 (Excel's 30/360 basis: 69/360), and DATE of a blank cell's parts
    # gave 1 (Excel 0) - found by an adversarial review.  From 1 March 1900 (serial 61) the
    # calendars agree: computed.  WEEKDAY(x,) is return type 0 in Excel (#NUM!), not type 1:
    # kept, never rewritten as type 1.
    data = {"A2": 30}
    formulas = {
        "B1": ("DATE(1900,1,15)", 15), "B2": ("EOMONTH(10,0)", 31), "B3": ("YEARFRAC(30,100)", 69 / 360),
        "B4": ("DATE(YEAR(A1),MONTH(A1),DAY(A1))", 0), "B5": ("DATE(1900,3,1)", 61),
        "B6": ("DATE(2024,2,29)", (date(2024, 2, 29) - date(1899, 12, 30)).days),
        "B7": ("EOMONTH(45000,1)", (date(2023, 4, 30) - date(1899, 12, 30)).days),
        "B8": ("WEEKDAY(A2,)", "#NUM!"),
    }
    _check(tmp_path, formulas, data, {"B1": "before 1 March 1900", "B2": "before 1 March 1900",
                                      "B3": "before 1 March 1900", "B4": "before 1 March 1900",
                                      "B8": "serial below 61"})
