"""RISKMODEL handles: content-keyed, resolved by every model/cov/returns argument, never stale.

References: the same function called with the range itself (a handle must change nothing),
closed forms (delta-normal VaR z sqrt(x'Sx) with numpy's sample covariance), a brute-force
historical VaR (numpy's type-7 quantile of the P&L), and a workbook recalculated headlessly.
"""

from __future__ import annotations

import math
import re
from statistics import NormalDist

import numpy as np
import pytest
import xlsxwriter

import udfs
from xlmvar.excel import handles
from xlmvar.workbook.calc import recalculate

Z95 = NormalDist().inv_cdf(0.95)
RNG = np.random.default_rng(11)
R = np.round(RNG.standard_normal((250, 4)) * 0.01, 6)  # rows = periods, columns = assets
X = np.array([[2e6], [-1e6], [3e6], [5e5]])  # a column range of positions
COV = np.cov(R.T)


@pytest.fixture(autouse=True)
def _fresh():
    handles.clear_models()
    yield
    handles.clear_models()


def _brute_historical_var(x, r, c=0.95):
    return -float(np.quantile(r @ x, 1.0 - c))


def test_the_handle_is_short_text_keyed_on_content():
    h = udfs.RISKMODEL(R, "historical")
    assert re.fullmatch(r"xlmvar-model:returns:250x4:[0-9a-f]{16}", h)
    assert udfs.RISKMODEL(R.copy(), "historical") == h  # recalculated with the same data
    handles.clear_models()  # a fresh Python process computes the same text
    assert udfs.RISKMODEL(R.astype(object), "historical") == h
    changed = R.copy()
    changed[100, 2] += 1e-6
    assert udfs.RISKMODEL(changed, "historical") != h
    assert udfs.RISKMODEL(R, "cornish-fisher") != h  # the method is part of the content


def test_every_function_gives_with_a_handle_what_it_gives_with_the_range():
    hist = udfs.RISKMODEL(R, "historical")
    cov = udfs.RISKMODEL(COV)
    cases = [
        ("PORTVAR", (X, R, 0.95, 1, "historical"), (X, hist, 0.95, 1, "historical")),
        ("COMPONENTES", (X, R, 0.95, 1, "cornish-fisher"), (X, hist, 0.95, 1, "cornish-fisher")),
        ("MARGINALVAR", (X, COV), (X, cov)),
        ("INDIVIDUALVAR", (X, R, 0.99, 10, "historical"), (X, hist, 0.99, 10, "historical")),
        ("DIVERSIFICATION", (X, COV), (X, cov)),
        ("INCREMENTALVAR", (X, COV, X / 10, None, None, None, True), (X, cov, X / 10, None, None, None, True)),
        ("RISKREPORT", (np.array([["a"], ["b"], ["c"], ["d"]], dtype=object), X, R, 0.95, 1, "historical"),
         (np.array([["a"], ["b"], ["c"], ["d"]], dtype=object), X, hist, 0.95, 1, "historical")),
        ("VARLIMITS", (X, COV, 0.4), (X, cov, 0.4)),
        ("RETURNPERRISK", (X, COV, R.mean(axis=0)), (X, cov, R.mean(axis=0))),
        ("PORTVOL", (X, COV), (X, cov)),
        ("BESTHEDGE", (X, COV), (X, cov)),
        ("RISKPARITY", (COV,), (cov,)),
        ("NEWASSETMVAR", (X[:3], COV[:3, :3], COV[3, :3], COV[3, 3]), (X[:3], udfs.RISKMODEL(COV[:3, :3]), COV[3, :3], COV[3, 3])),
        ("COVMATRIX", (R, "ewma"), (hist, "ewma")),
        ("CORRMATRIX", (R,), (hist,)),
        ("MCSTDERR", (X, COV, 0.95, 1, "var", None, 2000), (X, cov, 0.95, 1, "var", None, 2000)),
        ("PORTES", (X, COV, 0.95, 1, "montecarlo", None, 2000), (X, cov, 0.95, 1, "montecarlo", None, 2000)),
    ]
    for name, with_range, with_handle in cases:
        f = getattr(udfs, name)
        a, b = f(*with_range), f(*with_handle)
        assert np.array_equal(np.asarray(a, dtype=object), np.asarray(b, dtype=object)), name


def test_handle_figures_match_independent_references():
    hist = udfs.RISKMODEL(R, "historical")
    x = X.ravel()
    assert udfs.PORTVAR(X, hist, 0.95, 1, "historical") == pytest.approx(_brute_historical_var(x, R), rel=1e-12)
    normal = udfs.RISKMODEL(R, "normal")  # the sample covariance of the returns, estimated once
    assert normal.startswith("xlmvar-model:cov:4x4:")
    assert udfs.PORTVAR(X, normal) == pytest.approx(Z95 * math.sqrt(x @ np.cov(R.T) @ x), rel=1e-12)
    ewma = udfs.RISKMODEL(R, "normal", "cov=ewma; lam=0.97")
    s = udfs.COVMATRIX(R, "ewma", 0.97)
    assert udfs.PORTVAR(X, ewma) == pytest.approx(Z95 * math.sqrt(x @ s @ x), rel=1e-12)


def test_a_fresh_process_gives_a_message_never_a_figure_then_recovers():
    h = udfs.RISKMODEL(R, "historical")
    before = udfs.PORTVAR(X, h, 0.95, 1, "historical")
    handles.clear_models()  # the workbook reopened in a new Python process: the cell keeps h
    with pytest.raises(ValueError) as info:
        udfs.PORTVAR(X * 2, h, 0.95, 1, "historical")  # a dependent recalculated alone
    message = str(info.value)
    assert message.startswith("model: the risk model 'xlmvar-model:returns:250x4:")
    assert "not in this Python session" in message and "RISKMODEL" in message and "Ctrl+Alt+F9" in message
    assert udfs.RISKMODEL(R, "historical") == h  # RISKMODEL recalculated: the same handle
    assert udfs.PORTVAR(X * 2, h, 0.95, 1, "historical") == pytest.approx(2 * before, rel=1e-12)


def test_a_handle_whose_hash_does_not_match_cannot_be_used():
    h = udfs.RISKMODEL(R, "historical")
    digest = h.rsplit(":", 1)[1]
    forged = [
        h[:-1] + ("0" if h[-1] != "0" else "1"),  # another digest
        h.replace("250x4", "249x4"),  # the right digest with another shape
        h.replace(":returns:", ":cov:"),  # or another kind
        "xlmvar-model:returns:250x4:" + digest.upper(),
    ]
    for text in forged:
        with pytest.raises(ValueError, match=r"^model: .*(not in this Python session|not a risk model handle)"):
            udfs.PORTVAR(X, text, 0.95, 1, "historical")


def test_the_handle_keeps_a_copy_and_checks_what_each_argument_needs():
    data = R.copy()
    h = udfs.RISKMODEL(data, "historical")
    before = udfs.PORTVAR(X, h, 0.95, 1, "historical")
    data *= 3.0  # the caller's array changes afterwards: the handle still means the old data
    assert udfs.PORTVAR(X, h, 0.95, 1, "historical") == before
    assert data.flags.writeable
    with pytest.raises(ValueError, match=r"^cov: the risk model .* holds a returns history; this argument needs a covariance"):
        udfs.PORTVOL(X, h)
    cov = udfs.RISKMODEL(COV)
    with pytest.raises(ValueError, match=r"^returns: the risk model .* holds a covariance matrix; this argument needs a returns"):
        udfs.COVMATRIX(cov)
    with pytest.raises(ValueError, match=r"^returns: is a symmetric 4 x 4 table .* looks like a covariance"):
        udfs.PORTVAR(X, cov, 0.95, 1, "historical")


def test_headless_calc_evaluates_riskmodel_before_its_dependents(tmp_path):
    path = tmp_path / "handles.xlsx"
    wb = xlsxwriter.Workbook(str(path), {"use_future_functions": True})
    data, sheet = wb.add_worksheet("Data"), wb.add_worksheet("Risk")
    for i, row in enumerate(R):
        data.write_row(i, 0, [float(v) for v in row])
    for i, v in enumerate(X.ravel()):
        sheet.write_number(i, 0, float(v))
    for i, row in enumerate(COV):
        sheet.write_row(10 + i, 0, [float(v) for v in row])
    returns = "Data!$A$1:$D$250"
    # dependents first in the sheet, the handle cells below them: order on the sheet is not order of evaluation
    sheet.write_formula("C1", '=PORTVAR(A1:A4,F1,0.95,1,"historical")')
    sheet.write_formula("C2", f'=PORTVAR(A1:A4,{returns},0.95,1,"historical")')
    sheet.write_formula("C3", "=PORTVAR(A1:A4,F2)")
    sheet.write_formula("C4", '=PORTES(A1:A4,F1,0.95,1,"cornish-fisher")')
    sheet.write_formula("C5", f'=PORTES(A1:A4,{returns},0.95,1,"cornish-fisher")')
    sheet.write_formula("F1", f'=RISKMODEL({returns},"historical")')
    sheet.write_formula("F2", "=RISKMODEL(A11:D14)")
    wb.close()
    result = recalculate(path)
    assert result.errors == []
    x = X.ravel()
    handle = result.value("Risk", "F1")
    assert handle == udfs.RISKMODEL(R, "historical")  # the same text as in any other process
    assert result.value("Risk", "C1") == pytest.approx(_brute_historical_var(x, R), rel=1e-12)
    assert result.value("Risk", "C1") == result.value("Risk", "C2")
    assert result.value("Risk", "C4") == result.value("Risk", "C5")
    assert result.value("Risk", "C3") == pytest.approx(Z95 * math.sqrt(x @ COV @ x), rel=1e-12)
