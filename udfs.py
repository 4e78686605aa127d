"""xlmvar's Excel functions, as xlwings imports them.

This module is the name table xlwings reads (Windows: ``UDF Modules: udfs`` in the xlwings
add-in or ribbon; xlwings Server and Lite: ``from udfs import *``).  The functions themselves
live in the adapter modules of :mod:`xlmvar.excel` (one thin function per formula over the
engine); every function of :data:`xlmvar.excel.FUNCTIONS` is a name here.

    =PORTVAR(positions, model, [confidence], [horizon], [method], ...)
"""

from xlmvar.excel import FUNCTIONS as _FUNCTIONS

globals().update(_FUNCTIONS)

__all__ = sorted(_FUNCTIONS)
