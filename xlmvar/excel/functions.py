"""xlmvar's Excel functions: one thin function per formula (the top-level ``udfs`` exposes them).

Each function converts its arguments, calls the engine (:mod:`xlmvar`) and shapes the
result; all maths and all argument checks live in the engine.  Every function is declared
with :func:`xlmvar.excel.convert.udf`, which converts what each Excel runtime passes (classic
Windows, Office.js / xlwings Server, xlwings Lite, the headless calculator) to the same
Python values and applies Excel's rules for error and blank cells before the function body
runs.  Argument conversions are ``typing.Annotated`` hints in the signatures, which xlwings
reads on every platform, and their ``doc`` entries are the help Excel's function wizard shows.

Conventions (see README): positions are signed currency exposures; VaR and ES are positive
losses in the same units; ``confidence`` is a probability (95% or 0.95); ``horizon`` is a
whole number of periods of the risk model; a vector result comes back in the orientation
of the ``positions`` range.  Every function can also be called from Python with lists or
numpy arrays.
"""

from __future__ import annotations

from typing import Annotated

import numpy as np

from ..engine import allocation, backtest, hedging, limits, parametric, risk, simulation, stress
from ..engine import covariance as estimators
from ..engine._validation import as_vector, check_flag
from .convert import range_hint, udf, value_hint
from .handles import resolve_model

_range = range_hint
_value = value_hint


Positions = _range("Signed positions in currency (negative = short): one row or one column.")
Model = _range(
    "Covariance matrix per period (normal, montecarlo), a returns table, rows = periods "
    "(historical, cornish-fisher), or a P&L table in currency, rows = scenarios, columns = "
    "positions (pnl)."
)
Cov = _range("Covariance matrix of the asset returns, per period.")
Trade = _range("Prospective trade: signed change in each position, same shape as positions.")
Names = _range("Asset names, one per position.")
Confidence = _value(float, "Confidence level as a probability: 95% or 0.95 (default 95%).")
Horizon = _value(float, "Horizon in periods of the risk model (days for daily data); default 1.")
Method = _value(
    str,
    'Method: "normal" (default), "historical", "cornish-fisher" (or "modified"), "montecarlo", '
    '"pnl" (full revaluation: model is a P&L table, positions scale its columns, 1 = as held).',
)
Mean = _range("Optional expected return per period of each asset (normal, montecarlo).")
Draws = _value(float, "Monte Carlo: number of draws (default 100,000).")
Dof = _value(float, "Monte Carlo: Student-t degrees of freedom (> 2); blank = normal draws.")
Seed = _value(float, "Monte Carlo: random seed (default fixed, so the sheet recalculates alike).")
Detail = _value(bool, "TRUE spills before / after / exact / marginal estimate; default FALSE.")
Vols = _range("Volatility of each asset per period, one row or one column.")
Corr = _range("Correlation matrix, one row and one column per asset.")
Limit = _range("Largest share of portfolio VaR a position may carry, e.g. 15%: one cell, or one per position.")
Returns = _range("Returns table: rows = periods (oldest first), columns = assets.")
Prices = _range("Price table: rows = dates (oldest first), columns = assets.")
CovMethod = _value(str, 'Estimator: "sample" (default), "ewma" (RiskMetrics) or "ledoit-wolf".')
Lam = _value(float, "EWMA decay lambda in (0, 1); default 0.94 (RiskMetrics daily); with method ewma only.")
Vector = Annotated[np.ndarray, {"ndim": 2}]
Table = Annotated[list, {}]


def _column_like(values, positions) -> np.ndarray:
    """Return a 1-D result as a row if ``positions`` is a row range, else as a column."""
    values = np.asarray(values, dtype=float)
    shape = np.shape(positions)
    if len(shape) == 2 and shape[0] == 1 and shape[1] > 1:
        return values.reshape(1, -1)
    return values.reshape(-1, 1)


def _options(method, mean, draws, dof, seed) -> dict:
    """Engine keyword arguments for ``method``; an option the method does not take is an error."""
    name = risk.check_method(method)
    given = {"mean": mean, "draws": draws, "dof": dof, "seed": seed}
    accepted = {
        "normal": ("mean",),
        "montecarlo": ("mean", "draws", "dof", "seed"),
        "historical": (),
        "cornish-fisher": (),
        "pnl": (),
    }[name]
    options = {"method": name}
    for key, value in given.items():
        if value is None:
            continue
        if key not in accepted:
            takes = ", ".join(accepted) if accepted else "none of mean, draws, dof, seed"
            raise ValueError(f"{key}: the {name} method does not take it (it takes {takes})")
        options[key] = value
    return options


def _decompose(measure, positions, model, confidence, horizon, method, mean, draws, dof, seed):
    model = resolve_model(model, "model")
    return risk.decompose(
        positions, model, measure, confidence, horizon, **_options(method, mean, draws, dof, seed)
    )


@udf
def PORTVAR(
    positions: Positions,
    model: Model,
    confidence: Confidence = None,
    horizon: Horizon = None,
    method: Method = None,
    mean: Mean = None,
    draws: Draws = None,
    dof: Dof = None,
    seed: Seed = None,
) -> float:
    """Portfolio Value at Risk: the loss not exceeded with the given confidence over the horizon."""
    args = (positions, model, confidence, horizon, method, mean, draws, dof, seed)
    return _decompose("var", *args).total


@udf
def MARGINALVAR(
    positions: Positions,
    model: Model,
    confidence: Confidence = None,
    horizon: Horizon = None,
    method: Method = None,
    mean: Mean = None,
    draws: Draws = None,
    dof: Dof = None,
    seed: Seed = None,
) -> Vector:
    """Marginal VaR of each position: change in portfolio VaR per unit of currency added."""
    args = (positions, model, confidence, horizon, method, mean, draws, dof, seed)
    return _column_like(_decompose("var", *args).marginal, positions)


@udf
def COMPONENTVAR(
    positions: Positions,
    model: Model,
    confidence: Confidence = None,
    horizon: Horizon = None,
    method: Method = None,
    mean: Mean = None,
    draws: Draws = None,
    dof: Dof = None,
    seed: Seed = None,
) -> Vector:
    """Component VaR of each position (position x marginal VaR); sums to the portfolio VaR."""
    args = (positions, model, confidence, horizon, method, mean, draws, dof, seed)
    return _column_like(_decompose("var", *args).component, positions)


@udf
def COMPONENTVARPCT(
    positions: Positions,
    model: Model,
    confidence: Confidence = None,
    horizon: Horizon = None,
    method: Method = None,
    mean: Mean = None,
    draws: Draws = None,
    dof: Dof = None,
    seed: Seed = None,
) -> Vector:
    """Share of portfolio VaR from each position (component VaR / VaR); sums to 100%."""
    args = (positions, model, confidence, horizon, method, mean, draws, dof, seed)
    return _column_like(_decompose("var", *args).percent, positions)


@udf
def INDIVIDUALVAR(
    positions: Positions,
    model: Model,
    confidence: Confidence = None,
    horizon: Horizon = None,
    method: Method = None,
    mean: Mean = None,
    draws: Draws = None,
    dof: Dof = None,
    seed: Seed = None,
) -> Vector:
    """Standalone VaR of each position, as if it were held alone."""
    model = resolve_model(model, "model")
    options = _options(method, mean, draws, dof, seed)
    values = risk.individual_var(positions, model, confidence, horizon, **options)
    return _column_like(values, positions)


@udf
def UNDIVERSIFIEDVAR(
    positions: Positions,
    model: Model,
    confidence: Confidence = None,
    horizon: Horizon = None,
    method: Method = None,
    mean: Mean = None,
    draws: Draws = None,
    dof: Dof = None,
    seed: Seed = None,
) -> float:
    """Sum of the individual VaRs: the VaR if the positions did not diversify each other."""
    model = resolve_model(model, "model")
    options = _options(method, mean, draws, dof, seed)
    return risk.undiversified_var(positions, model, confidence, horizon, **options)


@udf
def DIVERSIFICATION(
    positions: Positions,
    model: Model,
    confidence: Confidence = None,
    horizon: Horizon = None,
    method: Method = None,
    mean: Mean = None,
    draws: Draws = None,
    dof: Dof = None,
    seed: Seed = None,
) -> float:
    """Diversification benefit: undiversified VaR minus portfolio VaR, in currency."""
    model = resolve_model(model, "model")
    options = _options(method, mean, draws, dof, seed)
    return risk.diversification_benefit(positions, model, confidence, horizon, **options)


@udf
def INCREMENTALVAR(
    positions: Positions,
    model: Model,
    trade: Trade,
    confidence: Confidence = None,
    horizon: Horizon = None,
    method: Method = None,
    detail: Detail = None,
    mean: Mean = None,
    draws: Draws = None,
    dof: Dof = None,
    seed: Seed = None,
) -> Table:
    """Incremental VaR of a trade: VaR(positions + trade) - VaR(positions), computed exactly."""
    model = resolve_model(model, "model")
    show_detail = check_flag(detail, "detail")
    options = _options(method, mean, draws, dof, seed)
    result = risk.incremental_var(positions, model, trade, confidence, horizon, **options)
    if not show_detail:
        return [[result.exact]]
    return [
        ["VaR before", result.before],
        ["VaR after", result.after],
        ["Incremental VaR", result.exact],
        ["Marginal estimate", result.approximate],
    ]


@udf
def PORTES(
    positions: Positions,
    model: Model,
    confidence: Confidence = None,
    horizon: Horizon = None,
    method: Method = None,
    mean: Mean = None,
    draws: Draws = None,
    dof: Dof = None,
    seed: Seed = None,
) -> float:
    """Portfolio expected shortfall: the average loss beyond the VaR."""
    args = (positions, model, confidence, horizon, method, mean, draws, dof, seed)
    return _decompose("es", *args).total


@udf
def MARGINALES(
    positions: Positions,
    model: Model,
    confidence: Confidence = None,
    horizon: Horizon = None,
    method: Method = None,
    mean: Mean = None,
    draws: Draws = None,
    dof: Dof = None,
    seed: Seed = None,
) -> Vector:
    """Marginal ES of each position: change in portfolio ES per unit of currency added."""
    args = (positions, model, confidence, horizon, method, mean, draws, dof, seed)
    return _column_like(_decompose("es", *args).marginal, positions)


@udf
def COMPONENTES(
    positions: Positions,
    model: Model,
    confidence: Confidence = None,
    horizon: Horizon = None,
    method: Method = None,
    mean: Mean = None,
    draws: Draws = None,
    dof: Dof = None,
    seed: Seed = None,
) -> Vector:
    """Component ES of each position; sums to the portfolio ES."""
    args = (positions, model, confidence, horizon, method, mean, draws, dof, seed)
    return _column_like(_decompose("es", *args).component, positions)


@udf
def PORTVOL(positions: Positions, cov: Cov, horizon: Horizon = None) -> float:
    """Standard deviation of the book's P&L over the horizon, sqrt(x' S x) sqrt(horizon)."""
    cov = resolve_model(cov, "cov")
    return parametric.portfolio_sigma(positions, cov, horizon)


@udf
def COVFROMCORR(vols: Vols, corr: Corr) -> Vector:
    """Covariance matrix from volatilities and correlations: cov_ij = vol_i corr_ij vol_j."""
    return estimators.cov_from_corr(vols, corr)


@udf
def RISKREPORT(
    names: Names,
    positions: Positions,
    model: Model,
    confidence: Confidence = None,
    horizon: Horizon = None,
    method: Method = None,
    limit: Limit = None,
    mean: Mean = None,
    draws: Draws = None,
    dof: Dof = None,
    seed: Seed = None,
) -> Table:
    """Risk report table: position, individual, marginal and component VaR and % of VaR per asset."""
    model = resolve_model(model, "model")
    x = as_vector(positions, "positions")
    labels = _labels(names, x.size)
    options = _options(method, mean, draws, dof, seed)
    decomposition = risk.decompose(x, model, "var", confidence, horizon, **options)
    individual = risk.individual_var(x, model, confidence, horizon, **options)
    header = ["Asset", "Position", "Individual VaR", "Marginal VaR", "Component VaR", "% of VaR"]
    columns = [x, individual, decomposition.marginal, decomposition.component, decomposition.percent]
    total_pct = 1.0 if decomposition.total != 0 else 0.0
    total = ["Total", float(x.sum()), float(individual.sum()), "", decomposition.total, total_pct]
    if limit is not None:
        check = limits.var_limits(x, model, limit, confidence, horizon, **options)
        header += ["Limit", "Breach", "Trade to limit"]
        columns += [check.limit, _flags(check.breach), _blank_nan(check.trade)]
        total += ["", "BREACH" if check.breach.any() else "", ""]
    table = [header]
    for i, label in enumerate(labels):
        table.append([label, *(_cell(column[i]) for column in columns)])
    table.append(total)
    return table


def _labels(names, size: int) -> list[str]:
    """Asset names as text, one per position; a blank name gives a blank label."""
    arr = np.asarray(names, dtype=object)
    if arr.ndim == 2 and 1 not in arr.shape:  # read row by row, a block would misplace names
        raise ValueError(f"names: expected a single row or column, got {arr.shape[0]} rows x {arr.shape[1]} columns")
    flat = arr.reshape(-1) if arr.ndim else arr.reshape(1)
    if flat.size != size:
        raise ValueError(f"names: has {flat.size} cells but there are {size} positions; expected one name per position")
    return [_label(value, i) for i, value in enumerate(flat)]


def _label(value, i: int) -> str:
    """A name cell as text: blank -> "", TRUE -> "TRUE", 2.0 -> "2", text as it is."""
    if value is None:
        return ""
    if isinstance(value, float) and not np.isfinite(value):  # NaN from Python, never 'nan'
        raise ValueError(f"names: item {i + 1} holds {'NaN' if value != value else 'an infinite value'}; expected a name")
    if isinstance(value, (bool, np.bool_)):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _cell(value):
    """A table cell: numpy scalars as Python numbers, text and blanks as they are."""
    if isinstance(value, np.generic):
        return value.item()
    return value


def _blank_nan(values) -> list:
    """Numbers with NaN shown as a blank cell (xlwings writes None as empty)."""
    return ["" if np.isnan(v) else float(v) for v in np.asarray(values, dtype=float)]


def _flags(breach) -> list:
    return ["BREACH" if b else "" for b in np.asarray(breach, dtype=bool)]


# ------------------------------------------------------------------------------------------
# Risk from price history
# ------------------------------------------------------------------------------------------
@udf
def RETURNS(
    prices: Prices,
    method: _value(str, 'Return type: "simple" (default) or "log".') = "simple",
    missing: _value(str, 'Gaps: "error" (default) names the cell; "drop" drops incomplete rows.') = "error",
) -> Vector:
    """Returns from a price table (one row fewer): simple p_t/p_(t-1) - 1 or log ln(p_t/p_(t-1))."""
    return estimators.returns_from_prices(prices, method, missing)


@udf
def COVMATRIX(returns: Returns, method: CovMethod = "sample", lam: Lam = None) -> Vector:
    """Covariance matrix per period estimated from a returns table (sample, EWMA or Ledoit-Wolf)."""
    returns = resolve_model(returns, "returns")
    return estimators.covariance(returns, method, lam)


@udf
def CORRMATRIX(returns: Returns, method: CovMethod = "sample", lam: Lam = None) -> Vector:
    """Correlation matrix estimated from a returns table (sample, EWMA or Ledoit-Wolf)."""
    returns = resolve_model(returns, "returns")
    return estimators.correlation(returns, method, lam)


@udf
def NEARESTCORR(corr: Corr) -> Vector:
    """Nearest valid correlation matrix (Higham 2002) to a hand-typed one that is not positive semi-definite."""
    return estimators.nearest_corr(corr)


@udf
def MCSTDERR(
    positions: Positions,
    cov: Cov,
    confidence: Confidence = None,
    horizon: Horizon = None,
    measure: _value(str, 'Measure: "var" (default) or "es".') = "var",
    mean: Mean = None,
    draws: Draws = None,
    dof: Dof = None,
    seed: Seed = None,
) -> float:
    """Standard error of the Monte Carlo VaR (or ES) estimate with these draws."""
    cov = resolve_model(cov, "cov")
    options = {k: v for k, v in {"mean": mean, "draws": draws, "dof": dof, "seed": seed}.items() if v is not None}
    return simulation.standard_error(positions, cov, measure, confidence, horizon, **options)


# ------------------------------------------------------------------------------------------
# From risk numbers to decisions
# ------------------------------------------------------------------------------------------
@udf
def INCREMENTALES(
    positions: Positions,
    model: Model,
    trade: Trade,
    confidence: Confidence = None,
    horizon: Horizon = None,
    method: Method = None,
    detail: Detail = None,
    mean: Mean = None,
    draws: Draws = None,
    dof: Dof = None,
    seed: Seed = None,
) -> Table:
    """Incremental expected shortfall of a trade: ES(positions + trade) - ES(positions), exactly."""
    model = resolve_model(model, "model")
    show_detail = check_flag(detail, "detail")
    options = _options(method, mean, draws, dof, seed)
    result = risk.incremental_var(positions, model, trade, confidence, horizon, measure="es", **options)
    if not show_detail:
        return [[result.exact]]
    return [
        ["ES before", result.before],
        ["ES after", result.after],
        ["Incremental ES", result.exact],
        ["Marginal estimate", result.approximate],
    ]


@udf
def VARLIMITS(
    positions: Positions,
    model: Model,
    limit: Limit,
    confidence: Confidence = None,
    horizon: Horizon = None,
    method: Method = None,
    mean: Mean = None,
    draws: Draws = None,
    dof: Dof = None,
    seed: Seed = None,
) -> Table:
    """Each position's share of VaR against a limit, breaches flagged, and the trade back to the limit."""
    model = resolve_model(model, "model")
    options = _options(method, mean, draws, dof, seed)
    result = limits.var_limits(positions, model, limit, confidence, horizon, **options)
    table = [["% of VaR", "Limit", "Breach", "Trade to limit", "Position after", "VaR after", "Note"]]
    columns = [result.shares, result.limit, _flags(result.breach), _blank_nan(result.trade),
               _blank_nan(result.position_after), _blank_nan(result.var_after), list(result.reason)]
    for i in range(len(result.shares)):
        table.append([_cell(column[i]) for column in columns])
    return table


@udf
def NEWASSETMVAR(
    positions: Positions,
    cov_book: _range("Covariance matrix of the assets held, per period."),
    cov_with_book: _range("Covariance of the new asset with each asset of the book, one per position."),
    var_new: _value(float, "Variance (not VaR) of the new asset's return per period."),
    confidence: Confidence = None,
    horizon: Horizon = None,
) -> float:
    """Marginal VaR of an asset the book does not hold yet, from its covariance with the book."""
    cov_book = resolve_model(cov_book, "cov_book")
    # the argument names are the engine's, so that its messages name what the wizard shows
    return hedging.marginal_var_new_asset(positions, cov_book, cov_with_book, var_new, confidence, horizon)


@udf
def BESTHEDGE(positions: Positions, cov: Cov, confidence: Confidence = None, horizon: Horizon = None) -> Table:
    """For each asset, the trade in it alone that minimises VaR, the VaR after it and the reduction."""
    cov = resolve_model(cov, "cov")
    result = hedging.best_hedge(positions, cov, confidence, horizon)
    table = [["Best hedge trade", "Position after", "VaR after", "VaR reduction"]]
    for row in zip(result.trade, result.position_after, result.var_after, result.reduction_pct):
        table.append([float(v) for v in row])
    return table


@udf
def RETURNPERRISK(
    positions: Positions,
    model: Model,
    expected_returns: _range("Expected return per period of each asset, one per position."),
    confidence: Confidence = None,
    horizon: Horizon = None,
    method: Method = None,
    mean: Mean = None,
    draws: Draws = None,
    dof: Dof = None,
    seed: Seed = None,
) -> Table:
    """Expected return per unit of marginal VaR for each asset, ranked (1 = best use of risk)."""
    model = resolve_model(model, "model")
    options = _options(method, mean, draws, dof, seed)
    result = allocation.return_per_risk(positions, model, expected_returns, confidence, horizon, **options)
    table = [["Expected return", "Marginal VaR", "Return / marginal VaR", "Rank"]]
    for er, mvar, ratio, rank in zip(result.expected_return, result.marginal, result.ratio, result.rank):
        # a marginal VaR below zero reduces risk; one of zero (an empty book's) is only that
        shown = ("reduces risk" if mvar < 0.0 else "zero marginal VaR") if np.isinf(ratio) else ("" if np.isnan(ratio) else float(ratio))
        table.append([float(er), float(mvar), shown, int(rank)])
    return table


@udf
def RISKPARITY(
    cov: Cov,
    budgets: _range("Optional risk budget of each asset (normalised to sum to 1); default equal.") = None,
) -> Vector:
    """Long-only weights (summing to 1) whose component VaR shares equal the risk budgets."""
    cov = resolve_model(cov, "cov")
    result = allocation.risk_parity(cov, budgets)
    return _column_like(result.weights, budgets if budgets is not None else np.empty((len(result.weights), 1)))


@udf
def STRESSCORR(corr: Corr, theta: _value(float, "Stress weight in [0, 1]: 0 keeps corr, 1 makes every correlation 1.")) -> Vector:
    """Correlations pushed toward 1 as in a crisis: (1 - theta) corr + theta; stays a valid matrix."""
    return stress.stress_corr(corr, theta)


@udf
def VARBACKTEST(
    pnl: _range("Realised P&L per period (gains positive)."),
    var: _range("VaR forecast per period (positive losses), same length as pnl, or one number."),
    confidence: _value(float, "Confidence level the VaR was computed at, e.g. 99%."),
) -> Table:
    """Backtest of VaR forecasts: exceptions, Kupiec and Christoffersen tests, Basel traffic light."""
    r = backtest.var_backtest(pnl, var, confidence)
    return [
        ["Observations", r.observations],
        ["Exceptions", r.exceptions],
        ["Expected exceptions", r.expected_exceptions],
        ["Exception rate", r.exception_rate],
        ["Kupiec POF LR", r.pof_lr],
        ["Kupiec p-value", r.pof_pvalue],
        ["Christoffersen independence LR", r.ind_lr],
        ["Independence p-value", r.ind_pvalue],
        ["Conditional coverage LR", r.cc_lr],
        ["Conditional coverage p-value", r.cc_pvalue],
        ["Basel zone", r.zone],
        ["Basel plus factor", r.plus_factor],
    ]
