"""The risk desk template: regenerated deterministically, recalculated headlessly, and every
xlmvar cell checked against the engine run on the inputs read from the workbook; closed
forms worked by hand (best hedge, risk-parity shares, exception count, Kupiec); native
cross-checks; limit breaches highlighted by conditional formatting; LibreOffice as a
second engine for the native block."""

from __future__ import annotations

import re
import zipfile
from types import SimpleNamespace

import numpy as np
import openpyxl
import pytest
from lxml import etree
from openpyxl.utils.cell import get_column_letter, range_boundaries
from scipy.stats import binom, norm

import xlmvar
from xlmvar.workbook._xlsx import sheet_parts
from xlmvar.workbook.calc import Recalculation, calc, recalculate, write_cached_values, xlmvar_functions

from _workbooks import WORKBOOKS, cached_values, formulas_of, libreoffice_recalculate, soffice

BOOK = WORKBOOKS / "risk_desk.xlsx"
SHEETS = ["Report", "What-if", "Hedges", "Stress", "Backtest"]
NS = {"m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main"}
RTOL = 1e-12


@pytest.fixture(scope="module")
def recalculated(tmp_path_factory):
    out = tmp_path_factory.mktemp("calc") / "risk_desk.xlsx"
    return calc(BOOK, out), out


@pytest.fixture(scope="module")
def book():
    """The inputs, read from the committed workbook's typed cells (not from the template code)."""
    wb = openpyxl.load_workbook(BOOK)

    def named(name):
        ((sheet, coord),) = wb.defined_names[name].destinations
        cells = wb[sheet][coord]
        if not isinstance(cells, tuple):
            return cells.value
        return np.array([[c.value for c in row] for row in cells], dtype=object)

    def column(sheet, coord):
        return np.array([row[0].value for row in wb[sheet][coord]], dtype=float)

    vols = named("Vols").astype(float).ravel()
    corr = named("Correlation").astype(float)
    new_vol = float(wb["What-if"]["B25"].value)
    new_corr = column("What-if", "B29:B35")
    return SimpleNamespace(
        assets=[str(a) for a in named("Assets").ravel()],
        x=named("Positions").astype(float).ravel(),
        vols=vols,
        corr=corr,
        cov=xlmvar.cov_from_corr(vols, corr),
        c=float(named("Confidence")),
        c2=float(wb["Report"]["B18"].value),
        h=int(named("Horizon")),
        limit=float(named("ShareLimit")),
        trade=named("Trade").astype(float).ravel(),
        new_vol=new_vol,
        new_corr=new_corr,
        cov_with_book=new_vol * new_corr * vols,
        annual_returns=column("Hedges", "B16:B22"),
        theta=float(named("Theta")),
        pnl=named("PnL").astype(float).ravel(),
        dates=[row[0].value for row in wb["Backtest"]["A6:A255"]],
    )


def _cells(result, sheet, ref):
    return np.asarray(result.values[(sheet, ref)], dtype=object)


def _anchor(result, sheet, function):
    """The range of the one formula on ``sheet`` that calls ``function``."""
    refs = [r for (s, r), text in result.formulas.items() if s == sheet and text.upper().startswith(function + "(")]
    assert len(refs) == 1, (sheet, function, refs)
    return refs[0]



def test_inputs_are_a_valid_multi_asset_book(book):
    n = len(book.assets)
    assert 6 <= n <= 8 and len(set(book.assets)) == n
    assert (book.x < 0).any() and (book.x > 0).any()  # at least one short
    assert np.all((book.vols > 0) & (book.vols < 0.1))  # daily vols
    np.testing.assert_array_equal(book.corr, book.corr.T)
    np.testing.assert_array_equal(np.diag(book.corr), 1.0)
    assert np.linalg.eigvalsh(book.corr).min() > 0.05  # positive definite, not barely
    augmented = np.block([[book.corr, book.new_corr[:, None]], [book.new_corr[None, :], np.ones((1, 1))]])
    assert np.linalg.eigvalsh(augmented).min() > 0.0  # the new asset's correlations are consistent
    assert (book.c, book.c2, book.h, book.limit, book.theta) == (0.99, 0.95, 1, 0.25, 0.5)
    assert book.pnl.size == 250 and np.all(book.pnl == np.round(book.pnl))
    assert all(a < b for a, b in zip(book.dates, book.dates[1:]))
    assert all(d.weekday() < 5 for d in book.dates)


def test_recalculation_has_no_errors(recalculated):
    result, _ = recalculated
    assert result.errors == []
    assert {s for s, _ in result.formulas} == set(SHEETS)
    assert result.formula_count >= 1000  # 750 of them on the backtest history


def test_every_xlmvar_cell_matches_the_engine(recalculated, book):
    result, _ = recalculated
    x, cov, c, c2, h = book.x, book.cov, book.c, book.c2, book.h
    n = x.size
    d = xlmvar.decompose(x, cov, "var", c, h)
    d2 = xlmvar.decompose(x, cov, "var", c2, h)
    es, es2 = (xlmvar.decompose(x, cov, "es", conf, h).total for conf in (c, c2))
    ind, ind2 = (xlmvar.individual_var(x, cov, conf, h) for conf in (c, c2))
    after = x + book.trade
    d_after = xlmvar.decompose(after, cov, "var", c, h)
    inc = xlmvar.incremental_var(x, cov, book.trade, c, h)
    inc_es = xlmvar.incremental_var(x, cov, book.trade, c, h, measure="es")
    var_new = book.new_vol**2
    stressed_corr = xlmvar.stress_corr(book.corr, book.theta)
    stressed_cov = xlmvar.cov_from_corr(book.vols, stressed_corr)
    d_stress = xlmvar.decompose(x, stressed_cov, "var", c, h)
    parity = xlmvar.risk_parity(cov)
    col = lambda v: np.asarray(v, dtype=float)[:, None]  # noqa: E731

    expected = {
        ("Report", "B24:H30"): cov,
        ("Report", "B34"): [[d.total]],
        ("Report", "C34"): [[d2.total]],
        ("Report", "B35"): [[es]],
        ("Report", "C35"): [[es2]],
        ("Report", "B36"): [[ind.sum()]],
        ("Report", "C36"): [[ind2.sum()]],
        ("Report", "B37"): [[ind.sum() - d.total]],
        ("Report", "C37"): [[ind2.sum() - d2.total]],
        ("Report", "B38"): [[np.sqrt(x @ cov @ x) * np.sqrt(h)]],
        ("What-if", "E6:E12"): col(d.component),
        ("What-if", "F6:F12"): col(d_after.component),
        ("What-if", "G6:G12"): col(d.percent),
        ("What-if", "H6:H12"): col(d_after.percent),
        ("What-if", "B20"): [[d_after.total]],
        ("What-if", "E29:E35"): col(d.marginal),
        ("What-if", "B37"): [[xlmvar.marginal_var_new_asset(x, cov, book.cov_with_book, var_new, c, h)]],
        ("Hedges", "B27:B33"): col(parity.weights),
        ("Hedges", "C27:C33"): col(xlmvar.decompose(parity.weights, cov, "var", c, h).percent),
        ("Hedges", "E27:E33"): col(d.percent),
        ("Stress", "B8:H14"): stressed_corr,
        ("Stress", "B18:H24"): stressed_cov,
        ("Stress", "C28:C34"): col(d.component),
        ("Stress", "D28:D34"): col(d_stress.component),
        ("Stress", "F28:F34"): col(d.percent),
        ("Stress", "G28:G34"): col(d_stress.percent),
        ("Stress", "C35"): [[d.total]],
        ("Stress", "D35"): [[d_stress.total]],
        ("Stress", "C36"): [[es]],
        ("Stress", "D36"): [[xlmvar.portfolio_es(x, stressed_cov, c, h)]],
    }
    checked = set()
    for key, want in expected.items():
        np.testing.assert_allclose(_cells(result, *key).astype(float), want, rtol=RTOL, err_msg=str(key))
        checked.add(key)

    # RISKREPORT with the limit columns
    key = ("Report", "A41:I49")
    table = _cells(result, *key)
    limits = xlmvar.var_limits(x, cov, book.limit, c, h)
    assert list(table[0]) == ["Asset", "Position", "Individual VaR", "Marginal VaR", "Component VaR", "% of VaR",
                              "Limit", "Breach", "Trade to limit"]
    assert list(table[1:, 0]) == [*book.assets, "Total"]
    numbers = np.column_stack([x, ind, d.marginal, d.component, d.percent, limits.limit, limits.trade])
    np.testing.assert_allclose(table[1:-1, [1, 2, 3, 4, 5, 6, 8]].astype(float), numbers, rtol=RTOL)
    assert list(table[1:-1, 7]) == ["BREACH" if b else "" for b in limits.breach]
    np.testing.assert_allclose(table[-1, [1, 2, 4, 5]].astype(float), [x.sum(), ind.sum(), d.total, 1.0], rtol=RTOL)
    assert table[-1, 7] == ("BREACH" if limits.breach.any() else "")
    checked.add(key)

    # VARLIMITS
    key = ("Report", "B53:H60")
    table = _cells(result, *key)
    assert list(table[0]) == ["% of VaR", "Limit", "Breach", "Trade to limit", "Position after", "VaR after", "Note"]
    numbers = np.column_stack([limits.shares, limits.limit, limits.trade, limits.position_after, limits.var_after])
    np.testing.assert_allclose(table[1:, [0, 1, 3, 4, 5]].astype(float), numbers, rtol=RTOL)
    assert list(table[1:, 2]) == ["BREACH" if b else "" for b in limits.breach]
    assert list(table[1:, 6]) == list(limits.reason)
    checked.add(key)

    # INCREMENTALVAR / INCREMENTALES detail tables
    for key, labels, r in (
        (("What-if", "A16:B19"), ["VaR before", "VaR after", "Incremental VaR", "Marginal estimate"], inc),
        (("What-if", "D16:E19"), ["ES before", "ES after", "Incremental ES", "Marginal estimate"], inc_es),
    ):
        table = _cells(result, *key)
        assert list(table[:, 0]) == labels
        np.testing.assert_allclose(table[:, 1].astype(float), [r.before, r.after, r.exact, r.approximate], rtol=RTOL)
        checked.add(key)

    # BESTHEDGE
    key = ("Hedges", "C5:F12")
    table = _cells(result, *key)
    bh = xlmvar.best_hedge(x, cov, c, h)
    assert list(table[0]) == ["Best hedge trade", "Position after", "VaR after", "VaR reduction"]
    np.testing.assert_allclose(
        table[1:].astype(float), np.column_stack([bh.trade, bh.position_after, bh.var_after, bh.reduction_pct]),
        rtol=RTOL,
    )
    checked.add(key)

    # RETURNPERRISK
    key = ("Hedges", "D15:G22")
    table = _cells(result, *key)
    rpr = xlmvar.return_per_risk(x, cov, book.annual_returns / 252, c, h)
    assert list(table[0]) == ["Expected return", "Marginal VaR", "Return / marginal VaR", "Rank"]
    np.testing.assert_allclose(table[1:, :2].astype(float), np.column_stack([rpr.expected_return, rpr.marginal]), rtol=RTOL)
    for shown, ratio in zip(table[1:, 2], rpr.ratio):
        if np.isinf(ratio):
            assert shown == "reduces risk"
        else:
            assert shown == pytest.approx(ratio, rel=RTOL)
    assert list(table[1:, 3]) == list(rpr.rank) and sorted(rpr.rank) == list(range(1, n + 1))
    checked.add(key)

    # VARBACKTEST
    key = ("Backtest", "G5:H16")
    table = _cells(result, *key)
    bt = xlmvar.var_backtest(book.pnl, np.full(book.pnl.size, d.total), c)
    want = [bt.observations, bt.exceptions, bt.expected_exceptions, bt.exception_rate, bt.pof_lr, bt.pof_pvalue,
            bt.ind_lr, bt.ind_pvalue, bt.cc_lr, bt.cc_pvalue, bt.zone, bt.plus_factor]
    assert table[:, 0].tolist()[:2] == ["Observations", "Exceptions"] and table[10, 0] == "Basel zone"
    for got, value in zip(table[:, 1], want):
        assert got == (value if isinstance(value, str) else pytest.approx(value, rel=RTOL))
    checked.add(key)

    # every formula that calls an xlmvar function was checked above
    udf = set(xlmvar_functions())
    calls = {key for key, text in result.formulas.items() if set(re.findall(r"([A-Z][A-Z0-9.]*)\(", text.upper())) & udf}
    assert calls == checked


def test_best_hedge_is_the_closed_form_worked_by_hand(recalculated, book):
    result, _ = recalculated
    x, s = book.x, book.cov
    z = norm.ppf(book.c) * np.sqrt(book.h)
    table = _cells(result, "Hedges", "C5:F12")[1:].astype(float)
    native = np.array([_cells(result, "Hedges", f"G{r}")[0, 0] for r in range(6, 13)], dtype=float)
    sigma2 = x @ s @ x
    for i in range(x.size):
        sx_i = sum(s[i, j] * x[j] for j in range(x.size))
        trade = -sx_i / s[i, i]  # Litterman: the marginal VaR of asset i is zero after it
        var_after = z * np.sqrt(sigma2 - sx_i**2 / s[i, i])
        assert table[i, 0] == pytest.approx(trade, rel=1e-10)
        assert native[i] == pytest.approx(trade, rel=1e-10)  # the sheet's native MMULT column
        assert table[i, 2] == pytest.approx(var_after, rel=1e-10)
        hedged = x.copy()
        hedged[i] += trade
        assert abs((s @ hedged)[i]) <= 1e-12 * np.abs(s[i]) @ np.abs(hedged)
    assert np.all(table[:, 2] <= z * np.sqrt(sigma2) * (1 + 1e-12))  # a best hedge never adds risk


def test_risk_parity_book_has_equal_risk_shares(recalculated, book):
    result, out = recalculated
    n = len(book.assets)
    w = _cells(result, "Hedges", "B27:B33").astype(float).ravel()
    assert np.all(w > 0) and w.sum() == pytest.approx(1.0, rel=1e-12)
    s = book.cov
    by_hand = w * (s @ w) / (w @ s @ w)
    np.testing.assert_allclose(by_hand, 1.0 / n, atol=1e-10)
    np.testing.assert_allclose(_cells(result, "Hedges", "C27:C33").astype(float).ravel(), 1.0 / n, atol=1e-10)
    values = cached_values(out, "Hedges")
    assert [values[f"D{r}"] for r in range(27, 34)] == [pytest.approx(1.0 / n)] * n  # native 1/n column


def test_stress_raises_correlations_by_theta_and_the_book_var(recalculated, book):
    result, out = recalculated
    stressed = _cells(result, "Stress", "B18:H24").astype(float)
    rho = _cells(result, "Stress", "B8:H14").astype(float)
    off = ~np.eye(len(book.assets), dtype=bool)
    np.testing.assert_allclose(rho[off], book.corr[off] + book.theta * (1 - book.corr[off]), rtol=1e-14)
    assert np.linalg.eigvalsh(rho).min() > 0
    np.testing.assert_allclose(stressed, np.outer(book.vols, book.vols) * rho, rtol=1e-14)
    values = cached_values(out, "Stress")
    for r in range(28, 36):  # native change column = stressed - normal
        assert values[f"E{r}"] == pytest.approx(values[f"D{r}"] - values[f"C{r}"], rel=1e-12, abs=1e-6)
    assert values["D35"] > values["C35"]  # this book's VaR rises when correlations do


def test_backtest_exceptions_counted_by_hand(recalculated, book):
    result, out = recalculated
    values = cached_values(out, "Backtest")
    var99 = cached_values(out, "Report")["B34"]
    forecast = np.array([values[f"C{r}"] for r in range(6, 256)])
    np.testing.assert_array_equal(forecast, var99)  # every day's forecast is the Report's 99% VaR
    flags = np.array([values[f"E{r}"] for r in range(6, 256)])
    by_hand = (-book.pnl > var99).astype(int)  # an exception: a loss larger than the VaR
    np.testing.assert_array_equal(flags, by_hand)
    x, t = int(by_hand.sum()), by_hand.size
    table = _cells(result, "Backtest", "G5:H16")
    assert table[1, 1] == x == values["H19"]  # VARBACKTEST, numpy, native SUM
    p = 1 - book.c
    assert table[2, 1] == pytest.approx(p * t) == values["H20"]
    # Kupiec POF by hand (x > 0 here)
    assert 0 < x < t
    lr = -2 * ((t - x) * np.log(1 - p) + x * np.log(p)) + 2 * ((t - x) * np.log(1 - x / t) + x * np.log(x / t))
    assert table[4, 1] == pytest.approx(lr, rel=1e-10)
    # Basel (1996) table for 250 days at 99%: green 0-4, yellow 5-9, red 10+
    assert table[10, 1] == ("green" if x <= 4 else "yellow" if x <= 9 else "red")
    assert table[10, 1] == ("green" if binom.cdf(x, t, p) < 0.95 else "yellow" if binom.cdf(x, t, p) < 0.9999 else "red")
    assert values["H21"] == book.pnl.min()


def test_native_cross_checks_agree_with_the_engine(recalculated, book):
    _, out = recalculated
    report = cached_values(out, "Report")
    x, cov = book.x, book.cov
    np.testing.assert_allclose([[report[f"{get_column_letter(2 + j)}{65 + i}"] for j in range(7)] for i in range(7)],
                               cov, rtol=1e-14)
    d = xlmvar.decompose(x, cov, "var", book.c, book.h)
    assert report["B73"] == pytest.approx(np.sqrt(x @ cov @ x), rel=1e-12)
    assert report["B74"] == pytest.approx(d.total, rel=1e-12)
    assert report["C74"] == pytest.approx(xlmvar.portfolio_var(x, cov, book.c2, book.h), rel=1e-12)
    assert report["B75"] == pytest.approx(xlmvar.portfolio_es(x, cov, book.c, book.h), rel=1e-12)
    assert report["C75"] == pytest.approx(xlmvar.portfolio_es(x, cov, book.c2, book.h), rel=1e-12)
    np.testing.assert_allclose([report[f"B{r}"] for r in range(79, 86)], d.component, rtol=1e-12)
    assert report["B86"] == pytest.approx(d.total, rel=1e-12)
    np.testing.assert_allclose([report[f"D{r}"] for r in range(6, 13)], book.vols * np.sqrt(252), rtol=1e-14)
    assert report["B14"] == np.abs(x).sum()

    what_if = cached_values(out, "What-if")
    np.testing.assert_allclose([what_if[f"D{r}"] for r in range(29, 36)], book.cov_with_book, rtol=1e-14)
    assert what_if["B26"] == pytest.approx(book.new_vol**2, rel=1e-14)
    assert what_if["B38"] == pytest.approx(what_if["B37"], rel=1e-12)  # native z (c.x)/sigma vs NEWASSETMVAR
    assert what_if["B21"] == pytest.approx(0, abs=1e-6)  # INCREMENTALVAR's "VaR after" = PORTVAR(after)
    np.testing.assert_allclose([what_if[f"D{r}"] for r in range(6, 13)], x + book.trade, rtol=0)


def test_limit_breaches_are_real_and_the_trade_cures_them(recalculated, book):
    result, _ = recalculated
    table = _cells(result, "Report", "A41:I49")
    shares = table[1:-1, 5].astype(float)
    flagged = table[1:-1, 7] == "BREACH"
    np.testing.assert_array_equal(flagged, shares > book.limit)
    assert flagged.any() and not flagged.all()  # the template shows a breach
    for i in np.flatnonzero(flagged):
        cured = book.x.copy()
        cured[i] += float(table[1 + i, 8])
        share = xlmvar.decompose(cured, book.cov, "var", book.c, book.h).percent[i]
        assert share == pytest.approx(book.limit, abs=1e-9)


def _conditional_formats(path, sheet):
    with zipfile.ZipFile(path) as archive:
        part = dict(sheet_parts(archive))[sheet]
        root = etree.fromstring(archive.read(part))
        styles = etree.fromstring(archive.read("xl/styles.xml"))
    fills = [dxf.find(".//m:bgColor", NS).get("rgb") for dxf in styles.find("m:dxfs", NS)]
    rules = {}
    for cf in root.findall("m:conditionalFormatting", NS):
        for rule in cf.findall("m:cfRule", NS):
            rules.setdefault(cf.get("sqref"), []).append(
                (rule.get("operator"), rule.find("m:formula", NS).text, fills[int(rule.get("dxfId"))])
            )
    return rules


def test_breaches_are_highlighted_by_conditional_formatting(recalculated):
    result, _ = recalculated
    red = "FFFFC7CE"
    limit_cell = openpyxl.load_workbook(BOOK).defined_names["ShareLimit"].attr_text.split("!")[1]
    rules = _conditional_formats(BOOK, "Report")
    # RISKREPORT: the Breach column (and its total) equal to "BREACH", the % column above the limit
    c0, r0, c1, r1 = range_boundaries(_anchor(result, "Report", "RISKREPORT"))
    header = list(_cells(result, "Report", _anchor(result, "Report", "RISKREPORT"))[0])
    breach_col = get_column_letter(c0 + header.index("Breach"))
    pct_col = get_column_letter(c0 + header.index("% of VaR"))
    assert rules[f"{breach_col}{r0 + 1}:{breach_col}{r1}"] == [("equal", '"BREACH"', red)]
    assert rules[f"{pct_col}{r0 + 1}:{pct_col}{r1 - 1}"] == [("greaterThan", limit_cell, red)]
    # VARLIMITS likewise
    c0, r0, c1, r1 = range_boundaries(_anchor(result, "Report", "VARLIMITS"))
    header = list(_cells(result, "Report", _anchor(result, "Report", "VARLIMITS"))[0])
    breach_col = get_column_letter(c0 + header.index("Breach"))
    pct_col = get_column_letter(c0 + header.index("% of VaR"))
    assert rules[f"{breach_col}{r0 + 1}:{breach_col}{r1}"] == [("equal", '"BREACH"', red)]
    assert rules[f"{pct_col}{r0 + 1}:{pct_col}{r1}"] == [("greaterThan", limit_cell, red)]
    # exception days and the Basel zone on the backtest sheet
    rules = _conditional_formats(BOOK, "Backtest")
    assert rules["E6:E255"] == [("equal", "1", red)]
    assert [r[1] for r in rules["H15"]] == ['"green"', '"yellow"', '"red"']


def test_charts_formulas_styles_and_names_survive_recalculation(recalculated):
    _, out = recalculated
    with zipfile.ZipFile(BOOK) as a, zipfile.ZipFile(out) as b:
        assert a.namelist() == b.namelist()
        for part in a.namelist():
            if not part.startswith("xl/worksheets/"):
                assert a.read(part) == b.read(part), part
        charts = {p: a.read(p).decode() for p in a.namelist() if p.startswith("xl/charts/chart")}
    assert len(charts) == 2
    bar = next(x for x in charts.values() if "<c:barChart>" in x)
    line = next(x for x in charts.values() if "<c:lineChart>" in x)
    # the native component VaR column (equal to RISKREPORT's, tested above), which LibreOffice computes too
    assert "Report!$B$79:$B$85" in bar and "Report!$A$79:$A$85" in bar
    assert "Backtest!$B$6:$B$255" in line and "Backtest!$D$6:$D$255" in line  # P&L and -VaR
    for sheet in SHEETS:
        assert formulas_of(out, sheet) == formulas_of(BOOK, sheet)
    names = set(openpyxl.load_workbook(out).defined_names)
    assert {"Assets", "Positions", "Covariance", "Confidence", "Horizon"} <= names


def test_cli_report_reads_the_named_book(capsys, book):
    from xlmvar.cli import main

    assert main(["report", str(BOOK)]) == 0
    out = capsys.readouterr().out
    for asset in book.assets:
        assert asset in out
    assert f"{xlmvar.portfolio_var(book.x, book.cov, book.c, book.h):,.0f}" in out
    assert "confidence 99.00%" in out


def test_changed_input_flows_through_every_sheet(tmp_path, book):
    # openpyxl edits an input (dropping cached values and charts, fine here); halve the US equity position
    wb = openpyxl.load_workbook(BOOK)
    wb["Report"]["B6"] = book.x[0] / 2
    edited = tmp_path / "edited.xlsx"
    wb.save(edited)
    result = recalculate(edited)
    assert result.errors == []
    x = book.x.copy()
    x[0] /= 2
    var = xlmvar.portfolio_var(x, book.cov, book.c, book.h)
    assert result.value("Report", "B34") == pytest.approx(var, rel=1e-12)
    assert result.value("Backtest", "C100") == pytest.approx(var, rel=1e-12)
    assert result.value("Stress", "C35") == pytest.approx(var, rel=1e-12)
    inc = xlmvar.incremental_var(x, book.cov, book.trade, book.c, book.h)
    assert result.value("What-if", "B18") == pytest.approx(inc.exact, rel=1e-12)


@pytest.mark.skipif(soffice() is None, reason="LibreOffice is not installed (.ci/run installs libreoffice-calc-nogui)")
@pytest.mark.filterwarnings("ignore:Unable to read chart")  # openpyxl on LibreOffice's re-saved charts
def test_libreoffice_recalculates_the_native_block_to_the_engine(tmp_path, book):
    # Blank every cached value first, so only a real recalculation in LibreOffice can fill them.
    blanked = tmp_path / "blank.xlsx"
    recalc = recalculate(BOOK)
    zeros = Recalculation(source=BOOK, values={k: np.zeros(np.shape(v)) for k, v in recalc.values.items()})
    write_cached_values(BOOK, blanked, zeros)
    lo = libreoffice_recalculate(blanked, tmp_path)
    report = cached_values(lo, "Report")
    x, cov = book.x, book.cov
    d = xlmvar.decompose(x, cov, "var", book.c, book.h)
    np.testing.assert_allclose([[report[f"{get_column_letter(2 + j)}{65 + i}"] for j in range(7)] for i in range(7)],
                               cov, rtol=1e-14)
    assert report["B73"] == pytest.approx(np.sqrt(x @ cov @ x), rel=1e-12)
    assert report["B74"] == pytest.approx(d.total, rel=1e-12)
    assert report["C74"] == pytest.approx(xlmvar.portfolio_var(x, cov, book.c2, book.h), rel=1e-12)
    assert report["B75"] == pytest.approx(xlmvar.portfolio_es(x, cov, book.c, book.h), rel=1e-12)
    np.testing.assert_allclose([report[f"B{r}"] for r in range(79, 86)], d.component, rtol=1e-12)
    what_if = cached_values(lo, "What-if")
    np.testing.assert_allclose([what_if[f"D{r}"] for r in range(29, 36)], book.cov_with_book, rtol=1e-14)
