"""Scenario P&L: the book under named shocks, and its worst days in a history.

With positions ``x`` (signed currency exposures) and a table of returns ``S`` (rows =
scenarios or dates, columns = assets), the P&L of scenario ``s`` is ``p_s = S_s . x`` and
position ``i``'s part of it is ``S_si x_i`` (the parts sum to ``p_s``).  Gains are positive.

Both functions order by P&L, largest loss first; equal P&Ls keep the order of the table
(a stable sort), so the result does not depend on the sorting algorithm.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._threads import model_work, rows_product, sized_blas
from ._validation import _where, as_vector, check_count, check_finite_result, check_return_levels, check_returns

__all__ = ["ScenarioPnl", "row_labels", "stress_pnl", "worst_days"]


@dataclass(frozen=True)
class ScenarioPnl:
    """P&L of a book in a set of scenarios, largest loss first.

    Attributes
    ----------
    rows : ndarray of int
        0-based row of each scenario in the table it came from.
    labels : list
        Name (or date) of each scenario, in the same order.
    pnl : ndarray
        Book P&L ``S_s . x`` (gains positive).
    parts : ndarray, shape (len(rows), n)
        ``S_si x_i``: each position's part; the rows sum to ``pnl``.
    """

    rows: np.ndarray
    labels: list
    pnl: np.ndarray
    parts: np.ndarray


def row_labels(values, count: int, name: str, default: str) -> list:
    """One label per scenario (``None``: ``default`` numbered from 1); blanks are refused."""
    if values is None:
        return [f"{default} {i + 1}" for i in range(count)]
    arr = np.asarray(values, dtype=object)
    if arr.ndim == 2 and 1 not in arr.shape:
        raise ValueError(f"{name}: expected a single row or column, got {arr.shape[0]} rows x {arr.shape[1]} columns")
    flat = arr.reshape(-1)
    if flat.size != count:
        raise ValueError(f"{name}: has {flat.size} cells but there are {count} scenarios (rows); expected one per row")
    out = []
    for i, value in enumerate(flat):
        if isinstance(value, np.generic):
            value = value.item()
        if value is None or (isinstance(value, str) and not value.strip()):
            raise ValueError(f"{name}: item {i + 1} is blank; expected a label for every row")
        if isinstance(value, float) and not np.isfinite(value):
            raise ValueError(f"{name}: item {i + 1} holds an error or NaN; expected a label for every row")
        out.append(value)
    return out


def _pnl(table: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``table @ x``, refusing a P&L that overflowed although the table and the book are
    finite (``1e200 x 1e109``): never ranked or shown as inf."""
    with np.errstate(over="ignore", invalid="ignore"):  # refused just below, not warned
        pnl = rows_product(table, x)
    check_finite_result("positions", "the P&L of these positions in some period", pnl)
    return pnl


def _ranked(x: np.ndarray, table: np.ndarray, pnl: np.ndarray, count: int, labels: list) -> ScenarioPnl:
    """The ``count`` rows of least P&L (``pnl = table @ x``, computed once: the order and the
    figures shown are the same numbers), largest loss first, earlier rows first on ties."""
    rows = np.argsort(pnl, kind="stable")[:count]
    return ScenarioPnl(rows, [labels[r] for r in rows], pnl[rows] + 0.0, table[rows] * x + 0.0)


#: A shock this far below -1 is a fall to zero computed in floating point (``-(0.1 + 0.2) / 0.3``
#: is -1.0000000000000002), not a fall past it.
_ROUNDING = 1e-9


@sized_blas(model_work)
def stress_pnl(positions, shocks, names=None) -> ScenarioPnl:
    """P&L of the book under each shock vector, largest loss first.

    Parameters
    ----------
    positions : array_like, shape (n,)
        Signed exposures in currency.
    shocks : array_like, shape (S, n)
        One row per scenario: the simple return of each asset in it (e.g. -0.2 for a 20%
        fall; -1, a fall to zero, at most, to within 1e-9).
    names : array_like, shape (S,), optional
        Scenario names; default "Scenario 1", "Scenario 2", ...

    Raises
    ------
    ValueError
        If a shock is below -1: a fall of more than 100% leaves a negative price, so the
        shocks are in other units (percentages: -20 for -20%, a P&L 100 times too large).
    """
    x = as_vector(positions, "positions")
    s = check_returns(shocks, x.size, name="shocks", min_rows=1)
    if s.min() < -1.0 - _ROUNDING:
        i, j = (int(k) for k in np.argwhere(s < -1.0 - _ROUNDING)[0])
        raise ValueError(
            f"shocks: {_where((i, j), s.ndim)} is {s[i, j]:.12g}, a fall of {-s[i, j] * 100:.12g}%; a fall of "
            "more than 100% would leave a negative price, so these look like percentages (-20 for "
            "-20%): divide by 100, or enter them as -20%"
        )
    labels = row_labels(names, s.shape[0], "names", "Scenario")
    return _ranked(x, s, _pnl(s, x), s.shape[0], labels)


@sized_blas(model_work)
def worst_days(positions, returns, dates=None, k=None) -> ScenarioPnl:
    """The ``k`` worst periods of a history for the book, largest loss first.

    Parameters
    ----------
    positions : array_like, shape (n,)
    returns : array_like, shape (T, n)
        Rows = periods (oldest first), columns = assets.
    dates : array_like, shape (T,), optional
        A label per row (dates as the sheet holds them); default "Row 1", "Row 2", ...
    k : int, optional
        How many periods; default ``min(10, T)``; at most ``T``.
    """
    x = as_vector(positions, "positions")
    r = check_returns(returns, x.size, min_rows=1)
    check_return_levels(r)  # percentages or prices: a P&L 100 times too large, or a gain as the worst day
    labels = row_labels(dates, r.shape[0], "dates", "Row")
    count = min(10, r.shape[0]) if k is None else check_count(k, "k")
    if count > r.shape[0]:
        raise ValueError(f"k: got {count} but returns has {r.shape[0]} rows; expected at most {r.shape[0]}")
    return _ranked(x, r, _pnl(r, x), count, labels)
