"""The Cholesky factorisation by LAPACK's dpotrf called directly (xlmvar.engine._lapack),
against numpy.linalg.cholesky (a second path to the same routine) and identities."""

from __future__ import annotations

import numpy as np
import pytest

import xlmvar
from xlmvar.engine import _lapack, _threads, _validation


def _spd(n, seed=0):
    """Positive definite and exactly symmetric (``a'a`` by a matrix product need not be)."""
    a = np.random.default_rng(seed).standard_normal((2 * n + 3, n)) * 0.01
    s = a.T @ a / (2 * n + 3)
    return (s + s.T) / 2.0


def test_the_routine_is_used_where_numpys_blas_exports_it():
    # numpy's Linux and Windows wheels ship OpenBLAS with scipy_dpotrf_64_: where the loader
    # can see it, the fast path must be taken (elsewhere the fallback is right, tested below)
    import ctypes

    from numpy.linalg import _umath_linalg

    try:
        ctypes.CDLL(_umath_linalg.__file__)["scipy_dpotrf_64_"]
    except (AttributeError, OSError):
        pytest.skip("this numpy's BLAS does not export scipy_dpotrf_64_ to its extension")
    assert _lapack._routine() is not None


@pytest.mark.parametrize("n", [1, 2, 3, 63, 64, 65, 127, 128, 129, 300])
@pytest.mark.parametrize("path", ["lapack", "numpy"])
def test_factor_is_numpys_bit_for_bit(n, path, monkeypatch):
    if path == "numpy":
        monkeypatch.setattr(_lapack, "_ROUTINE", [None])
    s = _spd(n, n)
    lower = _lapack.cholesky_lower(_lapack.potrf(s))
    np.testing.assert_array_equal(lower, np.linalg.cholesky(s))
    assert np.array_equal(lower, np.tril(lower))  # zeros above the diagonal
    np.testing.assert_allclose(lower @ lower.T, s, rtol=0, atol=1e-15 * np.abs(s).max())


@pytest.mark.parametrize("path", ["lapack", "numpy"])
def test_the_result_is_an_array_of_its_own_and_the_callers_is_not_touched(path, monkeypatch):
    if path == "numpy":
        monkeypatch.setattr(_lapack, "_ROUTINE", [None])
    s = _spd(90)
    before = s.copy()
    out = _lapack.potrf(s)
    # no view: the cache keeps it as it is (a view would be copied across, at N^2 page reads)
    assert out.base is None and out.flags.owndata
    assert not np.shares_memory(out, s)
    np.testing.assert_array_equal(s, before)


def test_other_types_get_numpys_results_and_errors():
    s = _spd(5, 2)
    objects = s.astype(object)
    with pytest.raises(TypeError):
        np.linalg.cholesky(objects)
    with pytest.raises(TypeError):
        _lapack.potrf(objects)
    half = s.astype(np.float16)
    with pytest.raises(TypeError):
        np.linalg.cholesky(half)
    with pytest.raises(TypeError):
        _lapack.potrf(half)
    single = s.astype(np.float32)  # numpy factorises it in single precision
    lower = _lapack.cholesky_lower(_lapack.potrf(single))
    assert lower.dtype == np.float32
    np.testing.assert_array_equal(lower, np.linalg.cholesky(single))
    stack = np.stack([_spd(4, k) for k in range(3)])  # numpy factorises each matrix
    factors = _lapack.potrf(stack)
    for k in range(3):
        np.testing.assert_array_equal(np.triu(factors[k]).T, np.linalg.cholesky(stack[k]))
    hermitian = np.array([[4.0, 2j], [-2j, 10.0]])
    lower = _lapack.cholesky_lower(_lapack.potrf(hermitian.T))  # numpy's, of the transpose
    np.testing.assert_allclose(lower, np.linalg.cholesky(hermitian), rtol=1e-15)


def test_the_routine_is_found_in_the_openblas_file_numpy_ships(monkeypatch):
    # as on Windows, where the extension module exports no dpotrf of its own: the shipped file
    shipped = _lapack._library_files()[1:]
    if not shipped:
        pytest.skip("numpy here ships no OpenBLAS file beside it")
    import ctypes.util

    other = ctypes.util.find_library("m") or ctypes.util.find_library("c")
    if other is None:
        pytest.skip("no C library to stand in for the extension module")
    monkeypatch.setattr(_lapack, "_library_files", lambda: [other, *shipped])
    routine = _lapack._load()
    assert routine is not None
    s = _spd(70, 5)
    work = s.copy()
    assert _lapack._call(routine, work) == 0
    np.testing.assert_array_equal(np.triu(work).T, np.linalg.cholesky(s))


@pytest.mark.parametrize("path", ["lapack", "numpy"])
@pytest.mark.parametrize(
    "mat",
    [
        np.array([[1.0, 2.0], [2.0, 1.0]]),  # indefinite
        np.array([[1.0, 1.0], [1.0, 1.0]]),  # singular: positive semi-definite, not definite
        np.zeros((3, 3)),
        -np.eye(4),
        np.diag([1.0, 1.0, 0.0, 1.0]),  # a zero variance in the middle
    ],
    ids=["indefinite", "singular", "zero", "negative", "zero variance"],
)
def test_not_positive_definite_is_refused_as_numpy_refuses_it(mat, path, monkeypatch):
    if path == "numpy":
        monkeypatch.setattr(_lapack, "_ROUTINE", [None])
    with pytest.raises(np.linalg.LinAlgError):
        np.linalg.cholesky(mat)
    with pytest.raises(np.linalg.LinAlgError):
        _lapack.potrf(mat)


def test_a_large_singular_matrix_is_refused():
    a = np.random.default_rng(4).standard_normal((300, 20))
    with pytest.raises(np.linalg.LinAlgError):
        _lapack.potrf(a @ a.T)  # rank 20 of 300


@pytest.mark.parametrize("path", ["lapack", "numpy"])
def test_a_matrix_symmetric_to_rounding_is_factorised_from_its_upper_triangle(path, monkeypatch):
    if path == "numpy":
        monkeypatch.setattr(_lapack, "_ROUTINE", [None])
    s = _spd(40, 7)
    skewed = s.copy()
    lower = np.tril_indices(40, -1)
    skewed[lower] *= 1.0 + 1e-12  # as validation accepts: within 1e-8 of max|S|
    upper_mirrored = np.triu(skewed) + np.triu(skewed, 1).T
    lower_factor = _lapack.cholesky_lower(_lapack.potrf(skewed))
    np.testing.assert_array_equal(lower_factor, np.linalg.cholesky(upper_mirrored))


def test_shapes_and_types():
    assert _lapack.potrf(np.empty((0, 0))).shape == (0, 0)
    np.testing.assert_array_equal(_lapack.potrf(np.array([[4]])), [[2.0]])  # an integer matrix
    with pytest.raises(np.linalg.LinAlgError):
        _lapack.potrf(np.ones((2, 3)))


def test_a_routine_that_does_not_factorise_fails_the_check():
    def does_nothing(uplo, n, data, lda, info, length):
        return None

    def raises(*args):
        raise OSError("not a dpotrf")

    assert not _lapack._passes_check(does_nothing)
    with pytest.raises(OSError):
        _lapack._passes_check(raises)  # _load treats it as a routine it cannot use


def test_no_routine_where_it_cannot_be_used(monkeypatch):
    monkeypatch.setattr(_lapack, "_NAMES", ("no_such_routine_",))
    assert _lapack._load() is None
    monkeypatch.setattr(_lapack, "_NAMES", ("scipy_dpotrf_64_", "dpotrf_"))
    monkeypatch.setattr(_lapack.sys, "byteorder", "big")
    assert _lapack._load() is None


def test_monte_carlo_and_the_factor_agree_on_both_paths(monkeypatch):
    s = _spd(130, 3)  # past OpenBLAS's one-thread Cholesky (order 128)
    x = np.linspace(-1.0, 2.0, 130) * 1e6
    xlmvar.clear_caches()
    fast = xlmvar.decompose(x, s, method="montecarlo", draws=2000, seed=3)
    factor = _validation.covariance_factor(s)
    monkeypatch.setattr(_lapack, "_ROUTINE", [None])
    xlmvar.clear_caches()
    slow = xlmvar.decompose(x, s, method="montecarlo", draws=2000, seed=3)
    np.testing.assert_array_equal(_validation.covariance_factor(s), factor)
    with _threads.blas_threads(_threads.SMALL_WORK / 2):  # as the validation: one thread
        np.testing.assert_array_equal(factor, np.linalg.cholesky(s))
    assert fast.total == slow.total
    np.testing.assert_array_equal(fast.component, slow.component)
    xlmvar.clear_caches()


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs os.fork")
def test_a_child_forked_while_the_routine_is_being_looked_up_does_not_wait_for_ever(monkeypatch):
    import os
    import signal

    monkeypatch.setattr(_lapack, "_ROUTINE", [])  # not looked up yet
    held = _lapack._lock
    held.acquire()  # as another thread of the parent would hold it, inside the lookup
    try:
        pid = os.fork()
        if pid == 0:  # the child: must find the routine, not wait on the parent's lock
            ok = False
            try:
                signal.alarm(20)
                ok = _lapack._routine() is not None or _lapack._load() is None
            except BaseException:
                pass
            finally:
                os._exit(0 if ok else 1)  # never back into pytest
        _, status = os.waitpid(pid, 0)
    finally:
        held.release()
        monkeypatch.setattr(_lapack, "_lock", held)
    assert os.waitstatus_to_exitcode(status) == 0
