"""Monte Carlo throughput at N = 500 assets: draws per second, generator and full decomposition.

Run: ``python benchmarks/bench_montecarlo.py [--assets 500] [--draws 100000] [--repeat 3]``

The covariance is a generated positive definite one-factor-plus-sectors model (daily vols
of 1-3%), so Cholesky is used; ``--singular`` makes it rank-deficient (eigen factor).
Each timing is the best of ``--repeat`` runs with the scenario memo cleared, i.e. a cold
recalculation of one Monte Carlo formula.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from xlmvar.engine import simulation  # noqa: E402


def generated_cov(n: int, seed: int = 0, singular: bool = False) -> np.ndarray:
    """A PSD daily covariance: market + 10 sectors + idiosyncratic, vols about 1-3%."""
    rng = np.random.default_rng(seed)
    loadings = np.column_stack([rng.uniform(0.5, 1.5, n), rng.normal(0, 0.5, (n, 10))]) * 0.01
    idio = rng.uniform(0.005, 0.02, n) ** 2
    if singular:
        idio[: n // 2] = 0.0  # half the assets spanned by the 11 factors: rank < n
    cov = loadings @ loadings.T + np.diag(idio)
    return (cov + cov.T) / 2


def best_of(repeat: int, fn):
    times = []
    for _ in range(repeat):
        simulation.clear_cache()
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assets", type=int, default=500)
    parser.add_argument("--draws", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--singular", action="store_true")
    args = parser.parse_args(argv)

    n, d = args.assets, args.draws
    cov = generated_cov(n, singular=args.singular)
    x = np.random.default_rng(1).normal(1e6, 5e5, n)
    print(f"Monte Carlo benchmark: {n} assets, {d:,} draws, best of {args.repeat} "
          f"({'singular, eigen factor' if args.singular else 'positive definite, Cholesky'})")
    print(f"scenario table {d * n * 8 / 2**20:,.0f} MB")

    rows = []
    for label, dof in (("normal", None), ("student-t dof=5", 5)):
        t_gen, _ = best_of(args.repeat, lambda: simulation.simulate_returns(cov, d, dof=dof))
        t_dec, dec = best_of(args.repeat, lambda: simulation.decompose(x, cov, "var", 0.99, 1, draws=d, dof=dof))
        t_es, es = best_of(args.repeat, lambda: simulation.decompose(x, cov, "es", 0.99, 1, draws=d, dof=dof))
        t_se, se = best_of(args.repeat, lambda: simulation.var_standard_error(x, cov, 0.99, draws=d, dof=dof))
        assert abs(dec.component.sum() - dec.total) <= 1e-9 * abs(dec.total)
        rows.append((label, "simulate_returns", t_gen, None))
        rows.append((label, "decompose VaR 99%", t_dec, f"VaR {dec.total:,.0f}"))
        rows.append((label, "decompose ES 99%", t_es, f"ES {es.total:,.0f}"))
        rows.append((label, "var_standard_error", t_se, f"se {se:,.0f}"))

    width = max(len(r[0]) + len(r[1]) for r in rows) + 3
    for label, what, seconds, note in rows:
        name = f"{label}: {what}"
        extra = f"   {note}" if note else ""
        print(f"  {name:<{width}} {seconds:7.3f} s  {d / seconds:12,.0f} draws/s{extra}")

    simulation.clear_cache()
    start = time.perf_counter()
    simulation.decompose(x, cov, "var", 0.99, 1, draws=d)
    cold = time.perf_counter() - start
    start = time.perf_counter()
    simulation.decompose(x * 1.01, cov, "var", 0.99, 1, draws=d)
    warm = time.perf_counter() - start
    print(f"  same model again (memo hit, e.g. the next formula on the sheet): {warm:.3f} s vs {cold:.3f} s cold")


if __name__ == "__main__":
    main()
