"""Tests for xlmvar.engine.historical: historical-simulation VaR/ES and their decomposition.

References: PerformanceAnalytics' published values for edhec[1:100, 1] (xlmvar/data/README.md),
numpy's quantile, central finite differences of the exact scenario decomposition, the
delta-normal decomposition on a large normal sample, and Euler/homogeneity/permutation
identities.
"""

from __future__ import annotations

import numpy as np
import pytest
from _edhec import PA_WEIGHTS, central_difference, edhec
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import norm

from xlmvar.engine import historical, risk
from xlmvar.engine.historical import (
    QUANTILE_METHODS,
    decompose,
    es_rows_needed,
    quantile_bracket,
    silverman_bandwidth,
    standalone,
)

PA_TOL = 5e-7  # PerformanceAnalytics' figures are quoted to 6 decimals


@pytest.fixture(scope="module")
def pa_returns():
    return edhec(100, 3)


# --- PerformanceAnalytics' published figures -------------------------------------------------


def test_column_one_matches_performance_analytics(pa_returns):
    # PA: VaR(edhec[1:100, 1], p=.95, method="historical") = -0.014095 (type-7 quantile),
    #     ES(edhec[1:100, 1], p=.95, method="historical")  = -0.024080 (mean strictly below).
    # PA quotes returns; we quote positive losses.
    e1 = [1.0, 0.0, 0.0]
    assert standalone(e1, pa_returns)[0] == pytest.approx(0.014095, abs=PA_TOL)
    assert standalone(e1, pa_returns, "es")[0] == pytest.approx(0.024080, abs=PA_TOL)
    assert decompose(e1, pa_returns).total == pytest.approx(0.014095, abs=PA_TOL)
    assert decompose(e1, pa_returns, "es").total == pytest.approx(0.024080, abs=PA_TOL)


def test_var_is_numpy_type_7_quantile_of_the_pnl(pa_returns):
    pnl = pa_returns @ PA_WEIGHTS
    for confidence in (0.9, 0.95, 0.99):
        expected = -np.quantile(pnl, 1 - confidence)
        assert decompose(PA_WEIGHTS, pa_returns, confidence=confidence).total == pytest.approx(
            expected, rel=1e-14
        )


@pytest.mark.parametrize("method", QUANTILE_METHODS)
def test_every_numpy_quantile_rule(pa_returns, method):
    pnl = pa_returns @ PA_WEIGHTS
    q = np.quantile(pnl, 0.05, method=method)
    for smoothing in ("kernel", "scenario"):
        result = decompose(PA_WEIGHTS, pa_returns, smoothing=smoothing, quantile_method=method)
        assert result.total == pytest.approx(-q, rel=1e-14)
        assert result.component.sum() == pytest.approx(result.total, rel=1e-12)
    es = decompose(PA_WEIGHTS, pa_returns, "es", quantile_method=method)
    assert es.total == pytest.approx(-pnl[pnl < q].mean(), rel=1e-14)


def test_quantile_bracket_is_type_7():
    # type 7: k + g = (T - 1) a, counted from 0
    k, g = quantile_bracket(100, 0.05)
    assert (k, g) == (4, pytest.approx(0.95))
    assert quantile_bracket(21, 0.05) == (1, 0.0)
    assert quantile_bracket(100, 0.05, "lower") == (4, 0.0)
    assert quantile_bracket(100, 0.05, "higher") == (5, 0.0)


# --- exact scenario decomposition: finite differences ----------------------------------------


@pytest.mark.parametrize("measure", ["var", "es"])
@pytest.mark.parametrize("method", ["linear", "hazen", "lower", "midpoint"])
@pytest.mark.parametrize("weights", [PA_WEIGHTS, [0.9, -0.5, 0.2]])
def test_scenario_marginal_equals_central_differences(pa_returns, weights, measure, method):
    def total(v):
        return decompose(v, pa_returns, measure, horizon=10, quantile_method=method).total

    result = decompose(
        weights, pa_returns, measure, horizon=10, smoothing="scenario", quantile_method=method
    )
    numeric = central_difference(total, weights, 1e-7)
    np.testing.assert_allclose(result.marginal, numeric, rtol=1e-6, atol=1e-9)


def test_es_decomposition_is_the_tail_average(pa_returns):
    pnl = pa_returns @ PA_WEIGHTS
    tail = pnl < np.quantile(pnl, 0.05)
    result = decompose(PA_WEIGHTS, pa_returns, "es")
    np.testing.assert_allclose(result.marginal, -pa_returns[tail].mean(axis=0), rtol=1e-14)
    # the VaR smoothing does not touch the exact ES decomposition
    same = decompose(PA_WEIGHTS, pa_returns, "es", smoothing="scenario")
    np.testing.assert_array_equal(result.component, same.component)


def test_not_performance_analytics_defective_component_var(pa_returns):
    # PA's historical component VaR sums to about minus half the VaR; ours sums to the VaR
    for smoothing in ("kernel", "scenario"):
        result = decompose(PA_WEIGHTS, pa_returns, smoothing=smoothing)
        assert result.total > 0
        assert result.component.sum() == pytest.approx(result.total, rel=1e-12)
        assert result.percent.sum() == pytest.approx(1.0)


# --- kernel smoothing ------------------------------------------------------------------------


def test_kernel_is_default_and_sums_to_var(pa_returns):
    default = decompose(PA_WEIGHTS, pa_returns)
    kernel = decompose(PA_WEIGHTS, pa_returns, smoothing="kernel")
    scenario = decompose(PA_WEIGHTS, pa_returns, smoothing="scenario")
    np.testing.assert_array_equal(default.component, kernel.component)
    assert kernel.total == scenario.total
    assert kernel.component.sum() == pytest.approx(kernel.total, rel=1e-12)
    assert not np.allclose(kernel.component, scenario.component)


def test_kernel_matches_delta_normal_on_a_large_normal_sample():
    rng = np.random.default_rng(42)
    a = rng.normal(size=(4, 4))
    cov = (a @ a.T + 4 * np.eye(4)) * 1e-4
    r = rng.multivariate_normal(np.zeros(4), cov, 20000)
    x = np.array([1.0, -0.5, 2.0, 0.8])
    sigma = np.sqrt(x @ cov @ x)
    analytic = x * norm.ppf(0.95) * (cov @ x) / sigma
    kernel = decompose(x, r)
    assert kernel.component.sum() == pytest.approx(kernel.total, rel=1e-12)
    assert kernel.total == pytest.approx(analytic.sum(), rel=0.03)
    np.testing.assert_allclose(kernel.component, analytic, atol=0.03 * analytic.sum())
    # the single-scenario decomposition is an unbiased but much noisier estimate
    scenario = decompose(x, r, smoothing="scenario")
    assert np.abs(scenario.component - analytic).max() > np.abs(kernel.component - analytic).max()


def test_kernel_close_to_scenario_when_one_factor_drives_the_book():
    rng = np.random.default_rng(5)
    t = 20000
    factor = rng.normal(0.0, 0.01, t)
    r = np.outer(factor, [1.0, 0.8, 1.2, 0.5]) + rng.normal(0.0, 0.001, (t, 4))
    x = np.array([1.0, -0.5, 2.0, 0.8])
    kernel = decompose(x, r, smoothing="kernel")
    scenario = decompose(x, r, smoothing="scenario")
    np.testing.assert_allclose(kernel.component, scenario.component, atol=0.08 * kernel.total)


def test_silverman_bandwidth():
    rng = np.random.default_rng(0)
    pnl = rng.normal(0.0, 2.0, 1000)
    sd = pnl.std(ddof=1)
    iqr = np.subtract(*np.quantile(pnl, [0.75, 0.25]))
    assert silverman_bandwidth(pnl) == pytest.approx(0.9 * min(sd, iqr / 1.34) * 1000**-0.2)
    lumpy = np.array([0.0] * 10 + [5.0])  # IQR 0: sd alone
    assert silverman_bandwidth(lumpy) == pytest.approx(0.9 * lumpy.std(ddof=1) * 11**-0.2)


# --- identities (hypothesis) -----------------------------------------------------------------


@st.composite
def books(draw):
    n = draw(st.integers(1, 6))
    t = draw(st.integers(40, 200))
    seed = draw(st.integers(0, 2**32 - 1))
    x = draw(
        st.lists(
            st.floats(-5, 5, allow_nan=False).map(lambda v: round(v, 3)), min_size=n, max_size=n
        )
    )
    rng = np.random.default_rng(seed)
    mix = np.eye(n) + 0.4 * rng.normal(size=(n, n))
    r = 0.01 * rng.standard_t(4, size=(t, n)) @ mix + 0.001 * rng.normal(size=n)
    return np.array(x), r


settings_ = settings(max_examples=30, deadline=None)
kinds = st.sampled_from([("var", "kernel"), ("var", "scenario"), ("es", "kernel")])


def _scale(result):
    return np.sum(np.abs(result.component)) + abs(result.total) + 1e-300


@settings_
@given(book=books(), kind=kinds, confidence=st.sampled_from([0.9, 0.95, 0.975]))
def test_components_sum_to_total(book, kind, confidence):
    x, r = book
    measure, smoothing = kind
    result = decompose(x, r, measure, confidence, smoothing=smoothing)
    assert isinstance(result.total, float)
    assert np.all(np.isfinite(result.marginal))
    assert result.component.sum() == pytest.approx(result.total, abs=1e-12 * _scale(result))


@settings_
@given(book=books(), kind=kinds, factor=st.floats(0.01, 100))
def test_homogeneous_of_degree_one(book, kind, factor):
    x, r = book
    measure, smoothing = kind
    base = decompose(x, r, measure, smoothing=smoothing)
    scaled = decompose(factor * x, r, measure, smoothing=smoothing)
    tol = 1e-9 * _scale(base) * factor
    assert scaled.total == pytest.approx(factor * base.total, abs=tol)
    np.testing.assert_allclose(scaled.component, factor * base.component, atol=tol)


@settings_
@given(book=books(), kind=kinds, data=st.data())
def test_permuting_assets_permutes_the_decomposition(book, kind, data):
    x, r = book
    measure, smoothing = kind
    order = np.array(data.draw(st.permutations(range(x.size))))
    base = decompose(x, r, measure, smoothing=smoothing)
    permuted = decompose(x[order], r[:, order], measure, smoothing=smoothing)
    tol = 1e-9 * _scale(base)
    assert permuted.total == pytest.approx(base.total, abs=tol)
    np.testing.assert_allclose(permuted.component, base.component[order], atol=tol)


@settings_
@given(book=books(), confidence=st.sampled_from([0.9, 0.95, 0.975]))
def test_es_at_least_var(book, confidence):
    x, r = book
    var = decompose(x, r, "var", confidence).total
    es = decompose(x, r, "es", confidence).total
    assert es >= var - 1e-15 * (1 + abs(var))
    alone_var = standalone(x, r, "var", confidence)
    alone_es = standalone(x, r, "es", confidence)
    assert np.all(alone_es >= alone_var - 1e-15)


@settings_
@given(book=books(), kind=kinds, horizon=st.integers(1, 250))
def test_square_root_of_time(book, kind, horizon):
    x, r = book
    measure, smoothing = kind
    one = decompose(x, r, measure, smoothing=smoothing)
    many = decompose(x, r, measure, horizon=horizon, smoothing=smoothing)
    tol = 1e-12 * _scale(one) * np.sqrt(horizon)
    assert many.total == pytest.approx(one.total * np.sqrt(horizon), abs=tol)
    np.testing.assert_allclose(many.component, one.component * np.sqrt(horizon), atol=tol)
    np.testing.assert_allclose(
        standalone(x, r, measure, horizon=horizon), standalone(x, r, measure) * np.sqrt(horizon)
    )


# --- standalone ------------------------------------------------------------------------------


@pytest.mark.parametrize("measure", ["var", "es"])
def test_standalone_is_each_position_held_alone(pa_returns, measure):
    x = np.array([0.5, -0.8, 2.0])  # a short loses in the upper tail of its asset
    alone = standalone(x, pa_returns, measure)
    for i in range(3):
        book = np.zeros(3)
        book[i] = x[i]
        assert alone[i] == pytest.approx(decompose(book, pa_returns, measure).total, rel=1e-12)


def test_short_position_loses_in_the_upper_tail(pa_returns):
    r = pa_returns[:, 1]
    assert standalone([-0.8], r[:, None])[0] == pytest.approx(-np.quantile(-0.8 * r, 0.05))
    assert standalone([-0.8], r[:, None])[0] == pytest.approx(0.8 * np.quantile(r, 0.95))


@pytest.mark.parametrize("confidence", [0.5, 0.6])
def test_low_confidence_still_sums(pa_returns, confidence):
    # near 50% the "VaR" can be a gain (negative); the kernel rescaling may fall back to the
    # scenario decomposition, and the components must still sum to the total (below 50% the
    # confidence is refused: tests/test_engine_edges.py)
    x = [0.3, -0.4, 0.3]
    for smoothing in ("kernel", "scenario"):
        result = decompose(x, pa_returns, confidence=confidence, smoothing=smoothing)
        assert result.total == pytest.approx(-np.quantile(pa_returns @ x, 1 - confidence))
        assert result.component.sum() == pytest.approx(result.total, rel=1e-12, abs=1e-17)


def test_dispatcher_reaches_the_module(pa_returns):
    for name in ("historical", "hist"):
        via = risk.decompose(PA_WEIGHTS, pa_returns, method=name, smoothing="scenario")
        direct = decompose(PA_WEIGHTS, pa_returns, smoothing="scenario")
        np.testing.assert_array_equal(via.component, direct.component)
    # VaR options reach standalone through the dispatcher without complaint
    np.testing.assert_array_equal(
        risk.individual_var(PA_WEIGHTS, pa_returns, method="historical", smoothing="scenario"),
        standalone(PA_WEIGHTS, pa_returns),
    )
    assert risk.METHODS["historical"] == historical.__name__


# --- zero risk and ties ----------------------------------------------------------------------


def test_zero_book_is_zero_not_nan(pa_returns):
    for measure in ("var", "es"):
        for smoothing in ("kernel", "scenario"):
            result = decompose([0.0, 0.0, 0.0], pa_returns, measure, smoothing=smoothing)
            assert result.total == 0.0
            np.testing.assert_array_equal(result.component, 0.0)
            np.testing.assert_array_equal(result.percent, 0.0)
            assert np.all(np.isfinite(result.marginal))
        np.testing.assert_array_equal(standalone([0.0, 0.0, 0.0], pa_returns, measure), 0.0)


def test_perfect_hedge_is_flat(pa_returns):
    r = np.column_stack([pa_returns[:, 0], pa_returns[:, 0], pa_returns[:, 1]])
    for measure in ("var", "es"):
        result = decompose([0.7, -0.7, 0.0], r, measure)
        assert result.total == pytest.approx(0.0, abs=1e-15)
        np.testing.assert_allclose(result.marginal, -r.mean(axis=0))


def test_ties_at_the_bottom_give_es_equal_to_var():
    # 40 periods, the 3 worst tied: type-7 quantile at 5% is the tied value, nothing lies
    # strictly below it, so ES = VaR (PerformanceAnalytics' rule) and both are exact.
    r = np.linspace(0.001, 0.04, 40)[:, None]
    r[:3, 0] = -0.02
    for positions in ([1.0], [2.5]):
        var = decompose(positions, r)
        es = decompose(positions, r, "es")
        assert es.total == pytest.approx(var.total) == pytest.approx(0.02 * positions[0])
        assert es.component.sum() == pytest.approx(es.total)
        assert standalone(positions, r, "es")[0] == pytest.approx(es.total)


# --- argument errors -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"smoothing": "loess"}, "smoothing"),
        ({"quantile_method": "type7"}, "quantile_method"),
        ({"ddof": 1}, "ddof"),
        ({"measure": "cvar"}, "measure"),
        ({"confidence": 95}, "confidence"),
        ({"confidence": 1.0}, "confidence"),
        ({"horizon": -1}, "horizon"),
    ],
)
def test_bad_arguments_name_themselves(pa_returns, kwargs, name):
    for function in (decompose, standalone):
        with pytest.raises(ValueError, match=f"^{name}"):
            function(PA_WEIGHTS, pa_returns, **kwargs)


def test_bad_tables_name_returns_or_positions(pa_returns):
    with pytest.raises(ValueError, match="^returns:.*transposed"):
        decompose(PA_WEIGHTS, pa_returns.T)
    with pytest.raises(ValueError, match="^positions"):
        decompose([0.3, None, 0.3], pa_returns)
    bad = pa_returns.copy()
    bad[7, 0] = np.inf
    with pytest.raises(ValueError, match="^returns: row 8, column 1"):
        standalone(PA_WEIGHTS, bad)


def test_es_needs_enough_rows_for_the_confidence(pa_returns):
    assert es_rows_needed(0.95) == 20
    assert es_rows_needed(0.99) == 100
    assert es_rows_needed(0.975) == 40
    with pytest.raises(ValueError, match=r"^returns: has 19 rows; a 95% historical ES.* 20 rows"):
        decompose(PA_WEIGHTS, pa_returns[:19], "es")
    with pytest.raises(ValueError, match=r"^returns: has 99 rows; a 99% historical ES.* 100 rows"):
        standalone(PA_WEIGHTS, pa_returns[:99], "es", 0.99)
    assert decompose(PA_WEIGHTS, pa_returns[:20], "es").total > 0
    # VaR needs as many: 1 / (1 - confidence) periods
    with pytest.raises(ValueError, match=r"^returns: has 19 rows; a 95% historical VaR .* 20 rows"):
        decompose(PA_WEIGHTS, pa_returns[:19])
    with pytest.raises(ValueError, match=r"^returns: has 1 rows; a 95% historical VaR .* 20 rows"):
        decompose(PA_WEIGHTS, pa_returns[:1])
    assert np.isfinite(decompose(PA_WEIGHTS, pa_returns[:20]).total)


@pytest.mark.parametrize("size", [1, 2, 16, 17])
def test_the_noise_floor_median_is_numpy_s(size):
    from xlmvar.engine.historical import _median

    rng = np.random.default_rng(size)
    for values in (rng.standard_normal(size), rng.integers(0, 3, size).astype(float), rng.random(size) * 1e-300):
        assert _median(values) == float(np.median(values))
