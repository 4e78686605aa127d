"""One entry point for every risk measure and method.

The method modules share one interface::

    decompose(positions, model, measure, confidence, horizon, **options) -> Decomposition
    standalone(positions, model, measure, confidence, horizon, **options) -> ndarray

where ``model`` is a covariance matrix for ``"normal"`` and ``"montecarlo"`` and a returns
table (rows = periods, columns = assets) for ``"historical"`` and ``"cornish-fisher"``, and a
P&L table in currency (rows = scenarios, columns = positions) for ``"pnl"`` (full
revaluation; the positions scale its columns, 1 = as held).
The functions here add the vocabulary of a risk report on top: portfolio, marginal,
component, percent, individual and incremental figures, and the diversification benefit.
"""

from __future__ import annotations

import math

import importlib
from dataclasses import dataclass

import numpy as np

from ._cache import memoize
from ._decomposition import Decomposition
from ._validation import as_vector, check_finite_result, describe

__all__ = [
    "METHODS",
    "check_method",
    "decompose",
    "standalone",
    "portfolio_var",
    "marginal_var",
    "component_var",
    "component_var_pct",
    "individual_var",
    "undiversified_var",
    "diversification_benefit",
    "incremental_var",
    "IncrementalRisk",
    "portfolio_es",
    "marginal_es",
    "component_es",
    "component_es_pct",
    "individual_es",
]

#: Canonical method names and the module that implements each.
METHODS = {
    "normal": "xlmvar.engine.parametric",
    "historical": "xlmvar.engine.historical",
    "cornish-fisher": "xlmvar.engine.modified",
    "montecarlo": "xlmvar.engine.simulation",
    "pnl": "xlmvar.engine.pnl",
}

_ALIASES = {
    "parametric": "normal",
    "delta-normal": "normal",
    "gaussian": "normal",
    "variance-covariance": "normal",
    "hist": "historical",
    "historic": "historical",
    "modified": "cornish-fisher",
    "cornishfisher": "cornish-fisher",
    "cornish fisher": "cornish-fisher",
    "cf": "cornish-fisher",
    "monte-carlo": "montecarlo",
    "monte carlo": "montecarlo",
    "mc": "montecarlo",
    "simulation": "montecarlo",
    "p&l": "pnl",
    "full-revaluation": "pnl",
    "full revaluation": "pnl",
    "revaluation": "pnl",
}


def check_method(method) -> str:
    """Return the canonical method name; an unknown name lists the valid ones."""
    if method is None:
        return "normal"
    if not isinstance(method, str):
        raise ValueError(f"method: got {describe(method)}; expected one of {', '.join(METHODS)}")
    name = method.strip().lower().replace("_", "-")
    if name == "":
        return "normal"
    name = _ALIASES.get(name, name)
    if name not in METHODS:
        raise ValueError(
            f"method: unknown method {method!r}; expected one of {', '.join(METHODS)} "
            "(or the alias 'modified' for cornish-fisher)"
        )
    return name


def _module(method):
    # import_module, not a read of sys.modules: a module is there from the start of its
    # import, so a second thread would get it half built
    return importlib.import_module(METHODS[check_method(method)])


def _pays_to_cache(positions, model, measure="var", confidence=0.95, horizon=1, method="normal", **options) -> bool:
    """Only Monte Carlo results are cached: a hit costs a pass over the covariance, a miss a
    pass over the scenario table (draws x assets).  For the other methods the result costs
    one or two passes over the model, no more than verifying a hit would (their expensive
    part, the covariance's validation, is cached by :func:`~._validation.check_covariance`)."""
    try:
        return check_method(method) == "montecarlo"
    except ValueError:
        return False


@memoize(when=_pays_to_cache)
def decompose(positions, model, measure="var", confidence=0.95, horizon=1, method="normal", **options) -> Decomposition:
    """VaR or ES of a book by any method, with marginal and component figures.

    Parameters
    ----------
    positions : array_like, shape (n,)
        Signed exposures in currency.
    model : array_like
        Covariance matrix (n, n) for ``"normal"`` and ``"montecarlo"``; returns table
        (T, n) for ``"historical"`` and ``"cornish-fisher"``; a P&L table in currency
        (T scenarios, n positions; positions then scale its columns) for ``"pnl"``.
    measure : {"var", "es"}
    confidence : float in [0.5, 1), default 0.95
    horizon : int >= 1, default 1
    method : {"normal", "historical", "cornish-fisher", "montecarlo", "pnl"}
        Aliases such as ``"modified"`` are accepted.
    **options
        Passed to the method (e.g. ``mean`` for normal, ``draws``/``seed``/``dof`` for
        Monte Carlo).

    Monte Carlo results are cached on the content of the arguments (see
    :mod:`xlmvar.engine._cache`), so the many functions of a sheet that decompose the same
    book share one simulation and one pass over it; for every method the covariance is
    validated and factorised once per distinct matrix.  Each method runs small calls on one
    BLAS thread (:mod:`xlmvar.engine._threads`).
    """
    result = _module(method).decompose(positions, model, measure, confidence, horizon, **options)
    _check_finite(measure, method, result.total, result.marginal, result.component, total=result.total)
    return result


#: The least normal float: a total below it (and not 0) has lost relative precision.
_TINY = float(np.finfo(float).tiny)


def _check_finite(measure, method, *values, total=None) -> None:
    """Refuse a result that overflowed or underflowed to inf or NaN, or a total (a VaR, or
    each position's VaR) that is a subnormal number (below 2.2e-308, with fewer significant
    bits than a float: its % of VaR would be imprecise): never show it silently."""
    if isinstance(total, float):  # a decomposition's total: Python's float tests, no numpy call
        subnormal = 0.0 < abs(total) < _TINY
    else:
        size = None if total is None else np.abs(total)
        subnormal = size is not None and bool(np.any((size > 0.0) & (size < _TINY)))
    finite = all(math.isfinite(v) if isinstance(v, float) else bool(np.isfinite(v).all()) for v in values)
    if finite and not subnormal:
        return
    what = "ES" if str(measure).strip().lower() == "es" else "VaR"
    # a subnormal total is refused as an underflow, with the same message
    check_finite_result("positions", f"the {check_method(method)} {what} of these positions with this model",
                        *values, np.nan if subnormal else 0.0)


@memoize(when=_pays_to_cache)
def standalone(positions, model, measure="var", confidence=0.95, horizon=1, method="normal", **options) -> np.ndarray:
    """Each position's VaR or ES on its own (individual VaR)."""
    result = _module(method).standalone(positions, model, measure, confidence, horizon, **options)
    _check_finite(measure, method, result, total=result)
    return result


def portfolio_var(positions, model, confidence=0.95, horizon=1, method="normal", **options) -> float:
    """Portfolio VaR, a positive loss in the units of ``positions``."""
    return decompose(positions, model, "var", confidence, horizon, method, **options).total


def marginal_var(positions, model, confidence=0.95, horizon=1, method="normal", **options) -> np.ndarray:
    """Marginal VaR, ``dVaR/dx_i`` per unit of currency."""
    return decompose(positions, model, "var", confidence, horizon, method, **options).marginal


def component_var(positions, model, confidence=0.95, horizon=1, method="normal", **options) -> np.ndarray:
    """Component VaR, ``x_i dVaR/dx_i``; sums to the portfolio VaR."""
    return decompose(positions, model, "var", confidence, horizon, method, **options).component


def component_var_pct(positions, model, confidence=0.95, horizon=1, method="normal", **options) -> np.ndarray:
    """Component VaR as a share of portfolio VaR; sums to 1 (zeros for a zero-risk book)."""
    return decompose(positions, model, "var", confidence, horizon, method, **options).percent


def individual_var(positions, model, confidence=0.95, horizon=1, method="normal", **options) -> np.ndarray:
    """Standalone VaR of each position, as if it were held alone."""
    return standalone(positions, model, "var", confidence, horizon, method, **options)


def undiversified_var(positions, model, confidence=0.95, horizon=1, method="normal", **options) -> float:
    """Sum of the individual VaRs: the VaR if nothing diversified anything."""
    with np.errstate(over="ignore"):  # refused just below
        total = float(np.sum(individual_var(positions, model, confidence, horizon, method, **options)))
    check_finite_result("positions", "the sum of the individual VaRs of these positions", total)
    return total


def diversification_benefit(positions, model, confidence=0.95, horizon=1, method="normal", **options) -> float:
    """Undiversified VaR minus portfolio VaR (non-negative for a subadditive measure)."""
    args = (positions, model, confidence, horizon, method)
    return undiversified_var(*args, **options) - portfolio_var(*args, **options)


@dataclass(frozen=True)
class IncrementalRisk:
    """Effect of a trade on a risk measure.

    ``exact = after - before``; ``approximate = marginal . trade`` is the first-order
    estimate from the current book's marginal figures.
    """

    before: float
    after: float
    exact: float
    approximate: float


def incremental_var(positions, model, trade, confidence=0.95, horizon=1, method="normal", measure="var", **options) -> IncrementalRisk:
    """Incremental VaR (or ES) of ``trade``: ``VaR(x + trade) - VaR(x)``, with ``MVaR . trade``.

    Parameters
    ----------
    trade : array_like, shape (n,)
        Signed change in each position, in currency.
    """
    x = as_vector(positions, "positions")
    t = as_vector(trade, "trade", x.size)
    now = decompose(x, model, measure, confidence, horizon, method, **options)
    after = decompose(x + t, model, measure, confidence, horizon, method, **options).total
    with np.errstate(over="ignore", invalid="ignore"):  # refused just below
        exact, approximate = after - now.total, float(now.marginal @ t)
    check_finite_result("trade", "the incremental VaR of this trade", exact, approximate)
    return IncrementalRisk(now.total, after, exact, approximate)


def portfolio_es(positions, model, confidence=0.95, horizon=1, method="normal", **options) -> float:
    """Portfolio expected shortfall, a positive loss."""
    return decompose(positions, model, "es", confidence, horizon, method, **options).total


def marginal_es(positions, model, confidence=0.95, horizon=1, method="normal", **options) -> np.ndarray:
    """Marginal ES, ``dES/dx_i``."""
    return decompose(positions, model, "es", confidence, horizon, method, **options).marginal


def component_es(positions, model, confidence=0.95, horizon=1, method="normal", **options) -> np.ndarray:
    """Component ES; sums to the portfolio ES."""
    return decompose(positions, model, "es", confidence, horizon, method, **options).component


def component_es_pct(positions, model, confidence=0.95, horizon=1, method="normal", **options) -> np.ndarray:
    """Component ES as a share of portfolio ES."""
    return decompose(positions, model, "es", confidence, horizon, method, **options).percent


def individual_es(positions, model, confidence=0.95, horizon=1, method="normal", **options) -> np.ndarray:
    """Standalone ES of each position."""
    return standalone(positions, model, "es", confidence, horizon, method, **options)
