"""Tests for xlmvar.backtest: Kupiec, Christoffersen, Basel traffic light."""

import math

import numpy as np
import pytest
from scipy.stats import binom, chi2

from xlmvar.engine.backtest import (
    BASEL_PLUS_FACTORS,
    basel_plus_factor,
    basel_zone,
    christoffersen_independence,
    kupiec_pof,
    transition_counts,
    var_backtest,
)


def _book(indicator, var=1.0):
    """P&L series whose exceptions are exactly where ``indicator`` is 1 (VaR = ``var``)."""
    ind = np.asarray(indicator, dtype=bool)
    return np.where(ind, -2.0 * var, 0.5 * var)


def _ll(count, prob):
    # count * ln(prob) with 0 ln 0 = 0, written out for the hand computations below
    return 0.0 if count == 0 else count * math.log(prob)


# ---------------------------------------------------------------------------------------
# hand-computed small series
# ---------------------------------------------------------------------------------------

# 12 days, exceptions on days 3, 4, 5 and 10 (1-based)
INDICATOR = [0, 0, 1, 1, 1, 0, 0, 0, 0, 1, 0, 0]
# consecutive pairs counted by hand:
#   00: (1,2) (6,7) (7,8) (8,9) (11,12) -> 5
#   01: (2,3) (9,10)                    -> 2
#   10: (5,6) (10,11)                   -> 2
#   11: (3,4) (4,5)                     -> 2
N00, N01, N10, N11 = 5, 2, 2, 2


def test_transition_counts_by_hand():
    assert transition_counts(INDICATOR) == (N00, N01, N10, N11)
    assert transition_counts(np.array(INDICATOR, dtype=bool)) == (N00, N01, N10, N11)


def test_kupiec_and_christoffersen_by_hand():
    T, x, p = 12, 4, 0.05
    lr_pof = -2 * (_ll(T - x, 1 - p) + _ll(x, p)) + 2 * (_ll(T - x, 1 - x / T) + _ll(x, x / T))
    pi01, pi11, pi = N01 / (N00 + N01), N11 / (N10 + N11), (N01 + N11) / (T - 1)
    assert (pi01, pi11, pi) == (2 / 7, 0.5, 4 / 11)
    lr_ind = -2 * (_ll(N00 + N10, 1 - pi) + _ll(N01 + N11, pi)) + 2 * (
        _ll(N00, 1 - pi01) + _ll(N01, pi01) + _ll(N10, 1 - pi11) + _ll(N11, pi11)
    )
    # the numbers themselves, so a change to the helper above cannot hide a regression
    assert lr_pof == pytest.approx(9.5102109, abs=1e-6)  # 8 ln .95 + 4 ln .05 vs 8 ln 2/3 + 4 ln 1/3
    assert lr_ind == pytest.approx(0.4996473, abs=1e-6)

    res = var_backtest(_book(INDICATOR), 1.0, 0.95)
    assert (res.observations, res.exceptions) == (T, x)
    assert res.expected_exceptions == pytest.approx(p * T)
    assert res.exception_rate == pytest.approx(x / T)
    assert (res.n00, res.n01, res.n10, res.n11) == (N00, N01, N10, N11)
    assert res.pof_lr == pytest.approx(lr_pof, rel=1e-12)
    assert res.ind_lr == pytest.approx(lr_ind, rel=1e-12)
    assert res.cc_lr == pytest.approx(lr_pof + lr_ind, rel=1e-12)
    # p-values independently from the chi-square survival function
    assert res.pof_pvalue == pytest.approx(chi2.sf(lr_pof, 1), rel=1e-12)
    assert res.ind_pvalue == pytest.approx(chi2.sf(lr_ind, 1), rel=1e-12)
    assert res.cc_pvalue == pytest.approx(chi2.sf(lr_pof + lr_ind, 2), rel=1e-12)
    # and against closed forms of those survival functions (1 dof: erfc; 2 dof: exp)
    assert res.pof_pvalue == pytest.approx(math.erfc(math.sqrt(lr_pof / 2)), rel=1e-10)
    assert res.cc_pvalue == pytest.approx(math.exp(-(lr_pof + lr_ind) / 2), rel=1e-10)
    assert res.flags.tolist() == [bool(i) for i in INDICATOR]


def test_standalone_statistics_match_backtest():
    assert kupiec_pof(4, 12, 0.95) == pytest.approx(var_backtest(_book(INDICATOR), 1.0, 0.95).pof_lr)
    assert christoffersen_independence(N00, N01, N10, N11) == pytest.approx(
        var_backtest(_book(INDICATOR), 1.0, 0.95).ind_lr
    )


def test_kupiec_published_nonrejection_regions():
    # Kupiec (1995), reproduced in Jorion, "Value at Risk", 3rd ed., Table 6-3: numbers of
    # exceptions not rejected by the POF test at 95% test confidence.
    # p = 1%: T=510 -> 1 < N < 11, T=1000 -> 4 < N < 17;
    # p = 5%: T=255 -> 6 < N < 21, T=510 -> 16 < N < 36, T=1000 -> 37 < N < 65.
    # (The table prints N < 7 for p = 1%, T = 255; the LR itself rejects N = 0 there,
    # LR = -2 * 255 * ln 0.99 = 5.13 > 3.84, so only the upper bound is checked.)
    crit = chi2.ppf(0.95, 1)
    cases = [(0.01, 510, 2, 10), (0.01, 1000, 5, 16), (0.05, 255, 7, 20), (0.05, 510, 17, 35), (0.05, 1000, 38, 64)]
    for p, T, lo, hi in cases:
        accepted = [x for x in range(T + 1) if kupiec_pof(x, T, 1 - p) < crit]
        assert (accepted[0], accepted[-1]) == (lo, hi), (p, T)
    accepted = [x for x in range(256) if kupiec_pof(x, 255, 0.99) < crit]
    assert accepted[-1] == 6


def test_exception_is_strict():
    pnl = np.array([-1.0, -1.0 - 1e-9, 3.0, -0.5])
    res = var_backtest(pnl, [1.0, 1.0, 1.0, 1.0], 0.99)
    assert res.flags.tolist() == [False, True, False, False]
    assert res.exceptions == 1


def test_var_series_per_period():
    pnl = np.array([-5.0, -5.0, -5.0])
    res = var_backtest(pnl, [4.0, 6.0, 4.999], 0.99)
    assert res.flags.tolist() == [True, False, True]


# ---------------------------------------------------------------------------------------
# edge cases: finite numbers, never NaN
# ---------------------------------------------------------------------------------------


def _all_finite(res):
    values = [res.pof_lr, res.pof_pvalue, res.ind_lr, res.ind_pvalue, res.cc_lr, res.cc_pvalue,
              res.exception_rate, res.expected_exceptions, res.plus_factor, res.cumulative_probability]
    return all(math.isfinite(v) for v in values)


def test_zero_exceptions():
    T, p = 250, 0.01
    res = var_backtest(np.full(T, 1.0), 2.0, 0.99)
    assert res.exceptions == 0 and _all_finite(res)
    assert res.pof_lr == pytest.approx(-2 * T * math.log(1 - p), rel=1e-12)
    assert res.ind_lr == 0.0 and res.ind_pvalue == 1.0
    assert (res.n00, res.n01, res.n10, res.n11) == (T - 1, 0, 0, 0)
    assert res.zone == "green" and res.plus_factor == 0.0


def test_all_exceptions():
    T, p = 20, 0.05
    res = var_backtest(np.full(T, -3.0), 1.0, 0.95)
    assert res.exceptions == T and _all_finite(res)
    assert res.pof_lr == pytest.approx(-2 * T * math.log(p), rel=1e-12)
    assert (res.n00, res.n01, res.n10, res.n11) == (0, 0, 0, T - 1)
    assert res.ind_lr == 0.0  # the no-exception state is never visited: no information
    assert res.zone == "red" and res.plus_factor == 1.0


def test_single_exception_last_day_and_middle():
    last = [0] * 9 + [1]
    res = var_backtest(_book(last), 1.0, 0.95)
    assert (res.n00, res.n01, res.n10, res.n11) == (8, 1, 0, 0)
    assert res.ind_lr == 0.0 and _all_finite(res)  # never left the exception state

    middle = [0] * 4 + [1] + [0] * 5
    res = var_backtest(_book(middle), 1.0, 0.95)
    n00, n01, n10, n11 = 7, 1, 1, 0
    assert (res.n00, res.n01, res.n10, res.n11) == (n00, n01, n10, n11)
    pi01, pi11, pi = 1 / 8, 0.0, 1 / 9
    lr = -2 * (_ll(8, 1 - pi) + _ll(1, pi)) + 2 * (_ll(7, 1 - pi01) + _ll(1, pi01) + _ll(1, 1 - pi11) + _ll(0, pi11))
    assert res.ind_lr == pytest.approx(lr, rel=1e-12) and _all_finite(res)


def test_single_observation():
    res = var_backtest([-5.0], 1.0, 0.99)
    assert res.observations == 1 and res.exceptions == 1 and _all_finite(res)
    assert (res.n00, res.n01, res.n10, res.n11) == (0, 0, 0, 0)
    assert res.ind_lr == 0.0


def test_christoffersen_no_pairs_and_clustered():
    assert christoffersen_independence(0, 0, 0, 0) == 0.0
    # perfectly clustered: 5 exceptions in a row inside 100 days -> large LR
    assert christoffersen_independence(94, 1, 1, 4) > 10.0


# ---------------------------------------------------------------------------------------
# Basel traffic light
# ---------------------------------------------------------------------------------------

# Basel Committee (1996), "Supervisory framework for the use of backtesting ...", Table 2:
# 250 observations, 99% VaR: exceptions -> zone, plus factor, cumulative probability (%).
BASEL_TABLE = [
    (0, "green", 0.00, 8.11),
    (1, "green", 0.00, 28.58),
    (2, "green", 0.00, 54.32),
    (3, "green", 0.00, 75.81),
    (4, "green", 0.00, 89.22),
    (5, "yellow", 0.40, 95.88),
    (6, "yellow", 0.50, 98.63),
    (7, "yellow", 0.65, 99.60),
    (8, "yellow", 0.75, 99.89),
    (9, "yellow", 0.85, 99.97),
    (10, "red", 1.00, 99.99),
]


@pytest.mark.parametrize("x, zone, plus, cumulative", BASEL_TABLE)
def test_basel_published_table(x, zone, plus, cumulative):
    assert basel_zone(x) == zone
    assert basel_zone(x, 250, 0.99) == zone
    assert basel_plus_factor(x) == pytest.approx(plus)
    assert 100 * binom.cdf(x, 250, 0.01) == pytest.approx(cumulative, abs=0.005)


def test_basel_red_beyond_ten_and_backtest_zone():
    for x in range(10, 40):
        assert basel_zone(x) == "red" and basel_plus_factor(x) == 1.0
    assert BASEL_PLUS_FACTORS == {5: 0.40, 6: 0.50, 7: 0.65, 8: 0.75, 9: 0.85}
    ind = np.zeros(250)
    ind[::40] = 1  # 7 exceptions
    res = var_backtest(_book(ind), 1.0, 0.99)
    assert res.exceptions == 7 and res.zone == "yellow" and res.plus_factor == 0.65
    assert res.cumulative_probability == pytest.approx(binom.cdf(7, 250, 0.01))


def test_basel_generalised_other_samples():
    # 500 observations at 99%: expected 5, the zone follows the binomial thresholds
    for x in range(0, 30):
        prob = binom.cdf(x, 500, 0.01)
        expected = "green" if prob < 0.95 else ("yellow" if prob < 0.9999 else "red")
        assert basel_zone(x, 500, 0.99) == expected
        factor = basel_plus_factor(x, 500, 0.99)
        assert (factor == 0.0) == (expected == "green")
        assert (factor == 1.0) == (expected == "red")
    # the plus factor never falls as exceptions rise
    factors = [basel_plus_factor(x, 1000, 0.975) for x in range(80)]
    assert all(a <= b for a, b in zip(factors, factors[1:]))


# ---------------------------------------------------------------------------------------
# argument validation: the message names the argument
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda: var_backtest([1.0, 2.0], [1.0, 1.0, 1.0], 0.99), "var:"),
        (lambda: var_backtest([1.0, 2.0], -1.0, 0.99), "var:"),
        (lambda: var_backtest([1.0, "x"], 1.0, 0.99), "pnl:"),
        (lambda: var_backtest([1.0, float("nan")], 1.0, 0.99), "pnl:"),
        (lambda: var_backtest([1.0, 2.0], 1.0, 99), "confidence:"),
        (lambda: var_backtest([1.0, 2.0], 1.0, None), "confidence:"),
        (lambda: basel_zone(-1), "exceptions:"),
        (lambda: basel_zone(2.5), "exceptions:"),
        (lambda: basel_zone(300, 250), "exceptions:"),
        (lambda: basel_zone(3, 0), "observations:"),
        (lambda: basel_zone(3, 250, 99), "confidence:"),
        (lambda: kupiec_pof(1, 10, 1.5), "confidence:"),
        (lambda: transition_counts([0, 2, 1]), "flags:"),
    ],
)
def test_errors_name_the_argument(call, name):
    with pytest.raises(ValueError, match=name):
        call()


def test_percentage_confidence_hint():
    with pytest.raises(ValueError, match="99%"):
        var_backtest([1.0], 1.0, 99)
