"""The Excel adapter: every xlmvar spreadsheet function, as xlwings and the workbook layer call it.

:mod:`xlmvar.excel.convert` is the one conversion from cells to Python values for every
runtime (classic Windows, Office.js / xlwings Server, xlwings Lite, headless) and the
decorator :func:`~xlmvar.excel.convert.udf` that declares an Excel function.  The adapter
modules in :data:`MODULES` hold the functions themselves, one thin function per formula:
convert, call the engine, shape the result (a vector comes back in the orientation of the
``positions`` range).  :data:`FUNCTIONS` gathers them by Excel name; the top-level module
``udfs`` re-exports it for xlwings (``UDF Modules: udfs``).

May import: the engine (:mod:`xlmvar.engine`) and xlwings.  Never the workbook layer.
"""

from __future__ import annotations

from . import analytics, convert, functions, handles
from .convert import is_udf

#: The adapter modules whose :func:`~xlmvar.excel.convert.udf` functions are Excel functions.
MODULES = (functions, analytics, handles)


def _gather(modules) -> dict:
    table = {}
    for module in modules:
        for name, obj in vars(module).items():
            if is_udf(obj) and obj.__module__ == module.__name__:
                if name in table:
                    raise RuntimeError(f"{name} is defined in {table[name].__module__} and {module.__name__}")
                table[name] = obj
    return table


#: Excel name -> function, for every xlmvar spreadsheet function.
FUNCTIONS = _gather(MODULES)


def add_in_process() -> None:
    """Set this process up as the Excel add-in's (``udfs`` calls it when imported): BLAS rests
    on one thread between xlmvar's blocks, from the first call on, so that a small call
    switches nothing (:func:`xlmvar.rest_blas_on_one_thread`; README, "BLAS threads")."""
    from ..engine._threads import rest_blas_on_one_thread

    rest_blas_on_one_thread()


__all__ = ["FUNCTIONS", "MODULES", "add_in_process", "analytics", "convert", "functions", "handles"]
