"""Excel functions beyond the position-level report: risk by group and by factor, scenario
P&L, rolling out-of-sample VaR.

Same conventions as :mod:`xlmvar.excel.functions` (whose argument hints and helpers are
used here): each function converts its cells, calls one engine function and shapes the
result; tables come back as rows with a header row; every check and every number is the
engine's.

=================  ==================================================================
GROUPVAR/GROUPES   :func:`xlmvar.engine.groups.group_risk`
FACTORLOADINGS     :func:`xlmvar.engine.factors.factor_loadings`
FACTORCOV          :func:`xlmvar.engine.factors.factor_cov`
FACTORVAR          :func:`xlmvar.engine.factors.factor_var`
STRESSPNL          :func:`xlmvar.engine.scenarios.stress_pnl`
WORSTDAYS          :func:`xlmvar.engine.scenarios.worst_days`
ROLLINGVAR         :func:`xlmvar.engine.rolling.rolling_var`
=================  ==================================================================
"""

from __future__ import annotations

from ..engine import factors, rolling, scenarios
from ..engine import groups as grouping
from ..engine.groups import check_labels
from .convert import udf
from .functions import (
    Method,
    Model,
    Confidence,
    Dof,
    Draws,
    Horizon,
    Mean,
    Positions,
    Returns,
    Seed,
    Table,
    Vector,
    _cell,
    _options,
    _range,
    _value,
)
from .handles import resolve_model

Groups = _range("Group label of each position (desk, asset class, sector): one per position.")
FactorReturns = _range("Factor returns: rows = the same periods as returns, columns = factors.")
Loadings = _range("Factor loadings (betas): one row per asset, one column per factor.")
FactorCov = _range("Covariance matrix of the factor returns, per period.")
SpecificVar = _range("Specific (residual) variance of each asset per period, one per asset.")


def _group_table(measure, positions, model, group_labels, confidence, horizon, method, mean, draws, dof, seed):
    options = _options(method, mean, draws, dof, seed)
    model = resolve_model(model, "model")
    result = grouping.group_risk(positions, model, group_labels, measure, confidence, horizon, **options)
    what = "VaR" if measure == "var" else "ES"
    table = [["Group", f"Standalone {what}", f"Component {what}", f"% of {what}", "Diversification benefit"]]
    for row in zip(result.labels, result.standalone, result.component, result.share, result.diversification):
        table.append([row[0], *(float(v) for v in row[1:])])
    table.append([  # the whole book's standalone figure is its own; its benefit the groups' sum
        "Total",
        float(result.total),
        float(result.total),
        1.0 if result.total != 0.0 else 0.0,
        float(result.diversification.sum()),
    ])
    return table


@udf
def GROUPVAR(
    positions: Positions,
    model: Model,
    groups: Groups,
    confidence: Confidence = None,
    horizon: Horizon = None,
    method: Method = None,
    mean: Mean = None,
    draws: Draws = None,
    dof: Dof = None,
    seed: Seed = None,
) -> Table:
    """VaR by group: standalone VaR of each group's sub-book, its component VaR (rows sum to the VaR), share and diversification."""
    return _group_table("var", positions, model, groups, confidence, horizon, method, mean, draws, dof, seed)


@udf
def GROUPES(
    positions: Positions,
    model: Model,
    groups: Groups,
    confidence: Confidence = None,
    horizon: Horizon = None,
    method: Method = None,
    mean: Mean = None,
    draws: Draws = None,
    dof: Dof = None,
    seed: Seed = None,
) -> Table:
    """Expected shortfall by group: standalone ES of each group, its component ES (rows sum to the ES), share and diversification."""
    return _group_table("es", positions, model, groups, confidence, horizon, method, mean, draws, dof, seed)


@udf
def FACTORLOADINGS(returns: Returns, factor_returns: FactorReturns) -> Table:
    """Least-squares betas of each asset on the factors (with an intercept), specific variance and R^2; one row per asset."""
    returns, factor_returns = resolve_model(returns, "returns"), resolve_model(factor_returns, "factor_returns")
    fit = factors.factor_loadings(returns, factor_returns)
    k = fit.loadings.shape[1]
    table = [[*(f"Beta {j + 1}" for j in range(k)), "Intercept", "Specific variance", "R^2"]]
    for betas, alpha, spec, r2 in zip(fit.loadings, fit.intercept, fit.specific_var, fit.r_squared):
        table.append([*(float(b) for b in betas), float(alpha), float(spec), float(r2)])
    return table


@udf
def FACTORCOV(loadings: Loadings, factor_cov: FactorCov, specific_var: SpecificVar) -> Vector:
    """Asset covariance implied by a factor model: loadings x factor_cov x loadings' + diag(specific_var)."""
    return factors.factor_cov(loadings, resolve_model(factor_cov, "factor_cov"), specific_var)


@udf
def FACTORVAR(
    positions: Positions,
    loadings: Loadings,
    factor_cov: FactorCov,
    specific_var: SpecificVar,
    confidence: Confidence = None,
    horizon: Horizon = None,
    names: _range("Optional factor names, one per column of loadings.") = None,
) -> Table:
    """Delta-normal VaR split into one component per factor plus specific risk (rows sum to the VaR), with the book's factor exposures."""
    factor_cov = resolve_model(factor_cov, "factor_cov")
    result = factors.factor_var(positions, loadings, factor_cov, specific_var, confidence, horizon)
    k = result.exposures.size
    labels = [f"Factor {j + 1}" for j in range(k)] if names is None else check_labels(names, k, "names", "factor")
    share = result.percent
    table = [["Factor", "Exposure", "Marginal VaR", "Component VaR", "% of VaR"]]
    for j, label in enumerate(labels):
        table.append([label, float(result.exposures[j]), float(result.marginal[j]), float(result.component[j]), float(share[j])])
    table.append(["Specific", "", "", result.specific, float(share[-1])])
    table.append(["Total", "", "", result.total, 1.0 if result.total != 0.0 else 0.0])
    return table


@udf
def STRESSPNL(
    positions: Positions,
    shocks: _range("Shock table: one row per scenario, the return of each asset in it (e.g. -20%)."),
    names: _range("Optional scenario names, one per row of shocks.") = None,
) -> Table:
    """P&L of the book under each named shock (gains positive), largest loss first."""
    result = scenarios.stress_pnl(positions, shocks, names)
    return [["Scenario", "P&L"], *([_cell(label), float(p)] for label, p in zip(result.labels, result.pnl))]


@udf
def WORSTDAYS(
    positions: Positions,
    returns: Returns,
    dates: _range("Optional date (or label) of each row of returns.") = None,
    k: _value(float, "How many days (default 10).") = None,
) -> Table:
    """The k worst days of the history for the book: date, P&L and each position's part of it."""
    result = scenarios.worst_days(positions, resolve_model(returns, "returns"), dates, k)
    n = result.parts.shape[1]
    table = [["Date", "P&L", *(f"Position {i + 1}" for i in range(n))]]
    for label, p, parts in zip(result.labels, result.pnl, result.parts):
        table.append([_cell(label), float(p), *(float(v) for v in parts)])
    return table


@udf
def ROLLINGVAR(
    positions: Positions,
    returns: Returns,
    window: _value(float, "Periods in each estimation window, e.g. 250."),
    confidence: Confidence = None,
    method: _value(str, 'Method: "historical" (default), "normal", "cornish-fisher", or "pnl" (returns is then a P&L table).') = None,
    dates: _range("Optional date (or label) of each row of returns.") = None,
) -> Table:
    """Out-of-sample VaR forecast for each period after the first window (from the periods before it only) beside the realised P&L."""
    result = rolling.rolling_var(positions, resolve_model(returns, "returns"), window, confidence, method)
    total = result.rows[-1] + 1
    labels = [r + 1 for r in range(total)] if dates is None else scenarios.row_labels(dates, total, "dates", "Row")
    table = [["Period" if dates is None else "Date", "VaR", "P&L"]]
    for row, var, pnl in zip(result.rows, result.var, result.pnl):
        table.append([_cell(labels[row]), float(var), float(pnl)])
    return table
