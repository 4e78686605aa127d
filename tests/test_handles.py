"""RISKMODEL handles: content-keyed, resolved by every model/cov/returns argument, never stale.

References: the same function called with the range itself (a handle must change nothing),
closed forms (delta-normal VaR z sqrt(x'Sx) with numpy's sample covariance), a brute-force
historical VaR (numpy's type-7 quantile of the P&L), and a workbook recalculated headlessly.
"""

from __future__ import annotations

import inspect
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


#: The arguments that take a model, a covariance or a returns table: each accepts a handle.
_MODEL_ARGUMENTS = {"model", "cov", "cov_book", "factor_cov", "returns", "factor_returns"}

F = np.round(R[:, :2] @ np.array([[0.5, 0.1], [0.2, 0.7]]) + RNG.standard_normal((250, 2)) * 0.002, 6)  # factor returns
B = np.array([[1.0, 0.2], [0.3, 0.9], [0.5, 0.5], [-0.2, 1.1]])  # loadings
FCOV = np.cov(F.T)
SPEC = np.array([1e-5, 2e-5, 1.5e-5, 3e-5])
G = np.array([["a"], ["b"], ["a"], ["b"]], dtype=object)  # group labels


def _cases():
    """``(function, arguments given a handle, range arguments, handle arguments)``."""
    hist = udfs.RISKMODEL(R, "historical")
    cov = udfs.RISKMODEL(COV)
    fhist, fcov = udfs.RISKMODEL(F, "historical"), udfs.RISKMODEL(FCOV)
    return [
        ("PORTVAR", {"model"}, (X, R, 0.95, 1, "historical"), (X, hist, 0.95, 1, "historical")),
        ("COMPONENTES", {"model"}, (X, R, 0.95, 1, "cornish-fisher"), (X, hist, 0.95, 1, "cornish-fisher")),
        ("MARGINALVAR", {"model"}, (X, COV), (X, cov)),
        ("COMPONENTVAR", {"model"}, (X, R, 0.99, 1, "historical"), (X, hist, 0.99, 1, "historical")),
        ("COMPONENTVARPCT", {"model"}, (X, COV), (X, cov)),
        ("MARGINALES", {"model"}, (X, R, 0.95, 1, "historical"), (X, hist, 0.95, 1, "historical")),
        ("PORTES", {"model"}, (X, COV, 0.95, 1, "montecarlo", None, 2000), (X, cov, 0.95, 1, "montecarlo", None, 2000)),
        ("INDIVIDUALVAR", {"model"}, (X, R, 0.99, 10, "historical"), (X, hist, 0.99, 10, "historical")),
        ("UNDIVERSIFIEDVAR", {"model"}, (X, COV), (X, cov)),
        ("DIVERSIFICATION", {"model"}, (X, COV), (X, cov)),
        ("INCREMENTALVAR", {"model"}, (X, COV, X / 10, None, None, None, True), (X, cov, X / 10, None, None, None, True)),
        ("INCREMENTALES", {"model"}, (X, R, X / 10, 0.95, 1, "historical"), (X, hist, X / 10, 0.95, 1, "historical")),
        ("RISKREPORT", {"model"}, (G, X, R, 0.95, 1, "historical"), (G, X, hist, 0.95, 1, "historical")),
        ("VARLIMITS", {"model"}, (X, COV, 0.4), (X, cov, 0.4)),
        ("RETURNPERRISK", {"model"}, (X, COV, R.mean(axis=0)), (X, cov, R.mean(axis=0))),
        ("PORTVOL", {"cov"}, (X, COV), (X, cov)),
        ("BESTHEDGE", {"cov"}, (X, COV), (X, cov)),
        ("RISKPARITY", {"cov"}, (COV,), (cov,)),
        ("MCSTDERR", {"cov"}, (X, COV, 0.95, 1, "var", None, 2000), (X, cov, 0.95, 1, "var", None, 2000)),
        ("NEWASSETMVAR", {"cov_book"}, (X[:3], COV[:3, :3], COV[3, :3], COV[3, 3]),
         (X[:3], udfs.RISKMODEL(COV[:3, :3]), COV[3, :3], COV[3, 3])),
        ("COVMATRIX", {"returns"}, (R, "ewma"), (hist, "ewma")),
        ("CORRMATRIX", {"returns"}, (R,), (hist,)),
        ("GROUPVAR", {"model"}, (X, R, G, 0.95, 1, "historical"), (X, hist, G, 0.95, 1, "historical")),
        ("GROUPES", {"model"}, (X, COV, G), (X, cov, G)),
        ("FACTORLOADINGS", {"returns", "factor_returns"}, (R, F), (hist, fhist)),
        ("FACTORCOV", {"factor_cov"}, (B, FCOV, SPEC), (B, fcov, SPEC)),
        ("FACTORVAR", {"factor_cov"}, (X, B, FCOV, SPEC), (X, B, fcov, SPEC)),
        ("WORSTDAYS", {"returns"}, (X, R, None, 5), (X, hist, None, 5)),
        ("ROLLINGVAR", {"returns"}, (X, R, 100), (X, hist, 100)),
        ("RISKMODEL", {"model"}, (R, "normal"), (hist, "normal")),  # a history's handle made a covariance
    ]


def test_every_function_gives_with_a_handle_what_it_gives_with_the_range():
    for name, _, with_range, with_handle in _cases():
        f = getattr(udfs, name)
        a, b = f(*with_range), f(*with_handle)
        assert np.array_equal(np.asarray(a, dtype=object), np.asarray(b, dtype=object)), name


def test_every_argument_that_takes_a_table_is_covered_by_a_handle_case():
    # the README says every function taking a model, a covariance or a returns table takes a
    # handle: several did not (an adversarial review found GROUPVAR, WORSTDAYS, ROLLINGVAR,
    # FACTORLOADINGS, FACTORCOV, FACTORVAR and RISKMODEL); a new function must join the cases
    wanted = set()
    for name in dir(udfs):
        f = getattr(udfs, name)
        if name.isupper() and callable(f):
            wanted |= {(name, p) for p in inspect.signature(f).parameters if p in _MODEL_ARGUMENTS}
    covered = {(name, p) for name, params, _, _ in _cases() for p in params}
    assert covered == wanted


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
    with pytest.raises(ValueError, match=r"^model: is a symmetric 4 x 4 table .* looks like a covariance"):
        udfs.PORTVAR(X, cov, 0.95, 1, "historical")


def _returns_book(path):
    """A workbook with R on sheet "Data" (A1:D250) and X in A1:A4 of sheet "Risk":
    ``(workbook, Risk sheet)``, for the caller to add formulas and close."""
    wb = xlsxwriter.Workbook(str(path), {"use_future_functions": True})
    data, sheet = wb.add_worksheet("Data"), wb.add_worksheet("Risk")
    for i, row in enumerate(R):
        data.write_row(i, 0, [float(v) for v in row])
    for i, v in enumerate(X.ravel()):
        sheet.write_number(i, 0, float(v))
    return wb, sheet


def test_headless_calc_evaluates_riskmodel_before_its_dependents(tmp_path):
    path = tmp_path / "handles.xlsx"
    wb, sheet = _returns_book(path)
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


@pytest.mark.parametrize("method", ["normal", "montecarlo", None])
def test_a_square_table_that_is_not_a_valid_covariance_is_refused_never_read_as_returns(method):
    # a covariance with one typo used to fail the "looks like a covariance" test and be read
    # as 3 periods of returns, whose covariance then gave a figure (an adversarial review)
    typo = COV[:3, :3].copy()
    typo[0, 1] = 0.00012
    with pytest.raises(ValueError, match=r"^model: is not symmetric.*a square table is read as a covariance matrix"):
        udfs.RISKMODEL(typo, method)
    negative = COV[:3, :3].copy()
    negative[1, 1] = -0.0009
    with pytest.raises(ValueError, match=r"^model: the variance on the diagonal at row 2 is -0.0009.*options \"cov=sample\""):
        udfs.RISKMODEL(negative, method)


def test_a_square_returns_history_is_given_by_an_option_or_the_method():
    t = np.round(RNG.standard_normal((20, 20)) * 0.01, 6)  # 20 periods of 20 assets: square
    x = np.linspace(-1.0, 2.0, 20) * 1e6
    h = udfs.RISKMODEL(t, "normal", "cov=sample")
    assert h.startswith("xlmvar-model:cov:20x20:")
    assert udfs.PORTVAR(x[:, None], h) == pytest.approx(Z95 * math.sqrt(x @ np.cov(t.T) @ x), rel=1e-12)
    hist = udfs.RISKMODEL(t, "historical")
    assert udfs.PORTVAR(x[:, None], hist, 0.95, 1, "historical") == pytest.approx(_brute_historical_var(x, t), rel=1e-12)


def test_a_read_only_array_of_the_caller_is_copied_too():
    # a read-only array the caller owns can be made writeable again: it used to be kept as it
    # was, so changing it changed the handle's figures (an adversarial review found it)
    a = R.copy()
    a.flags.writeable = False
    h = udfs.RISKMODEL(a, "historical")
    a.flags.writeable = True
    a *= 3.0
    assert udfs.PORTVAR(X, h, 0.95, 1, "historical") == pytest.approx(_brute_historical_var(X.ravel(), R), rel=1e-12)


@pytest.mark.parametrize(
    "options, message",
    [
        ("lam=0.5", r"^options: lam= is the decay of the EWMA estimator and applies with cov=ewma only \(here cov=sample\)$"),
        ("cov=ledoit-wolf; lam=0.97", r"^options: lam= .* applies with cov=ewma only \(here cov=ledoit-wolf\)$"),
        ("cov=ewma;cov=sample", r"^options: cov= is given twice"),
        ("cov=", r"^options: cannot read 'cov='"),
        ("cov=e", r"^options: cov: unknown value 'e'; expected one of sample, ewma, ledoit-wolf"),
        ("cov=ewma; lam=1.2", r"^options: lam: got 1.2; expected a decay factor strictly between 0 and 1"),
        ("cov=ewma; lam=97", r"^options: lam: got 97, which looks like a percentage; use 0.97$"),
        ("cov=ewma; lam=x", r"^options: lam='x' is not a number"),
    ],
)
def test_options_that_cannot_apply_are_refused_by_name(options, message):
    with pytest.raises(ValueError, match=message):
        udfs.RISKMODEL(R, "normal", options)


def test_an_estimator_s_alias_and_case_give_the_same_handle():
    h = udfs.RISKMODEL(R, "normal", "cov=ewma; lam=0.97")
    assert udfs.RISKMODEL(R, "normal", "cov=EWMA; lam=0.97") == h
    assert udfs.RISKMODEL(R, "normal", "lam=0.97; cov=riskmetrics") == h


def test_a_handle_forgotten_for_memory_says_so(monkeypatch):
    # the advice to recalculate cannot help when the models exceed the budget: each RISKMODEL
    # recalculated forgets another (an adversarial review found the advice looping)
    monkeypatch.setattr(handles, "MAX_BYTES", R.nbytes + R.nbytes // 2)  # room for one table
    first = udfs.RISKMODEL(R, "historical")
    udfs.RISKMODEL(R * 2.0, "historical")
    with pytest.raises(ValueError, match=r"^model: the risk model .* was forgotten to keep the tables .* use fewer or smaller risk models"):
        udfs.PORTVAR(X, first, 0.95, 1, "historical")
    assert udfs.RISKMODEL(R, "historical") == first  # made again: usable again
    assert udfs.PORTVAR(X, first, 0.95, 1, "historical") == pytest.approx(_brute_historical_var(X.ravel(), R), rel=1e-12)


def test_headless_calc_says_why_a_kept_riskmodel_cell_leaves_its_dependents_without_a_model(tmp_path):
    # a RISKMODEL over a name that a formula computes is kept at its cached value by the
    # headless calculator: its dependents' message must not give Excel-only advice (an
    # adversarial review found "press F2 then Enter" the only advice)
    path = tmp_path / "kept.xlsx"
    wb, sheet = _returns_book(path)
    wb.define_name("Dynamic", "=Data!$A$1:INDEX(Data!$D:$D,250)")
    sheet.write_formula("F1", '=RISKMODEL(Dynamic,"historical")', None, udfs.RISKMODEL(R, "historical"))
    handles.clear_models()  # as in a fresh process
    sheet.write_formula("C1", '=PORTVAR(A1:A4,F1,0.95,1,"historical")')
    wb.close()
    result = recalculate(path)
    assert [(k.sheet, k.cell) for k in result.kept] == [("Risk", "F1")]
    (error,) = [e for e in result.errors if e.cell == "C1"]
    assert "xlmvar calc recalculates it unless its report lists that cell as kept at its cached value" in error.reason


def test_a_covariance_given_options_is_refused_never_read_as_returns():
    # options used to make any table a returns history: a covariance (or its handle) given
    # "cov=sample" became the covariance of its own rows (a second review found PORTVAR
    # falling from 35,156 to 185 without a word)
    cov = udfs.RISKMODEL(COV)
    with pytest.raises(ValueError, match=r"^options: apply to a returns history, and this 4 x 4 table is a covariance matrix's handle"):
        udfs.RISKMODEL(cov, "normal", "cov=sample")
    with pytest.raises(ValueError, match=r"^options: apply to a returns history, and this 4 x 4 table is symmetric"):
        udfs.RISKMODEL(COV, "normal", "cov=sample")
    hist = udfs.RISKMODEL(R, "historical")  # a history's handle: options apply
    x = X.ravel()
    s = udfs.COVMATRIX(R, "ewma", 0.9)
    assert udfs.PORTVAR(X, udfs.RISKMODEL(hist, "normal", "cov=ewma; lam=0.9")) == pytest.approx(Z95 * math.sqrt(x @ s @ x), rel=1e-12)


def test_the_advice_for_a_square_history_works():
    t = np.round(RNG.standard_normal((20, 20)) * 0.01, 6)
    with pytest.raises(ValueError, match=r'the method "normal" with the options "cov=sample"') as refused:
        udfs.RISKMODEL(t)
    assert "is not symmetric" in str(refused.value)
    assert udfs.RISKMODEL(t, "normal", "cov=sample").startswith("xlmvar-model:cov:20x20:")  # as advised
