"""Defects a review of the engine's less-trodden modules found (stop 26), each pinned against
an independent figure: a binomial probability, a correlation squared, a window recomputed
by the historical module, the closed form of a scaled book.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pytest

from xlmvar.engine import backtest, factors, hedging, historical, pnl, rolling

Z95 = NormalDist().inv_cdf(0.95)


# --- Basel traffic light: no exception is never evidence against a model ----------------------


@pytest.mark.parametrize("observations, confidence", [(1, 0.9999), (5, 0.99), (50, 0.999), (51, 0.999), (3, 0.9999)])
def test_no_exception_is_green_with_no_plus_factor(observations, confidence):
    # P(X <= 0) = c^T reaches 95% here: read literally the rule gave yellow (0.40) or red (1.0)
    assert confidence**observations >= 0.95
    assert backtest.basel_zone(0, observations, confidence) == "green"
    assert backtest.basel_plus_factor(0, observations, confidence) == 0.0
    bt = backtest.var_backtest([1.0] * observations, 1.0, confidence)
    assert (bt.exceptions, bt.zone, bt.plus_factor) == (0, "green", 0.0)


def test_the_published_table_is_unchanged():
    zones = [backtest.basel_zone(k, 250, 0.99) for k in range(12)]
    assert zones == ["green"] * 5 + ["yellow"] * 5 + ["red"] * 2
    assert [backtest.basel_plus_factor(k, 250, 0.99) for k in range(11)] == [0, 0, 0, 0, 0, 0.4, 0.5, 0.65, 0.75, 0.85, 1.0]
    # one exception in 50 days of a 99.9% VaR is evidence: P(X >= 1) = 1 - 0.999^50 = 4.9%
    assert backtest.basel_zone(1, 50, 0.999) == "yellow"


@pytest.mark.parametrize("call", [
    lambda c: backtest.kupiec_pof(1, 10, c),
    lambda c: backtest.basel_zone(0, 10, c),
    lambda c: pnl.decompose([1.0, 1.0], np.random.default_rng(0).normal(size=(50, 2)), "var", c),
    lambda c: rolling.rolling_var([1.0], np.random.default_rng(0).normal(0, 0.01, (30, 1)), 10, c, "normal"),
])
def test_a_confidence_a_hair_below_one_is_refused_by_name(call):
    # 1 - c rounds to a tail probability of 0: log(0), a division by 0, a "red" zone
    with pytest.raises(ValueError, match=r"^confidence: got 0\.9999999999999999, a tail probability below 1e-15"):
        call(0.9999999999999999)
    assert backtest.kupiec_pof(1, 10, 1 - 1e-15) > 0  # the last confidence accepted


# --- factor loadings: an asset whose returns never change -----------------------------------


def test_a_constant_asset_has_no_exposure_and_an_r_squared_of_0():
    f = [[0.01], [-0.02], [0.015], [0.003], [-0.007], [0.02]]
    fit = factors.factor_loadings([[0.7]] * 6, f)  # was R^2 = -24.3
    assert fit.r_squared[0] == 0.0 and fit.loadings[0, 0] == 0.0
    assert fit.intercept[0] == 0.7 and fit.specific_var[0] == 0.0
    rng = np.random.default_rng(3)
    g = rng.normal(0.0, 0.01, (250, 1))
    other = 0.8 * g[:, 0] + rng.normal(0.0, 0.004, 250)
    returns = np.column_stack([np.full(250, 0.0001), other])  # cash at 1 bp a day: was R^2 = 0.8
    fit = factors.factor_loadings(returns, g)
    assert fit.r_squared[0] == 0.0 and fit.loadings[0, 0] == 0.0
    # one factor: R^2 is the squared correlation, beta the covariance over the variance
    assert fit.r_squared[1] == pytest.approx(np.corrcoef(other, g[:, 0])[0, 1] ** 2, rel=1e-12)
    assert fit.loadings[1, 0] == pytest.approx(np.cov(other, g[:, 0])[0, 1] / np.var(g[:, 0], ddof=1), rel=1e-12)


# --- rolling VaR: the historical module's own rules, window by window -------------------------


def test_rolling_refuses_what_the_historical_method_refuses():
    ret = np.random.default_rng(0).normal(0.0, 0.01, (60, 2))
    x = [1e6, -5e5]
    for method in ("historical", "normal", "cornish-fisher"):  # percentages: a VaR 100x too large
        with pytest.raises(ValueError, match=r"^returns: .* look like percentages"):
            rolling.rolling_var(x, ret * 100, 30, 0.95, method)
    with pytest.raises(ValueError, match=r"^returns: .* look like percentages"):
        historical.decompose(x, ret[:30] * 100, "var", 0.95, 1)
    # a window shorter than 1 / (1 - c): the worst day or two, whatever the confidence
    assert historical.rows_needed(0.99) == 100
    for method, what in (("historical", "historical VaR"), ("pnl", "VaR of a P&L table")):
        with pytest.raises(ValueError, match=rf"^window: got 5; a 99% {what} needs at least 100 periods"):
            rolling.rolling_var(x, ret, 5, 0.99, method)
    forecast = rolling.rolling_var(x, ret, 20, 0.95)  # 20 periods suffice at 95%: as the module computes it
    for j in (0, 17, 39):
        assert forecast.var[j] == pytest.approx(historical.decompose(x, ret[j : j + 20], "var", 0.95, 1).total, rel=1e-12)


@pytest.mark.parametrize("method", ["historical", "normal", "cornish-fisher", "pnl"])
def test_the_rolling_var_of_a_perfect_hedge_is_0(method):
    a = np.random.default_rng(0).normal(0.0, 0.01, 300)
    ret = np.column_stack([a, (1 + a) * 1.1 / 1.1 - 1])  # one price, its return computed two ways
    assert np.abs(ret[:, 0] - ret[:, 1]).max() > 0  # rounding noise, ~1e-17
    forecast = rolling.rolling_var([1e6, -1e6], ret, 100, 0.95, method)
    np.testing.assert_array_equal(forecast.var, 0.0)  # was 1.2e-10: a backtest counted it
    assert historical.decompose([1e6, -1e6], ret[:100], "var", 0.95, 1).total == 0.0


# --- scaled books: figures of degree 1 scale, figures of degree 0 do not ----------------------

S = np.array([[0.04, 0.018], [0.018, 0.09]])


@pytest.mark.parametrize("size", [1e-170, 1e-160, 1.0, 1e150])
def test_hedges_and_factor_var_scale_with_the_book(size):
    x = np.array([1.0, 2.0])
    sigma = math.sqrt(float(x @ S @ x))
    hedge = hedging.best_hedge(x * size, S)
    # closed form of Litterman's hedge: VaR after = z sqrt(sigma^2 - (S x)_i^2 / S_ii)
    after = Z95 * np.sqrt(sigma**2 - (S @ x) ** 2 / np.diag(S))
    np.testing.assert_allclose(hedge.var_after / size, after, rtol=1e-12)
    np.testing.assert_allclose(hedge.reduction_pct, 1 - after / (Z95 * sigma), rtol=1e-12)  # was 100%
    c = np.array([0.01, 0.02])
    assert hedging.marginal_var_new_asset(x * size, S, c, 0.05) == pytest.approx(Z95 * float(c @ x) / sigma, rel=1e-12)
    b, f, d = np.array([[1.0], [0.5]]), np.array([[0.04]]), np.array([0.01, 0.02])
    total = Z95 * math.sqrt(float(x @ (b @ f @ b.T + np.diag(d)) @ x))
    assert factors.factor_var(x * size, b, f, d).total / size == pytest.approx(total, rel=1e-12)  # was 0


def test_risk_budgets_of_any_size_are_normalised():
    from xlmvar.engine.allocation import risk_parity

    s = np.array([[0.04, 0.01], [0.01, 0.09]])
    equal = risk_parity(s, [1.0, 1.0])
    # equal risk of two assets: w_i proportional to 1 / sigma_i here (the covariance term is shared)
    np.testing.assert_allclose(equal.weights, [0.6, 0.4], rtol=1e-12)
    for big in ([1e308, 1e308], [1e-300, 1e-300]):  # the sum overflowed: blamed on cov
        np.testing.assert_allclose(risk_parity(s, big).weights, equal.weights, rtol=1e-12)


def test_rolling_normal_var_scales_with_the_book():
    r = np.random.default_rng(5).normal(0.0, 0.01, (300, 2))
    one = rolling.rolling_var([1.0, 1.0], r, 60, 0.95, "normal").var
    p = r @ [1.0, 1.0]
    assert one[0] == pytest.approx(Z95 * np.std(p[:60], ddof=1), rel=1e-12)  # the window's own figure
    for size in (1e-170, 1e150):  # was 0 (the squares underflowed), or inf
        np.testing.assert_allclose(rolling.rolling_var([size, size], r, 60, 0.95, "normal").var / size, one, rtol=1e-12)


def test_the_first_calls_of_a_method_from_many_threads_all_get_figures():
    # the method's module is imported on the first call; a second thread must not get it half built
    import subprocess
    import sys

    code = (
        "import threading, numpy as np, xlmvar\n"
        "r = np.random.default_rng(0).normal(size=(300, 3)) * 0.01\n"
        "out, bar = [], threading.Barrier(8)\n"
        "def go():\n"
        "    bar.wait()\n"
        "    try: out.append(xlmvar.portfolio_var([1.0, 2.0, 3.0], r, 0.95, 1, 'cornish-fisher'))\n"
        "    except Exception as e: out.append(repr(e))\n"
        "ts = [threading.Thread(target=go) for _ in range(8)]\n"
        "[t.start() for t in ts]; [t.join() for t in ts]\n"
        "print(len(set(out)), out[0])\n"
    )
    for _ in range(3):
        printed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
        count, first = printed.split(maxsplit=1)
        assert count == "1" and float(first) > 0, printed


def test_sums_and_differences_of_finite_figures_that_overflow_are_refused():
    from xlmvar.engine import risk

    c = np.array([[1.0, -1.0], [-1.0, 1.0]])
    x = [1e308, 1e308]  # each individual VaR is finite (1.6e308), their sum is not
    assert np.isfinite(risk.individual_var(x, c)).all()
    for call in (risk.undiversified_var, risk.diversification_benefit):  # were inf
        with pytest.raises(ValueError, match=r"^positions: the sum of the individual VaRs .* too large or too small"):
            call(x, c)
    # before and after are finite, their difference is not (was -inf, shown by INCREMENTALVAR)
    with pytest.raises(ValueError, match=r"^trade: the incremental VaR of this trade is too large or too small"):
        risk.incremental_var([1e308, 0.0], np.diag([1.0, 0.0]), [-1e308, 1.7e308], 0.95, 1, "normal", mean=np.array([0.0, 0.9]))


def test_cornish_fisher_reads_the_tail_probability_as_given():
    from xlmvar.engine import risk
    from xlmvar.engine import modified

    z = np.random.default_rng(1).normal(size=20000) * 0.01
    r = np.concatenate([z, -z])[:, None]  # symmetric: no skewness, the expansion in K alone
    mean, m2, _, m4 = modified.pnl_moments(r[:, 0])
    k = m4 / m2**2 - 3.0
    for c in (0.95, 0.9999999999999984):  # 1 - c = 1.6e-15: rounded to 15 decimals it was 2e-15
        q = NormalDist().inv_cdf(1.0 - c)
        expected = -mean - (q + (q**3 - 3 * q) * k / 24.0) * math.sqrt(m2)  # PerformanceAnalytics' mVaR
        assert risk.portfolio_var([1.0], r, c, 1, "cornish-fisher") == pytest.approx(expected, rel=1e-12)


def test_the_cure_trade_is_the_first_crossing_of_the_limit():
    # the historical share is not monotone: a 16-step grid and brentq found a root past the
    # first crossing (a trade of -127.96 where -125.97 reaches the limit)
    from scipy.optimize import brentq

    from xlmvar.engine import limits, risk

    r = np.random.default_rng(2053)
    n = int(r.integers(2, 5))
    a = r.normal(size=(n, n))
    s = a @ a.T * 1e-4
    returns = r.multivariate_normal(np.zeros(n), s, size=100) + r.standard_t(3, size=(100, n)) * 0.002
    x = r.normal(size=n) * 100
    limit = float(r.uniform(0.05, 0.9))
    got = limits.var_limits(x, returns, limit, 0.95, 1, "historical")
    assert got.breach[1]

    def share(y):  # brute force: the share of asset 2 with its position at y, on a fine grid
        book = x.copy()
        book[1] = y
        return float(risk.component_var_pct(book, returns, 0.95, 1, "historical")[1])

    grid = x[1] * np.linspace(1.0, 0.0, 2001)[1:-1]
    k = next(k for k, y in enumerate(grid) if share(y) <= limit)
    first = brentq(lambda y: share(y) - limit, grid[k], grid[k - 1], xtol=1e-12)
    assert got.trade[1] == pytest.approx(first - x[1], rel=1e-9)


@pytest.mark.parametrize("size", [1e-160, 1.0, 1e156])
def test_the_closed_form_cure_trade_scales_with_the_book(size):
    from xlmvar.engine import limits

    s = np.diag([1e-4, 1e-4])
    got = limits.var_limits(np.array([300.0, 100.0]) * size, s, 0.5)
    # shares x_i^2 / sum x^2: 0.9 and 0.1; the first falls to 0.5 at y = 100
    assert got.trade[0] == pytest.approx(-200.0 * size, rel=1e-12) and got.reason[0] == ""


def test_no_negative_zero_reaches_a_cell():
    from xlmvar.engine import parametric

    hedge = hedging.best_hedge([100.0], [[1e-4]])  # the hedge of a lone position closes it: 0, not -0
    assert hedge.position_after[0] == 0.0 and not np.signbit(hedge.position_after[0])
    d = parametric.decompose([1e6, -1e6], [[0.04, 0.04], [0.04, 0.04]])  # a perfect hedge
    assert d.total == 0.0 and not np.signbit(d.component).any() and not np.signbit(d.marginal).any()


def test_worst_days_refuses_what_the_historical_method_refuses():
    from xlmvar.engine import scenarios

    percent = [[-1.2, 0.5], [0.8, -2.0], [0.3, 0.1]]  # daily returns typed in percent
    with pytest.raises(ValueError, match=r"^returns: .* look like percentages"):
        scenarios.worst_days([100.0, 50.0], percent, k=1)  # was a P&L of -120 on a book of 150
    prices = [[101.0, 52.0], [99.5, 53.1], [100.2, 51.7]]
    with pytest.raises(ValueError, match=r"^returns: .*"):
        scenarios.worst_days([100.0, 50.0], prices, k=1)  # was a "worst day" that gained 25,830
    days = scenarios.worst_days([100.0, 50.0], [[-0.012, 0.005], [0.008, -0.02], [0.003, 0.001]], k=1)
    assert days.pnl[0] == pytest.approx(100 * -0.012 + 50 * 0.005, rel=1e-12)  # -0.95, the worst of -0.95, -0.2, 0.35
