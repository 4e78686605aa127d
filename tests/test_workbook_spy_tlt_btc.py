"""The SPY/TLT/BTC template: regenerated deterministically, recalculated headlessly, checked
cell by cell against the engine, against its native-formula cross-check block and against
LibreOffice recalculating that block independently."""

import shutil
import zipfile

import numpy as np
import openpyxl
import pytest

import xlmvar
from xlmvar.workbook.calc import Recalculation, calc, recalculate, write_cached_values

from _workbooks import WORKBOOKS, block, cached_values, formulas_of, libreoffice_recalculate, soffice

BOOK = WORKBOOKS / "spy_tlt_btc.xlsx"
SHEET = "Example"


@pytest.fixture(scope="module")
def recalculated(tmp_path_factory):
    out = tmp_path_factory.mktemp("calc") / "spy.xlsx"
    result = calc(BOOK, out)
    return result, out


@pytest.fixture(scope="module")
def book_inputs():
    ws = openpyxl.load_workbook(BOOK)[SHEET]
    x = np.array([ws[f"B{r}"].value for r in range(6, 9)], dtype=float)
    vols = np.array([ws[f"D{r}"].value for r in range(6, 9)], dtype=float)
    corr = np.array([[ws.cell(r, c).value for c in range(5, 8)] for r in range(6, 9)], dtype=float)
    trade = np.array([ws[f"B{r}"].value for r in range(36, 39)], dtype=float)
    return x, xlmvar.cov_from_corr(vols, corr), float(ws["B11"].value), int(ws["B12"].value), trade



def test_inputs_are_the_seeds(book_inputs):
    x, cov, confidence, horizon, _ = book_inputs
    np.testing.assert_array_equal(x, [5e6, 3e6, 2e6])
    np.testing.assert_allclose(np.sqrt(np.diag(cov)), [0.15, 0.10, 0.60])
    assert (confidence, horizon) == (0.95, 1)


def test_recalculation_has_no_errors(recalculated):
    result, _ = recalculated
    assert result.errors == []
    assert result.formula_count >= 40


def test_every_xlmvar_cell_matches_the_engine(recalculated, book_inputs):
    result, _ = recalculated
    x, cov, c, h, trade = book_inputs
    d = xlmvar.decompose(x, cov, "var", c, h)
    es = xlmvar.decompose(x, cov, "es", c, h)
    individual = xlmvar.individual_var(x, cov, c, h)
    inc = xlmvar.incremental_var(x, cov, trade, c, h)
    expected = {
        "PORTVAR": [[d.total]],
        "PORTVOL": [[np.sqrt(x @ cov @ x) / x.sum()]],
        "PORTES": [[es.total]],
        "UNDIVERSIFIEDVAR": [[individual.sum()]],
        "DIVERSIFICATION": [[individual.sum() - d.total]],
        "COVFROMCORR": cov,
        "INDIVIDUALVAR": individual[:, None],
        "MARGINALVAR": d.marginal[:, None],
        "COMPONENTVAR": d.component[:, None],
        "COMPONENTVARPCT": d.percent[:, None],
        "COMPONENTES": es.component[:, None],
    }
    checked = set()
    for (sheet, ref), text in result.formulas.items():
        name = text.split("(")[0].lstrip("=").upper()
        value = np.asarray(result.values[(sheet, ref)], dtype=object)
        if name in expected:
            np.testing.assert_allclose(value.astype(float), expected[name], rtol=1e-12, err_msg=f"{ref} {text}")
            checked.add(name)
        elif name == "INCREMENTALVAR":
            numbers = value[:, -1].astype(float)
            want = [inc.exact] if value.shape[0] == 1 else [inc.before, inc.after, inc.exact, inc.approximate]
            np.testing.assert_allclose(numbers, want, rtol=1e-12)
            checked.add(name)
        elif name == "RISKREPORT":
            assert list(value[0]) == ["Asset", "Position", "Individual VaR", "Marginal VaR", "Component VaR", "% of VaR"]
            assert list(value[1:, 0]) == ["SPY", "TLT", "BTC", "Total"]
            table = np.column_stack([x, individual, d.marginal, d.component, d.percent])
            np.testing.assert_allclose(value[1:4, 1:].astype(float), table, rtol=1e-12)
            assert value[4, 4] == pytest.approx(d.total, rel=1e-12)
            checked.add(name)
    assert checked == set(expected) | {"INCREMENTALVAR", "RISKREPORT"}


def test_native_cross_check_block_agrees(recalculated):
    _, out = recalculated
    values = cached_values(out, SHEET)
    assert values["J26"] == pytest.approx(values["B21"], rel=1e-12)  # native VaR vs PORTVAR
    np.testing.assert_allclose(block(values, ["J29", "J30", "J31"]), block(values, ["D29", "D30", "D31"]), rtol=1e-12)
    assert values["J32"] == pytest.approx(values["B21"], rel=1e-12)  # native components sum to VaR


def test_seed_printed_figures_are_shown_beside_the_computed_ones(recalculated):
    _, out = recalculated
    values = cached_values(out, SHEET)
    # printed 9.1% and $840,000; the inputs imply 15.458% and $2,542,616 (tests/test_parametric.py)
    assert values["B56"] == 0.091 and values["C56"] == pytest.approx(0.154580, abs=5e-7)
    assert values["B57"] == 840_000 and values["C57"] == pytest.approx(2_542_616, abs=1)
    assert values["B59"] == -0.015 and values["C59"] > 0  # TLT does not hedge this book


def test_output_keeps_formulas_chart_styles_and_names(recalculated):
    _, out = recalculated
    assert formulas_of(out, SHEET) == formulas_of(BOOK, SHEET)
    with zipfile.ZipFile(BOOK) as a, zipfile.ZipFile(out) as b:
        assert a.namelist() == b.namelist()
        assert "xl/charts/chart1.xml" in a.namelist()
        for part in a.namelist():
            if not part.startswith("xl/worksheets/"):
                assert a.read(part) == b.read(part), part
    names = openpyxl.load_workbook(out).defined_names
    assert {"Assets", "Positions", "Covariance", "Confidence", "Horizon"} <= set(names)


def test_input_is_left_untouched(tmp_path):
    book = tmp_path / "in.xlsx"
    shutil.copy(BOOK, book)
    before = book.read_bytes()
    result = calc(book)
    assert book.read_bytes() == before
    assert result.output == tmp_path / "in.calc.xlsx" and result.output.exists()


def test_changed_inputs_flow_through_and_errors_are_reported(tmp_path):
    # openpyxl edits the inputs (it drops cached values and the chart, fine for this test)
    wb = openpyxl.load_workbook(BOOK)
    wb[SHEET]["B7"] = 4_000_000
    edited = tmp_path / "edited.xlsx"
    wb.save(edited)
    result = recalculate(edited)
    assert result.errors == []
    x = np.array([5e6, 4e6, 2e6])
    cov = xlmvar.cov_from_corr([0.15, 0.10, 0.60], [[1, -0.3, 0.2], [-0.3, 1, 0.1], [0.2, 0.1, 1]])
    assert result.value(SHEET, "B21") == pytest.approx(xlmvar.portfolio_var(x, cov), rel=1e-12)

    wb[SHEET]["B7"] = "three million"
    wb[SHEET]["B11"] = 95
    broken = tmp_path / "broken.xlsx"
    wb.save(broken)
    errors = {e.cell: e for e in recalculate(broken).errors}
    assert "positions: item 2 holds the text 'three million'; expected a number" in errors["B21"].reason
    assert errors["B21"].reason.startswith("PORTVAR: ")
    assert errors["B21"].error == "#VALUE!"


def test_cli_calc_and_report(tmp_path, capsys):
    from xlmvar.cli import main

    assert main(["calc", str(BOOK), "-o", str(tmp_path / "o.xlsx")]) == 0
    assert "Recalculated" in capsys.readouterr().out
    assert main(["report", str(BOOK)]) == 0
    out = capsys.readouterr().out
    assert "2,542,616" in out and "Diversification benefit" in out and "BTC" in out
    assert main(["calc", str(tmp_path / "missing.xlsx")]) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.skipif(soffice() is None, reason="LibreOffice is not installed (.ci/run installs libreoffice-calc-nogui)")
def test_libreoffice_recalculates_the_native_block_to_the_engine(tmp_path, book_inputs):
    # Blank every cached value first, so only a real recalculation in LibreOffice can fill them.
    blanked = tmp_path / "blank.xlsx"
    recalc = recalculate(BOOK)
    zeros = Recalculation(source=BOOK, values={k: np.zeros(np.shape(v)) for k, v in recalc.values.items()})
    write_cached_values(BOOK, blanked, zeros)
    values = cached_values(libreoffice_recalculate(blanked, tmp_path), SHEET)
    x, cov, c, h, _ = book_inputs
    d = xlmvar.decompose(x, cov, "var", c, h)
    np.testing.assert_allclose(
        [[values[f"{col}{r}"] for col in "JKL"] for r in (22, 23, 24)], cov, rtol=1e-14
    )
    assert values["J25"] == pytest.approx(np.sqrt(x @ cov @ x), rel=1e-12)
    assert values["J26"] == pytest.approx(d.total, rel=1e-12)
    np.testing.assert_allclose(block(values, ["J29", "J30", "J31"]), d.component, rtol=1e-12)
