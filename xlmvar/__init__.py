"""xlmvar: portfolio Value at Risk and its decomposition, for spreadsheets and scripts.

``import xlmvar`` offers the engine (:mod:`xlmvar.engine`, numpy and scipy only): it never
imports xlwings nor the workbook layer.  Positions are signed currency exposures; VaR and ES
are positive losses in the same units.

Layers, each a folder, imports only downward:

=================  ===================  ==========================================
layer              folder               may import
=================  ===================  ==========================================
engine             ``xlmvar.engine``    numpy, scipy
Excel adapter      ``xlmvar.excel``     the engine, xlwings (optional)
workbook           ``xlmvar.workbook``  the adapter, the engine, formulas, lxml, ...
command line       ``xlmvar.cli``       every layer above
=================  ===================  ==========================================
"""

from .engine._cache import cache_info, clear_caches
from .engine._threads import rest_blas_on_one_thread
from .engine._decomposition import Decomposition
from .engine.backtest import VarBacktest, basel_plus_factor, basel_zone, christoffersen_independence, kupiec_pof, var_backtest
from .engine.covariance import (
    COV_METHODS,
    corr_from_cov,
    cov_from_corr,
    ewma_cov,
    ledoit_wolf_cov,
    ledoit_wolf_shrinkage,
    nearest_corr,
    returns_from_prices,
    sample_cov,
)
from .engine.allocation import ReturnPerRisk, RiskParity, return_per_risk, risk_parity
from .engine.hedging import BestHedge, best_hedge, marginal_var_new_asset
from .engine.limits import VarLimits, var_limits
from .engine.stress import StressedRisk, stress_corr, stressed_decomposition
from .engine.parametric import portfolio_sigma, tail_multiplier
from .engine.risk import (
    METHODS,
    IncrementalRisk,
    check_method,
    component_es,
    component_es_pct,
    component_var,
    component_var_pct,
    decompose,
    diversification_benefit,
    incremental_var,
    individual_es,
    individual_var,
    marginal_es,
    marginal_var,
    portfolio_es,
    portfolio_var,
    standalone,
    undiversified_var,
)
from .engine.simulation import simulate_returns, standard_error, var_standard_error

__version__ = "0.1.0"

__all__ = [
    "basel_plus_factor",
    "basel_zone",
    "best_hedge",
    "BestHedge",
    "cache_info",
    "check_method",
    "christoffersen_independence",
    "clear_caches",
    "component_es",
    "component_es_pct",
    "component_var",
    "component_var_pct",
    "corr_from_cov",
    "cov_from_corr",
    "COV_METHODS",
    "decompose",
    "Decomposition",
    "diversification_benefit",
    "ewma_cov",
    "incremental_var",
    "IncrementalRisk",
    "individual_es",
    "individual_var",
    "kupiec_pof",
    "ledoit_wolf_cov",
    "ledoit_wolf_shrinkage",
    "marginal_es",
    "marginal_var",
    "marginal_var_new_asset",
    "METHODS",
    "nearest_corr",
    "portfolio_es",
    "portfolio_sigma",
    "portfolio_var",
    "rest_blas_on_one_thread",
    "return_per_risk",
    "ReturnPerRisk",
    "returns_from_prices",
    "risk_parity",
    "RiskParity",
    "sample_cov",
    "simulate_returns",
    "standalone",
    "standard_error",
    "stress_corr",
    "stressed_decomposition",
    "StressedRisk",
    "tail_multiplier",
    "undiversified_var",
    "var_backtest",
    "var_limits",
    "var_standard_error",
    "VarBacktest",
    "VarLimits",
]
