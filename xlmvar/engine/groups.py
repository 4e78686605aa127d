"""Risk by group: VaR or ES of each desk, asset class or sector, and its share of the book's.

Positions carry a group label each (``groups``, one per position).  For the label ``g`` with
members ``G`` (``x_G``: the positions of ``G``, zeros elsewhere) and any method of
:func:`xlmvar.engine.risk.decompose`::

    standalone_g   = Risk(x_G)                       the group's sub-book on its own
    component_g    = sum_{i in G} x_i dRisk/dx_i     Euler: the components sum to Risk(x)
    share_g        = component_g / Risk(x)           shares sum to 1
    diversification_g = standalone_g - component_g   what the rest of the book saves the group

Because the component of a group is the sum of its members' Euler components, the rows add
up to the portfolio figure for every method; the sum of the standalone figures is the
undiversified figure by group (at least the portfolio figure for a subadditive measure).

Groups are listed in order of first appearance.  The sub-book is valued with the same
model as the whole book: its members' block of the covariance, their columns of the history
or P&L table (the other positions being 0 contribute nothing), and for Monte Carlo the very
draws of the whole book.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np

from . import risk
from ._validation import as_real, as_vector, describe

__all__ = ["check_labels", "GroupRisk", "group_risk"]


def check_labels(values, size: int, name: str = "groups", per: str = "position") -> list[str]:
    """Labels as text, one per ``per`` (``size`` of them); a blank or an error cell is refused.

    Whole numbers (``1.0`` as a spreadsheet hands over the label 1) become ``"1"``.
    """
    arr = np.asarray(values, dtype=object)
    flat = arr.reshape(-1) if arr.ndim else arr.reshape(1)
    if arr.ndim == 2 and 1 not in arr.shape:
        raise ValueError(f"{name}: expected a single row or column, got {arr.shape[0]} rows x {arr.shape[1]} columns")
    if flat.size != size:
        raise ValueError(
            f"{name}: has {flat.size} cells but there are {size} {per}s; expected one label per {per}"
        )
    labels = []
    for i, value in enumerate(flat):
        if isinstance(value, np.generic):
            value = value.item()
        if value is None or (isinstance(value, str) and not value.strip()):
            raise ValueError(f"{name}: item {i + 1} is blank; expected a label for every {per}")
        if isinstance(value, numbers.Integral) and not isinstance(value, bool):
            value = int(value)  # any size: a label, never a float
        elif isinstance(value, numbers.Real) and not isinstance(value, bool):
            if not math.isfinite(as_real(value)):
                raise ValueError(f"{name}: item {i + 1} holds {describe(value)}; expected a label")
            if as_real(value).is_integer():
                value = int(value)
        elif not isinstance(value, str):
            raise ValueError(f"{name}: item {i + 1} holds {describe(value)}; expected a label")
        labels.append(str(value).strip())
    return labels


@dataclass(frozen=True)
class GroupRisk:
    """VaR or ES by group.

    Attributes
    ----------
    labels : list of str
        One per group, in order of first appearance.
    standalone : ndarray
        Risk of each group's sub-book held alone.
    component : ndarray
        Sum of the members' Euler components; sums to ``total``.
    share : ndarray
        ``component / total`` (zeros for a zero-risk book); sums to 1.
    diversification : ndarray
        ``standalone - component``.
    total : float
        Risk of the whole book.
    """

    labels: list
    standalone: np.ndarray
    component: np.ndarray
    share: np.ndarray
    diversification: np.ndarray
    total: float


def group_risk(positions, model, groups, measure="var", confidence=0.95, horizon=1, method="normal", **options) -> GroupRisk:
    """VaR or ES of each group's sub-book and its Euler component of the book's.

    Parameters
    ----------
    positions : array_like, shape (n,)
    model : array_like
        As for :func:`xlmvar.engine.risk.decompose` with this ``method``.
    groups : array_like, shape (n,)
        A label per position (desk, asset class, ...).
    measure : {"var", "es"}
    confidence, horizon, method, **options
        As for :func:`xlmvar.engine.risk.decompose`.

    Returns
    -------
    GroupRisk
    """
    x = as_vector(positions, "positions")
    labels = check_labels(groups, x.size)
    book = risk.decompose(x, model, measure, confidence, horizon, method, **options)
    names = list(dict.fromkeys(labels))
    index = np.array([names.index(label) for label in labels])
    component = np.bincount(index, weights=book.component, minlength=len(names))
    sub_book = _sub_book_risk(x, model, measure, confidence, horizon, method, options)
    standalone = np.array([sub_book(np.flatnonzero(index == g)) for g in range(len(names))])
    share = component / book.total if book.total != 0.0 else np.zeros_like(component)
    return GroupRisk(names, standalone, component, share, standalone - component, book.total)


def _sub_book_risk(x, model, measure, confidence, horizon, method, options):
    """A function of the members' indices giving the risk of their sub-book.

    The other positions are 0, so they drop out: the sub-book is valued on the members'
    columns of the returns or P&L table, or the members' block of the covariance (and of the
    mean), which costs O(T n_g) instead of O(T n) per group.  Monte Carlo keeps every asset,
    so that the sub-book is revalued on the very draws of the whole book.  Called only after
    the whole book's decomposition has validated ``model``.
    """
    name = risk.check_method(method)
    if name == "montecarlo":
        def padded(members):
            return risk.decompose(np.where(np.isin(np.arange(x.size), members), x, 0.0), model, measure,
                                  confidence, horizon, method, **options).total
        return padded
    table = np.asarray(model, dtype=float)

    def restricted(members):
        opts = dict(options)
        if opts.get("mean") is not None:
            opts["mean"] = as_vector(opts["mean"], "mean")[members]
        sub = table[np.ix_(members, members)] if name == "normal" else table[:, members]
        return risk.decompose(x[members], sub, measure, confidence, horizon, method, **opts).total

    return restricted
