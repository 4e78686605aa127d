"""The Excel adapter: every xlmvar spreadsheet function, as xlwings and the workbook layer call it.

:mod:`xlmvar.excel.functions` holds one thin function per Excel formula: it converts the
cells it is given, calls the engine and shapes the result (a vector comes back in the
orientation of the ``positions`` range).  :data:`FUNCTIONS` is the table of them by Excel
name; the top-level module ``udfs`` re-exports it for xlwings (``UDF Modules: udfs``).

May import: the engine (:mod:`xlmvar.engine`) and xlwings.  Never the workbook layer.
"""

from __future__ import annotations

import inspect

from . import functions, handles

#: Excel name -> function, for every xlmvar spreadsheet function.
FUNCTIONS = {
    name: obj
    for module in (functions, handles)
    for name, obj in vars(module).items()
    if name.isupper() and inspect.isfunction(obj) and obj.__module__ == module.__name__
}

__all__ = ["FUNCTIONS", "functions", "handles"]
