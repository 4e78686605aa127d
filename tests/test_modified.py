"""Tests for xlmvar.engine.modified: Cornish-Fisher (modified) VaR/ES and their decomposition.

References: PerformanceAnalytics' published values for edhec[1:100, 1:3] (xlmvar/data/README.md),
a literal co-moment transcription of PerformanceAnalytics' formulas (tests/_edhec.py), central
finite differences, and Euler/homogeneity/permutation identities.
"""

from __future__ import annotations

import numpy as np
import pytest
from _edhec import PA_WEIGHTS, central_difference, edhec, literal_cornish_fisher
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from xlmvar.engine import modified, parametric, risk
from xlmvar.engine.modified import (
    cornish_fisher_quantile,
    cornish_fisher_tail_mean,
    decompose,
    pnl_moments,
    standalone,
)

PA_TOL = 5e-7  # PerformanceAnalytics' figures are quoted to 6 decimals


@pytest.fixture(scope="module")
def pa_returns():
    return edhec(100, 3)


def _fat_symmetric_tails():
    """Returns whose portfolio (0.5, 0.3, 0.2) has skew ~0.5, excess kurtosis ~20.

    There the Cornish-Fisher ES falls below the Cornish-Fisher VaR, so the operational floor
    (ES = VaR) binds.
    """
    rng = np.random.default_rng(1)
    r = rng.normal(0.0, 0.01, (400, 3))
    r[[10, 50], 0] += [0.12, -0.12]
    r[[20, 120], 1] += [0.1, -0.1]
    r[[30, 70], 2] += [0.1, -0.1]
    return r, np.array([0.5, 0.3, 0.2])


# --- PerformanceAnalytics' published figures -------------------------------------------------


def test_modified_var_column_one_matches_performance_analytics(pa_returns):
    # PA: VaR(edhec[1:100, 1], p=.95, method="modified") = -0.014674 (a return; we: a loss).
    # PA's single-asset functions divide the variance by n (centeredmoment): ddof=0.
    e1 = [1.0, 0.0, 0.0]
    assert standalone(e1, pa_returns, ddof=0)[0] == pytest.approx(0.014674, abs=PA_TOL)
    assert decompose(e1, pa_returns, ddof=0).total == pytest.approx(0.014674, abs=PA_TOL)
    assert standalone([1.0], pa_returns[:, :1], ddof=0)[0] == pytest.approx(0.014674, abs=PA_TOL)


def test_default_ddof_is_the_portfolio_convention(pa_returns):
    # PA's component functions use cov(R) (divisor n - 1): the same column gives 0.014767.
    assert standalone([1.0, 0, 0], pa_returns)[0] == pytest.approx(0.0147668, abs=PA_TOL)


def test_gaussian_cross_checks_of_the_conventions(pa_returns):
    # The same PA test also quotes Gaussian figures; they pin the moment conventions down:
    # single-asset figures divide the variance by n, the portfolio figure by n - 1 (cov(R)).
    mu = pa_returns.mean(axis=0)
    cov_n = np.cov(pa_returns, rowvar=False, ddof=0)
    cov_n1 = np.cov(pa_returns, rowvar=False, ddof=1)
    e1 = [1.0, 0.0, 0.0]
    assert parametric.decompose(e1, cov_n, mean=mu).total == pytest.approx(0.012133, abs=PA_TOL)
    es = parametric.decompose(e1, cov_n, "es", mean=mu)
    assert es.total == pytest.approx(0.017133, abs=PA_TOL)
    portfolio = parametric.decompose(PA_WEIGHTS, cov_n1, mean=mu)
    assert portfolio.total == pytest.approx(0.012916, abs=PA_TOL)
    # and with n - 1 the single-asset figure is not PA's
    assert parametric.decompose(e1, cov_n1, mean=mu).total == pytest.approx(0.012232, abs=PA_TOL)


def test_dispatcher_reaches_the_module(pa_returns):
    direct = decompose(PA_WEIGHTS, pa_returns)
    for name in ("cornish-fisher", "modified", "cf"):
        assert risk.decompose(PA_WEIGHTS, pa_returns, method=name).total == direct.total
    # options reach standalone through the dispatcher
    np.testing.assert_array_equal(
        risk.individual_var(PA_WEIGHTS, pa_returns, method="modified", ddof=0),
        standalone(PA_WEIGHTS, pa_returns, ddof=0),
    )


# --- the literal co-moment reference ---------------------------------------------------------


@pytest.mark.parametrize("measure", ["var", "es"])
@pytest.mark.parametrize(
    "cols, weights",
    [
        (3, PA_WEIGHTS),
        (3, [0.7, -0.4, 0.9]),
        (5, [0.2, 0.2, 0.2, 0.2, 0.2]),
        (5, [1.5, -0.3, 0.4, -0.8, 0.25]),
    ],
)
def test_fast_moments_equal_the_co_moment_matrices(cols, weights, measure):
    r = edhec(100, cols)
    total, contribution = literal_cornish_fisher(weights, r, measure=measure)
    result = decompose(weights, r, measure)
    assert result.total == pytest.approx(total, rel=1e-12)
    np.testing.assert_allclose(result.component, contribution, rtol=0, atol=1e-12 * abs(total))


def test_full_edhec_against_literal_reference():
    r = edhec(None, 4)
    w = [0.1, 0.2, 0.3, 0.4]
    for measure in ("var", "es"):
        total, contribution = literal_cornish_fisher(w, r, measure=measure)
        result = decompose(w, r, measure)
        assert result.total == pytest.approx(total, rel=1e-12)
        np.testing.assert_allclose(result.component, contribution, atol=1e-12 * abs(total))


def test_operational_floor_es_equals_var_and_its_decomposition():
    r, w = _fat_symmetric_tails()
    var = decompose(w, r, "var")
    es = decompose(w, r, "es")
    raw = decompose(w, r, "es", operational=False)
    assert raw.total < var.total  # the floor binds here
    assert es.total == var.total
    np.testing.assert_array_equal(es.component, var.component)
    total, contribution = literal_cornish_fisher(w, r, measure="es")
    assert es.total == pytest.approx(total, rel=1e-12)
    np.testing.assert_allclose(es.component, contribution, atol=1e-12 * total)


def test_es_at_least_var_when_operational(pa_returns):
    rng = np.random.default_rng(3)
    for _ in range(20):
        w = rng.normal(size=3)
        assert decompose(w, pa_returns, "es").total >= decompose(w, pa_returns, "var").total


# --- exact derivatives -------------------------------------------------------------------------


@pytest.mark.parametrize("measure", ["var", "es"])
@pytest.mark.parametrize("weights", [PA_WEIGHTS, [0.9, -0.5, 0.2]])
def test_marginal_equals_central_differences(pa_returns, weights, measure):
    result = decompose(weights, pa_returns, measure, horizon=5)
    numeric = central_difference(
        lambda v: decompose(v, pa_returns, measure, horizon=5).total, weights, 1e-6
    )
    np.testing.assert_allclose(result.marginal, numeric, rtol=1e-6, atol=1e-9)


def test_marginal_under_the_floor_equals_central_differences():
    r, w = _fat_symmetric_tails()
    result = decompose(w, r, "es")
    numeric = central_difference(lambda v: decompose(v, r, "es").total, w, 1e-6)
    np.testing.assert_allclose(result.marginal, numeric, rtol=1e-6, atol=1e-9)


def test_tail_mean_integrates_the_edgeworth_density():
    # Boudt et al. (2008): E = -(1/a) int_{-inf}^h u f(u) du with the Edgeworth density
    # f = phi [1 + S He3 / 6 + K He4 / 24 + S^2 He6 / 72]; the closed form PerformanceAnalytics
    # uses (and we use) must equal that integral.
    from scipy.integrate import quad
    from scipy.stats import norm

    for skew, exkurt in [(-0.8, 3.0), (0.4, 1.2), (0.0, 0.0), (-2.0, 10.0)]:
        h = float(cornish_fisher_quantile(0.05, skew, exkurt))

        def density(u, s=skew, k=exkurt):
            he3, he4, he6 = u**3 - 3 * u, u**4 - 6 * u**2 + 3, u**6 - 15 * u**4 + 45 * u**2 - 15
            return norm.pdf(u) * (1 + s * he3 / 6 + k * he4 / 24 + s * s * he6 / 72)

        tail_mean = -quad(lambda u: u * density(u), -np.inf, h)[0] / 0.05
        assert cornish_fisher_tail_mean(0.05, skew, exkurt) == pytest.approx(tail_mean, rel=1e-9)


def test_gaussian_limit():
    # zero skew and excess kurtosis: h = z and E = phi(z) / a
    from scipy.stats import norm

    z = norm.ppf(0.01)
    assert cornish_fisher_quantile(0.01, 0.0, 0.0) == pytest.approx(z)
    assert cornish_fisher_tail_mean(0.01, 0.0, 0.0) == pytest.approx(norm.pdf(z) / 0.01)


# --- identities (hypothesis) -----------------------------------------------------------------


@st.composite
def books(draw):
    n = draw(st.integers(1, 6))
    t = draw(st.integers(30, 150))
    seed = draw(st.integers(0, 2**32 - 1))
    x = draw(
        st.lists(
            st.floats(-5, 5, allow_nan=False).map(lambda v: round(v, 3)), min_size=n, max_size=n
        )
    )
    rng = np.random.default_rng(seed)
    mix = np.eye(n) + 0.4 * rng.normal(size=(n, n))
    r = 0.01 * rng.standard_t(4, size=(t, n)) @ mix + 0.001 * rng.normal(size=n)
    # the identities are tested where the expansion gives figures at all: a P&L whose
    # moments are outside its domain is refused (tests/test_engine_edges.py)
    assume(_expansion_valid(np.array(x), r))
    return np.array(x), r


def _expansion_valid(x, r, tail=0.05):
    _, m2, m3, m4 = pnl_moments(r @ x)
    if m2 <= 0.0:
        return True
    skew, exkurt = m3 / m2**1.5, m4 / m2**2 - 3.0
    return modified.cornish_fisher_misranked(tail, skew, exkurt) <= modified.MAX_MISRANKED * tail


def _scale(result):
    return np.sum(np.abs(result.component)) + abs(result.total) + 1e-300


@settings(max_examples=40, deadline=None)
@given(book=books(), measure=st.sampled_from(["var", "es"]), operational=st.booleans())
def test_components_sum_to_total(book, measure, operational):
    x, r = book
    result = decompose(x, r, measure, operational=operational)
    assert isinstance(result.total, float)
    assert np.all(np.isfinite(result.marginal))
    assert result.component.sum() == pytest.approx(result.total, abs=1e-10 * _scale(result))


@settings(max_examples=30, deadline=None)
@given(book=books(), measure=st.sampled_from(["var", "es"]), factor=st.floats(0.01, 100))
def test_homogeneous_of_degree_one(book, measure, factor):
    x, r = book
    base = decompose(x, r, measure)
    scaled = decompose(factor * x, r, measure)
    tol = 1e-9 * _scale(base) * factor
    assert scaled.total == pytest.approx(factor * base.total, abs=tol)
    np.testing.assert_allclose(scaled.component, factor * base.component, atol=tol)
    marginal_tol = 1e-9 * (1 + np.abs(base.marginal).max())
    np.testing.assert_allclose(scaled.marginal, base.marginal, atol=marginal_tol)


@settings(max_examples=30, deadline=None)
@given(book=books(), measure=st.sampled_from(["var", "es"]), data=st.data())
def test_permuting_assets_permutes_the_decomposition(book, measure, data):
    x, r = book
    order = np.array(data.draw(st.permutations(range(x.size))))
    base = decompose(x, r, measure)
    permuted = decompose(x[order], r[:, order], measure)
    tol = 1e-9 * _scale(base)
    assert permuted.total == pytest.approx(base.total, abs=tol)
    np.testing.assert_allclose(permuted.component, base.component[order], atol=tol)


@settings(max_examples=30, deadline=None)
@given(book=books(), measure=st.sampled_from(["var", "es"]), horizon=st.integers(1, 250))
def test_square_root_of_time(book, measure, horizon):
    x, r = book
    one = decompose(x, r, measure)
    many = decompose(x, r, measure, horizon=horizon)
    tol = 1e-9 * _scale(one) * np.sqrt(horizon)
    assert many.total == pytest.approx(one.total * np.sqrt(horizon), abs=tol)
    np.testing.assert_allclose(many.component, one.component * np.sqrt(horizon), atol=tol)


# --- standalone ------------------------------------------------------------------------------


@pytest.mark.parametrize("measure", ["var", "es"])
def test_standalone_is_each_position_held_alone(pa_returns, measure):
    x = np.array([0.5, -0.8, 2.0])  # a short flips the skewness
    alone = standalone(x, pa_returns, measure)
    for i in range(3):
        book = np.zeros(3)
        book[i] = x[i]
        assert alone[i] == pytest.approx(decompose(book, pa_returns, measure).total, rel=1e-12)


def test_standalone_zero_position_and_flat_column():
    rng = np.random.default_rng(0)
    r = rng.normal(0.001, 0.01, (50, 3))
    r[:, 2] = 0.002  # a constant return: no dispersion
    out = standalone([0.0, 1.0, 2.0], r)
    assert out[0] == 0.0
    assert out[2] == pytest.approx(-0.004)
    assert np.all(np.isfinite(out))


def test_pnl_moments_conventions():
    pnl = np.array([0.01, -0.02, 0.03, 0.0, -0.01])
    mean, m2, m3, m4 = pnl_moments(pnl)
    d = pnl - pnl.mean()
    assert m2 == pytest.approx(np.var(pnl, ddof=1))
    assert m3 == pytest.approx(np.mean(d**3))
    assert m4 == pytest.approx(np.mean(d**4))
    assert pnl_moments(pnl, ddof=0)[1] == pytest.approx(np.var(pnl))


# --- zero risk -------------------------------------------------------------------------------


def test_zero_book_is_zero_not_nan(pa_returns):
    for measure in ("var", "es"):
        result = decompose([0.0, 0.0, 0.0], pa_returns, measure)
        assert result.total == 0.0
        np.testing.assert_array_equal(result.component, 0.0)
        np.testing.assert_array_equal(result.percent, 0.0)
        assert np.all(np.isfinite(result.marginal))
        np.testing.assert_array_equal(standalone([0.0, 0.0, 0.0], pa_returns, measure), 0.0)


def test_perfect_hedge_is_flat(pa_returns):
    r = np.column_stack([pa_returns[:, 0], pa_returns[:, 0], pa_returns[:, 1]])
    result = decompose([0.7, -0.7, 0.0], r)
    assert result.total == pytest.approx(0.0, abs=1e-15)
    assert np.all(np.isfinite(result.marginal))
    np.testing.assert_allclose(result.marginal, -r.mean(axis=0))


def test_wide_book_never_forms_co_moment_matrices():
    # 400 assets: M4 would hold 400^4 = 2.6e10 numbers; the fast path needs O(T n)
    rng = np.random.default_rng(7)
    r = 0.01 * rng.standard_t(5, size=(300, 400))
    x = rng.normal(size=400)
    for measure in ("var", "es"):
        result = decompose(x, r, measure)
        assert result.component.sum() == pytest.approx(result.total, rel=1e-10)


# --- argument errors -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"ddof": 2}, "ddof"),
        ({"ddof": "one"}, "ddof"),
        ({"operational": "yes"}, "operational"),
        ({"smoothing": "kernel"}, "smoothing"),
        ({"measure": "cvar"}, "measure"),
        ({"confidence": 95}, "confidence"),
        ({"horizon": 0}, "horizon"),
        ({"horizon": 1.5}, "horizon"),
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
        decompose([0.3, "x", 0.3], pa_returns)
    bad = pa_returns.copy()
    bad[5, 1] = np.nan
    with pytest.raises(ValueError, match="^returns: row 6, column 2"):
        decompose(PA_WEIGHTS, bad)


def test_too_few_rows(pa_returns):
    with pytest.raises(ValueError, match=r"^returns: has 3 rows;.*at least 4"):
        decompose(PA_WEIGHTS, pa_returns[:3])
    with pytest.raises(ValueError, match=r"^returns: has 3 rows;.*at least 4"):
        standalone(PA_WEIGHTS, pa_returns[:3], "es")
    # four rows are enough rows; the first four give moments outside the expansion's domain
    # (excess kurtosis -2.3, tests/test_engine_edges.py), rows 4-7 do not
    assert np.isfinite(decompose(PA_WEIGHTS, pa_returns[3:7]).total)


def test_module_interface_matches_dispatcher():
    assert risk.METHODS["cornish-fisher"] == modified.__name__
