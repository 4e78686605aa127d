"""The command line never damages a file, and says why it will not write one.

Refuses to write over its input (same path, symbolic or hard link), refuses an output that
is not a regular file or a new path; ``--in-place`` keeps the file's mode and writes through
a symbolic link; a new file gets the umask's mode; no temporary file survives a failure or
SIGTERM.  Also the ``report`` command's messages for named inputs it cannot use.
"""

import os
import signal
import stat
import subprocess
import sys
import textwrap
import time

import pytest

from _hostile import book
from xlmvar.cli import main


def _small_book(path):
    def build(wb):
        s = wb.add_worksheet("S")
        s.write_number("A1", 2)
        s.write_formula("B1", "=A1*21", None, 0)

    return book(path, build)


def test_refuses_to_write_over_its_input(tmp_path, capsys):
    src = _small_book(tmp_path / "b.xlsx")
    before = src.read_bytes()
    link = tmp_path / "link.xlsx"
    link.symlink_to(src)
    hard = tmp_path / "hard.xlsx"
    os.link(src, hard)
    for command in ("calc", "report"):
        for target in (src, link, hard, tmp_path / "." / "b.xlsx"):
            assert main([command, str(src), "-o", str(target)]) == 2, (command, target)
            err = capsys.readouterr().err
            assert ("is the input workbook" in err or "symbolic link" in err), err
    assert src.read_bytes() == before and link.is_symlink()


def test_output_must_be_a_regular_file_or_a_new_path(tmp_path, capsys):
    src = _small_book(tmp_path / "b.xlsx")
    fifo = tmp_path / "pipe.xlsx"
    os.mkfifo(fifo)
    other = tmp_path / "other.xlsx"
    other.write_bytes(b"old")
    link = tmp_path / "link.xlsx"
    link.symlink_to(other)
    for target, phrase in ((fifo, "not a regular file"), (link, "symbolic link"), (tmp_path, "a folder"), (os.devnull, "not a regular file")):
        assert main(["calc", str(src), "-o", str(target)]) == 2
        assert phrase in capsys.readouterr().err
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and other.read_bytes() == b"old" and link.is_symlink()
    assert main(["calc", str(src), "-o", str(other)]) == 0  # a regular file is replaced
    assert other.read_bytes() != b"old"


def test_new_files_get_the_umask_mode_and_in_place_keeps_mode_and_link(tmp_path):
    src = _small_book(tmp_path / "b.xlsx")
    old = os.umask(0o027)
    try:
        assert main(["calc", str(src), "-o", str(tmp_path / "new.xlsx")]) == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "new.xlsx").st_mode) == 0o640  # 0o666 & ~0o027
    os.chmod(src, 0o604)
    link = tmp_path / "link.xlsx"
    link.symlink_to(src.name)
    assert main(["calc", str(link), "--in-place"]) == 0
    assert link.is_symlink() and os.readlink(link) == src.name
    assert stat.S_IMODE(os.stat(src).st_mode) == 0o604
    from xlmvar.workbook.calc import recalculate

    assert recalculate(src).value("S", "B1") == 42
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.xlsx", "link.xlsx", "new.xlsx"]


def test_sigterm_during_the_write_leaves_no_temporary_file(tmp_path):
    src = _small_book(tmp_path / "b.xlsx")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    code = textwrap.dedent(
        f"""
        import sys, time
        from xlmvar.workbook import calc as c
        real = c.write_zip_replacing
        def slow(*args, **kwargs):
            real(*args, **kwargs)
            print("writing", flush=True)
            time.sleep(60)
        c.write_zip_replacing = slow
        from xlmvar.cli import main
        sys.exit(main(["calc", {str(src)!r}, "-o", {str(out_dir / "o.xlsx")!r}]))
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    assert any(p.name.endswith(".tmp") for p in out_dir.iterdir())  # the write is under way
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 128 + signal.SIGTERM
    assert list(out_dir.iterdir()) == []


def test_atomic_write_syncs_file_and_folder(tmp_path, monkeypatch):
    from xlmvar.workbook import _safe_write

    synced = []
    real = os.fsync
    monkeypatch.setattr(_safe_write.os, "fsync", lambda fd: (synced.append(os.fstat(fd).st_mode), real(fd)))
    _safe_write.atomic_write(tmp_path / "f.bin", lambda p: p.write_bytes(b"data"))
    kinds = ["file" if stat.S_ISREG(m) else "folder" for m in synced]
    assert kinds == ["file", "folder", "folder"]  # the data, then the folder before and after the rename
    assert (tmp_path / "f.bin").read_bytes() == b"data"


# -------------------------------------------------------------------------------------
# report: named inputs it cannot use
# -------------------------------------------------------------------------------------
def _report_book(path, *, positions=(1e6, 2e6), assets=("SPY", "TLT"), hidden_local=False, blank=None, error=None):
    def build(wb):
        s = wb.add_worksheet("Book")
        for i, name in enumerate(assets):
            s.write_string(i, 0, name)
        for i, x in enumerate(positions):
            if blank == i:
                continue
            if error == i:
                s.write_formula(i, 1, "=NA()")
            else:
                s.write_number(i, 1, x)
        s.write_row(0, 3, [0.04, 0.006])
        s.write_row(1, 3, [0.006, 0.01])
        s.write_number("G1", 0.99)
        s.write_number("G2", 1)
        n = len(positions)
        wb.define_name("Assets", f"=Book!$A$1:$A${len(assets)}")
        wb.define_name("Positions", f"=Book!$B$1:$B${n}")
        wb.define_name("Covariance", "=Book!$D$1:$E$2")
        wb.define_name("Confidence", "=Book!$G$1")
        wb.define_name("Horizon", "=Book!$G$2")
        if hidden_local:
            h = wb.add_worksheet("Hidden")
            h.write_number("A1", 0.5)
            h.hide()
            wb.define_name("Hidden!Confidence", "=Hidden!$A$1")

    path = book(path, build)
    if hidden_local:  # list the hidden local name first, as a workbook edited by hand may
        import re
        import zipfile

        from _hostile import replace_parts

        with zipfile.ZipFile(path) as z:
            xml = z.read("xl/workbook.xml").decode()
        local = re.search(r'<definedName name="Confidence" localSheetId="1">[^<]*</definedName>', xml).group()
        xml = xml.replace(local, "").replace("<definedNames>", "<definedNames>" + local.replace("<definedName ", '<definedName hidden="1" '))
        path = replace_parts(path, path.with_name("edited-" + path.name), {"xl/workbook.xml": xml.encode()})
    return path


def test_report_names_a_blank_or_error_input(tmp_path, capsys):
    assert main(["report", str(_report_book(tmp_path / "blank.xlsx", blank=1))]) == 2
    assert "the name Positions (Book!$B$1:$B$2) holds a blank cell at row 2, column 1; expected a number" in capsys.readouterr().err
    assert main(["report", str(_report_book(tmp_path / "err.xlsx", error=0))]) == 2
    assert "the name Positions (Book!$B$1:$B$2) holds the error #N/A at row 1, column 1" in capsys.readouterr().err


def test_report_refuses_assets_and_positions_of_different_lengths(tmp_path, capsys):
    path = _report_book(tmp_path / "short.xlsx", assets=("SPY",))
    assert main(["report", str(path)]) == 2
    err = capsys.readouterr().err
    assert "Assets (Book!$A$1:$A$1) lists 1 asset(s) but Positions (Book!$B$1:$B$2) holds 2 position(s)" in err


def test_report_takes_the_global_name_over_a_hidden_local_one(tmp_path, capsys):
    from xlmvar.engine import risk

    path = _report_book(tmp_path / "hidden.xlsx", hidden_local=True)
    assert main(["report", str(path)]) == 0
    out = capsys.readouterr().out
    assert "confidence 99.00%" in out
    expected = risk.decompose([1e6, 2e6], [[0.04, 0.006], [0.006, 0.01]], "var", 0.99, 1).total
    assert f"{expected:>16,.0f}" in out
    assert pytest and time


@pytest.mark.skipif(os.geteuid() != 0, reason="changing a file's owner needs root")
def test_in_place_keeps_the_owner(tmp_path):
    src = _small_book(tmp_path / "b.xlsx")
    os.chown(src, 12345, 23456)
    assert main(["calc", str(src), "--in-place"]) == 0
    info = os.stat(src)
    assert (info.st_uid, info.st_gid) == (12345, 23456)
