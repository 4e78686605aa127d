"""Risk from history: the EDHEC hedge-fund indices, every method side by side (``edhec_history.xlsx``).

Sheets: ``Returns`` (the data, with its attribution; the defined name ``History`` covers the
table, so that no name shadows the function RETURNS), ``Risk`` (a $100m fund of hedge-fund
styles: covariance estimators, VaR / ES / component VaR by the normal, historical,
Cornish-Fisher and Monte Carlo methods, a chart, and PerformanceAnalytics' published values
recomputed in the sheet) and ``Prices`` (an index built from returns with native formulas and
turned back into returns with RETURNS).
"""

from __future__ import annotations

import csv
from pathlib import Path

from ._layout import VIEWERS, header_row, insert_chart, note, print_setup, ref, set_widths, span, spill

DATA = Path(__file__).resolve().parents[2] / "data" / "edhec.csv"
NOTIONAL = 100_000_000.0
#: A fund of hedge-fund styles (weights sum to 1), one per EDHEC index.
WEIGHTS = (0.10, 0.10, 0.08, 0.08, 0.08, 0.08, 0.06, 0.10, 0.12, 0.06, 0.06, 0.02, 0.06)
METHODS = (
    ("Normal (mean incl.)", '"normal"', True),
    ("Historical", '"historical"', False),
    ("Cornish-Fisher", '"cornish-fisher"', False),
    ("Monte Carlo normal", '"montecarlo"', True),
)
#: PerformanceAnalytics on edhec[1:100, 1:3], p = 0.95 (xlmvar/data/README.md), as losses.
#: Its single-asset modified VaR (0.014674) divides the moments by n where its portfolio
#: figures, and xlmvar, use n - 1; tests/test_modified.py checks it with ddof=0.
PUBLISHED = (
    ("Gaussian VaR, portfolio (0.3, 0.4, 0.3)", 0.012916),
    ("Historical VaR, column 1", 0.014095),
    ("Historical ES, column 1", 0.024080),
)


#: The factors of the Factors sheet: two adjacent EDHEC indices; and how many worst months.
FACTORS = ("Global Macro", "Long/Short Equity")
WORST = 10


def load_edhec() -> tuple[list[str], list[str], list[list[float]]]:
    """(index names, month-end dates, returns rows) from the packaged copy of the data."""
    with DATA.open(newline="") as handle:
        rows = list(csv.reader(handle))
    names = rows[0][1:]
    dates = [r[0] for r in rows[1:]]
    values = [[float(v) for v in r[1:]] for r in rows[1:]]
    return names, dates, values


def build(workbook, st) -> None:
    """Lay out the Returns, Risk and Prices sheets."""
    names, dates, values = load_edhec()
    n, t = len(names), len(values)
    returns_sheet(workbook, st, names, dates, values)
    first, last = 2, 2 + t - 1  # zero-based rows of the data on the Returns sheet
    # Named History, not Returns: a name equal to a function name (RETURNS) is an error
    # (Err:509) in LibreOffice wherever a formula uses it.
    workbook.define_name("History", f"=Returns!{span(first, 1, last, n, True)}")
    workbook.define_name("MonthEnds", f"=Returns!{span(first, 0, last, 0, True)}")
    risk_sheet(workbook, st, names, first, t)
    factors_sheet(workbook, st, names, first, t)
    prices_sheet(workbook, st, names, first)


def returns_sheet(workbook, st, names, dates, values) -> None:
    ws = workbook.add_worksheet("Returns")
    set_widths(ws, 0, 0, 12)
    set_widths(ws, 1, len(names), 11)
    note(
        ws, 0, 0, len(names),
        "Monthly returns of the EDHEC hedge-fund style indices, 1997-01 to 2021-05 (the defined name "
        "History). Source: the edhec data set of the R package PerformanceAnalytics (GPL); see "
        "xlmvar/data/README.md.",
        st.note,
    )
    header_row(ws, 1, 0, ["Month end", *names], st, lines=2)
    for i, (date, row) in enumerate(zip(dates, values)):
        ws.write_string(2 + i, 0, date)
        for j, v in enumerate(row):
            ws.write_number(2 + i, 1 + j, v, st.pct2)
    ws.freeze_panes(2, 1)
    print_setup(ws, title_rows=2, landscape=True)


def risk_sheet(workbook, st, names, first, t) -> None:
    ws = workbook.add_worksheet("Risk")
    n = len(names)
    set_widths(ws, 0, 0, 30)
    set_widths(ws, 1, 2 + n, 14)
    ws.write(0, 0, "A $100m fund of hedge-fund styles: monthly VaR by every method", st.title)
    note(
        ws, 1, 0, 8,
        "Yellow cells are inputs. Returns are monthly, so horizon 1 is one month. Historical and "
        "Cornish-Fisher read the returns table (named History) as it is, mean included; the normal and "
        f"Monte Carlo methods use its sample covariance and mean. {VIEWERS}",
        st.note,
    )
    # Inputs: the book and the model
    ws.write(3, 0, "Book", st.heading)
    header_row(ws, 4, 0, ["Strategy", "Weight", "Position ($)", "Mean return"], st)
    r0 = 5
    for i, name in enumerate(names):
        r = r0 + i
        ws.write(r, 0, name)
        ws.write_number(r, 1, WEIGHTS[i], st.input_pct)
        ws.write_formula(r, 2, f"={ref(r, 1)}*{ref(r0 + n + 1, 1, True)}", st.money, 0)
        ws.write_formula(r, 3, f"=AVERAGE(Returns!{span(first, 1 + i, first + t - 1, 1 + i, True)})", st.pct2, 0)
    r_total = r0 + n
    ws.write(r_total, 0, "Total", st.header)
    ws.write_formula(r_total, 1, f"=SUM({span(r0, 1, r_total - 1, 1)})", st.pct, 0)
    ws.write_formula(r_total, 2, f"=SUM({span(r0, 2, r_total - 1, 2)})", st.bold_money, 0)
    ws.write(r_total + 1, 0, "Fund size")
    ws.write_number(r_total + 1, 1, NOTIONAL, st.input_money)
    conf_row, hor_row, method_row = r_total + 2, r_total + 3, r_total + 4
    ws.write(conf_row, 0, "Confidence")
    ws.write_number(conf_row, 1, 0.95, st.input_pct)
    ws.write(hor_row, 0, "Horizon (months)")
    ws.write_number(hor_row, 1, 1, st.input_int)
    ws.write(method_row, 0, "Method for `xlmvar report`")
    ws.write_string(method_row, 1, "historical", st.input_text)
    ws.data_validation(method_row, 1, method_row, 1, {
        "validate": "list", "source": ["normal", "historical", "cornish-fisher", "montecarlo"],
        "input_title": "Method", "input_message": "The method `xlmvar report` uses",
    })
    positions = span(r0, 2, r_total - 1, 2, True)
    mean = span(r0, 3, r_total - 1, 3, True)
    workbook.define_name("Assets", f"=Risk!{span(r0, 0, r_total - 1, 0, True)}")
    workbook.define_name("Positions", f"=Risk!{positions}")
    workbook.define_name("Confidence", f"=Risk!{ref(conf_row, 1, True)}")
    workbook.define_name("Horizon", f"=Risk!{ref(hor_row, 1, True)}")
    workbook.define_name("Method", f"=Risk!{ref(method_row, 1, True)}")
    workbook.define_name("Mean", f"=Risk!{mean}")  # the report's normal and Monte Carlo figures use it, as the sheet's do

    # Covariance estimators
    c_top = method_row + 2
    ws.write(c_top, 0, "Covariance  =COVMATRIX(History)  (sample, divides by n - 1)", st.heading)
    header_row(ws, c_top + 1, 1, [f"#{j + 1}" for j in range(n)], st, label_first=False)
    c0 = c_top + 2
    for i in range(n):
        ws.write(c0 + i, 0, f"#{i + 1} {names[i]}")
    spill(ws, c0, 1, c0 + n - 1, n, "=COVMATRIX(History)", st.sci)
    workbook.define_name("Covariance", f"=Risk!{span(c0, 1, c0 + n - 1, n, True)}")

    e_top = c0 + n + 1
    ws.write(e_top, 0, "Volatility by estimator (annualised: x sqrt(12))", st.heading)
    header_row(ws, e_top + 1, 0, ["Strategy", "Sample", "EWMA 0.94", "Ledoit-Wolf"], st)
    estimators = ('"sample"', '"ewma"', '"ledoit-wolf"')
    e0 = e_top + 2
    for i, name in enumerate(names):
        ws.write(e0 + i, 0, name)
        for j, est in enumerate(estimators, start=1):
            ws.write_formula(
                e0 + i, j, f"=SQRT(12*INDEX(COVMATRIX(History,{est}),{i + 1},{i + 1}))", st.pct, 0
            )

    # Every method side by side
    m_top = e0 + n + 1
    ws.write(m_top, 0, "Component VaR by method", st.heading)
    header_row(ws, m_top + 1, 0, ["Strategy", *(label for label, _, _ in METHODS)], st, lines=2)
    m0 = m_top + 2
    for i, name in enumerate(names):
        ws.write(m0 + i, 0, name)
    for j, (_, method, takes_cov) in enumerate(METHODS, start=1):
        model = "Covariance" if takes_cov else "History"
        extra = f",{mean}" if takes_cov else ""
        spill(
            ws, m0, j, m0 + n - 1, j,
            f"=COMPONENTVAR(Positions,{model},Confidence,Horizon,{method}{extra})", st.money,
        )
    s_row = m0 + n
    measures = (("VaR", "PORTVAR"), ("Expected shortfall", "PORTES"), ("Sum of components", None),
                ("Undiversified VaR", "UNDIVERSIFIEDVAR"))
    for k, (label, function) in enumerate(measures):
        r = s_row + k
        ws.write(r, 0, label, st.header if k == 0 else None)
        for j, (_, method, takes_cov) in enumerate(METHODS, start=1):
            model = "Covariance" if takes_cov else "History"
            extra = f",{mean}" if takes_cov else ""
            if function is None:
                formula = f"=SUM({span(m0, j, m0 + n - 1, j)})"
            else:
                formula = f"={function}(Positions,{model},Confidence,Horizon,{method}{extra})"
            ws.write_formula(r, j, formula, st.bold_money if k == 0 else st.money, 0)
    mc = s_row + len(measures)
    ws.write(mc, 0, "Monte Carlo standard error of VaR")
    ws.write_formula(mc, 4, f"=MCSTDERR(Positions,Covariance,Confidence,Horizon,,{mean})", st.money, 0)
    ws.write(mc + 1, 0, "Monte Carlo Student-t (5 dof) VaR")
    ws.write_formula(
        mc + 1, 4, f'=PORTVAR(Positions,Covariance,Confidence,Horizon,"montecarlo",{mean},,5)', st.money, 0
    )


    # PerformanceAnalytics' published values, recomputed in the sheet
    p_top = mc + 3
    ws.write(p_top, 0, "PerformanceAnalytics check: edhec[1:100, 1:3], p = 95%", st.heading)
    header_row(ws, p_top + 1, 0, ["Figure", "Published", "This sheet", "Difference"], st)
    # the portfolio figure's inputs, under their own header (one column per index)
    i_row = p_top + 3 + len(PUBLISHED)
    header_row(ws, i_row, 0, ["Portfolio figure's inputs", *names[:3]], st, lines=2)
    w_row = i_row + 1
    ws.write(w_row, 0, "Weight")
    for j, w in enumerate((0.3, 0.4, 0.3)):
        ws.write_number(w_row, 1 + j, w, st.input_num)
    weights = span(w_row, 1, w_row, 3, True)
    first100 = f"Returns!{span(first, 1, first + 99, 3, True)}"
    col1 = f"Returns!{span(first, 1, first + 99, 1, True)}"
    ws.write(w_row + 1, 0, "Mean return, months 1-100")
    for j in range(3):
        ws.write_formula(w_row + 1, 1 + j, f"=AVERAGE(Returns!{span(first, 1 + j, first + 99, 1 + j, True)})", st.pct2, 0)
    means = span(w_row + 1, 1, w_row + 1, 3, True)
    formulas = (
        f'=PORTVAR({weights},COVMATRIX({first100}),0.95,1,"normal",{means})',
        f'=PORTVAR(1,{col1},0.95,1,"historical")',
        f'=PORTES(1,{col1},0.95,1,"historical")',
    )
    for k, ((label, published), formula) in enumerate(zip(PUBLISHED, formulas)):
        r = p_top + 2 + k
        ws.write(r, 0, label)
        ws.write_number(r, 1, published, st.rate6)
        ws.write_formula(r, 2, formula, st.rate6, 0)
        ws.write_formula(r, 3, f"={ref(r, 2)}-{ref(r, 1)}", st.sci, 0)

    # The chart reads plain references to the component VaR table: Excel draws them live;
    # LibreOffice, which cannot evaluate xlmvar functions (it shows #NAME? in their spilled
    # tables), draws the saved values of these cells.
    g_top = w_row + 3
    ws.write(g_top, 0, "Component VaR by method, as the chart reads it (plain references to the table above)", st.heading)
    header_row(ws, g_top + 1, 0, ["Strategy", *(label for label, _, _ in METHODS)], st, lines=2)
    g0 = g_top + 2
    for i, name in enumerate(names):
        ws.write(g0 + i, 0, name)
        for j in range(1, len(METHODS) + 1):
            ws.write_formula(g0 + i, j, f"={ref(m0 + i, j)}", st.money, 0)
    chart = workbook.add_chart({"type": "bar"})
    for j, (label, _, _) in enumerate(METHODS, start=1):
        chart.add_series({
            "name": f"=Risk!{ref(g_top + 1, j, True)}",
            "categories": f"=Risk!{span(g0, 0, g0 + n - 1, 0, True)}",
            "values": f"=Risk!{span(g0, j, g0 + n - 1, j, True)}",
        })
    chart.set_title({"name": "Component VaR by method"})
    chart.set_x_axis({"num_format": "$#,##0"})
    chart.set_y_axis({"reverse": True, "crossing": "max", "label_position": "low"})
    chart.set_legend({"position": "bottom"})
    insert_chart(ws, chart, 3, 5, c_top - 4, 9)  # beside the book, on the first printed page
    print_setup(ws, title_rows=1, landscape=True)
    ws.activate()


def factors_sheet(workbook, st, names, first, t) -> None:
    """Risk by factor: loadings of every fund on two EDHEC indices used as factors, the
    implied covariance, VaR split by factor, and the worst months with their dates."""
    ws = workbook.add_worksheet("Factors")
    n, k = len(names), len(FACTORS)
    cols = [names.index(f) for f in FACTORS]
    if cols != list(range(cols[0], cols[0] + k)):
        raise ValueError("edhec_history: FACTORS must be adjacent columns of the returns table")
    set_widths(ws, 0, 0, 30)
    set_widths(ws, 1, 2 + n, 13)
    ws.write(0, 0, "Risk by factor: the fund of styles on two EDHEC indices as factors, and its worst months", st.title)
    note(
        ws, 1, 0, 10,
        f"The factors are the {FACTORS[0]} and {FACTORS[1]} indices (named FactorReturns). Every fund is "
        "regressed on them with an intercept (FACTORLOADINGS); the factor model's covariance is B F B' + D "
        "(FACTORCOV); FACTORVAR splits the normal VaR of the Risk sheet's book into one part per factor plus "
        "specific risk. LINEST recomputes the loadings natively.",
        st.note,
    )
    workbook.define_name(
        "FactorReturns", f"=Returns!{span(first, 1 + cols[0], first + t - 1, 1 + cols[-1], True)}"
    )
    # Factor names and their covariance
    ws.write(3, 0, "Factor covariance  =COVMATRIX(FactorReturns)", st.heading)
    header_row(ws, 4, 0, ["Factor", *FACTORS], st, lines=2)
    for j, name in enumerate(FACTORS):
        ws.write_formula(5 + j, 0, f"=Returns!{ref(first - 1, 1 + cols[j])}", None, name)
    spill(ws, 5, 1, 5 + k - 1, k, "=COVMATRIX(FactorReturns)", st.sci)
    workbook.define_name("FactorNames", f"=Factors!{span(5, 0, 5 + k - 1, 0, True)}")
    workbook.define_name("FactorCovariance", f"=Factors!{span(5, 1, 5 + k - 1, k, True)}")

    # Loadings, with LINEST beside them
    l_top = 5 + k + 1
    ws.write(l_top, 0, "Loadings  =FACTORLOADINGS(History, FactorReturns)", st.heading)
    ws.write(l_top, 7, "Native check  =LINEST(fund, FactorReturns): its coefficients come last factor first", st.heading)
    h = l_top + 1
    ws.write(h, 0, "Fund", st.header)
    spill(ws, h, 1, h + n, k + 3, "=FACTORLOADINGS(History,FactorReturns)", st.header)
    fmts = [*([st.num2] * k), st.sci, st.sci, st.pct]
    for i in range(n):
        ws.write(h + 1 + i, 0, names[i])
        for j, fmt in enumerate(fmts):
            ws.write_number(h + 1 + i, 1 + j, 0, fmt)
    for j in range(2, k + 4):  # the padding of the spilled header row (its anchor is column B)
        ws.write_number(h, j, 0, st.header_num)
    header_row(ws, h, 7, [*(f"LINEST beta {k - j}" for j in range(k)), "LINEST intercept", "LINEST R^2",
                          "Largest difference"], st, lines=2, label_first=False)
    for i in range(n):
        r = h + 1 + i
        y = f"Returns!{span(first, 1 + i, first + t - 1, 1 + i, True)}"
        ws.write_array_formula(r, 7, r, 7 + k, f"{{=LINEST({y},FactorReturns)}}", st.num2, 0)
        ws.write_formula(r, 8 + k, f"=INDEX(LINEST({y},FactorReturns,TRUE,TRUE),3,1)", st.pct, 0)
    first_b, last_b = h + 1, h + n
    betas = span(first_b, 1, last_b, k, True)
    specific = span(first_b, k + 2, last_b, k + 2, True)
    workbook.define_name("Betas", f"=Factors!{betas}")
    workbook.define_name("SpecificVar", f"=Factors!{specific}")
    # largest |FACTORLOADINGS - LINEST| over betas, intercepts and R^2 (LINEST reversed)
    pieces = [f"ABS({span(first_b, 1 + j, last_b, 1 + j)}-{span(first_b, 7 + k - 1 - j, last_b, 7 + k - 1 - j)})"
              for j in range(k)]
    pieces.append(f"ABS({span(first_b, k + 1, last_b, k + 1)}-{span(first_b, 7 + k, last_b, 7 + k)})")
    pieces.append(f"ABS({span(first_b, k + 3, last_b, k + 3)}-{span(first_b, 8 + k, last_b, 8 + k)})")
    ws.write_formula(first_b, 9 + k, f"=SUMPRODUCT(MAX({','.join(f'MAX({p})' for p in pieces)}))", st.sci, 0)

    # The factor model's covariance
    c_top = last_b + 2
    ws.write(c_top, 0, "Factor-model covariance  =FACTORCOV(Betas, FactorCovariance, SpecificVar)", st.heading)
    header_row(ws, c_top + 1, 1, [f"#{j + 1}" for j in range(n)], st, label_first=False)
    c0 = c_top + 2
    for i in range(n):
        ws.write(c0 + i, 0, f"#{i + 1} {names[i]}")
    spill(ws, c0, 1, c0 + n - 1, n, "=FACTORCOV(Betas,FactorCovariance,SpecificVar)", st.sci)

    # VaR by factor
    v_top = c0 + n + 1
    ws.write(
        v_top, 0,
        "VaR by factor  =FACTORVAR(Positions, Betas, FactorCovariance, SpecificVar, Confidence, Horizon, FactorNames)",
        st.heading,
    )
    v0 = v_top + 1
    rows = k + 3  # header, factors, specific, total
    spill(ws, v0, 0, v0 + rows - 1, 4,
          "=FACTORVAR(Positions,Betas,FactorCovariance,SpecificVar,Confidence,Horizon,FactorNames)", st.header)
    for j in range(1, 5):
        ws.write_number(v0, j, 0, st.header_num)
    for r in range(v0 + 1, v0 + rows):
        total = r == v0 + rows - 1
        ws.write_number(r, 0, 0, st.header if total else None)
        for j, fmt in enumerate((st.money, st.rate, st.money, st.pct), start=1):
            ws.write_number(r, j, 0, st.bold_money if (total and j == 3) else fmt)
    x0 = v0 + rows + 1
    total = ref(v0 + rows - 1, 3)
    checks = (
        ("Sum of the factor and specific parts (native SUM)", f"=SUM({span(v0 + 1, 3, v0 + rows - 2, 3)})"),
        ("Factor model  =PORTVAR(Positions, FACTORCOV(...), ...)",
         "=PORTVAR(Positions,FACTORCOV(Betas,FactorCovariance,SpecificVar),Confidence,Horizon)"),
        ("FACTORVAR total minus that (0)", f"={total}-{ref(x0 + 1, 3)}"),
        ("Sample covariance  =PORTVAR(Positions, Covariance, ...)",
         "=PORTVAR(Positions,Covariance,Confidence,Horizon)"),
        ("Factor model vs sample covariance", f"={total}/{ref(x0 + 3, 3)}-1"),
    )
    for m, (label, formula) in enumerate(checks):
        ws.write(x0 + m, 0, label)
        ws.write_formula(x0 + m, 3, formula, st.pct if m == len(checks) - 1 else st.money, 0)

    # Worst months
    w_top = x0 + len(checks) + 1
    ws.write(w_top, 0, f"The {WORST} worst months for the book  =WORSTDAYS(Positions, History, MonthEnds, {WORST})",
             st.heading)
    w0 = w_top + 1
    spill(ws, w0, 0, w0 + WORST, 1 + n, f"=WORSTDAYS(Positions,History,MonthEnds,{WORST})", st.header)
    for j in range(1, 2 + n):
        ws.write_number(w0, j, 0, st.header_num)
    for r in range(w0 + 1, w0 + WORST + 1):
        ws.write_number(r, 0, 0, None)
        for j in range(1, 2 + n):
            ws.write_number(r, j, 0, st.bold_money if j == 1 else st.money)
    note(ws, w0 + WORST + 1, 0, 8,
         "Position i is the i-th strategy of the book (Risk sheet); the parts sum to the month's P&L.", st.note)
    print_setup(ws, title_rows=1, landscape=True)


def prices_sheet(workbook, st, names, first) -> None:
    """An index per style built from its returns (native formulas), turned back with RETURNS.

    Column A holds the month ends, each price is the index at that month end and each
    return, beside it, the index's return over that month.
    """
    ws = workbook.add_worksheet("Prices")
    months, k = 24, 3
    p0, r0, d = 1, k + 2, 2 * k + 3  # first price column, first RETURNS column, the check
    set_widths(ws, 0, 0, 16)
    set_widths(ws, p0, 2 * k + 2, 14)
    set_widths(ws, d, d, 16)
    ws.write(0, 0, "From prices to returns: an index built from the first 24 months, turned back with RETURNS", st.heading)
    header_row(ws, 1, 0, ["Month end", *(f"Index {name}" for name in names[:k])], st, lines=3)
    ws.write(2, 0, "Start (base 100)")
    for i in range(months):
        ws.write_formula(3 + i, 0, f"=Returns!{ref(first + i, 0)}", None, "")
    for j in range(k):
        ws.write_number(2, p0 + j, 100.0, st.num2)
        for i in range(months):
            ws.write_formula(3 + i, p0 + j, f"={ref(2 + i, p0 + j)}*(1+Returns!{ref(first + i, 1 + j)})", st.num2, 0)
    prices = span(2, p0, 2 + months, p0 + k - 1)
    header_row(ws, 1, r0, [f"RETURNS {name}" for name in names[:k]], st, lines=3, label_first=False)
    spill(ws, 3, r0, 2 + months, r0 + k - 1, f"=RETURNS({prices})", st.pct2)
    ws.write(1, d, "Largest difference from the data", st.header_wrap_num)
    # SUMPRODUCT evaluates its argument as an array in an ordinary (non-array) formula
    ws.write_formula(
        2, d,
        f"=SUMPRODUCT(MAX(ABS({span(3, r0, 2 + months, r0 + k - 1)}-Returns!{span(first, 1, first + months - 1, k)})))",
        st.sci, 0,
    )
    print_setup(ws, title_rows=2, landscape=False)
