"""What the switch of BLAS threads costs inside a call: xlmvar's against a bare one.

Run on demand (not a test)::

    python benchmarks/bench_switch.py                  # N = 200, 600 calls of each kind
    python benchmarks/bench_switch.py --n 300 --calls 1000

A cold normal call at N = 200 (a covariance never seen: validated, factorised) switches
OpenBLAS to one thread around its Cholesky factorisation, which OpenBLAS threads from order
128 (:mod:`xlmvar.engine._threads`).  In one process on 2 BLAS threads, the call runs in
three configurations, in a random order call by call:

* ``1 thread``   - OpenBLAS set to one thread and xlmvar told so: no switch, no bookkeeping
  (a process started with ``OPENBLAS_NUM_THREADS=1``);
* ``xlmvar``     - the choice of threads as shipped (:func:`~xlmvar.engine._threads.blas_threads`);
* ``bare``       - the same choice with a bare switch: read the setting, set one thread, set
  it back (the C calls alone, none of the bookkeeping that keeps concurrent, nested and
  interrupted blocks right).

For the last two, the entry and the exit of the block are timed inside the call, where the
CPU caches hold the call's data and not the bookkeeping's code (each timing includes the
clock's own cost: the row "(the clock)" times an empty context, in a loop after the calls,
so a lower bound of it).  Printed: medians of the entry
and exit in microseconds, and the median per-call ratio of the whole call to ``1 thread``.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import xlmvar  # noqa: E402
from xlmvar.engine import _threads, _validation  # noqa: E402


class BareSwitch:
    """The switch alone, with none of the bookkeeping: read each pool's setting, set one
    thread for a small block, set the setting read back when it ends."""

    def __init__(self, switches, small: bool):
        self.switches, self.small = switches, small

    def __enter__(self):
        self.before = [get() for get, _ in self.switches]
        if self.small:
            for _, put in self.switches:
                put(1)

    def __exit__(self, *exc):
        if self.small:
            for (_, put), before in zip(self.switches, self.before):
                put(before)


def bare_choice(shipped, switches, wrap=None):
    """``blas_threads`` as ``shipped`` decides (switch or not), with a :class:`BareSwitch`
    where it would switch; ``wrap(block)`` around that block if given."""

    def choice(work, serial=False):
        block = shipped(work, serial)  # the same decision; the block is never entered
        if isinstance(block, contextlib.nullcontext):
            return block
        bare = BareSwitch(switches, work < _threads.SMALL_WORK)
        return bare if wrap is None else wrap(bare)

    return choice


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--calls", type=int, default=600)
    args = parser.parse_args(argv)
    n = args.n
    rng = np.random.default_rng(0)
    a = rng.standard_normal((2 * n, n)) * 0.01
    cov, x = a.T @ a / (2 * n), rng.standard_normal(n)
    xlmvar.decompose(x, cov.copy())  # imports, the libraries looked up
    default = _threads._blas_pools()[1]
    if default != 2 or not _threads._state["switches"]:
        sys.exit(f"needs an OpenBLAS on 2 threads (OPENBLAS_NUM_THREADS=2), found {default} thread(s)")
    switches = _threads._state["switches"]
    settings = [get() for get, _ in switches]  # each pool's own, put back after every call
    clock = time.perf_counter_ns
    spans = {f"{name} {side}": [] for name in ("xlmvar", "bare", "empty") for side in ("entry", "exit")}

    class Timed:
        def __init__(self, inner, name):
            self.inner, self.name = inner, name

        def __enter__(self):
            start = clock()
            self.inner.__enter__()
            spans[self.name + " entry"].append(clock() - start)

        def __exit__(self, *exc):
            start = clock()
            self.inner.__exit__(*exc)
            spans[self.name + " exit"].append(clock() - start)

    shipped = _validation.blas_threads

    def timed_xlmvar(work, serial=False):
        block = shipped(work, serial)
        return block if isinstance(block, contextlib.nullcontext) else Timed(block, "xlmvar")

    configs = {
        "1 thread": None,
        "xlmvar": timed_xlmvar,
        "bare": bare_choice(shipped, switches, lambda block: Timed(block, "bare")),
    }
    times = {name: [] for name in configs}
    names = list(configs)
    for k in range(args.calls):
        random.shuffle(names)
        for j, name in enumerate(names):
            fresh = cov * (1 + 1e-9 * (len(names) * k + j + 1))  # never seen: validated
            if name == "1 thread":
                for _, put in switches:
                    put(1)
                _threads._state["default"] = 1
            else:
                _validation.blas_threads = configs[name]
            try:
                start = time.perf_counter()
                xlmvar.decompose(x, fresh)
                times[name].append(time.perf_counter() - start)
            finally:
                _validation.blas_threads = shipped
                _threads._state["default"] = default
                for (_, put), setting in zip(switches, settings):
                    put(setting)
    for _ in range(args.calls):  # the clock's own cost around an empty context
        with Timed(contextlib.nullcontext(), "empty"):
            pass
    one = times["1 thread"]
    print(f"normal cold call, N = {n}, {args.calls} calls of each kind, median per-call ratio to 1 thread")
    print(f"{'configuration':14} {'call ms':>8} {'ratio':>6} {'entry us':>9} {'exit us':>8}")
    for name in configs:
        ratio = statistics.median(t / b for t, b in zip(times[name], one))
        entry = spans.get(f"{name} entry")
        exit_ = spans.get(f"{name} exit")
        cells = (f"{statistics.median(entry) / 1e3:9.1f} {statistics.median(exit_) / 1e3:8.1f}"
                 if entry else f"{'':9} {'':8}")
        print(f"{name:14} {statistics.median(times[name]) * 1e3:8.3f} {ratio:6.3f} {cells}")
    print(f"{'(the clock)':14} {'':8} {'':6} {statistics.median(spans['empty entry']) / 1e3:9.1f} "
          f"{statistics.median(spans['empty exit']) / 1e3:8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
