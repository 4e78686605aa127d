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


def _factor_fit_by_hand(data, factors):
    """Least squares of each fund on a constant and the factors, one fund at a time."""
    t, k = factors.shape
    design = np.column_stack([np.ones(t), factors])
    rows = []
    for y in data.T:
        coef, *_ = np.linalg.lstsq(design, y, rcond=None)
        resid = y - design @ coef
        rows.append([*coef[1:], coef[0], resid @ resid / (t - k - 1), 1 - resid @ resid / ((y - y.mean()) @ (y - y.mean()))])
    return np.array(rows)


def test_factor_sheet_matches_least_squares_and_the_brute_force_var(result, data):
    from scipy.stats import norm

    from xlmvar.workbook.templates.edhec_history import FACTORS

    names, _, _ = load_edhec()
    cols = [names.index(f) for f in FACTORS]
    factors = data[:, cols]
    fit = _factor_fit_by_hand(data, factors)
    table = np.asarray(result.values[("Factors", _cell_of(result, "FACTORLOADINGS(")[0][0][1])], dtype=object)
    assert list(table[0]) == ["Beta 1", "Beta 2", "Intercept", "Specific variance", "R^2"]
    np.testing.assert_allclose(table[1:].astype(float), fit, rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(fit[cols, -1], 1.0, rtol=1e-12)  # a factor explains itself
    # LINEST in the sheet (last factor first), the native check
    for i in range(len(names)):
        r = 11 + i
        linest = np.asarray(result.values[("Factors", f"H{r}:J{r}")], dtype=float).ravel()
        np.testing.assert_allclose(linest, [fit[i, 1], fit[i, 0], fit[i, 2]], rtol=1e-9, atol=1e-15)
        assert result.value("Factors", f"K{r}") == pytest.approx(fit[i, 4], rel=1e-9)
    assert result.value("Factors", "L11") < 1e-12
    # B F B' + D, entry by entry
    b, d, f = fit[:, :2], fit[:, 3], np.cov(factors, rowvar=False)
    n = len(names)
    implied = np.array([[sum(b[i, p] * f[p, q] * b[j, q] for p in range(2) for q in range(2)) + (d[i] if i == j else 0.0)
                         for j in range(n)] for i in range(n)])
    np.testing.assert_allclose(np.asarray(_cell_of(result, "FACTORCOV(")[0][1], dtype=float), implied, rtol=1e-9)
    # FACTORVAR against the brute-force n x n VaR and the factor exposures
    x = np.array(WEIGHTS) * 100e6
    z = norm.ppf(0.95)
    sigma = np.sqrt(x @ implied @ x)
    e = b.T @ x
    parts = [e[j] * z * (f @ e)[j] / sigma for j in range(2)] + [z * (x * d) @ x / sigma]
    var = np.asarray(result.values[("Factors", _cell_of(result, "FACTORVAR(")[0][0][1])], dtype=object)
    assert list(var[:, 0]) == ["Factor", *FACTORS, "Specific", "Total"]
    np.testing.assert_allclose(var[1:3, 1].astype(float), e, rtol=1e-9)
    np.testing.assert_allclose(var[1:4, 3].astype(float), parts, rtol=1e-9)
    assert var[4, 3] == pytest.approx(z * sigma, rel=1e-9) == pytest.approx(sum(parts), rel=1e-12)
    assert result.value("Factors", "D48") == pytest.approx(z * sigma, rel=1e-9)  # native SUM of the parts
    assert result.value("Factors", "D49") == pytest.approx(z * sigma, rel=1e-9)  # PORTVAR(FACTORCOV(...))
    sample = np.cov(data, rowvar=False)
    assert result.value("Factors", "D51") == pytest.approx(z * np.sqrt(x @ sample @ x), rel=1e-9)


def test_worst_months_with_their_dates(result, data):
    _, dates, _ = load_edhec()
    x = np.array(WEIGHTS) * 100e6
    pnl = [sum(row[i] * x[i] for i in range(x.size)) for row in data]
    worst = sorted(range(len(pnl)), key=lambda t: pnl[t])[:10]
    table = np.asarray(result.values[("Factors", _cell_of(result, "WORSTDAYS(")[0][0][1])], dtype=object)
    assert table.shape == (11, 2 + x.size) and table[0, 0] == "Date"
    assert list(table[1:, 0]) == [dates[t] for t in worst]
    np.testing.assert_allclose(table[1:, 1].astype(float), [pnl[t] for t in worst], rtol=1e-12)
    np.testing.assert_allclose(table[1:, 2:].astype(float), data[worst] * x, rtol=1e-12)
