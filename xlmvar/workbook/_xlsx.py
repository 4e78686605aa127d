"""Low-level access to the parts of an .xlsx/.xlsm archive.

Workbooks are untrusted input.  Every part is read through a counting stream that stops
at :attr:`Limits.max_bytes` decompressed bytes (whatever sizes the zip directory
declares), XML is parsed incrementally by lxml without entity expansion or network access,
and any part that carries a document type declaration is refused as soon as the parser
meets its root element (Excel never writes one).  Duplicate entries, missing parts and
broken relationships are refused with a message naming the part.
"""

from __future__ import annotations

import zipfile
from pathlib import Path, PurePosixPath

from ._limits import DEFAULT_LIMITS, Limits

__all__ = [
    "MAX_UNCOMPRESSED_BYTES",
    "MAX_COMPRESSION_RATIO",
    "Archive",
    "drop_before",
    "check_archive",
    "read_xml",
    "sheet_parts",
    "write_zip_replacing",
]

#: Largest total uncompressed size of a workbook archive accepted by default (bytes).
MAX_UNCOMPRESSED_BYTES = DEFAULT_LIMITS.max_bytes
#: Largest compression ratio of a single large part; real XML compresses ~10-30x.
MAX_COMPRESSION_RATIO = 200
_RATIO_CHECK_ABOVE = 1 << 20  # small parts may compress arbitrarily well
_CHUNK = 1 << 16

_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_PKG_REL = "http://schemas.openxmlformats.org/package/2006/relationships"


class _Budget:
    """Decompressed bytes still allowed in one pass over an archive."""

    def __init__(self, limits: Limits, label: str):
        self.limits, self.label, self.used = limits, label, 0

    def spend(self, n: int, part: str) -> None:
        self.used += n
        if self.used > self.limits.max_bytes:
            raise self.limits.exceeded("max_bytes", f"workbook: {self.label} expands past part {part}")


class _CountingReader:
    """A read-only stream over one zip member that charges every byte to a budget."""

    def __init__(self, raw, budget: _Budget, part: str):
        self.raw, self.budget, self.part = raw, budget, part

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            chunks = []
            while chunk := self.read(_CHUNK):
                chunks.append(chunk)
            return b"".join(chunks)
        data = self.raw.read(min(n, _CHUNK))
        self.budget.spend(len(data), self.part)
        return data

    def close(self) -> None:
        self.raw.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class _Prefixed:
    """A stream whose first bytes were already read: they come first again."""

    def __init__(self, head: bytes, stream):
        self.head, self.pos, self.stream = head, 0, stream

    def read(self, n: int = -1) -> bytes:
        if self.pos < len(self.head):  # a slice from where the last read ended: the rest of a
            if n is None or n < 0:     # head of 256 MB is not copied on every read of 32 KB
                data, self.head = self.head[self.pos:] + self.stream.read(), b""
                return data
            data = self.head[self.pos:self.pos + n]
            self.pos += len(data)
            if self.pos >= len(self.head):
                self.head, self.pos = b"", 0
            return data
        return self.stream.read(n)

    def close(self) -> None:
        self.stream.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _refuse_doctype(element, part: str) -> None:
    if element.getroottree().docinfo.doctype:
        raise ValueError(f"workbook: part {part} declares a DTD or XML entities; refused (Excel never writes them)")


class Archive:
    """An open workbook archive whose parts are read within :class:`Limits`.

    Parameters
    ----------
    path : path
        The .xlsx/.xlsm file.
    limits : Limits
        The byte budget applies to everything read through this object.
    """

    def __init__(self, path, limits: Limits = DEFAULT_LIMITS):
        self.path = Path(path)
        self.limits = limits
        check_archive(self.path, limits.max_bytes)
        self._attach(zipfile.ZipFile(self.path))

    def _attach(self, archive: zipfile.ZipFile) -> None:
        self.zip = archive
        self.parts = {info.filename: info for info in archive.infolist()}
        self.budget = _Budget(self.limits, self.path.name)

    @classmethod
    def of(cls, archive) -> "Archive":
        """``archive`` itself, or an :class:`Archive` over an open :class:`zipfile.ZipFile`."""
        if isinstance(archive, cls):
            return archive
        out = cls.__new__(cls)
        out.path = Path(archive.filename or "workbook")
        out.limits = DEFAULT_LIMITS
        out._attach(archive)
        return out

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.zip.close()

    def has(self, part: str) -> bool:
        return part in self.parts

    def open(self, part: str) -> _CountingReader:
        if part not in self.parts:
            raise ValueError(f"workbook: {self.path.name} lacks the part {part} that its relationships name")
        return _CountingReader(self.zip.open(self.parts[part]), self.budget, part)

    def read(self, part: str) -> bytes:
        with self.open(part) as stream:
            return stream.read()

    def events(self, part: str, events=("end",), tag=None, stream=None):
        """Parse ``part`` incrementally, yielding ``(event, element)`` as lxml's iterparse does.

        ``stream``, when given, is the part already opened (its first bytes may have been
        read and put back, see :class:`_Prefixed`); it is closed at the end.

        Only elements whose tag is in ``tag`` (all when None) are reported.  The caller
        clears elements it has finished with (and :func:`drop_before` their finished
        siblings), so memory stays proportional to one element, not to the part.  A part
        with a document type declaration is refused at its first element.
        """
        from lxml import etree

        with stream if stream is not None else self.open(part) as stream:
            parsed = etree.iterparse(
                stream,
                events=events,
                tag=tag,
                resolve_entities=False,
                no_network=True,
                load_dtd=False,
                huge_tree=False,
                remove_comments=True,
            )
            checked = False
            try:
                for event, element in parsed:
                    if not checked:
                        _refuse_doctype(element, part)
                        checked = True
                    yield event, element
                if not checked and parsed.root is not None:
                    _refuse_doctype(parsed.root, part)
            except etree.XMLSyntaxError as exc:
                raise ValueError(f"workbook: part {part} is not well-formed XML ({exc})") from None
            if parsed.root is None:
                raise ValueError(f"workbook: part {part} holds no XML element")

    def xml(self, part: str):
        """Parse one XML part safely and return its root element (the whole tree in memory)."""
        root = None
        for _, element in self.events(part, events=("start",)):
            if root is None:
                root = element.getroottree().getroot()
        if root is None:
            raise ValueError(f"workbook: part {part} holds no XML element")
        return root


    # -- package structure ---------------------------------------------------------------
    def relationships(self, part: str) -> dict:
        """``{Id: (Type, resolved target)}`` of a part's relationships ({} when it has none)."""
        rels = _rels_part(part)
        if not self.has(rels):
            return {}
        out = {}
        for rel in self.xml(rels).iter(f"{{{_PKG_REL}}}Relationship"):
            rid, target = rel.get("Id"), rel.get("Target")
            if not rid or target is None:
                raise ValueError(f"workbook: part {rels} has a relationship without Id or Target")
            external = rel.get("TargetMode") == "External"
            out[rid] = (rel.get("Type", ""), target if external else _resolve(part, target, rels))
        return out

    def workbook_part(self) -> str:
        """Path of the workbook part, from the package relationships."""
        for kind, target in self.relationships("").values():
            if kind.endswith("/officeDocument"):
                if not self.has(target):
                    raise ValueError(f"workbook: {self.path.name} lacks its workbook part {target}")
                return target
        raise ValueError(f"workbook: {self.path.name} has no workbook part; is it an Excel workbook?")

    def sheet_parts(self) -> list[tuple[str, str]]:
        """``(sheet name, part path)`` of every worksheet, in workbook order."""
        book = self.workbook_part()
        targets = {rid: target for rid, (kind, target) in self.relationships(book).items() if kind.endswith("/worksheet")}
        out = []
        for sheet in self.xml(book).iter(f"{{{_MAIN}}}sheet"):
            rid = sheet.get(f"{{{_REL}}}id")
            if rid in targets:
                name = sheet.get("name")
                if not name:
                    raise ValueError(f"workbook: {book} lists a sheet without a name")
                if not self.has(targets[rid]):
                    raise ValueError(f"workbook: {self.path.name} lacks the part {targets[rid]} of sheet {name!r}")
                out.append((name, targets[rid]))
        return out


def drop_before(element) -> None:
    """Free the finished elements before ``element`` under its parent (streaming parse)."""
    parent = element.getparent()
    if parent is not None:
        while element.getprevious() is not None:
            del parent[0]


def check_archive(path, max_bytes: int | None = None) -> None:
    """Refuse what is not a workbook archive, or one whose directory already says too much.

    The sizes of the zip directory are only a first check: :class:`Archive` counts the
    bytes really decompressed.  Duplicate entry names are refused (which one a reader
    takes is undefined).
    """
    limit = MAX_UNCOMPRESSED_BYTES if max_bytes is None else max_bytes
    path = Path(path)
    if not zipfile.is_zipfile(path):
        raise ValueError(f"workbook: {path.name} is not an .xlsx/.xlsm workbook (not a zip archive)")
    with zipfile.ZipFile(path) as archive:
        infos = archive.infolist()
        seen = set()
        for info in infos:
            if info.filename in seen:
                raise ValueError(f"workbook: {path.name} holds two zip entries named {info.filename}; refused")
            seen.add(info.filename)
        if "[Content_Types].xml" not in seen or "_rels/.rels" not in seen:
            raise ValueError(f"workbook: {path.name} is a zip archive but not an Excel workbook")
        total = sum(info.file_size for info in infos)
        if total > limit:
            raise ValueError(
                f"workbook: {path.name} would expand to {total / 2**20:,.0f} MiB, over the "
                f"{limit / 2**20:,.0f} MiB limit for untrusted workbooks (--max-mib raises it)"
            )
        for info in infos:
            if info.file_size > _RATIO_CHECK_ABOVE and info.file_size > MAX_COMPRESSION_RATIO * max(info.compress_size, 1):
                raise ValueError(
                    f"workbook: part {info.filename} of {path.name} is compressed "
                    f"{info.file_size / max(info.compress_size, 1):,.0f} to 1, a sign of a zip bomb; refused"
                )


def read_xml(archive, part: str):
    """Parse one XML part of ``archive`` (an :class:`Archive` or ZipFile) safely; return its root."""
    return Archive.of(archive).xml(part)


def sheet_parts(archive) -> list[tuple[str, str]]:
    """``(sheet name, part path)`` of every worksheet of ``archive`` (an :class:`Archive` or ZipFile)."""
    return Archive.of(archive).sheet_parts()


def workbook_part(archive) -> str:
    return Archive.of(archive).workbook_part()


def _rels_part(part: str) -> str:
    if not part:
        return "_rels/.rels"
    path = PurePosixPath(part)
    return str(path.parent / "_rels" / f"{path.name}.rels")


def _resolve(base: str, target: str, where: str = "") -> str:
    if target.startswith("/"):
        return target.lstrip("/")
    parts: list[str] = []
    for piece in (PurePosixPath(base).parent / target).parts:
        if piece == "..":
            if not parts:
                raise ValueError(f"workbook: relationship target {target!r} in {where} leaves the archive")
            parts.pop()
        elif piece != ".":
            parts.append(piece)
    return "/".join(parts)


def write_zip_replacing(source: Path, target: Path, replacements: dict, limits: Limits = DEFAULT_LIMITS) -> None:
    """Copy the archive ``source`` to ``target``, replacing the named parts' contents.

    Entry order, names, timestamps and compression method are kept (parts are deflated at
    level 1: a workbook's sheets can be large, Excel reads any level), so an untouched part is
    byte-identical and a rewrite of the same content is deterministic.  Parts are copied
    through the same byte budget as they are read.  A replacement is bytes, or a list of
    byte slices written one after the other (a large part is then never joined in memory;
    the archive holds the same bytes as for the joined part).
    """
    budget = _Budget(limits, Path(source).name)
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(target, "w") as dst:
        for info in src.infolist():
            if info.filename in replacements:  # fastest deflate: a rewritten sheet is large, Excel reads any level
                data = replacements[info.filename]
                if isinstance(data, list):
                    _write_slices(dst, info, data)
                else:
                    dst.writestr(info, data, compress_type=info.compress_type, compresslevel=1)
            else:
                with _CountingReader(src.open(info), budget, info.filename) as fin:
                    dst.writestr(info, fin.read(), compress_type=info.compress_type, compresslevel=1)


def _write_slices(dst: zipfile.ZipFile, info: zipfile.ZipInfo, slices: list) -> None:
    """``dst.writestr(info, b"".join(slices), compresslevel=1)`` without the join: the
    same entry (``writestr`` itself sets these fields and writes through ``open``)."""
    info._compresslevel = 1
    info.file_size = sum(map(len, slices))
    with dst.open(info, mode="w") as out:
        for piece in slices:
            out.write(piece)
