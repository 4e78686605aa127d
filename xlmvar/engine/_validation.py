"""Argument validation shared by every engine function.

Each checker converts its argument to a float ndarray and raises ``ValueError`` with a
message that names the argument and says what is expected.  The messages are what a
spreadsheet user sees in the cell, so they speak of cells, rows and columns.
"""

from __future__ import annotations

import dataclasses
import math
import numbers

import numpy as np

from ._cache import _MISS, array_key, named_cache, owned_copies, product
from ._lapack import cholesky_lower, potrf
from ._threads import blas_threads, rows_product, serial_cholesky, serial_eigen, serial_pass

__all__ = [
    "as_real",
    "describe",
    "check_number",
    "check_flag",
    "check_options",
    "check_finite_result",
    "as_vector",
    "as_matrix",
    "finite_product",
    "check_confidence",
    "check_horizon",
    "check_covariance",
    "checked_covariance",
    "covariance_product",
    "covariance_factor",
    "CheckedCovariance",
    "check_correlation",
    "check_returns",
    "check_return_levels",
    "check_mean",
    "check_positive",
    "check_count",
    "check_fractions",
    "check_unit_interval",
]


def as_real(value) -> float:
    """``float(value)`` of a real number, with one past the float range (a Python int such as
    ``10**400``, which ``float`` refuses with an OverflowError) as an infinity of its sign,
    for the caller to refuse as not finite."""
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def describe(value) -> str:
    """A value as the cell holding it would be described to a spreadsheet user.

    Blank (``None`` or text of spaces), text, an error cell (NaN, as xlwings passes it), an
    infinite value, TRUE/FALSE, or the number itself.
    """
    if value is None:
        return "a blank cell"
    if isinstance(value, str):
        return "a blank cell" if value.strip() == "" else f"the text {value!r}"
    if isinstance(value, (bool, np.bool_)):
        return "TRUE" if value else "FALSE"
    if isinstance(value, numbers.Real):
        v = as_real(value)
        if math.isnan(v):
            return "an error or NaN"
        if math.isinf(v):
            return "an infinite value" if isinstance(value, (float, np.floating)) else "a number too large for a floating-point value"
        return f"{v:g}"
    return f"{value!r}"


def check_number(value, name: str, expected: str) -> float:
    """Return a single finite number (a 1 x 1 range is accepted).

    Anything else - a blank, text, an error cell, an infinite value, TRUE/FALSE, a range of
    several cells - raises ``name: got ...; expected <expected>``.
    """
    arr = value if isinstance(value, np.ndarray) else None
    if arr is not None or isinstance(value, (list, tuple)):
        arr = np.asarray(value, dtype=object)
        if arr.size != 1:
            raise ValueError(f"{name}: got {arr.size} values; expected a single number, {expected}")
        value = arr.reshape(-1)[0]
        if isinstance(value, np.generic):
            value = value.item()
    if not _is_number(value) or not math.isfinite(as_real(value)):
        raise ValueError(f"{name}: got {describe(value)}; expected {expected}")
    return float(value)


def check_flag(value, name: str, default: bool = False) -> bool:
    """Return a TRUE/FALSE argument; blank means ``default``, 1 and 0 are accepted."""
    if value is None:
        return default
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if _is_number(value) and as_real(value) in (0.0, 1.0):
        return bool(value)
    if isinstance(value, str) and value.strip().upper() in ("TRUE", "FALSE", ""):
        return default if value.strip() == "" else value.strip().upper() == "TRUE"
    raise ValueError(f"{name}: got {describe(value)}; expected TRUE or FALSE")


def check_options(options: dict, method: str, allowed: tuple) -> None:
    """Refuse options the method does not know, naming them and the ones it does."""
    if options:
        name = next(iter(options))
        takes = ", ".join(allowed) if allowed else "none"
        raise ValueError(
            f"{name}: is not an option of the {method} method; its options are {takes}"
        )


def check_finite_result(name: str, what: str, *values) -> None:
    """Raise rather than return a result that overflowed or underflowed to inf or NaN.

    Inputs are checked to be finite, but numbers of absurd size (1e200 positions, returns in
    units of 1e-300) can still overflow on the way; ``name`` is the argument to rescale.
    """
    if all(np.all(np.isfinite(np.asarray(v, dtype=float))) for v in values):
        return
    raise ValueError(
        f"{name}: {what} is too large or too small to compute in floating point (overflow or "
        f"underflow); express {name} in other units, e.g. in millions or as fractions"
    )


def _is_number(item) -> bool:
    return isinstance(item, numbers.Real) and not isinstance(item, bool)


_is_number_array = np.vectorize(_is_number, otypes=[bool])


#: Tables below this many values are screened by numpy's sum, which costs little more than
#: a BLAS pass there (measured); from it on, by BLAS row sums on one thread.
_BLAS_SCREEN_SIZE = 250_000


#: Up to this many values (a book, a small table) the screen is the exact test itself.
_EXACT_SCREEN_SIZE = 4096


def _surely_finite(arr: np.ndarray) -> bool:
    """True if the float array ``arr`` certainly holds no NaN or infinity.

    A screen, exact in one direction: NaN and inf survive multiplying by a finite non-zero
    number and summing, in any order (IEEE 754), so finite sums mean finite values.  A
    table's row sums ``arr @ 1`` are one BLAS pass (BLAS skips no product by a non-zero),
    faster than numpy's sum and without a mask of the table's size; a vector, a small table
    or a strided or unaligned one (which BLAS would copy) is summed by numpy.  A ``False`` (a non-finite value, or finite values
    so large that a sum overflows) only sends the caller to the exact element-wise test.
    """
    if arr.size <= _EXACT_SCREEN_SIZE:  # the exact test, cheaper than a context of errstate
        return bool(np.isfinite(arr).all())
    with np.errstate(over="ignore", invalid="ignore"):
        flags = arr.flags
        if arr.ndim == 2 and arr.size >= _BLAS_SCREEN_SIZE and flags.aligned and (flags.c_contiguous or flags.f_contiguous):
            # a pass over the table is small work: one BLAS thread, as for every call of its size
            with blas_threads(2.0 * arr.size, serial_pass(arr.shape)):
                return bool(np.isfinite(rows_product(arr, np.ones(arr.shape[1]))).all())
        return bool(np.isfinite(np.add.reduce(arr, axis=None)))


def _to_float_array(values, name: str, finite: bool = True) -> np.ndarray:
    """Convert to a float array, naming the first cell that is not a number (and, with
    ``finite``, the first that is not finite: left to the caller otherwise, see
    :func:`finite_product`)."""
    arr = values if isinstance(values, np.ndarray) else np.asarray(values, dtype=object)
    if arr.dtype.kind not in "fiu":
        arr = np.asarray(arr, dtype=object)
        ok = _is_number_array(arr) if arr.size else np.ones(arr.shape, bool)
        if not ok.all():
            index = tuple(int(i) for i in np.argwhere(~ok)[0])
            raise ValueError(
                f"{name}: {_where(index, arr.ndim)} holds {describe(arr[index])}; expected a number"
            )
    try:
        arr = arr.astype(float, copy=False)
    except OverflowError:  # a Python int past 1.8e308: named with the first bad cell
        index = next(i for i in np.ndindex(arr.shape) if not math.isfinite(as_real(arr[i])))
        raise _not_finite(name, index, arr.ndim, arr[index]) from None
    if finite and not _surely_finite(arr):
        _require_finite(arr, name)
    return arr


def _not_finite(name: str, index, ndim: int, value) -> ValueError:
    """The error for a cell that is NaN, infinite or past the float range."""
    v = as_real(value)
    if math.isnan(v):
        kind = "an error or NaN"
    elif isinstance(value, (float, np.floating)):
        kind = "an infinite value"
    else:  # a Python int or fraction past the float range
        kind = "a number too large for a floating-point value (the largest is about 1.8e308)"
    return ValueError(f"{name}: {_where(index, ndim)} holds {kind}; expected a finite number")


def _require_finite(arr: np.ndarray, name: str) -> None:
    """Raise naming the first cell of the float array ``arr`` that is NaN or infinite."""
    bad = ~np.isfinite(arr)
    if bad.any():
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        raise _not_finite(name, index, arr.ndim, float(arr[index]))


def finite_product(mat: np.ndarray, vector: np.ndarray, name: str) -> np.ndarray:
    """``mat @ vector``, refusing a ``mat`` that holds NaN or an infinity (naming the cell).

    For a float table not yet screened (``check_returns(..., finite=False)``) and a finite
    vector: the product the caller needs is also the screen, so a history is read once for
    both.  A NaN or an infinity in row ``t``, column ``j`` with ``x_j != 0`` makes
    ``r_tj x_j`` NaN or infinite, and sums keep it in any order (IEEE 754), so ``p_t`` is not
    finite; the columns with ``x_j = 0`` (whose products some BLAS skip) are screened on
    their own, as :func:`_surely_finite` screens a table.  A product that is not finite
    sends to the exact element-wise test; a finite table whose product overflowed
    (``1e200 x 1e109``) is returned as it is, for the caller to refuse with its own message.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        out = rows_product(mat, vector)  # blocks OpenBLAS runs on one thread
    zero = vector == 0.0
    if not np.isfinite(out).all() or (zero.any() and not _surely_finite(mat[:, zero])):
        _require_finite(mat, name)
    return out


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


def as_matrix(values, name: str, finite: bool = True) -> np.ndarray:
    """Return ``values`` as a 2-D float array (a 1-D input becomes one column).

    With ``finite=False`` NaN and infinities are left for the caller to refuse
    (:func:`finite_product`); every other cell must be a number."""
    arr = np.asarray(values, dtype=object) if not isinstance(values, np.ndarray) else values
    if arr.ndim == 0:
        arr = arr.reshape(1, 1)
    elif arr.ndim == 1:
        arr = arr.reshape(-1, 1)
    elif arr.ndim != 2:
        raise ValueError(f"{name}: expected a table, got a {arr.ndim}-dimensional array")
    if arr.size == 0:
        raise ValueError(f"{name}: is empty")
    return _to_float_array(arr, name, finite)


#: Lowest confidence accepted: below 50% the VaR quantile lies on the gain side of the median.
MIN_CONFIDENCE = 0.5


def check_confidence(confidence) -> float:
    """Return ``confidence`` as a float in [0.5, 1) (blank means 0.95).

    Rules, in order:

    * not a finite number: refused;
    * ``1 < c < 100`` with ``c / 100`` in [0.5, 1) (95, 99, 99.9): refused with the hint
      "use 95% or 0.95" - a percentage typed as a number;
    * ``c <= 0`` or ``c >= 1`` (1.5, 100, -0.95): refused as outside (0, 1); 1.5 is not read
      as 1.5%, which would be a confidence of 0.015;
    * ``0 < c < 0.5``: refused.  The VaR at confidence ``c`` is minus the ``1 - c`` quantile
      of the P&L; below 50% that quantile is above the median, so the "VaR" is a gain (for
      a normal P&L, ``Phi^-1(c) < 0``) and grows smaller as the confidence grows.  A value
      such as 0.05 is usually the tail probability, so the message suggests ``1 - c``;
    * ``1 - c`` below 5e-16 (a hair below 1): refused; the tail probability, rounded to 15
      decimals as :func:`~.historical.tail_probability` rounds it, would be 0.
    """
    if confidence is None:
        return 0.95
    if isinstance(confidence, bool) or not isinstance(confidence, numbers.Real):
        raise ValueError(
            f"confidence: got {describe(confidence)}; expected a probability such as 95% or 0.95"
        )
    c = as_real(confidence)
    if not math.isfinite(c):
        raise ValueError(
            f"confidence: got {describe(confidence)}; expected a probability such as 95% or 0.95"
        )
    if 1.0 < c < 100.0 and MIN_CONFIDENCE <= c / 100.0 < 1.0:
        raise ValueError(
            f"confidence: got {c:g}, which looks like a percentage; use {c:g}% or {c / 100:g}"
        )
    if not 0.0 < c < 1.0:
        raise ValueError(
            f"confidence: got {c:g}; expected a probability strictly between 0 and 1 such as "
            "95% or 0.95"
        )
    if c < MIN_CONFIDENCE:
        raise ValueError(
            f"confidence: got {c:g}; expected at least 0.5 (50%) such as 95% or 0.95: below 50% "
            f"the VaR quantile lies on the gain side of the median, so the VaR would be a gain; "
            f"if {c:g} is the tail probability, use {1.0 - c:.10g}"
        )
    if 1.0 - c < 5e-16:  # the tail probability 1 - c, rounded to 15 decimals, would be 0
        raise ValueError(
            f"confidence: got {c!r}, a tail probability below 1e-15; expected a confidence of "
            "at most 1 - 1e-15 (99.9999999999999%)"
        )
    return c


def check_horizon(horizon) -> int:
    """Return ``horizon`` as a positive whole number of periods."""
    if horizon is None:
        return 1
    if isinstance(horizon, bool) or not isinstance(horizon, numbers.Real):
        raise ValueError(
            f"horizon: got {describe(horizon)}; expected a whole number of periods such as 1 or 10"
        )
    h = as_real(horizon)
    if not math.isfinite(h) or h <= 0 or h != round(h):
        raise ValueError(
            f"horizon: got {describe(horizon if math.isinf(h) else h)}; expected a positive whole number of periods such as 1 or 10"
        )
    if h > _LARGEST_WHOLE:  # past 2**53 a float no longer holds every whole number
        raise ValueError(
            f"horizon: got {h:g}, more periods than a number can count exactly; expected a whole "
            f"number of periods no larger than 2**53 = {_LARGEST_WHOLE:.0f}"
        )
    return int(round(h))


_LARGEST_WHOLE = 2.0**53


def _check_square(
    mat: np.ndarray, name: str, size: int | None, sized_by: str | None = None, hint: str = ""
) -> None:
    """Square, and ``size`` x ``size`` if given; ``sized_by`` says where ``size`` comes from
    (default: the positions), ``hint`` is added to the message of a matrix that is not square."""
    if mat.shape[0] != mat.shape[1]:
        raise ValueError(
            f"{name}: must be square, got {mat.shape[0]} rows x {mat.shape[1]} columns{hint}"
        )
    if size is not None and mat.shape[0] != size:
        if sized_by is None:
            sized_by = f"there {'is 1 position' if size == 1 else f'are {size} positions'}"
        raise ValueError(
            f"{name}: is {mat.shape[0]} x {mat.shape[1]} but {sized_by}; "
            "expected one row and one column per asset"
        )


#: Rows of each strip of :func:`_check_symmetric`: the strip's columns, read across, stay in
#: the CPU cache (128 x N x 8 bytes is 1 MiB at N = 1000).
_SYMMETRY_ROWS = 128


def _check_symmetric(mat: np.ndarray, name: str) -> None:
    """Raise unless ``|S_ij - S_ji| <= 1e-8 max|S|`` everywhere, naming the worst pair.

    The pairs right of the diagonal are compared in strips of :data:`_SYMMETRY_ROWS` rows,
    ``S[i:i+b, i:]`` against ``S[i:, i:i+b]'``, so that the columns read across stay in the
    CPU cache (``S - S'`` at once reads one side a page per element; the strips take
    1.6-1.7x less time at N = 1000 and 1.9-2x less at N = 2000,
    ``benchmarks/bench_validation.py``).  The pair named is the first largest in the order
    of the rows, as ``argmax(|S - S'|)`` finds it.
    """
    n = mat.shape[0]
    scale = max(float(mat.max()), -float(mat.min()), np.finfo(float).tiny)  # max|S|, no temporary
    worst, i, j = 0.0, 0, 0
    for start in range(0, n, _SYMMETRY_ROWS):
        with np.errstate(over="ignore"):  # +-1.7e308 across the diagonal: inf, refused below
            asym = mat[start : start + _SYMMETRY_ROWS, start:] - mat[start:, start : start + _SYMMETRY_ROWS].T
        np.abs(asym, out=asym)
        k = int(np.argmax(asym))
        if asym.flat[k] > worst:  # strictly: the first of equal ones is kept
            worst, (i, j) = float(asym.flat[k]), (start + k // asym.shape[1], start + k % asym.shape[1])
    if worst > 1e-8 * scale:
        raise ValueError(
            f"{name}: is not symmetric: row {i + 1}, column {j + 1} holds {mat[i, j]:g} but "
            f"row {j + 1}, column {i + 1} holds {mat[j, i]:g}"
        )


def _psd_factor(mat: np.ndarray, name: str) -> np.ndarray | None:
    """Check positive semi-definiteness; return the Cholesky factorisation if ``mat`` is
    definite.

    One Cholesky factorisation (:func:`~._lapack.potrf`: LAPACK's layout, ``L'`` in its
    upper triangle, ``L L' = mat``) decides the common case (positive definite) and is kept
    for the computations that need ``L`` (Monte Carlo, :func:`covariance_factor`).  A
    singular matrix (perfectly correlated assets, more assets than history) is accepted if
    the factorisation of ``mat + tol I`` succeeds, ``tol = 1e-10 n max(diag)``, or else if
    its smallest eigenvalue is above ``-tol``; it has no Cholesky factor (``None``).
    """
    n = mat.shape[0]
    with blas_threads(n**3 / 3.0, serial_cholesky(n)):
        try:
            return potrf(mat)
        except np.linalg.LinAlgError:
            pass
        scale = max(float(np.max(np.abs(np.diag(mat)))), np.finfo(float).tiny)
        tol = 1e-10 * scale * n
        try:
            potrf(mat + tol * np.eye(n))
            return None
        except np.linalg.LinAlgError:
            pass
    with blas_threads(4.0 * n**3 / 3.0, serial_eigen(n)):
        smallest = float(np.linalg.eigvalsh((mat + mat.T) / 2.0)[0])
    if smallest < -tol:
        raise ValueError(
            f"{name}: is not positive semi-definite (smallest eigenvalue {smallest:.3g}), so some "
            "portfolio would have a negative variance; repair the correlations with NEARESTCORR"
        )
    return None


def _check_psd(mat: np.ndarray, name: str) -> None:
    _psd_factor(mat, name)


@dataclasses.dataclass(frozen=True)
class CheckedCovariance:
    """A validated covariance matrix (read-only), its Cholesky factorisation if it is
    definite (:func:`~._lapack.potrf`'s layout: ``L'`` in the upper triangle; ``L`` is
    :func:`covariance_factor`'s), and its standard deviations ``sqrt(diag)`` (read with the
    matrix, kept contiguous)."""

    matrix: np.ndarray
    cholesky: np.ndarray | None
    sd: np.ndarray


#: Validated covariances by content: symmetry and PSD are checked once per distinct matrix.
#: A what-if call's fresh array is checked against the block digests of the stored copy.
_COVARIANCES = named_cache("xlmvar.engine._validation.check_covariance", digests=True)

#: Below this size a covariance is validated every time: there a cache hit (building the key,
#: comparing the matrix) is not 10x faster than the validation itself (measured by
#: ``benchmarks/bench_api.py --cache``, with LAPACK's ``dpotrf`` called directly: 4-5x at
#: N = 100, 8.5-8.9x at N = 200, 12-14x at N = 300, 33-52x at N = 1000).
COV_CACHE_MIN_SIZE = 250


def _cached_covariance(cov):
    """The cache entry of ``cov``'s content, ``(arrays, key)`` to store under, or neither."""
    if isinstance(cov, np.ndarray) and not cov.flags.writeable:
        hit = _COVARIANCES.lookup_identity(cov)  # a matrix this module returned, read-only
        if hit is not None:
            return hit, None
    if not isinstance(cov, np.ndarray):  # a list is keyed by its pickle: not worth it here
        return None, None
    split = array_key(cov)
    if split is None or not split[0] or split[0][0].ndim != 2 or split[0][0].shape[0] < COV_CACHE_MIN_SIZE:
        return None, None
    hit = _COVARIANCES.lookup(split[1], split[0])
    return (None if hit is _MISS else hit), split


def checked_covariance(cov, size: int | None = None, name: str = "cov", sized_by: str | None = None) -> CheckedCovariance:
    """Validate a covariance matrix once per distinct content; see :func:`check_covariance`.

    Returns the read-only matrix and its Cholesky factor (``None`` for a singular matrix).
    A repeated call with the same content - a what-if with new positions, another cell of
    the sheet - compares the matrix with the cached copy (one pass, O(N^2)) instead of
    checking symmetry and factorising it again (O(N^3)); the matrix this function returned
    is recognised without even that pass.
    """
    hit, split = _cached_covariance(cov)
    if hit is not None:
        _check_square(hit.matrix, name, size, sized_by)
        return hit
    return _validated_covariance(cov, split, size, name, sized_by)


def _validated_covariance(cov, split, size, name, sized_by) -> CheckedCovariance:
    """Validate ``cov`` (not in the cache) and store it under ``split`` if that is given.

    What is validated is a copy made first (the cache's own when it is stored), and the
    matrix returned is that copy: a caller's array written to by another thread during the
    call cannot pass the checks with one content and be kept, or returned, with another.
    """
    copies = None
    if split is not None:
        copies = owned_copies(split[0])
        cov = copies[0]
    elif not isinstance(cov, (list, tuple)):  # an array, a DataFrame: never the caller's memory
        cov = np.array(cov, order="C", copy=True)
    mat = as_matrix(cov, name)
    hint = ""
    if mat.shape[0] > mat.shape[1] and (size is None or mat.shape[1] == size):
        hint = (
            "; a table with more rows than columns looks like a returns history: use it with "
            'method "historical" or "cornish-fisher", or estimate a covariance with COVMATRIX'
        )
    _check_square(mat, name, size, sized_by, hint)
    _check_symmetric(mat, name)
    diag = np.diag(mat)
    if np.any(diag < 0):
        i = int(np.argmax(diag < 0))
        raise ValueError(
            f"{name}: the variance on the diagonal at row {i + 1} is {diag[i]:g}; "
            "variances cannot be negative"
        )
    factor = _psd_factor(mat, name)
    mat.flags.writeable = False  # a copy, or an array converted from the caller's cells
    result = CheckedCovariance(mat, factor, np.sqrt(diag))
    if split is None:  # not cached (small, or not a numeric array)
        return result
    return _COVARIANCES.store(split[1], copies, result)


def covariance_product(cov, vector: np.ndarray, name: str = "cov", sized_by: str | None = None):
    """The volatilities of a validated covariance and its product with ``vector``:
    ``(sqrt(diag(cov)), cov @ vector)``.

    Parameters
    ----------
    cov : array_like, shape (n, n)
        Validated as by :func:`check_covariance`, with ``size = n`` taken from ``vector``.
    vector : ndarray, shape (n,), float64
        Already validated (finite), e.g. the positions scaled by ``1 / max|x|``.

    Returns
    -------
    sd : ndarray, shape (n,)
        ``sqrt(diag(cov))``, read-only: the validation's own (not to be handed out).
    product : ndarray, shape (n,)
        ``matrix @ vector`` (:func:`~._cache.product`: the same bits on every path).

    A what-if call - a fresh float64 array with the content of a cached matrix, new
    positions - costs one pass over the given array: each row block is multiplied and
    checked against the digest of the cached copy's block while it is in the CPU cache
    (:func:`~._cache.same_content_product`; bit for bit against the copy itself where the
    ``xxhash`` package is missing).  The product is always the given array's.  Any other
    call is validated as by :func:`checked_covariance` (once per distinct matrix) and then
    multiplied.
    """
    n = vector.shape[0]
    if isinstance(cov, np.ndarray) and not cov.flags.writeable:  # perhaps one this module returned
        hit = _COVARIANCES.lookup_identity(cov)
        if hit is not None and hit.matrix.shape == (n, n):
            return hit.sd, product(hit.matrix, vector)
    fused = isinstance(cov, np.ndarray) and cov.dtype == np.float64 and cov.shape == (n, n) and n >= COV_CACHE_MIN_SIZE
    if not fused:
        checked = checked_covariance(cov, n, name, sized_by)
        return checked.sd, product(checked.matrix, vector)
    arrays, key = array_key(cov)
    hit, result = _COVARIANCES.lookup_product(key, cov, vector)
    if hit is _MISS:
        hit = _validated_covariance(cov, (arrays, key), n, name, sized_by)
        result = product(hit.matrix, vector)
    return hit.sd, result


def check_covariance(cov, size: int | None = None, name: str = "cov", sized_by: str | None = None) -> np.ndarray:
    """Return a validated covariance matrix: square, symmetric, non-negative variances, PSD.

    ``size`` is the number of assets required (``sized_by`` says where it comes from, for
    the message; default the positions).  A table with more rows than columns is refused
    with the hint that it looks like a returns history.

    Symmetry and positive semi-definiteness are checked once per distinct matrix (see
    :func:`checked_covariance`); the matrix returned is a read-only copy, never the
    caller's array.
    """
    return checked_covariance(cov, size, name, sized_by).matrix


def covariance_factor(cov) -> np.ndarray:
    """A matrix ``L`` with ``L L' = cov`` for a valid covariance.

    The Cholesky factor, read from the factorisation the validation computed (a new array
    each call), when ``cov`` is positive definite; for a positive semi-definite ``cov``,
    ``L = V diag(sqrt(max(lambda, 0)))`` from the eigendecomposition ``cov = V diag(lambda) V'``.
    """
    checked = checked_covariance(cov)
    if checked.cholesky is not None:
        return cholesky_lower(checked.cholesky)
    s = checked.matrix
    with blas_threads(4.0 * s.shape[0] ** 3, serial_eigen(s.shape[0], vectors=True)):
        w, v = np.linalg.eigh(s)
    return v * np.sqrt(np.maximum(w, 0.0))


def check_correlation(corr, size: int | None = None, name: str = "corr", psd: bool = True, sized_by: str | None = None) -> np.ndarray:
    """Return a validated correlation matrix: unit diagonal, entries in [-1, 1], symmetric, PSD."""
    mat = as_matrix(corr, name)
    _check_square(mat, name, size, sized_by)
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


def check_returns(
    returns, size: int | None = None, name: str = "returns", min_rows: int = 2, finite: bool = True
) -> np.ndarray:
    """Return a validated returns table (rows = periods, columns = assets).

    ``finite=False`` leaves NaN and infinities to the caller, which must screen the table
    with :func:`finite_product` before reading it in any other way."""
    mat = as_matrix(returns, name, finite)
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


def check_return_levels(mat: np.ndarray, name: str = "returns") -> None:
    """Refuse a returns history that cannot be simple returns (percentages, prices).

    Applied to the histories that VaR is read from (historical, Cornish-Fisher); not to the
    covariance estimators, which are unit-free (a covariance of P&L or of basis-point moves
    is a covariance too), nor to simulated scenarios.

    * A value ``<= -1``: a simple return of -100% or less would leave a zero or negative
      price, so the table is in other units - typically percentages (-1.5 for -1.5%).  (A
      log return can reach -1, a fall of 63%; the engine's P&L ``x . r`` is linear in simple
      returns, so it is to be converted, ``exp(r) - 1``.)
    * A column of two or more values all ``> 1``: a gain of more than 100% in every period;
      that is a price (or a percentage) column.
    Percentages that never reach -1 and prices below 1 pass: they cannot be told apart from
    returns by their values.  ``mat`` is finite (as :func:`check_returns` returns it); the
    check is one pass over the table (its least value), and a second (each column's least
    value) only if some column's first value is above 1.
    """
    if mat.min() <= -1.0:
        i, j = (int(k) for k in np.argwhere(mat <= -1.0)[0])
        raise ValueError(
            f"{name}: {_where((i, j), mat.ndim)} is {mat[i, j]:g}, a loss of "
            f"{-mat[i, j] * 100:g}%; a return of -100% or below would leave a zero or negative "
            "price, so these look like percentages (-1.5 for -1.5%): divide by 100, or enter "
            "them as -1.5% (a log return of -1 or below, a fall of 63% or more, converts to a "
            "simple return as EXP(r) - 1)"
        )
    if mat.shape[0] >= 2:
        # a column all above 1 starts above 1: without one, nothing more is read; with
        # some, the least value of each column (one more pass, never a copy of columns)
        high = np.flatnonzero(mat.min(axis=0) > 1.0) if (mat[0] > 1.0).any() else ()
        if len(high):
            j = int(high[0])
            raise ValueError(
                f"{name}: every value in column {j + 1} is above 1 (row 1 holds {mat[0, j]:g}), "
                "a gain of more than 100% in every period; these look like prices (form returns "
                "with RETURNSFROMPRICES) or percentages (divide by 100)"
            )


def check_mean(mean, size: int) -> np.ndarray | None:
    """Return the optional mean vector (``None`` means a zero mean)."""
    if mean is None:
        return None
    return as_vector(mean, "mean", size)


def check_positive(value, name: str) -> float:
    """Return a single number > 0."""
    v = check_number(value, name, "a positive number")
    if v <= 0.0:
        raise ValueError(f"{name}: got {v:g}; expected a positive number")
    return v


def check_count(value, name: str) -> int:
    """Return a whole number >= 1."""
    v = check_number(value, name, "a positive whole number")
    if v < 1 or v != round(v):
        raise ValueError(f"{name}: got {v:g}; expected a positive whole number")
    return int(v)


def check_fractions(values, name: str, size: int, low_open: bool) -> np.ndarray:
    """Fractions in (0, 1] (``low_open``) or [0, 1]: one value, or one per asset.

    One value is broadcast to ``size``.  A value in (1, 100] is refused with the hint that
    it looks like a percentage (``15`` -> "use 15% or 0.15").
    """
    arr = np.asarray(values, dtype=object) if not isinstance(values, np.ndarray) else values
    if arr.size == 1:  # one value: a blank, text or an error is described as itself
        vec = np.array([check_number(arr.reshape(-1)[0], name, "a fraction such as 15% or 0.15")])
    else:
        vec = as_vector(arr, name)
    if vec.size not in (1, size):
        raise ValueError(
            f"{name}: has {vec.size} values but the book has {size} assets; expected one value "
            "or one per asset"
        )
    interval = "(0, 1]" if low_open else "[0, 1]"
    for i, v in enumerate(vec):
        where = "" if vec.size == 1 else f" (item {i + 1})"
        if 1.0 < v <= 100.0:
            raise ValueError(
                f"{name}: got {v:g}{where}, which looks like a percentage; use {v:g}% or "
                f"{v / 100:g}"
            )
        if v > 1.0 or v < 0.0 or (low_open and v == 0.0):
            raise ValueError(
                f"{name}: got {v:g}{where}; expected a fraction in {interval}, such as 15% or 0.15"
            )
    return np.full(size, vec[0]) if vec.size == 1 else vec


def check_unit_interval(value, name: str) -> float:
    """A single number in [0, 1]; 50 is refused with the hint 50%."""
    v = check_number(value, name, "a fraction in [0, 1] such as 50% or 0.5")
    return float(check_fractions(v, name, 1, low_open=False)[0])
