"""Argument validation shared by every engine function.

Each checker converts its argument to a float ndarray and raises ``ValueError`` with a
message that names the argument and says what is expected.  The messages are what a
spreadsheet user sees in the cell, so they speak of cells, rows and columns.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from ._cache import memoize

__all__ = [
    "as_vector",
    "as_matrix",
    "check_confidence",
    "check_horizon",
    "check_covariance",
    "check_correlation",
    "check_returns",
    "check_mean",
]


def _describe(value) -> str:
    if value is None:
        return "a blank cell"
    if isinstance(value, str):
        return f"the text {value!r}"
    return f"{value!r}"


def _is_number(item) -> bool:
    return isinstance(item, numbers.Real) and not isinstance(item, bool)


_is_number_array = np.vectorize(_is_number, otypes=[bool])


def _to_float_array(values, name: str) -> np.ndarray:
    """Convert to a float array, naming the first cell that is not a finite number."""
    arr = values if isinstance(values, np.ndarray) else np.asarray(values, dtype=object)
    if arr.dtype.kind not in "fiu":
        arr = np.asarray(arr, dtype=object)
        ok = _is_number_array(arr) if arr.size else np.ones(arr.shape, bool)
        if not ok.all():
            index = tuple(int(i) for i in np.argwhere(~ok)[0])
            raise ValueError(
                f"{name}: {_where(index, arr.ndim)} holds {_describe(arr[index])}; expected a number"
            )
    arr = arr.astype(float, copy=False)
    # NaN and inf survive a sum, so one reduction screens the array without allocating a
    # mask of its size; only a suspicious sum (or an overflow of finite values) is scanned
    if not np.isfinite(np.add.reduce(arr, axis=None)) and not np.all(np.isfinite(arr)):
        index = tuple(int(i) for i in np.argwhere(~np.isfinite(arr))[0])
        kind = "an error or NaN" if math.isnan(arr[index]) else "an infinite value"
        raise ValueError(f"{name}: {_where(index, arr.ndim)} holds {kind}; expected a finite number")
    return arr


def _where(index, ndim: int) -> str:
    if ndim == 0:
        return "the value"
    if ndim == 1:
        return f"item {index[0] + 1}"
    return f"row {index[0] + 1}, column {index[1] + 1}"


def as_vector(values, name: str, size: int | None = None) -> np.ndarray:
    """Return ``values`` as a 1-D float array.

    A single row or a single column (the shapes an Excel range has) is accepted, as are
    scalars (a one-asset book).  ``size``, if given, is the length required.
    """
    arr = np.asarray(values, dtype=object) if not isinstance(values, np.ndarray) else values
    if arr.ndim == 0:
        arr = arr.reshape(1)
    elif arr.ndim == 2:
        if 1 not in arr.shape:
            raise ValueError(
                f"{name}: expected a single row or column, got {arr.shape[0]} rows x "
                f"{arr.shape[1]} columns"
            )
        arr = arr.reshape(-1)
    elif arr.ndim != 1:
        raise ValueError(f"{name}: expected a vector, got a {arr.ndim}-dimensional array")
    if arr.size == 0:
        raise ValueError(f"{name}: is empty; expected at least one number")
    out = _to_float_array(arr, name)
    if size is not None and out.size != size:
        raise ValueError(
            f"{name}: has {out.size} values but the book has {size} assets; "
            "expected one value per asset"
        )
    return out


def as_matrix(values, name: str) -> np.ndarray:
    """Return ``values`` as a 2-D float array (a 1-D input becomes one column)."""
    arr = np.asarray(values, dtype=object) if not isinstance(values, np.ndarray) else values
    if arr.ndim == 0:
        arr = arr.reshape(1, 1)
    elif arr.ndim == 1:
        arr = arr.reshape(-1, 1)
    elif arr.ndim != 2:
        raise ValueError(f"{name}: expected a table, got a {arr.ndim}-dimensional array")
    if arr.size == 0:
        raise ValueError(f"{name}: is empty")
    return _to_float_array(arr, name)


def check_confidence(confidence) -> float:
    """Return ``confidence`` as a float in (0, 1); 95 is refused with a hint."""
    if confidence is None:
        return 0.95
    if isinstance(confidence, bool) or not isinstance(confidence, numbers.Real):
        raise ValueError(
            f"confidence: got {_describe(confidence)}; expected a probability such as 95% or 0.95"
        )
    c = float(confidence)
    if not math.isfinite(c):
        raise ValueError("confidence: is not a finite number; expected e.g. 95% or 0.95")
    if 1.0 < c < 100.0:
        raise ValueError(
            f"confidence: got {c:g}, which looks like a percentage; use {c:g}% or {c / 100:g}"
        )
    if not 0.0 < c < 1.0:
        raise ValueError(f"confidence: got {c:g}; expected a probability strictly between 0 and 1")
    return c


def check_horizon(horizon) -> int:
    """Return ``horizon`` as a positive whole number of periods."""
    if horizon is None:
        return 1
    if isinstance(horizon, bool) or not isinstance(horizon, numbers.Real):
        raise ValueError(
            f"horizon: got {_describe(horizon)}; expected a whole number of periods such as 1 or 10"
        )
    h = float(horizon)
    if not math.isfinite(h) or h <= 0 or h != round(h):
        raise ValueError(
            f"horizon: got {h:g}; expected a positive whole number of periods such as 1 or 10"
        )
    return int(round(h))


def _check_square(mat: np.ndarray, name: str, size: int | None) -> None:
    if mat.shape[0] != mat.shape[1]:
        raise ValueError(
            f"{name}: must be square, got {mat.shape[0]} rows x {mat.shape[1]} columns"
        )
    if size is not None and mat.shape[0] != size:
        raise ValueError(
            f"{name}: is {mat.shape[0]} x {mat.shape[1]} but there are {size} positions; "
            "expected one row and one column per asset"
        )


def _check_symmetric(mat: np.ndarray, name: str) -> None:
    scale = max(float(np.max(np.abs(mat))), np.finfo(float).tiny)
    asym = np.abs(mat - mat.T)
    if np.max(asym) > 1e-8 * scale:
        i, j = (int(k) for k in np.unravel_index(np.argmax(asym), asym.shape))
        raise ValueError(
            f"{name}: is not symmetric: row {i + 1}, column {j + 1} holds {mat[i, j]:g} but "
            f"row {j + 1}, column {i + 1} holds {mat[j, i]:g}"
        )


def _check_psd(mat: np.ndarray, name: str) -> None:
    n = mat.shape[0]
    scale = max(float(np.max(np.abs(np.diag(mat)))), np.finfo(float).tiny)
    tol = 1e-10 * scale * n
    try:  # a Cholesky factorisation is ~30x cheaper than an eigendecomposition
        np.linalg.cholesky(mat + tol * np.eye(n))
        return
    except np.linalg.LinAlgError:
        pass
    smallest = float(np.linalg.eigvalsh((mat + mat.T) / 2.0)[0])
    if smallest < -tol:
        raise ValueError(
            f"{name}: is not positive semi-definite (smallest eigenvalue {smallest:.3g}), so some "
            "portfolio would have a negative variance; repair the correlations with NEARESTCORR"
        )


@memoize()
def check_covariance(cov, size: int | None = None, name: str = "cov") -> np.ndarray:
    """Return a validated covariance matrix: square, symmetric, non-negative variances, PSD.

    The O(n^3) positive semi-definiteness check is cached on the matrix's content; the
    matrix returned is read-only.
    """
    mat = as_matrix(cov, name)
    _check_square(mat, name, size)
    _check_symmetric(mat, name)
    diag = np.diag(mat)
    if np.any(diag < 0):
        i = int(np.argmax(diag < 0))
        raise ValueError(
            f"{name}: the variance on the diagonal at row {i + 1} is {diag[i]:g}; "
            "variances cannot be negative"
        )
    _check_psd(mat, name)
    return mat


def check_correlation(corr, size: int | None = None, name: str = "corr", psd: bool = True) -> np.ndarray:
    """Return a validated correlation matrix: unit diagonal, entries in [-1, 1], symmetric, PSD."""
    mat = as_matrix(corr, name)
    _check_square(mat, name, size)
    off = np.abs(np.diag(mat) - 1.0) > 1e-9
    if np.any(off):
        i = int(np.argmax(off))
        raise ValueError(
            f"{name}: the diagonal at row {i + 1} is {mat[i, i]:g}; a correlation matrix has 1 "
            "on its diagonal"
        )
    out = np.abs(mat) > 1.0 + 1e-12
    if np.any(out):
        i, j = (int(k) for k in np.argwhere(out)[0])
        raise ValueError(
            f"{name}: row {i + 1}, column {j + 1} is {mat[i, j]:g}; correlations must lie in [-1, 1]"
        )
    _check_symmetric(mat, name)
    if psd:
        _check_psd(mat, name)
    return mat


def check_returns(returns, size: int | None = None, name: str = "returns", min_rows: int = 2) -> np.ndarray:
    """Return a validated returns table (rows = periods, columns = assets)."""
    mat = as_matrix(returns, name)
    if size is not None and mat.shape[1] != size:
        if mat.shape[0] == size and mat.shape[1] != size:
            hint = "; the table looks transposed (expected rows = periods, columns = assets)"
        else:
            hint = ""
        raise ValueError(
            f"{name}: has {mat.shape[1]} columns but there are {size} positions; expected one "
            f"column per asset{hint}"
        )
    if mat.shape[0] < min_rows:
        raise ValueError(
            f"{name}: has {mat.shape[0]} rows; at least {min_rows} periods are needed"
        )
    return mat


def check_mean(mean, size: int) -> np.ndarray | None:
    """Return the optional mean vector (``None`` means a zero mean)."""
    if mean is None:
        return None
    return as_vector(mean, "mean", size)
