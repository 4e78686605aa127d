"""The Dask distributed path of the batch job: aggregation on the workers, P&L as a
distributed matrix product.  Imported only when a scheduler or a local cluster is asked for.

The workers read the positions file themselves (one task per Parquet row group or CSV block),
so its path must be readable from every worker: a shared or network file system when the
scheduler is remote.  The scenario table (the columns of the assets held) is read on the
caller and scattered."""

from __future__ import annotations

import dask
import dask.array as da
import dask.dataframe as dd
import numpy as np
from distributed import Client, LocalCluster, as_completed

from . import io
from .job import _check_keys, _combine, _exposures, summarise


def _client(scheduler, local_cluster, processes):
    if scheduler is not None:
        return Client(scheduler), None
    workers = int(local_cluster)
    if workers < 1:
        raise ValueError(f"local_cluster: got {local_cluster}; expected a number of workers >= 1")
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=processes, dashboard_address=":0")
    return Client(cluster), cluster


def _partitions(path, read, cols):
    """Delayed DataFrames covering the file in order: a Parquet file's row groups (each read on
    a worker with the in-process reader), or a CSV file's blocks of 64 MB."""
    if io.file_format(path) == "parquet":
        read_group = dask.delayed(io.read_row_group)
        return [read_group(str(path), i, read, cols.amount) for i in range(io.row_groups(path))]
    read = list(dict.fromkeys(read))
    labels = [c for c in read if c != cols.amount]
    frame = dd.read_csv(path, usecols=read, dtype=io.csv_dtypes(labels, cols.amount), blocksize="64MB", **io.CSV_OPTIONS)
    return frame.to_delayed()


def _product(client, returns: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``returns @ x`` on the cluster: row blocks of ``returns`` scattered to the workers, each
    multiplied by ``x`` there (``x`` is small: assets x groups)."""
    workers = max(1, len(client.scheduler_info()["workers"]))
    rows = max(1, -(-returns.shape[0] // (2 * workers)))
    blocks = [returns[i : i + rows] for i in range(0, returns.shape[0], rows)]
    futures = client.scatter(blocks)
    parts = [da.from_delayed(dask.delayed(f), shape=b.shape, dtype=float) for f, b in zip(futures, blocks)]
    weights = client.scatter(x, broadcast=True)
    product = da.concatenate(parts, axis=0) @ da.from_delayed(dask.delayed(weights), shape=x.shape, dtype=float)
    return np.asarray(client.compute(product).result())


def aggregate_and_multiply(path, read, cols, scenarios, order, scheduler, local_cluster, processes, progress):
    """Aggregate the positions by (group, asset) on the cluster and form ``P = R X`` there.

    ``order`` is the scenario table's assets (its header); the table is read on the caller
    once the assets held are known, their columns only.  Returns the P&L by group
    (``T x G``), the group keys and the position counts.
    """
    assets = frozenset(order)
    client, cluster = _client(scheduler, local_cluster, processes)
    try:
        parts = _partitions(path, read, cols)
        futures = client.compute([dask.delayed(summarise)(p, cols, assets) for p in parts])
        done = 0
        with io._parsing(path):  # a block a worker cannot parse: the file named, as in-process
            for _ in as_completed(futures):
                done += 1
                progress(done, len(futures), "partitions aggregated")
            summaries = client.gather(futures)  # in partition order: rows are numbered across them
        sums, counts = _combine(path, summaries, cols)
        x, keys, held = _exposures(sums, order)
        _check_keys(path, keys, cols.by)
        table = io.read_scenarios(scenarios, held)
        pnl = _product(client, table[held].to_numpy(), x)
        return np.asarray(pnl), keys, counts
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
