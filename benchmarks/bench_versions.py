"""Cold history calls of this checkout against another one, in alternating processes.

Run on demand (not a test)::

    git worktree add /tmp/before <commit>              # the version to compare with
    python benchmarks/bench_versions.py /tmp/before
    python benchmarks/bench_versions.py /tmp/before --n 500 2000 --pairs 4

Each pair of processes runs the same calls, first in the other checkout and then in this
one, so that a machine that gets busier slows both alike: ``xlmvar.decompose`` of a
historical and a Cornish-Fisher book on fresh arrays (new content every call, T = 2,500
periods), on the BLAS threads xlmvar chooses, the median CPU time of 21 calls per process.
A change that claims to make a cold call cheaper prints its figures with this command.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import statistics, sys, time
sys.path.insert(0, {root!r})
import numpy as np
import xlmvar
assert xlmvar.__file__.startswith({root!r}), xlmvar.__file__
rng = np.random.default_rng(0)
r = rng.standard_normal(({t}, {n})) * 0.01
x = rng.standard_normal({n}) * 1e6
methods = ("historical", "cornish-fisher")
for m in methods:
    xlmvar.decompose(x, r, method=m)  # imports
out = {{m: [] for m in methods}}
for k in range(21):
    for m in methods:
        fresh = r * (1.0 + 1e-9 * (k + 1))
        start = time.process_time()
        xlmvar.decompose(x, fresh, method=m)
        out[m].append(time.process_time() - start)
print(" ".join(str(statistics.median(v)) for v in out.values()))
"""


def run(root: Path, n: int, t: int) -> list[float]:
    code = CHILD.format(root=str(root.resolve()), n=n, t=t)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return [float(v) for v in out.stdout.split()]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("other", type=Path, help="another checkout of xlmvar (e.g. a git worktree)")
    parser.add_argument("--n", type=int, nargs="*", default=[500, 2000])
    parser.add_argument("--t", type=int, default=2500)
    parser.add_argument("--pairs", type=int, default=4)
    args = parser.parse_args(argv)
    print(f"cold calls, CPU ms, median of 21 calls per process; {args.other} -> this checkout")
    print(f"{'N':>6} {'historical':>22} {'cornish-fisher':>22}")
    for n in args.n:
        for _ in range(args.pairs):
            before, after = run(args.other, n, args.t), run(ROOT, n, args.t)
            print(f"{n:6d} " + " ".join(f"{b * 1e3:9.3f} -> {a * 1e3:7.3f}" for b, a in zip(before, after)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
