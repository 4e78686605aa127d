"""Excel functions for price history and decisions, fed as Excel passes ranges; values worked
by hand or checked against an identity."""

import numpy as np
import pytest

import udfs
import xlmvar

COV = xlmvar.cov_from_corr([0.15, 0.10, 0.60], [[1, -0.3, 0.2], [-0.3, 1, 0.1], [0.2, 0.1, 1]])
X = np.array([[5e6], [3e6], [2e6]], dtype=object)


def test_returns_from_a_price_range():
    prices = np.array([[100.0, 50.0], [110.0, 45.0], [121.0, 54.0]], dtype=object)
    np.testing.assert_allclose(udfs.RETURNS(prices), [[0.1, -0.1], [0.1, 0.2]])
    np.testing.assert_allclose(udfs.RETURNS(prices, "log"), np.log([[1.1, 0.9], [1.1, 1.2]]))
    gap = prices.copy()
    gap[1, 1] = None
    with pytest.raises(ValueError, match="prices: row 2, column 2 holds a blank cell"):
        udfs.RETURNS(gap)
    np.testing.assert_allclose(udfs.RETURNS(gap, "simple", "drop"), [[0.21, 0.08]])


def test_covariance_estimators():
    r = np.random.default_rng(4).normal(0, 0.01, (60, 3))
    np.testing.assert_allclose(udfs.COVMATRIX(r), np.cov(r, rowvar=False), rtol=1e-12)
    # RiskMetrics EWMA, zero mean, weights lambda^(T-1-t) normalised to sum to 1, written out
    w = 0.94 ** np.arange(59, -1, -1)
    ewma = sum(wi * np.outer(ri, ri) for wi, ri in zip(w, r)) / w.sum()
    np.testing.assert_allclose(udfs.COVMATRIX(r, "ewma"), ewma, rtol=1e-12)
    np.testing.assert_allclose(udfs.COVMATRIX(r, "ewma", 0.97), sum(
        wi * np.outer(ri, ri) for wi, ri in zip(0.97 ** np.arange(59, -1, -1), r)) / (0.97 ** np.arange(60)).sum(), rtol=1e-12)
    corr = udfs.CORRMATRIX(r)
    np.testing.assert_allclose(corr, np.corrcoef(r, rowvar=False), rtol=1e-12)
    with pytest.raises(ValueError, match="method: .*sample, ewma, ledoit-wolf"):
        udfs.COVMATRIX(r, "garch")


def test_nearest_correlation_higham_example():
    # Higham (2002), IMA J. Numer. Anal. 22, section 4: A = [[1,1,0],[1,1,1],[0,1,1]]
    near = udfs.NEARESTCORR(np.array([[1, 1, 0], [1, 1, 1], [0, 1, 1]], dtype=object))
    np.testing.assert_allclose(near, [[1, 0.7607, 0.1573], [0.7607, 1, 0.7607], [0.1573, 0.7607, 1]], atol=1e-4)


def test_historical_var_through_the_function_matches_a_hand_quantile():
    r = np.random.default_rng(5).standard_t(4, (250, 3)) * 0.01
    w = np.array([[0.5], [0.3], [0.2]])
    pnl = np.sort(r @ w.ravel())
    h = 0.05 * (250 - 1)  # R type 7: h = (n - 1) p, between order statistics floor(h) and +1
    lo = int(np.floor(h))
    q = pnl[lo] + (h - lo) * (pnl[lo + 1] - pnl[lo])
    assert udfs.PORTVAR(w, r, 0.95, 1, "historical") == pytest.approx(-q, rel=1e-12)
    assert udfs.PORTES(w, r, 0.95, 1, "historical") == pytest.approx(-pnl[pnl < q].mean(), rel=1e-12)
    assert udfs.COMPONENTVAR(w, r, 0.95, 1, "historical").sum() == pytest.approx(-q, rel=1e-12)
    assert udfs.PORTVAR(w, r, 0.95, 1, "modified") == udfs.PORTVAR(w, r, 0.95, 1, "cornish-fisher")
    with pytest.raises(ValueError, match="mean: the historical method does not take it"):
        udfs.PORTVAR(w, r, 0.95, 1, "historical", [[0.0], [0.0], [0.0]])


def test_monte_carlo_options_and_standard_error():
    a = udfs.PORTVAR(X, COV, 0.95, 1, "montecarlo", None, 20_000, None, 7)
    b = udfs.PORTVAR(X, COV, 0.95, 1, "montecarlo", None, 20_000, None, 7)
    assert a == b  # a fixed seed recalculates to the same number
    se = udfs.MCSTDERR(X, COV, 0.95, 1, None, None, 20_000, None, 7)
    assert abs(a - udfs.PORTVAR(X, COV)) < 4 * se
    assert udfs.MCSTDERR(X, COV, 0.95, 1, None, None, 80_000, None, 7) == pytest.approx(se / 2, rel=0.15)


def test_incremental_es_is_exact():
    trade = np.array([[0.0], [1e6], [-5e5]])
    assert udfs.INCREMENTALES(X, COV, trade)[0][0] == pytest.approx(
        udfs.PORTES(X + trade, COV) - udfs.PORTES(X, COV), rel=1e-12)


def test_var_limits_trade_brings_the_share_to_the_limit():
    table = udfs.VARLIMITS(X, COV, 0.5)
    assert table[0][:4] == ["% of VaR", "Limit", "Breach", "Trade to limit"]
    assert [row[2] for row in table[1:]] == ["", "", "BREACH"]  # BTC carries 69% of the VaR
    trade = table[3][3]
    after = X.astype(float).ravel() + np.array([0, 0, trade])
    assert xlmvar.component_var_pct(after, COV)[2] == pytest.approx(0.5, abs=1e-10)
    report = udfs.RISKREPORT(np.array([["SPY"], ["TLT"], ["BTC"]], dtype=object), X, COV, None, None, None, 0.5)
    assert report[0][-3:] == ["Limit", "Breach", "Trade to limit"]
    assert report[3][-2:] == ["BREACH", pytest.approx(trade)]
    with pytest.raises(ValueError, match="limit: .*15% or 0.15"):
        udfs.VARLIMITS(X, COV, 15)


def test_best_hedge_closed_form_by_hand():
    # S x / 1e7 = (.0135, .00195, .0828); best hedge in asset i alone: -(S x)_i / S_ii
    table = udfs.BESTHEDGE(X, COV)
    np.testing.assert_allclose([row[0] for row in table[1:]],
                               [-0.0135e7 / 0.0225, -0.00195e7 / 0.01, -0.0828e7 / 0.36], rtol=1e-12)
    for i, row in enumerate(table[1:]):
        hedged = X.astype(float).ravel().copy()
        hedged[i] += row[0]
        assert xlmvar.marginal_var(hedged, COV)[i] == pytest.approx(0.0, abs=1e-12)
        assert row[2] == pytest.approx(xlmvar.portfolio_var(hedged, COV), rel=1e-12)


def test_return_per_risk_ranks_by_hand():
    er = np.array([[0.07], [0.04], [0.30]])
    table = udfs.RETURNPERRISK(X, COV, er)
    z = 1.6448536269514722
    mvar = z * np.array([0.0135, 0.00195, 0.0828]) / np.sqrt(0.023895)
    np.testing.assert_allclose([row[2] for row in table[1:]], er.ravel() / mvar, rtol=1e-12)
    assert [row[3] for row in table[1:]] == [2, 1, 3]


def test_risk_parity_shares_are_equal_and_budgets_respected():
    w = udfs.RISKPARITY(COV)
    assert w.shape == (3, 1) and w.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(xlmvar.component_var_pct(w.ravel(), COV), [1 / 3] * 3, atol=1e-8)
    budgets = np.array([[0.5, 0.3, 0.2]])
    wb = udfs.RISKPARITY(COV, budgets)
    assert wb.shape == (1, 3)
    np.testing.assert_allclose(xlmvar.component_var_pct(wb.ravel(), COV), [0.5, 0.3, 0.2], atol=1e-8)


def test_stress_correlation_by_hand():
    stressed = udfs.STRESSCORR([[1, -0.3], [-0.3, 1]], 0.5)
    np.testing.assert_allclose(stressed, [[1, 0.35], [0.35, 1]])  # 0.5 * -0.3 + 0.5 * 1
    with pytest.raises(ValueError, match="theta"):
        udfs.STRESSCORR([[1, -0.3], [-0.3, 1]], 1.5)


def test_new_asset_marginal_var_is_a_derivative():
    c = np.array([[0.001], [0.0], [0.002]])
    mvar = udfs.NEWASSETMVAR(X, COV, c, 0.04)
    big = np.block([[COV, c], [c.T, np.array([[0.04]])]])
    x = np.append(X.astype(float).ravel(), 0.0)
    step = 1e3
    up = xlmvar.portfolio_var(x + np.eye(4)[3] * step, big)
    down = xlmvar.portfolio_var(x - np.eye(4)[3] * step, big)
    assert mvar == pytest.approx((up - down) / (2 * step), rel=1e-6)


def test_backtest_counts_by_hand():
    rng = np.random.default_rng(9)
    pnl = rng.standard_t(4, 250)
    table = dict(udfs.VARBACKTEST(pnl.reshape(-1, 1), [[2.33]], 0.99))
    assert table["Exceptions"] == int(np.sum(-pnl > 2.33))
    assert table["Observations"] == 250
    assert table["Basel zone"] == ("green" if table["Exceptions"] <= 4 else "yellow" if table["Exceptions"] <= 9 else "red")


def test_a_limit_per_position():
    # shares of VaR are 28.2% / 2.4% / 69.3% (tests/test_parametric.py); limits 20% / 30% / 80%
    table = udfs.VARLIMITS(X, COV, np.array([[0.2], [0.3], [0.8]], dtype=object))
    assert [row[1] for row in table[1:]] == [0.2, 0.3, 0.8]
    assert [row[2] for row in table[1:]] == ["BREACH", "", ""]
    after = X.astype(float).ravel() + np.array([table[1][3], 0, 0])
    assert xlmvar.component_var_pct(after, COV)[0] == pytest.approx(0.2, abs=1e-10)
