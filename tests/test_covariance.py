"""Tests for xlmvar.covariance: returns from prices, estimators, nearest correlation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from xlmvar.engine.covariance import (
    COV_METHODS,
    check_cov_method,
    corr_from_cov,
    correlation,
    cov_from_corr,
    covariance,
    ewma_cov,
    ledoit_wolf_cov,
    ledoit_wolf_shrinkage,
    nearest_corr,
    returns_from_prices,
    sample_cov,
)


def _returns(t=250, n=4, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(n, n))
    return rng.normal(0.0005, 0.01, size=(t, n)) @ (np.eye(n) + 0.5 * a)


# --------------------------------------------------------------------------- existing helpers


def test_cov_from_corr_and_back():
    vols = [0.15, 0.10, 0.60]
    corr = [[1, -0.3, 0.2], [-0.3, 1, 0.1], [0.2, 0.1, 1]]
    cov = cov_from_corr(vols, corr)
    assert cov[0, 1] == pytest.approx(0.15 * -0.3 * 0.10)
    np.testing.assert_allclose(corr_from_cov(cov), corr, atol=1e-15)


# --------------------------------------------------------------------------- returns from prices


PRICES = [[100.0, 50.0], [110.0, 40.0], [99.0, 50.0]]


def test_simple_returns_by_hand():
    r = returns_from_prices(PRICES)
    # 110/100 - 1 = 0.1, 40/50 - 1 = -0.2; 99/110 - 1 = -0.1, 50/40 - 1 = 0.25
    np.testing.assert_allclose(r, [[0.1, -0.2], [-0.1, 0.25]], rtol=1e-14)


def test_log_returns_by_hand():
    r = returns_from_prices(PRICES, method="log")
    expected = [[math.log(1.1), math.log(0.8)], [math.log(0.9), math.log(1.25)]]
    np.testing.assert_allclose(r, expected, rtol=1e-14)
    np.testing.assert_allclose(returns_from_prices(PRICES, method="Continuous"), expected)


def test_single_column_and_list_input():
    r = returns_from_prices([100, 101, 99.99])
    np.testing.assert_allclose(r[:, 0], [0.01, 99.99 / 101 - 1])
    assert r.shape == (2, 1)


@pytest.mark.parametrize("blank", [None, float("nan"), "", "  "])
def test_gap_is_an_error_naming_row_and_column(blank):
    prices = [[100, 50], [101, 51], [102, 52], [103, 53], [104, blank], [105, 55]]
    with pytest.raises(ValueError, match=r"^prices: row 5, column 2 holds (a blank cell|an error or NaN); .*missing=\"drop\""):
        returns_from_prices(prices)


def test_nan_in_float_array_is_a_gap():
    prices = np.array([[100.0, 50.0], [np.nan, 51.0], [102.0, 52.0]])
    with pytest.raises(ValueError, match="prices: row 2, column 1 holds an error or NaN"):
        returns_from_prices(prices)


def test_drop_removes_incomplete_price_rows_first():
    prices = [[100, 50], [110, None], [121, 60], [None, 66], [133.1, 72]]
    r = returns_from_prices(prices, missing="drop")
    # rows kept: 100/50, 121/60, 133.1/72 -> returns span the gaps
    np.testing.assert_allclose(r, [[0.21, 0.2], [0.1, 0.2]], rtol=1e-13)


def test_drop_leaving_too_few_rows():
    with pytest.raises(ValueError, match="prices: only 1 row"):
        returns_from_prices([[1, None], [2, 3], [None, 4]], missing="drop")


@pytest.mark.parametrize("bad", ["n/a", True, float("inf")])
def test_text_is_an_error_even_when_dropping(bad):
    prices = [[100, 50], [101, bad], [102, 52]]
    for policy in ("error", "drop"):
        with pytest.raises(ValueError, match="prices: row 2, column 2 holds .*expected a price"):
            returns_from_prices(prices, missing=policy)


@pytest.mark.parametrize("bad", [0, -5.0])
def test_non_positive_price(bad):
    with pytest.raises(ValueError, match=r"prices: row 3, column 1 is -?\d+; prices must be positive"):
        returns_from_prices([[1, 2], [2, 3], [bad, 4]], method="log")


def test_too_few_rows_and_bad_options():
    with pytest.raises(ValueError, match="prices: has 1 row; at least 2"):
        returns_from_prices([[100, 50]])
    with pytest.raises(ValueError, match="prices: got a single value"):
        returns_from_prices(100)
    with pytest.raises(ValueError, match="method: unknown value 'pct'; expected one of simple, log"):
        returns_from_prices(PRICES, method="pct")
    with pytest.raises(ValueError, match="missing: unknown value 'fill'; expected one of error, drop"):
        returns_from_prices(PRICES, missing="fill")


@settings(max_examples=50, deadline=None)
@given(arrays(float, st.tuples(st.integers(2, 30), st.integers(1, 4)), elements=st.floats(0.01, 1e4)))
def test_returns_compound_back_to_prices(prices):
    simple = returns_from_prices(prices)
    log = returns_from_prices(prices, method="log")
    rebuilt = prices[0] * np.vstack([np.ones(prices.shape[1]), np.cumprod(1 + simple, axis=0)])
    np.testing.assert_allclose(rebuilt, prices, rtol=1e-9)
    np.testing.assert_allclose(np.exp(log), 1 + simple, rtol=1e-9)


# --------------------------------------------------------------------------- sample covariance


def test_sample_cov_matches_numpy():
    r = _returns()
    np.testing.assert_allclose(sample_cov(r), np.cov(r, rowvar=False), rtol=1e-12)
    np.testing.assert_allclose(sample_cov(r, ddof=0), np.cov(r, rowvar=False, ddof=0), rtol=1e-12)
    np.testing.assert_allclose(covariance(r), np.cov(r, rowvar=False), rtol=1e-12)
    np.testing.assert_allclose(covariance(r, "historical"), np.cov(r, rowvar=False), rtol=1e-12)


def test_sample_cov_validation():
    with pytest.raises(ValueError, match="returns: has 1 rows; at least 2"):
        sample_cov([[0.01, 0.02]])
    with pytest.raises(ValueError, match="ddof: got -1; expected a whole number >= 0"):
        sample_cov(_returns(), ddof=-1)
    with pytest.raises(ValueError, match="returns: has 3 rows; at least 4"):
        sample_cov(_returns(t=3), ddof=3)
    with pytest.raises(ValueError, match="returns: row 2, column 1 holds a blank cell"):
        sample_cov([[0.1, 0.2], [None, 0.1], [0.0, 0.0]])


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.permutations(range(4)))
def test_sample_cov_permutes_with_assets(seed, perm):
    r = _returns(t=20, seed=seed)
    perm = list(perm)
    np.testing.assert_allclose(sample_cov(r[:, perm]), sample_cov(r)[np.ix_(perm, perm)], rtol=1e-12)


# --------------------------------------------------------------------------- EWMA


def _ewma_by_recursion(r, lam):
    """RiskMetrics recursion S_t = lam S_{t-1} + (1 - lam) r_t r_t' from S_0 = 0, renormalised."""
    s = np.zeros((r.shape[1], r.shape[1]))
    for row in r:
        s = lam * s + (1 - lam) * np.outer(row, row)
    return s / (1 - lam ** r.shape[0])


@pytest.mark.parametrize("lam", [0.94, 0.97, 0.5])
def test_ewma_matches_recursion(lam):
    r = _returns(t=300)
    np.testing.assert_allclose(ewma_cov(r, lam), _ewma_by_recursion(r, lam), rtol=1e-12)


def test_ewma_explicit_weights_small_case():
    # T = 3, lam = 0.5: raw weights 0.25, 0.5, 1 (oldest first) -> 1/7, 2/7, 4/7
    r = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    expected = (1 * np.outer(r[0], r[0]) + 2 * np.outer(r[1], r[1]) + 4 * np.outer(r[2], r[2])) / 7
    np.testing.assert_allclose(ewma_cov(r, 0.5), expected, rtol=1e-15)
    np.testing.assert_allclose(covariance(r, "RiskMetrics", lam=0.5), expected, rtol=1e-15)


def test_ewma_zero_mean_not_centred():
    r = np.full((10, 1), 0.01)  # constant return: sample variance 0, EWMA variance 1e-4
    assert ewma_cov(r)[0, 0] == pytest.approx(1e-4)
    assert sample_cov(r)[0, 0] == pytest.approx(0.0, abs=1e-20)


def test_ewma_newest_period_weighs_most():
    r = np.zeros((50, 1))
    r[-1] = 1.0
    assert ewma_cov(r, 0.94)[0, 0] == pytest.approx(0.06 / (1 - 0.94**50))


@pytest.mark.parametrize(
    "lam, message",
    [
        (1.0, "lam: got 1; expected a decay factor strictly between 0 and 1"),
        (0.0, "lam: got 0; expected"),
        (94, "lam: got 94, which looks like a percentage; use 0.94"),
        ("x", "lam: got the text 'x'"),
    ],
)
def test_ewma_lambda_validation(lam, message):
    with pytest.raises(ValueError, match=message):
        ewma_cov(_returns(), lam)


# --------------------------------------------------------------------------- Ledoit-Wolf


def _ledoit_wolf_by_hand(r):
    """Ledoit & Wolf (2004), Section 3.3, written out term by term (loop over periods)."""
    t, n = r.shape
    x = r - r.mean(axis=0)
    s = sum(np.outer(row, row) for row in x) / t

    def norm2(a):  # the paper's scaled Frobenius norm ||A||^2 = tr(A A') / N
        return np.trace(a @ a.T) / n

    m = np.trace(s @ np.eye(n).T) / n  # <S, I>
    d2 = norm2(s - m * np.eye(n))
    bbar2 = sum(norm2(np.outer(row, row) - s) for row in x) / t**2
    b2 = min(bbar2, d2)
    a2 = d2 - b2
    return b2 / d2, (b2 / d2) * m * np.eye(n) + (a2 / d2) * s


@pytest.mark.parametrize("t, n", [(250, 4), (30, 10), (8, 20)])
def test_ledoit_wolf_matches_paper_formula(t, n):
    r = _returns(t=t, n=n, seed=t + n)
    shrink, expected = _ledoit_wolf_by_hand(r)
    assert ledoit_wolf_shrinkage(r) == pytest.approx(shrink, rel=1e-10)
    np.testing.assert_allclose(ledoit_wolf_cov(r), expected, rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(covariance(r, "lw"), expected, rtol=1e-10, atol=1e-15)
    assert 0.0 <= shrink <= 1.0


def test_ledoit_wolf_against_sklearn_if_installed():
    sk = pytest.importorskip("sklearn.covariance")
    r = _returns(t=60, n=12, seed=3)
    cov, shrink = sk.ledoit_wolf(r)
    assert ledoit_wolf_shrinkage(r) == pytest.approx(shrink, rel=1e-10)
    np.testing.assert_allclose(ledoit_wolf_cov(r), cov, rtol=1e-10)


def test_ledoit_wolf_well_conditioned_with_more_assets_than_periods():
    r = _returns(t=10, n=40, seed=5)
    assert np.linalg.matrix_rank(sample_cov(r)) < 40
    assert np.linalg.eigvalsh(ledoit_wolf_cov(r))[0] > 0


def test_ledoit_wolf_one_asset_is_the_1_over_t_variance():
    r = _returns(t=50, n=1)
    assert ledoit_wolf_shrinkage(r) == 0.0
    assert ledoit_wolf_cov(r)[0, 0] == pytest.approx(np.var(r))


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.floats(0.01, 100.0))
def test_ledoit_wolf_scale_equivariant(seed, c):
    r = _returns(t=25, n=5, seed=seed)
    np.testing.assert_allclose(ledoit_wolf_cov(c * r), c**2 * ledoit_wolf_cov(r), rtol=1e-9)
    assert ledoit_wolf_shrinkage(c * r) == pytest.approx(ledoit_wolf_shrinkage(r), rel=1e-9, abs=1e-12)


# --------------------------------------------------------------------------- dispatcher


def test_method_names_and_unknown_method():
    assert COV_METHODS == ("sample", "ewma", "ledoit-wolf")
    for alias, name in [("LW", "ledoit-wolf"), ("Ledoit Wolf", "ledoit-wolf"), ("ledoit_wolf", "ledoit-wolf"),
                        ("riskmetrics", "ewma"), ("EWMA", "ewma"), (None, "sample"), ("", "sample")]:
        assert check_cov_method(alias) == name
    with pytest.raises(ValueError, match="method: unknown value 'garch'; expected one of sample, ewma, ledoit-wolf"):
        covariance(_returns(), "garch")
    with pytest.raises(ValueError, match="method: got 3; expected one of sample"):
        covariance(_returns(), 3)


@pytest.mark.parametrize("method", COV_METHODS)
def test_correlation_of_each_estimator(method):
    r = _returns(t=100, n=5)
    c = correlation(r, method)
    s = covariance(r, method)
    np.testing.assert_allclose(c, s / np.sqrt(np.outer(np.diag(s), np.diag(s))), rtol=1e-12)
    np.testing.assert_array_equal(np.diag(c), 1.0)
    if method == "sample":
        np.testing.assert_allclose(c, np.corrcoef(r, rowvar=False), rtol=1e-12)


# --------------------------------------------------------------------------- nearest correlation


def _is_optimal(a, x, tol=1e-7):
    """KKT certificate for min ||A - X||_F s.t. diag(X) = 1, X PSD.

    Stationarity gives Z = X - A - Diag(theta) with Z PSD and Z X = 0; ZX = 0 fixes
    theta_i = ((X - A) X)_ii (as X_ii = 1).  Checks Z PSD and ZX = 0 to ``tol``.
    """
    theta = np.diag((x - a) @ x)
    z = x - a - np.diag(theta)
    return np.linalg.eigvalsh(z)[0] >= -tol and np.abs(z @ x).max() <= tol


def test_higham_2002_example():
    # Higham (2002), IMA J. Numer. Anal. 22, Section 4: A = [1 1 0; 1 1 1; 0 1 1] has nearest
    # correlation matrix [1 .7607 .1573; .7607 1 .7607; .1573 .7607 1].  Eight digits as in the
    # test suite of equinor/fmu-tools (tests/test_nearcorr.py, after mikecroucher/nearest_correlation).
    a = np.array([[1, 1, 0], [1, 1, 1], [0, 1, 1]], dtype=float)
    x = nearest_corr(a)
    expected = [[1, 0.76068985, 0.15729811], [0.76068985, 1, 0.76068985], [0.15729811, 0.76068985, 1]]
    np.testing.assert_allclose(x, expected, atol=1e-8)
    assert _is_optimal(a, x)
    np.testing.assert_array_equal(np.diag(x), 1.0)
    assert np.linalg.eigvalsh(x)[0] >= -1e-12


def test_nag_g02aa_example_with_unit_diagonal():
    # NAG g02aa example (from Higham 2002): A = tridiag(-1, 2, -1), n = 4.  The diagonal of A
    # only adds a constant to ||A - X||_F when diag(X) = 1, so the answer is the same for the
    # unit-diagonal matrix passed here.  Digits as in equinor/fmu-tools tests/test_nearcorr.py.
    a = np.eye(4) - np.eye(4, k=1) - np.eye(4, k=-1)
    x = nearest_corr(a)
    expected = [
        [1.0, -0.8084125, 0.1915875, 0.10677505],
        [-0.8084125, 1.0, -0.65623269, 0.1915875],
        [0.1915875, -0.65623269, 1.0, -0.8084125],
        [0.10677505, 0.1915875, -0.8084125, 1.0],
    ]
    np.testing.assert_allclose(x, expected, atol=1e-7)
    assert _is_optimal(a, x)


def test_valid_correlation_comes_back_unchanged():
    c = [[1, -0.3, 0.2], [-0.3, 1, 0.1], [0.2, 0.1, 1]]
    np.testing.assert_array_equal(nearest_corr(c), c)
    # singular but valid (perfect correlation) comes back within rounding
    np.testing.assert_allclose(nearest_corr([[1, 1], [1, 1]]), [[1, 1], [1, 1]], atol=1e-12)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.integers(2, 12))
def test_repair_of_random_symmetric_matrices(seed, n):
    rng = np.random.default_rng(seed)
    m = rng.uniform(-1, 1, size=(n, n))
    a = np.triu(m, 1) + np.triu(m, 1).T + np.eye(n)
    x = nearest_corr(a)
    np.testing.assert_array_equal(np.diag(x), 1.0)
    np.testing.assert_allclose(x, x.T, atol=0)
    assert np.linalg.eigvalsh(x)[0] >= -1e-12
    assert np.abs(x).max() <= 1.0
    assert _is_optimal(a, x, tol=1e-6)
    cov_from_corr(np.ones(n), x)  # accepted by the PSD check downstream


def test_nearest_corr_validation():
    with pytest.raises(ValueError, match="corr: the diagonal at row 2 is 2"):
        nearest_corr([[1, 0.5], [0.5, 2]])
    with pytest.raises(ValueError, match="corr: row 1, column 2 is 1.5; correlations must lie in"):
        nearest_corr([[1, 1.5], [1.5, 1]])
    with pytest.raises(ValueError, match="corr: is not symmetric"):
        nearest_corr([[1, 0.5], [0.2, 1]])
    with pytest.raises(ValueError, match="tol: got 0; expected a small positive number"):
        nearest_corr([[1, 1, 0], [1, 1, 1], [0, 1, 1]], tol=0)
    with pytest.raises(ValueError, match="max_iter: the nearest-correlation iteration did not converge in 3 steps"):
        nearest_corr([[1, 1, 0], [1, 1, 1], [0, 1, 1]], max_iter=3)
