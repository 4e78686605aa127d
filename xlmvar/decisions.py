"""Decisions from a VaR decomposition: limits, hedges, new assets, risk budgets, stress.

Notation (as in :mod:`xlmvar.parametric`): ``x`` positions (signed currency exposures),
``S`` the per-period covariance, ``h`` the horizon in periods, ``k`` the normal tail
multiplier (``z = Phi^-1(confidence)`` for VaR, ``phi(z) / (1 - confidence)`` for ES),
``sigma_p = sqrt(x' S x)`` and ``e_i`` the i-th unit vector.  VaR is a positive loss;
shares (component VaR / VaR) are fractions that sum to 1.

Functions
---------
var_limits
    Component-VaR shares against a limit and, for each breach, the trade in that asset
    alone that brings its share back to the limit (any method).
marginal_var_new_asset
    Marginal VaR of an asset not yet held, from its covariances with the book (normal).
best_hedge
    Litterman's (1996) best hedge: for each asset the trade in it alone that minimises VaR.
return_per_risk
    Expected return per unit of marginal VaR, with a rank (any method).
risk_parity
    Long-only weights whose risk shares equal given budgets (Spinu 2013, Newton).
stress_corr, stressed_decomposition
    Correlations pushed toward 1, and the decomposition before and after.

The incremental VaR/ES of a multi-asset trade is :func:`xlmvar.risk.incremental_var`.

References
----------
Litterman, R. (1996). Hot Spots and Hedges. Goldman Sachs Risk Management Series.
Spinu, F. (2013). An algorithm for computing risk parity weights. SSRN 2297383.
Maillard, S., Roncalli, T. and Teiletche, J. (2010). The properties of equally weighted
risk contribution portfolios. Journal of Portfolio Management 36(4).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq

from . import parametric, risk
from ._decomposition import Decomposition
from ._validation import as_vector, check_correlation, check_covariance, check_finite_result, check_horizon, check_number
from .covariance import cov_from_corr

__all__ = [
    "VarLimits",
    "var_limits",
    "marginal_var_new_asset",
    "BestHedge",
    "best_hedge",
    "ReturnPerRisk",
    "return_per_risk",
    "RiskParity",
    "risk_parity",
    "stress_corr",
    "StressedRisk",
    "stressed_decomposition",
]

#: A share counts as over its limit only if it exceeds it by more than this (rounding).
_BREACH_TOL = 1e-12

#: VaR this small relative to the book's counts as zero when deciding that a share crossed
#: its limit through a pole (a perfect hedge); the variance there is only known to ~1e-16
#: of the book's, so the VaR to ~1e-8.
_POLE_TOL = 1e-6

_NO_CURE_SOLE = (
    "no trade in this asset alone reaches the limit: the rest of the book carries (almost) no "
    "risk, so this asset's share stays near 100% until the position is closed"
)
_NO_CURE_HEDGE = (
    "no trade in this asset alone reaches the limit: shrinking it turns the book into a "
    "perfect hedge (VaR 0) before its share falls to the limit, and beyond that point the "
    "asset is a hedge (negative share); see best_hedge"
)


# ----------------------------------------------------------------------------------------
# argument checks local to this module
# ----------------------------------------------------------------------------------------


def _scalar(value, name: str, expected: str) -> float:
    """A single finite number (a 1 x 1 range is accepted)."""
    return check_number(value, name, expected)


def _fraction(values, name: str, size: int, low_open: bool) -> np.ndarray:
    """Fractions in (0, 1] (``low_open``) or [0, 1], one or one per asset; 15 -> hint 15%."""
    arr = np.asarray(values, dtype=object) if not isinstance(values, np.ndarray) else values
    if arr.size == 1:  # one value: a blank, text or an error is described as itself
        vec = np.array([check_number(arr.reshape(-1)[0], name, "a fraction such as 15% or 0.15")])
    else:
        vec = as_vector(arr, name)
    if vec.size not in (1, size):
        raise ValueError(
            f"{name}: has {vec.size} values but the book has {size} assets; expected one value "
            "or one per asset"
        )
    interval = "(0, 1]" if low_open else "[0, 1]"
    for i, v in enumerate(vec):
        where = "" if vec.size == 1 else f" (item {i + 1})"
        if 1.0 < v <= 100.0:
            raise ValueError(
                f"{name}: got {v:g}{where}, which looks like a percentage; use {v:g}% or "
                f"{v / 100:g}"
            )
        if v > 1.0 or v < 0.0 or (low_open and v == 0.0):
            raise ValueError(
                f"{name}: got {v:g}{where}; expected a fraction in {interval}, such as 15% or 0.15"
            )
    return np.full(size, vec[0]) if vec.size == 1 else vec


def _unit_interval(value, name: str) -> float:
    """A single number in [0, 1]; 50 is refused with the hint 50%."""
    v = _scalar(value, name, "a fraction in [0, 1] such as 50% or 0.5")
    return float(_fraction(v, name, 1, low_open=False)[0])


# ----------------------------------------------------------------------------------------
# VaR limits
# ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VarLimits:
    """Component-VaR shares of a book checked against limits.

    Attributes
    ----------
    total : float
        VaR (or ES) of the book as it stands.
    shares : ndarray, shape (n,)
        Component VaR / VaR, summing to 1.
    limit : ndarray, shape (n,)
        The limit of each asset (a single limit is repeated).
    breach : ndarray of bool, shape (n,)
        ``shares > limit`` (by more than 1e-12).  Never true when ``total <= 0``.
    trade : ndarray, shape (n,)
        For a breaching asset the signed trade in that asset alone after which its share
        equals its limit; 0 where there is no breach; NaN where no such trade exists
        (``reason`` says why).
    position_after : ndarray, shape (n,)
        ``positions + trade`` for each asset (NaN where ``trade`` is NaN).
    var_after : ndarray, shape (n,)
        VaR of the book after that asset's trade alone (each trade on its own, not all of
        them together); ``total`` where there is no breach; NaN where ``trade`` is NaN.
    reason : tuple of str
        Empty where the trade is exact; otherwise an explanation for the cell.
    """

    total: float
    shares: np.ndarray
    limit: np.ndarray
    breach: np.ndarray
    trade: np.ndarray
    position_after: np.ndarray
    var_after: np.ndarray
    reason: tuple


def _limit_position_normal(x: np.ndarray, s: np.ndarray, i: int, limit: float) -> float:
    """New position y_i with pct_i = limit under the zero-mean normal model, or NaN.

    With ``a = S_ii``, ``b = sum_{j != i} S_ij x_j`` and ``c`` the variance of the rest of
    the book, ``pct_i(y) = y (a y + b) / (a y^2 + 2 b y + c)`` (``k sqrt(h)`` cancels), so
    ``pct_i(y) = L`` is the quadratic ``a (1 - L) y^2 + b (1 - 2L) y - L c = 0``.  For
    ``L < 1`` and ``c > 0`` it has one positive and one negative root, and the root with the
    sign of ``x_i`` is the only crossing between 0 and ``x_i`` (when the denominator, the
    book's variance, has a zero there, ``b^2 = a c``, that root is the zero itself: the
    caller checks).  ``L = 1`` leaves the linear ``y = -c / b``.
    """
    rest = x.copy()
    rest[i] = 0.0
    a = float(s[i, i])
    b = float(s[i] @ rest)
    c = float(rest @ s @ rest)
    big_a, big_b, big_c = a * (1.0 - limit), b * (1.0 - 2.0 * limit), -limit * c
    if big_a == 0.0:
        roots = [-big_c / big_b] if big_b != 0.0 else []
    else:
        disc = max(big_b * big_b - 4.0 * big_a * big_c, 0.0)
        q = -0.5 * (big_b + math.copysign(math.sqrt(disc), big_b))
        roots = [q / big_a, big_c / q] if q != 0.0 else [0.0]
    xi = float(x[i])
    inside = [y for y in roots if y * xi > 0.0 and abs(y) < abs(xi)]
    return inside[0] if inside else math.nan


def _limit_position_search(evaluate, xi: float, limit: float):
    """New position between 0 and ``x_i`` where asset i's share equals ``limit``.

    ``evaluate(y)`` returns ``(share_i, total)`` with asset ``i`` at ``y``; ``share(0) = 0 <
    limit < share(x_i)``.  A 16-step grid from ``x_i`` toward 0 finds the first interval
    where the share falls to the limit (so the smallest such trade is found), and
    ``scipy.optimize.brentq`` refines it.  If the share is not continuous there:

    * at a point where the VaR is 0 (a perfect hedge: the share is a pole) -> NaN;
    * otherwise (historical or Monte Carlo decompositions change scenario) the smallest
      trade found that brings the share to or below the limit, with a note.

    Returns ``(y, note)``: ``note`` is "" for an exact crossing, the note for a jump, or
    the reason when ``y`` is NaN.
    """
    f = lambda y: evaluate(y)[0] - limit  # noqa: E731
    hi, lo = xi, 0.0
    for y in xi * np.linspace(1.0, 0.0, 17)[1:]:
        if f(y) <= 0.0:
            lo = y
            break
        hi = y
    xtol = 1e-13 * abs(xi)
    root = lo if f(lo) == 0.0 else brentq(f, lo, hi, xtol=xtol, rtol=1e-14, maxiter=200)
    near_zero = 1e-9 * abs(xi)
    if abs(root) <= near_zero:
        return math.nan, _NO_CURE_SOLE
    share_root, total_root = evaluate(root)
    if abs(share_root - limit) <= 1e-9:
        return root, ""
    if abs(total_root) <= _POLE_TOL * abs(evaluate(xi)[1]):
        return math.nan, _NO_CURE_HEDGE
    # the share jumps past the limit at ``root``: step toward zero until it is at or below
    step = xtol
    while step < abs(root):
        y = root - math.copysign(step, xi)
        if abs(y) <= near_zero:
            break
        share_y = evaluate(y)[0]
        if share_y <= limit:
            return y, (
                f"the share jumps past the limit at this size (to {share_y:.6g}); this is the "
                "smallest trade found that brings it to or below the limit"
            )
        step *= 4.0
    return math.nan, _NO_CURE_SOLE


def var_limits(positions, model, limit, confidence=0.95, horizon=1, method="normal", measure="var", **options) -> VarLimits:
    """Component-VaR shares against a limit, and the trade that cures each breach.

    For each asset ``i``: ``share_i = component VaR_i / VaR`` is in breach when it exceeds
    ``limit_i``.  The cure is the trade ``t`` in asset ``i`` alone, shrinking the position
    toward zero (``x_i + t`` strictly between 0 and ``x_i``), with
    ``share_i(x + t e_i) = limit_i``.  Since ``share_i = 0`` at ``x_i + t = 0`` and exceeds the
    limit at ``t = 0``, such a trade exists whenever the share is continuous in between.

    * Normal method without a mean: exact, from the quadratic
      ``a (1 - L) y^2 + b (1 - 2L) y - L c = 0`` in the new position ``y = x_i + t``, where
      ``a = S_ii``, ``b = sum_{j != i} S_ij x_j``, ``c`` is the variance of the rest of the book.
    * Any other method or a mean: a 1-D root find (a grid, then ``scipy.optimize.brentq``)
      on the share computed by :func:`xlmvar.risk.decompose`.

    Two cases have no such trade; the trade is then NaN and ``reason`` says which:

    * the rest of the book carries no risk, so asset ``i``'s share is 100% at any non-zero
      size and only closing it changes that;
    * (singular covariance) shrinking the position reaches a perfect hedge of the rest of
      the book first: the VaR passes through 0 and the share jumps from above the limit to
      negative without ever equalling it.

    Parameters
    ----------
    positions : array_like, shape (n,)
        Signed exposures in currency.
    model : array_like
        Covariance (normal, montecarlo) or returns table (historical, cornish-fisher).
    limit : float or array_like, shape (n,)
        Largest allowed share of total VaR, a fraction in (0, 1] such as 15% or 0.15; one
        value for every asset or one per asset.  ``15`` is refused (use 15% or 0.15).
    confidence, horizon, method, measure, **options
        As for :func:`xlmvar.risk.decompose`.

    Returns
    -------
    VarLimits
        ``total, shares, limit, breach, trade, position_after, var_after, reason``.

    Notes
    -----
    Hedges (negative shares) never breach.  When the book's VaR is not positive (a mean
    larger than the risk) shares of it have no meaning and nothing is flagged.
    """
    x = as_vector(positions, "positions")
    lim = _fraction(limit, "limit", x.size, low_open=True)
    name = risk.check_method(method)
    decomp = lambda pos: risk.decompose(pos, model, measure, confidence, horizon, name, **options)  # noqa: E731
    now = decomp(x)
    shares = now.percent
    breach = (shares > lim + _BREACH_TOL) & (now.total > 0.0)
    trade = np.zeros(x.size)
    var_after = np.full(x.size, now.total)
    reasons = [""] * x.size
    if now.total < 0.0:
        reasons = ["the book's VaR is negative (the mean exceeds the risk); share limits do not apply"] * x.size
    closed_form = name == "normal" and options.get("mean") is None
    s = check_covariance(model, x.size) if closed_form and breach.any() else None
    for i in np.flatnonzero(breach):
        rest = x.copy()
        rest[i] = 0.0
        if abs(decomp(rest).total) <= _POLE_TOL * now.total:
            trade[i] = var_after[i] = math.nan
            reasons[i] = _NO_CURE_SOLE
            continue
        if closed_form:
            y = _limit_position_normal(x, s, i, float(lim[i]))
            note = _NO_CURE_SOLE if math.isnan(y) else ""
        else:
            def evaluate(y, i=i):
                trial = x.copy()
                trial[i] = y
                d = decomp(trial)
                return float(d.percent[i]), d.total

            y, note = _limit_position_search(evaluate, float(x[i]), float(lim[i]))
        if not math.isnan(y):
            after = x.copy()
            after[i] = y
            there = decomp(after)
            missed = not note and abs(float(there.percent[i]) - float(lim[i])) > 1e-8
            if there.total > _POLE_TOL * now.total and not missed:
                trade[i], var_after[i], reasons[i] = y - x[i], there.total, note
                continue
            note = _NO_CURE_HEDGE  # the crossing is the pole where VaR passes through 0
        trade[i] = var_after[i] = math.nan
        reasons[i] = note
    return VarLimits(float(now.total), shares, lim, breach, trade, x + trade, var_after, tuple(reasons))


# ----------------------------------------------------------------------------------------
# marginal VaR of an asset not held
# ----------------------------------------------------------------------------------------


def marginal_var_new_asset(positions, cov_book, cov_with_book, var_new, confidence=0.95, horizon=1, measure="var") -> float:
    """Marginal VaR of an asset the book does not hold yet (delta-normal).

    ``dVaR/da`` at ``a = 0`` for the book ``(x, a)`` with the augmented covariance
    ``[[S, c], [c', v]]``::

        MVaR_new = k (c' x) / sigma_p sqrt(h)

    where ``c = cov(new asset, book assets)``.  It is the VaR added per unit of currency of
    a small purchase; negative means the asset hedges the book.  ``v`` does not enter the
    derivative at ``a = 0`` but is needed to check that the augmented matrix is a
    covariance (positive semi-definite).  A zero-risk book gives 0 (the zero subgradient of
    ``sigma_p`` at its kink, as in :mod:`xlmvar.parametric`).

    Parameters
    ----------
    positions : array_like, shape (n,)
        Current signed exposures in currency.
    cov_book : array_like, shape (n, n)
        Per-period covariance of the assets held.
    cov_with_book : array_like, shape (n,)
        Per-period covariance of the new asset's return with each held asset's return.
    var_new : float
        Per-period **variance** (not VaR) of the new asset's return, >= 0.
    confidence : float in (0, 1), default 0.95
    horizon : int >= 1, default 1
    measure : {"var", "es"}, default "var"

    Returns
    -------
    float
        Marginal VaR (or ES) per unit of currency.
    """
    x = as_vector(positions, "positions")
    s = check_covariance(cov_book, x.size, name="cov_book")
    c = as_vector(cov_with_book, "cov_with_book", x.size)
    v = _scalar(var_new, "var_new", "the new asset's variance per period (>= 0)")
    if v < 0.0:
        raise ValueError(f"var_new: got {v:g}; a variance cannot be negative")
    h = check_horizon(horizon)
    k = parametric.tail_multiplier(confidence, measure) * math.sqrt(h)
    augmented = np.block([[s, c[:, None]], [c[None, :], np.array([[v]])]])
    try:
        check_covariance(augmented, name="cov_with_book")
    except ValueError:
        raise ValueError(
            "cov_with_book: these covariances are inconsistent with cov_book and var_new: "
            "together they are not a valid covariance matrix (not positive semi-definite); "
            "check that each |cov| <= the product of the volatilities"
        ) from None
    variance = float(x @ s @ x)
    if parametric._is_zero_risk(variance, x, s):
        return 0.0
    return float(k * (c @ x) / math.sqrt(variance))


# ----------------------------------------------------------------------------------------
# best hedges
# ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BestHedge:
    """Litterman's best hedge of each asset.

    Attributes
    ----------
    total : float
        VaR (or ES) of the book as it stands.
    trade : ndarray, shape (n,)
        Trade in asset ``i`` alone that minimises VaR, ``-(S x)_i / S_ii`` (0 for an asset
        with zero variance: no trade in it changes the VaR).
    position_after : ndarray, shape (n,)
        ``x_i + trade_i``, the minimum-VaR position in asset ``i`` with the rest held.
    var_after : ndarray, shape (n,)
        VaR after that trade alone.
    reduction_pct : ndarray, shape (n,)
        ``1 - var_after / total`` as a fraction (format as %); 0 for a zero-risk book.
    """

    total: float
    trade: np.ndarray
    position_after: np.ndarray
    var_after: np.ndarray
    reduction_pct: np.ndarray


def best_hedge(positions, cov, confidence=0.95, horizon=1, measure="var") -> BestHedge:
    """For each asset, the trade in it alone that minimises the book's VaR (Litterman 1996).

    VaR along ``x + t e_i`` is ``k sqrt(h) sqrt(sigma_p^2 + 2 t (S x)_i + t^2 S_ii)``,
    minimised at::

        t_i          = -(S x)_i / S_ii
        VaR_after_i  = k sqrt(h) sqrt(sigma_p^2 - (S x)_i^2 / S_ii)

    after which the marginal VaR of asset ``i`` is zero (``(S (x + t_i e_i))_i = 0``).  The
    minimiser is the same for VaR and ES (both are multiples of sigma); ``measure`` only
    scales ``total`` and ``var_after``.  An asset with ``S_ii = 0`` also has zero covariance
    with everything (S is PSD), so no trade in it changes the risk: its trade is 0 and its
    ``var_after`` the current VaR.

    Parameters
    ----------
    positions : array_like, shape (n,)
    cov : array_like, shape (n, n)
        Per-period covariance.
    confidence : float in (0, 1), default 0.95
    horizon : int >= 1, default 1
    measure : {"var", "es"}, default "var"

    Returns
    -------
    BestHedge
        ``total, trade, position_after, var_after, reduction_pct``.
    """
    x = as_vector(positions, "positions")
    s = check_covariance(cov, x.size)
    h = check_horizon(horizon)
    k = parametric.tail_multiplier(confidence, measure) * math.sqrt(h)
    total = parametric.decompose(x, s, measure, confidence, h).total
    diag = np.diag(s)
    live = diag > 0.0
    # the hedged position -(sum_{j != i} S_ij x_j) / S_ii, formed without x_i so that it is
    # exactly 0 when nothing else in the book co-moves with asset i
    others = (s - np.diag(diag)) @ x
    after = x.copy()
    after[live] = -others[live] / diag[live]
    trade = after - x
    books = np.where(np.eye(x.size, dtype=bool), after[:, None], x[None, :])  # row i: hedge i
    variance = np.einsum("ij,jk,ik->i", books, s, books)
    scale = np.abs(books) @ np.sqrt(diag)
    zero = variance <= (1e-12 * scale) ** 2  # the zero-risk rule of xlmvar.parametric
    var_after = np.where(zero, 0.0, k * np.sqrt(np.clip(variance, 0.0, None)))
    var_after = np.where(live, np.minimum(var_after, total), total)  # rounding never adds risk
    reduction = (1.0 - var_after / total) if total > 0.0 else np.zeros(x.size)
    check_finite_result("positions", "the best hedge of these positions with this covariance", after, var_after, reduction)
    return BestHedge(float(total), trade, after, var_after, reduction)


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
        As for :func:`xlmvar.risk.decompose`.
    expected_returns : array_like, shape (n,)
        Expected return of each asset **per period** (fractions); scaled by ``horizon``.
    confidence, horizon, method, **options
        As for :func:`xlmvar.risk.decompose`.

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
    costly = ~risky & ~free
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
        b = b / b.sum()
    tol = _positive(tol, "tol")
    max_iter = _count(max_iter, "max_iter")
    r = s / vols[:, None] / vols[None, :]
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


def _positive(value, name: str) -> float:
    v = _scalar(value, name, "a positive number")
    if v <= 0.0:
        raise ValueError(f"{name}: got {v:g}; expected a positive number")
    return v


def _count(value, name: str) -> int:
    v = _scalar(value, name, "a positive whole number")
    if v < 1 or v != round(v):
        raise ValueError(f"{name}: got {v:g}; expected a positive whole number")
    return int(v)


# ----------------------------------------------------------------------------------------
# correlation stress
# ----------------------------------------------------------------------------------------


def stress_corr(corr, theta) -> np.ndarray:
    """Correlations pushed toward 1: ``C_stressed = (1 - theta) C + theta J``.

    ``J`` is the all-ones matrix (every correlation 1), itself a valid (rank-one) correlation
    matrix, so the convex combination of two PSD unit-diagonal matrices is again a valid
    correlation matrix: no repair is needed.  Each off-diagonal entry moves a fraction
    ``theta`` of the way to 1: ``rho -> rho + theta (1 - rho)``.

    Parameters
    ----------
    corr : array_like, shape (n, n)
        Correlation matrix (validated: unit diagonal, symmetric, PSD).
    theta : float in [0, 1]
        0 leaves ``corr`` unchanged, 1 makes every correlation 1.  50 is refused (use 50%).

    Returns
    -------
    ndarray, shape (n, n)
    """
    c = check_correlation(corr)
    t = _unit_interval(theta, "theta")
    out = (1.0 - t) * c + t
    np.fill_diagonal(out, 1.0)
    return out


@dataclass(frozen=True)
class StressedRisk:
    """A decomposition under the given correlations and under stressed correlations.

    Attributes
    ----------
    base : Decomposition
        With ``corr``.
    stressed : Decomposition
        With ``stress_corr(corr, theta)``.
    """

    base: Decomposition
    stressed: Decomposition

    @property
    def increase(self) -> float:
        """``stressed.total - base.total``."""
        return self.stressed.total - self.base.total


_COV_METHODS = ("normal", "montecarlo")


def stressed_decomposition(positions, vols, corr, theta, confidence=0.95, horizon=1, measure="var", method="normal", **options) -> StressedRisk:
    """VaR decomposition with the correlations as given and pushed toward 1.

    ``cov = D C D`` and ``cov_stressed = D C_stressed D`` with ``D = diag(vols)`` and
    ``C_stressed = (1 - theta) C + theta J`` (:func:`stress_corr`); both go through
    :func:`xlmvar.risk.decompose`.  A long-only book's VaR can only rise; a book with
    hedges can lose VaR when correlations rise (the hedge works better).

    Parameters
    ----------
    positions : array_like, shape (n,)
    vols : array_like, shape (n,)
        Per-period volatilities.
    corr : array_like, shape (n, n)
        Correlation matrix.
    theta : float in [0, 1]
    confidence, horizon, measure
        As for :func:`xlmvar.risk.decompose`.
    method : {"normal", "montecarlo"}, default "normal"
        A method whose model is a covariance matrix.
    **options
        Passed to the method.

    Returns
    -------
    StressedRisk
        ``base``, ``stressed`` and the property ``increase``.
    """
    x = as_vector(positions, "positions")
    v = as_vector(vols, "vols", x.size)
    c = check_correlation(corr, x.size)
    name = risk.check_method(method)
    if name not in _COV_METHODS:
        raise ValueError(
            f"method: {name!r} works from a returns table; a correlation stress needs a "
            f"covariance model: one of {', '.join(_COV_METHODS)}"
        )
    stressed = stress_corr(c, theta)
    base = risk.decompose(x, cov_from_corr(v, c), measure, confidence, horizon, name, **options)
    after = risk.decompose(x, cov_from_corr(v, stressed), measure, confidence, horizon, name, **options)
    return StressedRisk(base, after)
