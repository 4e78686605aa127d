"""Allocating risk: return per unit of marginal VaR, and risk-parity weights.

:func:`return_per_risk` ranks positions by expected return per unit of marginal VaR (any
method).  :func:`risk_parity` finds long-only weights whose component-VaR shares equal given
budgets (Spinu 2013, Newton's method).

References
----------
Spinu, F. (2013). An algorithm for computing risk parity weights. SSRN 2297383.
Maillard, S., Roncalli, T. and Teiletche, J. (2010). The properties of equally weighted
risk contribution portfolios. Journal of Portfolio Management 36(4).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import risk
from ._threads import blas_threads
from ._validation import (
    as_vector,
    check_count,
    check_covariance,
    check_horizon,
    check_positive,
)

__all__ = ['ReturnPerRisk', 'return_per_risk', 'RiskParity', 'risk_parity']

# ----------------------------------------------------------------------------------------
# return per unit of risk
# ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReturnPerRisk:
    """Expected return per unit of marginal VaR, and the ranking.

    Attributes
    ----------
    expected_return : ndarray, shape (n,)
        Expected return over the horizon, ``expected_returns * horizon``.
    marginal : ndarray, shape (n,)
        Marginal VaR (per unit of currency, over the horizon).
    ratio : ndarray, shape (n,)
        ``expected_return / marginal`` where marginal VaR > 0; ``+inf`` where marginal VaR
        <= 0 and the expected return > 0; NaN where marginal VaR <= 0 and the expected return
        <= 0 (the ratio has no meaning there).
    rank : ndarray of int, shape (n,)
        1 = best; see :func:`return_per_risk` for the order.
    """

    expected_return: np.ndarray
    marginal: np.ndarray
    ratio: np.ndarray
    rank: np.ndarray


def return_per_risk(positions, model, expected_returns, confidence=0.95, horizon=1, method="normal", **options) -> ReturnPerRisk:
    """Expected return bought by one more unit of VaR in each asset, ranked.

    ``ratio_i = mu_i h / MVaR_i``: adding one unit of currency to asset ``i`` adds
    ``mu_i h`` of expected return and ``MVaR_i`` of VaR.  At a return-maximising book for
    a given VaR every ratio is equal, so a high ratio says "add", a low one "trim".

    The ratio only measures a trade-off when ``MVaR_i > 0``.  The ranking (1 = best) is:

    1. ``MVaR_i <= 0`` and ``mu_i > 0`` (more return and no more risk): ratio ``+inf``,
       ranked first, by higher expected return, then by lower marginal VaR;
    2. ``MVaR_i > 0``: by ratio, highest first;
    3. ``MVaR_i <= 0`` and ``mu_i <= 0`` (a hedge that costs return): ratio NaN, ranked
       last, by higher expected return, then by lower marginal VaR.

    A marginal VaR within ``1e-12`` times the largest ``|MVaR|`` counts as zero.  Ties keep
    the order of the assets, so ranks are 1..n with no repeats.

    Parameters
    ----------
    positions : array_like, shape (n,)
    model : array_like
        As for :func:`xlmvar.engine.risk.decompose`.
    expected_returns : array_like, shape (n,)
        Expected return of each asset **per period** (fractions); scaled by ``horizon``.
    confidence, horizon, method, **options
        As for :func:`xlmvar.engine.risk.decompose`.

    Returns
    -------
    ReturnPerRisk
        ``expected_return, marginal, ratio, rank``.
    """
    x = as_vector(positions, "positions")
    mu = as_vector(expected_returns, "expected_returns", x.size)
    h = check_horizon(horizon)
    marginal = risk.decompose(x, model, "var", confidence, h, method, **options).marginal
    ret = mu * h
    scale = float(np.max(np.abs(marginal))) if marginal.size else 0.0
    risky = marginal > 1e-12 * scale
    free = ~risky & (ret > 0.0)
    ratio = np.full(x.size, np.nan)
    ratio[risky] = ret[risky] / marginal[risky]
    ratio[free] = np.inf
    tier = np.where(free, 0, np.where(risky, 1, 2))
    score = np.where(risky, -ratio, -ret)  # sorted ascending: best first
    tie = np.where(risky, 0.0, marginal)
    order = np.lexsort((np.arange(x.size), tie, score, tier))
    rank = np.empty(x.size, dtype=int)
    rank[order] = np.arange(1, x.size + 1)
    return ReturnPerRisk(ret, marginal, ratio, rank)


# ----------------------------------------------------------------------------------------
# risk parity
# ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RiskParity:
    """Risk-budgeting portfolio.

    Attributes
    ----------
    weights : ndarray, shape (n,)
        Long-only weights summing to 1.
    shares : ndarray, shape (n,)
        Achieved risk shares ``w_i (S w)_i / w' S w`` (equal to the component-VaR shares of
        the delta-normal method, and the component-ES shares).
    budgets : ndarray, shape (n,)
        The budgets, normalised to sum to 1.
    iterations : int
        Newton steps taken.
    """

    weights: np.ndarray
    shares: np.ndarray
    budgets: np.ndarray
    iterations: int


def risk_parity(cov, budgets=None, tol=1e-12, max_iter=100) -> RiskParity:
    """Long-only weights whose risk shares equal the budgets (equal risk contribution).

    Finds ``w >= 0``, ``sum w = 1``, with ``w_i (S w)_i / (w' S w) = b_i``.  In the normal
    model these are the component-VaR (and ES) shares at any confidence and horizon.

    Algorithm (Spinu 2013): on the correlation matrix ``R = D^-1 S D^-1`` (``D`` = vols),
    minimise the strictly convex ``F(u) = u' R u / 2 - sum_i b_i ln u_i`` over ``u > 0``;
    its stationary point has ``u_i (R u)_i = b_i``, and ``w = (u / vols) / sum(u / vols)``.
    Newton's method, started from ``u ∝ sqrt(b)`` (the answer for uncorrelated assets),
    with the step kept inside ``u > 0`` and an Armijo backtracking line search until the
    Newton decrement falls below 1/4, full steps after: global convergence, then
    quadratic (typically under 10 steps; 20 for budgets spread over nine orders of
    magnitude).  The answer is scale-free: ``cov`` and ``c * cov`` give the same weights.

    Parameters
    ----------
    cov : array_like, shape (n, n)
        Covariance (any scale; only correlations and vol ratios matter).
    budgets : array_like, shape (n,), optional
        Positive risk budgets, **normalised to sum to 1** (so 1, 1, 2 means 25%, 25%, 50%);
        default equal budgets.
    tol : float, default 1e-12
        Stop when every ``|share_i - b_i| <= tol``.
    max_iter : int, default 100
        Newton steps allowed.

    Returns
    -------
    RiskParity
        ``weights, shares, budgets, iterations``.

    Raises
    ------
    ValueError
        An asset with zero variance (it can take no risk), a non-positive budget, or no
        long-only solution (some long-only combination is riskless, e.g. correlation -1).
    """
    s = check_covariance(cov)
    n = s.shape[0]
    vols = np.sqrt(np.diag(s))
    if np.any(vols == 0.0):
        i = int(np.argmax(vols == 0.0))
        raise ValueError(
            f"cov: asset {i + 1} has zero variance; it carries no risk and cannot take a "
            "positive risk budget"
        )
    if budgets is None:
        b = np.full(n, 1.0 / n)
    else:
        b = as_vector(budgets, "budgets", n)
        if np.any(b <= 0.0):
            i = int(np.argmax(b <= 0.0))
            raise ValueError(f"budgets: item {i + 1} is {b[i]:g}; risk budgets must be positive")
        b = b / b.max()  # first, so that budgets of 1e308 do not overflow their sum
        b = b / b.sum()
        if not np.all(b > 0.0):  # spread over more than 308 orders of magnitude
            raise ValueError("budgets: are too far apart to normalise (a ratio beyond 1e308); expected ratios a float can hold")
    tol = check_positive(tol, "tol")
    max_iter = check_count(max_iter, "max_iter")
    r = s / vols[:, None] / vols[None, :]
    with blas_threads(2.0 / 3.0 * n**3):  # a linear solve each Newton step
        u, iterations = _spinu_newton(r, b, tol, max_iter)
    if u is None:
        raise ValueError(
            "cov: no long-only portfolio with these risk budgets was found (within "
            f"{max_iter} Newton steps); this happens when some combination of long positions "
            "is (almost) riskless, e.g. two assets with correlation -1"
        )
    w = u / vols
    w /= w.sum()
    sw = s @ w
    return RiskParity(w, w * sw / float(w @ sw), b, iterations)


def _spinu_newton(r: np.ndarray, b: np.ndarray, tol: float, max_iter: int):
    """Solve ``u * (R u) = b``, ``u > 0`` (``sum b = 1``); return ``(u, steps)`` or ``(None, steps)``.

    Newton's method on ``F(u) = u' R u / 2 - b' ln u``: the step is cut to stay inside
    ``u > 0`` (99% of the way to the boundary) and halved until ``F`` falls by the Armijo
    amount, except that once the Newton decrement is below 1/4 a feasible full step is
    always taken (quadratic convergence; near the optimum ``F`` cannot resolve the decrease).
    Converged when every ``|share_i - b_i|`` is within ``tol`` (or within the rounding error
    of the shares themselves, if that is larger, up to 1e-9) and ``u' R u`` is 1 as it must
    be at the solution (it tends to 0 when the problem has no solution).
    """
    n = b.size
    u = np.sqrt(b)
    start = float(u @ r @ u)
    if start <= 16.0 * n * np.finfo(float).eps * float(u.sum()) ** 2:
        return None, 0
    u = u / math.sqrt(start)  # u' R u = 1 = sum(b): the scale of the solution
    objective = lambda v: 0.5 * float(v @ r @ v) - float(b @ np.log(v))  # noqa: E731
    f = objective(u)
    for steps in range(1, max_iter + 1):
        grad = r @ u - b / u
        try:
            step = -np.linalg.solve(r + np.diag(b / u**2), grad)
        except np.linalg.LinAlgError:
            return None, steps
        slope = float(grad @ step)
        shrinking = step < 0.0
        alpha = min(1.0, 0.99 * float(np.min(-u[shrinking] / step[shrinking]))) if shrinking.any() else 1.0
        if not (slope > -0.0625 and alpha == 1.0):  # decrement^2 = -slope; damped phase
            while objective(u + alpha * step) > f + 1e-4 * alpha * slope and alpha > 1e-12:
                alpha *= 0.5
        u = u + alpha * step
        if not np.all(np.isfinite(u)) or np.any(u <= 0.0):
            return None, steps
        f = objective(u)
        if _converged(u, r, b, tol):
            return u, steps
    return None, max_iter


def _converged(u: np.ndarray, r: np.ndarray, b: np.ndarray, tol: float) -> bool:
    contrib = u * (r @ u)
    total = float(contrib.sum())
    if not math.isfinite(total) or abs(total - 1.0) > 1e-6:
        return False
    error = np.abs(contrib / total - b)
    rounding = 4.0 * b.size * np.finfo(float).eps * u * (np.abs(r) @ u) / total
    return bool(np.all(error <= np.maximum(tol, np.minimum(rounding, 1e-9))))
