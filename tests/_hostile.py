"""Build workbooks the way Excel writes them, then damage them, for the calculator's tests.

Every file is made inside the test that uses it: XlsxWriter for a valid book, then
hand-edited XML or zip bytes for what XlsxWriter cannot (or will not) write.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import zipfile
from pathlib import Path

import xlsxwriter

NS = 'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'
SHEET1 = "xl/worksheets/sheet1.xml"


def book(path: Path, build=None) -> Path:
    """An XlsxWriter workbook at ``path``; ``build(workbook)`` adds sheets (default one sheet S)."""
    wb = xlsxwriter.Workbook(str(path), {"use_future_functions": True})
    if build is None:
        wb.add_worksheet("S")
    else:
        build(wb)
    wb.close()
    return path


def sheet_xml(cells: str, before: str = "", after: str = "") -> bytes:
    """A worksheet part whose sheetData holds ``cells`` (rows of hand-written XML)."""
    return (
        f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n{before}<worksheet {NS}>'
        f"<sheetData>{cells}</sheetData>{after}</worksheet>"
    ).encode()


def replace_parts(source: Path, target: Path, parts: dict, *, drop=(), extra=()) -> Path:
    """Copy the zip ``source`` to ``target`` with ``parts`` ({name: bytes}) replaced, the
    names in ``drop`` left out and the ``(name, bytes)`` of ``extra`` appended (duplicates
    allowed)."""
    import warnings

    with zipfile.ZipFile(source) as src, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            if info.filename in drop:
                continue
            dst.writestr(info.filename, parts.get(info.filename, src.read(info)))
        for name in set(parts) - {i.filename for i in src.infolist()}:
            dst.writestr(name, parts[name])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "Duplicate name" is what the test wants
            for name, data in extra:
                dst.writestr(name, data)
    return target


def with_sheet(tmp_path: Path, cells: str, name: str = "hand.xlsx", **kwargs) -> Path:
    """A one-sheet workbook (sheet S) whose cells are the hand-written ``cells``."""
    base = book(tmp_path / f"base-{name}")
    return replace_parts(base, tmp_path / name, {SHEET1: sheet_xml(cells, **kwargs)})


def run_cli(*args, timeout: float = 60, memory: int = 2 << 30, cwd=None) -> subprocess.CompletedProcess:
    """``python -m xlmvar.cli ARGS`` in a subprocess limited to ``memory`` bytes of address
    space and ``timeout`` seconds; returns the completed process (text output)."""

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))

    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    code = "import sys; from xlmvar.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run(
        [sys.executable, "-c", code, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=limit,
        env=env,
        cwd=cwd,
    )
