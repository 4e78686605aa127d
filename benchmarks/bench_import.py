"""How long ``import udfs`` takes against ``import numpy, scipy.linalg, xlwings`` alone.

Run on demand (not a test)::

    python benchmarks/bench_import.py              # 9 rounds
    python benchmarks/bench_import.py --rounds 15

Each statement runs in a fresh interpreter (``python -c``), the statements in turn round after
round, so a machine that gets busier slows them alike; the figure is the median wall time of
the whole process, minus the median of ``python -c pass`` (the interpreter's own start).  It
then prints the modules ``import udfs`` loads beyond the baseline, and the slowest of them by
``python -X importtime``.  Goal (issue 13): ``import udfs`` under 1.3x the baseline.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STATEMENTS = {
    "interpreter": "pass",
    "baseline": "import numpy, scipy.linalg, xlwings",
    "udfs": "import udfs",
}
GOAL = 1.3


def _run(statement: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", statement], check=True, cwd=ROOT)
    return time.perf_counter() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args(argv)
    times = {name: [] for name in STATEMENTS}
    for _ in range(args.rounds):
        for name, statement in STATEMENTS.items():
            times[name].append(_run(statement))
    med = {name: statistics.median(values) for name, values in times.items()}
    base = med["baseline"] - med["interpreter"]
    udfs = med["udfs"] - med["interpreter"]
    print(f"medians of {args.rounds} rounds, interpreter start ({med['interpreter'] * 1e3:.0f} ms) subtracted")
    print(f"  import numpy, scipy.linalg, xlwings   {base * 1e3:7.0f} ms")
    print(f"  import udfs                           {udfs * 1e3:7.0f} ms   ratio {udfs / base:.2f} "
          f"(goal < {GOAL}: {'met' if udfs / base < GOAL else 'MISSED'})")
    code = ("import sys; import numpy, scipy.linalg, xlwings; before = set(sys.modules); import udfs; "
            "print(' '.join(sorted(m for m in set(sys.modules) - before if not m.startswith('xlmvar'))))")
    extra = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    print(f"  modules udfs adds besides xlmvar: {extra.stdout.strip() or 'none'}")
    trace = subprocess.run([sys.executable, "-X", "importtime", "-c", "import udfs"], capture_output=True,
                           text=True, check=True, cwd=ROOT).stderr
    rows = []
    for line in trace.splitlines()[1:]:
        parts = line.split("|")
        if len(parts) == 3 and parts[2].strip().startswith(("xlmvar", "udfs")):
            rows.append((int(parts[1]), parts[2].rstrip()))
    print("  xlmvar modules by cumulative import time (python -X importtime -c 'import udfs'):")
    for cumulative, name in sorted(rows, reverse=True)[:8]:
        print(f"    {cumulative / 1e3:7.1f} ms {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
