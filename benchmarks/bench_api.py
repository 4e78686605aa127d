"""Calls through the public API as a desk makes them: cold, repeated and what-if, per method.

Run on demand (not a test)::

    python benchmarks/bench_api.py                     # N = 100, 500, 1000, 2000; T = 2500
    python benchmarks/bench_api.py --n 500 --rounds 9
    python benchmarks/bench_api.py --cache             # why each cache exists or does not

Every call is ``xlmvar.decompose`` (VaR with its marginal and component figures) on *fresh*
arrays, as Excel hands them over (a new array object per call; making the array is not
timed):

* cold     - new content every round (the model perturbed), nothing cached;
* repeat   - the same content again (a copy of the model, the same positions);
* what-if  - the same model content (a copy), new positions;
* handle   - the what-if as the desk makes it: ``udfs.COMPONENTVAR(positions, handle, ...)``
  with a handle from one ``udfs.RISKMODEL`` of the model (Excel function overhead included),
  made right after the caches are cleared, as a desk's RISKMODEL cell runs before the cells
  that use it (RISKMODEL validates the model, so the handle's matrix is recognised without
  a comparison); its table was made earlier, so the call and its yardstick both start with the CPU caches
  flushed.

Each is printed as a multiple of one pass over the model: the best of 3 on one BLAS thread
on the same arrays right after the call (back to back: the array is then in the CPU cache,
"hot"; on the CPU clock timed on the calling thread's clock, so that an OpenBLAS worker
still spinning after an earlier two-thread call is not charged to it), and with ``--clock wall`` the faster of that and the best of 5 on BLAS's default
threads measured once every call of the method and size is timed (OpenBLAS's workers spin
for a while after a product, and would slow the call timed next), as the median of the
per-round ratios: ``returns @ positions`` (historical, Cornish-Fisher; T = 2500 periods) or
``cov @ positions`` (normal, Monte Carlo).  Monte Carlo draws 20,000 scenarios (the
default 100,000 at N = 2000 would not fit the benchmark's memory budget) and is compared
with ``cov @ positions`` only for scale.  Rounds are interleaved and the figure is the
median of ``--rounds``.  The clock is the CPU time of the process (``--clock cpu``, the
default) because on a shared machine wall time is mostly time spent waiting for a core:
every call below runs on one BLAS thread, so CPU time is its cost (Monte Carlo's simulation
runs on all BLAS threads and is counted for all of them).  A product on two threads costs
the same CPU time as on one (0.21 ms at N = 500 over 2,000 back-to-back products), but the
process's CPU clock, read around one product, misses part of the worker thread's time (it
reads about the wall time, 0.10 ms), so on the CPU clock the one-thread pass is the
yardstick; on the wall clock a product on two threads is faster, and counts.  "one pass
ms" is the yardstick used (the median over the rounds).
``--clock wall`` prints wall times instead.

The what-if call is also printed against one product on a *fresh* copy of the model, made
as the call's own array is, timed once on one BLAS thread ("fresh pass"): what the call
itself must at least do with the array Excel hands it.  The goal is judged against the hot
pass; an exact check that a fresh array holds the cached content reads it and the cached
copy (16 MB at N = 1000), which the hot product, reading 8 MB from the CPU cache, does not.

Goals (issue 13): historical and Cornish-Fisher cold calls within 12x one pass at N = 500
(10x at N = 2000); the normal what-if call within 5x one ``cov @ positions`` at N = 1000.

``--cache`` prints, for each cache, the cost of a hit (build the key, compare the content)
against the cost of the miss it saves, at several sizes: a cache exists only where a hit
is at least 10x faster than a miss.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import udfs  # noqa: E402
import xlmvar  # noqa: E402
from xlmvar.engine import _cache, _validation, risk  # noqa: E402
from xlmvar.engine._threads import SMALL_WORK, blas_threads  # noqa: E402
from xlmvar.excel import handles  # noqa: E402

GOALS = {("historical", 500, "cold"): 12.0, ("cornish-fisher", 500, "cold"): 12.0,
         ("historical", 2000, "cold"): 10.0, ("cornish-fisher", 2000, "cold"): 10.0,
         ("normal", 1000, "what-if"): 5.0, ("normal", 1000, "what-if handle"): 5.0}
DRAWS = 20_000


CLOCK = {"cpu": time.process_time, "wall": time.perf_counter}
_clock = time.process_time


def _timed(func) -> float:
    start = _clock()
    func()
    return _clock() - start


def _timed_on_one_thread(func) -> float:
    """A one-thread product: on the CPU clock, the time of the calling thread only, so that
    an idle OpenBLAS worker still spinning after an earlier two-thread call (a cold normal
    call from N ~ 1450, Monte Carlo) is not charged to the yardstick."""
    clock = time.thread_time if _clock is time.process_time else _clock
    start = clock()
    func()
    return clock() - start


_SCRATCH = np.zeros(64 << 17)  # 64 MiB, twice the last-level cache of the machines measured


def _flush_caches() -> None:
    """Evict the CPU caches by writing a buffer larger than them."""
    np.add(_SCRATCH, 1.0, out=_SCRATCH)


def _cov(rng, n):
    a = rng.standard_normal((2 * n, n)) * 0.01
    return a.T @ a / (2 * n)


def bench_method(method: str, n: int, t: int, rounds: int, rng) -> dict:
    """Median times (s) and median per-round ratios to one pass, for each kind of call."""
    history = method in ("historical", "cornish-fisher")
    model = rng.standard_normal((t, n)) * 0.01 if history else _cov(rng, n)
    options = {"draws": DRAWS} if method == "montecarlo" else {}
    x = rng.standard_normal(n) * 1e6
    times = {"pass": [], "cold pass": [], "fresh pass": [], "cold": [], "repeat": [], "what-if": [], "what-if handle": []}
    ratios = {"cold": [], "repeat": [], "what-if": [], "what-if fresh": [], "what-if handle": []}

    def one_pass(arr, v) -> float:  # best of 3 on 1 BLAS thread: the yardstick of the round
        with blas_threads(SMALL_WORK / 2):  # a block our thread choice runs on 1 thread
            return min(_timed_on_one_thread(lambda: arr @ v) for _ in range(3))

    hot = []  # (kind, seconds, yardstick of the round) of the calls judged against a hot pass

    def record(kind, arr, v, seconds, base=None):
        if base is None:  # judged against the hot pass, once its default-thread time is known
            hot.append((kind, seconds, one_pass(arr, v)))
        else:
            ratios[kind].append(seconds / base)
            times["cold pass"].append(base)
        times[kind].append(seconds)

    xlmvar.clear_caches()
    handles.clear_models()
    # the desk's path: one RISKMODEL (which validates the model), then PORTVAR etc. with it
    handle = udfs.RISKMODEL(model, method)
    table = handles.resolve_model(handle)
    xlmvar.decompose(x, model.copy(), method=method, **options)  # the model's validation, scenarios
    for _ in range(rounds):  # repeated and what-if calls on the model seen before
        same = model.copy()
        record("repeat", same, x, _timed(lambda: xlmvar.decompose(x, same, method=method, **options)))
        same, y = model.copy(), rng.standard_normal(n) * 1e6
        seconds = _timed(lambda: xlmvar.decompose(y, same, method=method, **options))
        record("what-if", same, y, seconds)
        other = model.copy()  # the product as the call meets its array: fresh, once, one thread
        with blas_threads(SMALL_WORK / 2):
            times["fresh pass"].append(_timed_on_one_thread(lambda: other @ y))
        ratios["what-if fresh"].append(seconds / times["fresh pass"][-1])
        # the handle's table was made earlier, so it is not in the CPU caches: both the call
        # and its yardstick start from memory (each after the caches are flushed)
        y = rng.standard_normal((n, 1)) * 1e6
        draws = DRAWS if method == "montecarlo" else None
        _flush_caches()
        with blas_threads(SMALL_WORK / 2):  # one thread: the faster yardstick on this machine
            base = _timed_on_one_thread(lambda: table @ y[:, 0])
        _flush_caches()
        call = _timed(lambda: udfs.COMPONENTVAR(y, handle, None, None, method, None, draws))
        record("what-if handle", table, y[:, 0], call, base)
    for k in range(rounds):  # cold calls last: new content (a Monte Carlo table evicts the last)
        new = model * (1.0 + 1e-9 * (k + 1))  # new content, still a valid model
        record("cold", new, x, _timed(lambda: xlmvar.decompose(x, new, method=method, **options)))
    # the yardstick on BLAS's default threads, measured once all calls are timed: its worker
    # threads spin for a while after each product, and a CPU clock would charge that spin to
    # the call timed next (measured: a historical cold call at N = 500 read 6.8 ms against
    # 2.0 ms right after a one-thread product)
    # It is a yardstick on the wall clock only: the CPU clock of the process does not see all
    # of a product on two threads (the worker's time joins the process's clock when that
    # thread is next ticked or scheduled out), and the best of 5 picks the most undercounted:
    # measured at N = 500, 0.10 ms "of CPU" for a product that costs 0.21 ms of CPU on one
    # thread or two (over 2,000 back-to-back products, their workers' spin included).
    default = min(_timed(lambda: model @ x) for _ in range(5)) if _clock is time.perf_counter else float("inf")
    for kind, seconds, base in hot:
        times["pass"].append(min(base, default))
        ratios[kind].append(seconds / min(base, default))
    out = {key: statistics.median(values) for key, values in times.items()}
    out.update({f"{key} x": statistics.median(values) for key, values in ratios.items()})
    return out


def run(ns, t, rounds, methods) -> list[str]:
    rng = np.random.default_rng(0)
    failures = []
    print(f"{'method':15} {'N':>5} {'one pass ms':>11} {'cold ms':>9} {'x':>6} {'repeat ms':>9} {'x':>6} "
          f"{'what-if ms':>10} {'x':>6} {'fresh pass':>10} {'x':>6} {'pass from RAM':>13} {'handle ms':>9} {'x':>6}")
    for method in methods:
        for n in ns:
            m = bench_method(method, n, t, rounds, rng)
            ratios = {k: m[f"{k} x"] for k in ("cold", "repeat", "what-if", "what-if fresh", "what-if handle")}
            marks = []
            for kind in ("cold", "repeat", "what-if", "what-if handle"):
                goal = GOALS.get((method, n, kind))
                if goal is not None:
                    ok = ratios[kind] <= goal
                    marks.append(f"{kind} goal {goal:g}x: {'met' if ok else 'MISSED'}")
                    if not ok:
                        failures.append(f"{method} N={n} {kind} {ratios[kind]:.1f}x > {goal:g}x")
            print(
                f"{method:15} {n:5d} {m['pass'] * 1e3:11.3f} {m['cold'] * 1e3:9.2f} {ratios['cold']:6.1f} "
                f"{m['repeat'] * 1e3:9.2f} {ratios['repeat']:6.1f} {m['what-if'] * 1e3:10.2f} {ratios['what-if']:6.1f} "
                f"{m['fresh pass'] * 1e3:10.3f} {ratios['what-if fresh']:6.1f} "
                f"{m['cold pass'] * 1e3:13.3f} {m['what-if handle'] * 1e3:9.2f} {ratios['what-if handle']:6.1f}"
                + (f"   ({'; '.join(marks)})" if marks else "")
            )
    return failures


def _median_time(func, rounds=15) -> float:
    func()
    return statistics.median(_timed(func) for _ in range(rounds))


def cache_table(rounds: int) -> None:
    """Hit (key + exact comparison) against miss, for each cache and for the methods that do not cache."""
    rng = np.random.default_rng(1)
    print("covariance validation cache (symmetry + PSD + Cholesky, once per distinct matrix); a what-if hit")
    print("checks each block's digest and multiplies it by the positions in one pass (lookup_product),")
    print("against one hot cov @ x")
    print(f"{'N':>6} {'miss ms':>9} {'hit ms':>9} {'miss/hit':>9} {'what-if hit ms':>14} {'x cov @ x':>9}")
    for n in (10, 20, 40, 100, 200, 300, 500, 1000, 2000):
        s = _cov(rng, n)
        fresh = s.copy()  # the same content in another array, as the next cell hands it over

        def miss():
            _validation.as_matrix(fresh, "cov")
            _validation._check_symmetric(fresh, "cov")
            _validation._psd_factor(fresh, "cov")

        miss = _median_time(miss, rounds)
        split = _cache.key_of(s)
        cache = _cache.ContentCache("probe", digests=True)  # as the covariance cache is made
        cache.store(split[1], split[0], object())
        hit = _median_time(lambda: cache.lookup(*reversed(_cache.key_of(fresh))), rounds)
        v = rng.standard_normal(n)
        with blas_threads(SMALL_WORK / 2):  # as the normal method runs it
            what_if = _median_time(lambda: cache.lookup_product(_cache.key_of(fresh)[1], fresh, v), rounds)
            product = _median_time(lambda: fresh @ v, rounds)
        print(f"{n:6d} {miss * 1e3:9.3f} {hit * 1e3:9.3f} {miss / hit:9.1f} {what_if * 1e3:14.3f} {what_if / product:9.1f}"
              + ("   <- cached" if n >= _validation.COV_CACHE_MIN_SIZE else "   <- not cached"))
    print("\nwhole decompositions: would a cache of the result pay? (hit = key + comparison of every input)")
    print(f"{'method':15} {'N':>6} {'miss ms':>9} {'hit ms':>9} {'miss/hit':>9}")
    for method in ("normal", "historical", "cornish-fisher", "montecarlo"):
        for n in (10, 100, 500):
            history = method in ("historical", "cornish-fisher")
            model = rng.standard_normal((2500, n)) * 0.01 if history else _cov(rng, n)
            options = {"draws": DRAWS} if method == "montecarlo" else {}
            x = rng.standard_normal(n)
            xlmvar.clear_caches()
            xlmvar.decompose(x, model, method=method, **options)  # covariance and scenarios cached
            fresh = model.copy()
            miss = _median_time(lambda: risk.decompose.__wrapped__(x, fresh, method=method, **options), rounds)
            cache = _cache.ContentCache("probe")
            args, kwargs = (x, model), dict(method=method, **options)
            split = _cache.key_of(*args, **kwargs)
            cache.store(split[1], split[0], object())
            hit = _median_time(lambda: cache.lookup(*reversed(_cache.key_of(x, fresh, **kwargs))), rounds)
            cached = risk._pays_to_cache(x, model, method=method)
            print(f"{method:15} {n:6d} {miss * 1e3:9.3f} {hit * 1e3:9.3f} {miss / hit:9.1f}   <- {'cached' if cached else 'not cached'}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="*", default=[100, 500, 1000, 2000])
    parser.add_argument("--t", type=int, default=2500, help="periods of the returns history (default 2500)")
    parser.add_argument("--rounds", type=int, default=9, help="interleaved rounds; the median is printed (default 7)")
    parser.add_argument("--methods", nargs="*", default=["historical", "cornish-fisher", "normal", "montecarlo"])
    parser.add_argument("--cache", action="store_true", help="print the cache table instead")
    parser.add_argument("--clock", choices=sorted(CLOCK), default="cpu",
                        help="cpu: CPU time of the process (default; robust when other work shares the cores); wall")
    args = parser.parse_args(argv)
    global _clock
    _clock = CLOCK[args.clock]
    from xlmvar.engine._threads import blas_default_threads

    print(f"xlmvar {xlmvar.__version__}, numpy {np.__version__}, BLAS default threads {blas_default_threads()}, "
          f"medians of {args.rounds} rounds, {args.clock} clock")
    if args.cache:
        cache_table(args.rounds)
        return 0
    failures = run(args.n, args.t, args.rounds, args.methods)
    print("goals: " + ("all met" if not failures else "MISSED: " + "; ".join(failures)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
