"""Cornish-Fisher ("modified") VaR and expected shortfall and their Euler decomposition.

Reproduces PerformanceAnalytics' ``VaR``/``ES(..., method="modified",
portfolio_method="component")`` (Boudt, Peterson & Croux 2008, "Estimation and decomposition
of downside risk for portfolios with non-normal returns", Journal of Risk 11(2), 79-103),
including its conventions:

* the mean is included (``location = x . mu``, ``mu`` the column means of ``returns``);
* the second moment divides by ``T - 1`` (``cov(R)``); the third and fourth by ``T``
  (``M3.MM``/``M4.MM``).  ``ddof=0`` divides the second by ``T`` too, which is what
  PerformanceAnalytics' *single-asset* figures (``centeredmoment``) use;
* the "operational" ES: when the Cornish-Fisher ES comes out below the Cornish-Fisher VaR
  (both as losses), ES = VaR and its decomposition is the VaR's.

With positions ``x``, returns ``R`` (T x n), ``c`` the column-centred returns and the centred
P&L ``p = c x``::

    m2 = p.p / (T - ddof),  m3 = mean(p^3),  m4 = mean(p^4)
    S  = m3 / m2^1.5,       K  = m4 / m2^2 - 3                    (skewness, excess kurtosis)
    z  = Phi^-1(a),         a  = 1 - confidence
    h  = z + (z^2 - 1) S / 6 + (z^3 - 3 z) K / 24 - (2 z^3 - 5 z) S^2 / 36
    E  = phi(h) [1 + h^3 S / 6 + (h^6 - 9 h^4 + 9 h^2 + 3) S^2 / 72
                 + (h^4 - 2 h^2 - 1) K / 24] / a
    VaR = (-x.mu - h sqrt(m2)) sqrt(H)
    ES  = (-x.mu + max(E, -h) sqrt(m2)) sqrt(H)        (max(): the operational floor)

where ``H`` is the horizon in periods: the one-period figures (mean included) follow the
square-root-of-time rule.

The decomposition is the exact gradient.  Writing the risk as
``-x.mu + F(m2, m3, m4)`` (``F = sqrt(m2) k(S, K)``, ``k = -h`` or ``E``), the chain rule
needs only the moment gradients, which come straight from the centred returns in O(T n)
without the n x n^2 and n x n^3 co-moment matrices::

    grad m2 = 2 c'p / (T - ddof),  grad m3 = 3 c'(p^2) / T,  grad m4 = 4 c'(p^3) / T
    marginal = (-mu + c'v) sqrt(H),
    v = 2 F_m2 p / (T - ddof) + 3 F_m3 p^2 / T + 4 F_m4 p^3 / T

and, as ``c'v = R'(v - mean(v))`` and ``mu = R'1 / T``, the marginal is one product
``(v - mean(v) - 1/T) @ R``: the whole decomposition costs two passes over the history
(``R x`` and that product).  ``F`` is homogeneous of degree one in ``x``, so the components
``x * marginal`` sum to the total (Euler).

A flat P&L (no positions, or a perfect hedge) has no skewness or kurtosis: VaR = ES =
``-x.mu sqrt(H)`` with marginal ``-mu sqrt(H)``, as in :mod:`xlmvar.engine.parametric`.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from ._decomposition import Decomposition
from ._threads import model_work, sized_blas
from .historical import (
    check_history,
    check_options,
    check_rows,
    flat_level,
    gross_exposure,
    is_flat,
    tail_probability,
)
from .parametric import normal_pdf, normal_quantile

__all__ = [
    "MIN_ROWS",
    "check_ddof",
    "cornish_fisher_quantile",
    "cornish_fisher_tail_mean",
    "pnl_moments",
    "decompose",
    "standalone",
]

#: Periods needed: the fourth moment carries information only from 4 observations on.
MIN_ROWS = 4

_OPTIONS = ("ddof", "operational")


def check_ddof(ddof) -> int:
    """Return the divisor offset of the second moment: 1 (``T - 1``, default) or 0 (``T``)."""
    if ddof is None:
        return 1
    if isinstance(ddof, bool) or not isinstance(ddof, numbers.Real) or ddof not in (0, 1):
        raise ValueError(
            f"ddof: got {ddof!r}; expected 1 (variance divided by T - 1, PerformanceAnalytics' "
            "portfolio figures) or 0 (divided by T, its single-asset figures)"
        )
    return int(ddof)


def _check_operational(operational) -> bool:
    if operational is None:
        return True
    if not isinstance(operational, (bool, np.bool_)):
        raise ValueError(f"operational: got {operational!r}; expected TRUE or FALSE")
    return bool(operational)


# --- the Cornish-Fisher expansion (element-wise in skew and exkurt) ---------------------------


def _quantile_and_partials(tail, skew, exkurt):
    """``h(S, K)`` and ``dh/dS``, ``dh/dK``."""
    z = normal_quantile(tail)
    a, b, c = (z * z - 1.0) / 6.0, (z**3 - 3.0 * z) / 24.0, (2.0 * z**3 - 5.0 * z) / 36.0
    h = z + a * skew + b * exkurt - c * skew * skew
    return h, a - 2.0 * c * skew, np.full_like(h, b)


def cornish_fisher_quantile(tail, skew, exkurt):
    """Cornish-Fisher quantile ``h`` of the standardised P&L at probability ``tail``.

    ``h = z + (z^2 - 1) S / 6 + (z^3 - 3 z) K / 24 - (2 z^3 - 5 z) S^2 / 36``,
    ``z = Phi^-1(tail)``; ``S`` skewness, ``K`` excess kurtosis.  Element-wise.
    """
    return _quantile_and_partials(tail, np.asarray(skew, float), np.asarray(exkurt, float))[0]


def _tail_mean_and_partials(tail, h, h_s, h_k, skew, exkurt):
    """``E(h(S, K), S, K)`` and ``dE/dS``, ``dE/dK`` (total derivatives through ``h``)."""
    h2 = h * h
    q6 = ((h2 - 9.0) * h2 + 9.0) * h2 + 3.0
    q4 = (h2 - 2.0) * h2 - 1.0
    poly = 1.0 + h2 * h * skew / 6.0 + q6 * skew * skew / 72.0 + q4 * exkurt / 24.0
    poly_h = (
        h2 * skew / 2.0
        + ((6.0 * h2 - 36.0) * h2 + 18.0) * h * skew * skew / 72.0
        + (4.0 * h2 - 4.0) * h * exkurt / 24.0
    )
    density = normal_pdf(h) / tail
    e_h = density * (poly_h - h * poly)
    e_s = e_h * h_s + density * (h2 * h / 6.0 + q6 * skew / 36.0)
    e_k = e_h * h_k + density * q4 / 24.0
    return density * poly, e_s, e_k


def cornish_fisher_tail_mean(tail, skew, exkurt):
    """Cornish-Fisher ES factor ``E``: the ES of the standardised P&L, as a positive loss.

    ``E = phi(h) [1 + h^3 S / 6 + (h^6 - 9 h^4 + 9 h^2 + 3) S^2 / 72 + (h^4 - 2 h^2 - 1) K / 24]
    / tail`` with ``h`` from :func:`cornish_fisher_quantile` (Boudt et al. 2008, eq. for
    modified ES; no operational floor here).  Element-wise.
    """
    skew, exkurt = np.asarray(skew, float), np.asarray(exkurt, float)
    h, h_s, h_k = _quantile_and_partials(tail, skew, exkurt)
    return _tail_mean_and_partials(tail, h, h_s, h_k, skew, exkurt)[0]


def _tail_factor(measure, tail, skew, exkurt, operational):
    """Risk per unit of standard deviation, ``k(S, K)``, and ``dk/dS``, ``dk/dK``.

    VaR: ``k = -h``.  ES: ``k = E``, or ``-h`` (the VaR's) where the operational floor binds.
    """
    h, h_s, h_k = _quantile_and_partials(tail, skew, exkurt)
    var = (-h, -h_s, -h_k)
    if measure == "var":
        return var
    es = _tail_mean_and_partials(tail, h, h_s, h_k, skew, exkurt)
    if not operational:
        return es
    floor = es[0] < var[0]
    return tuple(np.where(floor, v, e) for v, e in zip(var, es))


def _dispersion_risk(m2, m3, m4, measure, tail, operational):
    """``F = sqrt(m2) k(S, K)`` and its partial derivatives in ``m2``, ``m3``, ``m4``.

    Element-wise; ``m2`` must be positive.
    """
    sd = np.sqrt(m2)
    skew, kurt = m3 / (m2 * sd), m4 / (m2 * m2)
    k, k_s, k_k = _tail_factor(measure, tail, skew, kurt - 3.0, operational)
    f_m2 = (0.5 * k - 1.5 * k_s * skew - 2.0 * k_k * kurt) / sd
    return sd * k, (f_m2, k_s / m2, k_k / (m2 * sd))


def pnl_moments(pnl, ddof: int = 1):
    """Mean and central moments of a P&L sample (or of each column of a table).

    Returns ``(mean, m2, m3, m4)`` with ``m2 = sum(d^2) / (T - ddof)``, ``m3 = mean(d^3)``,
    ``m4 = mean(d^4)``, ``d`` the deviations from the mean (PerformanceAnalytics' divisors).
    """
    pnl = np.asarray(pnl, float)
    mean = pnl.mean(axis=0)
    d = pnl - mean
    d2 = d * d
    m2 = d2.sum(axis=0) / (pnl.shape[0] - ddof)
    return mean, m2, (d2 * d).mean(axis=0), (d2 * d2).mean(axis=0)


def _prepare(positions, returns, measure, confidence, horizon, ddof, operational, options):
    x, r, measure, confidence, h = check_history(positions, returns, measure, confidence, horizon, "cornish-fisher")
    ddof, operational = check_ddof(ddof), _check_operational(operational)
    check_options(options, "cornish-fisher", _OPTIONS)
    check_rows(r, MIN_ROWS, "the Cornish-Fisher expansion (third and fourth moments)")
    return x, r, measure, tail_probability(confidence), math.sqrt(h), ddof, operational


# --- public interface ------------------------------------------------------------------------


@sized_blas(model_work)
def decompose(
    positions,
    returns,
    measure="var",
    confidence=0.95,
    horizon=1,
    *,
    ddof=1,
    operational=True,
    **options,
) -> Decomposition:
    """Cornish-Fisher (modified) VaR or ES of a book and its Euler decomposition.

    ``VaR = (-x.mu - h sqrt(m2)) sqrt(H)``, ``ES = (-x.mu + max(E, -h) sqrt(m2)) sqrt(H)``
    (see the module notes), as in PerformanceAnalytics' component modified VaR/ES.

    Parameters
    ----------
    positions : array_like, shape (n,)
        Signed exposures in currency (negative = short).
    returns : array_like, shape (T, n)
        Per-period returns, rows = periods, columns = assets; at least 4 rows.  The mean is
        included.
    measure : {"var", "es"}
    confidence : float in (0, 1), default 0.95
    horizon : int >= 1, default 1
        Periods; the one-period figures are scaled by ``sqrt(horizon)``.
    ddof : {1, 0}, default 1
        Second moment divided by ``T - ddof`` (1: ``cov(R)``, PerformanceAnalytics' portfolio
        figures; 0: its single-asset figures).  Third and fourth moments divide by ``T``.
    operational : bool, default True
        Floor the ES at the VaR (PerformanceAnalytics' default ``operational=TRUE``).

    Returns
    -------
    Decomposition
        ``total`` (a positive loss), ``marginal`` (dTotal/dx, exact) and ``component``
        (``x * marginal``, summing to ``total``).
    """
    x, r, measure, tail, scale, ddof, operational = _prepare(
        positions, returns, measure, confidence, horizon, ddof, operational, options
    )
    size = r.shape[0]
    pnl = r @ x
    mean = pnl.mean()  # x . mu
    p = pnl - mean
    gross = gross_exposure(x, r)
    if is_flat(np.ptp(p), gross):
        risk, weights, mean = 0.0, np.zeros(size), flat_level(mean, gross)
    else:
        p2 = p * p
        m2, m3, m4 = p2.sum() / (size - ddof), (p2 * p).mean(), (p2 * p2).mean()
        risk, (f_m2, f_m3, f_m4) = _dispersion_risk(m2, m3, m4, measure, tail, operational)
        weights = (2.0 * f_m2 / (size - ddof)) * p + (p2 / size) * (3.0 * f_m3 + (4.0 * f_m4) * p)
    # marginal = -mu + c'v, and c'v = R'(v - mean(v)), so one pass over R gives it all
    weights += -1.0 / size - weights.mean()
    marginal = (weights @ r) * scale
    total = float((risk - mean) * scale) + 0.0
    return Decomposition(total, marginal, x * marginal + 0.0)


@sized_blas(model_work)
def standalone(
    positions,
    returns,
    measure="var",
    confidence=0.95,
    horizon=1,
    *,
    ddof=1,
    operational=True,
    **options,
) -> np.ndarray:
    """Each position's Cornish-Fisher VaR or ES held alone (its own column's moments).

    For position ``x_i``: ``-x_i mu_i + |x_i| sd_i k(sign(x_i) S_i, K_i)``, times
    ``sqrt(horizon)``; a short position flips the skewness.  With ``ddof=0`` a unit position
    reproduces PerformanceAnalytics' single-asset ``VaR(R, method="modified")``.
    """
    x, r, measure, tail, scale, ddof, operational = _prepare(
        positions, returns, measure, confidence, horizon, ddof, operational, options
    )
    mean, m2, m3, m4 = pnl_moments(r, ddof)
    location = x * mean
    m2, m3, m4 = x * x * m2, x**3 * m3, x**4 * m4
    spread = np.abs(x) * np.ptp(r, axis=0)
    flat = is_flat(spread, gross_exposure(x, r, per_asset=True)) | (m2 <= 0)
    # flat columns get stand-in moments (unit variance, normal) and no dispersion risk
    m2, m3, m4 = np.where(flat, 1.0, m2), np.where(flat, 0.0, m3), np.where(flat, 3.0, m4)
    risk = _dispersion_risk(m2, m3, m4, measure, tail, operational)[0]
    return (np.where(flat, 0.0, risk) - location) * scale + 0.0
