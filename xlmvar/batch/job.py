"""The firm-scale job: VaR, ES and component VaR by group, in-process or on Dask.

Steps (the same on both paths, so that both give the same numbers):

1. **Aggregate** the positions file by (group, asset): each chunk (in-process) or partition
   (Dask, on the workers) is checked and reduced to its sums ``X[(group, asset)]`` and position
   counts by :func:`summarise`; the partial sums, a few thousand numbers each, are added on the
   caller.  Out of core: no step holds the positions file.
2. **Scenario P&L by group**: ``P = R X`` (``T`` scenarios x ``G`` groups, currency), with
   ``R`` the scenario returns of the assets held (``T x n``) and ``X`` the aggregated
   exposures (``n x G``); on Dask a distributed matrix product over row blocks of ``R``.
3. **Risk by group** with the engine (:func:`xlmvar.engine.groups.group_risk`) on a book of
   one unit of each group's P&L (positions all 1):

   * ``historical``: method ``"pnl"`` on ``P``.  The book's P&L is ``P 1 = R x`` and the
     group component ``X_g . dVaR/dx`` - exactly the position-level historical decomposition
     summed by group (kernel-smoothed VaR, exact tail ES).
   * ``normal``: method ``"normal"`` on ``cov(P) = X' cov(R) X`` (sample covariance of the
     scenarios, divisor ``T - 1``, zero mean): the delta-normal figures of the book on the
     scenarios' covariance, by group.
   * ``cornish-fisher``: method ``"cornish-fisher"`` on ``P`` (its moments are those of the
     book's P&L).

Standalone VaR/ES of a group is the figure of its sub-book alone; component VaR/ES are the
Euler components summed over its positions (they add up to the firm's figure); the
diversification benefit is standalone minus component VaR.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..engine import groups, risk
from ..engine.pnl import unit_table
from ..engine._threads import blas_threads
from ..engine._validation import check_confidence, check_horizon
from . import io
from ._names import BATCH_METHODS, TOTAL

__all__ = ["BATCH_METHODS", "Columns", "Summary", "summarise", "run"]




@dataclass(frozen=True)
class Columns:
    """Names of the positions file's columns."""

    by: tuple
    asset: str = "asset"
    amount: str = "amount"
    ident: str | None = "id"

    @property
    def labels(self) -> list:
        return [*self.by, self.asset]


@dataclass
class Summary:
    """A chunk reduced: its row count, its first problem, its sums and counts."""

    rows: int
    problem: tuple | None = None  # (row in chunk, column, message, id)
    sums: pd.Series | None = field(default=None, repr=False)
    counts: pd.Series | None = field(default=None, repr=False)


def _first(mask) -> int | None:
    mask = np.asarray(mask, dtype=bool)
    return int(np.argmax(mask)) if mask.any() else None


def summarise(chunk: pd.DataFrame, cols: Columns, assets: frozenset) -> Summary:
    """Check one chunk of positions and reduce it to sums by (group, asset) and counts by group.

    The problem reported is the one on the earliest row (then the leftmost check): a blank
    label, an asset that is not a column of the scenario table, an amount that is not a finite
    number.
    """
    raw = chunk[cols.amount]
    amount, kind = io.as_numbers(raw)
    if amount is None:  # dates, durations, true/false: never numbers of currency
        return Summary(len(chunk), (0, cols.amount, f"holds {kind}; expected numbers (currency)", _ident(chunk, cols, 0)))
    found = []
    for column in cols.labels:
        row = _first(chunk[column].isna())
        if row is not None:
            found.append((row, column, "is blank; expected a label"))
    unknown = _unknown(chunk[cols.asset], assets)
    row = _first(unknown)
    if row is not None:
        found.append((row, cols.asset, f"{str(chunk[cols.asset].iloc[row])!r} is not a column of the scenario table"))
    row = _first(~np.isfinite(amount))
    if row is not None:
        found.append((row, cols.amount, f"holds {io._show(raw.iloc[row])}; expected a finite number (currency)"))
    if found:
        row, column, message = min(found, key=lambda f: (f[0], cols.labels.index(f[1]) if f[1] in cols.labels else 99))
        return Summary(len(chunk), (row, column, message, _ident(chunk, cols, row)))
    frame = chunk[cols.labels].assign(_amount=amount)
    sums = frame.groupby(cols.labels, sort=False, observed=True)["_amount"].sum()
    counts = frame.groupby(list(cols.by), sort=False, observed=True).size()
    return Summary(len(chunk), None, _as_text(sums), _as_text(counts))


def _ident(chunk: pd.DataFrame, cols: Columns, row: int):
    """The id of a chunk's row for a message, or ``None`` (no id column, a blank id)."""
    if cols.ident is None or cols.ident not in chunk or row >= len(chunk):
        return None
    ident = chunk[cols.ident].iloc[row]
    if ident is None or pd.isna(ident):
        return None
    return ident.item() if isinstance(ident, np.generic) else ident


def _unknown(column: pd.Series, assets: frozenset) -> np.ndarray:
    """True where a (non-blank) asset is not a column of the scenario table."""
    if isinstance(column.dtype, pd.CategoricalDtype):  # check the categories, not every row
        codes = column.cat.codes.to_numpy()
        known = np.asarray(column.cat.categories.astype(str).isin(assets))
        return (codes >= 0) & ~known[np.maximum(codes, 0)]
    return np.asarray(~column.astype(str).isin(assets) & column.notna())


def _as_text(series: pd.Series) -> pd.Series:
    """Index levels as text, so that keys compare alike whatever type a chunk read them as."""
    index = series.index
    arrays = [index.get_level_values(i).astype(str) for i in range(index.nlevels)]
    series.index = pd.MultiIndex.from_arrays(arrays, names=index.names) if index.nlevels > 1 else pd.Index(arrays[0], name=index.name)
    return series


def _combine(path, summaries, cols: Columns):
    """Raise the earliest problem of the file, else add up the partial sums and counts."""
    offset = 0
    for s in summaries:
        if s.problem is not None:
            row, column, message, ident = s.problem
            raise ValueError(f"{io.where(path, offset + row, column, ident)}: {message}")
        offset += s.rows
    if offset == 0:
        raise ValueError(f"{path}: has no positions")
    sums = pd.concat([s.sums for s in summaries]).groupby(level=list(range(len(cols.labels)))).sum()
    counts = pd.concat([s.counts for s in summaries]).groupby(level=list(range(len(cols.by)))).sum()
    return sums, counts


def _exposures(sums: pd.Series, asset_order: list):
    """``X`` (assets held x groups), the group keys (sorted) and the assets held (table order)."""
    table = sums.unstack(level=-1, fill_value=0.0)  # rows = groups, columns = assets
    table = table.sort_index()
    present = set(table.columns)
    held = [a for a in asset_order if a in present]
    return table[held].to_numpy(dtype=float).T.copy(), list(table.index), held


def _labels(keys) -> list[str]:
    return [" / ".join(map(str, k)) if isinstance(k, tuple) else str(k) for k in keys]


def _table(keys, counts, by, var, es) -> pd.DataFrame:
    """The result: one row per group, then the firm's total."""
    rows = [list(k) if isinstance(k, tuple) else [k] for k in keys]
    frame = pd.DataFrame(rows + [[TOTAL] + [""] * (len(by) - 1)], columns=list(by))
    frame["positions"] = [int(counts.loc[k]) for k in keys] + [int(counts.sum())]
    frame["var"] = [*var.standalone, var.total]
    frame["es"] = [*es.standalone, es.total]
    frame["component_var"] = [*var.component, var.total]
    frame["var_share"] = [*var.share, 1.0 if var.total else 0.0]
    frame["component_es"] = [*es.component, es.total]
    frame["diversification"] = [*var.diversification, float(np.sum(var.diversification))]
    return frame


def run(
    positions,
    scenarios,
    by,
    confidence=0.95,
    horizon=1,
    method="historical",
    scheduler=None,
    local_cluster=None,
    *,
    asset="asset",
    amount="amount",
    ident="id",
    chunk_rows=1_000_000,
    processes=True,
    progress=None,
) -> pd.DataFrame:
    """VaR, ES and component VaR/ES of a firm's book by group.

    Parameters
    ----------
    positions : path
        Parquet or CSV file: a row per position with the ``by`` columns, ``asset`` and
        ``amount`` (signed currency exposure); ``ident``, if present, is quoted in messages.
    scenarios : path
        Parquet or CSV file: rows = scenarios, one named column of returns per asset.
    by : str or sequence of str
        Grouping column(s), e.g. ``"desk"`` or ``("desk", "book")``.
    confidence : float in (0, 1), default 0.95
    horizon : int >= 1, default 1
        Periods of the scenarios; figures scale by ``sqrt(horizon)``.
    method : {"historical", "normal", "cornish-fisher"}, default "historical"
        See the module notes.
    scheduler : str, optional
        Address of a running Dask scheduler (``tcp://host:8786``): run there.
    local_cluster : int, optional
        Start a Dask ``LocalCluster`` of this many workers (``processes`` chooses worker
        processes or threads) and run on it.
    chunk_rows : int
        Rows of the positions file per in-process chunk.
    progress : callable(done, total, what), optional
        Called as the job advances (:class:`xlmvar.batch.progress.Progress` draws a bar).

    Returns
    -------
    pandas.DataFrame
        One row per group (sorted), then ``Total``: the ``by`` columns, ``positions``,
        ``var``, ``es`` (standalone), ``component_var``, ``var_share``, ``component_es``,
        ``diversification`` (standalone minus component VaR).
    """
    by = (by,) if isinstance(by, str) else tuple(by)
    if not by:
        raise ValueError("by: name at least one grouping column, e.g. desk")
    confidence, horizon = check_confidence(confidence), check_horizon(horizon)
    name = str(method or "historical").strip().lower()
    if name not in BATCH_METHODS:
        try:
            name = risk.check_method(name)
        except ValueError:
            pass
    if name not in BATCH_METHODS:
        raise ValueError(f"method: got {method!r}; the batch job offers {', '.join(BATCH_METHODS)}")
    if scheduler is not None and local_cluster is not None:
        raise ValueError("scheduler: give a scheduler address or a local cluster size, not both")
    progress = progress or (lambda done, total, what: None)

    _check_by(by, asset, amount)
    cols = Columns(by, asset, amount, ident)
    needed = {**{c: "a grouping column, --by" for c in by}, asset: "the asset of each position", amount: "the signed exposure in currency"}
    io.check_columns(positions, needed)
    have = io.file_columns(positions)
    if ident not in have:
        cols = Columns(by, asset, amount, None)
    read = list(dict.fromkeys([*cols.labels, cols.amount] + ([cols.ident] if cols.ident else [])))  # --by id: once
    order = io.scenario_assets(scenarios)  # the header only: columns nobody holds are never read
    assets = frozenset(order)

    if scheduler is None and local_cluster is None:
        summaries, total = [], io.row_count(positions)
        for chunk in io.position_chunks(positions, read, cols.amount, chunk_rows):
            summaries.append(summarise(chunk, cols, assets))
            progress(sum(s.rows for s in summaries), total, "positions aggregated")
        sums, counts = _combine(positions, summaries, cols)
        x, keys, held = _exposures(sums, order)
        _check_keys(positions, keys, by)
        progress(1, 3, "scenario P&L by group")
        table = io.read_scenarios(scenarios, held)[held].to_numpy()
        with blas_threads(2.0 * table.shape[0] * x.shape[0] * x.shape[1]):  # BLAS's threads if large
            pnl = table @ x
    else:
        from ._dask import aggregate_and_multiply

        pnl, keys, counts = aggregate_and_multiply(
            positions, read, cols, scenarios, order, scheduler, local_cluster, processes, progress
        )
    progress(2, 3, "risk by group")
    result = _risk(pnl, keys, counts, by, confidence, horizon, name)
    progress(3, 3, "done")
    return result


#: The columns of the result besides the grouping ones (a grouping column of one of these
#: names would be overwritten by the figures).
RESULT_COLUMNS = ("positions", "var", "es", "component_var", "var_share", "component_es", "diversification")


def _check_by(by, asset, amount) -> None:
    """Refuse grouping columns the result could not show: one named twice, the asset or
    amount column itself, or one named as a column of the result."""
    for i, column in enumerate(by):
        if column in by[:i]:
            raise ValueError(f"by: names the column {column!r} twice; expected each grouping column once")
        if column in (asset, amount):
            role = "asset" if column == asset else "amount"
            raise ValueError(f"by: {column!r} is the {role} column; group by another column (the result is by group and asset already)")
        if column in RESULT_COLUMNS:
            raise ValueError(
                f"by: a grouping column cannot be named {column!r}, the name of a column of the result "
                f"({', '.join(RESULT_COLUMNS)}), which would overwrite it; rename it in the positions file"
            )


def _check_keys(path, keys, by) -> None:
    """Refuse a group whose first label is the firm total's row label: a reader keyed on it
    would take the group's figures for the firm's."""
    for key in keys:
        first = key[0] if isinstance(key, tuple) else key
        if str(first) == TOTAL:
            raise ValueError(
                f"{path}: column {by[0]!r} holds the group {TOTAL!r}, the label of the firm's total "
                "row of the result; rename it"
            )


def _risk(pnl: np.ndarray, keys, counts, by, confidence, horizon, name) -> pd.DataFrame:
    """Engine figures by group from the scenario P&L by group (``T x G``)."""
    method = BATCH_METHODS[name]
    ones, labels = np.ones(pnl.shape[1]), _labels(keys)
    if method == "normal":
        model = np.atleast_2d(np.cov(pnl, rowvar=False))
    elif method == "cornish-fisher":  # currency P&L through a method made for returns
        scale, model = unit_table(pnl)
        ones = ones * scale
    else:
        model = pnl
    var = groups.group_risk(ones, model, labels, "var", confidence, horizon, method)
    es = groups.group_risk(ones, model, labels, "es", confidence, horizon, method)
    return _table(keys, counts, by, var, es)
