"""BLAS threads by problem size: the same public calls on 1 and 2 BLAS threads, N = 50 ... 2000.

Run on demand (not a test)::

    python benchmarks/bench_threads.py                 # 5 rounds, an idle machine
    python benchmarks/bench_threads.py --rounds 30 --calls 41 --n 50 100 200 500
    python benchmarks/bench_threads.py --busy          # one core kept busy by another process

Four configurations, each a fresh process started with ``OPENBLAS_NUM_THREADS`` set, run
round after round in an order rotated each round (so a machine that gets busier slows them
alike):

* ``1 thread``   - ``OPENBLAS_NUM_THREADS=1``;
* ``1 again``    - the same configuration a second time: its ratio to ``1 thread`` is the
  noise of the measurement (an A/A test);
* ``2 threads``  - ``OPENBLAS_NUM_THREADS=2`` with xlmvar's choice of threads by size
  (:mod:`xlmvar.engine._threads`: one thread below 1e9 operations);
* ``2, no choice`` - the same with the choice switched off (every call on 2 threads), as
  before issue 13.

Calls, through ``xlmvar.decompose`` on fresh arrays (wall-clock time, as a desk waits for
it): ``normal cold`` (a covariance never seen: validation, Cholesky), ``normal what-if``
(the same covariance content, new positions; below N = 250 a covariance is validated every
time, so this is a cold call there) and ``historical`` (T = 2500 periods).  Each time is
the median over rounds of the median of ``--calls`` calls (15) in a round; each ratio is the median over
rounds of the per-round ratio.  The goal: no call at N <= 500 slower on 2 threads than on 1.

Every process gets the same fixed ``malloc`` thresholds (``MALLOC_MMAP_THRESHOLD_``,
``MALLOC_TRIM_THRESHOLD_``).  glibc otherwise moves them with each process's history of
allocations: one process was measured paying 163 page faults a call at N = 200 (every
temporary of the size of the matrix freshly mapped) and running 2x slower than another
process of the same configuration that paid none - a difference of heaps, not of threads.

``--busy`` keeps one core busy with another process (a loop) while the calls run: the
machine a desk shares with other work, where a second BLAS thread waits for a core (the
stall of issue 13: 104 ms against 2 ms).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import json, statistics, sys, time
import numpy as np
sys.path.insert(0, {root!r})
import xlmvar
from xlmvar.engine import _threads
if {no_choice}:
    _threads.SMALL_WORK = 0.0  # every block on the default threads
    _threads.TINY_WORK = 0.0
rng = np.random.default_rng(0)
out = {{}}
for n in {ns}:
    a = rng.standard_normal((2 * n, n)) * 0.01
    cov = a.T @ a / (2 * n)
    r = rng.standard_normal((2500, n)) * 0.01
    x = rng.standard_normal(n)
    xlmvar.decompose(x, cov)  # imports, and the covariance validated once
    xlmvar.decompose(x, r, method="historical")
    def timed(f):
        t = time.perf_counter(); f(); return time.perf_counter() - t
    cold = [timed(lambda c=cov * (1 + 1e-9 * k): xlmvar.decompose(x, c)) for k in range(1, {calls} + 1)]
    whatif = [timed(lambda c=cov.copy(), y=rng.standard_normal(n): xlmvar.decompose(y, c)) for _ in range({calls})]
    hist = [timed(lambda c=r.copy(): xlmvar.decompose(x, c, method="historical")) for _ in range({calls})]
    out[n] = [statistics.median(cold), statistics.median(whatif), statistics.median(hist)]
print(json.dumps(out))
"""

CONFIGS = {"1 thread": ("1", False), "1 again": ("1", False), "2 threads": ("2", False), "2, no choice": ("2", True)}
#: The same in every process: see the module docstring.
MALLOC = {"MALLOC_MMAP_THRESHOLD_": str(32 << 20), "MALLOC_TRIM_THRESHOLD_": str(128 << 20)}
CALLS = ("normal cold", "normal what-if", "historical")


def run_child(threads: str, no_choice: bool, ns, calls: int = 15) -> dict:
    env = dict(os.environ, OPENBLAS_NUM_THREADS=threads, OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads, **MALLOC)
    code = CHILD.format(root=str(ROOT), no_choice=no_choice, ns=list(ns), calls=calls)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return {int(k): v for k, v in json.loads(out.stdout.strip().splitlines()[-1]).items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="*", default=[50, 100, 200, 500, 1000, 2000])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=15, help="calls of each kind per process (the median is taken)")
    parser.add_argument("--busy", action="store_true", help="keep one core busy with another process")
    args = parser.parse_args(argv)
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if args.busy else None
    try:
        names = list(CONFIGS)
        results = {name: [] for name in names}
        for k in range(args.rounds):
            for name in names[k % len(names):] + names[: k % len(names)]:
                results[name].append(run_child(*CONFIGS[name], args.n, args.calls))
    finally:
        if hog is not None:
            hog.kill()
    print(f"wall-clock ms, {'one core busy' if args.busy else 'idle machine'}, medians of {args.rounds} rounds "
          f"(each the median of {args.calls} calls); ratio = to 1 thread, the median of the per-round ratios")
    print(f"{'call':15} {'N':>5} {'1 thread':>9} {'1 again':>8} {'2 threads':>10} {'ratio':>6} "
          f"{'2, no choice':>13} {'ratio':>6}")
    slower = []
    for i, call in enumerate(CALLS):
        for n in args.n:
            med = {name: statistics.median(r[n][i] for r in results[name]) * 1e3 for name in CONFIGS}
            one = [r[n][i] for r in results["1 thread"]]
            again, ratio, free = (
                statistics.median(a[n][i] / b for a, b in zip(results[name], one))
                for name in ("1 again", "2 threads", "2, no choice")
            )
            print(f"{call:15} {n:5d} {med['1 thread']:9.3f} {again:8.2f} {med['2 threads']:10.3f} {ratio:6.2f} "
                  f"{med['2, no choice']:13.3f} {free:6.2f}")
            if n <= 500 and ratio > 1.1:
                slower.append(f"{call} N={n} ({ratio:.2f}x)")
    print("'1 again' is the ratio of a second 1-thread process to the first: the noise of a ratio")
    print("goal (no call at N <= 500 slower on 2 threads than on 1, 10% noise allowed): "
          + ("met" if not slower else "MISSED: " + ", ".join(slower)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
