"""The cell-state matrix through every Excel runtime: same cells, same Python values, same result.

Every function x every argument x every cell state (``tests/_excel_runtimes.py`` builds the
table and encodes each cell the way each runtime hands it over) runs

* as a direct Python call (the values xlwings passes with the adapter's options),
* through ``xlmvar calc``'s bridge, fed as the ``formulas`` library feeds it,
* through xlwings' Office.js runtime (``xlwings.server.custom_functions_call``, the body
  xlwings' JavaScript posts), in a subprocess with ``XLWINGS_ON_SERVER=true`` and
  ``XLWINGS_LICENSE_KEY=noncommercial`` (xlwings' key for non-commercial use, set for that
  subprocess only),
* the same as xlwings Lite passes it (Pyodide's ``JsNull`` for every JS ``null``),
* through classic Windows xlwings: the VBA wrapper ``xlwings.udfs`` generates and
  ``xlwings.udfs.call_udf``, COM stubbed (a subprocess: pywin32 is stubbed in ``sys.modules``).

The outcome (the value, or the message and error code) must be identical in every runtime
and equal to the direct call.  On top of that, Excel's rules are checked on the direct
outcomes, which the other runtimes then equal: an error cell gives an error naming the
argument, the cell and the code; a blank optional argument is the same as leaving it out.
The tests named after the issue's defects (D1-D6, D10-D12) each failed before the adapter's
conversion layer.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import _excel_runtimes as R
import udfs
from xlmvar.excel import FUNCTIONS
from xlmvar.workbook.calc import excel_function

HERE = Path(__file__).resolve().parent
CASES = R.cases(FUNCTIONS)
BY_ID = {case["id"]: case for case in CASES}
RUNTIMES = ("officejs", "lite", "classic")


def _launch(runtime: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("XLWINGS_")}
    if runtime != "classic":
        env.update(XLWINGS_ON_SERVER="true", XLWINGS_LICENSE_KEY="noncommercial")
    return subprocess.Popen([sys.executable, str(HERE / "_excel_runtimes.py"), runtime], cwd=HERE,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture(scope="module")
def outcomes():
    """{runtime: {case id: outcome}} for every runtime, plus each runtime's registration data."""
    procs = {runtime: _launch(runtime) for runtime in RUNTIMES}  # run beside the in-process ones
    out = {"direct": {}, "headless": {}}
    bridges = {name: excel_function(func) for name, func in FUNCTIONS.items()}
    for case in CASES:
        func = FUNCTIONS[case["func"]]
        out["direct"][case["id"]] = R.outcome(lambda: func(*R.direct_args(case)))
        out["headless"][case["id"]] = R.headless_outcome(bridges[case["func"]], case)
    registration = {}
    for runtime, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=600)
        assert proc.returncode == 0, f"{runtime}: {stderr[-3000:]}"
        report = json.loads(stdout)
        out[runtime] = report.pop("results")
        registration[runtime] = report
    return out, registration


def _differences(got: dict, want: dict, keys=("value", "error", "code")) -> list[str]:
    diff = []
    for case_id, expected in want.items():
        actual = got[case_id]
        if any(actual.get(k) != expected.get(k) for k in keys):
            diff.append(f"{case_id}: {actual} != {expected}")
    return diff


def _arg_state(case_id: str) -> tuple[str, str, str]:
    func, arg, state = (case_id.split("|") + ["", ""])[:3]
    return func, arg, state


# ------------------------------------------------------------------------------------------
# the matrix
# ------------------------------------------------------------------------------------------
def test_the_matrix_covers_every_function_argument_and_state():
    import inspect

    expected = 0
    for func in FUNCTIONS.values():
        params = inspect.signature(func).parameters.values()
        optional = sum(p.default is not p.empty for p in params)
        expected += 1 + len(params) * (len(R.STATES) - 1) + optional  # "omitted" for optional ones
    assert len(CASES) == expected == len(BY_ID)
    assert {c["func"] for c in CASES} == set(FUNCTIONS)


def test_every_base_call_computes(outcomes):
    out, _ = outcomes
    failed = {name: out["direct"][name] for name in FUNCTIONS if "value" not in out["direct"][name]}
    assert not failed


@pytest.mark.parametrize("runtime", ("headless", *RUNTIMES))
def test_every_runtime_gives_the_direct_python_outcome(outcomes, runtime):
    out, _ = outcomes
    keys = ("value", "error", "code")
    diff = _differences(out[runtime], out["direct"], keys)
    assert not diff, f"{len(diff)} of {len(CASES)} differ, e.g.\n" + "\n".join(diff[:10])


def test_no_result_holds_nan(outcomes):
    # a NaN in a result shows as #NUM! on Office.js and as a blank cell on Windows: never silently
    out, _ = outcomes
    assert not [k for k, o in out["direct"].items() if "NaN" in json.dumps(o.get("value", []))]


@pytest.mark.parametrize("code", R.ERRORS)
def test_an_error_cell_gives_an_error_naming_the_argument_the_cell_and_the_code(outcomes, code):
    out, _ = outcomes
    checked = 0
    for case_id, got in out["direct"].items():
        func, arg, state = _arg_state(case_id)
        if state != f"error{code}":
            continue
        base = R.base_call(func, FUNCTIONS[func])[arg]
        if base is None or np.size(base) == 1:
            message = f"{arg}: got the error {code}"
        else:
            i, j = (1, 0) if len(base) > 1 else (0, 1)
            message = f"{arg}: row {i + 1}, column {j + 1} holds the error {code}"
        assert got == {"error": message, "code": code, "xlwings_error": True}, case_id
        assert out["headless"][case_id]["code"] == code  # the cell shows the input's own code
        checked += 1
    assert checked == sum(len(inspect_params(f)) for f in FUNCTIONS.values())


def inspect_params(func):
    import inspect

    return inspect.signature(func).parameters


@pytest.mark.parametrize("runtime", ("direct", "headless", *RUNTIMES))
def test_a_blank_optional_argument_is_the_same_as_leaving_it_out(outcomes, runtime):
    out, _ = outcomes
    results = out[runtime]
    diff = []
    for case_id in results:
        func, arg, state = _arg_state(case_id)
        if state != "omitted":
            continue
        base = R.base_call(func, FUNCTIONS[func])[arg]
        # one blank cell is a blank argument where the argument is one cell; a range of blanks always
        for same in ("blank", "empty-text", "blank-range") if base is None or np.size(base) == 1 else ("blank-range",):
            other = f"{func}|{arg}|{same}"
            if results[other] != results[case_id]:
                diff.append(f"{other}: {results[other]} != omitted {results[case_id]}")
    # ="" is read as blank by xlwings on Windows and Office.js, so everywhere
    diff += [k for k in results if k.endswith("|empty-text") and results[k] != results[k[: -len("empty-text")] + "blank"]]
    assert not diff, "\n".join(diff[:10])


def test_every_message_reaches_an_xlwings_server_user(outcomes):
    # D11: xlwings Server in production shows only an XlwingsError's text
    out, _ = outcomes
    for runtime in RUNTIMES:
        plain = [k for k, o in out[runtime].items() if "error" in o and not o["xlwings_error"]]
        assert not plain, f"{runtime}: {plain[:5]}"


def test_registration_lists_every_function_with_its_arguments(outcomes):
    import inspect

    _, registration = outcomes
    meta = {f["id"]: f for f in registration["officejs"]["meta"]["functions"]}
    assert set(meta) == set(FUNCTIONS)
    assert registration["officejs"]["meta"]["allowErrorForDataTypeAny"] is True  # errors reach us
    vba = registration["classic"]["vba"]
    for name, func in FUNCTIONS.items():
        params = inspect.signature(func).parameters
        optional = [p for p, v in params.items() if v.default is not v.empty]
        assert [p["name"] for p in meta[name]["parameters"]] == list(params)
        assert [p["name"] for p in meta[name]["parameters"] if p.get("optional")] == optional
        assert vba["order"][name] == list(params)
        assert vba["optional"][name] == optional


# ------------------------------------------------------------------------------------------
# the defects, each through the runtimes where it was found
# ------------------------------------------------------------------------------------------
def _everywhere(outcomes, case_id):
    out, _ = outcomes
    return {runtime: out[runtime][case_id] for runtime in ("direct", "headless", *RUNTIMES)}


def test_d1_an_error_cell_in_a_scalar_argument_is_an_error_not_the_default(outcomes):
    # before: #N/A in confidence arrived as None and gave the 95% VaR
    for arg in ("confidence", "horizon", "method"):
        got = _everywhere(outcomes, f"PORTVAR|{arg}|error#N/A")
        assert {r: o.get("error") for r, o in got.items()} == dict.fromkeys(got, f"{arg}: got the error #N/A")


def test_d2_text_among_numbers_names_the_text_and_its_cell(outcomes):
    # before: a string array, "item 1 holds the text '5000000.0'"
    got = _everywhere(outcomes, "PORTVAR|positions|text")
    assert set(o["error"] for o in got.values()) == {"positions: item 2 holds the text 'abc'; expected a number"}


def test_d3_blank_and_error_cells_are_told_apart_alike_everywhere(outcomes):
    # before: Windows and Lite passed a blank as NaN and an error as None, Office.js both as None
    blank = _everywhere(outcomes, "PORTVAR|positions|blank")
    error = _everywhere(outcomes, "PORTVAR|positions|error#DIV/0!")
    assert set(o["error"] for o in blank.values()) == {"positions: item 2 holds a blank cell; expected a number"}
    assert set(o["error"] for o in error.values()) == {"positions: row 2, column 1 holds the error #DIV/0!"}


def test_d4_d12_a_blank_name_gives_a_blank_label(outcomes):
    # before: refused where a blank arrived as None, labelled 'nan' where it arrived as NaN (Lite)
    for runtime, got in _everywhere(outcomes, "RISKREPORT|names|blank").items():
        labels = [row[0] for row in got["value"][1:]]
        assert labels == ["SPY", "", "BTC", "Total"], runtime


def test_d5_true_in_a_numeric_range_is_refused(outcomes):
    # before: numpy turned TRUE into 1 in every xlwings runtime
    for state, shown in (("TRUE", "TRUE"), ("FALSE", "FALSE")):
        got = _everywhere(outcomes, f"PORTVAR|positions|{state}")
        assert set(o["error"] for o in got.values()) == {f"positions: item 2 holds {shown}; expected a number"}
        got = _everywhere(outcomes, f"COVFROMCORR|corr|{state}")
        assert set(o["error"] for o in got.values()) == {f"corr: row 2, column 1 holds {shown}; expected a number"}


def test_d6_a_blank_optional_range_is_left_out_on_every_path(outcomes):
    # before: NaN on one path, a blank-cell error on another, the default on the third
    out, _ = outcomes
    omitted = out["direct"]["PORTVAR|mean|omitted"]
    assert "value" in omitted
    for runtime in ("direct", "headless", *RUNTIMES):
        assert out[runtime]["PORTVAR|mean|blank-range"] == omitted, runtime
        for state in ("blank", "blank-range"):  # limit: one cell
            assert out[runtime][f"RISKREPORT|limit|{state}"] == out["direct"]["RISKREPORT|limit|omitted"]


def test_d12_lite_names_blank_and_error_cells_for_what_they_are(outcomes):
    # before: in Lite a blank arrived as NaN ("an error") and an error as None ("a blank cell")
    out, _ = outcomes
    assert out["lite"]["MARGINALVAR|model|blank"]["error"] == "model: row 2, column 1 holds a blank cell; expected a number"
    assert out["lite"]["MARGINALVAR|model|error#N/A"]["error"] == "model: row 2, column 1 holds the error #N/A"
    assert out["lite"]["PORTVAR|confidence|blank"] == out["lite"]["PORTVAR|confidence|omitted"]


def test_d10_a_huge_horizon_gives_a_clean_message():
    # before: TypeError from np.sqrt of a Python int beyond 2**64
    with pytest.raises(ValueError, match=r"horizon: got 1.84467e\+19, more periods than a number can count exactly"):
        udfs.PORTVAR(R.POSITIONS, R.COV, None, 2**64)
    with pytest.raises(ValueError, match="horizon: got 1e\\+300"):
        udfs.PORTVOL(R.POSITIONS, R.COV, 1e300)
    assert udfs.PORTVOL([[1.0]], [[1.0]], 2.0**52) == pytest.approx(2.0**26)


def test_a_text_option_refuses_numbers_and_true_false(outcomes):
    # found by the matrix: RETURNS/COVMATRIX/CORRMATRIX/MCSTDERR read FALSE and 0 as "left out"
    # (`method or "sample"`) and computed with the default estimator
    import typing

    out, _ = outcomes
    checked = []
    for name, func in FUNCTIONS.items():
        hints = typing.get_type_hints(func, include_extras=True)
        for arg in inspect_params(func):
            if typing.get_args(hints[arg])[0] is not str:
                continue
            for state in ("number", "whole-number", "TRUE", "FALSE", "date"):
                got = out["direct"][f"{name}|{arg}|{state}"]
                assert "error" in got and got["error"].startswith(f"{arg}: got "), (name, arg, state, got)
                checked.append((name, arg))
    assert {"CORRMATRIX", "COVMATRIX", "RETURNS", "MCSTDERR", "PORTVAR"} <= {n for n, _ in checked}


def test_classic_newer_error_codes_and_currency_cells(outcomes):
    # found by the matrix, classic Windows: pywin32 hands #SPILL!, #CALC!, #GETTING_DATA over as
    # their HRESULT, which xlwings' error table lacks, so they were numbers (a #SPILL! position
    # gave a VaR of 1.58e9); a Currency-formatted cell arrives as a Decimal and was refused
    out, _ = outcomes
    for code in ("#SPILL!", "#CALC!", "#GETTING_DATA"):
        got = out["classic"][f"PORTVAR|positions|error{code}"]
        assert got["error"] == f"positions: row 2, column 1 holds the error {code}"
    assert out["classic"]["PORTVAR|positions|currency"] == out["direct"]["PORTVAR|positions|currency"]
    assert "value" in out["classic"]["PORTVAR|positions|currency"]
