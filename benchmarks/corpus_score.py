"""Score calculators against Excel on workbooks Excel itself saved (the shared excel-corpus).

Run on demand (not a test)::

    python benchmarks/corpus_score.py                              # xlmvar, soffice, ironcalc, formualizer, evalcore
    python benchmarks/corpus_score.py --calculators xlmvar soffice --misses 20
    python benchmarks/corpus_score.py --corpus /path/to/excel-corpus --limit 120

The scoring is the corpus README's: for each book, every formula cell's cached value is
removed in a copy (cells of an array formula's range included), the calculator recalculates
the copy in its own process, and each formula cell of its output is compared with Excel's
cached value: numbers to 1e-9 relative or 1e-12 absolute, text, TRUE/FALSE and error codes
exactly.  Cells whose formula calls NOW, TODAY, RAND, RANDBETWEEN, RANDARRAY, INFO or CELL are
skipped.  A calculator that crashes, is killed past ``--limit`` seconds or writes no output
scores every cell of that book as a miss, and the book is reported.  Misses are classed by the
outermost function of the cell's formula.

The corpus is read where it lies (default ``../shared/data/excel-corpus`` beside the
repository); its GPL files are never copied into the project, only into a temporary folder.
"""

from __future__ import annotations

import argparse
import math
import posixpath
import re
import sys
import tempfile
import zipfile
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree

sys.path.insert(0, str(Path(__file__).resolve().parent))
from calculators import Calculator  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CORPUS = ROOT.parent / "shared" / "data" / "excel-corpus"
DEFAULT_CALCULATORS = ("xlmvar", "soffice", "ironcalc", "formualizer", "evalcore")

NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
REL_NS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
PKG_REL_NS = "http://schemas.openxmlformats.org/package/2006/relationships"
VOLATILE = re.compile(r"\b(?:_xlfn\.)?(NOW|TODAY|RAND|RANDBETWEEN|RANDARRAY|INFO|CELL)\s*\(", re.I)
FUNCTION = re.compile(r"((?:_xlfn\.|_xlws\.)?[A-Za-z][A-Za-z0-9_.]*)\s*\(")
ESCAPE = re.compile(r"_x([0-9A-Fa-f]{4})_")
CELL = re.compile(r"([A-Z]+)([0-9]+)")
REL_TOL, ABS_TOL = 1e-9, 1e-12


def _q(tag: str) -> str:
    return f"{{{NS}}}{tag}"


def unescape(text: str) -> str:
    """OOXML's ``_xHHHH_`` escapes (control characters) decoded; ``_x005F_`` escapes ``_``."""
    return ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text)


def _col_number(letters: str) -> int:
    n = 0
    for ch in letters:
        n = n * 26 + ord(ch) - 64
    return n


def _col_letters(n: int) -> str:
    out = ""
    while n:
        n, r = divmod(n - 1, 26)
        out = chr(65 + r) + out
    return out


def cells_of(ref: str):
    """Every cell reference of a range like ``A1:C3`` (or a single cell)."""
    first, _, last = ref.replace("$", "").partition(":")
    last = last or first
    (c0, r0), (c1, r1) = [(m.group(1), int(m.group(2))) for m in map(CELL.fullmatch, (first, last))]
    for r in range(r0, r1 + 1):
        for c in range(_col_number(c0), _col_number(c1) + 1):
            yield f"{_col_letters(c)}{r}"


def sheet_parts(archive: zipfile.ZipFile) -> list[tuple[str, str]]:
    """(sheet name, part name) of every worksheet, in workbook order."""
    book = etree.fromstring(archive.read("xl/workbook.xml"))
    rels = etree.fromstring(archive.read("xl/_rels/workbook.xml.rels"))
    targets = {r.get("Id"): r.get("Target") for r in rels.iter(f"{{{PKG_REL_NS}}}Relationship")}
    parts = []
    for sheet in book.iter(_q("sheet")):
        target = targets.get(sheet.get(f"{{{REL_NS}}}id"), "")
        part = target.lstrip("/") if target.startswith("/") else posixpath.normpath(posixpath.join("xl", target))
        if part in archive.namelist():
            parts.append((sheet.get("name"), part))
    return parts


def _shared_strings(archive: zipfile.ZipFile) -> list[str]:
    if "xl/sharedStrings.xml" not in archive.namelist():
        return []
    root = etree.fromstring(archive.read("xl/sharedStrings.xml"))
    return [unescape("".join(t.text or "" for t in si.iter(_q("t")))) for si in root.iter(_q("si"))]


@dataclass(frozen=True)
class Value:
    """A cached cell value: kind is 'n', 's', 'b', 'e' or 'blank'."""

    kind: str
    value: object

    def __str__(self) -> str:
        return "(blank)" if self.kind == "blank" else repr(self.value) if self.kind == "s" else str(self.value)


BLANK = Value("blank", None)


def _value(cell, strings: list[str]) -> Value:
    kind = cell.get("t", "n")
    if kind == "inlineStr":
        node = cell.find(_q("is"))
        return Value("s", unescape("".join(t.text or "" for t in node.iter(_q("t"))))) if node is not None else BLANK
    v = cell.find(_q("v"))
    if v is None:
        return BLANK
    text = v.text or ""
    if kind == "s":
        return Value("s", strings[int(text)])
    if kind == "str":
        return Value("s", unescape(text))
    if kind == "b":
        return Value("b", text.strip() in ("1", "true", "TRUE"))
    if kind == "e":
        return Value("e", text.strip())
    try:
        return Value("n", float(text))
    except ValueError:
        return Value("s", unescape(text))


@dataclass
class Book:
    """The formula cells of a workbook: their formula text and cached value."""

    formulas: dict = field(default_factory=dict)  # (sheet, ref) -> formula text ('' if unknown)
    values: dict = field(default_factory=dict)  # (sheet, ref) -> Value, every cell with content
    array_cells: dict = field(default_factory=dict)  # part -> set of refs inside array ranges


def read_book(path: Path) -> Book:
    """Formula cells (array ranges included) and all cached values of an .xlsx."""
    book = Book()
    with zipfile.ZipFile(path) as archive:
        strings = _shared_strings(archive)
        for sheet, part in sheet_parts(archive):
            root = etree.fromstring(archive.read(part), etree.XMLParser(huge_tree=True))
            masters, arrays = {}, {}
            for cell in root.iter(_q("c")):
                ref = cell.get("r")
                book.values[(sheet, ref)] = _value(cell, strings)
                f = cell.find(_q("f"))
                if f is None:
                    continue
                text = f.text or ""
                if f.get("t") == "shared":
                    if text:
                        masters[f.get("si")] = text
                    else:
                        text = masters.get(f.get("si"), "")
                book.formulas[(sheet, ref)] = text
                if f.get("t") == "array" and f.get("ref"):
                    arrays[ref] = (f.get("ref"), text)
            inside = set()
            for anchor, (rng, text) in arrays.items():
                for ref in cells_of(rng):
                    inside.add(ref)
                    book.formulas.setdefault((sheet, ref), text)
            book.array_cells[part] = inside
    return book


def strip_cached_values(source: Path, target: Path) -> None:
    """Copy ``source`` to ``target`` without the cached value of any formula cell."""
    with zipfile.ZipFile(source) as archive:
        parts = dict((part, sheet) for sheet, part in sheet_parts(archive))
        book = read_book(source)
        with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as out:
            for info in archive.infolist():
                data = archive.read(info.filename)
                if info.filename in parts:
                    root = etree.fromstring(data, etree.XMLParser(huge_tree=True))
                    inside = book.array_cells[info.filename]
                    for cell in root.iter(_q("c")):
                        if cell.find(_q("f")) is None and cell.get("r") not in inside:
                            continue
                        for child in cell.findall(_q("v")) + cell.findall(_q("is")):
                            cell.remove(child)
                        cell.attrib.pop("t", None)
                    data = etree.tostring(root, xml_declaration=True, encoding="UTF-8", standalone=True)
                out.writestr(info, data)


def same(expected: Value, got: Value) -> bool:
    """Excel's value and a calculator's agree (the corpus README's tolerances)."""
    if expected.kind == "n" and got.kind == "n":
        a, b = expected.value, got.value
        return math.isclose(a, b, rel_tol=REL_TOL, abs_tol=ABS_TOL)
    if expected.kind == "blank" or got.kind == "blank":
        # an empty result: Excel caches "" (or, for a blank reference, 0) - accept what it stored
        return expected == got or (got.kind == "blank" and expected in (Value("s", ""), Value("n", 0.0)))
    return expected.kind == got.kind and expected.value == got.value


def function_class(formula: str) -> str:
    """The outermost function of a formula (without _xlfn.), or '(no function)'."""
    m = FUNCTION.search(formula.lstrip("=").lstrip("+"))
    if not m:
        return "(no function)"
    return re.sub(r"^(_xlfn\.|_xlws\.)", "", m.group(1)).upper()


@dataclass
class Score:
    cells: int = 0
    matched: int = 0
    failure: str = ""
    seconds: float = 0.0
    misses: list = field(default_factory=list)  # (sheet, ref, formula, expected, got)


def score_book(calculator: Calculator, path: Path, work: Path, limit: float) -> Score:
    expected = read_book(path)
    targets = {key: text for key, text in expected.formulas.items() if not VOLATILE.search(text)}
    score = Score(cells=len(targets))
    stripped = work / f"{path.stem}.stripped.xlsx"
    out = work / f"{path.stem}.{calculator.name}.xlsx"
    out.unlink(missing_ok=True)
    strip_cached_values(path, stripped)
    run = calculator.run(stripped, out, limit)
    score.seconds = run.seconds
    got = None
    if run.killed:
        score.failure = f"killed after {limit:.0f} s"
    elif not out.exists():  # a non-zero exit with an output (xlmvar: "cells ended in errors") is scored
        last = [line for line in run.stderr.strip().splitlines() if line.strip()][-1:] or [""]
        score.failure = f"exit {run.returncode}, no output: {last[0][:120]}"
    else:
        try:
            got = read_book(out)
        except Exception as exc:  # an unreadable output is the calculator's failure
            score.failure = f"unreadable output: {type(exc).__name__}: {exc}"[:160]
    for key, text in targets.items():
        value = got.values.get(key, BLANK) if got is not None else None
        if value is not None and same(expected.values.get(key, BLANK), value):
            score.matched += 1
        else:
            score.misses.append((*key, text, expected.values.get(key, BLANK), value))
    return score


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help="folder of Excel-saved .xlsx")
    parser.add_argument("--calculators", nargs="+", default=list(DEFAULT_CALCULATORS))
    parser.add_argument("--limit", type=float, default=300.0, help="seconds per book before the calculator is killed")
    parser.add_argument("--classes", type=int, default=25, help="how many miss classes to print")
    parser.add_argument("--misses", type=int, default=0, help="print this many example misses per calculator")
    parser.add_argument("--books", nargs="*", help="only these file names")
    args = parser.parse_args(argv)

    books = sorted(args.corpus.glob("*.xlsx"))
    if args.books:
        books = [b for b in books if b.name in args.books]
    if not books:
        print(f"no .xlsx in {args.corpus}", file=sys.stderr)
        return 2
    scores: dict[str, dict[str, Score]] = defaultdict(dict)
    with tempfile.TemporaryDirectory(prefix="corpus-score-") as tmp:
        for name in args.calculators:
            work = Path(tmp) / name
            work.mkdir()
            calculator = Calculator(name, work)
            if not calculator.writes:
                print(f"{name}: writes no values, cannot be scored", file=sys.stderr)
                continue
            for path in books:
                scores[name][path.name] = score_book(calculator, path, work, args.limit)
                print(f"  {name:12s} {path.name:45s} done", file=sys.stderr)
    names = list(scores)
    print(f"Excel corpus: {len(books)} books in {args.corpus}")
    print("match rate per book (matched/cells; a failed run counts all its cells as misses)\n")
    header = f"{'book':44s} {'cells':>6s} " + " ".join(f"{n:>12s}" for n in names)
    print(header)
    print("-" * len(header))
    for path in books:
        cells = scores[names[0]][path.name].cells
        row = f"{path.name:44s} {cells:6d} "
        for n in names:
            s = scores[n][path.name]
            row += f" {(s.matched / s.cells if s.cells else 1) * 100:10.1f}%{'!' if s.failure else ' '}"
        print(row)
    total = sum(scores[names[0]][b.name].cells for b in books)
    row = f"{'TOTAL':44s} {total:6d} "
    for n in names:
        row += f" {sum(s.matched for s in scores[n].values()) / total * 100:10.1f}% "
    print("-" * len(header))
    print(row)
    others = [b for b in books if not b.name.startswith("ironcalc-")]
    if others and len(others) < len(books):  # IronCalc's own test books flatter IronCalc
        cells = sum(scores[names[0]][b.name].cells for b in others)
        row = f"{'TOTAL without the ironcalc-* books':44s} {cells:6d} "
        for n in names:
            row += f" {sum(scores[n][b.name].matched for b in others) / cells * 100:10.1f}% "
        print(row)
    row = f"{'seconds (all books)':44s} {'':6s} "
    for n in names:
        row += f" {sum(s.seconds for s in scores[n].values()):10.1f}s "
    print(row)
    for n in names:
        failures = [(b, s.failure) for b, s in scores[n].items() if s.failure]
        for book, why in failures:
            print(f"! {n} on {book}: {why}")
    print("\nmisses by class (outermost function of the formula): misses / cells of that class")
    cells_by_class = Counter()
    for path in books:
        book = read_book(path)
        for text in book.formulas.values():
            if not VOLATILE.search(text):
                cells_by_class[function_class(text)] += 1
    missed = {n: Counter(function_class(m[2]) for s in scores[n].values() for m in s.misses) for n in names}
    order = sorted(set().union(*missed.values()), key=lambda c: -max(missed[n][c] for n in names))
    header = f"{'class':24s} {'cells':>6s} " + " ".join(f"{n:>12s}" for n in names)
    print(header)
    print("-" * len(header))
    for cls in order[: args.classes]:
        print(f"{cls:24s} {cells_by_class[cls]:6d} " + " ".join(f"{missed[n][cls]:12d}" for n in names))
    if args.misses:
        for n in names:
            print(f"\nexample misses of {n}:")
            shown = 0
            for book, s in scores[n].items():
                for sheet, ref, text, want, got in s.misses:
                    if shown >= args.misses:
                        break
                    if s.failure:
                        continue
                    print(f"  {book}:{sheet}!{ref} ={text[:70]}  excel {want}  got {got}")
                    shown += 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
