"""VaR limits: which positions carry more than their share of the risk, and the trade back.

Notation (as in :mod:`xlmvar.engine.parametric`): ``x`` positions (signed currency
exposures), ``S`` the per-period covariance, ``h`` the horizon in periods.  VaR is a positive
loss; shares (component VaR / VaR) are fractions that sum to 1.

:func:`var_limits` compares each position's component-VaR share with a limit and, for each
breach, finds the trade in that asset alone that brings its share back to the limit (any
method; closed form for normal, a bracketed root search otherwise).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import risk
from .parametric import _unit
from ._validation import (
    as_vector,
    check_covariance,
    check_fractions,
)

__all__ = ['VarLimits', 'var_limits']

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
    # on x / max|x|, the root scaled back (y is of degree 1 in x): c, a variance, neither
    # underflows (positions of 1e-160: "no risk in the rest") nor overflows
    x, size = _unit(x)
    if size == 0.0:
        return math.nan
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
    return inside[0] * size if inside else math.nan


def _limit_position_search(evaluate, xi: float, limit: float):
    """New position between 0 and ``x_i`` where asset i's share equals ``limit``.

    ``evaluate(y)`` returns ``(share_i, total)`` with asset ``i`` at ``y``; ``share(0) = 0 <
    limit < share(x_i)``.  A 16-step grid from ``x_i`` toward 0 finds the first interval
    where the share falls to the limit, a 32-step grid inside it the first such step (1/512
    of the position), and ``scipy.optimize.brentq`` refines it: the smallest trade, unless
    the share (not monotone for the historical kernel or Monte Carlo) dips to the limit and
    back within less than a 512th of the position.  If the share is not continuous there:

    * at a point where the VaR is 0 (a perfect hedge: the share is a pole) -> NaN;
    * otherwise (historical or Monte Carlo decompositions change scenario) the smallest
      trade found that brings the share to or below the limit, with a note.

    Returns ``(y, note)``: ``note`` is "" for an exact crossing, the note for a jump, or
    the reason when ``y`` is NaN.
    """
    f = lambda y: evaluate(y)[0] - limit  # noqa: E731
    hi, lo = xi, 0.0
    for steps in (16, 32):  # the first step where the share falls to the limit, then within it
        for y in hi + (lo - hi) * np.linspace(0.0, 1.0, steps + 1)[1:]:
            if f(y) <= 0.0:
                lo = y
                break
            hi = y
    xtol = 1e-13 * abs(xi)
    from scipy.optimize import brentq  # on first use: scipy.optimize costs ~half of import udfs

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
      on the share computed by :func:`xlmvar.engine.risk.decompose`.

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
        As for :func:`xlmvar.engine.risk.decompose`.

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
    lim = check_fractions(limit, "limit", x.size, low_open=True)
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
