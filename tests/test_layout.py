"""The architecture as a test: each layer is a folder and imports only run downward.

engine (numpy, scipy) <- Excel adapter (+ xlwings) <- workbook (+ formulas, lxml, ...)
<- command line.  Read from the source with :mod:`ast`, so an import inside a function
counts as much as one at the top of a module.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "xlmvar"

#: layer -> the xlmvar layers it may import (besides itself)
ALLOWED = {
    "engine": set(),
    "excel": {"engine"},
    "workbook": {"engine", "excel"},
    "batch": {"engine"},
    "cli": {"engine", "excel", "workbook", "batch"},
}

#: third-party modules each layer may import
THIRD_PARTY = {
    "engine": {"numpy", "scipy", "threadpoolctl", "xxhash"},  # threadpoolctl lazily; xxhash optional at import
    "excel": {"numpy", "scipy", "xlwings"},
    "workbook": {"numpy", "scipy", "formulas", "schedula", "openpyxl", "xlsxwriter", "lxml", "defusedxml", "ironcalc"},
    "batch": {"numpy", "scipy", "pandas", "pyarrow", "dask", "distributed"},
    "cli": set(),
}


def _layer(path: Path) -> str:
    return path.relative_to(PACKAGE).parts[0]


def _imports(path: Path):
    """(absolute module name, line) of every import in the file, relative ones resolved."""
    package = ".".join(path.relative_to(ROOT).parent.parts)  # the package the file is in
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            names = [f"{module}.{a.name}" for a in node.names] if node.module is None or node.level else [module]
            yield from ((name, node.lineno) for name in names)


LAYER_FILES = sorted(p for p in PACKAGE.rglob("*.py") if len(p.relative_to(PACKAGE).parts) > 1)


def test_every_module_lives_in_a_layer_folder():
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert top == ["__init__.py", "__main__.py"]
    assert {_layer(p) for p in LAYER_FILES} <= set(ALLOWED) | {"data"}


@pytest.mark.parametrize("path", LAYER_FILES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_only_run_downward(path):
    layer = _layer(path)
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    for module, line in _imports(path):
        root = module.split(".")[0]
        where = f"{path.relative_to(ROOT)}:{line} imports {module}"
        if root == "xlmvar":
            parts = module.split(".")
            # `xlmvar` itself (and a name from it, such as __version__) is the engine's API
            target = parts[1] if len(parts) > 1 and parts[1] in ALLOWED else "engine"
            assert target == layer or target in ALLOWED[layer], where
        elif root == "udfs":
            raise AssertionError(f"{where}: the top-level udfs is xlwings' name table, not a layer")
        else:
            assert root in stdlib or root in THIRD_PARTY[layer], where


def test_top_level_modules_import_only_what_they_front():
    # xlmvar/__init__.py re-exports the engine; udfs.py re-exports the adapter.
    for path, allowed in ((PACKAGE / "__init__.py", "xlmvar.engine"), (ROOT / "udfs.py", "xlmvar.excel")):
        for module, line in _imports(path):
            if module.startswith("xlmvar"):
                assert module.startswith(allowed), f"{path.name}:{line} imports {module}"


def test_importing_the_engine_loads_no_other_layer():
    code = (
        "import sys, xlmvar; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('xlwings', 'openpyxl', 'formulas', 'lxml', 'xlsxwriter', 'pandas') "
        "or m.startswith(('xlmvar.excel', 'xlmvar.workbook', 'xlmvar.cli'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"
