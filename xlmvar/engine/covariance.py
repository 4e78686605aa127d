"""Covariance models: estimating a covariance from history, and building or repairing one.

Conventions
-----------
* A returns table has rows = periods (oldest first) and columns = assets; a prices table the
  same with rows = dates.
* Every estimator returns a **per-period** covariance (daily returns give a daily covariance).
* ``cov = D C D`` with ``D = diag(vols)`` turns a vols + correlation model into a covariance.

Estimators (``T`` periods, ``N`` assets, ``r_t`` the return vector of period ``t``)::

    sample       S  = sum_t (r_t - rbar)(r_t - rbar)' / (T - ddof)
    ewma         S  = sum_t w_t r_t r_t',  w_t = lam^(T-1-t) / sum_s lam^(T-1-s)   (zero mean)
    ledoit-wolf  S* = (1 - delta) S_T + delta mu I   (S_T centred, divided by T)

The nearest-correlation repair is Higham's (2002) alternating projections with Dykstra's
correction.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from ._cache import memoize
from ._threads import blas_threads, gram_work, serial_cholesky, serial_eigen, sized_blas
from ._validation import (
    as_vector,
    check_correlation,
    check_covariance,
    check_finite_result,
    check_returns,
)
from ._validation import as_real
from ._validation import describe as _describe

__all__ = [
    "cov_from_corr",
    "corr_from_cov",
    "returns_from_prices",
    "sample_cov",
    "ewma_cov",
    "ledoit_wolf_shrinkage",
    "ledoit_wolf_cov",
    "covariance",
    "correlation",
    "nearest_corr",
    "COV_METHODS",
    "check_cov_method",
    "check_lam",
]

#: Canonical covariance estimator names.
COV_METHODS = ("sample", "ewma", "ledoit-wolf")

_COV_ALIASES = {
    "historical": "sample",
    "simple": "sample",
    "equal-weight": "sample",
    "equally-weighted": "sample",
    "riskmetrics": "ewma",
    "exponential": "ewma",
    "ewm": "ewma",
    "lw": "ledoit-wolf",
    "ledoitwolf": "ledoit-wolf",
    "shrinkage": "ledoit-wolf",
}

_RETURN_METHODS = {
    "simple": "simple",
    "arithmetic": "simple",
    "discrete": "simple",
    "log": "log",
    "logarithmic": "log",
    "continuous": "log",
    "ln": "log",
}

_MISSING_POLICIES = ("error", "drop")


# --------------------------------------------------------------------------- building


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
    c = check_correlation(corr, v.size, sized_by=f"vols has {v.size} value{'s' if v.size != 1 else ''}")
    with np.errstate(over="ignore"):  # an overflow is reported just below, in words
        cov = v[:, None] * c * v[None, :]
    check_finite_result("vols", "the covariance vol_i corr_ij vol_j", cov)
    return cov


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


# --------------------------------------------------------------------------- small checks


def _choice(value, name: str, table: dict[str, str], default: str, hint: str = "") -> str:
    """Map a case-insensitive option (``_`` and spaces read as ``-``) to its canonical name.

    Blank (``None`` or an empty string) means ``default``; anything else unknown is an error
    that names the argument and lists the canonical names.
    """
    valid = ", ".join(dict.fromkeys(table.values())) + hint
    if value is None:
        return default
    if not isinstance(value, str):
        raise ValueError(f"{name}: got {_describe(value)}; expected one of {valid}")
    key = "-".join(value.strip().lower().replace("_", "-").split())
    if key == "":
        return default
    if key not in table:
        raise ValueError(f"{name}: unknown value {value!r}; expected one of {valid}")
    return table[key]


def check_cov_method(method, name: str = "method") -> str:
    """Return the canonical estimator name (``"sample"``, ``"ewma"`` or ``"ledoit-wolf"``).

    Aliases: ``"riskmetrics"``/``"exponential"`` for EWMA, ``"lw"``/``"shrinkage"`` for
    Ledoit-Wolf, ``"historical"`` for sample.  Blank means ``"sample"``.  An unknown name is
    an error that names ``name`` and lists the valid ones.
    """
    table = {m: m for m in COV_METHODS}
    table.update(_COV_ALIASES)
    return _choice(method, name, table, "sample", " (aliases: riskmetrics = ewma, lw = ledoit-wolf)")


def check_lam(lam, name: str = "lam") -> float:
    """Return the EWMA decay factor ``lam`` as a float strictly between 0 and 1 (blank: 0.94).

    A number from 50 to 100 is refused as a percentage typed without its sign (94 for
    0.94); any other number outside (0, 1) as out of range.  Errors name ``name``.
    """
    if lam is None:
        return 0.94
    if isinstance(lam, bool) or not isinstance(lam, numbers.Real):
        raise ValueError(f"{name}: got {_describe(lam)}; expected a decay factor between 0 and 1 such as 0.94")
    value = as_real(lam)
    if not math.isfinite(value):
        raise ValueError(f"{name}: got {_describe(lam)}; expected a decay factor between 0 and 1 such as 0.94")
    if 50.0 <= value < 100.0:  # a decay factor of 0.5 to 0.99 typed as a percentage
        raise ValueError(f"{name}: got {value:g}, which looks like a percentage; use {value / 100:g}")
    if not 0.0 < value < 1.0:
        raise ValueError(f"{name}: got {value:g}; expected a decay factor strictly between 0 and 1 such as 0.94")
    return value


def _check_whole(value, name: str, minimum: int, example: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name}: got {_describe(value)}; expected a whole number such as {example}")
    v = as_real(value)
    if not math.isfinite(v) or v != round(v) or v < minimum:
        raise ValueError(f"{name}: got {_describe(value if math.isinf(v) else v)}; expected a whole number >= {minimum} such as {example}")
    return int(round(v))


# --------------------------------------------------------------------------- prices -> returns


def _cell_status(arr: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split a 2-D price table into values, a "missing" mask and a "not a number" mask.

    Missing: ``None``, NaN (an Excel error cell arrives as NaN) or a blank string.
    Not a number: text, booleans, infinities and anything else that is not a real number.
    """
    if arr.dtype.kind in "fiu":
        values = arr.astype(float)
        missing = np.isnan(values)
        bad = np.isinf(values)
        return np.where(missing | bad, np.nan, values), missing, bad

    def status(item):
        if item is None or (isinstance(item, str) and item.strip() == ""):
            return 1
        if isinstance(item, numbers.Real) and not isinstance(item, bool):
            v = as_real(item)
            if math.isnan(v):
                return 1
            return 0 if math.isfinite(v) else 2
        return 2

    codes = np.frompyfunc(status, 1, 1)(arr).astype(int)
    values = np.full(arr.shape, np.nan)
    ok = codes == 0
    values[ok] = arr[ok].astype(float)
    return values, codes == 1, codes == 2


def returns_from_prices(prices, method="simple", missing="error") -> np.ndarray:
    """Per-period returns from a table of prices.

    Parameters
    ----------
    prices : array_like, shape (T, n)
        Rows = dates, **oldest first**; columns = assets.  A single column is one asset.
    method : {"simple", "log"}, default "simple"
        ``"simple"``: ``r_t = p_t / p_{t-1} - 1``; ``"log"``: ``r_t = ln(p_t / p_{t-1})``.
    missing : {"error", "drop"}, default "error"
        What a gap (a blank cell, or NaN / an Excel error value) does.  ``"error"`` names the
        first gap by sheet-style row and column (1-based).  ``"drop"`` removes every price row
        that has a gap *before* returns are formed, so a return then spans the dates on
        either side of the gap.  Text or other non-numbers are an error under either policy.

    Returns
    -------
    ndarray, shape (T' - 1, n)
        ``T'`` is the number of rows kept.

    Raises
    ------
    ValueError
        For a gap (policy ``"error"``), a non-number, a price that is zero or negative (a
        return from it is undefined), or fewer than two usable rows.
    """
    how = _choice(method, "method", _RETURN_METHODS, "simple")
    policy = _choice(missing, "missing", {p: p for p in _MISSING_POLICIES}, "error")
    arr = prices if isinstance(prices, np.ndarray) else np.asarray(prices, dtype=object)
    if arr.ndim == 0:
        raise ValueError("prices: got a single value; expected a table of prices with at least 2 rows")
    if arr.ndim == 1:
        arr = arr.reshape(-1, 1)
    elif arr.ndim != 2:
        raise ValueError(f"prices: expected a table, got a {arr.ndim}-dimensional array")
    if arr.size == 0:
        raise ValueError("prices: is empty; expected a table of prices (rows = dates, oldest first)")

    values, gap, bad = _cell_status(arr)
    if bad.any():
        i, j = (int(k) for k in np.argwhere(bad)[0])
        raise ValueError(
            f"prices: row {i + 1}, column {j + 1} holds {_describe(arr[i, j])}; expected a price "
            "(a positive number)"
        )
    nonpositive = ~gap & (np.nan_to_num(values, nan=1.0) <= 0.0)
    if nonpositive.any():
        i, j = (int(k) for k in np.argwhere(nonpositive)[0])
        raise ValueError(
            f"prices: row {i + 1}, column {j + 1} is {values[i, j]:g}; prices must be positive "
            "(a return from a zero or negative price is undefined)"
        )
    if gap.any():
        if policy == "error":
            i, j = (int(k) for k in np.argwhere(gap)[0])
            raise ValueError(
                f"prices: row {i + 1}, column {j + 1} holds {_describe(arr[i, j])}; expected a "
                'price. Fill the gap, or use missing="drop" to skip rows with a gap'
            )
        keep = ~gap.any(axis=1)
        values = values[keep]
        if values.shape[0] < 2:
            raise ValueError(
                f"prices: only {values.shape[0]} row(s) have every price filled in; at least 2 "
                "complete rows are needed to form a return"
            )
    if values.shape[0] < 2:
        raise ValueError(
            f"prices: has {values.shape[0]} row; at least 2 dates are needed to form a return"
        )
    _refuse_date_column(values)
    out = np.diff(np.log(values), axis=0) if how == "log" else values[1:] / values[:-1] - 1.0
    check_finite_result("prices", "a return from one price to the next", out)
    return out


#: Excel serial numbers of 1950-01-01 and 2099-12-31: the dates a price history carries.
_DATE_SERIALS = (18_264, 73_050)

#: Fewest rows before a column is judged to be dates rather than prices.
_DATE_ROWS = 10


def _refuse_date_column(values: np.ndarray) -> None:
    """Refuse a column of Excel dates among the prices, and say if it runs newest first.

    A column is taken for dates when it has at least 10 rows of whole numbers between the
    serials of 1950-01-01 and 2099-12-31 that move in one direction by 1 to 31 each row (daily,
    weekly or monthly dates).  A price that moves by whole units in the same direction every
    period for ten periods does not occur.  The order of the prices themselves cannot be
    checked: newest-first prices give the returns of the reversed path (every sign flipped,
    roughly), which look like returns.
    """
    if values.shape[0] < _DATE_ROWS:
        return
    step = np.diff(values, axis=0)
    whole = np.all(values == np.round(values), axis=0)
    inside = np.all((values >= _DATE_SERIALS[0]) & (values <= _DATE_SERIALS[1]), axis=0)
    up = np.all((step >= 1) & (step <= 31), axis=0)
    down = np.all((step <= -1) & (step >= -31), axis=0)
    dates = whole & inside & (up | down)
    if not dates.any():
        return
    j = int(np.argmax(dates))
    order = (
        "; they run newest first, so the prices probably do too: sort the table oldest first"
        if down[j]
        else ""
    )
    raise ValueError(
        f"prices: column {j + 1} holds whole numbers from {values[0, j]:.0f} to "
        f"{values[-1, j]:.0f} moving by 1 to 31 each row, which look like Excel dates, not "
        f"prices{order}; pass the price columns only (rows = dates, oldest first)"
    )


# --------------------------------------------------------------------------- estimators


def _symmetric(mat: np.ndarray) -> np.ndarray:
    return (mat + mat.T) / 2.0


@sized_blas(gram_work)
def sample_cov(returns, ddof=1) -> np.ndarray:
    """Sample covariance of a returns table, equally weighted, around the sample mean.

    ``S = sum_t (r_t - rbar)(r_t - rbar)' / (T - ddof)``; ``ddof=1`` (the default) is the
    unbiased estimator, ``np.cov`` and Excel's ``COVARIANCE.S``; ``ddof=0`` is ``COVARIANCE.P``.

    Parameters
    ----------
    returns : array_like, shape (T, n)
        Rows = periods, columns = assets.
    ddof : int, default 1

    Returns
    -------
    ndarray, shape (n, n)
    """
    d = _check_whole(1 if ddof is None else ddof, "ddof", 0, "1")
    r = check_returns(returns, min_rows=max(2, d + 1))
    centred = r - r.mean(axis=0)
    return _symmetric(centred.T @ centred) / (r.shape[0] - d)


@sized_blas(gram_work)
def ewma_cov(returns, lam=0.94) -> np.ndarray:
    """Exponentially weighted (RiskMetrics) covariance, zero mean, normalised weights.

    ``S = sum_t w_t r_t r_t'`` with ``w_t = lam^(T-1-t) / sum_{s=0}^{T-1} lam^s`` for
    ``t = 0..T-1`` (oldest first), so the newest period has the largest weight and the weights
    sum to 1.  As in RiskMetrics the mean is taken to be zero (returns are not centred).

    This equals the RiskMetrics recursion ``S_t = lam S_{t-1} + (1 - lam) r_t r_t'`` started
    from ``S_0 = 0`` and divided by ``1 - lam^T`` (the total weight that recursion has given);
    for a long history (``lam^T`` negligible) the two agree.  It is pandas' ``ewm(adjust=True)``
    weighting with ``alpha = 1 - lam``, applied to uncentred cross-products.

    Parameters
    ----------
    returns : array_like, shape (T, n)
        Rows = periods, **oldest first**.
    lam : float in (0, 1), default 0.94
        Decay factor (RiskMetrics uses 0.94 for daily data, 0.97 for monthly).

    Returns
    -------
    ndarray, shape (n, n)
    """
    decay = check_lam(lam)
    r = check_returns(returns)
    t = r.shape[0]
    weights = decay ** np.arange(t - 1, -1, -1, dtype=float)
    weights /= weights.sum()
    return _symmetric((r * weights[:, None]).T @ r)


def _ledoit_wolf(r: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Return ``(S_T, mu, delta)`` for a validated returns table."""
    t, n = r.shape
    x = r - r.mean(axis=0)
    s = _symmetric(x.T @ x) / t
    mu = float(np.trace(s)) / n
    # d^2 = ||S - mu I||^2 / n  (the paper's norm ||A||^2 = tr(A A') / n)
    target_gap = s.copy()
    target_gap[np.diag_indices(n)] -= mu
    d2 = float(np.sum(target_gap**2)) / n
    # bbar^2 = (1/T^2) sum_t ||x_t x_t' - S||^2 / n, using
    # sum_t ||x_t x_t' - S||_F^2 = sum_t ||x_t||^4 - T ||S||_F^2  (as sum_t x_t x_t' = T S)
    norms2 = np.sum(x**2, axis=1)
    bbar2 = (float(np.sum(norms2**2)) - t * float(np.sum(s**2))) / (t**2 * n)
    b2 = min(max(bbar2, 0.0), d2)
    delta = 0.0 if d2 <= 0.0 else b2 / d2
    return s, mu, delta


@sized_blas(gram_work)
def ledoit_wolf_shrinkage(returns) -> float:
    """Ledoit-Wolf (2004) shrinkage intensity ``delta`` in [0, 1]; see :func:`ledoit_wolf_cov`."""
    return _ledoit_wolf(check_returns(returns))[2]


@sized_blas(gram_work)
def ledoit_wolf_cov(returns) -> np.ndarray:
    """Ledoit-Wolf shrinkage covariance, shrunk toward a multiple of the identity.

    Ledoit, O. and Wolf, M. (2004), "A well-conditioned estimator for large-dimensional
    covariance matrices", J. Multivariate Analysis 88, 365-411 (Section 3.3, Lemma 3.2 ff.),
    as in ``sklearn.covariance.ledoit_wolf`` (``assume_centered=False``).  With the returns
    centred by their sample mean, ``x_t = r_t - rbar``::

        S_T    = sum_t x_t x_t' / T            (normalised by T, not T - 1)
        mu     = tr(S_T) / N
        d^2    = ||S_T - mu I||^2
        bbar^2 = (1 / T^2) sum_t ||x_t x_t' - S_T||^2
        b^2    = min(bbar^2, d^2)
        delta  = b^2 / d^2                     (0 when d^2 = 0, e.g. one asset)
        S*     = delta mu I + (1 - delta) S_T

    where ``||A||^2 = tr(A A') / N`` (the 1/N cancels in ``delta``).  The result is positive
    definite whenever ``delta > 0``, even with more assets than periods.

    Parameters
    ----------
    returns : array_like, shape (T, n)

    Returns
    -------
    ndarray, shape (n, n)
    """
    s, mu, delta = _ledoit_wolf(check_returns(returns))
    out = (1.0 - delta) * s
    out[np.diag_indices(s.shape[0])] += delta * mu
    return out


@memoize()
def covariance(returns, method="sample", lam=None) -> np.ndarray:
    """Per-period covariance of a returns table by the named estimator.

    Cached on the content of ``returns`` (see :mod:`xlmvar.engine._cache`): a sheet that asks for
    the same estimate in many cells estimates it once; the matrix returned is read-only.

    Parameters
    ----------
    returns : array_like, shape (T, n)
        Rows = periods (oldest first), columns = assets.
    method : {"sample", "ewma", "ledoit-wolf"}, default "sample"
        Aliases: ``"riskmetrics"``/``"exponential"`` = ewma, ``"lw"``/``"shrinkage"`` =
        ledoit-wolf, ``"historical"`` = sample.  See :func:`sample_cov` (``ddof=1``),
        :func:`ewma_cov`, :func:`ledoit_wolf_cov`.
    lam : float in (0, 1), optional
        EWMA decay factor, 0.94 if omitted; given with another method it is refused (a
        decay typed with the sample method would otherwise be dropped without a word).

    Returns
    -------
    ndarray, shape (n, n)
    """
    name = check_cov_method(method)
    if lam is not None and name != "ewma":
        raise ValueError(
            f"lam: is the decay of the ewma method and applies with it only (here method {name}); "
            "leave lam out, or use the method ewma"
        )
    if name == "ewma":
        out = ewma_cov(returns, lam)
    elif name == "ledoit-wolf":
        out = ledoit_wolf_cov(returns)
    else:
        out = sample_cov(returns)
    check_finite_result("returns", f"the {name} covariance of these returns", out)
    return out


def correlation(returns, method="sample", lam=None) -> np.ndarray:
    """Correlation matrix of the covariance estimated by :func:`covariance`.

    ``corr_ij = S_ij / sqrt(S_ii S_jj)`` (:func:`corr_from_cov`); an asset whose returns
    are all equal (zero variance) gets correlation 0 with the others.
    """
    return corr_from_cov(covariance(returns, method, lam))


# --------------------------------------------------------------------------- nearest correlation


def _psd_part(mat: np.ndarray) -> np.ndarray:
    """Frobenius-nearest positive semi-definite matrix: clip negative eigenvalues to 0."""
    w, v = np.linalg.eigh(_symmetric(mat))
    return _symmetric((v * np.maximum(w, 0.0)) @ v.T)


def _check_tol(tol) -> float:
    if isinstance(tol, bool) or not isinstance(tol, numbers.Real):
        raise ValueError(f"tol: got {_describe(tol)}; expected a small positive number such as 1e-10")
    value = as_real(tol)
    if not (math.isfinite(value) and 0.0 < value < 1.0):
        raise ValueError(f"tol: got {_describe(tol if math.isinf(value) else value)}; expected a small positive number such as 1e-10")
    return value


def nearest_corr(corr, tol=1e-10, max_iter=10_000) -> np.ndarray:
    """Nearest correlation matrix in the Frobenius norm (Higham 2002).

    Solves ``min ||A - X||_F`` over correlation matrices ``X`` (symmetric, positive
    semi-definite, unit diagonal) by alternating projections with Dykstra's correction
    (Higham, N. J. (2002), "Computing the nearest correlation matrix - a problem from
    finance", IMA J. Numer. Anal. 22, 329-343, Algorithm 3.3, unweighted ``W = I``)::

        dS = 0, Y = A
        repeat:  R = Y - dS;  X = P_S(R);  dS = X - R;  Y = P_U(X)

    ``P_S`` clips negative eigenvalues to zero; ``P_U`` sets the diagonal to 1.  It stops when
    the relative changes ``||Y_k - Y_{k-1}||_F / ||Y_k||_F`` and the gap
    ``||X_k - Y_k||_F / ||Y_k||_F`` are both ``<= tol``.  The PSD iterate ``X`` is then
    rescaled to an exact unit diagonal (``D^-1/2 X D^-1/2``, which keeps it PSD), so the
    result is a valid correlation matrix within ``O(tol)`` of the optimum.

    A matrix that is already positive definite comes back unchanged.

    Parameters
    ----------
    corr : array_like, shape (n, n)
        Symmetric, unit diagonal, entries in [-1, 1]; need **not** be positive semi-definite
        (that is what this repairs), e.g. correlations typed by hand or estimated pairwise.
    tol : float, default 1e-10
    max_iter : int, default 10000

    Returns
    -------
    ndarray, shape (n, n)
        A positive semi-definite correlation matrix with exactly 1 on its diagonal.

    Raises
    ------
    ValueError
        If ``corr`` is not a symmetric matrix with unit diagonal and entries in [-1, 1], or
        the iteration has not converged after ``max_iter`` steps.
    """
    a = _symmetric(check_correlation(corr, psd=False))
    np.fill_diagonal(a, 1.0)
    tol = _check_tol(tol)
    max_iter = _check_whole(max_iter, "max_iter", 1, "10000")
    n = a.shape[0]
    try:
        with blas_threads(n**3 / 3.0, serial_cholesky(n)):
            np.linalg.cholesky(a)
        return a  # already positive definite: nothing to repair
    except np.linalg.LinAlgError:
        pass
    with blas_threads(10.0 * n**3, serial_eigen(n, vectors=True)):  # an eigh and a product a step
        return _alternating_projections(a, tol, max_iter)


def _alternating_projections(a: np.ndarray, tol: float, max_iter: int) -> np.ndarray:
    """:func:`nearest_corr`'s iteration from the unit-diagonal matrix ``a``."""
    y = a.copy()
    correction = np.zeros_like(a)
    x = a
    change = gap = np.inf
    for _ in range(max_iter):
        r = y - correction
        x = _psd_part(r)
        correction = x - r
        y_new = x.copy()
        np.fill_diagonal(y_new, 1.0)
        size = np.linalg.norm(y_new)
        change = np.linalg.norm(y_new - y) / size
        gap = np.linalg.norm(x - y_new) / size
        y = y_new
        if change <= tol and gap <= tol:
            break
    else:
        raise ValueError(
            f"max_iter: the nearest-correlation iteration did not converge in {max_iter} steps "
            f"(relative change {max(change, gap):.2g} > tol {tol:g}); raise max_iter or tol"
        )
    d = np.sqrt(np.diag(x))
    out = _symmetric(x / d[:, None] / d[None, :])
    np.fill_diagonal(out, 1.0)
    return np.clip(out, -1.0, 1.0)
