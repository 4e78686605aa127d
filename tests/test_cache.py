"""The content cache: exact identity, copies not views, correct after the caller mutates.

Expected figures come from closed forms (delta-normal ES = phi(z) / (1 - c) sqrt(x'Sx)),
from a brute-force tail average (historical ES) or from exact scaling identities (a
covariance times 4 doubles every Monte Carlo figure with common random numbers, since every
step of the simulation scales by a power of two exactly).
"""

from __future__ import annotations

import math
import subprocess
import sys
from statistics import NormalDist

import numpy as np
import pytest

import xlmvar
from xlmvar.engine import _cache, _validation, risk

Z95 = NormalDist().inv_cdf(0.95)
N_CACHED = _validation.COV_CACHE_MIN_SIZE  # the smallest covariance the cache keeps
ES95 = math.exp(-0.5 * Z95 * Z95) / math.sqrt(2 * math.pi) / 0.05  # phi(z) / (1 - c)


@pytest.fixture(autouse=True)
def _fresh():
    xlmvar.clear_caches()
    yield
    xlmvar.clear_caches()


def _cov(n, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((3 * n, n)) * 0.01
    return a.T @ a / (3 * n)


def _normal_es(x, s):
    return ES95 * math.sqrt(float(x @ s @ x))


def _stored_arrays():
    for cache in _cache._CACHES:
        for bucket in cache._data.values():
            for entry in bucket:
                stored, value = entry.stored, entry.value
                yield from stored
                yield from (v for v in vars(value).values() if isinstance(v, np.ndarray)) if hasattr(value, "__dict__") else ()
                if isinstance(value, np.ndarray):
                    yield value


def test_mutating_the_base_array_after_a_call_gives_the_right_es_normal():
    n = N_CACHED  # the matrix is cached
    base = np.zeros((n + 5, n + 5))
    base[:n, :n] = _cov(n)
    view = base[:n, :n]  # the caller passes a view into a bigger array
    x = np.linspace(-1.0, 2.0, n) * 1e6
    first = xlmvar.portfolio_es(x, view)
    assert first == pytest.approx(_normal_es(x, base[:n, :n]), rel=1e-12)
    base[:n, :n] *= 4.0  # the caller mutates the base array afterwards
    second = xlmvar.portfolio_es(x, view)
    assert second == pytest.approx(_normal_es(x, base[:n, :n]), rel=1e-12)
    assert second == pytest.approx(2.0 * first, rel=1e-12)


def test_mutating_the_base_array_after_a_call_gives_the_right_es_montecarlo():
    n = 4
    base = np.zeros((n, n + 2))
    base[:, :n] = _cov(n, 3)
    view = base[:, :n]
    x = np.array([1e6, -2e6, 3e6, 5e5])
    first = xlmvar.decompose(x, view, "es", 0.95, method="montecarlo", draws=2000, seed=7)
    base[:, :n] *= 4.0
    second = xlmvar.decompose(x, view, "es", 0.95, method="montecarlo", draws=2000, seed=7)
    # L(4S) = 2 L(S) exactly, so every scenario, the ES and its marginals double
    assert second.total == pytest.approx(2.0 * first.total, rel=1e-12)
    np.testing.assert_allclose(second.marginal, 2.0 * first.marginal, rtol=1e-12)


def test_mutating_the_returns_after_a_call_gives_the_right_historical_es():
    rng = np.random.default_rng(5)
    base = rng.standard_normal((400, 6)) * 0.01
    x = np.array([1.0, -0.5, 2.0, 0.3, 0.0, 1.5]) * 1e6

    def brute_force_es(r):  # mean of the P&Ls strictly below the type-7 5% quantile
        pnl = r @ x
        return -pnl[pnl < np.quantile(pnl, 0.05)].mean()

    first = xlmvar.portfolio_es(x, base[:, :], method="historical")
    assert first == pytest.approx(brute_force_es(base), rel=1e-12)
    base[::2] *= 3.0
    second = xlmvar.portfolio_es(x, base[:, :], method="historical")
    assert second == pytest.approx(brute_force_es(base), rel=1e-12)
    assert second != pytest.approx(first, rel=1e-3)


def test_the_caller_s_arrays_are_never_frozen_nor_kept():
    n = N_CACHED
    s = _cov(n, 1)
    x = np.ones(n)
    d = xlmvar.decompose(x, s, "var", 0.99, method="montecarlo", draws=1000)
    xlmvar.portfolio_var(x, s)
    assert s.flags.writeable and x.flags.writeable
    for arr in _stored_arrays():
        assert not np.shares_memory(arr, s) and not np.shares_memory(arr, x)
    # what the cache hands out is read-only, so one caller cannot corrupt the next one's
    assert not d.marginal.flags.writeable
    checked = _validation.check_covariance(s)
    assert not checked.flags.writeable and not np.shares_memory(checked, s)


def test_a_difference_outside_the_sampled_elements_is_a_miss():
    # the lookup key samples a grid of elements; verification compares every element
    n = N_CACHED
    s = _cov(n, 2)
    x = np.linspace(1.0, 2.0, n)
    a = xlmvar.portfolio_es(x, s)
    t = s.copy()
    t[1, 2] += 1e-7  # (1, 2) is not on the sampled grid
    t[2, 1] += 1e-7
    assert _cache._sample(t) == _cache._sample(s)
    b = xlmvar.portfolio_es(x, t)
    assert a == pytest.approx(_normal_es(x, s), rel=1e-13)
    assert b == pytest.approx(_normal_es(x, t), rel=1e-13)
    assert a != b


@pytest.mark.parametrize("compare", ["memcmp", "numpy"])
def test_bitwise_identity_and_zero_signs(compare, monkeypatch):
    if compare == "numpy":  # as where ctypes cannot load C's memcmp (Pyodide)
        monkeypatch.setattr(_cache, "_MEMCMP", [None])
    s = np.array([[0.0, 1.0], [2.0, 3.0]])
    assert _cache.same_content(s, s.copy())
    assert not _cache.same_content(s, np.array([[-0.0, 1.0], [2.0, 3.0]]))
    assert _cache.same_content(s, np.asfortranarray(s))  # any layout, compared bit for bit
    assert not _cache.same_content(np.zeros(3), np.array([-0.0, 9.0, 0.0, 9.0, 0.0, 9.0])[::2])
    assert not _cache.same_content(s, np.asfortranarray([[-0.0, 1.0], [2.0, 3.0]]))
    assert not _cache.same_content(s, s.astype(np.float32))
    big = np.arange(100_000.0).reshape(100, 1000)
    for i in ((0, 0), (50, 500), (99, 999)):  # one ulp anywhere
        other = big.copy()
        other[i] = np.nextafter(other[i], np.inf)
        assert not _cache.same_content(big, other)
    assert _cache.same_content(big, big.copy())


def test_methods_whose_hit_would_not_pay_do_not_cache():
    rng = np.random.default_rng(0)
    r = rng.standard_normal((300, 8)) * 0.01
    x = np.ones(8)
    for method in ("historical", "cornish-fisher", "normal"):
        model = r if method != "normal" else np.cov(r.T)
        xlmvar.portfolio_var(x, model, method=method)
        xlmvar.portfolio_var(x, model.copy(), method=method)
    assert risk.decompose.cache.info()["entries"] == 0
    xlmvar.portfolio_var(x, np.cov(r.T), method="montecarlo", draws=1000)
    xlmvar.portfolio_var(x, np.cov(r.T), method="montecarlo", draws=1000)
    info = risk.decompose.cache.info()
    assert (info["entries"], info["hits"], info["misses"]) == (1, 1, 1)


def test_errors_are_not_cached_and_name_the_argument():
    n = N_CACHED
    s = _cov(n)
    s[3, 4] = s[4, 3] = 10.0  # not PSD
    for _ in range(2):
        with pytest.raises(ValueError, match="^cov: is not positive semi-definite"):
            xlmvar.portfolio_var(np.ones(n), s.copy())
    assert _validation._COVARIANCES.info()["entries"] == 0


# --- the what-if path: one fused pass of comparison and product over a cached covariance ---

Z99 = NormalDist().inv_cdf(0.99)


def _normal_var(x, s, z=Z95):
    return z * math.sqrt(float(x @ s @ x))


@pytest.fixture(params=["digest", "memcmp", "numpy"])
def small_blocks(request, monkeypatch):
    """Blocks of 16 rows at N = 250 (so a matrix has 16 of them), checked against the stored
    blocks' XXH3-128 digests (the default), or, without the xxhash package, compared by C's
    memcmp or, as where ctypes cannot load it either, by numpy."""
    monkeypatch.setattr(_cache, "BLOCK_BYTES", 16 * N_CACHED * 8)
    if request.param == "digest":
        assert _cache._xxh3_128 is not None  # a dependency: installed wherever the tests run
    else:
        monkeypatch.setattr(_cache, "_xxh3_128", None)
    if request.param == "numpy":
        monkeypatch.setattr(_cache, "_MEMCMP", [None])
    elif request.param == "memcmp":
        assert _cache._memcmp() is not None  # every platform the tests run on has one
    return request.param


def _covariance_counts():
    info = _validation._COVARIANCES.info()
    return info["hits"], info["misses"]


@pytest.mark.parametrize(
    "where",
    [(0, 0), (N_CACHED - 1, N_CACHED - 1), (N_CACHED // 2, N_CACHED // 2), (3, 3), (N_CACHED - 2, N_CACHED - 2)],
    ids=["first-block", "last-element", "middle-diagonal", "first-block-diagonal", "last-block-diagonal"],
)
def test_a_copy_differing_in_one_diagonal_element_is_a_miss(small_blocks, where):
    n = N_CACHED
    s = _cov(n, 7)
    x = np.linspace(-1.0, 1.0, n) * 1e6
    first = xlmvar.portfolio_var(x, s.copy(), 0.99)
    t = s.copy()
    t[where] *= 1.5  # a larger variance: still a valid covariance, a different VaR
    second = xlmvar.portfolio_var(x, t, 0.99)
    assert first == pytest.approx(_normal_var(x, s, Z99), rel=1e-12)
    assert second == pytest.approx(_normal_var(x, t, Z99), rel=1e-12)
    assert second > first
    assert _covariance_counts() == (0, 2)


@pytest.mark.parametrize("where", [(0, 1), (1, 0), (N_CACHED - 1, N_CACHED - 2), (N_CACHED - 2, N_CACHED - 1), (17, 200)])
def test_a_copy_differing_in_one_off_diagonal_element_is_a_miss_and_refused(small_blocks, where):
    # a hit would silently return the cached figure; a miss validates the copy, which is no
    # longer symmetric
    n = N_CACHED
    s = _cov(n, 8)
    x = np.ones(n)
    xlmvar.portfolio_var(x, s.copy())
    t = s.copy()
    t[where] += 1e-3
    i, j = sorted(where)  # the message names the pair in reading order
    with pytest.raises(ValueError, match=rf"^cov: is not symmetric: row {i + 1}, column {j + 1}"):
        xlmvar.portfolio_var(x, t)


@pytest.mark.parametrize("where", [(0, 5), (N_CACHED - 1, N_CACHED - 6), (120, 130)])
def test_a_copy_differing_by_one_ulp_or_a_zero_sign_is_a_miss(small_blocks, where):
    n = N_CACHED
    s = _cov(n, 9)
    s[where] = s[where[::-1]] = 0.0  # a covariance with exact zeros
    x = np.linspace(1.0, 2.0, n)
    xlmvar.portfolio_var(x, s.copy())
    for change in ("ulp", "sign of zero"):
        t = s.copy()
        if change == "ulp":
            i = (where[0], (where[1] + 1) % n)
            t[i] = t[i[::-1]] = np.nextafter(t[i], np.inf)  # symmetric, 1 ulp away
        else:
            t[where] = t[where[::-1]] = -0.0
        before = _covariance_counts()
        assert xlmvar.portfolio_var(x, t) == pytest.approx(_normal_var(x, t), rel=1e-12)
        assert _covariance_counts() == (before[0], before[1] + 1)  # validated as new content


def test_what_if_hits_give_the_closed_form_and_the_bits_of_a_miss(small_blocks):
    n = N_CACHED
    s = _cov(n, 10)
    rng = np.random.default_rng(4)
    books = [rng.standard_normal(n) * 1e6 for _ in range(4)]
    misses = []
    for x in books:  # each book on an empty cache: validated, then multiplied
        xlmvar.clear_caches()
        misses.append(xlmvar.decompose(x, s.copy(), "es", 0.975))
    xlmvar.clear_caches()
    xlmvar.portfolio_var(books[0], s.copy())
    for x, miss in zip(books, misses):  # the same books as what-if calls on fresh copies
        hit = xlmvar.decompose(x, s.copy(), "es", 0.975)
        z = NormalDist().inv_cdf(0.975)
        k = math.exp(-0.5 * z * z) / math.sqrt(2 * math.pi) / 0.025
        sigma = math.sqrt(float(x @ s @ x))
        assert hit.total == pytest.approx(k * sigma, rel=1e-12)
        np.testing.assert_allclose(hit.marginal, k * (s @ x) / sigma, rtol=1e-10, atol=1e-12 * k * float(np.abs(s).max()))
        assert hit.total == miss.total  # the same row blocks on both paths: the same bits
        np.testing.assert_array_equal(hit.marginal, miss.marginal)
    assert _covariance_counts() == (len(books), 1)


def test_fused_comparison_matches_a_whole_comparison_on_every_layout(small_blocks):
    n = N_CACHED
    s = _cov(n, 11)
    stored = np.array(s, order="C", copy=True)
    v = np.linspace(-1.0, 1.0, n)
    expected = _cache.product(stored, v)
    digests = _cache.block_digests(stored)
    assert (digests is None) == (small_blocks != "digest")
    for given in (s.copy(), np.asfortranarray(s), np.vstack([s, s])[:n], s.copy()[::1, ::1]):
        np.testing.assert_array_equal(_cache.same_content_product(stored, given, v, digests), expected)
    for i in (0, n // 2, n - 1):
        for j in (0, n - 1):
            for change in (lambda a: np.nextafter(a, -np.inf), lambda a: -a):  # 1 ulp, the sign
                t = s.copy()
                t[i, j] = change(t[i, j])
                assert _cache.same_content_product(stored, t, v, digests) is None
                assert _cache.same_content_product(stored, np.asfortranarray(t), v, digests) is None
    zero = stored.copy()
    zero[n // 2, 3] = 0.0
    for sign in (-0.0, 0.0):  # -0.0 == 0.0 as numbers, but not as content
        t = zero.copy()
        t[n // 2, 3] = sign
        got = _cache.same_content_product(zero, t, v, _cache.block_digests(zero))
        assert (got is None) == bool(np.signbit(sign))
    assert _cache.same_content_product(stored, s.astype(np.float32), v, digests) is None
    assert _cache.same_content_product(stored, s[:-1, :-1], v[:-1], digests) is None


def test_block_digests_are_seeded_per_process_and_change_with_any_bit():
    s = _cov(N_CACHED, 12)
    first = _cache.block_digests(s)
    assert first is not None and all(len(d) == 16 for d in first)  # 128 bits each
    assert _cache.block_digests(s.copy()) == first
    flipped = s.copy()
    for k in range(0, 64, 7):  # any one of the 64 bits of one element
        flipped.view(np.uint64)[N_CACHED - 1, 0] = s.view(np.uint64)[N_CACHED - 1, 0] ^ np.uint64(1 << k)
        assert _cache.block_digests(flipped)[-1] != first[-1]
        assert _cache.block_digests(flipped)[:-1] == first[:-1]
    # a fresh process draws another seed: the digests are never the same across processes
    code = (
        "import numpy as np; from xlmvar.engine import _cache; "
        "print(_cache.block_digests(np.arange(62500.0).reshape(250, 250))[0].hex())"
    )
    runs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout for _ in range(2)}
    assert len(runs) == 2


def test_a_cached_covariance_is_kept_once():
    # the copy that verifies hits is also the validated matrix handed out (and the Cholesky
    # factor is the only other array): two N x N arrays, not three
    n = N_CACHED
    s = _cov(n, 12)
    checked = _validation.checked_covariance(s)
    assert _validation._COVARIANCES.info()["bytes"] <= 2 * s.nbytes + 4096
    assert not np.shares_memory(checked.matrix, s) and not checked.matrix.flags.writeable
    s[0, 0] = 99.0  # the caller's array is still its own
    assert checked.matrix[0, 0] != 99.0


@pytest.mark.parametrize("method", ["montecarlo", "normal"])
def test_a_true_cell_is_refused_even_after_the_same_numbers_were_cached(method):
    # numpy.asarray([True, 1.0]) is [1.0, 1.0]: a list used to be keyed and compared as that
    # array, so TRUE got the cached figure of 1.0 (an adversarial review found it)
    n = N_CACHED
    s = _cov(n, 13)
    s[4, 4] = 1.0  # a larger variance: still a covariance, and a TRUE there reads as 1.0
    cov = s.tolist()
    ones = [1.0] * n
    flagged = [True] + [1.0] * (n - 1)
    with pytest.raises(ValueError, match=r"^positions: item 1 holds TRUE"):
        xlmvar.decompose(flagged, cov, method=method, **({"draws": 2000} if method == "montecarlo" else {}))
    xlmvar.decompose(ones, cov, method=method, **({"draws": 2000} if method == "montecarlo" else {}))
    with pytest.raises(ValueError, match=r"^positions: item 1 holds TRUE"):
        xlmvar.decompose(flagged, cov, method=method, **({"draws": 2000} if method == "montecarlo" else {}))
    bad = [row[:] for row in cov]
    bad[4][4] = True  # a TRUE on the diagonal of the covariance just used, as lists
    with pytest.raises(ValueError, match=r"^cov: row 5, column 5 holds TRUE"):
        xlmvar.decompose(ones, bad, method=method, **({"draws": 2000} if method == "montecarlo" else {}))


def test_a_list_s_content_counts_in_the_cache_budget():
    # a list is part of its key (pickled): the key's bytes count against the budget, or a
    # cache of lists would grow past it unseen
    s = _cov(N_CACHED, 14)
    xlmvar.clear_caches()
    xlmvar.decompose(np.ones(N_CACHED), s.tolist(), method="montecarlo", draws=2000)
    assert risk.decompose.cache.info()["bytes"] >= s.nbytes  # 8 bytes a float, as pickled


def test_strided_positions_differing_in_a_zero_s_sign_are_two_entries():
    # a strided input used to be compared by value (-0.0 == 0.0); every layout is compared
    # by its bits (an adversarial review found it)
    s = _cov(N_CACHED, 15)
    a = np.ones(2 * N_CACHED)
    a[1::2] = 9.0
    b = a.copy()
    a[4], b[4] = 0.0, -0.0
    xlmvar.decompose(a[::2], s, method="montecarlo", draws=1000)
    xlmvar.decompose(b[::2], s, method="montecarlo", draws=1000)
    info = risk.decompose.cache.info()
    assert (info["entries"], info["hits"], info["misses"]) == (2, 0, 2)


def test_a_write_to_the_caller_s_array_during_a_call_cannot_poison_the_cache(monkeypatch):
    # another thread writes to the caller's matrix while it is validated: the checks ran on
    # a copy made first, so the cache keeps that copy with its own checks, and the new
    # content is validated (and refused) on its own (an adversarial review found that the
    # copy used to be made after the checks, pairing the new content with the old checks)
    n = N_CACHED
    m = _cov(n, 16)
    real = _validation._psd_factor

    def written_during_the_call(mat, name):
        m[1, 0] = 5.0  # the caller's array, now not symmetric
        return real(mat, name)

    monkeypatch.setattr(_validation, "_psd_factor", written_during_the_call)
    _validation.check_covariance(m)
    monkeypatch.setattr(_validation, "_psd_factor", real)
    with pytest.raises(ValueError, match=r"^cov: is not symmetric"):
        _validation.check_covariance(m.copy())
    with pytest.raises(ValueError, match=r"^cov: is not symmetric"):
        xlmvar.portfolio_var(np.ones(n), m.copy())


def test_a_memoized_function_computes_from_the_copy_it_keeps():
    # a write to the caller's array during the computation (another thread) is not seen by
    # it: the result is the kept copy's, and the new content is a miss computed afresh
    given = np.arange(300.0)

    @_cache.memoize()
    def total(a):
        given[7] = 1e6  # the caller's array changes while the result is computed
        return float(a.sum())

    first = total(given)
    assert first == sum(range(300))  # the content at the call, not the one written meanwhile
    assert given[7] == 1e6
    assert total(given) == sum(range(300)) - 7 + 1e6  # brute force over the new content
    assert total.cache.info()["misses"] == 2


def test_what_the_cache_hands_out_cannot_change_what_the_next_caller_gets():
    # reshaping, reinterpreting or unlocking a cached result used to change the cache's own
    # array (an adversarial review found it); each caller now gets its own read-only views
    n = N_CACHED
    s = _cov(n, 17)
    x = np.linspace(-1.0, 1.0, n) * 1e6
    kwargs = {"method": "montecarlo", "draws": 1000, "seed": 3}
    d = xlmvar.decompose(x, s, **kwargs)
    total = d.total
    d.marginal.shape = (-1, 1)
    d.component.dtype = np.int64
    with pytest.raises(ValueError):
        d.marginal.flags.writeable = True
    m = _validation.check_covariance(s)
    m.shape = (n * n,)
    with pytest.raises(ValueError):
        m.flags.writeable = True
    again = xlmvar.decompose(x, s, **kwargs)
    assert risk.decompose.cache.info()["hits"] == 1
    assert again.marginal.shape == (n,) and again.component.dtype == np.float64
    assert float(again.component.sum()) == pytest.approx(total, rel=1e-12)  # Euler: components sum to VaR
    assert _validation.check_covariance(s).shape == (n, n)


def test_eviction_drops_the_least_recently_used_entry_not_its_bucket():
    # entries that share the key sample share a bucket; a full cache used to drop whole
    # buckets, the entry just stored included (an adversarial review found it)
    a = np.arange(150_000.0)
    b = a.copy()
    b[1] = -1.0  # not on the sampled grid: the same bucket
    assert _cache._sample(a) == _cache._sample(b)
    calls = []

    @_cache.memoize(max_bytes=3_000_000)  # room for two entries of 1.2 MB, not three
    def total(v):
        calls.append(1)
        return float(v.sum())

    assert total(a) == a.sum() and total(b) == b.sum()
    assert total.cache.info()["entries"] == 2
    total(a)  # a is now the most recently used
    c = a.copy()
    c[2] = -2.0
    assert total(c) == c.sum()  # evicts b, the least recently used, and keeps c
    assert total.cache.info()["entries"] == 2
    before = len(calls)
    assert total(a) == a.sum() and total(c) == c.sum()
    assert len(calls) == before  # both hits
    total(b)
    assert len(calls) == before + 1  # b was the one evicted
