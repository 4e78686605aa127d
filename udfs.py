"""xlmvar's Excel functions, as xlwings imports them.

This module is the name table xlwings reads (Windows: ``UDF Modules: udfs`` in the xlwings
add-in or ribbon; xlwings Server and Lite: ``from udfs import *``).  The functions themselves
live in the adapter modules of :mod:`xlmvar.excel` (one thin function per formula over the
engine); every function of :data:`xlmvar.excel.FUNCTIONS` is a name here.

    =PORTVAR(positions, model, [confidence], [horizon], [method], ...)
"""

from xlmvar.excel import FUNCTIONS as _FUNCTIONS
from xlmvar.excel import add_in_process as _add_in_process

globals().update(_FUNCTIONS)

# The add-in's process is xlmvar's own: BLAS rests on one thread from the first call on, so a
# small call switches nothing (README, "BLAS threads"); a large one still gets BLAS's threads.
_add_in_process()

__all__ = sorted(_FUNCTIONS)
