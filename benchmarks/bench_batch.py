"""Benchmark ``xlmvar batch``: a generated firm book, in-process and on a 2-worker Dask cluster.

Run on demand (not a test)::

    python benchmarks/bench_batch.py            # 10^7 positions, 1,000 assets, 2,500 scenarios
    python benchmarks/bench_batch.py --quick    # 10^5 positions
    python benchmarks/bench_batch.py --positions 3000000 --workers 4

The book is written once to a temporary folder as Parquet (row groups of 10^6 positions:
integer id, 20 desks, 1,000 assets, signed amounts) with a Parquet scenario table (Student-t
returns on a 5-factor structure).  Each configuration then runs :func:`xlmvar.batch.run`
(historical VaR, ES and component VaR by desk) in a fresh Python process, so that its peak
memory is its own: ``ru_maxrss`` of that process, and on the cluster also the largest peak of
the worker processes (asked of the workers before the cluster closes) and their sum.  Time
is wall-clock for the whole job, reading and writing included, cluster start-up excluded
(reported separately).  Both runs must agree to 1e-10; the script says so.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def parse(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--positions", type=int, default=10_000_000, help="positions (default 10^7)")
    parser.add_argument("--assets", type=int, default=1000, help="assets (default 1,000)")
    parser.add_argument("--scenarios", type=int, default=2500, help="scenarios (default 2,500)")
    parser.add_argument("--workers", type=int, default=2, help="Dask workers (default 2)")
    parser.add_argument("--quick", action="store_true", help="10^5 positions")
    parser.add_argument("--run", choices=["inprocess", "cluster"], help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def generate(folder: Path, positions: int, assets: int, scenarios: int, seed: int = 14) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    names = [f"A{i:04d}" for i in range(assets)]
    loadings = rng.normal(0, 0.006, size=(assets, 5))
    returns = rng.standard_t(4, size=(scenarios, 5)) @ loadings.T + rng.normal(0, 0.008, size=(scenarios, assets))
    pq.write_table(pa.table({n: returns[:, i] for i, n in enumerate(names)}), folder / "scenarios.parquet")
    desks = pa.array([f"Desk{d:02d}" for d in range(20)])
    asset_names = pa.array(names)
    schema = pa.schema([("id", pa.int64()), ("desk", pa.dictionary(pa.int32(), pa.string())),
                        ("asset", pa.dictionary(pa.int32(), pa.string())), ("amount", pa.float64())])
    with pq.ParquetWriter(folder / "positions.parquet", schema) as writer:
        for start in range(0, positions, 1_000_000):
            size = min(1_000_000, positions - start)
            writer.write_table(pa.table({
                "id": np.arange(start, start + size),
                "desk": pa.DictionaryArray.from_arrays(pa.array(rng.integers(0, 20, size), pa.int32()), desks),
                "asset": pa.DictionaryArray.from_arrays(pa.array(rng.integers(0, assets, size), pa.int32()), asset_names),
                "amount": np.round(rng.normal(0, 1e5, size), 2),
            }, schema=schema))


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def child(args) -> None:
    """One configuration, in this (fresh) process; prints a JSON line."""
    from xlmvar.batch import run

    folder, out = args.folder, {}
    kwargs = {}
    if args.run == "cluster":
        from distributed import Client, LocalCluster

        start = time.perf_counter()
        cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=":0")
        out["startup_s"] = time.perf_counter() - start
        kwargs["scheduler"] = cluster.scheduler_address
    for key in ("seconds", "warm_seconds"):  # the first run pays the imports (on the workers too)
        start = time.perf_counter()
        table = run(folder / "positions.parquet", folder / "scenarios.parquet", "desk", **kwargs)
        out[key] = time.perf_counter() - start
    table.to_parquet(folder / f"result-{args.run}.parquet")
    out["peak_mb"] = _peak_mb()
    if args.run == "cluster":
        with Client(cluster) as client:
            workers = client.run(lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0)
        out["worker_peak_mb"] = max(workers.values())
        out["workers_total_mb"] = sum(workers.values())
        cluster.close()
    print(json.dumps(out))


def main(argv=None) -> int:
    args = parse(argv)
    if args.run:
        child(args)
        return 0
    n = 100_000 if args.quick else args.positions
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        start = time.perf_counter()
        generate(folder, n, args.assets, args.scenarios)
        size = (folder / "positions.parquet").stat().st_size / 2**20
        print(f"generated {n:,} positions ({size:,.0f} MB Parquet), {args.assets:,} assets, "
              f"{args.scenarios:,} scenarios in {time.perf_counter() - start:.1f} s")
        results = {}
        for mode in ("inprocess", "cluster"):
            cmd = [sys.executable, __file__, "--run", mode, "--folder", str(folder), "--workers", str(args.workers)]
            line = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
            results[mode] = json.loads(line)
        r = results["inprocess"]
        print(f"in-process:             {r['seconds']:6.1f} s (again: {r['warm_seconds']:.1f} s), peak memory {r['peak_mb']:,.0f} MB")
        r = results["cluster"]
        print(f"Dask, {args.workers} workers (local): {r['seconds']:6.1f} s (again: {r['warm_seconds']:.1f} s; "
              f"+ {r['startup_s']:.1f} s cluster start), "
              f"client peak {r['peak_mb']:,.0f} MB, worker peak {r['worker_peak_mb']:,.0f} MB "
              f"(all workers {r['workers_total_mb']:,.0f} MB)")
        import numpy as np
        import pandas as pd

        a = pd.read_parquet(folder / "result-inprocess.parquet").select_dtypes("number").to_numpy(float)
        b = pd.read_parquet(folder / "result-cluster.parquet").select_dtypes("number").to_numpy(float)
        diff = float(np.max(np.abs(a - b) / np.maximum(np.abs(a), 1e-300)))
        print(f"largest relative difference between the two: {diff:.1e} ({'OK' if diff <= 1e-10 else 'ABOVE 1e-10'})")
        print(f"firm VaR {a[-1, 1]:,.0f}, ES {a[-1, 2]:,.0f} (95%, historical, 1 period)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
