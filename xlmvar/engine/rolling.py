"""Rolling out-of-sample VaR: each period's forecast from the window of periods before it.

With positions ``x``, returns ``R`` (``T`` periods, oldest first) and a window of ``w``
periods, the forecast for period ``t`` (0-based, ``t = w, ..., T - 1``) uses rows
``t - w, ..., t - 1`` only - nothing of period ``t`` itself - and sits beside the realised
one-period P&L ``p_t = R_t . x`` (gains positive), ready for
:func:`xlmvar.engine.backtest.var_backtest`.

Every method allowed here values the book through its P&L alone (the kernel of historical
VaR, the variance ``x' S x`` of the normal one, the moments of Cornish-Fisher), so the
forecast for ``t`` is computed once from the P&L series ``p`` rather than from the
``w x n`` slice of returns:

* ``"historical"``: ``-Q_a(p_{t-w..t-1})``, the quantile rule of
  :mod:`xlmvar.engine.historical` (default numpy ``"linear"``, R's type 7), all windows at
  once.  ``"pnl"`` is the same on a P&L table in currency (positions = scales of its columns).
* ``"normal"``: ``z sd(p_{t-w..t-1})``, ``sd`` with divisor ``w - 1`` - the delta-normal VaR on
  the window's sample covariance ``x' S_w x``, zero mean.
* ``"cornish-fisher"``: :mod:`xlmvar.engine.modified` on each window's P&L.

VaR is one period ahead (horizon 1), a positive loss.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from . import historical, modified
from .pnl import unit_table
from ._threads import model_work, rows_product, sized_blas
from ._validation import as_vector, check_confidence, check_count, check_finite_result, check_return_levels, check_returns
from .parametric import tail_multiplier
from .risk import check_method

__all__ = ["ROLLING_METHODS", "RollingVar", "rolling_var"]

#: Methods a rolling forecast can use, and the fewest rows of a window each needs.
ROLLING_METHODS = {"historical": 2, "pnl": 2, "normal": 2, "cornish-fisher": modified.MIN_ROWS}


@dataclass(frozen=True)
class RollingVar:
    """Out-of-sample VaR forecasts beside the realised P&L.

    Attributes
    ----------
    rows : ndarray of int
        0-based row of the returns table each forecast is for (``window, ..., T - 1``).
    var : ndarray
        Forecast made from the ``window`` rows before, a positive loss.
    pnl : ndarray
        Realised P&L of that row, gains positive.
    """

    rows: np.ndarray
    var: np.ndarray
    pnl: np.ndarray


@sized_blas(model_work)
def rolling_var(positions, returns, window, confidence=0.95, method="historical") -> RollingVar:
    """One-period VaR forecasts on a rolling window and the realised P&L they forecast.

    Parameters
    ----------
    positions : array_like, shape (n,)
    returns : array_like, shape (T, n)
        Rows = periods, oldest first.
    window : int
        Periods in each estimation window; ``T - window`` forecasts result (at least one).
    confidence : float in (0, 1), default 0.95
    method : {"historical", "pnl", "normal", "cornish-fisher"}, default "historical"
    """
    x = as_vector(positions, "positions")
    r = check_returns(returns, x.size, min_rows=1)
    c = check_confidence(confidence)
    name = check_method("historical" if method is None or method == "" else method)
    if name not in ROLLING_METHODS:
        raise ValueError(
            f"method: {name} cannot be rolled on a returns history; expected one of {', '.join(ROLLING_METHODS)}"
        )
    if name != "pnl":  # a history of returns, as each method checks it (a P&L table is in currency)
        check_return_levels(r)
    w = check_count(window, "window")
    if w < ROLLING_METHODS[name]:
        raise ValueError(f"window: got {w}; the {name} method needs at least {ROLLING_METHODS[name]} periods")
    if name in ("historical", "pnl") and w < historical.rows_needed(c):
        what = "historical VaR" if name == "historical" else "VaR of a P&L table"
        raise ValueError(
            f"window: got {w}; a {c * 100:g}% {what} needs at least {historical.rows_needed(c)} periods "
            "(1 / (1 - confidence), so that the worst one lies at least as far in the tail as the quantile)"
        )
    if w >= r.shape[0]:
        raise ValueError(
            f"window: got {w} but returns has {r.shape[0]} rows; expected fewer periods than the "
            "history holds, so that at least one forecast is out of sample"
        )
    with np.errstate(over="ignore", invalid="ignore"):  # refused just below, not warned
        p = rows_product(r, x)
    check_finite_result("positions", "the P&L of these positions in some period", p)
    windows = sliding_window_view(p, w)[:-1]  # windows[j] = p[j : j + w], forecast for j + w
    if name in ("historical", "pnl"):
        var = -np.quantile(windows, historical.tail_probability(c), axis=1)
    elif name == "normal":  # on the P&L over its largest size: squares neither underflow nor overflow
        size = float(np.abs(p).max()) or 1.0
        var = tail_multiplier(c, "var") * np.std(windows / size, axis=1, ddof=1) * size
    else:
        s, units = unit_table(windows)  # P&L in currency through a method made for returns
        var = np.array([modified.decompose([s], win[:, None], "var", c).total for win in units])
    var = _flat_windows(var, windows, historical.noise_floor(x, r, p), name)
    check_finite_result("positions", "the rolling VaR of these positions", var)
    return RollingVar(np.arange(w, r.shape[0]), var + 0.0, p[w:] + 0.0)


def _flat_windows(var: np.ndarray, windows: np.ndarray, floor: float, name: str) -> np.ndarray:
    """The historical module's rule for a flat book, window by window: where a window's P&L
    ranges over no more than rounding noise (``floor``, the history's), its VaR is minus its
    mean P&L with a level within the noise set to 0 (historical, pnl, Cornish-Fisher: the
    rule of their modules), or 0 (normal, zero mean) - not the noise itself, which a
    backtest would count as exceptions."""
    flat = historical.is_flat(historical.spread(windows, axis=1), floor)
    if not flat.any():
        return var
    var = var.copy()
    for j in np.flatnonzero(flat):
        var[j] = 0.0 if name == "normal" else -historical.flat_level(float(windows[j].mean()), floor)
    return var
