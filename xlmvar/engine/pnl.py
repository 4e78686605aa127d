"""Full-revaluation VaR and expected shortfall from a P&L table, and their Euler decomposition.

A desk's pricing system revalues each position (an option, a structured note, a bond) under
each scenario and hands over a table of P&L in currency: rows = scenarios, columns =
positions.  Method ``"pnl"`` takes that table as the model.  ``positions`` are scale
factors on its columns - 1 is the position as held, 0.5 half of it, -1 the opposite trade -
so with scales ``x`` and table ``P`` (``T`` scenarios x ``n`` positions)::

    book P&L  p_t = sum_i x_i P_ti = (P x)_t                 (currency)
    VaR       = -Q_a(p) sqrt(h)
    ES        = -mean{ p_t : p_t < Q_a(p) } sqrt(h)
    marginal  = dRisk/dx_i  (currency per unit of scale)
    component = x_i marginal_i   (currency; sums exactly to the total)

This is historical simulation with the P&L table in place of the returns table (the P&L is
linear in the scales, as it is in the exposures there), so every rule is the one of
:mod:`xlmvar.engine.historical`, which does the computation: the explicit quantile rule
(default numpy ``"linear"``, R's type 7), the kernel-smoothed Euler decomposition of VaR
(default) or the exact scenario one, the exact tail decomposition of ES, the flat-book cases
and the square-root-of-time horizon.  With ``x = 1`` the components are each position's
contribution in currency and the marginal figures the change in VaR per extra unit of the
position as held.

Only the checks differ: the table is called ``pnl`` in messages, it needs one column per
position, and a covariance matrix typed where the P&L table belongs is refused.
"""

from __future__ import annotations

import numpy as np

from . import historical
from ._decomposition import Decomposition
from ._threads import model_work, sized_blas
from ._validation import as_vector, check_confidence, check_horizon, check_options, check_returns
from .parametric import check_measure

__all__ = ["unit_table", "check_pnl", "decompose", "standalone"]

_OPTIONS = ("smoothing", "quantile_method")


def check_pnl(positions, pnl, measure="var", confidence=0.95):
    """Validate scales and a P&L table; return them as a float vector and a float table.

    The table must have one column per position and enough scenarios for the measure
    (``ceil(1 / (1 - confidence))``, as historical VaR and ES: 20 at 95%); a symmetric square
    table with a positive diagonal (a covariance matrix in the wrong place) is refused.  The
    values are currency, so the return-level checks of a history (percentages, prices) do
    not apply.
    """
    x = as_vector(positions, "positions")
    table = check_returns(pnl, x.size, name="pnl", min_rows=1)
    n = table.shape[1]
    if n >= 2 and table.shape[0] == n and np.all(np.diag(table) > 0.0):
        if np.max(np.abs(table - table.T)) <= 1e-12 * np.max(np.abs(table)):
            raise ValueError(
                f"pnl: is a symmetric {n} x {n} table with a positive diagonal, which looks like a "
                "covariance matrix; the pnl method needs a P&L table in currency (rows = scenarios, "
                'columns = positions); for a covariance use method "normal" or "montecarlo"'
            )
    measure, confidence = check_measure(measure), check_confidence(confidence)
    needed = historical.rows_needed(confidence)
    if table.shape[0] < needed:
        what = "ES" if measure == "es" else "VaR"
        raise ValueError(
            f"pnl: has {table.shape[0]} rows; a {confidence * 100:g}% {what} (1 / (1 - confidence)) "
            f"needs at least {needed} scenarios (one per row)"
        )
    return x, table, measure, confidence


@sized_blas(model_work)
def decompose(
    positions,
    pnl,
    measure="var",
    confidence=0.95,
    horizon=1,
    *,
    smoothing="kernel",
    quantile_method="linear",
    **options,
) -> Decomposition:
    """VaR or ES of a book revalued in full, and its Euler decomposition.

    ``VaR = -Q_a(P x) sqrt(h)``, ``ES = -mean{(P x)_t < Q_a} sqrt(h)``; marginal and component
    figures by the rules of :func:`xlmvar.engine.historical.decompose` (kernel-smoothed for
    VaR by default, exact over the tail for ES), summing exactly to the total.

    Parameters
    ----------
    positions : array_like, shape (n,)
        Scale of each column of ``pnl`` (1 = as held, 0 = not held, negative = reversed).
    pnl : array_like, shape (T, n)
        P&L in currency of each position as held, rows = scenarios, columns = positions.
    measure : {"var", "es"}
    confidence : float in (0, 1), default 0.95
    horizon : int >= 1, default 1
        Periods of the scenarios; the one-period figures are scaled by ``sqrt(horizon)``.
    smoothing : {"kernel", "scenario"}, default "kernel"
    quantile_method : str, default "linear"
        Any :func:`numpy.quantile` method (``"linear"`` is R's type 7).

    Returns
    -------
    Decomposition
        ``total`` (a positive loss in currency), ``marginal`` (currency per unit of scale) and
        ``component`` (currency, summing to ``total``).
    """
    check_options(options, "pnl", _OPTIONS)
    x, table, measure, confidence = check_pnl(positions, pnl, measure, confidence)
    return historical.decompose_scenarios(
        x, table, measure, confidence, check_horizon(horizon), smoothing=smoothing, quantile_method=quantile_method
    )


@sized_blas(model_work)
def standalone(
    positions,
    pnl,
    measure="var",
    confidence=0.95,
    horizon=1,
    *,
    smoothing="kernel",
    quantile_method="linear",
    **options,
) -> np.ndarray:
    """Each position's VaR or ES held alone: the measure of the column ``x_i P_i``."""
    check_options(options, "pnl", _OPTIONS)
    x, table, measure, confidence = check_pnl(positions, pnl, measure, confidence)
    return historical.standalone_scenarios(
        x, table, measure, confidence, check_horizon(horizon), smoothing=smoothing, quantile_method=quantile_method
    )


def unit_table(pnl) -> tuple[float, np.ndarray]:
    """A P&L table in currency as ``s * U``, every ``|U| <= 1/2``: for methods made for returns.

    The Cornish-Fisher method reads its table as returns and refuses what looks like
    percentages or prices (a value of -1 or below, a column above 1).  P&L in currency is
    neither, and every measure is homogeneous of degree 1 in the positions:
    ``Risk(x, P) = Risk(s x, P / s)``.  So a P&L table goes through such a method as
    ``U = P / s`` with the positions multiplied by ``s = 2 max |P|`` (1 for a table of zeros).

    Returns
    -------
    s : float
    U : ndarray, the table divided by ``s``
    """
    table = np.asarray(pnl, dtype=float)
    s = 2.0 * float(np.max(np.abs(table), initial=0.0)) or 1.0
    return s, table / s
