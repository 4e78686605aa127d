"""Shared fixtures for the history-based methods: the edhec data and a literal reference.

``edhec()`` reads ``xlmvar/data/edhec.csv`` (PerformanceAnalytics' data set, GPL; see
``xlmvar/data/README.md``).  ``literal_cornish_fisher`` is a deliberately naive transcription of
Boudt, Peterson & Croux (2008) as PerformanceAnalytics implements it: it forms the n x n^2 and
n x n^3 co-moment matrices and the portfolio moments ``w' M3 (w kron w)`` etc., so it is only
usable for a handful of assets.  The fast engine must agree with it.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy.stats import norm

DATA = Path(__file__).resolve().parent.parent / "xlmvar" / "data" / "edhec.csv"

#: PerformanceAnalytics' test portfolio: edhec[1:100, 1:3], weights (0.3, 0.4, 0.3), p = 0.95.
PA_WEIGHTS = np.array([0.3, 0.4, 0.3])


@lru_cache(maxsize=1)
def _table() -> np.ndarray:
    return np.loadtxt(DATA, delimiter=",", skiprows=1, usecols=range(1, 14))


def edhec(rows: int | None = None, cols: int | None = None) -> np.ndarray:
    """The first ``rows`` x ``cols`` of the edhec returns (a fresh copy)."""
    return _table()[:rows, :cols].copy()


# --- literal co-moment reference (PerformanceAnalytics' formulas) ----------------------------


def comoments(returns: np.ndarray):
    """``mu``, ``cov`` (divisor T - 1), ``M3`` (n x n^2) and ``M4`` (n x n^3), divisor T."""
    t, n = returns.shape
    mu = returns.mean(axis=0)
    c = returns - mu
    m3 = np.zeros((n, n * n))
    m4 = np.zeros((n, n**3))
    for row in c:
        outer = np.outer(row, row)
        m3 += np.kron(outer, row)
        m4 += np.kron(np.kron(outer, row), row)
    return mu, np.cov(returns, rowvar=False), m3 / t, m4 / t


def literal_cornish_fisher(w, returns, p=0.95, measure="var"):
    """PerformanceAnalytics' component modified VaR / operational ES, written out literally.

    Returns ``(total, contribution)`` as positive losses (PerformanceAnalytics' portfolio sign).
    """
    w = np.asarray(w, float)
    mu, sigma, m3, m4 = comoments(returns)
    alpha = 1 - p
    z = norm.ppf(alpha)
    location = w @ mu
    ww = np.kron(w, w)
    www = np.kron(ww, w)
    pm2, dpm2 = w @ sigma @ w, 2 * sigma @ w
    pm3, dpm3 = w @ m3 @ ww, 3 * m3 @ ww
    pm4, dpm4 = w @ m4 @ www, 4 * m4 @ www
    skew = pm3 / pm2**1.5
    exkurt = pm4 / pm2**2 - 3
    derskew = (2 * pm2**1.5 * dpm3 - 3 * pm3 * np.sqrt(pm2) * dpm2) / (2 * pm2**3)
    derexkurt = (pm2 * dpm4 - 2 * pm4 * dpm2) / pm2**3
    h = z + (z**2 - 1) * skew / 6 + (z**3 - 3 * z) * exkurt / 24 - (2 * z**3 - 5 * z) * skew**2 / 36
    derh = (
        (z**2 - 1) * derskew / 6
        + (z**3 - 3 * z) * derexkurt / 24
        - (2 * z**3 - 5 * z) * skew * derskew / 18
    )
    mvar = -location - h * np.sqrt(pm2)
    der_mvar = -mu - h * dpm2 / (2 * np.sqrt(pm2)) - np.sqrt(pm2) * derh
    if measure == "var":
        return mvar, w * der_mvar
    e = norm.pdf(h) * (
        1
        + h**3 * skew / 6
        + (h**6 - 9 * h**4 + 9 * h**2 + 3) * skew**2 / 72
        + (h**4 - 2 * h**2 - 1) * exkurt / 24
    ) / alpha
    if -e > h:  # operational floor: ES below VaR -> ES = VaR
        return mvar, w * der_mvar
    mes = -location + np.sqrt(pm2) * e
    der_mes = (
        -mu
        + e * dpm2 / (2 * np.sqrt(pm2))
        - np.sqrt(pm2) * e * h * derh
        + norm.pdf(h)
        * np.sqrt(pm2)
        / alpha
        * (
            derh
            * (
                h**2 * skew / 2
                + (6 * h**5 - 36 * h**3 + 18 * h) * skew**2 / 72
                + (4 * h**3 - 4 * h) * exkurt / 24
            )
            + h**3 * derskew / 6
            + (h**6 - 9 * h**4 + 9 * h**2 + 3) * skew * derskew / 36
            + (h**4 - 2 * h**2 - 1) * derexkurt / 24
        )
    )
    return mes, w * der_mes


def central_difference(f, x, step):
    """Gradient of a scalar function by central differences, ``step`` per coordinate."""
    x = np.asarray(x, float)
    grad = np.empty_like(x)
    for i in range(x.size):
        e = np.zeros_like(x)
        e[i] = step
        grad[i] = (f(x + e) - f(x - e)) / (2 * step)
    return grad
