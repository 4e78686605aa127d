"""Correlation stress: correlations pushed toward 1, and the decomposition before and after.

``stress_corr(C, theta) = (1 - theta) C + theta 1 1'`` stays a valid correlation matrix for
theta in [0, 1] (a convex combination of two).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import risk
from ._decomposition import Decomposition
from ._validation import (
    as_vector,
    check_correlation,
    check_unit_interval,
)
from .covariance import cov_from_corr

__all__ = ['stress_corr', 'StressedRisk', 'stressed_decomposition']

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
    t = check_unit_interval(theta, "theta")
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
    :func:`xlmvar.engine.risk.decompose`.  A long-only book's VaR can only rise; a book with
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
        As for :func:`xlmvar.engine.risk.decompose`.
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
