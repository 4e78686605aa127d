"""The command line: ``xlmvar`` recalculates workbooks headlessly, prints risk reports and
writes the template workbooks.

    xlmvar calc BOOK.xlsx [-o OUT.xlsx | --in-place]
    xlmvar report [BOOK.xlsx] [-o OUT.xlsx]
    xlmvar templates [DIR] [--force]
    xlmvar batch POSITIONS SCENARIOS --by COLUMN [--confidence C] [--method M] [-o OUT]
    xlmvar --version

Exit status (``calc`` and ``report``), for jobs to act on:

====  =====================================================================================
0     every formula was recalculated and none ends in an error
1     recalculated; some formula cells end in an Excel error (each listed on stdout with its
      address and reason)
2     the workbook cannot be processed: unreadable, malformed, over a resource limit, an
      output that may not be written, or bad usage; one line on stderr says why (``--debug``
      adds the traceback); nothing is written
3     recalculated without errors, but some formula cells were not recalculated and keep the
      value Excel cached (references to other workbooks, functions the calculator lacks);
      each is listed on stdout with the reason.  Errors take precedence: with both, 1.
====  =====================================================================================

Resource limits (see :class:`xlmvar.workbook._limits.Limits`): ``--max-mib``,
``--max-cells``, ``--max-formulas``, ``--max-formula-length``, ``--max-area`` and
``--max-depth`` raise them for a trusted workbook.

May import every layer (engine, Excel adapter, workbook); nothing imports it.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

__all__ = ["main", "EXIT_OK", "EXIT_ERRORS", "EXIT_UNPROCESSABLE", "EXIT_KEPT"]

EXIT_OK, EXIT_ERRORS, EXIT_UNPROCESSABLE, EXIT_KEPT = 0, 1, 2, 3


def _limit_options(parser: argparse.ArgumentParser) -> None:
    from ..workbook._limits import DEFAULT_LIMITS as d

    group = parser.add_argument_group("resource limits (raise them for a trusted workbook)")
    group.add_argument("--max-mib", type=int, metavar="MIB", help=f"decompressed MiB read (default {d.max_bytes >> 20})")
    group.add_argument("--max-cells", type=int, metavar="N", help=f"filled cells (default {d.max_cells:,})")
    group.add_argument("--max-formulas", type=int, metavar="N", help=f"formula cells (default {d.max_formulas:,})")
    group.add_argument("--max-formula-length", type=int, metavar="N", help=f"characters of one formula (default {d.max_formula_length:,})")
    group.add_argument("--max-area", type=int, metavar="N", help=f"cells of one range argument, after clipping to the used area (default {d.max_area:,})")
    group.add_argument("--max-depth", type=int, metavar="N",
                       help=f"longest chain of dependent formulas, with --core formulas (default {d.max_depth:,})")
    parser.add_argument("--debug", action="store_true", help="show the traceback of a failure")


def _limits(args):
    from ..workbook._limits import DEFAULT_LIMITS

    for name in ("max_mib", "max_cells", "max_formulas", "max_formula_length", "max_area", "max_depth"):
        value = getattr(args, name, None)
        if value is not None and value < 1:
            raise ValueError(f"--{name.replace('_', '-')}: must be a positive number, got {value}")
    mib = getattr(args, "max_mib", None)
    return DEFAULT_LIMITS.replace(
        max_bytes=None if mib is None else mib << 20,
        max_cells=args.max_cells,
        max_formulas=args.max_formulas,
        max_formula_length=args.max_formula_length,
        max_area=args.max_area,
        max_depth=args.max_depth,
    )


def _parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = argparse.ArgumentParser(prog="xlmvar", description="Portfolio VaR for spreadsheets, without Excel.")
    parser.add_argument("--version", action="version", version=f"xlmvar {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("calc", help="recalculate every formula of a workbook headlessly and write the values")
    p.add_argument("book", type=Path, help="workbook to recalculate (.xlsx or .xlsm); it is only read")
    where = p.add_mutually_exclusive_group()
    where.add_argument("-o", "--output", type=Path, help="where to write (default BOOK.calc.xlsx beside it)")
    where.add_argument("--in-place", action="store_true", help="replace the input workbook (atomically, keeping mode and owner)")
    p.add_argument("--core", choices=("ironcalc", "formulas"), default="ironcalc",
                   help="evaluation core: IronCalc (default; Rust, fast) or formulas (pure Python, a second opinion)")
    _limit_options(p)

    p = sub.add_parser("report", help="recalculate a workbook and print its book's risk report")
    p.add_argument("book", type=Path, nargs="?", help="workbook (default: the SPY/TLT/BTC example, built fresh)")
    p.add_argument("-o", "--output", type=Path, help="also write the recalculated workbook here")
    _limit_options(p)

    p = sub.add_parser("templates", help="write the template workbooks into a folder")
    p.add_argument("folder", type=Path, nargs="?", default=Path("."), help="folder (default: the current one)")
    p.add_argument("--force", action="store_true", help="overwrite template workbooks already there")
    p.add_argument("--debug", action="store_true", help="show the traceback of a failure")

    from ..batch import cli as batch  # its parser only: pandas and dask load when a job runs

    batch.add_parser(sub).add_argument("--debug", action="store_true", help="show the traceback of a failure")
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


def _print_outcome(recalc) -> int:
    """List the error cells and the cells kept at their cached value; return the exit status."""
    if recalc.errors:
        print(f"\n{len(recalc.errors)} formula cell(s) ended in an error:")
        for err in recalc.errors:
            print(f"  {err}")
    if recalc.kept:
        print(f"\n{len(recalc.kept)} formula cell(s) were not recalculated and keep the value Excel cached:")
        for kept in recalc.kept:
            print(f"  {kept}")
    if recalc.errors:
        return EXIT_ERRORS
    return EXIT_KEPT if recalc.kept else EXIT_OK


def _check_book(path: Path) -> None:
    import stat

    try:
        mode = path.stat().st_mode
    except OSError:
        raise ValueError(f"book: {path} does not exist or cannot be read") from None
    if not stat.S_ISREG(mode):
        raise ValueError(f"book: {path} is not a regular file")


def _calc(args) -> int:
    from ..workbook._safe_write import check_output
    from ..workbook.calc import calc

    _check_book(args.book)
    if args.output:  # named as the option it is (calc() itself calls it the target)
        check_output(args.output, (args.book,), what="-o")
    result = calc(args.book, args.output, in_place=args.in_place, progress=Progress(), limits=_limits(args), core=args.core)
    sheets = sorted({sheet for sheet, _ in result.formulas})
    print(f"Recalculated {result.formula_count} formula(s) on {len(sheets)} sheet(s) of {args.book}")
    print(f"Wrote {result.output}")
    return _print_outcome(result)


def _report(args) -> int:
    from ..workbook._safe_write import check_output
    from ..workbook.calc import write_cached_values
    from ..workbook.report import book_report, format_report

    limits = _limits(args)
    with tempfile.TemporaryDirectory() as folder:
        if args.book is None:
            book = _example_book(Path(folder))
            label = "The SPY/TLT/BTC example (`xlmvar templates` writes it as spy_tlt_btc.xlsx)"
        else:
            _check_book(args.book)
            book = label = args.book
        output = check_output(args.output, (book,), what="-o", in_place=False) if args.output else None
        report, recalc = book_report(book, progress=Progress(), limits=limits)
        print(f"{label}: {recalc.formula_count} formula(s) recalculated headlessly\n")
        print(format_report(report))
        if output:
            write_cached_values(book, output, recalc)
            print(f"\nWrote {output}")
    return _print_outcome(recalc)


def _example_book(folder: Path) -> Path:
    """The SPY/TLT/BTC template, generated into ``folder`` (the generator ships with xlmvar)."""
    from ..workbook.templates import build

    return build("spy_tlt_btc", folder / "spy_tlt_btc.xlsx")


def _templates(args) -> int:
    from ..workbook.templates import TEMPLATES, build

    from ..workbook._safe_write import check_output

    if args.folder.exists() and not args.folder.is_dir():
        raise ValueError(f"folder: {args.folder} is a file, not a folder")
    targets = [args.folder / f"{name}.xlsx" for name in TEMPLATES]
    there = [str(t) for t in targets if t.exists() or t.is_symlink()]
    if there and not args.force:
        raise ValueError(f"folder: {', '.join(there)} already exist(s); use --force to overwrite")
    if args.folder.is_dir():  # every target checked before the first is written (a link, a folder)
        for target in targets:
            check_output(target, what="folder", in_place=False)
    for name, target in zip(TEMPLATES, targets):
        print(f"Wrote {build(name, target)}")
    return 0


#: optional libraries -> the extra that installs them (pyproject.toml)
_EXTRAS = {
    **dict.fromkeys(("formulas", "schedula", "openpyxl", "xlsxwriter", "lxml", "defusedxml"), "workbook"),
    **dict.fromkeys(("pandas", "pyarrow", "dask", "distributed"), "batch"),
}


def _one_line(exc: BaseException) -> str:
    """An exception as one line: its message, or its kind when the message says nothing."""
    import zipfile

    from ..workbook._limits import LimitError

    text = " ".join(str(exc).split())
    extra = _EXTRAS.get((getattr(exc, "name", None) or "").split(".")[0])
    if isinstance(exc, ModuleNotFoundError) and extra:
        return f"needs {exc.name}, which the {extra} extra installs: pip install \"xlmvar[{extra}]\""
    if isinstance(exc, (LimitError, ValueError)) and text:
        return text
    if isinstance(exc, zipfile.BadZipFile):
        return f"workbook: not a readable zip archive ({text})"
    if isinstance(exc, OSError):
        return f"{exc.strerror or type(exc).__name__}: {exc.filename or text}"
    return f"workbook: cannot be processed ({type(exc).__name__}{': ' + text if text else ''})"


def _batch(args) -> int:
    from ..batch.cli import run_command
    from ..workbook._safe_write import atomic_write, check_output

    if args.output:  # before the job: a known type, never an input, a link, a folder; its folder writable
        from ..batch.io import file_format

        try:
            file_format(args.output, ("parquet", "csv", "xlsx"))
        except ValueError as exc:
            raise ValueError(f"-o: {exc}") from None
        args.output = check_output(args.output, (args.positions, args.scenarios), what="-o", in_place=False)

    def write(table, path):
        from ..batch.io import file_format, write_result

        kind = file_format(path, ("parquet", "csv", "xlsx"))
        return atomic_write(path, lambda tmp: write_result(table, tmp, kind))

    return run_command(args, write)


def main(argv=None) -> int:
    """Run the command line; return the exit status (see the module docstring)."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # argparse: --help, --version (0) or bad usage (2)
        return int(exc.code or 0)
    command = {"calc": _calc, "report": _report, "templates": _templates, "batch": _batch}[args.command]
    from ..engine._threads import blas_resting, rest_blas_on_one_thread

    resting = blas_resting()
    try:
        rest_blas_on_one_thread()  # the command's process is xlmvar's own (README, "BLAS threads")
        return command(args)
    except KeyboardInterrupt:
        print(f"xlmvar {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # every failure is one line and status 2; --debug shows where
        if getattr(args, "debug", False):
            import traceback

            traceback.print_exc()
        print(f"xlmvar {args.command}: {_one_line(exc)}", file=sys.stderr)
        return EXIT_UNPROCESSABLE
    finally:
        if not resting:  # main called from Python: the caller's process gets its setting back
            rest_blas_on_one_thread(False)


if __name__ == "__main__":
    sys.exit(main())
