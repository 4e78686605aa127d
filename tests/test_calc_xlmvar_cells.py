"""xlmvar cells in the headless calculator: order, context and shape, against closed forms.

Each case was found by an adversarial review of `xlmvar calc` and gave a wrong value without
a word (or hung); each expected value is a closed form (numpy/scipy) or a hand reasoning
about what Excel shows, never the calculator's own output.
"""

import numpy as np
import openpyxl
import pytest
import xlsxwriter
from _hostile import run_cli
from scipy.stats import norm

from xlmvar.workbook.calc import recalculate

COV = np.array([[0.04, 0.01, 0.0], [0.01, 0.09, 0.02], [0.0, 0.02, 0.16]])
X = np.array([100.0, 200.0, 300.0])


def _vol(x, cov=COV):
    x = np.asarray(x, dtype=float)
    return float(np.sqrt(x @ cov @ x))


def _book(path, build, sheet="S"):
    """Positions B1:B3 = 100, 200, 300 and covariance C1:E3 on ``sheet``, then ``build(wb, ws)``."""
    wb = xlsxwriter.Workbook(str(path))
    ws = wb.add_worksheet(sheet)
    ws.write_column("B1", X)
    for i, row in enumerate(COV):
        ws.write_row(i, 2, row)
    build(wb, ws)
    wb.close()
    return path


def _write_correlation(ws, col: int) -> None:
    """COV's volatilities in column ``col`` (rows 1-3) and its correlations beside them, the
    inputs of ``COVFROMCORR`` that give COV back."""
    vol = np.sqrt(np.diag(COV))
    ws.write_column(0, col, vol)
    for i, row in enumerate(COV / np.outer(vol, vol)):
        ws.write_row(i, col + 1, row)


def test_sheet_and_name_in_any_script_neither_hang_nor_lose_the_order(tmp_path):
    # a word starting with a letter outside ASCII (Übersicht, Лист2) looped for ever while the
    # formula was taken apart; Données!B1 was not seen as a reference, so Risk!A1 ran before
    # the covariance it reads was computed (and IFERROR made that 0)
    def build(wb, ws):
        ws.write_array_formula("G1:I3", "{=IFERROR(COVFROMCORR(K1:K3,L1:N3),0)}")
        _write_correlation(ws, 10)  # K1:K3, L1:N3
        wb.define_name("Позиции", "='Données'!$B$1:$B$3")
        risk = wb.add_worksheet("Risk")
        risk.write_formula("A1", "=PORTVOL(Données!B1:B3,Données!G1:I3)")
        risk.write_formula("A2", "=PORTVOL(Позиции,Données!C1:E3)")

    path = _book(tmp_path / "unicode.xlsx", build, sheet="Données")
    done = run_cli("calc", path, "-o", tmp_path / "out.xlsx", timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    risk = openpyxl.load_workbook(tmp_path / "out.xlsx", data_only=True)["Risk"]
    assert [risk["A1"].value, risk["A2"].value] == pytest.approx([_vol(X), _vol(X)], rel=1e-12)


def test_a_cell_waits_for_the_xlmvar_cells_its_native_part_reads(tmp_path):
    # A1 = IFERROR(PORTVOL(...)/A9, 1): only the call's arguments were ordered, so A3 (which
    # reads A1) ran before A9 was computed and took IFERROR's fallback
    def build(wb, ws):
        ws.write_formula("A1", "=IFERROR(PORTVOL(B1:B3,C1:E3)/A9,1)")
        ws.write_column("A2", [0.5, 0.25])
        ws.write_formula("F1", "=PORTVOL(A1:A3,C1:E3)")
        ws.write_formula("A9", "=PORTVOL(B1:B3*2,G1:I3)")  # after G1:I3, so a level after A1
        ws.write_array_formula("G1:I3", "{=COVFROMCORR(K1:K3,L1:N3)}")
        _write_correlation(ws, 10)  # K1:K3, L1:N3

    r = recalculate(_book(tmp_path / "order.xlsx", build))
    a1 = _vol(X) / _vol(2 * X)
    assert r.value("S", "A1") == pytest.approx(a1, rel=1e-12)  # 0.5 by homogeneity
    assert r.value("S", "F1") == pytest.approx(_vol([a1, 0.5, 0.25]), rel=1e-12)


def test_braces_in_the_users_formula_are_not_taken_for_a_call(tmp_path):
    # calls taken out of a formula were marked {0}, {1}...: SUM({0}) and "Desk {0}" were
    # replaced by call 0's result
    def build(wb, ws):
        ws.write_formula("H1", "=PORTVOL(B1:B3,C1:E3)+SUM({0})")
        ws.write_formula("H2", '="Desk {0}: "&ROUND(PORTVOL(B1:B3,C1:E3),0)')

    r = recalculate(_book(tmp_path / "braces.xlsx", build))
    assert r.value("S", "H1") == pytest.approx(_vol(X), rel=1e-12)
    assert r.value("S", "H2") == f"Desk {{0}}: {round(_vol(X))}"


def test_a_dynamic_array_smaller_than_its_stored_range_leaves_blanks(tmp_path):
    # the book had three positions when Excel saved it; now the call returns one row: Excel
    # shows it in the anchor and blanks below (the result was repeated down the range)
    def build(wb, ws):
        ws.write_dynamic_array_formula("H1:H3", "=COMPONENTVAR(B1:B1,C1:C1,0.99)")
        ws.write_dynamic_array_formula("J1:J3", "=COMPONENTVAR(B1:B3,C1:E3,0.99)*1")
        ws.write_dynamic_array_formula("L1:L3", "=COMPONENTVAR(B1:B2,C1:D2,0.99)*1")
        ws.write_formula("N1", "=SUM(H1:H3)")

    r = recalculate(_book(tmp_path / "shrink.xlsx", build))
    z = norm.ppf(0.99)
    one = z * 100 * 0.2  # one position of 100 with a volatility of 0.2
    assert [r.value("S", f"H{i}") for i in (1, 2, 3)] == [pytest.approx(one, rel=1e-12), None, None]
    assert r.value("S", "N1") == pytest.approx(one, rel=1e-12)
    two, cov2 = X[:2], COV[:2, :2]
    component = z * two * (cov2 @ two) / _vol(two, cov2)
    assert [r.value("S", f"L{i}") for i in (1, 2)] == pytest.approx(component, rel=1e-12)
    assert r.value("S", "L3") is None  # a formula around the call spills, blank beyond
    assert sum(r.value("S", f"J{i}") for i in (1, 2, 3)) == pytest.approx(z * _vol(X), rel=1e-12)  # Euler


def test_a_cycle_of_xlmvar_cells_is_an_error_naming_it(tmp_path):
    # A1 reads D1:E2 whose array formula reads A1: it was computed once, in some order
    def build(wb, ws):
        ws.write_formula("H1", "=IFERROR(PORTVOL(B1:B2,J1:K2),0)")
        ws.write_column("H2", [0.3])
        ws.write_array_formula("J1:K2", "{=COVFROMCORR(H1:H2,C1:D2)}")
        ws.write_formula("H5", "=PORTVOL(H5:H6,C1:D2)")  # reads itself

    r = recalculate(_book(tmp_path / "cycle.xlsx", build))
    errors = {e.cell: e for e in r.errors}
    assert {errors[c].error for c in ("H1", "J1", "H5")} == {"#REF!"}, errors
    assert str(r.value("S", "K2")) == "#REF!"  # the whole array range
    assert "circular reference S!H1 -> S!J1 -> S!H1" in errors["H1"].reason
    assert "circular reference S!H5 -> S!H5" in errors["H5"].reason


def test_an_expression_argument_means_what_it_means_in_its_cell(tmp_path):
    # expression arguments were evaluated on a scratch sheet: a sheet-local name fell back to
    # the global one, INDIRECT("B1:B3") and ROW() read the scratch sheet, and a reference
    # returned by OFFSET/INDEX/IF passed a blank cell as 0
    def build(wb, ws):
        ws.write_column("G1", [300.0, 200.0])  # desk 2's positions in G1:G3, G3 blank
        wb.define_name("Positions", "=S!$B$1:$B$3")
        other = wb.add_worksheet("Other")
        other.write_column("B1", [1.0, 2.0, 3.0])
        other.write_formula("A1", "=PORTVOL(Positions*1,S!C1:E3)")
        wb.define_name("Other!Positions", "=Other!$B$1:$B$3")
        ws.write_formula("H1", "=PORTVOL(INDIRECT(\"B1:B3\"),C1:E3)")
        ws.write_formula("H2", "=PORTVOL(INDEX($A$1:$B$3,0,ROW()),C1:E3)")  # row 2: column B
        ws.write_formula("H3", "=PORTVOL(OFFSET(G1,0,0,3,1),C1:E3)")
        ws.write_formula("H4", "=PORTVOL(IF(TRUE,G1:G3),C1:E3)")
        ws.write_formula("H5", "=PORTVOL(G1:G3*1,C1:E3)")  # a value: Excel passes 0 for G3

    r = recalculate(_book(tmp_path / "context.xlsx", build))
    assert r.value("Other", "A1") == pytest.approx(_vol([1.0, 2.0, 3.0]), rel=1e-12)
    assert r.value("S", "H1") == pytest.approx(_vol(X), rel=1e-12)
    assert r.value("S", "H2") == pytest.approx(_vol(X), rel=1e-12)
    errors = {e.cell: e for e in r.errors}
    for cell in ("H3", "H4"):
        assert errors[cell].error == "#VALUE!" and "item 3 holds a blank cell" in errors[cell].reason, errors
    assert r.value("S", "H5") == pytest.approx(_vol([300.0, 200.0, 0.0]), rel=1e-12)


def test_a_volatile_input_is_drawn_once_per_run(tmp_path):
    # each round of xlmvar calls evaluated the book again; RANDBETWEEN's new seed changed the
    # Monte Carlo VaR every round and the cell became a false "never settle" error
    def build(wb, ws):
        ws.write_formula("F1", "=B1*1")
        ws.write_formula("F2", "=B2*1")
        ws.write_formula("F3", "=B3*(1+RAND()/1e9)")
        ws.write_formula("H1", '=PORTVAR(B1:B3,C1:E3,0.99,1,"montecarlo",,2000,,RANDBETWEEN(1,1000000))')
        ws.write_formula("H2", "=PORTVOL(F1:F3,C1:E3)")  # reads native formulas: rounds repeat

    r = recalculate(_book(tmp_path / "volatile.xlsx", build))
    assert isinstance(r.value("S", "H1"), float)
    assert r.value("S", "H2") == pytest.approx(_vol(X), rel=1e-8)


def test_a_native_spill_past_its_stored_range_is_read_as_it_is_now(tmp_path):
    # F1 spills four cells where the file stored one; PORTVOL(F2:F4) read them as the blank
    # constants they were in the file
    def build(wb, ws):
        ws.write_dynamic_array_formula("F1:F1", '=VSTACK("Positions",B1:B3*2)')
        ws.write_formula("H1", "=PORTVOL(F2:F4,C1:E3)")

    r = recalculate(_book(tmp_path / "spill.xlsx", build))
    assert r.value("S", "H1") == pytest.approx(_vol(2 * X), rel=1e-12)


def test_a_dynamic_scalar_around_an_array_call_is_not_said_to_overflow(tmp_path, capsys):
    from xlmvar.cli import main

    def build(wb, ws):
        ws.write_dynamic_array_formula("H1:H1", "=SUM(COMPONENTVAR(B1:B3,C1:E3,0.99))")

    path = _book(tmp_path / "scalar.xlsx", build)
    assert main(["calc", str(path), "-o", str(tmp_path / "out.xlsx")]) == 0, capsys.readouterr().out
    assert recalculate(path).value("S", "H1") == pytest.approx(norm.ppf(0.99) * _vol(X), rel=1e-12)  # Euler


def test_a_name_local_to_another_sheet_is_read_and_ordered(tmp_path):
    # Data!Cov (a name local to Data) was neither resolved nor seen as a dependency: the
    # call ran before the covariance and read IronCalc's #NAME? for it
    def build(wb, ws):
        ws.write_array_formula("G1:I3", "{=COVFROMCORR(K1:K3,L1:N3)}")
        _write_correlation(ws, 10)  # K1:K3, L1:N3
        wb.define_name("Data!Cov", "=Data!$G$1:$I$3")
        wb.add_worksheet("Risk").write_formula("A1", "=PORTVOL(Data!B1:B3,Data!Cov)")

    r = recalculate(_book(tmp_path / "local.xlsx", build, sheet="Data"))
    assert r.value("Risk", "A1") == pytest.approx(_vol(X), rel=1e-12)


def test_a_reference_computed_by_indirect_or_offset_waits_for_its_cell(tmp_path):
    # H5's value reaches H6 and H7 through a native cell and INDIRECT/OFFSET, which the
    # order cannot see: H6/H7 ran first and read IronCalc's #NAME? or IFERROR's fallback
    def build(wb, ws):
        ws.write_formula("H5", "=PORTVOL(B1,C1)")  # 100 with a variance of 0.04: 20
        ws.write_formula("J1", "=IFERROR(H5*2,0)")
        ws.write_formula("H6", '=PORTVOL(INDIRECT("J1"),1)')
        ws.write_formula("H7", "=PORTVOL(IFERROR(OFFSET(A1,4,7),0)+1,1)")

    r = recalculate(_book(tmp_path / "computed.xlsx", build))
    assert [r.value("S", c) for c in ("H5", "H6", "H7")] == pytest.approx([20.0, 40.0, 21.0], rel=1e-12)


def test_random_draws_are_the_same_everywhere_in_one_run(tmp_path):
    # RAND in the native part of an xlmvar cell was drawn again at every evaluation (and a
    # cell reading it never settled), RAND behind INDIRECT again at every argument read
    def build(wb, ws):
        ws.write_formula("H1", "=PORTVOL(B1,1)*RAND()")
        ws.write_formula("H2", "=PORTVOL(H1,1)-H1")
        ws.write_formula("J1", "=RAND()")
        ws.write_formula("H3", '=PORTVOL(INDIRECT("J1"),1)-J1')
        ws.write_formula("J2", "=B2*1")
        ws.write_formula("H4", "=PORTVOL(J2,1)")  # over a native formula: rounds repeat

    r = recalculate(_book(tmp_path / "draws.xlsx", build))
    assert 0 <= r.value("S", "H1") <= 100
    assert r.value("S", "H2") == 0 and r.value("S", "H3") == 0  # |x| - x for x >= 0
    assert r.value("S", "H4") == pytest.approx(200.0, rel=1e-12)


def test_an_argument_that_means_something_else_outside_its_cell_is_refused(tmp_path):
    def build(wb, ws):
        ws.write("G5", 0.99)
        ws.write_formula("H5", '=PORTVAR(B1,C1,INDIRECT("RC[-1]",FALSE))')  # G5 from H5, not from elsewhere

    r = recalculate(_book(tmp_path / "r1c1.xlsx", build))
    errors = {e.cell: e for e in r.errors}
    assert errors["H5"].error == "#VALUE!" and 'INDIRECT("RC[-1]",FALSE) apart from its cell' in errors["H5"].reason


def test_a_legacy_cell_around_an_array_call_shows_its_top_left(tmp_path):
    # =COVFROMCORR(...)*1 in one cell (not an array formula): Excel shows the top-left value
    # and nothing beside it; it spilled into H5:J7 (and showed #SPILL! where H6 was taken)
    def build(wb, ws):
        _write_correlation(ws, 11)  # L1:L3, M1:O3
        ws.write_formula("H5", "=COVFROMCORR(L1:L3,M1:O3)*1")
        ws.write_formula("H9", "=COVFROMCORR(L1:L3,M1:O3)*1")
        ws.write("H10", 7)
        ws.write_formula("H12", "=COUNT(H5:J7)")

    r = recalculate(_book(tmp_path / "legacy.xlsx", build))
    assert [r.value("S", c) for c in ("H5", "H9", "H12")] == pytest.approx([COV[0, 0], COV[0, 0], 1.0], rel=1e-12)


def test_a_name_defined_through_a_loop_of_names_is_an_error_not_a_refusal(tmp_path):
    def build(wb, ws):
        wb.define_name("NA", "=NB")
        wb.define_name("NB", "=NA")
        ws.write_formula("H1", "=PORTVOL(NA,1)")

    r = recalculate(_book(tmp_path / "loop.xlsx", build))  # raised RecursionError: the book refused
    assert {e.cell: e.error for e in r.errors}["H1"] == "#NAME?"


def test_an_expression_argument_is_evaluated_clear_of_what_it_reads(tmp_path):
    # the scratch cell sat inside a generous named range the expression reads (#CIRC!), past
    # a lookup check's probes near column XFD (#SPILL! for a wide result), and IronCalc could
    # not parse a name local to another sheet inside the expression (#ERROR!)
    import xlsxwriter.utility as xl

    n = 70

    def build(wb, ws):
        ws.write_row("G1", ["x", "y"])
        wb.define_name("Data", "=S!$G$1:$Z$500")  # past every filled cell of S
        ws.write_formula("A11", '=PORTVOL(COUNTIF(Data,"y"),1)')
        for r, v in zip(range(3, 9), [1, 2, None, 4, 5, 6]):  # a blank K5: a probe for the MATCH
            if v is not None:
                ws.write(f"K{r}", v)
        ws.write_formula("A12", "=MATCH(4.5,K3:K8)")
        cov, positions = wb.add_worksheet("C"), wb.add_worksheet("P")
        for j in range(n):
            positions.write(0, 1 + j, j + 1)  # P!B1:BS1 = 1..70
            cov.write_row(j, 0, 0.0004 * (np.arange(n) == j))  # 0.0004 I
        wide = f"P!B1:{xl.xl_col_to_name(n)}1"
        ws.write_formula("A13", f"=PORTVOL({wide}*1,C!A1:{xl.xl_col_to_name(n - 1)}{n})")
        wb.define_name("C!Var", "=C!$A$1")
        ws.write_formula("A14", "=PORTVOL(C!Var*100,1)")

    r = recalculate(_book(tmp_path / "clear.xlsx", build))
    assert r.value("S", "A11") == 1.0
    assert r.value("S", "A13") == pytest.approx(0.02 * np.sqrt(sum(k * k for k in range(1, n + 1))), rel=1e-12)
    assert r.value("S", "A14") == pytest.approx(0.04, rel=1e-12)


def test_an_expression_argument_is_evaluated_outside_a_generous_range_it_reads(tmp_path):
    # Data reaches past the sheet's last filled cell: the scratch cell (last row + 2, last
    # column + 2) fell inside it, and COUNTIF(Data, ...) became a circular reference
    def build(wb, ws):
        d = wb.add_worksheet("D")
        d.write_column("B1", ["x", "y", "z"])
        wb.define_name("Data", "=D!$B$1:$Z$500")
        d.write_formula("A1", '=PORTVOL(COUNTIF(Data,"y"),1)')
        d.write_formula("A2", '=PORTVAR(100,0.0004,IF(COUNTIF(Data,"y")>0,0.99,0.95))')

    r = recalculate(_book(tmp_path / "generous.xlsx", build))
    assert r.value("D", "A1") == 1.0
    assert r.value("D", "A2") == pytest.approx(norm.ppf(0.99) * 2, rel=1e-12)
