"""Tests for xlmvar.engine.simulation: the scenario generator and Monte Carlo VaR/ES."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from xlmvar.engine import parametric, risk, simulation
from xlmvar.engine.simulation import (
    DEFAULT_SEED,
    cov_factor,
    min_draws,
    pnl_standard_error,
    simulate_returns,
)

# A three-asset model (daily): vols 2%, 1%, 3%, correlations 0.3, 0.4, 0.1.
VOLS = np.array([0.02, 0.01, 0.03])
CORR = np.array([[1.0, 0.3, 0.4], [0.3, 1.0, 0.1], [0.4, 0.1, 1.0]])
S = VOLS[:, None] * CORR * VOLS[None, :]
X = np.array([5e6, 3e6, -2e6])


def _moment_se(r: np.ndarray) -> np.ndarray:
    """Standard error of each entry of the (known-mean) covariance estimate r'r / n."""
    prods = r[:, :, None] * r[:, None, :]
    return prods.std(axis=0) / math.sqrt(r.shape[0])


# --------------------------------------------------------------------------- the generator


def test_normal_draws_have_the_model_moments():
    h = 10
    mu = np.array([0.001, -0.0005, 0.002])
    r = simulate_returns(S, 200_000, seed=1, mean=mu, horizon=h)
    assert r.shape == (200_000, 3)
    centred = r - mu * h
    mean_se = np.sqrt(np.diag(S) * h / r.shape[0])
    assert np.all(np.abs(r.mean(axis=0) - mu * h) <= 4 * mean_se)
    cov_hat = centred.T @ centred / r.shape[0]
    assert np.all(np.abs(cov_hat - S * h) <= 5 * _moment_se(centred))
    # each margin and the book's P&L are normal
    for j in range(3):
        assert stats.kstest(centred[:, j] / math.sqrt(S[j, j] * h), "norm").pvalue > 1e-3
    sigma_p = math.sqrt(X @ S @ X * h)
    assert stats.kstest(centred @ X / sigma_p, "norm").pvalue > 1e-3


@pytest.mark.parametrize("dof", [5.0, 12.0])
def test_student_t_draws_have_the_model_covariance_and_t_margins(dof):
    r = simulate_returns(S, 300_000, seed=2, dof=dof)
    assert np.all(np.abs(r.T @ r / r.shape[0] - S) <= 5 * _moment_se(r))
    scale = math.sqrt((dof - 2) / dof)  # t scale that gives unit variance
    for j in range(3):
        assert stats.kstest(r[:, j] / (math.sqrt(S[j, j]) * scale), "t", args=(dof,)).pvalue > 1e-3
    # any portfolio of a multivariate t is a scaled univariate t with the same dof
    sigma_p = math.sqrt(X @ S @ X)
    assert stats.kstest(r @ X / (sigma_p * scale), "t", args=(dof,)).pvalue > 1e-3


def test_student_t_excess_kurtosis_is_6_over_dof_minus_4():
    dof = 12.0  # excess kurtosis 0.75; the 8th moment exists, so its estimate settles
    r = simulate_returns(S, 400_000, seed=3, dof=dof)
    np.testing.assert_allclose(stats.kurtosis(r, axis=0), 6 / (dof - 4), atol=0.12)
    normal = simulate_returns(S, 400_000, seed=3)
    np.testing.assert_allclose(stats.kurtosis(normal, axis=0), 0.0, atol=0.05)


def test_same_seed_same_draws_other_seed_other_draws():
    a = simulate_returns(S, 1000, seed=7)
    np.testing.assert_array_equal(a, simulate_returns(S, 1000, seed=7))
    np.testing.assert_array_equal(simulate_returns(S, 1000), simulate_returns(S, 1000, seed=DEFAULT_SEED))
    np.testing.assert_array_equal(simulate_returns(S, 1000, seed=None), simulate_returns(S, 1000))
    np.testing.assert_array_equal(simulate_returns(S, 1000, seed=7.0), a)  # a seed typed in a cell
    assert not np.allclose(a, simulate_returns(S, 1000, seed=8))


def test_student_t_reuses_the_normal_stream():
    # the t draw is the normal draw times a positive per-scenario factor
    z = simulate_returns(S, 500, seed=11)
    t = simulate_returns(S, 500, seed=11, dof=4)
    ratio = t / z
    np.testing.assert_allclose(ratio, ratio[:, :1] * np.ones((1, 3)), rtol=1e-10)
    assert np.all(ratio > 0)


def test_horizon_scales_by_sqrt_h_and_mean_by_h():
    base = simulate_returns(S, 1000, seed=4)
    np.testing.assert_allclose(simulate_returns(S, 1000, seed=4, horizon=4), 2 * base, rtol=1e-14)
    mu = np.array([0.01, 0.02, 0.03])
    np.testing.assert_allclose(simulate_returns(S, 1000, seed=4, horizon=4, mean=mu), 2 * base + 4 * mu, rtol=1e-12)


def test_blocks_do_not_change_the_draws(monkeypatch):
    whole = simulate_returns(S, 1001, seed=5, dof=6, mean=[0.1, 0.2, 0.3])
    monkeypatch.setattr(simulation, "_CHUNK_CELLS", 30)  # 10 rows per block, last one short
    np.testing.assert_allclose(simulate_returns(S, 1001, seed=5, dof=6, mean=[0.1, 0.2, 0.3]), whole, rtol=1e-14)


def test_singular_covariance_uses_eigen_factor():
    # a perfectly correlated pair plus an independent asset: PSD, not PD
    s = np.array([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 4.0]]) * 1e-4
    with pytest.raises(np.linalg.LinAlgError):
        np.linalg.cholesky(s)
    f = cov_factor(s)
    np.testing.assert_allclose(f @ f.T, s, atol=1e-18)
    r = simulate_returns(s, 20_000, seed=6)
    np.testing.assert_allclose(r[:, 0], r[:, 1], atol=1e-15)
    assert np.all(np.abs(r.T @ r / r.shape[0] - s) <= 5 * _moment_se(r) + 1e-18)


def test_cholesky_factor_when_positive_definite():
    f = cov_factor(S)
    np.testing.assert_array_equal(f, np.linalg.cholesky(S))


def test_one_asset_and_zero_variance():
    r = simulate_returns([[0.0004]], 1000, seed=1)
    assert r.shape == (1000, 1)
    assert np.all(simulate_returns([[0.0]], 100) == 0.0)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"draws": 0}, "draws: got 0; expected a whole number of scenarios"),
        ({"draws": 10.5}, "draws: got 10.5; expected a whole number"),
        ({"draws": "many"}, "draws: got the text 'many'"),
        ({"seed": -1}, "seed: got -1; expected a whole number >= 0"),
        ({"seed": 1.5}, "seed: got 1.5; expected a whole number >= 0"),
        ({"seed": "x"}, "seed: got the text 'x'"),
        ({"dof": 2}, "dof: got 2; expected Student-t degrees of freedom above 2"),
        ({"dof": -3.0}, "dof: got -3; expected Student-t degrees of freedom above 2"),
        ({"dof": float("inf")}, "dof: got inf; expected"),
        ({"dof": "t"}, "dof: got the text 't'"),
        ({"mean": [0.1, 0.2]}, "mean: has 2 values but the book has 3 assets"),
        ({"horizon": 0}, "horizon: got 0; expected a positive whole number"),
    ],
)
def test_generator_validation(kwargs, message):
    args = {"draws": 1000}
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        simulate_returns(S, **args)


def test_generator_rejects_bad_covariance_and_huge_tables():
    with pytest.raises(ValueError, match="cov: is not positive semi-definite"):
        simulate_returns([[1.0, 2.0], [2.0, 1.0]], 100)
    with pytest.raises(ValueError, match="draws: 200000000 draws of 3 assets is 600,000,000 numbers"):
        simulate_returns(S, 200_000_000)


def test_min_draws_leaves_ten_scenarios_in_the_tail():
    assert min_draws(0.95) == 200
    assert min_draws(0.99) == 1000
    assert min_draws(0.999) == 10_000
    assert min_draws(0.5) == 100


# --------------------------------------------------------------------------- Monte Carlo VaR / ES


def _normal_t_ratio(measure, confidence, dof):
    """Closed-form Student-t figure over the normal one, same covariance (both elliptical)."""
    z = stats.norm.ppf(confidence)
    q = stats.t.ppf(confidence, dof)
    scale = math.sqrt((dof - 2) / dof)
    if measure == "var":
        return q * scale / z
    normal_es = stats.norm.pdf(z) / (1 - confidence)
    t_es = stats.t.pdf(q, dof) * (dof + q * q) / ((dof - 1) * (1 - confidence))
    return t_es * scale / normal_es


@pytest.mark.parametrize("measure", ["var", "es"])
@pytest.mark.parametrize("confidence", [0.95, 0.99])
def test_total_converges_to_the_normal_closed_form(measure, confidence):
    exact = parametric.decompose(X, S, measure, confidence).total
    errors, ses = [], []
    for draws in (10_000, 100_000, 1_000_000):
        mc = simulation.decompose(X, S, measure, confidence, draws=draws)
        se = simulation.standard_error(X, S, measure, confidence, draws=draws)
        assert abs(mc.total - exact) <= 4 * se
        errors.append(abs(mc.total - exact))
        ses.append(se)
    # the standard error falls like 1 / sqrt(draws)
    np.testing.assert_allclose(np.array(ses[:-1]) / ses[1:], math.sqrt(10), rtol=0.15)
    assert ses[-1] < 0.003 * exact


@pytest.mark.parametrize("measure", ["var", "es"])
def test_components_converge_to_the_normal_closed_form(measure):
    exact = parametric.decompose(X, S, measure, 0.99)
    rms = []
    for draws in (20_000, 500_000):
        comps = np.array([simulation.decompose(X, S, measure, 0.99, draws=draws, seed=k).component for k in range(8)])
        spread = comps.std(axis=0, ddof=1)
        # the average over 8 seeds is unbiased for the Euler components within 4 standard errors
        assert np.all(np.abs(comps.mean(axis=0) - exact.component) <= 4 * spread / math.sqrt(8) + 1e-9 * exact.total)
        rms.append(np.sqrt(np.mean((comps - exact.component) ** 2)))
    assert rms[1] < rms[0] / 2.5  # error shrinks as draws grow (25x draws)
    assert rms[1] < 0.01 * exact.total


@pytest.mark.parametrize("measure", ["var", "es"])
@pytest.mark.parametrize("dof", [4.0, 8.0])
def test_student_t_matches_its_closed_form(measure, dof):
    normal = parametric.decompose(X, S, measure, 0.99)
    ratio = _normal_t_ratio(measure, 0.99, dof)
    mc = simulation.decompose(X, S, measure, 0.99, draws=1_000_000, dof=dof)
    se = simulation.standard_error(X, S, measure, 0.99, draws=1_000_000, dof=dof)
    assert abs(mc.total - ratio * normal.total) <= 4 * se
    # elliptical model: the Euler components keep the normal proportions
    np.testing.assert_allclose(mc.component, ratio * normal.component, atol=0.02 * normal.total * ratio)


def test_student_t_var_exceeds_normal_at_99_not_at_95():
    for measure in ("var", "es"):
        assert simulation.decompose(X, S, measure, 0.99, dof=4).total > simulation.decompose(X, S, measure, 0.99).total
    # same covariance: at 95% the t quantile is inside the normal one (1.51 vs 1.64 sigma)
    assert simulation.decompose(X, S, "var", 0.95, dof=4).total < simulation.decompose(X, S, "var", 0.95).total


def test_reproducible_with_the_seed():
    a = simulation.decompose(X, S, "var", 0.99, draws=50_000, seed=123)
    simulation.clear_cache()
    b = simulation.decompose(X, S, "var", 0.99, draws=50_000, seed=123)
    assert a.total == b.total
    np.testing.assert_array_equal(a.component, b.component)
    c = simulation.decompose(X, S, "var", 0.99, draws=50_000, seed=124)
    assert c.total != a.total
    assert simulation.decompose(X, S).total == simulation.decompose(X, S, seed=DEFAULT_SEED).total


def test_common_random_numbers_make_incremental_var_smooth():
    trade = np.array([0.0, 5e5, 0.0])
    exact = risk.incremental_var(X, S, trade, 0.99).exact
    errors, ses = [], []
    for seed in range(10):
        inc = risk.incremental_var(X, S, trade, 0.99, method="montecarlo", seed=seed)
        errors.append(inc.exact - exact)
        ses.append(simulation.var_standard_error(X, S, 0.99, seed=seed))
    # independent draws would give a difference with sd ~ sqrt(2) se; shared draws far less
    assert math.sqrt(np.mean(np.square(errors))) < 0.5 * np.mean(ses)


@pytest.mark.parametrize("measure", ["var", "es"])
@pytest.mark.parametrize("kwargs", [{}, {"dof": 5}, {"mean": [0.001, 0.0, -0.002], "horizon": 10}, {"smoothing": "scenario"}])
def test_components_sum_to_the_total(measure, kwargs):
    d = simulation.decompose(X, S, measure, 0.99, draws=20_000, **kwargs)
    assert d.component.sum() == pytest.approx(d.total, rel=1e-12)
    np.testing.assert_allclose(d.component, X * d.marginal)
    assert d.percent.sum() == pytest.approx(1.0)


@settings(max_examples=30, deadline=None)
@given(
    st.lists(st.floats(-1e7, 1e7), min_size=3, max_size=3).filter(lambda v: max(map(abs, v)) > 1e3),
    st.floats(0.01, 100.0),
    st.sampled_from(["var", "es"]),
)
def test_homogeneous_of_degree_one(x, k, measure):
    x = np.array(x)
    base = simulation.decompose(x, S, measure, 0.95, draws=2000)
    scaled = simulation.decompose(k * x, S, measure, 0.95, draws=2000)
    assert scaled.total == pytest.approx(k * base.total, rel=1e-9, abs=1e-6)
    np.testing.assert_allclose(scaled.marginal, base.marginal, rtol=1e-7, atol=1e-12)


def test_sqrt_time_and_mean_shift_are_exact_on_shared_draws():
    one = simulation.decompose(X, S, "var", 0.99, draws=20_000)
    ten = simulation.decompose(X, S, "var", 0.99, 10, draws=20_000)
    assert ten.total == pytest.approx(math.sqrt(10) * one.total, rel=1e-12)
    mu = np.array([0.001, 0.0005, -0.002])
    h4 = simulation.decompose(X, S, "es", 0.99, 4, draws=20_000)
    h4_mean = simulation.decompose(X, S, "es", 0.99, 4, mean=mu, draws=20_000)
    assert h4_mean.total == pytest.approx(h4.total - X @ mu * 4, rel=1e-12)
    np.testing.assert_allclose(h4_mean.marginal, h4.marginal - mu * 4, rtol=1e-10)


def test_zero_book_and_perfect_hedge():
    for measure in ("var", "es"):
        d = simulation.decompose([0.0, 0.0, 0.0], S, measure)
        assert d.total == 0.0
        np.testing.assert_array_equal(d.marginal, 0.0)
        np.testing.assert_array_equal(d.component, 0.0)
        np.testing.assert_array_equal(d.percent, 0.0)
        np.testing.assert_array_equal(simulation.standalone([0.0, 0.0, 0.0], S, measure), 0.0)
    assert simulation.var_standard_error([0, 0, 0], S) == 0.0
    # long one, short its perfectly correlated twin: no risk, only the known mean
    twin = np.array([[1.0, 1.0], [1.0, 1.0]]) * 4e-4
    mu = np.array([0.001, 0.0])
    d = simulation.decompose([1e6, -1e6], twin, "var", 0.99, 5, mean=mu)
    assert d.total == pytest.approx(-1e6 * 0.001 * 5)
    np.testing.assert_allclose(d.marginal, -mu * 5)
    assert simulation.standard_error([1e6, -1e6], twin, "es", mean=mu) == 0.0


def test_standalone_is_each_position_on_the_same_draws():
    r = simulate_returns(S, 50_000, seed=9)
    alone = simulation.standalone(X, S, "var", 0.99, draws=50_000, seed=9)
    np.testing.assert_allclose(alone, -np.quantile(r * X, 0.01, axis=0), rtol=1e-12)
    exact = parametric.standalone(X, S, "var", 0.99)
    se = [pnl_standard_error(r[:, i] * X[i], 0.99) for i in range(3)]
    assert np.all(np.abs(alone - exact) <= 4 * np.array(se))
    es = simulation.standalone(X, S, "es", 0.99, draws=50_000, seed=9)
    assert np.all(es > alone)


def test_dispatcher_reaches_montecarlo():
    d = simulation.decompose(X, S, "var", 0.99, draws=30_000, seed=5, dof=6)
    assert risk.portfolio_var(X, S, 0.99, method="mc", draws=30_000, seed=5, dof=6) == d.total
    np.testing.assert_array_equal(risk.component_var(X, S, 0.99, method="montecarlo", draws=30_000, seed=5, dof=6), d.component)
    np.testing.assert_array_equal(
        risk.individual_es(X, S, 0.99, method="montecarlo", draws=30_000),
        simulation.standalone(X, S, "es", 0.99, draws=30_000),
    )
    with pytest.raises(ValueError, match="lam: is not an option of the montecarlo method"):
        risk.portfolio_var(X, S, method="montecarlo", lam=0.94)


@pytest.mark.parametrize(
    "args, kwargs, message",
    [
        ((X, S, "var", 0.99), {"draws": 500}, "draws: got 500; at 0.99 confidence at least 1000 draws are needed"),
        ((X, S, "var", 95), {}, "confidence: got 95, which looks like a percentage"),
        ((X, S, "cvar"), {}, "measure: got 'cvar'; expected one of var, es"),
        (([1.0, 2.0], S), {}, "cov: is 3 x 3 but there are 2 positions"),
        ((X, S), {"smoothing": "loess"}, "smoothing: got 'loess'; expected one of kernel, scenario"),
        ((X, S), {"dof": 1}, "dof: got 1; expected Student-t degrees of freedom above 2"),
        ((X, S), {"seed": -2}, "seed: got -2"),
    ],
)
def test_decompose_validation(args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        simulation.decompose(*args, **kwargs)


# --------------------------------------------------------------------------- standard error


@pytest.mark.parametrize("measure", ["var", "es"])
@pytest.mark.parametrize("dof", [None, 4.0])
def test_standard_error_matches_the_spread_across_seeds(measure, dof):
    totals, ses = [], []
    for seed in range(150):
        totals.append(simulation.decompose(X, S, measure, 0.99, draws=5000, seed=seed, dof=dof).total)
        ses.append(simulation.standard_error(X, S, measure, 0.99, draws=5000, seed=seed, dof=dof))
    ratio = np.mean(ses) / np.std(totals, ddof=1)
    assert 0.75 < ratio < 1.33


def test_var_standard_error_of_a_normal_sample():
    # order-statistic formula with the true density: sqrt(p(1-p)/n) / phi(z_p)
    n = 400_000
    pnl = np.random.default_rng(0).standard_normal(n)
    expected = math.sqrt(0.05 * 0.95 / n) / stats.norm.pdf(stats.norm.ppf(0.05))
    assert pnl_standard_error(pnl, 0.95) == pytest.approx(expected, rel=0.03)
    assert simulation.var_standard_error(X, S, 0.95) == simulation.standard_error(X, S, "var", 0.95)
    with pytest.raises(ValueError, match="pnl: has 1 value"):
        pnl_standard_error([1.0], 0.95)


@pytest.mark.parametrize("measure", ["var", "es"])
def test_marginal_equals_central_differences_with_common_random_numbers(measure):
    # the same draws for every book make simulated VaR/ES piecewise linear in the positions, so
    # the scenario decomposition is the exact derivative of the simulated figure
    rng = np.random.default_rng(11)
    a = rng.normal(size=(4, 4))
    cov = a @ a.T * 1e-4 + np.eye(4) * 1e-5
    x = np.array([3e6, -1e6, 2e6, 5e5])
    kwargs = dict(measure=measure, confidence=0.99, draws=20_000, seed=3, smoothing="scenario")
    d = simulation.decompose(x, cov, **kwargs)
    step = 1.0
    for i in range(4):
        e = np.eye(4)[i] * step
        up = simulation.decompose(x + e, cov, **kwargs).total
        down = simulation.decompose(x - e, cov, **kwargs).total
        assert d.marginal[i] == pytest.approx((up - down) / (2 * step), rel=1e-6, abs=1e-9)
