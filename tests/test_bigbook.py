"""The large-book paths of the reader and the writer read and write what the simple paths do.

A book of a million formulas is read a slice of rows at a time (the fast lane's formula
tuples, the order of its cells checked as arrays), its values are kept in a table over the
formula list rather than a dict, and its sheets are patched a slice at a time and streamed
into the archive.  Each test here compares such a path with a plain one: a brute-force loop,
the element-by-element reader, a dict, a joined part.
"""

import random
import re
import zipfile

import numpy as np
import pytest
import xlsxwriter
from _hostile import with_sheet

from xlmvar.workbook import _evaluator, _sheetscan, calc
from xlmvar.workbook._evaluator import read_workbook
from xlmvar.workbook._xlsx import write_zip_replacing

COLUMNS = ["A", "B", "C", "Z", "AA", "AB", "BA", "ZZ", "AAA"]


def _in_order_by_loop(cells: bytes):
    """The order check cell by cell: row tags ascending as text (length, then bytes), each
    cell in the row the last row tag names, columns ascending as text within a row; and the
    largest row and column of the cells."""
    row = previous = b""
    last = (0, b"")
    rows, cols = [0], [0]
    for number, letters, cell_row in re.findall(rb'<row r="([0-9]+)"|<c r="([A-Z]{1,3})([0-9]+)"', cells):
        if number:
            if (len(number), number) <= (len(previous), previous):
                return None
            previous = row = number
            last = (0, b"")
        else:
            if cell_row != row or (len(letters), letters) <= last:
                return None
            last = (len(letters), letters)
            rows.append(int(cell_row))
            cols.append(_evaluator.col_index(letters.decode()))
    return max(rows), max(cols)


def _random_cells(rng: random.Random) -> bytes:
    parts, r = [], 0
    for _ in range(rng.randint(0, 5)):
        r = max(1, r + rng.choice([1, 1, 1, 2, 0, -1, 9, 10, 100]))
        if rng.random() < 0.9:
            parts.append(b'<row r="%d">' % r)
        columns = sorted(rng.sample(COLUMNS, rng.randint(0, 4)), key=lambda c: (len(c), c))
        if rng.random() < 0.2:
            rng.shuffle(columns)
        for c in columns:
            cell_row = r if rng.random() < 0.93 else rng.choice([r + 1, max(1, r - 1), r * 10])
            parts.append(b'<c r="%s%d"><v>1</v></c>' % (c.encode(), cell_row))
        if rng.random() < 0.95:
            parts.append(b"</row>")
    return b"".join(parts)


@pytest.mark.parametrize("size", [1, 40, 1 << 20])
def test_the_order_check_by_slices_agrees_with_a_loop(monkeypatch, size):
    slices = _sheetscan._slices
    monkeypatch.setattr(_sheetscan, "_slices", lambda data, _=None: slices(data, size))
    rng = random.Random(size)
    verdicts = []
    for _ in range(1500):
        cells = _random_cells(rng)
        expected = _in_order_by_loop(cells)
        assert _sheetscan._in_order(cells, _evaluator.col_index) == expected, cells
        verdicts.append(expected is not None)
    assert 0.2 < np.mean(verdicts) < 0.8  # both verdicts are exercised


PLAIN = (  # plain formula cells (no type, no shared or array formula), as the batch path takes them
    '<row r="1"><c r="A1"><v>2</v></c><c r="B1"><f>A1*2</f><v>4</v></c><c r="C1" s="1"><f>"a&amp;b"&amp;A1</f><v>0</v></c>'
    '<c r="D1"><f>A1/3</f><v>0.66666666666666663</v></c><c r="E1"><f>-A1</f><v>-2E-3</v></c><c r="F1"><f>A1+1</f></c></row>'
    '<row r="2"><c r="B2"><f>IF(A1,"x\ny","z")</f><v>7</v></c><c r="C2"><f>IF(A1,"x\r\ny","z")</f><v>0</v></c>'
    '<c r="D2"><f>A1&lt;3</f><v>1</v></c></row>'
    '<row r="3"><c r="A3"><f>B1+B2</f><v>1</v></c><c r="B3"><f>SUM(A1:A2)</f><v>1</v></c><c r="C3"><f>A1</f><v>2</v></c></row>'
)


def _same_both_ways(path, monkeypatch):
    fast = read_workbook(path)
    with monkeypatch.context() as m:
        m.setattr(_evaluator, "_FAST_LANE_BYTES", -1)  # every sheet element by element
        slow = read_workbook(path)
    assert [(f.sheet, f.anchor, f.target, f.text, repr(f.cached), f.dynamic, f.array) for f in fast.formulas] == \
           [(f.sheet, f.anchor, f.target, f.text, repr(f.cached), f.dynamic, f.array) for f in slow.formulas]
    assert [(s.max_row, s.max_col) for s in fast.sheets.values()] == [(s.max_row, s.max_col) for s in slow.sheets.values()]
    return fast


@pytest.mark.parametrize("slice_bytes", [1, 1 << 20])
def test_plain_formulas_in_one_batch_read_as_the_element_reader_reads_them(tmp_path, monkeypatch, slice_bytes):
    monkeypatch.setattr(_sheetscan, "_CHUNK", slice_bytes)
    monkeypatch.setattr(_sheetscan.Scan.chunks, "__defaults__", (slice_bytes,))
    fast = _same_both_ways(with_sheet(tmp_path, PLAIN), monkeypatch)
    texts = {f.anchor: f.text for f in fast.formulas}
    assert texts["C1"] == '"a&b"&A1' and texts["B2"] == 'IF(A1,"x\ny","z")' and texts["C2"] == 'IF(A1,"x\ny","z")'
    cached = {f.anchor: f.cached for f in fast.formulas}
    assert cached["F1"] is None and cached["B3"] == 1 and cached["C3"] == 2 and cached["E1"] == -0.002


def test_a_malformed_cached_value_among_plain_formulas_is_refused_by_name(tmp_path):
    cells = '<row r="1"><c r="A1"><v>2</v></c><c r="B1"><f>A1*2</f><v>4</v></c><c r="C1"><f>A1*3</f><v>1_0</v></c></row>'
    with pytest.raises(ValueError, match=r"cell C1 holds '1_0' where a number is expected"):
        read_workbook(with_sheet(tmp_path, cells))


def _small_book(path):
    wb = xlsxwriter.Workbook(str(path))
    s = wb.add_worksheet("Data")
    for i in range(30):
        s.write_number(i, 0, i + 1.5)
        s.write_formula(i, 1, f"=A{i + 1}*2", None, 0)
        s.write_formula(i, 2, f'=IF(A{i + 1}>20,"big",A{i + 1}/0)', None, 0)
    s.write_array_formula("E1:E3", "{=A1:A3*10}", None, 0)
    wb.add_worksheet("Other").write_formula("A1", "=SUM(Data!A1:A30)", None, 0)
    wb.close()
    return path


def test_the_formula_table_is_the_dict_it_stands_for(tmp_path):
    recalc = calc.recalculate(_small_book(tmp_path / "small.xlsx"))
    values, formulas = dict(recalc.values.items()), dict(recalc.formulas.items())
    assert list(values) == list(recalc.values) == list(formulas) and len(values) == len(recalc.values) == 62  # 30 + 30 + 1 + 1
    assert formulas[("Data", "B3")] == "A3*2" and formulas[("Data", "E1:E3")] == "A1:A3*10"
    assert recalc.values[("Data", "B3")].shape == (1, 1) and recalc.values[("Data", "B3")][0, 0] == 7.0  # 3.5 * 2
    assert recalc.values[("Data", "E1:E3")].ravel().tolist() == [15.0, 25.0, 35.0]
    assert recalc.values[("Other", "A1")][0, 0] == sum(i + 1.5 for i in range(30))
    assert ("Data", "Z9") not in recalc.values and ("Data", "B3") in recalc.values
    with pytest.raises(KeyError):
        recalc.values[("Data", "Z9")]
    assert recalc.value("Data", "E2") == 25.0 and recalc.formula_count == 62


def test_the_writer_writes_the_same_from_the_table_and_from_a_dict(tmp_path):
    source = _small_book(tmp_path / "small.xlsx")
    recalc = calc.recalculate(source)
    as_dicts = calc.Recalculation(source=source, values=dict(recalc.values.items()), formulas=dict(recalc.formulas.items()),
                                  dynamic=recalc.dynamic, kept_targets=recalc.kept_targets)
    calc.write_cached_values(source, tmp_path / "table.xlsx", recalc)
    calc.write_cached_values(source, tmp_path / "dict.xlsx", as_dicts)
    with zipfile.ZipFile(tmp_path / "table.xlsx") as a, zipfile.ZipFile(tmp_path / "dict.xlsx") as b:
        assert [(i.filename, a.read(i)) for i in a.infolist()] == [(i.filename, b.read(i)) for i in b.infolist()]
        assert b'<c r="B3"><f>A3*2</f><v>7.0</v></c>' in a.read("xl/worksheets/sheet1.xml")


def test_a_part_written_in_slices_is_the_part_written_whole(tmp_path):
    source = _small_book(tmp_path / "small.xlsx")
    rng = np.random.default_rng(3)
    data = rng.integers(65, 91, 300_000).astype(np.uint8).tobytes()  # A-Z
    cuts = sorted(rng.integers(0, len(data), 7).tolist())
    slices = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)])]
    part = "xl/worksheets/sheet1.xml"
    write_zip_replacing(source, tmp_path / "whole.xlsx", {part: data})
    write_zip_replacing(source, tmp_path / "slices.xlsx", {part: slices})
    assert (tmp_path / "whole.xlsx").read_bytes() == (tmp_path / "slices.xlsx").read_bytes()


def test_the_element_reader_reads_a_read_ahead_part_in_linear_time():
    """The fast lane's read-ahead (up to 256 MB) is handed back to the element reader as the
    start of the stream; reading it 8 KB at a time copies each byte once (it was copied again
    on every read: an over-limit 1.25M-formula book took 61 s to be refused, now 19 s)."""
    import io
    import time

    from xlmvar.workbook._xlsx import _Prefixed

    head, tail = bytes(range(256)) * (1 << 17), b"tail" * 1000  # 32 MiB read ahead
    stream, pieces, start = _Prefixed(head, io.BytesIO(tail)), [], time.perf_counter()
    while piece := stream.read(8192):
        pieces.append(piece)
    assert time.perf_counter() - start < 2.0  # copying the rest on each read: 64 GB, minutes
    assert b"".join(pieces) == head + tail and max(map(len, pieces)) == 8192
