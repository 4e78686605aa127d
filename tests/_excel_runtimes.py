"""Every Excel function x every argument x every cell state, through xlwings' own runtimes.

The cases are one table (:func:`cases`): a valid call of each function (:data:`BASE`), and for
each argument and each cell state (:data:`STATES`: numbers, text, blank, TRUE/FALSE, a date and
each of Excel's error codes, a range of blanks, the argument left out) the same call with that
argument's cell set to that state.  Cells are written in a neutral form and encoded for each
runtime the way that runtime hands them to Python:

* ``direct``    the Python values xlwings passes with the adapter's options (``"#N/A"`` for an
                error cell, ``None`` for a blank, a date as its serial number);
* ``officejs``  xlwings Server: the body xlwings' custom-functions JavaScript posts (every
                argument a 2-D array, numbers as ``JSON.stringify`` writes them, blanks ``null``,
                errors ``{"type": "Error", ...}``, an omitted argument a bare ``null``), run by
                ``await xlwings.server.custom_functions_call(body, udfs)``;
* ``lite``      xlwings Lite: the same, but Pyodide's ``JsNull`` for every ``null``;
* ``classic``   Windows: xlwings' generated VBA wrapper (its ``Array(...)`` gives the argument
                order) and ``xlwings.udfs.call_udf`` with COM stubbed: a range argument is a COM
                range whose ``Value`` is what Excel's COM returns (floats, ``None``, the error
                HRESULT as an int, ``datetime``), a missing optional argument is
                ``DISP_E_PARAMNOTFOUND``; the cells are cleaned by the Windows engine's own code,
                read from xlwings' ``_xlwindows.py``;
* ``headless``  ``xlmvar calc``'s bridge (:func:`xlmvar.workbook.calc.excel_function`) fed as the
                ``formulas`` library feeds it: 2-D object arrays, ``schedula.EMPTY``, ``XlError``.

Run as a script (``python tests/_excel_runtimes.py officejs|lite|classic``) it prints the
outcome of every case as JSON; the xlwings runtimes need their environment set before
xlwings is imported (``XLWINGS_ON_SERVER``, ``XLWINGS_LICENSE_KEY=noncommercial``, xlwings'
key for non-commercial use, set by the test for the subprocess only), hence the subprocess.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent

# ------------------------------------------------------------------------------------------
# cells in a neutral form: numbers, str (text), bool, None (blank), and tagged dicts
# ------------------------------------------------------------------------------------------
ERRORS = ("#N/A", "#DIV/0!", "#VALUE!", "#REF!", "#NAME?", "#NUM!", "#NULL!", "#SPILL!", "#CALC!", "#GETTING_DATA")
#: Office.js' errorType of each error code (Excel.ErrorCellValueType)
ERROR_TYPES = {
    "#N/A": "NotAvailable", "#DIV/0!": "Div0", "#VALUE!": "Value", "#REF!": "Ref", "#NAME?": "Name",
    "#NUM!": "Num", "#NULL!": "Null", "#SPILL!": "Spill", "#CALC!": "Calc", "#GETTING_DATA": "GettingData",
}
#: Excel's COM error numbers (xlErrNA = 2042, ...); pywin32 hands over the HRESULT 0x800A0000 + n
COM_ERRORS = {
    "#NULL!": 2000, "#DIV/0!": 2007, "#VALUE!": 2015, "#REF!": 2023, "#NAME?": 2029, "#NUM!": 2036,
    "#N/A": 2042, "#GETTING_DATA": 2043, "#SPILL!": 2045, "#CALC!": 2050,
}
DATE = dt.datetime(2024, 3, 15)
DATE_SERIAL = 45366.0  # =DATE(2024,3,15) in Excel's 1900 date system
OMIT = {"omit": True}
BLANK_RANGE = {"blank-range": True}

#: state name -> the cell (or a marker for the whole argument)
STATES = {
    "number": 0.25,
    "whole-number": 2.0,
    "text": "abc",
    "blank": None,
    "empty-text": "",
    "TRUE": True,
    "FALSE": False,
    "date": {"date": "2024-03-15"},
    "currency": {"currency": "1234.5"},  # a Currency-formatted cell: COM's VT_CY, a Decimal
    **{f"error{code}": {"error": code} for code in ERRORS},
    "blank-range": BLANK_RANGE,
    "omitted": OMIT,
}

# ------------------------------------------------------------------------------------------
# the valid call of each function (ranges as 2-D lists; single cells as [[v]])
# ------------------------------------------------------------------------------------------
VOLS = [0.15, 0.10, 0.60]
CORR = [[1.0, -0.3, 0.2], [-0.3, 1.0, 0.1], [0.2, 0.1, 1.0]]
COV = [[v * c * w for c, w in zip(row, VOLS)] for v, row in zip(VOLS, CORR)]
_rng = np.random.default_rng(7)
HIST = np.round(_rng.normal(0.0005, 0.01, size=(12, 3)), 6).tolist()
PRICES = np.round(100.0 * np.cumprod(1.0 + np.asarray(HIST[:6]), axis=0), 4).tolist()
PNL = np.round(_rng.normal(0.0, 1.0, size=(12, 1)), 4).tolist()
FACTOR_RETURNS = np.round(_rng.normal(0.0, 0.01, size=(12, 1)), 6).tolist()


def _col(*values):
    return [[v] for v in values]


POSITIONS = _col(5e6, 3e6, 2e6)
#: argument name -> base value (a range as a 2-D list, a single cell as [[v]], None = omitted)
ARGUMENTS = {
    "positions": POSITIONS,
    "model": COV,
    "cov": COV,
    "cov_book": COV,
    "trade": _col(0.0, 1e6, -5e5),
    "names": _col("SPY", "TLT", "BTC"),
    "confidence": [[0.99]],
    "horizon": [[10]],
    "method": [["normal"]],
    "detail": [[True]],
    "mean": _col(0.001, 0.0, 0.002),
    "draws": None,
    "dof": None,
    "seed": None,
    "limit": [[0.5]],
    "vols": [VOLS],
    "corr": CORR,
    "prices": PRICES,
    "returns": HIST,
    "missing": [["error"]],
    "lam": [[0.9]],
    "measure": [["es"]],
    "cov_with_book": _col(0.01, 0.0, 0.005),
    "var_new": [[0.04]],
    "expected_returns": _col(0.01, 0.02, 0.03),
    "budgets": _col(0.5, 0.3, 0.2),
    "theta": [[0.3]],
    "pnl": PNL,
    "var": _col(*[1.5] * len(PNL)),
    "groups": _col("Equity", "Rates", "Equity"),
    "factor_returns": FACTOR_RETURNS,
    "loadings": _col(1.0, 0.5, 1.5),
    "factor_cov": [[0.04]],
    "specific_var": _col(0.01, 0.02, 0.03),
    "shocks": [[-0.2, 0.05, -0.5], [0.0, -0.1, 0.1]],
    "dates": _col(*(f"2024-{m:02d}" for m in range(1, len(HIST) + 1))),
    "k": [[3]],
    "window": [[6]],
    "options": [["cov=ewma; lam=0.9"]],
}
#: per function: arguments whose base differs from ARGUMENTS
OVERRIDES = {
    "RETURNS": {"method": [["log"]]},
    "COVMATRIX": {"method": [["ewma"]]},
    "CORRMATRIX": {"method": [["ewma"]]},
    "MCSTDERR": {"draws": [[1000]], "seed": [[7]], "measure": [["var"]]},
    "VARBACKTEST": {"confidence": [[0.9]]},
    "FACTORVAR": {"names": [["Market"]]},
    "STRESSPNL": {"names": _col("Crash", "Rates up")},
    "ROLLINGVAR": {"method": [["normal"]], "confidence": [[0.9]]},
    "RISKMODEL": {"model": HIST},
}


def base_call(name: str, func) -> dict:
    import inspect

    params = list(inspect.signature(func).parameters)
    unknown = [p for p in params if p not in ARGUMENTS and p not in OVERRIDES.get(name, {})]
    if unknown:
        raise KeyError(f"{name}({', '.join(unknown)}): give a valid base value in ARGUMENTS or OVERRIDES "
                       "of tests/_excel_runtimes.py, so that the cell-state matrix covers it")
    return {p: OVERRIDES.get(name, {}).get(p, ARGUMENTS[p]) for p in params}


def _with_state(value, state):
    """The argument ``value`` (2-D list or None) with one cell set to ``state``."""
    if state is OMIT:
        return None
    if state is BLANK_RANGE:  # of a single-cell argument: two cells (one blank cell is "blank")
        shape = np.shape(value) if value is not None and np.size(value) > 1 else (2, 1)
        return [[None] * shape[1] for _ in range(shape[0])]
    if value is None:
        return [[state]]
    out = [list(r) for r in value]
    i, j = (1, 0) if len(out) > 1 else (0, 1) if len(out[0]) > 1 else (0, 0)
    out[i][j] = state
    return out


def cases(functions: dict) -> list[dict]:
    """One case per function x argument x state, plus the valid call of each function."""
    out = []
    for name in sorted(functions):
        func = functions[name]
        base = base_call(name, func)
        out.append({"id": f"{name}", "func": name, "args": list(base.values())})
        optional = _optional(func)
        for arg in base:
            for state_name, state in STATES.items():
                if state is OMIT and arg not in optional:
                    continue
                args = dict(base)
                args[arg] = _with_state(base[arg], state)
                out.append({"id": f"{name}|{arg}|{state_name}", "func": name, "args": list(args.values())})
    return out


def _optional(func) -> set:
    import inspect

    return {p for p, v in inspect.signature(func).parameters.items() if v.default is not inspect.Parameter.empty}


# ------------------------------------------------------------------------------------------
# encodings
# ------------------------------------------------------------------------------------------
def _tag(cell):
    if isinstance(cell, dict):
        return next(iter(cell))
    return None


def direct_cell(cell):
    """What xlwings hands a UDF with the adapter's options (err_to_str, empty=None)."""
    tag = _tag(cell)
    if tag == "error":
        return cell["error"]
    if tag == "date":
        return DATE_SERIAL
    if tag == "currency":
        return float(cell["currency"])
    return cell


def direct_args(case) -> list:
    args = []
    for value in case["args"]:
        args.append(None if value is None else np.array([[direct_cell(c) for c in r] for r in value], dtype=object))
    return args


def _js_number(x):
    """A number as JSON.stringify writes it and json.loads reads it back (5e6 -> 5000000)."""
    return int(x) if float(x).is_integer() and abs(x) < 2**53 else float(x)


def officejs_cell(cell, null):
    tag = _tag(cell)
    if tag == "error":
        code = cell["error"]
        return {"type": "Error", "basicType": "Error", "basicValue": code, "errorType": ERROR_TYPES[code]}
    if tag == "date":
        return _js_number(DATE_SERIAL)  # a date cell arrives as its serial number
    if tag == "currency":
        return _js_number(float(cell["currency"]))
    if cell is None:
        return null
    if isinstance(cell, bool) or isinstance(cell, str):
        return cell
    return _js_number(cell)


def officejs_body(case, version: str, null=None) -> dict:
    args = [null if v is None else [[officejs_cell(c, null) for c in r] for r in v] for v in case["args"]]
    return {"func_name": case["func"], "args": args, "caller_address": "Sheet1!B2", "content_language": "en-US",
            "version": version, "runtime": "1.4"}


def classic_cell(cell):
    """A cell as Excel's COM Range.Value returns it through pywin32."""
    tag = _tag(cell)
    if tag == "error":
        return -2146828288 + COM_ERRORS[cell["error"]]
    if tag == "date":
        return DATE  # pywintypes.TimeType, a datetime subclass
    if tag == "currency":
        import decimal

        return decimal.Decimal(cell["currency"])  # Range.Value of a Currency cell: VT_CY
    if isinstance(cell, (int, float)) and not isinstance(cell, bool):
        return float(cell)  # VT_R8
    return cell


def headless_args(case) -> list:
    """Arguments as ``formulas`` hands them to a registered function."""
    import schedula as sh
    from formulas.tokens.operand import XlError

    from xlmvar.workbook.calc import MISSING

    def one(cell):
        tag = _tag(cell)
        if tag == "error":
            return XlError(cell["error"])
        if tag == "date":
            return DATE_SERIAL
        if tag == "currency":
            return float(cell["currency"])
        if cell is None:
            return sh.EMPTY
        return float(cell) if isinstance(cell, int) and not isinstance(cell, bool) else cell

    args = [MISSING if v is None else np.array([[one(c) for c in r] for r in v], dtype=object) for v in case["args"]]
    while args and args[-1] is MISSING:  # trailing omitted arguments are simply not written
        args.pop()
    return args


# ------------------------------------------------------------------------------------------
# outcomes, comparable across runtimes
# ------------------------------------------------------------------------------------------
_CODES = {v: k for k, v in ERROR_TYPES.items()}


def _plain(v):
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, dict) and v.get("type") == "Error":  # Office.js error cell in a result
        return _CODES.get(v.get("errorType"), v.get("errorType"))
    if v is None:
        return ""
    if isinstance(v, float) and math.isnan(v):
        return "NaN"
    if isinstance(v, int) and not isinstance(v, bool):
        return float(v)
    return v


def normalize(result):
    arr = result.tolist() if isinstance(result, np.ndarray) else result
    if not isinstance(arr, (list, tuple)):
        arr = [[arr]]
    elif arr and not isinstance(arr[0], (list, tuple)):
        arr = [list(arr)]
    return [[_plain(v) for v in r] for r in arr]


def outcome(call) -> dict:
    try:
        result = call()
    except Exception as exc:  # noqa: BLE001 - the message is the outcome
        import xlwings

        return {"error": str(exc), "code": getattr(exc, "excel_error", None),
                "xlwings_error": isinstance(exc, xlwings.XlwingsError)}
    return {"value": normalize(result)}


def headless_outcome(bridge, case) -> dict:
    result = bridge(*headless_args(case))
    if hasattr(result, "reason"):
        return {"error": result.reason, "code": str(result)}
    return {"value": normalize(result)}


# ------------------------------------------------------------------------------------------
# the xlwings runtimes (run in a subprocess: python tests/_excel_runtimes.py RUNTIME)
# ------------------------------------------------------------------------------------------
def run_officejs(all_cases, lite: bool) -> dict:
    import asyncio
    import types

    import xlwings
    from xlwings import server

    import udfs

    null = None
    if not lite:
        # xlwings' Office.js engine tries `from pyodide.ffi import JsNull` for every cell; on a
        # server that import fails by searching sys.path each time (0.5 ms a cell).  Marking the
        # module absent fails it at once, with the same ImportError.
        sys.modules.setdefault("pyodide", None)
    if lite:  # Pyodide >= 0.28: JS null arrives as the JsNull sentinel
        class JsNull:
            def __repr__(self):
                return "jsnull"

        pyodide = types.ModuleType("pyodide")
        ffi = types.ModuleType("pyodide.ffi")
        ffi.JsNull = JsNull
        pyodide.ffi = ffi
        sys.modules.update({"pyodide": pyodide, "pyodide.ffi": ffi})
        null = JsNull()

    meta = server.custom_functions_meta(udfs)

    async def main():
        out = {}
        for case in all_cases:
            body = officejs_body(case, xlwings.__version__, null)
            try:
                result = await server.custom_functions_call(body, udfs)
            except Exception as exc:  # noqa: BLE001
                out[case["id"]] = {"error": str(exc), "code": getattr(exc, "excel_error", None),
                                   "xlwings_error": isinstance(exc, xlwings.XlwingsError)}
                continue
            out[case["id"]] = {"value": normalize(result)}
        return out

    return {"meta": meta, "results": asyncio.run(main())}


def _stub_com():
    """Stand-ins for pywin32 and the COM server, enough for xlwings.udfs to import and run."""
    import ast
    import types

    import xlwings
    import xlwings.main

    pythoncom = types.ModuleType("pythoncom")
    pythoncom.CoInitialize = lambda: None
    pywintypes = types.ModuleType("pywintypes")
    pywintypes.TimeType = dt.datetime
    pywintypes.com_error = type("com_error", (Exception,), {})
    win32com = types.ModuleType("win32com")
    client = types.ModuleType("win32com.client")
    client.Dispatch = lambda *a, **k: None
    win32com.client = client

    # the Windows engine's own cell cleaning, read from xlwings' source (the module as a whole
    # needs the Win32 API): cell_errors, _clean_value_data_element, Engine.clean_value_data
    source = Path(xlwings.__file__).with_name("_xlwindows.py").read_text(encoding="utf-8")
    wanted = {"cell_errors", "_com_time_to_datetime", "_clean_value_data_element", "Engine"}
    nodes = [n for n in ast.parse(source).body
             if (isinstance(n, (ast.FunctionDef, ast.ClassDef)) and n.name in wanted)
             or (isinstance(n, ast.Assign) and any(getattr(t, "id", None) in wanted for t in n.targets))]
    windows = types.ModuleType("xlwings._xlwindows")
    windows.__dict__.update({"dt": dt, "np": np, "pd": None, "time_types": (dt.date, dt.datetime)})
    exec(compile(ast.Module(body=nodes, type_ignores=[]), "xlwings/_xlwindows.py", "exec"), windows.__dict__)
    engine = windows.Engine()

    class ComRange:
        """A COM Range: ``Value`` is a scalar for one cell, else a tuple of row tuples."""

        def __init__(self, rows):
            self.rows = rows

        @property
        def Value(self):
            if len(self.rows) == 1 and len(self.rows[0]) == 1:
                return self.rows[0][0]
            return tuple(tuple(r) for r in self.rows)

    class Impl:  # xlwings._xlwindows.Range over a ComRange; sheet/book/app lead to the engine
        max_cells_per_read = None
        pid = 4242  # App(impl=...) records the Excel process id

        def __init__(self, xl):
            self.xl = xl
            self.sheet = self.book = self.app = self
            self.engine = engine

        @property
        def raw_value(self):
            return None if self.xl is None else self.xl.Value

    windows.Range = Impl
    windows.is_range_instance = lambda obj: isinstance(obj, ComRange)
    com_server = types.ModuleType("xlwings.com_server")
    com_server.loop = None
    sys.modules.update({"pythoncom": pythoncom, "pywintypes": pywintypes, "win32com": win32com,
                        "win32com.client": client, "xlwings._xlwindows": windows, "xlwings.com_server": com_server})
    xlwings._xlwindows = windows
    xlwings.engines.add(xlwings.main.Engine(impl=engine))  # conversion.read(None, ...) uses "excel"
    return ComRange


def run_classic(all_cases) -> dict:
    import inspect
    import io
    import re
    import types

    ComRange = _stub_com()
    from xlwings import udfs as xlwings_udfs

    import udfs
    from xlmvar.excel import FUNCTIONS

    # what Windows xlwings does with @xw.func: the classic decorator's metadata on each function
    module = types.ModuleType("xlmvar_classic_udfs")
    for name, func in FUNCTIONS.items():
        wrapper = udfs.__dict__[name]
        setattr(module, name, xlwings_udfs.xlfunc(category="xlmvar")(wrapper))
    sys.modules[module.__name__] = module
    xlwings_udfs.udf_modules[module.__name__] = {"filename": "", "filetime": None, "module": module}

    vba = io.StringIO()
    xlwings_udfs.generate_vba_wrapper(module.__name__, module, vba, types.SimpleNamespace(Name="Book1.xlsm"))
    vba = vba.getvalue()
    order, optional = {}, {}
    for name in FUNCTIONS:
        signature = re.search(rf"^Function {name}\((.*)\)$", vba, re.MULTILINE).group(1)
        optional[name] = [p.split()[-1] for p in signature.split(", ") if p.startswith("Optional ")]
        call = re.search(rf'{name} = XLPy\.CallUDF\("{module.__name__}", "{name}", Array\((.*?)\), ', vba)
        order[name] = call.group(1).split(", ")

    missing = -2147352572  # DISP_E_PARAMNOTFOUND: VBA's Missing for an omitted Optional
    out = {}
    for case in all_cases:
        by_name = dict(zip(inspect.signature(FUNCTIONS[case["func"]]).parameters, case["args"]))
        args = [missing if by_name[p] is None else ComRange([[classic_cell(c) for c in r] for r in by_name[p]])
                for p in order[case["func"]]]
        out[case["id"]] = outcome(lambda: xlwings_udfs.call_udf(module.__name__, case["func"], tuple(args), None, None))
    return {"vba": {"order": order, "optional": optional}, "results": out}


def main(runtime: str) -> None:
    sys.path.insert(0, str(ROOT))
    from xlmvar.excel import FUNCTIONS

    all_cases = cases(FUNCTIONS)
    if runtime == "classic":
        report = run_classic(all_cases)
    else:
        report = run_officejs(all_cases, lite=runtime == "lite")
    json.dump(report, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1])
