"""Cells to Python values: one conversion for every Excel runtime.

Every xlmvar spreadsheet function is declared with :func:`udf`.  Its arguments reach Python
through one of four runtimes, each with its own idea of a cell:

=====================  ==========  ============  ==============  =====================  ============
runtime                blank       error cell    number          date                   TRUE/FALSE
=====================  ==========  ============  ==============  =====================  ============
classic (Windows COM)  ``None``    int HRESULT   float, Decimal  ``datetime``           bool
Office.js / Server     ``null``    dict          int or float    serial number          bool
xlwings Lite           ``JsNull``  dict          int or float    serial number          bool
headless (formulas)    ``EMPTY``   ``XlError``   float           serial number          bool
=====================  ==========  ============  ==============  =====================  ============

The hints (:func:`range_hint`, :func:`value_hint`) ask xlwings for ``err_to_str=True`` (an
error cell arrives as its code, ``"#N/A"``, not as ``None``, which is also what a blank gives),
``empty=None`` (a blank is ``None``, never NaN) and, for ranges, ``dtype=object`` (text and
TRUE stay what they are instead of turning a range into strings or TRUE into 1).  Whatever
arrives, :func:`cell` then maps it to one vocabulary:

* a number (int, float, Decimal, numpy scalar) -> ``float``; a date -> its Excel serial number
  (1900 date system) as ``float``;
* text -> ``str``; the empty text ``""`` -> ``None`` (xlwings reads it as blank everywhere);
* blank -> ``None``;
* TRUE/FALSE -> ``bool``;
* an error cell -> :class:`ErrorValue` (its code).  Text that spells an error code exactly
  (``"#N/A"``) is read as that error, because xlwings' ``err_to_str`` passes the two alike.

:func:`udf` converts every argument this way, then applies Excel's rules before the engine
sees anything: an error in any input makes the result an error whose message names the
argument, the cell and the code (:class:`InputError`, with the code in ``excel_error``);
a blank optional argument (one blank cell, or a range of blanks) is the same as leaving it
out.  Text, blanks and TRUE/FALSE in numeric ranges are left to the engine, whose messages
name the cell and what it holds.

May import: the engine and xlwings (optional: a workbook-only install has no xlwings, and
xlwings Lite brings its own).  Never the workbook layer.
"""

from __future__ import annotations

import datetime as _dt
import decimal
import functools
import inspect
import numbers
import sys
import typing
from typing import Annotated

import numpy as np

try:  # classic xlwings, xlwings Server and xlwings Lite; not needed by the workbook layer
    import xlwings as _xw
except ImportError:  # pragma: no cover - exercised by the import-isolation test
    _xw = None

__all__ = [
    "CATEGORY",
    "ERROR_CODES",
    "ErrorValue",
    "InputError",
    "XlwingsError",
    "cell",
    "range_hint",
    "value_hint",
    "udf",
    "is_udf",
]

#: The category under which Excel's function wizard lists every xlmvar function.
CATEGORY = "xlmvar"

#: Excel's error codes, as ``err_to_str`` spells them.  Excel's COM error number (the low
#: word of the HRESULT pywin32 hands over) is the key; errors newer than pywin32's table
#: (#SPILL!, #CALC!, ...) arrive on Windows as that raw number even with ``err_to_str``.
_COM_ERRORS = {
    2000: "#NULL!",
    2007: "#DIV/0!",
    2015: "#VALUE!",
    2023: "#REF!",
    2029: "#NAME?",
    2036: "#NUM!",
    2042: "#N/A",
    2043: "#GETTING_DATA",
    2045: "#SPILL!",
    2046: "#CONNECT!",
    2047: "#BLOCKED!",
    2048: "#UNKNOWN!",
    2049: "#FIELD!",
    2050: "#CALC!",
}
_HRESULT_BASE = -2146828288  # 0x800A0000 as a signed 32-bit integer: FACILITY_CONTROL
_COM_HRESULTS = {_HRESULT_BASE + number: code for number, code in _COM_ERRORS.items()}
ERROR_CODES = frozenset(_COM_ERRORS.values()) | {"#BUSY!", "#EXTERNAL!", "#DATA!", "#PYTHON!"}

#: Day 0 of Excel's 1900 date system (serial 1 is 1900-01-01; Excel's phantom 1900-02-29
#: makes 1899-12-30 the origin for every date from March 1900 on).
_EXCEL_EPOCH = _dt.datetime(1899, 12, 30)


# ------------------------------------------------------------------------------------------
# xlwings, if present
# ------------------------------------------------------------------------------------------
if _xw is not None:
    XlwingsError = _xw.XlwingsError
    _register = _xw.func
else:

    class XlwingsError(Exception):
        """Stand-in for :class:`xlwings.XlwingsError` where xlwings is not installed."""

    def _register(f=None, **kwargs):
        """No-op stand-in for ``xlwings.func``."""
        return f if f is not None else (lambda g: g)


class InputError(XlwingsError, ValueError):
    """An argument the function cannot use; the message is what the cell shows.

    A subclass of :class:`xlwings.XlwingsError`, because xlwings Server in production
    shows only an ``XlwingsError``'s text (anything else becomes "An error ocurred."), and
    of :class:`ValueError`, which the engine raises and Python callers catch.
    ``excel_error`` is the error code a runtime that can return one should show: the
    code of the input cell for an error passed along (as Excel's own functions propagate
    #N/A), else ``#VALUE!``.
    """

    def __init__(self, message: str, excel_error: str = "#VALUE!"):
        super().__init__(message)
        self.excel_error = excel_error


class ErrorValue:
    """An Excel error cell (``#N/A``, ``#DIV/0!``, ...) as an argument holds it."""

    __slots__ = ("code",)

    def __init__(self, code: str):
        self.code = code

    def __eq__(self, other) -> bool:
        return isinstance(other, ErrorValue) and other.code == self.code

    def __hash__(self) -> int:
        return hash(("ErrorValue", self.code))

    def __repr__(self) -> str:
        return f"ErrorValue({self.code!r})"


# ------------------------------------------------------------------------------------------
# one cell
# ------------------------------------------------------------------------------------------
def _is_headless_blank(value) -> bool:
    """``schedula.EMPTY``, the blank of the ``formulas`` evaluator, if that is loaded."""
    schedula = sys.modules.get("schedula")
    return schedula is not None and value is getattr(schedula, "EMPTY", None)


def _is_jsnull(value) -> bool:
    """Pyodide's ``JsNull`` (xlwings Lite, Pyodide >= 0.28), if running under Pyodide."""
    ffi = sys.modules.get("pyodide.ffi")
    kind = getattr(ffi, "JsNull", None) if ffi is not None else None
    return kind is not None and isinstance(value, kind)


def cell(value):
    """One cell as every runtime must see it: ``float``, ``str``, ``bool``, ``None`` or :class:`ErrorValue`.

    Parameters
    ----------
    value
        A cell as one of the runtimes passes it (see the module's table).

    Returns
    -------
    float, str, bool, None or ErrorValue
        Numbers (and dates, as Excel serial numbers) as ``float``; text as ``str``; blanks
        and ``""`` as ``None``; TRUE/FALSE as ``bool``; error cells, and text spelling an
        error code, as :class:`ErrorValue`.
    """
    if value is None or isinstance(value, ErrorValue):
        return value
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, str):  # also formulas' XlError and schedula's EMPTY (str subclasses)
        if _is_headless_blank(value):
            return None
        text = str(value)
        if text == "":
            return None
        return ErrorValue(text) if text in ERROR_CODES else text
    if isinstance(value, int) and not isinstance(value, bool) and value in _COM_HRESULTS:
        return ErrorValue(_COM_HRESULTS[value])
    if isinstance(value, (numbers.Real, decimal.Decimal)):
        try:
            return float(value)
        except OverflowError:  # an integer beyond float range (from Python): the engine names it
            return value
    if isinstance(value, _dt.datetime):
        return (value.replace(tzinfo=None) - _EXCEL_EPOCH) / _dt.timedelta(days=1)
    if isinstance(value, _dt.date):
        return float((value - _EXCEL_EPOCH.date()).days)
    if isinstance(value, dict) and value.get("type") == "Error":  # Office.js without err_to_str
        return ErrorValue(str(value.get("basicValue", "#VALUE!")))
    if _is_jsnull(value):
        return None
    return value


_type_of = np.frompyfunc(type, 1, 1)


def _as_range(value, optional: bool):
    """A range argument as an array of cells; ``None`` for a blank optional range.

    A block of plain numbers becomes a float array; anything else an object array of
    :func:`cell` values, in the shape given (a single value as 1 x 1).  Only the cells that
    are not already floats go through :func:`cell`, so a large block of numbers costs one
    pass of ``type()`` over its cells.
    """
    if value is None or _is_jsnull(value) or _is_headless_blank(value):
        return None if optional else np.full((1, 1), None, dtype=object)
    if isinstance(value, np.ndarray) and value.dtype.kind in "fiu":
        return value
    arr = np.asarray(value, dtype=object)
    if arr.ndim == 0:
        arr = arr.reshape(1, 1)
    flat = arr.ravel()
    others = np.flatnonzero(_type_of(flat) != float) if flat.size else np.empty(0, int)
    if flat.size and not others.size:
        return arr.astype(float)
    out = flat.copy()
    for i in others:
        out[i] = cell(flat[i])
    if flat.size and all(type(out[i]) is float for i in others):
        return out.astype(float).reshape(arr.shape)
    if optional and all(out[i] is None for i in others) and len(others) == flat.size:
        return None
    return out.reshape(arr.shape)


def _as_value(value, name: str, optional: bool = False):
    """A single-cell argument: a 1 x 1 range is its cell; a larger range is refused, but for
    a range of blanks given to an ``optional`` one, which is left out (``None``) as a blank
    cell is."""
    if isinstance(value, (list, tuple, np.ndarray)):
        arr = np.asarray(value, dtype=object)
        if arr.size != 1:
            if optional and arr.size and all(cell(v) is None for v in arr.ravel()):
                return None
            raise InputError(f"{name}: expected a single cell, got a range of {arr.size} cells")
        value = arr.reshape(-1)[0]
    return cell(value)


def _first_error(value):
    """``(index, code)`` of the first error cell (row by row), or ``None``."""
    if isinstance(value, ErrorValue):
        return (), value.code
    if isinstance(value, np.ndarray) and value.dtype == object and value.size:
        errors = _type_of(value.ravel()) == ErrorValue
        if not errors.any():
            return None
        at = int(np.argmax(errors))
        return tuple(int(i) for i in np.unravel_index(at, value.shape)), value.flat[at].code
    return None


def _error_message(name: str, index: tuple, code: str, shape) -> str:
    if not index or int(np.prod(shape)) == 1:
        return f"{name}: got the error {code}"
    if len(index) == 1:
        where = f"item {index[0] + 1}"
    else:
        where = f"row {index[0] + 1}, column {index[1] + 1}"
    return f"{name}: {where} holds the error {code}"


# ------------------------------------------------------------------------------------------
# hints and the decorator
# ------------------------------------------------------------------------------------------
#: xlwings options for every argument: error cells as their code, blanks as None.
_CELL_OPTIONS = {"err_to_str": True, "empty": None}


def range_hint(doc: str):
    """A range argument: a 2-D object array of cells, in every runtime."""
    return Annotated[np.ndarray, {"ndim": 2, "dtype": object, **_CELL_OPTIONS, "doc": doc}]


def value_hint(kind, doc: str):
    """A single-cell argument (``kind`` documents what is expected: float, str, bool)."""
    return Annotated[kind, {**_CELL_OPTIONS, "doc": doc}]


def _is_range(hint) -> bool:
    base = typing.get_args(hint)[0] if typing.get_origin(hint) is Annotated else hint
    return (typing.get_origin(base) or base) in (np.ndarray, list)


def is_udf(obj) -> bool:
    """True for a function declared with :func:`udf`."""
    return callable(obj) and getattr(obj, "__xlmvar_udf__", False)


#: What the engine calls a model, by its kind: in a function whose argument is ``model``
#: its messages name that argument.
_MODEL_KINDS = frozenset({"cov", "returns", "pnl"})


def _in_excel_terms(message: str, parameters) -> str:
    """An engine message naming the function's argument as Excel shows it: ``cov:``,
    ``returns:`` or ``pnl:`` at its start becomes ``model:`` where that is the argument's
    name (PORTVAR's model is a covariance, a returns table or a P&L table by method)."""
    head, colon, rest = message.partition(":")
    if colon and head in _MODEL_KINDS and head not in parameters and "model" in parameters:
        return "model" + colon + rest
    return message


def udf(func=None, *, category: str = CATEGORY):
    """Declare an Excel function: convert its arguments, apply Excel's rules, register it with xlwings.

    Each argument is converted by its hint: a range hint gives an array of :func:`cell`
    values, any other hint a single :func:`cell`.  A blank optional argument (one blank
    cell, a range of blanks, ``=""``) is left out: the function gets its declared default.
    Then, before ``func`` runs, the first error cell among the arguments (in argument
    order, row by row) raises :class:`InputError` naming the argument, the cell and the
    code.  A ``ValueError`` from the engine is re-raised as :class:`InputError` with the
    same message (naming a model ``model`` where that is the argument, see
    :func:`_in_excel_terms`), so that every runtime shows it.

    The wrapper keeps ``func``'s signature and (resolved) hints, which is what xlwings
    reads on every platform, and is registered with ``xlwings.func`` when xlwings is
    installed.
    """
    if func is None:
        return functools.partial(udf, category=category)
    hints = typing.get_type_hints(func, include_extras=True)
    signature = inspect.signature(func)
    empty = inspect.Parameter.empty
    plan = [
        (name, _is_range(hints.get(name)), param.default is not empty, param.default)
        for name, param in signature.parameters.items()
    ]

    parameters = frozenset(signature.parameters)

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        values = []
        for name, is_range, optional, default in plan:
            given = bound.arguments.get(name)
            value = _as_range(given, optional) if is_range else _as_value(given, name, optional)
            found = _first_error(value)
            if found is not None:
                index, code = found
                shape = np.shape(value)
                raise InputError(_error_message(name, index, code, shape), code)
            values.append(default if value is None and optional else value)
        try:
            return func(*values)
        except InputError:
            raise
        except ValueError as exc:
            raise InputError(_in_excel_terms(str(exc), parameters)) from exc

    wrapper.__annotations__ = dict(hints)
    wrapper.__xlmvar_udf__ = True
    return _register(category=category)(wrapper)
