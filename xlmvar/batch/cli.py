"""``xlmvar batch``: VaR, ES and component VaR by group for a firm's positions file.

The command line wires it in with::

    from ..batch import cli as batch_cli
    batch_cli.add_parser(sub)                 # in the parser
    "batch": batch_cli.run_command            # in the command table

``run_command`` raises ``ValueError`` for bad input (the caller prints it and exits 2).  The
command line checks ``-o`` before the job runs (never an input file) and writes it
atomically (``write``): this layer imports the engine only.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ._names import BATCH_METHODS, TOTAL
from .progress import Progress

__all__ = ["add_parser", "run_command", "format_table"]

HEADERS = {
    "positions": "Positions",
    "var": "VaR",
    "es": "ES",
    "component_var": "Component VaR",
    "var_share": "% of VaR",
    "component_es": "Component ES",
    "diversification": "Diversification",
}


def _confidence(text: str) -> float:
    """``0.99`` or ``99%``; the engine refuses 99 with a hint."""
    text = text.strip()
    return float(text[:-1]) / 100.0 if text.endswith("%") else float(text)


def _by(text: str) -> list[str]:
    return [c.strip() for c in text.split(",") if c.strip()]


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``batch`` subcommand to an ``argparse`` subparsers object."""
    p = subparsers.add_parser(
        "batch",
        help="VaR, ES and component VaR by group for a positions file (in-process or on Dask)",
        description="Risk by group for a firm's book: the positions file (Parquet or CSV: id, group "
        "columns, asset, amount) is aggregated out of core by (group, asset) and revalued on every "
        "row of the scenario table (rows = scenarios, one named column of returns per asset).",
    )
    p.add_argument("positions", type=Path, help="positions file, .parquet or .csv")
    p.add_argument("scenarios", type=Path, help="scenario returns, .parquet or .csv (rows = scenarios, a column per asset)")
    p.add_argument("--by", type=_by, action="extend", required=True, metavar="COLUMN[,COLUMN]",
                   help="grouping column(s), e.g. desk or desk,book (repeatable)")
    p.add_argument("--confidence", type=_confidence, default=0.95, help="confidence, 0.95 or 95%% (default 0.95)")
    p.add_argument("--horizon", type=int, default=1, help="horizon in periods of the scenarios (default 1; sqrt-of-time)")
    p.add_argument("--method", choices=list(BATCH_METHODS), default="historical",
                   help="historical (default), normal (on the scenarios' covariance) or cornish-fisher")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--scheduler", metavar="ADDRESS", help="run on this Dask scheduler (tcp://host:8786)")
    where.add_argument("--local-cluster", type=int, metavar="N", help="run on a Dask LocalCluster of N worker processes")
    p.add_argument("-o", "--output", type=Path, help="write the table (.parquet, .csv or .xlsx)")
    p.add_argument("--asset-column", default="asset", help="column naming the asset (default asset)")
    p.add_argument("--amount-column", default="amount", help="column of signed exposures in currency (default amount)")
    p.add_argument("--id-column", default="id", help="position id column quoted in messages, if present (default id)")
    p.add_argument("--chunk-rows", type=int, default=1_000_000, help="rows per in-process chunk (default 1,000,000)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def format_table(table) -> str:
    """The result as aligned text: labels left, currency with thousands separators."""
    label_cols = [c for c in table.columns if c not in HEADERS]
    headers = [*label_cols, *(HEADERS[c] for c in table.columns if c in HEADERS)]
    rows = []
    for _, r in table.iterrows():
        cells = [str(r[c]) for c in label_cols]
        for c in (c for c in table.columns if c in HEADERS):
            v = r[c]
            cells.append(f"{v:,}" if c == "positions" else f"{v:.1%}" if c == "var_share" else f"{v:,.0f}")
        rows.append(cells)
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(headers)]
    nl = len(label_cols)

    def line(cells):
        return "  ".join(c.ljust(w) if i < nl else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    out = [line(headers), "  ".join("-" * w for w in widths)]
    for cells in rows:
        if cells[0] == TOTAL:
            out.append("  ".join("-" * w for w in widths))
        out.append(line(cells))
    return "\n".join(out)


def run_command(args, write=None) -> int:
    """Run the job for parsed arguments, print the table, write ``-o`` with
    ``write(table, path)`` (by default :func:`~xlmvar.batch.io.write_result`, straight to the
    path); 0 on success."""
    from .job import run  # pandas, pyarrow and dask load only when a batch job runs

    table = run(
        args.positions,
        args.scenarios,
        args.by,
        args.confidence,
        args.horizon,
        args.method,
        scheduler=args.scheduler,
        local_cluster=args.local_cluster,
        asset=args.asset_column,
        amount=args.amount_column,
        ident=args.id_column,
        chunk_rows=args.chunk_rows,
        progress=None if args.quiet else Progress(),
    )
    where = f"Dask {args.scheduler}" if args.scheduler else (
        f"a local Dask cluster of {args.local_cluster} workers" if args.local_cluster else "in-process")
    print(f"{args.confidence:.4g} {args.method} VaR and ES over {args.horizon} period(s) by "
          f"{', '.join(args.by)} ({where}): {args.positions} on {args.scenarios}\n")
    print(format_table(table))
    if args.output:
        from .io import write_result

        print(f"\nWrote {(write or write_result)(table, args.output)}")
    return 0
