"""A risk desk's live report on a multi-asset book (``risk_desk.xlsx``).

Nine sheets, every figure a formula of the typed inputs:

* Report: positions, daily vols and correlations, covariance (COVFROMCORR), the risk
  report with a VaR-share limit (RISKREPORT, breaches highlighted by conditional
  formatting), VARLIMITS, portfolio VaR and ES at two confidences, a component-VaR chart;
* What-if: a trade panel with its incremental VaR and ES (detail tables), the book after
  the trade, and the marginal VaR of an asset not held yet (NEWASSETMVAR);
* Hedges: Litterman best hedges (BESTHEDGE), expected return per unit of marginal VaR
  (RETURNPERRISK), risk-parity weights (RISKPARITY) and their equal VaR shares;
* By desk: a desk per position, GROUPVAR and GROUPES (normal) and GROUPVAR (historical),
  each with a native check that the desks' components sum to the book's figure, and a
  chart of standalone against component VaR by desk;
* Stress: correlations pushed toward 1 (STRESSCORR), VaR normal vs stressed, and named
  shocks (STRESSPNL) beside a native MMULT of each shock with the positions;
* Options: a P&L grid of three options revalued under 250 days of returns by a native
  payoff formula, and PORTVAR / COMPONENTVAR / PORTES with method "pnl" beside native
  PERCENTILE.INC and tail-mean checks;
* Backtest: a rolling out-of-sample VaR (ROLLINGVAR, 250-day window) against the realised
  P&L, VARBACKTEST on its columns, native recomputations of both, and a chart;
* Handles: RISKMODEL handles to the Report's covariance and to the daily returns, and
  PORTVAR / PORTES / COMPONENTVAR computed once with each handle and once with its range,
  with native differences (0) and notes on what a handle is and how to refresh a lost one;
* Daily returns: the 500-day returns history the other sheets read (named DailyReturns,
  dates Days), with the book's P&L by a native MMULT.

The returns history is generated here (fixed seed) and written as constants: it stands in
for the assets' realised returns, which a live workbook would paste in.
"""

from __future__ import annotations

import datetime as _dt
from types import SimpleNamespace

import numpy as np

from ._layout import VIEWERS, header_row, insert_chart, note, print_setup, ref, set_widths, span, spill

REPORT, WHATIF, HEDGES, STRESS, BACKTEST = "Report", "What-if", "Hedges", "Stress", "Backtest"
BYDESK, OPTIONS, HANDLES, DAILY = "By desk", "Options", "Handles", "Daily returns"

#: The book: name, instrument, position ($, negative = short), daily vol.
ASSETS = ("US Equity", "EU Equity", "UST 10y", "IG Credit", "Gold", "EURUSD", "Bitcoin")
INSTRUMENTS = (
    "S&P 500 futures",
    "Euro Stoxx 50 futures (USD value)",
    "10y US Treasury note futures",
    "USD investment-grade corporate bonds",
    "Gold (XAU) spot",
    "EUR vs USD spot (short = short EUR)",
    "Bitcoin spot",
)
POSITIONS = (40e6, 20e6, 30e6, 25e6, 10e6, -15e6, 5e6)
DAILY_VOLS = (0.0100, 0.0115, 0.0045, 0.0035, 0.0095, 0.0050, 0.0350)
#: Daily correlations (symmetric, unit diagonal, positive definite: smallest eigenvalue ~0.20).
CORR = (
    (1.00, 0.75, -0.30, 0.40, 0.05, 0.10, 0.35),
    (0.75, 1.00, -0.25, 0.35, 0.05, 0.30, 0.25),
    (-0.30, -0.25, 1.00, 0.45, 0.25, 0.15, -0.10),
    (0.40, 0.35, 0.45, 1.00, 0.15, 0.10, 0.15),
    (0.05, 0.05, 0.25, 0.15, 1.00, 0.35, 0.15),
    (0.10, 0.30, 0.15, 0.10, 0.35, 1.00, 0.10),
    (0.35, 0.25, -0.10, 0.15, 0.15, 0.10, 1.00),
)
CONFIDENCE, CONFIDENCE_2, HORIZON, SHARE_LIMIT = 0.99, 0.95, 1, 0.25

#: What-if inputs: a trade, and an asset the book does not hold yet.
TRADE = (-15e6, 0.0, 0.0, 0.0, 5e6, 0.0, -2e6)
NEW_ASSET = "WTI crude oil"
NEW_VOL = 0.022
NEW_CORR = (0.30, 0.30, -0.20, 0.15, 0.20, 0.15, 0.15)

#: Hedges inputs: expected returns per year (converted to per day by formula).
ANNUAL_RETURNS = (0.07, 0.065, 0.042, 0.05, 0.04, -0.015, 0.15)
DAYS_PER_YEAR = 252

#: Stress input: the weight that pushes every correlation toward 1.
THETA = 0.5

#: Daily returns history: multivariate Student-t with the book's covariance, fixed seed.
HISTORY_DAYS = 500
HISTORY_DOF = 4
HISTORY_SEED = 20260101
HISTORY_END = _dt.date(2025, 12, 31)
#: A volatility regime change: from this day (zero-based) on, every return is this many times larger.
SHIFT_DAY, SHIFT = 400, 2.0
#: Backtest: estimation window of the rolling out-of-sample VaR (days).
WINDOW = 250

#: The desk that runs each position (one label per asset).
DESKS = ("Equity", "Equity", "Rates", "Credit", "Macro", "Macro", "Digital assets")

#: Named shocks: scenario name and the return of each asset in it.
SHOCKS = (
    ("Equity crash", (-0.20, -0.22, 0.03, -0.04, 0.05, -0.03, -0.50)),
    ("Rates +100bp", (-0.05, -0.04, -0.07, -0.05, -0.02, 0.01, -0.10)),
    ("Credit spreads +150bp", (-0.08, -0.09, 0.02, -0.07, 0.02, -0.02, -0.15)),
    ("Dollar rally", (-0.02, -0.06, 0.00, -0.01, -0.06, -0.08, -0.08)),
    ("Crypto winter", (-0.01, -0.01, 0.00, 0.00, 0.00, 0.00, -0.60)),
)

#: Options book: name, underlying (an asset of the book), call or put, units (negative =
#: sold), spot, strike, premium per unit.  Revalued at expiry under each of the last
#: OPTION_DAYS daily returns of the underlying (intrinsic value less the premium).
OPTIONS_BOOK = (
    ("S&P 500 6000 put (sold)", "US Equity", "put", -2_000, 6_000.0, 6_000.0, 60.0),
    ("Gold 2550 call", "Gold", "call", 5_000, 2_600.0, 2_550.0, 60.0),
    ("Bitcoin 90k call", "Bitcoin", "call", 50, 95_000.0, 90_000.0, 6_000.0),
)
OPTION_DAYS = 250


def _check_inputs() -> None:
    """Refuse typed inputs that do not make a valid book (checked when the template is built)."""
    n = len(ASSETS)
    if not (len(INSTRUMENTS) == len(POSITIONS) == len(DAILY_VOLS) == len(TRADE) == len(ANNUAL_RETURNS)
            == len(NEW_CORR) == len(DESKS) == n and all(len(shock) == n for _, shock in SHOCKS)):
        raise ValueError("risk_desk: every per-asset input needs one value per asset")
    c = np.array(CORR, dtype=float)
    if c.shape != (n, n) or not np.array_equal(c, c.T) or not np.all(np.diag(c) == 1.0):
        raise ValueError("risk_desk: CORR must be a symmetric n x n matrix with a unit diagonal")
    if np.linalg.eigvalsh(c).min() <= 0.0:
        raise ValueError("risk_desk: CORR is not positive definite")
    new = np.array(NEW_CORR, dtype=float)
    if np.linalg.eigvalsh(np.block([[c, new[:, None]], [new[None, :], np.ones((1, 1))]])).min() <= 0.0:
        raise ValueError("risk_desk: NEW_CORR is inconsistent with CORR (the augmented matrix is not positive definite)")


def returns_history() -> tuple[list[_dt.date], np.ndarray]:
    """The synthetic daily returns: business days up to HISTORY_END, one column per asset.

    Multivariate Student-t with HISTORY_DOF degrees of freedom and the book's daily
    covariance (normal draws correlated by its Cholesky factor, each day divided by one
    chi-square draw): fatter tails than the normal VaR assumes.  From day SHIFT_DAY on the
    returns are SHIFT times larger (a volatility regime change the rolling VaR is slow to
    see, so the backtest has exceptions to show).  Rounded to 1e-8.
    """
    from ...engine.covariance import cov_from_corr

    cov = cov_from_corr(DAILY_VOLS, CORR)
    rng = np.random.default_rng(HISTORY_SEED)
    normal = rng.standard_normal((HISTORY_DAYS, len(ASSETS))) @ np.linalg.cholesky(cov).T
    scale = np.sqrt((HISTORY_DOF - 2) / rng.chisquare(HISTORY_DOF, HISTORY_DAYS))
    regime = np.where(np.arange(HISTORY_DAYS) >= SHIFT_DAY, SHIFT, 1.0)
    returns = np.round(normal * (scale * regime)[:, None], 8)
    end = np.datetime64(HISTORY_END, "D")
    last = np.busday_offset(end, 0, roll="backward")
    days = np.busday_offset(last, np.arange(-HISTORY_DAYS + 1, 1), roll="backward")
    return [d.astype(_dt.date) for d in days], returns


def _sheet_ref(sheet: str, text: str) -> str:
    quoted = f"'{sheet}'" if not sheet.isalnum() else sheet
    return f"{quoted}!{text}"


def _note(ws, row: int, last_col: int, text: str, st) -> None:
    """An italic note merged across columns A..last_col, its row tall enough for it."""
    note(ws, row, 0, last_col, text, st.note)


def _spill_table(ws, r0: int, c0: int, r1: int, c1: int, formula: str, column_formats, header=None, total=None) -> None:
    """A spilled table formula with a format per column (and for its header / total rows).

    XlsxWriter pads an array range with zeroes in the anchor's format; the padding cells
    are rewritten here in their own column's format (the recalculation replaces the
    zeroes by the computed values, keeping the formats).
    """

    def fmt(r, c):
        if header is not None and r == r0:
            return header
        if total is not None and r == r1:
            return total[c - c0] if isinstance(total, (list, tuple)) else total
        return column_formats[c - c0]

    spill(ws, r0, c0, r1, c1, formula, fmt(r0, c0))
    for r in range(r0, r1 + 1):
        for c in range(c0, c1 + 1):
            if (r, c) != (r0, c0):
                ws.write_number(r, c, 0, fmt(r, c))


def build(workbook, st) -> None:
    """Lay out the nine sheets of the risk desk workbook."""
    _check_inputs()
    fx = _Formats(workbook)
    report = _report(workbook, st, fx)
    _what_if(workbook, st, fx, report)
    _hedges(workbook, st, fx, report)
    _by_desk(workbook, st, fx, report)
    _stress(workbook, st, fx, report)
    _options(workbook, st, fx, report)
    _backtest(workbook, st, fx, report)
    _handles(workbook, st, fx, report)
    _daily_returns(workbook, st, fx, report)
    # the long tables repeat their column headers on every page
    titles = {BACKTEST: 5, DAILY: 4, OPTIONS: 1}
    for ws in workbook.worksheets():
        print_setup(ws, title_rows=titles.get(ws.name, 1), landscape=ws.name != DAILY)
    workbook.worksheets()[0].activate()


class _Formats:
    """Formats this template adds to the shared :class:`Styles`."""

    def __init__(self, workbook):
        add = workbook.add_format
        self.header_pct = add({"bold": True, "bottom": 1, "bg_color": "#DDEBF7", "num_format": "0.0%", "align": "right"})
        self.total_text = add({"bold": True, "top": 1})
        self.total_money = add({"bold": True, "top": 1, "num_format": "$#,##0"})
        self.total_pct = add({"bold": True, "top": 1, "num_format": "0.0%"})
        self.total_blank = add({"top": 1})
        self.corr = add({"num_format": "0.00"})
        self.input_corr = add({"num_format": "0.00", "bg_color": "#FFF2CC"})
        self.input_pct2 = add({"num_format": "0.00%", "bg_color": "#FFF2CC"})
        self.pct2 = add({"num_format": "0.00%"})
        self.pct3 = add({"num_format": "0.000%"})
        self.rate = add({"num_format": "0.00000"})
        self.ratio = add({"num_format": "0.000", "align": "right"})
        self.int = add({"num_format": "0"})
        self.date = add({"num_format": "yyyy-mm-dd", "align": "left"})
        self.input_int = add({"num_format": "#,##0", "bg_color": "#FFF2CC"})
        self.count = add({"num_format": "#,##0"})
        self.input_money2 = add({"num_format": "$#,##0.00", "bg_color": "#FFF2CC"})
        self.input_pct3 = add({"num_format": "0.000%", "bg_color": "#FFF2CC"})
        self.input_date = add({"num_format": "yyyy-mm-dd", "align": "left", "bg_color": "#FFF2CC"})
        self.text = add({})
        self.text_right = add({"align": "right"})
        self.note_line = add({"italic": True, "font_color": "#595959", "indent": 1})  # one line, overflowing right
        self.number = add({"num_format": "#,##0.00"})
        self.pvalue = add({"num_format": "0.0000"})
        # conditional formats (fill + font colour only)
        self.breach = add({"bg_color": "#FFC7CE", "font_color": "#9C0006", "bold": True})
        self.green = add({"bg_color": "#C6EFCE", "font_color": "#006100"})
        self.yellow = add({"bg_color": "#FFEB9C", "font_color": "#9C5700"})


# ------------------------------------------------------------------------------------------
# Report
# ------------------------------------------------------------------------------------------
def _report(workbook, st, fx) -> SimpleNamespace:
    """The Report sheet; returns the cells the other sheets refer to."""
    ws = workbook.add_worksheet(REPORT)
    n = len(ASSETS)
    set_widths(ws, 0, 0, 42)
    set_widths(ws, 1, 4 + n - 1, 14)
    set_widths(ws, 4 + n, 4 + n, 4)
    set_widths(ws, 4 + n + 1, 4 + n + 1, 38)
    ws.write(0, 0, "Risk desk: multi-asset book, daily VaR and where it comes from", st.title)
    _note(
        ws, 1, 12,
        "Yellow cells are inputs: positions in $ (negative = short), daily volatilities and the daily "
        "correlation matrix (it must be a valid one, positive semi-definite: COVFROMCORR refuses one that is "
        "not and NEARESTCORR repairs it). The horizon is in days. Every other figure in this workbook is a formula of "
        f"these inputs. {VIEWERS}",
        st,
    )

    # Inputs -------------------------------------------------------------------------
    top = 3
    ws.write(top, 0, "Inputs", st.heading)
    header = ["Asset", "Position ($)", "Daily vol", "Annual vol", *ASSETS]
    header_row(ws, top + 1, 0, header, st)
    ws.write(top + 1, 4 + n + 1, "Instrument", st.header)
    first, last = top + 2, top + 1 + n
    for i, asset in enumerate(ASSETS):
        r = first + i
        ws.write(r, 0, asset, st.input_text)
        ws.write_number(r, 1, POSITIONS[i], st.input_money)
        ws.write_number(r, 2, DAILY_VOLS[i], fx.input_pct2)
        ws.write_formula(r, 3, f"={ref(r, 2)}*SQRT({DAYS_PER_YEAR})", st.pct, 0)
        for j in range(n):
            ws.write_number(r, 4 + j, CORR[i][j], fx.input_corr)
        ws.write(r, 4 + n + 1, INSTRUMENTS[i], st.input_text)
    net = last + 1
    ws.write(net, 0, "Net exposure", fx.total_text)
    ws.write_formula(net, 1, f"=SUM({span(first, 1, last, 1)})", fx.total_money, 0)
    ws.write(net + 1, 0, "Gross exposure", fx.total_text)
    gross = "+".join(f"ABS({ref(first + i, 1)})" for i in range(n))
    ws.write_formula(net + 1, 1, f"={gross}", fx.total_money, 0)
    ws.write(net + 1, 3, f"Annual vol = daily vol x sqrt({DAYS_PER_YEAR}), for reading only.", fx.note_line)

    p_top = net + 3
    ws.write(p_top, 0, "Risk parameters", st.heading)
    params = [
        ("Confidence (main; named Confidence)", CONFIDENCE, st.input_pct),
        ("Second confidence", CONFIDENCE_2, st.input_pct),
        ("Horizon (days)", HORIZON, st.input_int),
        ("VaR-share limit per position", SHARE_LIMIT, st.input_pct),
    ]
    for k, (label, value, fmt) in enumerate(params):
        ws.write(p_top + 1 + k, 0, label)
        ws.write_number(p_top + 1 + k, 1, value, fmt)
    conf_row, conf2_row, hor_row, limit_row = (p_top + 1 + k for k in range(4))
    ws.write(limit_row, 2, "A position whose share of VaR exceeds this is flagged BREACH (red).", fx.note_line)

    sheet = lambda text: f"={_sheet_ref(REPORT, text)}"  # noqa: E731
    workbook.define_name("Assets", sheet(span(first, 0, last, 0, True)))
    workbook.define_name("Positions", sheet(span(first, 1, last, 1, True)))
    workbook.define_name("Vols", sheet(span(first, 2, last, 2, True)))
    workbook.define_name("Correlation", sheet(span(first, 4, last, 4 + n - 1, True)))
    workbook.define_name("Confidence", sheet(ref(conf_row, 1, True)))
    workbook.define_name("Horizon", sheet(ref(hor_row, 1, True)))
    workbook.define_name("ShareLimit", sheet(ref(limit_row, 1, True)))
    conf2 = ref(conf2_row, 1, True)

    # Covariance --------------------------------------------------------------------
    c_top = limit_row + 2
    ws.write(c_top, 0, "Daily covariance  =COVFROMCORR(Vols, Correlation)", st.heading)
    header_row(ws, c_top + 1, 1, ASSETS, st, label_first=False)
    c0 = c_top + 2
    for i, asset in enumerate(ASSETS):
        ws.write(c0 + i, 0, asset)
    spill(ws, c0, 1, c0 + n - 1, n, "=COVFROMCORR(Vols,Correlation)", st.sci)
    workbook.define_name("Covariance", sheet(span(c0, 1, c0 + n - 1, n, True)))
    args = "Positions,Covariance,Confidence,Horizon"
    args2 = f"Positions,Covariance,{conf2},Horizon"

    # Portfolio VaR and ES at both confidences -----------------------------------------
    v_top = c0 + n + 1
    ws.write(v_top, 0, "Portfolio VaR and expected shortfall over the horizon", st.heading)
    ws.write(v_top + 1, 0, "Measure", st.header)
    ws.write_formula(v_top + 1, 1, "=Confidence", fx.header_pct, CONFIDENCE)
    ws.write_formula(v_top + 1, 2, f"={conf2}", fx.header_pct, CONFIDENCE_2)
    rows = [
        ("Portfolio VaR", f"=PORTVAR({args})", f"=PORTVAR({args2})", st.bold_money),
        ("Expected shortfall", f"=PORTES({args})", f"=PORTES({args2})", st.money),
        ("Undiversified VaR (sum of individual VaRs)", f"=UNDIVERSIFIEDVAR({args})", f"=UNDIVERSIFIEDVAR({args2})", st.money),
        ("Diversification benefit", f"=DIVERSIFICATION({args})", f"=DIVERSIFICATION({args2})", st.money),
    ]
    for k, (label, f1, f2, fmt) in enumerate(rows):
        ws.write(v_top + 2 + k, 0, label)
        ws.write_formula(v_top + 2 + k, 1, f1, fmt, 0)
        ws.write_formula(v_top + 2 + k, 2, f2, fmt, 0)
    var_row = v_top + 2
    sd_row = v_top + 2 + len(rows)
    ws.write(sd_row, 0, "P&L standard deviation  =PORTVOL")
    ws.write_formula(sd_row, 1, "=PORTVOL(Positions,Covariance,Horizon)", st.money, 0)
    var99 = ref(var_row, 1, True)

    # Risk report with limit ---------------------------------------------------------
    r_top = sd_row + 2
    ws.write(
        r_top, 0,
        'Risk report at the main confidence  =RISKREPORT(Assets, Positions, Covariance, Confidence, Horizon, "normal", ShareLimit)',
        st.heading,
    )
    rr0, rr1 = r_top + 1, r_top + 2 + n  # header row, ..., total row
    _spill_table(
        ws, rr0, 0, rr1, 8,
        f'=RISKREPORT(Assets,{args},"normal",ShareLimit)',
        [fx.text, st.money, st.money, fx.rate, st.money, st.pct, st.pct, fx.text_right, st.money],
        header=st.header,
        total=[fx.total_text, fx.total_money, fx.total_money, fx.total_blank, fx.total_money, fx.total_pct,
               fx.total_blank, fx.total_text, fx.total_blank],
    )
    limit_abs = ref(limit_row, 1, True)
    ws.conditional_format(rr0 + 1, 5, rr1 - 1, 5, {"type": "cell", "criteria": ">", "value": limit_abs, "format": fx.breach})
    ws.conditional_format(rr0 + 1, 7, rr1, 7, {"type": "cell", "criteria": "==", "value": '"BREACH"', "format": fx.breach})
    _note(
        ws, rr1 + 1, 8,
        "Marginal VaR is the VaR added per $1 more of the asset; component VaR = position x marginal VaR and the "
        "components add up to the portfolio VaR. Trade to limit: the trade in that asset alone that brings its "
        "share back to the limit.",
        st,
    )

    # VaR limits ----------------------------------------------------------------------
    l_top = rr1 + 3
    ws.write(l_top, 0, "VaR-share limits  =VARLIMITS(Positions, Covariance, ShareLimit, Confidence, Horizon)", st.heading)
    l0 = l_top + 1
    ws.write(l0, 0, "Asset", st.header)
    for i, asset in enumerate(ASSETS):
        ws.write(l0 + 1 + i, 0, asset)
    _spill_table(
        ws, l0, 1, l0 + n, 7,
        "=VARLIMITS(Positions,Covariance,ShareLimit,Confidence,Horizon)",
        [st.pct, st.pct, fx.text_right, st.money, st.money, st.money, fx.text],
        header=st.header,
    )
    ws.conditional_format(l0 + 1, 1, l0 + n, 1, {"type": "cell", "criteria": ">", "value": limit_abs, "format": fx.breach})
    ws.conditional_format(l0 + 1, 3, l0 + n, 3, {"type": "cell", "criteria": "==", "value": '"BREACH"', "format": fx.breach})
    _note(
        ws, l0 + n + 1, 8,
        "Each breach's trade is shown on its own (VaR after = the book with only that trade done); doing several "
        "at once changes every share again. Hedges (negative shares) never breach.",
        st,
    )

    # Native cross-check (no xlmvar function) ------------------------------------------
    x_top = l0 + n + 3
    ws.write(x_top, 0, "Cross-check: native Excel formulas only (no xlmvar function)", st.heading)
    ws.write(x_top + 1, 0, "Covariance  vol_i x corr_ij x vol_j", st.header)
    header_row(ws, x_top + 1, 1, ASSETS, st, label_first=False)
    k0 = x_top + 2
    for i, asset in enumerate(ASSETS):
        ws.write(k0 + i, 0, asset)
        for j in range(n):
            formula = f"={ref(first + i, 2, True)}*{ref(first + i, 4 + j, True)}*{ref(first + j, 2, True)}"
            ws.write_formula(k0 + i, 1 + j, formula, st.sci, 0)
    cov_native = span(k0, 1, k0 + n - 1, n, True)
    positions = span(first, 1, last, 1, True)
    s_row = k0 + n + 1
    ws.write(s_row - 1, 0, "Figure", st.header)
    ws.write_formula(s_row - 1, 1, "=Confidence", fx.header_pct, CONFIDENCE)
    ws.write_formula(s_row - 1, 2, f"={conf2}", fx.header_pct, CONFIDENCE_2)
    ws.write(s_row, 0, "P&L sigma  sqrt(x' S x)")
    ws.write_array_formula(
        s_row, 1, s_row, 1,
        f"{{=SQRT(MMULT(TRANSPOSE({positions}),MMULT({cov_native},{positions})))}}", st.money, 0,
    )
    sigma = ref(s_row, 1, True)
    hor = ref(hor_row, 1, True)
    for j, conf in ((1, ref(conf_row, 1, True)), (2, conf2)):
        ws.write(s_row + 1, 0, "VaR  NORM.S.INV(c) sigma sqrt(h)")
        ws.write_formula(s_row + 1, j, f"=NORM.S.INV({conf})*{sigma}*SQRT({hor})", st.bold_money, 0)
        ws.write(s_row + 2, 0, "ES  NORM.S.DIST(z) / (1 - c) sigma sqrt(h)")
        ws.write_formula(
            s_row + 2, j, f"=NORM.S.DIST(NORM.S.INV({conf}),FALSE)/(1-{conf})*{sigma}*SQRT({hor})", st.money, 0
        )
        ws.write(s_row + 3, 0, "PORTVAR minus native VaR (0)")
        ws.write_formula(s_row + 3, j, f"={ref(var_row, j)}-{ref(s_row + 1, j)}", st.money, 0)
    cv_top = s_row + 5
    header_row(ws, cv_top, 0, ["Asset", "Component VaR, native", "RISKREPORT minus native"], st, lines=2)
    cv0 = cv_top + 1
    ws.write_array_formula(
        cv0, 1, cv0 + n - 1, 1,
        f"{{={positions}*MMULT({cov_native},{positions})/{sigma}"
        f"*NORM.S.INV({ref(conf_row, 1, True)})*SQRT({hor})}}",
        st.money, 0,
    )
    for i, asset in enumerate(ASSETS):
        ws.write(cv0 + i, 0, asset)
        ws.write_formula(cv0 + i, 2, f"={ref(rr0 + 1 + i, 4)}-{ref(cv0 + i, 1)}", st.money, 0)
    ws.write(cv0 + n, 0, "Sum of native components", fx.total_text)
    ws.write_formula(cv0 + n, 1, f"=SUM({span(cv0, 1, cv0 + n - 1, 1)})", fx.total_money, 0)
    ws.write(cv0 + n + 1, 0, "Component VaR natively: x_i z (S x)_i sqrt(h) / sigma; the chart draws this column.", fx.note_line)

    # The chart reads the native component column: Excel and
    # LibreOffice both compute it (LibreOffice cannot evaluate xlmvar functions, so a chart
    # of RISKREPORT's column would be empty there); the column's Difference checks it.
    chart = workbook.add_chart({"type": "bar"})
    chart.add_series(
        {
            "name": "Component VaR",
            "categories": f"={_sheet_ref(REPORT, span(cv0, 0, cv0 + n - 1, 0, True))}",
            "values": f"={_sheet_ref(REPORT, span(cv0, 1, cv0 + n - 1, 1, True))}",
            "fill": {"color": "#2E75B6"},
            "invert_if_negative": False,
        }
    )
    chart.set_title({"name": "Component VaR by asset (main confidence)"})
    chart.set_legend({"none": True})
    chart.set_x_axis({"num_format": "$#,##0"})
    chart.set_y_axis({"reverse": True, "crossing": "max", "label_position": "low"})
    # beside the parameters, covariance and portfolio figures (columns J..M are empty there)
    insert_chart(ws, chart, p_top, 9, sd_row - p_top + 1, 4)
    return SimpleNamespace(
        var99=var99, n=n,
        asset=lambda i: _sheet_ref(REPORT, ref(first + i, 0, True)),
        position=lambda i: _sheet_ref(REPORT, ref(first + i, 1, True)),
        vol=lambda i: _sheet_ref(REPORT, ref(first + i, 2, True)),
        cov_native=_sheet_ref(REPORT, cov_native),
        cov_row=lambda i: _sheet_ref(REPORT, span(k0 + i, 1, k0 + i, n, True)),
        cov_diag=lambda i: _sheet_ref(REPORT, ref(k0 + i, 1 + i, True)),
    )


# ------------------------------------------------------------------------------------------
# What-if
# ------------------------------------------------------------------------------------------
def _what_if(workbook, st, fx, rp: SimpleNamespace) -> None:
    ws = workbook.add_worksheet(WHATIF)
    n = rp.n
    set_widths(ws, 0, 0, 42)
    set_widths(ws, 1, 8, 20)
    ws.write(0, 0, "What-if: a trade's incremental VaR and ES, and an asset the book does not hold", st.title)
    _note(
        ws, 1, 8,
        "Type a trade in the yellow column (signed $, negative = sell). Incremental VaR is computed exactly, "
        "VaR(book + trade) - VaR(book), with the marginal estimate MVaR . trade beside it.",
        st,
    )
    top = 3
    ws.write(top, 0, "Trade", st.heading)
    header_row(ws, top + 1, 0, ["Asset", "Position ($)", "Trade ($)", "Position after ($)", "Component VaR before",
          "Component VaR after", "% of VaR before", "% of VaR after"], st)
    first, last = top + 2, top + 1 + n
    for i in range(n):
        r = first + i
        ws.write_formula(r, 0, f"={rp.asset(i)}", fx.text, ASSETS[i])
        ws.write_formula(r, 1, f"={rp.position(i)}", st.money, 0)
        ws.write_number(r, 2, TRADE[i], st.input_money)
        ws.write_formula(r, 3, f"={ref(r, 1)}+{ref(r, 2)}", st.money, 0)
    trade = span(first, 2, last, 2, True)
    after = span(first, 3, last, 3, True)
    workbook.define_name("Trade", f"={_sheet_ref(WHATIF, trade)}")
    workbook.define_name("PositionsAfter", f"={_sheet_ref(WHATIF, after)}")
    spill(ws, first, 4, last, 4, "=COMPONENTVAR(Positions,Covariance,Confidence,Horizon)", st.money)
    spill(ws, first, 5, last, 5, "=COMPONENTVAR(PositionsAfter,Covariance,Confidence,Horizon)", st.money)
    spill(ws, first, 6, last, 6, "=COMPONENTVARPCT(Positions,Covariance,Confidence,Horizon)", st.pct)
    spill(ws, first, 7, last, 7, "=COMPONENTVARPCT(PositionsAfter,Covariance,Confidence,Horizon)", st.pct)
    tot = last + 1
    ws.write(tot, 0, "Total", fx.total_text)
    for j, fmt in ((1, fx.total_money), (2, fx.total_money), (3, fx.total_money), (4, fx.total_money),
                   (5, fx.total_money), (6, fx.total_pct), (7, fx.total_pct)):
        ws.write_formula(tot, j, f"=SUM({span(first, j, last, j)})", fmt, 0)
    ws.conditional_format(first, 7, last, 7, {"type": "cell", "criteria": ">", "value": "ShareLimit", "format": fx.breach})

    i_top = tot + 2
    ws.write(i_top, 0, "Incremental VaR  =INCREMENTALVAR(..., TRUE)", st.heading)
    spill(
        ws, i_top + 1, 0, i_top + 4, 1,
        '=INCREMENTALVAR(Positions,Covariance,Trade,Confidence,Horizon,"normal",TRUE)', st.money,
    )
    ws.write(i_top, 3, "Incremental ES  =INCREMENTALES(..., TRUE)", st.heading)
    spill(
        ws, i_top + 1, 3, i_top + 4, 4,
        '=INCREMENTALES(Positions,Covariance,Trade,Confidence,Horizon,"normal",TRUE)', st.money,
    )
    chk = i_top + 5
    ws.write(chk, 0, "Check: PORTVAR of the book after the trade")
    ws.write_formula(chk, 1, "=PORTVAR(PositionsAfter,Covariance,Confidence,Horizon)", st.money, 0)
    ws.write(chk + 1, 0, "VaR after minus check (0)")
    ws.write_formula(chk + 1, 1, f"={ref(i_top + 2, 1)}-{ref(chk, 1)}", st.money, 0)

    # A new asset ----------------------------------------------------------------------
    a_top = chk + 3
    ws.write(a_top, 0, "An asset the book does not hold yet", st.heading)
    ws.write(a_top + 1, 0, "New asset")
    ws.write(a_top + 1, 1, NEW_ASSET, st.input_text)
    ws.write(a_top + 2, 0, "Daily vol")
    ws.write_number(a_top + 2, 1, NEW_VOL, fx.input_pct2)
    ws.write(a_top + 3, 0, "Daily variance  vol^2")
    ws.write_formula(a_top + 3, 1, f"={ref(a_top + 2, 1)}^2", st.sci, 0)
    vol_new = ref(a_top + 2, 1, True)
    var_new = ref(a_top + 3, 1, True)
    h0 = a_top + 5
    header_row(ws, h0, 0, ["Asset", "Correlation with it", "Daily vol", "Covariance with it", "Marginal VaR (held)"], st)
    for i in range(n):
        r = h0 + 1 + i
        ws.write_formula(r, 0, f"={rp.asset(i)}", fx.text, ASSETS[i])
        ws.write_number(r, 1, NEW_CORR[i], fx.input_corr)
        ws.write_formula(r, 2, f"={rp.vol(i)}", fx.pct2, 0)
        ws.write_formula(r, 3, f"={vol_new}*{ref(r, 1)}*{ref(r, 2)}", st.sci, 0)
    cwb = span(h0 + 1, 3, h0 + n, 3, True)
    spill(ws, h0 + 1, 4, h0 + n, 4, "=MARGINALVAR(Positions,Covariance,Confidence,Horizon)", fx.rate)
    m_row = h0 + n + 2
    ws.write(m_row, 0, "Marginal VaR of the new asset", st.header)
    ws.write_formula(
        m_row, 1, f"=NEWASSETMVAR(Positions,Covariance,{cwb},{var_new},Confidence,Horizon)", fx.rate, 0
    )
    ws.write_string(m_row, 2, "NEWASSETMVAR(Positions, Covariance, covariance with it, daily variance, Confidence, Horizon)", fx.note_line)
    ws.write(m_row + 1, 0, "Native check  z (c . x) sqrt(h) / sigma_p")
    ws.write_array_formula(
        m_row + 1, 1, m_row + 1, 1,
        f"{{=NORM.S.INV(Confidence)*SQRT(Horizon)*SUMPRODUCT({cwb},Positions)"
        f"/SQRT(MMULT(TRANSPOSE(Positions),MMULT({rp.cov_native},Positions)))}}",
        fx.rate, 0,
    )
    ws.write(m_row + 2, 0, "VaR added by buying $1m of it (approx.)")
    ws.write_formula(m_row + 2, 1, f"={ref(m_row, 1)}*1000000", st.money, 0)
    _note(
        ws, m_row + 3, 8,
        "Covariance with the book = vol(new) x correlation x vol(asset), native formulas. A positive marginal VaR "
        "means a small long position adds risk; a negative one means the asset would hedge the book.",
        st,
    )


# ------------------------------------------------------------------------------------------
# Hedges
# ------------------------------------------------------------------------------------------
def _hedges(workbook, st, fx, rp: SimpleNamespace) -> None:
    ws = workbook.add_worksheet(HEDGES)
    n = rp.n
    set_widths(ws, 0, 0, 22)
    set_widths(ws, 1, 7, 23)
    ws.write(0, 0, "Hedges: the best single-asset hedge, return per unit of risk, risk parity", st.title)
    _note(
        ws, 1, 7,
        "Best hedge (Litterman): for each asset, the trade in it alone that minimises the book's VaR, "
        "-(S x)_i / S_ii, after which its marginal VaR is zero.",
        st,
    )
    top = 3
    ws.write(top, 0, "Best hedges  =BESTHEDGE(Positions, Covariance, Confidence, Horizon)", st.heading)
    h0 = top + 1
    ws.write(h0, 0, "Asset", st.header)
    ws.write(h0, 1, "Position ($)", st.header)
    ws.write(h0, 6, "Native check -(S x)_i / S_ii", st.header)
    for i in range(n):
        r = h0 + 1 + i
        ws.write_formula(r, 0, f"={rp.asset(i)}", fx.text, ASSETS[i])
        ws.write_formula(r, 1, f"={rp.position(i)}", st.money, 0)
        ws.write_array_formula(
            r, 6, r, 6, f"{{=-MMULT({rp.cov_row(i)},Positions)/{rp.cov_diag(i)}}}", st.money, 0
        )
    _spill_table(
        ws, h0, 2, h0 + n, 5,
        "=BESTHEDGE(Positions,Covariance,Confidence,Horizon)",
        [st.money, st.money, st.money, st.pct],
        header=st.header,
    )

    # Return per unit of risk -----------------------------------------------------------
    e_top = h0 + n + 2
    ws.write(
        e_top, 0,
        "Return per unit of risk  =RETURNPERRISK(Positions, Covariance, daily expected return, Confidence, Horizon)",
        st.heading,
    )
    e0 = e_top + 1
    header_row(ws, e0, 0, ["Asset", "Expected return (annual)", "Expected return (daily)"], st)
    for i in range(n):
        r = e0 + 1 + i
        ws.write_formula(r, 0, f"={rp.asset(i)}", fx.text, ASSETS[i])
        ws.write_number(r, 1, ANNUAL_RETURNS[i], st.input_pct)
        ws.write_formula(r, 2, f"={ref(r, 1)}/{DAYS_PER_YEAR}", fx.pct3, 0)
    daily = span(e0 + 1, 2, e0 + n, 2, True)
    workbook.define_name("ExpectedReturn", f"={_sheet_ref(HEDGES, daily)}")
    _spill_table(
        ws, e0, 3, e0 + n, 6,
        "=RETURNPERRISK(Positions,Covariance,ExpectedReturn,Confidence,Horizon)",
        [fx.pct3, fx.rate, fx.ratio, fx.int],
        header=st.header,
    )
    _note(
        ws, e0 + n + 1, 7,
        "Expected return per $1 of marginal VaR: rank 1 is the best use of risk (add), the last the worst (trim). "
        "'reduces risk' marks an asset with a positive return whose marginal VaR is not positive.",
        st,
    )

    # Risk parity ---------------------------------------------------------------------
    p_top = e0 + n + 3
    ws.write(p_top, 0, "Risk parity  =RISKPARITY(Covariance)", st.heading)
    p0 = p_top + 1
    header_row(ws, p0, 0, ["Asset", "Risk-parity weight", "Its % of VaR", "Target 1/n", "Current book % of VaR"], st)
    for i in range(n):
        ws.write_formula(p0 + 1 + i, 0, f"={rp.asset(i)}", fx.text, ASSETS[i])
        ws.write_formula(p0 + 1 + i, 3, "=1/ROWS(Positions)", st.pct, 0)
    weights = span(p0 + 1, 1, p0 + n, 1, True)
    spill(ws, p0 + 1, 1, p0 + n, 1, "=RISKPARITY(Covariance)", st.pct)
    spill(ws, p0 + 1, 2, p0 + n, 2, f"=COMPONENTVARPCT({weights},Covariance,Confidence,Horizon)", st.pct)
    spill(ws, p0 + 1, 4, p0 + n, 4, "=COMPONENTVARPCT(Positions,Covariance,Confidence,Horizon)", st.pct)
    tot = p0 + n + 1
    ws.write(tot, 0, "Total", fx.total_text)
    for j in (1, 2, 3, 4):
        ws.write_formula(tot, j, f"=SUM({span(p0 + 1, j, p0 + n, j)})", fx.total_pct, 0)
    _note(
        ws, tot + 1, 7,
        "Long-only weights summing to 100% whose component VaR shares are all equal (1/n), whatever the "
        "confidence: the low-vol assets (Treasuries, credit, EURUSD) get the large weights.",
        st,
    )


# ------------------------------------------------------------------------------------------
# Stress
# ------------------------------------------------------------------------------------------
def _stress(workbook, st, fx, rp: SimpleNamespace) -> None:
    ws = workbook.add_worksheet(STRESS)
    n = rp.n
    set_widths(ws, 0, 0, 30)
    set_widths(ws, 1, 7, 23)
    ws.write(0, 0, "Stress: correlations pushed toward 1, VaR normal vs stressed", st.title)
    _note(
        ws, 1, 7,
        "Every correlation moves a fraction theta of the way to 1: rho -> (1 - theta) rho + theta. The result "
        "is still a valid correlation matrix. Vols and positions are those of the Report sheet.",
        st,
    )
    ws.write(3, 0, "Stress weight theta", st.header)
    ws.write_number(3, 1, THETA, st.input_pct)
    workbook.define_name("Theta", f"={_sheet_ref(STRESS, ref(3, 1, True))}")

    s_top = 5
    ws.write(s_top, 0, "Stressed correlation  =STRESSCORR(Correlation, Theta)", st.heading)
    header_row(ws, s_top + 1, 1, ASSETS, st, label_first=False)
    s0 = s_top + 2
    for i, asset in enumerate(ASSETS):
        ws.write(s0 + i, 0, asset)
    spill(ws, s0, 1, s0 + n - 1, n, "=STRESSCORR(Correlation,Theta)", fx.corr)
    stressed_corr = span(s0, 1, s0 + n - 1, n, True)

    v_top = s0 + n + 1
    ws.write(v_top, 0, "Stressed covariance  =COVFROMCORR(Vols, stressed correlation)", st.heading)
    header_row(ws, v_top + 1, 1, ASSETS, st, label_first=False)
    v0 = v_top + 2
    for i, asset in enumerate(ASSETS):
        ws.write(v0 + i, 0, asset)
    spill(ws, v0, 1, v0 + n - 1, n, f"=COVFROMCORR(Vols,{stressed_corr})", st.sci)
    workbook.define_name("StressedCovariance", f"={_sheet_ref(STRESS, span(v0, 1, v0 + n - 1, n, True))}")

    d_top = v0 + n + 1
    ws.write(d_top, 0, "VaR at the main confidence: normal vs stressed correlations", st.heading)
    d0 = d_top + 1
    header_row(ws, d0, 0, ["Asset", "Position ($)", "Component VaR normal", "Component VaR stressed", "Change",
          "% of VaR normal", "% of VaR stressed"], st)
    for i in range(n):
        r = d0 + 1 + i
        ws.write_formula(r, 0, f"={rp.asset(i)}", fx.text, ASSETS[i])
        ws.write_formula(r, 1, f"={rp.position(i)}", st.money, 0)
        ws.write_formula(r, 4, f"={ref(r, 3)}-{ref(r, 2)}", st.money, 0)
    a, b = d0 + 1, d0 + n
    spill(ws, a, 2, b, 2, "=COMPONENTVAR(Positions,Covariance,Confidence,Horizon)", st.money)
    spill(ws, a, 3, b, 3, "=COMPONENTVAR(Positions,StressedCovariance,Confidence,Horizon)", st.money)
    spill(ws, a, 5, b, 5, "=COMPONENTVARPCT(Positions,Covariance,Confidence,Horizon)", st.pct)
    spill(ws, a, 6, b, 6, "=COMPONENTVARPCT(Positions,StressedCovariance,Confidence,Horizon)", st.pct)
    t = b + 1
    ws.write(t, 0, "Portfolio VaR", fx.total_text)
    ws.write(t, 1, "", fx.total_blank)
    ws.write_formula(t, 2, "=PORTVAR(Positions,Covariance,Confidence,Horizon)", fx.total_money, 0)
    ws.write_formula(t, 3, "=PORTVAR(Positions,StressedCovariance,Confidence,Horizon)", fx.total_money, 0)
    ws.write_formula(t, 4, f"={ref(t, 3)}-{ref(t, 2)}", fx.total_money, 0)
    ws.write_formula(t, 5, f"=SUM({span(a, 5, b, 5)})", fx.total_pct, 0)
    ws.write_formula(t, 6, f"=SUM({span(a, 6, b, 6)})", fx.total_pct, 0)
    ws.write(t + 1, 0, "Portfolio ES")
    ws.write_formula(t + 1, 2, "=PORTES(Positions,Covariance,Confidence,Horizon)", st.money, 0)
    ws.write_formula(t + 1, 3, "=PORTES(Positions,StressedCovariance,Confidence,Horizon)", st.money, 0)
    ws.write_formula(t + 1, 4, f"={ref(t + 1, 3)}-{ref(t + 1, 2)}", st.money, 0)
    ws.write(t + 2, 0, "Sum of component VaR (= VaR)")
    ws.write_formula(t + 2, 2, f"=SUM({span(a, 2, b, 2)})", st.money, 0)
    ws.write_formula(t + 2, 3, f"=SUM({span(a, 3, b, 3)})", st.money, 0)
    ws.write(t + 3, 0, "VaR increase under stress")
    ws.write_formula(t + 3, 2, f"={ref(t, 3)}/{ref(t, 2)}-1", st.pct, 0)
    _note(
        ws, t + 4, 7,
        "When correlations rise, diversification shrinks and a long book's VaR rises. Hedges change too: with these "
        "inputs the Treasuries stop offsetting the equities (their component VaR turns positive) while the short "
        "EURUSD hedges more.",
        st,
    )

    # Named shocks ------------------------------------------------------------------------
    k_top = t + 6
    ws.write(k_top, 0, "Named shocks: the return of each asset in each scenario (inputs)", st.heading)
    header_row(ws, k_top + 1, 0, ["Scenario", *ASSETS, "P&L  native MMULT(shock, Positions)"], st, lines=2)
    set_widths(ws, 8, 8, 23)
    k0 = k_top + 2
    m = len(SHOCKS)
    for i, (name, shock) in enumerate(SHOCKS):
        r = k0 + i
        ws.write_string(r, 0, name, st.input_text)
        for j, v in enumerate(shock):
            ws.write_number(r, 1 + j, v, st.input_pct)
        ws.write_array_formula(r, n + 1, r, n + 1, f"{{=MMULT({span(r, 1, r, n)},Positions)}}", st.money, 0)
    workbook.define_name("Shocks", f"={_sheet_ref(STRESS, span(k0, 1, k0 + m - 1, n, True))}")
    workbook.define_name("ScenarioNames", f"={_sheet_ref(STRESS, span(k0, 0, k0 + m - 1, 0, True))}")
    p_top = k0 + m + 1
    ws.write(p_top, 0, "P&L by scenario, largest loss first  =STRESSPNL(Positions, Shocks, ScenarioNames)", st.heading)
    _spill_table(ws, p_top + 1, 0, p_top + 1 + m, 1, "=STRESSPNL(Positions,Shocks,ScenarioNames)",
                 [fx.text, st.money], header=st.header)
    w = p_top + m + 2
    ws.write(w, 0, "Largest loss, native MIN", fx.total_text)
    ws.write_formula(w, 1, f"=MIN({span(k0, n + 1, k0 + m - 1, n + 1)})", fx.total_money, 0)
    ws.write(w + 1, 0, "STRESSPNL's first row minus it (0)")
    ws.write_formula(w + 1, 1, f"={ref(p_top + 2, 1)}-{ref(w, 1)}", st.money, 0)


# ------------------------------------------------------------------------------------------
# By desk
# ------------------------------------------------------------------------------------------
def _desks() -> list[str]:
    """The desks in order of first appearance (GROUPVAR's row order)."""
    return list(dict.fromkeys(DESKS))


def _group_block(ws, st, fx, top: int, col: int, title: str, formula: str, check: str, what: str) -> tuple[int, int]:
    """A GROUPVAR / GROUPES table at (top, col) with a native check that its component
    column sums to the book's figure; returns (first group row, last group row)."""
    g = len(_desks())
    ws.write(top, col, title, st.heading)
    h = top + 1
    _spill_table(
        ws, h, col, h + g + 1, col + 4, formula,
        [fx.text, st.money, st.money, st.pct, st.money],
        header=st.header,
        total=[fx.total_text, fx.total_money, fx.total_money, fx.total_pct, fx.total_money],
    )
    first, last = h + 1, h + g
    c = h + g + 2
    ws.write(c, col, f"Sum of component {what} (native SUM)")
    ws.write_formula(c, col + 2, f"=SUM({span(first, col + 2, last, col + 2)})", st.money, 0)
    ws.write(c + 1, col, f"Book {what}  ={check.split('(')[0]}")
    ws.write_formula(c + 1, col + 2, f"={check}", st.money, 0)
    ws.write(c + 2, col, "Difference (0)")
    ws.write_formula(c + 2, col + 2, f"={ref(c, col + 2)}-{ref(c + 1, col + 2)}", st.money, 0)
    return first, last


def _by_desk(workbook, st, fx, rp: SimpleNamespace) -> None:
    ws = workbook.add_worksheet(BYDESK)
    n, g = rp.n, len(_desks())
    set_widths(ws, 0, 0, 34)
    set_widths(ws, 1, 4, 16)
    set_widths(ws, 5, 5, 3)
    set_widths(ws, 6, 6, 34)
    set_widths(ws, 7, 10, 16)
    ws.write(0, 0, "By desk: each desk's standalone VaR, its share of the book's VaR, and what diversification saves", st.title)
    _note(
        ws, 1, 10,
        "Type the desk of each position in the yellow column. Standalone VaR is the VaR of the desk's positions "
        "alone; component VaR is the sum of its positions' component VaRs, so the desks add up to the book's VaR; "
        "the diversification benefit is standalone minus component. The same for expected shortfall, and for VaR "
        "by historical simulation on the daily returns history.",
        st,
    )
    top = 3
    ws.write(top, 0, "Book", st.heading)
    header_row(ws, top + 1, 0, ["Asset", "Desk", "Position ($)"], st)
    first = top + 2
    for i in range(n):
        r = first + i
        ws.write_formula(r, 0, f"={rp.asset(i)}", fx.text, ASSETS[i])
        ws.write_string(r, 1, DESKS[i], st.input_text)
        ws.write_formula(r, 2, f"={rp.position(i)}", st.money, 0)
    workbook.define_name("Desks", f"={_sheet_ref(BYDESK, span(first, 1, first + n - 1, 1, True))}")

    v_top = first + n + 1
    g_first, g_last = _group_block(
        ws, st, fx, v_top, 0, "VaR by desk  =GROUPVAR(Positions, Covariance, Desks, Confidence, Horizon)",
        "=GROUPVAR(Positions,Covariance,Desks,Confidence,Horizon)",
        "PORTVAR(Positions,Covariance,Confidence,Horizon)", "VaR",
    )
    _group_block(
        ws, st, fx, v_top, 6, "ES by desk  =GROUPES(Positions, Covariance, Desks, Confidence, Horizon)",
        "=GROUPES(Positions,Covariance,Desks,Confidence,Horizon)",
        "PORTES(Positions,Covariance,Confidence,Horizon)", "ES",
    )
    h_top = g_last + 6
    _group_block(
        ws, st, fx, h_top, 0,
        'Historical VaR by desk  =GROUPVAR(Positions, DailyReturns, Desks, Confidence, Horizon, "historical")',
        '=GROUPVAR(Positions,DailyReturns,Desks,Confidence,Horizon,"historical")',
        'PORTVAR(Positions,DailyReturns,Confidence,Horizon,"historical")', "VaR",
    )

    # The chart reads plain references to the GROUPVAR table (cells LibreOffice shows).
    c_top = h_top + g + 7
    ws.write(c_top, 0, "VaR by desk, as the chart reads it (plain references to the normal table above)", st.heading)
    header_row(ws, c_top + 1, 0, ["Desk", "Standalone VaR", "Component VaR"], st)
    c0 = c_top + 2
    for k in range(g):
        ws.write_formula(c0 + k, 0, f"={ref(g_first + k, 0)}", fx.text, _desks()[k])
        ws.write_formula(c0 + k, 1, f"={ref(g_first + k, 1)}", st.money, 0)
        ws.write_formula(c0 + k, 2, f"={ref(g_first + k, 2)}", st.money, 0)
    chart = workbook.add_chart({"type": "bar"})
    for j, colour in ((1, "#A6A6A6"), (2, "#2E75B6")):
        chart.add_series({
            "name": f"={_sheet_ref(BYDESK, ref(c_top + 1, j, True))}",
            "categories": f"={_sheet_ref(BYDESK, span(c0, 0, c0 + g - 1, 0, True))}",
            "values": f"={_sheet_ref(BYDESK, span(c0, j, c0 + g - 1, j, True))}",
            "fill": {"color": colour},
            "invert_if_negative": False,
        })
    chart.set_title({"name": "Standalone vs component VaR by desk"})
    chart.set_x_axis({"num_format": "$#,##0"})
    chart.set_y_axis({"reverse": True, "crossing": "max", "label_position": "low"})
    chart.set_legend({"position": "bottom"})
    insert_chart(ws, chart, h_top, 6, g + 2 + 6 + g + 2, 5)


# ------------------------------------------------------------------------------------------
# Options (full revaluation)
# ------------------------------------------------------------------------------------------
def _options(workbook, st, fx, rp: SimpleNamespace) -> None:
    ws = workbook.add_worksheet(OPTIONS)
    k = len(OPTIONS_BOOK)
    set_widths(ws, 0, 0, 56)
    set_widths(ws, 1, 2 * k + 2, 15)
    ws.write(0, 0, 'Options: full-revaluation VaR from a P&L grid (method "pnl")', st.title)
    _note(
        ws, 1, 2 * k + 2,
        f"Each option is revalued under each of the last {OPTION_DAYS} days of the daily returns history: its "
        "value at expiry if the underlying moved by that day's return (intrinsic value), less the premium paid, "
        "times the units held (native formulas; a desk pastes its pricing system's grid instead). The risk "
        'functions take the grid as the model with method "pnl"; the scale of each position multiplies its '
        "column (1 = as held, 0 = closed).",
        st,
    )
    top = 3
    ws.write(top, 0, "Options book", st.heading)
    header_row(ws, top + 1, 0, ["Position", "Underlying", "Type", "Units", "Spot", "Strike", "Premium",
                                "Scale (1 = as held)"], st)
    o0 = top + 2
    for j, (name, underlying, kind, units, spot, strike, premium) in enumerate(OPTIONS_BOOK):
        r = o0 + j
        ws.write_string(r, 0, name, st.input_text)
        ws.write_string(r, 1, underlying, st.input_text)
        ws.write_string(r, 2, kind, st.input_text)
        ws.write_number(r, 3, units, fx.input_int)
        ws.write_number(r, 4, spot, st.input_money)
        ws.write_number(r, 5, strike, st.input_money)
        ws.write_number(r, 6, premium, fx.input_money2)
        ws.write_number(r, 7, 1, st.input_num)
    ws.data_validation(o0, 2, o0 + k - 1, 2, {"validate": "list", "source": ["call", "put"]})
    scales = span(o0, 7, o0 + k - 1, 7, True)
    workbook.define_name("OptionScales", f"={_sheet_ref(OPTIONS, scales)}")

    # Risk figures, with native checks beside them
    f_top = o0 + k + 1
    g_top = f_top + k + 9  # the grid, below the figures
    g0 = g_top + 2
    grid = span(g0, 1 + k, g0 + OPTION_DAYS - 1, 2 * k, True)
    book = span(g0, 2 * k + 1, g0 + OPTION_DAYS - 1, 2 * k + 1, True)
    workbook.define_name("OptionPnL", f"={_sheet_ref(OPTIONS, grid)}")
    ws.write(f_top, 0, 'Risk over one day  (OptionScales, OptionPnL, Confidence, 1, "pnl")', st.heading)
    header_row(ws, f_top + 1, 0, ["Position", "Component VaR", "Native check"], st)
    c0 = f_top + 2
    for j, (name, *_rest) in enumerate(OPTIONS_BOOK):
        ws.write_formula(c0 + j, 0, f"={ref(o0 + j, 0)}", fx.text, name)
    spill(ws, c0, 1, c0 + k - 1, 1, '=COMPONENTVAR(OptionScales,OptionPnL,Confidence,1,"pnl")', st.money)
    t = c0 + k
    rows = (
        ("Sum of components", f"=SUM({span(c0, 1, t - 1, 1)})", None),
        ('VaR  =PORTVAR(..., "pnl")  | native -PERCENTILE.INC(book P&L, 1 - c)',
         '=PORTVAR(OptionScales,OptionPnL,Confidence,1,"pnl")', f"=-PERCENTILE.INC({book},1-Confidence)"),
        ('ES  =PORTES(..., "pnl")  | native mean of the P&L below -VaR',
         '=PORTES(OptionScales,OptionPnL,Confidence,1,"pnl")',
         f"=-SUMPRODUCT(({book}<-{ref(t + 1, 2)})*{book})/SUMPRODUCT(({book}<-{ref(t + 1, 2)})*1)"),
    )
    for m, (label, formula, native) in enumerate(rows):
        ws.write(t + m, 0, label, fx.total_text if m == 0 else None)
        ws.write_formula(t + m, 1, formula, fx.total_money if m == 0 else st.money, 0)
        if native:
            ws.write_formula(t + m, 2, native, st.money, 0)
    ws.write(t + 3, 0, "Worst day of the grid (native MIN)")
    ws.write_formula(t + 3, 2, f"=MIN({book})", st.money, 0)
    ws.write(t + 4, 0, "VaR of the linear book on Report (normal)")
    ws.write_formula(t + 4, 1, f"={_sheet_ref(REPORT, rp.var99)}", st.money, 0)

    # The P&L grid
    ws.write(g_top, 0, "P&L grid: rows = scenarios (days), columns = positions; the book's P&L = MMULT(row, OptionScales)",
             st.heading)
    header_row(ws, g_top + 1, 0, ["Day", *(f"Return of {o[1]}" for o in OPTIONS_BOOK),
                                  *(f"P&L {o[0]}" for o in OPTIONS_BOOK), "Book P&L"], st, lines=2)
    start = HISTORY_DAYS - OPTION_DAYS  # zero-based first row of the history used
    for d in range(OPTION_DAYS):
        r = g0 + d
        ws.write_formula(r, 0, f"=INDEX(Days,{start + d + 1})", fx.date, 0)
        for j in range(k):
            o = o0 + j
            ws.write_formula(r, 1 + j, f"=INDEX(DailyReturns,{start + d + 1},MATCH({ref(o, 1, True)},Assets,0))", fx.pct3, 0)
            sign = f'IF({ref(o, 2, True)}="call",1,-1)'
            payoff = f"MAX({sign}*({ref(o, 4, True)}*(1+{ref(r, 1 + j)})-{ref(o, 5, True)}),0)"
            ws.write_formula(r, 1 + k + j, f"={ref(o, 3, True)}*({payoff}-{ref(o, 6, True)})", st.money, 0)
    last = g0 + OPTION_DAYS - 1  # the book's P&L: one MMULT over the whole grid
    ws.write_array_formula(g0, 2 * k + 1, last, 2 * k + 1,
                           f"{{=MMULT({span(g0, 1 + k, last, 2 * k)},OptionScales)}}", st.money, 0)


# ------------------------------------------------------------------------------------------
# Handles
# ------------------------------------------------------------------------------------------
#: The handles of the Handles sheet: defined name, what it is made from, the RISKMODEL
#: formula, the method its figures use, and the range the same figures read directly.
HANDLE_MODELS = (
    ("CovModel", "Report's covariance, for the normal method", '=RISKMODEL(Covariance,"normal")', "normal",
     "Covariance"),
    ("ReturnsModel", "Daily returns, for historical simulation", '=RISKMODEL(DailyReturns,"historical")',
     "historical", "DailyReturns"),
)


def _handles(workbook, st, fx, rp: SimpleNamespace) -> None:
    """RISKMODEL handles beside the ranges they stand for, every figure computed both ways."""
    from ...excel.handles import _REFRESH  # the advice a cell shows for a lost handle, quoted in the note

    ws = workbook.add_worksheet(HANDLES)
    n = rp.n
    set_widths(ws, 0, 0, 44)
    set_widths(ws, 1, 1, 46)
    set_widths(ws, 2, 7, 16)
    ws.write(0, 0, "Handles: pass a big range to Python once with =RISKMODEL", st.title)
    _note(
        ws, 1, 7,
        "A handle is a short text that stands for a table Python keeps in memory. =RISKMODEL(range, method) "
        "validates the range once and returns the handle; every function that takes a covariance or a returns "
        "table accepts the handle in its place, so a sheet of many risk cells sends a big range to Python once "
        "instead of once per cell (in Excel each range argument is transferred again for every cell). The "
        "handle is keyed on content (a SHA-256 of the numbers, the kind of table, the method and the options): "
        "recalculating RISKMODEL on the same data gives the same text, in any session; new data gives a new "
        "text, and Excel then recalculates every cell that uses it. Below, each figure is computed with the "
        "handle and with the range itself: the differences are 0.",
        st,
    )
    _note(
        ws, 2, 7,
        "When a handle is lost: after Excel or Python restarts, a RISKMODEL cell still shows its text but Python "
        "no longer holds the table, and a cell that uses it and recalculates shows \"model: the risk model "
        "'xlmvar-model:...' is not in this Python session (Excel or Python was restarted since it was made, or "
        f"it was forgotten to free memory); {_REFRESH}\" - never a stale or wrong figure. To refresh, "
        f"{_REFRESH}. Text that looks like a handle but was not made in this session (typed, edited, copied from "
        "another workbook) is refused with the same advice.",
        st,
    )

    top = 4
    ws.write(top, 0, "Risk model handles", st.heading)
    header_row(ws, top + 1, 0, ["Model", "Handle  =RISKMODEL(range, method)", "Cells in the range",
                                "Cells sent per call with the handle"], st, lines=2)
    ws.write(top + 1, 1, "Handle  =RISKMODEL(range, method)", st.header_wrap)  # over text: left-aligned
    h0 = top + 2
    for k, (name, label, formula, _method, source) in enumerate(HANDLE_MODELS):
        r = h0 + k
        ws.write(r, 0, label)
        ws.write_formula(r, 1, formula, fx.text, "")
        ws.write_formula(r, 2, f"=ROWS({source})*COLUMNS({source})", fx.count, 0)
        ws.write_number(r, 3, 1, fx.count)
        workbook.define_name(name, f"={_sheet_ref(HANDLES, ref(r, 1, True))}")
    ws.write(h0 + len(HANDLE_MODELS), 0, "Formulas: " + "; ".join(f"{m[0]} {m[2]}" for m in HANDLE_MODELS),
             fx.note_line)

    f_top = h0 + len(HANDLE_MODELS) + 2
    ws.write(f_top, 0, "Portfolio figures at the main confidence: with the handle and with the range", st.heading)
    header_row(ws, f_top + 1, 0, ["Figure", "With the handle", "With the range", "Handle minus range (0)"], st,
               lines=2)
    rows = []
    for name, _label, _formula, method, source in HANDLE_MODELS:
        tail = "" if method == "normal" else f',"{method}"'
        for function, what in (("PORTVAR", "Portfolio VaR"), ("PORTES", "Expected shortfall")):
            rows.append((f"{what}, {method}  ({function})",
                         f"={function}(Positions,{name},Confidence,Horizon{tail})",
                         f"={function}(Positions,{source},Confidence,Horizon{tail})"))
    f0 = f_top + 2
    for k, (label, with_handle, with_range) in enumerate(rows):
        r = f0 + k
        ws.write(r, 0, label)
        ws.write_formula(r, 1, with_handle, st.money, 0)
        ws.write_formula(r, 2, with_range, st.money, 0)
        ws.write_formula(r, 3, f"={ref(r, 1)}-{ref(r, 2)}", st.money, 0)

    ws.write(f0 + len(rows), 0, 'With the handle: =PORTVAR(Positions, CovModel, Confidence, Horizon); with the range: '
             '=PORTVAR(Positions, Covariance, Confidence, Horizon); the historical rows add "historical".', fx.note_line)
    c_top = f0 + len(rows) + 2
    ws.write(c_top, 0, "Component VaR by asset: =COMPONENTVAR(Positions, handle | range, Confidence, Horizon, method)",
             st.heading)
    labels = ["Asset"]
    for name, _label, _formula, method, source in HANDLE_MODELS:
        labels += [f"{method.capitalize()}, {name}", f"{method.capitalize()}, {source}", "Difference (0)"]
    header_row(ws, c_top + 1, 0, labels, st, lines=2)
    c0 = c_top + 2
    for i in range(n):
        ws.write_formula(c0 + i, 0, f"={rp.asset(i)}", fx.text, ASSETS[i])
    ws.write(c0 + n, 0, "Sum (= portfolio VaR above)", fx.total_text)
    for k, (name, _label, _formula, method, source) in enumerate(HANDLE_MODELS):
        col = 1 + 3 * k
        tail = "" if method == "normal" else f',"{method}"'
        for j, model in enumerate((name, source)):
            spill(ws, c0, col + j, c0 + n - 1, col + j, f"=COMPONENTVAR(Positions,{model},Confidence,Horizon{tail})",
                  st.money)
        for i in range(n):
            ws.write_formula(c0 + i, col + 2, f"={ref(c0 + i, col)}-{ref(c0 + i, col + 1)}", st.money, 0)
        for j in range(3):
            ws.write_formula(c0 + n, col + j, f"=SUM({span(c0, col + j, c0 + n - 1, col + j)})", fx.total_money, 0)
    ws.write(c0 + n + 1, 0, "Component VaRs add up to the portfolio VaR (Euler), with the handle as with the range.",
             fx.note_line)


# ------------------------------------------------------------------------------------------
# Daily returns
# ------------------------------------------------------------------------------------------
def _daily_returns(workbook, st, fx, rp: SimpleNamespace) -> None:
    ws = workbook.add_worksheet(DAILY)
    n = rp.n
    set_widths(ws, 0, 0, 12)
    set_widths(ws, 1, n + 1, 11)
    ws.write(0, 0, "Daily returns of the book's assets, with the book's P&L", st.title)
    note(
        ws, 1, 0, n + 1,
        f"Synthetic: multivariate Student-t ({HISTORY_DOF} degrees of freedom) with the Report's covariance, numpy "
        f"seed {HISTORY_SEED}, volatility x{SHIFT:g} from day {SHIFT_DAY + 1}; paste the assets' realised returns over it (named DailyReturns, dates named Days). "
        "Book P&L = MMULT(returns row, Positions), native.",
        st.note,
    )
    dates, returns = returns_history()
    header_row(ws, 3, 0, ["Date", *ASSETS, "Book P&L ($)"], st, lines=2)
    first = 4
    for t, (day, row) in enumerate(zip(dates, returns)):
        r = first + t
        ws.write_datetime(r, 0, _dt.datetime(day.year, day.month, day.day), fx.input_date)
        for j, v in enumerate(row):
            ws.write_number(r, 1 + j, float(v), fx.input_pct3)
    last = first + len(dates) - 1  # the book's P&L: one MMULT over the whole history
    ws.write_array_formula(first, n + 1, last, n + 1, f"{{=MMULT({span(first, 1, last, n)},Positions)}}", st.money, 0)
    workbook.define_name("DailyReturns", f"={_sheet_ref(DAILY, span(first, 1, last, n, True))}")
    workbook.define_name("Days", f"={_sheet_ref(DAILY, span(first, 0, last, 0, True))}")
    workbook.define_name("BookPnL", f"={_sheet_ref(DAILY, span(first, n + 1, last, n + 1, True))}")
    ws.freeze_panes(first, 1)


# ------------------------------------------------------------------------------------------
# Backtest
# ------------------------------------------------------------------------------------------
def _backtest(workbook, st, fx, rp: SimpleNamespace) -> None:
    ws = workbook.add_worksheet(BACKTEST)
    days = HISTORY_DAYS - WINDOW
    set_widths(ws, 0, 0, 12)
    set_widths(ws, 1, 2, 15)
    set_widths(ws, 3, 3, 14)
    set_widths(ws, 4, 4, 10)
    set_widths(ws, 5, 6, 15)
    set_widths(ws, 7, 7, 3)
    set_widths(ws, 8, 8, 32)
    set_widths(ws, 9, 12, 14)
    ws.write(0, 0, f"Backtest: {days} days of P&L against a rolling out-of-sample VaR at the main confidence", st.title)
    _note(
        ws, 1, 12,
        f"Each day's VaR is forecast by historical simulation on the {WINDOW} days before it only (ROLLINGVAR on "
        "the Daily returns sheet), beside the P&L the book then made. An exception is a day whose loss exceeds "
        "that day's forecast. The native columns recompute both from the Daily returns sheet.",
        st,
    )
    top = 3
    ws.write(top, 0, f'Out-of-sample VaR  =ROLLINGVAR(Positions, DailyReturns, {WINDOW}, Confidence, "historical", Days)', st.heading)
    h = top + 1
    first, last = h + 1, h + days
    _spill_table(
        ws, h, 0, last, 2,
        f'=ROLLINGVAR(Positions,DailyReturns,{WINDOW},Confidence,"historical",Days)',
        [fx.date, st.money, st.money], header=st.header,
    )
    header_row(ws, h, 3, ["-VaR native", "Exception", "P&L native", "VaR native"], st)
    base = 4  # first data row of the Daily returns sheet (zero-based)
    for k in range(days):
        r, t = first + k, WINDOW + k  # t: zero-based row of the history this day is
        ws.write_formula(r, 3, f"=-{ref(r, 6)}", st.money, 0)
        ws.write_formula(r, 4, f"=IF(-{ref(r, 2)}>{ref(r, 1)},1,0)", fx.int, 0)
        ws.write_formula(r, 5, f"={_sheet_ref(DAILY, ref(base + t, len(ASSETS) + 1))}", st.money, 0)
        window = _sheet_ref(DAILY, span(base + t - WINDOW, len(ASSETS) + 1, base + t - 1, len(ASSETS) + 1))
        ws.write_formula(r, 6, f"=-PERCENTILE.INC({window},1-Confidence)", st.money, 0)
    pnl_rng = span(first, 2, last, 2, True)
    var_rng = span(first, 1, last, 1, True)
    flags = span(first, 4, last, 4, True)
    workbook.define_name("PnL", f"={_sheet_ref(BACKTEST, pnl_rng)}")
    workbook.define_name("VaRForecast", f"={_sheet_ref(BACKTEST, var_rng)}")
    ws.conditional_format(first, 4, last, 4, {"type": "cell", "criteria": "==", "value": 1, "format": fx.breach})
    ws.freeze_panes(first, 0)

    col = 8
    ws.write(top, col, "Backtest  =VARBACKTEST(PnL, VaRForecast, Confidence)", st.heading)
    b0 = top + 1
    formats = [fx.int, fx.int, fx.number, st.pct, fx.number, fx.pvalue, fx.number, fx.pvalue, fx.number,
               fx.pvalue, fx.text_right, fx.number]
    spill(ws, b0, col, b0 + 11, col + 1, "=VARBACKTEST(PnL,VaRForecast,Confidence)", fx.text)
    for k, fmt in enumerate(formats):
        if k:
            ws.write_number(b0 + k, col, 0, fx.text)
        ws.write_number(b0 + k, col + 1, 0, fmt)
    zone = ref(b0 + 10, col + 1)
    for word, fmt in (("green", fx.green), ("yellow", fx.yellow), ("red", fx.breach)):
        ws.conditional_format(zone, {"type": "cell", "criteria": "==", "value": f'"{word}"', "format": fmt})
    c0 = b0 + 13
    ws.write(c0, col, "Native check", st.header)
    ws.write(c0, col + 1, "", st.header)
    ws.write(c0 + 1, col, "Exceptions  =SUM(flags)")
    ws.write_formula(c0 + 1, col + 1, f"=SUM({flags})", fx.int, 0)
    ws.write(c0 + 2, col, "Expected  (1 - confidence) x days")
    ws.write_formula(c0 + 2, col + 1, f"=(1-Confidence)*COUNT({span(first, 5, last, 5, True)})", fx.number, 0)
    ws.write(c0 + 3, col, "Worst day")
    ws.write_formula(c0 + 3, col + 1, f"=MIN({span(first, 5, last, 5, True)})", st.money, 0)
    ws.write(c0 + 4, col, "Largest |ROLLINGVAR - native VaR|")
    ws.write_formula(c0 + 4, col + 1, f"=SUMPRODUCT(MAX(ABS({var_rng}-{span(first, 6, last, 6, True)})))", st.money, 0)
    note(
        ws, c0 + 5, col, col + 4,
        "Kupiec tests the number of exceptions, Christoffersen whether they cluster; Basel zones for 250 days at "
        "99%: green 0-4, yellow 5-9, red 10 or more.",
        st.note, rows=2,
    )

    # the chart draws the native columns (LibreOffice shows them; it cannot run ROLLINGVAR)
    chart = workbook.add_chart({"type": "line"})
    categories = f"={_sheet_ref(DAILY, span(base + WINDOW, 0, base + HISTORY_DAYS - 1, 0, True))}"  # native dates
    chart.add_series({
        "name": "Daily P&L", "categories": categories,
        "values": f"={_sheet_ref(BACKTEST, span(first, 5, last, 5, True))}",
        "line": {"color": "#2E75B6", "width": 1.0},
    })
    chart.add_series({
        "name": "-VaR", "categories": categories,
        "values": f"={_sheet_ref(BACKTEST, span(first, 3, last, 3, True))}",
        "line": {"color": "#C00000", "width": 1.5, "dash_type": "dash"},
    })
    chart.set_title({"name": "Daily P&L against -VaR (rolling, out of sample)"})
    chart.set_x_axis({"date_axis": True, "num_format": "mmm yy", "label_position": "low",
                      "major_unit": 1, "major_unit_type": "months"})
    chart.set_y_axis({"num_format": "$#,##0"})
    chart.set_legend({"position": "bottom"})
    insert_chart(ws, chart, c0 + 8, col, 18, 5)
