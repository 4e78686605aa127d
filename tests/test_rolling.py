"""Tests for ROLLINGVAR (xlmvar.engine.rolling): a literal loop calling the engine on each
window slice of the returns table is the reference."""

from __future__ import annotations

import numpy as np
import pytest

from xlmvar.engine import backtest, risk, rolling
from xlmvar.excel import analytics

X = np.array([5e6, 3e6, 2e6])


@pytest.fixture(scope="module")
def returns():
    rng = np.random.default_rng(9)
    vol = np.exp(np.cumsum(rng.normal(0, 0.05, 160)))[:, None] * 0.01
    return rng.standard_t(4, size=(160, 3)) * vol * [1.0, 0.6, 3.0]


@pytest.mark.parametrize("method, confidence", [("historical", 0.95), ("historical", 0.99), ("normal", 0.95),
                                                ("cornish-fisher", 0.975), ("pnl", 0.95)])
def test_each_forecast_is_the_engine_on_the_window_before(returns, method, confidence):
    w = 100
    result = rolling.rolling_var(X, returns, w, confidence, method)
    assert list(result.rows) == list(range(w, 160))
    for j, t in enumerate(range(w, 160)):
        window = returns[t - w : t]  # rows before t only
        model = np.cov(window.T) if method == "normal" else window
        expected = risk.portfolio_var(X, model, confidence, method=method)
        assert result.var[j] == pytest.approx(expected, rel=1e-9)
        assert result.pnl[j] == pytest.approx(sum(X[i] * returns[t, i] for i in range(3)), rel=1e-13)


def test_excel_output_feeds_the_backtest(returns):
    table = analytics.ROLLINGVAR(X.reshape(1, -1), returns, 120, 0.99)
    assert table[0] == ["Period", "VaR", "P&L"]
    assert [row[0] for row in table[1:]] == list(range(121, 161))
    var, pnl = [row[1] for row in table[1:]], [row[2] for row in table[1:]]
    exceptions = sum(1 for v, p in zip(var, pnl) if -p > v)
    assert backtest.var_backtest(pnl, var, 0.99).exceptions == exceptions
    dated = analytics.ROLLINGVAR(X, returns, 150, dates=np.arange(1, 161) + 45000.0)
    assert dated[0][0] == "Date" and dated[1][0] == 45151.0


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"window": 160}, "window: got 160 but returns has 160 rows"),
        ({"window": 1}, "window: got 1; the historical method needs at least 2"),
        ({"window": 2.5}, "window: got 2.5; expected a positive whole number"),
        ({"window": 50, "method": "montecarlo"}, "method: montecarlo cannot be rolled"),
        ({"window": 50, "confidence": 95}, "confidence: got 95, which looks like a percentage"),
    ],
)
def test_bad_arguments_are_named(returns, kwargs, message):
    with pytest.raises(ValueError, match=message):
        rolling.rolling_var(X, returns, **kwargs)
