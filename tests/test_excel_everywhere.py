"""Excel everywhere: the Excel functions import alone, without xlwings, and install in Pyodide.

* ``import udfs`` (what xlwings imports on Windows, Server and Lite) loads no module of the
  workbook layer (openpyxl, formulas, lxml, XlsxWriter, ...), which xlwings Lite neither has
  nor needs;
* the adapter works without xlwings (a workbook-only install, ``xlmvar calc`` on a server):
  its errors are still ``ValueError``; with xlwings they are also ``xlwings.XlwingsError``;
* every dependency the wheel requires is in Pyodide's package list (``pyodide-lock.json`` of
  the ``pyodide`` npm package, fetched with ``npm pack``) at a version the wheel accepts, so
  ``micropip`` installs ``xlmvar`` in xlwings Lite.  Without npm the test skips with the
  reason, except in CI (``CI`` or ``XLMVAR_REQUIRE_NPM`` set), where it fails.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent

#: The workbook and batch layers' libraries: never loaded by ``import udfs``.  (pandas is
#: not listed: xlwings itself imports it whenever it is installed, and the batch extra
#: installs it, and pandas imports pyarrow; xlmvar's own part is checked by the xlmvar.* prefixes.)
WORKBOOK_MODULES = ("openpyxl", "formulas", "schedula", "lxml", "xlsxwriter", "defusedxml", "dask")

#: Pyodide releases checked: 0.28 (the first with JsNull, which xlwings Lite handles) and a
#: current one.  XLMVAR_PYODIDE_VERSIONS="a,b" checks others; XLMVAR_PYODIDE_LOCK=path reads
#: a pyodide-lock.json already at hand instead.
PYODIDE_VERSIONS = tuple(os.environ.get("XLMVAR_PYODIDE_VERSIONS", "0.28.3,314.0.7").split(","))


def _run(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_import_udfs_loads_no_workbook_module():
    code = (
        "import sys, udfs\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {WORKBOOK_MODULES!r} "
        "or m.startswith(('xlmvar.workbook', 'xlmvar.batch', 'xlmvar.cli'))))"
    )
    assert _run(code) == "[]"


_BLOCK_XLWINGS = """
import sys
class NoXlwings:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] == 'xlwings':
            raise ModuleNotFoundError(f"No module named {name!r}")
sys.meta_path.insert(0, NoXlwings())
"""


def test_the_adapter_works_without_xlwings():
    code = _BLOCK_XLWINGS + (
        "import udfs\n"
        "from xlmvar.excel.convert import InputError\n"
        "assert not [m for m in sys.modules if m.startswith('xlwings')]\n"
        "print(udfs.PORTVAR([[1e6]], [[0.04]], 0.95))\n"
        "try:\n"
        "    udfs.PORTVAR([[1e6], ['#N/A']], [[0.04, 0], [0, 0.04]])\n"
        "except ValueError as exc:\n"
        "    print(type(exc).__name__, exc.excel_error, exc)\n"
        "from xlmvar.workbook.calc import register_functions\n"
        "print(len(register_functions()))\n"
    )
    lines = _run(code).splitlines()
    # 1.6448536269514722 * 0.2 * 1e6: NORM.S.INV(0.95) x volatility x position, by hand
    assert float(lines[0]) == pytest.approx(328970.72539029444, rel=1e-13)
    assert lines[1] == "InputError #N/A positions: row 2, column 1 holds the error #N/A"
    from xlmvar.excel import FUNCTIONS

    assert int(lines[2]) == len(FUNCTIONS)


def test_with_xlwings_the_errors_are_xlwings_errors():
    import xlwings

    import udfs

    with pytest.raises(xlwings.XlwingsError, match="confidence: got the text 'x'"):
        udfs.PORTVAR([[1e6]], [[0.04]], "x")
    with pytest.raises(ValueError, match="confidence: got the text 'x'"):
        udfs.PORTVAR([[1e6]], [[0.04]], "x")


# ------------------------------------------------------------------------------------------
# Pyodide's package list
# ------------------------------------------------------------------------------------------
def _require_npm() -> bool:
    return bool(os.environ.get("CI") or os.environ.get("XLMVAR_REQUIRE_NPM"))


@pytest.fixture(scope="module", params=PYODIDE_VERSIONS)
def pyodide_lock(request, tmp_path_factory) -> dict:
    given = os.environ.get("XLMVAR_PYODIDE_LOCK")
    if given:
        return json.loads(Path(given).read_text(encoding="utf-8"))
    npm = shutil.which("npm")
    if npm is None:
        if _require_npm():
            pytest.fail("npm is needed to fetch Pyodide's package list (pyodide-lock.json)")
        pytest.skip("npm is not installed: cannot fetch pyodide-lock.json from the pyodide npm package")
    folder = tmp_path_factory.mktemp("pyodide")
    out = subprocess.run([npm, "pack", f"pyodide@{request.param}", "--silent"], cwd=folder,
                         capture_output=True, text=True, timeout=300)
    if out.returncode != 0:
        message = f"npm pack pyodide@{request.param} failed: {out.stderr.strip()[-500:]}"
        if _require_npm():
            pytest.fail(message)
        pytest.skip(message)
    with tarfile.open(folder / out.stdout.strip().splitlines()[-1]) as archive:
        return json.load(archive.extractfile("package/pyodide-lock.json"))


def _project() -> dict:
    tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11's tomllib")
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def _required() -> list[Requirement]:
    return [Requirement(r) for r in _project()["dependencies"]]


def test_every_required_dependency_is_in_pyodide(pyodide_lock):
    packages = {canonicalize_name(name): info for name, info in pyodide_lock["packages"].items()}
    python = Version(pyodide_lock["info"]["python"])
    project = _project()
    assert python in Requirement(f"python{project['requires-python']}").specifier
    missing = []
    for requirement in _required():
        info = packages.get(canonicalize_name(requirement.name))
        if info is None or Version(info["version"]) not in requirement.specifier:
            found = info["version"] if info else "absent"
            missing.append(f"{requirement} (Pyodide {pyodide_lock['info']['version']}: {found})")
    assert not missing, "required by the wheel but not installable in Pyodide: " + ", ".join(missing)


def test_the_workbook_layer_and_xlwings_are_extras():
    # what Pyodide lacks, and what Lite brings itself, is not required by the wheel
    # (threadpoolctl is pure Python, xxhash is built for Pyodide: the test above checks every
    # requirement against pyodide-lock.json)
    names = {canonicalize_name(r.name) for r in _required()}
    assert names == {"numpy", "scipy", "threadpoolctl", "xxhash"}
    extras = _project()["optional-dependencies"]
    assert {canonicalize_name(Requirement(r).name) for r in extras["workbook"]} >= {"openpyxl", "formulas", "lxml", "xlsxwriter"}
    assert [canonicalize_name(Requirement(r).name) for r in extras["excel"]] == ["xlwings"]
