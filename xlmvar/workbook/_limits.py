"""Resource limits for reading untrusted workbooks.

Every limit is enforced on what is actually read or built, never on what the file
declares: bytes are counted as they come out of the decompressor, cells as they are
parsed, the area of a range after it has been clipped to the cells that exist.  The
defaults pass every real workbook we know of (the Excel-saved corpus, the templates, a
2,500 x 500 history) with a wide margin; the command line can raise each of them.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

__all__ = ["LimitError", "Limits", "DEFAULT_LIMITS"]


class LimitError(ValueError):
    """A workbook exceeds one of the :class:`Limits`; the message names the option to raise it."""


@dataclass(frozen=True)
class Limits:
    """Bounds on the work one workbook may cause.

    Attributes
    ----------
    max_bytes : int
        Decompressed bytes read from the archive, all parts together, in one pass
        (counted while streaming, so a forged size in the zip directory does not matter).
    max_cells : int
        Cells holding a value or a formula, all sheets together.
    max_formulas : int
        Formula cells (an array formula counts once).
    max_formula_length : int
        Characters of one formula; Excel's own limit is 8,192.
    max_area : int
        Cells materialised for one range argument, after clipping it to the sheet's
        used area (a whole-column reference costs what its filled cells cost).
    max_depth : int
        Longest chain of formulas that depend on one another.
    """

    max_bytes: int = 512 << 20
    max_cells: int = 5_000_000
    max_formulas: int = 500_000
    max_formula_length: int = 8192
    max_area: int = 10_000_000
    max_depth: int = 100_000

    #: command-line option of each limit, for messages
    OPTIONS = {
        "max_bytes": "--max-mib",
        "max_cells": "--max-cells",
        "max_formulas": "--max-formulas",
        "max_formula_length": "--max-formula-length",
        "max_area": "--max-area",
        "max_depth": "--max-depth",
    }

    def exceeded(self, name: str, what: str) -> LimitError:
        """The error for limit ``name`` exceeded by ``what`` (a phrase naming the place)."""
        value = getattr(self, name)
        shown = f"{value / 2**20:,.0f} MiB" if name == "max_bytes" else f"{value:,}"
        return LimitError(f"{what}: over the limit of {shown} ({self.OPTIONS[name]} raises it)")

    def replace(self, **changes) -> "Limits":
        known = {f.name for f in fields(self)}
        values = {name: getattr(self, name) for name in known}
        values.update({k: v for k, v in changes.items() if v is not None})
        return Limits(**values)


DEFAULT_LIMITS = Limits()
