"""The calculators that ``bench_calc.py`` and ``corpus_score.py`` compare, as whole processes.

A calculator is a command that reads a workbook and writes a copy whose formula cells hold
freshly computed cached values.  Each is run in its own process, with a wall-time limit (the
process group is killed past it) and its peak resident memory taken from ``wait4`` (the
largest of the process and the children it waited for, which covers LibreOffice's
``oosplash`` -> ``soffice.bin``).

Calculators (``--calculators`` of both scripts):

``xlmvar``       ``xlmvar calc BOOK -o OUT``: the current core (the ``formulas`` library).
``soffice``      LibreOffice ``--convert-to xlsx`` in a fresh user profile whose
                 ``OOXMLRecalcMode`` is 0 ("always recalculate on load").
``openpyxl``     ``openpyxl.load_workbook(BOOK)``: a read, no evaluation, no output (speed
                 reference only).
``ironcalc``     ``ironcalc.load_from_xlsx`` + ``evaluate`` + ironcalc's own ``save_to_xlsx``.
``formualizer``  ``formualizer.load_workbook`` + ``evaluate_all`` + ``to_xlsx_bytes``.
``evalcore``     :mod:`xlmvar.workbook._core_ironcalc` (ironcalc with the xlmvar functions
                 computed between its evaluations) + xlmvar's own XML patching writer.

Run as a script, this module is the process body of the candidate engines::

    python benchmarks/calculators.py ironcalc|formualizer|evalcore BOOK OUT
"""

from __future__ import annotations

import os
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

ALL = ("xlmvar", "soffice", "openpyxl", "ironcalc", "formualizer", "evalcore")

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
    """Run ``argv`` as a new process group; kill the group after ``limit`` seconds."""
    err = tempfile.TemporaryFile()
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err, env=env, cwd=cwd,
                            start_new_session=True)
    killed = False
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.perf_counter() - start > limit:
            killed = True
            os.killpg(proc.pid, signal.SIGKILL)
            pid, status, usage = os.wait4(proc.pid, 0)
            break
        time.sleep(0.01)
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    err.seek(0)
    text = err.read().decode("utf-8", "replace")[-2000:]
    if not killed:  # a leftover child of the group (soffice.bin) must not outlive the run
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return Run(seconds, usage.ru_maxrss / 1024.0, proc.returncode, killed, text)


class Calculator:
    """Builds the command of one calculator for an input book and an output path."""

    def __init__(self, name: str, workdir: Path):
        if name not in ALL:
            raise ValueError(f"calculator: {name!r} is not one of {', '.join(ALL)}")
        self.name = name
        self.workdir = workdir
        self.writes = name != "openpyxl"
        if name == "soffice":
            self.profile = soffice_profile(workdir / "lo-profile")

    def command(self, book: Path, out: Path) -> tuple[list[str], Path | None]:
        """argv, and the folder LibreOffice writes into (its output is renamed to ``out``)."""
        py = sys.executable
        if self.name == "xlmvar":
            return [py, "-c", "import sys, xlmvar.cli; sys.exit(xlmvar.cli.main())", "calc", str(book), "-o", str(out)], None
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


def _evalcore(book: str, out: str) -> None:
    from xlmvar.workbook._core_ironcalc import write_values

    write_values(book, out)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 3 or argv[0] not in ("ironcalc", "formualizer", "evalcore"):
        print(__doc__, file=sys.stderr)
        return 2
    {"ironcalc": _ironcalc, "formualizer": _formualizer, "evalcore": _evalcore}[argv[0]](argv[1], argv[2])
    return 0


if __name__ == "__main__":
    sys.exit(main())
