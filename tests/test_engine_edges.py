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
from xlmvar.engine._validation import check_confidence, check_returns

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
