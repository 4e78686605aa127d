"""Helpers shared by the workbook tests: reading inputs, LibreOffice (recalculating, rendering),
comparing a committed template with a freshly generated one."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import openpyxl

ROOT = Path(__file__).resolve().parents[1]
WORKBOOKS = ROOT / "workbooks"

#: LibreOffice's "Recalculation on file load" for Excel files: 0 always, 1 never (its default:
#: the saved values are shown, except that array formulas are always recomputed).
RECALC_ALWAYS, RECALC_NEVER = 0, 1
_RECALC_ON_LOAD = """<?xml version="1.0" encoding="UTF-8"?>
<oor:items xmlns:oor="http://openoffice.org/2001/registry" xmlns:xs="http://www.w3.org/2001/XMLSchema"
 xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
<item oor:path="/org.openoffice.Office.Calc/Formula/Load"><prop oor:name="OOXMLRecalcMode" oor:op="fuse"><value>{mode}</value></prop></item>
</oor:items>
"""
#: LibreOffice's CSV export, every sheet to its own file (BOOK-SHEET.csv), cells as shown:
#: separator ",", quote '"', UTF-8, formatted text, all sheets (-1).
CSV_AS_SHOWN = "csv:Text - txt - csv (StarCalc):44,34,76,1,,0,false,true,true,false,false,-1"


def soffice() -> str | None:
    """Path of LibreOffice; when XLMVAR_REQUIRE_LIBREOFFICE is set (CI), its absence is a failure."""
    found = shutil.which("soffice") or shutil.which("libreoffice")
    if found is None and os.environ.get("XLMVAR_REQUIRE_LIBREOFFICE"):
        raise RuntimeError("XLMVAR_REQUIRE_LIBREOFFICE is set but LibreOffice (soffice) is not installed")
    return found


def pdftotext() -> str | None:
    """Path of poppler's pdftotext; required like LibreOffice when XLMVAR_REQUIRE_LIBREOFFICE is set."""
    found = shutil.which("pdftotext")
    if found is None and os.environ.get("XLMVAR_REQUIRE_LIBREOFFICE"):
        raise RuntimeError("XLMVAR_REQUIRE_LIBREOFFICE is set but pdftotext (poppler-utils) is not installed")
    return found


def libreoffice_convert(books, workdir: Path, convert_to: str, recalc: int = RECALC_NEVER) -> Path:
    """Convert ``books`` with one headless LibreOffice run; returns the output folder.

    A private profile sets the recalculation mode on load (``RECALC_NEVER`` is what a user of
    a default installation sees).
    """
    profile = workdir / f"lo-profile-{recalc}"
    (profile / "user").mkdir(parents=True, exist_ok=True)
    (profile / "user" / "registrymodifications.xcu").write_text(_RECALC_ON_LOAD.format(mode=recalc))
    out = workdir / "lo-out"
    out.mkdir(exist_ok=True)
    env = dict(os.environ, HOME=str(workdir))
    subprocess.run(
        [soffice(), f"-env:UserInstallation={profile.as_uri()}", "--headless", "--norestore",
         "--convert-to", convert_to, "--outdir", str(out), *map(str, books)],
        check=True, capture_output=True, timeout=300, env=env,
    )
    return out


def libreoffice_recalculate(book: Path, workdir: Path) -> Path:
    """Open ``book`` in headless LibreOffice with recalc-on-load forced, save it as .xlsx."""
    return libreoffice_convert([book], workdir, "xlsx", RECALC_ALWAYS) / book.name


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


# ------------------------------------------------------------------------------------------
# Committed workbook vs freshly generated one: the same workbook, whatever the machine
# ------------------------------------------------------------------------------------------
#: Cached numbers are floats computed by numpy; BLAS and its thread count may change the last
#: digits from one machine to the next.  Two numbers agree when they differ by at most RTOL
#: times the larger of their own magnitude and that of the cells their formula reads (so a
#: difference of two nearly equal figures is held to the precision of those figures).
RTOL = 1e-12
_STYLE_PARTS = ("number_format", "font", "fill", "border", "alignment", "protection")


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _style(cell) -> tuple:
    """A cell's style as openpyxl reads it, in the order of _STYLE_PARTS."""
    from openpyxl.styles.cell_style import StyleArray

    wb, ids = cell.parent.parent, getattr(cell, "_style", None) or StyleArray()  # merged cells: none
    return (cell.number_format, wb._fonts[ids.fontId], wb._fills[ids.fillId], wb._borders[ids.borderId],
            wb._alignments[ids.alignmentId], wb._protections[ids.protectionId])


def _formula_text(value):
    """The formula of a cell as openpyxl reads it (array formulas: their text), else None."""
    text = getattr(value, "text", value)
    return text if isinstance(text, str) and text.startswith("=") else None


def _array_cells(ws) -> dict:
    """{coordinate: anchor coordinate} of every cell inside an array formula's range."""
    from openpyxl.worksheet.formula import ArrayFormula
    from openpyxl.utils.cell import range_boundaries

    cells = {}
    for row in ws.iter_rows():
        for c in row:
            if isinstance(c.value, ArrayFormula):
                c0, r0, c1, r1 = range_boundaries(c.value.ref)
                for r in range(r0, r1 + 1):
                    for col in range(c0, c1 + 1):
                        cells[ws.cell(r, col).coordinate] = c.coordinate
    return cells


def _references(formula: str, sheet: str, names: dict) -> list[tuple[str, str]]:
    """(sheet, range) of every cell range a formula reads, defined names resolved."""
    from openpyxl.formula import Tokenizer

    out = []
    for token in Tokenizer(formula).items:
        if token.type != "OPERAND" or token.subtype != "RANGE":
            continue
        text = names.get(token.value.upper(), token.value).lstrip("=")
        where, _, rng = text.rpartition("!")
        out.append((where.strip("'") or sheet, rng.replace("$", "")))
    return out


def _scale(values, formula: str, sheet: str, names: dict) -> float:
    """Largest magnitude among the cached numbers a formula reads (0 when it reads none)."""
    from openpyxl.utils.cell import range_boundaries

    scale = 0.0
    for where, rng in _references(formula, sheet, names):
        if where not in values.sheetnames:
            continue
        try:
            c0, r0, c1, r1 = range_boundaries(rng)
        except ValueError:
            continue
        for row in values[where].iter_rows(min_row=r0, max_row=r1, min_col=c0, max_col=c1, values_only=True):
            scale = max([scale, *(abs(v) for v in row if _is_number(v))])
    return scale


def _sheet_xml_without_numbers(archive, part: str):
    """A worksheet's XML with the cached numbers of formula and array cells blanked.

    Those numbers are compared to a tolerance cell by cell; everything else in the sheet
    (cell styles, formulas, merged ranges, conditional formats, print setup, ...) must be
    identical.
    """
    from lxml import etree

    root = etree.fromstring(archive.read(part))
    ns = {"m": root.nsmap[None]}
    for v in root.iterfind(".//m:c/m:v", ns):
        cell = v.getparent()
        if cell.get("t") in (None, "n"):
            v.text = "number"
    return etree.tostring(root)


def _conditional_rules(ws) -> list:
    return [
        (str(cf.sqref), [(r.type, r.operator, list(r.formula), r.dxf) for r in cf.rules])
        for cf in ws.conditional_formatting
    ]


def assert_same_workbook(committed: Path, fresh: Path) -> None:
    """Assert two generated workbooks are the same workbook (see RTOL for cached numbers).

    Checked: the archive's part names; every part outside the worksheets byte for byte
    (styles, shared strings, charts, drawings, defined names, document properties: the
    recalculation writes none of them); per sheet, every cell's formula or constant, its style
    as openpyxl reads it (number format, font, fill, border, alignment, protection) and its
    cached value (numbers to RTOL, text / booleans / errors exactly); conditional formats,
    data validations, merged ranges and print setup; and the rest of the sheet XML exactly.
    """
    import zipfile

    from xlmvar.workbook._xlsx import sheet_parts

    with zipfile.ZipFile(committed) as a, zipfile.ZipFile(fresh) as b:
        assert sorted(a.namelist()) == sorted(b.namelist()), "the archives hold different parts"
        sheets = dict(sheet_parts(a))
        for part in a.namelist():
            if part in sheets.values():
                assert _sheet_xml_without_numbers(a, part) == _sheet_xml_without_numbers(b, part), part
            else:
                assert a.read(part) == b.read(part), f"part {part} differs"

    wa, wb = openpyxl.load_workbook(committed), openpyxl.load_workbook(fresh)
    va, vb = openpyxl.load_workbook(committed, data_only=True), openpyxl.load_workbook(fresh, data_only=True)
    assert wa.sheetnames == wb.sheetnames
    names = {n: wa.defined_names[n].attr_text for n in wa.defined_names}
    assert names == {n: wb.defined_names[n].attr_text for n in wb.defined_names}
    upper = {n.upper(): text for n, text in names.items()}
    scales = {}  # (sheet, formula) -> _scale
    for title in wa.sheetnames:
        sa, sb = wa[title], wb[title]
        arrays = _array_cells(sa)
        assert arrays == _array_cells(sb), title
        coords = {sa.cell(r, c).coordinate for ws in (sa, sb) for r, c in list(ws._cells)}
        for coord in sorted(coords):
            ca, cb = sa[coord], sb[coord]
            where = f"{title}!{coord}"
            fa, fb = _formula_text(ca.value), _formula_text(cb.value)
            assert fa == fb, f"{where}: formula {fa!r} vs {fb!r}"
            for attribute, sty_a, sty_b in zip(_STYLE_PARTS, _style(ca), _style(cb)):
                assert sty_a == sty_b, f"{where}: {attribute} {sty_a!r} vs {sty_b!r}"
            x, y = va[title][coord].value, vb[title][coord].value
            computed = fa is not None or coord in arrays
            if computed and _is_number(x) and _is_number(y):
                formula = fa if fa is not None else _formula_text(sa[arrays[coord]].value)
                if (title, formula) not in scales:
                    scales[title, formula] = _scale(va, formula, title, upper)
                scale = max(abs(x), abs(y), scales[title, formula])
                assert abs(x - y) <= RTOL * scale, f"{where} ({formula}): cached {x!r} vs {y!r}"
            else:
                assert x == y and type(x) is type(y), f"{where}: value {x!r} vs {y!r}"
        assert _conditional_rules(sa) == _conditional_rules(sb), title
        assert [(str(d.sqref), d.formula1) for d in sa.data_validations.dataValidation] == [
            (str(d.sqref), d.formula1) for d in sb.data_validations.dataValidation
        ], title
        assert sorted(map(str, sa.merged_cells.ranges)) == sorted(map(str, sb.merged_cells.ranges)), title
        assert (sa.print_area, sa.print_title_rows, sa.page_setup.orientation, sa.page_setup.fitToWidth) == (
            sb.print_area, sb.print_title_rows, sb.page_setup.orientation, sb.page_setup.fitToWidth
        ), title
