"""The committed template workbooks are what the generators write, compared as workbooks.

Generation is byte-for-byte deterministic on one machine.  Across machines the cached values
(floats computed by numpy) may differ in their last digits with the BLAS library and its
thread count, so the committed workbooks are compared with freshly generated ones structurally:
the same parts, the same formulas, constants, styles and names, and cached numbers equal to
1e-12 relative (see ``_workbooks.assert_same_workbook``).
"""

from __future__ import annotations

import re
import shutil
import zipfile

import pytest

from xlmvar.workbook import templates

from _workbooks import WORKBOOKS, assert_same_workbook

NAMES = list(templates.TEMPLATES)


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    """Every template generated once into a temporary folder: {name: path}."""
    folder = tmp_path_factory.mktemp("fresh")
    return {path.stem: path for path in templates.build_all(folder)}


@pytest.mark.parametrize("name", NAMES)
def test_committed_template_is_what_the_generator_writes(fresh, name):
    assert_same_workbook(WORKBOOKS / f"{name}.xlsx", fresh[name])


@pytest.mark.parametrize("name", NAMES)
def test_generation_is_byte_for_byte_deterministic_on_one_machine(fresh, name, tmp_path):
    again = templates.build(name, tmp_path / f"{name}.xlsx")
    assert again.read_bytes() == fresh[name].read_bytes()


def _rewrite_sheet(source, target, edit):
    """Copy a workbook, passing its first sheet's XML through ``edit``."""
    with zipfile.ZipFile(source) as a, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as b:
        for info in a.infolist():
            data = a.read(info)
            if info.filename == "xl/worksheets/sheet1.xml":
                data = edit(data.decode()).encode()
            b.writestr(info, data)


def test_the_comparison_tolerates_last_digits_and_nothing_more(tmp_path):
    book = WORKBOOKS / "spy_tlt_btc.xlsx"
    xml = zipfile.ZipFile(book).read("xl/worksheets/sheet1.xml").decode()
    # the cached PORTVAR value, as any viewer reads it
    (value,) = re.findall(r"<f>PORTVAR\(Positions,Covariance,Confidence,Horizon\)</f><v>([^<]+)</v>", xml)

    def with_value(new):
        return lambda text: text.replace(f"PORTVAR(Positions,Covariance,Confidence,Horizon)</f><v>{value}<",
                                         f"PORTVAR(Positions,Covariance,Confidence,Horizon)</f><v>{new!r}<")

    near, far, restyled = tmp_path / "near.xlsx", tmp_path / "far.xlsx", tmp_path / "restyled.xlsx"
    _rewrite_sheet(book, near, with_value(float(value) * (1 + 4e-16)))
    assert_same_workbook(book, near)
    _rewrite_sheet(book, far, with_value(float(value) * (1 + 1e-10)))
    with pytest.raises(AssertionError, match="cached"):
        assert_same_workbook(book, far)
    # one input cell's style changed: the sheet XML and the cell's style both differ
    restyle = lambda text: re.sub(r'<c r="B11" s="(\d+)"', lambda m: f'<c r="B11" s="{int(m[1]) + 1}"', text)  # noqa: E731
    _rewrite_sheet(book, restyled, restyle)
    with pytest.raises(AssertionError):
        assert_same_workbook(book, restyled)
    shutil.copy(book, tmp_path / "same.xlsx")
    assert_same_workbook(book, tmp_path / "same.xlsx")
