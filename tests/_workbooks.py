"""Helpers shared by the workbook tests: reading inputs and recalculating in LibreOffice."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import openpyxl

ROOT = Path(__file__).resolve().parents[1]
WORKBOOKS = ROOT / "workbooks"

_RECALC_ON_LOAD = """<?xml version="1.0" encoding="UTF-8"?>
<oor:items xmlns:oor="http://openoffice.org/2001/registry" xmlns:xs="http://www.w3.org/2001/XMLSchema"
 xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
<item oor:path="/org.openoffice.Office.Calc/Formula/Load"><prop oor:name="OOXMLRecalcMode" oor:op="fuse"><value>0</value></prop></item>
</oor:items>
"""


def soffice() -> str | None:
    """Path of LibreOffice; when XLMVAR_REQUIRE_LIBREOFFICE is set (CI), its absence is a failure."""
    found = shutil.which("soffice") or shutil.which("libreoffice")
    if found is None and os.environ.get("XLMVAR_REQUIRE_LIBREOFFICE"):
        raise RuntimeError("XLMVAR_REQUIRE_LIBREOFFICE is set but LibreOffice (soffice) is not installed")
    return found


def libreoffice_recalculate(book: Path, workdir: Path) -> Path:
    """Open ``book`` in headless LibreOffice with recalc-on-load forced, save it as .xlsx."""
    profile = workdir / "lo-profile"
    (profile / "user").mkdir(parents=True, exist_ok=True)
    (profile / "user" / "registrymodifications.xcu").write_text(_RECALC_ON_LOAD)
    out = workdir / "lo-out"
    out.mkdir(exist_ok=True)
    env = dict(os.environ, HOME=str(workdir))
    subprocess.run(
        [soffice(), f"-env:UserInstallation={profile.as_uri()}", "--headless", "--norestore",
         "--convert-to", "xlsx", "--outdir", str(out), str(book)],
        check=True, capture_output=True, timeout=180, env=env,
    )
    return out / book.name


def cached_values(path: Path, sheet: str) -> dict:
    """{cell: cached value} of a sheet, as any viewer would show them."""
    ws = openpyxl.load_workbook(path, data_only=True)[sheet]
    return {c.coordinate: c.value for row in ws.iter_rows() for c in row if c.value is not None}


def formulas_of(path: Path, sheet: str) -> dict:
    ws = openpyxl.load_workbook(path)[sheet]
    out = {}
    for row in ws.iter_rows():
        for c in row:
            value = c.value
            text = getattr(value, "text", value)
            if isinstance(text, str) and text.startswith("="):
                out[c.coordinate] = text
    return out


def block(values: dict, cells: list[str]) -> np.ndarray:
    return np.array([values[c] for c in cells], dtype=float)
