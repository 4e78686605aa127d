"""Low-level access to the parts of an .xlsx/.xlsm archive.

Workbooks are untrusted input: XML is parsed without entity expansion or network access,
and every part is read through a size check.
"""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path, PurePosixPath

__all__ = ["MAX_UNCOMPRESSED_BYTES", "MAX_COMPRESSION_RATIO", "check_archive", "read_xml", "sheet_parts", "write_zip_replacing"]

#: Largest total uncompressed size of a workbook archive accepted (bytes).
MAX_UNCOMPRESSED_BYTES = 1 << 30
#: Largest compression ratio of a single large part; real XML compresses ~10-30x.
MAX_COMPRESSION_RATIO = 200
_RATIO_CHECK_ABOVE = 1 << 20  # small parts may compress arbitrarily well

_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_PKG_REL = "http://schemas.openxmlformats.org/package/2006/relationships"


def _parser():
    from lxml import etree

    return etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False, load_dtd=False)


def check_archive(path, max_bytes: int | None = None) -> None:
    """Refuse what is not a workbook archive, or one that would expand beyond reason.

    The sizes come from the archive's directory and are enforced again while reading (a
    part that inflates past its declared size is an error in :mod:`zipfile` itself).
    """
    limit = MAX_UNCOMPRESSED_BYTES if max_bytes is None else max_bytes
    path = Path(path)
    if not zipfile.is_zipfile(path):
        raise ValueError(f"workbook: {path.name} is not an .xlsx/.xlsm workbook (not a zip archive)")
    with zipfile.ZipFile(path) as archive:
        infos = archive.infolist()
        names = {info.filename for info in infos}
        if "[Content_Types].xml" not in names or "_rels/.rels" not in names:
            raise ValueError(f"workbook: {path.name} is a zip archive but not an Excel workbook")
        total = sum(info.file_size for info in infos)
        if total > limit:
            raise ValueError(
                f"workbook: {path.name} would expand to {total / 2**20:,.0f} MiB, over the "
                f"{limit / 2**20:,.0f} MiB limit for untrusted workbooks"
            )
        for info in infos:
            if info.file_size > _RATIO_CHECK_ABOVE and info.file_size > MAX_COMPRESSION_RATIO * max(info.compress_size, 1):
                raise ValueError(
                    f"workbook: part {info.filename} of {path.name} is compressed "
                    f"{info.file_size / max(info.compress_size, 1):,.0f} to 1, a sign of a zip bomb; refused"
                )


def read_xml(archive: zipfile.ZipFile, part: str):
    """Parse one XML part of the archive safely and return its root element."""
    from lxml import etree

    data = archive.read(part)
    if b"<!DOCTYPE" in data[:4096] or b"<!ENTITY" in data[:4096]:
        raise ValueError(f"workbook: part {part} declares a DTD or XML entities; refused (Excel never writes them)")
    return etree.fromstring(data, _parser())


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
