"""xlmvar: portfolio Value at Risk and its decomposition, for spreadsheets and scripts.

The engine is pure numpy/scipy.  Positions are signed currency exposures; VaR and ES are
positive losses in the same units.  ``import xlmvar`` never imports xlwings.
"""

from ._decomposition import Decomposition
from .covariance import corr_from_cov, cov_from_corr
from .parametric import portfolio_sigma, tail_multiplier
from .risk import (
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

__version__ = "0.1.0"

__all__ = [
    "Decomposition",
    "IncrementalRisk",
    "METHODS",
    "check_method",
    "component_es",
    "component_es_pct",
    "component_var",
    "component_var_pct",
    "corr_from_cov",
    "cov_from_corr",
    "decompose",
    "diversification_benefit",
    "incremental_var",
    "individual_es",
    "individual_var",
    "marginal_es",
    "marginal_var",
    "portfolio_es",
    "portfolio_sigma",
    "portfolio_var",
    "standalone",
    "tail_multiplier",
    "undiversified_var",
]
