"""Tests for the decision modules (xlmvar.engine.limits, hedging, allocation, stress): limits, new assets, best hedges, return per risk, risk
parity and correlation stress."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize_scalar
from scipy.stats import norm

from xlmvar.engine import risk
from xlmvar.engine._validation import check_correlation
from xlmvar.engine.covariance import cov_from_corr
from xlmvar.engine.allocation import return_per_risk, risk_parity
from xlmvar.engine.hedging import best_hedge, marginal_var_new_asset
from xlmvar.engine.limits import _limit_position_search, var_limits
from xlmvar.engine.stress import stress_corr, stressed_decomposition

# The seed's worked example (DESIGN.md): SPY / TLT / BTC, $5m / $3m / $2m.
X = np.array([5e6, 3e6, 2e6])
VOLS = np.array([0.15, 0.10, 0.60])
CORR = np.array([[1.0, -0.3, 0.2], [-0.3, 1.0, 0.1], [0.2, 0.1, 1.0]])
COV = cov_from_corr(VOLS, CORR)

seeds = st.integers(min_value=0, max_value=2**32 - 1)
hsettings = settings(max_examples=40, deadline=None)


def random_cov(rng, n, rank=None):
    """A random covariance with vols between 5% and 60% (full rank unless ``rank`` < n)."""
    a = rng.normal(size=(n, rank or n + 2))
    c = a @ a.T
    d = np.sqrt(np.diag(c))
    corr = c / d[:, None] / d[None, :]
    vols = rng.uniform(0.05, 0.6, n)
    return vols[:, None] * corr * vols[None, :]


def var_of(x, cov, confidence=0.95, horizon=1):
    return risk.portfolio_var(x, cov, confidence, horizon)


# ---------------------------------------------------------------------------------------
# var_limits
# ---------------------------------------------------------------------------------------


def test_var_limits_seed_example():
    res = var_limits(X, COV, 0.5)
    np.testing.assert_allclose(res.shares, risk.component_var_pct(X, COV), rtol=1e-14)
    assert res.shares.sum() == pytest.approx(1.0)
    assert res.breach.tolist() == [False, False, True]  # BTC carries ~69% of the VaR
    assert res.trade[0] == 0.0 and res.trade[1] == 0.0
    assert -X[2] < res.trade[2] < 0.0  # shrinks BTC toward zero, never through it
    after = X.copy()
    after[2] += res.trade[2]
    assert risk.component_var_pct(after, COV)[2] == pytest.approx(0.5, abs=1e-12)
    np.testing.assert_allclose(res.position_after, X + res.trade)
    assert res.var_after[2] == pytest.approx(var_of(after, COV), rel=1e-12)
    assert res.var_after[0] == res.total == pytest.approx(var_of(X, COV))
    assert res.reason == ("", "", "")


def test_var_limits_trade_is_the_smallest_one():
    # along the trade, the share is above the limit until the returned trade is reached
    res = var_limits(X, COV, 0.5)
    for frac in np.linspace(0.0, 0.999, 30):
        trial = X.copy()
        trial[2] += frac * res.trade[2]
        assert risk.component_var_pct(trial, COV)[2] > 0.5


def test_var_limits_closed_form_matches_root_find():
    # a zero mean sends the normal method through the generic brentq path
    closed = var_limits(X, COV, 0.3)
    searched = var_limits(X, COV, 0.3, mean=np.zeros(3))
    assert closed.breach.tolist() == searched.breach.tolist() == [False, False, True]
    np.testing.assert_allclose(searched.trade, closed.trade, rtol=1e-9, atol=1e-6)
    np.testing.assert_allclose(searched.var_after, closed.var_after, rtol=1e-9)


def test_var_limits_short_position():
    # a large short in a volatile asset, long the rest: the short carries most of the VaR
    x = np.array([1e6, 1e6, -3e6])
    res = var_limits(x, COV, 0.4)
    assert res.breach[2]
    assert 0.0 < res.trade[2] < 3e6  # buys back part of the short
    assert risk.component_var_pct(res.position_after * np.eye(3)[2] + x * (1 - np.eye(3)[2]), COV)[2] == pytest.approx(0.4, abs=1e-12)


def test_var_limits_per_asset_limits_and_es():
    res = var_limits(X, COV, [0.2, 0.2, 0.9])
    assert res.breach.tolist() == [True, False, False]
    after = X.copy()
    after[0] += res.trade[0]
    assert risk.component_var_pct(after, COV)[0] == pytest.approx(0.2, abs=1e-12)
    es = var_limits(X, COV, [0.2, 0.2, 0.9], measure="es")  # normal: ES shares = VaR shares
    np.testing.assert_allclose(es.trade, res.trade, rtol=1e-12)


def test_var_limits_limit_one():
    # shares above 100% happen when other positions hedge; L = 1 is the linear case
    x = np.array([4e6, -1e6, 0.0])
    cov = cov_from_corr([0.2, 0.2, 0.3], [[1, 0.9, 0], [0.9, 1, 0], [0, 0, 1]])
    res = var_limits(x, cov, 1.0)
    assert res.shares[0] > 1.0 and res.breach[0]
    after = x.copy()
    after[0] += res.trade[0]
    assert risk.component_var_pct(after, cov)[0] == pytest.approx(1.0, abs=1e-12)
    searched = var_limits(x, cov, 1.0, mean=np.zeros(3))
    assert searched.trade[0] == pytest.approx(res.trade[0], rel=1e-9)


@pytest.mark.parametrize("options", [{}, {"mean": np.zeros(3)}])
def test_var_limits_sole_risk_source_has_no_cure(options):
    # only asset 1 has risk: its share is 100% at every non-zero size
    res = var_limits([2e6, 1e6, 0.0], np.diag([0.04, 0.0, 0.01]), 0.5, **options)
    assert res.breach.tolist() == [True, False, False]
    assert math.isnan(res.trade[0]) and math.isnan(res.var_after[0])
    assert "no trade in this asset alone" in res.reason[0]
    assert res.trade[1] == 0.0 and res.reason[1] == ""


def test_var_limits_zero_risk_book():
    res = var_limits([1.0, -1.0], [[0.04, 0.04], [0.04, 0.04]], 0.1)
    assert res.total == pytest.approx(0.0, abs=1e-12)
    assert not res.breach.any() and np.all(res.trade == 0.0)


def test_var_limits_negative_var_flags_nothing():
    # a mean far above the risk makes the VaR negative: shares of it mean nothing
    res = var_limits(X, COV, 0.1, mean=[1.0, 1.0, 1.0])
    assert res.total < 0
    assert not res.breach.any() and np.all(res.trade == 0.0)
    assert all("negative" in r for r in res.reason)


def test_limit_search_continuous_jump_pole_and_sole_source():
    def with_total(share, total=lambda y: 1.0):
        return lambda y: (share(y), total(y))

    # continuous share: exact root, no note (positive and negative positions)
    y, note = _limit_position_search(with_total(lambda y: abs(y) / 2.0), 2.0, 0.3)
    assert y == pytest.approx(0.6, rel=1e-12) and note == ""
    y, note = _limit_position_search(with_total(lambda y: abs(y) / 2.0), -2.0, 0.3)
    assert y == pytest.approx(-0.6, rel=1e-12) and note == ""
    # a share that jumps from 0.8 to 0.2 at y = 0.55: the smallest trade at or below the limit
    step = lambda y: 0.8 if y > 0.55 else (0.2 if y > 0 else 0.0)  # noqa: E731
    y, note = _limit_position_search(with_total(step), 1.0, 0.5)
    assert y == pytest.approx(0.55, abs=1e-9) and step(y) <= 0.5 and "jumps" in note
    # a pole where the VaR passes through zero (y = 0.4): no trade
    pole = with_total(lambda y: y / (y - 0.4) if y != 0.4 else 0.0, lambda y: abs(y - 0.4))
    y, note = _limit_position_search(pole, 1.0, 0.5)
    assert math.isnan(y) and "perfect hedge" in note
    # 100% at any non-zero size: nothing short of closing the position helps
    y, note = _limit_position_search(with_total(lambda y: 1.0 if y != 0 else 0.0), 1.0, 0.5)
    assert math.isnan(y) and "no risk" in note


@pytest.mark.parametrize("options", [{}, {"mean": np.zeros(2)}])
def test_var_limits_perfect_hedge_on_the_way(options):
    # correlation 1; long 3m of asset 1 against short 1m of asset 2 (twice as volatile):
    # share_1(y) = 0.1 y / (0.1 y - 0.2m) is > 1 for y > 2m, a pole at y = 2m (VaR 0)
    # and negative below: it never equals 50%
    cov = cov_from_corr([0.1, 0.2], [[1.0, 1.0], [1.0, 1.0]])
    res = var_limits([3e6, -1e6], cov, 0.5, **options)
    assert res.breach.tolist() == [True, False]
    assert math.isnan(res.trade[0]) and "perfect hedge" in res.reason[0]


@hsettings
@given(seeds, st.integers(2, 6), st.floats(0.05, 0.95))
def test_var_limits_property(seed, n, limit):
    rng = np.random.default_rng(seed)
    cov = random_cov(rng, n)
    x = rng.normal(size=n) * 1e6
    res = var_limits(x, cov, limit)
    assert np.array_equal(res.breach, res.shares > limit + 1e-12)
    for i in np.flatnonzero(res.breach):
        y = x[i] + res.trade[i]
        assert 0.0 < y / x[i] < 1.0
        after = x.copy()
        after[i] = y
        assert risk.component_var_pct(after, cov)[i] == pytest.approx(limit, abs=1e-9)
    assert np.all(res.trade[~res.breach] == 0.0)


@pytest.mark.parametrize(
    "limit, message",
    [(15, "15%"), (0.0, "limit:"), (-0.1, "limit:"), (150, "limit:"), ([0.1, 0.2], "limit:"), ("a", "limit:")],
)
def test_var_limits_bad_limit(limit, message):
    with pytest.raises(ValueError, match=message):
        var_limits(X, COV, limit)


@pytest.mark.parametrize("options", [{}, {"smoothing": "scenario"}])
def test_var_limits_historical(options):
    rng = np.random.default_rng(7)
    returns = rng.multivariate_normal(np.zeros(3), COV / 250, size=750)
    res = var_limits(X, returns, 0.4, method="historical", **options)
    assert res.breach[2]
    shares = risk.component_var_pct(X, returns, method="historical", **options)
    np.testing.assert_allclose(res.shares, shares)
    for i in np.flatnonzero(res.breach):
        if math.isnan(res.trade[i]):
            assert res.reason[i]
            continue
        after = X.copy()
        after[i] += res.trade[i]
        share = risk.component_var_pct(after, returns, method="historical", **options)[i]
        if res.reason[i]:
            assert share <= 0.4 + 1e-9  # the share jumped over the limit
        else:
            assert share == pytest.approx(0.4, abs=1e-9)


# ---------------------------------------------------------------------------------------
# marginal_var_new_asset
# ---------------------------------------------------------------------------------------


def test_marginal_var_new_asset_finite_difference():
    c = np.array([0.004, -0.002, 0.02])  # cov(new, SPY/TLT/BTC); new vol 20%
    v = 0.04
    aug = np.block([[COV, c[:, None]], [c[None, :], np.array([[v]])]])
    h, conf = 10, 0.99
    eps = 1e3  # $1,000 in a $10m book
    up = var_of(np.append(X, eps), aug, conf, h)
    down = var_of(np.append(X, -eps), aug, conf, h)
    fd = (up - down) / (2 * eps)
    got = marginal_var_new_asset(X, COV, c, v, conf, h)
    assert got == pytest.approx(fd, rel=1e-7)
    # and the explicit formula z (c'x) / sigma_p sqrt(h)
    sigma = math.sqrt(X @ COV @ X)
    assert got == pytest.approx(norm.ppf(conf) * (c @ X) / sigma * math.sqrt(h), rel=1e-12)
    # the same as the marginal VaR of a zero position in the augmented book
    assert got == pytest.approx(risk.marginal_var(np.append(X, 0.0), aug, conf, h)[-1], rel=1e-12)


def test_marginal_var_new_asset_es_and_hedge():
    c = np.array([-0.01, 0.0, -0.05])
    got = marginal_var_new_asset(X, COV, c, 0.09)
    assert got < 0.0  # negatively correlated with the book: a hedge
    es = marginal_var_new_asset(X, COV, c, 0.09, measure="es")
    assert es / got == pytest.approx(norm.pdf(norm.ppf(0.95)) / 0.05 / norm.ppf(0.95))


def test_marginal_var_new_asset_zero_risk_book():
    assert marginal_var_new_asset([0.0, 0.0, 0.0], COV, [0.01, 0.0, 0.0], 0.04) == 0.0


@pytest.mark.parametrize(
    "args, message",
    [
        ((X, COV, [0.01, 0.0], 0.04), "cov_with_book:"),
        ((X, COV, [0.5, 0.0, 0.0], 0.04), "cov_with_book:"),  # |cov| > vol * vol
        ((X, COV, [0.0, 0.0, 0.0], -0.04), "var_new:"),
        ((X, COV, [0.0, 0.0, 0.0], [0.04, 0.01]), "var_new:"),
        ((X, COV[:2, :2], [0.0, 0.0, 0.0], 0.04), "cov_book:"),
    ],
)
def test_marginal_var_new_asset_errors(args, message):
    with pytest.raises(ValueError, match=message):
        marginal_var_new_asset(*args)


# ---------------------------------------------------------------------------------------
# best_hedge
# ---------------------------------------------------------------------------------------


def test_best_hedge_seed_example_by_hand():
    res = best_hedge(X, COV)
    # SPY: t = -(S x)_1 / S_11 = -(5m + (-0.3*.15*.1*3m + 0.2*.15*.6*2m) / .0225) = -6m
    assert res.trade[0] == pytest.approx(-6e6, rel=1e-12)
    np.testing.assert_allclose(res.position_after, X + res.trade)
    assert res.total == pytest.approx(var_of(X, COV))


@hsettings
@given(seeds, st.integers(1, 6), st.sampled_from([0.9, 0.95, 0.99]), st.integers(1, 10))
def test_best_hedge_matches_numerical_minimum(seed, n, conf, h):
    rng = np.random.default_rng(seed)
    cov = random_cov(rng, n)
    x = rng.normal(size=n) * 1e6
    res = best_hedge(x, cov, conf, h)
    for i in range(n):
        def f(t):
            y = x.copy()
            y[i] += t
            return var_of(y, cov, conf, h)

        span = 10 * (abs(res.trade[i]) + np.abs(x).sum())
        opt = minimize_scalar(f, bounds=(-span, span), method="bounded", options={"xatol": 1e-6 * span})
        assert res.var_after[i] == pytest.approx(f(res.trade[i]), rel=1e-9, abs=1e-9 * res.total)
        assert res.var_after[i] <= opt.fun * (1 + 1e-9) + 1e-9 * res.total
        assert res.var_after[i] <= res.total
        if res.var_after[i] <= 1e-6 * res.total:
            continue  # a perfect hedge sits on the kink of sigma_p: no gradient to check
        # the hedged book has zero marginal VaR in the hedge asset
        y = x.copy()
        y[i] += res.trade[i]
        mvar = risk.marginal_var(y, cov, conf, h)
        assert abs(mvar[i]) <= 1e-7 * math.sqrt(cov[i, i]) * norm.ppf(conf) * math.sqrt(h)
    np.testing.assert_allclose(res.reduction_pct, 1 - res.var_after / res.total, rtol=1e-12)


def test_best_hedge_zero_variance_asset_and_zero_book():
    cov = np.diag([0.04, 0.0, 0.09])
    cov[0, 2] = cov[2, 0] = 0.03
    res = best_hedge([1e6, 5e5, 2e6], cov)
    assert res.trade[1] == 0.0 and res.var_after[1] == res.total and res.reduction_pct[1] == 0.0
    assert np.all(np.isfinite(res.trade)) and np.all(np.isfinite(res.reduction_pct))
    zero = best_hedge([0.0, 0.0, 0.0], cov)
    assert zero.total == 0.0
    assert np.all(zero.trade == 0.0) and np.all(zero.var_after == 0.0) and np.all(zero.reduction_pct == 0.0)


def test_best_hedge_perfect_hedges():
    # one asset: the best hedge is to close it, leaving exactly no risk
    one = best_hedge([3e6], [[0.04]])
    assert one.trade[0] == -3e6 and one.var_after[0] == 0.0 and one.reduction_pct[0] == 1.0
    # correlation 1: selling sigma_1 / sigma_2 units of asset 2 per unit of asset 1
    cov = cov_from_corr([0.1, 0.2], [[1.0, 1.0], [1.0, 1.0]])
    res = best_hedge([1e6, 0.0], cov)
    assert res.trade[1] == pytest.approx(-5e5, rel=1e-12)
    assert res.var_after[1] == 0.0 and res.reduction_pct[1] == 1.0


def test_best_hedge_es_same_trade():
    var = best_hedge(X, COV)
    es = best_hedge(X, COV, measure="es")
    np.testing.assert_allclose(es.trade, var.trade)
    np.testing.assert_allclose(es.reduction_pct, var.reduction_pct, rtol=1e-12)
    assert es.total == pytest.approx(risk.portfolio_es(X, COV))


# ---------------------------------------------------------------------------------------
# return_per_risk
# ---------------------------------------------------------------------------------------


def test_return_per_risk_ratio_and_rank():
    mu = np.array([0.0003, 0.0001, 0.001])
    res = return_per_risk(X, COV, mu, horizon=5)
    mvar = risk.marginal_var(X, COV, horizon=5)
    np.testing.assert_allclose(res.marginal, mvar)
    np.testing.assert_allclose(res.expected_return, 5 * mu)
    np.testing.assert_allclose(res.ratio, 5 * mu / mvar)
    assert res.rank.tolist() == [2, 1, 3]  # TLT (low marginal VaR) buys the most return


def test_return_per_risk_hedges_are_ranked_by_the_documented_rule():
    # asset 4 and 5 are negatively correlated with the book: marginal VaR < 0
    vols = np.array([0.2, 0.2, 0.2, 0.2, 0.2])
    corr = np.full((5, 5), 0.5)
    corr[3:, :3] = corr[:3, 3:] = -0.4
    corr[3, 4] = corr[4, 3] = 0.2
    np.fill_diagonal(corr, 1.0)
    cov = cov_from_corr(vols, corr)
    x = np.array([1.0, 1.0, 1.0, 0.1, 0.1])
    mu = np.array([0.02, 0.05, -0.01, 0.01, -0.01])
    res = return_per_risk(x, cov, mu)
    assert np.all(res.marginal[:3] > 0) and np.all(res.marginal[3:] < 0)
    assert res.ratio[3] == math.inf and math.isnan(res.ratio[4])
    # tier 1: the hedge with positive return; tier 2: by ratio; tier 3: the costly hedge
    assert res.rank.tolist() == [3, 2, 4, 1, 5]
    assert sorted(res.rank.tolist()) == [1, 2, 3, 4, 5]


def test_return_per_risk_zero_risk_book_and_ties():
    res = return_per_risk([0.0, 0.0, 0.0], COV, [0.01, 0.02, -0.01])
    assert np.all(res.marginal == 0.0)
    assert res.ratio[0] == res.ratio[1] == math.inf and math.isnan(res.ratio[2])
    assert res.rank.tolist() == [2, 1, 3]
    tie = return_per_risk([1.0, 1.0], np.eye(2) * 0.04, [0.01, 0.01])
    assert tie.rank.tolist() == [1, 2]


def test_return_per_risk_errors():
    with pytest.raises(ValueError, match="expected_returns:"):
        return_per_risk(X, COV, [0.01, 0.02])


# ---------------------------------------------------------------------------------------
# risk_parity
# ---------------------------------------------------------------------------------------


def test_risk_parity_seed_example_shares():
    res = risk_parity(COV)
    assert np.all(res.weights > 0) and res.weights.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(res.shares, 1 / 3, atol=1e-8)
    # the shares are the delta-normal component VaR shares at any confidence and horizon
    np.testing.assert_allclose(risk.component_var_pct(res.weights, COV, 0.99, 10), 1 / 3, atol=1e-8)
    np.testing.assert_allclose(risk.component_es_pct(res.weights, COV), 1 / 3, atol=1e-8)


@pytest.mark.parametrize("rho", [-0.9, -0.3, 0.0, 0.5, 0.99])
@pytest.mark.parametrize("b1", [0.5, 0.2, 0.8])
def test_risk_parity_two_assets_closed_form(rho, b1):
    # u_i = w_i sigma_i; shares u1 (u1 + rho u2) : u2 (u2 + rho u1) = b1 : b2, so
    # r = u1 / u2 solves r^2 + rho (1 - beta) r - beta = 0 with beta = b1 / b2 (positive root);
    # equal budgets give r = 1: w proportional to 1 / sigma whatever rho.
    s1, s2 = 0.3, 0.1
    cov = np.array([[s1 * s1, rho * s1 * s2], [rho * s1 * s2, s2 * s2]])
    beta = b1 / (1 - b1)
    r = (-rho * (1 - beta) + math.sqrt(rho**2 * (1 - beta) ** 2 + 4 * beta)) / 2
    w = np.array([r / s1, 1 / s2])
    w /= w.sum()
    res = risk_parity(cov, [b1, 1 - b1])
    np.testing.assert_allclose(res.weights, w, rtol=1e-10)
    np.testing.assert_allclose(res.shares, [b1, 1 - b1], atol=1e-8)


def test_risk_parity_common_correlation_inverse_vol():
    # Maillard, Roncalli & Teiletche (2010): with one common correlation, ERC = 1 / sigma
    vols = np.array([0.05, 0.1, 0.2, 0.4, 0.15])
    corr = np.full((5, 5), 0.3)
    np.fill_diagonal(corr, 1.0)
    res = risk_parity(cov_from_corr(vols, corr))
    np.testing.assert_allclose(res.weights, (1 / vols) / np.sum(1 / vols), rtol=1e-10)


def test_risk_parity_diagonal_sqrt_budgets():
    vols = np.array([0.05, 0.1, 0.2, 0.4])
    b = np.array([0.1, 0.2, 0.3, 0.4])
    res = risk_parity(np.diag(vols**2), b)
    w = np.sqrt(b) / vols
    np.testing.assert_allclose(res.weights, w / w.sum(), rtol=1e-10)
    np.testing.assert_allclose(res.shares, b, atol=1e-8)


def test_risk_parity_budgets_are_normalised_and_scale_free():
    a = risk_parity(COV, [1, 1, 2])
    b = risk_parity(COV * 1e-6, [0.25, 0.25, 0.5])
    np.testing.assert_allclose(a.budgets, [0.25, 0.25, 0.5])
    np.testing.assert_allclose(a.weights, b.weights, rtol=1e-10)


def test_risk_parity_singular_but_solvable():
    # two perfectly correlated assets: still a unique answer, shares follow budgets
    cov = cov_from_corr([0.1, 0.2, 0.3], [[1, 1, 0], [1, 1, 0], [0, 0, 1]])
    res = risk_parity(cov)
    np.testing.assert_allclose(res.shares, 1 / 3, atol=1e-8)


@hsettings
@given(seeds, st.integers(2, 30))
def test_risk_parity_property(seed, n):
    rng = np.random.default_rng(seed)
    cov = random_cov(rng, n)
    b = rng.uniform(0.01, 1.0, n)
    res = risk_parity(cov, b)
    assert np.all(res.weights > 0) and res.weights.sum() == pytest.approx(1.0, abs=1e-14)
    np.testing.assert_allclose(res.shares, b / b.sum(), atol=1e-8)
    np.testing.assert_allclose(risk.component_var_pct(res.weights, cov), b / b.sum(), atol=1e-8)


@pytest.mark.parametrize(
    "cov, budgets, message",
    [
        (np.diag([0.04, 0.0]), None, "cov: asset 2 has zero variance"),
        (np.eye(2), [1.0, -1.0], "budgets:"),
        (np.eye(2), [1.0, 0.0], "budgets:"),
        (np.eye(3), [1.0, 1.0], "budgets:"),
        ([[0.04, -0.04], [-0.04, 0.04]], None, "cov: no long-only portfolio"),
    ],
)
def test_risk_parity_errors(cov, budgets, message):
    with pytest.raises(ValueError, match=message):
        risk_parity(cov, budgets)


def test_risk_parity_bad_settings():
    with pytest.raises(ValueError, match="tol:"):
        risk_parity(COV, tol=0)
    with pytest.raises(ValueError, match="max_iter:"):
        risk_parity(COV, max_iter=2.5)


# ---------------------------------------------------------------------------------------
# stress_corr and stressed_decomposition
# ---------------------------------------------------------------------------------------


def test_stress_corr_values():
    out = stress_corr(CORR, 0.5)
    expected = CORR + 0.5 * (1 - CORR)
    np.testing.assert_allclose(out, expected)
    np.testing.assert_allclose(stress_corr(CORR, 0.0), CORR)
    np.testing.assert_allclose(stress_corr(CORR, 1.0), np.ones((3, 3)))


@hsettings
@given(seeds, st.integers(2, 8), st.floats(0.0, 1.0))
def test_stress_corr_stays_a_correlation_matrix(seed, n, theta):
    rng = np.random.default_rng(seed)
    cov = random_cov(rng, n, rank=max(1, n - 2))  # singular on purpose: the edge of PSD
    d = np.sqrt(np.diag(cov))
    corr = np.clip(cov / d[:, None] / d[None, :], -1, 1)
    np.fill_diagonal(corr, 1.0)
    out = stress_corr(corr, theta)
    check_correlation(out)  # unit diagonal, entries in [-1, 1], symmetric, PSD
    assert np.linalg.eigvalsh(out)[0] >= -1e-10


@pytest.mark.parametrize("theta, message", [(50, "50%"), (-0.1, "theta:"), (1.5, "theta:"), ("x", "theta:")])
def test_stress_corr_bad_theta(theta, message):
    with pytest.raises(ValueError, match=message):
        stress_corr(CORR, theta)


def test_stressed_decomposition():
    res = stressed_decomposition(X, VOLS, CORR, 0.5, 0.99, 10)
    base = risk.decompose(X, COV, "var", 0.99, 10)
    assert res.base.total == pytest.approx(base.total)
    stressed_cov = cov_from_corr(VOLS, stress_corr(CORR, 0.5))
    assert res.stressed.total == pytest.approx(risk.portfolio_var(X, stressed_cov, 0.99, 10))
    assert res.increase == pytest.approx(res.stressed.total - res.base.total)
    assert res.increase > 0  # a long-only book
    assert res.stressed.component.sum() == pytest.approx(res.stressed.total)
    # theta = 1: everything moves together, VaR = sum of the individual VaRs
    full = stressed_decomposition(X, VOLS, CORR, 1.0)
    assert full.stressed.total == pytest.approx(risk.undiversified_var(X, COV))
    same = stressed_decomposition(X, VOLS, CORR, 0.0)
    assert same.increase == pytest.approx(0.0, abs=1e-6)


def test_stressed_decomposition_errors():
    with pytest.raises(ValueError, match="method:"):
        stressed_decomposition(X, VOLS, CORR, 0.5, method="historical")
    with pytest.raises(ValueError, match="vols:"):
        stressed_decomposition(X, VOLS[:2], CORR, 0.5)
    with pytest.raises(ValueError, match="theta:"):
        stressed_decomposition(X, VOLS, CORR, 20)
