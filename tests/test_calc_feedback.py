"""xlmvar cells in the headless calculator that read native cells fed by other xlmvar cells.

Each book chains xlmvar -> native -> xlmvar: the native cell's value depends on an xlmvar
result, so the calculator computes in rounds.  Every expected figure is the closed form
``z sqrt(x' S x)`` (95%, one period) with the positions the chain gives in Excel, computed
here with numpy.  An adversarial review found each of these computed from the first round's
values - silently, exit status 0 - before the fix.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pytest
import xlsxwriter

from xlmvar.workbook.calc import recalculate

Z = NormalDist().inv_cdf(0.95)
COV = np.cov(np.random.default_rng(1).standard_normal((50, 3)).T * 0.01)
X = np.array([100.0, 200.0, 300.0])


def _var(x) -> float:
    x = np.asarray(x, dtype=float)
    return Z * math.sqrt(x @ COV @ x)


#: A chain xlmvar -> native -> xlmvar: a book with it needs rounds.
CHAIN = {"F1": "=PORTVAR(B1:B3,A11:C13)", "D1": "=IFERROR(F1*100,1)", "D2": 200.0, "D3": 300.0,
         "G1": "=PORTVAR(D1:D3,A11:C13)"}


def _book(tmp_path, formulas: dict, spills: dict | None = None, extra=None):
    """A sheet "Risk" with the covariance in A11:C13, positions in B1:B3, ``formulas`` (a
    number, a formula, or ``(formula, Excel's cached value)``) and the dynamic arrays
    ``spills`` (stored range -> formula); ``extra(wb)`` adds sheets or names."""
    path = tmp_path / "feedback.xlsx"
    wb = xlsxwriter.Workbook(str(path), {"use_future_functions": True})
    ws = wb.add_worksheet("Risk")
    if extra is not None:
        extra(wb)
    for i, row in enumerate(COV):
        ws.write_row(10 + i, 0, [float(v) for v in row])
    for i, v in enumerate(X):
        ws.write_number(i, 1, float(v))
    for cell, formula in formulas.items():
        if isinstance(formula, float):
            ws.write_number(cell, formula)
        elif isinstance(formula, tuple):  # (formula, Excel's cached value)
            ws.write_formula(cell, *formula[:1], None, formula[1])
        else:
            ws.write_formula(cell, formula, None, 0)
    for where, formula in (spills or {}).items():
        ws.write_dynamic_array_formula(where, formula, None, 0)
    wb.close()
    return path


def _recalculated(tmp_path, formulas: dict, spills: dict | None = None, partly: tuple = (), kept: tuple = ()):
    """:func:`_book` recalculated, without errors; ``partly``: the anchors of the spills whose
    result is larger than the range the file stores (reported as partly written); ``kept``:
    the cells that keep Excel's cached value."""
    result = recalculate(_book(tmp_path, formulas, spills))
    assert result.errors == []
    assert sorted((k.cell, k.what) for k in result.kept) == sorted(
        [(cell, "only partly written") for cell in partly] + [(cell, "kept its cached value") for cell in kept])
    return result


@pytest.mark.parametrize("draw", ["RAND()", "TODAY()", "NOW()"])
def test_a_volatile_native_cell_between_two_xlmvar_cells_reads_the_first_s_result(tmp_path, draw):
    # the native cell was frozen at its value before F1 was computed (IFERROR's 500, or
    # #NAME? without it); its draw alone is made constant now
    result = _recalculated(tmp_path, {
        "F1": "=PORTVAR(B1:B3,A11:C13)",
        "D1": f"=IFERROR(F1*1000,500)+0*{draw}",
        "D2": 200.0,
        "D3": 300.0,
        "G1": "=PORTVAR(D1:D3,A11:C13)",
    })
    f1 = _var(X)
    assert result.value("Risk", "D1") == pytest.approx(1000 * f1, rel=1e-12)
    assert result.value("Risk", "G1") == pytest.approx(_var([1000 * f1, 200.0, 300.0]), rel=1e-12)


def test_a_nested_call_reads_its_inner_call_s_last_round(tmp_path):
    # the inner call's results (on the sheet of blocks) were read once, as constants
    result = _recalculated(tmp_path, {
        "F1": "=PORTVAR(B1:B3,A11:C13)",
        "D1": "=IFERROR(F1*100,1)",
        "D2": 200.0,
        "D3": 300.0,
        "G1": "=SUM(COMPONENTVAR(D1:D3,A11:C13))",
        "G2": "=PORTVAR(COMPONENTVAR(D1:D3,A11:C13),A11:C13)",
    })
    d = np.array([100 * _var(X), 200.0, 300.0])
    component = d * (COV @ d) / math.sqrt(d @ COV @ d) * Z  # Euler: they sum to the VaR
    assert result.value("Risk", "G1") == pytest.approx(_var(d), rel=1e-12)
    assert result.value("Risk", "G2") == pytest.approx(_var(component), rel=1e-12)


@pytest.mark.parametrize("expression", ["D1:D3+0*RAND()", "D1:D3*(NOW()>0)"])
def test_a_volatile_expression_argument_reads_the_last_round(tmp_path, expression):
    # the whole expression's value was kept from the first round, not only its draw
    result = _recalculated(tmp_path, {
        "F1": "=PORTVAR(B1:B3,A11:C13)",
        "D1": "=IFERROR(F1*100,1)",
        "D2": 200.0,
        "D3": 300.0,
        "G1": f"=PORTVAR({expression},A11:C13)",
    })
    assert result.value("Risk", "G1") == pytest.approx(_var([100 * _var(X), 200.0, 300.0]), rel=1e-12)


@pytest.mark.parametrize("column", ["E:E", "$E:$E", "E:G"])
def test_an_expression_argument_reading_a_whole_column_is_evaluated_past_it(tmp_path, column):
    # its scratch cell landed inside the column it reads (a circular reference: #REF!)
    result = _recalculated(tmp_path, {"C1": f'=PORTVAR(B1:B3*COUNTIF({column},"")/COUNTIF({column},""),A11:C13)'})
    assert result.value("Risk", "C1") == pytest.approx(_var(X), rel=1e-12)


def test_an_xlmvar_cell_reads_a_native_spill_past_its_stored_range(tmp_path):
    # B1's spill grew past the one cell the file stores (its input is F1's result): G1 read
    # B2:B4 once, as constants, before F1 was computed
    result = _recalculated(tmp_path, {
        "F1": "=PORTVAR(B1:B3,A11:C13)",
        "G1": "=PORTVAR(E2:E4,A11:C13)",
    }, {"E1:E1": "=SEQUENCE(4)*IFERROR(F1,1)"}, partly=("E1",))
    assert result.value("Risk", "G1") == pytest.approx(_var(_var(X) * np.array([2.0, 3.0, 4.0])), rel=1e-12)


def test_an_xlmvar_spill_larger_than_its_stored_range_reaches_its_readers(tmp_path):
    # J1's result (3 rows) was cut to the 2 rows the file stores, so J3 read blank: SUM gave
    # a wrong total silently and PORTVAR refused a blank cell
    result = _recalculated(tmp_path, {
        "F1": "=PORTVAR(J1:J3,A11:C13)",
        "F2": "=SUM(J1:J3)",
    }, {"J1:J2": "=COMPONENTVAR(B1:B3,A11:C13)"}, partly=("J1",))
    component = Z * X * (COV @ X) / math.sqrt(X @ COV @ X)
    assert result.value("Risk", "F2") == pytest.approx(_var(X), rel=1e-12)  # Euler: they sum to the VaR
    assert result.value("Risk", "F1") == pytest.approx(_var(component), rel=1e-12)


def test_an_xlmvar_cell_reads_excel_s_value_where_an_error_of_ironcalc_s_own_was_swallowed(tmp_path):
    # IronCalc lacks PRODUCT of an array constant (#N/IMPL!); IFERROR made it 1, and PORTVAR
    # computed from that: the cell now keeps Excel's 100, and PORTVAR reads it
    result = _recalculated(tmp_path, {
        "D1": ("=IFERROR(PRODUCT({1,2,50}),1)", 100.0),
        "D2": 200.0,
        "D3": 300.0,
        "G1": "=PORTVAR(D1:D3,A11:C13)",
    }, kept=("D1",))
    assert result.value("Risk", "D1") == 100.0
    assert result.value("Risk", "G1") == pytest.approx(_var([100.0, 200.0, 300.0]), rel=1e-12)


def test_randbetween_over_an_xlmvar_result_reads_it_in_every_round(tmp_path):
    # its bounds read a VaR: the draw is made a constant, the bounds read again each round
    # (a second review found it drawn from the #NAME? the cell showed before PORTVAR ran)
    result = _recalculated(tmp_path, {
        "F1": "=PORTVAR(B1:B3,A11:C13)",
        "D1": "=RANDBETWEEN(ROUND(F1*100,0),ROUND(F1*100,0))",  # one integer: a draw with one outcome
        "D2": 200.0,
        "D3": 300.0,
        "G1": "=PORTVAR(D1:D3,A11:C13)",
    })
    d1 = round(_var(X) * 100)
    assert result.value("Risk", "D1") == d1
    assert result.value("Risk", "G1") == pytest.approx(_var([d1, 200.0, 300.0]), rel=1e-12)


def test_randarray_over_an_xlmvar_result_keeps_excel_s_value(tmp_path):
    # RANDARRAY's draws cannot be made constants: its value was frozen before PORTVAR ran
    # (#NAME?, or IFERROR's fallback); it keeps Excel's value, and the report says why
    result = _recalculated(tmp_path, {
        "F1": "=PORTVAR(B1:B3,A11:C13)",
        "D1": ("=IFERROR(F1,0)*2+0*SUM(_xlfn.RANDARRAY(2))", 2 * _var(X)),
        "D2": 200.0,
        "D3": 300.0,
        "G1": "=PORTVAR(D1:D3,A11:C13)",
    }, kept=("D1",))
    assert result.value("Risk", "G1") == pytest.approx(_var([2 * _var(X), 200.0, 300.0]), rel=1e-12)
    (reason,) = [k.reason for k in result.kept]
    assert "RANDARRAY" in reason


def test_draws_are_made_constants_without_evaluating_the_book_for_each(tmp_path, monkeypatch):
    # each draw went through an evaluation of the book (two, in fact): 6,000 RAND cells
    # beside an xlmvar chain took 33 s against 0.8 s (a second review); RAND is drawn in
    # Python, NOW and TODAY read once per run
    from xlmvar.workbook import _core_ironcalc

    calls = []
    real = _core_ironcalc._Run._expression
    monkeypatch.setattr(_core_ironcalc._Run, "_expression", lambda self, *a: calls.append(a) or real(self, *a))
    formulas = dict(CHAIN)
    formulas.update({f"J{r}": "=NORM.S.INV(RAND())*0.01+0*NOW()+0*TODAY()" for r in range(1, 201)})
    result = _recalculated(tmp_path, formulas)
    assert result.value("Risk", "G1") == pytest.approx(_var([100 * _var(X), 200.0, 300.0]), rel=1e-12)
    assert len(calls) <= 2  # NOW() and TODAY(), once each


def test_randbetween_over_an_array_is_not_one_draw_copied(tmp_path):
    # RANDBETWEEN({1;1;1},...) draws each element on its own in Excel; one constant draw put
    # in its place gave three equal numbers (a third review): it keeps Excel's values
    formulas = {**CHAIN, "J1": ("=SUM(RANDBETWEEN({1,1,1},{1000000,1000000,1000000}))", 1234567.0)}
    result = _recalculated(tmp_path, formulas, kept=("J1",))
    assert result.value("Risk", "J1") == 1234567.0


@pytest.mark.parametrize("formula, check", [
    ("=RANDBETWEEN(,5)", lambda v: v in {0.0, 1.0, 2.0, 3.0, 4.0, 5.0}),  # an omitted bound is 0
    ("=RANDBETWEEN(2.5,3.5)", lambda v: v == 3.0),  # ceil(2.5) = floor(3.5) = 3
    ("=RANDBETWEEN(-5.5,-5.1)", lambda v: str(v) == "#NUM!"),  # ceil -5 > floor -6
    ("=RANDBETWEEN(1/0,2)", lambda v: str(v) == "#DIV/0!"),
    ('=RANDBETWEEN(1/0,"x")', lambda v: str(v) == "#DIV/0!"),  # the first bound's error, as in Excel
    ('=RANDBETWEEN("3","3")', lambda v: v == 3.0),
    ("='RAND(1)'!A1+1", lambda v: v == 8.0),  # a sheet's name is no call
])
def test_randbetween_made_a_constant_draw_has_excel_s_semantics(tmp_path, formula, check):
    extra = lambda wb: wb.add_worksheet("RAND(1)").write_number("A1", 7.0)  # noqa: E731
    result = recalculate(_book(tmp_path, {**CHAIN, "J1": formula}, extra=extra))
    assert result.kept == []
    assert check(result.value("Risk", "J1")), result.value("Risk", "J1")


@pytest.mark.parametrize("positions", ["RANDBETWEEN({1;2;3},{1;2;3})", "RANDBETWEEN(B1:B3,B1:B3)"])
def test_draws_over_an_array_in_an_xlmvar_argument_keep_excel_s_value(tmp_path, positions):
    # Excel draws each element; IronCalc shows #N/IMPL! or #VALUE! for these, and a constant
    # draw copied to every element is no draw of Excel's (a fourth review): kept, reported
    result = _recalculated(tmp_path, {"J1": (f"=PORTVAR({positions},A11:C13)", 1.35)}, kept=("J1",))
    assert result.value("Risk", "J1") == 1.35


def test_a_name_shaped_like_a_cell_is_no_one_number_bound(tmp_path):
    # XFE1 (past column XFD) is a legal name; holding B1:B3 it made RANDBETWEEN an array,
    # and one draw was copied to its three elements (a fourth review): kept
    path = _book(tmp_path, CHAIN, {"J1:J3": "=RANDBETWEEN(XFE1*0,XFE1*0+1000000)"},
                 extra=lambda wb: wb.define_name("XFE1", "=Risk!$B$1:$B$3"))
    result = recalculate(path)
    assert [k.cell for k in result.kept] == ["J1"]


def test_a_sheet_name_with_a_double_quote_does_not_hide_a_draw(tmp_path):
    # strings were emptied before quoted sheet names, so 'a"b'!A1&"x" hid the RAND() after
    # it: redrawn every round, the chain never settled (a fourth review)
    path = _book(tmp_path, {
        "F1": "=PORTVAR(B1:B3,A11:C13)",
        "J1": '=LEN(\'a"b\'!A1&"x")+F1*100*(1+RAND())+0*LEN("y")',
        "J2": 200.0,
        "J3": 300.0,
        "K1": "=PORTVAR(J1:J3,A11:C13)",
    }, extra=lambda wb: wb.add_worksheet('a"b').write_number("A1", 7.0))
    result = recalculate(path)
    assert result.errors == [] and result.kept == []
    j1 = result.value("Risk", "J1")  # one draw, held: K1 is computed from the value J1 shows
    assert 2 + 100 * _var(X) <= j1 < 2 + 200 * _var(X)
    assert result.value("Risk", "K1") == pytest.approx(_var([j1, 200.0, 300.0]), rel=1e-12)
