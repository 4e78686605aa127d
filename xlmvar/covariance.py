"""Covariance models: building a covariance matrix and reading one back.

``cov = D C D`` with ``D = diag(vols)`` turns a vols + correlation model into a covariance.
"""

from __future__ import annotations

import numpy as np

from ._validation import as_vector, check_correlation, check_covariance

__all__ = ["cov_from_corr", "corr_from_cov"]


def cov_from_corr(vols, corr) -> np.ndarray:
    """Covariance from volatilities and a correlation matrix, ``cov_ij = vol_i corr_ij vol_j``.

    Parameters
    ----------
    vols : array_like, shape (n,)
        Per-period volatilities (standard deviations), non-negative.
    corr : array_like, shape (n, n)
        Correlation matrix: symmetric, unit diagonal, entries in [-1, 1], positive
        semi-definite.

    Returns
    -------
    ndarray, shape (n, n)
    """
    v = as_vector(vols, "vols")
    if np.any(v < 0):
        i = int(np.argmax(v < 0))
        raise ValueError(f"vols: item {i + 1} is {v[i]:g}; volatilities cannot be negative")
    c = check_correlation(corr, v.size)
    return v[:, None] * c * v[None, :]


def corr_from_cov(cov) -> np.ndarray:
    """Correlation matrix of a covariance, ``corr_ij = cov_ij / sqrt(cov_ii cov_jj)``.

    An asset with zero variance gets correlation 0 with the others and 1 with itself.
    """
    s = check_covariance(cov)
    vol = np.sqrt(np.diag(s))
    safe = np.where(vol > 0, vol, 1.0)
    c = s / safe[:, None] / safe[None, :]
    c[vol == 0, :] = 0.0
    c[:, vol == 0] = 0.0
    np.fill_diagonal(c, 1.0)
    return np.clip(c, -1.0, 1.0)
