"""Tests for factor models (FACTORLOADINGS, FACTORCOV, FACTORVAR): xlmvar.engine.factors.

References: numpy's lstsq run asset by asset, the one-factor closed form (beta = cov / var,
R^2 = correlation^2), the covariance B F B' + D built by a loop over its entries, the
brute-force N x N delta-normal VaR on that covariance, and central finite differences of
VaR in the factor exposures.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm

from xlmvar.engine import factors, risk
from xlmvar.excel import analytics

T, N, K = 260, 5, 2


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(21)
    f = rng.normal(0, 0.01, size=(T, K))
    b = rng.normal(1.0, 0.5, size=(N, K))
    r = 0.0003 + f @ b.T + rng.normal(0, 0.004, size=(T, N))
    return r, f


def test_loadings_are_lstsq_asset_by_asset(data):
    r, f = data
    fit = factors.factor_loadings(r, f)
    design = np.column_stack([np.ones(T), f])
    for i in range(N):
        coef, ssr, _, _ = np.linalg.lstsq(design, r[:, i], rcond=None)
        assert fit.intercept[i] == pytest.approx(coef[0], rel=1e-10, abs=1e-14)
        assert fit.loadings[i] == pytest.approx(coef[1:], rel=1e-10)
        assert fit.specific_var[i] == pytest.approx(ssr[0] / (T - K - 1), rel=1e-10)
        sst = np.sum((r[:, i] - r[:, i].mean()) ** 2)
        assert fit.r_squared[i] == pytest.approx(1 - ssr[0] / sst, rel=1e-10)


def test_one_factor_closed_form(data):
    r, f = data
    m = f[:, 0]
    fit = factors.factor_loadings(r, m.reshape(-1, 1))
    for i in range(N):
        y = r[:, i]
        beta = np.sum((m - m.mean()) * (y - y.mean())) / np.sum((m - m.mean()) ** 2)
        alpha = y.mean() - beta * m.mean()
        rho = np.corrcoef(m, y)[0, 1]
        resid = y - alpha - beta * m
        assert fit.loadings[i, 0] == pytest.approx(beta, rel=1e-10)
        assert fit.intercept[i] == pytest.approx(alpha, rel=1e-9, abs=1e-13)
        assert fit.r_squared[i] == pytest.approx(rho**2, rel=1e-10)
        assert fit.specific_var[i] == pytest.approx(resid @ resid / (T - 2), rel=1e-10)


@pytest.fixture(scope="module")
def model(data):
    r, f = data
    fit = factors.factor_loadings(r, f)
    return fit.loadings, np.cov(f.T), fit.specific_var


def test_factor_cov_entry_by_entry(model):
    b, fcov, d = model
    cov = factors.factor_cov(b, fcov, d)
    for i in range(N):
        for j in range(N):
            v = sum(b[i, k] * fcov[k, l] * b[j, l] for k in range(K) for l in range(K))
            assert cov[i, j] == pytest.approx(v + (d[i] if i == j else 0.0), rel=1e-12)


X = np.array([2e6, -1e6, 3e6, 0.5e6, 1e6])


@pytest.mark.parametrize("measure, confidence, horizon", [("var", 0.95, 1), ("var", 0.99, 10), ("es", 0.975, 1)])
def test_factor_var_against_brute_force_and_finite_differences(model, measure, confidence, horizon):
    b, fcov, d = model
    result = factors.factor_var(X, b, fcov, d, confidence, horizon, measure)
    cov = [[sum(b[i, k] * fcov[k, l] * b[j, l] for k in range(K) for l in range(K)) + (d[i] if i == j else 0.0)
            for j in range(N)] for i in range(N)]
    variance = sum(X[i] * cov[i][j] * X[j] for i in range(N) for j in range(N))
    z = norm.ppf(confidence)
    mult = (z if measure == "var" else norm.pdf(z) / (1 - confidence)) * math.sqrt(horizon)
    assert result.total == pytest.approx(mult * math.sqrt(variance), rel=1e-12)
    assert result.total == pytest.approx(
        risk.decompose(X, factors.factor_cov(b, fcov, d), measure, confidence, horizon).total, rel=1e-12
    )
    exposures = [sum(b[i, k] * X[i] for i in range(N)) for k in range(K)]
    assert result.exposures == pytest.approx(exposures, rel=1e-12)
    specific = float(X @ (d * X))

    def total(e):
        return mult * math.sqrt(e @ fcov @ e + specific)

    e = np.array(exposures)
    for k in range(K):
        step = 1e-4 * abs(e[k])
        up, down = e.copy(), e.copy()
        up[k] += step
        down[k] -= step
        assert result.marginal[k] == pytest.approx((total(up) - total(down)) / (2 * step), rel=1e-7)
    # the specific part is the Euler term of x' D x: d/dt Risk(e, t x) for the specific scale
    assert result.specific == pytest.approx(mult * specific / math.sqrt(variance), rel=1e-12)
    assert result.component.sum() + result.specific == pytest.approx(result.total, rel=1e-12)
    assert result.percent.sum() == pytest.approx(1.0, rel=1e-12)


def test_zero_book(model):
    b, fcov, d = model
    result = factors.factor_var(np.zeros(N), b, fcov, d)
    assert result.total == 0.0 and not np.any(result.component) and result.specific == 0.0


def test_excel_functions(data, model):
    r, f = data
    table = analytics.FACTORLOADINGS(r, f)
    assert table[0] == ["Beta 1", "Beta 2", "Intercept", "Specific variance", "R^2"]
    fit = factors.factor_loadings(r, f)
    assert np.array(table[1:])[:, :2] == pytest.approx(fit.loadings, rel=1e-15)
    b, fcov, d = model
    out = analytics.FACTORVAR(X.reshape(-1, 1), b, fcov, d.reshape(-1, 1), names=[["Market", "Rates"]])
    assert [row[0] for row in out] == ["Factor", "Market", "Rates", "Specific", "Total"]
    assert out[1][3] + out[2][3] + out[3][3] == pytest.approx(out[4][3], rel=1e-12)
    assert analytics.FACTORCOV(b, fcov, d) == pytest.approx(factors.factor_cov(b, fcov, d), rel=1e-15)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda r, f, b, c, d: factors.factor_loadings(r, f[:-1]), "factor_returns: has 259 rows but returns has 260"),
        (lambda r, f, b, c, d: factors.factor_loadings(r, np.column_stack([f, 2 * f[:, 0]])), "factor_returns: the factors are collinear"),
        (lambda r, f, b, c, d: factors.factor_loadings(r[:3], f[:3]), "returns: has 3 rows; 2 factor"),
        (lambda r, f, b, c, d: factors.factor_cov(b, c, -d), "specific_var: item 1 is"),
        (lambda r, f, b, c, d: factors.factor_cov(b, np.eye(3), d), "factor_cov: is 3 x 3 but loadings has 2 column"),
        (lambda r, f, b, c, d: factors.factor_var(X[:3], b, c, d), "positions: has 3 values but loadings has 5 rows"),
        (lambda r, f, b, c, d: analytics.FACTORVAR(X, b, c, d, names=["a"]), "names: has 1 cells but there are 2 factors"),
    ],
)
def test_bad_input_is_named(data, model, call, message):
    with pytest.raises(ValueError, match=message):
        call(*data, *model)
