"""Tests for STRESSPNL and WORSTDAYS (xlmvar.engine.scenarios): literal loops as reference."""

from __future__ import annotations

import numpy as np
import pytest

from xlmvar.engine import scenarios
from xlmvar.excel import analytics

X = [5e6, 3e6, 2e6]  # the seed's SPY / TLT / BTC book


def _loop_pnl(x, row):
    total = 0.0
    for i in range(len(x)):
        total += x[i] * row[i]
    return total


def test_stress_pnl_is_a_loop_sorted_by_loss():
    shocks = [[-0.20, 0.05, -0.50], [0.0, -0.10, 0.0], [0.05, 0.02, 0.10], [-0.10, 0.0, 0.0]]
    names = ["Equity crash", "Rates up", "Rally", "Equity -10%"]
    result = scenarios.stress_pnl(X, shocks, names)
    expected = sorted(((_loop_pnl(X, row), name) for row, name in zip(shocks, names)))
    # by hand: crash -1m + 0.15m - 1m = -1.85m; rates -0.3m; equity -10% -0.5m; rally +0.51m
    assert [p for p, _ in expected] == pytest.approx([-1.85e6, -0.5e6, -0.3e6, 0.51e6])
    assert result.labels == [name for _, name in expected]
    assert result.pnl == pytest.approx([p for p, _ in expected], rel=1e-15)
    assert result.parts.sum(axis=1) == pytest.approx(result.pnl, rel=1e-15)
    table = analytics.STRESSPNL(np.array([X]), np.array(shocks), np.array([names], dtype=object).T)
    assert table[0] == ["Scenario", "P&L"]
    assert table[1] == ["Equity crash", pytest.approx(-1.85e6)]


def test_equal_losses_keep_table_order_and_default_names():
    result = scenarios.stress_pnl([1.0, 1.0], [[0.1, 0.0], [-0.1, 0.0], [0.0, -0.1]])
    assert result.labels == ["Scenario 2", "Scenario 3", "Scenario 1"]


def test_shocks_of_more_than_100_percent_are_refused_and_a_fall_to_zero_is_not():
    # -20 typed for -20%: a P&L 100 times too large, silently, before
    with pytest.raises(ValueError, match=r"shocks: row 2, column 3 is -20, a fall of 2000%; .*divide by 100"):
        scenarios.stress_pnl(X, [[-0.2, 0.1, 0.0], [0.05, -0.01, -20.0]])
    with pytest.raises(ValueError, match=r"shocks: row 1, column 1 is -1\.5"):
        analytics.STRESSPNL(np.array([X]), np.array([[-1.5, 0.0, 0.0]]))
    with pytest.raises(ValueError, match=r"is -1\.0000001, a fall of 100\.00001%"):  # not rounded to "-1"
        scenarios.stress_pnl(X, [[-1.0000001, 0.0, 0.0]])
    default = scenarios.stress_pnl(X, [[-1.0, 0.0, 0.0], [0.0, 2.5, 0.0]])  # a default; a gain of 250%
    assert default.pnl == pytest.approx(sorted([-X[0], 2.5 * X[1]]), rel=1e-15)
    computed = -(0.1 + 0.2) / 0.3  # -1.0000000000000002: a fall to zero, in floating point
    assert scenarios.stress_pnl(X, [[computed, 0.0, 0.0]]).pnl[0] == pytest.approx(-X[0], rel=1e-15)


def test_worst_days_is_a_loop():
    rng = np.random.default_rng(5)
    returns = rng.normal(0, 0.01, size=(120, 3))
    dates = np.arange(45000, 45120, dtype=float)  # Excel serial dates
    result = scenarios.worst_days(X, returns, dates, 7)
    days = sorted((_loop_pnl(X, returns[t]), t) for t in range(120))[:7]
    assert list(result.rows) == [t for _, t in days]
    assert result.labels == [45000.0 + t for _, t in days]
    assert result.pnl == pytest.approx([p for p, _ in days], rel=1e-13)
    for j, (_, t) in enumerate(days):
        assert result.parts[j] == pytest.approx([X[i] * returns[t, i] for i in range(3)], rel=1e-15)
    table = analytics.WORSTDAYS(np.array([X]).T, returns, dates.reshape(-1, 1), 3)
    assert table[0] == ["Date", "P&L", "Position 1", "Position 2", "Position 3"]
    assert len(table) == 4 and table[1][0] == 45000.0 + days[0][1]
    assert len(scenarios.worst_days(X, returns).rows) == 10


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: scenarios.stress_pnl(X, [[0.1, 0.2]]), "shocks: has 2 columns but there are 3 positions"),
        (lambda: scenarios.stress_pnl(X, [[0.1, 0.2, 0.3]], ["a", "b"]), "names: has 2 cells but there are 1 scenarios"),
        (lambda: scenarios.stress_pnl(X, [[0.1, 0.2, 0.3]], [None]), "names: item 1 is blank"),
        (lambda: scenarios.worst_days(X, np.zeros((5, 3)), k=6), "k: got 6 but returns has 5 rows"),
        (lambda: scenarios.worst_days(X, np.zeros((5, 3)), k=0.5), "k: got 0.5; expected a positive whole number"),
        (lambda: scenarios.worst_days(X, [[0.1, "x", 0.0]]), "returns: row 1, column 2 holds the text 'x'"),
    ],
)
def test_bad_input_is_named(call, message):
    with pytest.raises(ValueError, match=message):
        call()
