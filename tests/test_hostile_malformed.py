"""Malformed and hostile workbooks: one line on stderr and exit status 2, never a traceback.

Each file is built here from a valid XlsxWriter workbook with one part damaged, the way a
truncated download, a buggy exporter or an attacker would leave it.
"""

import zipfile

import pytest

from _hostile import NS, SHEET1, book, replace_parts, run_cli, sheet_xml, with_sheet
from xlmvar.cli import main

WB = "xl/workbook.xml"
WB_RELS = "xl/_rels/workbook.xml.rels"


def _valid(tmp_path):
    def build(wb):
        s = wb.add_worksheet("S")
        s.write_number("A1", 2)
        s.write_string("A2", "text")
        s.write_formula("B1", "=A1*21", None, 42)

    return book(tmp_path / "valid.xlsx", build)


def _truncated(tmp_path):
    data = _valid(tmp_path).read_bytes()
    bad = tmp_path / "bad.xlsx"
    bad.write_bytes(data[: len(data) // 2])
    return bad


def _edited(name, make):
    def build(tmp_path):
        valid = _valid(tmp_path)
        with zipfile.ZipFile(valid) as z:
            parts = {n: z.read(n) for n in z.namelist()}
        edit = make(parts)
        drop = edit.pop("__drop__", ())
        return replace_parts(valid, tmp_path / f"{name}.xlsx", edit, drop=drop)

    return build


MALFORMED = {
    "truncated zip": (_truncated, "not"),
    "missing workbook part": (_edited("noworkbook", lambda p: {"__drop__": (WB,)}), "lacks its workbook part xl/workbook.xml"),
    "bad XML": (_edited("badxml", lambda p: {SHEET1: p[SHEET1][:-40]}), "not well-formed XML"),
    "missing sheet part": (_edited("nosheet", lambda p: {"__drop__": (SHEET1,)}), "lacks the part xl/worksheets/sheet1.xml"),
    "bad relationships": (
        _edited("badrels", lambda p: {WB_RELS: p[WB_RELS].replace(b'Target="worksheets/sheet1.xml"', b"")}),
        "relationship without Id or Target",
    ),
    "relationship leaving the archive": (
        _edited("escape", lambda p: {WB_RELS: p[WB_RELS].replace(b'Target="worksheets/sheet1.xml"', b'Target="../../../etc/passwd"')}),
        "leaves the archive",
    ),
    "non-numeric value": (
        _edited("nan", lambda p: {SHEET1: sheet_xml('<row r="1"><c r="A1"><v>twelve</v></c></row>')}),
        "cell A1 holds 'twelve' where a number is expected",
    ),
    "a number only Python reads": (
        _edited("inf", lambda p: {SHEET1: sheet_xml('<row r="1"><c r="A1"><v>inf</v></c></row>')}),
        "cell A1 holds 'inf' where a number is expected",
    ),
    "a boolean other than 0 or 1": (
        _edited("bool", lambda p: {SHEET1: sheet_xml('<row r="1"><c r="A1" t="b"><v>true</v></c></row>')}),
        "cell A1 holds 'true' where 0 or 1 (FALSE or TRUE) is expected",
    ),
    "a cell in a row it does not name": (  # IronCalc put it in row 3, the reader in row 1
        _edited("rowref", lambda p: {SHEET1: sheet_xml('<row r="1"><c r="A1"><v>4</v></c><c r="B3"><f>A1*2</f><v>8</v></c></row>')}),
        "has the cell B3 in row 1",
    ),
    "a cell written twice": (  # which one counts is anyone's guess: IronCalc took the last
        _edited("twice", lambda p: {SHEET1: sheet_xml('<row r="1"><c r="A1"><v>4</v></c><c r="B1"><f>A1*2</f><v>8</v></c>'
                                                      '<c r="B1"><v>99</v></c></row>')}),
        "has two cells at B1",
    ),
    "bad cell reference": (
        _edited("ref", lambda p: {SHEET1: sheet_xml('<row r="1"><c r="1A"><v>1</v></c></row>')}),
        "has a cell at '1A', not a cell reference",
    ),
    "cell outside the sheet": (
        _edited("far", lambda p: {SHEET1: sheet_xml('<row r="1"><c r="XFE1"><v>1</v></c></row>')}),
        "not a cell reference",
    ),
    "shared string past the end": (
        _edited("sst", lambda p: {SHEET1: sheet_xml('<row r="1"><c r="A1" t="s"><v>7</v></c></row>')}),
        "refers to shared string 7, but the workbook holds 1",
    ),
    "negative shared string index": (
        _edited("neg", lambda p: {SHEET1: sheet_xml('<row r="1"><c r="A1" t="s"><v>-1</v></c></row>')}),
        "refers to shared string -1",
    ),
    "bad shared strings part": (_edited("sstxml", lambda p: {"xl/sharedStrings.xml": b"<sst><si><t>a</si></sst>"}), "not well-formed XML"),
    "bad row number": (
        _edited("row", lambda p: {SHEET1: sheet_xml('<row r="x"><c r="A1"><v>1</v></c></row>')}),
        "has a row numbered 'x'",
    ),
    "sheet-local name of a missing sheet": (
        _edited(
            "localname",
            lambda p: {WB: p[WB].replace(b"</sheets>", b'</sheets><definedNames><definedName name="X" localSheetId="9">S!A1</definedName></definedNames>')},
        ),
        "local to sheet '9', which does not exist",
    ),
    "duplicate zip entries": (
        lambda tmp_path: replace_parts(_valid(tmp_path), tmp_path / "dup.xlsx", {}, extra=[(SHEET1, sheet_xml('<row r="1"><c r="A1"><v>666</v></c></row>'))]),
        "two zip entries named xl/worksheets/sheet1.xml",
    ),
    "orphan shared formula": (
        _edited(
            "orphan",
            lambda p: {SHEET1: sheet_xml('<row r="1"><c r="A1"><v>1</v></c><c r="B1"><f t="shared" si="4"/><v>999</v></c></row>')},
        ),
        "cell B1 uses shared formula 4, whose anchor cell is missing",
    ),
    "array range that is no range": (
        _edited("arr", lambda p: {SHEET1: sheet_xml('<row r="1"><c r="A1"><f t="array" ref="A1:ZZZZ9">1</f><v>1</v></c></row>')}),
        "has an array range 'A1:ZZZZ9', not a range",
    ),
}


@pytest.mark.parametrize("kind", sorted(MALFORMED))
def test_malformed_workbook_is_one_line_and_status_2(tmp_path, capsys, kind):
    make, expected = MALFORMED[kind]
    bad = make(tmp_path)
    out = tmp_path / "out.xlsx"
    assert main(["calc", str(bad), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert expected in err, err
    assert not out.exists()
    assert main(["report", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and expected in err, err


def test_debug_shows_the_traceback(tmp_path, capsys):
    bad = MALFORMED["bad XML"][0](tmp_path)
    assert main(["calc", str(bad), "--debug"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().splitlines()[-1].startswith("xlmvar calc: workbook: part")


def test_doctype_anywhere_in_a_part_is_refused(tmp_path, capsys):
    # the DOCTYPE comes after 8 KB of comment: a check of the first 4096 bytes misses it
    before = '<?xml version="1.0"?>' + "<!--" + "x" * 8192 + "-->" + '<!DOCTYPE w [<!ENTITY big "0123456789">]>'
    bad = with_sheet(tmp_path, '<row r="1"><c r="A1" t="inlineStr"><is><t>&big;</t></is></c></row>', "dtd.xlsx")
    with zipfile.ZipFile(bad) as z:
        parts = {SHEET1: sheet_xml('<row r="1"><c r="A1" t="inlineStr"><is><t>&big;</t></is></c></row>').replace(
            b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n', before.encode())}
        assert z.namelist()
    bad = replace_parts(bad, tmp_path / "dtd2.xlsx", parts)
    assert main(["calc", str(bad)]) == 2
    assert "declares a DTD or XML entities" in capsys.readouterr().err


def test_an_apostrophe_in_a_sheet_name(tmp_path):
    from xlmvar.workbook.calc import recalculate

    def build(wb):
        s = wb.add_worksheet("Bob's data")
        s.write_number("A1", 3)
        s.write_number("A2", 4)
        t = wb.add_worksheet("T")
        t.write_formula("A1", "=SUM('Bob''s data'!A1:A2)*'Bob''s data'!A1")
        s.write_formula("B1", "=A1+A2")

    r = recalculate(book(tmp_path / "apos.xlsx", build))
    assert r.errors == [] and r.value("T", "A1") == (3 + 4) * 3 and r.value("Bob's data", "B1") == 7


def test_bad_usage_and_missing_input_are_status_2(tmp_path, capsys):
    assert main(["calc"]) == 2
    assert main(["calc", str(tmp_path / "missing.xlsx")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["calc", str(tmp_path)]) == 2
    assert "not a regular file" in capsys.readouterr().err
    good = _valid(tmp_path)
    assert main(["calc", str(good), "--max-cells", "0"]) == 2
    assert "--max-cells: must be a positive number" in capsys.readouterr().err


def test_bounded_subprocess_reports_malformed_input_without_traceback(tmp_path):
    bad = MALFORMED["non-numeric value"][0](tmp_path)
    done = run_cli("calc", bad, timeout=60)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip() == "xlmvar calc: workbook: sheet 'S' cell A1 holds 'twelve' where a number is expected; the file is malformed"
    assert NS  # the helper's namespace is what Excel writes


def test_the_1904_date_system_is_refused_not_read_1462_days_off(tmp_path, capsys):
    # DATE(2020,1,1) is 42,369 in a 1904 workbook; both cores counted from 1900 (43,831) and
    # YEAR(0) gave 1900 instead of 1904, silently
    import xlsxwriter

    path = tmp_path / "mac.xlsx"
    wb = xlsxwriter.Workbook(str(path), {"date_1904": True})
    wb.add_worksheet("S").write_formula("A1", "=DATE(2020,1,1)")
    wb.close()
    assert main(["calc", str(path), "-o", str(tmp_path / "out.xlsx")]) == 2
    assert "uses the 1904 date system" in capsys.readouterr().err
    assert not (tmp_path / "out.xlsx").exists()
