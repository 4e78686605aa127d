"""The risk report of a workbook's portfolio, read through its defined names.

A workbook names its book with ``Assets``, ``Positions``, ``Covariance`` (or ``Returns``
with a history method), ``Confidence``, ``Horizon`` and optionally ``Method``.  The report
recalculates the workbook headlessly, so inputs that are themselves formulas are read at
their current values, then runs the engine on them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..engine import risk
from .calc import Recalculation, recalculate

__all__ = ["BookReport", "book_inputs", "book_report", "format_report"]


@dataclass(frozen=True)
class BookReport:
    """A book's risk report: one row per asset plus the portfolio figures."""

    assets: list
    positions: np.ndarray
    individual: np.ndarray
    decomposition: object
    es: float
    confidence: float
    horizon: int
    method: str


def _named(recalc: Recalculation, *names: str, required: bool = True):
    for name in names:
        value = recalc.names.get(name.upper())
        if value is not None:
            return value
    if required:
        raise ValueError(
            f"workbook: no defined name {' or '.join(names)}; the report reads the names Assets, "
            "Positions, Covariance (or Returns), Confidence and Horizon"
        )
    return None


def _scalar(value):
    if value is None:
        return None
    item = np.asarray(value, dtype=object).reshape(-1)[0]
    return None if item is None or str(item) == "empty" else item


def book_inputs(recalc: Recalculation) -> dict:
    """The engine arguments named in a recalculated workbook."""
    import schedula as sh

    def clean(value):
        arr = np.asarray(value, dtype=object)
        return np.where(arr == sh.EMPTY, None, arr)

    method = _scalar(_named(recalc, "Method", required=False)) or "normal"
    model_name = ("Covariance",) if risk.check_method(method) in ("normal", "montecarlo") else ("History", "Returns")
    return {
        "assets": [str(a) for a in clean(_named(recalc, "Assets")).reshape(-1)],
        "positions": clean(_named(recalc, "Positions")),
        "model": clean(_named(recalc, *model_name)),
        "confidence": _scalar(_named(recalc, "Confidence", required=False)),
        "horizon": _scalar(_named(recalc, "Horizon", required=False)),
        "method": method,
    }


def book_report(path, progress=None) -> tuple[BookReport, Recalculation]:
    """Recalculate the workbook at ``path`` and compute its book's risk report."""
    recalc = recalculate(path, progress)
    inputs = book_inputs(recalc)
    args = (inputs["positions"], inputs["model"], inputs["confidence"], inputs["horizon"], inputs["method"])
    decomposition = risk.decompose(args[0], args[1], "var", *args[2:])
    report = BookReport(
        assets=inputs["assets"],
        positions=np.asarray(inputs["positions"], dtype=float).reshape(-1),
        individual=risk.individual_var(*args),
        decomposition=decomposition,
        es=risk.portfolio_es(*args),
        confidence=inputs["confidence"] if inputs["confidence"] is not None else 0.95,
        horizon=int(inputs["horizon"] or 1),
        method=risk.check_method(inputs["method"]),
    )
    return report, recalc


def format_report(report: BookReport) -> str:
    """The report as a fixed-width text table."""
    d = report.decomposition
    head = f"{'Asset':<12}{'Position':>16}{'Individual VaR':>18}{'Marginal VaR':>15}{'Component VaR':>17}{'% of VaR':>10}"
    lines = [
        f"Method {report.method}, confidence {report.confidence:.2%}, horizon {report.horizon}",
        head,
        "-" * len(head),
    ]
    for row in zip(report.assets, report.positions, report.individual, d.marginal, d.component, d.percent):
        name, pos, ind, mar, comp, pct = row
        lines.append(f"{name:<12}{pos:>16,.0f}{ind:>18,.0f}{mar:>15.4f}{comp:>17,.0f}{pct:>10.1%}")
    lines.append("-" * len(head))
    total_pct = 1.0 if d.total else 0.0
    lines.append(
        f"{'Total':<12}{report.positions.sum():>16,.0f}{report.individual.sum():>18,.0f}{'':>15}"
        f"{d.total:>17,.0f}{total_pct:>10.1%}"
    )
    lines += [
        "",
        f"Portfolio VaR            {d.total:>16,.0f}",
        f"Expected shortfall       {report.es:>16,.0f}",
        f"Undiversified VaR        {report.individual.sum():>16,.0f}",
        f"Diversification benefit  {report.individual.sum() - d.total:>16,.0f}",
    ]
    return "\n".join(lines)
