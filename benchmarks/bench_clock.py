"""What the CPU clock of a process sees of a product on two BLAS threads.

Run on demand (not a test)::

    python benchmarks/bench_clock.py                   # N = 500, T = 2500
    python benchmarks/bench_clock.py --n 1000 --t 1000

``returns @ positions`` timed three ways, on one BLAS thread and on two:

* ``around one`` - the process's CPU clock (``time.process_time``) read just before and
  just after one product, the median of 50: how ``bench_api.py`` times a call;
* ``wall`` - the wall clock around one product, the median of 50;
* ``per product over 5,000`` - the CPU clock over 5,000 back-to-back products, divided by
  5,000: the CPU time a product costs (what the clock has not yet seen of the worker at
  the end, at most a scheduler tick, is below a microsecond a product).

On one thread the three agree within the noise.  On two, "around one" reads about the wall
time, less than a product costs on one thread: the worker thread's time joins the
process's clock only when that thread is next ticked or scheduled out, after the clock was
read.  This is why ``bench_api.py`` judges CPU-clock ratios against the one-thread pass.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from xlmvar.engine._threads import SMALL_WORK, blas_default_threads, blas_threads  # noqa: E402


def _median(clock, func, k=50) -> float:
    times = []
    for _ in range(k):
        start = clock()
        func()
        times.append(clock() - start)
    return statistics.median(times)


def _per_product(func, k=5000) -> float:
    time.sleep(0.5)  # the workers of earlier products asleep
    start = time.process_time()
    for _ in range(k):
        func()
    return (time.process_time() - start) / k


def measure(r: np.ndarray, x: np.ndarray) -> dict:
    def one():
        return r @ x

    return {
        "around one": _median(time.process_time, one),
        "wall": _median(time.perf_counter, one),
        "per product over 5,000": _per_product(one),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--t", type=int, default=2500)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    r, x = rng.standard_normal((args.t, args.n)), rng.standard_normal(args.n)
    rows = {}
    with blas_threads(SMALL_WORK / 2):  # one thread
        rows["1 thread"] = measure(r, x)
    if blas_default_threads() > 1:
        with blas_threads(SMALL_WORK * 2):  # BLAS's default threads
            rows[f"{blas_default_threads()} threads"] = measure(r, x)
    print(f"returns @ positions, {args.t} x {args.n}, ms")
    print(f"{'':10} " + " ".join(f"{k:>24}" for k in next(iter(rows.values()))))
    for name, row in rows.items():
        print(f"{name:10} " + " ".join(f"{v * 1e3:24.3f}" for v in row.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
