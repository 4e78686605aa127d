"""What a normal what-if call on a fresh array costs, against its floors, side by side.

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
* ``exact``   - the one-pass check and product with an exact check
  (``same_content_product`` without digests): every block compared bit for bit with the
  cached copy (C's memcmp) right after it is multiplied - what xlmvar does without xxhash;
* ``digest``  - the same with the cache's block digests (XXH3-128, seeded per process):
  every block multiplied, then its digest checked, reading the fresh array only - what
  xlmvar does;
* ``call``    - the whole call, ``xlmvar.decompose`` (validation of the positions, the
  digest check and product, the figures).

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

def _timed(func) -> float:
    start = time.process_time()
    func()
    return time.process_time() - start


def bench(n: int, rounds: int, rng) -> dict:
    a = rng.standard_normal((2 * n, n)) * 0.01
    cov = a.T @ a / (2 * n)
    x = rng.standard_normal(n) * 1e6
    xlmvar.clear_caches()
    stored = _validation.check_covariance(cov.copy())  # validated, cached: the cache's own copy
    digests = _cache.block_digests(stored)
    kinds = ["fresh", "exact", "digest", "call"]
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
            got["digest"] = _timed(lambda: _cache.same_content_product(stored, given, y / 1e6, digests))
            given = cov.copy()
            got["call"] = _timed(lambda: xlmvar.decompose(y, given))
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
    kinds = ["fresh", "exact", "digest", "call"]
    print(f"xlmvar {xlmvar.__version__}, numpy {np.__version__}, one BLAS thread, cpu clock, medians of "
          f"{args.rounds} rounds; ms and x hot")
    print(f"{'N':>6} {'hot ms':>8} " + " ".join(f"{k + ' ms':>9} {'x':>5}" for k in kinds))
    for n in args.n:
        m = bench(n, args.rounds, rng)
        print(f"{n:6d} {m['hot'] * 1e3:8.3f} " + " ".join(f"{m[k] * 1e3:9.3f} {m[k + ' x']:5.1f}" for k in kinds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
