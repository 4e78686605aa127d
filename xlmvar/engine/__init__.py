"""The engine: portfolio VaR and ES, their decompositions, estimators and decisions.

Pure numpy and scipy; it imports nothing else of xlmvar's and knows nothing of Excel, of
workbooks or of xlwings.  Everything ``import xlmvar`` offers comes from here.

Modules
-------
parametric, historical, modified, simulation
    One module per method (delta-normal, historical simulation, Cornish-Fisher, Monte
    Carlo), each with a ``decompose`` of the same signature.
risk
    The dispatcher :func:`~xlmvar.engine.risk.decompose` and the per-measure functions.
covariance
    Returns from prices, covariance estimators, correlation repair.
limits, hedging, allocation, stress
    Decisions from a decomposition: limits and the trade back, best hedges and new assets,
    return per risk and risk parity, correlation stress.
backtest
    VaR backtests (Kupiec, Christoffersen, Basel zones).
_validation, _cache, _decomposition, _threads
    Argument checks (messages a spreadsheet user reads), the content-keyed cache, the
    result type, BLAS threads chosen by problem size (threadpoolctl, optional).
"""
