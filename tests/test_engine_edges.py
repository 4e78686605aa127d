"""Engine edges that used to give silent wrong numbers (issue 10).

Each test pins a rule with a value that comes from somewhere else: a hand calculation, a
closed form (scipy's distributions as a second engine), a brute-force grid, or the IEEE sign
of zero.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from xlmvar.engine import backtest, covariance, historical, modified, parametric, risk, simulation
from xlmvar.engine._validation import check_confidence

COV = np.array([[0.0004, 0.0001], [0.0001, 0.0009]])
X = np.array([1e6, 5e5])


# --- confidence ------------------------------------------------------------------------------


@pytest.mark.parametrize("confidence, hint", [(0.05, "0.95"), (0.01, "0.99"), (0.3, "0.7"), (0.499, "0.501")])
def test_confidence_below_one_half_is_refused_with_the_tail_hint(confidence, hint):
    # below 50% the normal VaR z_c sigma would be a gain: Phi^-1(c) < 0 (scipy as reference)
    assert stats.norm.ppf(confidence) < 0
    message = rf"^confidence: got {confidence:g}; expected at least 0.5 .*use {hint}$"
    with pytest.raises(ValueError, match=message):
        check_confidence(confidence)
    with pytest.raises(ValueError, match=message):
        risk.portfolio_var(X, COV, confidence)


def test_confidence_of_one_half_is_the_lowest_accepted():
    # at 50% the normal VaR is the mean loss: z = 0
    assert check_confidence(0.5) == 0.5
    assert parametric.decompose(X, COV, confidence=0.5).total == 0.0


@pytest.mark.parametrize("value", [1.5, 2, 49, 49.99, 100, 150])
def test_numbers_above_one_get_no_percentage_hint_unless_it_gives_a_sensible_confidence(value):
    # 1.5 would be read as 1.5% = 0.015, which is no confidence a VaR is quoted at
    with pytest.raises(ValueError) as info:
        check_confidence(value)
    message = str(info.value)
    assert message == (
        f"confidence: got {value:g}; expected a probability strictly between 0 and 1 such as "
        "95% or 0.95"
    )
    assert "%" not in message.split(";")[0] and "looks like a percentage" not in message


@pytest.mark.parametrize("value, fraction", [(95, "0.95"), (99, "0.99"), (99.9, "0.999"), (50, "0.5"), (97.5, "0.975")])
def test_percentage_hint_where_value_over_100_is_a_confidence(value, fraction):
    with pytest.raises(ValueError, match=rf"^confidence: got {value:g}, which looks like a percentage; use {value:g}% or {fraction}$"):
        check_confidence(value)


# --- historical rows -------------------------------------------------------------------------


@pytest.mark.parametrize("confidence, needed", [(0.95, 20), (0.975, 40), (0.99, 100), (0.5, 2), (0.9, 10)])
def test_historical_var_needs_one_over_the_tail_probability_rows(confidence, needed):
    # hand values: ceil(1 / (1 - c)); with fewer rows the worst observation (empirical
    # probability 1/T) is not as far in the tail as the 1 - c quantile
    assert historical.rows_needed(confidence) == needed
    rng = np.random.default_rng(5)
    r = rng.normal(0.0, 0.01, (needed, 2))
    short = r[: needed - 1]
    pattern = rf"^returns: has {needed - 1} rows; a {confidence * 100:g}% historical VaR .* needs at least {needed} rows"
    for function in (historical.decompose, historical.standalone):
        with pytest.raises(ValueError, match=pattern):
            function(X, short, "var", confidence)
    with pytest.raises(ValueError, match=pattern):
        risk.portfolio_var(X, short, confidence, method="historical")
    # at the boundary the VaR is the type-7 quantile (numpy as reference)
    total = historical.decompose(X, r, "var", confidence).total
    assert total == pytest.approx(-np.quantile(r @ X, round(1 - confidence, 15)), rel=1e-12)


def test_two_rows_no_longer_give_a_var_at_any_confidence():
    r = np.array([[0.01, -0.02], [-0.03, 0.01]])
    for confidence in (0.6, 0.95, 0.999):
        with pytest.raises(ValueError, match=r"^returns: has 2 rows; a .* historical VaR"):
            historical.decompose(X, r, "var", confidence)
    # type 7 on two rows gives the same figure at 95% and 99.9% but for the interpolation
    # weight: (1-g) p_(1) + g p_(2) with g = (T - 1) a -> both within the worst two days
    pnl = np.sort(r @ X)
    for a in (0.05, 0.001):
        assert pnl[0] <= np.quantile(pnl, a) <= pnl[1]


# --- backtest statistics: never -0.0 ---------------------------------------------------------


@pytest.mark.parametrize("x, t, c", [(5, 100, 0.95), (1, 100, 0.99), (25, 250, 0.9), (3, 300, 0.99), (10, 1000, 0.99)])
def test_kupiec_is_plus_zero_when_the_rate_equals_p(x, t, c):
    # x / T = 1 - c exactly: the two likelihoods coincide, LR = 0 (a positive zero)
    lr = backtest.kupiec_pof(x, t, c)
    assert lr == 0.0 and math.copysign(1.0, lr) == 1.0
    result = backtest.var_backtest(np.r_[-np.ones(x) * 2.0, np.ones(t - x)], 1.0, c)
    assert result.exceptions == x
    assert math.copysign(1.0, result.pof_lr) == 1.0 and result.pof_lr == 0.0
    assert result.pof_pvalue == 1.0
    assert result.expected_exceptions == x  # p T with p = 1 - c rounded to 15 decimals


@pytest.mark.parametrize("counts", [(8, 2, 4, 1), (16, 4, 4, 1), (12, 3, 4, 1), (40, 10, 8, 2)])
def test_christoffersen_is_plus_zero_when_both_transition_rates_are_equal(counts):
    # pi01 = n01 / (n00 + n01) = pi11 = n11 / (n10 + n11) = pi: no dependence at all
    n00, n01, n10, n11 = counts
    assert n01 * (n10 + n11) == n11 * (n00 + n01)
    lr = backtest.christoffersen_independence(*counts)
    assert lr == 0.0 and math.copysign(1.0, lr) == 1.0


def test_kupiec_still_matches_the_closed_form():
    # 13 exceptions in 250 days at 99%: -2 ln[(0.99^237 0.01^13) / ((237/250)^237 (13/250)^13)]
    x, t, p = 13, 250, 0.01
    expected = -2 * (
        (t - x) * math.log(1 - p) + x * math.log(p) - (t - x) * math.log(1 - x / t) - x * math.log(x / t)
    )
    assert backtest.kupiec_pof(x, t, 0.99) == pytest.approx(expected, rel=1e-13)


# --- Cornish-Fisher outside its domain -------------------------------------------------------

_Z = np.linspace(-12.0, 12.0, 480_001)
_W = stats.norm.pdf(_Z) * (_Z[1] - _Z[0])


def _h(z, s, k):
    """The expansion, written out (the reference for the engine's closed forms)."""
    return z + (z * z - 1) * s / 6 + (z**3 - 3 * z) * k / 24 - (2 * z**3 - 5 * z) * s * s / 36


def _misranked_on_a_grid(tail, s, k, step=1):
    """Normal probability of the z that h ranks on the wrong side of h(z_a): brute force."""
    za = stats.norm.ppf(tail)
    z = _Z[::step]
    wrong = np.sign(_h(z, s, k) - _h(za, s, k)) != np.sign(z - za)
    return float(_W[::step][wrong].sum() * step)


def _moments(pnl):
    """Skewness and excess kurtosis as PerformanceAnalytics (and the engine) define them."""
    d = pnl - pnl.mean()
    m2 = (d**2).sum() / (pnl.size - 1)
    return (d**3).mean() / m2**1.5, (d**4).mean() / m2**2 - 3


@pytest.mark.parametrize(
    "tail, s, k",
    [(0.05, 0.0, -1.2), (0.01, 0.0, -1.2), (0.05, 6.0, 60.0), (0.05, 0.0, 100.0), (0.01, 0.0, 100.0),
     (0.05, -3.0, 10.0), (0.05, 3.0, 10.0), (0.05, 0.5, 20.0), (0.001, 1.3, 3.2), (0.05, 0.638, -0.401)],
)
def test_misranked_probability_equals_a_brute_force_grid(tail, s, k):
    # the grid resolves a root to a step of 5e-5, so the masses agree to ~2e-5
    assert modified.cornish_fisher_misranked(tail, s, k) == pytest.approx(
        _misranked_on_a_grid(tail, s, k), abs=5e-5
    )


def test_maillard_domain_is_where_the_derivative_never_changes_sign():
    # h'(z) >= 0 on a fine z grid (brute force) <=> the closed-form condition, over a grid of
    # (S, K) kept away from the boundary curve, where a finite grid could disagree
    # (the grid reaches |z| = 11,000: a small negative z^2 coefficient folds h far out)
    z = np.sinh(np.linspace(-10.0, 10.0, 4_001))
    agree = 0
    for s in np.linspace(-1.5, 1.5, 21):
        for k in np.linspace(-1.0, 10.0, 23):
            a, b, c = k / 8 - s * s / 6, s / 3, 1 - k / 8 + 5 * s * s / 36
            if abs(a) < 1e-9 and s != 0 or a > 0 and abs(b * b - 4 * a * c) < 1e-3:
                continue
            grid = bool(np.all(np.diff(_h(z, s, k)) > 0))
            assert bool(modified.cornish_fisher_monotone(s, k)) == grid, (s, k)
            agree += 1
            if grid:  # inside: no probability is misranked at any confidence
                for tail in (0.3, 0.05, 0.01, 0.001):
                    assert modified.cornish_fisher_misranked(tail, s, k) == 0.0
    assert agree > 450
    # the S = 0 section is 0 <= K <= 8, by hand from h'(z) = 1 + K (z^2 - 1) / 8
    assert modified.cornish_fisher_monotone([0, 0, 0, 0], [-0.01, 0.0, 8.0, 8.01]).tolist() == [
        False, True, True, False
    ]


def _lottery(gain_days, rows=200):
    """Daily returns of a position that loses a little most days and gains a lot rarely."""
    r = np.full(rows, -0.004)
    r[:: rows // gain_days] = 0.06
    r += 0.0005 * np.sin(np.arange(rows))  # no ties
    return r[:, None]


def test_strong_positive_skew_no_longer_gives_a_negative_var():
    r = _lottery(8)
    s, k = _moments(r[:, 0])
    assert s > 4 and k > 15
    # what the expansion gives there (PerformanceAnalytics' formula, written out): a "VaR"
    # below zero although the book loses 0.4% on 96% of days
    sd = r[:, 0].std(ddof=1)
    raw = -(r.mean() + _h(stats.norm.ppf(0.05), s, k) * sd) * 1e6
    assert raw < 0
    assert -np.quantile(r[:, 0], 0.05) * 1e6 > 0  # the historical VaR is a loss
    assert _misranked_on_a_grid(0.05, s, k) > 0.005
    pattern = (
        rf"^returns: the P&L of these positions has skewness {s:.3g} and excess kurtosis {k:.3g}, "
        r"where the Cornish-Fisher expansion is not monotone: .*K/8 > S\^2/6 .* use method \"historical\""
    )
    for measure in ("var", "es"):
        with pytest.raises(ValueError, match=pattern):
            modified.decompose([1e6], r, measure)
        with pytest.raises(ValueError, match=pattern):
            risk.decompose([1e6], r, measure, method="cornish-fisher")
    with pytest.raises(ValueError, match=r"^returns: the P&L of position 2 held alone has skewness"):
        modified.standalone([1e6, 1e6], np.column_stack([0.01 * np.sin(np.arange(200)), r[:, 0]]))


def test_refusal_boundary_is_a_tenth_of_the_tail_on_the_brute_force_grid():
    # an evenly spread normal sample with every 50th day raised by x: the skewness grows with
    # x and, between x = 7.86 and 7.88, the fold of h reaches the 5% quantile; each history
    # is refused exactly when the grid puts more than a tenth of the tail on the wrong side
    base = stats.norm.ppf((np.arange(200) + 0.5) / 200)
    seen = set()
    for x in np.linspace(7.86, 7.88, 21):
        pnl = base.copy()
        pnl[::50] += x
        pnl *= 0.01  # daily returns of 1% standard deviation; skewness and kurtosis unchanged
        s, k = _moments(pnl)
        share = _misranked_on_a_grid(0.05, s, k, step=4) / 0.05
        if abs(share - 0.1) < 5e-3:
            continue
        try:
            modified.decompose([1.0], pnl[:, None])
            seen.add("accepted")
            assert share < 0.1, (x, s, k, share)
        except ValueError as error:
            seen.add("refused")
            assert "not monotone" in str(error) and share > 0.1, (x, s, k, share)
    assert seen == {"accepted", "refused"}


# --- Monte Carlo: Student-t dof and the size of the scenario table ---------------------------


def _t_var_factor(confidence, dof):
    """VaR of a variance-matched Student-t in standard deviations (scipy as reference)."""
    return stats.t.ppf(confidence, dof) * math.sqrt((dof - 2) / dof)


def test_dof_just_above_two_is_refused_because_the_var_collapses():
    # the closed form the refusal is about: the variance-matched t VaR falls to 0 at dof -> 2
    assert _t_var_factor(0.95, 2.01) < 0.21 < 1.35 < _t_var_factor(0.95, 3) < stats.norm.ppf(0.95)
    for dof in (2.01, 2.1, 2.5, 2.999):
        with pytest.raises(ValueError, match=rf"^dof: got {dof:g}; expected at least 3 such as 5: .*shrinks to 0"):
            simulation.decompose(X, COV, dof=dof, draws=1000)
        with pytest.raises(ValueError, match=rf"^dof: got {dof:g}; expected at least 3"):
            risk.portfolio_var(X, COV, method="montecarlo", dof=dof, draws=1000)
    with pytest.raises(ValueError, match=r"^dof: got 2; expected Student-t degrees of freedom above 2 .*at least 3"):
        simulation.check_dof(2)
    assert simulation.check_dof(3) == 3.0


def test_dof_of_three_gives_the_variance_matched_t_var():
    # every portfolio of the multivariate t is a scaled univariate t: closed-form VaR
    sigma = math.sqrt(X @ COV @ X)
    exact = _t_var_factor(0.99, 3.0) * sigma
    mc = simulation.decompose(X, COV, "var", 0.99, dof=3, draws=200_000)
    se = simulation.standard_error(X, COV, "var", 0.99, dof=3, draws=200_000)
    assert abs(mc.total - exact) <= 4 * se


def test_scenario_table_is_capped_before_anything_is_allocated():
    import tracemalloc

    cap = simulation.MAX_SCENARIO_BYTES
    assert cap == 512 * 2**20 and simulation.MAX_CELLS * 8 == cap
    assets = 100
    most = cap // (8 * assets)  # 671,088 draws of 100 assets fill 512 MiB
    assert most == 671_088
    simulation.check_table_size(most, assets)
    with pytest.raises(ValueError, match=r"^draws: 671089 draws of 100 assets is 67,108,900 numbers \(512 MiB\), more than the 512 MiB cap .*use at most 671,088 draws for 100 assets$"):
        simulation.check_table_size(most + 1, assets)
    # the cell: 2.5e8 numbers (2,500,000 draws x 100 assets) would need ~6 GB
    cov = np.eye(assets) * 1e-4
    tracemalloc.start()
    with pytest.raises(ValueError, match=r"^draws: 2500000 draws of 100 assets is 250,000,000 numbers"):
        simulation.decompose(np.ones(assets), cov, draws=2_500_000)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 20 * 2**20


def test_a_scenario_table_at_the_cap_is_kept_for_the_next_formula():
    # the cache's entry holds the table and its copy of the model: a budget of the table
    # alone used to leave a table at the cap uncached (an adversarial review found it)
    assets = 100
    draws = simulation.MAX_CELLS // assets  # 671,088 draws: 512 MiB, the cap
    cov = np.eye(assets) * 1e-4
    simulation.clear_cache()
    try:
        simulation.decompose(np.ones(assets), cov, "var", draws=draws, seed=1)
        simulation.decompose(np.ones(assets), cov.copy(), "es", draws=draws, seed=1)  # the next formula
        info = simulation._scenarios.cache.info()
        assert (info["entries"], info["hits"], info["misses"]) == (1, 1, 1)
        assert info["bytes"] > simulation.MAX_SCENARIO_BYTES
    finally:
        simulation.clear_cache()


# --- careless inputs -------------------------------------------------------------------------


def _daily_returns(rows=250, seed=9):
    rng = np.random.default_rng(seed)
    return rng.normal(0.0003, 0.012, (rows, 2))


def test_percent_returns_are_refused_where_one_reaches_minus_100():
    r = _daily_returns()
    percent = 100 * r  # -1.5 meaning -1.5%
    i, j = np.argwhere(percent <= -1)[0]  # the first cell that cannot be a simple return
    pattern = (
        rf"^returns: row {i + 1}, column {j + 1} is {percent[i, j]:g}, a loss of "
        rf"{-percent[i, j] * 100:g}%; a return of -100% or below .*look like percentages"
    )
    for method in ("historical", "cornish-fisher"):
        with pytest.raises(ValueError, match=pattern):
            risk.portfolio_var(X, percent, method=method)
        with pytest.raises(ValueError, match=pattern):
            risk.individual_es(X, percent, method=method)
    # the same history as fractions is fine, and its VaR is a hundredth of what the
    # percentages would have given (VaR is linear in the returns)
    assert risk.portfolio_var(X, r, method="historical") == pytest.approx(
        -np.quantile(r @ X, 0.05), rel=1e-12
    )


def test_prices_given_as_returns_are_refused():
    r = _daily_returns()
    prices = 100.0 * np.cumprod(1 + r, axis=0)
    assert np.all(prices > 1)
    for method in ("historical", "cornish-fisher"):
        with pytest.raises(ValueError, match=r"^returns: every value in column 1 is above 1 .*look like prices"):
            risk.portfolio_var(X, prices, method=method)
    # one price column among returns is enough to refuse
    mixed = np.column_stack([r[:, 0], prices[:, 1]])
    with pytest.raises(ValueError, match=r"^returns: every value in column 2 is above 1 \(row 1 holds"):
        historical.decompose(X, mixed)


def test_simulated_scenarios_and_covariance_estimators_take_any_level():
    # a normal draw can fall below -100% (a 60% daily volatility): Monte Carlo is not a
    # returns history and is not refused; its VaR converges to the closed form
    cov = np.array([[0.36, 0.0], [0.0, 0.09]])
    mc = simulation.decompose(X, cov, draws=100_000)
    se = simulation.standard_error(X, cov, draws=100_000)
    assert abs(mc.total - stats.norm.ppf(0.95) * math.sqrt(X @ cov @ X)) <= 4 * se
    # the estimators are unit-free: percentages give the covariance in %^2 (identity)
    r = _daily_returns()
    np.testing.assert_allclose(covariance.covariance(100 * r), 1e4 * np.cov(r, rowvar=False), rtol=1e-12)


def _dated_prices(rows=30, newest_first=False):
    dates = 45_292 + np.arange(rows)  # 2024-01-01 onwards, Excel serial numbers
    prices = 100.0 * np.cumprod(1 + _daily_returns(rows)[:, 0])
    table = np.column_stack([dates, prices])
    return table[::-1] if newest_first else table


def test_dates_among_prices_are_refused_and_newest_first_is_named():
    with pytest.raises(ValueError, match=r"^prices: column 1 holds whole numbers from 45321 to 45292 .*look like Excel dates, not prices; they run newest first"):
        covariance.returns_from_prices(_dated_prices(newest_first=True))
    with pytest.raises(ValueError, match=r"^prices: column 1 holds whole numbers from 45292 to 45321 .*Excel dates, not prices; pass the price columns only"):
        covariance.returns_from_prices(_dated_prices())
    # the prices alone give the simple returns p_t / p_(t-1) - 1 (by hand)
    p = _dated_prices()[:, 1]
    np.testing.assert_allclose(covariance.returns_from_prices(p)[:, 0], p[1:] / p[:-1] - 1, rtol=1e-15)
    # an integer-quoted index that moves both ways is a price, not a date column
    index = np.array([38000, 38012, 37990, 38005, 38020, 38011, 38030, 38041, 38022, 38050, 38061])
    assert covariance.returns_from_prices(index).shape == (10, 1)
