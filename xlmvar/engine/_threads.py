"""BLAS threads chosen for the size of the problem.

OpenBLAS (numpy's and scipy's BLAS) starts as many threads as there are cores and uses them
for every call.  For small problems the threads cost more than they save, and on a busy
machine a small call can wait for a core by far longer than the work takes (N = 200 was
measured at 104 ms on 2 threads against 2 ms on 1).  :func:`blas_threads` runs a block on one
BLAS thread when its work is below :data:`SMALL_WORK` floating-point operations and on
BLAS's own default number of threads above it, so that a large factorisation nested inside
a small call still gets them; below :data:`TINY_WORK` it changes nothing, nor where every
BLAS call of the block is one that OpenBLAS (0.3.27 on) runs on one thread whatever its
setting (:func:`serial_pass`, :func:`serial_cholesky`, :func:`serial_eigen`,
:func:`serial_gram`): the switch, 5-30 us, is then pure cost, up to a tenth of a small
call.  The passes over a model are made so: :func:`rows_product` and :func:`weighted_rows`
take a table in row blocks that OpenBLAS runs on one thread, so a decomposition over a
history of up to 10,000 days and assets switches nothing.

Every formula of a sheet is small: a decomposition is a few passes over its model
(memory-bound), so the dispatcher runs it on one thread unless the model is very large
(Monte Carlo scenario tables); a covariance's one-off validation (a Cholesky factorisation,
``N^3 / 3`` operations) gets the default threads from about N = 1450 on.

Uses ``threadpoolctl`` (a base dependency; it is in Pyodide's package list) to find the BLAS
libraries if it can be imported; without it, or where no BLAS thread pool is found (Pyodide
has one thread), the blocks run unchanged.  An OpenBLAS not built on OpenMP (numpy's and
scipy's wheels) is switched through its own ``openblas_get_num_threads`` /
``openblas_set_num_threads``: from threadpoolctl 3.8 on, threadpoolctl's ``set_num_threads``
does nothing from any thread but the first that called it (a Dask worker, a server's
request thread), and it costs about 2 us a call in Python where the C call costs a fraction
of that.  OpenBLAS's setting is process-wide: blocks running at once in several threads
share it - one thread while any of them is small, so that none waits for a core (a call
that OpenBLAS runs on one thread anyway counts only if a block was running when it began) -
and the setting in force before the first of them is restored when the last one ends,
whatever order they end in, after an interrupt (Ctrl-C) inside the bookkeeping too, and in
a forked child.  An OpenBLAS built on OpenMP (a limit per thread) is left alone.

A process that is xlmvar's own - the Excel add-in (``import udfs``), the ``xlmvar`` command -
rests BLAS on one thread instead (:func:`rest_blas_on_one_thread`): a small block then
switches nothing and a pass over a table is one product (on one thread anyway), the path of
a process started on one thread, and only a large block switches, to the threads BLAS had
when the rest began.  A process of the user's keeps its setting between blocks and pays the
switch, 2-4% of a cold normal call at N = 128-249 (``benchmarks/bench_threads.py``).

Limits: a large block's threads (a Cholesky factorisation from N ~ 1450) depend on whether
another thread is in a small block at the time, and a factorisation on one thread and on two
can differ in the last bits (1e-15 relative).  The libraries are looked for at the first block:
if that block runs under the user's own one-thread limit, the choice is off for the process; a
user's ``threadpool_limits`` that overlaps a block in another thread can be undone when that
block ends.  A Ctrl-C that lands just outside the bookkeeping (as a block's ``__enter__``
returns, or before its ``__exit__`` takes the lock) leaves the block counted while its
traceback keeps it alive, so BLAS stays on one thread (at rest, a large block so left keeps it
on BLAS's threads) until a later block finds it gone; a finaliser that runs a block while this
thread holds the bookkeeping's lock (garbage collection inside it) would wait for ever.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import math
import os
import threading
import weakref

import numpy as np

__all__ = [
    "SMALL_WORK",
    "blas_threads",
    "blas_default_threads",
    "sized_blas",
    "model_work",
    "simulation_work",
    "gram_work",
    "serial_pass",
    "pass_rows",
    "rows_product",
    "weighted_rows",
    "serial_cholesky",
    "serial_eigen",
    "serial_gram",
    "rest_blas_on_one_thread",
    "blas_resting",
]

#: Below this many floating-point operations a block runs on one BLAS thread.  Measured by
#: ``benchmarks/bench_threads.py`` on a busy 2-core machine, 2 threads stalled a Cholesky
#: factorisation of N = 1000 (3e8 operations) 20x; a stall costs far more than a second
#: thread can save, so only blocks above 1e9 (a factorisation from N ~ 1450, Monte Carlo
#: simulation) get BLAS's default threads.
SMALL_WORK = 1e9

#: Below this many operations nothing is changed: OpenBLAS before 0.3.27 runs a product of
#: fewer than 2,304 x 4 = 9,216 elements on one thread, so there is nothing to stall (later
#: versions run far larger ones so: :data:`OPENBLAS_SERIAL`).  Above it a call is switched
#: to one thread (and back: 18-22 us inside a call, see :func:`blas_threads`), so that no
#: product OpenBLAS would thread - before 0.3.27 a 2,500 x 50 history's P&L, 125,000
#: elements, is one - runs on a second thread that may wait for a core.
TINY_WORK = 2e4

#: From 0.3.27 on (its interface and x86-64 kernel sources), OpenBLAS runs on one thread,
#: whatever its setting: a matrix-vector product (``gemv``) of fewer than 115,200 x
#: GEMM_MULTITHREAD_THRESHOLD (4, its default) elements; a dot product (``ddot``) of at most
#: 10,000; a Cholesky factorisation (``potrf``) of order below 128 (64 rows a thread);
#: LAPACK's symmetric eigenvalues (``syevd``, no vectors) below order 64, where the
#: tridiagonal reduction's first ``syr2k`` reaches 1,000 ``n k`` (32 x 32) and threads;
#: eigenvectors too below order 26 (0.3.31's parallel ``dlaed3`` in the divide and conquer
#: threads from there; 0.3.27-0.3.30 from 64, as the eigenvalues); a table's product with
#: itself (``R'R``, a covariance estimate) up to ``T n (n + 1)`` = 439,776 (``syrk``,
#: 109,944 x 4; a ``gemm`` of ``T n^2`` below 524,288, twice its 262,144, takes one thread
#: too).  A block made only of such calls switches nothing when no block is running, in any
#: thread: there is nothing to stall.  Measured on 0.3.29, 0.3.30 and 0.3.31, each the smallest
#: over the CPUs' kernels measured (with the SkylakeX kernels, on an AMD EPYC, the eigenvalues
#: thread from order 65 and ``R'R`` from 70 columns); a later release that threads smaller
#: calls is caught by ``tests/test_speed_contracts.py``, which checks each size on the
#: installed OpenBLAS (its worker threads take no CPU time at the largest of them).
OPENBLAS_SERIAL = {
    "version": (0, 3, 27),
    "gemv": 460_800,
    "dot": 10_000,
    "potrf": 128,
    "eigvalsh": 64,
    "eigh": 26,
    "gram": 109_944 * 4,
}

_state: dict = {}
_lock = threading.Lock()


def _process_wide(pool) -> bool:
    """True if the pool's setting is the process's: not an OpenBLAS built on OpenMP, whose
    limit is each thread's own (a process-wide bookkeeping of it would leave one thread on
    one BLAS thread for good and another unlimited)."""
    return not (getattr(pool, "internal_api", None) == "openblas" and getattr(pool, "threading_layer", None) == "openmp")


def _switches(pool):
    """``(get, set)`` of a BLAS pool's threads: OpenBLAS's own C functions (one C call each,
    from any thread), else the threadpoolctl controller's methods (MKL, BLIS, FlexiBLAS)."""
    if getattr(pool, "internal_api", None) == "openblas":
        for prefix in ("", "scipy_"):
            for suffix in ("", "64_", "_64"):
                try:  # CDLL[name] is a new function pointer: threadpoolctl's own are left as they are
                    get = pool.dynlib[f"{prefix}openblas_get_num_threads{suffix}"]
                    put = pool.dynlib[f"{prefix}openblas_set_num_threads{suffix}"]
                except (AttributeError, OSError):
                    continue
                get.argtypes, get.restype = [], ctypes.c_int
                put.argtypes, put.restype = [ctypes.c_int], None
                return get, put
    return pool.get_num_threads, pool.set_num_threads


def _blas_pools():
    """``(BLAS thread pools, their default threads)``: the pools whose setting is the
    process's; ``([], 1)`` without threadpoolctl or without such a pool."""
    with _lock:
        if "pools" not in _state:
            try:
                from threadpoolctl import ThreadpoolController

                pools = [p for p in ThreadpoolController().lib_controllers if p.user_api == "blas" and _process_wide(p)]
                default = max((p.num_threads for p in pools), default=1)
                switches = [_switches(p) for p in pools]
                serial = bool(pools) and all(_knows_serial(p) for p in pools)
            except Exception:  # not installed, or a platform it does not know
                pools, default, switches, serial = [], 1, [], False
            # one update (atomic under the GIL), "default" last: a reader that finds it finds all
            _state.update({"pools": pools, "switches": switches, "serial": serial, "default": default})
            if _state.get("rest wanted"):  # asked for before the libraries were looked for
                _rest(True)
                del _state["rest wanted"]  # after: a rest cut short by an interrupt is still wanted
        return _state["pools"], _state["default"]


def _knows_serial(pool) -> bool:
    """True if ``pool`` is an OpenBLAS whose one-thread sizes are :data:`OPENBLAS_SERIAL`'s
    (0.3.27 or later; a version it does not print, or another library, is not)."""
    if getattr(pool, "internal_api", None) != "openblas":
        return False
    try:
        version = tuple(int(part) for part in str(pool.version).split(".")[:3])
    except ValueError:
        return False
    return len(version) == 3 and version >= OPENBLAS_SERIAL["version"]


def serial_pass(shape) -> bool:
    """True if OpenBLAS runs a pass over a table of ``shape`` on one thread: products of the
    table with a vector on either side made in row blocks (:func:`rows_product`,
    :func:`weighted_rows`; the covariance's blocks of :func:`~._cache.product`), and dot
    products along either of its sides - true up to 10,000 rows and columns."""
    shape = tuple(int(d) for d in shape) or (1,)
    return max(shape) <= OPENBLAS_SERIAL["dot"]


#: Rows of a block of :func:`rows_product` and :func:`weighted_rows` are a multiple of this:
#: OpenBLAS's x86-64 ``gemv`` kernels take rows four at a time, so every block but the last
#: is taken as the one product over the table takes those rows.
_ROW_ALIGN = 16


def pass_rows(columns: int) -> int:
    """Rows of each block of a pass over a table of ``columns`` columns: the most, a multiple
    of 16, whose product with a vector OpenBLAS runs on one thread (fewer than 460,800
    elements; 16 rows from 28,800 columns on, where a dot along a row threads anyway)."""
    rows = (OPENBLAS_SERIAL["gemv"] - 1) // max(int(columns), 1)
    return max(_ROW_ALIGN, rows - rows % _ROW_ALIGN)


def _in_blocks(table: np.ndarray, vector: np.ndarray, step: int) -> bool:
    """True if a pass of ``table`` (2-D) with ``vector`` (1-D) is made in row blocks: it is
    longer than one block and at most 10,000 rows, and the blocks stand in for a switch of
    threads (every BLAS is an OpenBLAS from 0.3.27 on more than one thread, not resting on
    one thread while no block runs: elsewhere the switch is made anyway, or the one product
    runs on one thread, and blocks would only add calls)."""
    if not (table.ndim == 2 and vector.ndim == 1 and step < table.shape[0] <= OPENBLAS_SERIAL["dot"]):
        return False
    if "default" not in _state:  # the libraries not looked for yet (written last)
        _blas_pools()
    return _state["serial"] and _state["default"] > 1 and ("rest" not in _state or bool(_running))


def rows_product(table: np.ndarray, vector: np.ndarray) -> np.ndarray:
    """``table @ vector`` (a table's P&L ``R x``) in row blocks of :func:`pass_rows`.

    Each row is one dot product whichever block it falls in, so the result is the single
    product's to rounding (within ``n eps`` of the sum of ``|r_tj x_j|``; with OpenBLAS the
    one-thread product's bits, but for a last block of one row, which numpy multiplies
    another way); each block is a ``gemv`` that OpenBLAS runs on one thread whatever its
    setting, so the pass needs no switch of BLAS threads (:func:`blas_threads`, ``serial``)
    and cannot wait for a busy core.  One product where the blocks would not stand in for a
    switch (:func:`_in_blocks`): a table of more than 10,000 rows (a Monte Carlo scenario
    table, whose dot products thread anyway: its block's threads are :func:`blas_threads`'s
    choice), another BLAS, one thread.
    """
    table, vector = np.asarray(table), np.asarray(vector)
    step = pass_rows(table.shape[-1]) if table.ndim else 0
    if not _in_blocks(table, vector, step):
        return table @ vector
    out = np.empty(table.shape[0], np.promote_types(table.dtype, vector.dtype))
    for start in range(0, table.shape[0], step):
        np.matmul(table[start : start + step], vector, out=out[start : start + step])
    return out


def weighted_rows(weights: np.ndarray, table: np.ndarray) -> np.ndarray:
    """``weights @ table`` (a weighted sum of a table's rows, ``u' R``) in row blocks of
    :func:`pass_rows`, summed block by block: as :func:`rows_product`, one thread without a
    switch (and one product where :func:`rows_product` makes one).  The sum over the rows is
    taken in another order than one ``gemv`` would: within ``T eps`` of the sum of
    ``|u_t r_tj|``."""
    weights, table = np.asarray(weights), np.asarray(table)
    step = pass_rows(table.shape[-1]) if table.ndim else 0
    if weights.shape[:1] != table.shape[:1] or not _in_blocks(table, weights, step):
        return weights @ table
    out = weights[:step] @ table[:step]
    for start in range(step, table.shape[0], step):
        out += weights[start : start + step] @ table[start : start + step]
    return out


def serial_gram(rows: float, columns: float) -> bool:
    """True if OpenBLAS makes a ``(rows, columns)`` table's product with itself (``syrk``
    for ``R'R``, ``gemm`` for ``(w R)'R``) on one thread."""
    return rows * columns * (columns + 1.0) <= OPENBLAS_SERIAL["gram"]


def serial_cholesky(n: int) -> bool:
    """True if OpenBLAS factorises a matrix of order ``n`` on one thread."""
    return n < OPENBLAS_SERIAL["potrf"]


def serial_eigen(n: int, vectors: bool = False) -> bool:
    """True if LAPACK's symmetric eigensolver on OpenBLAS runs on one thread at order ``n``
    (``numpy.linalg.eigvalsh``; ``eigh`` with ``vectors``)."""
    return n < OPENBLAS_SERIAL["eigh" if vectors else "eigvalsh"]


def blas_default_threads() -> int:
    """Threads BLAS uses when not limited (1 without threadpoolctl or without a BLAS pool)."""
    return _blas_pools()[1]


#: The blocks running now, by thread: each thread's stack of ``(wish, weak reference to the
#: block)``, a wish being ``_SMALL`` or ``_LARGE``; the setting of each pool before the first
#: block began, and the setting made since.  Guarded by ``_lock``.  An entry whose block is
#: gone was left by an interrupt (Ctrl-C) inside the bookkeeping, and is dropped.
_running: dict = {}
_saved: list = []
_current: list = []
_SMALL, _LARGE = "small", "large"
_get_ident = threading.get_ident


def _innermost(stack):
    """The wish of the innermost live block of a thread's stack (dropping the dead ones on
    top), or ``None``."""
    while stack and stack[-1][1]() is None:
        stack.pop()
    return stack[-1][0] if stack else None


def _prune() -> None:
    """Drop the threads with no live block (``_lock`` held); with none left, restore the
    setting saved before the first block."""
    for me in [me for me, stack in _running.items() if _innermost(stack) is None]:
        del _running[me]
    if not _running and _saved:
        _restore()


def _restore() -> None:
    """Set every pool back to the setting saved before the first block (``_lock`` held, no
    block running)."""
    for (get, put), before in zip(_state["switches"], _saved):
        if get() != before:
            put(before)
    _current.clear()  # first: cut short between the two, the restore is left pending
    _saved.clear()


def _set(force: bool = False, prune: bool = True) -> None:
    """Set every pool for the blocks running now (``_lock`` held): one thread if any thread's
    innermost block is small (two calls at once each run on one thread, so neither waits for
    a core), else the setting saved before the first block (BLAS's default, or the limit
    its user set; while BLAS rests on one thread, the setting it had when the rest began);
    with no block left, the setting saved again (:func:`_prune`).  A pool is set
    only when that changes its setting (a C call); ``force`` reads each setting first."""
    if prune:
        _prune()
        if not _running:
            return
    small = False
    for stack in _running.values():
        if stack[-1][0] is _SMALL:
            small = True
            break
    large = _state.get("rest") or _saved
    for i, (get, put) in enumerate(_state["switches"]):
        wanted = 1 if small else large[i]
        if force:
            _current[i] = get()
        if _current[i] != wanted:
            _current[i] = wanted
            put(wanted)


class _Threads:
    """Context: a block of small (one thread) or large (the default threads) BLAS work.

    Blocks may nest and may overlap in different threads, ending in any order: the setting
    follows the blocks running (:func:`_set`), and the one saved before the first block is
    restored when the last one ends.  A block nested in one of the same kind in its thread
    changes nothing and makes no C call; it keeps its own entry, so that blocks of a
    generator or a coroutine, which can end after the block around them or in another
    thread than they began in, stay counted until they end, and are then found wherever
    they are.  An
    exception inside the bookkeeping itself (Ctrl-C) leaves it consistent: the block is
    dropped and the setting read back and set again (a restore cut short is finished by the
    next first block); a block whose exit it skipped is dropped when it is found dead.
    """

    __slots__ = ("wish", "__weakref__")

    def __init__(self, wish: str):
        self.wish = wish

    # Each locked region is one call on the line of its ``with``: a trace function (a debugger,
    # coverage) raising Ctrl-C between the lock and the handler in the call, or at a second
    # line event of the ``with`` on leaving it, would leave the lock held for good.
    def __enter__(self):
        with _lock: self._enter(_get_ident())  # noqa: E701
        return self

    def __exit__(self, *exc):
        with _lock: self._exit(_get_ident())  # noqa: E701
        return False

    def _enter(self, me) -> None:
        try:
            if _running:
                stack = _running.get(me)
                if len(_running) == 1 and stack and stack[-1][0] is self.wish and stack[-1][1]() is not None:
                    stack.append((self.wish, weakref.ref(self)))  # nested in a live block of its kind
                    return
                _prune()
            if not _running:  # the first block: the setting to come back to
                if _saved:  # a restore cut short by an interrupt: finish it before reading
                    _restore()
                small = self.wish is _SMALL  # else the setting stays, or leaves the rest
                large = _state.get("rest")
                for i, (get, put) in enumerate(_state["switches"]):
                    before = get()
                    _saved.append(before)
                    wanted = 1 if small else (large[i] if large else before)
                    _current.append(wanted)
                    if wanted != before:
                        put(wanted)
                _running[me] = [(self.wish, weakref.ref(self))]
                return
            _running.setdefault(me, []).append((self.wish, weakref.ref(self)))
            _set(prune=False)  # other threads' blocks, or dead ones dropped: set for all of them
        except BaseException:
            _heal(me, self)
            raise

    def _exit(self, me) -> None:
        try:
            stack = _running.get(me)
            if len(_running) == 1 and stack is not None and len(stack) == 1 and stack[0][1]() is self:
                del _running[me]  # the last block, this thread's only one: the usual case
                _restore()
                return
            if stack and len(stack) > 1 and stack[-1][1]() is self and stack[-2][0] is self.wish and stack[-2][1]() is not None:
                stack.pop()  # back in a live block of its kind: nothing changes
                return
            stack = _running.get(me, [])
            _innermost(stack)  # dead blocks above this one (their exits skipped)
            if stack and stack[-1][1]() is self:
                stack.pop()
            else:  # ending out of order, or in another thread than it began in (a generator)
                for entries in _running.values():
                    entries[:] = [entry for entry in entries if entry[1]() is not self]
            if not stack and len(_running) == 1 and me in _running:  # the last block
                del _running[me]
                _restore()
            elif _innermost(stack) != self.wish:  # else back in a block of its kind
                _set()
        except BaseException:
            _heal(me, self)
            raise


def _heal(me, block) -> None:
    """After an exception inside the bookkeeping (``_lock`` held): drop ``block``'s entry, and
    read back and set every pool for the blocks left."""
    if me in _running:
        _running[me] = [entry for entry in _running[me] if entry[1]() is not block]
    _set(force=True)


def _after_fork() -> None:
    """In a forked child: a new lock (another thread may have held it), and only the forking
    thread's blocks, which go on in the child; the others' threads do not exist there."""
    global _lock
    _lock = threading.Lock()
    me = threading.get_ident()
    for other in [t for t in _running if t != me]:
        del _running[other]
    if "switches" in _state:
        _set(force=True)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


def blas_threads(work: float, serial: bool = False):
    """Context manager: run the block on the BLAS threads ``work`` operations deserve.

    One thread below :data:`SMALL_WORK`, the setting in force before the first running block
    above it (BLAS's default unless the user limited it; so a large block inside a small one
    gets its threads back); that setting is restored when the last running block ends.  While
    blocks run in several threads at once, one thread if any of them is small.  Does nothing
    when BLAS has a single thread anyway or threadpoolctl is missing, below :data:`TINY_WORK`,
    below :data:`SMALL_WORK` while BLAS rests on one thread and no block is running
    (:func:`rest_blas_on_one_thread`), or when ``serial`` (every BLAS call of the block is one
    that OpenBLAS runs on one thread, see :data:`OPENBLAS_SERIAL`), every BLAS is such an
    OpenBLAS and no block is running (else the block counts as small, so that another thread's
    large block runs on one thread while this one runs: neither waits for a core).  A serial
    block that found no block running is not counted: a large block that another thread begins
    while it runs keeps its threads.  A switch and back costs about 5 us in a loop of blocks
    and 18-22 us inside a call, with the CPU caches full of the call's data (every Python step
    about 1 us): a bare switch (the C calls alone) 10-12 us of it, the bookkeeping (a lock, a
    weak reference, the stacks of blocks) the rest (``benchmarks/bench_switch.py``); a nested
    block of the same kind a few us more.  The first block's entry, the usual case, is
    straight-line code for that reason.  The last block's exit reads each setting back
    (:func:`_restore`): a third party's limit begun inside a small block reads its one thread
    as the setting to come back to, and may put it back after that block ends.
    """
    default = _state.get("default")
    if default is None:  # the libraries not looked for yet
        default = _blas_pools()[1]
    if default <= 1 or work < TINY_WORK or (serial and not _running and _state.get("serial", False)):
        return contextlib.nullcontext()
    if work < SMALL_WORK and not _running and "rest" in _state:  # on one thread already
        return contextlib.nullcontext()
    return _Threads(_SMALL if work < SMALL_WORK else _LARGE)


def rest_blas_on_one_thread(rest: bool = True) -> None:
    """Keep BLAS on one thread between xlmvar's blocks, for a process that is xlmvar's own.

    A small block (:func:`blas_threads`, below :data:`SMALL_WORK`) switches BLAS to one thread
    and back: 2-4% of a cold normal call at N = 128-249, where the Cholesky factorisation is
    the one BLAS call OpenBLAS would thread (``benchmarks/bench_switch.py``), a cost paid only
    because the process's setting is the user's and is given back after every block.  A process
    whose every BLAS call is xlmvar's - the Excel add-in (``import udfs``), the ``xlmvar``
    command - can rest BLAS on one thread instead: each pool is set to one thread now, a small
    block then changes nothing (no C call, no bookkeeping: exactly the path of a process
    started on one thread), and a large block gets the setting each pool had when the rest
    began (BLAS's default, or its user's limit; a ``threadpool_limits`` begun later is not
    read) and goes back to one thread when it ends.  Every large computation of the engine is
    such a block (a covariance's factorisation, Monte Carlo tables, ``nearest_corr``'s
    eigendecompositions, ``risk_parity``'s solves, a factor regression, a factor model's
    covariance, the batch job's P&L).  A setting changed behind the rest's back (a
    ``threadpool_limits`` that began before the rest and ends after it) holds until the rest is
    asked for again.  ``rest=False`` ends the rest: each pool gets that setting back.  Calling
    it again while resting sets any pool found off one thread back to one.

    Every BLAS call through the pools found at xlmvar's first block (numpy's, and any other
    loaded by then) runs on one thread while the process rests, the user's own too (numpy's
    ``@`` of a 2,000 x 2,000 matrix: about 2x slower on 2 cores); a library loaded later
    (scipy's own OpenBLAS, by a first ``import scipy.linalg``) keeps its setting.  A process
    that runs other numerical work keeps the default (no rest) and pays the switch.  A small
    block that begins while another thread's large block runs still counts as small (one thread
    for both), but one that begins just before it runs on the large block's threads while they
    overlap, and one running when the rest ends gets BLAS's threads from then on.  Does nothing
    without threadpoolctl or a BLAS thread pool whose setting is the process's
    (:func:`blas_threads`).  Before the libraries are looked for (xlmvar's first block), the
    rest is only noted, and begins then: importing the add-in costs nothing for it.
    """
    # one call on the line of the ``with`` (see :class:`_Threads`): a trace function raising
    # Ctrl-C at a second line event of a ``with`` would leave the lock held
    with _lock: _rest_or_note(bool(rest))  # noqa: E701


def _rest_or_note(rest: bool) -> None:
    """Begin or end the rest, or note the wish before the libraries are looked for
    (``_lock`` held)."""
    if "default" not in _state:
        _state["rest wanted"] = rest
    else:
        _state.pop("rest wanted", None)
        _rest(rest)


def _rest(rest: bool) -> None:
    """Begin or end the rest on one thread (``_lock`` held, the libraries looked for)."""
    switches = _state["switches"]
    if not _running and _saved:  # a restore cut short by an interrupt: finish it before reading
        _restore()
    if rest == ("rest" in _state):
        if rest and not _running:  # resting already: every pool on one thread (a rest cut short)
            for get, put in switches:
                if get() != 1:
                    put(1)
        return
    if _running:  # the setting the last block restores; the running ones keep their kind's
        if rest:  # large blocks get the setting in force before the running blocks
            _state["rest"], _saved[:] = list(_saved), [1] * len(switches)
        else:
            _saved[:] = _state.pop("rest")
        _set(force=True)
        return
    now = [get() for get, _ in switches]
    large = _state.get("rest")
    wanted = [1] * len(switches) if rest else large
    try:
        if rest:  # large blocks get the setting in force now
            _state["rest"] = now
        else:
            del _state["rest"]
        for (_, put), before, setting in zip(switches, now, wanted):
            if before != setting:
                put(setting)
    except BaseException:  # an interrupt: the state and every pool as they were
        if rest:
            _state.pop("rest", None)
        else:
            _state["rest"] = large
        for (_, put), before in zip(switches, now):
            put(before)
        raise


def blas_resting() -> bool:
    """True if BLAS rests on one thread between blocks, or will from the first block on
    (:func:`rest_blas_on_one_thread`)."""
    return "rest" in _state or bool(_state.get("rest wanted"))


def model_work(positions=None, model=None, *args, returns=None, cov=None, pnl=None, shocks=None, **kwargs) -> tuple[float, bool]:
    """Work of a decomposition that makes a pass or two over its model (products with one
    vector, dot products along its sides): ``(2 size, serial_pass(shape))``.  The model is
    the second argument, or the one named ``returns``, ``cov``, ``pnl`` or ``shocks``."""
    model = next((m for m in (model, returns, cov, pnl, shocks) if m is not None), None)
    try:
        shape = _shape(model)
        return (2.0 * float(math.prod(shape)), serial_pass(shape)) if shape else (0.0, False)
    except (TypeError, ValueError, OverflowError):  # not a table: validation refuses it
        return 0.0, False


def _shape(value) -> tuple:
    """The shape of an array (or a table such as a DataFrame), or of a list of rows, read
    without converting it; ``()`` for anything else (which validation will refuse)."""
    try:
        shape = getattr(value, "shape", None)
        if shape is not None:
            return tuple(shape)
        if isinstance(value, (list, tuple)):
            first = value[0] if value else None
            sized = hasattr(first, "__len__") and not isinstance(first, (str, bytes))
            return (len(value), len(first)) if sized else (len(value),)  # rows: lists, tuples, arrays
    except Exception:  # a shape that is not one
        pass
    return ()


def gram_work(returns=None, *args, **kwargs) -> tuple[float, bool]:
    """Work of a covariance estimate, a ``(T, n)`` table's product with itself:
    ``(2 T n^2, serial_gram(T, n))``."""
    shape = _shape(returns)
    try:
        t, n = (float(d) for d in shape)
    except (TypeError, ValueError, OverflowError):  # not a table: validation refuses it
        return 0.0, False
    return 2.0 * t * n * n, serial_gram(t, n)


def simulation_work(positions=None, cov=None, measure=None, confidence=None, horizon=None, mean=None, draws=None, *args, **kwargs) -> tuple[float, bool]:
    """Work of a Monte Carlo decomposition: simulating ``draws x n`` returns, ``draws n^2``."""
    try:
        d = 100_000.0 if draws is None else float(draws)
        return max(d, 0.0) * float(np.size(cov)), False
    except Exception:  # anything validation will refuse
        return 0.0, False


def sized_blas(work):
    """Decorator: run the function under :func:`blas_threads` of ``work(*args, **kwargs)``,
    a pair ``(operations, serial)``.

    Applied to each method's ``decompose`` and ``standalone``, so that a result does not
    depend on the entry point it was reached by (the dispatcher or the method's module).
    """

    def decorate(func):
        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            try:
                size = work(*args, **kwargs)
            except TypeError:  # arguments the function does not take: its own message
                return func(*args, **kwargs)
            with blas_threads(*size):
                return func(*args, **kwargs)

        return wrapper

    return decorate
