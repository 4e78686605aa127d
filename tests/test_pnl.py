"""Tests for method "pnl" (full revaluation): the model is a P&L table in currency.

References: literal Python loops over scenarios (book P&L, R's type-7 quantile, tail mean,
the kernel rule written out from its formula), central finite differences of VaR/ES in the
scales, and the identity with historical simulation when the table is returns x holdings.
"""

from __future__ import annotations

import re
import math

import numpy as np
import pytest

from xlmvar.engine import pnl, risk
from xlmvar.excel import analytics

T, N = 240, 4


@pytest.fixture(scope="module")
def table():
    # P&L of four option-like positions: skewed, fat-tailed, correlated (currency)
    rng = np.random.default_rng(14)
    z = rng.standard_normal((T, 3))
    spot = z[:, 0]
    return np.column_stack([
        50_000 * spot + 20_000 * spot**2,           # long gamma
        -30_000 * spot - 25_000 * np.maximum(-spot, 0) ** 2,   # short put
        40_000 * (0.6 * spot + 0.8 * z[:, 1]),
        10_000 * rng.standard_t(4, T),
    ])


SCALES = np.array([1.0, 0.5, -0.8, 2.0])


def _book_pnl(scales, table):
    return [sum(scales[i] * table[t][i] for i in range(len(scales))) for t in range(len(table))]


def _type7(values, prob):
    s = sorted(values)
    h = (len(s) - 1) * prob
    lo = math.floor(h)
    return s[lo] + (h - lo) * (s[min(lo + 1, len(s) - 1)] - s[lo])


def _loop_var(scales, table, confidence=0.95):
    return -_type7(_book_pnl(scales, table), round(1 - confidence, 15))


def _loop_es(scales, table, confidence=0.95):
    p = _book_pnl(scales, table)
    q = _type7(p, round(1 - confidence, 15))
    tail = [v for v in p if v < q]
    return -sum(tail) / len(tail)


def _central(f, x, i, step):
    up, down = x.copy(), x.copy()
    up[i] += step
    down[i] -= step
    return (f(up) - f(down)) / (2 * step)


@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_var_and_es_are_literal_loops(table, confidence):
    var = risk.portfolio_var(SCALES, table, confidence, method="pnl")
    es = risk.portfolio_es(SCALES, table, confidence, method="pnl")
    assert var == pytest.approx(_loop_var(SCALES, table, confidence), rel=1e-12)
    assert es == pytest.approx(_loop_es(SCALES, table, confidence), rel=1e-12)


def test_marginal_es_is_a_finite_difference(table):
    d = risk.decompose(SCALES, table, "es", method="pnl")
    for i in range(N):
        fd = _central(lambda s: _loop_es(s, table), SCALES, i, 1e-6)
        assert d.marginal[i] == pytest.approx(fd, rel=1e-6)
    assert d.component == pytest.approx(SCALES * d.marginal, rel=1e-15)
    assert d.component.sum() == pytest.approx(d.total, rel=1e-12)


def test_exact_marginal_var_is_a_finite_difference(table):
    d = risk.decompose(SCALES, table, "var", method="pnl", smoothing="scenario")
    for i in range(N):
        fd = _central(lambda s: _loop_var(s, table), SCALES, i, 1e-6)
        assert d.marginal[i] == pytest.approx(fd, rel=1e-6)


def test_kernel_marginal_var_is_the_formula_written_out(table):
    # Gourieroux-Laurent-Scaillet kernel, Silverman's bandwidth, rescaled to sum to the VaR
    d = risk.decompose(SCALES, table, "var", method="pnl")
    p = _book_pnl(SCALES, table)
    q = _type7(p, 0.05)
    mean_p = sum(p) / T
    sd = math.sqrt(sum((v - mean_p) ** 2 for v in p) / (T - 1))
    iqr = _type7(p, 0.75) - _type7(p, 0.25)
    b = 0.9 * min(sd, iqr / 1.34) * T ** -0.2
    w = [math.exp(-0.5 * ((v - q) / b) ** 2) for v in p]
    w = [v / sum(w) for v in w]
    mu = [sum(table[t][i] for t in range(T)) / T for i in range(N)]
    e = [sum(w[t] * table[t][i] for t in range(T)) for i in range(N)]
    s = (q - mean_p) / (sum(w[t] * p[t] for t in range(T)) - mean_p)
    expected = [-(mu[i] + s * (e[i] - mu[i])) for i in range(N)]
    assert d.marginal == pytest.approx(expected, rel=1e-9)
    assert d.component.sum() == pytest.approx(d.total, rel=1e-12)
    assert d.total == pytest.approx(_loop_var(SCALES, table), rel=1e-12)


def test_same_as_historical_when_the_table_is_returns_times_holdings(table):
    # a linear book: P&L table = returns * holdings, scales 1 <=> historical with positions
    returns = table / 1e6
    holdings = np.array([1e6, 2e6, -5e5, 3e6])
    for measure in ("var", "es"):
        a = risk.decompose(np.ones(N), returns * holdings, measure, method="pnl")
        b = risk.decompose(holdings, returns, measure, method="historical")
        assert a.total == pytest.approx(b.total, rel=1e-12)
        assert a.component == pytest.approx(b.component, rel=1e-9)


def test_standalone_and_horizon(table):
    for i in range(N):
        alone = np.zeros(N)
        alone[i] = SCALES[i]
        assert risk.individual_var(SCALES, table, method="pnl")[i] == pytest.approx(_loop_var(alone, table), rel=1e-12)
        assert risk.individual_es(SCALES, table, method="pnl")[i] == pytest.approx(_loop_es(alone, table), rel=1e-12)
    one = risk.decompose(SCALES, table, method="pnl")
    ten = risk.decompose(SCALES, table, horizon=10, method="pnl")
    assert ten.total == pytest.approx(one.total * math.sqrt(10), rel=1e-14)
    assert ten.component == pytest.approx(one.component * math.sqrt(10), rel=1e-14)


def test_aliases_and_group_var(table):
    assert risk.check_method("full revaluation") == "pnl"
    out = analytics.GROUPVAR(SCALES.reshape(-1, 1), table, [["opt"], ["opt"], ["fut"], ["fx"]], method="pnl")
    assert out[-1][2] == pytest.approx(_loop_var(SCALES, table), rel=1e-12)
    assert sum(row[2] for row in out[1:-1]) == pytest.approx(out[-1][2], rel=1e-12)


@pytest.mark.parametrize(
    "args, message",
    [
        ((SCALES, np.eye(4) * 1e4), "pnl: is a symmetric 4 x 4 table"),
        ((SCALES, np.ones((5, 3))), "pnl: has 3 columns but there are 4 positions"),
        ((SCALES, np.ones((1, 4))), "pnl: has 1 rows; a 95% VaR (1 / (1 - confidence)) needs at least 20 scenarios"),
    ],
)
def test_bad_tables_are_named(args, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        risk.portfolio_var(*args, method="pnl")


def test_es_needs_enough_scenarios_and_options_are_checked(table):
    with pytest.raises(ValueError, match=r"pnl: has 10 rows; a 95% ES"):
        risk.portfolio_es(SCALES, table[:10], method="pnl")
    with pytest.raises(ValueError, match="mean: is not an option of the pnl method"):
        pnl.decompose(SCALES, table, mean=np.zeros(N))
    with pytest.raises(ValueError, match="draws: the pnl method does not take it"):
        analytics.GROUPVAR(SCALES, table, ["a"] * 4, method="pnl", draws=1000)
