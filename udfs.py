"""xlmvar's Excel functions, as xlwings imports them.

This module is the name table xlwings reads (Windows: ``UDF Modules: udfs`` in the xlwings
add-in or ribbon; xlwings Server and Lite: ``from udfs import *``).  The functions themselves
live in :mod:`xlmvar.excel.functions`, one thin function per formula over the engine.

    =PORTVAR(positions, model, [confidence], [horizon], [method], ...)
"""

from xlmvar.excel.functions import (  # noqa: F401
    PORTVAR,
    MARGINALVAR,
    COMPONENTVAR,
    COMPONENTVARPCT,
    INDIVIDUALVAR,
    UNDIVERSIFIEDVAR,
    DIVERSIFICATION,
    INCREMENTALVAR,
    PORTES,
    MARGINALES,
    COMPONENTES,
    PORTVOL,
    COVFROMCORR,
    RISKREPORT,
    RETURNS,
    COVMATRIX,
    CORRMATRIX,
    NEARESTCORR,
    MCSTDERR,
    INCREMENTALES,
    VARLIMITS,
    NEWASSETMVAR,
    BESTHEDGE,
    RETURNPERRISK,
    RISKPARITY,
    STRESSCORR,
    VARBACKTEST,
)
from xlmvar.excel.handles import RISKMODEL  # noqa: F401

__all__ = [
    "PORTVAR",
    "MARGINALVAR",
    "COMPONENTVAR",
    "COMPONENTVARPCT",
    "INDIVIDUALVAR",
    "UNDIVERSIFIEDVAR",
    "DIVERSIFICATION",
    "INCREMENTALVAR",
    "PORTES",
    "MARGINALES",
    "COMPONENTES",
    "PORTVOL",
    "COVFROMCORR",
    "RISKREPORT",
    "RETURNS",
    "COVMATRIX",
    "CORRMATRIX",
    "NEARESTCORR",
    "MCSTDERR",
    "INCREMENTALES",
    "VARLIMITS",
    "NEWASSETMVAR",
    "BESTHEDGE",
    "RETURNPERRISK",
    "RISKPARITY",
    "STRESSCORR",
    "VARBACKTEST",
    "RISKMODEL",
]
