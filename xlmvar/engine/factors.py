"""Linear factor models: loadings by least squares, the implied covariance, VaR by factor.

Asset returns ``r_t`` (``n`` assets) on factor returns ``f_t`` (``k`` factors), ``T`` periods::

    r_t = a + B f_t + e_t,    Cov(r) = B F B' + D,    D = diag(specific variances)

Estimation (:func:`factor_loadings`): ordinary least squares of each asset's returns on a
constant and the factors (the same design for every asset, solved at once); the specific
variance is the residual variance with divisor ``T - k - 1`` (unbiased), and
``R^2 = 1 - SSR / SST`` with ``SST`` about the asset's mean.

Decomposition (:func:`factor_var`, delta-normal, zero mean): with positions ``x``, exposures
``e = B' x`` (currency per unit of each factor's return) and ``z`` the normal multiplier
(``Phi^-1(c)`` for VaR, ``phi(z) / (1 - c)`` for ES)::

    sigma^2      = e' F e + x' D x            (= x' (B F B' + D) x)
    Risk         = z sigma sqrt(h)
    marginal_j   = dRisk/de_j = z (F e)_j / sigma sqrt(h)
    component_j  = e_j marginal_j             (one per factor)
    specific     = z (x' D x) / sigma sqrt(h)
    sum_j component_j + specific = Risk       (Euler: Risk is homogeneous of degree 1 in
                                               (e, x) with the specific part x' D x)
"""

from __future__ import annotations

import math

from dataclasses import dataclass

import numpy as np

from ._validation import (
    as_matrix,
    as_vector,
    check_covariance,
    check_horizon,
    check_returns,
    check_finite_result,
)
from ._threads import blas_threads
from .parametric import _unit, check_measure, tail_multiplier

__all__ = ["FactorFit", "factor_loadings", "factor_cov", "FactorRisk", "factor_var"]


@dataclass(frozen=True)
class FactorFit:
    """Least-squares fit of each asset on the factors.

    Attributes
    ----------
    loadings : ndarray, shape (n, k)
        Betas, one row per asset.
    intercept : ndarray, shape (n,)
    specific_var : ndarray, shape (n,)
        Residual variance per period, divisor ``T - k - 1``.
    r_squared : ndarray, shape (n,)
        ``1 - SSR / SST``; 0 for an asset whose returns are constant.
    """

    loadings: np.ndarray
    intercept: np.ndarray
    specific_var: np.ndarray
    r_squared: np.ndarray


def factor_loadings(returns, factor_returns) -> FactorFit:
    """Betas, intercepts, specific variances and R^2 of each asset on the factors.

    Parameters
    ----------
    returns : array_like, shape (T, n)
        Asset returns, rows = periods.
    factor_returns : array_like, shape (T, k)
        Factor returns over the same periods.

    Raises
    ------
    ValueError
        Different numbers of rows, fewer than ``k + 2`` periods, or factors that are
        collinear (with each other or the constant), so that the betas are not unique.
    """
    r = check_returns(returns, name="returns", min_rows=1)
    f = check_returns(factor_returns, name="factor_returns", min_rows=1)
    t, k = f.shape
    if r.shape[0] != t:
        raise ValueError(
            f"factor_returns: has {t} rows but returns has {r.shape[0]}; expected the same periods "
            "(one row each) in both"
        )
    if t < k + 2:
        raise ValueError(
            f"returns: has {t} rows; {k} factor(s) and an intercept need at least {k + 2} periods"
        )
    design = np.column_stack([np.ones(t), f])
    with blas_threads(2.0 * t * (k + 1.0) * (k + 1.0 + r.shape[1])):
        coef, _, rank, _ = np.linalg.lstsq(design, r, rcond=None)
    if rank < k + 1:
        raise ValueError(
            "factor_returns: the factors are collinear (with each other or with a constant), so the "
            "betas are not unique; drop a factor or a constant column"
        )
    # an asset whose returns are all equal (a cash column) is fitted exactly by its intercept:
    # no factor exposure, no specific variance (least squares leaves rounding noise there)
    constant = (r == r[:1]).all(axis=0)
    coef[1:, constant] = 0.0
    coef[0, constant] = r[0, constant]
    resid = r - design @ coef
    resid[:, constant] = 0.0
    ssr = np.einsum("ti,ti->i", resid, resid)
    centred = r - r.mean(axis=0)
    sst = np.einsum("ti,ti->i", centred, centred)
    # a total sum of squares within rounding of 0 (T eps max|r|, squared) is 0: R^2 is then 0,
    # not the ratio of two rounding noises (-24, or 0.8, for a constant column)
    floor = (t * np.finfo(float).eps * np.abs(r).max(axis=0)) ** 2
    varies = (sst > floor) & ~constant
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = np.where(varies, 1.0 - ssr / np.where(varies, sst, 1.0), 0.0)
    return FactorFit(coef[1:].T.copy(), coef[0].copy(), ssr / (t - k - 1), r2)


def _check_model(loadings, factor_cov, specific_var):
    b = as_matrix(loadings, "loadings")
    n, k = b.shape
    f = check_covariance(factor_cov, name="factor_cov")
    if f.shape[0] != k:
        raise ValueError(
            f"factor_cov: is {f.shape[0]} x {f.shape[1]} but loadings has {k} column(s), one per factor; "
            "expected one row and one column per factor"
        )
    d = as_vector(specific_var, "specific_var")
    if d.size != n:
        raise ValueError(
            f"specific_var: has {d.size} values but loadings has {n} rows (assets); expected one "
            "specific variance per asset"
        )
    if np.any(d < 0.0):
        i = int(np.argmax(d < 0.0))
        raise ValueError(f"specific_var: item {i + 1} is {d[i]:g}; variances cannot be negative")
    return b, f, d


def factor_cov(loadings, factor_cov, specific_var) -> np.ndarray:
    """Asset covariance implied by the factor model: ``B F B' + diag(D)``.

    Parameters
    ----------
    loadings : array_like, shape (n, k)
    factor_cov : array_like, shape (k, k)
        Covariance of the factor returns per period.
    specific_var : array_like, shape (n,)
        Specific (residual) variance of each asset per period.
    """
    b, f, d = _check_model(loadings, factor_cov, specific_var)
    with blas_threads(2.0 * b.shape[1] * b.shape[0] ** 2):
        cov = b @ f @ b.T
    cov = (cov + cov.T) / 2.0
    cov[np.diag_indices_from(cov)] += d
    return cov


@dataclass(frozen=True)
class FactorRisk:
    """VaR or ES split by factor.

    Attributes
    ----------
    total : float
    exposures : ndarray, shape (k,)
        ``B' x``: the book's currency exposure to each factor.
    marginal : ndarray, shape (k,)
        ``dRisk / d exposure_j``.
    component : ndarray, shape (k,)
        ``exposure_j marginal_j``.
    specific : float
        Component of the specific (idiosyncratic) risk.
    """

    total: float
    exposures: np.ndarray
    marginal: np.ndarray
    component: np.ndarray
    specific: float

    @property
    def percent(self) -> np.ndarray:
        """Shares of the total: one per factor, then the specific share (sum 1)."""
        parts = np.append(self.component, self.specific)
        return parts / self.total if self.total != 0.0 else np.zeros_like(parts)


def factor_var(positions, loadings, factor_cov, specific_var, confidence=0.95, horizon=1, measure="var") -> FactorRisk:
    """Delta-normal VaR (or ES) of a book under a factor model, one Euler component per factor.

    See the module notes for the formulas.  A book with zero risk has every figure 0.

    Parameters
    ----------
    positions : array_like, shape (n,)
        Signed exposures in currency, one per row of ``loadings``.
    loadings, factor_cov, specific_var
        The factor model (see :func:`factor_cov`).
    confidence : float in (0, 1), default 0.95
    horizon : int >= 1, default 1
    measure : {"var", "es"}
    """
    b, f, d = _check_model(loadings, factor_cov, specific_var)
    x = as_vector(positions, "positions")
    if x.size != b.shape[0]:
        raise ValueError(
            f"positions: has {x.size} values but loadings has {b.shape[0]} rows; expected one "
            "position per asset (row of loadings)"
        )
    m = tail_multiplier(confidence, check_measure(measure)) * np.sqrt(check_horizon(horizon))
    e = b.T @ x
    # the variance is formed on u = x / max|x| (as the parametric module does), so that it
    # neither underflows (positions of 1e-170: a VaR of 0) nor overflows; sigma is then
    # scaled back, the marginal figures are of degree 0 in x
    u, size = _unit(x)
    eu = b.T @ u
    fe = f @ eu
    systematic, specific = max(float(eu @ fe), 0.0), float(u @ (d * u))
    sigma_u = math.sqrt(systematic + specific)
    check_finite_result("positions", "the factor VaR of these positions", sigma_u * size)
    scale = float(np.abs(u) @ np.sqrt(np.einsum("ij,ij->i", b @ f, b) + d))  # diag(B F B'), 2 n k^2
    if size == 0.0 or sigma_u <= 1e-12 * scale:
        zero = np.zeros_like(e)
        return FactorRisk(0.0, e + 0.0, zero, zero, 0.0)
    marginal = m * fe / sigma_u
    total = m * sigma_u * size
    check_finite_result("positions", "the factor VaR of these positions", total, e * marginal)
    return FactorRisk(float(total), e + 0.0, marginal + 0.0, e * marginal + 0.0, float(m * specific / sigma_u * size))
