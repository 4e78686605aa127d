"""Where IronCalc's answer depends on quirks of Excel it does not share: found and kept.

The headless calculator (:mod:`xlmvar.workbook._core_ironcalc`) either computes Excel's value
or keeps the value Excel cached and says why (exit status 3).  This module finds the formulas
whose value IronCalc would get wrong without a word, for four families of functions:

* **Approximate lookups** (``MATCH(x, v, 1)``, ``MATCH(x, v, -1)``, ``VLOOKUP``/``HLOOKUP``
  without FALSE, ``LOOKUP``).  Excel searches by bisection and compares only values of the
  lookup value's own type (a number never matches a text, ``TRUE`` never a text): on a
  vector that is sorted as the match type requires and holds only that type, every bisection
  gives the documented answer (the last value <= x, or for -1 the last value >= x); anywhere
  else the answer depends on how the bisection runs.  IronCalc compares across types (text
  above numbers, booleans above text) and, among equal values, stops at another one than
  Excel (``MATCH(2, {1,2,2,2,3})``: IronCalc 3; Excel's bisection ends on the last, 4).  So
  a lookup is computed only when its vector (blank cells left out: those have their own check)
  holds values of the lookup value's type alone, sorted as required, the value it lands on
  not repeated, and texts made of ASCII letters, digits and spaces (where Excel's collation
  and IronCalc's case-blind order agree); otherwise Excel's value is kept.
  ``pycel-lookup.xlsx``: ``HLOOKUP(TRUE, <row of texts>, 1)`` is #N/A in Excel, IronCalc
  gave the last text; ``MATCH(0.5, <0..4 ascending>, -1)`` #N/A, IronCalc 5.
* **TEXT(value, format)**: IronCalc's number formatting rounds a binary tie otherwise than
  Excel (Excel first takes 15 significant digits, then rounds half away from zero:
  ``TEXT(2.675, "0.00")`` is 2.68 in Excel, 2.67 in IronCalc; ``TEXT(2.5, "0")`` 3 and 2),
  rounds numbers below 2 (in the format's units) astray and may drop their minus
  (``TEXT(0.950464, "0.000")`` 0.951, ``TEXT(-1.08825, "0")`` 1), drops the minus of a number
  that rounds to zero (Excel ``-0.00``), returns a boolean
  unchanged (Excel: ``"TRUE"``), leaves a numeric text unformatted, and misreads many format
  codes (``"#.###"``, ``"[h]:mm"``, sections, literals).  TEXT is computed only for the
  formats of :data:`TEXT_FORMATS`, a number for value of 2 or more in the format's units (or
  0), no tie and fewer than 12 digits down to the last one shown; anything else keeps
  Excel's value.  A format given by
  a cell or an expression is checked on its computed value.
* **DAY, MONTH, YEAR, WEEKDAY of a serial in [0, 61)**: Excel counts 29 February 1900 (serial
  60, Lotus's leap-year bug) and serial 0 is "0 January 1900"; IronCalc's calendar does not
  (``DAY(0)`` #NUM!, ``DAY(30)`` 29 where Excel says 30).  Of a cell or a number (WEEKDAY
  with return type 1), the call is written to compute Excel's answer below 61
  (:func:`_date_part`); otherwise, and for a text read as such a date, Excel's value is kept.
* **LINEST, LOGEST, TREND, GROWTH** over a range holding a blank (Excel #VALUE!, IronCalc
  takes 0), and LINEST/LOGEST statistics over a perfect fit (Excel's F is #NUM!, IronCalc's
  4.8e29 from rounding noise).  Kept.
* **SWITCH** with a blank cell on one side and FALSE or ``""`` on the other: Excel takes the
  blank as 0 (no match), IronCalc matches it.  Kept.
* **HOUR, MINUTE, SECOND**: Excel rounds the time to the nearest second
  (``SECOND(0.5 + 53.5/86400)`` is 54), IronCalc truncates (53).  Kept when the two differ
  (a probe compares IronCalc's answer with the rounded one).

Each check is a probe formula written beside the book and evaluated with it
(:class:`~xlmvar.workbook._core_ironcalc._Check`); the approximate lookups are then decided
in Python on the vector's values (:func:`lookup_diverges`).
"""

from __future__ import annotations

import bisect
import re

#: Number formats whose TEXT IronCalc renders as Excel does, away from the cases the probe
#: excludes: format -> (decimals shown, scale).  Measured against Excel's documented rule
#: (15 significant digits, then half away from zero) and LibreOffice
#: (``tests/test_calc_divergences_corpus.py``).
TEXT_NUMBER_FORMATS = {
    "0": (0, 1), "0.0": (1, 1), "0.00": (2, 1), "0.000": (3, 1),
    "#,##0": (0, 1), "#,##0.0": (1, 1), "#,##0.00": (2, 1),
    "0%": (0, 100), "0.0%": (1, 100), "0.00%": (2, 100),
}
#: Date formats rendered as Excel does for a serial of 61 (1 March 1900) and later whose time
#: of day is not within a second of midnight (Excel may round it up to the next day).
TEXT_DATE_FORMATS = ("yyyy-mm-dd",)
TEXT_FORMATS = frozenset(TEXT_NUMBER_FORMATS) | frozenset(TEXT_DATE_FORMATS)

#: Functions of a date serial whose answer IronCalc gives otherwise below serial 61.
DATE_PARTS = frozenset({"DAY", "MONTH", "YEAR", "WEEKDAY"})
#: Functions of a time, with Excel's answer computed from the time rounded to the second.
TIME_PARTS = {
    "HOUR": "MOD(INT(ROUND(({0})*86400,0)/3600),24)",
    "MINUTE": "MOD(INT(ROUND(({0})*86400,0)/60),60)",
    "SECOND": "MOD(ROUND(({0})*86400,0),60)",
}
#: Regressions over known y's and x's (arguments 0 and 1), and whether the function takes
#: the ``stats`` argument (4th): LINEST and LOGEST.
REGRESSIONS = {"LINEST": True, "LOGEST": True, "TREND": False, "GROWTH": False}
#: Other functions of date serials: IronCalc's day 1 is 31 December 1899 and it has no 29
#: February 1900, so below serial 61 its answer is a day off (``DATE(1900,1,15)`` 16, Excel
#: 15; ``EOMONTH(10,0)`` 32, Excel 31; ``YEARFRAC(30,100)``).  Kept when one of the serials
#: listed (``"r"`` the result, a number an argument) is in [0, 61).
SERIAL_CALLS = {"DATE": ("r",), "DATEVALUE": ("r",), "EDATE": (0, "r"), "EOMONTH": (0, "r"), "WORKDAY": (0, "r"),
                "WORKDAY.INTL": (0, "r"), "YEARFRAC": (0, 1), "DAYS360": (0, 1), "DAYS": (0, 1), "NETWORKDAYS": (0, 1),
                "NETWORKDAYS.INTL": (0, 1), "DATEDIF": (0, 1), "WEEKNUM": (0,), "ISOWEEKNUM": (0,)}
#: Functions that turn an error into a value (IFERROR's fallback, ISERROR's TRUE, COUNT's
#: skipping it), and which of their arguments: ``"all"``, or the first one probed.  IronCalc
#: shows an error of its own where it lacks a form of a function (``#N/IMPL!``:
#: ``PRODUCT({1,2,50})``), and such a cell keeps Excel's value; inside one of these it would
#: become a plausible value instead (``IFERROR(PRODUCT({1,2,50}),1)`` 1, Excel 100).  Each
#: argument holding a call is probed for an error of IronCalc's own (``ERROR.TYPE`` 100 and
#: up; Excel's are 1 to 14) through ``SUM``, which passes on an error, alone or in an array.
SWALLOWERS = {"IFERROR": 0, "IFNA": 0, "ISERROR": 0, "ISERR": 0, "ISNA": 0, "ISNUMBER": 0, "ISTEXT": 0,
              "ISNONTEXT": 0, "ISLOGICAL": 0, "ISBLANK": 0, "ERROR.TYPE": 0, "TYPE": 0, "COUNT": "all",
              "COUNTA": "all", "AGGREGATE": "all"}
NAMES = (DATE_PARTS | frozenset(TIME_PARTS) | frozenset(REGRESSIONS) | frozenset(SERIAL_CALLS) | {"TEXT", "SWITCH"}
         | frozenset(SWALLOWERS))
CALL = re.compile(r"(?<![A-Za-z0-9_.\\])(?:_xlfn\.)?(" + "|".join(map(re.escape, sorted(NAMES))) + r")\s*\(", re.I)
_STRING_LITERAL = re.compile(r'^\s*"((?:[^"]|"")*)"\s*$')
_SIMPLE_TEXT = re.compile(r"^[A-Za-z0-9 ]*$")
_PLAIN_CELL = re.compile(r"^\s*(?:(?:(?:'(?:[^']|'')+'|[\w.]+)!)?\$?[A-Za-z]{1,3}\$?[0-9]+|[0-9]+(?:\.[0-9]*)?)\s*$")
_PLAIN_RANGE = re.compile(r"^\s*(?:(?:'(?:[^']|'')+'|[\w.]+)!)?\$?[A-Za-z]{1,3}\$?[0-9]+(?::\$?[A-Za-z]{1,3}\$?[0-9]+)?\s*$")


def _text_number_risk(value: str, decimals: int, scale: int) -> str:
    """A formula that is TRUE where ``TEXT(value, <format>)`` may differ between Excel and
    IronCalc for a number format of ``decimals`` decimals and ``scale`` (100 for percent).

    With ``x = |value| * scale * 10**decimals`` (the number in units of the last digit
    shown): a tie (``x mod 1`` within ``1e-9 + 1e-13 x`` of one half, which covers a binary
    value whose 15 significant digits end in 5), ``x >= 1e12`` (too close to Excel's 15
    digits), a value that is not a number, or a number other than 0 below 2 in the format's
    units (``|value| * scale < 2``): there IronCalc's rounding goes astray
    (``TEXT(0.950464, "0.000")`` 0.951, ``TEXT(0.0150134, "0.00")`` 0.01, ``TEXT(-1.08825,
    "0")`` 1 without its minus; Excel: 0.950, 0.02, -1), and a negative number that rounds to
    zero is shown by Excel with its minus (``-0.00``).  Measured on 30,000 values of every
    magnitude from 1e-5 to 1e11, both signs, every format of :data:`TEXT_NUMBER_FORMATS`:
    outside these cases IronCalc gave Excel's text every time
    (``tests/test_calc_divergences_corpus.py``).
    """
    x = f"(ABS({value})*{scale * 10 ** decimals})"
    return (f"OR(NOT(ISNUMBER({value})),{x}>=1E12,ABS(MOD({x},1)-0.5)<=1E-9+{x}*1E-13,"
            f"AND({value}<>0,ABS({value})*{scale}<2))")


def _text_date_risk(value: str) -> str:
    """TRUE where ``TEXT(value, "yyyy-mm-dd")`` may differ: not a number, a serial below 61
    or past 31 December 9999, or a time of day within a second of midnight."""
    return f"OR(NOT(ISNUMBER({value})),{value}<61,{value}>=2958466,MOD({value},1)>1-1/86400)"


def _text_format_risk(fmt: str, value: str) -> str | None:
    """The risk formula of a literal format, or None when the format is not verified."""
    if fmt in TEXT_NUMBER_FORMATS:
        return _text_number_risk(value, *TEXT_NUMBER_FORMATS[fmt])
    if fmt in TEXT_DATE_FORMATS:
        return _text_date_risk(value)
    return None


_NUMBER_OR_CELL = re.compile(r"^\s*(?:\$?[A-Za-z]{1,3}\$?[0-9]+(?::\$?[A-Za-z]{1,3}\$?[0-9]+)?|[0-9]+(?:\.[0-9]*)?"
                             r'|"(?:[^"]|"")*"|TRUE|FALSE)\s*$', re.I)


def _qualified(text: str, sheet_name: str) -> str:
    """``text`` with its references qualified with ``sheet_name`` (a probe stands on the
    formula's sheet but far from it: relative references are meant on the formula's sheet).
    A cell, a range, a number, a string or a logical alone is done without the tokenizer."""
    from ._core_ironcalc import _qualified as qualified

    m = _NUMBER_OR_CELL.match(text)
    if m is None:
        return qualified(text, sheet_name)
    text = text.strip()
    if text.upper() in ("TRUE", "FALSE") or not (text[:1].isalpha() or text[:1] == "$"):
        return text  # a number, a string, a logical
    return "'" + sheet_name.replace("'", "''") + "'!" + text


def _closing(text: str, i: int) -> int:
    from ._core_ironcalc import _closing

    return _closing(text, i)


def _swallowed_checks(name: str, args: list, sheet_name: str) -> list:
    """Probes of the arguments of ``name`` (one of :data:`SWALLOWERS`) that hold a call:
    Excel's value is kept when one gives an error of IronCalc's own."""
    from ._core_ironcalc import _Check, _masked

    out = []
    for arg in args:
        if "(" not in _masked(arg):  # a reference or a constant: its own cell shows the error
            continue
        value = "(" + _qualified(arg, sheet_name) + ")"
        out.append(_Check("true", f"IFERROR(ERROR.TYPE(SUM({value}))>=100,FALSE)",
                          f"gives {name} an argument that holds a form of a function the headless calculator "
                          f"does not implement, whose error {name} would turn into a value"))
    return out


def checks(text: str, sheet_name: str) -> tuple[str, list]:
    """The formula IronCalc evaluates, and the checks of its TEXT, SWITCH, regression,
    date-part and time-part calls.

    Parameters
    ----------
    text : str
        The formula as IronCalc would evaluate it (without ``=``).
    sheet_name : str
        Its sheet: the probes qualify the formula's references with it.

    Returns
    -------
    (text, checks)
        ``text``: the formula with each DAY, MONTH, YEAR and WEEKDAY of a cell or a number
        written to give Excel's answer below serial 61 too (:func:`_date_part`);
        ``checks``: the probes (``_Check`` of kind ``"true"``: Excel's value is kept when one
        shows TRUE or an error).
    """
    from ._core_ironcalc import _Check, _masked, split_arguments

    masked, found, splices = _masked(text), [], []
    for m in CALL.finditer(masked):
        name = m.group(1).upper()
        try:
            close = _closing(masked, m.end() - 1)
        except ValueError:  # unbalanced: IronCalc does not parse it either
            continue
        args = split_arguments(text[m.end():close])
        if not args or not args[0].strip():
            continue
        value = "(" + _qualified(args[0], sheet_name) + ")"
        if name in SWALLOWERS:
            found += _swallowed_checks(name, args if SWALLOWERS[name] == "all" else args[:1], sheet_name)
            continue
        if name in REGRESSIONS:
            found += _regression_checks(name, args, sheet_name, _f_statistic_read(text, masked, m.start()))
            continue
        if name in SERIAL_CALLS:  # probed on the formula as rewritten (below)
            continue
        if name == "SWITCH":
            compared = args[1:len(args) - (len(args) - 1) % 2:2]
            if compared:
                found.append(_switch_check([value] + ["(" + _qualified(a, sheet_name) + ")" for a in compared]))
            continue
        if name == "TEXT":
            if len(args) < 2:
                continue
            literal = _STRING_LITERAL.match(args[1])
            if literal:
                fmt = literal.group(1).replace('""', '"')
                risk = _text_format_risk(fmt, value)
                if risk is None:
                    risk = "TRUE"
                    reason = (f'TEXT with the format "{fmt}", which the headless calculator\'s core renders otherwise '
                              "than Excel (only " + ", ".join(f'"{f}"' for f in sorted(TEXT_FORMATS)) + " are verified)")
                else:
                    reason = (f'TEXT formats a value with "{fmt}" where Excel\'s rounding differs from the headless '
                              "calculator's core (a number below 2 in the format's units, a tie at the last digit, "
                              "12 digits or more) or the value is not a number")
            else:
                fmt = "(" + _qualified(args[1], sheet_name) + ")"
                branches = "TRUE"
                for f in sorted(TEXT_FORMATS, reverse=True):
                    branches = f'IF(EXACT({fmt},"{f}"),{_text_format_risk(f, value)},{branches})'
                risk = branches
                reason = (f"TEXT formats a value with the format {args[1].strip()}, whose value the headless "
                          "calculator's core renders otherwise than Excel (verified: "
                          + ", ".join(f'"{f}"' for f in sorted(TEXT_FORMATS)) + "), or hits a rounding tie, "
                          "or the value is not a number")
            # an error value passes through TEXT unchanged, in Excel and in IronCalc alike
            found.append(_Check("true", f"IF(ISERROR({value}),FALSE,IFERROR({risk},TRUE))", reason))
        elif name in DATE_PARTS and _PLAIN_CELL.match(args[0]) and (name != "WEEKDAY" or len(args) == 1
                                                                    or args[1].strip() == "1"):
            splices.append((m.start(), close + 1, _date_part(name, args[0].strip(), text[m.start():close + 1])))
            probe = f"IFERROR(AND(ISTEXT({value}),{value}*1>=0,{value}*1<61),FALSE)"
            found.append(_Check("true", probe,
                                f"{name} of a text read as a date before 1 March 1900: Excel counts 29 February 1900 "
                                "and a day 0, the headless calculator's core does not"))
        elif name in DATE_PARTS:
            # OR of the product, not AND: over a range or an array, any element below 61 counts
            probe = f"IFERROR(OR((({value})*1>=0)*(({value})*1<61)),FALSE)"
            found.append(_Check("true", probe,
                                f"{name} of a serial below 61 (before 1 March 1900): Excel counts 29 February 1900 "
                                "and a day 0, the headless calculator's core does not"))
        else:
            excel = TIME_PARTS[name].format(value)
            probe = f"IFERROR(OR({name}({value})<>{excel}),FALSE)"  # any element of a range
            found.append(_Check("true", probe,
                                f"{name} of a time with a fraction of a second: Excel rounds the time to the nearest "
                                "second, the headless calculator's core truncates it"))
    for start, end, replacement in reversed(splices):
        text = text[:start] + replacement + text[end:]
    return text, found + _serial_checks(text, sheet_name)


def _serial_checks(text: str, sheet_name: str) -> list:
    """The checks of the :data:`SERIAL_CALLS` of ``text`` (the formula with its date parts
    already rewritten, which their arguments may call: ``DATE(YEAR(A1),MONTH(A1),DAY(A1))`` of
    a blank is ``DATE(1900,1,0)``, Excel 0, IronCalc 1): Excel's value is kept when one of the
    call's serials (its result, or its date arguments) is in [0, 61)."""
    from ._core_ironcalc import _Check, _masked, split_arguments

    masked, found = _masked(text), []
    for m in CALL.finditer(masked):
        name = m.group(1).upper()
        if name not in SERIAL_CALLS:
            continue
        try:
            close = _closing(masked, m.end() - 1)
        except ValueError:
            continue
        args = split_arguments(text[m.end():close])
        spelled = text[m.start():m.end()].rstrip("( ")  # with its _xlfn. prefix, if any
        call = f"{spelled}(" + ",".join(_qualified(a, sheet_name) if a.strip() else "" for a in args) + ")"
        serials = [call if k == "r" else "(" + _qualified(args[k], sheet_name) + ")"
                   for k in SERIAL_CALLS[name] if k == "r" or k < len(args) and args[k].strip()]
        early = ",".join(f"OR((({x})*1>=0)*(({x})*1<61))" for x in serials)
        found.append(_Check("true", f"IFERROR(OR({early}),FALSE)",
                            f"{name} of a date before 1 March 1900: Excel counts 29 February 1900 and a day 0, "
                            "the headless calculator's core does not"))
    return found


#: Excel's date parts of a serial in [0, 61), from its day ``d = INT(serial)``: day 0 is
#: "0 January 1900", days 1-31 January, 32-60 February (29 February 1900 is day 60), and day
#: 1 a Sunday (WEEKDAY 1); from day 61 on Excel's calendar is the Gregorian one.
_EARLY = {"DAY": "IF({d}<32,{d},{d}-31)", "MONTH": "IF({d}<32,1,2)", "YEAR": "1900", "WEEKDAY": "MOD({d}-1,7)+1"}


def _date_part(name: str, cell: str, call: str) -> str:
    """``call`` (``DAY(cell)``, ...) written to give Excel's answer for a serial below 61 as
    well: ``IF(AND(OR(ISNUMBER(c),ISBLANK(c),ISLOGICAL(c)),N(c)>=0,N(c)<61), <Excel's part>,
    call)`` (a blank cell is serial 0, FALSE 0 and TRUE 1, as Excel reads them:
    pycel-date-time.xlsx).  Exact by Excel's documented 1900 leap-year rule; a text, an error
    or a later serial still goes to ``call``."""
    early = _EARLY[name].format(d=f"INT(N({cell}))")
    return f"IF(AND(OR(ISNUMBER({cell}),ISBLANK({cell}),ISLOGICAL({cell})),N({cell})>=0,N({cell})<61),{early},{call})"


_INDEX_BEFORE = re.compile(r"(?<![A-Za-z0-9_.\\])INDEX\s*\(\s*$", re.I)


def _f_statistic_read(text: str, masked: str, start: int) -> bool:
    """Whether the regression call at ``start`` may show its F statistic (row 4, column 1
    of LINEST's statistics): False only when it is INDEX's array with a literal row and
    column other than (4, 1), as in ``INDEX(LINEST(y, x, TRUE, TRUE), 3, 1)`` (R squared)."""
    from ._core_ironcalc import split_arguments

    m = _INDEX_BEFORE.search(masked[:start])
    if m is None:
        return True
    try:
        close = _closing(masked, m.end() - 1)
    except ValueError:
        return True
    args = [a.strip() for a in split_arguments(text[m.end():close])]
    if len(args) != 3 or not all(a.isdigit() for a in args[1:]):
        return True
    return (int(args[1]), int(args[2])) == (4, 1)


def _regression_checks(name: str, args: list, sheet_name: str, f_statistic: bool = True) -> list:
    """The checks of a LINEST, LOGEST, TREND or GROWTH call.

    * A known y's or x's given as a range that holds a blank or a text: Excel's answer is
      #VALUE! (``LINEST(C2:C13, B2:B13^{1,2})`` over a blank C2:C13, pycel-stats.xlsx),
      IronCalc takes a blank as 0 (it gave 0).  Kept when the range's count of numbers is
      short of its size and IronCalc's answer is not an error.
    * IronCalc's answer is an error: it does not evaluate every form Excel does (data in
      rows, ``LINEST(J3:N3, J4:N5, TRUE, FALSE)``, is #REF! there); Excel's value is kept,
      so the cells that read the array's range read Excel's values, not its blanks
      (pycel-stats.xlsx: ``=Q10`` read 0).
    * LINEST/LOGEST with statistics over a perfect fit: Excel's residual sum of squares is 0
      and its F statistic #NUM! (pycel-stats.xlsx: y = 1, 2, 3 over x = 2, 3, 4); IronCalc's
      residual comes out as rounding noise and F as 4.8e29.  Kept when the residual sum of
      squares is at most 1e-12 of the regression sum of squares and ``stats`` is TRUE, unless
      the call is INDEX's array with a literal cell other than the F statistic's
      (``f_statistic`` False: R squared and the coefficients are Excel's to rounding, the
      standard errors 0 against rounding noise).
    """
    from ._core_ironcalc import _Check

    found = []
    ranges = [_qualified(args[k].strip(), sheet_name) for k in (0, 1) if k < len(args) and _PLAIN_RANGE.match(args[k])]
    if ranges:  # (where IronCalc's own answer is an error, the cell shows it: not silent)
        call = f"{name}(" + ",".join(_qualified(a, sheet_name) for a in args) + ")"
        short = ",".join(f"COUNT({r})<ROWS({r})*COLUMNS({r})" for r in ranges)
        found.append(_Check("true", f"IFERROR(AND(NOT(ISERROR(INDEX({call},1,1))),OR({short})),FALSE)",
                            f"{name} over {' and '.join(args[k].strip() for k in (0, 1) if k < len(args) and _PLAIN_RANGE.match(args[k]))}"
                            ", which holds a blank or a text: Excel's answer is #VALUE!, the headless calculator's "
                            "core takes a blank as 0"))
    call = f"{name}(" + ",".join(_qualified(a, sheet_name) for a in args) + ")"
    found.append(_Check("true", f"ISERROR(INDEX({call},1,1))",
                        f"{name} ends in an error in the headless calculator's core, which does not evaluate every "
                        "form Excel does (data in rows: LINEST(J3:N3,J4:N5,...) is #REF! there)"))
    stats = args[3].strip().upper() if len(args) > 3 else ""
    if REGRESSIONS[name] and stats not in ("", "0", "FALSE") and f_statistic:
        call = f"{name}(" + ",".join(_qualified(a, sheet_name) for a in args[:3]) + ",TRUE)"
        found.append(_Check("true", f"IFERROR(AND({_qualified(args[3], sheet_name)},"
                                    f"INDEX({call},5,2)<=1E-12*INDEX({call},5,1)),FALSE)",
                            f"{name} with statistics over a perfect fit: Excel's residual sum of squares is 0 and its "
                            "F statistic #NUM!, the headless calculator's core leaves rounding noise (F near 1e29)"))
    return found


def _switch_check(operands: list):
    """The check of ``SWITCH(e, v1, r1, v2, r2, ..., [default])`` (``operands``: ``e``, ``v1``,
    ``v2`` ...): Excel compares a blank cell as the number 0 (``SWITCH(blank, 0, "m")`` matches,
    ``SWITCH(FALSE, blank, "m")`` and ``SWITCH(blank, "", "m")`` do not, pycel-logical.xlsx),
    IronCalc also matches a blank to FALSE and to "".  Kept when a blank ``e`` meets a FALSE or
    "" among the ``v``, or a blank ``v`` meets a FALSE or "" ``e``."""
    from ._core_ironcalc import _Check

    def false_or_empty(x: str) -> str:
        return f"OR(AND(ISLOGICAL({x}),{x}=FALSE),AND(ISTEXT({x}),LEN({x})=0))"

    e, values = operands[0], operands[1:]
    terms = [f"AND(ISBLANK({e}),OR(" + ",".join(false_or_empty(v) for v in values) + "))"]
    terms += [f"AND(ISBLANK({v}),{false_or_empty(e)})" for v in values]
    return _Check("true", "IFERROR(OR(" + ",".join(terms) + "),FALSE)",
                  "SWITCH compares a blank cell with FALSE or an empty text: Excel takes a blank as 0 there (no "
                  "match), the headless calculator's core matches it")


# Approximate lookups ---------------------------------------------------------------------

def _kind(value) -> str | None:
    """The type class Excel's lookups compare within: number, text, logical (None: other)."""
    if isinstance(value, bool):
        return "logical"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "text"
    return None


class _Vector:
    """What an approximate lookup needs to know of the vector it searches, computed once
    per vector (and evaluation): the kind of its non-blank cells (None when they mix kinds,
    ``"empty"`` when there are none), whether they are sorted as required, and their keys
    (texts lower-cased) in ascending order for bisection."""

    def __init__(self, values, descending: bool):
        values = list(values)
        cells = [v for v in values if v is not None]
        kinds = {_kind(v) for v in cells}
        self.kind = "empty" if not cells else (kinds.pop() if len(kinds) == 1 else None)
        # a blank among the values: IronCalc reads it as 0 on its way (-5, -4, blank, -3:
        # MATCH(-2.5, .., 1) gave 2, Excel 4); unless the numbers stay sorted with it read as
        # 0, where IronCalc's search goes as Excel's (landing on the blank: its own check)
        last = max((k for k, v in enumerate(values) if v is not None), default=-1)
        if any(v is None for v in values[:last]):
            zeros = [0.0 if v is None else v for v in values[: last + 1]]
            if self.kind != "number" or not all((a >= b) if descending else (a <= b) for a, b in zip(zeros, zeros[1:])):
                self.kind = None
        if self.kind == "text":
            if not all(_SIMPLE_TEXT.match(v) for v in cells):
                self.kind = None
            cells = [v.lower() for v in cells]
        if self.kind not in (None, "empty"):
            pairs = zip(cells, cells[1:])
            if not all((a >= b) if descending else (a <= b) for a, b in pairs):
                self.kind = None
        self.keys = cells[::-1] if descending else cells
        self.descending = descending

    def diverges(self, x) -> bool:
        """Whether the lookup of ``x`` may differ between Excel and IronCalc (see
        :func:`lookup_diverges`)."""
        if x is None:
            x = 0.0
        kind = _kind(x)
        if kind is None or self.kind == "empty":
            return False  # an error looked up (both return it); nothing to find (#N/A in both)
        if kind != self.kind:
            return True
        if kind == "text":
            if not _SIMPLE_TEXT.match(x):
                return True
            x = x.lower()
        keys = self.keys  # ascending
        if self.descending:  # the last value >= x: the first, in ascending order, >= x
            at = bisect.bisect_left(keys, x)
            if at == len(keys):
                return False  # #N/A in both
        else:  # the last value <= x
            at = bisect.bisect_right(keys, x) - 1
            if at < 0:
                return False
        landed = keys[at]
        return bisect.bisect_right(keys, landed) - bisect.bisect_left(keys, landed) > 1


def lookup_diverges(values, x, descending: bool) -> bool:
    """Whether an approximate lookup of ``x`` in ``values`` may differ between Excel and
    IronCalc.

    Parameters
    ----------
    values : iterable
        The cells of the vector searched, in order (None: blank, skipped; an error value is
        of no kind).
    x : object
        The lookup value as the book computes it (None: blank, looked up as 0).
    descending : bool
        ``MATCH``'s match type -1 (the vector must be sorted in descending order); else
        ascending.

    Returns
    -------
    bool
        False (computed) when the non-blank cells are all of ``x``'s type, sorted as
        required (texts compared case-blind, and made of ASCII letters, digits and spaces),
        and the value the lookup lands on occurs once: then Excel's bisection, any bisection,
        gives the documented answer, and so does IronCalc.  Also False when ``x`` is an error
        (both return it) or nothing can be found.  True otherwise: Excel's value is kept.
    """
    return _Vector(values, descending).diverges(x)


def new_round(model) -> None:
    """Forget the vectors read from ``model`` (its values are about to be read afresh)."""
    model.__dict__.pop("_lookup_vectors", None)


def lookup_check(name: str, rect, value: str, sheet_name: str, descending: bool, where: str):
    """The check of an approximate lookup over ``rect`` (the vector searched, a rectangle of
    the book; a table given to LOOKUP: the first line of its longer side, as Excel searches):
    a probe evaluates the lookup value ``value`` on the formula's sheet, and
    :func:`lookup_diverges` decides on the vector's values.  None for MATCH over a table
    (#N/A in both)."""
    from ._core_ironcalc import _Check

    r0, c0, r1, c1 = rect.r0, rect.c0, rect.r1, rect.c1
    if name == "LOOKUP" and r1 > r0 and c1 > c0:  # a table: Excel searches the first line of its longer side
        r1, c1 = (r0, c1) if c1 - c0 > r1 - r0 else (r1, c0)
    elif r1 > r0 and c1 > c0:
        return None  # MATCH over a table: #N/A in Excel and in IronCalc, whatever it holds

    def decide(model, x) -> bool:
        sheet = model.sheets.get(rect.sheet.lower())
        if sheet is None:
            return True
        vectors = model.__dict__.setdefault("_lookup_vectors", {})  # (emptied by new_round)
        key = (sheet, r0, c0, r1, c1, descending)
        if key not in vectors:
            vectors[key] = _Vector(model.read(sheet, r0, c0, r1, c1).ravel().tolist(), descending)
        return vectors[key].diverges(x)

    order = "descending" if descending else "ascending"
    return _Check("decide", "{0}", f"{name} searches {where} by approximate match, which is not {order} values of the "
                                   "lookup value's type alone (or repeats the value it lands on): Excel's answer then "
                                   "depends on its bisection, which the headless calculator's core does not reproduce",
                  value=value, sheet=sheet_name, decide=decide)
