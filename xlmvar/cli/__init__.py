"""The command line: ``xlmvar`` recalculates workbooks headlessly, prints risk reports and
writes the template workbooks.

    xlmvar calc BOOK.xlsx [-o OUT.xlsx | --in-place]
    xlmvar report [BOOK.xlsx] [-o OUT.xlsx]
    xlmvar templates [DIR] [--force]
    xlmvar --version

Exit status: 0 on success, 1 when a recalculated cell ends in an error, 2 on bad usage or
an unreadable workbook.

May import every layer (engine, Excel adapter, workbook); nothing imports it.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import zipfile
from pathlib import Path

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = argparse.ArgumentParser(prog="xlmvar", description="Portfolio VaR for spreadsheets, without Excel.")
    parser.add_argument("--version", action="version", version=f"xlmvar {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("calc", help="recalculate every formula of a workbook headlessly and write the values")
    p.add_argument("book", type=Path, help="workbook to recalculate (.xlsx or .xlsm); it is only read")
    where = p.add_mutually_exclusive_group()
    where.add_argument("-o", "--output", type=Path, help="where to write (default BOOK.calc.xlsx beside it)")
    where.add_argument("--in-place", action="store_true", help="replace the input workbook (atomically)")

    p = sub.add_parser("report", help="recalculate a workbook and print its book's risk report")
    p.add_argument("book", type=Path, nargs="?", help="workbook (default: the SPY/TLT/BTC example, built fresh)")
    p.add_argument("-o", "--output", type=Path, help="also write the recalculated workbook here")

    p = sub.add_parser("templates", help="write the template workbooks into a folder")
    p.add_argument("folder", type=Path, nargs="?", default=Path("."), help="folder (default: the current one)")
    p.add_argument("--force", action="store_true", help="overwrite template workbooks already there")
    return parser


class Progress:
    """Progress of a recalculation on stderr, once it has run for ``after`` seconds.

    On a terminal one line is rewritten in place; in a log, a line at most every
    ``every`` seconds.  A formula that takes long (a Monte Carlo with many draws) is named
    while it runs.
    """

    def __init__(self, stream=None, after: float = 1.0, every: float = 5.0):
        self.stream = stream or sys.stderr
        self.start = time.monotonic()
        self.after, self.last = after, 0.0
        self.every = 0.2 if self.stream.isatty() else every
        self.shown = False

    def __call__(self, done: int, total: int, cell: str) -> None:
        now = time.monotonic()
        if now - self.start < self.after or (cell and now - self.last < self.every):
            return
        self.last = now
        text = f"recalculating: {done}/{total} formulas" + (f", now {cell}" if cell else ", done")
        end = "\r" if self.stream.isatty() and cell else "\n"
        print(f"{text:<72}", end=end, file=self.stream, flush=True)
        self.shown = True


def _print_errors(errors) -> None:
    if errors:
        print(f"\n{len(errors)} formula cell(s) ended in an error:")
        for err in errors:
            print(f"  {err}")


def _check_book(path: Path) -> None:
    if not path.is_file():
        raise ValueError(f"book: {path} does not exist or is not a file")
    if not zipfile.is_zipfile(path):
        raise ValueError(f"book: {path} is not an .xlsx/.xlsm workbook (not a zip archive)")


def _calc(args) -> int:
    from ..workbook.calc import calc

    _check_book(args.book)
    result = calc(args.book, args.output, in_place=args.in_place, progress=Progress())
    sheets = sorted({sheet for sheet, _ in result.formulas})
    print(f"Recalculated {result.formula_count} formula(s) on {len(sheets)} sheet(s) of {args.book}")
    print(f"Wrote {result.output}")
    _print_errors(result.errors)
    return 1 if result.errors else 0


def _report(args) -> int:
    from ..workbook.calc import write_cached_values
    from ..workbook.report import book_report, format_report

    with tempfile.TemporaryDirectory() as folder:
        if args.book is None:
            book = _example_book(Path(folder))
            label = "The SPY/TLT/BTC example (`xlmvar templates` writes it as spy_tlt_btc.xlsx)"
        else:
            _check_book(args.book)
            book = label = args.book
        report, recalc = book_report(book, progress=Progress())
        print(f"{label}: {recalc.formula_count} formula(s) recalculated headlessly\n")
        print(format_report(report))
        if args.output:
            write_cached_values(book, args.output, recalc)
            print(f"\nWrote {args.output}")
    _print_errors(recalc.errors)
    return 1 if recalc.errors else 0


def _example_book(folder: Path) -> Path:
    """The SPY/TLT/BTC template, generated into ``folder`` (the generator ships with xlmvar)."""
    from ..workbook.templates import build

    return build("spy_tlt_btc", folder / "spy_tlt_btc.xlsx")


def _templates(args) -> int:
    from ..workbook.templates import TEMPLATES, build

    targets = [args.folder / f"{name}.xlsx" for name in TEMPLATES]
    there = [str(t) for t in targets if t.exists() or t.is_symlink()]
    if there and not args.force:
        raise ValueError(f"folder: {', '.join(there)} already exist(s); use --force to overwrite")
    for name, target in zip(TEMPLATES, targets):
        print(f"Wrote {build(name, target)}")
    return 0


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    command = {"calc": _calc, "report": _report, "templates": _templates}[args.command]
    try:
        return command(args)
    except (ValueError, OSError, zipfile.BadZipFile) as exc:
        print(f"xlmvar {args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
