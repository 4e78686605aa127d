"""A covariance's validation (its first, cold call) and its parts, against numpy's one-liners.

Run on demand (not a test)::

    python benchmarks/bench_validation.py                  # N = 100, 250, 500, 1000, 2000
    python benchmarks/bench_validation.py --n 500 1000 --rounds 15

Side by side, in one process, medians of interleaved rounds (wall clock), each on the BLAS
threads the validation gives it (one below 1e9 operations, :mod:`xlmvar.engine._threads`):

* ``cholesky``   - ``numpy.linalg.cholesky(S)``, the obvious factorisation;
* ``potrf``      - :func:`xlmvar.engine._lapack.potrf`, the same LAPACK routine called on a
  C-ordered copy (what the validation calls);
* ``S - S'``     - the symmetry check at once: ``max |S - S'|`` against ``1e-8 max|S|``;
* ``strips``     - :func:`xlmvar.engine._validation._check_symmetric`, in strips of 128 rows;
* ``cold call``  - ``xlmvar.decompose(x, S)`` on content never seen: conversion, symmetry,
  factorisation, the cache's copy and digests, the product and the figures;
* ``numpy's way`` - the same call with the two parts done numpy's way, as xlmvar did them
  before (the symmetry check at once; ``numpy.linalg.cholesky``, its factor kept as numpy
  returns it); the two kinds of call alternate, each on its own new content, and the ratio
  is the median of the per-pair ratios.

Ratios: numpy's way over xlmvar's.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import xlmvar  # noqa: E402
from xlmvar.engine import _lapack, _validation  # noqa: E402
from xlmvar.engine._threads import blas_threads, serial_cholesky  # noqa: E402

WHOLE = "S - S'"
NUMPY_WAY = "numpy's way"


def _timed(func) -> float:
    start = time.perf_counter()
    func()
    return time.perf_counter() - start


def _whole_symmetry(mat, name="cov"):
    """The symmetry check as it was: ``|S - S'|`` at once, against ``1e-8 max|S|``."""
    scale = max(float(mat.max()), -float(mat.min()), np.finfo(float).tiny)
    asym = mat - mat.T
    np.abs(asym, out=asym)
    if np.max(asym) > 1e-8 * scale:
        raise ValueError(f"{name}: is not symmetric")


def _numpy_factor(mat, name="cov"):
    """The factorisation as it was (of a positive definite matrix, as here): numpy's, on the
    validation's threads, its factor kept as numpy returns it (the normal method never reads
    it; the caches are cleared after each pair)."""
    n = mat.shape[0]
    with blas_threads(n**3 / 3.0, serial_cholesky(n)):
        return np.linalg.cholesky(mat)


def bench(n: int, rounds: int, rng) -> dict:
    a = rng.standard_normal((2 * n, n)) * 0.01
    s = a.T @ a / (2 * n)
    s = (s + s.T) / 2.0
    x = rng.standard_normal(n) * 1e6
    work = n**3 / 3.0
    times = {k: [] for k in ("cholesky", "potrf", WHOLE, "strips", "cold call", NUMPY_WAY)}
    xlmvar.decompose(x, s)  # the routine looked up, the first call's imports made
    factor, check = _validation._psd_factor, _validation._check_symmetric
    ratios = []
    for k in range(rounds):
        with blas_threads(work, serial_cholesky(n)):  # as the validation runs them
            times["cholesky"].append(_timed(lambda: np.linalg.cholesky(s)))
            times["potrf"].append(_timed(lambda: _lapack.potrf(s)))
        times[WHOLE].append(_timed(lambda: _whole_symmetry(s)))
        times["strips"].append(_timed(lambda: check(s, "cov")))
        pair = {}
        for kind in ("cold call", NUMPY_WAY)[:: 1 if k % 2 else -1]:
            numpy_way = kind == NUMPY_WAY
            _validation._psd_factor = _numpy_factor if numpy_way else factor
            _validation._check_symmetric = _whole_symmetry if numpy_way else check
            new = s * (1.0 + 1e-9 * (2 * k + numpy_way + 1))  # content never seen
            try:
                pair[kind] = _timed(lambda: xlmvar.decompose(x, new))
            finally:
                _validation._psd_factor, _validation._check_symmetric = factor, check
            times[kind].append(pair[kind])
        ratios.append(pair[NUMPY_WAY] / pair["cold call"])
        xlmvar.clear_caches()
    out = {key: statistics.median(v) for key, v in times.items()}
    out["call x"] = statistics.median(ratios)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="*", default=[100, 250, 500, 1000, 2000])
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    print(f"xlmvar {xlmvar.__version__}, numpy {np.__version__}, wall clock, medians of {args.rounds} rounds; ms")
    print(f"{'N':>6} {'cholesky':>9} {'potrf':>8} {'x':>5} {WHOLE:>8} {'strips':>8} {'x':>5} "
          f"{NUMPY_WAY:>12} {'cold call':>10} {'x':>5}")
    for n in args.n:
        m = bench(n, args.rounds if n < 2000 else max(3, args.rounds // 3), rng)
        print(f"{n:6d} {m['cholesky'] * 1e3:9.3f} {m['potrf'] * 1e3:8.3f} {m['cholesky'] / m['potrf']:5.1f} "
              f"{m[WHOLE] * 1e3:8.3f} {m['strips'] * 1e3:8.3f} {m[WHOLE] / m['strips']:5.1f} "
              f"{m[NUMPY_WAY] * 1e3:12.3f} {m['cold call'] * 1e3:10.3f} {m['call x']:5.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
