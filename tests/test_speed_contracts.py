"""Speed as contracts that do not depend on the machine: counts of factorisations, of
symmetry checks and of BLAS threads, and the modules ``import udfs`` loads."""

from __future__ import annotations

import contextlib
import math
import subprocess
import sys

import numpy as np
import pytest

import xlmvar
from xlmvar.engine import _cache, _lapack, _threads, _validation


@pytest.fixture(autouse=True)
def _fresh():
    xlmvar.clear_caches()
    yield
    xlmvar.clear_caches()


@pytest.fixture
def counts(monkeypatch):
    """Count every factorisation (Cholesky, eigendecomposition) and symmetry check."""
    seen = {"factorisations": 0, "symmetry": 0}

    def counting(func, what):
        def wrapper(*args, **kwargs):
            seen[what] += 1
            return func(*args, **kwargs)

        return wrapper

    # the routine of a direct dpotrf looked up first, so that the check of its lookup (two
    # factorisations by it and two by numpy) is not counted whichever test runs first
    _lapack._routine()
    for name in ("cholesky", "eigh", "eigvalsh"):
        monkeypatch.setattr(np.linalg, name, counting(getattr(np.linalg, name), "factorisations"))
    # a Cholesky factorisation by LAPACK's dpotrf called directly (numpy's function: above)
    monkeypatch.setattr(_lapack, "_call", counting(_lapack._call, "factorisations"))
    monkeypatch.setattr(_validation, "_check_symmetric", counting(_validation._check_symmetric, "symmetry"))
    return seen


N = _validation.COV_CACHE_MIN_SIZE  # the smallest covariance that is validated once and kept


def _cov(n, seed=0):
    a = np.random.default_rng(seed).standard_normal((2 * n, n)) * 0.01
    return a.T @ a / (2 * n)


def test_what_if_calls_on_one_covariance_factorise_it_once(counts):
    n = N
    s = _cov(n)
    rng = np.random.default_rng(1)
    for _ in range(6):  # fresh arrays of the same content, new positions: a what-if sheet
        x = rng.standard_normal(n) * 1e6
        d = xlmvar.decompose(x, s.copy(), "es", 0.99)
        assert d.component.sum() == pytest.approx(d.total, rel=1e-12)
        xlmvar.portfolio_var(x, s.copy(), 0.95)
    assert counts == {"factorisations": 1, "symmetry": 1}


def test_monte_carlo_reuses_the_factor_of_the_validation(counts):
    n = N
    s = _cov(n, 2)
    for seed in (1, 1, 2):
        xlmvar.decompose(np.ones(n), s.copy(), "var", method="montecarlo", draws=500, seed=seed)
    # one Cholesky: the validation's, reused to simulate both seeds' scenarios
    assert counts == {"factorisations": 1, "symmetry": 1}


def test_a_singular_covariance_is_checked_once_and_factorised_for_simulation(counts):
    n = N
    a = np.random.default_rng(3).standard_normal((n, 10))
    s = a @ a.T / 10.0  # rank 10: positive semi-definite, not definite
    for _ in range(3):
        xlmvar.portfolio_var(np.ones(n), s.copy(), method="montecarlo", draws=500)
    # the failed plain Cholesky, the jittered one (PSD within tolerance), one eigh for L
    assert counts == {"factorisations": 3, "symmetry": 1}


def test_a_matrix_the_engine_returned_is_recognised_without_a_pass(monkeypatch):
    s = _validation.check_covariance(_cov(N))
    monkeypatch.setattr(_validation, "array_key", lambda *a, **k: pytest.fail("content compared again"))
    again = _validation.check_covariance(s)
    # the cache's own matrix, in a new read-only view (a caller cannot reshape the next one's)
    assert again.base is s.base and again is not s and not again.flags.writeable


def test_a_what_if_call_compares_and_multiplies_in_one_pass(counts, monkeypatch):
    s = _cov(N, 4)
    xlmvar.portfolio_var(np.ones(N), s.copy())  # validated and cached once
    fused = []
    original = _cache.same_content_product
    monkeypatch.setattr(_cache, "same_content_product", lambda *a: fused.append(1) or original(*a))
    # no comparison of the whole matrix before a second pass to multiply it
    monkeypatch.setattr(_cache.ContentCache, "lookup", lambda *a, **k: pytest.fail("compared whole"))
    monkeypatch.setattr(_validation, "product", lambda *a, **k: pytest.fail("multiplied in a second pass"))
    monkeypatch.setattr(_validation, "as_matrix", lambda *a, **k: pytest.fail("the covariance converted again"))
    # the fresh array is checked against the stored blocks' digests: the stored copy is not read
    monkeypatch.setattr(_cache, "_memcmp", lambda: pytest.fail("compared with the stored copy"))
    monkeypatch.setattr(_cache, "same_content", lambda *a: pytest.fail("compared with the stored copy"))
    rng = np.random.default_rng(5)
    for _ in range(4):
        x = rng.standard_normal(N) * 1e6
        d = xlmvar.decompose(x, s.copy(), "var", 0.99)
        assert d.component.sum() == pytest.approx(d.total, rel=1e-12)
        assert xlmvar.portfolio_sigma(x, s.copy()) == pytest.approx(np.sqrt(x @ s @ x), rel=1e-12)
    assert len(fused) == 8
    assert counts == {"factorisations": 1, "symmetry": 1}


def test_a_handle_s_matrix_is_multiplied_without_a_comparison(monkeypatch):
    from xlmvar.excel import handles

    s = _cov(N, 6)
    table = handles.make_model(s, "normal").table
    monkeypatch.setattr(_validation, "array_key", lambda *a, **k: pytest.fail("content compared again"))
    x = np.linspace(-1.0, 1.0, N)
    assert xlmvar.portfolio_sigma(x, table) == pytest.approx(np.sqrt(x @ s @ x), rel=1e-12)
    handles.clear_models()


def test_small_covariances_are_validated_every_time_where_a_cache_would_not_pay(counts):
    s = _cov(N - 1)
    for _ in range(3):
        xlmvar.portfolio_var(np.ones(N - 1), s.copy())
    assert counts == {"factorisations": 3, "symmetry": 3}


def test_blas_threads_follow_the_work():
    pools, default = _threads._blas_pools()
    if default <= 1:  # OPENBLAS_NUM_THREADS=1, or no threadpoolctl: nothing to choose
        with _threads.blas_threads(1e12):
            assert all(p.get_num_threads() <= 1 for p in pools)
        return
    with _threads.blas_threads(_threads.SMALL_WORK / 10):
        assert {p.get_num_threads() for p in pools} == {1}
        with _threads.blas_threads(_threads.SMALL_WORK * 10):  # a big block nested in a small one gets its threads
            assert {p.get_num_threads() for p in pools} == {default}
        assert {p.get_num_threads() for p in pools} == {1}
    assert {p.get_num_threads() for p in pools} == {default}


def test_a_generators_block_that_ends_after_the_one_around_it_stays_counted():
    # a generator's small block, resumed inside the caller's small block, ends first; the
    # caller's block must still run on one thread (a nested block handed out as a null
    # context left the process on two there, an adversarial review found)
    pools, default = _two_threads_or_skip()
    small = _threads.SMALL_WORK / 10

    def stream():
        with _threads.blas_threads(small):
            yield

    results = stream()
    next(results)
    with _threads.blas_threads(small):
        next(results, None)  # the generator's block ends inside the caller's
        assert {p.get_num_threads() for p in pools} == {1}
    assert not _threads._running and {p.get_num_threads() for p in pools} == {default}


def test_blas_threads_are_chosen_from_any_thread():
    # threadpoolctl's set_num_threads does nothing from a thread other than the first to call
    # it: a Dask worker or a server's request thread would have run every call on 2 threads
    import threading

    pools, default = _threads._blas_pools()
    if default <= 1:
        pytest.skip("BLAS runs on one thread here: nothing to choose")
    with _threads.blas_threads(_threads.SMALL_WORK / 10):  # the main thread calls first
        assert {p.get_num_threads() for p in pools} == {1}
    seen = {}

    def worker():
        with _threads.blas_threads(_threads.SMALL_WORK / 10):
            seen["inside"] = {p.get_num_threads() for p in pools}
        seen["after"] = {p.get_num_threads() for p in pools}

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert seen == {"inside": {1}, "after": {default}}


def test_blocks_overlapping_in_threads_stay_limited_and_restore_the_setting():
    # blocks in two threads that end in any order: the one still running stays on one thread
    # while it is small, and the setting before the first block comes back after the last
    # (each block restoring its own "before" left the process on 1 thread, or a small block
    # on 2, an adversarial review found)
    import threading

    pools, default = _threads._blas_pools()
    if default <= 1:
        pytest.skip("BLAS runs on one thread here: nothing to choose")
    small, large = _threads.SMALL_WORK / 10, _threads.SMALL_WORK * 10
    threads_now = lambda: {p.get_num_threads() for p in pools}  # noqa: E731

    def overlap(first, second, first_ends_first):
        began, end_first, end_second, seen = threading.Event(), threading.Event(), threading.Event(), {}

        def run(work, mine, ends, name):
            with _threads.blas_threads(work):
                mine.set()
                ends.wait(5)
                seen[name] = threads_now()

        one = threading.Thread(target=run, args=(first, began, end_first, "first"))
        one.start()
        began.wait(5)
        joined = threading.Event()
        two = threading.Thread(target=run, args=(second, joined, end_second, "second"))
        two.start()
        joined.wait(5)
        seen["both"] = threads_now()
        (end_first if first_ends_first else end_second).set()
        (one if first_ends_first else two).join(5)
        seen["one left"] = threads_now()
        (end_second if first_ends_first else end_first).set()
        one.join(5)
        two.join(5)
        seen["after"] = threads_now()
        return seen

    for first_ends_first in (True, False):
        got = overlap(small, small, first_ends_first)
        assert got["both"] == got["one left"] == {1} and got["after"] == {default}
        got = overlap(small, large, first_ends_first)
        assert got["both"] == {1} and got["after"] == {default}
        assert got["one left"] == ({default} if first_ends_first else {1})  # the large one alone gets its threads
        got = overlap(large, large, first_ends_first)
        assert got["both"] == got["one left"] == {default} and got["after"] == {default}


def _two_threads_or_skip():
    pools, default = _threads._blas_pools()
    if default <= 1:
        pytest.skip("BLAS runs on one thread here: nothing to choose")
    return pools, default


def _small_block_interrupted_in(get, put):
    """Run a small block with the first pool switched through ``get``/``put`` (which raise
    KeyboardInterrupt where Ctrl-C is to strike); the pool's own switches are put back."""
    switches = _threads._state["switches"]
    own = switches[0]
    switches[0] = (get, put)
    try:
        with pytest.raises(KeyboardInterrupt):
            with _threads.blas_threads(_threads.SMALL_WORK / 10):
                pass
    finally:
        switches[0] = own


def test_an_interrupt_inside_the_bookkeeping_leaves_it_consistent():
    # Ctrl-C inside a switch left a stale entry: BLAS stuck on one thread, or every later
    # call raising IndexError (an adversarial review found it)
    pools, default = _two_threads_or_skip()
    get, put = _threads._state["switches"][0]
    calls = []

    def interrupted(n):  # the first switch is made, then Ctrl-C strikes
        calls.append(n)
        put(n)
        if len(calls) == 1:
            raise KeyboardInterrupt

    _small_block_interrupted_in(get, interrupted)
    assert calls[0] == 1  # the interrupt struck the switch to one thread
    assert not _threads._running and {p.get_num_threads() for p in pools} == {default}
    with _threads.blas_threads(_threads.SMALL_WORK / 10):
        assert {p.get_num_threads() for p in pools} == {1}
    assert {p.get_num_threads() for p in pools} == {default}


def test_a_second_interrupt_inside_the_restore_does_not_lose_the_setting():
    # Ctrl-C in the last block's restore, and again in the repair of the first: no block
    # runs, but the restore was cut short; the next block must not take one thread for the
    # setting to come back to (it did: every later block, large ones too, ran on one thread)
    pools, default = _two_threads_or_skip()
    get, put = _threads._state["switches"][0]
    struck = []

    def put_interrupted(n):  # the restore's switch back: Ctrl-C before it is made
        if n == default and not struck:
            struck.append("put")
            raise KeyboardInterrupt
        put(n)

    def get_interrupted():  # the repair reads the setting: Ctrl-C again
        value = get()
        if struck == ["put"]:
            struck.append("get")
            raise KeyboardInterrupt
        return value

    _small_block_interrupted_in(get_interrupted, put_interrupted)
    assert struck == ["put", "get"] and not _threads._running  # both struck, no block runs
    assert {p.get_num_threads() for p in pools} == {1}  # the restore was cut short
    with _threads.blas_threads(_threads.SMALL_WORK * 10):
        assert {p.get_num_threads() for p in pools} == {default}
    assert {p.get_num_threads() for p in pools} == {default}


def _interrupt_at(func, text):
    """A trace function raising KeyboardInterrupt (once) at the line of ``func`` that reads
    ``text``: Ctrl-C landing there, as under a debugger or coverage."""
    import inspect
    import sys

    lines, first = inspect.getsourcelines(func)
    target = first + next(i for i, line in enumerate(lines) if line.strip().startswith(text))

    def local(frame, event, arg):
        if event == "line" and frame.f_lineno == target:
            sys.settrace(None)
            raise KeyboardInterrupt
        return local

    return lambda frame, event, arg: local if frame.f_code is func.__code__ else None


def _dead_block() -> None:
    """A small block entered and never left, then collected: its exit skipped (a generator
    dropped unfinished); the next block finds it dead and restores before it begins."""
    import gc

    block = _threads.blas_threads(_threads.SMALL_WORK / 10)
    block.__enter__()
    del block
    gc.collect()


@pytest.mark.parametrize("before", [None, _dead_block], ids=["last block's exit", "dead block dropped"])
def test_a_restore_cut_between_its_two_clears_is_finished_by_the_next_block(before):
    # Ctrl-C after the restore cleared one list and not the other: the next first block
    # appended to the stale one and then restored nothing (an adversarial review found it);
    # the setting must come back after the next block, and a large block get it.  The
    # restore runs when the last block ends, or when the next block drops a dead one.
    import sys

    pools, default = _two_threads_or_skip()
    if before is not None:
        before()
        assert {p.get_num_threads() for p in pools} == {1}
    sys.settrace(_interrupt_at(_threads._restore, "_saved.clear()"))
    try:
        with pytest.raises(KeyboardInterrupt):
            with _threads.blas_threads(_threads.SMALL_WORK / 10):
                pass
    finally:
        sys.settrace(None)
    with _threads.blas_threads(_threads.SMALL_WORK / 10):
        assert {p.get_num_threads() for p in pools} == {1}
    assert {p.get_num_threads() for p in pools} == {default}
    with _threads.blas_threads(_threads.SMALL_WORK * 10):
        assert {p.get_num_threads() for p in pools} == {default}
    assert not _threads._running and {p.get_num_threads() for p in pools} == {default}


def test_a_limit_of_the_users_that_outlives_a_small_block_is_undone_by_the_last_exit():
    # a third party's limit (threadpoolctl's context) begun inside a small block reads the
    # module's one thread as its "original" and puts it back after that block ended, while
    # a large block still runs: the last block's exit must read the setting back, or every
    # later block, large ones too, ran on one thread (a review found it in a leaner exit)
    from threadpoolctl import threadpool_limits

    pools, default = _two_threads_or_skip()

    def stream():
        with _threads.blas_threads(_threads.SMALL_WORK / 10):
            yield

    with _threads.blas_threads(_threads.SMALL_WORK * 10):
        small = stream()
        next(small)
        assert {p.get_num_threads() for p in pools} == {1}
        with threadpool_limits(limits=default, user_api="blas"):
            next(small, None)  # the small block ends inside the user's limit
        assert {p.get_num_threads() for p in pools} == {1}  # the user's context put back 1
    assert not _threads._running and {p.get_num_threads() for p in pools} == {default}
    with _threads.blas_threads(_threads.SMALL_WORK * 10):
        assert {p.get_num_threads() for p in pools} == {default}


def test_a_generators_block_finished_in_another_thread_is_dropped_when_it_ends():
    # a generator's small block entered in a worker thread and finished in the main thread
    # (a web framework iterating in a thread pool): once it ends, the main thread's large
    # block gets its threads back (it stayed on one until some later block)
    import threading

    pools, default = _two_threads_or_skip()

    def stream():
        with _threads.blas_threads(_threads.SMALL_WORK / 10):
            yield

    results = stream()
    worker = threading.Thread(target=next, args=(results,))
    worker.start()
    worker.join()
    with _threads.blas_threads(_threads.SMALL_WORK * 10):
        assert {p.get_num_threads() for p in pools} == {1}  # the worker's small block runs
        next(results, None)
        assert {p.get_num_threads() for p in pools} == {default}
    assert not _threads._running and {p.get_num_threads() for p in pools} == {default}


def test_a_block_after_a_dead_one_is_dropped_gets_its_threads():
    # Ctrl-C as a nested large block's __enter__ returns leaves it counted; once it is dead,
    # the next small block (nested in a small one) drops it and must set one thread again
    import sys

    pools, default = _two_threads_or_skip()
    large = _threads.blas_threads(_threads.SMALL_WORK * 10)

    def returning(frame, event, arg):
        if event == "return" and frame.f_code is _threads._Threads.__enter__.__code__:
            sys.settrace(None)
            raise KeyboardInterrupt
        return returning

    with _threads.blas_threads(_threads.SMALL_WORK / 10):
        sys.settrace(lambda frame, event, arg: returning if frame.f_code is _threads._Threads.__enter__.__code__ else None)
        try:
            with pytest.raises(KeyboardInterrupt):
                with large:
                    pass
        finally:
            sys.settrace(None)
        del large  # the traceback is gone with the pytest.raises context: the block dies
        with _threads.blas_threads(_threads.SMALL_WORK / 10):
            assert {p.get_num_threads() for p in pools} == {1}
        assert {p.get_num_threads() for p in pools} == {1}
    assert not _threads._running and {p.get_num_threads() for p in pools} == {default}


def test_a_block_whose_exit_was_skipped_is_dropped():
    pools, default = _two_threads_or_skip()
    block = _threads.blas_threads(_threads.SMALL_WORK / 10)
    block.__enter__()  # as if Ctrl-C had struck before its exit ran
    assert {p.get_num_threads() for p in pools} == {1}
    del block
    with _threads.blas_threads(_threads.SMALL_WORK * 10):  # a large block: the dead small one is gone
        assert {p.get_num_threads() for p in pools} == {default}
    assert not _threads._running and {p.get_num_threads() for p in pools} == {default}


def test_a_forked_child_keeps_only_the_forking_thread_s_blocks():
    import threading

    pools, default = _two_threads_or_skip()
    inside, leave = threading.Event(), threading.Event()

    def other():
        with _threads.blas_threads(_threads.SMALL_WORK / 10):
            inside.set()
            leave.wait(5)

    worker = threading.Thread(target=other)
    worker.start()
    inside.wait(5)
    try:
        assert {p.get_num_threads() for p in pools} == {1}
        _threads._after_fork()  # what the child runs: the other thread does not exist there
        assert not _threads._running and {p.get_num_threads() for p in pools} == {default}
    finally:
        leave.set()
        worker.join(5)
    assert not _threads._running and {p.get_num_threads() for p in pools} == {default}


def test_an_openblas_on_openmp_is_left_to_its_threads():
    # its limit is each thread's own: a process-wide bookkeeping would leave threads stuck
    from types import SimpleNamespace

    assert not _threads._process_wide(SimpleNamespace(internal_api="openblas", threading_layer="openmp"))
    assert _threads._process_wide(SimpleNamespace(internal_api="openblas", threading_layer="pthreads"))
    assert _threads._process_wide(SimpleNamespace(internal_api="mkl", threading_layer="intel"))


def test_serial_sizes_are_known_only_for_openblas_from_0_3_27():
    from types import SimpleNamespace

    def pool(api, version):
        return SimpleNamespace(internal_api=api, version=version)

    assert _threads._knows_serial(pool("openblas", "0.3.31.188.0"))  # numpy's wheel
    assert _threads._knows_serial(pool("openblas", "0.3.27"))
    assert not _threads._knows_serial(pool("openblas", "0.3.26"))
    assert not _threads._knows_serial(pool("openblas", "0.3.dev"))
    assert not _threads._knows_serial(pool("openblas", None))
    assert not _threads._knows_serial(pool("mkl", "2025.0.0"))


def test_serial_predicates_at_their_edges():
    gemv, dot = _threads.OPENBLAS_SERIAL["gemv"], _threads.OPENBLAS_SERIAL["dot"]
    assert _threads.serial_pass((dot, dot)) and _threads.serial_pass((2500, 500))  # passes in blocks
    assert not _threads.serial_pass((dot + 1, 1)) and not _threads.serial_pass((1, dot + 1))  # a dot along it
    assert _threads.serial_pass((dot,)) and not _threads.serial_pass((dot + 1,))
    for columns in (1, 7, 191, 192, 500, 2000, 10_000, 28_799):
        rows = _threads.pass_rows(columns)
        assert rows % 16 == 0 and rows * columns < gemv <= (rows + 16) * columns, columns
    assert _threads.pass_rows(2000) == 224 and _threads.pass_rows(28_800) == _threads.pass_rows(10**6) == 16
    assert _threads.serial_cholesky(127) and not _threads.serial_cholesky(128)
    assert _threads.serial_eigen(63) and not _threads.serial_eigen(64)
    assert _threads.serial_eigen(25, vectors=True) and not _threads.serial_eigen(26, vectors=True)
    assert _threads.serial_gram(268, 40) and not _threads.serial_gram(269, 40)  # T n (n + 1) = 439,776
    assert _threads.serial_gram(10**5, 1) and not _threads.serial_gram(250, 50)


@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("rows, columns", [(1, 3), (2288, 200), (2289, 200), (2500, 500), (913, 500), (5003, 37), (40, 30_000), (10_001, 50)])
def test_passes_in_row_blocks_are_the_products(rows, columns, order, monkeypatch):
    _threads._blas_pools()
    monkeypatch.setitem(_threads._state, "serial", True)  # as with an OpenBLAS from 0.3.27 on 2 threads
    monkeypatch.setitem(_threads._state, "default", 2)
    rng = np.random.default_rng(rows + columns)
    table = np.asarray(rng.standard_normal((rows, columns)), order=order)
    vector, weights = rng.standard_normal(columns), rng.standard_normal(rows)
    blocks = _threads._in_blocks(table, vector, _threads.pass_rows(columns))
    assert blocks == (_threads.pass_rows(columns) < rows <= 10_000)
    # a brute-force loop: math.fsum (exact) of the rounded products along each row and column
    pnl = np.array([math.fsum(table[t] * vector) for t in range(rows)])
    sums = np.array([math.fsum(table[:, j] * weights) for j in range(columns)])
    bound = 2.0 * np.finfo(float).eps  # the error of a sum of n products: n eps times their size
    np.testing.assert_array_less(np.abs(_threads.rows_product(table, vector) - pnl), bound * columns * (np.abs(table) @ np.abs(vector)) + 1e-300)
    np.testing.assert_array_less(np.abs(_threads.weighted_rows(weights, table) - sums), bound * rows * (np.abs(weights) @ np.abs(table)) + 1e-300)


def test_passes_are_one_product_where_blocks_would_not_replace_a_switch(monkeypatch):
    _threads._blas_pools()
    rng = np.random.default_rng(3)
    table, vector = rng.standard_normal((2500, 500)), rng.standard_normal(500)
    step = _threads.pass_rows(500)
    for serial, default, blocks in [(True, 2, True), (False, 2, False), (True, 1, False)]:
        monkeypatch.setitem(_threads._state, "serial", serial)  # another BLAS: switched anyway
        monkeypatch.setitem(_threads._state, "default", default)  # one thread: nothing to switch
        assert _threads._in_blocks(table, vector, step) == blocks
    monkeypatch.setitem(_threads._state, "serial", True)
    monkeypatch.setitem(_threads._state, "default", 2)
    # arguments the blocks do not take go to numpy as they are: its results and its errors
    with pytest.raises(ValueError):
        _threads.weighted_rows(rng.standard_normal(2 * step + 3), table[: 2 * step])
    with pytest.raises(ValueError):
        _threads.rows_product(table, rng.standard_normal(499))
    np.testing.assert_allclose(_threads.rows_product(table, list(vector)), table @ vector, rtol=1e-12)
    wide, weights = rng.standard_normal((500, 3)), rng.standard_normal((3, 2500))
    np.testing.assert_allclose(_threads.rows_product(table, wide), table @ wide, rtol=1e-12)
    np.testing.assert_allclose(_threads.weighted_rows(weights, table), weights @ table, rtol=1e-12)


def test_a_serial_block_switches_nothing_alone_and_counts_as_small_beside_another(monkeypatch):
    import threading

    pools, default = _threads._blas_pools()
    if default <= 1:
        pytest.skip("BLAS runs on one thread here: nothing to choose")
    monkeypatch.setitem(_threads._state, "serial", True)  # as with an OpenBLAS from 0.3.27
    assert isinstance(_threads.blas_threads(_threads.SMALL_WORK / 10, serial=True), contextlib.nullcontext)
    assert isinstance(_threads.blas_threads(_threads.SMALL_WORK / 10), _threads._Threads)
    monkeypatch.setitem(_threads._state, "serial", False)  # another BLAS: the claim is not trusted
    assert isinstance(_threads.blas_threads(_threads.SMALL_WORK / 10, serial=True), _threads._Threads)
    monkeypatch.setitem(_threads._state, "serial", True)
    entered, leave, seen = threading.Event(), threading.Event(), {}

    def large():
        with _threads.blas_threads(_threads.SMALL_WORK * 10):
            entered.set()
            leave.wait(10)

    worker = threading.Thread(target=large)
    worker.start()
    try:
        assert entered.wait(10)
        assert {p.get_num_threads() for p in pools} == {default}
        with _threads.blas_threads(_threads.SMALL_WORK / 10, serial=True):  # the large block waits for no core
            seen["inside"] = {p.get_num_threads() for p in pools}
        seen["after"] = {p.get_num_threads() for p in pools}
    finally:
        leave.set()
        worker.join(10)
    assert seen == {"inside": {1}, "after": {default}}
    assert not _threads._running and {p.get_num_threads() for p in pools} == {default}


@pytest.fixture
def switch_calls(monkeypatch):
    """Every C call of the switch (a read or a setting of a pool's threads), in order."""
    pools, default = _two_threads_or_skip()
    with _threads.blas_threads(_threads.SMALL_WORK / 10):  # a restore an earlier test left pending is finished
        pass
    calls = []

    def counted(get, put):
        def read():
            calls.append("get")
            return get()

        def write(n):
            calls.append(("put", n))
            put(n)

        return read, write

    monkeypatch.setitem(_threads._state, "switches", [counted(*pair) for pair in _threads._state["switches"]])
    return pools, default, calls


def test_at_rest_a_small_call_switches_nothing_and_a_large_block_gets_the_threads(switch_calls):
    pools, default, calls = switch_calls
    threads_now = lambda: {p.get_num_threads() for p in pools}  # noqa: E731
    settings = [get() for get, _ in _threads._state["switches"]]  # each pool's (numpy's, scipy's)
    calls.clear()
    cov, x = _cov(200), np.linspace(-1.0, 1.0, 200)  # a factorisation OpenBLAS would thread
    xlmvar.decompose(x, cov)
    switched = [c for s in settings for c in ("get", ("put", 1))] + [c for s in settings for c in ("get", ("put", s))]
    assert calls == switched, calls  # a process of the user's: each pool switched there and back
    assert threads_now() == {default}
    calls.clear()
    xlmvar.rest_blas_on_one_thread()
    assert threads_now() == {1} and calls == ["get"] * len(settings) + [("put", 1)] * len(settings)
    calls.clear()
    xlmvar.decompose(x, cov * 1.5)  # a covariance never seen: validated, factorised
    history = np.random.default_rng(1).standard_normal((2500, 200)) * 0.01
    assert not _threads._in_blocks(history, x, _threads.pass_rows(200))  # one product: one thread anyway
    xlmvar.decompose(x, history, method="historical")
    assert calls == [] and threads_now() == {1}  # no C call: the path of a process on one thread
    with _threads.blas_threads(_threads.SMALL_WORK * 10):
        assert threads_now() == {default}  # the setting the rest began with
        with _threads.blas_threads(_threads.SMALL_WORK / 10):
            assert threads_now() == {1}
        assert threads_now() == {default}
    assert threads_now() == {1} and not _threads._running
    xlmvar.rest_blas_on_one_thread()  # again: nothing changes
    assert threads_now() == {1}
    xlmvar.rest_blas_on_one_thread(False)
    assert threads_now() == {default}
    assert _threads._in_blocks(history, x, _threads.pass_rows(200))


def test_the_rest_begun_or_ended_while_blocks_run_holds_when_they_end(switch_calls):
    import threading

    pools, default, _ = switch_calls
    threads_now = lambda: {p.get_num_threads() for p in pools}  # noqa: E731

    def while_running(work, change):
        entered, leave, seen = threading.Event(), threading.Event(), {}

        def block():
            with _threads.blas_threads(work):
                entered.set()
                leave.wait(10)
                seen["inside"] = threads_now()

        worker = threading.Thread(target=block)
        worker.start()
        try:
            assert entered.wait(10)
            change()
        finally:
            leave.set()
            worker.join(10)
        seen["after"] = threads_now()
        return seen

    rest, end = xlmvar.rest_blas_on_one_thread, lambda: xlmvar.rest_blas_on_one_thread(False)
    assert while_running(_threads.SMALL_WORK / 10, rest) == {"inside": {1}, "after": {1}}
    assert while_running(_threads.SMALL_WORK * 10, end) == {"inside": {default}, "after": {default}}
    assert while_running(_threads.SMALL_WORK * 10, rest) == {"inside": {default}, "after": {1}}
    with _threads.blas_threads(_threads.SMALL_WORK * 10):  # large blocks get the setting from before the rest
        assert threads_now() == {default}
    # a limit: a small call at rest is not counted (that is the point), so the end of the rest
    # gives it BLAS's threads from then on (README, "BLAS threads")
    assert while_running(_threads.SMALL_WORK / 10, end) == {"inside": {default}, "after": {default}}
    assert not _threads._running


_REST_PROBE = r"""
import json, sys
import numpy as np
from threadpoolctl import threadpool_info
threads = lambda: sorted({p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"})
seen = {}
if sys.argv[1] == "udfs":
    import udfs
else:
    import xlmvar
seen["imported"] = threads()  # nothing looked for or set at import: the rest begins with the first call
import xlmvar
a = np.random.default_rng(0).standard_normal((400, 200))
xlmvar.decompose(np.ones(200), a.T @ a)
seen["after a call"] = threads()
from xlmvar.engine import _threads
with _threads.blas_threads(_threads.SMALL_WORK * 10):
    seen["large"] = threads()
seen["after"] = threads()
print(json.dumps(seen))
"""


def test_the_add_in_rests_blas_on_one_thread_from_its_first_call():
    import json
    import os

    env = {**os.environ, "OPENBLAS_NUM_THREADS": "2"}
    env.pop("OMP_NUM_THREADS", None)
    seen = {}
    for module in ("udfs", "xlmvar"):
        done = subprocess.run([sys.executable, "-c", _REST_PROBE, module], capture_output=True, text=True, env=env, timeout=120)
        assert done.returncode == 0, done.stderr
        seen[module] = json.loads(done.stdout)
    if seen["xlmvar"]["imported"] != [2]:
        pytest.skip(f"BLAS is not on 2 threads here: {seen}")
    assert seen["udfs"] == {"imported": [2], "after a call": [1], "large": [2], "after": [1]}
    assert seen["xlmvar"] == {"imported": [2], "after a call": [2], "large": [2], "after": [2]}  # the user's setting kept


def test_the_command_line_rests_blas_on_one_thread_while_it_runs(tmp_path, monkeypatch):
    from xlmvar import cli

    seen = []
    monkeypatch.setattr(cli, "_calc", lambda args: seen.append(_threads.blas_resting()) or 0)
    assert not _threads.blas_resting()
    assert cli.main(["calc", str(tmp_path / "book.xlsx")]) == 0 and seen == [True]
    # called from Python, main gives the caller's process its setting back (it stayed on
    # one thread for good, a review found)
    assert not _threads.blas_resting()
    xlmvar.rest_blas_on_one_thread()
    assert cli.main(["calc", str(tmp_path / "book.xlsx")]) == 0 and seen == [True, True]
    assert _threads.blas_resting()  # a rest begun before is the caller's own: kept


def test_a_rest_cut_short_by_an_interrupt_leaves_the_setting_as_it_was(switch_calls):
    pools, default, _ = switch_calls
    threads_now = lambda: {p.get_num_threads() for p in pools}  # noqa: E731
    switches = _threads._state["switches"]
    own = switches[0]

    def interrupted(n):
        raise KeyboardInterrupt

    switches[0] = (own[0], interrupted)
    try:
        with pytest.raises(KeyboardInterrupt):
            xlmvar.rest_blas_on_one_thread()
    finally:
        switches[0] = own
    # recorded as resting on 2 threads, every small call then ran on 2, a review found
    assert not _threads.blas_resting() and threads_now() == {default}
    xlmvar.rest_blas_on_one_thread()
    assert threads_now() == {1}
    own[1](default)  # a pool set off one thread behind the rest's back ...
    xlmvar.rest_blas_on_one_thread()  # ... is set back by asking again
    assert threads_now() == {1}


def test_a_restore_cut_short_is_finished_before_the_rest_begins(switch_calls):
    pools, default, _ = switch_calls
    threads_now = lambda: {p.get_num_threads() for p in pools}  # noqa: E731
    # the state a restore cut between its C calls and its two clears leaves (see _restore)
    _threads._state["switches"][0][1](1)
    _threads._saved[:] = [default] * len(_threads._state["switches"])
    _threads._current[:] = [1] * len(_threads._state["switches"])
    xlmvar.rest_blas_on_one_thread()
    assert threads_now() == {1} and not _threads._saved
    with _threads.blas_threads(_threads.SMALL_WORK * 10):
        assert threads_now() == {default}
    assert threads_now() == {1}  # the large block's exit saved 2 as the setting to restore, before


@pytest.fixture
def blocks_seen(monkeypatch):
    """The ``(work, serial)`` of every :func:`blas_threads` block opened, in order (by
    :func:`~xlmvar.engine._threads.sized_blas` or in a function's body)."""
    seen = []
    original = _threads.blas_threads

    def spy(work, serial=False):
        seen.append((work, serial))
        return original(work, serial)

    for module in [m for m in list(sys.modules.values()) if getattr(m, "blas_threads", None) is original]:
        monkeypatch.setattr(module, "blas_threads", spy)
    return seen


@pytest.mark.parametrize("function", ["decompose", "standalone"])
@pytest.mark.parametrize("module, name", [("historical", "returns"), ("modified", "returns"), ("pnl", "pnl"), ("parametric", "cov")])
def test_the_model_given_by_name_sizes_the_block(blocks_seen, module, name, function):
    import importlib

    seen = blocks_seen
    rng = np.random.default_rng(0)
    model = _cov(50) if name == "cov" else rng.standard_normal((20_000, 50)) * 0.01  # a dot of 20,000 threads
    getattr(importlib.import_module(f"xlmvar.engine.{module}"), function)(np.ones(50), **{name: model})
    assert seen[0] == (2.0 * model.size, name == "cov")
    if name != "cov":  # 2,500 x 500: passes in row blocks, one thread without a switch
        seen.clear()
        model = rng.standard_normal((2500, 500)) * 0.01
        getattr(importlib.import_module(f"xlmvar.engine.{module}"), function)(np.ones(500), **{name: model})
        assert seen[0] == (2.0 * model.size, True)


@pytest.mark.parametrize(
    "call, expected",
    [
        ("rolling.rolling_var(x, r, 250)", (2.0 * 2500 * 500, True)),
        ("scenarios.worst_days(x, r)", (2.0 * 2500 * 500, True)),
        ("scenarios.stress_pnl(x, shocks=r)", (2.0 * 2500 * 500, True)),
        ("scenarios.worst_days(x, list(r))", (2.0 * 2500 * 500, True)),  # a list of numpy rows
        ("covariance.sample_cov(r)", (2.0 * 2500 * 500**2, False)),
        ("covariance.sample_cov(r[:268, :40])", (2.0 * 268 * 40**2, True)),  # one OpenBLAS thread anyway
        ("covariance.ewma_cov(r.tolist())", (2.0 * 2500 * 500**2, False)),  # a list of rows: not converted to size it
        ("covariance.ewma_cov(list(r[:, :40]))", (2.0 * 2500 * 40**2, False)),
        ("covariance.ledoit_wolf_cov(r)", (2.0 * 2500 * 500**2, False)),
        ("covariance.ledoit_wolf_shrinkage(r)", (2.0 * 2500 * 500**2, False)),
    ],
)
def test_history_tools_size_their_blocks(blocks_seen, call, expected):
    # the passes of ROLLINGVAR, WORSTDAYS and STRESSPNL go in row blocks (one thread, no
    # switch); a covariance estimate is a product of the table with itself, 2 T n^2
    from xlmvar.engine import covariance, rolling, scenarios  # noqa: F401

    seen = blocks_seen
    rng = np.random.default_rng(0)
    r, x = rng.standard_normal((2500, 500)) * 0.01, rng.standard_normal(500) * 1e6
    eval(call)
    assert seen[0] == expected


@pytest.mark.parametrize(
    "call, expected",
    [
        # a Cholesky factorisation (is it valid already?), then an eigendecomposition and a
        # product each step (9 n^3 + n^3, about)
        ("covariance.nearest_corr(bad)", [(9.0, True), (10.0 * 27, True)]),
        ("covariance.nearest_corr(corr=bad)", [(9.0, True), (10.0 * 27, True)]),
        # the finiteness pass of the validation, a factorisation; valid: no iteration
        ("covariance.nearest_corr(np.eye(500))", [(2.0 * 500**2, True), (500**3 / 3, False)]),
        # the covariance's validation (a factorisation), then a linear solve each Newton step
        ("allocation.risk_parity(_cov(50))", [(50**3 / 3, True), (2.0 / 3.0 * 50**3, False)]),
        ("allocation.risk_parity(cov=_cov(50))", [(50**3 / 3, True), (2.0 / 3.0 * 50**3, False)]),
        ("factors.factor_loadings(r[:, :5], r[:, 5:7])", [(2.0 * 2500 * 3 * (3 + 5), False)]),  # 2 factors, an intercept
        ("factors.factor_cov(r[:40, :3], np.eye(3), np.ones(40))", [(9.0, True), (2.0 * 3 * 40**2, False)]),
        # the table, inside it the covariance's validation (twice below the cache's size)
        ("simulation.simulate_returns(_cov(20), 1000)", [(1000.0 * 400, False)] + [(20**3 / 3, True)] * 2),
        ("xlmvar.simulate_returns(cov=_cov(20), draws=5000)", [(5000.0 * 400, False)] + [(20**3 / 3, True)] * 2),
    ],
)
def test_the_engines_large_computations_are_sized_blocks(blocks_seen, call, expected):
    # at rest (the add-in, the command line) only a block gets BLAS's threads back: a large
    # computation outside one ran on one thread there, a review found (NEARESTCORR at N = 800:
    # 1.5 s against 1.0 s)
    from xlmvar.engine import allocation, covariance, factors, simulation  # noqa: F401

    seen = blocks_seen
    rng = np.random.default_rng(0)
    r = rng.standard_normal((2500, 500)) * 0.01  # noqa: F841 (read by eval)
    bad = np.array([[1.0, 0.9, 0.1], [0.9, 1.0, 0.9], [0.1, 0.9, 1.0]])  # not positive semi-definite  # noqa: F841
    eval(call)
    assert [serial for _, serial in seen] == [serial for _, serial in expected], seen
    assert [work for work, _ in seen] == pytest.approx([work for work, _ in expected], rel=1e-12), seen


def test_the_batch_jobs_pnl_is_a_sized_block(tmp_path, monkeypatch):
    import pandas as pd

    from xlmvar.batch import job, run

    seen = []
    original = job.blas_threads
    monkeypatch.setattr(job, "blas_threads", lambda work, serial=False: seen.append(work) or original(work, serial))
    rng = np.random.default_rng(1)
    pd.DataFrame(rng.standard_normal((300, 4)) * 0.01, columns=list("ABCD")).to_csv(tmp_path / "s.csv", index=False)
    positions = pd.DataFrame({"desk": ["X", "Y", "X", "Z"], "asset": ["A", "B", "C", "A"], "amount": [1.0, 2.0, 3.0, 4.0]})
    positions.to_csv(tmp_path / "p.csv", index=False)
    run(tmp_path / "p.csv", tmp_path / "s.csv", "desk")
    assert seen == [2.0 * 300 * 3 * 3]  # 300 scenarios x 3 assets held x 3 desks


def test_ranked_periods_are_ordered_by_the_pnl_they_show():
    # the order and the figures shown come from one product: equal P&L, earlier row first
    from xlmvar.engine import scenarios

    rng = np.random.default_rng(2305 * 7 + 200)
    r, x = rng.standard_normal((2305, 200)) * 0.01, rng.standard_normal(200) * 1e6
    r[-1] = r[3]  # the same day twice (a product of the gathered rows showed them equal, in reverse order)
    for ranked in (scenarios.worst_days(x, r, k=2305), scenarios.stress_pnl(x, r)):
        pnl, rows = np.asarray(ranked.pnl), np.asarray(ranked.rows)
        assert np.all(np.diff(pnl) >= 0.0)
        ties = np.flatnonzero(np.diff(pnl) == 0.0)
        assert np.all(rows[ties] < rows[ties + 1])
        np.testing.assert_allclose(pnl, [math.fsum(r[t] * x) for t in rows], rtol=1e-12, atol=1e-6)


def test_history_tools_refuse_a_pnl_that_overflows():
    # finite returns and positions whose product overflows: refused, never ranked as inf
    from xlmvar.engine import rolling, scenarios

    r = np.full((300, 2), 1e200)
    r[::2] *= -1.0
    x = np.array([1e109, 1e109])
    # (rolling on a P&L table, worst days and stress on returns a history or a shock can hold:
    # returns of +-1e200 are refused before, as percentages)
    r90 = np.full((300, 2), 0.9)
    r90[::2] *= -1.0
    big = np.array([1.5e308, 1.5e308])
    for call in (lambda: scenarios.worst_days(big, r90), lambda: scenarios.stress_pnl(big, r90), lambda: rolling.rolling_var(x, r, 100, 0.95, "pnl")):
        with pytest.raises(ValueError, match="positions: the P&L of these positions in some period is too large"):
            call()
    assert scenarios.worst_days(big / 1.5e308, r90, k=1).pnl[0] == pytest.approx(-1.8, rel=1e-15)  # the same book in other units


# Each call at the largest size the engine takes for one OpenBLAS thread, and at the next
# (for eigenvectors a size every release threads): the probe times OpenBLAS's worker
# threads (every thread but the main one) on the CPU, per unit of wall time.
_SERIAL_PROBE = r"""
import json, os, threading, time
import numpy as np
import xlmvar
from xlmvar.engine import covariance, rolling, scenarios
from xlmvar.engine._threads import _blas_pools
pools, default = _blas_pools()
rng = np.random.default_rng(0)

def others_ns():
    me, total = str(threading.get_native_id()), 0
    for tid in os.listdir("/proc/self/task"):
        if tid != me:
            with open(f"/proc/self/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
    return total

def cov(n):
    a = rng.standard_normal((2 * n, n))
    return a.T @ a

def probe(call, seconds=0.25):
    call()
    time.sleep(0.3)  # a worker still spinning after an earlier call goes to sleep
    # a running thread's time is counted at each timer tick (4 ms at 250 Hz): a window of
    # many ticks, whatever one call takes
    before, t = others_ns(), time.perf_counter_ns()
    while time.perf_counter_ns() - t < seconds * 1e9:
        call()
    return (others_ns() - before) / (time.perf_counter_ns() - t)

a, b = rng.standard_normal((2399, 192)), rng.standard_normal((2400, 192))
v = rng.standard_normal(192)
history, book = rng.standard_normal((2500, 500)) * 0.01, rng.standard_normal(500)  # 1.25 million cells
out = {"pools": [[p.internal_api, p.version] for p in pools], "default": default, "calls": {}}
cases = {
    "gemv": (lambda: a @ v, lambda: b @ v),
    "dot": ((lambda x=rng.standard_normal(10000): x @ x), (lambda x=rng.standard_normal(10001): x @ x)),
    "potrf": ((lambda c=cov(127): np.linalg.cholesky(c)), (lambda c=cov(128): np.linalg.cholesky(c))),
    # threaded from 64 with some kernels, from 65 with others (SkylakeX's on an AMD EPYC)
    "eigvalsh": ((lambda c=cov(63): np.linalg.eigvalsh(c)), (lambda c=cov(65): np.linalg.eigvalsh(c))),
    "eigh": ((lambda c=cov(25): np.linalg.eigh(c)), (lambda c=cov(64): np.linalg.eigh(c))),  # 26 from 0.3.31
    # whole decompositions over a history, its passes in row blocks, against one product over it
    "historical": (lambda: xlmvar.decompose(book, history, method="historical"), lambda: history @ book),
    "cornish-fisher": (lambda: xlmvar.decompose(book, history, method="cornish-fisher"), lambda: history @ book),
    "pnl": ((lambda p=history * 1e6: xlmvar.decompose(book, p, method="pnl")), lambda: history @ book),
    "rolling": (lambda: rolling.rolling_var(book, history, 250), lambda: history @ book),
    "worst days": (lambda: scenarios.worst_days(book, history, k=2500), lambda: history @ book),
    "stress": (lambda: scenarios.stress_pnl(book, history), lambda: history @ book),
    # a covariance estimate at the largest size OpenBLAS makes on one thread, against one it threads
    "gram": ((lambda t=history[:268, :40]: (covariance.sample_cov(t), covariance.ewma_cov(t))),
             (lambda t=history[:250, :70]: t.T @ t)),  # 250 x 50 threads with some kernels, not SkylakeX's
}
for name, (serial, threaded) in cases.items():
    out["calls"][name] = [probe(serial), probe(threaded)]
print(json.dumps(out))
"""


def test_openblas_runs_the_serial_sizes_on_one_thread():
    """The sizes below which blocks switch nothing are the installed OpenBLAS's own: on two
    threads its workers take no CPU time for a call at the largest of them, and do (spinning
    for the next call, about as long as the main thread runs; a tenth at least on a loaded
    machine) a little above it: the probe sees threads where there are some.  Where the
    kernels for the CPU thread a call from different sizes, the bounds are the smallest
    measured (the symmetric eigenvalues and a table's product with itself thread from larger
    sizes with OpenBLAS's SkylakeX kernels than with others), so the size above is one that
    threads with every kernel measured."""
    import json
    import os
    from types import SimpleNamespace

    if not os.path.exists("/proc/self/schedstat") or (os.cpu_count() or 1) < 2:
        pytest.skip("needs Linux's per-thread CPU times and two cores")
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "2"}
    env.pop("OMP_NUM_THREADS", None)
    done = subprocess.run([sys.executable, "-c", _SERIAL_PROBE], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    if out["default"] < 2 or not all(_threads._knows_serial(SimpleNamespace(internal_api=a, version=v)) for a, v in out["pools"]):
        pytest.skip(f"BLAS is not an OpenBLAS from 0.3.27 on two threads: {out}")
    for name, (serial, threaded) in out["calls"].items():
        assert serial < 0.02, (name, out)  # worker CPU time per unit of wall time
        assert threaded > 0.1, (name, out)


def test_import_udfs_loads_neither_scipy_stats_nor_the_workbook_layer():
    code = (
        "import sys, udfs; heavy = [m for m in ('scipy.stats', 'scipy.special', 'scipy.optimize', "
        "'xlmvar.workbook', 'formulas', 'openpyxl') if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_closed_forms_agree_with_scipy():
    from scipy import special, stats

    from xlmvar.engine.parametric import normal_pdf, normal_quantile

    z = np.linspace(-40, 40, 4001)
    np.testing.assert_allclose(normal_pdf(z), stats.norm.pdf(z), rtol=1e-15, atol=0)
    p = np.concatenate([np.linspace(1e-9, 1 - 1e-9, 2001), [0.95, 0.99, 0.975, 0.05]])
    np.testing.assert_allclose([normal_quantile(q) for q in p], special.ndtri(p), rtol=2e-15, atol=1e-300)
