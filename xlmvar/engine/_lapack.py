"""The Cholesky factorisation by LAPACK's ``dpotrf`` itself, without numpy's copies.

``numpy.linalg.cholesky`` copies a C-ordered matrix into Fortran order, calls LAPACK's
``dpotrf``, copies the factor back and zeroes its upper triangle, reading and writing across
the rows of the matrix: in a loop of factorisations of one matrix at N = 500 those copies
cost 2.7 ms around a 1.5 ms factorisation (numpy 2.4, OpenBLAS 0.3.31, one thread); on a
covariance never seen, where fresh memory costs its own, the factorisation takes 1.1-1.8x
less time this way, and a cold call 1.25-1.8x less from N = 500
(``benchmarks/bench_validation.py``).
:func:`potrf` calls the ``dpotrf`` numpy's own ``linalg`` calls (found through its
extension module, so the same library and the same bits) on a plain C-ordered copy: that
copy, read as Fortran's column-major array, is the matrix transposed, so LAPACK's lower
factor ``L`` of it is left in the copy's upper triangle as ``L'``.  For a symmetric matrix
``L`` is exactly ``numpy.linalg.cholesky``'s factor, bit for bit; a matrix that is symmetric
only to rounding (validation accepts ``|S_ij - S_ji| <= 1e-8 max|S|``) is factorised from
its upper triangle, where numpy reads the lower.

The routine is looked up once, by the names numpy's BLAS builds give it (``scipy_dpotrf_64_``
in numpy's wheels, ``dpotrf_64_``, ``dpotrf_``): through numpy's ``linalg`` extension (on
Linux and macOS a lookup there searches the libraries it loaded), then in the OpenBLAS
library files numpy's wheels ship beside it (``numpy.libs``, ``numpy/.dylibs``: on Windows a
lookup finds only a file's own exports).  It is used only after a check: on two matrices
(one of order 3, one of 80, past OpenBLAS's blocking) it must give ``numpy.linalg.cholesky``'s
factor to the last bit and refuse a matrix that is not positive definite.  Integers are
passed as 64-bit: on a little-endian machine an LP64 library reads their low half, the same
value.  Without ctypes, on a big-endian machine, or where the routine is not found or fails
the check (Pyodide, a BLAS that exports none of these names), :func:`potrf` calls
``numpy.linalg.cholesky`` on ``mat'`` instead (the same upper triangle read, the same
routine, the same bits), at numpy's cost; so it does for a matrix of any other type than
float64 or integers (float32, stacked matrices: numpy's own results and errors).

The threads of the factorisation are the caller's business (:func:`~._threads.blas_threads`):
the routine is numpy's BLAS's, whose thread pool that module switches.
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

import numpy as np

__all__ = ["potrf", "cholesky_lower"]

_NAMES = ("scipy_dpotrf_64_", "dpotrf_64_", "scipy_dpotrf_", "dpotrf_")
_ROUTINE: list = []  # [the checked dpotrf through ctypes, or None], found on first use
_lock = threading.Lock()


def _kms(n: int) -> np.ndarray:
    """A symmetric positive definite test matrix: ``0.5^|i-j| + i/n`` on the diagonal."""
    i = np.arange(n)
    return 0.5 ** np.abs(np.subtract.outer(i, i)) + np.diag(i / n)


def _call(routine, work: np.ndarray) -> int:
    """LAPACK's ``info`` of ``dpotrf('L', n, work, n)`` on a C-contiguous square ``work``."""
    import ctypes

    n, info = ctypes.c_int64(work.shape[0]), ctypes.c_int64(0)
    # the trailing 1 is the length of "L" that a Fortran-compiled LAPACK expects (C ignores it)
    routine(b"L", ctypes.byref(n), work.ctypes.data, ctypes.byref(n), ctypes.byref(info), 1)
    return int(info.value)


def _passes_check(routine) -> bool:
    """True if ``routine`` factorises as ``numpy.linalg.cholesky`` does, bit for bit, and
    reports a matrix that is not positive definite."""
    for n in (3, 80):
        s = _kms(n)
        work = s.copy()
        if _call(routine, work) != 0 or not np.array_equal(np.triu(work).T, np.linalg.cholesky(s)):
            return False
    indefinite = np.array([[1.0, 2.0], [2.0, 1.0]])
    return _call(routine, indefinite) == 2


def _library_files() -> list:
    """Where numpy's ``dpotrf`` may be found: its ``linalg`` extension (and, on Linux and
    macOS, the libraries that loaded with it), then the OpenBLAS files its wheels ship."""
    from numpy.linalg import _umath_linalg

    package = Path(np.__file__).parent
    shipped = [p for folder in (package.parent / "numpy.libs", package / ".dylibs") if folder.is_dir()
               for p in sorted(folder.iterdir()) if "openblas" in p.name.lower()]
    return [_umath_linalg.__file__, *map(str, shipped)]


def _load():
    """numpy's own ``dpotrf`` through ctypes, checked; ``None`` where it cannot be used."""
    if sys.byteorder != "little":  # 64-bit integers read as 32-bit ones keep their value
        return None
    try:
        import ctypes

        files = _library_files()
    except Exception:  # no ctypes (Pyodide), no such module
        return None
    for file in files:
        try:
            library = ctypes.CDLL(file)
        except Exception:  # a loader that refuses it
            continue
        for name in _NAMES:
            try:
                routine = library[name]
            except (AttributeError, OSError):
                continue
            routine.restype = None
            routine.argtypes = (ctypes.c_char_p, *(ctypes.c_void_p,) * 4, ctypes.c_size_t)
            try:
                if _passes_check(routine):
                    return routine
            except Exception:  # a routine that does not behave as dpotrf: not this one
                continue
    return None


def _routine():
    if not _ROUTINE:
        with _lock:
            if not _ROUTINE:
                _ROUTINE.append(_load())
    return _ROUTINE[0]


def _after_fork() -> None:
    """In a forked child: a new lock (another thread may have held it while loading)."""
    global _lock
    _lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


def potrf(mat: np.ndarray) -> np.ndarray:
    """The Cholesky factorisation of a symmetric positive definite matrix, LAPACK's way.

    Parameters
    ----------
    mat : ndarray, shape (n, n), float64
        Symmetric (the upper triangle is read) and finite.  Real matrices only: a complex
        one is factorised as numpy factorises its transpose.

    Returns
    -------
    ndarray, shape (n, n)
        A new array of its own (no view) whose upper triangle (with the diagonal) is
        ``U = L'``, where ``L`` is the lower-triangular factor with ``L L' = mat``; below the
        diagonal it holds ``mat``'s own entries, or zeros (:func:`cholesky_lower` reads
        ``L`` from it).

    Raises
    ------
    numpy.linalg.LinAlgError
        If ``mat`` is not positive definite (a leading minor is not positive).

    Cost: a copy of ``mat`` and the ``n^3 / 3`` multiply-adds of ``dpotrf``, on the BLAS
    threads in force.
    """
    routine = _routine()
    mat = np.asarray(mat)
    ours = mat.dtype == np.float64 or mat.dtype.kind in "biu"
    if routine is None or not ours or mat.ndim != 2 or mat.shape[0] != mat.shape[1]:
        # numpy's factor of mat' reads mat's upper triangle, as dpotrf does below; its
        # transpose, copied in its own order, is an array of its own to keep
        flip = np.swapaxes(mat, -1, -2) if mat.ndim >= 2 else mat
        lower = np.linalg.cholesky(flip)  # numpy's errors for what it refuses
        return np.array(np.swapaxes(lower, -1, -2), order="K", copy=True)
    work = np.array(mat, dtype=np.float64, order="C", copy=True)
    if work.size and _call(routine, work) != 0:
        raise np.linalg.LinAlgError("Matrix is not positive definite")
    return work


def cholesky_lower(factorisation: np.ndarray) -> np.ndarray:
    """``L`` (lower triangular, ``L L' = mat``) from :func:`potrf`'s result: a new array."""
    return np.triu(factorisation).T
