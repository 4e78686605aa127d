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

Domain.  ``h`` is a cubic in ``z``, and a cubic need not increase: with strong skewness or
kurtosis it folds, and ``h(z_a)`` is then no quantile at all - a strongly right-skewed P&L
gets a *negative* VaR although it loses money on most days.  With ``X = h(Z)`` the
distribution the expansion describes, ``h(z) - h(z_a) = (z - z_a) Q(z)`` for a quadratic
``Q``, and the ``z`` that ``h`` ranks on the wrong side of its own quantile are exactly those
with ``Q(z) < 0`` (:func:`cornish_fisher_misranked`, closed form).  The VaR and ES are
refused, naming the skewness and excess kurtosis, when that probability exceeds
``MAX_MISRANKED = 0.1`` times the tail probability ``a`` (at 95%: 0.005); below it the
expansion's quantile is within about 9% of the quantile of ``X`` (a random search over
``S``, ``K`` and the confidence; the gross failures are off by 50% and more).  Where ``h``
increases for every ``z`` (Maillard 2012; :func:`cornish_fisher_monotone`)::

    h'(z) = (K/8 - S^2/6) z^2 + (S/3) z + 1 - K/8 + 5 S^2/36 > 0 for all z
    <=>  K/8 > S^2/6  and  S^2/9 <= 4 (K/8 - S^2/6) (1 - K/8 + 5 S^2/36)

nothing is misranked at any confidence.  Outside that domain the expansion may still be a
quantile in the tail - fat tails (``K > 8``) fold the middle of ``h``, not its tail - which
is why the rule is the misranked probability at the confidence asked, not the domain.

With ``operational=False`` the raw ES is returned as Boudt et al. define it even where it
falls below the VaR (the Edgeworth density is then negative in the tail); the default floors
it at the VaR, so the default ES is never below the VaR.

A flat P&L (no positions, or a perfect hedge) has no skewness or kurtosis: VaR = ES =
``-x.mu sqrt(H)`` with marginal ``-mu sqrt(H)``, as in :mod:`xlmvar.engine.parametric`.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from ._decomposition import Decomposition
from ._threads import model_work, sized_blas, weighted_rows
from .historical import (
    check_history,
    check_options,
    check_rows,
    flat_level,
    is_flat,
    noise_floor,
    spread,
)
from .parametric import normal_cdf, normal_pdf, normal_quantile

__all__ = [
    "MIN_ROWS",
    "check_ddof",
    "cornish_fisher_quantile",
    "cornish_fisher_tail_mean",
    "cornish_fisher_monotone",
    "cornish_fisher_misranked",
    "MAX_MISRANKED",
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


# --- where the expansion is a quantile at all -------------------------------------------------

#: Largest share of the tail probability the expansion may put on the wrong side of its own
#: quantile (:func:`cornish_fisher_misranked`); beyond it the figures are refused.
MAX_MISRANKED = 0.10


def _derivative(skew, exkurt):
    """``(A, B, C)`` of ``h'(z) = A z^2 + B z + C``."""
    s2 = skew * skew
    return exkurt / 8.0 - s2 / 6.0, skew / 3.0, 1.0 - exkurt / 8.0 + 5.0 * s2 / 36.0


def cornish_fisher_monotone(skew, exkurt):
    """True where the expansion ``h(z)`` increases with ``z`` for every ``z`` (every confidence).

    Differentiating ``h`` (:func:`cornish_fisher_quantile`) in ``z``::

        h'(z) = A z^2 + B z + C,   A = K/8 - S^2/6,  B = S/3,  C = 1 - K/8 + 5 S^2/36

    a quadratic that is non-negative everywhere iff ``A > 0`` and ``B^2 <= 4 A C``, i.e.::

        K/8 > S^2/6   and   S^2/9 <= 4 (K/8 - S^2/6) (1 - K/8 + 5 S^2/36)

    (or ``S = K = 0``, the normal).  This is the domain of validity in the sense of Maillard
    (2012), "A user's guide to the Cornish Fisher expansion", SSRN 1997178, derived here from
    the polynomial above (the constant term ``+5 S^2/36`` comes from ``-(2 z^3 - 5 z) S^2/36``)
    and checked against a brute-force grid in the tests: at ``S = 0`` it is ``0 <= K <= 8``,
    and ``|S|`` can be at most about 2.49 (near ``K = 11.5``).  Element-wise.
    """
    a, b, c = _derivative(np.asarray(skew, float), np.asarray(exkurt, float))
    return ((a > 0.0) & (b * b <= 4.0 * a * c)) | ((a == 0.0) & (b == 0.0) & (c > 0.0))


def cornish_fisher_misranked(tail, skew, exkurt):
    """Probability the expansion puts on the wrong side of its own ``tail`` quantile.

    The expansion is the random variable ``X = h(Z)``, ``Z`` standard normal.  Its VaR
    quantile ``h(z_a)`` (``z_a = Phi^-1(tail)``) is the ``tail`` quantile of ``X`` when
    ``h(z) < h(z_a)`` exactly for ``z < z_a``.  Dividing the cubic by ``z - z_a``::

        h(z) - h(z_a) = (z - z_a) Q(z),   Q(z) = q2 z^2 + q1 z + q0,
        q2 = K/24 - S^2/18,  q1 = S/6 + q2 z_a,  q0 = 1 - K/8 + 5 S^2/36 + q1 z_a

    so ``z`` is ranked on the wrong side exactly where ``Q(z) < 0``, and the result is the
    standard normal probability of that set (0 to 1; closed form from the roots of ``Q``).
    It is 0 at every ``tail`` inside :func:`cornish_fisher_monotone`'s domain; outside it the
    expansion can still be a quantile far enough in the tail (fat tails, ``K > 8``, fold
    the middle of ``h``, not its tail), and the figures are refused only where this
    probability exceeds :data:`MAX_MISRANKED` times ``tail``.  Element-wise.
    """
    z = normal_quantile(tail)
    skew, exkurt = np.broadcast_arrays(np.asarray(skew, float), np.asarray(exkurt, float))
    q2 = exkurt / 24.0 - skew * skew / 18.0
    q1 = skew / 6.0 + q2 * z
    q0 = _derivative(skew, exkurt)[2] + q1 * z
    out = np.vectorize(_negative_mass, otypes=[float])(q2, q1, q0)
    return out if out.ndim else float(out)


def _negative_mass(q2: float, q1: float, q0: float) -> float:
    """Standard normal probability of ``{z : q2 z^2 + q1 z + q0 < 0}``."""
    if q2 == 0.0:
        if q1 == 0.0:
            return 1.0 if q0 < 0.0 else 0.0
        root = -q0 / q1
        return float(normal_cdf(root) if q1 > 0.0 else normal_cdf(-root))
    disc = q1 * q1 - 4.0 * q2 * q0
    if disc <= 0.0:
        return 0.0 if q2 > 0.0 else 1.0
    t = -0.5 * (q1 + math.copysign(math.sqrt(disc), q1))  # the roots without cancellation
    low, high = sorted((t / q2, q0 / t))
    if q2 > 0.0:
        return float(normal_cdf(high) - normal_cdf(low))
    return float(normal_cdf(low) + normal_cdf(-high))


def _check_expansion(tail, skew, exkurt, per_position: bool) -> None:
    """Refuse moments at which the expansion's VaR is not a quantile (see the module notes)."""
    misranked = np.atleast_1d(cornish_fisher_misranked(tail, skew, exkurt))
    bad = misranked > MAX_MISRANKED * tail
    if not bad.any():
        return
    i = int(np.argmax(bad))
    s, k = float(np.atleast_1d(skew)[i]), float(np.atleast_1d(exkurt)[i])
    whose = f"position {i + 1} held alone" if per_position else "these positions"
    raise ValueError(
        f"returns: the P&L of {whose} has skewness {s:.3g} and excess kurtosis {k:.3g}, where "
        f"the Cornish-Fisher expansion is not monotone: at {1.0 - tail:.10g} confidence it puts "
        f"a probability of {misranked[i]:.3g} on the wrong side of its own {tail:.10g} quantile "
        f"(at most {MAX_MISRANKED * tail:.3g}, {MAX_MISRANKED:g} of the tail, is accepted), so its VaR is "
        "no quantile and can even be negative. The expansion h(z) must increase with z: "
        "h'(z) = (K/8 - S^2/6) z^2 + S z/3 + 1 - K/8 + 5 S^2/36 > 0 (at every confidence iff "
        "K/8 > S^2/6 and S^2/9 <= 4 (K/8 - S^2/6)(1 - K/8 + 5 S^2/36)); use method "
        '"historical" with enough history, or "normal"'
    )


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


def _dispersion_risk(m2, m3, m4, measure, tail, operational, per_position=False):
    """``F = sqrt(m2) k(S, K)`` and its partial derivatives in ``m2``, ``m3``, ``m4``.

    Element-wise; ``m2`` must be positive.  Refuses moments outside the expansion's domain
    (:func:`_check_expansion`).
    """
    sd = np.sqrt(m2)
    skew, kurt = m3 / (m2 * sd), m4 / (m2 * m2)
    _check_expansion(tail, skew, kurt - 3.0, per_position)
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
    x, r, pnl, measure, confidence, h = check_history(positions, returns, measure, confidence, horizon, "cornish-fisher")
    ddof, operational = check_ddof(ddof), _check_operational(operational)
    check_options(options, "cornish-fisher", _OPTIONS)
    check_rows(r, MIN_ROWS, "the Cornish-Fisher expansion (third and fourth moments)")
    # 1 - confidence as it is, as R's PerformanceAnalytics has it (qnorm(1 - p)): the
    # expansion is continuous in it, and the 15 decimals tail_probability keeps for the
    # history quantiles' discontinuous rules would move z at a confidence past 1 - 1e-13
    return x, r, pnl, measure, 1.0 - confidence, math.sqrt(h), ddof, operational


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
    confidence : float in [0.5, 1), default 0.95
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
    x, r, pnl, measure, tail, scale, ddof, operational = _prepare(
        positions, returns, measure, confidence, horizon, ddof, operational, options
    )
    size = r.shape[0]
    # the figure is homogeneous of degree 1 in the book (the marginal of degree 0): computed
    # for the P&L scaled to at most 1, whose moments neither underflow nor overflow, and
    # scaled back (c = 1 for a book of zeros, or a P&L that overflowed: refused later)
    c = float(np.abs(pnl).max())
    c = c if 0.0 < c < np.inf else 1.0
    pnl, x_unit = pnl / c, x / c
    mean = pnl.mean()  # x . mu
    p = pnl - mean
    floor = noise_floor(x_unit, r, pnl)
    if is_flat(spread(p), floor):
        risk, weights, mean = 0.0, np.zeros(size), flat_level(mean, floor)
    else:
        p2 = p * p
        m2, m3, m4 = p2.sum() / (size - ddof), (p2 * p).mean(), (p2 * p2).mean()
        risk, (f_m2, f_m3, f_m4) = _dispersion_risk(m2, m3, m4, measure, tail, operational)
        weights = (2.0 * f_m2 / (size - ddof)) * p + (p2 / size) * (3.0 * f_m3 + (4.0 * f_m4) * p)
    # marginal = -mu + c'v, and c'v = R'(v - mean(v)), so one pass over R gives it all
    weights += -1.0 / size - weights.mean()
    marginal = weighted_rows(weights, r) * scale
    total = float((risk - mean) * c * scale) + 0.0
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

    The figure is homogeneous of degree 1 in ``x_i`` and in the column's returns, so the
    moments are those of each column divided by its largest ``|r_ti|`` (``s_i``) and of a
    unit position ``sign(x_i)``, then scaled by ``|x_i| s_i``: moments of ``x_i r_ti``
    would underflow to 0 for a small position or small returns (``1e-160``: ``m2`` is then
    0 and the column looked flat, a silent 0 dispersion risk) or overflow for large ones.
    """
    x, r, _, measure, tail, scale, ddof, operational = _prepare(
        positions, returns, measure, confidence, horizon, ddof, operational, options
    )
    size = np.abs(r).max(axis=0)
    unit = r / np.where(size > 0.0, size, 1.0)
    mean, m2, m3, m4 = pnl_moments(unit, ddof)
    flat = is_flat(spread(unit, axis=0), noise_floor(np.ones_like(x), unit, per_asset=True)) | (m2 <= 0) | (x == 0)
    # flat columns get stand-in moments (unit variance, normal) and no dispersion risk
    m2, m3, m4 = np.where(flat, 1.0, m2), np.where(flat, 0.0, np.sign(x) * m3), np.where(flat, 3.0, m4)
    risk = _dispersion_risk(m2, m3, m4, measure, tail, operational, per_position=True)[0]
    with np.errstate(over="ignore", invalid="ignore"):  # an overflow is refused by the caller
        return (np.abs(x) * size * np.where(flat, 0.0, risk) - x * size * mean) * scale + 0.0
