"""The calculators that ``bench_calc.py`` and ``corpus_score.py`` compare, as whole processes.

A calculator is a command that reads a workbook and writes a copy whose formula cells hold
freshly computed cached values.  Each is run in its own process under GNU ``/usr/bin/time``, with a wall-time limit (the
process group is killed past it); the peak resident memory is time's ``%M`` (the largest of
the process and the children it waited for, which covers LibreOffice's ``oosplash`` ->
``soffice.bin``).

Calculators (``--calculators`` of both scripts):

``xlmvar``       ``xlmvar calc BOOK -o OUT``: what a user runs (the IronCalc core, the reader's
                 checks before it, xlmvar's writer after it).
``xlmvar-formulas`` ``xlmvar calc --core formulas``: the pure-Python second core.
``soffice``      LibreOffice ``--convert-to xlsx`` in a fresh user profile whose
                 ``OOXMLRecalcMode`` is 0 ("always recalculate on load").
``openpyxl``     ``openpyxl.load_workbook(BOOK)``: a read, no evaluation, no output (speed
                 reference only).
``ironcalc``     ``ironcalc.load_from_xlsx`` + ``evaluate`` + ironcalc's own ``save_to_xlsx``.
``formualizer``  ``formualizer.load_workbook`` + ``evaluate_all`` + ``to_xlsx_bytes``.
``evalcore``     :mod:`xlmvar.workbook._core_ironcalc` (ironcalc with the xlmvar functions
                 computed between its evaluations) + xlmvar's own XML patching writer
                 (``calc.write_cached_values``).
``evalcore-eval`` the same evaluation without writing (shows what the writer costs).

Run as a script, this module is the process body of the candidate engines::

    python benchmarks/calculators.py ironcalc|formualizer|evalcore|evalcore-eval BOOK OUT
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

ALL = ("xlmvar", "xlmvar-formulas", "soffice", "openpyxl", "ironcalc", "formualizer", "evalcore", "evalcore-eval")

_RECALC_ALWAYS = """<?xml version="1.0" encoding="UTF-8"?>
<oor:items xmlns:oor="http://openoffice.org/2001/registry" xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
<item oor:path="/org.openoffice.Office.Calc/Formula/Load"><prop oor:name="OOXMLRecalcMode" oor:op="fuse"><value>0</value></prop></item>
<item oor:path="/org.openoffice.Office.Calc/Formula/Load"><prop oor:name="ODFRecalcMode" oor:op="fuse"><value>0</value></prop></item>
</oor:items>
"""


def soffice_profile(folder: Path) -> str:
    """A fresh LibreOffice user profile that recalculates every OOXML file on load."""
    user = folder / "user"
    user.mkdir(parents=True, exist_ok=True)
    (user / "registrymodifications.xcu").write_text(_RECALC_ALWAYS)
    return folder.resolve().as_uri()


@dataclass
class Run:
    """One process run: wall seconds, peak RSS in MB, exit status, killed past the limit."""

    seconds: float
    peak_mb: float
    returncode: int | None
    killed: bool
    stderr: str = ""

    @property
    def ok(self) -> bool:
        return not self.killed and self.returncode == 0


def run_limited(argv: list[str], limit: float, env=None, cwd=None) -> Run:
    """Run ``argv`` under ``/usr/bin/time`` in a new process group; kill it after ``limit`` s.

    The peak RSS comes from GNU time (``%M``: the largest resident set of the command and the
    children it waited for).  It is not taken from ``wait4`` here: a child forked from this
    (large) Python process starts with the parent's high-water mark.
    """
    err = tempfile.TemporaryFile()
    with tempfile.NamedTemporaryFile(suffix=".time", delete=False) as f:
        timing = Path(f.name)
    start = time.perf_counter()
    proc = subprocess.Popen(["/usr/bin/time", "-f", "%M", "-o", str(timing), *argv],
                            stdout=subprocess.DEVNULL, stderr=err, env=env, cwd=cwd, start_new_session=True)
    killed = False
    try:
        proc.wait(timeout=limit)
    except subprocess.TimeoutExpired:
        killed = True
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    seconds = time.perf_counter() - start
    try:  # a leftover child of the group (soffice.bin) must not outlive the run
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    err.seek(0)
    text = err.read().decode("utf-8", "replace")[-2000:]
    lines = timing.read_text().split() if timing.exists() else []
    timing.unlink(missing_ok=True)
    peak = float(lines[-1]) / 1024.0 if lines and lines[-1].isdigit() else float("nan")
    code = proc.returncode
    if lines and lines[0] == "Command" and "status" in lines:  # "Command exited with non-zero status N"
        code = int(lines[lines.index("status") + 1])
    return Run(seconds, peak, code, killed, text)


class Calculator:
    """Builds the command of one calculator for an input book and an output path."""

    def __init__(self, name: str, workdir: Path):
        if name not in ALL:
            raise ValueError(f"calculator: {name!r} is not one of {', '.join(ALL)}")
        self.name = name
        self.workdir = workdir
        self.writes = name not in ("openpyxl", "evalcore-eval")
        if name == "soffice":
            self.profile = soffice_profile(workdir / "lo-profile")

    def command(self, book: Path, out: Path) -> tuple[list[str], Path | None]:
        """argv, and the folder LibreOffice writes into (its output is renamed to ``out``)."""
        py = sys.executable
        if self.name in ("xlmvar", "xlmvar-formulas"):
            core = ["--core", "formulas"] if self.name == "xlmvar-formulas" else []
            return [py, "-c", "import sys, xlmvar.cli; sys.exit(xlmvar.cli.main())", "calc", str(book), "-o", str(out),
                    "--max-formulas", "5000000", "--max-cells", "10000000", *core], None
        if self.name == "soffice":
            outdir = out.parent / f"lo-out-{out.stem}"
            outdir.mkdir(parents=True, exist_ok=True)
            return ["soffice", f"-env:UserInstallation={self.profile}", "--headless", "--norestore",
                    "--convert-to", "xlsx", "--outdir", str(outdir), str(book)], outdir
        if self.name == "openpyxl":
            return [py, "-c", "import sys, openpyxl; openpyxl.load_workbook(sys.argv[1])", str(book)], None
        return [py, str(HERE / "calculators.py"), self.name, str(book), str(out)], None

    def run(self, book: Path, out: Path, limit: float) -> Run:
        argv, outdir = self.command(book, out)
        env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        result = run_limited(argv, limit, env=env)
        if outdir is not None:
            produced = outdir / f"{book.stem}.xlsx"
            if produced.exists():
                shutil.move(str(produced), out)
            elif result.ok:  # soffice exits 0 even when it wrote nothing
                result.returncode = -1
                result.stderr += "\nsoffice wrote no output"
            shutil.rmtree(outdir, ignore_errors=True)
        if self.name.startswith("xlmvar") and result.returncode == 1 and out.exists():
            result.returncode = 0  # xlmvar calc: 1 = written, some cells ended in Excel errors
        if self.writes and result.ok and not out.exists():
            result.returncode = -1
            result.stderr += f"\n{self.name} wrote no output"
        return result


# --------------------------------------------------------------------------------------
# Process bodies of the candidate engines
# --------------------------------------------------------------------------------------
def _ironcalc(book: str, out: str) -> None:
    import ironcalc

    model = ironcalc.load_from_xlsx(book, "en", "UTC")
    model.evaluate()
    model.save_to_xlsx(out)


def _formualizer(book: str, out: str) -> None:
    import formualizer

    wb = formualizer.load_workbook(book)
    wb.evaluate_all()
    Path(out).write_bytes(wb.to_xlsx_bytes())


def _ooxml_escape(text: str) -> str:
    """Text as OOXML stores it: control characters as ``_xHHHH_``, a literal ``_xHHHH_`` with
    its underscore escaped.  The current writer (calc.py) does not do this yet (issue 11); done
    here so that the corpus score measures the evaluation, not that writer bug."""
    text = re.sub(r"_(x[0-9A-Fa-f]{4}_)", r"_x005F_\1", text)
    return re.sub(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]", lambda m: f"_x{ord(m.group()):04X}_", text)


def _evalcore(book: str, out: str) -> None:
    """The IronCalc core's values written by xlmvar's own XML patching (calc.write_cached_values)."""
    from formulas.tokens.operand import XlError

    from xlmvar.workbook._core_ironcalc import ErrorValue, evaluate
    from xlmvar.workbook._xlsx import check_archive
    from xlmvar.workbook.calc import Recalculation, write_cached_values

    check_archive(book)
    result = evaluate(book)
    recalc = Recalculation(source=Path(book))
    for key, value in result.values.items():
        if isinstance(value, ErrorValue):
            value = XlError(value.code)
        elif isinstance(value, str):
            value = _ooxml_escape(value)
        recalc.values[key] = [[value]]
    write_cached_values(book, out, recalc)


def _evalcore_eval(book: str, out: str) -> None:
    from xlmvar.workbook._core_ironcalc import evaluate
    from xlmvar.workbook._xlsx import check_archive

    check_archive(book)
    evaluate(book)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    bodies = {"ironcalc": _ironcalc, "formualizer": _formualizer, "evalcore": _evalcore,
              "evalcore-eval": _evalcore_eval}
    if len(argv) != 3 or argv[0] not in bodies:
        print(__doc__, file=sys.stderr)
        return 2
    bodies[argv[0]](argv[1], argv[2])
    return 0


if __name__ == "__main__":
    sys.exit(main())
