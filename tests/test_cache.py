"""The content cache: exact identity, copies not views, correct after the caller mutates.

Expected figures come from closed forms (delta-normal ES = phi(z) / (1 - c) sqrt(x'Sx)),
from a brute-force tail average (historical ES) or from exact scaling identities (a
covariance times 4 doubles every Monte Carlo figure with common random numbers, since every
step of the simulation scales by a power of two exactly).
"""

from __future__ import annotations

import math
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
            for stored, value, _ in bucket:
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


def test_bitwise_identity_and_zero_signs():
    s = np.array([[0.0, 1.0], [2.0, 3.0]])
    assert _cache.same_content(s, s.copy())
    assert not _cache.same_content(s, np.array([[-0.0, 1.0], [2.0, 3.0]]))
    assert _cache.same_content(s, np.asfortranarray(s))  # non-contiguous input compared by value
    assert not _cache.same_content(s, s.astype(np.float32))


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
