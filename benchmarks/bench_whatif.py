"""What a normal what-if call on a fresh array can cost at least: the floors, side by side.

Run on demand (not a test)::

    python benchmarks/bench_whatif.py                  # N = 500, 1000, 2000
    python benchmarks/bench_whatif.py --n 1000 --rounds 21

A what-if call (``xlmvar.decompose(positions, cov)`` with the content of a covariance seen
before, in a fresh array, and new positions) must multiply the matrix by the positions and
must know that the matrix is the one validated before (symmetric, positive semi-definite).
Each round makes a fresh copy of the matrix, as Excel or a caller hands one over, and times
on one BLAS thread, with the CPU clock:

* ``hot``     - ``cov @ x`` on an array in the CPU cache (best of 3 back to back): the
  yardstick of issue 13's goal (the what-if within 5x of it);
* ``fresh``   - ``cov @ x`` once on the fresh copy: what any call must do with its array;
* ``exact``   - the cache's one-pass check and product (``same_content_product``): every
  block compared bit for bit with the cached copy, then multiplied;
* ``call``    - the whole call, ``xlmvar.decompose`` (validation of the positions, the
  exact check and product, the figures);
* ``hash``    - a fused 128-bit hash of each block (xxh3, if the ``xxhash`` package is
  installed) and the product: an identity that reads only the fresh array.  Not used by
  xlmvar (a hash is not an exact identity); printed to show that even it is far from 5x.

Ratios are to ``hot``, medians of the per-round ratios.
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
from xlmvar.engine import _cache, _validation  # noqa: E402
from xlmvar.engine._threads import SMALL_WORK, blas_threads  # noqa: E402

try:
    import xxhash
except ImportError:  # optional: only the "hash" column needs it
    xxhash = None


def _timed(func) -> float:
    start = time.process_time()
    func()
    return time.process_time() - start


def _hashed_product(matrix: np.ndarray, vector: np.ndarray):
    """A 128-bit hash of ``matrix`` and ``matrix @ vector``, block by block (one read)."""
    digest = xxhash.xxh3_128()
    out = np.empty(matrix.shape[0])
    step = _cache._block_rows(matrix)
    for start in range(0, matrix.shape[0], step):
        block = matrix[start : start + step]
        digest.update(block)
        np.matmul(block, vector, out=out[start : start + step])
    return digest.digest(), out


def bench(n: int, rounds: int, rng) -> dict:
    a = rng.standard_normal((2 * n, n)) * 0.01
    cov = a.T @ a / (2 * n)
    x = rng.standard_normal(n) * 1e6
    xlmvar.clear_caches()
    stored = _validation.check_covariance(cov.copy())  # validated, cached: the cache's own copy
    kinds = ["fresh", "exact", "call"] + (["hash"] if xxhash else [])
    times = {k: [] for k in ["hot", *kinds]}
    ratios = {k: [] for k in kinds}
    with blas_threads(SMALL_WORK / 2):
        for _ in range(rounds):
            y = rng.standard_normal(n) * 1e6
            got = {}
            given = cov.copy()
            got["fresh"] = _timed(lambda: given @ y)
            given = cov.copy()
            got["exact"] = _timed(lambda: _cache.same_content_product(stored, given, y / 1e6))
            given = cov.copy()
            got["call"] = _timed(lambda: xlmvar.decompose(y, given))
            if xxhash:
                given = cov.copy()
                got["hash"] = _timed(lambda: _hashed_product(given, y))
            hot = min(_timed(lambda: given @ y) for _ in range(3))
            times["hot"].append(hot)
            for k in kinds:
                times[k].append(got[k])
                ratios[k].append(got[k] / hot)
    out = {k: statistics.median(v) for k, v in times.items()}
    out.update({f"{k} x": statistics.median(v) for k, v in ratios.items()})
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="*", default=[500, 1000, 2000])
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    kinds = ["fresh", "exact", "call"] + (["hash"] if xxhash else [])
    print(f"xlmvar {xlmvar.__version__}, numpy {np.__version__}, one BLAS thread, cpu clock, medians of "
          f"{args.rounds} rounds; ms and x hot" + ("" if xxhash else " (pip install xxhash for the hash column)"))
    print(f"{'N':>6} {'hot ms':>8} " + " ".join(f"{k + ' ms':>9} {'x':>5}" for k in kinds))
    for n in args.n:
        m = bench(n, args.rounds, rng)
        print(f"{n:6d} {m['hot'] * 1e3:8.3f} " + " ".join(f"{m[k] * 1e3:9.3f} {m[k + ' x']:5.1f}" for k in kinds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
