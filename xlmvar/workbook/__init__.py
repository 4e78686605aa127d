"""The workbook layer: read, evaluate and write workbooks without Excel; reports; templates.

Modules
-------
calc
    ``recalculate`` and ``calc``: every formula of a workbook evaluated headlessly (native
    Excel functions by the ``formulas`` library, xlmvar functions through the Excel adapter),
    the values written back as the formula cells' cached values by patching the sheet XML of
    a copy, so charts, names, styles and VBA survive byte for byte.
_xlsx, _evaluator, _limits, _safe_write
    The bounded streaming reader of the zip and its XML, the evaluator, the resource limits
    (on what is actually read) and the atomic, mode-keeping writer.
report
    A book's risk report, read through its defined names.
templates
    The generators of the template workbooks (XlsxWriter).

May import: the Excel adapter (:mod:`xlmvar.excel`), the engine, formulas, schedula,
openpyxl, XlsxWriter, lxml, defusedxml.  Never the command line.
"""
