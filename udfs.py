"""xlmvar's Excel functions: one thin xlwings UDF per formula.

Each function converts its arguments, calls the engine (:mod:`xlmvar`) and shapes the
result; all maths and all argument checks live in the engine.  Argument conversions are
declared as ``typing.Annotated`` hints in the signatures, which xlwings reads on every
platform (the ``@xw.arg`` decorators are no-ops outside Windows and macOS), and the
``doc`` entries are the help Excel's function wizard shows.

Conventions (see README): positions are signed currency exposures; VaR and ES are positive
losses in the same units; ``confidence`` is a probability (95% or 0.95); ``horizon`` is a
whole number of periods of the risk model; a vector result comes back in the orientation
of the ``positions`` range.  Every function can also be called from Python with lists or
numpy arrays.
"""

from __future__ import annotations

from typing import Annotated

import numpy as np
import xlwings as xw

import xlmvar
from xlmvar import risk
from xlmvar._validation import as_vector, check_horizon

#: The category under which Excel's function wizard lists every xlmvar function.
CATEGORY = "xlmvar"


def _range(doc: str):
    """A range argument: arrives as a 2-D numpy array (object dtype if it holds blanks or text)."""
    return Annotated[np.ndarray, {"ndim": 2, "doc": doc}]


def _value(kind, doc: str):
    return Annotated[kind, {"doc": doc}]


Positions = _range("Signed positions in currency (negative = short): one row or one column.")
Model = _range(
    "Covariance matrix per period (methods normal, montecarlo) or a returns table, "
    "rows = periods, columns = assets (historical, cornish-fisher)."
)
Cov = _range("Covariance matrix of the asset returns, per period.")
Trade = _range("Prospective trade: signed change in each position, same shape as positions.")
Names = _range("Asset names, one per position.")
Confidence = _value(float, "Confidence level as a probability: 95% or 0.95 (default 95%).")
Horizon = _value(float, "Horizon in periods of the risk model (days for daily data); default 1.")
Method = _value(
    str, 'Method: "normal" (default), "historical", "cornish-fisher" (or "modified"), "montecarlo".'
)
Mean = _range("Optional expected return per period of each asset (normal, montecarlo).")
Draws = _value(float, "Monte Carlo: number of draws (default 100,000).")
Dof = _value(float, "Monte Carlo: Student-t degrees of freedom (> 2); blank = normal draws.")
Seed = _value(float, "Monte Carlo: random seed (default fixed, so the sheet recalculates alike).")
Detail = _value(bool, "TRUE spills before / after / exact / marginal estimate; default FALSE.")
Vols = _range("Volatility of each asset per period, one row or one column.")
Corr = _range("Correlation matrix, one row and one column per asset.")
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
    return risk.decompose(
        positions, model, measure, confidence, horizon, **_options(method, mean, draws, dof, seed)
    )


@xw.func(category=CATEGORY)
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


@xw.func(category=CATEGORY)
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


@xw.func(category=CATEGORY)
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


@xw.func(category=CATEGORY)
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


@xw.func(category=CATEGORY)
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
    options = _options(method, mean, draws, dof, seed)
    values = risk.individual_var(positions, model, confidence, horizon, **options)
    return _column_like(values, positions)


@xw.func(category=CATEGORY)
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
    options = _options(method, mean, draws, dof, seed)
    return risk.undiversified_var(positions, model, confidence, horizon, **options)


@xw.func(category=CATEGORY)
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
    options = _options(method, mean, draws, dof, seed)
    return risk.diversification_benefit(positions, model, confidence, horizon, **options)


@xw.func(category=CATEGORY)
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
    options = _options(method, mean, draws, dof, seed)
    result = risk.incremental_var(positions, model, trade, confidence, horizon, **options)
    if not detail:
        return [[result.exact]]
    return [
        ["VaR before", result.before],
        ["VaR after", result.after],
        ["Incremental VaR", result.exact],
        ["Marginal estimate", result.approximate],
    ]


@xw.func(category=CATEGORY)
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


@xw.func(category=CATEGORY)
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


@xw.func(category=CATEGORY)
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


@xw.func(category=CATEGORY)
def PORTVOL(positions: Positions, cov: Cov, horizon: Horizon = None) -> float:
    """Standard deviation of the book's P&L over the horizon, sqrt(x' S x) sqrt(horizon)."""
    return xlmvar.portfolio_sigma(positions, cov) * np.sqrt(check_horizon(horizon))


@xw.func(category=CATEGORY)
def COVFROMCORR(vols: Vols, corr: Corr) -> Vector:
    """Covariance matrix from volatilities and correlations: cov_ij = vol_i corr_ij vol_j."""
    return xlmvar.cov_from_corr(vols, corr)


@xw.func(category=CATEGORY)
def RISKREPORT(
    names: Names,
    positions: Positions,
    model: Model,
    confidence: Confidence = None,
    horizon: Horizon = None,
    method: Method = None,
    mean: Mean = None,
    draws: Draws = None,
    dof: Dof = None,
    seed: Seed = None,
) -> Table:
    """Risk report table: position, individual, marginal and component VaR and % of VaR per asset."""
    x = as_vector(positions, "positions")
    labels = _labels(names, x.size)
    options = _options(method, mean, draws, dof, seed)
    decomposition = risk.decompose(x, model, "var", confidence, horizon, **options)
    individual = risk.individual_var(x, model, confidence, horizon, **options)
    table = [["Asset", "Position", "Individual VaR", "Marginal VaR", "Component VaR", "% of VaR"]]
    for row in zip(labels, x, individual, decomposition.marginal, decomposition.component, decomposition.percent):
        table.append([row[0], *(float(v) for v in row[1:])])
    total_pct = 1.0 if decomposition.total != 0 else 0.0
    table.append(["Total", float(x.sum()), float(individual.sum()), "", decomposition.total, total_pct])
    return table


def _labels(names, size: int) -> list[str]:
    """Asset names as text; blanks are refused so that every report row is labelled."""
    arr = np.asarray(names, dtype=object)
    flat = arr.reshape(-1) if arr.ndim else arr.reshape(1)
    if flat.size != size:
        raise ValueError(f"names: has {flat.size} cells but there are {size} positions; expected one name per position")
    labels = []
    for i, value in enumerate(flat):
        if value is None or (isinstance(value, str) and not value.strip()):
            raise ValueError(f"names: item {i + 1} is blank; expected a name for every position")
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        labels.append(str(value))
    return labels
