"""Benchmark the history-based decompositions against one pass over the history.

Run on demand (not a test)::

    python benchmarks/bench_history.py                 # N = 2000 assets, T = 2500 periods
    python benchmarks/bench_history.py --n 500 --t 1000
    python benchmarks/bench_history.py --threads 1     # single-threaded BLAS

For the historical and the Cornish-Fisher methods it times the full decomposition - VaR with
its marginal and component figures, then ES with its own - through the public
``decompose`` calls, argument validation included, and prints each as a multiple of one
``returns @ positions`` (the P&L, the least any method must do) measured in the same run, with
one ``np.cov`` of the same data as a second yardstick.  The target is within 10x of one pass.

Times are the best of ``--repeats`` interleaved rounds (``time.perf_counter``), so a machine
that gets busier during the run slows the yardstick and the cases alike (``np.cov``, much
heavier, is timed on its own, best of 3).  On a small shared machine a multi-threaded BLAS
makes the one-pass yardstick jumpy; ``--threads 1`` gives steadier ratios.  The "[maths only]"
lines repeat the full decompositions with ``check_returns`` made a no-op, to show how much of
the time is argument validation (a copy and a finiteness scan of the whole table).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from unittest import mock

TARGET = 10.0
ROOT = Path(__file__).resolve().parent.parent


def parse(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="assets (default 2000)")
    parser.add_argument("--t", type=int, default=2500, help="periods (default 2500)")
    parser.add_argument("--repeats", type=int, default=25, help="timed rounds (default 25)")
    parser.add_argument("--seed", type=int, default=20240601, help="random seed of the data")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="BLAS threads (default: the library's choice); set before numpy is loaded",
    )
    return parser.parse_args(argv)


def best_times(functions: dict, repeats: int) -> dict:
    """Best wall-clock time of each function over ``repeats`` interleaved rounds."""
    for function in functions.values():  # warm-up
        function()
    best = {}
    for _ in range(repeats):
        for name, function in functions.items():
            start = time.perf_counter()
            function()
            elapsed = time.perf_counter() - start
            best[name] = min(best.get(name, elapsed), elapsed)
    return best


def generate(np, n: int, t: int, seed: int):
    """Fat-tailed returns with a factor structure (T x N, C order) and signed positions."""
    rng = np.random.default_rng(seed)
    factors = 0.01 * rng.standard_t(5, size=(t, 5))
    loadings = rng.normal(0.0, 0.5, size=(5, n))
    returns = factors @ loadings + 0.005 * rng.standard_t(5, size=(t, n)) + 0.0003
    positions = rng.normal(1.0, 1.0, size=n) * 1e4
    return np.ascontiguousarray(returns), positions


def full(module, positions, returns):
    """VaR (total, marginal, component) then ES (the same), as a risk report asks."""
    return module.decompose(positions, returns, "var"), module.decompose(positions, returns, "es")


def _no_validation(returns, size=None, name="returns", min_rows=2):
    return returns


def without_validation(historical, function):
    """``function`` with ``check_returns`` made a no-op: the engine's own cost."""

    def run():
        with mock.patch.object(historical, "check_returns", _no_validation):
            return function()

    return run


def main(argv=None) -> int:
    args = parse(argv)
    if args.threads is not None:
        for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[name] = str(args.threads)
    import numpy as np

    sys.path.insert(0, str(ROOT))
    from xlmvar.engine import historical, modified
    from xlmvar.engine._validation import check_returns

    returns, positions = generate(np, args.n, args.t, args.seed)
    # np.cov is heavy (an n x n product and a centred copy): timed on its own first, so that
    # its memory traffic does not disturb the light cases interleaved below
    cov = best_times({"cov": lambda: np.cov(returns, rowvar=False)}, 3)["cov"]
    cases = {
        "one returns @ positions": lambda: returns @ positions,
        "argument validation (check_returns)": lambda: check_returns(returns, args.n),
        "historical VaR, kernel": lambda: historical.decompose(positions, returns, "var"),
        "historical VaR, scenario": lambda: historical.decompose(
            positions, returns, "var", smoothing="scenario"
        ),
        "historical ES": lambda: historical.decompose(positions, returns, "es"),
        "historical full (VaR + ES)": lambda: full(historical, positions, returns),
        "Cornish-Fisher VaR": lambda: modified.decompose(positions, returns, "var"),
        "Cornish-Fisher ES": lambda: modified.decompose(positions, returns, "es"),
        "Cornish-Fisher full (VaR + ES)": lambda: full(modified, positions, returns),
    }
    for name in [name for name in cases if name.endswith("(VaR + ES)")]:
        cases[f"{name} [maths only]"] = without_validation(historical, cases[name])

    best = {"one np.cov (yardstick)": cov, **best_times(cases, args.repeats)}
    one_pass = best["one returns @ positions"]
    threads = "library default" if args.threads is None else args.threads
    print(
        f"N = {args.n} assets, T = {args.t} periods, best of {args.repeats} interleaved "
        f"rounds, BLAS threads: {threads}"
    )
    print(f"{'case':44s} {'time':>12s} {'x pass':>7s} {'x cov':>7s}")
    print("-" * 74)
    for name, seconds in best.items():
        print(f"{name:44s} {seconds * 1e3:9.3f} ms {seconds / one_pass:6.1f}x {seconds / cov:7.3f}")
    print("-" * 74)
    for name, seconds in best.items():
        if "(VaR + ES)" in name:
            ratio = seconds / one_pass
            status = "within" if ratio <= TARGET else "OVER"
            print(f"{name}: {ratio:.1f}x one pass - {status} the {TARGET:g}x target")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
