"""Benchmark whole-process workbook calculators side by side: wall time, peak memory, values.

Run on demand (not a test)::

    python benchmarks/bench_calc.py --quick            # small books only, one round, 120 s limit
    python benchmarks/bench_calc.py                    # both sizes, median of 3 rounds, 300 s limit
    python benchmarks/bench_calc.py --calculators soffice openpyxl ironcalc evalcore --rounds 5

Books (written with XlsxWriter, cached values 0, so only a real recalculation gives numbers):

(a) native formulas: ``Prices`` holds T+1 x 500 prices; ``Returns`` holds T x 500 formulas
    ``=Prices!B3/Prices!B2-1``; ``Summary`` holds per-asset AVERAGE and STDEV.S, SUMPRODUCT
    portfolio figures and the STDEV.S of ``Portfolio``, an MMULT array formula (returns times
    weights).  T = 2,500 (1,250,000 formulas) and T = 100 (50,000 formulas).
(b) xlmvar formulas: ``Returns`` holds T x 500 constant returns; ``Risk`` holds ten xlmvar
    formulas over them (COVMATRIX; PORTVAR historical / cornish-fisher / normal over the
    COVMATRIX; PORTES; MARGINALVAR; COMPONENTVAR historical / cornish-fisher / normal;
    COMPONENTVARPCT) and a native SUM over a COMPONENTVAR result.

Each calculator runs as its own process (see ``calculators.py``): ``xlmvar calc``, LibreOffice
``--convert-to xlsx`` with recalculation on load forced, an openpyxl read of the same file (no
evaluation: the speed reference), ``ironcalc``, ``formualizer`` and ``evalcore`` (ironcalc with
the xlmvar functions).  Rounds are interleaved; the median wall time and peak RSS are printed
with their ratios to LibreOffice and to the openpyxl read.  A run past ``--limit`` seconds is
killed and reported as such (later rounds of that calculator on that book are skipped).  The
``check`` column compares a few output cells with values computed here with numpy (book a) or
by calling the xlmvar functions directly (book b): the largest relative error, or what failed.
The machine may be shared: timings are noisy, the ratios within one run are what matter.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(HERE.parent))
from calculators import ALL, Calculator  # noqa: E402
from corpus_score import read_book  # noqa: E402

N_ASSETS = 500


def col(n: int) -> str:
    """Column letters of a 1-based column number."""
    out = ""
    while n:
        n, r = divmod(n - 1, 26)
        out = chr(65 + r) + out
    return out


def write_native_book(path: Path, t: int, n: int = N_ASSETS, seed: int = 11) -> dict:
    """Book (a); returns {(sheet, cell): expected value} computed with numpy."""
    import xlsxwriter

    rng = np.random.default_rng(seed)
    prices = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.01, (t + 1, n)), axis=0))
    weights = rng.dirichlet(np.ones(n))
    # no use_future_functions: its regular expressions per formula cost minutes at 1.25M
    # formulas; the one function that needs its prefix is written as Excel stores it
    wb = xlsxwriter.Workbook(str(path), {"constant_memory": True})
    sheet = wb.add_worksheet("Prices")
    sheet.write_row(0, 0, [f"Asset {j + 1}" for j in range(n)])
    for i in range(t + 1):
        sheet.write_row(i + 1, 0, prices[i])
    sheet = wb.add_worksheet("Returns")
    sheet.write_row(0, 0, [f"Asset {j + 1}" for j in range(n)])
    letters = [col(j + 1) for j in range(n)]
    for i in range(t):
        r = i + 2  # the return in row r uses the prices in rows r and r + 1
        for j, c in enumerate(letters):
            sheet.write_formula(i + 1, j, f"=Prices!{c}{r + 1}/Prices!{c}{r}-1", None, 0)
    last = f"{letters[-1]}{t + 1}"
    sheet = wb.add_worksheet("Summary")
    for j, c in enumerate(letters):
        sheet.write_number(j, 0, weights[j])
        sheet.write_formula(j, 1, f"=AVERAGE(Returns!{c}2:{c}{t + 1})", None, 0)
        sheet.write_formula(j, 2, f"=_xlfn.STDEV.S(Returns!{c}2:{c}{t + 1})", None, 0)
        if j == 0:
            sheet.write_formula(j, 4, f"=SUMPRODUCT(A1:A{n},B1:B{n})", None, 0)
        elif j == 1:
            sheet.write_formula(j, 4, f"=_xlfn.STDEV.S(Portfolio!A1:A{t})", None, 0)
        elif j == 2:
            sheet.write_formula(j, 4, f"=SUMPRODUCT(A1:A{n},C1:C{n})", None, 0)
    sheet = wb.add_worksheet("Portfolio")
    sheet.write_array_formula(0, 0, t - 1, 0, f"{{=MMULT(Returns!A2:{last},Summary!A1:A{n})}}", None, 0)
    wb.close()
    returns = prices[1:] / prices[:-1] - 1
    portfolio = returns @ weights
    return {
        ("Summary", "B1"): returns[:, 0].mean(),
        ("Summary", f"C{n}"): returns[:, -1].std(ddof=1),
        ("Summary", "E1"): weights @ returns.mean(axis=0),
        ("Summary", "E2"): portfolio.std(ddof=1),
        ("Summary", "E3"): weights @ returns.std(axis=0, ddof=1),
        ("Portfolio", f"A{t}"): portfolio[-1],
        ("Returns", f"{letters[-1]}{t + 1}"): returns[-1, -1],
    }


XLMVAR_FORMULAS = [  # (cell or range in Risk, formula, array?)
    ("COVMATRIX", "=COVMATRIX(Returns)"),
    ("PORTVAR historical", '=PORTVAR(Positions,Returns,0.99,1,"historical")'),
    ("PORTES historical", '=PORTES(Positions,Returns,0.99,1,"historical")'),
    ("PORTVAR cornish-fisher", '=PORTVAR(Positions,Returns,0.99,1,"cornish-fisher")'),
    ("PORTVAR normal", "=PORTVAR(Positions,Covariance,0.99)"),
    ("MARGINALVAR historical", '=MARGINALVAR(Positions,Returns,0.99,1,"historical")'),
    ("COMPONENTVAR historical", '=COMPONENTVAR(Positions,Returns,0.99,1,"historical")'),
    ("COMPONENTVAR cornish-fisher", '=COMPONENTVAR(Positions,Returns,0.99,1,"cornish-fisher")'),
    ("COMPONENTVAR normal", "=COMPONENTVAR(Positions,Covariance,0.99)"),
    ("COMPONENTVARPCT normal", "=COMPONENTVARPCT(Positions,Covariance,0.99)"),
]


def write_xlmvar_book(path: Path, t: int, n: int = N_ASSETS, seed: int = 7) -> dict:
    """Book (b); returns {(sheet, cell): expected value} from direct calls of the functions."""
    import xlsxwriter

    from xlmvar.excel import FUNCTIONS

    rng = np.random.default_rng(seed)
    returns = rng.standard_t(5, (t, n)) * 0.01
    positions = (1e6 * (1 + np.arange(n) % 5)).reshape(-1, 1)
    wb = xlsxwriter.Workbook(str(path), {"use_future_functions": True})
    data = wb.add_worksheet("Returns")
    data.write_row(0, 0, [f"Asset {j + 1}" for j in range(n)])
    for i in range(t):
        data.write_row(i + 1, 0, returns[i])
    risk = wb.add_worksheet("Risk")
    for j in range(n):
        risk.write_string(j, 0, f"Asset {j + 1}")
        risk.write_number(j, 1, positions[j, 0])
    wb.define_name("Returns", f"=Returns!$A$2:${col(n)}${t + 1}")
    wb.define_name("Positions", f"=Risk!$B$1:$B${n}")
    risk.write_array_formula(0, 3, n - 1, 2 + n, "{" + XLMVAR_FORMULAS[0][1] + "}", None, 0)
    wb.define_name("Covariance", f"=Risk!$D$1:${col(3 + n)}${n}")
    scalar_col, array_col = 4 + n, 6 + n  # 0-based; one blank column between blocks
    expected = {}
    cov = FUNCTIONS["COVMATRIX"](returns)
    k_scalar = k_array = 0
    for label, formula in XLMVAR_FORMULAS[1:]:
        name, _, rest = formula[1:].partition("(")
        args = []
        ranges = {"Positions": positions, "Returns": returns, "Covariance": cov}
        for a in rest[:-1].split(","):
            args.append(ranges[a] if a in ranges else a.strip('"') if a.startswith('"') else float(a))
        value = FUNCTIONS[name](*args)
        if np.ndim(value) == 0:
            risk.write_formula(k_scalar, scalar_col, formula, None, 0)
            expected[("Risk", f"{col(scalar_col + 1)}{k_scalar + 1}")] = float(value)
            k_scalar += 1
        else:
            c = array_col + k_array
            risk.write_array_formula(0, c, n - 1, c, "{" + formula + "}", None, 0)
            expected[("Risk", f"{col(c + 1)}{n}")] = float(np.ravel(value)[-1])
            if label == "COMPONENTVAR normal":
                risk.write_formula(k_scalar, scalar_col, f"=SUM({col(c + 1)}1:{col(c + 1)}{n})", None, 0)
                expected[("Risk", f"{col(scalar_col + 1)}{k_scalar + 1}")] = float(np.sum(value))
                k_scalar += 1
            k_array += 1
    expected[("Risk", f"{col(3 + n)}{n}")] = float(cov[-1, -1])
    wb.close()
    return expected


def check(out: Path, expected: dict) -> str:
    """Largest relative error of the expected cells in a calculator's output, or what is wrong."""
    try:
        got = read_book(out).values
    except Exception as exc:
        return f"unreadable: {type(exc).__name__}"
    worst, bad = 0.0, []
    for key, want in expected.items():
        value = got.get(key)
        if value is None or value.kind != "n":
            bad.append(f"{key[0]}!{key[1]}={value}")
            continue
        worst = max(worst, abs(value.value - want) / max(abs(want), 1e-300))
    if bad:
        return f"{len(bad)}/{len(expected)} not numbers ({bad[0]})"
    return f"max rel err {worst:.1e}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small books only (T=100), one round, 120 s limit")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--limit", type=float, default=300.0, help="seconds before a run is killed")
    parser.add_argument("--calculators", nargs="+", default=list(ALL), choices=ALL)
    parser.add_argument("--books", nargs="+", default=["a", "b"], choices=["a", "b"])
    parser.add_argument("--sizes", nargs="+", type=int, default=[100, 2500], help="T, days of returns")
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.rounds, args.limit = [100], 1, min(args.limit, 120.0)

    with tempfile.TemporaryDirectory(prefix="bench-calc-") as tmp:
        tmp = Path(tmp)
        calculators = {name: Calculator(name, tmp) for name in args.calculators}
        if "soffice" in calculators:  # the first start of a fresh profile builds it: not timed
            warm = tmp / "warm.xlsx"
            write_native_book(warm, 2, 3)
            calculators["soffice"].run(warm, tmp / "warm.out.xlsx", args.limit)
        books = []
        for kind in args.books:
            for t in args.sizes:
                path = tmp / f"book_{kind}_{t}.xlsx"
                writer = write_native_book if kind == "a" else write_xlmvar_book
                books.append((kind, t, path, writer(path, t)))
        print(f"{len(args.calculators)} calculators, median of {args.rounds} round(s), killed after {args.limit:.0f} s;"
              " timings on a shared machine are noisy, compare ratios within one run")
        for kind, t, path, expected in books:
            formulas = t * N_ASSETS + 2 * N_ASSETS + 3 + t if kind == "a" else len(XLMVAR_FORMULAS) + 1
            what = (f"(a) native: {t + 1:,} x {N_ASSETS} prices, {formulas:,} formulas" if kind == "a" else
                    f"(b) xlmvar: {t:,} x {N_ASSETS} constant returns, {formulas} formulas")
            times = {name: [] for name in calculators}
            peaks = {name: [] for name in calculators}
            status = {name: "" for name in calculators}
            for rnd in range(args.rounds):
                for name, calculator in calculators.items():
                    if status[name] and status[name] != "ok":
                        continue  # killed or failed once: not again
                    out = tmp / f"out_{name}_{kind}_{t}_{rnd}.xlsx"
                    run = calculator.run(path, out, args.limit)
                    if run.killed:
                        status[name] = f"killed after {args.limit:.0f} s"
                        times[name].append(run.seconds)
                        peaks[name].append(run.peak_mb)
                        continue
                    if not run.ok:
                        lines = [s for s in run.stderr.strip().splitlines() if s.strip()] or ["?"]
                        status[name] = f"failed: {lines[-1][:70]}"
                        continue
                    times[name].append(run.seconds)
                    peaks[name].append(run.peak_mb)
                    if rnd == 0:
                        status[name] = "ok"
                        status[name + ":check"] = check(out, expected) if calculator.writes else "(read only)"
                    out.unlink(missing_ok=True)
            med = {n: statistics.median(times[n]) for n in calculators if times[n]}
            mem = {n: statistics.median(peaks[n]) for n in calculators if peaks[n]}
            print(f"\n{what}")
            print(f"{'calculator':13s} {'wall s':>9s} {'peak MB':>9s} {'t/LO':>7s} {'MB/LO':>7s} {'t/openpyxl':>11s}  check")
            for name in calculators:
                if name not in med:
                    print(f"{name:13s} {'-':>9s} {'-':>9s} {'':7s} {'':7s} {'':11s}  {status[name]}")
                    continue
                killed = status[name].startswith("killed")
                lo = med.get("soffice") if not status.get("soffice", "ok").startswith(("killed", "failed")) else None
                op = med.get("openpyxl")
                ratio = lambda a, b: f"{a / b:7.2f}" if b else f"{'-':>7s}"  # noqa: E731
                print(f"{name:13s} {('>' if killed else '') + f'{med[name]:.2f}':>9s} {mem[name]:9.0f} "
                      f"{ratio(med[name], lo)} {ratio(mem[name], mem.get('soffice') if lo else None)} "
                      f"{ratio(med[name], op):>11s}  "
                      f"{status[name] if killed else status.get(name + ':check', status[name])}")
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
