"""The install a new user gets: build the wheel, install it in a fresh virtual environment
(no editable install, no checkout on the path) and run the commands the README shows.

Slow (a venv and a pip install, about a minute); it runs in CI and with ``pytest -m wheel``.
pip takes the dependencies from its cache or the package index as usual.
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(args, cwd, env=None, timeout=600):
    out = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, f"{args} failed:\n{out.stdout}\n{out.stderr}"
    return out.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    dist = tmp_path_factory.mktemp("dist")
    # as a maintainer builds it: PEP 517, in an isolated build environment
    _run([sys.executable, "-m", "build", "--wheel", "--outdir", str(dist), str(ROOT)], cwd=dist)
    (path,) = dist.glob("xlmvar-*.whl")
    return path


def test_wheel_is_pure_python_and_carries_every_package_and_the_data(wheel):
    assert wheel.name.endswith("-py3-none-any.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    packages = {str(p.parent.relative_to(ROOT)) for p in (ROOT / "xlmvar").rglob("__init__.py")}
    for package in packages:
        assert f"{package}/__init__.py" in names, package
    for item in ("udfs.py", "xlmvar/data/edhec.csv", "xlmvar/data/README.md", "xlmvar/__main__.py"):
        assert item in names, item
    assert not [n for n in names if n.startswith(("tests/", "benchmarks/", "workbooks/"))]


def test_fresh_venv_from_the_wheel_runs_outside_the_checkout(wheel, tmp_path):
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    bin_dir = env_dir / ("Scripts" if os.name == "nt" else "bin")
    python, xlmvar = bin_dir / "python", bin_dir / "xlmvar"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    _run([python, "-m", "pip", "install", "-q", f"{wheel}[desktop]"], cwd=tmp_path, env=env)
    work = tmp_path / "elsewhere"
    work.mkdir()
    assert _run([xlmvar, "--version"], cwd=work, env=env).strip() == f"xlmvar {wheel.name.split('-')[1]}"
    _run([xlmvar, "templates", "books"], cwd=work, env=env)
    assert sorted(p.name for p in (work / "books").iterdir()) == ["edhec_history.xlsx", "risk_desk.xlsx", "spy_tlt_btc.xlsx"]
    report = _run([xlmvar, "report"], cwd=work, env=env)
    # the worked example by hand (README): VaR 1.6449 x 15.458% x $10m, ES, benefit
    assert "2,542,616" in report and "3,188,543" in report and "1,158,305" in report
    where = _run([python, "-c", "import udfs, xlmvar; print(udfs.__file__); print(xlmvar.__file__)"], cwd=work, env=env)
    assert all(str(env_dir) in line and str(ROOT) not in line for line in where.split())
