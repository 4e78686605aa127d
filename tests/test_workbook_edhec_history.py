"""The EDHEC history template: PerformanceAnalytics' published values recomputed inside the
workbook, every method's cells against the engine, RETURNS against the data it came from."""

import numpy as np
import pytest
import xlsxwriter

import xlmvar
from xlmvar.workbook.calc import recalculate
from xlmvar.workbook.templates.edhec_history import WEIGHTS, load_edhec

from _workbooks import WORKBOOKS

BOOK = WORKBOOKS / "edhec_history.xlsx"


@pytest.fixture(scope="module")
def result():
    return recalculate(BOOK)


@pytest.fixture(scope="module")
def data():
    _, _, values = load_edhec()
    return np.array(values)


def _cell_of(result, text_start):
    return [(key, result.values[key]) for key, text in result.formulas.items() if text.startswith(text_start)]



def test_no_errors(result):
    assert result.errors == []


def test_performance_analytics_values_recomputed_in_the_workbook(result):
    # xlmvar/data/README.md: edhec[1:100, 1:3], p = .95
    published = {"Risk!C81": 0.012916, "Risk!C82": 0.014095, "Risk!C83": 0.024080}
    for address, value in published.items():
        sheet, cell = address.split("!")
        assert result.value(sheet, cell) == pytest.approx(value, abs=5e-7), address


def test_methods_side_by_side_match_the_engine(result, data):
    x = np.array(WEIGHTS) * 100e6
    cov, mean = np.cov(data, rowvar=False), data.mean(axis=0)
    expected = {
        '"normal"': xlmvar.decompose(x, cov, "var", 0.95, 1, "normal", mean=mean),
        '"historical"': xlmvar.decompose(x, data, "var", 0.95, 1, "historical"),
        '"cornish-fisher"': xlmvar.decompose(x, data, "var", 0.95, 1, "cornish-fisher"),
        '"montecarlo"': xlmvar.decompose(x, cov, "var", 0.95, 1, "montecarlo", mean=mean),
    }
    seen = set()
    for (sheet, ref), text in result.formulas.items():
        for method, d in expected.items():
            if f",{method}" not in text or ",5)" in text:
                continue
            value = np.asarray(result.values[(sheet, ref)], dtype=float)
            if text.startswith("COMPONENTVAR("):
                np.testing.assert_allclose(value.ravel(), d.component, rtol=1e-9)
                seen.add(("component", method))
            elif text.startswith("PORTVAR(Positions"):
                assert value[0, 0] == pytest.approx(d.total, rel=1e-9)
                seen.add(("var", method))
    assert len(seen) == 8
    # the historical and Cornish-Fisher components sum to their VaR (Euler), in the sheet too
    assert result.value("Risk", "C74") == pytest.approx(result.value("Risk", "C72"), rel=1e-12)
    assert result.value("Risk", "D74") == pytest.approx(result.value("Risk", "D72"), rel=1e-12)


def test_estimators_and_returns_round_trip(result, data):
    np.testing.assert_allclose(_cell_of(result, "COVMATRIX(History)")[0][1].astype(float), np.cov(data, rowvar=False), rtol=1e-12)
    assert result.value("Prices", "J3") < 1e-12  # RETURNS of the rebuilt index gives back the data
    np.testing.assert_allclose(
        [result.value("Prices", f"F{r}") for r in range(4, 28)], data[:24, 0], rtol=1e-9
    )


def test_report_reads_the_history_book(capsys):
    from xlmvar.cli import main

    assert main(["report", str(BOOK)]) == 0
    out = capsys.readouterr().out
    assert "Method historical" in out and "Convertible Arbitrage" in out


def test_omitted_arguments_of_xlmvar_functions_take_their_defaults(tmp_path):
    # Excel hands a UDF an omitted argument as missing; formulas would read it as 0
    book = tmp_path / "omitted.xlsx"
    wb = xlsxwriter.Workbook(str(book))
    ws = wb.add_worksheet("S")
    for i, (x, row) in enumerate(zip((1e6, 2e6), ((0.04, 0.01), (0.01, 0.09)))):
        ws.write_number(i, 0, x)
        ws.write_row(i, 1, row)
    ws.write_formula("D1", '=PORTVAR(A1:A2,B1:C2,,,"montecarlo",,20000,,7)')
    ws.write_formula("D2", "=PORTVAR(A1:A2,B1:C2,,)")
    ws.write_formula("D3", "=IF(FALSE,,3)")
    wb.close()
    r = recalculate(book)
    x, cov = np.array([1e6, 2e6]), np.array([[0.04, 0.01], [0.01, 0.09]])
    assert r.errors == []
    assert r.value("S", "D1") == pytest.approx(xlmvar.portfolio_var(x, cov, method="montecarlo", draws=20000, seed=7), rel=1e-12)
    assert r.value("S", "D2") == pytest.approx(xlmvar.portfolio_var(x, cov), rel=1e-12)
    assert r.value("S", "D3") == 3
