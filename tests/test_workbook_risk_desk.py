"""The risk desk template: regenerated deterministically, recalculated headlessly, and every
xlmvar cell checked against the engine run on the inputs read from the workbook; closed
forms worked by hand (best hedge, risk-parity shares, exception count, Kupiec); native
cross-checks; limit breaches highlighted by conditional formatting; LibreOffice as a
second engine for the native block."""

from __future__ import annotations

import datetime as _dt
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
SHEETS = ["Report", "What-if", "Hedges", "By desk", "Stress", "Options", "Backtest", "Handles", "Daily returns"]
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
        returns=named("DailyReturns").astype(float),
        dates=[d.date() for d in named("Days").ravel()],
        desks=[str(d) for d in named("Desks").ravel()],
        shocks=named("Shocks").astype(float),
        scenarios=[str(v) for v in named("ScenarioNames").ravel()],
        options=[[c.value for c in row] for row in wb["Options"]["A6:H8"]],
    )


def _cells(result, sheet, ref):
    return np.asarray(result.values[(sheet, ref)], dtype=object)


def _anchor(result, sheet, function):
    """The range of the one formula on ``sheet`` that calls ``function``."""
    refs = [r for (s, r), text in result.formulas.items() if s == sheet and text.upper().startswith(function + "(")]
    assert len(refs) == 1, (sheet, function, refs)
    return refs[0]



def _where(result, sheet, text):
    """The range of the one formula on ``sheet`` whose text is ``text`` (without "=")."""
    refs = [r for (s, r), t in result.formulas.items() if s == sheet and t == text]
    assert len(refs) == 1, (sheet, text, refs)
    return refs[0]


def _groups_by_hand(book, measure, model):
    """(labels, standalone, component) per desk, in order of first appearance, worked out
    directly: normal closed forms on the sub-books; historical quantiles of the sub-book P&L."""
    x, c, h = book.x, book.c, book.h
    labels = list(dict.fromkeys(book.desks))
    standalone, component = [], []
    if model == "normal":
        s, z = book.cov, norm.ppf(c) if measure == "var" else norm.pdf(norm.ppf(c)) / (1 - c)
        sigma = np.sqrt(x @ s @ x)
        per_position = [x[i] * sum(s[i, j] * x[j] for j in range(x.size)) / sigma * z * np.sqrt(h) for i in range(x.size)]
    else:
        per_position = xlmvar.decompose(x, book.returns, "var", c, h, "historical").component
    for label in labels:
        members = [i for i, d in enumerate(book.desks) if d == label]
        xg = x[members]
        if model == "normal":
            standalone.append(z * np.sqrt(xg @ book.cov[np.ix_(members, members)] @ xg) * np.sqrt(h))
        else:
            standalone.append(-np.quantile(book.returns[:, members] @ xg, 1 - c) * np.sqrt(h))
        component.append(sum(per_position[i] for i in members))
    return labels, np.array(standalone), np.array(component)


def _check_by_desk(result, book) -> set:
    checked = set()
    for text, measure, model in (
        ("GROUPVAR(Positions,Covariance,Desks,Confidence,Horizon)", "var", "normal"),
        ("GROUPES(Positions,Covariance,Desks,Confidence,Horizon)", "es", "normal"),
        ('GROUPVAR(Positions,DailyReturns,Desks,Confidence,Horizon,"historical")', "var", "historical"),
    ):
        key = ("By desk", _where(result, "By desk", text))
        table = _cells(result, *key)
        labels, standalone, component = _groups_by_hand(book, measure, model)
        total = component.sum()
        if model == "normal":
            z = norm.ppf(book.c) if measure == "var" else norm.pdf(norm.ppf(book.c)) / (1 - book.c)
            assert total == pytest.approx(z * np.sqrt(book.x @ book.cov @ book.x) * np.sqrt(book.h), rel=1e-12)
        else:
            assert total == pytest.approx(-np.quantile(book.returns @ book.x, 1 - book.c), rel=1e-10)
        assert list(table[1:, 0]) == [*labels, "Total"] and table[0, 2].startswith("Component")
        want = np.column_stack([standalone, component, component / total, standalone - component])
        np.testing.assert_allclose(table[1:-1, 1:].astype(float), want, rtol=1e-10, atol=1e-6)
        np.testing.assert_allclose(table[-1, 1:].astype(float), [total, total, 1.0, (standalone - component).sum()],
                                   rtol=1e-10)
        checked.add(key)
        # the sheet's native check: the component column sums to the book's figure
        function = text.split("(")[0].replace("GROUP", "PORT")
        book_key = ("By desk", _where(result, "By desk", function + text[text.index("("):].replace(",Desks", "")))
        assert _cells(result, *book_key)[0, 0] == pytest.approx(total, rel=1e-10)
        checked.add(book_key)
    return checked


def _check_stress_pnl(result, book) -> set:
    key = ("Stress", _anchor(result, "Stress", "STRESSPNL"))
    table = _cells(result, *key)
    by_hand = [sum(book.shocks[s, i] * book.x[i] for i in range(book.x.size)) for s in range(len(book.scenarios))]
    order = sorted(range(len(by_hand)), key=lambda s: by_hand[s])  # largest loss first
    assert list(table[0]) == ["Scenario", "P&L"]
    assert list(table[1:, 0]) == [book.scenarios[s] for s in order]
    np.testing.assert_allclose(table[1:, 1].astype(float), [by_hand[s] for s in order], rtol=1e-12)
    return {key}


def _option_grid(book):
    """The options' P&L under the last 250 days' returns, from the payoff written out here."""
    days = book.returns[-250:]
    grid = np.empty((250, len(book.options)))
    for j, (_, underlying, kind, units, spot, strike, premium, _) in enumerate(book.options):
        r = days[:, book.assets.index(underlying)]
        sign = 1.0 if kind == "call" else -1.0
        grid[:, j] = [units * (max(sign * (spot * (1 + ret) - strike), 0.0) - premium) for ret in r]
    return grid


def _check_options(result, book) -> set:
    grid = _option_grid(book)
    scales = np.array([o[7] for o in book.options], dtype=float)
    pnl = grid @ scales
    var = -np.quantile(pnl, 1 - book.c)
    es = -pnl[pnl < -var].mean()
    keys = {
        "var": ("Options", _where(result, "Options", 'PORTVAR(OptionScales,OptionPnL,Confidence,1,"pnl")')),
        "es": ("Options", _where(result, "Options", 'PORTES(OptionScales,OptionPnL,Confidence,1,"pnl")')),
        "component": ("Options", _anchor(result, "Options", "COMPONENTVAR")),
    }
    assert _cells(result, *keys["var"])[0, 0] == pytest.approx(var, rel=1e-10)
    assert _cells(result, *keys["es"])[0, 0] == pytest.approx(es, rel=1e-10)
    component = _cells(result, *keys["component"]).astype(float).ravel()
    assert component.sum() == pytest.approx(var, rel=1e-10)  # Euler: the components add up
    np.testing.assert_allclose(component, xlmvar.decompose(scales, grid, "var", book.c, 1, "pnl").component, rtol=1e-10)
    return set(keys.values())


def _rolling_by_hand(book, window=250):
    """(VaR forecasts, realised P&L, rows) of a 250-day rolling historical VaR, by a loop."""
    p = book.returns @ book.x
    rows = range(window, p.size)
    var = np.array([-np.quantile(p[t - window:t], 1 - book.c) for t in rows])
    return var, p[window:], list(rows)


def _check_rolling(result, book) -> set:
    key = ("Backtest", _anchor(result, "Backtest", "ROLLINGVAR"))
    table = _cells(result, *key)
    var, pnl, rows = _rolling_by_hand(book)
    assert list(table[0]) == ["Date", "VaR", "P&L"] and table.shape == (251, 3)
    serials = [(book.dates[t] - _dt.date(1899, 12, 30)).days for t in rows]
    np.testing.assert_array_equal(table[1:, 0].astype(float), serials)
    np.testing.assert_allclose(table[1:, 1].astype(float), var, rtol=1e-10)
    np.testing.assert_allclose(table[1:, 2].astype(float), pnl, rtol=1e-12)
    return {key}


def _check_handles(result, book) -> set:
    """The Handles sheet: each RISKMODEL cell holds the handle of the data it was given (the
    same text as a handle made here from the inputs: content-keyed), and every figure with
    the handle is the figure with the range, to the last bit, and the engine's on the inputs."""
    from xlmvar.excel import handles

    checked = set()
    x, c, h = book.x, book.c, book.h
    models = {"CovModel": ("Covariance", "normal", book.cov), "ReturnsModel": ("DailyReturns", "historical", book.returns)}
    try:
        for name, (source, method, table) in models.items():
            key = ("Handles", _where(result, "Handles", f'RISKMODEL({source},"{method}")'))
            text = _cells(result, *key).item()
            assert re.fullmatch(r"xlmvar-model:(cov|returns):\d+x\d+:[0-9a-f]{16}", text)
            assert text == handles.make_model(table, method).handle
            checked.add(key)
    finally:
        handles.clear_models()
    z = norm.ppf(c)
    sigma = np.sqrt(x @ book.cov @ x) * np.sqrt(h)
    pnl = book.returns @ x
    expected = {  # (function, model name, method): the figure worked out here
        ("PORTVAR", "CovModel", "normal"): z * sigma,
        ("PORTES", "CovModel", "normal"): norm.pdf(z) / (1 - c) * sigma,
        ("PORTVAR", "ReturnsModel", "historical"): -np.quantile(pnl, 1 - c),
        ("PORTES", "ReturnsModel", "historical"): xlmvar.portfolio_es(x, book.returns, c, h, "historical"),
        ("COMPONENTVAR", "CovModel", "normal"): x * (book.cov @ x) / sigma * z * h,
        ("COMPONENTVAR", "ReturnsModel", "historical"): xlmvar.component_var(x, book.returns, c, h, "historical"),
    }
    for (function, name, method), want in expected.items():
        source = models[name][0]
        tail = "" if method == "normal" else f',"{method}"'
        with_handle, with_range = (
            ("Handles", _where(result, "Handles", f"{function}(Positions,{model},Confidence,Horizon{tail})"))
            for model in (name, source)
        )
        got_handle, got_range = (_cells(result, *key).astype(float).ravel() for key in (with_handle, with_range))
        np.testing.assert_array_equal(got_handle, got_range)  # the same table, the same bits
        np.testing.assert_allclose(got_handle, np.ravel(want), rtol=1e-12, err_msg=function)
        checked |= {with_handle, with_range}
    return checked


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
    assert book.returns.shape == (500, n) and np.all(np.abs(book.returns) < 0.5)
    assert len(book.dates) == 500 and all(a < b for a, b in zip(book.dates, book.dates[1:]))
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
    for shown, ratio, marginal in zip(table[1:, 2], rpr.ratio, rpr.marginal):
        if np.isinf(ratio):
            assert shown == ("reduces risk" if marginal < 0 else "zero marginal VaR")
        else:
            assert shown == pytest.approx(ratio, rel=RTOL)
    assert list(table[1:, 3]) == list(rpr.rank) and sorted(rpr.rank) == list(range(1, n + 1))
    checked.add(key)

    checked |= _check_by_desk(result, book)
    checked |= _check_stress_pnl(result, book)
    checked |= _check_options(result, book)
    checked |= _check_rolling(result, book)
    checked |= _check_handles(result, book)

    # VARBACKTEST on ROLLINGVAR's columns
    key = ("Backtest", "I5:J16")
    table = _cells(result, *key)
    var_oos, pnl_oos, _ = _rolling_by_hand(book)
    bt = xlmvar.var_backtest(pnl_oos, var_oos, c)
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
    var, pnl, _ = _rolling_by_hand(book)
    # the native columns: P&L read from the Daily returns sheet, VaR = -PERCENTILE.INC of the 250 days before
    np.testing.assert_allclose([values[f"F{r}"] for r in range(6, 256)], pnl, rtol=1e-12)
    np.testing.assert_allclose([values[f"G{r}"] for r in range(6, 256)], var, rtol=1e-10)
    assert values["J22"] <= 1e-6 * var.max()  # the sheet's largest |ROLLINGVAR - native VaR|
    flags = np.array([values[f"E{r}"] for r in range(6, 256)])
    by_hand = (-pnl > var).astype(int)  # an exception: a loss larger than that day's VaR
    np.testing.assert_array_equal(flags, by_hand)
    x, t = int(by_hand.sum()), by_hand.size
    table = _cells(result, "Backtest", "I5:J16")
    assert table[1, 1] == x == values["J19"]  # VARBACKTEST, numpy, native SUM
    p = 1 - book.c
    assert table[2, 1] == pytest.approx(p * t) == values["J20"]
    # Kupiec POF by hand (x > 0 here)
    assert 0 < x < t
    lr = -2 * ((t - x) * np.log(1 - p) + x * np.log(p)) + 2 * ((t - x) * np.log(1 - x / t) + x * np.log(x / t))
    assert table[4, 1] == pytest.approx(lr, rel=1e-10)
    # Basel (1996) table for 250 days at 99%: green 0-4, yellow 5-9, red 10+
    assert table[10, 1] == ("green" if x <= 4 else "yellow" if x <= 9 else "red")
    assert table[10, 1] == ("green" if binom.cdf(x, t, p) < 0.95 else "yellow" if binom.cdf(x, t, p) < 0.9999 else "red")
    assert values["J21"] == pytest.approx(pnl.min(), rel=1e-12)


def test_new_sheets_native_checks(recalculated, book):
    _, out = recalculated
    desk = cached_values(out, "By desk")
    for row in (24, 36):  # component column minus the book's figure (GROUPVAR normal, historical)
        assert abs(desk[f"C{row}"]) <= 1e-6
    assert abs(desk["I24"]) <= 1e-6  # GROUPES
    stress = cached_values(out, "Stress")
    mmult = [stress[f"I{r}"] for r in range(43, 43 + len(book.scenarios))]
    np.testing.assert_allclose(mmult, book.shocks @ book.x, rtol=1e-12)
    options = cached_values(out, "Options")
    grid = _option_grid(book)
    np.testing.assert_allclose([[options[f"{c}{r}"] for c in "EFG"] for r in range(24, 274)], grid, rtol=1e-12, atol=1e-6)
    pnl = grid.sum(axis=1)
    assert options["C16"] == pytest.approx(-np.quantile(pnl, 1 - book.c), rel=1e-12)
    assert options["C16"] == pytest.approx(options["B16"], rel=1e-10)
    assert options["C17"] == pytest.approx(options["B17"], rel=1e-10)
    daily = cached_values(out, "Daily returns")
    np.testing.assert_allclose([daily[f"I{r}"] for r in range(5, 505)], book.returns @ book.x, rtol=1e-12)


def test_handles_sheet_differences_are_zero_and_its_note_quotes_the_lost_handle_message(recalculated, book):
    from xlmvar.excel import handles

    result, out = recalculated
    values = cached_values(out, "Handles")
    formulas = formulas_of(out, "Handles")
    differences = [cell for cell, text in formulas.items() if re.fullmatch(r"=([A-Z]+)(\d+)-([A-Z]+)\2", text)]
    assert len(differences) == 4 + 2 * len(book.assets)  # four portfolio figures, two component columns
    assert all(values[cell] == 0 for cell in differences)
    sizes = [values[cell] for cell, text in formulas.items() if text.startswith("=ROWS(")]
    assert sizes == [book.cov.size, book.returns.size]
    # a handle lost (a fresh Python process): the cell says how to refresh, as the note quotes
    handle = next(v for v in values.values() if isinstance(v, str) and v.startswith("xlmvar-model:cov:"))
    handles.clear_models()
    with pytest.raises(ValueError) as lost:
        handles.resolve_model(handle)
    message = str(lost.value)
    assert message.startswith(f"model: the risk model {handle!r} is not in this Python session")
    notes = " ".join(v for v in values.values() if isinstance(v, str))
    assert message.partition(f"{handle!r} ")[2] in notes
    assert f"To refresh, {handles._REFRESH}." in notes
    # once RISKMODEL runs again on the same data, the same handle resolves to the same table
    assert handles.make_model(book.cov, "normal").handle == handle
    np.testing.assert_array_equal(handles.resolve_model(handle), book.cov)
    handles.clear_models()


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
    assert [r[1] for r in rules["J15"]] == ['"green"', '"yellow"', '"red"']


def test_charts_formulas_styles_and_names_survive_recalculation(recalculated):
    _, out = recalculated
    with zipfile.ZipFile(BOOK) as a, zipfile.ZipFile(out) as b:
        assert a.namelist() == b.namelist()
        for part in a.namelist():
            if not part.startswith("xl/worksheets/"):
                assert a.read(part) == b.read(part), part
        charts = {p: a.read(p).decode() for p in a.namelist() if p.startswith("xl/charts/chart")}
    assert len(charts) == 3
    bar = next(x for x in charts.values() if "<c:barChart>" in x and "Report!" in x)
    desk = next(x for x in charts.values() if "<c:barChart>" in x and "By desk" in x)
    assert "'By desk'!$B$" in desk and "'By desk'!$C$" in desk  # standalone and component VaR by desk
    line = next(x for x in charts.values() if "<c:lineChart>" in x)
    # the native component VaR column (equal to RISKREPORT's, tested above), which LibreOffice computes too
    assert "Report!$B$79:$B$85" in bar and "Report!$A$79:$A$85" in bar
    assert "Backtest!$F$6:$F$255" in line and "Backtest!$D$6:$D$255" in line  # native P&L and -VaR
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
    assert result.value("By desk", "C22") == pytest.approx(var, rel=1e-12)  # GROUPVAR's components sum
    p = book.returns @ x
    assert result.value("Backtest", "B100") == pytest.approx(-np.quantile(p[344 - 250:344], 0.01), rel=1e-10)
    assert result.value("Stress", "C35") == pytest.approx(var, rel=1e-12)
    inc = xlmvar.incremental_var(x, book.cov, book.trade, book.c, book.h)
    assert result.value("What-if", "B18") == pytest.approx(inc.exact, rel=1e-12)


@pytest.mark.skipif(soffice() is None, reason="LibreOffice is not installed (.ci/run installs libreoffice-calc-nogui)")
@pytest.mark.filterwarnings("ignore:Unable to read chart")  # openpyxl on LibreOffice's re-saved charts
def test_libreoffice_recalculates_the_native_block_to_the_engine(tmp_path, book, recalculated):
    # Blank every cached value first, so only a real recalculation in LibreOffice can fill them.
    blanked = tmp_path / "blank.xlsx"
    recalc = recalculated[0]  # the module's one recalculation of the committed book (its keys)
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
    # the new sheets' native checks, recomputed by LibreOffice from the typed inputs
    backtest = cached_values(lo, "Backtest")
    var, pnl, _ = _rolling_by_hand(book)
    np.testing.assert_allclose([backtest[f"F{r}"] for r in range(6, 256)], pnl, rtol=1e-12)
    np.testing.assert_allclose([backtest[f"G{r}"] for r in range(6, 256)], var, rtol=1e-10)
    stress = cached_values(lo, "Stress")
    np.testing.assert_allclose([stress[f"I{r}"] for r in range(43, 43 + len(book.scenarios))], book.shocks @ x, rtol=1e-12)
    options = cached_values(lo, "Options")
    assert options["C16"] == pytest.approx(-np.quantile(_option_grid(book).sum(axis=1), 1 - book.c), rel=1e-12)
    handles_sheet = cached_values(lo, "Handles")  # the sizes of the ranges the handles stand for
    assert [handles_sheet["C7"], handles_sheet["C8"]] == [book.cov.size, book.returns.size]
