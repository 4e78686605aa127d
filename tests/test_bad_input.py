"""Bad input, answered in words: one table of cases, run through the Excel functions and
through a workbook recalculated headlessly.

Every case feeds a function arguments as Excel hands them to a UDF (2-D object arrays for
ranges, ``None`` for a blank cell, a string for text, ``NA`` = ``"#N/A"`` for an error cell,
as xlwings passes it with ``err_to_str``) and names the argument the message must start with and a regex for what it must say
(what is wrong and what is expected).  The same message must come back

* from the Excel function called from Python (``udfs.NAME(*args)`` raises ``ValueError``), and
* from a workbook: every case is one formula row of one workbook built with XlsxWriter (the
  inputs typed as cells: numbers, text, blanks, ``=NA()``), recalculated once with
  :func:`xlmvar.workbook.calc.recalculate`; the cell is ``#VALUE!`` and its reason is
  ``"NAME: <the same message>"``.

Cases marked ``sheet=False`` cannot be typed into a sheet (infinite values, arrays of three
dimensions, keyword options of engine functions) and run from Python only; engine functions
(``xlmvar.*``) are called directly where the Excel function adds nothing.  The zero-risk
book is not an error: its cases give the values it must have (0 VaR, 0 marginal VaR, 0% of
VaR; never NaN), checked the same two ways.
"""

from __future__ import annotations

import inspect
import math
import re
from dataclasses import dataclass, field

import numpy as np
import pytest
import xlsxwriter
from xlsxwriter.utility import xl_range_abs, xl_rowcol_to_cell

import xlmvar
from xlmvar.workbook.calc import recalculate, xlmvar_functions

NAN = float("nan")
NA = "#N/A"  # an error cell (=NA() in the sheet), as xlwings passes it with err_to_str
INF = float("inf")


# --------------------------------------------------------------------------------------------
# inputs
# --------------------------------------------------------------------------------------------
def col(*values) -> np.ndarray:
    """A column range as xlwings passes it."""
    return np.array([[v] for v in values], dtype=object)


def row(*values) -> np.ndarray:
    """A row range as xlwings passes it."""
    return np.array([list(values)], dtype=object)


def with_cell(table, i: int, j: int, value) -> np.ndarray:
    """A copy of a table range with cell (i, j) (0-based) replaced."""
    out = np.array(table, dtype=object)
    out[i, j] = value
    return out


VOLS = [0.15, 0.10, 0.60]
CORR = np.array([[1.0, -0.3, 0.2], [-0.3, 1.0, 0.1], [0.2, 0.1, 1.0]])
COV = xlmvar.cov_from_corr(VOLS, CORR)  # the seed example, as a typed matrix
X = col(5e6, 3e6, 2e6)
NOT_PSD = np.array([[1.0, 0.9, -0.9], [0.9, 1.0, 0.9], [-0.9, 0.9, 1.0]])  # pairwise valid, jointly not
_rng = np.random.default_rng(20240531)
HIST = np.round(_rng.normal(0.0005, 0.01, size=(60, 3)), 6)  # rows = periods, columns = assets
# a zero-mean history in multiples of 1/64 (sums exact in binary), so a book without
# risk has a marginal of exactly 0 and not the rounding noise of a sample mean
_half = _rng.integers(-4, 5, size=(16, 3)) / 64.0
DYADIC = np.vstack([_half, -_half])
HEDGE2 = row(1e6, -1e6)  # a perfect hedge of two assets that move together
SAME_COV = np.array([[0.04, 0.04], [0.04, 0.04]])
SAME_DYADIC = np.column_stack([DYADIC[:, 0], DYADIC[:, 0]])
SAME_DRIFT = np.column_stack([HIST[:40, 0] + 0.001, HIST[:40, 0] + 0.001])  # the same asset twice, with a mean
ZERO = row(0.0, 0.0, 0.0)
PRICES = 100.0 * np.cumprod(1.0 + HIST[:6], axis=0)


# --------------------------------------------------------------------------------------------
# the table
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Case:
    id: str
    function: str  # an Excel function of udfs (upper case), or "xlmvar.<engine function>"
    args: tuple
    arg: str | None  # the argument the message names (None: a value case)
    message: str | None  # regex of what follows "arg: "
    value: object = None  # value cases: the result expected
    sheet: bool = True  # False: Python only (cannot be typed into a sheet)
    kwargs: dict = field(default_factory=dict)


def bad(id, function, args, arg, message, *, sheet=True, **kwargs) -> Case:
    return Case(id, function, tuple(args), arg, message, sheet=sheet and not function.startswith("xlmvar."), kwargs=kwargs)


def ok(id, function, args, value) -> Case:
    return Case(id, function, tuple(args), None, None, value=value)


PERCENT = "which looks like a percentage"
CONF_RANGE = "expected a probability strictly between 0 and 1"
WHOLE_HORIZON = "expected a positive whole number of periods such as 1 or 10"
METHODS = r"expected one of normal, historical, cornish-fisher, montecarlo, pnl"

CASES = [
    # ---- cells inside numeric ranges: text, error, blank, infinite -------------------------
    bad("positions-text", "PORTVAR", (col(5e6, "three million", 2e6), COV), "positions",
        r"item 2 holds the text 'three million'; expected a number"),
    bad("positions-error", "PORTVAR", (col(5e6, NA, 2e6), COV), "positions",
        r"row 2, column 1 holds the error #N/A$"),
    bad("positions-nan", "PORTVAR", (col(5e6, NAN, 2e6), COV), "positions",
        r"item 2 holds an error or NaN; expected a finite number", sheet=False),
    bad("positions-blank", "PORTVAR", (col(5e6, None, 2e6), COV), "positions",
        r"item 2 holds a blank cell; expected a number"),
    bad("positions-bool", "PORTVAR", (col(5e6, True, 2e6), COV), "positions",
        r"item 2 holds TRUE; expected a number"),
    bad("positions-inf", "PORTVAR", (col(5e6, INF, 2e6), COV), "positions",
        r"item 2 holds an infinite value; expected a finite number", sheet=False),
    bad("positions-all-blank", "PORTVAR", (col(None, None, None), COV), "positions",
        r"item 1 holds a blank cell; expected a number"),
    bad("positions-table", "COMPONENTVAR", (np.array([[1e6, 2e6], [3e6, 4e6]], dtype=object), COV), "positions",
        r"expected a single row or column, got 2 rows x 2 columns"),
    bad("cov-text", "PORTVAR", (X, with_cell(COV, 2, 1, "n/a")), "model",
        r"row 3, column 2 holds the text 'n/a'; expected a number"),
    bad("cov-error", "MARGINALVAR", (X, with_cell(COV, 0, 0, NA)), "model",
        r"row 1, column 1 holds the error #N/A$"),
    bad("cov-blank", "COMPONENTVAR", (X, with_cell(COV, 1, 2, None)), "model",
        r"row 2, column 3 holds a blank cell; expected a number"),
    bad("cov-inf", "PORTVAR", (X, with_cell(COV, 1, 1, INF)), "model",
        r"row 2, column 2 holds an infinite value; expected a finite number", sheet=False),
    bad("returns-error", "PORTVAR", (X, with_cell(HIST, 4, 1, NA), None, None, "historical"), "model",
        r"row 5, column 2 holds the error #N/A$"),
    bad("returns-text", "PORTES", (X, with_cell(HIST, 0, 2, "-"), None, None, "cornish-fisher"), "model",
        r"row 1, column 3 holds the text '-'; expected a number"),
    bad("mean-text", "PORTVAR", (X, COV, None, None, "normal", col(0.001, "x", 0.0)), "mean",
        r"item 2 holds the text 'x'; expected a number"),
    # ---- sizes and shapes ------------------------------------------------------------------
    bad("cov-size", "PORTVAR", (col(5e6, 3e6), COV), "model",
        r"is 3 x 3 but there are 2 positions; expected one row and one column per asset"),
    bad("cov-size-one", "UNDIVERSIFIEDVAR", (col(5e6), COV), "model",
        r"is 3 x 3 but there is 1 position; expected one row and one column per asset"),
    bad("cov-not-square", "PORTVAR", (X, COV[:, :2]), "model", r"must be square, got 3 rows x 2 columns$"),
    bad("normal-given-returns", "PORTVAR", (X, HIST[:10]), "model",
        r"must be square, got 10 rows x 3 columns; a table with more rows than columns looks like a "
        r"returns history: use it with method \"historical\""),
    bad("montecarlo-given-returns", "PORTVAR", (X, HIST[:10], None, None, "montecarlo"), "model",
        r"must be square, got 10 rows x 3 columns; .*COVMATRIX"),
    bad("historical-given-cov", "PORTVAR", (X, COV, None, None, "historical"), "model",
        r"is a symmetric 3 x 3 table with a positive diagonal, which looks like a covariance matrix; "
        r"the historical method needs a returns history"),
    bad("cornish-fisher-given-cov", "COMPONENTVAR", (X, COV, None, None, "modified"), "model",
        r"looks like a covariance matrix; the cornish-fisher method needs a returns history"),
    bad("returns-transposed", "PORTVAR", (X, HIST[:10].T, None, None, "historical"), "model",
        r"has 10 columns but there are 3 positions; expected one column per asset; the table looks transposed"),
    bad("mean-size", "PORTVAR", (X, COV, None, None, "normal", col(0.001, 0.0)), "mean",
        r"has 2 values but the book has 3 assets; expected one value per asset"),
    bad("trade-size", "INCREMENTALVAR", (X, COV, col(1e6, 0.0)), "trade",
        r"has 2 values but the book has 3 assets; expected one value per asset"),
    # ---- covariance and correlation matrices -----------------------------------------------
    bad("cov-not-symmetric", "PORTVAR", (X, with_cell(COV, 0, 1, 0.5)), "model",
        r"is not symmetric: row 1, column 2 holds 0.5 but row 2, column 1 holds -0.0045"),
    bad("cov-negative-variance", "PORTVAR", (X, with_cell(COV, 1, 1, -0.01)), "model",
        r"the variance on the diagonal at row 2 is -0.01; variances cannot be negative"),
    bad("cov-not-psd", "PORTVAR", (X, NOT_PSD * 0.04), "model",
        r"is not positive semi-definite \(smallest eigenvalue -0.032\), so some portfolio would have a "
        r"negative variance; repair the correlations with NEARESTCORR"),
    bad("corr-above-1", "COVFROMCORR", (row(*VOLS), with_cell(with_cell(CORR, 0, 2, 1.2), 2, 0, 1.2)), "corr",
        r"row 1, column 3 is 1.2; correlations must lie in \[-1, 1\]"),
    bad("corr-below-minus-1", "COVFROMCORR", (row(*VOLS), with_cell(with_cell(CORR, 0, 1, -1.5), 1, 0, -1.5)), "corr",
        r"row 1, column 2 is -1.5; correlations must lie in \[-1, 1\]"),
    bad("corr-diagonal", "COVFROMCORR", (row(*VOLS), with_cell(CORR, 1, 1, 0.9)), "corr",
        r"the diagonal at row 2 is 0.9; a correlation matrix has 1 on its diagonal"),
    bad("corr-not-symmetric", "COVFROMCORR", (row(*VOLS), with_cell(CORR, 0, 1, 0.3)), "corr",
        r"is not symmetric: row 1, column 2 holds 0.3 but row 2, column 1 holds -0.3"),
    bad("corr-not-psd", "COVFROMCORR", (row(*VOLS), NOT_PSD), "corr",
        r"is not positive semi-definite .*; repair the correlations with NEARESTCORR"),
    bad("corr-size", "COVFROMCORR", (row(0.15, 0.10), CORR), "corr",
        r"is 3 x 3 but vols has 2 values; expected one row and one column per asset"),
    bad("corr-blank", "COVFROMCORR", (row(*VOLS), with_cell(CORR, 2, 0, None)), "corr",
        r"row 3, column 1 holds a blank cell; expected a number"),
    bad("vols-negative", "COVFROMCORR", (row(0.15, -0.10, 0.60), CORR), "vols",
        r"item 2 is -0.1; volatilities cannot be negative"),
    bad("vols-text", "COVFROMCORR", (row(0.15, "10%", 0.60), CORR), "vols",
        r"item 2 holds the text '10%'; expected a number"),
    bad("vols-overflow", "xlmvar.cov_from_corr", ([1e200, 1e200], np.eye(2)), "vols",
        r"the covariance vol_i corr_ij vol_j is too large or too small to compute in floating point"),
    # ---- confidence ------------------------------------------------------------------------
    bad("confidence-95", "PORTVAR", (X, COV, 95), "confidence", r"got 95, which looks like a percentage; use 95% or 0.95"),
    bad("confidence-0", "PORTVAR", (X, COV, 0), "confidence", rf"got 0; {CONF_RANGE}"),
    bad("confidence-1", "PORTES", (X, COV, 1), "confidence", rf"got 1; {CONF_RANGE}"),
    bad("confidence-negative", "MARGINALVAR", (X, COV, -0.95), "confidence", rf"got -0.95; {CONF_RANGE}"),
    bad("confidence-100", "PORTVAR", (X, COV, 100), "confidence", rf"got 100; {CONF_RANGE}"),
    bad("confidence-text", "PORTVAR", (X, COV, "95%"), "confidence",
        r"got the text '95%'; expected a probability such as 95% or 0.95"),
    bad("confidence-error", "PORTVAR", (X, COV, NA), "confidence", r"got the error #N/A$"),
    bad("confidence-inf", "PORTVAR", (X, COV, INF), "confidence",
        r"got an infinite value; expected a probability such as 95% or 0.95", sheet=False),
    # ---- horizon ---------------------------------------------------------------------------
    bad("horizon-0", "PORTVAR", (X, COV, None, 0), "horizon", rf"got 0; {WHOLE_HORIZON}"),
    bad("horizon-negative", "PORTES", (X, COV, None, -10), "horizon", rf"got -10; {WHOLE_HORIZON}"),
    bad("horizon-fraction", "COMPONENTVARPCT", (X, COV, None, 2.5), "horizon", rf"got 2.5; {WHOLE_HORIZON}"),
    bad("horizon-text", "PORTVAR", (X, COV, None, "ten days"), "horizon",
        r"got the text 'ten days'; expected a whole number of periods such as 1 or 10"),
    bad("horizon-error", "PORTVAR", (X, COV, None, NA), "horizon", r"got the error #N/A$"),
    # ---- method ----------------------------------------------------------------------------
    bad("method-unknown", "PORTVAR", (X, COV, None, None, "garch"), "method",
        rf"unknown method 'garch'; {METHODS} \(or the alias 'modified' for cornish-fisher\)"),
    bad("method-number", "INDIVIDUALVAR", (X, COV, None, None, 1), "method", rf"got 1; {METHODS}"),
    bad("method-error", "PORTVAR", (X, COV, None, None, NA), "method", r"got the error #N/A$"),
    bad("normal-takes-no-draws", "PORTVAR", (X, COV, None, None, "normal", None, 1000), "draws",
        r"the normal method does not take it \(it takes mean\)"),
    bad("historical-takes-no-mean", "PORTVAR", (X, HIST, None, None, "historical", col(0.0, 0.0, 0.0)), "mean",
        r"the historical method does not take it \(it takes none of mean, draws, dof, seed\)"),
    # ---- too few observations for the method and confidence --------------------------------
    bad("historical-es-99-50-rows", "PORTES", (X, HIST[:50], 0.99, None, "historical"), "model",
        r"has 50 rows; a 99% historical ES .* needs at least 100 rows"),
    bad("historical-var-1-row", "PORTVAR", (X, HIST[:1], None, None, "historical"), "model",
        r"has 1 rows; a 95% historical VaR .* needs at least 20 rows"),
    bad("historical-individual-1-row", "INDIVIDUALVAR", (X, HIST[:1], None, None, "historical"), "model",
        r"has 1 rows; a 95% historical VaR .* needs at least 20 rows"),
    bad("cornish-fisher-3-rows", "PORTVAR", (X, HIST[:3], None, None, "cornish-fisher"), "model",
        r"has 3 rows; the Cornish-Fisher expansion \(third and fourth moments\) needs at least 4 rows"),
    bad("cornish-fisher-3-rows-diversification", "DIVERSIFICATION", (X, HIST[:3], None, None, "modified"), "model",
        r"has 3 rows; the Cornish-Fisher expansion .* needs at least 4 rows"),
    bad("montecarlo-draws-99", "PORTVAR", (X, COV, 0.99, None, "montecarlo", None, 500), "draws",
        r"got 500; at 0.99 confidence at least 1000 draws are needed so that about 10 scenarios lie beyond the VaR"),
    bad("montecarlo-draws-999-es", "MARGINALES", (X, COV, 0.999, None, "montecarlo", None, 5000), "draws",
        r"got 5000; at 0.999 confidence at least 10000 draws are needed"),
    bad("montecarlo-draws-text", "PORTVAR", (X, COV, None, None, "montecarlo", None, "many"), "draws",
        r"got the text 'many'; expected a whole number of scenarios such as 100000"),
    bad("montecarlo-dof-2", "PORTVAR", (X, COV, None, None, "montecarlo", None, 1000, 2), "dof",
        r"got 2; expected Student-t degrees of freedom above 2"),
    bad("montecarlo-dof-error", "PORTVAR", (X, COV, None, None, "montecarlo", None, 1000, NA), "dof",
        r"got the error #N/A$"),
    bad("montecarlo-seed-negative", "PORTVAR", (X, COV, None, None, "montecarlo", None, 1000, None, -1), "seed",
        r"got -1; expected a whole number >= 0"),
    # ---- every other Excel function -------------------------------------------------------
    bad("incrementalvar-detail-text", "INCREMENTALVAR", (X, COV, col(1e6, 0.0, 0.0), None, None, None, "maybe"), "detail",
        r"got the text 'maybe'; expected TRUE or FALSE"),
    bad("incrementales-trade-text", "INCREMENTALES", (X, COV, col(1e6, "buy", 0.0)), "trade",
        r"item 2 holds the text 'buy'; expected a number"),
    bad("incrementales-historical-rows", "INCREMENTALES", (X, HIST[:10], col(1e6, 0.0, 0.0), None, None, "historical"), "model",
        r"has 10 rows; a 95% historical ES .* needs at least 20 rows"),
    bad("componentes-not-psd", "COMPONENTES", (X, NOT_PSD * 0.01), "model", r"is not positive semi-definite .*NEARESTCORR"),
    bad("portvol-horizon", "PORTVOL", (X, COV, 0), "horizon", rf"got 0; {WHOLE_HORIZON}"),
    bad("portvol-blank", "PORTVOL", (col(5e6, None, 2e6), COV), "positions", r"item 2 holds a blank cell"),
    # the horizon's factor overflowed after the per-period figure was checked (was inf)
    bad("portvol-overflow", "PORTVOL", (col(1e308, 1e308, 1e308), COV, 10), "positions",
        r"the standard deviation of these positions with this covariance is too large or too small to compute"),
    # a name block read row by row would put the names on the wrong figures
    bad("riskreport-names-block", "RISKREPORT", (np.array([["A", "B"], ["C", "D"]], dtype=object), col(1e6, 2e6, 3e6, 4e6),
        np.eye(4) * 0.01), "names", r"expected a single row or column, got 2 rows x 2 columns"),
    # integers beyond float range from Python: the engine's words, not a bare OverflowError
    bad("positions-huge-integer", "PORTVAR", (col(10**400, 1.0, 1.0), COV), "positions",
        r"item 1 holds a number too large for a floating-point value", sheet=False),
    bad("horizon-huge-integer", "PORTVAR", (X, COV, None, 10**400), "horizon",
        r"got a number too large for a floating-point value", sheet=False),
    bad("riskreport-names-count", "RISKREPORT", (col("SPY", "TLT"), X, COV), "names",
        r"has 2 cells but there are 3 positions; expected one name per position"),
    bad("riskreport-names-error", "RISKREPORT", (col("SPY", NA, "BTC"), X, COV), "names",
        r"row 2, column 1 holds the error #N/A$"),
    bad("riskreport-limit-15", "RISKREPORT", (col("SPY", "TLT", "BTC"), X, COV, None, None, None, 15), "limit",
        r"got 15, which looks like a percentage; use 15% or 0.15"),
    bad("riskreport-limit-error", "RISKREPORT", (col("SPY", "TLT", "BTC"), X, COV, None, None, None, NA), "limit",
        r"got the error #N/A$"),
    bad("returns-price-text", "RETURNS", (with_cell(PRICES, 2, 1, "n/a"),), "prices",
        r"row 3, column 2 holds the text 'n/a'; expected a price \(a positive number\)"),
    bad("returns-price-gap", "RETURNS", (with_cell(PRICES, 2, 1, None),), "prices",
        r"row 3, column 2 holds a blank cell; expected a price. Fill the gap, or use missing=\"drop\""),
    bad("returns-price-error", "RETURNS", (with_cell(PRICES, 1, 0, NA),), "prices",
        r"row 2, column 1 holds the error #N/A$"),
    bad("returns-price-negative", "RETURNS", (with_cell(PRICES, 3, 2, -5.0),), "prices",
        r"row 4, column 3 is -5; prices must be positive"),
    bad("returns-one-row", "RETURNS", (PRICES[:1],), "prices", r"has 1 row; at least 2 dates are needed to form a return"),
    bad("returns-method", "RETURNS", (PRICES, "cubic"), "method", r"unknown value 'cubic'; expected one of simple, log"),
    bad("returns-missing", "RETURNS", (PRICES, None, "fill"), "missing", r"unknown value 'fill'; expected one of error, drop"),
    bad("covmatrix-one-row", "COVMATRIX", (HIST[:1],), "returns", r"has 1 rows; at least 2 periods are needed"),
    bad("covmatrix-text", "COVMATRIX", (with_cell(HIST[:10], 3, 0, "x"),), "returns",
        r"row 4, column 1 holds the text 'x'; expected a number"),
    bad("covmatrix-method", "COVMATRIX", (HIST[:10], "garch"), "method",
        r"unknown value 'garch'; expected one of sample, ewma, ledoit-wolf"),
    bad("covmatrix-lam-94", "COVMATRIX", (HIST[:10], "ewma", 94), "lam", r"got 94, which looks like a percentage; use 0.94"),
    # a decay typed with the sample method was dropped: the sample covariance came back
    bad("covmatrix-lam-without-ewma", "COVMATRIX", (HIST[:10], None, 0.97), "lam",
        r"is the decay of the ewma method and applies with it only \(here method sample\)"),
    bad("corrmatrix-lam-ledoit-wolf", "CORRMATRIX", (HIST[:10], "ledoit-wolf", 0.9), "lam",
        r"applies with it only \(here method ledoit-wolf\)"),
    bad("corrmatrix-lam-0", "CORRMATRIX", (HIST[:10], "ewma", 0), "lam",
        r"got 0; expected a decay factor strictly between 0 and 1 such as 0.94"),
    bad("corrmatrix-error", "CORRMATRIX", (with_cell(HIST[:10], 9, 2, NA),), "returns",
        r"row 10, column 3 holds the error #N/A$"),
    bad("nearestcorr-diagonal", "NEARESTCORR", (with_cell(NOT_PSD, 0, 0, 2.0),), "corr",
        r"the diagonal at row 1 is 2; a correlation matrix has 1 on its diagonal"),
    bad("nearestcorr-above-1", "NEARESTCORR", (with_cell(with_cell(CORR, 1, 2, 1.1), 2, 1, 1.1),), "corr",
        r"row 2, column 3 is 1.1; correlations must lie in \[-1, 1\]"),
    bad("nearestcorr-not-square", "NEARESTCORR", (CORR[:, :2],), "corr", r"must be square, got 3 rows x 2 columns"),
    bad("nearestcorr-not-symmetric", "NEARESTCORR", (with_cell(NOT_PSD, 2, 0, 0.5),), "corr",
        r"is not symmetric: row 1, column 3 holds -0.9 but row 3, column 1 holds 0.5"),
    bad("mcstderr-measure", "MCSTDERR", (X, COV, None, None, "cvar"), "measure", r"got 'cvar'; expected one of var, es"),
    bad("mcstderr-measure-error", "MCSTDERR", (X, COV, None, None, NA), "measure", r"got the error #N/A$"),
    bad("mcstderr-draws", "MCSTDERR", (X, COV, 0.99, None, None, None, 50), "draws",
        r"got 50; at 0.99 confidence at least 1000 draws are needed"),
    bad("varlimits-limit-15", "VARLIMITS", (X, COV, 15), "limit", r"got 15, which looks like a percentage; use 15% or 0.15"),
    bad("varlimits-limit-blank", "VARLIMITS", (X, COV, None), "limit", r"got a blank cell; expected a fraction such as 15% or 0.15"),
    bad("varlimits-limit-text", "VARLIMITS", (X, COV, "15 percent"), "limit",
        r"got the text '15 percent'; expected a fraction such as 15% or 0.15"),
    bad("varlimits-limit-0", "VARLIMITS", (X, COV, 0), "limit", r"got 0; expected a fraction in \(0, 1\], such as 15% or 0.15"),
    bad("varlimits-cornish-fisher-rows", "VARLIMITS", (X, HIST[:3], 0.3, None, None, "cornish-fisher"), "model",
        r"has 3 rows; the Cornish-Fisher expansion .* needs at least 4 rows"),
    bad("newassetmvar-negative-variance", "NEWASSETMVAR", (X, COV, col(0.01, 0.0, 0.0), -0.04), "var_new",
        r"got -0.04; a variance cannot be negative"),
    bad("newassetmvar-blank-variance", "NEWASSETMVAR", (X, COV, col(0.01, 0.0, 0.0), None), "var_new",
        r"got a blank cell; expected the new asset's variance per period \(>= 0\)"),
    bad("newassetmvar-size", "NEWASSETMVAR", (X, COV, col(0.01, 0.0), 0.04), "cov_with_book",
        r"has 2 values but the book has 3 assets; expected one value per asset"),
    bad("newassetmvar-inconsistent", "NEWASSETMVAR", (X, COV, col(0.5, 0.0, 0.0), 0.04), "cov_with_book",
        r"these covariances are inconsistent with cov_book and var_new: .*not positive semi-definite"),
    bad("newassetmvar-cov-size", "NEWASSETMVAR", (X, COV[:2, :2], col(0.01, 0.0, 0.0), 0.04), "cov_book",
        r"is 2 x 2 but there are 3 positions; expected one row and one column per asset"),
    bad("besthedge-not-psd", "BESTHEDGE", (X, NOT_PSD * 0.04), "cov", r"is not positive semi-definite .*NEARESTCORR"),
    bad("besthedge-size", "BESTHEDGE", (col(5e6, 3e6), COV), "cov", r"is 3 x 3 but there are 2 positions"),
    bad("returnperrisk-size", "RETURNPERRISK", (X, COV, col(0.01, 0.02)), "expected_returns",
        r"has 2 values but the book has 3 assets; expected one value per asset"),
    bad("returnperrisk-error", "RETURNPERRISK", (X, COV, col(0.01, NA, 0.0)), "expected_returns",
        r"row 2, column 1 holds the error #N/A$"),
    bad("riskparity-zero-variance", "RISKPARITY", (np.diag([0.04, 0.0, 0.01]),), "cov",
        r"asset 2 has zero variance; it carries no risk and cannot take a positive risk budget"),
    bad("riskparity-budget-negative", "RISKPARITY", (COV, col(1.0, -1.0, 1.0)), "budgets",
        r"item 2 is -1; risk budgets must be positive"),
    bad("riskparity-budget-size", "RISKPARITY", (COV, col(1.0, 1.0)), "budgets", r"has 2 values but the book has 3 assets"),
    bad("riskparity-no-solution", "RISKPARITY", (np.array([[0.04, -0.04], [-0.04, 0.04]]),), "cov",
        r"no long-only portfolio with these risk budgets was found"),
    bad("stresscorr-theta-50", "STRESSCORR", (CORR, 50), "theta", r"got 50, which looks like a percentage; use 50% or 0.5"),
    bad("stresscorr-theta-negative", "STRESSCORR", (CORR, -0.1), "theta", r"got -0.1; expected a fraction in \[0, 1\]"),
    bad("stresscorr-theta-blank", "STRESSCORR", (CORR, None), "theta", r"got a blank cell; expected a fraction in \[0, 1\]"),
    bad("stresscorr-not-psd", "STRESSCORR", (NOT_PSD, 0.5), "corr", r"is not positive semi-definite .*NEARESTCORR"),
    bad("varbacktest-confidence-99", "VARBACKTEST", (col(1.0, -2.0, 3.0), col(1.5), 99), "confidence",
        r"got 99, which looks like a percentage; use 99% or 0.99"),
    bad("varbacktest-confidence-blank", "VARBACKTEST", (col(1.0, -2.0, 3.0), col(1.5), None), "confidence",
        r"is blank; expected the VaR's confidence such as 99% or 0.99"),
    bad("varbacktest-var-negative", "VARBACKTEST", (col(1.0, -2.0, 3.0), col(-1.5), 0.99), "var",
        r"every value is negative; VaR is entered as a positive loss"),
    bad("varbacktest-length", "VARBACKTEST", (col(1.0, -2.0, 3.0), col(1.5, 1.5), 0.99), "var",
        r"has 2 values but pnl has 3; expected one VaR per P&L value"),
    bad("varbacktest-pnl-text", "VARBACKTEST", (col(1.0, "loss", 3.0), col(1.5), 0.99), "pnl",
        r"item 2 holds the text 'loss'; expected a number"),
    # ---- engine functions called directly (Python only) ------------------------------------
    bad("decompose-option-of-another-method", "xlmvar.decompose", ([5e6, 3e6, 2e6], COV), "draws",
        r"is not an option of the normal method; its options are mean", method="normal", draws=1000),
    bad("standalone-unknown-option", "xlmvar.standalone", ([5e6, 3e6, 2e6], COV), "smoothing",
        r"is not an option of the normal method; its options are mean", smoothing="kernel"),
    bad("decompose-measure", "xlmvar.decompose", ([5e6, 3e6, 2e6], COV, "cvar"), "measure", r"got 'cvar'; expected one of var, es"),
    bad("decompose-3d-positions", "xlmvar.decompose", (np.ones((1, 1, 3)), COV), "positions",
        r"expected a vector, got a 3-dimensional array"),
    bad("decompose-empty-positions", "xlmvar.decompose", ([], COV), "positions", r"is empty; expected at least one number"),
    bad("decompose-historical-smoothing", "xlmvar.decompose", ([1.0, 1.0, 1.0], HIST), "smoothing",
        r"got 'smooth'; expected one of kernel, scenario", method="historical", smoothing="smooth"),
    bad("decompose-cornish-fisher-ddof", "xlmvar.decompose", ([1.0, 1.0, 1.0], HIST), "ddof",
        r"got 2; expected 1 .* or 0", method="cornish-fisher", ddof=2),
    bad("decompose-cornish-fisher-underflow", "xlmvar.decompose", ([1e-320, 1e-320, 1e-320], HIST), "positions",
        r"the cornish-fisher VaR of these positions with this model is too large or too small to compute",
        method="cornish-fisher"),
    bad("var-limits-size", "xlmvar.var_limits", ([5e6, 3e6, 2e6], COV, [0.1, 0.2]), "limit",
        r"has 2 values but the book has 3 assets; expected one value or one per asset"),
    bad("var-limits-historical-rows", "xlmvar.var_limits", ([5e6, 3e6, 2e6], HIST[:1], 0.3), "returns",
        r"has 1 rows; a 95% historical VaR .* needs at least 20 rows", method="historical"),
    # ---- risk by group and by factor, scenarios, rolling forecasts ------------------------------
    bad("groupvar-blank-label", "GROUPVAR", (X, COV, col("Equity", None, "Rates")), "groups",
        r"item 2 is blank; expected a label for every position"),
    bad("groupes-short-labels", "GROUPES", (X, COV, col("Equity", "Rates")), "groups",
        r"has 2 cells but there are 3 positions; expected one label per position"),
    bad("factorloadings-periods", "FACTORLOADINGS", (HIST, HIST[:50, :1]), "factor_returns",
        r"has 50 rows but returns has 60; expected the same periods"),
    bad("factorcov-negative-specific", "FACTORCOV", (col(1.0, 0.5, 1.5), [[0.04]], col(0.01, -0.02, 0.03)), "specific_var",
        r"item 2 is -0.02; variances cannot be negative"),
    bad("factorvar-factor-cov-shape", "FACTORVAR", (X, col(1.0, 0.5, 1.5), [[0.04, 0.0]], col(0.01, 0.02, 0.03)), "factor_cov",
        r"must be square, got 1 rows x 2 columns"),
    bad("factorcov-size", "FACTORCOV", (row(1.0, 0.5, 1.5), [[0.04]], col(0.01, 0.02, 0.03)), "factor_cov",
        r"is 1 x 1 but loadings has 3 column\(s\), one per factor; expected one row and one column per factor$"),
    bad("stresspnl-columns", "STRESSPNL", (X, [[-0.2, 0.05]]), "shocks",
        r"has 2 columns but there are 3 positions; expected one column per asset"),
    bad("worstdays-k", "WORSTDAYS", (X, HIST, None, 0), "k", r"got 0; expected a positive whole number"),
    bad("rollingvar-window", "ROLLINGVAR", (X, HIST, 60), "window",
        r"got 60 but returns has 60 rows; expected fewer periods than the history holds"),
    bad("risk-parity-tol", "xlmvar.risk_parity", (COV, None, -1.0), "tol", r"got -1; expected a positive number"),
    bad("risk-parity-max-iter", "xlmvar.risk_parity", (COV, None, 1e-12, 0.5), "max_iter", r"got 0.5; expected a positive whole number"),
    bad("returns-from-prices-3d", "xlmvar.returns_from_prices", (np.ones((2, 2, 2)),), "prices",
        r"expected a table, got a 3-dimensional array"),
    bad("returns-from-prices-drop-all", "xlmvar.returns_from_prices", ([[1.0, None], [None, 2.0], [3.0, None]],), "prices",
        r"only 0 row\(s\) have every price filled in; at least 2 complete rows are needed", missing="drop"),
    bad("stressed-decomposition-method", "xlmvar.stressed_decomposition", ([1.0, 2.0, 3.0], VOLS, CORR, 0.5), "method",
        r"'historical' works from a returns table; a correlation stress needs a covariance model", method="historical"),
    bad("nearest-corr-max-iter", "xlmvar.nearest_corr", (NOT_PSD, 1e-16, 3), "max_iter",
        r"the nearest-correlation iteration did not converge in 3 steps"),
    bad("kupiec-exceptions", "xlmvar.kupiec_pof", (5, 3, 0.99), "exceptions", r"got 5, more than the 3 observations"),
    bad("marginal-var-new-asset-var-new", "xlmvar.marginal_var_new_asset", ([5e6, 3e6, 2e6], COV, [0.01, 0.0, 0.0], [0.04, 0.01]),
        "var_new", r"got 2 values; expected a single number"),
    # ---- risk-model handles (xlmvar.excel.handles): a lost or forged handle is never used ----
    bad("handle-lost", "PORTVAR", (X, "xlmvar-model:cov:3x3:0123456789abcdef"), "model",
        r"is not in this Python session .*recalculate the RISKMODEL cell .*Ctrl\+Alt\+F9"),
    bad("handle-forged", "COMPONENTVAR", (X, "xlmvar-model:cov:3x3:not-a-digest"), "model",
        r"is not a risk model handle that xlmvar made; recalculate the RISKMODEL cell"),
    bad("riskmodel-text", "RISKMODEL", (with_cell(HIST, 4, 1, "n/a"),), "model",
        r"row 5, column 2 holds the text 'n/a'; expected a number"),
    bad("riskmodel-cov-for-historical", "RISKMODEL", (COV, "historical"), "model",
        r"looks like a covariance matrix; the historical method needs a returns history"),
    bad("riskmodel-options", "RISKMODEL", (HIST, "normal", "cov=ewma; decay=0.9"), "options",
        r"cannot read 'decay=0.9'; expected cov=sample\|ewma\|ledoit-wolf"),
    # ---- the zero-risk book: a value, not an error (0, never NaN) ---------------------------
    ok("zero-book-normal-var", "PORTVAR", (ZERO, COV), 0.0),
    ok("zero-book-normal-marginal", "MARGINALVAR", (ZERO, COV), [[0.0, 0.0, 0.0]]),
    ok("zero-book-normal-pct", "COMPONENTVARPCT", (ZERO, COV), [[0.0, 0.0, 0.0]]),
    ok("zero-book-normal-es", "PORTES", (ZERO, COV), 0.0),
    ok("zero-book-portvol", "PORTVOL", (ZERO, COV), 0.0),
    ok("zero-book-diversification", "DIVERSIFICATION", (ZERO, COV), 0.0),
    ok("zero-book-newasset", "NEWASSETMVAR", (ZERO, COV, row(0.01, 0.0, 0.0), 0.04), 0.0),
    ok("zero-book-mcstderr", "MCSTDERR", (ZERO, COV, None, None, None, None, 1000), 0.0),
    ok("hedge-normal-var", "PORTVAR", (HEDGE2, SAME_COV), 0.0),
    ok("hedge-normal-marginal", "MARGINALVAR", (HEDGE2, SAME_COV), [[0.0, 0.0]]),
    ok("hedge-normal-pct", "COMPONENTVARPCT", (HEDGE2, SAME_COV), [[0.0, 0.0]]),
    ok("zero-book-historical-var", "PORTVAR", (ZERO, DYADIC, None, None, "historical"), 0.0),
    ok("zero-book-historical-es", "PORTES", (ZERO, DYADIC, None, None, "historical"), 0.0),
    ok("zero-book-historical-marginal", "MARGINALVAR", (ZERO, DYADIC, None, None, "historical"), [[0.0, 0.0, 0.0]]),
    ok("zero-book-historical-pct", "COMPONENTVARPCT", (ZERO, DYADIC, None, None, "historical"), [[0.0, 0.0, 0.0]]),
    ok("hedge-historical-var", "PORTVAR", (HEDGE2, SAME_DYADIC, None, None, "historical"), 0.0),
    ok("hedge-historical-marginal", "MARGINALVAR", (HEDGE2, SAME_DYADIC, None, None, "historical"), [[0.0, 0.0]]),
    # the same asset twice, with a mean: VaR = -x.mu = 0 exactly, and 0% of VaR (not noise / noise)
    ok("hedge-historical-drift-var", "PORTVAR", (HEDGE2, SAME_DRIFT, None, None, "historical"), 0.0),
    ok("hedge-historical-drift-pct", "COMPONENTVARPCT", (HEDGE2, SAME_DRIFT, None, None, "historical"), [[0.0, 0.0]]),
    ok("zero-book-cornish-fisher-var", "PORTVAR", (ZERO, DYADIC, None, None, "cornish-fisher"), 0.0),
    ok("zero-book-cornish-fisher-es", "PORTES", (ZERO, DYADIC, None, None, "cornish-fisher"), 0.0),
    ok("zero-book-cornish-fisher-marginal", "MARGINALVAR", (ZERO, DYADIC, None, None, "cornish-fisher"), [[0.0, 0.0, 0.0]]),
    ok("hedge-cornish-fisher-var", "PORTVAR", (HEDGE2, SAME_DYADIC, None, None, "cornish-fisher"), 0.0),
    ok("hedge-cornish-fisher-drift-pct", "COMPONENTVARPCT", (HEDGE2, SAME_DRIFT, None, None, "cornish-fisher"), [[0.0, 0.0]]),
    ok("zero-book-montecarlo-var", "PORTVAR", (ZERO, COV, None, None, "montecarlo", None, 1000), 0.0),
    ok("zero-book-montecarlo-marginal", "MARGINALVAR", (ZERO, COV, None, None, "montecarlo", None, 1000), [[0.0, 0.0, 0.0]]),
    ok("hedge-montecarlo-es", "PORTES", (HEDGE2, SAME_COV, None, None, "montecarlo", None, 1000), 0.0),
    ok("hedge-montecarlo-pct", "COMPONENTVARPCT", (HEDGE2, SAME_COV, None, None, "montecarlo", None, 1000), [[0.0, 0.0]]),
]

ERRORS = [c for c in CASES if c.arg is not None]
VALUES = [c for c in CASES if c.arg is None]
EXCEL = xlmvar_functions()
#: The ``model`` argument is read as a covariance (normal, montecarlo) or a returns history
#: (historical, cornish-fisher), and its messages say which.
ROLES = {"cov": "model", "returns": "model"}


def _callable(case: Case):
    if case.function.startswith("xlmvar."):
        return getattr(xlmvar, case.function.split(".", 1)[1])
    return EXCEL[case.function]


def _check_message(case: Case, message: str) -> None:
    assert message.startswith(f"{case.arg}: "), f"{case.id}: {message!r} does not start with {case.arg!r}"
    assert re.search(case.message, message), f"{case.id}: {message!r} does not match {case.message!r}"
    for raw in ("could not convert", "LinAlgError", "IndexError", "TypeError", "nan;", "got nan", "got inf"):
        assert raw not in message, f"{case.id}: {message!r}"


# --------------------------------------------------------------------------------------------
# the table itself
# --------------------------------------------------------------------------------------------
def test_ids_are_unique():
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids))


def test_every_excel_function_has_a_bad_input_case():
    covered = {c.function for c in ERRORS}
    assert set(EXCEL) - covered == set()


def test_every_method_has_a_case_of_too_little_data_or_the_wrong_model():
    for method in ("historical", "cornish-fisher", "montecarlo"):
        assert any(c.id.startswith(method) and c.arg in ("model", "draws") for c in ERRORS), method
    assert any(c.id.startswith("normal-") for c in ERRORS)


@pytest.mark.parametrize("case", ERRORS, ids=lambda c: c.id)
def test_the_message_names_an_argument_of_the_function(case):
    # an Excel function names its own argument (model, not the engine's cov or returns); an
    # engine function may name its model by its kind
    params = set(inspect.signature(_callable(case)).parameters) | set(case.kwargs)
    role = ROLES.get(case.arg) if case.function.startswith("xlmvar.") else None
    assert case.arg in params or role in params, f"{case.id}: {case.arg!r} is not an argument"


# --------------------------------------------------------------------------------------------
# way 1: the functions called from Python
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", ERRORS, ids=lambda c: c.id)
def test_bad_input_message_from_python(case):
    with pytest.raises(ValueError) as info, np.errstate(all="ignore"):  # overflow cases warn on the way
        _callable(case)(*case.args, **case.kwargs)
    _check_message(case, str(info.value))


@pytest.mark.parametrize("case", VALUES, ids=lambda c: c.id)
def test_zero_risk_book_from_python(case):
    got = np.asarray(_callable(case)(*case.args), dtype=float)
    expected = np.asarray(case.value, dtype=float)
    assert got.shape == expected.shape or (got.size == 1 and expected.size == 1)
    assert not np.isnan(got).any()
    np.testing.assert_array_equal(got.reshape(expected.shape), expected)


# --------------------------------------------------------------------------------------------
# way 2: one workbook, one formula row per case, recalculated headlessly once
# --------------------------------------------------------------------------------------------
SHEET_CASES = [c for c in CASES if c.sheet]


def _write_value(ws, r: int, c: int, value) -> None:
    if value is None:
        return  # a blank cell
    if isinstance(value, (bool, np.bool_)):
        ws.write_boolean(r, c, bool(value))
    elif isinstance(value, str) and value == NA:
        ws.write_formula(r, c, "=NA()")  # an error cell
    elif isinstance(value, str):
        ws.write_string(r, c, value)
    else:
        assert math.isfinite(float(value)), "infinite values cannot be typed into a sheet"
        ws.write_number(r, c, float(value))


def _write_argument(ws, top: int, left: int, value) -> tuple[str, int, int]:
    """Type one argument into cells from (top, left); return its reference and its size."""
    if isinstance(value, (list, tuple, np.ndarray)):
        arr = np.asarray(value, dtype=object)
        arr = arr.reshape(1, -1) if arr.ndim == 1 else arr
        for (i, j), item in np.ndenumerate(arr):
            _write_value(ws, top + i, left + j, item)
        rows, cols = arr.shape
        return f"In!{xl_range_abs(top, left, top + rows - 1, left + cols - 1)}", rows, cols
    _write_value(ws, top, left, value)
    return f"In!{xl_rowcol_to_cell(top, left, row_abs=True, col_abs=True)}", 1, 1


@pytest.fixture(scope="module")
def workbook(tmp_path_factory):
    """Build the one workbook of every case, recalculate it once; return {id: (cell, ref)} and the result."""
    path = tmp_path_factory.mktemp("bad_input") / "bad_input.xlsx"
    wb = xlsxwriter.Workbook(str(path), {"use_future_functions": True, "nan_inf_to_errors": False})
    cases = wb.add_worksheet("Cases")
    inputs = wb.add_worksheet("In")
    cells, top = {}, 0
    for i, case in enumerate(SHEET_CASES):
        r = i + 1
        refs, left, height = [], 0, 1
        for value in case.args:
            ref, rows, cols = _write_argument(inputs, top, left, value)
            refs.append(ref)
            left += cols + 1
            height = max(height, rows)
        top += height + 1
        formula = f"={case.function}({','.join(refs)})"
        cases.write_string(r, 0, case.id)
        expected = np.asarray(case.value, dtype=float) if case.arg is None else None
        if expected is not None and expected.ndim == 2:
            last = expected.shape[1]
            cases.write_dynamic_array_formula(r, 1, r, last, formula)
            ref = f"{xl_rowcol_to_cell(r, 1)}:{xl_rowcol_to_cell(r, last)}"
        else:
            cases.write_formula(r, 1, formula)
            ref = xl_rowcol_to_cell(r, 1)
        cells[case.id] = (xl_rowcol_to_cell(r, 1), ref)
    wb.close()
    return cells, recalculate(path)


@pytest.mark.parametrize("case", [c for c in ERRORS if c.sheet], ids=lambda c: c.id)
def test_bad_input_message_from_a_recalculated_workbook(workbook, case):
    cells, result = workbook
    cell, _ = cells[case.id]
    errors = {e.cell: e for e in result.errors if e.sheet == "Cases"}
    assert cell in errors, f"{case.id}: Cases!{cell} computed {result.value('Cases', cell)!r}"
    error = errors[cell]
    # an error cell in an input is passed along with its own code, as Excel's functions do
    assert error.error == ("#N/A" if re.search("holds the error #N/A|got the error #N/A", case.message) else "#VALUE!")
    prefix = f"{case.function}: "
    assert error.reason.startswith(prefix), error.reason
    message = error.reason[len(prefix):]
    _check_message(case, message)
    with pytest.raises(ValueError) as info:  # the very message the function gives in Python
        _callable(case)(*case.args)
    assert message == str(info.value)


@pytest.mark.parametrize("case", [c for c in VALUES if c.sheet], ids=lambda c: c.id)
def test_zero_risk_book_from_a_recalculated_workbook(workbook, case):
    cells, result = workbook
    _, ref = cells[case.id]
    assert not [e for e in result.errors if e.sheet == "Cases" and e.cell == ref.split(":")[0]]
    got = np.asarray(result.values[("Cases", ref)], dtype=float)
    expected = np.asarray(case.value, dtype=float)
    assert not np.isnan(got).any()
    np.testing.assert_array_equal(got.reshape(expected.shape), expected)
