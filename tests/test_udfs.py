"""The Excel functions, fed the way Excel and xlwings pass ranges."""

import inspect
import typing

import numpy as np
import pytest

import udfs
import xlmvar
from xlmvar.workbook.calc import xlmvar_functions

VOLS = [0.15, 0.10, 0.60]
CORR = [[1, -0.3, 0.2], [-0.3, 1, 0.1], [0.2, 0.1, 1]]
COV = xlmvar.cov_from_corr(VOLS, CORR)
COLUMN = np.array([[5e6], [3e6], [2e6]], dtype=object)  # a column range as xlwings passes it
ROW = COLUMN.reshape(1, 3)
# hand-worked seed example: sigma_w = sqrt(.023895), S w = (.0135, .00195, .0828), z = 1.6448536
Z = 1.6448536269514722
MARGINAL = Z * np.array([0.0135, 0.00195, 0.0828]) / np.sqrt(0.023895)


def test_vectors_come_back_in_the_orientation_of_positions():
    col = udfs.MARGINALVAR(COLUMN, COV)
    row = udfs.MARGINALVAR(ROW, COV)
    assert col.shape == (3, 1) and row.shape == (1, 3)
    np.testing.assert_allclose(col.ravel(), MARGINAL, rtol=1e-12)
    np.testing.assert_allclose(row.ravel(), MARGINAL, rtol=1e-12)


def test_python_lists_and_arrays_work_too():
    assert udfs.PORTVAR([5e6, 3e6, 2e6], COV.tolist()) == pytest.approx(Z * np.sqrt(0.023895) * 1e7)
    np.testing.assert_allclose(udfs.COMPONENTVAR(np.array([5e6, 3e6, 2e6]), COV).ravel(), [5e6, 3e6, 2e6] * MARGINAL)


def test_single_cell_book():
    one = np.array([[1e6]], dtype=object)
    assert udfs.PORTVAR(one, np.array([[0.04]])) == pytest.approx(Z * 0.2 * 1e6)
    assert udfs.COMPONENTVARPCT(one, np.array([[0.04]])).tolist() == [[pytest.approx(1.0, rel=1e-15)]]


def test_blank_optional_arguments_take_defaults():
    base = udfs.PORTVAR(COLUMN, COV)
    assert udfs.PORTVAR(COLUMN, COV, None, None, None) == base
    assert udfs.PORTVAR(COLUMN, COV, 0.99, 10) == pytest.approx(base * 2.3263478740408408 / Z * np.sqrt(10))


def test_blank_and_text_cells_inside_ranges_are_named():
    blank = np.array([[5e6], [None], [2e6]], dtype=object)
    with pytest.raises(ValueError, match="positions: item 2 holds a blank cell; expected a number"):
        udfs.PORTVAR(blank, COV)
    text = COV.astype(object)
    text[2, 1] = "n/a"
    # the second argument is read as a covariance by the normal method, and named as in Excel
    with pytest.raises(ValueError, match="model: row 3, column 2 holds the text 'n/a'"):
        udfs.PORTVAR(COLUMN, text)


def test_option_a_method_does_not_take_is_refused():
    with pytest.raises(ValueError, match="draws: the normal method does not take it"):
        udfs.PORTVAR(COLUMN, COV, 0.95, 1, "normal", None, 1000)
    with pytest.raises(ValueError, match="method: unknown method 'garch'; expected one of normal, historical"):
        udfs.PORTVAR(COLUMN, COV, 0.95, 1, "garch")


def test_decomposition_functions_agree_with_each_other():
    var = udfs.PORTVAR(COLUMN, COV)
    assert udfs.COMPONENTVAR(COLUMN, COV).sum() == pytest.approx(var, rel=1e-12)
    assert udfs.COMPONENTVARPCT(COLUMN, COV).sum() == pytest.approx(1.0, rel=1e-12)
    assert udfs.UNDIVERSIFIEDVAR(COLUMN, COV) == pytest.approx(udfs.INDIVIDUALVAR(COLUMN, COV).sum())
    assert udfs.DIVERSIFICATION(COLUMN, COV) == pytest.approx(udfs.UNDIVERSIFIEDVAR(COLUMN, COV) - var)
    assert udfs.COMPONENTES(COLUMN, COV).sum() == pytest.approx(udfs.PORTES(COLUMN, COV), rel=1e-12)
    assert udfs.PORTVOL(COLUMN, COV) == pytest.approx(np.sqrt(0.023895) * 1e7)
    np.testing.assert_allclose(udfs.COVFROMCORR(np.array([VOLS]), np.array(CORR)), COV)


def test_incremental_var_scalar_and_detail():
    trade = np.array([[0.0], [1e6], [-5e5]])
    exact = udfs.INCREMENTALVAR(COLUMN, COV, trade)
    after = udfs.PORTVAR(COLUMN + trade, COV)
    assert exact == [[pytest.approx(after - udfs.PORTVAR(COLUMN, COV))]]
    detail = udfs.INCREMENTALVAR(COLUMN, COV, trade, None, None, None, True)
    assert [row[0] for row in detail] == ["VaR before", "VaR after", "Incremental VaR", "Marginal estimate"]
    assert detail[3][1] == pytest.approx(MARGINAL @ trade.ravel())
    with pytest.raises(ValueError, match="trade: has 2 values but the book has 3 assets"):
        udfs.INCREMENTALVAR(COLUMN, COV, trade[:2])


def test_risk_report_table():
    names = np.array([["SPY"], ["TLT"], ["BTC"]], dtype=object)
    table = udfs.RISKREPORT(names, COLUMN, COV)
    assert table[0] == ["Asset", "Position", "Individual VaR", "Marginal VaR", "Component VaR", "% of VaR"]
    assert [row[0] for row in table[1:]] == ["SPY", "TLT", "BTC", "Total"]
    np.testing.assert_allclose([row[3] for row in table[1:4]], MARGINAL, rtol=1e-12)
    np.testing.assert_allclose([row[2] for row in table[1:4]], Z * np.array([0.75e6, 0.3e6, 1.2e6]), rtol=1e-12)
    assert table[4][4] == pytest.approx(Z * np.sqrt(0.023895) * 1e7)
    assert table[4][5] == 1.0
    # a blank name is a blank label (D4: it was refused, and labelled 'nan' where a blank arrived as NaN)
    blank = udfs.RISKREPORT(np.array([["SPY"], [None], ["BTC"]], dtype=object), COLUMN, COV)
    assert [row[0] for row in blank[1:]] == ["SPY", "", "BTC", "Total"]
    assert blank[1:] == [[label, *row[1:]] for label, row in zip(["SPY", "", "BTC", "Total"], table[1:])]


FUNCTIONS = xlmvar_functions()


def test_catalogue_is_complete():
    required = {"PORTVAR", "MARGINALVAR", "COMPONENTVAR", "COMPONENTVARPCT", "INDIVIDUALVAR", "INCREMENTALVAR",
                "DIVERSIFICATION", "PORTES", "COMPONENTES", "COVFROMCORR", "RISKREPORT"}
    assert required <= set(FUNCTIONS)


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_every_function_declares_its_conversions_and_help(name):
    # xlwings builds the function wizard's help and the argument conversions from these hints
    # on every platform (udfs.xlfunc reads get_type_hints(include_extras=True)); the
    # decorators themselves are no-ops on Linux, so the hints are what a test can check.
    func = FUNCTIONS[name]
    assert func.__doc__ and len(func.__doc__.splitlines()[0]) <= 255  # Excel's description limit
    hints = typing.get_type_hints(func, include_extras=True)
    for param in inspect.signature(func).parameters:
        hint = hints[param]
        assert typing.get_origin(hint) is typing.Annotated, f"{name}({param}) has no Annotated hint"
        base, options = typing.get_args(hint)
        assert options.get("doc"), f"{name}({param}) has no help text"
        if base is np.ndarray:
            assert options.get("ndim") == 2, f"{name}({param}) must arrive as a 2-D range"
    assert "return" in hints


def test_import_xlmvar_does_not_import_xlwings():
    import subprocess
    import sys

    code = "import sys, xlmvar, xlmvar.workbook.calc, xlmvar.workbook.templates; print('xlwings' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
