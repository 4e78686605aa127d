"""The seed's worked example: a $10m book in SPY, TLT and BTC (``spy_tlt_btc.xlsx``)."""

from __future__ import annotations

from ._layout import VIEWERS, header_row, insert_chart, note, print_setup, ref, set_widths, span, spill

#: The source document's worked example (README, "The worked example"): a $10m book in SPY, TLT and BTC.
SEED_ASSETS = ("SPY", "TLT", "BTC")
SEED_VALUES = (5_000_000.0, 3_000_000.0, 2_000_000.0)
SEED_VOLS = (0.15, 0.10, 0.60)
SEED_CORR = ((1.0, -0.3, 0.2), (-0.3, 1.0, 0.1), (0.2, 0.1, 1.0))
#: What the seed printed (portfolio vol, VaR, marginal and component VaR).  Shown beside the
#: computed figures, never used in a calculation.
SEED_PRINTED = {
    "vol": 0.091,
    "var": 840_000.0,
    "marginal": (0.081, -0.015, 0.240),
    "component": (405_000.0, -45_000.0, 480_000.0),
}

def build(workbook, st) -> None:
    """Lay out the example sheet: inputs, xlmvar formulas, native cross-check, chart, seed note."""
    ws = workbook.add_worksheet("Example")
    n = len(SEED_ASSETS)
    set_widths(ws, 0, 0, 34)
    set_widths(ws, 1, 7, 15)
    set_widths(ws, 8, 8, 42)
    set_widths(ws, 9, 12, 15)
    ws.write(0, 0, "SPY / TLT / BTC: VaR and its decomposition (the seed's worked example)", st.title)
    note(
        ws, 1, 0, 6,
        "Yellow cells are inputs. Volatilities are annual, so horizon 1 is one year. "
        f"Every figure below is computed from the inputs. {VIEWERS}",
        st.note,
    )

    # Inputs ---------------------------------------------------------------------------
    top = 3
    ws.write(top, 0, "Inputs", st.heading)
    headers = ["Asset", "Value ($)", "Weight", "Volatility", *(f"Corr {a}" for a in SEED_ASSETS)]
    header_row(ws, top + 1, 0, headers, st)
    first = top + 2  # first asset row
    last = first + n - 1
    for i, asset in enumerate(SEED_ASSETS):
        r = first + i
        ws.write(r, 0, asset, st.input_text)
        ws.write_number(r, 1, SEED_VALUES[i], st.input_money)
        ws.write_formula(r, 2, f"={ref(r, 1)}/SUM({span(first, 1, last, 1, True)})", st.pct, 0)
        ws.write_number(r, 3, SEED_VOLS[i], st.input_pct)
        for j in range(n):
            ws.write_number(r, 4 + j, SEED_CORR[i][j], st.input_num)
    total_row = last + 1
    ws.write(total_row, 0, "Total", st.header)
    ws.write_formula(total_row, 1, f"=SUM({span(first, 1, last, 1)})", st.bold_money, 0)
    conf_row, hor_row = total_row + 2, total_row + 3
    ws.write(conf_row, 0, "Confidence")
    ws.write_number(conf_row, 1, 0.95, st.input_pct)
    ws.write(hor_row, 0, "Horizon (periods of the model: years here)")
    ws.write_number(hor_row, 1, 1, st.input_int)

    positions = span(first, 1, last, 1, True)
    vols = span(first, 3, last, 3, True)
    corr = span(first, 4, last, 4 + n - 1, True)
    workbook.define_name("Assets", f"=Example!{span(first, 0, last, 0, True)}")
    workbook.define_name("Positions", f"=Example!{positions}")
    workbook.define_name("Confidence", f"=Example!{ref(conf_row, 1, True)}")
    workbook.define_name("Horizon", f"=Example!{ref(hor_row, 1, True)}")

    # Covariance from vols and correlations --------------------------------------------
    cov_top = hor_row + 2
    ws.write(cov_top, 0, "Covariance  =COVFROMCORR(vols, corr)", st.heading)
    header_row(ws, cov_top + 1, 1, SEED_ASSETS, st, label_first=False)
    c0 = cov_top + 2
    for i, asset in enumerate(SEED_ASSETS):
        ws.write(c0 + i, 0, asset)
    spill(ws, c0, 1, c0 + n - 1, n, f"=COVFROMCORR({vols},{corr})", st.sci)
    workbook.define_name("Covariance", f"=Example!{span(c0, 1, c0 + n - 1, n, True)}")
    args = "Positions,Covariance,Confidence,Horizon"

    # Portfolio figures ----------------------------------------------------------------
    p_top = c0 + n + 1
    ws.write(p_top, 0, "Portfolio (xlmvar functions)", st.heading)
    portfolio_rows = [
        ("Portfolio VaR", f"=PORTVAR({args})", st.bold_money),
        ("Portfolio volatility (% of value)", f"=PORTVOL(Positions,Covariance,Horizon)/{ref(total_row, 1)}", st.pct),
        ("Expected shortfall", f"=PORTES({args})", st.money),
        ("Undiversified VaR (sum of individual VaRs)", f"=UNDIVERSIFIEDVAR({args})", st.money),
        ("Diversification benefit", f"=DIVERSIFICATION({args})", st.money),
    ]
    for k, (label, formula, fmt) in enumerate(portfolio_rows):
        ws.write(p_top + 1 + k, 0, label)
        ws.write_formula(p_top + 1 + k, 1, formula, fmt, 0)
    var_cell = ref(p_top + 1, 1)
    vol_cell = ref(p_top + 2, 1)

    # Decomposition --------------------------------------------------------------------
    d_top = p_top + len(portfolio_rows) + 2
    ws.write(d_top, 0, "Decomposition (xlmvar functions)", st.heading)
    header_row(ws, d_top + 1, 0, ["Asset", "Individual VaR", "Marginal VaR", "Component VaR", "% of VaR", "Component ES"], st)
    d0 = d_top + 2
    for i, asset in enumerate(SEED_ASSETS):
        ws.write(d0 + i, 0, asset)
    columns = [
        (f"=INDIVIDUALVAR({args})", st.money),
        (f"=MARGINALVAR({args})", st.rate),
        (f"=COMPONENTVAR({args})", st.money),
        (f"=COMPONENTVARPCT({args})", st.pct),
        (f"=COMPONENTES({args})", st.money),
    ]
    for j, (formula, fmt) in enumerate(columns, start=1):
        spill(ws, d0, j, d0 + n - 1, j, formula, fmt)
    d_total = d0 + n
    ws.write(d_total, 0, "Total", st.header)
    for j, fmt in ((1, st.money), (3, st.bold_money), (4, st.pct), (5, st.money)):
        ws.write_formula(d_total, j, f"=SUM({span(d0, j, d0 + n - 1, j)})", fmt, 0)

    # What-if trade --------------------------------------------------------------------
    w_top = d_total + 2
    ws.write(w_top, 0, "What-if trade (incremental VaR)", st.heading)
    header_row(ws, w_top + 1, 0, ["Asset", "Trade ($)"], st)
    trade = (0.0, 1_000_000.0, -500_000.0)
    for i, asset in enumerate(SEED_ASSETS):
        ws.write(w_top + 2 + i, 0, asset)
        ws.write_number(w_top + 2 + i, 1, trade[i], st.input_money)
    trade_rng = span(w_top + 2, 1, w_top + 1 + n, 1, True)
    w_res = w_top + 2 + n
    ws.write(w_res, 0, "Incremental VaR (exact)")
    ws.write_formula(w_res, 1, f"=INCREMENTALVAR(Positions,Covariance,{trade_rng},Confidence,Horizon)", st.bold_money, 0)
    ws.write(w_res + 1, 0, "Detail  =INCREMENTALVAR(..., TRUE)", st.note)
    spill(
        ws,
        w_res + 2,
        0,
        w_res + 5,
        1,
        f'=INCREMENTALVAR(Positions,Covariance,{trade_rng},Confidence,Horizon,"normal",TRUE)',
        st.money,
    )

    # Risk report ----------------------------------------------------------------------
    r_top = w_res + 7
    ws.write(r_top, 0, "Risk report  =RISKREPORT(Assets, Positions, Covariance, Confidence, Horizon)", st.heading)
    spill(ws, r_top + 1, 0, r_top + 2 + n, 5, f"=RISKREPORT(Assets,{args})", st.money)

    # Native cross-check (no xlmvar function) ------------------------------------------
    x_top = p_top
    col = 8
    ws.write(x_top, col, "Cross-check: native Excel formulas only", st.heading)
    ws.write(x_top + 1, col, "Covariance  vol_i x corr_ij x vol_j", st.header)
    header_row(ws, x_top + 1, col + 1, SEED_ASSETS, st, label_first=False)
    k0 = x_top + 2
    for i in range(n):
        ws.write(k0 + i, col, SEED_ASSETS[i])
        for j in range(n):
            formula = f"={ref(first + i, 3, True)}*{ref(first + i, 4 + j, True)}*{ref(first + j, 3, True)}"
            ws.write_formula(k0 + i, col + 1 + j, formula, st.sci, 0)
    cov_native = span(k0, col + 1, k0 + n - 1, col + n, True)
    s_row = k0 + n
    ws.write(s_row, col, "Portfolio sigma  sqrt(x' S x)")
    ws.write_array_formula(
        s_row, col + 1, s_row, col + 1,
        f"{{=SQRT(MMULT(TRANSPOSE({positions}),MMULT({cov_native},{positions})))}}", st.money, 0,
    )
    sigma = ref(s_row, col + 1, True)
    ws.write(s_row + 1, col, "Portfolio VaR  NORM.S.INV(c) sigma sqrt(h)")
    ws.write_formula(
        s_row + 1, col + 1, f"=NORM.S.INV({ref(conf_row, 1, True)})*{sigma}*SQRT({ref(hor_row, 1, True)})",
        st.bold_money, 0,
    )
    ws.write(s_row + 2, col, "PORTVAR minus native VaR")
    ws.write_formula(s_row + 2, col + 1, f"={var_cell}-{ref(s_row + 1, col + 1)}", st.money, 0)
    ws.write(s_row + 3, col, "Component VaR  x_i z (S x)_i / sigma sqrt(h)", st.header)
    ws.write(s_row + 3, col + 2, "minus COMPONENTVAR", st.header)
    cv0 = s_row + 4
    ws.write_array_formula(
        cv0, col + 1, cv0 + n - 1, col + 1,
        f"{{={positions}*MMULT({cov_native},{positions})/{sigma}"
        f"*NORM.S.INV({ref(conf_row, 1, True)})*SQRT({ref(hor_row, 1, True)})}}",
        st.money, 0,
    )
    for i in range(n):
        ws.write(cv0 + i, col, SEED_ASSETS[i])
        ws.write_formula(cv0 + i, col + 2, f"={ref(d0 + i, 3)}-{ref(cv0 + i, col + 1)}", st.money, 0)
    ws.write(cv0 + n, col, "Sum of native components")
    ws.write_formula(cv0 + n, col + 1, f"=SUM({span(cv0, col + 1, cv0 + n - 1, col + 1)})", st.money, 0)

    # The chart reads the native component column: Excel and LibreOffice both compute it
    # (LibreOffice cannot evaluate xlmvar functions, so a chart of the COMPONENTVAR spill
    # would be empty there); the column above checks that it equals COMPONENTVAR.
    chart = workbook.add_chart({"type": "bar"})
    chart.add_series(
        {
            "name": "Component VaR",
            "categories": f"=Example!{span(cv0, col, cv0 + n - 1, col, True)}",
            "values": f"=Example!{span(cv0, col + 1, cv0 + n - 1, col + 1, True)}",
            "fill": {"color": "#2E75B6"},
        }
    )
    chart.set_title({"name": "Component VaR by asset"})
    chart.set_legend({"none": True})
    chart.set_x_axis({"num_format": "$#,##0"})
    chart.set_y_axis({"reverse": True, "crossing": "max"})
    insert_chart(ws, chart, cv0 + n + 2, col, 15, 5)

    # The seed's printed figures ------------------------------------------------------
    s_top = r_top + n + 4
    ws.write(s_top, 0, "The seed's printed figures do not follow from its own inputs", st.heading)
    note(
        ws, s_top + 1, 0, 5,
        "The source document prints a portfolio volatility of 9.1%, a VaR of $840,000 and a negative "
        "marginal VaR for TLT, but its inputs (values, vols, correlations above) and its own formula "
        "(VaR = z x sigma_p) give the figures in the 'computed' column: the VaR is about three times "
        "larger and TLT adds a little risk rather than hedging it. The printed values are shown for "
        "reference only; no calculation uses them.",
        st.note,
    )
    header_row(ws, s_top + 2, 0, ["Figure", "Seed printed", "Computed from inputs"], st)
    rows = [("Portfolio volatility", SEED_PRINTED["vol"], f"={vol_cell}", st.pct),
            ("Portfolio VaR", SEED_PRINTED["var"], f"={var_cell}", st.money)]
    for i, asset in enumerate(SEED_ASSETS):
        rows.append((f"Marginal VaR {asset}", SEED_PRINTED["marginal"][i], f"={ref(d0 + i, 2)}", st.rate))
    for i, asset in enumerate(SEED_ASSETS):
        rows.append((f"Component VaR {asset}", SEED_PRINTED["component"][i], f"={ref(d0 + i, 3)}", st.money))
    for k, (label, printed, formula, fmt) in enumerate(rows):
        r = s_top + 3 + k
        ws.write(r, 0, label)
        ws.write_number(r, 1, printed, fmt)
        ws.write_formula(r, 2, formula, fmt, 0)
    print_setup(ws, title_rows=1, landscape=True)
    ws.activate()


