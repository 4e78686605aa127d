"""Hedges and additions: what a trade in one asset does to the book's VaR.

:func:`best_hedge` is Litterman's (1996) best hedge: for each asset the trade in it alone
that minimises VaR, ``-(S x)_i / S_ii``.  :func:`marginal_var_new_asset` is the marginal VaR
of an asset the book does not hold yet, from its covariances with the book (normal).
The incremental VaR/ES of a multi-asset trade is :func:`xlmvar.engine.risk.incremental_var`.

References
----------
Litterman, R. (1996). Hot Spots and Hedges. Goldman Sachs Risk Management Series.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import parametric
from ._validation import (
    as_vector,
    check_covariance,
    check_finite_result,
    check_horizon,
    check_number,
)

__all__ = ['marginal_var_new_asset', 'BestHedge', 'best_hedge']

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
    ``sigma_p`` at its kink, as in :mod:`xlmvar.engine.parametric`).

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
    v = check_number(var_new, "var_new", "the new asset's variance per period (>= 0)")
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
    # of degree 0 in x: formed on u = x / max|x|, so that x' S x neither underflows (positions
    # of 1e-170 gave 0) nor overflows (1e155)
    u, size = parametric._unit(x)
    variance = float(u @ s @ u)
    if size == 0.0 or parametric._is_zero_risk(variance, u, np.sqrt(np.diag(s))):
        return 0.0
    return float(k * (c @ u) / math.sqrt(variance))


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
    # the variances are formed on the books divided by max|x| (as the parametric module
    # does), so that they neither underflow (positions of 1e-170: a VaR of 0, a 100%
    # reduction) nor overflow; the VaRs are scaled back
    size = float(np.abs(x).max())
    units = books / size if size > 0.0 else books
    variance = np.einsum("ij,jk,ik->i", units, s, units)
    scale = np.abs(units) @ np.sqrt(diag)
    zero = variance <= (1e-12 * scale) ** 2  # the zero-risk rule of xlmvar.engine.parametric
    with np.errstate(over="ignore"):  # refused below
        var_after = np.where(zero, 0.0, k * np.sqrt(np.clip(variance, 0.0, None)) * size)
    var_after = np.where(live, np.minimum(var_after, total), total)  # rounding never adds risk
    reduction = (1.0 - var_after / total) if total > 0.0 else np.zeros(x.size)
    check_finite_result("positions", "the best hedge of these positions with this covariance", after, var_after, reduction)
    return BestHedge(float(total), trade + 0.0, after + 0.0, var_after, reduction + 0.0)  # no -0.0 in a cell
