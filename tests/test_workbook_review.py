"""Defects a review of `xlmvar report` and the workbook reader found (stop 26), each pinned
against the closed form of the book or against the file as Excel would read it.
"""

from __future__ import annotations

import math
import zipfile
from statistics import NormalDist

import numpy as np
import pytest
import xlsxwriter

from xlmvar.cli import main as command
from xlmvar.workbook._evaluator import MAX_CELL_FORMATS, read_workbook
from xlmvar.workbook._limits import Limits
from xlmvar.workbook.report import book_report

X = np.array([5e6, 3e6, 2e6])
COV = np.array([[0.0225, -0.0045, 0.018], [-0.0045, 0.01, 0.006], [0.018, 0.006, 0.36]])
MU = np.array([0.0004, 0.0001, 0.002])


def _book(path, **names):
    """The SPY/TLT/BTC book on sheet S, its names as given (a definition text each)."""
    wb = xlsxwriter.Workbook(path)
    ws = wb.add_worksheet("S")
    for i, (asset, position) in enumerate(zip(("SPY", "TLT", "BTC"), X)):
        ws.write(i, 0, asset)
        ws.write(i, 1, position)
        ws.write(i, 2, MU[i])
        for j in range(3):
            ws.write(i, 3 + j, COV[i, j])
        ws.write(i, 7, (0.95, 0.99, 0.9)[i])
    base = {"Assets": "=S!$A$1:$A$3", "Positions": "=S!$B$1:$B$3", "Covariance": "=S!$D$1:$F$3"}
    for name, text in {**base, **names}.items():
        wb.define_name(name, text)
    ws.write_formula("J1", "=PORTVAR(Positions,Covariance)")
    wb.close()
    return path


def _var(c, h=1, mu=None):
    sigma = math.sqrt(float(X @ COV @ X))
    return NormalDist().inv_cdf(c) * sigma * math.sqrt(h) - (0.0 if mu is None else float(X @ mu) * h)


def test_constant_names_are_read_not_replaced_by_the_defaults(tmp_path):
    # =0.99 and =10 were read as "absent": a 95%, 1-period report, status 0
    report, _ = book_report(_book(tmp_path / "c.xlsx", Confidence="=0.99", Horizon="=10", Method='="normal"'))
    assert (report.confidence, report.horizon, report.method) == (0.99, 10, "normal")
    assert report.decomposition.total == pytest.approx(_var(0.99, 10), rel=1e-12)


@pytest.mark.parametrize("names, message", [
    ({"Confidence": "=S!$H$1:$H$3"}, r"the name Confidence \(S!\$H\$1:\$H\$3\) refers to 3 filled cells; the report reads one"),
    ({"Positions": "=#REF!"}, r"the name Positions \(#REF!\) does not refer to cells"),
    ({"Confidence": "=S!$H$1*2"}, r"the name Confidence \(S!\$H\$1\*2\) is neither one cell nor a constant"),
])
def test_names_the_report_cannot_read_as_one_value_are_refused(tmp_path, names, message):
    with pytest.raises(ValueError, match=message):  # was the default (95%) or the first cell
        book_report(_book(tmp_path / "b.xlsx", **names))


def test_the_mean_the_book_names_is_the_reports(tmp_path):
    report, _ = book_report(_book(tmp_path / "m.xlsx", Mean="=S!$C$1:$C$3", Confidence="=0.99"))
    assert report.decomposition.total == pytest.approx(_var(0.99, mu=MU), rel=1e-12)  # was without the mean
    plain, _ = book_report(_book(tmp_path / "p.xlsx", Confidence="=0.99"))
    assert plain.decomposition.total == pytest.approx(_var(0.99), rel=1e-12)


def _relocated(source, target, decoy: bool):
    """``source`` with its shared strings moved to xl/strings2.xml (the relationship says so),
    and, with ``decoy``, another table left at xl/sharedStrings.xml."""
    with zipfile.ZipFile(source) as a, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as b:
        for info in a.infolist():
            data = a.read(info)
            if info.filename == "xl/sharedStrings.xml":
                b.writestr("xl/strings2.xml", data)
                if decoy:
                    b.writestr(info, data.replace(b">SPY<", b">decoy<"))
                continue
            if info.filename in ("xl/_rels/workbook.xml.rels", "[Content_Types].xml"):
                data = data.replace(b"sharedStrings.xml", b"strings2.xml")
            b.writestr(info, data)
    return target


@pytest.mark.parametrize("decoy", [True, False])
def test_shared_strings_the_evaluation_core_would_not_read_are_refused(tmp_path, capsys, decoy):
    # the core reads xl/sharedStrings.xml whatever the relationships say: a decoy there gave
    # the formulas other text than the cells hold, with status 0
    book = _relocated(_book(tmp_path / "a.xlsx"), tmp_path / "moved.xlsx", decoy)
    before = book.read_bytes()
    assert command(["calc", str(book), "-o", str(tmp_path / "out.xlsx")]) == 2
    assert "its shared strings are in xl/strings2.xml, not in xl/sharedStrings.xml" in capsys.readouterr().err
    assert book.read_bytes() == before and not (tmp_path / "out.xlsx").exists()


def test_shared_strings_count_against_the_cell_limit(tmp_path):
    path = tmp_path / "s.xlsx"
    wb = xlsxwriter.Workbook(path)
    ws = wb.add_worksheet("S")
    for i in range(30):
        ws.write_string(i, 0, f"text {i}")
    wb.close()
    read_workbook(path, Limits(max_cells=30))
    with pytest.raises(ValueError, match=r"shared strings in xl/sharedStrings.xml: over the limit of 20 \(--max-cells raises it\)"):
        read_workbook(path, Limits(max_cells=20))


def test_more_cell_formats_than_excel_allows_are_refused(tmp_path):
    # the evaluation core holds every <xf>: 3 million of them, a 5 MB file, took it 3 GB
    source = _book(tmp_path / "a.xlsx")
    target = tmp_path / "styles.xlsx"
    with zipfile.ZipFile(source) as a, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as b:
        for info in a.infolist():
            data = a.read(info)
            if info.filename == "xl/styles.xml":
                many = b'<xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>' * (MAX_CELL_FORMATS + 1)
                data = data.replace(b"</cellXfs>", many + b"</cellXfs>")
                info.compress_type = zipfile.ZIP_STORED  # (compressed, it reads as a zip bomb first)
            b.writestr(info, data)
    read_workbook(source)
    with pytest.raises(ValueError, match=r"xl/styles.xml holds more than 65,490 cell formats, Excel's own limit"):
        read_workbook(target)


def test_command_line_refusals_name_the_option_and_come_before_any_write(tmp_path, capsys):
    book = _book(tmp_path / "c.xlsx")
    assert command(["calc", str(book), "-o", str(book)]) == 2
    assert f"-o: {book} is the input workbook" in capsys.readouterr().err  # was "target: ..."
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert command(["templates", str(afile)]) == 2
    assert f"folder: {afile} is a file, not a folder" in capsys.readouterr().err  # was "File exists"
    folder = tmp_path / "t"
    folder.mkdir()
    (folder / "edhec_history.xlsx").symlink_to(book)
    assert command(["templates", str(folder), "--force"]) == 2
    assert "is a symbolic link" in capsys.readouterr().err
    assert sorted(p.name for p in folder.iterdir()) == ["edhec_history.xlsx"]  # nothing written first


def test_long_asset_names_keep_the_report_s_columns():
    from xlmvar.workbook.report import BookReport, format_report
    from xlmvar.engine import risk

    d = risk.decompose(X, COV)
    report = BookReport(["Convertible Arbitrage", "TLT", "BTC"], X, risk.individual_var(X, COV), d, 1.0, 0.95, 1, "normal")
    lines = format_report(report).splitlines()
    rows = [line for line in lines[1:6] if line and not line.startswith("-")]
    assert len({len(line) for line in rows}) == 1  # header and every row line up


@pytest.mark.parametrize("names, confidence", [
    ({"Confidence": "=S!$H$2:$I$2"}, 0.99),  # a merged input cell named from the Name Box: one value
    ({"Confidence": "=99%"}, 0.99),
    ({"Confidence": "=ConfCell", "ConfCell": "=S!$H$2"}, 0.99),  # a name for a name
])
def test_one_value_written_the_ways_excel_writes_it(tmp_path, names, confidence):
    report, _ = book_report(_book(tmp_path / "v.xlsx", **names))
    assert report.confidence == confidence
    assert report.decomposition.total == pytest.approx(_var(confidence), rel=1e-12)


@pytest.mark.parametrize("mean", ["=S!$C$1", "=0.001", "=S!$K$1:$K$3"])
def test_a_name_mean_that_is_not_the_books_means_is_left_alone(tmp_path, mean):
    # one cell, a constant, blank cells: some other mean, not one per asset with numbers
    report, _ = book_report(_book(tmp_path / "m.xlsx", Mean=mean, Confidence="=0.99"))
    assert report.decomposition.total == pytest.approx(_var(0.99), rel=1e-12)
