"""The Excel-saved corpus (``../shared/data/excel-corpus``) as the calculator's tests read it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "data" / "excel-corpus"

sys.path.insert(0, str(ROOT / "benchmarks"))
from corpus_score import BLANK, Value, strip_cached_values  # noqa: E402


def as_value(v) -> Value:
    """A calculator's value (either core's, or :func:`recalculate`'s) in the scorer's terms."""
    if v is None:
        return BLANK
    if isinstance(v, bool):
        return Value("b", v)
    if isinstance(v, (int, float)):
        return Value("n", float(v))
    if type(v) is str:
        return Value("s", v)
    return Value("e", str(v))  # an error value: its code


def corpus_book(name: str) -> Path:
    """The corpus workbook ``name``; the test is skipped where the corpus is not present."""
    source = CORPUS / name
    if not source.exists():
        pytest.skip(f"{source} not present")
    return source


def stripped_copy(name: str, tmp_path: Path) -> tuple[Path, Path]:
    """``(source, copy)``: the corpus workbook and a copy without its cached values, so that
    a calculator must compute every formula (as ``benchmarks/corpus_score.py`` scores it)."""
    source = corpus_book(name)
    stripped = tmp_path / name
    strip_cached_values(source, stripped)
    return source, stripped
