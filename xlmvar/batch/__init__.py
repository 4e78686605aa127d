"""The batch layer: firm-scale risk by group, in-process (pandas/numpy) or on Dask.

``xlmvar batch POSITIONS SCENARIOS --by desk`` (see :mod:`xlmvar.batch.cli`) runs
:func:`~xlmvar.batch.job.run`: the positions file is aggregated out of core by (group,
asset), the scenario P&L by group is one matrix product, and the engine's group
decomposition gives VaR, ES and component VaR/ES by group.

May import: the engine, pandas, pyarrow, dask (and distributed).  Never the Excel adapter
or the workbook layer.
"""

from __future__ import annotations

from ._names import BATCH_METHODS

__all__ = ["BATCH_METHODS", "run", "read_scenarios", "write_result"]


def __getattr__(name):
    """``run``, ``read_scenarios`` and ``write_result`` load pandas: import them on first use."""
    if name == "run":
        from .job import run

        return run
    if name in ("read_scenarios", "write_result"):
        from . import io

        return getattr(io, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
