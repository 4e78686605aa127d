"""Delta-normal (parametric) VaR and expected shortfall and their Euler decomposition.

With positions ``x`` (signed currency exposures), a per-period covariance ``S``, an optional
per-period mean ``mu``, horizon ``h`` periods and ``z = Phi^-1(confidence)``::

    sigma_p   = sqrt(x' S x)
    VaR       = z sigma_p sqrt(h) - x' mu h
    ES        = phi(z) / (1 - confidence) sigma_p sqrt(h) - x' mu h
    marginal  = k (S x) / sigma_p sqrt(h) - mu h          (k = z for VaR, phi(z)/(1-c) for ES)
    component = x * marginal                              (sums to the total: Euler)
    standalone_i = k |x_i| sqrt(S_ii) sqrt(h) - x_i mu_i h

A book with ``sigma_p = 0`` (no positions, or a perfect hedge) has VaR ``-x' mu h`` and
marginal VaR ``-mu h``: the kink of ``sigma_p`` at zero is given the zero subgradient.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np

from ._decomposition import Decomposition
from ._threads import model_work, sized_blas
from ._validation import (
    as_vector,
    check_confidence,
    check_covariance,
    check_finite_result,
    check_horizon,
    check_mean,
    check_options,
    covariance_product,
    describe,
)

__all__ = ["normal_pdf", "normal_quantile", "tail_multiplier", "portfolio_sigma", "decompose", "standalone"]

MEASURES = ("var", "es")


def check_measure(measure: str) -> str:
    """Return the measure name in lower case: ``"var"`` or ``"es"``."""
    if measure is None:
        return "var"
    name = measure.strip().lower() if isinstance(measure, str) else None
    if name == "":
        return "var"
    if name not in MEASURES:
        got = repr(measure) if isinstance(measure, str) else describe(measure)
        raise ValueError(f"measure: got {got}; expected one of {', '.join(MEASURES)}")
    return name


def normal_pdf(z):
    """Standard-normal density ``phi(z) = exp(-z^2 / 2) / sqrt(2 pi)`` (element-wise).

    The closed form, so that the engine needs no ``scipy.stats`` (whose import costs more
    than numpy's): equal to ``scipy.stats.norm.pdf`` to the last bit on a grid of [-40, 40].
    """
    z = np.asarray(z, dtype=float)
    return np.exp(-0.5 * z * z) / _SQRT_2PI


_SQRT_2PI = math.sqrt(2.0 * math.pi)
_STANDARD_NORMAL = NormalDist()


def normal_quantile(p: float) -> float:
    """Standard-normal quantile ``Phi^-1(p)`` for ``0 < p < 1`` (Excel's NORM.S.INV).

    :meth:`statistics.NormalDist.inv_cdf` (Wichura's algorithm AS 241, accurate to about
    1e-16 relative), so that the engine imports no ``scipy.special``: it agrees with
    ``scipy.special.ndtri`` to within 1e-15 relative on a grid of (1e-10, 1 - 1e-10).
    """
    return _STANDARD_NORMAL.inv_cdf(float(p))


def normal_cdf(z: float) -> float:
    """Standard-normal distribution function ``Phi(z)`` (Excel's NORM.S.DIST(z, TRUE)).

    :meth:`statistics.NormalDist.cdf` (``erfc`` based, accurate in both tails), so that the
    engine imports no ``scipy.special``.
    """
    return _STANDARD_NORMAL.cdf(float(z))


def tail_multiplier(confidence: float = 0.95, measure: str = "var") -> float:
    """Standard-normal multiplier of sigma for VaR or ES.

    ``z = Phi^-1(confidence)`` for VaR; ``phi(z) / (1 - confidence)`` for ES.
    """
    c = check_confidence(confidence)
    z = normal_quantile(c)
    if check_measure(measure) == "var":
        return z
    return math.exp(-0.5 * z * z) / _SQRT_2PI / (1.0 - c)  # normal_pdf(z), on a float


def portfolio_sigma(positions, cov, horizon=1) -> float:
    """Standard deviation of the book's P&L over ``horizon`` periods, ``sqrt(x' S x) sqrt(h)``
    (per period by default).  A figure that overflows is refused, the horizon's factor
    included."""
    x = as_vector(positions, "positions")
    h = check_horizon(horizon)
    u, scale = _unit(x)  # as in decompose: x'Sx on x / max|x| cannot overflow
    _, su = covariance_product(cov, u)
    sigma = scale * math.sqrt(max(float(u @ su), 0.0)) * math.sqrt(h)
    check_finite_result("positions", "the standard deviation of these positions with this covariance", sigma)
    return sigma


def _unit(x: np.ndarray) -> tuple[np.ndarray, float]:
    """``(x / max|x|, max|x|)``; ``(x, 0)`` for a book of zeros."""
    scale = float(np.abs(x).max())
    return (x / scale if scale > 0 else x), scale


def _is_zero_risk(variance: float, x: np.ndarray, sd: np.ndarray) -> bool:
    # sigma_p is zero up to rounding relative to the undiversified scale of the book
    scale = float(np.abs(x) @ sd)
    return math.sqrt(max(variance, 0.0)) <= 1e-12 * scale  # no overflow in squaring


@sized_blas(model_work)
def decompose(positions, cov, measure="var", confidence=0.95, horizon=1, mean=None, **options) -> Decomposition:
    """Delta-normal VaR or ES of a book and its Euler decomposition.

    Parameters
    ----------
    positions : array_like, shape (n,)
        Signed exposures in currency (negative = short).
    cov : array_like, shape (n, n)
        Per-period covariance of the asset returns.
    measure : {"var", "es"}
    confidence : float in [0.5, 1), default 0.95
    horizon : int >= 1, default 1
        Periods; sigma scales by ``sqrt(horizon)``, the mean by ``horizon``.
    mean : array_like, shape (n,), optional
        Per-period expected returns; omitted means zero.
    **options
        None other: an option of another method (``draws``, ``smoothing``, ...) is refused
        with a message that names it.

    Returns
    -------
    Decomposition
        ``total`` (a positive loss), ``marginal`` (dTotal/dx) and ``component``.
    """
    check_options(options, "normal", ("mean",))
    x = as_vector(positions, "positions")
    # work on u = x / max|x| so that x'Sx neither underflows nor overflows; the marginal
    # figure k S u / sqrt(u'Su) is homogeneous of degree 0 in x, the total of degree 1.
    # S u comes with the validation: a what-if call (a cached matrix) is one pass over S
    u, scale = _unit(x)
    sd, su = covariance_product(cov, u)  # validated, with its volatilities
    h = check_horizon(horizon)
    mu = check_mean(mean, x.size)
    k = tail_multiplier(confidence, measure) * math.sqrt(h)
    variance = float(u @ su)
    if scale == 0 or _is_zero_risk(variance, u, sd):
        total, marginal = 0.0, np.zeros_like(x)
    else:
        sigma_u = math.sqrt(variance)
        total, marginal = k * scale * sigma_u, su * (k / sigma_u)
    if mu is not None:
        total -= float(x @ mu) * h
        marginal = marginal - mu * h
    return Decomposition(float(total) + 0.0, marginal, x * marginal + 0.0)  # no -0.0 component (a short leg of a hedge)


@sized_blas(model_work)
def standalone(positions, cov, measure="var", confidence=0.95, horizon=1, mean=None, **options) -> np.ndarray:
    """Each position's own VaR or ES, as if it were the whole book.

    ``k |x_i| sqrt(S_ii) sqrt(h) - x_i mu_i h``.
    """
    check_options(options, "normal", ("mean",))
    x = as_vector(positions, "positions")
    s = check_covariance(cov, x.size)
    h = check_horizon(horizon)
    mu = check_mean(mean, x.size)
    k = tail_multiplier(confidence, measure) * np.sqrt(h)
    out = k * np.abs(x) * np.sqrt(np.diag(s))
    if mu is not None:
        out = out - x * mu * h
    return out
