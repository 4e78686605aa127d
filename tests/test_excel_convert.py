"""The one cell vocabulary (:func:`xlmvar.excel.convert.cell`) and the ``udf`` decorator's rules.

Each row: a cell as one runtime hands it over, and the Python value every runtime must give
for that cell state.  Expected values come from Excel's own definitions: a date is its serial
number in the 1900 date system (=DATE(2024,3,15) is 45366: 45292 for 1 Jan 2024, + 31 + 29
+ 14 days), noon is half a day; Excel's COM error numbers are xlErrNA = 2042 etc., handed
over by pywin32 as the HRESULT 0x800A0000 + number.
"""

from __future__ import annotations

import datetime as dt
import decimal
import inspect
import typing

import numpy as np
import pytest
import schedula
from formulas.tokens.operand import XlError

import udfs
from xlmvar.excel import FUNCTIONS, MODULES
from xlmvar.excel.convert import ErrorValue, InputError, cell, is_udf, udf

COM = 0x800A0000 - 2**32  # FACILITY_CONTROL HRESULT base as a signed 32-bit int

CELLS = [
    # number, as each runtime gives it
    ("float", 5e6, 5e6),
    ("json-int", 5000000, 5e6),
    ("numpy", np.float32(0.5), 0.5),
    ("com-currency", decimal.Decimal("1234.5"), 1234.5),
    # dates
    ("com-date", dt.datetime(2024, 3, 15), 45366.0),
    ("com-date-noon", dt.datetime(2024, 3, 15, 12), 45366.5),
    ("date", dt.date(2024, 3, 15), 45366.0),
    # text and blanks
    ("text", "SPY", "SPY"),
    ("empty-text", "", None),
    ("blank", None, None),
    ("headless-blank", schedula.EMPTY, None),
    ("spaces", "  ", "  "),
    # booleans stay booleans (never 1 and 0)
    ("true", True, True),
    ("numpy-false", np.bool_(False), False),
    # error cells
    ("err_to_str", "#N/A", ErrorValue("#N/A")),
    ("com-na", COM + 2042, ErrorValue("#N/A")),
    ("com-div0", COM + 2007, ErrorValue("#DIV/0!")),
    ("com-spill", COM + 2045, ErrorValue("#SPILL!")),  # not in xlwings' own table
    ("com-calc", COM + 2050, ErrorValue("#CALC!")),
    ("com-getting-data", COM + 2043, ErrorValue("#GETTING_DATA")),
    ("officejs-dict", {"type": "Error", "basicValue": "#REF!", "errorType": "Ref"}, ErrorValue("#REF!")),
    ("headless-xlerror", XlError("#NAME?"), ErrorValue("#NAME?")),
]


@pytest.mark.parametrize("raw, expected", [c[1:] for c in CELLS], ids=[c[0] for c in CELLS])
def test_one_cell(raw, expected):
    got = cell(raw)
    assert got == expected and type(got) is type(expected)


def test_com_error_numbers_are_the_hresults_pywin32_passes():
    # xlwings' own table for the seven classic errors (xlwings/_xlwindows.py cell_errors)
    assert COM + 2042 == -2146826246 and COM + 2007 == -2146826281 and COM + 2000 == -2146826288


def test_every_function_is_declared_with_udf_and_gathered():
    for name, func in FUNCTIONS.items():
        assert is_udf(func) and getattr(udfs, name) is func
        assert func.__module__ in {m.__name__ for m in MODULES}
    assert sorted(udfs.__all__) == sorted(FUNCTIONS)


def test_hints_ask_xlwings_for_error_codes_blanks_as_none_and_object_ranges():
    for name, func in FUNCTIONS.items():
        hints = typing.get_type_hints(func, include_extras=True)
        for param in inspect.signature(func).parameters:
            base, options = typing.get_args(hints[param])
            assert options["err_to_str"] is True and options["empty"] is None, (name, param)
            if base is np.ndarray:
                assert options["dtype"] is object and options["ndim"] == 2, (name, param)


def _probe():
    @udf
    def PROBE(values: typing.Annotated[np.ndarray, {"ndim": 2}], extra: typing.Annotated[np.ndarray, {"ndim": 2}] = None,
              flag: typing.Annotated[float, {}] = None) -> float:
        """Returns what it was given, to see the conversion."""
        return values, extra, flag

    return PROBE


def test_a_range_of_blanks_is_an_omitted_optional_range_and_a_blank_required_one():
    probe = _probe()
    values, extra, flag = probe([[1.0, 2]], [[None], [""]], "")
    assert values.dtype == float and values.tolist() == [[1.0, 2.0]]
    assert extra is None and flag is None
    values, _, _ = probe([[None]])
    assert values.dtype == object and values.tolist() == [[None]]


def test_the_first_error_in_argument_order_wins_and_keeps_its_code():
    probe = _probe()
    with pytest.raises(InputError, match=r"^values: row 1, column 2 holds the error #DIV/0!$") as info:
        probe([[1.0, "#DIV/0!", "#N/A"]], [["#REF!"]])
    assert info.value.excel_error == "#DIV/0!"
    with pytest.raises(InputError, match=r"^flag: got the error #NUM!$"):
        probe([[1.0]], None, [["#NUM!"]])
    with pytest.raises(InputError, match=r"^flag: expected a single cell, got a range of 2 cells$"):
        probe([[1.0]], None, [[1.0, 2.0]])


def test_engine_value_errors_become_input_errors_with_the_same_text():
    @udf
    def FAILS(x: typing.Annotated[float, {}]) -> float:
        """Raises as the engine does."""
        raise ValueError("x: got 3; expected 2")

    with pytest.raises(InputError, match=r"^x: got 3; expected 2$") as info:
        FAILS(3)
    assert info.value.excel_error == "#VALUE!" and isinstance(info.value.__cause__, ValueError)
