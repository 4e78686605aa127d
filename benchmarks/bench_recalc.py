"""Benchmark headless recalculation and the content cache, side by side in one run.

Run on demand (not a test)::

    python benchmarks/bench_recalc.py                  # 100 assets x 500 days
    python benchmarks/bench_recalc.py --n 200 --t 1000
    python benchmarks/bench_recalc.py --formulas-baseline   # also time formulas.ExcelModel (slow)

1. Headless recalculation.  A history workbook (returns table, weights, COVMATRIX, VaR and
   its decomposition by several methods, RISKREPORT) is written with XlsxWriter, then timed
   two ways in interleaved rounds: ``openpyxl.load_workbook`` (just reading it) and
   ``xlmvar.workbook.calc.recalculate`` (reading, evaluating every formula and every xlmvar
   function).  The engine caches are cleared before every recalculation, so each is a cold
   nightly-job run.  Target: recalculation within 3x of the openpyxl read.
2. The cache.  The same Excel function call on identical inputs, first with empty caches
   (miss) and then again (hit), as a sheet's MARGINALVAR, COMPONENTVAR and RISKREPORT cells
   do; the ratio says how much a repeated call saves.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TARGET = 3.0


def write_history_book(path: Path, n: int, t: int, seed: int = 7) -> None:
    import xlsxwriter

    from xlmvar.workbook._evaluator import col_letters

    rng = np.random.default_rng(seed)
    returns = rng.standard_t(5, (t, n)) * 0.01
    wb = xlsxwriter.Workbook(str(path))
    data = wb.add_worksheet("Returns")
    data.write_row(0, 0, [f"Asset {j + 1}" for j in range(n)])
    for i in range(t):
        data.write_row(i + 1, 0, returns[i])
    risk = wb.add_worksheet("Risk")
    for j in range(n):
        risk.write_string(j, 0, f"Asset {j + 1}")
        risk.write_number(j, 1, 1e6 * (1 + (j % 5)))
    wb.define_name("Returns", f"=Returns!$A$2:{col_letters(n)}${t + 1}")
    wb.define_name("Positions", f"=Risk!$B$1:$B${n}")
    wb.define_name("Assets", f"=Risk!$A$1:$A${n}")
    risk.write_dynamic_array_formula(0, 3, n - 1, 2 + n, "=COVMATRIX(Returns)")
    wb.define_name("Covariance", f"=Risk!$D$1:{col_letters(3 + n)}${n}")
    col = 4 + n
    formulas = [
        '=PORTVAR(Positions,Returns,0.99,1,"historical")',
        '=PORTES(Positions,Returns,0.99,1,"historical")',
        '=PORTVAR(Positions,Returns,0.99,1,"cornish-fisher")',
        "=PORTVAR(Positions,Covariance,0.99)",
    ]
    for k, formula in enumerate(formulas):
        risk.write_formula(k, col, formula)
    for k, formula in enumerate([
        '=MARGINALVAR(Positions,Returns,0.99,1,"historical")',
        '=COMPONENTVAR(Positions,Returns,0.99,1,"historical")',
        '=COMPONENTVARPCT(Positions,Returns,0.99,1,"historical")',
        "=COMPONENTVAR(Positions,Covariance,0.99)",
    ]):
        risk.write_dynamic_array_formula(0, col + 1 + k, n - 1, col + 1 + k, formula)
    risk.write_dynamic_array_formula(0, col + 6, n + 1, col + 11, '=RISKREPORT(Assets,Positions,Returns,0.99,1,"historical")')
    wb.close()


def best_of(functions: dict, repeats: int, before=None) -> dict:
    best = {name: float("inf") for name in functions}
    for _ in range(repeats):
        for name, function in functions.items():
            if before:
                before()
            start = time.perf_counter()
            function()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100, help="assets (default 100)")
    parser.add_argument("--t", type=int, default=500, help="days of returns (default 500)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--formulas-baseline", action="store_true", help="also time formulas.ExcelModel")
    args = parser.parse_args(argv)

    import openpyxl

    import udfs
    import xlmvar
    from xlmvar.workbook.calc import recalculate

    with tempfile.TemporaryDirectory() as tmp:
        book = Path(tmp) / "history.xlsx"
        write_history_book(book, args.n, args.t)
        result = recalculate(book)  # warm-up: imports, formulas' function table
        assert not result.errors, result.errors
        cells = sum(np.asarray(v).size for v in result.values.values())
        times = best_of(
            {"openpyxl.load_workbook (read only)": lambda: openpyxl.load_workbook(book),
             "xlmvar recalculate (cold caches)": lambda: recalculate(book)},
            args.repeats,
            before=xlmvar.clear_caches,
        )
        read, calc = times["openpyxl.load_workbook (read only)"], times["xlmvar recalculate (cold caches)"]
        print(f"Headless recalculation: {args.n} assets x {args.t} days ({args.n * args.t:,} constant cells), "
              f"{len(result.formulas)} formulas filling {cells:,} cells; best of {args.repeats}")
        print(f"  openpyxl read            {read:8.3f} s   1.0x")
        print(f"  xlmvar recalculate       {calc:8.3f} s   {calc / read:.1f}x   (target <= {TARGET:.0f}x: "
              f"{'met' if calc / read <= TARGET else 'MISSED'})")
        if args.formulas_baseline:
            import formulas

            from xlmvar.workbook.calc import register_functions

            register_functions()
            start = time.perf_counter()
            formulas.ExcelModel().loads(str(book)).finish().calculate()
            plain = time.perf_counter() - start
            print(f"  formulas.ExcelModel      {plain:8.3f} s   {plain / read:.1f}x   (plain load + calculate)")

    rng = np.random.default_rng(3)
    n_cov, t_hist = 500, 2500
    a = rng.normal(size=(n_cov, n_cov))
    cov = a @ a.T / n_cov * 1e-4 + np.eye(n_cov) * 1e-5
    x = rng.normal(size=(n_cov, 1)) * 1e6
    hist = rng.standard_t(5, (t_hist, 200)) * 0.01
    xh = rng.normal(size=(200, 1)) * 1e6
    cases = {
        f"MARGINALVAR normal, N={n_cov}": lambda: udfs.MARGINALVAR(x, cov, 0.99),
        f"COMPONENTVAR historical, {t_hist} x 200": lambda: udfs.COMPONENTVAR(xh, hist, 0.99, 1, "historical"),
        f"COVMATRIX ledoit-wolf, {t_hist} x 200": lambda: udfs.COVMATRIX(hist, "ledoit-wolf"),
        "PORTVAR montecarlo, N=100, 100,000 draws": lambda: udfs.PORTVAR(x[:100], cov[:100, :100], 0.99, 1, "montecarlo"),
    }
    print("\nCache: the same call on identical inputs, empty caches (miss) then again (hit); best of "
          f"{args.repeats}")
    for name, call in cases.items():
        miss = best_of({name: call}, args.repeats, before=xlmvar.clear_caches)[name]
        call()
        hit = best_of({name: call}, args.repeats)[name]
        print(f"  {name:<44} miss {miss * 1e3:9.2f} ms   hit {hit * 1e3:8.2f} ms   {miss / hit:7.1f}x faster")
    return 0


if __name__ == "__main__":
    sys.exit(main())
