"""A risk desk's live report on a multi-asset book (``risk_desk.xlsx``).

Five sheets, every figure a formula of the typed inputs on "Report":

* Report: positions, daily vols and correlations, covariance (COVFROMCORR), the risk
  report with a VaR-share limit (RISKREPORT, breaches highlighted by conditional
  formatting), VARLIMITS, portfolio VaR and ES at two confidences, a component-VaR chart;
* What-if: a trade panel with its incremental VaR and ES (detail tables), the book after
  the trade, and the marginal VaR of an asset not held yet (NEWASSETMVAR);
* Hedges: Litterman best hedges (BESTHEDGE), expected return per unit of marginal VaR
  (RETURNPERRISK), risk-parity weights (RISKPARITY) and their equal VaR shares;
* Stress: correlations pushed toward 1 (STRESSCORR) and VaR normal vs stressed;
* Backtest: a synthetic 250-day P&L history against the 99% VaR (VARBACKTEST) and a chart.

The P&L history is generated here (fixed seed) and written as constants: it stands in for
the desk's realised P&L, which a live workbook would paste in.
"""

from __future__ import annotations

import datetime as _dt
from types import SimpleNamespace

import numpy as np

from ._layout import VIEWERS, header_row, insert_chart, note, print_setup, ref, set_widths, span, spill

REPORT, WHATIF, HEDGES, STRESS, BACKTEST = "Report", "What-if", "Hedges", "Stress", "Backtest"

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

#: Backtest history: Student-t daily P&L with the book's sigma, fixed seed.
HISTORY_DAYS = 250
HISTORY_DOF = 4
HISTORY_SEED = 20260101
HISTORY_END = _dt.date(2025, 12, 31)


def _check_inputs() -> None:
    """Refuse typed inputs that do not make a valid book (checked when the template is built)."""
    n = len(ASSETS)
    if not len(INSTRUMENTS) == len(POSITIONS) == len(DAILY_VOLS) == len(TRADE) == len(ANNUAL_RETURNS) == len(NEW_CORR) == n:
        raise ValueError("risk_desk: every per-asset input needs one value per asset")
    c = np.array(CORR, dtype=float)
    if c.shape != (n, n) or not np.array_equal(c, c.T) or not np.all(np.diag(c) == 1.0):
        raise ValueError("risk_desk: CORR must be a symmetric n x n matrix with a unit diagonal")
    if np.linalg.eigvalsh(c).min() <= 0.0:
        raise ValueError("risk_desk: CORR is not positive definite")
    new = np.array(NEW_CORR, dtype=float)
    if np.linalg.eigvalsh(np.block([[c, new[:, None]], [new[None, :], np.ones((1, 1))]])).min() <= 0.0:
        raise ValueError("risk_desk: NEW_CORR is inconsistent with CORR (the augmented matrix is not positive definite)")


def pnl_history() -> tuple[list[_dt.date], np.ndarray]:
    """The synthetic P&L history: business days up to HISTORY_END and whole-dollar P&L.

    Student-t with HISTORY_DOF degrees of freedom, scaled to unit variance and then to the
    book's daily P&L sigma sqrt(x' S x): fatter tails than the normal VaR assumes.
    """
    from ...engine.covariance import cov_from_corr
    from ...engine.parametric import portfolio_sigma

    sigma = portfolio_sigma(POSITIONS, cov_from_corr(DAILY_VOLS, CORR))
    rng = np.random.default_rng(HISTORY_SEED)
    draws = rng.standard_t(HISTORY_DOF, HISTORY_DAYS) * np.sqrt((HISTORY_DOF - 2) / HISTORY_DOF)
    pnl = np.round(sigma * draws)
    end = np.datetime64(HISTORY_END, "D")
    last = np.busday_offset(end, 0, roll="backward")
    days = np.busday_offset(last, np.arange(-HISTORY_DAYS + 1, 1), roll="backward")
    return [d.astype(_dt.date) for d in days], pnl


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
    """Lay out the five sheets of the risk desk workbook."""
    _check_inputs()
    fx = _Formats(workbook)
    report = _report(workbook, st, fx)
    _what_if(workbook, st, fx, report)
    _hedges(workbook, st, fx, report)
    _stress(workbook, st, fx, report)
    _backtest(workbook, st, fx, report)
    for ws in workbook.worksheets():
        # the Backtest sheet repeats its history's column headers on every page
        print_setup(ws, title_rows=5 if ws.name == BACKTEST else 1, landscape=True)
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


# ------------------------------------------------------------------------------------------
# Backtest
# ------------------------------------------------------------------------------------------
def _backtest(workbook, st, fx, rp: SimpleNamespace) -> None:
    ws = workbook.add_worksheet(BACKTEST)
    set_widths(ws, 0, 0, 12)
    set_widths(ws, 1, 3, 17)
    set_widths(ws, 4, 4, 10)
    set_widths(ws, 5, 5, 3)
    set_widths(ws, 6, 6, 32)
    set_widths(ws, 7, 7, 14)
    ws.write(0, 0, "Backtest: 250 days of P&L against the VaR at the main confidence", st.title)
    _note(
        ws, 1, 10,
        f"The P&L history is synthetic (Student-t with {HISTORY_DOF} degrees of freedom, scaled to the book's daily "
        f"sigma, numpy seed {HISTORY_SEED}): paste the desk's realised P&L over it. An exception is a day whose "
        "loss exceeds that day's VaR forecast.",
        st,
    )
    dates, pnl = pnl_history()
    top = 3
    ws.write(top, 0, "History", st.heading)
    header_row(ws, top + 1, 0, ["Date", "P&L ($)", "VaR forecast ($)", "-VaR ($)", "Exception"], st)
    first = top + 2
    last = first + len(pnl) - 1
    for k, (day, value) in enumerate(zip(dates, pnl)):
        r = first + k
        ws.write_datetime(r, 0, _dt.datetime(day.year, day.month, day.day), fx.input_date)
        ws.write_number(r, 1, float(value), st.input_money)
        ws.write_formula(r, 2, f"={_sheet_ref(REPORT, rp.var99)}", st.money, 0)
        ws.write_formula(r, 3, f"=-{ref(r, 2)}", st.money, 0)
        ws.write_formula(r, 4, f"=IF(-{ref(r, 1)}>{ref(r, 2)},1,0)", fx.int, 0)
    pnl_rng = span(first, 1, last, 1, True)
    var_rng = span(first, 2, last, 2, True)
    flags = span(first, 4, last, 4, True)
    workbook.define_name("PnL", f"={_sheet_ref(BACKTEST, pnl_rng)}")
    workbook.define_name("VaRForecast", f"={_sheet_ref(BACKTEST, var_rng)}")
    ws.conditional_format(first, 4, last, 4, {"type": "cell", "criteria": "==", "value": 1, "format": fx.breach})
    ws.freeze_panes(first, 0)

    col = 6
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
    ws.write_formula(c0 + 2, col + 1, f"=(1-Confidence)*COUNT({pnl_rng})", fx.number, 0)
    ws.write(c0 + 3, col, "Worst day")
    ws.write_formula(c0 + 3, col + 1, f"=MIN({pnl_rng})", st.money, 0)
    note(
        ws, c0 + 4, col, col + 4,
        "Kupiec tests the number of exceptions, Christoffersen whether they cluster; Basel zones for 250 days at "
        "99%: green 0-4, yellow 5-9, red 10 or more.",
        st.note, rows=2,
    )

    chart = workbook.add_chart({"type": "line"})
    chart.add_series(
        {
            "name": "Daily P&L",
            "categories": f"={_sheet_ref(BACKTEST, span(first, 0, last, 0, True))}",
            "values": f"={_sheet_ref(BACKTEST, pnl_rng)}",
            "line": {"color": "#2E75B6", "width": 1.0},
        }
    )
    chart.add_series(
        {
            "name": "-VaR",
            "categories": f"={_sheet_ref(BACKTEST, span(first, 0, last, 0, True))}",
            "values": f"={_sheet_ref(BACKTEST, span(first, 3, last, 3, True))}",
            "line": {"color": "#C00000", "width": 1.5, "dash_type": "dash"},
        }
    )
    chart.set_title({"name": "Daily P&L against -VaR"})
    chart.set_x_axis({"date_axis": True, "num_format": "mmm yy", "label_position": "low",
                      "major_unit": 1, "major_unit_type": "months"})
    chart.set_y_axis({"num_format": "$#,##0"})
    chart.set_legend({"position": "bottom"})
    insert_chart(ws, chart, c0 + 6, col, 18, 5)
