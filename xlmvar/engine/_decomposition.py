"""The result every risk method returns: a measure and its Euler decomposition."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Decomposition", "percent_of_total"]


def percent_of_total(component: np.ndarray, total: float) -> np.ndarray:
    """Return ``component / total``; a zero-risk book has zero shares, not NaN."""
    if total == 0.0:
        return np.zeros_like(component)
    return component / total


@dataclass(frozen=True)
class Decomposition:
    """A risk measure of a book and its Euler decomposition.

    Attributes
    ----------
    total : float
        The portfolio figure (VaR or ES), a positive loss in the units of ``positions``.
    marginal : ndarray, shape (n,)
        d total / d position_i, per unit of currency.
    component : ndarray, shape (n,)
        ``positions * marginal``; sums to ``total`` (Euler's theorem for a measure that is
        homogeneous of degree one in the positions).
    """

    total: float
    marginal: np.ndarray
    component: np.ndarray

    @property
    def percent(self) -> np.ndarray:
        """Component shares of the total; they sum to 1 (all zero for a zero-risk book)."""
        return percent_of_total(self.component, self.total)
