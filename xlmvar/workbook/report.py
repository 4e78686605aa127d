"""The risk report of a workbook's portfolio, read through its defined names.

A workbook names its book with ``Assets``, ``Positions``, ``Covariance`` (or ``History``
with a history method), ``Confidence``, ``Horizon`` and optionally ``Method`` and ``Mean``
(the expected returns of the normal and Monte Carlo methods; a history's own mean is
used by the others).  The report recalculates the workbook headlessly, so inputs that are
themselves formulas are read at their current values, then runs the engine on them.
``Confidence``, ``Horizon`` and ``Method`` are one cell each or a constant (``=0.99``,
``="montecarlo"``); anything else is refused, never replaced by the default.
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


def _definition(recalc: Recalculation, name: str):
    """The text the name stands for, or None where the book does not define it."""
    found = getattr(recalc.names, "definition", lambda n: None)(name)
    return found[1] if found else None


def _named(recalc: Recalculation, *names: str, required: bool = True):
    for name in names:
        value = recalc.names.get(name.upper())
        if value is not None:
            return value
    for name in names:  # defined, but not as cells (=#REF!, a deleted sheet, a formula)
        text = _definition(recalc, name)
        if text is not None and required:
            raise ValueError(f"workbook: the name {name} ({text}) does not refer to cells; the report reads a range there")
    if required:
        raise ValueError(
            f"workbook: no defined name {' or '.join(names)}; the report reads the names Assets, "
            "Positions, Covariance (or History), Confidence and Horizon"
        )
    return None


def _which(recalc: Recalculation, *names: str) -> str:
    """The name among ``names`` the workbook defines, with the range it refers to."""
    for name in names:
        if recalc.names.get(name.upper()) is not None:
            definition = getattr(recalc.names, "definition", lambda n: None)(name)
            return f"{name} ({definition[1]})" if definition else name
    return names[0]


def _is_error(item) -> bool:
    from .calc import _xl_error_class

    return isinstance(item, _xl_error_class())


def _is_blank(item) -> bool:
    import schedula as sh

    return item is None or item is sh.EMPTY


def _cells(recalc: Recalculation, names: tuple, *, numbers: bool) -> np.ndarray:
    """The named range as a 2-D array; a blank or error cell is refused with its position."""
    value = np.asarray(_named(recalc, *names), dtype=object)
    label = _which(recalc, *names)
    out = np.empty(value.shape, dtype=object)
    for (i, j), item in np.ndenumerate(value):
        where = f"row {i + 1}, column {j + 1}"
        if _is_error(item):
            raise ValueError(f"workbook: the name {label} holds the error {item} at {where}; the report needs its value")
        if _is_blank(item):
            if numbers:
                raise ValueError(f"workbook: the name {label} holds a blank cell at {where}; expected a number")
            item = ""
        out[i, j] = item
    return out


_NO_CONSTANT = object()


def _constant(text: str):
    """The number, text or TRUE/FALSE a name's definition is (``0.99``, ``99%``,
    ``"montecarlo"``)."""
    text = text.strip().lstrip("=").strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return text[1:-1].replace('""', '"')
    if text.upper() in ("TRUE", "FALSE"):
        return text.upper() == "TRUE"
    percent = text.endswith("%")
    try:
        number = float(text[:-1] if percent else text)
    except ValueError:
        return _NO_CONSTANT
    return number / 100.0 if percent else number


def _scalar(recalc: Recalculation, name: str, _depth: int = 0):
    """A one-cell input: ``None`` where the book does not define the name (the default);
    the name's cell (a merged area: its first cell, the others blank), its constant, or
    the value of the name it stands for; refused when it is none of these, or a range of
    several filled cells (the default, or the first cell, would be a figure the book does
    not show)."""
    value = _named(recalc, name, required=False)
    if value is None:
        text = _definition(recalc, name)
        if text is None:
            return None
        alias = text.strip().lstrip("=").strip()
        if _depth < 8 and alias.upper() != name.upper() and _definition(recalc, alias) is not None:
            return _scalar(recalc, alias, _depth + 1)  # Confidence = ConfCell
        constant = _constant(text)
        if constant is _NO_CONSTANT:
            raise ValueError(f"workbook: the name {name} ({text}) is neither one cell nor a constant; the report reads it as one")
        return constant
    cells = np.asarray(value, dtype=object).reshape(-1)
    if cells.size != 1 and not all(_is_blank(item) for item in cells[1:]):  # a merged area has one value
        raise ValueError(f"workbook: the name {_which(recalc, name)} refers to {cells.size} filled cells; the report reads one")
    item = cells[0]
    if _is_error(item):
        raise ValueError(f"workbook: the name {_which(recalc, name)} holds the error {item}; the report needs its value")
    return None if _is_blank(item) or str(item) == "" else item


def book_inputs(recalc: Recalculation) -> dict:
    """The engine arguments named in a recalculated workbook.

    Raises
    ------
    ValueError
        Naming the defined name and the cell when a value is blank or an error, or when
        ``Assets`` and ``Positions`` do not have one entry per asset each.
    """
    method = _scalar(recalc, "Method") or "normal"
    model_name = ("Covariance",) if risk.check_method(method) in ("normal", "montecarlo") else ("History", "Returns")
    assets = [str(a) for a in _cells(recalc, ("Assets",), numbers=False).reshape(-1)]
    positions = _cells(recalc, ("Positions",), numbers=True)
    if len(assets) != positions.size:
        raise ValueError(
            f"workbook: the name {_which(recalc, 'Assets')} lists {len(assets)} asset(s) but "
            f"{_which(recalc, 'Positions')} holds {positions.size} position(s); they must match one to one"
        )
    # a Mean the book names is read where it fits the book, one cell per asset; a name Mean
    # of another shape (a label's cell, a constant) is some other mean, and left alone
    mean = None
    if risk.check_method(method) in ("normal", "montecarlo") and recalc.names.get("MEAN") is not None:
        cells = np.asarray(recalc.names.get("MEAN"), dtype=object).reshape(-1)
        if cells.size == len(assets) and not all(_is_blank(item) for item in cells):  # all blank: none, as in a function
            mean = _cells(recalc, ("Mean",), numbers=True)
    return {
        "assets": assets,
        "positions": positions,
        "model": _cells(recalc, model_name, numbers=True),
        "confidence": _scalar(recalc, "Confidence"),
        "horizon": _scalar(recalc, "Horizon"),
        "method": method,
        "mean": mean,
    }


def book_report(path, progress=None, limits=None) -> tuple[BookReport, Recalculation]:
    """Recalculate the workbook at ``path`` and compute its book's risk report."""
    from ._limits import DEFAULT_LIMITS

    recalc = recalculate(path, progress, limits or DEFAULT_LIMITS)
    inputs = book_inputs(recalc)
    args = (inputs["positions"], inputs["model"], inputs["confidence"], inputs["horizon"], inputs["method"])
    options = {} if inputs["mean"] is None else {"mean": inputs["mean"]}
    decomposition = risk.decompose(args[0], args[1], "var", *args[2:], **options)
    report = BookReport(
        assets=inputs["assets"],
        positions=np.asarray(inputs["positions"], dtype=float).reshape(-1),
        individual=risk.individual_var(*args, **options),
        decomposition=decomposition,
        es=risk.portfolio_es(*args, **options),
        confidence=inputs["confidence"] if inputs["confidence"] is not None else 0.95,
        horizon=int(inputs["horizon"] or 1),
        method=risk.check_method(inputs["method"]),
    )
    return report, recalc


def format_report(report: BookReport) -> str:
    """The report as a fixed-width text table."""
    d = report.decomposition
    w = max(12, 2 + max((len(str(a)) for a in report.assets), default=0))  # long names keep the columns
    head = f"{'Asset':<{w}}{'Position':>16}{'Individual VaR':>18}{'Marginal VaR':>15}{'Component VaR':>17}{'% of VaR':>10}"
    lines = [
        f"Method {report.method}, confidence {report.confidence:.2%}, horizon {report.horizon}",
        head,
        "-" * len(head),
    ]
    for row in zip(report.assets, report.positions, report.individual, d.marginal, d.component, d.percent):
        name, pos, ind, mar, comp, pct = row
        lines.append(f"{name:<{w}}{pos:>16,.0f}{ind:>18,.0f}{mar:>15.4f}{comp:>17,.0f}{pct:>10.1%}")
    lines.append("-" * len(head))
    total_pct = 1.0 if d.total else 0.0
    lines.append(
        f"{'Total':<{w}}{report.positions.sum():>16,.0f}{report.individual.sum():>18,.0f}{'':>15}"
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
