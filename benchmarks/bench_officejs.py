"""A sheet of 10 decomposition cells over one 2,500 x 500 returns range, through xlwings' Office.js
runtime: the range passed to every cell, against one RISKMODEL handle.

Run on demand (not a test)::

    python benchmarks/bench_officejs.py                # T = 2500, N = 500, 3 rounds
    python benchmarks/bench_officejs.py --t 1000 --n 200 --rounds 5

Each cell is one call as xlwings' Office.js add-in makes it: the JSON body Excel sends (every
argument a 2-D array; the returns range as 2,500 rows of 500 numbers) is parsed with
``json.loads`` and run by ``xlwings.server.custom_functions_call(body, udfs)``, which converts
the arguments by the functions' type hints and calls the function.  Serialising the body is
Excel's work and is not timed; parsing it is the server's and is.

* ranges: 10 cells (PORTVAR, MARGINALVAR, COMPONENTVAR, COMPONENTVARPCT, INDIVIDUALVAR,
  PORTES, MARGINALES, COMPONENTES, DIVERSIFICATION, UNDIVERSIFIEDVAR; method "historical"),
  each receiving the whole returns range;
* handle: one ``=RISKMODEL(returns, "historical")`` cell, then the same 10 cells with the
  handle text in place of the range.

xlwings 0.37.8 outside Pyodide tries ``from pyodide.ffi import JsNull`` for every cell it
converts, and a failed import is not cached: about 0.6 ms a cell here, so the ranges sheet
would take about two hours at 2,500 x 500.  Unless ``--as-shipped`` is given, the benchmark
replaces ``xlwings.utils.is_jsnull`` by the same test with the import tried once (as a fixed
xlwings would); this speeds up the *ranges* sheet only, so the ratio printed is the
conservative one.

The figure is the median over ``--rounds`` of the time for the whole sheet (wall clock);
the handle's figures are checked equal to the ranges'.  Goal (issue 13): the handle sheet at
least 5x faster.  ``xlwings.server`` needs a licence key at run time; this benchmark sets
``XLWINGS_ON_SERVER=true`` and xlwings' ``XLWINGS_LICENSE_KEY=noncommercial`` for itself
only (xlmvar does not depend on xlwings.server).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ["XLWINGS_ON_SERVER"] = "true"  # before xlwings is imported: this process only
os.environ["XLWINGS_LICENSE_KEY"] = "noncommercial"
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import xlwings  # noqa: E402
import xlwings.server  # noqa: E402

import udfs  # noqa: E402
from xlmvar.excel import handles  # noqa: E402

CELLS = ["PORTVAR", "MARGINALVAR", "COMPONENTVAR", "COMPONENTVARPCT", "INDIVIDUALVAR",
         "PORTES", "MARGINALES", "COMPONENTES", "DIVERSIFICATION", "UNDIVERSIFIEDVAR"]
GOAL = 5.0


def body(func_name: str, args: list) -> str:
    """The JSON text Excel's Office.js add-in posts for one call."""
    return json.dumps({
        "func_name": func_name, "args": args, "caller_address": "Sheet1!A1",
        "content_language": "en-US", "version": xlwings.__version__, "client": "Office.js",
        "runtime": "1.4",
    })


def _is_jsnull_cached(value, _jsnull=[]):
    """xlwings' ``utils.is_jsnull`` with its import tried once, not once per cell."""
    if not _jsnull:
        try:
            from pyodide.ffi import JsNull
        except ImportError:
            JsNull = None
        _jsnull.append(JsNull)
    return _jsnull[0] is not None and isinstance(value, _jsnull[0])


async def call(text: str):
    return await xlwings.server.custom_functions_call(json.loads(text), udfs)


def sheet(bodies: list[str]) -> tuple[float, list]:
    start = time.perf_counter()
    results = [asyncio.run(call(text)) for text in bodies]
    return time.perf_counter() - start, results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--t", type=int, default=2500, help="periods (rows of the range)")
    parser.add_argument("--n", type=int, default=500, help="assets (columns of the range)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--as-shipped", action="store_true",
                        help="keep xlwings' failed 'import pyodide.ffi' for every cell (about 0.6 ms a cell)")
    args = parser.parse_args(argv)
    if not args.as_shipped:
        xlwings.utils.is_jsnull = _is_jsnull_cached
    xlwings.server.custom_functions_meta(udfs)  # what Excel registers; attaches the call metadata
    rng = np.random.default_rng(0)
    returns = np.round(rng.standard_normal((args.t, args.n)) * 0.01, 6).tolist()
    positions = [[float(v)] for v in np.round(rng.standard_normal(args.n) * 1e6)]
    tail = [[0.95], [1], ["historical"]]
    ranges = [body(name, [positions, returns, *tail]) for name in CELLS]
    model = body("RISKMODEL", [returns, [["historical"]], None])
    times = {"ranges": [], "handle": []}
    for _ in range(args.rounds):
        handles.clear_models()
        seconds, by_range = sheet(ranges)
        times["ranges"].append(seconds)
        handles.clear_models()  # the handle sheet pays for its RISKMODEL cell every round
        start = time.perf_counter()
        handle = asyncio.run(call(model))  # the RISKMODEL cell: [["xlmvar-model:..."]]
        model_seconds = time.perf_counter() - start
        seconds, by_handle = sheet([body(name, [positions, handle, *tail]) for name in CELLS])
        times["handle"].append(model_seconds + seconds)
        assert by_handle == by_range, "a handle must give exactly the figures of the range"
    med = {k: statistics.median(v) for k, v in times.items()}
    ratio = med["ranges"] / med["handle"]
    print(f"Office.js runtime (xlwings {xlwings.__version__}), {len(CELLS)} cells over a {args.t} x {args.n} "
          f"returns range, medians of {args.rounds} rounds (wall clock)")
    print(f"  range in every cell          {med['ranges']:8.2f} s")
    print(f"  one RISKMODEL + 10 handles   {med['handle']:8.2f} s")
    print(f"  ratio {ratio:.1f}x (goal >= {GOAL:g}x: {'met' if ratio >= GOAL else 'MISSED'}); figures identical")
    return 0


if __name__ == "__main__":
    sys.exit(main())
