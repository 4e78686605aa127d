"""Low-level access to the parts of an .xlsx/.xlsm archive.

Workbooks are untrusted input: XML is parsed without entity expansion or network access,
and every part is read through a size check.
"""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path, PurePosixPath

__all__ = ["read_xml", "sheet_parts", "write_zip_replacing"]

_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_PKG_REL = "http://schemas.openxmlformats.org/package/2006/relationships"


def _parser():
    from lxml import etree

    return etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False, load_dtd=False)


def read_xml(archive: zipfile.ZipFile, part: str):
    """Parse one XML part of the archive safely and return its root element."""
    from lxml import etree

    data = archive.read(part)
    root = etree.fromstring(data, _parser())
    if root.getroottree().docinfo.internalDTD is not None:
        raise ValueError(f"workbook: part {part} declares a DTD; refusing a workbook with XML entities")
    return root


def _rels_part(part: str) -> str:
    path = PurePosixPath(part)
    return str(path.parent / "_rels" / f"{path.name}.rels")


def _resolve(base: str, target: str) -> str:
    if target.startswith("/"):
        return target.lstrip("/")
    parts = []
    for piece in (PurePosixPath(base).parent / target).parts:
        if piece == "..":
            parts.pop()
        elif piece != ".":
            parts.append(piece)
    return "/".join(parts)


def workbook_part(archive: zipfile.ZipFile) -> str:
    """Path of the workbook part, from the package relationships."""
    root = read_xml(archive, "_rels/.rels")
    for rel in root.iter(f"{{{_PKG_REL}}}Relationship"):
        if rel.get("Type", "").endswith("/officeDocument"):
            return _resolve("", rel.get("Target"))
    raise ValueError("workbook: the archive has no workbook part; is it an Excel workbook?")


def sheet_parts(archive: zipfile.ZipFile) -> list[tuple[str, str]]:
    """``(sheet name, part path)`` of every worksheet, in workbook order."""
    book = workbook_part(archive)
    rels = read_xml(archive, _rels_part(book))
    targets = {
        rel.get("Id"): _resolve(book, rel.get("Target"))
        for rel in rels.iter(f"{{{_PKG_REL}}}Relationship")
        if rel.get("Type", "").endswith("/worksheet")
    }
    root = read_xml(archive, book)
    out = []
    for sheet in root.iter(f"{{{_MAIN}}}sheet"):
        rid = sheet.get(f"{{{_REL}}}id")
        if rid in targets:
            out.append((sheet.get("name"), targets[rid]))
    return out


def write_zip_replacing(source: Path, target: Path, replacements: dict[str, bytes]) -> None:
    """Copy the archive ``source`` to ``target``, replacing the named parts' contents.

    Entry order, names, timestamps and compression are kept, so an untouched part is
    byte-identical and a rewrite of the same content is deterministic.
    """
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(target, "w") as dst:
        for info in src.infolist():
            if info.filename in replacements:
                dst.writestr(info, replacements[info.filename], compress_type=info.compress_type)
            else:
                with src.open(info) as fin, dst.open(info, "w") as fout:
                    shutil.copyfileobj(fin, fout)
