"""Risk-model handles: pass a big returns table or covariance to Excel functions once.

A sheet with ten decomposition cells over one 2,500 x 500 returns range sends the 1.25
million cells to Python ten times, and each transfer is converted cell by cell.  Instead::

    H1:  =RISKMODEL(Returns!A2:SF2501, "historical")
    C2:  =COMPONENTVAR(B2:B501, H1, 99%, 1, "historical")

``RISKMODEL`` validates the table once, keeps it in this Python process and returns a short
text, the *handle* (``xlmvar-model:returns:2500x500:1f0c...``).  Every function that takes a
model, a covariance or a returns table (an argument named ``model``, ``cov``, ``cov_book``,
``factor_cov``, ``returns`` or ``factor_returns``) accepts the handle in place of the range.

The handle is keyed on content: its last part is the first 16 hex digits of the SHA-256 of
the kind of model, the method, the options and the table's bytes.  Recalculating RISKMODEL
over the same data, in this process or in another one, gives the same text, so cells that
depend on it see no change; different data gives a different handle, so Excel recalculates
every dependent cell.

Correct under Excel's recalculation:

* A handle is only ever resolved to the table it was made from: the registry is keyed by
  the full text, whose digest was computed from the table, and the table kept is a
  read-only copy (never a view of a caller's array).
* After Excel or Python restarts (the workbook reopened in a fresh process), the registry is
  empty while the RISKMODEL cell still shows its old text.  A dependent cell recalculated
  then does not compute a figure: it says that the handle is not in this session and how to
  refresh it (recalculate the RISKMODEL cell, or Ctrl+Alt+F9).  Once RISKMODEL has run again
  on the same data, the same handle resolves and every figure is as before.
* Text that looks like a handle but is not one this process made (typed, edited, from
  another workbook or another version) is refused with the same advice.
* The headless calculator (``xlmvar calc``) evaluates RISKMODEL before its dependents, as
  it does for any precedent cell; a RISKMODEL cell it keeps at its cached value (a formula
  it does not evaluate) leaves its dependents with the message, which points to its report.
* A handle forgotten to keep the tables within :data:`MAX_BYTES` says so: recalculating its
  RISKMODEL cell would forget another.

On xlwings Server with several worker processes each worker has its own registry: a handle
made by one is unknown to another, which says so (run a single worker for handle sheets).
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from ..engine import covariance as estimators
from ..engine import risk
from ..engine._validation import as_matrix, checked_covariance, check_returns, describe
from .convert import range_hint, udf, value_hint

__all__ = ["RISKMODEL", "resolve_model", "make_model", "clear_models", "PREFIX", "MAX_BYTES"]

#: Every handle starts with this text.
PREFIX = "xlmvar-model:"

#: Tables kept, in bytes, before the least recently used handle is forgotten.
MAX_BYTES = 2 << 30

_HANDLE = re.compile(rf"^{re.escape(PREFIX)}(cov|returns):(\d+)x(\d+):([0-9a-f]{{16}})$")

#: Which kind of table each argument name takes ("model" takes either).
_KIND_OF_ARGUMENT = {
    "cov": "cov",
    "cov_book": "cov",
    "factor_cov": "cov",
    "returns": "returns",
    "factor_returns": "returns",
}

_REFRESH = (
    "recalculate the RISKMODEL cell that made it (in Excel: select it, press F2 then Enter, or "
    "Ctrl+Alt+F9 for the whole workbook; xlmvar calc recalculates it unless its report lists "
    "that cell as kept at its cached value, with the reason)"
)

#: Handles forgotten to keep the tables within :data:`MAX_BYTES` (the most recent 10,000):
#: using one says so, since recalculating its RISKMODEL cell forgets another.
_FORGOTTEN: OrderedDict[str, None] = OrderedDict()
_FORGOTTEN_KEPT = 10_000


@dataclass(frozen=True)
class Model:
    """A validated table behind a handle: ``kind`` is ``"cov"`` or ``"returns"``."""

    handle: str
    kind: str
    table: np.ndarray  # read-only, owned by the registry
    method: str


_registry: OrderedDict[str, Model] = OrderedDict()
_bytes = 0
_lock = threading.Lock()


def clear_models() -> None:
    """Forget every handle, as a fresh Python process would."""
    global _bytes
    with _lock:
        _registry.clear()
        _FORGOTTEN.clear()
        _bytes = 0


def _register(model: Model) -> None:
    global _bytes
    with _lock:
        if model.handle in _registry:
            _registry.move_to_end(model.handle)
            return
        _registry[model.handle] = model
        _FORGOTTEN.pop(model.handle, None)
        _bytes += model.table.nbytes
        while _bytes > MAX_BYTES and len(_registry) > 1:
            text, old = _registry.popitem(last=False)
            _bytes -= old.table.nbytes
            _FORGOTTEN[text] = None
            if len(_FORGOTTEN) > _FORGOTTEN_KEPT:
                _FORGOTTEN.popitem(last=False)


def _digest(kind: str, method: str, options: str, table: np.ndarray) -> str:
    digest = hashlib.sha256(f"{kind}|{method}|{options}|{table.dtype.str}|{table.shape}|".encode())
    digest.update(np.ascontiguousarray(table).view(np.uint8).data)
    return digest.hexdigest()[:16]


def _looks_like_covariance(table: np.ndarray) -> bool:
    n = table.shape[0]
    if table.shape != (n, n) or n < 1 or not np.all(np.diag(table) >= 0.0):
        return False
    return bool(np.max(np.abs(table - table.T)) <= 1e-8 * max(float(np.max(np.abs(table))), np.finfo(float).tiny))


def _parse_options(options) -> dict:
    """``"cov=ewma; lam=0.97"`` -> ``{"cov": "ewma", "lam": 0.97}`` (blank: no options).

    Each option at most once; ``cov`` one of the estimators of
    :func:`~xlmvar.engine.covariance.covariance`, ``lam`` (the EWMA decay) only with
    ``cov=ewma``.  Every error names ``options``.
    """
    if options is None:
        return {}
    if isinstance(options, np.ndarray):
        options = options.reshape(-1)[0] if options.size == 1 else options
    if not isinstance(options, str):
        raise ValueError(f'options: got {describe(options)}; expected text such as "cov=ewma; lam=0.97"')
    parsed = {}
    for part in filter(None, (p.strip() for p in re.split(r"[;,]", options))):
        key, sep, value = (s.strip() for s in part.partition("="))
        key = key.lower()
        if not sep or key not in ("cov", "lam") or not value:
            raise ValueError(
                f"options: cannot read {part!r}; expected cov=sample|ewma|ledoit-wolf and "
                'lam=<EWMA decay>, separated by ";" (e.g. "cov=ewma; lam=0.97")'
            )
        if key in parsed:
            raise ValueError(f"options: {key}= is given twice ({options!r}); give each option once")
        if key == "lam":
            try:
                value = float(value)
            except ValueError:
                raise ValueError(f"options: lam={value!r} is not a number; expected e.g. lam=0.94") from None
            value = estimators.check_lam(value, "options: lam")
        else:
            value = estimators.check_cov_method(value, "options: cov")
        parsed[key] = value
    if "lam" in parsed and parsed.get("cov") != "ewma":
        raise ValueError(
            f"options: lam= is the decay of the EWMA estimator and applies with cov=ewma only "
            f"(here cov={parsed.get('cov', 'sample')})"
        )
    return parsed


def make_model(table, method=None, options=None) -> Model:
    """Validate ``table`` for ``method`` and register it; return the :class:`Model`.

    * ``"historical"`` or ``"cornish-fisher"``: a returns history, kept as it is (a square
      symmetric table, which looks like a covariance, is refused).
    * Otherwise (``"normal"``, ``"montecarlo"`` or blank) a square table is a covariance
      matrix, validated as every covariance is (symmetric, non-negative variances,
      positive semi-definite): one that fails is refused, never read as returns.
    * ``"normal"`` or ``"montecarlo"`` with a table that is not square, or with ``options``:
      a returns history, whose covariance is estimated with ``cov=`` (sample, ewma or
      ledoit-wolf; default sample) and ``lam=`` (EWMA decay, default 0.94) and kept.  (A
      history with as many periods as assets is square: give it an option, ``cov=sample``.)
      A symmetric table or a covariance's handle given options is refused: it is a
      covariance, from which none is estimated.
    * Blank, with a table that is not square: a returns history, kept as it is.

    ``table`` may itself be a handle: its table is used (a returns history made into a
    covariance, for instance).
    """
    name = None if method is None or (isinstance(method, str) and not method.strip()) else risk.check_method(method)
    opts = _parse_options(options)
    mat = as_matrix(resolve_model(table, "model"), "model")  # a handle given to RISKMODEL: its table
    kind = _kind_of(table)
    square = mat.shape[0] == mat.shape[1]
    estimated = name in ("normal", "montecarlo") and (opts or not square)
    if opts and not estimated:
        raise ValueError(
            "options: only apply when a covariance is estimated from a returns history "
            '(method "normal" or "montecarlo" with a returns table)'
        )
    if opts and (kind == "cov" or kind is None and _looks_like_covariance(mat)):
        raise ValueError(
            f"options: apply to a returns history, and this {mat.shape[0]} x {mat.shape[1]} table is "
            + ("a covariance matrix's handle" if kind == "cov" else "symmetric: a covariance matrix")
            + "; give it without options"
        )
    if name in ("historical", "cornish-fisher"):
        if _looks_like_covariance(mat):
            raise ValueError(
                f"model: is a symmetric {mat.shape[0]} x {mat.shape[1]} table, which looks like a covariance "
                f'matrix; the {name} method needs a returns history (rows = periods, columns = assets)'
            )
        kind, kept = "returns", check_returns(mat, name="model")
    elif estimated:
        returns = check_returns(mat, name="model")
        kind = "cov"
        kept = estimators.covariance(returns, opts.get("cov", "sample"), opts.get("lam"))
        kept = checked_covariance(kept, name="model").matrix  # validated and factorised once
    elif square:
        kind, kept = "cov", _square_covariance(mat)
    else:
        kind, kept = "returns", check_returns(mat, name="model")
    if kept.flags.writeable or np.may_share_memory(kept, mat):  # the caller's memory (read-only or not)
        kept = np.array(kept, order="C", copy=True)
        kept.flags.writeable = False
    option_text = ";".join(f"{k}={v}" for k, v in sorted(opts.items()))
    digest = _digest(kind, name or "", option_text, mat)
    handle = f"{PREFIX}{kind}:{kept.shape[0]}x{kept.shape[1]}:{digest}"
    model = Model(handle, kind, kept, name or ("normal" if kind == "cov" else "historical"))
    _register(model)
    return model


def _square_covariance(mat: np.ndarray) -> np.ndarray:
    """A square table validated as a covariance matrix; a refusal says how to give a square
    returns history instead."""
    try:
        return checked_covariance(mat, name="model").matrix
    except ValueError as exc:
        raise ValueError(
            f"{exc}; a square table is read as a covariance matrix (for a returns history with as many "
            'periods as assets, give the method "historical" or "cornish-fisher", or the method "normal" with '
            'the options "cov=sample")'
        ) from None


def _kind_of(value):
    """The kind of model (``"cov"`` or ``"returns"``) of ``value`` if it is a handle this
    process holds, else ``None``."""
    text = _handle_text(value)
    if text is None:
        return None
    with _lock:
        model = _registry.get(text)
    return None if model is None else model.kind


def _handle_text(value):
    """The text of ``value`` if it is one cell holding a handle-like text, else ``None``."""
    if isinstance(value, str):
        text = value
    elif isinstance(value, (np.ndarray, list, tuple)):
        if isinstance(value, np.ndarray) and (value.size != 1 or value.dtype.kind in "biuf"):
            return None  # a range of numbers: never copied to objects just to look for text
        arr = np.asarray(value, dtype=object)
        if arr.size != 1:
            return None
        text = arr.reshape(-1)[0]
        if not isinstance(text, str):
            return None
    else:
        return None
    text = text.strip()
    return text if text.lower().startswith(PREFIX) else None


def resolve_model(value, name: str = "model"):
    """The table behind a handle, or ``value`` unchanged if it is not a handle.

    Every Excel function calls it on its model, covariance and returns arguments.  A handle
    this process does not know (Excel or Python restarted, or text typed by hand) raises a
    ``ValueError`` naming the argument and saying how to refresh it; so does a handle of the
    wrong kind (a returns history where a covariance is needed, or the reverse).
    """
    text = _handle_text(value)
    if text is None:
        return value
    with _lock:
        model = _registry.get(text)
        if model is not None:
            _registry.move_to_end(text)
    if model is None:
        if _HANDLE.match(text) is None:
            raise ValueError(f"{name}: {text!r} is not a risk model handle that xlmvar made; {_REFRESH}")
        if text in _FORGOTTEN:
            raise ValueError(
                f"{name}: the risk model {text!r} was forgotten to keep the tables of this session's "
                f"risk models within {MAX_BYTES / 2**30:g} GiB (xlmvar.excel.handles.MAX_BYTES), and "
                "recalculating its RISKMODEL cell would forget another: use fewer or smaller risk models, "
                "or pass the range itself"
            )
        raise ValueError(
            f"{name}: the risk model {text!r} is not in this Python session (Excel or Python was "
            f"restarted since it was made, or it was forgotten to free memory); {_REFRESH}"
        )
    wanted = _KIND_OF_ARGUMENT.get(name)
    if wanted is not None and model.kind != wanted:
        have = "a covariance matrix" if model.kind == "cov" else "a returns history"
        need = "a covariance matrix" if wanted == "cov" else "a returns history"
        raise ValueError(f"{name}: the risk model {text!r} holds {have}; this argument needs {need}")
    return model.table


@udf
def RISKMODEL(
    model: range_hint("Returns table (rows = periods, columns = assets) or covariance matrix."),
    method: value_hint(str, 'What the model is for: "normal", "montecarlo" (a covariance; estimated from returns if given returns), "historical", "cornish-fisher" (returns). Blank: a square table is a covariance.') = None,
    options: value_hint(str, 'Covariance estimated from returns: "cov=sample|ewma|ledoit-wolf; lam=0.94" (lam with ewma only).') = None,
) -> str:
    """A handle to a validated risk model: pass it to PORTVAR, COMPONENTVAR, ... instead of the range."""
    return make_model(model, method, options).handle
